#!/bin/bash
# The web UI (issue 17) in a real headless browser: Debian's chromium,
# chromium-driver and python3-selenium (ui_browser.py) against helperd
# with ACLs on, three services, an intention and two live sessions
# through the shim. The page finds each service and its health, refuses
# writes without a token, takes the management token, creates a deny
# from the page and sees the pair turn deny and its open connection cut,
# cuts the other with its button, shows the CA and the nodes, fits a
# phone's width, and asks nothing of any origin but helperd's.
# Screenshots (desktop 1366x900, phone 390x844) are left in the test's
# temp dir; UI_SCREENSHOTS=DIR copies them there too (docs/ui-*.png).
. "$(dirname "$0")/lib.sh"

# The browser and selenium: Debian's python3 has python3-selenium (a
# python3 earlier in PATH, e.g. pyenv's, may not).
PY=""
for p in /usr/bin/python3 python3; do
	if "$p" -c 'import selenium' 2>/dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || skip_test "python3-selenium not installed (scripts/deps.sh test)"
[ -x /usr/bin/chromium ] || skip_test "chromium not installed (scripts/deps.sh test)"
[ -x /usr/bin/chromedriver ] || skip_test "chromium-driver not installed (scripts/deps.sh test)"

ECHO=$(free_port); UP=$(free_port); DEAD=$(free_port)
start_echo "$ECHO"
write_conf n1 'default_intention = "allow";' 'check_interval = "1s";'
sed "s/8181/$ECHO/" "$SRCDIR/examples/getting-started/socat.json" > "$T/n1/services.d/socat.json"
# web's port has nothing listening: its check is critical, with the reason
sed -e "s/8080/$DEAD/" -e "s/9191/$UP/" "$SRCDIR/examples/getting-started/web.json" > "$T/n1/services.d/web.json"
echo '{"service": {"name": "api", "port": 1, "tags": ["v2"], "check": {"TTL": "10m"}}}' \
    > "$T/n1/services.d/api.json"
start_helperd n1 || { fail "helperd starts"; finish; exit 1; }
BASE="http://$HTTP_ADDR"
api() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

code=$(api -X PUT "$BASE/v1/agent/check/warn/service:api?note=disk%2091%25%20full")
check "api's TTL check set to warning ($code)" [ "$code" = 200 ]
check "api => socat deny (meshctl)" "$MESHCTL" intention create -deny api socat

# What helperd serves, before any browser.
curl -s -D "$T/h.txt" -o /dev/null "$BASE/ui"
check_expr "/ui: 301 to /ui/" 'head -1 "$T/h.txt" | grep -q " 301" && grep -qi "^Location: /ui/" "$T/h.txt"'
curl -s -D "$T/h.txt" -o "$T/index.html" "$BASE/ui/"
check_expr "/ui/: the page, text/html" 'head -1 "$T/h.txt" | grep -q " 200" && grep -qi "^Content-Type: text/html" "$T/h.txt" && grep -q "<title>meshshim</title>" "$T/index.html"'
check "/ui/: Content-Security-Policy default-src 'self'" grep -qi "^Content-Security-Policy: default-src 'self';.*frame-ancestors 'none'" "$T/h.txt"
check "/ui/: X-Content-Type-Options nosniff" grep -qi "^X-Content-Type-Options: nosniff" "$T/h.txt"
check "/ui/: X-Frame-Options DENY" grep -qi "^X-Frame-Options: DENY" "$T/h.txt"
curl -s -D "$T/h.txt" -o /dev/null "$BASE/ui/app.js"
check "/ui/app.js: JavaScript" grep -qi "^Content-Type: text/javascript" "$T/h.txt"
code=$(api "$BASE/ui/nope.js")
check "/ui/nope.js: 404 ($code)" [ "$code" = 404 ]
code=$(api --path-as-is "$BASE/ui/../v1/agent/self")
check "/ui/../v1/agent/self: 404, no way out of the assets ($code)" [ "$code" = 404 ]
code=$(api -X POST "$BASE/ui/")
check "POST /ui/: 405 ($code)" [ "$code" = 405 ]
# the page needs no token, a wrong one included (it is static)
code=$(curl -q -s -o /dev/null -w '%{http_code}' -H 'X-Consul-Token: 00000000-0000-4000-8000-000000000000' "$BASE/ui/")
check "/ui/ with an unknown token still loads ($code)" [ "$code" = 200 ]

