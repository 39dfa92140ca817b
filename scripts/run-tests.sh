#!/bin/sh
# Run every meson test suite of a build dir, verbosely (Criterion's
# summaries and the integration tables show), then one closing line:
#   N passed, N failed, N skipped (K checks skipped inside passing tests)
# A skipped test or check is never counted as passed; each one is listed
# with its reason. Under CI=true (or MESH_TEST_STRICT=1) the tests turn a
# missing prerequisite into a failure (tests/integration/lib.sh).
set -u
build=${1:-build-test}
logs="$build/meson-logs"
rc=0
# Each run's results in its own file, removed first: a run that writes no
# log must not show the results of an older one.
rm -f "$logs/testlog.json" "$logs/testlog-unit.json" "$logs/testlog-rest.json"
meson test -C "$build" --suite unit -v --num-processes 2 || rc=1
mv "$logs/testlog.json" "$logs/testlog-unit.json" 2>/dev/null ||
    { echo "run-tests: the unit run wrote no $logs/testlog.json"; rc=1; }
meson test -C "$build" --no-suite unit -v --num-processes 1 || rc=1
mv "$logs/testlog.json" "$logs/testlog-rest.json" 2>/dev/null ||
    { echo "run-tests: the other suites wrote no $logs/testlog.json"; rc=1; }
python3 - "$logs/testlog-unit.json" "$logs/testlog-rest.json" <<'PY' || rc=1
import json, re, sys
res, partial = {}, {}
for path in sys.argv[1:]:
    try:
        for line in open(path):
            t = json.loads(line)
            res[t["name"]] = (t["result"], t.get("stdout") or "")
    except FileNotFoundError:
        pass
ok = [n for n, (r, _) in res.items() if r == "OK"]
skip = [(n, out) for n, (r, out) in res.items() if r == "SKIP"]
bad = [n for n, (r, _) in res.items() if r not in ("OK", "SKIP")]
# Checks skipped inside a test that passed: lib.sh's skip() and
# tests/shim/run.sh print "SKIP - what (not run: why)".
for n in ok:
    lines = [l for l in res[n][1].splitlines() if l.startswith("SKIP - ")]
    if lines:
        partial[n] = lines
for n, out in skip:
    why = [l for l in out.splitlines() if l.startswith("SKIP")]
    print("SKIPPED:", n, "-", why[-1] if why else "(no reason printed)")
for n, lines in partial.items():
    for l in lines:
        print("SKIPPED in %s: %s" % (n, l[len("SKIP - "):]))
for n in bad:
    print("FAILED:", n)
nparts = sum(len(v) for v in partial.values())
tail = ""
if nparts:
    tail = " (%d check%s skipped inside %d passing test%s)" % (
        nparts, "s" if nparts != 1 else "", len(partial),
        "s" if len(partial) != 1 else "")
print(f"{len(ok)} passed, {len(bad)} failed, {len(skip)} skipped{tail}")
sys.exit(1 if not res else 0)
PY
exit $rc
