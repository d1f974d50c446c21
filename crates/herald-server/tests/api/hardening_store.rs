//! Audit findings (issue 8): hardening_store.

#[allow(unused_imports)]
use crate::harness::*;
