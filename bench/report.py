#!/usr/bin/env python3
"""bench/report.py RAWDIR OUTDIR: turn one bench/run.sh run into
OUTDIR/latest.md and OUTDIR/latest.png (gnuplot, if installed).

RAWDIR/results.tsv holds "round path metric value" lines; each metric is
reduced to the median over the rounds. Ratios are taken against the better
of the two peers (stunnel, haproxy) for that metric in the same run."""
import math
import os
import shutil
import statistics
import subprocess
import sys

PATHS = ["direct", "mesh_tls", "mesh_tls_nolog", "mesh_plain", "stunnel", "haproxy",
         "haproxy_bp"]
# The targets are against the peers at their defaults; haproxy_bp (round
# trips only) is shown beside them.
PEERS = ["stunnel", "haproxy"]
SHORT = {"direct": "direct", "mesh_tls": "mesh mTLS",
         "mesh_tls_nolog": "mesh mTLS unobserved", "mesh_plain": "mesh plain",
         "stunnel": "stunnel", "haproxy": "HAProxy",
         "haproxy_bp": "HAProxy busy-polling"}
LABEL = {"direct": "direct", "mesh_tls": "meshshim (mTLS)",
         "mesh_tls_nolog": "meshshim (mTLS, no access log or scrape)",
         "mesh_plain": "meshshim (no TLS)", "stunnel": "stunnel pair",
         "haproxy": "HAProxy pair",
         "haproxy_bp": "HAProxy pair, busy-polling"}


BYROUND = {}  # (path, metric) -> {round: value}


def load(raw):
    vals = {}
    rounds = {}
    with open(os.path.join(raw, "results.tsv")) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 4 or parts[3] == "":
                continue
            r, path, metric, v = parts
            try:
                x = float(v)
            except ValueError:
                continue
            vals.setdefault((path, metric), []).append(x)
            BYROUND.setdefault((path, metric), {})[r] = x
            rounds.setdefault(path, set()).add(r)
    med = {k: statistics.median(v) for k, v in vals.items()}
    return med, vals, rounds


def kv_file(path):
    d = {}
    if os.path.exists(path):
        for line in open(path):
            if "\t" in line:
                k, v = line.rstrip("\n").split("\t", 1)
                d[k] = v
    return d


class R:
    def __init__(self, med):
        self.m = med

    def get(self, path, metric):
        return self.m.get((path, metric))

    def derived(self):
        m = self.m
        for p in PATHS:
            for w in ("rtt", "rttpin"):
                v, d = m.get((p, w + "_p50_us")), m.get(("direct", w + "_p50_us"))
                if v is not None and d is not None:
                    m[(p, w + "_added_p50_us")] = v - d
            idle = m.get((p, "idle_rss_kib"))
            for big in ("conn10k", "conn1k"):
                rss, held = m.get((p, big + "_rss_kib")), m.get((p, big + "_held"))
                if idle is not None and rss is not None and held:
                    m[(p, "per_conn_kib")] = (rss - idle) / held
                    m[(p, "per_conn_basis")] = held
                    break

    def best_peer(self, metric, higher):
        cands = [(self.get(p, metric), p) for p in PEERS
                 if self.get(p, metric) is not None]
        if not cands:
            return None, None
        v, p = (max if higher else min)(cands)
        return v, p


def fmt(v, metric=""):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    if metric.endswith("_rss_kib") or metric.endswith("_pss_kib"):
        return "%.1f MiB" % (v / 1024)
    a = abs(v)
    if a >= 1000:
        return "{:,.0f}".format(v)
    if a >= 100:
        return "%.0f" % v
    if a >= 10:
        return "%.1f" % v
    return "%.2f" % v


