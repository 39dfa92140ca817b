#!/bin/bash
# The getting-started walkthrough against the installed package, in a new
# network namespace (unshare -n; tests/pkg/in-root.sh). helperd is started
# the way helperd.service starts it (systemd is not PID 1 here): its
# ExecStartPre and ExecStart lines, as User=meshshim with only
# CAP_NET_ADMIN, UMask=0077, RuntimeDirectory=/run/meshshim 0755.
# Clients run as nobody, as services of other users do.
set -u
SHIM=$1
U=/lib/systemd/system/helperd.service
PASS=0 FAIL=0 PIDS=""
ok() { PASS=$((PASS + 1)); echo "ok   - $*"; }
fail() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
check() { local desc=$1; shift; if "$@"; then ok "$desc"; else fail "$desc"; fi; }
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT
not() { ! "$@"; }
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; }
echo_via() { # echo_via PORT [env...]: "hello" back through the mesh?
	port=$1; shift
	[ "$(printf 'hello\n' | as_nobody env "$@" timeout 5 nc -N 127.0.0.1 "$port" 2>/dev/null)" = hello ]
}
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

ip link set lo up
pre=$(sed -n 's/^ExecStartPre=//p' "$U")
start=$(sed -n 's/^ExecStart=//p' "$U")
check "the unit has ExecStartPre and ExecStart" test -n "$pre" -a -n "$start"
install -d -o meshshim -g meshshim -m 0755 /run/meshshim
svc() { # become the command, as helperd.service would run it (call in a subshell)
	umask 0077
	exec setpriv --reuid=meshshim --regid=meshshim --init-groups \
	    --inh-caps=-all,+net_admin --ambient-caps=-all,+net_admin \
	    --bounding-set=-all,+net_admin --no-new-privs -- "$@"
}
# shellcheck disable=SC2086
(svc $pre) > /tmp/check.out 2>&1
check "ExecStartPre ($pre): the packaged mesh.conf passes -check" [ $? = 0 ]
# shellcheck disable=SC2086
svc $start > /tmp/helperd.log 2>&1 &
HPID=$!; PIDS="$PIDS $HPID"
for _ in $(seq 150); do [ -s /var/lib/meshshim/ports.json ] && break; sleep 0.1; done
check "helperd (ExecStart, as meshshim) wrote /var/lib/meshshim/ports.json" test -s /var/lib/meshshim/ports.json
check "it is helperd, as meshshim" sh -c "[ \"\$(cat /proc/$HPID/comm)\" = helperd ] && awk '/^Uid:/ {print \$3}' /proc/$HPID/status | grep -qx $(id -u meshshim)"
check "with CAP_NET_ADMIN only" sh -c "grep -q '^CapEff:.*0000000000001000$' /proc/$HPID/status"
check "the control socket is reachable by other users (0666)" [ "$(stat -c %a /run/meshshim/helperd.sock)" = 666 ]
check "the private keys are 0600" sh -c '[ -n "$(find /var/lib/meshshim -name "*.key")" ] && ! find /var/lib/meshshim -name "*.key" -perm /077 | grep -q .'

socat tcp-l:8181,fork,reuseaddr exec:/bin/cat >/dev/null 2>&1 &
PIDS="$PIDS $!"; wait_port 8181
cp /usr/share/doc/meshshim/examples/getting-started/socat.json /etc/meshshim.d/
check "meshctl reload" meshctl reload
check "meshctl catalog services lists socat" sh -c 'meshctl catalog services | grep -qx socat'
meshctl connect proxy -service web -upstream socat:9191 >/tmp/proxy.log 2>&1 &
PP=$!; PIDS="$PIDS $PP"; wait_port 9191
check "echo through meshctl connect proxy" echo_via 9191
kill "$PP"; wait "$PP" 2>/dev/null
# web is not defined yet: an ad-hoc claim needs a grant (root here, as the
# operator who runs the guide's ad-hoc step); uid nobody may not claim it.
check "echo through the installed shim (MESH_UPSTREAMS), client as root" \
	sh -c '[ "$(printf "hello\n" | env LD_PRELOAD="$1" MESH_SERVICE=web MESH_UPSTREAMS=socat:9191 timeout 5 nc -N 127.0.0.1 9191 2>/dev/null)" = hello ]' _ "$SHIM"
check "... but uid nobody may not claim the undefined name web" \
	not echo_via 9191 LD_PRELOAD="$SHIM" MESH_SERVICE=web MESH_UPSTREAMS=socat:9191
cp /usr/share/doc/meshshim/examples/getting-started/web.json /etc/meshshim.d/
meshctl reload >/dev/null
check "echo through web's registered upstream" echo_via 9191 LD_PRELOAD="$SHIM" MESH_SERVICE=web
check "meshctl intention create -deny web socat" \
	[ "$(meshctl intention create -deny web socat)" = "Created: web => socat (deny)" ]
check "... the connection is refused" sh -c '! printf "hello\n" | setpriv --reuid=nobody --regid=nogroup --clear-groups env LD_PRELOAD='"$SHIM"' MESH_SERVICE=web timeout 5 nc -N 127.0.0.1 9191 | grep -q hello'
check "meshctl intention delete web socat" meshctl intention delete web socat
check "... echo again" echo_via 9191 LD_PRELOAD="$SHIM" MESH_SERVICE=web

# The drop-in that meshes a unit, as the README shows it.
cp /usr/share/doc/meshshim/examples/systemd/socat.service /etc/systemd/system/
check "meshctl systemd enable socat.service" meshctl systemd enable socat.service
d=/etc/systemd/system/socat.service.d/meshshim.conf
check "... LD_PRELOAD is the installed shim" grep -qx "Environment=LD_PRELOAD=$SHIM" "$d"
check "... MESH_SERVICE=socat" grep -qx "Environment=MESH_SERVICE=socat" "$d"
systemd-analyze verify socat.service > /tmp/verify-socat.out 2>&1
r=$?; sed 's/^/    /' /tmp/verify-socat.out
check "systemd-analyze verify socat.service with the drop-in" [ $r = 0 ]
check "meshctl systemd disable socat.service" meshctl systemd disable socat.service
check "... the drop-in is gone" test ! -e /etc/systemd/system/socat.service.d
rm -f /etc/systemd/system/socat.service /etc/meshshim.d/socat.json /etc/meshshim.d/web.json

kill -TERM "$HPID"; wait "$HPID"
check "helperd stops on SIGTERM with exit 0" [ $? = 0 ]
check "... and says so" grep -q 'stopped' /tmp/helperd.log
rm -rf /run/meshshim    # RuntimeDirectory= goes when the service stops
[ "$FAIL" = 0 ] || { echo "--- helperd.log"; tail -30 /tmp/helperd.log; }
echo "walkthrough: $PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
