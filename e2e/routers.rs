//! Traffic routing, part 2 (issue 17): the routers that write Ingresses and mesh objects, each
//! walked with the real kubectl through `setWeight 20 → pause → setWeight 60 → pause` to the
//! end and, on a second update, aborted at 60 %, reading the router's own object at every
//! step. A user's edit to a field Sluice does not manage is made mid-walk and checked at the
//! end. Argo CD's verdict is checked at every observation (the helpers of `traffic.rs`).

use std::time::Duration;

use serde_json::Value;

use crate::argocd_oracle::ArgoHealth;
use crate::harness::Env;
use crate::require_kubectl;
use crate::traffic::{
    SERVICES, check_argocd, promote, replica_set, rollout, rollout_yaml_with_routing, selector,
    set_image, wait_paused_at, watch_leaving_after,
};

const T: Duration = Duration::from_secs(90);

/// The walk of the issue, a pause after each weight so every state is observed.
const STEPS: &str =
    "        - setWeight: 20\n        - pause: {}\n        - setWeight: 60\n        - pause: {}\n";

/// One router's view of the walk.
struct RouterWalk<'a> {
    /// (canary, stable) weights the router's objects hold now (`None`: not there yet).
    weights: &'a dyn Fn(&Env) -> Option<(i64, i64)>,
    /// More checks of the router's objects at a pause: (canary weight, stable hash, canary
    /// hash).
    at_pause: &'a dyn Fn(&Env, i64, &str, &str),
    /// A user's edit to a field Sluice does not manage, and the check that it is still there.
    user_edit: &'a dyn Fn(&Env),
    user_edit_kept: &'a dyn Fn(&Env),
}

/// Observe until ReplicaSet `leaving` is scaled to zero, asserting at every observation that it
/// gets its scale-down deadline, or loses a pod, only once the router holds 0 % on the canary.
fn watch_scale_down_after_traffic(
    env: &Env,
    w: &RouterWalk,
    leaving: &str,
    replicas: i64,
) -> Value {
    let (ro, saw_deadline) = watch_leaving_after(
        env,
        leaving,
        replicas,
        |env| (w.weights)(env),
        Some((0, 100)),
    );
    assert!(
        saw_deadline,
        "{leaving} went down without its scale-down-deadline"
    );
    ro
}

