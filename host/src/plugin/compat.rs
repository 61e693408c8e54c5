//! Contract versions: the host loads plugins built against the current
//! contract (`wit/backend.wit`) and every older one it still supports
//! (`wit/v<version>/`), and adapts older plugins' calls to the current
//! types, so the rest of the runtime sees one contract.
//!
//! Adapting 0.4.0: its types are the current ones; its `build-request`
//! returns the bare `http-request` (no parser note) and its parser runs in
//! the instance that built the request (the host keeps that instance for
//! the response, see [`AnyPlugin::separate_parser`]).
//!
//! Adapting 0.3.0: as 0.4.0, and its `feed` takes one chunk, so a batch of
//! chunks is fed to it one call at a time.
//!
//! Adapting 0.2.0: its `plugin-info.auth` is a header (the `header`
//! scheme now); its `request` has no `query`, `image-output` or
//! `backend-options`, and its tasks are the first three (a plugin of 0.2.0
//! never lists the newer ones, so the host never asks it for them).
//!
//! Adapting 0.1.0: as 0.2.0, and its `request` has no `backend` (the plugin
//! serves only its own name anyway) and its `plugin-info` has no `backends`
//! (empty).

use wasmtime::Store;
use wasmtime::component::{HasSelf, InstancePre, Linker, ResourceAny};

use super::bindings::{self, v0_1, v0_2, v0_3, v0_4, wit};
use super::{HostState, WorldDescription};

/// A contract version this host can load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractVersion {
    /// `genai-bench:backend@0.1.0` (frozen in `wit/v0.1.0/`).
    V0_1,
    /// `genai-bench:backend@0.2.0` (frozen in `wit/v0.2.0/`).
    V0_2,
    /// `genai-bench:backend@0.3.0` (frozen in `wit/v0.3.0/`).
    V0_3,
    /// `genai-bench:backend@0.4.0` (frozen in `wit/v0.4.0/`).
    V0_4,
    /// `genai-bench:backend@0.5.0`, the current one (`wit/backend.wit`).
    V0_5,
}

impl ContractVersion {
    /// Every version this host loads, newest first.
    pub const SUPPORTED: [ContractVersion; 5] = [
        ContractVersion::V0_5,
        ContractVersion::V0_4,
        ContractVersion::V0_3,
        ContractVersion::V0_2,
        ContractVersion::V0_1,
    ];
    /// The version new plugins are built against.
    pub const CURRENT: ContractVersion = ContractVersion::V0_5;

    /// The semver string, e.g. `0.2.0`.
    pub fn as_str(self) -> &'static str {
        match self {
            ContractVersion::V0_1 => "0.1.0",
            ContractVersion::V0_2 => "0.2.0",
            ContractVersion::V0_3 => "0.3.0",
            ContractVersion::V0_4 => "0.4.0",
            ContractVersion::V0_5 => "0.5.0",
        }
    }

    /// Whether a response is parsed in an instance of its own, given the
    /// note `build-request` returned (0.5.0 on). Before, the parser runs
    /// in the instance that built the request, which lives until the
    /// response ends.
    pub fn parses_apart(self) -> bool {
        matches!(self, ContractVersion::V0_5)
    }

    /// The WIT world a plugin of this version implements.
    pub fn world(self) -> String {
        format!("genai-bench:backend/plugin@{}", self.as_str())
    }

    /// The versions this host loads, for messages: `0.2.0, 0.1.0`.
    pub fn supported_list() -> String {
        Self::SUPPORTED
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Which contract a component implements, from the `backend` interface
    /// it exports. Refuses unknown versions with the ones this host loads.
    pub fn detect(world: &WorldDescription) -> anyhow::Result<ContractVersion> {
        const EXPORT: &str = "genai-bench:backend/backend";
        let exported: Vec<&str> = world
            .exports
            .iter()
            .filter_map(|e| e.strip_prefix(EXPORT))
            .collect();
        let Some(first) = exported.first() else {
            anyhow::bail!(
                "the plugin does not export `{EXPORT}` (it exports: {}); build it against the world {} from wit/backend.wit",
                if world.exports.is_empty() {
                    "nothing".to_string()
                } else {
                    world.exports.join(", ")
                },
                Self::CURRENT.world()
            );
        };
        let version = first.strip_prefix('@').unwrap_or("");
        Self::SUPPORTED
            .into_iter()
            .find(|v| v.as_str() == version)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "the plugin implements contract version {} of genai-bench:backend, which this host does not support; this host loads versions {} (rebuild the plugin against wit/backend.wit, version {})",
                    if version.is_empty() {
                        "(none)"
                    } else {
                        version
                    },
                    Self::supported_list(),
                    Self::CURRENT.as_str()
                )
            })
    }
}

