//! The seam through which a test build wraps the services a step uses: failure injection
//! is a wrapper around the trait objects (a database engine that stops green before its
//! restore, an object store that corrupts an artifact after its manifest), not code in
//! the steps.
//!
//! Guarantees: the `cutover` binary installs no hooks, so in it every step gets the
//! provider's and the engine's objects unchanged and nothing here reads the
//! environment; the wrappers themselves live outside the library, in the test build of
//! the CLI (`examples/cutover_faults/`), so they cannot be reached from a production
//! binary. Hooks are installed once per process, before the CLI starts.

use crate::db::DatabaseEngine;
use crate::ids::StepId;
use crate::providers::ProviderSet;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// Wrappers a test build puts around what each step uses. Every method defaults to
/// "unchanged".
pub trait ServiceHooks: Send + Sync {
    /// The providers `step` sees.
    fn providers(&self, _step: &StepId, providers: ProviderSet) -> ProviderSet {
        providers
    }
    /// The engine `step` drives (`providers`: the ones it sees, when the run has any).
    fn engine(
        &self,
        _step: &StepId,
        engine: Arc<dyn DatabaseEngine>,
        _providers: Option<&ProviderSet>,
    ) -> Arc<dyn DatabaseEngine> {
        engine
    }
    /// Called after record `seq` of the journal at `journal` is on disk.
    fn journaled(&self, _journal: &Path, _seq: u64) {}
}

static HOOKS: OnceLock<Arc<dyn ServiceHooks>> = OnceLock::new();

/// Installs `hooks` for the rest of the process. Refused (returns them back) when hooks
/// are installed already.
pub fn install(hooks: Arc<dyn ServiceHooks>) -> Result<(), Arc<dyn ServiceHooks>> {
    HOOKS.set(hooks)
}

/// The installed hooks; `None` in the `cutover` binary.
pub fn installed() -> Option<&'static Arc<dyn ServiceHooks>> {
    HOOKS.get()
}
