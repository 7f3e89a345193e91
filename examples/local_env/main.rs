//! `cargo run --example local_env -- COMMAND`: set up and exercise a local credex-like
//! environment (used by `scripts/demo.sh`).
//!
//! ```text
//! local_env setup    ENV MEMBERS      blue ledger + search, app users, app connection secret
//! local_env writer   ENV MEMBERS LOG  commit ledger transactions until SIGTERM; LOG gets JSON
//! local_env verify   ENV LOG          every acknowledged write is where the app now connects;
//!                                     prints a `measures:` line for `cutover report --measure`
//! local_env teardown ENV              stop and remove every instance of ENV
//! local_env bench-freeze              the freeze-window benchmark (`make bench-freeze`,
//!                                     bench/freeze.rs)
//! ```

#[path = "../../bench/freeze.rs"]
mod freeze;
#[allow(dead_code)]
#[path = "../../bench/measure.rs"]
mod measure;
mod support;

use cutover::config::Environment;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn load(env: &str) -> Result<Environment, support::BoxError> {
    Environment::load(env).map_err(|p| format!("{p:?}").into())
}

fn main() -> Result<(), support::BoxError> {
    // The benchmark runs its own runtime (it also times blocking commands).
    if std::env::args().nth(1).as_deref() == Some("bench-freeze") {
        return freeze::run().map_err(Into::into);
    }
    tokio::runtime::Runtime::new()?.block_on(commands())
}

async fn commands() -> Result<(), support::BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| {
        args.get(i)
            .cloned()
            .ok_or_else(|| format!("missing argument {i}; see the example's docs"))
    };
    match args.first().map(String::as_str) {
        Some("setup") => {
            let env = load(&arg(1)?)?;
            let members: u64 = arg(2)?.parse()?;
            support::setup(&env, members, 320).await?;
            println!(
                "blue ledger and search are up in environment {} ({members} members)",
                env.name
            );
        }
        Some("writer") => {
            let env = load(&arg(1)?)?;
            let members: u64 = arg(2)?.parse()?;
            let out = arg(3)?;
            let stop = Arc::new(AtomicBool::new(false));
            let s = stop.clone();
            tokio::spawn(async move {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .expect("signal");
                tokio::select! { _ = term.recv() => {}, _ = tokio::signal::ctrl_c() => {} }
                s.store(true, Ordering::SeqCst);
            });
            let log = support::run_writer(env, members, stop).await;
            std::fs::write(&out, serde_json::to_vec_pretty(&log)?)?;
        }
        Some("verify") => {
            let env = load(&arg(1)?)?;
            let log: serde_json::Value = serde_json::from_slice(&std::fs::read(arg(2)?)?)?;
            let ids: Vec<String> = serde_json::from_value(log["acknowledged"].clone())?;
            let mut most_missing = 0;
            for (db, uri, present) in support::present_where_the_app_connects(&env, &ids).await? {
                println!(
                    "{db}: writes acknowledged: {}  present on {uri}: {present}  lost: {}",
                    ids.len(),
                    ids.len() as u64 - present,
                );
                most_missing = most_missing.max(ids.len() as u64 - present);
            }
            println!(
                "refused-and-retried: {}  longest refused stretch: {} ms",
                log["refused"], log["longest_gap_ms"]
            );
            // For `cutover report RUN --measure …` (scripts/demo.sh attaches them).
            println!(
                "measures: writes_acknowledged={} writes_lost={most_missing}",
                ids.len()
            );
            if most_missing > 0 {
                std::process::exit(1);
            }
        }
        Some("teardown") => {
            let env = load(&arg(1)?)?;
            let n = support::teardown(&env).await?;
            println!("removed {n} instance(s) of {}", env.name);
        }
        _ => {
            return Err(
                "usage: local_env setup|writer|verify|teardown ENV …, or local_env bench-freeze"
                    .into(),
            )
        }
    }
    Ok(())
}
