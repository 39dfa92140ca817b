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
