//! The local object store: a directory. `<root>/<key>` holds the bytes and
//! `<root>/<key>.sha256` the SHA-256 (in `sha256sum` format, so `sha256sum -c` works in
//! the object's directory).
//!
//! Writes stream into a temporary file next to the target, hashing on the way, then fsync
//! and rename: a reader never sees a partial object, and a failed write (e.g. a full
//! disk) removes its temporary file. Reads hash again and refuse content whose SHA-256
//! differs from the sidecar (a tampered or truncated artifact): `get_file` and
//! `get_bytes` fail permanently; `get_stream` fails with an `InvalidData` I/O error at the
//! end of the stream (the caller must treat what it read as garbage).

use super::files::{
    create_dir_all, io_failure, is_temp_name, sync_dir, temp_sibling, write_atomic,
};
use crate::failure::Failure;
use crate::ids::ObjectKey;
use crate::providers::{ByteStream, ObjectInfo, ObjectStore};
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

const SIDECAR_SUFFIX: &str = ".sha256";
const CHUNK: usize = 256 * 1024;

/// Objects under one directory (`<state_dir>/objects` for an environment).
#[derive(Clone, Debug)]
pub struct LocalObjectStore {
    root: PathBuf,
}

impl LocalObjectStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory holding the objects.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file holding `key`'s bytes (validated: no `..`, no absolute paths, no
    /// reserved names).
    pub fn path_of(&self, key: &ObjectKey) -> Result<PathBuf, Failure> {
        validate_key(key)?;
        Ok(self.root.join(key.as_str()))
    }

    fn sidecar_of(path: &Path) -> PathBuf {
        let mut s = path.as_os_str().to_owned();
        s.push(SIDECAR_SUFFIX);
        PathBuf::from(s)
    }

    /// Writes `path`'s sidecar in `sha256sum` format (atomically).
    fn write_sidecar(path: &Path, sha: &str) -> Result<(), Failure> {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        write_atomic(
            &Self::sidecar_of(path),
            format!("{sha}  {name}\n").as_bytes(),
            0o644,
        )
    }

    /// The recorded checksum and size of `key`, if the object exists.
    fn recorded(&self, key: &ObjectKey) -> Result<Option<(String, u64, PathBuf)>, Failure> {
        let path = self.path_of(key)?;
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_failure(&format!("cannot read {}", path.display()), &e)),
        };
        let sidecar = Self::sidecar_of(&path);
        let text = std::fs::read_to_string(&sidecar).map_err(|e| {
            Failure::permanent(format!(
                "{}: no checksum ({}: {e}); the object cannot be verified",
                self.location(key),
                sidecar.display()
            ))
            .with_hint("write the object again (e.g. take a new backup)")
        })?;
        let sha = text
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Failure::permanent(format!(
                "{}: malformed checksum file {}",
                self.location(key),
                sidecar.display()
            )));
        }
        Ok(Some((sha.to_ascii_lowercase(), meta.len(), path)))
    }

    fn info(&self, key: &ObjectKey, path: &Path, sha: Option<String>) -> ObjectInfo {
        let meta = std::fs::metadata(path).ok();
        ObjectInfo {
            key: key.clone(),
            size: meta.as_ref().map(|m| m.len()).unwrap_or(0),
            sha256: sha,
            last_modified: meta
                .and_then(|m| m.modified().ok())
                .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339()),
        }
    }

    async fn write_from(
        &self,
        key: &ObjectKey,
        mut body: impl AsyncRead + Unpin,
    ) -> Result<ObjectInfo, Failure> {
        let path = self.path_of(key)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        create_dir_all(&dir)?;
        let tmp = temp_sibling(&path);
        let location = self.location(key);
        let result: Result<(String, u64), Failure> = async {
            let what = format!("cannot write {location}");
            let mut file = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| io_failure(&what, &e))?;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = body.read(&mut buf).await.map_err(|e| {
                    Failure::transient(format!("{location}: reading the upload failed: {e}"))
                })?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                size += n as u64;
                file.write_all(&buf[..n])
                    .await
                    .map_err(|e| io_failure(&what, &e))?;
            }
            file.flush().await.map_err(|e| io_failure(&what, &e))?;
            file.sync_all().await.map_err(|e| io_failure(&what, &e))?;
            drop(file);
            let sha = hex::encode(hasher.finalize());
            Self::write_sidecar(&path, &sha)?;
            std::fs::rename(&tmp, &path).map_err(|e| io_failure(&what, &e))?;
            sync_dir(&dir);
            Ok((sha, size))
        }
        .await;
        match result {
            Ok((sha, _)) => Ok(self.info(key, &path, Some(sha))),
            Err(f) => {
                let _ = std::fs::remove_file(&tmp);
                Err(f)
            }
        }
    }

    fn mismatch(&self, key: &ObjectKey, expected: &str, actual: &str) -> Failure {
        Failure::permanent(format!(
            "checksum mismatch for {}: recorded sha256 {expected}, content has {actual}; the object is corrupt or was tampered with",
            self.location(key)
        ))
        .with_hint("do not use this object; write it again (e.g. take a new backup)")
    }
}

fn validate_key(key: &ObjectKey) -> Result<(), Failure> {
    let k = key.as_str();
    let bad = k.is_empty()
        || k.starts_with('/')
        || k.ends_with(SIDECAR_SUFFIX)
        || k.split('/')
            .any(|c| c.is_empty() || c == "." || c == ".." || c.starts_with('.'));
    if bad {
        return Err(Failure::permanent(format!(
            "invalid object key `{k}`: use relative `a/b/c` paths without `.`/`..` components, leading dots or a `{SIDECAR_SUFFIX}` suffix"
        )));
    }
    Ok(())
}

