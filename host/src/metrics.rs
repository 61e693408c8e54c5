//! Per-request and per-run metrics, with genai-bench's definitions and field
//! names (see genai-bench's `request_metrics_collector.py` and
//! `aggregated_metrics_collector.py`), corrected where genai-bench is wrong:
//! no made-up TTFT for non-streaming responses, a real error rate, and
//! warmup/cooldown excluded from the throughput duration as well as the stats.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Deserializer, Serialize};

use crate::plugin::Task;
use crate::transport::Exchange;

/// One request's measurements. Field names match genai-bench's
/// `RequestLevelMetrics`; the extra fields come after them. Times are seconds.
/// Deserialisable (seconds) so `merge` can recompute a run from its records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Time to first token; `None` when not measured (non-streaming).
    pub ttft: Option<f64>,
    /// Time per output token after the first.
    pub tpot: Option<f64>,
    /// Request start to last byte.
    pub e2e_latency: Option<f64>,
    /// `e2e_latency - ttft`.
    pub output_latency: Option<f64>,
    /// `1 / tpot`.
    pub output_inference_speed: Option<f64>,
    /// Input tokens (the sampler's count, else the server's).
    pub num_input_tokens: Option<u64>,
    /// Output tokens (the server's usage, else the tokenizer's count).
    pub num_output_tokens: Option<u64>,
    /// Input + output.
    pub total_tokens: Option<u64>,
    /// `num_input_tokens / ttft`.
    pub input_throughput: Option<f64>,
    /// `(num_output_tokens - 1) / output_latency`.
    pub output_throughput: Option<f64>,
    /// Text-to-speech: audio bytes per second after the first byte
    /// (genai-bench's `audio_bytes / output_latency`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_throughput: Option<f64>,
    /// Text-to-speech: audio bytes received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_bytes: Option<u64>,
    /// Text-to-image: images generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_images: Option<u32>,
    /// `false` for a text answer that was not streamed: the whole answer
    /// arrived at once, so its `ttft` is its `e2e_latency` (when the client
    /// had the first token) and the output-phase figures are 0, as
    /// genai-bench writes them. Such records stay out of the TTFT, TPOT and
    /// output-speed statistics (`ttft_measured: false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streamed: Option<bool>,
    /// HTTP status or genai-bench error code; `None` on success.
    pub error_code: Option<i32>,
    /// What went wrong.
    pub error_message: Option<String>,
    /// Typed cause, naming who failed: the server (http, api, malformed,
    /// incomplete, too_large), the network (connect, reset, timeout), the
    /// plugin (plugin: trap or limit) or the client (cancelled).
    /// Left out of a successful record: genai-bench's `RequestLevelMetrics`
    /// refuses a successful record with any `null` field, its own or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    /// `prompt_tokens` reported by the server, kept beside our own count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_prompt_tokens: Option<u64>,
    /// Reasoning tokens reported by the server (0 on a success without
    /// any, as genai-bench writes).
    pub num_reasoning_tokens: Option<u64>,
    /// Where the output token count came from: `usage` or `tokenizer`.
    #[serde(
        default,
        deserialize_with = "known_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub output_tokens_source: Label,
    /// Plugin (name and version) that served the request.
    pub plugin: String,
    /// Seconds from the run start to this request's start.
    pub start_offset: Option<f64>,
    /// `warmup` or `cooldown` when left out of the stats.
    #[serde(
        default,
        deserialize_with = "known_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub excluded: Label,
    /// Open loop: when the request was due, seconds from the run start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_offset: Option<f64>,
    /// Open loop: actual send minus scheduled send (timer error, waiting
    /// for the concurrency cap, building the request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_lag: Option<f64>,
    /// Open loop: the part of `send_lag` spent waiting for the concurrency cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_wait: Option<f64>,
    /// Closed loop: how long the worker waited for the sampler's prompt
    /// before this request (the requested concurrency was not held meanwhile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_wait: Option<f64>,
    /// Open loop: how late the dispatcher woke for this request's slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pacing_error: Option<f64>,
    /// Open loop: TTFT from the scheduled send time (coordinated-omission
    /// corrected: `ttft + send_lag`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_corrected: Option<f64>,
    /// Open loop: end-to-end latency from the scheduled send time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e_latency_corrected: Option<f64>,
    /// When the request completed, seconds from the run start.
    #[serde(default)]
    pub end_offset: f64,
    /// Times the request was sent again on a fresh connection because a
    /// reused one was found closed before any response (keep-alive race).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
    /// Gaps between consecutive chunks that carried text (not serialised per
    /// request: aggregated into `inter_chunk_latency`, whose histogram the
    /// run file keeps).
    #[serde(skip)]
    pub inter_chunk: Gaps,
    /// Per batch handed to the parser: hand-over to parsed events, seconds
    /// (validity only).
    #[serde(skip)]
    pub parse_delays: Vec<f64>,
}

/// The gaps between consecutive text-bearing chunks of one request, 4
/// bytes each (a record keeps one per output token until the run ends;
/// as `f64` seconds they were most of a record). Whole nanoseconds, as the
/// host's clock gave them, so [`iter`](Self::iter) yields exactly the
/// seconds a `Duration` would; a gap of 2^32 - 1 ns (4.3 s) or more is
/// kept whole on the side, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gaps {
    /// Nanoseconds, or [`Gaps::LONG`] for the next entry of `long`.
    short: Vec<u32>,
    long: Vec<u64>,
}

impl Gaps {
    const LONG: u32 = u32::MAX;

