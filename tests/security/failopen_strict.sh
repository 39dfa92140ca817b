#!/bin/bash
# A strict service whose shim cannot ask helperd must not fail open. db is
# inbound = "strict"; its server starts while helperd is not running (or
# cannot be reached: a local user can keep it busy). An unprivileged
# user's direct connection must be refused; once helperd is up, mesh
# connections work and direct ones are still refused; after helperd stops,
# the last known policy (strict) holds. Against the old code the first
# direct connection is accepted (policy unknown = permissive): this test
# fails.
. "$(dirname "$0")/sock_lib.sh"

DB=$(free_port); UP=$(free_port)
write_conf n1 'default_intention = "allow";' 'check_interval = "1s";' "services = (
  { name = \"db\"; port = $DB; connect = {}; inbound = \"strict\"; },
  { name = \"web\"; port = 2; connect = {};
    upstreams = ( { destination_name = \"db\"; local_bind_port = $UP; } ); } );"
export MESH_SOCKET="$T/n1/helperd.sock"
id_server "$DB" "$T/db.ids"

out=$(as_nobody "$NPY" "$PUB/client.py" "$DB")
check "helperd never reached: nobody's direct connection is refused (got: '$out')" [ -z "$out" ]
check "... db accepted nothing" [ ! -s "$T/db.ids" ]

start_helperd n1 || { fail "helperd starts"; finish; exit 1; }
check "db is passing" wait_passing db
out=$(printf 'x\n' | LD_PRELOAD="$SHIM" MESH_SERVICE=web timeout 5 nc -N 127.0.0.1 "$UP" 2>/dev/null | head -1)
check "helperd up: a mesh connection reaches db as web ($out)" sh -c "echo '$out' | grep -q '^id=spiffe://.*/svc/web$'"
out=$(as_nobody "$NPY" "$PUB/client.py" "$DB")
check "helperd up: a direct connection is refused (got: '$out')" [ -z "$out" ]

stop_helperd "$HELPERD_PID"
out=$(as_nobody "$NPY" "$PUB/client.py" "$DB")
check "helperd stopped: a direct connection is still refused (got: '$out')" [ -z "$out" ]
check "db accepted only the mesh connection ($(tr '\n' ' ' < "$T/db.ids"))" [ "$(grep -c . "$T/db.ids")" = 1 ]
finish