/// The walk, once the router's objects and the Rollout are applied: first deploy, an update
/// promoted to the end, a second update aborted at 60 %.
fn walk(env: &Env, w: &RouterWalk) {
    let ro = env.wait_for("first deploy Healthy", T, |env| {
        let ro = rollout(env);
        (check_argocd(&ro) == ArgoHealth::Healthy).then_some(ro)
    });
    let v1 = ro["status"]["stableRS"].as_str().unwrap().to_string();
    env.wait_for("the router at 0/100", T, |env| {
        ((w.weights)(env) == Some((0, 100))).then_some(())
    });
    (w.at_pause)(env, 0, &v1, &v1);
    (w.user_edit)(env);

    set_image(env, "nginx:1.27");
    let ro = wait_paused_at(env, 1);
    let v2 = ro["status"]["currentPodHash"].as_str().unwrap().to_string();
    assert_ne!(v1, v2);
    assert_eq!((w.weights)(env), Some((20, 80)));
    (w.at_pause)(env, 20, &v1, &v2);
    assert_eq!(replica_set(env, &v2).0, 1, "20 % of 4 replicas");
    assert_eq!(replica_set(env, &v1).0, 4, "the stable keeps every replica");
    let weights = &ro["status"]["canary"]["weights"];
    assert_eq!(
        (&weights["canary"]["weight"], &weights["stable"]["weight"]),
        (&Value::from(20), &Value::from(80))
    );

    promote(env);
    wait_paused_at(env, 3);
    assert_eq!((w.weights)(env), Some((60, 40)));
    (w.at_pause)(env, 60, &v1, &v2);
    assert_eq!(replica_set(env, &v2).0, 3, "60 % of 4 replicas");

    // The end: back to 0 % on the canary Service once the stable Service selects v2, and
    // only then does v1 wait out its delay and go.
    promote(env);
    let ro = watch_scale_down_after_traffic(env, w, &v1, 4);
    assert_eq!(ro["status"]["stableRS"], v2.as_str());
    assert_eq!(selector(env, "web-stable"), v2);
    env.wait_for("Healthy after the update", T, |env| {
        let ro = rollout(env);
        (check_argocd(&ro) == ArgoHealth::Healthy).then_some(())
    });
    assert_eq!((w.weights)(env), Some((0, 100)));
    (w.at_pause)(env, 0, &v2, &v2);
    (w.user_edit_kept)(env);

    // Separately, an update aborted at 60 %: traffic back on the stable first, then the canary
    // waits out abortScaleDownDelaySeconds and goes.
    set_image(env, "nginx:1.28");
    let ro = wait_paused_at(env, 1);
    let v3 = ro["status"]["currentPodHash"].as_str().unwrap().to_string();
    assert_eq!((w.weights)(env), Some((20, 80)));
    promote(env);
    wait_paused_at(env, 3);
    assert_eq!((w.weights)(env), Some((60, 40)));
    (w.at_pause)(env, 60, &v2, &v3);
    env.patch_rollout_status("web", r#"{"status":{"abort":true}}"#);
    let ro = watch_scale_down_after_traffic(env, w, &v3, 3);
    assert_eq!(check_argocd(&ro), ArgoHealth::Degraded);
    assert_eq!(ro["status"]["stableRS"], v2.as_str());
    assert_eq!(selector(env, "web-stable"), v2);
    assert_eq!(replica_set(env, &v2).0, 4);
    assert_eq!((w.weights)(env), Some((0, 100)));
    // After an abort the canary's objects still name the aborted version, at 0 %.
    (w.at_pause)(env, 0, &v2, &v3);
    (w.user_edit_kept)(env);
}

// ---------------------------------------------------------------------------------------
// NGINX

/// The stable Ingress `web`: `/` to the stable Service, `/docs` to a Service of its own.
const STABLE_INGRESS: &str = r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  annotations:
    nginx.ingress.kubernetes.io/proxy-body-size: 8m
spec:
  ingressClassName: nginx
  rules:
    - host: web.example.com
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service: {name: web-stable, port: {number: 80}}
          - path: /docs
            pathType: Prefix
            backend:
              service: {name: docs, port: {number: 80}}
"#;

const NGINX_ROUTING: &str = r#"        nginx:
          stableIngress: web
          additionalIngressAnnotations:
            canary-by-cookie: beta
"#;

/// The canary Ingress `web-web-canary`, if it exists.
fn canary_ingress(env: &Env) -> Option<Value> {
    let out = env.kubectl(&["get", "ingress", "web-web-canary", "-o", "json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).expect("kubectl printed JSON"))
}

fn nginx_weights(env: &Env) -> Option<(i64, i64)> {
    let ing = canary_ingress(env)?;
    let w: i64 = ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"]
        .as_str()?
        .parse()
        .ok()?;
    Some((w, 100 - w))
}

fn nginx_at_pause(env: &Env, weight: i64, _stable: &str, _canary: &str) {
    let ing = canary_ingress(env).expect("the canary Ingress");
    let a = &ing["metadata"]["annotations"];
    assert_eq!(a["nginx.ingress.kubernetes.io/canary"], "true");
    assert_eq!(
        a["nginx.ingress.kubernetes.io/canary-weight"],
        weight.to_string()
    );
    assert_eq!(a["nginx.ingress.kubernetes.io/canary-by-cookie"], "beta");
    assert!(
        a.get("nginx.ingress.kubernetes.io/proxy-body-size")
            .is_none(),
        "only the class annotation of the stable Ingress is copied: {a}"
    );
    let owner = &ing["metadata"]["ownerReferences"][0];
    assert_eq!(
        (&owner["kind"], &owner["name"]),
        (&Value::from("Rollout"), &Value::from("web"))
    );
    assert_eq!(owner["controller"], true);
    assert_eq!(ing["spec"]["ingressClassName"], "nginx");
    let paths = &ing["spec"]["rules"][0]["http"]["paths"];
    assert_eq!(paths[0]["backend"]["service"]["name"], "web-canary");
    assert_eq!(paths[1]["backend"]["service"]["name"], "docs");
    // The stable Ingress is never written.
    let stable = env.get_json(&["ingress", "web"]);
    assert_eq!(
        stable["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
        "web-stable"
    );
    assert!(
        stable["metadata"]["annotations"]
            .get("nginx.ingress.kubernetes.io/canary")
            .is_none()
    );
}

/// The user labels the canary Ingress and adds a path to the stable Ingress: the label stays,
/// the path is copied.
fn nginx_user_edit(env: &Env) {
    env.kubectl_ok(&["label", "ingress", "web-web-canary", "team=payments"]);
    env.kubectl_ok(&[
        "annotate",
        "ingress",
        "web-web-canary",
        "example.com/owner=ops",
    ]);
    env.kubectl_ok(&[
        "patch",
        "ingress",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/spec/rules/0/http/paths/-","value":{"path":"/v2","pathType":"Prefix","backend":{"service":{"name":"web-stable","port":{"number":80}}}}}]"#,
    ]);
    env.wait_for("the canary Ingress follows the stable one", T, |env| {
        let ing = canary_ingress(env)?;
        (ing["spec"]["rules"][0]["http"]["paths"][2]["backend"]["service"]["name"] == "web-canary")
            .then_some(())
    });
}

fn nginx_user_edit_kept(env: &Env) {
    let ing = canary_ingress(env).expect("the canary Ingress");
    assert_eq!(ing["metadata"]["labels"]["team"], "payments");
    assert_eq!(ing["metadata"]["annotations"]["example.com/owner"], "ops");
    assert_eq!(ing["spec"]["rules"][0]["http"]["paths"][2]["path"], "/v2");
}

#[test]
fn nginx_canary_ingress_walk() {
    require_kubectl!();
    let env = Env::start("routers_nginx");
    env.apply(SERVICES);
    env.apply(STABLE_INGRESS);
    env.apply(&rollout_yaml_with_routing(
        "nginx:1.26",
        "",
        NGINX_ROUTING,
        STEPS,
    ));
    walk(
        &env,
        &RouterWalk {
            weights: &nginx_weights,
            at_pause: &nginx_at_pause,
            user_edit: &nginx_user_edit,
            user_edit_kept: &nginx_user_edit_kept,
        },
    );
}

#[test]
fn nginx_missing_stable_ingress_is_degraded_naming_it_and_nothing_moves() {
    require_kubectl!();
    let env = Env::start("routers_nginx_missing");
    env.apply(SERVICES);
    env.apply(&rollout_yaml_with_routing(
        "nginx:1.26",
        "",
        NGINX_ROUTING,
        STEPS,
    ));
    let ro = env.wait_for("InvalidSpec", T, |env| {
        let ro = rollout(env);
        (check_argocd(&ro) == ArgoHealth::Degraded).then_some(ro)
    });
    let message = ro["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(
            "InvalidSpec: spec.strategy.canary.trafficRouting.nginx.stableIngress: Ingress "
        ) && message.ends_with("/web not found"),
        "{message}"
    );
    let sets = env.get_json(&["replicasets"]);
    assert_eq!(
        sets["items"].as_array().unwrap().len(),
        0,
        "nothing is created"
    );
    assert!(canary_ingress(&env).is_none(), "no canary Ingress either");

    // An Ingress without a path to the stable Service: refused naming it, nothing written.
    env.apply(&STABLE_INGRESS.replace("name: web-stable", "name: elsewhere"));
    let ro = env.wait_for("InvalidSpec naming spec.rules", T, |env| {
        let ro = rollout(env);
        check_argocd(&ro);
        ro["status"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("/web: spec.rules: no path has the stable Service"))
            .then_some(ro)
    });
    assert_eq!(check_argocd(&ro), ArgoHealth::Degraded);
    assert!(canary_ingress(&env).is_none());

    // Fixed: the Rollout goes on.
    env.apply(STABLE_INGRESS);
    env.wait_for("Healthy once the Ingress routes to the stable", T, |env| {
        let ro = rollout(env);
        (check_argocd(&ro) == ArgoHealth::Healthy).then_some(())
    });
    env.wait_for("the canary Ingress at 0", T, |env| {
        (nginx_weights(env) == Some((0, 100))).then_some(())
    });
}

// ---------------------------------------------------------------------------------------
// Istio

/// Install Istio's networking CRDs (the shared, unmodified file) and wait until served.
fn install_istio(env: &Env) {
    let file = crate::traffic::shared_crds("istio").join("istio-networking-crds.yaml");
    env.kubectl_ok(&["apply", "--server-side", "-f", file.to_str().unwrap()]);
    for crd in ["virtualservices", "destinationrules"] {
        env.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            &format!("crd/{crd}.networking.istio.io"),
        ]);
    }
}

/// Host-level: `primary` splits the two Services, `admin` is the user's own route.
const HOST_VS: &str = r#"apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: web
spec:
  hosts: [web]
  http:
    - name: admin
      match:
        - uri: {prefix: /admin}
      route:
        - destination: {host: web-stable}
    - name: primary
      route:
        - destination: {host: web-stable}
          weight: 100
        - destination: {host: web-canary}
          weight: 0
"#;

/// Subset-level: one host, two subsets.
const SUBSET_VS: &str = r#"apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: web
spec:
  hosts: [web]
  http:
    - name: primary
      route:
        - destination: {host: web, subset: stable}
          weight: 100
        - destination: {host: web, subset: canary}
          weight: 0
"#;

const DESTINATION_RULE: &str = r#"apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: web
spec:
  host: web
  subsets:
    - name: canary
      labels: {app: web}
    - name: stable
      labels: {app: web}
"#;

fn primary_weights(env: &Env) -> Option<(i64, i64)> {
    let out = env.kubectl(&["get", "virtualservice", "web", "-o", "json"]);
    if !out.status.success() {
        return None;
    }
    let vs: Value = serde_json::from_slice(&out.stdout).expect("kubectl printed JSON");
    let primary = vs["spec"]["http"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == "primary")?
        .clone();
    let mut canary = None;
    let mut stable = None;
    for d in primary["route"].as_array()? {
        let dest = &d["destination"];
        let w = d["weight"].as_i64().unwrap_or(0);
        if dest["host"] == "web-canary" || dest["subset"] == "canary" {
            canary = Some(w);
        } else if dest["host"] == "web-stable" || dest["subset"] == "stable" {
            stable = Some(w);
        }
    }
    Some((canary?, stable?))
}

fn vs_user_edit(env: &Env) {
    env.kubectl_ok(&[
        "patch",
        "virtualservice",
        "web",
        "--type=merge",
        "-p",
        r#"{"metadata":{"annotations":{"team":"payments"}},"spec":{"exportTo":["."]}}"#,
    ]);
}

fn vs_user_edit_kept(env: &Env) {
    let vs = env.get_json(&["virtualservice", "web"]);
    assert_eq!(vs["metadata"]["annotations"]["team"], "payments");
    assert_eq!(vs["spec"]["exportTo"][0], ".");
}

fn host_at_pause(env: &Env, _weight: i64, _stable: &str, _canary: &str) {
    let vs = env.get_json(&["virtualservice", "web"]);
    let admin = &vs["spec"]["http"][0];
    assert_eq!(admin["name"], "admin", "the user's route stays first");
    assert_eq!(admin["route"][0]["destination"]["host"], "web-stable");
    assert!(admin["route"][0].get("weight").is_none());
}

#[test]
fn istio_host_level_walk() {
    require_kubectl!();
    let env = Env::start("routers_istio_host");
    install_istio(&env);
    env.apply(SERVICES);
    env.apply(HOST_VS);
    let routing = "        istio:\n          virtualService:\n            name: web\n            routes: [primary]\n";
    env.apply(&rollout_yaml_with_routing("nginx:1.26", "", routing, STEPS));
    walk(
        &env,
        &RouterWalk {
            weights: &primary_weights,
            at_pause: &host_at_pause,
            user_edit: &vs_user_edit,
            user_edit_kept: &vs_user_edit_kept,
        },
    );
}

/// The subsets select the stable and the canary pods by hash at every pause.
fn subset_at_pause(env: &Env, _weight: i64, stable: &str, canary: &str) {
    let dr = env.get_json(&["destinationrule", "web"]);
    let subset = |name: &str| {
        dr["spec"]["subsets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()["labels"]
            .clone()
    };
    assert_eq!(subset("stable")["rollouts-pod-template-hash"], stable);
    assert_eq!(subset("canary")["rollouts-pod-template-hash"], canary);
    assert_eq!(subset("canary")["app"], "web", "the user's labels stay");
    assert_eq!(
        dr["spec"]["trafficPolicy"]["loadBalancer"]["simple"],
        "LEAST_REQUEST"
    );
}

#[test]
fn istio_subset_level_walk() {
    require_kubectl!();
    let env = Env::start("routers_istio_subset");
    install_istio(&env);
    env.apply(SERVICES);
    env.apply(SUBSET_VS);
    env.apply(DESTINATION_RULE);
    env.kubectl_ok(&[
        "patch",
        "destinationrule",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"trafficPolicy":{"loadBalancer":{"simple":"LEAST_REQUEST"}}}}"#,
    ]);
    let routing = "        istio:\n          virtualService:\n            name: web\n            routes: [primary]\n          destinationRule:\n            name: web\n            canarySubsetName: canary\n            stableSubsetName: stable\n";
    env.apply(&rollout_yaml_with_routing("nginx:1.26", "", routing, STEPS));
    walk(
        &env,
        &RouterWalk {
            weights: &primary_weights,
            at_pause: &subset_at_pause,
            user_edit: &vs_user_edit,
            user_edit_kept: &vs_user_edit_kept,
        },
    );
}

