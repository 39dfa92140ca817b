#!/bin/sh
# Run every meson test suite of a build dir, verbosely (Criterion's
# summaries and the integration tables show), then one closing line.
set -u
build=${1:-build-test}
logs="$build/meson-logs"
rc=0
meson test -C "$build" --suite unit -v --num-processes 2 || rc=1
cp "$logs/testlog.json" "$logs/testlog-unit.json" 2>/dev/null || :
meson test -C "$build" --no-suite unit -v --num-processes 1 || rc=1
python3 - "$logs/testlog-unit.json" "$logs/testlog.json" <<'PY'
import json, sys
res = {}
for path in sys.argv[1:]:
    try:
        for line in open(path):
            t = json.loads(line)
            res[t["name"]] = t["result"]
    except FileNotFoundError:
        pass
ok = sum(1 for r in res.values() if r == "OK")
skip = sum(1 for r in res.values() if r == "SKIP")
bad = [n for n, r in res.items() if r not in ("OK", "SKIP")]
for n in bad:
    print("FAILED:", n)
print(f"{ok} passed, {len(bad)} failed, {skip} skipped")
PY
exit $rc
