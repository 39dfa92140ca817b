#!/bin/bash
# Multi-node mesh on etcd: three hosts (network namespaces a, b, c with
# 10.77.0.1-3), each with an etcd member and a helperd. web on a reaches
# socat on c through mTLS; an intention made through b's API closes an open
# a -> c connection within 1 s; a killed helperd's instances leave within
# the lease TTL and new connections go to the other instance; one etcd
# member down changes nothing; all of etcd down keeps the mesh working on
# what it knows; etcd back restores service without restarting helperd.
# Also: the second CA server takes the CA from etcd (root keys sealed with
# ca.secret); an ad-hoc service's first connection on the CA client waits
# for its leaf; a write etcd does not answer in time is reported as of
# unknown outcome and settled, other API requests answered meanwhile; a root rotation on the CA leader reaches
# every node under a stream of cross-node connections, none failing; the
# CA leader killed, the other CA server signs within the lease TTL.
. "$(dirname "$0")/lib.sh"
. "$SRCDIR/examples/cluster/hosts.sh"

why=$(hosts_check)
[ -z "$why" ] || skip_test "cluster test: $why"

# lib.sh's cleanup checks every helperd (exit status, sanitizer reports),
# then takes the hosts down.
AT_EXIT=hosts_down
S=$SRCDIR/tests/integration/session.py
now() { python3 -c 'import time; print(time.time())'; }

session() { # session NAME SECONDS: web on a holds a session to socat
	ip netns exec "$NS_a" env LD_PRELOAD="$SHIM" MESH_SOCKET="$T/a/helperd.sock" \
	    MESH_SERVICE=web MESH_UPSTREAMS=socat:9191 \
	    python3 "$S" 9191 "$2" "$T/$1.json" 0.05 >/dev/null 2>&1 &
	PIDS="$PIDS $!"
	for _ in $(seq 100); do
		[ -s "$T/$1.json" ] && [ "$(jq_get "$T/$1.json" ok)" -gt 2 ] && return 0
		sleep 0.05
	done
	return 1
}
closed_within() { # closed_within NAME T0 LIMIT
	python3 - "$T/$1.json" "$2" "$3" <<'PY'
import json, sys, time
for _ in range(60):
    d = json.load(open(sys.argv[1]))
    if d["closed_at"] is not None:
        dt = d["closed_at"] - float(sys.argv[2])
        print("    closed %.3f s after the change (%s)" % (dt, d["reason"]))
        sys.exit(0 if dt <= float(sys.argv[3]) else 1)
    time.sleep(0.1)
print("    still open 6 s after the change")
sys.exit(1)
PY
}
still_open() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["closed_at"] is None and d["bad"]==0 else 1)' "$T/$1.json"; }
catalog_is() { [ "$(instances "$1" "$2")" = "$3" ]; }
check_is() { # check_is HOST expected(Allowed|Denied)
	[ "$(meshctl_in "$1" intention check web socat)" = "$2" ]
}
echoes() { [ "$(echo_from "$1")" = "hello" ]; }
n_echoes() { # n_echoes HOST N: how many of N connections echoed
	k=0
	for _ in $(seq 1 "$2"); do echoes "$1" && k=$((k + 1)); done
	echo "$k"
}

# Hosts and etcd ----------------------------------------------------------
hosts_up || { fail "network namespaces a, b, c on a bridge"; finish; exit 1; }
ok "three hosts: namespaces $NS_a $NS_b $NS_c (10.77.0.1-3)"
for h in $HOSTS; do etcd_start "$h"; done
check "etcd: three members healthy" etcd_healthy a b c