#[test]
fn istio_bad_objects_are_degraded_naming_them_and_nothing_moves() {
    require_kubectl!();
    let env = Env::start("routers_istio_bad");
    install_istio(&env);
    env.apply(SERVICES);
    let routing = "        istio:\n          virtualService:\n            name: web\n            routes: [primary]\n";
    env.apply(&rollout_yaml_with_routing("nginx:1.26", "", routing, STEPS));
    let degraded_with = |env: &Env, want: &str| {
        env.wait_for(want, T, |env| {
            let ro = rollout(env);
            let m = ro["status"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            (check_argocd(&ro) == ArgoHealth::Degraded && m.contains(want)).then_some(m)
        })
    };
    let m = degraded_with(&env, "/web not found");
    assert!(
        m.starts_with(
            "InvalidSpec: spec.strategy.canary.trafficRouting.istio.virtualService: VirtualService "
        ),
        "{m}"
    );
    assert_eq!(
        env.get_json(&["replicasets"])["items"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "nothing is created"
    );
    // A VirtualService without the named route.
    env.apply(&HOST_VS.replace("name: primary", "name: main"));
    degraded_with(&env, "spec.http: no HTTP route named \"primary\"");
    // The named route with a third destination.
    env.apply(&HOST_VS.replace(
        "        - destination: {host: web-canary}\n          weight: 0\n",
        "        - destination: {host: web-canary}\n          weight: 0\n        - destination: {host: web}\n          weight: 0\n",
    ));
    degraded_with(
        &env,
        "spec.http[1].route: must have exactly two destinations",
    );
    // Fixed: the Rollout goes on, all on the stable.
    env.apply(HOST_VS);
    env.wait_for("Healthy once the VirtualService is right", T, |env| {
        let ro = rollout(env);
        (check_argocd(&ro) == ArgoHealth::Healthy).then_some(())
    });
    assert_eq!(primary_weights(&env), Some((0, 100)));
}

// ---------------------------------------------------------------------------------------
// Traefik

const TRAEFIK_SERVICE: &str = r#"apiVersion: traefik.io/v1alpha1
kind: TraefikService
metadata:
  name: web
spec:
  weighted:
    services:
      - name: web-stable
        port: 80
        weight: 100
      - name: web-canary
        port: 80
        weight: 0
"#;

fn install_traefik(env: &Env) {
    let file = crate::traffic::shared_crds("traefik").join("traefik.io_traefikservices.yaml");
    env.kubectl_ok(&["apply", "--server-side", "-f", file.to_str().unwrap()]);
    env.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/traefikservices.traefik.io",
    ]);
}

