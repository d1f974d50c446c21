"""The dashboard in a real headless Chromium (Selenium + Debian's chromedriver).

Run by scripts/browser-test against a fresh Herald (scripts/with-herald: HERALD_URL, the keys,
HERALD_BIN and HERALD_DATABASE_URL, so `herald admin create` reaches the same database). Before
any account the home page says how to make one; then, in the browser: a logged-out page
redirects to the login; log in; the Test and Live tabs each show only their environment's users;
create a user from the form; toggle a property's "See in Table" and see the column appear; filter
disabled users; add a custom property on a user page; open a user, see their notifications sent
and change a preference; disable a user and see a trigger skip them; a POST without the CSRF
token is refused; an email address a provider reported dead (a local SMTP server accepts the
mail, then a signed hard-bounce report arrives at the bounce webhook) shows as invalid with its
reason and time (and in the history, who heard it), and its Reset button makes it active again.
Screenshots of each main page (laptop and phone widths) go to target/screenshots/. Prints
"N passed, M failed"; exits 1 on any failure.
"""

import datetime
import hashlib
import hmac
import json
import os
import pathlib
import socketserver
import subprocess
import sys
import threading
import traceback

import requests
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

URL = os.environ["HERALD_URL"]
KEYS = {env: os.environ[f"HERALD_{env.upper()}_API_KEY"] for env in ("test", "live")}
USERNAME, PASSWORD = "admin", "a long dashboard password"
BOUNCE_SECRET = "browser-test-bounce-secret-0123"
SHOTS = pathlib.Path(os.environ.get("HERALD_SCREENSHOTS", "target/screenshots"))


def api(method, path, body=None, status=None, env="test"):
    r = requests.request(method, f"{URL}{path}", json=body,
                         headers={"Authorization": f"Bearer {KEYS[env]}"})
    if status is not None:
        assert r.status_code == status, (method, path, r.status_code, r.text)
    return r.json() if r.text else None


def herald(*args, stdin=None):
    """Runs the herald CLI on the server's database."""
    bin_ = os.environ.get("HERALD_BIN", "target/debug/herald")
    return subprocess.run([bin_, "--database-url", os.environ["HERALD_DATABASE_URL"], *args],
                          input=stdin, capture_output=True, text=True, check=True)


def browser():
    options = Options()
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1366,900"]:
        options.add_argument(arg)
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    service = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(service=service, options=options)


def navigate(driver, action):
    """Runs `action` (a click that submits a form or follows a link) and waits for the next
    document, told apart from the old one by a mark set on the old one's window."""
    driver.execute_script("window.heraldOldPage = true;")
    action()
    new_page = "return !window.heraldOldPage && document.readyState === 'complete'"
    WebDriverWait(driver, 10, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script(new_page))


def click(driver, element_id):
    navigate(driver, lambda: driver.find_element(By.ID, element_id).click())


def shot(driver, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, min(max(height + 120, 700), 4000))
    driver.save_screenshot(str(SHOTS / f"dashboard-{name}.png"))
    driver.set_window_size(width, 900)


