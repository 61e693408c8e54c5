//! Sends one benchmark request and times it.
//!
//! The plugin builds the request; the host resolves the URL, adds the key,
//! sends it, and timestamps every body chunk the moment it arrives. Chunks go
//! to the plugin's parser on the plugin executor through a channel, so plugin
//! cost never delays a timestamp. A closed-loop worker's next request is
//! built in the same plugin-executor visit as its current response's end
//! ([`Transport::send`] with a [`Then`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use url::Url;

use crate::plugin::{
    BenchRequest, Event, LoadedPlugin, OutboundRequest, PluginError, PluginErrorKind,
    PluginInstance, ResponseHead, Task, Usage, policy,
};
use crate::race::{Either, race_rare};

/// An API key that never prints.
#[derive(Clone, Default)]
pub struct Secret(Option<String>);

impl Secret {
    /// Wrap a key; empty or whitespace-only means no key.
    pub fn new(key: Option<String>) -> Self {
        Secret(key.map(|k| k.trim().to_string()).filter(|k| !k.is_empty()))
    }
    /// The key itself, for the one place that sends it.
    pub fn expose(&self) -> Option<&str> {
        self.0.as_deref()
    }
    /// Replace every occurrence of the key in `text` (for logs and files).
    pub fn redact(&self, text: &str) -> String {
        match &self.0 {
            Some(k) if k.len() >= 4 => text.replace(k.as_str(), "<redacted>"),
            _ => text.to_string(),
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Secret(<redacted>)"
        } else {
            "Secret(none)"
        })
    }
}

/// Where requests go.
#[derive(Debug, Clone)]
pub struct Target {
    /// `--api-base`.
    pub base: Url,
    /// `--api-key` / `MODEL_API_KEY`.
    pub api_key: Secret,
    /// Everything the plugin's auth scheme needs (the key included).
    pub credentials: Arc<crate::auth::Credentials>,
    /// Whole-request deadline (`--request-timeout`).
    pub timeout: Duration,
    /// Largest response body accepted.
    pub max_response_bytes: usize,
}

impl Target {
    /// A target with default timeout and body cap.
    pub fn new(base: Url, api_key: Secret) -> Self {
        Target {
            base,
            credentials: Arc::new(crate::auth::Credentials {
                api_key: api_key.clone(),
                ..Default::default()
            }),
            api_key,
            timeout: Duration::from_secs(600),
            max_response_bytes: 256 << 20,
        }
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The server answered with a non-2xx status.
    Http(u16),
    /// The server reported an error inside a 2xx body.
    Api,
    /// No connection could be made.
    Connect,
    /// The request ran past `--request-timeout`.
    Timeout,
    /// The connection broke while reading the response.
    Reset,
    /// The plugin failed (trap, limit, refusal, parse error).
    Plugin(PluginErrorKind),
    /// The response was larger than the host accepts.
    TooLarge,
    /// The user interrupted the run before the request completed.
    Cancelled,
    /// A 2xx response that ended before the format said it was complete
    /// (no `[DONE]`, no finish reason, no end of a whole body): cut off.
    Incomplete,
    /// A 2xx response whose body the plugin could not read (malformed JSON
    /// in an event stream, ...): the server's fault, not the plugin's.
    Malformed,
}

impl ErrorKind {
    /// Short stable name used in records and summaries.
    pub fn name(&self) -> &'static str {
        match self {
            ErrorKind::Http(_) => "http",
            ErrorKind::Api => "api",
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Reset => "reset",
            ErrorKind::Plugin(_) => "plugin",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Incomplete => "incomplete",
            ErrorKind::Malformed => "malformed",
        }
    }
}

/// A failed request's cause.
#[derive(Debug, Clone)]
pub struct RequestError {
    /// Typed cause.
    pub kind: ErrorKind,
    /// genai-bench compatible error code: the HTTP status, the server's code
    /// for errors inside a body, 503 connect, 408 timeout, 500 otherwise.
    pub code: i32,
    /// What went wrong, key redacted.
    pub message: String,
}

/// A response chunk's arrival, relative to the request start: 8 bytes a
/// chunk, since a stream keeps one per token until its body ends (a
/// `Duration` and a flag took 24, with the chunk's size 32).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ChunkArrival(u64);

impl ChunkArrival {
    /// A chunk that arrived `at` after the request started (nanoseconds
    /// up to 2^63: 292 years), not yet known to carry text.
    pub fn new(at: Duration) -> Self {
        let ns = u64::try_from(at.as_nanos())
            .unwrap_or(u64::MAX)
            .min(u64::MAX >> 1);
        ChunkArrival(ns << 1)
    }
    /// When the bytes arrived.
    pub fn at(self) -> Duration {
        Duration::from_nanos(self.0 >> 1)
    }
    /// Whether the plugin found generated text (content, reasoning or
    /// audio) in it.
    pub fn has_text(self) -> bool {
        self.0 & 1 == 1
    }
    /// Mark whether it carried text.
    pub fn set_has_text(&mut self, text: bool) {
        self.0 = self.0 & !1 | u64::from(text);
    }
}

impl std::fmt::Debug for ChunkArrival {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkArrival")
            .field("at", &self.at())
            .field("has_text", &self.has_text())
            .finish()
    }
}

