#!/bin/bash
# helperd -dev: embedded defaults (HTTP 127.0.0.1:8500, mesh port 21000,
# allow-all, services from /etc/meshshim.d, socket in /run/meshshim), a
# temporary data dir removed at exit. Skipped when a fixed port is taken.
. "$(dirname "$0")/lib.sh"
for p in 8500 21000; do
	(exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && skip_test "port $p is in use"
done
[ -w /run ] || skip_test "/run is not writable (helperd -dev puts its socket in /run/meshshim)"
[ -e /run/meshshim/helperd.sock ] && (echo PING | timeout 1 socat - UNIX-CONNECT:/run/meshshim/helperd.sock >/dev/null 2>&1) &&
	skip_test "a helperd already runs on /run/meshshim/helperd.sock"
"$HELPERD" -dev > "$T/dev.log" 2>&1 &
P=$!; PIDS="$PIDS $P"
for _ in $(seq 100); do curl -sf http://127.0.0.1:8500/v1/agent/self >/dev/null && break; sleep 0.05; done
dir=$(sed -n 's/.*dev mode: data in \([^ ]*\) .*/\1/p' "$T/dev.log")
check "helperd -dev answers on 127.0.0.1:8500" curl -sf http://127.0.0.1:8500/v1/agent/self -o /dev/null
check "its data dir exists ($dir)" test -d "$dir"
out=$(MESH_HTTP_ADDR= "$MESHCTL" intention check web db)
check "allow-all by default (meshctl with its default address: $out)" [ "$out" = Allowed ]
check "control socket in /run/meshshim" test -S /run/meshshim/helperd.sock
kill -TERM "$P"; wait "$P"; rc=$?
check "SIGTERM: exit 0" [ "$rc" = 0 ]
check "the temporary data dir is removed at exit" test ! -e "$dir"
check "the control socket is removed at exit" test ! -e /run/meshshim/helperd.sock
finish
