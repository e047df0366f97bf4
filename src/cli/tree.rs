//! A Rollout or an Experiment as text: the header (phase, step, desired vs actual weight,
//! images, replicas), the step list with the current step marked, the tree of revisions,
//! ReplicaSets, pods, AnalysisRuns (each metric's phase and last values) and Experiments,
//! and the last Events. Pure: the view, the time and the style are inputs.

use chrono::{DateTime, Utc};

use sluice_client::phase::Phase;
use sluice_client::view::{
    AnalysisRunView, ExperimentView, Health, ReplicaSetView, Role, RolloutView, StepState,
};

use super::terminal::{Color, Style};

const ICON_ROLLOUT: &str = "◆";
const ICON_REVISION: &str = "#";
const ICON_REPLICA_SET: &str = "▤";
const ICON_POD: &str = "□";
const ICON_ANALYSIS: &str = "α";
const ICON_METRIC: &str = "∿";
const ICON_EXPERIMENT: &str = "Σ";

/// How long ago `t` (RFC 3339) was, the way kubectl says it.
pub fn age(t: Option<&str>, now: DateTime<Utc>) -> String {
    let Some(then) = t.and_then(|t| DateTime::parse_from_rfc3339(t).ok()) else {
        return "-".into();
    };
    let s = (now - then.to_utc()).num_seconds().max(0);
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn phase_icon(phase: Phase) -> (&'static str, Color) {
    match phase {
        Phase::Healthy => ("✔", Color::Green),
        Phase::Progressing => ("◌", Color::Blue),
        Phase::Paused => ("‖", Color::Yellow),
        Phase::Degraded => ("✖", Color::Red),
    }
}

fn health_icon(h: Health) -> (&'static str, Color) {
    match h {
        Health::Healthy => ("✔", Color::Green),
        Health::Progressing => ("◌", Color::Blue),
        Health::ScaledDown => ("•", Color::Gray),
        Health::Degraded => ("✖", Color::Red),
    }
}

fn analysis_icon(phase: &str) -> (&'static str, Color) {
    match phase {
        "Successful" => ("✔", Color::Green),
        "Running" | "Pending" | "Progressing" => ("◌", Color::Blue),
        "Failed" => ("✖", Color::Red),
        "Error" => ("⚠", Color::Red),
        "Inconclusive" => ("?", Color::Yellow),
        _ => ("•", Color::Gray),
    }
}

fn role_color(role: Role) -> Color {
    match role {
        Role::Stable | Role::Active => Color::Green,
        Role::Canary => Color::Yellow,
        Role::Preview => Color::Blue,
    }
}

/// A cell: its text and colour.
type Cell = (String, Option<Color>);

/// One row of the tree table.
struct Row {
    prefix: String,
    name: Cell,
    kind: &'static str,
    status: (String, String, Color),
    age: String,
    info: Vec<Cell>,
}

struct Table<'a> {
    rows: Vec<Row>,
    style: &'a Style,
    now: DateTime<Utc>,
}

fn branch(last: bool, indent: &str) -> (String, String) {
    if last {
        (format!("{indent}└──"), format!("{indent}   "))
    } else {
        (format!("{indent}├──"), format!("{indent}│  "))
    }
}

