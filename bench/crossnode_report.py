#!/usr/bin/env python3
"""crossnode_report.py RAWDIR OUT.md: the cross-node table of bench/crossnode.sh.

Reads RAWDIR/results.tsv (round, path, metric, value), machine.tsv and
notes.txt; writes the medians, the ratios against the better peer of the
same run and the targets of issue 16 to OUT.md."""
import os
import statistics
import sys

raw, out = sys.argv[1], sys.argv[2]
vals = {}
with open(os.path.join(raw, "results.tsv")) as f:
    for line in f:
        p = line.rstrip("\n").split("\t")
        if len(p) != 4:
            continue
        try:
            vals.setdefault((p[1], p[2]), []).append(float(p[3]))
        except ValueError:
            pass
machine = []
with open(os.path.join(raw, "machine.tsv")) as f:
    machine = [l.rstrip("\n").split("\t", 1) for l in f if "\t" in l]
notes = open(os.path.join(raw, "notes.txt")).read().strip()


def med(path, metric):
    v = vals.get((path, metric))
    return statistics.median(v) if v else None


PEERS = ("stunnel", "haproxy")


def added(path, metric):
    a, d = med(path, metric), med("direct", metric)
    return None if a is None or d is None else a - d


def fmt(v, nd=2):
    if v is None:
        return "—"
    if abs(v) >= 1000:
        return "{:,.0f}".format(v)
    return "%.*f" % (nd, v)


rows = []  # label, mesh, peer value, peer name, ratio, target text, met


def row(label, get, higher_better, target=None):
    m = get("mesh")
    best, bname = None, None
    for p in PEERS:
        v = get(p)
        if v is None:
            continue
        if best is None or (v > best if higher_better else v < best):
            best, bname = v, p
    ratio = m / best if m is not None and best not in (None, 0) else None
    met = ""
    if target is not None and ratio is not None:
        ok = ratio >= target if higher_better else ratio <= target
        met = "**met**" if ok else "not met"
    tt = "—" if target is None else ("≥ %g×" % target if higher_better
                                     else "≤ %g×" % target)
    rows.append((label, fmt(m), "%s (%s)" % (fmt(best), bname) if bname
                 else "—", "%.2f×" % ratio if ratio is not None else "—",
                 tt, met))


row("bulk, 1 stream, Gb/s", lambda p: med(p, "bulk1_gbps"), True, 1.2)
row("bulk, 1 stream, CPU-s per GB (both ends)",
    lambda p: med(p, "bulk1_cpu_s_per_gb"), False, 0.75)
row("added p50 round trip, µs (path − direct)",
    lambda p: added(p, "rtt_p50_us"), False, 0.5)
row("added p99 round trip, µs (path − direct)",
    lambda p: added(p, "rtt_p99_us"), False)
row("new connections/s, sequential", lambda p: med(p, "connseq_per_s"),
    True, 3)
row("new connections/s, 16 parallel", lambda p: med(p, "connpar_per_s"),
    True, 3)
row("p50 connect-to-first-byte, sequential, µs",
    lambda p: med(p, "connseq_p50_us"), False)
row("proxy CPU per new connection (both ends), µs, 16 parallel",
    lambda p: med(p, "connpar_cpu_us_per_conn"), False)

L = []
L.append("# Cross-node benchmark (bench/crossnode.sh)")
L.append("")
L.append("Two nodes in network namespaces over one veth pair; clients in A, "
         "backends in B. meshshim = helperd A → mTLS → helperd B; the peers "
         "a TLS originator in A and a terminator in B. Medians of the "
         "rounds; each ratio is against the better peer of this run.")
L.append("")
L.append("| metric | meshshim | better peer | ratio | target | |")
L.append("|---|---:|---:|---:|---:|---|")
for r in rows:
    L.append("| %s |" % " | ".join(r))
L.append("")
mets = ["bulk1_gbps", "bulk1_cpu_s_per_gb", "rtt_p50_us", "rtt_p99_us",
        "connseq_per_s", "connseq_p50_us", "connseq_cpu_us_per_conn",
        "connpar_per_s", "connpar_p50_us", "connpar_cpu_us_per_conn",
        "verify_ok"]
paths = ["direct", "mesh", "stunnel", "haproxy"]
L.append("All medians (rounds in brackets):")
L.append("")
L.append("| metric | " + " | ".join(paths) + " |")
L.append("|---|" + "---:|" * len(paths))
for m in mets:
    cells = []
    for p in paths:
        v = vals.get((p, m))
        cells.append("—" if not v else "%s [%s]" % (
            fmt(statistics.median(v)), " ".join("%g" % x for x in v)))
    L.append("| %s | %s |" % (m, " | ".join(cells)))
L.append("")
cpc = med("mesh", "connpar_cpu_us_per_conn")
ncpu = next((int(v) for k, v in machine if k == "ncpu"), 2)
if cpc:
    L.append("New connections: a cross-node connection takes the mTLS "
             "session an earlier one of the same pair left between helperd "
             "A and helperd B (relay_stream.c: no TCP connect, no "
             "handshake); only the first of each worker shakes hands. The "
             "peers make a TCP connection and a TLS handshake (resumed "
             "with their session cache) for each. Both helperds together "
             "spend %.0f µs of CPU per connection at 16 parallel, so %d "
             "cores cap the path at about %d conn/s whatever the "
             "scheduling (%d × 10⁶ / %.0f)." % (
                 cpc, ncpu, ncpu * 1e6 / cpc, ncpu, cpc))
    L.append("")
L.append("Machine and run:")
L.append("")
for k, v in machine:
    L.append("- %s: %s" % (k, v))
if notes:
    L.append("")
    L.append("Notes of the run:")
    L.append("")
    for n in notes.splitlines():
        L.append("- " + n)
open(out, "w").write("\n".join(L) + "\n")
