#!/usr/bin/env python3
"""arch_report: how the C code is laid out, as a newcomer reads it.

  scripts/arch_report.py [-v] [-n N] [ROOT]      (make arch-report)
  scripts/arch_report.py --check-doc docs/ARCHITECTURE.md [ROOT]

Prints, for helperd/ conf/ preload/ meshctl/ common/: the largest files,
the longest functions (lines, and a rough branch count: if for while case
&& || ?), then for helperd/ alone: the include graph, the call graph
between files (a function defined in A, called or named in B), its cycles
(strongly connected components of more than one file), which files call
back into a module that creates them, which includes and calls point up
helperd's layers (one folder each), and where the node lock is taken.
-v lists the functions behind every call edge. --check-doc: every
`name()` in the document is a function defined in those folders, every
other backticked C name is a word of their code (or a test's name), every
file named exists (a bare x.c in one of the folders);
exit 1 naming what is not. A tool, not a test.

Functions are found with a small brace-matching parser (comments, strings
and preprocessor lines blanked first); no compiler, no ctags needed.
"""
import argparse
import datetime
import os
import re
import signal
import subprocess
import sys

DIRS = ["helperd", "conf", "preload", "meshctl", "common"]
IDENT = re.compile(r"[A-Za-z_]\w*")
BRANCH = re.compile(r"\b(?:if|for|while|case)\b|&&|\|\||\?")
CTOR = re.compile(r"_(?:new|open|start)$")
KEYWORDS = {"if", "for", "while", "switch", "return", "sizeof", "do"}
LOCK = "helperd_lock"


def strip(src):
    """Blank comments, string/char literals and preprocessor lines; keep
    every newline so that offsets map to the same line numbers."""
    out, i, n = [], 0, len(src)
    bol = True                      # at the start of a line (bar blanks)
    while i < n:
        c = src[i]
        if bol and c == "#":        # directive, with its continuations
            j = i
            while j < n and (src[j] != "\n" or src[j - 1] == "\\"):
                j += 1
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
            continue
        if src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
        elif src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
        elif c in "\"'":
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            j += 1
        else:
            out.append(c)
            if c == "\n":
                bol = True
            elif not c.isspace():
                bol = False
            i += 1
            continue
        out.append(re.sub(r"[^\n]", " ", src[i:j]))
        i = j
    return "".join(out)


def functions(text):
    """(name, static, first line, last line, body) for every definition."""
    res, depth, start, hdr_from = [], 0, 0, 0
    for m in re.finditer(r"[{};]", text):
        ch = m.start()
        if text[ch] == "{":
            if depth == 0:
                start = ch
            depth += 1
        elif text[ch] == "}":
            depth -= 1
            if depth == 0:
                f = header_name(text[hdr_from:start])
                if f:
                    name, static = f
                    at = text.rfind(name, hdr_from, start)
                    res.append((name, static, text.count("\n", 0, at) + 1,
                                text.count("\n", 0, ch) + 1,
                                text[start:ch + 1]))
                hdr_from = ch + 1
        elif depth == 0:
            hdr_from = ch + 1
    return res


def header_name(hdr):
    hdr = re.sub(r"__attribute__\s*\(\(.*?\)\)", " ", hdr, flags=re.S)
    hdr = hdr.strip()
    if "=" in hdr or not hdr.endswith(")"):
        return None
    depth, i = 0, len(hdr) - 1
    while i >= 0:                    # back to the '(' of the parameters
        depth += {")": 1, "(": -1}.get(hdr[i], 0)
        if depth == 0:
            break
        i -= 1
    m = re.search(r"([A-Za-z_]\w*)\s*$", hdr[:i])
    if not m or m.group(1) in KEYWORDS:
        return None
    return m.group(1), bool(re.search(r"\bstatic\b", hdr))


def uses(text):
    """Identifiers named in text (not after -> or .), and whether called."""
    for m in IDENT.finditer(text):
        before = text[max(0, m.start() - 2):m.start()].rstrip()
        if before.endswith(("->", ".")):
            continue
        yield m.group(0), text[m.end():m.end() + 40].lstrip()[:1] == "("


