//! The local secret store: one JSON file per secret under `<state_dir>/secrets/`, mode
//! 0600, rewritten atomically (temp file + fsync + rename). Each file holds every version
//! of the secret and which version has which stage (current / pending / previous), like
//! Secrets Manager's staging labels.
//!
//! File name: the secret name with every byte outside `[A-Za-z0-9._-]` written as `%XX`,
//! plus `.json`. Format (what the application, e.g. a test writer, may read):
//! `{"name": "...", "current": "<version>", "pending": null, "previous": "<version>",
//!   "versions": [{"id": "<version>", "value": "<secret>", "token": "...", "created": "..."}]}`
//!
//! Values are held as [`SecretString`] outside this module and never logged; the
//! in-memory file representation redacts them in `Debug`.

use super::files::{create_dir_all, io_failure, write_atomic};
use crate::failure::Failure;
use crate::ids::SecretName;
use crate::providers::{SecretStage, SecretStore, SecretVersion, SecretVersionInfo};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Versioned secrets in one directory (`<state_dir>/secrets`).
#[derive(Debug)]
pub struct LocalSecretStore {
    dir: PathBuf,
    /// Serialises read-modify-write cycles within this process.
    lock: tokio::sync::Mutex<()>,
}

#[derive(Serialize, Deserialize, Default)]
struct SecretFile {
    name: String,
    #[serde(default)]
    current: Option<String>,
    #[serde(default)]
    pending: Option<String>,
    #[serde(default)]
    previous: Option<String>,
    #[serde(default)]
    versions: Vec<StoredVersion>,
}

#[derive(Serialize, Deserialize)]
struct StoredVersion {
    id: String,
    value: String,
    token: String,
    created: String,
}

impl std::fmt::Debug for StoredVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredVersion")
            .field("id", &self.id)
            .field("value", &"[REDACTED]")
            .finish()
    }
}

impl SecretFile {
    fn stages_of(&self, id: &str) -> Vec<SecretStage> {
        let mut stages = Vec::new();
        for (stage, v) in [
            (SecretStage::Current, &self.current),
            (SecretStage::Pending, &self.pending),
            (SecretStage::Previous, &self.previous),
        ] {
            if v.as_deref() == Some(id) {
                stages.push(stage);
            }
        }
        stages
    }
}

impl LocalSecretStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The file that holds `name` (it may not exist yet).
    pub fn path_of(&self, name: &SecretName) -> PathBuf {
        let mut file = String::new();
        for b in name.as_str().bytes() {
            if b.is_ascii_alphanumeric()
                || matches!(b, b'.' | b'_' | b'-') && !(file.is_empty() && b == b'.')
            {
                file.push(b as char);
            } else {
                file.push_str(&format!("%{b:02X}"));
            }
        }
        self.dir.join(format!("{file}.json"))
    }

    /// Creates the secret with `value` as its current version, or does nothing if a version
    /// with this `token` exists already. Returns the version id.
    pub async fn put_current(
        &self,
        name: &SecretName,
        value: &SecretString,
        token: &str,
    ) -> Result<String, Failure> {
        let id = self.put_pending(name, value, token).await?;
        self.promote(name, &id).await?;
        Ok(id)
    }

    /// Removes the secret and all its versions. Idempotent.
    pub async fn delete(&self, name: &SecretName) -> Result<(), Failure> {
        let _guard = self.lock.lock().await;
        let path = self.path_of(name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_failure(
                &format!("cannot delete secret {name} ({})", path.display()),
                &e,
            )),
        }
    }

    fn load(&self, name: &SecretName) -> Result<Option<SecretFile>, Failure> {
        let path = self.path_of(name);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(io_failure(
                    &format!("cannot read secret {name} ({})", path.display()),
                    &e,
                ))
            }
        };
        serde_json::from_slice(&text).map(Some).map_err(|e| {
            Failure::permanent(format!(
                "secret {name}: {} is not a valid secret file: {e}",
                path.display()
            ))
            .with_hint("restore the file from a backup or delete it and set the secret again")
        })
    }

    fn save(&self, file: &SecretFile) -> Result<(), Failure> {
        create_dir_all(&self.dir)?;
        restrict_dir(&self.dir);
        let bytes = serde_json::to_vec_pretty(file).expect("a secret file always serialises");
        write_atomic(
            &self.path_of(&SecretName::new(file.name.clone())),
            &bytes,
            0o600,
        )
    }
}

