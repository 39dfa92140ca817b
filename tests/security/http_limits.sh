#!/bin/bash
# Issue 12, part 5 (HTTP): one local user must not exhaust the HTTP API
# for the others, a huge body is refused before it is read, a control
# byte in the path is a 400, a slow client is cut off, a non-loopback
# http_addr needs the ACLs, and -dev stays on loopback. The flood runs as
# uid nobody (setpriv) and is shown to lock others out of a node without
# a per-client limit, so that the test can fail.
. "$(dirname "$0")/../integration/lib.sh"

command -v setpriv >/dev/null || skip_test "setpriv (util-linux) is missing"
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups env -u CURL_HOME "$@"; }

# flood N: nobody holds N idle connections to the API; prints how many
# are still open after 1 s (the others were closed by helperd), then
# keeps them until $T/flood.stop appears (at most 20 s).
flood() {
	rm -f "$T/flood.stop" "$T/flood.out"
	as_nobody python3 - "$HTTP_ADDR" "$1" "$T/flood.stop" > "$T/flood.out" 2>&1 <<'PY' &
import os, resource, select, socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
n, stop = int(sys.argv[2]), sys.argv[3]
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 64, n + 64))
socks = []
for _ in range(n):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex((host, int(port)))
    socks.append(s)
time.sleep(1)
p = select.poll()
for s in socks:
    p.register(s, select.POLLIN)
closed = 0
for fd, ev in p.poll(0):
    try:
        if socket.socket(fileno=os.dup(fd)).recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
            closed += 1
    except OSError:
        closed += 1
print("open", n - closed, flush=True)
end = time.time() + 20
while not os.path.exists(stop) and time.time() < end:
    time.sleep(0.1)
PY
	FLOOD=$!
	for _ in $(seq 100); do [ -s "$T/flood.out" ] && break; sleep 0.05; done
}
other_gets_in() { curl -q -s -o /dev/null -w '%{http_code}' --max-time 3 "http://$HTTP_ADDR/v1/agent/self"; }

ulimit -n 8192 2>/dev/null
write_conf n1
start_helperd n1
A="http://$HTTP_ADDR"

# --- a flood of 300 idle connections from one uid
flood 300
held=$(sed -n 's/^open //p' "$T/flood.out")
code=$(other_gets_in)
touch "$T/flood.stop"; wait "$FLOOD"
check "nobody's 300 idle connections: helperd keeps at most 200 ($held)" test "${held:-999}" -le 200
check "... and root still gets in at once: $code" [ "$code" = 200 ]
check "... and says so, once a second at most" grep -q "http_max_conns_per_client" "$T/n1/helperd.log"

# --- a 10 MB body: 413 before it is sent (headers only, then wait)
out=$(python3 - "$HTTP_ADDR" <<'PY'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), 5)
s.settimeout(3)
s.sendall(b"PUT /v1/agent/service/register HTTP/1.1\r\nHost: x\r\n"
          b"Content-Length: 10485760\r\n\r\n" + b" " * 65536)
try:
    print(s.recv(200).split(b"\r\n")[0].decode())
except socket.timeout:
    print("no answer within 3 s")
PY
)
check "a declared 10 MB body gets 413 at once, before it is read ($out)" [ "${out#HTTP/1.1 413}" != "$out" ]
head -c 10485760 /dev/zero > "$T/big"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X PUT --data-binary @"$T/big" "$A/v1/agent/service/register")
check "curl sending 10 MB gets 413: $code" [ "$code" = 413 ]
head -c 300000 /dev/zero | tr '\0' ' ' > "$T/mid"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST --data-binary @"$T/mid" "$A/v1/connect/intentions")
check "a body a little over the cap (300 kB) gets a clean 413: $code" [ "$code" = 413 ]

# --- control bytes in the path
raw() { # raw REQUEST-LINE: the status line helperd answers
	python3 - "$HTTP_ADDR" "$1" <<'PY'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), 5)
