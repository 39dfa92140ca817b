# Shared by the host/socket security tests (connection ownership, strict
# inbound, files, EMFILE): the integration harness plus a way to run the
# attacker as a real unprivileged process.
#
# SOCK_NETNS=1 before sourcing: the test re-runs itself in a fresh network
# namespace with a narrow ephemeral port range (40000-40099), so that an
# attacker can register every port a client may get.
if [ "${SOCK_NETNS:-}" = 1 ] && [ -z "${SOCK_IN_NETNS:-}" ] && [ "$(id -u)" = 0 ]; then
	ns=msec_$$_$RANDOM
	ip netns add "$ns" || { echo "SKIP: cannot create a network namespace"; exit 77; }
	ip netns exec "$ns" ip link set lo up
	ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="40000 40099"
	SOCK_IN_NETNS=1 ip netns exec "$ns" bash "$0" "$@"
	rc=$?
	ip netns del "$ns"
	exit $rc
fi
. "$(dirname "$0")/../integration/lib.sh"

[ "$(id -u)" = 0 ] || skip_test "needs root (runs the attacker as nobody)"
command -v setpriv >/dev/null || skip_test "needs setpriv (util-linux)"

# as_nobody CMD...: run as uid nobody, gid nogroup, no supplementary groups.
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
# The system python: a python3 found first on PATH may live under /root.
NPY=/usr/bin/python3

# The build tree may be under /root (0700): copy what the attacker runs
# into a world-readable dir. pub FILE -> prints its public copy's path.
PUB="$T/pub"
mkdir -p "$PUB"; chmod 0755 "$PUB"
pub() { cp "$1" "$PUB/"; chmod a+rx "$PUB/$(basename "$1")"; echo "$PUB/$(basename "$1")"; }

# id_server PORT OUT: a root server with the shim as service $SVC (default
# db) on 127.0.0.1:PORT that answers every connection it accepts with
# "id=<meshshim_peer_id or none>" and appends the same line to OUT.
id_server() {
	cat > "$T/id_server.py" <<'PY'
import ctypes, socket, sys, threading
port, out = int(sys.argv[1]), sys.argv[2]
peer_id = ctypes.CDLL(None).meshshim_peer_id
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", port)); ls.listen(64)
def serve(c):
    buf = ctypes.create_string_buffer(256)
    who = buf.value.decode() if peer_id(c.fileno(), buf, 256) == 0 else "none"
    open(out, "a").write("id=%s\n" % who)
    try:
        c.sendall(b"id=%s\n" % who.encode())
        c.settimeout(30)
        while c.recv(4096):
            pass
    except OSError:
        pass
    c.close()
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
	LD_PRELOAD="$SHIM" MESH_SERVICE=${SVC:-db} /usr/bin/python3 "$T/id_server.py" "$1" "$2" &
	PIDS="$PIDS $!"
	wait_port "$1"
}

# wait_passing SERVICE: until helperd's health says it is passing.
wait_passing() {
	for _ in $(seq 100); do
		curl -s "http://$HTTP_ADDR/v1/health/service/$1?passing" | grep -q "\"$1\"" && return 0
		sleep 0.1
	done
	return 1
}

# The attacker's client: connect (from SRC if given) to 127.0.0.1:PORT,
# print what the server says within 2 s (nothing if it is refused).
cat > "$PUB/client.py" <<'PY'
import socket, sys
port, src = int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None
s = socket.socket()
if src:
    a, p = src.rsplit(":", 1)
    s.bind((a, int(p)))
s.settimeout(2)
try:
    s.connect(("127.0.0.1", port))
    print(s.recv(256).decode().strip())
except OSError as e:
    print("")
PY
chmod a+r "$PUB/client.py"
