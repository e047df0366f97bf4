//! Sluice's container image, built without a container daemon and without a base image.
//!
//! The image is one layer holding the `sluice` binary, exactly the shared libraries `ldd` names
//! for it (the C library and its loader: the binary links glibc dynamically), three small files
//! in `/etc` (`passwd` and `group` naming the non-root user 65532, `nsswitch.conf`) and the
//! system's CA bundle. No shell, no package manager, nothing else. Its metadata — version, git commit, build date,
//! platform — comes from the binary itself (`sluice version`), so the labels cannot disagree
//! with what the binary reports.
//!
//! The archive is written byte for byte by this crate (tar, gzip, SHA-256): an OCI image layout
//! that also carries Docker's `manifest.json`, so one file loads everywhere — `kind load
//! image-archive`, `k3d image import`, `ctr images import`, `docker load`, `podman load`, and
//! `skopeo copy oci-archive:…` to push it to a registry. Every timestamp is the binary's build
//! date and every owner is root, so the same binary always gives the same image digest.
//!
//! `make image` runs `sluice-image archive`; the Dockerfile's build stage runs `sluice-image
//! rootfs` to lay out the same files for `COPY --from`.

pub mod archive;
pub mod binary;
pub mod layer;
pub mod rootfs;

use std::path::PathBuf;

/// Where the image is published; the install manifests pin `REPOSITORY:<version>`.
pub const REPOSITORY: &str = "ghcr.io/sluice-rollouts/sluice";
/// The non-root user and group the image runs as (distroless' `nonroot`).
pub const USER: &str = "65532:65532";
/// The user id alone, as Kubernetes' `runAsUser` names it.
pub const UID: u32 = 65532;
/// The binary's path inside the image, and the image's entrypoint.
pub const ENTRYPOINT: &str = "/usr/bin/sluice";
/// The arguments run when none are given: the controller.
pub const DEFAULT_ARGS: &[&str] = &["controller"];
/// The release these crates belong to: the workspace's `[workspace.package] version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `REPOSITORY:VERSION`, the reference the install manifests carry.
pub fn reference() -> String {
    format!("{REPOSITORY}:{VERSION}")
}

/// Why an image could not be built. Every message names what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("ldd is not on PATH: install the Debian package libc-bin (apt-get install libc-bin)")]
    LddMissing,
    #[error(
        "{} is missing: install the Debian package ca-certificates (apt-get install ca-certificates)",
        crate::rootfs::CA_BUNDLE
    )]
    CaBundleMissing,
    #[error("ldd {binary}: {message}")]
    Ldd { binary: PathBuf, message: String },
    #[error(
        "{binary} needs {library}, which ldd cannot find on this machine: install it, or build on a machine that has it"
    )]
    LibraryNotFound { binary: PathBuf, library: String },
    #[error("`{binary} version` {message}")]
    Describe { binary: PathBuf, message: String },
    #[error(
        "{binary} is sluice {binary_version}, but this workspace is {VERSION}: rebuild it (cargo build --release --bin sluice)"
    )]
    VersionMismatch {
        binary: PathBuf,
        binary_version: String,
    },
    #[error(
        "{binary} does not know its git commit (built outside a git checkout?); the image's revision label needs it: rebuild with SLUICE_GIT_COMMIT=<commit>"
    )]
    UnknownCommit { binary: PathBuf },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}
