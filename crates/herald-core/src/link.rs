//! Signed, expiring links for one user in one environment (the hosted preference page). A link
//! carries `{env, distinct_id, expiry}` and an HMAC over them; anyone holding it may act for that
//! user on that page only, until it expires.

use crate::env::Env;
use crate::ids::DistinctId;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// Why a link does not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    /// Not a link Herald made, or altered since.
    Invalid,
    Expired,
}

fn mac(secret: &[u8], payload: &str) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    m.update(b"herald-preference-link:");
    m.update(payload.as_bytes());
    m
}

/// `payload.signature`, both base64url.
pub fn mint(secret: &[u8], env: Env, id: &DistinctId, expires_at: DateTime<Utc>) -> String {
    let payload = URL_SAFE_NO_PAD.encode(
        json!({"e": env.as_str(), "d": id.as_str(), "x": expires_at.timestamp()}).to_string(),
    );
    let sig = URL_SAFE_NO_PAD.encode(mac(secret, &payload).finalize().into_bytes());
    format!("{payload}.{sig}")
}

/// The environment and user a link was made for, if it is genuine and current.
pub fn open(
    secret: &[u8],
    token: &str,
    now: DateTime<Utc>,
) -> Result<(Env, DistinctId), LinkError> {
    let (payload, sig) = token.split_once('.').ok_or(LinkError::Invalid)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| LinkError::Invalid)?;
    mac(secret, payload)
        .verify_slice(&sig)
        .map_err(|_| LinkError::Invalid)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| LinkError::Invalid)?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| LinkError::Invalid)?;
    let env: Env = v["e"]
        .as_str()
        .and_then(|e| e.parse().ok())
        .ok_or(LinkError::Invalid)?;
    let id = v["d"]
        .as_str()
        .and_then(|d| DistinctId::parse(d).ok())
        .ok_or(LinkError::Invalid)?;
    let expiry = v["x"].as_i64().ok_or(LinkError::Invalid)?;
    if now.timestamp() >= expiry {
        return Err(LinkError::Expired);
    }
    Ok((env, id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn links_open_until_they_expire_and_only_unaltered() {
        let now = Utc::now();
        let id = DistinctId::parse("ada@example.com").unwrap();
        let token = mint(b"secret", Env::Live, &id, now + Duration::days(1));
        assert_eq!(open(b"secret", &token, now), Ok((Env::Live, id.clone())));
        assert_eq!(
            open(b"secret", &token, now + Duration::days(2)),
            Err(LinkError::Expired)
        );
        assert_eq!(open(b"other", &token, now), Err(LinkError::Invalid));
        // Swap in another user's payload: the signature no longer matches.
        let other = mint(
            b"secret",
            Env::Live,
            &DistinctId::parse("bob").unwrap(),
            now + Duration::days(1),
        );
        let forged = format!(
            "{}.{}",
            other.split('.').next().unwrap(),
            token.split('.').nth(1).unwrap()
        );
        assert_eq!(open(b"secret", &forged, now), Err(LinkError::Invalid));
        for junk in ["", "abc", "a.b", "..", &token.replace('.', "")] {
            assert_eq!(
                open(b"secret", junk, now),
                Err(LinkError::Invalid),
                "{junk}"
            );
        }
    }
}
