//! `status NAME [--watch] [--timeout]`: wait for a Rollout to finish, for CI pipelines.
//!
//! Exit 0 when it is Healthy, 1 when it is Degraded (aborted, failed analysis, invalid
//! spec, progress deadline), 2 when `--timeout` passes first. A status the controller has
//! not caught up with yet (observedGeneration behind the spec) counts as Progressing, so
//! `set image` followed by `status` never reports the old revision's Healthy.

use std::time::Duration;

use clap::Args;
use futures::StreamExt;
use kube::runtime::watcher::{self, Event};

use sluice_api::k8s::duration::parse_seconds_or_duration;
use sluice_api::rollout::Rollout;
use sluice_client::actions::rollouts;
use sluice_client::error::{Error, kind};
use sluice_client::phase::{Phase, observed_phase};
use sluice_client::world::decode;

use super::{Exit, RolloutArgs};

/// Flags of `status`.
#[derive(Debug, Args, Clone)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: RolloutArgs,
    /// Wait until the Rollout is Healthy or Degraded (`--watch=false` prints it once).
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub watch: bool,
    /// Give up after this long (for example `60s`, `5m`; 0: wait forever).
    #[arg(short, long, default_value = "0s", value_parser = parse_seconds_or_duration)]
    pub timeout: Duration,
}

/// The line printed for a phase (upstream's: `Paused - CanaryPauseStep`, `Healthy`).
pub fn line(phase: Phase, message: &str) -> String {
    if message.is_empty() {
        phase.as_str().to_string()
    } else {
        format!("{} - {message}", phase.as_str())
    }
}

/// The outcome of a final phase.
fn finish(name: &str, phase: Phase, message: &str) -> anyhow::Result<()> {
    match phase {
        Phase::Degraded => Err(Exit {
            code: 1,
            message: format!("rollout '{name}' is Degraded: {message}"),
        }
        .into()),
        _ => Ok(()),
    }
}

/// Run `status`.
pub async fn run(args: &StatusArgs) -> anyhow::Result<()> {
    let (client, ns) = args.target.scope.connect().await?;
    let name = args.target.name.as_str();
    let api = rollouts(&client, &ns);
    let read = |obj| {
        decode::<Rollout>(obj).map_err(|message| Error::Decode {
            kind: kind::ROLLOUT,
            name: name.to_string(),
            message,
        })
    };
    // A missing Rollout is an error at once, not a wait.
    let first = api
        .get(name)
        .await
        .map_err(|e| Error::from_kube(e, "get", kind::ROLLOUT, &ns, name))?;
    let (phase, message) = observed_phase(&read(first)?);
    let mut last = line(phase, &message);
    println!("{last}");
    if !args.watch || phase.is_final() {
        return finish(name, phase, &message);
    }
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher::watcher(api, config);
    futures::pin_mut!(stream);
    let mut state = (phase, message);
    let wait = async {
        while let Some(event) = stream.next().await {
            let obj = match event {
                Ok(Event::Apply(o) | Event::InitApply(o)) => o,
                Ok(Event::Delete(_)) => {
                    return Err(anyhow::Error::from(Error::NotFound {
                        kind: kind::ROLLOUT,
                        namespace: ns.clone(),
                        name: name.to_string(),
                    }));
                }
                Ok(_) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "watch failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            state = observed_phase(&read(obj)?);
            let now = line(state.0, &state.1);
            if now != last {
                println!("{now}");
                last = now;
            }
            if state.0.is_final() {
                return finish(name, state.0, &state.1);
            }
        }
        Ok(())
    };
    if args.timeout.is_zero() {
        return wait.await;
    }
    match tokio::time::timeout(args.timeout, wait).await {
        Ok(result) => result,
        Err(_) => Err(Exit {
            code: 2,
            message: format!(
                "rollout '{name}' did not finish within {}: {last}",
                sluice_client::actions::humanize(args.timeout)
            ),
        }
        .into()),
    }
}
