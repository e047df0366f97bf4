//! `get rollout NAME [--watch]` and `get experiment NAME [--watch]`: the tree, once or live.
//!
//! In a terminal `--watch` redraws in place, with colour, whenever the Rollout, its
//! ReplicaSets, pods, runs, experiments or events change (and each second, for the ages).
//! Piped, it prints plain text: the tree again each time it changes, separated by a blank
//! line, so a log or a CI job shows every state.

use std::time::Duration;

use chrono::Utc;
use clap::{Args, Subcommand};
use tokio::sync::broadcast::error::RecvError;

use sluice_client::error::{Error, kind};
use sluice_client::live::Live;
use sluice_client::view;
use sluice_client::world::{Key, Topic, fetch_experiment_world, fetch_world};

use super::terminal::{CLEAR, Style, stdout_is_terminal};
use super::{RolloutArgs, tree};

/// What `get` shows.
#[derive(Debug, Subcommand)]
pub enum GetCommand {
    /// A Rollout: phase, steps, desired and actual weight, ReplicaSets, pods, analysis, events.
    #[command(visible_aliases = ["ro", "rollouts"])]
    Rollout(GetArgs),
    /// An Experiment: its templates' ReplicaSets and pods, and its AnalysisRuns.
    #[command(visible_aliases = ["exp", "experiments"])]
    Experiment(GetArgs),
}

/// Flags of `get`.
#[derive(Debug, Args, Clone)]
pub struct GetArgs {
    #[command(flatten)]
    pub target: RolloutArgs,
    /// Follow live: redraw in a terminal, print each new state when piped.
    #[arg(short, long)]
    pub watch: bool,
    /// No colour (also: NO_COLOR set, TERM=dumb, or output not a terminal).
    #[arg(long)]
    pub no_color: bool,
    /// With --watch: stop after this many seconds (0: until interrupted).
    #[arg(long, default_value_t = 0)]
    pub timeout_seconds: u64,
}

/// Run `get`.
pub async fn run(command: &GetCommand) -> anyhow::Result<()> {
    let (args, experiment) = match command {
        GetCommand::Rollout(a) => (a, false),
        GetCommand::Experiment(a) => (a, true),
    };
    let (client, ns) = args.target.scope.connect().await?;
    let name = &args.target.name;
    let style = Style::detect(args.no_color);
    if !args.watch {
        let text = if experiment {
            let world = fetch_experiment_world(&client, &ns, name).await?;
            tree::experiment(&view::experiment(&world), Utc::now(), &style)
        } else {
            let world = fetch_world(&client, &ns, name).await?;
            tree::rollout(&view::rollout(&world), Utc::now(), &style)
        };
        print!("{text}");
        return Ok(());
    }
    watch(client, ns, name, experiment, args, style).await
}

async fn watch(
    client: kube::Client,
    ns: String,
    name: &str,
    experiment: bool,
    args: &GetArgs,
    style: Style,
) -> anyhow::Result<()> {
    let live = Live::start(client, Some(ns.clone()));
    let mut changes = live.subscribe();
    live.synced().await?;
    let key = Key::new(ns.clone(), name);
    let topic = if experiment {
        Topic::Experiment(key.clone())
    } else {
        Topic::Rollout(key.clone())
    };
    let render = || -> Result<String, Error> {
        let index = live.read();
        let missing = || Error::NotFound {
            kind: if experiment {
                kind::EXPERIMENT
            } else {
                kind::ROLLOUT
            },
            namespace: ns.clone(),
            name: name.to_string(),
        };
        if experiment {
            let world = index.experiment_world(&key).ok_or_else(missing)?;
            Ok(tree::experiment(
                &view::experiment(&world),
                Utc::now(),
                &style,
            ))
        } else {
            match index.world(&key).ok_or_else(missing)? {
                Ok(world) => Ok(tree::rollout(&view::rollout(&world), Utc::now(), &style)),
                Err(message) => Err(Error::Decode {
                    kind: kind::ROLLOUT,
                    name: name.to_string(),
                    message,
                }),
            }
        }
    };
    let terminal = stdout_is_terminal();
    let deadline = (args.timeout_seconds > 0)
        .then(|| tokio::time::Instant::now() + Duration::from_secs(args.timeout_seconds));
    let mut last = String::new();
    let mut first = true;
    loop {
        let text = render()?;
        if text != last {
            if terminal {
                print!("{CLEAR}{text}");
            } else {
                if !first {
                    println!();
                }
                print!("{text}");
            }
            use std::io::Write as _;
            std::io::stdout().flush()?;
            last = text;
            first = false;
        }
        // Wait for a change to this tree (or, in a terminal, a second for the ages).
        let tick = tokio::time::sleep(Duration::from_secs(if terminal { 1 } else { 3600 }));
        let stop = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop => return Ok(()),
            _ = tick => {}
            _ = next_change(&mut changes, &topic) => {}
        }
        // Let a burst of changes (a scale-up touches several objects) land in one redraw.
        tokio::time::sleep(Duration::from_millis(100)).await;
        while let Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) =
            changes.try_recv()
        {}
    }
}

/// Wait for a change that concerns `topic`.
async fn next_change(changes: &mut tokio::sync::broadcast::Receiver<Topic>, topic: &Topic) {
    loop {
        match changes.recv().await {
            Ok(t) if &t == topic => return,
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => return,
            Err(RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}
