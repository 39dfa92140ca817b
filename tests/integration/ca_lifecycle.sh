#!/bin/bash
# The CA over time: leaf contents (openssl), renewal under a 12 s TTL with
# a session open, root rotation with traffic, pruning of the old root, and
# a truncated root key that must stop helperd without touching the file.
. "$(dirname "$0")/lib.sh"

ECHO=$(free_port); UP=$(free_port)
start_echo "$ECHO"
write_conf n1 'ca = { leaf_ttl = "12s"; allow_short_ttl = true; };'
sed "s/8181/$ECHO/" "$SRCDIR/examples/getting-started/socat.json" > "$T/n1/services.d/socat.json"
start_helperd n1 || { fail "helperd starts"; finish; exit 1; }
S=$SRCDIR/tests/integration/session.py
A="http://$HTTP_ADDR"

# --- the leaf, as openssl sees it
curl -s "$A/v1/agent/connect/ca/leaf/web" > "$T/leaf.json"
curl -s "$A/v1/agent/connect/ca/roots" > "$T/roots.json"
python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
leaf = json.load(open(t + "/leaf.json"))
roots = json.load(open(t + "/roots.json"))
open(t + "/leaf.pem", "w").write(leaf["CertPEM"])
open(t + "/root.pem", "w").write([r for r in roots["Roots"] if r["Active"]][0]["RootCert"])
for k in ("SerialNumber", "CertPEM", "PrivateKeyPEM", "ServiceURI", "ValidAfter", "ValidBefore"):
    assert k in leaf, k
for k in ("ActiveRootID", "TrustDomain", "Roots"):
    assert k in roots, k
PY
check "leaf and roots JSON have Consul's fields" [ $? = 0 ]
TD=$(jq_get "$T/roots.json" TrustDomain)
openssl x509 -in "$T/leaf.pem" -noout -text > "$T/leaf.txt"
check "leaf: SPIFFE URI SAN" grep -q "URI:spiffe://$TD/ns/default/dc/dc1/svc/web" "$T/leaf.txt"
check "leaf: EKU clientAuth + serverAuth" grep -q "TLS Web Server Authentication, TLS Web Client Authentication\|TLS Web Client Authentication, TLS Web Server Authentication" "$T/leaf.txt"
check "leaf: P-256" grep -q "prime256v1\|P-256" "$T/leaf.txt"
check "leaf: CA:FALSE" grep -q "CA:FALSE" "$T/leaf.txt"
check "openssl verify -CAfile root accepts the leaf" openssl verify -CAfile "$T/root.pem" "$T/leaf.pem"

# --- renewal: one session for 30 s while the 12 s leaves renew
serials() { curl -s "$A/v1/agent/connect/ca/leaf/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["SerialNumber"])'; }
LD_PRELOAD="$SHIM" MESH_SERVICE=web MESH_UPSTREAMS="socat:$UP" python3 "$S" "$UP" 30 "$T/long.json" 0.2 &
LONG=$!; PIDS="$PIDS $LONG"
: > "$T/serials"
newfail=0; newok=0
for i in $(seq 1 60); do
	echo "$(serials web) $(serials socat)" >> "$T/serials"
	if [ $((i % 6)) = 0 ]; then
		out=$(echo_through "$UP" web "socat:$UP")
		if [ "$out" = "hello-$UP" ]; then newok=$((newok + 1)); else newfail=$((newfail + 1)); fi
	fi
	sleep 0.5
done
wait "$LONG"; rc=$?
nweb=$(cut -d' ' -f1 "$T/serials" | sort -u | wc -l)
nsoc=$(cut -d' ' -f2 "$T/serials" | sort -u | wc -l)
echo "    distinct leaves seen in 30 s: web $nweb, socat $nsoc; new connections ok $newok, failed $newfail"
echo "    long session: $(cat "$T/long.json")"
check "web's leaf renewed at least twice (3+ serials)" [ "$nweb" -ge 3 ]
check "socat's leaf renewed at least twice" [ "$nsoc" -ge 3 ]
check "the 30 s session kept going, every echo answered" [ "$rc" = 0 ]
check_expr "new connections after each renewal worked ($newok ok, $newfail failed)" '[ "$newfail" = 0 ] && [ "$newok" -ge 9 ]'

# --- rotation with a session open and new connections in a loop
LD_PRELOAD="$SHIM" MESH_SERVICE=web MESH_UPSTREAMS="socat:$UP" python3 "$S" "$UP" 12 "$T/rot.json" 0.1 &
ROT=$!; PIDS="$PIDS $ROT"
old=$(jq_get "$T/roots.json" ActiveRootID)
fails=0; oks=0
for i in $(seq 1 40); do
	if [ "$i" = 10 ]; then
		"$MESHCTL" ca rotate > "$T/rotate.out" 2>&1
		nroots=$(curl -s "$A/v1/agent/connect/ca/roots" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["Roots"]))')
	fi
	out=$(echo_through "$UP" web "socat:$UP")
	if [ "$out" = "hello-$UP" ]; then oks=$((oks + 1)); else fails=$((fails + 1)); fi
	sleep 0.1