    /// Room for `n` gaps.
    pub fn with_capacity(n: usize) -> Self {
        Gaps {
            short: Vec::with_capacity(n),
            long: Vec::new(),
        }
    }

    /// Gaps of these lengths in seconds, to the nanosecond (tests only:
    /// `Duration::from_secs_f64` panics on a negative or non-finite one).
    #[cfg(test)]
    fn from_secs(secs: &[f64]) -> Self {
        let mut g = Gaps::with_capacity(secs.len());
        for s in secs {
            g.push(Duration::from_secs_f64(*s));
        }
        g
    }

    /// Append the next gap.
    pub fn push(&mut self, gap: Duration) {
        let ns = u64::try_from(gap.as_nanos()).unwrap_or(u64::MAX);
        match u32::try_from(ns) {
            Ok(short) if short != Self::LONG => self.short.push(short),
            _ => {
                self.short.push(Self::LONG);
                self.long.push(ns);
            }
        }
    }

    /// How many gaps.
    pub fn len(&self) -> usize {
        self.short.len()
    }

    /// Whether there are none (an answer of at most one text chunk).
    pub fn is_empty(&self) -> bool {
        self.short.is_empty()
    }

    /// The gaps in order, in seconds.
    pub fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        let mut long = self.long.iter();
        self.short.iter().map(move |&ns| {
            let ns = match ns {
                Self::LONG => long.next().copied().unwrap_or(u64::MAX),
                short => u64::from(short),
            };
            Duration::from_nanos(ns).as_secs_f64()
        })
    }
}

/// `4.0` as `4`: genai-bench reads `num_concurrency` as an integer.
fn int_if_whole<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A fixed label; an alias so serde's derive sees no `'static` borrow.
pub type Label = Option<&'static str>;

/// The few strings records hold, as `&'static str`.
fn known_str<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'static str>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    match s.as_deref() {
        None => Ok(None),
        Some(v) => ["usage", "tokenizer", "warmup", "cooldown"]
            .into_iter()
            .find(|k| *k == v)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("unexpected value '{v}'"))),
    }
}

impl RequestRecord {
    /// Whether the request succeeded.
    pub fn ok(&self) -> bool {
        self.error_code.is_none() && self.error_kind.is_none()
    }
}

/// How a request was made, needed to interpret its exchange.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext {
    /// Task of the run.
    pub task: Task,
    /// Whether a streaming response was requested.
    pub stream: bool,
    /// The sampler's input token count.
    pub input_tokens: Option<u64>,
    /// Open loop: when the request was due and released.
    pub dispatch: Option<Dispatch>,
    /// Closed loop: seconds the worker waited for this request's prompt.
    pub prompt_wait: Option<f64>,
}

/// Open-loop timing of one request, taken by the dispatcher.
#[derive(Debug, Clone, Copy)]
pub struct Dispatch {
    /// When the schedule said to send it.
    pub scheduled: std::time::Instant,
    /// When the dispatcher woke for it.
    pub woke: std::time::Instant,
    /// When the concurrency cap let it go (= `woke` without a cap).
    pub permitted: std::time::Instant,
}

