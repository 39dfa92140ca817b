#!/bin/bash
# same_node_mtls = false: same-node pairs skip TLS (spliced, zero-copy)
# but identity and intentions still apply, and bytes arrive intact.
. "$(dirname "$0")/lib.sh"

ECHO=$(free_port); UP=$(free_port)
start_echo "$ECHO"
write_conf n1 'same_node_mtls = false;'
sed "s/8181/$ECHO/" "$SRCDIR/examples/getting-started/socat.json" > "$T/n1/services.d/socat.json"
start_helperd n1 || { fail "helperd starts"; finish; exit 1; }
grep -q "same-node without TLS" "$T/n1/helperd.log"
check "helperd says same-node pairs skip TLS" [ $? = 0 ]

out=$(echo_through "$UP" web "socat:$UP")
check "echo through the plain same-node path" [ "$out" = "hello-$UP" ]
head -c 3000000 /dev/urandom > "$T/blob"
LD_PRELOAD="$SHIM" MESH_SERVICE=web MESH_UPSTREAMS="socat:$UP" timeout 20 nc -N 127.0.0.1 "$UP" \
    < "$T/blob" > "$T/blob.back" 2>/dev/null
check "3 MB echoed intact (splice path, half-close)" cmp -s "$T/blob" "$T/blob.back"

S=$SRCDIR/tests/integration/session.py
LD_PRELOAD="$SHIM" MESH_SERVICE=web MESH_UPSTREAMS="socat:$UP" python3 "$S" "$UP" 20 "$T/s.json" 0.05 &
PIDS="$PIDS $!"
for _ in $(seq 60); do [ -s "$T/s.json" ] && [ "$(jq_get "$T/s.json" ok)" -gt 2 ] && break; sleep 0.05; done
t0=$(python3 -c 'import time; print(time.time())')
"$MESHCTL" intention create -deny web socat >/dev/null
for _ in $(seq 40); do [ "$(jq_get "$T/s.json" closed_at)" != None ] && break; sleep 0.05; done
dt=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.3f" % (d["closed_at"]-float(sys.argv[2])) if d["closed_at"] else "open")' "$T/s.json" "$t0")
check "a deny closes the plain same-node session too (after $dt s)" python3 -c "import sys; sys.exit(0 if '$dt' != 'open' and float('$dt') <= 1 else 1)"
out=$(echo_through "$UP" web "socat:$UP")
check "new connections are refused while denied" [ -z "$out" ]
"$MESHCTL" intention delete web socat >/dev/null
out=$(echo_through "$UP" web "socat:$UP")
check "echo again after delete" [ "$out" = "hello-$UP" ]
check "helperd still alive" kill -0 "$HELPERD_PID"
finish
