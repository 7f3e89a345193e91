//! Same answers on blue and green: the application's own read-only queries, run with
//! parameters sampled from blue's data, must give the same results on green.
//!
//! The fingerprint proves the stored graph is the same; these queries prove the
//! application *reads* the same from it (a store upgrade, a changed planner or a missing
//! index can change an answer while the records are equal). They are recorded on frozen
//! blue by `db.backup` (in the manifest, beside the invariants) and replayed on green by
//! `integrity.compare` with the parameters blue sampled, so a DR drill or a restore, where
//! blue may be gone, compares against the same point in time.
//!
//! Canonical comparison:
//! - each row is its columns by name, as JSON ([`bolt_to_json`]); floats are rounded to
//!   12 significant digits, so a sum taken in another storage order compares equal;
//! - a query with `ORDER BY` (anywhere in its text) is compared row by row in order; any
//!   other query as a multiset of rows (order-insensitive), as the server may return
//!   them in any order; `ordered` in the environment overrides the guess;
//! - temporal values compare by their text (the fingerprint, not this check, proves
//!   types).
//!
//! Bounds: at most [`MAX_SAMPLES`] parameter sets per query and [`MAX_ROWS`] rows per
//! answer (more is an error naming the query: add a `LIMIT`), each query within
//! [`ANSWER_LIMIT`].

use super::error::{bolt_failure, IntegrityError};
use super::invariants::bolt_to_json;
use crate::db::bolt::bounded_call;
use crate::failure::Failure;
use neo4rs::{BoltType, Graph};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Parameter sets taken from a `params` query (its first rows).
pub const MAX_SAMPLES: usize = 20;
/// Rows one answer may have.
pub const MAX_ROWS: usize = 10_000;
/// How long one query (a sample or an answer) may take.
pub const ANSWER_LIMIT: Duration = Duration::from_secs(60);

/// One application query, as `[[databases.NAME.same_answers]]` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SameAnswersQuery {
    pub name: String,
    /// A read-only query; `$name` parameters come from `params`.
    pub cypher: String,
    /// A read-only query whose rows (column name → value) are the parameter sets, e.g.
    /// `MATCH (a:Account) RETURN a.accountID AS account ORDER BY account LIMIT 5`.
    /// Values must be strings, numbers, booleans or null. Without it, `cypher` runs once.
    #[serde(default)]
    pub params: Option<String>,
    /// Compare rows in order; by default, when `cypher` has `ORDER BY`.
    #[serde(default)]
    pub ordered: Option<bool>,
}

impl SameAnswersQuery {
    pub fn is_ordered(&self) -> bool {
        self.ordered.unwrap_or_else(|| has_order_by(&self.cypher))
    }
}

/// `ORDER BY` appears in `cypher`, in any case and spacing.
fn has_order_by(cypher: &str) -> bool {
    let words: Vec<String> = cypher
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase)
        .collect();
    words.windows(2).any(|w| w[0] == "ORDER" && w[1] == "BY")
}

/// One run of a query: its parameters and the rows it gave (or the server's error).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub params: Map<String, Value>,
    /// Canonical rows (see the module doc); sorted when the query is not ordered.
    pub rows: Result<Vec<String>, String>,
}

/// Every answer of one query on one side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryAnswers {
    pub name: String,
    pub cypher: String,
    pub ordered: bool,
    /// Why there are no answers (the `params` query failed), or `None`.
    #[serde(default)]
    pub error: Option<String>,
    pub answers: Vec<Answer>,
}

/// Runs every query on `graph` (frozen blue), sampling its parameters there.
pub async fn record_answers(
    graph: &Graph,
    uri: &str,
    queries: &[SameAnswersQuery],
) -> Result<Vec<QueryAnswers>, IntegrityError> {
    let mut out = Vec::with_capacity(queries.len());
    for q in queries {
        let ordered = q.is_ordered();
        let samples = match &q.params {
            None => Ok(vec![Map::new()]),
            Some(params) => sample_params(graph, uri, &q.name, params).await?,
        };
        let (error, answers) = match samples {
            Err(e) => (Some(e), Vec::new()),
            Ok(samples) => {
                let mut answers = Vec::with_capacity(samples.len());
                for params in samples {
                    answers.push(answer(graph, uri, &q.cypher, ordered, params).await?);
                }
                (None, answers)
            }
        };
        out.push(QueryAnswers {
            name: q.name.clone(),
            cypher: q.cypher.clone(),
            ordered,
            error,
            answers,
        });
    }
    Ok(out)
}

