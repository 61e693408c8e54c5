//! Runs one benchmark run: a closed loop with exactly N requests in flight
//! until the request or time limit is reached, or the user interrupts.
//!
//! Threads, so that nothing slow runs where timestamps are taken:
//! * a sampler thread prepares requests ahead of time (tokenizing prompts is
//!   CPU work);
//! * N worker tasks on the I/O runtime only send, read and timestamp;
//! * a collector thread turns exchanges into records (tokenizer fallback
//!   counts) and feeds the live progress.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::metrics::{RequestContext, RequestRecord, record_from_exchange};
use crate::plugin::swap::PluginSlot;
use crate::plugin::{BenchRequest, Task};
use crate::progress::Progress;
use crate::transport::{ErrorKind, Exchange, RequestError, Transport};

/// Something that produces the next request of a run.
pub trait RequestSource: Send + 'static {
    /// The next request and the sampler's input token count.
    fn next_request(&mut self) -> anyhow::Result<(BenchRequest, Option<u64>)>;
}

impl<F> RequestSource for F
where
    F: FnMut() -> anyhow::Result<(BenchRequest, Option<u64>)> + Send + 'static,
{
    fn next_request(&mut self) -> anyhow::Result<(BenchRequest, Option<u64>)> {
        self()
    }
}

/// How the user asked a run to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stop {
    /// Keep going.
    Run,
    /// Send no new requests; let those in flight finish (within a grace period).
    Graceful,
    /// Abandon in-flight requests now (they are recorded as cancelled).
    Now,
}

/// Limits and shape of one run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Requests in flight.
    pub concurrency: u32,
    /// Most requests to send.
    pub max_requests: u64,
    /// Longest time to keep sending.
    pub max_time: Duration,
    /// Task of the run.
    pub task: Task,
    /// Whether requests stream.
    pub stream: bool,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// Records in completion order (errors and cancellations included).
    pub records: Vec<RequestRecord>,
    /// Wall time from the first request to the last completion.
    pub wall: Duration,
    /// Whether the user interrupted the run.
    pub interrupted: bool,
    /// A sampler failure that ended the run early, if any.
    pub source_error: Option<String>,
}

