//! The secret store on Secrets Manager: JSON secrets with the staging labels AWSCURRENT,
//! AWSPENDING and AWSPREVIOUS.
//!
//! Rotation: `put_pending` (the idempotency token becomes the `ClientRequestToken`, so a
//! retry adopts the same version) → test the pending value → `promote` (AWSCURRENT moves
//! to the new version; Secrets Manager moves AWSPREVIOUS to the old one; cutover removes
//! AWSPENDING and marks the old version with [`ROLLBACK_LABEL`]) → `rollback` moves
//! AWSCURRENT back to the marked version. Both are idempotent: a second call finds the
//! world already as asked. Values stay in `SecretString`s and never reach a log.

use super::errors::{classify, error_code, Effect};
use crate::failure::Failure;
use crate::ids::SecretName;
use crate::providers::{SecretStage, SecretStore, SecretVersion, SecretVersionInfo};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

pub const CURRENT: &str = "AWSCURRENT";
pub const PENDING: &str = "AWSPENDING";
pub const PREVIOUS: &str = "AWSPREVIOUS";
/// Custom staging label on the version a promotion replaced: the rollback target.
pub const ROLLBACK_LABEL: &str = "CUTOVER_ROLLBACK";

/// Secrets Manager behind [`SecretStore`].
#[derive(Clone, Debug)]
pub struct SecretsManagerStore {
    client: aws_sdk_secretsmanager::Client,
}

/// A version id with its staging labels, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelledVersion {
    pub version_id: String,
    pub labels: Vec<String>,
}

impl LabelledVersion {
    fn has(&self, label: &str) -> bool {
        self.labels.iter().any(|l| l == label)
    }
}

fn stage_label(stage: SecretStage) -> &'static str {
    match stage {
        SecretStage::Current => CURRENT,
        SecretStage::Pending => PENDING,
        SecretStage::Previous => PREVIOUS,
    }
}

/// `ClientRequestToken`s are 32–64 characters; other tokens are hashed deterministically.
pub fn request_token(token: &str) -> String {
    let ok_chars = token
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if (32..=64).contains(&token.len()) && ok_chars {
        token.to_owned()
    } else {
        hex::encode(Sha256::digest(token.as_bytes()))
    }
}

