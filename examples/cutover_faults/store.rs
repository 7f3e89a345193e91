//! An object store that corrupts a backup's artifact right after its manifest is stored.

use async_trait::async_trait;
use cutover::failure::Failure;
use cutover::ids::ObjectKey;
use cutover::providers::{ByteStream, ObjectInfo, ObjectStore};
use sha2::Digest;
use std::path::Path;
use std::sync::Arc;

/// `corrupt-artifact`: after a `…/manifest.json` is put, one byte in the middle of the
/// artifact the manifest names is flipped, once (not when the artifact no longer has the
/// manifest's SHA-256). The manifest keeps the true SHA-256, so the restore must refuse
/// the artifact.
pub struct CorruptAfterManifest {
    pub inner: Arc<dyn ObjectStore>,
}

impl CorruptAfterManifest {
    async fn corrupt_the_artifact_of(&self, manifest: &[u8]) -> Result<(), Failure> {
        let manifest: cutover::steps::db::Manifest = serde_json::from_slice(manifest)
            .map_err(|e| Failure::permanent(format!("failure point: not a manifest: {e}")))?;
        let key = manifest.artifact.object.key;
        let mut data = self.inner.get_bytes(&key).await?;
        // Once: a manifest put again (a retried step) must not flip the byte back.
        let now = hex::encode(sha2::Sha256::digest(&data));
        if manifest.artifact.object.sha256.as_deref() != Some(now.as_str()) {
            return Ok(());
        }
        let middle = data.len() / 2;
        if let Some(b) = data.get_mut(middle) {
            *b ^= 0xff;
        }
        self.inner.put_bytes(&key, data).await?;
        tracing::warn!(artifact = %key, "failure point: the backup artifact was corrupted after the manifest was written");
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for CorruptAfterManifest {
    async fn put_stream(&self, key: &ObjectKey, body: ByteStream) -> Result<ObjectInfo, Failure> {
        self.inner.put_stream(key, body).await
    }
    async fn put_file(&self, key: &ObjectKey, path: &Path) -> Result<ObjectInfo, Failure> {
        self.inner.put_file(key, path).await
    }
    async fn put_bytes(&self, key: &ObjectKey, bytes: Vec<u8>) -> Result<ObjectInfo, Failure> {
        let is_manifest = key.as_str().ends_with("/manifest.json");
        let manifest = is_manifest.then(|| bytes.clone());
        let info = self.inner.put_bytes(key, bytes).await?;
        if let Some(manifest) = manifest {
            self.corrupt_the_artifact_of(&manifest).await?;
        }
        Ok(info)
    }
    async fn get_stream(&self, key: &ObjectKey) -> Result<ByteStream, Failure> {
        self.inner.get_stream(key).await
    }
    async fn get_file(&self, key: &ObjectKey, path: &Path) -> Result<ObjectInfo, Failure> {
        self.inner.get_file(key, path).await
    }
    async fn get_bytes(&self, key: &ObjectKey) -> Result<Vec<u8>, Failure> {
        self.inner.get_bytes(key).await
    }
    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>, Failure> {
        self.inner.head(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, Failure> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &ObjectKey) -> Result<(), Failure> {
        self.inner.delete(key).await
    }
    async fn record_sha256(&self, key: &ObjectKey, sha256: &str) -> Result<(), Failure> {
        self.inner.record_sha256(key, sha256).await
    }
    fn location(&self, key: &ObjectKey) -> String {
        self.inner.location(key)
    }
}
