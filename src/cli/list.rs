//! `list rollouts|experiments|analysisruns [-A]`: one line per object.

use chrono::Utc;
use clap::{Args, Subcommand};

use sluice_client::view::{self, RolloutSummary, summary};
use sluice_client::world::{Stored, fetch_index};

use super::{KubeArgs, tree};

/// What `list` shows.
#[derive(Debug, Subcommand)]
pub enum ListCommand {
    /// Rollouts: strategy, phase, step, desired and actual weight, replicas.
    #[command(visible_aliases = ["ro", "rollout"])]
    Rollouts(ListArgs),
    /// Experiments: phase, duration, age.
    #[command(visible_aliases = ["exp", "experiment"])]
    Experiments(ListArgs),
    /// AnalysisRuns: phase, measurements, owner, age.
    #[command(visible_aliases = ["ar", "analysisrun"])]
    Analysisruns(ListArgs),
}

/// Flags of `list`.
#[derive(Debug, Args, Clone)]
pub struct ListArgs {
    /// Namespace (default: the kubeconfig context's namespace).
    #[arg(short, long, conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// Left-aligned columns two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            s += c;
            if i + 1 < cells.len() {
                s += &" ".repeat(widths[i] - c.chars().count() + 2);
            }
        }
        s + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out += &line(r.clone());
    }
    out
}

fn opt(v: Option<i32>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// The rows of `list rollouts` (pure).
pub fn rollout_rows(summaries: &[RolloutSummary], all_namespaces: bool) -> String {
    let mut header = vec![
        "NAME",
        "STRATEGY",
        "STATUS",
        "STEP",
        "SET-WEIGHT",
        "ACTUAL-WEIGHT",
        "READY",
        "DESIRED",
        "UP-TO-DATE",
        "AVAILABLE",
    ];
    if all_namespaces {
        header.insert(0, "NAMESPACE");
    }
    let rows: Vec<Vec<String>> = summaries
        .iter()
        .map(|s| {
            let mut row = vec![
                s.name.clone(),
                s.strategy.to_string(),
                s.phase.as_str().to_string(),
                s.step.clone(),
                opt(s.set_weight),
                opt(s.actual_weight),
                format!("{}/{}", s.ready, s.current),
                s.desired.to_string(),
                s.updated.to_string(),
                s.available.to_string(),
            ];
            if all_namespaces {
                row.insert(0, s.namespace.clone());
            }
            row
        })
        .collect();
    table(&header, &rows)
}

/// Run `list`.
pub async fn run(command: &ListCommand) -> anyhow::Result<()> {
    let args = match command {
        ListCommand::Rollouts(a) | ListCommand::Experiments(a) | ListCommand::Analysisruns(a) => a,
    };
    let (client, default_ns) = sluice_controller::client::connect(
        args.kube.kubeconfig.as_deref(),
        args.kube.context.as_deref(),
    )
    .await?;
    let ns = (!args.all_namespaces).then(|| args.namespace.clone().unwrap_or(default_ns));
    let index = fetch_index(&client, ns.as_deref()).await?;
    let all = args.all_namespaces;
    let now = Utc::now();
    let (text, empty) = match command {
        ListCommand::Rollouts(_) => {
            let summaries: Vec<RolloutSummary> = index
                .rollouts()
                .map(|(key, stored)| match stored {
                    Stored::Decoded(_) => match index.world(key) {
                        Some(Ok(world)) => summary(&view::rollout(&world)),
                        _ => view::summary::undecodable(&key.namespace, &key.name, "unreadable"),
                    },
                    Stored::Undecodable { message } => {
                        view::summary::undecodable(&key.namespace, &key.name, message)
                    }
                })
                .collect();
            (rollout_rows(&summaries, all), summaries.is_empty())
        }
        ListCommand::Experiments(_) => {
            let mut header = vec!["NAME", "STATUS", "DURATION", "AGE"];
            if all {
                header.insert(0, "NAMESPACE");
            }
            let rows: Vec<Vec<String>> = index
                .experiments()
                .map(|e| {
                    let phase = e
                        .status
                        .as_ref()
                        .and_then(|s| s.phase.as_ref())
                        .map_or("Pending".to_string(), |p| p.as_str().to_string());
                    let created = e
                        .metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|t| t.0.to_string());
                    let mut row = vec![
                        e.metadata.name.clone().unwrap_or_default(),
                        phase,
                        e.spec.duration.clone().unwrap_or_else(|| "-".into()),
                        tree::age(created.as_deref(), now),
                    ];
                    if all {
                        row.insert(0, e.metadata.namespace.clone().unwrap_or_default());
                    }
                    row
                })
                .collect();
            (table(&header, &rows), rows.is_empty())
        }
        ListCommand::Analysisruns(_) => {
            let mut header = vec!["NAME", "STATUS", "MEASUREMENTS", "OWNER", "AGE"];
            if all {
                header.insert(0, "NAMESPACE");
            }
            let rows: Vec<Vec<String>> = index
                .analysis_runs()
                .map(|r| {
                    let v = view::tree::analysis_run(r);
                    let owner = r
                        .metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .find(|o| o.controller == Some(true))
                        .map_or("-".to_string(), |o| {
                            format!("{}/{}", o.kind.to_lowercase(), o.name)
                        });
                    let mut row = vec![
                        v.name.clone(),
                        v.phase.clone(),
                        format!(
                            "✔ {} ✖ {} ? {} ⚠ {}",
                            v.successful, v.failed, v.inconclusive, v.error
                        ),
                        owner,
                        tree::age(v.created.as_deref(), now),
                    ];
                    if all {
                        row.insert(0, r.metadata.namespace.clone().unwrap_or_default());
                    }
                    row
                })
                .collect();
            (table(&header, &rows), rows.is_empty())
        }
    };
    if empty {
        match &ns {
            Some(ns) => eprintln!("No resources found in {ns} namespace."),
            None => eprintln!("No resources found."),
        }
    } else {
        print!("{text}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_two_spaces_apart() {
        let t = table(
            &["NAME", "STATUS"],
            &[
                vec!["web".into(), "Healthy".into()],
                vec!["checkout".into(), "Paused".into()],
            ],
        );
        assert_eq!(t, "NAME      STATUS\nweb       Healthy\ncheckout  Paused\n");
    }
}
