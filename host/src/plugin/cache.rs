//! On-disk cache of compiled plugins, which cannot be planted.
//!
//! A compiled artefact is native code that wasmtime maps executable without
//! checking it, so an entry someone else wrote would run outside the
//! sandbox. Every entry is therefore authenticated before it is
//! deserialized: an HMAC-SHA256 under a per-user key (a 0600 file only this
//! user can read) over the engine's compatibility key, the SHA-256 of the
//! component's bytes and the artefact. The cache's folders are created
//! 0700; folders or files owned by another user, writable by group or
//! others, or reached through a symlink are refused (the cache is then not
//! used, with a warning saying why). Entries are read once into memory,
//! checked, and deserialized from those bytes. The folder is capped in size;
//! the least recently used entries go first.

use std::fs::{File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context as _, bail};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmtime::Engine;
use wasmtime::component::Component;

/// `$GENAI_BENCH_CACHE_DIR`, else `$XDG_CACHE_HOME/genai-bench`, else
/// `$HOME/.cache/genai-bench`; `plugins/` below it.
pub fn default_dir() -> Option<PathBuf> {
    let base = if let Some(d) = std::env::var_os("GENAI_BENCH_CACHE_DIR") {
        PathBuf::from(d)
    } else if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        PathBuf::from(d).join("genai-bench")
    } else {
        PathBuf::from(std::env::var_os("HOME")?).join(".cache/genai-bench")
    };
    Some(base.join("plugins"))
}

/// Default cap on the compiled-plugin folder's size.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

const MAGIC: &[u8; 8] = b"GBCWASM\x01";
const TAG_LEN: usize = 32;
const KEY_FILE: &str = "cache.key";

/// An authenticated compiled-plugin cache in one folder.
pub struct CompileCache {
    dir: PathBuf,
    engine_key: String,
    key: [u8; 32],
    max_bytes: u64,
}

impl CompileCache {
    /// Open (creating 0700 if needed) the cache folder `dir` and its parent,
    /// and read or create the per-user key. Refuses folders and key files
    /// that another user could have written.
    pub fn open(dir: PathBuf, engine: &Engine, max_bytes: u64) -> anyhow::Result<Self> {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            if std::fs::symlink_metadata(parent).is_err() {
                secure_dir(parent)?;
            }
            check_parent(parent)?;
        }
        secure_dir(&dir)?;
        let key = read_or_create_key(&dir.join(KEY_FILE))?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Ok(CompileCache {
            dir,
            engine_key: format!("{:016x}", h.finish()),
            key,
            max_bytes,
        })
    }

    fn entry(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    fn tag(&self, sha256: &str, artefact: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        mac.update(self.engine_key.as_bytes());
        mac.update(b"\0");
        mac.update(sha256.as_bytes());
        mac.update(b"\0");
        mac.update(artefact);
        mac
    }

    /// The compiled component for the component whose bytes hash to
    /// `sha256`, if a valid entry exists. Anything else (missing, foreign,
    /// tampered, another component's entry) is a miss, with a warning when
    /// the entry was there but refused.
    pub fn get(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.entry(sha256);
        let bytes = match read_private(&path, self.max_bytes) {
            Ok(Some(b)) => b,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!("not using cached compiled plugin {}: {e:#}", path.display());
                return None;
            }
        };
        let artefact = match bytes.strip_prefix(MAGIC.as_slice()) {
            Some(rest) if rest.len() >= TAG_LEN => rest,
            _ => {
                tracing::warn!(
                    "not using cached compiled plugin {}: not a genai-bench cache entry",
                    path.display()
                );
                return None;
            }
        };
        let (tag, artefact) = artefact.split_at(TAG_LEN);
        if self.tag(sha256, artefact).verify_slice(tag).is_err() {
            tracing::warn!(
                "not using cached compiled plugin {}: its authentication tag does not match (written by someone else, for another plugin, or corrupted); compiling again",
                path.display()
            );
            return None;
        }
        // SAFETY: the bytes carry a valid tag under this user's private key
        // for this engine and exactly this component, so this host wrote
        // them from its own compiler's output; they were read once, into
        // memory, and are deserialized from there.
        match unsafe { Component::deserialize(engine, artefact) } {
            Ok(c) => {
                // Least recently used entries are evicted first.
                if let Ok(f) = File::options()
                    .write(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                {
                    let _ = f.set_modified(SystemTime::now());
                }
                Some(c)
            }
            Err(e) => {
                tracing::warn!(
                    "ignoring unreadable compiled plugin {}: {e:#}",
                    path.display()
                );
                None
            }
        }
    }

    /// Store the artefact compiled from the component hashing to `sha256`,
    /// then evict old entries past the size cap.
    pub fn put(&self, sha256: &str, artefact: &[u8]) -> anyhow::Result<()> {
        let path = self.entry(sha256);
        let tag = self.tag(sha256, artefact).finalize().into_bytes();
        // Write a private temporary file, then rename, so a concurrent reader
        // never sees half an entry.
        let tmp = self.dir.join(format!(
            ".{sha256}.{}.{}.tmp",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        ));
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        let written = f
            .write_all(MAGIC)
            .and_then(|_| f.write_all(&tag))
            .and_then(|_| f.write_all(artefact))
            .and_then(|_| f.sync_all());
        drop(f);
        if let Err(e) = written.and_then(|_| std::fs::rename(&tmp, &path)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
        self.evict();
        Ok(())
    }

    /// Delete the least recently used entries until the folder is under its
    /// cap.
    fn evict(&self) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = rd
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, m.len(), e.path()))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        entries.sort();
        for (_, len, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                tracing::debug!(
                    "compiled-plugin cache over its cap: removed {}",
                    path.display()
                );
                total = total.saturating_sub(len);
            }
        }
    }
}

