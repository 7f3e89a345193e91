//! `drill.measure`: a DR drill's RTO (start → verified) and RPO (the backup's age at the
//! start).

use super::kind::{step_inputs, OutputSpec, StepKind};
use super::{Decision, Outputs, Step, StepContext};
use crate::failure::Failure;
use crate::try_step;
use async_trait::async_trait;

pub static KINDS: &[StepKind] = &[StepKind {
    name: "drill.measure",
    summary: "measure a drill's RTO (start → verified) and RPO (backup age at start)",
    inputs: MeasureInputs::INPUTS,
    outputs: OutputSpec::Fixed(&["rto_seconds", "rpo_seconds"]),
    changes: "",
    compensation: None,
    build: || Box::new(Measure),
}];

step_inputs! {
    struct MeasureInputs {
        started_at: String = required String, "RFC 3339 start of the drill";
        backup_taken_at: String = required String, "RFC 3339 time of the backup";
    }
}

struct Measure;

#[async_trait]
impl Step for Measure {
    async fn advance(&mut self, ctx: &StepContext) -> Decision {
        let inputs: MeasureInputs = try_step!(ctx.inputs());
        let parse = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|e| Failure::permanent(format!("`{s}` is not an RFC 3339 time: {e}")))
        };
        let started = try_step!(parse(&inputs.started_at));
        let taken = try_step!(parse(&inputs.backup_taken_at));
        let now = chrono::Utc::now();
        let rto = (now - started.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0;
        let rpo = (started - taken).num_milliseconds() as f64 / 1000.0;
        ctx.note(format!(
            "RTO {rto:.1}s (start → verified), RPO {rpo:.1}s (backup age at start)"
        ));
        let mut out = Outputs::new();
        out.insert("rto_seconds".into(), rto.into());
        out.insert("rpo_seconds".into(), rpo.into());
        Decision::Done(out)
    }
}
