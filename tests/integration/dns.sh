#!/bin/bash
# helperd's DNS server (issue 15): dig gets the served address of a
# service under .service.mesh, .service.consul and .connect.consul, SRV
# its port, NXDOMAIN for a missing name, REFUSED outside the zones;
# malformed queries are dropped and counted, helperd keeps answering;
# the addresses stay the same across a restart (data_dir/served.json),
# a broken served.json does not stop helperd; a plain connection to the
# served address reaches the service.
. "$(dirname "$0")/lib.sh"
command -v dig >/dev/null || skip_test "dig (dnsutils) not installed"

ECHO=$(free_port)
UP=$(free_port)
services="services = (
  { name = \"socat\"; port = $ECHO; connect = {}; },
  { name = \"web\"; port = 0; user = \"root\";
    upstreams = ( { destination_name = \"socat\"; local_bind_port = $UP; } ); } );"
write_conf n1 'check_interval = "1s";' "$services"
start_echo "$ECHO"
start_helperd n1 || exit 1
check "ports.json names the DNS server's bound port" \
    test -n "$DNS_PORT" -a "$DNS_PORT" != 0

q() { dig +tries=1 +time=2 @127.0.0.1 -p "$DNS_PORT" "$@"; }
served_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["services"][sys.argv[2]])' "$T/n1/data/served.json" "$1"; }

A=$(served_of socat)
net=${SERVED_BLOCK%.0/24}
check "socat got an address in served_addrs ($A in $SERVED_BLOCK)" \
    test "${A%.*}" = "$net"
check "A socat.service.mesh = $A" test "$(q +short socat.service.mesh)" = "$A"
check "A socat.service.consul = $A" test "$(q +short socat.service.consul)" = "$A"
check "A socat.connect.consul = $A" test "$(q +short socat.connect.consul)" = "$A"
check "names are case-insensitive (SoCaT.Service.MESH.)" \
    test "$(q +short SoCaT.Service.MESH.)" = "$A"
q socat.service.mesh > "$T/a.out"
check "the answer is authoritative with TTL 0" \
    grep -qE "^socat\.service\.mesh\.[[:space:]]+0[[:space:]]+IN[[:space:]]+A[[:space:]]+$A" "$T/a.out"
check "SRV gives the served port ($UP)" \
    grep -q "^1 1 $UP socat.service.mesh.$" <(q +short SRV socat.service.mesh)
q AAAA socat.service.mesh > "$T/aaaa.out"
check "AAAA: NOERROR without an answer (IPv4 only)" \
    grep -q "status: NOERROR.*" "$T/aaaa.out"
check "AAAA: no answer section" grep -q "ANSWER: 0" "$T/aaaa.out"
check "NXDOMAIN for a missing service" \
    grep -q "status: NXDOMAIN" <(q nope.service.mesh)
check "NXDOMAIN for a name under the zone that is no service name" \
    grep -q "status: NXDOMAIN" <(q a.b.service.mesh)
q example.com > "$T/ext.out"
check "REFUSED outside the zone (no recursion)" \
    grep -q "status: REFUSED" "$T/ext.out"
check "... and recursion is not offered (no ra flag)" \
    sh -c "grep 'flags:' '$T/ext.out' | grep -qv ' ra'"

# Malformed queries: garbage, a short header, a response, two questions.
stats() { curl -s "http://$HTTP_ADDR/v1/agent/self" | python3 -c "import json,sys; print(json.load(sys.stdin)['Stats']['$1'])"; }
before=$(stats DNSDropped)
python3 - "$DNS_PORT" > "$T/malformed.out" <<'EOF'
import socket, struct, sys
port = int(sys.argv[1])
def name(n):
    return b"".join(bytes([len(l)]) + l.encode() for l in n.split(".")) + b"\0"
qq = name("socat.service.mesh") + struct.pack(">HH", 1, 1)
bad = [
    b"\xff" * 40,                                            # garbage
    b"\x12\x34\x01",                                         # short header
    struct.pack(">HHHHHH", 1, 0x8100, 1, 0, 0, 0) + qq,      # a response
    struct.pack(">HHHHHH", 2, 0x0100, 2, 0, 0, 0) + qq + qq, # 2 questions
    struct.pack(">HHHHHH", 3, 0x0100, 1, 0, 0, 0) + b"\x3fabc", # cut name
]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
answered = 0
for b in bad:
    s.sendto(b, ("127.0.0.1", port))
    try:
        s.recvfrom(4096)
        answered += 1
    except socket.timeout:
        pass
print(answered)
EOF
check "malformed queries get no answer" test "$(cat "$T/malformed.out")" = 0
after=$(stats DNSDropped)
check "... and are counted (DNSDropped $before -> $after)" \
    test "$after" -eq $((before + 5))
check "... and logged" grep -q "dns: dropped a malformed query" "$T/n1/helperd.log"
check "helperd still answers after them" \
    test "$(q +short socat.service.mesh)" = "$A"
check "and still runs" kill -0 "$HELPERD_PID"

# A plain program (no shim) connecting to the served address: web (root).
wait_port "$UP" "$A"
out=$(printf 'plain\n' | timeout 5 nc -N "$A" "$UP")
check "nc (no shim) to $A:$UP reaches socat's echo" test "$out" = plain

# Stable across restarts; a new service gets a new address, the old ones
# keep theirs.
W=$(served_of web)
stop_helperd "$HELPERD_PID"
cat > "$T/n1/services.d/extra.conf" <<EOF
services = ( { name = "billing"; port = $(free_port); } );
EOF
start_helperd n1 || exit 1
check "socat keeps $A after a restart" test "$(q +short socat.service.mesh)" = "$A"
check "web keeps $W after a restart" test "$(q +short web.service.mesh)" = "$W"
B=$(q +short billing.service.mesh)
check "a new service gets its own address ($B)" \
    sh -c "test -n '$B' && test '$B' != '$A' && test '$B' != '$W'"

# A broken served.json: logged, replaced, helperd starts and answers.
stop_helperd "$HELPERD_PID"
printf '{"served_addrs": "%s", "services": {"socat": "10.0.0.1", ' "$SERVED_BLOCK" > "$T/n1/data/served.json"
start_helperd n1 || exit 1
check "a broken served.json is logged" grep -q "served: .*served.json" "$T/n1/helperd.log"
check "... and helperd answers again" test -n "$(q +short socat.service.mesh)"
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/n1/data/served.json"
check "... and writes a served.json that loads" test $? -eq 0
stop_helperd "$HELPERD_PID"
check "helperd exits cleanly" test $? -eq 0

finish
