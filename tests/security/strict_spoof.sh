#!/bin/bash
# Strict inbound, source-port spoof. db is inbound = "strict" with the shim
# in its server. While web holds a mesh connection to db (helperd's socket
# 127.0.0.1:P -> db), an unprivileged user connects to db from 127.0.0.2:P,
# the same port on another loopback address. The shim asks helperd about
# the whole 4-tuple and the socket's cookie: helperd must not vouch for
# it, and db refuses it. Against the old code (ACCEPT matched the peer port
# only) it is accepted and reported as web's SPIFFE ID: this test fails.
. "$(dirname "$0")/sock_lib.sh"

DB=$(free_port); UP=$(free_port)
write_conf n1 'default_intention = "allow";' 'check_interval = "1s";' "services = (
  { name = \"db\"; port = $DB; connect = {}; inbound = \"strict\"; },
  { name = \"web\"; port = 2; connect = {};
    upstreams = ( { destination_name = \"db\"; local_bind_port = $UP; } ); } );"
start_helperd n1 || { fail "helperd starts"; finish; exit 1; }
id_server "$DB" "$T/db.ids"
check "db is passing" wait_passing db

# web's long session through the mesh: it reads its id line, then holds.
cat > "$T/hold.py" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
open(sys.argv[2], "w").write(s.recv(256).decode())
time.sleep(float(sys.argv[3]))
PY
LD_PRELOAD="$SHIM" MESH_SERVICE=web /usr/bin/python3 "$T/hold.py" "$UP" "$T/web.out" 20 &
PIDS="$PIDS $!"
for _ in $(seq 100); do [ -s "$T/web.out" ] && break; sleep 0.05; done
check "web's mesh session reaches db as web ($(cat "$T/web.out"))" grep -q "^id=spiffe://.*/svc/web$" "$T/web.out"

# The attacker finds helperd's port towards db in /proc/net/tcp (public).
cat > "$PUB/spoof.py" <<'PY'
import sys
db = int(sys.argv[1])
for line in open("/proc/net/tcp").readlines()[1:]:
    f = line.split()
    la, lp = f[1].split(":"); ra, rp = f[2].split(":")
    if int(rp, 16) == db and f[3] == "01" and la == "0100007F":
        print(int(lp, 16)); break
PY
P=$(as_nobody "$NPY" "$PUB/spoof.py" "$DB")
check "nobody sees helperd's source port towards db (${P:-none})" [ -n "$P" ]
out=$(as_nobody "$NPY" "$PUB/client.py" "$DB" "127.0.0.2:$P")
check "nobody from 127.0.0.2:$P is refused by strict db (got: '$out')" [ -z "$out" ]
check "db never saw a spoofed web" [ "$(grep -c . "$T/db.ids")" = 1 ]
# The check is not just "refuse everything": a new mesh connection works.
out=$(printf 'x\n' | LD_PRELOAD="$SHIM" MESH_SERVICE=web timeout 5 nc -N 127.0.0.1 "$UP" 2>/dev/null | head -1)
check "a new mesh connection still reaches db as web ($out)" sh -c "echo '$out' | grep -q '^id=spiffe://.*/svc/web$'"
check "helperd still alive" kill -0 "$HELPERD_PID"
finish
