//! Provider settings and SDK client construction.
//!
//! Credentials come from the standard `aws-config` chain (environment, profile, SSO,
//! instance role). `AWS_ENDPOINT_URL` is honoured by that chain; an explicit
//! `endpoint_url` in the settings wins. With any custom endpoint (an emulator, a VPC
//! endpoint) S3 uses path-style addressing.

use crate::config::toml_read::TomlReader;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_smithy_http_client::{proxy::ProxyConfig, tls};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use serde::{Deserialize, Serialize};
use toml_edit::Item;

/// The `aws` provider's settings, as the environment file gives them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// e.g. `af-south-1`.
    pub region: String,
    /// Overrides the service endpoints (an emulator, a VPC endpoint).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// A named profile from `~/.aws/config`.
    #[serde(default)]
    pub profile: Option<String>,
    /// Bucket for artifacts, exec results and logs, the lease and journal mirrors.
    pub bucket: String,
    /// Key prefix inside the bucket, e.g. `cutover/production`. No leading/trailing `/`.
    #[serde(default)]
    pub prefix: String,
    /// KMS key for SSE-KMS; without it objects use SSE-S3 (AES256).
    #[serde(default)]
    pub kms_key_id: Option<String>,
}

impl AwsSettings {
    /// The full S3 key for a key relative to the prefix.
    pub fn full_key(&self, relative: &str) -> String {
        let prefix = self.prefix.trim_matches('/');
        let relative = relative.trim_start_matches('/');
        if prefix.is_empty() {
            relative.to_owned()
        } else {
            format!("{prefix}/{relative}")
        }
    }

    /// The key relative to the prefix, or `None` if `full` lies outside it.
    pub fn relative_key<'a>(&self, full: &'a str) -> Option<&'a str> {
        let prefix = self.prefix.trim_matches('/');
        if prefix.is_empty() {
            Some(full)
        } else {
            full.strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('/'))
        }
    }

    /// Whether requests go to a custom endpoint (settings or `AWS_ENDPOINT_URL`).
    pub fn uses_custom_endpoint(&self) -> bool {
        self.endpoint_url.is_some()
            || std::env::var_os("AWS_ENDPOINT_URL").is_some_and(|v| !v.is_empty())
    }
}

/// The `[aws]` section of an environment file, as the provider uses it: read once, at
/// load, by [`AwsEnvironment::read`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsEnvironment {
    pub settings: AwsSettings,
    /// What every instance starts from; a database's `instance` table overrides it.
    pub instance_defaults: super::Ec2InstanceSettings,
    /// SSM `SendCommand` delivery timeout (`ssm_delivery_timeout = "10m"`).
    pub ssm_delivery_timeout: Option<std::time::Duration>,
}

/// Every key `[aws]` accepts (the environment loader checks against this list).
pub const AWS_SECTION_KEYS: &[&str] = &[
    "region",
    "bucket",
    "state_prefix",
    "endpoint_url",
    "profile",
    "kms_key_id",
    "subnet_id",
    "security_group_ids",
    "instance_profile",
    "launch_template",
    "launch_template_version",
    "root_device_name",
    "volume_kms_key_id",
    "ssm_delivery_timeout",
];

