//! The plugin runtime: loads backend plugins (WebAssembly components that
//! implement `wit/backend.wit`) and runs them sandboxed.
//!
//! One [`PluginRuntime`] (one wasmtime `Engine`) per process. Loading a
//! plugin compiles it once (or reads the compiled artefact from the on-disk
//! cache) and type-checks it against the contract. Every benchmark request
//! then gets a fresh [`PluginInstance`] from the plugin's `InstancePre`, in a
//! store with a memory cap, a CPU deadline per call and no WASI capabilities.
//! A trap or a limit hit fails only that request.

mod bindings;
pub mod builtin;
mod cache;
mod compat;
pub mod compile;
pub mod limits;
pub mod policy;
pub mod sandbox;
pub mod swap;
pub mod types;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, ResourceAny, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap,
    UpdateDeadline,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use sandbox::{Bounded, CallMeter, MemoryBudget, MemoryDenial, MemoryLimiter};

use bindings::wit;
pub use compat::ContractVersion;
use compat::{AnyPlugin, AnyPluginPre};
pub use limits::PluginLimits;
pub use sandbox::display_safe;
pub use types::{
    AuthHeader, AuthScheme, BenchRequest, Event, Message, OutboundRequest, PluginInfo,
    ResponseHead, Task, Usage,
};

/// The folder the compiled-plugin cache and other cached files live under
/// (`$GENAI_BENCH_CACHE_DIR`, else `$XDG_CACHE_HOME/genai-bench`, else
/// `~/.cache/genai-bench`).
pub fn default_cache_root() -> Option<PathBuf> {
    cache::default_dir().and_then(|d| d.parent().map(Path::to_path_buf))
}

/// Register a secret (the API key) that plugin log lines must never show;
/// a plugin never sees the key, but it may quote a server that echoes it.
pub fn register_secret(secret: &str) {
    if secret.len() >= 4 {
        SECRETS
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(secret.to_string());
    }
}

static SECRETS: std::sync::RwLock<Vec<String>> = std::sync::RwLock::new(Vec::new());

/// `text` with every registered secret replaced by `<redacted>`.
pub fn redact_secrets(text: String) -> String {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    secrets.iter().fold(text, |t, s| {
        if t.contains(s.as_str()) {
            t.replace(s.as_str(), "<redacted>")
        } else {
            t
        }
    })
}

/// SHA-256 of a plugin's bytes, in hex (what `plugin inspect` prints).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The WIT world new plugins implement (older contract versions still load,
/// see [`ContractVersion`]).
pub const WIT_WORLD: &str = "genai-bench:backend/plugin@0.5.0";
/// The WIT contract text this host was built against.
pub const WIT_SOURCE: &str = include_str!("../../../wit/backend.wit");

/// Nice value of the plugin executor's threads: below the network threads
/// that take timestamps, so when a core is contended the scheduler gives it
/// to a waking network thread first (parsing waits; the parse delay of the
/// validity rule shows if it waits too long).
pub const PLUGIN_THREAD_NICE: i32 = 5;

/// The longest `parser-note` a plugin may return (the contract says so).
pub const MAX_PARSER_NOTE: usize = 1024;

/// Lower the calling thread's CPU priority to [`PLUGIN_THREAD_NICE`]
/// (Linux: per thread; elsewhere nothing). For the plugin executor's
/// `on_thread_start`.
pub fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on this thread's id touches no memory of ours.
    unsafe {
        let tid = libc::gettid();
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, PLUGIN_THREAD_NICE) != 0 {
            tracing::debug!(
                "could not lower the plugin thread's priority: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// How often the engine's epoch advances; the resolution of call deadlines.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(2);

/// Most plugin instances alive at once. Each pool slot reserves 4 GiB of
/// address space per memory (guard regions make bounds checks free), and
/// two memories per instance must fit in the 128 TiB of a 64-bit process.
pub const MAX_INSTANCES: u32 = 8192;

/// Instances kept beyond the requests in flight (preflight, parameter
/// checks, hot-swap candidates).
pub const SPARE_INSTANCES: u32 = 64;

/// Options for a [`PluginRuntime`].
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Limits applied to every plugin instance.
    pub limits: PluginLimits,
    /// Most plugin instances alive at once (sizes the pooling allocator).
    pub max_instances: u32,
    /// Where compiled plugins are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Largest size of the compiled-plugin cache folder.
    pub cache_max_bytes: u64,
    /// The `genai-bench` binary that compiles plugins in a child process
    /// (bounded in time and memory); `None` compiles on a thread.
    pub compiler: Option<PathBuf>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            limits: PluginLimits::default(),
            max_instances: 256,
            cache_dir: cache::default_dir(),
            cache_max_bytes: cache::DEFAULT_MAX_BYTES,
            compiler: compile::default_compiler(),
        }
    }
}

/// The process-wide plugin engine.
pub struct PluginRuntime {
    engine: Engine,
    /// One permit per instance the pool holds: a request waits for an
    /// instance rather than fail when all are in use.
    slots: Arc<tokio::sync::Semaphore>,
    limits: PluginLimits,
    /// What all live instances' memories and tables may hold together.
    memory: Arc<MemoryBudget>,
    cache: Option<cache::CompileCache>,
    compiler: Option<PathBuf>,
    pooling: bool,
}

/// Bytes of a pooled memory or table slot kept resident between instances
/// (only its dirty pages are reset, see `PluginRuntime::new`): what a Rust
/// plugin touches in a request (8 MiB measured the same in
/// instantiate + build and in CPU per token at 256 streams). Kept small
/// because what free slots keep resident lies outside the memory budget
/// of live instances: at most this much per memory and table slot.
const KEEP_RESIDENT_BYTES: usize = 1 << 20;

