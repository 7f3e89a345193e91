//! References and conditions inside runbooks.
//!
//! Inputs may refer to other values with `${{ ref }}`, where `ref` is one of
//! `params.NAME`, `env.PATH.TO.VALUE`, `steps.ID.outputs.NAME` or `run.id`. A string that
//! is exactly one reference keeps the referenced value's type; otherwise references are
//! interpolated as text. Conditions (`when`, `util.assert`) are small boolean
//! expressions over the same references: `!`, `&&`, `||`, `==`, `!=`, `<`, `<=`, `>`,
//! `>=`, parentheses, and literals (`'text'`, numbers, `true`, `false`, `null`).

use serde_json::Value;
use std::fmt;

/// What a reference points at.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ref {
    Param(String),
    Env(Vec<String>),
    StepOutput { step: String, output: String },
    Run(String),
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ref::Param(p) => write!(f, "params.{p}"),
            Ref::Env(path) => write!(f, "env.{}", path.join(".")),
            Ref::StepOutput { step, output } => write!(f, "steps.{step}.outputs.{output}"),
            Ref::Run(field) => write!(f, "run.{field}"),
        }
    }
}

/// Fields of `run.` that exist.
pub const RUN_FIELDS: &[&str] = &["id", "dir", "environment"];

impl Ref {
    pub fn parse(text: &str) -> Result<Ref, String> {
        let text = text.trim();
        let parts: Vec<&str> = text.split('.').collect();
        if parts.iter().any(|p| {
            p.is_empty()
                || !p
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        }) {
            return Err(format!("`{text}` is not a reference (expected e.g. params.name, steps.id.outputs.name, env.path)"));
        }
        match parts.as_slice() {
            ["params", name] => Ok(Ref::Param((*name).to_string())),
            ["env", rest @ ..] if !rest.is_empty() => {
                Ok(Ref::Env(rest.iter().map(|s| s.to_string()).collect()))
            }
            ["steps", step, "outputs", output] => Ok(Ref::StepOutput {
                step: (*step).to_string(),
                output: (*output).to_string(),
            }),
            ["run", field] => Ok(Ref::Run((*field).to_string())),
            ["steps", ..] => Err(format!(
                "`{text}`: step references look like steps.ID.outputs.NAME"
            )),
            _ => Err(format!(
                "`{text}` does not start with params., env., steps. or run."
            )),
        }
    }
}

/// One piece of a template string.
#[derive(Clone, Debug, PartialEq)]
pub enum Piece {
    Text(String),
    Ref(Ref),
}

/// A string that may contain `${{ ref }}` references.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    pub pieces: Vec<Piece>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("${{") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 3..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed `${{{{` in \"{text}\""))?;
            pieces.push(Piece::Ref(Ref::parse(&after[..end])?));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template { pieces })
    }

    pub fn refs(&self) -> impl Iterator<Item = &Ref> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Ref(r) => Some(r),
            Piece::Text(_) => None,
        })
    }

    /// Resolves the template. A template that is exactly one reference keeps its type.
    pub fn resolve(&self, lookup: &dyn Fn(&Ref) -> Option<Value>) -> Result<Value, String> {
        if let [Piece::Ref(r)] = self.pieces.as_slice() {
            return lookup(r).ok_or_else(|| format!("`{r}` has no value"));
        }
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Ref(r) => {
                    let v = lookup(r).ok_or_else(|| format!("`{r}` has no value"))?;
                    out.push_str(&display_value(&v));
                }
            }
        }
        Ok(Value::String(out))
    }
}

