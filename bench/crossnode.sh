#!/bin/bash
# bench/crossnode.sh BUILD_DIR — the cross-node section of `make bench`
# (issue 16): two nodes over a veth pair, meshshim against an HAProxy pair
# and a stunnel pair on the same link.
#
# Two network namespaces, A (10.79.0.1) and B (10.79.0.2), joined by one
# veth pair (nothing is added to the root namespace). The backends
# (iperf3 -s, bench/mbench server) run in B on 0.0.0.0; every client runs
# in A. Paths:
#   direct    the client in A dials B's backend over the veth (the ceiling)
#   mesh      client preloaded with libmeshshim.so in A -> helperd A ->
#             mTLS over the veth -> helperd B -> backend (one etcd member
#             in A holds the catalog; A is the CA server, B a CA client)
#   stunnel   client -> stunnel (client, in A) -> mTLS over the veth ->
#             stunnel (server, in B) -> backend
#   haproxy   the same with an HAProxy pair
# The peers are configured as in bench/run.sh: mutual TLS 1.3 with ECDSA
# P-256 certificates from a throwaway CA, key exchange at OpenSSL's
# default groups (X25519 first, as helperd), TLS_AES_128_GCM_SHA256 offered
# to every path, their default session resumption. The client tools are
# bench/run.sh's: iperf3 for bulk, mbench pingpong and connrate.
#
# Results: bench/results/raw/crossnode-<stamp>/ (gitignored) and
# bench/results/crossnode.md (printed at the end). Knobs: BENCH_ROUNDS [5],
# BENCH_BULK_SECS [5], BENCH_RTT_SECS [2], BENCH_CONN_SECS [2],
# BENCH_XPATHS ["direct mesh stunnel haproxy"], BENCH_XWORK ["verify bulk
# rtt connseq connpar"] (a subset for quick A/B runs; the report then has
# only those rows), BENCH_XMESH_CONF (lines added to both helperds'
# mesh.conf, for A/B runs of a setting), BENCH_KEEP=1 keeps the temp dir. Needs root (ip netns).
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
PATHS=(${BENCH_XPATHS:-direct mesh stunnel haproxy})
WORK=" ${BENCH_XWORK:-verify bulk rtt connseq connpar} "
CLK_TCK=$(getconf CLK_TCK)

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS="$HERE/results"
RAW="$RESULTS/raw/crossnode-$STAMP"
mkdir -p "$RAW"
T=$(mktemp -d /tmp/meshxbench.XXXXXX)
mkdir -p "$T/log"
RES="$RAW/results.tsv"     # round path metric value
NOTES="$RAW/notes.txt"
: >"$RES"
: >"$NOTES"

log() { printf '[crossnode %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
note() { log "NOTE: $*"; printf '%s\n' "$*" >>"$NOTES"; }
rec() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RES"; }
kv() { # kv KEY "k=v k=v ..." -> v
	local w
	for w in $2; do [ "${w%%=*}" = "$1" ] && { echo "${w#*=}"; return; }; done
	echo ""
}
cpu_ticks() { # sum of utime+stime over pids
	local p s=0 v
	for p in "$@"; do
		v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12+$13}')
		s=$((s + ${v:-0}))
	done
	echo $s
}

[ "$(id -u)" = 0 ] || { log "needs root (network namespaces)"; exit 1; }
for t in ip iperf3 stunnel haproxy openssl etcd etcdctl curl python3 cc; do
	command -v $t >/dev/null || { log "missing $t (sh scripts/deps.sh bench etcd)"; exit 1; }
done
[ -x "$HELPERD" ] && [ -f "$SHIM" ] || { log "$HELPERD or $SHIM missing"; exit 1; }

