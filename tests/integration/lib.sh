# Shared by the integration tests: a temp dir, real daemons on ports they
# pick themselves, a trap that stops every pid started, pass/fail/skip
# counting, and one place that fails the test on any helperd that exited
# non-zero or any sanitizer report in a log (see cleanup).
# Environment (set by meson): HELPERD MESHCTL SHIM SRCDIR BUILDDIR.
# CI=true or MESH_TEST_STRICT=1: a missing prerequisite is a failure, not
# a skip (CI installs everything the README claims is covered).
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
SKIP=0
# helperd processes to account for at exit: "PID:LOG" words, and the exit
# status of those already reaped (stop_helperd, wait_helperd) or killed on
# purpose (helperd_killed).
HELPERDS=""
declare -A HELPERD_RC=()
export MESH_LOG=${MESH_LOG_TEST:-}
# ACLs are on outside -dev: the helperds of a test share one management
# token (acl.initial_management, see write_conf) that curl sends (a
# curlrc only root reads; `curl -q` skips it) and meshctl finds helperd's
# unix socket by itself.
MESH_TEST_TOKEN=$(cat /proc/sys/kernel/random/uuid)
(umask 077; printf 'header = "X-Consul-Token: %s"\n' "$MESH_TEST_TOKEN" > "$T/.curlrc")
export CURL_HOME=$T
# Sanitized helperd: report leaks and errors, never fail silently.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$SRCDIR/tests/lsan.supp}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# track_helperd PID LOG: a helperd started without start_helperd; cleanup
# checks its exit status and its log like the others.
track_helperd() { HELPERDS="$HELPERDS $1:$2"; PIDS="$PIDS $1"; }
# wait_helperd PID: wait for a helperd that is stopping, record and return
# its exit status (a later wait on it could not see the status again).
wait_helperd() {
	wait "$1"; rc_=$?
	HELPERD_RC[$1]=$rc_
	return "$rc_"
}
# helperd_killed PID: a helperd this test kills with SIGKILL on purpose;
# its exit status is not a failure (its log is still checked).
helperd_killed() { kill -KILL "$1" 2>/dev/null; wait "$1" 2>/dev/null; HELPERD_RC[$1]=killed; }

# helperd_reports: one line per helperd that exited non-zero (other than
# by helperd_killed) and per log with a sanitizer report; status 1 if any.
helperd_reports() {
	bad_=0
	for e in $HELPERDS; do
		p_=${e%%:*} log_=${e#*:}
		rc_=${HELPERD_RC[$p_]:-}
		if [ -z "$rc_" ]; then
			kill -TERM "$p_" 2>/dev/null
			# helperd stops on SIGTERM; one that does not within
			# 30 s is a failure, not a hung test
			for _ in $(seq 300); do
				kill -0 "$p_" 2>/dev/null || break
				sleep 0.1
			done
			if kill -0 "$p_" 2>/dev/null; then
				echo "FAIL - helperd $p_ still running 30 s after SIGTERM (log: $log_)"
				bad_=1
				kill -QUIT "$p_" 2>/dev/null; sleep 1; kill -KILL "$p_" 2>/dev/null
			fi
			wait "$p_" 2>/dev/null; rc_=$?
			HELPERD_RC[$p_]=$rc_
		fi
		case $rc_ in
		0|killed) ;;
		127) # reaped by a plain `wait` in the test: status unknown here
		     # (use stop_helperd / wait_helperd); its log is still read
		     echo "# helperd $p_: exit status not seen (waited for outside lib.sh)" ;;
		*) echo "FAIL - helperd $p_ exited with status $rc_ (log: $log_)"; bad_=1 ;;
		esac
	done
	# Any log of this run: helperd's (including runs a test started by
	# hand), meshctl connect proxy's, the shim's stderr.
	for f in $(find "$T" -type f \( -name '*.log' -o -name '*.err' \) 2>/dev/null); do
		if grep -aqE 'Sanitizer|runtime error' "$f"; then
			echo "FAIL - sanitizer report in $f:"
			grep -aE -m 10 'Sanitizer|runtime error|SUMMARY' "$f" | sed 's/^/    /'
			bad_=1
		fi
	done
	return "$bad_"
}