# metric, label, higher-is-better (None: no ratio)
ROWS = [
    ("Bulk throughput (iperf3)", None, None),
    ("bulk1_gbps", "1 stream, Gb/s", True),
    ("bulk8_gbps", "8 streams, Gb/s", True),
    ("bulk1_cpu_s_per_gb", "proxy CPU-s per GB, 1 stream (both ends)", False),
    ("bulk8_cpu_s_per_gb", "proxy CPU-s per GB, 8 streams (both ends)", False),
    ("Round trip, 64 B ping-pong, one connection", None, None),
    ("rtt_p50_us", "p50 µs, default scheduling", False),
    ("rtt_added_p50_us", "p50 added over direct µs, default scheduling", False),
    ("rtt_p99_us", "p99 µs, default scheduling", False),
    ("rttpin_p50_us", "p50 µs, all pinned to CPU 0", False),
    ("rttpin_added_p50_us", "p50 added over direct µs, pinned", False),
    ("rttpin_p99_us", "p99 µs, pinned", False),
    ("New connections, 1-byte exchange each", None, None),
    ("connseq_per_s", "sequential, conn/s", True),
    ("connseq_p50_us", "sequential, p50 connect-to-first-byte µs", False),
    ("connseq_p99_us", "sequential, p99 connect-to-first-byte µs", False),
    ("connpar_per_s", "16 parallel, conn/s", True),
    ("connpar_p50_us", "16 parallel, p50 connect-to-first-byte µs", False),
    ("connpar_p99_us", "16 parallel, p99 connect-to-first-byte µs", False),
    ("connseq_cpu_us", "sequential, proxy CPU µs per connection (both ends)", False),
    ("connpar_cpu_us", "16 parallel, proxy CPU µs per connection (both ends)", False),
    ("Memory (RSS of helperd / of both proxies of a pair)", None, None),
    ("idle_rss_kib", "idle (3 services: iperf, echo, echo-once)", False),
    ("conn1k_rss_kib", "1,000 idle connections", False),
    ("conn10k_rss_kib", "10,000 idle connections (see held)", False),
    ("conn10k_held", "connections actually held of 10,000", None),
    ("conn10k_pss_kib", "PSS with those connections", False),
    ("per_conn_kib", "KiB per open connection (both ends)", False),
    ("svc100_rss_kib", "100 services (100 pairs for the peers), idle", False),
    ("svc100_conn1k_rss_kib", "100 services + 1,000 idle connections", False),
    ("svc100_conn1k_pss_kib", "same, PSS (shared pages split between processes)", False),
]


def round_value(path, metric, rnd):
    """One round's value of metric on path (added round trips derived)."""
    if metric.endswith("_added_p50_us"):
        base = metric.replace("_added_p50_us", "_p50_us")
        v = BYROUND.get((path, base), {}).get(rnd)
        d = BYROUND.get(("direct", base), {}).get(rnd)
        return None if v is None or d is None else v - d
    return BYROUND.get((path, metric), {}).get(rnd)


def round_ratios(metric, higher, path, refpath=None):
    """Per round: path's value over the better peer's of that round (or
    refpath's)."""
    out = []
    for rnd in sorted(BYROUND.get((path, metric.replace("_added_p50_us", "_p50_us")), {})):
        v = round_value(path, metric, rnd)
        if refpath is not None:
            refs = [round_value(refpath, metric, rnd)]
        else:
            refs = [round_value(p, metric, rnd) for p in PEERS]
        refs = [x for x in refs if x is not None]
        if v is None or not refs:
            continue
        ref = max(refs) if higher else min(refs)
        if ref > 0:
            out.append(v / ref)
    return out


