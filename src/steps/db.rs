//! `db.freeze`, `db.unfreeze`, `db.backup` and `db.restore`.
//!
//! A backup is an artifact plus a manifest next to it (`…/manifest.json`) holding the
//! artifact's SHA-256, the engine version, and the fingerprint of the database it was
//! taken from. A restore reads the manifest, downloads the artifact and checks its SHA-256
//! *before* the engine loads anything, refuses a mismatch, then gives the application
//! user its password before anything else can connect.
//!
//! `db.backup` and `db.restore` are checkpointed state machines: each phase's result is
//! journaled (through the step's checkpoint) before the next begins, and while the
//! engine's command runs the step returns `Wait`, so the executor's deadlines, Ctrl-C and
//! progress reach it. A resumed run (or a retry) reads the checkpoint and *polls the
//! recorded command* instead of sending a second one; a command that ended in failure is
//! cleared from the checkpoint, so the retry starts a new one. See docs/engine.md.

use super::db_access::{current_secret, now_rfc3339, parse_duration, running_job, DbRef};
use super::kind::{step_inputs, OutputSpec, StepKind};
use super::{Decision, Outputs, Step, StepContext};
use crate::config::toml_read::format_duration;
use crate::db::{BackupArtifact, DbOperation, OpPoll};
use crate::failure::Failure;
use crate::ids::ObjectKey;
use crate::integrity::answers::{record_answers, QueryAnswers};
use crate::integrity::fingerprint::Fingerprint;
use crate::integrity::invariants::{run_invariants, InvariantOutcome};
use crate::try_step;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub static KINDS: &[StepKind] = &[
    StepKind {
        name: "db.freeze",
        summary: "wait until the app's DCO/MTQ jobs are idle, then refuse writes (reads still served)",
        inputs: FreezeInputs::INPUTS,
        outputs: OutputSpec::Fixed(&["frozen_at"]),
        changes: "the database refuses writes",
        compensation: Some("unfreezes the database (guaranteed: also after a partial freeze)"),
        build: || Box::new(Freeze),
    },
    StepKind {
        name: "db.unfreeze",
        summary: "accept writes again",
        inputs: DbInputs::INPUTS,
        outputs: OutputSpec::Fixed(&["unfrozen_at"]),
        changes: "the database accepts writes",
        compensation: None,
        build: || Box::new(Unfreeze),
    },
    StepKind {
        name: "db.backup",
        summary: "back up a database to the object store with SHA-256 and a manifest holding its fingerprint",
        inputs: BackupInputs::INPUTS,
        outputs: OutputSpec::Fixed(&["artifact_key", "manifest_key", "sha256", "size", "fingerprint", "taken_at", "frozen", "location"]),
        changes: "writes a backup artifact and its manifest to the object store",
        compensation: None,
        build: || Box::new(Backup),
    },
    StepKind {
        name: "db.restore",
        summary: "verify a backup's SHA-256 against its manifest, load it into a fresh instance, set the app user",
        inputs: RestoreInputs::INPUTS,
        outputs: OutputSpec::Fixed(&["sha256", "restored_at", "bolt_uri"]),
        changes: "loads data into the instance and sets the application user's password",
        compensation: None,
        build: || Box::new(Restore),
    },
];

step_inputs! {
    struct DbInputs {
        database: String = required String, "database name in the environment";
        instance: String = required String, "instance id";
    }
}

/// What `db.backup` writes next to the artifact.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub environment: String,
    pub database: String,
    pub run_id: String,
    pub taken_at: String,
    /// Whether writes were refused while the backup was taken.
    pub frozen: bool,
    pub artifact: BackupArtifact,
    pub fingerprint: Fingerprint,
    #[serde(default)]
    pub invariants: Vec<InvariantOutcome>,
    /// Frozen blue's answers to the application's own queries (`same_answers`), with the
    /// parameters sampled from its data; `integrity.compare` asks green the same.
    #[serde(default)]
    pub answers: Vec<QueryAnswers>,
}

pub const MANIFEST_FORMAT: &str = "cutover-backup-manifest/v1";

