#!/bin/bash
# Silent by default no more (issue 11, part 11): what was ignored or
# failed is said once, on stderr (the shim) or in the reply (helperd
# -check, meshctl reload, POST /v1/agent/reload):
#   a preloaded program that cannot reach helperd; a misspelt key in a
#   Consul service JSON; a *.hcl file in services_dir; a reload that
#   changes what only a restart applies.
. "$(dirname "$0")/lib.sh"

ECHO=$(free_port)
start_echo "$ECHO"

# ---- the shim: one line on stderr per process, without MESH_LOG ---------
UP=$(free_port)
# conns.py PORT N: N connects to PORT (each refused here) in one process;
# prints how many failed with ECONNREFUSED.
cat > "$T/conns.py" <<'PY'
import errno, socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
refused = 0
for _ in range(n):
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", port))
    except OSError as e:
        refused += e.errno == errno.ECONNREFUSED
    s.close()
print(refused)
PY
chmod 0644 "$T/conns.py"
NOSOCK="$T/absent/helperd.sock"
out=$(env -u MESH_LOG LD_PRELOAD="$SHIM" MESH_SERVICE=web MESH_SOCKET="$NOSOCK" \
    MESH_UPSTREAMS="socat:$UP" python3 "$T/conns.py" "$UP" 3 2>"$T/shim1.err")
lines=$(grep -c "meshshim\[" "$T/shim1.err")
check "shim, helperd unreachable: the 3 connects fail with ECONNREFUSED ($out)" [ "$out" = 3 ]
check_expr "... and stderr has one line, naming the socket and errno: $(head -1 "$T/shim1.err")" \
    '[ "$lines" = 1 ] && grep -q "cannot reach helperd at $NOSOCK: No such file or directory (ENOENT)" "$T/shim1.err"'
out=$(LD_PRELOAD="$SHIM" MESH_LOG=0 MESH_SERVICE=web MESH_SOCKET="$NOSOCK" \
    MESH_UPSTREAMS="socat:$UP" python3 "$T/conns.py" "$UP" 3 2>"$T/shim0.err")
check "MESH_LOG=0: nothing on stderr ($(wc -c < "$T/shim0.err") bytes)" [ ! -s "$T/shim0.err" ]
out=$(LD_PRELOAD="$SHIM" MESH_LOG=1 MESH_SERVICE=web MESH_SOCKET="$NOSOCK" \
    MESH_UPSTREAMS="socat:$UP" python3 "$T/conns.py" "$UP" 3 2>"$T/shim2.err")
n=$(grep -c "cannot reach helperd" "$T/shim2.err")
check "MESH_LOG=1: every failure logged ($n lines)" [ "$n" -ge 3 ]
# fd 2 reused by the program for a socket (a daemon that closed stderr):
# the line is not written into its connection.
got=$(env -u MESH_LOG LD_PRELOAD="$SHIM" MESH_SERVICE=web MESH_SOCKET="$NOSOCK" \
    MESH_UPSTREAMS="socat:$UP" python3 - "$UP" <<'PY'
import os, socket, sys
a, b = socket.socketpair()
os.dup2(a.fileno(), 2)
s = socket.socket()
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError:
    pass
b.setblocking(False)
try:
    print(len(b.recv(4096)))
except BlockingIOError:
    print(0)
PY
)
check "fd 2 is the program's own socket: nothing written into it ($got bytes)" [ "$got" = 0 ]
# A bad MESH_UPSTREAMS entry is said once too.
env -u MESH_LOG LD_PRELOAD="$SHIM" MESH_SERVICE=web MESH_SOCKET="$NOSOCK" \
    MESH_UPSTREAMS="socat:nope" python3 -c 'print()' >/dev/null 2>"$T/shim3.err"
check "a bad MESH_UPSTREAMS entry: $(head -1 "$T/shim3.err")" grep -q 'MESH_UPSTREAMS: ignoring "socat:nope"' "$T/shim3.err"

# ---- helperd refuses the service: said once too ---------------------------
write_conf n1 "services = ( { name = \"socat\"; port = $ECHO; connect = {}; } );"
start_helperd n1 || { fail "helperd starts"; finish; exit 1; }
USHIM="$T/libmeshshim.so"
cp "$SHIM" "$USHIM" && chmod 0644 "$USHIM"
setpriv --reuid=nobody --regid=nogroup --clear-groups env -u MESH_LOG LD_PRELOAD="$USHIM" \
    MESH_SERVICE=ghost MESH_SOCKET="$MESH_SOCKET" MESH_UPSTREAMS="socat:$UP" \
    python3 "$T/conns.py" "$UP" 2 >/dev/null 2>"$T/shim4.err"
check_expr "uid nobody as an undefined service: one line: $(head -1 "$T/shim4.err")" \
    '[ "$(grep -c "meshshim\[" "$T/shim4.err")" = 1 ] && grep -q "refused service \"ghost\"" "$T/shim4.err"'

# ---- misspelt keys in a service JSON: -check, start, reload, the API ------
# fails_check DESC JSON PATTERN: helperd -check exits 1 naming the file
# and PATTERN.
SD="$T/n1/services.d"
fails_check() {
	printf '%s\n' "$2" > "$SD/web.json"
	out=$("$HELPERD" -c "$T/n1/mesh.conf" -check 2>&1); rc=$?
	if [ $rc = 1 ] && grep -qF "$SD/web.json:1: " <<<"$out" && grep -qF -- "$3" <<<"$out"; then
		ok "-check, $1: exit 1: $out"
	else
		fail "-check, $1: exit $rc (want 1 and '$3'): $out"
	fi
}
fails_check '"chekc"' '{"service": {"name": "web", "port": 8080, "chekc": {"tcp": "localhost:8080", "interval": "10s"}}}' \
    'service "web": unknown key "chekc" (did you mean "check"?)'
