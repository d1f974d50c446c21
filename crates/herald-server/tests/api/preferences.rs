//! Categories and user preferences (wire spec §2.5), and their bulk forms.

use crate::harness::{Auth, TestApp};
use herald_core::Env;
use serde_json::{json, Value};

async fn setup(app: &TestApp) {
    for body in [
        json!({"category": "newsletter", "name": "Newsletter", "section": "Marketing", "default_preference": "opt_in"}),
        json!({"category": "offers", "name": "Offers", "section": "Marketing", "default_preference": "opt_out"}),
        json!({"category": "security", "name": "Security alerts", "default_preference": "mandatory"}),
        json!({"category": "billing", "name": "Billing", "default_preference": "opt_in", "locked_channels": ["email"]}),
    ] {
        app.call("POST", "/v1/category/", Some(body))
            .await
            .expect(201);
    }
    app.call(
        "POST",
        "/v1/user/ada/",
        Some(json!({"$email": ["ada@example.com"]})),
    )
    .await
    .expect(201);
}

fn channel<'a>(category: &'a Value, name: &str) -> &'a Value {
    category["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == name)
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn categories_have_a_lifecycle() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let list = app.call("GET", "/v1/category/", None).await.expect(200);
    assert_eq!(list["meta"]["count"], 4);
    let got = app
        .call("GET", "/v1/category/billing/", None)
        .await
        .expect(200);
    assert_eq!(got["locked_channels"], json!(["email"]));
    let changed = app
        .call(
            "PATCH",
            "/v1/category/offers/",
            Some(json!({"name": "Deals", "visible": false})),
        )
        .await
        .expect(200);
    assert_eq!(
        (changed["name"].clone(), changed["visible"].clone()),
        (json!("Deals"), json!(false))
    );
    app.call("POST", "/v1/category/", Some(json!({"category": "offers"})))
        .await
        .expect_error(409, Some("category"));
    for (body, field) in [
        (json!({"category": "Bad Slug"}), "category"),
        (
            json!({"category": "x", "default_preference": "often"}),
            "default_preference",
        ),
        (
            json!({"category": "x", "locked_channels": ["fax"]}),
            "locked_channels[0]",
        ),
    ] {
        app.call("POST", "/v1/category/", Some(body))
            .await
            .expect_error(400, Some(field));
    }
    app.call("DELETE", "/v1/category/offers/", None)
        .await
        .expect(204);
    app.call("GET", "/v1/category/offers/", None)
        .await
        .expect_error(404, None);
    app.call("DELETE", "/v1/category/offers/", None)
        .await
        .expect_error(404, None);
    // Categories are per environment.
    let live = app
        .call_in(Env::Live, "GET", "/v1/category/", None)
        .await
        .expect(200);
    assert_eq!(live["meta"]["count"], 0);
}