pub async fn read_manifest(ctx: &StepContext, key: &str) -> Result<Manifest, Failure> {
    let providers = ctx.providers()?;
    let object = ObjectKey::new(key);
    let bytes = providers.objects.get_bytes(&object).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Failure::permanent(format!(
            "manifest {} is not a cutover backup manifest: {e}",
            providers.objects.location(&object)
        ))
        .with_hint("take a new backup: cutover run runbooks/backup.toml --env …")
    })
}

step_inputs! {
    struct FreezeInputs {
        database: String = required String, "database name in the environment";
        instance: String = required String, "instance id";
        wait_for_jobs: Option<bool> = optional Bool, "before freezing, wait while the app's DCO/MTQ jobs run (default true)";
        jobs_timeout: Option<String> = optional Duration, "how long to wait for the jobs before failing, blue unfrozen (default 30m)";
    }
}

impl From<FreezeInputs> for DbInputs {
    fn from(f: FreezeInputs) -> Self {
        DbInputs {
            database: f.database,
            instance: f.instance,
        }
    }
}

/// How long `db.freeze` waits for the app's jobs by default.
const JOBS_TIMEOUT: &str = "30m";

struct Freeze;

/// Before anything is frozen: the app's DCO/MTQ jobs must be idle (checked again here
/// because provisioning sits between the preflight's check and the freeze). While one
/// runs, a wait; the time waiting began is journaled, so the timeout holds across a
/// resume. Past it, a permanent failure with blue untouched.
async fn wait_for_idle_jobs(
    ctx: &StepContext,
    db: &DbRef,
    inputs: &FreezeInputs,
) -> Result<Option<Decision>, Failure> {
    if !inputs.wait_for_jobs.unwrap_or(true) {
        return Ok(None);
    }
    let timeout = parse_duration(inputs.jobs_timeout.as_deref().unwrap_or(JOBS_TIMEOUT))?;
    let Some(job) = running_job(db).await? else {
        return Ok(None);
    };
    let since = ctx.checkpointed_time("jobs_waiting_since", chrono::Utc::now)?;
    let waited = (chrono::Utc::now() - since).to_std().unwrap_or_default();
    if waited >= timeout {
        return Ok(Some(Decision::Fail(
            Failure::permanent(format!(
                "{}: the {job} job has been running for {} (jobs_timeout {}); {} was not frozen",
                inputs.database,
                format_duration(waited),
                format_duration(timeout),
                inputs.instance
            ))
            .with_hint("run again when the job has finished, or set a longer `jobs_timeout` on the freeze step"),
        )));
    }
    Ok(Some(Decision::wait(
        std::time::Duration::from_secs(2),
        format!(
            "{}: the {job} job is running (active Daynode flag set); waiting before the freeze, {} left",
            inputs.database,
            format_duration(timeout - waited)
        ),
    )))
}

#[async_trait]
impl Step for Freeze {
    async fn advance(&mut self, ctx: &StepContext) -> Decision {
        let inputs: FreezeInputs = try_step!(ctx.inputs());
        let db = try_step!(DbRef::open(ctx, &inputs.database, &inputs.instance).await);
        let freeze_started = ctx.checkpoint().is_some_and(|c| c.get("freeze").is_some());
        if !freeze_started {
            if let Some(wait) = try_step!(wait_for_idle_jobs(ctx, &db, &inputs).await) {
                return wait;
            }
        }
        let inputs = DbInputs::from(inputs);
        if let Some(wait) = try_step!(db.set_frozen(ctx, "freeze", true).await) {
            return wait;
        }
        if !try_step!(db.engine.is_frozen(&db.handle).await) {
            // The next attempt sends the freeze again.
            try_step!(db.forget_set_frozen(ctx, "freeze"));
            return Decision::Fail(Failure::transient(format!(
                "{} on {} still accepts writes after the freeze",
                inputs.database, inputs.instance
            )));
        }
        let mut out = Outputs::new();
        out.insert("frozen_at".into(), now_rfc3339().into());
        Decision::Done(out)
    }

