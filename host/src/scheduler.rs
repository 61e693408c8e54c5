//! Runs one benchmark run: a closed loop with exactly N requests in flight
//! until the request or time limit is reached, or the user interrupts; or an
//! open loop that sends requests at precomputed times (`run_open_loop`).
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

use tokio::sync::watch;

use crate::metrics::{Dispatch, RequestContext, RequestRecord, record_from_exchange};
use crate::plugin::swap::PluginSlot;
use crate::plugin::{BenchRequest, LoadedPlugin, Task};
use crate::progress::Progress;
use crate::race::{Either, race_rare};
use crate::transport::{
    Built, ErrorKind, Exchange, NextRequest, RequestError, SendState, Then, Transport,
};

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
    /// Open loop: send times, seconds from the run start (see
    /// [`crate::load::schedule`]); `concurrency` is then ignored.
    pub arrivals: Option<Arc<Vec<f64>>>,
    /// Open loop: most requests in flight; a due request waits for a slot.
    pub max_concurrency: Option<u32>,
    /// Closed loop: clients started per second (genai-bench's
    /// `--spawn-rate`); `None` starts them all at once.
    pub spawn_rate: Option<f64>,
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
    /// Process CPU time over the run's wall time, in cores.
    pub client_cpu_cores: Option<f64>,
    /// CPU time of the whole machine (every process, ours included) over
    /// the run's wall time, in cores (from `/proc/stat`).
    pub machine_cpu_cores: Option<f64>,
    /// Wall-clock time of the run start, seconds since the Unix epoch.
    pub run_start_unix_s: f64,
    /// `CLOCK_MONOTONIC` at the run start, seconds: records' offsets plus
    /// this line up with a server's monotonic log on the same machine.
    pub run_start_monotonic_s: Option<f64>,
}

type Sampled = (BenchRequest, Option<u64>);

/// Open loop: requests prepared before the clock starts, and kept ahead.
const PREFILL: usize = 1024;
/// An exchange, the sampler's input token count, the open-loop dispatch
/// timing and the closed-loop wait for a prompt (seconds).
type Measured = (Exchange, Option<u64>, Option<Dispatch>, Option<f64>);