/// A value as text for interpolation: strings without quotes, others as JSON.
pub fn display_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Finds every reference inside a JSON value's strings.
pub fn refs_in_value(value: &Value, out: &mut Vec<Ref>) -> Result<(), String> {
    match value {
        Value::String(s) => {
            out.extend(Template::parse(s)?.refs().cloned());
        }
        Value::Array(items) => {
            for item in items {
                refs_in_value(item, out)?;
            }
        }
        Value::Object(map) => {
            for item in map.values() {
                refs_in_value(item, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Resolves every template inside a JSON value.
pub fn resolve_value(
    value: &Value,
    lookup: &dyn Fn(&Ref) -> Option<Value>,
) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) => Template::parse(s)?.resolve(lookup)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| resolve_value(v, lookup))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), resolve_value(v, lookup)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// A parsed boolean condition.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    Literal(Value),
    Ref(Ref),
    Not(Box<Condition>),
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
    Compare(Box<Condition>, CompareOp, Box<Condition>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// The most tokens (references, literals, operators, parentheses) one condition may hold.
pub const MAX_CONDITION_TOKENS: usize = 256;
/// The deepest nesting of parentheses and `!` one condition may have.
pub const MAX_CONDITION_DEPTH: usize = 32;

impl Condition {
    /// Parses a condition. `${{ … }}` around the whole expression is accepted too.
    pub fn parse(text: &str) -> Result<Condition, String> {
        let mut inner = text.trim();
        if let Some(stripped) = inner.strip_prefix("${{").and_then(|s| s.strip_suffix("}}")) {
            inner = stripped.trim();
        }
        let tokens = tokenize(inner)?;
        // Parsing, evaluating and dropping recurse once per nesting level or operator:
        // bound the size so a hostile condition is an error, not a stack overflow.
        if tokens.len() > MAX_CONDITION_TOKENS {
            return Err(format!(
                "condition has {} tokens, more than the {MAX_CONDITION_TOKENS} allowed; split it into steps",
                tokens.len()
            ));
        }
        let mut parser = Parser {
            tokens,
            pos: 0,
            depth: 0,
        };
        let cond = parser.or()?;
        if parser.pos != parser.tokens.len() {
            return Err(format!(
                "unexpected `{}` in condition \"{text}\"",
                parser.tokens[parser.pos]
            ));
        }
        Ok(cond)
    }

    pub fn refs(&self, out: &mut Vec<Ref>) {
        match self {
            Condition::Literal(_) => {}
            Condition::Ref(r) => out.push(r.clone()),
            Condition::Not(c) => c.refs(out),
            Condition::And(a, b) | Condition::Or(a, b) | Condition::Compare(a, _, b) => {
                a.refs(out);
                b.refs(out);
            }
        }
    }

    /// Evaluates to a value; missing references are an error (never silently false).
    pub fn value(&self, lookup: &dyn Fn(&Ref) -> Option<Value>) -> Result<Value, String> {
        Ok(match self {
            Condition::Literal(v) => v.clone(),
            Condition::Ref(r) => lookup(r).ok_or_else(|| format!("`{r}` has no value"))?,
            Condition::Not(c) => Value::Bool(!truthy(&c.value(lookup)?)),
            Condition::And(a, b) => {
                Value::Bool(truthy(&a.value(lookup)?) && truthy(&b.value(lookup)?))
            }
            Condition::Or(a, b) => {
                Value::Bool(truthy(&a.value(lookup)?) || truthy(&b.value(lookup)?))
            }
            Condition::Compare(a, op, b) => {
                let (a, b) = (a.value(lookup)?, b.value(lookup)?);
                Value::Bool(compare(&a, *op, &b)?)
            }
        })
    }

    pub fn eval(&self, lookup: &dyn Fn(&Ref) -> Option<Value>) -> Result<bool, String> {
        Ok(truthy(&self.value(lookup)?))
    }
}

/// `false`, `null`, `0`, `""` and empty collections are false; everything else true.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn compare(a: &Value, op: CompareOp, b: &Value) -> Result<bool, String> {
    use CompareOp::*;
    match op {
        Eq => return Ok(loosely_equal(a, b)),
        Ne => return Ok(!loosely_equal(a, b)),
        _ => {}
    }
    let ordering = match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64().partial_cmp(&y.as_f64()),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
    .ok_or_else(|| format!("cannot order {a} and {b}"))?;
    Ok(match op {
        Lt => ordering.is_lt(),
        Le => ordering.is_le(),
        Gt => ordering.is_gt(),
        Ge => ordering.is_ge(),
        Eq | Ne => unreachable!("handled above"),
    })
}

/// Numbers compare by value (1 == 1.0); everything else structurally.
fn loosely_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Num(serde_json::Number),
    Op(&'static str),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Ident(s) => f.write_str(s),
            Token::Str(s) => write!(f, "'{s}'"),
            Token::Num(n) => write!(f, "{n}"),
            Token::Op(o) => f.write_str(o),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    const OPS: &[&str] = &["&&", "||", "==", "!=", "<=", ">=", "<", ">", "!", "(", ")"];
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' {
            let end = chars[i + 1..]
                .iter()
                .position(|&d| d == c)
                .ok_or_else(|| format!("unclosed quote in \"{text}\""))?;
            tokens.push(Token::Str(chars[i + 1..i + 1 + end].iter().collect()));
            i += end + 2;
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let len = 1 + chars[i + 1..]
                .iter()
                .take_while(|d| d.is_ascii_digit() || **d == '.')
                .count();
            let s: String = chars[i..i + len].iter().collect();
            let n: serde_json::Number = s
                .parse()
                .map_err(|_| format!("invalid number `{s}` in \"{text}\""))?;
            tokens.push(Token::Num(n));
            i += len;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let len = chars[i..]
                .iter()
                .take_while(|d| d.is_ascii_alphanumeric() || matches!(d, '_' | '-' | '.'))
                .count();
            tokens.push(Token::Ident(chars[i..i + len].iter().collect()));
            i += len;
        } else {
            let rest: String = chars[i..].iter().take(2).collect();
            let op = OPS
                .iter()
                .find(|op| rest.starts_with(**op))
                .ok_or_else(|| format!("unexpected `{c}` in condition \"{text}\""))?;
            tokens.push(Token::Op(op));
            i += op.len();
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn deeper(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_CONDITION_DEPTH {
            return Err(format!(
                "condition nests deeper than {MAX_CONDITION_DEPTH} levels of `(` and `!`"
            ));
        }
        Ok(())
    }
    fn peek_op(&self, op: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Op(o)) if *o == op)
    }
    fn or(&mut self) -> Result<Condition, String> {
        let mut left = self.and()?;
        while self.peek_op("||") {
            self.pos += 1;
            left = Condition::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Condition, String> {
        let mut left = self.unary()?;
        while self.peek_op("&&") {
            self.pos += 1;
            left = Condition::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }
    fn unary(&mut self) -> Result<Condition, String> {
        if self.peek_op("!") {
            self.pos += 1;
            self.deeper()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Condition::Not(Box::new(inner)));
        }
        self.comparison()
    }
    fn comparison(&mut self) -> Result<Condition, String> {
        let left = self.atom()?;
        let op = match self.tokens.get(self.pos) {
            Some(Token::Op("==")) => CompareOp::Eq,
            Some(Token::Op("!=")) => CompareOp::Ne,
            Some(Token::Op("<")) => CompareOp::Lt,
            Some(Token::Op("<=")) => CompareOp::Le,
            Some(Token::Op(">")) => CompareOp::Gt,
            Some(Token::Op(">=")) => CompareOp::Ge,
            _ => return Ok(left),
        };
        self.pos += 1;
        let right = self.atom()?;
        Ok(Condition::Compare(Box::new(left), op, Box::new(right)))
    }
    fn atom(&mut self) -> Result<Condition, String> {
        let token = self
            .tokens
            .get(self.pos)
            .cloned()
            .ok_or("condition ends too early")?;
        self.pos += 1;
        match token {
            Token::Op("(") => {
                self.deeper()?;
                let inner = self.or()?;
                self.depth -= 1;
                if !self.peek_op(")") {
                    return Err("missing `)` in condition".into());
                }
                self.pos += 1;
                Ok(inner)
            }
            Token::Str(s) => Ok(Condition::Literal(Value::String(s))),
            Token::Num(n) => Ok(Condition::Literal(Value::Number(n))),
            Token::Ident(word) => match word.as_str() {
                "true" => Ok(Condition::Literal(Value::Bool(true))),
                "false" => Ok(Condition::Literal(Value::Bool(false))),
                "null" => Ok(Condition::Literal(Value::Null)),
                _ => Ok(Condition::Ref(Ref::parse(&word)?)),
            },
            Token::Op(o) => Err(format!("unexpected `{o}` in condition")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn a_condition_nested_or_chained_beyond_the_limit_is_an_error_not_a_stack_overflow() {
        for text in [
            format!("{}true{}", "(".repeat(100_000), ")".repeat(100_000)),
            format!("{}true", "!".repeat(100_000)),
            vec!["true"; 50_000].join(" && "),
        ] {
            let e = Condition::parse(&text).unwrap_err();
            assert!(e.contains("more than the 256 allowed"), "{e}");
        }
        for text in [
            format!("{}true{}", "(".repeat(33), ")".repeat(33)),
            format!("{}true", "!".repeat(34)),
        ] {
            let e = Condition::parse(&text).unwrap_err();
            assert!(e.contains("nests deeper than 32 levels"), "{e}");
        }
        // Up to the limits it parses and evaluates.
        let deep = format!("{}true{}", "(".repeat(32), ")".repeat(32));
        assert!(Condition::parse(&deep).unwrap().eval(&lookup).unwrap());
        let long = vec!["true"; 128].join(" && ");
        assert!(Condition::parse(&long).unwrap().eval(&lookup).unwrap());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]
        /// No input makes the expression parsers panic.
        #[test]
        fn the_expression_parsers_never_panic(text in "\\PC{0,200}") {
            let _ = Condition::parse(&text);
            let _ = Template::parse(&text);
            let _ = Ref::parse(&text);
            if let Ok(c) = Condition::parse(&text) {
                let _ = c.eval(&lookup);
            }
        }

        /// Inputs built from the grammar's own pieces reach deeper than random text.
        #[test]
        fn conditions_from_grammar_pieces_never_panic(
            pieces in prop::collection::vec(prop::sample::select(vec![
                "(", ")", "!", "&&", "||", "==", "!=", "<", "<=", ">", ">=", "'x'", "\"", "'",
                "1", "-2.5", "1.2.3", "true", "null", "params.count", "steps.a.outputs.ok",
                "env.", "run.id", "${{", "}}", "-", " ",
            ]), 0..40)
        ) {
            let text = pieces.join(" ");
            if let Ok(c) = Condition::parse(&text) {
                let _ = c.eval(&lookup);
            }
            let _ = Template::parse(&pieces.concat());
        }
    }

    fn lookup(r: &Ref) -> Option<Value> {
        match r.to_string().as_str() {
            "params.mode" => Some(json!("full")),
            "params.count" => Some(json!(3)),
            "steps.a.outputs.ok" => Some(json!(true)),
            _ => None,
        }
    }

    #[test]
    fn a_single_reference_keeps_its_type_and_text_interpolates() {
        let t = Template::parse("${{ params.count }}").unwrap();
        assert_eq!(t.resolve(&lookup).unwrap(), json!(3));
        let t = Template::parse("n=${{params.count}}, mode=${{ params.mode }}").unwrap();
        assert_eq!(t.resolve(&lookup).unwrap(), json!("n=3, mode=full"));
    }

    #[test]
    fn references_are_validated_syntactically() {
        assert!(Ref::parse("steps.a.output.x")
            .unwrap_err()
            .contains("steps.ID.outputs.NAME"));
        assert!(Ref::parse("foo.bar").is_err());
        assert!(Template::parse("${{ params.x")
            .unwrap_err()
            .contains("unclosed"));
    }

    #[test]
    fn conditions_evaluate_with_precedence() {
        let c = Condition::parse("params.mode == 'full' && !(params.count < 2) || false").unwrap();
        assert!(c.eval(&lookup).unwrap());
        let c = Condition::parse("${{ steps.a.outputs.ok }}").unwrap();
        assert!(c.eval(&lookup).unwrap());
        assert_eq!(
            Condition::parse("params.count == 3.0")
                .unwrap()
                .eval(&lookup),
            Ok(true)
        );
        assert!(Condition::parse("params.missing")
            .unwrap()
            .eval(&lookup)
            .unwrap_err()
            .contains("no value"));
        assert!(Condition::parse("params.mode ==").is_err());
    }
}
