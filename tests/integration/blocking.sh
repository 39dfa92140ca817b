#!/bin/bash
# Blocking queries: X-Consul-Index on catalog, health, intentions and CA
# roots; ?index=N&wait=D holds the request until the answer changes (a
# watcher loop wakes within 1 s of a change, and not before) or the wait
# runs out; held requests are bounded per client.
. "$(dirname "$0")/lib.sh"

ECHO=$(free_port)
start_echo "$ECHO"
write_conf n1 'default_intention = "allow";'
sed "s/8181/$ECHO/" "$SRCDIR/examples/getting-started/socat.json" > "$T/n1/services.d/socat.json"
start_helperd n1 || { fail "helperd starts"; finish; exit 1; }
B="http://$HTTP_ADDR"

index_of() { curl -s -D - -o /dev/null "$1" | tr -d '\r' | awk 'tolower($1) == "x-consul-index:" { print $2 }'; }
for p in /v1/catalog/services /v1/catalog/service/socat /v1/health/service/socat \
    /v1/connect/intentions /v1/agent/connect/ca/roots; do
	i=$(index_of "$B$p")
	check_expr "X-Consul-Index on $p ($i)" '[ -n "$i" ] && [ "$i" -gt 0 ]'
done
i1=$(index_of "$B/v1/catalog/services"); i2=$(index_of "$B/v1/catalog/services")
check "unchanged answer, same index ($i1 $i2)" [ "$i1" = "$i2" ]
check "no X-Consul-Index on a write endpoint" [ -z "$(index_of "$B/v1/agent/self")" ]

# The wait runs out: the same index, after the wait and not before.
python3 - "$B/v1/catalog/services?index=$i1&wait=2s" "$i1" <<'PY'
import sys, time, urllib.request
t = time.time()
r = urllib.request.urlopen(sys.argv[1], timeout=30)
dt = time.time() - t
print("    held %.2f s" % dt)
sys.exit(0 if 1.9 <= dt < 6 and r.headers["X-Consul-Index"] == sys.argv[2] else 1)
PY
check "?index=current&wait=2s: held until the wait ran out, same index" [ $? = 0 ]
code=$(api "$B/v1/catalog/services?index=1&wait=2s")
check "?index of an older answer: at once ($code)" [ "$code" = 200 ]

# A watcher loop, as consul watch / consul-template: each answer's index
# feeds the next request. It logs "wall-clock index" per wake-up.
watch_loop() { # watch_loop PATH OUT
	python3 - "$B$1" "$2" <<'PY' &
import sys, time, urllib.request
url, out = sys.argv[1], sys.argv[2]
idx = "0"
while True:
    try:
        r = urllib.request.urlopen(url + ("&" if "?" in url else "?") +
                                   "index=%s&wait=30s" % idx, timeout=60)
        r.read()
    except Exception as e:
        time.sleep(0.2); continue
    idx = r.headers["X-Consul-Index"]
    with open(out, "a") as f:
        f.write("%.3f %s\n" % (time.time(), idx))
PY
	PIDS="$PIDS $!"
	WPIDS="${WPIDS:-} $!"
}
wakes() { wc -l < "$1" 2>/dev/null || echo 0; }
woke_within() { # woke_within FILE T0 LIMIT: a wake-up after T0, <= LIMIT s later
	python3 - "$1" "$2" "$3" <<'PY'
import sys, time
for _ in range(50):
    for line in open(sys.argv[1]):
        t, idx = line.split()
        if float(t) > float(sys.argv[2]):
            dt = float(t) - float(sys.argv[2])
            print("    woke %.3f s after the change" % dt)
            sys.exit(0 if dt <= float(sys.argv[3]) else 1)
    time.sleep(0.1)
print("    no wake-up"); sys.exit(1)
PY
}
watch_loop /v1/catalog/services "$T/w_cat"
watch_loop /v1/connect/intentions "$T/w_int"
watch_loop /v1/health/service/web "$T/w_health"
for _ in $(seq 100); do [ "$(wakes "$T/w_cat")" -ge 1 ] && [ "$(wakes "$T/w_int")" -ge 1 ] && [ "$(wakes "$T/w_health")" -ge 1 ] && break; sleep 0.1; done
sleep 2
c0=$(wakes "$T/w_cat"); n0=$(wakes "$T/w_int"); h0=$(wakes "$T/w_health")
check_expr "watchers hold while nothing changes (1 answer each: $c0 $n0 $h0)" '[ "$c0" = 1 ] && [ "$n0" = 1 ] && [ "$h0" = 1 ]'

t0=$(python3 -c 'import time; print(time.time())')
curl -s -X PUT "$B/v1/agent/service/register" -d '{"Name":"web","Port":1}' >/dev/null
check "catalog watcher woke within 1 s of a registration" woke_within "$T/w_cat" "$t0" 1
check "health watcher (web) woke too" woke_within "$T/w_health" "$t0" 1
sleep 0.5
check "intentions watcher did not wake ($(wakes "$T/w_int"))" [ "$(wakes "$T/w_int")" = 1 ]
i_new=$(tail -1 "$T/w_cat" | cut -d' ' -f2); i_old=$(head -1 "$T/w_cat" | cut -d' ' -f2)
check "the new index is higher ($i_old -> $i_new)" [ "$i_new" -gt "$i_old" ]

t0=$(python3 -c 'import time; print(time.time())')
"$MESHCTL" intention create -deny web socat >/dev/null
check "intentions watcher woke within 1 s of intention create" woke_within "$T/w_int" "$t0" 1
c1=$(wakes "$T/w_cat")
sleep 0.5
check "catalog watcher stayed (no catalog change): $c1 -> $(wakes "$T/w_cat")" [ "$(wakes "$T/w_cat")" = "$c1" ]

# Bound: 64 held per client (on loopback the client is the caller's uid);
# the 70 asked at once: 6 answered now. They are asked as nobody, another
# client than the watchers above (root): a killed watcher's held query is
# released only when helperd next writes to it (its wait, 30 s), and it
# counts for root until then.
for p in $WPIDS; do kill "$p"; wait "$p" 2>/dev/null; done
sleep 0.3
ic=$(index_of "$B/v1/catalog/services")
setpriv --reuid=nobody --regid=nogroup --clear-groups \
    /usr/bin/python3 - "$B/v1/catalog/services?index=$ic&wait=3s" <<'PY'
import sys, time, threading, urllib.request
url = sys.argv[1]
quick = []
def one():
    t = time.time()
    try:
        urllib.request.urlopen(url, timeout=30).read()
    except Exception as e:
        print("   ", e); return
    if time.time() - t < 1.5:
        quick.append(1)
ts = [threading.Thread(target=one) for _ in range(70)]
for t in ts: t.start()
for t in ts: t.join()
print("    answered at once: %d" % len(quick))
sys.exit(0 if len(quick) == 6 else 1)
PY
check "70 blocking queries from one client: 64 held, 6 answered at once" [ $? = 0 ]
check "helperd still answers" [ "$(api "$B/v1/catalog/services")" = 200 ]
finish