def targets(r):
    """(description, mesh value, reference, ratio, per round, goal, met)
    rows. A ratio target is met when the ratio of the medians meets it
    and so does every round's own ratio."""
    out = []

    def ratio_row(desc, metric, higher, goal, test, path="mesh_tls",
                  ref=None, refname=None, refpath=None):
        v = r.get(path, metric)
        if refpath is not None:
            ref, refname = r.get(refpath, metric), refname or refpath
        elif ref is None:
            ref, refname = r.best_peer(metric, higher)
        if v is None or ref is None or ref <= 0:
            out.append((desc, fmt(v, metric), "%s %s" % (fmt(ref, metric), refname or ""),
                        "—", "—", goal, "not measured"))
            return
        q = v / ref
        rs = round_ratios(metric, higher, path, refpath)
        spread = "%.2f–%.2f (%d)" % (min(rs), max(rs), len(rs)) if rs else "—"
        ok = test(q) and all(test(x) for x in rs)
        out.append((desc, fmt(v, metric), "%s (%s)" % (fmt(ref, metric), refname),
                    "%.2f×" % q, spread, goal, "**met**" if ok else "not met"))

    ratio_row("bulk, 1 stream, Gb/s", "bulk1_gbps", True, "≥ 1.5×",
              lambda q: q >= 1.5)
    aes16 = r.get("gnutls", "aes128gcm_16384_gbytes")
    v = r.get("mesh_tls", "bulk1_gbps")
    if aes16 and v:
        ceil = aes16 * 8
        per = [x / ceil for x in BYROUND.get(("mesh_tls", "bulk1_gbps"), {}).values()]
        ok = v / ceil >= 0.7 and all(x >= 0.7 for x in per)
        out.append(("bulk, 1 stream, share of the one-core seal + open ceiling",
                    fmt(v), "%.1f (ceiling)" % ceil, "%.0f %%" % (100 * v / ceil),
                    "%.0f–%.0f %% (%d)" % (100 * min(per), 100 * max(per), len(per)) if per else "—",
                    "≥ 70 %", "**met**" if ok else "not met"))
    else:
        out.append(("bulk, 1 stream, share of the one-core seal + open ceiling",
                    fmt(v), "—", "—", "—", "≥ 70 %", "not measured"))
    ratio_row("bulk, 1 stream, CPU-s per GB", "bulk1_cpu_s_per_gb", False,
              "≤ 0.6×", lambda q: q <= 0.6)
    ratio_row("added p50 round trip, default scheduling", "rtt_added_p50_us",
              False, "≤ 0.5×", lambda q: q <= 0.5)
    ratio_row("added p50 round trip, pinned", "rttpin_added_p50_us", False,
              "≤ 0.5×", lambda q: q <= 0.5)
    ratio_row("p99 round trip, default scheduling", "rtt_p99_us", False,
              "≤ 1×", lambda q: q <= 1.0)
    ratio_row("p99 round trip, pinned", "rttpin_p99_us", False, "≤ 1×",
              lambda q: q <= 1.0)
    ratio_row("new connections/s, sequential", "connseq_per_s", True, "≥ 4×",
              lambda q: q >= 4)
    ratio_row("p50 connect-to-first-byte, sequential", "connseq_p50_us", False,
              "≤ 0.33×", lambda q: q <= 1 / 3)
    ratio_row("new connections/s, 16 parallel", "connpar_per_s", True, "≥ 4×",
              lambda q: q >= 4)
    ratio_row("p50 connect-to-first-byte, 16 parallel", "connpar_p50_us",
              False, "≤ 0.33×", lambda q: q <= 1 / 3)
    # absolute memory targets
    v = r.get("mesh_tls", "per_conn_kib")
    basis = r.get("mesh_tls", "per_conn_basis")
    out.append(("KiB per open connection, both ends", fmt(v) +
                (" (over %d conns)" % basis if basis else ""), "40 KiB",
                "%.2f×" % (v / 40) if v is not None else "—", "—", "≤ 40 KiB",
                "not measured" if v is None else
                ("**met**" if v <= 40 else "not met")))
    v = r.get("mesh_tls", "svc100_conn1k_rss_kib")
    lim = 50e6 / 1024
    out.append(("helperd RSS, 100 services + 1,000 idle conns", fmt(v, "_rss_kib"),
                "50 MB", "%.2f×" % (v / lim) if v is not None else "—", "—",
                "≤ 50 MB", "not measured" if v is None else
                ("**met**" if v <= lim else "not met")))
    ratio_row("same, against 100 stunnel pairs + 1,000 conns",
              "svc100_conn1k_rss_kib", False, "≤ 0.2×", lambda q: q <= 0.2,
              refpath="stunnel")
    ratio_row("same_node_mtls = false, bulk 1 stream vs direct", "bulk1_gbps",
              True, "≥ 0.8×", lambda q: q >= 0.8, path="mesh_plain",
              refpath="direct")
    return out


