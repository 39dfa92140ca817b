#!/bin/bash
# `meson install` into a DESTDIR puts every file where the prefix says
# (binaries, shim, unit, mesh.conf, man pages, completion, docs, licence);
# the installed unit and the drop-in that `meshctl systemd enable` writes
# pass `systemd-analyze verify`; `systemd-analyze security` rates the unit
# 2.0 or lower; the versions agree.
. "$(dirname "$0")/lib.sh"

opt() { meson introspect "$BUILDDIR" --buildoptions | python3 -c '
import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]==sys.argv[1]][0])' "$1"; }
prefix=$(opt prefix)
libdir=$(opt libdir); case $libdir in /*) ;; *) libdir=$prefix/$libdir ;; esac
sysconfdir=$(opt sysconfdir); case $sysconfdir in /*) ;; *) sysconfdir=$prefix/$sysconfdir ;; esac
R=$T/root
DESTDIR="$R" meson install -C "$BUILDDIR" --no-rebuild --quiet >"$T/install.log" 2>&1
check "meson install into DESTDIR" [ $? = 0 ]
check "helperd in \$prefix/sbin" test -x "$R$prefix/sbin/helperd"
check "meshctl in \$prefix/bin" test -x "$R$prefix/bin/meshctl"
shim=$libdir/meshshim/libmeshshim.so
check "libmeshshim.so in \$libdir/meshshim ($shim)" test -f "$R$shim"
check "mesh.conf in \$sysconfdir/meshshim" test -f "$R$sysconfdir/meshshim/mesh.conf"
check "the licence and README in the docs" test -f "$R$prefix/share/doc/meshshim/LICENSE" -a -f "$R$prefix/share/doc/meshshim/README.md"
check "bash completion" test -f "$R$prefix/share/bash-completion/completions/meshctl"
check "zsh completion" test -f "$R$prefix/share/zsh/vendor-completions/_meshctl"
check "sysusers.d entry for the meshshim user" grep -q '^u meshshim ' "$R$prefix/lib/sysusers.d/meshshim.conf"
if command -v scdoc >/dev/null; then
	for m in man8/helperd.8 man1/meshctl.1 man5/mesh.conf.5 man8/libmeshshim.8; do
		check "man page $m" test -s "$R$prefix/share/man/$m"
	done
fi
unit=$(find "$R" -name helperd.service -path '*systemd/system*')
check "helperd.service installed under \$prefix ($unit)" test -n "$unit"

# Every path the unit and the drop-in name is one the install created.
check "ExecStart names the installed helperd and mesh.conf" \
	grep -qx "ExecStart=$prefix/sbin/helperd -c $sysconfdir/meshshim/mesh.conf" "$unit"
check "the example drop-in preloads the installed shim" \
	grep -qx "Environment=LD_PRELOAD=$shim" "$R$prefix/share/doc/meshshim/examples/systemd/socat.service.d/meshshim.conf"
check "the installed mesh.conf (every key commented) passes -check" \
	"$HELPERD" -c "$R$sysconfdir/meshshim/mesh.conf" -check

# One version: helperd, meshctl and meson.
v=$(meson introspect "$BUILDDIR" --projectinfo | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
check "helperd -version = meson's ($v)" [ "$("$HELPERD" -version)" = "helperd v$v" ]
check "meshctl version = meson's ($v)" [ "$("$MESHCTL" version)" = "meshctl v$v" ]

# meshctl systemd enable/disable writes and removes the drop-in.
mkdir -p "$T/units"
cp "$SRCDIR/examples/systemd/socat.service" "$T/units/socat.service"
"$MESHCTL" systemd enable -unit-dir "$T/units" -shim "$SHIM" socat.service >"$T/enable.out" 2>&1
check "meshctl systemd enable socat.service: exit 0" [ $? = 0 ]
d=$T/units/socat.service.d/meshshim.conf
check "... writes socat.service.d/meshshim.conf with LD_PRELOAD" grep -qx "Environment=LD_PRELOAD=$SHIM" "$d"
check "... and MESH_SERVICE=socat" grep -qx "Environment=MESH_SERVICE=socat" "$d"
check "... the same lines as the README's example drop-in" sh -c "
	grep -v '^#' '$BUILDDIR/examples/socat-meshshim.conf' | sed 's|$shim|$SHIM|' > '$T/want'
	grep -v '^#' '$d' | diff '$T/want' -"
check "enable refuses a non-service unit" sh -c "! '$MESHCTL' systemd enable -unit-dir '$T/units' x.socket 2>/dev/null"
check "enable refuses a shim path with spaces" sh -c "! '$MESHCTL' systemd enable -unit-dir '$T/units' -shim '/a b' socat 2>/dev/null"

if ! command -v systemd-analyze >/dev/null; then
	skip "systemd-analyze verify and security of the installed unit" "systemd-analyze not installed (scripts/deps.sh test installs systemd)"
else
	# The installed unit, its paths pointed at the DESTDIR.
	sed -e "s|$prefix/sbin/helperd|$R$prefix/sbin/helperd|g" "$unit" > "$T/units/helperd.service"
	(cd "$T/units" && MANPATH="$R$prefix/share/man" SYSTEMD_UNIT_PATH="$T/units:" \
	    systemd-analyze verify helperd.service socat.service) > "$T/verify.out" 2>&1
	rc=$?
	sed 's/^/    /' "$T/verify.out"
	check "systemd-analyze verify helperd.service socat.service (+ drop-in): exit 0" [ "$rc" = 0 ]
	check "... and no complaint about our units" sh -c "! grep -E 'helperd|socat|meshshim' '$T/verify.out'"
	systemd-analyze security --offline=yes "$T/units/helperd.service" > "$T/security.out" 2>&1
	sed -n 's/^→ /    /p' "$T/security.out"
	score=$(sed -n 's/.*exposure level for helperd.service: \([0-9.]*\).*/\1/p' "$T/security.out")
	check "systemd-analyze security: exposure $score <= 2.0" \
		python3 -c 'import sys; sys.exit(not (sys.argv[1] and float(sys.argv[1]) <= 2.0))' "$score"
fi
"$MESHCTL" systemd disable -unit-dir "$T/units" socat.service >/dev/null
check "meshctl systemd disable removes the drop-in and its directory" test ! -e "$T/units/socat.service.d"
check "disable of a unit not in the mesh: exit 0" "$MESHCTL" systemd disable -unit-dir "$T/units" socat.service
finish
