//! Support for the aws_* and neo4j_* tests: the harness's moto server (real HTTP on a
//! loopback port), settings and cutover's clients pointed at it, and tools from the
//! project virtualenv. A missing tool fails the test with how to install it.

use crate::harness::moto::MotoServer;
use cutover::providers::aws::{AwsClients, AwsSettings};
use std::path::PathBuf;

pub use crate::harness::moto::REGION;

/// A tool from the project virtualenv (`aws`, `shellcheck`, `moto_server`).
pub fn tool(name: &str) -> PathBuf {
    crate::harness::venv_bin(name)
}

/// The harness's moto server with what the aws tests need on top.
pub struct Moto {
    pub server: MotoServer,
}

impl Moto {
    pub fn settings(&self, bucket: &str) -> AwsSettings {
        AwsSettings {
            region: REGION.into(),
            endpoint_url: Some(self.server.endpoint_url()),
            profile: None,
            bucket: bucket.into(),
            prefix: "cutover/test".into(),
            kms_key_id: None,
        }
    }

    /// cutover's clients (S3 path-style because an endpoint is set), dummy credentials.
    pub async fn clients(&self, settings: &AwsSettings) -> AwsClients {
        AwsClients::new(&self.server.sdk_config().await, settings)
    }

    /// Environment for the AWS CLI pointed at this server.
    pub fn cli_env(&self) -> Vec<(&'static str, String)> {
        self.server.env()
    }
}

/// An aws environment file `cloud` on the emulator, state under `state/`, with `extra`
/// TOML appended (e.g. `[databases.x]` tables).
pub fn aws_env_toml(settings: &AwsSettings, extra: &str) -> String {
    format!(
        "name = \"cloud\"\nprovider = \"aws\"\nstate_dir = \"state\"\n\
         [aws]\nregion = \"{}\"\nbucket = \"{}\"\nstate_prefix = \"{}\"\nendpoint_url = \"{}\"\n{extra}",
        settings.region,
        settings.bucket,
        settings.prefix,
        settings.endpoint_url.as_deref().expect("settings on the emulator")
    )
}

/// Starts moto, creates the bucket, returns everything a test needs.
pub async fn setup(bucket: &str) -> (Moto, AwsSettings, AwsClients) {
    setup_on(MotoServer::start().await, bucket).await
}

/// [`setup`] on a server already started (e.g. [`MotoServer::start_rig`]).
pub async fn setup_on(server: MotoServer, bucket: &str) -> (Moto, AwsSettings, AwsClients) {
    let moto = Moto { server };
    let settings = moto.settings(bucket);
    let clients = moto.clients(&settings).await;
    crate::harness::moto::create_bucket(&clients.s3, bucket)
        .await
        .expect("create bucket");
    (moto, settings, clients)
}

/// Launches one instance of the emulator's first image, as RunInstances reports it.
pub async fn launch_instance(clients: &AwsClients) -> aws_sdk_ec2::types::Instance {
    let ami = clients.ec2.describe_images().send().await.unwrap().images()[0]
        .image_id()
        .unwrap()
        .to_owned();
    let out = clients
        .ec2
        .run_instances()
        .image_id(ami)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    out.instances()[0].clone()
}

/// A client of `$sdk` whose responses come from aws-smithy-mocks `rules` (no network at
/// all), retries disabled so each classified error surfaces at once. Built by hand rather
/// than with `mock_client!`, which needs every SDK crate's `test-util` feature (a second
/// build of each SDK for the test binary).
#[macro_export]
macro_rules! mocked_client {
    ($sdk:ident, $mode:expr, [$($rule:expr),* $(,)?]) => {{
        let interceptor = aws_smithy_mocks::MockResponseInterceptor::new().rule_mode($mode)$(.with_rule($rule))*;
        $sdk::Client::from_conf(
            $sdk::Config::builder()
                .behavior_version($sdk::config::BehaviorVersion::latest())
                .region($sdk::config::Region::new($crate::aws_support::REGION))
                .credentials_provider($sdk::config::Credentials::new("testing", "testing", None, None, "mocks"))
                .http_client(aws_smithy_mocks::create_mock_http_client())
                .interceptor(interceptor)
                .retry_config($sdk::config::retry::RetryConfig::disabled())
                .build(),
        )
    }};
}
