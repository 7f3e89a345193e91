//! An ArcadeDB server for one test, started with the library's launcher
//! ([`cutover::db::arcadedb::server`]) in a temporary instance directory on free
//! loopback ports, killed (and its directory removed) on drop, also when the test panics.

use super::{venv, READY_TIMEOUT};
use cutover::db::arcadedb::{free_loopback_port, ArcadeInstall, ArcadeServer, ArcadeServerConfig};
use cutover::db::bolt::BoltTarget;
use rand::distr::{Alphanumeric, SampleString};
use secrecy::SecretString;
use std::path::Path;
use std::time::Duration;

/// Heap for test servers: several run at once on a small machine.
pub const TEST_HEAP_MB: u32 = 384;

pub struct ArcadeHarness {
    // Dropped before `dir`: the server dies before its directory is removed.
    server: ArcadeServer,
    password: SecretString,
    startup: Duration,
    dir: tempfile::TempDir,
}

impl ArcadeHarness {
    /// Starts a server with a random root password, waits until it is ready and creates
    /// `databases`. Panics with the server's log tail if anything fails.
    pub async fn start(databases: &[&str]) -> Self {
        Self::start_with(databases, Vec::new()).await
    }

    /// Like [`start`](Self::start), with extra (non-secret) system properties, e.g.
    /// `arcadedb.server.restoreImportAllowLocalUrls=true`.
    pub async fn start_with(databases: &[&str], properties: Vec<(String, String)>) -> Self {
        let install = ArcadeInstall::from_venv(&venv())
            .unwrap_or_else(|f| panic!("{} ({})", f.message, f.hint.unwrap_or_default()));
        let password = SecretString::from(Alphanumeric.sample_string(&mut rand::rng(), 24));
        let dir = tempfile::Builder::new()
            .prefix("cutover-arcadedb-")
            .tempdir()
            .expect("temp dir");
        // A port picked free may be taken before the JVM binds it: try a few times.
        let mut attempt = 0;
        let (mut server, startup) = loop {
            attempt += 1;
            let mut config = ArcadeServerConfig::new(
                install.clone(),
                dir.path().join("instance"),
                free_loopback_port().expect("free port"),
                free_loopback_port().expect("free port"),
                password.clone(),
            );
            config.heap_mb = TEST_HEAP_MB;
            config.kill_on_drop = true;
            config.system_properties = properties.clone();
            let mut server = match ArcadeServer::start(config).await {
                Ok(server) => server,
                Err(f) if attempt < 3 && f.message.contains("already in use") => continue,
                Err(f) => panic!("cannot start ArcadeDB: {} ({:?})", f.message, f.hint),
            };
            match server.wait_ready(READY_TIMEOUT).await {
                Ok(startup) => break (server, startup),
                Err(f) if attempt < 3 && f.message.contains("already in use") => continue,
                Err(f) => panic!("ArcadeDB did not become ready: {}", f.message),
            }
        };
        for db in databases {
            server
                .http()
                .ensure_database(db)
                .await
                .unwrap_or_else(|f| panic!("cannot create database {db}: {}", f.message));
        }
        assert!(!server.has_exited(), "ArcadeDB exited right after start-up");
        Self {
            server,
            password,
            startup,
            dir,
        }
    }

    /// Bolt access to `database` as root.
    pub fn bolt_target(&self, database: &str) -> BoltTarget {
        self.server.bolt_target(database)
    }

    pub fn server(&self) -> &ArcadeServer {
        &self.server
    }

    pub fn password(&self) -> &SecretString {
        &self.password
    }

    /// Time from spawning the JVM to `/api/v1/ready` → 204.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// The temporary directory holding the instance directory (and room for backups).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
