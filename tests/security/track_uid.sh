#!/bin/bash
# The same-node direct path (same_node_mtls = false): TRACK hands helperd a
# 4-tuple to destroy later (SOCK_DESTROY) when a change denies the pair.
# An unprivileged user may TRACK only its own sockets: TRACK of a
# root-owned connection's 4-tuple is refused (EACCES) and that connection
# stays up, while TRACK of the user's own connection is accepted (so the
# check is not "refuse everything"). DIRECT/TRACK spoken as the shim does,
# by a real process of uid nobody.
. "$(dirname "$0")/sock_lib.sh"

ECHO=$(free_port)
start_echo "$ECHO"
write_conf n1 'default_intention = "allow";' 'same_node_mtls = false;' 'check_interval = "1s";' "services = (
  { name = \"socat\"; port = $ECHO; connect = {}; },
  { name = \"web\"; port = 2; connect = {}; } );"
start_helperd n1 || { fail "helperd starts"; finish; exit 1; }
check "helperd offers the direct path" grep -q "direct=1\|same-node without TLS" "$T/n1/helperd.log"
wait_passing socat || true

# root's plain connection to socat, held open; its local port in a file.
cat > "$T/hold.py" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
open(sys.argv[2], "w").write(str(s.getsockname()[1]))
time.sleep(8)
s.sendall(b"still-up\n")
print(s.recv(64).decode().strip())
PY
/usr/bin/python3 "$T/hold.py" "$ECHO" "$T/root.port" > "$T/root.out" &
HOLD=$!
for _ in $(seq 100); do [ -s "$T/root.port" ] && break; sleep 0.05; done

cat > "$PUB/track.py" <<'PY'
import socket, sys
ctl, echo, victim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_UNIX); s.connect(ctl); f = s.makefile("rwb", 0)
def ask(line):
    f.write(line.encode() + b"\n"); return f.readline().decode().strip()
print("hello:", ask("HELLO web")[:2])
print("direct:", ask("DIRECT socat"))
print("victim:", ask("TRACK socat 127.0.0.1 %d 127.0.0.1 %d" % (victim, echo)))
mine = socket.create_connection(("127.0.0.1", echo), 5)
print("own:", ask("TRACK socat 127.0.0.1 %d 127.0.0.1 %d" % (mine.getsockname()[1], echo)))
PY
out=$(as_nobody "$NPY" "$PUB/track.py" "$MESH_SOCKET" "$ECHO" "$(cat "$T/root.port")")
echo "$out" | sed 's/^/    /'
check "DIRECT answers nobody with the direct address" sh -c "echo '$out' | grep -q '^direct: OK direct 127.0.0.1 $ECHO'"
check "TRACK of root's connection is refused: EACCES" sh -c "echo '$out' | grep -q '^victim: ERR EACCES'"
check "TRACK of nobody's own connection is accepted" sh -c "echo '$out' | grep -q '^own: OK$'"
wait "$HOLD"
check "root's connection stayed up ($(cat "$T/root.out"))" [ "$(cat "$T/root.out")" = still-up ]
finish
