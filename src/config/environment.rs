//! Environment files: where things are. Provider, state directory, databases and their
//! engines, provider settings, and free-form `vars` runbooks may refer to as `env.…`.
//!
//! ```toml
//! name = "local"
//! provider = "local"                 # local | aws
//! state_dir = "../.cutover/local"    # relative to this file; CUTOVER_STATE_DIR overrides
//!
//! [databases.ledger]
//! engine = "arcadedb"                # arcadedb | neo4j
//! edition = "community"              # community | enterprise
//! ```

use super::source::{Problems, SourceFile};
use super::toml_read::{table_to_json, to_json, type_name, value_type_name, Spanned, TomlReader};
use crate::db::neo4j::Neo4jSettings;
use crate::db::{EngineKind, EngineSettings};
use crate::ids::{DatabaseName, SecretName};
use crate::integrity::answers::SameAnswersQuery;
use crate::integrity::fingerprint::IdentityKey;
use crate::integrity::invariants::Invariant;
use crate::providers::aws::config::AwsEnvironment;
use crate::providers::terraform::TerraformSettings;
use crate::providers::traffic::config::NameOverrides;
use crate::providers::traffic::TrafficKind;
use crate::providers::{EcsService, TrafficConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Local,
    Aws,
}

pub use crate::db::Edition;

/// One database of the environment, every setting read and checked at load (so `cutover
/// plan` reports a bad one with its file:line:col before anything runs).
#[derive(Clone, Debug)]
pub struct DatabaseDef {
    pub name: DatabaseName,
    /// The engine, with the settings the environment gives it (`neo4j = { … }`).
    pub engine: EngineSettings,
    pub edition: Edition,
    /// The database's name inside the server (`database`, default: its name here).
    pub database: String,
    /// The application's user (`user`, default `cutover_app`).
    pub user: String,
    /// The secret holding the application's password (`password_secret`; unset: the run
    /// uses `<env>/<database>/app-password`, see [`DatabaseDef::app_password_secret`]).
    pub password_secret: Option<SecretName>,
    /// The secret holding new instances' administrator password (`admin_secret`).
    pub admin_secret: Option<SecretName>,
    /// The engine version green runs (`version`, default: blue's).
    pub version: Option<String>,
    /// The image new instances start from (`image`).
    pub image: Option<String>,
    /// The server's heap on the local provider (`heap = "320m"` or `"1g"`), in MiB.
    pub heap_mb: Option<u64>,
    /// The provider's `instance` table, passed to it when an instance is created (on
    /// aws: EC2 settings, whose keys and types are checked at load).
    pub instance: serde_json::Map<String, serde_json::Value>,
    /// Nodes with these labels are identified by these properties in fingerprints.
    pub identity_keys: Vec<IdentityKey>,
    /// The application's invariants (`invariants = [{name, cypher, expect}]`).
    pub invariants: Vec<Invariant>,
    /// The application's queries whose answers must be the same on blue and green.
    pub same_answers: Vec<SameAnswersQuery>,
}

impl DatabaseDef {
    pub fn kind(&self) -> EngineKind {
        self.engine.kind()
    }

    /// The secret holding the application's password: `password_secret`, else
    /// `<environment>/<database>/app-password`.
    pub fn app_password_secret(&self, environment: &str) -> SecretName {
        self.password_secret
            .clone()
            .unwrap_or_else(|| SecretName::new(format!("{environment}/{}/app-password", self.name)))
    }
}

