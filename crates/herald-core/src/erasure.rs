//! Erasure: what a deleted (or merged-away) profile leaves behind. Its tombstone must keep
//! answering "was this user deleted?" without keeping the identifier (often an email) anywhere in
//! the database, so the tombstone is filed under a keyed hash of the id, computable only with the
//! server's `erasure` secret (see [`crate::store::CredentialStore::server_secret`]).

use crate::ids::DistinctId;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The name of the server secret the hash is keyed with. `herald copy` carries it, so tombstones
/// copied to another database are still found there.
pub const SECRET_NAME: &str = "erasure";

/// What every tombstone id starts with: a hash, never a caller's id.
pub const PREFIX: &str = "erased:";

/// A new random secret (256 bits, hex), offered to the store when it holds none yet.
pub fn fresh_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("the OS provides random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The id the tombstone of `id` is filed under: `erased:` and the hex HMAC-SHA256 of the id.
pub fn tombstone_id(secret: &str, id: &DistinctId) -> DistinctId {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(id.as_str().as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    DistinctId::parse(&format!("{PREFIX}{hex}")).expect("a hash is a valid id")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tombstone_id_is_keyed_and_hides_the_id() {
        let id = DistinctId::parse("ada@example.com").unwrap();
        let a = tombstone_id("secret-a", &id);
        assert!(a.as_str().starts_with(PREFIX));
        assert!(!a.as_str().contains("ada"));
        assert_eq!(a, tombstone_id("secret-a", &id), "stable");
        assert_ne!(a, tombstone_id("secret-b", &id), "keyed");
        assert_ne!(fresh_secret(), fresh_secret());
        assert_eq!(fresh_secret().len(), 64);
    }
}
