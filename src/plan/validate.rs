//! Runbook + environment + params → [`Plan`], collecting every problem.

use super::{Plan, PlannedCompensation, PlannedStep, DEFAULT_CONCURRENCY};
use crate::config::expr::{refs_in_value, Condition, Ref, Template, RUN_FIELDS};
use crate::config::runbook::{InputDef, ParamDef, ParamType, StepDef};
use crate::config::source::{Problem, Problems};
use crate::config::toml_read::closest;
use crate::config::{Environment, Runbook};
use crate::ids::StepId;
use crate::retry::RetryPolicy;
use crate::steps::{find_kind, kinds, StepKind, ValueType};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::sync::Arc;

struct Ctx<'a> {
    runbook: &'a Runbook,
    environment: &'a Environment,
    params: &'a BTreeMap<String, (ParamType, Option<Value>)>,
    problems: Problems,
}

impl Ctx<'_> {
    fn problem(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        self.problems
            .push(Problem::at(self.runbook.source.locate(span), message));
    }
    fn problem_hint(
        &mut self,
        span: Option<Range<usize>>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.problems
            .push(Problem::at(self.runbook.source.locate(span), message).with_hint(hint));
    }
}

/// Converts a `--set` value to the param's type.
pub fn parse_param_value(ty: ParamType, text: &str) -> Result<Value, String> {
    match ty {
        ParamType::String => Ok(Value::String(text.to_string())),
        ParamType::Integer => text
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("`{text}` is not an integer")),
        ParamType::Float => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("`{text}` is not a number")),
        ParamType::Bool => match text {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("`{text}` is not a boolean (use true or false)")),
        },
        ParamType::Duration => {
            crate::config::toml_read::parse_duration(text).map(|_| Value::String(text.to_string()))
        }
        ParamType::List | ParamType::Map => {
            let v: Value =
                serde_json::from_str(text).map_err(|e| format!("`{text}` is not JSON: {e}"))?;
            let ok = matches!(
                (ty, &v),
                (ParamType::List, Value::Array(_)) | (ParamType::Map, Value::Object(_))
            );
            if ok {
                Ok(v)
            } else {
                Err(format!(
                    "`{text}` is not a JSON {}",
                    if ty == ParamType::List {
                        "list"
                    } else {
                        "object"
                    }
                ))
            }
        }
    }
}

fn param_type_accepts(ty: ParamType, v: &Value) -> bool {
    match ty {
        ParamType::String => v.is_string(),
        ParamType::Integer => v.is_i64() || v.is_u64(),
        ParamType::Float => v.is_number(),
        ParamType::Bool => v.is_boolean(),
        ParamType::Duration => v
            .as_str()
            .is_some_and(|s| crate::config::toml_read::parse_duration(s).is_ok()),
        ParamType::List => v.is_array(),
        ParamType::Map => v.is_object(),
    }
}

fn param_value_type(ty: ParamType) -> ValueType {
    match ty {
        ParamType::String => ValueType::String,
        ParamType::Integer => ValueType::Integer,
        ParamType::Float => ValueType::Float,
        ParamType::Bool => ValueType::Bool,
        ParamType::Duration => ValueType::Duration,
        ParamType::List => ValueType::List,
        ParamType::Map => ValueType::Map,
    }
}

