//! [`SsmParameterTarget`]: one SSM parameter.

use super::{SwitchRecord, TrafficTarget, TrafficValues};
use crate::failure::Failure;
use crate::providers::aws::errors::{classify, Effect};
use crate::providers::Readiness;
use async_trait::async_trait;
use std::collections::BTreeMap;

/// One SSM parameter holding one value (e.g. the Bolt URL), under the name `value`.
#[derive(Clone, Debug)]
pub struct SsmParameterTarget {
    client: aws_sdk_ssm::Client,
    name: String,
}

pub const PARAMETER_VALUE: &str = "value";

impl SsmParameterTarget {
    pub fn new(client: aws_sdk_ssm::Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
        }
    }

    async fn put(&self, value: &str) -> Result<(), Failure> {
        self.client
            .put_parameter()
            .name(&self.name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .map_err(|e| classify(&format!("PutParameter {}", self.name), Effect::Write, &e))?;
        Ok(())
    }

    async fn value(&self) -> Result<String, Failure> {
        let out = self
            .client
            .get_parameter()
            .name(&self.name)
            .send()
            .await
            .map_err(|e| classify(&format!("GetParameter {}", self.name), Effect::Read, &e))?;
        Ok(out
            .parameter()
            .and_then(|p| p.value())
            .unwrap_or_default()
            .to_owned())
    }

    /// The newest historical value different from `value` (for a retried switch).
    async fn value_before(&self, value: &str) -> Result<Option<String>, Failure> {
        let mut history = Vec::new();
        let mut pages = self
            .client
            .get_parameter_history()
            .name(&self.name)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                classify(
                    &format!("GetParameterHistory {}", self.name),
                    Effect::Read,
                    &e,
                )
            })?;
            history.extend(
                page.parameters()
                    .iter()
                    .map(|p| (p.version(), p.value().unwrap_or_default().to_owned())),
            );
        }
        history.sort_by_key(|(v, _)| *v);
        Ok(history
            .into_iter()
            .rev()
            .map(|(_, v)| v)
            .find(|v| v != value))
    }
}

#[async_trait]
impl TrafficTarget for SsmParameterTarget {
    fn describe(&self) -> String {
        format!("parameter {}", self.name)
    }

    async fn current(&self) -> Result<TrafficValues, Failure> {
        Ok(TrafficValues::from_plain([(
            PARAMETER_VALUE,
            self.value().await?,
        )]))
    }

    async fn switch_to(
        &self,
        values: &TrafficValues,
        _token: &str,
    ) -> Result<SwitchRecord, Failure> {
        let new = values.get(PARAMETER_VALUE).ok_or_else(|| {
            Failure::permanent(format!(
                "{}: the switch needs a `{PARAMETER_VALUE}`",
                self.describe()
            ))
        })?;
        let current = self.value().await?;
        let previous = if current == new {
            self.value_before(new).await?.unwrap_or(current)
        } else {
            self.put(new).await?;
            current
        };
        Ok(SwitchRecord {
            previous: TrafficValues::from_plain([(PARAMETER_VALUE, previous)]),
            detail: BTreeMap::new(),
        })
    }

    async fn switch_back(&self, record: &SwitchRecord, _token: &str) -> Result<(), Failure> {
        let old = record.previous.get(PARAMETER_VALUE).ok_or_else(|| {
            Failure::permanent(format!(
                "{}: the record has no previous value",
                self.describe()
            ))
        })?;
        if self.value().await? != old {
            self.put(old).await?;
        }
        Ok(())
    }

    async fn settled(&self) -> Result<Readiness, Failure> {
        Ok(Readiness::Ready)
    }
}