/// Everything measured about one request.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Host-side request id.
    pub request_id: u64,
    /// `name version` of the plugin that served it.
    pub plugin: String,
    /// When the request was handed to the connection; `None` if it never was.
    pub started: Option<Instant>,
    /// Response headers arrived (relative to start).
    pub headers_at: Option<Duration>,
    /// Body chunks in arrival order.
    pub chunks: Vec<ChunkArrival>,
    /// First chunk that carried generated text.
    pub first_token_at: Option<Duration>,
    /// Response complete (or failed).
    pub end_at: Duration,
    /// HTTP status, if a response arrived.
    pub status: Option<u16>,
    /// Generated answer text.
    pub content: String,
    /// Generated reasoning text.
    pub reasoning: String,
    /// Server token counts (last report wins per field).
    pub usage: Usage,
    /// Whether the server signalled the end explicitly.
    pub end_seen: bool,
    /// Audio bytes received (text-to-speech).
    pub audio_bytes: u64,
    /// Images generated (text-to-image).
    pub images: u32,
    /// Set when the request failed.
    pub error: Option<RequestError>,
    /// For each batch of chunks handed to the parser, how long after the
    /// hand-over the plugin's events for all of it were ready (executor
    /// wait + parse): a client that cannot keep up shows here.
    pub parse_delays: Vec<Duration>,
    /// Sends again on a fresh connection after a reused one was found
    /// closed before any response (see [`Transport::execute`]).
    pub retries: u32,
}

impl Exchange {
    fn failed(request_id: u64, plugin: &str, error: RequestError) -> Self {
        // The failure's moment, so it sorts where it happened in the run.
        Exchange {
            request_id,
            plugin: plugin.to_string(),
            started: Some(Instant::now()),
            headers_at: None,
            chunks: Vec::new(),
            first_token_at: None,
            end_at: Duration::ZERO,
            status: None,
            content: String::new(),
            reasoning: String::new(),
            audio_bytes: 0,
            images: 0,
            usage: Usage::default(),
            end_seen: false,
            error: Some(error),
            parse_delays: Vec::new(),
            retries: 0,
        }
    }
}

fn plugin_error(e: &PluginError) -> RequestError {
    RequestError {
        kind: ErrorKind::Plugin(e.kind.clone()),
        code: 500,
        message: e.to_string(),
    }
}

/// Sends requests for one target through plugin instances.
#[derive(Clone)]
pub struct Transport {
    client: reqwest::Client,
    target: Arc<Target>,
    plugin_exec: tokio::runtime::Handle,
}