pub(super) fn build(
    runbook: &Runbook,
    environment: Arc<Environment>,
    sets: &[(String, String)],
) -> Result<Plan, Problems> {
    let mut problems = Problems::default();
    let params = resolve_params(&runbook.params, sets, runbook, &mut problems);
    let types: BTreeMap<String, (ParamType, Option<Value>)> = runbook
        .params
        .iter()
        .map(|p| {
            (
                p.name.value.clone(),
                (p.ty, params.get(&p.name.value).cloned()),
            )
        })
        .collect();
    let mut ctx = Ctx {
        runbook,
        environment: &environment,
        params: &types,
        problems,
    };

    // Ids, kinds, needs.
    let mut seen: HashMap<&str, &StepDef> = HashMap::new();
    for step in &runbook.steps {
        let id = step.id.value.as_str();
        if !valid_id(id) {
            ctx.problem_hint(
                step.id.span.clone(),
                format!("step id `{id}` is not valid"),
                "use letters, digits, `-` and `_`, starting with a letter",
            );
        }
        if let Some(first) = seen.get(id) {
            let (line, _) = runbook
                .source
                .line_col(first.id.span.as_ref().map_or(0, |s| s.start));
            ctx.problem(
                step.id.span.clone(),
                format!("duplicate step id `{id}` (first defined on line {line})"),
            );
        } else {
            seen.insert(id, step);
        }
    }
    let all_kinds: Vec<&str> = kinds().map(|k| k.name).collect();
    let ids: Vec<&str> = runbook.steps.iter().map(|s| s.id.value.as_str()).collect();
    for step in &runbook.steps {
        if find_kind(&step.uses.value).is_none() {
            unknown_kind(
                &mut ctx,
                &step.uses.value,
                step.uses.span.clone(),
                &all_kinds,
            );
        }
        let mut needs_seen = BTreeSet::new();
        for need in &step.needs {
            if need.value == step.id.value {
                ctx.problem(
                    need.span.clone(),
                    format!("step `{}` needs itself", step.id.value),
                );
            } else if !seen.contains_key(need.value.as_str()) {
                match closest(&need.value, &ids) {
                    Some(best) => ctx.problem_hint(
                        need.span.clone(),
                        format!(
                            "step `{}` needs unknown step `{}`",
                            step.id.value, need.value
                        ),
                        format!("did you mean `{best}`?"),
                    ),
                    None => ctx.problem(
                        need.span.clone(),
                        format!(
                            "step `{}` needs unknown step `{}`",
                            step.id.value, need.value
                        ),
                    ),
                }
            } else if !needs_seen.insert(need.value.as_str()) {
                ctx.problem(
                    need.span.clone(),
                    format!(
                        "step `{}` lists `{}` twice in needs",
                        step.id.value, need.value
                    ),
                );
            }
        }
    }

    // Cycles.
    let has_cycle = report_cycles(&mut ctx, &seen);

    // Ancestors (only meaningful without cycles).
    let reach = if has_cycle {
        Reachability::default()
    } else {
        Reachability::of(&runbook.steps, &seen)
    };

    // Inputs, conditions, retry, compensation.
    let mut planned = Vec::new();
    for step in &runbook.steps {
        let kind = find_kind(&step.uses.value);
        let upstream = reach.upstream_of(&step.id.value);
        let upstream = upstream.as_ref();
        let inputs = check_inputs(
            &mut ctx, step, kind, &step.with, upstream, &seen, has_cycle, "",
        );
        let when = step
            .when
            .as_ref()
            .and_then(|w| match Condition::parse(&w.value) {
                Ok(c) => {
                    let mut refs = Vec::new();
                    c.refs(&mut refs);
                    for r in refs {
                        check_ref(
                            &mut ctx,
                            step,
                            &r,
                            w.span.clone(),
                            upstream,
                            &seen,
                            has_cycle,
                            None,
                        );
                    }
                    Some(c)
                }
                Err(e) => {
                    ctx.problem(
                        w.span.clone(),
                        format!("`when` of step `{}`: {e}", step.id.value),
                    );
                    None
                }
            });
        let mut retry = RetryPolicy::default();
        if let Some(r) = &step.retry {
            if let Some(a) = &r.attempts {
                retry.attempts = a.value.clamp(1, u32::MAX as u64) as u32;
            }
            if let Some(b) = r.backoff {
                retry.backoff = b;
            }
            if let Some(m) = r.max_delay {
                retry.max_delay = m;
            }
            if retry.max_delay < retry.backoff {
                ctx.problem(
                    r.span.clone(),
                    format!(
                        "`retry.max_delay` of step `{}` is shorter than its `backoff`",
                        step.id.value
                    ),
                );
            }
        }
        let compensate = step.compensate.as_ref().and_then(|c| {
            let kind = find_kind(&c.uses.value);
            if kind.is_none() {
                unknown_kind(&mut ctx, &c.uses.value, c.uses.span.clone(), &all_kinds);
            }
            // A compensation may use the step's own outputs as well as upstream ones.
            let allowed = reach.upstream_or_self(&step.id.value);
            let inputs = check_inputs(
                &mut ctx,
                step,
                kind,
                &c.with,
                Some(&allowed),
                &seen,
                has_cycle,
                "compensation of ",
            );
            kind.map(|kind| PlannedCompensation { kind, inputs })
        });
        if let Some(kind) = kind {
            planned.push(PlannedStep {
                id: StepId::new(&step.id.value),
                kind,
                description: step.description.clone(),
                needs: step.needs.iter().map(|n| StepId::new(&n.value)).collect(),
                inputs,
                retry,
                timeout: step.timeout.as_ref().map(|t| t.value),
                when,
                compensate,
                location: runbook.source.locate(step.id.span.clone()),
            });
        }
    }

    let Ctx { problems, .. } = ctx;
    if !problems.is_empty() {
        return Err(problems);
    }
    let steps = topological(planned);
    let hash = plan_hash(runbook, &environment, &params);
    Ok(Plan {
        name: runbook.name.value.clone(),
        runbook_path: runbook.source.path.clone(),
        environment,
        params,
        steps,
        concurrency: runbook
            .concurrency
            .as_ref()
            .map_or(DEFAULT_CONCURRENCY, |c| c.value as usize),
        deadline: runbook.deadline.as_ref().map(|d| d.value),
        hash,
        step_index: Default::default(),
    })
}

