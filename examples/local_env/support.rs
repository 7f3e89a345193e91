//! A credex-like environment for rehearsals, the demo and the no-write-lost tests:
//! blue `ledger` and `search` seeded by the ledger generator, the application's
//! passwords and its connection secret; and a writer that behaves like the app.
//! Local environments use the local provider; aws environments the aws provider (in the
//! tests: against the rehearsal rig, `tests/rig/`).
//!
//! Shared by `examples/local_env` (the demo), `tests/it/local_bluegreen.rs` and
//! `tests/it/aws_rehearsal.rs`.
#![allow(dead_code)]

use cutover::config::environment::DatabaseDef;
use cutover::config::Environment;
use cutover::db::arcadedb::ArcadeEngine;
use cutover::db::bolt::BoltTarget;
use cutover::db::neo4j::script_runner::PollPolicy;
use cutover::db::neo4j::{Edition, Neo4jEngine, Neo4jSettings};
use cutover::db::{DatabaseEngine, DbHandle};
use cutover::failure::Failure;
use cutover::ids::{InstanceId, RunId, SecretName};
use cutover::ledger::{commit_credex, index_credex, load_ledger, load_search_space, LedgerSpec};
use cutover::progress::WorkMeter;
use cutover::providers::local::LocalProvider;
use cutover::providers::traffic::{TrafficTarget, TrafficValues};
use cutover::providers::{
    tag, Compute, Exec, ProvisionRequest, Readiness, SecretStage, SecretStore, Tags,
};
use cutover::steps::db_access::ADMIN_SECRET_TAG;
use secrecy::SecretString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn def<'a>(env: &'a Environment, db: &str) -> Option<&'a DatabaseDef> {
    env.databases.get(&cutover::ids::DatabaseName::new(db))
}

/// The database's name inside its server (its name in the environment by default).
fn inner_name(env: &Environment, db: &str) -> String {
    def(env, db).map_or_else(|| db.to_owned(), |d| d.database.clone())
}

/// The services setup, the writer and teardown use, from the environment's provider.
pub struct Services {
    pub compute: Arc<dyn Compute>,
    pub secrets: Arc<dyn SecretStore>,
    pub exec: Arc<dyn Exec>,
    /// Where the application reads its settings (what `traffic.switch` writes).
    pub traffic: Arc<dyn TrafficTarget>,
    /// The local provider, for what only it has (ArcadeDB's root password).
    local: Option<LocalProvider>,
}

/// The services of `env`'s provider. On aws they act as the run `setup` would.
pub async fn services(env: &Environment) -> Result<Services, BoxError> {
    if env.provider == cutover::config::ProviderKind::Aws {
        let mut aws =
            cutover::providers::aws::AwsProvider::open(env.aws_section()?, &env.traffic, &env.name)
                .await?;
        aws.clients = rehearsal_clients(&aws.environment.settings).await?;
        let set = aws.provider_set(&RunId::new(format!("setup-{}", env.name)))?;
        return Ok(Services {
            compute: set.compute,
            secrets: set.secrets,
            exec: set.exec.ok_or("the aws provider has no exec channel")?,
            traffic: set.traffic,
            local: None,
        });
    }
    let provider = LocalProvider::open(&env.state_dir);
    Ok(Services {
        compute: provider.compute.clone(),
        secrets: provider.secrets.clone(),
        exec: provider.exec.clone(),
        traffic: provider.provider_set(&env.traffic, &env.name)?.traffic,
        local: Some(provider),
    })
}

/// Clients for an aws environment on the rehearsal rig: its loopback endpoint and the
/// emulator's dummy credentials, so nothing here looks for real credentials (no profile,
/// no instance metadata) or reaches real AWS. Refuses any other endpoint.
async fn rehearsal_clients(
    settings: &cutover::providers::aws::AwsSettings,
) -> Result<cutover::providers::aws::AwsClients, BoxError> {
    let endpoint = settings
        .endpoint_url
        .clone()
        .filter(|e| e.starts_with("http://127."))
        .ok_or("this support code drives aws environments only on the rehearsal rig: set [aws] endpoint_url to its loopback address")?;
    let sdk = cutover::providers::aws::config::sdk_defaults(&settings.region)
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "rehearsal",
        ))
        .load()
        .await;
    Ok(cutover::providers::aws::AwsClients::new(&sdk, settings))
}

fn random_password() -> SecretString {
    use rand::distr::{Alphanumeric, SampleString};
    SecretString::from(Alphanumeric.sample_string(&mut rand::rng(), 24))
}

async fn put_current(
    secrets: &dyn SecretStore,
    name: &SecretName,
    value: &SecretString,
) -> Result<(), Failure> {
    let token = uuid::Uuid::new_v4().to_string();
    let v = secrets.put_pending(name, value, &token).await?;
    secrets.promote(name, &v).await
}