impl AwsEnvironment {
    /// Reads `[aws]` at load: unknown keys, missing `region`/`bucket` and values of the
    /// wrong type are recorded in `r` with their file:line:col; `None` when there was any.
    pub fn read(r: &mut TomlReader<'_>, aws: &Item) -> Option<Self> {
        let Some(t) = aws.as_table_like() else {
            return None; // reported as "must be a table" by the loader
        };
        let before = r.problems.len();
        let context = "[aws]";
        r.check_keys(t, AWS_SECTION_KEYS, context);
        let region = r.string(t, "region", true, context, aws.span());
        let bucket = r.string(t, "bucket", true, context, aws.span());
        let mut text = |key: &str| r.string(t, key, false, context, None).map(|s| s.value);
        let state_prefix = text("state_prefix").unwrap_or_default();
        let endpoint_url = text("endpoint_url");
        let profile = text("profile");
        let kms_key_id = text("kms_key_id");
        let subnet_id = text("subnet_id");
        let instance_profile = text("instance_profile");
        let launch_template = text("launch_template");
        let launch_template_version = text("launch_template_version");
        let root_device_name = text("root_device_name");
        let volume_kms_key_id = text("volume_kms_key_id");
        let security_group_ids = r
            .string_list(t, "security_group_ids", context)
            .into_iter()
            .map(|g| g.value)
            .collect();
        let ssm_delivery_timeout = r
            .duration(t, "ssm_delivery_timeout", context)
            .map(|d| d.value);
        if r.problems.len() != before {
            return None;
        }
        Some(AwsEnvironment {
            settings: AwsSettings {
                region: region?.value,
                endpoint_url,
                profile,
                bucket: bucket?.value,
                prefix: state_prefix.trim_matches('/').to_owned(),
                kms_key_id,
            },
            instance_defaults: super::Ec2InstanceSettings {
                subnet_id,
                security_group_ids,
                instance_profile,
                launch_template,
                launch_template_version,
                root_device_name,
                volume_kms_key_id,
                ..Default::default()
            },
            ssm_delivery_timeout,
        })
    }
}

/// The HTTPS client of every AWS SDK client cutover builds: hyper 1 with rustls on the
/// `ring` crypto provider, honouring `HTTPS_PROXY`/`NO_PROXY` as the SDK's default client
/// does (behaviour version 2025-08-07 on). It replaces the SDK's `default-https-client`
/// (the same client on aws-lc-rs), so a build compiles one crypto library, the one neo4rs
/// already needs, instead of two. Caveat: an SDK configuration loaded without
/// [`sdk_defaults`] has no HTTP client, and its first call fails saying so.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = aws_smithy_http_client::ConnectorBuilder::default().tls_provider(
            tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring),
        );
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// `aws_config::defaults` for `region`, with [`https_client`]: the start of every SDK
/// configuration (the provider's, the test harness's, the rehearsal's).
pub fn sdk_defaults(region: &str) -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .http_client(https_client())
}

