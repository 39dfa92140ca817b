#!/bin/bash
# Port pre-registration hijack. An unprivileged user (nobody, acting as its
# own service "evil") registers every ephemeral port of the namespace
# (40000-40099) on the control socket with CONNECT evilsink <port>, again
# and again. A root-owned client (nc with the shim, service web) then
# connects to its upstream socat. helperd must place each of root's
# connections only with root's own registration (sock_diag: the socket's
# owner uid and SO_COOKIE), never with the attacker's: the attacker's
# listener receives nothing and root's client gets its echo.
# Against the old code (registration keyed by the port alone) the
# attacker's listener receives root's bytes in clear: this test fails.
SOCK_NETNS=1
. "$(dirname "$0")/sock_lib.sh"

# Fixed ports below the namespace's ephemeral range: a port taken from that
# range (free_port) could meanwhile become the local port of one of
# helperd's connections (health checks, dials) before the attacker binds it.
if [ -n "${SOCK_IN_NETNS:-}" ]; then
	ECHO=39001; UP=39002; SINK=39003
else
	ECHO=$(free_port); UP=$(free_port); SINK=$(free_port)
fi
start_echo "$ECHO"
write_conf n1 'default_intention = "allow";' 'check_interval = "1s";' "services = (
  { name = \"socat\"; port = $ECHO; connect = {}; },
  { name = \"evilsink\"; port = $SINK; connect = {}; },
  { name = \"evil\"; port = 1; user = \"nobody\"; },
  { name = \"web\"; port = 2; connect = {};
    upstreams = ( { destination_name = \"socat\"; local_bind_port = $UP; } ); } );"
start_helperd n1 || { fail "helperd starts"; finish; exit 1; }

mkdir -p "$PUB/out"; chmod 0777 "$PUB/out"
cat > "$PUB/attacker.py" <<'PY'
import socket, sys, time, threading
ctl, sink_port, out, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
# The attacker's own listener: whatever arrives is stolen.
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", sink_port)); ls.listen(64)
def sink():
    while True:
        c, _ = ls.accept()
        c.settimeout(2)
        try:
            d = c.recv(4096)
            if d:
                open(out + "/stolen", "ab").write(d)
                c.sendall(b"attacker-says-hi\n")
        except OSError:
            pass
        c.close()
threading.Thread(target=sink, daemon=True).start()
s = socket.socket(socket.AF_UNIX); s.connect(ctl); f = s.makefile("rwb", 0)
f.write(b"HELLO evil\n"); hello = f.readline()
open(out + "/hello", "wb").write(hello)
end = time.time() + secs
while time.time() < end:
    n = 0
    for p in range(40000, 40100):
        f.write(b"CONNECT evilsink %d\n" % p)
    for p in range(40000, 40100):
        if f.readline().startswith(b"OK"):
            n += 1
    # Accepted registrations of this round (evilsink must be passing).
    if n > 0:
        open(out + "/registered", "w").write(str(n))
    time.sleep(0.3)
PY
as_nobody "$NPY" "$PUB/attacker.py" "$MESH_SOCKET" "$SINK" "$PUB/out" 30 \
    2>"$PUB/out/attacker.err" &
PIDS="$PIDS $!"
# Up to 30 s: a loaded CI machine once took over 10 s to start the
# attacker's python and get its HELLO answered.
for _ in $(seq 300); do [ "$(cat "$PUB/out/registered" 2>/dev/null)" = 100 ] && break; sleep 0.1; done
check "nobody said HELLO as evil: $(cat "$PUB/out/hello" 2>/dev/null | cut -c1-40)$(tail -c 300 "$PUB/out/attacker.err" 2>/dev/null)" grep -q '^OK' "$PUB/out/hello"
check "nobody registered all 100 ephemeral ports ($(cat "$PUB/out/registered" 2>/dev/null))" \
    [ "$(cat "$PUB/out/registered" 2>/dev/null || echo 0)" -ge 100 ]

good=0
for i in $(seq 1 8); do
	out=$(printf 'secret-%s\n' "$i" | LD_PRELOAD="$SHIM" MESH_SERVICE=web timeout 5 nc -N 127.0.0.1 "$UP" 2>/dev/null)
	[ "$out" = "secret-$i" ] && good=$((good + 1))
done
check "root's 8 connections through the mesh all reached socat ($good)" [ "$good" = 8 ]
check "the attacker's listener received nothing ($(cat "$PUB/out/stolen" 2>/dev/null | tr '\n' ' '))" \
    [ ! -s "$PUB/out/stolen" ]
n=$(grep -c "registered by uid $(id -u nobody)" "$T/n1/helperd.log")
check "helperd logged the attacker's registrations it did not use ($n)" [ "$n" -ge 1 ]
check "helperd still alive" kill -0 "$HELPERD_PID"
finish
