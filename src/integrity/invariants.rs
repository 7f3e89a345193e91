//! App invariants: Cypher checks with expected results, run on both sides of a comparison.
//!
//! The result of a check is converted to JSON and compared with `expect`:
//! - one row with one column → that value (`MATCH (d:Daynode {Active: true}) RETURN count(d)`
//!   → `1`);
//! - otherwise an array of rows, each row the value of its single column or an object of
//!   its columns.

use super::error::IntegrityError;
use neo4rs::{BoltType, Graph};
use serde::{Deserialize, Serialize};

/// An application invariant, e.g. "exactly one active Daynode".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Invariant {
    pub name: String,
    /// A read-only Cypher query.
    pub cypher: String,
    pub expect: serde_json::Value,
}

/// What an invariant gave on one side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InvariantOutcome {
    pub name: String,
    pub expect: serde_json::Value,
    /// The result, or the error message if the query failed.
    pub actual: Result<serde_json::Value, String>,
}

impl InvariantOutcome {
    /// The query ran and returned what was expected.
    pub fn holds(&self) -> bool {
        self.actual.as_ref().is_ok_and(|v| *v == self.expect)
    }

    /// `1 (expected 1)` / `0 (expected 1)` / `error: …`.
    pub fn render(&self) -> String {
        match &self.actual {
            Ok(v) if self.holds() => format!("{v} (as expected)"),
            Ok(v) => format!("{v} (expected {})", self.expect),
            Err(e) => format!("error: {e}"),
        }
    }
}

/// The JSON form of a Bolt value. Temporal and spatial values become strings/objects;
/// non-finite floats become strings (`"NaN"`, `"Infinity"`), which JSON cannot hold.
pub fn bolt_to_json(v: &BoltType) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        BoltType::Null(_) => J::Null,
        BoltType::Boolean(b) => J::Bool(b.value),
        BoltType::Integer(i) => J::from(i.value),
        BoltType::Float(f) => serde_json::Number::from_f64(f.value)
            .map(J::Number)
            .unwrap_or_else(|| J::String(format!("{}", f.value))),
        BoltType::String(s) => J::String(s.value.clone()),
        BoltType::Bytes(b) => J::String(format!("0x{}", hex::encode(&b.value))),
        BoltType::List(l) => J::Array(l.value.iter().map(bolt_to_json).collect()),
        BoltType::Map(m) => {
            let mut entries: Vec<_> = m.value.iter().collect();
            entries.sort_by(|a, b| a.0.value.cmp(&b.0.value));
            J::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.value.clone(), bolt_to_json(v)))
                    .collect(),
            )
        }
        BoltType::Date(d) => chrono::NaiveDate::try_from(d)
            .map(|d| J::String(d.to_string()))
            .unwrap_or_else(|_| J::String(format!("{d:?}"))),
        BoltType::DateTime(d) => chrono::DateTime::<chrono::FixedOffset>::try_from(d)
            .map(|d| J::String(d.to_rfc3339()))
            .unwrap_or_else(|_| J::String(format!("{d:?}"))),
        BoltType::LocalDateTime(d) => chrono::NaiveDateTime::try_from(d)
            .map(|d| J::String(d.format("%Y-%m-%dT%H:%M:%S%.f").to_string()))
            .unwrap_or_else(|_| J::String(format!("{d:?}"))),
        BoltType::DateTimeZoneId(d) => chrono::NaiveDateTime::try_from(d)
            .map(|t| {
                J::String(format!(
                    "{}[{}]",
                    t.format("%Y-%m-%dT%H:%M:%S%.f"),
                    d.tz_id()
                ))
            })
            .unwrap_or_else(|_| J::String(format!("{d:?}"))),
        BoltType::Point2D(p) => {
            serde_json::json!({"srid": p.sr_id.value, "x": p.x.value, "y": p.y.value})
        }
        BoltType::Point3D(p) => {
            serde_json::json!({"srid": p.sr_id.value, "x": p.x.value, "y": p.y.value, "z": p.z.value})
        }
        BoltType::Node(n) => serde_json::json!({
            "labels": bolt_to_json(&BoltType::List(n.labels.clone())),
            "properties": bolt_to_json(&BoltType::Map(n.properties.clone())),
        }),
        other => J::String(format!("{other:?}")),
    }
}

