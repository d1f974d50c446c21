//! Dashboard operator accounts: argon2 password hashes, the account commands (`herald admin`),
//! and logging in (throttled per account and per address, see [`herald_core::admin`]).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Utc};
use herald_core::admin::{self, Operator, Session, ThrottleKey, Username, Verdict};
use herald_core::store::{Store, StoreError};
use herald_core::Invalid;
use rand::RngCore;

/// Hashes a password with argon2id (the crate's defaults: 19 MiB, 2 passes) and a fresh salt.
/// CPU-bound for tens of milliseconds: call it on a blocking thread from async code.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| format!("salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing the password: {e}"))
}

/// Whether `password` is the one `hash` was made from. A hash that does not parse matches
/// nothing.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A hash no password matches (made once), checked when the username is unknown so that the
/// answer takes as long as for a wrong password: timing does not tell which usernames exist.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&crate::keys::random(32)).expect("argon2 hashes"))
}

/// Why an account command failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Invalid(#[from] Invalid),
    #[error("an operator named '{0}' exists already")]
    Exists(Username),
    #[error("no operator is named '{0}'")]
    Missing(Username),
    #[error("{0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

async fn hashed(password: &str) -> Result<String, AccountError> {
    admin::check_password(password)?;
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| AccountError::Hash(e.to_string()))?
        .map_err(AccountError::Hash)
}

/// `herald admin create`: a new account, refused when the name is taken.
pub async fn create(
    store: &dyn Store,
    username: &str,
    password: &str,
    now: DateTime<Utc>,
) -> Result<Operator, AccountError> {
    let username = Username::parse(username)?;
    let operator = Operator {
        username: username.clone(),
        password_hash: hashed(password).await?,
        created_at: herald_core::profile::truncate(now),
    };
    if store.insert_operator(&operator).await? {
        Ok(operator)
    } else {
        Err(AccountError::Exists(username))
    }
}

/// `herald admin reset-password`: a new password; the account's sessions end and its login
/// throttle is cleared.
pub async fn reset_password(
    store: &dyn Store,
    username: &str,
    password: &str,
) -> Result<(), AccountError> {
    let username = Username::parse(username)?;
    let hash = hashed(password).await?;
    if store.set_operator_password(&username, &hash).await? {
        Ok(())
    } else {
        Err(AccountError::Missing(username))
    }
}

/// `herald admin delete`: the account and its sessions.
pub async fn delete(store: &dyn Store, username: &str) -> Result<(), AccountError> {
    let username = Username::parse(username)?;
    if store.delete_operator(&username).await? {
        Ok(())
    } else {
        Err(AccountError::Missing(username))
    }
}

/// A session just opened: the cookie's value (shown once, stored only as a hash) and the session.
pub struct Opened {
    pub cookie: String,
    pub session: Session,
}

/// Why a login did not open a session.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Wrong username or password (the two are not told apart).
    #[error("wrong username or password")]
    Refused,
    /// Too many attempts for the account or from the address.
    #[error("too many login attempts; try again after {retry_after}")]
    Throttled { retry_after: DateTime<Utc> },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a username and password from `address` and opens a session. Every attempt is counted
/// against the address and the account before the password is looked at (see
/// [`herald_core::admin::ThrottlePolicy`]); a success clears the account's count.
pub async fn login(
    store: &dyn Store,
    username: &str,
    password: &str,
    address: &str,
    now: DateTime<Utc>,
) -> Result<Opened, LoginError> {
    let mut keys = vec![ThrottleKey::Address(address.to_owned())];
    let username = Username::parse(username).ok();
    if let Some(u) = &username {
        keys.push(ThrottleKey::Account(u.clone()));
    }
    let mut refused_until: Option<DateTime<Utc>> = None;
    for key in &keys {
        let policy = key.policy();
        let attempts = store.count_login_attempt(key, policy, now).await?;
        if let Verdict::Refused { retry_after } = policy.verdict(&attempts, now) {
            refused_until = Some(refused_until.map_or(retry_after, |r| r.max(retry_after)));
        }
    }
    if let Some(retry_after) = refused_until {
        return Err(LoginError::Throttled { retry_after });
    }
    let operator = match &username {
        Some(u) => store.get_operator(u).await?,
        None => None,
    };
    let hash = operator
        .as_ref()
        .map_or_else(|| decoy_hash().to_owned(), |o| o.password_hash.clone());
    let candidate = password.to_owned();
    let matches = tokio::task::spawn_blocking(move || verify_password(&hash, &candidate))
        .await
        .unwrap_or(false);
    let (Some(operator), true) = (operator, matches) else {
        return Err(LoginError::Refused);
    };
    store
        .clear_login_attempts(&ThrottleKey::Account(operator.username.clone()))
        .await?;
    let cookie = crate::keys::random(43);
    let session = Session::open(&cookie, operator.username, crate::keys::random(43), now);
    store.insert_session(&session).await?;
    Ok(Opened { cookie, session })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "correct horse batterY"));
        assert!(!verify_password("not a hash", "anything"));
        assert_ne!(
            hash,
            hash_password("correct horse battery").unwrap(),
            "salted"
        );
        assert!(!verify_password(decoy_hash(), ""));
    }
}
