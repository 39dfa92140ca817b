#!/bin/bash
# bench/obs_cost.sh BUILD_DIR — the cost of observing (issue 14), alone.
#
# One echo-once backend (bench/mbench server), two helperd with
# same_node_mtls = true and the bench's three services, started side by
# side: "nolog" (no access log, never scraped) and "log" (access log in
# JSON, a line per connection, and /v1/agent/metrics?format=prometheus
# scraped every second), as bench/run.sh's mesh_tls_nolog and mesh_tls.
# Rounds alternate the two; each round runs `mbench connrate` through the
# shim (sequential, then 16 parallel) and reads helperd's CPU time
# (schedstat of every thread, nanoseconds) before and after. Prints, per
# workload, the medians of conn/s and of helperd CPU µs per connection.
#
# OBS_STRACE=1: one more sequential run per helperd under `strace -c -f`
#   (syscalls per connection, by name), in RAW/strace-NAME.txt.
# OBS_PERF=1: one more sequential run per helperd under `perf record -g`,
#   report in RAW/perf-NAME.txt.
# Knobs: OBS_ROUNDS [5], OBS_SECS [3] per run, OBS_KEEP=1 keeps the temp
# dir. Output dir: OBS_OUT [bench/results/raw/obs-<stamp>].
set -uo pipefail

BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
case "$BUILD" in /*) ;; *) BUILD="$(cd "$HERE/.." && pwd)/$BUILD" ;; esac
HELPERD="$BUILD/helperd/helperd"
SHIM="$BUILD/preload/libmeshshim.so"
ROUNDS=${OBS_ROUNDS:-5}
SECS=${OBS_SECS:-3}
RAW=${OBS_OUT:-$HERE/results/raw/obs-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$RAW"
T=$(mktemp -d /tmp/meshobs.XXXXXX)
PIDS=()

cleanup() {
	trap - EXIT INT TERM
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	[ "${OBS_KEEP:-0}" = 1 ] && echo "temp dir kept: $T" >&2 || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -x "$HELPERD" ] && [ -f "$SHIM" ] || { echo "no $HELPERD or $SHIM" >&2; exit 1; }
cc -O2 -Wall -Wextra -pthread -o "$T/mbench" "$HERE/mbench.c" || exit 1
ulimit -n "$(ulimit -Hn)" 2>/dev/null

freeport() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
ECHO=$(freeport)
ONCE=$(freeport)
"$T/mbench" server "$ECHO" "${ONCE}c" >"$T/backend.log" 2>&1 &
PIDS+=($!)

declare -A HPID=() API=() UPS=()
for name in nolog log; do
	d="$T/$name"
	mkdir -p "$d/services.d"
	{
		[ $name = log ] && printf 'access_log = { path = "%s/access.log"; format = "json"; };\n' "$d"
		printf 'node = "bench";\ndata_dir = "%s/data";\nsocket = "%s/helperd.sock";\n' "$d" "$d"
		printf 'http_addr = "127.0.0.1:0";\nmesh_port = 0;\nservices_dir = "%s/services.d";\n' "$d"
		printf 'default_intention = "allow";\nsame_node_mtls = true;\nlog_level = "warn";\n'
		printf 'services = (\n  { name = "echo"; port = %s; connect = {}; },\n' "$ECHO"
		printf '  { name = "once"; port = %s; connect = {}; }\n);\n' "$ONCE"
	} >"$d/mesh.conf"
	"$HELPERD" -c "$d/mesh.conf" >"$d/helperd.log" 2>&1 &
	HPID[$name]=$!
	PIDS+=($!)
	for _ in $(seq 600); do [ -s "$d/data/ports.json" ] && break; sleep 0.05; done
	[ -s "$d/data/ports.json" ] || { echo "helperd $name did not start: $(tail -3 "$d/helperd.log")" >&2; exit 1; }
	API[$name]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["http_addr"])' "$d/data/ports.json")
	UPS[$name]=$(freeport)
	if [ $name = log ]; then
		bash -c 'while sleep 1; do curl -s -o /dev/null "http://$0/v1/agent/metrics?format=prometheus"; done' "${API[$name]}" &
		PIDS+=($!)
	fi
done

cpu_ns() { # on-CPU nanoseconds of every thread of pid $1
	cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f\n", s}'
}
client() { # client NAME cmd...
	local name=$1
	shift
	env LD_PRELOAD="$SHIM" MESH_SOCKET="$T/$name/helperd.sock" MESH_SERVICE=client \
	    MESH_UPSTREAMS="once:${UPS[$name]}" "$@"
}
kv() { local w; for w in $2; do [ "${w%%=*}" = "$1" ] && { echo "${w#*=}"; return; }; done; }

: >"$RAW/runs.tsv"
run() { # run ROUND NAME PAR
	local r=$1 name=$2 par=$3 c0 c1 out n
	c0=$(cpu_ns "${HPID[$name]}")
	out=$(client "$name" "$T/mbench" connrate "${UPS[$name]}" "$par" "$SECS" 1000000 2>&1)
	c1=$(cpu_ns "${HPID[$name]}")
	n=$(kv conns "$out")
	[ -n "$n" ] && [ "$n" -gt 0 ] || { echo "run $name failed: $out" >&2; return; }
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$name" "$par" "$(kv rate "$out")" \
	    "$(awk -v a="$c0" -v b="$c1" -v n="$n" 'BEGIN {printf "%.1f", (b - a) / n / 1000}')" \
	    "$(kv errors "$out")" >>"$RAW/runs.tsv"
}
# warm up (leaves, tickets)
for name in nolog log; do client "$name" "$T/mbench" connrate "${UPS[$name]}" 1 1 200 >/dev/null 2>&1; done
for r in $(seq "$ROUNDS"); do
	if [ $((r % 2)) = 1 ]; then order="nolog log"; else order="log nolog"; fi
	for name in $order; do
		run "$r" "$name" 1
		run "$r" "$name" 16
	done
	echo "round $r/$ROUNDS done" >&2
done

if [ "${OBS_STRACE:-0}" = 1 ]; then
	for name in nolog log; do
		strace -c -f -o "$T/strace-$name.raw" -p "${HPID[$name]}" &
		sp=$!
		sleep 1
		out=$(client "$name" "$T/mbench" connrate "${UPS[$name]}" 1 "$SECS" 1000000 2>&1)
		kill -INT $sp; wait $sp 2>/dev/null
		{ echo "# $name: $out"; cat "$T/strace-$name.raw"; } >"$RAW/strace-$name.txt"
	done
fi
if [ "${OBS_PERF:-0}" = 1 ]; then
	for name in nolog log; do
		perf record -F 1999 -g -o "$RAW/perf-$name.data" -p "${HPID[$name]}" >/dev/null 2>&1 &
		pp=$!
		sleep 0.5
		out=$(client "$name" "$T/mbench" connrate "${UPS[$name]}" 1 "$SECS" 1000000 2>&1)
		kill -INT $pp; wait $pp 2>/dev/null
		{ echo "# $name: $out"
		  perf report -i "$RAW/perf-$name.data" --no-children -g none --sort dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -20
		  perf report -i "$RAW/perf-$name.data" --no-children -g none --sort tid --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -20
		  perf report -i "$RAW/perf-$name.data" --no-children -g none --sort dso,sym --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -80
		  perf report -i "$RAW/perf-$name.data" --children -g none --sort sym --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -120
		} >"$RAW/perf-$name.txt"
	done
fi
[ -s "$T/log/access.log" ] && wc -l "$T/log/access.log" >&2

python3 - "$RAW/runs.tsv" <<'EOF'
import sys, statistics as st
rows = [l.split('\t') for l in open(sys.argv[1]).read().split('\n') if l]
def med(name, par, col):
    v = [float(r[col]) for r in rows if r[1] == name and r[2] == par]
    return (st.median(v), min(v), max(v), len(v)) if v else None
print("| workload | nolog conn/s | log conn/s | log/nolog | nolog helperd CPU µs/conn | log helperd CPU µs/conn | added µs/conn |")
print("|---|---:|---:|---:|---:|---:|---:|")
for par, label in (("1", "sequential"), ("16", "16 parallel")):
    a, b = med("nolog", par, 3), med("log", par, 3)
    ca, cb = med("nolog", par, 4), med("log", par, 4)
    if not (a and b and ca and cb):
        continue
    print(f"| {label} | {a[0]:,.0f} ({a[1]:,.0f}-{a[2]:,.0f}) | {b[0]:,.0f} ({b[1]:,.0f}-{b[2]:,.0f}) | {b[0]/a[0]:.2f}x "
          f"| {ca[0]:.1f} ({ca[1]:.1f}-{ca[2]:.1f}) | {cb[0]:.1f} ({cb[1]:.1f}-{cb[2]:.1f}) | {cb[0]-ca[0]:+.1f} |")
print(f"\n{len(rows)} runs, {sys.argv[1]}")
EOF
