//! What every HTTP provider shares, written once: the clients (a timeout, no redirects, HTTPS
//! through rustls), the outbound address guard for user-supplied URLs, reading an answer up to a
//! size limit, `Retry-After`, and the default status → [`Delivery`] mapping.

use crate::guard::{self, PublicOnlyResolver, Refused};
use herald_core::delivery::Delivery;
use herald_core::error::Invalid;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Client, Method, RequestBuilder, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The server's outbound policy for every provider call; from the server's configuration, never
/// from a per-environment provider config (an API caller must not lift the guard).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    /// Let user-supplied URLs reach loopback, private and link-local addresses
    /// (`HERALD_OUTBOUND_ALLOW_PRIVATE=true`; tests use it for their local fakes).
    #[serde(default)]
    pub allow_private: bool,
    /// The whole call, connect to last byte read.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// At most this much of any answer is read; the rest is dropped unread.
    #[serde(default = "default_max_response_kib")]
    pub max_response_kib: usize,
}

fn default_timeout_ms() -> u64 {
    10_000
}

fn default_max_response_kib() -> usize {
    64
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            allow_private: false,
            timeout_ms: default_timeout_ms(),
            max_response_kib: default_max_response_kib(),
        }
    }
}

/// Who chose the URL of a call: the operator (a provider's configured endpoint, trusted) or a
/// user (a webhook URL stored on a profile, guarded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Operator,
    User,
}

/// The HTTP side shared by all providers; cheap to clone.
#[derive(Clone)]
pub struct Http {
    inner: Arc<Inner>,
}

struct Inner {
    trusted: Client,
    guarded: Client,
    allow_private: bool,
    max_response_bytes: usize,
    /// What this was built from, for [`Http::http2_only`].
    config: OutboundConfig,
}

impl Http {
    pub fn new(config: &OutboundConfig) -> Result<Http, Invalid> {
        Self::build(config, false)
    }

    /// The same policy over clients that speak HTTP/2 only, with prior knowledge: ALPN `h2` on
    /// `https://`, and h2c (no upgrade dance) on `http://`. For services that accept nothing
    /// else (APNs).
    pub fn http2_only(&self) -> Result<Http, Invalid> {
        Self::build(&self.inner.config, true)
    }

    fn build(config: &OutboundConfig, http2_only: bool) -> Result<Http, Invalid> {
        if config.timeout_ms == 0 {
            return Err(Invalid::new("timeout_ms", "must be at least 1"));
        }
        if config.max_response_kib == 0 {
            return Err(Invalid::new("max_response_kib", "must be at least 1"));
        }
        let builder = || {
            let builder = Client::builder()
                .timeout(Duration::from_millis(config.timeout_ms))
                // A redirect could lead a guarded call to an address never checked.
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")));
            if http2_only {
                builder.http2_prior_knowledge()
            } else {
                builder
            }
        };
        let build_error = |e: reqwest::Error| Invalid::new("outbound", e.to_string());
        let trusted = builder().build().map_err(build_error)?;
        let guarded = if config.allow_private {
            trusted.clone()
        } else {
            builder()
                .dns_resolver(Arc::new(PublicOnlyResolver))
                .build()
                .map_err(build_error)?
        };
        Ok(Http {
            inner: Arc::new(Inner {
                trusted,
                guarded,
                allow_private: config.allow_private,
                max_response_bytes: config.max_response_kib * 1024,
                config: config.clone(),
            }),
        })
    }

    /// A request to `url`; a user-chosen URL with a non-public IP literal is refused here (names
    /// are refused by the guarded client's resolver).
    pub fn request(
        &self,
        method: Method,
        url: Url,
        origin: Origin,
    ) -> Result<RequestBuilder, Delivery> {
        let client = match origin {
            Origin::Operator => &self.inner.trusted,
            Origin::User => {
                if !self.inner.allow_private {
                    guard::check_literal(url.host_str().unwrap_or_default())
                        .map_err(|refused| refused_delivery(&refused))?;
                }
                &self.inner.guarded
            }
        };
        Ok(client.request(method, url))
    }

    /// Sends and reads the answer (at most the size limit). Transport failures become the
    /// outcome: timeouts and connection errors retry, a guard refusal fails for good.
    pub async fn execute(&self, request: RequestBuilder) -> Result<Answer, Delivery> {
        let mut response = request.send().await.map_err(|e| transport_failure(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let retry_after = retry_after(&headers);
        let limit = self.inner.max_response_bytes;
        let mut body = Vec::new();
        let mut truncated = false;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = limit - body.len();
                    if chunk.len() > room {
                        body.extend_from_slice(&chunk[..room]);
                        truncated = true;
                        break;
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                // The status is in; a body cut short is read as far as it came.
                Err(_) => {
                    truncated = true;
                    break;
                }
            }
        }
        Ok(Answer {
            status,
            headers,
            retry_after,
            body,
            truncated,
        })
    }
}

/// An HTTP answer, its body read up to the limit.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    /// The answer's headers (`Location`, provider ids).
    pub headers: HeaderMap,
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
    /// The body was longer than the limit (or broke off); `json()` then gives nothing.
    pub truncated: bool,
}

