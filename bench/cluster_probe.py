#!/usr/bin/env python3
"""cluster_probe.py: the measuring side of bench/cluster.sh.

Runs in the bridge namespace, from where every node's HTTP API
(10.78.0.N:8500) is reachable; keeps one HTTP/1.1 connection per node and
polls the nodes from THREADS threads. Times are time.time() (the same clock
as the nodes' and the script's). Each command prints one JSON object.

  propagate TOKEN WRITER TRIALS NODE...
      TRIALS times: POST a deny intention probe<k> => common on WRITER,
      then poll /v1/connect/intentions/check?source=probe<k>&destination=
      common on every NODE until it says Allowed: false; per node the
      first time it did, minus the time just before the write.
  write TOKEN WRITER SOURCE DEST
      one deny intention; prints the time just before the write
  gone TOKEN T0 LIMIT KILLED_CSV NODE...
      until no NODE lists a passing instance of common on any killed n
      (a blocking query per NODE); per killed node, the time the last
      observer stopped listing it, minus T0; per observer too
  present TOKEN T0 LIMIT NEW_CSV NODE...
      polled until every NODE lists each new node's <n>s1 passing
  reach T0 LIMIT PORT...
      (run under the shim, in an observer's namespace, with
      MESH_UPSTREAMS mapping each PORT to a new node's service): per port,
      the first time a connection through it echoes a line, minus T0
"""
import http.client
import json
import sys
import re
import threading
import time

THREADS = 8


class Api:
    def __init__(self, ip, token):
        self.ip, self.token, self.c = ip, token, None
        self.answered = 0.0

    def get(self, path):
        return self.req("GET", path, None)

    def req(self, method, path, body):
        st, data, _ = self.req_h(method, path, body)
        return st, data

    def req_h(self, method, path, body):
        for attempt in (0, 1):
            try:
                if self.c is None:
                    self.c = http.client.HTTPConnection(self.ip, 8500,
                                                        timeout=5)
                h = {"X-Consul-Token": self.token}
                if body is not None:
                    h["Content-Type"] = "application/json"
                self.c.request(method, path, body=body, headers=h)
                r = self.c.getresponse()
                self.answered = time.time()     # the head is in
                data = r.read()
                return r.status, data, r.getheader("X-Consul-Index")
            except (OSError, http.client.HTTPException):
                if self.c is not None:
                    self.c.close()
                self.c = None
                if attempt == 1:
                    return 0, b"", None
        return 0, b"", None


def pct(v, p):
    v = sorted(v)
    if not v:
        return None
    k = max(1, int(round(p / 100.0 * len(v) + 0.4999)))
    return v[min(k, len(v)) - 1]


