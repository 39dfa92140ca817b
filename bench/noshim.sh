#!/bin/bash
# bench/noshim.sh BUILD_DIR: what a program without the shim pays (issue
# 15). The same client service ("bench", user root), the same backends
# and the same helperd (same_node_mtls = true: both TLS ends in helperd),
# reached two ways:
#   shim     LD_PRELOAD=libmeshshim.so, the upstream port on 127.0.0.1
#   noshim   no preload: the service's served address (from helperd's DNS)
#            and the same port; identity from the socket's owner
# Bulk (iperf3, 1 stream), round trip (mbench pingpong, 64 B) and
# connections/s (mbench connrate, 8 threads); ROUNDS [5] rounds alternating
# the two paths; medians. Prints a markdown table.
set -eu
build=$(cd "${1:-build}" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${BENCH_ROUNDS:-5}
SECS=${BENCH_SECS:-3}
T=$(mktemp -d /tmp/noshimbench.XXXXXX)
PIDS=""
trap 'for p in $PIDS; do kill $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
kv() { for w in $2; do [ "${w%%=*}" = "$1" ] && { echo "${w#*=}"; return; }; done; }

cc -O2 -Wall -Wextra -pthread -o "$T/mbench" "$top/bench/mbench.c"
ECHO=$(free_port); ONCE=$(free_port); IPERF=$(free_port)
U1=$(free_port); U2=$(free_port); U3=$(free_port)
cat > "$T/mesh.conf" <<CONF
node = "bench"; data_dir = "$T/data"; socket = "$T/h.sock";
http_addr = "127.0.0.1:0"; mesh_port = 0; services_dir = ""; log_level = "warn";
dns_addr = "127.0.0.1:0"; served_addrs = "127.231.7.0/24";
services = (
  { name = "echo"; port = $ECHO; connect = {}; },
  { name = "once"; port = $ONCE; connect = {}; },
  { name = "iperf"; port = $IPERF; connect = {}; },
  { name = "bench"; port = 0; user = "root";
    upstreams = ( { destination_name = "echo"; local_bind_port = $U1; },
                  { destination_name = "once"; local_bind_port = $U2; },
                  { destination_name = "iperf"; local_bind_port = $U3; } ); } );
CONF
"$T/mbench" server "$ECHO" "${ONCE}c" >/dev/null 2>&1 & PIDS="$PIDS $!"
iperf3 -s -B 127.0.0.1 -p "$IPERF" >/dev/null 2>&1 & PIDS="$PIDS $!"
"$build/helperd/helperd" -c "$T/mesh.conf" 2>"$T/h.log" & PIDS="$PIDS $!"
for _ in $(seq 100); do [ -s "$T/data/ports.json" ] && break; sleep 0.05; done
dns=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["dns_addr"])' "$T/data/ports.json")
A_ECHO=$(dig +short @127.0.0.1 -p "${dns##*:}" echo.service.mesh)
A_ONCE=$(dig +short @127.0.0.1 -p "${dns##*:}" once.service.mesh)
A_IPERF=$(dig +short @127.0.0.1 -p "${dns##*:}" iperf.service.mesh)
sleep 1
shim() { env LD_PRELOAD="$build/preload/libmeshshim.so" MESH_SERVICE=bench MESH_SOCKET="$T/h.sock" "$@"; }

for r in $(seq "$ROUNDS"); do
	for path in shim noshim; do
		if [ $path = shim ]; then run=shim; h1=; h2=; h3=127.0.0.1
		else run=env; h1=$A_ECHO; h2=$A_ONCE; h3=$A_IPERF; fi
		g=$($run iperf3 -c "$h3" -p "$U3" -t "$SECS" -J 2>/dev/null |
		    python3 -c 'import json,sys; print("%.3f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))' 2>/dev/null || echo fail)
		p=$(MBENCH_HOST=$h1 $run "$T/mbench" pingpong "$U1" 64 "$SECS" 2000000 2>&1)
		c=$(MBENCH_HOST=$h2 $run "$T/mbench" connrate "$U2" 8 "$SECS" 200000 2>&1)
		echo "$path bulk_gbps $g"
		echo "$path rtt_p50_us $(kv p50_us "$p")"
		echo "$path rtt_p99_us $(kv p99_us "$p")"
		echo "$path conn_per_s $(kv rate "$c")"
		echo "$path conn_errors $(kv errors "$c")"
	done
done > "$T/raw"
python3 - "$T/raw" "$ROUNDS" <<'PY'
import sys, statistics as st
d = {}
for line in open(sys.argv[1]):
    p, k, v = line.split()
    try:
        d.setdefault((p, k), []).append(float(v))
    except ValueError:
        d.setdefault((p, k), [])
print("Medians of %s rounds (alternating), same helperd, same backends:" % sys.argv[2])
print()
print("| metric | shim | no shim (served address) | no shim / shim | shim rounds | no-shim rounds |")
print("|---|---:|---:|---:|---|---|")
for k in ("bulk_gbps", "rtt_p50_us", "rtt_p99_us", "conn_per_s", "conn_errors"):
    a, b = d.get(("shim", k), []), d.get(("noshim", k), [])
    if not a or not b:
        print(f"| {k} | {'-' if not a else st.median(a)} | {'-' if not b else st.median(b)} | failed |")
        continue
    ma, mb = st.median(a), st.median(b)
    ra = " ".join("%.4g" % x for x in a)
    rb = " ".join("%.4g" % x for x in b)
    print(f"| {k} | {ma:.2f} | {mb:.2f} | {(mb / ma if ma else 0):.2f}x | {ra} | {rb} |")
PY
