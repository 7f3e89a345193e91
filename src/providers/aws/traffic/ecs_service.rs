//! [`EcsServiceTarget`]: environment variables of an ECS service's task definition,
//! replaced by name, a new revision registered and the service updated.

use super::{SwitchReceipt, TrafficTarget, TrafficValues};
use crate::failure::Failure;
use crate::providers::aws::errors::{classify, Effect};
use crate::providers::Readiness;
use async_trait::async_trait;
use aws_sdk_ecs::types::{
    DeploymentConfiguration, KeyValuePair, Tag as EcsTag, TaskDefinitionField,
};
use secrecy::SecretString;
use std::collections::BTreeMap;

/// Replaces environment entries by name. Every entry whose name is in `values` becomes
/// the one new value at the position of its first occurrence; later duplicates are
/// dropped; names not present are appended once (sorted). Other entries stay as they are.
pub fn replace_env_by_name(
    env: &[KeyValuePair],
    values: &BTreeMap<String, String>,
) -> Vec<KeyValuePair> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(env.len() + values.len());
    for kv in env {
        match kv.name().and_then(|n| values.get_key_value(n)) {
            Some((name, value)) => {
                if seen.insert(name.clone()) {
                    out.push(KeyValuePair::builder().name(name).value(value).build());
                }
            }
            None => out.push(kv.clone()),
        }
    }
    for (name, value) in values {
        if !seen.contains(name) {
            out.push(KeyValuePair::builder().name(name).value(value).build());
        }
    }
    out
}

/// Tag on a registered revision: the switch token that registered it.
pub const SWITCH_TOKEN_TAG: &str = "cutover:switch-token";
/// Tag on a registered revision: the task definition it replaced.
pub const PREVIOUS_TD_TAG: &str = "cutover:previous-task-definition";

/// Environment variables of one container of an ECS service's task definition.
#[derive(Clone, Debug)]
pub struct EcsServiceTarget {
    client: aws_sdk_ecs::Client,
    cluster: String,
    service: String,
    /// The container to change; `None` = the only container.
    container: Option<String>,
    /// Stop old tasks before starting new ones (minimumHealthyPercent 0, maximumPercent
    /// 100), so two app versions never run the crons against different databases.
    stop_old_first: bool,
}

impl EcsServiceTarget {
    pub fn new(
        client: aws_sdk_ecs::Client,
        cluster: impl Into<String>,
        service: impl Into<String>,
        container: Option<String>,
    ) -> Self {
        Self {
            client,
            cluster: cluster.into(),
            service: service.into(),
            container,
            stop_old_first: true,
        }
    }

    pub fn stop_old_first(mut self, yes: bool) -> Self {
        self.stop_old_first = yes;
        self
    }

    async fn service(&self) -> Result<aws_sdk_ecs::types::Service, Failure> {
        let out = self
            .client
            .describe_services()
            .cluster(&self.cluster)
            .services(&self.service)
            .send()
            .await
            .map_err(|e| {
                classify(
                    &format!("DescribeServices {}/{}", self.cluster, self.service),
                    Effect::Read,
                    &e,
                )
            })?;
        out.services()
            .iter()
            .find(|s| s.status() != Some("INACTIVE"))
            .cloned()
            .ok_or_else(|| {
                Failure::permanent(format!(
                    "ECS service {} not found in cluster {}",
                    self.service, self.cluster
                ))
            })
    }

    async fn task_definition(
        &self,
        arn: &str,
    ) -> Result<(aws_sdk_ecs::types::TaskDefinition, Vec<EcsTag>), Failure> {
        let out = self
            .client
            .describe_task_definition()
            .task_definition(arn)
            .include(TaskDefinitionField::Tags)
            .send()
            .await
            .map_err(|e| classify(&format!("DescribeTaskDefinition {arn}"), Effect::Read, &e))?;
        let td = out
            .task_definition()
            .cloned()
            .ok_or_else(|| Failure::permanent(format!("task definition {arn} not found")))?;
        Ok((td, out.tags().to_vec()))
    }

    fn container_index(&self, td: &aws_sdk_ecs::types::TaskDefinition) -> Result<usize, Failure> {
        let containers = td.container_definitions();
        match &self.container {
            Some(name) => containers
                .iter()
                .position(|c| c.name() == Some(name.as_str()))
                .ok_or_else(|| {
                    Failure::permanent(format!("task definition has no container {name}"))
                }),
            None if containers.len() == 1 => Ok(0),
            None => Err(Failure::permanent(
                "the task definition has several containers; name the one to switch",
            )),
        }
    }

