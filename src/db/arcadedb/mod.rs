//! The `arcadedb` engine: the local rehearsal engine.

pub mod engine;
pub mod http;
pub mod install;
pub mod params;
pub mod server;

pub use engine::ArcadeEngine;
pub use http::ArcadeHttp;
pub use install::ArcadeInstall;
pub use server::{free_loopback_port, ArcadeServer, ArcadeServerConfig, StopOutcome};
