#!/bin/bash
# bench/run.sh BUILD_DIR — one side-by-side benchmark run (issue 6).
#
# Paths, all on 127.0.0.1, same backends (iperf3 -s, bench/mbench server):
#   direct      the client talks to the backend (the ceiling)
#   mesh_tls    client preloaded with libmeshshim.so, helperd with
#               same_node_mtls = true (both TLS ends in the one helperd)
#               Its helperd writes the access log (JSON, a line per
#               connection) and is scraped for /v1/agent/metrics every
#               second, as an observed mesh runs (issue 14).
#   mesh_tls_nolog  mesh_tls without the access log and the scrape: the
#               cost of observing, measured in the same run
#   mesh_plain  the same with same_node_mtls = false
#   stunnel     client -> stunnel (client) -> stunnel (server) -> backend
#   haproxy     client -> haproxy (client) -> haproxy (server) -> backend
#   haproxy_bp  the same with HAProxy's `busy-polling` (its manual's
#               setting for low latency in virtual machines): round trips
#               only (it spins a core per thread, bulk and new
#               connections are its defaults' business)
# The two peer pairs do mutual TLS 1.3 with ECDSA P-256 certificates from a
# throwaway CA, at their defaults for key exchange (OpenSSL's default groups:
# X25519 first, as helperd) and with TLS_AES_128_GCM_SHA256, the suite
# helperd prefers, offered to every path (the faster AES-GCM; OpenSSL would
# otherwise pick AES-256-GCM first).
#
# Results: bench/results/raw/<stamp>/ (raw, gitignored), then
# bench/results/latest.md and latest.png (bench/report.py).
# Environment knobs (defaults in brackets): BENCH_ROUNDS [5],
# BENCH_BULK_SECS [5], BENCH_RTT_SECS [2], BENCH_CONN_SECS [2],
# BENCH_PATHS ["direct mesh_tls mesh_tls_nolog mesh_plain stunnel haproxy haproxy_bp"],
# BENCH_SKIP (words: crypto memory rounds), BENCH_KEEP=1 keeps the temp dir,
# BENCH_MESH_CONF (lines added to helperd's mesh.conf, for A/B runs),
# BENCH_WAIT_IDLE [60]: seconds to wait, before each phase and round, for
# other work on the machine to finish.
set -uo pipefail

BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
HELPERD="$BUILD/helperd/helperd"
SHIM="$BUILD/preload/libmeshshim.so"

ROUNDS=${BENCH_ROUNDS:-5}
BULK_SECS=${BENCH_BULK_SECS:-5}
RTT_SECS=${BENCH_RTT_SECS:-2}
CONN_SECS=${BENCH_CONN_SECS:-2}
PATHS=(${BENCH_PATHS:-direct mesh_tls mesh_tls_nolog mesh_plain stunnel haproxy haproxy_bp})
SKIP=" ${BENCH_SKIP:-} "
NCPU=$(nproc)
CLK_TCK=$(getconf CLK_TCK)

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS="$HERE/results"
RAW="$RESULTS/raw/$STAMP"
mkdir -p "$RAW"
T=$(mktemp -d /tmp/meshbench.XXXXXX)
mkdir -p "$T/log"
RES="$RAW/results.tsv"     # round path metric value
NOTES="$RAW/notes.txt"     # failures and remarks, quoted in the report
: >"$RES"
: >"$NOTES"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
note() { log "NOTE: $*"; printf '%s\n' "$*" >>"$NOTES"; }
rec() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RES"; }
skip() { [[ "$SKIP" == *" $1 "* ]]; }

