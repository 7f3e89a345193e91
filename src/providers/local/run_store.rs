//! [`LocalRunStore`]: the lease file in the state directory; no journal mirror (a local
//! environment lives on one machine).

use super::lease::LocalLease;
use crate::failure::Failure;
use crate::ids::RunId;
use crate::providers::lease::{Acquire, LeaseInfo, TakeOver};
use crate::providers::run_store::{ActiveLease, JournalMirror, RunStore};
use async_trait::async_trait;
use std::path::PathBuf;
use std::sync::Arc;

/// The run store of the state directory `state_dir` (`<state_dir>/lease.json`).
#[derive(Clone, Debug)]
pub struct LocalRunStore {
    state_dir: PathBuf,
}

impl LocalRunStore {
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
        }
    }
}

#[async_trait]
impl RunStore for LocalRunStore {
    fn lease_location(&self) -> String {
        LocalLease::path_for(&self.state_dir).display().to_string()
    }

    async fn lease_holder(&self) -> Result<Option<LeaseInfo>, Failure> {
        LocalLease::holder(&self.state_dir)
    }

    async fn acquire_lease(
        &self,
        run_id: &RunId,
        take_over: TakeOver,
    ) -> Result<(Acquire, Option<Box<dyn ActiveLease>>), Failure> {
        let (outcome, lease) = LocalLease::acquire(&self.state_dir, run_id, take_over)?;
        Ok((outcome, lease.map(|l| Box::new(l) as Box<dyn ActiveLease>)))
    }

    fn mirror(&self) -> Option<Arc<dyn JournalMirror>> {
        None
    }
}

#[async_trait]
impl ActiveLease for LocalLease {
    async fn renew(&mut self) -> Result<(), Failure> {
        LocalLease::renew(self)
    }

    async fn release(self: Box<Self>) -> Result<(), Failure> {
        LocalLease::release(*self)
    }
}