fn restrict_dir(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
}

fn unknown_version(name: &SecretName, version_id: &str) -> Failure {
    Failure::permanent(format!("secret {name} has no version {version_id}"))
}

#[async_trait]
impl SecretStore for LocalSecretStore {
    async fn get(
        &self,
        name: &SecretName,
        stage: SecretStage,
    ) -> Result<Option<SecretVersion>, Failure> {
        let Some(file) = self.load(name)? else {
            return Ok(None);
        };
        let id = match stage {
            SecretStage::Current => &file.current,
            SecretStage::Pending => &file.pending,
            SecretStage::Previous => &file.previous,
        };
        Ok(id.as_ref().and_then(|id| {
            file.versions
                .iter()
                .find(|v| &v.id == id)
                .map(|v| SecretVersion {
                    version_id: v.id.clone(),
                    value: SecretString::from(v.value.clone()),
                })
        }))
    }

    async fn put_pending(
        &self,
        name: &SecretName,
        value: &SecretString,
        token: &str,
    ) -> Result<String, Failure> {
        let _guard = self.lock.lock().await;
        let mut file = self.load(name)?.unwrap_or_else(|| SecretFile {
            name: name.as_str().to_string(),
            ..SecretFile::default()
        });
        if let Some(existing) = file.versions.iter().find(|v| v.token == token) {
            return Ok(existing.id.clone());
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        file.versions.push(StoredVersion {
            id: id.clone(),
            value: value.expose_secret().to_string(),
            token: token.to_string(),
            created: chrono::Utc::now().to_rfc3339(),
        });
        file.pending = Some(id.clone());
        self.save(&file)?;
        Ok(id)
    }

    async fn promote(&self, name: &SecretName, version_id: &str) -> Result<(), Failure> {
        let _guard = self.lock.lock().await;
        let mut file = self
            .load(name)?
            .ok_or_else(|| Failure::permanent(format!("no secret {name}")))?;
        if !file.versions.iter().any(|v| v.id == version_id) {
            return Err(unknown_version(name, version_id));
        }
        if file.current.as_deref() == Some(version_id) {
            if file.pending.as_deref() == Some(version_id) {
                file.pending = None;
                self.save(&file)?;
            }
            return Ok(());
        }
        file.previous = file.current.take();
        file.current = Some(version_id.to_string());
        if file.pending.as_deref() == Some(version_id) {
            file.pending = None;
        }
        self.save(&file)
    }

    async fn rollback(&self, name: &SecretName) -> Result<(), Failure> {
        let _guard = self.lock.lock().await;
        let Some(mut file) = self.load(name)? else {
            return Ok(());
        };
        let Some(previous) = file.previous.take() else {
            return Ok(());
        };
        file.current = Some(previous);
        self.save(&file)
    }

    async fn versions(&self, name: &SecretName) -> Result<Vec<SecretVersionInfo>, Failure> {
        let Some(file) = self.load(name)? else {
            return Ok(Vec::new());
        };
        Ok(file
            .versions
            .iter()
            .map(|v| SecretVersionInfo {
                version_id: v.id.clone(),
                stages: file.stages_of(&v.id),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_escaped() {
        let store = LocalSecretStore::new("/s");
        assert_eq!(
            store.path_of(&SecretName::new("a/b c")),
            PathBuf::from("/s/a%2Fb%20c.json")
        );
        assert_eq!(
            store.path_of(&SecretName::new("..")),
            PathBuf::from("/s/%2E..json")
        );
    }

    #[test]
    fn debug_never_shows_values() {
        let v = StoredVersion {
            id: "1".into(),
            value: "hunter2hunter2".into(),
            token: "t".into(),
            created: String::new(),
        };
        assert!(!format!("{v:?}").contains("hunter2"));
    }
}
