//! Signed, expiring links for one user in one environment (the hosted preference page). A link
//! carries `{kid, env, distinct_id, created_at, epoch, expiry}` and an HMAC over them made with the
//! secret `kid` names; anyone holding it may act for that user on that page only, until it
//! expires, the user's link epoch is bumped (revoke), the profile is deleted (a profile re-created
//! under the same id has another `created_at`) or its secret is retired.

use crate::env::Env;
use crate::ids::DistinctId;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::BTreeMap;

/// Why a link does not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    /// Not a link Herald made, altered since, signed with a retired secret, or revoked.
    Invalid,
    Expired,
}

/// Whom a link speaks for: the profile as it was when the link was minted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSubject {
    pub env: Env,
    pub distinct_id: DistinctId,
    /// The profile's `created_at`, in microseconds: a deleted and re-created profile differs.
    pub created_at_micros: i64,
    /// The profile's link epoch (`Preferences::link_epoch`) when the link was minted.
    pub epoch: u64,
}

impl LinkSubject {
    pub fn of(env: Env, profile: &crate::Profile) -> LinkSubject {
        LinkSubject {
            env,
            distinct_id: profile.distinct_id.clone(),
            created_at_micros: profile.created_at.timestamp_micros(),
            epoch: profile.preferences.link_epoch,
        }
    }

    /// Whether the link still speaks for `profile`: the same profile, not revoked since.
    pub fn still_matches(&self, profile: &crate::Profile) -> bool {
        profile.distinct_id == self.distinct_id
            && profile.created_at.timestamp_micros() == self.created_at_micros
            && profile.preferences.link_epoch == self.epoch
    }
}

/// The secrets that sign links, by key id. New links are signed with `current`; links signed
/// with any secret still in `keys` open. Stored as JSON in one server secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyring {
    pub current: String,
    pub keys: BTreeMap<String, String>,
}

impl Keyring {
    /// A ring holding one secret, id `1`.
    pub fn new(secret: String) -> Keyring {
        Keyring {
            current: "1".into(),
            keys: BTreeMap::from([("1".into(), secret)]),
        }
    }

    /// The ring as stored. A bare secret (stored before key ids existed) is key `1`.
    pub fn parse(stored: &str) -> Keyring {
        serde_json::from_str::<Keyring>(stored)
            .ok()
            .filter(|k| k.keys.contains_key(&k.current))
            .unwrap_or_else(|| Keyring::new(stored.to_owned()))
    }

    pub fn to_stored(&self) -> String {
        serde_json::to_string(self).expect("a keyring serialises")
    }

    /// Adds `secret` under the next id and makes it current; older secrets still verify.
    /// Returns the new id.
    pub fn rotate(&mut self, secret: String) -> String {
        let next = self
            .keys
            .keys()
            .filter_map(|k| k.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        let kid = next.to_string();
        self.keys.insert(kid.clone(), secret);
        self.current = kid.clone();
        kid
    }

    /// Forgets every secret but the current one: links they signed stop opening. Returns how
    /// many were retired.
    pub fn retire_old(&mut self) -> usize {
        let before = self.keys.len();
        let current = self.current.clone();
        self.keys.retain(|k, _| *k == current);
        before - self.keys.len()
    }

    pub(crate) fn secret(&self, kid: &str) -> Option<&[u8]> {
        self.keys.get(kid).map(|s| s.as_bytes())
    }

    /// `body` (a JSON object) with the current key's id as `k`, as `payload.signature`, both
    /// base64url. `purpose` is signed first, so a token made for one use (a preference link, a
    /// tracking link) never opens as another.
    pub(crate) fn seal(&self, purpose: &[u8], mut body: Value) -> String {
        body["k"] = json!(self.current);
        let payload = URL_SAFE_NO_PAD.encode(body.to_string());
        let secret = self
            .secret(&self.current)
            .expect("the current key is in the ring");
        let sig = URL_SAFE_NO_PAD.encode(mac(secret, purpose, &payload).finalize().into_bytes());
        format!("{payload}.{sig}")
    }

    /// The body of a token [`seal`](Self::seal) made for `purpose` with a secret still in the
    /// ring; nothing in it is trusted before the signature checks (only `k`, which says which
    /// secret to check with).
    pub(crate) fn unseal(&self, purpose: &[u8], token: &str) -> Result<Value, LinkError> {
        let (payload, sig) = token.split_once('.').ok_or(LinkError::Invalid)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| LinkError::Invalid)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| LinkError::Invalid)?;
        let body: Value = serde_json::from_slice(&bytes).map_err(|_| LinkError::Invalid)?;
        let secret = body["k"]
            .as_str()
            .and_then(|k| self.secret(k))
            .ok_or(LinkError::Invalid)?;
        mac(secret, purpose, payload)
            .verify_slice(&sig)
            .map_err(|_| LinkError::Invalid)?;
        Ok(body)
    }
}

