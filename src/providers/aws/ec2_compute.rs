//! Compute on EC2: provision from an AMI (explicit settings or a launch template) with a
//! `ClientToken` and tags, adopt an earlier attempt's instance by its token tag before
//! creating, readiness = running AND SSM-managed (agent `PingStatus` Online), stop,
//! idempotent terminate, find by tags.
//!
//! A readiness check that says "not yet" never destroys anything: the engine polls again
//! until its deadline, and a resumed run continues polling the same instance.

use super::errors::{classify, error_code, Effect};
use crate::failure::Failure;
use crate::ids::InstanceId;
use crate::providers::{tag, Compute, Instance, InstanceState, ProvisionRequest, Readiness, Tags};
use async_trait::async_trait;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, HttpTokensState, IamInstanceProfileSpecification,
    InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, InstanceStateName,
    LaunchTemplateSpecification, ResourceType, Tag, TagSpecification, VolumeType,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Tag holding the idempotency token, so a retry or a resumed run adopts the instance an
/// earlier attempt created (EC2's own `ClientToken` only covers the same API call; the
/// emulator ignores it entirely).
pub const TOKEN_TAG: &str = "cutover:idempotency-token";

/// Every key a database's `instance = { … }` table accepts on the aws provider: the
/// fields of [`Ec2InstanceSettings`] and their short aliases (the environment loader
/// checks against this list; a unit test keeps it equal to what deserializes).
pub const INSTANCE_TABLE_KEYS: &[&str] = &[
    "type",
    "instance_type",
    "volume_gb",
    "root_volume_gib",
    "volume_type",
    "encrypted",
    "subnet_id",
    "security_group_ids",
    "instance_profile",
    "launch_template",
    "launch_template_version",
    "root_device_name",
    "volume_kms_key_id",
    "bolt_port",
];

/// Instance settings from the environment file: the `[aws]` section gives defaults
/// (subnet, security groups, instance profile, launch template) and each database's
/// `instance = { … }` table (`ProvisionRequest::settings`) overrides them. The table may
/// use the short names of the shipped environment files: `type` for `instance_type` and
/// `volume_gb` for `root_volume_gib`. Root volumes are always gp3 and encrypted;
/// `volume_type` and `encrypted` may be written for the reader's sake but any other value
/// is refused rather than ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ec2InstanceSettings {
    /// e.g. `r5.2xlarge`. Required unless the launch template sets it.
    #[serde(default, alias = "type")]
    pub instance_type: Option<String>,
    #[serde(default)]
    pub subnet_id: Option<String>,
    #[serde(default)]
    pub security_group_ids: Vec<String>,
    /// Instance profile name or ARN; it must allow SSM (AmazonSSMManagedInstanceCore) and
    /// the bucket and secrets cutover uses.
    #[serde(default)]
    pub instance_profile: Option<String>,
    /// Root volume size in GiB (gp3, encrypted). Default 50.
    #[serde(default, alias = "volume_gb")]
    pub root_volume_gib: Option<i32>,
    /// Only `gp3` is accepted (documentation in the environment file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_type: Option<String>,
    /// Only `true` is accepted (documentation in the environment file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    /// Default `/dev/xvda` (Amazon Linux).
    #[serde(default)]
    pub root_device_name: Option<String>,
    /// KMS key for the root volume; default is the account's EBS default key.
    #[serde(default)]
    pub volume_kms_key_id: Option<String>,
    /// Use a launch template (id `lt-…` or name) instead of / in addition to the above.
    #[serde(default)]
    pub launch_template: Option<String>,
    #[serde(default)]
    pub launch_template_version: Option<String>,
    /// Port the database's Bolt listener uses; default 7687.
    #[serde(default)]
    pub bolt_port: Option<u16>,
}

