//! Traffic routing: what every router must hold, decided without knowing the router.
//!
//! A routed canary moves traffic with a router (the Gateway API's route objects, an SMI
//! TrafficSplit) instead of with replica counts alone. The planner decides one
//! router-independent [`TrafficHold`] (the canary's and the stable's weights, the managed
//! header and mirror routes) and each router module says what its object must look like to
//! hold it:
//! - [`gateway`]: HTTPRoute, GRPCRoute and TCPRoute (`plugins["argoproj-labs/gatewayAPI"]`),
//!   north/south with a Gateway parent and east/west (GAMMA) with a Service parent alike;
//! - [`smi`]: an SMI TrafficSplit the Rollout creates and owns (`trafficRouting.smi`);
//! - [`nginx`]: a canary Ingress the Rollout creates and owns for each stable Ingress
//!   (`trafficRouting.nginx`), read for ingress-nginx's canary annotations;
//! - [`istio`]: VirtualService weights (host or subset level) and the DestinationRule's
//!   subset labels (`trafficRouting.istio`);
//! - [`traefik`]: the weights of a weighted TraefikService (`trafficRouting.traefik`);
//! - [`alb`]: the AWS Load Balancer Controller's forward action annotation on an Ingress
//!   (`trafficRouting.alb`).
//!
//! Each router function is pure over the object as JSON: given the observed object it returns
//! the JSON patch that makes it hold the plan (or nothing, when it already does: the weight is
//! then *verified*, read back from the object rather than assumed from a write). A patch
//! carries a `test` of the part it rewrites, so an edit someone made meanwhile fails the
//! write instead of being overwritten. The planner stage that uses them is [`planner`].

pub mod alb;
pub mod gateway;
pub mod istio;
pub mod nginx;
mod planner;
pub mod smi;
pub mod traefik;

pub(crate) use planner::RoutedState;

use std::collections::BTreeMap;

use serde_json::Value;

use sluice_api::rollout::{
    CanaryStep, HeaderRoutingMatch, Rollout, RolloutTrafficRouting, SetMirrorRoute,
};

use super::validate::InvalidSpec;

/// The `trafficRouting.plugins` key of the Gateway API router (the upstream plugin's name).
pub const GATEWAY_API_PLUGIN: &str = "argoproj-labs/gatewayAPI";

/// Default `trafficRouting.maxTrafficWeight`.
pub const DEFAULT_MAX_TRAFFIC_WEIGHT: i32 = 100;

/// The kinds of object a router writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteKind {
    HttpRoute,
    GrpcRoute,
    TcpRoute,
    TrafficSplit,
    Ingress,
    VirtualService,
    DestinationRule,
    TraefikService,
}

impl RouteKind {
    pub fn kind(self) -> &'static str {
        match self {
            RouteKind::HttpRoute => "HTTPRoute",
            RouteKind::GrpcRoute => "GRPCRoute",
            RouteKind::TcpRoute => "TCPRoute",
            RouteKind::TrafficSplit => "TrafficSplit",
            RouteKind::Ingress => "Ingress",
            RouteKind::VirtualService => "VirtualService",
            RouteKind::DestinationRule => "DestinationRule",
            RouteKind::TraefikService => "TraefikService",
        }
    }

    pub fn group(self) -> &'static str {
        match self {
            RouteKind::TrafficSplit => "split.smi-spec.io",
            RouteKind::Ingress => "networking.k8s.io",
            RouteKind::VirtualService | RouteKind::DestinationRule => "networking.istio.io",
            RouteKind::TraefikService => "traefik.io",
            _ => "gateway.networking.k8s.io",
        }
    }

    /// The version Sluice reads and writes (the standard channel's where there is one;
    /// TCPRoute is experimental). A TrafficSplit is read in the version its CRD serves
    /// (v1alpha2 to v1alpha4 share the shape Sluice writes): `None` here, the controller asks
    /// the API server.
    pub fn version(self) -> Option<&'static str> {
        match self {
            RouteKind::HttpRoute | RouteKind::GrpcRoute | RouteKind::Ingress => Some("v1"),
            RouteKind::TcpRoute => Some("v1alpha2"),
            // The version upstream writes; every Istio release serves it.
            RouteKind::VirtualService | RouteKind::DestinationRule => Some("v1alpha3"),
            RouteKind::TraefikService => Some("v1alpha1"),
            RouteKind::TrafficSplit => None,
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            RouteKind::HttpRoute => "httproutes",
            RouteKind::GrpcRoute => "grpcroutes",
            RouteKind::TcpRoute => "tcproutes",
            RouteKind::TrafficSplit => "trafficsplits",
            RouteKind::Ingress => "ingresses",
            RouteKind::VirtualService => "virtualservices",
            RouteKind::DestinationRule => "destinationrules",
            RouteKind::TraefikService => "traefikservices",
        }
    }

    /// Whether its rules can carry header matches and request-mirror filters.
    pub fn has_http_rules(self) -> bool {
        matches!(self, RouteKind::HttpRoute | RouteKind::GrpcRoute)
    }
}

