//! `meta.k8s.io/v1` Table rendering, which is what `kubectl get` asks for: the CRD's
//! additionalPrinterColumns for custom resources, kubectl-like default columns for built-ins.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::types::{PrinterColumn, ResourceType};

/// kubectl's human duration ("5s", "3m2s", "4h", "12d"), as the apiserver renders ages.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 192 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if d < 730 {
        format!("{d}d")
    } else if d < 2920 {
        format!("{}y{}d", d / 365, d % 365)
    } else {
        format!("{}y", d / 365)
    }
}

fn age(ts: &Value, now: DateTime<Utc>) -> String {
    ts.as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| human_duration((now - t.with_timezone(&Utc)).num_seconds()))
        .unwrap_or_else(|| "<unknown>".into())
}

/// Evaluates the subset of kubectl JSONPath printer columns use: `.a.b`, `.a[0].b`,
/// `.a[?(@.type=="X")].b`.
pub fn jsonpath<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let p = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut cur = obj;
    let mut rest = p.trim_start_matches('.');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = &r[..end];
            rest = r[end + 1..].trim_start_matches('.');
            if let Some(f) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (k, v) = f.split_once("==")?;
                let v = v.trim().trim_matches('"').trim_matches('\'');
                cur = cur
                    .as_array()?
                    .iter()
                    .find(|x| x[k.trim()].as_str() == Some(v))?;
            } else {
                cur = cur.get(inner.parse::<usize>().ok()?)?;
            }
            continue;
        }
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        cur = cur.get(&rest[..end])?;
        rest = rest[end..].trim_start_matches('.');
    }
    Some(cur)
}

struct Col {
    name: &'static str,
    ty: &'static str,
    priority: i64,
}

const fn c(name: &'static str, ty: &'static str, priority: i64) -> Col {
    Col { name, ty, priority }
}

fn builtin_columns(plural: &str) -> Vec<Col> {
    match plural {
        "pods" => vec![
            c("Name", "string", 0),
            c("Ready", "string", 0),
            c("Status", "string", 0),
            c("Restarts", "string", 0),
            c("Age", "string", 0),
            c("IP", "string", 1),
            c("Node", "string", 1),
        ],
        "replicasets" => vec![
            c("Name", "string", 0),
            c("Desired", "integer", 0),
            c("Current", "integer", 0),
            c("Ready", "integer", 0),
            c("Age", "string", 0),
            c("Containers", "string", 1),
            c("Images", "string", 1),
            c("Selector", "string", 1),
        ],
        "deployments" => vec![
            c("Name", "string", 0),
            c("Ready", "string", 0),
            c("Up-to-date", "string", 0),
            c("Available", "string", 0),
            c("Age", "string", 0),
            c("Containers", "string", 1),
            c("Images", "string", 1),
            c("Selector", "string", 1),
        ],
        "services" => vec![
            c("Name", "string", 0),
            c("Type", "string", 0),
            c("Cluster-IP", "string", 0),
            c("External-IP", "string", 0),
            c("Port(s)", "string", 0),
            c("Age", "string", 0),
            c("Selector", "string", 1),
        ],
        "jobs" => vec![
            c("Name", "string", 0),
            c("Status", "string", 0),
            c("Completions", "string", 0),
            c("Duration", "string", 0),
            c("Age", "string", 0),
        ],
        "namespaces" => vec![
            c("Name", "string", 0),
            c("Status", "string", 0),
            c("Age", "string", 0),
        ],
        "configmaps" => vec![
            c("Name", "string", 0),
            c("Data", "string", 0),
            c("Age", "string", 0),
        ],
        "secrets" => vec![
            c("Name", "string", 0),
            c("Type", "string", 0),
            c("Data", "string", 0),
            c("Age", "string", 0),
        ],
        "events" => vec![
            c("Last Seen", "string", 0),
            c("Type", "string", 0),
            c("Reason", "string", 0),
            c("Object", "string", 0),
            c("Message", "string", 0),
        ],
        "horizontalpodautoscalers" => vec![
            c("Name", "string", 0),
            c("Reference", "string", 0),
            c("Targets", "string", 0),
            c("MinPods", "string", 0),
            c("MaxPods", "string", 0),
            c("Replicas", "string", 0),
            c("Age", "string", 0),
        ],
        "customresourcedefinitions" => vec![c("Name", "string", 0), c("Created At", "date", 0)],
        "endpoints" => vec![
            c("Name", "string", 0),
            c("Endpoints", "string", 0),
            c("Age", "string", 0),
        ],
        "leases" => vec![
            c("Name", "string", 0),
            c("Holder", "string", 0),
            c("Age", "string", 0),
        ],
        "ingresses" => vec![
            c("Name", "string", 0),
            c("Class", "string", 0),
            c("Hosts", "string", 0),
            c("Address", "string", 0),
            c("Ports", "string", 0),
            c("Age", "string", 0),
        ],
        "ingressclasses" => vec![
            c("Name", "string", 0),
            c("Controller", "string", 0),
            c("Parameters", "string", 0),
            c("Age", "string", 0),
        ],
        "poddisruptionbudgets" => vec![
            c("Name", "string", 0),
            c("Min Available", "string", 0),
            c("Max Unavailable", "string", 0),
            c("Allowed Disruptions", "integer", 0),
            c("Age", "string", 0),
        ],
        _ => vec![c("Name", "string", 0), c("Age", "string", 0)],
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => String::new(),
        o => o.to_string(),
    }
}