impl Table<'_> {
    fn render(&self) -> String {
        let width = |s: &str| s.chars().count();
        let name_w = self
            .rows
            .iter()
            .map(|r| width(&r.prefix) + width(&r.name.0))
            .max()
            .unwrap_or(4)
            .max(4);
        let kind_w = self
            .rows
            .iter()
            .map(|r| r.kind.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let status_w = self
            .rows
            .iter()
            .map(|r| {
                if r.status.1.is_empty() {
                    0
                } else {
                    width(&r.status.0) + 1 + width(&r.status.1)
                }
            })
            .max()
            .unwrap_or(6)
            .max(6);
        let age_w = self
            .rows
            .iter()
            .map(|r| r.age.len())
            .max()
            .unwrap_or(3)
            .max(3);
        let mut out = format!(
            "{:<name_w$}  {:<kind_w$}  {:<status_w$}  {:<age_w$}  INFO\n",
            "NAME", "KIND", "STATUS", "AGE"
        );
        for r in &self.rows {
            let name_pad = name_w - width(&r.prefix) - width(&r.name.0);
            let status_text = if r.status.1.is_empty() {
                String::new()
            } else {
                format!(
                    "{} {}",
                    self.style.paint(&r.status.0, Some(r.status.2)),
                    r.status.1
                )
            };
            let status_len = if r.status.1.is_empty() {
                0
            } else {
                width(&r.status.0) + 1 + width(&r.status.1)
            };
            let info: Vec<String> = r
                .info
                .iter()
                .map(|(t, c)| self.style.paint(t, *c))
                .collect();
            let line = format!(
                "{}{}{}  {:<kind_w$}  {}{}  {:<age_w$}  {}",
                r.prefix,
                self.style.paint(&r.name.0, r.name.1),
                " ".repeat(name_pad),
                r.kind,
                status_text,
                " ".repeat(status_w - status_len),
                r.age,
                info.join(",")
            );
            out += line.trim_end();
            out.push('\n');
        }
        out
    }

    fn replica_set(&mut self, rs: &ReplicaSetView, indent: &str, last: bool) {
        let (prefix, child) = branch(last, indent);
        let (icon, color) = health_icon(rs.health);
        let mut info: Vec<Cell> = rs
            .roles
            .iter()
            .map(|r| (r.as_str().to_string(), Some(role_color(*r))))
            .collect();
        info.push((format!("ready:{}/{}", rs.ready, rs.desired), None));
        if let Some(d) = &rs.scale_down_deadline {
            info.push((format!("scale-down at {d}"), None));
        }
        self.rows.push(Row {
            prefix: prefix + ICON_REPLICA_SET + " ",
            name: (rs.name.clone(), rs.roles.first().map(|r| role_color(*r))),
            kind: "ReplicaSet",
            status: (icon.into(), rs.health.as_str().into(), color),
            age: age(rs.created.as_deref(), self.now),
            info,
        });
        for (i, pod) in rs.pods.iter().enumerate() {
            let (prefix, _) = branch(i + 1 == rs.pods.len(), &child);
            let (icon, color) = health_icon(pod.health);
            let mut info = vec![(format!("ready:{}", pod.ready), None)];
            if pod.restarts > 0 {
                info.push((format!("restarts:{}", pod.restarts), Some(Color::Yellow)));
            }
            self.rows.push(Row {
                prefix: prefix + ICON_POD + " ",
                name: (pod.name.clone(), None),
                kind: "Pod",
                status: (icon.into(), pod.status.clone(), color),
                age: age(pod.created.as_deref(), self.now),
                info,
            });
        }
    }

    fn analysis_run(&mut self, run: &AnalysisRunView, indent: &str, last: bool) {
        let (prefix, child) = branch(last, indent);
        let (icon, color) = analysis_icon(&run.phase);
        let mut info: Vec<Cell> = Vec::new();
        for (n, sym, c) in [
            (run.successful, "✔", Color::Green),
            (run.failed, "✖", Color::Red),
            (run.inconclusive, "?", Color::Yellow),
            (run.error, "⚠", Color::Red),
        ] {
            if n > 0 {
                info.push((format!("{sym} {n}"), Some(c)));
            }
        }
        self.rows.push(Row {
            prefix: prefix + ICON_ANALYSIS + " ",
            name: (run.name.clone(), None),
            kind: "AnalysisRun",
            status: (icon.into(), run.phase.clone(), color),
            age: age(run.created.as_deref(), self.now),
            info,
        });
        for (i, m) in run.metrics.iter().enumerate() {
            let (prefix, _) = branch(i + 1 == run.metrics.len(), &child);
            let (icon, color) = analysis_icon(&m.phase);
            let values: Vec<String> = m
                .measurements
                .iter()
                .rev()
                .take(3)
                .rev()
                .map(|x| x.value.clone().unwrap_or_else(|| x.phase.clone()))
                .collect();
            let mut info = Vec::new();
            if !values.is_empty() {
                info.push((format!("last: {}", values.join(" ")), None));
            }
            if m.dry_run {
                info.push(("dry-run".to_string(), Some(Color::Gray)));
            }
            self.rows.push(Row {
                prefix: prefix + ICON_METRIC + " ",
                name: (m.name.clone(), None),
                kind: "Metric",
                status: (icon.into(), m.phase.clone(), color),
                age: String::new(),
                info,
            });
        }
    }

    fn experiment(&mut self, e: &ExperimentView, indent: &str, last: bool) {
        let (prefix, child) = branch(last, indent);
        let (icon, color) = analysis_icon(&e.phase);
        let info = e
            .duration
            .iter()
            .map(|d| (format!("duration:{d}"), None))
            .collect();
        self.rows.push(Row {
            prefix: prefix + ICON_EXPERIMENT + " ",
            name: (e.name.clone(), None),
            kind: "Experiment",
            status: (icon.into(), e.phase.clone(), color),
            age: age(e.created.as_deref(), self.now),
            info,
        });
        self.experiment_children(e, &child);
    }

    fn experiment_children(&mut self, e: &ExperimentView, indent: &str) {
        let total = e.replica_sets.len() + e.analysis_runs.len();
        for (i, rs) in e.replica_sets.iter().enumerate() {
            self.replica_set(rs, indent, i + 1 == total);
        }
        for (i, run) in e.analysis_runs.iter().enumerate() {
            self.analysis_run(run, indent, e.replica_sets.len() + i + 1 == total);
        }
    }
}

