//! Herald's domain: every rule about profiles, identities, operations and history, as plain
//! functions over plain data. No HTTP, no SQL, no runtime: adapters live in other crates and
//! implement the traits in [`store`].

pub mod admin;
pub mod channel;
pub mod credentials;
pub mod delivery;
pub mod digest;
pub mod dispatch;
pub mod engagement;
pub mod env;
pub mod erasure;
pub mod error;
pub mod filter;
pub mod health;
pub mod history;
pub mod ids;
pub mod inbox;
pub mod index;
pub mod link;
pub mod listing;
pub mod message;
pub mod ops;
pub mod preference;
pub mod profile;
pub mod property;
pub mod quiet;
pub mod service;
pub mod signature;
pub mod store;
pub mod template;
pub mod throttle;
pub mod trigger;
pub mod validate;
pub mod workflow;

pub use channel::{Channel, Identity, IdentityStatus};
pub use env::{Env, EnvScope};
pub use error::Invalid;
pub use ids::DistinctId;
pub use profile::{Profile, Status};