    async fn postcondition(
        &mut self,
        ctx: &StepContext,
        _outputs: &Outputs,
    ) -> Result<(), Failure> {
        let inputs = DbInputs::from(ctx.inputs::<FreezeInputs>()?);
        let db = DbRef::open(ctx, &inputs.database, &inputs.instance).await?;
        if db.engine.is_frozen(&db.handle).await? {
            Ok(())
        } else {
            Err(Failure::permanent(format!(
                "{} on {} is no longer frozen",
                inputs.database, inputs.instance
            )))
        }
    }

    async fn compensate(&mut self, ctx: &StepContext, _outputs: Option<&Outputs>) -> Decision {
        let inputs = DbInputs::from(try_step!(ctx.inputs::<FreezeInputs>()));
        unfreeze(ctx, inputs).await
    }
}

async fn unfreeze(ctx: &StepContext, inputs: DbInputs) -> Decision {
    let db = try_step!(DbRef::open(ctx, &inputs.database, &inputs.instance).await);
    if let Some(wait) = try_step!(db.set_frozen(ctx, "unfreeze", false).await) {
        return wait;
    }
    if try_step!(db.engine.is_frozen(&db.handle).await) {
        // The next attempt sends the unfreeze again.
        try_step!(db.forget_set_frozen(ctx, "unfreeze"));
        return Decision::Fail(Failure::transient(format!(
            "{} on {} still refuses writes after the unfreeze",
            inputs.database, inputs.instance
        )));
    }
    let mut out = Outputs::new();
    out.insert("unfrozen_at".into(), now_rfc3339().into());
    Decision::Done(out)
}

struct Unfreeze;

#[async_trait]
impl Step for Unfreeze {
    async fn advance(&mut self, ctx: &StepContext) -> Decision {
        unfreeze(ctx, try_step!(ctx.inputs())).await
    }
}

step_inputs! {
    struct BackupInputs {
        database: String = required String, "database name in the environment";
        instance: String = required String, "instance id";
        prefix: Option<String> = optional String, "object key prefix (default backups/ENV/RUN_ID)";
    }
}

struct Backup;

