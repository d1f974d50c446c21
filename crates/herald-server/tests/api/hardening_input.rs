//! Audit findings (issue 8): hardening_input.

#[allow(unused_imports)]
use crate::harness::*;