/// One route object a Rollout routes through.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteRef {
    pub kind: RouteKind,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for RouteRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind.kind(), self.namespace, self.name)
    }
}

/// A route as the spec names it: where, whether `setHeaderRoute` steps add their rules to
/// it, and the spec field that names it (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedObject {
    pub route: RouteRef,
    pub header_routes: bool,
    pub field: String,
    pub role: RouteRole,
}

/// What Sluice does with a route object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteRole {
    /// Sets the weights it holds (a Gateway API route, an SMI TrafficSplit), by its kind.
    Route,
    /// Reads it, never writes it: an NGINX stable Ingress the canary Ingress copies.
    NginxStable,
    /// Creates, owns and writes it: the NGINX canary Ingress copied from `stable`.
    NginxCanary { stable: RouteRef },
    /// Sets the weights of its named routes: the `index`th Istio VirtualService of the spec.
    IstioVirtualService { index: usize },
    /// Sets its canary and stable subsets' pod-template-hash labels.
    IstioDestinationRule,
    /// Sets its ALB forward action annotation (an Ingress the user owns).
    AlbIngress,
}

/// A Rollout's traffic routing, read from its spec and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Routing<'a> {
    pub canary_service: &'a str,
    pub stable_service: &'a str,
    /// The total the weights add up to (`maxTrafficWeight`, default 100).
    pub max_weight: i32,
    pub routes: Vec<RoutedObject>,
    /// `managedRoutes` names, in precedence order.
    pub managed_routes: Vec<&'a str>,
    /// The SMI root Service (`smi.rootService`, default the stable Service), with SMI.
    pub smi_root: Option<&'a str>,
    /// The NGINX settings, with NGINX.
    pub nginx: Option<nginx::Config<'a>>,
    /// The Istio settings, with Istio.
    pub istio: Option<istio::Config<'a>>,
    /// The ALB settings, with ALB.
    pub alb: Option<alb::Config<'a>>,
}

/// What every router must hold at a moment of the update: router-independent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrafficHold {
    /// The canary Service's weight; the stable Service gets `max_weight - canary_weight`.
    pub canary_weight: i32,
    pub max_weight: i32,
    /// Managed header routes (`setHeaderRoute`), in `managedRoutes` order.
    pub header_routes: Vec<HeaderRoute>,
    /// Managed mirror routes (`setMirrorRoute`), in `managedRoutes` order.
    pub mirror_routes: Vec<MirrorRoute>,
    /// The pod-template hashes of the canary and the stable ReplicaSet (for routers that
    /// select pods themselves: Istio's DestinationRule subsets). Empty: not known.
    pub canary_hash: String,
    pub stable_hash: String,
}

impl TrafficHold {
    pub fn stable_weight(&self) -> i32 {
        self.max_weight - self.canary_weight
    }