fn traefik_weights(env: &Env) -> Option<(i64, i64)> {
    let out = env.kubectl(&["get", "traefikservice", "web", "-o", "json"]);
    if !out.status.success() {
        return None;
    }
    let ts: Value = serde_json::from_slice(&out.stdout).expect("kubectl printed JSON");
    let services = ts["spec"]["weighted"]["services"].as_array()?;
    let w = |name: &str| {
        services
            .iter()
            .find(|s| s["name"] == name)
            .and_then(|s| s["weight"].as_i64())
    };
    Some((w("web-canary")?, w("web-stable")?))
}

fn traefik_user_edit(env: &Env) {
    env.kubectl_ok(&[
        "patch",
        "traefikservice",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"weighted":{"sticky":{"cookie":{"name":"lb"}}}}}"#,
    ]);
}

fn traefik_user_edit_kept(env: &Env) {
    let ts = env.get_json(&["traefikservice", "web"]);
    assert_eq!(ts["spec"]["weighted"]["sticky"]["cookie"]["name"], "lb");
    assert_eq!(ts["spec"]["weighted"]["services"][0]["port"], 80);
}

#[test]
fn traefik_weighted_service_walk() {
    require_kubectl!();
    let env = Env::start("routers_traefik");
    install_traefik(&env);
    env.apply(SERVICES);
    env.apply(TRAEFIK_SERVICE);
    let routing = "        traefik:\n          weightedTraefikServiceName: web\n";
    env.apply(&rollout_yaml_with_routing("nginx:1.26", "", routing, STEPS));
    walk(
        &env,
        &RouterWalk {
            weights: &traefik_weights,
            at_pause: &|_, _, _, _| {},
            user_edit: &traefik_user_edit,
            user_edit_kept: &traefik_user_edit_kept,
        },
    );
}