fn field(out: &mut String, label: &str, value: &str) {
    out.push_str(&format!("{label:<17}{value}\n"));
}

fn weight(w: Option<i32>) -> String {
    w.map_or_else(|| "-".to_string(), |w| w.to_string())
}

/// `get rollout`.
pub fn rollout(view: &RolloutView, now: DateTime<Utc>, style: &Style) -> String {
    let mut out = String::new();
    let (icon, color) = phase_icon(view.phase);
    field(&mut out, "Name:", &view.name);
    field(&mut out, "Namespace:", &view.namespace);
    field(
        &mut out,
        "Status:",
        &format!("{} {}", style.paint(icon, Some(color)), view.phase.as_str()),
    );
    if !view.message.is_empty() {
        field(&mut out, "Message:", &view.message);
    }
    field(&mut out, "Strategy:", view.strategy);
    if view.strategy == "Canary" {
        let step = match view.step_index {
            Some(i) if !view.steps.is_empty() => format!("{i}/{}", view.steps.len()),
            _ => "-".into(),
        };
        field(&mut out, "  Step:", &step);
        field(&mut out, "  SetWeight:", &weight(view.set_weight));
        let actual = weight(view.actual_weight);
        let differs = view.actual_weight != view.set_weight;
        field(
            &mut out,
            "  ActualWeight:",
            &style.paint(&actual, differs.then_some(Color::Yellow)),
        );
    }
    for (i, image) in view.images.iter().enumerate() {
        let roles: Vec<String> = image
            .roles
            .iter()
            .map(|r| style.paint(r.as_str(), Some(role_color(*r))))
            .collect();
        let text = if roles.is_empty() {
            image.image.clone()
        } else {
            format!("{} ({})", image.image, roles.join(", "))
        };
        field(&mut out, if i == 0 { "Images:" } else { "" }, &text);
    }
    out.push_str("Replicas:\n");
    let r = &view.replicas;
    for (label, n) in [
        ("  Desired:", r.desired),
        ("  Current:", r.current),
        ("  Updated:", r.updated),
        ("  Ready:", r.ready),
        ("  Available:", r.available),
    ] {
        field(&mut out, label, &n.to_string());
    }
    if !view.steps.is_empty() {
        out.push_str("Steps:\n");
        for s in &view.steps {
            let (mark, color) = match s.state {
                StepState::Done => ("✔", Color::Green),
                StepState::Current => ("▶", Color::Yellow),
                StepState::Pending => ("○", Color::Gray),
            };
            let text = if s.state == StepState::Current {
                style.paint(&s.text, Some(Color::Bold))
            } else {
                s.text.clone()
            };
            out.push_str(&format!(
                "  {} {:>2}  {text}\n",
                style.paint(mark, Some(color)),
                s.index
            ));
        }
    }
    out.push('\n');
    let mut table = Table {
        rows: Vec::new(),
        style,
        now,
    };
    table.rows.push(Row {
        prefix: format!("{ICON_ROLLOUT} "),
        name: (view.name.clone(), None),
        kind: "Rollout",
        status: (icon.into(), view.phase.as_str().into(), color),
        age: age(view.created.as_deref(), now),
        info: Vec::new(),
    });
    for (i, rev) in view.revisions.iter().enumerate() {
        let (prefix, child) = branch(i + 1 == view.revisions.len(), "");
        table.rows.push(Row {
            prefix: prefix + ICON_REVISION + " ",
            name: (format!("revision:{}", rev.revision), None),
            kind: "",
            status: (String::new(), String::new(), Color::Gray),
            age: String::new(),
            info: Vec::new(),
        });
        let total = rev.replica_sets.len() + rev.experiments.len() + rev.analysis_runs.len();
        let mut n = 0;
        for rs in &rev.replica_sets {
            n += 1;
            table.replica_set(rs, &child, n == total);
        }
        for e in &rev.experiments {
            n += 1;
            table.experiment(e, &child, n == total);
        }
        for run in &rev.analysis_runs {
            n += 1;
            table.analysis_run(run, &child, n == total);
        }
    }
    out += &table.render();
    if !view.events.is_empty() {
        out.push_str("\nEvents:\n");
        for e in view.events.iter().rev().take(5).rev() {
            let color = (e.type_ == "Warning").then_some(Color::Red);
            let count = if e.count > 1 {
                format!(" (x{})", e.count)
            } else {
                String::new()
            };
            out.push_str(&format!(
                "  {:>4}  {:<8} {:<24} {}{count}\n",
                age(e.last.as_deref(), now),
                style.paint(&e.type_, color),
                e.reason,
                e.message
            ));
        }
    }
    out
}

