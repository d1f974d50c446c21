//! The dashboard over HTTP: the welcome page, login (sessions in the store, throttled per
//! account), the redirect of a logged-out request, CSRF refusals, logout, environments kept
//! apart, and the main pages' forms going through the same rules as the API. The browser test
//! (tests/browser/dashboard.py) drives the same pages in Chromium.

use super::harness::TestApp;
use chrono::Utc;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::json;

const PASSWORD: &str = "correct horse battery";

/// A browser without a cookie jar of its own: it keeps the session cookie it was given and
/// follows no redirect, so each answer can be looked at.
struct Browser<'a> {
    app: &'a TestApp,
    http: reqwest::Client,
    cookie: String,
}

struct Page {
    status: u16,
    location: Option<String>,
    set_cookies: Vec<String>,
    body: String,
    retry_after: Option<String>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Browser {
            app,
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            cookie: String::new(),
        }
    }

    async fn read(resp: reqwest::Response) -> Page {
        let h = resp.headers();
        let location = h.get(LOCATION).map(|v| v.to_str().unwrap().to_owned());
        let set_cookies = h
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let retry_after = h.get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        Page {
            status: resp.status().as_u16(),
            location,
            set_cookies,
            retry_after,
            body: resp.text().await.unwrap(),
        }
    }

    async fn get(&self, path: &str) -> Page {
        let resp = self
            .http
            .get(format!("{}{path}", self.app.base))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .unwrap();
        Self::read(resp).await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let resp = self
            .http
            .post(format!("{}{path}", self.app.base))
            .header(COOKIE, &self.cookie)
            .form(form)
            .send()
            .await
            .unwrap();
        Self::read(resp).await
    }

    /// Logs in through the form; keeps the session cookie when it works.
    async fn login(&mut self, username: &str, password: &str) -> Page {
        let form = self.get("/login").await;
        let token = cookie_value(&form.set_cookies, "herald_login").expect("a login token");
        self.cookie = format!("herald_login={token}");
        let page = self
            .post(
                "/login",
                &[
                    ("csrf", &token),
                    ("username", username),
                    ("password", password),
                    ("next", "/test/users"),
                ],
            )
            .await;
        if let Some(session) = cookie_value(&page.set_cookies, "herald_session") {
            self.cookie = format!("herald_session={session}");
        }
        page
    }

    /// The CSRF token the pages' forms carry.
    async fn csrf(&self) -> String {
        let page = self.get("/test/users").await;
        hidden_csrf(&page.body)
    }
}

fn cookie_value(set_cookies: &[String], name: &str) -> Option<String> {
    set_cookies.iter().find_map(|c| {
        c.strip_prefix(&format!("{name}="))
            .map(|rest| rest.split(';').next().unwrap().to_owned())
            .filter(|v| !v.is_empty())
    })
}