def sccs(nodes, edges):
    """Tarjan (recursive: a few hundred nodes): components of > 1 node."""
    index, low, stack, on, out = {}, {}, [], set(), []
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


def load(root):
    """{"dir/x.c": text} for the five source folders under root (and the
    folders below them: helperd/ has one per layer)."""
    files = {}
    for d in DIRS:
        if not os.path.isdir(os.path.join(root, d)):
            sys.exit(f"arch_report: {root}: not a meshshim tree (no {d}/)")
        for at, subdirs, names in os.walk(os.path.join(root, d)):
            subdirs.sort()
            for f in sorted(names):
                if f.endswith((".c", ".h")):
                    rel = os.path.relpath(os.path.join(at, f), root)
                    with open(os.path.join(at, f), errors="replace") as fp:
                        files[rel] = fp.read()
    return files


def sizes(files, text, top):
    """Largest files, longest and most branchy functions; returns helperd's
    global functions: name -> file."""
    lines = {f: t.count("\n") for f, t in files.items()}
    print("\n== Largest files (lines; STYLE: a file past ~600 is probably two)")
    for d in DIRS:
        mine = [f for f in files if f.startswith(d + "/")]
        print(f"  {d + '/':9} {len(mine):3} files {sum(lines[f] for f in mine):6} "
              f"lines, {sum(1 for f in mine if lines[f] > 600)} over 600")
    for f in sorted(files, key=lambda f: -lines[f])[:top]:
        print(f"  {lines[f]:6}  {f}")
    fns, defs = [], {}               # (lines, branches, where, name)
    for f, t in text.items():
        for name, static, l0, l1, body in functions(t):
            fns.append((l1 - l0 + 1, len(BRANCH.findall(body)), f"{f}:{l0}", name))
            if f.startswith("helperd/") and f.endswith(".c") and not static:
                defs[name] = f.split("/", 1)[1]
    print(f"\n== Longest functions ({len(fns)} functions; lines, branches)")
    for ln, br, at, name in sorted(fns, key=lambda x: -x[0])[:top]:
        print(f"  {ln:5} {br:4}  {name}  ({at})")
    print("\n== Most branches (if for while case && || ?; branches, lines)")
    for ln, br, at, name in sorted(fns, key=lambda x: -x[1])[:top]:
        print(f"  {br:5} {ln:4}  {name}  ({at})")
    print(f"  functions over 60 lines: {sum(1 for x in fns if x[0] > 60)}")
    return defs


def includes(files):
    hd = {f.split("/", 1)[1]: t for f, t in files.items() if f.startswith("helperd/")}
    inc = {f: sorted(set(re.findall(r'^\s*#\s*include\s+"helperd/([\w./]+)"', t,
                                    re.M)) - {f}) for f, t in hd.items()}
    print("\n== Include graph (helperd/*.c -> helperd headers)")
    for f in sorted(inc):
        if f.endswith(".c"):
            print(f"  {f:24} {len(inc[f]):2}: " + " ".join(h[:-2] for h in inc[f]))
    hdr = {f: set(v) for f, v in inc.items() if f.endswith(".h")}
    hcyc = sccs(hdr, hdr)
    print(f"  header cycles: {len(hcyc)}" + "".join(f"  [{' '.join(c)}]" for c in hcyc))
    return inc


# helperd's layers, top first: a file may include or call its own layer's
# files and those of the layers below it, never above (docs/ARCHITECTURE.md).
LAYERS = ["node", "api", "cluster", "local", "relay", "identity",
          ("evloop", "obs"), "model"]


def rank(f):
    """helperd file (node/daemon.c) -> its layer's rank; main.c: -1."""
    top = f.split("/", 1)[0] if "/" in f else ""
    for i, layer in enumerate(LAYERS):
        if top == layer or isinstance(layer, tuple) and top in layer:
            return i
    return -1


