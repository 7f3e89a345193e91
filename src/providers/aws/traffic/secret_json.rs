//! [`SecretJsonTarget`]: keys of a JSON secret in Secrets Manager, rotated through
//! AWSPENDING → AWSCURRENT with AWSPREVIOUS kept.

use super::{SwitchRecord, TrafficTarget, TrafficValues};
use crate::failure::Failure;
use crate::ids::SecretName;
use crate::providers::aws::errors::{classify, Effect};
use crate::providers::aws::secrets::{request_token, SecretsManagerStore, ROLLBACK_LABEL};
use crate::providers::Readiness;
use crate::providers::{SecretStage, SecretStore};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;

/// JSON keys of one secret.
#[derive(Clone, Debug)]
pub struct SecretJsonTarget {
    store: SecretsManagerStore,
    secret: SecretName,
    keys: Vec<String>,
}

impl SecretJsonTarget {
    /// `keys`: the JSON keys this target switches, e.g. `ledgerspacebolturl`.
    pub fn new(store: SecretsManagerStore, secret: SecretName, keys: Vec<String>) -> Self {
        Self {
            store,
            secret,
            keys,
        }
    }

    fn pick(&self, map: &serde_json::Map<String, serde_json::Value>) -> TrafficValues {
        TrafficValues(
            self.keys
                .iter()
                .filter_map(|k| {
                    let v = map.get(k)?;
                    let s = v
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string());
                    Some((k.clone(), SecretString::from(s)))
                })
                .collect(),
        )
    }

    async fn write(&self, values: &TrafficValues, token: &str) -> Result<(), Failure> {
        let (_, mut map) = self
            .store
            .get_json(&self.secret, SecretStage::Current)
            .await?
            .ok_or_else(|| Failure::permanent(format!("secret {} does not exist", self.secret)))?;
        for (k, v) in &values.0 {
            if !self.keys.contains(k) {
                return Err(Failure::permanent(format!(
                    "{k} is not one of the keys this target switches"
                )));
            }
            map.insert(
                k.clone(),
                serde_json::Value::String(v.expose_secret().to_owned()),
            );
        }
        let text = SecretString::from(serde_json::Value::Object(map).to_string());
        let version = self.store.put_pending(&self.secret, &text, token).await?;
        self.store.promote(&self.secret, &version).await
    }
}

#[async_trait]
impl TrafficTarget for SecretJsonTarget {
    fn describe(&self) -> String {
        format!("secret {} keys {}", self.secret, self.keys.join(","))
    }

    async fn current(&self) -> Result<TrafficValues, Failure> {
        let (_, map) = self
            .store
            .get_json(&self.secret, SecretStage::Current)
            .await?
            .ok_or_else(|| Failure::permanent(format!("secret {} does not exist", self.secret)))?;
        Ok(self.pick(&map))
    }

    async fn switch_to(
        &self,
        values: &TrafficValues,
        token: &str,
    ) -> Result<SwitchRecord, Failure> {
        let versions = self.store.labelled_versions(&self.secret).await?;
        let token_version = request_token(token);
        let already = versions
            .iter()
            .any(|v| v.version_id == token_version && v.labels.iter().any(|l| l == "AWSCURRENT"));
        let previous = if already {
            // A retry after success: what we replaced is the rollback-labelled version.
            let old = versions
                .iter()
                .find(|v| v.labels.iter().any(|l| l == ROLLBACK_LABEL))
                .ok_or_else(|| {
                    Failure::permanent(format!(
                        "secret {}: switched, but the replaced version is unknown",
                        self.secret
                    ))
                })?;
            let out = self
                .store
                .get_version_json(&self.secret, &old.version_id)
                .await?;
            self.pick(&out)
        } else {
            let prev = self.current().await?;
            self.write(values, token).await?;
            prev
        };
        Ok(SwitchRecord {
            previous,
            detail: BTreeMap::from([("secret".to_owned(), self.secret.to_string())]),
        })
    }

    async fn switch_back(&self, record: &SwitchRecord, token: &str) -> Result<(), Failure> {
        if self.current().await?.same_as(&record.previous) {
            return Ok(());
        }
        self.write(&record.previous, &format!("{token}-back")).await
    }

    async fn settled(&self) -> Result<Readiness, Failure> {
        // The app reads the secret at start-up; restarting it is the ECS target's job.
        Ok(Readiness::Ready)
    }
}

impl SecretsManagerStore {
    /// The JSON object of one specific version.
    pub async fn get_version_json(
        &self,
        name: &SecretName,
        version_id: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, Failure> {
        let out = self
            .client()
            .get_secret_value()
            .secret_id(name.as_str())
            .version_id(version_id)
            .send()
            .await
            .map_err(|e| {
                classify(
                    &format!("GetSecretValue {name} version {version_id}"),
                    Effect::Read,
                    &e,
                )
            })?;
        serde_json::from_str(out.secret_string().unwrap_or("{}")).map_err(|_| {
            Failure::permanent(format!(
                "secret {name} version {version_id} is not a JSON object"
            ))
        })
    }
}
