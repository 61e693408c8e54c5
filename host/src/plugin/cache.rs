//! On-disk cache of compiled plugins.
//!
//! Compiling a multi-megabyte Python or JavaScript component takes seconds;
//! reading its precompiled artefact takes milliseconds. Entries are keyed by
//! the SHA-256 of the component and by the engine's compatibility hash, so a
//! different wasmtime version or configuration never reads a stale entry.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;

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

pub struct CompileCache {
    dir: PathBuf,
    engine_key: String,
}

impl CompileCache {
    pub fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        CompileCache {
            dir,
            engine_key: format!("{:016x}", h.finish()),
        }
    }

    /// The compiled component and whether it came from the cache.
    pub fn get_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        sha256: &str,
    ) -> anyhow::Result<(Component, bool)> {
        let path = self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key));
        if path.exists() {
            // SAFETY: the file was written by this host (below), under a name
            // bound to the component's hash and this exact engine
            // configuration; a failed read falls back to compiling.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(c) => return Ok((c, true)),
                Err(e) => tracing::warn!(
                    "ignoring unreadable compiled plugin {}: {e:#}",
                    path.display()
                ),
            }
        }
        let component = super::compile(engine, wasm)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::debug!("not caching compiled plugin at {}: {e:#}", path.display());
        }
        Ok((component, false))
    }

    fn store(&self, path: &std::path::Path, component: &Component) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let bytes = component.serialize()?;
        // Write then rename, so a concurrent reader never sees half a file.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}
