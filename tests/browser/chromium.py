"""Headless Chromium, for the tests that look at a page as a person would
(tests/e2e/test_page.py on the local stack, tests/cluster/test_3_dashboard.py
on the test machines): Debian's chromium and chromium-driver, selenium from
the test venv (scripts/install)."""

import os
import shutil

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

# Debian's paths; overridable for other systems.
CHROMIUM = os.environ.get("COUNTER_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("COUNTER_CHROMEDRIVER", "/usr/bin/chromedriver")
WAIT = 10  # seconds, for a page to load


def open_chromium(reach=("127.0.0.1",)):
    """A headless Chromium that reaches the addresses REACH alone: any other
    name or address fails to resolve (no request leaves for the internet)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        assert shutil.which(path), f"{path} not found: scripts/install installs chromium and chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-extensions",
                 "--host-resolver-rules=MAP * ~NOTFOUND" + "".join(f" , EXCLUDE {a}" for a in reach)):
        options.add_argument(flag)
    # Both paths are given: selenium has nothing to look up or download.
    os.environ.setdefault("SE_OFFLINE", "true")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    return driver
