//! Replica math for a canary without traffic routing: pure functions over integers.
//!
//! Without a traffic router the only way to send N% of requests to the canary is to run
//! N% of the pods from it, so every `setWeight` becomes a pair of replica counts that has
//! to be reached without ever running more than `replicas + maxSurge` pods and without
//! Sluice itself taking availability below `replicas - maxUnavailable`.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use sluice_api::k8s::intstr::{IntOrPercentError, resolve};

/// Upstream's default for both `maxSurge` and `maxUnavailable`: the string `"25"`, read as 25%.
pub const DEFAULT_SURGE_OR_UNAVAILABLE: &str = "25";

/// `maxSurge` and `maxUnavailable` resolved to pod counts for a given `spec.replicas`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_surge: i32,
    pub max_unavailable: i32,
}

impl Limits {
    /// The limits of a spec that already passed validation (an unresolvable value cannot
    /// reach here; the fallback only keeps a rollout able to move).
    pub fn of_validated(spec: &sluice_api::rollout::RolloutSpec) -> Self {
        if let Some(bg) = spec.blue_green() {
            return Self::blue_green(bg.max_unavailable.as_ref(), spec.replicas()).unwrap_or(
                Limits {
                    max_surge: spec.replicas().max(0),
                    max_unavailable: 0,
                },
            );
        }
        let canary = spec.canary();
        Self::resolve(
            canary.and_then(|c| c.max_surge.as_ref()),
            canary.and_then(|c| c.max_unavailable.as_ref()),
            spec.replicas(),
        )
        .unwrap_or(Limits {
            max_surge: 0,
            max_unavailable: 1,
        })
    }

    /// Blue/green's limits: the new version always runs as a whole second copy beside the
    /// old one (surge = `replicas`), and `maxUnavailable` (default `"25"`, a percent rounded
    /// down, capped at `replicas`) only bounds how many pods a restart takes down at once, as
    /// upstream's `MaxUnavailable` does for blue/green (no "both zero" adjustment there).
    pub fn blue_green(
        max_unavailable: Option<&IntOrString>,
        replicas: i32,
    ) -> Result<Self, IntOrPercentError> {
        let default = IntOrString::String(DEFAULT_SURGE_OR_UNAVAILABLE.to_string());
        let unavailable = resolve(
            "spec.strategy.blueGreen.maxUnavailable",
            max_unavailable.unwrap_or(&default),
            replicas,
            false,
        )?;
        Ok(Self {
            max_surge: replicas.max(0),
            max_unavailable: unavailable.min(replicas.max(0)),
        })
    }

    /// Resolves the canary fence posts. Surge rounds up and unavailable rounds down; when both
    /// come out as 0 (e.g. `"10%"` of 3 replicas) unavailable becomes 1, otherwise a rollout
    /// could never move. Unavailable is capped at `replicas` (0 when there are no replicas).
    pub fn resolve(
        max_surge: Option<&IntOrString>,
        max_unavailable: Option<&IntOrString>,
        replicas: i32,
    ) -> Result<Self, IntOrPercentError> {
        let default = IntOrString::String(DEFAULT_SURGE_OR_UNAVAILABLE.to_string());
        let surge = resolve(
            "spec.strategy.canary.maxSurge",
            max_surge.unwrap_or(&default),
            replicas,
            true,
        )?;
        let mut unavailable = resolve(
            "spec.strategy.canary.maxUnavailable",
            max_unavailable.unwrap_or(&default),
            replicas,
            false,
        )?;
        if surge == 0 && unavailable == 0 {
            unavailable = 1;
        }
        Ok(Self {
            max_surge: surge,
            max_unavailable: unavailable.min(replicas.max(0)),
        })
    }
}

/// The two numbers of a ReplicaSet the math needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RsState {
    /// `spec.replicas`
    pub spec: i32,
    /// `status.availableReplicas`
    pub available: i32,
}

impl RsState {
    pub const fn new(spec: i32, available: i32) -> Self {
        Self { spec, available }
    }
}

