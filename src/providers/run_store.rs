//! Where an environment keeps what its runs share beyond one machine's journal: the
//! lease (one run per environment at a time) and, where other machines may resume a
//! run, the journal mirror. The engine sees only these traits:
//!
//! - local ([`crate::providers::local::LocalRunStore`]): a lease file in the state
//!   directory, no mirror (one machine);
//! - aws ([`crate::providers::aws::S3RunStore`]): a lease object written with
//!   conditional puts and every run's journal mirrored under `runs/` in the bucket, so
//!   a run killed on one machine is resumed on another.
//!
//! Both follow the same lease rules ([`crate::providers::lease`]): a live lease is never
//! taken; a stale one only when the caller allows it ([`TakeOver`]), and the caller
//! journals every take-over.

use crate::failure::Failure;
use crate::ids::RunId;
use crate::providers::lease::{Acquire, LeaseInfo, TakeOver};
use async_trait::async_trait;
use std::path::Path;
use std::sync::Arc;

#[async_trait]
pub trait RunStore: Send + Sync {
    /// Where the lease is, for messages.
    fn lease_location(&self) -> String;
    /// Who holds the lease now, if anyone.
    async fn lease_holder(&self) -> Result<Option<LeaseInfo>, Failure>;
    /// Takes the lease for `run_id`, or says who holds it (the lease is `Some` exactly
    /// when the outcome is [`Acquire::Acquired`]).
    async fn acquire_lease(
        &self,
        run_id: &RunId,
        take_over: TakeOver,
    ) -> Result<(Acquire, Option<Box<dyn ActiveLease>>), Failure>;
    /// The journal mirror, where other machines may resume a run.
    fn mirror(&self) -> Option<Arc<dyn JournalMirror>>;
}

/// A lease this process holds. Dropping it does not release it: call
/// [`ActiveLease::release`] (a lease left behind goes stale and marks the environment as
/// mid-run, which is what a crash should look like).
#[async_trait]
pub trait ActiveLease: Send + Sync + std::fmt::Debug {
    /// Extends the expiry. Fails if someone else took the lease meanwhile.
    async fn renew(&mut self) -> Result<(), Failure>;
    /// Removes the lease if this process still holds it.
    async fn release(self: Box<Self>) -> Result<(), Failure>;
}

/// What [`JournalMirror::reconcile`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reconciled {
    /// Neither a local journal nor a mirror.
    Missing,
    /// No mirror; the local journal stands.
    LocalOnly,
    /// The local journal holds everything the mirror does (and maybe more).
    LocalAhead,
    /// The mirror was longer (the run went on elsewhere); the local journal now equals it.
    Downloaded,
}

/// Run journals copied where every machine sees them. The copy never leads: the local
/// journal stays authoritative while the run is live.
#[async_trait]
pub trait JournalMirror: Send + Sync {
    /// Where the mirror of `run_id` is, for messages.
    fn location(&self, run_id: &RunId) -> String;
    /// Whether `run_id` has a mirror.
    async fn exists(&self, run_id: &RunId) -> Result<bool, Failure>;
    /// Replaces the mirror of `run_id` with the journal at `path`.
    async fn upload(&self, run_id: &RunId, path: &Path) -> Result<(), Failure>;
    /// Makes the local journal at `path` the longer of itself and the mirror, and says
    /// what it did. The journal only ever grows, so one of the two must be a prefix of
    /// the other; if not, the run diverged on two machines and nothing is changed.
    async fn reconcile(&self, run_id: &RunId, path: &Path) -> Result<Reconciled, Failure>;
    /// Every run with a mirror.
    async fn runs(&self) -> Result<Vec<RunId>, Failure>;
}