impl Ec2InstanceSettings {
    /// Parses the provider-specific settings; unknown keys are rejected.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, Failure> {
        if value.is_null() {
            return Ok(Self::default());
        }
        serde_json::from_value(value.clone())
            .map_err(|e| Failure::permanent(format!("invalid EC2 instance settings: {e}")))
    }

    /// These settings with every field `over` sets replacing ours (a database's
    /// `instance` table over the `[aws]` defaults).
    pub fn overlaid_by(&self, over: Ec2InstanceSettings) -> Ec2InstanceSettings {
        let base = self.clone();
        Ec2InstanceSettings {
            instance_type: over.instance_type.or(base.instance_type),
            subnet_id: over.subnet_id.or(base.subnet_id),
            security_group_ids: if over.security_group_ids.is_empty() {
                base.security_group_ids
            } else {
                over.security_group_ids
            },
            instance_profile: over.instance_profile.or(base.instance_profile),
            root_volume_gib: over.root_volume_gib.or(base.root_volume_gib),
            volume_type: over.volume_type.or(base.volume_type),
            encrypted: over.encrypted.or(base.encrypted),
            root_device_name: over.root_device_name.or(base.root_device_name),
            volume_kms_key_id: over.volume_kms_key_id.or(base.volume_kms_key_id),
            launch_template: over.launch_template.or(base.launch_template),
            launch_template_version: over
                .launch_template_version
                .or(base.launch_template_version),
            bolt_port: over.bolt_port.or(base.bolt_port),
        }
    }

    pub fn validate(&self) -> Result<(), Failure> {
        if let Some(kind) = self.volume_type.as_deref().filter(|t| *t != "gp3") {
            return Err(Failure::permanent(format!(
                "volume_type `{kind}` is not supported: cutover creates gp3 root volumes"
            ))
            .with_hint("remove volume_type or set it to \"gp3\""));
        }
        if self.encrypted == Some(false) {
            return Err(Failure::permanent(
                "encrypted = false is not supported: cutover always encrypts root volumes",
            )
            .with_hint("remove `encrypted` or set it to true"));
        }
        if self.instance_type.is_none() && self.launch_template.is_none() {
            return Err(Failure::permanent(
                "EC2 instance settings need an instance_type or a launch_template",
            ));
        }
        if let Some(size) = self.root_volume_gib {
            if !(8..=16384).contains(&size) {
                return Err(Failure::permanent(format!(
                    "root_volume_gib {size} is outside 8..=16384"
                )));
            }
        }
        Ok(())
    }
}

/// EC2 + SSM-agent readiness.
#[derive(Clone, Debug)]
pub struct Ec2Compute {
    ec2: aws_sdk_ec2::Client,
    ssm: aws_sdk_ssm::Client,
    defaults: Ec2InstanceSettings,
}

impl Ec2Compute {
    pub fn new(ec2: aws_sdk_ec2::Client, ssm: aws_sdk_ssm::Client) -> Self {
        Self {
            ec2,
            ssm,
            defaults: Ec2InstanceSettings::default(),
        }
    }

    /// Settings every provision starts from (the environment's `[aws]` section); each
    /// request's own settings override them field by field.
    pub fn with_defaults(mut self, defaults: Ec2InstanceSettings) -> Self {
        self.defaults = defaults;
        self
    }