def chart(r, out_png, tmp):
    gp = shutil.which("gnuplot")
    if gp is None:
        return "gnuplot not installed: no chart"
    paths = [p for p in PATHS if any(k[0] == p for k in r.m)]

    def dat(name, metrics, scale=1.0, skip_direct=False):
        fn = os.path.join(tmp, name + ".dat")
        with open(fn, "w") as f:
            for p in paths:
                if skip_direct and p == "direct":
                    continue
                vals = []
                for m in metrics:
                    v = r.get(p, m)
                    vals.append("?" if v is None else "%g" % (v * scale))
                f.write('"%s" %s\n' % (SHORT[p], " ".join(vals)))
        return fn

    panels = [
        ("Bulk throughput, Gb/s", dat("bulk", ["bulk1_gbps", "bulk8_gbps"]),
         ["1 stream", "8 streams"], False),
        ("Proxy CPU-s per GB moved", dat("cpu", ["bulk1_cpu_s_per_gb", "bulk8_cpu_s_per_gb"], skip_direct=True),
         ["1 stream", "8 streams"], False),
        ("64 B round trip p50, µs", dat("rtt", ["rtt_p50_us", "rttpin_p50_us"]),
         ["default", "pinned"], False),
        ("New connections/s (log)", dat("conn", ["connseq_per_s", "connpar_per_s"]),
         ["sequential", "16 parallel"], True),
        ("Connect-to-first-byte p50, µs (log)", dat("cfb", ["connseq_p50_us", "connpar_p50_us"]),
         ["sequential", "16 parallel"], True),
        ("RSS, MiB (log)", dat("mem", ["idle_rss_kib", "conn1k_rss_kib", "svc100_conn1k_rss_kib"], 1 / 1024, skip_direct=True),
         ["idle", "1k", "100 svc+1k"], True),
    ]
    gpf = os.path.join(tmp, "chart.gp")
    with open(gpf, "w") as f:
        f.write('set terminal pngcairo size 1500,900 font "sans,9"\n')
        f.write('set output "%s"\n' % out_png)
        f.write('set datafile missing "?"\n')
        f.write("set style data histogram\nset style histogram cluster gap 1\n")
        f.write("set style fill solid 0.8 border -1\nset boxwidth 0.9\n")
        f.write("set key outside top center horizontal font ',8'\nset grid ytics\nset xtics font ',8'\n")
        f.write("set bmargin 3\n")
        f.write('set multiplot layout 2,3\n')
        for title, fn, cols, logy in panels:
            f.write('set title "%s"\n' % title)
            has = any(t != "?" for line in open(fn) for t in line.rsplit('"', 1)[1].split())
            if not has:
                f.write("unset logscale y\nset xrange [0:1]\nset yrange [0:1]\n"
                        "set label 99 \"not measured\" at 0.4,0.5\n"
                        "plot 2 notitle\nunset label 99\nset autoscale x\n")
                continue
            f.write("set yrange [%s:*]\n" % ("1" if logy else "0"))
            f.write("set logscale y\n" if logy else "unset logscale y\n")
            plots = []
            for i, c in enumerate(cols):
                src = '"%s"' % fn if i == 0 else "''"
                plots.append('%s using %d%s title "%s"' %
                             (src, i + 2, ":xtic(1)" if i == 0 else "", c))
            f.write("plot " + ", ".join(plots) + "\n")
        f.write("unset multiplot\n")
    p = subprocess.run([gp, gpf], capture_output=True, text=True)
    if p.returncode != 0:
        return "gnuplot failed: " + p.stderr.strip()[:500]
    return None