# helperd: a is a CA server (its CA becomes the cluster's) and b a second
# one that takes it from etcd (the root keys sealed with ca.secret, which
# only CA servers hold); c is a CA client (ca.server = false): it gets the
# roots from etcd and its leaves signed from CSRs, never the key.
TOKEN='join_token = "cluster-test-token";'
CASECRET='ca = { secret = "test-ca-secret-0123456789abcdefghijklmnop"; };'
node_conf a "$TOKEN" "$CASECRET"
cp "$SRCDIR/examples/getting-started/web.json" "$T/a/services.d/"
node_start a || { fail "helperd on a starts"; finish; exit 1; }
node_conf b "$TOKEN" "$CASECRET"
node_conf c "$TOKEN" 'ca = { server = false; };'
cp "$SRCDIR/examples/getting-started/socat.json" "$T/c/services.d/"
node_start b && node_start c
check "helperd on a, b, c started with store = etcd" kill -0 "$HPID_c"
check "a published its root keys sealed with ca.secret" grep -q "published this node's root keys to etcd, sealed" "$T/a/helperd.log"
check "b (a new CA server, no CA directory) took the cluster's CA from etcd" grep -q "took the cluster's CA from etcd" "$T/b/helperd.log"
check "a is the CA leader (elected through etcd)" wait_until 3 grep -q "this node is now the CA leader" "$T/a/helperd.log"
etcd_dump() { ETCDCTL_API=3 inns a etcdctl --endpoints http://10.77.0.1:2379 get --prefix /meshshim; }
n=$(etcd_dump | grep -c "PRIVATE KEY")
check "etcd holds no private key in the clear ($n PEM key lines)" [ "$n" = 0 ]
check "... but the sealed box (AES-256-GCM) is there" sh -c "ETCDCTL_API=3 ip netns exec $NS_a etcdctl --endpoints http://10.77.0.1:2379 get /meshshim/ca/keys --print-value-only | grep -q 'HKDF-SHA256/AES-256-GCM'"
check "c (CA client) got socat's leaf signed by a CA server" wait_until 5 grep -q "installed leaf .* for spiffe://.*/svc/socat" "$T/c/helperd.log"
socat_start c || fail "socat on c"
SPID_c=$!

health_of() { # health_of HOST NODE: socat's check status on NODE in HOST's view
	api_in "$1" /v1/health/service/socat | python3 -c '
import json, sys
for e in json.load(sys.stdin):
    if e["Node"]["Node"] == sys.argv[1]:
        print(" ".join(c["Status"] for c in e["Checks"] if c["CheckID"] == "service:socat"))' "$2"
}
health_is() { [ "$(health_of "$1" "$2")" = "$3" ]; }
# socat on c has just started: its check passes within ~200 ms (a
# service's first minute), and until then every instance is critical.
check "socat on c passing in c's view" wait_until 10 health_is c c passing

# The first connection of an ad-hoc service on a CA client waits (within
# connect_timeout) for its CSR to be signed instead of failing.
out=$(printf 'hello\n' | inns c env LD_PRELOAD="$SHIM" MESH_SOCKET="$T/c/helperd.sock" \
    MESH_SERVICE=adhoc1 MESH_UPSTREAMS=socat:9191 timeout 10 nc -N 127.0.0.1 9191 2>/dev/null)
check "first connection of ad-hoc adhoc1 on c (CA client) echoes (got '$out')" [ "$out" = hello ]
check "... it waited for its certificate" grep -q "waiting for a certificate for adhoc1" "$T/c/helperd.log"
check "... which a CA server signed" grep -q "installed leaf .* for spiffe://.*/svc/adhoc1" "$T/c/helperd.log"

# 1. web on a reaches socat on c through mTLS -------------------------------
check "a's catalog has socat on c (from etcd)" wait_until 3 catalog_is a socat c
services_b=$(api_in b /v1/catalog/services | tr -d ' \n')
check_expr "b's catalog lists socat and web ($services_b)" 'grep -q socat <<<"$services_b" && grep -q web <<<"$services_b"'
out=$(echo_from a)
check "web on a -> socat on c echoes (got '$out')" [ "$out" = "hello" ]
td_of() { api_in "$1" /v1/agent/connect/ca/roots | python3 -c 'import json,sys; print(json.load(sys.stdin)["TrustDomain"])'; }
td=$(td_of a); tdb=$(td_of b); tdc=$(td_of c)
check "the three nodes share the trust domain $td" [ "$tdb" = "$td" -a "$tdc" = "$td" ]
# The mesh port of c answers only mTLS: plain TCP from a gets nothing back.
out=$(printf 'plain\n' | inns a timeout 3 nc -N 10.77.0.3 21000 2>/dev/null)
check "plain TCP to c's mesh port gets no echo" [ -z "$out" ]

# The CA client holds no root private key: not on disk, not in memory.
keys=$(grep -rl "PRIVATE KEY" "$T/c/data" | grep -v "/ca/leaf/" | tr '\n' ' ')
check "c's data dir holds no private key but its leaves' (${keys:-none})" [ -z "$keys" ]
check "c's data dir has no CA root directory" [ ! -e "$T/c/data/ca/roots" ]
out=$(python3 "$SRCDIR/tests/integration/memgrep.py" "$HPID_c" "$T/a/data/ca/roots/1.key"); rc=$?
echo "    c: $out"
check "c's helperd memory holds no trace of the root key" [ "$rc" = 0 ]
out=$(python3 "$SRCDIR/tests/integration/memgrep.py" "$HPID_a" "$T/a/data/ca/roots/1.key"); rc=$?
echo "    a (CA server, control): $out"
check "the memory search finds the root key in a CA server (control)" [ "$rc" = 1 ]

out=$(meshctl_in c ca rotate 2>&1)
case $out in
*"not a CA server"*) ok "meshctl ca rotate is refused on a CA client ($out)" ;;
*) fail "meshctl ca rotate is refused on a CA client (got: $out)" ;;
esac
out=$(meshctl_in b ca rotate 2>&1)
case $out in
*"only the CA leader rotates: rotate on node a"*) ok "... and on a CA server that is not the leader ($out)" ;;
*) fail "meshctl ca rotate is refused on a CA server that is not the leader (got: $out)" ;;
esac

