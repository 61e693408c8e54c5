//! Shared fixtures: one plugin runtime per test binary, plugin loaders and a
//! small HTTP/1.1 server with byte-exact control over response chunks.

pub mod attack;
pub mod real_servers;
pub mod server;

use std::sync::LazyLock;
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Timing-sensitive tests hold this exclusively; tests that load the
/// machine (benchmarks through the binary, looping plugins) hold it shared,
/// so timing checks never compete with them for the two cores.
static TIMING: LazyLock<RwLock<()>> = LazyLock::new(|| RwLock::new(()));

/// Taken by tests that load the machine.
pub async fn shared_machine() -> RwLockReadGuard<'static, ()> {
    TIMING.read().await
}

/// `shared_machine` for tests that are not async.
pub fn shared_machine_blocking() -> RwLockReadGuard<'static, ()> {
    TIMING.blocking_read()
}

/// Taken by timing-sensitive tests.
pub async fn whole_machine() -> RwLockWriteGuard<'static, ()> {
    TIMING.write().await
}

/// `whole_machine` for tests that are not async.
pub fn whole_machine_blocking() -> RwLockWriteGuard<'static, ()> {
    TIMING.blocking_write()
}

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use genai_bench::plugin::{
    BenchRequest, Event, LoadedPlugin, PluginError, PluginLimits, PluginRuntime, ResponseHead,
    RuntimeOptions, Task,
};

/// The runtime is shared so each plugin is compiled once per test binary.
pub fn runtime() -> &'static PluginRuntime {
    static RT: OnceLock<PluginRuntime> = OnceLock::new();
    RT.get_or_init(|| {
        PluginRuntime::new(RuntimeOptions {
            max_instances: 512,
            cache_dir: Some(cache_dir()),
            // A roomy deadline and a small memory cap, so that on a loaded
            // machine an allocating plugin reliably hits the cap before the
            // clock: each test then proves the limit it is about.
            limits: PluginLimits {
                memory_bytes: 64 << 20,
                call_timeout: std::time::Duration::from_secs(1),
                ..PluginLimits::default()
            },
            ..RuntimeOptions::default()
        })
        .expect("plugin runtime")
    })
}

/// The `genai-bench` binary with a test cache folder and no key or log
/// level inherited from the environment.
pub fn genai_bench() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_genai-bench"));
    c.env(
        "GENAI_BENCH_CACHE_DIR",
        cache_dir().parent().unwrap().join("test-cli-cache"),
    )
    .env_remove("MODEL_API_KEY")
    .env_remove("BASETEN_API_KEY")
    .env_remove("OPENAI_API_KEY")
    .env_remove("LOG_LEVEL");
    c
}

/// Fail with the command's stderr unless it succeeded.
pub fn assert_success(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Compiled plugins are cached under target/, shared by every test run.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-plugin-cache")
}

pub fn baseten() -> Arc<LoadedPlugin> {
    static P: OnceLock<Arc<LoadedPlugin>> = OnceLock::new();
    P.get_or_init(|| runtime().load_builtin("baseten").expect("load baseten"))
        .clone()
}

/// Path of a test plugin built by the host's build script.
pub fn test_plugin_path(stem: &str) -> PathBuf {
    PathBuf::from(env!("GENAI_BENCH_PLUGIN_WASM_DIR")).join(format!("{stem}.wasm"))
}

pub fn hostile() -> Arc<LoadedPlugin> {
    static P: OnceLock<Arc<LoadedPlugin>> = OnceLock::new();
    P.get_or_init(|| {
        runtime()
            .load_file(&test_plugin_path("hostile_plugin"))
            .expect("load hostile plugin")
    })
    .clone()
}

pub fn chat_request(
    prompt: &str,
    max_tokens: Option<u32>,
    stream: bool,
    params: &str,
) -> BenchRequest {
    let mut r = BenchRequest::text("test-model", prompt, max_tokens, stream);
    r.params_json = params.to_string();
    r
}

pub fn head(status: u16, content_type: &str, task: Task, stream: bool) -> ResponseHead {
    ResponseHead {
        status,
        headers: vec![("content-type".into(), content_type.into())],
        task,
        stream,
    }
}

/// Parse `chunks` with a fresh instance: every feed's events, then finish's.
pub async fn parse_chunks(
    plugin: &Arc<LoadedPlugin>,
    head: &ResponseHead,
    chunks: &[&[u8]],
) -> Result<Vec<Event>, PluginError> {
    let mut inst = plugin.instantiate(1).await?;
    inst.begin_response(head).await?;
    let mut events = Vec::new();
    for c in chunks {
        events.extend(inst.feed(c).await?);
    }
    events.extend(inst.finish().await?);
    Ok(events)
}
