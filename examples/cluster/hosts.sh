# Three "hosts" on one machine: network namespaces a, b, c with addresses
# 10.77.0.1-3/24 on a bridge that lives in a fourth namespace (nothing is
# added to the root namespace; the addresses exist only in these
# namespaces). Each host runs one etcd member and one helperd.
# Sourced by examples/cluster/run.sh and tests/integration/cluster.sh.
# Needs: T (work dir), HELPERD, MESHCTL, SHIM; root; ip netns; etcd.
# Sets: NS_a NS_b NS_c NS_br, EPID_<h>, HPID_<h>; appends to PIDS.

HOSTS="a b c"
CID=${CID:-$$}
NS_br=ms$CID-br; NS_a=ms$CID-a; NS_b=ms$CID-b; NS_c=ms$CID-c
LEASE_TTL=${LEASE_TTL:-5}

host_ip() { case $1 in a) echo 10.77.0.1 ;; b) echo 10.77.0.2 ;; c) echo 10.77.0.3 ;; esac; }
host_ns() { eval "echo \$NS_$1"; }
# inns HOST cmd...: run cmd in HOST's namespace. Not for `&`: a function
# in the background is a subshell, and $! would not be the program's pid;
# background starts call `ip netns exec` (which execs) directly.
inns() { h=$1; shift; ip netns exec "$(host_ns "$h")" "$@"; }

# hosts_check: why the hosts cannot be built here ("" if they can).
hosts_check() {
	[ "$(id -u)" = 0 ] || { echo "needs root (ip netns, veth)"; return; }
	command -v ip >/dev/null || { echo "ip (iproute2) is not installed"; return; }
	command -v etcd >/dev/null && command -v etcdctl >/dev/null ||
	    { echo "etcd is not installed (sh scripts/deps.sh etcd)"; return; }
	if ! ip netns add "ms$CID-probe" 2>/dev/null; then
		echo "ip netns is not available here"; return
	fi
	ip netns del "ms$CID-probe"
}

hosts_up() {
	ip netns add "$NS_br" || return 1
	ip -n "$NS_br" link add br0 type bridge || return 1
	ip -n "$NS_br" link set br0 up
	for h in $HOSTS; do
		ns=$(host_ns "$h")
		ip netns add "$ns" || return 1
		ip link add "ms$CID$h" type veth peer name "ms${CID}p$h" || return 1
		ip link set "ms$CID$h" netns "$ns"
		ip link set "ms${CID}p$h" netns "$NS_br"
		ip -n "$ns" link set "ms$CID$h" name eth0
		ip -n "$ns" addr add "$(host_ip "$h")/24" dev eth0
		ip -n "$ns" link set eth0 up
		ip -n "$ns" link set lo up
		ip -n "$NS_br" link set "ms${CID}p$h" master br0 up
	done
}

hosts_down() {
	for h in $HOSTS br; do
		ip netns del "$(host_ns "$h")" 2>/dev/null
	done
}

etcd_endpoints() { # the host's own member first
	first=$(host_ip "$1")
	printf '"http://%s:2379"' "$first"
	for h in $HOSTS; do
		[ "$(host_ip "$h")" = "$first" ] || printf ', "http://%s:2379"' "$(host_ip "$h")"
	done
}

etcd_start() { # etcd_start HOST: one member (its data survives a restart)
	h=$1 ip=$(host_ip "$1") ns=$(host_ns "$1")
	ip netns exec "$ns" etcd --name "$h" --data-dir "$T/etcd-$h" \
	    --listen-client-urls "http://$ip:2379,http://127.0.0.1:2379" \
	    --advertise-client-urls "http://$ip:2379" \
	    --listen-peer-urls "http://$ip:2380" \
	    --initial-advertise-peer-urls "http://$ip:2380" \
	    --initial-cluster "a=http://10.77.0.1:2380,b=http://10.77.0.2:2380,c=http://10.77.0.3:2380" \
	    --initial-cluster-token "meshshim-$CID" --initial-cluster-state new \
	    >>"$T/etcd-$h.log" 2>&1 &
	eval "EPID_$h=$!"
	PIDS="$PIDS $!"
}

etcd_stop() { # etcd_stop HOST
	p=$(eval "echo \${EPID_$1:-}")
	[ -n "$p" ] || return 0
	kill "$p" 2>/dev/null; wait "$p" 2>/dev/null
	eval "EPID_$1="
}

etcd_healthy() { # etcd_healthy HOST...: those members answer (20 s max)
	eps=""
	for h in "$@"; do eps="$eps${eps:+,}http://$(host_ip "$h"):2379"; done
	for _ in $(seq 1 100); do
		ETCDCTL_API=3 inns "$1" etcdctl --endpoints "$eps" \
		    --command-timeout=1s endpoint health >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}