# --- namespaces and processes --------------------------------------------------
NSA=mx$$-a
NSB=mx$$-b
IPA=10.79.0.1
IPB=10.79.0.2
PIDS=()
cleanup() {
	local p
	trap - EXIT INT TERM
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.3
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	ip netns del "$NSA" 2>/dev/null
	ip netns del "$NSB" 2>/dev/null
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		log "temp dir kept: $T"
	else
		cp -r "$T/log" "$RAW/logs" 2>/dev/null
		rm -rf "$T"
	fi
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM
# bg NS NAME cmd...: start cmd in namespace NS (ip netns exec execs, so
# $! is the program); output to $T/log/NAME.log; sets LASTPID
bg() {
	local ns=$1 name=$2
	shift 2
	ip netns exec "$ns" "$@" >"$T/log/$name.log" 2>&1 </dev/null &
	LASTPID=$!
	PIDS+=("$LASTPID")
}
in_a() { ip netns exec "$NSA" "$@"; }
in_b() { ip netns exec "$NSB" "$@"; }
wait_listen() { # wait_listen NS PORT... (20 s)
	local ns=$1 p l
	shift
	for _ in $(seq 200); do
		l=" $(ip netns exec "$ns" ss -Htln | awk '{n=split($4,a,":"); printf "%s ", a[n]}') "
		for p in "$@"; do [[ "$l" == *" $p "* ]] || continue 2; done
		return 0
	done 2>/dev/null
	return 1
}

ip netns add "$NSA" && ip netns add "$NSB" || { log "ip netns add failed"; exit 1; }
ip link add "mx$$a" type veth peer name "mx$$b" || { log "veth failed"; exit 1; }
ip link set "mx$$a" netns "$NSA"
ip link set "mx$$b" netns "$NSB"
ip -n "$NSA" link set "mx$$a" name eth0
ip -n "$NSB" link set "mx$$b" name eth0
ip -n "$NSA" addr add "$IPA/24" dev eth0
ip -n "$NSB" addr add "$IPB/24" dev eth0
for ns in "$NSA" "$NSB"; do
	ip -n "$ns" link set lo up
	ip -n "$ns" link set eth0 up
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null

MBENCH="$T/mbench"
cc -O2 -Wall -Wextra -pthread -o "$MBENCH" "$HERE/mbench.c" || exit 1

# --- certificates (as bench/run.sh) ---------------------------------------------
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
			printf 'subjectAltName=DNS:backend,IP:%s\nextendedKeyUsage=serverAuth\n' "$IPB"
		else
			printf 'extendedKeyUsage=clientAuth\n'
		fi >$n.ext
		printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n' >>$n.ext
		openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key \
		    -CAcreateserial -days 2 -extfile $n.ext -out $n.pem
		cat $n.pem $n.key >$n.bundle.pem
	done
) >"$T/log/pki.log" 2>&1 || { log "openssl failed: $(cat "$T/log/pki.log")"; exit 1; }
PKI="$T/pki"
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

# --- backends in B ---------------------------------------------------------------
IPERF_B=5201 ECHO_B=7001 ONCE_B=7002
bg "$NSB" be_iperf iperf3 -s -p $IPERF_B
BE_PIDS=("$LASTPID")
bg "$NSB" be_echo env MBENCH_BIND=0.0.0.0 "$MBENCH" server $ECHO_B ${ONCE_B}c
BE_PIDS+=("$LASTPID")
wait_listen "$NSB" $IPERF_B $ECHO_B $ONCE_B || { log "backends did not listen"; exit 1; }

# --- the paths -----------------------------------------------------------------------
declare -A PORT_IPERF PORT_ECHO PORT_ONCE HOST PROXY_PIDS
declare -A CLIENT_ENV
HOST[direct]=$IPB
PORT_IPERF[direct]=$IPERF_B PORT_ECHO[direct]=$ECHO_B PORT_ONCE[direct]=$ONCE_B
PROXY_PIDS[direct]=""
CLIENT_ENV[direct]=""

