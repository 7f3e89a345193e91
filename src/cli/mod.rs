//! The command-line interface: parse, call the library, render. The only place that prints.

pub mod digest;

/// How a command writes its result to stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text.
    #[default]
    Human,
    /// One JSON document (or JSON lines for streams of events).
    Json,
}
