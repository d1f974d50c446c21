//! `TestApp::spawn()` starts the real server on 127.0.0.1:0 over a fresh database and gives a
//! client that signs requests (HMAC, as the SuprSend SDKs do) or sends a bearer key.

use chrono::Utc;
use herald_core::delivery::Directory;
use herald_core::signature;
use herald_core::Env;
use herald_server::config::Config;
use herald_server::{keys, App};
use herald_store::testing::{postgres_url, Scratch};
use reqwest::Method;
use serde_json::Value;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
pub struct Keys {
    pub workspace_key: String,
    pub workspace_secret: String,
    pub api_key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    Bearer,
    Hmac,
}

/// The backend the whole run uses: `HERALD_TEST_BACKEND=postgres` (with `HERALD_TEST_POSTGRES_URL`)
/// or SQLite by default. `scripts/test` runs this suite once per backend.
pub async fn scratch() -> Scratch {
    match std::env::var("HERALD_TEST_BACKEND").as_deref() {
        Ok("postgres") => {
            let base = postgres_url()
                .expect("HERALD_TEST_BACKEND=postgres needs HERALD_TEST_POSTGRES_URL");
            Scratch::postgres(&base).await
        }
        Ok("sqlite") | Err(_) => Scratch::sqlite(),
        Ok(other) => panic!("HERALD_TEST_BACKEND={other}: expected sqlite or postgres"),
    }
}

pub struct TestApp {
    pub base: String,
    /// The server's store, for what the API cannot reach (e.g. minting an expired link).
    pub store: Arc<dyn herald_core::store::Store>,
    pub http: reqwest::Client,
    pub test: Keys,
    pub live: Keys,
    pub config: Config,
    /// The server's provider directory (over the stored provider configurations).
    pub providers: Arc<dyn herald_core::delivery::Directory>,
    /// What the server runs on, for driving the dispatch worker (`worker::drain(&app.app)`).
    pub app: App,
    /// The directory a test gave (`spawn_with_directory`), kept across restarts.
    custom_directory: Option<Arc<dyn Directory>>,
    server: JoinHandle<()>,
    scratch: Arc<Scratch>,
}