impl std::fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Links the `host` interface of every supported version.
pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    bindings::Plugin::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    v0_4::Plugin::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    v0_3::Plugin::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    v0_2::Plugin::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    v0_1::Plugin::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    Ok(())
}

/// A type-checked plugin of any supported version, ready to instantiate.
pub(super) enum AnyPluginPre {
    V0_5(bindings::PluginPre<HostState>),
    V0_4(v0_4::PluginPre<HostState>),
    V0_3(v0_3::PluginPre<HostState>),
    V0_2(v0_2::PluginPre<HostState>),
    V0_1(v0_1::PluginPre<HostState>),
}

impl AnyPluginPre {
    pub(super) fn new(
        pre: InstancePre<HostState>,
        version: ContractVersion,
    ) -> wasmtime::Result<Self> {
        Ok(match version {
            ContractVersion::V0_5 => AnyPluginPre::V0_5(bindings::PluginPre::new(pre)?),
            ContractVersion::V0_4 => AnyPluginPre::V0_4(v0_4::PluginPre::new(pre)?),
            ContractVersion::V0_3 => AnyPluginPre::V0_3(v0_3::PluginPre::new(pre)?),
            ContractVersion::V0_2 => AnyPluginPre::V0_2(v0_2::PluginPre::new(pre)?),
            ContractVersion::V0_1 => AnyPluginPre::V0_1(v0_1::PluginPre::new(pre)?),
        })
    }

    pub(super) async fn instantiate_async(
        &self,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<AnyPlugin> {
        Ok(match self {
            AnyPluginPre::V0_5(p) => AnyPlugin::V0_5(p.instantiate_async(store).await?),
            AnyPluginPre::V0_4(p) => AnyPlugin::V0_4(p.instantiate_async(store).await?),
            AnyPluginPre::V0_3(p) => AnyPlugin::V0_3(p.instantiate_async(store).await?),
            AnyPluginPre::V0_2(p) => AnyPlugin::V0_2(p.instantiate_async(store).await?),
            AnyPluginPre::V0_1(p) => AnyPlugin::V0_1(p.instantiate_async(store).await?),
        })
    }
}

/// One instance's exports, whatever its contract version; calls take and
/// return the current version's types.
pub(super) enum AnyPlugin {
    V0_5(bindings::Plugin),
    V0_4(v0_4::Plugin),
    V0_3(v0_3::Plugin),
    V0_2(v0_2::Plugin),
    V0_1(v0_1::Plugin),
}

type Events = Result<Vec<wit::Event>, String>;

impl AnyPlugin {
    pub(super) async fn call_info(
        &self,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<wit::PluginInfo> {
        match self {
            AnyPlugin::V0_5(p) => p.genai_bench_backend_backend().call_info(store).await,
            AnyPlugin::V0_4(p) => p.genai_bench_backend_backend().call_info(store).await,
            AnyPlugin::V0_3(p) => p.genai_bench_backend_backend().call_info(store).await,
            AnyPlugin::V0_2(p) => {
                let i = p.genai_bench_backend_backend().call_info(store).await?;
                Ok(wit::PluginInfo {
                    name: i.name,
                    version: i.version,
                    description: i.description,
                    tasks: i.tasks.into_iter().map(task_from_0_2).collect(),
                    auth: i.auth.map(|a| header(a.name, a.prefix)),
                    backends: i.backends,
                })
            }
            AnyPlugin::V0_1(p) => {
                let i = p.genai_bench_backend_backend().call_info(store).await?;
                Ok(wit::PluginInfo {
                    name: i.name,
                    version: i.version,
                    description: i.description,
                    tasks: i.tasks.into_iter().map(task_from_0_1).collect(),
                    auth: i.auth.map(|a| header(a.name, a.prefix)),
                    backends: Vec::new(),
                })
            }
        }
    }

    pub(super) async fn call_validate_params(
        &self,
        store: &mut Store<HostState>,
        params_json: &str,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            AnyPlugin::V0_5(p) => {
                p.genai_bench_backend_backend()
                    .call_validate_params(store, params_json)
                    .await
            }
            AnyPlugin::V0_4(p) => {
                p.genai_bench_backend_backend()
                    .call_validate_params(store, params_json)
                    .await
            }
            AnyPlugin::V0_3(p) => {
                p.genai_bench_backend_backend()
                    .call_validate_params(store, params_json)
                    .await
            }
            AnyPlugin::V0_2(p) => {
                p.genai_bench_backend_backend()
                    .call_validate_params(store, params_json)
                    .await
            }
            AnyPlugin::V0_1(p) => {
                p.genai_bench_backend_backend()
                    .call_validate_params(store, params_json)
                    .await
            }
        }
    }

