//! Local compute: an instance is an ArcadeDB server process on loopback ports with its
//! own directory `<state_dir>/instances/<name>/`; an image is a directory
//! `<state_dir>/images/<image>/image.toml` naming an ArcadeDB installation.
//!
//! - `provision` records the instance in the registry (name, tags, token, ports, heap),
//!   starts the server (Bolt plugin, 127.0.0.1, `-Xmx` from `settings.heap_mb`, default
//!   512, the databases listed in `settings.databases` created by the server as it
//!   starts) and returns at once: it never waits for the server, so the step's deadline
//!   and Ctrl-C reach the start-up. Refusals before the spawn (a port in use, a missing
//!   installation) leave nothing behind. The same idempotency token adopts the existing
//!   instance and restarts its server if the process died or was stopped.
//! - The root password is generated per instance and kept in the local secret store
//!   under [`root_secret_name`]; it is never in argv, logs or the registry (the server
//!   reads it from an argfile that `readiness` removes once the server serves).
//! - `readiness`: a start that failed (an exception in `main`, found in this start's
//!   `server.log`) stops the process and fails — transiently for a port taken since
//!   `provision` checked it, so provisioning again restarts it on other ports; then the
//!   process is alive, `/api/v1/ready` answers, and `RETURN 1` over Bolt succeeds on the
//!   first database from `settings.databases` (with no database there is nothing to query
//!   over Bolt; then the Bolt port accepting a connection counts).
//!
//! Settings (`ProvisionRequest.settings`, all optional): `heap_mb` (number),
//! `databases` (array of names), `bolt_port` / `http_port` (fixed ports instead of free
//! ones). How long a start may take is the provision step's `timeout`.

use super::files::{create_dir_all, io_failure, write_atomic};
use super::neo4j_home::{image_version, Neo4jHome, Neo4jInstall};
use super::registry::{InstanceRecord, Registry};
use super::secret_store::LocalSecretStore;
use crate::db::arcadedb::server::{
    self, running_pid, stop_by_pid_file, DEFAULT_HEAP_MB, ROOT_USER,
};
use crate::db::arcadedb::{
    free_loopback_port, ArcadeHttp, ArcadeInstall, ArcadeServer, ArcadeServerConfig,
};
use crate::db::bolt::BoltTarget;
use crate::failure::{Failure, FailureKind};
use crate::ids::{InstanceId, SecretName};
use crate::providers::{
    Compute, Instance, InstanceState, ProvisionRequest, Readiness, SecretStage, SecretStore, Tags,
};
use async_trait::async_trait;
use rand::distr::{Alphanumeric, SampleString};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The image created from the discovered ArcadeDB installation when it is missing.
pub const DEFAULT_IMAGE: &str = "arcadedb";
/// The system property that lets `restore database X file://…` read local files.
pub const RESTORE_LOCAL_URLS: &str = "arcadedb.server.restoreImportAllowLocalUrls";
const STOP_GRACE: Duration = Duration::from_secs(15);
/// Bounds one `cutover-systemctl` call (a stop waits up to 30 s, then SIGKILLs).
const SERVICE_TIMEOUT: Duration = Duration::from_secs(60);
/// The heap of a local Neo4j instance when neither the request nor the image says.
const NEO4J_DEFAULT_HEAP_MB: u32 = 256;

/// What a local image runs.
#[derive(Clone, Debug)]
pub enum Install {
    Arcade(ArcadeInstall),
    Neo4j(Neo4jInstall),
}

/// The secret-store name of an instance's root password.
pub fn root_secret_name(instance: &InstanceId) -> SecretName {
    SecretName::new(format!("local/instances/{}/root", instance.as_str()))
}