# AT_EXIT: shell commands a test adds to run after its processes are
# stopped (e.g. deleting a network namespace). Do not replace the trap.
AT_EXIT=""
cleanup() {
	rc_exit=$?
	helperd_reports || { FAIL=$((FAIL + 1)); rc_exit=1; }
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	[ -n "$AT_EXIT" ] && eval "$AT_EXIT"
	if [ "$FAIL" -gt 0 ] || [ "$rc_exit" != 0 ] || [ -n "${KEEP:-}" ]; then
		echo "# logs kept in $T"
	else
		rm -rf "$T"
	fi
	exit "$rc_exit"
}
trap cleanup EXIT

strict() { [ "${CI:-}" = true ] || [ -n "${MESH_TEST_STRICT:-}" ]; }
ok() { PASS=$((PASS + 1)); echo "ok   - $*"; }
fail() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
# check "description" command [args...]: ok if that one command exits 0.
# Only the command is tested: `check "d" [ A ] && [ B ]` would test A
# alone (tests/lint_tests.py refuses it). For more than one command use
# check_expr.
check() {
	desc=$1; shift
	if "$@"; then ok "$desc"; else fail "$desc"; fi
}
# check_expr "description" 'shell expression': ok if the whole expression
# (&&, ||, !, pipes, functions) is true. Give it in single quotes: it is
# evaluated here, with the variables as they are now.
check_expr() {
	desc=$1
	[ $# -eq 2 ] || { fail "$desc (check_expr takes one expression)"; return; }
	if eval "$2"; then ok "$desc"; else fail "$desc"; fi
}
# skip "description" "reason": a check that cannot run here. Printed as a
# SKIP line (scripts/run-tests.sh counts them) and never counted as
# passed; under CI=true / MESH_TEST_STRICT=1 it is a failure.
skip() {
	if strict; then
		fail "$1 (not run: $2)"
	else
		SKIP=$((SKIP + 1)); echo "SKIP - $1 (not run: $2)"
	fi
}
finish() {
	echo "$PASS passed, $FAIL failed, $SKIP skipped"
	[ "$FAIL" -eq 0 ] && [ "$PASS" -gt 0 ]
}
# skip_test "reason": the whole test cannot run here (meson's SKIP, exit
# 77); under CI=true / MESH_TEST_STRICT=1 a failure (exit 1).
skip_test() {
	trap - EXIT
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	[ -n "$AT_EXIT" ] && eval "$AT_EXIT"
	rm -rf "$T"
	if strict; then echo "FAIL - prerequisite missing: $*"; exit 1; fi
	echo "SKIP: $*"; exit 77
}

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
		case "$*" in *"acl ="*|*"acl="*) ;;
		*) echo "acl = { initial_management = \"$MESH_TEST_TOKEN\"; };" ;; esac
		for l in "$@"; do echo "$l"; done
	} > "$T/$n/mesh.conf"
}

# start_helperd NAME: starts helperd -c $T/NAME/mesh.conf (and
# $HELPERD_ARGS), waits for its ports.json, sets HTTP_ADDR, MESH_PORT,
# MESH_SOCKET, HELPERD_PID.
start_helperd() {
	n=$1
	rm -f "$T/$n/data/ports.json"
	"$HELPERD" -c "$T/$n/mesh.conf" -log-level "${LOGLEVEL:-info}" \
	    ${HELPERD_ARGS:-} >>"$T/$n/helperd.log" 2>&1 &
	HELPERD_PID=$!
	track_helperd "$HELPERD_PID" "$T/$n/helperd.log"
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
	wait_helperd "$1"
}

# wait_until SECONDS cmd...: run cmd every 0.1 s until it succeeds (0) or
# SECONDS (whole) have passed (1). bash's clock: no process per poll.
wait_until() {
	local lim=$1 end
	shift
	end=$(( ${EPOCHREALTIME/./} / 1000 + lim * 1000 ))
	while :; do
		"$@" && return 0
		[ $(( ${EPOCHREALTIME/./} / 1000 )) -lt "$end" ] || return 1
		sleep 0.1
	done
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
