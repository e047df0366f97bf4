//! The commands that change something: promote, abort, retry, pause, resume, restart,
//! undo, set image, terminate. Each sends exactly COMPAT §7's requests (built once, in
//! `sluice_client::actions`) and prints one line saying what it did.

use clap::{Args, Subcommand};

use sluice_client::actions::experiment::Terminable;
use sluice_client::actions::{self, Action, Options};

use super::{RolloutArgs, Scope};

/// `retry rollout|experiment NAME`.
#[derive(Debug, Subcommand)]
pub enum RetryCommand {
    /// Retry an aborted Rollout: it starts the update again from the first step.
    #[command(visible_aliases = ["ro", "rollouts"])]
    Rollout(RolloutArgs),
    /// Retry a finished Experiment: it starts again.
    #[command(visible_aliases = ["exp", "experiments"])]
    Experiment(NamedArgs),
}

/// `set image NAME CONTAINER=IMAGE`.
#[derive(Debug, Subcommand)]
pub enum SetCommand {
    /// Change a container's image (`*=IMAGE` for every container).
    Image {
        #[command(flatten)]
        target: RolloutArgs,
        /// `CONTAINER=IMAGE`.
        assignment: String,
    },
}

/// `terminate experiment|analysisrun NAME`.
#[derive(Debug, Subcommand)]
pub enum TerminateCommand {
    /// Stop a running Experiment.
    #[command(visible_aliases = ["exp", "experiments"])]
    Experiment(NamedArgs),
    /// Stop a running AnalysisRun.
    #[command(visible_aliases = ["ar", "analysisruns"])]
    Analysisrun(NamedArgs),
}

/// An object by name.
#[derive(Debug, Args, Clone)]
pub struct NamedArgs {
    /// Its name.
    pub name: String,
    #[command(flatten)]
    pub scope: Scope,
}

/// Run one of the Rollout actions.
pub async fn rollout_action(
    target: &RolloutArgs,
    action: Action,
    options: Options,
) -> anyhow::Result<()> {
    let (client, ns) = target.scope.connect().await?;
    println!(
        "{}",
        actions::run(&client, &ns, &target.name, action, options).await?
    );
    Ok(())
}

/// `retry rollout|experiment NAME`.
pub async fn retry(command: &RetryCommand) -> anyhow::Result<()> {
    match command {
        RetryCommand::Rollout(target) => {
            rollout_action(target, Action::Retry, Options::default()).await
        }
        RetryCommand::Experiment(target) => {
            let (client, ns) = target.scope.connect().await?;
            println!(
                "{}",
                actions::experiment::retry(&client, &ns, &target.name).await?
            );
            Ok(())
        }
    }
}

/// `undo NAME [--to-revision N]`.
pub async fn undo(target: &RolloutArgs, to_revision: Option<i64>) -> anyhow::Result<()> {
    let (client, ns) = target.scope.connect().await?;
    println!(
        "{}",
        actions::undo::run(&client, &ns, &target.name, to_revision).await?
    );
    Ok(())
}

/// `set image NAME CONTAINER=IMAGE`.
pub async fn set(command: &SetCommand) -> anyhow::Result<()> {
    let SetCommand::Image { target, assignment } = command;
    let (container, image) =
        actions::set_image::parse_assignment(assignment).map_err(anyhow::Error::msg)?;
    let (client, ns) = target.scope.connect().await?;
    println!(
        "{}",
        actions::set_image::run(&client, &ns, &target.name, container, image).await?
    );
    Ok(())
}

/// `terminate experiment|analysisrun NAME`.
pub async fn terminate(command: &TerminateCommand) -> anyhow::Result<()> {
    let (target, which) = match command {
        TerminateCommand::Experiment(t) => (t, Terminable::Experiment),
        TerminateCommand::Analysisrun(t) => (t, Terminable::AnalysisRun),
    };
    let (client, ns) = target.scope.connect().await?;
    println!(
        "{}",
        actions::experiment::terminate(&client, &ns, which, &target.name).await?
    );
    Ok(())
}
