//! Hot swap: replacing a plugin while a benchmark runs.
//!
//! Requests take the plugin from a [`PluginSlot`] when they start, keep that
//! `Arc` (and their own instance) until their response is parsed, and record
//! its `name version`. Swapping the slot therefore never touches a request in
//! flight: it finishes on the plugin that built it, and the next request
//! starts on the new one.
//!
//! A [`watch_plugin_file`] task reloads the file behind `--plugin PATH` when
//! it changes (with `--watch`) or on SIGHUP. A candidate is compiled and
//! checked off the request path (metadata, the run's task, the run's params,
//! a dry request build through the host's policy) and only then swapped in;
//! a broken candidate is refused with the reason and the old plugin stays.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use super::{BenchRequest, LoadedPlugin, PluginRuntime, Task};

/// The plugin new requests use; swapped atomically.
#[derive(Debug)]
pub struct PluginSlot {
    current: RwLock<Arc<LoadedPlugin>>,
    /// Every `name version (sha256 prefix)` that served, in order.
    history: Mutex<Vec<String>>,
}

impl PluginSlot {
    /// A slot holding `plugin`.
    pub fn new(plugin: Arc<LoadedPlugin>) -> Arc<Self> {
        let first = describe(&plugin);
        Arc::new(PluginSlot {
            current: RwLock::new(plugin),
            history: Mutex::new(vec![first]),
        })
    }

    /// The plugin a request starting now uses.
    pub fn current(&self) -> Arc<LoadedPlugin> {
        // A poisoned lock still holds a valid Arc: a panic elsewhere must not
        // stop requests from finding their plugin.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Make `plugin` the one new requests use; returns the previous one.
    pub fn replace(&self, plugin: Arc<LoadedPlugin>) -> Arc<LoadedPlugin> {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(describe(&plugin));
        let mut cur = self.current.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *cur, plugin)
    }

