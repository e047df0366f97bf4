//! The image archive: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) that
//! also holds Docker's `manifest.json`, in one tar file.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufWriter, Seek};
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};
use serde_json::{Value, json};

use crate::binary::{self, Described};
use crate::layer::{self, Digest, Digesting};
use crate::{Error, rootfs};

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// `PATH` as container runtimes set it by default; there is nothing on it but `sluice`.
pub const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// `org.opencontainers.image.title`.
pub const TITLE: &str = "sluice";
/// `org.opencontainers.image.description`.
pub const DESCRIPTION: &str =
    "A progressive-delivery controller for Kubernetes implementing the Argo Rollouts API";
/// `org.opencontainers.image.source`: the repository the image is built from.
pub const SOURCE: &str = env!("CARGO_PKG_REPOSITORY");
/// `org.opencontainers.image.licenses` (SPDX).
pub const LICENSES: &str = env!("CARGO_PKG_LICENSE");

/// What was written.
#[derive(Debug, Clone)]
pub struct Built {
    pub path: PathBuf,
    /// `repository:version`.
    pub reference: String,
    /// The image manifest's digest: what a registry will call the image.
    pub manifest: Digest,
    /// The one layer, compressed.
    pub layer: Digest,
    /// The layer's uncompressed size.
    pub unpacked_size: u64,
    /// The archive's size.
    pub archive_size: u64,
    /// The files of the root filesystem, as paths inside the image.
    pub files: Vec<String>,
    pub described: Described,
}

/// The archive's file name: `sluice-image-<version>.tar`.
pub fn file_name() -> String {
    format!("sluice-image-{}.tar", crate::VERSION)
}

/// The OCI labels of an image of `described`.
pub fn labels(described: &Described) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("org.opencontainers.image.title", TITLE.to_string()),
        (
            "org.opencontainers.image.description",
            DESCRIPTION.to_string(),
        ),
        ("org.opencontainers.image.source", SOURCE.to_string()),
        ("org.opencontainers.image.licenses", LICENSES.to_string()),
        (
            "org.opencontainers.image.version",
            described.version.clone(),
        ),
        (
            "org.opencontainers.image.revision",
            described.commit.clone(),
        ),
    ])
}

/// The image configuration: non-root user, `sluice` as entrypoint, the labels, one layer.
pub fn config(described: &Described, diff_id: &Digest) -> Value {
    json!({
        "created": described.build_date,
        "architecture": described.architecture,
        "os": described.os,
        "config": {
            "User": crate::USER,
            "Entrypoint": [crate::ENTRYPOINT],
            "Cmd": crate::DEFAULT_ARGS,
            "Env": [PATH_ENV],
            "WorkingDir": "/",
            "Labels": labels(described),
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id.id()]},
        "history": [{
            "created": described.build_date,
            "created_by": "sluice-image archive (make image)",
            "comment": "the sluice binary, the shared libraries ldd names for it, /etc/passwd, /etc/group, /etc/nsswitch.conf",
        }],
    })
}

fn descriptor(media_type: &str, digest: &Digest) -> Value {
    json!({"mediaType": media_type, "digest": digest.id(), "size": digest.size})
}

fn seconds_since_epoch(rfc3339: &str) -> Result<u64, String> {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map_err(|e| format!("printed BuildDate {rfc3339:?}: {e}"))?;
    u64::try_from(t.timestamp()).map_err(|_| format!("printed BuildDate {rfc3339:?}, before 1970"))
}