def layers(inc, calls):
    """Every include or call that points up the layers."""
    print("\n== Layers (" + " -> ".join(l if isinstance(l, str) else "/".join(l)
                                       for l in LAYERS) + "): edges pointing up")
    up = []
    for f, hs in sorted(inc.items()):
        up += [f"  {f} includes {h}" for h in hs if rank(h) < rank(f)]
    for f, row in sorted(calls.items()):
        up += [f"  {f} calls {g}: {' '.join(sorted(n))}"
               for g, n in sorted(row.items()) if rank(g) < rank(f)]
    print("\n".join(up) if up else "  none")
    print(f"  {len(up)} edges point up")
    return len(up)


def module(f, stems):
    """relay_io.c -> relay, http_intent.c -> http, store_etcd.c -> store_etcd."""
    parts = f[:-2].split("_")
    for k in range(1, len(parts) + 1):
        if "_".join(parts[:k]) in stems:
            return "_".join(parts[:k])
    return f[:-2]


def graph(text, defs, verbose):
    """Calls between helperd's files, their cycles, creation, callbacks."""
    calls = {}                       # caller file -> callee file -> names
    for path, t in text.items():
        f = path.split("/", 1)[1]
        if path.startswith("helperd/") and f.endswith(".c"):
            for name, _ in uses(t):
                if defs.get(name, f) != f:
                    calls.setdefault(f, {}).setdefault(defs[name], set()).add(name)
    print(f"\n== Call graph (helperd: caller -> callee file (functions)); "
          f"{sum(len(v) for v in calls.values())} edges")
    for f, row in sorted(calls.items()):
        if verbose:
            print(f"  {f}" + "".join(f"\n      -> {g}: {' '.join(sorted(n))}"
                                     for g, n in sorted(row.items())))
        else:
            print(f"  {f:24} -> " + " ".join(f"{g[:-2]}({len(n)})"
                                             for g, n in sorted(row.items())))
    cyc = sccs(set(calls) | set(defs.values()), calls)
    print(f"\n== Cycles (strongly connected components of > 1 file): {len(cyc)}")
    for c in cyc:
        print(f"  {len(c)} files: " + " ".join(c))
    stems = {f[:-2] for f in defs.values()}
    mod = {f: module(f, stems) for f in set(calls) | set(defs.values())}
    medges, creates = {}, {}         # creates: module -> {module: ctor}
    for f, row in calls.items():
        for g, names in row.items():
            if mod[f] != mod[g]:
                medges.setdefault(mod[f], set()).add(mod[g])
                for name in sorted(n for n in names if CTOR.search(n)):
                    creates.setdefault(mod[f], {}).setdefault(mod[g], name)
    mcyc = sccs(set(mod.values()), medges)
    print(f"  by module (relay_io.c in relay, http_*.c in http ...): {len(mcyc)}"
          + "".join(f"\n  {len(c)} modules: {' '.join(c)}" for c in mcyc))
    print("\n== Creation (module -> modules it makes, by a *_new/_open/_start)")
    for m in sorted(creates):
        print(f"  {m:16} -> " + " ".join(f"{g}({c})" for g, c in sorted(creates[m].items())))

    def ancestors(m, seen):
        """Every module that made m, directly or not -> its child on the way."""
        for p, kids in creates.items():
            if m in kids and p not in seen:
                seen[p] = m
                ancestors(p, seen)
        return seen
    print("\n== Calling back into a creator (a file calls a module that made it)")
    back = set()
    for f, row in sorted(calls.items()):
        anc = ancestors(mod[f], {})
        for g, names in sorted(row.items()):
            if mod[g] == mod[f] or mod[g] not in anc:
                continue
            path = [mod[g]]
            while path[-1] != mod[f]:
                path.append(anc[path[-1]])
            via = "" if len(path) == 2 else f" ({' -> '.join(path)})"
            print(f"  {f:24} -> {g}{via}: {' '.join(sorted(names))}")
            back.add(f)
    print(f"  {len(back)} files call back into a creator")
    return calls


