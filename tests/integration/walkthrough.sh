#!/bin/bash
# The getting-started walkthrough, as a test: socat echo, web => socat
# through the mesh (ad-hoc and registered upstream), deny, delete, restart.
. "$(dirname "$0")/lib.sh"

ECHO=$(free_port); UP1=$(free_port); UP2=$(free_port)
start_echo "$ECHO"
write_conf n1 'default_intention = "allow";'
# The seed's socat.json, with the echo port of this run.
sed "s/8181/$ECHO/" "$SRCDIR/examples/getting-started/socat.json" \
    > "$T/n1/services.d/socat.json"
start_helperd n1 || { fail "helperd starts"; finish; exit 1; }
ok "helperd starts (http $HTTP_ADDR, mesh port $MESH_PORT)"

out=$(echo_through "$UP1" web "socat:$UP1")
check "ad-hoc upstream MESH_UPSTREAMS=socat:$UP1 echoes" [ "$out" = "hello-$UP1" ]

# Register web with the seed's web.json (upstream on UP2), then reload.
sed "s/9191/$UP2/" "$SRCDIR/examples/getting-started/web.json" \
    > "$T/n1/services.d/web.json"
check "meshctl reload" "$MESHCTL" reload
out=$(echo_through "$UP2" web)
check "registered upstream (web.json local_bind_port) echoes" [ "$out" = "hello-$UP2" ]
check "catalog lists socat and web" sh -c "'$MESHCTL' catalog services | tr '\n' ' ' | grep -q 'socat web'"
# SIGHUP re-reads the services too.
printf 'services = ( { name = "extra"; port = 1; } );\n' > "$T/n1/services.d/extra.conf"
kill -HUP "$HELPERD_PID"
for _ in $(seq 40); do "$MESHCTL" catalog services | grep -qx extra && break; sleep 0.05; done
check "SIGHUP re-reads services_dir (extra.conf appears)" sh -c "'$MESHCTL' catalog services | grep -qx extra"
rm -f "$T/n1/services.d/extra.conf"; kill -HUP "$HELPERD_PID"

out=$("$MESHCTL" intention create -deny web socat)
check "intention create prints Consul's line" [ "$out" = "Created: web => socat (deny)" ]
out=$(echo_through "$UP2" web)
check "denied: nc gets no echo" [ -z "$out" ]
python3 - "$UP2" "$SHIM" "$MESH_SOCKET" <<'PY' && ok "denied: blocking connect fails with ECONNREFUSED" || fail "denied: blocking connect fails with ECONNREFUSED"
import os, subprocess, sys
code = "import socket,errno,sys\ns=socket.socket()\ntry:\n s.connect(('127.0.0.1',%s)); sys.exit(3)\nexcept ConnectionRefusedError: sys.exit(0)\n" % sys.argv[1]
env = dict(os.environ, LD_PRELOAD=sys.argv[2], MESH_SERVICE="web", MESH_SOCKET=sys.argv[3])
sys.exit(subprocess.run([sys.executable, "-c", code], env=env, timeout=10).returncode)
PY
python3 - "$UP2" "$SHIM" "$MESH_SOCKET" <<'PY' && ok "denied: a non-blocking connect sees a reset on first I/O" || fail "denied: a non-blocking connect sees a reset on first I/O"
import os, subprocess, sys
code = """
import errno, select, socket, sys, time
s = socket.socket(); s.setblocking(False)
rc = s.connect_ex(('127.0.0.1', %s))
if rc != errno.EINPROGRESS: sys.exit('connect_ex: %%d' %% rc)
select.select([], [s], [], 5)
time.sleep(0.2)
try:
    s.send(b'x'); d = s.recv(10)
    sys.exit('no reset: got %%r' %% d)
except (ConnectionResetError, BrokenPipeError):
    sys.exit(0)
except BlockingIOError:
    sys.exit('no reset: would block')
""" % sys.argv[1]
env = dict(os.environ, LD_PRELOAD=sys.argv[2], MESH_SERVICE="web", MESH_SOCKET=sys.argv[3])
sys.exit(subprocess.run([sys.executable, "-c", code], env=env, timeout=10).returncode)
PY
"$MESHCTL" intention check web socat >/dev/null; rc=$?
check "intention check says Denied (exit 1)" [ "$rc" = 1 ]
grep -q "denied web" "$T/n1/helperd.log"
check "the denied attempt is logged" [ $? = 0 ]

check "intention delete" "$MESHCTL" intention delete web socat
out=$(echo_through "$UP2" web)
check "after delete: echoes again" [ "$out" = "hello-$UP2" ]

# Half-close: nc -N shuts down writing; the echo must still come back
# completely (a 200 KB payload through both TLS ends).
head -c 20000000 /dev/urandom > "$T/blob"
LD_PRELOAD="$SHIM" MESH_SERVICE=web timeout 60 nc -N 127.0.0.1 "$UP2" \
    < "$T/blob" > "$T/blob.back" 2>/dev/null