fn valid_id(id: &str) -> bool {
    id.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && id.len() <= 64
}

fn unknown_kind(ctx: &mut Ctx<'_>, name: &str, span: Option<Range<usize>>, all: &[&str]) {
    match closest(name, all) {
        Some(best) => ctx.problem_hint(
            span,
            format!("unknown step kind `{name}`"),
            format!("did you mean `{best}`?"),
        ),
        None => ctx.problem_hint(
            span,
            format!("unknown step kind `{name}`"),
            format!("known kinds: {}", all.join(", ")),
        ),
    }
}

fn resolve_params(
    defs: &[ParamDef],
    sets: &[(String, String)],
    runbook: &Runbook,
    problems: &mut Problems,
) -> BTreeMap<String, Value> {
    let mut values = BTreeMap::new();
    let names: Vec<&str> = defs.iter().map(|p| p.name.value.as_str()).collect();
    for (key, text) in sets {
        match defs.iter().find(|p| &p.name.value == key) {
            None => {
                let hint = closest(key, &names).map_or_else(
                    || {
                        format!(
                            "the runbook's params are: {}",
                            if names.is_empty() {
                                "(none)".into()
                            } else {
                                names.join(", ")
                            }
                        )
                    },
                    |b| format!("did you mean `{b}`?"),
                );
                problems.push(
                    Problem::unlocated(format!("--set {key}: the runbook has no param `{key}`"))
                        .with_hint(hint),
                );
            }
            Some(def) => match parse_param_value(def.ty, text) {
                Ok(v) => {
                    values.insert(key.clone(), v);
                }
                Err(e) => problems.push(Problem::unlocated(format!("--set {key}={text}: {e}"))),
            },
        }
    }
    for def in defs {
        if let Some(default) = &def.default {
            if !param_type_accepts(def.ty, &default.value) {
                problems.push(Problem::at(
                    runbook.source.locate(default.span.clone()),
                    format!(
                        "default of param `{}` is not a valid {}",
                        def.name.value,
                        serde_json::to_string(&def.ty)
                            .unwrap_or_default()
                            .trim_matches('"')
                    ),
                ));
                continue;
            }
            values
                .entry(def.name.value.clone())
                .or_insert_with(|| default.value.clone());
        } else if !values.contains_key(&def.name.value) {
            problems.push(
                Problem::at(
                    runbook.source.locate(def.name.span.clone()),
                    format!("param `{}` has no default and was not set", def.name.value),
                )
                .with_hint(format!("pass --set {}=VALUE", def.name.value)),
            );
        }
    }
    values
}

