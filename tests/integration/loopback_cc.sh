#!/bin/bash
# loopback_congestion: helperd's loopback sockets and the app's socket the
# shim sends to helperd use the configured TCP congestion control; the
# service's own socket keeps the system's; "" leaves them all; a name the
# kernel refuses is logged and left. Read off `ss -tinp` while a
# connection is open.
. "$(dirname "$0")/lib.sh"

command -v ss >/dev/null || skip_test "ss (iproute2) not installed"
SYS=$(sysctl -n net.ipv4.tcp_congestion_control)
WANT=reno
[ "$SYS" = reno ] && WANT=cubic
ECHO=$(free_port); UP=$(free_port)
start_echo "$ECHO"

# cc_of PROG PEERPORT: the congestion control of PROG's established socket
# whose peer port is PEERPORT ("" if none).
cc_of() {
	ss -tinpH state established 2>/dev/null | python3 -c '
import re, sys
prog, peer = sys.argv[1], sys.argv[2]
lines = sys.stdin.read().split("\n")
for head, info in zip(lines[::2], lines[1::2]):
	f = head.split()
	if len(f) < 4 or not f[3].endswith(":" + peer) or "((\"" + prog + "\"" not in head:
		continue
	m = re.match(r"\s*(\w+)\s", info)
	print(m.group(1) if m else "")
	break' "$1" "$2"
}

# one_conn NODE: hold web => socat open, read the three sockets' cc.
one_conn() {
	( sleep 3 ) | meshed web env MESH_UPSTREAMS="socat:$UP" nc 127.0.0.1 "$UP" >/dev/null 2>&1 &
	local nc=$! out
	out=$(jq_get "$T/$1/data/ports.json" outbound_port 2>/dev/null)
	wait_until 3 sh -c "ss -tnH state established '( dport = :$ECHO )' | grep -q ." || true
	APP=$(cc_of nc "$out"); HD=$(cc_of helperd "$ECHO")
	SVC=$(ss -tinpH state established "( sport = :$ECHO )" 2>/dev/null | sed -n '2s/^[[:space:]]*\([a-z0-9_]*\) .*/\1/p')
	kill "$nc" 2>/dev/null; wait "$nc" 2>/dev/null
}

write_conf n1 "loopback_congestion = \"$WANT\";"
sed "s/8181/$ECHO/" "$SRCDIR/examples/getting-started/socat.json" > "$T/n1/services.d/socat.json"
start_helperd n1 || { fail "helperd starts"; finish; exit 1; }
check "ports.json names the outbound port" [ -n "$(jq_get "$T/n1/data/ports.json" outbound_port)" ]
one_conn n1
check "helperd's socket to the service uses $WANT (system: $SYS; saw '$HD')" [ "$HD" = "$WANT" ]
check "the app's socket to helperd uses $WANT, set by the shim (saw '$APP')" [ "$APP" = "$WANT" ]
check "the service's own socket keeps the system's $SYS (saw '$SVC')" [ "$SVC" = "$SYS" ]
stop_helperd "$HELPERD_PID"

write_conf n1 'loopback_congestion = "";'
start_helperd n1 || { fail "helperd starts with loopback_congestion \"\""; finish; exit 1; }
one_conn n1
check "loopback_congestion \"\": helperd's socket keeps $SYS (saw '$HD')" [ "$HD" = "$SYS" ]
check "loopback_congestion \"\": the app's socket keeps $SYS (saw '$APP')" [ "$APP" = "$SYS" ]
stop_helperd "$HELPERD_PID"

write_conf n1 'loopback_congestion = "nosuchcc";'
start_helperd n1 || { fail "helperd starts with an unknown congestion control"; finish; exit 1; }
check "an unknown name is logged once, naming it" grep -q 'loopback_congestion "nosuchcc"' "$T/n1/helperd.log"
check "... and connections still work" [ "$(echo_through "$UP" web "socat:$UP")" = "hello-$UP" ]
one_conn n1
check "... with the system's $SYS on helperd's socket (saw '$HD')" [ "$HD" = "$SYS" ]
finish