    pub(super) async fn call_build_request(
        &self,
        store: &mut Store<HostState>,
        req: &wit::Request,
    ) -> wasmtime::Result<Result<wit::BuiltRequest, String>> {
        // Before 0.5.0 there is no note: the parser runs in the instance
        // that built the request and keeps what it needs itself.
        let bare = |http| wit::BuiltRequest {
            http,
            parser_note: String::new(),
        };
        match self {
            AnyPlugin::V0_5(p) => {
                p.genai_bench_backend_backend()
                    .call_build_request(store, req)
                    .await
            }
            AnyPlugin::V0_4(p) => Ok(p
                .genai_bench_backend_backend()
                .call_build_request(store, req)
                .await?
                .map(bare)),
            AnyPlugin::V0_3(p) => Ok(p
                .genai_bench_backend_backend()
                .call_build_request(store, req)
                .await?
                .map(bare)),
            AnyPlugin::V0_2(p) => {
                let Some(task) = task_to_0_2(req.task) else {
                    return Ok(Err(older_task(req.task, ContractVersion::V0_2)));
                };
                let old = v0_2::wit::Request {
                    task,
                    model: req.model.clone(),
                    prompt: req.prompt.clone(),
                    messages: req
                        .messages
                        .iter()
                        .map(|m| v0_2::wit::Message {
                            role: m.role.clone(),
                            content: m.content.clone(),
                        })
                        .collect(),
                    image_urls: req.image_urls.clone(),
                    documents: req.documents.clone(),
                    max_tokens: req.max_tokens,
                    stream: req.stream,
                    params_json: req.params_json.clone(),
                    backend: req.backend.clone(),
                };
                let r = p
                    .genai_bench_backend_backend()
                    .call_build_request(store, &old)
                    .await?;
                Ok(r.map(|h| {
                    bare(wit::HttpRequest {
                        method: h.method,
                        path: h.path,
                        headers: h.headers,
                        body: h.body,
                    })
                }))
            }
            AnyPlugin::V0_1(p) => {
                let Some(task) = task_to_0_2(req.task).map(task_0_2_to_0_1) else {
                    return Ok(Err(older_task(req.task, ContractVersion::V0_1)));
                };
                let old = v0_1::wit::Request {
                    task,
                    model: req.model.clone(),
                    prompt: req.prompt.clone(),
                    messages: req
                        .messages
                        .iter()
                        .map(|m| v0_1::wit::Message {
                            role: m.role.clone(),
                            content: m.content.clone(),
                        })
                        .collect(),
                    image_urls: req.image_urls.clone(),
                    documents: req.documents.clone(),
                    max_tokens: req.max_tokens,
                    stream: req.stream,
                    params_json: req.params_json.clone(),
                };
                let r = p
                    .genai_bench_backend_backend()
                    .call_build_request(store, &old)
                    .await?;
                Ok(r.map(|h| {
                    bare(wit::HttpRequest {
                        method: h.method,
                        path: h.path,
                        headers: h.headers,
                        body: h.body,
                    })
                }))
            }
        }
    }

    pub(super) async fn call_parser_new(
        &self,
        store: &mut Store<HostState>,
        head: &wit::ResponseHead,
        parser_note: &str,
    ) -> wasmtime::Result<ResourceAny> {
        let old_task = || {
            task_to_0_2(head.task)
                .ok_or_else(|| wasmtime::Error::msg(older_task(head.task, ContractVersion::V0_2)))
        };
        match self {
            AnyPlugin::V0_5(p) => {
                p.genai_bench_backend_backend()
                    .response_parser()
                    .call_constructor(store, head, parser_note)
                    .await
            }
            AnyPlugin::V0_4(p) => {
                p.genai_bench_backend_backend()
                    .response_parser()
                    .call_constructor(store, head)
                    .await
            }
            AnyPlugin::V0_3(p) => {
                p.genai_bench_backend_backend()
                    .response_parser()
                    .call_constructor(store, head)
                    .await
            }
            AnyPlugin::V0_2(p) => {
                let old = v0_2::wit::ResponseHead {
                    status: head.status,
                    headers: head.headers.clone(),
                    task: old_task()?,
                    stream: head.stream,
                };
                p.genai_bench_backend_backend()
                    .response_parser()
                    .call_constructor(store, &old)
                    .await
            }
            AnyPlugin::V0_1(p) => {
                let old = v0_1::wit::ResponseHead {
                    status: head.status,
                    headers: head.headers.clone(),
                    task: task_0_2_to_0_1(old_task()?),
                    stream: head.stream,
                };
                p.genai_bench_backend_backend()
                    .response_parser()
                    .call_constructor(store, &old)
                    .await
            }
        }
    }