#[tokio::test]
async fn users_see_defaults_then_their_choices() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let full = app
        .call("GET", "/v1/user/ada/preference/", None)
        .await
        .expect(200);
    let sections = full["sections"].as_array().unwrap();
    assert_eq!(sections.len(), 2, "no section, and Marketing: {full}");
    let marketing = sections.iter().find(|s| s["name"] == "Marketing").unwrap();
    let offers = marketing["subcategories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["category"] == "offers")
        .unwrap();
    assert_eq!(
        (
            offers["preference"].clone(),
            offers["original_preference"].clone()
        ),
        (json!("opt_out"), json!("opt_out"))
    );
    assert_eq!(
        full["channel_preferences"][0],
        json!({"channel": "email", "is_restricted": false})
    );

    for auth in [Auth::Bearer, Auth::Hmac] {
        let body = json!({"preference": "opt_in", "opt_out_channels": ["sms"]}).to_string();
        let chosen = app
            .send(
                &app.test,
                auth,
                "PATCH",
                "/v1/user/ada/preference/category/offers/",
                Some(&body),
            )
            .await
            .expect(202);
        assert_eq!(chosen["preference"], "opt_in");
        assert_eq!(channel(&chosen, "sms")["preference"], "opt_out");
        assert_eq!(channel(&chosen, "email")["preference"], "opt_in");
    }
    let one = app
        .call(
            "GET",
            "/v1/user/ada/preference/category/offers/?show_opt_out_channels=false",
            None,
        )
        .await
        .expect(200);
    assert_eq!(
        channel(&one, "sms"),
        &Value::Null,
        "opted-out channels hidden: {one}"
    );
    let security = app
        .call("GET", "/v1/user/ada/preference/category/security/", None)
        .await
        .expect(200);
    assert_eq!(
        (
            security["is_editable"].clone(),
            security["preference"].clone()
        ),
        (json!(false), json!("opt_in"))
    );
    let page = app
        .call(
            "GET",
            "/v1/user/ada/preference/category/?limit=2&offset=1",
            None,
        )
        .await
        .expect(200);
    assert_eq!(
        (
            page["meta"]["count"].clone(),
            page["results"].as_array().unwrap().len()
        ),
        (json!(4), 2)
    );

    let channels = app
        .call(
            "PATCH",
            "/v1/user/ada/preference/channel_preference/",
            Some(json!({"channel_preferences": [{"channel": "email", "is_restricted": true}]})),
        )
        .await
        .expect(202);
    assert_eq!(
        channels["channel_preferences"][0],
        json!({"channel": "email", "is_restricted": true})
    );
    let again = app
        .call("GET", "/v1/user/ada/preference/channel_preference/", None)
        .await
        .expect(200);
    assert_eq!(again, channels);

    // Recorded in history, and part of the export.
    let history = app
        .call("GET", "/v1/user/ada/history/", None)
        .await
        .expect(200);
    let pref_changes = history["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["changes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["key"] == "$preferences")
        })
        .count();
    assert_eq!(
        pref_changes, 2,
        "two category choices (the second changed nothing) and one channel change: {history}"
    );
    let export = app
        .call("GET", "/v1/user/ada/export/", None)
        .await
        .expect(200);
    assert_eq!(
        export["preferences"]["restricted_channels"],
        json!(["email"])
    );
    assert_eq!(
        export["preferences"]["categories"]["offers"]["opt_out_channels"],
        json!(["sms"])
    );
}

#[tokio::test]
async fn bad_preferences_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let before = app
        .call("GET", "/v1/user/ada/preference/", None)
        .await
        .expect(200);
    let p = "/v1/user/ada/preference/category";
    app.call(
        "PATCH",
        &format!("{p}/nope/"),
        Some(json!({"preference": "opt_in"})),
    )
    .await
    .expect_error(404, None);
    app.call("GET", &format!("{p}/nope/"), None)
        .await
        .expect_error(404, None);
    app.call(
        "PATCH",
        &format!("{p}/offers/"),
        Some(json!({"preference": "sometimes"})),
    )
    .await
    .expect_error(400, Some("preference"));
    app.call(
        "PATCH",
        &format!("{p}/security/"),
        Some(json!({"preference": "opt_out"})),
    )
    .await
    .expect_error(400, Some("preference"));
    app.call(
        "PATCH",
        &format!("{p}/billing/"),
        Some(json!({"preference": "opt_in", "opt_out_channels": ["email"]})),
    )
    .await
    .expect_error(400, Some("opt_out_channels"));
    app.call(
        "PATCH",
        &format!("{p}/offers/"),
        Some(json!({"preference": "opt_in", "opt_out_channels": ["fax"]})),
    )
    .await
    .expect_error(400, Some("opt_out_channels[0]"));
    app.call(
        "PATCH",
        "/v1/user/ada/preference/channel_preference/",
        Some(json!({"channel_preferences": [{"channel": "email", "is_restricted": "yes"}]})),
    )
    .await
    .expect_error(400, Some("channel_preferences[0].is_restricted"));
    app.call(
        "GET",
        "/v1/user/ada/preference/?show_opt_out_channels=maybe",
        None,
    )
    .await
    .expect_error(400, Some("show_opt_out_channels"));
    app.call("GET", "/v1/user/ghost/preference/", None)
        .await
        .expect_error(404, None);
    app.call(
        "PATCH",
        "/v1/user/ghost/preference/category/offers/",
        Some(json!({"preference": "opt_in"})),
    )
    .await
    .expect_error(404, None);
    let after = app
        .call("GET", "/v1/user/ada/preference/", None)
        .await
        .expect(200);
    assert_eq!(before, after);
    // A live key sees neither the user nor the categories.
    app.call_in(Env::Live, "GET", "/v1/user/ada/preference/", None)
        .await
        .expect_error(404, None);
}

