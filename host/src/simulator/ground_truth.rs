//! What the simulator actually did for each request, for checking what a
//! client measured against it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::faults::FaultKind;
use super::server::Shared;

/// The request format the simulator recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestFormat {
    /// OpenAI chat (`messages`), on `/v1/chat/completions` or the predict route.
    Chat,
    /// OpenAI legacy completions (`prompt`) on `/v1/completions`.
    Completions,
    /// Baseten prompt format (`prompt`) on the predict route.
    Prompt,
    /// Embeddings (`input`), on `/v1/embeddings` or the predict route.
    Embeddings,
    /// Hugging Face TGI (`inputs`, `parameters`) on `/generate` or `/generate_stream`.
    Tgi,
    /// Ollama chat (`messages`) on `/api/chat`.
    #[serde(rename = "ollama_chat")]
    OllamaChat,
    /// Ollama generate (`prompt`) on `/api/generate`.
    #[serde(rename = "ollama_generate")]
    OllamaGenerate,
}

/// How the response body ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The whole body was handed to the HTTP layer.
    Complete,
    /// The simulator aborted the body (the `reset` fault).
    Reset,
    /// The body was dropped before its end: the client went away (or the
    /// server was shut down). `status` is 0 when no response had been made.
    Dropped,
}

/// One body frame handed to the HTTP layer.
///
/// `t_us` is taken in the body's `poll_frame` as it hands the frame to
/// hyper, which encodes it into its write buffer and flushes that to the
/// socket within the same poll of the connection task. It is the moment
/// the bytes leave the simulator's control, a few µs before they reach the
/// kernel (longer only if the socket's send buffer is full); it says
/// nothing of when the client reads them. Several SSE events whose
/// deadlines had all passed travel in one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkTime {
    /// Offset from the request's arrival, in µs.
    pub t_us: u64,
    /// Output tokens whose text this frame carries (0 for the role, finish,
    /// usage and `[DONE]` events alone, and for faulted bodies).
    pub tokens: u32,
    /// Frame size in bytes.
    pub bytes: u32,
}

/// The record of one request. Offsets (`*_us`) are µs from arrival: the
/// moment the simulator's handler was called, i.e. after hyper had parsed
/// the request head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    /// Sequence number by arrival, from 1; also sent as `x-sim-request-id`.
    pub id: u64,
    /// Request path, e.g. `/v1/chat/completions`.
    pub route: String,
    /// The format recognised, when the body was valid.
    pub format: Option<RequestFormat>,
    /// Whether the response was streamed.
    pub stream: bool,
    /// HTTP status sent; 0 if the client left before any response.
    pub status: u16,
    /// The fault applied, from the header, the body or a random draw.
    pub fault: Option<FaultKind>,
    /// Input tokens as the simulator counts them: whitespace-separated
    /// words of all message contents / prompts / inputs (token-id arrays
    /// count one per id). An approximation; a client should report its
    /// own tokenizer's count.
    pub input_tokens: u64,
    /// Output tokens the simulator planned for this request.
    pub planned_output_tokens: u64,
    /// Output tokens actually sent in well-formed events or bodies.
    pub output_tokens: u64,
    /// Arrival as wall-clock time, µs since the Unix epoch.
    pub arrival_unix_us: u64,
    /// When hyper took the response head: the first poll of the body, which
    /// hyper makes right after buffering the head.
    pub headers_us: Option<u64>,
    /// Every body frame, in order.
    pub chunks: Vec<ChunkTime>,
    /// When the body ended or was dropped.
    pub end_us: Option<u64>,
    /// How the body ended.
    pub outcome: Outcome,
}

impl GroundTruth {
    fn blank(id: u64, route: String, arrival_unix_us: u64) -> Self {
        GroundTruth {
            id,
            route,
            format: None,
            stream: false,
            status: 0,
            fault: None,
            input_tokens: 0,
            planned_output_tokens: 0,
            output_tokens: 0,
            arrival_unix_us,
            headers_us: None,
            chunks: Vec::new(),
            end_us: None,
            outcome: Outcome::Dropped,
        }
    }
}

/// Where finished records go: memory, a JSONL file, or both.
pub(crate) struct Sink {
    memory: Option<Mutex<Vec<GroundTruth>>>,
    file: Mutex<Option<mpsc::Sender<GroundTruth>>>,
    writer: Mutex<Option<JoinHandle<std::io::Result<()>>>>,
}