/// Run one closed-loop run. Each request takes its plugin from `plugins`
/// when it starts, so a hot swap applies from the next request on.
pub async fn run_closed_loop(
    transport: &Transport,
    plugins: Arc<PluginSlot>,
    source: Box<dyn RequestSource>,
    spec: RunSpec,
    count_tokens: Arc<dyn Fn(&str) -> u64 + Send + Sync>,
    mut stop: watch::Receiver<Stop>,
    progress: Arc<Progress>,
) -> RunOutcome {
    let concurrency = spec.concurrency.max(1) as usize;
    let max_requests = spec.max_requests;

    // Sampler thread: stays ahead of the workers by a bounded amount.
    let (req_tx, req_rx) = mpsc::channel::<(BenchRequest, Option<u64>)>(concurrency * 2 + 8);
    let source_error: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let sampler = {
        let err = source_error.clone();
        let mut source = source;
        std::thread::Builder::new()
            .name("sampler".into())
            .spawn(move || {
                for _ in 0..max_requests {
                    match source.next_request() {
                        Ok(r) => {
                            if req_tx.blocking_send(r).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            *err.lock().unwrap() = Some(format!("{e:#}"));
                            return;
                        }
                    }
                }
            })
            .expect("spawn sampler thread")
    };
    let req_rx = Arc::new(tokio::sync::Mutex::new(req_rx));

    // Collector thread: exchange -> record, and live progress.
    let run_start = Instant::now();
    let (ex_tx, ex_rx) = std::sync::mpsc::channel::<(Exchange, Option<u64>)>();
    let collector = {
        let progress = progress.clone();
        let task = spec.task;
        let stream = spec.stream;
        std::thread::Builder::new()
            .name("collector".into())
            .spawn(move || {
                let mut records = Vec::new();
                for (ex, input) in ex_rx {
                    let ctx = RequestContext {
                        task,
                        stream,
                        input_tokens: input,
                    };
                    let r = record_from_exchange(&ex, ctx, run_start, &*count_tokens);
                    progress.record(&r);
                    records.push(r);
                }
                records
            })
            .expect("spawn collector thread")
    };

    let issued = Arc::new(AtomicU64::new(0));
    let deadline = run_start + spec.max_time;
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let transport = transport.clone();
        let plugins = plugins.clone();
        let req_rx = req_rx.clone();
        let ex_tx = ex_tx.clone();
        let issued = issued.clone();
        let mut stop = stop.clone();
        let progress = progress.clone();
        workers.push(tokio::spawn(async move {
            loop {
                if *stop.borrow() != Stop::Run || Instant::now() >= deadline {
                    return;
                }
                let n = issued.fetch_add(1, Ordering::SeqCst);
                if n >= max_requests {
                    return;
                }
                let next = req_rx.lock().await.recv().await;
                let Some((req, input_tokens)) = next else {
                    return;
                };
                // Waiting for a prompt may have outlasted the run.
                if *stop.borrow() != Stop::Run || Instant::now() >= deadline {
                    return;
                }
                let id = n + 1;
                progress.started();
                let plugin = plugins.current();
                let sent_at = Instant::now();
                let ex = tokio::select! {
                    ex = transport.execute(&plugin, req, id) => ex,
                    _ = wait_for(&mut stop, Stop::Now) => cancelled(id, plugin.label(), sent_at, run_start),
                };
                if ex_tx.send((ex, input_tokens)).is_err() {
                    return;
                }
            }
        }));
    }
    drop(ex_tx);

    // Workers end on their own: limits reached, or the interrupt escalated
    // to `Stop::Now` (see `interrupt_channel`).
    let mut worker_panic = None;
    for r in futures_util::future::join_all(workers).await {
        if let Err(e) = r {
            worker_panic = Some(format!("a request worker failed: {e}"));
        }
    }
    let interrupted = *stop.borrow_and_update() != Stop::Run;
    drop(req_rx);
    let mut records = match collector.join() {
        Ok(r) => r,
        Err(_) => {
            *source_error.lock().unwrap() =
                Some("the result collector failed; this run's records are lost".into());
            Vec::new()
        }
    };
    if sampler.join().is_err() {
        *source_error.lock().unwrap() = Some("the request sampler panicked".into());
    }
    if let Some(p) = worker_panic {
        source_error.lock().unwrap().get_or_insert(p);
    }
    let wall = records.iter().map(|r| r.end_offset).fold(0.0f64, f64::max);
    records.sort_by(|a, b| a.end_offset.total_cmp(&b.end_offset));
    let source_error = source_error.lock().unwrap().take();
    RunOutcome {
        records,
        wall: Duration::from_secs_f64(wall),
        interrupted,
        source_error,
    }
}

async fn wait_for(stop: &mut watch::Receiver<Stop>, level: Stop) {
    loop {
        if *stop.borrow_and_update() >= level {
            return;
        }
        if stop.changed().await.is_err() {
            // Sender gone: never resolves, the request runs to completion.
            std::future::pending::<()>().await;
        }
    }
}

fn cancelled(id: u64, plugin: &str, sent_at: Instant, _run_start: Instant) -> Exchange {
    let mut ex = Exchange {
        request_id: id,
        plugin: plugin.to_string(),
        started: Some(sent_at),
        headers_at: None,
        chunks: Vec::new(),
        first_token_at: None,
        end_at: sent_at.elapsed(),
        status: None,
        content: String::new(),
        reasoning: String::new(),
        usage: Default::default(),
        end_seen: false,
        error: None,
    };
    ex.error = Some(RequestError {
        kind: ErrorKind::Cancelled,
        code: 499,
        message: "cancelled by an interruption (Ctrl-C) before it completed".into(),
    });
    ex
}

/// A stop channel driven by Ctrl-C: the first press stops new requests and
/// gives in-flight ones `grace` to finish, then cancels them; a second press
/// cancels at once.
pub fn interrupt_channel(grace: Duration) -> (watch::Sender<Stop>, watch::Receiver<Stop>) {
    let (tx, rx) = watch::channel(Stop::Run);
    let tx2 = tx.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        eprintln!(
            "\ninterrupted: no new requests; waiting up to {grace:?} for requests in flight (Ctrl-C again to stop now)"
        );
        let _ = tx2.send(Stop::Graceful);
        tokio::select! {
            _ = tokio::time::sleep(grace) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        let _ = tx2.send(Stop::Now);
        // The handler stays installed, so a third press must still end the
        // process even if something hangs while results are written.
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted three times: exiting now");
            std::process::exit(130);
        }
    });
    (tx, rx)
}
