//! Rendering plans: text for `cutover plan`, Mermaid and DOT for `cutover graph`.

use super::Plan;
use crate::config::Runbook;
use std::fmt::Write;

/// The human-readable plan: order, and for each step what it will change.
pub fn plan_text(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "plan `{}` for environment `{}` ({} provider)",
        plan.name,
        plan.environment.name,
        serde_json::to_string(&plan.environment.provider)
            .unwrap_or_default()
            .trim_matches('"')
    );
    let _ = writeln!(out, "plan hash: {}", plan.hash);
    if !plan.params.is_empty() {
        let _ = writeln!(out, "params:");
        for (k, v) in &plan.params {
            let _ = writeln!(out, "  {k} = {v}");
        }
    }
    let _ = writeln!(
        out,
        "order (steps on one line may run at the same time, at most {} at once):",
        plan.concurrency
    );
    for (i, level) in plan.levels().iter().enumerate() {
        let names: Vec<&str> = level.iter().map(|s| s.as_str()).collect();
        let _ = writeln!(out, "  {}. {}", i + 1, names.join(", "));
    }
    let _ = writeln!(out, "steps:");
    for step in &plan.steps {
        let _ = writeln!(
            out,
            "  {} [{}]{}",
            step.id,
            step.kind.name,
            step.description
                .as_ref()
                .map(|d| format!(" — {d}"))
                .unwrap_or_default()
        );
        if !step.needs.is_empty() {
            let needs: Vec<&str> = step.needs.iter().map(|s| s.as_str()).collect();
            let _ = writeln!(out, "      needs: {}", needs.join(", "));
        }
        let changes = if step.kind.changes.is_empty() {
            "nothing (read-only)"
        } else {
            step.kind.changes
        };
        let _ = writeln!(out, "      changes: {changes}");
        for (k, v) in &step.inputs {
            let _ = writeln!(out, "      with {k} = {}", short_value(v));
        }
        if let Some(when) = &step.when {
            let _ = writeln!(out, "      when: {when:?}");
        }
        match (&step.compensate, step.kind.compensation) {
            (Some(c), _) => {
                let _ = writeln!(out, "      undone by: {}", c.kind.name);
            }
            (None, Some(text)) => {
                let _ = writeln!(out, "      undone by: {text}");
            }
            (None, None) => {}
        }
        let _ = writeln!(
            out,
            "      retry: {} attempt(s), backoff {}{}",
            step.retry.attempts,
            crate::config::toml_read::format_duration(step.retry.backoff),
            step.timeout
                .map(|t| format!(", timeout {}", crate::config::toml_read::format_duration(t)))
                .unwrap_or_default()
        );
    }
    out
}

fn short_value(v: &serde_json::Value) -> String {
    let text = match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let one_line = text.replace('\n', "⏎ ");
    if one_line.chars().count() > 100 {
        format!("{}…", one_line.chars().take(100).collect::<String>())
    } else {
        one_line
    }
}

/// The plan as JSON (what `--output json` prints).
pub fn plan_json(plan: &Plan) -> serde_json::Value {
    serde_json::json!({
        "name": plan.name,
        "environment": plan.environment.name,
        "hash": plan.hash,
        "params": plan.params,
        "concurrency": plan.concurrency,
        "levels": plan.levels(),
        "steps": plan.steps.iter().map(|s| serde_json::json!({
            "id": s.id,
            "uses": s.kind.name,
            "needs": s.needs,
            "with": s.inputs,
            "changes": s.kind.changes,
            "compensation": s.compensate.as_ref().map(|c| c.kind.name).or(s.kind.compensation),
            "retry": s.retry,
            "timeout_ms": s.timeout.map(|t| t.as_millis() as u64),
        })).collect::<Vec<_>>(),
    })
}

/// A Mermaid flowchart of the runbook's steps.
pub fn mermaid(runbook: &Runbook) -> String {
    let mut out = String::from("flowchart TD\n");
    for step in &runbook.steps {
        let _ = writeln!(
            out,
            "  {}[\"{}<br/><small>{}</small>\"]",
            node_id(&step.id.value),
            step.id.value,
            step.uses.value
        );
    }
    for step in &runbook.steps {
        for need in &step.needs {
            let _ = writeln!(
                out,
                "  {} --> {}",
                node_id(&need.value),
                node_id(&step.id.value)
            );
        }
    }
    out
}

/// A Graphviz DOT digraph of the runbook's steps.
pub fn dot(runbook: &Runbook) -> String {
    let mut out = format!(
        "digraph \"{}\" {{\n  rankdir=TB;\n  node [shape=box];\n",
        runbook.name.value.replace('"', "'")
    );
    for step in &runbook.steps {
        let _ = writeln!(
            out,
            "  \"{}\" [label=\"{}\\n{}\"];",
            step.id.value, step.id.value, step.uses.value
        );
    }
    for step in &runbook.steps {
        for need in &step.needs {
            let _ = writeln!(out, "  \"{}\" -> \"{}\";", need.value, step.id.value);
        }
    }
    out.push_str("}\n");
    out
}

fn node_id(id: &str) -> String {
    id.replace('-', "_")
}
