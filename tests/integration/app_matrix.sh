#!/bin/bash
# Real programs through the mesh, with the shim preloaded: a pass/fail
# table. Each row runs an unmodified program as service "web" against a
# mesh service on this node (same_node_mtls = true: real mTLS).
. "$(dirname "$0")/lib.sh"

ECHO=$(free_port); HTTPP=$(free_port); IPERFP=$(free_port)
UP1=$(free_port); UP2=$(free_port); UP3=$(free_port); NGX=$(free_port)
start_echo "$ECHO"
mkdir -p "$T/www"; head -c 100000 /dev/urandom | base64 > "$T/www/file"
(cd "$T/www" && exec python3 -m http.server "$HTTPP" --bind 127.0.0.1) >/dev/null 2>&1 &
PIDS="$PIDS $!"
if command -v iperf3 >/dev/null; then iperf3 -s -p "$IPERFP" >/dev/null 2>&1 & PIDS="$PIDS $!"; fi
wait_port "$HTTPP"
if command -v iperf3 >/dev/null; then wait_port "$IPERFP"; fi
# iperf3's server treats any connection as a test: check it once an hour
# (at start), not every check_interval.
write_conf n1 "services = (
  { name = \"socat\"; port = $ECHO; connect = {}; },
  { name = \"http\"; port = $HTTPP; connect = {}; },
  { name = \"iperf\"; port = $IPERFP; connect = {};
    check = { tcp = \"127.0.0.1:$IPERFP\"; interval = \"1h\"; }; },
  { name = \"web\"; port = 1; upstreams = (
      { destination_name = \"socat\"; local_bind_port = $UP1; },
      { destination_name = \"http\"; local_bind_port = $UP2; },
      { destination_name = \"iperf\"; local_bind_port = $UP3; } ); } );"
start_helperd n1 || { fail "helperd starts"; finish; exit 1; }
export MESH_SERVICE=web
W() { env LD_PRELOAD="$SHIM" "$@"; }
ROWS=""
row() { # row NAME command...: run, record pass/fail
	name=$1; shift
	if "$@" >"$T/row.out" 2>&1; then ok "$name"; ROWS="$ROWS|$name|pass|\n"
	else fail "$name"; sed 's/^/      /' "$T/row.out" | tail -5; ROWS="$ROWS|$name|FAIL|\n"; fi
}
have() { command -v "$1" >/dev/null; }
want() { # want CMD: row is skipped (and shown as such) when CMD is missing
	have "$1" && return 0
	skip "$2" "$1 not installed"; ROWS="$ROWS|$2|skipped ($1 missing)|\n"; return 1
}

t_socat() { [ "$(echo hi | W timeout 5 socat - tcp:127.0.0.1:$UP1)" = hi ]; }
t_nc() { [ "$(echo hi | W timeout 5 nc -N 127.0.0.1 $UP1)" = hi ]; }
t_curl_port() { W timeout 10 curl -sf "http://127.0.0.1:$UP2/file" | cmp -s - "$T/www/file"; }
t_curl_name() { W timeout 10 curl -sf "http://http.service.mesh:$HTTPP/file" | cmp -s - "$T/www/file"; }
t_py_block() { W timeout 10 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
assert s.getpeername()[1] == int(sys.argv[1]), s.getpeername()
s.sendall(b"x" * 65536); s.shutdown(socket.SHUT_WR)
got = b""
while True:
    d = s.recv(65536)
    if not d: break
    got += d
assert got == b"x" * 65536, len(got)' "$UP1"; }
t_py_asyncio() { W timeout 20 python3 -c '
import asyncio, sys
port = int(sys.argv[1])
async def one(i):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"line %d\n" % i); await w.drain()
    assert await r.readline() == b"line %d\n" % i
    w.close(); await w.wait_closed()
async def main():
    await asyncio.gather(*(one(i) for i in range(50)))
asyncio.run(main())' "$UP1"; }
t_py_threads() { W timeout 30 python3 -c '
import socket, sys, threading
port, bad = int(sys.argv[1]), []
def one(i):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"t%d\n" % i)
        f = s.makefile("rb")
        if f.readline() != b"t%d\n" % i: bad.append(i)
        s.close()
    except Exception as e:
        bad.append((i, e))
ts = [threading.Thread(target=one, args=(i,)) for i in range(64)]
[t.start() for t in ts]; [t.join() for t in ts]
assert not bad, bad' "$UP1"; }
t_py_fork() { W timeout 20 python3 -c '
import os, socket, sys
port = int(sys.argv[1])
def echo(tag):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(tag + b"\n"); ok = s.makefile("rb").readline() == tag + b"\n"; s.close(); return ok
assert echo(b"parent")
pid = os.fork()
if pid == 0:
    os._exit(0 if echo(b"child") and echo(b"child2") else 1)
_, st = os.waitpid(pid, 0)
assert os.WEXITSTATUS(st) == 0, st
assert echo(b"parent-after")' "$UP1"; }
start_nginx() {
	mkdir -p "$T/nginx"
	cat > "$T/nginx/nginx.conf" <<NGX
daemon off; master_process on; worker_processes 2; pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $T/nginx/body; proxy_temp_path $T/nginx/proxy;
  fastcgi_temp_path $T/nginx/fcgi; uwsgi_temp_path $T/nginx/uwsgi; scgi_temp_path $T/nginx/scgi;
  upstream meshed { server 127.0.0.1:$UP2; keepalive 8; }
  server { listen 127.0.0.1:$NGX;
    location / { proxy_pass http://meshed; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
NGX
	W nginx -c "$T/nginx/nginx.conf" -e "$T/nginx/error.log" >/dev/null 2>&1 &
	PIDS="$PIDS $!"
	wait_port "$NGX"
}
t_nginx() { start_nginx && timeout 10 curl -sf "http://127.0.0.1:$NGX/file" | cmp -s - "$T/www/file"; }
t_wrk() {
	timeout 40 wrk -t2 -c16 -d3s --timeout 10s "http://127.0.0.1:$NGX/file" > "$T/wrk.out" 2>&1 || return 1
	cat "$T/wrk.out"
	grep -q "Requests/sec" "$T/wrk.out" && ! grep -q "Non-2xx\|Socket errors" "$T/wrk.out"
}
t_iperf3() {
	W timeout 20 iperf3 -c 127.0.0.1 -p "$UP3" -t 2 -J > "$T/iperf.json" || return 1
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); b=d["end"]["sum_received"]["bytes"]; print("iperf3: %.2f Gbit/s" % (d["end"]["sum_received"]["bits_per_second"]/1e9)); sys.exit(0 if b > 0 else 1)' "$T/iperf.json"
}

row "socat" t_socat
row "nc" t_nc
row "curl via upstream port" t_curl_port
row "curl via http.service.mesh" t_curl_name
row "python3 blocking (64 KiB, half-close, getpeername)" t_py_block
row "python3 asyncio (50 concurrent)" t_py_asyncio
row "python3 64 threads" t_py_threads
row "python3 fork" t_py_fork
if want nginx "nginx reverse proxy (upstream = mesh service)"; then
	row "nginx reverse proxy (upstream = mesh service)" t_nginx
	want wrk "wrk against that nginx" && row "wrk against that nginx" t_wrk
fi
want iperf3 "iperf3" && row "iperf3" t_iperf3
echo
echo "| program | result |"
echo "|---|---|"
printf "$ROWS"
echo
check "helperd still alive" kill -0 "$HELPERD_PID"
finish