peer_up() { # peer_up stunnel|haproxy: client side in A, server side in B
	local k=$1 i sp cp o=0
	[ "$k" = haproxy ] && o=100
	# stunnel: 7101-7103 in B, 9001-9003 in A; haproxy: 7201-, 9101-
	local srv=("$((7101 + o)):$IPERF_B" "$((7102 + o)):$ECHO_B" "$((7103 + o)):$ONCE_B")
	local cli=("$((9001 + o)):$((7101 + o))" "$((9002 + o)):$((7102 + o))" "$((9003 + o)):$((7103 + o))")
	if [ "$k" = stunnel ]; then
		for side in s c; do
			{
				printf 'foreground = yes\npid =\nsyslog = no\ndebug = 3\n'
				for i in 0 1 2; do
					printf '[s%d]\n' $i
					if [ $side = s ]; then
						sp=${srv[$i]}
						printf 'accept = %s:%s\nconnect = 127.0.0.1:%s\n' "$IPB" "${sp%%:*}" "${sp##*:}"
						printf 'cert = %s/server.pem\nkey = %s/server.key\nrequireCert = yes\n' "$PKI" "$PKI"
					else
						cp=${cli[$i]}
						printf 'accept = 127.0.0.1:%s\nconnect = %s:%s\n' "${cp%%:*}" "$IPB" "${cp##*:}"
						printf 'client = yes\ncert = %s/client.pem\nkey = %s/client.key\ncheckHost = backend\nsni = backend\n' "$PKI" "$PKI"
					fi
					printf 'CAfile = %s/ca.pem\nverifyChain = yes\n' "$PKI"
					printf 'sslVersionMin = TLSv1.3\nciphersuites = TLS_AES_128_GCM_SHA256\n'
					printf 'socket = l:TCP_NODELAY=1\nsocket = r:TCP_NODELAY=1\n'
				done
			} >"$T/stunnel-$side.conf"
		done
		bg "$NSB" stunnel-s env OPENSSL_CONF="$PKI/openssl.cnf" stunnel "$T/stunnel-s.conf"
		PROXY_PIDS[stunnel]=$LASTPID
		bg "$NSA" stunnel-c env OPENSSL_CONF="$PKI/openssl.cnf" stunnel "$T/stunnel-c.conf"
		PROXY_PIDS[stunnel]="${PROXY_PIDS[stunnel]} $LASTPID"
	else
		for side in s c; do
			{
				printf 'global\n  maxconn 9900\n'
				printf 'defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 1h\n  timeout server 1h\n'
				for i in 0 1 2; do
					printf 'listen s%d\n' $i
					if [ $side = s ]; then
						sp=${srv[$i]}
						printf '  bind %s:%s ssl crt %s/server.bundle.pem ca-file %s/ca.pem verify required ssl-min-ver TLSv1.3 ciphersuites TLS_AES_128_GCM_SHA256\n' "$IPB" "${sp%%:*}" "$PKI" "$PKI"
						printf '  server s 127.0.0.1:%s\n' "${sp##*:}"
					else
						cp=${cli[$i]}
						printf '  bind 127.0.0.1:%s\n' "${cp%%:*}"
						printf '  server s %s:%s ssl crt %s/client.bundle.pem ca-file %s/ca.pem verify required verifyhost backend sni str(backend) ssl-min-ver TLSv1.3 ciphersuites TLS_AES_128_GCM_SHA256\n' "$IPB" "${cp##*:}" "$PKI" "$PKI"
					fi
				done
			} >"$T/haproxy-$side.cfg"
		done
		bg "$NSB" haproxy-s env OPENSSL_CONF="$PKI/openssl.cnf" haproxy -db -f "$T/haproxy-s.cfg"
		PROXY_PIDS[haproxy]=$LASTPID
		bg "$NSA" haproxy-c env OPENSSL_CONF="$PKI/openssl.cnf" haproxy -db -f "$T/haproxy-c.cfg"
		PROXY_PIDS[haproxy]="${PROXY_PIDS[haproxy]} $LASTPID"
	fi
	HOST[$k]=127.0.0.1
	PORT_IPERF[$k]=$((9001 + o)) PORT_ECHO[$k]=$((9002 + o)) PORT_ONCE[$k]=$((9003 + o))
	CLIENT_ENV[$k]=""
	wait_listen "$NSB" $((7101 + o)) $((7102 + o)) $((7103 + o)) &&
	    wait_listen "$NSA" $((9001 + o)) $((9002 + o)) $((9003 + o)) || return 1
	sleep 0.3
	for i in ${PROXY_PIDS[$k]}; do
		kill -0 "$i" 2>/dev/null || { note "$k exited: $(tail -3 "$T/log/$k"-*.log)"; return 1; }
	done
}