/// `<state_dir>/images/<name>/image.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageFile {
    /// `arcadedb` or `neo4j`.
    pub engine: String,
    /// ArcadeDB: a directory holding `jre/` and `jars/` (see [`ArcadeInstall::from_dir`]);
    /// Neo4j: `.tools/neo4j/<version>` (see [`Neo4jInstall::from_dir`]).
    pub home: PathBuf,
    /// Neo4j: the version installed in `home`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Default heap for instances of this image, when the request does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap_mb: Option<u32>,
}

/// The local compute service of one state directory.
pub struct LocalCompute {
    state_dir: PathBuf,
    registry: Registry,
    secrets: Arc<LocalSecretStore>,
    /// Serialises registry updates within this process (the flock does across processes).
    local_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for LocalCompute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCompute")
            .field("state_dir", &self.state_dir)
            .finish()
    }
}

/// Every key a database's `instance = { … }` table accepts on the local provider (the
/// environment loader checks against this list; `heap_mb` comes from the database's
/// `heap`, so it is not one of them).
pub const INSTANCE_TABLE_KEYS: &[&str] = &["databases", "bolt_port", "http_port"];

#[derive(Debug)]
struct Settings {
    heap_mb: Option<u32>,
    databases: Vec<String>,
    bolt_port: Option<u16>,
    http_port: Option<u16>,
}

impl Settings {
    fn parse(value: &serde_json::Value) -> Result<Self, Failure> {
        let bad = |what: &str| Failure::permanent(format!("local instance settings: {what}"));
        let obj = match value {
            serde_json::Value::Null => serde_json::Map::new(),
            serde_json::Value::Object(m) => m.clone(),
            _ => return Err(bad("expected a table")),
        };
        let num = |k: &str| -> Result<Option<u64>, Failure> {
            match obj.get(k) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .map(Some)
                    .ok_or_else(|| bad(&format!("`{k}` must be a positive integer"))),
            }
        };
        let port = |k: &str| -> Result<Option<u16>, Failure> {
            num(k)?
                .map(|p| {
                    u16::try_from(p)
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| bad(&format!("`{k}` must be a port number")))
                })
                .transpose()
        };
        let heap_mb = num("heap_mb")?
            .map(|h| {
                u32::try_from(h)
                    .ok()
                    .filter(|h| *h >= 64)
                    .ok_or_else(|| bad("`heap_mb` must be at least 64"))
            })
            .transpose()?;
        let mut databases = Vec::new();
        match obj.get("databases") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Array(a)) => {
                for d in a {
                    let d = d
                        .as_str()
                        .ok_or_else(|| bad("`databases` must be a list of names"))?;
                    if d.is_empty()
                        || !d
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    {
                        return Err(bad(&format!(
                            "invalid database name `{d}` (letters, digits, `_`, `-`)"
                        )));
                    }
                    databases.push(d.to_string());
                }
            }
            Some(_) => return Err(bad("`databases` must be a list of names")),
        }
        Ok(Self {
            heap_mb,
            databases,
            bolt_port: port("bolt_port")?,
            http_port: port("http_port")?,
        })
    }
}

