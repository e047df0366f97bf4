//! Which files the image holds: the binary, the shared libraries `ldd` names for it, the few
//! `/etc` files a glibc program reads, and the CA bundle TLS clients trust.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// Where a file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contents {
    /// A file on this machine (symlinks are followed: the image holds the target's bytes).
    Host(PathBuf),
    /// Bytes written by this crate.
    Bytes(Vec<u8>),
}

/// One regular file of the image's root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the image, relative to `/` (`usr/bin/sluice`).
    pub path: String,
    /// Permission bits.
    pub mode: u32,
    pub contents: Contents,
}

impl Entry {
    /// The bytes of this file.
    pub fn read(&self) -> Result<Vec<u8>, Error> {
        match &self.contents {
            Contents::Host(path) => {
                fs::read(path).map_err(Error::io(format!("reading {}", path.display())))
            }
            Contents::Bytes(bytes) => Ok(bytes.clone()),
        }
    }
}

/// The non-root user 65532 (`nonroot`, as in distroless images) and root, with no login shell.
pub const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\n\
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
/// The groups of [`PASSWD`].
pub const GROUP: &str = "root:x:0:\nnonroot:x:65532:\n";
/// Names resolve from `/etc/hosts` (which the kubelet mounts) before DNS, as on any host;
/// glibc's default without this file asks DNS first.
pub const NSSWITCH: &str = "passwd: files\ngroup: files\nhosts: files dns\n";

/// The system's CA bundle (Debian's `ca-certificates`), copied to the same path in the image.
/// In-cluster the controller trusts the service account's CA; a kubeconfig without a CA (and
/// kube's TLS setup, which loads the system roots even for a plain-HTTP server) needs these.
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Every file of the image for `binary`, sorted by path: the binary as `usr/bin/sluice`, each
/// shared library at the path `ldd` names (so the loader finds it where the binary was linked
/// to look), the `/etc` files and the CA bundle.
pub fn plan(binary: &Path) -> Result<Vec<Entry>, Error> {
    let mut entries = vec![Entry {
        path: crate::ENTRYPOINT.trim_start_matches('/').to_string(),
        mode: 0o755,
        contents: Contents::Host(binary.to_path_buf()),
    }];
    for library in shared_libraries(binary)? {
        entries.push(Entry {
            path: library
                .to_string_lossy()
                .trim_start_matches('/')
                .to_string(),
            mode: 0o755,
            contents: Contents::Host(library),
        });
    }
    for (path, text) in [
        ("etc/passwd", PASSWD),
        ("etc/group", GROUP),
        ("etc/nsswitch.conf", NSSWITCH),
    ] {
        entries.push(Entry {
            path: path.to_string(),
            mode: 0o644,
            contents: Contents::Bytes(text.as_bytes().to_vec()),
        });
    }
    if !Path::new(CA_BUNDLE).is_file() {
        return Err(Error::CaBundleMissing);
    }
    entries.push(Entry {
        path: CA_BUNDLE.trim_start_matches('/').to_string(),
        mode: 0o644,
        contents: Contents::Host(PathBuf::from(CA_BUNDLE)),
    });
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries.dedup_by(|a, b| a.path == b.path);
    Ok(entries)
}

/// The shared objects `binary` loads, as `ldd` resolves them on this machine: the libraries and
/// the program interpreter (none for a static binary).
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, Error> {
    let out = Command::new("ldd").arg(binary).output().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            Error::LddMissing
        } else {
            Error::Ldd {
                binary: binary.to_path_buf(),
                message: e.to_string(),
            }
        }
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // glibc's ldd exits 1 for a static executable, with "not a dynamic executable".
    if stdout.contains("statically linked") || stderr.contains("not a dynamic executable") {
        return Ok(Vec::new());
    }
    if !out.status.success() {
        return Err(Error::Ldd {
            binary: binary.to_path_buf(),
            message: stderr.trim().to_string(),
        });
    }
    parse_ldd(&stdout).map_err(|library| Error::LibraryNotFound {
        binary: binary.to_path_buf(),
        library,
    })
}

/// The absolute paths in `ldd` output. The kernel's vDSO (no path) is skipped; a library ldd
/// could not find is the `Err`, by name.
pub fn parse_ldd(output: &str) -> Result<Vec<PathBuf>, String> {
    let mut paths = Vec::new();
    for line in output.lines().map(str::trim).filter(|l| !l.is_empty()) {
        // `name => /path (0xaddr)`, `name => not found`, `/path/ld.so (0xaddr)`, `vdso (0xaddr)`.
        let (name, target) = match line.split_once(" => ") {
            Some((name, target)) => (name.trim(), target.trim()),
            None => (line, line),
        };
        if target.starts_with("not found") {
            return Err(name.to_string());
        }
        let path = target.split(" (0x").next().unwrap_or(target).trim();
        if path.starts_with('/') {
            paths.push(PathBuf::from(path));
        }
    }
    Ok(paths)
}

/// Lays `entries` out under `dir` (for the Dockerfile's `COPY --from`), with their modes.
pub fn write_dir(entries: &[Entry], dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt as _;
    for entry in entries {
        let target = dir.join(&entry.path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)
                .map_err(Error::io(format!("creating {}", parent.display())))?;
        }
        fs::write(&target, entry.read()?)
            .map_err(Error::io(format!("writing {}", target.display())))?;
        fs::set_permissions(&target, fs::Permissions::from_mode(entry.mode)).map_err(Error::io(
            format!("setting the mode of {}", target.display()),
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_the_libraries_and_the_loader_but_not_the_vdso() {
        let out = "\tlinux-vdso.so.1 (0x00007ffc8a5f2000)\n\
            \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f0a1c3e0000)\n\
            \tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f0a1c300000)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0a1c000000)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f0a1c42a000)\n";
        assert_eq!(
            parse_ldd(out).unwrap(),
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libm.so.6",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2",
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn a_library_ldd_cannot_find_is_named() {
        let out =
            "\tlibssl.so.3 => not found\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x1)\n";
        assert_eq!(parse_ldd(out), Err("libssl.so.3".to_string()));
    }

    #[test]
    fn a_static_binary_needs_no_library() {
        assert_eq!(parse_ldd("\tstatically linked\n"), Ok(Vec::new()));
    }

    #[test]
    fn the_user_65532_is_named_in_passwd_and_group() {
        let user = PASSWD
            .lines()
            .find(|l| l.split(':').nth(2) == Some("65532"))
            .expect("uid 65532");
        assert_eq!(user.split(':').nth(3), Some("65532"));
        assert!(GROUP.lines().any(|l| l.split(':').nth(2) == Some("65532")));
        // No login shell for anyone: the image has none.
        assert!(PASSWD.lines().all(|l| l.ends_with(":/sbin/nologin")));
    }

    #[test]
    fn the_plan_is_the_binary_its_libraries_and_etc_sorted() {
        // Any dynamically linked program of this machine stands in for sluice here.
        let binary = Path::new("/bin/true");
        let entries = plan(binary).unwrap();
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted);
        assert!(paths.contains(&"usr/bin/sluice"));
        assert!(paths.contains(&"etc/passwd"));
        assert!(
            paths.iter().any(|p| p.contains("libc.so")),
            "libc missing from {paths:?}"
        );
        assert!(
            entries
                .iter()
                .all(|e| !e.path.starts_with('/') && !e.path.ends_with("sh")),
            "{paths:?}"
        );
    }
}