# --- processes: everything started here is killed by the trap -------------
declare -A PID=()
start_bg() { # name cmd... ; output to $T/log/name.log
	local name=$1
	shift
	"$@" >"$T/log/$name.log" 2>&1 </dev/null &
	PID[$name]=$!
}
stop_bg() {
	local name p
	for name in "$@"; do
		p=${PID[$name]:-}
		[ -n "$p" ] || continue
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
		unset "PID[$name]"
	done
}
stop_prefix() { # stop every process whose name starts with $1
	local name p list=()
	for name in "${!PID[@]}"; do
		[[ $name == "$1"* ]] && list+=("$name")
	done
	for name in "${list[@]}"; do kill "${PID[$name]}" 2>/dev/null; done
	for name in "${list[@]}"; do
		wait "${PID[$name]}" 2>/dev/null
		unset "PID[$name]"
	done
}
cleanup() {
	local p
	trap - EXIT INT TERM
	for p in "${PID[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.3
	for p in "${PID[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		log "temp dir kept: $T"
	else
		cp -r "$T/log" "$RAW/logs" 2>/dev/null
		rm -rf "$T"
	fi
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM
alive() { kill -0 "${PID[$1]:-0}" 2>/dev/null; }

# --- ports ----------------------------------------------------------------
# Allocated below the ephemeral range, skipping anything listening.
NEXT_PORT=24000
declare -A USED=()
for p in $(ss -Htan | awk '{n=split($4,a,":"); print a[n]}'); do USED[$p]=1; done
alloc() { # alloc VAR
	while [ -n "${USED[$NEXT_PORT]:-}" ]; do NEXT_PORT=$((NEXT_PORT + 1)); done
	USED[$NEXT_PORT]=1
	printf -v "$1" '%s' "$NEXT_PORT"
	NEXT_PORT=$((NEXT_PORT + 1))
}
wait_ports() { # wait until every port given listens (20 s)
	local t0=$SECONDS p missing
	while :; do
		local l=" $(ss -Htln | awk '{n=split($4,a,":"); printf "%s ", a[n]}') "
		missing=""
		for p in "$@"; do [[ "$l" == *" $p "* ]] || missing="$missing $p"; done
		[ -z "$missing" ] && return 0
		if [ $((SECONDS - t0)) -ge 20 ]; then
			note "ports never listened:$missing"
			return 1
		fi
		sleep 0.05
	done
}

# --- measurements of processes ---------------------------------------------
cpu_ticks() { # sum of utime+stime over pids
	local p s=0 v
	for p in "$@"; do
		v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12+$13}')
		s=$((s + ${v:-0}))
	done
	echo $s
}
rss_kib() { # sum of VmRSS over pids
	local p s=0 v
	for p in "$@"; do
		v=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null)
		s=$((s + ${v:-0}))
	done
	echo $s
}
pss_kib() {
	local p s=0 v
	for p in "$@"; do
		v=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null)
		s=$((s + ${v:-0}))
	done
	echo $s
}
pin_all() { # pin_all CPULIST pids...
	local c=$1 p
	shift
	for p in "$@"; do taskset -a -p -c "$c" "$p" >/dev/null 2>&1; done
}
kv() { # kv KEY "k=v k=v ..." -> v
	local w
	for w in $2; do [ "${w%%=*}" = "$1" ] && { echo "${w#*=}"; return; }; done
	echo ""
}

# --- tools, certificates, backends -------------------------------------------
for t in iperf3 stunnel haproxy openssl gnutls-cli taskset ss python3 cc; do
	command -v $t >/dev/null || { log "missing $t (sh scripts/deps.sh bench)"; exit 1; }
done
MBENCH="$T/mbench"
cc -O2 -Wall -Wextra -pthread -o "$MBENCH" "$HERE/mbench.c" || exit 1

ulimit -n "$(ulimit -Hn)" 2>/dev/null
NOFILE=$(ulimit -n)

log "certificates (ECDSA P-256, throwaway CA) in $T/pki"
mkdir -p "$T/pki"
(
	cd "$T/pki" || exit 1
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -keyout ca.key -out ca.pem -subj /CN=bench-ca -days 2 \
	    -addext basicConstraints=critical,CA:TRUE \
	    -addext keyUsage=critical,keyCertSign,cRLSign
	for n in server client; do
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		    -nodes -keyout $n.key -out $n.csr -subj /CN=$n
		if [ $n = server ]; then
			printf 'subjectAltName=DNS:backend,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n'
		else
			printf 'extendedKeyUsage=clientAuth\n'
		fi >$n.ext
		printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n' >>$n.ext
		openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key \
		    -CAcreateserial -days 2 -extfile $n.ext -out $n.pem
		cat $n.pem $n.key >$n.bundle.pem
	done
	openssl verify -CAfile ca.pem server.pem client.pem
) >"$T/log/pki.log" 2>&1 || { log "openssl failed: $(cat "$T/log/pki.log")"; exit 1; }
PKI="$T/pki"
# OpenSSL settings for both peers: TLS 1.3 only, AES-128-GCM; key exchange
# left at OpenSSL's default groups (X25519 first, the key share helperd
# sends too), so no path pays a HelloRetryRequest or a slower curve.
cat >"$PKI/openssl.cnf" <<'EOF'
openssl_conf = default_conf
[default_conf]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MinProtocol = TLSv1.3
Ciphersuites = TLS_AES_128_GCM_SHA256
EOF

alloc IPERF_B
alloc ECHO_B
alloc ONCE_B   # echo once, then the server closes (connection tests)
start_bg be_iperf iperf3 -s -B 127.0.0.1 -p "$IPERF_B"
start_bg be_echo "$MBENCH" server "$ECHO_B" "${ONCE_B}c"
wait_ports "$IPERF_B" "$ECHO_B" "$ONCE_B" || exit 1
BACKEND_PIDS=("${PID[be_echo]}")

