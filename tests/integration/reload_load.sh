#!/bin/bash
# A reload must never refuse healthy traffic (issue 19). 32 clients
# connect, echo one line and close, through the shim to a socat echo
# service, for 10 s while the configuration is reloaded every 100 ms:
# SIGHUP, PUT /v1/agent/reload and `meshctl reload` in turn, with API
# registrations and deregistrations of another service in between, and
# every 10th reload changes the echo service's definition (its check:
# helperd's own, or one that needs 2 passes before passing). Not one
# connection may be refused or reset, and at least 80 % of the planned
# reloads must happen meanwhile (each is started on time, in a thread of
# its own). bench/reload_soak.sh runs the same for a minute on a release
# build. The load and the reloader: reload_load.py.
. "$(dirname "$0")/lib.sh"

CLIENTS=32; DURATION=10; PAUSE=0.1
PY=$SRCDIR/tests/integration/reload_load.py
ECHO=$(free_port); UP=$(free_port); OTHER=$(free_port)
# socat with a deeper accept queue than its default 5: on a loaded machine
# 32 clients overflow 5, and a SYN dropped by the kernel is the service's
# capacity, not a reload (health_load tests a full queue on its own).
socat tcp-l:"$ECHO",fork,reuseaddr,backlog=256 exec:/bin/cat >/dev/null 2>&1 &
PIDS="$PIDS $!"
wait_port "$ECHO"
# check_interval 1 s: the default check (timeout: half of it) runs often
# under the load, as in the report.
write_conf n1 'check_interval = "1s";'
# The two definitions of echo the reloader switches between: helperd's own
# check (3 failures before critical), and a check of its own that needs 2
# passes in a row before passing (and 3 failures before critical).
web="{ name = \"web\"; upstreams = ( { destination_name = \"echo\"; local_bind_port = $UP; } ); }"
SVC=$T/n1/services.d/svc.conf
cat > "$SVC.a" <<EOC
services = ( { name = "echo"; port = $ECHO; connect = {}; }, $web );
EOC
cat > "$SVC.b" <<EOC
services = ( { name = "echo"; port = $ECHO; connect = {};
               check = { tcp = "127.0.0.1:$ECHO"; interval = "1s";
                         success_before_passing = 2;
                         failures_before_critical = 3; }; }, $web );
EOC
cp "$SVC.a" "$SVC"
start_helperd n1 || { fail "helperd starts"; finish; exit 1; }
A=$HTTP_ADDR
rss_fds() {
	echo "rss $(awk '/^VmRSS/ {print $2 $3}' /proc/"$HELPERD_PID"/status) fds $(ls /proc/"$HELPERD_PID"/fd | wc -l)"
}
out=$(echo_through "$UP" web)
check "echo through the mesh before the load (got '$out')" [ "$out" = "hello-$UP" ]
before=$(rss_fds)
# The reloader is a process of its own, without the shim: the clients'
# threads must not slow it down.
MESH_TEST_TOKEN=$MESH_TEST_TOKEN python3 "$PY" reload "$DURATION" "$PAUSE" \
    "$HELPERD_PID" "$A" "$MESHCTL" "$OTHER" "$SVC" > "$T/reload.out" 2>&1 &
RL=$!; PIDS="$PIDS $RL"
out=$(env LD_PRELOAD="$SHIM" MESH_SERVICE=web python3 "$PY" load "$UP" \
    "$CLIENTS" "$DURATION" 2>&1)
rc=$?
wait "$RL"; rrc=$?
rout=$(cat "$T/reload.out")
check "$CLIENTS clients for ${DURATION}s under reloads: $out" [ "$rc" = 0 ]
check "no reload failed: $rout" [ "$rrc" = 0 ]
planned=$(echo "$rout" | sed -n 's/^[0-9]* of \([0-9]*\) planned.*/\1/p')
happened=$(echo "$rout" | sed -n 's/^\([0-9]*\) of [0-9]* planned.*/\1/p')
check_expr "at least 80 % of the $planned planned reloads happened ($happened)" \
    '[ -n "$happened" ] && [ "$planned" -ge 100 ] && [ $((happened * 100)) -ge $((planned * 80)) ]'
n=$(grep -c "reloaded: \|registered 1 service\|deregistered service other" "$T/n1/helperd.log")
check "helperd logged at least 80 % of them too ($n reloads and registrations; SIGHUPs may coalesce)" [ $((n * 100)) -ge $((${planned:-100} * 80)) ]
n=$(grep -c "echo changed: dialled on its previous definition" "$T/n1/helperd.log")
check "the definition of echo changed under the load ($n times)" [ "$n" -ge 3 ]
n=$(grep -c "was never registered" "$T/n1/helperd.log")
check "no outbound connection was reset for want of its registration ($n)" [ "$n" = 0 ]
n=$(grep -c "instance of echo" "$T/n1/helperd.log")
check "helperd never said echo had no (healthy) instance ($n times)" [ "$n" = 0 ]
n=$(grep -c "health: echo is critical" "$T/n1/helperd.log")
check "echo's health never went critical ($n times)" [ "$n" = 0 ]
after=$(rss_fds)
echo "# helperd before: $before; after: $after"
check "helperd still runs" kill -0 "$HELPERD_PID"
stop_helperd "$HELPERD_PID"; rc=$?
check "SIGTERM: exit 0" [ "$rc" = 0 ]
finish
