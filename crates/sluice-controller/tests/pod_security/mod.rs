//! The `restricted` Pod Security Standard, rule by rule, as the API server's PodSecurity
//! admission checks a pod (Kubernetes' pod-security-admission policy checks, level
//! `restricted`, version `latest`: the baseline rules plus the restricted ones). Each
//! violation is reported with the check's name and detail, in admission's words, e.g.
//! `allowPrivilegeEscalation != false (container "controller" must set
//! securityContext.allowPrivilegeEscalation=false)`.

use serde_json::Value;

/// The containers admission looks at: init, regular and ephemeral.
fn containers(pod: &Value) -> Vec<&Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| pod[*k].as_array().into_iter().flatten())
        .collect()
}

fn name(c: &Value) -> &str {
    c["name"].as_str().unwrap_or("")
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// Capabilities a baseline pod may add.
const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Sysctls every pod may set.
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// Volume sources a restricted pod may use.
const RESTRICTED_VOLUME_TYPES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

const SELINUX_TYPES: &[&str] = &[
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// Every violation of the `restricted` profile by the pod `pod` (a PodSpec with its
/// `metadata` beside it, as in a pod template: `{"metadata": .., "spec": ..}`).
pub fn restricted_violations(template: &Value) -> Vec<String> {
    let pod = &template["spec"];
    let psc = &pod["securityContext"];
    let all = containers(pod);
    let mut out = Vec::new();
    let mut report = |check: &str, details: Vec<String>| {
        if !details.is_empty() {
            out.push(format!("{check} ({})", details.join("; ")));
        }
    };

    // --- baseline ---
    let mut details = Vec::new();
    if psc["windowsOptions"]["hostProcess"] == true {
        details.push("pod must not set securityContext.windowsOptions.hostProcess=true".into());
    }
    for c in &all {
        if c["securityContext"]["windowsOptions"]["hostProcess"] == true {
            details.push(format!(
                "container {:?} must not set securityContext.windowsOptions.hostProcess=true",
                name(c)
            ));
        }
    }
    report("hostProcess", details);

    let host: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .iter()
        .filter(|k| pod[**k] == true)
        .map(|k| format!("{k}=true"))
        .collect();
    report("host namespaces", host);

    let privileged = all
        .iter()
        .filter(|c| c["securityContext"]["privileged"] == true)
        .map(|c| {
            format!(
                "container {:?} must not set securityContext.privileged=true",
                name(c)
            )
        })
        .collect();
    report("privileged", privileged);

    let non_default = all
        .iter()
        .flat_map(|c| {
            strings(&c["securityContext"]["capabilities"]["add"])
                .into_iter()
                .filter(|cap| !BASELINE_CAPABILITIES.contains(cap))
                .map(|cap| format!("container {:?} must not include {cap:?} in securityContext.capabilities.add", name(c)))
                .collect::<Vec<_>>()
        })
        .collect();
    report("non-default capabilities", non_default);

    let host_path = pod["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| !v["hostPath"].is_null())
        .map(|v| format!("volume {:?}", v["name"].as_str().unwrap_or("")))
        .collect();
    report("hostPath volumes", host_path);

    let host_ports = all
        .iter()
        .flat_map(|c| {
            c["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["hostPort"].as_i64().filter(|h| *h != 0))
                .map(|h| format!("container {:?} uses hostPort {h}", name(c)))
                .collect::<Vec<_>>()
        })
        .collect();
    report("hostPort", host_ports);

    let mut apparmor = Vec::new();
    let profile_ok = |p: &Value| {
        p.is_null() || matches!(p["type"].as_str(), Some("RuntimeDefault" | "Localhost"))
    };
    if !profile_ok(&psc["appArmorProfile"]) {
        apparmor.push("pod must not set securityContext.appArmorProfile.type to anything but RuntimeDefault or Localhost".into());
    }
    for c in &all {
        if !profile_ok(&c["securityContext"]["appArmorProfile"]) {
            apparmor.push(format!(
                "container {:?} must not set an unconfined appArmorProfile",
                name(c)
            ));
        }
    }
    for (k, v) in template["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if k.starts_with("container.apparmor.security.beta.kubernetes.io/")
            && !(v == "runtime/default" || v.as_str().is_some_and(|s| s.starts_with("localhost/")))
        {
            apparmor.push(format!("annotation {k}={v}"));
        }
    }
    report("forbidden AppArmor profile", apparmor);

    let mut selinux = Vec::new();
    let selinux_ok = |o: &Value| {
        o.is_null()
            || (SELINUX_TYPES.contains(&o["type"].as_str().unwrap_or(""))
                && o["user"].is_null()
                && o["role"].is_null())
    };
    if !selinux_ok(&psc["seLinuxOptions"]) {
        selinux.push("pod".to_string());
    }
    for c in &all {
        if !selinux_ok(&c["securityContext"]["seLinuxOptions"]) {
            selinux.push(format!("container {:?}", name(c)));
        }
    }
    report("seLinuxOptions", selinux);

    let proc_mount = all
        .iter()
        .filter(|c| {
            !matches!(
                c["securityContext"]["procMount"].as_str(),
                None | Some("Default")
            )
        })
        .map(|c| {
            format!(
                "container {:?} must not set securityContext.procMount",
                name(c)
            )
        })
        .collect();
    report("procMount", proc_mount);

    let sysctls = psc["sysctls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .filter(|n| !SAFE_SYSCTLS.contains(n))
        .map(|n| n.to_string())
        .collect();
    report("forbidden sysctls", sysctls);

    // --- restricted ---
    let volumes = pod["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let kind = v.as_object()?.keys().find(|k| *k != "name")?.clone();
            (!RESTRICTED_VOLUME_TYPES.contains(&kind.as_str())).then(|| {
                format!(
                    "volume {:?} uses restricted volume type {kind:?}",
                    v["name"].as_str().unwrap_or("")
                )
            })
        })
        .collect();
    report("restricted volume types", volumes);

    let escalation = all
        .iter()
        .filter(|c| c["securityContext"]["allowPrivilegeEscalation"] != false)
        .map(|c| {
            format!(
                "container {:?} must set securityContext.allowPrivilegeEscalation=false",
                name(c)
            )
        })
        .collect();
    report("allowPrivilegeEscalation != false", escalation);

    let pod_non_root = psc["runAsNonRoot"] == true;
    let mut non_root = Vec::new();
    if psc["runAsNonRoot"] == false {
        non_root.push("pod must not set securityContext.runAsNonRoot=false".to_string());
    }
    for c in &all {
        match &c["securityContext"]["runAsNonRoot"] {
            Value::Bool(false) => non_root.push(format!(
                "container {:?} must not set securityContext.runAsNonRoot=false",
                name(c)
            )),
            Value::Bool(true) => {}
            _ if pod_non_root => {}
            _ => non_root.push(format!(
                "pod or container {:?} must set securityContext.runAsNonRoot=true",
                name(c)
            )),
        }
    }
    report("runAsNonRoot != true", non_root);

    let mut root_user = Vec::new();
    if psc["runAsUser"] == 0 {
        root_user.push("pod must not set runAsUser=0".to_string());
    }
    for c in &all {
        if c["securityContext"]["runAsUser"] == 0 {
            root_user.push(format!("container {:?} must not set runAsUser=0", name(c)));
        }
    }
    report("runAsUser=0", root_user);

    let confined = |p: &Value| matches!(p["type"].as_str(), Some("RuntimeDefault" | "Localhost"));
    let pod_seccomp = confined(&psc["seccompProfile"]);
    let mut seccomp = Vec::new();
    if psc["seccompProfile"]["type"] == "Unconfined" {
        seccomp.push(
            "pod must not set securityContext.seccompProfile.type to \"Unconfined\"".to_string(),
        );
    }
    for c in &all {
        let p = &c["securityContext"]["seccompProfile"];
        if p["type"] == "Unconfined" {
            seccomp.push(format!(
                "container {:?} must not set securityContext.seccompProfile.type to \"Unconfined\"",
                name(c)
            ));
        } else if !confined(p) && !pod_seccomp {
            seccomp.push(format!(
                "pod or container {:?} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
                name(c)
            ));
        }
    }
    report("seccompProfile", seccomp);

    let mut caps = Vec::new();
    for c in &all {
        let sc = &c["securityContext"]["capabilities"];
        if !strings(&sc["drop"]).contains(&"ALL") {
            caps.push(format!(
                "container {:?} must set securityContext.capabilities.drop=[\"ALL\"]",
                name(c)
            ));
        }
        for cap in strings(&sc["add"]) {
            if cap != "NET_BIND_SERVICE" {
                caps.push(format!(
                    "container {:?} must not include {cap:?} in securityContext.capabilities.add",
                    name(c)
                ));
            }
        }
    }
    report("unrestricted capabilities", caps);

    out
}

/// The check names of `violations` (the part before the parenthesis).
pub fn checks(violations: &[String]) -> Vec<&str> {
    violations
        .iter()
        .map(|v| v.split(" (").next().unwrap_or(v))
        .collect()
}