/// COMPAT §6's desired canary weight of a canary without traffic routing, read from a
/// status: 100 with `promoteFull`, with no stable ReplicaSet or when the stable is the current
/// one; 0 when aborted; else the last `setWeight` at or before the current step (0 if none),
/// 100 past the last step. The planner scales toward it; `kubectl sluice get` and the
/// dashboard show it beside the actual weight.
pub fn desired_weight(
    steps: &[sluice_api::rollout::CanaryStep],
    status: &sluice_api::rollout::RolloutStatus,
) -> i32 {
    let stable = status.stable_rs.as_deref().unwrap_or_default();
    if status.promote_full.unwrap_or(false)
        || stable.is_empty()
        || status.current_pod_hash.as_deref() == Some(stable)
    {
        return 100;
    }
    if status.is_aborted() {
        return 0;
    }
    let index = usize::try_from(status.current_step_index.unwrap_or(0).max(0)).unwrap_or(0);
    if index >= steps.len() {
        return 100;
    }
    steps[..=index]
        .iter()
        .rev()
        .find_map(|s| s.set_weight)
        .unwrap_or(0)
}

/// Approximates `weight`% of `replicas` as a `(canary, stable)` pair.
///
/// Candidates are the ceiling and floor of `replicas·weight/100` over a total of `replicas`
/// and, only when `max_surge > 0`, over `replicas + 1`; the pair whose actual weight is
/// closest wins (earlier candidates win ties, and an exact .5 drops the floor, so ties round
/// the canary up). For weights 1–99 a zero canary is excluded (and so is a zero stable over
/// `replicas`) unless `replicas == 1` and there is no surge: a canary step should run at
/// least one canary pod beside at least one stable pod.
pub fn approximate_weighted_counts(replicas: i32, weight: i32, max_surge: i32) -> (i32, i32) {
    if replicas <= 0 {
        return (0, 0);
    }
    let r = i64::from(replicas);
    let w = i64::from(weight.clamp(0, 100));
    let ceil = (r * w + 99) / 100;
    let floor = r * w / 100;
    let tied = |total: i64| (total * w) % 100 == 50;
    let zero_allowed = w == 0 || w == 100 || (replicas == 1 && max_surge == 0);

    let mut options: Vec<(i64, i64)> = Vec::with_capacity(4);
    if ceil < r || zero_allowed {
        options.push((ceil, r));
    }
    if !tied(r) && (floor != 0 || zero_allowed) {
        options.push((floor, r));
    }
    if max_surge > 0 {
        options.push((ceil, r + 1));
        if !tied(r + 1) && (floor != 0 || zero_allowed) {
            options.push((floor, r + 1));
        }
    }
    // |100·c/t − w| compared without division: a beats b when |100·ca − w·ta|·tb < |100·cb − w·tb|·ta.
    let error = |(c, t): (i64, i64)| (100 * c - w * t).abs();
    let mut best = match options.first() {
        Some(first) => *first,
        None => return (0, replicas),
    };
    for &option in &options[1..] {
        if error(option) * best.1 < error(best) * option.1 {
            best = option;
        }
    }
    // Both values are bounded by replicas + 1, which came from an i32.
    let canary = i32::try_from(best.0).unwrap_or(i32::MAX);
    let stable = i32::try_from(best.1 - best.0).unwrap_or(i32::MAX);
    (canary, stable)
}

/// Everything [`basic_canary_targets`] looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanaryScaleInput {
    /// `spec.replicas` (R).
    pub replicas: i32,
    /// Desired canary weight 0–100 (see `desired weight` in COMPAT §6).
    pub weight: i32,
    pub limits: Limits,
    /// The ReplicaSet of the current template, if it exists yet.
    pub canary: Option<RsState>,
    /// The stable ReplicaSet when it exists and differs from the canary; `None` makes the
    /// canary the only target, at R.
    pub stable: Option<RsState>,
    /// Σ `spec.replicas` of every other (older) ReplicaSet.
    pub others_spec: i32,
}

/// Replica counts one reconcile should set on the canary and stable ReplicaSets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    pub canary: i32,
    pub stable: i32,
}

