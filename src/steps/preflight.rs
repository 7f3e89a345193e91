//! `db.preflight`: find blue, check it is healthy, versions compatible, app jobs idle, the
//! app's queries plan on Neo4j, backup location writable.

use super::db_access::{database_def, running_job, DbRef};
use super::kind::{step_inputs, OutputSpec, StepKind};
use super::traffic::app_url;
use super::{Decision, Outputs, Step, StepContext};
use crate::db::bolt::run_and_discard;
use crate::db::EngineKind;
use crate::failure::Failure;
use crate::ids::ObjectKey;
use crate::providers::{tag, Tags};
use crate::try_step;
use async_trait::async_trait;
use std::time::Duration;

pub static KINDS: &[StepKind] = &[
    StepKind {
        name: "db.preflight",
        summary: "find the live (blue) instance; check health, versions, idle app jobs and the backup location",
        inputs: PreflightInputs::INPUTS,
        outputs: OutputSpec::Fixed(&["instance_id", "bolt_uri", "version", "target_version", "engine", "queries_planned", "image"]),
        changes: "",
        compensation: None,
        build: || Box::new(Preflight),
    },
];

step_inputs! {
    struct PreflightInputs {
        database: String = required String, "database name in the environment";
        instance: Option<String> = optional String, "blue's instance id (default: found by tags)";
        target_version: Option<String> = optional String, "version green will run (default: the database's `version`)";
        wait_for_jobs: Option<bool> = optional Bool, "wait while DCO/MTQ run (default true)";
    }
}

/// Whether the `target` version is older than `running` for dotted versions (`5.26.0`,
/// `26.10.2`); non-numeric parts compare as 0. A shorter target names a series:
/// `26.10` accepts any `26.10.x`.
pub fn version_older(target: &str, running: &str) -> bool {
    let parse = |v: &str| {
        v.split(['.', '-'])
            .map(|p| p.parse::<u64>().unwrap_or(0))
            .collect::<Vec<_>>()
    };
    let (x, mut y) = (parse(target), parse(running));
    y.truncate(x.len());
    x < y
}

struct Preflight;

/// The live instance of `database`: the only one tagged for it, or the one the traffic
/// target points at.
async fn locate(ctx: &StepContext, database: &str) -> Result<String, Failure> {
    let providers = ctx.providers()?;
    let mut tags = Tags::new();
    tags.insert(tag::ENV.into(), ctx.environment().name.clone());
    tags.insert(tag::DATABASE.into(), database.into());
    let found = providers.compute.find_by_tags(&tags).await?;
    match found.len() {
        0 => Err(Failure::permanent(format!(
            "no instance of `{database}` found in environment `{}`",
            ctx.environment().name
        ))
        .with_hint("create it first (scripts/demo.sh does this locally), or pass `instance`")),
        1 => Ok(found[0].id.as_str().to_owned()),
        _ => {
            let url = app_url(ctx, database).await?.unwrap_or_default();
            found
                .iter()
                .find(|i| i.endpoints.get("bolt").map(|b| *b == url).unwrap_or(false))
                .map(|i| i.id.as_str().to_owned())
                .ok_or_else(|| {
                    let ids: Vec<&str> = found.iter().map(|i| i.id.as_str()).collect();
                    Failure::permanent(format!(
                        "{} instances of `{database}` ({}) and the traffic target points at none",
                        ids.len(),
                        ids.join(", ")
                    ))
                    .with_hint(
                        "pass `instance` explicitly, or remove the stale ones with `cutover gc`",
                    )
                })
        }
    }
}

