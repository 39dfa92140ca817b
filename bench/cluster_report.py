#!/usr/bin/env python3
"""cluster_report.py RAWDIR OUT.md: the scale table of bench/cluster.sh.

Reads what bench/cluster.sh left in RAWDIR (results.tsv, machine.tsv, the
probes' JSON, etcd's /metrics before and after the idle window) and writes
the figures with the targets of issue 16."""
import json
import os
import re
import statistics
import sys

raw, out = sys.argv[1], sys.argv[2]


def rd(name, default=None):
    try:
        return open(os.path.join(raw, name)).read()
    except OSError:
        return default


def js(name):
    try:
        return json.loads(rd(name, ""))
    except ValueError:
        return None


res = dict(l.split("\t", 1) for l in rd("results.tsv", "").splitlines()
           if "\t" in l)
machine = [l.split("\t", 1) for l in rd("machine.tsv", "").splitlines()
           if "\t" in l]
mach = dict(machine)
nodes = int(mach.get("nodes", "100"))
ttl = float(mach.get("lease_ttl", "10 s").split()[0])
idle = float(res.get("idle_secs", "0") or 0)

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')


def metrics(tag):
    """{(name, labels): value} summed over the three members."""
    tot, per = {}, {}
    for k in (1, 2, 3):
        for l in (rd("metrics-%s-e%d.txt" % (tag, k), "") or "").splitlines():
            m = LINE.match(l)
            if not m:
                continue
            try:
                v = float(m.group(3))
            except ValueError:
                continue
            key = (m.group(1), m.group(2) or "")
            tot[key] = tot.get(key, 0) + v
            per[(k,) + key] = v
    return tot, per


m0, p0 = metrics("idle0")
m1, p1 = metrics("idle1")
q0, _ = metrics("prop0")
q1, _ = metrics("prop1")


def dsum(a, b, name):
    return sum(v - a.get(k, 0) for k, v in b.items() if k[0] == name)


def fsync_p99(per, k):
    """p99 bound of member k's WAL fsync since its start (histogram)."""
    b = sorted((float(re.search(r'le="([^"]+)"', key[2]).group(1)), v)
               for key, v in per.items() if key[0] == k and key[1] ==
               "etcd_disk_wal_fsync_duration_seconds_bucket")
    if not b:
        return None
    tot = b[-1][1]
    for le, c in b:
        if c >= 0.99 * tot:
            return le
    return None


def delta(name, label_re=None):
    s = 0.0
    for key, v in m1.items():
        if key[0] != name or (label_re and not re.search(label_re, key[1])):
            continue
        s += v - m0.get(key, 0)
    return s


def value(name, member=None, which=m1):
    s = 0.0
    for key, v in (which.items() if member is None else p1.items()):
        if member is None and key[0] == name:
            s += v
        elif member is not None and key[0] == member and key[1] == name:
            s += v
    return s


started = delta("grpc_server_started_total")
by_method = {}
for key, v in m1.items():
    if key[0] == "grpc_server_started_total":
        mm = re.search(r'grpc_method="([^"]+)"', key[1])
        d = v - m0.get(key, 0)
        if mm and d > 0:
            by_method[mm.group(1)] = by_method.get(mm.group(1), 0) + d
req_per_node = started / idle / nodes if idle > 0 else None
puts = delta("etcd_mvcc_put_total")
watch_streams = value("etcd_debugging_mvcc_watch_stream_total")
watchers = value("etcd_debugging_mvcc_watcher_total")
db = [p1.get((k, "etcd_mvcc_db_total_size_in_bytes", ""), 0)
      for k in (1, 2, 3)]
db_use = [p1.get((k, "etcd_mvcc_db_total_size_in_use_in_bytes", ""), 0)
          for k in (1, 2, 3)]
