//! [`S3RunStore`]: the lease object (`<state_prefix>/lease.json`, conditional puts) and
//! the journal mirror (`<state_prefix>/runs/<run>/journal.jsonl`) in the environment's
//! bucket, shared by every machine and CI job that runs against the environment.

use super::journal_mirror::S3JournalMirror;
use super::lease::{HeldLease, LeaseOutcome, S3Lease};
use crate::failure::Failure;
use crate::ids::RunId;
use crate::providers::lease::{owner, Acquire, LeaseInfo, TakeOver, LEASE_TTL};
use crate::providers::run_store::{ActiveLease, JournalMirror, Reconciled, RunStore};
use async_trait::async_trait;
use std::path::Path;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct S3RunStore {
    lease: S3Lease,
    mirror: S3JournalMirror,
}

impl S3RunStore {
    pub fn new(lease: S3Lease, mirror: S3JournalMirror) -> Self {
        Self { lease, mirror }
    }
}

/// The S3 lease this process holds.
#[derive(Debug)]
struct S3ActiveLease {
    lease: S3Lease,
    held: HeldLease,
}

#[async_trait]
impl RunStore for S3RunStore {
    fn lease_location(&self) -> String {
        self.lease.location()
    }

    async fn lease_holder(&self) -> Result<Option<LeaseInfo>, Failure> {
        Ok(self.lease.current().await?.map(|h| h.info))
    }

    async fn acquire_lease(
        &self,
        run_id: &RunId,
        take_over: TakeOver,
    ) -> Result<(Acquire, Option<Box<dyn ActiveLease>>), Failure> {
        let active = |held| {
            Some(Box::new(S3ActiveLease {
                lease: self.lease.clone(),
                held,
            }) as Box<dyn ActiveLease>)
        };
        let me = owner();
        let holder = match self.lease.acquire(&me, run_id, LEASE_TTL).await? {
            LeaseOutcome::Acquired(held) => {
                return Ok((Acquire::Acquired { taken_over: None }, active(held)));
            }
            LeaseOutcome::HeldBy { holder, .. } => holder,
        };
        let shown = holder.info.clone();
        let Some(reason) = shown.staleness().or_else(|| take_over.handover(&shown)) else {
            return Ok((Acquire::Held(shown), None));
        };
        if !take_over.allows(&shown.run_id, run_id) {
            return Ok((Acquire::Stale(shown, reason), None));
        }
        // The conditional write names the very holder we judged stale: if anyone renewed
        // or replaced it meanwhile, the take-over fails and we report the new holder.
        match self
            .lease
            .take_over(&holder, &me, run_id, LEASE_TTL)
            .await?
        {
            LeaseOutcome::Acquired(held) => Ok((
                Acquire::Acquired {
                    taken_over: Some((shown, reason)),
                },
                active(held),
            )),
            LeaseOutcome::HeldBy { holder, .. } => Ok((Acquire::Held(holder.info), None)),
        }
    }

    fn mirror(&self) -> Option<Arc<dyn JournalMirror>> {
        Some(Arc::new(self.mirror.clone()))
    }
}

#[async_trait]
impl ActiveLease for S3ActiveLease {
    async fn renew(&mut self) -> Result<(), Failure> {
        self.held = self.lease.renew(&self.held, LEASE_TTL).await?;
        Ok(())
    }

    async fn release(self: Box<Self>) -> Result<(), Failure> {
        self.lease.release(&self.held).await
    }
}

#[async_trait]
impl JournalMirror for S3JournalMirror {
    fn location(&self, run_id: &RunId) -> String {
        S3JournalMirror::location(self, run_id)
    }

    async fn exists(&self, run_id: &RunId) -> Result<bool, Failure> {
        Ok(self.head(run_id).await?.is_some())
    }

    async fn upload(&self, run_id: &RunId, path: &Path) -> Result<(), Failure> {
        S3JournalMirror::upload(self, run_id, path)
            .await
            .map(|_| ())
    }

    async fn reconcile(&self, run_id: &RunId, path: &Path) -> Result<Reconciled, Failure> {
        S3JournalMirror::reconcile(self, run_id, path).await
    }

    async fn runs(&self) -> Result<Vec<RunId>, Failure> {
        S3JournalMirror::runs(self).await
    }
}