    /// Holds no managed route: what the end of an update and an abort leave.
    pub fn is_plain(&self) -> bool {
        self.header_routes.is_empty() && self.mirror_routes.is_empty()
    }
}

/// A managed route sending requests with these headers to the canary.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderRoute {
    pub name: String,
    pub matches: Vec<HeaderRoutingMatch>,
}

/// A managed route mirroring matching requests to the canary.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorRoute {
    pub name: String,
    pub step: SetMirrorRoute,
}

/// Where `trafficRouting` fields live, for messages.
const F: &str = "spec.strategy.canary.trafficRouting";

fn invalid(field: impl Into<String>, message: impl Into<String>) -> InvalidSpec {
    InvalidSpec {
        field: field.into(),
        message: message.into(),
    }
}

/// The routers upstream has that Sluice does not run yet: `(field, name)`.
fn unsupported_routers(tr: &RolloutTrafficRouting) -> Option<&'static str> {
    let present = [
        ("ambassador", tr.ambassador.is_some()),
        ("appMesh", tr.app_mesh.is_some()),
        ("apisix", tr.apisix.is_some()),
    ];
    present.into_iter().find(|(_, p)| *p).map(|(name, _)| name)
}

/// The Rollout's traffic routing (`None` without `trafficRouting`), or why it cannot run:
/// a router Sluice does not implement, a plugin config it cannot read, missing or shared
/// Services, weights and managed routes the steps cannot use.
pub fn routing(rollout: &Rollout) -> Result<Option<Routing<'_>>, InvalidSpec> {
    let Some(canary) = rollout.spec.canary() else {
        return Ok(None);
    };
    let Some(tr) = canary.traffic_routing.as_ref() else {
        return Ok(None);
    };
    let smi = tr.smi.as_ref();
    if let Some(name) = unsupported_routers(tr) {
        return Err(invalid(
            format!("{F}.{name}"),
            format!(
                "the {name} traffic router is not supported by Sluice yet (supported: plugins[\"{GATEWAY_API_PLUGIN}\"], smi, nginx, istio, traefik, alb)"
            ),
        ));
    }
    let canary_service = canary.canary_service.as_deref().unwrap_or_default();
    let stable_service = canary.stable_service.as_deref().unwrap_or_default();
    // Upstream's InvalidTrafficRoutingMessage, stableService first as upstream lists it.
    for (field, name) in [
        ("spec.strategy.canary.stableService", stable_service),
        ("spec.strategy.canary.canaryService", canary_service),
    ] {
        if name.is_empty() {
            return Err(invalid(
                field,
                "Canary service and Stable service must to be set to use Traffic Routing",
            ));
        }
    }
    if canary_service == stable_service {
        return Err(invalid(
            "spec.strategy.canary.stableService",
            "This rollout uses the same service for the stable and canary services, but two different services are required.",
        ));
    }
    let max_weight = tr.max_traffic_weight.unwrap_or(DEFAULT_MAX_TRAFFIC_WEIGHT);
    if max_weight <= 0 {
        return Err(invalid(
            format!("{F}.maxTrafficWeight"),
            format!("must be greater than 0, got {max_weight}"),
        ));
    }
    let namespace = rollout.metadata.namespace.as_deref().unwrap_or_default();
    let mut routes = Vec::new();
    for (plugin, config) in tr.plugins.iter().flatten() {
        if plugin != GATEWAY_API_PLUGIN {
            return Err(invalid(
                format!("{F}.plugins[\"{plugin}\"]"),
                format!(
                    "the traffic router plugin {plugin:?} is not supported by Sluice (supported: \"{GATEWAY_API_PLUGIN}\", run in-process)"
                ),
            ));
        }
        routes.extend(gateway::routes(config, namespace)?);
    }
    if let Some(smi) = smi {
        let name = smi
            .traffic_split_name
            .as_deref()
            .filter(|n| !n.is_empty())
            .or(rollout.metadata.name.as_deref())
            .unwrap_or_default();
        routes.push(RoutedObject {
            route: RouteRef {
                kind: RouteKind::TrafficSplit,
                namespace: namespace.to_string(),
                name: name.to_string(),
            },
            header_routes: false,
            field: format!("{F}.smi"),
            role: RouteRole::Route,
        });
    }
    if let Some(n) = &tr.nginx {
        let name = rollout.metadata.name.as_deref().unwrap_or_default();
        routes.extend(nginx::routes(n, name, namespace)?);
    }
    if let Some(t) = &tr.traefik {
        let field = format!("{F}.traefik.weightedTraefikServiceName");
        if t.weighted_traefik_service_name.is_empty() {
            return Err(invalid(
                field,
                "is required: name the weighted TraefikService that splits the canary and the stable Service",
            ));
        }
        routes.push(RoutedObject {
            route: RouteRef {
                kind: RouteKind::TraefikService,
                namespace: namespace.to_string(),
                name: t.weighted_traefik_service_name.clone(),
            },
            header_routes: false,
            field,
            role: RouteRole::Route,
        });
    }
    let alb = match &tr.alb {
        Some(a) => {
            let (config, objects) = alb::routes(a, stable_service, namespace)?;
            routes.extend(objects);
            Some(config)
        }
        None => None,
    };
    let istio = match &tr.istio {
        Some(i) => {
            let (config, objects) = istio::routes(i, namespace)?;
            routes.extend(objects);
            Some(config)
        }
        None => None,
    };
    if routes.is_empty() {
        return Err(invalid(
            F.to_string(),
            format!(
                "names no router: set plugins[\"{GATEWAY_API_PLUGIN}\"] with httpRoute, httpRoutes, grpcRoute(s) or tcpRoute(s), smi, nginx, istio, traefik or alb"
            ),
        ));
    }
    let managed_routes: Vec<&str> = tr
        .managed_routes
        .iter()
        .flatten()
        .map(|r| r.name.as_str())
        .collect();
    for (i, name) in managed_routes.iter().enumerate() {
        if !is_dns_label(name) {
            return Err(invalid(
                format!("{F}.managedRoutes[{i}].name"),
                format!(
                    "{name:?} must be a DNS label (lowercase letters, digits and '-', at most 63 characters): it names the route rule Sluice adds"
                ),
            ));
        }
        if managed_routes[..i].contains(name) {
            return Err(invalid(
                format!("{F}.managedRoutes[{i}].name"),
                format!("{name:?} is listed twice"),
            ));
        }
    }
    if smi.is_some() && max_weight != DEFAULT_MAX_TRAFFIC_WEIGHT {
        return Err(invalid(
            format!("{F}.maxTrafficWeight"),
            "SMI splits traffic out of 100: leave maxTrafficWeight unset with smi",
        ));
    }
    let smi_root = smi.map(|s| {
        s.root_service
            .as_deref()
            .filter(|r| !r.is_empty())
            .unwrap_or(stable_service)
    });
    let nginx = tr
        .nginx
        .as_ref()
        .map(|n| nginx::Config::new(n, tr.max_traffic_weight));
    if nginx.is_some() && managed_routes.len() > 1 {
        return Err(invalid(
            format!("{F}.managedRoutes"),
            "an NGINX canary Ingress holds one header route: list at most one managed route with nginx",
        ));
    }
    let routing = Routing {
        canary_service,
        stable_service,
        max_weight,
        routes,
        managed_routes,
        smi_root,
        nginx,
        istio,
        alb,
    };
    for (i, step) in rollout.spec.steps().iter().enumerate() {
        routing.validate_step(i, step)?;
    }
    Ok(Some(routing))
}