#[async_trait]
impl ObjectStore for LocalObjectStore {
    async fn put_stream(&self, key: &ObjectKey, body: ByteStream) -> Result<ObjectInfo, Failure> {
        self.write_from(key, body).await
    }

    async fn put_file(&self, key: &ObjectKey, path: &Path) -> Result<ObjectInfo, Failure> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| io_failure(&format!("cannot read {}", path.display()), &e))?;
        self.write_from(key, file).await
    }

    async fn put_bytes(&self, key: &ObjectKey, bytes: Vec<u8>) -> Result<ObjectInfo, Failure> {
        self.write_from(key, std::io::Cursor::new(bytes)).await
    }

    async fn get_stream(&self, key: &ObjectKey) -> Result<ByteStream, Failure> {
        let (sha, _, path) = self.recorded(key)?.ok_or_else(|| not_found(self, key))?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| io_failure(&format!("cannot read {}", self.location(key)), &e))?;
        Ok(Box::new(VerifyingReader {
            inner: file,
            hasher: Some(Sha256::new()),
            expected: sha,
            location: self.location(key),
        }))
    }

    async fn get_file(&self, key: &ObjectKey, path: &Path) -> Result<ObjectInfo, Failure> {
        let (expected, _, source) = self.recorded(key)?.ok_or_else(|| not_found(self, key))?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_dir_all(parent)?;
        }
        let tmp = temp_sibling(path);
        let what = format!("cannot write {}", path.display());
        let result: Result<String, Failure> = async {
            let mut input = tokio::fs::File::open(&source)
                .await
                .map_err(|e| io_failure(&format!("cannot read {}", self.location(key)), &e))?;
            let mut out = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| io_failure(&what, &e))?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = input
                    .read(&mut buf)
                    .await
                    .map_err(|e| io_failure(&format!("cannot read {}", self.location(key)), &e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n])
                    .await
                    .map_err(|e| io_failure(&what, &e))?;
            }
            out.sync_all().await.map_err(|e| io_failure(&what, &e))?;
            Ok(hex::encode(hasher.finalize()))
        }
        .await;
        let actual = match result {
            Ok(sha) => sha,
            Err(f) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(f);
            }
        };
        if actual != expected {
            let _ = std::fs::remove_file(&tmp);
            return Err(self.mismatch(key, &expected, &actual));
        }
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_failure(&what, &e)
        })?;
        Ok(self.info(key, path, Some(actual)))
    }

    async fn get_bytes(&self, key: &ObjectKey) -> Result<Vec<u8>, Failure> {
        let (expected, _, path) = self.recorded(key)?.ok_or_else(|| not_found(self, key))?;
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| io_failure(&format!("cannot read {}", self.location(key)), &e))?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != expected {
            return Err(self.mismatch(key, &expected, &actual));
        }
        Ok(bytes)
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>, Failure> {
        Ok(self
            .recorded(key)?
            .map(|(sha, _, path)| self.info(key, &path, Some(sha))))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, Failure> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_failure(&format!("cannot list {}", dir.display()), &e)),
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if is_temp_name(&name) || name.ends_with(SIDECAR_SUFFIX) || name.starts_with('.') {
                    continue;
                }
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let Ok(rel) = path.strip_prefix(&self.root) else {
                    continue;
                };
                let key = rel.to_string_lossy().into_owned();
                if !key.starts_with(prefix) {
                    continue;
                }
                let key = ObjectKey::new(key);
                let sha = std::fs::read_to_string(Self::sidecar_of(&path))
                    .ok()
                    .and_then(|t| t.split_whitespace().next().map(str::to_string));
                out.push(self.info(&key, &path, sha));
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), Failure> {
        let path = self.path_of(key)?;
        for p in [path.clone(), Self::sidecar_of(&path)] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_failure(&format!("cannot delete {}", p.display()), &e)),
            }
        }
        Ok(())
    }

    async fn record_sha256(&self, key: &ObjectKey, sha256: &str) -> Result<(), Failure> {
        let path = self.path_of(key)?;
        let sidecar = Self::sidecar_of(&path);
        if sidecar.exists() {
            return match self.recorded(key)? {
                Some((recorded, _, _)) if recorded.eq_ignore_ascii_case(sha256) => Ok(()),
                Some((recorded, _, _)) => Err(Failure::permanent(format!(
                    "{}: already records sha256 {recorded}, not {sha256}",
                    self.location(key)
                ))),
                None => Err(Failure::permanent(format!(
                    "{}: no such object",
                    self.location(key)
                ))),
            };
        }
        if !path.exists() {
            return Err(Failure::permanent(format!(
                "{}: no such object",
                self.location(key)
            )));
        }
        Self::write_sidecar(&path, &sha256.to_ascii_lowercase())
    }

    fn location(&self, key: &ObjectKey) -> String {
        format!("file://{}/{}", self.root.display(), key.as_str())
    }
}

fn not_found(store: &LocalObjectStore, key: &ObjectKey) -> Failure {
    Failure::permanent(format!("no object {}", store.location(key)))
}

/// Hashes what passes through and fails the read that reaches the end when the content
/// does not match the recorded SHA-256.
struct VerifyingReader {
    inner: tokio::fs::File,
    hasher: Option<Sha256>,
    expected: String,
    location: String,
}

impl AsyncRead for VerifyingReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if !new.is_empty() {
                    if let Some(h) = this.hasher.as_mut() {
                        h.update(new);
                    }
                    return Poll::Ready(Ok(()));
                }
                if let Some(h) = this.hasher.take() {
                    let actual = hex::encode(h.finalize());
                    if actual != this.expected {
                        return Poll::Ready(Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!(
                                "checksum mismatch for {}: recorded sha256 {}, content has {actual}",
                                this.location, this.expected
                            ),
                        )));
                    }
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}
