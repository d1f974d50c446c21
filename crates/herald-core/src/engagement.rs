//! Engagement: whether a user saw or clicked a message, and what a `smart` workflow does with it.
//!
//! - [`decide`] is the rule of a smart channel order: when the next channel's wait is over, it
//!   is sent only if the user has not engaged (per [`Until`]) with any earlier message of the
//!   same trigger.
//! - [`Event`] is what a caller, the inbox or a tracked email reports about one message;
//!   [`crate::message::Message::engage`] applies it (the first time wins; a click implies seen).
//! - [`Tracker`] rewrites an HTML email for open and click tracking: a signed 1×1 pixel and
//!   every `<a href="http…">` through Herald's redirect. The URL a click goes to is inside the
//!   signed token, so the redirect cannot be pointed anywhere else ([`open_token`]).

use crate::env::Env;
use crate::error::Invalid;
use crate::link::{Keyring, LinkError};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::fmt;

/// What counts as engagement for a `smart` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Until {
    /// Seen (inbox seen or read, email opened, a `seen` event) or clicked.
    Seen,
    /// Clicked only.
    Clicked,
}

impl Until {
    pub const ALL: [Until; 2] = [Until::Seen, Until::Clicked];

    pub fn as_str(self) -> &'static str {
        match self {
            Until::Seen => "seen",
            Until::Clicked => "clicked",
        }
    }

    /// `seen` or `clicked`, refused under `field` otherwise.
    pub fn parse(field: &str, raw: &str) -> Result<Until, Invalid> {
        Self::ALL
            .into_iter()
            .find(|u| u.as_str() == raw.trim())
            .ok_or_else(|| Invalid::new(field, format!("'{raw}' is not one of seen, clicked")))
    }
}

impl fmt::Display for Until {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one message was engaged with so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Engagement {
    pub seen_at: Option<DateTime<Utc>>,
    pub clicked_at: Option<DateTime<Utc>>,
}

impl Engagement {
    /// Whether this engagement meets `until` (a click is also a sight).
    pub fn reaches(&self, until: Until) -> bool {
        match until {
            Until::Seen => self.seen_at.is_some() || self.clicked_at.is_some(),
            Until::Clicked => self.clicked_at.is_some(),
        }
    }
}

/// What a smart step does once its wait is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nobody engaged: send on this channel.
    Continue,
    /// The user engaged with an earlier message: this channel (and every one after it) is
    /// skipped with `engaged`.
    Stop,
}

/// The smart rule: continue unless any `earlier` message of the same trigger reaches `until`.
pub fn decide(earlier: &[Engagement], until: Until) -> Step {
    if earlier.iter().any(|e| e.reaches(until)) {
        Step::Stop
    } else {
        Step::Continue
    }
}

/// A step of a smart order, as its waiting message keeps it: how long after the message before
/// it was sent it becomes due, and what engagement stops it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gate {
    pub wait: chrono::Duration,
    pub until: Until,
}

/// An engagement report about one message (`POST /v1/message/{id}/event/`, the inbox, a
/// tracked email).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    Seen,
    Clicked,
    /// The provider (or the app) confirmed delivery: a sent message becomes `delivered`.
    Delivered,
}

impl Event {
    pub const ALL: [Event; 3] = [Event::Seen, Event::Clicked, Event::Delivered];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::Seen => "seen",
            Event::Clicked => "clicked",
            Event::Delivered => "delivered",
        }
    }

    /// `seen`, `clicked` or `delivered`, refused under `field` otherwise.
    pub fn parse(field: &str, raw: &str) -> Result<Event, Invalid> {
        Self::ALL
            .into_iter()
            .find(|e| e.as_str() == raw.trim())
            .ok_or_else(|| {
                Invalid::new(
                    field,
                    format!("'{raw}' is not one of seen, clicked, delivered"),
                )
            })
    }
}

// ---- Open and click tracking ------------------------------------------------------------------

