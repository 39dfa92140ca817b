# Shared by the integration tests: a temp dir, real daemons on ports they
# pick themselves, a trap that stops every pid started, pass/fail counting.
# Environment (set by meson): HELPERD MESHCTL SHIM SRCDIR BUILDDIR.
set -u

: "${HELPERD:?HELPERD not set (run through meson test)}"
: "${MESHCTL:?}" "${SHIM:?}" "${SRCDIR:?}"

T=$(mktemp -d /tmp/meshtest.XXXXXX)
# Services may run as other users (nginx workers drop to www-data): they
# must reach the control socket, as in /run/meshshim (0755).
chmod 0755 "$T"
PIDS=""
PASS=0
FAIL=0
export MESH_LOG=${MESH_LOG_TEST:-}
# Sanitized helperd: report leaks and errors, never fail silently.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$SRCDIR/tests/lsan.supp}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	if [ "$FAIL" -gt 0 ] || [ -n "${KEEP:-}" ]; then
		echo "# logs kept in $T"
	else
		rm -rf "$T"
	fi
}
trap cleanup EXIT

ok() { PASS=$((PASS + 1)); echo "ok   - $*"; }
fail() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
check() { # check "description" command...
	desc=$1; shift
	if "$@"; then ok "$desc"; else fail "$desc"; fi
}
finish() {
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ]
}
skip_test() { echo "SKIP: $*"; trap - EXIT; rm -rf "$T"; exit 77; }

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # wait_port PORT [HOST]
	for _ in $(seq 1 100); do
		if python3 -c 'import socket,sys; socket.create_connection((sys.argv[2], int(sys.argv[1])), 0.2).close()' "$1" "${2:-127.0.0.1}" 2>/dev/null; then
			return 0
		fi
		sleep 0.05
	done
	echo "port $1 never opened" >&2
	return 1
}

# An echo service like the seed's: socat ... exec:/bin/cat
start_echo() { # start_echo PORT
	socat tcp-l:"$1",fork,reuseaddr exec:/bin/cat >/dev/null 2>&1 &
	PIDS="$PIDS $!"
	wait_port "$1"
}

# A loopback /24 for this test's served addresses (127.100-249.x.0/24),
# the same for every node of the test.
SERVED_BLOCK="127.$((100 + RANDOM % 150)).$((RANDOM % 256)).0/24"
served_block() { echo "$SERVED_BLOCK"; }

# write_conf NAME [extra libconfig lines...]: $T/NAME/mesh.conf
write_conf() {
	n=$1; shift
	mkdir -p "$T/$n/services.d"
	{
		echo "node = \"$n\";"
		echo "data_dir = \"$T/$n/data\";"
		echo "socket = \"$T/$n/helperd.sock\";"
		echo "http_addr = \"127.0.0.1:0\";"
		echo "mesh_port = 0;"
		echo "services_dir = \"$T/$n/services.d\";"
		# The DNS server on a free port, and served addresses in a
		# block of this test's own: tests run beside each other.
		case " $* " in *dns_addr*) ;; *)
			echo "dns_addr = \"127.0.0.1:0\";" ;; esac
		case " $* " in *served_addrs*) ;; *)
			echo "served_addrs = \"$(served_block)\";" ;; esac
		for l in "$@"; do echo "$l"; done
	} > "$T/$n/mesh.conf"
}

# start_helperd NAME: starts helperd -c $T/NAME/mesh.conf, waits for its
# ports.json, sets HTTP_ADDR, MESH_PORT, MESH_SOCKET, HELPERD_PID.
start_helperd() {
	n=$1
	rm -f "$T/$n/data/ports.json"
	"$HELPERD" -c "$T/$n/mesh.conf" -log-level "${LOGLEVEL:-info}" \
	    >>"$T/$n/helperd.log" 2>&1 &
	HELPERD_PID=$!
	PIDS="$PIDS $HELPERD_PID"
	for _ in $(seq 1 200); do
		[ -s "$T/$n/data/ports.json" ] && break
		if ! kill -0 "$HELPERD_PID" 2>/dev/null; then
			echo "helperd $n died:"; cat "$T/$n/helperd.log"; return 1
		fi
		sleep 0.05
	done
	[ -s "$T/$n/data/ports.json" ] || { echo "helperd $n: no ports.json"; return 1; }
	HTTP_ADDR=$(jq_get "$T/$n/data/ports.json" http_addr)
	MESH_PORT=$(jq_get "$T/$n/data/ports.json" mesh_port)
	DNS_ADDR=$(jq_get "$T/$n/data/ports.json" dns_addr)
	DNS_PORT=${DNS_ADDR##*:}
	MESH_SOCKET="$T/$n/helperd.sock"
	export MESH_HTTP_ADDR="$HTTP_ADDR" MESH_SOCKET
}

stop_helperd() { # stop_helperd PID: SIGTERM, wait, return its exit code
	kill -TERM "$1" 2>/dev/null
	wait "$1"
}

jq_get() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# Run a program with the shim as service $1.
meshed() { svc=$1; shift; env LD_PRELOAD="$SHIM" MESH_SERVICE="$svc" "$@"; }

# echo_through PORT [SERVICE] [UPSTREAMS]: send a line through the mesh with
# nc; prints what came back.
echo_through() {
	port=$1 svc=${2:-web} ups=${3:-}
	printf 'hello-%s\n' "$port" | env LD_PRELOAD="$SHIM" MESH_SERVICE="$svc" \
	    ${ups:+MESH_UPSTREAMS=$ups} timeout 5 nc -N 127.0.0.1 "$port" 2>/dev/null
}

api() { curl -s -o "$T/api.out" -w '%{http_code}' "$@"; }