    /// Instances matching all `tags`, in the given states.
    pub async fn find(&self, tags: &Tags, states: &[&str]) -> Result<Vec<Instance>, Failure> {
        let mut filters: Vec<Filter> = tags
            .iter()
            .map(|(k, v)| Filter::builder().name(format!("tag:{k}")).values(v).build())
            .collect();
        filters.push(
            Filter::builder()
                .name("instance-state-name")
                .set_values(Some(states.iter().map(|s| s.to_string()).collect()))
                .build(),
        );
        let mut out = Vec::new();
        let mut pages = self
            .ec2
            .describe_instances()
            .set_filters(Some(filters))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("DescribeInstances", Effect::Read, &e))?;
            for reservation in page.reservations() {
                for i in reservation.instances() {
                    out.push(to_instance(i));
                }
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Instances carrying a `cutover:run-id` tag (any run), not terminated. Used by gc.
    pub async fn find_tagged_by_any_run(&self) -> Result<Vec<Instance>, Failure> {
        let filters = vec![
            Filter::builder()
                .name("tag-key")
                .values(tag::RUN_ID)
                .build(),
            Filter::builder()
                .name("instance-state-name")
                .set_values(Some(LIVE_STATES.iter().map(|s| s.to_string()).collect()))
                .build(),
        ];
        let mut out = Vec::new();
        let mut pages = self
            .ec2
            .describe_instances()
            .set_filters(Some(filters))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("DescribeInstances", Effect::Read, &e))?;
            for reservation in page.reservations() {
                out.extend(reservation.instances().iter().map(to_instance));
            }
        }
        Ok(out)
    }

    fn run_instances_request(
        &self,
        request: &ProvisionRequest,
        settings: &Ec2InstanceSettings,
    ) -> aws_sdk_ec2::operation::run_instances::builders::RunInstancesFluentBuilder {
        let mut tags: Tags = request.tags.clone();
        tags.insert(tag::NAME.to_owned(), request.name.clone());
        tags.insert(TOKEN_TAG.to_owned(), request.idempotency_token.clone());
        let ec2_tags: Vec<Tag> = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        let spec = |rt: ResourceType| {
            TagSpecification::builder()
                .resource_type(rt)
                .set_tags(Some(ec2_tags.clone()))
                .build()
        };

        let mut ebs = EbsBlockDevice::builder()
            .volume_type(VolumeType::Gp3)
            .volume_size(settings.root_volume_gib.unwrap_or(50))
            .encrypted(true)
            .delete_on_termination(true);
        if let Some(key) = &settings.volume_kms_key_id {
            ebs = ebs.kms_key_id(key);
        }
        let mut req = self
            .ec2
            .run_instances()
            .image_id(&request.image)
            .min_count(1)
            .max_count(1)
            .client_token(client_token(&request.idempotency_token))
            .metadata_options(
                InstanceMetadataOptionsRequest::builder()
                    .http_tokens(HttpTokensState::Required)
                    .http_endpoint(InstanceMetadataEndpointState::Enabled)
                    .http_put_response_hop_limit(1)
                    .build(),
            )
            .block_device_mappings(
                BlockDeviceMapping::builder()
                    .device_name(
                        settings
                            .root_device_name
                            .clone()
                            .unwrap_or_else(|| "/dev/xvda".into()),
                    )
                    .ebs(ebs.build())
                    .build(),
            )
            .tag_specifications(spec(ResourceType::Instance))
            .tag_specifications(spec(ResourceType::Volume));
        if let Some(t) = &settings.instance_type {
            req = req.instance_type(t.as_str().into());
        }
        if let Some(subnet) = &settings.subnet_id {
            req = req.subnet_id(subnet);
        }
        if !settings.security_group_ids.is_empty() {
            req = req.set_security_group_ids(Some(settings.security_group_ids.clone()));
        }
        if let Some(profile) = &settings.instance_profile {
            let spec = if profile.starts_with("arn:") {
                IamInstanceProfileSpecification::builder()
                    .arn(profile)
                    .build()
            } else {
                IamInstanceProfileSpecification::builder()
                    .name(profile)
                    .build()
            };
            req = req.iam_instance_profile(spec);
        }
        if let Some(lt) = &settings.launch_template {
            let mut spec = LaunchTemplateSpecification::builder();
            spec = if lt.starts_with("lt-") {
                spec.launch_template_id(lt)
            } else {
                spec.launch_template_name(lt)
            };
            spec = spec.version(
                settings
                    .launch_template_version
                    .clone()
                    .unwrap_or_else(|| "$Default".into()),
            );
            req = req.launch_template(spec.build());
        }
        req
    }

    /// Whether the SSM agent on `id` is registered and Online. `None` when the instance is
    /// not (yet) registered.
    pub async fn ssm_ping_status(&self, id: &InstanceId) -> Result<Option<String>, Failure> {
        let filter = aws_sdk_ssm::types::InstanceInformationStringFilter::builder()
            .key("InstanceIds")
            .values(id.as_str())
            .build()
            .map_err(|e| Failure::permanent(format!("DescribeInstanceInformation filter: {e}")))?;
        let out = self
            .ssm
            .describe_instance_information()
            .filters(filter)
            .send()
            .await
            .map_err(|e| {
                classify(
                    &format!("DescribeInstanceInformation for {id}"),
                    Effect::Read,
                    &e,
                )
            })?;
        Ok(out
            .instance_information_list()
            .iter()
            .find(|i| i.instance_id() == Some(id.as_str()))
            .map(|i| {
                i.ping_status()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_else(|| "Unknown".into())
            }))
    }
}