/// Whether a workflow's HTML emails are tracked. Both off unless the workflow turns them on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tracking {
    pub opens: bool,
    pub clicks: bool,
}

impl Tracking {
    pub fn any(self) -> bool {
        self.opens || self.clicks
    }
}

/// What a tracking token says, once its signature checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    pub env: Env,
    pub message_id: String,
    /// A click's destination; `None` for the open pixel.
    pub url: Option<String>,
}

/// What a tracking link's signature covers before its payload: a preference link's token never
/// opens here, nor a tracking token there.
const TRACKING_LINK: &[u8] = b"herald-tracking:";

/// A tracking token ([`Keyring::seal`]). A click token carries its `url`; an open token none.
pub fn mint_token(ring: &Keyring, env: Env, message_id: &str, url: Option<&str>) -> String {
    let mut body = json!({"e": env.as_str(), "m": message_id});
    if let Some(url) = url {
        body["u"] = json!(url);
    }
    ring.seal(TRACKING_LINK, body)
}

/// What `token` says, if Herald signed it with a secret still in the ring. Tracking tokens do
/// not expire (an email is opened when it is opened).
pub fn open_token(ring: &Keyring, token: &str) -> Result<Tracked, LinkError> {
    let v = ring.unseal(TRACKING_LINK, token)?;
    let env: Env = v["e"]
        .as_str()
        .and_then(|e| e.parse().ok())
        .ok_or(LinkError::Invalid)?;
    let message_id = v["m"].as_str().ok_or(LinkError::Invalid)?.to_owned();
    let url = match v.get("u") {
        None => None,
        Some(u) => Some(u.as_str().ok_or(LinkError::Invalid)?.to_owned()),
    };
    Ok(Tracked {
        env,
        message_id,
        url,
    })
}

/// Rewrites HTML emails for one message: `base` is Herald's public URL (no trailing `/`).
pub struct Tracker<'a> {
    pub ring: &'a Keyring,
    pub base: &'a str,
}

impl Tracker<'_> {
    /// The open pixel's URL for a message.
    pub fn pixel_url(&self, env: Env, message_id: &str) -> String {
        format!(
            "{}/t/o/{}",
            self.base,
            mint_token(self.ring, env, message_id, None)
        )
    }

    /// The redirect a click on `url` goes through.
    pub fn click_url(&self, env: Env, message_id: &str, url: &str) -> String {
        format!(
            "{}/t/c/{}",
            self.base,
            mint_token(self.ring, env, message_id, Some(url))
        )
    }

    /// `html` with `tracking` applied: clicks rewrite each `<a … href="http(s)://…">` (other
    /// schemes, such as `mailto:`, and other tags' `href`s stay); opens add a 1×1 image before
    /// `</body>` (or at the end).
    pub fn apply(&self, tracking: Tracking, env: Env, message_id: &str, html: &str) -> String {
        let mut out = if tracking.clicks {
            rewrite_links(html, |url| self.click_url(env, message_id, url))
        } else {
            html.to_owned()
        };
        if tracking.opens {
            let pixel = format!(
                "<img src=\"{}\" width=\"1\" height=\"1\" alt=\"\" style=\"display:none\">",
                self.pixel_url(env, message_id)
            );
            match out.to_ascii_lowercase().rfind("</body>") {
                Some(at) => out.insert_str(at, &pixel),
                None => out.push_str(&pixel),
            }
        }
        out
    }
}