impl LocalCompute {
    /// Compute over `state_dir`, keeping root passwords in `secrets`.
    pub fn new(state_dir: impl Into<PathBuf>, secrets: Arc<LocalSecretStore>) -> Self {
        let state_dir = state_dir.into();
        Self {
            registry: Registry::new(state_dir.join("instances")),
            state_dir,
            secrets,
            local_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// `<state_dir>/instances/<name>`.
    pub fn instance_dir(&self, id: &InstanceId) -> PathBuf {
        self.registry.dir().join(id.as_str())
    }

    /// The instance's root password, from the secret store.
    pub async fn root_password(&self, id: &InstanceId) -> Result<SecretString, Failure> {
        self.secrets
            .get(&root_secret_name(id), SecretStage::Current)
            .await?
            .map(|v| v.value)
            .ok_or_else(|| {
                Failure::permanent(format!(
                    "no root password for local instance {id} in the secret store"
                ))
            })
    }

    /// The registry record of `id`; a missing one is permanent.
    fn record(&self, id: &InstanceId) -> Result<InstanceRecord, Failure> {
        self.registry
            .read()?
            .instances
            .get(id.as_str())
            .cloned()
            .ok_or_else(|| Failure::permanent(format!("no local instance `{id}`")))
    }

    /// Adds a new instance's record to the registry; a record of the same name that
    /// appeared meanwhile (a concurrent provision) is a transient failure, so the retry
    /// adopts it.
    async fn register_new(&self, rec: &InstanceRecord) -> Result<(), Failure> {
        let _g = self.local_lock.lock().await;
        let taken = self.registry.update(|file| {
            if file.instances.contains_key(&rec.name) {
                return Ok(true);
            }
            file.instances.insert(rec.name.clone(), rec.clone());
            Ok(false)
        })?;
        if taken {
            return Err(Failure::transient(format!(
                "local instance `{}` is being provisioned concurrently; retry to adopt it",
                rec.name
            )));
        }
        Ok(())
    }

    /// All registry records (for `gc` and status).
    pub fn records(&self) -> Result<Vec<InstanceRecord>, Failure> {
        Ok(self.registry.read()?.instances.into_values().collect())
    }

    /// Loads `<state_dir>/images/<image>/image.toml`; creates the default image (and
    /// `neo4j-<version>`, from `.tools/neo4j/<version>`) when it is missing.
    pub fn image(&self, image: &str) -> Result<(ImageFile, Install), Failure> {
        let image = if image.is_empty() {
            DEFAULT_IMAGE
        } else {
            image
        };
        if image.contains('/') || image.starts_with('.') {
            return Err(Failure::permanent(format!(
                "invalid local image name `{image}`"
            )));
        }
        let dir = self.state_dir.join("images").join(image);
        let path = dir.join("image.toml");
        let file = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str::<ImageFile>(&text).map_err(|e| {
                Failure::permanent(format!("local image {}: {e}", path.display()))
                    .with_hint("fix image.toml: `engine = \"arcadedb\"` and `home = \"<dir with jre/ and jars/>\"`")
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && image == DEFAULT_IMAGE => {
                let install = ArcadeInstall::discover()?;
                let home = install
                    .java
                    .ancestors()
                    .nth(3)
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| install.jars.parent().unwrap_or(Path::new("/")).to_path_buf());
                let file = ImageFile { engine: "arcadedb".into(), home, version: None, heap_mb: None };
                create_dir_all(&dir)?;
                write_atomic(&path, toml::to_string(&file).expect("image serialises").as_bytes(), 0o644)?;
                file
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && image_version(image).is_some() => {
                let version = image_version(image).expect("checked").to_owned();
                let cwd = std::env::current_dir()
                    .map_err(|e| io_failure("cannot read the current directory", &e))?;
                let home = Neo4jInstall::tools_dir(&cwd)?.join(&version);
                Neo4jInstall::from_dir(&home, &version)?;
                let file = ImageFile { engine: "neo4j".into(), home, version: Some(version), heap_mb: None };
                create_dir_all(&dir)?;
                write_atomic(&path, toml::to_string(&file).expect("image serialises").as_bytes(), 0o644)?;
                file
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Failure::permanent(format!("unknown local image `{image}`: {} does not exist", path.display()))
                    .with_hint(format!("use the image `{DEFAULT_IMAGE}` (created automatically), or create {}", path.display())));
            }
            Err(e) => return Err(io_failure(&format!("cannot read {}", path.display()), &e)),
        };
        if file.engine == "neo4j" {
            let version = file.version.clone().ok_or_else(|| {
                Failure::permanent(format!(
                    "local image `{image}` ({}) has engine `neo4j` but no `version`",
                    path.display()
                ))
            })?;
            let install = Neo4jInstall::from_dir(&file.home, &version).map_err(|f| Failure {
                message: format!("local image `{image}` ({}): {}", path.display(), f.message),
                ..f
            })?;
            return Ok((file, Install::Neo4j(install)));
        }
        if file.engine != "arcadedb" {
            return Err(Failure::permanent(format!(
                "local image `{image}` has engine `{}`; the local provider runs `arcadedb` and `neo4j`",
                file.engine
            )));
        }
        let install = ArcadeInstall::from_dir(&file.home).map_err(|f| {
            Failure::permanent(format!(
                "local image `{image}` ({}): {}",
                path.display(),
                f.message
            ))
            .with_hint(f.hint.unwrap_or_else(|| "run `make setup`".into()))
        })?;
        Ok((file, Install::Arcade(install)))
    }

    /// Whether `rec` is a Neo4j instance (its image's engine).
    fn neo4j_home(&self, rec: &InstanceRecord) -> Option<Neo4jHome> {
        let dir = self.instance_dir(&InstanceId::new(rec.name.clone()));
        dir.join("cutover-systemctl")
            .exists()
            .then(|| Neo4jHome::new(dir))
    }

    /// The home of local Neo4j instance `id` (for the exec channel).
    pub fn neo4j_instance_home(&self, id: &InstanceId) -> Result<Neo4jHome, Failure> {
        let rec = self.record(id)?;
        self.neo4j_home(&rec).ok_or_else(|| {
            Failure::permanent(format!(
                "local instance `{id}` is not a Neo4j server (image `{}`); the local exec channel runs scripts on Neo4j instances only",
                rec.image
            ))
        })
    }

    fn server_pid(&self, rec: &InstanceRecord) -> Option<u32> {
        match self.neo4j_home(rec) {
            Some(home) => home.running_pid(),
            None => running_pid(&self.instance_dir(&InstanceId::new(rec.name.clone()))),
        }
    }

    fn instance_of(&self, rec: &InstanceRecord) -> Instance {
        let id = InstanceId::new(rec.name.clone());
        let dir = self.instance_dir(&id);
        let neo4j = self.neo4j_home(rec);
        // A Neo4j home that never started is a booted machine waiting for its first
        // start (set-initial-password.sh starts it), as a new EC2 instance from the AMI.
        let awaiting_first_start = neo4j
            .as_ref()
            .is_some_and(|h| !h.ever_started() && !rec.stopped);
        let state = if awaiting_first_start || self.server_pid(rec).is_some() {
            InstanceState::Running
        } else {
            InstanceState::Stopped
        };
        let mut endpoints = BTreeMap::new();
        endpoints.insert(
            "bolt".to_string(),
            format!("bolt://127.0.0.1:{}", rec.bolt_port),
        );
        if neo4j.is_none() {
            endpoints.insert(
                "http".to_string(),
                format!("http://127.0.0.1:{}", rec.http_port),
            );
        }
        endpoints.insert("home".to_string(), dir.display().to_string());
        Instance {
            id,
            state,
            tags: rec.tags.clone(),
            address: Some("127.0.0.1".into()),
            endpoints,
            image: Some(rec.image.clone()),
        }
    }

    /// Starts the server of `rec` and returns at once with its pid; [`Compute::readiness`]
    /// follows the start (a failed one, the HTTP API, Bolt). The databases of
    /// `rec.databases` are created by the server as it starts (`defaultDatabases`).
    /// Refusals before the spawn (a port in use, a server already running there) are
    /// returned here, with no process left.
    async fn spawn_server(
        &self,
        rec: &InstanceRecord,
        install: &ArcadeInstall,
        password: &SecretString,
    ) -> Result<u32, Failure> {
        let dir = self.instance_dir(&InstanceId::new(rec.name.clone()));
        server::set_log_aside(&dir);
        let mut config = ArcadeServerConfig::new(
            install.clone(),
            dir,
            rec.bolt_port,
            rec.http_port,
            password.clone(),
        );
        config.heap_mb = rec.heap_mb;
        config.system_properties = vec![(RESTORE_LOCAL_URLS.to_string(), "true".to_string())];
        if !rec.databases.is_empty() {
            // `NAME[root]`: the database, reachable by the root user.
            let databases: Vec<String> = rec
                .databases
                .iter()
                .map(|d| format!("{d}[{ROOT_USER}]"))
                .collect();
            config.system_properties.push((
                "arcadedb.server.defaultDatabases".to_string(),
                databases.join(";"),
            ));
        }
        Ok(ArcadeServer::start(config).await?.detach_starting())
    }

    /// Starts an instance recorded earlier whose server is not running; moves to new free
    /// ports if the old ones were taken meanwhile (unless they were fixed by settings).
    async fn restart(
        &self,
        mut rec: InstanceRecord,
        settings: &Settings,
    ) -> Result<InstanceRecord, Failure> {
        let id = InstanceId::new(rec.name.clone());
        let (_, install) = self.image(&rec.image)?;
        let install = match install {
            Install::Arcade(i) => i,
            Install::Neo4j(_) => {
                let home = self.neo4j_home(&rec).ok_or_else(|| {
                    Failure::permanent(format!("local instance `{id}` has no Neo4j home"))
                })?;
                if home.ever_started() {
                    home.service("start", SERVICE_TIMEOUT).await?;
                }
                rec.stopped = false;
                let saved = rec.clone();
                let _g = self.local_lock.lock().await;
                self.registry.update(|file| {
                    file.instances.insert(saved.name.clone(), saved.clone());
                    Ok(())
                })?;
                return Ok(rec);
            }
        };
        let password = self.root_password(&id).await?;
        let mut attempt = 0;
        let pid = loop {
            attempt += 1;
            match self.spawn_server(&rec, &install, &password).await {
                Ok(pid) => break pid,
                Err(f)
                    if attempt < 3
                        && f.is(FailureKind::PortInUse)
                        && settings.bolt_port.is_none()
                        && settings.http_port.is_none() =>
                {
                    rec.bolt_port = free_loopback_port()?;
                    rec.http_port = free_loopback_port()?;
                }
                Err(f) => return Err(f),
            }
        };
        rec.pid = Some(pid);
        rec.stopped = false;
        let saved = rec.clone();
        let _g = self.local_lock.lock().await;
        self.registry.update(|file| {
            file.instances.insert(saved.name.clone(), saved.clone());
            Ok(())
        })?;
        Ok(rec)
    }

    /// Removes everything a failed first provisioning created.
    async fn undo_provision(&self, id: &InstanceId) {
        let dir = self.instance_dir(id);
        let _ = stop_by_pid_file(&dir, Duration::from_secs(5)).await;
        let _ = std::fs::remove_dir_all(&dir);
        let _ = self.secrets.delete(&root_secret_name(id)).await;
        let _g = self.local_lock.lock().await;
        let _ = self.registry.update(|file| {
            file.instances.remove(id.as_str());
            Ok(())
        });
    }
}

impl LocalCompute {
    /// A new local Neo4j instance: registry record, then its home (conf on a free
    /// loopback Bolt port, heap from the request or image). Neo4j is not started: like
    /// an instance from the AMI it waits for `set-initial-password.sh`, which sets the
    /// administrator's password and starts it (`Neo4jEngine::prepare_instance`).
    async fn provision_neo4j(
        &self,
        request: &ProvisionRequest,
        settings: &Settings,
        image: &ImageFile,
        install: &Neo4jInstall,
        id: &InstanceId,
    ) -> Result<Instance, Failure> {
        let dir = self.instance_dir(id);
        if dir.exists() {
            return Err(Failure::permanent(format!(
                "{} exists but no instance `{}` is registered",
                dir.display(),
                request.name
            ))
            .with_hint("remove the directory (a leftover of an interrupted run) or choose another instance name"));
        }
        let rec = InstanceRecord {
            name: request.name.clone(),
            image: request.image.clone(),
            tags: request.tags.clone(),
            idempotency_token: request.idempotency_token.clone(),
            bolt_port: settings
                .bolt_port
                .map(Ok)
                .unwrap_or_else(free_loopback_port)?,
            http_port: 0,
            heap_mb: settings
                .heap_mb
                .or(image.heap_mb)
                .unwrap_or(NEO4J_DEFAULT_HEAP_MB),
            databases: settings.databases.clone(),
            pid: None,
            stopped: false,
            created_at: chrono::Utc::now().to_rfc3339(),
        };
        self.register_new(&rec).await?;
        if let Err(f) = Neo4jHome::new(&dir).create(install, rec.bolt_port, rec.heap_mb) {
            self.undo_provision(id).await;
            return Err(Failure {
                message: format!(
                    "cannot provision local instance `{}`: {}",
                    request.name, f.message
                ),
                ..f
            });
        }
        Ok(self.instance_of(&rec))
    }
}

/// Readiness of a local Neo4j instance: before its first start it is ready for scripts
/// (the exec channel); afterwards the server must run and its Bolt port accept a
/// connection (the step then logs in with the administrator's password).
async fn neo4j_readiness(
    id: &InstanceId,
    rec: &InstanceRecord,
    home: &Neo4jHome,
) -> Result<Readiness, Failure> {
    if home.running_pid().is_none() {
        if !home.ever_started() && !rec.stopped {
            return Ok(Readiness::Ready);
        }
        let why = if rec.stopped {
            "was stopped"
        } else {
            "is not running"
        };
        return Err(Failure::permanent(format!(
            "the Neo4j server of local instance `{id}` {why} (log: {})",
            home.dir.join("logs/neo4j.log").display()
        ))
        .with_hint("provision it again with the same idempotency token to restart it"));
    }
    match tokio::net::TcpStream::connect(("127.0.0.1", rec.bolt_port)).await {
        Ok(_) => Ok(Readiness::Ready),
        Err(e) => Ok(Readiness::NotYet(format!(
            "Neo4j Bolt port {}: {e}",
            rec.bolt_port
        ))),
    }
}

fn validate_name(name: &str) -> Result<(), Failure> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Failure::permanent(format!(
            "invalid local instance name `{name}`: use letters, digits, `-`, `_` and `.` (not leading)"
        )))
    }
}

