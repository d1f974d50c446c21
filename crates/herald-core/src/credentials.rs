//! Keys: each environment has workspace keys (with an HMAC secret) and bearer API keys.

use crate::env::Env;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// SuprSend's event schema needs workspace keys of at least 20 characters.
pub const MIN_KEY_LEN: usize = 20;

/// A stored key set. The workspace secret is kept (HMAC needs it); the bearer key only as a hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Credentials {
    pub env: Env,
    pub workspace_key: String,
    pub workspace_secret: String,
    pub api_key_hash: String,
    /// The first characters of the bearer key, to recognise it in lists and logs.
    pub api_key_prefix: String,
    pub created_at: DateTime<Utc>,
}

/// A freshly minted key set, with the bearer key in clear: shown once, never stored.
#[derive(Debug, Clone)]
pub struct NewCredentials {
    pub credentials: Credentials,
    pub api_key: String,
}

impl NewCredentials {
    /// Builds a key set from random alphanumeric material supplied by the caller (core has no RNG).
    pub fn from_random(env: Env, random: [&str; 3], now: DateTime<Utc>) -> Self {
        let e = env.as_str();
        let workspace_key = format!("hk_{e}_{}", random[0]);
        let workspace_secret = format!("hs_{e}_{}", random[1]);
        let api_key = format!("hb_{e}_{}", random[2]);
        let credentials = Credentials {
            env,
            workspace_key,
            workspace_secret,
            api_key_hash: hash_api_key(&api_key),
            api_key_prefix: api_key.chars().take(12).collect(),
            created_at: now,
        };
        Self {
            credentials,
            api_key,
        }
    }
}

/// Bearer keys are looked up by their SHA-256; they are long random strings, so no salt is needed.
pub fn hash_api_key(api_key: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(api_key.as_bytes());
    let mut hex = String::with_capacity(digest.len() * 2);
    for b in digest {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    hex
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bearer_key_hashes_to_the_lowercase_hex_sha256() {
        assert_eq!(
            super::hash_api_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
