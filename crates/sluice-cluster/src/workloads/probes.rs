//! When a kubelet would report a container started and ready, from its probes.
//!
//! A kubelet runs each probe of a container on a ticker of `periodSeconds` from the moment
//! the container starts; a tick before `initialDelaySeconds` has passed is skipped (the
//! result keeps its initial value: not ready, not started). The startup probe runs first:
//! until it succeeds the container is not `started` and the readiness probe is not run. After
//! `failureThreshold` failed startup probes the kubelet kills the container (it is then
//! restarted with back-off). The readiness probe must succeed `successThreshold` times in a
//! row. Without a readiness probe a started container is ready at once.
//!
//! The simulation runs nothing: a probe "succeeds" once the container's application is up
//! (the cluster's ready delay after the container started, plus any `slow-start`).
//! `lifecycle.postStart` runs before any of this: the kubelet reports the container
//! `ContainerCreating` until the hook returns, and an `exec` hook takes the time of its
//! `sleep`s (see [`super::script`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Container, Probe};

use super::script::interpret;

/// A probe's timing, with the API's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Timing {
    initial_delay: i64,
    period: i64,
    success_threshold: i64,
    failure_threshold: i64,
}

impl Timing {
    fn of(p: &Probe) -> Timing {
        Timing {
            initial_delay: i64::from(p.initial_delay_seconds.unwrap_or(0).max(0)),
            period: i64::from(p.period_seconds.unwrap_or(10).max(1)),
            success_threshold: i64::from(p.success_threshold.unwrap_or(1).max(1)),
            failure_threshold: i64::from(p.failure_threshold.unwrap_or(3).max(1)),
        }
    }

    /// The first tick at or after `at` on the ticker started at `origin`.
    fn tick_at_or_after(&self, origin: DateTime<Utc>, at: DateTime<Utc>) -> DateTime<Utc> {
        let period_ms = self.period * 1000;
        let elapsed = (at - origin).num_milliseconds().max(0);
        let ticks = (elapsed + period_ms - 1) / period_ms;
        origin + chrono::Duration::milliseconds(ticks * period_ms)
    }

    /// The first tick that counts (past the initial delay and not before `gate`).
    fn first_counted(&self, origin: DateTime<Utc>, gate: DateTime<Utc>) -> DateTime<Utc> {
        let delayed = origin + chrono::Duration::seconds(self.initial_delay);
        self.tick_at_or_after(origin, delayed.max(gate))
    }

    fn ticks_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
        (to - from).num_milliseconds() / (self.period * 1000)
    }

    fn periods(&self, n: i64) -> chrono::Duration {
        chrono::Duration::seconds(self.period * n)
    }
}

/// What the kubelet reports for one run of a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Shown running from `visible` (after postStart), `started` from `started` (startup
    /// probe passed), Ready from `ready`.
    Up {
        visible: DateTime<Utc>,
        started: DateTime<Utc>,
        ready: DateTime<Utc>,
    },
    /// The startup probe failed `failureThreshold` times: killed at `killed`.
    Killed {
        visible: DateTime<Utc>,
        killed: DateTime<Utc>,
    },
}

fn add(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX / 2)
}

/// How long the container's `lifecycle.postStart` exec hook runs.
pub fn post_start(c: &Container) -> Duration {
    let Some(exec) = c
        .lifecycle
        .as_ref()
        .and_then(|l| l.post_start.as_ref())
        .and_then(|h| h.exec.as_ref())
    else {
        return Duration::ZERO;
    };
    let script = interpret(exec.command.iter().flatten().map(String::as_str));
    // A hook that never returns keeps the container ContainerCreating "for ever": a day.
    script.sleeps.unwrap_or(Duration::from_secs(86_400))
}

