#!/bin/bash
# Logs like Consul's: -log-json, log_file with size rotation and
# log_rotate_max_files, log_level applied on reload, meshctl monitor
# streaming (at its own level), SIGUSR1 writing the metrics to the log.
. "$(dirname "$0")/lib.sh"

ECHO=$(free_port); UP=$(free_port)
start_echo "$ECHO"
write_conf n1 'default_intention = "allow";' "log_file = \"$T/file.log\";" \
    'log_rotate_bytes = 3000;' 'log_rotate_max_files = 2;'
sed "s/8181/$ECHO/" "$SRCDIR/examples/getting-started/socat.json" > "$T/n1/services.d/socat.json"
# No -log-level flag (it would override the file's log_level on reload).
"$HELPERD" -c "$T/n1/mesh.conf" > "$T/n1/helperd.log" 2>&1 &
HELPERD_PID=$!; PIDS="$PIDS $HELPERD_PID"
for _ in $(seq 600); do [ -s "$T/n1/data/ports.json" ] && break; sleep 0.05; done
HTTP_ADDR=$(jq_get "$T/n1/data/ports.json" http_addr)
MESH_SOCKET="$T/n1/helperd.sock"
export MESH_HTTP_ADDR="$HTTP_ADDR" MESH_SOCKET
LOG=$T/n1/helperd.log

"$MESHCTL" monitor -log-level debug > "$T/mon.out" 2>&1 &
MPID=$!; PIDS="$PIDS $MPID"
for _ in $(seq 100); do grep -q "monitor: a watcher" "$T/mon.out" 2>/dev/null && break; sleep 0.1; done
"$MESHCTL" intention create -deny a b >/dev/null
echo_through "$UP" web "socat:$UP" >/dev/null     # relay lines are debug
for _ in $(seq 50); do grep -q "intention created: a => b" "$T/mon.out" && grep -q "DEBUG" "$T/mon.out" && break; sleep 0.1; done
check "monitor streams a line logged after it started" grep -q "intention created: a => b (deny)" "$T/mon.out"
check "monitor -log-level debug gets debug lines while helperd logs at info" grep -q "\[DEBUG\]" "$T/mon.out"
check "... which helperd's own log leaves out" [ "$(grep -c '\[DEBUG\]' "$LOG")" = 0 ]
check "log lines carry RFC 3339 UTC times" grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z \[INFO\] intention created' "$LOG"

kill -USR1 "$HELPERD_PID"
for _ in $(seq 50); do grep -q "SIGUSR1: [0-9]* metric samples" "$LOG" && break; sleep 0.1; done
check "SIGUSR1: the metrics in the log" grep -q "metrics: meshshim_process_open_fds [0-9]" "$LOG"
check "SIGUSR1: helperd still serves" [ "$(api "http://$HTTP_ADDR/v1/agent/self")" = 200 ]

# log_file: everything at info went there too, rotated at 3000 bytes,
# two rotated files kept.
for i in $(seq 1 30); do curl -s -X PUT "http://$HTTP_ADDR/v1/agent/check/pass/nosuch$i" >/dev/null; done
sleep 0.3
n=$(ls "$T"/file-*.log 2>/dev/null | wc -l)
check "log_file rotated, 2 old files kept ($n)" [ "$n" = 2 ]
check "the live file is under the rotation size" [ "$(stat -c %s "$T/file.log")" -lt 3200 ]
check "the rotated files hold the log" grep -q "nosuch" $(ls "$T"/file-*.log | tail -1)

# log_level = "debug" on reload.
sed -i 's/^default_intention.*/&\nlog_level = "debug";/' "$T/n1/mesh.conf"
"$MESHCTL" reload >/dev/null
echo_through "$UP" web "socat:$UP" >/dev/null
sleep 0.5
check "log_level debug applied on reload" grep -q "\[DEBUG\]" "$LOG"
kill "$MPID" 2>/dev/null
stop_helperd "$HELPERD_PID"

# -log-json: every line is a JSON object with @timestamp, @level, @message.
write_conf n2 'default_intention = "allow";'
"$HELPERD" -c "$T/n2/mesh.conf" -log-json > "$T/n2.log" 2>&1 &
P2=$!; PIDS="$PIDS $P2"
for _ in $(seq 1200); do [ -s "$T/n2/data/ports.json" ] && break; sleep 0.05; done
check "helperd -log-json up (ports.json)" [ -s "$T/n2/data/ports.json" ]
kill -TERM "$P2"; wait "$P2"
python3 - "$T/n2.log" <<'PY'
import json, re, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) >= 3, lines
for l in lines:
    j = json.loads(l)
    assert j["@level"] in ("error", "warn", "info", "debug"), j
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", j["@timestamp"]), j
    assert j["@message"], j
assert any("stopping" in json.loads(l)["@message"] for l in lines)
PY
check "-log-json: every line a JSON object (@timestamp RFC 3339, @level, @message)" [ $? = 0 ]
out=$("$HELPERD" -c "$T/n2/mesh.conf" -check -log-json 2>&1)
check "-log-json is a known argument with -check" [ $? = 0 ]
finish
