#!/bin/bash
# Connection churn through the shim must not run out of loopback ports
# sooner than direct connections do. In a network namespace with only 301
# local ports, 800 short connections (client closes first, ~180/s, so
# TIME_WAIT ports become reusable by connect() after a second) must all
# succeed through the mesh, as they do directly.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || skip_test "needs root for a network namespace"
NS=meshchurn$$
ip netns add "$NS" 2>/dev/null || skip_test "ip netns unavailable"
AT_EXIT='ip netns del "$NS" 2>/dev/null'
ip -n "$NS" link set lo up
ip netns exec "$NS" sysctl -qw net.ipv4.ip_local_port_range="40000 40300"
ip netns exec "$NS" sysctl -qw net.ipv4.tcp_tw_reuse=2
ECHO=26301; UP=26302
cat > "$T/echo.py" <<'PY'
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(512)
def h(c):
    while True:
        d = c.recv(65536)
        if not d: break
        c.sendall(d)
    c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=h, args=(c,), daemon=True).start()
PY
cat > "$T/churn.py" <<'PY'
import socket, sys, time
port, n, pause = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
fails = {}
for i in range(n):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"x"); s.recv(1); s.close()
    except OSError as e:
        fails[str(e)] = fails.get(str(e), 0) + 1
    time.sleep(pause)
print("%d connections, failures: %s" % (n, fails))
sys.exit(1 if fails else 0)
PY
ip netns exec "$NS" python3 "$T/echo.py" "$ECHO" & PIDS="$PIDS $!"
write_conf n1 "same_node_mtls = false; services = ( { name = \"echo\"; port = $ECHO; connect = {}; } );"
sed -i 's/^http_addr.*/http_addr = "127.0.0.1:0";/' "$T/n1/mesh.conf"
ip netns exec "$NS" "$HELPERD" -c "$T/n1/mesh.conf" > "$T/n1/helperd.log" 2>&1 &
track_helperd $! "$T/n1/helperd.log"
for _ in $(seq 100); do [ -s "$T/n1/data/ports.json" ] && break; sleep 0.05; done
check "helperd started in the namespace (ports.json written)" test -s "$T/n1/data/ports.json"
out=$(ip netns exec "$NS" python3 "$T/churn.py" "$ECHO" 800 0.005); rc=$?
check "direct: $out" [ "$rc" = 0 ]
# Not a wait for an event: tcp_tw_reuse lets connect() reuse a TIME_WAIT
# port only once its last timestamp is more than 1 s old, so the shim run
# starts with the same free ports as the direct run after this long.
sleep 1.5
out=$(ip netns exec "$NS" env LD_PRELOAD="$SHIM" MESH_SOCKET="$T/n1/helperd.sock" MESH_SERVICE=web \
    MESH_UPSTREAMS="echo:$UP" python3 "$T/churn.py" "$UP" 800 0.005); rc=$?
check "through the shim: $out" [ "$rc" = 0 ]
finish
