//! Cypher parameters for ArcadeDB's HTTP command API: Bolt values written as JSON.
//!
//! JSON has no dates, and ArcadeDB decides a number's type by its text (checked on 26.10:
//! `3` → INTEGER, `12345678901` → LONG, `1.0`, `1e-5`, `-0.0` → DOUBLE, all exact).
//! So integers and finite floats keep their Bolt type as long as floats are written with
//! a fraction or exponent, which `serde_json` always does for `f64`. A `Date` becomes its
//! ISO string (`"2025-01-01"`): the statement must turn it back with `date(…)`. Values
//! JSON cannot carry faithfully (NaN, infinities, times, points, bytes, graph elements)
//! are refused rather than approximated.

use neo4rs::BoltType;
use serde_json::Value;

/// A parameter value that has no faithful JSON form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot pass {0} as an ArcadeDB HTTP parameter (JSON has no faithful form for it)")]
pub struct UnsupportedParam(pub String);

/// `value` as a JSON parameter (see the module docs for dates and numbers).
pub fn json_param(value: &BoltType) -> Result<Value, UnsupportedParam> {
    Ok(match value {
        BoltType::Null(_) => Value::Null,
        BoltType::Boolean(b) => Value::Bool(b.value),
        BoltType::Integer(i) => Value::from(i.value),
        BoltType::Float(f) => serde_json::Number::from_f64(f.value)
            .map(Value::Number)
            .ok_or_else(|| UnsupportedParam(format!("the float {}", f.value)))?,
        BoltType::String(s) => Value::String(s.value.clone()),
        BoltType::List(l) => {
            Value::Array(l.value.iter().map(json_param).collect::<Result<_, _>>()?)
        }
        BoltType::Map(m) => Value::Object(
            m.value
                .iter()
                .map(|(k, v)| Ok((k.value.clone(), json_param(v)?)))
                .collect::<Result<_, UnsupportedParam>>()?,
        ),
        BoltType::Date(d) => {
            let date: chrono::NaiveDate = d
                .try_into()
                .map_err(|e| UnsupportedParam(format!("the date {d:?} ({e})")))?;
            Value::String(date.format("%Y-%m-%d").to_string())
        }
        other => return Err(UnsupportedParam(format!("{other:?}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use neo4rs::{BoltList, BoltMap, BoltString};

    #[test]
    fn numbers_keep_their_type_in_the_json_text() {
        let text = |v: BoltType| json_param(&v).unwrap().to_string();
        assert_eq!(text(BoltType::from(3i64)), "3");
        assert_eq!(text(BoltType::from(1.0f64)), "1.0");
        assert_eq!(text(BoltType::from(0.0f64)), "0.0");
        assert_eq!(text(BoltType::from(-0.0f64)), "-0.0");
        assert_eq!(text(BoltType::from(1e-5f64)), "0.00001");
        assert_eq!(text(BoltType::from(1e21f64)), "1e+21");
        assert_eq!(text(BoltType::from(0.0015f64)), "0.0015");
    }

    #[test]
    fn dates_become_iso_strings_and_maps_nest() {
        let mut map = BoltMap::new();
        map.put(
            BoltString::from("day"),
            BoltType::from(chrono::NaiveDate::from_ymd_opt(2025, 3, 9).unwrap()),
        );
        map.put(
            BoltString::from("xs"),
            BoltType::List(BoltList::from(vec![
                BoltType::from(true),
                BoltType::from("a"),
            ])),
        );
        assert_eq!(
            json_param(&BoltType::Map(map)).unwrap(),
            serde_json::json!({"day": "2025-03-09", "xs": [true, "a"]})
        );
    }

    #[test]
    fn values_json_cannot_carry_are_refused() {
        assert!(json_param(&BoltType::from(f64::NAN)).is_err());
        assert!(json_param(&BoltType::from(f64::INFINITY)).is_err());
        let dt = chrono::NaiveDate::from_ymd_opt(2025, 1, 1)
            .unwrap()
            .and_hms_opt(1, 2, 3)
            .unwrap();
        assert!(json_param(&BoltType::from(dt)).is_err());
    }
}
