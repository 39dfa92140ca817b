#!/bin/bash
# same_node_mtls = false: same-node pairs skip TLS, identity and intentions
# still apply, and bytes arrive intact.
# Part 1, helperd with CAP_NET_ADMIN: the shim connects straight to the
# local service (helperd carries no byte), a live deny still closes an
# open session within 1 s (SOCK_DESTROY), the tracking table prunes.
# Part 2, helperd without CAP_NET_ADMIN: the spliced relay, as before.
. "$(dirname "$0")/lib.sh"

ECHO=$(free_port); UP=$(free_port)
start_echo "$ECHO"
S=$SRCDIR/tests/integration/session.py

# stats: DirectConnections / Connections of /v1/agent/self
stat() { curl -s "http://$HTTP_ADDR/v1/agent/self" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Stats"][sys.argv[1]])' "$1"; }
# who holds the established connection(s) to the echo port: process names
echo_peers() { ss -tnpH state established "( dport = :$ECHO )" | grep -o '(("[^"]*"' | tr -d '("' | sort -u | tr '\n' ' '; }

# session_deny NAME: a held session is closed within 1 s by a deny; new
# connections are refused while denied and work again after delete.
session_deny() {
	name=$1
	rm -f "$T/s.json"
	meshed web env MESH_UPSTREAMS="socat:$UP" python3 "$S" "$UP" 60 "$T/s.json" 0.05 &
	SPID=$!; PIDS="$PIDS $SPID"
	for _ in $(seq 60); do [ -s "$T/s.json" ] && [ "$(jq_get "$T/s.json" ok)" -gt 2 ] && break; sleep 0.05; done
	peers=$(echo_peers)
	if [ "$name" = direct ]; then
		check "$name: the session's peer is the echo service itself (ss: $peers)" [ "$peers" = "python3 " ]
		rel=$(stat Connections) trk=$(stat DirectConnections)
		check_expr "$name: helperd relays nothing, tracks 1 ($rel relayed, $trk tracked)" \
		    '[ "$rel" = 0 ] && [ "$trk" = 1 ]'
	else
		check "$name: helperd holds the connection to the echo service (ss: $peers)" [ "$peers" = "helperd " ]
		rel=$(stat Connections) trk=$(stat DirectConnections)
		check_expr "$name: helperd relays it ($rel relayed, $trk tracked)" \
		    '[ "$rel" -ge 1 ] && [ "$trk" = 0 ]'
	fi
	t0=$(python3 -c 'import time; print(time.time())')
	"$MESHCTL" intention create -deny web socat >/dev/null
	for _ in $(seq 40); do [ "$(jq_get "$T/s.json" closed_at)" != None ] && break; sleep 0.05; done
	dt=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.3f" % (d["closed_at"]-float(sys.argv[2])) if d["closed_at"] else "open")' "$T/s.json" "$t0")
	check "$name: a deny closes the open session (after $dt s)" python3 -c "import sys; sys.exit(0 if '$dt' != 'open' and float('$dt') <= 1 else 1)"
	wait "$SPID" 2>/dev/null
	out=$(echo_through "$UP" web "socat:$UP")
	check "$name: new connections are refused while denied" [ -z "$out" ]
	"$MESHCTL" intention delete web socat >/dev/null
	out=$(echo_through "$UP" web "socat:$UP")
	check "$name: echo again after delete" [ "$out" = "hello-$UP" ]
}

# --- 1. direct ---------------------------------------------------------
write_conf n1 'same_node_mtls = false;'
sed "s/8181/$ECHO/" "$SRCDIR/examples/getting-started/socat.json" > "$T/n1/services.d/socat.json"
LOGLEVEL=debug start_helperd n1 || { fail "helperd starts"; finish; exit 1; }
grep -q "same-node without TLS" "$T/n1/helperd.log"
check "helperd says same-node pairs skip TLS" [ $? = 0 ]
grep -q "same-node without TLS: direct connections" "$T/n1/helperd.log"
check "helperd says they go direct (it can destroy sockets)" [ $? = 0 ]

out=$(echo_through "$UP" web "socat:$UP")
check "direct: echo" [ "$out" = "hello-$UP" ]
head -c 3000000 /dev/urandom > "$T/blob"
meshed web env MESH_UPSTREAMS="socat:$UP" timeout 20 nc -N 127.0.0.1 "$UP" \
    < "$T/blob" > "$T/blob.back" 2>/dev/null
check "direct: 3 MB echoed intact (half-close)" cmp -s "$T/blob" "$T/blob.back"

# Blocking and non-blocking connect keep their semantics; getpeername
# shows the address the application asked for.
cat > "$T/sem.py" <<'PY'
import errno, select, socket, sys
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=5)
assert s.getpeername() == ("127.0.0.1", port), s.getpeername()
s.sendall(b"b\n"); assert s.recv(2) == b"b\n"
s.close()
s = socket.socket(); s.setblocking(False)
rc = s.connect_ex(("127.0.0.1", port))
assert rc in (0, errno.EINPROGRESS), rc
select.select([], [s], [], 5)
assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
# Linux: the first connect after completion says 0, the next EISCONN.
assert s.connect_ex(("127.0.0.1", port)) in (0, errno.EISCONN)
assert s.connect_ex(("127.0.0.1", port)) == errno.EISCONN
assert s.getpeername() == ("127.0.0.1", port), s.getpeername()
s.setblocking(True); s.sendall(b"n\n"); assert s.recv(2) == b"n\n"
print("ok")
PY
out=$(meshed web env MESH_UPSTREAMS="socat:$UP" timeout 10 python3 "$T/sem.py" "$UP" 2>&1)
check "direct: blocking + non-blocking connect (EINPROGRESS, SO_ERROR, EISCONN), getpeername ($out)" [ "$out" = ok ]