#[test]
fn traefik_missing_service_is_degraded_naming_it_and_nothing_moves() {
    require_kubectl!();
    let env = Env::start("routers_traefik_missing");
    install_traefik(&env);
    env.apply(SERVICES);
    let routing = "        traefik:\n          weightedTraefikServiceName: web\n";
    env.apply(&rollout_yaml_with_routing("nginx:1.26", "", routing, STEPS));
    let ro = env.wait_for("InvalidSpec", T, |env| {
        let ro = rollout(env);
        (check_argocd(&ro) == ArgoHealth::Degraded).then_some(ro)
    });
    let m = ro["status"]["message"].as_str().unwrap_or_default();
    assert!(
        m.starts_with("InvalidSpec: spec.strategy.canary.trafficRouting.traefik.weightedTraefikServiceName: TraefikService ")
            && m.ends_with("/web not found"),
        "{m}"
    );
    assert_eq!(
        env.get_json(&["replicasets"])["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    env.apply(TRAEFIK_SERVICE);
    env.wait_for("Healthy once the TraefikService exists", T, |env| {
        let ro = rollout(env);
        (check_argocd(&ro) == ArgoHealth::Healthy).then_some(())
    });
}

// ---------------------------------------------------------------------------------------
// AWS ALB

/// The Ingress the AWS Load Balancer Controller serves: `/` to the stable Service's action.
const ALB_INGRESS: &str = r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  annotations:
    alb.ingress.kubernetes.io/scheme: internet-facing
spec:
  ingressClassName: alb
  rules:
    - http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service: {name: web-stable, port: {name: use-annotation}}
"#;

const ALB_ACTION: &str = "alb.ingress.kubernetes.io/actions.web-stable";

fn alb_weights(env: &Env) -> Option<(i64, i64)> {
    let ing = env.get_json(&["ingress", "web"]);
    let action = ing["metadata"]["annotations"][ALB_ACTION].as_str()?;
    let (c, s) = alb_action_weights(action)?;
    Some((c, s))
}

/// (canary, stable) weights of an action, checking its exact JSON on the way.
fn alb_action_weights(action: &str) -> Option<(i64, i64)> {
    let v: Value = serde_json::from_str(action).ok()?;
    let groups = v["ForwardConfig"]["TargetGroups"].as_array()?;
    let (c, s) = (groups[0]["Weight"].as_i64()?, groups[1]["Weight"].as_i64()?);
    assert_eq!(
        action,
        format!(
            r#"{{"Type":"forward","ForwardConfig":{{"TargetGroups":[{{"ServiceName":"web-canary","ServicePort":"80","Weight":{c}}},{{"ServiceName":"web-stable","ServicePort":"80","Weight":{s}}}],"TargetGroupStickinessConfig":{{"Enabled":true,"DurationSeconds":300}}}}}}"#
        ),
        "upstream's JSON, key for key"
    );
    Some((c, s))
}

fn alb_at_pause(env: &Env, _weight: i64, _stable: &str, _canary: &str) {
    let ing = env.get_json(&["ingress", "web"]);
    assert_eq!(
        ing["metadata"]["annotations"]["rollouts.argoproj.io/managed-alb-annotations"],
        format!(r#"{{"web":["{ALB_ACTION}"]}}"#)
    );
    assert_eq!(
        ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["name"],
        "use-annotation",
        "the spec is never written"
    );
    let ro = rollout(env);
    assert!(
        ro["status"]["canary"]["weights"].get("verified").is_none(),
        "the weight is never reported as verified against AWS: {}",
        ro["status"]["canary"]
    );
}

fn alb_user_edit(env: &Env) {
    env.kubectl_ok(&[
        "annotate",
        "ingress",
        "web",
        "alb.ingress.kubernetes.io/healthcheck-path=/healthz",
    ]);
}

fn alb_user_edit_kept(env: &Env) {
    let ing = env.get_json(&["ingress", "web"]);
    let a = &ing["metadata"]["annotations"];
    assert_eq!(a["alb.ingress.kubernetes.io/healthcheck-path"], "/healthz");
    assert_eq!(a["alb.ingress.kubernetes.io/scheme"], "internet-facing");
}

const ALB_ROUTING: &str = "        alb:\n          ingress: web\n          servicePort: 80\n          stickinessConfig:\n            enabled: true\n            durationSeconds: 300\n";

#[test]
fn alb_forward_action_walk() {
    require_kubectl!();
    let env = Env::start("routers_alb");
    env.apply(SERVICES);
    env.apply(ALB_INGRESS);
    env.apply(&rollout_yaml_with_routing(
        "nginx:1.26",
        "",
        ALB_ROUTING,
        STEPS,
    ));
    walk(
        &env,
        &RouterWalk {
            weights: &alb_weights,
            at_pause: &alb_at_pause,
            user_edit: &alb_user_edit,
            user_edit_kept: &alb_user_edit_kept,
        },
    );
}

#[test]
fn alb_ingress_without_the_stable_backend_is_degraded_naming_it() {
    require_kubectl!();
    let env = Env::start("routers_alb_bad");
    env.apply(SERVICES);
    env.apply(&ALB_INGRESS.replace("name: web-stable", "name: elsewhere"));
    env.apply(&rollout_yaml_with_routing(
        "nginx:1.26",
        "",
        ALB_ROUTING,
        STEPS,
    ));
    let ro = env.wait_for("InvalidSpec", T, |env| {
        let ro = rollout(env);
        (check_argocd(&ro) == ArgoHealth::Degraded).then_some(ro)
    });
    let m = ro["status"]["message"].as_str().unwrap_or_default();
    assert!(
        m.starts_with("InvalidSpec: spec.strategy.canary.trafficRouting.alb.ingress: Ingress ")
            && m.contains(
                "/web: spec.rules: no path has the Service \"web-stable\" as its backend"
            ),
        "{m}"
    );
    assert_eq!(
        env.get_json(&["replicasets"])["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let ing = env.get_json(&["ingress", "web"]);
    assert!(
        ing["metadata"]["annotations"].get(ALB_ACTION).is_none(),
        "nothing written"
    );
    env.apply(ALB_INGRESS);
    env.wait_for("Healthy once the Ingress is right", T, |env| {
        let ro = rollout(env);
        (check_argocd(&ro) == ArgoHealth::Healthy).then_some(())
    });
    env.wait_for("the action at 0/100", T, |env| {
        (alb_weights(env) == Some((0, 100))).then_some(())
    });
}

// ---------------------------------------------------------------------------------------
// The docs

/// The canary weight a router's object of the docs' example holds in namespace `ns`.
fn doc_weight(env: &Env, ns: &str, section: &str) -> Option<i64> {
    let get = |what: &[&str]| -> Option<Value> {
        let mut args = vec!["-n", ns, "get"];
        args.extend_from_slice(what);
        args.extend_from_slice(&["-o", "json"]);
        let out = env.kubectl(&args);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).expect("kubectl printed JSON"))
    };
    match section {
        "## NGINX Ingress" => get(&["ingress", "shop-shop-canary"])?["metadata"]["annotations"]
            ["nginx.ingress.kubernetes.io/canary-weight"]
            .as_str()?
            .parse()
            .ok(),
        "## Istio" => {
            let vs = get(&["virtualservice", "shop"])?;
            vs["spec"]["http"][0]["route"]
                .as_array()?
                .iter()
                .find(|d| d["destination"]["subset"] == "canary")?["weight"]
                .as_i64()
        }
        "## AWS Load Balancer Controller (ALB)" => {
            let ing = get(&["ingress", "shop"])?;
            let action = ing["metadata"]["annotations"]["alb.ingress.kubernetes.io/actions.shop-stable"]
                .as_str()?
                .to_string();
            alb_canary_weight(&action, "shop-canary")
        }
        "## Traefik" => get(&["traefikservice", "shop"])?["spec"]["weighted"]["services"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == "shop-canary")?["weight"]
            .as_i64(),
        other => panic!("no router section {other}"),
    }
}

fn alb_canary_weight(action: &str, canary: &str) -> Option<i64> {
    let v: Value = serde_json::from_str(action).ok()?;
    v["ForwardConfig"]["TargetGroups"]
        .as_array()?
        .iter()
        .find(|g| g["ServiceName"] == canary)?["Weight"]
        .as_i64()
}

/// Each router section of docs/traffic-routing.md: its manifest applies as is (in a namespace
/// of its own), the Rollout becomes Healthy with the router at 0 % on the canary, and an
/// update pauses at 20 %.
#[test]
fn the_router_manifests_of_the_docs_apply_as_is() {
    require_kubectl!();
    let env = Env::start("routers_docs");
    install_istio(&env);
    install_traefik(&env);
    let doc = std::fs::read_to_string(crate::harness::repo_root().join("docs/traffic-routing.md"))
        .unwrap();
    let sections = [
        "## NGINX Ingress",
        "## Istio",
        "## AWS Load Balancer Controller (ALB)",
        "## Traefik",
    ];
    for (i, section) in sections.iter().enumerate() {
        let blocks = crate::blue_green::code_blocks(&doc, section);
        let (_, manifest) = blocks
            .iter()
            .find(|(lang, body)| lang == "yaml" && body.contains("kind: Rollout"))
            .unwrap_or_else(|| panic!("{section} shows a manifest"));
        let ns = format!("{}-doc{i}", env.namespace);
        env.kubectl_ok(&["create", "namespace", &ns]);
        let path = std::env::temp_dir().join(format!("{ns}.yaml"));
        std::fs::write(&path, manifest).unwrap();
        env.kubectl_ok(&["-n", &ns, "apply", "-f", path.to_str().unwrap()]);
        let _ = std::fs::remove_file(&path);
        let get_rollout = |env: &Env| {
            serde_json::from_str::<Value>(
                &env.kubectl_ok(&["-n", &ns, "get", "rollout", "shop", "-o", "json"]),
            )
            .unwrap()
        };
        env.wait_for(&format!("{section}: Healthy at 0 %"), T, |env| {
            let ro = get_rollout(env);
            (check_argocd(&ro) == ArgoHealth::Healthy && doc_weight(env, &ns, section) == Some(0))
                .then_some(())
        });
        env.kubectl_ok(&[
            "-n",
            &ns,
            "patch",
            "rollout",
            "shop",
            "--type=merge",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"shop","image":"nginx:1.27"}]}}}}"#,
        ]);
        env.wait_for(&format!("{section}: paused at 20 %"), T, |env| {
            let ro = get_rollout(env);
            (check_argocd(&ro) == ArgoHealth::Suspended
                && ro["status"]["currentStepIndex"] == 1
                && doc_weight(env, &ns, section) == Some(20))
            .then_some(())
        });
    }
}