/// Counts to apply now, moving toward the weighted targets within the limits.
///
/// Scale-up budget = R + maxSurge − Σ spec.replicas of all ReplicaSets; it goes to the
/// stable first, then the canary. Nothing of the canary or stable is scaled down while
/// older ReplicaSets still have replicas (they are drained first, by
/// [`scale_down_others`]). Scale-downs keep at least R − maxUnavailable pods available;
/// while the canary grows, the stable's unavailable pods are counted as removable (so a
/// crash-looping stable cannot wedge the rollout), and while it shrinks (abort, lower
/// weight) the canary's are.
pub fn basic_canary_targets(input: &CanaryScaleInput) -> Targets {
    let CanaryScaleInput {
        replicas,
        weight,
        limits,
        canary: canary_rs,
        stable: stable_rs,
        others_spec,
    } = *input;

    let (mut want_canary, mut want_stable) =
        approximate_weighted_counts(replicas, weight, limits.max_surge);
    if stable_rs.is_none() {
        want_canary = replicas;
        want_stable = 0;
    }
    let mut canary = canary_rs.map_or(0, |rs| rs.spec);
    let mut stable = stable_rs.map_or(0, |rs| rs.spec);

    let max_total = replicas + limits.max_surge;
    let mut budget = max_total - (others_spec + canary + stable);
    if let Some(rs) = stable_rs
        && rs.spec < want_stable
        && budget > 0
    {
        let grow = budget.min(want_stable - rs.spec);
        stable = rs.spec + grow;
        budget -= grow;
    }
    if let Some(rs) = canary_rs
        && rs.spec < want_canary
        && budget > 0
    {
        canary = rs.spec + budget.min(want_canary - rs.spec);
    }

    if others_spec > 0 {
        return Targets { canary, stable };
    }

    let min_available = replicas - limits.max_unavailable;
    let increasing = canary_rs.is_none_or(|rs| want_canary >= rs.spec);
    let removable =
        removable_replicas(canary_rs, !increasing) + removable_replicas(stable_rs, increasing);
    if removable <= min_available {
        return Targets { canary, stable };
    }
    let scale_down = removable - min_available;
    if !increasing {
        canary = drain_toward(canary_rs, want_canary, scale_down, canary);
        (canary, stable) = keep_within_limits(
            canary_rs,
            stable_rs,
            canary,
            stable,
            max_total,
            min_available,
        );
    } else if stable_rs.is_some() {
        stable = drain_toward(stable_rs, want_stable, scale_down, stable);
        (stable, canary) = keep_within_limits(
            stable_rs,
            canary_rs,
            stable,
            canary,
            max_total,
            min_available,
        );
    }
    Targets { canary, stable }
}

/// Replicas of `rs` that count toward availability when deciding how far to scale down.
/// A ReplicaSet already shrinking (available > spec) counts only its spec, so its surplus
/// pods are not spent twice.
fn removable_replicas(rs: Option<RsState>, ignore_availability: bool) -> i32 {
    match rs {
        None => 0,
        Some(rs) if rs.spec < rs.available || ignore_availability => rs.spec,
        Some(rs) => rs.available,
    }
}

fn drain_toward(rs: Option<RsState>, want: i32, scale_down: i32, current: i32) -> i32 {
    match rs {
        Some(rs) if rs.spec > want => want.max(rs.spec - scale_down),
        _ => current,
    }
}

/// After draining one side, pull the other side back under the surge ceiling, but return
/// to it as many of its available pods as the availability floor needs; whatever is still
/// over the ceiling then comes off the drained side.
fn keep_within_limits(
    drain_rs: Option<RsState>,
    adjust_rs: Option<RsState>,
    mut drain: i32,
    mut adjust: i32,
    max_total: i32,
    min_available: i32,
) -> (i32, i32) {
    let Some(adjust_state) = adjust_rs else {
        return (drain, adjust);
    };
    let mut available = drain_rs.map_or(0, |rs| rs.available.min(drain));
    adjust -= (adjust + drain - max_total).max(0);
    available += adjust_state.available.min(adjust);
    let lost = (adjust_state.available - adjust).max(0);
    let missing = (min_available - available).max(0);
    adjust += lost.min(missing);
    drain -= (adjust + drain - max_total).max(0);
    (drain, adjust)
}

