#!/bin/bash
# reload_soak.sh BUILD_DIR: the soak of issue 19, as an operator runs it.
# 64 clients connect, echo one line and close, through the shim to a
# socat echo service for 60 s, while helperd is reloaded 200 times over
# the minute (SIGHUP, PUT /v1/agent/reload, `meshctl reload`, API
# registrations and deregistrations of another service, in turn; every
# 10th reload changes the echo service's definition). Prints the
# connections, the failures by kind, the reloads, what helperd logged
# about refusals and resets, and helperd's RSS and fd count before and
# after. Run it on a release build without sanitizers, on a quiet machine:
#
#   meson setup /tmp/build-rel --buildtype=release && ninja -C /tmp/build-rel
#   bash bench/reload_soak.sh /tmp/build-rel
#
# Knobs (environment): SOAK_CLIENTS (64), SOAK_SECS (60), SOAK_RELOADS
# (200), SOAK_KEEP=1 keeps the temp dir. Exit 0 when no connection and no
# reload failed. Not a test: it asserts nothing about speed.
set -u
B=${1:?usage: reload_soak.sh BUILD_DIR}
B=$(cd "$B" && pwd)
HELPERD=$B/helperd/helperd MESHCTL=$B/meshctl/meshctl
SHIM=$B/preload/libmeshshim.so
PY=$(cd "$(dirname "$0")/.." && pwd)/tests/integration/reload_load.py
CLIENTS=${SOAK_CLIENTS:-64} SECS=${SOAK_SECS:-60} RELOADS=${SOAK_RELOADS:-200}
for f in "$HELPERD" "$MESHCTL" "$SHIM"; do
	[ -x "$f" ] || [ -f "$f" ] || { echo "no $f: build first" >&2; exit 2; }
done
command -v socat >/dev/null || { echo "socat is needed (scripts/deps.sh test)" >&2; exit 2; }
if grep -q "b_sanitize=address\|-fsanitize" "$B/build.ninja" 2>/dev/null; then
	echo "# note: $B is built with sanitizers: the figures are not a release build's"
fi

T=$(mktemp -d /tmp/reload-soak.XXXXXX)
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	if [ -n "${SOAK_KEEP:-}" ]; then echo "# kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
ECHO=$(free_port) UP=$(free_port) OTHER=$(free_port)
TOKEN=$(cat /proc/sys/kernel/random/uuid)
socat tcp-l:"$ECHO",fork,reuseaddr,backlog=256 exec:/bin/cat >/dev/null 2>&1 &
PIDS="$PIDS $!"
mkdir -p "$T/services.d"
cat > "$T/mesh.conf" <<EOC
node = "soak";
data_dir = "$T/data";
socket = "$T/helperd.sock";
http_addr = "127.0.0.1:0";
mesh_port = 0;
dns_addr = "127.0.0.1:0";
services_dir = "$T/services.d";
check_interval = "1s";
acl = { initial_management = "$TOKEN"; };
EOC
web="{ name = \"web\"; upstreams = ( { destination_name = \"echo\"; local_bind_port = $UP; } ); }"
SVC=$T/services.d/svc.conf
echo "services = ( { name = \"echo\"; port = $ECHO; connect = {}; }, $web );" > "$SVC.a"
cat > "$SVC.b" <<EOC
services = ( { name = "echo"; port = $ECHO; connect = {};
               check = { tcp = "127.0.0.1:$ECHO"; interval = "1s";
                         success_before_passing = 2;
                         failures_before_critical = 3; }; }, $web );
EOC
cp "$SVC.a" "$SVC"
"$HELPERD" -c "$T/mesh.conf" > "$T/helperd.log" 2>&1 &
HP=$!; PIDS="$PIDS $HP"
for _ in $(seq 200); do [ -s "$T/data/ports.json" ] && break; sleep 0.05; done
[ -s "$T/data/ports.json" ] || { echo "helperd did not start:"; cat "$T/helperd.log"; exit 1; }
HTTP=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["http_addr"])' "$T/data/ports.json")
export MESH_SOCKET=$T/helperd.sock MESH_HTTP_ADDR=$HTTP
rss_fds() {
	echo "RSS $(awk '/^VmRSS/ {print $2 " " $3}' /proc/"$HP"/status), $(ls /proc/"$HP"/fd | wc -l) fds"
}
out=$(printf 'hello\n' | LD_PRELOAD="$SHIM" MESH_SERVICE=web timeout 5 nc -N 127.0.0.1 "$UP")
[ "$out" = hello ] || { echo "no echo through the mesh (got '$out')"; cat "$T/helperd.log"; exit 1; }
sleep 1
before=$(rss_fds)
PAUSE=$(python3 -c "print($SECS / $RELOADS)")
echo "# $CLIENTS clients for ${SECS}s, $RELOADS reloads (one every ${PAUSE}s), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
MESH_TEST_TOKEN=$TOKEN python3 "$PY" reload "$SECS" "$PAUSE" "$HP" "$HTTP" \
    "$MESHCTL" "$OTHER" "$SVC" > "$T/reload.out" 2>&1 &
RL=$!
load=$(LD_PRELOAD="$SHIM" MESH_SERVICE=web python3 "$PY" load "$UP" "$CLIENTS" "$SECS" 2>&1)
lrc=$?
wait "$RL"; rrc=$?
sleep 2            # connections and checks settle
after=$(rss_fds)
L=$T/helperd.log
echo "connections:  $load"
echo "reloads:      $(cat "$T/reload.out")"
echo "helperd log:  $(grep -c 'reloaded: ' "$L") reloads, $(grep -c 'registered 1 service' "$L") registrations, $(grep -c 'echo changed: dialled on its previous' "$L") changes of echo served on the previous definition"
echo "              $(grep -c 'instance of echo' "$L") refusals for no (healthy) instance, $(grep -c 'never registered' "$L") 'never registered' resets, $(grep -c 'health: echo.* is critical' "$L") times echo critical"
echo "helperd:      before $before; after $after"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$lrc" = 0 ] && [ "$rrc" = 0 ]
