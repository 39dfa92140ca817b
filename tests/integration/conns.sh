#!/bin/bash
# Live connections: /v1/agent/connections and `meshctl conns` list an open
# session with its process (pid, uid), destination and bytes; `meshctl
# conn kill ID` cuts exactly that one (logged, access log "killed"), the
# other session stays up; `meshctl top` refreshes the table.
. "$(dirname "$0")/lib.sh"

ECHO=$(free_port); UP=$(free_port)
start_echo "$ECHO"
write_conf n1 'default_intention = "allow";' "access_log = { path = \"$T/access.log\"; format = \"json\"; };"
sed "s/8181/$ECHO/" "$SRCDIR/examples/getting-started/socat.json" > "$T/n1/services.d/socat.json"
start_helperd n1 || { fail "helperd starts"; finish; exit 1; }
S=$SRCDIR/tests/integration/session.py

session() { # session NAME SERVICE SECONDS
	LD_PRELOAD="$SHIM" MESH_SERVICE="$2" MESH_UPSTREAMS="socat:$UP" \
	    python3 "$S" "$UP" "$3" "$T/$1.json" 0.05 &
	PIDS="$PIDS $!"
	eval "SPID_$1=$!"
	for _ in $(seq 200); do
		[ -s "$T/$1.json" ] && [ "$(jq_get "$T/$1.json" ok)" -gt 2 ] && return 0
		sleep 0.05
	done
	return 1
}
check "web session up" session a web 60
check "api session up" session b api 60

"$MESHCTL" conns -json > "$T/conns.json"
python3 - "$T/conns.json" "$SPID_a" "$(id -u)" > "$T/ids" <<'PY'
import json, sys
cs = json.load(open(sys.argv[1]))
pid, uid = int(sys.argv[2]), int(sys.argv[3])
out = [c for c in cs if c["Direction"] == "outbound" and c["Source"] == "web"]
inb = [c for c in cs if c["Direction"] == "inbound" and c["Source"] == "web"]
assert len(out) == 1 and len(inb) == 1, cs
o = out[0]
assert o["Destination"] == "socat" and o["PID"] == pid and o["UID"] == uid, o
assert o["BytesSent"] > 0 and o["BytesReceived"] > 0 and o["TLS"] and o["SameNode"], o
assert o["PeerSPIFFE"].endswith("/svc/socat"), o
assert len(cs) == 4, len(cs)   # two sessions, both halves each
print(o["ID"])
PY
check "connections API: web => socat with the session's pid and uid, bytes, both halves" [ $? = 0 ]
ID=$(cat "$T/ids")

"$MESHCTL" conns > "$T/conns.txt"
cat "$T/conns.txt"
check "meshctl conns: header like ss" grep -q '^ID  *DIR  *SOURCE  *PID  *UNIT  *DESTINATION  *NODE  *AGE  *SENT  *RECV  *RATE' "$T/conns.txt"
check "meshctl conns: the web row with its pid" grep -Eq "^$ID +out +web +$SPID_a +.* socat +n1 " "$T/conns.txt"
check "meshctl conns: a current rate in B/s or K/s" grep -Eq "^$ID .*[0-9.]+[BK]/s$" "$T/conns.txt"

t0=$(python3 -c 'import time; print(time.time())')
out=$("$MESHCTL" conn kill "$ID")
check "conn kill: $out" [ "$out" = "Connection $ID killed" ]
python3 - "$T/a.json" "$t0" <<'PY'
import json, sys, time
for _ in range(60):
    d = json.load(open(sys.argv[1]))
    if d["closed_at"] is not None:
        sys.exit(0 if d["closed_at"] - float(sys.argv[2]) < 2 else 1)
    time.sleep(0.1)
sys.exit(1)
PY
check "the killed session ended" [ $? = 0 ]
sleep 0.3
check "the other session is still up" python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["closed_at"] is None and d["bad"]==0 else 1)' "$T/b.json"
check "helperd logged the kill" grep -q "conn $ID web => socat killed through the API" "$T/n1/helperd.log"
for _ in $(seq 50); do grep -q "\"id\":$ID," "$T/access.log" 2>/dev/null && break; sleep 0.1; done
check "access log: result killed for $ID" grep -q "\"id\":$ID,.*\"result\":\"killed\"" "$T/access.log"
n=$("$MESHCTL" conns -json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
check "2 connections left (the api session's halves): $n" [ "$n" = 2 ]

out=$("$MESHCTL" conn kill 999999 2>&1); rc=$?
check_expr "kill of an unknown ID fails ($rc): $out" '[ "$rc" = 1 ] && echo "$out" | grep -q "No relaying connection with ID 999999"'
out=$("$MESHCTL" conn kill abc 2>&1)
check "kill of a non-number is refused" [ $? = 1 ]
code=$(api -X DELETE "http://$HTTP_ADDR/v1/agent/connections/12x")
check "DELETE with a malformed ID: 400 ($code)" [ "$code" = 400 ]

"$MESHCTL" top -n 2 -interval 300ms > "$T/top.txt"
check "meshctl top: two screens" [ "$(grep -c '^meshctl top - ' "$T/top.txt")" = 2 ]
check "meshctl top: the api session" grep -Eq ' out +api .* socat ' "$T/top.txt"
finish
