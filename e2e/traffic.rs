//! Traffic routing scenarios driven by the real kubectl (issue 16): the Gateway API's CRDs
//! (`../shared/crds/gateway-api-v1.6.1/`, unmodified) installed into the cluster, a canary
//! routed through an HTTPRoute, and every step read back from the route object itself.
//! Ordering (traffic to the stable first, then the scale-down) is checked on what each
//! observation of the objects shows, never on timing. Argo CD's verdict is checked at every
//! observation.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::argocd_oracle::{ArgoHealth, GENERATION_NOT_OBSERVED, argocd_rollout_health};
use crate::harness::{Env, repo_root};
use crate::require_kubectl;

const T: Duration = Duration::from_secs(90);

/// The third-party CRDs the scenarios install (never copied into the project).
pub(crate) fn shared_crds(dir: &str) -> PathBuf {
    let path = repo_root().join("../shared/crds").join(dir);
    assert!(
        path.is_dir(),
        "the third-party CRDs are missing: {} (the shared CRD folder next to the repository)",
        path.display()
    );
    path
}

/// Install the Gateway API's standard CRDs and wait until they are served.
fn install_gateway_api(env: &Env) {
    let dir = shared_crds("gateway-api-v1.6.1");
    env.kubectl_ok(&["apply", "--server-side", "-f", dir.to_str().unwrap()]);
    for crd in ["httproutes", "grpcroutes"] {
        env.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            &format!("crd/{crd}.gateway.networking.k8s.io"),
        ]);
    }
}

/// The canary and stable Services of `web`, and the root Service a mesh route hangs off.
pub(crate) const SERVICES: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: web-canary
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: web-stable
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"#;

/// An HTTPRoute `web` under `parent` (a Gateway, or a Service for a mesh route): one rule
/// splitting the two Services, and a rule of the user's own sending `/admin` to the stable.
fn http_route(parent: &str) -> String {
    format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
spec:
  parentRefs:
    - {parent}
  rules:
    - matches:
        - path: {{type: PathPrefix, value: /}}
      backendRefs:
        - {{name: web-stable, port: 80}}
        - {{name: web-canary, port: 80}}
    - matches:
        - path: {{type: PathPrefix, value: /admin}}
      backendRefs:
        - {{name: web-stable, port: 80}}
"#
    )
}

/// The walk of the issue, with a pause after each traffic step so every state is observed.
const WALK_STEPS: &str = r#"        - setWeight: 10
        - pause: {}
        - setHeaderRoute:
            name: beta-users
            match:
              - headerName: x-beta
                headerValue: {exact: "yes"}
        - pause: {}
        - setMirrorRoute:
            name: shadow
            percentage: 25
            match:
              - method: {exact: GET}
        - pause: {}
        - setWeight: 50
        - pause: {}
"#;

/// The Rollout `web`: 4 replicas of `image`, routed through the route `route` (`httpRoute:
/// web` or another plugin line), with `extra` lines under `canary:` and `steps`.
fn routed_rollout_yaml(image: &str, route: &str, extra: &str, steps: &str) -> String {
    let routing = format!(
        r#"        managedRoutes:
          - name: beta-users
          - name: shadow
        plugins:
          argoproj-labs/gatewayAPI:
            {route}
"#
    );
    rollout_yaml_with_routing(image, extra, &routing, steps)
}

/// The Rollout `web`: 4 replicas of `image` between the Services `web-canary` and
/// `web-stable`, with `extra` lines under `canary:`, the lines under `trafficRouting:`
/// (indented by 8) and `steps`.
pub(crate) fn rollout_yaml_with_routing(
    image: &str,
    extra: &str,
    routing: &str,
    steps: &str,
) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  replicas: 4
  revisionHistoryLimit: 3
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: web
          image: {image}
  strategy:
    canary:
      canaryService: web-canary
      stableService: web-stable
      scaleDownDelaySeconds: 3
      abortScaleDownDelaySeconds: 3
{extra}      trafficRouting:
{routing}      steps:
{steps}"#
    )
}

/// The Rollout of the walk on the HTTPRoute `web`.
fn rollout_yaml(image: &str) -> String {
    routed_rollout_yaml(image, "httpRoute: web", "", WALK_STEPS)
}

