#!/bin/bash
# Two instances of one service on one node (issue 11, part 6): billing-1
# and billing-2 (same Name, other ID and port) both registered through the
# API are both in the catalog, both dialled (connections spread over
# them), one failing is failed over at once, both survive a restart, and
# deregistering one leaves the other serving.
. "$(dirname "$0")/lib.sh"

P1=$(free_port); P2=$(free_port); UP=$(free_port)
backend() { # backend PORT NAME: answers its name to every connection
	socat tcp-l:"$1",fork,reuseaddr system:"echo $2" >/dev/null 2>&1 &
	PIDS="$PIDS $!"
	eval "PID_$2=$!"
	wait_port "$1"
}
backend "$P1" b1
backend "$P2" b2
write_conf n1
cat > "$T/n1/services.d/web.conf" <<EOC
services = ( { name = "web"; upstreams = ( { destination_name = "billing";
                                             local_bind_port = $UP; } ); } );
EOC
start_helperd n1 || { fail "helperd starts"; finish; exit 1; }
A=$HTTP_ADDR
for i in 1 2; do
	port=$([ $i = 1 ] && echo "$P1" || echo "$P2")
	code=$(api -X PUT --data "{\"Name\": \"billing\", \"ID\": \"billing-$i\", \"Port\": $port, \"Connect\": {}}" "http://$A/v1/agent/service/register")
	check "register billing-$i: 200" [ "$code" = 200 ]
done
count() { curl -s "http://$A$1" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
check "/v1/catalog/service/billing lists both ($(count /v1/catalog/service/billing))" [ "$(count /v1/catalog/service/billing)" = 2 ]
check "/v1/health/service/billing?passing: both passing ($(count '/v1/health/service/billing?passing'))" [ "$(count '/v1/health/service/billing?passing')" = 2 ]
ids=$(curl -s "http://$A/v1/agent/services" | python3 -c 'import json,sys; print(" ".join(sorted(k for k in json.load(sys.stdin) if k.startswith("billing"))))')
check "/v1/agent/services has both IDs ($ids)" [ "$ids" = "billing-1 billing-2" ]

# twenty connections: which instance answered each
spread() {
	for _ in $(seq 20); do
		env LD_PRELOAD="$SHIM" MESH_SERVICE=web timeout 5 nc 127.0.0.1 "$UP" </dev/null 2>/dev/null || echo FAILED
	done | sort | uniq -c | tr -s ' \n' ' '
}
out=$(spread)
check "connections spread over both instances ($out)" sh -c "echo '$out' | grep -q b1 && echo '$out' | grep -q b2 && ! echo '$out' | grep -q FAILED"

# billing-1 dies: every connection still answered (by billing-2), before
# and after its check notices.
kill "$PID_b1"; wait "$PID_b1" 2>/dev/null
out=$(spread)
check "billing-1 down: all 20 answered by billing-2 ($out)" [ "$out" = " 20 b2 " ]

# restart: both registrations are loaded again
backend "$P1" b1
stop_helperd "$HELPERD_PID"
start_helperd n1 || fail "helperd restarts"
A=$HTTP_ADDR
check "after a restart both are in the catalog ($(count /v1/catalog/service/billing))" [ "$(count /v1/catalog/service/billing)" = 2 ]
out=$(spread)
check "... and both are dialled ($out)" sh -c "echo '$out' | grep -q b1 && echo '$out' | grep -q b2"

code=$(api -X PUT "http://$A/v1/agent/service/deregister/billing-1")
check "deregister billing-1: 200" [ "$code" = 200 ]
out=$(spread)
check "only billing-2 serves now ($out)" [ "$out" = " 20 b2 " ]
check "one instance left in the catalog" [ "$(count /v1/catalog/service/billing)" = 1 ]
stop_helperd "$HELPERD_PID"; rc=$?
check "SIGTERM: exit 0" [ "$rc" = 0 ]
finish