# --- machine -----------------------------------------------------------------
{
	echo "date	$(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "cpu	$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
	echo "ncpu	$NCPU"
	echo "mem	$(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "kernel	$(uname -r)"
	echo "os	$(. /etc/os-release; echo "$PRETTY_NAME")"
	echo "nofile	$NOFILE"
	echo "rounds	$ROUNDS"
	echo "bulk_secs	$BULK_SECS"
	echo "rtt_secs	$RTT_SECS"
	echo "conn_secs	$CONN_SECS"
	echo "stunnel	$(stunnel -version 2>&1 | awk '/^stunnel/{print $2; exit}')"
	echo "haproxy	$(haproxy -v | awk 'NR==1{print $3}')"
	echo "openssl	$(openssl version | awk '{print $2}')"
	echo "gnutls	$(gnutls-cli --version 2>&1 | awk 'NR==1{print $NF}')"
	echo "iperf3	$(iperf3 --version | awk 'NR==1{print $2}')"
	echo "helperd	$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo '+dirty')"
	echo "buildtype	$(meson introspect "$BUILD" --buildoptions 2>/dev/null | python3 -c 'import json,sys; o={x["name"]:x["value"] for x in json.load(sys.stdin)}; print(o.get("buildtype","?"), "sanitize=" + str(o.get("b_sanitize","?")))' 2>/dev/null)"
	echo "tcp_cc	$(sysctl -n net.ipv4.tcp_congestion_control) (qdisc $(sysctl -n net.core.default_qdisc))"
	echo "ktls	$( [ -d /proc/sys/net/tls ] || lsmod 2>/dev/null | grep -q '^tls' && echo yes || echo no)"
	echo "load_start	$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$RAW/machine.tsv"
# A second bench or a test suite on 2 cores distorts everything: say so.
cpu_busy_pct() { # busy % of all CPUs over the next second
	local a b tot=0 idle i
	read -ra a </proc/stat
	sleep 1
	read -ra b </proc/stat
	for i in 1 2 3 4 5 6 7 8; do tot=$((tot + b[i] - a[i])); done
	idle=$((b[4] - a[4] + b[5] - a[5]))
	echo $((tot > 0 ? 100 * (tot - idle) / tot : 0))
}
check_idle() { # check_idle WHEN: wait up to BENCH_WAIT_IDLE s for <= 20 % busy
	local busy t0=$SECONDS
	while :; do
		busy=$(cpu_busy_pct)
		[ "$busy" -le 20 ] && break
		if [ $((SECONDS - t0)) -ge "${BENCH_WAIT_IDLE:-60}" ]; then
			note "$1: the machine was still $busy % busy with other work after waiting $((SECONDS - t0)) s (top: $(ps -eo pcpu,comm --sort=-pcpu --no-headers | head -3 | awk '{printf "%s %s%%; ", $2, $1}'))"
			break
		fi
	done
	[ $((SECONDS - t0)) -gt 1 ] && log "$1: waited $((SECONDS - t0)) s for other work to finish"
	printf 'busy_%s\t%s%%\n' "$1" "$busy" >>"$RAW/machine.tsv"
}
check_idle start
# CPU used by other work while a round runs: all busy ticks of the machine
# minus this script's own (itself, its waited-for children, the backends).
busy_ticks() {
	local a
	read -ra a </proc/stat
	echo $((a[1] + a[2] + a[3] + a[6] + a[7] + a[8]))
}
KSOFTIRQD=$(pgrep -x 'ksoftirqd/[0-9]+' | tr '\n' ' ')
own_ticks() { # loopback packets that ksoftirqd handles count as ours
	local v
	v=$(sed 's/.*) //' "/proc/$$/stat" | awk '{print $12+$13+$14+$15}')
	# shellcheck disable=SC2086
	echo $((v + $(cpu_ticks "${BACKEND_PIDS[@]}" "${PID[be_iperf]}" $KSOFTIRQD)))
}
case "$(awk -F'\t' '$1=="buildtype"{print $2}' "$RAW/machine.tsv")" in
*sanitize=none*) ;;
*) note "$BUILD is not a release build without sanitizers ($(awk -F'\t' '$1=="buildtype"{print $2}' "$RAW/machine.tsv")): meshshim numbers are not representative; use e.g. meson setup /tmp/build-bench --buildtype=release" ;;
esac

# --- the paths ---------------------------------------------------------------
# path_up NAME sets: IPERF_P ECHO_P ONCE_P (where the client connects), CLIENT
# (command prefix, array), PROXY (pids of the path's proxy processes).
CLIENT=()
PROXY=()
MESH_OK=1
[ -x "$HELPERD" ] && [ -f "$SHIM" ] || MESH_OK=0