def node_lock(text):
    print(f"\n== Node lock: functions that call {LOCK} (helperd.h)")
    total, loop_locked = 0, False
    for path, t in sorted(text.items()):
        if not path.startswith("helperd/"):
            continue
        sites = []
        for name, _, _, _, body in functions(t):
            n = len(re.findall(r"\b" + LOCK + r"\s*\(", body))
            if name == "loop_lock" and n:
                loop_locked = True
            if n and name not in ("helperd_relock", "loop_lock"):
                sites.append(name + (f" x{n}" if n > 1 else ""))
        if sites:
            print(f"  {path.split('/', 1)[1]:15} " + " ".join(sites))
            total += len(sites)
    if loop_locked:
        print(f"  {total} functions, plus loop_lock (daemon.c): the main loop "
              f"holds it through every round")
    else:
        print(f"  {total} functions; the main loop holds no node lock")
    # The relay's own short locks (a worker never waits for the loop).
    print("  other mutexes taken in the relay and tls.c (not the node lock):")
    for path, t in sorted(text.items()):
        base = path.split("/", 1)[-1]
        if not (base.startswith("relay") or base == "tls.c") or \
                not path.startswith("helperd/"):
            continue
        sites = []
        for name, _, _, _, body in functions(t):
            locks = sorted(set(re.findall(
                r"pthread_mutex_lock\s*\(\s*&\s*([\w>.-]+)\s*\)", body)))
            if locks:
                sites.append(f"{name}({', '.join(l.split('>')[-1] for l in locks)})")
        if sites:
            print(f"    {base:15} " + " ".join(sites))


def check_doc(doc, root, files, text):
    """The names a document puts in backticks exist in the code."""
    with open(doc) as fp:
        ticks = re.findall(r"`([^`\n]+)`", fp.read())
    fns = {name for t in text.values() for name, *_ in functions(t)}
    extra = ""                       # test names, generated files
    for f in ["meson.build", "tests/meson.build", "tests/unit/meson.build",
              "tests/integration/meson.build"]:
        if os.path.exists(os.path.join(root, f)):
            with open(os.path.join(root, f)) as fp:
                extra += fp.read()
    words = set(IDENT.findall("\n".join(files.values()) + extra))
    bad, n = [], 0
    for t in sorted(set(ticks)):
        t = t.strip()
        m = re.fullmatch(r"(?:struct )?([A-Za-z_]\w*)(\(\))?", t)
        if re.fullmatch(r"[\w./-]+\.(?:c|h|py|sh|md|build)", t):
            n += 1                  # a path, or a file of one of DIRS
            if not (os.path.exists(os.path.join(root, t)) or "/" not in t and
                    (any(f.endswith("/" + t) for f in files) or t in extra)):
                bad.append(f"{t}: no such file")
        elif re.fullmatch(r"\w+(?:->\w+|\.\w+)+", t):
            n += 1                  # h->conf.max_conns: every part a word
            bad += [f"{t}: {w} not in the code" for w in IDENT.findall(t)
                    if w not in words]
        elif m and (m.group(2) or "_" in t or t.isupper() or t.startswith("struct ")):
            n += 1
            if m.group(2) and m.group(1) not in fns:
                bad.append(f"{t}: no function {m.group(1)} is defined")
            elif m.group(1) not in words:
                bad.append(f"{t}: not in the code")
    print(f"{doc}: {n} names checked, {len(bad)} missing")
    for b in bad:
        print("  " + b)
    return 1 if bad else 0


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)      # | head is fine
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", nargs="?", default=".")
    ap.add_argument("-n", type=int, default=12, help="rows per top list")
    ap.add_argument("-v", action="store_true", help="name every call edge")
    ap.add_argument("--check-doc", metavar="DOC",
                    help="check the names DOC puts in backticks, print nothing else")
    a = ap.parse_args()
    files = load(a.root)
    text = {f: strip(t) for f, t in files.items()}
    if a.check_doc:
        return check_doc(a.check_doc, a.root, files, text)
    rev = subprocess.run(["git", "-C", a.root, "log", "-1", "--format=%h %cs"],
                         capture_output=True, text=True).stdout.strip()
    now = datetime.datetime.now(datetime.timezone.utc)
    print(f"arch_report {now:%Y-%m-%d %H:%M} UTC, commit {rev or '?'}")
    defs = sizes(files, text, a.n)
    inc = includes(files)
    calls = graph(text, defs, a.v)
    layers(inc, calls)
    node_lock(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
