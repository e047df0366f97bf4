//! What the binary says about itself: `sluice version`, parsed.

use std::path::Path;
use std::process::Command;

use crate::Error;

/// The facts the image's labels and config are made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// `0.1.0` (without the `v`).
    pub version: String,
    /// The full git commit.
    pub commit: String,
    /// RFC 3339, UTC.
    pub build_date: String,
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, ... (the OCI names).
    pub architecture: String,
}

/// Runs `binary version` and parses it; refuses a binary of another release or of no commit.
pub fn describe(binary: &Path) -> Result<Described, Error> {
    let fail = |message: String| Error::Describe {
        binary: binary.to_path_buf(),
        message,
    };
    let out = Command::new(binary)
        .arg("version")
        .output()
        .map_err(|e| fail(format!("cannot run: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let described = parse(&String::from_utf8_lossy(&out.stdout)).map_err(fail)?;
    if described.version != crate::VERSION {
        return Err(Error::VersionMismatch {
            binary: binary.to_path_buf(),
            binary_version: described.version,
        });
    }
    if described.commit == "unknown" {
        return Err(Error::UnknownCommit {
            binary: binary.to_path_buf(),
        });
    }
    Ok(described)
}

/// Parses the output of `sluice version`:
///
/// ```text
/// sluice: v0.1.0+b17ad90
///   BuildDate: 2026-12-06T16:45:00Z
///   GitCommit: b17ad90d...
///   RustVersion: rustc 1.95.0 (...)
///   Platform: linux/amd64
/// ```
pub fn parse(text: &str) -> Result<Described, String> {
    let mut lines = text.lines();
    let head = lines.next().unwrap_or_default();
    let version = head
        .strip_prefix("sluice: v")
        .and_then(|v| v.split('+').next())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("printed {head:?}, not `sluice: vX.Y.Z+commit`"))?;
    let field = |key: &str| {
        text.lines()
            .filter_map(|l| l.trim().split_once(": "))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("printed no {key}"))
    };
    let platform = field("Platform")?;
    let (os, architecture) = platform
        .split_once('/')
        .ok_or_else(|| format!("printed Platform {platform:?}, not os/arch"))?;
    Ok(Described {
        version: version.to_string(),
        commit: field("GitCommit")?,
        build_date: field("BuildDate")?,
        os: os.to_string(),
        architecture: architecture.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "sluice: v0.1.0+b17ad90\n  BuildDate: 2026-12-06T16:45:00Z\n  \
        GitCommit: b17ad90d0123456789abcdef0123456789abcdef\n  \
        RustVersion: rustc 1.95.0 (59807616e 2026-04-14)\n  Platform: linux/amd64\n";

    #[test]
    fn the_version_report_gives_release_commit_date_and_platform() {
        assert_eq!(
            parse(OUTPUT).unwrap(),
            Described {
                version: "0.1.0".into(),
                commit: "b17ad90d0123456789abcdef0123456789abcdef".into(),
                build_date: "2026-12-06T16:45:00Z".into(),
                os: "linux".into(),
                architecture: "amd64".into(),
            }
        );
    }

    #[test]
    fn a_report_without_a_field_is_refused_naming_it() {
        let without = OUTPUT.replace("  Platform: linux/amd64\n", "");
        assert_eq!(parse(&without), Err("printed no Platform".to_string()));
        assert!(
            parse("sluice 0.1.0")
                .unwrap_err()
                .contains("sluice: vX.Y.Z")
        );
    }
}
