//! How a record's properties are read, exactly as the server stores them.
//!
//! `neo4rs` 0.8 hands row values out only through serde, and its serde view of two Bolt
//! types is wrong (measured against Neo4j 5.26.30 and 2026.08.1):
//! - a **Duration** comes back as a list of two integers (total seconds with a month
//!   counted as 2,629,800 s, and nanoseconds): `P1M` and `PT2629800S` would hash alike,
//!   and so would a duration and the list `[seconds, nanos]`; negative seconds wrap;
//! - a **Point** fails to decode at all (`invalid type: tuple variant, expected struct
//!   variant`), so one point property made the whole fingerprint fail.
//!
//! Everything else Neo4j returns (dates, times with offset, local times and datetimes,
//! datetimes with offset or zone id, byte arrays, lists, i64 extremes, NaN/±Inf/-0.0)
//! decodes into the right `BoltType` with every field kept.
//!
//! So on Neo4j a record's properties are read as a list of `[key, value]` pairs in which
//! the server rewrites points and durations (and lists of them) into tagged maps holding
//! their Bolt fields — `{`cutover.point`: [srid, x, y(, z)]}`,
//! `{`cutover.duration`: [months, days, seconds, nanoseconds]}` — and the client turns
//! those back into `BoltType::Point2D/3D` and `BoltType::Duration`. A Neo4j property can
//! never hold a map, so a tagged map cannot be mistaken for stored data. `valueType()`
//! (Neo4j 5.13+) tells the types apart. ArcadeDB has no `valueType()`: there the
//! properties are read with `properties(x)` as before.

use neo4rs::{BoltDuration, BoltList, BoltMap, BoltPoint2D, BoltPoint3D, BoltString, BoltType};

/// Key of the tagged map a point travels in.
pub const POINT_TAG: &str = "cutover.point";
/// Key of the tagged map a duration travels in.
pub const DURATION_TAG: &str = "cutover.duration";

/// How properties are read from one engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropertyRead {
    /// `properties(x)` as a map (ArcadeDB).
    Map,
    /// `[key, value]` pairs with points and durations tagged by the server (Neo4j).
    TaggedPairs,
}

/// The SRIDs of 3D points (Cartesian 3D, WGS-84 3D); a 2D point has no `z`.
const SRIDS_3D: &str = "[9157, 4979]";

fn point_fields(v: &str) -> String {
    format!(
        "CASE WHEN {v}.srid IN {SRIDS_3D} THEN [{v}.srid, {v}.x, {v}.y, {v}.z] ELSE [{v}.srid, {v}.x, {v}.y] END"
    )
}

fn duration_fields(v: &str) -> String {
    format!("[{v}.months, {v}.days, {v}.seconds, {v}.nanosecondsOfSecond]")
}

/// The Cypher expression that returns the properties of variable `var`.
pub fn expression(read: PropertyRead, var: &str) -> String {
    match read {
        PropertyRead::Map => format!("properties({var})"),
        PropertyRead::TaggedPairs => {
            let (v, t) = ("q[1]", "q[2]");
            format!(
                "[q IN [k IN keys({var}) | [k, {var}[k], valueType({var}[k])]] | [q[0], CASE \
                 WHEN {t} STARTS WITH 'POINT' THEN {{`{POINT_TAG}`: {p}}} \
                 WHEN {t} STARTS WITH 'DURATION' THEN {{`{DURATION_TAG}`: {d}}} \
                 WHEN {t} STARTS WITH 'LIST<POINT' THEN [x IN {v} | {{`{POINT_TAG}`: {px}}}] \
                 WHEN {t} STARTS WITH 'LIST<DURATION' THEN [x IN {v} | {{`{DURATION_TAG}`: {dx}}}] \
                 ELSE {v} END]]",
                p = point_fields(v),
                d = duration_fields(v),
                px = point_fields("x"),
                dx = duration_fields("x"),
            )
        }
    }
}

