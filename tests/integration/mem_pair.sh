#!/bin/bash
# A same-node mTLS pair: its two TLS ends talk through memory inside
# helperd (relay_mem.c), no socketpair. Through it, with real socat, nc
# and python clients under the shim: 8 MiB each way at once (the inbound
# half moves to another worker on the way), a half-close from the client
# and one from the service, the client's SPIFFE identity verified by the
# server end, a deny intention cutting an open session, and 2 fds in
# helperd per pair (the app's, the service's).
. "$(dirname "$0")/lib.sh"

command -v socat >/dev/null || skip_test "socat not installed"
command -v nc >/dev/null || skip_test "nc not installed"

SVC=$(free_port); UP=$(free_port)
PY="$SRCDIR/tests/integration/mem_pair.py"
mkdir -p "$T/svc"
python3 "$PY" serve "$SVC" "$T/svc" &
PIDS="$PIDS $!"
wait_port "$SVC"
write_conf n1 'default_intention = "allow";' 'same_node_mtls = true;'
cat > "$T/n1/services.d/mp.json" <<EOF
{ "service": { "name": "mp", "port": $SVC, "connect": { "proxy": {} } } }
EOF
# Two workers whatever the machine: a bulk pair's inbound half moves to
# the other one (the link then crosses threads). Debug log: the move.
HELPERD_ARGS="-workers 2" LOGLEVEL=debug start_helperd n1 ||
    { fail "helperd starts"; finish; exit 1; }
client() { env LD_PRELOAD="$SHIM" MESH_SERVICE=web MESH_UPSTREAMS="mp:$UP" "$@"; }

# Both ways at once, 8 MiB each, through socat.
N=$((8 * 1024 * 1024))
head -c "$N" /dev/urandom > "$T/payload"
{ echo "BULK $N"; cat "$T/payload"; } > "$T/bulk.in"
client timeout 120 socat -t 60 - "TCP:127.0.0.1:$UP" < "$T/bulk.in" > "$T/bulk.out"
check "socat through the pair ended cleanly (exit $?)" [ $? = 0 ]
for _ in $(seq 50); do [ -s "$T/svc/bulk.got" ] && break; sleep 0.1; done
want_got="$(sha256sum < "$T/payload" | cut -d' ' -f1) $N"
check "the service got the client's 8 MiB intact" [ "$(cat "$T/svc/bulk.got" 2>/dev/null)" = "$want_got" ]
got_sent="$(sha256sum < "$T/bulk.out" | cut -d' ' -f1) $(stat -c %s "$T/bulk.out")"
check "the client got the service's 8 MiB intact" [ "$(cat "$T/svc/bulk.sent" 2>/dev/null)" = "$got_sent" ]
grep -q 'moved to worker' "$T/n1/helperd.log"
check "the bulk pair's inbound half moved to the other worker" [ $? = 0 ]

# Half-close from the client (nc -N): the service reads to its EOF and
# still answers.
out=$(printf 'HALF\nabcdefgh' | client timeout 20 nc -N 127.0.0.1 "$UP")
check "client half-close reached the service, its answer came back ($out)" [ "$out" = "got 8" ]

# Half-close from the service: the client sees EOF after "bye" and its
# own bytes still reach the service.
rm -f "$T/svc/shut.got"
out=$(client timeout 20 python3 "$PY" shutfirst "$UP")
check "service half-close reached the client ($out)" [ "$out" = "eof-after bye" ]
for _ in $(seq 50); do [ -s "$T/svc/shut.got" ] && break; sleep 0.1; done
check "bytes sent after the service's half-close arrived ($(cat "$T/svc/shut.got" 2>/dev/null))" \
    [ "$(cat "$T/svc/shut.got" 2>/dev/null)" = 2400 ]

