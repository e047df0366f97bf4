//! The controller's image (`make image`), built from the binary under test by the same code
//! (`sluice_image::archive::build`) and read back only with tools that are not Sluice's: skopeo
//! reads it as an OCI archive and as Docker's archive format (what `docker load` reads), umoci
//! unpacks it into a root filesystem and a runtime config, and `chroot` runs the binary from
//! that root filesystem as user 65532 — `sluice version`, `sluice controller --help`, and the
//! controller itself, reconciling a Rollout on an embedded cluster.
//!
//! Profile: this packs the debug binary `cargo test` has already built (about 150 MB, packed
//! in seconds) rather than a release build, which takes minutes on two cores; `make image`
//! packs the release binary with the same code, and docs/operations.md reports its size.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use sluice_cluster::{ClusterConfig, EmbeddedCluster, workloads};

use crate::harness::{free_port, repo_root, sluice_bin, spawn_program, wait_until};
use crate::require_kubectl;

const T: Duration = Duration::from_secs(60);

/// Fail (never pass) when a tool the test reads the image with is missing.
fn require_tool(command: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{command} is not on PATH: run `make test`, which installs it (apt-get install {package})"
    );
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"))
}

fn run_ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `chroot --userspec=65532:65532 ROOTFS <args>` with an empty environment but PATH, as the
/// image's config gives it.
fn in_image(rootfs: &Path, args: &[&str]) -> Output {
    Command::new("chroot")
        .arg("--userspec=65532:65532")
        .arg(rootfs)
        .args(args)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .stdin(Stdio::null())
        .output()
        .expect("running chroot")
}

