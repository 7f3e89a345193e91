//! Plans: a runbook resolved against an environment and params, validated as a DAG, with a hash.
