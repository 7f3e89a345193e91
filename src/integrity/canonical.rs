//! The canonical byte encoding of graph values, and the per-record hashes built on it.
//!
//! Two values encode to the same bytes **if and only if** they are the same value of the
//! same Bolt type. The encoding is a prefix code: every value starts with a one-byte type
//! tag, and every variable-length part carries its length, so a concatenation of encoded
//! values can be split back into the values it came from (no two different sequences of
//! values encode equal). All integers are big-endian.
//!
//! | tag  | type            | body                                                        |
//! |------|-----------------|-------------------------------------------------------------|
//! | 0x00 | null            | —                                                           |
//! | 0x01 | boolean         | one byte, 0 or 1                                            |
//! | 0x02 | integer         | i64                                                         |
//! | 0x03 | float           | the IEEE-754 bits as u64 (see below)                        |
//! | 0x04 | string          | u64 byte length, UTF-8 bytes                                |
//! | 0x05 | bytes           | u64 length, the bytes                                       |
//! | 0x06 | list            | u64 element count, the elements in their stored order      |
//! | 0x07 | map             | u64 entry count, entries sorted by key bytes: key as a string body (length + UTF-8), then the value |
//! | 0x10 | date            | i64 days since 1970-01-01                                   |
//! | 0x11 | time            | i64 nanoseconds since midnight, i64 UTC offset seconds      |
//! | 0x12 | local time      | i64 nanoseconds since midnight                              |
//! | 0x13 | datetime        | i64 epoch seconds, i64 nanoseconds, i64 UTC offset seconds |
//! | 0x14 | local datetime  | i64 seconds (as if UTC), i64 nanoseconds                    |
//! | 0x15 | datetime + zone | i64 seconds, i64 nanoseconds, zone id as a string body     |
//! | 0x16 | duration        | i64 months, days, seconds, nanoseconds                      |
//! | 0x17 | point 2D        | i64 SRID, x and y as float bits                             |
//! | 0x18 | point 3D        | i64 SRID, x, y and z as float bits                          |
//!
//! Decisions, and why:
//! - **Types never collide.** Integer `1`, float `1.0`, string `"1"` and `true` have
//!   different tags. A migration that turns an integer into a float has changed the
//!   data; the digest must say so.
//! - **Floats are their exact bits.** `0.1 + 0.2` and `0.3` differ. Every NaN (any sign,
//!   any payload) encodes as the one quiet NaN `0x7ff8_0000_0000_0000`, because NaN payloads
//!   are not preserved by the JVM or by drivers and carry no meaning. `-0.0` is **distinct**
//!   from `0.0`: a dump/load and Bolt both carry the sign bit, so a lost sign is a real
//!   change of stored bits (Cypher's `=` would call them equal; the digest is stricter on
//!   purpose). Infinities are their bits.
//! - **Strings are Unicode scalar values** as UTF-8 (a Rust `String` cannot hold anything
//!   else). No normalisation: NFC and NFD spellings of "é" are different stored data.
//! - **Maps are key-sorted** by the UTF-8 bytes of the key (= by scalar value), so the
//!   order a server returns properties in does not matter. **Lists keep their order**.
//! - **Temporal values** keep every field Bolt carries, including the offset or zone id:
//!   `12:00+01:00` and `11:00Z` are the same instant but different stored values.
//! - A null property does not exist in Neo4j; if a server returns one inside a map it is
//!   encoded as null (tag 0x00), not dropped, so that such a server is not silently
//!   equated with one that returns nothing.
//!
//! Record hashes (`node_hash`, `relationship_hash`) are SHA-256 over a domain-separation
//! prefix and the canonical encoding of the record's content; see [`node_hash`].

use neo4rs::BoltType;
use sha2::{Digest, Sha256};
use std::fmt;

/// Version of the encoding and record layout. Part of every fingerprint; two fingerprints
/// with different versions are never compared digest-by-digest.
pub const ENCODING_VERSION: &str = "cutover-canonical/v1";

/// The quiet NaN every NaN is mapped to.
pub const CANONICAL_NAN_BITS: u64 = 0x7ff8_0000_0000_0000;