/// The sampler thread: prepares up to `n` requests ahead of the senders.
fn spawn_sampler(
    source: Box<dyn RequestSource>,
    n: u64,
    buffer: usize,
    err: Arc<std::sync::Mutex<Option<String>>>,
) -> (
    std::thread::JoinHandle<()>,
    async_channel::Receiver<Sampled>,
) {
    let (req_tx, req_rx) = async_channel::bounded::<Sampled>(buffer.max(1));
    let mut source = source;
    let handle = std::thread::Builder::new()
        .name("sampler".into())
        .spawn(move || {
            for _ in 0..n {
                match source.next_request() {
                    Ok(r) => {
                        if req_tx.send_blocking(r).is_err() {
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
        .expect("spawn sampler thread");
    (handle, req_rx)
}

/// Wait until the sampler has `want` requests ready (or is done, or the
/// user stops, or a minute passed) before a run's clock starts.
async fn fill(
    req_rx: &async_channel::Receiver<Sampled>,
    want: usize,
    sampler: &std::thread::JoinHandle<()>,
    stop: &watch::Receiver<Stop>,
) {
    let fill_deadline = Instant::now() + Duration::from_secs(60);
    while req_rx.len() < want && !sampler.is_finished() && Instant::now() < fill_deadline {
        if *stop.borrow() != Stop::Run {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Records reserved up front at most (~35 MB of address space, touched
/// only as records arrive).
const RECORDS_RESERVED_MAX: usize = 1 << 16;

/// The collector thread: exchange -> record, and live progress.
fn spawn_collector(
    spec: &RunSpec,
    run_start: Instant,
    count_tokens: Arc<dyn Fn(&str) -> u64 + Send + Sync>,
    progress: Arc<Progress>,
) -> (
    std::thread::JoinHandle<Vec<RequestRecord>>,
    std::sync::mpsc::Sender<Measured>,
) {
    let (ex_tx, ex_rx) = std::sync::mpsc::channel::<Measured>();
    let task = spec.task;
    let stream = spec.stream;
    // Room for the whole run when its size is known: doubling as records
    // came left up to half of the largest allocation a run makes unused
    // (~7 MB at 20,000 requests). Beyond the cap it grows as it must.
    let expected = usize::try_from(spec.max_requests)
        .unwrap_or(usize::MAX)
        .min(RECORDS_RESERVED_MAX);
    let handle = std::thread::Builder::new()
        .name("collector".into())
        .spawn(move || {
            let mut records = Vec::with_capacity(expected);
            for (ex, input, dispatch, prompt_wait) in ex_rx {
                let ctx = RequestContext {
                    task,
                    stream,
                    input_tokens: input,
                    dispatch,
                    prompt_wait,
                };
                let r = record_from_exchange(&ex, ctx, run_start, &*count_tokens);
                progress.record(&r);
                records.push(r);
            }
            records
        })
        .expect("spawn collector thread");
    (handle, ex_tx)
}

/// Seconds since the Unix epoch, now.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `CLOCK_MONOTONIC` now, in seconds (the clock `Instant` reads on Linux).
fn monotonic_now() -> Option<f64> {
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: clock_gettime only writes the struct we pass.
    (unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } == 0)
        .then(|| ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9)
}

/// Join the helper threads and assemble the outcome.
#[allow(clippy::too_many_arguments)]
fn finish(
    collector: std::thread::JoinHandle<Vec<RequestRecord>>,
    sampler: std::thread::JoinHandle<()>,
    source_error: Arc<std::sync::Mutex<Option<String>>>,
    worker_panic: Option<String>,
    interrupted: bool,
    run_start: Instant,
    cpu_start: (Option<Duration>, Option<Duration>),
    run_start_unix_s: f64,
    run_start_monotonic_s: Option<f64>,
) -> RunOutcome {
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
    let elapsed = run_start.elapsed().as_secs_f64();
    let cores_used = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
        (Some(a), Some(b)) if elapsed > 0.0 => Some((b.saturating_sub(a)).as_secs_f64() / elapsed),
        _ => None,
    };
    let client_cpu_cores = cores_used(cpu_start.0, crate::validity::process_cpu_time());
    let machine_cpu_cores = cores_used(cpu_start.1, crate::validity::machine_cpu_time());
    RunOutcome {
        records,
        wall: Duration::from_secs_f64(wall),
        interrupted,
        source_error,
        client_cpu_cores,
        machine_cpu_cores,
        run_start_unix_s,
        run_start_monotonic_s,
    }
}

/// Run one open-loop run: request `i` is due at `run start + arrivals[i]`
/// whatever happens to the others. A dispatcher sleeps until each slot,
/// waits for a concurrency slot if capped, and hands the request to a task
/// of its own; how late each step was is recorded (send lag, pacing error,
/// cap wait). Sending stops at the end of the schedule, the time limit or
/// an interruption; requests in flight are then awaited, up to the time
/// limit, where they are cancelled (and recorded as such).
pub async fn run_open_loop(
    transport: &Transport,
    plugins: Arc<PluginSlot>,
    source: Box<dyn RequestSource>,
    spec: RunSpec,
    count_tokens: Arc<dyn Fn(&str) -> u64 + Send + Sync>,
    mut stop: watch::Receiver<Stop>,
    progress: Arc<Progress>,
) -> RunOutcome {
    let arrivals = spec.arrivals.clone().unwrap_or_default();
    let n = (arrivals.len() as u64).min(spec.max_requests);
    let source_error: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    // A generous buffer: sampling runs ahead so a burst of due requests
    // finds them ready.
    let (sampler, req_rx) = spawn_sampler(source, n, PREFILL, source_error.clone());
    // The clock starts once the buffer is full (or the sampler is done),
    // so that preparing prompts never makes the first requests late.
    fill(&req_rx, (n as usize).min(PREFILL), &sampler, &stop).await;
    let cpu_start = (
        crate::validity::process_cpu_time(),
        crate::validity::machine_cpu_time(),
    );
    let run_start_unix_s = unix_now();
    let run_start_monotonic_s = monotonic_now();
    let run_start = Instant::now();
    let (collector, ex_tx) = spawn_collector(&spec, run_start, count_tokens, progress.clone());
    let deadline = run_start + spec.max_time;
    let cap = spec
        .max_concurrency
        .map(|c| Arc::new(tokio::sync::Semaphore::new(c.max(1) as usize)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut worker_panic = None;
    for (i, offset) in arrivals.iter().take(n as usize).enumerate() {
        let due = run_start + Duration::from_secs_f64(*offset);
        if *stop.borrow() != Stop::Run || due >= deadline {
            break;
        }
        let next = tokio::select! {
            r = req_rx.recv() => r.ok(),
            _ = wait_for(&mut stop, Stop::Graceful) => break,
        };
        let Some((req, input_tokens)) = next else {
            break;
        };
        tokio::select! {
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(due)) => {}
            _ = wait_for(&mut stop, Stop::Graceful) => break,
        }
        let woke = Instant::now();
        let permit = match &cap {
            Some(sem) => tokio::select! {
                p = sem.clone().acquire_owned() => Some(p.expect("semaphore never closed")),
                _ = wait_for(&mut stop, Stop::Graceful) => break,
            },
            None => None,
        };
        let dispatch = Dispatch {
            scheduled: due,
            woke,
            permitted: Instant::now(),
        };
        // Reap finished tasks as we go, so the set stays small.
        while let Some(r) = tasks.try_join_next() {
            if let Err(e) = r {
                worker_panic = Some(format!("a request task failed: {e}"));
            }
        }
        let id = i as u64 + 1;
        progress.started();
        let transport = transport.clone();
        let plugins = plugins.clone();
        let ex_tx = ex_tx.clone();
        let mut stop = stop.clone();
        let max_time = spec.max_time;
        tasks.spawn(async move {
            let _permit = permit;
            // Built with the plugin in the slot when the task runs: a hot
            // swap applies from the next send.
            let now = Now::Sampled(req, id);
            let (ex, _) = execute_until_cut(
                &transport, &plugins, now, None, &mut stop, deadline, max_time,
            )
            .await;
            let _ = ex_tx.send((ex, input_tokens, Some(dispatch), None));
        });
    }
    drop(req_rx);
    drop(ex_tx);
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            worker_panic = Some(format!("a request task failed: {e}"));
        }
    }
    let interrupted = *stop.borrow_and_update() != Stop::Run;
    finish(
        collector,
        sampler,
        source_error,
        worker_panic,
        interrupted,
        run_start,
        cpu_start,
        run_start_unix_s,
        run_start_monotonic_s,
    )
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
    let source_error: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let buffer = concurrency * 2 + 8;
    let (sampler, req_rx) = spawn_sampler(source, max_requests, buffer, source_error.clone());
    // Every worker has a prompt when the clock starts: otherwise the first
    // wave goes out at the sampler's pace and the run starts below its
    // concurrency.
    let want = usize::try_from(max_requests)
        .unwrap_or(usize::MAX)
        .min(buffer);
    fill(&req_rx, want, &sampler, &stop).await;
    let cpu_start = (
        crate::validity::process_cpu_time(),
        crate::validity::machine_cpu_time(),
    );
    let run_start_unix_s = unix_now();
    let run_start_monotonic_s = monotonic_now();
    let run_start = Instant::now();
    let (collector, ex_tx) = spawn_collector(&spec, run_start, count_tokens, progress.clone());

    let issued = Arc::new(AtomicU64::new(0));
    let deadline = run_start + spec.max_time;
    let mut workers = Vec::with_capacity(concurrency);
    for client in 0..concurrency {
        // Client i starts i / spawn_rate seconds into the run.
        let start_at = spec
            .spawn_rate
            .map(|r| run_start + Duration::from_secs_f64(client as f64 / r));
        let transport = transport.clone();
        let plugins = plugins.clone();
        let req_rx = req_rx.clone();
        let ex_tx = ex_tx.clone();
        let issued = issued.clone();
        let mut stop = stop.clone();
        let progress = progress.clone();
        let max_time = spec.max_time;
        workers.push(tokio::spawn(async move {
            if let Some(at) = start_at
                && at > Instant::now()
            {
                tokio::select! {
                    _ = tokio::time::sleep_until(at.min(deadline).into()) => {}
                    _ = stop.changed() => {}
                }
            }
            // Its next request is taken and built once its response is
            // parsed, in the same plugin visit (see `WorkerNext`).
            let next_source = Arc::new(WorkerNext {
                plugins: plugins.clone(),
                req_rx: req_rx.clone(),
                issued: issued.clone(),
                max_requests,
                deadline,
                stop: stop.clone(),
                input_tokens: std::sync::Mutex::new(None),
                reserved: std::sync::Mutex::new(None),
            });
            let then: Then = next_source.clone();
            let mut built: Option<Built> = None;
            loop {
                if *stop.borrow() != Stop::Run || Instant::now() >= deadline {
                    return;
                }
                let (now, input_tokens, prompt_wait) = match built.take() {
                    // Ready when this worker became free: no wait.
                    Some(b) => (Now::Built(b), next_source.input_tokens(), 0.0),
                    None => {
                        // An id `take` reserved with no prompt ready yet, or
                        // a new one.
                        let n = match next_source.reserved() {
                            Some(id) => id - 1,
                            None => issued.fetch_add(1, Ordering::SeqCst),
                        };
                        if n >= max_requests {
                            return;
                        }
                        let asked = Instant::now();
                        let Ok((req, input_tokens)) = req_rx.recv().await else {
                            return;
                        };
                        let prompt_wait = asked.elapsed().as_secs_f64();
                        // Waiting for a prompt may have outlasted the run.
                        if *stop.borrow() != Stop::Run || Instant::now() >= deadline {
                            return;
                        }
                        (Now::Sampled(req, n + 1), input_tokens, prompt_wait)
                    }
                };
                progress.started();
                let (ex, next) = execute_until_cut(
                    &transport,
                    &plugins,
                    now,
                    Some(then.clone()),
                    &mut stop,
                    deadline,
                    max_time,
                )
                .await;
                if ex_tx
                    .send((ex, input_tokens, None, Some(prompt_wait)))
                    .is_err()
                {
                    return;
                }
                built = next;
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
    // Closed, not just dropped: a parse task still running after a cut
    // holds a receiver (in its worker's `WorkerNext`), and the sampler,
    // blocked on a full queue, must end now for the run to end.
    req_rx.close();
    finish(
        collector,
        sampler,
        source_error,
        worker_panic,
        interrupted,
        run_start,
        cpu_start,
        run_start_unix_s,
        run_start_monotonic_s,
    )
}

/// A closed-loop worker's next request, asked for on the plugin executor
/// once its response in flight has been parsed (see [`NextRequest`]).
struct WorkerNext {
    plugins: Arc<PluginSlot>,
    req_rx: async_channel::Receiver<Sampled>,
    issued: Arc<AtomicU64>,
    max_requests: u64,
    deadline: Instant,
    stop: watch::Receiver<Stop>,
    /// The sampler's input token count of the request taken last.
    input_tokens: std::sync::Mutex<Option<u64>>,
    /// An id taken with no prompt ready (another worker took the last):
    /// the worker waits for a prompt for it.
    reserved: std::sync::Mutex<Option<u64>>,
}

impl WorkerNext {
    /// The input token count of the request [`take`](NextRequest::take)
    /// gave last.
    fn input_tokens(&self) -> Option<u64> {
        *self.input_tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The id [`take`](NextRequest::take) reserved but found no prompt
    /// for, if any (once).
    fn reserved(&self) -> Option<u64> {
        self.reserved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

impl NextRequest for WorkerNext {
    fn take(&self) -> Option<(BenchRequest, u64)> {
        if *self.stop.borrow() != Stop::Run || Instant::now() >= self.deadline {
            return None;
        }
        if self.req_rx.is_empty() {
            return None;
        }
        let n = self
            .issued
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max_requests).then_some(n + 1)
            })
            .ok()?;
        // Another worker may have taken the last prompt meanwhile: the id
        // is kept, and this worker waits for a prompt for it (an id given
        // up here could leave a waiting worker without one).
        let Ok((req, input_tokens)) = self.req_rx.try_recv() else {
            *self.reserved.lock().unwrap_or_else(|e| e.into_inner()) = Some(n + 1);
            return None;
        };
        *self.input_tokens.lock().unwrap_or_else(|e| e.into_inner()) = input_tokens;
        Some((req, n + 1))
    }

    fn plugin(&self) -> Arc<LoadedPlugin> {
        self.plugins.current()
    }
}

/// The request a worker sends now.
enum Now {
    /// Sampled: built now, with the plugin in the slot now.
    Sampled(BenchRequest, u64),
    /// Built after the worker's last response (see [`NextRequest`]).
    Built(Built),
}

/// How long a request whose body has fully arrived when the run is cut may
/// still take to be parsed: its timestamps are final, so it is recorded
/// rather than counted as cancelled.
const PARSE_AFTER_CUT: Duration = Duration::from_secs(1);

/// One request, unless the user interrupts (`Stop::Now`) or the run's
/// deadline passes before its body has arrived: then it is recorded as
/// cancelled. The interrupt and the deadline are looked at only when they
/// fire, not at each of the response's chunks (see [`race_rare`]). `then`
/// gives the worker's next request, built after this response is parsed.
async fn execute_until_cut(
    transport: &Transport,
    plugins: &PluginSlot,
    now: Now,
    then: Option<Then>,
    stop: &mut watch::Receiver<Stop>,
    deadline: Instant,
    max_time: Duration,
) -> (Exchange, Option<Built>) {
    let sent_at = Instant::now();
    let (id, plugin, now) = match now {
        Now::Sampled(req, id) => (id, plugins.current(), Either::Main(req)),
        Now::Built(Ok(p)) => (p.request_id(), p.plugin().clone(), Either::Side(p)),
        // Its failure is its record.
        Now::Built(Err(failed)) => return (*failed, None),
    };
    let cut = async {
        tokio::select! {
            _ = wait_for(stop, Stop::Now) => Cancel::Interrupt,
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {
                Cancel::Deadline(max_time)
            }
        }
    };
    let state = SendState::default();
    let mut work = std::pin::pin!(async {
        let prepared = match now {
            Either::Main(req) => transport.prepare(&plugin, req, id).await,
            Either::Side(built) => Ok(built),
        };
        match prepared {
            Ok(p) => transport.send(p, then, &state).await,
            Err(failed) => (*failed, None),
        }
    });
    match race_rare(work.as_mut(), cut).await {
        Either::Main(done) => done,
        Either::Side(why) => {
            // Cut, so no next request is taken (`WorkerNext::take`).
            if state.body_ended()
                && let Ok((ex, _)) = tokio::time::timeout(PARSE_AFTER_CUT, work).await
            {
                // The cut is seen when its timer fires, which can be late:
                // a body that ended after the deadline is still cut there.
                let in_time = match why {
                    Cancel::Deadline(_) => ex.started.is_some_and(|s| s + ex.end_at <= deadline),
                    Cancel::Interrupt => true,
                };
                if in_time {
                    return (ex, None);
                }
            }
            (cancelled(id, plugin.label(), sent_at, why), None)
        }
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

/// Why a request in flight was abandoned.
#[derive(Debug, Clone, Copy)]
enum Cancel {
    /// The user interrupted the run (Ctrl-C, escalated to `Stop::Now`).
    Interrupt,
    /// The run reached `--max-time-per-run`: the run is bounded, so what is
    /// still in flight is cut there (genai-bench's Locust engine drops such
    /// requests unrecorded; here they are kept, as cancelled).
    Deadline(Duration),
}

fn cancelled(id: u64, plugin: &str, sent_at: Instant, why: Cancel) -> Exchange {
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
        audio_bytes: 0,
        images: 0,
        error: None,
        parse_delays: Vec::new(),
        retries: 0,
    };
    ex.error = Some(RequestError {
        kind: ErrorKind::Cancelled,
        code: 499,
        message: match why {
            Cancel::Interrupt => "cancelled by an interruption (Ctrl-C) before it completed".into(),
            Cancel::Deadline(t) => format!(
                "cancelled in flight at the run's time limit (--max-time-per-run, {:.1} s)",
                t.as_secs_f64()
            ),
        },
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
