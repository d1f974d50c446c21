//! The one validation error of the domain: which field is wrong and which rule it breaks.

use std::fmt;

/// Input that breaks a rule. `field` is a path a caller can find in what they sent
/// (`operations[2].$set.country`), `rule` says what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub rule: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
        }
    }

    /// The same error, reported under a parent path: `operations[1]` + `$set.x`. An empty parent
    /// (the top of the request) leaves it as it is.
    pub fn within(mut self, parent: impl fmt::Display) -> Self {
        let parent = parent.to_string();
        self.field = if parent.is_empty() {
            self.field
        } else if self.field.is_empty() {
            parent
        } else if self.field.starts_with('[') {
            format!("{parent}{}", self.field)
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

impl Invalid {
    /// The same error, reported under the `i`th item of a list: `[i]` + `.x` = `[i].x`.
    pub fn within_index(mut self, i: usize) -> Self {
        self.field = if self.field.is_empty() || self.field.starts_with('[') {
            format!("[{i}]{}", self.field)
        } else {
            format!("[{i}].{}", self.field)
        };
        self
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.rule)
        } else {
            write!(f, "{}: {}", self.field, self.rule)
        }
    }
}

impl std::error::Error for Invalid {}
