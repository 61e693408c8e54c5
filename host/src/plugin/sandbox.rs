//! The sandbox's rules in one place: what an instance may use, how each call
//! is bounded, and how plugin text is made safe to show.
//!
//! A reviewer reads this file (with [`super::policy`] for outbound requests
//! and [`super::cache`] for compiled code) to see every rule an untrusted
//! plugin runs under:
//!
//! * **WASI with nothing granted** ([`wasi_ctx`], [`add_wasi_to_linker`]): no
//!   files, environment, sockets or stdio; clocks frozen at zero; every clock
//!   pollable ready at once, so no call can wait; `wasi:random` serves a
//!   fixed, non-secret byte cycle, at most [`MAX_RANDOM_BYTES`] a call.
//! * **Memory** ([`MemoryLimiter`], [`MemoryBudget`]): the sum of all linear
//!   memories and tables of one instance is capped, and so is the number of
//!   memories, tables and core instances; all live instances together draw
//!   on one process-wide budget, so a plugin that stays under the
//!   per-instance cap in every request still cannot take the machine's
//!   memory at high concurrency; what the host keeps on an instance's
//!   behalf (its request body, its response's event text) is charged to it
//!   as well.
//! * **CPU** ([`CallMeter`]): a call is charged the time it spends being
//!   polled (running wasm or host code on its behalf), checked at every epoch
//!   tick and once more when it returns; time spent queued behind other
//!   requests is not charged.
//! * **Wall clock** ([`guard`]): every call has a wall-clock bound as the
//!   backstop; on expiry the call's future is dropped, which cancels the
//!   guest, and the instance is discarded.
//! * **Text** ([`display_safe`]): every string a plugin controls is shown
//!   with control characters, escape sequences, bidi overrides and line
//!   separators neutralised, so it cannot forge log lines or drive a terminal.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use wasmtime::component::{Linker, Resource};
use wasmtime::{ResourceLimiter, StoreContextMut};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi::p2::{DynPollable, Pollable};

use super::HostState;
use super::limits::PluginLimits;

/// Largest `wasi:random` request served; a plugin parsing HTTP needs a few
/// bytes for hash seeds, never megabytes.
pub const MAX_RANDOM_BYTES: u64 = 4096;

/// Most linear memories one instance may create.
pub const MAX_MEMORIES: usize = 16;
/// Most tables one instance may create.
pub const MAX_TABLES: usize = 64;
/// Most core instances one instance may create (interpreters compiled to
/// components, such as componentize-py's, have a few dozen).
pub const MAX_CORE_INSTANCES: usize = 256;
/// Bytes charged per table element (a pointer and its type tag at most).
const TABLE_ELEMENT_BYTES: usize = 16;

/// WASI with nothing granted: no files, env, args, sockets or stdio, frozen
/// clocks, and a deterministic random source capped per call.
pub fn wasi_ctx() -> WasiCtx {
    WasiCtx::builder()
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .wall_clock(FrozenClock)
        .monotonic_clock(FrozenClock)
        // Not the system's entropy: a plugin has no use for secrets, and a
        // fixed cycle keeps its output reproducible.
        .secure_random(wasmtime_wasi::Deterministic::new(RANDOM_CYCLE.to_vec()))
        .insecure_random(wasmtime_wasi::Deterministic::new(RANDOM_CYCLE.to_vec()))
        .insecure_random_seed(0x6765_6e61_692d_6265_6e63_682d_7365_6564)
        .max_random_size(MAX_RANDOM_BYTES)
        .build()
}

/// The byte cycle `wasi:random` serves (odd length, so words drawn from it
/// do not repeat every few calls).
const RANDOM_CYCLE: [u8; 61] = [
    0x3b, 0x9f, 0x12, 0xc4, 0x7e, 0x55, 0xa1, 0x08, 0xd6, 0x6b, 0x2f, 0xe3, 0x90, 0x47, 0xbc, 0x19,
    0x84, 0x5d, 0xf2, 0x0e, 0x73, 0xaa, 0x36, 0xc9, 0x61, 0x1d, 0xb5, 0x4a, 0xe8, 0x27, 0x9c, 0x03,
    0x7f, 0xd1, 0x58, 0xa6, 0x2c, 0xbf, 0x64, 0x11, 0xee, 0x85, 0x3a, 0xc7, 0x50, 0x9b, 0x26, 0xf9,
    0x6e, 0x0b, 0xd4, 0x41, 0xb8, 0x7c, 0x15, 0xe0, 0x8d, 0x32, 0xaf, 0x5a, 0xc1,
];

