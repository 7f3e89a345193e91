//! The schema part of a fingerprint: constraints and indexes, where the engine lists them.

use super::*;

/// Reads constraints and indexes where the engine (as detected) lists them.
pub(super) async fn read_schema(
    reader: &Reader,
    engine: EngineHint,
) -> Result<(String, SchemaInfo), IntegrityError> {
    if engine == EngineHint::Arcadedb {
        return Ok((
            "arcadedb".into(),
            SchemaInfo::NotAvailable {
                reason: "schema: not available from this engine (ArcadeDB accepts SHOW CONSTRAINTS / SHOW INDEXES \
                         over Bolt but returns no rows even when constraints exist)"
                    .into(),
            },
        ));
    }
    let constraints = reader
        .collect("SHOW CONSTRAINTS YIELD type, entityType, labelsOrTypes, properties RETURN type, entityType, labelsOrTypes, properties", vec![])
        .await;
    let indexes = reader
        .collect("SHOW INDEXES YIELD type, entityType, labelsOrTypes, properties RETURN type, entityType, labelsOrTypes, properties", vec![])
        .await;
    match (constraints, indexes) {
        (Ok(c), Ok(i)) => {
            let render = |rows: Vec<neo4rs::Row>| {
                let mut out: Vec<String> = rows
                    .iter()
                    .map(|r| {
                        let t: String = r.get("type").unwrap_or_default();
                        let e: String = r.get("entityType").unwrap_or_default();
                        let l: Vec<String> = r.get("labelsOrTypes").unwrap_or_default();
                        let p: Vec<String> = r.get("properties").unwrap_or_default();
                        format!("{t} {e} {}({})", l.join(":"), p.join(","))
                    })
                    .collect();
                out.sort();
                out
            };
            Ok((
                "neo4j".into(),
                SchemaInfo::Available {
                    constraints: render(c),
                    indexes: render(i),
                },
            ))
        }
        (Err(e), _) | (_, Err(e)) => Ok((
            "neo4j".into(),
            SchemaInfo::NotAvailable {
                reason: format!("schema: not available from this engine ({e})"),
            },
        )),
    }
}

/// ArcadeDB record ids look like `#12:345`.
pub(super) fn looks_like_rid(s: &str) -> bool {
    s.strip_prefix('#')
        .and_then(|r| r.split_once(':'))
        .is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        })
}

#[cfg(test)]
mod tests {
    use super::looks_like_rid;

    #[test]
    fn arcadedb_rids_are_recognised() {
        assert!(looks_like_rid("#1:0"));
        assert!(!looks_like_rid("4:5f1c:12"));
        assert!(!looks_like_rid("#1:"));
    }
}
