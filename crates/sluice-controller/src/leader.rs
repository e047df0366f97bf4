//! Leader election over a `coordination.k8s.io/v1` Lease, so two controller replicas can run
//! and only one reconciles.
//!
//! Built on `kube-lease-manager` (0.13, made for kube 5 and the same k8s-openapi). It takes
//! the Lease with a server-side-apply patch, so two candidates racing for a free Lease get a
//! field-ownership conflict and exactly one wins; the holder renews `renewTime` well before
//! `leaseDurationSeconds` runs out; a candidate takes an expired Lease over by clearing it
//! first. Lease durations are whole seconds, as in the Lease API.
//!
//! What this module adds on top: the outcome is published on a `watch` channel the controller
//! follows, API failures while leading end the task with an error (the caller exits the
//! process, as upstream's controller does, so it cannot keep reconciling on a lease it can no
//! longer prove it holds), and shutdown releases the Lease so a standby does not wait out the
//! whole duration of a lease nobody renews.

use std::time::{Duration, Instant};

use kube::Client;
use kube_lease_manager::{LeaseCreateMode, LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::health::{HealthState, LEASE_TASK, TaskHandle};

/// Default Lease name, shared by every replica of one installation.
pub const DEFAULT_LEASE_NAME: &str = "sluice-controller";

/// Default `leaseDurationSeconds` (upstream Argo Rollouts uses 15 s too).
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);

/// Shortest lease duration accepted: the holder renews at one third of it, so anything shorter
/// leaves no room for a slow API call.
pub const MIN_LEASE_DURATION: Duration = Duration::from_secs(2);

/// How long the release on shutdown may take before the process exits anyway.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why leader election stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The configuration cannot work.
    #[error("invalid leader election settings: {0}")]
    Config(String),
    /// The Lease could not be read or created at start (RBAC or a missing namespace, usually).
    #[error(
        "cannot use Lease {namespace}/{name} for leader election: {source}; check that the namespace exists and the service account may get, create and patch leases.coordination.k8s.io there"
    )]
    Setup {
        namespace: String,
        name: String,
        source: LeaseManagerError,
    },
    /// The Lease API failed while this replica was the leader: it can no longer prove it holds
    /// the Lease, so it must stop reconciling.
    #[error("lost contact with Lease {namespace}/{name} while leading: {source}")]
    LostWhileLeading {
        namespace: String,
        name: String,
        source: LeaseManagerError,
    },
    /// The Lease API kept failing for longer than the failure budget.
    #[error("Lease {namespace}/{name} unreachable for {seconds}s: {source}")]
    Unreachable {
        namespace: String,
        name: String,
        seconds: u64,
        source: LeaseManagerError,
    },
}

/// A candidate for leadership of one Lease.
pub struct LeaderElector {
    manager: LeaseManager,
    namespace: String,
    lease_name: String,
    identity: String,
    lease_duration: Duration,
    health: Option<HealthState>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("namespace", &self.namespace)
            .field("lease_name", &self.lease_name)
            .field("identity", &self.identity)
            .field("lease_duration", &self.lease_duration)
            .finish_non_exhaustive()
    }
}

/// An identity unique to this process: the pod name (`POD_NAME` from the downward API, else
/// `HOSTNAME`) plus the process id, so a restarted container never mistakes its
/// predecessor's lease for its own.
pub fn default_identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "sluice".to_string());
    format!("{host}_{}", std::process::id())
}

/// The configuration of the client the Lease is renewed with: `config` without kube-rs's
/// retry of 429, 503 and 504. That retry backs off for up to 15 attempts, far longer than a Lease lasts, and a leader
/// stuck in it still believes it leads after its Lease expired and a standby took over
/// (argo-rollouts#2117's failure). Without it a refused renewal is an error at once, and the
/// leader stops its controllers before anyone else can lead.
pub fn lease_config(mut config: kube::Config) -> kube::Config {
    config.default_retry = false;
    config
}

