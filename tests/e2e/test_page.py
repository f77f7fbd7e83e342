"""The browser page, driven in headless Chromium (Debian's chromium and
chromium-driver, selenium from the e2e venv of scripts/install:
tests/browser/chromium.py) through the
gateway: it shows the count and which instance answered, and its button
increments the count.
"""

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from chromium import open_chromium
from conftest import CACHE, CONSUL, GATEWAY, get_json, http, wait_for
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

WAIT = 10  # seconds, for anything the page must show
ALLOC = r"[0-9a-f]{8}"  # Nomad's short allocation id, in X-Served-By


@pytest.fixture(scope="module")
def browser():
    driver = open_chromium()
    yield driver
    driver.quit()


def shown_count(driver):
    text = driver.find_element(By.ID, "count").text.strip()
    return int(text) if text.isdigit() else None


def test_the_page_shows_the_count_and_its_button_increments_it(browser):
    browser.get(GATEWAY + "/")
    wait = WebDriverWait(browser, WAIT)
    wait.until(lambda d: shown_count(d) is not None)
    before = shown_count(browser)
    read_by = browser.find_element(By.ID, "read-by").text
    assert re.fullmatch(f"web@{ALLOC}", read_by), f"read from {read_by!r}"

    browser.find_element(By.ID, "inc").click()

    wait.until(lambda d: (shown_count(d) or 0) > before)
    inc_by = wait.until(lambda d: re.fullmatch(f"web-inc@{ALLOC}", d.find_element(By.ID, "inc-by").text))
    assert inc_by
    assert browser.find_element(By.ID, "status").text == ""
    # The page's count is the stack's: a plain read shows at least it.
    assert int(http(GATEWAY + "/").text) >= shown_count(browser) >= before + 1


def refused_cross_site():
    """403s web-inc's instances have answered on /inc, from their own metrics."""
    total = 0
    for entry in get_json(f"{CONSUL}/v1/catalog/service/web-inc"):
        text = http(f"http://{entry['ServiceAddress']}:{entry['ServicePort']}/metrics").text
        for line in text.splitlines():
            if line.startswith('counter_http_requests_total{route="/inc",status="403"}'):
                total += int(float(line.split()[-1]))
    return total


def test_another_sites_page_cannot_make_its_visitors_increment(browser):
    # A page of another origin (another port of 127.0.0.1) that tries what a
    # hostile page would: an image, a form posted by script, a no-cors fetch.
    page = f"""<img src="{GATEWAY}/inc">
<form id="f" method="post" action="{GATEWAY}/inc" target="sink"></form>
<iframe name="sink"></iframe>
<script>document.getElementById("f").submit(); fetch("{GATEWAY}/inc", {{method: "POST", mode: "no-cors"}});</script>
"""

    class Hostile(BaseHTTPRequestHandler):
        def do_GET(self):
            body = page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        before, refused = int(http(GATEWAY + "/").text), refused_cross_site()
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
        # Its three requests reached web-inc and were refused...
        wait_for("web-inc to refuse the hostile page's increments", lambda: refused_cross_site() >= refused + 3)
        # ...and none of them counted.
        assert int(http(GATEWAY + "/").text) == before
    finally:
        server.shutdown()


# Through Traefik's loopback-only dashboard entrypoint, as an operator opens it.
DASHBOARD = "http://127.0.0.1:8079/consoles/counter.html"
# Where the run leaves its picture of the dashboard (README, "Seeing it").
SCREENSHOT = CACHE / "screenshots" / "dashboard-local.png"


def rows(driver, table):
    return [r.text for r in driver.find_elements(By.CSS_SELECTOR, f"#{table} tr")]


def test_the_dashboard_shows_the_machine_its_allocations_the_redis_roles_and_the_alerts(browser):
    """Counter's page in Prometheus (prometheus/consoles/counter.html), as a
    person sees it: every machine, every job's allocations, each Redis and
    its role, the request rates, the alerts; then its picture is saved."""
    # Some traffic, so the request table has figures to show.
    for _ in range(20):
        http(GATEWAY + "/inc", method="POST")

    def complete(d):
        d.get(DASHBOARD)
        allocs = " ".join(rows(d, "allocations"))
        return (any(r.startswith("local yes") for r in rows(d, "machines"))
                and all(f"{job} / {job}" in allocs for job in ("traefik", "web", "web-inc", "prometheus"))
                and {"web", "web-inc", "gateway"} <= {r.split()[0] for r in rows(d, "services")[1:]})

    wait_for("the dashboard to show the machine, the allocations and the services",
             lambda: complete(browser), timeout=60, interval=2)
    redis = rows(browser, "redis")
    assert any(r.startswith("127.0.0.1:6380 primary") for r in redis), redis
    assert any(r.startswith("127.0.0.1:6381 replica") and r.endswith("up") for r in redis), redis
    assert len([r for r in redis if " primary" in r or " replica" in r]) == 2, redis
    sentinels = rows(browser, "sentinels")
    assert any(r.startswith("127.0.0.1:26380 127.0.0.1:6380 ok") for r in sentinels), sentinels
    assert rows(browser, "alerts"), "no alerts table"
    # Never on the public gateway.
    assert http(GATEWAY + "/consoles/counter.html").status == 404
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    browser.set_window_size(1400, 1000)
    browser.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000