impl Sink {
    pub(crate) fn new(keep: bool, path: Option<&Path>) -> anyhow::Result<Sink> {
        let (file, writer) = match path {
            Some(path) => {
                let f = File::create(path).with_context(|| {
                    format!("cannot create ground-truth file {}", path.display())
                })?;
                let (tx, rx) = mpsc::channel();
                // A plain thread: file writes must not block the runtime's
                // workers, and the sink must not depend on which runtime runs it.
                let handle = std::thread::Builder::new()
                    .name("sim-ground-truth".to_owned())
                    .spawn(move || write_jsonl(BufWriter::new(f), rx))
                    .context("cannot start the ground-truth writer thread")?;
                (Some(tx), Some(handle))
            }
            None => (None, None),
        };
        Ok(Sink {
            memory: keep.then(|| Mutex::new(Vec::new())),
            file: Mutex::new(file),
            writer: Mutex::new(writer),
        })
    }

    fn record(&self, gt: GroundTruth) {
        if let Some(tx) = &*lock(&self.file) {
            let copy = if self.memory.is_some() {
                Some(gt.clone())
            } else {
                None
            };
            // A closed channel means the sink was closed: drop the record.
            let _ = tx.send(gt);
            if let (Some(mem), Some(copy)) = (&self.memory, copy) {
                lock(mem).push(copy);
            }
        } else if let Some(mem) = &self.memory {
            lock(mem).push(gt);
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<GroundTruth> {
        self.memory
            .as_ref()
            .map(|m| lock(m).clone())
            .unwrap_or_default()
    }

    pub(crate) fn take(&self) -> Vec<GroundTruth> {
        self.memory
            .as_ref()
            .map(|m| std::mem::take(&mut *lock(m)))
            .unwrap_or_default()
    }

    /// Closes the file: later records are dropped. Blocks until the writer
    /// thread has flushed; call from a blocking context.
    pub(crate) fn close_file(&self) -> anyhow::Result<()> {
        drop(lock(&self.file).take());
        if let Some(handle) = lock(&self.writer).take() {
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("ground-truth writer thread panicked"))?
                .context("cannot write the ground-truth file")?;
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves a Vec that is still valid.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn write_jsonl(mut out: BufWriter<File>, rx: mpsc::Receiver<GroundTruth>) -> std::io::Result<()> {
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(gt) = next {
            serde_json::to_writer(&mut out, &gt)?;
            out.write_all(b"\n")?;
            next = rx.try_recv().ok();
        }
        // Flush whenever the queue runs dry, so the file is current.
        out.flush()?;
    }
    out.flush()
}

/// Builds one request's record and hands it to the sink when dropped,
/// whichever way the request ends (also when hyper drops the handler's
/// future because the client left).
pub(crate) struct Recorder {
    shared: Arc<Shared>,
    arrival: Instant,
    pub(crate) gt: GroundTruth,
}

impl Recorder {
    /// Counts the request in flight until the recorder is dropped.
    pub(crate) fn new(shared: Arc<Shared>, id: u64, route: &str, arrival: Instant) -> Self {
        shared.in_flight.fetch_add(1, Ordering::Relaxed);
        let arrival_unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        // Bounded: the route comes from the client.
        let route: String = route.chars().take(256).collect();
        Recorder {
            shared,
            arrival,
            gt: GroundTruth::blank(id, route, arrival_unix_us),
        }
    }

    pub(crate) fn arrival(&self) -> Instant {
        self.arrival
    }

    pub(crate) fn now_us(&self) -> u64 {
        self.arrival.elapsed().as_micros() as u64
    }

    pub(crate) fn headers_sent(&mut self) {
        if self.gt.headers_us.is_none() {
            self.gt.headers_us = Some(self.now_us());
        }
    }

    pub(crate) fn chunk(&mut self, tokens: u32, bytes: usize) {
        let t_us = self.now_us();
        self.gt.output_tokens += u64::from(tokens);
        self.gt.chunks.push(ChunkTime {
            t_us,
            tokens,
            bytes: bytes.min(u32::MAX as usize) as u32,
        });
    }

    pub(crate) fn end(&mut self, outcome: Outcome) {
        if self.gt.end_us.is_none() {
            self.gt.end_us = Some(self.now_us());
            self.gt.outcome = outcome;
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.end(Outcome::Dropped);
        self.shared.in_flight.fetch_sub(1, Ordering::Relaxed);
        let gt = std::mem::replace(&mut self.gt, GroundTruth::blank(0, String::new(), 0));
        self.shared.sink.record(gt);
    }
}