/// Turn a measured exchange into a record; `count_tokens` is the tokenizer,
/// used only when the server reports no usage. `run_start` anchors offsets.
pub fn record_from_exchange(
    ex: &Exchange,
    ctx: RequestContext,
    run_start: std::time::Instant,
    count_tokens: &dyn Fn(&str) -> u64,
) -> RequestRecord {
    let start_offset = ex
        .started
        .map(|s| s.saturating_duration_since(run_start).as_secs_f64());
    let end_offset = start_offset.unwrap_or(0.0) + ex.end_at.as_secs_f64();
    let mut r = RequestRecord {
        ttft: None,
        tpot: None,
        e2e_latency: None,
        output_latency: None,
        output_inference_speed: None,
        num_input_tokens: None,
        num_output_tokens: None,
        total_tokens: None,
        input_throughput: None,
        output_throughput: None,
        audio_throughput: None,
        audio_bytes: None,
        num_images: None,
        streamed: None,
        error_code: None,
        error_message: None,
        error_kind: None,
        server_prompt_tokens: ex.usage.prompt_tokens,
        num_reasoning_tokens: ex.usage.reasoning_tokens,
        output_tokens_source: None,
        plugin: ex.plugin.clone(),
        start_offset,
        excluded: None,
        scheduled_offset: None,
        send_lag: None,
        cap_wait: None,
        prompt_wait: ctx.prompt_wait,
        pacing_error: None,
        ttft_corrected: None,
        e2e_latency_corrected: None,
        end_offset,
        retries: ex.retries,
        inter_chunk: Gaps::default(),
        parse_delays: ex.parse_delays.iter().map(|d| d.as_secs_f64()).collect(),
    };
    let mut lag = None;
    if let Some(d) = ctx.dispatch {
        let since = |a: std::time::Instant, b: std::time::Instant| {
            a.saturating_duration_since(b).as_secs_f64()
        };
        r.scheduled_offset = Some(since(d.scheduled, run_start));
        r.pacing_error = Some(since(d.woke, d.scheduled));
        r.cap_wait = Some(since(d.permitted, d.woke));
        lag = ex.started.map(|s| since(s, d.scheduled));
        r.send_lag = lag;
    }
    if let Some(e) = &ex.error {
        r.error_code = Some(e.code);
        r.error_message = Some(e.message.clone());
        r.error_kind = Some(e.kind.name().to_string());
        return r;
    }
    let e2e = ex.end_at.as_secs_f64();
    r.e2e_latency = Some(e2e);
    r.num_reasoning_tokens.get_or_insert(0);
    r.e2e_latency_corrected = lag.map(|l| l + e2e);
    let input = ctx.input_tokens.or(ex.usage.prompt_tokens);
    r.num_input_tokens = input;

    if ctx.task == crate::plugin::Task::TextToSpeech {
        // The first audio byte is the first token; no output tokens, and
        // output metrics 0 as genai-bench resets them.
        let ttft = ex.first_token_at.map_or(e2e, |t| t.as_secs_f64());
        r.ttft = Some(ttft);
        r.ttft_corrected = lag.map(|l| l + ttft);
        r.num_output_tokens = Some(0);
        r.total_tokens = input;
        r.input_throughput = input.filter(|_| ttft > 0.0).map(|n| n as f64 / ttft);
        r.tpot = Some(0.0);
        r.output_latency = Some(0.0);
        r.output_inference_speed = Some(0.0);
        r.output_throughput = Some(0.0);
        r.audio_bytes = Some(ex.audio_bytes);
        let after_first = e2e - ttft;
        r.audio_throughput = Some(if after_first > 0.0 && ex.audio_bytes > 0 {
            ex.audio_bytes as f64 / after_first
        } else {
            0.0
        });
        return r;
    }
    if !ctx.task.generates_text() {
        // Embeddings, rerank, images: the whole response is the "first
        // token" (genai-bench).
        if ctx.task == crate::plugin::Task::TextToImage {
            r.num_images = Some(ex.images);
        }
        r.ttft = Some(e2e);
        r.ttft_corrected = r.e2e_latency_corrected;
        r.num_output_tokens = Some(0);
        r.total_tokens = input;
        r.input_throughput = input.filter(|_| e2e > 0.0).map(|n| n as f64 / e2e);
        r.tpot = Some(0.0);
        r.output_latency = Some(0.0);
        r.output_inference_speed = Some(0.0);
        r.output_throughput = Some(0.0);
        return r;
    }

    let output = match ex.usage.completion_tokens {
        Some(n) if n > 0 => {
            r.output_tokens_source = Some("usage");
            n
        }
        _ => {
            r.output_tokens_source = Some("tokenizer");
            let mut text = String::with_capacity(ex.reasoning.len() + ex.content.len());
            text.push_str(&ex.reasoning);
            text.push_str(&ex.content);
            count_tokens(&text)
        }
    };
    r.num_output_tokens = Some(output);
    r.total_tokens = Some(input.unwrap_or(0).saturating_add(output));

    if !ctx.stream {
        // The whole answer arrived at once: the client had its first token
        // at the end. genai-bench's models want every figure on a success.
        r.streamed = Some(false);
        r.ttft = Some(e2e);
        r.ttft_corrected = r.e2e_latency_corrected;
        r.input_throughput = input.filter(|_| e2e > 0.0).map(|n| n as f64 / e2e);
        r.output_latency = Some(0.0);
        r.tpot = Some(0.0);
        r.output_inference_speed = Some(0.0);
        r.output_throughput = Some(0.0);
        return r;
    }
    let Some(first) = ex.first_token_at else {
        return r;
    };
    let ttft = first.as_secs_f64();
    r.ttft = Some(ttft);
    r.ttft_corrected = lag.map(|l| l + ttft);
    r.input_throughput = input.filter(|_| ttft > 0.0).map(|n| n as f64 / ttft);
    let out_lat = (e2e - ttft).max(0.0);
    r.output_latency = Some(out_lat);
    if output > 1 {
        if out_lat > 0.0 {
            let tpot = out_lat / (output - 1) as f64;
            r.tpot = Some(tpot);
            r.output_inference_speed = Some(1.0 / tpot);
            r.output_throughput = Some((output - 1) as f64 / out_lat);
        } else {
            r.tpot = Some(0.0);
        }
    }
    // Sized exactly: records live until the run ends, and doubling left
    // up to half of a long answer's gaps as unused capacity.
    let texts = ex.chunks.iter().filter(|c| c.has_text()).count();
    r.inter_chunk = Gaps::with_capacity(texts.saturating_sub(1));
    let mut prev: Option<Duration> = None;
    for c in ex.chunks.iter().filter(|c| c.has_text()) {
        if let Some(p) = prev {
            r.inter_chunk.push(c.at() - p);
        }
        prev = Some(c.at());
    }
    r
}

/// min, max, mean, stddev (population), sum and percentiles of one metric.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StatField {
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub stddev: Option<f64>,
    pub sum: Option<f64>,
    pub p25: Option<f64>,
    pub p50: Option<f64>,
    pub p75: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

impl StatField {
    /// Whether nothing was measured.
    pub fn is_empty(&self) -> bool {
        self.min.is_none()
    }
}

/// Inter-chunk gaps are recorded in an HDR histogram at 1 ns resolution
/// with 3 significant digits (there can be millions of them).
pub const HDR_SCALE: f64 = 1e9;

/// An HDR histogram (1 ns units, 3 significant digits) of `values` in seconds.
pub fn hdr_of(values: &[f64]) -> Histogram<u64> {
    hdr_from(values.iter().copied())
}

/// [`hdr_of`] over values as they come, never collected (a long run's
/// inter-chunk gaps number in the millions).
pub fn hdr_from(values: impl IntoIterator<Item = f64>) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new(3).expect("3 significant digits is valid");
    for v in values.into_iter().filter(|v| v.is_finite()) {
        // `record` grows the auto-resizing histogram; `saturating_record`
        // would clamp to its current range.
        let x = (v.max(0.0) * HDR_SCALE).round() as u64;
        if h.record(x).is_err() {
            h.saturating_record(x);
        }
    }
    h
}

