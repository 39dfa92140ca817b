#!/bin/bash
# Health checks decide which instances are dialled: socat's default TCP
# check (check_interval = 1s), a TTL check (Consul JSON) and an HTTP check
# (python3 -m http.server). A critical service is refused at once; it is
# dialled again as soon as its check passes.
. "$(dirname "$0")/lib.sh"

ECHO=$(free_port); UP=$(free_port); HTTPP=$(free_port)
A=""
# Times in ms from bash's clock (no python start-up in what is measured).
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
now() { now_ms; }
since() { # since T0_MS [T1_MS]: seconds from T0 to T1 (default now)
	local d=$(( ${2:-$(now_ms)} - $1 ))
	[ "$d" -ge 0 ] || { echo "-$(since 0 $((-d)))"; return; }
	printf '%d.%d' $((d / 1000)) $((d % 1000 / 100))
}
# le SECONDS LIMIT: SECONDS (as since prints it) <= LIMIT (decimal)
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }
# status CHECK_ID: its Status in /v1/agent/checks ("none" if absent)
status() {
	curl -s "http://$A/v1/agent/checks" | python3 -c '
import json, sys
print(json.load(sys.stdin).get(sys.argv[1], {}).get("Status", "none"))' "$1"
}
status_is() { [ "$(status "$1")" = "$2" ]; }
# status_output CHECK_ID: "Status|Output", from one request
status_output() {
	curl -s "http://$A/v1/agent/checks" | python3 -c '
import json, sys
c = json.load(sys.stdin).get(sys.argv[1], {})
print("%s|%s" % (c.get("Status", "none"), c.get("Output", "")))' "$1"
}
output_of() {
	curl -s "http://$A/v1/agent/checks" | python3 -c '
import json, sys
print(json.load(sys.stdin).get(sys.argv[1], {}).get("Output", ""))' "$1"
}
socat_up() {
	socat tcp-l:"$ECHO",fork,reuseaddr exec:/bin/cat >/dev/null 2>&1 &
	SOCAT=$!
	PIDS="$PIDS $SOCAT"
	wait_port "$ECHO"
}
# connect_refused: a blocking connect through the shim fails with
# ECONNREFUSED; prints how long it took
connect_refused() {
	python3 - "$UP" "$SHIM" "$MESH_SOCKET" <<'PY'
import os, subprocess, sys, time
code = "import socket,sys\ns=socket.socket()\ntry:\n s.connect(('127.0.0.1',%s)); sys.exit(3)\nexcept ConnectionRefusedError: sys.exit(0)\n" % sys.argv[1]
env = dict(os.environ, LD_PRELOAD=sys.argv[2], MESH_SERVICE="web", MESH_SOCKET=sys.argv[3])
t0 = time.time()
rc = subprocess.run([sys.executable, "-c", code], env=env, timeout=10).returncode
print("%.3f" % (time.time() - t0))
sys.exit(rc)
PY
}

socat_up
mkdir -p "$T/www"
echo ok > "$T/www/ok"
# Its request log (stderr) counts the HTTP checks' probes.
(cd "$T/www" && exec python3 -m http.server "$HTTPP" --bind 127.0.0.1) >/dev/null 2>"$T/www.log" &
PIDS="$PIDS $!"
wait_port "$HTTPP"

write_conf n1 'check_interval = "1s";'
cat > "$T/n1/services.d/mesh.conf" <<EOF
services = (
  { name = "socat"; port = $ECHO; connect = {}; },
  { name = "web"; upstreams = ( { destination_name = "socat";
                                  local_bind_port = $UP; } ); },
  { name = "www"; port = $HTTPP;
    check = { http = "http://127.0.0.1:$HTTPP/ok"; interval = "1s";
              timeout = "500ms"; }; }
);
EOF
# A TTL check in a Consul JSON definition (Consul's field spelling).
echo '{"service": {"name": "api", "port": 1, "check": {"TTL": "4s"}}}' \
    > "$T/n1/services.d/api.json"
start_helperd n1 || { fail "helperd starts"; finish; exit 1; }
A=$HTTP_ADDR
ok "helperd starts (http $A)"

