//! Runbook and environment files: raw TOML → validated types, with file:line:column for every problem.
