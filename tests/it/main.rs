//! The integration tests: one binary, one module per area, all against real services.
mod harness;
mod harness_smoke;
mod engine_cli;
mod engine_crash_resume;
mod engine_lock;
mod engine_validation;
mod aws_compute;
mod aws_exec;
mod aws_lease;
mod aws_s3;
mod aws_secrets;
mod aws_support;
mod aws_traffic;
mod neo4j_scripts;
