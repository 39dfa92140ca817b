# reload_load.py: the load and the reloads of tests/integration/reload_load.sh
# and bench/reload_soak.sh (issue 19).
#
#   reload_load.py load PORT CLIENTS DURATION
#       CLIENTS threads connect to 127.0.0.1:PORT (through the shim when
#       LD_PRELOAD has it), echo one line, close, for DURATION s. Prints
#       "N connections, F failed {reason: count}"; exit 1 if F > 0 or N == 0.
#
#   reload_load.py reload DURATION PAUSE HELPERD_PID HTTP_ADDR MESHCTL
#                  OTHER_PORT SVC_FILE
#       Every PAUSE s for DURATION s, one reload, started on time in a
#       thread of its own (a slow one does not delay the next; at most 64
#       at once): SIGHUP, PUT /v1/agent/reload, `meshctl reload`, an API
#       registration or deregistration of "other", in turn. Every 10th
#       first rewrites SVC_FILE from SVC_FILE.a / SVC_FILE.b in turn (a
#       changed definition of the service under load). Prints "N of P
#       planned reloads happened, E errors [...]"; exit 1 on an error.
#       Env MESH_TEST_TOKEN: the ACL token for the HTTP API.
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request


def load(port, clients, duration):
    lock = threading.Lock()
    total = [0]
    fails = {}
    end = time.time() + duration

    def worker(k):
        while time.time() < end:
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

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    nf = sum(fails.values())
    print("%d connections, %d failed %s" % (total[0], nf, fails if fails else ""))
    return 1 if nf or total[0] == 0 else 0


def reload(duration, pause, hpid, http, meshctl, other, svc_file):
    token = os.environ["MESH_TEST_TOKEN"]
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    lock = threading.Lock()
    done = [0]
    errs = []
    running = threading.BoundedSemaphore(64)
    defs = [open(svc_file + ".a").read(), open(svc_file + ".b").read()]

    def put(path, data=None):
        req = urllib.request.Request("http://%s%s" % (http, path), data=data,
                                     method="PUT",
                                     headers={"X-Consul-Token": token})
        with urllib.request.urlopen(req, timeout=60) as r:
            if r.status != 200:
                raise OSError("%s: %d" % (path, r.status))

    def one(i):
        try:
            k = i % 4
            if k == 0:
                os.kill(hpid, signal.SIGHUP)
            elif k == 1:
                put("/v1/agent/reload")
            elif k == 2:
                subprocess.run([meshctl, "reload"], env=env, check=True,
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=60)
            elif (i // 4) % 2 == 0:
                put("/v1/agent/service/register",
                    b'{"Name": "other", "Port": %d}' % other)
            else:
                put("/v1/agent/service/deregister/other")
            with lock:
                done[0] += 1
        except Exception as e:
            with lock:
                errs.append("%d: %s" % (i % 4, e))
        finally:
            running.release()

    planned = int(round(duration / pause))
    start = time.time()
    threads = []
    for i in range(planned):
        delay = start + i * pause - time.time()
        if delay > 0:
            time.sleep(delay)
        if i % 10 == 9:
            # A changed definition of the service under load: the next
            # reload (SIGHUP, HTTP or meshctl) picks it up.
            with open(svc_file + ".tmp", "w") as f:
                f.write(defs[(i // 10) % 2])
            os.rename(svc_file + ".tmp", svc_file)
        if not running.acquire(blocking=False):
            continue        # 64 still running: this one does not happen
        t = threading.Thread(target=one, args=(i,))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    print("%d of %d planned reloads happened, %d errors %s" % (
        done[0], planned, len(errs), errs[:3] if errs else ""))
    return 1 if errs else 0


if __name__ == "__main__":
    a = sys.argv[1:]
    if a and a[0] == "load" and len(a) == 4:
        sys.exit(load(int(a[1]), int(a[2]), float(a[3])))
    if a and a[0] == "reload" and len(a) == 8:
        sys.exit(reload(float(a[1]), float(a[2]), int(a[3]), a[4], a[5],
                        int(a[6]), a[7]))
    sys.stderr.write("usage: see the top of %s\n" % sys.argv[0])
    sys.exit(2)
