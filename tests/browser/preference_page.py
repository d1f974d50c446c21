"""The hosted preference page in a real headless Chromium (Selenium + Debian's chromedriver).

Run by scripts/browser-test against a fresh Herald (HERALD_URL, HERALD_TEST_API_KEY). Sets up
categories and a user through the API, mints a link, then in the browser: loads the page, changes
preferences, saves, reloads and sees them kept; checks the API agrees; and checks that an altered
link shows a clear page with no data. Prints "N passed, M failed"; exits 1 on any failure.
"""

import os
import sys
import traceback

import requests
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

URL = os.environ["HERALD_URL"]
AUTH = {"Authorization": f"Bearer {os.environ['HERALD_TEST_API_KEY']}"}


def api(method, path, body=None, status=None):
    r = requests.request(method, f"{URL}{path}", json=body, headers=AUTH)
    if status is not None:
        assert r.status_code == status, (method, path, r.status_code, r.text)
    return r.json() if r.text else None


def browser():
    options = Options()
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]:
        options.add_argument(arg)
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    service = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(service=service, options=options)


def submit(driver):
    """Clicks Save and waits for the page the form post redirects to: a new document, told apart
    from the old one by a mark set on the old one's window (element staleness checks race with
    the navigation in recent Chromium versions)."""
    driver.execute_script("window.heraldOldPage = true;")
    driver.find_element(By.ID, "save").click()
    new_page = "return !window.heraldOldPage && document.readyState === 'complete'"
    WebDriverWait(driver, 10, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script(new_page))
    WebDriverWait(driver, 10).until(EC.presence_of_element_located((By.ID, "saved")))


def setup():
    for body in [
        {"category": "newsletter", "name": "Newsletter", "section": "Marketing", "default_preference": "opt_in"},
        {"category": "security", "name": "Security alerts", "default_preference": "mandatory"},
    ]:
        api("POST", "/v1/category/", body, 201)
    api("POST", "/v1/user/ada/", {"name": "Ada", "$email": ["ada@example.com"], "$sms": ["+447700900123"]}, 201)
    return api("POST", "/v1/user/ada/preference/link/", {"expires_in_days": 1}, 201)


def change_and_keep(driver, link):
    driver.get(link["url"])
    assert "Your notification preferences" in driver.page_source, driver.page_source
    newsletter = driver.find_element(By.ID, "category-newsletter")
    security = driver.find_element(By.ID, "category-security")
    assert newsletter.is_selected() and newsletter.is_enabled()
    assert security.is_selected() and not security.is_enabled(), "mandatory stays on"
    # Keep the newsletter but not by SMS, and make email essential-only.
    driver.find_element(By.ID, "channel-newsletter-sms").click()
    driver.find_element(By.ID, "restrict-email").click()
    submit(driver)
    assert driver.find_element(By.ID, "saved").text == "Saved."
    driver.refresh()
    assert not driver.find_element(By.ID, "channel-newsletter-sms").is_selected(), "kept after reload"
    assert driver.find_element(By.ID, "channel-newsletter-email").is_selected()
    assert driver.find_element(By.ID, "restrict-email").is_selected()
    cat = api("GET", "/v1/user/ada/preference/category/newsletter/", status=200)
    sms = [c for c in cat["channels"] if c["channel"] == "sms"][0]
    assert cat["preference"] == "opt_in" and sms["preference"] == "opt_out", cat
    # Now opt out of the newsletter altogether.
    driver.find_element(By.ID, "category-newsletter").click()
    submit(driver)
    driver.get(link["url"])
    assert not driver.find_element(By.ID, "category-newsletter").is_selected()
    assert api("GET", "/v1/user/ada/preference/category/newsletter/", status=200)["preference"] == "opt_out"


def altered_links_show_nothing(driver, link):
    token = link["token"]
    for bad in [token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1], "not-a-token"]:
        driver.get(f"{URL}/preferences/{bad}")
        text = driver.find_element(By.TAG_NAME, "body").text
        assert "not valid" in text, text
        assert "Newsletter" not in driver.page_source and "ada" not in driver.page_source.lower().replace("<", " ")


def main():
    passed, failed = 0, 0
    link = setup()
    driver = browser()
    try:
        for check in [change_and_keep, altered_links_show_nothing]:
            try:
                check(driver, link)
            except Exception as e:  # noqa: BLE001 - report every failure, keep going
                failed += 1
                print(f"FAIL {check.__name__}: {e!r}")
                traceback.print_exc()
            else:
                passed += 1
                print(f"PASS {check.__name__}")
    finally:
        driver.quit()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