#[async_trait]
impl Compute for LocalCompute {
    async fn provision(&self, request: &ProvisionRequest) -> Result<Instance, Failure> {
        validate_name(&request.name)?;
        let settings = Settings::parse(&request.settings)?;
        let id = InstanceId::new(request.name.clone());
        let existing = {
            let _g = self.local_lock.lock().await;
            self.registry.read()?.instances.get(&request.name).cloned()
        };
        if let Some(rec) = existing {
            if rec.idempotency_token != request.idempotency_token {
                return Err(Failure::permanent(format!(
                    "local instance `{}` already exists (created with another idempotency token)",
                    request.name
                ))
                .with_hint(
                    "choose another instance name, or terminate the old instance (`cutover gc`)",
                ));
            }
            let rec = if self.server_pid(&rec).is_some() {
                rec
            } else {
                self.restart(rec, &settings).await?
            };
            return Ok(self.instance_of(&rec));
        }

        let (image, install) = self.image(&request.image)?;
        let dir = self.instance_dir(&id);
        let install = match install {
            Install::Arcade(i) => i,
            Install::Neo4j(n) => {
                return self
                    .provision_neo4j(request, &settings, &image, &n, &id)
                    .await
            }
        };
        if dir.exists() {
            return Err(Failure::permanent(format!(
                "{} exists but no instance `{}` is registered",
                dir.display(),
                request.name
            ))
            .with_hint("remove the directory (a leftover of an interrupted run) or choose another instance name"));
        }
        let heap_mb = settings
            .heap_mb
            .or(image.heap_mb)
            .unwrap_or(DEFAULT_HEAP_MB);
        let mut rec = InstanceRecord {
            name: request.name.clone(),
            image: if request.image.is_empty() {
                DEFAULT_IMAGE.into()
            } else {
                request.image.clone()
            },
            tags: request.tags.clone(),
            idempotency_token: request.idempotency_token.clone(),
            bolt_port: settings
                .bolt_port
                .map(Ok)
                .unwrap_or_else(free_loopback_port)?,
            http_port: settings
                .http_port
                .map(Ok)
                .unwrap_or_else(free_loopback_port)?,
            heap_mb,
            databases: settings.databases.clone(),
            pid: None,
            stopped: false,
            created_at: chrono::Utc::now().to_rfc3339(),
        };
        self.register_new(&rec).await?;
        let result: Result<u32, Failure> = async {
            create_dir_all(&dir)?;
            let password = SecretString::from(Alphanumeric.sample_string(&mut rand::rng(), 32));
            self.secrets
                .put_current(
                    &root_secret_name(&id),
                    &password,
                    &format!("root:{}", request.idempotency_token),
                )
                .await?;
            let mut attempt = 0;
            loop {
                attempt += 1;
                match self.spawn_server(&rec, &install, &password).await {
                    Ok(pid) => return Ok(pid),
                    Err(f)
                        if attempt < 3
                            && f.is(FailureKind::PortInUse)
                            && settings.bolt_port.is_none()
                            && settings.http_port.is_none() =>
                    {
                        // A free port was taken before the JVM bound it: pick others.
                        let _ = std::fs::remove_dir_all(dir.join("config"));
                        rec.bolt_port = free_loopback_port()?;
                        rec.http_port = free_loopback_port()?;
                    }
                    Err(f) => return Err(f),
                }
            }
        }
        .await;
        match result {
            Ok(pid) => {
                rec.pid = Some(pid);
                let saved = rec.clone();
                let _g = self.local_lock.lock().await;
                self.registry.update(|file| {
                    file.instances.insert(saved.name.clone(), saved.clone());
                    Ok(())
                })?;
                Ok(self.instance_of(&rec))
            }
            Err(f) => {
                self.undo_provision(&id).await;
                Err(Failure {
                    message: format!(
                        "cannot provision local instance `{}`: {}",
                        request.name, f.message
                    ),
                    ..f
                })
            }
        }
    }