# What the page reads besides Consul's shapes: default_intention in
# /v1/agent/self, each leaf's renewal time in the metrics.
check "agent/self: DefaultIntention allow" sh -c "curl -s '$BASE/v1/agent/self' | grep -q '\"DefaultIntention\": \"allow\"'"
curl -s "$BASE/v1/agent/metrics" > "$T/metrics.json"
check "metrics: socat's leaf renewal is due before it expires" python3 -c '
import json, sys
g = {x["Name"]: x["Value"] for x in json.load(open(sys.argv[1]))["Gauges"]
     if x.get("Labels", {}).get("service") == "socat"}
r, e = g["meshshim.leaf.renewal.seconds"], g["meshshim.leaf.expiry.seconds"]
sys.exit(0 if 0 < r < e else 1)' "$T/metrics.json"

# Two live sessions through the shim: web (its upstream from web.json)
# and billing (ad hoc), both to socat.
S=$SRCDIR/tests/integration/session.py
session() { # session NAME SERVICE [UPSTREAMS]
	env LD_PRELOAD="$SHIM" MESH_SERVICE="$2" ${3:+MESH_UPSTREAMS=$3} \
	    python3 "$S" "$UP" 300 "$T/$1.json" 0.05 &
	PIDS="$PIDS $!"
	eval "SPID_$1=$!"
	for _ in $(seq 200); do
		[ -s "$T/$1.json" ] && [ "$(jq_get "$T/$1.json" ok)" -gt 2 ] && return 0
		sleep 0.05
	done
	return 1
}
check "web session up" session web web
check "billing session up" session billing billing "socat:$UP"

"$PY" "$SRCDIR/tests/integration/ui_browser.py" "$BASE" "$MESH_TEST_TOKEN" "$T" \
    "$T/web.json" "$SPID_web" "$T/billing.json" > "$T/browser.log" 2>&1
rc=$?
grep -v -E '^(ok   |FAIL) - ' "$T/browser.log" | tail -20
check "ui_browser.py ran to its end (exit $rc; $T/browser.log)" [ "$rc" = 0 ]
n=0
while IFS=$'\t' read -r res what; do
	n=$((n + 1))
	if [ "$res" = ok ]; then ok "browser: $what"; else fail "browser: $what"; fi
done < "$T/ui_results.txt"
check "the browser made its checks ($n)" [ "$n" -ge 40 ]

# What the page did, as helperd saw it.
check "helperd logged the intention created from the page" grep -q "intention created: web => socat (deny)" "$T/n1/helperd.log"
check "helperd logged the refused write without a token" grep -q "anonymous token lacks permission 'intentions:write'" "$T/n1/helperd.log"
check "helperd logged the cut asked from the page" grep -q "killed through the API" "$T/n1/helperd.log"
for f in desktop-services desktop-intentions desktop-traffic phone-services phone-intentions; do
	check_expr "screenshot $f.png" '[ "$(head -c 8 "$T/$f.png" | od -An -tx1 | tr -d " ")" = 89504e470d0a1a0a ]'
done
if [ -n "${UI_SCREENSHOTS:-}" ]; then
	mkdir -p "$UI_SCREENSHOTS" && cp "$T"/desktop-*.png "$T"/phone-*.png "$UI_SCREENSHOTS"/
	echo "# screenshots copied to $UI_SCREENSHOTS"
fi
echo "# screenshots in $T (kept with KEEP=1)"
finish