/// Whole seconds, rounded up (the Lease API counts in seconds).
fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl LeaderElector {
    /// Prepares a candidate, creating the Lease if it does not exist yet. The holder renews
    /// every third of `lease_duration`; a standby takes over at most `lease_duration` after
    /// the last renewal.
    pub async fn new(
        client: Client,
        namespace: &str,
        lease_name: &str,
        identity: &str,
        lease_duration: Duration,
    ) -> Result<Self, LeaderError> {
        if lease_duration < MIN_LEASE_DURATION {
            return Err(LeaderError::Config(format!(
                "--lease-duration must be at least {}s, got {:?}",
                MIN_LEASE_DURATION.as_secs(),
                lease_duration
            )));
        }
        if identity.is_empty() {
            return Err(LeaderError::Config("the identity is empty".into()));
        }
        let seconds = whole_seconds(lease_duration);
        // Renew when two thirds of the duration remain: a renewal may fail and be retried
        // twice before the lease can expire. Never equal to the duration (the crate requires
        // grace < duration).
        let grace = (seconds * 2 / 3).clamp(1, seconds - 1);
        let manager = LeaseManagerBuilder::new(client, lease_name)
            .with_namespace(namespace)
            .with_create_mode(LeaseCreateMode::AutoCreate)
            .with_identity(identity)
            .with_duration(seconds)
            .with_grace(grace)
            .with_field_manager(format!("sluice-leader-{identity}"))
            .build()
            .await
            .map_err(|source| LeaderError::Setup {
                namespace: namespace.to_string(),
                name: lease_name.to_string(),
                source,
            })?;
        Ok(LeaderElector {
            manager,
            namespace: namespace.to_string(),
            lease_name: lease_name.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(seconds),
            health: None,
        })
    }

    /// Reports to `health`: registers the [`LEASE_TASK`] task, turns on the leader-election
    /// readiness rules and keeps the leader flag current.
    pub fn with_health(mut self, health: HealthState) -> Self {
        self.health = Some(health);
        self
    }

    /// This candidate's identity (the Lease's `holderIdentity` while it leads).
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Campaigns until `shutdown` is cancelled or every receiver of `on_change` is dropped,
    /// publishing `true` while this replica leads and `false` otherwise. On the way out it
    /// publishes `false` and releases the Lease (clears `holderIdentity`) if it holds it —
    /// after a Lease API failure while leading, only once `shutdown` is cancelled (the caller's
    /// signal that its work has stopped writing) or every receiver is gone.
    ///
    /// Returns an error when the Lease API fails while leading, or keeps failing for longer
    /// than twice the lease duration as a standby; the caller should then exit the process.
    /// Losing the lease to another holder is not an error: `false` is published and the
    /// campaign continues.
    pub async fn run(
        self,
        on_change: watch::Sender<bool>,
        shutdown: CancellationToken,
    ) -> Result<(), LeaderError> {
        let task = self.health.as_ref().map(|h| {
            h.set_leader_election(true);
            h.set_leader(false);
            h.register(LEASE_TASK)
        });
        let result = self.campaign(&on_change, &shutdown, task.as_ref()).await;
        match &result {
            Ok(()) => {
                if let Some(task) = task {
                    task.finish();
                }
            }
            Err(e) => {
                if let Some(task) = &task {
                    task.failed(e.to_string());
                }
            }
        }
        on_change.send_replace(false);
        self.set_leader(false);
        if matches!(result, Err(LeaderError::LostWhileLeading { .. })) {
            // The work is still finishing what it started: releasing now would let a standby
            // take over while this replica writes. Release once the caller says the work has
            // stopped (it cancels `shutdown`), or when nobody listens any more.
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = on_change.closed() => {}
            }
        }
        self.release().await;
        result
    }

    fn set_leader(&self, leader: bool) {
        if let Some(h) = &self.health {
            h.set_leader(leader);
        }
    }

    async fn release(&self) {
        match tokio::time::timeout(RELEASE_TIMEOUT, self.manager.release()).await {
            Ok(Ok(())) => {
                info!(lease = %self.lease_name, identity = %self.identity, "lease released")
            }
            Ok(Err(e)) => {
                warn!(lease = %self.lease_name, error = %e, "releasing the lease failed; a standby takes over when it expires")
            }
            Err(_) => {
                warn!(lease = %self.lease_name, "releasing the lease timed out; a standby takes over when it expires")
            }
        }
    }

    async fn campaign(
        &self,
        on_change: &watch::Sender<bool>,
        shutdown: &CancellationToken,
        task: Option<&TaskHandle>,
    ) -> Result<(), LeaderError> {
        let budget = self.lease_duration * 2;
        let mut leading = false;
        let mut failing_since: Option<Instant> = None;
        let mut backoff = Duration::from_millis(250);
        loop {
            let started = Instant::now();
            let step = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                _ = on_change.closed() => return Ok(()),
                step = self.manager.changed() => step,
            };
            match step {
                Ok(now_leading) => {
                    failing_since = None;
                    backoff = Duration::from_millis(250);
                    if let Some(t) = task {
                        t.running();
                    }
                    if now_leading != leading {
                        leading = now_leading;
                        if leading {
                            info!(lease = %self.lease_name, identity = %self.identity, "became the leader");
                        } else {
                            warn!(lease = %self.lease_name, identity = %self.identity, "lost the lease to another holder");
                        }
                        self.set_leader(leading);
                        on_change.send_replace(leading);
                    }
                }
                Err(source) if leading => {
                    error!(lease = %self.lease_name, error = %source, "lease API failed while leading");
                    return Err(LeaderError::LostWhileLeading {
                        namespace: self.namespace.clone(),
                        name: self.lease_name.clone(),
                        source,
                    });
                }
                Err(source) => {
                    // A call that ran longer than a lease duration made progress before it
                    // failed, so this is a new burst of failures, not the same one.
                    if started.elapsed() > self.lease_duration {
                        failing_since = None;
                    }
                    let since = *failing_since.get_or_insert(started);
                    if since.elapsed() > budget {
                        return Err(LeaderError::Unreachable {
                            namespace: self.namespace.clone(),
                            name: self.lease_name.clone(),
                            seconds: since.elapsed().as_secs(),
                            source,
                        });
                    }
                    warn!(lease = %self.lease_name, error = %source, "lease API failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.lease_duration / 2);
                }
            }
        }
    }
}

