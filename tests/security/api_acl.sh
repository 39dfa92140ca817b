#!/bin/bash
# Issue 12, the API side: what an unprivileged local user (uid nobody,
# run with setpriv) can do to the mesh through helperd's HTTP API and
# its control socket. Each attack must fail with the default ACLs and,
# where that means something, succeed against a deliberately open node
# (acl.enabled = false), so that this test can fail.
. "$(dirname "$0")/../integration/lib.sh"

command -v setpriv >/dev/null || skip_test "setpriv (util-linux) is missing"
id daemon >/dev/null 2>&1 || skip_test "no user daemon"
# nobody runs curl without our curlrc (-q) and without inherited tokens.
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups env -u CURL_HOME -u MESH_HTTP_TOKEN "$@"; }
NB=$T/nobody; mkdir -p "$NB"; chown nobody "$NB"   # what nobody writes
# The build tree may be under /root (0700): nobody runs a public copy.
mkdir -p "$T/pub"; chmod 0755 "$T" "$T/pub"
cp "$MESHCTL" "$T/pub/meshctl"; chmod 0755 "$T/pub/meshctl"; NMESHCTL=$T/pub/meshctl
has_key() { [ -s "$NB/out" ] && grep -q PRIVATE "$NB/out"; }
no_key() { [ -s "$NB/out" ] && ! grep -q PRIVATE "$NB/out"; }
ncurl() { rm -f "$NB/out"; as_nobody curl -q -s -o "$NB/out" -w '%{http_code}' --max-time 10 "$@"; }

# hello SERVICE [TOKEN]: what helperd answers a HELLO on the control socket
hello() {
	python3 - "$MESH_SOCKET" "$@" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(("HELLO " + " ".join(sys.argv[2:]) + "\n").encode())
print(s.makefile().readline().strip())
PY
}

node() { # node NAME [extra conf]: a node with db (user daemon) and own (user nobody)
	n=$1; shift
	write_conf "$n" 'services = ( { name = "db"; port = 1; connect = {}; user = "daemon"; },' \
	    '{ name = "own"; port = 2; connect = {}; user = "nobody"; } );' "$@"
	start_helperd "$n"
}