# 20 idle connections held open: helperd's fds grow by 2 per pair.
relayed() { curl -s "http://$HTTP_ADDR/v1/agent/self" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Stats"]["Connections"])'; }
for _ in $(seq 100); do [ "$(relayed)" = 0 ] && break; sleep 0.1; done
fd0=$(ls /proc/"$HELPERD_PID"/fd | wc -l)
client python3 - "$UP" "$T/hold.ready" "$T/hold.stop" <<'PY' &
import os, socket, sys, time
port, ready, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3]
socks = []
for i in range(20):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"ECHO\nhello %d\n" % i)
    f = s.makefile("rb")
    assert f.readline() == b"ECHO\n"
    assert f.readline() == b"hello %d\n" % i
    socks.append((s, f))
open(ready, "w").write("20\n")
while not os.path.exists(stop):
    time.sleep(0.1)
PY
HOLD=$!; PIDS="$PIDS $HOLD"
for _ in $(seq 200); do [ -s "$T/hold.ready" ] && break; sleep 0.1; done
check "20 idle connections open through the pair" [ -s "$T/hold.ready" ]
sleep 0.5
fd1=$(ls /proc/"$HELPERD_PID"/fd | wc -l)
n=$(relayed)
echo "    helperd fds: $fd0 idle, $fd1 holding 20 pairs ($n relayed halves)"
check "40 halves relayed" [ "$n" = 40 ]
# The holder's control connection to helperd is one more.
check "2 fds per same-node pair in helperd ($((fd1 - fd0)) for 20 and the holder's control connection)" [ $((fd1 - fd0)) -le 41 ]

# Both halves are TLS, and the server end verified the client's SPIFFE
# identity.
"$MESHCTL" conns -json > "$T/conns.json"
python3 - "$T/conns.json" <<'PY'
import json, sys
cs = [c for c in json.load(open(sys.argv[1])) if c["Destination"] == "mp"]
ins = [c for c in cs if c["Direction"] == "inbound"]
ok = (len(cs) == 40 and all(c["TLS"] and c["SameNode"] for c in cs) and
      len(ins) == 20 and
      all(c.get("PeerSPIFFE", "").endswith("/svc/web") for c in ins))
print("    %d connections, inbound peers %s" %
      (len(cs), sorted({c.get("PeerSPIFFE") for c in ins})))
sys.exit(0 if ok else 1)
PY
check "every half is TLS; each inbound half verified spiffe://.../svc/web" [ $? = 0 ]
touch "$T/hold.stop"; wait "$HOLD" 2>/dev/null

# A deny intention cuts an open session through the pair.
S=$SRCDIR/tests/integration/session.py
client python3 "$S" "$UP" 120 "$T/sess.json" 0.05 &
PIDS="$PIDS $!"
for _ in $(seq 200); do
	[ -s "$T/sess.json" ] && [ "$(jq_get "$T/sess.json" ok)" -gt 2 ] && break
	sleep 0.05
done
check "a session echoes through the pair" [ "$(jq_get "$T/sess.json" ok)" -gt 2 ]
out=$("$MESHCTL" intention create -deny web mp)
check "create -deny: $out" [ "$out" = "Created: web => mp (deny)" ]
for _ in $(seq 100); do
	[ "$(jq_get "$T/sess.json" closed_at)" != None ] && break
	sleep 0.1
done
check "the open session was cut ($(jq_get "$T/sess.json" reason))" [ "$(jq_get "$T/sess.json" closed_at)" != None ]
grep -q "closing .* connection .* web => mp" "$T/n1/helperd.log"
check "helperd logged the cut" [ $? = 0 ]
out=$(printf 'HALF\nx' | client timeout 10 nc -N 127.0.0.1 "$UP")
check "a new connection is refused under the deny ('$out')" [ -z "$out" ]
"$MESHCTL" intention delete web mp >/dev/null
out=$(printf 'HALF\nxy' | client timeout 10 nc -N 127.0.0.1 "$UP")
check "after delete it flows again ($out)" [ "$out" = "got 2" ]

for _ in $(seq 100); do [ "$(relayed)" = 0 ] && break; sleep 0.1; done
check "no relayed connection left behind" [ "$(relayed)" = 0 ]
fd2=$(ls /proc/"$HELPERD_PID"/fd | wc -l)
check "no fd left behind ($fd0 before, $fd2 after)" [ "$fd2" -le "$fd0" ]
check "helperd still alive" kill -0 "$HELPERD_PID"
finish