mesh_conf() { # mesh_conf DIR TLS(true|false) "name:port"... ; ALOG=1: access log
	local d=$1 tls=$2 s first=1
	shift 2
	mkdir -p "$d/services.d"
	{
		[ "${ALOG:-0}" = 1 ] && printf 'access_log = { path = "%s/access.log"; format = "json"; };\n' "$d"
		printf 'node = "bench";\ndata_dir = "%s/data";\nsocket = "%s/helperd.sock";\n' "$d" "$d"
		printf 'http_addr = "127.0.0.1:0";\nmesh_port = 0;\nservices_dir = "%s/services.d";\n' "$d"
		printf 'default_intention = "allow";\nsame_node_mtls = %s;\nlog_level = "warn";\n' "$tls"
		[ -n "${BENCH_MESH_CONF:-}" ] && printf '%s\n' "$BENCH_MESH_CONF"
		printf 'services = (\n'
		for s in "$@"; do
			[ $first = 1 ] || printf ',\n'
			first=0
			printf '  { name = "%s"; port = %s; connect = {}; }' "${s%%:*}" "${s##*:}"
		done
		printf '\n);\n'
	} >"$d/mesh.conf"
}
mesh_start() { # mesh_start NAME DIR ; waits for ports.json
	local name=$1 d=$2 t0=$SECONDS
	rm -f "$d/data/ports.json"
	start_bg "$name" "$HELPERD" -c "$d/mesh.conf"
	while [ ! -s "$d/data/ports.json" ]; do
		if ! alive "$name"; then
			note "helperd ($name) exited at start: $(tail -5 "$T/log/$name.log")"
			return 1
		fi
		if [ $((SECONDS - t0)) -ge 60 ]; then
			note "helperd ($name) wrote no ports.json in 60 s"
			return 1
		fi
		sleep 0.05
	done
}

stunnel_conf() { # stunnel_conf FILE server|client "accept:connect"...
	local f=$1 role=$2 s i=0
	shift 2
	{
		printf 'foreground = yes\npid =\nsyslog = no\ndebug = 3\noutput = %s.log\n' "$f"
		for s in "$@"; do
			printf '[s%d]\n' $i
			i=$((i + 1))
			printf 'accept = 127.0.0.1:%s\nconnect = 127.0.0.1:%s\n' "${s%%:*}" "${s##*:}"
			if [ "$role" = server ]; then
				printf 'cert = %s/server.pem\nkey = %s/server.key\nrequireCert = yes\n' "$PKI" "$PKI"
			else
				printf 'client = yes\ncert = %s/client.pem\nkey = %s/client.key\ncheckHost = backend\nsni = backend\n' "$PKI" "$PKI"
			fi
			printf 'CAfile = %s/ca.pem\nverifyChain = yes\n' "$PKI"
			printf 'sslVersionMin = TLSv1.3\nciphersuites = TLS_AES_128_GCM_SHA256\n'
			printf 'socket = l:TCP_NODELAY=1\nsocket = r:TCP_NODELAY=1\n'
		done
	} >"$f"
}
haproxy_conf() { # haproxy_conf FILE server|client "accept:connect"...
	local f=$1 role=$2 s i=0
	shift 2
	{
		printf 'global\n  maxconn 9900\n'
		# haproxy_bp: the setting HAProxy's manual gives for low
		# latency in virtual machines (never sleep in the poller).
		# One thread per process, as the manual asks of busy polling
		# (threads that spin must not share a CPU).
		[ "${HAPROXY_BUSY:-0}" = 1 ] && printf '  busy-polling\n  nbthread 1\n'
		printf 'defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 1h\n  timeout server 1h\n'
		for s in "$@"; do
			printf 'listen s%d\n' $i
			i=$((i + 1))
			if [ "$role" = server ]; then
				printf '  bind 127.0.0.1:%s ssl crt %s/server.bundle.pem ca-file %s/ca.pem verify required ssl-min-ver TLSv1.3 ciphersuites TLS_AES_128_GCM_SHA256\n' "${s%%:*}" "$PKI" "$PKI"
				printf '  server s 127.0.0.1:%s\n' "${s##*:}"
			else
				printf '  bind 127.0.0.1:%s\n' "${s%%:*}"
				printf '  server s 127.0.0.1:%s ssl crt %s/client.bundle.pem ca-file %s/ca.pem verify required verifyhost backend sni str(backend) ssl-min-ver TLSv1.3 ciphersuites TLS_AES_128_GCM_SHA256\n' "${s##*:}" "$PKI" "$PKI"
			fi
		done
	} >"$f"
}
# peer_pair KIND TAG "backend..." ; sets PAIR_PORTS (client-side ports) and
# starts KIND-TAG-s / KIND-TAG-c
peer_pair() {
	local kind=$1 tag=$2 b sp cp srv=() cli=()
	shift 2
	PAIR_PORTS=()
	for b in "$@"; do
		alloc sp
		alloc cp
		srv+=("$sp:$b")
		cli+=("$cp:$sp")
		PAIR_PORTS+=("$cp")
	done
	if [ "$kind" = stunnel ]; then
		stunnel_conf "$T/$kind-$tag-s.conf" server "${srv[@]}"
		stunnel_conf "$T/$kind-$tag-c.conf" client "${cli[@]}"
		start_bg "$kind-$tag-s" env OPENSSL_CONF="$PKI/openssl.cnf" stunnel "$T/$kind-$tag-s.conf"
		start_bg "$kind-$tag-c" env OPENSSL_CONF="$PKI/openssl.cnf" stunnel "$T/$kind-$tag-c.conf"
	else
		haproxy_conf "$T/$kind-$tag-s.cfg" server "${srv[@]}"
		haproxy_conf "$T/$kind-$tag-c.cfg" client "${cli[@]}"
		start_bg "$kind-$tag-s" env OPENSSL_CONF="$PKI/openssl.cnf" haproxy -db -f "$T/$kind-$tag-s.cfg"
		start_bg "$kind-$tag-c" env OPENSSL_CONF="$PKI/openssl.cnf" haproxy -db -f "$T/$kind-$tag-c.cfg"
	fi
}

