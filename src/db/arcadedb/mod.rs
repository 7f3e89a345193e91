//! The `arcadedb` engine: the local rehearsal engine.