class SmtpSink(socketserver.ThreadingTCPServer):
    """A mail server on a free local port that accepts every message, as the operator's MTA does
    before the remote side bounces it: each message is queued as `Q<n>`, and each RCPT address is
    kept in `recipients`. Speaks just enough SMTP for Herald's client (no TLS, no AUTH)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _SmtpSession)
        self.port = self.server_address[1]
        self.recipients = []
        self.lock = threading.Lock()
        self.queued = 0
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self):
        self.shutdown()
        self.server_close()


class _SmtpSession(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"220 sink ESMTP\r\n")
        in_data = False
        for raw in self.rfile:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if in_data:
                if line != ".":
                    continue
                in_data = False
                with self.server.lock:
                    self.server.queued += 1
                    reply = f"250 2.0.0 Ok: queued as Q{self.server.queued}"
            else:
                verb = line[:4].upper()
                if verb in ("EHLO", "HELO"):
                    reply = "250 sink"
                elif verb == "RCPT":
                    with self.server.lock:
                        self.server.recipients.append(line.split("<", 1)[-1].split(">", 1)[0])
                    reply = "250 2.1.5 Ok"
                elif verb == "DATA":
                    in_data = True
                    reply = "354 End data with <CR><LF>.<CR><LF>"
                elif verb == "QUIT":
                    self.wfile.write(b"221 Bye\r\n")
                    return
                else:
                    reply = "250 Ok"
            self.wfile.write(reply.encode() + b"\r\n")


def user_ids(driver):
    return [a.text for a in driver.find_elements(By.CSS_SELECTOR, "#users a.user-link")]


def setup():
    for env in ("test", "live"):
        api("POST", "/v1/category/", {"category": "newsletter", "name": "Newsletter",
                                      "section": "Marketing", "default_preference": "opt_in"}, 201, env)
    for i, (name, plan) in enumerate([("Ada Lovelace", "pro"), ("Alan Turing", "free"),
                                      ("Grace Hopper", "pro"), ("Edsger Dijkstra", "team")]):
        uid = name.split()[0].lower()
        api("POST", f"/v1/user/{uid}/", {"name": name, "plan": plan, "age": 30 + i * 7,
                                         "$email": [f"{uid}@example.com"], "country": "GB"}, 201)
    api("POST", "/v1/user/live-customer/", {"name": "Live Customer", "$email": ["customer@example.com"]},
        201, "live")
    api("PATCH", "/v1/user/alan/status/", {"status": "disabled"}, 200)
    api("POST", "/v1/workflow/", {"slug": "welcome", "name": "Welcome", "category": "newsletter",
                                  "policy": "all",
                                  "channels": {"email": {"subject": "Hi", "text": "Hello {{$recipient.name}}"}}}, 201)
    api("POST", "/trigger/", {"workflow": "welcome", "recipients": ["ada"]}, 202)


def welcome_page_before_any_account(driver):
    driver.get(URL + "/")
    assert "herald admin create" in driver.find_element(By.ID, "setup-command").text
    shot(driver, "welcome")
    herald("admin", "create", "--username", USERNAME, "--password-stdin", stdin=PASSWORD + "\n")
    assert USERNAME in herald("admin", "list").stdout


def logged_out_request_redirects_to_login(driver):
    driver.get(URL + "/test/users")
    assert "/login?next=%2Ftest%2Fusers" in driver.current_url, driver.current_url
    assert driver.find_element(By.ID, "username").get_attribute("autocomplete") == "username"


def log_in(driver):
    driver.get(URL + "/login")
    driver.find_element(By.ID, "username").send_keys(USERNAME)
    driver.find_element(By.ID, "password").send_keys("wrong password!!")
    click(driver, "login")
    assert "Wrong username or password" in driver.find_element(By.ID, "login-error").text
    shot(driver, "login")
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    click(driver, "login")
    assert driver.current_url.endswith("/test/users"), driver.current_url
    assert USERNAME in driver.find_element(By.CSS_SELECTOR, "header .who").text


def tabs_show_one_environment(driver):
    driver.get(URL + "/test/users")
    assert "Test environment" in driver.find_element(By.ID, "env-banner").text
    test_ids = user_ids(driver)
    assert {"ada", "alan", "grace", "edsger"} <= set(test_ids) and "live-customer" not in test_ids, test_ids
    assert driver.find_element(By.ID, "tab-test").get_attribute("aria-current") == "page"
    shot(driver, "users")
    click(driver, "tab-live")
    assert driver.current_url.endswith("/live/users"), driver.current_url
    assert user_ids(driver) == ["live-customer"], user_ids(driver)
    assert "Live environment" in driver.find_element(By.ID, "env-banner").text
    assert driver.find_element(By.ID, "tab-live").get_attribute("aria-current") == "page"
    shot(driver, "users-live")
    click(driver, "tab-test")
    assert "live-customer" not in user_ids(driver)


def create_user_from_the_form(driver):
    driver.get(URL + "/test/users")
    click(driver, "new-user")
    driver.find_element(By.ID, "distinct_id").send_keys("katherine")
    driver.find_element(By.ID, "name").send_keys("Katherine Johnson")
    driver.find_element(By.ID, "email").send_keys("not an email")
    click(driver, "create")
    error = driver.find_element(By.ID, "email-error").text
    assert error, "the refusal is shown beside the email field"
    assert driver.find_element(By.ID, "distinct_id").get_attribute("value") == "katherine", "kept"
    shot(driver, "new-user-error")
    email = driver.find_element(By.ID, "email")
    email.clear()
    email.send_keys("katherine@example.com")
    click(driver, "create")
    assert driver.current_url.split("?")[0].endswith("/test/users/katherine"), driver.current_url
    assert driver.find_element(By.ID, "saved").text == "User created."
    user = api("GET", "/v1/user/katherine/", status=200)
    assert user["properties"]["name"] == "Katherine Johnson" and user["$email"][0]["value"] == "katherine@example.com"


def see_in_table_adds_a_column(driver):
    driver.get(URL + "/test/users")
    headers = [th.text.lower() for th in driver.find_elements(By.CSS_SELECTOR, "#users thead th")]
    assert "plan" not in headers, headers
    driver.get(URL + "/test/properties")
    row = driver.find_element(By.ID, "p-plan")
    assert row.find_element(By.CSS_SELECTOR, ".users-count").text == "4", row.text
    assert driver.find_element(By.ID, "toggle-plan").get_attribute("aria-pressed") == "false"
    click(driver, "toggle-plan")
    assert driver.find_element(By.ID, "toggle-plan").get_attribute("aria-pressed") == "true"
    shot(driver, "properties")
    driver.get(URL + "/test/users?sort=distinct_id")
    headers = [th.text.lower() for th in driver.find_elements(By.CSS_SELECTOR, "#users thead th")]
    assert "plan" in headers, headers
    col = headers.index("plan")
    cells = {r.find_element(By.CSS_SELECTOR, "th a").text: r.find_elements(By.CSS_SELECTOR, "th, td")[col].text
             for r in driver.find_elements(By.CSS_SELECTOR, "#users tbody tr")}
    assert cells["ada"] == "pro" and cells["alan"] == "free", cells
    shot(driver, "users-with-plan")


def filter_disabled_users(driver):
    driver.get(URL + "/test/users")
    Select(driver.find_element(By.ID, "status")).select_by_value("disabled")
    click(driver, "apply")
    assert user_ids(driver) == ["alan"], user_ids(driver)
    # The count of a filtered listing arrives after the page.
    WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "count").text == "1 user")
    # A property filter from the form, on top: none of the disabled users is on pro.
    Select(driver.find_element(By.ID, "fk-0")).select_by_value("plan")
    driver.find_element(By.ID, "fv-0").send_keys("pro")
    click(driver, "apply")
    assert user_ids(driver) == [], user_ids(driver)
    Select(driver.find_element(By.ID, "status")).select_by_value("")
    click(driver, "apply")
    assert sorted(user_ids(driver)) == ["ada", "grace"], user_ids(driver)
    shot(driver, "users-filtered")


def add_a_custom_property(driver):
    driver.get(URL + "/test/users/grace")
    # A key the registry knows picks its type, and the value input follows the type.
    key = driver.find_element(By.ID, "prop-key")
    key.send_keys("age")
    assert Select(driver.find_element(By.ID, "prop-type")).first_selected_option.get_attribute("value") == "number"
    assert driver.find_element(By.ID, "prop-value").get_attribute("type") == "number"
    key.clear()
    # A refusal is shown beside the form.
    key.send_keys("badges")
    Select(driver.find_element(By.ID, "prop-type")).select_by_value("json")
    driver.find_element(By.ID, "prop-value").send_keys("[1,")
    click(driver, "prop-save")
    assert "not valid JSON" in driver.find_element(By.ID, "property-error").text
    driver.find_element(By.ID, "prop-key").send_keys("rank")
    Select(driver.find_element(By.ID, "prop-type")).select_by_value("number")
    driver.find_element(By.ID, "prop-value").send_keys("7")
    click(driver, "prop-save")
    assert driver.find_element(By.ID, "custom-rank").text == "7"
    assert api("GET", "/v1/user/grace/", status=200)["properties"]["rank"] == 7


def notifications_and_preferences(driver):
    driver.get(URL + "/test/users/ada")
    rows = driver.find_elements(By.CSS_SELECTOR, "#messages tr.message")
    assert rows, "ada's notification is listed"
    assert "welcome" in rows[0].text and "email" in rows[0].text, rows[0].text
    # Its status history opens.
    rows[0].find_element(By.TAG_NAME, "summary").click()
    assert rows[0].find_element(By.CSS_SELECTOR, "details ol li").is_displayed()
    shot(driver, "user")
    # Filter by a status no message has: none.
    Select(driver.find_element(By.ID, "m-status")).select_by_value("delivered")
    click(driver, "m-apply")
    assert not driver.find_elements(By.CSS_SELECTOR, "#messages tr.message")
    # Opt ada out of the newsletter.
    driver.get(URL + "/test/users/ada")
    box = driver.find_element(By.ID, "category-newsletter")
    assert box.is_selected()
    box.click()
    click(driver, "preferences-save")
    assert driver.find_element(By.ID, "saved").text == "Preferences saved."
    assert not driver.find_element(By.ID, "category-newsletter").is_selected()
    cat = api("GET", "/v1/user/ada/preference/category/newsletter/", status=200)
    assert cat["preference"] == "opt_out", cat


def disable_a_user_and_a_trigger_skips_them(driver):
    driver.get(URL + "/test/users/grace")
    assert driver.find_element(By.ID, "user-status").text == "enabled"
    assert driver.find_element(By.ID, "status-switch").text == "Disable all notifications"
    click(driver, "status-switch")
    assert driver.find_element(By.ID, "user-status").text == "disabled"
    assert api("GET", "/v1/user/grace/", status=200)["status"] == "disabled"
    api("POST", "/trigger/", {"workflow": "welcome", "recipients": ["grace"]}, 202)
    driver.get(URL + "/test/users/grace")
    reasons = [r.text for r in driver.find_elements(By.CSS_SELECTOR, "#messages .message-reason")]
    statuses = [r.text for r in driver.find_elements(By.CSS_SELECTOR, "#messages .message-status")]
    assert reasons and reasons[0] == "user_disabled" and statuses[0] == "skipped", (statuses, reasons)
    shot(driver, "user-disabled")


def post_without_csrf_is_refused(driver):
    session = driver.get_cookie("herald_session")
    assert session and session.get("httpOnly"), session
    jar = {"herald_session": session["value"]}
    r = requests.post(f"{URL}/test/properties/plan", data={"show_in_table": "false"}, cookies=jar,
                      allow_redirects=False)
    assert r.status_code == 403, (r.status_code, r.text[:200])
    prop = api("GET", "/v1/property/plan/", status=200)
    assert prop["show_in_table"] is True, prop
    # The same session with its token works (the token is on every page's forms).
    driver.get(URL + "/test/properties")
    token = driver.find_element(By.CSS_SELECTOR, "#p-plan input[name=csrf]").get_attribute("value")
    r = requests.post(f"{URL}/test/properties/plan", data={"show_in_table": "false", "csrf": token},
                      cookies=jar, allow_redirects=False)
    assert r.status_code == 303, r.status_code
    assert api("GET", "/v1/property/plan/", status=200)["show_in_table"] is False


def phone_width(driver):
    driver.set_window_size(390, 900)
    try:
        driver.get(URL + "/test/users")
        assert "Test environment" in driver.find_element(By.ID, "env-banner").text
        # The page does not scroll sideways: only the table does, inside its frame.
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, overflow
        shot(driver, "users-phone")
        driver.get(URL + "/test/users/ada")
        shot(driver, "user-phone")
    finally:
        driver.set_window_size(1366, 900)


def other_pages(driver):
    """Categories, workflows (with a preview for a user), providers and keys: each page opens from
    the navigation and shows this environment's records."""
    driver.get(URL + "/test/users")
    click(driver, "nav-categories")
    assert "newsletter" in driver.find_element(By.ID, "categories").text
    shot(driver, "categories")
    click(driver, "nav-workflows")
    navigate(driver, lambda: driver.find_element(By.LINK_TEXT, "welcome").click())
    driver.find_element(By.ID, "preview-user").send_keys("ada")
    click(driver, "preview")
    assert "Hello Ada Lovelace" in driver.find_element(By.ID, "preview-email").text
    shot(driver, "workflow")
    click(driver, "nav-providers")
    assert "No provider configured" in driver.find_element(By.ID, "providers").text
    shot(driver, "providers")
    click(driver, "nav-keys")
    assert KEYS["test"][:12] in driver.find_element(By.ID, "keys").text
    shot(driver, "keys")


