#!/bin/bash
# helperd under Type=notify: READY=1 once it serves, WATCHDOG=1 while its
# loop turns (WatchdogSec), STOPPING=1 at SIGTERM, as systemd would see
# them on $NOTIFY_SOCKET (a datagram socket this test listens on).
. "$(dirname "$0")/lib.sh"

grep -q '#define HAVE_LIBSYSTEMD 1' "$BUILDDIR/config.h" ||
	skip_test "helperd built without libsystemd (meson -Dsystemd=disabled)"

cat > "$T/listen.py" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(0.5)
end = time.time() + 60
with open(sys.argv[2], "a", buffering=1) as out:
    while time.time() < end:
        try:
            msg = s.recv(4096).decode()
        except socket.timeout:
            continue
        for line in msg.split("\n"):
            out.write(line + "\n")
        if "STOPPING=1" in msg:
            break
PY
python3 "$T/listen.py" "$T/notify" "$T/notes" &
LPID=$!; PIDS="$PIDS $LPID"
for _ in $(seq 50); do [ -S "$T/notify" ] && break; sleep 0.1; done
write_conf n1
# WATCHDOG_USEC = 0.4 s: helperd pings every 0.2 s.
NOTIFY_SOCKET=$T/notify WATCHDOG_USEC=400000 start_helperd n1
check "helperd started" [ -n "${HELPERD_PID:-}" ]
for _ in $(seq 100); do grep -q '^READY=1' "$T/notes" 2>/dev/null && break; sleep 0.05; done
check "READY=1 sent" grep -q '^READY=1$' "$T/notes"
check "... once the API answers" curl -sf "http://$HTTP_ADDR/v1/agent/self" -o /dev/null
sleep 1.5
n=$(grep -c '^WATCHDOG=1$' "$T/notes")
check "WATCHDOG=1 sent while running ($n in 1.5 s)" [ "$n" -ge 3 ]
check "the watchdog is logged" grep -q 'systemd watchdog: every 200 ms' "$T/n1/helperd.log"
stop_helperd "$HELPERD_PID"
check "helperd exits 0 on SIGTERM" [ $? = 0 ]
wait "$LPID"
check "STOPPING=1 sent at SIGTERM" grep -q '^STOPPING=1$' "$T/notes"
check "READY before STOPPING" sh -c "grep -n 'READY=1\|STOPPING=1' '$T/notes' | head -1 | grep -q READY"

# Without NOTIFY_SOCKET (not under systemd): nothing breaks, nothing said.
write_conf n2
start_helperd n2
check "helperd without NOTIFY_SOCKET starts" curl -sf "http://$HTTP_ADDR/v1/agent/self" -o /dev/null
check "... and logs no sd_notify error" sh -c "! grep -q sd_notify '$T/n2/helperd.log'"
stop_helperd "$HELPERD_PID"
finish
