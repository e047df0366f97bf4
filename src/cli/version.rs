//! `sluice version` and `sluice --version`: the release, the git commit and the build date,
//! embedded at build time by `build.rs`.
//!
//! The long form follows `kubectl argo rollouts version` (a `name: vX.Y.Z+commit` line, then
//! `Key: value` lines), so release tooling that reads one reads the other; `make image` reads it
//! to label the image.

/// The release, from the workspace's `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The full commit hash the binary was built from, or `unknown` outside a git checkout.
pub const GIT_COMMIT: &str = env!("SLUICE_GIT_COMMIT");
/// When it was built (RFC 3339, UTC); `SOURCE_DATE_EPOCH` when that was set.
pub const BUILD_DATE: &str = env!("SLUICE_BUILD_DATE");
/// `rustc --version` of the compiler that built it.
pub const RUST_VERSION: &str = env!("SLUICE_RUSTC_VERSION");

/// What `sluice --version` prints after the program name.
pub const CLAP_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SLUICE_GIT_COMMIT"),
    ", built ",
    env!("SLUICE_BUILD_DATE"),
    ")"
);

/// `os/arch` in the names container platforms use (`linux/amd64`, `linux/arm64`).
pub fn platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    format!("{}/{arch}", std::env::consts::OS)
}

/// `v0.1.0+b17ad90`: the release and the abbreviated commit.
pub fn short() -> String {
    let commit = GIT_COMMIT.get(..7).unwrap_or(GIT_COMMIT);
    format!("v{VERSION}+{commit}")
}

/// The whole report of `sluice version`.
pub fn long() -> String {
    format!(
        "sluice: {}\n  BuildDate: {BUILD_DATE}\n  GitCommit: {GIT_COMMIT}\n  RustVersion: {RUST_VERSION}\n  Platform: {}\n",
        short(),
        platform()
    )
}

/// `sluice version [--short]`.
pub fn print(short_form: bool) {
    if short_form {
        println!("{}", short());
    } else {
        print!("{}", long());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_short_form_is_the_release_and_the_abbreviated_commit() {
        let s = short();
        assert!(s.starts_with(&format!("v{VERSION}+")), "{s}");
        assert!(GIT_COMMIT.starts_with(s.split('+').nth(1).unwrap()), "{s}");
    }

    #[test]
    fn the_long_form_names_every_field_once() {
        let text = long();
        let keys: Vec<&str> = text
            .lines()
            .skip(1)
            .map(|l| l.trim().split(": ").next().unwrap())
            .collect();
        assert_eq!(
            keys,
            ["BuildDate", "GitCommit", "RustVersion", "Platform"],
            "{text}"
        );
        assert!(text.starts_with(&format!("sluice: {}\n", short())));
    }

    #[test]
    fn dash_dash_version_names_the_commit_and_the_build_date() {
        use clap::Parser as _;
        let err = super::super::Cli::try_parse_from(["sluice", "--version"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayVersion);
        let text = err.to_string();
        assert_eq!(
            text.trim_end(),
            format!("sluice {VERSION} (commit {GIT_COMMIT}, built {BUILD_DATE})")
        );
    }

    #[test]
    fn the_build_date_is_rfc3339_utc() {
        let parsed = chrono::DateTime::parse_from_rfc3339(BUILD_DATE).expect(BUILD_DATE);
        assert_eq!(parsed.offset().local_minus_utc(), 0);
        assert!(BUILD_DATE.ends_with('Z'));
    }

    #[test]
    fn the_commit_is_the_checkouts_head_when_built_from_git() {
        let head = std::process::Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        match head {
            // Built from a checkout: the binary names exactly its commit.
            Some(head) if std::env::var_os("SLUICE_GIT_COMMIT").is_none() => {
                assert_eq!(GIT_COMMIT, head)
            }
            _ => assert!(!GIT_COMMIT.is_empty()),
        }
    }
}