#[async_trait]
impl Step for Backup {
    async fn advance(&mut self, ctx: &StepContext) -> Decision {
        let inputs: BackupInputs = try_step!(ctx.inputs());
        let db = try_step!(DbRef::open(ctx, &inputs.database, &inputs.instance).await);
        let providers = try_step!(ctx.providers());
        let prefix = inputs
            .prefix
            .clone()
            .unwrap_or_else(|| format!("backups/{}/{}", ctx.environment().name, ctx.run_id));
        let prefix = prefix.trim_end_matches('/');
        let artifact_key = ObjectKey::new(format!(
            "{prefix}/{}/{}.backup",
            inputs.database, inputs.database
        ));
        let manifest_key = ObjectKey::new(format!("{prefix}/{}/manifest.json", inputs.database));
        let mut st: BackupState = try_step!(load_state(ctx));
        // 1. What is read over Bolt comes first, while the server serves: the
        //    fingerprint, the invariants and the application's answers. A Community dump
        //    stops the DBMS and starts it again; read after it, this step (and green's
        //    restore, which needs only the artifact) would wait for that restart, inside
        //    the freeze window. Frozen, the dump holds exactly what was read. A checkpoint
        //    an earlier cutover journaled may hold a dump without them: they are read
        //    after it (phase 3), as it did.
        if st.evidence.is_none()
            && st.artifact.is_none()
            && st.operation.is_none()
            && st.starting.is_none()
        {
            st.evidence = Some(try_step!(read_evidence(&db, &inputs.database, ctx).await));
            try_step!(save_state(ctx, &st));
        }
        // 2. The attempt's name, the intent, then the command; its handle is journaled
        // before the first poll.
        if st.artifact.is_none() && st.operation.is_none() {
            let (attempt, in_flight, changed) = begin_start(&mut st.starting);
            if changed {
                try_step!(save_state(ctx, &st));
            }
            // Whether blue refuses writes, the intent, the start: a failure of either
            // call is handled as a failed start.
            let started = match db.engine.is_frozen(&db.handle).await {
                Ok(frozen) => {
                    let taken_at = now_rfc3339();
                    try_step!(ctx.record_intent(
                        "db.backup",
                        serde_json::json!({ "artifact": artifact_key, "frozen": frozen, "attempt": attempt })
                    ));
                    db.engine
                        .start_backup(
                            &db.handle,
                            providers.objects.as_ref(),
                            &artifact_key,
                            &attempt,
                        )
                        .await
                        .map(|op| (frozen, taken_at, op))
                }
                Err(f) => Err(f),
            };
            let (frozen, taken_at, op) = match started {
                Ok(started) => started,
                Err(f) => {
                    return after_start_error(
                        ctx,
                        &mut st,
                        |st| &mut st.starting,
                        in_flight,
                        f,
                        "backup",
                    )
                }
            };
            st.started = Some(Started { frozen, taken_at });
            st.operation = Some(op);
            st.starting = None;
            try_step!(save_state(ctx, &st));
        }
        // 3. Poll the command (this run's, or the one a crashed run recorded).
        if let Some(mut op) = st.operation.take() {
            let before = op.clone();
            match db
                .engine
                .poll_backup(&db.handle, providers.objects.as_ref(), &mut op)
                .await
            {
                OpPoll::Running { after, what } => {
                    if op != before {
                        st.operation = Some(op);
                        try_step!(save_state(ctx, &st));
                    }
                    return Decision::wait(
                        after,
                        format!("backing up {}: {what}", inputs.database),
                    );
                }
                OpPoll::Failed(f) => {
                    // The command is over: a retry starts a new one. Of a database that
                    // takes writes, it reads the database again too.
                    if !st.started.as_ref().is_some_and(|s| s.frozen) {
                        st.evidence = None;
                    }
                    st.started = None;
                    try_step!(save_state(ctx, &st));
                    return Decision::Fail(f);
                }
                OpPoll::Done(artifact) => {
                    ctx.note(format!(
                        "backup of {} written: {} bytes, sha256 {}",
                        inputs.database,
                        artifact.object.size,
                        artifact.object.sha256.clone().unwrap_or_default()
                    ));
                    st.artifact = Some(artifact);
                    try_step!(save_state(ctx, &st));
                }
            }
        }
        let (Some(artifact), Some(started)) = (st.artifact.clone(), st.started.clone()) else {
            return Decision::Fail(Failure::permanent(format!(
                "step {}: the journaled backup state has no artifact; run the backup again",
                ctx.step_id
            )));
        };
        let Started { frozen, taken_at } = started;
        let Some(sha256) = artifact.object.sha256.clone() else {
            return Decision::Fail(Failure::permanent(format!(
                "the object store did not report a SHA-256 for {}",
                providers.objects.location(&artifact_key)
            )));
        };
        // 4. The manifest (idempotent: the same key is written again), with what phase 1
        // read (or, for an earlier cutover's checkpoint, what is read now).
        let evidence = match st.evidence.clone() {
            Some(e) => e,
            None => {
                let e = try_step!(read_evidence(&db, &inputs.database, ctx).await);
                st.evidence = Some(e.clone());
                try_step!(save_state(ctx, &st));
                e
            }
        };
        let Evidence {
            fingerprint,
            invariants: outcomes,
            answers,
        } = evidence;
        let manifest = Manifest {
            format: MANIFEST_FORMAT.into(),
            environment: ctx.environment().name.clone(),
            database: inputs.database.clone(),
            run_id: ctx.run_id.as_str().into(),
            taken_at: taken_at.clone(),
            frozen,
            artifact: artifact.clone(),
            fingerprint: fingerprint.clone(),
            invariants: outcomes,
            answers,
        };
        let bytes = try_step!(serde_json::to_vec_pretty(&manifest)
            .map_err(|e| Failure::permanent(format!("cannot encode the manifest: {e}"))));
        try_step!(providers.objects.put_bytes(&manifest_key, bytes).await);
        let mut out = Outputs::new();
        out.insert("artifact_key".into(), artifact_key.as_str().into());
        out.insert("manifest_key".into(), manifest_key.as_str().into());
        out.insert("sha256".into(), sha256.into());
        out.insert("size".into(), artifact.object.size.into());
        out.insert("fingerprint".into(), fingerprint.content.clone().into());
        out.insert("taken_at".into(), taken_at.into());
        out.insert("frozen".into(), frozen.into());
        out.insert(
            "location".into(),
            providers.objects.location(&artifact_key).into(),
        );
        Decision::Done(out)
    }
}