/// Kubernetes' DNS-1123 label.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl Routing<'_> {
    /// A step's traffic fields: weights within `maxTrafficWeight`, header and mirror routes
    /// that `managedRoutes` lists, with matches a router can express.
    fn validate_step(&self, i: usize, step: &CanaryStep) -> Result<(), InvalidSpec> {
        let field = format!("spec.strategy.canary.steps[{i}]");
        if let Some(w) = step.set_weight
            && w > self.max_weight
        {
            return Err(invalid(
                format!("{field}.setWeight"),
                format!(
                    "{w} is more than trafficRouting.maxTrafficWeight ({})",
                    self.max_weight
                ),
            ));
        }
        if let Some(scale) = &step.set_canary_scale {
            let f = format!("{field}.setCanaryScale");
            if let Some(w) = scale.weight.filter(|w| !(0..=100).contains(w)) {
                return Err(invalid(
                    format!("{f}.weight"),
                    format!("must be between 0 and 100, got {w}"),
                ));
            }
            if let Some(r) = scale.replicas.filter(|r| *r < 0) {
                return Err(invalid(
                    format!("{f}.replicas"),
                    format!("must be greater than or equal to 0, got {r}"),
                ));
            }
            let set = [
                scale.weight.is_some(),
                scale.replicas.is_some(),
                scale.match_traffic_weight == Some(true),
            ];
            if set.iter().filter(|s| **s).count() != 1 {
                return Err(invalid(
                    f,
                    "must set exactly one of weight, replicas or matchTrafficWeight: true",
                ));
            }
        }
        if let Some(h) = &step.set_header_route {
            let name = h.name.as_deref().unwrap_or_default();
            self.check_managed(&format!("{field}.setHeaderRoute.name"), name)?;
            if self.alb.is_some()
                && let Some(j) = h
                    .match_
                    .iter()
                    .flatten()
                    .position(|m| m.header_value.exact.is_none())
            {
                return Err(invalid(
                    format!("{field}.setHeaderRoute.match[{j}].headerValue"),
                    "an ALB header condition matches values exactly: use exact",
                ));
            }
            if !self.routes.iter().any(|r| r.header_routes) {
                return Err(invalid(
                    format!("{field}.setHeaderRoute"),
                    "no route takes header routes: name one with httpRoute or grpcRoute, or set useHeaderRoutes: true on an httpRoutes or grpcRoutes entry",
                ));
            }
            if self.nginx.is_some() && h.match_.as_ref().is_some_and(|m| m.len() > 1) {
                return Err(invalid(
                    format!("{field}.setHeaderRoute.match"),
                    "an NGINX canary Ingress matches one header (canary-by-header): give one match",
                ));
            }
            for (j, m) in h.match_.iter().flatten().enumerate() {
                let f = format!("{field}.setHeaderRoute.match[{j}]");
                if m.header_name.is_empty() {
                    return Err(invalid(format!("{f}.headerName"), "must not be empty"));
                }
                check_string_match(&format!("{f}.headerValue"), &m.header_value)?;
            }
        }
        if let Some(m) = &step.set_mirror_route {
            self.check_managed(&format!("{field}.setMirrorRoute.name"), &m.name)?;
            if self.nginx.is_some() {
                return Err(invalid(
                    format!("{field}.setMirrorRoute"),
                    "ingress-nginx has no mirror routes for a canary Ingress",
                ));
            }
            if self.alb.is_some() {
                return Err(invalid(
                    format!("{field}.setMirrorRoute"),
                    "an ALB has no mirror routes",
                ));
            }
            if !self.routes.iter().any(|r| r.header_routes) {
                return Err(invalid(
                    format!("{field}.setMirrorRoute"),
                    "no route takes managed routes: name one with httpRoute or grpcRoute, or set useHeaderRoutes: true on an httpRoutes or grpcRoutes entry",
                ));
            }
            let grpc = self
                .routes
                .iter()
                .any(|r| r.header_routes && r.route.kind == RouteKind::GrpcRoute);
            let http_only = m
                .match_
                .iter()
                .flatten()
                .position(|rm| rm.method.is_some() || rm.path.is_some());
            if let (true, Some(j)) = (grpc, http_only) {
                return Err(invalid(
                    format!("{field}.setMirrorRoute.match[{j}]"),
                    "a GRPCRoute matches gRPC methods, not HTTP methods or paths: mirror it by headers",
                ));
            }
            if let Some(p) = m.percentage.filter(|p| !(0..=100).contains(p)) {
                return Err(invalid(
                    format!("{field}.setMirrorRoute.percentage"),
                    format!("must be between 0 and 100, got {p}"),
                ));
            }
            for (j, rm) in m.match_.iter().flatten().enumerate() {
                let f = format!("{field}.setMirrorRoute.match[{j}]");
                if let Some(method) = &rm.method {
                    if method.exact.is_none() {
                        return Err(invalid(
                            format!("{f}.method"),
                            "the Gateway API matches a method exactly: use exact",
                        ));
                    }
                    check_string_match(&format!("{f}.method"), method)?;
                }
                if let Some(path) = &rm.path {
                    check_string_match(&format!("{f}.path"), path)?;
                }
                for (name, value) in rm.headers.iter().flatten() {
                    check_string_match(&format!("{f}.headers[{name}]"), value)?;
                }
            }
        }
        Ok(())
    }

    fn check_managed(&self, field: &str, name: &str) -> Result<(), InvalidSpec> {
        if self.managed_routes.contains(&name) {
            return Ok(());
        }
        Err(invalid(
            field,
            format!("{name:?} is not listed in spec.strategy.canary.trafficRouting.managedRoutes"),
        ))
    }
}

