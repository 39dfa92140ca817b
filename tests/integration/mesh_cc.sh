#!/bin/bash
# mesh_congestion: the TCP congestion control of helperd's connections to
# other nodes, on both ends (the dialling node sets it before connect; the
# mesh port's listener hands it to the sockets it accepts). Hosts a and c
# (network namespaces on a bridge, etcd on each): web on a talks to socat
# on c, and the session a leaves pooled between the helperds is read off
# `ss -tin` on both sides. A name is used as given; "auto" picks cubic
# when the namespace's default is BBR and net.core.default_qdisc is not
# fq (BBR then paces with a timer per burst), else keeps the system's;
# "" keeps the system's; a name the kernel refuses is logged and left.
. "$(dirname "$0")/lib.sh"
. "$SRCDIR/examples/cluster/hosts.sh"

why=$(hosts_check)
[ -z "$why" ] || skip_test "mesh_cc test: $why"
command -v ss >/dev/null || skip_test "ss (iproute2) not installed"
AT_EXIT=hosts_down

# mesh_cc HOST: the congestion control of HOST's established sockets on
# the mesh link (local or peer port 21000), one per line, sorted, unique.
mesh_cc() {
	inns "$1" ss -tinH state established '( sport = :21000 or dport = :21000 )' 2>/dev/null |
	    awk 'NR % 2 == 0 { print $1 }' | sort -u | tr '\n' ' ' | sed 's/ $//'
}
# run_with HOST_NS_CC MESH_CONGESTION: both nodes (re)started with that
# setting, in namespaces whose default is HOST_NS_CC; one connection
# web (a) -> socat (c) echoes; sets CC_A, CC_C (the pooled session's).
run_with() {
	for h in a c; do
		inns "$h" sysctl -qw net.ipv4.tcp_congestion_control="$1" || return 1
		p=$(eval "echo \${HPID_$h:-}")
		[ -n "$p" ] && stop_helperd "$p"
	done
	node_conf a 'join_token = "mesh-cc-test";' "mesh_congestion = \"$2\";"
	# c signs nothing: a, the CA server, gives it its leaves.
	node_conf c 'join_token = "mesh-cc-test";' "mesh_congestion = \"$2\";" \
	    'ca = { server = false; };'
	cp "$SRCDIR/examples/getting-started/web.json" "$T/a/services.d/"
	cp "$SRCDIR/examples/getting-started/socat.json" "$T/c/services.d/"
	node_start a && node_start c || return 1
	wait_until 20 sh -c "[ \"\$(ip netns exec $NS_a curl -s --max-time 2 'http://127.0.0.1:8500/v1/health/service/socat?passing' | grep -c '\"c\"')\" -ge 1 ]" || return 1
	# The first start: c's leaf comes from a once a has signed its CSR.
	for _ in $(seq 50); do
		ECHOED=$(echo_from a)
		[ "$ECHOED" = hello ] && break
		sleep 0.2
	done
	wait_until 3 sh -c "[ -n \"\$(ip netns exec $NS_a ss -tnH state established '( dport = :21000 )')\" ]"
	CC_A=$(mesh_cc a) CC_C=$(mesh_cc c)
}

hosts_up || { fail "network namespaces a, b, c on a bridge"; finish; exit 1; }
for h in $HOSTS; do etcd_start "$h"; done
check "etcd: three members healthy" etcd_healthy a b c
socat_start c || fail "socat on c"
SYS=$(inns a sysctl -n net.ipv4.tcp_congestion_control)

# 1. A name: both ends of the session use it, whatever the system's.
WANT=reno; [ "$SYS" = reno ] && WANT=cubic
run_with "$SYS" "$WANT" || { fail "nodes a and c start, c's socat passing on a"; finish; exit 1; }
check "web (a) -> socat (c) echoes through the mesh ('$ECHOED')" [ "$ECHOED" = hello ]
check "mesh_congestion \"$WANT\": a's end of the session uses it (system: $SYS; saw '$CC_A')" [ "$CC_A" = "$WANT" ]
check "... and c's end, accepted on the mesh port (saw '$CC_C')" [ "$CC_C" = "$WANT" ]

# 2. "": the system's.
run_with "$SYS" "" || { fail "nodes restart with mesh_congestion \"\""; finish; exit 1; }
check "mesh_congestion \"\": echoes ('$ECHOED')" [ "$ECHOED" = hello ]
check_expr "mesh_congestion \"\": both ends keep the system's $SYS (a '$CC_A', c '$CC_C')" \
    '[ "$CC_A" = "$SYS" ] && [ "$CC_C" = "$SYS" ]'

# 3. auto, under BBR: cubic unless the default qdisc is fq.
QDISC=$(sysctl -n net.core.default_qdisc)
if grep -qw bbr /proc/sys/net/ipv4/tcp_available_congestion_control ||
    modprobe -q tcp_bbr 2>/dev/null; then
	AUTO=cubic; [ "$QDISC" = fq ] && AUTO=bbr
	run_with bbr auto || { fail "nodes restart with mesh_congestion \"auto\" under bbr"; finish; exit 1; }
	check "auto under bbr: echoes ('$ECHOED')" [ "$ECHOED" = hello ]
	check_expr "auto under bbr, default_qdisc $QDISC: both ends use $AUTO (a '$CC_A', c '$CC_C')" \
	    '[ "$CC_A" = "$AUTO" ] && [ "$CC_C" = "$AUTO" ]'
	if [ "$AUTO" = cubic ]; then
		check "... and helperd says why" grep -q 'mesh_congestion auto: the system.s bbr without the fq qdisc' "$T/a/helperd.log"
	fi
else
	skip "mesh_congestion auto under bbr" "bbr is not available in this kernel"
fi

# 4. auto, under another choice of the system's (reno): left alone.
run_with reno auto || { fail "nodes restart with mesh_congestion \"auto\" under reno"; finish; exit 1; }
check_expr "auto under reno: both ends keep reno (a '$CC_A', c '$CC_C')" \
    '[ "$CC_A" = reno ] && [ "$CC_C" = reno ]'

# 5. A name the kernel refuses: logged, the system's kept, connections work.
run_with "$SYS" nosuchcc || { fail "nodes restart with an unknown mesh_congestion"; finish; exit 1; }
check "an unknown name is logged, naming it" grep -q 'mesh_congestion "nosuchcc"' "$T/a/helperd.log"
check "... connections still work ('$ECHOED')" [ "$ECHOED" = hello ]
check_expr "... with the system's $SYS on both ends (a '$CC_A', c '$CC_C')" \
    '[ "$CC_A" = "$SYS" ] && [ "$CC_C" = "$SYS" ]'
finish
