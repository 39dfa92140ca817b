#!/bin/bash
# Runs inside a brand-new Debian root (tests/pkg/package.sh), in a clone of
# the repository: build the package, install it, walk through it, purge it.
set -u
export DEBIAN_FRONTEND=noninteractive
PASS=0 FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok   - $*"; }
fail() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
check() { local desc=$1; shift; if "$@"; then ok "$desc"; else fail "$desc"; fi; }
finish() { echo "package: $PASS passed, $FAIL failed"; [ "$FAIL" = 0 ]; exit $?; }
die() { fail "$*"; finish; }

# What is there before the package: every path but logs, caches and apt's
# and dpkg's own state.
snapshot() {
	find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /root \
	    -o -path /tmp -o -path /var/cache -o -path /var/lib/apt \
	    -o -path /var/lib/dpkg -o -path /var/log -o -path /var/tmp \
	    -o -path /run/systemd \) -prune \
	    -o -print | sort
}

echo "== make deb (build dependencies, build, lintian)"
make deb > /tmp/deb.log 2>&1 || { tail -40 /tmp/deb.log; die "make deb"; }
sed -n '/^lintian /,$p' /tmp/deb.log
ok "make deb in a fresh root (Build-Depends complete, lintian: no error or warning)"
deb=$(ls build-deb/meshshim_*_*.deb | grep -v dbgsym)
# What the walkthrough and the checks use; systemd for systemd-analyze (not
# PID 1 here), man-db for `man -w`.
apt-get install -y -qq --no-install-recommends socat netcat-openbsd curl \
    iproute2 systemd man-db procps >/tmp/apt.log 2>&1 || { tail /tmp/apt.log; die "apt-get install tools"; }
snapshot > /tmp/before

echo "== install $deb"
apt-get install -y -qq "./$deb" >/tmp/install.log 2>&1 || { cat /tmp/install.log; die "apt-get install the package"; }
ok "apt-get install ./$(basename "$deb")"
triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
SHIM=/usr/lib/$triplet/meshshim/libmeshshim.so
for f in /usr/sbin/helperd /usr/bin/meshctl "$SHIM" /etc/meshshim/mesh.conf \
    /lib/systemd/system/helperd.service /usr/share/doc/meshshim/copyright \
    /usr/share/bash-completion/completions/meshctl \
    /usr/share/zsh/vendor-completions/_meshctl /usr/lib/sysusers.d/meshshim.conf; do
	check "installed: $f" test -e "$f"
done
check "/etc/meshshim.d/ exists" test -d /etc/meshshim.d
check "mesh.conf is a conffile" grep -qx /etc/meshshim/mesh.conf /var/lib/dpkg/info/meshshim.conffiles
for m in helperd meshctl mesh.conf libmeshshim; do
	check "man $m finds its page" man -w "$m"
done
v=$(dpkg-query -W -f '${Version}' meshshim)
check "helperd -version = package version ($v)" [ "$(helperd -version)" = "helperd v$v" ]
check "meshctl version = package version ($v)" [ "$(meshctl version)" = "meshctl v$v" ]
check "helperd -h points to the manuals" sh -c 'helperd -h | grep -q "mesh.conf(5)"'
check "meshctl -h points to the manual" sh -c 'meshctl -h | grep -q "meshctl(1)"'
check "system user meshshim" sh -c 'id -u meshshim >/dev/null && [ "$(getent passwd meshshim | cut -d: -f7)" = /usr/sbin/nologin ]'
check "/var/lib/meshshim: meshshim, 0700" [ "$(stat -c '%U %a' /var/lib/meshshim)" = "meshshim 700" ]
check "the unit is enabled (deb-systemd-helper)" test -L /etc/systemd/system/multi-user.target.wants/helperd.service

U=/lib/systemd/system/helperd.service
systemd-analyze verify "$U" > /tmp/verify.out 2>&1
rc=$?; sed 's/^/    /' /tmp/verify.out
check "systemd-analyze verify $U: exit 0, silent" sh -c "[ $rc = 0 ] && [ ! -s /tmp/verify.out ]"
systemd-analyze security --offline=yes "$U" > /tmp/security.out 2>&1
score=$(sed -n 's/.*exposure level for helperd.service: \([0-9.]*\).*/\1/p' /tmp/security.out)
echo "    systemd-analyze security: $score"
check "systemd-analyze security <= 2.0 ($score)" awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }'

# The walkthrough, in a network namespace of its own (the seed's fixed
# ports do not meet anything else on the machine).
echo "== the getting-started walkthrough against the installed files"
unshare -n bash tests/pkg/walk.sh "$SHIM" > /tmp/walk.log 2>&1
rc=$?
cat /tmp/walk.log
check "walkthrough against the installed package" [ $rc = 0 ]
check "the walkthrough leaves no drop-in behind" test ! -e /etc/systemd/system/socat.service.d

echo "== upgrade (reinstall over itself) keeps a changed conffile and the state"
echo '# local change' >> /etc/meshshim/mesh.conf
uid=$(id -u meshshim)
apt-get install -y -qq --reinstall "./$deb" >/tmp/reinstall.log 2>&1
check "reinstall" [ $? = 0 ]
check "... keeps the admin's mesh.conf" grep -q '^# local change' /etc/meshshim/mesh.conf
check "... keeps the user's uid" [ "$(id -u meshshim)" = "$uid" ]
check "... keeps the CA in /var/lib/meshshim" test -d /var/lib/meshshim/ca

echo "== remove, then purge"
apt-get remove -y -qq meshshim >/tmp/remove.log 2>&1
check "remove" [ $? = 0 ]
check "... the binaries are gone" sh -c '! [ -e /usr/sbin/helperd ] && ! [ -e /usr/bin/meshctl ] && ! [ -e '"$SHIM"' ]'
check "... the conffile stays" test -f /etc/meshshim/mesh.conf
check "... the data stays until purge" test -d /var/lib/meshshim/ca
apt-get purge -y -qq meshshim >/tmp/purge.log 2>&1
check "purge" [ $? = 0 ]
check "... /var/lib/meshshim is gone" test ! -e /var/lib/meshshim
check "... /etc/meshshim and /etc/meshshim.d are gone" sh -c '! [ -e /etc/meshshim ] && ! [ -e /etc/meshshim.d ]'
check "... the system user stays (Debian keeps system users)" id -u meshshim
snapshot > /tmp/after
diff /tmp/before /tmp/after > /tmp/left.diff
sed 's/^/    /' /tmp/left.diff
check "nothing left after purge (paths against before the install)" [ ! -s /tmp/left.diff ]
finish
