#!/bin/bash
# bench/cluster.sh BUILD_DIR [NODES] — `make bench-cluster [NODES=n]` (issue
# 16): a 3-member etcd and NODES (100) helperd nodes on this machine, each
# node a network namespace.
#
# Layout: a bridge namespace holds br0 (10.78.255.1-3/16: the three etcd
# members, which also run there) and one veth per node; node N is the
# namespace with 10.78.0.N/16, its helperd (HTTP API on 10.78.0.N:8500,
# mesh port 21000) and an echo backend (bench/mbench server, 127.0.0.1:7001)
# behind its 10 services: "common" (on every node) and nNs1..nNs9 (its
# own). Node 1 is the CA server; every other node is a CA client (leaves
# by CSR). Default lease TTL (10 s) and check interval (10 s). Nodes start
# in batches of 10, each once node 1 lists the previous one; etcd runs at
# nice -10 with its data on tmpfs (see BENCH_ETCD_DIR below).
#
# Measures (bench/cluster_probe.py polls every node's API from the bridge
# namespace):
#   steady state  etcd requests/s per idle node (etcd's own /metrics,
#                 grpc_server_started_total over all three members),
#                 helperd CPU and RSS per node, etcd's CPU, RSS, db size
#   propagation   deny intention written on node 1, until every node's
#                 /v1/connect/intentions/check says Denied (TRIALS writes)
#   live cut      a session from node 99 to nNs1 of node 50 (its helperd
#                 enforces) cut by an intention written on node 1
#   convergence   10 nodes' helperd killed (SIGKILL): until no node lists
#                 them as passing (what a node dials; a blocking query per
#                 node), with each one's last lease renewal (its log, at
#                 debug level) and etcd's DELETE of its keys (an etcdctl
#                 watch) for the timeline; 10 new nodes started:
#                 until every old node lists them, and until node 1's
#                 connections through the shim reach each of them
# Results: bench/results/cluster.md (printed; cluster-<N>.md for another
# node count) and bench/results/raw/cluster-<stamp>/ (gitignored). Knobs:
# NODES (the second argument, or BENCH_NODES) [100],
# BENCH_CHURN [10], BENCH_TRIALS [10], BENCH_IDLE_SECS [60],
# BENCH_SETTLE_SECS [30], BENCH_KEEP=1. Needs root.
set -uo pipefail

BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
HELPERD="$BUILD/helperd/helperd"
SHIM="$BUILD/preload/libmeshshim.so"
PROBE="$HERE/cluster_probe.py"

NODES=${2:-${BENCH_NODES:-100}}
CHURN=${BENCH_CHURN:-10}
TRIALS=${BENCH_TRIALS:-10}
IDLE_SECS=${BENCH_IDLE_SECS:-60}
SETTLE_SECS=${BENCH_SETTLE_SECS:-30}
LEASE_TTL=10            # helperd's default (store.lease_ttl)
TOKEN=8f1d4c2e-6b7a-4e39-9c0d-2a5b7e1f3c48
CLK_TCK=$(getconf CLK_TCK)

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS="$HERE/results"
OUT="$RESULTS/cluster.md"
[ "$NODES" = 100 ] || OUT="$RESULTS/cluster-$NODES.md"
RAW="$RESULTS/raw/cluster-$STAMP"
mkdir -p "$RAW"
T=$(mktemp -d /tmp/meshscale.XXXXXX)
# etcd's data: tmpfs by default. This VM's shared disk gave etcd a WAL
# fsync p50 of ~30 ms and a p99 over 0.5 s (etcd asks for < 10 ms); two
# runs with the data there never converged (docs/SCALE.md). tmpfs stands
# in for the dedicated SSD a production etcd has. BENCH_ETCD_DIR=/var/tmp
# (or any disk directory) measures on disk instead.
ETCD_BASE=${BENCH_ETCD_DIR:-/dev/shm}
ED=$(mktemp -d "$ETCD_BASE/meshscale-etcd.XXXXXX") || exit 1
mkdir -p "$T/log"
: >"$RAW/notes.txt"
log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
note() { log "NOTE: $*"; printf '%s\n' "$*" >>"$RAW/notes.txt"; }
res() { printf '%s\t%s\n' "$1" "$2" >>"$RAW/results.tsv"; }
: >"$RAW/results.tsv"

