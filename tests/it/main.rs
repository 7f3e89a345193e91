//! The integration tests: one binary, one module per area, all against real services.
mod aws_ami;
mod aws_compute;
mod aws_exec;
mod aws_iam;
mod aws_lease;
mod aws_parameters;
// The end-to-end AWS rehearsal runs in `make rehearse-aws` only (feature `rehearsal`):
// it takes 12-20 minutes, more than `make test`'s whole budget. See Cargo.toml.
#[cfg(feature = "rehearsal")]
mod aws_rehearsal;
mod aws_rig_ssm;
mod aws_run;
mod aws_s3;
mod aws_secrets;
mod aws_support;
mod aws_traffic;
mod engine_cli;
mod engine_crash_resume;
mod engine_lock;
mod engine_rollback;
mod engine_validation;
mod fault_injection;
mod harness;
mod harness_smoke;
mod integrity;
mod layers;
mod ledger;
mod ledger_bulk_load;
mod local_arcadedb;
mod local_bluegreen;
mod local_provider;
mod neo4j_engine;
mod neo4j_integrity;
mod neo4j_scripts;
mod render_snapshots;
mod shipped_files;
mod terraform_stage;
