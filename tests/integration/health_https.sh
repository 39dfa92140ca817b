#!/bin/bash
# HTTPS health checks (Consul's tls_skip_verify, tls_server_name) and
# checks that name a host (looked up off the event loop).
# An HTTPS server with a self-signed certificate for check.example answers
# 200 when the client's SNI is check.example, else 421.
. "$(dirname "$0")/lib.sh"

P=$(free_port); TCPP=$(free_port)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$T/key.pem" -out "$T/cert.pem" -days 2 -subj "/CN=check.example" \
    -addext "subjectAltName=DNS:check.example" >/dev/null 2>&1 ||
    { fail "openssl makes a certificate"; finish; exit 1; }
cat > "$T/https.py" <<'PY'
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        sni = getattr(self.connection, "sni", None)
        self.send_response(200 if sni == "check.example" else 421)
        self.end_headers()
        self.wfile.write(b"sni=%s\n" % str(sni).encode())
    def log_message(self, *a): pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
def sni(sock, name, c):
    sock.sni = name
ctx.sni_callback = sni
srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
PY
python3 "$T/https.py" "$P" "$T/cert.pem" "$T/key.pem" >/dev/null 2>&1 & PIDS="$PIDS $!"
start_echo "$TCPP"
wait_port "$P"
NAME=$(hostname)
named=""
if getent ahostsv4 "$NAME" 2>/dev/null | grep -q '^127\.'; then
	named="{ name = \"named\"; port = $TCPP; check = { tcp = \"$NAME:$TCPP\"; }; },"
fi
write_conf n1 'check_interval = "1s";'
cat > "$T/n1/services.d/svc.conf" <<EOC
services = (
  { name = "tls-ok"; port = $P;
    check = { http = "https://127.0.0.1:$P/"; interval = "5s"; timeout = "3s"; tls_skip_verify = true;
              tls_server_name = "check.example"; }; },
  { name = "tls-nosni"; port = $P;
    check = { http = "https://127.0.0.1:$P/"; interval = "5s"; timeout = "3s"; tls_skip_verify = true; }; },
  { name = "tls-verify"; port = $P;
    check = { http = "https://127.0.0.1:$P/"; interval = "5s"; timeout = "3s";
              tls_server_name = "check.example"; }; },
  $named
  { name = "noname"; port = $TCPP;
    check = { tcp = "no-such-host.invalid:$TCPP"; }; }
);
EOC
# A JSON definition takes the same keys, in Consul's spelling.
cat > "$T/n1/services.d/j.json" <<EOC
{"service": {"name": "tls-json", "port": $P, "check": {"HTTP": "https://127.0.0.1:$P/",
 "TLSSkipVerify": true, "TLSServerName": "check.example", "Interval": "5s", "Timeout": "3s"}}}
EOC
out=$("$HELPERD" -c "$T/n1/mesh.conf" -check 2>&1)
check "-check accepts the https checks ($out)" [ $? = 0 ]
echo '{"service": {"name": "bad", "port": 1, "check": {"TCP": "127.0.0.1:1", "TLSSkipVerify": true}}}' > "$T/bad.json"
cp "$T/n1/mesh.conf" "$T/bad.conf"
sed -i "s|^services_dir.*|services_dir = \"$T/baddir\";|" "$T/bad.conf"
mkdir -p "$T/baddir"; cp "$T/bad.json" "$T/baddir/"
out=$("$HELPERD" -c "$T/bad.conf" -check 2>&1)
check "tls_skip_verify on a tcp check is refused ($out)" sh -c "echo '$out' | grep -q 'apply to https checks only'"

start_helperd n1 || { fail "helperd starts"; finish; exit 1; }
A=$HTTP_ADDR
st() {
	curl -s "http://$A/v1/agent/checks" | python3 -c '
import json, sys
c = json.load(sys.stdin).get(sys.argv[1], {})
print(c.get("Status", "none") + ": " + c.get("Output", ""))' "$1"
}
settle() { # settle CHECK STATUS: up to 10 s
	for _ in $(seq 100); do st "$1" | grep -q "^$2:" && return 0; sleep 0.1; done
	return 1
}
settle service:tls-ok passing
out=$(st service:tls-ok)
check "https, tls_skip_verify, tls_server_name sent as SNI: $out" sh -c "echo '$out' | grep -q '^passing: HTTP GET https://127.0.0.1:$P/: 200'"
settle service:tls-json passing
check "the same from Consul JSON (TLSSkipVerify, TLSServerName): $(st service:tls-json)" settle service:tls-json passing
settle service:tls-nosni critical
check "an IP host sends no SNI: the server says 421: $(st service:tls-nosni)" sh -c "curl -s 'http://$A/v1/agent/checks' | grep -q '421'"
settle service:tls-verify critical
out=$(st service:tls-verify)
check "without tls_skip_verify an untrusted certificate is critical: $out" sh -c "echo '$out' | grep -q '^critical: HTTP GET https://127.0.0.1:$P/: TLS: The certificate is NOT trusted'"
settle service:noname critical
out=$(st service:noname)
check "a name that does not resolve: $out" sh -c "echo '$out' | grep -q '^critical: resolve no-such-host.invalid: '"
if [ -n "$named" ]; then
	settle service:named passing
	check "a check naming $NAME (resolved off the loop): $(st service:named)" settle service:named passing
else
	echo "# not run: $NAME does not resolve to a loopback address"
fi
stop_helperd "$HELPERD_PID"; rc=$?
check "SIGTERM: exit 0" [ "$rc" = 0 ]
finish
