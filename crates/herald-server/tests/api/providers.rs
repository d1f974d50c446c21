//! `/v1/provider/`: per-environment provider configurations (secrets write-only), the
//! `[[providers]]` of the configuration file, and the directory dispatch finds providers in.

use crate::harness::TestApp;
use axum::extract::State;
use axum::routing::post;
use herald_core::channel::{Channel, Identity, IdentityMeta};
use herald_core::delivery::{Content, Delivery, Outgoing};
use herald_core::Env;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

fn smtp() -> Value {
    json!({"kind": "smtp", "host": "127.0.0.1", "port": 2525, "tls": "none", "from": "herald@example.com"})
}

fn twilio() -> Value {
    json!({"kind": "twilio", "account_sid": "AC0123456789abcdef0123456789abcdef",
           "auth_token": "tok-very-secret", "from": "+15550001111"})
}

#[tokio::test]
async fn put_get_list_delete_round_trip() {
    let app = TestApp::spawn().await;
    let created = app
        .call("PUT", "/v1/provider/email/", Some(smtp()))
        .await
        .expect(201);
    assert_eq!(
        (
            &created["channel"],
            &created["kind"],
            &created["host"],
            &created["port"]
        ),
        (
            &json!("email"),
            &json!("smtp"),
            &json!("127.0.0.1"),
            &json!(2525)
        )
    );
    assert_eq!(created["password"], "unset");
    let read = app
        .call("GET", "/v1/provider/email/", None)
        .await
        .expect(200);
    assert_eq!(read, created);
    // A PUT replaces the whole config: fields left out are gone.
    let replaced = app
        .call(
            "PUT",
            "/v1/provider/email/",
            Some(json!({"kind": "smtp", "host": "mail.example", "tls": "starttls", "from": "a@example.com"})),
        )
        .await
        .expect(200);
    assert_eq!(
        (&replaced["host"], &replaced["tls"]),
        (&json!("mail.example"), &json!("starttls"))
    );
    assert_ne!(replaced["port"], 2525);
    app.call("PUT", "/v1/provider/sms/", Some(twilio()))
        .await
        .expect(201);
    let list = app.call("GET", "/v1/provider/", None).await.expect(200);
    assert_eq!(list["meta"]["count"], 2);
    let channels: Vec<&str> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, ["email", "sms"]);
    app.call("DELETE", "/v1/provider/email/", None)
        .await
        .expect(204);
    app.call("GET", "/v1/provider/email/", None)
        .await
        .expect_error(404, None);
    app.call("DELETE", "/v1/provider/email/", None)
        .await
        .expect_error(404, None);
    app.call("GET", "/v1/provider/pigeon/", None)
        .await
        .expect_error(400, Some("channel"));
}

#[tokio::test]
async fn secrets_are_never_returned() {
    let app = TestApp::spawn().await;
    let put = app
        .call("PUT", "/v1/provider/sms/", Some(twilio()))
        .await
        .expect(201);
    let get = app.call("GET", "/v1/provider/sms/", None).await.expect(200);
    let list = app.call("GET", "/v1/provider/", None).await.expect(200);
    for shown in [&put, &get, &list] {
        assert!(!shown.to_string().contains("tok-very-secret"), "{shown}");
    }
    assert_eq!(get["auth_token"], "set");
    assert_eq!(get["account_sid"], "AC0123456789abcdef0123456789abcdef");
    // The store keeps it, for the provider to use.
    let stored = app
        .store
        .get_provider_config(herald_core::EnvScope::operator(Env::Test), Channel::Sms)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.config["auth_token"], "tok-very-secret");
    let slack = app
        .call("PUT", "/v1/provider/slack/", Some(json!({"kind": "slack"})))
        .await
        .expect(201);
    assert_eq!(slack["bot_token"], "unset");
    // Secrets are not kept across a PUT: one that omits the token has none.
    let again = app
        .call(
            "PUT",
            "/v1/provider/sms/",
            Some(json!({"kind": "twilio", "account_sid": "AC0123456789abcdef0123456789abcdef", "from": "+15550001111"})),
        )
        .await;
    assert_eq!(again.status, 400, "{}", again.body);
    assert_eq!(again.body["field"], "auth_token", "{}", again.body);
}