/// Link WASI 0.2 as the sandbox allows it: wasmtime-wasi's implementation
/// over [`wasi_ctx`], with the monotonic clock's pollables replaced by ones
/// that are ready at once (a sans-IO plugin never needs to wait, and a
/// pending pollable would park the call forever), and random requests over
/// [`MAX_RANDOM_BYTES`] failing the call as a typed limit.
pub(super) fn add_wasi_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap("subscribe-duration", |mut store, (_,): (u64,)| {
        Ok((ready_pollable(&mut store)?,))
    })?;
    clock.func_wrap("subscribe-instant", |mut store, (_,): (u64,)| {
        Ok((ready_pollable(&mut store)?,))
    })?;
    for (iface, func) in [
        (RANDOM, "get-random-bytes"),
        (INSECURE_RANDOM, "get-insecure-random-bytes"),
    ] {
        linker.instance(iface)?.func_wrap(
            func,
            |mut store: StoreContextMut<'_, HostState>, (len,): (u64,)| {
                let state = store.data_mut();
                if len > MAX_RANDOM_BYTES {
                    state.random_denied = Some(len);
                    wasmtime::bail!(
                        "asked wasi:random for {len} bytes; the sandbox serves at most {MAX_RANDOM_BYTES} a call"
                    );
                }
                Ok((RANDOM_CYCLE.iter().copied().cycle().take(len as usize).collect::<Vec<u8>>(),))
            },
        )?;
    }
    linker.allow_shadowing(false);
    Ok(())
}

/// Interfaces as wasmtime-wasi 48 names them (plugins importing any 0.2.x
/// version are served by them).
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";
const RANDOM: &str = "wasi:random/random@0.2.12";
const INSECURE_RANDOM: &str = "wasi:random/insecure@0.2.12";

fn ready_pollable(
    store: &mut StoreContextMut<'_, HostState>,
) -> wasmtime::Result<Resource<DynPollable>> {
    let table = &mut store.data_mut().table;
    let ready = table.push(Ready)?;
    wasmtime_wasi::p2::subscribe(table, ready)
}

/// A pollable that is always ready.
struct Ready;

#[wasmtime_wasi::async_trait]
impl Pollable for Ready {
    async fn ready(&mut self) {}
}

/// A clock stuck at zero: a plugin cannot time anything itself.
struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// The memory all live plugin instances of the process may hold together,
/// shared by their [`MemoryLimiter`]s. Each instance's memories and tables
/// are charged as they grow and given back when the instance is dropped.
#[derive(Debug)]
pub struct MemoryBudget {
    max: usize,
    used: AtomicUsize,
}

impl MemoryBudget {
    /// A budget of `max` bytes.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(MemoryBudget {
            max,
            used: AtomicUsize::new(0),
        })
    }

    /// The budget, in bytes.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Bytes charged to live instances now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Charge `bytes` if they fit.
    fn reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(bytes).filter(|&t| t <= self.max)
            })
            .is_ok()
    }

    fn release(&self, bytes: usize) {
        // Never below zero, whatever a bug elsewhere did.
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(bytes))
            });
    }
}

/// Which cap refused a growth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryDenial {
    /// The instance's own cap (`--plugin-memory-mb`).
    Instance,
    /// The process-wide budget of all instances (`--plugin-memory-total-mb`).
    Total,
}

/// Caps the sum of an instance's linear memories and tables, and how many
/// of each it may create, charges them to the process's [`MemoryBudget`],
/// and remembers which cap refused, so the resulting trap is reported as
/// that memory limit rather than a bare trap.
#[derive(Debug)]
pub struct MemoryLimiter {
    max: usize,
    budget: Option<Arc<MemoryBudget>>,
    /// Bytes of all memories and tables now.
    total: usize,
    /// The last growth granted, taken back if the growth then failed.
    last_growth: usize,
    /// Largest `total` so far (what `plugin check` reports).
    pub peak: usize,
    /// Set when a growth was refused, with the cap that refused it.
    pub denied: Option<MemoryDenial>,
    /// Bytes the host keeps on this instance's behalf (its request body,
    /// its response's event text), charged to the budget too.
    held: usize,
}