const LIVE_STATES: &[&str] = &["pending", "running", "stopping", "stopped"];

/// EC2 `ClientToken`s are at most 64 ASCII characters; longer tokens are hashed.
pub fn client_token(token: &str) -> String {
    if token.len() <= 64 && token.is_ascii() {
        token.to_owned()
    } else {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(token.as_bytes()))
    }
}

fn to_state(name: Option<&InstanceStateName>) -> InstanceState {
    match name {
        Some(InstanceStateName::Pending) => InstanceState::Pending,
        Some(InstanceStateName::Running) => InstanceState::Running,
        Some(InstanceStateName::Stopping) => InstanceState::Stopping,
        Some(InstanceStateName::Stopped) => InstanceState::Stopped,
        Some(InstanceStateName::ShuttingDown) => InstanceState::ShuttingDown,
        Some(InstanceStateName::Terminated) => InstanceState::Terminated,
        Some(other) => InstanceState::Other(other.as_str().to_owned()),
        None => InstanceState::Other("unknown".into()),
    }
}

fn to_instance(i: &aws_sdk_ec2::types::Instance) -> Instance {
    let tags: Tags = i
        .tags()
        .iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect();
    let address = i.private_ip_address().map(str::to_owned);
    let mut endpoints = BTreeMap::new();
    if let Some(ip) = &address {
        endpoints.insert("bolt".to_owned(), format!("bolt://{ip}:7687"));
    }
    Instance {
        id: InstanceId::new(i.instance_id().unwrap_or_default()),
        state: to_state(i.state().and_then(|s| s.name())),
        tags,
        address,
        endpoints,
        image: i.image_id().map(str::to_owned),
    }
}

#[async_trait]
impl Compute for Ec2Compute {
    async fn provision(&self, request: &ProvisionRequest) -> Result<Instance, Failure> {
        let settings = self
            .defaults
            .overlaid_by(Ec2InstanceSettings::from_json(&request.settings)?);
        settings.validate()?;
        // Adopt what an earlier attempt with the same token created.
        let mut by_token = Tags::new();
        by_token.insert(TOKEN_TAG.to_owned(), request.idempotency_token.clone());
        let existing = self.find(&by_token, LIVE_STATES).await?;
        if let Some(found) = existing.into_iter().next() {
            tracing::info!(instance_id = %found.id, "adopting the instance an earlier attempt created");
            return Ok(with_port(found, &settings));
        }
        let out = self
            .run_instances_request(request, &settings)
            .send()
            .await
            .map_err(|e| {
                classify(
                    &format!("RunInstances for {}", request.name),
                    Effect::Write,
                    &e,
                )
            })?;
        let instance = out.instances().first().map(to_instance).ok_or_else(|| {
            Failure::inconclusive(format!(
                "RunInstances for {} returned no instance",
                request.name
            ))
        })?;
        tracing::info!(instance_id = %instance.id, name = %request.name, "instance launched");
        Ok(with_port(instance, &settings))
    }

    async fn describe(&self, id: &InstanceId) -> Result<Option<Instance>, Failure> {
        match self
            .ec2
            .describe_instances()
            .instance_ids(id.as_str())
            .send()
            .await
        {
            Ok(out) => Ok(out
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .map(to_instance)
                .next()),
            Err(e) if error_code(&e) == Some("InvalidInstanceID.NotFound") => Ok(None),
            Err(e) => Err(classify(
                &format!("DescribeInstances {id}"),
                Effect::Read,
                &e,
            )),
        }
    }