    /// Every plugin that has been in the slot, oldest first, as
    /// `name version (sha256:prefix)`.
    pub fn history(&self) -> Vec<String> {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn describe(p: &LoadedPlugin) -> String {
    format!(
        "{} (sha256:{})",
        p.label(),
        &p.sha256()[..12.min(p.sha256().len())]
    )
}

/// What a candidate must handle to replace the running plugin: the run's
/// task, stream mode, model and params.
#[derive(Debug, Clone)]
pub struct SwapCheck {
    /// Task of the benchmark.
    pub task: Task,
    /// A model name the benchmark sends.
    pub model: String,
    /// Whether requests stream.
    pub stream: bool,
    /// `--additional-request-params` as a JSON object.
    pub params_json: String,
    /// The `--api-backend` name requests carry.
    pub backend: String,
    /// The backend options requests carry (Azure deployment, GCP project, ...).
    pub backend_options: Vec<(String, String)>,
}

impl SwapCheck {
    /// A small but complete request of the run's task, for the dry build.
    fn probe_request(&self) -> BenchRequest {
        let mut r = BenchRequest::text(
            &self.model,
            "genai-bench hot swap check",
            Some(8),
            self.stream,
        );
        r.task = self.task;
        r.params_json = self.params_json.clone();
        r.backend = self.backend.clone();
        r.backend_options = self.backend_options.clone();
        match self.task {
            Task::TextToText => {}
            // A 1x1 PNG: any image-capable format must accept it.
            Task::ImageTextToText => r.image_urls = vec![TINY_PNG.to_string()],
            Task::TextToEmbeddings => r.documents = vec!["genai-bench hot swap check".into()],
            Task::TextToRerank => {
                r.query = "genai-bench hot swap check".into();
                r.documents = vec!["genai-bench hot swap check".into()];
            }
            Task::ImageToEmbeddings => r.image_urls = vec![TINY_PNG.to_string()],
            Task::TextToImage => r.image_output = Some((256, 256, 1)),
            Task::TextToSpeech => {}
        }
        r
    }
}

const TINY_PNG: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

/// Check that `candidate` can take over the run `check` describes:
/// it supports the task, accepts the params, and builds a request the host's
/// policy accepts. Runs plugin code, so call it on the plugin executor.
pub async fn check_candidate(
    candidate: &Arc<LoadedPlugin>,
    check: &SwapCheck,
) -> Result<(), String> {
    if !candidate.info().tasks.contains(&check.task) {
        return Err(format!(
            "it does not support --task {} (it supports: {})",
            check.task,
            candidate
                .info()
                .tasks
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut inst = candidate
        .instantiate(0)
        .await
        .map_err(|e| format!("it cannot be instantiated: {e}"))?;
    match inst.validate_params(&check.params_json).await {
        Ok(Ok(())) => {}
        Ok(Err(msg)) => return Err(format!("it refuses --additional-request-params: {msg}")),
        Err(e) => return Err(format!("validate-params failed: {e}")),
    }
    // A fresh instance, as a real request gets.
    let mut inst = candidate
        .instantiate(0)
        .await
        .map_err(|e| format!("it cannot be instantiated: {e}"))?;
    inst.build_request(&check.probe_request())
        .await
        .map_err(|e| format!("the dry request build failed: {e}"))?;
    Ok(())
}

/// How [`watch_plugin_file`] learns that the file may have changed.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Poll the file's size and mtime this often (`--watch`); `None` reloads
    /// only on SIGHUP.
    pub poll: Option<Duration>,
    /// Reload on SIGHUP.
    pub sighup: bool,
    /// `--plugin-sha256`: a reload whose bytes hash to anything else is
    /// refused, so a pinned run never runs other code.
    pub pin: Option<String>,
}

/// Watch the plugin file behind `slot` and swap in each new version that
/// passes [`check_candidate`]. Runs until the returned task is aborted.
///
/// Compiling happens on a blocking thread and plugin calls on `plugin_exec`,
/// so a swap never delays the tasks that take timestamps.
pub fn watch_plugin_file(
    runtime: Arc<PluginRuntime>,
    path: PathBuf,
    slot: Arc<PluginSlot>,
    check: SwapCheck,
    options: WatchOptions,
    plugin_exec: tokio::runtime::Handle,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    let mut hup = if options.sighup {
        Some(tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::hangup(),
        )?)
    } else {
        None
    };
    Ok(tokio::spawn(async move {
        let mut seen = stamp(&path);
        let mut pending: Option<Stamp> = None;
        let mut ticker = options.poll.map(|d| {
            let mut t = tokio::time::interval(d);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        loop {
            #[cfg(unix)]
            let hup_fut = async {
                match hup.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hup_fut = std::future::pending::<Option<()>>();
            let tick_fut = async {
                match ticker.as_mut() {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => std::future::pending().await,
                }
            };
            let forced = tokio::select! {
                _ = hup_fut => true,
                _ = tick_fut => false,
            };
            if !forced {
                let now = stamp(&path);
                if now == seen {
                    pending = None;
                    continue;
                }
                // Wait for one quiet interval, so a file still being written
                // is not loaded half-way.
                if pending != Some(now) {
                    pending = Some(now);
                    continue;
                }
                pending = None;
                seen = now;
            } else {
                tracing::info!("SIGHUP: reloading plugin {}", path.display());
                seen = stamp(&path);
            }
            try_swap(
                &runtime,
                &path,
                &slot,
                &check,
                options.pin.as_deref(),
                &plugin_exec,
            )
            .await;
        }
    }))
}

type Stamp = Option<(u64, SystemTime)>;

fn stamp(path: &std::path::Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

async fn try_swap(
    runtime: &Arc<PluginRuntime>,
    path: &std::path::Path,
    slot: &Arc<PluginSlot>,
    check: &SwapCheck,
    pin: Option<&str>,
    plugin_exec: &tokio::runtime::Handle,
) {
    let old = slot.current();
    let p = path.to_path_buf();
    let max = runtime.limits().max_component_bytes;
    // Read once: the bytes checked against the pin are the bytes loaded.
    let loaded = tokio::task::spawn_blocking(move || {
        let bytes = super::read_plugin_file(&p, max)?;
        let sha = super::sha256_hex(&bytes);
        Ok::<_, anyhow::Error>((sha, bytes))
    })
    .await;
    let (sha, bytes) = match loaded {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return refuse(path, &old, &format!("{e:#}")),
        Err(e) => return refuse(path, &old, &format!("reading it failed: {e}")),
    };
    if let Err(e) = super::check_pin(&bytes, pin) {
        return refuse(path, &old, &format!("{e:#}"));
    }
    if sha == old.sha256() {
        tracing::info!(
            "plugin {} unchanged (same SHA-256); keeping {}",
            path.display(),
            old.label()
        );
        return;
    }
    let rt = runtime.clone();
    let p = path.to_path_buf();
    let compiled =
        tokio::task::spawn_blocking(move || rt.load_bytes(&bytes, super::PluginOrigin::File(p)))
            .await;
    let candidate = match compiled {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return refuse(path, &old, &format!("{e:#}")),
        Err(e) => return refuse(path, &old, &format!("loading it failed: {e}")),
    };
    let (c, chk) = (candidate.clone(), check.clone());
    let verdict = plugin_exec
        .spawn(async move { check_candidate(&c, &chk).await })
        .await
        .unwrap_or_else(|e| Err(format!("the check failed: {e}")));
    if let Err(reason) = verdict {
        return refuse(path, &old, &format!("{} {reason}", candidate.label()));
    }
    if candidate.info().name != old.info().name {
        tracing::warn!(
            "hot swap: the new plugin is named {:?}, the old one {:?}; swapping anyway since it passed the checks",
            candidate.info().name,
            old.info().name
        );
    }
    let label = candidate.label().to_string();
    slot.replace(candidate);
    tracing::info!(
        "hot swap: {} -> {label} (sha256:{}); new requests use it, requests in flight finish on {}",
        old.label(),
        &sha[..12],
        old.label()
    );
}

fn refuse(path: &std::path::Path, old: &LoadedPlugin, reason: &str) {
    tracing::warn!(
        "hot swap refused: {}: {reason}; keeping {}",
        path.display(),
        old.label()
    );
}