# The first check runs at start: socat is passing before the first use.
check "socat's default TCP check passes at start ($(output_of service:socat))" status_is service:socat passing
check "web (port 0, no check) has no check" status_is service:web none
out=$(echo_through "$UP" web)
check "mesh echo through socat (got '$out')" [ "$out" = "hello-$UP" ]
n=$(curl -s "http://$A/v1/health/service/socat?passing" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
check "/v1/health/service/socat?passing lists it ($n)" [ "$n" = 1 ]

# Kill socat: helperd's own check needs 3 failures in a row before
# critical (the first two are logged and keep it passing); then new
# connections are refused at once.
kill "$SOCAT"; wait "$SOCAT" 2>/dev/null
t0=$(now)
wait_until 20 status_is service:socat critical
check "socat critical $(since "$t0") s after it died" status_is service:socat critical
check "the first two failures kept it passing (logged 1 of 3, 2 of 3)" sh -c "
	grep -q 'socat check service:socat failed (1 of 3 failures before critical)' '$T/n1/helperd.log' &&
	grep -q 'socat check service:socat failed (2 of 3 failures before critical)' '$T/n1/helperd.log'"
check "the change is logged once with the reason" grep -q "health: socat is critical: connect 127.0.0.1:$ECHO: Connection refused" "$T/n1/helperd.log"
check "one clear line says no instance of socat passes" grep -q "health: no local instance of socat passes its checks: connections to socat are refused" "$T/n1/helperd.log"
dt=$(connect_refused); rc=$?
check_expr "a mesh connect to socat is refused at once (ECONNREFUSED in ${dt} s)" '[ "$rc" = 0 ] && le "$dt" 1'
check "helperd logs no healthy instance of socat" grep -q "web => socat: no healthy instance of socat" "$T/n1/helperd.log"
out=$(curl -s "http://$A/v1/health/service/socat" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(" ".join(c["Status"] for c in d[0]["Checks"] if c["CheckID"] == "service:socat"))')
check "/v1/health/service/socat shows it critical ($out)" [ "$out" = critical ]
n=$(curl -s "http://$A/v1/health/service/socat?passing" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
check "... and ?passing leaves it out ($n)" [ "$n" = 0 ]
n=$(curl -s "http://$A/v1/health/connect/socat?passing" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
check "/v1/health/connect/socat?passing too ($n)" [ "$n" = 0 ]
n=$(curl -s "http://$A/v1/catalog/service/socat" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
check "the catalog still lists the instance ($n)" [ "$n" = 1 ]

# socat back: passing again, echo works.
socat_up
t0=$(now)
wait_until 10 status_is service:socat passing
check "socat passing again $(since "$t0") s after it came back" status_is service:socat passing
check "logged: health: socat is passing" sh -c "[ \$(grep -c 'health: socat is passing' '$T/n1/helperd.log') = 2 ]"
out=$(echo_through "$UP" web)
check "mesh echo works again (got '$out')" [ "$out" = "hello-$UP" ]

# TTL: critical until reported, passing while reported within the ttl.
check "the TTL check starts critical" status_is service:api critical
t0=$(now)
code=$(api -X PUT "http://$A/v1/agent/check/pass/service:api?note=all+good")
check "PUT /v1/agent/check/pass/service:api: 200" [ "$code" = 200 ]
so=$(status_output service:api)
check "... passing, with the note ($so)" [ "$so" = "passing|all good" ]
wait_until 7 status_is service:api critical; rc=$?
dt=$(since "$t0")
check_expr "no report: critical again $dt s later (ttl 4 s, limit 7 s)" '[ "$rc" = 0 ] && ge "$dt" 2.0'
# warn and fail each move the check from another status, with their note.
code=$(api -X PUT "http://$A/v1/agent/check/warn/service:api?note=warned+by+test")
so=$(status_output service:api)
check_expr "PUT .../warn: 200 ($code), critical -> $so" '[ "$code" = 200 ] && [ "$so" = "warning|warned by test" ]'
code=$(api -X PUT "http://$A/v1/agent/check/pass/service:api")
check "PUT .../pass: 200 ($code)" [ "$code" = 200 ]
code=$(api -X PUT "http://$A/v1/agent/check/fail/service:api?note=failed+by+test")
so=$(status_output service:api)
check_expr "PUT .../fail: 200 ($code), passing -> $so" '[ "$code" = 200 ] && [ "$so" = "critical|failed by test" ]'
code=$(api -X PUT "http://$A/v1/agent/check/pass/service:socat")
check "PUT pass on a non-TTL check: 500 ($(cat "$T/api.out"))" [ "$code" = 500 ]
code=$(api -X PUT "http://$A/v1/agent/check/pass/service:nope")
check "PUT pass on an unknown check: 404" [ "$code" = 404 ]
code=$(api "http://$A/v1/agent/check/pass/service:api")
check "GET on the TTL endpoint: 405" [ "$code" = 405 ]

# HTTP: 2xx passing, 404 critical.
check "the HTTP check passes ($(output_of service:www))" status_is service:www passing
rm -f "$T/www/ok"
wait_until 10 status_is service:www critical; rc=$?
out=$(output_of service:www)
check_expr "404: the HTTP check goes critical ($out)" '[ "$rc" = 0 ] && grep -q 404 <<<"$out"'

# A failing check is retried on its interval (3 s), not every second, once
# it has passed (a check that never passed probes faster for a minute).
echo ok > "$T/www/flaky"
code=$(api -X PUT --data "{\"Name\": \"flaky\", \"Port\": $HTTPP, \"Check\": {\"HTTP\": \"http://127.0.0.1:$HTTPP/flaky\", \"Interval\": \"3s\", \"Timeout\": \"1s\"}}" "http://$A/v1/agent/service/register")
check "register flaky with an HTTP check every 3 s: 200" [ "$code" = 200 ]
check "flaky's check passes" wait_until 5 status_is service:flaky passing
rm -f "$T/www/flaky"
check "flaky's page gone: critical" wait_until 15 status_is service:flaky critical
probes() { grep -c 'GET /flaky ' "$T/www.log"; }
n0=$(probes); sleep 9; n1=$(probes)
check_expr "while critical, 9 s saw $((n1 - n0)) probes (interval 3 s: 2 to 4; every second would be 9)" '[ $((n1 - n0)) -ge 2 ] && [ $((n1 - n0)) -le 4 ]'
echo ok > "$T/www/flaky"
check "flaky's page back: passing" wait_until 15 status_is service:flaky passing
code=$(api -X PUT "http://$A/v1/agent/service/deregister/flaky")
check "deregister flaky: 200" [ "$code" = 200 ]

# An API registration with a check keeps it across a restart.
code=$(api -X PUT --data "{\"Name\": \"db\", \"Port\": $ECHO, \"Check\": {\"TCP\": \"127.0.0.1:$ECHO\", \"Interval\": \"2s\"}}" "http://$A/v1/agent/service/register")
check "register db with a TCP check: 200" [ "$code" = 200 ]
check "db's check passes at once" status_is service:db passing
code=$(api -X PUT --data '{"Name": "bad", "Port": 1, "Check": {"TCP": "nohostport"}}' "http://$A/v1/agent/service/register")
check "a bad check is refused: 400 ($(head -c 120 "$T/api.out"))" [ "$code" = 400 ]
stop_helperd "$HELPERD_PID"; rc=$?
check "SIGTERM: exit 0" [ "$rc" = 0 ]
start_helperd n1 || fail "helperd restarts"
A=$HTTP_ADDR
check "after a restart db's TCP check is back and passing" status_is service:db passing
out=$(curl -s "http://$A/v1/agent/checks" | python3 -c 'import json,sys; print(json.load(sys.stdin)["service:db"]["Interval"])')
check "... with its interval ($out)" [ "$out" = 2000ms ]
stop_helperd "$HELPERD_PID"; rc=$?
check "final SIGTERM: exit 0" [ "$rc" = 0 ]
finish
