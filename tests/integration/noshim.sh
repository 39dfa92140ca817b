#!/bin/bash
# Programs the shim cannot reach (issue 15): a static Go program
# (CGO_ENABLED=0), static busybox wget and nc, and a setuid copy of nc
# (the loader drops LD_PRELOAD for it) reach mesh services by name through
# helperd's DNS server and served addresses, with the identity of the
# connecting socket's owner (uid, or systemd unit through the cgroup);
# under default deny an unmatched process (nobody) is refused and logged
# with its pid; a deny cuts them, live connections included.
. "$(dirname "$0")/lib.sh"
for p in dig go busybox setpriv; do
	command -v "$p" >/dev/null || skip_test "$p not installed"
done
[ "$(id -u)" = 0 ] || skip_test "needs root (setuid copy, cgroups, other uids)"

ECHO=$(free_port)
HTTPP=$(free_port)
UP1=$(free_port)
UP2=$(free_port)
UP3=$(free_port)
UNIT="meshtest-billing-$$.service"
services="services = (
  { name = \"socat\"; port = $ECHO; connect = {}; },
  { name = \"http\"; port = $HTTPP; connect = {}; },
  { name = \"web\"; port = 0; user = \"root\";
    upstreams = ( { destination_name = \"socat\"; local_bind_port = $UP1; },
                  { destination_name = \"http\"; local_bind_port = $UP2; } ); },
  { name = \"billing\"; port = 0; unit = \"$UNIT\";
    upstreams = ( { destination_name = \"socat\"; local_bind_port = $UP3; } ); } );"
write_conf n1 'default_intention = "deny";' 'check_interval = "1s";' "$services"
start_echo "$ECHO"
mkdir -p "$T/www"
echo "hello from http" > "$T/www/hello.txt"
python3 -m http.server --bind 127.0.0.1 --directory "$T/www" "$HTTPP" \
    >/dev/null 2>&1 &
PIDS="$PIDS $!"
wait_port "$HTTPP"
LOGLEVEL=debug start_helperd n1 || exit 1
LOG=$T/n1/helperd.log
for pair in "web socat" "web http" "billing socat"; do
	# shellcheck disable=SC2086
	"$MESHCTL" intention create -allow $pair >/dev/null
done
# Both services passing before the first connection.
for s in socat http; do
	for _ in $(seq 100); do
		curl -s "http://$HTTP_ADDR/v1/health/connect/$s?passing" |
		    grep -q '"Status"' && break
		sleep 0.1
	done
done

q() { dig +tries=1 +time=2 +short @127.0.0.1 -p "$DNS_PORT" "$@"; }
A=$(q socat.service.mesh)
AH=$(q http.service.mesh)
check "dig: socat.service.mesh = $A, http.service.mesh = $AH" \
    sh -c "[ -n '$A' ] && [ -n '$AH' ] && [ '$A' != '$AH' ]"
wait_port "$UP1" "$A"

# 1. A static Go program: its own resolver (pointed at helperd's DNS) and
#    its own syscalls. Built here, into the temp dir.
mkdir -p "$T/go"
cp "$SRCDIR/tests/integration/noshim/client.go" "$T/go/"
(cd "$T/go" && CGO_ENABLED=0 GO111MODULE=off GOCACHE="$T/go/cache" \
    GOPATH="$T/go/path" go build -o client client.go) >"$T/go/build.log" 2>&1
check "Go client builds with CGO_ENABLED=0" test -x "$T/go/client"
check "... and is a static binary (no loader, no LD_PRELOAD)" \
    sh -c "! ldd '$T/go/client' >/dev/null 2>&1"
"$T/go/client" -dns "127.0.0.1:$DNS_PORT" -name socat.service.mesh \
    >"$T/go1.out" 2>&1
check "Go: resolves socat.service.mesh, port from SRV, echo ($(tr '\n' ' ' <"$T/go1.out"))" \
    grep -q "echo: hello-from-go" "$T/go1.out"
check "Go: connected to the served address and port ($A:$UP1)" \
    grep -q "connected $A:$UP1" "$T/go1.out"
check "Go: helperd names it web (uid 0 = web's user)" \
    grep -q "served $A:$UP1 (socat): pid [0-9]* (client) uid 0 unit .* is web" "$LOG"

# 2. Static busybox: nc and wget. busybox resolves through
#    /etc/resolv.conf (no port): the name is resolved with dig above.
out=$(printf 'bb-nc\n' | timeout 5 busybox nc -w 2 "$A" "$UP1" 2>&1)
check "busybox nc (static) to $A:$UP1: echo ($out)" test "$out" = bb-nc
out=$(timeout 5 busybox wget -q -O - "http://$AH:$UP2/hello.txt" 2>&1)
check "busybox wget (static) to http://$AH:$UP2/: ($out)" \
    test "$out" = "hello from http"

# 3. A setuid copy of nc: the loader drops LD_PRELOAD (secure-exec).
cp "$(command -v nc)" "$T/nc-suid"
chown root:root "$T/nc-suid"
chmod 4755 "$T/nc-suid"
NOBODY="setpriv --reuid=nobody --regid=nogroup --clear-groups"
FREE=$(free_port)
# With the shim, nc reaches 127.0.0.1:$FREE (an upstream) ...
out=$(printf 'shim\n' | env LD_PRELOAD="$SHIM" MESH_SERVICE=web \
    MESH_UPSTREAMS="socat:$FREE" timeout 5 nc -N 127.0.0.1 "$FREE" 2>&1)
check "control: plain nc with the shim reaches the upstream ($out)" \
    test "$out" = shim
# ... the setuid copy, run by nobody with the same environment, does not:
# the shim is not loaded.
out=$(printf 'suid\n' | $NOBODY env LD_PRELOAD="$SHIM" MESH_SERVICE=web \
    MESH_UPSTREAMS="socat:$FREE" timeout 5 "$T/nc-suid" -N 127.0.0.1 \
    "$FREE" 2>&1)
check "setuid nc: LD_PRELOAD is dropped (no route to $FREE: $out)" \
    sh -c "[ '$out' != suid ]"
out=$(printf 'suid\n' | $NOBODY timeout 5 "$T/nc-suid" -N "$A" "$UP1" 2>&1)
check "setuid nc via the served address: echo ($out)" test "$out" = suid
check "setuid nc: identity from its socket's owner (euid 0 = web)" \
    grep -q "served $A:$UP1 (socat): pid [0-9]* (nc-suid) uid 0 unit .* is web" "$LOG"

# 4. Default deny: nobody matches no service: refused, logged with pid.
out=$(printf 'nobody\n' | $NOBODY timeout 5 busybox nc -w 2 "$A" "$UP1" 2>&1)
check "nobody (no service's user or unit) is refused ($out)" \
    sh -c "[ '$out' != nobody ]"
check "... logged with its pid, process, uid and unit" \
    grep -qE "served $A:$UP1 \(socat\): refused pid [1-9][0-9]* \(busybox\) uid 65534 unit .*matches no service" "$LOG"

# 5. Identity from the systemd unit: a process in the cgroup $UNIT (as
#    systemd would start it) is billing, whatever its uid.
CG=""
# The cgroup goes with the test (its last tasks may take a moment to leave).
rm_cg() {
	[ -n "$CG" ] || return 0
	for _ in $(seq 50); do rmdir "$CG" 2>/dev/null && return 0; sleep 0.1; done
	echo "# could not remove $CG"
}
AT_EXIT=rm_cg
for d in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd /sys/fs/cgroup; do
	if [ -w "$d" ] && mkdir "$d/$UNIT" 2>/dev/null; then
		CG="$d/$UNIT"
		break
	fi
done
in_unit() { sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG" "$@"; }
if [ -n "$CG" ]; then
	out=$(printf 'unit\n' | in_unit timeout 5 busybox nc -w 2 "$A" "$UP3" 2>&1)
	check "a program in $UNIT reaches socat ($out)" test "$out" = unit
	check "... as billing (identity from the unit)" \
	    grep -q "served $A:$UP3 (socat): pid [0-9]* (busybox) uid 0 unit $UNIT is billing" "$LOG"
	"$MESHCTL" intention create -deny -replace billing socat >/dev/null
	out=$(printf 'unit2\n' | in_unit timeout 5 busybox nc -w 2 "$A" "$UP3" 2>&1)
	check "deny billing => socat refuses the unit's program ($out)" \
	    sh -c "[ '$out' != unit2 ]"
	check "... logged with its pid and unit" \
	    grep -qE "denied billing \(pid [1-9][0-9]* busybox uid 0 unit $UNIT\) => socat" "$LOG"
	out=$(printf 'web\n' | timeout 5 busybox nc -w 2 "$A" "$UP3" 2>&1)
	check "... while root outside the unit (web) still gets through ($out)" \
	    test "$out" = web
else
	skip "identity from the systemd unit" "no writable cgroup hierarchy"
fi

# 6. Live cuts: a deny closes open connections of programs without the
#    shim, and refuses new ones.
"$T/go/client" -dns "127.0.0.1:$DNS_PORT" -name socat.service.mesh -hold \
    >"$T/go2.out" 2>&1 &
GOPID=$!
PIDS="$PIDS $GOPID"
(while :; do echo ping; sleep 0.1; done) | busybox nc "$A" "$UP1" \
    >"$T/bbhold.out" 2>&1 &
BBPID=$!
PIDS="$PIDS $BBPID"
for _ in $(seq 100); do grep -q "echo: hello" "$T/go2.out" && break; sleep 0.1; done
for _ in $(seq 100); do [ -s "$T/bbhold.out" ] && break; sleep 0.1; done
check "Go client holds a connection" grep -q "echo: hello" "$T/go2.out"
check "busybox nc holds a connection" test -s "$T/bbhold.out"
t0=$(python3 -c 'import time; print(time.time())')
"$MESHCTL" intention create -deny -replace web socat >/dev/null
"$MESHCTL" intention create -deny -replace web http >/dev/null
for _ in $(seq 50); do grep -q "^cut at" "$T/go2.out" && break; sleep 0.1; done
cut=$(sed -n 's/^cut at \([0-9.]*\):.*/\1/p' "$T/go2.out")
dt=$(python3 -c "import sys; print('%.3f' % (float(sys.argv[1]) - float(sys.argv[2])) if sys.argv[1] else 'open')" "$cut" "$t0")
# The contract is 1 s; the bound here leaves room for a loaded machine.
check "deny web => socat cuts the Go client's open connection (after $dt s)" \
    python3 -c "import sys; sys.exit(0 if '$dt' != 'open' and float('$dt') <= 3 else 1)"
for _ in $(seq 30); do kill -0 "$BBPID" 2>/dev/null || break; sleep 0.1; done
check "... and busybox nc's (it exited)" sh -c "! kill -0 $BBPID 2>/dev/null"
check "... logged as closed by the deny" \
    grep -q "closing outbound connection [0-9]* web => socat" "$LOG"
"$T/go/client" -dns "127.0.0.1:$DNS_PORT" -name socat.service.mesh \
    >"$T/go3.out" 2>&1
check "Go: a new connection is refused while denied" \
    sh -c "! grep -q 'echo: hello' '$T/go3.out'"
out=$(timeout 5 busybox wget -q -O - "http://$AH:$UP2/hello.txt" 2>&1)
check "busybox wget is refused while web => http is denied" \
    sh -c "[ '$out' != 'hello from http' ]"
out=$(printf 'suid\n' | $NOBODY timeout 5 "$T/nc-suid" -N "$A" "$UP1" 2>&1)
check "setuid nc is refused while denied" sh -c "[ '$out' != suid ]"
"$MESHCTL" intention create -allow -replace web socat >/dev/null
out=$(printf 'again\n' | timeout 5 busybox nc -w 2 "$A" "$UP1" 2>&1)
check "allowed again: busybox nc gets through ($out)" test "$out" = again

check "helperd still runs" kill -0 "$HELPERD_PID"
kill "$GOPID" "$BBPID" 2>/dev/null
finish
