//! `cutover digest`: print a graph fingerprint read over Bolt.

use super::OutputFormat;
use cutover::db::bolt::BoltTarget;
use cutover::failure::ErrorClass;
use cutover::ids::StepId;
use cutover::integrity::{
    self, Fingerprint, FingerprintOptions, IdentityKey, IntegrityError, SchemaInfo,
};
use cutover::progress::{ProgressHandle, WorkMeter};
use secrecy::SecretString;
use std::process::ExitCode;

/// Arguments of `cutover digest`.
#[derive(clap::Args, Debug)]
pub struct DigestArgs {
    /// Bolt URI of the server, e.g. bolt://127.0.0.1:7687.
    #[arg(long)]
    pub uri: String,
    /// User name.
    #[arg(long, default_value = "neo4j")]
    pub user: String,
    /// Name of the environment variable that holds the password (never the password).
    #[arg(long, value_name = "VAR")]
    pub password_env: String,
    /// Database name; the server's default database when omitted.
    #[arg(long)]
    pub database: Option<String>,
    /// Identity key LABEL.PROPERTY (repeatable): relationships name such endpoints by key.
    #[arg(long = "key", value_name = "LABEL.PROP")]
    pub keys: Vec<String>,
    /// Bolt sessions read in parallel.
    #[arg(long, default_value_t = 4)]
    pub partitions: usize,
    /// Split labels/types with more records than this into `id() % k` slices.
    #[arg(long, default_value_t = 250_000)]
    pub split_threshold: u64,
}

/// Runs `cutover digest`: exit 0 with the fingerprint on stdout; exit 2 with a one-line
/// error when the server refuses the connection, the password is wrong or the database is
/// unknown (or the input is bad); exit 1 for other failures.
pub async fn run(
    args: DigestArgs,
    output: OutputFormat,
    progress: ProgressHandle,
) -> anyhow::Result<ExitCode> {
    let password = match std::env::var(&args.password_env) {
        Ok(p) => SecretString::from(p),
        Err(_) => {
            eprintln!(
                "error: the password variable {} is not set; export it and run again",
                args.password_env
            );
            return Ok(ExitCode::from(2));
        }
    };
    let keys: Result<Vec<IdentityKey>, _> = args.keys.iter().map(|k| k.parse()).collect();
    let keys = match keys {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let target = BoltTarget {
        uri: args.uri.clone(),
        user: args.user.clone(),
        password,
        database: args.database.clone(),
    };
    let options = FingerprintOptions {
        identity_keys: keys,
        parallelism: args.partitions.max(1),
        split_threshold: args.split_threshold,
        ..FingerprintOptions::default()
    };
    let meter = WorkMeter::new(progress, StepId::new("digest"), "records");
    match integrity::fingerprint_target(&target, &options, &meter).await {
        Ok(fp) => {
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&fp)?),
                OutputFormat::Human => print!("{}", render_human(&fp)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let connect =
                matches!(&e, IntegrityError::Bolt(f) if is_connection_problem(&f.message, f.class));
            let failure: cutover::failure::Failure = e.into();
            let line = failure.message.lines().next().unwrap_or("").to_owned();
            eprintln!("error: {line}");
            if let Some(h) = &failure.hint {
                eprintln!("hint: {h}");
            }
            Ok(ExitCode::from(if connect { 2 } else { 1 }))
        }
    }
}

fn is_connection_problem(message: &str, class: ErrorClass) -> bool {
    let m = message.to_lowercase();
    m.contains("authentication failed")
        || m.contains("unknown database")
        || m.contains("server unavailable")
        || m.contains("connection refused")
        || (class == ErrorClass::Transient && m.contains("unavailable"))
}

/// The human summary of a fingerprint.
pub fn render_human(fp: &Fingerprint) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "content  {}", fp.content);
    let _ = writeln!(
        s,
        "engine   {}   format {}   encoding {}",
        fp.engine, fp.format, fp.encoding
    );
    let _ = writeln!(
        s,
        "nodes    {}   relationships {}",
        fp.nodes.count, fp.relationships.count
    );
    if !fp.identity_keys.is_empty() {
        let k: Vec<String> = fp.identity_keys.iter().map(ToString::to_string).collect();
        let _ = writeln!(s, "keys     {}", k.join(", "));
    }
    let _ = writeln!(s, "\nnode label sets:");
    for (name, g) in &fp.node_groups {
        let _ = writeln!(
            s,
            "  {:<40} {:>12}  {}",
            name,
            g.count,
            &g.sum.to_hex()[..16]
        );
    }
    let _ = writeln!(s, "relationship types:");
    for (name, g) in &fp.relationship_groups {
        let _ = writeln!(
            s,
            "  {:<40} {:>12}  {}",
            name,
            g.count,
            &g.sum.to_hex()[..16]
        );
    }
    match &fp.schema {
        SchemaInfo::Available {
            constraints,
            indexes,
        } => {
            let _ = writeln!(
                s,
                "schema: {} constraints, {} indexes",
                constraints.len(),
                indexes.len()
            );
        }
        SchemaInfo::NotAvailable { reason } => {
            let _ = writeln!(s, "{reason}");
        }
    }
    for w in &fp.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    let _ = writeln!(
        s,
        "read in {:.1}s ({} records/s, {} units, {} sessions)",
        fp.stats.elapsed_ms as f64 / 1000.0,
        fp.stats.records_per_second,
        fp.stats.units,
        fp.stats.parallelism
    );
    s
}