/// Runs the recorded queries on `graph` (green) with the parameters blue sampled.
pub async fn replay_answers(
    graph: &Graph,
    uri: &str,
    recorded: &[QueryAnswers],
) -> Result<Vec<QueryAnswers>, IntegrityError> {
    let mut out = Vec::with_capacity(recorded.len());
    for q in recorded {
        let mut answers = Vec::with_capacity(q.answers.len());
        for a in &q.answers {
            answers.push(answer(graph, uri, &q.cypher, q.ordered, a.params.clone()).await?);
        }
        out.push(QueryAnswers {
            answers,
            ..q.clone()
        });
    }
    Ok(out)
}

/// One difference between blue's and green's answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnswerDifference {
    pub query: String,
    pub params: Map<String, Value>,
    /// What blue gave, in words, with up to three of the rows that differ.
    pub blue: String,
    /// What green gave, the same way.
    pub green: String,
}

impl AnswerDifference {
    /// `balances per account {"account":"a1"}`: the query and its parameters.
    pub fn subject(&self) -> String {
        if self.params.is_empty() {
            self.query.clone()
        } else {
            format!("{} {}", self.query, Value::Object(self.params.clone()))
        }
    }
}

impl std::fmt::Display for AnswerDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "query `{}`: blue {} / green {}",
            self.subject(),
            self.blue,
            self.green
        )
    }
}

/// Every difference between `blue`'s answers and `green`'s (from [`replay_answers`] of
/// `blue`). A query that failed on either side is a difference too: nothing was compared.
pub fn answer_differences(blue: &[QueryAnswers], green: &[QueryAnswers]) -> Vec<AnswerDifference> {
    let mut out = Vec::new();
    let green: BTreeMap<&str, &QueryAnswers> = green.iter().map(|q| (q.name.as_str(), q)).collect();
    for b in blue {
        let difference =
            |params: &Map<String, Value>, (blue, green): (String, String)| AnswerDifference {
                query: b.name.clone(),
                params: params.clone(),
                blue,
                green,
            };
        let not_run = || ("answered".to_owned(), "was not asked".to_owned());
        if let Some(e) = &b.error {
            out.push(difference(
                &Map::new(),
                (
                    format!("could not sample parameters: {e}"),
                    "was not asked".into(),
                ),
            ));
            continue;
        }
        let Some(g) = green.get(b.name.as_str()) else {
            out.push(difference(&Map::new(), not_run()));
            continue;
        };
        for (i, ba) in b.answers.iter().enumerate() {
            let Some(ga) = g.answers.get(i).filter(|ga| ga.params == ba.params) else {
                out.push(difference(&ba.params, not_run()));
                continue;
            };
            if let Some(sides) = rows_differ(&ba.rows, &ga.rows, b.ordered) {
                out.push(difference(&ba.params, sides));
            }
        }
    }
    out
}

/// How blue's and green's rows differ, in words, or `None` when they are the same.
fn rows_differ(
    blue: &Result<Vec<String>, String>,
    green: &Result<Vec<String>, String>,
    ordered: bool,
) -> Option<(String, String)> {
    let answered = |r: &Result<Vec<String>, String>| match r {
        Ok(rows) => format!("{} row(s)", rows.len()),
        Err(e) => format!("failed: {e}"),
    };
    match (blue, green) {
        (Ok(b), Ok(g)) if b == g => None,
        (Ok(b), Ok(g)) if ordered => {
            let at = b
                .iter()
                .zip(g)
                .position(|(x, y)| x != y)
                .unwrap_or(b.len().min(g.len()));
            let row = |rows: &[String]| rows.get(at).map_or("(no row)", String::as_str).to_owned();
            Some((
                format!("{} row(s), row {}: {}", b.len(), at + 1, row(b)),
                format!("{} row(s), row {}: {}", g.len(), at + 1, row(g)),
            ))
        }
        (Ok(b), Ok(g)) => {
            let (only_blue, only_green) = multiset_difference(b, g);
            Some((
                format!("{} row(s) only here {}", only_blue.len(), shown(&only_blue)),
                format!(
                    "{} row(s) only here {}",
                    only_green.len(),
                    shown(&only_green)
                ),
            ))
        }
        _ => Some((answered(blue), answered(green))),
    }
}

/// The rows of `a` not in `b` and of `b` not in `a`, both sorted (as the answers are).
fn multiset_difference<'a>(a: &'a [String], b: &'a [String]) -> (Vec<&'a str>, Vec<&'a str>) {
    let (mut i, mut j) = (0, 0);
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x == y => {
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x < y => {
                only_a.push(x.as_str());
                i += 1;
            }
            (Some(_), Some(y)) => {
                only_b.push(y.as_str());
                j += 1;
            }
            (Some(x), None) => {
                only_a.push(x.as_str());
                i += 1;
            }
            (None, Some(y)) => {
                only_b.push(y.as_str());
                j += 1;
            }
            (None, None) => break,
        }
    }
    (only_a, only_b)
}

