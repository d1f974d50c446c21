//! SuprSend request signing: HMAC-SHA256 over method, body MD5, content type, date and raw URI.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

/// The string the client signed: five fields joined by `\n`.
pub fn string_to_sign(
    method: &str,
    body: &[u8],
    content_type: &str,
    date: &str,
    uri: &str,
) -> String {
    let md5 = if body.is_empty() {
        String::new()
    } else {
        Md5::digest(body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    format!(
        "{}\n{md5}\n{content_type}\n{date}\n{uri}",
        method.to_uppercase()
    )
}

/// `base64(HMAC-SHA256(secret, string_to_sign))`.
pub fn sign(secret: &str, string_to_sign: &str) -> String {
    STANDARD.encode(mac(secret, string_to_sign).finalize().into_bytes())
}

/// Checks a base64 signature in constant time.
pub fn verify(secret: &str, string_to_sign: &str, signature_b64: &str) -> bool {
    let Ok(sig) = STANDARD.decode(signature_b64.trim()) else {
        return false;
    };
    mac(secret, string_to_sign).verify_slice(&sig).is_ok()
}

fn mac(secret: &str, msg: &str) -> Hmac<Sha256> {
    let mut m =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    m.update(msg.as_bytes());
    m
}

/// The `Date` header as the SDKs send it: RFC 1123 (py, node) or RFC 3339 (node's messages API).
pub fn parse_date(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    DateTime::parse_from_rfc2822(raw)
        .or_else(|_| DateTime::parse_from_rfc3339(raw))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// Whether two byte strings are equal, in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = "application/json; charset=utf-8";
    const DATE: &str = "Sat, 28 Nov 2026 15:21:34 GMT";

    #[test]
    fn wire_spec_vector_post_merge() {
        let body = br#"{"from_user_id": "u_old"}"#;
        let s = string_to_sign("POST", body, CT, DATE, "/v1/user/u1/merge/");
        assert!(s.contains("\n30c3d3a1f49ed9373b79f12d2ca00d32\n"));
        assert_eq!(
            sign("ws_secret_test", &s),
            "oNQbB/U57KUMurIO9z2HLc0XAL94E8x1Xb0DQn58LW8="
        );
        assert!(verify(
            "ws_secret_test",
            &s,
            "oNQbB/U57KUMurIO9z2HLc0XAL94E8x1Xb0DQn58LW8="
        ));
    }

    #[test]
    fn wire_spec_vector_get_with_query() {
        let s = string_to_sign(
            "GET",
            b"",
            CT,
            DATE,
            "/v1/user/u1/preference/?tenant_id=t1&show_opt_out_channels=false",
        );
        assert_eq!(
            sign("ws_secret_test", &s),
            "FzBW3CqzifIMzuytEHG2AhH27lv0fSzy+D8z8yFTO5M="
        );
    }

    #[test]
    fn rejects_wrong_secret_and_garbage() {
        let s = string_to_sign("GET", b"", CT, DATE, "/v1/user/u1/");
        let good = sign("a", &s);
        assert!(!verify("b", &s, &good));
        assert!(!verify("a", &s, "not base64!"));
        assert!(!verify("a", &s, ""));
    }

    #[test]
    fn dates_in_both_forms() {
        assert!(parse_date(DATE).is_some());
        assert!(parse_date("2026-11-28T15:21:52.140Z").is_some());
        assert!(parse_date("yesterday").is_none());
    }
}