/// Creates blue instances of `ledger` and `search` (`members` members each), the app
/// user with its password, and the app's connection secret pointing at blue.
/// Idempotent for an environment where it already ran.
pub async fn setup(env: &Environment, members: u64, heap_mb: u64) -> Result<(), BoxError> {
    setup_sized(env, members, members, heap_mb).await
}

/// [`setup`] with a size of its own for `search` (the freeze benchmark grows the ledger
/// alone).
pub async fn setup_sized(
    env: &Environment,
    ledger_members: u64,
    search_members: u64,
    heap_mb: u64,
) -> Result<(), BoxError> {
    let provider = services(env).await?;
    let aws = env.provider == cutover::config::ProviderKind::Aws;
    let mut values = TrafficValues::default();
    for db in ["ledger", "search"] {
        let neo4j = env
            .databases
            .iter()
            .any(|(n, d)| n.as_str() == db && d.kind() == cutover::db::EngineKind::Neo4j);
        let engine: Arc<dyn DatabaseEngine> = if neo4j {
            let mut settings = Neo4jSettings::defaults(Edition::Community);
            settings.poll = PollPolicy::local();
            Arc::new(Neo4jEngine::new(provider.exec.clone(), settings))
        } else {
            Arc::new(ArcadeEngine::new())
        };
        let members = if db == "ledger" {
            ledger_members
        } else {
            search_members
        };
        let mut spec = LedgerSpec::new(members, 1);
        // One record per statement: ArcadeDB 26.10 duplicates rows in UNWIND batches.
        spec.one_by_one = !neo4j;
        let inner = inner_name(env, db);
        let admin_secret = def(env, db)
            .and_then(|d| d.admin_secret.clone())
            .unwrap_or_else(|| SecretName::new(format!("{}/{db}/admin-password", env.name)));
        let mut tags = Tags::new();
        if neo4j {
            // What Terraform does on AWS: the administrator's secret exists before the
            // instance does.
            if provider
                .secrets
                .get(&admin_secret, SecretStage::Current)
                .await?
                .is_none()
            {
                put_current(provider.secrets.as_ref(), &admin_secret, &random_password()).await?;
            }
            tags.insert(ADMIN_SECRET_TAG.into(), admin_secret.as_str().into());
        }
        tags.insert(tag::ENV.into(), env.name.clone());
        tags.insert(tag::DATABASE.into(), db.into());
        tags.insert(tag::COLOR.into(), "blue".into());
        let request = ProvisionRequest {
            image: def(env, db)
                .and_then(|d| d.image.clone())
                .unwrap_or_else(|| if neo4j { "neo4j-5.26.30" } else { "arcadedb" }.into()),
            name: format!("{}-{db}-blue", env.name),
            tags,
            idempotency_token: format!("setup-{}-{db}", env.name),
            // aws: the database's `instance` table (the rig gives every host its heap).
            settings: if aws {
                serde_json::Value::Object(
                    def(env, db).map(|d| d.instance.clone()).unwrap_or_default(),
                )
            } else {
                serde_json::json!({ "heap_mb": heap_mb, "databases": [inner] })
            },
        };
        let instance = provider.compute.provision(&request).await?;
        let started = Instant::now();
        while provider.compute.readiness(&instance.id).await? != Readiness::Ready {
            if started.elapsed() > Duration::from_secs(120) {
                return Err(
                    format!("blue {db} ({}) did not become ready in 120 s", instance.id).into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let instance = provider
            .compute
            .describe(&instance.id)
            .await?
            .ok_or("instance vanished")?;
        let (admin_user, root) = if neo4j {
            engine.prepare_instance(&instance, &admin_secret).await?;
            let pw = provider
                .secrets
                .get(&admin_secret, SecretStage::Current)
                .await?
                .ok_or("admin secret vanished")?
                .value;
            ("neo4j", pw)
        } else {
            let local = provider
                .local
                .as_ref()
                .ok_or("ArcadeDB runs on the local provider only")?;
            ("root", local.compute.root_password(&instance.id).await?)
        };
        let handle = DbHandle {
            instance: instance.clone(),
            database: inner.clone(),
            admin_user: admin_user.into(),
            admin_password: root.clone(),
        };
        let admin = engine.bolt_target(&handle, admin_user, root.clone());
        // A Neo4j server starts after set-initial-password.sh: wait until it answers.
        let started = Instant::now();
        loop {
            match admin.check_login().await {
                Ok(()) => break,
                Err(e) if e.is_retryable() && started.elapsed() < Duration::from_secs(180) => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => {
                    return Err(
                        format!("blue {db} ({}) does not serve Bolt: {e}", admin.uri).into(),
                    )
                }
            }
        }
        let graph = admin.connect(2).await?;
        let mut rows = graph
            .execute(neo4rs::query("MATCH (n) RETURN count(n) AS n"))
            .await?;
        let existing: i64 = rows
            .next()
            .await?
            .map(|r| r.get("n").unwrap_or(0))
            .unwrap_or(0);
        if existing == 0 {
            let meter = WorkMeter::silent();
            if db == "ledger" {
                load_ledger(&graph, &spec, &meter).await?;
            } else {
                load_search_space(&graph, &spec, &meter).await?;
            }
        }
        let user = def(env, db).map_or_else(|| "cutover_app".to_owned(), |d| d.user.clone());
        let pw_name = def(env, db).map_or_else(
            || SecretName::new(format!("{}/{db}/app-password", env.name)),
            |d| d.app_password_secret(&env.name),
        );
        let password = match provider.secrets.get(&pw_name, SecretStage::Current).await? {
            Some(v) => v.value,
            None => {
                let p = random_password();
                put_current(provider.secrets.as_ref(), &pw_name, &p).await?;
                p
            }
        };
        engine.set_user_password(&handle, &user, &password).await?;
        let app = engine.bolt_target(&handle, &user, password.clone());
        let names = env.traffic.names_for(&env.name, db);
        values.insert(names.url, SecretString::from(app.uri.clone()));
        values.insert(names.user, SecretString::from(user));
        values.insert_secret(names.password, password);
    }
    // The application's settings point at blue, unless an earlier setup set them.
    let names: Vec<String> = values.names().map(str::to_owned).collect();
    if provider.traffic.current(&names).await?.is_empty() {
        provider
            .traffic
            .switch_to(&values, &format!("setup-{}", env.name))
            .await?;
    }
    Ok(())
}

/// Where the application currently connects for `db`, as the app reads it.
pub async fn app_target(env: &Environment, db: &str) -> Result<BoltTarget, BoxError> {
    let provider = services(env).await?;
    let names = env.traffic.names_for(&env.name, db);
    let all: Vec<String> = names.all().map(str::to_owned).to_vec();
    let now = provider.traffic.current(&all).await?;
    let get = |k: &str| {
        now.get(k)
            .map(str::to_owned)
            .ok_or(format!("{k} missing in {}", provider.traffic.describe()))
    };
    Ok(BoltTarget {
        uri: get(&names.url)?,
        user: get(&names.user)?,
        password: SecretString::from(get(&names.password)?),
        database: Some(inner_name(env, db)),
    })
}

/// What the writer saw.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct WriterLog {
    /// Credex ids acknowledged: committed on `ledger`, then indexed on `search`.
    pub acknowledged: Vec<String>,
    /// Attempts refused or failed (then retried).
    pub refused: u64,
    /// First refused write → first acknowledged write after it, in ms (the app's view
    /// of the freeze window), for the longest such gap.
    pub longest_gap_ms: u64,
    /// Reconnections to `ledger` after the first write (re-reading the app secret).
    pub switches: u64,
    /// Why the last refused write was refused (for a test's failure message).
    pub last_refusal: Option<String>,
    /// Acknowledged writes per ledger Bolt URL the app connection pointed at (blue's,
    /// green's).
    pub per_target: std::collections::BTreeMap<String, u64>,
}

/// One database connection of the writer, reconnected (re-reading the app connection
/// secret) whenever a write through it fails.
struct AppConnection {
    db: &'static str,
    /// The Bolt URL and the connection.
    current: Option<(String, neo4rs::Graph)>,
}

impl AppConnection {
    /// The connection, reconnecting when needed; `None` when the target does not answer.
    async fn get(&mut self, env: &Environment) -> Option<(&neo4rs::Graph, bool)> {
        let mut reconnected = false;
        if self.current.is_none() {
            let target = app_target(env, self.db).await.ok()?;
            let graph = target.connect(1).await.ok()?;
            self.current = Some((target.uri, graph));
            reconnected = true;
        }
        self.current.as_ref().map(|(_, g)| (g, reconnected))
    }
}

/// Writes as the app does, to whatever the app connection secret points at, until `stop`
/// is set: each transaction is committed on `ledger`, then indexed on `search`, and is
/// acknowledged only when both are done. A refused or failed write is retried (after
/// re-reading the secret) until it succeeds, so a credex on ledger is always on search
/// too once acknowledged; the one in flight when `stop` comes is not acknowledged.
pub async fn run_writer(env: Environment, members: u64, stop: Arc<AtomicBool>) -> WriterLog {
    let spec = LedgerSpec::new(members, 1);
    let mut log = WriterLog::default();
    // A fresh range of transaction numbers per writer: credex ids never collide with an
    // earlier writer's on the same ledger.
    let first = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
        % 1_000_000_000)
        * 1_000;
    let mut n: u64 = first;
    let mut ledger = AppConnection {
        db: "ledger",
        current: None,
    };
    let mut search = AppConnection {
        db: "search",
        current: None,
    };
    // Committed on ledger (at this Bolt URL), not yet indexed on search.
    let mut to_index: Option<(cutover::ledger::CredexTransaction, String)> = None;
    let mut refused_since: Option<Instant> = None;
    while !stop.load(Ordering::SeqCst) {
        // Each arm `continue`s on success; what falls through is a refused write.
        match &to_index {
            None => {
                let Some((graph, reconnected)) = ledger.get(&env).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                if reconnected && n > first {
                    log.switches += 1;
                }
                let tx = spec.live_transaction(n);
                match tokio::time::timeout(Duration::from_secs(10), commit_credex(graph, &tx)).await
                {
                    Ok(Ok(())) => {
                        let uri = ledger.current.as_ref().map(|(u, _)| u.clone());
                        to_index = Some((tx, uri.unwrap_or_default()));
                        n += 1;
                        continue;
                    }
                    Ok(Err(e)) => log.last_refusal = Some(format!("ledger: {e}")),
                    Err(_) => log.last_refusal = Some("ledger: no answer in 10 s".into()),
                }
                ledger.current = None;
            }
            Some((tx, ledger_uri)) => {
                let Some((graph, _)) = search.get(&env).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                match tokio::time::timeout(Duration::from_secs(10), index_credex(graph, tx)).await {
                    Ok(Ok(())) => {
                        log.acknowledged.push(tx.credex_id.clone());
                        *log.per_target.entry(ledger_uri.clone()).or_default() += 1;
                        to_index = None;
                        if let Some(t) = refused_since.take() {
                            log.longest_gap_ms =
                                log.longest_gap_ms.max(t.elapsed().as_millis() as u64);
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    Ok(Err(e)) => log.last_refusal = Some(format!("search: {e}")),
                    Err(_) => log.last_refusal = Some("search: no answer in 10 s".into()),
                }
                search.current = None;
            }
        }
        log.refused += 1;
        refused_since.get_or_insert_with(Instant::now);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    log
}

/// For `ledger` and `search`: the Bolt URL the application connects to now and how many
/// of `ids` (acknowledged writes) that database holds.
pub async fn present_where_the_app_connects(
    env: &Environment,
    ids: &[String],
) -> Result<Vec<(&'static str, String, u64)>, BoxError> {
    let mut out = Vec::new();
    for db in ["ledger", "search"] {
        let target = app_target(env, db).await?;
        let present = count_present(&target, ids).await?;
        out.push((db, target.uri, present));
    }
    Ok(out)
}

/// How many of `ids` the database behind `target` holds.
pub async fn count_present(target: &BoltTarget, ids: &[String]) -> Result<u64, BoxError> {
    let graph = target.connect(1).await?;
    let mut found = 0u64;
    for chunk in ids.chunks(500) {
        let q = neo4rs::query(
            "MATCH (c:Credex) WHERE c.credexID IN $ids RETURN count(DISTINCT c.credexID) AS n",
        )
        .param("ids", chunk.to_vec());
        let mut rows = graph.execute(q).await?;
        while let Some(r) = rows.next().await? {
            found += r.get::<i64>("n").unwrap_or(0) as u64;
        }
    }
    Ok(found)
}

/// Stops and removes every instance of the environment (and nothing else).
pub async fn teardown(env: &Environment) -> Result<usize, BoxError> {
    let provider = services(env).await?;
    let mut tags = Tags::new();
    tags.insert(tag::ENV.into(), env.name.clone());
    let found = provider.compute.find_by_tags(&tags).await?;
    for i in &found {
        provider.compute.terminate(&i.id).await?;
    }
    Ok(found.len())
}

/// Instances of `db` still present, with their colors.
pub async fn instances(env: &Environment, db: &str) -> Result<Vec<(InstanceId, String)>, BoxError> {
    let provider = services(env).await?;
    let mut tags = Tags::new();
    tags.insert(tag::ENV.into(), env.name.clone());
    tags.insert(tag::DATABASE.into(), db.into());
    Ok(provider
        .compute
        .find_by_tags(&tags)
        .await?
        .into_iter()
        .map(|i| {
            (
                i.id.clone(),
                i.tags.get(tag::COLOR).cloned().unwrap_or_default(),
            )
        })
        .collect())
}

/// Whether writes to `target` are accepted (a probe node created and deleted).
pub async fn accepts_writes(target: &BoltTarget) -> bool {
    let Ok(graph) = target.connect(1).await else {
        return false;
    };
    graph
        .run(neo4rs::query(
            "CREATE (p:CutoverProbe {at: 1}) WITH p DELETE p",
        ))
        .await
        .is_ok()
}