fn shown(rows: &[&str]) -> String {
    let mut s = rows.iter().take(3).copied().collect::<Vec<_>>().join(", ");
    if rows.len() > 3 {
        s.push_str(", …");
    }
    format!("[{s}]")
}

/// The first [`MAX_SAMPLES`] rows of `params`, each a parameter set; `Ok(Err)` when the
/// server refused the query or a value is not a plain one (a parameter must reach green
/// with the type blue gave it, and JSON keeps only strings, numbers, booleans and null).
async fn sample_params(
    graph: &Graph,
    uri: &str,
    name: &str,
    params: &str,
) -> Result<Result<Vec<Map<String, Value>>, String>, IntegrityError> {
    let rows = match run(graph, uri, params, Map::new(), MAX_SAMPLES).await? {
        Err(e) => return Ok(Err(e)),
        Ok(rows) => rows,
    };
    let mut samples = Vec::with_capacity(rows.len());
    for row in rows {
        for (column, value) in row.value.iter() {
            let plain = matches!(
                value,
                BoltType::Null(_)
                    | BoltType::Boolean(_)
                    | BoltType::Integer(_)
                    | BoltType::Float(_)
                    | BoltType::String(_)
            );
            if !plain {
                return Ok(Err(format!(
                    "column `{}` of the params query of `{name}` is {}, not a string, number, boolean or null; return a plain value, e.g. toString(…)",
                    column.value,
                    bolt_to_json(value)
                )));
            }
        }
        samples.push(map_to_json(row));
    }
    Ok(Ok(samples))
}

async fn answer(
    graph: &Graph,
    uri: &str,
    cypher: &str,
    ordered: bool,
    params: Map<String, Value>,
) -> Result<Answer, IntegrityError> {
    let rows = run(graph, uri, cypher, params.clone(), MAX_ROWS + 1)
        .await?
        .and_then(|rows| {
            if rows.len() > MAX_ROWS {
                Err(format!("more than {MAX_ROWS} rows; add a LIMIT"))
            } else {
                Ok(rows)
            }
        })
        .map(|rows| {
            let mut rows: Vec<String> = rows
                .into_iter()
                .map(|r| canonical_row(map_to_json(r)))
                .collect();
            if !ordered {
                rows.sort();
            }
            rows
        });
    Ok(Answer { params, rows })
}

/// Runs `cypher` with `params`, up to `limit` rows. A query error is `Ok(Err)`: part of
/// the answer. A connection failure, or no answer within [`ANSWER_LIMIT`], is an error:
/// nothing can be compared.
async fn run(
    graph: &Graph,
    uri: &str,
    cypher: &str,
    params: Map<String, Value>,
    limit: usize,
) -> Result<Result<Vec<neo4rs::BoltMap>, String>, IntegrityError> {
    let mut query = neo4rs::query(cypher);
    for (k, v) in params {
        query = query.param(&k, json_to_bolt(&v));
    }
    bounded_call(ANSWER_LIMIT, uri, async {
        let mut stream = match graph.execute(query).await {
            Ok(s) => s,
            Err(e) => return answer_or_failure(uri, cypher, e),
        };
        let mut rows = Vec::new();
        while rows.len() < limit {
            match stream.next().await {
                Ok(Some(row)) => rows.push(row.to::<neo4rs::BoltMap>().unwrap_or_default()),
                Ok(None) => break,
                Err(e) => return answer_or_failure(uri, cypher, e),
            }
        }
        Ok(Ok(rows))
    })
    .await
    .map_err(|f: Failure| IntegrityError::Bolt(f.context(format_args!("`{cypher}`"))))
}

/// A connection failure is the caller's error (`Err`); anything else the server said is
/// the query's answer (`Ok(Err)`).
fn answer_or_failure(
    uri: &str,
    cypher: &str,
    e: neo4rs::Error,
) -> Result<Result<Vec<neo4rs::BoltMap>, String>, Failure> {
    match e {
        neo4rs::Error::IOError { .. } | neo4rs::Error::ConnectionError => {
            Err(bolt_failure(uri, cypher, &e))
        }
        _ => Ok(Err(e.to_string())),
    }
}

fn map_to_json(row: neo4rs::BoltMap) -> Map<String, Value> {
    match bolt_to_json(&BoltType::Map(row)) {
        Value::Object(o) => o,
        _ => Map::new(),
    }
}

/// A row as canonical text: columns sorted by name, floats to 12 significant digits.
fn canonical_row(row: Map<String, Value>) -> String {
    let row: BTreeMap<String, Value> = row.into_iter().map(|(k, v)| (k, rounded(v))).collect();
    serde_json::to_string(&row).unwrap_or_default()
}