#[tokio::test]
async fn bad_fields_and_wrong_kinds_are_named() {
    let app = TestApp::spawn().await;
    let mut bad_tls = smtp();
    bad_tls["tls"] = json!("ssl");
    app.call("PUT", "/v1/provider/email/", Some(bad_tls))
        .await
        .expect_error(400, Some("tls"));
    let mut bad_from = smtp();
    bad_from["from"] = json!("not-an-address");
    app.call("PUT", "/v1/provider/email/", Some(bad_from))
        .await
        .expect_error(400, Some("from"));
    app.call("PUT", "/v1/provider/email/", Some(json!({"host": "x"})))
        .await
        .expect_error(400, Some("kind"));
    app.call(
        "PUT",
        "/v1/provider/email/",
        Some(json!({"kind": "pigeon"})),
    )
    .await
    .expect_error(400, Some("kind"));
    let wrong = app
        .call("PUT", "/v1/provider/sms/", Some(smtp()))
        .await
        .expect_error(400, Some("kind"));
    assert!(
        wrong["message"].as_str().unwrap().contains("sms"),
        "{wrong}"
    );
    app.call(
        "PUT",
        "/v1/provider/inbox/",
        Some(json!({"kind": "discord"})),
    )
    .await
    .expect_error(400, Some("kind"));
    app.call(
        "PUT",
        "/v1/provider/ms_teams/",
        Some(json!({"kind": "teams", "base_url": "ftp://x"})),
    )
    .await
    .expect_error(400, Some("base_url"));
    // Extra SMTP roots must be certificates, and only go with TLS.
    for (tls, pem) in [
        ("starttls", "not a certificate"),
        (
            "none",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ),
    ] {
        let mut body = smtp();
        body["tls"] = json!(tls);
        body["ca_pem"] = json!(pem);
        app.call("PUT", "/v1/provider/email/", Some(body))
            .await
            .expect_error(400, Some("ca_pem"));
    }
    // Nothing was stored.
    let list = app.call("GET", "/v1/provider/", None).await.expect(200);
    assert_eq!(list["meta"]["count"], 0);
}

#[tokio::test]
async fn test_and_live_never_cross() {
    let app = TestApp::spawn().await;
    app.call("PUT", "/v1/provider/email/", Some(smtp()))
        .await
        .expect(201);
    app.call_in(Env::Live, "GET", "/v1/provider/email/", None)
        .await
        .expect_error(404, None);
    let live = app
        .call_in(Env::Live, "GET", "/v1/provider/", None)
        .await
        .expect(200);
    assert_eq!(live["meta"]["count"], 0);
    app.call_in(Env::Live, "DELETE", "/v1/provider/email/", None)
        .await
        .expect_error(404, None);
    let mut live_smtp = smtp();
    live_smtp["host"] = json!("smtp.live.example");
    app.call_in(Env::Live, "PUT", "/v1/provider/email/", Some(live_smtp))
        .await
        .expect(201);
    let test = app
        .call("GET", "/v1/provider/email/", None)
        .await
        .expect(200);
    assert_eq!(test["host"], "127.0.0.1");
    assert_eq!(
        app.providers.configured(Env::Live).await.unwrap(),
        [(Channel::Email, "smtp".to_owned())].into()
    );
}

#[tokio::test]
async fn config_file_providers_exist_at_start() {
    let app = TestApp::spawn_with(|config| {
        let mut email = smtp();
        email["channel"] = json!("email");
        let mut sms = twilio();
        sms["channel"] = json!("sms");
        sms["env"] = json!("live");
        config.providers = vec![email, sms];
    })
    .await;
    for env in [Env::Test, Env::Live] {
        let email = app
            .call_in(env, "GET", "/v1/provider/email/", None)
            .await
            .expect(200);
        assert_eq!(email["host"], "127.0.0.1", "{env}");
    }
    app.call("GET", "/v1/provider/sms/", None)
        .await
        .expect_error(404, None);
    let live = app
        .call_in(Env::Live, "GET", "/v1/provider/sms/", None)
        .await
        .expect(200);
    assert_eq!(live["auth_token"], "set");
}

#[tokio::test]
async fn a_bad_config_file_provider_stops_the_start() {
    let scratch = crate::harness::scratch().await;
    let mut config = herald_server::config::Config::load(None, |_| None).unwrap();
    config.database_url = scratch.url.clone();
    config.providers = vec![
        json!({"channel": "sms", "kind": "smtp", "host": "h", "tls": "none", "from": "a@b.co"}),
    ];
    let store = herald_server::open_store(&config).await.unwrap();
    let err = herald_server::declare(store.as_ref(), &config)
        .await
        .unwrap_err();
    assert!(
        err.contains("providers[0]") && err.contains("kind"),
        "{err}"
    );
}

