//! The local run store's lease: a file created with `O_EXCL` (content first, then
//! hard-linked into place) in the state directory, replaced atomically on a take-over.

use crate::failure::Failure;
use crate::ids::RunId;
use crate::providers::lease::{owner, Acquire, LeaseInfo, TakeOver, LEASE_TTL};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A lease file. Dropping it does not release it: call [`LocalLease::release`].
#[derive(Debug)]
pub struct LocalLease {
    path: PathBuf,
    info: LeaseInfo,
    ttl: Duration,
}

impl LocalLease {
    pub fn path_for(state_dir: &Path) -> PathBuf {
        state_dir.join("lease.json")
    }

    /// Reads the current holder, if any.
    pub fn holder(state_dir: &Path) -> Result<Option<LeaseInfo>, Failure> {
        let path = Self::path_for(state_dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Failure::permanent(format!("lease {} is unreadable: {e}", path.display()))
                    .with_hint("inspect it; remove it only if no run is active")
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Failure::permanent(format!(
                "cannot read lease {}: {e}",
                path.display()
            ))),
        }
    }

    pub fn acquire(
        state_dir: &Path,
        run_id: &RunId,
        take_over: TakeOver,
    ) -> Result<(Acquire, Option<LocalLease>), Failure> {
        std::fs::create_dir_all(state_dir).map_err(|e| {
            Failure::permanent(format!(
                "cannot create state directory {}: {e}",
                state_dir.display()
            ))
        })?;
        let path = Self::path_for(state_dir);
        let info = LeaseInfo::new(&owner(), run_id, LEASE_TTL);
        let bytes = serde_json::to_vec_pretty(&info).expect("lease serializes");
        // Bounded: each pass either creates the file, reports a holder, or replaces a
        // stale lease (after which create_new is retried once more).
        for _ in 0..3 {
            match create_with_content(&path, &bytes) {
                Ok(()) => {
                    let lease = LocalLease {
                        path,
                        info,
                        ttl: LEASE_TTL,
                    };
                    return Ok((Acquire::Acquired { taken_over: None }, Some(lease)));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let Some(current) = Self::holder(state_dir)? else {
                        continue;
                    };
                    let Some(reason) = current.staleness().or_else(|| take_over.handover(&current))
                    else {
                        return Ok((Acquire::Held(current), None));
                    };
                    if !take_over.allows(&current.run_id, run_id) {
                        return Ok((Acquire::Stale(current, reason), None));
                    }
                    // Replace atomically, then check we were the one who replaced it.
                    write_atomically(&path, &bytes)?;
                    match Self::holder(state_dir)? {
                        Some(now) if now == info => {
                            let lease = LocalLease {
                                path,
                                info,
                                ttl: LEASE_TTL,
                            };
                            return Ok((
                                Acquire::Acquired {
                                    taken_over: Some((current, reason)),
                                },
                                Some(lease),
                            ));
                        }
                        Some(other) => return Ok((Acquire::Held(other), None)),
                        None => continue,
                    }
                }
                Err(e) => {
                    return Err(Failure::permanent(format!(
                        "cannot create lease {}: {e}",
                        path.display()
                    )))
                }
            }
        }
        Err(Failure::transient(format!(
            "lease {} kept changing while acquiring it",
            path.display()
        )))
    }

    pub fn info(&self) -> &LeaseInfo {
        &self.info
    }

    /// Extends the expiry. Fails if someone else took the lease meanwhile.
    pub fn renew(&mut self) -> Result<(), Failure> {
        let state_dir = self.path.parent().expect("lease lives in the state dir");
        match Self::holder(state_dir)? {
            Some(current) if current.run_id == self.info.run_id && current.pid == self.info.pid => {
            }
            other => {
                return Err(Failure::permanent(format!(
                    "lost the lease {}: now held by {}",
                    self.path.display(),
                    other.map_or("nobody".into(), |o| o.to_string())
                )))
            }
        }
        self.info.expires_at = chrono::Utc::now()
            + chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::minutes(2));
        write_atomically(
            &self.path,
            &serde_json::to_vec_pretty(&self.info).expect("lease serializes"),
        )
    }

    /// Removes the lease if we still hold it.
    pub fn release(self) -> Result<(), Failure> {
        let state_dir = self.path.parent().expect("lease lives in the state dir");
        if let Some(current) = Self::holder(state_dir)? {
            if current.run_id == self.info.run_id && current.pid == self.info.pid {
                std::fs::remove_file(&self.path).map_err(|e| {
                    Failure::permanent(format!("cannot remove lease {}: {e}", self.path.display()))
                })?;
            }
        }
        Ok(())
    }
}

/// Creates `path` holding `bytes`, or fails with `AlreadyExists`, atomically: the
/// content is written to a private file first and hard-linked into place, so a racing
/// reader never sees a created-but-empty lease.
fn create_with_content(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("new-{}", std::process::id()));
    let result = std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|_| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    result
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| Failure::permanent(format!("cannot write lease {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_acquire_sees_the_live_holder() {
        let dir = tempfile::tempdir().unwrap();
        let (a, lease) =
            LocalLease::acquire(dir.path(), &RunId::new("r1"), TakeOver::Never).unwrap();
        assert!(matches!(a, Acquire::Acquired { taken_over: None }));
        let (b, none) =
            LocalLease::acquire(dir.path(), &RunId::new("r2"), TakeOver::AnyStale).unwrap();
        assert!(
            matches!(b, Acquire::Held(ref h) if h.run_id.as_str() == "r1"),
            "{b:?}"
        );
        assert!(none.is_none());
        lease.unwrap().release().unwrap();
        assert!(LocalLease::holder(dir.path()).unwrap().is_none());
    }

    #[test]
    fn a_stale_lease_is_taken_over_only_when_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let mut stale = LeaseInfo::new(&owner(), &RunId::new("old"), LEASE_TTL);
        stale.expires_at = chrono::Utc::now() - chrono::Duration::seconds(1);
        std::fs::write(
            LocalLease::path_for(dir.path()),
            serde_json::to_vec(&stale).unwrap(),
        )
        .unwrap();
        let (a, _) = LocalLease::acquire(dir.path(), &RunId::new("new"), TakeOver::Never).unwrap();
        assert!(
            matches!(a, Acquire::Stale(ref h, ref why) if h.run_id.as_str() == "old" && why.contains("expired")),
            "{a:?}"
        );
        let (a, _) =
            LocalLease::acquire(dir.path(), &RunId::new("new"), TakeOver::SameRun).unwrap();
        assert!(matches!(a, Acquire::Stale(..)));
        let (a, lease) =
            LocalLease::acquire(dir.path(), &RunId::new("new"), TakeOver::AnyStale).unwrap();
        assert!(
            matches!(a, Acquire::Acquired { taken_over: Some((ref h, _)) } if h.run_id.as_str() == "old")
        );
        assert_eq!(
            LocalLease::holder(dir.path())
                .unwrap()
                .unwrap()
                .run_id
                .as_str(),
            "new"
        );
        lease.unwrap().release().unwrap();
    }
}