step_inputs! {
    struct RestoreInputs {
        database: String = required String, "database name in the environment";
        instance: String = required String, "the fresh instance to restore into";
        manifest: String = required String, "manifest object key";
        replace: Option<String> = optional String, "the content fingerprint the instance's database must have (or be empty) to be replaced by the backup (a rollback restores onto blue); without it the instance must be fresh";
    }
}

/// Before a restore replaces a database that holds data (`replace`): proves the data is
/// what the caller expects — the content the backup already contains, e.g. frozen blue
/// that green started from — or nothing at all, then empties it. Anything else is refused:
/// replacing it could drop writes.
async fn clear_for_replace(
    ctx: &StepContext,
    db: &DbRef,
    inputs: &RestoreInputs,
    expected: &str,
) -> Result<(), Failure> {
    let fp = db
        .fingerprint(ctx, &format!("{} on {}", inputs.database, inputs.instance))
        .await?;
    let empty = fp.nodes.count == 0 && fp.relationships.count == 0;
    if fp.content != expected && !empty {
        return Err(Failure::permanent(format!(
            "refusing to replace {} on {}: it holds {} nodes with fingerprint {}, not the expected {expected}; replacing it could drop writes it holds",
            inputs.database, inputs.instance, fp.nodes.count, fp.content
        ))
        .with_hint("find out what wrote to it since it was frozen; nothing was changed"));
    }
    ctx.record_intent(
        "db.clear_for_restore",
        serde_json::json!({ "database": inputs.database, "instance": inputs.instance, "fingerprint": fp.content }),
    )?;
    db.engine.clear_for_restore(&db.handle).await
}

struct Restore;

