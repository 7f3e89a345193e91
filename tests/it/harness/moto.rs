//! The moto AWS emulator (`.venv/bin/moto_server`, from `moto[server]`) on a free
//! loopback port, one per test, killed on drop (also when the test panics).
//! [`MotoServer::start_rig`] starts the AWS rehearsal rig instead (`tests/rig/`: moto with
//! a stand-in SSM agent and rehearsal hosts); see `harness/rig.rs`.
//!
//! Nothing here may reach the real AWS: the endpoint is always set explicitly, the
//! credentials are dummies, and no shared config/credentials file is read.
//!
//! S3 callers must use path-style addressing (`http://127.0.0.1:PORT/bucket/key`):
//! virtual-hosted style would put the bucket in the host name, which does not resolve on
//! loopback. Build the client with
//! `aws_sdk_s3::config::Builder::from(&sdk_config).force_path_style(true).build()`.

use super::{log_tail, venv_bin, READY_TIMEOUT};
use aws_sdk_s3::config::Credentials;
use cutover::db::arcadedb::free_loopback_port;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The region tests use (a real region name moto accepts).
pub const REGION: &str = "af-south-1";
pub const ACCESS_KEY_ID: &str = "testing";
pub const SECRET_ACCESS_KEY: &str = "testing";

pub struct MotoServer {
    child: Child,
    port: u16,
    /// The rig stops its hosts' Neo4j on SIGTERM; plain moto is simply killed.
    graceful: bool,
    log_dir: tempfile::TempDir,
    /// The rig's rehearsal hosts (removed after the rig has stopped).
    hosts_dir: Option<tempfile::TempDir>,
}

impl MotoServer {
    /// Starts `moto_server -H 127.0.0.1 -p <free port>` and waits (bounded) until
    /// `GET /moto-api/` answers 200. Panics with the server's output if it does not.
    pub async fn start() -> Self {
        Self::start_program(venv_bin("moto_server"), Vec::new(), false).await
    }

    /// Starts the rehearsal rig (`tests/rig/aws_rig.py` under the project's Python) with
    /// its hosts in a temporary directory, and `extra` arguments. It exits by itself if
    /// this process dies; on drop it gets SIGTERM and stops every host's Neo4j first.
    pub async fn start_rig(extra: &[&str]) -> Self {
        let hosts_dir = tempfile::Builder::new()
            .prefix("cutover-rig-hosts-")
            .tempdir()
            .expect("temp dir");
        let hosts = hosts_dir.path();
        let script =
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/rig/aws_rig.py");
        let mut args = vec![
            script.display().to_string(),
            "--hosts".to_owned(),
            hosts.display().to_string(),
            "--parent-pid".to_owned(),
            std::process::id().to_string(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut server = Self::start_program(venv_bin("python"), args, true).await;
        server.hosts_dir = Some(hosts_dir);
        server
    }

    /// The rig's hosts directory; `None` for plain moto.
    pub fn hosts_dir(&self) -> Option<&std::path::Path> {
        self.hosts_dir.as_ref().map(|d| d.path())
    }

    async fn start_program(program: std::path::PathBuf, args: Vec<String>, graceful: bool) -> Self {
        let log_dir = tempfile::Builder::new()
            .prefix("cutover-moto-")
            .tempdir()
            .expect("temp dir");
        let log_path = log_dir.path().join("moto.log");
        for attempt in 1..=3 {
            let port = free_loopback_port().expect("free port");
            let log = std::fs::File::create(&log_path).expect("moto log file");
            let mut child = Command::new(&program)
                .args(&args)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("moto log file"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot run {}: {e}; run `make setup`", program.display())
                });
            match wait_ready(&mut child, port, READY_TIMEOUT).await {
                Ok(()) => {
                    return MotoServer {
                        child,
                        port,
                        graceful,
                        log_dir,
                        hosts_dir: None,
                    }
                }
                Err(exited) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    // An early exit is most likely a port taken between picking and binding.
                    if exited && attempt < 3 {
                        continue;
                    }
                    panic!(
                        "{} on port {port} did not become ready within {READY_TIMEOUT:?}; its output:\n{}",
                        program.display(),
                        log_tail(&log_path, 30)
                    );
                }
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's log (moto's request lines; the rig's too).
    pub fn log_path(&self) -> std::path::PathBuf {
        self.log_dir.path().join("moto.log")
    }

    pub fn region(&self) -> &'static str {
        REGION
    }

    /// Environment for AWS CLIs and scripts (`aws`, boto3) pointed at this emulator:
    /// dummy credentials, the region, the endpoint, and no shared config files.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_string()),
            ("AWS_SESSION_TOKEN", "testing".to_string()),
            ("AWS_DEFAULT_REGION", REGION.to_string()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint_url()),
            ("AWS_CONFIG_FILE", "/dev/null".to_string()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".to_string()),
        ]
    }

    /// SDK configuration for this emulator: explicit endpoint, region and static dummy
    /// credentials (so the default chain never looks for real ones).
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        cutover::providers::aws::config::sdk_defaults(REGION)
            .endpoint_url(self.endpoint_url())
            .credentials_provider(Credentials::new(
                ACCESS_KEY_ID,
                SECRET_ACCESS_KEY,
                None,
                None,
                "moto",
            ))
            .load()
            .await
    }

    /// An S3 client for this emulator, path-style.
    pub async fn s3_client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.sdk_config().await)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }
}

/// Creates `bucket` in the emulator's region (moto wants the location constraint).
pub async fn create_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<(), aws_sdk_s3::Error> {
    s3.create_bucket()
        .bucket(bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
                .build(),
        )
        .send()
        .await?;
    Ok(())
}

/// Err(true) when the process exited, Err(false) on timeout.
async fn wait_ready(child: &mut Child, port: u16, timeout: Duration) -> Result<(), bool> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("http client");
    let url = format!("http://127.0.0.1:{port}/moto-api/");
    let started = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return Err(true);
        }
        let response = client
            .get(&url)
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if matches!(response, Ok(r) if r.status().as_u16() == 200) {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How long the rig may take to stop its hosts' Neo4j servers after SIGTERM.
const RIG_STOP_GRACE: Duration = Duration::from_secs(90);

impl Drop for MotoServer {
    fn drop(&mut self) {
        if self.graceful {
            // SAFETY: signalling a child process we own.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let started = Instant::now();
            while started.elapsed() < RIG_STOP_GRACE {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