/// Loads the SDK configuration from the standard chain with the settings applied.
pub async fn load_sdk_config(settings: &AwsSettings) -> SdkConfig {
    let mut loader = sdk_defaults(&settings.region);
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// Every client the provider uses, built once from one [`SdkConfig`].
#[derive(Clone, Debug)]
pub struct AwsClients {
    pub ec2: aws_sdk_ec2::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub s3: aws_sdk_s3::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub ecs: aws_sdk_ecs::Client,
}

impl AwsClients {
    /// Builds the clients; S3 is path-style when a custom endpoint is in use.
    pub fn new(sdk: &SdkConfig, settings: &AwsSettings) -> Self {
        let path_style = settings.uses_custom_endpoint() || sdk.endpoint_url().is_some();
        let s3_config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(path_style)
            .build();
        Self {
            ec2: aws_sdk_ec2::Client::new(sdk),
            ssm: aws_sdk_ssm::Client::new(sdk),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            secrets: aws_sdk_secretsmanager::Client::new(sdk),
            ecs: aws_sdk_ecs::Client::new(sdk),
        }
    }

    /// Loads the configuration and builds the clients.
    pub async fn load(settings: &AwsSettings) -> Self {
        let sdk = load_sdk_config(settings).await;
        Self::new(&sdk, settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(prefix: &str) -> AwsSettings {
        AwsSettings {
            region: "af-south-1".into(),
            endpoint_url: None,
            profile: None,
            bucket: "b".into(),
            prefix: prefix.into(),
            kms_key_id: None,
        }
    }

    /// The SDK's clients speak TLS through [`https_client`]: the first bytes an `https://`
    /// endpoint (a loopback listener) receives are a TLS handshake record.
    #[tokio::test]
    async fn sdk_clients_open_tls_through_the_ring_client() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let first_bytes = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut head = [0u8; 3];
            conn.read_exact(&mut head).await.unwrap();
            head
        });
        let sdk = sdk_defaults("af-south-1")
            .endpoint_url(format!("https://127.0.0.1:{port}"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "id", "secret", None, None, "test",
            ))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        let s3 = aws_sdk_s3::Client::new(&sdk);
        let call = tokio::spawn(async move { s3.list_buckets().send().await });
        let head = tokio::time::timeout(std::time::Duration::from_secs(10), first_bytes)
            .await
            .expect("the client connected")
            .unwrap();
        // 0x16: a TLS handshake record; 0x03 0x01: the record version of a ClientHello.
        assert_eq!(head, [0x16, 0x03, 0x01]);
        assert!(call.await.unwrap().is_err(), "no TLS server answered");
    }

    #[test]
    fn keys_join_and_split_around_the_prefix() {
        let s = settings("cutover/prod/");
        assert_eq!(
            s.full_key("runs/x/journal.jsonl"),
            "cutover/prod/runs/x/journal.jsonl"
        );
        assert_eq!(s.relative_key("cutover/prod/runs/x"), Some("runs/x"));
        assert_eq!(s.relative_key("cutover/production/runs/x"), None);
        let bare = settings("");
        assert_eq!(bare.full_key("/a/b"), "a/b");
        assert_eq!(bare.relative_key("a/b"), Some("a/b"));
    }

    #[test]
    fn every_key_the_loader_accepts_is_read() {
        let mut text = String::from("[aws]\n");
        for key in AWS_SECTION_KEYS {
            let value = match *key {
                "security_group_ids" => "[\"sg-1\"]".to_owned(),
                "ssm_delivery_timeout" => "\"5m\"".to_owned(),
                _ => format!("\"{key}-value\""),
            };
            text.push_str(&format!("{key} = {value}\n"));
        }
        let source = crate::config::SourceFile::new("env.toml", text);
        let doc = TomlReader::parse(&source).unwrap();
        let mut r = TomlReader::new(&source);
        let aws = AwsEnvironment::read(&mut r, doc.get("aws").unwrap()).expect("read");
        assert!(r.problems.is_empty(), "{}", r.problems);
        assert_eq!(aws.settings.region, "region-value");
        assert_eq!(aws.settings.bucket, "bucket-value");
        assert_eq!(aws.settings.prefix, "state_prefix-value");
        assert_eq!(
            aws.settings.endpoint_url.as_deref(),
            Some("endpoint_url-value")
        );
        assert_eq!(aws.settings.profile.as_deref(), Some("profile-value"));
        assert_eq!(aws.settings.kms_key_id.as_deref(), Some("kms_key_id-value"));
        let i = &aws.instance_defaults;
        assert_eq!(i.subnet_id.as_deref(), Some("subnet_id-value"));
        assert_eq!(i.security_group_ids, vec!["sg-1"]);
        assert_eq!(
            i.instance_profile.as_deref(),
            Some("instance_profile-value")
        );
        assert_eq!(i.launch_template.as_deref(), Some("launch_template-value"));
        assert_eq!(
            i.launch_template_version.as_deref(),
            Some("launch_template_version-value")
        );
        assert_eq!(
            i.root_device_name.as_deref(),
            Some("root_device_name-value")
        );
        assert_eq!(
            i.volume_kms_key_id.as_deref(),
            Some("volume_kms_key_id-value")
        );
        assert_eq!(
            aws.ssm_delivery_timeout,
            Some(std::time::Duration::from_secs(300))
        );
    }

    #[test]
    fn unknown_settings_are_rejected() {
        let err = toml::from_str::<AwsSettings>("region='x'\nbucket='b'\nbukket='c'").unwrap_err();
        assert!(err.to_string().contains("bukket"));
    }
}