/// numpy's default (linear) percentile of sorted values, as genai-bench.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = p * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

/// Summarise values exactly: min, max, mean, population stddev, sum and
/// linearly interpolated percentiles (numpy's default, as genai-bench).
/// Empty input gives all `None`.
pub fn stat_field(values: &[f64]) -> StatField {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    summarise(&sorted, |p| percentile(&sorted, p))
}

/// Summarise a large distribution with an HDR histogram (relative error
/// below 0.1% on percentiles; min, max, mean, stddev and sum exact).
pub fn stat_field_hdr(values: &[f64]) -> StatField {
    stat_field_hdr_from(|| values.iter().copied())
}

/// [`stat_field_hdr`] over the values `values()` yields, read in a few
/// passes and never collected: the run's inter-chunk gaps (100 a request,
/// millions a run) were copied twice at the end of a run, the largest
/// allocation of all (26 + 17 MB at 20,000 requests).
pub fn stat_field_hdr_from<I: Iterator<Item = f64>>(values: impl Fn() -> I) -> StatField {
    let finite = || values().filter(|v| v.is_finite());
    let h = hdr_from(finite());
    summarise_from(finite, |p| h.value_at_quantile(p) as f64 / HDR_SCALE)
}

/// Exact moments of `values` plus percentiles from `quantile`, clamped to
/// the exact extremes (HDR buckets may overshoot them slightly).
fn summarise(values: &[f64], quantile: impl Fn(f64) -> f64) -> StatField {
    summarise_from(|| values.iter().copied(), quantile)
}

/// [`summarise`] over the values `values()` yields (read once per moment,
/// in the same order, so the figures are those of a slice of them).
fn summarise_from<I: Iterator<Item = f64>>(
    values: impl Fn() -> I,
    quantile: impl Fn(f64) -> f64,
) -> StatField {
    let count = values().count();
    if count == 0 {
        return StatField::default();
    }
    let n = count as f64;
    let sum: f64 = values().sum();
    let mean = sum / n;
    let var = values().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let min = values().fold(f64::INFINITY, f64::min);
    let max = values().fold(f64::NEG_INFINITY, f64::max);
    let q = |p: f64| Some(quantile(p).clamp(min, max));
    StatField {
        min: Some(min),
        max: Some(max),
        mean: Some(mean),
        stddev: Some(var.sqrt()),
        sum: Some(sum),
        p25: q(0.25),
        p50: q(0.50),
        p75: q(0.75),
        p90: q(0.90),
        p95: q(0.95),
        p99: q(0.99),
    }
}

/// Every metric's summary, named as in genai-bench's `stats`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    pub ttft: StatField,
    pub tpot: StatField,
    pub e2e_latency: StatField,
    pub output_latency: StatField,
    pub output_inference_speed: StatField,
    pub num_input_tokens: StatField,
    pub num_output_tokens: StatField,
    pub total_tokens: StatField,
    pub input_throughput: StatField,
    pub output_throughput: StatField,
    /// Reasoning tokens per successful request (genai-bench's field).
    #[serde(default)]
    pub num_reasoning_tokens: StatField,
    /// Text-to-speech: audio bytes per second after the first byte (empty
    /// for other tasks; always present, as genai-bench's `MetricStats` wants).
    #[serde(default)]
    pub audio_throughput: StatField,
    /// Gaps between consecutive text-bearing chunks, over all requests.
    pub inter_chunk_latency: StatField,
    /// Open loop: actual minus scheduled send time.
    #[serde(default, skip_serializing_if = "StatField::is_empty")]
    pub send_lag: StatField,
    /// Open loop: TTFT from the scheduled send time.
    #[serde(default, skip_serializing_if = "StatField::is_empty")]
    pub ttft_corrected: StatField,
    /// Open loop: end-to-end latency from the scheduled send time.
    #[serde(default, skip_serializing_if = "StatField::is_empty")]
    pub e2e_latency_corrected: StatField,
}