impl SecretsManagerStore {
    pub fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        Self { client }
    }

    pub fn client(&self) -> &aws_sdk_secretsmanager::Client {
        &self.client
    }

    /// Every non-deprecated version with its labels.
    pub async fn labelled_versions(
        &self,
        name: &SecretName,
    ) -> Result<Vec<LabelledVersion>, Failure> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_secret_version_ids()
            .secret_id(name.as_str())
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page
                .map_err(|e| classify(&format!("ListSecretVersionIds {name}"), Effect::Read, &e))?;
            for v in page.versions() {
                out.push(LabelledVersion {
                    version_id: v.version_id().unwrap_or_default().to_owned(),
                    labels: v.version_stages().to_vec(),
                });
            }
        }
        Ok(out)
    }

    async fn move_label(
        &self,
        name: &SecretName,
        label: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<(), Failure> {
        self.client
            .update_secret_version_stage()
            .secret_id(name.as_str())
            .version_stage(label)
            .set_move_to_version_id(to.map(str::to_owned))
            .set_remove_from_version_id(from.map(str::to_owned))
            .send()
            .await
            .map_err(|e| {
                classify(
                    &format!("UpdateSecretVersionStage {label} on {name}"),
                    Effect::Write,
                    &e,
                )
            })?;
        Ok(())
    }

    /// Reads a JSON object secret. `None` when the secret or stage does not exist.
    pub async fn get_json(
        &self,
        name: &SecretName,
        stage: SecretStage,
    ) -> Result<Option<(String, serde_json::Map<String, serde_json::Value>)>, Failure> {
        let Some(v) = self.get(name, stage).await? else {
            return Ok(None);
        };
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(v.value.expose_secret())
                .map_err(|_| Failure::permanent(format!("secret {name} is not a JSON object")))?;
        Ok(Some((v.version_id, map)))
    }

    /// Creates a secret if it does not exist (idempotent on the name). Returns whether it
    /// was created.
    pub async fn create_if_missing(
        &self,
        name: &SecretName,
        value: &SecretString,
        kms_key_id: Option<&str>,
    ) -> Result<bool, Failure> {
        match self
            .client
            .create_secret()
            .name(name.as_str())
            .secret_string(value.expose_secret())
            .set_kms_key_id(kms_key_id.map(str::to_owned))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if error_code(&e) == Some("ResourceExistsException") => Ok(false),
            Err(e) => Err(classify(&format!("CreateSecret {name}"), Effect::Write, &e)),
        }
    }
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    async fn get(
        &self,
        name: &SecretName,
        stage: SecretStage,
    ) -> Result<Option<SecretVersion>, Failure> {
        match self
            .client
            .get_secret_value()
            .secret_id(name.as_str())
            .version_stage(stage_label(stage))
            .send()
            .await
        {
            Ok(out) => {
                let value = out.secret_string().ok_or_else(|| {
                    Failure::permanent(format!(
                        "secret {name} has a binary value; cutover expects a JSON string"
                    ))
                })?;
                Ok(Some(SecretVersion {
                    version_id: out.version_id().unwrap_or_default().to_owned(),
                    value: SecretString::from(value.to_owned()),
                }))
            }
            Err(e) if error_code(&e) == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(classify(
                &format!("GetSecretValue {name} ({})", stage_label(stage)),
                Effect::Read,
                &e,
            )),
        }
    }

    async fn put_pending(
        &self,
        name: &SecretName,
        value: &SecretString,
        token: &str,
    ) -> Result<String, Failure> {
        let out = self
            .client
            .put_secret_value()
            .secret_id(name.as_str())
            .secret_string(value.expose_secret())
            .client_request_token(request_token(token))
            .version_stages(PENDING)
            .send()
            .await
            .map_err(|e| {
                let f = classify(
                    &format!("PutSecretValue {name} ({PENDING})"),
                    Effect::Write,
                    &e,
                );
                match error_code(&e) {
                    Some("ResourceNotFoundException") => f.with_hint(
                        "create the secret first (terraform or aws secretsmanager create-secret)",
                    ),
                    Some("ResourceExistsException") => f.with_hint(
                        "this token was already used with a different value; use a new token",
                    ),
                    _ => f,
                }
            })?;
        Ok(out.version_id().unwrap_or_default().to_owned())
    }

    async fn promote(&self, name: &SecretName, version_id: &str) -> Result<(), Failure> {
        let versions = self.labelled_versions(name).await?;
        let target = versions
            .iter()
            .find(|v| v.version_id == version_id)
            .ok_or_else(|| {
                Failure::permanent(format!("secret {name} has no version {version_id}"))
            })?;
        if !target.has(CURRENT) {
            let current = versions
                .iter()
                .find(|v| v.has(CURRENT))
                .map(|v| v.version_id.clone());
            if let Some(old) = &current {
                // Mark the rollback target before moving anything.
                let marked = versions
                    .iter()
                    .find(|v| v.has(ROLLBACK_LABEL))
                    .map(|v| v.version_id.clone());
                if marked.as_deref() != Some(old.as_str()) {
                    self.move_label(name, ROLLBACK_LABEL, Some(old), marked.as_deref())
                        .await?;
                }
            }
            self.move_label(name, CURRENT, Some(version_id), current.as_deref())
                .await?;
        }
        if target.has(PENDING) {
            self.move_label(name, PENDING, None, Some(version_id))
                .await?;
        }
        Ok(())
    }

    async fn rollback(&self, name: &SecretName) -> Result<(), Failure> {
        let versions = self.labelled_versions(name).await?;
        let target = versions
            .iter()
            .find(|v| v.has(ROLLBACK_LABEL))
            .or_else(|| versions.iter().find(|v| v.has(PREVIOUS)))
            .ok_or_else(|| {
                Failure::permanent(format!(
                    "secret {name} has no previous version to roll back to"
                ))
            })?;
        if target.has(CURRENT) {
            return Ok(());
        }
        let current = versions
            .iter()
            .find(|v| v.has(CURRENT))
            .map(|v| v.version_id.clone());
        self.move_label(name, CURRENT, Some(&target.version_id), current.as_deref())
            .await
    }

    async fn versions(&self, name: &SecretName) -> Result<Vec<SecretVersionInfo>, Failure> {
        Ok(self
            .labelled_versions(name)
            .await?
            .into_iter()
            .map(|v| SecretVersionInfo {
                stages: v
                    .labels
                    .iter()
                    .filter_map(|l| match l.as_str() {
                        CURRENT => Some(SecretStage::Current),
                        PENDING => Some(SecretStage::Pending),
                        PREVIOUS => Some(SecretStage::Previous),
                        _ => None,
                    })
                    .collect(),
                version_id: v.version_id,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_fit_client_request_token_and_are_stable() {
        let uuid = "0f8fad5b-d9cb-469f-a165-70867728950e";
        assert_eq!(request_token(uuid), uuid);
        assert_eq!(request_token("rotate-ledger").len(), 64);
        assert_eq!(
            request_token("rotate-ledger"),
            request_token("rotate-ledger")
        );
        assert_ne!(
            request_token("rotate-ledger"),
            request_token("rotate-search")
        );
    }
}