/// Exactly one of `exact`, `prefix` and `regex`.
fn check_string_match(
    field: &str,
    m: &sluice_api::rollout::StringMatch,
) -> Result<(), InvalidSpec> {
    let set = [&m.exact, &m.prefix, &m.regex]
        .iter()
        .filter(|v| v.is_some())
        .count();
    if set == 1 {
        return Ok(());
    }
    Err(invalid(
        field,
        "must set exactly one of exact, prefix or regex",
    ))
}

/// The route objects a Rollout routes through, keyed as the observer reads them: empty
/// without traffic routing or with a routing the planner will refuse anyway.
pub fn route_refs(rollout: &Rollout) -> Vec<RouteRef> {
    match routing(rollout) {
        Ok(Some(r)) => r.routes.into_iter().map(|r| r.route).collect(),
        _ => Vec::new(),
    }
}

/// The traffic routing and the route objects it names: each must exist and split the canary
/// and the stable Service in at least one rule. The message names the object and the field.
pub fn validate_routes(observed: &super::Observed) -> Result<(), InvalidSpec> {
    let rollout = &observed.rollout;
    let Some(routing) = routing(rollout)? else {
        return Ok(());
    };
    let backends = gateway::Backends {
        rollout: rollout.metadata.name.as_deref().unwrap_or_default(),
        namespace: rollout.metadata.namespace.as_deref().unwrap_or_default(),
        canary: routing.canary_service,
        stable: routing.stable_service,
    };
    let hold = TrafficHold {
        canary_weight: 0,
        max_weight: routing.max_weight,
        ..Default::default()
    };
    let owner = super::analysis_runs::owner_reference(rollout);
    for route in &routing.routes {
        if let Err(message) = routing.plan_object(&observed.routes, route, &backends, &hold, &owner)
        {
            return Err(invalid(route.field.clone(), message));
        }
    }
    Ok(())
}