/// A validated environment.
#[derive(Clone, Debug)]
pub struct Environment {
    pub source: SourceFile,
    pub name: String,
    pub provider: ProviderKind,
    /// Where journals, leases and (for `local`) instances, objects and secrets live.
    pub state_dir: PathBuf,
    pub databases: BTreeMap<DatabaseName, DatabaseDef>,
    /// `[traffic]`, typed (defaults when absent).
    pub traffic: TrafficConfig,
    /// `[aws]`, typed: present exactly when the provider is `aws`.
    pub aws: Option<AwsEnvironment>,
    /// `[terraform]`, typed: the state backend of the Terraform stages.
    pub terraform: Option<TerraformSettings>,
    /// The whole file as JSON: what `${{ env.… }}` references resolve against.
    pub document: serde_json::Value,
}

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "provider",
    "state_dir",
    "local",
    "aws",
    "databases",
    "vars",
    "traffic",
    "backup",
    "invariants",
    "terraform",
];
const DB_KEYS: &[&str] = &[
    "engine",
    "edition",
    "version",
    "database",
    "user",
    "password_secret",
    "admin_secret",
    "heap",
    "instance",
    "identity_keys",
    "invariants",
    "same_answers",
    "image",
    "bolt_uri",
    "seed",
    "neo4j",
];

impl Environment {
    /// Loads `ENV`: a path to a TOML file, or a name looked up as `environments/NAME.toml`.
    pub fn load(env: &str) -> Result<Environment, Problems> {
        let path = Self::resolve_path(env);
        Self::parse(SourceFile::read(&path)?)
    }

    /// The file `ENV` refers to.
    pub fn resolve_path(env: &str) -> PathBuf {
        let as_path = Path::new(env);
        if env.ends_with(".toml") || as_path.components().count() > 1 {
            as_path.to_path_buf()
        } else {
            Path::new("environments").join(format!("{env}.toml"))
        }
    }

    pub fn parse(source: SourceFile) -> Result<Environment, Problems> {
        let doc = TomlReader::parse(&source)?;
        let mut r = TomlReader::new(&source);
        let root = doc.as_table();
        r.check_keys(root, TOP_KEYS, "the environment");
        let name = r.string(root, "name", true, "the environment", Some(0..0));
        let provider = r
            .string(root, "provider", true, "the environment", Some(0..0))
            .and_then(|p| match p.value.as_str() {
                "local" => Some(ProviderKind::Local),
                "aws" => Some(ProviderKind::Aws),
                other => {
                    r.problem_with_hint(
                        p.span,
                        format!("unknown provider `{other}`"),
                        "use `local` or `aws`",
                    );
                    None
                }
            });
        let state_dir = r.string(root, "state_dir", false, "the environment", None);
        let databases = read_databases(&mut r, root);
        for section in ["local", "aws", "vars", "traffic", "backup", "terraform"] {
            if let Some(item) = root.get(section) {
                if !item.is_table_like() {
                    r.problem(
                        item.span(),
                        format!("`{section}` must be a table, found {}", type_name(item)),
                    );
                }
            }
        }
        let traffic = root
            .get("traffic")
            .map(|traffic| {
                let names: Vec<String> = databases.keys().map(|d| d.as_str().to_owned()).collect();
                read_traffic_section(&mut r, traffic, provider, &names)
            })
            .unwrap_or_default();
        let terraform = root
            .get("terraform")
            .and_then(|terraform| TerraformSettings::read(&mut r, terraform));
        let aws = match (provider, root.get("aws")) {
            (Some(ProviderKind::Aws), None) => {
                r.problem_with_hint(
                    Some(0..0),
                    "provider is `aws` but there is no [aws] section",
                    "add [aws] with region and bucket",
                );
                None
            }
            (Some(ProviderKind::Aws), Some(aws)) => {
                check_aws_databases(&mut r, root);
                AwsEnvironment::read(&mut r, aws)
            }
            (Some(ProviderKind::Local), _) => {
                check_local_databases(&mut r, root);
                None
            }
            _ => None,
        };
        let base = source
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let state_dir = match std::env::var_os("CUTOVER_STATE_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => match state_dir {
                Some(Spanned { value, .. }) => base.join(value),
                None => base
                    .join(".cutover")
                    .join(name.as_ref().map(|n| n.value.as_str()).unwrap_or("default")),
            },
        };
        let state_dir = std::path::absolute(&state_dir).unwrap_or(state_dir);
        let document = table_to_json(root);
        let problems = r.problems;
        match (name, provider) {
            (Some(name), Some(provider)) if problems.is_empty() => Ok(Environment {
                source,
                name: name.value,
                provider,
                state_dir,
                databases,
                traffic,
                aws,
                terraform,
                document,
            }),
            _ => Err(problems),
        }
    }

    /// `[aws]`, or a permanent failure naming the fix (an environment of another
    /// provider has none).
    pub fn aws_section(&self) -> Result<&AwsEnvironment, crate::failure::Failure> {
        self.aws.as_ref().ok_or_else(|| {
            crate::failure::Failure::permanent(format!(
                "{}: provider is `aws` but there is no [aws] section",
                self.source.path.display()
            ))
            .with_hint("add [aws] with region and bucket")
        })
    }

    /// `[terraform]`, or a permanent failure naming the fix.
    pub fn terraform_section(&self) -> Result<&TerraformSettings, crate::failure::Failure> {
        self.terraform.as_ref().ok_or_else(|| {
            crate::failure::Failure::permanent(format!(
                "environment `{}` has no [terraform] table, so Terraform has no state backend",
                self.name
            ))
            .with_hint(
                "add [terraform] with bucket, region (and key_prefix, endpoint for an emulator) to the environment file",
            )
        })
    }

    /// The value at `path` inside the environment document (`env.a.b.c`).
    pub fn lookup(&self, path: &[String]) -> Option<&serde_json::Value> {
        path.iter()
            .try_fold(&self.document, |v, key| v.get(key.as_str()))
    }
}

