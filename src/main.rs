//! The `cutover` binary: the CLI (`cli/`) over the library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