    async fn describe(&self, id: &InstanceId) -> Result<Option<Instance>, Failure> {
        Ok(self
            .registry
            .read()?
            .instances
            .get(id.as_str())
            .map(|r| self.instance_of(r)))
    }

    async fn readiness(&self, id: &InstanceId) -> Result<Readiness, Failure> {
        let rec = self.record(id)?;
        let dir = self.instance_dir(id);
        if let Some(home) = self.neo4j_home(&rec) {
            return neo4j_readiness(id, &rec, &home).await;
        }
        if let Some(failed) = server::check_start(&dir) {
            // Thrown from `main`, the JVM hangs: stop it. A port taken since provision
            // checked it is transient: provisioning again (same token) restarts the
            // server on other ports.
            let _ = stop_by_pid_file(&dir, Duration::from_secs(5)).await;
            server::forget_start_secret(&dir);
            return Err(if failed.is(FailureKind::PortInUse) {
                Failure {
                    class: crate::failure::ErrorClass::Transient,
                    ..failed
                }
            } else {
                failed
            });
        }
        if running_pid(&dir).is_none() {
            let why = if rec.stopped {
                "was stopped"
            } else {
                "is not running"
            };
            return Err(Failure::permanent(format!(
                "the server of local instance `{id}` {why} (log: {})",
                dir.join("server.log").display()
            ))
            .with_hint("provision it again with the same idempotency token to restart it"));
        }
        let password = self.root_password(id).await?;
        if !ArcadeHttp::new(rec.http_port, password.clone())
            .is_ready()
            .await
        {
            return Ok(Readiness::NotYet(format!(
                "HTTP API on port {} not ready",
                rec.http_port
            )));
        }
        // It serves: the JVM read its password long ago.
        server::forget_start_secret(&dir);
        let Some(db) = rec.databases.first() else {
            return Ok(
                match tokio::net::TcpStream::connect(("127.0.0.1", rec.bolt_port)).await {
                    Ok(_) => Readiness::Ready,
                    Err(e) => Readiness::NotYet(format!("Bolt port {}: {e}", rec.bolt_port)),
                },
            );
        };
        let target = BoltTarget {
            uri: format!("bolt://127.0.0.1:{}", rec.bolt_port),
            user: ROOT_USER.into(),
            password,
            database: Some(db.clone()),
        };
        let probe = target.check_login();
        match tokio::time::timeout(Duration::from_secs(10), probe).await {
            Ok(Ok(())) => Ok(Readiness::Ready),
            Ok(Err(f)) if f.is_retryable() => Ok(Readiness::NotYet(f.message)),
            Ok(Err(f)) => Err(f),
            Err(_) => Ok(Readiness::NotYet(format!(
                "{}: Bolt query timed out",
                target.uri
            ))),
        }
    }