/// `[traffic]`: where the application reads its connection settings (`kind`, the secret
/// or the ECS service, the names of each database's settings), the ECS service to
/// restart after a switch (both names or neither) and the application's health URL.
/// `databases` are the environment's database names: `[traffic.keys]` and
/// `[traffic.names]` may name only those.
fn read_traffic_section(
    r: &mut TomlReader<'_>,
    traffic: &toml_edit::Item,
    provider: Option<ProviderKind>,
    databases: &[String],
) -> TrafficConfig {
    let mut config = TrafficConfig::default();
    let Some(t) = traffic.as_table_like() else {
        return config; // reported as "must be a table" above
    };
    let context = "[traffic]";
    r.check_keys(
        t,
        &[
            "kind",
            "secret",
            "keys",
            "names",
            "ecs_cluster",
            "ecs_service",
            "container",
            "task_family",
            "health_url",
        ],
        context,
    );
    if let Some(url) = r.string(t, "health_url", false, context, None) {
        if url.value.starts_with("http://") || url.value.starts_with("https://") {
            config.health_url = Some(url.value);
        } else {
            r.problem_with_hint(
                url.span,
                format!(
                    "[traffic] health_url `{}` is not an http:// or https:// URL",
                    url.value
                ),
                "name the application's health endpoint, e.g. \"https://app.internal/health\"",
            );
        }
    }
    let kinds = || {
        TrafficKind::ALL
            .iter()
            .map(|k| format!("\"{}\"", k.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let kind_span = match r.string(t, "kind", false, context, None) {
        Some(kind) => {
            match TrafficKind::parse(&kind.value) {
                Some(k) => config.kind = k,
                None => r.problem_with_hint(
                    kind.span.clone(),
                    format!("[traffic] kind `{}` is not supported", kind.value),
                    format!("use one of {}", kinds()),
                ),
            }
            kind.span
        }
        None => t.get("kind").and_then(|k| k.span()),
    };
    if provider == Some(ProviderKind::Local) && !config.kind.works_locally() {
        r.problem_with_hint(
            kind_span.clone(),
            format!(
                "[traffic] kind `{}` needs the aws provider",
                config.kind.as_str()
            ),
            "use kind = \"secret\" on a local environment",
        );
    }
    let only_for = |r: &mut TomlReader<'_>, key: &str, kind: TrafficKind, have: TrafficKind| {
        if kind != have {
            if let Some(item) = t.get(key) {
                r.problem_with_hint(
                    item.span(),
                    format!(
                        "[traffic] {key} applies to kind = \"{}\" only; this one is \"{}\"",
                        kind.as_str(),
                        have.as_str()
                    ),
                    format!("remove {key}, or set kind = \"{}\"", kind.as_str()),
                );
            }
        }
    };
    only_for(r, "secret", TrafficKind::Secret, config.kind);
    only_for(r, "keys", TrafficKind::Secret, config.kind);
    only_for(r, "container", TrafficKind::EcsEnvironment, config.kind);
    config.secret = r
        .string(t, "secret", false, context, None)
        .map(|s| SecretName::new(s.value));
    config.container = r
        .string(t, "container", false, context, None)
        .map(|c| c.value);
    r.string(t, "task_family", false, context, None);
    let known_database = |r: &mut TomlReader<'_>, table: &str, database: &str, span| {
        if databases.iter().any(|d| d == database) {
            return true;
        }
        let hint = if databases.is_empty() {
            "the environment has no [databases.*] yet; add the database first".to_owned()
        } else {
            format!("name one of: {}", databases.join(", "))
        };
        r.problem_with_hint(
            span,
            format!("[traffic.{table}] names `{database}`, which is not one of the environment's databases"),
            hint,
        );
        false
    };
    let keys_hint = "write [traffic.keys] with one `database = \"prefix\"` per database";
    if let Some(k) = r.sub_table(t, "keys", "`keys` in [traffic]", keys_hint) {
        for (database, item) in k.iter() {
            let Some(prefix) = r.string(k, database, false, "[traffic.keys]", None) else {
                continue;
            };
            if known_database(r, "keys", database, item.span()) {
                config
                    .key_prefixes
                    .insert(database.to_owned(), prefix.value);
            }
        }
    }
    let names_hint = "write one [traffic.names.DATABASE] table per database whose names differ";
    if let Some(n) = r.sub_table(t, "names", "`names` in [traffic]", names_hint) {
        for (database, item) in n.iter() {
            if !known_database(r, "names", database, item.span()) {
                continue;
            }
            let what = format!("`{database}` in [traffic.names]");
            let one_hint = "write url = …, user = …, password = … (any of them)";
            let Some(one) = r.sub_table(n, database, &what, one_hint) else {
                continue;
            };
            let context = format!("[traffic.names.{database}]");
            r.check_keys(one, &["url", "user", "password"], &context);
            let mut get = |key| r.string(one, key, false, &context, None).map(|v| v.value);
            let overrides = NameOverrides {
                url: get("url"),
                user: get("user"),
                password: get("password"),
            };
            config.names.insert(database.to_owned(), overrides);
        }
    }
    let cluster = r.string(t, "ecs_cluster", false, context, None);
    let service = r.string(t, "ecs_service", false, context, None);
    match (cluster, service) {
        (Some(c), None) => r.problem_with_hint(
            c.span,
            "[traffic] has ecs_cluster but no ecs_service",
            "name the service to restart after a switch, or remove ecs_cluster",
        ),
        (None, Some(s)) => r.problem_with_hint(
            s.span,
            "[traffic] has ecs_service but no ecs_cluster",
            "name the service's cluster, or remove ecs_service",
        ),
        (Some(c), Some(s)) => {
            config.app_service = Some(EcsService {
                cluster: c.value,
                service: s.value,
            })
        }
        (None, None) if config.kind == TrafficKind::EcsEnvironment => r.problem_with_hint(
            kind_span,
            "[traffic] kind = \"ecs-environment\" needs ecs_cluster and ecs_service",
            "name the service whose task definition the application's settings are in",
        ),
        (None, None) => {}
    }
    config
}

/// On aws, each database's `instance` table is EC2 settings (checked here so a typo fails
/// the plan, not the provision step), and `heap` (a local-provider setting) is refused.
fn check_aws_databases(r: &mut TomlReader<'_>, root: &dyn toml_edit::TableLike) {
    let Some(dbs) = root.get("databases").and_then(|d| d.as_table_like()) else {
        return;
    };
    for (name, def) in dbs.iter() {
        let Some(t) = def.as_table_like() else {
            continue;
        };
        if t.get("heap").is_some() {
            r.problem_with_hint(
                TomlReader::key_span(t, "heap"),
                format!("database `{name}`: `heap` is a local-provider setting"),
                "on aws, memory is set in the AMI's neo4j.conf; remove `heap`",
            );
        }
        // Not a table: reported by read_databases, for every provider.
        if let Some(it) = t.get("instance").and_then(|i| i.as_table_like()) {
            let context = format!("database `{name}` instance");
            r.check_keys(
                it,
                crate::providers::aws::ec2_compute::INSTANCE_TABLE_KEYS,
                &context,
            );
            for key in ["type", "instance_type", "volume_type", "subnet_id"] {
                r.string(it, key, false, &context, None);
            }
            r.unsigned(it, "volume_gb", &context);
            r.string_list(it, "security_group_ids", &context);
            if let Some(v) = it.get("volume_type").and_then(|v| v.as_str()) {
                if v != "gp3" {
                    r.problem_with_hint(
                        it.get("volume_type").and_then(|i| i.span()),
                        format!("{context}: volume_type `{v}` is not supported"),
                        "cutover creates gp3 root volumes; remove volume_type or set \"gp3\"",
                    );
                }
            }
            if let Some(e) = it.get("encrypted") {
                if e.as_bool() != Some(true) {
                    r.problem_with_hint(
                        e.span(),
                        format!("{context}: encrypted must be true"),
                        "cutover always encrypts root volumes; remove `encrypted` or set it to true",
                    );
                }
            }
        }
    }
}

/// On the local provider, each database's `instance` table is the local compute's
/// settings ([`INSTANCE_TABLE_KEYS`](crate::providers::local::compute::INSTANCE_TABLE_KEYS)),
/// checked here so a typo or a wrong type fails the plan with its line, not the
/// provision step.
fn check_local_databases(r: &mut TomlReader<'_>, root: &dyn toml_edit::TableLike) {
    let Some(dbs) = root.get("databases").and_then(|d| d.as_table_like()) else {
        return;
    };
    for (name, def) in dbs.iter() {
        // Not a table: reported by read_databases, for every provider.
        let Some(it) = def
            .as_table_like()
            .and_then(|t| t.get("instance"))
            .and_then(|i| i.as_table_like())
        else {
            continue;
        };
        let context = format!("database `{name}` instance");
        r.check_keys(
            it,
            crate::providers::local::compute::INSTANCE_TABLE_KEYS,
            &context,
        );
        for key in ["bolt_port", "http_port"] {
            if let Some(port) = r.unsigned(it, key, &context) {
                if port.value == 0 || port.value > u64::from(u16::MAX) {
                    r.problem(
                        port.span,
                        format!("{context}: `{key}` {} is not a port number", port.value),
                    );
                }
            }
        }
        r.string_list(it, "databases", &context);
    }
}

/// `[[databases.NAME.KEY]]` (or `KEY = [{…}, …]`): a list of tables with `required`
/// keys (strings, but `expect`, which may be any value), `optional` ones (`ordered` a
/// boolean, the others strings) and no other, each `name` once. Checked at load, so a
/// malformed query list is reported by `cutover plan`, not by a step after the freeze.
fn check_query_list(
    r: &mut TomlReader<'_>,
    db: &dyn toml_edit::TableLike,
    key: &str,
    db_context: &str,
    required: &[&str],
    optional: &[&str],
) {
    let Some(item) = db.get(key) else {
        return;
    };
    let entries: Vec<(&dyn toml_edit::TableLike, Option<std::ops::Range<usize>>)> = match item {
        toml_edit::Item::ArrayOfTables(a) => a
            .iter()
            .map(|t| (t as &dyn toml_edit::TableLike, t.span()))
            .collect(),
        toml_edit::Item::Value(toml_edit::Value::Array(a)) => {
            let mut out = Vec::new();
            for v in a.iter() {
                match v.as_inline_table() {
                    Some(t) => out.push((t as &dyn toml_edit::TableLike, v.span())),
                    None => r.problem(
                        v.span(),
                        format!(
                            "each entry of `{key}` in {db_context} must be a table {{ {} }}, found {}",
                            required.join(", "),
                            value_type_name(v)
                        ),
                    ),
                }
            }
            out
        }
        other => {
            r.problem_with_hint(
                other.span(),
                format!(
                    "`{key}` in {db_context} must be a list of tables, found {}",
                    type_name(other)
                ),
                format!(
                    "write [[databases.NAME.{key}]] tables, each with {}",
                    required.join(", ")
                ),
            );
            return;
        }
    };
    let allowed: Vec<&str> = required.iter().chain(optional).copied().collect();
    let mut names = std::collections::BTreeSet::new();
    for (i, (entry, span)) in entries.into_iter().enumerate() {
        let context = format!("{key} entry {} of {db_context}", i + 1);
        r.check_keys(entry, &allowed, &context);
        for &k in &allowed {
            let is_required = required.contains(&k);
            match k {
                "expect" => {
                    if entry.get(k).is_none() {
                        r.problem(
                            span.clone(),
                            format!("{context} is missing required key `expect`"),
                        );
                    }
                }
                "ordered" => {
                    if let Some(v) = entry.get(k) {
                        if v.as_bool().is_none() {
                            r.problem(
                                v.span(),
                                format!(
                                    "`ordered` in {context} must be true or false, found {}",
                                    type_name(v)
                                ),
                            );
                        }
                    }
                }
                _ => {
                    let value = r.string(entry, k, is_required, &context, span.clone());
                    if let Some(name) = value.filter(|_| k == "name") {
                        if !names.insert(name.value.clone()) {
                            r.problem(
                                name.span,
                                format!("{context}: `{}` is listed twice in `{key}`", name.value),
                            );
                        }
                    }
                }
            }
        }
    }
}

fn read_databases(
    r: &mut TomlReader<'_>,
    root: &dyn toml_edit::TableLike,
) -> BTreeMap<DatabaseName, DatabaseDef> {
    let mut out = BTreeMap::new();
    let Some(item) = root.get("databases") else {
        return out;
    };
    let Some(table) = item.as_table_like() else {
        r.problem(
            item.span(),
            format!("`databases` must be a table, found {}", type_name(item)),
        );
        return out;
    };
    for (name, def) in table.iter() {
        let span = TomlReader::key_span(table, name);
        let context = format!("database `{name}`");
        let Some(t) = def.as_table_like() else {
            r.problem(span, format!("{context} must be a table"));
            continue;
        };
        r.check_keys(t, DB_KEYS, &context);
        let engine = r
            .string(t, "engine", true, &context, span.clone())
            .and_then(|e| match e.value.as_str() {
                "neo4j" => Some(EngineKind::Neo4j),
                "arcadedb" => Some(EngineKind::Arcadedb),
                other => {
                    r.problem_with_hint(
                        e.span,
                        format!("{context} has unknown engine `{other}`"),
                        "use `neo4j` or `arcadedb`",
                    );
                    None
                }
            });
        let edition = match r.string(t, "edition", false, &context, None) {
            None => Some(Edition::Community),
            Some(e) => match e.value.parse::<Edition>() {
                Ok(edition) => Some(edition),
                Err(_) => {
                    r.problem_with_hint(
                        e.span,
                        format!("{context} has unknown edition `{}`", e.value),
                        "use `community` or `enterprise`",
                    );
                    None
                }
            },
        };
        let engine = match (engine, edition) {
            (Some(EngineKind::Neo4j), Some(edition)) => {
                Neo4jSettings::read(r, edition, t.get("neo4j"), &context).map(EngineSettings::Neo4j)
            }
            (Some(EngineKind::Arcadedb), _) => {
                if t.get("neo4j").is_some() {
                    r.problem_with_hint(
                        TomlReader::key_span(t, "neo4j"),
                        format!("{context}: a `neo4j` table on an arcadedb database"),
                        "remove it, or set engine = \"neo4j\"",
                    );
                }
                Some(EngineSettings::Arcadedb)
            }
            _ => None,
        };
        let text = |r: &mut TomlReader<'_>, key: &str| {
            r.string(t, key, false, &context, None).map(|s| s.value)
        };
        let database = text(r, "database");
        let user = text(r, "user");
        let password_secret = text(r, "password_secret").map(SecretName::new);
        let admin_secret = text(r, "admin_secret").map(SecretName::new);
        let version = text(r, "version");
        let image = text(r, "image");
        let heap_mb =
            r.string(t, "heap", false, &context, None).and_then(|heap| {
                match parse_heap_mb(&heap.value) {
                    Some(mb) => Some(mb),
                    None => {
                        r.problem_with_hint(
                            heap.span,
                            format!("{context}: heap `{}` is not a size", heap.value),
                            "write megabytes or gigabytes, e.g. heap = \"320m\" or \"1g\"",
                        );
                        None
                    }
                }
            });
        let instance = match t.get("instance") {
            None => serde_json::Map::new(),
            Some(item) => match to_json(item) {
                Some(serde_json::Value::Object(map)) => map,
                _ => {
                    r.problem(
                        item.span(),
                        format!("{context}: `instance` must be a table"),
                    );
                    serde_json::Map::new()
                }
            },
        };
        let identity_keys = r
            .string_list(t, "identity_keys", &context)
            .into_iter()
            .filter_map(|key| match key.value.parse::<IdentityKey>() {
                Ok(k) => Some(k),
                Err(e) => {
                    r.problem_with_hint(
                        key.span,
                        format!("{context}: {e}"),
                        "name a label and its identifying property, e.g. \"Member.memberID\"",
                    );
                    None
                }
            })
            .collect();
        let invariants = query_list(
            r,
            t,
            "invariants",
            &context,
            &["name", "cypher", "expect"],
            &[],
        );
        let same_answers = query_list(
            r,
            t,
            "same_answers",
            &context,
            &["name", "cypher"],
            &["params", "ordered"],
        );
        if let (Some(engine), Some(edition)) = (engine, edition) {
            let name = DatabaseName::new(name);
            out.insert(
                name.clone(),
                DatabaseDef {
                    database: database.unwrap_or_else(|| name.as_str().to_owned()),
                    name,
                    engine,
                    edition,
                    user: user.unwrap_or_else(|| "cutover_app".into()),
                    password_secret,
                    admin_secret,
                    version,
                    image,
                    heap_mb,
                    instance,
                    identity_keys,
                    invariants,
                    same_answers,
                },
            );
        }
    }
    out
}

