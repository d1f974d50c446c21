//! Dashboard operators: their accounts, their sessions and the throttling of logins. Rules only:
//! the server hashes passwords (argon2) and draws random session ids and CSRF tokens, since core
//! has no RNG; the store keeps what these types describe.

use crate::error::Invalid;
use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};
use std::fmt;

/// An operator's login name: 1–64 characters of lower-case ASCII letters, digits, `.`, `_` and
/// `-`, starting with a letter or digit. Upper-case letters are lowered, so `Ada` and `ada` are
/// one account (and one throttle).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Username(String);

impl Username {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Username, Invalid> {
        let name = raw.trim().to_ascii_lowercase();
        let rule = || {
            Invalid::new(
                "username",
                format!(
                    "must be 1 to {} characters of letters, digits, '.', '_' or '-', starting with a letter or digit",
                    Self::MAX_LEN
                ),
            )
        };
        if name.is_empty() || name.len() > Self::MAX_LEN {
            return Err(rule());
        }
        let mut chars = name.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !(first_ok && rest_ok) {
            return Err(rule());
        }
        Ok(Username(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The shortest password an operator may choose, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The longest, in bytes: hashing cost grows with it, and a login form needs no more.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Whether `password` may be an operator's password: 12 characters or more, at most 1024 bytes,
/// not only white space and without control characters.
pub fn check_password(password: &str) -> Result<(), Invalid> {
    let invalid = |rule: String| Err(Invalid::new("password", rule));
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return invalid(format!(
            "must be at least {MIN_PASSWORD_CHARS} characters long"
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return invalid(format!("must be at most {MAX_PASSWORD_BYTES} bytes long"));
    }
    if password.trim().is_empty() {
        return invalid("must not be only white space".into());
    }
    if password.chars().any(char::is_control) {
        return invalid("must not hold control characters (tabs, line breaks, …)".into());
    }
    Ok(())
}

/// An operator account. `password_hash` is a PHC string (`$argon2id$…`), never the password.
#[derive(Debug, Clone, PartialEq)]
pub struct Operator {
    pub username: Username,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

/// How long a dashboard session lasts from login; after it the operator logs in again.
pub const SESSION_LIFETIME: TimeDelta = TimeDelta::hours(12);

/// A logged-in operator. The session id (the cookie's value) is kept only as its SHA-256, so a
/// copy of the database opens no session; the CSRF token every form carries is stored as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id_hash: String,
    pub username: Username,
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl Session {
    /// A session opened at `now` under the random `id` and `csrf_token` the caller drew.
    pub fn open(id: &str, username: Username, csrf_token: String, now: DateTime<Utc>) -> Session {
        let now = crate::profile::truncate(now);
        Session {
            id_hash: hash_session_id(id),
            username,
            csrf_token,
            created_at: now,
            expires_at: now + SESSION_LIFETIME,
        }
    }

    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }
}

/// What the store keeps of a session id: SHA-256, hex. Ids are long random strings, so no salt
/// is needed (as for bearer keys).
pub fn hash_session_id(id: &str) -> String {
    Sha256::digest(id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whom login attempts are counted against: the account named, and the address they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThrottleKey {
    Account(Username),
    /// The client's IP address, as text.
    Address(String),
}

impl ThrottleKey {
    pub fn kind(&self) -> &'static str {
        match self {
            ThrottleKey::Account(_) => "account",
            ThrottleKey::Address(_) => "address",
        }
    }

    pub fn key(&self) -> &str {
        match self {
            ThrottleKey::Account(u) => u.as_str(),
            ThrottleKey::Address(a) => a,
        }
    }

    /// The policy its attempts are judged by.
    pub fn policy(&self) -> ThrottlePolicy {
        match self {
            ThrottleKey::Account(_) => ThrottlePolicy::ACCOUNT,
            ThrottleKey::Address(_) => ThrottlePolicy::ADDRESS,
        }
    }
}

/// Login attempts counted in the current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginAttempts {
    pub count: u32,
    pub window_start: DateTime<Utc>,
}

/// At most `max_attempts` logins per `window` (a fixed window that starts with its first
/// attempt). Attempts are counted before the password is checked, so parallel guesses cannot
/// slip past the limit; a successful login clears its account's count (not its address's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    pub max_attempts: u32,
    pub window: TimeDelta,
}

/// What a login attempt may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Too many attempts: refused without looking at the password, until `retry_after`.
    Refused {
        retry_after: DateTime<Utc>,
    },
}

impl ThrottlePolicy {
    /// Per account: 10 attempts in 15 minutes. An attacker who guesses at one account can lock
    /// its owner out for at most the rest of the window; `herald admin reset-password` clears it.
    pub const ACCOUNT: ThrottlePolicy = ThrottlePolicy {
        max_attempts: 10,
        window: TimeDelta::minutes(15),
    };
    /// Per address: 50 attempts in 15 minutes, across accounts (one office behind one address
    /// may hold several operators).
    pub const ADDRESS: ThrottlePolicy = ThrottlePolicy {
        max_attempts: 50,
        window: TimeDelta::minutes(15),
    };

    /// The attempts after one more at `now`: counted in the current window, or the first of a
    /// new one when the window has passed (or there was none).
    pub fn count(&self, current: Option<&LoginAttempts>, now: DateTime<Utc>) -> LoginAttempts {
        match current {
            Some(c) if now >= c.window_start && now < c.window_start + self.window => {
                LoginAttempts {
                    count: c.count.saturating_add(1),
                    window_start: c.window_start,
                }
            }
            _ => LoginAttempts {
                count: 1,
                window_start: now,
            },
        }
    }

    /// Whether the attempt that made `attempts` may go on to check its password.
    pub fn verdict(&self, attempts: &LoginAttempts, now: DateTime<Utc>) -> Verdict {
        let ends = attempts.window_start + self.window;
        if attempts.count > self.max_attempts && now < ends {
            Verdict::Refused { retry_after: ends }
        } else {
            Verdict::Allowed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_short_plain_and_lower_case() {
        assert_eq!(
            Username::parse(" Ada.L-1_x ").unwrap().as_str(),
            "ada.l-1_x"
        );
        for bad in [
            "",
            " ",
            ".ada",
            "-ada",
            "ada lovelace",
            "ada@example.com",
            "ädä",
            "a/b",
        ] {
            let e = Username::parse(bad).unwrap_err();
            assert_eq!(e.field, "username", "{bad:?}");
        }
        assert!(Username::parse(&"a".repeat(64)).is_ok());
        assert!(Username::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn passwords_are_long_enough_and_bounded() {
        assert!(check_password("correct horse battery").is_ok());
        assert!(check_password("ünïcödé pässwörd").is_ok());
        for bad in ["short", "eleven char", "            ", "with a\nnewline!"] {
            let e = check_password(bad).unwrap_err();
            assert_eq!(e.field, "password", "{bad:?}");
        }
        assert!(check_password(&"x".repeat(MAX_PASSWORD_BYTES)).is_ok());
        assert!(check_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
    }

    #[test]
    fn sessions_last_their_lifetime_and_keep_only_a_hash() {
        let now = Utc::now();
        let s = Session::open(
            "secret-id",
            Username::parse("ada").unwrap(),
            "t".into(),
            now,
        );
        assert_ne!(s.id_hash, "secret-id");
        assert_eq!(s.id_hash, hash_session_id("secret-id"));
        assert_eq!(s.id_hash.len(), 64);
        assert!(s.is_live(now));
        assert!(s.is_live(now + SESSION_LIFETIME - TimeDelta::seconds(1)));
        assert!(!s.is_live(now + SESSION_LIFETIME));
    }

    #[test]
    fn attempts_past_the_limit_are_refused_until_the_window_ends() {
        let p = ThrottlePolicy {
            max_attempts: 3,
            window: TimeDelta::minutes(15),
        };
        let t0 = Utc::now();
        let mut state = None;
        let mut verdicts = Vec::new();
        for i in 0..5 {
            let now = t0 + TimeDelta::seconds(i);
            let next = p.count(state.as_ref(), now);
            verdicts.push(p.verdict(&next, now));
            state = Some(next);
        }
        let ends = t0 + TimeDelta::minutes(15);
        assert_eq!(
            verdicts,
            [
                Verdict::Allowed,
                Verdict::Allowed,
                Verdict::Allowed,
                Verdict::Refused { retry_after: ends },
                Verdict::Refused { retry_after: ends },
            ]
        );
        // Once the window has passed, a new one starts with this attempt.
        let later = ends + TimeDelta::seconds(1);
        let fresh = p.count(state.as_ref(), later);
        assert_eq!(
            fresh,
            LoginAttempts {
                count: 1,
                window_start: later
            }
        );
        assert_eq!(p.verdict(&fresh, later), Verdict::Allowed);
        // A window start in the future (a clock set back) starts over rather than locking out.
        let skewed = LoginAttempts {
            count: 99,
            window_start: t0 + TimeDelta::hours(1),
        };
        assert_eq!(p.count(Some(&skewed), t0).count, 1);
    }

    #[test]
    fn accounts_are_stricter_than_addresses() {
        let account = ThrottleKey::Account(Username::parse("ada").unwrap());
        let address = ThrottleKey::Address("192.0.2.1".into());
        assert_eq!((account.kind(), account.key()), ("account", "ada"));
        assert_eq!((address.kind(), address.key()), ("address", "192.0.2.1"));
        assert!(account.policy().max_attempts < address.policy().max_attempts);
    }
}