/// A value the canonical encoding does not define (graph structures inside properties).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode a {0} as a property value")]
pub struct UnsupportedValue(pub &'static str);

/// The bits a float is encoded with: its own, except that every NaN is the canonical NaN.
pub fn float_bits(value: f64) -> u64 {
    if value.is_nan() {
        CANONICAL_NAN_BITS
    } else {
        value.to_bits()
    }
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// A string body: u64 byte length then the UTF-8 bytes (no tag).
pub fn put_str_body(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Appends the canonical encoding of a string value (tag + body).
pub fn encode_str(out: &mut Vec<u8>, s: &str) {
    out.push(0x04);
    put_str_body(out, s);
}

/// Appends the canonical encoding of `value` to `out`.
pub fn encode_value(value: &BoltType, out: &mut Vec<u8>) -> Result<(), UnsupportedValue> {
    match value {
        BoltType::Null(_) => out.push(0x00),
        BoltType::Boolean(b) => {
            out.push(0x01);
            out.push(u8::from(b.value));
        }
        BoltType::Integer(i) => {
            out.push(0x02);
            put_i64(out, i.value);
        }
        BoltType::Float(f) => {
            out.push(0x03);
            put_u64(out, float_bits(f.value));
        }
        BoltType::String(s) => encode_str(out, &s.value),
        BoltType::Bytes(b) => {
            out.push(0x05);
            put_u64(out, b.value.len() as u64);
            out.extend_from_slice(&b.value);
        }
        BoltType::List(l) => {
            out.push(0x06);
            put_u64(out, l.value.len() as u64);
            for item in &l.value {
                encode_value(item, out)?;
            }
        }
        BoltType::Map(m) => encode_map(m.value.iter().map(|(k, v)| (k.value.as_str(), v)), out)?,
        BoltType::Date(_)
        | BoltType::Time(_)
        | BoltType::LocalTime(_)
        | BoltType::DateTime(_)
        | BoltType::LocalDateTime(_)
        | BoltType::DateTimeZoneId(_)
        | BoltType::Duration(_) => encode_temporal(value, out),
        BoltType::Point2D(p) => {
            out.push(0x17);
            put_i64(out, p.sr_id.value);
            put_u64(out, float_bits(p.x.value));
            put_u64(out, float_bits(p.y.value));
        }
        BoltType::Point3D(p) => {
            out.push(0x18);
            put_i64(out, p.sr_id.value);
            put_u64(out, float_bits(p.x.value));
            put_u64(out, float_bits(p.y.value));
            put_u64(out, float_bits(p.z.value));
        }
        BoltType::Node(_) => return Err(UnsupportedValue("node")),
        BoltType::Relation(_) | BoltType::UnboundedRelation(_) => {
            return Err(UnsupportedValue("relationship"))
        }
        BoltType::Path(_) => return Err(UnsupportedValue("path")),
    }
    Ok(())
}

/// Appends a map (tag 0x07) with its entries sorted by key bytes.
pub fn encode_map<'a, I, K>(entries: I, out: &mut Vec<u8>) -> Result<(), UnsupportedValue>
where
    I: IntoIterator<Item = (&'a K, &'a BoltType)>,
    K: AsRef<str> + 'a + ?Sized,
{
    let mut sorted: Vec<(&str, &BoltType)> =
        entries.into_iter().map(|(k, v)| (k.as_ref(), v)).collect();
    sorted.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push(0x07);
    put_u64(out, sorted.len() as u64);
    for (k, v) in sorted {
        put_str_body(out, k);
        encode_value(v, out)?;
    }
    Ok(())
}

/// Encodes the temporal types. `neo4rs` keeps their Bolt fields crate-private, so the
/// common types go through its exact chrono conversions and the rest (and any value chrono
/// cannot represent) through the fields of the Bolt structure as its `Debug` form prints
/// them, in wire order. Both paths are injective; the fallback uses its own tag (0x1F) so
/// it can never collide with the fast path.
fn encode_temporal(value: &BoltType, out: &mut Vec<u8>) {
    use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};
    match value {
        BoltType::Date(d) => {
            if let Ok(date) = NaiveDate::try_from(d) {
                out.push(0x10);
                let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch is a date");
                put_i64(out, (date - epoch).num_days());
                return;
            }
        }
        BoltType::DateTime(d) => {
            if let Ok(dt) = DateTime::<FixedOffset>::try_from(d) {
                out.push(0x13);
                put_i64(out, dt.timestamp());
                put_i64(out, i64::from(dt.timestamp_subsec_nanos()));
                put_i64(out, i64::from(dt.offset().local_minus_utc()));
                return;
            }
        }
        BoltType::LocalDateTime(d) => {
            if let Ok(dt) = NaiveDateTime::try_from(d) {
                out.push(0x14);
                let utc = dt.and_utc();
                put_i64(out, utc.timestamp());
                put_i64(out, i64::from(utc.timestamp_subsec_nanos()));
                return;
            }
        }
        BoltType::DateTimeZoneId(d) => {
            if let Ok(dt) = NaiveDateTime::try_from(d) {
                out.push(0x15);
                let utc = dt.and_utc();
                put_i64(out, utc.timestamp());
                put_i64(out, i64::from(utc.timestamp_subsec_nanos()));
                put_str_body(out, d.tz_id());
                return;
            }
        }
        _ => {}
    }
    // Fallback: tag 0x1F, a sub-tag for the Bolt structure, then its integer fields and
    // strings in the order they appear in `Debug` (= wire order).
    let (sub, text) = match value {
        BoltType::Date(d) => (0x10u8, format!("{d:?}")),
        BoltType::Time(d) => (0x11, format!("{d:?}")),
        BoltType::LocalTime(d) => (0x12, format!("{d:?}")),
        BoltType::DateTime(d) => (0x13, format!("{d:?}")),
        BoltType::LocalDateTime(d) => (0x14, format!("{d:?}")),
        BoltType::DateTimeZoneId(d) => (0x15, format!("{d:?}")),
        BoltType::Duration(d) => (0x16, format!("{d:?}")),
        _ => unreachable!("encode_temporal is only called with temporal values"),
    };
    out.push(0x1F);
    out.push(sub);
    let fields = debug_fields(&text);
    put_u64(out, fields.len() as u64);
    for f in fields {
        match f {
            DebugField::Int(i) => {
                out.push(0x02);
                put_i64(out, i);
            }
            DebugField::Str(s) => encode_str(out, &s),
        }
    }
}

enum DebugField {
    Int(i64),
    Str(String),
}

/// Extracts `value: <int>` and `value: "<string>"` fields from a derived `Debug` string.
fn debug_fields(text: &str) -> Vec<DebugField> {
    let mut fields = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find("value: ") {
        rest = &rest[pos + "value: ".len()..];
        if let Some(stripped) = rest.strip_prefix('"') {
            // Debug-escaped string: keep the escaped form, it is injective.
            let mut end = 0;
            let bytes = stripped.as_bytes();
            while end < bytes.len() {
                if bytes[end] == b'\\' {
                    end += 2;
                    continue;
                }
                if bytes[end] == b'"' {
                    break;
                }
                end += 1;
            }
            let end = end.min(stripped.len());
            fields.push(DebugField::Str(stripped[..end].to_owned()));
            rest = &stripped[end..];
        } else {
            let end = rest
                .find(|c: char| !(c == '-' || c.is_ascii_digit()))
                .unwrap_or(rest.len());
            if let Ok(i) = rest[..end].parse::<i64>() {
                fields.push(DebugField::Int(i));
            }
            rest = &rest[end..];
        }
    }
    fields
}

/// A 256-bit record hash.
pub type RecordHash = [u8; 32];

/// Domain-separation prefixes so a node can never hash like a relationship.
const NODE_DOMAIN: &[u8] = b"cutover/node/v1\0";
const REL_DOMAIN: &[u8] = b"cutover/rel/v1\0";

/// Appends the canonical encoding of a label set: a list of strings, sorted by bytes,
/// duplicates removed.
pub fn encode_labels(labels: &[&str], out: &mut Vec<u8>) {
    let mut sorted: Vec<&str> = labels.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    out.push(0x06);
    put_u64(out, sorted.len() as u64);
    for l in sorted {
        encode_str(out, l);
    }
}

/// Starts a record hash: SHA-256 keyed by an optional salt (see `FingerprintOptions::salt`).
fn hasher(salt: Option<&[u8; 32]>, domain: &[u8]) -> Sha256 {
    let mut h = Sha256::new();
    if let Some(salt) = salt {
        h.update(b"salt");
        h.update(salt);
    }
    h.update(domain);
    h
}

/// The content hash of a node: `SHA-256([salt] || "cutover/node/v1\0" || labels || props)`
/// where labels is [`encode_labels`] and props the canonical map. Internal ids, element ids
/// and storage order take no part. `buf` is scratch space reused between calls.
pub fn node_hash(
    salt: Option<&[u8; 32]>,
    labels: &[&str],
    properties: &neo4rs::BoltMap,
    buf: &mut Vec<u8>,
) -> Result<RecordHash, UnsupportedValue> {
    buf.clear();
    encode_labels(labels, buf);
    encode_map(
        properties.value.iter().map(|(k, v)| (k.value.as_str(), v)),
        buf,
    )?;
    let mut h = hasher(salt, NODE_DOMAIN);
    h.update(&buf[..]);
    Ok(h.finalize().into())
}

/// How a relationship names one of its endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EndpointIdentity {
    /// The endpoint has a configured identity key: `label.property = value` (value in
    /// canonical encoding).
    Key {
        label: String,
        property: String,
        value: Vec<u8>,
    },
    /// No key configured for any of its labels: the endpoint's content hash.
    Content(RecordHash),
}

impl EndpointIdentity {
    /// Appends the canonical encoding: tag 0x20 + label + property + value, or tag 0x21 +
    /// the 32-byte content hash.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            EndpointIdentity::Key {
                label,
                property,
                value,
            } => {
                out.push(0x20);
                put_str_body(out, label);
                put_str_body(out, property);
                out.extend_from_slice(value);
            }
            EndpointIdentity::Content(hash) => {
                out.push(0x21);
                out.extend_from_slice(hash);
            }
        }
    }
}