impl Transport {
    /// `plugin_exec` runs plugin calls; give it a runtime of its own so a
    /// slow plugin never delays the network tasks that take timestamps.
    pub fn new(
        client: reqwest::Client,
        target: Target,
        plugin_exec: tokio::runtime::Handle,
    ) -> Self {
        Transport {
            client,
            target: Arc::new(target),
            plugin_exec,
        }
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Idle connections older than this (seconds) are dropped, not reused.
    pub const POOL_IDLE_SECS: u64 = 4;

    /// A client sized for `concurrency` requests in flight.
    pub fn client_for(concurrency: usize) -> anyhow::Result<reqwest::Client> {
        Ok(reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency.max(1))
            // Below the idle keep-alive of common servers (uvicorn and
            // Node 5 s, Go 90 s, nginx 75 s): a connection the server may
            // already have closed is not reused.
            .pool_idle_timeout(Duration::from_secs(Self::POOL_IDLE_SECS))
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(30))
            // A redirect could carry a plugin header to another host or
            // leave --api-base; a 3xx is recorded as what it is.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("genai-bench/", env!("CARGO_PKG_VERSION")))
            .build()?)
    }

    /// Run one request end to end. Never panics and never loses the request:
    /// every failure comes back as an [`Exchange`] with `error` set.
    pub async fn execute(
        &self,
        plugin: &Arc<LoadedPlugin>,
        req: BenchRequest,
        request_id: u64,
    ) -> Exchange {
        match self.prepare(plugin, req, request_id).await {
            Ok(prepared) => self.send(prepared, None, &SendState::default()).await.0,
            Err(failed) => *failed,
        }
    }

    /// Have `plugin` build `req` on the plugin executor, then check its URL
    /// and sign it: a request ready to [`send`](Self::send), or the
    /// failure recorded as an [`Exchange`].
    pub async fn prepare(
        &self,
        plugin: &Arc<LoadedPlugin>,
        req: BenchRequest,
        request_id: u64,
    ) -> Result<Prepared, Box<Exchange>> {
        let target = self.target.clone();
        let p = plugin.clone();
        let built = self
            .plugin_exec
            .spawn(async move { build(&target, p, req, request_id).await })
            .await;
        match built {
            Ok(built) => self.ready(built),
            Err(join) => Err(Box::new(Exchange::failed(
                request_id,
                plugin.label(),
                RequestError {
                    kind: ErrorKind::Plugin(PluginErrorKind::Trap),
                    code: 500,
                    message: format!(
                        "plugin {}: building the request panicked the host task: {join}",
                        plugin.label()
                    ),
                },
            ))),
        }
    }

    /// Turn what the plugin built into a request ready to send (on the
    /// network side: only the key's redaction and reqwest's checks).
    fn ready(&self, built: BuildOutcome) -> Result<Prepared, Box<Exchange>> {
        let BuildOutcome {
            plugin,
            request_id,
            task,
            stream,
            built,
        } = built;
        let label = plugin.label();
        let (inst, out, url, auth_headers) = match built {
            Ok(x) => x,
            Err(NotBuilt::Plugin(e)) => {
                let mut err = plugin_error(&e);
                err.message = self.target.api_key.redact(&err.message);
                return Err(Box::new(Exchange::failed(request_id, label, err)));
            }
            Err(NotBuilt::Refused(msg)) => {
                return Err(Box::new(Exchange::failed(
                    request_id,
                    label,
                    RequestError {
                        kind: ErrorKind::Plugin(PluginErrorKind::Refused),
                        code: 500,
                        message: format!("plugin {label}: {msg}"),
                    },
                )));
            }
            Err(NotBuilt::Auth(msg)) => {
                return Err(Box::new(Exchange::failed(
                    request_id,
                    label,
                    RequestError {
                        kind: ErrorKind::Plugin(PluginErrorKind::Refused),
                        code: 500,
                        message: format!("authenticating the request of plugin {label}: {msg}"),
                    },
                )));
            }
        };
        let scheme = plugin.info().auth.as_ref();
        let mut builder = self.client.request(out.method.clone(), url.clone());
        for (k, v) in out.headers.iter().chain(&auth_headers) {
            builder = builder.header(k, v);
        }
        if tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug!(
                request = request_id,
                plugin = %label,
                "request {} {} headers={:?} auth={} body={}",
                out.method,
                self.target.api_key.redact(url.as_str()),
                out.headers,
                scheme
                    .map(|a| a.describe().replace("<key>", "<redacted>"))
                    .unwrap_or_else(|| "none".into()),
                self.target.api_key.redact(&policy::truncate(&String::from_utf8_lossy(&out.body), 2000)),
            );
        }
        let request = match builder.body(out.body).build() {
            Ok(r) => r,
            Err(e) => {
                return Err(Box::new(Exchange::failed(
                    request_id,
                    label,
                    RequestError {
                        kind: ErrorKind::Plugin(PluginErrorKind::Refused),
                        code: 500,
                        message: format!(
                            "plugin {label}: the request it built is not valid HTTP: {e}"
                        ),
                    },
                )));
            }
        };
        let parser = match inst {
            Some(inst) => ParserInstance::Built(Box::new(inst)),
            None => ParserInstance::Fresh {
                plugin: plugin.clone(),
                request_id,
                note: out.parser_note,
            },
        };
        Ok(Prepared {
            plugin,
            request,
            parser,
            task,
            stream,
            request_id,
        })
    }

    /// Send a prepared request and read its response. With `then`, the
    /// plugin builds the request `then` gives once this response is
    /// parsed, in the same plugin-executor visit (a closed-loop worker's
    /// next one): one hop to the plugin threads and back per request
    /// instead of two. `state` shows a caller that races this against a
    /// cut whether the body has fully arrived.
    pub async fn send(
        &self,
        prepared: Prepared,
        then: Option<Then>,
        state: &SendState,
    ) -> (Exchange, Option<Built>) {
        let then = then.map(|t| Box::new((t, self.target.clone())));
        let (ex, built) = self.send_inner(prepared, then, state).await;
        (ex, built.map(|b| self.ready(b)))
    }

    async fn send_inner(
        &self,
        prepared: Prepared,
        then: Option<ThenJob>,
        state: &SendState,
    ) -> (Exchange, Option<BuildOutcome>) {
        let Prepared {
            plugin,
            request,
            parser: inst,
            task,
            stream,
            request_id,
        } = prepared;
        let label = plugin.label().to_string();
        let mut ex = Exchange::failed(
            request_id,
            &label,
            RequestError {
                kind: ErrorKind::Reset,
                code: 500,
                message: String::new(),
            },
        );
        ex.error = None;
        let start = Instant::now();
        let deadline = tokio::time::Instant::from_std(start + self.target.timeout);
        ex.started = Some(start);
        // Kept to send again if a pooled connection turns out to have been
        // closed by the server while idle.
        let mut spare = request.try_clone();
        let mut request = request;
        let response = loop {
            match tokio::time::timeout_at(deadline, self.client.execute(request)).await {
                Ok(Ok(r)) => break r,
                Ok(Err(e)) => {
                    if closed_before_response(&e)
                        && let Some(again) = spare.take()
                    {
                        tracing::debug!(
                            request = request_id,
                            "connection closed before any response ({}); sending again on a fresh connection",
                            error_chain(&e)
                        );
                        ex.retries += 1;
                        request = again;
                        continue;
                    }
                    ex.end_at = start.elapsed();
                    ex.error = Some(self.transport_error(&e));
                    return (ex, None);
                }
                Err(_) => {
                    ex.end_at = start.elapsed();
                    ex.error = Some(self.timeout_error());
                    return (ex, None);
                }
            }
        };
        ex.headers_at = Some(start.elapsed());
        // Sent and answered: the copy kept for a retry would otherwise hold
        // the body (up to --plugin-max-body-mb) until the response ends.
        drop(spare);
        let status = response.status().as_u16();
        ex.status = Some(status);
        let head = ResponseHead {
            status,
            headers: response
                .headers()
                .iter()
                .filter(|(n, _)| !matches!(n.as_str(), "set-cookie" | "authorization"))
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            task,
            stream,
        };
        tracing::debug!(
            request = request_id,
            "response status {status} after {:?}",
            ex.headers_at.unwrap_or_default()
        );

        // The parser runs on the plugin executor; this task only reads and
        // timestamps. Chunks go over in batches: the whole body when it
        // ends, or every HANDOFF_BYTES of a long one, so a streamed token
        // costs no thread wake-up (timestamps are taken here either way).
        // The parse task starts with the first hand-over (usually the body's
        // end): one visit to the plugin executor per response. A parser that
        // needs a fresh instance gets a larger first batch, so a body of up
        // to FIRST_HANDOFF_BYTES streams with no instance at all.
        let mut batch = Batch::first(match inst {
            ParserInstance::Fresh { .. } => FIRST_HANDOFF_BYTES,
            ParserInstance::Built(_) => HANDOFF_BYTES,
        });
        let mut parser = Parser::new(inst, head);
        let mut body = response.bytes_stream();
        let mut received = 0usize;
        let debug = tracing::enabled!(tracing::Level::DEBUG);
        // Error bodies are kept (1 KB) so a failure says what the server said
        // even when the plugin finds no message in it.
        let keep = if (200..300).contains(&status) {
            0
        } else {
            1000
        };
        let mut preview = Vec::new();
        if stream {
            // A token a chunk: room for most answers without regrowing.
            ex.chunks.reserve(64);
        }
        // One timer for the whole body, looked at only when it fires (not at
        // every chunk: see `race_rare`).
        let expiry = tokio::time::sleep_until(deadline);
        let reading = async {
            while let Some(next) = body.next().await {
                let chunk = match next {
                    Ok(chunk) => chunk,
                    Err(e) => {
                        ex.error = Some(RequestError {
                            kind: ErrorKind::Reset,
                            code: 500,
                            message: self.target.api_key.redact(&format!(
                                "connection broke while reading the response body: {}",
                                error_chain(&e)
                            )),
                        });
                        return;
                    }
                };
                let at = start.elapsed();
                received += chunk.len();
                let want = if debug { 2000 } else { keep };
                if preview.len() < want {
                    preview.extend_from_slice(&chunk[..chunk.len().min(want - preview.len())]);
                }
                if received > self.target.max_response_bytes {
                    ex.error = Some(RequestError {
                        kind: ErrorKind::TooLarge,
                        code: 500,
                        message: format!(
                            "response body exceeded {} bytes",
                            self.target.max_response_bytes
                        ),
                    });
                    return;
                }
                ex.chunks.push(ChunkArrival::new(at));
                // Copied out (a few hundred bytes a token), so the
                // connection's read buffer is free for the next read
                // rather than pinned until the body ends. A chunk that
                // would take the batch past HANDOFF_BYTES starts the
                // next one, so a batch never holds more.
                if !batch.fits(chunk.len()) {
                    let next = batch.next();
                    parser.hand_over(
                        &self.plugin_exec,
                        start,
                        std::mem::replace(&mut batch, next),
                    );
                }
                batch.push(&chunk);
                if batch.full() {
                    let next = batch.next();
                    parser.hand_over(
                        &self.plugin_exec,
                        start,
                        std::mem::replace(&mut batch, next),
                    );
                }
            }
        };
        if let Either::Side(()) = race_rare(reading, expiry).await {
            ex.error = Some(self.timeout_error());
        }
        ex.end_at = start.elapsed();
        state.body_ended.store(true, Ordering::Relaxed);
        let parse = parser.last(&self.plugin_exec, start, batch, then);
        if debug {
            tracing::debug!(
                request = request_id,
                "response body ({received} bytes in {} chunks, {:?}): {}",
                ex.chunks.len(),
                ex.end_at,
                self.target
                    .api_key
                    .redact(&policy::truncate(&String::from_utf8_lossy(&preview), 2000))
            );
        }
        let mut parsed = match parse.await {
            Ok(p) => p,
            Err(join) => ParseOutcome {
                error: Some(PluginError {
                    plugin: label.clone(),
                    kind: PluginErrorKind::Trap,
                    message: format!("parser task failed: {join}"),
                }),
                ..ParseOutcome::default()
            },
        };
        let body_text = String::from_utf8_lossy(&preview[..preview.len().min(1000)])
            .trim()
            .to_string();
        let built = parsed.built.take();
        self.assemble(&mut ex, parsed, status, &body_text, task, stream);
        (ex, built)
    }

    fn assemble(
        &self,
        ex: &mut Exchange,
        parsed: ParseOutcome,
        status: u16,
        body_text: &str,
        task: crate::plugin::Task,
        stream: bool,
    ) {
        ex.parse_delays = parsed.delays;
        ex.content = parsed.content;
        ex.reasoning = parsed.reasoning;
        ex.usage = parsed.usage;
        ex.end_seen = parsed.end_seen;
        ex.audio_bytes = parsed.audio_bytes;
        ex.images = parsed.images;
        let api_error = parsed.api_error;
        for (chunk, has_text) in ex.chunks.iter_mut().zip(&parsed.text_chunks) {
            chunk.set_has_text(*has_text);
        }
        ex.first_token_at = ex.chunks.iter().find(|c| c.has_text()).map(|c| c.at());
        if ex.first_token_at.is_none() && parsed.text_after_body {
            // Text from `finish` of a body with no chunks: it arrived when
            // the body ended.
            ex.first_token_at = Some(ex.end_at);
        }
        if !(200..300).contains(&status) {
            let message = api_error
                .map(|(_, m)| m)
                .filter(|m| !m.is_empty())
                .or_else(|| (!body_text.is_empty()).then(|| body_text.to_string()))
                .unwrap_or_else(|| format!("HTTP {status}"));
            ex.error = Some(RequestError {
                kind: ErrorKind::Http(status),
                code: i32::from(status),
                message: self
                    .target
                    .api_key
                    .redact(&crate::plugin::display_safe(&message, 1000)),
            });
            return;
        }
        if ex.error.is_some() {
            // A transport failure outranks what the plugin made of a partial body.
            return;
        }
        if let Some(e) = parsed.error {
            let mut err = plugin_error(&e);
            if e.kind == PluginErrorKind::Reported {
                // The plugin ran fine and says the server's bytes make no
                // sense: a server fault, recorded with the real status.
                err.kind = ErrorKind::Malformed;
                err.code = i32::from(status);
            }
            err.message = self.target.api_key.redact(&err.message);
            ex.error = Some(err);
            return;
        }
        if let Some((code, message)) = api_error {
            ex.error = Some(RequestError {
                kind: ErrorKind::Api,
                code: code.unwrap_or(-1),
                message: self
                    .target
                    .api_key
                    .redact(&crate::plugin::display_safe(&message, 1000)),
            });
            return;
        }
        if (task.generates_text() || task == crate::plugin::Task::TextToSpeech) && !ex.end_seen {
            // Only the format says a response is complete ([DONE], a finish
            // reason, a whole body, a plain-text body that ended cleanly).
            // A cut-off stream is not a short answer: counting it would
            // lower the output-token and TPOT figures.
            let got = if ex.content.is_empty() && ex.reasoning.is_empty() {
                "without any generated text".to_string()
            } else {
                format!(
                    "after {} bytes of text",
                    ex.content.len() + ex.reasoning.len()
                )
            };
            ex.error = Some(RequestError {
                kind: ErrorKind::Incomplete,
                code: i32::from(status),
                message: format!(
                    "the {} ended {got} and without the end the format requires ({}); counted as incomplete",
                    if stream { "stream" } else { "response" },
                    if stream {
                        "[DONE], a finish reason, or a plain-text body ending cleanly"
                    } else {
                        "a whole body"
                    }
                ),
            });
        }
    }

    fn transport_error(&self, e: &reqwest::Error) -> RequestError {
        let chain = self.target.api_key.redact(&error_chain(e));
        if e.is_timeout() {
            self.timeout_error()
        } else if e.is_connect() {
            RequestError {
                kind: ErrorKind::Connect,
                code: 503,
                message: format!("Connection error: {chain}"),
            }
        } else {
            RequestError {
                kind: ErrorKind::Reset,
                code: 500,
                message: format!("request failed: {chain}"),
            }
        }
    }

    fn timeout_error(&self) -> RequestError {
        RequestError {
            kind: ErrorKind::Timeout,
            code: 408,
            message: format!(
                "Request timed out after {:?} (--request-timeout)",
                self.target.timeout
            ),
        }
    }
}