attacks() { # attacks EXPECT(denied|open) NODE
	want=$1 n=$2
	A="http://$HTTP_ADDR"
	U="$T/$n/http.sock"
	if [ "$want" = denied ]; then bad=403; else bad=200; fi
	roots0=$(curl -s "$A/v1/agent/connect/ca/roots" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ActiveRootID"])')

	code=$(ncurl "$A/v1/agent/connect/ca/leaf/db")
	check "$want: nobody asks for db's leaf (user daemon) over TCP: $code" [ "$code" = $bad ]
	if [ "$want" = open ]; then
		check "open: ... and gets its private key" has_key
	else
		check "denied: ... and no key in the answer" no_key
		code=$(ncurl --unix-socket "$U" "http://x/v1/agent/connect/ca/leaf/db")
		check "denied: ... nor on the unix socket: $code" [ "$code" = 403 ]
		code=$(ncurl "$A/v1/agent/connect/ca/leaf/ghost")
		check "denied: ... nor for a name nobody defines: $code" [ "$code" = 403 ]
	fi

	code=$(ncurl -X POST --data '{"SourceName": "*", "DestinationName": "db", "Action": "allow"}' "$A/v1/connect/intentions")
	check "$want: nobody creates '* => db allow': $code" [ "$code" = $bad ]
	as_nobody "$NMESHCTL" intention create -allow evil db >/dev/null 2>"$T/n.err"; rc=$?
	if [ "$want" = open ]; then
		check "open: meshctl intention create as nobody works" [ $rc = 0 ]
	else
		check "denied: meshctl intention create as nobody exits 1 ($(head -c 70 "$T/n.err"))" [ $rc = 1 ]
		check "denied: no intention was created" [ "$(curl -s "$A/v1/connect/intentions")" = "[]" ]
	fi

	code=$(ncurl -X PUT "$A/v1/connect/ca/rotate")
	roots1=$(curl -s "$A/v1/agent/connect/ca/roots" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ActiveRootID"])')
	check "$want: nobody rotates the CA: $code" [ "$code" = $bad ]
	if [ "$want" = open ]; then
		check "open: ... and the root changed" [ "$roots0" != "$roots1" ]
	else
		check "denied: ... and the root did not change" [ "$roots0" = "$roots1" ]
	fi

	# pay: registered by root (the token of lib.sh's curlrc), port 7001
	code=$(api -X PUT --data '{"Name": "pay", "Port": 7001}' "$A/v1/agent/service/register")
	check "root registers pay: $code" [ "$code" = 200 ]
	code=$(ncurl -X PUT --data '{"Name": "pay", "Port": 6666}' "$A/v1/agent/service/register")
	port=$(curl -s "$A/v1/agent/services" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pay"]["Port"])')
	check "$want: nobody replaces pay with its own port: $code (port now $port)" [ "$code" = $bad ]
	if [ "$want" = denied ]; then
		check "denied: pay still on 7001" [ "$port" = 7001 ]
		code=$(ncurl -X PUT "$A/v1/agent/service/deregister/pay")
		check "denied: nobody deregisters pay: $code" [ "$code" = 403 ]
		check "denied: pay is still registered" curl -sf "$A/v1/agent/services" -o "$T/svcs"
		check "denied: ... (listed)" grep -q '"pay"' "$T/svcs"
		code=$(ncurl -X PUT "$A/v1/agent/reload")
		check "denied: nobody reloads: $code" [ "$code" = 403 ]
		code=$(ncurl -X PUT --data '{"Policies": [{"Name": "global-management"}]}' "$A/v1/acl/token")
		check "denied: nobody makes itself a management token: $code" [ "$code" = 403 ]
		code=$(ncurl -H "X-Consul-Token: 00000000-0000-4000-8000-000000000000" "$A/v1/catalog/services")
		check "denied: a made-up token is refused even for reads: $code" [ "$code" = 403 ]
	fi

	# identity claims on the control socket
	out=$(as_nobody bash -c "$(declare -f hello); MESH_SOCKET=$MESH_SOCKET hello ghost")
	if [ "$want" = open ]; then
		check "open: nobody claims the undefined name ghost ($out)" [ "${out#OK}" != "$out" ]
	else
		check "denied: nobody claims the undefined name ghost ($out)" [ "${out#ERR EACCES}" != "$out" ]
		as_nobody timeout 10 "$NMESHCTL" connect proxy -service ghost -upstream db:$(free_port) >/dev/null 2>&1; rc=$?
		check "denied: meshctl connect proxy -service ghost as nobody fails (exit $rc)" [ $rc != 0 -a $rc != 124 ]
		out=$(hello ghost)
		check "root claims ghost ($out)" [ "${out#OK}" != "$out" ]
	fi
	out=$(as_nobody bash -c "$(declare -f hello); MESH_SOCKET=$MESH_SOCKET hello db")
	check "$want: nobody may not act as db (user daemon) either way ($out)" [ "${out#ERR EACCES}" != "$out" ]
}

# --- the default: ACLs on
node n1
attacks denied n1
A="http://$HTTP_ADDR"
check "management.token is 0600" [ "$(stat -c %a "$T/n1/data/management.token")" = 600 ]
check "acl.json is 0600" [ "$(stat -c %a "$T/n1/data/acl.json")" = 600 ]

# --- the grants that must work
code=$(ncurl --unix-socket "$T/n1/http.sock" "http://x/v1/agent/connect/ca/leaf/own")
check "nobody gets the leaf of own (user nobody) on the unix socket: $code" has_key
code=$(ncurl "$A/v1/agent/connect/ca/leaf/own")
check "... but not over TCP, where no uid is known: $code" [ "$code" = 403 ]
code=$(ncurl --unix-socket "$T/n1/http.sock" "http://x/v1/agent/connect/ca/leaf/db")
check "... and not db's: $code" [ "$code" = 403 ]
for p in /v1/catalog/services /v1/health/service/db /v1/agent/connect/ca/roots /v1/connect/intentions /v1/agent/self "/v1/connect/intentions/check?source=web&destination=db"; do
	code=$(ncurl "$A$p")
	check "reads stay open on loopback: GET $p: $code" [ "$code" = 200 ]
done
env -u CURL_HOME "$MESHCTL" intention create -deny web db >/dev/null 2>"$T/m.err"; rc=$?
check "root's meshctl needs no token (unix socket): exit $rc $(head -c 80 "$T/m.err")" [ $rc = 0 ]
"$MESHCTL" acl policy create -name pay-w -rules 'service "pay" { policy = "write" intentions = "write" }' >/dev/null
tok=$("$MESHCTL" acl token create -policy-name pay-w -service-identity ghost2 | awk '/SecretID/ {print $2}')
check "meshctl acl token create prints a SecretID" [ -n "$tok" ]
code=$(ncurl -H "X-Consul-Token: $tok" -X PUT --data '{"Name": "pay", "Port": 7002}' "$A/v1/agent/service/register")
check "a token with service:write on pay re-registers it: $code" [ "$code" = 200 ]
code=$(ncurl -H "Authorization: Bearer $tok" -X POST --data '{"SourceName": "web", "DestinationName": "pay", "Action": "allow"}' "$A/v1/connect/intentions")
check "... writes intentions to pay (Authorization: Bearer): $code" [ "$code" = 200 ]
code=$(ncurl -H "X-Consul-Token: $tok" -X POST --data '{"SourceName": "web", "DestinationName": "db", "Action": "allow"}' "$A/v1/connect/intentions")
check "... but not to db: $code" [ "$code" = 403 ]
code=$(ncurl -H "X-Consul-Token: $tok" -X PUT "$A/v1/connect/ca/rotate")
check "... nor rotates the CA: $code" [ "$code" = 403 ]
out=$(as_nobody bash -c "$(declare -f hello); MESH_SOCKET=$MESH_SOCKET hello ghost2 $tok")
check "nobody with a token for ghost2 claims ghost2 ($out)" [ "${out#OK}" != "$out" ]
out=$(as_nobody bash -c "$(declare -f hello); MESH_SOCKET=$MESH_SOCKET hello ghost3 $tok")
check "... but not ghost3 ($out)" [ "${out#ERR EACCES}" != "$out" ]

# --- tokens survive a restart; the store loads again
stop_helperd "$HELPERD_PID"
start_helperd n1
A="http://$HTTP_ADDR"
code=$(ncurl -H "X-Consul-Token: $tok" -X PUT --data '{"Name": "pay", "Port": 7003}' "$A/v1/agent/service/register")
check "after a restart the token still works: $code" [ "$code" = 200 ]
code=$(ncurl -H "X-Consul-Token: $(cat "$T/n1/data/management.token")" "$A/v1/acl/tokens")
check "... and the management token from management.token: $code" [ "$code" = 200 ]
# The ACL routes' methods and paths (a route table): a wrong method is a
# 405 naming the right ones, an empty ID an unknown path, and a token
# reads itself with GET only.
MT=$(cat "$T/n1/data/management.token")
code=$(ncurl -H "X-Consul-Token: $MT" -X DELETE "$A/v1/acl/tokens")
check_expr "DELETE /v1/acl/tokens: 405 (allowed: GET) ($code)" '[ "$code" = 405 ] && grep -q "allowed: GET)" "$NB/out"'
code=$(ncurl -H "X-Consul-Token: $MT" -X POST "$A/v1/acl/token")
check_expr "POST /v1/acl/token: 405 (allowed: PUT) ($code)" '[ "$code" = 405 ] && grep -q "allowed: PUT)" "$NB/out"'
code=$(ncurl -H "X-Consul-Token: $MT" -X PUT "$A/v1/acl/policy/name/pay-w")
check_expr "PUT /v1/acl/policy/name/pay-w: 405 (allowed: GET|DELETE) ($code)" '[ "$code" = 405 ] && grep -q "allowed: GET|DELETE)" "$NB/out"'
code=$(ncurl -H "X-Consul-Token: $MT" "$A/v1/acl/policy/name/")
check "GET /v1/acl/policy/name/ (no name): 404 ($code)" [ "$code" = 404 ]
code=$(ncurl -H "X-Consul-Token: $tok" "$A/v1/acl/token/self")
check_expr "GET /v1/acl/token/self with pay-w's token: 200, its policy ($code)" '[ "$code" = 200 ] && grep -q pay-w "$NB/out"'
code=$(ncurl -H "X-Consul-Token: $MT" "$A/v1/acl/nothing")
check "GET /v1/acl/nothing: 404 ($code)" [ "$code" = 404 ]
# --- the CLI reads and deletes what it made (root: the unix socket)
out=$("$MESHCTL" acl policy read -name pay-w 2>&1)
check "meshctl acl policy read -name pay-w shows its rules" [ "${out#*service \"pay\"}" != "$out" ]
tid=$("$MESHCTL" acl token read -self -token "$tok" 2>/dev/null | awk '/^AccessorID:/ {print $2}')
out=$("$MESHCTL" acl token read -id "$tid" 2>&1)
check_expr "meshctl acl token read -id <accessor> names pay-w ($tid)" '[ -n "$tid" ] && [ "${out#*pay-w}" != "$out" ]'
out=$("$MESHCTL" acl token delete -id "$tid" 2>&1)
check "meshctl acl token delete says so ($out)" [ "$out" = "Token \"$tid\" deleted successfully" ]
code=$(ncurl -H "X-Consul-Token: $tok" -X PUT --data '{"Name": "pay", "Port": 7004}' "$A/v1/agent/service/register")
check "... and the deleted token no longer works: $code" [ "$code" = 403 ]
out=$("$MESHCTL" acl policy delete -name pay-w 2>&1)
check "meshctl acl policy delete -name pay-w says so ($out)" [ "$out" = "Policy \"pay-w\" deleted successfully" ]
"$MESHCTL" acl policy read -name pay-w >/dev/null 2>&1; rc=$?
check "... and it is gone (read exits $rc)" [ $rc = 1 ]
stop_helperd "$HELPERD_PID"

# --- a deliberately open node: the same attacks succeed
node n2 'acl = { enabled = false; };'
attacks open n2
stop_helperd "$HELPERD_PID"
finish