[ "$(id -u)" = 0 ] || { log "needs root (network namespaces)"; exit 1; }
for t in ip etcd etcdctl curl python3 cc; do
	command -v $t >/dev/null || { log "missing $t (sh scripts/deps.sh bench etcd)"; exit 1; }
done
[ -x "$HELPERD" ] && [ -f "$SHIM" ] || { log "$HELPERD or $SHIM missing"; exit 1; }
[ "$NODES" -ge 4 ] && [ "$CHURN" -ge 1 ] && [ "$CHURN" -lt "$NODES" ] ||
    { log "BENCH_NODES >= 4 and 1 <= BENCH_CHURN < BENCH_NODES"; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null

P=mc$$
NSBR=$P-br
ALL=$((NODES + CHURN))
PIDS=()
declare -A HPID
cleanup() {
	local p i
	trap - EXIT INT TERM
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.5
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	for ((i = 1; i <= ALL; i++)); do ip netns del "$P-n$i" 2>/dev/null; done
	ip netns del "$NSBR" 2>/dev/null
	rm -rf "$ED"
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		log "temp dir kept: $T"
	else
		cp -r "$T/log" "$RAW/logs" 2>/dev/null
		rm -rf "$T"
	fi
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM
bg() { # bg NS NAME cmd...: sets LASTPID
	local ns=$1 name=$2
	shift 2
	ip netns exec "$ns" "$@" >>"$T/log/$name.log" 2>&1 </dev/null &
	LASTPID=$!
	PIDS+=("$LASTPID")
}
in_br() { ip netns exec "$NSBR" "$@"; }
wakeups() { # voluntary context switches over every thread of the pids
	local p s=0 v
	for p in "$@"; do
		v=$(cat /proc/$p/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/{s+=$2} END{print s+0}')
		s=$((s + v))
	done
	echo $s
}
cpu_ticks() {
	local p s=0 v
	for p in "$@"; do
		v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12+$13}')
		s=$((s + ${v:-0}))
	done
	echo $s
}
node_ip() { echo "10.78.0.$1"; }
metrics() { # metrics TAG: the three members' /metrics
	local k
	for k in 1 2 3; do
		in_br curl -s --max-time 5 "http://10.78.255.$k:2379/metrics" >"$RAW/metrics-$1-e$k.txt"
	done
}
node_ips() { # node_ips first last [except...]
	local i a=$1 b=$2 x
	shift 2
	for ((i = a; i <= b; i++)); do
		for x in "$@"; do [ "$x" = "$i" ] && continue 2; done
		node_ip "$i"
	done
}

# --- network --------------------------------------------------------------------
log "$ALL node namespaces and a bridge (prefix $P)"
ip netns add "$NSBR" || exit 1
ip -n "$NSBR" link add br0 type bridge
ip -n "$NSBR" link set br0 up
ip -n "$NSBR" link set lo up
for k in 1 2 3; do ip -n "$NSBR" addr add "10.78.255.$k/16" dev br0; done
for ((i = 1; i <= ALL; i++)); do
	ns=$P-n$i
	ip netns add "$ns" || { log "ip netns add $ns failed"; exit 1; }
	ip link add "${P}n$i" type veth peer name "${P}p$i" || exit 1
	ip link set "${P}n$i" netns "$ns"
	ip link set "${P}p$i" netns "$NSBR"
	ip -n "$ns" link set "${P}n$i" name eth0
	ip -n "$ns" addr add "$(node_ip $i)/16" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$ns" link set lo up
	ip -n "$NSBR" link set "${P}p$i" master br0 up
done

# --- etcd: three members in the bridge namespace ----------------------------------
EPS=()
for k in 1 2 3; do
	# nice -10: in production etcd has servers of its own; here it
	# shares 2 cores with 100 helperd and whatever else runs
	bg "$NSBR" "etcd$k" nice -n -10 etcd --name "e$k" --data-dir "$ED/etcd$k" \
	    --listen-client-urls "http://10.78.255.$k:2379" \
	    --advertise-client-urls "http://10.78.255.$k:2379" \
	    --listen-peer-urls "http://10.78.255.$k:2380" \
	    --initial-advertise-peer-urls "http://10.78.255.$k:2380" \
	    --initial-cluster "e1=http://10.78.255.1:2380,e2=http://10.78.255.2:2380,e3=http://10.78.255.3:2380" \
	    --initial-cluster-token "$P" --initial-cluster-state new
	EPS+=("$LASTPID")
done
ECTL="http://10.78.255.1:2379,http://10.78.255.2:2379,http://10.78.255.3:2379"
for _ in $(seq 150); do
	ETCDCTL_API=3 in_br etcdctl --endpoints "$ECTL" --command-timeout=1s \
	    endpoint health >/dev/null 2>&1 && break
	sleep 0.2
done
ETCDCTL_API=3 in_br etcdctl --endpoints "$ECTL" --command-timeout=2s \
    endpoint health >/dev/null 2>&1 || { log "etcd did not become healthy"; exit 1; }

# --- nodes ------------------------------------------------------------------------------
MBENCH="$T/mbench"
cc -O2 -Wall -Wextra -pthread -o "$MBENCH" "$HERE/mbench.c" || exit 1
# the nodes the convergence step kills log at debug level (their lease
# renewals, for the timeline of bench/cluster_report.py), the others at
# info (when each dropped a killed node's instance, ditto; BENCH_LOG_LEVEL:
# every node)
KILL=()
for ((k = 0; k < CHURN; k++)); do KILL+=($((NODES - k * (NODES / CHURN)))); done
node_log_level() {
	[ -n "${BENCH_LOG_LEVEL:-}" ] && { echo "$BENCH_LOG_LEVEL"; return; }
	[[ " ${KILL[*]} " == *" $1 "* ]] && echo debug || echo info
}
node_conf() { # node_conf N
	local n=$1 d="$T/n$1" k first=$(($1 % 3 + 1)) eps s
	mkdir -p "$d/services.d"
	eps="\"http://10.78.255.$first:2379\""
	for k in 1 2 3; do
		[ $k = $first ] || eps="$eps, \"http://10.78.255.$k:2379\""
	done
	{
		printf 'node = "n%s";\ndata_dir = "%s/data";\nsocket = "%s/helperd.sock";\n' "$n" "$d" "$d"
		printf 'http_addr = "%s:8500";\nmesh_port = 21000;\nadvertise_addr = "%s";\n' "$(node_ip "$n")" "$(node_ip "$n")"
		printf 'services_dir = "%s/services.d";\ndefault_intention = "allow";\n' "$d"
		printf 'log_level = "%s";\njoin_token = "cluster-bench-%s";\n' "$(node_log_level "$n")" "$P"
		printf 'acl = { initial_management = "%s"; };\n' "$TOKEN"
		printf 'store = { backend = "etcd"; endpoints = [ %s ]; prefix = "/meshscale"; };\n' "$eps"
		[ "$n" = 1 ] || printf 'ca = { server = false; };\n'
		printf 'services = (\n  { name = "common"; port = 7001; connect = {}; }'
		for s in 1 2 3 4 5 6 7 8 9; do
			printf ',\n  { name = "n%ss%s"; port = 7001; connect = {}; }' "$n" "$s"
		done
		printf '\n);\n'
	} >"$d/mesh.conf"
}
node_start() { # node_start N: helperd in N's namespace (no wait)
	bg "$P-n$1" "helperd-n$1" "$HELPERD" -c "$T/n$1/mesh.conf"
	HPID[$1]=$LASTPID
}
node_wait() { # node_wait N...: each wrote ports.json (60 s)
	local n
	for n in "$@"; do
		for _ in $(seq 1200); do
			[ -s "$T/n$n/data/ports.json" ] && continue 2
			kill -0 "${HPID[$n]}" 2>/dev/null || break
			sleep 0.05
		done
		note "helperd n$n did not start: $(tail -3 "$T/log/helperd-n$n.log")"
		return 1
	done
}
for ((i = 1; i <= ALL; i++)); do
	node_conf $i
	MBENCH_THREADS=1 bg "$P-n$i" "echo-n$i" "$MBENCH" server 7001
done

{
	echo "date	$(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "cpu	$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
	echo "ncpu	$(nproc)"
	echo "mem	$(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "kernel	$(uname -r)"
	echo "etcd	$(etcd --version | awk '/etcd Version/{print $3}')"
	echo "helperd	$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo '+dirty')"
	echo "buildtype	$(meson introspect "$BUILD" --buildoptions 2>/dev/null | python3 -c 'import json,sys; o={x["name"]:x["value"] for x in json.load(sys.stdin)}; print(o.get("buildtype","?"), "sanitize=" + str(o.get("b_sanitize","?")))' 2>/dev/null)"
	echo "nodes	$NODES"
	echo "churn	$CHURN"
	echo "lease_ttl	$LEASE_TTL s"
	echo "etcd_data	$ETCD_BASE ($(df --output=fstype "$ETCD_BASE" | tail -1))"
	echo "load_start	$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$RAW/machine.tsv"

# nodes_known N: how many nodes N's catalog knows (/v1/catalog/nodes: a
# short answer; /v1/health/service/common listed at most 64 instances
# before the catalog.c fix of this issue, docs/SCALE.md)
nodes_known() {
	in_br curl -s --max-time 5 -H "X-Consul-Token: $TOKEN" \
	    "http://$(node_ip "$1"):8500/v1/catalog/nodes" |
	    /usr/bin/python3 -c 'import json,sys
try: print(len(json.load(sys.stdin)))
except Exception: print(-1)'
}
log "starting $NODES helperd (node 1 the CA server, then batches of 10, each once node 1 lists the one before)"
t_start=$EPOCHREALTIME
node_start 1
node_wait 1 || exit 1
for ((i = 2; i <= NODES; i += 10)); do
	batch=()
	for ((j = i; j < i + 10 && j <= NODES; j++)); do node_start $j; batch+=($j); done
	node_wait "${batch[@]}" || exit 1
	# the next batch once node 1 lists this one (60 s at most)
	for _ in $(seq 120); do
		[ "$(nodes_known 1)" -ge "${batch[-1]}" ] && break
		sleep 0.5
	done
done
log "all started in $(python3 -c "print('%.1f' % ($EPOCHREALTIME - $t_start))") s; waiting for nodes 1, $((NODES / 2)), $NODES to know all $NODES nodes"
ready=0
t_wait=$SECONDS
while [ $((SECONDS - t_wait)) -lt 300 ]; do
	ok=1
	for n in 1 $((NODES / 2)) $NODES; do
		[ "$(nodes_known "$n")" = "$NODES" ] || { ok=0; break; }
	done
	[ $ok = 1 ] && { ready=1; break; }
	sleep 1
done
t_ready=$(python3 -c "print('%.1f' % ($EPOCHREALTIME - $t_start))")
lease_losses() { # how often the nodes lost their lease or etcd, from their logs
	cat "$T"/log/helperd-n*.log | grep -c 'expired while etcd\|our lease is gone\|ETCD UNREACHABLE'
}
if [ $ready != 1 ]; then
	note "nodes 1, $((NODES / 2)), $NODES never knew all $NODES nodes (${t_ready} s); lease losses and etcd outages logged by the nodes: $(lease_losses)"
	metrics idle1
	python3 "$HERE/cluster_report.py" "$RAW" "$OUT"
	cat "$OUT"
	exit 1
fi
res startup_s "$t_ready"
log "catalog complete ${t_ready} s after the first start"
# leaves: every CA client's services have their leaf (signed by node 1)
leaves_missing() {
	local n m=0
	for ((n = 2; n <= NODES; n++)); do
		[ "$(ls "$T/n$n/data/ca/leaf" 2>/dev/null | grep -c '\.pem$')" -ge 10 ] || m=$((m + 1))
	done
	echo $m
}

# --- steady state -------------------------------------------------------------------
log "settling ${SETTLE_SECS} s, then ${IDLE_SECS} s idle"
sleep "$SETTLE_SECS"
res leaves_missing_nodes "$(leaves_missing)"
hpids=()
for ((i = 1; i <= NODES; i++)); do hpids+=("${HPID[$i]}"); done
printf 'load_idle_before\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW/machine.tsv"
metrics idle0
h0=$(cpu_ticks "${hpids[@]}")
w0=$(wakeups "${hpids[@]}")
e0=$(cpu_ticks "${EPS[@]}")
i0=$EPOCHREALTIME
sleep "$IDLE_SECS"
metrics idle1
h1=$(cpu_ticks "${hpids[@]}")
w1=$(wakeups "${hpids[@]}")
e1=$(cpu_ticks "${EPS[@]}")
i1=$EPOCHREALTIME
printf 'load_idle_after\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW/machine.tsv"
res idle_secs "$(python3 -c "print('%.2f' % ($i1 - $i0))")"
res helperd_cpu_pct_per_node "$(python3 -c "print('%.4f' % (($h1-$h0)/$CLK_TCK/($i1-$i0)/$NODES*100))")"
res helperd_wakeups_per_s_per_node "$(python3 -c "print('%.1f' % (($w1-$w0)/($i1-$i0)/$NODES))")"
res helperd_threads "$(ls /proc/"${HPID[1]}"/task | wc -l)"
res etcd_cpu_pct_all_members "$(python3 -c "print('%.3f' % (($e1-$e0)/$CLK_TCK/($i1-$i0)*100))")"
for p in "${hpids[@]}"; do awk '/^VmRSS:/{print $2}' "/proc/$p/status"; done >"$RAW/helperd-rss-kib.txt"
for p in "${EPS[@]}"; do awk '/^VmRSS:/{print $2}' "/proc/$p/status"; done >"$RAW/etcd-rss-kib.txt"
du -sk "$ED"/etcd1/member/snap/db | awk '{print $1}' >"$RAW/etcd-db-file-kib.txt"
ETCDCTL_API=3 in_br etcdctl --endpoints "$ECTL" get --prefix /meshscale --keys-only 2>/dev/null |
    grep -c . >"$RAW/etcd-keys.txt"
ETCDCTL_API=3 in_br etcdctl --endpoints "$ECTL" -w json endpoint status >"$RAW/etcd-status.json" 2>/dev/null

# --- intention propagation ------------------------------------------------------------
log "propagation: $TRIALS intention writes on node 1, polling all $NODES nodes"
printf 'load_propagation\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW/machine.tsv"
metrics prop0
pe0=$(cpu_ticks "${EPS[@]}")
ph0=$(cpu_ticks "${hpids[@]}")
p0=$EPOCHREALTIME
# shellcheck disable=SC2046
in_br python3 "$PROBE" propagate "$TOKEN" "$(node_ip 1)" "$TRIALS" $(node_ips 1 "$NODES") \
    >"$RAW/propagation.json" 2>"$RAW/propagation.err" || note "propagation probe failed: $(tail -3 "$RAW/propagation.err")"
metrics prop1
res prop_secs "$(python3 -c "print('%.2f' % ($EPOCHREALTIME - $p0))")"
res prop_etcd_cpu_s "$(python3 -c "print('%.3f' % (($(cpu_ticks "${EPS[@]}") - $pe0) / $CLK_TCK))")"
res prop_helperd_cpu_s "$(python3 -c "print('%.3f' % (($(cpu_ticks "${hpids[@]}") - $ph0) / $CLK_TCK))")"
log "  $(cat "$RAW/propagation.json")"

# --- an open connection cut on a far node ---------------------------------------------
SRC=$((NODES - 1))
DST=$((NODES / 2))
log "live cut: session from node $SRC (web) to n${DST}s1 on node $DST, intention written on node 1"
cut_ok=0
for attempt in 1 2 3 4 5; do
	rm -f "$T/session.json"
	ip netns exec "$P-n$SRC" env LD_PRELOAD="$SHIM" MESH_SOCKET="$T/n$SRC/helperd.sock" \
	    MESH_SERVICE=web MESH_UPSTREAMS="n${DST}s1:9191" \
	    python3 "$ROOT/tests/integration/session.py" 9191 30 "$T/session.json" 0.02 \
	    >/dev/null 2>&1 &
	spid=$!
	PIDS+=("$spid")
	for _ in $(seq 100); do
		[ -s "$T/session.json" ] && python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["ok"] > 5 and d["closed_at"] is None else 1)' "$T/session.json" && { cut_ok=1; break 2; }
		kill -0 $spid 2>/dev/null || break
		sleep 0.05
	done
	wait $spid 2>/dev/null
	sleep 1   # the first try asks node 1 to sign web's leaf (a CA client)
done
if [ $cut_ok = 1 ]; then
	t0=$(in_br python3 "$PROBE" write "$TOKEN" "$(node_ip 1)" web "n${DST}s1")
	for _ in $(seq 100); do
		python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["closed_at"] else 1)' "$T/session.json" && break
		sleep 0.05
	done
	cut=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.3f" % (d["closed_at"] - float(sys.argv[2])) if d["closed_at"] else "none")' "$T/session.json" "$t0")
	res live_cut_s "$cut"
	log "  closed ${cut} s after the write"
	kill $spid 2>/dev/null
else
	note "live cut: the session from node $SRC never held"
fi

# --- catalog convergence ---------------------------------------------------------------
OBS=()
for ((i = 1; i <= NODES; i++)); do
	[[ " ${KILL[*]} " == *" $i "* ]] || OBS+=("$(node_ip $i)")
done
log "convergence: SIGKILL to helperd on nodes ${KILL[*]}; ${#OBS[@]} observers"
printf 'load_convergence\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW/machine.tsv"
# etcd's side, stamped per line: the catalog keys' events (the DELETEs
# are the leases' revocation) and each key's lease before the kill
ETCDCTL_API=3 in_br etcdctl --endpoints "$ECTL" -w json get --prefix \
    /meshscale/services/ --keys-only >"$RAW/kill-keys.json" 2>/dev/null
mkfifo "$T/watch.fifo"
python3 -u -c 'import sys,time
for l in sys.stdin: print("%.6f %s" % (time.time(), l.rstrip()))' \
    <"$T/watch.fifo" >"$RAW/kill-watch.txt" &
PIDS+=($!)
# not through in_br: $! must be etcdctl (ip netns exec execs it), not a
# subshell whose etcdctl would outlive the kill below
ETCDCTL_API=3 ip netns exec "$NSBR" etcdctl --endpoints "$ECTL" watch \
    --prefix /meshscale/services/ >"$T/watch.fifo" 2>/dev/null &
wpid=$!
PIDS+=("$wpid")
sleep 1
t0=$EPOCHREALTIME
for n in "${KILL[@]}"; do kill -9 "${HPID[$n]}"; done
in_br python3 "$PROBE" gone "$TOKEN" "$t0" $((LEASE_TTL * 3)) "$(IFS=,; echo "${KILL[*]}")" "${OBS[@]}" \
    >"$RAW/gone.json" 2>"$RAW/gone.err" || note "gone probe failed: $(tail -3 "$RAW/gone.err")"
log "  $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("all observers stopped listing them after", d["all_s"], "s")' "$RAW/gone.json" 2>/dev/null)"
printf '%s\n' "$t0" >"$RAW/kill-t0.txt"
for n in "${KILL[@]}"; do
	grep 'lease .* renewed' "$T/log/helperd-n$n.log" | tail -1 |
	    sed "s/^/n$n /" >>"$RAW/kill-renewals.txt"
done
kill "$wpid" 2>/dev/null
# each observer's helperd: when it applied the DELETE ("instance common/nK
# left"), against when the probe saw the node gone from its answer
for ((i = 1; i <= NODES; i++)); do
	[[ " ${KILL[*]} " == *" $i "* ]] && continue
	grep -o '^[^ ]* \[INFO\] cluster: instance common/n[0-9]* left' "$T/log/helperd-n$i.log" |
	    awk -v o="$(node_ip $i)" '{ sub("common/n", "", $5); print o, $1, $5 }'
done >"$RAW/kill-left.txt"

NEW=()
ups=""
ports=()
for ((k = 1; k <= CHURN; k++)); do
	n=$((NODES + k))
	NEW+=($n)
	ups="$ups${ups:+,}n${n}s1:$((9300 + k))"
	ports+=($((9300 + k)))
done
log "convergence: starting nodes ${NEW[*]}"
t0=$EPOCHREALTIME
for n in "${NEW[@]}"; do node_start "$n"; done
ip netns exec "$P-n1" env LD_PRELOAD="$SHIM" MESH_SOCKET="$T/n1/helperd.sock" \
    MESH_SERVICE=web MESH_UPSTREAMS="$ups" \
    python3 "$PROBE" reach "$t0" $((LEASE_TTL * 3)) "${ports[@]}" >"$RAW/reach.json" 2>"$RAW/reach.err" &
rpid=$!
PIDS+=("$rpid")
in_br python3 "$PROBE" present "$TOKEN" "$t0" $((LEASE_TTL * 3)) "$(IFS=,; echo "${NEW[*]}")" "${OBS[@]}" \
    >"$RAW/present.json" 2>"$RAW/present.err" || note "present probe failed: $(tail -3 "$RAW/present.err")"
wait $rpid || note "reach probe failed: $(tail -3 "$RAW/reach.err")"
log "  $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("every observer lists them passing after", d["all_s"], "s")' "$RAW/present.json" 2>/dev/null); node 1 reaches all: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["all_s"])' "$RAW/reach.json" 2>/dev/null) s"
printf 'load_end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW/machine.tsv"
alive=0
for ((i = 1; i <= ALL; i++)); do kill -0 "${HPID[$i]:-0}" 2>/dev/null && alive=$((alive + 1)); done
res helperd_alive_end "$alive"
res lease_losses "$(lease_losses)"

python3 "$HERE/cluster_report.py" "$RAW" "$OUT" || { log "report failed"; exit 1; }
cat "$OUT"
