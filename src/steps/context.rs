//! What a running step can see and do besides its own work.

use super::Outputs;
use crate::config::Environment;
use crate::failure::Failure;
use crate::ids::{RunId, StepId};
use crate::progress::{ProgressEvent, ProgressHandle, WorkMeter};
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Where a step's durable notes go (the run's journal). Each call returns only after
/// the record is on disk.
pub trait StepRecorder: Send + Sync {
    fn intent(
        &self,
        step: &StepId,
        action: &str,
        token: &str,
        detail: serde_json::Value,
    ) -> Result<(), Failure>;
    fn checkpoint(&self, step: &StepId, state: serde_json::Value) -> Result<(), Failure>;
}

/// Services shared by every step of a run.
pub struct Services {
    pub environment: Arc<Environment>,
    /// `<state_dir>/runs/<run_id>`: the run's own directory (journal, scratch files).
    pub run_dir: PathBuf,
    pub progress: ProgressHandle,
    /// The environment's provider; `None` for runs of utility steps only.
    pub providers: Option<crate::providers::ProviderSet>,
}

#[cfg(test)]
impl Services {
    /// Services for step tests: the environment parsed from `env_text` (as `unit.toml`
    /// in `dir`, which is also the run directory) and `providers`.
    pub fn for_tests(
        dir: &std::path::Path,
        env_text: &str,
        providers: crate::providers::ProviderSet,
    ) -> Arc<Self> {
        let source = crate::config::source::SourceFile::new(dir.join("unit.toml"), env_text);
        let environment = Environment::parse(source).unwrap_or_else(|p| panic!("{p:?}"));
        Arc::new(Services {
            environment: Arc::new(environment),
            run_dir: dir.to_path_buf(),
            progress: crate::progress::no_progress(),
            providers: Some(providers),
        })
    }
}

/// The context of one step execution (or compensation).
pub struct StepContext {
    pub run_id: RunId,
    pub step_id: StepId,
    pub attempt: u32,
    /// Inputs with every reference resolved.
    pub inputs: Outputs,
    /// Stable for this step across attempts and resumed runs.
    pub idempotency_token: String,
    pub services: Arc<Services>,
    /// The run's providers as this step sees them (wrapped by the installed
    /// [`super::hooks`], in test builds).
    providers: Option<crate::providers::ProviderSet>,
    recorder: Arc<dyn StepRecorder>,
    /// This execution's own checkpoint: the forward step's, or in a compensation the
    /// compensation's (journaled apart, so it never overwrites the forward one).
    checkpoint: Mutex<Option<serde_json::Value>>,
    role: Role,
}

/// Whether a context runs a step forward or undoes it.
enum Role {
    Forward,
    /// `forward`: the forward step's last checkpoint (what it did before it finished,
    /// failed or crashed), if it saved one.
    Compensation {
        forward: Option<serde_json::Value>,
    },
}

impl StepContext {
    pub fn new(
        run_id: RunId,
        step_id: StepId,
        attempt: u32,
        inputs: Outputs,
        services: Arc<Services>,
        recorder: Arc<dyn StepRecorder>,
        checkpoint: Option<serde_json::Value>,
    ) -> Self {
        let idempotency_token = idempotency_token(&run_id, &step_id);
        let providers = services
            .providers
            .clone()
            .map(|p| match super::hooks::installed() {
                Some(hooks) => hooks.providers(&step_id, p),
                None => p,
            });
        Self {
            run_id,
            step_id,
            attempt,
            inputs,
            idempotency_token,
            services,
            providers,
            recorder,
            checkpoint: Mutex::new(checkpoint),
            role: Role::Forward,
        }
    }

    /// This context as a compensation's: `forward` is the forward step's last
    /// checkpoint, which [`recorded_str`](Self::recorded_str) and
    /// [`recorded`](Self::recorded) read; [`checkpoint`](Self::checkpoint) and
    /// [`save_checkpoint`](Self::save_checkpoint) are the compensation's own (the
    /// executor hands it a recorder that journals them as compensation checkpoints).
    pub fn compensating(mut self, forward: Option<serde_json::Value>) -> Self {
        self.role = Role::Compensation { forward };
        self
    }