/// What the fake Discord received: path with query, and body.
type Seen = Arc<Mutex<Vec<(String, Value)>>>;

async fn fake_discord() -> (String, Seen) {
    async fn hook(
        State(seen): State<Seen>,
        uri: axum::http::Uri,
        axum::Json(body): axum::Json<Value>,
    ) -> axum::Json<Value> {
        seen.lock().unwrap().push((uri.to_string(), body));
        axum::Json(json!({"id": "1180000000000000001"}))
    }
    let seen = Seen::default();
    let router = axum::Router::new()
        .route("/api/webhooks/{id}/{token}", post(hook))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, seen)
}

fn identity(channel: Channel, value: Value) -> Identity {
    Identity::parse(channel, &value, &IdentityMeta::default()).unwrap()
}

#[tokio::test]
async fn the_directory_builds_the_stored_provider_and_it_reaches_the_fake() {
    let app = TestApp::spawn().await;
    let (base, seen) = fake_discord().await;
    let hook = identity(
        Channel::Discord,
        json!("https://discord.com/api/webhooks/123/tok-abc"),
    );
    app.call(
        "PUT",
        "/v1/provider/discord/",
        Some(json!({"kind": "discord", "base_url": base})),
    )
    .await
    .expect(201);
    assert_eq!(
        app.providers.configured(Env::Test).await.unwrap(),
        [(Channel::Discord, "discord".to_owned())].into()
    );
    let provider = app
        .providers
        .provider(Env::Test, &hook)
        .await
        .unwrap()
        .expect("a discord provider");
    let outcome = provider
        .send(&Outgoing {
            env: Env::Test,
            message_id: "msg-1".into(),
            identity: hook.clone(),
            content: Content::Discord {
                content: "Hello Ada".into(),
                embeds: None,
            },
        })
        .await;
    assert_eq!(
        outcome,
        Delivery::Sent {
            provider_id: Some("1180000000000000001".into())
        }
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "/api/webhooks/123/tok-abc?wait=true");
    assert_eq!(seen[0].1["content"], "Hello Ada");
    // Live has no config: a webhook identity still has the provider that needs none (which
    // would send to the real Discord); email has none.
    assert!(app
        .providers
        .configured(Env::Live)
        .await
        .unwrap()
        .is_empty());
    assert!(app
        .providers
        .provider(Env::Live, &hook)
        .await
        .unwrap()
        .is_some());
    let email = identity(Channel::Email, json!("ada@example.com"));
    assert!(app
        .providers
        .provider(Env::Test, &email)
        .await
        .unwrap()
        .is_none());
    // The inbox is Herald's own: always its provider, configured or not.
    let inbox = identity(Channel::Inbox, json!("ada"));
    let own = app.providers.provider(Env::Test, &inbox).await.unwrap();
    assert_eq!(own.map(|p| p.channel()), Some(Channel::Inbox));
    // A deleted config is seen by the next lookup.
    app.call("DELETE", "/v1/provider/discord/", None)
        .await
        .expect(204);
    assert!(app
        .providers
        .configured(Env::Test)
        .await
        .unwrap()
        .is_empty());
}

/// A push service that records each call's headers and body size and answers 201 with a
/// `Location`.
async fn fake_push_service() -> (String, Arc<Mutex<Vec<(axum::http::HeaderMap, usize)>>>) {
    type Calls = Arc<Mutex<Vec<(axum::http::HeaderMap, usize)>>>;
    async fn push(
        State(calls): State<Calls>,
        headers: axum::http::HeaderMap,
        body: axum::body::Bytes,
    ) -> (axum::http::StatusCode, [(&'static str, &'static str); 1]) {
        calls.lock().unwrap().push((headers, body.len()));
        (
            axum::http::StatusCode::CREATED,
            [("location", "https://push.example/m/1")],
        )
    }
    let calls = Calls::default();
    let router = axum::Router::new()
        .route("/wpush/v2/{id}", post(push))
        .with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, calls)
}

