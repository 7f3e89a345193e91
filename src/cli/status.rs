//! `cutover status`: what a run did, step by step, from its journal. Outputs whose
//! names suggest a secret are redacted even though steps never journal secrets.

use super::OutputFormat;
use cutover::config::Environment;
use cutover::engine::run;
use cutover::engine::state::{RunView, StepStatus};
use cutover::ids::RunId;

const SECRET_WORDS: &[&str] = &["password", "secret", "credential", "passwd", "private"];

/// Replaces values of secret-looking keys, recursively.
pub fn redact(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let lower = k.to_lowercase();
                    if SECRET_WORDS.iter().any(|w| lower.contains(w)) {
                        (k.clone(), serde_json::Value::String("[redacted]".into()))
                    } else {
                        (k.clone(), redact(v))
                    }
                })
                .collect(),
        ),
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(redact).collect())
        }
        other => other.clone(),
    }
}

pub async fn status_command(run_id: Option<String>, env: &str, output: OutputFormat) -> u8 {
    let env = match Environment::load(env) {
        Ok(e) => e,
        Err(problems) => {
            eprint!("error: {problems}");
            return 2;
        }
    };
    let backend = match run::Backend::open(&env).await {
        Ok(b) => b,
        Err(f) => {
            eprintln!("error: {f}");
            return 1;
        }
    };
    // On aws, runs started on other machines are read from the journal mirror.
    let fetched = match &run_id {
        None => backend.fetch_runs(&env.state_dir).await,
        Some(id) => {
            backend
                .fetch_run(&env.state_dir, &RunId::new(id.as_str()))
                .await
        }
    };
    if let Err(f) = fetched {
        eprintln!(
            "warning: the journal mirror could not be read ({f}); showing local journals only"
        );
    }
    match run_id {
        None => {
            let lease = match backend.runs.lease_holder().await {
                Ok(l) => l,
                Err(f) => {
                    eprintln!("warning: the lease could not be read: {f}");
                    None
                }
            };
            list(&env, lease, output)
        }
        Some(id) => match run::load_view(&env.state_dir, &RunId::new(id)) {
            Ok(view) => {
                show(&view, output);
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                2
            }
        },
    }
}