/// Runs one invariant. A query error is part of the outcome, not an `Err`: a broken
/// invariant on one side is a finding. Connection failures are returned as errors.
pub async fn run_invariant(
    graph: &Graph,
    invariant: &Invariant,
) -> Result<InvariantOutcome, IntegrityError> {
    let actual = match graph.execute(neo4rs::query(&invariant.cypher)).await {
        Err(e) => Err(e),
        Ok(mut stream) => {
            let mut rows = Vec::new();
            loop {
                match stream.next().await {
                    Ok(Some(row)) => rows.push(row),
                    Ok(None) => break Ok(rows),
                    Err(e) => break Err(e),
                }
            }
        }
    };
    let actual = match actual {
        Ok(rows) => Ok(rows_to_json(&rows)),
        Err(e @ (neo4rs::Error::IOError { .. } | neo4rs::Error::ConnectionError)) => {
            return Err(IntegrityError::bolt("invariant", &invariant.cypher, &e))
        }
        Err(e) => Err(e.to_string()),
    };
    Ok(InvariantOutcome {
        name: invariant.name.clone(),
        expect: invariant.expect.clone(),
        actual,
    })
}

/// Runs every invariant, in order.
pub async fn run_invariants(
    graph: &Graph,
    invariants: &[Invariant],
) -> Result<Vec<InvariantOutcome>, IntegrityError> {
    let mut out = Vec::with_capacity(invariants.len());
    for inv in invariants {
        out.push(run_invariant(graph, inv).await?);
    }
    Ok(out)
}

fn rows_to_json(rows: &[neo4rs::Row]) -> serde_json::Value {
    // A Row does not expose its columns in order; read it as a map.
    let maps: Vec<serde_json::Map<String, serde_json::Value>> = rows
        .iter()
        .map(|r| match r.to::<neo4rs::BoltMap>() {
            Ok(m) => match bolt_to_json(&BoltType::Map(m)) {
                serde_json::Value::Object(o) => o,
                _ => serde_json::Map::new(),
            },
            Err(_) => serde_json::Map::new(),
        })
        .collect();
    let flatten = |m: &serde_json::Map<String, serde_json::Value>| {
        if m.len() == 1 {
            m.values()
                .next()
                .cloned()
                .unwrap_or(serde_json::Value::Null)
        } else {
            serde_json::Value::Object(m.clone())
        }
    };
    if maps.len() == 1 && maps[0].len() == 1 {
        return flatten(&maps[0]);
    }
    serde_json::Value::Array(maps.iter().map(flatten).collect())
}

/// The invariants every credex LedgerSpace must satisfy (CREDEX-MODEL.md).
pub fn ledger_invariants() -> Vec<Invariant> {
    vec![Invariant {
        name: "exactly one active Daynode".into(),
        cypher: "MATCH (d:Daynode) WHERE d.Active = true RETURN count(d) AS active".into(),
        expect: serde_json::json!(1),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_holds_only_when_equal() {
        let o = InvariantOutcome {
            name: "x".into(),
            expect: serde_json::json!(1),
            actual: Ok(serde_json::json!(1)),
        };
        assert!(o.holds());
        let o = InvariantOutcome {
            actual: Ok(serde_json::json!(2)),
            ..o
        };
        assert!(!o.holds());
        assert_eq!(o.render(), "2 (expected 1)");
        let o = InvariantOutcome {
            actual: Err("boom".into()),
            ..o
        };
        assert!(!o.holds());
    }

    #[test]
    fn non_finite_floats_become_strings() {
        assert_eq!(
            bolt_to_json(&BoltType::from(f64::NAN)),
            serde_json::json!("NaN")
        );
        assert_eq!(
            bolt_to_json(&BoltType::from(1.5f64)),
            serde_json::json!(1.5)
        );
    }
}