# node_conf HOST [extra lines...]: $T/HOST/mesh.conf
node_conf() {
	h=$1; shift
	mkdir -p "$T/$h/services.d"
	cat > "$T/$h/mesh.conf" <<CONF
node = "$h";
data_dir = "$T/$h/data";
socket = "$T/$h/helperd.sock";
http_addr = "127.0.0.1:8500";
mesh_port = 21000;
advertise_addr = "$(host_ip "$h")";
services_dir = "$T/$h/services.d";
default_intention = "allow";
check_interval = "1s";
store = { backend = "etcd"; endpoints = [ $(etcd_endpoints "$h") ];
          prefix = "/meshshim"; lease_ttl = "${LEASE_TTL}s"; };
CONF
	# Under the tests, every node knows the test's management token (curl
	# sends it, tests/integration/lib.sh); ACL tokens are per node.
	if [ -n "${MESH_TEST_TOKEN:-}" ]; then
		echo "acl = { initial_management = \"$MESH_TEST_TOKEN\"; };" >> "$T/$h/mesh.conf"
	fi
	for l in "$@"; do echo "$l" >> "$T/$h/mesh.conf"; done
}

node_start() { # node_start HOST: helperd in HOST, waits for ports.json
	h=$1 ns=$(host_ns "$1")
	rm -f "$T/$h/data/ports.json"
	ip netns exec "$ns" "$HELPERD" -c "$T/$h/mesh.conf" -log-level "${LOGLEVEL:-info}" \
	    >>"$T/$h/helperd.log" 2>&1 &
	eval "HPID_$h=$!"
	# Under tests/integration/lib.sh, its cleanup checks this helperd's
	# exit status and log.
	if command -v track_helperd >/dev/null; then
		track_helperd $! "$T/$h/helperd.log"
	else
		PIDS="$PIDS $!"
	fi
	for _ in $(seq 1 200); do
		[ -s "$T/$h/data/ports.json" ] && return 0
		kill -0 "$(eval "echo \$HPID_$h")" 2>/dev/null || break
		sleep 0.05
	done
	echo "helperd on $h did not start:"; tail -n 20 "$T/$h/helperd.log"
	return 1
}

# ca_share FROM TO: give TO the cluster CA of FROM (roots and trust domain,
# not FROM's leaves) before TO's first start.
ca_share() {
	mkdir -p "$T/$2/data/ca"
	cp -a "$T/$1/data/ca/meta.json" "$T/$1/data/ca/roots" "$T/$2/data/ca/"
	[ -d "$T/$1/data/ca/cross" ] && cp -a "$T/$1/data/ca/cross" "$T/$2/data/ca/"
	chmod 700 "$T/$2/data" "$T/$2/data/ca"
}

api_in() { inns "$1" curl -s --max-time 5 "http://127.0.0.1:8500$2"; }
meshctl_in() { h=$1; shift; inns "$h" env MESH_HTTP_ADDR=127.0.0.1:8500 "$MESHCTL" "$@"; }

# echo_from HOST [PORT]: one line from web on HOST to socat (upstream PORT,
# 9191), printing what came back.
echo_from() {
	printf 'hello\n' | inns "$1" env LD_PRELOAD="$SHIM" \
	    MESH_SOCKET="$T/$1/helperd.sock" MESH_SERVICE=web \
	    MESH_UPSTREAMS="socat:${2:-9191}" timeout 5 nc -N 127.0.0.1 "${2:-9191}" 2>/dev/null
}

# socat_start HOST: the seed's echo service on HOST's 127.0.0.1:8181;
# each connection that carries a line (a request, not a health check's
# bare connect) adds a line to $T/served-HOST.
socat_start() {
	ns=$(host_ns "$1")
	cat > "$T/echo-counted.sh" <<'SH'
#!/bin/sh
IFS= read -r line || exit 0
echo served >> "$1"
printf '%s\n' "$line"
exec cat
SH
	chmod +x "$T/echo-counted.sh"
	ip netns exec "$ns" socat tcp-l:8181,bind=127.0.0.1,fork,reuseaddr \
	    exec:"$T/echo-counted.sh $T/served-$1" 2>>"$T/socat-$1.log" &
	PIDS="$PIDS $!"
	for _ in $(seq 50); do
		inns "$1" bash -c '(exec 3<>/dev/tcp/127.0.0.1/8181)' 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
# socat_accepts HOST: how many requests HOST's socat has served
socat_accepts() { if [ -e "$T/served-$1" ]; then wc -l < "$T/served-$1"; else echo 0; fi; }

# instances HOST SERVICE: the nodes of SERVICE's passing instances in
# HOST's view (the ones it dials)
instances() {
	api_in "$1" "/v1/health/service/$2?passing" | python3 -c '
import json, sys
try: print(" ".join(sorted(i["Node"]["Node"] for i in json.load(sys.stdin))))
except Exception: print("?")'
}