/// Reads column `column` of `row` as a property map, written by [`expression`].
pub fn decode(read: PropertyRead, row: &neo4rs::Row, column: &str) -> Result<BoltMap, String> {
    match read {
        PropertyRead::Map => row.get::<BoltMap>(column).map_err(|e| e.to_string()),
        PropertyRead::TaggedPairs => {
            let pairs: BoltList = row.get(column).map_err(|e| e.to_string())?;
            from_pairs(pairs)
        }
    }
}

/// Builds the property map from `[key, value]` pairs, untagging points and durations.
pub fn from_pairs(pairs: BoltList) -> Result<BoltMap, String> {
    let mut map = BoltMap::with_capacity(pairs.value.len());
    for pair in pairs.value {
        let BoltType::List(pair) = pair else {
            return Err(format!("a property pair is not a list: {pair:?}"));
        };
        let mut it = pair.value.into_iter();
        match (it.next(), it.next(), it.next()) {
            (Some(BoltType::String(key)), Some(value), None) => {
                map.put(key, untag(value)?);
            }
            other => return Err(format!("a property pair is not [key, value]: {other:?}")),
        }
    }
    Ok(map)
}

fn untag(value: BoltType) -> Result<BoltType, String> {
    match value {
        BoltType::Map(m) => untag_map(m),
        BoltType::List(l) => {
            // Only lists of points or durations contain maps; others pass unchanged.
            if l.value.iter().any(|v| matches!(v, BoltType::Map(_))) {
                let items = l
                    .value
                    .into_iter()
                    .map(|v| match v {
                        BoltType::Map(m) => untag_map(m),
                        other => Ok(other),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(BoltType::List(BoltList::from(items)))
            } else {
                Ok(BoltType::List(l))
            }
        }
        other => Ok(other),
    }
}

fn untag_map(m: BoltMap) -> Result<BoltType, String> {
    let bad = |m: &BoltMap| {
        format!("a map in a property value that is no tagged point or duration: {m:?}")
    };
    if m.value.len() != 1 {
        return Err(bad(&m));
    }
    let fields = |key: &str| -> Option<Vec<BoltType>> {
        match m.value.get(&BoltString::from(key)) {
            Some(BoltType::List(l)) => Some(l.value.clone()),
            _ => None,
        }
    };
    if let Some(f) = fields(POINT_TAG) {
        return match f.as_slice() {
            [BoltType::Integer(srid), BoltType::Float(x), BoltType::Float(y)] => {
                Ok(BoltType::Point2D(BoltPoint2D {
                    sr_id: srid.clone(),
                    x: x.clone(),
                    y: y.clone(),
                }))
            }
            [BoltType::Integer(srid), BoltType::Float(x), BoltType::Float(y), BoltType::Float(z)] => {
                Ok(BoltType::Point3D(BoltPoint3D {
                    sr_id: srid.clone(),
                    x: x.clone(),
                    y: y.clone(),
                    z: z.clone(),
                }))
            }
            _ => Err(bad(&m)),
        };
    }
    if let Some(f) = fields(DURATION_TAG) {
        return match f.as_slice() {
            [BoltType::Integer(mo), BoltType::Integer(d), BoltType::Integer(s), BoltType::Integer(n)] =>
            {
                // Cypher's `seconds` / `nanosecondsOfSecond` truncate toward zero (-0.5 s
                // is 0 s and -500,000,000 ns); Bolt keeps 0 <= nanoseconds < 10^9
                // (-1 s and 500,000,000 ns). Same value, brought to the Bolt fields.
                let (mut secs, mut nanos) = (s.value, n.value);
                if nanos < 0 {
                    secs -= 1;
                    nanos += 1_000_000_000;
                }
                Ok(BoltType::Duration(BoltDuration::new(
                    mo.clone(),
                    d.clone(),
                    secs.into(),
                    nanos.into(),
                )))
            }
            _ => Err(bad(&m)),
        };
    }
    Err(bad(&m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::canonical::encode_value;

    fn list(v: Vec<BoltType>) -> BoltType {
        BoltType::List(BoltList::from(v))
    }

    fn tagged(tag: &str, fields: Vec<BoltType>) -> BoltType {
        let mut m = BoltMap::new();
        m.put(BoltString::from(tag), list(fields));
        BoltType::Map(m)
    }

    fn enc(v: &BoltType) -> Vec<u8> {
        let mut out = Vec::new();
        encode_value(v, &mut out).unwrap();
        out
    }

    #[test]
    fn tagged_points_and_durations_become_bolt_values() {
        let pairs = BoltList::from(vec![
            list(vec![
                BoltType::from("p"),
                tagged(POINT_TAG, vec![7203.into(), 1.5f64.into(), 2.0f64.into()]),
            ]),
            list(vec![
                BoltType::from("q"),
                tagged(
                    POINT_TAG,
                    vec![4979.into(), 1.0f64.into(), 2.0f64.into(), 3.0f64.into()],
                ),
            ]),
            list(vec![
                BoltType::from("d"),
                list(vec![tagged(
                    DURATION_TAG,
                    vec![14.into(), 3.into(), (-1).into(), 5.into()],
                )]),
            ]),
            list(vec![BoltType::from("n"), list(vec![1.into(), 2.into()])]),
        ]);
        let map = from_pairs(pairs).unwrap();
        let get = |k: &str| map.value.get(&BoltString::from(k)).unwrap().clone();
        assert!(
            matches!(get("p"), BoltType::Point2D(p) if p.sr_id.value == 7203 && p.x.value == 1.5)
        );
        assert!(matches!(get("q"), BoltType::Point3D(p) if p.z.value == 3.0));
        let d = BoltType::Duration(BoltDuration::new(
            14.into(),
            3.into(),
            (-1).into(),
            5.into(),
        ));
        assert_eq!(enc(&get("d")), enc(&list(vec![d])));
        assert_eq!(enc(&get("n")), enc(&list(vec![1.into(), 2.into()])));
    }

    #[test]
    fn cypher_duration_components_become_bolt_fields() {
        // Cypher's truncated components of -0.999999995 s become Bolt's (-1 s, 5 ns).
        let neg = from_pairs(BoltList::from(vec![list(vec![
            BoltType::from("d"),
            tagged(
                DURATION_TAG,
                vec![0.into(), 0.into(), 0.into(), (-999_999_995).into()],
            ),
        ])]))
        .unwrap();
        let want = BoltType::Duration(BoltDuration::new(0.into(), 0.into(), (-1).into(), 5.into()));
        assert_eq!(enc(&neg.value[&BoltString::from("d")]), enc(&want));
    }

    #[test]
    fn a_duration_never_encodes_like_its_fields_or_another_split() {
        let d = |mo: i64, days: i64, s: i64| {
            BoltType::Duration(BoltDuration::new(
                mo.into(),
                days.into(),
                s.into(),
                0.into(),
            ))
        };
        // One month and its neo4rs-serde seconds, one day and 86,400 s: all distinct.
        assert_ne!(enc(&d(1, 0, 0)), enc(&d(0, 0, 2_629_800)));
        assert_ne!(enc(&d(0, 1, 0)), enc(&d(0, 0, 86_400)));
        assert_ne!(enc(&d(0, 0, 1)), enc(&list(vec![1.into(), 0.into()])));
    }

    #[test]
    fn malformed_pairs_and_untagged_maps_are_errors() {
        assert!(from_pairs(BoltList::from(vec![BoltType::from("x")])).is_err());
        let mut m = BoltMap::new();
        m.put(BoltString::from("a"), BoltType::from(1));
        let pair = list(vec![BoltType::from("k"), BoltType::Map(m)]);
        assert!(from_pairs(BoltList::from(vec![pair])).is_err());
        let short = list(vec![
            BoltType::from("k"),
            tagged(POINT_TAG, vec![7203.into(), 1.0f64.into()]),
        ]);
        assert!(from_pairs(BoltList::from(vec![short])).is_err());
    }

    #[test]
    fn the_map_read_keeps_properties_and_the_pairs_read_uses_value_type() {
        assert_eq!(expression(PropertyRead::Map, "n"), "properties(n)");
        let e = expression(PropertyRead::TaggedPairs, "a");
        assert!(
            e.contains("keys(a)") && e.contains("valueType(a[k])"),
            "{e}"
        );
        assert!(
            e.contains("`cutover.point`") && e.contains("nanosecondsOfSecond"),
            "{e}"
        );
    }
}