/// Every regular file under `root`, as an absolute path inside it.
fn files_under(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("read rootfs dir") {
            let path = entry.expect("rootfs entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("rootfs metadata");
            if meta.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(format!("/{}", path.strip_prefix(root).unwrap().display()));
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

const ROLLOUT: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: web
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.25
  strategy:
    canary:
      steps:
        - setWeight: 50
        - pause: {}
"#;

#[test]
fn the_image_archive_runs_sluice_as_65532_from_its_own_root_filesystem() {
    require_kubectl!();
    for (command, package) in [
        ("umoci", "umoci"),
        ("skopeo", "skopeo"),
        ("chroot", "coreutils"),
        ("tar", "tar"),
    ] {
        require_tool(command, package);
    }
    let uid = run_ok("id", &["-u"]);
    assert_eq!(
        uid.trim(),
        "0",
        "the image test runs the unpacked binary with chroot, which needs root (make test runs as root in CI)"
    );

    let dir = tempfile::Builder::new()
        .prefix("sluice-image-")
        .tempdir()
        .expect("tempdir");
    let archive = dir.path().join(sluice_image::archive::file_name());
    let built =
        sluice_image::archive::build(Path::new(sluice_bin()), sluice_image::REPOSITORY, &archive)
            .expect("the image archive builds");
    let version = env!("CARGO_PKG_VERSION");
    let reference = format!("{}:{version}", sluice_image::REPOSITORY);
    assert_eq!(built.reference, reference);
    let archive = archive.to_str().unwrap();

    // The OCI view: config, user, entrypoint, labels.
    let config: Value = serde_json::from_str(&run_ok(
        "skopeo",
        &[
            "inspect",
            "--config",
            &format!("oci-archive:{archive}:{version}"),
        ],
    ))
    .expect("skopeo prints the config as JSON");
    let c = &config["config"];
    assert_eq!(c["User"], "65532:65532");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/usr/bin/sluice"]));
    assert_eq!(c["Cmd"], serde_json::json!(["controller"]));
    assert_eq!(config["os"], "linux");
    let labels = &c["Labels"];
    let revision = labels["org.opencontainers.image.revision"]
        .as_str()
        .expect("a revision label");
    assert!(
        revision.len() == 40 && revision.chars().all(|ch| ch.is_ascii_hexdigit()),
        "revision {revision:?} is not a commit"
    );
    assert_eq!(labels["org.opencontainers.image.version"], version);
    assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");
    assert_eq!(
        labels["org.opencontainers.image.source"],
        "https://github.com/sluice-rollouts/sluice"
    );

    // The Docker view of the same file: tagged with the reference the manifests deploy.
    let tags: Value = serde_json::from_str(&run_ok(
        "skopeo",
        &["list-tags", &format!("docker-archive:{archive}")],
    ))
    .expect("skopeo prints the tags as JSON");
    assert_eq!(tags["Tags"], serde_json::json!([reference]));
    let docker: Value = serde_json::from_str(&run_ok(
        "skopeo",
        &["inspect", &format!("docker-archive:{archive}")],
    ))
    .expect("skopeo prints the image as JSON");
    assert_eq!(&docker["Labels"], labels);
    let install =
        std::fs::read_to_string(repo_root().join("dist/install.yaml")).expect("dist/install.yaml");
    assert!(
        install.contains(&format!("image: {reference}\n")),
        "dist/install.yaml does not deploy {reference}"
    );

    // Unpack with umoci: it checks every digest, and derives the runtime config.
    let layout = dir.path().join("layout");
    std::fs::create_dir(&layout).expect("layout dir");
    run_ok("tar", &["-xf", archive, "-C", layout.to_str().unwrap()]);
    let bundle = dir.path().join("bundle");
    run_ok(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:{version}", layout.display()),
            bundle.to_str().unwrap(),
        ],
    );
    let runtime: Value = serde_json::from_str(
        &std::fs::read_to_string(bundle.join("config.json")).expect("runtime config"),
    )
    .expect("runtime config is JSON");
    assert_eq!(runtime["process"]["user"]["uid"], 65532);
    assert_eq!(runtime["process"]["user"]["gid"], 65532);
    assert_eq!(
        runtime["process"]["args"],
        serde_json::json!(["/usr/bin/sluice", "controller"])
    );
    let rootfs = bundle.join("rootfs");

    // Exactly the binary, its shared objects, three /etc files and the CA bundle: no shell,
    // nothing else.
    let files = files_under(&rootfs);
    assert_eq!(files, built.files.iter().cloned().collect::<BTreeSet<_>>());
    for file in &files {
        let expected = [
            "/usr/bin/sluice",
            "/etc/passwd",
            "/etc/group",
            "/etc/nsswitch.conf",
            "/etc/ssl/certs/ca-certificates.crt",
        ]
        .contains(&file.as_str())
            || file.contains(".so");
        assert!(expected, "unexpected file in the image: {file}");
    }
    let no_shell = in_image(&rootfs, &["/bin/sh", "-c", "true"]);
    assert!(!no_shell.status.success(), "the image has a shell");

    // The binary runs from the unpacked root filesystem alone, as 65532.
    let out = in_image(&rootfs, &["/usr/bin/sluice", "version"]);
    assert!(
        out.status.success(),
        "sluice version in the image: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let described = sluice_image::binary::parse(&String::from_utf8_lossy(&out.stdout))
        .expect("sluice version prints its report");
    assert_eq!(described.version, version);
    assert_eq!(described.commit, revision);
    assert_eq!(described.build_date, config["created"].as_str().unwrap());
    let help = in_image(&rootfs, &["/usr/bin/sluice", "controller", "--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--leader-elect"));

    run_the_controller_from_the_image(&rootfs, dir.path());
}

/// The image's controller, in its chroot as 65532, against an embedded cluster: ready, it
/// reconciles a Rollout to Healthy and a canary to its pause, and exits 0 on SIGTERM.
fn run_the_controller_from_the_image(rootfs: &Path, dir: &Path) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let cluster = rt
        .block_on(EmbeddedCluster::start(ClusterConfig {
            port: 0,
            workloads: Some(workloads::Config {
                pod_ready_delay: Duration::from_millis(100),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .expect("embedded cluster");
    // The kubeconfig the chrooted process reads lives inside its root filesystem.
    let kubeconfig: PathBuf = rootfs.join("kubeconfig");
    std::fs::write(&kubeconfig, cluster.kubeconfig_yaml()).expect("kubeconfig");
    let kubectl = |args: &[&str]| -> String {
        let mut all = vec!["--kubeconfig", kubeconfig.to_str().unwrap()];
        all.extend_from_slice(args);
        run_ok("kubectl", &all)
    };
    let crds = repo_root().join("crds");
    kubectl(&["apply", "--server-side", "-f", crds.to_str().unwrap()]);
    kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/rollouts.argoproj.io",
    ]);

    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut controller = spawn_program(
        "image-controller",
        "chroot",
        &[
            "--userspec=65532:65532",
            rootfs.to_str().unwrap(),
            "/usr/bin/sluice",
            "controller",
            "--kubeconfig=/kubeconfig",
            "--leader-elect=false",
            "--metrics-addr",
            &addr,
        ],
        dir,
    );
    let ready = || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        use std::io::{Read, Write};
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut response = String::new();
        s.read_to_string(&mut response).ok()?;
        response.starts_with("HTTP/1.0 200").then_some(())
    };
    wait_until("the image's controller to be ready", T, || {
        assert!(
            controller.try_wait().is_none(),
            "the controller in the image exited:\n{}",
            controller.log_text()
        );
        ready()
    });

    let manifest = dir.join("rollout.yaml");
    std::fs::write(&manifest, ROLLOUT).expect("rollout manifest");
    kubectl(&["apply", "-f", manifest.to_str().unwrap()]);
    let phase = || {
        kubectl(&[
            "-n",
            "default",
            "get",
            "rollout",
            "web",
            "-o",
            "jsonpath={.status.phase}",
        ])
    };
    wait_until("the Rollout to be Healthy", T, || {
        (phase() == "Healthy").then_some(())
    });
    kubectl(&[
        "-n",
        "default",
        "patch",
        "rollout",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.26"}]}}}}"#,
    ]);
    wait_until("the canary to pause at 50%", T, || {
        (phase() == "Paused").then_some(())
    });

    let status = controller.terminate(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "the controller did not exit 0 on SIGTERM ({status:?}):\n{}",
        controller.log_text()
    );
    rt.block_on(cluster.shutdown());
}

/// The Dockerfile's instructions with continuation lines joined, comments dropped.
fn dockerfile_instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head.trim_end());
                current.push(' ');
            }
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

/// `k1="v1" k2="v2"` of a LABEL instruction.
fn label_pairs(args: &str) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut rest = args.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").expect("LABEL key=\"value\"");
        let (value, after) = after.split_once('"').expect("a closing quote");
        out.insert(key.trim().to_string(), value.to_string());
        rest = after.trim_start();
    }
    out
}