mesh_node_conf() { # mesh_node_conf NAME IP [extra line]
	local d="$T/$1"
	mkdir -p "$d/services.d"
	cat >"$d/mesh.conf" <<CONF
node = "$1";
data_dir = "$d/data";
socket = "$d/helperd.sock";
http_addr = "127.0.0.1:8500";
mesh_port = 21000;
advertise_addr = "$2";
services_dir = "$d/services.d";
default_intention = "allow";
log_level = "warn";
join_token = "crossnode-bench";
${BENCH_XMESH_CONF:-}
store = { backend = "etcd"; endpoints = [ "http://$IPA:2379" ]; prefix = "/meshbench"; };
${3:-}
CONF
}
mesh_start() { # mesh_start NS NAME: waits for ports.json; sets LASTPID
	local ns=$1 n=$2
	bg "$ns" "helperd-$n" "$HELPERD" -c "$T/$n/mesh.conf"
	for _ in $(seq 400); do
		[ -s "$T/$n/data/ports.json" ] && return 0
		kill -0 "$LASTPID" 2>/dev/null || break
		sleep 0.05
	done
	note "helperd $n did not start: $(tail -5 "$T/log/helperd-$n.log")"
	return 1
}
mesh_up() {
	bg "$NSA" etcd etcd --name a --data-dir "$T/etcd" \
	    --listen-client-urls "http://$IPA:2379,http://127.0.0.1:2379" \
	    --advertise-client-urls "http://$IPA:2379" \
	    --listen-peer-urls "http://127.0.0.1:2380" \
	    --initial-advertise-peer-urls "http://127.0.0.1:2380" \
	    --initial-cluster "a=http://127.0.0.1:2380"
	for _ in $(seq 100); do
		ETCDCTL_API=3 in_a etcdctl --endpoints http://$IPA:2379 \
		    --command-timeout=1s endpoint health >/dev/null 2>&1 && break
		sleep 0.2
	done
	mesh_node_conf nodea "$IPA"
	mesh_node_conf nodeb "$IPB" 'ca = { server = false; };'
	cat >"$T/nodeb/services.d/bench.conf" <<CONF
services = (
  { name = "iperf"; port = $IPERF_B; connect = {}; },
  { name = "echo"; port = $ECHO_B; connect = {}; },
  { name = "once"; port = $ONCE_B; connect = {}; }
);
CONF
	mesh_start "$NSA" nodea || return 1
	local pa=$LASTPID
	mesh_start "$NSB" nodeb || return 1
	PROXY_PIDS[mesh]="$pa $LASTPID"
	# A dials B once its catalog (from etcd) has the three services passing
	local s ok
	for _ in $(seq 150); do
		ok=1
		for s in iperf echo once; do
			in_a curl -s --max-time 2 "http://127.0.0.1:8500/v1/health/service/$s?passing" |
			    grep -q '"nodeb"' || ok=0
		done
		[ $ok = 1 ] && break
		sleep 0.2
	done
	[ $ok = 1 ] || { note "mesh: A never saw B's services passing"; return 1; }
	HOST[mesh]=127.0.0.1
	# upstream ports nothing listens on in A (the shim routes them)
	PORT_IPERF[mesh]=9201 PORT_ECHO[mesh]=9202 PORT_ONCE[mesh]=9203
	CLIENT_ENV[mesh]="LD_PRELOAD=$SHIM MESH_SOCKET=$T/nodea/helperd.sock MESH_SERVICE=client MESH_UPSTREAMS=iperf:9201,echo:9202,once:9203"
}