#[tokio::test]
async fn a_vapid_provider_from_the_cli_keys_is_stored_hidden_and_sends_web_push() {
    let app = TestApp::spawn().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["vapid-keys", "--json"])
        .env("HERALD_LOG_LEVEL", "warn")
        .output()
        .expect("herald runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pem = keys["private_key"].as_str().unwrap().to_owned();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    let (base, calls) = fake_push_service().await;
    let config = json!({"kind": "vapid", "subject": "mailto:ops@example.com",
        "public_key": keys["public_key"], "private_key": pem, "urgency": "low", "base_url": base});

    // Refusals name the field and store nothing.
    let mut missing = config.clone();
    missing.as_object_mut().unwrap().remove("private_key");
    app.call("PUT", "/v1/provider/webpush/", Some(missing))
        .await
        .expect_error(400, Some("private_key"));
    let mut mismatched = config.clone();
    mismatched["public_key"] = json!(
        "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
    );
    app.call("PUT", "/v1/provider/webpush/", Some(mismatched))
        .await
        .expect_error(400, Some("private_key"));
    let mut bad_subject = config.clone();
    bad_subject["subject"] = json!("ops@example.com");
    app.call("PUT", "/v1/provider/webpush/", Some(bad_subject))
        .await
        .expect_error(400, Some("subject"));
    let mut bad_urgency = config.clone();
    bad_urgency["urgency"] = json!("asap");
    app.call("PUT", "/v1/provider/webpush/", Some(bad_urgency))
        .await
        .expect_error(400, Some("urgency"));
    app.call("PUT", "/v1/provider/email/", Some(config.clone()))
        .await
        .expect_error(400, Some("kind"));
    assert!(app
        .providers
        .configured(Env::Test)
        .await
        .unwrap()
        .is_empty());

    let put = app
        .call("PUT", "/v1/provider/webpush/", Some(config))
        .await
        .expect(201);
    let get = app
        .call("GET", "/v1/provider/webpush/", None)
        .await
        .expect(200);
    assert_eq!(put, get);
    assert_eq!(get["private_key"], "set");
    assert_eq!(get["public_key"], keys["public_key"]);
    assert_eq!(
        (&get["ttl"], &get["urgency"]),
        (&json!(86400), &json!("low"))
    );
    let list = app.call("GET", "/v1/provider/", None).await.expect(200);
    for shown in [&put, &get, &list] {
        assert!(!shown.to_string().contains("PRIVATE KEY"), "{shown}");
    }

    // The directory builds it for a $webpush identity, and it reaches the push service.
    assert_eq!(
        app.providers.configured(Env::Test).await.unwrap(),
        [(Channel::Webpush, "vapid".to_owned())].into()
    );
    let subscription = identity(
        Channel::Webpush,
        json!({"endpoint": "https://updates.push.services.mozilla.com/wpush/v2/gAAAA",
               "keys": {"p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
                        "auth": "BTBZMqHH6r4Tts7J_aSIgg"}}),
    );
    assert_eq!(subscription.provider.as_deref(), Some("vapid"));
    let provider = app
        .providers
        .provider(Env::Test, &subscription)
        .await
        .unwrap()
        .expect("the vapid provider");
    assert_eq!(provider.channel(), Channel::Webpush);
    let outcome = provider
        .send(&Outgoing {
            env: Env::Test,
            message_id: "msg-1".into(),
            identity: subscription,
            content: Content::Webpush(herald_core::delivery::Push {
                title: "Hello Ada".into(),
                body: "Your order shipped".into(),
                data: None,
                url: None,
                image: None,
            }),
        })
        .await;
    assert_eq!(
        outcome,
        Delivery::Sent {
            provider_id: Some("https://push.example/m/1".into())
        }
    );
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    let (headers, body_len) = &calls[0];
    let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
    assert_eq!(header("content-encoding"), "aes128gcm");
    assert_eq!(header("urgency"), "low");
    assert_eq!(header("ttl"), "86400");
    assert!(header("authorization").starts_with("vapid t="));
    assert!(
        header("authorization").ends_with(&format!(", k={}", keys["public_key"].as_str().unwrap()))
    );
    // Header (86) + the JSON and its delimiter + the tag (16): encrypted, not the JSON itself.
    let json_len = r#"{"title":"Hello Ada","body":"Your order shipped"}"#.len();
    assert_eq!(*body_len, 86 + json_len + 1 + 16);
}
