#!/usr/bin/python3
"""Loads medic's on-call page in a real headless Chromium (Debian chromium and
chromium-driver, through python3-selenium) and checks what it shows.

    page_check.py URL SCREENSHOT TEXT...

Waits (up to 20 s) until the page has loaded its data and every TEXT appears
in the page's visible text, then writes a PNG screenshot to SCREENSHOT.
Exit 0 when all appeared; 1 with the missing texts and the page text when
not; 2 when the browser cannot be started (the message says why).
"""
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1400,1000", "--no-first-run"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def main(argv):
    url, shot, wanted = argv[1], argv[2], argv[3:]
    try:
        driver = browser()
    except Exception as e:  # the browser's own error is the useful message
        print(f"page_check: cannot start headless chromium: {e}", file=sys.stderr)
        return 2
    try:
        start = time.monotonic()
        driver.get(url)
        seen = {"text": "", "missing": wanted}

        def shown(d):
            # The page marks its body once its data has loaded; then every
            # wanted text must be in what a person would see.
            loaded = d.execute_script("return document.body.dataset.loaded === '1'")
            seen["text"] = d.find_element("tag name", "body").text
            seen["missing"] = [w for w in wanted if w not in seen["text"]]
            return loaded and not seen["missing"]

        try:
            WebDriverWait(driver, 20).until(shown)
        except TimeoutException:
            pass
        text, missing = seen["text"], seen["missing"]
        loaded_in = time.monotonic() - start
        driver.save_screenshot(shot)
        if missing:
            print(f"page_check: missing {missing!r}; the page shows:\n{text}", file=sys.stderr)
            return 1
        shown_ms = driver.execute_script("return document.body.dataset.shownMs")
        print(f"page_check: all {len(wanted)} texts shown after {loaded_in:.2f}s"
              f" (the page had its data on screen {shown_ms} ms after navigation began)")
        return 0
    finally:
        driver.quit()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