impl PluginRuntime {
    /// Create the engine (pooling allocator, epoch interruption) and start
    /// its epoch ticker.
    pub fn new(options: RuntimeOptions) -> anyhow::Result<Self> {
        if options.max_instances > MAX_INSTANCES {
            anyhow::bail!(
                "{} plugin instances were asked for; this host keeps at most {MAX_INSTANCES} alive at once",
                options.max_instances
            );
        }
        let n = options.max_instances.max(8);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(8))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(4))
            .total_stacks(n)
            .max_core_instances_per_component(sandbox::MAX_CORE_INSTANCES as u32)
            .max_memories_per_component(sandbox::MAX_MEMORIES as u32)
            .max_tables_per_component(sandbox::MAX_TABLES as u32);
        // The memory cap is enforced by the store's limiter (so a hit is a
        // typed "memory limit" error), not by the pool's slot size.
        //
        // A slot's dirty pages are reset in place, found with Linux's
        // PAGEMAP_SCAN, rather than given back with madvise: that cost a TLB
        // shootdown on every core and a page fault per page for the next
        // instance, about 130 µs a request (perf, concurrency 256). Without
        // PAGEMAP_SCAN (Linux < 6.7) the same option would memset whole
        // slots, so it is used only when the kernel has it.
        let mut resident = pool.clone();
        resident
            .pagemap_scan(wasmtime::Enabled::Yes)
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(KEEP_RESIDENT_BYTES);
        let engine = Engine::new(
            base_config().allocation_strategy(InstanceAllocationStrategy::Pooling(resident)),
        )
        .or_else(|_| {
            Engine::new(
                base_config().allocation_strategy(InstanceAllocationStrategy::Pooling(pool)),
            )
        });
        let (engine, pooling) = match engine {
            Ok(e) => (e, true),
            Err(err) => {
                // A process with a small address-space limit cannot reserve the
                // pool; on-demand allocation is slower but equally safe.
                tracing::warn!(
                    "pooling allocator unavailable ({err:#}); using on-demand allocation"
                );
                (Engine::new(&base_config())?, false)
            }
        };
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                sandbox::ticker::register_current();
                while let Some(engine) = weak.upgrade() {
                    if !sandbox::ticker::busy() {
                        // Parked until a plugin poll starts (see `ticker`);
                        // the timeout only notices a dropped engine.
                        drop(engine);
                        sandbox::ticker::park(std::time::Duration::from_millis(200));
                        continue;
                    }
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .context("starting the plugin epoch ticker")?;
        let cache = options.cache_dir.and_then(|dir| {
            cache::CompileCache::open(dir.clone(), &engine, options.cache_max_bytes)
                .map_err(|e| {
                    tracing::warn!(
                        "compiled-plugin cache disabled: {e:#}; plugins are compiled on every load"
                    )
                })
                .ok()
        });
        Ok(PluginRuntime {
            engine,
            slots: Arc::new(tokio::sync::Semaphore::new(n as usize)),
            limits: options.limits,
            memory: MemoryBudget::new(options.limits.memory_total_bytes),
            cache,
            compiler: options.compiler,
            pooling,
        })
    }

    /// Whether instances come from the pooling allocator.
    pub fn pooling(&self) -> bool {
        self.pooling
    }

    /// The limits every instance gets.
    pub fn limits(&self) -> PluginLimits {
        self.limits
    }

    /// Bytes of memories and tables the live instances hold now (charged
    /// to the `memory_total_bytes` budget).
    pub fn memory_in_use(&self) -> usize {
        self.memory.used()
    }

    /// Load a built-in plugin by name (`baseten`, ...).
    pub fn load_builtin(&self, name: &str) -> anyhow::Result<Arc<LoadedPlugin>> {
        let b = builtin::find(name).ok_or_else(|| {
            anyhow::anyhow!(
                "unknown API backend '{name}'; built-in backends: {}. Use --plugin PATH.wasm to load another plugin",
                builtin::backend_names().join(", ")
            )
        })?;
        self.load_bytes(b.wasm, PluginOrigin::Builtin(b.name.to_string()))
    }

    /// Load a plugin component from a `.wasm` file.
    pub fn load_file(&self, path: &Path) -> anyhow::Result<Arc<LoadedPlugin>> {
        self.load_file_pinned(path, None)
    }

    /// Load a plugin file, refusing it unless its bytes hash to `pin`. The
    /// file is read once: the bytes hashed are the bytes that run.
    pub fn load_file_pinned(
        &self,
        path: &Path,
        pin: Option<&str>,
    ) -> anyhow::Result<Arc<LoadedPlugin>> {
        let bytes = read_plugin_file(path, self.limits.max_component_bytes)?;
        check_pin(&bytes, pin)?;
        self.load_bytes(&bytes, PluginOrigin::File(path.to_path_buf()))
            .with_context(|| format!("cannot load plugin {}", path.display()))
    }

    /// Load `name` as a built-in when one has that name, else as a file path.
    pub fn load_named_or_path(&self, name_or_path: &str) -> anyhow::Result<Arc<LoadedPlugin>> {
        if builtin::find(name_or_path).is_some() {
            self.load_builtin(name_or_path)
        } else if Path::new(name_or_path).exists() {
            self.load_file(Path::new(name_or_path))
        } else {
            anyhow::bail!(
                "'{name_or_path}' is neither a built-in plugin ({}) nor an existing .wasm file",
                builtin::backend_names().join(", ")
            )
        }
    }

    /// Compile (or fetch from the cache), link, type-check and describe a
    /// plugin. Compiling a large Python or JavaScript plugin takes seconds, so
    /// async callers should run this on a blocking thread.
    pub fn load_bytes(
        &self,
        wasm: &[u8],
        origin: PluginOrigin,
    ) -> anyhow::Result<Arc<LoadedPlugin>> {
        let started = Instant::now();
        check_component_header(wasm)?;
        let sha256 = sha256_hex(wasm);
        let cached = self
            .cache
            .as_ref()
            .and_then(|c| c.get(&self.engine, &sha256));
        let from_cache = cached.is_some();
        let component = match cached {
            Some(c) => c,
            None => {
                let compiled =
                    compile::compile(&self.engine, wasm, &self.limits, self.compiler.as_deref())?;
                if let Some(cache) = &self.cache
                    && let Err(e) = cache.put(&sha256, &compiled.artefact)
                {
                    tracing::debug!("not caching compiled plugin {sha256}: {e:#}");
                }
                compiled.component
            }
        };
        let mut linker: Linker<HostState> = Linker::new(&self.engine);
        sandbox::add_wasi_to_linker(&mut linker)?;
        compat::add_to_linker(&mut linker)?;
        let world = describe_world(&self.engine, &component);
        let contract = ContractVersion::detect(&world)?;
        let pre = linker.instantiate_pre(&component).map_err(|e| {
            anyhow::anyhow!(
                "the plugin needs imports this host does not provide ({e:#}). A plugin may import only `genai-bench:backend/host` and WASI 0.2; it imports: {}",
                world.imports.join(", ")
            )
        })?;
        let pre = AnyPluginPre::new(pre, contract).map_err(|e| {
            anyhow::anyhow!(
                "the plugin does not implement the world {} ({e:#}); it exports: {}",
                contract.world(),
                world.exports.join(", ")
            )
        })?;
        let mut loaded = LoadedPlugin {
            info: PluginInfo {
                name: origin.short_name(),
                version: "?".into(),
                description: String::new(),
                tasks: Vec::new(),
                auth: None,
                backends: Vec::new(),
            },
            contract,
            label: origin.short_name(),
            sha256,
            origin,
            world,
            pre,
            engine: self.engine.clone(),
            slots: self.slots.clone(),
            limits: self.limits,
            memory: self.memory.clone(),
            from_cache,
            load_time: Duration::ZERO,
        };
        let info = loaded.read_info()?;
        loaded.label = format!("{} {}", info.name, info.version);
        loaded.info = info;
        loaded.load_time = started.elapsed();
        Ok(Arc::new(loaded))
    }
}