/// Whether a send failed because the connection was closed before any
/// response byte came: the keep-alive race, where the server closed an idle
/// pooled connection as the request went out (hyper's "connection closed
/// before message completed"). Such a request is sent once more on a fresh
/// connection; any other failure is recorded as it is.
fn closed_before_response(e: &reqwest::Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(inner) = src {
        if let Some(h) = inner.downcast_ref::<hyper::Error>() {
            return h.is_incomplete_message();
        }
        src = inner.source();
    }
    false
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// What the parser made of a response, folded as events arrive so nothing
/// grows per event beyond the text itself (which the plugin's per-request
/// caps bound).
#[derive(Default)]
struct ParseOutcome {
    content: String,
    reasoning: String,
    /// Server token counts, the last report winning per field.
    usage: Usage,
    /// The first error the server reported inside the body.
    api_error: Option<(Option<i32>, String)>,
    end_seen: bool,
    audio_bytes: u64,
    images: u32,
    /// Per chunk fed, in arrival order: whether its events carried text.
    text_chunks: Vec<bool>,
    /// `finish` returned text while no chunk had arrived.
    text_after_body: bool,
    /// Per chunk: events ready minus arrival.
    delays: Vec<Duration>,
    error: Option<PluginError>,
    /// The next request, built after the body was parsed (see [`Then`]).
    built: Option<BuildOutcome>,
}

impl ParseOutcome {
    /// Fold one call's events in; whether any carried generated text.
    fn absorb(&mut self, events: Vec<Event>) -> bool {
        let mut text = false;
        for ev in events {
            match ev {
                Event::Content(s) | Event::Reasoning(s) if s.is_empty() => {}
                Event::Content(s) => {
                    text = true;
                    self.content.push_str(&s);
                }
                Event::Reasoning(s) => {
                    text = true;
                    self.reasoning.push_str(&s);
                }
                Event::Usage(u) => {
                    self.usage.prompt_tokens = u.prompt_tokens.or(self.usage.prompt_tokens);
                    self.usage.completion_tokens =
                        u.completion_tokens.or(self.usage.completion_tokens);
                    self.usage.reasoning_tokens =
                        u.reasoning_tokens.or(self.usage.reasoning_tokens);
                }
                Event::Error { code, message } => {
                    if self.api_error.is_none() {
                        self.api_error = Some((code, message));
                    }
                }
                Event::End => self.end_seen = true,
                // Audio is the answer of a speech request: its first byte
                // is the first token.
                Event::Audio(0) => {}
                Event::Audio(n) => {
                    text = true;
                    self.audio_bytes = self.audio_bytes.saturating_add(n);
                }
                Event::Images(n) => self.images = self.images.saturating_add(n),
            }
        }
        text
    }
}

/// Why a request was not built (on the plugin executor).
enum NotBuilt {
    /// The plugin failed or refused.
    Plugin(PluginError),
    /// The path it chose is not under `--api-base`.
    Refused(String),
    /// The credentials could not be applied.
    Auth(String),
}

/// A request built by its plugin, its URL checked and signed: ready to
/// [`send`](Transport::send).
pub struct Prepared {
    plugin: Arc<LoadedPlugin>,
    request: reqwest::Request,
    parser: ParserInstance,
    task: Task,
    stream: bool,
    request_id: u64,
}

impl Prepared {
    /// The plugin that built it (and parses its response).
    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.plugin
    }

    /// Its host-side id.
    pub fn request_id(&self) -> u64 {
        self.request_id
    }
}