check "20 MB echoed intact through both TLS ends, then half-close" cmp -s "$T/blob" "$T/blob.back"

# Unrouted connects pass through untouched: straight to the echo server.
out=$(printf 'direct\n' | LD_PRELOAD="$SHIM" MESH_SERVICE=web timeout 5 nc -N 127.0.0.1 "$ECHO")
check "a connect to a non-upstream port is untouched" [ "$out" = "direct" ]

# Services registered through the API (Consul's agent endpoint).
code=$(api -X PUT --data '{"Name": "billing", "Port": 9999, "Connect": {}}' "http://$HTTP_ADDR/v1/agent/service/register")
check "PUT /v1/agent/service/register: 200" [ "$code" = 200 ]
check "the registered service is in the catalog" sh -c "'$MESHCTL' catalog services | grep -qx billing"

# Persistence: intentions and the CA root survive a restart.
"$MESHCTL" intention create -deny '*' socat >/dev/null
root1=$(curl -s "http://$HTTP_ADDR/v1/agent/connect/ca/roots" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ActiveRootID"])')
stop_helperd "$HELPERD_PID"; rc=$?
check "SIGTERM stops helperd cleanly (exit 0, no sanitizer report)" [ "$rc" = 0 ]
start_helperd n1 || fail "helperd restarts"
root2=$(curl -s "http://$HTTP_ADDR/v1/agent/connect/ca/roots" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ActiveRootID"])')
check_expr "restart keeps the CA root ($root1 -> $root2)" '[ -n "$root1" ] && [ "$root1" = "$root2" ]'
out=$("$MESHCTL" intention list)
check "restart keeps the intentions" sh -c "echo '$out' | grep -q 'socat'"
"$MESHCTL" intention check web socat >/dev/null; rc=$?
check "the kept '*' => socat deny still applies" [ "$rc" = 1 ]
"$MESHCTL" intention delete '*' socat >/dev/null
check "an API-registered service survives the restart" sh -c "'$MESHCTL' catalog services | grep -qx billing"
code=$(api -X PUT "http://$HTTP_ADDR/v1/agent/service/deregister/billing")
check_expr "deregister: 200 ($code), and it is gone" '[ "$code" = 200 ] && ! "$MESHCTL" catalog services | grep -qx billing'
code=$(api -X PUT "http://$HTTP_ADDR/v1/agent/service/deregister/billing")
check "deregistering it again: 404" [ "$code" = 404 ]
out=$(echo_through "$UP2" web)
check "echo after restart" [ "$out" = "hello-$UP2" ]

# Bad input to the API: 400 with a reason, nothing changes, helperd lives.
n0=$(curl -s "http://$HTTP_ADDR/v1/connect/intentions" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
code=$(api -X POST --data '{"SourceName": "web", ' "http://$HTTP_ADDR/v1/connect/intentions")
check_expr "malformed JSON gets 400 ($code: $(head -c 80 "$T/api.out"))" '[ "$code" = 400 ] && grep -qi json "$T/api.out"'
code=$(api -X POST --data '{"SourceName":"web","DestinationName":"socat","Action":"maybe"}' "http://$HTTP_ADDR/v1/connect/intentions")
check "unknown action gets 400" [ "$code" = 400 ]
n1=$(curl -s "http://$HTTP_ADDR/v1/connect/intentions" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
check "bad requests changed nothing ($n0 intentions)" [ "$n0" = "$n1" ]
check "helperd still running" kill -0 "$HELPERD_PID"

# A failed reload keeps the running configuration.
echo '{"service": {"name": "bad name!", "port": 1}}' > "$T/n1/services.d/zz.json"
"$MESHCTL" reload >/dev/null 2>&1; rc=$?
check "reload of a bad service file fails (exit $rc)" [ "$rc" != 0 ]
rm -f "$T/n1/services.d/zz.json"
out=$(echo_through "$UP2" web)
check "after a failed reload the mesh still works" [ "$out" = "hello-$UP2" ]

# -check: file:line: reason, exit 1; an out-of-range value names the key.
printf 'node = "x";\nmesh_port = 70000;\n' > "$T/bad1.conf"
out=$("$HELPERD" -c "$T/bad1.conf" -check 2>&1); rc=$?
check_expr "-check names the key (exit $rc): $out" '[ "$rc" = 1 ] && grep -q "bad1.conf:2: .*mesh_port" <<<"$out"'
printf 'node = "x"\nmesh_port = ;\n' > "$T/bad2.conf"
out=$("$HELPERD" -c "$T/bad2.conf" -check 2>&1); rc=$?
check_expr "-check on a syntax error (exit $rc): $out" '[ "$rc" = 1 ] && grep -q "bad2.conf:[0-9]*: " <<<"$out"'
out=$("$HELPERD" -c "$T/n1/mesh.conf" -check 2>&1); rc=$?
check "-check on a good file exits 0" [ "$rc" = 0 ]

stop_helperd "$HELPERD_PID"; rc=$?
check "final SIGTERM: exit 0" [ "$rc" = 0 ]
finish
