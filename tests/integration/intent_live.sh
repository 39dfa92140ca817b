#!/bin/bash
# Intentions on live connections: a deny closes the open sessions of that
# pair within 1 s (create, and -replace of an allow), other pairs stay up,
# and flapping leaves no leaked fds or connections in helperd.
. "$(dirname "$0")/lib.sh"

ECHO=$(free_port); UP=$(free_port)
start_echo "$ECHO"
write_conf n1 'default_intention = "allow";'
sed "s/8181/$ECHO/" "$SRCDIR/examples/getting-started/socat.json" > "$T/n1/services.d/socat.json"
start_helperd n1 || { fail "helperd starts"; finish; exit 1; }
S=$SRCDIR/tests/integration/session.py

session() { # session NAME SERVICE SECONDS: background session through the mesh
	LD_PRELOAD="$SHIM" MESH_SERVICE="$2" MESH_UPSTREAMS="socat:$UP" \
	    python3 "$S" "$UP" "$3" "$T/$1.json" 0.05 &
	PIDS="$PIDS $!"
	eval "SPID_$1=$!"
	for _ in $(seq 100); do
		[ -s "$T/$1.json" ] && [ "$(jq_get "$T/$1.json" ok)" -gt 2 ] && return 0
		sleep 0.05
	done
	return 1
}
closed_within() { # closed_within NAME T0 LIMIT: the session ended <= LIMIT s after T0
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

check "web session up" session web1 web 120
check "api session up (another pair)" session api1 api 240
t0=$EPOCHREALTIME   # before meshctl starts: its own start-up counts
out=$("$MESHCTL" intention create -deny web socat)
check "create -deny: $out" [ "$out" = "Created: web => socat (deny)" ]
check "open web => socat session closed within 1 s of create -deny" closed_within web1 "$t0" 1
sleep 0.5
check "api => socat session untouched" still_open api1
grep -q "closing .*web => socat" "$T/n1/helperd.log"
check "helperd logged which connection it closed and why" [ $? = 0 ]
"$MESHCTL" intention delete web socat >/dev/null

# -replace turning allow into deny.
"$MESHCTL" intention create -allow web socat >/dev/null
check "web session up under an allow" session web2 web 120
t0=$EPOCHREALTIME   # before meshctl starts: its own start-up counts
out=$("$MESHCTL" intention create -deny -replace web socat)
check "create -deny -replace: $out" [ "$out" = "Created: web => socat (deny)" ]
check "open session closed within 1 s of the -replace" closed_within web2 "$t0" 1
check "api => socat session still untouched" still_open api1
"$MESHCTL" intention delete web socat >/dev/null

# The same on the `meshctl connect proxy` path (no shim in the client).
PX=$(free_port)
"$MESHCTL" connect proxy -service web -upstream "socat:$PX" > "$T/proxy.log" 2>&1 &
PIDS="$PIDS $!"
wait_port "$PX"
python3 "$S" "$PX" 120 "$T/px.json" 0.05 &
PIDS="$PIDS $!"
for _ in $(seq 100); do [ -s "$T/px.json" ] && [ "$(jq_get "$T/px.json" ok)" -gt 2 ] && break; sleep 0.05; done
check "session through meshctl connect proxy up" [ "$(jq_get "$T/px.json" ok)" -gt 2 ]
t0=$EPOCHREALTIME   # before meshctl starts: its own start-up counts
"$MESHCTL" intention create -deny web socat >/dev/null
check "proxy session closed within 1 s of the deny" closed_within px "$t0" 1
"$MESHCTL" intention delete web socat >/dev/null

# A wildcard deny of the destination reaches every source of it.
check "web session up again" session web3 web 120
t0=$EPOCHREALTIME   # before meshctl starts: its own start-up counts
"$MESHCTL" intention create -deny '*' socat >/dev/null
check "'*' => socat deny closes web's session within 1 s" closed_within web3 "$t0" 1
check "... and api's" closed_within api1 "$t0" 1
"$MESHCTL" intention delete '*' socat >/dev/null

# Flapping: 50 rounds of allow/deny with a session opened in each allow:
# the client echoes once (and counts it), then holds the connection until
# the deny closes it.
sleep 0.5
fd0=$(ls /proc/"$HELPERD_PID"/fd | wc -l)
conns0=$(curl -s "http://$HTTP_ADDR/v1/agent/self" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Stats"]["Connections"])')
: > "$T/flap.count"
# One python process (with the shim) runs the 50 rounds: allow, connect,
# echo (counted), deny while the connection is open, wait for it to end.
LD_PRELOAD="$SHIM" MESH_SERVICE=web MESH_UPSTREAMS="socat:$UP" \
    timeout 250 python3 - "$UP" "$T/flap.count" "$MESHCTL" <<'PY'
import os, socket, subprocess, sys
port, count, meshctl = int(sys.argv[1]), sys.argv[2], sys.argv[3]
env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
def intention(action):
    subprocess.run([meshctl, "intention", "create", action, "-replace",
                    "web", "socat"], env=env, stdout=subprocess.DEVNULL)
for i in range(50):
    intention("-allow")
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"x\n")
        if s.recv(10) == b"x\n":
            open(count, "a").write("echo\n")
    except OSError:
        s = None
    intention("-deny")
    if s is not None:
        try: s.recv(10)
        except OSError: pass
        s.close()
PY
echoes=$(wc -l < "$T/flap.count")
check "the flapping clients echoed before each deny ($echoes of 50, want >= 40)" [ "$echoes" -ge 40 ]
"$MESHCTL" intention delete web socat >/dev/null
# helperd closes the denied connections asynchronously: wait (10 s at
# most) until none is left, then count fds.
relayed() { curl -s "http://$HTTP_ADDR/v1/agent/self" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Stats"]["Connections"])'; }
for _ in $(seq 100); do [ "$(relayed)" = 0 ] && break; sleep 0.1; done
fd1=$(ls /proc/"$HELPERD_PID"/fd | wc -l)
conns1=$(relayed)
echo "    helperd fds before/after: $fd0/$fd1, relayed connections: $conns0/$conns1"
check "flapping 50 times leaks no fds in helperd" [ "$fd1" -le "$fd0" ]
check "flapping leaves no relayed connections behind" [ "$conns1" = 0 ]
check "helperd still alive" kill -0 "$HELPERD_PID"
finish
