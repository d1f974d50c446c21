//! Identifiers that arrive from callers, parsed once at the edge.

use crate::Invalid;
use serde::{Serialize, Serializer};
use std::fmt;

/// A user's key: trimmed, non-empty, at most 255 bytes of UTF-8, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DistinctId(String);

impl DistinctId {
    pub const MAX_BYTES: usize = 255;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(Invalid::new("distinct_id", "must not be empty"));
        }
        if trimmed.len() > Self::MAX_BYTES {
            return Err(Invalid::new(
                "distinct_id",
                format!(
                    "must be at most {} bytes, got {}",
                    Self::MAX_BYTES,
                    trimmed.len()
                ),
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(Invalid::new(
                "distinct_id",
                "must not contain control characters",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DistinctId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for DistinctId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_accepts_unicode() {
        assert_eq!(
            DistinctId::parse("  üser@x.com ").unwrap().as_str(),
            "üser@x.com"
        );
    }

    #[test]
    fn rejects_empty_long_and_control() {
        assert!(DistinctId::parse("   ").is_err());
        assert!(DistinctId::parse(&"a".repeat(256)).is_err());
        assert!(DistinctId::parse(&"a".repeat(255)).is_ok());
        assert!(DistinctId::parse("a\u{0}b").is_err());
        let err = DistinctId::parse("a\nb").unwrap_err();
        assert_eq!(err.field, "distinct_id");
    }
}