/// A new random signing secret (256 bits, hex).
pub fn fresh_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("the OS provides random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn mac(secret: &[u8], purpose: &[u8], payload: &str) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    m.update(purpose);
    m.update(payload.as_bytes());
    m
}

/// What a preference link's signature covers before its payload.
const PREFERENCE_LINK: &[u8] = b"herald-preference-link:";

/// A preference link's token for `subject`, good until `expires_at` ([`Keyring::seal`]).
pub fn mint(ring: &Keyring, subject: &LinkSubject, expires_at: DateTime<Utc>) -> String {
    ring.seal(
        PREFERENCE_LINK,
        json!({
            "e": subject.env.as_str(),
            "d": subject.distinct_id.as_str(),
            "c": subject.created_at_micros,
            "n": subject.epoch,
            "x": expires_at.timestamp(),
        }),
    )
}

/// Whom a link was made for, if it is genuine (signed by a secret still in the ring) and
/// current. The caller must still check the subject against the stored profile
/// ([`LinkSubject::still_matches`]).
pub fn open(ring: &Keyring, token: &str, now: DateTime<Utc>) -> Result<LinkSubject, LinkError> {
    let v = ring.unseal(PREFERENCE_LINK, token)?;
    let env: Env = v["e"]
        .as_str()
        .and_then(|e| e.parse().ok())
        .ok_or(LinkError::Invalid)?;
    let distinct_id = v["d"]
        .as_str()
        .and_then(|d| DistinctId::parse(d).ok())
        .ok_or(LinkError::Invalid)?;
    let created_at_micros = v["c"].as_i64().ok_or(LinkError::Invalid)?;
    let epoch = v["n"].as_u64().ok_or(LinkError::Invalid)?;
    let expiry = v["x"].as_i64().ok_or(LinkError::Invalid)?;
    if now.timestamp() >= expiry {
        return Err(LinkError::Expired);
    }
    Ok(LinkSubject {
        env,
        distinct_id,
        created_at_micros,
        epoch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn subject(id: &str) -> LinkSubject {
        LinkSubject {
            env: Env::Live,
            distinct_id: DistinctId::parse(id).unwrap(),
            created_at_micros: 1_700_000_000_123_456,
            epoch: 0,
        }
    }

    #[test]
    fn links_open_until_they_expire_and_only_unaltered() {
        let now = Utc::now();
        let ring = Keyring::new("secret".into());
        let ada = subject("ada@example.com");
        let token = mint(&ring, &ada, now + Duration::days(1));
        assert_eq!(open(&ring, &token, now), Ok(ada.clone()));
        assert_eq!(
            open(&ring, &token, now + Duration::days(2)),
            Err(LinkError::Expired)
        );
        let other_ring = Keyring::new("other".into());
        assert_eq!(open(&other_ring, &token, now), Err(LinkError::Invalid));
        // Swap in another user's payload: the signature no longer matches.
        let other = mint(&ring, &subject("bob"), now + Duration::days(1));
        let forged = format!(
            "{}.{}",
            other.split('.').next().unwrap(),
            token.split('.').nth(1).unwrap()
        );
        assert_eq!(open(&ring, &forged, now), Err(LinkError::Invalid));
        for junk in ["", "abc", "a.b", "..", &token.replace('.', "")] {
            assert_eq!(open(&ring, junk, now), Err(LinkError::Invalid), "{junk}");
        }
    }

    #[test]
    fn rotation_keeps_old_links_until_the_old_secret_is_retired() {
        let now = Utc::now();
        let mut ring = Keyring::new("first".into());
        let ada = subject("ada");
        let old = mint(&ring, &ada, now + Duration::days(1));
        assert_eq!(ring.rotate("second".into()), "2");
        let new = mint(&ring, &ada, now + Duration::days(1));
        assert_ne!(old, new);
        // The ring survives storage, and a bare secret stored before key ids is key 1.
        let ring = Keyring::parse(&ring.to_stored());
        assert_eq!(open(&ring, &old, now), Ok(ada.clone()));
        assert_eq!(open(&ring, &new, now), Ok(ada.clone()));
        assert_eq!(Keyring::parse("first"), Keyring::new("first".into()));
        let mut ring = ring;
        assert_eq!(ring.retire_old(), 1);
        assert_eq!(open(&ring, &old, now), Err(LinkError::Invalid));
        assert_eq!(open(&ring, &new, now), Ok(ada));
    }

    #[test]
    fn a_link_matches_only_its_profile_as_it_was() {
        let mut p = crate::Profile::new(
            DistinctId::parse("ada").unwrap(),
            DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
        );
        let s = LinkSubject::of(Env::Live, &p);
        assert!(s.still_matches(&p));
        p.preferences.link_epoch += 1;
        assert!(!s.still_matches(&p), "revoked");
        p.preferences.link_epoch -= 1;
        p.created_at += Duration::microseconds(1);
        assert!(!s.still_matches(&p), "re-created");
    }
}