done
wait "$ROT"; rc=$?
new=$(curl -s "$A/v1/agent/connect/ca/roots" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ActiveRootID"])')
echo "    rotation: root $old -> $new, $nroots roots trusted; connections ok $oks, failed $fails"
check_expr "meshctl ca rotate made a new active root ($old -> $new)" '[ -n "$old" ] && [ -n "$new" ] && [ "$new" != "$old" ]'
check "both roots trusted right after the rotation ($nroots)" [ "$nroots" = 2 ]
check "zero failed connections across the rotation" [ "$fails" = 0 ]
check "the session open across the rotation kept going" [ "$rc" = 0 ]
new_leaf_root=$(curl -s "$A/v1/agent/connect/ca/leaf/web" | python3 -c 'import json,sys; print(json.load(sys.stdin)["CertPEM"])' > "$T/leaf2.pem"; \
    curl -s "$A/v1/agent/connect/ca/roots" | python3 -c '
import json,sys; d=json.load(sys.stdin); print([r for r in d["Roots"] if r["Active"]][0]["RootCert"])' > "$T/root2.pem"; \
    openssl verify -CAfile "$T/root2.pem" "$T/leaf2.pem" >/dev/null 2>&1 && echo yes)
check "leaves are re-issued under the new root" [ "$new_leaf_root" = yes ]
# Old leaves live at most 12 s: then the old root goes.
for _ in $(seq 1 40); do
	nroots=$(curl -s "$A/v1/agent/connect/ca/roots" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["Roots"]))')
	[ "$nroots" = 1 ] && break
	sleep 0.5
done
check "after the old leaves expired, the old root is dropped" [ "$nroots" = 1 ]
out=$(echo_through "$UP" web "socat:$UP")
check "mesh works after the old root is gone" [ "$out" = "hello-$UP" ]

# --- a truncated root key: refuse to start, name the file, touch nothing
stop_helperd "$HELPERD_PID"
key=$(ls "$T"/n1/data/ca/roots/*.key 2>/dev/null | head -1)
[ -z "$key" ] && key=$(find "$T/n1/data/ca" -name '*.key' -path '*root*' | head -1)
if [ -n "$key" ]; then
	size=$(stat -c %s "$key")
	head -c $((size / 2)) "$key" > "$T/half" && cat "$T/half" > "$key"
	sum0=$(sha256sum "$key" | cut -d' ' -f1)
	rootsum0=$(find "$T/n1/data/ca" -type f -exec sha256sum {} + | sort | sha256sum)
	"$HELPERD" -c "$T/n1/mesh.conf" > "$T/trunc.log" 2>&1 &
	p=$!
	for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$p" 2>/dev/null; then kill "$p"; fail "helperd started with a truncated root key"; else
		wait "$p"; rc=$?
		echo "    $(grep -i error "$T/trunc.log" | head -1)"
		check "helperd refuses to start (exit $rc)" [ "$rc" != 0 ]
		check "the error names the key file" grep -q "$(basename "$key")" "$T/trunc.log"
	fi
	check "the truncated key file is left as it was" [ "$(sha256sum "$key" | cut -d' ' -f1)" = "$sum0" ]
	check "no file of the CA changed (no new root minted)" [ "$(find "$T/n1/data/ca" -type f -exec sha256sum {} + | sort | sha256sum)" = "$rootsum0" ]
else
	fail "could not find the root key file under $T/n1/data/ca"
fi
finish
