#!/bin/bash
# Bad input to the HTTP API and the CLI: the right status or exit code, a
# reason naming what was wrong, and no change of state.
. "$(dirname "$0")/lib.sh"

write_conf n1
start_helperd n1 || { fail "helperd starts"; finish; exit 1; }
A="http://$HTTP_ADDR"
"$MESHCTL" intention create -deny web db >/dev/null
snapshot() { curl -s "$A/v1/connect/intentions" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin), sort_keys=True))' | sha256sum; }
s0=$(snapshot)

req() { # req EXPECTED_CODE REASON_REGEX METHOD PATH [BODY]
	code=$(curl -s -o "$T/body" -w '%{http_code}' -X "$3" ${5:+--data-binary "$5"} "$A$4")
	if [ "$code" = "$1" ] && grep -qiE "$2" "$T/body"; then
		ok "$3 $4 ${5:+$5 }-> $code: $(head -c 90 "$T/body" | tr '\n' ' ')"
	else
		fail "$3 $4 ${5:+$5 }-> $code (want $1 matching /$2/): $(head -c 200 "$T/body")"
	fi
}
I=/v1/connect/intentions
req 400 "json" POST $I '{"SourceName": "web",'
req 400 "json|object" POST $I '[1,2]'
req 400 "empty" POST $I ''
req 400 "action" POST $I '{"SourceName":"web","DestinationName":"db","Action":"maybe"}'
req 400 "SourceName" POST $I '{"SourceName":"","DestinationName":"db","Action":"deny"}'
req 400 "DestinationName" POST $I '{"SourceName":"web","DestinationName":"bad name!","Action":"deny"}'
req 400 "SourceName" POST $I "{\"SourceName\":\"$(printf 'a%.0s' $(seq 100))\",\"DestinationName\":\"db\",\"Action\":\"deny\"}"
req 400 "SourceName" POST $I '{"SourceName":7,"DestinationName":"db","Action":"deny"}'
req 409 "duplicate" POST $I '{"SourceName":"web","DestinationName":"db","Action":"allow"}'
req 404 "not found|unknown|no intention" GET $I/0b7c6f2e-5a1b-4c3d-9e8f-0123456789ab
req 404 "not found|unknown|no intention" DELETE $I/0b7c6f2e-5a1b-4c3d-9e8f-0123456789ab
req 400 "id" GET $I/not-a-uuid
req 404 "not found|no intention" GET "$I/exact?source=web&destination=nothere"
req 400 "source" GET "$I/exact?destination=db"
req 400 "source|destination|name" GET "$I/check?source=bad%20name&destination=db"
req 405 "allow" PATCH $I
# Each intention route's methods (the route table): a wrong one is a 405
# naming the allowed ones, before any other check of the request.
req 405 "allowed: GET\|PUT\|DELETE" POST "$I/exact?source=web&destination=db"
req 405 "allowed: GET\|PUT\|DELETE" POST "$I/exact"
req 405 "allowed: GET\|PUT\|DELETE" POST $I/0b7c6f2e-5a1b-4c3d-9e8f-0123456789ab
req 405 "allowed: GET\)" DELETE "$I/check?source=web&destination=db"
req 405 "allowed: GET\)" PUT "$I/match?by=source&name=web"
req 405 "allowed: POST" GET /v1/agent/connect/authorize
req 405 "allowed: GET\|POST" DELETE "$I/"
req 200 "web" GET "$I/"
req 200 "web" GET "$I/match?by=source&name=web"
req 200 "Allowed" GET "$I/check?source=web&destination=db"
req 400 "by" GET "$I/match?name=web"
req 404 "unknown path" GET /v1/connect/intentionsx
head -c 300000 /dev/zero | tr '\0' ' ' > "$T/big"
req 413 "body" POST $I "@$T/big"
req 404 "unknown path" GET /v1/nope
req 400 "service" GET "/v1/agent/connect/ca/leaf/bad..name"
req 400 "service|json|decode" PUT /v1/agent/service/register '{"Name": "x y", "Port": 1}'
check "none of it changed the intentions" [ "$(snapshot)" = "$s0" ]

# POST /v1/agent/connect/authorize, as Consul's.
TD=$(jq_get "$T/n1/data/ports.json" trust_domain)
authz() { curl -s -X POST --data "{\"Target\": \"$1\", \"ClientCertURI\": \"$2\"}" "$A/v1/agent/connect/authorize"; }
field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[sys.argv[1]])' "$1"; }
out=$(authz db "spiffe://$TD/ns/default/dc/dc1/svc/web")
check "authorize web -> db: not authorized, says why ($(echo "$out" | field Reason))" [ "$(echo "$out" | field Authorized)" = False ]
out=$(authz other "spiffe://$TD/ns/default/dc/dc1/svc/web")
check "authorize web -> other: authorized by default ($(echo "$out" | field Reason))" [ "$(echo "$out" | field Authorized)" = True ]
out=$(authz other "spiffe://elsewhere.mesh/ns/default/dc/dc1/svc/web")
check "authorize from another trust domain: refused ($(echo "$out" | field Reason))" [ "$(echo "$out" | field Authorized)" = False ]
req 400 "json" POST /v1/agent/connect/authorize '{"Target": '


"$MESHCTL" intention create -maybe web db >/dev/null 2>&1; rc=$?
check "meshctl: unknown flag exits 1" [ "$rc" = 1 ]
"$MESHCTL" intention create -deny 'bad name' db >/dev/null 2>"$T/err"; rc=$?
check_expr "meshctl: invalid name exits 1 with a reason (exit $rc: $(head -c 80 "$T/err"))" '[ "$rc" = 1 ] && [ -s "$T/err" ]'
"$MESHCTL" intention check web db >/dev/null; rc=$?
check "meshctl intention check: Denied exits 1" [ "$rc" = 1 ]
"$MESHCTL" intention check web other >/dev/null; rc=$?
check "meshctl intention check: Allowed exits 0" [ "$rc" = 0 ]
"$MESHCTL" -http-addr 127.0.0.1:1 intention check web db >/dev/null 2>&1; rc=$?
check "meshctl intention check: error exits 2" [ "$rc" = 2 ]
out=$("$MESHCTL" intention match -destination db)
check "meshctl intention match prints '$out'" [ "$out" = "web => db (deny)" ]
check "helperd still alive" kill -0 "$HELPERD_PID"

# A second helperd on the same configuration cannot start (the control
# socket is taken) and undoes only what it did: the running one's
# ports.json stays (the old failed start removed it).
"$HELPERD" -c "$T/n1/mesh.conf" > "$T/second.log" 2>&1; rc=$?
check_expr "a second helperd on the same data_dir exits 1 ($rc: $(grep -o 'cannot start: .*' "$T/second.log" | head -c 80))" '[ "$rc" = 1 ]'
check "the running helperd's ports.json is still there" [ -s "$T/n1/data/ports.json" ]
check "and it still answers" [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$HTTP_ADDR/v1/agent/self")" = 200 ]
finish