# --- machine ------------------------------------------------------------------------
{
	echo "date	$(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "cpu	$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
	echo "ncpu	$(nproc)"
	echo "kernel	$(uname -r)"
	echo "tcp_cc	$(sysctl -n net.ipv4.tcp_congestion_control), qdisc $(sysctl -n net.core.default_qdisc) (every socket but helperd's: loopback_congestion on its loopback ones and the app's socket to helperd, mesh_congestion on its link to the other node, see mesh_link_cc)"
	echo "rounds	$ROUNDS"
	echo "stunnel	$(stunnel -version 2>&1 | awk '/^stunnel/{print $2; exit}')"
	echo "haproxy	$(haproxy -v | awk 'NR==1{print $3}')"
	echo "openssl	$(openssl version | awk '{print $2}')"
	echo "helperd	$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo '+dirty')"
	echo "buildtype	$(meson introspect "$BUILD" --buildoptions 2>/dev/null | python3 -c 'import json,sys; o={x["name"]:x["value"] for x in json.load(sys.stdin)}; print(o.get("buildtype","?"), "sanitize=" + str(o.get("b_sanitize","?")))' 2>/dev/null)"
	echo "link	veth pair, MTU $(ip -n "$NSA" link show eth0 | awk '/mtu/{for(i=1;i<=NF;i++) if($i=="mtu") print $(i+1)}'), two network namespaces"
	echo "load_start	$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$RAW/machine.tsv"

log "paths up: ${PATHS[*]}"
for name in "${PATHS[@]}"; do
	case $name in
	direct) ;;
	mesh) mesh_up || { note "mesh path did not come up"; exit 1; } ;;
	stunnel | haproxy) peer_up $name || { note "$name pair did not come up"; exit 1; } ;;
	*) log "unknown path $name"; exit 1 ;;
	esac
done

