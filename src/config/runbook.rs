//! Runbook files: a named, declarative step graph with typed params.
//!
//! ```toml
//! name = "backup"
//! concurrency = 4            # steps run at once (default 4)
//! deadline = "2h"            # the whole run (optional)
//!
//! [params.database]
//! type = "string"            # string | integer | float | bool | duration | list | map
//! default = "ledger"
//!
//! [[step]]
//! id = "freeze"
//! uses = "db.freeze"
//! needs = ["preflight"]
//! with = { database = "${{ params.database }}" }
//! retry = { attempts = 5, backoff = "2s", max_delay = "30s" }
//! timeout = "10m"
//! when = "params.database != 'search'"
//! compensate = { uses = "db.unfreeze", with = { database = "${{ params.database }}" } }
//! ```
//! This module only checks the file's shape; [`crate::plan`] checks meaning (kinds,
//! inputs, references, cycles) against the step registry and the environment.

use super::source::{Problems, SourceFile};
use super::toml_read::{to_json, type_name, Spanned, TomlReader};
use std::path::Path;
use std::time::Duration;
use toml_edit::TableLike;

/// A runbook whose shape is valid. Meaning is checked when it becomes a plan.
#[derive(Clone, Debug)]
pub struct Runbook {
    pub source: SourceFile,
    pub name: Spanned<String>,
    pub description: Option<String>,
    pub concurrency: Option<Spanned<u64>>,
    pub deadline: Option<Spanned<Duration>>,
    pub params: Vec<ParamDef>,
    pub steps: Vec<StepDef>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Integer,
    Float,
    Bool,
    Duration,
    List,
    Map,
}

impl ParamType {
    pub const NAMES: &'static [&'static str] = &[
        "string", "integer", "float", "bool", "duration", "list", "map",
    ];

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "string" => Self::String,
            "integer" => Self::Integer,
            "float" => Self::Float,
            "bool" => Self::Bool,
            "duration" => Self::Duration,
            "list" => Self::List,
            "map" => Self::Map,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug)]
pub struct ParamDef {
    pub name: Spanned<String>,
    pub ty: ParamType,
    pub default: Option<Spanned<serde_json::Value>>,
    pub description: Option<String>,
}

#[derive(Clone, Debug)]
pub struct InputDef {
    pub name: Spanned<String>,
    pub value: serde_json::Value,
    pub span: Option<std::ops::Range<usize>>,
}

#[derive(Clone, Debug)]
pub struct RetryDef {
    pub attempts: Option<Spanned<u64>>,
    pub backoff: Option<Duration>,
    pub max_delay: Option<Duration>,
    pub span: Option<std::ops::Range<usize>>,
}

#[derive(Clone, Debug)]
pub struct CompensateDef {
    pub uses: Spanned<String>,
    pub with: Vec<InputDef>,
}

#[derive(Clone, Debug)]
pub struct StepDef {
    pub id: Spanned<String>,
    pub uses: Spanned<String>,
    pub description: Option<String>,
    pub needs: Vec<Spanned<String>>,
    pub with: Vec<InputDef>,
    pub retry: Option<RetryDef>,
    pub timeout: Option<Spanned<Duration>>,
    pub when: Option<Spanned<String>>,
    pub compensate: Option<CompensateDef>,
    pub span: Option<std::ops::Range<usize>>,
}

/// More steps at once than this only exhausts file descriptors (and an unbounded value
/// would overflow the executor's semaphore).
pub const MAX_CONCURRENCY: u64 = 1024;

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "concurrency",
    "deadline",
    "params",
    "step",
];
const PARAM_KEYS: &[&str] = &["type", "default", "description"];
const STEP_KEYS: &[&str] = &[
    "id",
    "uses",
    "description",
    "needs",
    "with",
    "retry",
    "timeout",
    "when",
    "compensate",
];
const RETRY_KEYS: &[&str] = &["attempts", "backoff", "max_delay"];
const COMPENSATE_KEYS: &[&str] = &["uses", "with"];

