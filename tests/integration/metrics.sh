#!/bin/bash
# Metrics: real traffic through the mesh, then /v1/agent/metrics in
# Consul's JSON shape and in Prometheus text (checked with promtool):
# connection counts exact, bytes within the payload's size, denials by
# pair, handshakes full/resumed, histograms, leaf expiry, fds.
. "$(dirname "$0")/lib.sh"

command -v promtool >/dev/null || { fail "promtool (Debian: prometheus) is installed"; finish; exit 1; }
ECHO=$(free_port); UP=$(free_port)
start_echo "$ECHO"
write_conf n1 'default_intention = "allow";'
sed "s/8181/$ECHO/" "$SRCDIR/examples/getting-started/socat.json" > "$T/n1/services.d/socat.json"
start_helperd n1 || { fail "helperd starts"; finish; exit 1; }

# Five short connections web => socat (12 bytes each way), one of
# 300000 bytes, one denied pair (api => socat).
for i in 1 2 3 4 5; do
	out=$(echo_through "$UP" web "socat:$UP")
	check "echo $i through the mesh" [ "$out" = "hello-$UP" ]
done
head -c 300000 /dev/urandom > "$T/blob"
n=$(LD_PRELOAD="$SHIM" MESH_SERVICE=web MESH_UPSTREAMS="socat:$UP" timeout 10 nc -N 127.0.0.1 "$UP" < "$T/blob" | wc -c)
check "300000 bytes echoed ($n)" [ "$n" = 300000 ]
"$MESHCTL" intention create -deny api socat >/dev/null
out=$(echo_through "$UP" api "socat:$UP")
check "api => socat denied" [ -z "$out" ]
out=$(echo_through "$UP" api "socat:$UP")
sleep 0.3

curl -s "http://$HTTP_ADDR/v1/agent/metrics?format=prometheus" > "$T/prom.txt"
promtool check metrics < "$T/prom.txt" > "$T/promtool.out" 2>&1; rc=$?
check_expr "promtool check metrics accepts the scrape (exit $rc, $(wc -l < "$T/promtool.out") complaint lines)" '[ "$rc" = 0 ] && [ ! -s "$T/promtool.out" ]'
cat "$T/promtool.out"
curl -s -D "$T/hdr" -o /dev/null "http://$HTTP_ADDR/v1/agent/metrics?format=prometheus"
check "Prometheus content type version=0.0.4" grep -qi '^content-type: text/plain; version=0.0.4' "$T/hdr"
curl -s "http://$HTTP_ADDR/v1/agent/metrics" > "$T/metrics.json"

# prom NAME LABELS: the value of one sample ("" if absent).
prom() {
	if [ -n "$2" ]; then want="$1{$2}"; else want="$1"; fi
	awk -v w="$want" 'index($0, w " ") == 1 { print $NF; exit }' "$T/prom.txt"
}
OUT='direction="outbound",source="web",destination="socat"'
IN='direction="inbound",source="web",destination="socat"'
check "opened web=>socat outbound = 6 ($(prom meshshim_connections_opened_total "$OUT"))" [ "$(prom meshshim_connections_opened_total "$OUT")" = 6 ]
check "opened web=>socat inbound = 6" [ "$(prom meshshim_connections_opened_total "$IN")" = 6 ]
check "closed web=>socat outbound = 6" [ "$(prom meshshim_connections_closed_total "$OUT")" = 6 ]
check "active web=>socat = 0" [ "$(prom meshshim_connections_active "$OUT")" = 0 ]
sent=$(prom meshshim_connection_sent_bytes_total "$OUT")
rcvd=$(prom meshshim_connection_received_bytes_total "$OUT")
# 5 x 12 bytes + 300000: exactly what the applications sent.
check "sent bytes = 300060 ($sent)" [ "$sent" = 300060 ]
check "received bytes = 300060 ($rcvd)" [ "$rcvd" = 300060 ]
check "inbound sent bytes the same" [ "$(prom meshshim_connection_sent_bytes_total "$IN")" = 300060 ]
den=$(prom meshshim_connections_denied_total 'direction="outbound",source="api",destination="socat"')
check "denied api=>socat = 2 ($den)" [ "$den" = 2 ]
o=$(prom meshshim_connections_opened_total 'direction="outbound",source="api",destination="socat"')
check "nothing opened for api => socat (${o:-absent})" [ "${o:-0}" = 0 ]
full=$(prom meshshim_tls_handshakes_total 'role="client",kind="full"')
res=$(prom meshshim_tls_handshakes_total 'role="client",kind="resumed"')
check "client handshakes full + resumed = 6 ($full + $res)" [ $((full + res)) = 6 ]
check "at least one resumed handshake" [ "$res" -ge 1 ]
check "handshake histogram count = 6" [ "$(prom meshshim_tls_handshake_seconds_count 'role="client"')" = 6 ]
check "first-byte histogram count = 6" [ "$(prom meshshim_first_byte_seconds_count '')" = 6 ]
check "first-byte +Inf bucket = count" [ "$(prom meshshim_first_byte_seconds_bucket 'le="+Inf"')" = 6 ]
check "intention checks: deny counted" [ "$(prom meshshim_intention_checks_total 'result="deny"')" -ge 2 ]
exp=$(prom meshshim_leaf_expiry_seconds 'service="web"')
check_expr "leaf expiry of web within 72 h ($exp s)" '[ -n "$exp" ] && [ "$exp" -gt 250000 ] && [ "$exp" -le 259200 ]'
fds=$(prom meshshim_process_open_fds ''); max=$(prom meshshim_process_max_fds '')
check_expr "fds in use ($fds) below the limit ($max)" '[ "$fds" -gt 5 ] && [ "$fds" -lt "$max" ]'

python3 - "$T/metrics.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert set(d) == {"Timestamp", "Gauges", "Points", "Counters", "Samples"}, d.keys()
c = [x for x in d["Counters"] if x["Name"] == "meshshim.connections.opened"
     and x["Labels"] == {"direction": "outbound", "source": "web", "destination": "socat"}]
assert len(c) == 1 and c[0]["Count"] == 6 and c[0]["Sum"] == 6, c
s = [x for x in d["Samples"] if x["Name"] == "meshshim.tls.handshake.seconds"
     and x["Labels"] == {"role": "client"}]
assert s and s[0]["Count"] == 6 and s[0]["Max"] > 0, s
g = [x for x in d["Gauges"] if x["Name"] == "meshshim.process.open.fds"]
assert g and g[0]["Value"] > 0
PY
check "Consul JSON shape: Timestamp, Gauges, Points, Counters, Samples with the same figures" [ $? = 0 ]

code=$(api "http://$HTTP_ADDR/v1/agent/metrics?format=xml")
check "unknown format: 400 ($code)" [ "$code" = 400 ]
finish