fails_check '"intreval" in a check' '{"service": {"name": "web", "port": 8080, "checks": [{"tcp": "localhost:8080", "intreval": "10s"}]}}' \
    'check 1: unknown key "intreval" (did you mean "interval"?)'
fails_check '"local_bind_prot" in an upstream' '{"service": {"name": "web", "connect": {"sidecar_service": {"proxy": {"upstreams": [{"destination_name": "socat", "local_bind_prot": 9191}]}}}}}' \
    'upstream 1: unknown key "local_bind_prot" (did you mean "local_bind_port"?)'
fails_check 'an unknown key far from any' '{"service": {"name": "web", "flavour": "x"}}' \
    'unknown key "flavour" (not a field of a Consul service definition'
# Consul's own fields that helperd does not use stay accepted.
printf '%s\n' '{"service": {"name": "web", "port": 8080, "tags": ["v1"], "meta": {"any": "thing"}, "EnableTagOverride": true, "check": {"TCP": "localhost:8080", "Interval": "10s", "Name": "web tcp", "DeregisterCriticalServiceAfter": "90m"}}}' > "$SD/web.json"
out=$("$HELPERD" -c "$T/n1/mesh.conf" -check 2>&1)
check "Consul fields helperd ignores (tags, meta, EnableTagOverride, check Name...): $out" grep -q "^Configuration OK" <<<"$out"
# A reload with a misspelt key: refused, the reason in the reply and the log.
printf '%s\n' '{"service": {"name": "web", "port": 8080, "chekc": {"tcp": "localhost:8080"}}}' > "$SD/web.json"
out=$("$MESHCTL" reload 2>&1); rc=$?
check_expr "meshctl reload with \"chekc\": exit $rc: $out" \
    '[ $rc = 1 ] && grep -qF "unknown key \"chekc\" (did you mean \"check\"?)" <<<"$out"'
check "... and the log says it" grep -qF 'unknown key "chekc"' "$T/n1/helperd.log"
code=$(api -X PUT --data '{"Name": "api9", "Port": 9009, "Chekc": {"TCP": "localhost:9009"}}' "http://$HTTP_ADDR/v1/agent/service/register")
check_expr "API register with \"Chekc\": $code $(cat "$T/api.out")" \
    '[ "$code" = 400 ] && grep -qF "unknown key \"Chekc\" (did you mean \"check\"?)" "$T/api.out"'
rm -f "$SD/web.json"

# ---- a *.hcl file in services_dir: skipped, and said --------------------
printf 'service {\n  name = "cache"\n  port = 6379\n}\n' > "$SD/cache.hcl"
out=$("$HELPERD" -c "$T/n1/mesh.conf" -check 2>&1); rc=$?
check_expr "-check with cache.hcl: exit $rc, says it is skipped: $(grep hcl <<<"$out")" \
    '[ $rc = 0 ] && grep -qF "$SD/cache.hcl: skipped: HCL is not supported; write the service definition as JSON (cache.json" <<<"$out"'
out=$("$MESHCTL" reload 2>&1); rc=$?
check_expr "meshctl reload with cache.hcl: exit $rc: $out" \
    '[ $rc = 0 ] && grep -q "^Configuration reload triggered" <<<"$out" && grep -qF "Warning: $SD/cache.hcl: skipped: HCL is not supported" <<<"$out"'
check "... and the log says it" grep -qF "$SD/cache.hcl: skipped: HCL is not supported" "$T/n1/helperd.log"
stop_helperd "$HELPERD_PID"
: > "$T/n1/helperd.log"
start_helperd n1 || fail "helperd starts again"
check "at start too, the log says cache.hcl is skipped" grep -qF "$SD/cache.hcl: skipped" "$T/n1/helperd.log"
rm -f "$SD/cache.hcl"

# ---- a reload that changes what only a restart applies ------------------
out=$("$MESHCTL" reload 2>&1); rc=$?
check_expr "meshctl reload with nothing changed: exit $rc, no warning: $out" \
    '[ $rc = 0 ] && [ "$out" = "Configuration reload triggered" ]'
NEWPORT=$(free_port)
sed -i "s/^mesh_port = 0;/mesh_port = $NEWPORT;/" "$T/n1/mesh.conf"
printf 'max_conns = 100;\ndefault_intention = "deny";\n' >> "$T/n1/mesh.conf"
out=$("$MESHCTL" reload 2>&1); rc=$?
check_expr "meshctl reload with mesh_port and max_conns changed: exit $rc: $out" \
    '[ $rc = 0 ] && grep -q "^Warning: reload: not applied until helperd restarts: mesh_port, max_conns (the running values stay in use)$" <<<"$out"'
check_expr "... default_intention (applied live) is not in that list" '! grep -q default_intention <<<"$out"'
code=$(api -X PUT "http://$HTTP_ADDR/v1/agent/reload")
check_expr "PUT /v1/agent/reload: $code, the reply says it too: $(cat "$T/api.out")" \
    '[ "$code" = 200 ] && grep -q "not applied until helperd restarts: mesh_port, max_conns" "$T/api.out"'
check "... and the log" grep -q "reload: not applied until helperd restarts: mesh_port, max_conns" "$T/n1/helperd.log"
check "helperd still on its old mesh port $MESH_PORT" [ "$(jq_get "$T/n1/data/ports.json" mesh_port)" = "$MESH_PORT" ]

stop_helperd "$HELPERD_PID"
finish