/// Where a closed-loop worker's next request comes from. Asked on the
/// plugin executor once the response in flight has been parsed, so the
/// plugin builds the next request in the same visit; it is taken only
/// then, as a worker that had just become free would take it.
pub trait NextRequest: Send + Sync {
    /// The next request and its id, if the run wants one and one is
    /// ready now (never waits).
    fn take(&self) -> Option<(BenchRequest, u64)>;
    /// The plugin to build it with: the one in the slot now, so a hot
    /// swap applies from the next send.
    fn plugin(&self) -> Arc<LoadedPlugin>;
}

/// A worker's [`NextRequest`], for [`Transport::send`].
pub type Then = Arc<dyn NextRequest>;

/// A request built after the response before it: ready to send, or its
/// failure recorded.
pub type Built = Result<Prepared, Box<Exchange>>;

/// What a caller racing [`Transport::send`] against a cut may look at.
#[derive(Debug, Default)]
pub struct SendState {
    body_ended: AtomicBool,
}

impl SendState {
    /// Whether the response body has fully arrived (or failed): its
    /// timestamps are final and only the plugin's parsing is left.
    pub fn body_ended(&self) -> bool {
        self.body_ended.load(Ordering::Relaxed)
    }
}

/// A [`Then`] on its way to the parse task, with where requests go.
type ThenJob = Box<(Then, Arc<Target>)>;

/// What the plugin executor made of a request (see [`build`]).
struct BuildOutcome {
    plugin: Arc<LoadedPlugin>,
    request_id: u64,
    task: Task,
    stream: bool,
    #[allow(clippy::type_complexity)]
    built: Result<
        (
            Option<PluginInstance>,
            OutboundRequest,
            Url,
            Vec<(String, String)>,
        ),
        NotBuilt,
    >,
}