/// An ALB header route: its action, condition and path while the steps hold it, none of them
/// after the end; the user's Ingress as it was.
#[test]
fn alb_header_route_adds_its_action_condition_and_path_and_removes_them() {
    require_kubectl!();
    let env = Env::start("routers_alb_header");
    env.apply(SERVICES);
    env.apply(ALB_INGRESS);
    let routing = format!("{ALB_ROUTING}        managedRoutes:\n          - name: testers\n");
    let steps = "        - setWeight: 20\n        - setHeaderRoute:\n            name: testers\n            match:\n              - headerName: x-canary\n                headerValue: {exact: \"yes\"}\n        - pause: {}\n";
    env.apply(&rollout_yaml_with_routing(
        "nginx:1.26",
        "",
        &routing,
        steps,
    ));
    env.wait_for("Healthy", T, |env| {
        let ro = rollout(env);
        (check_argocd(&ro) == ArgoHealth::Healthy).then_some(())
    });
    let before = env.get_json(&["ingress", "web"])["spec"].clone();
    set_image(&env, "nginx:1.27");
    wait_paused_at(&env, 2);
    let ing = env.get_json(&["ingress", "web"]);
    let a = &ing["metadata"]["annotations"];
    assert_eq!(
        a["alb.ingress.kubernetes.io/conditions.testers"],
        r#"[{"field":"http-header","httpHeaderConfig":{"httpHeaderName":"x-canary","values":["yes"]}}]"#
    );
    assert_eq!(
        a["alb.ingress.kubernetes.io/actions.testers"],
        r#"{"Type":"forward","ForwardConfig":{"TargetGroups":[{"ServiceName":"web-canary","ServicePort":"80","Weight":100}],"TargetGroupStickinessConfig":{"Enabled":true,"DurationSeconds":300}}}"#
    );
    let paths = &ing["spec"]["rules"][0]["http"]["paths"];
    assert_eq!(paths[0]["path"], "/*");
    assert_eq!(paths[0]["backend"]["service"]["name"], "testers");
    assert_eq!(
        paths[0]["backend"]["service"]["port"]["name"],
        "use-annotation"
    );
    assert_eq!(paths[1], before["rules"][0]["http"]["paths"][0]);
    assert_eq!(alb_weights(&env), Some((20, 80)));

    promote(&env);
    env.wait_for("the header route gone at the end", T, |env| {
        let ing = env.get_json(&["ingress", "web"]);
        let a = &ing["metadata"]["annotations"];
        let ro = rollout(env);
        (check_argocd(&ro) == ArgoHealth::Healthy
            && a.get("alb.ingress.kubernetes.io/conditions.testers")
                .is_none()
            && a.get("alb.ingress.kubernetes.io/actions.testers").is_none()
            && ing["spec"] == before
            && alb_weights(env) == Some((0, 100)))
        .then_some(())
    });
}

