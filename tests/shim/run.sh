#!/bin/bash
# tests/shim/run.sh: every shim test program against a real helperd, with
# the shim and without it (directly to the echo server, to compare), and
# a pass/fail table. Exit status non-zero if anything failed.
#
# Environment (meson sets them; defaults for a manual run from the tree):
#   HELPERD   helperd binary       [$BUILDDIR/helperd/helperd]
#   SHIM      libmeshshim.so       [$BUILDDIR/preload/libmeshshim.so]
#   SHIMTESTS dir of the t_* programs [$BUILDDIR/tests/shim]
#   KEEP=1    keep the temp dir; VERBOSE=1 print every program's output
#   SAME_NODE_MTLS=false  run helperd with same_node_mtls = false: as root
#             (CAP_NET_ADMIN), the shim's connections to socat go direct;
#             t_inbound's strict service stays on the spliced relay, which
#             publishes its connections for the service's ACCEPT.
set -u
# As root, run in a private network namespace (its own loopback and
# ephemeral ports: no clash with whatever else runs on the machine).
# NO_NETNS=1 runs on the host's loopback.
if [ -z "${SHIMTEST_IN_NETNS:-}" ] && [ -z "${NO_NETNS:-}" ] &&
    command -v ip >/dev/null && unshare -n true 2>/dev/null; then
	export SHIMTEST_IN_NETNS=1
	exec unshare -n bash -c 'ip link set lo up && exec bash "$0" "$@"' "$0" "$@"
fi
here=$(cd "$(dirname "$0")" && pwd)
BUILDDIR=${BUILDDIR:-$here/../../build}
HELPERD=${HELPERD:-$BUILDDIR/helperd/helperd}
SHIM=${SHIM:-$BUILDDIR/preload/libmeshshim.so}
SHIMTESTS=${SHIMTESTS:-$BUILDDIR/tests/shim}
TESTS=${TESTS:-"t_connect t_nonblock t_dup t_closefrom t_fork t_vfork t_exec
  t_threads t_ipv6 t_passthrough t_down t_dns t_fastopen t_inbound"}

T=$(mktemp -d /tmp/shimtest.XXXXXX)
PIDS=""
FAILED=0
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	if [ "$FAILED" -ne 0 ] || [ -n "${KEEP:-}" ]; then
		echo "# logs kept in $T"
	else
		rm -rf "$T"
	fi
}
trap cleanup EXIT
die() { echo "run.sh: $*" >&2; FAILED=1; exit 1; }

for f in "$HELPERD" "$SHIM"; do [ -e "$f" ] || die "$f missing"; done
command -v socat >/dev/null || die "socat is not installed"

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
	for _ in $(seq 1 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}
jq_get() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

ECHO=$(free_port)
UP=$(free_port)
STRICT=$(free_port)
STRICT_UP=$(free_port)
while [ "$UP" = "$ECHO" ]; do UP=$(free_port); done

# The echo service, dual-stack so the direct IPv6 run has a peer too.
socat "tcp6-listen:$ECHO,ipv6only=0,fork,reuseaddr,backlog=512" \
    exec:/bin/cat >/dev/null 2>&1 &
PIDS="$PIDS $!"
wait_port "$ECHO" || die "echo server did not start"

mkdir -p "$T/services.d" "$T/data"
cat > "$T/mesh.conf" <<CONF
node = "shimtest";
data_dir = "$T/data";
socket = "$T/helperd.sock";
http_addr = "127.0.0.1:0";
mesh_port = 0;
services_dir = "$T/services.d";
default_intention = "allow";
same_node_mtls = ${SAME_NODE_MTLS:-true};
services = (
  { name = "socat"; port = $ECHO; connect = {}; },
  { name = "web"; port = $(free_port); connect = {};
    upstreams = ( { destination_name = "socat"; local_bind_port = $UP; },
                  { destination_name = "strictsvc"; local_bind_port = $STRICT_UP; } ); },
  { name = "strictsvc"; port = $STRICT; connect = {}; inbound = "strict"; }
);
CONF
"$HELPERD" -c "$T/mesh.conf" >"$T/helperd.log" 2>&1 &
HPID=$!
PIDS="$PIDS $HPID"
for _ in $(seq 1 200); do
	[ -s "$T/data/ports.json" ] && break
	kill -0 "$HPID" 2>/dev/null || { cat "$T/helperd.log"; die "helperd died"; }
	sleep 0.05
done
[ -s "$T/data/ports.json" ] || die "helperd wrote no ports.json"
SOCK=$T/helperd.sock

