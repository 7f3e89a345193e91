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

/// Declares a step kind's inputs once: the struct its step deserializes them into and,
/// from the same lines, the [`InputSpec`]s the plan checks a runbook against
/// (`Name::INPUTS`, in declaration order). Each field reads
/// `name: RustType = required|optional ValueType, "doc";`. An optional field
/// deserializes with `#[serde(default)]` (an `Option`, or a type with a default); an
/// input the struct does not have is refused (`deny_unknown_fields`). So what the plan
/// accepts and what the step reads cannot drift apart.
///
/// ```text
/// step_inputs! {
///     struct WaitInputs {
///         duration: String = required Duration, "how long, e.g. \"30s\"";
///     }
/// }
/// ```
macro_rules! step_inputs {
    ($(#[$meta:meta])* $vis:vis struct $name:ident { $($body:tt)* }) => {
        $crate::steps::kind::step_inputs!(@field [$(#[$meta])* $vis struct $name] [] [] $($body)*);
    };
    (@field $head:tt [$($fields:tt)*] [$($specs:tt)*]
        $field:ident : $ty:ty = required $vt:ident, $doc:literal; $($rest:tt)*) => {
        $crate::steps::kind::step_inputs!(@field $head
            [$($fields)* $field: $ty,]
            [$($specs)* $crate::steps::kind::InputSpec {
                name: stringify!($field),
                ty: $crate::steps::kind::ValueType::$vt,
                required: true,
                doc: $doc,
            },]
            $($rest)*);
    };
    (@field $head:tt [$($fields:tt)*] [$($specs:tt)*]
        $field:ident : $ty:ty = optional $vt:ident, $doc:literal; $($rest:tt)*) => {
        $crate::steps::kind::step_inputs!(@field $head
            [$($fields)* #[serde(default)] $field: $ty,]
            [$($specs)* $crate::steps::kind::InputSpec {
                name: stringify!($field),
                ty: $crate::steps::kind::ValueType::$vt,
                required: false,
                doc: $doc,
            },]
            $($rest)*);
    };
    (@field [$(#[$meta:meta])* $vis:vis struct $name:ident] [$($fields:tt)*] [$($specs:tt)*]) => {
        $(#[$meta])*
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        $vis struct $name { $($fields)* }

        impl $name {
            /// These inputs as the plan checks them (declaration order).
            pub const INPUTS: &'static [$crate::steps::kind::InputSpec] = &[$($specs)*];
        }
    };
}
pub(crate) use step_inputs;

#[cfg(test)]
mod tests {
    step_inputs! {
        /// A kind's inputs, for the test.
        #[derive(Debug)]
        struct Example {
            database: String = required String, "the database";
            wait: Option<bool> = optional Bool, "whether to wait";
            tags: Vec<String> = optional List, "tags";
        }
    }

    #[test]
    fn one_declaration_gives_the_struct_and_the_plans_specs_in_order() {
        let specs: Vec<_> = Example::INPUTS
            .iter()
            .map(|s| (s.name, s.ty, s.required, s.doc))
            .collect();
        use super::ValueType::*;
        assert_eq!(
            specs,
            [
                ("database", String, true, "the database"),
                ("wait", Bool, false, "whether to wait"),
                ("tags", List, false, "tags"),
            ]
        );
        let only_required: Example =
            serde_json::from_value(serde_json::json!({ "database": "ledger" })).unwrap();
        assert_eq!(
            (only_required.wait, only_required.tags.len()),
            (None, 0),
            "optional inputs default"
        );
        assert_eq!(only_required.database, "ledger");
        let missing = serde_json::from_value::<Example>(serde_json::json!({ "wait": true }));
        assert!(missing.unwrap_err().to_string().contains("database"));
        let unknown = serde_json::from_value::<Example>(
            serde_json::json!({ "database": "ledger", "datbase": "x" }),
        );
        assert!(unknown.unwrap_err().to_string().contains("datbase"));
    }
}
