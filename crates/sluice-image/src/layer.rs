//! Deterministic tar streams and SHA-256 digests: the same files give the same bytes.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

use crate::Error;
use crate::rootfs::{Contents, Entry};

/// A content address, `sha256:<hex>`, and the size of what it addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub sha256: String,
    pub size: u64,
}

impl Digest {
    /// `sha256:<hex>`.
    pub fn id(&self) -> String {
        format!("sha256:{}", self.sha256)
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest {
            sha256: hex(&Sha256::digest(bytes)),
            size: bytes.len() as u64,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A writer that digests what passes through it.
pub struct Digesting<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Digesting<W> {
    pub fn new(inner: W) -> Self {
        Digesting {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// The writer and the digest of everything written.
    pub fn finish(self) -> (W, Digest) {
        let digest = Digest {
            sha256: hex(&self.hasher.finalize()),
            size: self.size,
        };
        (self.inner, digest)
    }
}

impl<W: Write> Write for Digesting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A tar header owned by root with the given mode and time, as every entry here has.
fn header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_size(size);
    header.set_mtime(mtime);
    header
}

/// Appends a directory entry (`path` ends in `/`).
pub fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str, mtime: u64) -> io::Result<()> {
    let mut h = header(tar::EntryType::Directory, 0o755, 0, mtime);
    tar.append_data(&mut h, path, io::empty())
}

/// Appends a regular file of `size` bytes read from `data`.
pub fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    mode: u32,
    size: u64,
    data: impl Read,
    mtime: u64,
) -> io::Result<()> {
    let mut h = header(tar::EntryType::Regular, mode, size, mtime);
    tar.append_data(&mut h, path, data)
}

/// Every directory above the entries' paths, each once, as `a/`, `a/b/`.
fn parent_dirs(entries: &[Entry]) -> BTreeSet<String> {
    let mut dirs = BTreeSet::new();
    for entry in entries {
        let mut prefix = String::new();
        let parts: Vec<&str> = entry.path.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            prefix.push_str(part);
            prefix.push('/');
            dirs.insert(prefix.clone());
        }
    }
    dirs
}

/// Writes the root filesystem `entries` as one tar stream into `out`: directories before what
/// they hold, everything sorted by path, owned by root, dated `mtime`.
pub fn write_rootfs<W: Write>(entries: &[Entry], mtime: u64, out: W) -> Result<W, Error> {
    let mut tar = tar::Builder::new(out);
    let dirs = parent_dirs(entries);
    let mut items: Vec<(&str, Option<&Entry>)> = dirs.iter().map(|d| (d.as_str(), None)).collect();
    items.extend(entries.iter().map(|e| (e.path.as_str(), Some(e))));
    items.sort_by(|a, b| a.0.cmp(b.0));
    for (path, entry) in items {
        let written = match entry {
            None => append_dir(&mut tar, path, mtime),
            Some(entry) => match &entry.contents {
                Contents::Bytes(bytes) => append_file(
                    &mut tar,
                    path,
                    entry.mode,
                    bytes.len() as u64,
                    bytes.as_slice(),
                    mtime,
                ),
                Contents::Host(host) => {
                    let file = File::open(host)
                        .map_err(Error::io(format!("opening {}", host.display())))?;
                    let size = file
                        .metadata()
                        .map_err(Error::io(format!("reading {}", host.display())))?
                        .len();
                    append_file(&mut tar, path, entry.mode, size, file, mtime)
                }
            },
        };
        written.map_err(Error::io(format!("writing {path} into the layer")))?;
    }
    tar.into_inner()
        .map_err(Error::io("finishing the layer's tar stream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, bytes: &[u8]) -> Entry {
        Entry {
            path: path.into(),
            mode: 0o644,
            contents: Contents::Bytes(bytes.to_vec()),
        }
    }

    fn listing(tar_bytes: &[u8]) -> Vec<(String, u32, u64, u64, u64)> {
        let mut archive = tar::Archive::new(tar_bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn directories_come_before_their_files_and_everything_is_roots() {
        let entries = [file("usr/bin/sluice", b"elf"), file("etc/passwd", b"x")];
        let bytes = write_rootfs(&entries, 1_700_000_000, Vec::new()).unwrap();
        assert_eq!(
            listing(&bytes),
            [
                ("etc/", 0o755, 0, 0, 1_700_000_000),
                ("etc/passwd", 0o644, 0, 0, 1_700_000_000),
                ("usr/", 0o755, 0, 0, 1_700_000_000),
                ("usr/bin/", 0o755, 0, 0, 1_700_000_000),
                ("usr/bin/sluice", 0o644, 0, 0, 1_700_000_000),
            ]
            .map(|(p, m, u, g, t)| (p.to_string(), m, u, g, t))
        );
    }

    #[test]
    fn the_same_files_give_the_same_bytes() {
        let entries = [file("a/b", b"1"), file("a/c", b"22")];
        let one = write_rootfs(&entries, 5, Vec::new()).unwrap();
        let two = write_rootfs(&entries, 5, Vec::new()).unwrap();
        assert_eq!(Digest::of(&one), Digest::of(&two));
        let later = write_rootfs(&entries, 6, Vec::new()).unwrap();
        assert_ne!(Digest::of(&one), Digest::of(&later));
    }

    #[test]
    fn the_digesting_writer_agrees_with_the_digest_of_the_bytes() {
        let mut w = Digesting::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (bytes, digest) = w.finish();
        assert_eq!(digest, Digest::of(&bytes));
        assert_eq!(
            digest.id(),
            "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert_eq!(digest.size, 11);
    }
}
