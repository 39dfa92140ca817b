#!/usr/bin/python3
"""Drive helperd's web UI in headless Chromium (selenium), as ui.sh sets up.

usage: ui_browser.py BASE TOKEN OUTDIR WEB_SESSION WEB_PID BILLING_SESSION

BASE is helperd's HTTP origin (http://127.0.0.1:PORT), TOKEN its
management token, OUTDIR where the results and screenshots go,
*_SESSION the JSON files session.py keeps for the two live connections
(web => socat, billing => socat), WEB_PID the pid of the web session.

Writes OUTDIR/ui_results.txt, one line per check: "ok<TAB>what" or
"fail<TAB>what"; ui.sh counts them. Exit 0 when it got to the end (the
checks decide the verdict), 1 when it could not run on.
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

BASE, TOKEN, OUT, WEB_SESSION, WEB_PID, BILLING_SESSION = sys.argv[1:7]
WAIT = 20  # seconds for anything the page shows (the machine is shared)
results = open(os.path.join(OUT, "ui_results.txt"), "w")
network = []   # every URL the page asked for (CDP Network events)
console = []   # the browser's console (CSP violations land there)


def record(ok, what):
    results.write(("ok" if ok else "fail") + "\t" + what.replace("\n", " ") + "\n")
    results.flush()
    print(("ok   - " if ok else "FAIL - ") + what, flush=True)


def check(what, fn):
    """ok if fn() returns true within WAIT seconds (exceptions retried)."""
    last = None
    end = time.time() + WAIT
    while time.time() < end:
        try:
            v = fn()
            if v:
                record(True, what)
                return v
        except (WebDriverException, KeyError, ValueError, IndexError) as e:
            last = e
        time.sleep(0.2)
    record(False, what + (" (%s)" % str(last).splitlines()[0] if last else ""))
    return None


def api(method, path, body=None):
    """helperd's API with the management token: (status, parsed body)."""
    req = urllib.request.Request(BASE + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"X-Consul-Token": TOKEN})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            t = r.read()
            return r.status, json.loads(t) if t.strip() else None
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def session_closed(path):
    with open(path) as f:
        return json.load(f)["closed_at"] is not None


def drain_logs(d):
    for e in d.get_log("performance"):
        m = json.loads(e["message"])["message"]
        if m["method"] == "Network.requestWillBeSent":
            network.append(m["params"]["request"]["url"])
        elif m["method"] == "Network.webSocketCreated":
            network.append(m["params"]["url"])
    console.extend(x["message"] for x in d.get_log("browser"))


def by_css(d, sel):
    return d.find_elements(By.CSS_SELECTOR, sel)


def text_of(d, sel):
    els = by_css(d, sel)
    return els[0].text if els else ""


def view(d, name):
    d.find_element(By.ID, "nav-" + name).click()
    WebDriverWait(d, WAIT).until(lambda _: d.find_element(By.ID, "view-" + name).is_displayed())


def shot(d, name):
    path = os.path.join(OUT, name + ".png")
    d.save_screenshot(path)
    return path


def main():
    o = Options()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu",
              "--disable-dev-shm-usage", "--window-size=1366,900",
              "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync",
              "--disable-default-apps", "--metrics-recording-only"):
        o.add_argument(a)
    o.binary_location = "/usr/bin/chromium"
    o.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    d.set_page_load_timeout(60)
    try:
        run(d)
        drain_logs(d)
    finally:
        d.quit()
    # The page asked only its own origin: every request, none elsewhere.
    own = [u for u in network if u.startswith(BASE + "/")]
    other = [u for u in network if not u.startswith(BASE + "/")]
    record(len(own) > 20 and not other,
           "%d requests, all to %s (%d elsewhere: %s)" % (len(own), BASE, len(other), other[:5]))
    csp = [m for m in console if "Content Security Policy" in m or "Refused to" in m]
    record(not csp, "no Content-Security-Policy violation in the console (%s)" % csp[:3])
    errs = [m for m in console if "Uncaught" in m or "TypeError" in m or "ReferenceError" in m]
    record(not errs, "no script error in the console (%s)" % errs[:3])