/// A run's aggregate, with genai-bench's `AggregatedMetrics` field names
/// first and this tool's additions after them.
#[derive(Debug, Clone, Serialize)]
pub struct AggregatedMetrics {
    pub scenario: String,
    /// Concurrency (an integer, as genai-bench's model wants it), or the
    /// requested rate of an open-loop run.
    #[serde(serialize_with = "int_if_whole")]
    pub num_concurrency: f64,
    pub batch_size: u32,
    pub iteration_type: String,
    /// Seconds over which throughputs are computed: the measurement window
    /// (warmup and cooldown excluded).
    pub run_duration: f64,
    pub mean_output_throughput_tokens_per_s: f64,
    pub mean_input_throughput_tokens_per_s: f64,
    pub mean_total_tokens_throughput_tokens_per_s: f64,
    pub mean_total_chars_per_hour: f64,
    pub requests_per_second: f64,
    pub error_codes_frequency: BTreeMap<i32, u64>,
    pub error_rate: f64,
    pub num_error_requests: u64,
    pub num_completed_requests: u64,
    pub num_requests: u64,
    pub total_arrivals: Option<u64>,
    pub arrival_requests_per_second: Option<f64>,
    pub stats: Stats,
    /// Requests completed per minute in the window.
    pub requests_per_minute: f64,
    /// Typed error causes and their counts.
    pub error_kinds_frequency: BTreeMap<String, u64>,
    /// Whether TTFT (and so TPOT) could be measured (streaming runs).
    pub ttft_measured: bool,
    /// Requests left out as warmup / cooldown.
    pub num_warmup_requests: u64,
    pub num_cooldown_requests: u64,
    /// Requests cancelled by an interruption (not counted as errors).
    pub num_cancelled_requests: u64,
    /// Wall time of the whole run, seconds.
    pub run_wall_duration: f64,
    /// Whether the run was cut short by Ctrl-C.
    pub interrupted: bool,
    /// Output tokens that came from the server's usage vs the tokenizer.
    pub num_output_tokens_from_usage: u64,
    pub num_output_tokens_from_tokenizer: u64,
    /// Open loop: the rate asked for (this shard's share when sharded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_qps: Option<f64>,
    /// Open loop: the rate requests were actually sent at, `(n - 1) /
    /// (last send - first send)` over every request sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub achieved_qps: Option<f64>,
    /// Open loop: arrival distribution, burstiness and concurrency cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrivals: Option<OpenLoop>,
    /// Requests meeting every `--slo`, when SLOs were given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goodput: Option<crate::load::Goodput>,
    /// Whether the client kept up, and what says so.
    pub validity: crate::validity::Validity,
    /// The most frequent failures (kind, code and message), most frequent
    /// first: what to show the user when requests fail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_errors: Vec<TopError>,
    /// Wall-clock time of the run start, seconds since the Unix epoch
    /// (aligns shards in `merge`).
    pub run_start_unix_s: f64,
    /// `CLOCK_MONOTONIC` at the run start (s), to line records up with a
    /// server's own monotonic log on the same machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_start_monotonic_s: Option<f64>,
    /// Start of the stats window, seconds from the run start.
    pub window_start_offset: f64,
    /// This process's part of a sharded load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::load::Shard>,
}

/// How an open-loop run sent its requests.
#[derive(Debug, Clone, Serialize)]
pub struct OpenLoop {
    /// Requests per second asked for.
    pub requested_qps: f64,
    /// Inter-arrival distribution.
    pub distribution: crate::load::Distribution,
    /// Gamma shape (1 = Poisson-like).
    pub burstiness: f64,
    /// Most requests in flight, if capped.
    pub max_concurrency: Option<u32>,
    /// Seed of the schedule.
    pub seed: u64,
}

/// How a run was set up, for aggregation.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub scenario: String,
    pub num_concurrency: f64,
    pub batch_size: u32,
    pub iteration_type: String,
    pub warmup_ratio: f64,
    pub cooldown_ratio: f64,
    pub stream: bool,
    pub wall_duration: f64,
    pub interrupted: bool,
    /// Characters per token of the corpus with the model's tokenizer.
    pub character_token_ratio: f64,
    /// Open loop: how requests were sent.
    pub open_loop: Option<OpenLoop>,
    /// `--slo` objectives (empty: no goodput).
    pub slos: Vec<crate::load::Slo>,
    /// `--slo-attainment`.
    pub slo_attainment: f64,
    /// Validity thresholds.
    pub thresholds: crate::validity::Thresholds,
    /// Client CPU use over the run, in cores (process CPU time / wall).
    pub client_cpu_cores: Option<f64>,
    /// Every process's CPU time over the run's wall time, in cores.
    pub machine_cpu_cores: Option<f64>,
    /// Wall-clock time of the run start, seconds since the Unix epoch.
    pub run_start_unix_s: f64,
    /// `CLOCK_MONOTONIC` at the run start, seconds.
    pub run_start_monotonic_s: Option<f64>,
    /// This process's part of a sharded load.
    pub shard: Option<crate::load::Shard>,
}

/// One kind of failure of a run and how often it happened.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopError {
    /// `error_kind` of the records.
    pub kind: String,
    /// `error_code` of the records.
    pub code: i32,
    /// `error_message` of the records (the server's own words when it sent
    /// any), cut to 300 characters.
    pub message: String,
    /// How many records failed this way.
    pub count: u64,
}

impl TopError {
    /// One line: `403 http ×4: {"detail":"bad key"}`.
    pub fn summary(&self) -> String {
        format!(
            "{} {} ×{}: {}",
            self.code, self.kind, self.count, self.message
        )
    }
}

/// How many distinct failures a run keeps in `top_errors`.
const TOP_ERRORS: usize = 5;

/// The most frequent (kind, code, message) of failed records.
fn top_errors<'a>(records: impl Iterator<Item = &'a RequestRecord>) -> Vec<TopError> {
    let mut by: BTreeMap<(String, i32, String), u64> = BTreeMap::new();
    for r in records.filter(|r| !r.ok()) {
        let msg: String = r
            .error_message
            .as_deref()
            .unwrap_or("")
            .chars()
            .take(300)
            .collect();
        *by.entry((
            r.error_kind.clone().unwrap_or_else(|| "unknown".into()),
            r.error_code.unwrap_or(500),
            msg,
        ))
        .or_insert(0) += 1;
    }
    let mut v: Vec<TopError> = by
        .into_iter()
        .map(|((kind, code, message), count)| TopError {
            kind,
            code,
            message,
            count,
        })
        .collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.count));
    v.truncate(TOP_ERRORS);
    v
}

fn is_cancelled(r: &RequestRecord) -> bool {
    r.error_kind.as_deref() == Some("cancelled")
}