fn base_config() -> Config {
    let mut c = Config::new();
    c.epoch_interruption(true)
        .max_wasm_stack(512 << 10)
        .wasm_memory64(false)
        .parallel_compilation(true);
    // For profiling: `perf` names JIT-compiled plugin functions through
    // /tmp/perf-PID.map (with the name section of an unstripped plugin).
    if std::env::var_os("GENAI_BENCH_PERFMAP").is_some() {
        c.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    c
}

/// Read a plugin file once, refusing one larger than `max` bytes (read
/// through a bounded reader, so a FIFO or device cannot feed it forever).
pub fn read_plugin_file(path: &Path, max: usize) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    let f = std::fs::File::open(path).with_context(|| {
        format!(
            "cannot read plugin file {}: check the path given to --plugin",
            path.display()
        )
    })?;
    let mut bytes = Vec::new();
    f.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read plugin file {}", path.display()))?;
    if bytes.len() > max {
        anyhow::bail!(
            "plugin file {} is over the limit of {} MiB (--plugin-max-size-mb)",
            path.display(),
            max >> 20
        );
    }
    Ok(bytes)
}

/// Refuse `bytes` unless they hash to `pin` (when one is given).
pub fn check_pin(bytes: &[u8], pin: Option<&str>) -> anyhow::Result<()> {
    if let Some(want) = pin {
        let got = sha256_hex(bytes);
        if !got.eq_ignore_ascii_case(want) {
            anyhow::bail!(
                "the plugin has SHA-256 {got}, not the {want} pinned by --plugin-sha256; refusing to load it"
            );
        }
    }
    Ok(())
}

fn check_component_header(wasm: &[u8]) -> anyhow::Result<()> {
    if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        anyhow::bail!(
            "not a WebAssembly file (no \\0asm header); a plugin is a .wasm component built for wasm32-wasip2"
        );
    }
    // Bytes 4..8: version and layer. Core modules are layer 0, components layer 1.
    if wasm[6..8] == [0, 0] {
        anyhow::bail!(
            "this is a core WebAssembly module, not a component; build the plugin with `cargo build --target wasm32-wasip2` (or wrap it with `wasm-tools component new`)"
        );
    }
    Ok(())
}

/// Where a plugin came from.
#[derive(Debug, Clone)]
pub enum PluginOrigin {
    /// Embedded in the binary.
    Builtin(String),
    /// Loaded from a file.
    File(PathBuf),
    /// Bytes handed over by a caller (tests, tools).
    Bytes(String),
}

impl PluginOrigin {
    fn short_name(&self) -> String {
        match self {
            PluginOrigin::Builtin(n) | PluginOrigin::Bytes(n) => n.clone(),
            PluginOrigin::File(p) => p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.display().to_string()),
        }
    }
}

impl std::fmt::Display for PluginOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginOrigin::Builtin(n) => write!(f, "built-in '{n}'"),
            PluginOrigin::File(p) => write!(f, "{}", p.display()),
            PluginOrigin::Bytes(n) => write!(f, "in-memory '{n}'"),
        }
    }
}

/// The interfaces a component imports and exports.
#[derive(Debug, Clone, Default)]
pub struct WorldDescription {
    /// Imported interface names, e.g. `genai-bench:backend/host@0.1.0`.
    pub imports: Vec<String>,
    /// Exported interface names.
    pub exports: Vec<String>,
}

fn describe_world(engine: &Engine, component: &Component) -> WorldDescription {
    let ty = component.component_type();
    WorldDescription {
        imports: ty.imports(engine).map(|(n, _)| n.to_string()).collect(),
        exports: ty.exports(engine).map(|(n, _)| n.to_string()).collect(),
    }
}