#[test]
fn the_dockerfile_sets_the_same_config_as_make_image() {
    let text = std::fs::read_to_string(repo_root().join("Dockerfile")).expect("Dockerfile");
    let instructions = dockerfile_instructions(&text);
    let last_from = instructions
        .iter()
        .rposition(|i| i.starts_with("FROM "))
        .expect("a FROM");
    assert_eq!(
        instructions[last_from], "FROM scratch",
        "the final stage starts empty"
    );
    let final_stage = &instructions[last_from..];
    let one = |name: &str| -> String {
        let found: Vec<&String> = final_stage
            .iter()
            .filter(|i| i.starts_with(&format!("{name} ")))
            .collect();
        assert_eq!(found.len(), 1, "one {name} in the final stage: {found:?}");
        found[0][name.len() + 1..].trim().to_string()
    };
    let version_arg = instructions
        .iter()
        .find_map(|i| i.strip_prefix("ARG VERSION="))
        .expect("ARG VERSION=<default>");
    assert_eq!(version_arg, env!("CARGO_PKG_VERSION"));
    assert_eq!(one("COPY"), "--from=build /rootfs/ /");
    assert_eq!(one("USER"), sluice_image::USER);
    assert_eq!(one("WORKDIR"), "/");
    assert_eq!(one("ENV"), sluice_image::archive::PATH_ENV);
    let json = |s: String| -> Value { serde_json::from_str(&s).expect("exec-form JSON") };
    assert_eq!(
        json(one("ENTRYPOINT")),
        serde_json::json!([sluice_image::ENTRYPOINT])
    );
    assert_eq!(
        json(one("CMD")),
        serde_json::json!(sluice_image::DEFAULT_ARGS)
    );
    // The same labels, with the version and revision from the build arguments.
    let described = sluice_image::binary::Described {
        version: "${VERSION}".into(),
        commit: "${REVISION}".into(),
        build_date: String::new(),
        os: String::new(),
        architecture: String::new(),
    };
    let want: std::collections::BTreeMap<String, String> =
        sluice_image::archive::labels(&described)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
    assert_eq!(label_pairs(&one("LABEL")), want);
    // The build stage lays the root filesystem out with the code `make image` uses.
    assert!(
        instructions[..last_from].iter().any(|i| i
            .contains("-p sluice-image -- rootfs --binary target/release/sluice --out /rootfs")),
        "the build stage does not run sluice-image rootfs"
    );
}
