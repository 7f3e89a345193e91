//! The command-line interface: parse, call the library, render. The only place that
//! prints. Exit codes (also in `--help`): 0 succeeded; 1 failed and the environment is
//! as it was; 2 bad input, nothing was done; 3 needs attention (partly applied, or the
//! environment is locked); 130 interrupted (resumable).

pub mod digest;
mod progress_view;
mod status;

use clap::{Args, CommandFactory, Parser, Subcommand};
use cutover::config::Runbook;
use cutover::engine::executor::SessionEnd;
use cutover::engine::rollback;
use cutover::engine::run::{self, RunError, RunOptions, RunSummary};
use cutover::ids::RunId;
use cutover::plan::render;
use cutover::progress::ProgressHandle;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// How a command writes its result to stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text.
    #[default]
    Human,
    /// One JSON document (progress as JSON lines on stderr).
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum IamRole {
    #[default]
    Controller,
    Instance,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum GraphFormat {
    #[default]
    Mermaid,
    Dot,
}

const EXIT_CODES: &str = "Exit codes: 0 succeeded; 1 failed, environment as it was (rolled back); \
2 bad input, nothing was done; 3 needs attention (partly applied, or environment locked); 130 interrupted (resumable).";

#[derive(Parser, Debug)]
#[command(name = "cutover", version, about = "Blue-green migrations of Neo4j databases that prove nothing was lost", after_help = EXIT_CODES)]
pub struct Cli {
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "CUTOVER_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// More log detail (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct PlanArgs {
    /// The runbook file (e.g. runbooks/backup.toml).
    pub runbook: PathBuf,
    /// The environment: a name (environments/NAME.toml) or a path.
    #[arg(long, env = "CUTOVER_ENV")]
    pub env: String,
    /// Override a runbook param: --set name=value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_set)]
    pub sets: Vec<(String, String)>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate a runbook against an environment and show what a run would do.
    Plan(PlanArgs),
    /// Run a runbook (the same plan `cutover plan` shows).
    Run {
        #[command(flatten)]
        plan: PlanArgs,
        /// Do not ask for confirmation (required when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
        /// Use this run id instead of a generated one.
        #[arg(long)]
        run_id: Option<String>,
        /// Take over a stale lease (its holder is dead or expired). Recorded in the journal.
        #[arg(long)]
        take_over_lease: bool,
    },
    /// Continue a run that crashed, was interrupted, or needs its rollback finished.
    Resume {
        run_id: String,
        #[arg(long, env = "CUTOVER_ENV")]
        env: String,
        /// Resume even though the runbook or environment changed (recorded in the journal).
        #[arg(long)]
        force: bool,
        /// Where the runbook is on this machine, when the run started elsewhere (aws runs
        /// resume from the journal mirror on any machine). Its plan must not have changed.
        #[arg(long)]
        runbook: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
        output: OutputFormat,
    },
    /// Move the application back from green to blue after a blue-green run switched
    /// (by reverse migration when green took writes).
    ///
    /// A run of its own (journaled, resumable with `cutover resume`, reported), linked to
    /// RUN_ID in both journals; it takes over RUN_ID's lease when that run has stopped.
    /// Green is frozen, then its fingerprint is compared with the one journaled at the
    /// switch: unchanged, blue is unfrozen and traffic switched straight back; changed
    /// (green took writes), green is backed up and restored onto blue (blue's store is
    /// replaced; it must still hold exactly what it was frozen with), compared, unfrozen,
    /// rotated, health-checked and switched back. Then green is removed. A failure undoes
    /// the rollback: the application stays on green, which accepts writes again.
    /// A blue-green run whose bake fails after green took writes starts this by itself.
    /// A run that succeeded (blue was removed after its bake) is rolled back onto a new
    /// blue built from blue's image (rollback-fresh-blue.toml), by the same reverse
    /// migration; refused when green runs a newer version than blue did.
    #[command(
        after_help = "Exit codes: 0 rolled back (the application is on blue with every write green took); \
1 the rollback failed and was undone (the application is on green); 2 bad input or nothing to roll back, nothing was done; \
3 needs attention (partly applied, or the environment is locked: stop RUN_ID first); 130 interrupted (resumable).\n\
See runbooks/rollback.md."
    )]
    Rollback {
        /// The blue-green run to undo.
        run_id: String,
        #[arg(long, env = "CUTOVER_ENV")]
        env: String,
        /// The rollback runbook (default, beside RUN_ID's runbook: rollback.toml, or
        /// rollback-fresh-blue.toml when RUN_ID succeeded and removed blue).
        #[arg(long)]
        runbook: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
        output: OutputFormat,
    },
    /// Show a run's steps (or list runs without RUN_ID). Secrets are never shown.
    Status {
        run_id: Option<String>,
        #[arg(long, env = "CUTOVER_ENV")]
        env: String,
        #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
        output: OutputFormat,
    },
    /// Write and print a run's report (Markdown, or JSON with --output json).
    Report {
        run_id: String,
        #[arg(long, env = "CUTOVER_ENV")]
        env: String,
        #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
        output: OutputFormat,
        /// Attach a figure measured outside cutover, NAME=VALUE (repeatable):
        /// writes_acknowledged, writes_lost (from the load generator that ran during the
        /// run), rto_seconds, rpo_seconds. Kept with the run; every later report shows it.
        #[arg(long = "measure", value_name = "NAME=VALUE")]
        measures: Vec<String>,
    },
    /// List instances left by runs that no longer own them; remove them with --yes.
    Gc {
        #[arg(long, env = "CUTOVER_ENV")]
        env: String,
        /// Remove what is listed (otherwise only list).
        #[arg(long)]
        yes: bool,
    },
    /// Print a runbook's step graph as Mermaid or DOT.
    Graph {
        runbook: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
    },
    /// Print the least-privilege IAM policy a runbook needs on an aws environment.
    Iam {
        /// The runbook file.
        runbook: PathBuf,
        /// The environment (an aws one): a name or a path.
        #[arg(long, env = "CUTOVER_ENV")]
        env: String,
        /// Override a runbook param: --set name=value (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_set)]
        sets: Vec<(String, String)>,
        /// The AWS account id for the ARNs (without it their account field is `*`).
        #[arg(long, value_name = "ID", value_parser = parse_account_id)]
        account_id: Option<String>,
        /// Whose policy: the controller running cutover, or the database instances' role.
        #[arg(long, value_enum, default_value_t = IamRole::Controller)]
        role: IamRole,
    },
    /// Print a graph fingerprint read over Bolt (read-only).
    Digest {
        #[command(flatten)]
        args: digest::DigestArgs,
        #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
        output: OutputFormat,
    },
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
}