pub(crate) fn rollout(env: &Env) -> Value {
    env.get_json(&["rollout", "web"])
}

/// The route `web` of `kind` (`httproute`, `grpcroute`).
fn route(env: &Env, kind: &str) -> Value {
    env.get_json(&[kind, "web"])
}

/// What a route holds: (stable weight, canary weight) on the rule splitting the two
/// Services, and the names of the rules before it.
fn holds(route: &Value) -> ((i64, i64), Vec<String>) {
    let rules = route["spec"]["rules"].as_array().expect("rules");
    let mut managed = Vec::new();
    for rule in rules {
        let refs = rule["backendRefs"].as_array().cloned().unwrap_or_default();
        let weight = |name: &str| {
            refs.iter()
                .find(|r| r["name"] == name)
                .map(|r| r["weight"].as_i64().unwrap_or(1))
        };
        if let (Some(s), Some(c)) = (weight("web-stable"), weight("web-canary"))
            && rule["name"].is_null()
        {
            return ((s, c), managed);
        }
        managed.push(rule["name"].as_str().unwrap_or("").to_string());
    }
    panic!("no rule splits the two Services: {route}");
}

/// The Rollout's ReplicaSets by hash: (spec.replicas, available, has a scale-down-deadline).
pub(crate) fn replica_set(env: &Env, hash: &str) -> (i64, i64, bool) {
    let list = env.get_json(&[
        "replicasets",
        "-l",
        &format!("rollouts-pod-template-hash={hash}"),
    ]);
    list["items"]
        .as_array()
        .and_then(|items| items.first())
        .map(|rs| {
            (
                rs["spec"]["replicas"].as_i64().unwrap_or(0),
                rs["status"]["availableReplicas"].as_i64().unwrap_or(0),
                rs["metadata"]["annotations"]["scale-down-deadline"].is_string(),
            )
        })
        .unwrap_or((0, 0, false))
}