/// `"320m"` → 320, `"1g"` → 1024 (any case; a bare number is megabytes).
fn parse_heap_mb(text: &str) -> Option<u64> {
    let h = text.trim().to_ascii_lowercase();
    let mb = match h.strip_suffix('g') {
        Some(g) => g.trim().parse::<u64>().ok()?.checked_mul(1024)?,
        None => h
            .strip_suffix('m')
            .unwrap_or(&h)
            .trim()
            .parse::<u64>()
            .ok()?,
    };
    (mb > 0).then_some(mb)
}

/// The list `key` of a database as typed entries, after [`check_query_list`] found its
/// shape right (when it did not, its problems are recorded and the list is empty).
fn query_list<T: serde::de::DeserializeOwned>(
    r: &mut TomlReader<'_>,
    db: &dyn toml_edit::TableLike,
    key: &str,
    context: &str,
    required: &[&str],
    optional: &[&str],
) -> Vec<T> {
    let before = r.problems.len();
    check_query_list(r, db, key, context, required, optional);
    let Some(item) = db.get(key).filter(|_| r.problems.len() == before) else {
        return Vec::new();
    };
    match to_json(item).map(serde_json::from_value::<Vec<T>>) {
        Some(Ok(list)) => list,
        Some(Err(e)) => {
            r.problem(item.span(), format!("`{key}` in {context}: {e}"));
            Vec::new()
        }
        None => Vec::new(),
    }
}