impl Runbook {
    pub fn load(path: &Path) -> Result<Runbook, Problems> {
        Self::parse(SourceFile::read(path)?)
    }

    /// Checks the file's shape and reports every problem found.
    pub fn parse(source: SourceFile) -> Result<Runbook, Problems> {
        let doc = TomlReader::parse(&source)?;
        let mut r = TomlReader::new(&source);
        let root = doc.as_table();
        r.check_keys(root, TOP_KEYS, "the runbook");
        let name = r.string(root, "name", true, "the runbook", Some(0..0));
        let description = r
            .string(root, "description", false, "the runbook", None)
            .map(|s| s.value);
        let concurrency = r.unsigned(root, "concurrency", "the runbook");
        if let Some(c) = &concurrency {
            if c.value == 0 {
                r.problem(c.span.clone(), "`concurrency` must be at least 1");
            } else if c.value > MAX_CONCURRENCY {
                r.problem(
                    c.span.clone(),
                    format!("`concurrency` must be at most {MAX_CONCURRENCY}"),
                );
            }
        }
        let deadline = r.duration(root, "deadline", "the runbook");
        let params = read_params(&mut r, root);
        let steps = read_steps(&mut r, root);
        let problems = r.problems;
        let name = name.unwrap_or(Spanned {
            value: String::new(),
            span: None,
        });
        problems.into_result(Runbook {
            source,
            name,
            description,
            concurrency,
            deadline,
            params,
            steps,
        })
    }
}

fn read_params(r: &mut TomlReader<'_>, root: &dyn TableLike) -> Vec<ParamDef> {
    let Some(item) = root.get("params") else {
        return Vec::new();
    };
    let Some(table) = item.as_table_like() else {
        r.problem(
            item.span(),
            format!(
                "`params` must be a table of parameter definitions, found {}",
                type_name(item)
            ),
        );
        return Vec::new();
    };
    let mut params = Vec::new();
    for (name, def) in table.iter() {
        let name_span = TomlReader::key_span(table, name);
        let context = format!("param `{name}`");
        let Some(def_table) = def.as_table_like() else {
            r.problem_with_hint(
                name_span,
                format!("{context} must be a table"),
                "write e.g. [params.NAME] with type = \"string\" and an optional default",
            );
            continue;
        };
        r.check_keys(def_table, PARAM_KEYS, &context);
        let ty = match r.string(def_table, "type", true, &context, name_span.clone()) {
            Some(t) => match ParamType::parse(&t.value) {
                Some(ty) => ty,
                None => {
                    r.problem_with_hint(
                        t.span,
                        format!("{context} has unknown type `{}`", t.value),
                        format!("use one of: {}", ParamType::NAMES.join(", ")),
                    );
                    continue;
                }
            },
            None => continue,
        };
        let default = def_table.get("default").and_then(|d| {
            to_json(d).map(|v| Spanned {
                value: v,
                span: d.span(),
            })
        });
        let description = r
            .string(def_table, "description", false, &context, None)
            .map(|s| s.value);
        params.push(ParamDef {
            name: Spanned {
                value: name.to_string(),
                span: name_span,
            },
            ty,
            default,
            description,
        });
    }
    params
}

fn read_steps(r: &mut TomlReader<'_>, root: &dyn TableLike) -> Vec<StepDef> {
    let Some(item) = root.get("step") else {
        r.problem_with_hint(
            Some(0..0),
            "the runbook has no steps",
            "add at least one [[step]] table",
        );
        return Vec::new();
    };
    let tables: Vec<&dyn TableLike> = if let Some(aot) = item.as_array_of_tables() {
        aot.iter().map(|t| t as &dyn TableLike).collect()
    } else if let Some(array) = item.as_array() {
        let mut out = Vec::new();
        for v in array.iter() {
            match v.as_inline_table() {
                Some(t) => out.push(t as &dyn TableLike),
                None => r.problem(v.span(), "each entry of `step` must be a table"),
            }
        }
        out
    } else {
        r.problem(
            item.span(),
            format!(
                "`step` must be an array of tables ([[step]]), found {}",
                type_name(item)
            ),
        );
        return Vec::new();
    };
    tables.into_iter().filter_map(|t| read_step(r, t)).collect()
}

