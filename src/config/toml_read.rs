//! Reading TOML with spans and collecting every problem instead of stopping at the first.
//!
//! Raw structs with `deny_unknown_fields` report only the first unknown key; operators
//! fixing a runbook at 00:30 want the whole list. This walker checks keys and types
//! itself and records each problem with its `file:line:column`.

use super::source::{Location, Problem, Problems, SourceFile};
use std::ops::Range;
use toml_edit::{ImDocument, Item, TableLike, Value};

/// A value with the byte span it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Option<Range<usize>>,
}

/// Walks one parsed file, collecting problems.
pub struct TomlReader<'s> {
    pub source: &'s SourceFile,
    pub problems: Problems,
}

impl<'s> TomlReader<'s> {
    pub fn new(source: &'s SourceFile) -> Self {
        Self {
            source,
            problems: Problems::default(),
        }
    }

    /// Parses the file; a syntax error is one located problem.
    pub fn parse(source: &SourceFile) -> Result<ImDocument<String>, Problems> {
        ImDocument::parse(source.text.clone()).map_err(|e| {
            let location = source.locate(e.span());
            let message = e.message().trim().to_string();
            Problems::single(Problem::at(location, format!("invalid TOML: {message}")))
        })
    }

    pub fn locate(&self, span: Option<Range<usize>>) -> Location {
        self.source.locate(span)
    }

    pub fn problem(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let location = self.locate(span);
        self.problems.push(Problem::at(location, message));
    }

    pub fn problem_with_hint(
        &mut self,
        span: Option<Range<usize>>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let location = self.locate(span);
        self.problems
            .push(Problem::at(location, message).with_hint(hint));
    }

    /// Records every key of `table` that is not in `allowed`, suggesting the closest one.
    pub fn check_keys(&mut self, table: &dyn TableLike, allowed: &[&str], context: &str) {
        for (key, _) in table.iter() {
            if allowed.contains(&key) {
                continue;
            }
            let span = table.key(key).and_then(|k| k.span());
            match closest(key, allowed) {
                Some(best) => self.problem_with_hint(
                    span,
                    format!("unknown key `{key}` in {context}"),
                    format!("did you mean `{best}`?"),
                ),
                None => self.problem_with_hint(
                    span,
                    format!("unknown key `{key}` in {context}"),
                    format!("allowed keys: {}", allowed.join(", ")),
                ),
            }
        }
    }

    /// Span of the key `name` in `table`, falling back to the value's span.
    pub fn key_span(table: &dyn TableLike, name: &str) -> Option<Range<usize>> {
        table
            .key(name)
            .and_then(|k| k.span())
            .or_else(|| table.get(name).and_then(Item::span))
    }

    /// The table at `name` in `table`, if there is one; records a problem ("`what` must be
    /// a table, found …", with `hint`) when the value there is something else.
    pub fn sub_table<'t>(
        &mut self,
        table: &'t dyn TableLike,
        name: &str,
        what: &str,
        hint: &str,
    ) -> Option<&'t dyn TableLike> {
        let item = table.get(name)?;
        let found = item.as_table_like();
        if found.is_none() {
            self.problem_with_hint(
                item.span(),
                format!("{what} must be a table, found {}", type_name(item)),
                hint,
            );
        }
        found
    }

    /// A string value; records a problem when it is missing (and required) or not a string.
    pub fn string(
        &mut self,
        table: &dyn TableLike,
        name: &str,
        required: bool,
        context: &str,
        table_span: Option<Range<usize>>,
    ) -> Option<Spanned<String>> {
        match table.get(name) {
            None => {
                if required {
                    self.problem(
                        table_span,
                        format!("{context} is missing required key `{name}`"),
                    );
                }
                None
            }
            Some(item) => match item.as_str() {
                Some(s) => Some(Spanned {
                    value: s.to_string(),
                    span: item.span(),
                }),
                None => {
                    self.problem(
                        item.span(),
                        format!(
                            "`{name}` in {context} must be a string, found {}",
                            type_name(item)
                        ),
                    );
                    None
                }
            },
        }
    }

    /// A list of strings (a single string is not accepted: lists stay lists).
    pub fn string_list(
        &mut self,
        table: &dyn TableLike,
        name: &str,
        context: &str,
    ) -> Vec<Spanned<String>> {
        let Some(item) = table.get(name) else {
            return Vec::new();
        };
        let Some(array) = item.as_array() else {
            self.problem(
                item.span(),
                format!(
                    "`{name}` in {context} must be a list of strings, found {}",
                    type_name(item)
                ),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for value in array.iter() {
            match value.as_str() {
                Some(s) => out.push(Spanned {
                    value: s.to_string(),
                    span: value.span(),
                }),
                None => self.problem(
                    value.span(),
                    format!("`{name}` in {context} must contain only strings"),
                ),
            }
        }
        out
    }

    /// A non-negative integer.
    pub fn unsigned(
        &mut self,
        table: &dyn TableLike,
        name: &str,
        context: &str,
    ) -> Option<Spanned<u64>> {
        let item = table.get(name)?;
        match item.as_integer() {
            Some(n) if n >= 0 => Some(Spanned {
                value: n as u64,
                span: item.span(),
            }),
            _ => {
                self.problem(
                    item.span(),
                    format!("`{name}` in {context} must be a non-negative integer"),
                );
                None
            }
        }
    }

    /// `true` or `false`.
    pub fn boolean(
        &mut self,
        table: &dyn TableLike,
        name: &str,
        context: &str,
    ) -> Option<Spanned<bool>> {
        let item = table.get(name)?;
        match item.as_bool() {
            Some(b) => Some(Spanned {
                value: b,
                span: item.span(),
            }),
            None => {
                self.problem(
                    item.span(),
                    format!(
                        "`{name}` in {context} must be true or false, found {}",
                        type_name(item)
                    ),
                );
                None
            }
        }
    }

    /// A duration written as `"30s"`, `"5m"`, `"1h30m"`, `"250ms"`.
    pub fn duration(
        &mut self,
        table: &dyn TableLike,
        name: &str,
        context: &str,
    ) -> Option<Spanned<std::time::Duration>> {
        let item = table.get(name)?;
        let parsed = item.as_str().map(parse_duration);
        match parsed {
            Some(Ok(d)) => Some(Spanned {
                value: d,
                span: item.span(),
            }),
            Some(Err(e)) => {
                self.problem(item.span(), format!("`{name}` in {context}: {e}"));
                None
            }
            None => {
                self.problem(
                    item.span(),
                    format!(
                        "`{name}` in {context} must be a duration string like \"30s\" or \"5m\""
                    ),
                );
                None
            }
        }
    }
}

/// Human name of a TOML item's type, for messages.
pub fn type_name(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Table(_) | Item::Value(Value::InlineTable(_)) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
        Item::Value(v) => value_type_name(v),
    }
}