#[tokio::test]
async fn bulk_changes_apply_per_user() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    app.call("POST", "/v1/user/bob/", Some(json!({})))
        .await
        .expect(201);
    let r = app
        .call(
            "PATCH",
            "/v1/bulk/subscriber/preference/",
            Some(json!({
                "distinct_ids": ["ada", "bob", "ghost"],
                "categories": [{"category": "newsletter", "preference": "opt_out"}],
                "channel_preferences": [{"channel": "sms", "is_restricted": true}]
            })),
        )
        .await
        .expect(202);
    assert_eq!(r["failed"], 1, "{r}");
    assert_eq!(r["results"][2]["status"], "error");
    for id in ["ada", "bob"] {
        let c = app
            .call(
                "GET",
                &format!("/v1/user/{id}/preference/category/newsletter/"),
                None,
            )
            .await
            .expect(200);
        assert_eq!(c["preference"], "opt_out", "{id}");
    }
    app.call(
        "PATCH",
        "/v1/bulk/subscriber/preference/",
        Some(json!({"distinct_ids": ["ada"], "categories": [{"category": "security", "preference": "opt_out"}]})),
    )
    .await
    .expect_error(400, Some("categories[0].preference"));
    app.call(
        "PATCH",
        "/v1/bulk/subscriber/preference/",
        Some(json!({"distinct_ids": ["ada"], "categories": [{"category": "nope", "preference": "opt_in"}]})),
    )
    .await
    .expect_error(404, None);
    let too_many: Vec<String> = (0..1001).map(|i| format!("u{i}")).collect();
    app.call(
        "PATCH",
        "/v1/bulk/subscriber/preference/",
        Some(json!({"distinct_ids": too_many, "channel_preferences": []})),
    )
    .await
    .expect_error(400, Some("distinct_ids"));
    let reset = app
        .call(
            "PATCH",
            "/v1/bulk/subscriber/preference/reset/",
            Some(json!({"distinct_ids": ["ada"], "reset_categories": true, "reset_channel_preferences": true})),
        )
        .await
        .expect(202);
    assert_eq!(reset["failed"], 0);
    let ada = app
        .call("GET", "/v1/user/ada/preference/category/newsletter/", None)
        .await
        .expect(200);
    assert_eq!(ada["preference"], "opt_in", "back to the default");
    let bob = app
        .call("GET", "/v1/user/bob/preference/channel_preference/", None)
        .await
        .expect(200);
    assert_eq!(
        bob["channel_preferences"][1],
        json!({"channel": "sms", "is_restricted": true})
    );
}

#[tokio::test]
async fn categories_declared_in_the_configuration_exist_at_start() {
    let app = TestApp::spawn_with(|config| {
        config.categories = vec![
            json!({"category": "security", "name": "Security", "default_preference": "mandatory"}),
            json!({"category": "digest", "name": "Digest", "default_preference": "opt_out", "env": "live"}),
        ];
    })
    .await;
    let test = app.call("GET", "/v1/category/", None).await.expect(200);
    assert_eq!(test["meta"]["count"], 1);
    assert_eq!(test["results"][0]["default_preference"], "mandatory");
    let live = app
        .call_in(Env::Live, "GET", "/v1/category/", None)
        .await
        .expect(200);
    assert_eq!(live["meta"]["count"], 2);
}