pub struct Response {
    pub status: u16,
    pub body: Value,
    /// The `Content-Type` header, when there is one.
    pub content_type: Option<String>,
    /// The `ETag` header, when there is one.
    pub etag: Option<String>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// Like [`spawn`](Self::spawn), with the configuration adjusted first.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
        Self::spawn_inner(None, adjust).await
    }

    /// Like [`spawn_with`](Self::spawn_with), with dispatch finding its providers in
    /// `directory`. The dispatch task is off (tests drive `worker::drain`) unless `adjust` turns
    /// it on.
    pub async fn spawn_with_directory(
        directory: Arc<dyn Directory>,
        adjust: impl FnOnce(&mut Config),
    ) -> TestApp {
        Self::spawn_inner(Some(directory), adjust).await
    }

    /// Starts an app; dispatch uses `directory`, or without one the server's own (the stored
    /// provider configurations).
    async fn spawn_inner(
        directory: Option<Arc<dyn Directory>>,
        adjust: impl FnOnce(&mut Config),
    ) -> TestApp {
        let scratch = Arc::new(scratch().await);
        let mut config = Config::load(None, |_| None).expect("default config");
        // The tests' fake providers listen on loopback.
        config.outbound.allow_private = true;
        config.tasks.dispatch = false;
        adjust(&mut config);
        config.database_url = scratch.url.clone();
        config.data_dir = std::env::temp_dir();
        let store = herald_server::open_store(&config)
            .await
            .expect("open store");
        let test = to_keys(keys::create(store.as_ref(), Env::Test).await.unwrap());
        let live = to_keys(keys::create(store.as_ref(), Env::Live).await.unwrap());
        drop(store);
        Self::start(config, scratch, test, live, directory).await
    }

    async fn start(
        config: Config,
        scratch: Arc<Scratch>,
        test: Keys,
        live: Keys,
        custom_directory: Option<Arc<dyn Directory>>,
    ) -> TestApp {
        let store = herald_server::open_store(&config)
            .await
            .expect("open store");
        herald_server::declare(store.as_ref(), &config)
            .await
            .expect("categories and workflows from the configuration");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let providers: Arc<dyn Directory> = match &custom_directory {
            Some(d) => d.clone(),
            None => Arc::new(
                herald_server::providers::Stored::new(store.clone(), &config.outbound)
                    .expect("the outbound configuration builds")
                    .calling_back_to(&config.public_url),
            ),
        };
        let app = App {
            store: store.clone(),
            config: Arc::new(config.clone()),
            metrics: Arc::default(),
            links: Arc::default(),
            providers: providers.clone(),
            inbox: Arc::default(),
            credentials: Arc::new(
                herald_server::credential_cache::CredentialCache::for_config(&config),
            ),
        };
        let served = app.clone();
        let server = tokio::spawn(async move {
            herald_server::serve(served, listener)
                .await
                .expect("server runs");
        });
        TestApp {
            base,
            store,
            http: reqwest::Client::new(),
            test,
            live,
            config,
            providers,
            app,
            custom_directory,
            server,
            scratch,
        }
    }

    /// Stops the server and starts a new one on the same database, as after a crash or deploy.
    pub async fn restart(self) -> TestApp {
        self.server.abort();
        let _ = self.server.await;
        let directory = self.custom_directory.clone();
        Self::start(self.config, self.scratch, self.test, self.live, directory).await
    }

    /// A second node on the same database (its own store, directory and server), as another
    /// Herald process would be; both keep running.
    pub async fn another_node(&self) -> TestApp {
        self.another_node_with(|_| {}).await
    }

    /// Like [`another_node`](Self::another_node), with this node's configuration adjusted first.
    pub async fn another_node_with(&self, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let directory = self.custom_directory.clone();
        let mut config = self.config.clone();
        adjust(&mut config);
        Self::start(
            config,
            self.scratch.clone(),
            self.test.clone(),
            self.live.clone(),
            directory,
        )
        .await
    }

    /// Whether the run is on PostgreSQL (`HERALD_TEST_BACKEND=postgres`).
    pub fn is_postgres(&self) -> bool {
        self.scratch.is_postgres()
    }

    pub fn keys(&self, env: Env) -> &Keys {
        match env {
            Env::Test => &self.test,
            Env::Live => &self.live,
        }
    }

    /// Sends a request with the given keys. `body` is sent byte for byte as given.
    pub async fn send(
        &self,
        keys: &Keys,
        auth: Auth,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Response {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let content_type = "application/json; charset=utf-8";
        let body = body.unwrap_or("");
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("Content-Type", content_type)
            .body(body.to_owned());
        match auth {
            Auth::Bearer => req = req.header("Authorization", format!("Bearer {}", keys.api_key)),
            Auth::Hmac => {
                let date = Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
                let to_sign = signature::string_to_sign(
                    method.as_str(),
                    body.as_bytes(),
                    content_type,
                    &date,
                    path,
                );
                let sig = signature::sign(&keys.workspace_secret, &to_sign);
                req = req
                    .header("Date", date)
                    .header("Authorization", format!("{}:{sig}", keys.workspace_key));
            }
        }
        Self::read(req.send().await.expect("request reaches the server")).await
    }

    /// A signed request with a `Date` header of the caller's choosing (stale, RFC 3339, …) and
    /// optionally a wrong secret.
    pub async fn send_signed(
        &self,
        keys: &Keys,
        secret: &str,
        date: &str,
        method: &str,
        path: &str,
        body: &str,
    ) -> Response {
        let content_type = "application/json; charset=utf-8";
        let to_sign = signature::string_to_sign(method, body.as_bytes(), content_type, date, path);
        let sig = signature::sign(secret, &to_sign);
        let req = self
            .http
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", self.base),
            )
            .header("Content-Type", content_type)
            .header("Date", date)
            .header("Authorization", format!("{}:{sig}", keys.workspace_key))
            .body(body.to_owned());
        Self::read(req.send().await.expect("request reaches the server")).await
    }

    /// A test-environment call with the bearer key and these extra headers.
    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Response {
        let auth = format!("Bearer {}", self.test.api_key);
        let mut all = vec![("Authorization", auth.as_str())];
        all.extend_from_slice(headers);
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        self.raw_body(method, path, &all, body).await
    }

    /// A request with exactly these headers (for authentication failures).
    pub async fn raw(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = self.http.request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", self.base),
        );
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Self::read(req.send().await.expect("request reaches the server")).await
    }

    /// A request with exactly these headers and this body, byte for byte (for tampered
    /// signatures and oversized or malformed bodies).
    pub async fn raw_body(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> Response {
        let mut req = self
            .http
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", self.base),
            )
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Self::read(req.send().await.expect("request reaches the server")).await
    }

    async fn read(resp: reqwest::Response) -> Response {
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let etag = resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = resp.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Response {
            status,
            body,
            content_type,
            etag,
        }
    }

    /// The test environment's user `id`, which must exist.
    pub async fn user(&self, id: &str) -> Value {
        self.call("GET", &format!("/v1/user/{id}/"), None)
            .await
            .expect(200)
    }

    /// Everything an environment holds, for "nothing changed" checks: every profile (paged through
    /// by distinct_id) with its whole history.
    pub async fn snapshot(&self, env: Env) -> Value {
        let mut users = Vec::new();
        let mut path = "/v1/user/?limit=1000&sort=distinct_id".to_owned();
        loop {
            let page = self.call_in(env, "GET", &path, None).await.expect(200);
            users.extend(page["results"].as_array().unwrap().iter().cloned());
            match page["meta"]["after"].as_str() {
                Some(after) => {
                    path = format!("/v1/user/?limit=1000&sort=distinct_id&after={after}")
                }
                None => break,
            }
        }
        let mut out = Vec::new();
        for u in users {
            let id = u["distinct_id"].as_str().unwrap();
            let encoded = utf8_percent_encode(id);
            let history = self
                .call_in(
                    env,
                    "GET",
                    &format!("/v1/user/{encoded}/history/?limit=1000"),
                    None,
                )
                .await
                .expect(200);
            out.push(serde_json::json!({"profile": u, "history": history["results"]}));
        }
        Value::Array(out)
    }

    /// A bearer request in the test environment.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Response {
        let text = body.map(|b| b.to_string());
        self.send(&self.test, Auth::Bearer, method, path, text.as_deref())
            .await
    }

    /// A bearer request in `env`.
    pub async fn call_in(
        &self,
        env: Env,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let text = body.map(|b| b.to_string());
        self.send(self.keys(env), Auth::Bearer, method, path, text.as_deref())
            .await
    }
}

