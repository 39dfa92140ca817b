#!/bin/bash
# The getting-started walkthrough across three hosts: three etcd members
# and three helperd, each "host" a network namespace with its own address
# (10.77.0.1-3, on a bridge in a fourth namespace; nothing leaves this
# machine). web runs on host a, socat on host c; an intention made on b
# cuts web off everywhere, deleting it on c restores it; then socat also
# runs on b, c's helperd dies, and web keeps reaching socat (on b).
# Usage: examples/cluster/run.sh [BUILD_DIR]   (make demo-cluster runs it)
# Needs root (network namespaces). Exits non-zero if a step misbehaves.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
HELPERD=$build/helperd/helperd
MESHCTL=$build/meshctl/meshctl
SHIM=$build/preload/libmeshshim.so
T=$(mktemp -d /tmp/meshshim-cluster.XXXXXX)
PIDS=""
. "$top/examples/cluster/hosts.sh"

bold() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
say() { printf '%s\n' "$*"; }
cmd() { printf '%s$ %s\n' "$1" "$2"; }
die() { printf '\n\033[31mDEMO FAILED: %s\033[0m\n' "$*"; echo "(logs in $T)"; KEEP=1; exit 1; }
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	hosts_down
	[ -n "${KEEP:-}" ] || rm -rf "$T"
}
for f in "$HELPERD" "$MESHCTL" "$SHIM"; do
	[ -e "$f" ] || die "$f is missing: run make first"
done
why=$(hosts_check)
[ -z "$why" ] || die "$why"
trap cleanup EXIT

# type_from HOST: `nc 127.0.0.1 9191` as web on HOST, typing hello
type_from() {
	cmd "$1" "LD_PRELOAD=libmeshshim.so MESH_SERVICE=web nc 127.0.0.1 9191"
	say "hello"
	out=$(echo_from "$1")
	[ -n "$out" ] && say "$out"
	[ "$out" = "hello" ]
}
wait_catalog() { # wait_catalog HOST SERVICE "nodes"
	for _ in $(seq 60); do
		[ "$(instances "$1" "$2")" = "$3" ] && return 0
		sleep 0.2
	done
	return 1
}

bold "Three hosts: a (10.77.0.1), b (10.77.0.2), c (10.77.0.3)"
hosts_up || die "cannot create the network namespaces"
for h in $HOSTS; do say "    host $h: namespace $(host_ns "$h"), address $(host_ip "$h")"; done

bold "An etcd member on each host"
for h in $HOSTS; do
	cmd "$h" "etcd --name $h --listen-client-urls http://$(host_ip "$h"):2379 ... &"
	etcd_start "$h"
done
etcd_healthy a b c || die "etcd did not become healthy"
ETCDCTL_API=3 inns a etcdctl --endpoints http://10.77.0.1:2379 member list |
    sed 's/^/    /'

bold "helperd on each host, with store = etcd"
TOKEN='join_token = "demo-cluster-token";'
node_conf a "$TOKEN"; node_conf b "$TOKEN"
node_conf c "$TOKEN" 'ca = { server = false; };   # a CA client: no root key here'
cp "$top/examples/getting-started/web.json" "$T/a/services.d/"
cp "$top/examples/getting-started/socat.json" "$T/c/services.d/"
sed -n '/^join_token/,$p' "$T/c/mesh.conf" | sed 's/^/    /'
node_start a || die "helperd on a did not start"
say "    (a created the mesh CA; b, a second CA server, gets a copy of it;"
say "     c, a CA client, gets the roots from etcd and its leaves from CSRs)"
ca_share a b
node_start b || die "helperd on b did not start"
node_start c || die "helperd on c did not start"
for _ in $(seq 50); do grep -q "installed leaf" "$T/c/helperd.log" && break; sleep 0.1; done
for h in a b; do
	sed -n 's/.*\(helperd .* up: node [a-z]*, \).*trust domain \([^,]*\),.*/    \1trust domain \2/p' "$T/$h/helperd.log"