/// The hosted page over plain HTTP (the browser test in tests/browser drives it in Chromium).
#[tokio::test]
async fn a_preference_link_opens_a_page_that_saves_choices() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let link = app
        .call(
            "POST",
            "/v1/user/ada/preference/link/",
            Some(json!({"expires_in_days": 7})),
        )
        .await
        .expect(201);
    let token = link["token"].as_str().unwrap().to_owned();
    assert!(link["url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/preferences/{token}")));
    app.call("POST", "/v1/user/ghost/preference/link/", Some(json!({})))
        .await
        .expect_error(404, None);
    app.call(
        "POST",
        "/v1/user/ada/preference/link/",
        Some(json!({"expires_in_days": 0})),
    )
    .await
    .expect_error(400, Some("expires_in_days"));

    let page = app
        .http
        .get(format!("{}/preferences/{token}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(html.contains("name=\"category:newsletter\""), "{html}");
    assert!(
        html.contains("id=\"category-security\" value=\"on\" checked disabled"),
        "mandatory is fixed: {html}"
    );

    // Untick the newsletter, keep offers off, restrict email.
    let form = "category:billing=on&channel:billing:email=on&restrict:email=on";
    let saved = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/preferences/{token}", app.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status().as_u16(), 303);
    let news = app
        .call("GET", "/v1/user/ada/preference/category/newsletter/", None)
        .await
        .expect(200);
    assert_eq!(news["preference"], "opt_out");
    let chans = app
        .call("GET", "/v1/user/ada/preference/channel_preference/", None)
        .await
        .expect(200);
    assert_eq!(
        chans["channel_preferences"][0],
        json!({"channel": "email", "is_restricted": true})
    );
    let history = app
        .call("GET", "/v1/user/ada/history/?limit=1", None)
        .await
        .expect(200);
    assert_eq!(
        history["results"][0]["actor"],
        json!({"kind": "preference_page", "id": "ada"})
    );

    // An altered token shows nothing of anyone.
    let mut forged = token.clone();
    forged.insert(5, 'x');
    for t in [forged.as_str(), "nonsense"] {
        let r = app
            .http
            .get(format!("{}/preferences/{t}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 404);
        let body = r.text().await.unwrap();
        assert!(
            body.contains("not valid") && !body.contains("newsletter"),
            "{body}"
        );
        let post = app
            .http
            .post(format!("{}/preferences/{t}", app.base))
            .body("category:newsletter=on")
            .send()
            .await
            .unwrap();
        assert_eq!(post.status().as_u16(), 404);
    }
    // A link for a test user means nothing in live, and vice versa: the token names its env.
    let live = app.call_in(Env::Live, "GET", "/v1/user/ada/", None).await;
    assert_eq!(live.status, 404);
}

#[tokio::test]
async fn templates_get_the_recipient_and_a_working_preference_link() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    app.call("POST", "/v1/user/ada/", Some(json!({"name": "Ada"})))
        .await
        .expect(201);
    let out = app
        .call(
            "POST",
            "/v1/user/ada/preview/",
            Some(json!({
                "template": "Hi {{$recipient.name}} <{{$recipient.$email}}>, order {{order}}. Preferences: {{{$hosted_preference_url}}}",
                "data": {"order": 42}
            })),
        )
        .await
        .expect(200);
    let rendered = out["rendered"].as_str().unwrap();
    let (text, url) = rendered.split_once("Preferences: ").unwrap();
    assert_eq!(text, "Hi Ada <ada@example.com>, order 42. ");
    let path = url
        .strip_prefix("http://127.0.0.1:8080")
        .expect("public_base from config");
    assert!(path.starts_with("/preferences/"), "{url}");
    // The link in the template opens this user's page.
    let page = app
        .http
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("category-newsletter"));

    for (body, status, field) in [
        (json!({"template": "{{#if}}"}), 400, Some("template")),
        (json!({}), 400, Some("template")),
        (
            json!({"template": "x", "data": {"$recipient": 1}}),
            400,
            Some("data.$recipient"),
        ),
        (json!({"template": "x", "data": [1]}), 400, Some("data")),
    ] {
        app.call("POST", "/v1/user/ada/preview/", Some(body))
            .await
            .expect_error(status, field);
    }
    app.call(
        "POST",
        "/v1/user/ghost/preview/",
        Some(json!({"template": "x"})),
    )
    .await
    .expect_error(404, None);
}

#[tokio::test]
async fn an_expired_link_shows_a_clear_page_and_no_data() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    // Mint the link a real one would be, but already expired.
    app.call("POST", "/v1/user/ada/preference/link/", Some(json!({})))
        .await
        .expect(201);
    let ring = herald_core::link::Keyring::parse(
        &app.store
            .server_secret("preference_links", "unused")
            .await
            .unwrap(),
    );
    let id = herald_core::DistinctId::parse("ada").unwrap();
    let profile = app
        .store
        .get_profile(herald_core::EnvScope::operator(Env::Test), &id)
        .await
        .unwrap()
        .unwrap();
    let past = chrono::Utc::now() - chrono::Duration::minutes(1);
    let subject = herald_core::link::LinkSubject::of(Env::Test, &profile);
    let token = herald_core::link::mint(&ring, &subject, past);
    let page = app
        .http
        .get(format!("{}/preferences/{token}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 410);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("expired") && !html.contains("newsletter"),
        "{html}"
    );
    let post = app
        .http
        .post(format!("{}/preferences/{token}", app.base))
        .body("restrict:email=on")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 410);
    let chans = app
        .call("GET", "/v1/user/ada/preference/channel_preference/", None)
        .await
        .expect(200);
    assert_eq!(chans["channel_preferences"][0]["is_restricted"], false);
    // The same token, still valid, opens the page: only the expiry was at fault.
    let fresh = herald_core::link::mint(&ring, &subject, past + chrono::Duration::days(1));
    let ok = app
        .http
        .get(format!("{}/preferences/{fresh}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
}
