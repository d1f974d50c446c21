//! Audit findings (issue 8) that live in the store, on every backend.

#[allow(unused_imports)]
use super::*;