session_deny direct
grep -q "closed direct connection web => socat .*denied by intention" "$T/n1/helperd.log"
check "direct: helperd logs the closed direct connection" [ $? = 0 ]

# The tracking table prunes: 200 connections opened and closed leave
# (almost) nothing tracked a second later, and none went through helperd.
cat > "$T/many.py" <<'PY'
import socket, sys
port, n, ok = int(sys.argv[1]), int(sys.argv[2]), 0
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"x"); ok += s.recv(1) == b"x"; s.close()
print(ok)
PY
before=$(grep -c "direct connection web => socat .* tracked" "$T/n1/helperd.log")
relayed=$(grep -c "relaying" "$T/n1/helperd.log")
out=$(meshed web env MESH_UPSTREAMS="socat:$UP" timeout 60 python3 "$T/many.py" "$UP" 200 2>&1)
check "direct: 200 short connections echo ($out)" [ "$out" = 200 ]
n=$(( $(grep -c "direct connection web => socat .* tracked" "$T/n1/helperd.log") - before ))
check "direct: all 200 were tracked ($n)" [ "$n" -eq 200 ]
check "direct: none went through the relay" [ "$(grep -c relaying "$T/n1/helperd.log")" = "$relayed" ]
# helperd prunes closed connections from its table: wait (10 s at most)
for _ in $(seq 100); do [ "$(stat DirectConnections)" -le 3 ] && break; sleep 0.1; done
left=$(stat DirectConnections)
check "direct: closed connections are dropped from the table ($left left)" [ "$left" -le 3 ]
check "helperd still alive" kill -0 "$HELPERD_PID"
stop_helperd "$HELPERD_PID"; rc=$?
check "helperd stops on SIGTERM (exit $rc)" [ "$rc" = 0 ]

# --- 2. no CAP_NET_ADMIN: the spliced relay ------------------------------
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null &&
    setpriv --bounding-set -net_admin --inh-caps -net_admin true 2>/dev/null; then
	printf '#!/bin/sh\nexec setpriv --bounding-set -net_admin --inh-caps -net_admin "%s" "$@"\n' \
	    "$HELPERD" > "$T/helperd-nocap"
	chmod +x "$T/helperd-nocap"
	write_conf n2 'same_node_mtls = false;'
	cp "$T/n1/services.d/socat.json" "$T/n2/services.d/"
	HELPERD="$T/helperd-nocap" LOGLEVEL=debug start_helperd n2 || { fail "helperd (no CAP_NET_ADMIN) starts"; finish; exit 1; }
	grep -q "same-node without TLS: through helperd's spliced relay (direct connections unavailable: .*CAP_NET_ADMIN" "$T/n2/helperd.log"
	check "relay: without CAP_NET_ADMIN helperd says so" [ $? = 0 ]
	out=$(echo_through "$UP" web "socat:$UP")
	check "relay: echo" [ "$out" = "hello-$UP" ]
	meshed web env MESH_UPSTREAMS="socat:$UP" timeout 20 nc -N 127.0.0.1 "$UP" \
	    < "$T/blob" > "$T/blob.back2" 2>/dev/null
	check "relay: 3 MB echoed intact (splice path, half-close)" cmp -s "$T/blob" "$T/blob.back2"
	session_deny relay
	check "helperd (no CAP_NET_ADMIN) still alive" kill -0 "$HELPERD_PID"
else
	skip "same_node_mtls = false without CAP_NET_ADMIN (the spliced relay)" "needs root and setpriv"
fi
finish