impl MemoryLimiter {
    /// A limiter allowing `max` bytes across all memories and tables, and
    /// charging them to `budget` when there is one.
    pub fn new(max: usize, budget: Option<Arc<MemoryBudget>>) -> Self {
        MemoryLimiter {
            max,
            budget,
            total: 0,
            last_growth: 0,
            peak: 0,
            denied: None,
            held: 0,
        }
    }

    /// Charge `bytes` the host keeps on this instance's behalf (host memory
    /// the plugin decides on: a request body, a response's event text),
    /// released with the instance; false when the budget has no room.
    pub fn hold_host_bytes(&mut self, bytes: usize) -> bool {
        match &self.budget {
            Some(b) if !b.reserve(bytes) => false,
            _ => {
                self.held = self.held.saturating_add(bytes);
                true
            }
        }
    }

    fn grow(&mut self, bytes: usize) -> wasmtime::Result<bool> {
        let t = match self.total.checked_add(bytes) {
            Some(t) if t <= self.max => t,
            _ => {
                self.denied = Some(MemoryDenial::Instance);
                wasmtime::bail!(
                    "plugin memory limit of {} MiB per instance (all memories and tables) reached",
                    self.max >> 20
                )
            }
        };
        if let Some(b) = &self.budget
            && !b.reserve(bytes)
        {
            self.denied = Some(MemoryDenial::Total);
            wasmtime::bail!(
                "plugin memory budget of {} MiB for all instances together reached",
                b.max() >> 20
            )
        }
        self.total = t;
        self.last_growth = bytes;
        self.peak = self.peak.max(t);
        Ok(true)
    }

    /// Take back the last growth granted (the engine could not make it).
    fn undo_last(&mut self) {
        let g = std::mem::take(&mut self.last_growth);
        self.total = self.total.saturating_sub(g);
        if let Some(b) = &self.budget {
            b.release(g);
        }
    }
}

impl Drop for MemoryLimiter {
    /// The instance is gone (its store is dropped with this limiter): its
    /// memories and tables go back to the budget.
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.release(self.total.saturating_add(self.held));
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Also called with `current` 0 when a memory is created.
        self.grow(desired.saturating_sub(current))
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.undo_last();
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(
            desired
                .saturating_sub(current)
                .saturating_mul(TABLE_ELEMENT_BYTES),
        )
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.undo_last();
        Ok(())
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

/// CPU time of the current call, measured as the time its future spends
/// being polled: wasm running and host functions running on its behalf
/// (bulk copies, `memory.fill`, result lifting) all count, waiting in the
/// executor's queue does not.
#[derive(Debug)]
pub struct CallMeter {
    base: Instant,
    /// Nanoseconds charged to the call by completed polls.
    used_ns: AtomicU64,
    /// When the current poll began (ns since `base`, plus one so 0 means
    /// "not in a poll").
    poll_started: AtomicU64,
}

impl Default for CallMeter {
    fn default() -> Self {
        CallMeter {
            base: Instant::now(),
            used_ns: AtomicU64::new(0),
            poll_started: AtomicU64::new(0),
        }
    }
}

impl CallMeter {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// Start charging a new call from zero.
    pub fn reset(&self) {
        self.used_ns.store(0, Ordering::Relaxed);
        self.poll_started.store(0, Ordering::Relaxed);
    }

    /// Time charged so far, including the poll in progress.
    pub fn used(&self) -> Duration {
        let mut ns = self.used_ns.load(Ordering::Relaxed);
        let started = self.poll_started.load(Ordering::Relaxed);
        if started != 0 {
            ns = ns.saturating_add(self.now_ns().saturating_sub(started - 1));
        }
        Duration::from_nanos(ns)
    }

    fn enter(&self) {
        self.poll_started
            .store(self.now_ns().saturating_add(1), Ordering::Relaxed);
        ticker::running();
    }

