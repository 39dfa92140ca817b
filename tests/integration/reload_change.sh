#!/bin/bash
# A reload that changes a service keeps it served on its old definition
# until the new one passes its checks (success_before_passing), then
# switches; a reload that removes a service drains it: connections already
# open keep going, new ones are refused (issue 19).
. "$(dirname "$0")/lib.sh"

PA=$(free_port); PB=$(free_port); UP=$(free_port)
# Two instances of the "same" echo service that answer differently: the
# old definition's on PA ("A-<line>"), the new one's on PB ("B-<line>").
socat tcp-l:"$PA",fork,reuseaddr system:'sed -u s/^/A-/' >/dev/null 2>&1 &
SA=$!; PIDS="$PIDS $SA"
wait_port "$PA"
write_conf n1 'check_interval = "1s";'
web='{ name = "web"; upstreams = ( { destination_name = "echo"; local_bind_port = '$UP'; } ); }'
cat > "$T/n1/services.d/svc.conf" <<EOC
services = ( { name = "echo"; port = $PA; connect = {}; }, $web );
EOC
start_helperd n1 || { fail "helperd starts"; finish; exit 1; }
LOG=$T/n1/helperd.log

out=$(echo_through "$UP" web)
check "served by the first definition (got '$out')" [ "$out" = "A-hello-$UP" ]

# A connection that stays open across the reloads: it sends a line each
# time $T/goN appears and prints the reply.
cat > "$T/long.py" <<'PY'
import os, socket, sys, time
port, tdir, rounds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port), timeout=60)
for k in range(1, rounds + 1):
    while not os.path.exists("%s/go%d" % (tdir, k)):
        time.sleep(0.05)
    s.sendall(b"line%d\n" % k)
    got = b""
    while not got.endswith(b"\n"):
        d = s.recv(64)
        if not d:
            break
        got += d
    print(got.decode().strip() or "closed", flush=True)
    open("%s/done%d" % (tdir, k), "w").close()
PY
wait_file() { for _ in $(seq 1 200); do [ -e "$1" ] && return 0; sleep 0.05; done; return 1; }
env LD_PRELOAD="$SHIM" MESH_SERVICE=web python3 "$T/long.py" "$UP" "$T" 3 \
    > "$T/long.out" 2>&1 &
LP=$!; PIDS="$PIDS $LP"
touch "$T/go1"; wait_file "$T/done1"
check "the long connection is served by A (got '$(sed -n 1p "$T/long.out")')" \
    [ "$(sed -n 1p "$T/long.out")" = "A-line1" ]

# Change the service: port PB, where nothing listens yet, with a check that
# needs 2 passes in a row. The old definition keeps serving.
cat > "$T/n1/services.d/svc.conf" <<EOC
services = ( { name = "echo"; port = $PB; connect = {};
               check = { tcp = "127.0.0.1:$PB"; interval = "1s";
                         success_before_passing = 2; }; }, $web );
EOC
"$MESHCTL" reload >/dev/null 2>&1
check "meshctl reload with the changed service" [ $? = 0 ]
check "helperd says the previous definition serves meanwhile" \
    grep -q "echo changed: dialled on its previous definition (127.0.0.1:$PA) until the new one (127.0.0.1:$PB)" "$LOG"
bad=0; n=0
for _ in $(seq 1 10); do
	out=$(echo_through "$UP" web); n=$((n + 1))
	[ "$out" = "A-hello-$UP" ] || { bad=$((bad + 1)); echo "# got '$out'"; }
	sleep 0.1
done
check "$n connections while the new definition is not ready: all served by A ($bad not)" [ "$bad" = 0 ]
st=$(curl -s "http://$HTTP_ADDR/v1/health/service/echo" | python3 -c '
import json, sys
print(" ".join("%s:%s" % (e["Service"]["Port"], all(c["Status"] == "passing" for c in e["Checks"])) for e in json.load(sys.stdin)))')
check "/v1/health/service/echo lists the instance dialled: A's port, passing (got '$st')" [ "$st" = "$PA:True" ]

# The new instance comes up: after 2 passes the service switches to it.
socat tcp-l:"$PB",fork,reuseaddr system:'sed -u s/^/B-/' >/dev/null 2>&1 &
PIDS="$PIDS $!"
wait_port "$PB"
got=""
for _ in $(seq 1 100); do
	out=$(echo_through "$UP" web)
	[ "$out" = "B-hello-$UP" ] && { got=B; break; }
	[ "$out" = "A-hello-$UP" ] || { got="bad:$out"; break; }
	sleep 0.1
done
check "served by the new definition once it passes (got $got)" [ "$got" = B ]
check "helperd logged the switch" grep -q "echo: its new definition passes its checks: dialled from now on (the previous one, 127.0.0.1:$PA, no longer)" "$LOG"
check "the new check needed 2 passes (1 of 2 logged first)" grep -q "check service:echo passed (1 of 2 successes before passing)" "$LOG"
touch "$T/go2"; wait_file "$T/done2"
check "the long connection opened on A still goes to A after the switch (got '$(sed -n 2p "$T/long.out")')" \
    [ "$(sed -n 2p "$T/long.out")" = "A-line2" ]

# Remove the service: the open connection keeps going, new ones are refused.
cat > "$T/n1/services.d/svc.conf" <<EOC
services = ( $web );
EOC
kill -HUP "$HELPERD_PID"
for _ in $(seq 1 100); do
	[ "$(grep -c "reloaded: 1 service" "$LOG")" -ge 1 ] && break; sleep 0.05
done
touch "$T/go3"; wait_file "$T/done3"
check "the long connection still works after echo is removed (got '$(sed -n 3p "$T/long.out")')" \
    [ "$(sed -n 3p "$T/long.out")" = "A-line3" ]
out=$(echo_through "$UP" web)
check "a new connection to the removed echo is refused (got '$out')" [ -z "$out" ]
check "refused as 'no instance of echo'" grep -q "web => echo: no instance of echo" "$LOG"
n=$(grep -c "no healthy instance of echo" "$LOG")
check "never 'no healthy instance of echo' ($n times)" [ "$n" = 0 ]
wait "$LP"
stop_helperd "$HELPERD_PID"; rc=$?
check "SIGTERM: exit 0" [ "$rc" = 0 ]
finish