    async fn register(
        &self,
        td: &aws_sdk_ecs::types::TaskDefinition,
        values: &BTreeMap<String, String>,
        tags: Vec<EcsTag>,
    ) -> Result<String, Failure> {
        let index = self.container_index(td)?;
        let mut containers = td.container_definitions().to_vec();
        let c = containers[index].clone();
        if let Some(clash) = c.secrets().iter().find(|s| values.contains_key(s.name())) {
            return Err(Failure::permanent(format!(
                "{} is also a `secrets` entry of container {}; ECS would see it twice",
                clash.name(),
                c.name().unwrap_or_default()
            )));
        }
        let env = replace_env_by_name(c.environment(), values);
        containers[index].environment = Some(env);
        let out = self
            .client
            .register_task_definition()
            .family(td.family().unwrap_or_default())
            .set_task_role_arn(td.task_role_arn().map(str::to_owned))
            .set_execution_role_arn(td.execution_role_arn().map(str::to_owned))
            .set_network_mode(td.network_mode().cloned())
            .set_container_definitions(Some(containers))
            .set_volumes(Some(td.volumes().to_vec()).filter(|v| !v.is_empty()))
            .set_placement_constraints(
                Some(td.placement_constraints().to_vec()).filter(|v| !v.is_empty()),
            )
            .set_requires_compatibilities(
                Some(td.requires_compatibilities().to_vec()).filter(|v| !v.is_empty()),
            )
            .set_cpu(td.cpu().map(str::to_owned))
            .set_memory(td.memory().map(str::to_owned))
            .set_pid_mode(td.pid_mode().cloned())
            .set_ipc_mode(td.ipc_mode().cloned())
            .set_proxy_configuration(td.proxy_configuration().cloned())
            .set_ephemeral_storage(td.ephemeral_storage().cloned())
            .set_runtime_platform(td.runtime_platform().cloned())
            .set_tags(Some(tags).filter(|t| !t.is_empty()))
            .send()
            .await
            .map_err(|e| {
                classify(
                    &format!("RegisterTaskDefinition {}", td.family().unwrap_or_default()),
                    Effect::Write,
                    &e,
                )
            })?;
        out.task_definition()
            .and_then(|t| t.task_definition_arn())
            .map(str::to_owned)
            .ok_or_else(|| Failure::inconclusive("RegisterTaskDefinition returned no ARN"))
    }

    async fn point_service_at(&self, arn: &str) -> Result<(), Failure> {
        let mut req = self
            .client
            .update_service()
            .cluster(&self.cluster)
            .service(&self.service)
            .task_definition(arn)
            .force_new_deployment(true);
        if self.stop_old_first {
            req = req.deployment_configuration(
                DeploymentConfiguration::builder()
                    .minimum_healthy_percent(0)
                    .maximum_percent(100)
                    .build(),
            );
        }
        req.send().await.map_err(|e| {
            classify(
                &format!("UpdateService {}/{}", self.cluster, self.service),
                Effect::Write,
                &e,
            )
        })?;
        Ok(())
    }

    fn tag(key: &str, value: &str) -> EcsTag {
        EcsTag::builder().key(key).value(value).build()
    }
}

