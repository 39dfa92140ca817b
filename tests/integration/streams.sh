#!/bin/bash
# Streams across nodes over reused sessions (relay_stream.c): helperd on a
# (web, CA server) and on c (socat, sink, greet; a CA client), etcd on a,
# b and c. Connections one after another from a to c each either shake
# hands or take a session an earlier one left (every connection is one or
# the other, most are reuses), and keep TCP's semantics: data both ways,
# a half close (the sink answers only after the request's end), a service
# that speaks first, an application's reset. Identity and intentions are
# per stream: c denies by default and a allows, so that c alone refuses
# api once its intention goes, while web goes on, and a's log says why;
# a helperd restarted under pooled sessions costs no connection.
. "$(dirname "$0")/lib.sh"
. "$SRCDIR/examples/cluster/hosts.sh"

why=$(hosts_check)
[ -z "$why" ] || skip_test "streams test: $why"
AT_EXIT=hosts_down
PY=$SRCDIR/tests/integration/streams.py
UPS=socat:9191,sink:9292,greet:9393

# client SERVICE MODE PORT N [SIZE]: streams.py as SERVICE on a
client() {
	svc=$1; shift
	inns a env LD_PRELOAD="$SHIM" MESH_SOCKET="$T/a/helperd.sock" \
	    MESH_SERVICE="$svc" MESH_UPSTREAMS="$UPS" timeout 60 python3 "$PY" "$@"
}
good() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if d["bad"] == 0 and d["ok"] == int(sys.argv[2]) else 1)' "$1" "$2"; }
# metric HOST NAME LABELS: the sum of NAME's samples whose labels include LABELS
metric() {
	api_in "$1" "/v1/agent/metrics?format=prometheus" | python3 -c '
import sys
name, want = sys.argv[1], sys.argv[2]
tot = 0
for l in sys.stdin:
    if l.startswith(name + "{") and want in l:
        tot += float(l.rsplit(" ", 1)[1])
print(int(tot))' "$2" "$3"
}
reused() { metric "$1" meshshim_tls_streams_reused_total "role=\"$2\""; }
shakes() { metric "$1" meshshim_tls_handshakes_total "role=\"$2\""; }
passing() { [ "$(instances a "$1")" = c ]; }
says() { [ "$(meshctl_in "$1" intention check "$2" "$3" 2>/dev/null)" = "$4" ]; }

hosts_up || { fail "network namespaces a, b, c on a bridge"; finish; exit 1; }
for h in $HOSTS; do etcd_start "$h"; done
check "etcd: three members healthy" etcd_healthy a b c
node_conf a 'join_token = "streams-test";'
cp "$SRCDIR/examples/getting-started/web.json" "$T/a/services.d/"
node_start a || { fail "helperd on a starts"; finish; exit 1; }
node_conf c 'join_token = "streams-test";' 'ca = { server = false; };'
cp "$SRCDIR/examples/getting-started/socat.json" "$T/c/services.d/"
for s in sink:8282 greet:8383; do
	printf '{ "service": { "name": "%s", "port": %s, "connect": { "proxy": {} } } }\n' \
	    "${s%:*}" "${s#*:}" > "$T/c/services.d/${s%:*}.json"
done
sed -i 's/^default_intention = "allow";/default_intention = "deny";/' "$T/c/mesh.conf"
node_start c || { fail "helperd on c starts"; finish; exit 1; }
for p in web:socat web:sink web:greet api:socat; do
	meshctl_in a intention create -allow "${p%:*}" "${p#*:}" >/dev/null
done
for p in web:socat web:sink web:greet api:socat; do
	check "c allows ${p%:*} => ${p#*:}" wait_until 5 says c "${p%:*}" "${p#*:}" Allowed
done
socat_start c || fail "socat on c"
ip netns exec "$NS_c" python3 "$PY" sink 8282 & PIDS="$PIDS $!"
ip netns exec "$NS_c" python3 "$PY" greet 8383 & PIDS="$PIDS $!"
for s in socat sink greet; do
	check "a lists $s on c passing" wait_until 20 passing "$s"
done

# 1. One after another: every connection shakes hands or reuses a session.
r0=$(reused a client); h0=$(shakes a client); s0=$(reused c server)
out=$(client web echo 9191 40)
check "40 connections one after another, web (a) -> socat (c), each echoes its line ($out)" good "$out" 40
r1=$(reused a client); h1=$(shakes a client); s1=$(reused c server)
dr=$((r1 - r0)); dh=$((h1 - h0)); ds=$((s1 - s0))
check_expr "each one reused a session or shook hands: $dr reused + $dh handshakes = 40" '[ $((dr + dh)) = 40 ]'
check_expr "most reused a session ($dr of 40; c counted $ds)" '[ "$dr" -ge 30 ] && [ "$ds" = "$dr" ]'

# 2. TCP's semantics on reused sessions.
r0=$(reused a client)
out=$(client web halfclose 9292 5 1048576)
check "half close: 5 x 1 MiB, the sink answers each after its end with the right hash ($out)" good "$out" 5
out=$(client web greeting 9393 5)
check "a service that speaks first, 5 times ($out)" good "$out" 5
out=$(client web abort 9191 3)
check "3 connections reset by the application ($out)" good "$out" 3
out=$(client web echo 9191 10)
check "... and the next 10 echo ($out)" good "$out" 10
r1=$(reused a client)
check_expr "these went over reused sessions too ($((r1 - r0)) of 23)" '[ $((r1 - r0)) -ge 12 ]'

# 3. Identity and intentions per stream.
out=$(client api echo 9191 3)
check "api (a) -> socat (c) allowed at first ($out)" good "$out" 3
out=$(meshctl_in a intention delete api socat)
check "api => socat's intention deleted ($out)" [ -n "$out" ]
check "c (default deny) says Denied for api" wait_until 3 says c api socat Denied
check "a (default allow) still says Allowed" says a api socat Allowed
out=$(client api echo 9191 3)
check_expr "c refuses api now ($out)" 'python3 -c "import json,sys; sys.exit(0 if json.loads(sys.argv[1])[\"ok\"] == 0 else 1)" "$out"'
out=$(client web echo 9191 5)
check "web goes on over its sessions ($out)" good "$out" 5
check "a's log gives c's reason for the refusal" grep -q "api => socat closed: refused by c's helperd: .*default" "$T/a/helperd.log"
meshctl_in a intention create -allow api socat >/dev/null
check "c says Allowed for api again" wait_until 3 says c api socat Allowed
out=$(client api echo 9191 3)
check "api echoes again ($out)" good "$out" 3

# 4. c's helperd restarted while a holds sessions to it.
out=$(client web echo 9191 5)
check "web holds pooled sessions to c ($out)" good "$out" 5
stop_helperd "$HPID_c" >/dev/null
node_start c || fail "helperd on c starts again"
check "a lists socat on c passing again" wait_until 20 passing socat
out=$(client web echo 9191 20)
check "20 connections after c's restart all echo: no stale session shows ($out)" good "$out" 20
finish