fn n(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn containers(obj: &Value) -> (String, String) {
    let cs = obj["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<String> = cs.iter().map(|c| s(&c["name"])).collect();
    let images: Vec<String> = cs.iter().map(|c| s(&c["image"])).collect();
    (names.join(","), images.join(","))
}

fn builtin_cells(plural: &str, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let name = json!(s(&obj["metadata"]["name"]));
    let created = age(&obj["metadata"]["creationTimestamp"], now);
    let spec = &obj["spec"];
    let st = &obj["status"];
    match plural {
        "pods" => {
            let total = spec["containers"].as_array().map_or(0, Vec::len);
            let cs = st["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let ready = cs.iter().filter(|c| c["ready"] == true).count();
            let restarts: i64 = cs.iter().map(|c| n(&c["restartCount"])).sum();
            // kubectl's rule: a waiting or terminated container's reason wins over the phase.
            let container_reason = cs.iter().rev().find_map(|c| {
                let st = &c["state"];
                st["waiting"]["reason"]
                    .as_str()
                    .or_else(|| st["terminated"]["reason"].as_str())
                    .filter(|r| !r.is_empty())
                    .map(str::to_string)
            });
            let status = if !obj["metadata"]["deletionTimestamp"].is_null() {
                "Terminating".to_string()
            } else if let Some(r) = container_reason {
                r
            } else if st["reason"].is_string() {
                s(&st["reason"])
            } else {
                s(&st["phase"])
            };
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(status),
                json!(restarts.to_string()),
                json!(created),
                json!(st["podIP"].as_str().unwrap_or("<none>")),
                json!(spec["nodeName"].as_str().unwrap_or("<none>")),
            ]
        }
        "replicasets" => {
            let (cn, im) = containers(obj);
            vec![
                name,
                json!(n(&spec["replicas"])),
                json!(n(&st["replicas"])),
                json!(n(&st["readyReplicas"])),
                json!(created),
                json!(cn),
                json!(im),
                json!(super::selector::label_selector_string(&spec["selector"])),
            ]
        }
        "deployments" => {
            let (cn, im) = containers(obj);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    n(&st["readyReplicas"]),
                    n(&spec["replicas"])
                )),
                json!(n(&st["updatedReplicas"]).to_string()),
                json!(n(&st["availableReplicas"]).to_string()),
                json!(created),
                json!(cn),
                json!(im),
                json!(super::selector::label_selector_string(&spec["selector"])),
            ]
        }
        "services" => {
            let ports: Vec<String> = spec["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    format!(
                        "{}/{}",
                        s(&p["port"]),
                        p["protocol"].as_str().unwrap_or("TCP")
                    )
                })
                .collect();
            let sel: Vec<String> = spec["selector"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", s(v)))
                .collect();
            vec![
                name,
                json!(s(&spec["type"])),
                json!(spec["clusterIP"].as_str().unwrap_or("<none>")),
                json!("<none>"),
                json!(if ports.is_empty() {
                    "<none>".into()
                } else {
                    ports.join(",")
                }),
                json!(created),
                json!(if sel.is_empty() {
                    "<none>".into()
                } else {
                    sel.join(",")
                }),
            ]
        }
        "jobs" => {
            let conds = st["conditions"].as_array().cloned().unwrap_or_default();
            let status = if conds
                .iter()
                .any(|c| c["type"] == "Complete" && c["status"] == "True")
            {
                "Complete"
            } else if conds
                .iter()
                .any(|c| c["type"] == "Failed" && c["status"] == "True")
            {
                "Failed"
            } else {
                "Running"
            };
            let duration = st["startTime"]
                .as_str()
                .and_then(|a| DateTime::parse_from_rfc3339(a).ok())
                .map(|a| {
                    let end = st["completionTime"]
                        .as_str()
                        .and_then(|b| DateTime::parse_from_rfc3339(b).ok())
                        .map(|b| b.with_timezone(&Utc))
                        .unwrap_or(now);
                    human_duration((end - a.with_timezone(&Utc)).num_seconds())
                })
                .unwrap_or_default();
            vec![
                name,
                json!(status),
                json!(format!(
                    "{}/{}",
                    n(&st["succeeded"]),
                    spec["completions"].as_i64().unwrap_or(1)
                )),
                json!(duration),
                json!(created),
            ]
        }
        "namespaces" => vec![name, json!(s(&st["phase"])), json!(created)],
        "configmaps" => {
            let d = obj["data"].as_object().map_or(0, |m| m.len())
                + obj["binaryData"].as_object().map_or(0, |m| m.len());
            vec![name, json!(d.to_string()), json!(created)]
        }
        "secrets" => vec![
            name,
            json!(s(&obj["type"])),
            json!(obj["data"].as_object().map_or(0, |m| m.len()).to_string()),
            json!(created),
        ],
        "events" => {
            let last = obj
                .get("lastTimestamp")
                .filter(|v| v.is_string())
                .or_else(|| obj.get("eventTime"))
                .cloned()
                .unwrap_or(Value::Null);
            let io = if obj["involvedObject"].is_object() {
                &obj["involvedObject"]
            } else {
                &obj["regarding"]
            };
            vec![
                json!(age(&last, now)),
                json!(s(&obj["type"])),
                json!(s(&obj["reason"])),
                json!(format!(
                    "{}/{}",
                    s(&io["kind"]).to_lowercase(),
                    s(&io["name"])
                )),
                json!(s(obj
                    .get("message")
                    .or_else(|| obj.get("note"))
                    .unwrap_or(&Value::Null))),
            ]
        }
        "horizontalpodautoscalers" => {
            let r = &spec["scaleTargetRef"];
            vec![
                name,
                json!(format!("{}/{}", s(&r["kind"]), s(&r["name"]))),
                json!(hpa_targets(obj)),
                json!(spec["minReplicas"].as_i64().unwrap_or(1).to_string()),
                json!(s(&spec["maxReplicas"])),
                json!(n(&st["currentReplicas"]).to_string()),
                json!(created),
            ]
        }
        "customresourcedefinitions" => vec![name, json!(s(&obj["metadata"]["creationTimestamp"]))],
        "endpoints" => {
            let eps: Vec<String> = obj["subsets"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|ss| {
                    let ports: Vec<String> = ss["ports"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| s(&p["port"]))
                        .collect();
                    ss["addresses"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .flat_map(move |a| {
                            let ip = s(&a["ip"]);
                            if ports.is_empty() {
                                vec![ip]
                            } else {
                                ports.iter().map(|p| format!("{ip}:{p}")).collect()
                            }
                        })
                })
                .collect();
            vec![
                name,
                json!(if eps.is_empty() {
                    "<none>".into()
                } else {
                    eps.join(",")
                }),
                json!(created),
            ]
        }
        "leases" => vec![name, json!(s(&spec["holderIdentity"])), json!(created)],
        "ingresses" => {
            let rules = spec["rules"].as_array().cloned().unwrap_or_default();
            let hosts: Vec<String> = rules
                .iter()
                .map(|r| r["host"].as_str().unwrap_or("*").to_string())
                .collect();
            let addresses: Vec<String> = st["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["ip"].as_str().or_else(|| i["hostname"].as_str()))
                .map(str::to_string)
                .collect();
            let tls = spec["tls"].as_array().is_some_and(|t| !t.is_empty());
            vec![
                name,
                json!(spec["ingressClassName"].as_str().unwrap_or("<none>")),
                json!(if hosts.is_empty() {
                    "*".to_string()
                } else {
                    hosts.join(",")
                }),
                json!(addresses.join(",")),
                json!(if tls { "80, 443" } else { "80" }),
                json!(created),
            ]
        }
        "ingressclasses" => {
            let p = &spec["parameters"];
            let params = if p.is_object() {
                let kind = match p["apiGroup"].as_str() {
                    Some(g) if !g.is_empty() => format!("{}.{g}", s(&p["kind"])),
                    _ => s(&p["kind"]),
                };
                format!("{kind}/{}", s(&p["name"]))
            } else {
                "<none>".into()
            };
            vec![
                name,
                json!(s(&spec["controller"])),
                json!(params),
                json!(created),
            ]
        }
        "poddisruptionbudgets" => {
            let or_na = |v: &Value| if v.is_null() { "N/A".to_string() } else { s(v) };
            vec![
                name,
                json!(or_na(&spec["minAvailable"])),
                json!(or_na(&spec["maxUnavailable"])),
                json!(n(&st["disruptionsAllowed"])),
                json!(created),
            ]
        }
        _ => vec![name, json!(created)],
    }
}