impl Routing<'_> {
    /// The change that makes one router's object hold `hold` (`None`: it does, verified), or
    /// what is wrong with the object.
    pub(crate) fn plan_object(
        &self,
        observed: &ObservedRoutes,
        route: &RoutedObject,
        backends: &gateway::Backends,
        hold: &TrafficHold,
        owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    ) -> Result<Option<super::plan::Change>, String> {
        let get = |r: &RouteRef| observed.get(r).and_then(Option::as_ref);
        let obj = get(&route.route);
        match &route.role {
            RouteRole::Route => {}
            RouteRole::NginxStable => {
                return match obj {
                    Some(_) => Ok(None),
                    None => Err(format!("{} not found", route.route)),
                };
            }
            RouteRole::NginxCanary { stable } => {
                let Some(cfg) = &self.nginx else {
                    return Ok(None);
                };
                let canary = nginx::Canary {
                    stable: get(stable),
                    stable_ref: stable,
                    stable_service: self.stable_service,
                    canary_service: self.canary_service,
                    owner,
                };
                return nginx::plan_canary(obj, route, &canary, cfg, hold);
            }
            RouteRole::AlbIngress => {
                let Some(cfg) = &self.alb else {
                    return Ok(None);
                };
                let target = alb::Target {
                    rollout: backends.rollout,
                    canary: self.canary_service,
                    stable: self.stable_service,
                    managed: &self.managed_routes,
                };
                return alb::plan_ingress(obj, route, cfg, &target, hold);
            }
            RouteRole::IstioDestinationRule => {
                let Some(dr) = self.istio.as_ref().and_then(|i| i.destination_rule) else {
                    return Ok(None);
                };
                return istio::plan_destination_rule(obj, route, dr, hold);
            }
            RouteRole::IstioVirtualService { index } => {
                let Some(cfg) = &self.istio else {
                    return Ok(None);
                };
                let Some(vs) = cfg.virtual_services.get(*index) else {
                    return Ok(None);
                };
                let split = istio::Split {
                    namespace: backends.namespace,
                    canary_service: self.canary_service,
                    stable_service: self.stable_service,
                    destination_rule: cfg.destination_rule,
                    managed: &self.managed_routes,
                };
                return istio::plan_virtual_service(obj, route, vs, &split, hold);
            }
        }
        if route.route.kind == RouteKind::TraefikService {
            return traefik::plan_service(
                obj,
                route,
                self.canary_service,
                self.stable_service,
                hold,
            );
        }
        if route.route.kind == RouteKind::TrafficSplit {
            let split = smi::Split {
                root: self.smi_root.unwrap_or(self.stable_service),
                canary: self.canary_service,
                stable: self.stable_service,
                owner,
            };
            return smi::plan_split(obj, route, &split, hold);
        }
        let Some(obj) = obj else {
            return Err(format!("{} not found", route.route));
        };
        Ok(
            gateway::plan_route(obj, route, backends, hold)?.map(|patch| {
                super::plan::Change::PatchRoute {
                    route: route.route.clone(),
                    patch,
                }
            }),
        )
    }
}