/// `get experiment`.
pub fn experiment(view: &ExperimentView, now: DateTime<Utc>, style: &Style) -> String {
    let mut out = String::new();
    let (icon, color) = analysis_icon(&view.phase);
    field(&mut out, "Name:", &view.name);
    field(&mut out, "Namespace:", &view.namespace);
    field(
        &mut out,
        "Status:",
        &format!("{} {}", style.paint(icon, Some(color)), view.phase),
    );
    if let Some(m) = view.message.as_deref().filter(|m| !m.is_empty()) {
        field(&mut out, "Message:", m);
    }
    if let Some(d) = &view.duration {
        field(&mut out, "Duration:", d);
    }
    for t in &view.templates {
        field(
            &mut out,
            "Template:",
            &format!(
                "{} {} ({}/{} available)",
                t.name, t.status, t.available, t.replicas
            ),
        );
    }
    out.push('\n');
    let mut table = Table {
        rows: Vec::new(),
        style,
        now,
    };
    table.rows.push(Row {
        prefix: format!("{ICON_EXPERIMENT} "),
        name: (view.name.clone(), None),
        kind: "Experiment",
        status: (icon.into(), view.phase.clone(), color),
        age: age(view.created.as_deref(), now),
        info: Vec::new(),
    });
    table.experiment_children(view, "");
    out += &table.render();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sluice_client::world::World;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn world() -> World {
        let owner = |kind: &str, name: &str| json!([{"apiVersion": "v1", "kind": kind, "name": name, "uid": "u", "controller": true}]);
        let rs = |hash: &str, rev: i64, image: &str, n: i64| {
            serde_json::from_value(json!({
                "metadata": {"name": format!("web-{hash}"), "namespace": "shop", "creationTimestamp": "2026-12-06T10:00:00Z",
                             "labels": {"rollouts-pod-template-hash": hash},
                             "annotations": {"rollout.argoproj.io/revision": rev.to_string()},
                             "ownerReferences": owner("Rollout", "web")},
                "spec": {"replicas": n, "selector": {}, "template": {"spec": {"containers": [{"name": "web", "image": image}]}}},
                "status": {"replicas": n, "readyReplicas": n, "availableReplicas": n}
            }))
            .unwrap()
        };
        let pod = |name: &str, rs: &str| {
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "shop", "creationTimestamp": "2026-12-06T10:01:00Z",
                             "ownerReferences": owner("ReplicaSet", rs)},
                "spec": {"containers": [{"name": "web", "image": "x"}]},
                "status": {"phase": "Running", "containerStatuses": [{"name": "web", "ready": true, "restartCount": 0, "image": "x", "imageID": ""}]}
            }))
            .unwrap()
        };
        World {
            rollout: serde_json::from_value(json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                "metadata": {"name": "web", "namespace": "shop", "generation": 2, "creationTimestamp": "2026-12-06T09:00:00Z"},
                "spec": {"replicas": 4, "strategy": {"canary": {"steps": [{"setWeight": 25}, {"pause": {}}, {"setWeight": 75}]}}},
                "status": {"observedGeneration": "2", "phase": "Paused", "message": "CanaryPauseStep", "currentStepIndex": 1,
                           "stableRS": "aaa", "currentPodHash": "bbb", "replicas": 5, "updatedReplicas": 1, "readyReplicas": 5,
                           "availableReplicas": 5,
                           "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-12-06T10:02:00Z"}]}
            }))
            .unwrap(),
            replica_sets: vec![rs("aaa", 1, "nginx:1.25", 3), rs("bbb", 2, "nginx:1.26", 1)],
            pods: vec![pod("web-bbb-x1", "web-bbb")],
            analysis_runs: vec![serde_json::from_value(json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
                "metadata": {"name": "web-bbb-2-1", "namespace": "shop", "creationTimestamp": "2026-12-06T10:01:30Z",
                             "labels": {"rollouts-pod-template-hash": "bbb", "rollout-type": "Step"},
                             "ownerReferences": owner("Rollout", "web")},
                "spec": {"metrics": []},
                "status": {"phase": "Successful", "metricResults": [{"name": "success-rate", "phase": "Successful", "successful": 2,
                           "measurements": [{"phase": "Successful", "value": "[0.97]"}, {"phase": "Successful", "value": "[0.99]"}]}]}
            }))
            .unwrap()],
            experiments: vec![],
            events: vec![],
        }
    }

    #[test]
    fn the_tree_shows_steps_weights_roles_pods_and_metrics() {
        let view = sluice_client::view::rollout(&world());
        let text = rollout(&view, at("2026-12-06T10:05:00Z"), &Style::plain());
        let expected = "\
Name:            web
Namespace:       shop
Status:          ‖ Paused
Message:         CanaryPauseStep
Strategy:        Canary
  Step:          1/3
  SetWeight:     25
  ActualWeight:  25
Images:          nginx:1.25 (stable)
                 nginx:1.26 (canary)
Replicas:
  Desired:       4
  Current:       5
  Updated:       1
  Ready:         5
  Available:     5
Steps:
  ✔  0  setWeight: 25
  ▶  1  pause
  ○  2  setWeight: 75

NAME                     KIND         STATUS        AGE  INFO
◆ web                    Rollout      ‖ Paused      65m
├──# revision:2
│  ├──▤ web-bbb          ReplicaSet   ✔ Healthy     5m   canary,ready:1/1
│  │  └──□ web-bbb-x1    Pod          ✔ Running     4m   ready:1/1
│  └──α web-bbb-2-1      AnalysisRun  ✔ Successful  3m   ✔ 2
│     └──∿ success-rate  Metric       ✔ Successful       last: [0.97] [0.99]
└──# revision:1
   └──▤ web-aaa          ReplicaSet   ✔ Healthy     5m   stable,ready:3/3
";
        assert_eq!(text, expected, "\n{text}");
    }

    #[test]
    fn colour_is_only_added_for_a_terminal() {
        let view = sluice_client::view::rollout(&world());
        let now = at("2026-12-06T10:05:00Z");
        assert!(!rollout(&view, now, &Style::plain()).contains('\x1b'));
        assert!(rollout(&view, now, &Style { color: true }).contains("\x1b[33mcanary\x1b[0m"));
    }

    #[test]
    fn ages_read_like_kubectl() {
        let now = at("2026-12-06T10:00:00Z");
        assert_eq!(age(Some("2026-12-06T09:59:15Z"), now), "45s");
        assert_eq!(age(Some("2026-12-06T09:30:00Z"), now), "30m");
        assert_eq!(age(Some("2026-12-05T10:00:00Z"), now), "24h");
        assert_eq!(age(Some("2026-12-01T10:00:00Z"), now), "5d");
        assert_eq!(age(None, now), "-");
    }
}
