# Shared by the host/socket security tests (connection ownership, strict
# inbound, files, EMFILE): the integration harness plus a way to run the
# attacker as a real unprivileged process.
. "$(dirname "$0")/../integration/lib.sh"

[ "$(id -u)" = 0 ] || skip_test "needs root (runs the attacker as nobody)"
command -v setpriv >/dev/null || skip_test "needs setpriv (util-linux)"

# as_nobody CMD...: run as uid nobody, gid nogroup, no supplementary groups.
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }

# The build tree may be under /root (0700): copy what the attacker runs
# into a world-readable dir. pub FILE -> prints its public copy's path.
PUB="$T/pub"
mkdir -p "$PUB"; chmod 0755 "$PUB"
pub() { cp "$1" "$PUB/"; chmod a+rx "$PUB/$(basename "$1")"; echo "$PUB/$(basename "$1")"; }