#[allow(clippy::too_many_arguments)]
fn check_inputs(
    ctx: &mut Ctx<'_>,
    step: &StepDef,
    kind: Option<&'static StepKind>,
    inputs: &[InputDef],
    upstream: Option<&Upstream<'_>>,
    steps: &HashMap<&str, &StepDef>,
    has_cycle: bool,
    what: &str,
) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    let context = format!("{what}step `{}`", step.id.value);
    for input in inputs {
        out.insert(input.name.value.clone(), input.value.clone());
    }
    let Some(kind) = kind else { return out };
    let allowed: Vec<&str> = kind.inputs.iter().map(|i| i.name).collect();
    for input in inputs {
        let Some(spec) = kind.inputs.iter().find(|i| i.name == input.name.value) else {
            let hint = closest(&input.name.value, &allowed).map_or_else(
                || format!("`{}` takes: {}", kind.name, allowed.join(", ")),
                |b| format!("did you mean `{b}`?"),
            );
            ctx.problem_hint(
                input.name.span.clone(),
                format!(
                    "{context}: `{}` has no input `{}`",
                    kind.name, input.name.value
                ),
                hint,
            );
            continue;
        };
        if spec.ty == ValueType::Condition {
            let Some(text) = input.value.as_str() else {
                ctx.problem(
                    input.span.clone(),
                    format!(
                        "{context}: input `{}` must be a condition string",
                        spec.name
                    ),
                );
                continue;
            };
            match Condition::parse(text) {
                Ok(c) => {
                    let mut refs = Vec::new();
                    c.refs(&mut refs);
                    for r in refs {
                        check_ref(
                            ctx,
                            step,
                            &r,
                            input.span.clone(),
                            upstream,
                            steps,
                            has_cycle,
                            None,
                        );
                    }
                }
                Err(e) => ctx.problem(
                    input.span.clone(),
                    format!("{context}: input `{}`: {e}", spec.name),
                ),
            }
            continue;
        }
        let mut refs = Vec::new();
        if let Err(e) = refs_in_value(&input.value, &mut refs) {
            ctx.problem(
                input.span.clone(),
                format!("{context}: input `{}`: {e}", spec.name),
            );
            continue;
        }
        let whole_ref = input
            .value
            .as_str()
            .and_then(|s| Template::parse(s).ok())
            .and_then(|t| match t.pieces.as_slice() {
                [crate::config::expr::Piece::Ref(r)] => Some(r.clone()),
                _ => None,
            });
        for r in &refs {
            let expected = if whole_ref.as_ref() == Some(r) {
                Some(spec.ty)
            } else {
                None
            };
            check_ref(
                ctx,
                step,
                r,
                input.span.clone(),
                upstream,
                steps,
                has_cycle,
                expected.map(|t| (t, spec.name)),
            );
        }
        if refs.is_empty() && !spec.ty.accepts(&input.value) {
            ctx.problem(
                input.span.clone(),
                format!(
                    "{context}: input `{}` must be {}",
                    spec.name,
                    spec.ty.name()
                ),
            );
        }
    }
    for spec in kind.inputs.iter().filter(|i| i.required) {
        if !inputs.iter().any(|i| i.name.value == spec.name) {
            ctx.problem_hint(
                step.id.span.clone(),
                format!("{context}: `{}` needs input `{}`", kind.name, spec.name),
                format!("add it under `with`: {}", spec.doc),
            );
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn check_ref(
    ctx: &mut Ctx<'_>,
    step: &StepDef,
    r: &Ref,
    span: Option<Range<usize>>,
    upstream: Option<&Upstream<'_>>,
    steps: &HashMap<&str, &StepDef>,
    has_cycle: bool,
    expected: Option<(ValueType, &str)>,
) {
    let id = &step.id.value;
    match r {
        Ref::Param(name) => {
            match ctx.params.get(name) {
                None => {
                    let names: Vec<&str> = ctx.params.keys().map(String::as_str).collect();
                    let hint = closest(name, &names).map_or_else(
                        || "declare it under [params]".to_string(),
                        |b| format!("did you mean `params.{b}`?"),
                    );
                    ctx.problem_hint(
                        span,
                        format!("step `{id}` refers to unknown param `{name}`"),
                        hint,
                    );
                }
                Some((ty, _)) => {
                    if let Some((want, input)) = expected {
                        let have = param_value_type(*ty);
                        let compatible = want == ValueType::Any
                            || want == have
                            || (want == ValueType::String && have == ValueType::Duration)
                            || (want == ValueType::Float && have == ValueType::Integer);
                        if !compatible {
                            ctx.problem(span, format!("step `{id}`: input `{input}` must be {}, but param `{name}` is {}", want.name(), have.name()));
                        }
                    }
                }
            }
        }
        Ref::Env(path) => {
            match ctx.environment.lookup(path) {
                None => ctx.problem_hint(
                    span,
                    format!(
                        "step `{id}` refers to `env.{}`, which {} does not define",
                        path.join("."),
                        ctx.environment.source.path.display()
                    ),
                    "add it to the environment file or fix the path",
                ),
                Some(value) => {
                    if let Some((want, input)) = expected {
                        let scalar_as_text =
                            want == ValueType::String && !value.is_object() && !value.is_array();
                        if !(want.accepts(value) || scalar_as_text) {
                            ctx.problem(span, format!("step `{id}`: input `{input}` must be {}, but `env.{}` is {value}", want.name(), path.join(".")));
                        }
                    }
                }
            }
        }
        Ref::Run(field) => {
            if !RUN_FIELDS.contains(&field.as_str()) {
                ctx.problem_hint(
                    span,
                    format!("step `{id}` refers to unknown `run.{field}`"),
                    format!(
                        "use one of: {}",
                        RUN_FIELDS
                            .iter()
                            .map(|f| format!("run.{f}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
        Ref::StepOutput {
            step: other,
            output,
        } => {
            match steps.get(other.as_str()) {
                None => ctx.problem(
                    span,
                    format!("step `{id}` refers to outputs of unknown step `{other}`"),
                ),
                Some(def) => {
                    if !has_cycle && !upstream.is_some_and(|u| u.contains(other)) {
                        ctx.problem_hint(
                        span.clone(),
                        format!("step `{id}` uses outputs of `{other}`, which is not upstream of it"),
                        format!("add \"{other}\" to the needs of `{id}`"),
                    );
                    }
                    if let Some(kind) = find_kind(&def.uses.value) {
                        if !kind.outputs.has(output) {
                            let names = match kind.outputs {
                                crate::steps::OutputSpec::Fixed(n) if !n.is_empty() => n.join(", "),
                                _ => "none".into(),
                            };
                            ctx.problem_hint(span, format!("step `{id}` refers to output `{output}` of `{other}`, but `{}` has no such output", kind.name), format!("its outputs: {names}"));
                        }
                    }
                }
            }
        }
    }
}

/// Reports each cycle once, spelled out (`a → b → c → a`). Returns whether any exists.
fn report_cycles(ctx: &mut Ctx<'_>, steps: &HashMap<&str, &StepDef>) -> bool {
    let mut graph = petgraph::graph::DiGraph::<&str, ()>::new();
    let mut index = BTreeMap::new();
    for step in &ctx.runbook.steps {
        index
            .entry(step.id.value.as_str())
            .or_insert_with(|| graph.add_node(step.id.value.as_str()));
    }
    for step in &ctx.runbook.steps {
        for need in &step.needs {
            if let (Some(&from), Some(&to)) = (
                index.get(need.value.as_str()),
                index.get(step.id.value.as_str()),
            ) {
                if from != to {
                    // Duplicate edges are reported elsewhere and do not change the SCCs;
                    // `update_edge` would scan every edge of `from` (quadratic fan-out).
                    graph.add_edge(from, to, ());
                }
            }
        }
    }
    let mut found = false;
    // `kosaraju_scc` walks with explicit stacks; `tarjan_scc` recurses once per step of a
    // path and overflows the stack on a chain of 10,000 `needs`. Report cycles in
    // runbook order of their first member, whatever order the algorithm finds them in.
    let mut sccs = petgraph::algo::kosaraju_scc(&graph);
    for scc in &mut sccs {
        scc.sort();
    }
    sccs.sort_by_key(|scc| scc.first().copied());
    for scc in sccs {
        if scc.len() < 2 {
            continue;
        }
        found = true;
        let members: BTreeSet<&str> = scc.iter().map(|&n| graph[n]).collect();
        let start = *members.iter().next().expect("non-empty");
        // Walk `needs` inside the component until we come back to the start.
        let mut path = vec![start];
        let mut on_path: std::collections::HashSet<&str> = std::collections::HashSet::from([start]);
        let mut current = start;
        loop {
            let next = steps[current]
                .needs
                .iter()
                .map(|n| n.value.as_str())
                .find(|n| members.contains(n) && (!on_path.contains(n) || *n == start));
            match next {
                Some(n) if n == start => {
                    path.push(n);
                    break;
                }
                Some(n) => {
                    path.push(n);
                    on_path.insert(n);
                    current = n;
                }
                None => break,
            }
        }
        path.reverse();
        let span = steps[start].id.span.clone();
        ctx.problem_hint(
            span,
            format!("cycle in needs: {}", path.join(" → ")),
            "remove one of these `needs` edges",
        );
    }
    found
}

/// Which steps each step depends on, directly or not, as one bit set per step.
///
/// Computed once in topological order (`row(step) = ∪ row(need) ∪ {need}`), so a chain,
/// a fan-in or a lattice of n steps costs O(n·edges/64) instead of one walk per step.
/// Only built when the needs have no cycle.
#[derive(Default)]
struct Reachability<'a> {
    /// First definition of each id (what `needs` and references resolve to).
    first: HashMap<&'a str, usize>,
    /// Last definition of each id (whose ancestors a lookup by id answers).
    last: HashMap<&'a str, usize>,
    words: usize,
    rows: Vec<Vec<u64>>,
}

impl<'a> Reachability<'a> {
    fn of(steps: &'a [StepDef], seen: &HashMap<&'a str, &'a StepDef>) -> Self {
        let n = steps.len();
        let words = n.div_ceil(64);
        let mut first = HashMap::with_capacity(seen.len());
        let mut last = HashMap::with_capacity(n);
        for (i, step) in steps.iter().enumerate() {
            first.entry(step.id.value.as_str()).or_insert(i);
            last.insert(step.id.value.as_str(), i);
        }
        // Edges need → step over step indices; Kahn's order fills rows before use.
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut waiting = vec![0usize; n];
        let mut rows = vec![vec![0u64; words]; n];
        for (i, step) in steps.iter().enumerate() {
            for need in &step.needs {
                let Some(&j) = first.get(need.value.as_str()) else {
                    continue;
                };
                if j == i {
                    rows[i][j / 64] |= 1 << (j % 64);
                } else {
                    dependents[j].push(i);
                    waiting[i] += 1;
                }
            }
        }
        let mut ready: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
        while let Some(j) = ready.pop() {
            let mut row = std::mem::take(&mut rows[j]);
            let needs_itself = row[j / 64] & (1 << (j % 64)) != 0;
            row[j / 64] |= 1 << (j % 64);
            for &i in &dependents[j] {
                for (into, from) in rows[i].iter_mut().zip(&row) {
                    *into |= from;
                }
                waiting[i] -= 1;
                if waiting[i] == 0 {
                    ready.push(i);
                }
            }
            if !needs_itself {
                row[j / 64] &= !(1 << (j % 64));
            }
            rows[j] = row;
        }
        Self {
            first,
            last,
            words,
            rows,
        }
    }

    fn upstream_of(&self, id: &str) -> Option<Upstream<'_>> {
        let &row = self.last.get(id)?;
        Some(Upstream {
            reach: self,
            row,
            or_self: None,
        })
    }

    /// Upstream of `id`, plus `id` itself (what a compensation may refer to).
    fn upstream_or_self(&self, id: &str) -> Upstream<'_> {
        Upstream {
            reach: self,
            row: self.last.get(id).copied().unwrap_or(usize::MAX),
            or_self: self.first.get(id).copied(),
        }
    }
}

/// The steps whose outputs one step may use.
struct Upstream<'a> {
    reach: &'a Reachability<'a>,
    row: usize,
    or_self: Option<usize>,
}

impl Upstream<'_> {
    fn contains(&self, id: &str) -> bool {
        let Some(&j) = self.reach.first.get(id) else {
            return false;
        };
        if self.or_self == Some(j) {
            return true;
        }
        debug_assert!(j / 64 < self.reach.words);
        self.reach
            .rows
            .get(self.row)
            .is_some_and(|row| row[j / 64] & (1 << (j % 64)) != 0)
    }
}

/// Kahn's algorithm; among ready steps the runbook's order wins, so output is stable.
fn topological(steps: Vec<PlannedStep>) -> Vec<PlannedStep> {
    let n = steps.len();
    let index: HashMap<&StepId, usize> =
        steps.iter().enumerate().map(|(i, s)| (&s.id, i)).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut waiting = vec![0usize; n];
    for (i, step) in steps.iter().enumerate() {
        for need in &step.needs {
            let j = index[need];
            dependents[j].push(i);
            waiting[i] += 1;
        }
    }
    // The smallest runbook position among ready steps goes next.
    let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> = (0..n)
        .filter(|&i| waiting[i] == 0)
        .map(std::cmp::Reverse)
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some(std::cmp::Reverse(j)) = ready.pop() {
        order.push(j);
        for &i in &dependents[j] {
            waiting[i] -= 1;
            if waiting[i] == 0 {
                ready.push(std::cmp::Reverse(i));
            }
        }
    }
    assert_eq!(order.len(), n, "validated acyclic");
    drop(index);
    let mut slots: Vec<Option<PlannedStep>> = steps.into_iter().map(Some).collect();
    order
        .into_iter()
        .map(|i| slots[i].take().expect("each step once"))
        .collect()
}

fn plan_hash(
    runbook: &Runbook,
    environment: &Environment,
    params: &BTreeMap<String, Value>,
) -> String {
    let steps: Vec<Value> = runbook
        .steps
        .iter()
        .map(|s| {
            serde_json::json!({
                "id": s.id.value,
                "uses": s.uses.value,
                "needs": s.needs.iter().map(|n| &n.value).collect::<Vec<_>>(),
                "with": s.with.iter().map(|i| (i.name.value.clone(), i.value.clone())).collect::<BTreeMap<_, _>>(),
                "retry": s.retry.as_ref().map(|r| serde_json::json!({
                    "attempts": r.attempts.as_ref().map(|a| a.value),
                    "backoff_ms": r.backoff.map(|d| d.as_millis() as u64),
                    "max_delay_ms": r.max_delay.map(|d| d.as_millis() as u64),
                })),
                "timeout_ms": s.timeout.as_ref().map(|t| t.value.as_millis() as u64),
                "when": s.when.as_ref().map(|w| &w.value),
                "compensate": s.compensate.as_ref().map(|c| serde_json::json!({
                    "uses": c.uses.value,
                    "with": c.with.iter().map(|i| (i.name.value.clone(), i.value.clone())).collect::<BTreeMap<_, _>>(),
                })),
            })
        })
        .collect();
    let canonical = serde_json::json!({
        "name": runbook.name.value,
        "concurrency": runbook.concurrency.as_ref().map(|c| c.value),
        "deadline_ms": runbook.deadline.as_ref().map(|d| d.value.as_millis() as u64),
        "params": params,
        "steps": steps,
        "environment": environment.document,
    });
    let bytes = serde_json::to_vec(&canonical).expect("JSON values serialize");
    hex::encode(Sha256::digest(&bytes))
}