#[async_trait]
impl Step for Restore {
    async fn advance(&mut self, ctx: &StepContext) -> Decision {
        let inputs: RestoreInputs = try_step!(ctx.inputs());
        let db = try_step!(DbRef::open(ctx, &inputs.database, &inputs.instance).await);
        let providers = try_step!(ctx.providers());
        let manifest = try_step!(read_manifest(ctx, &inputs.manifest).await);
        if manifest.database != inputs.database {
            return Decision::Fail(Failure::permanent(format!(
                "manifest {} is a backup of `{}`, not `{}`",
                inputs.manifest, manifest.database, inputs.database
            )));
        }
        let Some(expected) = manifest.artifact.object.sha256.clone() else {
            return Decision::Fail(Failure::permanent(format!(
                "manifest {} records no SHA-256",
                inputs.manifest
            )));
        };
        let mut st: RestoreState = try_step!(load_state(ctx));
        // 1. Bytes first: download and hash what is stored now, before anything is loaded —
        //    here, unless the engine checks them where they load (the Neo4j scripts, on
        //    the instance: then no artifact byte passes through this machine).
        let checked_here = !db.engine.verifies_artifact_where_it_loads();
        if checked_here && st.verified_sha256.as_deref() != Some(expected.as_str()) && !st.loaded {
            let scratch = ctx
                .services
                .run_dir
                .join(format!("verify-{}.artifact", ctx.step_id));
            let fetched = try_step!(
                providers
                    .objects
                    .get_file(&manifest.artifact.object.key, &scratch)
                    .await
            );
            let _ = std::fs::remove_file(&scratch);
            let actual = fetched.sha256.unwrap_or_default();
            if actual != expected {
                return Decision::Fail(
                    Failure::permanent(format!(
                        "checksum mismatch for {}: the manifest says sha256 {expected}, the stored artifact has {actual}; nothing was loaded",
                        providers.objects.location(&manifest.artifact.object.key)
                    ))
                    .with_hint(format!("the backup is corrupt — take a new backup: cutover run runbooks/backup.toml --env {}", ctx.environment().name)),
                );
            }
            st.verified_sha256 = Some(expected.clone());
            try_step!(save_state(ctx, &st));
        }
        // 2. Intent, then the command; its handle is journaled before the first poll.
        if !st.loaded && st.operation.is_none() {
            let (attempt, in_flight, changed) = begin_start(&mut st.starting);
            // Not while a load a crashed process may have started could be running.
            if !in_flight {
                if let Some(replace) = &inputs.replace {
                    try_step!(clear_for_replace(ctx, &db, &inputs, replace).await);
                }
            }
            if changed {
                try_step!(save_state(ctx, &st));
            }
            try_step!(ctx.record_intent(
                "db.restore",
                serde_json::json!({ "manifest": inputs.manifest, "sha256": expected, "attempt": attempt })
            ));
            let started = db
                .engine
                .start_restore(
                    &db.handle,
                    providers.objects.as_ref(),
                    &manifest.artifact,
                    &attempt,
                )
                .await;
            let op = match started {
                Ok(op) => op,
                Err(f) => {
                    return after_start_error(
                        ctx,
                        &mut st,
                        |st| &mut st.starting,
                        in_flight,
                        f,
                        "restore",
                    )
                }
            };
            st.operation = Some(op);
            st.starting = None;
            try_step!(save_state(ctx, &st));
        }
        // 3. Poll the command (this run's, or the one a crashed run recorded).
        if let Some(mut op) = st.operation.take() {
            let before = op.clone();
            match db
                .engine
                .poll_restore(
                    &db.handle,
                    providers.objects.as_ref(),
                    &manifest.artifact,
                    &mut op,
                )
                .await
            {
                OpPoll::Running { after, what } => {
                    if op != before {
                        st.operation = Some(op);
                        try_step!(save_state(ctx, &st));
                    }
                    return Decision::wait(after, format!("restoring {}: {what}", inputs.database));
                }
                OpPoll::Failed(f) => {
                    // The command is over: a retry verifies and starts a new one.
                    st.verified_sha256 = None;
                    try_step!(save_state(ctx, &st));
                    return Decision::Fail(f);
                }
                OpPoll::Done(()) => {
                    st.loaded = true;
                    try_step!(save_state(ctx, &st));
                }
            }
        }
        // Dumps carry no users: give the application user its current password before
        // anything can reach green.
        let user = db.def.user.clone();
        let password = try_step!(
            current_secret(ctx, &db.def.app_password_secret(&ctx.environment().name)).await
        );
        try_step!(
            db.engine
                .set_user_password(&db.handle, &user, &password)
                .await
        );
        let mut out = Outputs::new();
        out.insert("sha256".into(), expected.into());
        out.insert("restored_at".into(), now_rfc3339().into());
        out.insert("bolt_uri".into(), db.bolt_uri().into());
        Decision::Done(out)
    }
}

/// What `db.backup` reads over Bolt for its manifest: the fingerprint (frozen, it is what
/// green must equal), the invariants' outcomes and the application's answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Evidence {
    fingerprint: Fingerprint,
    invariants: Vec<InvariantOutcome>,
    answers: Vec<QueryAnswers>,
}

async fn read_evidence(db: &DbRef, database: &str, ctx: &StepContext) -> Result<Evidence, Failure> {
    let meter = ctx.work_meter("records");
    let target = db.admin_target();
    let fingerprint = crate::integrity::fingerprint::fingerprint_target(
        &target,
        &db.fingerprint_options(),
        &meter,
    )
    .await
    .map_err(|e| Failure::from(e).context(format_args!("fingerprint of {database}")))?;
    // One connection for both (none when the environment defines neither).
    let (invariants, answers) = if db.def.invariants.is_empty() && db.def.same_answers.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        let graph = target.connect(1).await?;
        let invariants = run_invariants(&graph, &db.def.invariants)
            .await
            .map_err(|e| Failure::from(e).context(format_args!("invariants of {database}")))?;
        let answers = record_answers(&graph, &target.uri, &db.def.same_answers)
            .await
            .map_err(|e| Failure::from(e).context(format_args!("same answers of {database}")))?;
        (invariants, answers)
    };
    Ok(Evidence {
        fingerprint,
        invariants,
        answers,
    })
}