def run(d):
    # Consul's address: /ui redirects to /ui/.
    d.get(BASE + "/ui")
    check("GET /ui lands on /ui/ (%s)" % d.current_url,
          lambda: d.current_url.startswith(BASE + "/ui/") and d.title == "meshshim")

    # Services: each one, its instance, node and health with the check output.
    check("Services lists socat, web and api",
          lambda: all(by_css(d, 'article[data-service="%s"]' % s) for s in ("socat", "web", "api")))
    check("socat: its TCP check passing, with its output",
          lambda: "passing" in text_of(d, '[data-service="socat"] li[data-check="service:socat"]')
          and "Success" in text_of(d, '[data-service="socat"] li[data-check="service:socat"] pre'))
    check("web: critical, the check output says why",
          lambda: "critical" in text_of(d, '[data-service="web"] h2')
          and "refused" in text_of(d, '[data-service="web"] li[data-check="service:web"] pre'))
    check("api: warning with the TTL check's note",
          lambda: "warning" in text_of(d, '[data-service="api"] li[data-check="service:api"]')
          and "disk 91% full" in text_of(d, '[data-service="api"] li[data-check="service:api"] pre'))
    check("web: node n1, in the mesh, upstream socat",
          lambda: "on node n1" in text_of(d, '[data-service="web"] .inst-head')
          and "in the mesh" in text_of(d, '[data-service="web"] dd.connect')
          and "socat on 127.0.0.1:" in text_of(d, '[data-service="web"] dl'))
    s = d.find_element(By.ID, "search")
    s.send_keys("soc")
    check("the search box keeps only socat",
          lambda: [e.get_attribute("data-service") for e in by_css(d, "article[data-service]")] == ["socat"])
    s.send_keys(Keys.BACKSPACE * 3)
    check("clearing the search shows them all again", lambda: len(by_css(d, "article[data-service]")) == 3)
    shot(d, "desktop-services")

    # Keyboard: from a fresh page the first Tab reaches "Skip to
    # content", then the views; Enter opens one; the focused link shows
    # an outline.
    d.get(BASE + "/ui/")
    WebDriverWait(d, WAIT).until(lambda _: by_css(d, "article[data-service]"))
    keys = ActionChains(d)
    keys.send_keys(Keys.TAB).perform()
    check("Tab first reaches the skip link",
          lambda: d.switch_to.active_element.get_attribute("class") == "skip")
    keys.send_keys(Keys.TAB, Keys.TAB).perform()
    check("two more Tabs reach the Intentions link",
          lambda: d.switch_to.active_element.get_attribute("id") == "nav-intentions")
    outline = d.execute_script(
        "const s = getComputedStyle(document.activeElement); return s.outlineStyle + ' ' + s.outlineWidth;")
    record(outline.split()[0] not in ("none", "") and outline.split()[1] != "0px",
           "the focused link has a visible outline (%s)" % outline)
    ActionChains(d).send_keys(Keys.ENTER).perform()
    check("Enter on the Intentions link opens that view",
          lambda: d.find_element(By.ID, "view-intentions").is_displayed())

    # Intentions: the matrix, with words and signs besides colours.
    cell = 'button.cell[data-src="%s"][data-dst="%s"]'
    check("matrix: api => socat denied by its intention (text and class)",
          lambda: by_css(d, cell % ("api", "socat"))[0].get_attribute("data-action") == "deny"
          and "deny" in by_css(d, cell % ("api", "socat"))[0].text
          and "cell deny" in by_css(d, cell % ("api", "socat"))[0].get_attribute("class"))
    check("matrix: web => socat allowed by default_intention",
          lambda: by_css(d, cell % ("web", "socat"))[0].get_attribute("data-by") == "default"
          and "allow" in by_css(d, cell % ("web", "socat"))[0].text)
    by_css(d, cell % ("api", "socat"))[0].click()
    check("choosing api => socat says which intention decides it (check + match)",
          lambda: "denied" in text_of(d, "#decide")
          and "decided by intention api \u21d2 socat" in text_of(d, "#decide"))
    check("the intention list shows precedence 9 for api => socat",
          lambda: by_css(d, '#intentions-list tr[data-src="api"][data-dst="socat"] td')[0].text == "9")

    def create_deny():
        for f in ("i-src", "i-dst"):
            d.find_element(By.ID, f).clear()
        d.find_element(By.ID, "i-src").send_keys("web")
        d.find_element(By.ID, "i-dst").send_keys("socat")
        d.find_element(By.ID, "i-deny").click()
        d.find_element(By.ID, "i-desc").clear()
        d.find_element(By.ID, "i-desc").send_keys("made in the web UI")
        d.find_element(By.ID, "i-save").click()

    # Without a token a write is refused, and said so.
    create_deny()
    check("without a token, saving is refused with the 403 reason",
          lambda: "Permission denied" in text_of(d, "#intent-msg")
          and "intentions:write" in text_of(d, "#intent-msg")
          and "error" in d.find_element(By.ID, "intent-msg").get_attribute("class"))
    st, _ = api("GET", "/v1/connect/intentions/exact?source=web&destination=socat")
    record(st == 404, "helperd has no web => socat intention after the refused write (%s)" % st)
    view(d, "traffic")
    check("without a token, Live traffic says the list needs operator:write",
          lambda: "operator:write" in text_of(d, "#traffic-msg"))
    check("without a token, no connection is shown", lambda: not by_css(d, "#conns tr[data-id]"))

    # Log in with the management token.
    t = d.find_element(By.ID, "token")
    t.send_keys("not-a-token")
    d.find_element(By.ID, "login-btn").click()
    check("a wrong token is refused", lambda: "refused" in text_of(d, "#who"))
    t.clear()
    t.send_keys(TOKEN)
    d.find_element(By.ID, "login-btn").click()
    check("the management token is accepted", lambda: "global-management" in text_of(d, "#who"))
    record(d.execute_script("return sessionStorage.getItem('meshshim.token')") == TOKEN
           and d.execute_script("return localStorage.length") == 0,
           "the token is kept in sessionStorage only")

    # Live traffic: both sessions, with the web session's pid.
    row = '#conns tr[data-src="%s"][data-dst="socat"]'
    check("Live traffic: web => socat with the session's pid %s" % WEB_PID,
          lambda: any(r.get_attribute("data-pid") == WEB_PID for r in by_css(d, row % "web")))
    check("Live traffic: billing => socat too", lambda: by_css(d, row % "billing"))
    check("Live traffic: bytes and a rate per connection",
          lambda: by_css(d, row % "web")[0].find_elements(By.TAG_NAME, "td")[10].text.endswith("/s")
          and "B" in by_css(d, row % "web")[0].find_elements(By.TAG_NAME, "td")[8].text)
    check("Live traffic: the per-pair table",
          lambda: by_css(d, '#pairs tr[data-src="web"][data-dst="socat"]'))
    shot(d, "desktop-traffic")

    # A deny from the page: the pair turns deny, the open connection is cut.
    view(d, "intentions")
    create_deny()
    check("with the token, the deny is saved", lambda: "Saved: web" in text_of(d, "#intent-msg"))
    check("the web => socat cell turns deny (red, with the word)",
          lambda: by_css(d, cell % ("web", "socat"))[0].get_attribute("data-action") == "deny"
          and "cell deny" in by_css(d, cell % ("web", "socat"))[0].get_attribute("class")
          and "deny" in by_css(d, cell % ("web", "socat"))[0].text)
    colour = d.execute_script("return getComputedStyle(arguments[0]).backgroundColor",
                              by_css(d, cell % ("web", "socat"))[0])
    rgb = [int(x) for x in colour[colour.index("(") + 1:colour.index(")")].split(",")[:3]]
    record(rgb[0] > rgb[1] + 15, "the deny cell is red (%s)" % colour)
    check("the decision box names the new intention",
          lambda: "decided by intention web \u21d2 socat" in text_of(d, "#decide"))
    st, got = api("GET", "/v1/connect/intentions/exact?source=web&destination=socat")
    record(st == 200 and got["Action"] == "deny" and got["Description"] == "made in the web UI",
           "helperd has the deny from the page (%s)" % st)
    check("the open web session was cut", lambda: session_closed(WEB_SESSION))
    record(not session_closed(BILLING_SESSION), "the billing session is still up")
    d.execute_script("window.scrollTo(0, 0)")
    shot(d, "desktop-intentions")
    view(d, "traffic")
    check("Live traffic: web => socat is gone", lambda: not by_css(d, row % "web") and by_css(d, row % "billing"))

    # The Cut button ends exactly that connection.
    out = [r for r in by_css(d, row % "billing") if r.get_attribute("data-pid")]
    record(len(out) == 1, "billing's outbound half shows its pid")
    out[0].find_element(By.CSS_SELECTOR, "button[data-cut]").click()
    check("Cut: the billing session ends", lambda: session_closed(BILLING_SESSION))
    check("Cut: its row is gone", lambda: not by_css(d, row % "billing"))

    # Edit and delete from the list.
    view(d, "intentions")
    lrow = '#intentions-list tr[data-src="web"][data-dst="socat"]'
    by_css(d, lrow)[0].find_element(By.XPATH, ".//button[text()='Edit']").click()
    check("Edit fills the form with web => socat, deny",
          lambda: d.find_element(By.ID, "i-src").get_attribute("value") == "web"
          and d.find_element(By.ID, "i-deny").is_selected()
          and d.find_element(By.ID, "i-save").text == "Update intention")
    d.find_element(By.ID, "i-allow").click()
    d.find_element(By.ID, "i-save").click()
    check("Update: the cell turns allow, by the intention",
          lambda: by_css(d, cell % ("web", "socat"))[0].get_attribute("data-action") == "allow"
          and by_css(d, cell % ("web", "socat"))[0].get_attribute("data-by") != "default")
    st, got = api("GET", "/v1/connect/intentions/exact?source=web&destination=socat")
    record(st == 200 and got["Action"] == "allow", "helperd has web => socat allow after the edit (%s)" % st)
    dbtn = by_css(d, lrow)[0].find_element(By.CSS_SELECTOR, "button[data-delete]")
    dbtn.click()
    check("Delete asks for a confirmation first", lambda: dbtn.text == "Confirm delete")
    st, _ = api("GET", "/v1/connect/intentions/exact?source=web&destination=socat")
    record(st == 200, "nothing deleted on the first press (%s)" % st)
    dbtn.click()
    check("Delete: the row goes and the cell is back to default",
          lambda: not by_css(d, lrow)
          and by_css(d, cell % ("web", "socat"))[0].get_attribute("data-by") == "default")
    st, _ = api("GET", "/v1/connect/intentions/exact?source=web&destination=socat")
    record(st == 404, "helperd has no web => socat intention after the delete (%s)" % st)

    # Identity and nodes.
    view(d, "identity")
    check("Identity: the active root, not expiring",
          lambda: "active" in text_of(d, "#roots tbody tr") and "years" in text_of(d, "#roots tbody tr"))
    check("Identity: socat's leaf with its expiry, ok",
          lambda: "ok" in text_of(d, '#leaves tr[data-leaf="socat"]')
          and "UTC" in text_of(d, '#leaves tr[data-leaf="socat"]'))
    record(not d.find_element(By.ID, "identity-warn").is_displayed(), "Identity: no warning for fresh certificates")
    shot(d, "desktop-identity")
    # The warnings, from answers as a failing node would give them: the
    # page's fetch is wrapped to make socat's renewal 10 min overdue and
    # the active root, 10 years old, expire in 5 days (the page's logic, not helperd's).
    d.execute_script("""
      const real = window.fetch;
      window.__realFetch = real;
      window.fetch = async (u, o) => {
        const r = await real(u, o), p = String(u);
        if (!p.startsWith('/v1/agent/metrics') && !p.startsWith('/v1/connect/ca/roots')) return r;
        const j = await r.json();
        if (p.startsWith('/v1/agent/metrics')) {
          for (const g of j.Gauges)
            if (g.Name === 'meshshim.leaf.renewal.seconds' && g.Labels.service === 'socat') g.Value = -600;
        } else {
          for (const x of j.Roots)
            if (x.Active) {
              x.NotBefore = new Date(Date.now() - 3650 * 86400e3).toISOString();
              x.NotAfter = new Date(Date.now() + 5 * 86400e3).toISOString();
            }
        }
        return new Response(JSON.stringify(j), { status: 200, headers: { 'Content-Type': 'application/json' } });
      };""")
    view(d, "nodes")
    view(d, "identity")
    check("Identity: an overdue renewal is flagged on socat's leaf",
          lambda: "renewal overdue" in text_of(d, '#leaves tr[data-leaf="socat"]')
          and "ok" in text_of(d, '#leaves tr[data-leaf="web"]'))
    check("Identity: the warning banner names socat's renewal and the root's expiry",
          lambda: d.find_element(By.ID, "identity-warn").is_displayed()
          and "socat was due for renewal 10m" in text_of(d, "#identity-warn")
          and "The active CA root meshshim CA 1 expires in " in text_of(d, "#identity-warn"))
    check("Identity: the tab shows the warning sign too",
          lambda: d.find_element(By.ID, "identity-flag").is_displayed())
    d.execute_script("window.fetch = window.__realFetch;")
    view(d, "nodes")
    view(d, "identity")
    check("Identity: with helperd's real answers the warnings go",
          lambda: not d.find_element(By.ID, "identity-warn").is_displayed()
          and not d.find_element(By.ID, "identity-flag").is_displayed())
    view(d, "nodes")
    check("Nodes: n1 alive, this node",
          lambda: "alive" in text_of(d, '#members tr[data-node="n1"]')
          and "this node" in text_of(d, '#members tr[data-node="n1"]'))

    # Phone width: nothing wider than the screen (tables scroll inside).
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
    for v in ("services", "intentions", "traffic"):
        d.get(BASE + "/ui/#" + v)
        WebDriverWait(d, WAIT).until(lambda _: d.find_element(By.ID, "view-" + v).is_displayed())
        if v == "services":
            check("phone: services shown", lambda: len(by_css(d, "article[data-service]")) == 3)
        if v == "intentions":
            check("phone: matrix shown", lambda: by_css(d, cell % ("web", "socat")))
        time.sleep(0.5)
        w = d.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        record(w[0] <= w[1] and w[1] <= 400, "phone (%s): the page is no wider than the screen (%s)" % (v, w))
        shot(d, "phone-" + v)
    d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    # Forgetting the token: the page is read-only again.
    d.find_element(By.ID, "logout-btn").click()
    check("Forget token: back to reads only",
          lambda: "No token" in text_of(d, "#who")
          and d.execute_script("return sessionStorage.getItem('meshshim.token')") is None)


try:
    main()
except Exception as e:  # noqa: BLE001 - any stop is a failure, said once
    record(False, "the browser run stopped: %s" % str(e).splitlines()[0])
    sys.exit(1)