    async fn readiness(&self, id: &InstanceId) -> Result<Readiness, Failure> {
        let Some(instance) = self.describe(id).await? else {
            return Err(Failure::permanent(format!("instance {id} does not exist")));
        };
        match instance.state {
            InstanceState::Running => {}
            InstanceState::Pending => return Ok(Readiness::NotYet(format!("{id} is pending"))),
            other => {
                return Err(Failure::permanent(format!(
                    "instance {id} is {other:?}; it will not become ready by itself"
                ))
                .with_hint("start it, or terminate it and provision again"))
            }
        }
        match self.ssm_ping_status(id).await? {
            Some(status) if status == "Online" => Ok(Readiness::Ready),
            Some(status) => Ok(Readiness::NotYet(format!(
                "{id} is running; SSM agent status is {status}"
            ))),
            None => Ok(Readiness::NotYet(format!(
                "{id} is running; SSM agent not registered yet"
            ))),
        }
    }

    async fn stop(&self, id: &InstanceId) -> Result<(), Failure> {
        match self
            .ec2
            .stop_instances()
            .instance_ids(id.as_str())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if error_code(&e) == Some("InvalidInstanceID.NotFound") => Err(
                Failure::permanent(format!("cannot stop {id}: it does not exist")),
            ),
            Err(e) => Err(classify(&format!("StopInstances {id}"), Effect::Write, &e)),
        }
    }

    async fn terminate(&self, id: &InstanceId) -> Result<(), Failure> {
        match self
            .ec2
            .terminate_instances()
            .instance_ids(id.as_str())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if error_code(&e) == Some("InvalidInstanceID.NotFound") => Ok(()),
            Err(e) => Err(classify(
                &format!("TerminateInstances {id}"),
                Effect::Write,
                &e,
            )),
        }
    }

    async fn find_by_tags(&self, tags: &Tags) -> Result<Vec<Instance>, Failure> {
        self.find(tags, LIVE_STATES).await
    }
}

fn with_port(mut instance: Instance, settings: &Ec2InstanceSettings) -> Instance {
    if let (Some(ip), Some(port)) = (&instance.address, settings.bolt_port) {
        instance
            .endpoints
            .insert("bolt".to_owned(), format!("bolt://{ip}:{port}"));
    }
    instance
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_instance_table_key_the_loader_accepts_is_read() {
        for key in INSTANCE_TABLE_KEYS {
            let value = match *key {
                "volume_gb" | "root_volume_gib" | "bolt_port" => serde_json::json!(100),
                "encrypted" => serde_json::json!(true),
                "security_group_ids" => serde_json::json!(["sg-1"]),
                _ => serde_json::json!("x"),
            };
            let parsed = Ec2InstanceSettings::from_json(&serde_json::json!({ *key: value }));
            assert!(parsed.is_ok(), "{key}: {:?}", parsed.err());
            assert_ne!(
                parsed.unwrap(),
                Ec2InstanceSettings::default(),
                "{key} is read"
            );
        }
    }

    #[test]
    fn settings_reject_unknown_keys_and_need_a_type() {
        let err = Ec2InstanceSettings::from_json(&serde_json::json!({"instance_typ": "t3.medium"}))
            .unwrap_err();
        assert!(err.message.contains("instance_typ"));
        let s = Ec2InstanceSettings::from_json(&serde_json::json!({})).unwrap();
        assert!(s.validate().is_err());
        let s = Ec2InstanceSettings::from_json(&serde_json::json!({"launch_template": "lt-0abc"}))
            .unwrap();
        assert!(s.validate().is_ok());
    }

    #[test]
    fn long_tokens_are_hashed_to_fit_client_token() {
        assert_eq!(client_token("abc"), "abc");
        let long = "x".repeat(100);
        assert_eq!(client_token(&long).len(), 64);
        assert_eq!(client_token(&long), client_token(&long));
    }
}