pub(crate) fn selector(env: &Env, service: &str) -> String {
    let svc = env.get_json(&["service", service]);
    svc["spec"]["selector"]["rollouts-pod-template-hash"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Argo CD's verdict on one observation, checked against what the Rollout says.
pub(crate) fn check_argocd(ro: &Value) -> ArgoHealth {
    let verdict = argocd_rollout_health(ro);
    let s = &ro["status"];
    let observed =
        s["observedGeneration"].as_str() == Some(&ro["metadata"]["generation"].to_string());
    if !observed {
        assert_eq!(
            (verdict.status, verdict.message.as_str()),
            (ArgoHealth::Progressing, GENERATION_NOT_OBSERVED)
        );
        return verdict.status;
    }
    match verdict.status {
        ArgoHealth::Healthy => assert_eq!(
            s["stableRS"], s["currentPodHash"],
            "Healthy mid-update: {s}"
        ),
        // Right after a promote (`pauseConditions: null`, the CLI's patch) the controller has
        // not yet answered it: the phase it wrote is still Paused and its own
        // `controllerPause` still says why, as upstream's status does in that instant.
        ArgoHealth::Suspended => assert!(
            s["pauseConditions"]
                .as_array()
                .is_some_and(|p| !p.is_empty())
                || ro["spec"]["paused"] == true
                || s["controllerPause"] == true,
            "Suspended without a pause: {s}"
        ),
        ArgoHealth::Degraded => {
            let m = verdict.message.as_str();
            assert!(
                m.starts_with("RolloutAborted: ") || m.starts_with("InvalidSpec: "),
                "Degraded with an unexplained message: {m}"
            );
        }
        _ => {}
    }
    verdict.status
}

/// Observe until the Rollout pauses at step `index` (Argo CD: Suspended), checking Argo CD's
/// verdict at every observation.
pub(crate) fn wait_paused_at(env: &Env, index: i64) -> Value {
    env.wait_for(&format!("the pause at step {index}"), T, |env| {
        let ro = rollout(env);
        let paused = check_argocd(&ro) == ArgoHealth::Suspended;
        (paused && ro["status"]["currentStepIndex"] == index).then_some(ro)
    })
}

pub(crate) fn promote(env: &Env) {
    env.patch_rollout_status("web", r#"{"status":{"pauseConditions":null}}"#);
}

pub(crate) fn set_image(env: &Env, image: &str) {
    let patch = format!(
        r#"{{"spec":{{"template":{{"spec":{{"containers":[{{"name":"web","image":"{image}"}}]}}}}}}}}"#
    );
    env.kubectl_ok(&["patch", "rollout", "web", "--type=merge", "-p", &patch]);
}

/// Observe until ReplicaSet `leaving` is scaled to zero, asserting at every observation that
/// it is given its scale-down deadline, or loses a pod, only while the route already holds
/// 100 % on the stable with no managed rule left. Returns the last Rollout seen.
fn watch_scale_down_after_traffic(env: &Env, kind: &str, leaving: &str, replicas: i64) -> Value {
    let (ro, saw_deadline) = watch_leaving_after(
        env,
        leaving,
        replicas,
        |env| holds(&route(env, kind)),
        ((100, 0), Vec::new()),
    );
    assert!(
        saw_deadline,
        "{leaving} went down without waiting out its scale-down-deadline"
    );
    ro
}

/// Observe until ReplicaSet `leaving` (of `replicas` pods) is scaled to zero, asserting at
/// every observation that it is given its scale-down deadline, or loses a pod, only while
/// `held` (what the router holds) already reads `back_on_stable`. Returns the last Rollout
/// seen and whether the ReplicaSet was seen with its deadline.
pub(crate) fn watch_leaving_after<H: PartialEq + std::fmt::Debug>(
    env: &Env,
    leaving: &str,
    replicas: i64,
    held: impl Fn(&Env) -> H,
    back_on_stable: H,
) -> (Value, bool) {
    let mut saw_deadline = false;
    let ro = env.wait_for(&format!("{leaving} to scale down"), T, |env| {
        let ro = rollout(env);
        check_argocd(&ro);
        // The ReplicaSet is read before the router: a deadline seen here was written after
        // the router was read back holding the stable, and nothing moves the router back, so
        // the read next must hold it (reading in the other order races the controller).
        let (spec, _, has_deadline) = replica_set(env, leaving);
        let now = held(env);
        if has_deadline || spec < replicas {
            assert_eq!(
                now, back_on_stable,
                "ReplicaSet {leaving} is on its way down (spec {spec}, deadline {has_deadline}) while the router still sends it traffic"
            );
        }
        saw_deadline |= has_deadline;
        (spec == 0).then_some(ro)
    });
    (ro, saw_deadline)
}

/// One route kind's walk: the route (kind for kubectl, manifest), the plugin line naming it,
/// the steps, and what its mirror rule's match and the user's own second rule look like.
struct Walk {
    kind: &'static str,
    route_yaml: String,
    plugin: &'static str,
    steps: String,
    check_mirror_match: fn(&Value),
    check_user_rule: fn(&Value),
}

fn http_walk(parent: &str) -> Walk {
    Walk {
        kind: "httproute",
        route_yaml: http_route(parent),
        plugin: "httpRoute: web",
        steps: WALK_STEPS.to_string(),
        check_mirror_match: |m| assert_eq!(m["method"], "GET"),
        check_user_rule: |r| assert_eq!(r["matches"][0]["path"]["value"], "/admin"),
    }
}

/// The walk of the issue on a route: setWeight 10 → header route → mirror
/// route → setWeight 50 (with a pause after each so every state is observed), to the end; then
/// a second update aborted at 10 %.
fn walk(env: &Env, w: &Walk) {
    install_gateway_api(env);
    env.apply(SERVICES);
    env.apply(&w.route_yaml);
    env.apply(&routed_rollout_yaml("nginx:1.26", w.plugin, "", &w.steps));

    // First deploy: everything on the stable.
    let ro = env.wait_for("first deploy Healthy", T, |env| {
        let ro = rollout(env);
        (check_argocd(&ro) == ArgoHealth::Healthy).then_some(ro)
    });
    let v1 = ro["status"]["stableRS"].as_str().unwrap().to_string();
    env.wait_for("the route at 100/0", T, |env| {
        (holds(&route(env, w.kind)) == ((100, 0), Vec::new())).then_some(())
    });

    // A user's own edit to the route survives every step.
    env.kubectl_ok(&[
        "patch",
        w.kind,
        "web",
        "--type=merge",
        "-p",
        r#"{"metadata":{"annotations":{"team":"payments"}},"spec":{"hostnames":["web.example.com"]}}"#,
    ]);

    set_image(env, "nginx:1.27");
    let ro = wait_paused_at(env, 1);
    let v2 = ro["status"]["currentPodHash"].as_str().unwrap().to_string();
    assert_ne!(v1, v2);
    assert_eq!(holds(&route(env, w.kind)), ((90, 10), Vec::new()));
    assert_eq!(replica_set(env, &v2).0, 1, "10 % of 4 replicas");
    assert_eq!(replica_set(env, &v1).0, 4, "the stable keeps every replica");
    let weights = &ro["status"]["canary"]["weights"];
    assert_eq!(
        (
            &weights["canary"]["weight"],
            &weights["canary"]["serviceName"],
            &weights["canary"]["podTemplateHash"]
        ),
        (
            &Value::from(10),
            &Value::from("web-canary"),
            &Value::from(v2.as_str())
        )
    );
    assert_eq!(
        (
            &weights["stable"]["weight"],
            &weights["stable"]["podTemplateHash"]
        ),
        (&Value::from(90), &Value::from(v1.as_str()))
    );
    assert_eq!(selector(env, "web-canary"), v2);
    assert_eq!(selector(env, "web-stable"), v1);

    promote(env);
    wait_paused_at(env, 3);
    let r = route(env, w.kind);
    assert_eq!(
        holds(&r),
        ((90, 10), vec!["sluice.web.beta-users".to_string()])
    );
    let header = &r["spec"]["rules"][0];
    assert_eq!(header["matches"][0]["headers"][0]["name"], "x-beta");
    assert_eq!(header["matches"][0]["headers"][0]["value"], "yes");
    assert_eq!(header["backendRefs"][0]["name"], "web-canary");

    promote(env);
    wait_paused_at(env, 5);
    let r = route(env, w.kind);
    assert_eq!(
        holds(&r),
        (
            (90, 10),
            vec![
                "sluice.web.beta-users".to_string(),
                "sluice.web.shadow".to_string()
            ]
        )
    );
    let mirror = &r["spec"]["rules"][1];
    (w.check_mirror_match)(&mirror["matches"][0]);
    assert_eq!(mirror["backendRefs"][0]["name"], "web-stable");
    assert_eq!(mirror["filters"][0]["type"], "RequestMirror");
    assert_eq!(
        mirror["filters"][0]["requestMirror"]["backendRef"]["name"],
        "web-canary"
    );
    assert_eq!(mirror["filters"][0]["requestMirror"]["percent"], 25);

    promote(env);
    wait_paused_at(env, 7);
    assert_eq!(
        holds(&route(env, w.kind)),
        (
            (50, 50),
            vec![
                "sluice.web.beta-users".to_string(),
                "sluice.web.shadow".to_string()
            ]
        )
    );
    assert_eq!(replica_set(env, &v2).0, 2, "50 % of 4 replicas");

    // The end: the new version becomes the stable, the route goes back to 100 % on the
    // stable Service (now selecting it) with no managed rule, and only then does the old
    // version wait out its delay and go.
    promote(env);
    let ro = watch_scale_down_after_traffic(env, w.kind, &v1, 4);
    assert_eq!(ro["status"]["stableRS"], v2.as_str());
    assert_eq!(selector(env, "web-stable"), v2);
    env.wait_for("Healthy after the update", T, |env| {
        let ro = rollout(env);
        (check_argocd(&ro) == ArgoHealth::Healthy).then_some(())
    });
    let r = route(env, w.kind);
    assert_eq!(holds(&r), ((100, 0), Vec::new()));
    assert_eq!(
        r["spec"]["hostnames"][0], "web.example.com",
        "the user's edit is kept"
    );
    assert_eq!(r["metadata"]["annotations"]["team"], "payments");
    (w.check_user_rule)(&r["spec"]["rules"][1]);
    assert_eq!(
        r["spec"]["rules"][1]["backendRefs"][0]["weight"], 1,
        "the stable-only rule is the user's"
    );

    // Separately, an update aborted at 10 %: traffic back on the stable first, then the
    // canary waits out abortScaleDownDelaySeconds and goes.
    set_image(env, "nginx:1.28");
    let ro = wait_paused_at(env, 1);
    let v3 = ro["status"]["currentPodHash"].as_str().unwrap().to_string();
    assert_eq!(holds(&route(env, w.kind)), ((90, 10), Vec::new()));
    promote(env);
    wait_paused_at(env, 3);
    assert_eq!(
        holds(&route(env, w.kind)).1,
        vec!["sluice.web.beta-users".to_string()]
    );
    env.patch_rollout_status("web", r#"{"status":{"abort":true}}"#);
    let ro = watch_scale_down_after_traffic(env, w.kind, &v3, 1);
    assert_eq!(check_argocd(&ro), ArgoHealth::Degraded);
    assert_eq!(ro["status"]["stableRS"], v2.as_str());
    assert_eq!(selector(env, "web-stable"), v2);
    assert_eq!(replica_set(env, &v2).0, 4);
}

#[test]
fn httproute_walk_with_a_gateway_parent() {
    require_kubectl!();
    let env = Env::start("traffic_http");
    walk(
        &env,
        &http_walk("{name: public, kind: Gateway, group: gateway.networking.k8s.io}"),
    );
}

#[test]
fn httproute_walk_with_a_service_parent_gamma() {
    require_kubectl!();
    let env = Env::start("traffic_gamma");
    walk(
        &env,
        &http_walk("{name: web, kind: Service, group: \"\", port: 80}"),
    );
}

#[test]
fn a_missing_route_is_degraded_naming_it_and_nothing_moves() {
    require_kubectl!();
    let env = Env::start("traffic_missing");
    install_gateway_api(&env);
    env.apply(SERVICES);
    env.apply(&rollout_yaml("nginx:1.26"));
    let ro = env.wait_for("InvalidSpec", T, |env| {
        let ro = rollout(env);
        (check_argocd(&ro) == ArgoHealth::Degraded).then_some(ro)
    });
    assert_eq!(
        ro["status"]["message"],
        "InvalidSpec: spec.strategy.canary.trafficRouting.plugins[\"argoproj-labs/gatewayAPI\"].httpRoute: HTTPRoute traffic-missing-"
            .to_string()
            + &env.namespace[env.namespace.rfind('-').unwrap() + 1..]
            + "/web not found"
    );
    let sets = env.get_json(&["replicasets"]);
    assert_eq!(
        sets["items"].as_array().unwrap().len(),
        0,
        "nothing is created"
    );
    // The route appears: the Rollout goes on.
    env.apply(&http_route("{name: public}"));
    env.wait_for("Healthy once the route exists", T, |env| {
        let ro = rollout(env);
        (check_argocd(&ro) == ArgoHealth::Healthy).then_some(())
    });
}

/// Observe until the Rollout pauses at step `index`, asserting at every observation that the
/// stable never holds more traffic than its available pods serve. While traffic leaves the
/// stable its pods only shrink, so the ReplicaSet is read first: the route read after it can
/// only hold less.
fn wait_paused_checking_stable_capacity(env: &Env, index: i64, stable: &str) -> Value {
    env.wait_for(&format!("the pause at step {index}"), T, |env| {
        let ro = rollout(env);
        let health = check_argocd(&ro);
        assert_stable_serves_its_weight(env, stable, false);
        (health == ArgoHealth::Suspended && ro["status"]["currentStepIndex"] == index).then_some(ro)
    })
}

/// Asserts the stable holds no more traffic than its available pods (of 4) serve; reads the
/// ReplicaSet before the route unless `route_first` (whichever of the two can only move
/// towards the truth of the assertion must be read second).
fn assert_stable_serves_its_weight(env: &Env, stable: &str, route_first: bool) -> i64 {
    let (stable_weight, available) = if route_first {
        let ((w, _), _) = holds(&route(env, "httproute"));
        (w, replica_set(env, stable).1)
    } else {
        let available = replica_set(env, stable).1;
        let ((w, _), _) = holds(&route(env, "httproute"));
        (w, available)
    };
    assert!(
        stable_weight <= available * 100 / 4,
        "the stable holds {stable_weight} % with {available} of 4 pods available"
    );
    stable_weight
}

#[test]
fn set_canary_scale_decouples_canary_replicas_from_the_traffic_weight() {
    require_kubectl!();
    let env = Env::start("traffic_canary_scale");
    install_gateway_api(&env);
    env.apply(SERVICES);
    env.apply(&http_route("{name: public}"));
    let steps = r#"        - setCanaryScale: {replicas: 2}
        - setWeight: 25
        - pause: {}
        - setCanaryScale: {weight: 75}
        - pause: {}
        - setCanaryScale: {matchTrafficWeight: true}
        - pause: {}
"#;
    env.apply(&routed_rollout_yaml(
        "nginx:1.26",
        "httpRoute: web",
        "",
        steps,
    ));
    env.wait_for("Healthy", T, |env| {
        (check_argocd(&rollout(env)) == ArgoHealth::Healthy).then_some(())
    });
    set_image(&env, "nginx:1.27");
    let ro = wait_paused_at(&env, 2);
    let canary = ro["status"]["currentPodHash"].as_str().unwrap().to_string();
    let stable = ro["status"]["stableRS"].as_str().unwrap().to_string();
    assert_eq!(holds(&route(&env, "httproute")), ((75, 25), Vec::new()));
    assert_eq!(
        replica_set(&env, &canary).0,
        2,
        "replicas: 2 at 25 % traffic"
    );
    promote(&env);
    wait_paused_at(&env, 4);
    assert_eq!(holds(&route(&env, "httproute")), ((75, 25), Vec::new()));
    assert_eq!(
        replica_set(&env, &canary).0,
        3,
        "75 % of 4 replicas at 25 % traffic"
    );
    promote(&env);
    wait_paused_at(&env, 6);
    env.wait_for("the canary back to its traffic's share", T, |env| {
        (replica_set(env, &canary).0 == 1).then_some(())
    });
    assert_eq!(holds(&route(&env, "httproute")), ((75, 25), Vec::new()));
    assert_eq!(
        replica_set(&env, &stable).0,
        4,
        "the stable keeps every replica"
    );
}

#[test]
fn dynamic_stable_scale_shrinks_the_stable_with_its_traffic_and_grows_it_back_first_on_abort() {
    require_kubectl!();
    let env = Env::start("traffic_dynamic");
    install_gateway_api(&env);
    env.apply(SERVICES);
    env.apply(&http_route("{name: public}"));
    let steps = "        - setWeight: 50\n        - pause: {}\n";
    // Without scaleDownDelaySeconds: upstream refuses it beside dynamicStableScale
    // (InvalidCanaryDynamicStableScaleWithScaleDownDelay), and so does Sluice.
    env.apply(
        &routed_rollout_yaml(
            "nginx:1.26",
            "httpRoute: web",
            "      dynamicStableScale: true\n",
            steps,
        )
        .replace("      scaleDownDelaySeconds: 3\n", ""),
    );
    env.wait_for("Healthy", T, |env| {
        (check_argocd(&rollout(env)) == ArgoHealth::Healthy).then_some(())
    });
    let stable = rollout(&env)["status"]["stableRS"]
        .as_str()
        .unwrap()
        .to_string();
    set_image(&env, "nginx:1.27");
    let ro = wait_paused_checking_stable_capacity(&env, 1, &stable);
    let canary = ro["status"]["currentPodHash"].as_str().unwrap().to_string();
    assert_eq!(holds(&route(&env, "httproute")), ((50, 50), Vec::new()));
    env.wait_for("the stable at its share", T, |env| {
        (replica_set(env, &stable).0 == 2).then_some(())
    });
    assert_eq!(replica_set(&env, &canary).0, 2);
    env.patch_rollout_status("web", r#"{"status":{"abort":true}}"#);
    // Traffic comes back to the stable only as its pods do, and those only grow now: the
    // route is read first, so the pods read after it can only be more.
    env.wait_for("the stable back at 100 % and the canary gone", T, |env| {
        check_argocd(&rollout(env));
        let stable_weight = assert_stable_serves_its_weight(env, &stable, true);
        (stable_weight == 100 && replica_set(env, &canary).0 == 0).then_some(())
    });
}

/// A GRPCRoute `web` under a Gateway: one rule splitting the two Services for the Cart
/// service, and the user's own rule sending the Admin service to the stable.
const GRPC_ROUTE: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: web
spec:
  parentRefs:
    - {name: public}
  rules:
    - matches:
        - method: {service: shop.Cart}
      backendRefs:
        - {name: web-stable, port: 80}
        - {name: web-canary, port: 80}
    - matches:
        - method: {service: shop.Admin}
      backendRefs:
        - {name: web-stable, port: 80}
"#;

#[test]
fn grpcroute_walk() {
    require_kubectl!();
    let env = Env::start("traffic_grpc");
    let steps = WALK_STEPS.replace(
        "              - method: {exact: GET}",
        "              - headers: {x-shadow: {exact: \"1\"}}",
    );
    walk(
        &env,
        &Walk {
            kind: "grpcroute",
            route_yaml: GRPC_ROUTE.to_string(),
            plugin: "grpcRoute: web",
            steps,
            check_mirror_match: |m| {
                assert_eq!(m["method"]["service"], "shop.Cart");
                assert_eq!(m["headers"][0]["name"], "x-shadow");
            },
            check_user_rule: |r| assert_eq!(r["matches"][0]["method"]["service"], "shop.Admin"),
        },
    );
}

/// The TrafficSplit's (canary, stable) weights, with its root Service; `None` before it exists.
fn split(env: &Env) -> Option<(String, i64, i64)> {
    let out = env.kubectl(&["get", "trafficsplit", "web-split", "-o", "json"]);
    if !out.status.success() {
        return None;
    }
    let ts: Value = serde_json::from_slice(&out.stdout).expect("kubectl printed JSON");
    let weight = |name: &str| {
        ts["spec"]["backends"]
            .as_array()
            .and_then(|b| b.iter().find(|b| b["service"] == name))
            .and_then(|b| b["weight"].as_f64())
            .map_or(-1, |w| w as i64)
    };
    Some((
        ts["spec"]["service"].as_str().unwrap_or("").to_string(),
        weight("web-canary"),
        weight("web-stable"),
    ))
}

#[test]
fn smi_traffic_split_walk() {
    require_kubectl!();
    let env = Env::start("traffic_smi");
    let crd = shared_crds("smi").join("trafficsplit-crd.yaml");
    env.kubectl_ok(&["apply", "--server-side", "-f", crd.to_str().unwrap()]);
    env.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/trafficsplits.split.smi-spec.io",
    ]);
    env.apply(SERVICES);
    let steps = "        - setWeight: 10\n        - pause: {}\n        - setWeight: 50\n        - pause: {}\n";
    let yaml = routed_rollout_yaml("nginx:1.26", "x: y", "", steps).replace(
        "        managedRoutes:\n          - name: beta-users\n          - name: shadow\n        plugins:\n          argoproj-labs/gatewayAPI:\n            x: y\n",
        "        smi:\n          rootService: web\n          trafficSplitName: web-split\n",
    );
    env.apply(&yaml);
    let ro = env.wait_for("Healthy", T, |env| {
        let ro = rollout(env);
        (check_argocd(&ro) == ArgoHealth::Healthy).then_some(ro)
    });
    let v1 = ro["status"]["stableRS"].as_str().unwrap().to_string();
    env.wait_for("the TrafficSplit at 0/100", T, |env| {
        (split(env) == Some(("web".into(), 0, 100))).then_some(())
    });
    let ts = env.get_json(&["trafficsplit", "web-split"]);
    let owner = &ts["metadata"]["ownerReferences"][0];
    assert_eq!(
        (&owner["kind"], &owner["name"], &owner["controller"]),
        (
            &Value::from("Rollout"),
            &Value::from("web"),
            &Value::from(true)
        ),
        "the Rollout owns its TrafficSplit"
    );

    set_image(&env, "nginx:1.27");
    let ro = wait_paused_at(&env, 1);
    let v2 = ro["status"]["currentPodHash"].as_str().unwrap().to_string();
    assert_eq!(split(&env), Some(("web".into(), 10, 90)));
    promote(&env);
    wait_paused_at(&env, 3);
    assert_eq!(split(&env), Some(("web".into(), 50, 50)));
    assert_eq!(replica_set(&env, &v2).0, 2);
    promote(&env);
    // The old version goes only once the split is back on the stable Service (now v2).
    let (_, saw_deadline) = watch_leaving_after(&env, &v1, 4, split, Some(("web".into(), 0, 100)));
    assert!(saw_deadline, "v1 went down without its scale-down-deadline");
    assert_eq!(selector(&env, "web-stable"), v2);

    // An abort at 10 %: back to the stable first.
    set_image(&env, "nginx:1.28");
    let ro = wait_paused_at(&env, 1);
    let v3 = ro["status"]["currentPodHash"].as_str().unwrap().to_string();
    assert_eq!(split(&env), Some(("web".into(), 10, 90)));
    env.patch_rollout_status("web", r#"{"status":{"abort":true}}"#);
    let (ro, _) = watch_leaving_after(&env, &v3, 1, split, Some(("web".into(), 0, 100)));
    assert_eq!(check_argocd(&ro), ArgoHealth::Degraded);
}

/// docs/traffic-routing.md's worked example, command by command as a reader would run it,
/// with what the text says checked after each block.
#[test]
fn the_worked_example_of_the_docs_applies_as_is() {
    require_kubectl!();
    let env = Env::start("traffic_docs");
    install_gateway_api(&env);
    let root = repo_root();
    let doc = std::fs::read_to_string(root.join("docs/traffic-routing.md")).unwrap();
    let blocks = crate::blue_green::code_blocks(&doc, "## A worked example");
    let manifest =
        std::fs::read_to_string(root.join("manifests/examples/traffic-routing-demo.yaml")).unwrap();
    assert_eq!(
        blocks[0],
        ("yaml".to_string(), manifest),
        "the doc shows the file"
    );
    let scripts: Vec<&String> = blocks
        .iter()
        .filter(|(lang, _)| lang == "sh")
        .map(|(_, body)| body)
        .collect();
    assert_eq!(scripts.len(), 4, "{scripts:#?}");
    let run = |script: &str| -> Vec<String> {
        let mut outputs = Vec::new();
        for line in script.lines().filter(|l| !l.trim().is_empty()) {
            let words = crate::blue_green::shell_words(line);
            assert_eq!(words[0], "kubectl", "{line}");
            let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
            let out = env.kubectl(&args);
            assert!(
                out.status.success(),
                "`{line}` failed: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                env.logs()
            );
            outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        outputs
    };
    let demo = |env: &Env| env.get_json(&["rollout", "demo"]);

    let out = run(scripts[0]);
    assert_eq!(out.last().unwrap(), "100 0");
    let v1 = demo(&env)["status"]["stableRS"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(check_argocd(&demo(&env)), ArgoHealth::Healthy);

    let out = run(scripts[1]);
    assert_eq!(out[2], "80 20");
    let ro = demo(&env);
    assert_eq!(check_argocd(&ro), ArgoHealth::Suspended);
    let v2 = ro["status"]["currentPodHash"].as_str().unwrap().to_string();
    assert_eq!(ro["status"]["canary"]["weights"]["canary"]["weight"], 20);
    assert_eq!(replica_set(&env, &v2).0, 1);

    let out = run(scripts[2]);
    assert_eq!(out[2], "sluice.demo.testers");
    assert_eq!(check_argocd(&demo(&env)), ArgoHealth::Suspended);

    let out = run(scripts[3]);
    assert_eq!(
        out[3], "100 0",
        "the header rule is gone and the stable holds all"
    );
    let ro = demo(&env);
    assert_eq!(check_argocd(&ro), ArgoHealth::Healthy);
    assert_eq!(ro["status"]["stableRS"], v2.as_str());
    assert_eq!(selector(&env, "demo-stable"), v2);
    env.wait_for("the old version scaled down after its delay", T, |env| {
        (replica_set(env, &v1).0 == 0).then_some(())
    });
}