/// Build `req` with `plugin` (on the plugin executor): the plugin's
/// `build-request`, the URL check and the credentials.
async fn build(
    target: &Target,
    plugin: Arc<LoadedPlugin>,
    req: BenchRequest,
    request_id: u64,
) -> BuildOutcome {
    let (task, stream) = (req.task, req.stream);
    let built = async {
        let mut inst = plugin
            .instantiate(request_id)
            .await
            .map_err(NotBuilt::Plugin)?;
        let out = inst.build_request(&req).await.map_err(NotBuilt::Plugin)?;
        let url = policy::resolve_url(&target.base, &out.path).map_err(NotBuilt::Refused)?;
        // Signing runs here, not on the network threads: an OCI RSA
        // signature takes ~1 ms, which would delay other requests'
        // arrival timestamps on the same thread.
        let auth = target
            .credentials
            .headers(
                plugin.info().auth.as_ref(),
                out.method.as_str(),
                &url,
                &out.headers,
                &out.body,
                std::time::SystemTime::now(),
            )
            .map_err(|e| NotBuilt::Auth(format!("{e:#}")))?;
        // From contract 0.5.0 the parser gets an instance of its own when
        // the first batch is handed over: none is held while the response
        // streams (~70 KiB a stream in flight).
        let inst = if plugin.contract().parses_apart() {
            drop(inst);
            None
        } else {
            Some(inst)
        };
        Ok((inst, out, url, auth))
    }
    .await;
    BuildOutcome {
        plugin,
        request_id,
        task,
        stream,
        built,
    }
}

/// Chunks of a response body, back to back, with where each ends: the
/// arguments of the contract's `feed`.
struct Batch {
    bytes: Vec<u8>,
    ends: Vec<u32>,
    /// Bytes it may hold before it is handed over.
    limit: usize,
    /// Whether it is a body's first batch (sized from [`FIRST_BATCH_BYTES`]).
    first: bool,
}

/// How many bytes and chunks the last first batch handed over held (and
/// an eighth more): the next body's first batch starts that large. Grown
/// by doubling from 1 KiB instead, every 100-token answer (~22 KB) was
/// reallocated five times on the network thread. A body larger than the
/// hint grows by doubling as before, up to the batch's limit; a stale hint
/// (the stores are relaxed) only costs a regrowth.
static FIRST_BATCH_BYTES: AtomicUsize = AtomicUsize::new(0);
/// See [`FIRST_BATCH_BYTES`].
static FIRST_BATCH_CHUNKS: AtomicUsize = AtomicUsize::new(0);

impl Batch {
    /// The first batch of a body, handed over at `limit` bytes.
    fn first(limit: usize) -> Batch {
        let bytes = FIRST_BATCH_BYTES.load(Ordering::Relaxed).min(limit);
        let chunks = FIRST_BATCH_CHUNKS.load(Ordering::Relaxed);
        Batch {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(chunks.min(HANDOFF_CHUNKS)),
            limit,
            first: true,
        }
    }