/// Percent-encodes a path segment as py's `quote(x, safe="")` does (unreserved characters stay).
pub fn utf8_percent_encode(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `Authorization` value of a signed request: `<workspace_key>:<signature>` over exactly
/// these parts, so a test can sign one thing and send another.
pub fn authorization(
    keys: &Keys,
    method: &str,
    path: &str,
    body: &[u8],
    content_type: &str,
    date: &str,
) -> String {
    let to_sign = signature::string_to_sign(method, body, content_type, date, path);
    format!(
        "{}:{}",
        keys.workspace_key,
        signature::sign(&keys.workspace_secret, &to_sign)
    )
}

fn to_keys(new: herald_core::credentials::NewCredentials) -> Keys {
    Keys {
        workspace_key: new.credentials.workspace_key,
        workspace_secret: new.credentials.workspace_secret,
        api_key: new.api_key,
    }
}

impl Response {
    /// Asserts the status, printing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        self.body
    }

    /// Asserts an error envelope with this status whose `field` is `field`.
    #[track_caller]
    pub fn expect_error(self, status: u16, field: Option<&str>) -> Value {
        let body = self.expect(status);
        assert_eq!(body["code"], status, "envelope code: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "envelope message: {body}"
        );
        assert_eq!(
            body["error"]["message"], body["message"],
            "envelope error.message: {body}"
        );
        assert_ne!(
            body["status"], "success",
            "an error body never says success: {body}"
        );
        if let Some(field) = field {
            assert_eq!(body["field"], field, "envelope field: {body}");
        }
        body
    }
}
