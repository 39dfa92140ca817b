#!/bin/bash
# A health check must not take a busy service's only instance away
# (issue 19), and failures_before_critical / success_before_passing in a
# service definition are obeyed.
#
# 1. echo (helperd's own TCP check, check_interval 1 s, timeout 500 ms)
#    serves 8 clients through the mesh. Its accept queue is then filled
#    (it stops accepting, 3 idle connections queue up): the next check's
#    SYN is dropped and the check times out, as a busy service's did in
#    the report. Once that failure is logged the service accepts again.
#    It must stay passing (3 failures in a row are needed), and no client
#    connection may fail.
# 2. api: a TCP check with failures_before_critical = 2 and
#    success_before_passing = 2. Its server stops: exactly one failure is
#    logged before it goes critical. It comes back: it is passing only
#    after the second success.
. "$(dirname "$0")/lib.sh"

ECHO=$(free_port); UP=$(free_port); APIP=$(free_port)
STALL=$T/stall
cat > "$T/server.py" <<'PY'
# An echo server with an accept queue of 2 that stops accepting while
# the file argv[2] exists.
import os, socket, sys, threading, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1)
def h(c):
    try:
        while True:
            d = c.recv(4096)
            if not d: break
            c.sendall(d)
    except OSError:
        pass
    c.close()
while True:
    while os.path.exists(sys.argv[2]):
        time.sleep(0.02)
    c, _ = s.accept()
    threading.Thread(target=h, args=(c,), daemon=True).start()
PY
cat > "$T/fill.py" <<'PY'
# Queue connections on port argv[1] (not accepted) until argv[2] is gone.
import os, socket, sys, time
held = []
for _ in range(3):
    k = socket.socket(); k.setblocking(False)
    try: k.connect(("127.0.0.1", int(sys.argv[1])))
    except BlockingIOError: pass
    held.append(k)
while os.path.exists(sys.argv[2]):
    time.sleep(0.02)
PY
cat > "$T/load.py" <<'PY'
import socket, sys, threading, time
port, clients, stop = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
import os
lock = threading.Lock(); total = [0]; fails = {}
def w(k):
    while not os.path.exists(stop):
        err = None
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=15)
            s.sendall(b"x\n"); got = s.recv(16); s.close()
            if got != b"x\n": err = "short echo %r" % got
        except OSError as e:
            err = type(e).__name__ + ": " + str(e)
        with lock:
            total[0] += 1
            if err: fails[err] = fails.get(err, 0) + 1
        time.sleep(0.05)
ts = [threading.Thread(target=w, args=(k,)) for k in range(clients)]
for t in ts: t.start()
for t in ts: t.join()
print("%d connections, %d failed %s" % (total[0], sum(fails.values()), fails or ""))
sys.exit(1 if fails or not total[0] else 0)
PY
python3 "$T/server.py" "$ECHO" "$STALL" >/dev/null 2>&1 & PIDS="$PIDS $!"
python3 "$T/server.py" "$APIP" "$T/nostall" >/dev/null 2>&1 & API_SRV=$!; PIDS="$PIDS $API_SRV"
wait_port "$ECHO"; wait_port "$APIP"
write_conf n1 'check_interval = "1s";'
cat > "$T/n1/services.d/svc.conf" <<EOC
services = (
  { name = "echo"; port = $ECHO; connect = {}; },
  { name = "web"; upstreams = ( { destination_name = "echo";
                                  local_bind_port = $UP; } ); },
  { name = "api"; port = $APIP;
    check = { tcp = "127.0.0.1:$APIP"; interval = "1s"; timeout = "500ms";
              failures_before_critical = 2; success_before_passing = 2; }; }
);
EOC
start_helperd n1 || { fail "helperd starts"; finish; exit 1; }
A=$HTTP_ADDR
LOG=$T/n1/helperd.log
FROM=1   # wait_log and since_mark look at the log from this line on
mark() { FROM=$(( $(wc -l < "$LOG") + 1 )); }
since_mark() { tail -n +"$FROM" "$LOG"; }
wait_log() { # wait_log SECONDS PATTERN
	for _ in $(seq $(( $1 * 10 ))); do since_mark | grep -q "$2" && return 0; sleep 0.1; done
	return 1
}
out_of() {
	curl -s "http://$A/v1/agent/checks" | python3 -c '
import json, sys
c = json.load(sys.stdin).get(sys.argv[1], {})
print(c.get("Status", "none"), c.get("Output", ""))' "$1"
}

# 1. a slow check under load
env LD_PRELOAD="$SHIM" MESH_SERVICE=web python3 "$T/load.py" "$UP" 8 "$T/stop" > "$T/load.out" 2>&1 &
LOAD=$!; PIDS="$PIDS $LOAD"
sleep 1
touch "$STALL"
python3 "$T/fill.py" "$ECHO" "$STALL" & PIDS="$PIDS $!"
wait_log 30 "echo check service:echo failed (1 of 3 failures before critical): connect 127.0.0.1:$ECHO: timed out"
check "echo's check timed out once while its accept queue was full" [ $? = 0 ]
rm -f "$STALL"
for _ in $(seq 100); do out_of service:echo | grep -q "^passing TCP connect.*Success$" && break; sleep 0.1; done
out=$(out_of service:echo)
check "its next run passed, and it stayed passing ($out)" sh -c "echo '$out' | grep -q '^passing TCP connect.*Success$'"
sleep 1
touch "$T/stop"; wait "$LOAD"; rc=$?
check "8 clients through the mesh meanwhile: $(cat "$T/load.out")" [ "$rc" = 0 ]
n=$(grep -c "health: echo is critical" "$LOG")
check "echo never went critical ($n)" [ "$n" = 0 ]
n=$(grep -c "no healthy instance of echo" "$LOG")
check "no connection to echo was refused ($n)" [ "$n" = 0 ]

# 2. failures_before_critical = 2, success_before_passing = 2
mark
kill "$API_SRV"; wait "$API_SRV" 2>/dev/null
wait_log 30 "health: api is critical"
check "api goes critical once its server is gone" [ $? = 0 ]
n=$(since_mark | grep -c "api check service:api failed (1 of 2 failures before critical)")
check "after exactly one failure logged short of the threshold ($n)" [ "$n" = 1 ]
check "... and that failure came before critical" sh -c "tail -n +$FROM '$LOG' | grep 'api check service:api failed (1 of 2\|health: api is critical' | head -1 | grep -q 'failed (1 of 2'"
mark
python3 "$T/server.py" "$APIP" "$T/nostall" >/dev/null 2>&1 & PIDS="$PIDS $!"
wait_log 30 "health: api is passing"
check "api passes again once its server is back" [ $? = 0 ]
check "... after one success logged short of success_before_passing" sh -c "tail -n +$FROM '$LOG' | grep 'api check service:api passed (1 of 2 successes before passing)\|health: api is passing' | head -1 | grep -q 'passed (1 of 2'"
stop_helperd "$HELPERD_PID"; rc=$?
check "SIGTERM: exit 0" [ "$rc" = 0 ]
finish