def main():
    raw, outdir = sys.argv[1], sys.argv[2]
    med, vals, rounds = load(raw)
    r = R(med)
    r.derived()
    mach = kv_file(os.path.join(raw, "machine.tsv"))
    notes = []
    if os.path.exists(os.path.join(raw, "notes.txt")):
        notes = [l.rstrip("\n") for l in open(os.path.join(raw, "notes.txt")) if l.strip()]
    paths = [p for p in PATHS if any(k[0] == p for k in med)]
    L = []
    L.append("# meshshim benchmark — %s" % mach.get("date", "?"))
    L.append("")
    L.append("Machine: %s, %s CPUs, %s, Linux %s, %s. kTLS: %s. TCP "
             "congestion control: %s for every socket but helperd's loopback "
             "ones and the app's socket the shim sends to helperd "
             "(`loopback_congestion`, cubic unless set)." % (
        mach.get("cpu", "?"), mach.get("ncpu", "?"), mach.get("mem", "?"),
        mach.get("kernel", "?"), mach.get("os", "?"), mach.get("ktls", "?"),
        mach.get("tcp_cc", "?")))
    L.append("Software: helperd %s (%s), stunnel %s, HAProxy %s, OpenSSL %s, "
             "GnuTLS %s, iperf3 %s." % (
                 mach.get("helperd", "?"), mach.get("buildtype", "?"),
                 mach.get("stunnel", "?"), mach.get("haproxy", "?"),
                 mach.get("openssl", "?"), mach.get("gnutls", "?"),
                 mach.get("iperf3", "?")))
    L.append("Run: %s rounds (path order rotated each round), medians; "
             "iperf3 %s s per test, ping-pong %s s, connection tests %s s; "
             "open-files limit %s. Memory figures are from one pass. "
             "Load average (1/5/15 min) at start %s, after the rounds %s. "
             "Raw data: `bench/results/raw/%s/`." % (
                 mach.get("rounds", "?"), mach.get("bulk_secs", "?"),
                 mach.get("rtt_secs", "?"), mach.get("conn_secs", "?"),
                 mach.get("nofile", "?"), mach.get("load_start", "?"),
                 mach.get("load_rounds", "?"), os.path.basename(raw.rstrip("/"))))
    busy = [(k[5:], v) for k, v in mach.items() if k.startswith("busy_")]
    if busy:
        L.append("CPU busy with other work just before: %s (over 20 %% is flagged "
                 "below)." % ", ".join("%s %s" % kv for kv in busy))
    fr = [(k[8:], v) for k, v in mach.items() if k.startswith("foreign_")]
    if fr:
        L.append("Share of the machine's CPU time used by other work during each "
                 "round: %s (over 10 %% is flagged below)." %
                 ", ".join("%s %s" % kv for kv in fr))
    L.append("")
    L.append("## Targets (issues 6 and 20): meshshim with same_node_mtls = true "
             "against the better peer of this run")
    L.append("")
    L.append("Ratio: of the medians. *Per round*: the same ratio within each "
             "round (against that round's better peer), lowest–highest and "
             "how many rounds. A target is met when the ratio of the medians "
             "and every round's ratio meet it. An added round trip at or "
             "below 0 (meshshim as fast as direct or faster) meets its target.")
    L.append("")
    L.append("| metric | meshshim | reference | ratio | per round | target | |")
    L.append("|---|---:|---:|---:|---:|---:|---|")
    for row in targets(r):
        L.append("| %s |" % " | ".join(row))
    L.append("")
    L.append("## The cost of observing (issue 14)")
    L.append("")
    L.append("meshshim (mTLS) above runs with its access log on (JSON, one line "
             "per connection) and `/v1/agent/metrics?format=prometheus` "
             "scraped every second; the same path without either, in the same "
             "rounds:")
    L.append("")
    L.append("Ratio: of the medians; *per round*: observed / unobserved within "
             "each round (the two run back to back in the same conditions), "
             "median and range over the rounds.")
    L.append("")
    L.append("| metric | observed | unobserved | ratio | per round: median (min–max) |")
    L.append("|---|---:|---:|---:|---:|")
    for metric, desc in (("bulk1_gbps", "bulk, 1 stream, Gb/s"),
                         ("bulk1_cpu_s_per_gb", "helperd CPU-s per GB, 1 stream"),
                         ("rtt_added_p50_us", "added p50 round trip, µs"),
                         ("rttpin_added_p50_us", "added p50 round trip, pinned, µs"),
                         ("connseq_per_s", "new connections/s, sequential"),
                         ("connseq_cpu_us", "helperd CPU µs per connection, sequential"),
                         ("connpar_per_s", "new connections/s, 16 parallel"),
                         ("connpar_cpu_us", "helperd CPU µs per connection, 16 parallel")):
        a, b = r.get("mesh_tls", metric), r.get("mesh_tls_nolog", metric)
        if a is None and b is None:
            continue
        pa = BYROUND.get(("mesh_tls", metric), {})
        pb = BYROUND.get(("mesh_tls_nolog", metric), {})
        pr = sorted(pa[k] / pb[k] for k in pa if k in pb and pb[k] > 0)
        L.append("| %s | %s | %s | %s | %s |" % (
            desc, fmt(a, metric), fmt(b, metric),
            "%.3f×" % (a / b) if a is not None and b else "—",
            "%.3f× (%.3f–%.3f)" % (statistics.median(pr), pr[0], pr[-1]) if pr else "—"))
    a, b = r.get("mesh_tls", "connseq_per_s"), r.get("mesh_tls_nolog", "connseq_per_s")
    if a and b:
        L.append("")
        L.append("Per connection (sequential): %.1f µs more wall time (1/observed − 1/unobserved)." %
                 (1e6 / a - 1e6 / b))
    for m, what in (("connseq_cpu_us", "sequential"), ("connpar_cpu_us", "16 parallel")):
        a, b = r.get("mesh_tls", m), r.get("mesh_tls_nolog", m)
        if a is not None and b is not None:
            L.append("helperd CPU per connection (%s): %+.1f µs." % (what, a - b))
    a, b = r.get("mesh_tls", "bulk1_cpu_s_per_gb"), r.get("mesh_tls_nolog", "bulk1_cpu_s_per_gb")
    if a is not None and b is not None:
        L.append("Per GB: %+.3f CPU-s." % (a - b))
    L.append("")
    L.append("## All measurements (medians)")
    L.append("")
    L.append("| metric | " + " | ".join(LABEL[p] for p in paths) +
             " | better peer | meshshim (mTLS) / peer |")
    L.append("|---|" + "---:|" * len(paths) + "---|---:|")
    for metric, label, higher in ROWS:
        if label is None:
            L.append("| **%s** |" % metric + " |" * (len(paths) + 2))
            continue
        cells = []
        for p in paths:
            v = r.get(p, metric)
            cells.append(fmt(v, metric) if "held" not in metric or v is None
                         else "{:,.0f}".format(v))
        bp, bpn = (None, None)
        ratio = "—"
        if higher is not None:
            bp, bpn = r.best_peer(metric, higher)
            mv = r.get("mesh_tls", metric)
            if bp and mv is not None:
                ratio = "%.2f×" % (mv / bp)
        L.append("| %s | %s | %s | %s |" % (label, " | ".join(cells),
                 bpn or "—", ratio))
    ok = {p: vals.get((p, "verify_ok"), []) for p in paths}
    L.append("| 32 MiB echo check (rounds ok) | " + " | ".join(
        "%d/%d" % (sum(1 for x in ok[p] if x == 1), len(ok[p])) if ok[p] else "—"
        for p in paths) + " | | |")
    eof = {p: vals.get((p, "verify_eof"), []) for p in paths}
    L.append("| half-close passed through (EOF came back) | " + " | ".join(
        "%d/%d" % (sum(1 for x in eof[p] if x == 1), len(eof[p])) if eof[p] else "—"
        for p in paths) + " | | |")
    L.append("")
    L.append("## Crypto ceiling (GnuTLS on this machine, one core)")
    L.append("")
    aes16 = r.get("gnutls", "aes128gcm_16384_gbytes")
    aes14 = r.get("gnutls", "aes128gcm_1400_gbytes")
    kx = r.get("gnutls", "tls13_p256_handshakes_per_s")
    L.append("| measure | value |")
    L.append("|---|---:|")
    L.append("| AES-128-GCM, TLS 1.3, 16 KiB records (encrypt + decrypt), GB/s | %s |" % fmt(aes16))
    L.append("| AES-128-GCM, TLS 1.3, 1400 B records, GB/s | %s |" % fmt(aes14))
    L.append("| full TLS 1.3 handshakes/s, ECDHE P-256 + ECDSA P-256 | %s |" % fmt(kx))
    if aes16:
        ceil = aes16 * 8
        mt = r.get("mesh_tls", "bulk1_gbps")
        L.append("| → one core can seal + open %.1f Gb/s; meshshim (mTLS) 1 stream reaches | %s |" % (
            ceil, "%.0f %%" % (100 * mt / ceil) if mt else "—"))
    if kx:
        ms = r.get("mesh_tls", "connseq_per_s")
        L.append("| → meshshim (mTLS) sequential conn/s as a share of full handshakes/s | %s |" % (
            "%.0f %%" % (100 * ms / kx) if ms else "—"))
    L.append("")
    L.append("Notes on reading: *better peer* is, per metric, whichever of the "
             "stunnel pair and the HAProxy pair (at their defaults) did better "
             "in this run; the HAProxy pair with `busy-polling` (round trips "
             "only) is shown beside them, not used for the targets. CPU is "
             "utime+stime of helperd, or of both proxy processes, over the iperf3 "
             "run, per 10^9 bytes received. Memory is VmRSS summed over those "
             "processes (shared library pages counted once per process; PSS is "
             "in the raw data). KiB per connection = (RSS holding N − RSS idle) / N "
             "for the largest N actually held. Connections open through 8 client "
             "threads, one 1-byte exchange each, then stay idle.")
    L.append("")
    if notes:
        L.append("## What went wrong in this run")
        L.append("")
        for n in notes:
            L.append("- " + n.replace("|", "\\|"))
        L.append("")
    err = chart(r, os.path.join(outdir, "latest.png"), raw)
    L.append("![chart](latest.png)" if err is None else "(%s)" % err)
    L.append("")
    with open(os.path.join(outdir, "latest.md"), "w") as f:
        f.write("\n".join(L))
    print("\n".join(L))


if __name__ == "__main__":
    main()
