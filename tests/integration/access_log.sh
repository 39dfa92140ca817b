#!/bin/bash
# Access log: one JSON line per closed connection and per denial, with
# the process, both SPIFFE IDs, bytes and result; followed through a
# logrotate-style rename + SIGHUP while connections run, with no line
# lost; the text format after a reload.
. "$(dirname "$0")/lib.sh"

ECHO=$(free_port); UP=$(free_port)
start_echo "$ECHO"
write_conf n1 'default_intention = "allow";' "access_log = { path = \"$T/access.log\"; format = \"json\"; };"
sed "s/8181/$ECHO/" "$SRCDIR/examples/getting-started/socat.json" > "$T/n1/services.d/socat.json"
start_helperd n1 || { fail "helperd starts"; finish; exit 1; }

out=$(echo_through "$UP" web "socat:$UP")
check "one connection through the mesh" [ "$out" = "hello-$UP" ]
"$MESHCTL" intention create -deny api socat >/dev/null
echo_through "$UP" api "socat:$UP" >/dev/null
for _ in $(seq 50); do [ "$(wc -l < "$T/access.log")" -ge 2 ] && break; sleep 0.1; done
python3 - "$T/access.log" "$(id -u)" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) == 2, lines
a, d = lines
assert a["result"] == "allowed" and a["source"] == "web" and a["destination"] == "socat", a
assert a["direction"] == "outbound" and a["pid"] > 0 and a["uid"] == int(sys.argv[2]), a
assert a["bytes_sent"] == 12 and a["bytes_received"] == 12, a      # "hello-PORT\n"
assert a["source_spiffe"].endswith("/svc/web") and a["destination_spiffe"].endswith("/svc/socat"), a
assert a["source_node"] == "n1" and a["destination_node"] == "n1" and a["tls"] is True, a
assert a["time"].endswith("Z") and "T" in a["time"] and a["duration_ms"] >= 0, a
assert "unit" in a, a
assert d["result"] == "denied" and d["source"] == "api" and "intention" in d["reason"], d
assert d["pid"] > 0, d
PY
check "an allowed line (pid, uid, unit, SPIFFE IDs, 12 bytes each way) and a denied one (which intention)" [ $? = 0 ]

# 40 connections, four at a time, with logrotate's move + SIGHUP in the
# middle of them; then 5 more once the reopen has surely happened (the
# 40 may all be done before the signal is handled: the relay is fast).
run_batch() {
	for i in $(seq 1 "$1"); do
		printf 'x%s\n' "$i" | LD_PRELOAD="$SHIM" MESH_SERVICE=web MESH_UPSTREAMS="socat:$UP" \
		    timeout 5 nc -N 127.0.0.1 "$UP" >/dev/null 2>&1
	done
}
run_batch 10 & b1=$!; run_batch 10 & b2=$!; run_batch 10 & b3=$!; run_batch 10 & b4=$!
sleep 0.2
mv "$T/access.log" "$T/access.log.1"
kill -HUP "$HELPERD_PID"
wait $b1 $b2 $b3 $b4
for _ in $(seq 50); do [ -s "$T/access.log" ] && break; sleep 0.1; done
run_batch 5
for _ in $(seq 50); do
	n=$(cat "$T/access.log.1" "$T/access.log" 2>/dev/null | wc -l)
	[ "$n" -ge 47 ] && break
	sleep 0.1
done
n1=$(wc -l < "$T/access.log.1"); n2=$(wc -l < "$T/access.log" 2>/dev/null || echo 0)
echo "    rotated file: $n1 lines, new file: $n2 lines"
check "45 connections: 47 lines in all, none lost ($n1 + $n2)" [ $((n1 + n2)) = 47 ]
check "the new file got the lines after SIGHUP" [ "$n2" -ge 5 ]
ids=$(cat "$T/access.log.1" "$T/access.log" | python3 -c 'import json,sys; ids=[json.loads(l)["id"] for l in sys.stdin]; print(len(ids), len(set(ids)))')
check "every line parses, ids unique ($ids)" [ "$ids" = "47 47" ]

# Text format after a reload.
sed -i 's/format = "json"/format = "text"/' "$T/n1/mesh.conf"
"$MESHCTL" reload >/dev/null
echo_through "$UP" web "socat:$UP" >/dev/null
for _ in $(seq 50); do grep -q ' outbound id=' "$T/access.log" && break; sleep 0.1; done
check "text line after reload" grep -Eq '^[0-9-]+T[0-9:.]+Z outbound id=[0-9]+ web => socat pid=[0-9]+ uid=[0-9]+ .* sent=12 rcvd=12 .* result=allowed' "$T/access.log"

# A path helperd cannot open: the reload says so, the old file stays.
sed -i "s|path = \"$T/access.log\"|path = \"$T/nodir/x.log\"|" "$T/n1/mesh.conf"
kill -HUP "$HELPERD_PID"; sleep 0.5
check "unopenable access_log: logged, previous file kept" grep -q "access_log: cannot open $T/nodir/x.log" "$T/n1/helperd.log"
before=$(wc -l < "$T/access.log")
echo_through "$UP" web "socat:$UP" >/dev/null
for _ in $(seq 30); do [ "$(wc -l < "$T/access.log")" -gt "$before" ] && break; sleep 0.1; done
check "still writing to the previous file" [ "$(wc -l < "$T/access.log")" -gt "$before" ]
finish