    /// Note a first batch's size for the next body's (on hand-over).
    fn note_size(&self) {
        if self.first && !self.is_empty() {
            // An eighth more: answers of about the same length fit.
            let (bytes, chunks) = (self.bytes.len(), self.ends.len());
            FIRST_BATCH_BYTES.store(bytes + bytes / 8, Ordering::Relaxed);
            FIRST_BATCH_CHUNKS.store(chunks + chunks / 8, Ordering::Relaxed);
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        // Grown by doubling up to the limit and no further (a plain extend
        // would double a nearly full batch to twice that).
        let need = self.bytes.len() + chunk.len();
        if need > self.bytes.capacity() {
            let want = (self.bytes.capacity() * 2)
                .clamp(1024, self.limit.max(1024))
                .max(need);
            self.bytes.reserve_exact(want - self.bytes.len());
        }
        self.bytes.extend_from_slice(chunk);
        // A batch is handed over long before 4 GiB (its limit, and the
        // response size cap); saturating keeps a bug from wrapping.
        self.ends
            .push(u32::try_from(self.bytes.len()).unwrap_or(u32::MAX));
    }

    fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// An empty batch to follow this one in the same body, handed over at
    /// HANDOFF_BYTES. A hand-over mid-body means the body is long: the
    /// next batch is a full-size one a parse task gave back, or starts at
    /// the size this one grew to (up to HANDOFF_BYTES), so it is not grown
    /// (and copied) again.
    fn next(&self) -> Batch {
        if let Some(spare) = SPARE_BATCHES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
        {
            return spare;
        }
        Batch {
            bytes: Vec::with_capacity(self.bytes.capacity().min(HANDOFF_BYTES)),
            ends: Vec::with_capacity(self.ends.len().min(HANDOFF_CHUNKS)),
            limit: HANDOFF_BYTES,
            first: false,
        }
    }

    /// Give a fed batch back for a later [`next`](Self::next) (full-size
    /// ones only; the rest are freed). Whether it was kept.
    fn recycle(mut self) -> bool {
        if self.bytes.capacity() != HANDOFF_BYTES {
            return false;
        }
        self.bytes.clear();
        self.ends.clear();
        self.limit = HANDOFF_BYTES;
        self.first = false;
        let mut spares = SPARE_BATCHES.lock().unwrap_or_else(|e| e.into_inner());
        let keep = spares.len() < MAX_SPARE_BATCHES;
        if keep {
            spares.push(self);
        }
        keep
    }

    /// Whether it is time to hand the batch over mid-body.
    fn full(&self) -> bool {
        self.bytes.len() >= self.limit || self.ends.len() >= HANDOFF_CHUNKS
    }

    /// Whether `len` more bytes keep it within its limit (an empty batch
    /// takes a chunk of any size).
    fn fits(&self, len: usize) -> bool {
        self.is_empty() || self.bytes.len() + len <= self.limit
    }
}

/// Body bytes the network task gathers before handing them to the parser
/// mid-stream; shorter bodies go over once, when they end. Small enough
/// that parsing is spread over a stream and little is left when it ends
/// (a closed loop sends its next request only then), large enough that a
/// token costs no wake-up: with whole bodies (64 KiB) 256 streams ending
/// together queued ~75 ms of parsing (p99), 9 ms at 8 KiB (p50 0.6 ms).
const HANDOFF_BYTES: usize = 8 << 10;
/// The first batch of a body whose parser needs a fresh instance (contract
/// 0.5.0 on): until it is handed over, the stream holds no instance. At
/// 8 KiB a 100-token answer (~15 KiB) held one for its second half, so
/// peak RSS per stream in flight stayed ~140 KiB; at 32 KiB such a body is
/// parsed whole when it ends and the peak fell to ~62 KiB, for 2-5% more
/// CPU per token at concurrency 64 and none measurable at 256 (a second
/// instantiation per request).
const FIRST_HANDOFF_BYTES: usize = 32 << 10;
/// Full-size batches parse tasks gave back once fed, for the next mid-body
/// batch of any response: a fresh 8 KiB buffer per hand-over was a large
/// allocation on a network thread, and its free on a plugin thread.
static SPARE_BATCHES: std::sync::Mutex<Vec<Batch>> = std::sync::Mutex::new(Vec::new());
/// At most this many are kept (2 MiB).
const MAX_SPARE_BATCHES: usize = 256;
/// Chunks the network task gathers before a hand-over: one `feed` call
/// gets at most this many, so a body of many tiny chunks (a slow Python
/// plugin's ~50 µs each) stays far inside one call's CPU budget.
const HANDOFF_CHUNKS: usize = 256;

/// Where a response's parser runs.
enum ParserInstance {
    /// The instance that built the request (contracts before 0.5.0, whose
    /// parser may keep state from `build-request`).
    Built(Box<PluginInstance>),
    /// A fresh instance of `plugin`, made when the first batch is handed
    /// over and given the request's parser note.
    Fresh {
        plugin: Arc<LoadedPlugin>,
        request_id: u64,
        note: String,
    },
}

/// The response's parse task, started at the first hand-over.
struct Parser {
    /// The instance (or how to make it) and the head, until the first
    /// batch starts the task.
    waiting: Option<Box<(ParserInstance, ResponseHead)>>,
    /// The running task's batch channel and the task.
    running: Option<(BatchSender, tokio::task::JoinHandle<ParseOutcome>)>,
}

/// A batch handed to the parse task.
struct Handed {
    /// When it was handed over (relative to the request's start).
    at: Duration,
    batch: Batch,
    /// With the body's last batch: the request to build once it is parsed.
    then: Option<ThenJob>,
}

/// futures' unbounded channel: a node per message. Tokio's allocates a
/// block of 32 slots up front (~2 KB per response) for the few batches a
/// response hands over.
type BatchSender = futures_channel::mpsc::UnboundedSender<Handed>;

impl Parser {
    fn new(inst: ParserInstance, head: ResponseHead) -> Parser {
        Parser {
            waiting: Some(Box::new((inst, head))),
            running: None,
        }
    }

    /// Give `batch` (handed over now) to the parse task, starting it if
    /// needed. An empty batch only starts it (a body with no bytes still
    /// gets its `finish`).
    fn hand_over(&mut self, exec: &tokio::runtime::Handle, start: Instant, batch: Batch) {
        self.send(exec, start, batch, None);
    }

    /// Hand over `batch`, with the request to build after the body (if
    /// it is the last).
    fn send(
        &mut self,
        exec: &tokio::runtime::Handle,
        start: Instant,
        batch: Batch,
        then: Option<ThenJob>,
    ) {
        batch.note_size();
        if let Some(boxed) = self.waiting.take() {
            let (inst, head) = *boxed;
            let (tx, rx) = futures_channel::mpsc::unbounded();
            self.running = Some((tx, exec.spawn(parse_task(inst, head, rx, start))));
        }
        if let Some((tx, _)) = &self.running
            && (!batch.is_empty() || then.is_some())
        {
            // The receiver only goes away if the parse task ended early on
            // a plugin failure, which it reports itself (the next request
            // is then taken the usual way).
            let _ = tx.unbounded_send(Handed {
                at: start.elapsed(),
                batch,
                then,
            });
        }
    }

