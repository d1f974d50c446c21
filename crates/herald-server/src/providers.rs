//! The provider directory of this node: which channels each environment can send on and the
//! provider that delivers to one identity (see [`herald_core::delivery::Directory`]).

use async_trait::async_trait;
use herald_core::channel::{Channel, Identity};
use herald_core::delivery::{Directory, Provider};
use herald_core::store::StoreError;
use herald_core::Env;
use std::collections::BTreeSet;
use std::sync::Arc;

/// A directory with nothing configured: every channel is `no_provider`. What a node has until
/// provider configuration is wired in.
#[derive(Default)]
pub struct Unconfigured;

#[async_trait]
impl Directory for Unconfigured {
    async fn configured(&self, _: Env) -> Result<BTreeSet<Channel>, StoreError> {
        Ok(BTreeSet::new())
    }

    async fn provider(
        &self,
        _: Env,
        _: &Identity,
    ) -> Result<Option<Arc<dyn Provider>>, StoreError> {
        Ok(None)
    }
}