# A CSR without the join token is refused by the CA servers.
ETCDCTL_API=3 inns a etcdctl --endpoints http://10.77.0.1:2379 put \
    /meshshim/ca/csr/mallory/socat \
    '{"Node":"mallory","Service":"socat","Datacenter":"dc1","CSR":"x","MAC":"00"}' >/dev/null
check "a CSR with a wrong join_token is refused" wait_until 3 grep -q "REFUSED a CSR from node mallory" "$T/a/helperd.log"
sleep 0.5
out=$(ETCDCTL_API=3 inns a etcdctl --endpoints http://10.77.0.1:2379 get --prefix /meshshim/ca/leaf/mallory --keys-only)
check "... and nothing was signed for it" [ -z "$out" ]
ETCDCTL_API=3 inns a etcdctl --endpoints http://10.77.0.1:2379 del /meshshim/ca/csr/mallory/socat >/dev/null

# 2. An intention created through b's API closes an open a -> c session -----
check "web (a) -> socat (c) session open" session s1 60
t0=$(now)
out=$(meshctl_in b intention create -deny web socat)
check "intention created on b: $out" [ "$out" = "Created: web => socat (deny)" ]
check "open a -> c session closed within 1 s of b's intention" closed_within s1 "$t0" 1
check "a says Denied within 1 s" wait_until 1 check_is a Denied
check "c says Denied" check_is c Denied
check "new connection from a gets no echo" [ -z "$(echo_from a)" ]
out=$(meshctl_in c intention delete web socat)
check "intention deleted on c: $out" [ -n "$out" ]
check "a says Allowed again" wait_until 1 check_is a Allowed
check "web on a -> socat echoes again" echoes a
# Concurrent writers on two nodes (compare-and-swap in etcd): every create
# that reported success is stored; a loser is refused, never lost.
okc=0
for i in 1 2 3 4 5; do
	meshctl_in a intention create -deny "api$i" socat >/dev/null 2>&1 & p1=$!
	meshctl_in b intention create -deny "db$i" socat >/dev/null 2>&1 & p2=$!
	wait $p1 && okc=$((okc + 1))
	wait $p2 && okc=$((okc + 1))
done
n_stored() { api_in c /v1/connect/intentions | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
stored_is() { [ "$(n_stored)" = "$1" ]; }
wait_until 3 stored_is "$okc"
n_st=$(n_stored)
# At least one create per round must succeed (0 = 0 proves nothing).
check_expr "10 concurrent creates on a and b: $okc reported success (>= 5), $n_st stored on c" '[ "$okc" -ge 5 ] && [ "$okc" = "$n_st" ]'
for i in 1 2 3 4 5; do
	meshctl_in c intention delete "api$i" socat >/dev/null 2>&1
	meshctl_in c intention delete "db$i" socat >/dev/null 2>&1
done

# 3. Kill c's helperd: its instance leaves, new connections go to b ---------
socat_start b || fail "socat on b"
cp "$SRCDIR/examples/getting-started/socat.json" "$T/b/services.d/"
meshctl_in b reload >/dev/null
check "a's catalog has socat on b and c" wait_until 3 catalog_is a socat "b c"

# Health checks: socat on c stops, c's helperd keeps running. c's check
# (check_interval 1 s) goes critical, c publishes it, a dials only b.
kill "$SPID_c"; wait "$SPID_c" 2>/dev/null
t0=$(now)
wait_until 8 health_is a c critical
dt=$(python3 -c "import time; print('%.1f' % (time.time() - $t0))")
# helperd's own TCP check needs 3 failures in a row (README, Health
# checks): at check_interval 1 s, up to 3 s plus each probe's timeout, then etcd.
check "socat on c stopped: critical in a's /v1/health/service/socat after ${dt} s (<= 6 s)" python3 -c "import sys; sys.exit(0 if $dt <= 6 else 1)"
check "c logged the change" grep -q "health: socat is critical: connect 127.0.0.1:8181" "$T/c/helperd.log"
check "... and a dials only b now" catalog_is a socat b
n=$(api_in a /v1/catalog/service/socat | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
check "a's /v1/catalog/service/socat still lists both instances ($n)" [ "$n" = 2 ]
b0=$(socat_accepts b)
k=$(n_echoes a 10)
check "10 new connections from a while c's socat is down: all echo ($k/10)" [ "$k" = 10 ]
b1=$(socat_accepts b)
check "... all served by socat on b ($((b1 - b0)) new connections there)" [ $((b1 - b0)) -ge 10 ]
socat_start c || fail "socat on c again"
SPID_c=$!
t0=$(now)
check "socat on c back: passing in a's view" wait_until 5 health_is a c passing
check "a dials b and c again ($(python3 -c "import time; print('%.1f' % (time.time() - $t0))") s)" catalog_is a socat "b c"

# c's lease as etcd holds it: granted for lease_ttl - 1 s, so that etcd's
# expiry pass (a 500 ms loop, then raft) fits in the second left.
granted_ttl() { # granted_ttl NODE: the TTL of the lease under NODE's socat
	local id
	id=$(ETCDCTL_API=3 inns a etcdctl --endpoints http://10.77.0.1:2379 -w json get "/meshshim/services/socat/$1" |
	    python3 -c 'import json,sys; print("%x" % json.load(sys.stdin)["kvs"][0]["lease"])')
	ETCDCTL_API=3 inns a etcdctl --endpoints http://10.77.0.1:2379 lease timetolive "$id" |
	    sed -n 's/.*granted with TTL(\([0-9]*\)s).*/\1/p'
}
g=$(granted_ttl c)
check "c's lease in etcd: granted for lease_ttl - 1 = $((LEASE_TTL - 1)) s ($g s)" [ "$g" = $((LEASE_TTL - 1)) ]
b0=$(socat_accepts b)
helperd_killed "$HPID_c"
t0=$(now)
# The 10 connections run beside the watch on a's catalog, so that their
# time is not counted in it.
n_echoes a 10 > "$T/echoes_after_kill" &
EPID=$!
wait_until $((LEASE_TTL + 3)) catalog_is a socat b
dt=$(python3 -c "import time; print('%.1f' % (time.time() - $t0))")
wait "$EPID"
k=$(cat "$T/echoes_after_kill")
check "10 connections right after c died: all echo (failed dials retried on b) ($k/10)" [ "$k" = 10 ]
# The lease ends TTL - 1 s after c's last keepalive; etcd revokes
# expired leases in a 500 ms loop, then the watch tells a; polling here
# costs up to ~0.3 s: within the TTL. TTL + 1 s is the bench's target
# (make bench-cluster), and this test's, so that a loaded CI machine
# does not decide it.
check "c's instance left a's catalog ${dt} s after the kill (lease TTL ${LEASE_TTL} s, <= TTL + 1)" python3 -c "import sys; sys.exit(0 if $dt <= $LEASE_TTL + 1 else 1)"
k=$(n_echoes a 10)
check "after the TTL, 10 of 10 connections echo ($k/10)" [ "$k" = 10 ]
b1=$(socat_accepts b)
check "... all served by socat on b ($((b1 - b0)) new connections there)" [ $((b1 - b0)) -ge 20 ]

# 4. One etcd member down: nothing visible -----------------------------------
etcd_stop a
check "etcd member a stopped; b and c healthy" etcd_healthy b c
check "web on a -> socat on b still echoes" echoes a
out=$(meshctl_in a intention create -deny web socat)
check "intention create on a still works (a's etcd member is down): $out" [ "$out" = "Created: web => socat (deny)" ]
check "b says Denied within 1 s" wait_until 1 check_is b Denied
meshctl_in b intention delete web socat >/dev/null
check "a says Allowed again" wait_until 1 check_is a Allowed
check "a never logged etcd as unreachable" sh -c "! grep -q 'ETCD UNREACHABLE' $T/a/helperd.log"
check "a's catalog unchanged (socat on b)" catalog_is a socat b

# 5. All of etcd down: open connections continue, new ones to known instances
check "web (a) -> socat (b) session open" session s2 60
etcd_stop b; etcd_stop c
sleep 3
check "open session still up 3 s after etcd stopped" still_open s2
k=$(n_echoes a 5)
check "new connections to the known instance succeed with etcd down ($k/5)" [ "$k" = 5 ]
check "a logged ETCD UNREACHABLE once" [ "$(grep -c 'ETCD UNREACHABLE' "$T/a/helperd.log")" = 1 ]
out=$(meshctl_in a intention create -deny web socat 2>&1)
case $out in
Created*) fail "intention writes are refused while etcd is down (got: $out)" ;;
*) ok "intention writes are refused while etcd is down: $(echo "$out" | head -n 1)" ;;
esac
check "helperd a and b still running" kill -0 "$HPID_a" "$HPID_b"

# 6. etcd back: normal service without restarting helperd ------------------
for h in $HOSTS; do etcd_start "$h"; done
check "etcd: three members healthy again" etcd_healthy a b c
check "a logged that etcd is back" wait_until 10 grep -q "etcd reachable again" "$T/a/helperd.log"
check "session opened before the outage is still up" still_open s2
t0=$(now)
out=$(meshctl_in b intention create -deny web socat)
check "intention create on b works again: $out" [ "$out" = "Created: web => socat (deny)" ]
check "... and closes the session held through the outage within 1 s" closed_within s2 "$t0" 1
check "a says Denied" check_is a Denied
meshctl_in b intention delete web socat >/dev/null
check "a says Allowed" wait_until 1 check_is a Allowed
check "a's catalog still socat on b" catalog_is a socat b
check "web on a -> socat on b echoes" echoes a
node_start c
check "c restarted: its instance is back in a's catalog" wait_until 3 catalog_is a socat "b c"

# 7. A helperd restarted while etcd is down starts from what it last knew.
meshctl_in b intention create -deny api socat >/dev/null
check "a knows the api => socat intention" wait_until 1 sh -c "[ \"\$(ip netns exec $NS_a env MESH_HTTP_ADDR=127.0.0.1:8500 $MESHCTL intention check api socat)\" = Denied ]"
for h in $HOSTS; do etcd_stop "$h"; done
stop_helperd "$HPID_a"; rc=$?
check "a stops on SIGTERM with etcd down (exit $rc)" [ "$rc" = 0 ]
node_start a
check "a restarted with etcd down: socat on b and c from its last run" catalog_is a socat "b c"
k=$(n_echoes a 5)
check "... new connections from web on a echo ($k/5)" [ "$k" = 5 ]
check "... and it still enforces the intentions it knew" [ "$(meshctl_in a intention check api socat)" = Denied ]

# 8. A write etcd does not answer in time is not reported as an error: its
# outcome is unknown until etcd answers; helperd settles it (the same
# compare-and-swap, asked again) and logs it; the cluster agrees. The
# write waits off the loop: other API requests are answered meanwhile.
n_back=$(grep -c "etcd reachable again" "$T/b/helperd.log")
for h in $HOSTS; do etcd_start "$h"; done
check "etcd: three members healthy again" etcd_healthy a b c
check "b is in sync with etcd again" wait_until 15 sh -c "[ \$(grep -c 'etcd reachable again' $T/b/helperd.log) -gt $n_back ]"
meshctl_in b intention delete api socat >/dev/null
check "a says Allowed for api => socat" wait_until 2 sh -c "[ \"\$(ip netns exec $NS_a env MESH_HTTP_ADDR=127.0.0.1:8500 $MESHCTL intention check api socat)\" = Allowed ]"
for h in $HOSTS; do kill -STOP "$(eval "echo \$EPID_$h")"; done
meshctl_in b intention create -deny api socat > "$T/write.out" 2>&1 &
wpid=$!
# While b waits for etcd (up to 6 s), its loop serves other requests: each
# answered (curl gives up at 4 s) while the write is still unanswered.
# helperd that waited on its loop thread answered none of them before the
# write (issue 13: etcd writes never stall a loop round).
sleep 0.5
gets=""
for path in agent/self health/service/socat; do
	(code=$(inns b curl -s -o /dev/null -w '%{http_code}' --max-time 4 "http://127.0.0.1:8500/v1/$path")
	 kill -0 "$wpid" 2>/dev/null && pending=yes || pending=no
	 echo "$code $pending" > "$T/get.${path//\//_}") &
	gets="$gets $!"
done
wait $gets
for path in agent/self health/service/socat; do
	read -r code pending < "$T/get.${path//\//_}"
	check "GET /v1/$path on b answered ($code) while b's intention write waits for etcd (write pending: $pending)" [ "$code" = 200 -a "$pending" = yes ]
done
wait "$wpid"; rc=$?
out=$(cat "$T/write.out")
sleep 1
for h in $HOSTS; do kill -CONT "$(eval "echo \$EPID_$h")"; done
echo "    meshctl said (exit $rc): $out" | head -n 3
case $out in
"Created: api => socat (deny)") ok "write with etcd stopped 7 s: confirmed (settled in time)"; want=Denied ;;
"Outcome unknown for intention"*"may have been applied"*"meshctl intention get api socat"*)
	ok "write with etcd stopped 7 s: meshctl says the outcome is unknown, not an error (exit $rc)"
	check "... b logs the outcome once etcd answers" wait_until 15 grep -Eq "change #[0-9]+ whose outcome .* (WAS APPLIED|was NOT applied)|change #[0-9]+ settled" "$T/b/helperd.log"
	if grep -Eq "WAS APPLIED|settled after [0-9]+ ms: applied" "$T/b/helperd.log"; then want=Denied; else want=Allowed; fi ;;
