//! Runbook and environment files: raw TOML → validated types, with `file:line:column`
//! for every problem, all reported at once.

pub mod environment;
pub mod expr;
pub mod runbook;
pub mod source;
pub mod toml_read;

pub use environment::{Environment, ProviderKind};
pub use runbook::Runbook;
pub use source::{Location, Problem, Problems, SourceFile};

#[cfg(test)]
mod environment_tests;
#[cfg(test)]
mod hostile_tests;
