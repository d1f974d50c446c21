//! The two environments. Each key belongs to exactly one; a request runs inside the scope of its
//! key's environment and every store method takes that scope, so an unscoped query cannot be written.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Env {
    Test,
    Live,
}

impl Env {
    pub const ALL: [Env; 2] = [Env::Test, Env::Live];

    pub fn as_str(self) -> &'static str {
        match self {
            Env::Test => "test",
            Env::Live => "live",
        }
    }
}

impl fmt::Display for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Env {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "test" => Ok(Env::Test),
            "live" => Ok(Env::Live),
            other => Err(format!(
                "unknown environment '{other}' (expected test or live)"
            )),
        }
    }
}

/// Proof that the holder acts inside one environment. Only these kinds of code may make one, each
/// through its own constructor so a reader (and `grep`) can see which it is: authentication, from
/// verified credentials ([`EnvScope::authenticated`]); the operator's own processes, which name an
/// environment explicitly ([`EnvScope::operator`]); a dashboard session ([`EnvScope::signed_in`]);
/// a verified preference link ([`crate::link::LinkSubject::scope`]); a verified inbox
/// subscriber id ([`crate::inbox::Subscriber::scope`]); and a provider callback whose signature
/// verified with that environment's provider secret ([`EnvScope::called_back`]). Nothing in a
/// request body can make one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvScope(Env);

impl EnvScope {
    /// The scope of a caller whose key or signature was verified: the key decides the environment.
    /// Only the auth layer calls this, after the check.
    pub fn authenticated(credentials: &crate::credentials::Credentials) -> Self {
        Self(credentials.env)
    }

    /// The scope of the operator's own processes, which name the environment themselves: the CLI's
    /// `--env`, categories declared in the configuration file, server housekeeping (metrics
    /// counts, readiness), `herald copy`, and tests.
    pub fn operator(env: Env) -> Self {
        Self(env)
    }

    /// The scope of a dashboard page: an operator whose session was verified, in the
    /// environment the page's URL names (`/test/…`, `/live/…`). Only the dashboard's session
    /// check calls this; operators see both environments, one page at a time.
    pub fn signed_in(_session: &crate::admin::Session, env: Env) -> Self {
        Self(env)
    }

    /// The scope of a provider's callback (Twilio's status callback, an email bounce report)
    /// whose signature was verified with a secret of the environment its path names (that
    /// environment's provider config). Only the callback handlers call this, after the check.
    pub fn called_back(env: Env) -> Self {
        Self(env)
    }

    pub fn env(self) -> Env {
        self.0
    }
}

impl crate::link::LinkSubject {
    /// The scope a preference link acts in: the environment its signed payload names. Only a
    /// subject that [`crate::link::open`] verified should be asked for it. (Defined here, beside
    /// the other constructors, so that `EnvScope` keeps its field private to this module.)
    pub fn scope(&self) -> EnvScope {
        EnvScope(self.env)
    }
}

impl crate::inbox::Subscriber {
    /// The scope a browser reading one user's inbox acts in: the environment whose inbox secret
    /// keyed its subscriber id. Only a subscriber that [`crate::inbox::verify`] returned should be
    /// asked for it.
    pub fn scope(&self) -> EnvScope {
        EnvScope(self.env)
    }
}