fn rounded(v: Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or_default();
            let r: f64 = format!("{f:.11e}").parse().unwrap_or(f);
            serde_json::Number::from_f64(r).map_or(Value::Number(n), Value::Number)
        }
        Value::Array(a) => Value::Array(a.into_iter().map(rounded).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, rounded(v))).collect()),
        other => other,
    }
}

/// A sampled parameter back into Bolt: integers stay integers, floats floats.
fn json_to_bolt(v: &Value) -> BoltType {
    match v {
        Value::Null => BoltType::Null(neo4rs::BoltNull),
        Value::Bool(b) => BoltType::from(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => BoltType::from(i),
            None => BoltType::from(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => BoltType::from(s.as_str()),
        Value::Array(a) => BoltType::List(neo4rs::BoltList::from(
            a.iter().map(json_to_bolt).collect::<Vec<_>>(),
        )),
        Value::Object(o) => {
            BoltType::Map(neo4rs::BoltMap::from_iter(o.iter().map(|(k, v)| {
                (neo4rs::BoltString::from(k.as_str()), json_to_bolt(v))
            })))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answers(ordered: bool, rows: &[&str]) -> QueryAnswers {
        QueryAnswers {
            name: "q".into(),
            cypher: "MATCH (n) RETURN n.x AS x".into(),
            ordered,
            error: None,
            answers: vec![Answer {
                params: json!({"account": "a1"}).as_object().unwrap().clone(),
                rows: Ok(rows.iter().map(|r| r.to_string()).collect()),
            }],
        }
    }

    #[test]
    fn order_by_is_found_in_any_case_and_spacing_but_not_inside_a_word() {
        assert!(has_order_by("MATCH (n) RETURN n ORDER BY n.x"));
        assert!(has_order_by("match (n) return n order\n  by n.x"));
        assert!(!has_order_by("MATCH (n:BORDER) RETURN n.orderBy"));
        assert!(!has_order_by("MATCH (n) RETURN n"));
    }

    #[test]
    fn equal_answers_have_no_difference_and_a_changed_row_is_named_with_its_parameters() {
        let blue = answers(false, &[r#"{"x":1}"#, r#"{"x":2}"#]);
        let same = std::slice::from_ref(&blue);
        assert!(answer_differences(same, same).is_empty());
        let green = answers(false, &[r#"{"x":1}"#, r#"{"x":3}"#]);
        let diffs = answer_differences(&[blue], &[green]);
        assert_eq!(diffs.len(), 1, "{diffs:?}");
        assert_eq!(
            diffs[0].to_string(),
            r#"query `q {"account":"a1"}`: blue 1 row(s) only here [{"x":2}] / green 1 row(s) only here [{"x":3}]"#
        );
    }

    #[test]
    fn ordered_answers_differ_by_order_and_say_where() {
        let blue = answers(true, &["a", "b"]);
        let green = answers(true, &["b", "a"]);
        let diffs = answer_differences(&[blue], &[green]);
        assert_eq!(diffs.len(), 1);
        assert_eq!(
            (diffs[0].blue.as_str(), diffs[0].green.as_str()),
            ("2 row(s), row 1: a", "2 row(s), row 1: b")
        );
    }

    #[test]
    fn a_failure_on_either_side_or_a_missing_query_is_a_difference() {
        let blue = answers(false, &["a"]);
        let mut failed = blue.clone();
        failed.answers[0].rows = Err("Neo.ClientError.Statement.SyntaxError".into());
        let d = &answer_differences(std::slice::from_ref(&blue), std::slice::from_ref(&failed))[0];
        assert_eq!(d.green, "failed: Neo.ClientError.Statement.SyntaxError");
        let d = &answer_differences(&[failed], std::slice::from_ref(&blue))[0];
        assert!(d.blue.starts_with("failed: "), "{d}");
        assert_eq!(answer_differences(&[blue], &[])[0].green, "was not asked");
    }

    #[test]
    fn rows_are_canonical_whatever_the_column_order_and_float_noise() {
        let a = canonical_row(
            json!({"b": 0.1 + 0.2, "a": "x"})
                .as_object()
                .unwrap()
                .clone(),
        );
        let b = canonical_row(json!({"a": "x", "b": 0.3}).as_object().unwrap().clone());
        assert_eq!(a, b);
        let c = canonical_row(json!({"a": "x", "b": 0.3001}).as_object().unwrap().clone());
        assert_ne!(a, c);
        // Integers and floats stay apart.
        let i = canonical_row(json!({"n": 1}).as_object().unwrap().clone());
        let f = canonical_row(json!({"n": 1.0}).as_object().unwrap().clone());
        assert_ne!(i, f);
    }
}