def poll_all(apis, done_fn, limit):
    """Call done_fn(api) for each api (over THREADS threads) until it
    returns True; returns {ip: time first True} (missing: never)."""
    first = {}
    lock = threading.Lock()
    end = time.time() + limit

    def work(part):
        left = list(part)
        while left and time.time() < end:
            nxt = []
            for a in left:
                if done_fn(a):
                    with lock:
                        first[a.ip] = time.time()
                else:
                    nxt.append(a)
            left = nxt
            if left:
                time.sleep(0.005)

    ts = [threading.Thread(target=work, args=(apis[i::THREADS],))
          for i in range(THREADS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return first


def write_deny(api, src, dst):
    body = json.dumps({"SourceName": src, "DestinationName": dst,
                       "Action": "deny"})
    t0 = time.time()
    st, data = api.req("POST", "/v1/connect/intentions", body)
    t1 = time.time()
    if st != 200:
        sys.exit("intention write %s => %s on %s: HTTP %d %s" % (
            src, dst, api.ip, st, data[:200]))
    return t0, t1


def propagate(token, writer, trials, nodes):
    w = Api(writer, token)
    apis = [Api(ip, token) for ip in nodes]
    stamp = int(time.time())
    samples, per_trial, write_ms = [], [], []
    for k in range(trials):
        src = "probe%d-%d" % (stamp, k)
        q = "/v1/connect/intentions/check?source=%s&destination=common" % src

        def denied(a, q=q):
            st, data = a.get(q)
            if st != 200:
                return False
            try:
                return json.loads(data)["Allowed"] is False
            except (ValueError, KeyError):
                return False

        # every node says Allowed before the write (default allow)
        t0, t1 = write_deny(w, src, "common")
        write_ms.append((t1 - t0) * 1000)
        first = poll_all(apis, denied, 30)
        d = [first[a.ip] - t0 for a in apis if a.ip in first]
        missing = [a.ip for a in apis if a.ip not in first]
        samples += d
        per_trial.append({"max_s": max(d) if d else None,
                          "missing": missing})
        time.sleep(1)
    print(json.dumps({
        "trials": trials, "nodes": len(nodes), "samples": len(samples),
        "p50_s": pct(samples, 50), "p99_s": pct(samples, 99),
        "max_s": max(samples) if samples else None,
        "write_ms_p50": pct(write_ms, 50), "write_ms_max": max(write_ms),
        "missing": sum(len(t["missing"]) for t in per_trial),
        "per_trial_max_s": [t["max_s"] for t in per_trial]}))


def catalog(token, t0, limit, ids, nodes, want_present):
    apis = [Api(ip, token) for ip in nodes]
    # per (observer, node id): done when the observer's view is as wanted
    last = {}
    lock = threading.Lock()

    def make(n):
        q = "/v1/health/service/n%ss1?passing" % n

        def ok(a):
            st, data = a.get(q)
            if st != 200:
                return False
            try:
                listed = len(json.loads(data)) > 0
            except ValueError:
                return False
            return listed == want_present
        return ok

    # one poll per killed/new node id, each over all observers
    res = {}

    def one(n):
        mine = [Api(ip, token) for ip in nodes]
        first = poll_all(mine, make(n), limit - (time.time() - t0))
        with lock:
            res[n] = first
    ts = [threading.Thread(target=one, args=(n,)) for n in ids]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    per = {}
    for n in ids:
        first = res[n]
        miss = [a.ip for a in apis if a.ip not in first]
        per[n] = {"last_observer_s": (max(first.values()) - t0)
                  if first and not miss else None,
                  "first_observer_s": (min(first.values()) - t0)
                  if first else None,
                  "missing": len(miss)}
    worst = [p["last_observer_s"] for p in per.values()]
    print(json.dumps({
        "observers": len(nodes), "nodes": ids,
        "all_s": None if None in worst else max(worst),
        "per_node": per}))


def gone(token, t0, limit, ids, nodes):
    """One blocking query per observer on common?passing (every node has
    common): an observer answers when its view changes (helperd looks at
    held queries every 100 ms), so each observer's time is when it
    stopped listing a killed node, within 0.1 s, not a round over all
    the observers (polling 10 x 90 nodes took 1-2 s a round at 100
    nodes, docs/SCALE.md)."""
    names = {"n%s" % n: n for n in ids}
    first = {}
    lock = threading.Lock()
    # The node names in an answer, without parsing it: 90 observers
    # answering at once held the GIL for seconds with json.loads of
    # 100-instance answers (docs/SCALE.md).
    node_re = re.compile(rb'"Node":\s*"([^"]+)"')

    def watch(ip):
        a, idx, left = Api(ip, token), None, set(names)
        while left and time.time() < t0 + limit:
            q = "/v1/health/service/common?passing"
            if idx is not None:
                q += "&index=%s&wait=2s" % idx
            st, data, hdr = a.req_h("GET", q, None)
            now = a.answered
            listed = None
            if st == 200 and data.lstrip().startswith(b"["):
                listed = {m.decode() for m in node_re.findall(data)}
            if st != 200 or listed is None:
                idx = None
                time.sleep(0.05)
                continue
            idx = hdr
            with lock:
                for n in [n for n in left if n not in listed]:
                    first[(ip, names[n])] = now
                    left.discard(n)

    ts = [threading.Thread(target=watch, args=(ip,)) for ip in nodes]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    per = {}
    for n in ids:
        got = [first[(ip, n)] - t0 for ip in nodes if (ip, n) in first]
        miss = len(nodes) - len(got)
        per[n] = {"last_observer_s": max(got) if got and not miss else None,
                  "first_observer_s": min(got) if got else None,
                  "missing": miss}
    worst = [p["last_observer_s"] for p in per.values()]
    print(json.dumps({
        "observers": len(nodes), "nodes": ids, "method": "blocking",
        "all_s": None if None in worst else max(worst),
        "per_node": per,
        "per_observer_s": {"%s/%s" % k: v - t0 for k, v in first.items()}}))


def reach(t0, limit, ports):
    import socket
    got = {}
    while len(got) < len(ports) and time.time() < t0 + limit:
        for p in ports:
            if p in got:
                continue
            try:
                s = socket.create_connection(("127.0.0.1", int(p)), 1)
                s.settimeout(1)
                s.sendall(b"reach\n")
                if s.recv(16).startswith(b"reach"):
                    got[p] = time.time() - t0
                s.close()
            except OSError:
                pass
        time.sleep(0.05)
    v = list(got.values())
    print(json.dumps({"ports": len(ports), "reached": len(got),
                      "all_s": max(v) if len(got) == len(ports) else None,
                      "per_port_s": got}))


def main():
    cmd = sys.argv[1]
    if cmd == "propagate":
        propagate(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:])
    elif cmd == "write":
        t0, _ = write_deny(Api(sys.argv[3], sys.argv[2]), sys.argv[4],
                           sys.argv[5])
        print("%.6f" % t0)
    elif cmd == "gone":
        gone(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]),
             sys.argv[5].split(","), sys.argv[6:])
    elif cmd == "present":
        global THREADS
        THREADS = 2   # one poll per node id already runs in parallel
        catalog(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]),
                sys.argv[5].split(","), sys.argv[6:], True)
    elif cmd == "reach":
        reach(float(sys.argv[2]), float(sys.argv[3]), sys.argv[4:])
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