/// Every `href` of an `<a>` tag whose value (the entities templates escape with decoded) is an
/// `http://` or `https://` URL of visible ASCII (what a `Location` header can carry), replaced
/// by `rewrite(url)`. Other links are left as they are, untracked.
pub fn rewrite_links(html: &str, rewrite: impl Fn(&str) -> String) -> String {
    let lower = html.to_ascii_lowercase();
    let mut out = String::with_capacity(html.len());
    let mut from = 0;
    while let Some(found) = lower[from..].find("href=") {
        let at = from + found;
        let value_start = at + "href=".len();
        let quote = html[value_start..].chars().next();
        let Some(quote @ ('"' | '\'')) = quote else {
            out.push_str(&html[from..value_start]);
            from = value_start;
            continue;
        };
        let Some(len) = html[value_start + 1..].find(quote) else {
            break;
        };
        let value_end = value_start + 1 + len;
        let raw = &html[value_start + 1..value_end];
        let url = decode_entities(raw);
        let lower_url = url.to_ascii_lowercase();
        let web = (lower_url.starts_with("http://") || lower_url.starts_with("https://"))
            && url.bytes().all(|b| b.is_ascii_graphic());
        if web && in_anchor(&lower[..at]) {
            out.push_str(&html[from..value_start + 1]);
            out.push_str(&rewrite(&url).replace('&', "&amp;"));
        } else {
            out.push_str(&html[from..value_end]);
        }
        from = value_end;
    }
    out.push_str(&html[from..]);
    out
}

/// The entities Handlebars writes for `{{value}}` (and `&amp;` as authors write it), decoded.
fn decode_entities(raw: &str) -> String {
    const ENTITIES: [(&str, &str); 10] = [
        ("&quot;", "\""),
        ("&#x27;", "'"),
        ("&#39;", "'"),
        ("&#x60;", "`"),
        ("&#x3D;", "="),
        ("&#61;", "="),
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&#x2F;", "/"),
        // Last, so `&amp;lt;` reads `&lt;`.
        ("&amp;", "&"),
    ];
    ENTITIES
        .iter()
        .fold(raw.to_owned(), |s, (entity, c)| s.replace(entity, c))
}