fn parse_set(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format, cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(dispatch(cli));
    // Do not wait for lingering blocking tasks (e.g. a stuck read) on exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    code
}

fn init_tracing(format: LogFormat, verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,cutover=info",
        _ => "debug,cutover=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUTOVER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(progress_view::SuspendingStderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn progress_for(output: OutputFormat) -> ProgressHandle {
    match output {
        OutputFormat::Json => Arc::new(progress_view::JsonProgress),
        OutputFormat::Human if std::io::stderr().is_terminal() => {
            Arc::new(progress_view::BarsProgress::new())
        }
        OutputFormat::Human => Arc::new(progress_view::LinesProgress),
    }
}

/// First Ctrl-C (or SIGTERM): stop after the current polls. Second: exit now (130).
fn install_signal_handlers() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let mut presses = 0;
        loop {
            let got = match term.as_mut() {
                Some(t) => {
                    tokio::select! { r = tokio::signal::ctrl_c() => r.is_ok(), r = t.recv() => r.is_some() }
                }
                None => tokio::signal::ctrl_c().await.is_ok(),
            };
            if !got {
                return;
            }
            presses += 1;
            if presses == 1 {
                eprintln!("\ninterrupt: stopping after the current polls (the run stays resumable); press Ctrl-C again to stop now");
                let _ = tx.send(true);
            } else {
                eprintln!("\ninterrupt: stopping now. Every journal record is on disk; `cutover resume` continues the run");
                std::process::exit(130);
            }
        }
    });
    rx
}

async fn dispatch(cli: Cli) -> ExitCode {
    if let Command::Digest { args, output } = cli.command {
        return match digest::run(args, output, progress_for(output)).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        };
    }
    ExitCode::from(dispatch_simple(cli.command).await)
}

