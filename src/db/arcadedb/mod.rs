//! The `arcadedb` engine: the local rehearsal engine.

pub mod install;
pub mod server;

pub use install::ArcadeInstall;
pub use server::{free_loopback_port, ArcadeHttp, ArcadeServer, ArcadeServerConfig, StopOutcome};