/// Builds the image archive of `binary` at `out`, tagged `repository:<version>`.
pub fn build(binary: &Path, repository: &str, out: &Path) -> Result<Built, Error> {
    let described = binary::describe(binary)?;
    let mtime = seconds_since_epoch(&described.build_date).map_err(|message| Error::Describe {
        binary: binary.to_path_buf(),
        message,
    })?;
    let entries = rootfs::plan(binary)?;
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;

    // The layer: tar → digest (diff id) → gzip → digest (blob), into a scratch file.
    let mut layer_file = tempfile::tempfile_in(&dir)
        .map_err(Error::io(format!("a scratch file in {}", dir.display())))?;
    let compressed = Digesting::new(BufWriter::new(&mut layer_file));
    // No file name and time 0 in the gzip header: the bytes depend on the files only.
    let gzip = GzBuilder::new()
        .mtime(0)
        .write(compressed, Compression::default());
    let tar_stream = layer::write_rootfs(&entries, mtime, Digesting::new(gzip))?;
    let (gzip, diff_id) = tar_stream.finish();
    let compressed = gzip.finish().map_err(Error::io("compressing the layer"))?;
    let (buffered, layer_digest) = compressed.finish();
    buffered.into_inner().map_err(|e| Error::Io {
        what: "writing the layer".into(),
        source: e.into_error(),
    })?;
    layer_file
        .rewind()
        .map_err(Error::io("rereading the layer"))?;

    let reference = format!("{repository}:{}", described.version);
    let config_bytes =
        serde_json::to_vec(&config(&described, &diff_id)).expect("the image config serializes");
    let config_digest = Digest::of(&config_bytes);
    let manifest_bytes = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": descriptor(CONFIG_TYPE, &config_digest),
        "layers": [descriptor(LAYER_TYPE, &layer_digest)],
    }))
    .expect("the manifest serializes");
    let manifest_digest = Digest::of(&manifest_bytes);
    let mut manifest_descriptor = descriptor(MANIFEST_TYPE, &manifest_digest);
    manifest_descriptor["annotations"] = json!({
        // containerd (kind, k3d, ctr) names the image from the first, OCI tools from the second.
        "io.containerd.image.name": reference,
        "org.opencontainers.image.ref.name": described.version,
    });
    let index_bytes = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": [manifest_descriptor],
    }))
    .expect("the index serializes");
    let blob = |d: &Digest| format!("blobs/sha256/{}", d.sha256);
    let docker_manifest = serde_json::to_vec(&json!([{
        "Config": blob(&config_digest),
        "RepoTags": [reference],
        "Layers": [blob(&layer_digest)],
    }]))
    .expect("manifest.json serializes");

    // The archive, written beside `out` and renamed into place only when complete.
    let partial = tempfile::NamedTempFile::new_in(&dir)
        .map_err(Error::io(format!("a scratch file in {}", dir.display())))?;
    let mut tar = tar::Builder::new(BufWriter::new(partial));
    for (path, bytes) in [
        ("oci-layout", &br#"{"imageLayoutVersion":"1.0.0"}"#[..]),
        ("index.json", &index_bytes),
        ("manifest.json", &docker_manifest),
    ] {
        layer::append_file(&mut tar, path, 0o644, bytes.len() as u64, bytes, mtime)
            .map_err(Error::io(format!("writing {path} into the archive")))?;
    }
    for dir_entry in ["blobs/", "blobs/sha256/"] {
        layer::append_dir(&mut tar, dir_entry, mtime)
            .map_err(Error::io("writing the archive's directories"))?;
    }
    let mut blobs: Vec<(String, Blob)> = vec![
        (blob(&config_digest), Blob::Bytes(&config_bytes)),
        (blob(&manifest_digest), Blob::Bytes(&manifest_bytes)),
        (blob(&layer_digest), Blob::Layer),
    ];
    blobs.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, content) in blobs {
        let written = match content {
            Blob::Bytes(bytes) => {
                layer::append_file(&mut tar, &path, 0o644, bytes.len() as u64, bytes, mtime)
            }
            Blob::Layer => layer::append_file(
                &mut tar,
                &path,
                0o644,
                layer_digest.size,
                &mut layer_file,
                mtime,
            ),
        };
        written.map_err(Error::io(format!("writing {path} into the archive")))?;
    }
    let partial = tar
        .into_inner()
        .map_err(Error::io("finishing the archive"))?
        .into_inner()
        .map_err(|e| Error::Io {
            what: "writing the archive".into(),
            source: e.into_error(),
        })?;
    partial
        .as_file()
        .sync_all()
        .map_err(Error::io("writing the archive"))?;
    // A scratch file is private (0600); the archive is an artifact to hand around.
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(partial.path(), fs::Permissions::from_mode(0o644))
            .map_err(Error::io(format!("setting the mode of {}", out.display())))?;
    }
    partial.persist(out).map_err(|e| Error::Io {
        what: format!("moving the archive to {}", out.display()),
        source: e.error,
    })?;
    let archive_size = fs::metadata(out)
        .map_err(Error::io(format!("reading {}", out.display())))?
        .len();
    Ok(Built {
        path: out.to_path_buf(),
        reference,
        manifest: manifest_digest,
        layer: layer_digest,
        unpacked_size: diff_id.size,
        archive_size,
        files: entries.iter().map(|e| format!("/{}", e.path)).collect(),
        described,
    })
}

enum Blob<'a> {
    Bytes(&'a [u8]),
    Layer,
}

/// Writes the root filesystem of `binary` into `dir` (the Dockerfile's build stage).
pub fn write_rootfs(binary: &Path, dir: &Path) -> Result<Vec<String>, Error> {
    let entries = rootfs::plan(binary)?;
    rootfs::write_dir(&entries, dir)?;
    Ok(entries.iter().map(|e| format!("/{}", e.path)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described() -> Described {
        Described {
            version: "0.1.0".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            build_date: "2026-12-06T16:45:00Z".into(),
            os: "linux".into(),
            architecture: "amd64".into(),
        }
    }

    #[test]
    fn the_config_runs_sluice_as_65532_with_the_oci_labels() {
        let diff = Digest::of(b"layer");
        let c = config(&described(), &diff);
        assert_eq!(c["config"]["User"], "65532:65532");
        assert_eq!(c["config"]["Entrypoint"], json!(["/usr/bin/sluice"]));
        assert_eq!(c["config"]["Cmd"], json!(["controller"]));
        assert_eq!(c["os"], "linux");
        assert_eq!(c["architecture"], "amd64");
        assert_eq!(c["rootfs"]["diff_ids"], json!([diff.id()]));
        let labels = &c["config"]["Labels"];
        assert_eq!(labels["org.opencontainers.image.version"], "0.1.0");
        assert_eq!(
            labels["org.opencontainers.image.revision"],
            "0123456789abcdef0123456789abcdef01234567"
        );
        assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");
        assert_eq!(
            labels["org.opencontainers.image.source"],
            "https://github.com/sluice-rollouts/sluice"
        );
        assert_eq!(c["created"], "2026-12-06T16:45:00Z");
    }

    #[test]
    fn build_dates_become_tar_times() {
        assert_eq!(seconds_since_epoch("1970-01-01T00:01:40Z"), Ok(100));
        assert!(seconds_since_epoch("yesterday").is_err());
    }
}