/// An NGINX header route: `canary-by-header` and `canary-by-header-value` on the canary
/// Ingress while the steps hold it, gone after the end.
#[test]
fn nginx_header_route_sets_canary_by_header_and_removes_it() {
    require_kubectl!();
    let env = Env::start("routers_nginx_header");
    env.apply(SERVICES);
    env.apply(STABLE_INGRESS);
    let routing = format!("{NGINX_ROUTING}        managedRoutes:\n          - name: testers\n");
    let steps = "        - setWeight: 20\n        - setHeaderRoute:\n            name: testers\n            match:\n              - headerName: x-canary\n                headerValue: {exact: \"yes\"}\n        - pause: {}\n";
    env.apply(&rollout_yaml_with_routing(
        "nginx:1.26",
        "",
        &routing,
        steps,
    ));
    env.wait_for("Healthy", T, |env| {
        let ro = rollout(env);
        (check_argocd(&ro) == ArgoHealth::Healthy).then_some(())
    });
    set_image(&env, "nginx:1.27");
    wait_paused_at(&env, 2);
    let ing = canary_ingress(&env).expect("the canary Ingress");
    let a = &ing["metadata"]["annotations"];
    assert_eq!(
        a["nginx.ingress.kubernetes.io/canary-by-header"],
        "x-canary"
    );
    assert_eq!(
        a["nginx.ingress.kubernetes.io/canary-by-header-value"],
        "yes"
    );
    assert_eq!(nginx_weights(&env), Some((20, 80)));
    promote(&env);
    env.wait_for("the header annotations gone at the end", T, |env| {
        let ing = canary_ingress(env)?;
        let a = &ing["metadata"]["annotations"];
        let ro = rollout(env);
        (check_argocd(&ro) == ArgoHealth::Healthy
            && a.get("nginx.ingress.kubernetes.io/canary-by-header")
                .is_none()
            && a.get("nginx.ingress.kubernetes.io/canary-by-header-value")
                .is_none()
            && nginx_weights(env) == Some((0, 100)))
        .then_some(())
    });
}

