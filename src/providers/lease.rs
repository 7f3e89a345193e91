//! One run per environment at a time: a lease with owner, pid, run id and expiry, kept
//! by the environment's run store (a file in the state directory locally, an object in
//! S3 on aws; see [`crate::providers::run_store`]).
//!
//! While a run holds the lease, a background task renews the expiry. A lease is *stale*
//! when its expiry passed or (same host) its process is gone. A stale lease is never
//! taken silently: `run` needs `--take-over-lease`, and `resume` of the very run that
//! holds it may take it because the operator named that run. Every take-over is
//! journaled.

use crate::ids::RunId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Who holds the lease. Files and objects written by earlier versions lack `lease_id`,
/// `host` and `pid`; they read as empty / 0, and such a holder is judged by its expiry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseInfo {
    /// `user@host`, or the CI job.
    pub owner: String,
    pub run_id: RunId,
    /// Unique per acquisition (S3 leases: the take-over names the holder it replaces).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub lease_id: String,
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Host and process of the holder, so a holder on this host whose process is gone is
    /// recognised as stale before its expiry.
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub pid: u32,
    /// Set when this lease was taken over from another holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_over_from: Option<Box<LeaseInfo>>,
}

impl LeaseInfo {
    /// A lease for `run_id` held by this process, for `ttl` from now.
    pub fn new(owner: &str, run_id: &RunId, ttl: Duration) -> Self {
        let now = Utc::now();
        Self {
            owner: owner.to_owned(),
            run_id: run_id.clone(),
            lease_id: uuid::Uuid::new_v4().to_string(),
            acquired_at: now,
            expires_at: now
                + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(5)),
            host: hostname(),
            pid: std::process::id(),
            taken_over_from: None,
        }
    }

    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }

    /// The holder's host: `host`, else the part of `owner` after `@` (leases of earlier
    /// versions).
    pub fn holder_host(&self) -> &str {
        if self.host.is_empty() {
            self.owner.rsplit_once('@').map_or("", |(_, h)| h)
        } else {
            &self.host
        }
    }

    /// Whether this very process holds it.
    pub fn held_by_this_process(&self) -> bool {
        self.pid == std::process::id() && self.holder_host() == hostname()
    }

    /// Why the lease is stale, or `None` when it is live. A pid is checked only on its own
    /// host; elsewhere the expiry decides.
    pub fn staleness(&self) -> Option<String> {
        let host = self.holder_host();
        if self.pid != 0 && host == hostname() && !process_alive(self.pid) {
            return Some(format!("its process {} on {host} is gone", self.pid));
        }
        if self.expires_at < Utc::now() {
            return Some(format!("it expired at {}", self.expires_at.to_rfc3339()));
        }
        None
    }
}

impl std::fmt::Display for LeaseInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "run {} by {} (", self.run_id, self.owner)?;
        if self.pid != 0 {
            write!(f, "pid {}, ", self.pid)?;
        }
        write!(
            f,
            "since {}, expires {})",
            self.acquired_at.to_rfc3339(),
            self.expires_at.to_rfc3339()
        )
    }
}

/// `user@host`, the holder name leases show.
pub fn owner() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    format!("{user}@{}", hostname())
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether a process with this pid exists (signal 0). A zombie counts as gone.
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid_t) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let exists = unsafe { libc::kill(pid_t, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_written_by_earlier_versions_read_and_are_judged_by_what_they_say() {
        // A local lease file of an earlier version: no lease_id.
        let local: LeaseInfo = serde_json::from_value(serde_json::json!({
            "owner": "ops@elsewhere", "host": "elsewhere", "pid": 1, "run_id": "r1",
            "acquired_at": "2026-12-01T00:00:00Z", "expires_at": "2999-01-01T00:00:00Z",
        }))
        .unwrap();
        assert_eq!(local.lease_id, "");
        assert_eq!(local.staleness(), None, "another host's pid is not checked");
        // An S3 lease of an earlier version: no host or pid; the host is the owner's.
        let s3: LeaseInfo = serde_json::from_value(serde_json::json!({
            "owner": "ci@runner-7", "run_id": "r2", "lease_id": "l-1",
            "acquired_at": "2026-12-01T00:00:00Z", "expires_at": "2026-12-01T00:02:00Z",
        }))
        .unwrap();
        assert_eq!(s3.holder_host(), "runner-7");
        assert!(!s3.held_by_this_process());
        assert!(
            s3.staleness().unwrap().contains("expired"),
            "{:?}",
            s3.staleness()
        );
    }

    #[test]
    fn a_new_lease_is_this_process_s_and_live() {
        let mine = LeaseInfo::new(&owner(), &RunId::new("r3"), Duration::from_secs(60));
        assert!(mine.held_by_this_process());
        assert_eq!(mine.staleness(), None);
        assert!(!mine.lease_id.is_empty());
        // This host, a pid that is gone: stale before its expiry.
        let gone = LeaseInfo {
            pid: u32::MAX - 1,
            ..mine
        };
        assert!(
            gone.staleness().unwrap().contains("is gone"),
            "{:?}",
            gone.staleness()
        );
    }
}

/// Default lease time-to-live; renewed every third of it.
pub const LEASE_TTL: Duration = Duration::from_secs(120);

/// What happened when asking for the lease.
#[derive(Debug)]
pub enum Acquire {
    /// We hold it now. `taken_over` names the stale holder we replaced, if any.
    Acquired {
        taken_over: Option<(LeaseInfo, String)>,
    },
    /// Someone else holds a live lease.
    Held(LeaseInfo),
    /// A stale lease is in the way and taking it over was not allowed.
    Stale(LeaseInfo, String),
}

/// How a caller may treat a stale lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TakeOver {
    Never,
    /// Only a stale lease held by this run id (resume of a crashed run).
    SameRun,
    /// Any stale lease (`--take-over-lease`).
    AnyStale,
    /// A rollback of this run: its lease when stale, and also when this very process
    /// holds it (a blue-green run whose bake failed hands its lease to the rollback it
    /// starts, so no other run can slip in between).
    RollbackOf(RunId),
}

impl TakeOver {
    /// Whether a stale lease held by `holder` may be taken over by `run_id`.
    pub fn allows(&self, holder: &RunId, run_id: &RunId) -> bool {
        match self {
            TakeOver::Never => false,
            TakeOver::SameRun => holder == run_id,
            TakeOver::AnyStale => true,
            TakeOver::RollbackOf(of) => holder == of,
        }
    }

    /// Why a *live* lease may be taken anyway: only a [`TakeOver::RollbackOf`] handover
    /// from the undone run within this same process.
    pub fn handover(&self, current: &LeaseInfo) -> Option<String> {
        match self {
            TakeOver::RollbackOf(of) if current.run_id == *of && current.held_by_this_process() => {
                Some(format!("run {of} handed its lease to its rollback"))
            }
            _ => None,
        }
    }
}