pub fn value_type_name(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(_) => "a list",
        Value::InlineTable(_) => "a table",
    }
}

/// Converts a TOML item to JSON (datetimes become strings). `None` for `Item::None`.
pub fn to_json(item: &Item) -> Option<serde_json::Value> {
    match item {
        Item::None => None,
        Item::Value(v) => Some(value_to_json(v)),
        Item::Table(t) => Some(table_to_json(t)),
        Item::ArrayOfTables(a) => Some(serde_json::Value::Array(
            a.iter().map(|t| table_to_json(t)).collect(),
        )),
    }
}

pub fn table_to_json(table: &dyn TableLike) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (k, v) in table.iter() {
        if let Some(json) = to_json(v) {
            map.insert(k.to_string(), json);
        }
    }
    serde_json::Value::Object(map)
}

pub fn value_to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::String(s) => J::String(s.value().clone()),
        Value::Integer(i) => J::from(*i.value()),
        Value::Float(f) => serde_json::Number::from_f64(*f.value())
            .map(J::Number)
            .unwrap_or(J::Null),
        Value::Boolean(b) => J::Bool(*b.value()),
        Value::Datetime(d) => J::String(d.value().to_string()),
        Value::Array(a) => J::Array(a.iter().map(value_to_json).collect()),
        Value::InlineTable(t) => table_to_json(t),
    }
}

/// Parses `"250ms"`, `"30s"`, `"5m"`, `"2h"`, `"1h30m"`, `"1d"`. Zero is allowed.
/// The longest duration a runbook may write: ten years.
const MAX_DURATION_MS: u128 = 3650 * 86_400_000;

pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration; write e.g. \"30s\" or \"5m\"".into());
    }
    let mut total_ms: u128 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!(
                "invalid duration \"{text}\"; write e.g. \"30s\", \"5m\", \"1h30m\""
            ));
        }
        let number: u128 = rest[..digits]
            .parse()
            .map_err(|_| format!("duration \"{text}\" is too large"))?;
        rest = rest[digits..].trim_start();
        let unit_len = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = rest[unit_len..].trim_start();
        let factor: u128 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(format!("duration \"{text}\" needs a unit (ms, s, m, h, d)")),
            other => {
                return Err(format!(
                    "unknown unit `{other}` in duration \"{text}\" (use ms, s, m, h, d)"
                ))
            }
        };
        total_ms = total_ms.saturating_add(number.saturating_mul(factor));
    }
    // Beyond this an `Instant` plus the duration may overflow; no run lasts that long.
    if total_ms > MAX_DURATION_MS {
        return Err(format!("duration \"{text}\" is too large (at most 3650d)"));
    }
    let ms = total_ms as u64;
    Ok(std::time::Duration::from_millis(ms))
}

/// Formats a duration the way [`parse_duration`] reads it.
pub fn format_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let mut s = (ms / 1000) as u64;
    let mut out = String::new();
    for (unit, size) in [("h", 3600), ("m", 60), ("s", 1)] {
        if s >= size {
            out.push_str(&format!("{}{unit}", s / size));
            s %= size;
        }
    }
    out
}

/// The allowed word closest to `word` by edit distance, if reasonably close.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_parse_and_format_round_trip() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert!(parse_duration("5").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("5y")
            .unwrap_err()
            .contains("unknown unit `y`"));
        assert!(parse_duration("5 minutes")
            .unwrap_err()
            .contains("unknown unit `minutes`"));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn closest_suggests_near_misses_only() {
        assert_eq!(closest("needs", &["needs", "uses", "id"]), Some("needs"));
        assert_eq!(closest("zzzzzz", &["needs", "uses", "id"]), None);
    }
}