*"the change was not made"*)
	# Honest too, if it holds: the write never left b.
	ok "write with etcd stopped 7 s: refused before it was sent ($out)"; want=Allowed ;;
*) fail "write with etcd stopped 7 s: no plain error for a write that may be applied (got: $out)"; want=Denied ;;
esac
grep -E "intention change #|change #" "$T/b/helperd.log" | tail -n 3 | sed 's/^/    b: /'
sleep 2   # a write that was going to land has landed by now
check "a and c agree with b's account ($want)" wait_until 10 sh -c "[ \"\$(ip netns exec $NS_a env MESH_HTTP_ADDR=127.0.0.1:8500 $MESHCTL intention check api socat)\" = $want ] && [ \"\$(ip netns exec $NS_c env MESH_HTTP_ADDR=127.0.0.1:8500 $MESHCTL intention check api socat)\" = $want ]"
meshctl_in b intention delete api socat >/dev/null 2>&1

# 9. Root rotation across the cluster, under a stream of new connections
# from a to socat on b and c: cross-signed, every node trusts both roots,
# every leaf re-issued under the new root, no connection fails.
leader=$(ETCDCTL_API=3 inns a etcdctl --endpoints http://10.77.0.1:2379 get /meshshim/ca/leader --print-value-only)
roots_of() { # roots_of HOST: "ACTIVE-ROOT-ID N-ROOTS"
	api_in "$1" /v1/agent/connect/ca/roots | python3 -c '
import json, sys
d = json.load(sys.stdin); print(d["ActiveRootID"], len(d["Roots"]))'
}
r0=$(roots_of a)
cat > "$T/stream.py" <<'PY'
import json, socket, sys, time
end, out = time.time() + float(sys.argv[1]), sys.argv[2]
res = {"ok": 0, "bad": 0, "errors": []}
while time.time() < end:
    try:
        s = socket.create_connection(("127.0.0.1", 9191), timeout=5)
        s.sendall(b"rot\n")
        got = b""
        while not got.endswith(b"\n"):
            d = s.recv(64)
            if not d:
                break
            got += d
        s.close()
        if got == b"rot\n":
            res["ok"] += 1
        else:
            res["bad"] += 1; res["errors"].append("got %r" % got)
    except OSError as e:
        res["bad"] += 1; res["errors"].append(str(e))
    time.sleep(0.05)
json.dump(res, open(out, "w"))
PY
ip netns exec "$NS_a" env LD_PRELOAD="$SHIM" MESH_SOCKET="$T/a/helperd.sock" \
    MESH_SERVICE=web MESH_UPSTREAMS=socat:9191 python3 "$T/stream.py" 20 "$T/stream.json" &
stream=$!
sleep 4
nc0=$(grep -c "installed leaf .* for spiffe://.*/svc/socat" "$T/c/helperd.log")
out=$(meshctl_in "$leader" ca rotate 2>&1)
check "meshctl ca rotate on the CA leader ($leader): $out" grep -q "published the rotated CA" "$T/$leader/helperd.log"
new_active=$(roots_of "$leader" | cut -d' ' -f1)
check_expr "the leader's active root changed (${r0%% *} -> $new_active)" '[ -n "$new_active" ] && [ "$new_active" != "${r0%% *}" ]'
for h in a b c; do
	check "$h trusts both roots, the new one active" wait_until 5 sh -c "[ \"\$(ip netns exec $(host_ns $h) curl -s --max-time 5 http://127.0.0.1:8500/v1/agent/connect/ca/roots | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[\"ActiveRootID\"], len(d[\"Roots\"]))')\" = \"$new_active 2\" ]"
done
other=b; [ "$leader" = b ] && other=a
check "$other (CA server) took the rotated CA from etcd and re-issued its leaves" wait_until 5 grep -q "took the rotated CA from etcd" "$T/$other/helperd.log"
check "c (CA client) got socat's leaf under the new root" wait_until 10 sh -c "[ \$(grep -c 'installed leaf .* for spiffe://.*/svc/socat' $T/c/helperd.log) -gt $nc0 ]"
wait "$stream"
res=$(cat "$T/stream.json" 2>/dev/null)
echo "    stream of connections across the rotation: $res" | cut -c1-300
check_expr "no connection failed during the rotation" 'python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d[\"bad\"] == 0 and d[\"ok\"] >= 5 else 1)" "$T/stream.json"'
check "web on a -> socat still echoes after the rotation" echoes a

# 10. The CA leader dies: within the lease TTL the other CA server signs,
# and a new service on the CA client gets its leaf.
leader=$(ETCDCTL_API=3 inns a etcdctl --endpoints http://10.77.0.1:2379 get /meshshim/ca/leader --print-value-only)
case $leader in a) other=b ;; b) other=a ;; *) other="" ;; esac
check "a CA leader is elected ($leader)" [ -n "$other" ]
if [ -n "$other" ]; then
	n0=$(grep -c "this node is now the CA leader" "$T/$other/helperd.log")
	helperd_killed "$(eval "echo \$HPID_$leader")"
	t0=$(now)
	# The time is reported, not asserted (etcd ends the lease; on a
	# loaded machine that alone takes well past the TTL).
	wait_until $((LEASE_TTL * 4)) sh -c "[ \$(grep -c 'this node is now the CA leader' $T/$other/helperd.log) -gt $n0 ]"; rc=$?
	dt=$(python3 -c "import time; print('%.1f' % (time.time() - $t0))")
	check "CA leader $leader killed: $other leads and signs ${dt} s later (lease TTL ${LEASE_TTL} s)" [ "$rc" = 0 ]
	out=$(printf 'hello\n' | inns c env LD_PRELOAD="$SHIM" MESH_SOCKET="$T/c/helperd.sock" \
	    MESH_SERVICE=adhoc2 MESH_UPSTREAMS=socat:9191 timeout 10 nc -N 127.0.0.1 9191 2>/dev/null)
	check "a new ad-hoc service on c (CA client) connects (got '$out')" [ "$out" = hello ]
	check "... its leaf signed by $other, the new CA leader" grep -q "signed a certificate for adhoc2 on node c" "$T/$other/helperd.log"
fi
finish
