#!/bin/bash
# The stream protocol of sessions between helperds (relay_stream.c) on the
# wire, spoken by hand (tests/integration/stream_wire.py) to the mesh port
# with web's real leaf: ALPN agreed, R then the echo and F per stream,
# three streams on one session after O (one of 256 KiB), malformed frames
# and frames out of place end the session and nothing else, a session
# without the ALPN is one plain connection, a deny made while a session
# waits between streams refuses its next stream with the reason (X);
# helperd survives it all.
. "$(dirname "$0")/lib.sh"

ECHO=$(free_port)
start_echo "$ECHO"
write_conf n1
sed "s/8181/$ECHO/" "$SRCDIR/examples/getting-started/socat.json" > "$T/n1/services.d/socat.json"
start_helperd n1 || { fail "helperd starts"; finish; exit 1; }
TD=$(jq_get "$T/n1/data/ports.json" trust_domain)
curl -s "http://$HTTP_ADDR/v1/agent/connect/ca/leaf/web" > "$T/leaf.json"
python3 - "$T" <<'PY'
import json, sys
d = json.load(open(sys.argv[1] + "/leaf.json"))
open(sys.argv[1] + "/web.pem", "w").write(d["CertPEM"])
open(sys.argv[1] + "/web.key", "w").write(d["PrivateKeyPEM"])
PY
curl -s "http://$HTTP_ADDR/v1/agent/connect/ca/roots" | python3 -c '
import json,sys; d=json.load(sys.stdin); print("".join(r["RootCert"] for r in d["Roots"]))' > "$T/roots.pem"
python3 "$SRCDIR/tests/integration/stream_wire.py" 127.0.0.1 "$MESH_PORT" \
    "socat.default.dc1.internal.$TD" "$T/web.pem" "$T/web.key" "$T/roots.pem" \
    "$MESHCTL" > "$T/wire.out" 2>&1
cat "$T/wire.out"
PASS=$((PASS + $(grep -c '^ok' "$T/wire.out")))
FAIL=$((FAIL + $(grep -c '^FAIL' "$T/wire.out")))
check "the wire checks ran (15 expected, $(grep -c '^ok\|^FAIL' "$T/wire.out") reported)" [ "$(grep -c '^ok\|^FAIL' "$T/wire.out")" = 15 ]
check "helperd survived all of it" kill -0 "$HELPERD_PID"
finish
