//! Durable file writes for the local provider: write to a temporary file in the same
//! directory, fsync it, rename it over the target, fsync the directory. Readers never
//! see a half-written file.

use crate::failure::Failure;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A temporary sibling of `target` (`.<name>.tmp-<random>`), in the same directory so the
/// rename is atomic.
pub(crate) fn temp_sibling(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let suffix: u64 = rand::random();
    target.with_file_name(format!(".{name}.tmp-{suffix:016x}"))
}

/// Whether a file name is one of [`temp_sibling`]'s.
pub(crate) fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp-")
}

/// Writes `bytes` to `target` atomically with permissions `mode`.
pub(crate) fn write_atomic(target: &Path, bytes: &[u8], mode: u32) -> Result<(), Failure> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = target.parent().unwrap_or(Path::new("."));
    create_dir_all(dir)?;
    let tmp = temp_sibling(target);
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, target)?;
        sync_dir(dir);
        Ok::<(), std::io::Error>(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_failure(&format!("cannot write {}", target.display()), &e)
    })
}

/// `create_dir_all` with a classified, actionable error.
pub(crate) fn create_dir_all(dir: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| io_failure(&format!("cannot create directory {}", dir.display()), &e))
}

/// Best effort: makes a rename in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Classifies an I/O error: a full disk, a permission problem and a read-only file system
/// are permanent and say what to do; anything else is transient.
pub(crate) fn io_failure(what: &str, error: &std::io::Error) -> Failure {
    match error.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
            Failure::permanent(format!("{what}: no space left on device"))
                .with_hint("free disk space there, or point the environment's state_dir at a larger disk")
        }
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) | Some(libc::ENOTDIR) => {
            Failure::permanent(format!("{what}: {error}"))
                .with_hint("make the directory writable for this user, or point the environment's state_dir (or CUTOVER_STATE_DIR) elsewhere")
        }
        _ if error.kind() == std::io::ErrorKind::NotFound => {
            Failure::permanent(format!("{what}: {error}"))
        }
        _ => Failure::transient(format!("{what}: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_permanent_and_says_so() {
        let f = io_failure(
            "cannot write x",
            &std::io::Error::from_raw_os_error(libc::ENOSPC),
        );
        assert!(!f.is_retryable());
        assert!(f.message.contains("no space left"), "{}", f.message);
        assert!(f.hint.is_some());
    }

    #[test]
    fn atomic_writes_leave_no_temp_files() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("a.json");
        write_atomic(&target, b"one", 0o600).unwrap();
        write_atomic(&target, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1);
    }
}