fn table_span(table: &dyn TableLike) -> Option<std::ops::Range<usize>> {
    // The first key's span is the best anchor for a table without its own span.
    table
        .iter()
        .next()
        .and_then(|(k, _)| TomlReader::key_span(table, k))
}

fn read_step(r: &mut TomlReader<'_>, table: &dyn TableLike) -> Option<StepDef> {
    let span = table_span(table);
    let id = r.string(table, "id", true, "a step", span.clone());
    let context = match &id {
        Some(id) => format!("step `{}`", id.value),
        None => "a step".to_string(),
    };
    r.check_keys(table, STEP_KEYS, &context);
    let uses = r.string(table, "uses", true, &context, span.clone());
    let description = r
        .string(table, "description", false, &context, None)
        .map(|s| s.value);
    let needs = r.string_list(table, "needs", &context);
    let with = read_inputs(r, table, "with", &context);
    let timeout = r.duration(table, "timeout", &context);
    let when = r.string(table, "when", false, &context, None);
    let retry = table.get("retry").and_then(|item| {
        let Some(t) = item.as_table_like() else {
            r.problem(item.span(), format!("`retry` in {context} must be a table like {{ attempts = 3, backoff = \"2s\" }}"));
            return None;
        };
        let retry_context = format!("`retry` of {context}");
        r.check_keys(t, RETRY_KEYS, &retry_context);
        let attempts = r.unsigned(t, "attempts", &retry_context);
        if let Some(a) = &attempts {
            if a.value == 0 {
                r.problem(a.span.clone(), format!("`attempts` in {retry_context} must be at least 1"));
            }
        }
        let backoff = r.duration(t, "backoff", &retry_context).map(|d| d.value);
        let max_delay = r.duration(t, "max_delay", &retry_context).map(|d| d.value);
        Some(RetryDef { attempts, backoff, max_delay, span: item.span() })
    });
    let compensate = table.get("compensate").and_then(|item| {
        let Some(t) = item.as_table_like() else {
            r.problem(
                item.span(),
                format!("`compensate` in {context} must be a table with `uses` and `with`"),
            );
            return None;
        };
        let comp_context = format!("`compensate` of {context}");
        r.check_keys(t, COMPENSATE_KEYS, &comp_context);
        let uses = r.string(t, "uses", true, &comp_context, item.span())?;
        let with = read_inputs(r, t, "with", &comp_context);
        Some(CompensateDef { uses, with })
    });
    Some(StepDef {
        id: id?,
        uses: uses?,
        description,
        needs,
        with,
        retry,
        timeout,
        when,
        compensate,
        span,
    })
}

fn read_inputs(
    r: &mut TomlReader<'_>,
    table: &dyn TableLike,
    key: &str,
    context: &str,
) -> Vec<InputDef> {
    let Some(item) = table.get(key) else {
        return Vec::new();
    };
    let Some(inputs) = item.as_table_like() else {
        r.problem(
            item.span(),
            format!(
                "`{key}` in {context} must be a table of inputs, found {}",
                type_name(item)
            ),
        );
        return Vec::new();
    };
    inputs
        .iter()
        .filter_map(|(name, value)| {
            let json = to_json(value)?;
            let name_span = TomlReader::key_span(inputs, name);
            Some(InputDef {
                name: Spanned {
                    value: name.to_string(),
                    span: name_span,
                },
                value: json,
                span: value.span(),
            })
        })
        .collect()
}
