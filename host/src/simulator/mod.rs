//! A built-in LLM endpoint simulator (`genai-bench serve-sim`): an HTTP
//! server that answers like an OpenAI-compatible, Baseten, Hugging Face TGI
//! or Ollama model endpoint
//! with a configurable timing model, injects faults on demand and records
//! what it actually sent, so a benchmark's measurements can be checked
//! against ground truth.
//!
//! # Routes
//!
//! | route | body | response |
//! |---|---|---|
//! | `POST /v1/chat/completions` | `{"model","messages",...}` | `chat.completion`, or SSE `chat.completion.chunk`s |
//! | `POST /v1/completions` | `{"model","prompt",...}` | `text_completion` (`choices[0].text`), or SSE |
//! | `POST /v1/embeddings` | `{"model","input"}` | `{"object":"list","data":[{"embedding":[...]}],...}` |
//! | `POST /environments/production/predict`, `/predict`, `/` | chat (`messages`), prompt (`prompt`) or embeddings (`input`) | chat as above; prompt: `{"text","usage"}`, or plain text streamed; embeddings as above |
//! | `POST /generate`, `/generate_stream` | TGI: `{"inputs","parameters":{"max_new_tokens","details",...}}` | `{"generated_text","details"}`, or SSE token events |
//! | `POST /api/chat`, `/api/generate` | Ollama: `{"model","messages"}` or `{"model","prompt"}`, `stream` (default true), `options.num_predict` | one JSON object, or NDJSON lines |
//! | `GET /health` | | 200 `{"status":"ok"}` |
//!
//! A chat stream is: a role-only chunk right after the headers, one chunk
//! per group of `tokens_per_chunk` tokens, a chunk with `finish_reason`
//! (`length` when the output reached `max_tokens`, else `stop`), a
//! usage-only chunk (`"choices":[]`) when `stream_options.include_usage` is
//! true, then `data: [DONE]`. Completions streams are the same without the
//! role chunk. A prompt-format stream is the bare token text.
//!
//! A TGI stream (`/generate_stream`) is one `data:{"index","token":{...},
//! "generated_text":null,"details":null}` event per token, then a last event
//! with the special end token `</s>`, the whole `generated_text` and
//! `details` (`finish_reason` `length` or `eos_token`, `generated_tokens`,
//! `input_length`) when `parameters.details` is true; no `[DONE]`. An
//! Ollama stream is one NDJSON line per token (`message.content` for
//! `/api/chat`, `response` for `/api/generate`), then a `"done":true` line
//! with `done_reason`, `prompt_eval_count` and `eval_count`. TGI and Ollama
//! routes answer errors in their own shapes (`{"error","error_type"}`,
//! `{"error"}`), in bodies and mid-stream (the `error-in-stream` fault); TGI
//! says 422 where the others say 400.
//! TGI has no `ignore_eos`/`min_tokens`, so the output length follows
//! `max_new_tokens` (or the `--output-tokens` draw); the inputs' markdown
//! images (`![](...)`) count no words.
//!
//! Tokens are words of a small built-in list (` the`, ` quick`, ...), one
//! word per token. Input tokens are counted as whitespace-separated words
//! of all message contents, prompts or inputs (token-id arrays count one
//! per id): an approximation; the benchmark reports its own tokenizer's
//! count. A malformed request gets a 400
//! `{"error":{"message","type":"invalid_request_error","code":400}}`.
//!
//! # Timing
//!
//! TTFT = `ttft_base_ms` + `prefill_us_per_token` × input tokens; then one
//! inter-token latency draw per token ([`LatencyDist`]). With a
//! `load_factor` k, delays are multiplied by `1 + k × (requests in flight −
//! 1)`: TTFT and the whole of a non-streamed response at arrival, each
//! streamed group when it is scheduled. Every deadline is absolute, counted
//! from the request's arrival (`sleep_until`), so waiting late for one
//! token does not delay the next; tokens whose deadlines have passed go out
//! together in one frame. Tokio's timer has millisecond resolution: a chunk
//! leaves up to ~1 ms after its deadline, without accumulating.
//!
//! Output length: `max_tokens` when `ignore_eos` is true or `min_tokens >=
//! max_tokens`; else a draw from `output_tokens` (if configured), else
//! `max_tokens`, else `default_output_tokens`; raised to `min_tokens` and
//! capped by `max_tokens`.
//!
//! # Determinism
//!
//! Requests are numbered by arrival from 1 (`x-sim-request-id`). Length,
//! latencies, text and the random fault of request i are drawn from
//! generators seeded by (seed, i), so with a seed they repeat exactly,
//! whatever the concurrency. Load dependence, being timing-based, does not.
//!
//! # Faults
//!
//! See [`FaultKind`]. A request gets at most one: from the `x-sim-fault`
//! header, else its body's `"sim_fault"`, else a draw from `fault_rates`.
//! `api_key` checking is separate and applies to every request but
//! `GET /health` (so readiness probes need no key).
//!
//! # Ground truth
//!
//! Every request yields a [`GroundTruth`] when its response ends (or the
//! client leaves): kept in memory for [`SimHandle::ground_truth`] and/or
//! appended as one JSON line to `ground_truth_path`.