impl fmt::Display for EndpointIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointIdentity::Key {
                label,
                property,
                value,
            } => {
                write!(f, "{label}.{property}={}", render_encoded(value))
            }
            EndpointIdentity::Content(hash) => write!(f, "content#{}", &hex::encode(hash)[..12]),
        }
    }
}

/// Best-effort human rendering of an encoded scalar (for diff output only).
fn render_encoded(value: &[u8]) -> String {
    match value.first() {
        Some(0x04) if value.len() >= 9 => format!("{:?}", String::from_utf8_lossy(&value[9..])),
        Some(0x02) if value.len() == 9 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&value[1..9]);
            i64::from_be_bytes(b).to_string()
        }
        Some(0x00) => "null".into(),
        _ => format!("0x{}", hex::encode(value)),
    }
}

/// The content hash of a relationship:
/// `SHA-256([salt] || "cutover/rel/v1\0" || type || props || start identity || end identity)`
/// with the type as a string value and the properties as a canonical map. Direction
/// matters: swapping the endpoints changes the hash.
pub fn relationship_hash(
    salt: Option<&[u8; 32]>,
    rel_type: &str,
    properties: &neo4rs::BoltMap,
    start: &EndpointIdentity,
    end: &EndpointIdentity,
    buf: &mut Vec<u8>,
) -> Result<RecordHash, UnsupportedValue> {
    buf.clear();
    encode_str(buf, rel_type);
    encode_map(
        properties.value.iter().map(|(k, v)| (k.value.as_str(), v)),
        buf,
    )?;
    start.encode(buf);
    end.encode(buf);
    let mut h = hasher(salt, REL_DOMAIN);
    h.update(&buf[..]);
    Ok(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use neo4rs::{BoltFloat, BoltInteger, BoltList, BoltMap, BoltString};
    use proptest::prelude::*;

    fn enc(v: &BoltType) -> Vec<u8> {
        let mut out = Vec::new();
        encode_value(v, &mut out).unwrap();
        out
    }

    #[test]
    fn integer_float_string_and_bool_never_collide() {
        let values = [
            BoltType::from(1i64),
            BoltType::from(1.0f64),
            BoltType::from("1"),
            BoltType::from(true),
            BoltType::Null(neo4rs::BoltNull),
        ];
        for (i, a) in values.iter().enumerate() {
            for b in values.iter().skip(i + 1) {
                assert_ne!(enc(a), enc(b), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn every_nan_is_one_nan_and_negative_zero_is_distinct() {
        let nan1 = f64::from_bits(0x7ff8_0000_0000_0001);
        let nan2 = f64::from_bits(0xfff8_0000_0000_0000);
        assert_eq!(enc(&BoltType::from(nan1)), enc(&BoltType::from(nan2)));
        assert_eq!(enc(&BoltType::from(f64::NAN)), enc(&BoltType::from(nan1)));
        assert_ne!(enc(&BoltType::from(0.0f64)), enc(&BoltType::from(-0.0f64)));
        assert_ne!(
            enc(&BoltType::from(f64::INFINITY)),
            enc(&BoltType::from(f64::NEG_INFINITY))
        );
        assert_ne!(
            enc(&BoltType::from(f64::INFINITY)),
            enc(&BoltType::from(f64::NAN))
        );
    }

    #[test]
    fn maps_are_key_sorted_and_lists_keep_order() {
        let mut m1 = BoltMap::new();
        m1.put(BoltString::from("b"), BoltType::from(2i64));
        m1.put(BoltString::from("a"), BoltType::from(1i64));
        let mut m2 = BoltMap::new();
        m2.put(BoltString::from("a"), BoltType::from(1i64));
        m2.put(BoltString::from("b"), BoltType::from(2i64));
        assert_eq!(enc(&BoltType::Map(m1)), enc(&BoltType::Map(m2)));
        let l1 = BoltType::List(BoltList::from(vec![
            BoltType::from(1i64),
            BoltType::from(2i64),
        ]));
        let l2 = BoltType::List(BoltList::from(vec![
            BoltType::from(2i64),
            BoltType::from(1i64),
        ]));
        assert_ne!(enc(&l1), enc(&l2));
    }

    #[test]
    fn nesting_boundaries_are_unambiguous() {
        // ["a","b"] vs ["ab"] vs [["a"],"b"]
        let s = |x: &str| BoltType::from(x);
        let l = |v: Vec<BoltType>| BoltType::List(BoltList::from(v));
        let a = l(vec![s("a"), s("b")]);
        let b = l(vec![s("ab")]);
        let c = l(vec![l(vec![s("a")]), s("b")]);
        assert_ne!(enc(&a), enc(&b));
        assert_ne!(enc(&a), enc(&c));
        assert_ne!(enc(&b), enc(&c));
    }

    #[test]
    fn temporal_values_keep_offset_and_zone() {
        use chrono::{FixedOffset, NaiveDate, TimeZone};
        let naive = NaiveDate::from_ymd_opt(2024, 1, 2)
            .unwrap()
            .and_hms_opt(3, 4, 5)
            .unwrap();
        let utc = FixedOffset::east_opt(0).unwrap().from_utc_datetime(&naive);
        let plus1 = FixedOffset::east_opt(3600)
            .unwrap()
            .from_utc_datetime(&naive);
        assert_ne!(enc(&BoltType::from(utc)), enc(&BoltType::from(plus1)));
        assert_eq!(enc(&BoltType::from(utc)), enc(&BoltType::from(utc)));
        assert_ne!(enc(&BoltType::from(naive)), enc(&BoltType::from(utc)));
        let d1 = BoltType::from(NaiveDate::from_ymd_opt(2024, 1, 2).unwrap());
        let d2 = BoltType::from(NaiveDate::from_ymd_opt(2024, 1, 3).unwrap());
        assert_ne!(enc(&d1), enc(&d2));
        let z1 = BoltType::from((naive, "Europe/Berlin"));
        let z2 = BoltType::from((naive, "Africa/Johannesburg"));
        assert_ne!(enc(&z1), enc(&z2));
        let du1 = BoltType::Duration(neo4rs::BoltDuration::new(
            1.into(),
            2.into(),
            3.into(),
            4.into(),
        ));
        let du2 = BoltType::Duration(neo4rs::BoltDuration::new(
            0.into(),
            2.into(),
            3.into(),
            4.into(),
        ));
        assert_ne!(enc(&du1), enc(&du2));
        let t1 = BoltType::from(chrono::NaiveTime::from_hms_opt(10, 0, 0).unwrap());
        let t2 = BoltType::from(chrono::NaiveTime::from_hms_opt(10, 0, 1).unwrap());
        assert_ne!(enc(&t1), enc(&t2));
    }

    #[test]
    fn node_hash_ignores_label_order_but_not_labels() {
        let props = BoltMap::new();
        let mut buf = Vec::new();
        let a = node_hash(None, &["A", "B"], &props, &mut buf).unwrap();
        let b = node_hash(None, &["B", "A"], &props, &mut buf).unwrap();
        let c = node_hash(None, &["A"], &props, &mut buf).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let salted = node_hash(Some(&[7u8; 32]), &["A", "B"], &props, &mut buf).unwrap();
        assert_ne!(a, salted);
    }

    #[test]
    fn relationship_direction_matters() {
        let props = BoltMap::new();
        let mut buf = Vec::new();
        let x = EndpointIdentity::Content([1u8; 32]);
        let y = EndpointIdentity::Content([2u8; 32]);
        let xy = relationship_hash(None, "OWES", &props, &x, &y, &mut buf).unwrap();
        let yx = relationship_hash(None, "OWES", &props, &y, &x, &mut buf).unwrap();
        assert_ne!(xy, yx);
    }

    /// Arbitrary Bolt property values, nested up to a few levels.
    pub(crate) fn arb_value() -> impl Strategy<Value = BoltType> {
        let leaf = prop_oneof![
            Just(BoltType::Null(neo4rs::BoltNull)),
            any::<bool>().prop_map(BoltType::from),
            any::<i64>().prop_map(|i| BoltType::Integer(BoltInteger::new(i))),
            any::<f64>().prop_map(|f| BoltType::Float(BoltFloat::new(f))),
            prop_oneof![Just(0.0f64), Just(-0.0), Just(1.0), Just(f64::INFINITY)]
                .prop_map(|f| BoltType::Float(BoltFloat::new(f))),
            "\\PC{0,6}".prop_map(|s| BoltType::from(s.as_str())),
            proptest::collection::vec(any::<u8>(), 0..4).prop_map(BoltType::from),
            (-100_000i64..100_000).prop_map(|d| BoltType::from(
                chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(d)
            )),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| BoltType::List(BoltList::from(v))),
                proptest::collection::btree_map("[a-c]{0,2}", inner, 0..4).prop_map(|m| {
                    let mut map = BoltMap::new();
                    for (k, v) in m {
                        map.put(BoltString::from(k.as_str()), v);
                    }
                    BoltType::Map(map)
                }),
            ]
        })
    }

    /// Value equality as the digest defines it (NaN = NaN, -0.0 ≠ 0.0).
    fn same(a: &BoltType, b: &BoltType) -> bool {
        match (a, b) {
            (BoltType::Float(x), BoltType::Float(y)) => float_bits(x.value) == float_bits(y.value),
            (BoltType::List(x), BoltType::List(y)) => {
                x.value.len() == y.value.len()
                    && x.value.iter().zip(&y.value).all(|(p, q)| same(p, q))
            }
            (BoltType::Map(x), BoltType::Map(y)) => {
                x.value.len() == y.value.len()
                    && x.value
                        .iter()
                        .all(|(k, v)| y.value.get(k).is_some_and(|w| same(v, w)))
            }
            _ => a == b,
        }
    }

    proptest! {
        #[test]
        fn distinct_values_never_encode_equal(a in arb_value(), b in arb_value()) {
            prop_assert_eq!(enc(&a) == enc(&b), same(&a, &b));
        }

        #[test]
        fn encoding_is_a_prefix_code(a in arb_value(), b in arb_value(), c in arb_value(), d in arb_value()) {
            // Two-value sequences encode equal only if the values are equal pairwise.
            let mut ab = enc(&a);
            ab.extend(enc(&b));
            let mut cd = enc(&c);
            cd.extend(enc(&d));
            prop_assert_eq!(ab == cd, same(&a, &c) && same(&b, &d));
        }
    }
}