impl Answer {
    pub fn json(&self) -> Option<Value> {
        if self.truncated {
            return None;
        }
        serde_json::from_slice(&self.body).ok()
    }

    /// A header's value as text, when it is there and is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The start of the body as text, for a failure reason.
    pub fn snippet(&self) -> String {
        const MAX_CHARS: usize = 200;
        let text = String::from_utf8_lossy(&self.body);
        let mut snippet: String = text.trim().chars().take(MAX_CHARS).collect();
        if self.truncated || text.trim().chars().count() > MAX_CHARS {
            snippet.push('…');
        }
        snippet
    }

    /// Whether the provider may accept the same call later: 408, 425, 429 and every 5xx.
    pub fn is_retryable(&self) -> bool {
        matches!(self.status.as_u16(), 408 | 425 | 429) || self.status.is_server_error()
    }

    /// The outcome of a non-2xx answer that no provider-specific rule claimed: retryable
    /// statuses retry (honouring `Retry-After`), the rest fail without blaming the identity.
    pub fn default_outcome(&self, provider: &str) -> Delivery {
        let reason = format!("{provider} answered {}: {}", self.status, self.snippet());
        if self.is_retryable() {
            Delivery::Retry {
                reason,
                after: self.retry_after,
            }
        } else {
            Delivery::Failed {
                reason,
                identity_invalid: false,
            }
        }
    }

    /// A permanent failure that marks the identity dead.
    pub fn identity_invalid(&self, provider: &str, why: &str) -> Delivery {
        Delivery::Failed {
            reason: format!("{provider} answered {}: {why}", self.status),
            identity_invalid: true,
        }
    }
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3); a date in the past is no
/// wait at all.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// `url` sent to `base`'s origin (scheme, host, port) with its own path and query: how a test or
/// a proxy stands in for `https://hooks.slack.com` while the identity keeps its real URL.
pub fn with_origin(url: &Url, base: &Url) -> Url {
    let mut moved = base.clone();
    moved.set_path(url.path());
    moved.set_query(url.query());
    moved
}

/// Where a webhook stored on an identity is sent: its own URL (user-chosen, guarded), or that URL
/// moved to the operator's `base_url` (trusted). A malformed URL is an unusable identity.
pub fn webhook_target(raw: &str, base_url: Option<&Url>) -> Result<(Url, Origin), Delivery> {
    let url = parse_url("identity", raw).map_err(|invalid| Delivery::Failed {
        reason: format!("the webhook URL is unusable: {}", invalid.rule),
        identity_invalid: true,
    })?;
    Ok(match base_url {
        Some(base) => (with_origin(&url, base), Origin::Operator),
        None => (url, Origin::User),
    })
}

/// Parses a URL from configuration or an identity.
pub fn parse_url(field: &str, raw: &str) -> Result<Url, Invalid> {
    let url = Url::parse(raw.trim())
        .map_err(|e| Invalid::new(field, format!("must be an http(s) URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Invalid::new(field, "must be an http(s) URL with a host"));
    }
    Ok(url)
}

fn refused_delivery(refused: &Refused) -> Delivery {
    Delivery::Failed {
        reason: refused.to_string(),
        identity_invalid: false,
    }
}

fn transport_failure(error: &reqwest::Error) -> Delivery {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return refused_delivery(refused);
        }
        source = e.source();
    }
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    Delivery::Retry {
        reason: format!("the call {what}: {}", error_chain(error)),
        after: None,
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(120)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO), "in the past");
        let later = (chrono::Utc::now() + chrono::Duration::seconds(90)).to_rfc2822();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(80) && wait <= Duration::from_secs(90));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn with_origin_keeps_path_and_query() {
        let hook = Url::parse("https://hooks.slack.com/services/T0/B0/x?thread=1").unwrap();
        let base = Url::parse("http://127.0.0.1:4000/ignored").unwrap();
        assert_eq!(
            with_origin(&hook, &base).as_str(),
            "http://127.0.0.1:4000/services/T0/B0/x?thread=1"
        );
    }

    #[test]
    fn urls_must_be_http() {
        assert!(parse_url("base_url", "http://127.0.0.1:1").is_ok());
        let err = parse_url("base_url", "ftp://x").unwrap_err();
        assert_eq!(err.field, "base_url");
        assert!(parse_url("base_url", "not a url").is_err());
    }
}
