//! The integration tests: one binary, one module per area, all against real services.
mod harness;
mod harness_smoke;