/// Istio header and mirror routes: named after the managed routes, first in `spec.http`
/// while the steps hold them, gone after an abort.
#[test]
fn istio_header_and_mirror_routes_come_first_and_go_on_abort() {
    require_kubectl!();
    let env = Env::start("routers_istio_managed");
    install_istio(&env);
    env.apply(SERVICES);
    env.apply(HOST_VS);
    let routing = "        managedRoutes:\n          - name: testers\n          - name: shadow\n        istio:\n          virtualService:\n            name: web\n            routes: [primary]\n";
    let steps = "        - setWeight: 20\n        - setHeaderRoute:\n            name: testers\n            match:\n              - headerName: x-canary\n                headerValue: {exact: \"yes\"}\n        - setMirrorRoute:\n            name: shadow\n            percentage: 25\n            match:\n              - method: {exact: GET}\n        - pause: {}\n";
    env.apply(&rollout_yaml_with_routing("nginx:1.26", "", routing, steps));
    env.wait_for("Healthy", T, |env| {
        let ro = rollout(env);
        (check_argocd(&ro) == ArgoHealth::Healthy).then_some(())
    });
    set_image(&env, "nginx:1.27");
    wait_paused_at(&env, 3);
    let vs = env.get_json(&["virtualservice", "web"]);
    let http = vs["spec"]["http"].as_array().unwrap();
    let names: Vec<&str> = http.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["testers", "shadow", "admin", "primary"]);
    assert_eq!(http[0]["match"][0]["headers"]["x-canary"]["exact"], "yes");
    assert_eq!(http[0]["route"][0]["destination"]["host"], "web-canary");
    assert_eq!(http[1]["match"][0]["method"]["exact"], "GET");
    assert_eq!(http[1]["mirror"]["host"], "web-canary");
    assert_eq!(http[1]["mirrorPercentage"]["value"].as_f64(), Some(25.0));
    assert_eq!(primary_weights(&env), Some((20, 80)));
    env.patch_rollout_status("web", r#"{"status":{"abort":true}}"#);
    env.wait_for("the managed routes gone after the abort", T, |env| {
        let vs = env.get_json(&["virtualservice", "web"]);
        let names: Vec<String> = vs["spec"]["http"]
            .as_array()?
            .iter()
            .map(|r| r["name"].as_str().unwrap_or("").to_string())
            .collect();
        (names == ["admin", "primary"] && primary_weights(env) == Some((0, 100))).then_some(())
    });
}