echo "# loopback: ${SHIMTEST_IN_NETNS:+private network namespace}${SHIMTEST_IN_NETNS:-host}; helperd $HELPERD"
printf '%-16s %-8s %-8s\n' "test" "direct" "shim"
printf '%-16s %-8s %-8s\n' "----" "------" "----"
verdict() { # verdict RC OUTFILE
	if [ "$1" -ne 0 ]; then echo FAIL
	elif grep -q '^SKIP' "$2" && grep -q '^PASS' "$2"; then echo "pass*"
	elif grep -q '^SKIP' "$2"; then echo skip
	elif grep -q '^PASS' "$2"; then echo pass
	else echo "FAIL"; fi # ran nothing
}
for t in $TESTS; do
	exe=$SHIMTESTS/$t
	[ -x "$exe" ] || { printf '%-16s %-8s %-8s\n' "$t" missing missing; FAILED=1; continue; }
	env -u LD_PRELOAD -u MESH_SERVICE MESH_TEST_PORT="$ECHO" MESH_TEST_ECHO="$ECHO" \
	    MESH_TEST_STRICT_PORT="$STRICT" MESH_TEST_STRICT_UP="$STRICT_UP" \
	    timeout 120 "$exe" >"$T/$t.direct.out" 2>&1
	d=$?
	sock=$SOCK
	[ "$t" = t_down ] && sock=$T/proxy.sock
	env LD_PRELOAD="$SHIM" MESH_SERVICE=web MESH_SOCKET="$sock" \
	    MESH_TEST_PROXY_SOCKET="$T/proxy.sock" MESH_TEST_REAL_SOCKET="$SOCK" \
	    MESH_TEST_PORT="$UP" MESH_TEST_ECHO="$ECHO" \
	    MESH_TEST_STRICT_PORT="$STRICT" MESH_TEST_STRICT_UP="$STRICT_UP" \
	    MESH_TEST_SHIM="$SHIM" \
	    timeout 120 "$exe" >"$T/$t.shim.out" 2>&1
	s=$?
	vd=$(verdict $d "$T/$t.direct.out")
	vs=$(verdict $s "$T/$t.shim.out")
	printf '%-16s %-8s %-8s\n' "$t" "$vd" "$vs"
	[ "$vd" = FAIL ] && FAILED=1
	[ "$vs" = FAIL ] && FAILED=1
	grep -h -e '^FAIL' -e '^SKIP' "$T/$t.direct.out" "$T/$t.shim.out" |
	    grep -v "^SKIP $t: \(needs the shim\|names are answered\)" |
	    sed 's/^/    /'
	[ -n "${VERBOSE:-}" ] && sed 's/^/    | /' "$T/$t.shim.out"
done
echo "(pass* = passed, part skipped; skip = not applicable without the shim)"
# Silence: no byte on stderr without MESH_LOG, even when helperd is down;
# and MESH_LOG=1 does speak.
env LD_PRELOAD="$SHIM" MESH_SERVICE=web MESH_SOCKET="$T/nonexistent.sock" \
    MESH_UPSTREAMS="socat:$UP" MESH_TEST_PORT="$UP" MESH_TEST_ECHO="$ECHO" \
    "$SHIMTESTS/t_passthrough" >/dev/null 2>"$T/quiet.err"
env LD_PRELOAD="$SHIM" MESH_SERVICE=web MESH_SOCKET="$T/nonexistent.sock" \
    MESH_UPSTREAMS="socat:$UP" "$SHIMTESTS/t_connect" >/dev/null 2>>"$T/quiet.err"
if [ -s "$T/quiet.err" ]; then
	printf '%-16s %-8s %-8s\n' "quiet" "-" "FAIL"; FAILED=1
	sed 's/^/    /' "$T/quiet.err" | head -5
else
	printf '%-16s %-8s %-8s\n' "quiet" "-" "pass"
fi
env LD_PRELOAD="$SHIM" MESH_SERVICE=web MESH_SOCKET="$SOCK" MESH_LOG=1 \
    MESH_TEST_PORT="$UP" MESH_TEST_ECHO="$ECHO" \
    "$SHIMTESTS/t_connect" >/dev/null 2>"$T/log.err"
if grep -q "^meshshim\[[0-9]*\]: connect fd" "$T/log.err"; then
	printf '%-16s %-8s %-8s\n' "MESH_LOG=1" "-" "pass"
else
	printf '%-16s %-8s %-8s\n' "MESH_LOG=1" "-" "FAIL"; FAILED=1
fi
# helperd restart under a running process: one python process connects
# every 100 ms; helperd is stopped, then started again (new outbound
# port). Expect: echo, then ECONNREFUSED in under a second, then echo.
env LD_PRELOAD="$SHIM" MESH_SERVICE=web MESH_SOCKET="$SOCK" python3 -c '
import socket, sys, time, os
port, flag = int(sys.argv[1]), sys.argv[2]
seen = []
for i in range(100):
    t = time.time()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"r\n"); ok = s.recv(2) == b"r\n"; s.close()
        res = "ok" if ok else "noecho"
    except OSError as e:
        res = "refused" if e.errno == 111 else "err%d" % e.errno
    if time.time() - t > 1.0: res += "-slow"
    if not seen or seen[-1] != res: seen.append(res)
    if seen == ["ok", "refused", "ok"] and i > 5: break
    if i == 5: open(flag, "w").close()
    time.sleep(0.1)
print(" ".join(seen))
sys.exit(0 if seen == ["ok", "refused", "ok"] else 1)
' "$UP" "$T/restart.flag" >"$T/restart.out" 2>&1 &
RPID=$!
for _ in $(seq 1 100); do [ -e "$T/restart.flag" ] && break; sleep 0.05; done
kill -TERM "$HPID"; wait "$HPID" 2>/dev/null
sleep 0.5
rm -f "$T/data/ports.json"
"$HELPERD" -c "$T/mesh.conf" >>"$T/helperd.log" 2>&1 &
HPID=$!
PIDS="$PIDS $HPID"
if wait "$RPID"; then
	printf '%-16s %-8s %-8s\n' "helperd restart" "-" "pass"
else
	printf '%-16s %-8s %-8s\n' "helperd restart" "-" "FAIL"; FAILED=1
	sed 's/^/    /' "$T/restart.out"
fi
for _ in $(seq 1 100); do [ -s "$T/data/ports.json" ] && break; sleep 0.05; done
kill -0 "$HPID" 2>/dev/null || { echo "helperd died during the tests"; FAILED=1; }
if [ "$FAILED" -ne 0 ]; then
	echo "shim tests: FAILED"
	exit 1
fi
echo "shim tests: all passed"
