//! What a step kind declares: its name, typed inputs, outputs, and what it changes. Each
//! step module declares its kinds with these types; [`super::catalogue`] lists them all.
//! A leaf: nothing here knows any step module.

use super::Step;

/// The type an input must have. Literals are checked when the plan is built; references
/// are checked when their type is known, and again when the step runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    String,
    Integer,
    Float,
    Bool,
    /// A string like `"30s"`.
    Duration,
    List,
    Map,
    /// A boolean expression over references; the engine evaluates it and the step
    /// receives a bool.
    Condition,
    Any,
}

impl ValueType {
    pub fn name(self) -> &'static str {
        match self {
            ValueType::String => "a string",
            ValueType::Integer => "an integer",
            ValueType::Float => "a number",
            ValueType::Bool => "a boolean",
            ValueType::Duration => "a duration like \"30s\"",
            ValueType::List => "a list",
            ValueType::Map => "a table",
            ValueType::Condition => "a condition",
            ValueType::Any => "any value",
        }
    }

    /// Whether a concrete value fits. Strings holding references are checked later.
    pub fn accepts(self, value: &serde_json::Value) -> bool {
        use serde_json::Value as J;
        match (self, value) {
            (ValueType::Any, _) => true,
            (ValueType::String | ValueType::Condition, J::String(_)) => true,
            (ValueType::Integer, J::Number(n)) => n.is_i64() || n.is_u64(),
            (ValueType::Float, J::Number(_)) => true,
            (ValueType::Bool, J::Bool(_)) => true,
            (ValueType::Duration, J::String(s)) => {
                crate::config::toml_read::parse_duration(s).is_ok()
            }
            (ValueType::List, J::Array(_)) => true,
            (ValueType::Map, J::Object(_)) => true,
            _ => false,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct InputSpec {
    pub name: &'static str,
    pub ty: ValueType,
    pub required: bool,
    pub doc: &'static str,
}

/// Which outputs a kind produces.
#[derive(Clone, Copy, Debug)]
pub enum OutputSpec {
    Fixed(&'static [&'static str]),
    /// Outputs are named by the runbook (e.g. `util.shell` writes `key=value` lines).
    Dynamic,
}

impl OutputSpec {
    pub fn has(&self, name: &str) -> bool {
        match self {
            OutputSpec::Fixed(names) => names.contains(&name),
            OutputSpec::Dynamic => true,
        }
    }
}

/// A step kind.
pub struct StepKind {
    pub name: &'static str,
    pub summary: &'static str,
    pub inputs: &'static [InputSpec],
    pub outputs: OutputSpec,
    /// What running it changes in the world, for `cutover plan`; empty for read-only.
    pub changes: &'static str,
    /// What its built-in compensation does, if it has one.
    pub compensation: Option<&'static str>,
    pub build: fn() -> Box<dyn Step>,
}

impl std::fmt::Debug for StepKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}