done
grep "CA roots from etcd" "$T/c/helperd.log" | head -1 | sed 's/^.*\[INFO\] cluster: /    helperd on c: /' 
grep -h "signed a certificate for socat" "$T/a/helperd.log" "$T/b/helperd.log" | head -1 | sed 's/^.*\[INFO\] cluster: /    helperd on a CA server: /'
grep "installed leaf" "$T/c/helperd.log" | head -1 | sed 's/^.*\[INFO\] CA: /    helperd on c: /'
say "    files with a private key on c: $(cd "$T/c/data" && grep -rl 'PRIVATE KEY' . | tr '\n' ' ')"

bold "socat on host c, web on host a"
cmd c 'socat -v tcp-l:8181,fork exec:"/bin/cat" &'
socat_start c || die "socat did not start on c"
wait_catalog a socat c || die "a does not see socat on c"
cmd a "meshctl catalog services"
meshctl_in a catalog services | sed 's/^/    /'
cmd a "curl -s 127.0.0.1:8500/v1/catalog/service/socat"
api_in a /v1/catalog/service/socat | python3 -c '
import json, sys
for i in json.load(sys.stdin):
    print("    socat on node %s at %s:%d (mesh port), service port %d" % (i["Node"], i["Address"], i["MeshPort"], i["ServicePort"]))'
type_from a || die "web on a did not reach socat on c"

bold "An intention created on host b applies on every host"
cmd b "meshctl intention create -deny web socat"
out=$(meshctl_in b intention create -deny web socat)
say "$out"
[ "$out" = "Created: web => socat (deny)" ] || die "unexpected output: $out"
sleep 0.3
cmd a "meshctl intention check web socat"
meshctl_in a intention check web socat | sed 's/^/    /'
cmd a "LD_PRELOAD=libmeshshim.so MESH_SERVICE=web nc 127.0.0.1 9191"
out=$(echo_from a)
say "hello"
[ -z "$out" ] || die "the denied connection still echoed"
say "(no echo: denied)"
cmd c "meshctl intention delete web socat"
meshctl_in c intention delete web socat || die "intention delete failed"
sleep 0.3
type_from a || die "no echo after deleting the intention"

bold "socat on b too; then host c's helperd dies"
socat_start b || die "socat did not start on b"
cp "$top/examples/getting-started/socat.json" "$T/b/services.d/"
cmd b "meshctl reload"
meshctl_in b reload || die "reload on b failed"
wait_catalog a socat "b c" || die "a does not see socat on b and c"
say "    a's catalog: socat on $(instances a socat)"
cmd c "kill -9 helperd"
kill -KILL "$HPID_c"; wait "$HPID_c" 2>/dev/null
type_from a || die "web on a did not reach socat after c died"
say "    waiting for c's lease (${LEASE_TTL} s) to expire..."
wait_catalog a socat b || die "c's instance did not leave the catalog"
say "    a's catalog: socat on $(instances a socat)"
type_from a || die "web on a did not reach socat on b"

bold "etcd goes away: the mesh keeps running on what it knows"
for h in $HOSTS; do etcd_stop "$h"; done
sleep 2
grep 'ETCD UNREACHABLE' "$T/a/helperd.log" | tail -1 | sed 's/^.*\[ERROR\] /    helperd on a: /'
type_from a || die "web on a did not reach socat with etcd down"
for h in $HOSTS; do etcd_start "$h"; done
etcd_healthy a b c || die "etcd did not come back"
for _ in $(seq 50); do grep -q "etcd reachable again" "$T/a/helperd.log" && break; sleep 0.2; done
grep 'etcd reachable again' "$T/a/helperd.log" | tail -1 | sed 's/^.*\[WARN\] /    helperd on a: /'
cmd b "meshctl intention create -deny web socat"
meshctl_in b intention create -deny web socat || die "intentions not writable after etcd came back"
meshctl_in b intention delete web socat >/dev/null

bold "Done: the walkthrough worked across three hosts."