/// Mark warmup/cooldown records (count-based over completion order, as
/// genai-bench) and aggregate the rest. `records` must be in completion order.
pub fn aggregate(records: &mut [RequestRecord], info: &RunInfo) -> AggregatedMetrics {
    let n = records.iter().filter(|r| !is_cancelled(r)).count();
    let warm = (n as f64 * info.warmup_ratio).floor() as usize;
    let cool = (n as f64 * info.cooldown_ratio).floor() as usize;
    let mut idx = 0usize;
    let mut window_start = 0.0f64;
    for r in records.iter_mut() {
        if is_cancelled(r) {
            continue;
        }
        if idx < warm {
            r.excluded = Some("warmup");
            window_start = window_start.max(r.end_offset);
        } else if idx >= n - cool {
            r.excluded = Some("cooldown");
        }
        idx += 1;
    }
    summarize(records, window_start, None, info)
}

/// Aggregate records whose `excluded` marks are already set, over the
/// window from `window_start` to `window_end` (default: the last kept
/// completion). `merge` calls this on the union of several shards' records.
pub fn summarize(
    records: &[RequestRecord],
    window_start: f64,
    window_end: Option<f64>,
    info: &RunInfo,
) -> AggregatedMetrics {
    let cancelled = is_cancelled;
    let kept: Vec<&RequestRecord> = records
        .iter()
        .filter(|r| r.excluded.is_none() && !cancelled(r))
        .collect();
    let window_end = window_end.unwrap_or_else(|| {
        kept.iter()
            .map(|r| r.end_offset)
            .fold(window_start, f64::max)
    });
    let duration = (window_end - window_start).max(0.0);
    let warm = records
        .iter()
        .filter(|r| r.excluded == Some("warmup"))
        .count();
    let cool = records
        .iter()
        .filter(|r| r.excluded == Some("cooldown"))
        .count();

    let ok: Vec<&&RequestRecord> = kept.iter().filter(|r| r.ok()).collect();
    let mut error_codes = BTreeMap::new();
    let mut error_kinds = BTreeMap::new();
    for r in kept.iter().filter(|r| !r.ok()) {
        *error_codes.entry(r.error_code.unwrap_or(500)).or_insert(0) += 1;
        *error_kinds
            .entry(r.error_kind.clone().unwrap_or_else(|| "unknown".into()))
            .or_insert(0) += 1;
    }
    let top_errors = top_errors(kept.iter().copied());
    let vals = |f: fn(&RequestRecord) -> Option<f64>| -> Vec<f64> {
        ok.iter().filter_map(|r| f(r)).collect()
    };
    // First-token and output-phase figures of answers that were streamed
    // (a non-streamed answer's are placeholders: see `streamed`).
    let streamed = |f: fn(&RequestRecord) -> Option<f64>| -> Vec<f64> {
        ok.iter()
            .filter(|r| r.streamed != Some(false))
            .filter_map(|r| f(r))
            .collect()
    };
    let ints = |f: fn(&RequestRecord) -> Option<u64>| -> Vec<f64> {
        ok.iter().filter_map(|r| f(r)).map(|v| v as f64).collect()
    };
    let stats = Stats {
        ttft: stat_field(&streamed(|r| r.ttft)),
        tpot: stat_field(&streamed(|r| r.tpot)),
        e2e_latency: stat_field(&vals(|r| r.e2e_latency)),
        output_latency: stat_field(&streamed(|r| r.output_latency)),
        output_inference_speed: stat_field(&streamed(|r| r.output_inference_speed)),
        num_input_tokens: stat_field(&ints(|r| r.num_input_tokens)),
        num_output_tokens: stat_field(&ints(|r| r.num_output_tokens)),
        total_tokens: stat_field(&ints(|r| r.total_tokens)),
        input_throughput: stat_field(&streamed(|r| r.input_throughput)),
        output_throughput: stat_field(&streamed(|r| r.output_throughput)),
        num_reasoning_tokens: stat_field(&ints(|r| r.num_reasoning_tokens)),
        audio_throughput: stat_field(&vals(|r| r.audio_throughput)),
        inter_chunk_latency: stat_field_hdr_from(|| ok.iter().flat_map(|r| r.inter_chunk.iter())),
        send_lag: stat_field(&kept.iter().filter_map(|r| r.send_lag).collect::<Vec<_>>()),
        ttft_corrected: stat_field(&streamed(|r| r.ttft_corrected)),
        e2e_latency_corrected: stat_field(&vals(|r| r.e2e_latency_corrected)),
    };
    let per_s = |sum: Option<f64>| {
        if duration > 0.0 {
            sum.unwrap_or(0.0) / duration
        } else {
            0.0
        }
    };
    let out_tp = per_s(stats.num_output_tokens.sum);
    let in_tp = per_s(stats.num_input_tokens.sum);
    let total_tp = per_s(stats.total_tokens.sum);
    let completed = ok.len() as u64;
    let errors = (kept.len() - ok.len()) as u64;
    let num_requests = completed + errors;
    let rps = per_s(Some(completed as f64));
    AggregatedMetrics {
        scenario: info.scenario.clone(),
        num_concurrency: info.num_concurrency,
        batch_size: info.batch_size,
        iteration_type: info.iteration_type.clone(),
        run_duration: duration,
        mean_output_throughput_tokens_per_s: out_tp,
        mean_input_throughput_tokens_per_s: in_tp,
        mean_total_tokens_throughput_tokens_per_s: total_tp,
        mean_total_chars_per_hour: total_tp * info.character_token_ratio * 3600.0,
        requests_per_second: rps,
        error_codes_frequency: error_codes,
        error_rate: if num_requests > 0 {
            errors as f64 / num_requests as f64
        } else {
            0.0
        },
        num_error_requests: errors,
        num_completed_requests: completed,
        num_requests,
        stats,
        requests_per_minute: rps * 60.0,
        error_kinds_frequency: error_kinds,
        ttft_measured: info.stream,
        num_warmup_requests: warm as u64,
        num_cooldown_requests: cool as u64,
        num_cancelled_requests: records.iter().filter(|r| cancelled(r)).count() as u64,
        run_wall_duration: info.wall_duration,
        interrupted: info.interrupted,
        num_output_tokens_from_usage: ok
            .iter()
            .filter(|r| r.output_tokens_source == Some("usage"))
            .count() as u64,
        num_output_tokens_from_tokenizer: ok
            .iter()
            .filter(|r| r.output_tokens_source == Some("tokenizer"))
            .count() as u64,
        requested_qps: info.open_loop.as_ref().map(|o| o.requested_qps),
        achieved_qps: info.open_loop.as_ref().and_then(|_| achieved_rate(records)),
        arrivals: info.open_loop.clone(),
        goodput: (!info.slos.is_empty())
            .then(|| crate::load::goodput(&kept, &info.slos, duration, info.slo_attainment)),
        validity: {
            let mut v = crate::validity::judge(records, info);
            let mut e2e = vals(|r| r.e2e_latency);
            e2e.sort_by(f64::total_cmp);
            let top = top_errors.first().map(|e| e.summary());
            crate::validity::judge_outcome(
                &mut v,
                crate::validity::Outcome {
                    completed,
                    failed: errors,
                    window_s: duration,
                    median_e2e_s: e2e.get(e2e.len() / 2).copied(),
                },
                top.as_deref(),
            );
            v
        },
        top_errors,
        run_start_unix_s: info.run_start_unix_s,
        run_start_monotonic_s: info.run_start_monotonic_s,
        window_start_offset: window_start,
        shard: info.shard,
        total_arrivals: info
            .open_loop
            .as_ref()
            .map(|_| records.iter().filter(|r| r.send_lag.is_some()).count() as u64),
        arrival_requests_per_second: info.open_loop.as_ref().map(|_| {
            let n = records.iter().filter(|r| r.send_lag.is_some()).count() as f64;
            if info.wall_duration > 0.0 {
                n / info.wall_duration
            } else {
                0.0
            }
        }),
    }
}

