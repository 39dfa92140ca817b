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
export HELPERD=${HELPERD:-$BUILDDIR/helperd/helperd}
export SHIM=${SHIM:-$BUILDDIR/preload/libmeshshim.so}
export MESHCTL=${MESHCTL:-$BUILDDIR/meshctl/meshctl}
export SRCDIR=${SRCDIR:-$here/../..}
SHIMTESTS=${SHIMTESTS:-$BUILDDIR/tests/shim}
TESTS=${TESTS:-"t_connect t_nonblock t_dup t_closefrom t_fork t_vfork t_exec
  t_threads t_ipv6 t_passthrough t_down t_dns t_fastopen t_inbound"}
# The programs that check what only the shim does: "skip" without it.
SHIM_ONLY="t_dns t_down t_inbound"
# The programs that make no mesh connection (all their connects must pass
# through untouched): helperd's connection count does not grow.
NO_MESH="t_passthrough"

# lib.sh: the temp dir, the pids stopped at exit, ok/fail/skip counting,
# and the exit check of every helperd (status, sanitizer reports).
. "$SRCDIR/tests/integration/lib.sh"
die() { fail "$*"; finish; exit 1; }

for f in "$HELPERD" "$SHIM"; do [ -e "$f" ] || die "$f missing"; done
command -v socat >/dev/null || die "socat is not installed"

ECHO=$(free_port)
UP=$(free_port)
STRICT=$(free_port)
STRICT_UP=$(free_port)
while [ "$UP" = "$ECHO" ]; do UP=$(free_port); done

# The echo service on 127.0.0.1 and ::1 only (not the wildcard): an
# address the shim should have routed (127.77.x.y, ::ffff:127.77.x.y)
# reaches nothing unless the shim does route it.
socat "tcp4-listen:$ECHO,bind=127.0.0.1,fork,reuseaddr,backlog=512" \
    exec:/bin/cat >/dev/null 2>&1 &
PIDS="$PIDS $!"
socat "tcp6-listen:$ECHO,bind=[::1],ipv6only=1,fork,reuseaddr,backlog=512" \
    exec:/bin/cat >/dev/null 2>&1 &
PIDS="$PIDS $!"
wait_port "$ECHO" || die "echo server did not start"
wait_port "$ECHO" ::1 || die "echo server did not start on ::1"

write_conf shimtest 'default_intention = "allow";' \
    "same_node_mtls = ${SAME_NODE_MTLS:-true};" "services = (
  { name = \"socat\"; port = $ECHO; connect = {}; },
  { name = \"web\"; port = $(free_port); connect = {};
    upstreams = ( { destination_name = \"socat\"; local_bind_port = $UP; },
                  { destination_name = \"strictsvc\"; local_bind_port = $STRICT_UP; } ); },
  { name = \"strictsvc\"; port = $STRICT; connect = {}; inbound = \"strict\"; }
);"
# debug: one log line per connection helperd relays or tracks (counted
# below to show the shim's connections went through helperd)
LOGLEVEL=debug start_helperd shimtest || die "helperd starts"
HPID=$HELPERD_PID
SOCK=$MESH_SOCKET
HLOG=$T/shimtest/helperd.log
# helperd's connections so far: relayed (mTLS or spliced) or tracked
# (the direct same-node path)
conns() { grep -cE ' relaying$|^.*direct connection .* tracked$' "$HLOG"; }

echo "# loopback: $([ -n "${SHIMTEST_IN_NETNS:-}" ] && echo "private network namespace" || echo host); helperd $HELPERD"
printf '%-16s %-8s %-8s\n' "test" "direct" "shim"
printf '%-16s %-8s %-8s\n' "----" "------" "----"
verdict() { # verdict RC OUTFILE
	if [ "$1" -ne 0 ]; then echo FAIL
	elif grep -q '^SKIP' "$2" && grep -q '^PASS' "$2"; then echo "pass*"
	elif grep -q '^SKIP' "$2"; then echo skip
	elif grep -q '^PASS' "$2"; then echo pass
	else echo "FAIL"; fi # ran nothing
}
in_list() { case " $(echo $2) " in *" $1 "*) return 0 ;; esac; return 1; }
for t in $TESTS; do
	exe=$SHIMTESTS/$t
	[ -x "$exe" ] || { printf '%-16s %-8s %-8s\n' "$t" missing missing; fail "$t: $exe missing"; continue; }
	env -u LD_PRELOAD -u MESH_SERVICE MESH_TEST_PORT="$ECHO" MESH_TEST_ECHO="$ECHO" \
	    MESH_TEST_STRICT_PORT="$STRICT" MESH_TEST_STRICT_UP="$STRICT_UP" \
	    timeout 120 "$exe" >"$T/$t.direct.out" 2>&1
	d=$?
	sock=$SOCK
	[ "$t" = t_down ] && sock=$T/proxy.sock
	c0=$(conns)
	env LD_PRELOAD="$SHIM" MESH_SERVICE=web MESH_SOCKET="$sock" \
	    MESH_TEST_PROXY_SOCKET="$T/proxy.sock" MESH_TEST_REAL_SOCKET="$SOCK" \
	    MESH_TEST_PORT="$UP" MESH_TEST_ECHO="$ECHO" \
	    MESH_TEST_STRICT_PORT="$STRICT" MESH_TEST_STRICT_UP="$STRICT_UP" \
	    MESH_TEST_SHIM="$SHIM" \
	    timeout 120 "$exe" >"$T/$t.shim.out" 2>&1
	s=$?
	c1=$(conns)
	vd=$(verdict $d "$T/$t.direct.out")
	vs=$(verdict $s "$T/$t.shim.out")
	printf '%-16s %-8s %-8s %s\n' "$t" "$vd" "$vs" "(helperd connections +$((c1 - c0)))"
	grep -h -e '^FAIL' -e '^SKIP' "$T/$t.direct.out" "$T/$t.shim.out" |
	    grep -v "^SKIP $t: \(needs the shim\|names are answered\)" |
	    sed 's/^/    /'
	[ -n "${VERBOSE:-}" ] && sed 's/^/    | /' "$T/$t.shim.out"
	# Direct: pass, or skip for a program that checks the shim alone.
	if in_list "$t" "$SHIM_ONLY"; then
		check "$t direct: not applicable without the shim (skip, got $vd)" [ "$vd" = skip ]
	else
		check "$t direct: pass (got $vd)" [ "$vd" = pass ]
	fi
	# Shim: a full pass. A skip (shim not loaded, no meshshim_peer_id,
	# a feature helperd does not announce) is a failure here.
	check "$t with the shim: pass (got $vs)" [ "$vs" = pass ]
	# The same checks pass both ways: every check that passed directly
	# passed with the shim too.
	grep '^PASS ' "$T/$t.direct.out" | sort -u > "$T/$t.direct.pass"
	grep '^PASS ' "$T/$t.shim.out" | sort -u > "$T/$t.shim.pass"
	lost=$(comm -23 "$T/$t.direct.pass" "$T/$t.shim.pass" | sed 's/^PASS //' | tr '\n' ';')
	check "$t: every check that passed directly passed with the shim${lost:+ (not: $lost)}" [ -z "$lost" ]
	# The shim run went through helperd (a shim that connected straight
	# to the echo server would not be seen by helperd).
	if in_list "$t" "$NO_MESH"; then
		check "$t: no connection through helperd (+$((c1 - c0)))" [ "$c1" = "$c0" ]
	else
		check "$t: its connections went through helperd (+$((c1 - c0)))" [ "$c1" -gt "$c0" ]
	fi
done
echo "(pass* = passed, part skipped; skip = not applicable without the shim)"
# Without MESH_LOG, helperd down: one line per process on stderr, naming
# the socket (issue 11: never fail without a word); MESH_LOG=0: no byte;
# MESH_LOG=1 does speak.
: > "$T/once.err"
for p in t_passthrough t_connect; do
	env -u MESH_LOG LD_PRELOAD="$SHIM" MESH_SERVICE=web MESH_SOCKET="$T/nonexistent.sock" \
	    MESH_UPSTREAMS="socat:$UP" MESH_TEST_PORT="$UP" MESH_TEST_ECHO="$ECHO" \
	    "$SHIMTESTS/$p" >/dev/null 2>"$T/$p.once.err"
	n=$(grep -c '' "$T/$p.once.err")
	printf '%-16s %-8s %-8s\n' "once: $p" "-" "$([ "$n" = 1 ] && echo pass || echo FAIL)"
	sed 's/^/    /' "$T/$p.once.err" | head -3
	check_expr "$p, helperd unreachable, no MESH_LOG: one line naming the socket ($n lines)" \
	    '[ "$n" = 1 ] && grep -q "^meshshim\[[0-9]*\]: cannot reach helperd at $T/nonexistent.sock: " "$T/$p.once.err"'
done
env LD_PRELOAD="$SHIM" MESH_SERVICE=web MESH_SOCKET="$T/nonexistent.sock" MESH_LOG=0 \
    MESH_UPSTREAMS="socat:$UP" MESH_TEST_PORT="$UP" MESH_TEST_ECHO="$ECHO" \
    "$SHIMTESTS/t_passthrough" >/dev/null 2>"$T/quiet.err"
env LD_PRELOAD="$SHIM" MESH_SERVICE=web MESH_SOCKET="$T/nonexistent.sock" MESH_LOG=0 \
    MESH_UPSTREAMS="socat:$UP" "$SHIMTESTS/t_connect" >/dev/null 2>>"$T/quiet.err"
n=$(wc -c < "$T/quiet.err")
printf '%-16s %-8s %-8s\n' "quiet" "-" "$([ "$n" = 0 ] && echo pass || echo FAIL)"
sed 's/^/    /' "$T/quiet.err" | head -5
check "quiet: MESH_LOG=0, helperd unreachable: no byte on stderr ($n bytes)" [ "$n" = 0 ]
env LD_PRELOAD="$SHIM" MESH_SERVICE=web MESH_SOCKET="$SOCK" MESH_LOG=1 \
    MESH_TEST_PORT="$UP" MESH_TEST_ECHO="$ECHO" \
    "$SHIMTESTS/t_connect" >/dev/null 2>"$T/log.err"
grep -q "^meshshim\[[0-9]*\]: connect fd" "$T/log.err"; rc=$?
printf '%-16s %-8s %-8s\n' "MESH_LOG=1" "-" "$([ "$rc" = 0 ] && echo pass || echo FAIL)"
check "MESH_LOG=1: the shim logs its connects on stderr" [ "$rc" = 0 ]
# helperd restart under a running process: one python process connects
# every 100 ms; helperd is stopped, then started again (new outbound
# port). Expect: echo, then ECONNREFUSED in under a second (a connection
# made while helperd stops may see a reset first), then echo.
# It touches FLAG.ok after its sixth connection and FLAG.refused at its
# first refusal (helperd is started again only then).
env LD_PRELOAD="$SHIM" MESH_SERVICE=web MESH_SOCKET="$SOCK" python3 -c '
import socket, sys, time, os
port, flag = int(sys.argv[1]), sys.argv[2]
seen = []
for i in range(300):
    t = time.time()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"r\n"); ok = s.recv(2) == b"r\n"; s.close()
        res = "ok" if ok else "noecho"
    except OSError as e:
        res = "refused" if e.errno == 111 else "err%d" % e.errno
    if time.time() - t > 1.0: res += "-slow"
    if not seen or seen[-1] != res: seen.append(res)
    if res == "refused": open(flag + ".refused", "w").close()
    # a connection caught by the stopping helperd may be reset (err104)
    # before new ones are refused
    want = (["ok", "refused", "ok"], ["ok", "err104", "refused", "ok"])
    if seen in want and i > 5: break
    if i == 5: open(flag + ".ok", "w").close()
    time.sleep(0.1)
print(" ".join(seen))
sys.exit(0 if seen in want else 1)
' "$UP" "$T/restart" >"$T/restart.out" 2>&1 &
RPID=$!
PIDS="$PIDS $RPID"
for _ in $(seq 1 200); do [ -e "$T/restart.ok" ] && break; sleep 0.05; done
stop_helperd "$HPID"; rc=$?
check "helperd stops on SIGTERM (exit $rc)" [ "$rc" = 0 ]
for _ in $(seq 1 200); do [ -e "$T/restart.refused" ] && break; sleep 0.05; done
start_helperd shimtest || fail "helperd starts again"
wait "$RPID"; rc=$?
printf '%-16s %-8s %-8s\n' "helperd restart" "-" "$([ "$rc" = 0 ] && echo pass || echo FAIL)"
check "helperd restart: echo, refused while down, echo again ($(cat "$T/restart.out"))" [ "$rc" = 0 ]
check "helperd alive at the end" kill -0 "$HELPERD_PID"
finish