def newest_message(driver, uid, status, count):
    """Waits (polling the API, as the worker sends in the background) until `uid` has `count`
    messages and the newest is `status`, and returns it."""
    def ready(_):
        results = api("GET", f"/v1/user/{uid}/message/", status=200)["results"]
        return len(results) == count and results[0]["status"] == status and results[0]
    return WebDriverWait(driver, 20, poll_frequency=0.2).until(
        ready, f"{uid}'s message {count} is not {status}")


def identity_row(driver, value):
    rows = [r for r in driver.find_elements(By.CSS_SELECTOR, "#identities .identity")
            if r.find_element(By.CSS_SELECTOR, ".mono").text == value]
    assert len(rows) == 1, [r.text for r in driver.find_elements(By.CSS_SELECTOR, "#identities .identity")]
    return rows[0]


def history_rows(driver):
    """The user page's history, newest first: who, action and changes (one string per line)."""
    return [[c.text for c in r.find_elements(By.TAG_NAME, "td")[1:]]
            for r in driver.find_elements(By.CSS_SELECTOR, "#history tbody tr")]


def an_invalid_identity_resets_from_the_user_page(driver):
    """Identity health as a deployment hears it: the SMTP server accepts Margaret's receipt, then
    the mail system posts a signed hard-bounce report for it to the bounce webhook. (Runs after
    other_pages, which expects no provider.)"""
    address = "margaret@example.com"
    sink = SmtpSink()
    try:
        api("PUT", "/v1/provider/email/", {"kind": "smtp", "host": "127.0.0.1", "port": sink.port,
                                           "tls": "none", "from": "herald@example.com",
                                           "bounce_secret": BOUNCE_SECRET}, 201)
        api("POST", "/v1/user/margaret/", {"name": "Margaret Hamilton", "$email": [address]}, 201)
        api("POST", "/v1/workflow/", {"slug": "receipt", "name": "Receipt", "policy": "all",
                                      "channels": {"email": {"subject": "Your receipt",
                                                             "text": "Thanks, {{$recipient.name}}"}}}, 201)
        api("POST", "/trigger/", {"workflow": "receipt", "recipients": ["margaret"]}, 202)
        sent = newest_message(driver, "margaret", "sent", 1)
        assert sink.recipients == [address], sink.recipients
        assert sent["provider_id"] == "Q1", sent

        # The bounce names the SMTP queue id, as a report built from a DSN does; signed with the
        # provider's bounce_secret over the exact bytes sent.
        report = json.dumps({"provider_id": sent["provider_id"], "recipient": address,
                             "type": "hard", "reason": "550 5.1.1 user unknown"}).encode()
        signature = "sha256=" + hmac.new(BOUNCE_SECRET.encode(), report, hashlib.sha256).hexdigest()
        r = requests.post(f"{URL}/v1/callback/email/test/", data=report,
                          headers={"X-Herald-Signature": signature, "Content-Type": "application/json"})
        assert r.status_code == 200 and r.json() == {"status": "success", "changed": True}, r.text
        dead = api("GET", "/v1/user/margaret/", status=200)["$email"][0]
        assert dead["perma_status"] == "invalid", dead
        assert dead["perma_reason"] == "hard bounce: 550 5.1.1 user unknown", dead
        at = datetime.datetime.fromisoformat(dead["perma_at"])
        assert abs(datetime.datetime.now(datetime.timezone.utc) - at) < datetime.timedelta(minutes=5), at

        driver.get(URL + "/test/users/margaret")
        row = identity_row(driver, address)
        assert [b.text for b in row.find_elements(By.CSS_SELECTOR, ".badge")] == ["active", "invalid"], row.text
        assert row.find_element(By.CSS_SELECTOR, ".badge[title=perma_status]").text == "invalid"
        shown_at = at.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        assert row.find_element(By.CSS_SELECTOR, ".perma-reason").text == \
            f"hard bounce: 550 5.1.1 user unknown · {shown_at}", row.text
        statuses = [s.text for s in driver.find_elements(By.CSS_SELECTOR, "#messages .message-status")]
        reasons = [s.text for s in driver.find_elements(By.CSS_SELECTOR, "#messages .message-reason")]
        assert statuses[:1] == ["failed"] and reasons[:1] == ["hard bounce: 550 5.1.1 user unknown"], \
            (statuses, reasons)
        assert history_rows(driver)[0] == [
            "callback email", "updated",
            f"email {address}: perma_status → invalid (hard bounce: 550 5.1.1 user unknown)"], \
            history_rows(driver)
        shot(driver, "user-identity-invalid")

        reset = row.find_element(By.CSS_SELECTOR, f"button[aria-label^='Reset {address} on email']")
        assert reset.text == "Reset"
        navigate(driver, reset.click)
        assert driver.find_element(By.ID, "saved").text == "Identity reset: it will be sent to again."
        row = identity_row(driver, address)
        assert [b.text for b in row.find_elements(By.CSS_SELECTOR, ".badge")] == ["active"], row.text
        assert not row.find_elements(By.CSS_SELECTOR, ".perma-reason"), row.text
        assert [b.text for b in row.find_elements(By.TAG_NAME, "button")] == ["Remove"], row.text
        assert history_rows(driver)[0] == [
            f"dashboard {USERNAME}", "updated", f"email {address}: perma_status → active"], history_rows(driver)
        shot(driver, "user-identity-reset")
        user = api("GET", "/v1/user/margaret/", status=200)
        alive = user["$email"][0]
        assert alive["perma_status"] == "active" and "perma_reason" not in alive and "perma_at" not in alive, alive
        event = api("GET", "/v1/user/margaret/history/", status=200)["results"][0]
        assert event["actor"] == {"kind": "dashboard", "id": USERNAME}, event

        # And the address is sent to again.
        api("POST", "/trigger/", {"workflow": "receipt", "recipients": ["margaret"]}, 202)
        newest_message(driver, "margaret", "sent", 2)
        assert sink.recipients == [address, address], sink.recipients
    finally:
        sink.close()


def log_out(driver):
    driver.get(URL + "/test/users")
    click(driver, "logout")
    assert "/login" in driver.current_url
    driver.get(URL + "/test/users")
    assert "/login" in driver.current_url, "the session has ended"


def main():
    passed, failed = 0, 0
    setup()
    driver = browser()
    try:
        for check in [welcome_page_before_any_account, logged_out_request_redirects_to_login, log_in,
                      tabs_show_one_environment, create_user_from_the_form, see_in_table_adds_a_column,
                      filter_disabled_users, add_a_custom_property, notifications_and_preferences,
                      disable_a_user_and_a_trigger_skips_them, post_without_csrf_is_refused,
                      phone_width, other_pages, an_invalid_identity_resets_from_the_user_page,
                      log_out]:
            try:
                check(driver)
            except Exception as e:  # noqa: BLE001 - report every failure, keep going
                failed += 1
                print(f"FAIL {check.__name__}: {e!r}")
                traceback.print_exc()
                shot(driver, f"failed-{check.__name__}")
            else:
                passed += 1
                print(f"PASS {check.__name__}")
    finally:
        driver.quit()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
