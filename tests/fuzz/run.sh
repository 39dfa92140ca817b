#!/bin/bash
# Fuzz the parsers of outside input with libFuzzer (clang):
#   tests/fuzz/run.sh [SECONDS_PER_TARGET]   (default 20)
# Builds each target with -fsanitize=fuzzer,address,undefined, seeds it
# from tests/fixtures, runs it, and fails on any crash, leak or UB report.
set -u
secs=${1:-20}
top=$(cd "$(dirname "$0")/../.." && pwd)
# A run that fuzzed nothing never reports success: either every target
# builds and runs, or the test says SKIP with the reason (exit 77), or it
# fails. Under CI=true / MESH_TEST_STRICT=1 a missing prerequisite fails
# too (CI installs clang and its fuzzer runtime: scripts/deps.sh test).
not_here() {
	if [ "${CI:-}" = true ] || [ -n "${MESH_TEST_STRICT:-}" ]; then
		echo "FAIL - fuzz: $*"; exit 1
	fi
	echo "SKIP: $*"; exit 77
}
command -v clang >/dev/null || not_here "clang not installed"
T=$(mktemp -d /tmp/meshfuzz.XXXXXX)
trap 'rm -rf "$T" /tmp/fuzz-mesh-*.conf' EXIT
# clang without libFuzzer's or the sanitizers' runtime (Debian 12: the
# package libclang-rt-dev) links nothing: say so once, with the reason,
# instead of four failed builds.
printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' > "$T/probe.c"
if ! clang -fsanitize=fuzzer,address,undefined -o "$T/probe" "$T/probe.c" >"$T/probe.log" 2>&1; then
	sed 's/^/    /' "$T/probe.log" | head -5
	not_here "clang cannot link a libFuzzer + ASan + UBSan program (fuzzer or sanitizer runtime missing)"
fi
export LSAN_OPTIONS=suppressions=$top/tests/lsan.supp
flags="-g -O1 -std=gnu11 -D_GNU_SOURCE -I$top -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
libs="$(pkg-config --cflags --libs jansson libconfig gnutls)"
common="$top/common/util.c $top/common/log.c"
# Every file of conf/ and of the intentions (model, JSON, store): a split
# of either must not leave the fuzz build behind.
conf=$(echo "$top"/conf/*.c)
intent=$(echo "$top"/helperd/model/intent.c "$top"/helperd/model/intent_*.c)
build() { # build NAME SOURCES...: a target that does not build fails
	n=$1; shift
	# shellcheck disable=SC2086
	clang $flags -o "$T/$n" "$top/tests/fuzz/$n.c" "$@" $common $libs 2>"$T/$n.build" && return 0
	echo "FAIL - fuzz $n: does not build"; head -30 "$T/$n.build"
	failn=$((failn + 1)); rc=1
	return 1
}
seed() { # seed NAME FILES...: a corpus dir from existing files
	mkdir -p "$T/corpus-$1"; n=$1; shift
	for f in "$@"; do [ -f "$f" ] && cp "$f" "$T/corpus-$n/"; done; :
}
rc=0; pass=0; failn=0
run() { # run NAME
	mkdir -p "$T/corpus-$1"
	if (cd "$T" && "$T/$1" -max_total_time="$secs" -max_len=4096 -timeout=5 "$T/corpus-$1") >"$T/$1.log" 2>&1; then
		echo "ok   - fuzz $1: $(grep -o 'Done [0-9]* runs in [0-9]* second' "$T/$1.log"), no crash"
		pass=$((pass + 1))
	else
		echo "FAIL - fuzz $1:"; grep -A15 -E "ERROR|runtime error|SUMMARY" "$T/$1.log" | head -30
		failn=$((failn + 1)); rc=1
	fi
}
build fuzz_consul $conf && seed fuzz_consul "$top"/tests/fixtures/conf/good/*.json "$top"/tests/fixtures/conf/bad/*.json "$top"/examples/getting-started/*.json && run fuzz_consul
build fuzz_conf $conf && seed fuzz_conf "$top"/tests/fixtures/conf/good/*.conf "$top"/tests/fixtures/conf/bad/*.conf && run fuzz_conf
build fuzz_intent $intent $conf && run fuzz_intent
build fuzz_spiffe "$top/helperd/model/spiffe.c" && run fuzz_spiffe
# DNS queries: seeded with real ones (A, SRV, AAAA, outside the zone).
mkdir -p "$T/corpus-fuzz_dns"
python3 - "$T/corpus-fuzz_dns" <<'PY'
import struct, sys
def q(name, qtype, i):
    w = struct.pack(">HHHHHH", 0x1234 + i, 0x0100, 1, 0, 0, 0)
    for l in name.split("."):
        w += bytes([len(l)]) + l.encode()
    w += b"\0" + struct.pack(">HH", qtype, 1)
    open("%s/q%d" % (sys.argv[1], i), "wb").write(w)
for i, (n, t) in enumerate([("socat.service.mesh", 1), ("socat.connect.consul", 33),
                            ("web.service.consul", 28), ("example.com", 1), ("nope.service.mesh", 1)]):
    q(n, t, i)
PY
build fuzz_dns "$top/helperd/local/dns.c" "$top/helperd/evloop/loop.c" $(pkg-config --libs ldns) && run fuzz_dns
echo "$pass passed, $failn failed"
[ "$pass" -gt 0 ] || { echo "FAIL - no target ran"; rc=1; }
exit $rc