/// What `db.backup` journals between phases (its checkpoint).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct BackupState {
    /// Set with the intent: whether writes were refused, and when the backup began.
    #[serde(default)]
    started: Option<Started>,
    /// The command being started (see [`PendingStart`]); cleared once its handle is
    /// journaled.
    #[serde(default)]
    starting: Option<PendingStart>,
    /// The running command; cleared when it ends.
    #[serde(default)]
    operation: Option<DbOperation>,
    #[serde(default)]
    artifact: Option<BackupArtifact>,
    /// Read in phase 1, before the dump.
    #[serde(default)]
    evidence: Option<Evidence>,
}

/// The command a step is about to start: its attempt's name, journaled before the
/// command is sent, so a process that crashed between sending it and journaling its
/// handle is followed by one that starts the *same* attempt, which the engine adopts by
/// that name instead of sending a second command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct PendingStart {
    attempt: String,
    /// The last start of this attempt returned an error (known, not cut by a crash): the
    /// next one is an ordinary retry, not a command that may be running.
    #[serde(default)]
    failed: bool,
}

/// The attempt to start now, whether a crashed process may have sent it already (its
/// name was journaled and no start of it is known to have failed), and whether `pending`
/// changed (then the caller journals it before starting).
fn begin_start(pending: &mut Option<PendingStart>) -> (String, bool, bool) {
    match pending {
        Some(p) if !p.failed => (p.attempt.clone(), true, false),
        Some(p) => {
            p.failed = false;
            (p.attempt.clone(), false, true)
        }
        None => {
            let attempt = crate::db::engine::new_attempt_name();
            *pending = Some(PendingStart {
                attempt: attempt.clone(),
                failed: false,
            });
            (attempt, false, true)
        }
    }
}

/// What a failure while starting means. An attempt that may already be running
/// (`in_flight`) and a transient failure (a Community dump or load stops the server it
/// runs on): wait and try again, not counting it as a failed attempt (the step's timeout
/// still bounds the wait). Otherwise the step fails, and the attempt is marked failed in
/// the journaled `state` (its `pending` field) so the retry does not wait for it.
fn after_start_error<T: Serialize>(
    ctx: &StepContext,
    state: &mut T,
    pending: impl FnOnce(&mut T) -> &mut Option<PendingStart>,
    in_flight: bool,
    f: Failure,
    what: &str,
) -> Decision {
    if in_flight && f.class == crate::failure::ErrorClass::Transient {
        return Decision::wait(
            std::time::Duration::from_secs(5),
            format!(
                "a {what} this step started before a crash may still be running ({})",
                f.message
            ),
        );
    }
    if let Some(p) = pending(state) {
        p.failed = true;
    }
    try_step!(save_state(ctx, state));
    Decision::Fail(f)
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Started {
    frozen: bool,
    taken_at: String,
}

/// What `db.restore` journals between phases (its checkpoint).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct RestoreState {
    /// The SHA-256 the stored artifact was verified to have, before anything was loaded.
    #[serde(default)]
    verified_sha256: Option<String>,
    /// The command being started (see [`PendingStart`]); cleared once its handle is
    /// journaled.
    #[serde(default)]
    starting: Option<PendingStart>,
    /// The running command; cleared when it ends.
    #[serde(default)]
    operation: Option<DbOperation>,
    /// The engine reported a verified load.
    #[serde(default)]
    loaded: bool,
}

/// The step's journaled state; a checkpoint this version cannot read is refused (never
/// silently restarted: a command may be running).
fn load_state<T: Default + serde::de::DeserializeOwned>(ctx: &StepContext) -> Result<T, Failure> {
    match ctx.checkpoint() {
        None => Ok(T::default()),
        Some(v) => serde_json::from_value(v).map_err(|e| {
            Failure::permanent(format!(
                "step {}: the journaled checkpoint cannot be read: {e}",
                ctx.step_id
            ))
            .with_hint("a command of the earlier run may still be running on the instance; check it, then start a new run")
        }),
    }
}

fn save_state<T: Serialize>(ctx: &StepContext, state: &T) -> Result<(), Failure> {
    ctx.save_checkpoint(serde_json::to_value(state).expect("the state serializes"))
}
