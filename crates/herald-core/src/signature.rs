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

/// The signature header of a webhook Herald receives from its operator's systems (the email
/// bounce report): `sha256=` and the hex HMAC-SHA256 of the raw body, keyed with the shared secret.
pub fn sign_body(secret: &str, body: &[u8]) -> String {
    let mut m =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    m.update(body);
    let hex: String = m
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Checks a [`sign_body`] header in constant time (hex in either case).
pub fn verify_body(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    if hex.len() != 64 || !hex.is_ascii() {
        return false;
    }
    let Ok(claimed) = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
    else {
        return false;
    };
    let mut m =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    m.update(body);
    m.verify_slice(&claimed).is_ok()
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

    /// RFC 4231 test case 2.
    #[test]
    fn body_signatures_are_hex_hmac_sha256() {
        let body = b"what do ya want for nothing?";
        let header = "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert_eq!(sign_body("Jefe", body), header);
        assert!(verify_body("Jefe", body, header));
        assert!(verify_body(
            "Jefe",
            body,
            &header.to_uppercase().replace("SHA256=", "sha256=")
        ));
        assert!(!verify_body("jefe", body, header));
        assert!(!verify_body(
            "Jefe",
            b"what do ya want for nothing!",
            header
        ));
        assert!(!verify_body("Jefe", body, &header[7..]), "needs the prefix");
        assert!(!verify_body("Jefe", body, "sha256=zz"));
        assert!(!verify_body(
            "Jefe",
            body,
            "sha256=é5dcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec38"
        ));
    }

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