# --- workloads (the tools of bench/run.sh) ----------------------------------------
client() { # client PATH cmd...: run in A with the path's environment
	local name=$1
	shift
	# shellcheck disable=SC2086
	in_a env MBENCH_HOST="${HOST[$name]}" ${CLIENT_ENV[$name]} "$@"
}
iperf_run() { # iperf_run ROUND PATH
	local r=$1 name=$2 c0 c1 out="$RAW/iperf-$2-r$1.json" line
	# shellcheck disable=SC2086
	c0=$(cpu_ticks ${PROXY_PIDS[$name]})
	client "$name" timeout $((BULK_SECS + 30)) iperf3 -c "${HOST[$name]}" \
	    -p "${PORT_IPERF[$name]}" -t "$BULK_SECS" -J >"$out" 2>"$out.err"
	local rc=$?
	# shellcheck disable=SC2086
	c1=$(cpu_ticks ${PROXY_PIDS[$name]})
	line=$(python3 - "$out" <<'EOF'
import json, sys
try:
    j = json.load(open(sys.argv[1]))
    s = j["end"]["sum_received"]
    print("gbps=%.3f bytes=%d" % (s["bits_per_second"] / 1e9, s["bytes"]))
except Exception:
    print("error=unparsable_iperf3_output")
EOF
)
	if [ $rc -ne 0 ] || [ -z "$(kv gbps "$line")" ]; then
		note "$name round $r: iperf3 failed (rc $rc): $line $(head -c 300 "$out.err")"
		return 1
	fi
	rec "$r" "$name" bulk1_gbps "$(kv gbps "$line")"
	[ -n "${PROXY_PIDS[$name]}" ] &&
	    rec "$r" "$name" bulk1_cpu_s_per_gb "$(python3 -c "print('%.4f' % (($c1-$c0)/$CLK_TCK / ($(kv bytes "$line")/1e9)))")"
	log "  $name bulk1: $(kv gbps "$line") Gb/s, proxy CPU $(((c1 - c0) * 1000 / CLK_TCK)) ms"
}
rtt_run() {
	local r=$1 name=$2 out
	out=$(client "$name" timeout $((RTT_SECS + 30)) "$MBENCH" pingpong "${PORT_ECHO[$name]}" 64 "$RTT_SECS" 2000000 2>&1)
	local rc=$?
	echo "$name rtt r$r: $out" >>"$RAW/mbench.log"
	[ $rc = 0 ] || { note "$name round $r: pingpong failed (rc $rc): $out"; return 1; }
	rec "$r" "$name" rtt_p50_us "$(kv p50_us "$out")"
	rec "$r" "$name" rtt_p99_us "$(kv p99_us "$out")"
	log "  $name rtt: p50 $(kv p50_us "$out") us, p99 $(kv p99_us "$out") us"
}
conn_run() { # conn_run ROUND PATH METRIC PARALLEL
	local r=$1 name=$2 m=$3 par=$4 out c0 c1
	# shellcheck disable=SC2086
	c0=$(cpu_ticks ${PROXY_PIDS[$name]})
	out=$(client "$name" timeout $((CONN_SECS + 60)) "$MBENCH" connrate "${PORT_ONCE[$name]}" "$par" "$CONN_SECS" 200000 2>&1)
	local rc=$?
	# shellcheck disable=SC2086
	c1=$(cpu_ticks ${PROXY_PIDS[$name]})
	echo "$name $m r$r: $out" >>"$RAW/mbench.log"
	[ -n "$(kv rate "$out")" ] || { note "$name round $r: connrate ($m) failed (rc $rc): $out"; return 1; }
	[ "$(kv errors "$out")" = 0 ] || note "$name round $r: connrate ($m): $(kv errors "$out") errors, last: $(echo "$out" | sed 's/.*last_error=//')"
	rec "$r" "$name" "${m}_per_s" "$(kv rate "$out")"
	rec "$r" "$name" "${m}_p50_us" "$(kv p50_us "$out")"
	# proxy CPU per connection (both ends): what a new connection costs
	[ -n "${PROXY_PIDS[$name]}" ] && [ "$(kv conns "$out")" -gt 0 ] &&
	    rec "$r" "$name" "${m}_cpu_us_per_conn" "$(python3 -c "print('%.1f' % (($c1-$c0)*1e6/$CLK_TCK/$(kv conns "$out")))")"
	log "  $name $m: $(kv rate "$out") conn/s, p50 $(kv p50_us "$out") us, proxy CPU $(((c1 - c0) * 1000 / CLK_TCK)) ms"
}
verify_run() {
	local r=$1 name=$2 out
	out=$(client "$name" timeout 60 "$MBENCH" verify "${PORT_ECHO[$name]}" 32 2>&1)
	local rc=$?
	echo "$name verify r$r: $out" >>"$RAW/mbench.log"
	if [ $rc -ne 0 ]; then
		note "$name round $r: 32 MiB echo check failed (rc $rc): $(echo $out)"
		rec "$r" "$name" verify_ok 0
		return 1
	fi
	rec "$r" "$name" verify_ok 1
}
for ((r = 1; r <= ROUNDS; r++)); do
	n=${#PATHS[@]}
	order=()
	for ((i = 0; i < n; i++)); do order+=("${PATHS[$(((i + r - 1) % n))]}"); done
	log "round $r/$ROUNDS: ${order[*]} (load $(cut -d' ' -f1-3 /proc/loadavg))"
	printf 'load_round%s\t%s\n' "$r" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW/machine.tsv"
	for name in "${order[@]}"; do
		[[ $WORK == *" verify "* ]] && verify_run $r "$name"
		[[ $WORK == *" bulk "* ]] && iperf_run $r "$name"
		[[ $WORK == *" rtt "* ]] && rtt_run $r "$name"
		[[ $WORK == *" connseq "* ]] && conn_run $r "$name" connseq 1
		[[ $WORK == *" connpar "* ]] && conn_run $r "$name" connpar 16
		for p in ${PROXY_PIDS[$name]}; do
			kill -0 "$p" 2>/dev/null || note "$name round $r: a proxy process died"
		done
	done
done
printf 'load_end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW/machine.tsv"
# What helperd's sessions to B use (mesh_congestion, "auto" by default:
# cubic when the system's BBR would pace without fq); the peers' TLS legs
# keep the system's.
if [[ " ${PATHS[*]} " == *" mesh "* ]]; then
	printf 'mesh_link_cc\t%s\n' "$(in_a ss -tinH state established '( dport = :21000 )' 2>/dev/null |
	    awk 'NR % 2 == 0 { print $1 }' | sort -u | tr '\n' ' ')(helperd A to B, mesh_congestion ${BENCH_XMESH_CONF:+as set by BENCH_XMESH_CONF}${BENCH_XMESH_CONF:-auto})" >>"$RAW/machine.tsv"
fi
grep -h 'resum\|handshake' "$T/log/helperd-node"*.log 2>/dev/null | tail -5 >>"$RAW/helperd-log-tail.txt"

python3 "$HERE/crossnode_report.py" "$RAW" "$RESULTS/crossnode.md" || { log "report failed"; exit 1; }
cat "$RESULTS/crossnode.md"