    /// Parses the inputs into the step's typed input struct. A mismatch is permanent:
    /// the plan validated the shape, so this only fails on a bad reference value.
    pub fn inputs<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        serde_json::from_value(serde_json::Value::Object(self.inputs.clone()))
            .map_err(|e| Failure::permanent(format!("step {}: invalid inputs: {e}", self.step_id)))
    }

    /// Journals the intent to perform `action` before doing it.
    pub fn record_intent(&self, action: &str, detail: serde_json::Value) -> Result<(), Failure> {
        self.recorder
            .intent(&self.step_id, action, &self.idempotency_token, detail)
    }

    /// Journals state a resumed attempt needs (e.g. the id of a started command).
    pub fn save_checkpoint(&self, state: serde_json::Value) -> Result<(), Failure> {
        self.recorder.checkpoint(&self.step_id, state.clone())?;
        *self.checkpoint.lock().expect("checkpoint lock") = Some(state);
        Ok(())
    }

    /// The last checkpoint saved by this step, in this or an earlier (crashed) process.
    pub fn checkpoint(&self) -> Option<serde_json::Value> {
        self.checkpoint.lock().expect("checkpoint lock").clone()
    }

    /// Whether the last checkpoint has `key` set to `true`.
    pub fn checkpoint_flag(&self, key: &str) -> bool {
        self.checkpoint_field(key)
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    }

    /// A string field of the last checkpoint.
    pub fn checkpoint_str(&self, key: &str) -> Option<String> {
        self.checkpoint_field(key)
            .and_then(|v| v.as_str().map(str::to_owned))
    }

    /// A moment journaled under `key` (RFC 3339, milliseconds): the one an earlier attempt
    /// or process recorded, else `first()` journaled now. A deadline or a waiting start
    /// read this way holds across a resume. Caveat: it replaces the step's checkpoint, so
    /// use it in a step whose checkpoint holds nothing else at that point.
    pub fn checkpointed_time(
        &self,
        key: &str,
        first: impl FnOnce() -> chrono::DateTime<chrono::Utc>,
    ) -> Result<chrono::DateTime<chrono::Utc>, Failure> {
        // The journaled text (milliseconds) is the moment, in this session as after a resume.
        let text = match self.checkpoint_str(key) {
            Some(text) => text,
            None => {
                let text = first().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                self.save_checkpoint(serde_json::json!({ key: text }))?;
                text
            }
        };
        chrono::DateTime::parse_from_rfc3339(&text)
            .map(|d| d.with_timezone(&chrono::Utc))
            .map_err(|e| {
                Failure::permanent(format!(
                    "step {}: the journaled {key} `{text}` cannot be read: {e}",
                    self.step_id
                ))
            })
    }

    fn checkpoint_field(&self, key: &str) -> Option<serde_json::Value> {
        self.checkpoint
            .lock()
            .expect("checkpoint lock")
            .as_ref()
            .and_then(|c| c.get(key).cloned())
    }

    /// A string the step recorded: in its outputs when it finished, else in its
    /// checkpoint (it crashed or failed after the side effect, before finishing) — in a
    /// compensation, the forward step's checkpoint.
    pub fn recorded_str(&self, outputs: Option<&Outputs>, key: &str) -> Option<String> {
        outputs
            .and_then(|o| o.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .or_else(|| {
                self.recorded(key)
                    .and_then(|v| v.as_str().map(str::to_owned))
            })
    }

    /// A field of the checkpoint of what the step did: in a compensation, the forward
    /// step's last checkpoint; in the forward step, its own.
    pub fn recorded(&self, key: &str) -> Option<serde_json::Value> {
        match &self.role {
            Role::Compensation { forward } => forward.as_ref().and_then(|f| f.get(key).cloned()),
            Role::Forward => self.checkpoint_field(key),
        }
    }

    /// Sets `key` in the checkpoint, keeping its other fields (a checkpoint that is not
    /// an object starts again as one). For steps whose checkpoint holds several
    /// independent parts, such as one operation per database.
    pub fn update_checkpoint(&self, key: &str, value: serde_json::Value) -> Result<(), Failure> {
        let mut state = match self.checkpoint() {
            Some(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        state.insert(key.to_owned(), value);
        self.save_checkpoint(serde_json::Value::Object(state))
    }

    pub fn note(&self, message: impl Into<String>) {
        self.services.progress.report(ProgressEvent::Note {
            step: Some(self.step_id.clone()),
            message: message.into(),
        });
    }

    pub fn work_meter(&self, unit: &str) -> WorkMeter {
        WorkMeter::new(self.services.progress.clone(), self.step_id.clone(), unit)
    }

    /// The provider services, or a permanent failure naming the step when the run has none.
    pub fn providers(&self) -> Result<&crate::providers::ProviderSet, Failure> {
        self.providers.as_ref().ok_or_else(|| {
            Failure::permanent(format!(
                "step {} needs a provider, but this run has none",
                self.step_id
            ))
        })
    }

    pub fn environment(&self) -> &Environment {
        &self.services.environment
    }
}

/// `sha256(run_id/step_id)`, 32 hex characters: fits EC2's 64-character ClientToken and
/// Secrets Manager's request-token rules.
pub fn idempotency_token(run_id: &RunId, step_id: &StepId) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{run_id}/{step_id}").as_bytes());
    hex::encode(&digest[..16])
}
