//! Compiling an untrusted component under a size, time and memory limit.
//!
//! Cranelift's cost grows faster than linearly with some inputs: a crafted
//! 16 MB component can take a minute and gigabytes to compile. The
//! `genai-bench` binary therefore compiles in a child process of its own
//! (`genai-bench __compile-plugin`, no environment, an address-space limit),
//! killed at `--plugin-compile-timeout`; the parent loads the artefact the
//! child wrote to its stdout. A library user without the binary compiles on
//! a thread instead: the timeout still returns an error at once, but that
//! thread runs on until cranelift finishes.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::PluginLimits;
use super::sandbox::display_safe;

/// The hidden first argument that makes the binary a compiler child.
pub const CHILD_ARG: &str = "__compile-plugin";

/// Address space a compiler child may use.
const CHILD_MEMORY_LIMIT: u64 = 6 << 30;

/// The `genai-bench` binary to compile in, when this process is one.
pub fn default_compiler() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let name = exe.file_name()?.to_str()?;
    (name == "genai-bench" || name.starts_with("genai-bench.")).then_some(exe)
}

/// A compiled component and its serialized artefact (for the cache).
pub struct Compiled {
    /// Ready to instantiate.
    pub component: Component,
    /// What [`Component::serialize`] would return.
    pub artefact: Vec<u8>,
}

/// Compile `wasm` for `engine` within `limits`, in a child process when
/// `compiler` names the genai-bench binary.
pub fn compile(
    engine: &Engine,
    wasm: &[u8],
    limits: &PluginLimits,
    compiler: Option<&Path>,
) -> anyhow::Result<Compiled> {
    if wasm.len() > limits.max_component_bytes {
        bail!(
            "the component is {} bytes, over the limit of {} MiB (--plugin-max-size-mb)",
            wasm.len(),
            limits.max_component_bytes >> 20
        );
    }
    let artefact = match compiler {
        Some(exe) => compile_in_child(exe, wasm, limits.compile_timeout)?,
        None => compile_on_thread(engine, wasm, limits.compile_timeout)?,
    };
    // SAFETY: the artefact was produced just now by this host's own
    // compiler (this binary in a child process, or this process), from the
    // configuration `engine` was built with.
    let component = unsafe { Component::deserialize(engine, &artefact) }
        .map_err(|e| anyhow::anyhow!("loading the compiled plugin: {e:#}"))?;
    Ok(Compiled {
        component,
        artefact,
    })
}

fn too_slow(timeout: Duration) -> anyhow::Error {
    anyhow::anyhow!(
        "the plugin did not compile within {} s (--plugin-compile-timeout); a component this slow to compile is refused",
        timeout.as_secs()
    )
}

fn compile_on_thread(engine: &Engine, wasm: &[u8], timeout: Duration) -> anyhow::Result<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let (engine, wasm) = (engine.clone(), wasm.to_vec());
    std::thread::Builder::new()
        .name("plugin-compile".into())
        .spawn(move || {
            let _ = tx.send(engine.precompile_component(&wasm));
        })?;
    match rx.recv_timeout(timeout) {
        Ok(r) => r.map_err(|e| anyhow::anyhow!("the plugin does not compile: {e:#}")),
        Err(_) => Err(too_slow(timeout)),
    }
}

fn compile_in_child(exe: &Path, wasm: &[u8], timeout: Duration) -> anyhow::Result<Vec<u8>> {
    let started = Instant::now();
    let mut child = Command::new(exe)
        .arg(CHILD_ARG)
        // Nothing of this process's environment (the API key among it).
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting the plugin compiler {}", exe.display()))?;
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    std::thread::scope(|s| {
        // Pipes are small: feed and drain on threads while this one waits.
        s.spawn(move || {
            let _ = stdin.write_all(wasm);
        });
        let out = s.spawn(move || {
            let mut v = Vec::new();
            stdout.read_to_end(&mut v).map(|_| v)
        });
        let err = s.spawn(move || {
            let mut v = Vec::new();
            let _ = stderr.by_ref().take(64 << 10).read_to_end(&mut v);
            v
        });
        let status = loop {
            if let Some(st) = child.try_wait()? {
                break st;
            }
            if started.elapsed() >= timeout {
                let _ = child.kill();
                let _ = child.wait();
                return Err(too_slow(timeout));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let artefact = out
            .join()
            .map_err(|_| anyhow::anyhow!("reading the compiler's output panicked"))??;
        let err = err.join().unwrap_or_default();
        if !status.success() {
            let msg = String::from_utf8_lossy(&err);
            let msg = msg.trim();
            if msg.is_empty() {
                bail!("the plugin compiler failed ({status}), likely out of memory");
            }
            bail!("{}", display_safe(msg, 2000));
        }
        Ok(artefact)
    })
}

/// `genai-bench __compile-plugin`: read a component on stdin, write its
/// compiled artefact on stdout.
pub fn child_main() -> ExitCode {
    // SAFETY: setrlimit on this process with a valid struct.
    unsafe {
        let lim = libc::rlimit {
            rlim_cur: CHILD_MEMORY_LIMIT,
            rlim_max: CHILD_MEMORY_LIMIT,
        };
        libc::setrlimit(libc::RLIMIT_AS, &lim);
    }
    let run = || -> anyhow::Result<()> {
        let mut wasm = Vec::new();
        std::io::stdin().read_to_end(&mut wasm)?;
        let engine = Engine::new(&super::base_config())?;
        let artefact = engine
            .precompile_component(&wasm)
            .map_err(|e| anyhow::anyhow!("the plugin does not compile: {e:#}"))?;
        let mut out = std::io::stdout().lock();
        out.write_all(&artefact)?;
        out.flush()?;
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::from(1)
        }
    }
}