fn tag_value<'a>(tags: &'a [EcsTag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

#[async_trait]
impl TrafficTarget for EcsServiceTarget {
    fn describe(&self) -> String {
        format!("ECS service {}/{}", self.cluster, self.service)
    }

    async fn current(&self, names: &[String]) -> Result<TrafficValues, Failure> {
        let svc = self.service().await?;
        let (td, _) = self
            .task_definition(svc.task_definition().unwrap_or_default())
            .await?;
        let c = &td.container_definitions()[self.container_index(&td)?];
        // The value ECS uses for a duplicated name is unspecified; report the last one.
        let mut values = TrafficValues::default();
        for kv in c.environment() {
            if let (Some(n), Some(v)) = (kv.name(), kv.value()) {
                if names.iter().any(|x| x == n) {
                    values.insert(n, SecretString::from(v.to_owned()));
                }
            }
        }
        Ok(values)
    }

    /// Registers a revision of the running task definition with `values` replaced by
    /// name (tagged with `token` and the revision it replaces) and rolls the service
    /// onto it: the application restarts reading them. A retry whose revision already
    /// runs returns its record.
    async fn switch_to(
        &self,
        values: &TrafficValues,
        token: &str,
    ) -> Result<SwitchReceipt, Failure> {
        let svc = self.service().await?;
        let current_arn = svc.task_definition().unwrap_or_default().to_owned();
        let (td, tags) = self.task_definition(&current_arn).await?;
        let record = |version: String, previous: String| SwitchReceipt {
            version,
            detail: BTreeMap::from([("previous_task_definition".to_owned(), previous)]),
        };
        if tag_value(&tags, SWITCH_TOKEN_TAG) == Some(token) {
            let previous = tag_value(&tags, PREVIOUS_TD_TAG)
                .unwrap_or_default()
                .to_owned();
            return Ok(record(current_arn, previous));
        }
        let new_tags = vec![
            Self::tag(SWITCH_TOKEN_TAG, token),
            Self::tag(PREVIOUS_TD_TAG, &current_arn),
        ];
        let new_arn = self.register(&td, &values.plain(), new_tags).await?;
        self.point_service_at(&new_arn).await?;
        tracing::info!(service = %self.service, task_definition = %new_arn, "service switched");
        Ok(record(new_arn, current_arn))
    }

    /// Rolls the service back onto the exact revision it ran before the switch, only
    /// while it still runs the switch's revision: a revision deployed since (a new app
    /// release) is never replaced by an old one; that is refused for attention.
    async fn switch_back(&self, record: &SwitchReceipt, _token: &str) -> Result<(), Failure> {
        let previous = record
            .detail
            .get("previous_task_definition")
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                Failure::permanent(format!(
                    "{}: the record names no previous task definition",
                    self.describe()
                ))
            })?;
        let svc = self.service().await?;
        let running = svc.task_definition().unwrap_or_default();
        if running == previous {
            return Ok(());
        }
        if running != record.version {
            return Err(Failure::permanent(format!(
                "{} runs {running}, neither the switch's revision {} nor the one before it {previous}; not switching back",
                self.describe(),
                record.version
            ))
            .with_hint("something deployed the service since the switch: point it at the database you want by hand, or run the switch again"));
        }
        self.point_service_at(previous).await
    }

    fn restarts_application(&self) -> bool {
        true
    }

    async fn settled(&self) -> Result<Readiness, Failure> {
        let svc = self.service().await?;
        let deployments = svc.deployments();
        let primary = deployments.iter().find(|d| d.status() == Some("PRIMARY"));
        let Some(primary) = primary else {
            return Ok(Readiness::NotYet("no primary deployment yet".into()));
        };
        if primary.rollout_state() == Some(&aws_sdk_ecs::types::DeploymentRolloutState::Failed) {
            return Err(Failure::permanent(format!(
                "{}: deployment {} failed: {}",
                self.describe(),
                primary.id().unwrap_or_default(),
                primary.rollout_state_reason().unwrap_or_default()
            )));
        }
        let steady = deployments.len() == 1
            && primary.running_count() == primary.desired_count()
            && primary.pending_count() == 0
            && primary
                .rollout_state()
                .is_none_or(|s| *s == aws_sdk_ecs::types::DeploymentRolloutState::Completed);
        if steady {
            Ok(Readiness::Ready)
        } else {
            Ok(Readiness::NotYet(format!(
                "{}: {} deployment(s); primary {} running of {} desired, {} pending, rollout {}",
                self.describe(),
                deployments.len(),
                primary.running_count(),
                primary.desired_count(),
                primary.pending_count(),
                primary.rollout_state().map(|s| s.as_str()).unwrap_or("-")
            )))
        }
    }
}

/// The ECS service as the application that must restart after a switch of the secret it
/// reads at start-up: a forced new deployment of the task definition it runs now.
#[async_trait]
impl crate::providers::AppService for EcsServiceTarget {
    fn describe(&self) -> String {
        TrafficTarget::describe(self)
    }

    async fn restart(&self) -> Result<(), Failure> {
        let svc = self.service().await?;
        let current = svc.task_definition().unwrap_or_default().to_owned();
        self.point_service_at(&current).await
    }

    async fn settled(&self) -> Result<Readiness, Failure> {
        TrafficTarget::settled(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(n: &str, v: &str) -> KeyValuePair {
        KeyValuePair::builder().name(n).value(v).build()
    }

    fn pairs(env: &[KeyValuePair]) -> Vec<(String, String)> {
        env.iter()
            .map(|k| (k.name().unwrap().to_owned(), k.value().unwrap().to_owned()))
            .collect()
    }

    #[test]
    fn replace_by_name_collapses_duplicates_and_never_appends_twice() {
        let env = vec![
            kv("NODE_ENV", "production"),
            kv("NEO_4J_LEDGER_SPACE_BOLT_URL", "bolt://blue-1:7687"),
            kv("PORT", "5000"),
            kv("NEO_4J_LEDGER_SPACE_BOLT_URL", "bolt://blue-0:7687"),
            kv("NEO_4J_LEDGER_SPACE_BOLT_URL", "bolt://old:7687"),
        ];
        let values = BTreeMap::from([
            (
                "NEO_4J_LEDGER_SPACE_BOLT_URL".to_owned(),
                "bolt://green:7687".to_owned(),
            ),
            (
                "NEO_4J_SEARCH_SPACE_BOLT_URL".to_owned(),
                "bolt://green-s:7687".to_owned(),
            ),
        ]);
        let out = replace_env_by_name(&env, &values);
        assert_eq!(
            pairs(&out),
            vec![
                ("NODE_ENV".into(), "production".into()),
                (
                    "NEO_4J_LEDGER_SPACE_BOLT_URL".into(),
                    "bolt://green:7687".into()
                ),
                ("PORT".into(), "5000".into()),
                (
                    "NEO_4J_SEARCH_SPACE_BOLT_URL".into(),
                    "bolt://green-s:7687".into()
                ),
            ]
        );
        // Applying it again changes nothing.
        assert_eq!(pairs(&replace_env_by_name(&out, &values)), pairs(&out));
    }
}
