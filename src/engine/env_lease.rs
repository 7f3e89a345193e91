//! The environment lease, wherever it lives: a file in the state directory (`local`
//! provider: one machine) or an object in the environment's S3 bucket (`aws`: every
//! machine and CI job that runs against the environment sees the same lease).
//!
//! Both follow the same rules (see [`super::lease`]): a live lease is never taken; a
//! stale one (expired, or its process on this host gone) is taken over only when the
//! caller allows it ([`TakeOver`]), and the caller journals every take-over.

use super::lease::{owner, Acquire, LeaseInfo, LocalLease, TakeOver, LEASE_TTL};
use crate::failure::Failure;
use crate::ids::RunId;
use crate::providers::aws::lease::{HeldLease, LeaseOutcome, S3Lease};
use std::path::PathBuf;

/// Where an environment's lease lives.
#[derive(Clone, Debug)]
pub enum LeaseBackend {
    /// `<state_dir>/lease.json`.
    Local(PathBuf),
    /// `s3://<bucket>/<state_prefix>/lease.json`, written with conditional puts.
    S3(S3Lease),
}

/// A lease this process holds. Dropping it does not release it: call
/// [`EnvLease::release`] (a lease left behind goes stale and marks the environment as
/// mid-run, which is what a crash should look like).
#[derive(Debug)]
pub enum EnvLease {
    Local(LocalLease),
    S3 { lease: S3Lease, held: HeldLease },
}

impl LeaseBackend {
    /// Where the lease is, for messages.
    pub fn location(&self) -> String {
        match self {
            LeaseBackend::Local(dir) => LocalLease::path_for(dir).display().to_string(),
            LeaseBackend::S3(lease) => lease.location(),
        }
    }

    /// Who holds the lease now, if anyone.
    pub async fn holder(&self) -> Result<Option<LeaseInfo>, Failure> {
        match self {
            LeaseBackend::Local(dir) => LocalLease::holder(dir),
            LeaseBackend::S3(lease) => Ok(lease.current().await?.map(|h| h.info)),
        }
    }

    /// Takes the lease for `run_id`, or says who holds it.
    pub async fn acquire(
        &self,
        run_id: &RunId,
        take_over: TakeOver,
    ) -> Result<(Acquire, Option<EnvLease>), Failure> {
        match self {
            LeaseBackend::Local(dir) => {
                let (outcome, lease) = LocalLease::acquire(dir, run_id, take_over)?;
                Ok((outcome, lease.map(EnvLease::Local)))
            }
            LeaseBackend::S3(lease) => acquire_s3(lease, run_id, take_over).await,
        }
    }
}

async fn acquire_s3(
    lease: &S3Lease,
    run_id: &RunId,
    take_over: TakeOver,
) -> Result<(Acquire, Option<EnvLease>), Failure> {
    let me = owner();
    let holder = match lease.acquire(&me, run_id, LEASE_TTL).await? {
        LeaseOutcome::Acquired(held) => {
            let env_lease = EnvLease::S3 {
                lease: lease.clone(),
                held,
            };
            return Ok((Acquire::Acquired { taken_over: None }, Some(env_lease)));
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
    // The conditional write names the very holder we judged stale: if anyone renewed or
    // replaced it meanwhile, the take-over fails and we report the new holder.
    match lease.take_over(&holder, &me, run_id, LEASE_TTL).await? {
        LeaseOutcome::Acquired(held) => Ok((
            Acquire::Acquired {
                taken_over: Some((shown, reason)),
            },
            Some(EnvLease::S3 {
                lease: lease.clone(),
                held,
            }),
        )),
        LeaseOutcome::HeldBy { holder, .. } => Ok((Acquire::Held(holder.info), None)),
    }
}

impl EnvLease {
    /// Extends the expiry. Fails if someone else took the lease meanwhile.
    pub async fn renew(&mut self) -> Result<(), Failure> {
        match self {
            EnvLease::Local(l) => l.renew(),
            EnvLease::S3 { lease, held } => {
                *held = lease.renew(held, LEASE_TTL).await?;
                Ok(())
            }
        }
    }

    /// Removes the lease if we still hold it.
    pub async fn release(self) -> Result<(), Failure> {
        match self {
            EnvLease::Local(l) => l.release(),
            EnvLease::S3 { lease, held } => lease.release(&held).await,
        }
    }
}
