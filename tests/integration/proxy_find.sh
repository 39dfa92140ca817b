#!/bin/bash
# meshctl connect proxy finds helperd the way every other command does
# (issue 11, part 8): from the HTTP address (-http-addr, $MESH_HTTP_ADDR,
# $CONSUL_HTTP_ADDR) it asks helperd for its control socket
# (Config.ControlSocket of /v1/agent/self); -socket or $MESH_SOCKET
# override. When helperd cannot be reached or the socket cannot be used it
# exits 1 at once with the reason, instead of running with connections
# that all fail (nc then exited 0 with nothing echoed).
. "$(dirname "$0")/lib.sh"

ECHO=$(free_port)
start_echo "$ECHO"
write_conf n1 "services = ( { name = \"socat\"; port = $ECHO; connect = {}; } );"
start_helperd n1 || { fail "helperd starts"; finish; exit 1; }
SOCK="$T/n1/helperd.sock"
# Nothing from the test's environment points at the socket: only the
# HTTP address (as the walkthrough's user has it).
unset MESH_SOCKET MESH_HTTP_ADDR

self_sock=$(curl -s "http://$HTTP_ADDR/v1/agent/self" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Config"]["ControlSocket"])')
check "GET /v1/agent/self names the control socket: $self_sock" [ "$self_sock" = "$SOCK" ]

# proxy_run NAME ENV... -- ARGS...: a connect proxy in the background; sets
# PPID_ and its log $T/NAME.log. Returns once it said it is connected or
# exited.
proxy_run() {
	name=$1; shift
	envs=()
	while [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	env "${envs[@]}" "$MESHCTL" connect proxy -service web "$@" >"$T/$name.log" 2>&1 &
	PPID_=$!; PIDS="$PIDS $PPID_"
	for _ in $(seq 100); do
		grep -q "connected to helperd" "$T/$name.log" && return 0
		kill -0 "$PPID_" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}
# through PORT: a line through the proxy; what came back
through() { printf 'hello-%s\n' "$1" | timeout 5 nc -N 127.0.0.1 "$1" 2>/dev/null; }

# way DESC ENV... -- ARGS...: a proxy found helperd that way, and a line
# goes through it.
way() {
	desc=$1; shift
	PX=$(free_port)
	if proxy_run "p$PX" "$@" -upstream "socat:$PX"; then
		ok "proxy with $desc (no -socket, no MESH_SOCKET): $(grep -o 'connected to helperd at [^ ]*' "$T/p$PX.log")"
	else
		fail "proxy with $desc: not connected: $(tail -2 "$T/p$PX.log" | tr '\n' ' ')"
	fi
	got=$(through "$PX")
	check "... and a line goes through it to socat (got '$got')" [ "$got" = "hello-$PX" ]
	kill "$PPID_" 2>/dev/null; wait "$PPID_" 2>/dev/null
}
way "MESH_HTTP_ADDR" MESH_HTTP_ADDR="$HTTP_ADDR" --
way "CONSUL_HTTP_ADDR" CONSUL_HTTP_ADDR="$HTTP_ADDR" --
way "-http-addr" -- -http-addr "$HTTP_ADDR"

# -socket and $MESH_SOCKET win over what helperd says.
PX=$(free_port)
if proxy_run p4 MESH_HTTP_ADDR=127.0.0.1:1 -- -socket "$SOCK" -upstream "socat:$PX"; then
	got=$(through "$PX")
	check "-socket given: used without asking the HTTP API (got '$got')" [ "$got" = "hello-$PX" ]
else
	fail "-socket given: $(tail -2 "$T/p4.log" | tr '\n' ' ')"
fi
kill "$PPID_" 2>/dev/null; wait "$PPID_" 2>/dev/null

# fails PATTERN NAME ENV... -- ARGS...: the proxy exits 1 within 10 s,
# saying PATTERN on stderr.
fails() {
	pat=$1 name=$2; shift 2
	envs=()
	while [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	PX=$(free_port)
	env "${envs[@]}" timeout 10 "$MESHCTL" connect proxy -service web -upstream "socat:$PX" "$@" >"$T/$name.log" 2>&1
	rc=$?
	if [ $rc = 1 ] && grep -q -- "$pat" "$T/$name.log"; then
		ok "$name: exit 1: $(grep -- "$pat" "$T/$name.log" | head -1 | sed 's/^.*\] //')"
	else
		fail "$name: exit $rc (want 1 and '$pat'): $(tail -3 "$T/$name.log" | tr '\n' ' ')"
	fi
}
DEAD=$(free_port)
fails "cannot reach helperd at 127.0.0.1:$DEAD" "no helperd at the HTTP address" MESH_HTTP_ADDR="127.0.0.1:$DEAD" --
grep -q "set -http-addr or \$MESH_HTTP_ADDR" "$T/no helperd at the HTTP address.log" &&
	ok "... and says how meshctl finds helperd" || fail "... no hint in: $(cat "$T/no helperd at the HTTP address.log")"
fails "cannot reach helperd at $T/nothing.sock" "MESH_SOCKET names no socket" MESH_HTTP_ADDR="$HTTP_ADDR" MESH_SOCKET="$T/nothing.sock" --
grep -q 'came from \$MESH_SOCKET' "$T/MESH_SOCKET names no socket.log" &&
	ok "... and says where the path came from" || fail "... source not named: $(cat "$T/MESH_SOCKET names no socket.log")"
# A socket that accepts but never answers HELLO (not helperd).
socat UNIX-LISTEN:"$T/mute.sock",fork EXEC:"sleep 30" >/dev/null 2>&1 &
PIDS="$PIDS $!"
for _ in $(seq 100); do [ -S "$T/mute.sock" ] && break; sleep 0.05; done
fails "did not answer HELLO" "a socket that never answers" -- -socket "$T/mute.sock"
# A socket that closes at once.
socat UNIX-LISTEN:"$T/shut.sock",fork EXEC:"true" >/dev/null 2>&1 &
PIDS="$PIDS $!"
for _ in $(seq 100); do [ -S "$T/shut.sock" ] && break; sleep 0.05; done
fails "did not accept service" "a socket that closes at once" -- -socket "$T/shut.sock"
# The socket helperd names is not one meshctl trusts: another user owns it.
if [ "$(id -u)" = 0 ]; then
	chown nobody "$SOCK"
	fails "owned by uid $(id -u nobody)" "helperd's socket owned by nobody" MESH_HTTP_ADDR="$HTTP_ADDR" --
	chown 0 "$SOCK"
else
	skip "a control socket owned by another user is refused" "needs root to chown the socket"
fi

stop_helperd "$HELPERD_PID"
finish