mod body;
mod config;
mod faults;
mod ground_truth;
mod render;
mod request;
mod rng;
mod server;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{LatencyDist, LengthDist, SimArgs, SimConfig};
pub use faults::{FaultKind, FaultRate};
pub use ground_truth::{ChunkTime, GroundTruth, Outcome, RequestFormat};

use server::{Shared, Stop};

/// How long [`SimHandle::shutdown`] lets open responses finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Binds per `config` and serves on the current tokio runtime until the
/// handle is shut down or dropped. Returns once the socket is bound.
pub async fn start(config: SimConfig) -> anyhow::Result<SimHandle> {
    config.validate()?;
    let listener = TcpListener::bind((config.host, config.port))
        .await
        .with_context(|| format!("cannot bind {}:{}", config.host, config.port))?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared::new(config)?);
    let (stop, stop_rx) = watch::channel(Stop::Running);
    let task = tokio::spawn(server::serve(listener, shared.clone(), stop_rx));
    Ok(SimHandle {
        addr,
        shared,
        stop,
        task: Some(task),
    })
}

/// The CLI entry point: starts the simulator, prints `serve-sim listening
/// on URL` to stdout, serves until Ctrl-C (or SIGTERM), then shuts down,
/// giving open responses up to 2 s to finish.
pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let handle = start(args.to_config()?).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "serve-sim listening on {}", handle.base_url())?;
        out.flush()?;
    }
    wait_for_signal().await?;
    tracing::info!(requests = handle.requests_seen(), "serve-sim: stopping");
    handle.shutdown_within(Duration::from_secs(2)).await
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot listen for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot listen for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("cannot listen for Ctrl-C")?;
    Ok(())
}

/// A running simulator. Dropping it stops the server at once, cutting open
/// connections; [`SimHandle::shutdown`] stops it gracefully.
pub struct SimHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<Stop>,
    task: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://HOST:PORT`, with a wildcard bind shown as loopback.
    pub fn base_url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// The config the server runs with.
    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    /// Records of the requests finished so far, in the order they finished
    /// (sort by `id` for arrival order). Empty when `keep_ground_truth` is off.
    pub fn ground_truth(&self) -> Vec<GroundTruth> {
        self.shared.sink.snapshot()
    }

    /// Like [`SimHandle::ground_truth`], but removes the records returned.
    pub fn take_ground_truth(&self) -> Vec<GroundTruth> {
        self.shared.sink.take()
    }

    /// Requests received so far (the last `x-sim-request-id` given).
    pub fn requests_seen(&self) -> u64 {
        self.shared.requests_seen()
    }

    /// Stops accepting, lets open responses finish (up to
    /// [`SHUTDOWN_GRACE`], then cuts them) and flushes the ground-truth file.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.shutdown_within(SHUTDOWN_GRACE).await
    }

    /// [`SimHandle::shutdown`] with a grace period of `grace`.
    pub async fn shutdown_within(mut self, grace: Duration) -> anyhow::Result<()> {
        let _ = self.stop.send(Stop::Graceful);
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(grace, &mut task).await.is_err()
        {
            let _ = self.stop.send(Stop::Hard);
            let _ = task.await;
        }
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || shared.sink.close_file())
            .await
            .context("ground-truth flush task failed")?
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(Stop::Hard);
    }
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}