/// New `spec.replicas` for the ReplicaSets that are neither canary nor stable, given in the
/// order they should be drained (Sluice passes newest revision first, like upstream).
///
/// First every unavailable replica goes (removing a pod that serves nothing costs no
/// availability, and unhealthy old pods would otherwise block progress); then available
/// ones, as long as all ReplicaSets together keep `replicas - max_unavailable` available.
/// `total_available` is the sum over ALL of the rollout's ReplicaSets.
pub fn scale_down_others(
    others: &[RsState],
    total_available: i32,
    replicas: i32,
    max_unavailable: i32,
) -> Vec<i32> {
    let mut specs: Vec<i32> = others
        .iter()
        .map(|rs| {
            if rs.spec > 0 && rs.available < rs.spec {
                rs.available.max(0)
            } else {
                rs.spec
            }
        })
        .collect();
    let mut budget = total_available - (replicas - max_unavailable);
    for spec in &mut specs {
        if budget <= 0 {
            break;
        }
        if *spec == 0 {
            continue;
        }
        let remove = (*spec).min(budget);
        *spec -= remove;
        budget -= remove;
    }
    specs
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn int(v: i32) -> IntOrString {
        IntOrString::Int(v)
    }
    fn pct(v: &str) -> IntOrString {
        IntOrString::String(v.to_string())
    }

    #[test]
    fn desired_weight_follows_the_last_set_weight_up_to_the_current_step() {
        use sluice_api::rollout::{CanaryStep, RolloutStatus};
        let w = |n| CanaryStep {
            set_weight: Some(n),
            ..Default::default()
        };
        let pause = CanaryStep {
            pause: Some(Default::default()),
            ..Default::default()
        };
        let steps = [w(20), pause.clone(), w(50), pause];
        let status = |index: Option<i32>, current: &str, stable: &str| RolloutStatus {
            current_step_index: index,
            current_pod_hash: Some(current.to_string()),
            stable_rs: (!stable.is_empty()).then(|| stable.to_string()),
            ..Default::default()
        };
        // (step index, current hash, stable hash) -> weight
        let cases = [
            (Some(0), "b", "a", 20),
            (Some(1), "b", "a", 20),
            (Some(2), "b", "a", 50),
            (Some(3), "b", "a", 50),
            (Some(4), "b", "a", 100),
            (None, "b", "a", 20),
            (Some(1), "a", "a", 100),
            (Some(1), "b", "", 100),
        ];
        for (index, current, stable, want) in cases {
            assert_eq!(
                desired_weight(&steps, &status(index, current, stable)),
                want,
                "{index:?} {current} {stable}"
            );
        }
        let mut aborted = status(Some(2), "b", "a");
        aborted.abort = Some(true);
        assert_eq!(desired_weight(&steps, &aborted), 0);
        aborted.promote_full = Some(true);
        assert_eq!(desired_weight(&steps, &aborted), 100, "promoteFull wins");
        assert_eq!(
            desired_weight(&[pause_only()], &status(Some(0), "b", "a")),
            0
        );
    }

    fn pause_only() -> sluice_api::rollout::CanaryStep {
        sluice_api::rollout::CanaryStep {
            pause: Some(Default::default()),
            ..Default::default()
        }
    }

    #[test]
    fn limits_default_to_25_percent_each() {
        assert_eq!(
            Limits::resolve(None, None, 10),
            Ok(Limits {
                max_surge: 3,
                max_unavailable: 2
            })
        );
    }

    #[test]
    fn limits_that_both_resolve_to_zero_allow_one_unavailable() {
        let l = Limits::resolve(Some(&pct("0%")), Some(&pct("0%")), 10).unwrap();
        assert_eq!(
            l,
            Limits {
                max_surge: 0,
                max_unavailable: 1
            }
        );
        let l = Limits::resolve(Some(&int(0)), Some(&pct("10%")), 3).unwrap();
        assert_eq!(l.max_unavailable, 1);
    }

    #[test]
    fn max_unavailable_is_capped_at_replicas() {
        let l = Limits::resolve(Some(&int(0)), Some(&int(7)), 3).unwrap();
        assert_eq!(l.max_unavailable, 3);
        let l = Limits::resolve(Some(&int(0)), Some(&int(7)), 0).unwrap();
        assert_eq!(l.max_unavailable, 0);
    }

    #[test]
    fn blue_green_limits_surge_a_whole_copy_and_round_unavailable_down_without_a_floor() {
        // (maxUnavailable, replicas) → maxUnavailable: upstream's MaxUnavailable for blue/green.
        let cases = [
            (None, 4, 1),
            (None, 3, 0),
            (Some(int(2)), 3, 2),
            (Some(int(9)), 3, 3),
            (Some(pct("50%")), 5, 2),
            (Some(pct("0")), 5, 0),
        ];
        for (value, replicas, want) in cases {
            let l = Limits::blue_green(value.as_ref(), replicas).unwrap();
            assert_eq!(
                l,
                Limits {
                    max_surge: replicas,
                    max_unavailable: want
                },
                "{value:?} of {replicas}"
            );
        }
        let e = Limits::blue_green(Some(&pct("half")), 3).unwrap_err();
        assert_eq!(e.field, "spec.strategy.blueGreen.maxUnavailable");
    }

    #[test]
    fn invalid_limits_name_the_field() {
        let e = Limits::resolve(Some(&pct("lots")), None, 3).unwrap_err();
        assert_eq!(e.field, "spec.strategy.canary.maxSurge");
        let e = Limits::resolve(None, Some(&int(-1)), 3).unwrap_err();
        assert_eq!(e.field, "spec.strategy.canary.maxUnavailable");
    }

    /// Upstream's `TestApproximateWeightedNewStableReplicaCounts` (maxWeight 100), ported as
    /// data: (replicas, weight, maxSurge) → (canary, stable).
    #[rustfmt::skip]
    const UPSTREAM_APPROXIMATION: &[(i32, i32, i32, i32, i32)] = &[
        (0, 0, 0, 0, 0), (0, 50, 0, 0, 0), (0, 100, 0, 0, 0),
        (0, 0, 1, 0, 0), (0, 50, 1, 0, 0), (0, 100, 1, 0, 0),
        (1, 0, 0, 0, 1), (1, 1, 0, 0, 1), (1, 49, 0, 0, 1), (1, 50, 0, 1, 0), (1, 99, 0, 1, 0), (1, 100, 0, 1, 0),
        (1, 0, 1, 0, 1), (1, 1, 1, 1, 1), (1, 49, 1, 1, 1), (1, 50, 1, 1, 1), (1, 99, 1, 1, 1), (1, 100, 1, 1, 0),
        (2, 0, 0, 0, 2), (2, 1, 0, 1, 1), (2, 50, 0, 1, 1), (2, 99, 0, 1, 1), (2, 100, 0, 2, 0),
        (2, 0, 1, 0, 2), (2, 1, 1, 1, 2), (2, 50, 1, 1, 1), (2, 99, 1, 2, 1), (2, 100, 1, 2, 0),
        (3, 10, 0, 1, 2), (3, 25, 0, 1, 2), (3, 33, 0, 1, 2), (3, 34, 0, 1, 2), (3, 49, 0, 1, 2), (3, 50, 0, 2, 1),
        (3, 10, 1, 1, 3), (3, 25, 1, 1, 3), (3, 33, 1, 1, 2), (3, 34, 1, 1, 2), (3, 49, 1, 2, 2), (3, 50, 1, 2, 2),
        (10, 0, 1, 0, 10), (10, 1, 0, 1, 9), (10, 14, 0, 1, 9), (10, 15, 0, 2, 8), (10, 16, 0, 2, 8),
        (10, 99, 0, 9, 1), (10, 100, 1, 10, 0),
        (10, 0, 1, 0, 10), (10, 1, 1, 1, 10), (10, 18, 1, 2, 9), (10, 19, 1, 2, 9), (10, 20, 1, 2, 8),
        (10, 23, 1, 2, 8), (10, 24, 1, 3, 8), (10, 25, 1, 3, 8), (10, 99, 1, 10, 1), (10, 100, 1, 10, 0),
    ];

    /// COMPAT §6 targets of the approximation alone: (R, surge, weight) → (canary, stable).
    #[rustfmt::skip]
    const COMPAT_APPROXIMATION: &[(i32, i32, i32, i32, i32)] = &[
        (1, 1, 20, 1, 1), (1, 1, 50, 1, 1), (1, 0, 49, 0, 1), (1, 0, 50, 1, 0),
        (3, 1, 33, 1, 2), (3, 1, 49, 2, 2), (10, 1, 24, 3, 8), (10, 0, 15, 2, 8),
    ];

    #[test]
    fn approximation_matches_upstream_golden_table() {
        for &(replicas, weight, surge, canary, stable) in UPSTREAM_APPROXIMATION {
            assert_eq!(
                approximate_weighted_counts(replicas, weight, surge),
                (canary, stable),
                "replicas={replicas} weight={weight} surge={surge}"
            );
        }
    }

    #[test]
    fn approximation_matches_compat_golden_cases() {
        for &(replicas, surge, weight, canary, stable) in COMPAT_APPROXIMATION {
            assert_eq!(
                approximate_weighted_counts(replicas, weight, surge),
                (canary, stable),
                "replicas={replicas} weight={weight} surge={surge}"
            );
        }
    }

    struct Case {
        name: &'static str,
        replicas: i32,
        weight: i32,
        surge: IntOrString,
        unavailable: IntOrString,
        stable: (i32, i32),
        canary: (i32, i32),
        older: Option<(i32, i32)>,
        expect_stable: i32,
        expect_canary: i32,
    }

    #[allow(clippy::too_many_arguments)]
    fn case(
        name: &'static str,
        replicas: i32,
        weight: i32,
        surge: IntOrString,
        unavailable: IntOrString,
        stable: (i32, i32),
        canary: (i32, i32),
        expect_stable: i32,
        expect_canary: i32,
    ) -> Case {
        Case {
            name,
            replicas,
            weight,
            surge,
            unavailable,
            stable,
            canary,
            older: None,
            expect_stable,
            expect_canary,
        }
    }

    fn targets_for(c: &Case) -> Targets {
        let limits = Limits::resolve(Some(&c.surge), Some(&c.unavailable), c.replicas).unwrap();
        basic_canary_targets(&CanaryScaleInput {
            replicas: c.replicas,
            weight: c.weight,
            limits,
            canary: Some(RsState::new(c.canary.0, c.canary.1)),
            stable: Some(RsState::new(c.stable.0, c.stable.1)),
            others_spec: c.older.map_or(0, |o| o.0),
        })
    }

    /// The basic-canary (no traffic routing) cases of upstream's
    /// `TestCalculateReplicaCountsForCanary`. The traffic-routed cases (setCanaryScale,
    /// minPodsPerReplicaSet, abort delays) do not apply. "promote full" cases are expressed
    /// as weight 100, which is what promoteFull resolves to.
    /// Columns: stable (spec, available), canary (spec, available) → stable, canary.
    #[rustfmt::skip]
    fn upstream_basic_canary_cases() -> Vec<Case> {
        let mut cases = vec![
            case("do not add extra RSs in scaleDownCount when spec < available", 10, 100, int(3), int(0), (7, 8), (6, 3), 7, 6),
            case("use max surge int to scale up canary", 10, 20, int(2), int(0), (10, 10), (0, 0), 10, 2),
            case("use max surge percentage to scale up canary", 10, 20, pct("20%"), int(0), (10, 10), (0, 0), 10, 2),
            case("scale down extra stable replicas", 10, 20, pct("20%"), int(0), (10, 10), (2, 2), 8, 2),
            case("do not go past max surge", 10, 30, int(2), int(0), (10, 10), (0, 0), 10, 2),
            case("use max unavailable int to scale down stableRS", 10, 20, int(0), int(2), (10, 10), (0, 0), 8, 0),
            case("use max unavailable percentage to scale down stableRS", 10, 20, int(0), pct("20%"), (10, 10), (0, 0), 8, 0),
            case("do not go past max unavailable", 10, 30, int(0), int(2), (10, 10), (0, 0), 8, 0),
            case("use max surge and max unavailable", 10, 50, int(2), int(1), (10, 10), (0, 0), 9, 2),
            case("scale canaryRS to zero on setWeight of 0%", 10, 0, int(1), int(1), (10, 10), (1, 1), 10, 0),
            case("scale stable to zero on setWeight of 100%", 10, 100, int(1), int(1), (1, 1), (10, 10), 0, 10),
            case("do not scale canaryRS down to zero on non-zero weight", 1, 20, int(1), int(0), (1, 1), (0, 0), 1, 1),
            case("do not scale canaryRS down to zero on non-100 weight", 1, 90, int(1), int(0), (1, 1), (0, 0), 1, 1),
            case("scale canaryRS to zero on <50 weight without surge", 1, 49, int(0), int(1), (1, 1), (0, 0), 1, 0),
            case("scale stableRS down to zero on >=50 weight without surge", 1, 51, int(0), int(1), (1, 1), (0, 0), 0, 0),
            case("scale canaryRS to one on >=50 weight without surge and stable replicas", 1, 51, int(0), int(1), (0, 0), (0, 0), 0, 1),
            case("scale down canaryRS and stable", 10, 30, int(0), int(3), (8, 5), (4, 4), 7, 3),
            case("scale down stable and canary available", 10, 100, int(1), int(0), (10, 2), (10, 8), 2, 9),
            case("do not round past maxSurge with uneven setWeight divisor", 10, 5, int(0), int(1), (10, 10), (0, 0), 9, 0),
            case("do not round past maxSurge with uneven setWeight divisor (part 2)", 10, 5, int(0), int(1), (9, 9), (0, 0), 9, 1),
            case("use maxUnavailable of 1 when percentages of both resolve to 0", 10, 10, pct("0%"), pct("0%"), (10, 10), (0, 0), 9, 0),
            case("ignore setCanaryScale without trafficRouting and use setWeight", 10, 20, pct("20%"), int(0), (10, 10), (0, 0), 10, 2),
            case("honor maxSurge during scale up when stableRS unavailable", 4, 100, int(1), int(0), (4, 1), (0, 0), 4, 1),
            case("scale down to maxUnavailable without exceeding maxSurge", 3, 99, int(0), int(2), (3, 3), (0, 0), 1, 0),
            case("scale down to maxUnavailable without exceeding maxSurge (part 2)", 3, 99, int(0), int(2), (1, 1), (0, 0), 1, 2),
            case("honor maxUnavailable during scale down stableRS unavailable", 4, 100, int(1), int(0), (4, 1), (1, 1), 3, 1),
            case("honor maxUnavailable when aborting or reducing weight part 1", 4, 0, int(1), int(0), (0, 0), (4, 4), 1, 4),
            case("honor maxUnavailable when aborting or reducing weight part 2", 4, 0, int(1), int(0), (1, 0), (4, 4), 1, 4),
            case("honor maxUnavailable when aborting or reducing weight part 3", 4, 0, int(1), int(0), (1, 1), (4, 4), 1, 3),
            case("promote full does not consider weight", 4, 100, int(4), int(4), (4, 4), (0, 0), 0, 4),
            case("promote full still honors maxSurge/maxUnavailable", 4, 100, int(3), int(0), (4, 4), (0, 0), 4, 3),
        ];
        let mut older = case("scale up stable before canaryRS", 10, 30, int(1), int(0), (1, 1), (0, 0), 7, 1);
        older.older = Some((3, 3));
        cases.push(older);
        let mut older = case("do not scale down canary or stable while older RSs have replicas", 10, 30, int(0), int(1), (8, 6), (4, 2), 8, 4);
        older.older = Some((3, 3));
        cases.push(older);
        cases
    }

    #[test]
    fn basic_canary_targets_match_upstream_golden_table() {
        for c in upstream_basic_canary_cases() {
            assert_eq!(
                targets_for(&c),
                Targets {
                    canary: c.expect_canary,
                    stable: c.expect_stable
                },
                "{}",
                c.name
            );
        }
    }

    /// COMPAT §6: one reconcile from stable = R, canary = 0, nothing of the canary available.
    #[test]
    fn basic_canary_targets_match_compat_first_reconcile_cases() {
        for (r, surge, unavailable, weight, canary, stable) in [
            (10, 1, 1, 10, 1, 9),
            (10, 3, 0, 30, 3, 10),
            (10, 0, 5, 30, 0, 7),
        ] {
            let limits = Limits::resolve(Some(&int(surge)), Some(&int(unavailable)), r).unwrap();
            let t = basic_canary_targets(&CanaryScaleInput {
                replicas: r,
                weight,
                limits,
                canary: Some(RsState::new(0, 0)),
                stable: Some(RsState::new(r, r)),
                others_spec: 0,
            });
            assert_eq!(
                t,
                Targets { canary, stable },
                "R={r} surge={surge} unavailable={unavailable} weight={weight}"
            );
        }
    }

    /// Upstream's `TestCalculateReplicaCountsForNewDeployment` and `...StableRSdEdgeCases`:
    /// with no distinct stable ReplicaSet the canary goes to R.
    #[test]
    fn without_a_distinct_stable_the_canary_targets_all_replicas() {
        let limits = Limits::resolve(Some(&int(0)), Some(&int(1)), 10).unwrap();
        for canary in [RsState::new(10, 0), RsState::new(9, 9)] {
            let t = basic_canary_targets(&CanaryScaleInput {
                replicas: 10,
                weight: 10,
                limits,
                canary: Some(canary),
                stable: None,
                others_spec: 0,
            });
            assert_eq!(
                t,
                Targets {
                    canary: 10,
                    stable: 0
                }
            );
        }
    }

    #[test]
    fn others_lose_unhealthy_replicas_first_then_drain_within_max_unavailable() {
        // R=10, maxUnavailable=2: of 12 available pods 8 must stay, so 4 available may go,
        // on top of the 3 unavailable replicas of the first older ReplicaSet.
        let others = [RsState::new(5, 2), RsState::new(4, 4)];
        assert_eq!(scale_down_others(&others, 12, 10, 2), vec![0, 2]);
        assert_eq!(scale_down_others(&others, 8, 10, 2), vec![2, 4]);
        assert_eq!(scale_down_others(&others, 20, 10, 2), vec![0, 0]);
    }

    /// A tiny model of the cluster: pods of a ReplicaSet become available one reconcile after
    /// they are requested (`ready_per_step` of them at most), and a scale-down removes
    /// unavailable pods first.
    #[derive(Debug, Clone, Copy)]
    struct Sim {
        canary: RsState,
        stable: RsState,
    }

    impl Sim {
        fn step(&mut self, r: i32, weight: i32, limits: Limits, ready_per_step: i32) -> Targets {
            let t = basic_canary_targets(&CanaryScaleInput {
                replicas: r,
                weight,
                limits,
                canary: Some(self.canary),
                stable: Some(self.stable),
                others_spec: 0,
            });
            for (rs, spec) in [(&mut self.canary, t.canary), (&mut self.stable, t.stable)] {
                rs.spec = spec;
                rs.available = rs.available.min(spec);
                rs.available = (rs.available + ready_per_step).min(spec);
            }
            t
        }
    }

    proptest! {
        #[test]
        fn spec_total_never_exceeds_replicas_plus_surge(
            r in 1..20i32, surge in 0..5i32, unavailable in 0..5i32,
            weights in proptest::collection::vec(0..=100i32, 1..6), ready in 1..4i32,
        ) {
            let limits = Limits::resolve(Some(&int(surge)), Some(&int(unavailable)), r).unwrap();
            let mut sim = Sim { canary: RsState::new(0, 0), stable: RsState::new(r, r) };
            for w in weights {
                for _ in 0..60 {
                    sim.step(r, w, limits, ready);
                    prop_assert!(sim.canary.spec + sim.stable.spec <= r + limits.max_surge,
                        "{sim:?} exceeds {} + {}", r, limits.max_surge);
                }
            }
        }

        #[test]
        fn own_scale_downs_never_take_availability_below_the_floor(
            r in 1..20i32, surge in 0..5i32, unavailable in 0..5i32,
            weights in proptest::collection::vec(0..=100i32, 1..6), ready in 1..4i32,
        ) {
            let limits = Limits::resolve(Some(&int(surge)), Some(&int(unavailable)), r).unwrap();
            let floor = r - limits.max_unavailable;
            let mut sim = Sim { canary: RsState::new(0, 0), stable: RsState::new(r, r) };
            for w in weights {
                for _ in 0..60 {
                    let before = sim.canary.available + sim.stable.available;
                    let t = sim.step(r, w, limits, 0);
                    let after = sim.canary.available + sim.stable.available;
                    prop_assert!(after >= before.min(floor),
                        "targets {t:?} took availability {before} -> {after} below {floor}");
                    // then let pods come up
                    sim.canary.available = (sim.canary.available + ready).min(sim.canary.spec);
                    sim.stable.available = (sim.stable.available + ready).min(sim.stable.spec);
                }
            }
        }

        #[test]
        fn every_weight_converges_to_its_approximation(
            r in 1..20i32, surge in 0..5i32, unavailable in 0..5i32, w in 0..=100i32, ready in 1..4i32,
        ) {
            let limits = Limits::resolve(Some(&int(surge)), Some(&int(unavailable)), r).unwrap();
            let mut sim = Sim { canary: RsState::new(0, 0), stable: RsState::new(r, r) };
            for _ in 0..200 {
                sim.step(r, w, limits, ready);
            }
            let (canary, stable) = approximate_weighted_counts(r, w, limits.max_surge);
            prop_assert_eq!((sim.canary.spec, sim.stable.spec), (canary, stable));
        }

        #[test]
        fn abort_converges_to_stable_at_replicas_and_canary_at_zero(
            r in 1..20i32, surge in 0..5i32, unavailable in 0..5i32,
            start_weight in 0..=100i32, ready in 1..4i32,
        ) {
            let limits = Limits::resolve(Some(&int(surge)), Some(&int(unavailable)), r).unwrap();
            let mut sim = Sim { canary: RsState::new(0, 0), stable: RsState::new(r, r) };
            for _ in 0..100 {
                sim.step(r, start_weight, limits, ready);
            }
            for _ in 0..200 {
                sim.step(r, 0, limits, ready);
                prop_assert!(sim.canary.spec + sim.stable.spec <= r + limits.max_surge);
            }
            prop_assert_eq!((sim.canary.spec, sim.stable.spec), (0, r));
            prop_assert_eq!(sim.stable.available, r);
        }
    }
}