/// The timeline of one run of `c` that began at `run_start`, whose application is up
/// `app_up` after that.
pub fn start(c: &Container, run_start: DateTime<Utc>, app_up: Duration) -> Start {
    let visible = add(run_start, post_start(c));
    let up = add(run_start, app_up).max(visible);
    let started = match c.startup_probe.as_ref().map(Timing::of) {
        None => visible,
        Some(p) => {
            let first = p.first_counted(run_start, visible);
            let success = p.tick_at_or_after(run_start, up.max(first));
            let failures = p.ticks_between(first, success);
            if failures >= p.failure_threshold {
                return Start::Killed {
                    visible,
                    killed: first + p.periods(p.failure_threshold - 1),
                };
            }
            success
        }
    };
    let ready = match c.readiness_probe.as_ref().map(Timing::of) {
        None => started.max(up),
        Some(p) => {
            // The readiness ticker runs from the start too, but counts only once started.
            let first = p.first_counted(run_start, started);
            let success = p.tick_at_or_after(run_start, up.max(first));
            success + p.periods(p.success_threshold - 1)
        }
    };
    Start::Up {
        visible,
        started,
        ready,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::pod_state::fixtures::t;
    use k8s_openapi::api::core::v1::{ExecAction, Lifecycle, LifecycleHandler};

    fn probe(initial: i32, period: i32, success: i32, failure: i32) -> Probe {
        Probe {
            initial_delay_seconds: Some(initial),
            period_seconds: Some(period),
            success_threshold: Some(success),
            failure_threshold: Some(failure),
            ..Default::default()
        }
    }

    fn container(
        readiness: Option<Probe>,
        startup: Option<Probe>,
        hook: Option<&str>,
    ) -> Container {
        Container {
            name: "c".into(),
            readiness_probe: readiness,
            startup_probe: startup,
            lifecycle: hook.map(|h| Lifecycle {
                post_start: Some(LifecycleHandler {
                    exec: Some(ExecAction {
                        command: Some(vec!["sh".into(), "-c".into(), h.into()]),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn up(visible: i64, started: i64, ready: i64) -> Start {
        Start::Up {
            visible: t(visible),
            started: t(started),
            ready: t(ready),
        }
    }

    #[test]
    fn golden_timelines() {
        // (name, container, app up after seconds, timeline from t(0))
        let cases = [
            (
                "no probes: ready when the app is up",
                container(None, None, None),
                2,
                up(0, 0, 2),
            ),
            (
                "initialDelaySeconds 10: the first probe that counts is at 10 s",
                container(Some(probe(10, 10, 1, 3)), None, None),
                1,
                up(0, 0, 10),
            ),
            (
                "a probe before the app is up fails; the next tick succeeds",
                container(Some(probe(0, 5, 1, 3)), None, None),
                7,
                up(0, 0, 10),
            ),
            (
                "successThreshold 3 needs two more periods",
                container(Some(probe(4, 2, 3, 3)), None, None),
                1,
                up(0, 0, 8),
            ),
            (
                "ticks are aligned on the start, not on the delay",
                container(Some(probe(10, 3, 1, 3)), None, None),
                1,
                up(0, 0, 12),
            ),
            (
                "startup probe: started at its first success, readiness only after",
                container(Some(probe(0, 4, 1, 3)), Some(probe(5, 5, 1, 30)), None),
                7,
                up(0, 10, 12),
            ),
            (
                "startup probe that fails failureThreshold times kills the container",
                container(None, Some(probe(0, 5, 1, 3)), None),
                60,
                Start::Killed {
                    visible: t(0),
                    killed: t(10),
                },
            ),
            (
                "postStart that sleeps: shown running after it, ready no sooner",
                container(None, None, Some("sleep 6")),
                2,
                up(6, 6, 6),
            ),
            (
                "postStart and a readiness probe on the container's ticker",
                container(Some(probe(0, 4, 1, 3)), None, Some("sleep 5")),
                1,
                up(5, 5, 8),
            ),
        ];
        for (name, c, app_up, want) in cases {
            assert_eq!(start(&c, t(0), Duration::from_secs(app_up)), want, "{name}");
        }
    }

    #[test]
    fn default_probe_timing_is_the_apis() {
        let p = Timing::of(&Probe::default());
        assert_eq!(
            (
                p.initial_delay,
                p.period,
                p.success_threshold,
                p.failure_threshold
            ),
            (0, 10, 1, 3)
        );
    }
}