/// The route objects as observed: `None` when one does not exist.
pub type ObservedRoutes = BTreeMap<RouteRef, Option<Value>>;

/// The managed header and mirror routes the steps up to `index` have set (a step without
/// `match` removes its route), in `managedRoutes` order.
pub fn managed_routes_at(
    routing: &Routing,
    steps: &[CanaryStep],
    index: usize,
) -> (Vec<HeaderRoute>, Vec<MirrorRoute>) {
    let mut headers: BTreeMap<&str, &Vec<HeaderRoutingMatch>> = BTreeMap::new();
    let mut mirrors: BTreeMap<&str, &SetMirrorRoute> = BTreeMap::new();
    for step in steps.iter().take(index + 1) {
        if let Some(h) = &step.set_header_route {
            let name = h.name.as_deref().unwrap_or_default();
            match &h.match_ {
                Some(m) => {
                    headers.insert(name, m);
                }
                None => {
                    headers.remove(name);
                }
            }
        }
        if let Some(m) = &step.set_mirror_route {
            if m.match_.is_some() {
                mirrors.insert(&m.name, m);
            } else {
                mirrors.remove(m.name.as_str());
            }
        }
    }
    let mut header_routes = Vec::new();
    let mut mirror_routes = Vec::new();
    for name in &routing.managed_routes {
        if let Some(m) = headers.get(name) {
            header_routes.push(HeaderRoute {
                name: name.to_string(),
                matches: (*m).clone(),
            });
        }
        if let Some(m) = mirrors.get(name) {
            mirror_routes.push(MirrorRoute {
                name: name.to_string(),
                step: (*m).clone(),
            });
        }
    }
    (header_routes, mirror_routes)
}

#[cfg(test)]
mod tests;