/// `cpu: 30%/50%` per Resource metric (`<unknown>` before the first measurement); autoscaling/v1
/// objects report their CPU target.
fn hpa_targets(obj: &Value) -> String {
    let spec = &obj["spec"];
    let current = obj["status"]["currentMetrics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut parts = Vec::new();
    for m in spec["metrics"].as_array().into_iter().flatten() {
        let res = &m["resource"];
        let name = s(&res["name"]);
        let (want, unit) = match res["target"]["averageUtilization"].as_i64() {
            Some(u) => (format!("{u}%"), "%"),
            None => (s(&res["target"]["averageValue"]), ""),
        };
        let now = current
            .iter()
            .find(|c| c["resource"]["name"].as_str() == Some(name.as_str()))
            .and_then(|c| {
                c["resource"]["current"]["averageUtilization"]
                    .as_i64()
                    .map(|u| format!("{u}{unit}"))
                    .or_else(|| {
                        c["resource"]["current"]["averageValue"]
                            .as_str()
                            .map(str::to_string)
                    })
            })
            .unwrap_or_else(|| "<unknown>".into());
        parts.push(format!("{name}: {now}/{want}"));
    }
    if let Some(t) = spec["targetCPUUtilizationPercentage"].as_i64() {
        let now = obj["status"]["currentCPUUtilizationPercentage"]
            .as_i64()
            .map_or("<unknown>".to_string(), |c| format!("{c}%"));
        parts.push(format!("cpu: {now}/{t}%"));
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(", ")
    }
}

fn crd_cells(cols: &[PrinterColumn], obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut cells = vec![json!(s(&obj["metadata"]["name"]))];
    for col in cols {
        let v = jsonpath(obj, &col.json_path);
        cells.push(match (col.type_.as_str(), v) {
            (_, None) => Value::Null,
            ("date", Some(v)) => json!(age(v, now)),
            ("integer" | "number" | "boolean", Some(v)) => v.clone(),
            (_, Some(v)) => json!(s(v)),
        });
    }
    cells
}

fn crd_columns(t: &ResourceType, version: &str) -> Vec<PrinterColumn> {
    let cols = t
        .version(version)
        .map(|v| v.columns.clone())
        .unwrap_or_default();
    if cols.is_empty() {
        vec![PrinterColumn {
            name: "Age".into(),
            type_: "date".into(),
            format: String::new(),
            description: String::new(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".into(),
        }]
    } else {
        cols
    }
}

type CellFn = Box<dyn Fn(&Value) -> Vec<Value>>;

/// How much of each object a row carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

/// A Table of `objs`; `list_meta` becomes the table's metadata (resourceVersion, continue).
pub fn render(
    t: &ResourceType,
    version: &str,
    objs: &[Value],
    list_meta: Value,
    include: Include,
    now: DateTime<Utc>,
) -> Value {
    let (defs, cells): (Vec<Value>, CellFn) = if t.crd {
        let cols = crd_columns(t, version);
        let mut defs = vec![
            json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names", "priority": 0}),
        ];
        for c in &cols {
            defs.push(json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority}));
        }
        (defs, Box::new(move |o: &Value| crd_cells(&cols, o, now)))
    } else {
        let cols = builtin_columns(&t.plural);
        let defs = cols.iter().map(|c| {
            let format = if c.name == "Name" { "name" } else { "" };
            json!({"name": c.name, "type": c.ty, "format": format, "description": "", "priority": c.priority})
        }).collect();
        let plural = t.plural.clone();
        (
            defs,
            Box::new(move |o: &Value| builtin_cells(&plural, o, now)),
        )
    };
    let rows: Vec<Value> = objs.iter().map(|o| {
        let mut row = json!({"cells": cells(o)});
        match include {
            Include::None => {}
            Include::Metadata => {
                row["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]});
            }
            Include::Object => row["object"] = o.clone(),
        }
        row
    }).collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "columnDefinitions": defs, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_duration_golden_table() {
        for (secs, want) in [
            (5, "5s"),
            (119, "119s"),
            (125, "2m5s"),
            (600, "10m"),
            (7200, "120m"),
            (3 * 3600 + 60, "3h1m"),
            (20 * 3600, "20h"),
            (3 * 86400 + 3600, "3d1h"),
            (30 * 86400, "30d"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn jsonpath_supports_index_and_filter() {
        let o = json!({"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(
            jsonpath(&o, ".status.conditions[?(@.type==\"Ready\")].status").unwrap(),
            "True"
        );
        assert_eq!(jsonpath(&o, ".status.conditions[0].type").unwrap(), "A");
        assert!(jsonpath(&o, ".status.missing").is_none());
    }

    #[test]
    fn hpa_targets_show_current_over_target() {
        let hpa = json!({"spec": {"metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}});
        assert_eq!(hpa_targets(&hpa), "cpu: <unknown>/50%");
        let mut measured = hpa.clone();
        measured["status"] = json!({"currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 30}}}]});
        assert_eq!(hpa_targets(&measured), "cpu: 30%/50%");
    }

    #[test]
    fn pod_status_prefers_a_waiting_container_reason() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Running", "containerStatuses": [{"ready": false, "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let cells = builtin_cells("pods", &pod, Utc::now());
        assert_eq!(cells[1], "0/1");
        assert_eq!(cells[2], "CrashLoopBackOff");
        assert_eq!(cells[3], "3");
    }

    #[test]
    fn replicaset_table_has_desired_current_ready() {
        let reg = super::super::types::Registry::with_builtins();
        let t = reg.lookup("apps", "v1", "replicasets").unwrap();
        let rs = json!({"metadata": {"name": "r", "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"replicas": 3}, "status": {"replicas": 2, "readyReplicas": 1}});
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:01:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let tab = render(&t, "v1", &[rs], json!({}), Include::Metadata, now);
        assert_eq!(
            tab["rows"][0]["cells"],
            json!(["r", 3, 2, 1, "60s", "", "", ""])
        );
        assert_eq!(tab["columnDefinitions"][1]["name"], "Desired");
        assert_eq!(tab["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }
}
