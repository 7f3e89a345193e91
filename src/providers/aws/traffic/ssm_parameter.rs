//! [`SsmParametersTarget`]: one SSM parameter per setting (`/credex/prod/ledger/bolt-url`,
//! …), the password ones SecureStrings.

use super::{SwitchReceipt, TrafficTarget, TrafficValues};
use crate::failure::Failure;
use crate::providers::aws::errors::{classify, Effect};
use crate::providers::Readiness;
use async_trait::async_trait;
use aws_sdk_ssm::types::ParameterType;
use secrecy::SecretString;
use std::collections::BTreeMap;

/// The record's marker for a parameter that did not exist before the switch (switching
/// back deletes it).
const ABSENT: &str = "absent";

/// SSM parameters the application reads at start-up. A switch writes each named
/// parameter (a SecureString where the value is a secret, else a String) and records the
/// version each had before; switching back writes that version's value again. The
/// record holds version numbers only, never a value.
#[derive(Clone, Debug)]
pub struct SsmParametersTarget {
    client: aws_sdk_ssm::Client,
}

/// One parameter as it is now.
struct Current {
    value: String,
    version: i64,
    secure: bool,
}

impl SsmParametersTarget {
    pub fn new(client: aws_sdk_ssm::Client) -> Self {
        Self { client }
    }

    async fn get(&self, selector: &str) -> Result<Option<Current>, Failure> {
        match self
            .client
            .get_parameter()
            .name(selector)
            .with_decryption(true)
            .send()
            .await
        {
            Ok(out) => Ok(out.parameter().map(|p| Current {
                value: p.value().unwrap_or_default().to_owned(),
                version: p.version(),
                secure: p.r#type() == Some(&ParameterType::SecureString),
            })),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_parameter_not_found()) =>
            {
                Ok(None)
            }
            Err(e) => Err(classify(
                &format!("GetParameter {selector}"),
                Effect::Read,
                &e,
            )),
        }
    }

    async fn put(&self, name: &str, value: &str, secret: bool) -> Result<(), Failure> {
        let kind = if secret {
            ParameterType::SecureString
        } else {
            ParameterType::String
        };
        self.client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(kind)
            .overwrite(true)
            .send()
            .await
            .map_err(|e| classify(&format!("PutParameter {name}"), Effect::Write, &e))?;
        Ok(())
    }

    /// The newest version of `name` whose value differs from `value` (what a retried
    /// switch replaced), or `None` when every version holds `value`.
    async fn version_before(&self, name: &str, value: &str) -> Result<Option<i64>, Failure> {
        let mut history = Vec::new();
        let mut pages = self
            .client
            .get_parameter_history()
            .name(name)
            .with_decryption(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page
                .map_err(|e| classify(&format!("GetParameterHistory {name}"), Effect::Read, &e))?;
            history.extend(
                page.parameters()
                    .iter()
                    .map(|p| (p.version(), p.value().unwrap_or_default() == value)),
            );
        }
        history.sort_by_key(|(v, _)| *v);
        Ok(history
            .into_iter()
            .rev()
            .find(|(_, same)| !same)
            .map(|(v, _)| v))
    }
}

#[async_trait]
impl TrafficTarget for SsmParametersTarget {
    fn describe(&self) -> String {
        "SSM parameters".to_owned()
    }

    async fn current(&self, names: &[String]) -> Result<TrafficValues, Failure> {
        let mut values = TrafficValues::default();
        for name in names {
            if let Some(c) = self.get(name).await? {
                values.insert(name.clone(), SecretString::from(c.value));
            }
        }
        Ok(values)
    }

    async fn switch_to(
        &self,
        values: &TrafficValues,
        token: &str,
    ) -> Result<SwitchReceipt, Failure> {
        let mut detail = BTreeMap::new();
        for (name, new) in values.plain() {
            let previous = match self.get(&name).await? {
                None => {
                    self.put(&name, &new, values.is_secret(&name)).await?;
                    ABSENT.to_owned()
                }
                Some(c) if c.value == new => {
                    // Written by an earlier attempt: what it replaced is the newest
                    // version holding something else. (A value that was already so before
                    // any attempt reads the same; green's address is new every run.)
                    match self.version_before(&name, &new).await? {
                        Some(v) => v.to_string(),
                        None if c.version == 1 => ABSENT.to_owned(),
                        None => c.version.to_string(),
                    }
                }
                Some(c) => {
                    self.put(&name, &new, values.is_secret(&name)).await?;
                    c.version.to_string()
                }
            };
            detail.insert(name, previous);
        }
        Ok(SwitchReceipt {
            version: token.to_owned(),
            detail,
        })
    }

    async fn switch_back(&self, record: &SwitchReceipt, _token: &str) -> Result<(), Failure> {
        for (name, version) in &record.detail {
            let now = self.get(name).await?;
            if version == ABSENT {
                if now.is_some() {
                    self.client
                        .delete_parameter()
                        .name(name)
                        .send()
                        .await
                        .map_err(|e| {
                            classify(&format!("DeleteParameter {name}"), Effect::Write, &e)
                        })?;
                }
                continue;
            }
            let old = self
                .get(&format!("{name}:{version}"))
                .await?
                .ok_or_else(|| {
                    Failure::permanent(format!(
                        "parameter {name} has no version {version} to switch back to"
                    ))
                })?;
            if now.as_ref().map(|n| &n.value) != Some(&old.value) {
                self.put(name, &old.value, old.secure).await?;
            }
        }
        Ok(())
    }

    async fn settled(&self) -> Result<Readiness, Failure> {
        Ok(Readiness::Ready)
    }
}
