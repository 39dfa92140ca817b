#!/bin/bash
# Server side and identity: a strict service (shim loaded in the server)
# refuses connections that did not come through the mesh while mesh
# connections work; a service restricted to a user can only be claimed by
# processes of that uid (SO_PEERCRED on the control socket).
. "$(dirname "$0")/lib.sh"

ECHO=$(free_port); UP=$(free_port); UP2=$(free_port)
# socat starts after helperd (it needs the control socket): check every
# second, so that it is dialled within a second of listening.
write_conf n1 'check_interval = "1s";' "services = (
  { name = \"socat\"; port = $ECHO; connect = {}; inbound = \"strict\"; },
  { name = \"db\"; port = 1; user = \"nobody\"; },
  { name = \"web\"; port = 2; } );"
start_helperd n1 || { fail "helperd starts"; finish; exit 1; }
# The echo server itself runs with the shim, as service socat.
LD_PRELOAD="$SHIM" MESH_SERVICE=socat socat tcp-l:"$ECHO",fork,reuseaddr exec:/bin/cat >/dev/null 2>&1 &
PIDS="$PIDS $!"
wait_port "$ECHO"
for _ in $(seq 30); do
	curl -s "http://$HTTP_ADDR/v1/health/service/socat?passing" | grep -q '"socat"' && break
	sleep 0.1
done

out=$(echo_through "$UP" web "socat:$UP")
check "mesh connection to the strict service echoes" [ "$out" = "hello-$UP" ]
out=$(printf 'direct\n' | timeout 5 nc -N 127.0.0.1 "$ECHO" 2>&1)
check "a direct connection to the strict service's port gets nothing" [ -z "$out" ]
out=$(echo_through "$UP" web "socat:$UP")
check "... and mesh connections still work after it" [ "$out" = "hello-$UP" ]

# SO_PEERCRED: only uid nobody (or root) may act as db.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	as() { u=$1; shift; setpriv --reuid="$(id -u "$u")" --regid="$(id -g "$u")" --clear-groups "$@"; }
	# The other uids must be able to load the shim: the build tree may
	# not be readable to them (a clone under /root, mode 0700).
	USHIM="$T/libmeshshim.so"
	cp "$SHIM" "$USHIM" && chmod 0644 "$USHIM"
	out=$(printf 'x\n' | as nobody env LD_PRELOAD="$USHIM" MESH_SERVICE=db MESH_UPSTREAMS="socat:$UP2" \
	    timeout 5 nc -N 127.0.0.1 "$UP2" 2>&1)
	check "uid nobody may act as db (user = \"nobody\")" [ "$out" = x ]
	out=$(printf 'x\n' | as daemon env LD_PRELOAD="$USHIM" MESH_SERVICE=db MESH_UPSTREAMS="socat:$UP2" \
	    timeout 5 nc -N 127.0.0.1 "$UP2" 2>&1)
	check "uid daemon may not act as db: connect refused ($out)" sh -c "! printf '%s' \"\$1\" | grep -qx x" _ "$out"
	grep -q "may not act as db" "$T/n1/helperd.log"
	check "helperd logs the refused identity" [ $? = 0 ]
	out=$(printf 'x\n' | as daemon env LD_PRELOAD="$USHIM" MESH_SERVICE=web MESH_UPSTREAMS="socat:$UP2" \
	    timeout 5 nc -N 127.0.0.1 "$UP2" 2>&1)
	check "uid daemon may act as an unrestricted (configured) service" [ "$out" = x ]
	# A name nothing defines needs a grant (root or a token): not daemon.
	out=$(printf 'x\n' | as daemon env LD_PRELOAD="$USHIM" MESH_SERVICE=nosuch MESH_UPSTREAMS="socat:$UP2" \
	    timeout 5 nc -N 127.0.0.1 "$UP2" 2>&1)
	check "uid daemon may not claim an undefined name ($out)" sh -c "! printf '%s' \"\$1\" | grep -qx x" _ "$out"
else
	skip "SO_PEERCRED: uid nobody may act as db, uid daemon may not" "needs root and setpriv"
fi
check "helperd still alive" kill -0 "$HELPERD_PID"
finish