fn hidden_csrf(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token");
    let rest = &html[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

async fn operator(app: &TestApp) {
    herald_server::admin::create(app.store.as_ref(), "ada", PASSWORD, Utc::now())
        .await
        .expect("an operator");
}

#[tokio::test]
async fn without_an_account_the_home_page_says_how_to_make_one() {
    let app = TestApp::spawn().await;
    let b = Browser::new(&app);
    let home = b.get("/").await;
    assert_eq!(home.status, 200);
    assert!(
        home.body
            .contains("herald admin create --username admin --password-stdin"),
        "{}",
        home.body
    );
    operator(&app).await;
    let home = b.get("/").await;
    assert_eq!(
        (home.status, home.location.as_deref()),
        (303, Some("/login"))
    );
}

#[tokio::test]
async fn logged_out_requests_go_to_the_login_page_and_change_nothing() {
    let app = TestApp::spawn().await;
    operator(&app).await;
    let b = Browser::new(&app);
    for path in ["/test/users", "/live/properties", "/test/users/ada"] {
        let page = b.get(path).await;
        assert_eq!(page.status, 303, "{path}");
        let to = page.location.unwrap();
        assert!(to.starts_with("/login?next=%2F"), "{path}: {to}");
    }
    let before = app
        .call("GET", "/v1/property/name/", None)
        .await
        .expect(200);
    let posted = b
        .post("/test/properties/name", &[("show_in_table", "false")])
        .await;
    assert_eq!(posted.status, 303);
    assert_eq!(
        posted.location.as_deref(),
        Some("/login?next=%2Ftest%2Fusers"),
        "a form post comes back to a page, not to its POST-only path"
    );
    // A forged session cookie is no session.
    let mut forged = Browser::new(&app);
    forged.cookie = "herald_session=not-a-session".into();
    assert_eq!(forged.get("/test/users").await.status, 303);
    let after = app
        .call("GET", "/v1/property/name/", None)
        .await
        .expect(200);
    assert_eq!(before, after, "nothing changed");
}

#[tokio::test]
async fn login_opens_a_stored_session_with_a_safe_cookie_and_logout_ends_it() {
    let app = TestApp::spawn().await;
    operator(&app).await;
    let mut b = Browser::new(&app);
    let wrong = b.login("ada", "wrong password!").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("Wrong username or password."));
    let unknown = b.login("nobody", PASSWORD).await;
    assert_eq!(
        unknown.status, 401,
        "an unknown name answers as a wrong password"
    );
    assert!(unknown.body.contains("Wrong username or password."));

    let ok = b.login("Ada", PASSWORD).await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(ok.location.as_deref(), Some("/test/users"));
    let cookie = ok
        .set_cookies
        .iter()
        .find(|c| c.starts_with("herald_session="))
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let users = b.get("/test/users").await;
    assert_eq!(users.status, 200);
    assert!(users.body.contains("Signed in as <strong>ada</strong>"));
    // The session is in the store: another node (a second app on the same database would do;
    // the store is what it reads) finds it by the cookie's hash only.
    let id = b.cookie.trim_start_matches("herald_session=").to_owned();
    let stored = app
        .store
        .get_session(&herald_core::admin::hash_session_id(&id), Utc::now())
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(stored.username.as_str(), "ada");

    // Logging out needs the token too, then the cookie opens nothing.
    let csrf = b.csrf().await;
    assert_eq!(b.post("/logout", &[]).await.status, 403);
    let out = b.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!((out.status, out.location.as_deref()), (303, Some("/login")));
    assert_eq!(b.get("/test/users").await.status, 303);
}

#[tokio::test]
async fn cookies_are_secure_behind_https() {
    let app = TestApp::spawn_with(|c| c.public_url = "https://herald.example.com".into()).await;
    operator(&app).await;
    let mut b = Browser::new(&app);
    let ok = b.login("ada", PASSWORD).await;
    let cookie = ok
        .set_cookies
        .iter()
        .find(|c| c.starts_with("herald_session="))
        .unwrap();
    assert!(cookie.ends_with("; Secure"), "{cookie}");
}

#[tokio::test]
async fn a_login_without_its_token_is_refused() {
    let app = TestApp::spawn().await;
    operator(&app).await;
    let b = Browser::new(&app);
    let page = b
        .post("/login", &[("username", "ada"), ("password", PASSWORD)])
        .await;
    assert_eq!(page.status, 403);
    assert!(page
        .set_cookies
        .iter()
        .all(|c| !c.starts_with("herald_session=")));
}

#[tokio::test]
async fn logins_are_throttled_per_account_until_a_password_reset() {
    let app = TestApp::spawn().await;
    operator(&app).await;
    let mut b = Browser::new(&app);
    let limit = herald_core::admin::ThrottlePolicy::ACCOUNT.max_attempts;
    for i in 0..limit {
        assert_eq!(
            b.login("ada", "wrong password!").await.status,
            401,
            "attempt {i}"
        );
    }
    // The next attempt is refused before the password is looked at, even the right one.
    let throttled = b.login("ada", PASSWORD).await;
    assert_eq!(throttled.status, 429, "{}", throttled.body);
    assert!(throttled.body.contains("Too many login attempts"));
    let wait: i64 = throttled.retry_after.unwrap().parse().unwrap();
    assert!(wait > 0 && wait <= 15 * 60, "{wait}");
    assert!(throttled
        .set_cookies
        .iter()
        .all(|c| !c.starts_with("herald_session=")));
    // Another account from the same address is not locked by it.
    herald_server::admin::create(app.store.as_ref(), "bob", PASSWORD, Utc::now())
        .await
        .unwrap();
    assert_eq!(Browser::new(&app).login("bob", PASSWORD).await.status, 303);
    // `herald admin reset-password` clears the account's count.
    herald_server::admin::reset_password(app.store.as_ref(), "ada", "a brand new password")
        .await
        .unwrap();
    assert_eq!(b.login("ada", "a brand new password").await.status, 303);
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    operator(&app).await;
    app.call("POST", "/v1/user/ada/", Some(json!({"name": "Ada"})))
        .await
        .expect(201);
    let mut b = Browser::new(&app);
    b.login("ada", PASSWORD).await;
    let csrf = b.csrf().await;
    let before = app.snapshot(herald_core::Env::Test).await;
    for (path, form) in [
        ("/test/properties/name", vec![("show_in_table", "false")]),
        ("/test/users/ada/status", vec![("status", "disabled")]),
        ("/test/users/ada/delete", vec![("confirm", "ada")]),
        ("/test/users/new", vec![("distinct_id", "eve")]),
    ] {
        let page = b.post(path, &form).await;
        assert_eq!(page.status, 403, "{path}");
        assert!(page.body.contains("nothing was changed"), "{path}");
        let mut wrong = form.clone();
        wrong.push(("csrf", "not-the-token"));
        assert_eq!(b.post(path, &wrong).await.status, 403, "{path}");
    }
    assert_eq!(app.snapshot(herald_core::Env::Test).await, before);
    let property = app
        .call("GET", "/v1/property/name/", None)
        .await
        .expect(200);
    assert_eq!(property["show_in_table"], true);
    // With the token, the same form works.
    let ok = b
        .post(
            "/test/users/ada/status",
            &[("status", "disabled"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(ok.status, 303);
    assert_eq!(app.user("ada").await["status"], "disabled");
}

#[tokio::test]
async fn each_environment_shows_only_its_own_users() {
    let app = TestApp::spawn().await;
    operator(&app).await;
    app.call_in(
        herald_core::Env::Test,
        "POST",
        "/v1/user/test-only/",
        Some(json!({"name": "T"})),
    )
    .await
    .expect(201);
    app.call_in(
        herald_core::Env::Live,
        "POST",
        "/v1/user/live-only/",
        Some(json!({"name": "L"})),
    )
    .await
    .expect(201);
    let mut b = Browser::new(&app);
    b.login("ada", PASSWORD).await;
    let test = b.get("/test/users").await.body;
    assert!(test.contains("test-only") && !test.contains("live-only"));
    assert!(test.contains("Test environment"), "the banner");
    let live = b.get("/live/users").await.body;
    assert!(live.contains("live-only") && !live.contains("test-only"));
    assert!(!live.contains("Test environment"));
    // A live user's page is not found in test.
    assert_eq!(b.get("/test/users/live-only").await.status, 404);
    assert_eq!(b.get("/live/users/live-only").await.status, 200);
}

#[tokio::test]
async fn the_main_pages_go_through_the_api_rules() {
    let app = TestApp::spawn().await;
    operator(&app).await;
    let mut b = Browser::new(&app);
    b.login("ada", PASSWORD).await;
    let csrf = b.csrf().await;
    // Create a user from the form; a bad email is refused beside its field.
    let bad = b
        .post(
            "/test/users/new",
            &[
                ("csrf", &csrf),
                ("distinct_id", "eve"),
                ("email", "not-an-email"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("id=\"email-error\""), "{}", bad.body);
    let made = b
        .post(
            "/test/users/new",
            &[
                ("csrf", &csrf),
                ("distinct_id", "eve"),
                ("name", "Eve"),
                ("email", "eve@example.com"),
            ],
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.body);
    let eve = app.user("eve").await;
    assert_eq!(eve["$email"][0]["value"], "eve@example.com");
    let history = app
        .call("GET", "/v1/user/eve/history/", None)
        .await
        .expect(200);
    assert_eq!(
        history["results"][0]["actor"],
        json!({"kind": "dashboard", "id": "ada"})
    );
    let again = b
        .post(
            "/test/users/new",
            &[("csrf", &csrf), ("distinct_id", "eve")],
        )
        .await;
    assert_eq!(again.status, 400);
    assert!(again.body.contains("exists already"));

    // A custom property with a typed value; a bad number is refused beside the form.
    let nan = b
        .post(
            "/test/users/eve/edit",
            &[
                ("csrf", &csrf),
                ("action", "set_property"),
                ("key", "age"),
                ("type", "number"),
                ("value", "old"),
            ],
        )
        .await;
    assert_eq!(nan.status, 400);
    assert!(nan.body.contains("id=\"property-error\""));
    assert!(
        nan.body.contains("&#39;old&#39; is not a number")
            || nan.body.contains("'old' is not a number"),
        "{}",
        nan.body
    );
    let set = b
        .post(
            "/test/users/eve/edit",
            &[
                ("csrf", &csrf),
                ("action", "set_property"),
                ("key", "age"),
                ("type", "number"),
                ("value", "37"),
            ],
        )
        .await;
    assert_eq!(set.status, 303);
    assert_eq!(app.user("eve").await["properties"]["age"], 37);
    // A reserved key is refused by the same rule as the API's.
    let reserved = b
        .post(
            "/test/users/eve/edit",
            &[
                ("csrf", &csrf),
                ("action", "set_property"),
                ("key", "ss_x"),
                ("type", "string"),
                ("value", "1"),
            ],
        )
        .await;
    assert_eq!(reserved.status, 400, "{}", reserved.body);

    // An edit larger than the API allows one edit is refused the same way.
    let big = "x".repeat(11 * 1024);
    let too_big = b
        .post(
            "/test/users/eve/edit",
            &[
                ("csrf", &csrf),
                ("action", "set_property"),
                ("key", "bio"),
                ("type", "string"),
                ("value", &big),
            ],
        )
        .await;
    assert_eq!(too_big.status, 400);
    assert!(
        too_big.body.contains("at most 10240 bytes"),
        "{}",
        too_big.body
    );
    // An edit of a user that is gone does not bring them back.
    let ghost = b
        .post(
            "/test/users/ghost/edit",
            &[
                ("csrf", &csrf),
                ("action", "set_property"),
                ("key", "x"),
                ("type", "string"),
                ("value", "1"),
            ],
        )
        .await;
    assert_eq!(ghost.status, 404);
    app.call("GET", "/v1/user/ghost/", None).await.expect(404);

    // See in Table: the column appears on the users page.
    let before = b.get("/test/users").await.body;
    assert!(!before.contains("<th scope=\"col\">age</th>"));
    assert!(before.contains("<th scope=\"col\">Email</th>"));
    assert!(
        !before.contains("<th scope=\"col\">SMS</th>"),
        "a column no user carries is left out"
    );
    let toggled = b
        .post(
            "/test/properties/age",
            &[("csrf", &csrf), ("show_in_table", "true")],
        )
        .await;
    assert_eq!(toggled.status, 303);
    let after = b.get("/test/users").await.body;
    assert!(after.contains("<th scope=\"col\">age</th>"), "{after}");
    assert!(after.contains(">37</td>"));

    // The status filter: a disabled user only under "disabled".
    app.call("POST", "/v1/user/zed/", Some(json!({"name": "Zed"})))
        .await
        .expect(201);
    b.post(
        "/test/users/zed/status",
        &[("csrf", &csrf), ("status", "disabled")],
    )
    .await;
    let disabled = b.get("/test/users?status=disabled").await.body;
    assert!(disabled.contains(">zed</a>") && !disabled.contains(">eve</a>"));
    // The count of a filtered listing comes afterwards, or inline when asked for.
    assert!(disabled.contains("data-count-url=\"/test/users/count?status=disabled\""));
    assert_eq!(
        b.get("/test/users/count?status=disabled").await.body,
        "1 user"
    );
    let counted = b
        .get("/test/users?status=disabled&with_count=true")
        .await
        .body;
    assert!(counted.contains(">1 user<"), "{counted}");
    // A property filter from the form's rows, and a bad one named.
    let filtered = b.get("/test/users?fk=age&fo=gte&fv=30").await.body;
    assert!(filtered.contains(">eve</a>") && !filtered.contains(">zed</a>"));
    let refused = b.get("/test/users?fk=age&fo=gt&fv=old").await;
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("id=\"filter-error\""));
    assert!(refused.body.contains("prop.age"));

    // Delete needs the distinct_id typed again.
    let unconfirmed = b
        .post(
            "/test/users/zed/delete",
            &[("csrf", &csrf), ("confirm", "zex")],
        )
        .await;
    assert_eq!(unconfirmed.status, 400);
    app.call("GET", "/v1/user/zed/", None).await.expect(200);
    let deleted = b
        .post(
            "/test/users/zed/delete",
            &[("csrf", &csrf), ("confirm", "zed")],
        )
        .await;
    assert_eq!(deleted.status, 303);
    app.call("GET", "/v1/user/zed/", None).await.expect(404);
}

#[tokio::test]
async fn keys_are_listed_created_once_and_revoked_per_environment() {
    let app = TestApp::spawn().await;
    operator(&app).await;
    let mut b = Browser::new(&app);
    b.login("ada", PASSWORD).await;
    let csrf = b.csrf().await;
    let page = b.get("/test/keys").await.body;
    assert!(page.contains(&app.test.workspace_key) && !page.contains(&app.live.workspace_key));
    assert!(
        !page.contains(&app.test.workspace_secret),
        "no secret in the list"
    );
    let created = b.post("/test/keys", &[("csrf", &csrf)]).await;
    assert_eq!(created.status, 200);
    let api_key = created
        .body
        .split("id=\"new-api-key\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap()
        .to_owned();
    assert!(api_key.starts_with("hb_test_"), "{api_key}");
    let works = app
        .raw(
            "GET",
            "/v1/user/",
            &[("Authorization", &format!("Bearer {api_key}"))],
        )
        .await;
    assert_eq!(works.status, 200);
    assert!(
        !b.get("/test/keys").await.body.contains(&api_key),
        "shown once"
    );
    // Another environment's key set is not found here.
    let live = &app.live.workspace_key;
    let refused = b
        .post(
            "/test/keys/revoke",
            &[("csrf", &csrf), ("workspace_key", live)],
        )
        .await;
    assert_eq!(refused.status, 404);
    app.call_in(herald_core::Env::Live, "GET", "/v1/user/", None)
        .await
        .expect(200);
    let test = app.test.workspace_key.clone();
    let revoked = b
        .post(
            "/test/keys/revoke",
            &[("csrf", &csrf), ("workspace_key", &test)],
        )
        .await;
    assert_eq!(revoked.status, 303);
    assert_eq!(app.call("GET", "/v1/user/", None).await.status, 401);
}

#[tokio::test]
async fn categories_providers_and_workflows_have_their_pages() {
    let app = TestApp::spawn().await;
    operator(&app).await;
    let mut b = Browser::new(&app);
    b.login("ada", PASSWORD).await;
    let csrf = b.csrf().await;
    // A category from the form; a bad slug is named beside its field.
    let bad = b
        .post(
            "/test/categories",
            &[("csrf", &csrf), ("category", "Not A Slug"), ("name", "X")],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("id=\"cat-slug-error\""), "{}", bad.body);
    let made = b
        .post(
            "/test/categories",
            &[
                ("csrf", &csrf),
                ("category", "news"),
                ("name", "News"),
                ("default_preference", "opt_in"),
                ("locked", "email"),
            ],
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.body);
    let news = app
        .call("GET", "/v1/category/news/", None)
        .await
        .expect(200);
    assert_eq!(news["locked_channels"], json!(["email"]));
    assert!(b
        .get("/live/categories")
        .await
        .body
        .contains("No categories yet."));

    // A provider: its password never comes back.
    let smtp = json!({"kind": "smtp", "host": "127.0.0.1", "port": 2525, "tls": "none",
                      "from": "herald@example.com", "username": "u", "password": "s3cret-pw"});
    let bad = b
        .post(
            "/test/providers",
            &[("csrf", &csrf), ("channel", "email"), ("config", "{nope")],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("id=\"provider-config-error\""));
    let put = b
        .post(
            "/test/providers",
            &[
                ("csrf", &csrf),
                ("channel", "email"),
                ("config", &smtp.to_string()),
            ],
        )
        .await;
    assert_eq!(put.status, 303, "{}", put.body);
    let page = b.get("/test/providers").await.body;
    assert!(page.contains("smtp") && page.contains("127.0.0.1"));
    assert!(!page.contains("s3cret-pw"), "secrets are write-only");
    assert!(b
        .get("/live/providers")
        .await
        .body
        .contains("No provider configured"));

    // A workflow, previewed for a user.
    app.call(
        "POST",
        "/v1/workflow/",
        Some(json!({"slug": "hello", "name": "Hello", "category": "news",
                    "channels": {"email": {"subject": "Hi {{$recipient.name}}", "text": "Code {{code}}"}}})),
    )
    .await
    .expect(201);
    app.call("POST", "/v1/user/eve/", Some(json!({"name": "Eve"})))
        .await
        .expect(201);
    assert!(b
        .get("/test/workflows")
        .await
        .body
        .contains("/test/workflows/hello"));
    let preview = b
        .get("/test/workflows/hello?user=eve&data=%7B%22code%22%3A%20%22314%22%7D")
        .await;
    assert_eq!(preview.status, 200, "{}", preview.body);
    assert!(
        preview.body.contains("Hi Eve") && preview.body.contains("Code 314"),
        "{}",
        preview.body
    );
    let missing = b.get("/test/workflows/hello?user=nobody").await;
    assert_eq!(missing.status, 400);
    assert!(missing.body.contains("id=\"preview-user-error\""));
    assert_eq!(b.get("/live/workflows/hello").await.status, 404);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_and_scheme_count() {
    let app = TestApp::spawn_with(|c| c.dashboard.trust_forwarded_headers = true).await;
    operator(&app).await;
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let attempt = |from: &'static str, username: String, password: &'static str| {
        let http = http.clone();
        let base = app.base.clone();
        async move {
            let form = http.get(format!("{base}/login")).send().await.unwrap();
            let set: Vec<String> = form
                .headers()
                .get_all(SET_COOKIE)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect();
            let token = cookie_value(&set, "herald_login").unwrap();
            let resp = http
                .post(format!("{base}/login"))
                .header(COOKIE, format!("herald_login={token}"))
                .header("X-Forwarded-For", format!("{from}, 10.0.0.1"))
                .header("X-Forwarded-Proto", "https")
                .form(&[
                    ("csrf", token.as_str()),
                    ("username", &username),
                    ("password", password),
                ])
                .send()
                .await
                .unwrap();
            Browser::read(resp).await
        }
    };
    let limit = herald_core::admin::ThrottlePolicy::ADDRESS.max_attempts;
    for i in 0..limit {
        let page = attempt("203.0.113.9", format!("guess{i}"), "wrong password!").await;
        assert_eq!(page.status, 401, "attempt {i}");
    }
    let throttled = attempt("203.0.113.9", "ada".into(), PASSWORD).await;
    assert_eq!(
        throttled.status, 429,
        "this client address has had its attempts"
    );
    // Another client behind the same proxy is not held back, and its cookie is Secure.
    let ok = attempt("203.0.113.10", "ada".into(), PASSWORD).await;
    assert_eq!(ok.status, 303);
    let cookie = ok
        .set_cookies
        .iter()
        .find(|c| c.starts_with("herald_session="))
        .unwrap();
    assert!(cookie.ends_with("; Secure"), "{cookie}");
}

#[tokio::test]
async fn pages_are_not_cached_framed_or_scripted_from_elsewhere() {
    let app = TestApp::spawn().await;
    operator(&app).await;
    let mut b = Browser::new(&app);
    b.login("ada", PASSWORD).await;
    let resp = b
        .http
        .get(format!("{}/test/users", app.base))
        .header(COOKIE, &b.cookie)
        .send()
        .await
        .unwrap();
    let h = resp.headers();
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-frame-options"], "DENY");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    // The stylesheet and script are served from the binary.
    for asset in ["/assets/dashboard.css", "/assets/dashboard.js"] {
        let r = b.get(asset).await;
        assert_eq!(r.status, 200, "{asset}");
        assert!(r.body.len() > 500, "{asset}");
    }
}

#[tokio::test]
async fn an_invalid_identity_shows_its_reason_and_resets_from_the_user_page() {
    use herald_core::service::{health, Ctx};
    let app = TestApp::spawn().await;
    operator(&app).await;
    app.call(
        "POST",
        "/v1/user/ada/",
        Some(json!({"$email": ["gone@example.com", "ada@example.com"]})),
    )
    .await
    .expect(201);
    // A provider's permanent answer, as the worker records it.
    let ctx = Ctx::new(
        herald_core::EnvScope::operator(herald_core::Env::Test),
        herald_core::history::Actor::new("dispatch", "worker"),
        Utc::now(),
    );
    let dead = herald_core::Identity::parse(
        herald_core::Channel::Email,
        &json!("gone@example.com"),
        &Default::default(),
    )
    .unwrap();
    let id = herald_core::DistinctId::parse("ada").unwrap();
    health::mark_invalid(
        app.store.as_ref(),
        &ctx,
        &id,
        &dead,
        "smtp Rcpt: 550 5.1.1 unknown",
    )
    .await
    .unwrap()
    .expect("marked");

    let mut b = Browser::new(&app);
    b.login("ada", PASSWORD).await;
    let page = b.get("/test/users/ada").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("smtp Rcpt: 550 5.1.1 unknown"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("/test/users/ada/identity/reset"),
        "{}",
        page.body
    );
    assert_eq!(
        page.body.matches("Reset gone@example.com on email").count(),
        1,
        "one reset button, beside the invalid identity only"
    );
    // The history says what the provider's answer changed (the properties did not).
    assert!(
        page.body.contains(
            "email gone@example.com: perma_status → invalid (smtp Rcpt: 550 5.1.1 unknown)"
        ),
        "{}",
        page.body
    );
    let csrf = hidden_csrf(&page.body);

    // Without the CSRF token: refused, nothing changes.
    let refused = b
        .post(
            "/test/users/ada/identity/reset",
            &[("channel", "email"), ("value", "gone@example.com")],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        app.user("ada").await["$email"][0]["perma_status"],
        "invalid"
    );

    let done = b
        .post(
            "/test/users/ada/identity/reset",
            &[
                ("csrf", &csrf),
                ("channel", "email"),
                ("value", "gone@example.com"),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let user = app.user("ada").await;
    assert_eq!(user["$email"][0]["perma_status"], "active", "{user}");
    assert!(user["$email"][0].get("perma_reason").is_none(), "{user}");
    let history = app
        .call("GET", "/v1/user/ada/history/", None)
        .await
        .expect(200);
    assert_eq!(
        history["results"][0]["actor"],
        json!({"kind": "dashboard", "id": "ada"})
    );
    let page = b.get("/test/users/ada").await;
    assert!(!page.body.contains("/identity/reset"), "{}", page.body);
    assert!(
        page.body
            .contains("email gone@example.com: perma_status → active"),
        "{}",
        page.body
    );

    // An identity the user does not hold is refused beside the channels.
    let missing = b
        .post(
            "/test/users/ada/identity/reset",
            &[
                ("csrf", &csrf),
                ("channel", "email"),
                ("value", "eve@example.com"),
            ],
        )
        .await;
    assert_eq!(missing.status, 400);
    assert!(
        missing.body.contains("the user has no email identity"),
        "{}",
        missing.body
    );
}

#[tokio::test]
async fn a_messages_steps_show_when_the_user_saw_and_clicked_it() {
    let app = TestApp::spawn().await;
    operator(&app).await;
    app.call(
        "POST",
        "/v1/workflow/",
        Some(json!({"slug": "hello", "channels": {"inbox": {"body": "Hello"}}})),
    )
    .await
    .expect(201);
    app.call("POST", "/v1/user/ada/", Some(json!({"$inbox": ["ada"]})))
        .await
        .expect(201);
    app.call(
        "POST",
        "/trigger/",
        Some(json!({"workflow": "hello", "recipients": ["ada"]})),
    )
    .await
    .expect(202);
    herald_server::worker::drain(&app.app).await;
    let log = app
        .call("GET", "/v1/user/ada/message/", None)
        .await
        .expect(200);
    let id = log["results"][0]["message_id"].as_str().unwrap().to_owned();
    let mut b = Browser::new(&app);
    b.login("ada", PASSWORD).await;
    let before = b.get("/test/users/ada").await.body;
    assert!(before.contains(": sent</li>"), "{before}");
    assert!(!before.contains(": seen</li>") && !before.contains(": clicked</li>"));
    app.call(
        "POST",
        &format!("/v1/message/{id}/event/"),
        Some(json!({"event": "clicked"})),
    )
    .await
    .expect(200);
    let after = b.get("/test/users/ada").await.body;
    let sent = after.find(": sent</li>").unwrap();
    let seen = after.find(": seen</li>").expect("a seen step");
    let clicked = after.find(": clicked</li>").expect("a clicked step");
    assert!(sent < seen && seen < clicked, "in time order: {after}");
}

#[tokio::test]
async fn notifications_sent_show_until_when_quiet_hours_hold_a_message() {
    let app = TestApp::spawn().await;
    operator(&app).await;
    let now = Utc::now();
    let hhmm = |t: chrono::DateTime<Utc>| t.format("%H:%M").to_string();
    let window = json!({"start": hhmm(now - chrono::TimeDelta::hours(1)), "end": hhmm(now + chrono::TimeDelta::hours(2))});
    app.call(
        "PUT",
        "/v1/workflow/news/",
        Some(json!({"channels": {"inbox": {"body": "hi"}}})),
    )
    .await
    .expect(201);
    app.call(
        "POST",
        "/v1/user/kenji/",
        Some(json!({"$inbox": ["kenji"], "$quiet_hours": window})),
    )
    .await
    .expect(201);
    app.call(
        "POST",
        "/trigger/",
        Some(json!({"workflow": "news", "recipients": ["kenji"]})),
    )
    .await
    .expect(202);
    let mut browser = Browser::new(&app);
    browser.login("ada", PASSWORD).await;
    let page = browser.get("/test/users/kenji").await;
    assert_eq!(page.status, 200);
    let row = page
        .body
        .split("class=\"message\"")
        .nth(1)
        .expect("a notification row");
    assert!(row.contains("quiet_hours"), "{row}");
    assert!(
        row.contains("<span class=\"message-held\">held until "),
        "{row}"
    );
    // The general form shows the quiet hours as JSON and saves them back with the rest.
    let field = page
        .body
        .split("name=\"$quiet_hours\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a quiet hours field");
    let shown: serde_json::Value = serde_json::from_str(&field.replace("&#34;", "\"")).unwrap();
    assert_eq!(shown, window);
    let csrf = browser.csrf().await;
    let shown = app.user("kenji").await["properties"]["$quiet_hours"].to_string();
    let saved = browser
        .post(
            "/test/users/kenji/edit",
            &[
                ("csrf", &csrf),
                ("action", "general"),
                ("name", "Kenji"),
                ("$quiet_hours", &shown),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let kenji = app.user("kenji").await;
    assert_eq!(kenji["properties"]["name"], "Kenji");
    assert_eq!(kenji["properties"]["$quiet_hours"], window);
    let refused = browser
        .post(
            "/test/users/kenji/edit",
            &[
                ("csrf", &csrf),
                ("action", "general"),
                ("$quiet_hours", "late"),
            ],
        )
        .await;
    let error = refused
        .body
        .split("id=\"general-error\">")
        .nth(1)
        .and_then(|rest| rest.split("</div>").next())
        .unwrap_or_else(|| panic!("the general form's error: {}", refused.body));
    assert!(error.starts_with("$quiet_hours: "), "{error}");
    assert_eq!(app.user("kenji").await, kenji);
}