async fn dispatch_simple(command: Command) -> u8 {
    match command {
        Command::Plan(args) => plan_command(&args),
        Command::Run {
            plan,
            yes,
            run_id,
            take_over_lease,
        } => run_command(plan, yes, run_id, take_over_lease).await,
        Command::Resume {
            run_id,
            env,
            force,
            runbook,
            output,
        } => {
            let stop = install_signal_handlers();
            let options = run::ResumeOptions {
                force,
                runbook,
                reporter: Some(reporter()),
            };
            let result = run::resume(
                RunId::new(run_id),
                &env,
                options,
                progress_for(output),
                stop.clone(),
            )
            .await;
            report_and_chain(result, &env, output, stop).await
        }
        Command::Rollback {
            run_id,
            env,
            runbook,
            output,
        } => {
            let stop = install_signal_handlers();
            let result = rollback::start(
                RunId::new(run_id),
                &env,
                runbook,
                Some(reporter()),
                progress_for(output),
                stop,
            )
            .await;
            report_run(result, output)
        }
        Command::Status {
            run_id,
            env,
            output,
        } => status::status_command(run_id, &env, output).await,
        Command::Report {
            run_id,
            env,
            output,
            measures,
        } => status::report_command(&run_id, &env, output, &measures),
        Command::Gc { env, yes } => status::gc_command(&env, yes).await,
        Command::Iam {
            runbook,
            env,
            sets,
            account_id,
            role,
        } => iam_command(&runbook, &env, &sets, account_id.as_deref(), role),
        Command::Graph { runbook, format } => match Runbook::load(&runbook) {
            Ok(book) => {
                print!(
                    "{}",
                    if format == GraphFormat::Dot {
                        render::dot(&book)
                    } else {
                        render::mermaid(&book)
                    }
                );
                0
            }
            Err(problems) => {
                eprint!("error: {problems}");
                2
            }
        },
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "cutover",
                &mut std::io::stdout(),
            );
            0
        }
        Command::Digest { .. } => unreachable!("handled in dispatch"),
    }
}

fn iam_command(
    runbook: &std::path::Path,
    env: &str,
    sets: &[(String, String)],
    account_id: Option<&str>,
    role: IamRole,
) -> u8 {
    let plan = match run::load_plan(runbook, env, sets) {
        Ok(plan) => plan,
        Err(problems) => {
            eprint!("error: {problems}");
            return 2;
        }
    };
    let role = match role {
        IamRole::Controller => cutover::plan::iam::Role::Controller,
        IamRole::Instance => cutover::plan::iam::Role::Instance,
    };
    match cutover::plan::iam::policy(&plan, role, account_id) {
        Ok(policy) => {
            if account_id.is_none() {
                eprintln!("note: no --account-id: the ARNs' account field is `*`");
            }
            if plan
                .steps
                .iter()
                .any(|s| s.kind.name.starts_with("terraform."))
            {
                eprintln!("note: the Terraform stages' modules make their own AWS calls; this policy covers their S3 state only, not what the modules create");
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&policy).unwrap_or_default()
            );
            0
        }
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            if let Some(hint) = &failure.hint {
                eprintln!("hint: {hint}");
            }
            2
        }
    }
}

fn parse_account_id(text: &str) -> Result<String, String> {
    if text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit()) {
        Ok(text.to_owned())
    } else {
        Err(format!("`{text}` is not an AWS account id (12 digits)"))
    }
}

fn plan_command(args: &PlanArgs) -> u8 {
    match run::load_plan(&args.runbook, &args.env, &args.sets) {
        Ok(plan) => {
            match args.output {
                OutputFormat::Human => print!("{}", render::plan_text(&plan)),
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&render::plan_json(&plan)).unwrap_or_default()
                ),
            }
            0
        }
        Err(problems) => {
            eprint!("error: {problems}");
            2
        }
    }
}