path_up() { # path_up NAME
	local name=$1 d
	CLIENT=()
	PROXY=()
	case $name in
	direct)
		IPERF_P=$IPERF_B
		ECHO_P=$ECHO_B
		ONCE_P=$ONCE_B
		;;
	mesh_tls | mesh_tls_nolog | mesh_plain)
		[ $MESH_OK = 1 ] || { note "$name: $HELPERD or $SHIM missing"; return 1; }
		d="$T/$name"
		rm -rf "$d"
		local tls=true alog=0
		[ $name = mesh_plain ] && tls=false
		[ $name = mesh_tls ] && alog=1
		ALOG=$alog mesh_conf "$d" $tls "iperf:$IPERF_B" "echo:$ECHO_B" "once:$ONCE_B"
		mesh_start "$name-helperd" "$d" || return 1
		if [ $alog = 1 ]; then
			local api
			api=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["http_addr"])' "$d/data/ports.json")
			# A Prometheus scraping every second (its default is 1 min).
			start_bg "$name-scrape" bash -c 'while sleep 1; do curl -s -o /dev/null "http://$0/v1/agent/metrics?format=prometheus"; done' "$api"
		fi
		alloc IPERF_P
		alloc ECHO_P
		alloc ONCE_P
		CLIENT=(env LD_PRELOAD="$SHIM" MESH_SOCKET="$d/helperd.sock"
		    MESH_SERVICE=client
		    MESH_UPSTREAMS="iperf:$IPERF_P,echo:$ECHO_P,once:$ONCE_P")
		PROXY=("${PID[$name-helperd]}")
		;;
	haproxy_bp)
		HAPROXY_BUSY=1 peer_pair haproxy bp "$IPERF_B" "$ECHO_B" "$ONCE_B"
		IPERF_P=${PAIR_PORTS[0]}
		ECHO_P=${PAIR_PORTS[1]}
		ONCE_P=${PAIR_PORTS[2]}
		wait_ports "$IPERF_P" "$ECHO_P" "$ONCE_P" || return 1
		PROXY=("${PID[haproxy-bp-s]}" "${PID[haproxy-bp-c]}")
		;;
	stunnel | haproxy)
		peer_pair $name main "$IPERF_B" "$ECHO_B" "$ONCE_B"
		IPERF_P=${PAIR_PORTS[0]}
		ECHO_P=${PAIR_PORTS[1]}
		ONCE_P=${PAIR_PORTS[2]}
		wait_ports "$IPERF_P" "$ECHO_P" "$ONCE_P" || return 1
		PROXY=("${PID[$name-main-s]}" "${PID[$name-main-c]}")
		;;
	esac
	return 0
}
path_down() {
	case $1 in
	mesh_tls | mesh_tls_nolog | mesh_plain) stop_bg "$1-scrape" "$1-helperd" ;;
	stunnel | haproxy) stop_prefix "$1-main-" ;;
	haproxy_bp) stop_prefix "haproxy-bp-" ;;
	esac
}
path_alive() {
	local p
	for p in "${PROXY[@]}"; do kill -0 "$p" 2>/dev/null || return 1; done
}