/// Open loop: the drawn schedule's rate (req/s) over the requests sent,
/// `(n - 1) / (last due - first due)`.
pub fn scheduled_rate(records: &[RequestRecord]) -> Option<f64> {
    // Scheduled send = actual send - send lag.
    let due: Vec<f64> = records
        .iter()
        .filter_map(|r| Some(r.start_offset? - r.send_lag?))
        .collect();
    let first = due.iter().copied().fold(f64::INFINITY, f64::min);
    let last = due.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (due.len() >= 2 && last > first).then(|| (due.len() - 1) as f64 / (last - first))
}

/// Open loop: achieved send rate (req/s) over the requests actually sent,
/// `(n - 1) / (last send - first send)`.
pub fn achieved_rate(records: &[RequestRecord]) -> Option<f64> {
    let sends: Vec<f64> = records
        .iter()
        .filter(|r| r.send_lag.is_some())
        .filter_map(|r| r.start_offset)
        .collect();
    let first = sends.iter().copied().fold(f64::INFINITY, f64::min);
    let last = sends.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (sends.len() >= 2 && last > first).then(|| (sends.len() - 1) as f64 / (last - first))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(end: f64, ok: bool, out: u64) -> RequestRecord {
        RequestRecord {
            ttft: ok.then_some(0.1),
            tpot: ok.then_some(0.01),
            e2e_latency: ok.then_some(1.0),
            output_latency: ok.then_some(0.9),
            output_inference_speed: ok.then_some(100.0),
            num_input_tokens: ok.then_some(10),
            num_output_tokens: ok.then_some(out),
            total_tokens: ok.then_some(10 + out),
            input_throughput: ok.then_some(100.0),
            output_throughput: ok.then_some(100.0),
            audio_throughput: None,
            audio_bytes: None,
            num_images: None,
            streamed: None,
            error_code: (!ok).then_some(503),
            error_message: None,
            error_kind: (!ok).then(|| "http".to_string()),
            server_prompt_tokens: None,
            num_reasoning_tokens: None,
            output_tokens_source: ok.then_some("usage"),
            plugin: "p 1".into(),
            start_offset: Some(end - 1.0),
            excluded: None,
            scheduled_offset: None,
            send_lag: None,
            cap_wait: None,
            prompt_wait: None,
            pacing_error: None,
            ttft_corrected: None,
            e2e_latency_corrected: None,
            end_offset: end,
            retries: 0,
            inter_chunk: Gaps::from_secs(&[0.01; 3]),
            parse_delays: Vec::new(),
        }
    }

    fn info(w: f64, c: f64) -> RunInfo {
        RunInfo {
            scenario: "D(10,10)".into(),
            num_concurrency: 1.0,
            batch_size: 1,
            iteration_type: "num_concurrency".into(),
            warmup_ratio: w,
            cooldown_ratio: c,
            stream: true,
            wall_duration: 10.0,
            interrupted: false,
            character_token_ratio: 4.0,
            open_loop: None,
            slos: Vec::new(),
            slo_attainment: 0.99,
            thresholds: Default::default(),
            client_cpu_cores: None,
            machine_cpu_cores: None,
            run_start_unix_s: 0.0,
            run_start_monotonic_s: None,
            shard: None,
        }
    }

    #[test]
    fn warmup_and_cooldown_leave_stats_and_duration() {
        // 10 requests completing at t=1..10, the 5th failing.
        let mut rs: Vec<_> = (1..=10).map(|i| rec(i as f64, i != 5, 11)).collect();
        let a = aggregate(&mut rs, &info(0.2, 0.1));
        assert_eq!(a.num_warmup_requests, 2);
        assert_eq!(a.num_cooldown_requests, 1);
        assert_eq!(rs[0].excluded, Some("warmup"));
        assert_eq!(rs[1].excluded, Some("warmup"));
        assert_eq!(rs[9].excluded, Some("cooldown"));
        // Window: end of warmup (t=2) to last kept completion (t=9).
        assert!((a.run_duration - 7.0).abs() < 1e-9, "{}", a.run_duration);
        assert_eq!(a.num_requests, 7);
        assert_eq!(a.num_error_requests, 1);
        assert_eq!(a.num_completed_requests, 6);
        assert!((a.error_rate - 1.0 / 7.0).abs() < 1e-12);
        assert_eq!(a.error_codes_frequency.get(&503), Some(&1));
        assert!((a.mean_output_throughput_tokens_per_s - 66.0 / 7.0).abs() < 1e-9);
        assert!((a.requests_per_second - 6.0 / 7.0).abs() < 1e-9);
        assert_eq!(a.stats.num_output_tokens.sum, Some(66.0));
    }

    #[test]
    fn all_failed_run_is_reported_not_a_crash() {
        let mut rs: Vec<_> = (1..=4).map(|i| rec(i as f64, false, 0)).collect();
        let a = aggregate(&mut rs, &info(0.0, 0.0));
        assert_eq!(a.num_error_requests, 4);
        assert_eq!(a.error_rate, 1.0);
        assert!(a.stats.ttft.mean.is_none());
        assert_eq!(a.mean_output_throughput_tokens_per_s, 0.0);
    }

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let s = stat_field(&[1.0, 2.0]);
        assert_eq!(s.p50, Some(1.5));
        let s = stat_field(&[4.0, 1.0, 3.0, 2.0]);
        assert_eq!(s.p25, Some(1.75));
        assert_eq!(s.p75, Some(3.25));
        assert!((s.p99.unwrap() - 3.97).abs() < 1e-12);
        assert!((s.stddev.unwrap() - 1.25f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn gaps_take_four_bytes_and_give_back_exactly_the_durations_seconds() {
        let ds = [
            Duration::from_millis(5),
            Duration::ZERO,
            Duration::from_nanos(u64::from(u32::MAX) - 1),
            // The sentinel itself and beyond go on the side, in order.
            Duration::from_nanos(u64::from(u32::MAX)),
            Duration::from_nanos(1),
            Duration::from_secs(3600) + Duration::from_nanos(7),
            Duration::from_micros(4_999),
        ];
        let mut g = Gaps::with_capacity(ds.len());
        for d in ds {
            g.push(d);
        }
        assert_eq!(g.len(), ds.len());
        assert_eq!(g.short.len() * 4 + g.long.len() * 8, 7 * 4 + 2 * 8);
        let want: Vec<u64> = ds.iter().map(|d| d.as_secs_f64().to_bits()).collect();
        let got: Vec<u64> = g.iter().map(f64::to_bits).collect();
        assert_eq!(got, want);
        assert!(Gaps::default().is_empty());
    }

    #[test]
    fn gaps_summarised_where_they_are_equal_the_collected_summary_bit_for_bit() {
        // Three requests' gaps, uneven, one non-finite (skipped by both).
        let parts: Vec<Vec<f64>> = vec![
            (1..=97)
                .map(|i| 0.005 + (i as f64).sin().abs() * 1e-3)
                .collect(),
            vec![],
            vec![0.020_000_1, f64::NAN, 1.5, 0.000_003],
        ];
        let flat: Vec<f64> = parts.iter().flatten().copied().collect();
        let collected = stat_field_hdr(&flat);
        let streamed = stat_field_hdr_from(|| parts.iter().flat_map(|p| p.iter().copied()));
        assert_eq!(streamed, collected);
        assert_eq!(
            streamed.sum.map(f64::to_bits),
            collected.sum.map(f64::to_bits)
        );
        assert_eq!(
            streamed.stddev.map(f64::to_bits),
            collected.stddev.map(f64::to_bits)
        );
        assert_eq!(streamed.max, Some(1.5));
        let h = hdr_from(flat.iter().copied());
        assert_eq!(h, hdr_of(&flat));
        assert_eq!(h.len(), 100);
        assert_eq!(stat_field_hdr_from(std::iter::empty), StatField::default());
    }

    #[test]
    fn hdr_summary_matches_exact_values() {
        let v: Vec<f64> = (1..=1000).map(|i| i as f64 / 1000.0).collect();
        let s = stat_field_hdr(&v);
        assert_eq!(s.min, Some(0.001));
        assert!((s.p50.unwrap() - 0.5).abs() / 0.5 < 2e-3);
        assert!((s.p99.unwrap() - 0.99).abs() / 0.99 < 2e-3);
    }

    #[test]
    fn stat_field_matches_exact_values() {
        let v: Vec<f64> = (1..=1000).map(|i| i as f64 / 1000.0).collect();
        let s = stat_field(&v);
        assert_eq!(s.min, Some(0.001));
        assert_eq!(s.max, Some(1.0));
        assert!((s.mean.unwrap() - 0.5005).abs() < 1e-12);
        let p50 = s.p50.unwrap();
        assert!((p50 - 0.5).abs() / 0.5 < 2e-3, "{p50}");
        let p99 = s.p99.unwrap();
        assert!((p99 - 0.99).abs() / 0.99 < 2e-3, "{p99}");
        assert!(stat_field(&[]).mean.is_none());
    }
}