keys = (rd("etcd-keys.txt", "") or "").strip()
h_rss = [int(x) for x in (rd("helperd-rss-kib.txt", "") or "").split()]
e_rss = [int(x) for x in (rd("etcd-rss-kib.txt", "") or "").split()]
h_cpu = float(res.get("helperd_cpu_pct_per_node", "nan"))
e_cpu = float(res.get("etcd_cpu_pct_all_members", "nan"))
prop = js("propagation.json") or {}
gone = js("gone.json") or {}


def kill_timeline():
    """Per killed node, from the SIGKILL (s): its last lease renewal (its
    helperd's debug log), that + TTL (when etcd may expire it), etcd's
    DELETE of its keys (an etcdctl watch started before the kill), the
    last observer that stopped listing it."""
    try:
        t0 = float(rd("kill-t0.txt", ""))
    except ValueError:
        return []
    import datetime
    ren, dele, lt = {}, {}, {}
    for l in (rd("kill-renewals.txt", "") or "").splitlines():
        w = l.split()
        ts = datetime.datetime.strptime(w[1], "%Y-%m-%dT%H:%M:%S.%fZ")
        ren[w[0][1:]] = ts.replace(
            tzinfo=datetime.timezone.utc).timestamp() - t0
        m = re.search(r"\(TTL (\d+) s\)", l)
        lt[w[0][1:]] = float(m.group(1)) if m else ttl
    ev = [l.split(" ", 1) for l in (rd("kill-watch.txt", "") or
                                    "").splitlines()]
    for i, w in enumerate(ev):
        m = re.match(r"\S+/services/common/n(\d+)$", w[-1].strip())
        if m and i > 0 and ev[i - 1][-1].strip() == "DELETE":
            dele.setdefault(m.group(1), float(w[0]) - t0)
    per = gone.get("per_node", {})
    rows = []
    for n in sorted(per, key=int):
        r, d, g = ren.get(n), dele.get(n), per[n].get("last_observer_s")
        if r is None or d is None or g is None:
            continue
        rows.append("n%s %.2f / %.2f / %.2f (%+.2f) / %.2f (%+.2f)" % (
            n, r, r + lt[n], d, d - r - lt[n], g, g - d))
    if not rows:
        return []
    lag = sorted(v - dele[k.split("/")[1]] for k, v in
                 gone.get("per_observer_s", {}).items()
                 if k.split("/")[1] in dele)
    if lag:
        rows[-1] += ("; every (observer, killed node): stopped listing it "
                     "p50 / p99 / max %.2f / %.2f / %.2f s after etcd's "
                     "DELETE" % (lag[len(lag) // 2],
                                 lag[min(len(lag) - 1, int(len(lag) * .99))],
                                 lag[-1]))
    # each observer's helperd applied the DELETE (its log, "instance
    # common/nK left") and the probe saw the node gone from its answer
    left = {}
    for l in (rd("kill-left.txt", "") or "").splitlines():
        w = l.split()
        if len(w) != 3:
            continue
        ts = datetime.datetime.strptime(w[1], "%Y-%m-%dT%H:%M:%S.%fZ")
        t = ts.replace(tzinfo=datetime.timezone.utc).timestamp() - t0
        if t > 0:
            left[(w[0], w[2])] = t
    if left:
        applied = sorted(v - dele[k[1]] for k, v in left.items()
                         if k[1] in dele)
        seen = sorted(v - left[tuple(k.split("/"))] for k, v in
                      gone.get("per_observer_s", {}).items()
                      if tuple(k.split("/")) in left)

        def pq(a):
            return "%.2f / %.2f / %.2f" % (
                a[len(a) // 2], a[min(len(a) - 1, int(len(a) * .99))], a[-1])
        if applied:
            rows[-1] += ("; observers' helperd applied etcd's DELETE "
                         "(log) p50 / p99 / max %s s after it (%d)"
                         % (pq(applied), len(applied)))
        if seen:
            rows[-1] += ("; the probe saw it gone %s s after the "
                         "observer's helperd applied it (%d)"
                         % (pq(seen), len(seen)))
    return ["- killed nodes from the SIGKILL (s): last lease renewal / "
            "+ the TTL etcd granted (%s s) / etcd deleted its keys (after "
            "that) / last observer stopped listing it (after the delete): "
            % "/".join("%g" % v for v in sorted(set(lt.values())))
            + "; ".join(rows)]
pres = js("present.json") or {}
reach = js("reach.json") or {}
cut = res.get("live_cut_s")


def f(v, nd=2, unit=""):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v + unit
    return ("%.*f" % (nd, v)) + unit


def met(ok):
    return "—" if ok is None else ("**met**" if ok else "not met")


rows = []
p99 = prop.get("p99_s")
rows.append(("intention propagation, p50 / p99 / max (s), %s samples" %
             prop.get("samples", "—"),
             "%s / %s / %s" % (f(prop.get("p50_s"), 3), f(p99, 3),
                               f(prop.get("max_s"), 3)),
             "p99 ≤ 1 s", met(None if p99 is None else
                              (p99 <= 1 and not prop.get("missing")))))
rows.append(("open connection cut on a far node (s after the write)",
             f(cut, 0) if cut else "—", "≤ 1 s",
             met(None if not cut or cut == "none" else float(cut) <= 1)))
g = gone.get("all_s")
rows.append(("%d nodes killed: until no node lists them (s)" %
             len(gone.get("nodes", [])), f(g), "≤ TTL + 1 = %g s" % (ttl + 1),
             met(None if g is None else g <= ttl + 1)))
# when the last observer's helperd applied the last of etcd's DELETEs
# (its log): from then no node dials them; listing them over HTTP (the
# row above) comes after, by the time to answer the probe
applied = None
try:
    import datetime
    _t0 = float(rd("kill-t0.txt", ""))
    for l in (rd("kill-left.txt", "") or "").splitlines():
        w = l.split()
        if len(w) != 3:
            continue
        t = datetime.datetime.strptime(w[1], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp() - _t0
        if t > 0 and (applied is None or t > applied):
            applied = t
except ValueError:
    pass
if applied is not None:
    rows.append(("... until every node's helperd dropped them (its log: "
                 "no node dials them) (s)", f(applied),
                 "≤ TTL + 1 = %g s" % (ttl + 1), met(applied <= ttl + 1)))
pr = pres.get("all_s")
rows.append(("%d nodes started: until every old node lists them (s)" %
             len(pres.get("nodes", [])), f(pr), "≤ TTL + 1 = %g s" % (ttl + 1),
             met(None if pr is None else pr <= ttl + 1)))
ra = reach.get("all_s")
rows.append(("... until node 1 reaches each of them through the shim (s)",
             f(ra), "≤ TTL + 1 = %g s" % (ttl + 1),
             met(None if ra is None else ra <= ttl + 1)))
rows.append(("etcd requests/s per idle node", f(req_per_node, 3), "≤ 1",
             met(None if req_per_node is None else req_per_node <= 1)))
rows.append(("helperd CPU per idle node (% of a core)", f(h_cpu, 4),
             "≤ 0.1 %", met(h_cpu <= 0.1 if h_cpu == h_cpu else None)))
rows.append(("helperd RSS per node, median / max (MiB)",
             "%s / %s" % (f(statistics.median(h_rss) / 1024 if h_rss else None, 1),
                          f(max(h_rss) / 1024 if h_rss else None, 1)), "—", ""))
rows.append(("etcd CPU, 3 members together, idle (% of a core)",
             f(e_cpu, 2), "—", ""))
rows.append(("etcd RSS per member (MiB)",
             " / ".join("%.0f" % (x / 1024) for x in e_rss) or "—", "—", ""))
rows.append(("etcd db size per member, total / in use (MiB)",
             " / ".join("%.2f" % (x / 2**20) for x in db[:1] + db_use[:1]),
             "—", ""))

L = ["# %d nodes, simulated (bench/cluster.sh, `make bench-cluster`)" % nodes,
     ""]
L.append("%d helperd nodes (release build) in network namespaces on one "
         "bridge, %d services each (%d instances), a 3-member etcd %s; "
         "lease TTL %g s, check interval 10 s (the defaults). Node 1 is "
         "the CA server, the others CA clients." % (
             nodes, 10, nodes * 10, mach.get("etcd", ""), ttl))
L.append("")
L.append("| measure | value | target | |")
L.append("|---|---:|---:|---|")
for r in rows:
    L.append("| %s |" % " | ".join(r))
L.append("")
L.append("Steady state over %.0f s idle (after every node listed all "
         "instances and a settling pause):" % idle)
L.append("")
L.append("- etcd RPCs started, all members: %.0f (%.2f/s; per node %s/s); "
         "by method: %s" % (started, started / idle if idle else 0,
                            f(req_per_node, 3),
                            ", ".join("%s %.0f" % kv for kv in
                                      sorted(by_method.items()))))
L.append("- helperd wake-ups (voluntary context switches, all threads) "
         "per idle node: %s/s, %s threads each" % (
             res.get("helperd_wakeups_per_s_per_node"),
             res.get("helperd_threads")))
L.append("- etcd puts in the window: %.0f; watch streams %.0f, watchers "
         "%.0f (all members)" % (puts, watch_streams, watchers))
ev = dsum(q0, q1, "etcd_debugging_mvcc_events_total")
pput = dsum(q0, q1, "etcd_mvcc_put_total")
if ev:
    L.append("- during the propagation writes (%s s): etcd puts (summed over "
             "the 3 members) %.0f, watch events sent %.0f, etcd CPU %s s "
             "(%.1f µs per event sent, above the idle rate), helperd CPU over all nodes %s s" % (
                 res.get("prop_secs"), pput, ev, res.get("prop_etcd_cpu_s"),
                 max(0.0, float(res.get("prop_etcd_cpu_s", 0)) -
                     e_cpu / 100 * float(res.get("prop_secs", 0))) * 1e6 / ev,
                 res.get("prop_helperd_cpu_s")))
L.append("- etcd WAL fsync p99 since start (histogram bucket bound), per "
         "member: %s s" % " / ".join(str(fsync_p99(p1, k)) for k in (1, 2, 3)))
L.append("- keys under the prefix: %s; leaves missing on CA clients after "
         "settling: %s nodes" % (keys, res.get("leaves_missing_nodes", "?")))
L.append("- start: nodes 1, N/2 and N knew all %d nodes %s s "
         "after the first helperd started" % (nodes, res.get("startup_s")))
if prop:
    L.append("- propagation: %s writes, write latency p50 %.1f ms (max "
             "%.1f); per write, the slowest node: %s s; never seen: %s" % (
                 prop.get("trials"), prop.get("write_ms_p50", 0),
                 prop.get("write_ms_max", 0),
                 " ".join("%.3f" % x for x in prop.get("per_trial_max_s", [])
                          if x is not None), prop.get("missing")))
if gone.get("per_node"):
    L.append("- killed nodes, last observer (s): " + ", ".join(
        "n%s %s" % (k, f(v["last_observer_s"]))
        for k, v in sorted(gone["per_node"].items(), key=lambda x: int(x[0]))))
for line in kill_timeline():
    L.append(line)
if pres.get("per_node"):
    L.append("- new nodes, last observer (s): " + ", ".join(
        "n%s %s" % (k, f(v["last_observer_s"]))
        for k, v in sorted(pres["per_node"].items(), key=lambda x: int(x[0]))))
L.append("- lease losses and etcd outages the nodes logged over the whole "
         "run (lease expired, lease gone, ETCD UNREACHABLE): %s" %
         res.get("lease_losses", "?"))
L.append("- helperd alive at the end: %s (of %d started)" % (
    res.get("helperd_alive_end"), nodes + len(pres.get("nodes", []))))
L.append("")
L.append("Machine and load:")
L.append("")
for k, v in machine:
    L.append("- %s: %s" % (k, v))
notes = (rd("notes.txt", "") or "").strip()
if notes:
    L += ["", "Notes of the run:", ""] + ["- " + n for n in notes.splitlines()]
open(out, "w").write("\n".join(L) + "\n")