    fn exit(&self) {
        ticker::stopped();
        let started = self.poll_started.swap(0, Ordering::Relaxed);
        if started != 0 {
            let spent = self.now_ns().saturating_sub(started - 1);
            self.used_ns.fetch_add(spent, Ordering::Relaxed);
        }
    }
}

/// The epoch tickers tick only while some plugin code runs: an idle
/// benchmark (concurrency 1, a server thinking) costs no wake-ups 500 times
/// a second. Polls count in and out; the first one in wakes the tickers.
pub(crate) mod ticker {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::thread::Thread;

    /// Plugin polls in progress, in every runtime of the process.
    static RUNNING: AtomicUsize = AtomicUsize::new(0);
    /// Set by a ticker before it parks: only then does a poll pay for
    /// waking it.
    static PARKED: AtomicBool = AtomicBool::new(false);
    /// The ticker threads to wake when code starts running.
    static TICKERS: Mutex<Vec<Thread>> = Mutex::new(Vec::new());

    /// A ticker thread (the current one) waits for work here.
    pub fn register_current() {
        TICKERS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(std::thread::current());
    }

    /// Park the current ticker until a plugin poll starts (or `timeout`),
    /// unless one is running already.
    pub fn park(timeout: std::time::Duration) {
        PARKED.store(true, Ordering::SeqCst);
        // A poll that started before the flag was up did not wake us.
        if RUNNING.load(Ordering::SeqCst) == 0 {
            std::thread::park_timeout(timeout);
        }
    }

    /// Whether any plugin code may be running now.
    pub fn busy() -> bool {
        RUNNING.load(Ordering::SeqCst) > 0
    }

    pub(super) fn running() {
        RUNNING.fetch_add(1, Ordering::SeqCst);
        if PARKED.load(Ordering::SeqCst) && PARKED.swap(false, Ordering::SeqCst) {
            for t in TICKERS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                t.unpark();
            }
        }
    }