/// Why [`run_as_leader`] ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum LeadError<E: std::fmt::Debug + std::fmt::Display> {
    /// The lease task failed (see [`LeaderError`]).
    #[error(transparent)]
    Lease(LeaderError),
    /// The lease task panicked or was aborted.
    #[error("the leader election task died: {0}")]
    LeaseTaskDied(String),
    /// Another replica took the lease; the work was stopped. Exiting and restarting as a
    /// standby is the safe reaction (the caches of a former leader may be stale).
    #[error("lost the leader lease to another replica")]
    Lost,
    /// The work itself failed.
    #[error("{0}")]
    Work(E),
}

/// Runs `work` while this replica leads, in the order that keeps a single writer:
/// 1. campaign until leader (returns `Ok` if `shutdown` comes first);
/// 2. run `work` with a token that is cancelled on `shutdown` or when the lease is lost;
/// 3. only after `work` has returned, release the Lease, so a standby never starts while
///    in-flight reconciles of the old leader are still writing.
///
/// Returns `Ok` after a clean shutdown, [`LeadError::Lost`] if the lease was taken away,
/// [`LeadError::Lease`]/[`LeadError::LeaseTaskDied`] if leader election failed, and
/// [`LeadError::Work`] if `work` failed on its own.
pub async fn run_as_leader<W, Fut, E>(
    elector: LeaderElector,
    shutdown: CancellationToken,
    work: W,
) -> Result<(), LeadError<E>>
where
    W: FnOnce(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Debug + std::fmt::Display,
{
    let (tx, mut leading) = watch::channel(false);
    let lease_stop = CancellationToken::new();
    let mut lease = tokio::spawn(elector.run(tx, lease_stop.clone()));
    let lease_ended = |joined: Result<Result<(), LeaderError>, tokio::task::JoinError>| match joined
    {
        Ok(Ok(())) => LeadError::LeaseTaskDied("it stopped without being asked to".into()),
        Ok(Err(e)) => LeadError::Lease(e),
        Err(e) => LeadError::LeaseTaskDied(e.to_string()),
    };

    // 1. Stand by until elected.
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                lease_stop.cancel();
                return match lease.await {
                    Ok(Ok(())) => Ok(()),
                    other => Err(lease_ended(other)),
                };
            }
            joined = &mut lease => return Err(lease_ended(joined)),
            changed = leading.changed() => {
                if changed.is_err() {
                    // The sender lives in the lease task: it has ended.
                    return Err(lease_ended(lease.await));
                }
                if *leading.borrow_and_update() {
                    break;
                }
            }
        }
    }

    // 2. Lead.
    let work_stop = shutdown.child_token();
    let work = work(work_stop.clone());
    tokio::pin!(work);
    let mut lease_result = None;
    let outcome = tokio::select! {
        done = &mut work => done.map_err(LeadError::Work),
        Ok(()) = async { leading.wait_for(|l| !*l).await.map(|_| ()) } => {
            warn!("leadership lost; stopping the controllers");
            work_stop.cancel();
            let _ = (&mut work).await;
            Err(LeadError::Lost)
        }
        joined = &mut lease => {
            work_stop.cancel();
            let _ = (&mut work).await;
            let err = lease_ended(joined);
            lease_result = Some(());
            Err(err)
        }
    };

    // 3. Release only after the work has stopped writing.
    if lease_result.is_none() {
        lease_stop.cancel();
        match lease.await {
            Ok(Ok(())) => {}
            // The lease API failed while leading: the lease task stopped the work by
            // publishing `false` and released only now, after the work finished.
            Ok(Err(e)) if matches!(outcome, Err(LeadError::Lost)) => {
                return Err(LeadError::Lease(e));
            }
            other if outcome.is_ok() => return Err(lease_ended(other)),
            _ => {}
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::coordination::v1::Lease;
    use kube::Api;
    use kube::api::{Patch, PatchParams};

    use super::*;
    use sluice_cluster::{ClusterConfig, EmbeddedCluster};

    const LEASE: &str = "sluice-test";
    const NS: &str = "default";
    const DURATION: Duration = Duration::from_secs(3);

    async fn cluster() -> EmbeddedCluster {
        EmbeddedCluster::start(ClusterConfig {
            port: 0,
            ..Default::default()
        })
        .await
        .expect("embedded cluster starts")
    }

    struct Candidate {
        leading: watch::Receiver<bool>,
        stop: CancellationToken,
        task: tokio::task::JoinHandle<Result<(), LeaderError>>,
    }

    async fn candidate(cluster: &EmbeddedCluster, identity: &str) -> Candidate {
        let elector = LeaderElector::new(cluster.client(), NS, LEASE, identity, DURATION)
            .await
            .expect("elector starts");
        let (tx, leading) = watch::channel(false);
        let stop = CancellationToken::new();
        let task = tokio::spawn(elector.run(tx, stop.clone()));
        Candidate {
            leading,
            stop,
            task,
        }
    }

    /// Waits until `rx` holds `want`, failing after `within`.
    async fn becomes(rx: &mut watch::Receiver<bool>, want: bool, within: Duration) {
        tokio::time::timeout(within, rx.wait_for(|v| *v == want))
            .await
            .unwrap_or_else(|_| panic!("did not become {want} within {within:?}"))
            .expect("sender alive");
    }

    async fn holder(cluster: &EmbeddedCluster) -> Option<String> {
        let leases: Api<Lease> = Api::namespaced(cluster.client(), NS);
        leases
            .get(LEASE)
            .await
            .expect("lease exists")
            .spec
            .and_then(|s| s.holder_identity)
    }

    /// Regression (found by the chaos suite, upstream's argo-rollouts#2117 in another guise): a
    /// renewal that failed while leading released the Lease at once, while the controllers were
    /// still finishing their reconciles, so a standby could lead while the old leader wrote.
    #[tokio::test]
    async fn a_lease_error_while_leading_releases_only_after_the_work_stopped() {
        let cluster = cluster().await;
        let elector = LeaderElector::new(cluster.client(), NS, LEASE, "solo", DURATION)
            .await
            .expect("elector starts");
        let leases: Api<Lease> = Api::namespaced(cluster.client(), NS);
        let started = std::sync::Arc::new(tokio::sync::Notify::new());
        let foreign = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, f) = (started.clone(), foreign.clone());
        let lead = tokio::spawn(run_as_leader(
            elector,
            CancellationToken::new(),
            move |token| async move {
                s.notify_one();
                token.cancelled().await;
                // In-flight reconciles finish after the stop, still writing: the Lease must
                // still be this replica's all that time.
                for _ in 0..20 {
                    let holder = leases
                        .get(LEASE)
                        .await
                        .ok()
                        .and_then(|l| l.spec)
                        .and_then(|s| s.holder_identity);
                    if holder.as_deref() != Some("solo") {
                        f.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok::<(), String>(())
            },
        ));
        tokio::time::timeout(DURATION * 2, started.notified())
            .await
            .expect("became the leader");
        // Every Lease write from now on is stored, but its answer is a 500 (kube-rs does not retry it).
        cluster.set_faults(
            sluice_cluster::faults::Faults::parse(
                "errors: [{verbs: [write], resources: [leases], rate: 1, code: 500, applied: true}]",
            )
            .unwrap(),
        );
        let outcome = tokio::time::timeout(DURATION * 4, lead).await;
        let outcome = outcome
            .unwrap_or_else(|_| panic!("run_as_leader ends; faults: {:?}", cluster.fault_stats()))
            .expect("join");
        assert!(
            matches!(
                outcome,
                Err(LeadError::Lease(LeaderError::LostWhileLeading { .. }))
            ),
            "{outcome:?}"
        );
        assert!(
            !foreign.load(std::sync::atomic::Ordering::SeqCst),
            "the Lease was released while the work still ran"
        );
        assert_eq!(holder(&cluster).await, None, "released at the end");
        cluster.shutdown().await;
    }

    /// A client of `cluster` sending `user_agent`, as the controller builds the Lease's client:
    /// without kube-rs's retry of 429/503/504 (see [`lease_config`]).
    fn lease_client_of(cluster: &EmbeddedCluster, user_agent: &str) -> kube::Client {
        let mut config = kube::Config::new(format!("http://{}", cluster.addr()).parse().unwrap());
        config.default_namespace = NS.into();
        config.headers.push((
            http::header::USER_AGENT,
            http::HeaderValue::from_str(user_agent).unwrap(),
        ));
        Client::try_from(lease_config(config)).expect("client")
    }

    /// Regression (#2117's family, found while building the chaos suite): kube-rs retries a
    /// 429 or 504 up to 15 times with growing delays, so a renewal the server keeps refusing
    /// held the leader in a retry loop, still leading, while its Lease expired and the standby
    /// took over. The Lease's client does not retry: the failed renewal stops the leader.
    #[tokio::test]
    async fn a_leader_whose_renewals_are_throttled_stops_before_the_standby_leads() {
        let cluster = cluster().await;
        let elector = LeaderElector::new(
            lease_client_of(&cluster, "candidate-a"),
            NS,
            LEASE,
            "a",
            DURATION,
        )
        .await
        .expect("elector starts");
        let (tx, mut a_leading) = watch::channel(false);
        let a_stop = CancellationToken::new();
        let a_task = tokio::spawn(elector.run(tx, a_stop.clone()));
        becomes(&mut a_leading, true, DURATION * 2).await;
        let mut b = candidate(&cluster, "b").await;
        // Every renewal by `a` is refused with 429 from now on.
        cluster.set_faults(
            sluice_cluster::faults::Faults::parse(
                "errors: [{verbs: [write], resources: [leases], userAgents: [candidate-a], rate: 1, code: 429, retryAfterSeconds: 1}]",
            )
            .unwrap(),
        );
        becomes(&mut b.leading, true, DURATION * 4).await;
        assert!(
            !*a_leading.borrow(),
            "the standby leads while the old leader still thinks it leads"
        );
        a_stop.cancel();
        b.stop.cancel();
        assert!(matches!(
            a_task.await.expect("join"),
            Err(LeaderError::LostWhileLeading { .. })
        ));
        let _ = b.task.await;
        cluster.shutdown().await;
    }

    #[tokio::test]
    async fn of_two_candidates_exactly_one_leads() {
        let cluster = cluster().await;
        let mut a = candidate(&cluster, "a").await;
        let mut b = candidate(&cluster, "b").await;
        let deadline = Instant::now() + DURATION * 3;
        loop {
            let (la, lb) = (*a.leading.borrow(), *b.leading.borrow());
            assert!(!(la && lb), "both candidates lead at once");
            if la || lb {
                break;
            }
            assert!(Instant::now() < deadline, "nobody became leader");
            tokio::select! {
                _ = a.leading.changed() => {}
                _ = b.leading.changed() => {}
            }
        }
        // Stays exclusive across several renewals.
        let until = Instant::now() + DURATION * 2;
        while Instant::now() < until {
            assert!(
                !(*a.leading.borrow() && *b.leading.borrow()),
                "both lead after renewals"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let leader = if *a.leading.borrow() { "a" } else { "b" };
        assert_eq!(holder(&cluster).await.as_deref(), Some(leader));
        a.stop.cancel();
        b.stop.cancel();
        a.task.await.expect("join").expect("a stops cleanly");
        b.task.await.expect("join").expect("b stops cleanly");
        cluster.shutdown().await;
    }

    #[tokio::test]
    async fn a_released_lease_passes_to_the_standby_within_the_lease_duration() {
        let cluster = cluster().await;
        let mut first = candidate(&cluster, "first").await;
        becomes(&mut first.leading, true, DURATION * 2).await;
        let mut second = candidate(&cluster, "second").await;
        // The standby stays a standby while the leader renews.
        tokio::time::sleep(DURATION + Duration::from_secs(1)).await;
        assert!(!*second.leading.borrow(), "standby took a renewed lease");
        first.stop.cancel();
        first
            .task
            .await
            .expect("join")
            .expect("leader stops cleanly");
        assert!(
            !*first.leading.borrow(),
            "a stopped leader still reports leading"
        );
        let released = Instant::now();
        becomes(
            &mut second.leading,
            true,
            DURATION + Duration::from_millis(500),
        )
        .await;
        assert!(released.elapsed() <= DURATION + Duration::from_millis(500));
        assert_eq!(holder(&cluster).await.as_deref(), Some("second"));
        second.stop.cancel();
        second.task.await.expect("join").expect("stops cleanly");
        // Released on shutdown: nobody holds it.
        assert_eq!(holder(&cluster).await, None);
        cluster.shutdown().await;
    }

    #[tokio::test]
    async fn a_leader_whose_lease_is_taken_over_steps_down() {
        let cluster = cluster().await;
        let health = HealthState::new();
        let elector = LeaderElector::new(cluster.client(), NS, LEASE, "victim", DURATION)
            .await
            .expect("elector starts")
            .with_health(health.clone());
        let (tx, mut leading) = watch::channel(false);
        let stop = CancellationToken::new();
        let task = tokio::spawn(elector.run(tx, stop.clone()));
        becomes(&mut leading, true, DURATION * 2).await;
        assert!(
            health
                .readiness()
                .detail
                .contains(&"role: leader".to_string())
        );
        // Another controller (say, after a network partition) takes the Lease.
        let leases: Api<Lease> = Api::namespaced(cluster.client(), NS);
        let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
            k8s_openapi::jiff::Timestamp::now(),
        );
        leases
            .patch(
                LEASE,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {
                    "holderIdentity": "intruder",
                    "acquireTime": now,
                    "renewTime": now,
                    "leaseDurationSeconds": 3600,
                }})),
            )
            .await
            .expect("steal the lease");
        becomes(&mut leading, false, DURATION * 2).await;
        assert!(
            health
                .readiness()
                .detail
                .contains(&"role: standby".to_string())
        );
        assert_eq!(
            health.task(LEASE_TASK),
            Some(crate::health::TaskState::Running)
        );
        stop.cancel();
        task.await.expect("join").expect("stops cleanly");
        // It did not release a lease it does not hold.
        assert_eq!(holder(&cluster).await.as_deref(), Some("intruder"));
        cluster.shutdown().await;
    }

    #[tokio::test]
    async fn too_short_a_lease_is_rejected_before_touching_the_api() {
        let cluster = cluster().await;
        let err = LeaderElector::new(cluster.client(), NS, LEASE, "x", Duration::from_secs(1))
            .await
            .expect_err("1s is too short");
        assert!(matches!(err, LeaderError::Config(_)), "{err}");
        let leases: Api<Lease> = Api::namespaced(cluster.client(), NS);
        assert!(leases.get_opt(LEASE).await.expect("get").is_none());
        cluster.shutdown().await;
    }
    #[tokio::test]
    async fn only_the_leader_runs_the_work_and_hands_over_only_after_it_stopped() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicI32, Ordering};

        let cluster = cluster().await;
        let active = Arc::new(AtomicI32::new(0));
        let overlap = Arc::new(AtomicI32::new(0));
        let mut runs = Vec::new();
        for id in ["one", "two"] {
            let elector = LeaderElector::new(cluster.client(), NS, LEASE, id, DURATION)
                .await
                .expect("elector starts");
            let stop = CancellationToken::new();
            let (started_tx, started_rx) = watch::channel(false);
            let (active, overlap) = (active.clone(), overlap.clone());
            let task = tokio::spawn(run_as_leader(
                elector,
                stop.clone(),
                move |token| async move {
                    if active.fetch_add(1, Ordering::SeqCst) > 0 {
                        overlap.fetch_add(1, Ordering::SeqCst);
                    }
                    started_tx.send_replace(true);
                    token.cancelled().await;
                    // In-flight reconciles finishing: the lease must still be held meanwhile.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    active.fetch_sub(1, Ordering::SeqCst);
                    Ok::<(), std::io::Error>(())
                },
            ));
            runs.push((stop, started_rx, task));
        }
        let (mut s0, mut s1) = (runs[0].1.clone(), runs[1].1.clone());
        let first = tokio::time::timeout(DURATION * 3, async {
            tokio::select! {
                _ = s0.wait_for(|v| *v) => 0,
                _ = s1.wait_for(|v| *v) => 1,
            }
        })
        .await
        .expect("someone leads");
        let other = 1 - first;
        tokio::time::sleep(DURATION).await;
        assert!(!*runs[other].1.borrow(), "the standby ran the work");
        runs[first].0.cancel();
        let mut standby_started = runs[other].1.clone();
        tokio::time::timeout(DURATION * 2, standby_started.wait_for(|v| *v))
            .await
            .expect("the standby takes over")
            .expect("sender alive");
        assert_eq!(
            overlap.load(Ordering::SeqCst),
            0,
            "two replicas worked at once"
        );
        for (stop, _, _) in &runs {
            stop.cancel();
        }
        for (_, _, task) in runs {
            task.await.expect("join").expect("clean shutdown");
        }
        cluster.shutdown().await;
    }

    #[tokio::test]
    async fn losing_the_lease_stops_the_work_and_reports_it() {
        let cluster = cluster().await;
        let elector = LeaderElector::new(cluster.client(), NS, LEASE, "loser", DURATION)
            .await
            .expect("elector starts");
        let (started_tx, mut started) = watch::channel(false);
        let task = tokio::spawn(run_as_leader(
            elector,
            CancellationToken::new(),
            move |token| async move {
                started_tx.send_replace(true);
                token.cancelled().await;
                Ok::<(), std::io::Error>(())
            },
        ));
        tokio::time::timeout(DURATION * 2, started.wait_for(|v| *v))
            .await
            .expect("leads")
            .expect("sender alive");
        let leases: Api<Lease> = Api::namespaced(cluster.client(), NS);
        leases
            .patch(
                LEASE,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {
                    "holderIdentity": "thief",
                    "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                        k8s_openapi::jiff::Timestamp::now()),
                    "leaseDurationSeconds": 3600,
                }})),
            )
            .await
            .expect("steal");
        let result = tokio::time::timeout(DURATION * 3, task)
            .await
            .expect("stops after losing the lease")
            .expect("join");
        assert!(matches!(result, Err(LeadError::Lost)), "{result:?}");
        cluster.shutdown().await;
    }
    #[test]
    fn lead_errors_carry_their_cause_into_the_binarys_anyhow_error() {
        let work: LeadError<anyhow::Error> =
            LeadError::Work(anyhow::anyhow!("cannot list rollouts"));
        let err: anyhow::Error = work.into();
        assert_eq!(err.to_string(), "cannot list rollouts");
        let lost: anyhow::Error = LeadError::<anyhow::Error>::Lost.into();
        assert_eq!(lost.to_string(), "lost the leader lease to another replica");
    }
}