/// Whether the tag open at the end of `before` is an `<a>`.
fn in_anchor(before: &str) -> bool {
    let Some(open) = before.rfind('<') else {
        return false;
    };
    if before[open..].contains('>') {
        return false;
    }
    let tag = &before[open + 1..];
    tag.starts_with('a') && tag[1..].starts_with(|c: char| c.is_ascii_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(1_700_000_000 + s, 0)
    }

    #[test]
    fn the_smart_rule_over_every_combination() {
        let none = Engagement::default();
        let seen = Engagement {
            seen_at: t(1),
            clicked_at: None,
        };
        let clicked_only = Engagement {
            seen_at: None,
            clicked_at: t(2),
        };
        let both = Engagement {
            seen_at: t(1),
            clicked_at: t(2),
        };
        let cases: [(&[Engagement], Until, Step); 12] = [
            (&[], Until::Seen, Step::Continue),
            (&[], Until::Clicked, Step::Continue),
            (&[none], Until::Seen, Step::Continue),
            (&[none], Until::Clicked, Step::Continue),
            (&[seen], Until::Seen, Step::Stop),
            (&[seen], Until::Clicked, Step::Continue),
            (&[clicked_only], Until::Seen, Step::Stop),
            (&[clicked_only], Until::Clicked, Step::Stop),
            (&[both], Until::Seen, Step::Stop),
            (&[both], Until::Clicked, Step::Stop),
            (&[none, seen], Until::Seen, Step::Stop),
            (&[none, seen, none], Until::Clicked, Step::Continue),
        ];
        for (earlier, until, want) in cases {
            assert_eq!(decide(earlier, until), want, "{earlier:?} {until}");
        }
    }

    #[test]
    fn wire_names_parse_and_others_are_refused_naming_the_field() {
        for u in Until::ALL {
            assert_eq!(Until::parse("until", u.as_str()).unwrap(), u);
        }
        let e = Until::parse("policy.smart.until", "read").unwrap_err();
        assert_eq!(e.field, "policy.smart.until");
        for ev in Event::ALL {
            assert_eq!(Event::parse("event", ev.as_str()).unwrap(), ev);
        }
        assert_eq!(Event::parse("event", "opened").unwrap_err().field, "event");
    }

    #[test]
    fn tokens_open_only_unaltered_and_carry_the_click_url() {
        let ring = Keyring::new("secret".into());
        let open = mint_token(&ring, Env::Live, "msg_1", None);
        assert_eq!(
            open_token(&ring, &open),
            Ok(Tracked {
                env: Env::Live,
                message_id: "msg_1".into(),
                url: None
            })
        );
        let click = mint_token(&ring, Env::Test, "msg_1", Some("https://example.com/a?b=1"));
        assert_eq!(
            open_token(&ring, &click).unwrap().url.as_deref(),
            Some("https://example.com/a?b=1")
        );
        // Another URL under the same signature: refused (no open redirect).
        let evil = mint_token(&ring, Env::Test, "msg_1", Some("https://evil.example/"));
        let forged = format!(
            "{}.{}",
            evil.split('.').next().unwrap(),
            click.split('.').nth(1).unwrap()
        );
        assert_eq!(open_token(&ring, &forged), Err(LinkError::Invalid));
        assert_eq!(
            open_token(&Keyring::new("other".into()), &click),
            Err(LinkError::Invalid)
        );
        // A preference link's token is not a tracking token (another MAC domain).
        let subject = crate::link::LinkSubject {
            env: Env::Test,
            distinct_id: crate::DistinctId::parse("ada").unwrap(),
            created_at_micros: 0,
            epoch: 0,
        };
        let pref = crate::link::mint(&ring, &subject, Utc::now() + chrono::Duration::days(1));
        assert_eq!(open_token(&ring, &pref), Err(LinkError::Invalid));
        for junk in ["", "a.b", "..", "x"] {
            assert_eq!(open_token(&ring, junk), Err(LinkError::Invalid));
        }
    }

    #[test]
    fn links_in_anchors_are_rewritten_and_the_pixel_goes_before_the_body_end() {
        let html = "<html><head><link href=\"https://cdn.example/s.css\"></head><body>\
            <a href=\"https://example.com/a?x=1&amp;y=2\">A</a> \
            <A class='c' HREF='http://example.com/b'>B</A> \
            <a href=\"mailto:ada@example.com\">mail</a></body></html>";
        let out = rewrite_links(html, |u| format!("T({u})"));
        assert!(
            out.contains("<link href=\"https://cdn.example/s.css\">"),
            "{out}"
        );
        assert!(
            out.contains("<a href=\"T(https://example.com/a?x=1&amp;y=2)\">A</a>"),
            "{out}"
        );
        assert!(out.contains("HREF='T(http://example.com/b)'"), "{out}");
        assert!(out.contains("href=\"mailto:ada@example.com\""), "{out}");
        // Escaped by a template: decoded before it is signed. Not a header value: untracked.
        let out = rewrite_links(
            "<a href=\"https://x.example/?q&#x3D;a&amp;b&#x3D;c\">x</a><a href=\"https://x.example/ä b\">y</a>",
            |u| format!("T({u})"),
        );
        assert!(out.contains("T(https://x.example/?q=a&amp;b=c)"), "{out}");
        assert!(out.contains("href=\"https://x.example/ä b\""), "{out}");

        let ring = Keyring::new("secret".into());
        let tracker = Tracker {
            ring: &ring,
            base: "https://herald.example",
        };
        let both = Tracking {
            opens: true,
            clicks: true,
        };
        let out = tracker.apply(both, Env::Test, "msg_1", html);
        let pixel_at = out.find("<img src=\"https://herald.example/t/o/").unwrap();
        assert_eq!(&out[pixel_at..].find("</body>").is_some(), &true);
        assert!(out.contains("href=\"https://herald.example/t/c/"), "{out}");
        let off = tracker.apply(Tracking::default(), Env::Test, "msg_1", html);
        assert_eq!(off, html);
        let opens_only = Tracking {
            opens: true,
            clicks: false,
        };
        let out = tracker.apply(opens_only, Env::Test, "msg_1", "<p>hi</p>");
        assert!(out.starts_with("<p>hi</p><img src=\"https://herald.example/t/o/"));
        assert!(!out.contains("/t/c/"));
    }
}
