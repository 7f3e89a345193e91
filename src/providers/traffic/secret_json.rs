//! [`SecretJsonTarget`]: keys of a JSON secret the application reads at start-up
//! (credex's `neo4j_prod_secrets` with `ledgerspacebolturl`, `ledgerspaceuser`,
//! `ledgerspacepass`, …), in whatever secret store the provider has: a directory locally,
//! Secrets Manager on aws.

use super::{SwitchReceipt, TrafficTarget, TrafficValues};
use crate::failure::Failure;
use crate::ids::SecretName;
use crate::providers::{Readiness, SecretStage, SecretStore};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

/// One JSON secret. A switch writes the whole object with the named keys replaced as a
/// new version (staged pending with the switch token, so a retry adopts it) and makes it
/// current; the record is that version's id. Switching back moves current back to the
/// previous version, only while the switch's version is still current (a later change
/// is never undone).
pub struct SecretJsonTarget {
    secrets: Arc<dyn SecretStore>,
    secret: SecretName,
}

impl SecretJsonTarget {
    pub fn new(secrets: Arc<dyn SecretStore>, secret: SecretName) -> Self {
        Self { secrets, secret }
    }

    /// The current JSON object; empty when the secret has no value yet.
    async fn document(&self) -> Result<serde_json::Map<String, serde_json::Value>, Failure> {
        match self.secrets.get(&self.secret, SecretStage::Current).await? {
            None => Ok(Default::default()),
            Some(v) => serde_json::from_str(v.value.expose_secret()).map_err(|_| {
                Failure::permanent(format!(
                    "secret {} does not hold a JSON object",
                    self.secret
                ))
                .with_hint(
                    "the application's connection secret must be one JSON object of string values",
                )
            }),
        }
    }
}

#[async_trait]
impl TrafficTarget for SecretJsonTarget {
    fn describe(&self) -> String {
        format!("secret {}", self.secret)
    }

    async fn current(&self, names: &[String]) -> Result<TrafficValues, Failure> {
        let doc = self.document().await?;
        let mut values = TrafficValues::default();
        for name in names {
            if let Some(v) = doc.get(name) {
                let text = v
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string());
                values.insert(name.clone(), SecretString::from(text));
            }
        }
        Ok(values)
    }

    async fn switch_to(
        &self,
        values: &TrafficValues,
        token: &str,
    ) -> Result<SwitchReceipt, Failure> {
        let mut doc = self.document().await?;
        for (name, value) in values.plain() {
            doc.insert(name, value.into());
        }
        let value = SecretString::from(serde_json::Value::Object(doc).to_string());
        let version = self
            .secrets
            .put_pending(&self.secret, &value, token)
            .await?;
        self.secrets.promote(&self.secret, &version).await?;
        Ok(SwitchReceipt {
            version,
            detail: Default::default(),
        })
    }

    async fn switch_back(&self, record: &SwitchReceipt, _token: &str) -> Result<(), Failure> {
        let versions = self.secrets.versions(&self.secret).await?;
        let ours_current = versions
            .iter()
            .any(|v| v.version_id == record.version && v.stages.contains(&SecretStage::Current));
        if ours_current {
            self.secrets.rollback(&self.secret).await?;
        }
        Ok(())
    }

    async fn settled(&self) -> Result<Readiness, Failure> {
        // The application reads the secret at start-up: restarting it is the app
        // service's job, not the secret's.
        Ok(Readiness::Ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::local::LocalSecretStore;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn switch_keeps_other_keys_adopts_a_retry_and_switches_back_only_its_own_change() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn SecretStore> = Arc::new(LocalSecretStore::new(dir.path()));
        let name = SecretName::new("credex/app");
        let blue = SecretString::from(
            r#"{"ledgerspacebolturl":"bolt://blue:7687","other":"kept"}"#.to_owned(),
        );
        let v = store.put_pending(&name, &blue, "setup").await.unwrap();
        store.promote(&name, &v).await.unwrap();
        let target = SecretJsonTarget::new(store.clone(), name.clone());

        let green = TrafficValues::from_plain([("ledgerspacebolturl", "bolt://green:7687")]);
        let record = target.switch_to(&green, "run/switch").await.unwrap();
        assert_eq!(
            target.switch_to(&green, "run/switch").await.unwrap(),
            record,
            "a retry adopts the first version"
        );
        let now = target
            .current(&names(&["ledgerspacebolturl", "other", "absent"]))
            .await
            .unwrap();
        assert_eq!(now.get("ledgerspacebolturl"), Some("bolt://green:7687"));
        assert_eq!(now.get("other"), Some("kept"));
        assert_eq!(now.get("absent"), None);

        target.switch_back(&record, "run/switch").await.unwrap();
        let back = target
            .current(&names(&["ledgerspacebolturl"]))
            .await
            .unwrap();
        assert_eq!(back.get("ledgerspacebolturl"), Some("bolt://blue:7687"));
        // Once something else is current, switching back again changes nothing.
        let later = SecretString::from(r#"{"ledgerspacebolturl":"bolt://later:7687"}"#.to_owned());
        let l = store.put_pending(&name, &later, "later").await.unwrap();
        store.promote(&name, &l).await.unwrap();
        target.switch_back(&record, "run/switch").await.unwrap();
        let kept = target
            .current(&names(&["ledgerspacebolturl"]))
            .await
            .unwrap();
        assert_eq!(kept.get("ledgerspacebolturl"), Some("bolt://later:7687"));
    }
}