s.settimeout(3)
s.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin-1") + b"\r\nHost: x\r\n\r\n")
print(s.recv(200).split(b"\r\n")[0].decode())
PY
}
out=$(raw 'GET /v1/agent/se\x00lf HTTP/1.1')
check "a NUL in the path is 400 ($out)" [ "${out#HTTP/1.1 400}" != "$out" ]
out=$(raw 'GET /v1/catalog/service/db\x01x HTTP/1.1')
check "a raw control byte in the path is 400 ($out)" [ "${out#HTTP/1.1 400}" != "$out" ]
code=$(curl -s -o /dev/null -w '%{http_code}' "$A/v1/catalog/service/a%00b")
check "an encoded NUL (%00) is 400: $code" [ "$code" = 400 ]
code=$(curl -s -o /dev/null -w '%{http_code}' "$A/v1/catalog/service/a%0ab")
check "an encoded newline (%0a) is 400: $code" [ "$code" = 400 ]
out=$(raw 'GET /v1/agent/self HTTP/1.1')
check "a clean path still works ($out)" [ "${out#HTTP/1.1 200}" != "$out" ]

# --- a client that never finishes its headers is cut off
out=$(as_nobody python3 - "$HTTP_ADDR" <<'PY'
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), 5)
s.sendall(b"GET /v1/agent/self HTTP/1.1\r\n")
s.settimeout(15)
t0 = time.time()
try:
    while True:
        time.sleep(1)
        s.sendall(b"X-a: b\r\n")     # a byte now and then: not idle
except (BrokenPipeError, ConnectionResetError):
    pass
print("closed after %.0f s" % (time.time() - t0))
PY
)
secs=$(echo "$out" | sed -n 's/closed after \([0-9]*\) s/\1/p')
check "headers dribbled a line a second are cut off ($out)" test "${secs:-999}" -le 12
stop_helperd "$HELPERD_PID"

# --- the same flood against a node without a per-client limit locks
# everyone out (so the first check can fail)
write_conf n2 'limits = { http_max_conns_per_client = 100000; };'
start_helperd n2
flood 1100
code=$(other_gets_in)
touch "$T/flood.stop"; wait "$FLOOD"
check "without the limit, 1100 idle connections from nobody lock root out: $code" [ "$code" != 200 ]
stop_helperd "$HELPERD_PID"

# --- http_addr off loopback needs the ACLs; -dev stays on loopback
write_conf n3 'acl = { enabled = false; };'
sed -i 's/^http_addr = .*/http_addr = "0.0.0.0:0";/' "$T/n3/mesh.conf"
"$HELPERD" -c "$T/n3/mesh.conf" -check > "$T/n3.out" 2>&1; rc=$?
check "http_addr 0.0.0.0 with acl off is refused: exit $rc ($(head -c 120 "$T/n3.out"))" [ $rc = 1 ]
check "... naming the reason" grep -q "not a loopback address" "$T/n3.out"
write_conf n4
sed -i 's/^http_addr = .*/http_addr = "0.0.0.0:0";/' "$T/n4/mesh.conf"
start_helperd n4
check "http_addr 0.0.0.0 with ACLs starts and says the API is reachable" grep -q "is not loopback" "$T/n4/helperd.log"
ip=$(ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1 | head -1)
if [ -n "$ip" ]; then
	port=${HTTP_ADDR##*:}
	code=$(curl -q -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$ip:$port/v1/catalog/services")
	check "from a non-loopback address even reads need a token: $code" [ "$code" = 403 ]
fi
stop_helperd "$HELPERD_PID"
write_conf n5
"$HELPERD" -dev -c "$T/n5/mesh.conf" > "$T/n5/helperd.log" 2>&1 &
DEV=$!; PIDS="$PIDS $DEV"
for _ in $(seq 100); do [ -s "$T/n5/data/ports.json" ] && break; sleep 0.05; done
mp=$(jq_get "$T/n5/data/ports.json" mesh_port)
check "-dev: the mesh port listens on 127.0.0.1 only" sh -c "ss -Htln 'sport = :$mp' | grep -q '127.0.0.1:$mp'"
check "-dev: the start banner says the API is open" grep -q "OPEN to every local user" "$T/n5/helperd.log"
stop_helperd "$DEV"
write_conf n6 'bind_addr = "0.0.0.0";'
"$HELPERD" -dev -c "$T/n6/mesh.conf" -check > "$T/n6.out" 2>&1; rc=$?
check "-dev refuses bind_addr 0.0.0.0: exit $rc" [ $rc = 1 ]
check "... naming the reason ($(head -c 100 "$T/n6.out"))" grep -q "loopback only" "$T/n6.out"
finish
