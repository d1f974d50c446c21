//! Herald's integration tests: one binary, the real server on port 0 with a temporary database.
//! Each capability has its own module; `harness` starts apps and speaks to them.

mod auth;
mod concurrency;
mod crash;
mod dashboard;
mod dispatch;
mod end_to_end;
mod envs;
mod events;
mod fallbacks;
mod hardening_edge;
mod hardening_input;
mod hardening_store;
mod harness;
mod health;
mod history;
mod import;
mod inbox;
mod limits;
mod ndjson;
mod policies;
mod preferences;
mod providers;
mod push;
mod registry;
mod smart;
mod trigger;
mod users;
mod workflows;
