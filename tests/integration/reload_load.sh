#!/bin/bash
# A reload must never refuse healthy traffic (issue 19). 32 clients
# connect, echo one line and close, through the shim to a socat echo
# service, for DURATION s (default 10) while the configuration is
# reloaded every 100 ms (and at least 20 times): by SIGHUP, PUT /v1/agent/reload and `meshctl
# reload` in turn, with API registrations and deregistrations of another
# service in between. Not one connection may be refused or reset.
# SOAK=1: 64 clients, 60 s, 200 reloads, and helperd's RSS and fd count
# before and after are printed.
. "$(dirname "$0")/lib.sh"

CLIENTS=32; DURATION=${DURATION:-10}; PAUSE=0.1
if [ -n "${SOAK:-}" ]; then CLIENTS=64; DURATION=60; PAUSE=0.3; fi  # 200 reloads over the minute
ECHO=$(free_port); UP=$(free_port); OTHER=$(free_port)
# socat with a deeper accept queue than its default 5: on a loaded machine
# 32 clients overflow 5, and a SYN dropped by the kernel is the service's
# capacity, not a reload (health_load tests a full queue on its own).
socat tcp-l:"$ECHO",fork,reuseaddr,backlog=256 exec:/bin/cat >/dev/null 2>&1 &
PIDS="$PIDS $!"
wait_port "$ECHO"
# check_interval 1 s: the default check (timeout: half of it) runs often
# under the load, as in the report.
write_conf n1 'check_interval = "1s";'
cat > "$T/n1/services.d/svc.conf" <<EOC
services = (
  { name = "echo"; port = $ECHO; connect = {}; },
  { name = "web"; upstreams = ( { destination_name = "echo";
                                  local_bind_port = $UP; } ); }
);
EOC
start_helperd n1 || { fail "helperd starts"; finish; exit 1; }
A=$HTTP_ADDR
cat > "$T/load.py" <<'PY'
# load.py PORT CLIENTS DURATION PAUSE HELPERD_PID HTTP_ADDR MESHCTL OTHER_PORT
# CLIENTS threads connect, echo a line and close, for DURATION s; one more
# thread reloads every PAUSE s (SIGHUP, PUT /v1/agent/reload, meshctl
# reload, an API registration or deregistration of "other", in turn).
import os, signal, socket, subprocess, sys, threading, time, urllib.request
port, clients, duration, pause = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
hpid, http, meshctl, other = int(sys.argv[5]), sys.argv[6], sys.argv[7], int(sys.argv[8])
lock = threading.Lock()
total = [0]
fails = {}
reloads = [0]
rerrs = []
# Run for duration s and until MIN_RELOADS reloads have run (a loaded
# machine reloads slower), at most 6 x duration.
MIN_RELOADS = 20
start = time.time()
mode = sys.argv[9]       # "load" (the clients) or "reload" (the reloader)
countf = sys.argv[10]    # the reloader writes its count here
def count():
    try:
        with open(countf) as f:
            return int(f.read() or 0)
    except (OSError, ValueError):
        return 0
def running():
    t = time.time()
    return t < start + 6 * duration and (t < start + duration or
        (reloads[0] if mode == "reload" else count()) < MIN_RELOADS)
def worker(k):
    while running():
        err = None
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            try:
                msg = b"hello %d\n" % k
                s.sendall(msg)
                got = b""
                while len(got) < len(msg):
                    d = s.recv(64)
                    if not d:
                        break
                    got += d
                if got != msg:
                    err = "short echo (%r)" % got[:20]
            finally:
                s.close()
        except OSError as e:
            err = type(e).__name__ + ": " + str(e)
        with lock:
            total[0] += 1
            if err:
                fails[err] = fails.get(err, 0) + 1
def put(path, data=None):
    req = urllib.request.Request("http://%s%s" % (http, path), data=data, method="PUT",
                                 headers={"X-Consul-Token": os.environ["MESH_TEST_TOKEN"]})
    with urllib.request.urlopen(req, timeout=60) as r:
        if r.status != 200:
            raise OSError("%s: %d" % (path, r.status))
def reloader():
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    i = 0
    while running():
        try:
            k = i % 4
            if k == 0:
                os.kill(hpid, signal.SIGHUP)
            elif k == 1:
                put("/v1/agent/reload")
            elif k == 2:
                subprocess.run([meshctl, "reload"], env=env, check=True,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
            elif (i // 4) % 2 == 0:
                put("/v1/agent/service/register", b'{"Name": "other", "Port": %d}' % other)
            else:
                put("/v1/agent/service/deregister/other")
            reloads[0] += 1
            with open(countf + ".tmp", "w") as f:
                f.write(str(reloads[0]))
            os.rename(countf + ".tmp", countf)
        except Exception as e:
            rerrs.append(str(e))
        i += 1
        time.sleep(pause)
if mode == "reload":
    reloader()
    print("%d reloads/registrations, %d errors %s" % (reloads[0], len(rerrs),
        rerrs[:3] if rerrs else ""))
    sys.exit(1 if rerrs or reloads[0] < MIN_RELOADS else 0)
ts = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
for t in ts: t.start()
for t in ts: t.join()
nf = sum(fails.values())
print("%d connections, %d failed %s" % (total[0], nf, fails if fails else ""))
sys.exit(1 if nf or total[0] == 0 else 0)
PY
rss_fds() {
	echo "rss $(awk '/^VmRSS/ {print $2 $3}' /proc/"$HELPERD_PID"/status) fds $(ls /proc/"$HELPERD_PID"/fd | wc -l)"
}
out=$(echo_through "$UP" web)
check "echo through the mesh before the load (got '$out')" [ "$out" = "hello-$UP" ]
before=$(rss_fds)
# The reloader is a process of its own, without the shim: the clients'
# threads must not slow it down.
MESH_TEST_TOKEN=$MESH_TEST_TOKEN python3 "$T/load.py" "$UP" "$CLIENTS" "$DURATION" "$PAUSE" "$HELPERD_PID" \
    "$A" "$MESHCTL" "$OTHER" reload "$T/count" > "$T/reload.out" 2>&1 &
RL=$!; PIDS="$PIDS $RL"
out=$(env LD_PRELOAD="$SHIM" MESH_SERVICE=web python3 "$T/load.py" "$UP" \
    "$CLIENTS" "$DURATION" "$PAUSE" "$HELPERD_PID" "$A" "$MESHCTL" "$OTHER" \
    load "$T/count" 2>&1)
rc=$?
wait "$RL"; rrc=$?
check "$CLIENTS clients for ${DURATION}s or more, under reloads: $out" [ "$rc" = 0 ]
check "reloads every ${PAUSE}s meanwhile: $(cat "$T/reload.out")" [ "$rrc" = 0 ]
n=$(grep -c "instance of echo" "$T/n1/helperd.log")
check "helperd never said echo had no (healthy) instance ($n times)" [ "$n" = 0 ]
n=$(grep -c "health: echo is critical" "$T/n1/helperd.log")
check "echo's health never went critical ($n times)" [ "$n" = 0 ]
after=$(rss_fds)
echo "# helperd before: $before; after: $after"
check "helperd still runs" kill -0 "$HELPERD_PID"
stop_helperd "$HELPERD_PID"; rc=$?
check "SIGTERM: exit 0" [ "$rc" = 0 ]
finish