#[async_trait]
impl Step for Preflight {
    async fn advance(&mut self, ctx: &StepContext) -> Decision {
        let inputs: PreflightInputs = try_step!(ctx.inputs());
        let def = try_step!(database_def(ctx, &inputs.database)).clone();
        let instance = match inputs.instance.clone() {
            Some(i) => i,
            None => try_step!(locate(ctx, &inputs.database).await),
        };
        let db = try_step!(DbRef::open(ctx, &inputs.database, &instance).await);
        try_step!(db.engine.health(&db.handle).await);
        let version = try_step!(db.engine.version(&db.handle).await);
        let target_version = inputs
            .target_version
            .clone()
            .or_else(|| def.version.clone())
            .unwrap_or_else(|| version.clone());
        if version_older(&target_version, &version) {
            return Decision::Fail(
                Failure::permanent(format!("{}: green would run {target_version}, older than blue's {version}; a restore into an older version is refused", inputs.database))
                    .with_hint("set the database's `version` to blue's version or newer"),
            );
        }
        if inputs.wait_for_jobs.unwrap_or(true) {
            if let Some(job) = try_step!(running_job(&db).await) {
                return Decision::wait(Duration::from_secs(2), format!("{}: the {job} job is running (active Daynode flag set); waiting for it to finish", inputs.database));
            }
        }
        // After the jobs wait, which repeats this advance every 2 s: planned once.
        let queries_planned = try_step!(plan_app_queries(&db).await);
        let providers = try_step!(ctx.providers());
        let probe = ObjectKey::new(format!(
            "backups/{}/preflight-probe-{}",
            ctx.environment().name,
            ctx.idempotency_token
        ));
        try_step!(providers
            .objects
            .put_bytes(&probe, b"cutover preflight probe".to_vec())
            .await
            .map_err(|f| Failure {
                hint: Some(
                    "make the backup location writable (free space, permissions) and run again"
                        .into()
                ),
                ..f
            }));
        try_step!(providers.objects.delete(&probe).await);
        // Blue's image: a rollback after the bake removed blue rebuilds it from this.
        let image = db.handle.instance.image.clone().unwrap_or_default();
        let mut out = Outputs::new();
        out.insert("instance_id".into(), instance.into());
        out.insert("image".into(), image.into());
        out.insert("bolt_uri".into(), db.bolt_uri().into());
        out.insert("version".into(), version.into());
        out.insert("target_version".into(), target_version.into());
        out.insert("engine".into(), def.kind().to_string().into());
        out.insert("queries_planned".into(), queries_planned.into());
        Decision::Done(out)
    }
}

/// Plans (`EXPLAIN`, which runs nothing) every query the run will later ask blue and
/// green: `same_answers` and their `params` queries, and `invariants`. A typo or an
/// unknown label function then fails here, before anything is provisioned or frozen,
/// instead of in the backup of a frozen blue. Returns how many were planned.
/// Caveat: Neo4j only (ArcadeDB's `EXPLAIN` over Bolt is untested; there the first run of
/// each query is the backup's). A query that plans but fails at run time (a division by zero
/// in the data) is still found by the backup.
async fn plan_app_queries(db: &DbRef) -> Result<usize, Failure> {
    if db.def.kind() != EngineKind::Neo4j {
        return Ok(0);
    }
    let mut queries: Vec<(String, String)> = Vec::new();
    for q in db.def.same_answers.clone() {
        if let Some(params) = &q.params {
            queries.push((
                format!("same_answers `{}` (params)", q.name),
                params.clone(),
            ));
        }
        queries.push((format!("same_answers `{}`", q.name), q.cypher));
    }
    for i in db.def.invariants.clone() {
        queries.push((format!("invariant `{}`", i.name), i.cypher));
    }
    if queries.is_empty() {
        return Ok(0);
    }
    let target = db.admin_target();
    let graph = target.connect(1).await?;
    for (what, cypher) in &queries {
        run_and_discard(&graph, &target.uri, &format!("EXPLAIN {cypher}"))
            .await
            .map_err(|f| {
                let f = f.context(format_args!(
                    "{}: {what} does not plan on blue",
                    db.def.name
                ));
                if f.class == crate::failure::ErrorClass::Permanent {
                    f.with_hint("fix the query in the environment file; nothing was changed")
                } else {
                    f
                }
            })?;
    }
    Ok(queries.len())
}

#[cfg(test)]
mod tests {
    use super::version_older;

    #[test]
    fn never_restore_into_an_older_version() {
        assert!(version_older("5.25.1", "5.26.0"));
        assert!(!version_older("5.26.0", "5.26.0"));
        assert!(!version_older("26.10.2", "26.10"));
        assert!(!version_older("26.10", "26.10.2"));
        assert!(version_older("26.9", "26.10.2"));
        assert!(version_older("26.9", "26.10.1"));
    }
}