async fn run_command(
    args: PlanArgs,
    yes: bool,
    run_id: Option<String>,
    take_over_lease: bool,
) -> u8 {
    let plan = match run::load_plan(&args.runbook, &args.env, &args.sets) {
        Ok(plan) => plan,
        Err(problems) => {
            eprint!("error: {problems}");
            return 2;
        }
    };
    if !yes {
        if !std::io::stdin().is_terminal() {
            eprintln!("error: `cutover run` changes the environment; pass --yes to run without a terminal to confirm on. Nothing was done");
            return 2;
        }
        eprint!("{}", render::plan_text(&plan));
        eprint!(
            "Run this plan on environment `{}`? [y/N] ",
            plan.environment.name
        );
        let mut answer = String::new();
        if std::io::stdin().read_line(&mut answer).is_err()
            || !matches!(answer.trim(), "y" | "Y" | "yes")
        {
            eprintln!("not confirmed; nothing was done");
            return 2;
        }
    }
    let stop = install_signal_handlers();
    let options = RunOptions {
        sets: args.sets.clone(),
        reporter: Some(reporter()),
        run_id: run_id.map(RunId::new),
        take_over_lease,
        rollback_of: None,
    };
    let result = run::start(plan, options, progress_for(args.output), stop.clone()).await;
    report_and_chain(result, &args.env, args.output, stop).await
}

/// The report layer, as the engine writes a run's report when a session ends.
#[derive(Debug)]
struct ReportWriter;

impl run::RunReporter for ReportWriter {
    fn write(
        &self,
        run_dir: &std::path::Path,
        records: &[cutover::engine::journal::Record],
    ) -> Result<std::path::PathBuf, cutover::failure::Failure> {
        cutover::report::write_reports(run_dir, records).map(|paths| paths.markdown)
    }
}

fn reporter() -> std::sync::Arc<dyn run::RunReporter> {
    std::sync::Arc::new(ReportWriter)
}

/// Reports a run; when its bake failed after green took writes, starts its rollback
/// (`cutover rollback`) and reports that too. The exit code then tells the pair's story
/// (see [`rollback::chained_exit_code`]).
async fn report_and_chain(
    result: Result<RunSummary, RunError>,
    env: &str,
    output: OutputFormat,
    stop: tokio::sync::watch::Receiver<bool>,
) -> u8 {
    let summary = match result {
        Ok(summary) => summary,
        Err(e) => return report_run::<RunSummary>(Err(e), output),
    };
    let code = report_run(Ok(&summary), output);
    if !rollback::wanted_after(&summary) || *stop.borrow() {
        return code;
    }
    let undone = summary.run_id;
    if output == OutputFormat::Human {
        println!("run {undone}: the bake failed after green took writes; rolling back (`cutover rollback {undone}`)");
    }
    let rollback = rollback::start(
        undone,
        env,
        None,
        Some(reporter()),
        progress_for(output),
        stop,
    )
    .await;
    let chained = rollback::chained_exit_code(&rollback);
    report_run(rollback, output);
    chained
}

fn report_run<S: std::borrow::Borrow<RunSummary>>(
    result: Result<S, RunError>,
    output: OutputFormat,
) -> u8 {
    let result = result.as_ref().map(|s| s.borrow());
    match result {
        Ok(summary) => {
            let code = summary.exit_code();
            let (outcome, message) = match &summary.end {
                SessionEnd::Finished(outcome, message) => (outcome.to_string(), message.clone()),
                SessionEnd::Interrupted => (
                    "Interrupted".to_string(),
                    format!(
                        "run {} stopped; continue it with `cutover resume {}`",
                        summary.run_id, summary.run_id
                    ),
                ),
            };
            match output {
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::json!({ "run_id": summary.run_id, "outcome": outcome, "message": message, "exit_code": code, "run_dir": summary.run_dir, "report": summary.report })
                ),
                OutputFormat::Human => {
                    println!("run {}: {outcome}: {message}", summary.run_id);
                    println!(
                        "journal: {}",
                        summary.run_dir.join("journal.jsonl").display()
                    );
                    if let Some(report) = &summary.report {
                        println!("report:  {}", report.display());
                    }
                }
            }
            code
        }
        Err(e) => {
            match output {
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::json!({ "error": e.to_string(), "exit_code": e.exit_code() })
                ),
                OutputFormat::Human => eprintln!("error: {}", e.to_string().trim_end()),
            }
            e.exit_code()
        }
    }
}