fn list(
    env: &Environment,
    lease: Option<cutover::providers::lease::LeaseInfo>,
    output: OutputFormat,
) -> u8 {
    let runs: Vec<(RunId, Option<RunView>)> = run::list_runs(&env.state_dir)
        .into_iter()
        .map(|id| (id.clone(), run::load_view(&env.state_dir, &id).ok()))
        .collect();
    match output {
        OutputFormat::Json => {
            let items: Vec<serde_json::Value> = runs
                .iter()
                .map(|(id, v)| {
                    serde_json::json!({
                        "run_id": id,
                        "runbook": v.as_ref().map(|v| v.runbook.clone()),
                        "started_at": v.as_ref().and_then(|v| v.started_at),
                        "outcome": v.as_ref().map(outcome_text),
                        "links": v.as_ref().map(|v| v.links.clone()).unwrap_or_default(),
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::json!({ "environment": env.name, "lease": lease, "runs": items })
            );
        }
        OutputFormat::Human => {
            if let Some(l) = &lease {
                let stale = l
                    .staleness()
                    .map(|r| format!(" — STALE: {r}"))
                    .unwrap_or_default();
                println!("lease: {l}{stale}");
            }
            if runs.is_empty() {
                println!("no runs in {}", env.state_dir.display());
            }
            for (id, view) in &runs {
                match view {
                    Some(v) => println!(
                        "{id}  {}  {}  {}{}",
                        v.started_at
                            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                            .unwrap_or_default(),
                        outcome_text(v),
                        v.runbook,
                        links_text(v)
                    ),
                    None => println!("{id}  (unreadable journal)"),
                }
            }
        }
    }
    0
}

/// `  [rolled back by run R2 (Succeeded)]`, or empty when the run has no linked run.
fn links_text(v: &RunView) -> String {
    v.links.iter().map(|l| format!("  [{l}]")).collect()
}

fn outcome_text(v: &RunView) -> String {
    match (v.outcome, v.interrupted) {
        (Some(o), _) => o.to_string(),
        (None, true) => "Interrupted".into(),
        (None, false) => "Running or crashed".into(),
    }
}

fn show(view: &RunView, output: OutputFormat) {
    if output == OutputFormat::Json {
        let mut json = serde_json::to_value(view).unwrap_or_default();
        if let Some(steps) = json.get_mut("steps") {
            *steps = redact(steps);
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
        return;
    }
    println!(
        "run {}  {}  on {}",
        view.run_id
            .as_ref()
            .map(|r| r.to_string())
            .unwrap_or_default(),
        view.runbook,
        view.environment_name
    );
    println!(
        "outcome: {}{}",
        outcome_text(view),
        view.message
            .as_ref()
            .map(|m| format!(" — {m}"))
            .unwrap_or_default()
    );
    println!("plan hash: {}", view.plan_hash);
    for link in &view.links {
        println!("{link}");
    }
    for (id, step) in &view.steps {
        let duration = match (step.first_started_at, step.finished_at) {
            (Some(a), Some(b)) => format!("{:.1}s", (b - a).num_milliseconds() as f64 / 1000.0),
            _ => "-".into(),
        };
        let status = match step.status {
            StepStatus::Running => "running/cut off".to_string(),
            other => format!("{other:?}").to_lowercase(),
        };
        println!(
            "  {id:<28} {status:<16} attempts {:<3} {duration:>8}",
            step.attempts
        );
        if let Some(outputs) = &step.outputs {
            for (k, v) in redact(&serde_json::Value::Object(outputs.clone()))
                .as_object()
                .into_iter()
                .flatten()
            {
                println!("      {k} = {v}");
            }
        }
        if let Some(e) = &step.error {
            println!("      error: {e}");
        }
        if let Some(c) = &step.compensation {
            println!("      compensation: {c:?}");
        }
    }
}

/// `cutover report RUN_ID`: attaches `measures` (all checked first: a bad one changes
/// nothing, exit 2), then (re)writes the run's report files and prints one.
pub fn report_command(run_id: &str, env: &str, output: OutputFormat, measures: &[String]) -> u8 {
    let new_measures = match cutover::report::measures::Measures::parse_args(measures) {
        Ok(m) => m,
        Err(problems) => {
            eprintln!("error: {problems}\nnothing was recorded; `cutover report --help` lists the measures");
            return 2;
        }
    };
    let env = match Environment::load(env) {
        Ok(e) => e,
        Err(problems) => {
            eprint!("error: {problems}");
            return 2;
        }
    };
    let run_id = RunId::new(run_id);
    let path = run::journal_path(&env.state_dir, &run_id);
    let records = match cutover::engine::journal::read_records(&path) {
        Ok((records, _)) => records,
        Err(f) => {
            eprintln!("error: {f}; `cutover status --env {}` lists runs", env.name);
            return 2;
        }
    };
    let dir = run::run_dir(&env.state_dir, &run_id);
    let report = if new_measures.0.is_empty() {
        Ok(())
    } else {
        cutover::report::measures::Measures::record(&dir, &new_measures).map(|_| ())
    }
    .and_then(|()| cutover::report::Report::for_run(&dir, &records));
    let report = match report {
        Ok(r) => r,
        Err(f) => {
            eprintln!("error: {f}");
            return 2;
        }
    };
    if let Err(f) = report.write(&dir) {
        eprintln!("warning: could not write the report files: {f}");
    }
    match output {
        OutputFormat::Human => print!("{}", report.to_markdown()),
        OutputFormat::Json => println!("{}", report.to_json()),
    }
    0
}

/// `cutover gc`: instances tagged with runs that no longer own them (the run does not
/// exist, or it failed and was rolled back). Removes them only with `--yes`.
pub async fn gc_command(env: &str, remove: bool) -> u8 {
    let env = match Environment::load(env) {
        Ok(e) => e,
        Err(problems) => {
            eprint!("error: {problems}");
            return 2;
        }
    };
    let found = cutover::engine::gc::collect_garbage(&env, remove).await;
    match found {
        Ok(found) if found.is_empty() => {
            println!("nothing to collect in environment {}", env.name);
            0
        }
        Ok(found) => {
            for c in &found {
                let what = if c.removed { "removed" } else { "would remove" };
                println!("{what} {} ({})", c.instance, c.reason);
            }
            if !remove {
                println!("run again with --yes to remove them");
            }
            0
        }
        Err(f) => {
            eprintln!("error: {f}");
            1
        }
    }
}
