//! The local instance registry: `<state_dir>/instances/registry.json`, rewritten
//! atomically, guarded by an exclusive `flock` on `registry.lock` so two cutover
//! processes on the same state directory do not lose each other's updates.
//! It holds names, tags, ports, pid and idempotency token; never a password.

use super::files::{create_dir_all, io_failure, write_atomic};
use crate::failure::Failure;
use crate::providers::Tags;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// One instance as the registry records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub name: String,
    pub image: String,
    pub tags: Tags,
    pub idempotency_token: String,
    pub bolt_port: u16,
    pub http_port: u16,
    pub heap_mb: u32,
    /// Databases created at provisioning (readiness queries the first over Bolt).
    #[serde(default)]
    pub databases: Vec<String>,
    /// The server's pid when it was last started (the pid file is the live truth).
    pub pid: Option<u32>,
    /// `true` after `stop`, until the next start.
    #[serde(default)]
    pub stopped: bool,
    pub created_at: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RegistryFile {
    #[serde(default)]
    pub instances: BTreeMap<String, InstanceRecord>,
}

/// Access to one state directory's registry.
#[derive(Clone, Debug)]
pub struct Registry {
    dir: PathBuf,
}

/// Holds the registry lock; released on drop.
pub struct RegistryLock {
    _file: std::fs::File,
}

impl Registry {
    /// `dir` is `<state_dir>/instances`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self) -> PathBuf {
        self.dir.join("registry.json")
    }

    /// Takes the exclusive lock (blocking; held only for short read-modify-write cycles
    /// and server start-up).
    pub fn lock(&self) -> Result<RegistryLock, Failure> {
        create_dir_all(&self.dir)?;
        let path = self.dir.join("registry.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io_failure(&format!("cannot open {}", path.display()), &e))?;
        // SAFETY: flock(2) on a valid, owned descriptor.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(io_failure(
                &format!("cannot lock {}", path.display()),
                &std::io::Error::last_os_error(),
            ));
        }
        Ok(RegistryLock { _file: file })
    }

    /// Reads the registry (empty when missing).
    pub fn read(&self) -> Result<RegistryFile, Failure> {
        let path = self.path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Failure::permanent(format!("{} is corrupt: {e}", path.display()))
                    .with_hint("fix or remove the file; running servers can be found with `ps` and their instance directories")
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RegistryFile::default()),
            Err(e) => Err(io_failure(&format!("cannot read {}", path.display()), &e)),
        }
    }

    /// Writes the registry atomically. Call with the lock held.
    pub fn write(&self, _lock: &RegistryLock, file: &RegistryFile) -> Result<(), Failure> {
        let bytes = serde_json::to_vec_pretty(file).expect("the registry always serialises");
        write_atomic(&self.path(), &bytes, 0o644)
    }

    /// Read, change, write under the lock.
    pub fn update<T>(
        &self,
        f: impl FnOnce(&mut RegistryFile) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let lock = self.lock()?;
        let mut file = self.read()?;
        let out = f(&mut file)?;
        self.write(&lock, &file)?;
        Ok(out)
    }
}