/// A compiled, type-checked plugin, ready to be instantiated per request.
pub struct LoadedPlugin {
    info: PluginInfo,
    label: String,
    sha256: String,
    origin: PluginOrigin,
    world: WorldDescription,
    contract: ContractVersion,
    pre: AnyPluginPre,
    engine: Engine,
    slots: Arc<tokio::sync::Semaphore>,
    limits: PluginLimits,
    memory: Arc<MemoryBudget>,
    from_cache: bool,
    load_time: Duration,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("label", &self.label)
            .field("origin", &self.origin)
            .field("sha256", &self.sha256)
            .finish()
    }
}

impl LoadedPlugin {
    /// Metadata from the plugin's `info` export.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }
    /// `name version`, used in logs, errors and records.
    pub fn label(&self) -> &str {
        &self.label
    }
    /// SHA-256 of the component bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    /// Where the plugin came from.
    pub fn origin(&self) -> &PluginOrigin {
        &self.origin
    }
    /// The component's imports and exports.
    pub fn world(&self) -> &WorldDescription {
        &self.world
    }
    /// The contract version the plugin was built against.
    pub fn contract(&self) -> ContractVersion {
        self.contract
    }
    /// Limits applied to its instances.
    pub fn limits(&self) -> PluginLimits {
        self.limits
    }
    /// Whether the compiled code came from the on-disk cache.
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }
    /// Time spent loading (compile or cache read, link, `info`).
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    fn read_info(&self) -> anyhow::Result<PluginInfo> {
        // A thread of its own, so loading works from sync and async callers.
        let info = std::thread::scope(|scope| {
            scope
                .spawn(|| -> anyhow::Result<PluginInfo> {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_time()
                        .build()?;
                    Ok(rt.block_on(async {
                        let mut inst = self.instantiate_labelled(0).await?;
                        inst.call_info().await
                    })?)
                })
                .join()
                .map_err(|_| anyhow::anyhow!("reading plugin info panicked"))?
        })?;
        validate_info(&info)?;
        let mut info = info;
        // Shown by `plugin inspect` and in logs: neutralised once, here.
        info.description = display_safe(&info.description, 300);
        Ok(info)
    }

    /// A fresh instance for one request. `request_id` tags its log lines.
    pub async fn instantiate(
        self: &Arc<Self>,
        request_id: u64,
    ) -> Result<PluginInstance, PluginError> {
        let mut inst = self.instantiate_labelled(request_id).await?;
        inst.plugin = Some(self.clone());
        Ok(inst)
    }

    async fn instantiate_labelled(&self, request_id: u64) -> Result<PluginInstance, PluginError> {
        // Every pool slot in use: wait for a request to finish (each is
        // bounded in time) rather than fail this one.
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the instance semaphore is never closed");
        let state = HostState::new(
            self.label.clone(),
            request_id,
            self.limits,
            self.memory.clone(),
        );
        let meter = state.meter.clone();
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        // Checked at every epoch tick that finds the guest running: the
        // meter charges time spent running (not time parked behind other
        // requests on a busy executor), and every tick gives the executor
        // back so a slow plugin cannot starve other requests' parsing.
        let budget = self.limits.call_timeout;
        store.epoch_deadline_callback(move |mut ctx| {
            let s = ctx.data_mut();
            if s.meter.used() > budget {
                s.interrupted = true;
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        let limits = self.limits;
        let bound = sandbox::guard(&meter, &limits, self.pre.instantiate_async(&mut store)).await;
        let bindings = match bound {
            Bounded::Done(Ok(b)) => b,
            Bounded::Done(Err(e)) => return Err(classify(&self.label, &store, "instantiation", e)),
            other => return Err(bound_error(&self.label, &limits, "instantiation", &other)),
        };
        Ok(PluginInstance {
            label: self.label.clone(),
            plugin: None,
            store,
            meter,
            limits,
            bindings,
            parser: None,
            built_note: String::new(),
            poisoned: false,
            auth_header: self.info.auth.as_ref().map(|a| a.header_name().to_string()),
            backend: self.info.name.clone(),
            events_total: 0,
            text_bytes_total: 0,
            _slot: slot,
        })
    }
}

/// The error for a call that ran past the CPU budget after its last epoch
/// check, or past its wall-clock bound.
fn bound_error<T>(
    label: &str,
    limits: &PluginLimits,
    during: &str,
    bound: &Bounded<T>,
) -> PluginError {
    match bound {
        Bounded::OverBudget(used) => PluginError::new(
            label,
            PluginErrorKind::Timeout,
            format!(
                "{during} exceeded the CPU time limit of {} ms per call (it ran {} ms; --plugin-cpu-ms)",
                limits.call_timeout.as_millis(),
                used.as_millis()
            ),
        ),
        _ => PluginError::new(
            label,
            PluginErrorKind::WallTimeout,
            format!(
                "{during} did not return within the wall-clock limit of {} ms per call (--plugin-wall-ms); the instance was discarded",
                limits.call_wall_timeout.as_millis()
            ),
        ),
    }
}

fn validate_info(info: &PluginInfo) -> anyhow::Result<()> {
    let name_ok = !info.name.is_empty()
        && info.name.len() <= 64
        && info
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !name_ok {
        anyhow::bail!(
            "plugin name {:?} is invalid: use 1-64 characters of a-z, 0-9, '-' or '_'",
            policy::truncate(&info.name, 80)
        );
    }
    if info.version.is_empty()
        || info.version.len() > 64
        || sandbox::has_unsafe_chars(&info.version)
    {
        anyhow::bail!("plugin '{}' reports an empty or invalid version", info.name);
    }
    if info.tasks.is_empty() {
        anyhow::bail!("plugin '{}' declares no supported task", info.name);
    }
    for (i, b) in info.backends.iter().enumerate() {
        let ok = !b.is_empty()
            && b.len() <= 64
            && b.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_');
        if !ok || *b == info.name || info.backends[..i].contains(b) {
            anyhow::bail!(
                "plugin '{}' lists backend name {:?}, which is invalid or repeated: use distinct names of 1-64 characters of a-z, 0-9, '-' or '_'",
                info.name,
                policy::truncate(b, 80)
            );
        }
    }
    match &info.auth {
        Some(AuthScheme::Header(auth)) => {
            if let Err(msg) = policy::check_auth_header(&auth.name) {
                anyhow::bail!("plugin '{}': {msg}", info.name);
            }
            if sandbox::has_unsafe_chars(&auth.prefix) || auth.prefix.len() > 64 {
                anyhow::bail!("plugin '{}' has an invalid auth prefix", info.name);
            }
        }
        Some(AuthScheme::AwsSigv4(service)) => {
            let ok = !service.is_empty()
                && service.len() <= 64
                && service
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
            if !ok {
                anyhow::bail!(
                    "plugin '{}' names AWS service {:?} for SigV4: use a signing name such as \
                     bedrock (1-64 of a-z, 0-9, '-')",
                    info.name,
                    policy::truncate(service, 80)
                );
            }
        }
        _ => {}
    }
    Ok(())
}

/// Why a call into a plugin failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginErrorKind {
    /// The call ran past its CPU deadline.
    Timeout,
    /// The call did not return within its wall-clock bound (it waited, or
    /// was starved); the instance was discarded.
    WallTimeout,
    /// The instance hit its memory cap.
    OutOfMemory,
    /// The guest's stack overflowed.
    StackOverflow,
    /// The guest panicked or aborted.
    Panic,
    /// Any other trap.
    Trap,
    /// The plugin returned an error value (e.g. invalid params).
    Reported,
    /// The plugin returned something the host's policy refuses.
    Refused,
    /// The plugin returned more than the host's caps allow.
    OutputLimit,
    /// The instance is unusable after an earlier failure.
    Poisoned,
}

/// A typed failure of one plugin call; names the plugin and what happened.
#[derive(Debug, Clone, thiserror::Error)]
#[error("plugin {plugin}: {message}")]
pub struct PluginError {
    /// `name version` of the plugin.
    pub plugin: String,
    /// What kind of failure.
    pub kind: PluginErrorKind,
    /// Human-readable detail.
    pub message: String,
}

impl PluginError {
    fn new(plugin: &str, kind: PluginErrorKind, message: impl Into<String>) -> Self {
        PluginError {
            plugin: plugin.to_string(),
            kind,
            message: message.into(),
        }
    }
}

fn classify(
    label: &str,
    store: &Store<HostState>,
    during: &str,
    err: wasmtime::Error,
) -> PluginError {
    let s = store.data();
    if s.interrupted || matches!(err.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
        return PluginError::new(
            label,
            PluginErrorKind::Timeout,
            format!(
                "{during} exceeded the CPU time limit of {} ms per call (--plugin-cpu-ms)",
                s.limits.call_timeout.as_millis()
            ),
        );
    }
    match s.limiter.denied {
        Some(MemoryDenial::Instance) => {
            return PluginError::new(
                label,
                PluginErrorKind::OutOfMemory,
                format!(
                    "{during} exceeded the memory limit of {} MiB per instance, all memories and tables together (--plugin-memory-mb)",
                    s.limits.memory_bytes >> 20
                ),
            );
        }
        Some(MemoryDenial::Total) => {
            return over_budget(label, &s.limits, format!("{during} needed more memory"));
        }
        None => {}
    }
    if let Some(len) = s.random_denied {
        return PluginError::new(
            label,
            PluginErrorKind::OutputLimit,
            format!(
                "{during} asked wasi:random for {len} bytes; the sandbox serves at most {} bytes a call",
                sandbox::MAX_RANDOM_BYTES
            ),
        );
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => PluginError::new(
            label,
            PluginErrorKind::StackOverflow,
            format!("{during} overflowed its stack"),
        ),
        Some(Trap::UnreachableCodeReached) => PluginError::new(
            label,
            PluginErrorKind::Panic,
            format!("{during} panicked or aborted (wasm `unreachable`)"),
        ),
        Some(t) => PluginError::new(
            label,
            PluginErrorKind::Trap,
            format!("{during} trapped: {t}"),
        ),
        None => PluginError::new(
            label,
            PluginErrorKind::Trap,
            format!(
                "{during} failed: {}",
                display_safe(&format!("{err:#}"), 500)
            ),
        ),
    }
}

/// One plugin instance, serving exactly one benchmark request.
pub struct PluginInstance {
    label: String,
    plugin: Option<Arc<LoadedPlugin>>,
    store: Store<HostState>,
    meter: Arc<CallMeter>,
    limits: PluginLimits,
    bindings: AnyPlugin,
    parser: Option<ResourceAny>,
    /// The parser note of the last request this instance built.
    built_note: String,
    poisoned: bool,
    auth_header: Option<String>,
    /// `request.backend` when the caller leaves it empty: the plugin's name.
    backend: String,
    /// Events returned so far by this instance's parser (all calls).
    events_total: usize,
    /// Bytes of event text returned so far (all calls).
    text_bytes_total: usize,
    /// This instance's place in the pool, given back when it is dropped.
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl PluginInstance {
    /// `name version` of the plugin.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The plugin this instance came from.
    pub fn plugin(&self) -> Option<&Arc<LoadedPlugin>> {
        self.plugin.as_ref()
    }

    /// The most memory this instance has held: all its linear memories and
    /// tables together, in bytes.
    pub fn peak_memory_bytes(&self) -> usize {
        self.store.data().limiter.peak
    }

    fn begin(&mut self, during: &str) -> Result<(), PluginError> {
        if self.poisoned {
            return Err(PluginError::new(
                &self.label,
                PluginErrorKind::Poisoned,
                format!("{during}: the instance is unusable after an earlier failure"),
            ));
        }
        self.store.data_mut().interrupted = false;
        self.store.set_epoch_deadline(1);
        Ok(())
    }

    /// The outcome of a guarded call; any failure poisons the instance.
    fn settle<T>(
        &mut self,
        during: &str,
        bound: Bounded<wasmtime::Result<T>>,
    ) -> Result<T, PluginError> {
        match bound {
            Bounded::Done(Ok(v)) => Ok(v),
            Bounded::Done(Err(e)) => {
                // A trapped instance must never be entered again.
                self.poisoned = true;
                Err(classify(&self.label, &self.store, during, e))
            }
            other => {
                self.poisoned = true;
                Err(bound_error(&self.label, &self.limits, during, &other))
            }
        }
    }

    async fn call_info(&mut self) -> Result<PluginInfo, PluginError> {
        self.begin("info")?;
        let bound = sandbox::guard(
            &self.meter,
            &self.limits,
            self.bindings.call_info(&mut self.store),
        )
        .await;
        self.settle("info", bound).map(PluginInfo::from)
    }

    /// Ask the plugin whether `--additional-request-params` are acceptable.
    /// `Ok(Err(msg))` is the plugin's own refusal.
    pub async fn validate_params(
        &mut self,
        params_json: &str,
    ) -> Result<Result<(), String>, PluginError> {
        self.begin("validate-params")?;
        let bound = sandbox::guard(
            &self.meter,
            &self.limits,
            self.bindings
                .call_validate_params(&mut self.store, params_json),
        )
        .await;
        Ok(self
            .settle("validate-params", bound)?
            .map_err(|m| sanitize_message(&m)))
    }

    /// Build the HTTP request and check it against the host's policy.
    pub async fn build_request(
        &mut self,
        req: &BenchRequest,
    ) -> Result<OutboundRequest, PluginError> {
        self.begin("build-request")?;
        let mut wit_req = req.to_wit();
        if wit_req.backend.is_empty() {
            wit_req.backend = self.backend.clone();
        }
        let bound = sandbox::guard(
            &self.meter,
            &self.limits,
            self.bindings.call_build_request(&mut self.store, &wit_req),
        )
        .await;
        let built = match self.settle("build-request", bound)? {
            Ok(r) => r,
            Err(msg) => {
                return Err(PluginError::new(
                    &self.label,
                    PluginErrorKind::Reported,
                    format!("build-request refused: {}", sanitize_message(&msg)),
                ));
            }
        };
        let out = self.check_outbound(built)?;
        self.built_note.clone_from(&out.parser_note);
        // The host holds the body until the response ends (a retry on a
        // stale connection sends it again): host memory the plugin decides
        // on, up to --plugin-max-body-mb a request.
        if !self
            .store
            .data_mut()
            .limiter
            .hold_host_bytes(out.body.len())
        {
            self.poisoned = true;
            return Err(over_budget(
                &self.label,
                &self.limits,
                format!("build-request returned a body of {} bytes", out.body.len()),
            ));
        }
        Ok(out)
    }

    fn check_outbound(&self, built: wit::BuiltRequest) -> Result<OutboundRequest, PluginError> {
        let limits = self.store.data().limits;
        let refuse = |kind, msg: String| Err(PluginError::new(&self.label, kind, msg));
        let wit::BuiltRequest {
            http: r,
            parser_note,
        } = built;
        // The host keeps the note while the response streams: bounded, so
        // a plugin cannot park memory there that no instance budget sees.
        if parser_note.len() > MAX_PARSER_NOTE {
            return refuse(
                PluginErrorKind::OutputLimit,
                format!(
                    "build-request returned a parser note of {} bytes, over the contract's limit of {MAX_PARSER_NOTE} bytes",
                    parser_note.len()
                ),
            );
        }
        if r.body.len() > limits.max_request_body {
            return refuse(
                PluginErrorKind::OutputLimit,
                format!(
                    "build-request returned a {} byte body, over the limit of {} bytes",
                    r.body.len(),
                    limits.max_request_body
                ),
            );
        }
        if r.headers.len() > limits.max_request_headers {
            return refuse(
                PluginErrorKind::OutputLimit,
                format!(
                    "build-request returned {} headers, over the limit of {}",
                    r.headers.len(),
                    limits.max_request_headers
                ),
            );
        }
        let header_bytes: usize = r.headers.iter().map(|(n, v)| n.len() + v.len()).sum();
        if header_bytes > limits.max_request_header_bytes {
            return refuse(
                PluginErrorKind::OutputLimit,
                format!(
                    "build-request returned {header_bytes} bytes of headers, over the limit of {} bytes",
                    limits.max_request_header_bytes
                ),
            );
        }
        let method = match policy::check_method(&r.method) {
            Ok(m) => m,
            Err(msg) => return refuse(PluginErrorKind::Refused, msg),
        };
        for (name, value) in &r.headers {
            if let Err(msg) = policy::check_header(name, value, self.auth_header.as_deref()) {
                return refuse(PluginErrorKind::Refused, format!("build-request: {msg}"));
            }
        }
        // The path is checked against a placeholder base here so a bad path
        // fails before anything is sent; the transport resolves it for real.
        let probe = url::Url::parse("http://base.invalid/").expect("static URL");
        if let Err(msg) = policy::resolve_url(&probe, &r.path) {
            return refuse(PluginErrorKind::Refused, format!("build-request: {msg}"));
        }
        Ok(OutboundRequest {
            method,
            path: r.path,
            headers: r.headers,
            body: r.body,
            parser_note,
        })
    }

    /// Start parsing the response to the request this instance built
    /// (creates the plugin's `response-parser` with that request's note).
    pub async fn begin_response(&mut self, head: &ResponseHead) -> Result<(), PluginError> {
        let note = std::mem::take(&mut self.built_note);
        self.begin_response_with_note(head, &note).await
    }

    /// Start parsing a response to a request another instance built:
    /// `parser_note` is what that `build-request` returned.
    pub async fn begin_response_with_note(
        &mut self,
        head: &ResponseHead,
        parser_note: &str,
    ) -> Result<(), PluginError> {
        self.begin("response-parser constructor")?;
        let wit_head = head.to_wit();
        let bound = sandbox::guard(
            &self.meter,
            &self.limits,
            self.bindings
                .call_parser_new(&mut self.store, &wit_head, parser_note),
        )
        .await;
        self.parser = Some(self.settle("response-parser constructor", bound)?);
        Ok(())
    }

    fn parser(&self, during: &str) -> Result<ResourceAny, PluginError> {
        self.parser.ok_or_else(|| {
            PluginError::new(
                &self.label,
                PluginErrorKind::Poisoned,
                format!("{during} before begin_response"),
            )
        })
    }

    /// Feed one body chunk exactly as received (a batch of one for a
    /// plugin of the current contract).
    pub async fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Event>, PluginError> {
        if self.bindings.feeds_batches() {
            let end = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
            return Ok(self
                .feed_batch(chunk, &[end])
                .await?
                .pop()
                .unwrap_or_default());
        }
        self.feed_one(chunk).await
    }

    /// `feed` of one chunk for a plugin whose contract takes one per call.
    async fn feed_one(&mut self, chunk: &[u8]) -> Result<Vec<Event>, PluginError> {
        self.begin("feed")?;
        let parser = self.parser("feed")?;
        let bound = sandbox::guard(
            &self.meter,
            &self.limits,
            self.bindings.call_feed(&mut self.store, parser, chunk),
        )
        .await;
        let r = self.settle("feed", bound)?;
        self.events("feed", r)
    }

    /// Feed the chunks that arrived back to back: chunk `i` is
    /// `bytes[ends[i-1]..ends[i]]`. Returns one list of events per chunk.
    /// A plugin of the current contract gets them in one call (bounded as
    /// one call: its CPU and wall time, and the per-call caps over all the
    /// lists); an older one gets one call per chunk.
    pub async fn feed_batch(
        &mut self,
        bytes: &[u8],
        ends: &[u32],
    ) -> Result<Vec<Vec<Event>>, PluginError> {
        if ends.is_empty() {
            return Ok(Vec::new());
        }
        if !self.bindings.feeds_batches() {
            let mut out = Vec::with_capacity(ends.len());
            let mut from = 0;
            for &end in ends {
                let end = end as usize;
                out.push(self.feed_one(&bytes[from..end]).await?);
                from = end;
            }
            return Ok(out);
        }
        self.begin("feed")?;
        let parser = self.parser("feed")?;
        let bound = sandbox::guard(
            &self.meter,
            &self.limits,
            self.bindings
                .call_feed_batch(&mut self.store, parser, bytes, ends),
        )
        .await;
        let lists = match self.settle("feed", bound)? {
            Ok(lists) if lists.len() == ends.len() => lists,
            Ok(lists) => {
                // The plugin's fault, never the server's: events paired
                // with the wrong chunks would carry the wrong times.
                self.poisoned = true;
                return Err(PluginError::new(
                    &self.label,
                    PluginErrorKind::Refused,
                    format!(
                        "feed returned {} lists of events for {} chunks (the contract: one list per chunk)",
                        lists.len(),
                        ends.len()
                    ),
                ));
            }
            Err(msg) => return Err(self.refused("feed", &msg)),
        };
        self.check_events("feed", lists)
    }

    /// Tell the parser the body ended; returns what it had buffered.
    pub async fn finish(&mut self) -> Result<Vec<Event>, PluginError> {
        self.begin("finish")?;
        let parser = self.parser("finish")?;
        let bound = sandbox::guard(
            &self.meter,
            &self.limits,
            self.bindings.call_finish(&mut self.store, parser),
        )
        .await;
        let r = self.settle("finish", bound)?;
        let out = self.events("finish", r)?;
        self.parser = None;
        // Dropping the resource runs the guest's destructor, under the same
        // bounds as any call; what was parsed stands whatever it does.
        self.begin("response-parser destructor")?;
        let bound = sandbox::guard(
            &self.meter,
            &self.limits,
            parser.resource_drop_async(&mut self.store),
        )
        .await;
        if let Err(e) = self.settle("response-parser destructor", bound) {
            tracing::debug!("{e}");
        }
        Ok(out)
    }

    fn events(
        &mut self,
        during: &str,
        r: Result<Vec<wit::Event>, String>,
    ) -> Result<Vec<Event>, PluginError> {
        match r {
            Ok(events) => Ok(self
                .check_events(during, vec![events])?
                .pop()
                .unwrap_or_default()),
            Err(msg) => Err(self.refused(during, &msg)),
        }
    }

    /// The plugin's own parse error.
    fn refused(&self, during: &str, msg: &str) -> PluginError {
        PluginError::new(
            &self.label,
            PluginErrorKind::Reported,
            format!(
                "{during}: cannot parse the response: {}",
                sanitize_message(msg)
            ),
        )
    }

    /// One call's events (a list per chunk fed) against the per-call and
    /// per-response caps; converted to the host's types.
    fn check_events(
        &mut self,
        during: &str,
        lists: Vec<Vec<wit::Event>>,
    ) -> Result<Vec<Vec<Event>>, PluginError> {
        let limits = self.limits;
        let over = |what: String| {
            PluginError::new(
                &self.label,
                PluginErrorKind::OutputLimit,
                format!("{during} {what}"),
            )
        };
        let count: usize = lists.iter().map(Vec::len).sum();
        if count > limits.max_events_per_call {
            self.poisoned = true;
            return Err(over(format!(
                "returned {count} events, over the limit of {} per call (--plugin-max-events)",
                limits.max_events_per_call
            )));
        }
        let out: Vec<Vec<Event>> = lists
            .into_iter()
            .map(|l| l.into_iter().map(Event::from).collect())
            .collect();
        let bytes: usize = out.iter().flatten().map(Event::size).sum();
        if bytes > limits.max_event_bytes_per_call {
            self.poisoned = true;
            return Err(over(format!(
                "returned {bytes} bytes of events, over the limit of {} per call",
                limits.max_event_bytes_per_call
            )));
        }
        // Per-call caps bound one call; these bound the whole response, so a
        // parser cannot grow a request's memory without end by many calls.
        self.events_total += count;
        self.text_bytes_total += bytes;
        if self.events_total > limits.max_events_per_request {
            self.poisoned = true;
            return Err(over(format!(
                "brought this response to {} events, over the limit of {} per request (--plugin-max-events-per-request)",
                self.events_total, limits.max_events_per_request
            )));
        }
        if self.text_bytes_total > limits.max_text_bytes_per_request {
            self.poisoned = true;
            return Err(over(format!(
                "brought this response to {} bytes of event text, over the limit of {} MiB per request (--plugin-max-output-mb)",
                self.text_bytes_total,
                limits.max_text_bytes_per_request >> 20
            )));
        }
        // The host keeps this text until the response ends: host memory a
        // plugin decides on, so it draws on the same budget as instances.
        if !self.store.data_mut().limiter.hold_host_bytes(bytes) {
            self.poisoned = true;
            return Err(over_budget(
                &self.label,
                &limits,
                format!("{during} returned {bytes} bytes of event text"),
            ));
        }
        Ok(out)
    }
}

/// `what` the plugin asked for did not fit in the memory budget of all
/// instances together: the error, with what to do about it.
fn over_budget(label: &str, limits: &PluginLimits, what: String) -> PluginError {
    PluginError::new(
        label,
        PluginErrorKind::OutOfMemory,
        format!(
            "{what} while the plugin instances of this process already hold the budget of {} MiB for all of them together (--plugin-memory-total-mb); lower --num-concurrency or raise the budget if the machine has the memory",
            limits.memory_total_bytes >> 20
        ),
    )
}

/// Plugin text shown to users: bounded, one line, nothing a terminal or log
/// reader would act on.
fn sanitize_message(s: &str) -> String {
    display_safe(s, 2000)
}

/// Per-instance state: an empty WASI context, limits, the call meter and
/// the log budget.
struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    limits: PluginLimits,
    /// CPU time of the call in progress (shared with its guard).
    meter: Arc<CallMeter>,
    /// Set when the epoch callback interrupted the current call.
    interrupted: bool,
    /// A `wasi:random` request over the cap, in bytes.
    random_denied: Option<u64>,
    label: String,
    request_id: u64,
    log_bytes_left: usize,
    log_dropped: bool,
}

impl HostState {
    fn new(
        label: String,
        request_id: u64,
        limits: PluginLimits,
        memory: Arc<MemoryBudget>,
    ) -> Self {
        HostState {
            wasi: sandbox::wasi_ctx(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(limits.memory_bytes, Some(memory)),
            limits,
            meter: Arc::new(CallMeter::default()),
            interrupted: false,
            random_denied: None,
            label,
            request_id,
            log_bytes_left: limits.max_log_bytes,
            log_dropped: false,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit::Host for HostState {}

impl bindings::genai_bench::backend::host::Host for HostState {
    fn log(&mut self, level: wit::LogLevel, message: String) {
        if self.log_bytes_left == 0 {
            if !self.log_dropped {
                self.log_dropped = true;
                tracing::warn!(
                    target: "plugin",
                    plugin = %self.label,
                    request = self.request_id,
                    "log budget of {} bytes used up; further plugin log lines of this request are dropped",
                    self.limits.max_log_bytes
                );
            }
            return;
        }
        let level = match level {
            wit::LogLevel::Trace => tracing::Level::TRACE,
            wit::LogLevel::Debug => tracing::Level::DEBUG,
            wit::LogLevel::Info => tracing::Level::INFO,
            wit::LogLevel::Warn => tracing::Level::WARN,
            wit::LogLevel::Error => tracing::Level::ERROR,
        };
        // Warnings repeat once per request; show each distinct one once at
        // its level and the repeats only at DEBUG.
        let level = if level <= tracing::Level::INFO && !first_time(&self.label, &message) {
            tracing::Level::DEBUG
        } else {
            level
        };
        let enabled = match level {
            tracing::Level::TRACE => tracing::enabled!(target: "plugin", tracing::Level::TRACE),
            tracing::Level::DEBUG => tracing::enabled!(target: "plugin", tracing::Level::DEBUG),
            _ => true,
        };
        if !enabled {
            return;
        }
        let clean = redact_secrets(display_safe(&message, 1024));
        self.log_bytes_left = self.log_bytes_left.saturating_sub(clean.len().max(1));
        let (plugin, request) = (&self.label, self.request_id);
        match level {
            tracing::Level::TRACE => tracing::trace!(target: "plugin", %plugin, request, "{clean}"),
            tracing::Level::DEBUG => tracing::debug!(target: "plugin", %plugin, request, "{clean}"),
            tracing::Level::INFO => tracing::info!(target: "plugin", %plugin, request, "{clean}"),
            tracing::Level::WARN => {
                tracing::warn!(target: "plugin", %plugin, request, "{clean} (repeats are logged at LOG_LEVEL=DEBUG)")
            }
            _ => {
                tracing::error!(target: "plugin", %plugin, request, "{clean} (repeats are logged at LOG_LEVEL=DEBUG)")
            }
        }
    }
}

/// Whether this plugin has not logged `message` before in this process.
fn first_time(label: &str, message: &str) -> bool {
    use std::collections::HashSet;
    use std::sync::{LazyLock, Mutex};
    static SEEN: LazyLock<Mutex<HashSet<(String, String)>>> = LazyLock::new(Mutex::default);
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if seen.len() >= 4096 {
        // A plugin inventing endless distinct messages: treat all as repeats.
        return false;
    }
    seen.insert((label.to_string(), message.chars().take(1024).collect()))
}