/// Create `dir` (0700) if missing; refuse it unless it is a real folder
/// owned by this user and not writable by group or others.
fn secure_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
            // `mode` is filtered by the umask; make it exactly 0700.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        Ok(_) => {}
    }
    let m = std::fs::symlink_metadata(dir)?;
    if m.file_type().is_symlink() {
        bail!(
            "{} is a symlink; the cache must be a real folder (set GENAI_BENCH_CACHE_DIR to one)",
            dir.display()
        );
    }
    if !m.is_dir() {
        bail!("{} is not a folder", dir.display());
    }
    check_owner_and_mode(dir, &m, 0o022)
}

/// The cache folder's parent may belong to this user or root, and others
/// may write to it only if it is sticky (like `/tmp`): otherwise someone
/// could replace the cache folder itself.
fn check_parent(parent: &Path) -> anyhow::Result<()> {
    let m = std::fs::metadata(parent).with_context(|| format!("reading {}", parent.display()))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if m.uid() != me && m.uid() != 0 {
        bail!(
            "{} belongs to user {}; the cache must be in a folder of this user's",
            parent.display(),
            m.uid()
        );
    }
    if m.mode() & 0o022 != 0 && m.mode() & 0o1000 == 0 {
        bail!(
            "{} is writable by others (mode {:o}) and not sticky; put the cache elsewhere (GENAI_BENCH_CACHE_DIR)",
            parent.display(),
            m.mode() & 0o7777
        );
    }
    Ok(())
}

/// Refuse a file or folder not owned by this user, or with any of
/// `forbidden` mode bits.
fn check_owner_and_mode(path: &Path, m: &std::fs::Metadata, forbidden: u32) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if m.uid() != me {
        bail!(
            "{} belongs to user {}, not to this user ({me}); remove it or set GENAI_BENCH_CACHE_DIR",
            path.display(),
            m.uid()
        );
    }
    if m.mode() & forbidden != 0 {
        bail!(
            "{} has mode {:o}, which lets others write or read it; run `chmod go-rwx {}`",
            path.display(),
            m.mode() & 0o7777,
            path.display()
        );
    }
    Ok(())
}

/// Read a regular file of this user's that no one else can write, without
/// following symlinks; `None` when it does not exist.
fn read_private(path: &Path, max_len: u64) -> anyhow::Result<Option<Vec<u8>>> {
    let mut f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            bail!("it is a symlink")
        }
        Err(e) => return Err(e.into()),
    };
    let m = f.metadata()?;
    if !m.is_file() {
        bail!("it is not a regular file");
    }
    check_owner_and_mode(path, &m, 0o022)?;
    if m.len() > max_len {
        bail!("it is larger than the cache's cap of {max_len} bytes");
    }
    let mut bytes = Vec::with_capacity(m.len() as usize);
    Read::by_ref(&mut f)
        .take(max_len + 1)
        .read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// This user's cache key: 32 random bytes in a 0600 file, created on first
/// use.
fn read_or_create_key(path: &Path) -> anyhow::Result<[u8; 32]> {
    for _ in 0..2 {
        if let Some(bytes) = read_private(path, 64)? {
            let m = std::fs::symlink_metadata(path)?;
            check_owner_and_mode(path, &m, 0o077)?;
            return bytes.try_into().map_err(|_| {
                anyhow::anyhow!("{} is not a 32-byte key; delete it", path.display())
            });
        }
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
        {
            Ok(mut f) => {
                f.write_all(&key)?;
                f.sync_all()?;
                return Ok(key);
            }
            // Another process created it first: read theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }
    bail!("cannot read or create the cache key {}", path.display())
}