    async fn stop(&self, id: &InstanceId) -> Result<(), Failure> {
        let dir = self.instance_dir(id);
        if dir.join("cutover-systemctl").exists() {
            Neo4jHome::new(&dir)
                .service("stop", SERVICE_TIMEOUT)
                .await?;
        } else {
            stop_by_pid_file(&dir, STOP_GRACE).await?;
        }
        let _g = self.local_lock.lock().await;
        self.registry.update(|file| {
            if let Some(rec) = file.instances.get_mut(id.as_str()) {
                rec.stopped = true;
                rec.pid = None;
            }
            Ok(())
        })
    }

    async fn terminate(&self, id: &InstanceId) -> Result<(), Failure> {
        validate_name(id.as_str())?;
        let dir = self.instance_dir(id);
        if dir.exists() {
            if dir.join("cutover-systemctl").exists() {
                Neo4jHome::new(&dir)
                    .service("stop", SERVICE_TIMEOUT)
                    .await?;
            } else {
                stop_by_pid_file(&dir, STOP_GRACE).await?;
            }
            std::fs::remove_dir_all(&dir).or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(io_failure(&format!("cannot remove {}", dir.display()), &e))
                }
            })?;
        }
        self.secrets.delete(&root_secret_name(id)).await?;
        let _g = self.local_lock.lock().await;
        self.registry.update(|file| {
            file.instances.remove(id.as_str());
            Ok(())
        })
    }

    async fn find_by_tags(&self, tags: &Tags) -> Result<Vec<Instance>, Failure> {
        Ok(self
            .registry
            .read()?
            .instances
            .values()
            .filter(|r| tags.iter().all(|(k, v)| r.tags.get(k) == Some(v)))
            .map(|r| self.instance_of(r))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        let s =
            Settings::parse(&serde_json::json!({"heap_mb": 384, "databases": ["ledger"]})).unwrap();
        assert_eq!(s.heap_mb, Some(384));
        assert_eq!(s.databases, vec!["ledger"]);
        assert!(Settings::parse(&serde_json::json!({"heap_mb": "big"})).is_err());
        assert!(Settings::parse(&serde_json::json!({"databases": ["a b"]})).is_err());
        assert!(Settings::parse(&serde_json::json!({"bolt_port": 70000})).is_err());
    }

    /// The loader's list is what `Settings` reads: each listed key, given a value of
    /// the wrong type, is refused here (a key `Settings` ignored would pass).
    #[test]
    fn every_instance_table_key_is_a_setting() {
        for key in INSTANCE_TABLE_KEYS {
            let wrong = serde_json::json!({ *key: { "not": "this" } });
            assert!(Settings::parse(&wrong).is_err(), "`{key}` is not read");
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("green-ledger-1").is_ok());
        assert!(validate_name("../x").is_err());
        assert!(validate_name("").is_err());
    }
}
