//! Audit findings (issue 8): hardening_edge.

#[allow(unused_imports)]
use crate::harness::*;
