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
use super::toml_read::{table_to_json, type_name, value_type_name, Spanned, TomlReader};
use crate::db::EngineKind;
use crate::ids::DatabaseName;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Local,
    Aws,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Edition {
    Community,
    Enterprise,
}

/// One database of the environment.
#[derive(Clone, Debug)]
pub struct DatabaseDef {
    pub name: DatabaseName,
    pub engine: EngineKind,
    pub edition: Edition,
    /// The whole `[databases.NAME]` table, for provider- and engine-specific settings.
    pub settings: serde_json::Value,
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
        if let Some(traffic) = root.get("traffic") {
            check_traffic_section(&mut r, traffic);
        }
        if let Some(terraform) = root.get("terraform") {
            check_terraform_section(&mut r, terraform);
        }
        match (provider, root.get("aws")) {
            (Some(ProviderKind::Aws), None) => r.problem_with_hint(
                Some(0..0),
                "provider is `aws` but there is no [aws] section",
                "add [aws] with region and bucket",
            ),
            (Some(ProviderKind::Aws), Some(aws)) => {
                check_aws_section(&mut r, aws);
                check_aws_databases(&mut r, root);
            }
            _ => {}
        }
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
                document,
            }),
            _ => Err(problems),
        }
    }

    /// The value at `path` inside the environment document (`env.a.b.c`).
    pub fn lookup(&self, path: &[String]) -> Option<&serde_json::Value> {
        path.iter()
            .try_fold(&self.document, |v, key| v.get(key.as_str()))
    }
}

/// `[traffic]`: where the application reads its connection settings, and the ECS
/// service to restart after a switch (both names or neither).
fn check_traffic_section(r: &mut TomlReader<'_>, traffic: &toml_edit::Item) {
    let Some(t) = traffic.as_table_like() else {
        return; // reported as "must be a table" above
    };
    let context = "[traffic]";
    r.check_keys(
        t,
        &[
            "kind",
            "secret",
            "keys",
            "ecs_cluster",
            "ecs_service",
            "task_family",
            "health_url",
        ],
        context,
    );
    if let Some(url) = r.string(t, "health_url", false, context, None) {
        if !(url.value.starts_with("http://") || url.value.starts_with("https://")) {
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
    if let Some(kind) = r.string(t, "kind", false, context, None) {
        if kind.value != "secret" {
            r.problem_with_hint(
                kind.span,
                format!("[traffic] kind `{}` is not supported", kind.value),
                "use kind = \"secret\" (a JSON secret the application reads)",
            );
        }
    }
    for key in ["secret", "task_family"] {
        r.string(t, key, false, context, None);
    }
    let cluster = r.string(t, "ecs_cluster", false, context, None);
    let service = r.string(t, "ecs_service", false, context, None);
    match (&cluster, &service) {
        (Some(c), None) => r.problem_with_hint(
            c.span.clone(),
            "[traffic] has ecs_cluster but no ecs_service",
            "name the service to restart after a switch, or remove ecs_cluster",
        ),
        (None, Some(s)) => r.problem_with_hint(
            s.span.clone(),
            "[traffic] has ecs_service but no ecs_cluster",
            "name the service's cluster, or remove ecs_service",
        ),
        _ => {}
    }
}

/// `[terraform]`: the state backend of the Terraform stages (S3, or an emulator at
/// `endpoint`), the binary, and resources no plan may destroy.
fn check_terraform_section(r: &mut TomlReader<'_>, terraform: &toml_edit::Item) {
    let Some(t) = terraform.as_table_like() else {
        return; // reported as "must be a table" above
    };
    let context = "[terraform]";
    r.check_keys(
        t,
        crate::providers::terraform::TERRAFORM_SECTION_KEYS,
        context,
    );
    r.string(t, "bucket", true, context, terraform.span());
    r.string(t, "region", true, context, terraform.span());
    r.string(t, "binary", false, context, None);
    if let Some(prefix) = r.string(t, "key_prefix", false, context, None) {
        if prefix.value.trim_matches('/').is_empty() {
            r.problem_with_hint(
                prefix.span,
                "[terraform] key_prefix is empty",
                "name the folder of the state objects, e.g. key_prefix = \"terraform\"",
            );
        }
    }
    if let Some(endpoint) = r.string(t, "endpoint", false, context, None) {
        if !(endpoint.value.starts_with("http://") || endpoint.value.starts_with("https://")) {
            r.problem_with_hint(
                endpoint.span,
                format!("[terraform] endpoint `{}` is not a URL", endpoint.value),
                "write it as http://HOST:PORT (an emulator) or https://…, or remove it for AWS",
            );
        }
    }
    r.string_list(t, "protect", context);
}

/// `[aws]`: known keys, the required ones present, every value of the right type.
fn check_aws_section(r: &mut TomlReader<'_>, aws: &toml_edit::Item) {
    let Some(t) = aws.as_table_like() else {
        return; // reported as "must be a table" above
    };
    let context = "[aws]";
    r.check_keys(t, crate::providers::aws::config::AWS_SECTION_KEYS, context);
    r.string(t, "region", true, context, aws.span());
    r.string(t, "bucket", true, context, aws.span());
    for key in crate::providers::aws::config::AWS_SECTION_KEYS {
        match *key {
            "region" | "bucket" => {}
            "security_group_ids" => {
                r.string_list(t, key, context);
            }
            "ssm_delivery_timeout" => {
                r.duration(t, key, context);
            }
            _ => {
                r.string(t, key, false, context, None);
            }
        }
    }
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
        if let Some(instance) = t.get("instance") {
            match instance.as_table_like() {
                Some(it) => {
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
                None => r.problem(
                    instance.span(),
                    format!("database `{name}`: `instance` must be a table"),
                ),
            }
        }
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
        check_query_list(
            r,
            t,
            "invariants",
            &context,
            &["name", "cypher", "expect"],
            &[],
        );
        check_query_list(
            r,
            t,
            "same_answers",
            &context,
            &["name", "cypher"],
            &["params", "ordered"],
        );
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
            Some(e) => match e.value.as_str() {
                "community" => Some(Edition::Community),
                "enterprise" => Some(Edition::Enterprise),
                other => {
                    r.problem_with_hint(
                        e.span,
                        format!("{context} has unknown edition `{other}`"),
                        "use `community` or `enterprise`",
                    );
                    None
                }
            },
        };
        if let (Some(engine), Some(edition)) = (engine, edition) {
            let name = DatabaseName::new(name);
            out.insert(
                name.clone(),
                DatabaseDef {
                    name,
                    engine,
                    edition,
                    settings: table_to_json(t),
                },
            );
        }
    }
    out
}