    /// Hand over the body's last batch, with the request to build after
    /// it: the task to await, which then runs `finish`.
    fn last(
        mut self,
        exec: &tokio::runtime::Handle,
        start: Instant,
        batch: Batch,
        then: Option<ThenJob>,
    ) -> tokio::task::JoinHandle<ParseOutcome> {
        self.send(exec, start, batch, then);
        let (_tx, task) = self
            .running
            .expect("the first hand-over starts the parse task");
        task
    }
}

/// What a caught panic said.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

async fn parse_task(
    inst: ParserInstance,
    head: ResponseHead,
    mut rx: futures_channel::mpsc::UnboundedReceiver<Handed>,
    start: Instant,
) -> ParseOutcome {
    let mut out = ParseOutcome::default();
    let begun = match inst {
        ParserInstance::Built(mut inst) => inst.begin_response(&head).await.map(|()| *inst),
        ParserInstance::Fresh {
            plugin,
            request_id,
            note,
        } => match plugin.instantiate(request_id).await {
            Ok(mut inst) => inst
                .begin_response_with_note(&head, &note)
                .await
                .map(|()| inst),
            Err(e) => Err(e),
        },
    };
    let mut inst = match begun {
        Ok(inst) => inst,
        Err(e) => {
            out.error = Some(e);
            return out;
        }
    };
    let mut then = None;
    while let Some(handed) = rx.next().await {
        if handed.then.is_some() {
            then = handed.then;
        }
        let batch = handed.batch;
        if batch.is_empty() {
            continue;
        }
        // One plugin call for the whole batch (0.4.0 plugins; older ones
        // get a call per chunk inside `feed_batch`).
        let fed = inst.feed_batch(&batch.bytes, &batch.ends).await;
        batch.recycle();
        match fed {
            Ok(lists) => {
                for evs in lists {
                    let text = out.absorb(evs);
                    out.text_chunks.push(text);
                }
            }
            Err(e) => {
                out.error = Some(e);
                return out;
            }
        }
        // One delay per hand-over, from when the batch was handed over to
        // when its last chunk was parsed: a backlog of the client shows
        // here, not the deliberate wait for the body to end (and one late
        // wake-up counts once, not once per chunk of the batch).
        out.delays.push(start.elapsed().saturating_sub(handed.at));
    }
    match inst.finish().await {
        Ok(evs) => {
            // What `finish` flushes arrived with the last chunk.
            if out.absorb(evs) {
                match out.text_chunks.last_mut() {
                    Some(last) => *last = true,
                    None => out.text_after_body = true,
                }
            }
        }
        Err(e) => out.error = Some(e),
    }
    // The pool slot is free before the next request takes one.
    drop(inst);
    if let Some(job) = then {
        // Built here, before other responses' parses still queued: at a
        // wave's end (a closed loop's responses ending together) their
        // hand-over-to-parse delay grows by the builds ahead of them (p99
        // at 1024 streams ~120 -> ~200 ms, runs invalid either way), and
        // next requests go out sooner. A `yield_now` does not reorder
        // this: tokio runs the yielded task from the worker's local queue,
        // before the parses spawned from the network threads.
        let (next, target) = *job;
        if let Some((req, request_id)) = next.take() {
            let plugin = next.plugin();
            let (task, stream) = (req.task, req.stream);
            // A host bug panicking here must not fail the response just
            // parsed, nor lose the request taken (`prepare` has the task
            // boundary for this).
            let built =
                std::panic::AssertUnwindSafe(build(&target, plugin.clone(), req, request_id))
                    .catch_unwind()
                    .await;
            out.built = Some(built.unwrap_or_else(|panic| BuildOutcome {
                built: Err(NotBuilt::Plugin(PluginError {
                    plugin: plugin.label().to_string(),
                    kind: PluginErrorKind::Trap,
                    message: format!(
                        "building the request panicked the host task: {}",
                        panic_message(panic.as_ref())
                    ),
                })),
                plugin,
                request_id,
                task,
                stream,
            }));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_arrival_keeps_its_time_to_the_nanosecond_and_its_flag() {
        assert_eq!(std::mem::size_of::<ChunkArrival>(), 8);
        for at in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_micros(20_123),
            Duration::from_secs(600) + Duration::from_nanos(999_999_999),
        ] {
            let mut c = ChunkArrival::new(at);
            assert_eq!((c.at(), c.has_text()), (at, false));
            c.set_has_text(true);
            assert_eq!((c.at(), c.has_text()), (at, true));
            c.set_has_text(false);
            assert_eq!((c.at(), c.has_text()), (at, false));
        }
        // Beyond 2^63 ns (292 years) it saturates rather than wrapping.
        let far = ChunkArrival::new(Duration::MAX);
        assert_eq!(far.at(), Duration::from_nanos(u64::MAX >> 1));
        assert!(!far.has_text());
    }

    #[test]
    fn a_first_batch_starts_at_the_last_ones_size_but_never_past_its_limit() {
        // A long first batch (limit far away) sets the hint past 8 KiB.
        let mut long = Batch::first(1 << 20);
        for _ in 0..400 {
            long.push(&[b'x'; 100]);
        }
        long.note_size();
        // Other tests' bodies may set the hint meanwhile: whatever it is,
        // a first batch is capped by its limit, and it still takes data
        // up to that limit and no further.
        let mut b = Batch::first(HANDOFF_BYTES);
        assert!(b.bytes.capacity() <= HANDOFF_BYTES);
        assert!(b.ends.capacity() <= HANDOFF_CHUNKS);
        while b.fits(100) {
            b.push(&[b'y'; 100]);
        }
        assert_eq!(b.bytes.len(), HANDOFF_BYTES / 100 * 100);
        assert!(b.bytes.capacity() <= HANDOFF_BYTES);
        assert!(b.bytes.iter().all(|&c| c == b'y'));
        // A batch that is not a body's first sets no hint.
        let before = FIRST_BATCH_BYTES.load(Ordering::Relaxed);
        let mut later = b.next();
        later.push(&[b'z'; 10]);
        assert!(!later.first);
        later.note_size();
        let after = FIRST_BATCH_BYTES.load(Ordering::Relaxed);
        assert!(
            after != 11 || before == 11,
            "a mid-body batch must not set the hint"
        );
    }

    #[test]
    fn fed_full_batches_come_back_empty_and_short_ones_are_freed() {
        let mut full = Batch::first(HANDOFF_BYTES);
        while full.fits(100) {
            full.push(&[b'x'; 100]);
        }
        assert_eq!(full.bytes.capacity(), HANDOFF_BYTES);
        assert!(full.recycle());
        // Other tests' parse tasks may give batches back meanwhile: any
        // spare must be empty and full-size.
        let next = Batch::first(HANDOFF_BYTES).next();
        assert!(next.is_empty() && next.bytes.is_empty());
        assert_eq!(next.bytes.capacity(), HANDOFF_BYTES);
        // Not from `first`, whose capacity follows the last body's size.
        let mut short = Batch {
            bytes: Vec::new(),
            ends: Vec::new(),
            limit: HANDOFF_BYTES,
            first: true,
        };
        short.push(b"data: {}\n\n");
        assert!(!short.recycle());
        // The pool is bounded.
        for _ in 0..MAX_SPARE_BATCHES + 1 {
            let mut b = Batch::first(HANDOFF_BYTES);
            b.bytes.reserve_exact(HANDOFF_BYTES);
            b.recycle();
        }
        assert!(SPARE_BATCHES.lock().unwrap().len() <= MAX_SPARE_BATCHES);
    }
}