    pub(super) fn stopped() {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How a guarded call ended, besides its own result.
#[derive(Debug)]
pub enum Bounded<T> {
    /// The call returned (successfully or with a trap) within its bounds.
    Done(T),
    /// It returned, but was charged more CPU time than its budget (a bulk
    /// operation ran past the last epoch check).
    OverBudget(Duration),
    /// It was still running or waiting at the wall-clock bound and was
    /// cancelled.
    WallTimeout,
}

/// Run one plugin call under the CPU meter and a wall-clock bound.
///
/// The epoch callback reads `meter` to interrupt a call that keeps running
/// past its budget; this checks the budget once more when the call returns,
/// and drops (cancels) a call still pending at `wall`.
pub async fn guard<F: Future>(
    meter: &Arc<CallMeter>,
    limits: &PluginLimits,
    call: F,
) -> Bounded<F::Output> {
    meter.reset();
    let deadline = tokio::time::Instant::now() + limits.call_wall_timeout;
    let mut call = std::pin::pin!(call);
    let mut metered = std::pin::pin!(std::future::poll_fn(|cx| {
        meter.enter();
        let r = call.as_mut().poll(cx);
        meter.exit();
        r
    }));
    // Most calls finish in their first poll (the guest ran to the end on
    // its fiber): those need no timer, which would cost more than a small
    // call. A call that comes back pending gets the wall-clock bound,
    // counted from its start.
    let first = std::future::poll_fn(|cx| Poll::Ready(metered.as_mut().poll(cx))).await;
    let out = match first {
        Poll::Ready(out) => out,
        Poll::Pending => match tokio::time::timeout_at(deadline, metered).await {
            Ok(out) => out,
            Err(_) => return Bounded::WallTimeout,
        },
    };
    let used = meter.used();
    // One epoch tick of grace: the check that would have caught it was due.
    if used > limits.call_timeout + super::EPOCH_TICK {
        return Bounded::OverBudget(used);
    }
    Bounded::Done(out)
}

/// Whether `c` must not reach a terminal or log line as itself: control
/// characters (C0, DEL, C1), bidi embeddings, overrides and isolates, line
/// and paragraph separators, zero-width and other invisible format marks.
fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

/// `s` made safe to print: every unsafe character (see above) replaced by a
/// visible escape (`\n`, `\t`, `\u{1b}`, ...), truncated to `max_chars`
/// characters with `...` when longer. The result is one line.
pub fn display_safe(s: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_chars.saturating_mul(2)));
    for (n, c) in s.chars().enumerate() {
        if n >= max_chars {
            out.push_str("...");
            break;
        }
        if !is_unsafe_char(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    out
}

/// Whether `s` would print differently from itself (see [`display_safe`]).
pub fn has_unsafe_chars(s: &str) -> bool {
    s.chars().any(is_unsafe_char)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_safe_neutralises_escapes_bidi_and_line_breaks() {
        let evil =
            "ok\u{1b}]0;title\u{7}\u{1b}[2K\rsha256 (verified)\u{202e}x\u{2028}y\n\u{9b}z\u{200b}";
        let safe = display_safe(evil, 1000);
        assert!(!has_unsafe_chars(&safe), "{safe}");
        assert_eq!(
            safe,
            "ok\\u{1b}]0;title\\u{7}\\u{1b}[2K\\rsha256 (verified)\\u{202e}x\\u{2028}y\\n\\u{9b}z\\u{200b}"
        );
        assert_eq!(
            display_safe("plain text, ünïcode ok", 100),
            "plain text, ünïcode ok"
        );
        assert_eq!(display_safe("abcdef", 3), "abc...");
    }

    #[test]
    fn the_limiter_caps_the_sum_of_memories_and_tables() {
        let mut l = MemoryLimiter::new(100 << 20, None);
        // Two memories of 40 MiB each fit, a third does not.
        assert!(l.memory_growing(0, 40 << 20, None).unwrap());
        assert!(l.memory_growing(0, 40 << 20, None).unwrap());
        assert!(l.memory_growing(0, 40 << 20, None).is_err());
        assert_eq!(l.denied, Some(MemoryDenial::Instance));
        assert_eq!(l.peak, 80 << 20);
        // A growth that then fails is taken back.
        let mut l = MemoryLimiter::new(100 << 20, None);
        assert!(l.memory_growing(0, 60 << 20, None).unwrap());
        l.memory_grow_failed(wasmtime::format_err!("os refused"))
            .unwrap();
        assert!(l.memory_growing(0, 60 << 20, None).unwrap());
        // Tables count too.
        let mut l = MemoryLimiter::new(1 << 20, None);
        assert!(l.table_growing(0, 1 << 20, None).is_err());
    }

    #[test]
    fn instances_share_the_budget_and_give_it_back_when_dropped() {
        let budget = MemoryBudget::new(100 << 20);
        let mut a = MemoryLimiter::new(64 << 20, Some(budget.clone()));
        let mut b = MemoryLimiter::new(64 << 20, Some(budget.clone()));
        assert!(a.memory_growing(0, 60 << 20, None).unwrap());
        // Under b's own cap, over what the budget has left.
        assert!(b.memory_growing(0, 50 << 20, None).is_err());
        assert_eq!(b.denied, Some(MemoryDenial::Total));
        assert_eq!(budget.used(), 60 << 20);
        assert!(b.memory_growing(0, 40 << 20, None).unwrap());
        assert_eq!(budget.used(), 100 << 20);
        // A failed growth gives its share back; so does a dropped instance.
        b.memory_grow_failed(wasmtime::format_err!("os refused"))
            .unwrap();
        assert_eq!(budget.used(), 60 << 20);
        drop(a);
        assert_eq!(budget.used(), 0);
        assert!(b.memory_growing(0, 64 << 20, None).unwrap());
        // Text the host keeps for a response counts too, until the drop.
        assert!(b.hold_host_bytes(30 << 20));
        assert!(!b.hold_host_bytes(10 << 20));
        assert_eq!(budget.used(), 94 << 20);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn the_meter_charges_only_time_inside_polls() {
        let m = CallMeter::default();
        m.enter();
        std::thread::sleep(Duration::from_millis(20));
        m.exit();
        // Waiting outside a poll is not charged.
        std::thread::sleep(Duration::from_millis(50));
        let used = m.used();
        assert!(used >= Duration::from_millis(20), "{used:?}");
        assert!(used < Duration::from_millis(60), "{used:?}");
        m.reset();
        assert_eq!(m.used(), Duration::ZERO);
    }
}
