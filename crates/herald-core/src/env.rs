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

/// Proof that the holder acts inside one environment. Created by authentication (a key decides the
/// environment) or by an operator command that names one explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvScope(Env);

impl EnvScope {
    pub fn new(env: Env) -> Self {
        Self(env)
    }

    pub fn env(self) -> Env {
        self.0
    }
}