    /// Whether `feed` takes a batch of chunks (0.4.0 on) rather than one.
    pub(super) fn feeds_batches(&self) -> bool {
        matches!(self, AnyPlugin::V0_5(_) | AnyPlugin::V0_4(_))
    }

    /// `feed` of 0.4.0: the chunks of `bytes` ending at `ends`, one list of
    /// events per chunk. Only for a plugin that [`feeds_batches`](Self::feeds_batches).
    pub(super) async fn call_feed_batch(
        &self,
        store: &mut Store<HostState>,
        parser: ResourceAny,
        bytes: &[u8],
        ends: &[u32],
    ) -> wasmtime::Result<Result<Vec<Vec<wit::Event>>, String>> {
        match self {
            AnyPlugin::V0_5(p) => {
                p.genai_bench_backend_backend()
                    .response_parser()
                    .call_feed(store, parser, bytes, ends)
                    .await
            }
            AnyPlugin::V0_4(p) => {
                p.genai_bench_backend_backend()
                    .response_parser()
                    .call_feed(store, parser, bytes, ends)
                    .await
            }
            _ => Err(wasmtime::Error::msg(
                "a batch fed to a plugin whose contract takes one chunk per call",
            )),
        }
    }

    /// `feed` of one chunk, for a plugin of 0.3.0 or older.
    pub(super) async fn call_feed(
        &self,
        store: &mut Store<HostState>,
        parser: ResourceAny,
        chunk: &[u8],
    ) -> wasmtime::Result<Events> {
        match self {
            // The instance feeds a 0.4.0 plugin through `call_feed_batch`
            // (a batch of one), which checks the number of lists.
            AnyPlugin::V0_5(_) | AnyPlugin::V0_4(_) => Err(wasmtime::Error::msg(
                "one chunk fed to a plugin whose contract takes batches",
            )),
            AnyPlugin::V0_3(p) => {
                p.genai_bench_backend_backend()
                    .response_parser()
                    .call_feed(store, parser, chunk)
                    .await
            }
            AnyPlugin::V0_2(p) => Ok(p
                .genai_bench_backend_backend()
                .response_parser()
                .call_feed(store, parser, chunk)
                .await?
                .map(events_from_0_2)),
            AnyPlugin::V0_1(p) => Ok(p
                .genai_bench_backend_backend()
                .response_parser()
                .call_feed(store, parser, chunk)
                .await?
                .map(events_from_0_1)),
        }
    }