# --- workloads ---------------------------------------------------------------
iperf_run() { # iperf_run ROUND PATH STREAMS METRIC
	local r=$1 name=$2 n=$3 m=$4 c0 c1 out="$RAW/iperf-$2-$4-r$1.json" line
	c0=$(cpu_ticks "${PROXY[@]}")
	timeout $((BULK_SECS + 30)) "${CLIENT[@]}" iperf3 -c 127.0.0.1 -p "$IPERF_P" \
	    -t "$BULK_SECS" -P "$n" -J >"$out" 2>"$out.err"
	local rc=$?
	c1=$(cpu_ticks "${PROXY[@]}")
	line=$(python3 - "$out" <<'EOF'
import json, sys
try:
    j = json.load(open(sys.argv[1]))
    if "error" in j and "end" not in j:
        print("error=" + j["error"].replace(" ", "_")); sys.exit()
    s = j["end"]["sum_received"]
    print("gbps=%.3f bytes=%d" % (s["bits_per_second"] / 1e9, s["bytes"]))
except Exception as e:
    print("error=unparsable_iperf3_output")
EOF
)
	if [ $rc -ne 0 ] || [ -z "$(kv gbps "$line")" ]; then
		note "$name round $r: iperf3 -P $n failed (rc $rc): $line $(head -c 300 "$out.err")"
		return 1
	fi
	rec "$r" "$name" "${m}_gbps" "$(kv gbps "$line")"
	if [ ${#PROXY[@]} -gt 0 ]; then
		rec "$r" "$name" "${m}_cpu_s_per_gb" "$(python3 -c "print('%.4f' % (($c1-$c0)/$CLK_TCK / ($(kv bytes "$line")/1e9)))")"
	fi
	log "  $name $m: $(kv gbps "$line") Gb/s, proxy CPU $(((c1 - c0) * 1000 / CLK_TCK)) ms"
}
rtt_run() { # rtt_run ROUND PATH METRIC [pin]
	local r=$1 name=$2 m=$3 pin=${4:-} out pre=()
	if [ -n "$pin" ]; then
		pin_all 0 "${PROXY[@]}" "${BACKEND_PIDS[@]}"
		pre=(taskset -c 0)
	fi
	out=$(timeout $((RTT_SECS + 30)) "${CLIENT[@]}" "${pre[@]}" "$MBENCH" pingpong "$ECHO_P" 64 "$RTT_SECS" 2000000 2>&1)
	local rc=$?
	[ -n "$pin" ] && pin_all "0-$((NCPU - 1))" "${PROXY[@]}" "${BACKEND_PIDS[@]}"
	echo "$name $m r$r: $out" >>"$RAW/mbench.log"
	if [ $rc -ne 0 ]; then
		note "$name round $r: pingpong ($m) failed (rc $rc): $out"
		return 1
	fi
	rec "$r" "$name" "${m}_p50_us" "$(kv p50_us "$out")"
	rec "$r" "$name" "${m}_p99_us" "$(kv p99_us "$out")"
	log "  $name $m: p50 $(kv p50_us "$out") us, p99 $(kv p99_us "$out") us"
}
conn_run() { # conn_run ROUND PATH METRIC PARALLEL
	local r=$1 name=$2 m=$3 par=$4 out c0 c1
	c0=$(cpu_ticks "${PROXY[@]}")
	out=$(timeout $((CONN_SECS + 60)) "${CLIENT[@]}" "$MBENCH" connrate "$ONCE_P" "$par" "$CONN_SECS" 200000 2>&1)
	local rc=$?
	c1=$(cpu_ticks "${PROXY[@]}")
	echo "$name $m r$r: $out" >>"$RAW/mbench.log"
	if [ -z "$(kv rate "$out")" ]; then
		note "$name round $r: connrate ($m) failed (rc $rc): $out"
		return 1
	fi
	[ "$(kv errors "$out")" = 0 ] || note "$name round $r: connrate ($m): $(kv errors "$out") errors, last: $(echo "$out" | sed 's/.*last_error=//')"
	rec "$r" "$name" "${m}_per_s" "$(kv rate "$out")"
	rec "$r" "$name" "${m}_p50_us" "$(kv p50_us "$out")"
	rec "$r" "$name" "${m}_p99_us" "$(kv p99_us "$out")"
	# Proxy CPU per connection (utime+stime of the path's processes).
	if [ ${#PROXY[@]} -gt 0 ] && [ "$(kv conns "$out")" -gt 0 ] 2>/dev/null; then
		rec "$r" "$name" "${m}_cpu_us" "$(python3 -c "print('%.1f' % (($c1-$c0)/$CLK_TCK * 1e6 / $(kv conns "$out")))")"
	fi
	log "  $name $m: $(kv rate "$out") conn/s, p50 $(kv p50_us "$out") us, p99 $(kv p99_us "$out") us"
}
verify_run() {
	local r=$1 name=$2 out
	out=$(timeout 60 "${CLIENT[@]}" "$MBENCH" verify "$ECHO_P" 32 2>&1)
	local rc=$?
	echo "$name verify r$r: $out" >>"$RAW/mbench.log"
	if [ $rc -ne 0 ]; then
		note "$name round $r: 32 MiB echo check failed (rc $rc): $(echo $out)"
		rec "$r" "$name" verify_ok 0
		return 1
	fi
	rec "$r" "$name" verify_ok 1
	rec "$r" "$name" verify_eof "$([ "$(kv eof "$out")" = yes ] && echo 1 || echo 0)"
}

# --- crypto ceiling ------------------------------------------------------------
if ! skip crypto; then
	log "crypto ceiling: gnutls-cli --benchmark-tls-ciphers (~90 s)"
	gnutls-cli --benchmark-tls-ciphers >"$RAW/gnutls-ciphers.txt" 2>&1
	log "crypto ceiling: gnutls-cli --benchmark-tls-kx (~45 s)"
	gnutls-cli --benchmark-tls-kx >"$RAW/gnutls-kx.txt" 2>&1
	python3 - "$RAW" <<'EOF' >>"$RES"
import re, sys
d = sys.argv[1]
def gb(v, u):
    v = float(v)
    return v / 1000 if u.startswith("MB") else v
sect = None
for l in open(d + "/gnutls-ciphers.txt"):
    m = re.search(r"payload: (\d+) bytes", l)
    if m:
        sect = m.group(1)
    m = re.search(r"AES-128-GCM - TLS1.3\s+([\d.]+) ([MG]B)/sec", l)
    if m and sect:
        print("0\tgnutls\taes128gcm_%s_gbytes\t%.3f" % (sect, gb(m.group(1), m.group(2))))
cur = None
for l in open(d + "/gnutls-kx.txt"):
    if l.startswith("(TLS1.3)-(ECDHE-SECP256R1)-(ECDSA-SECP256R1-SHA256)"):
        cur = "p256"
    elif l.startswith("("):
        cur = None
    m = re.search(r"([\d.]+) transactions/sec", l)
    if m and cur:
        print("0\tgnutls\ttls13_p256_handshakes_per_s\t%s" % m.group(1))
        cur = None
EOF
fi

# --- rounds ----------------------------------------------------------------------
if ! skip rounds; then
	for ((r = 1; r <= ROUNDS; r++)); do
		n=${#PATHS[@]}
		order=()
		for ((i = 0; i < n; i++)); do order+=("${PATHS[$(((i + r - 1) % n))]}"); done
		log "round $r/$ROUNDS: ${order[*]}"
		check_idle "round$r"
		fb0=$(busy_ticks)
		fo0=$(own_ticks)
		fs0=$EPOCHREALTIME
		for name in "${order[@]}"; do
			if ! path_up "$name"; then
				note "$name round $r: path did not come up"
				path_down "$name"
				continue
			fi
			if [ "$name" = haproxy_bp ]; then
				# Only what busy polling is for: round trips.
				rtt_run $r "$name" rtt
				rtt_run $r "$name" rttpin pin
				path_down "$name"
				continue
			fi
			verify_run $r "$name"
			iperf_run $r "$name" 1 bulk1
			iperf_run $r "$name" 8 bulk8
			rtt_run $r "$name" rtt
			rtt_run $r "$name" rttpin pin
			conn_run $r "$name" connseq 1
			conn_run $r "$name" connpar 16
			path_alive || note "$name round $r: a proxy process died during the round ($(tail -3 "$T/log/$name"*.log 2>/dev/null | tr '\n' ' '))"
			path_down "$name"
		done
		fpct=$(awk -v b=$(($(busy_ticks) - fb0)) -v o=$(($(own_ticks) - fo0)) \
		    -v t="$(awk -v a="$fs0" -v b="$EPOCHREALTIME" 'BEGIN{print b-a}')" \
		    -v n="$NCPU" -v hz="$CLK_TCK" 'BEGIN{v=(b-o)*100/(t*n*hz); if (v<0) v=0; printf "%d", v}')
		printf 'foreign_round%s\t%s%%\n' "$r" "$fpct" >>"$RAW/machine.tsv"
		log "round $r: other work used ~$fpct % of the CPUs during the round"
		[ "$fpct" -gt 10 ] && note "round $r: other work used ~$fpct % of the machine's CPU time during the round (numbers of this round are disturbed)"
	done
fi

# load over the timed rounds (the memory phase starts 400 processes)
printf 'load_rounds\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW/machine.tsv"

# --- memory ----------------------------------------------------------------------
# hold N connections through port list; sets HELD; keeps the holder running
hold_open() { # hold_open PATH TAG PORTS N
	local name=$1 tag=$2 ports=$3 n=$4 t0=$SECONDS
	start_bg "hold-$tag" "${CLIENT[@]}" "$MBENCH" hold "$ports" "$n" 8
	HELD=0
	while ! grep -q READY "$T/log/hold-$tag.log" 2>/dev/null; do
		if ! alive "hold-$tag" || [ $((SECONDS - t0)) -ge 240 ]; then
			note "$name: holding $n connections: holder ended or timed out: $(tail -2 "$T/log/hold-$tag.log")"
			return 1
		fi
		sleep 0.2
	done
	local line
	line=$(grep READY "$T/log/hold-$tag.log")
	HELD=$(kv held "$line")
	[ "$HELD" = "$n" ] || note "$name: only $HELD of $n more idle connections opened ($line)"
	sleep 1
}
mem_rec() { # mem_rec PATH METRIC pids...
	local name=$1 m=$2
	shift 2
	rec 0 "$name" "${m}_rss_kib" "$(rss_kib "$@")"
	rec 0 "$name" "${m}_pss_kib" "$(pss_kib "$@")"
	log "  $name $m: RSS $(rss_kib "$@") KiB (PSS $(pss_kib "$@") KiB) over $# process(es)"
}
MEM_PATHS=()
for name in "${PATHS[@]}"; do
	case $name in direct | haproxy_bp) ;; *) MEM_PATHS+=("$name") ;; esac
done
if ! skip memory; then
	check_idle memory
	log "memory: idle, 1,000 and 10,000 idle connections (nofile limit $NOFILE)"
	for name in "${MEM_PATHS[@]}"; do
		path_up "$name" || { note "$name memory: path did not come up"; path_down "$name"; continue; }
		sleep 1
		mem_rec "$name" idle "${PROXY[@]}"
		if hold_open "$name" a "$ECHO_P" 1000; then
			rec 0 "$name" conn1k_held "$HELD"
			mem_rec "$name" conn1k "${PROXY[@]}"
			held_a=$HELD
			if hold_open "$name" b "$ECHO_P" 9000; then
				rec 0 "$name" conn10k_held $((held_a + HELD))
				mem_rec "$name" conn10k "${PROXY[@]}"
			fi
		fi
		path_alive || note "$name memory: a proxy process died while holding connections ($(tail -3 "$T/log/$name"*.log 2>/dev/null | tr '\n' ' '))"
		stop_bg hold-a hold-b
		path_down "$name"
		sleep 1
	done

	log "memory: 100 services, idle and with 1,000 idle connections (10 per service)"
	for name in "${MEM_PATHS[@]}"; do
		ports=()
		case $name in
		mesh_tls | mesh_plain)
			[ $MESH_OK = 1 ] || continue
			d="$T/$name-100"
			rm -rf "$d"
			svcs=()
			ups=""
			for ((i = 0; i < 100; i++)); do
				svcs+=("$(printf 'svc%03d' $i):$ECHO_B")
				alloc p
				ports+=("$p")
				ups="$ups${ups:+,}$(printf 'svc%03d' $i):$p"
			done
			tls=true
			[ $name = mesh_plain ] && tls=false
			mesh_conf "$d" $tls "${svcs[@]}"
			mesh_start "$name-100-helperd" "$d" || { note "$name: 100 services: helperd did not start"; continue; }
			CLIENT=(env LD_PRELOAD="$SHIM" MESH_SOCKET="$d/helperd.sock" MESH_SERVICE=client MESH_UPSTREAMS="$ups")
			pids=("${PID[$name-100-helperd]}")
			;;
		stunnel | haproxy)
			pids=()
			bes=()
			for ((i = 0; i < 100; i++)); do
				peer_pair $name "100x$i" "$ECHO_B"
				ports+=("${PAIR_PORTS[0]}")
				pids+=("${PID[$name-100x$i-s]}" "${PID[$name-100x$i-c]}")
			done
			CLIENT=()
			wait_ports "${ports[@]}" || { note "$name: 100 pairs did not all come up"; stop_prefix "$name-"; continue; }
			;;
		*)	continue ;;    # mesh_tls_nolog: the same helperd as mesh_tls
		esac
		sleep 2
		mem_rec "$name" svc100 "${pids[@]}"
		PROXY=("${pids[@]}")
		if hold_open "$name (100 services)" c "$(IFS=,; echo "${ports[*]}")" 1000; then
			rec 0 "$name" svc100_conn1k_held "$HELD"
			mem_rec "$name" svc100_conn1k "${pids[@]}"
		fi
		path_alive || note "$name 100 services: a proxy process died"
		stop_bg hold-c
		stop_prefix "$name-"
		sleep 1
	done
fi

log "report"
python3 "$HERE/report.py" "$RAW" "$RESULTS" || { log "report.py failed"; exit 1; }
log "done: $RESULTS/latest.md, $RESULTS/latest.png (raw: $RAW)"
