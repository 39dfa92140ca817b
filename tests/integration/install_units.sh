#!/bin/bash
# `meson install` into a DESTDIR puts the binaries, the shim and the docs
# where DESIGN.md says; the systemd unit and drop-in pass
# `systemd-analyze verify` (with the paths pointed at this build).
. "$(dirname "$0")/lib.sh"

prefix=$(meson introspect "$BUILDDIR" --buildoptions | python3 -c '
import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
DESTDIR="$T/root" meson install -C "$BUILDDIR" --no-rebuild --quiet >"$T/install.log" 2>&1
check "meson install into DESTDIR" [ $? = 0 ]
check "helperd in \$prefix/sbin" test -x "$T/root$prefix/sbin/helperd"
check "meshctl in \$prefix/bin" test -x "$T/root$prefix/bin/meshctl"
check "libmeshshim.so in \$prefix/lib/meshshim" test -f "$T/root$prefix/lib/meshshim/libmeshshim.so"

if ! command -v systemd-analyze >/dev/null; then
	skip "systemd-analyze verify of the example units" "systemd-analyze not installed"
else
	mkdir -p "$T/units/socat.service.d"
	sed -e "s|/usr/sbin/helperd|$HELPERD|g" "$SRCDIR/examples/systemd/helperd.service" > "$T/units/helperd.service"
	cp "$SRCDIR/examples/systemd/socat.service" "$T/units/socat.service"
	sed -e "s|/usr/lib/meshshim/libmeshshim.so|$SHIM|" "$SRCDIR/examples/systemd/socat.service.d/mesh.conf" \
	    > "$T/units/socat.service.d/mesh.conf"
	(cd "$T/units" && SYSTEMD_UNIT_PATH="$T/units:" systemd-analyze verify helperd.service socat.service) > "$T/verify.out" 2>&1
	rc=$?
	sed 's/^/    /' "$T/verify.out"
	check "systemd-analyze verify helperd.service socat.service (+ drop-in): exit 0" [ "$rc" = 0 ]
	check "... and no complaint about our units" sh -c "! grep -E 'helperd.service|socat.service|mesh.conf' '$T/verify.out'"
	check "the drop-in sets LD_PRELOAD and MESH_SERVICE" grep -q "^Environment=MESH_SERVICE=socat" "$T/units/socat.service.d/mesh.conf"
fi
finish