    pub(super) async fn call_finish(
        &self,
        store: &mut Store<HostState>,
        parser: ResourceAny,
    ) -> wasmtime::Result<Events> {
        match self {
            AnyPlugin::V0_5(p) => {
                p.genai_bench_backend_backend()
                    .response_parser()
                    .call_finish(store, parser)
                    .await
            }
            AnyPlugin::V0_4(p) => {
                p.genai_bench_backend_backend()
                    .response_parser()
                    .call_finish(store, parser)
                    .await
            }
            AnyPlugin::V0_3(p) => {
                p.genai_bench_backend_backend()
                    .response_parser()
                    .call_finish(store, parser)
                    .await
            }
            AnyPlugin::V0_2(p) => Ok(p
                .genai_bench_backend_backend()
                .response_parser()
                .call_finish(store, parser)
                .await?
                .map(events_from_0_2)),
            AnyPlugin::V0_1(p) => Ok(p
                .genai_bench_backend_backend()
                .response_parser()
                .call_finish(store, parser)
                .await?
                .map(events_from_0_1)),
        }
    }
}

fn header(name: String, prefix: String) -> wit::AuthScheme {
    wit::AuthScheme::Header(wit::AuthHeader { name, prefix })
}

/// Why an older plugin is not asked for a newer task (it never lists one,
/// so this is reached only by a host bug).
fn older_task(t: wit::Task, v: ContractVersion) -> String {
    format!(
        "task {} is not in contract {v}, which this plugin implements",
        super::Task::from(t)
    )
}

fn task_from_0_1(t: v0_1::wit::Task) -> wit::Task {
    match t {
        v0_1::wit::Task::TextToText => wit::Task::TextToText,
        v0_1::wit::Task::ImageTextToText => wit::Task::ImageTextToText,
        v0_1::wit::Task::TextToEmbeddings => wit::Task::TextToEmbeddings,
    }
}

fn task_from_0_2(t: v0_2::wit::Task) -> wit::Task {
    match t {
        v0_2::wit::Task::TextToText => wit::Task::TextToText,
        v0_2::wit::Task::ImageTextToText => wit::Task::ImageTextToText,
        v0_2::wit::Task::TextToEmbeddings => wit::Task::TextToEmbeddings,
    }
}

/// The task in 0.2.0 (and 0.1.0) terms; `None` for the tasks 0.3.0 added.
fn task_to_0_2(t: wit::Task) -> Option<v0_2::wit::Task> {
    match t {
        wit::Task::TextToText => Some(v0_2::wit::Task::TextToText),
        wit::Task::ImageTextToText => Some(v0_2::wit::Task::ImageTextToText),
        wit::Task::TextToEmbeddings => Some(v0_2::wit::Task::TextToEmbeddings),
        wit::Task::TextToRerank
        | wit::Task::ImageToEmbeddings
        | wit::Task::TextToImage
        | wit::Task::TextToSpeech => None,
    }
}

fn task_0_2_to_0_1(t: v0_2::wit::Task) -> v0_1::wit::Task {
    match t {
        v0_2::wit::Task::TextToText => v0_1::wit::Task::TextToText,
        v0_2::wit::Task::ImageTextToText => v0_1::wit::Task::ImageTextToText,
        v0_2::wit::Task::TextToEmbeddings => v0_1::wit::Task::TextToEmbeddings,
    }
}

fn events_from_0_2(events: Vec<v0_2::wit::Event>) -> Vec<wit::Event> {
    events
        .into_iter()
        .map(|e| match e {
            v0_2::wit::Event::Content(s) => wit::Event::Content(s),
            v0_2::wit::Event::Reasoning(s) => wit::Event::Reasoning(s),
            v0_2::wit::Event::Usage(u) => wit::Event::Usage(wit::Usage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                reasoning_tokens: u.reasoning_tokens,
            }),
            v0_2::wit::Event::Error(e) => wit::Event::Error(wit::ApiError {
                code: e.code,
                message: e.message,
            }),
            v0_2::wit::Event::End => wit::Event::End,
        })
        .collect()
}

fn events_from_0_1(events: Vec<v0_1::wit::Event>) -> Vec<wit::Event> {
    events
        .into_iter()
        .map(|e| match e {
            v0_1::wit::Event::Content(s) => wit::Event::Content(s),
            v0_1::wit::Event::Reasoning(s) => wit::Event::Reasoning(s),
            v0_1::wit::Event::Usage(u) => wit::Event::Usage(wit::Usage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                reasoning_tokens: u.reasoning_tokens,
            }),
            v0_1::wit::Event::Error(e) => wit::Event::Error(wit::ApiError {
                code: e.code,
                message: e.message,
            }),
            v0_1::wit::Event::End => wit::Event::End,
        })
        .collect()
}

impl v0_4::genai_bench::backend::host::Host for HostState {
    fn log(&mut self, level: wit::LogLevel, message: String) {
        bindings::genai_bench::backend::host::Host::log(self, level, message);
    }
}

impl v0_3::genai_bench::backend::host::Host for HostState {
    fn log(&mut self, level: wit::LogLevel, message: String) {
        bindings::genai_bench::backend::host::Host::log(self, level, message);
    }
}

impl v0_2::wit::Host for HostState {}

impl v0_2::genai_bench::backend::host::Host for HostState {
    fn log(&mut self, level: v0_2::wit::LogLevel, message: String) {
        let level = match level {
            v0_2::wit::LogLevel::Trace => wit::LogLevel::Trace,
            v0_2::wit::LogLevel::Debug => wit::LogLevel::Debug,
            v0_2::wit::LogLevel::Info => wit::LogLevel::Info,
            v0_2::wit::LogLevel::Warn => wit::LogLevel::Warn,
            v0_2::wit::LogLevel::Error => wit::LogLevel::Error,
        };
        bindings::genai_bench::backend::host::Host::log(self, level, message);
    }
}

impl v0_1::wit::Host for HostState {}

impl v0_1::genai_bench::backend::host::Host for HostState {
    fn log(&mut self, level: v0_1::wit::LogLevel, message: String) {
        let level = match level {
            v0_1::wit::LogLevel::Trace => wit::LogLevel::Trace,
            v0_1::wit::LogLevel::Debug => wit::LogLevel::Debug,
            v0_1::wit::LogLevel::Info => wit::LogLevel::Info,
            v0_1::wit::LogLevel::Warn => wit::LogLevel::Warn,
            v0_1::wit::LogLevel::Error => wit::LogLevel::Error,
        };
        bindings::genai_bench::backend::host::Host::log(self, level, message);
    }
}
