//! `genai-bench plugin check`: a conformance kit for plugin authors.
//!
//! It loads a plugin in the same runtime and under the same limits as a
//! benchmark, then checks that:
//! 1. its metadata is sane (name syntax, semver version, tasks, auth,
//!    backend names unique);
//! 2. it builds a request the host's policy accepts for every declared task,
//!    streaming and not, for its name and every extra backend name;
//! 3. every canned response fixture gives the expected events, and the same
//!    events whether the body arrives whole, split at any byte boundary, in
//!    random pieces or one byte at a time (adjacent content events merged);
//! 4. no call hits a limit, reporting time (median, max) and peak linear
//!    memory per kind of call.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::fixture::{self, Fixture};
use crate::plugin::{
    BenchRequest, LoadedPlugin, PluginError, PluginInfo, PluginLimits, PluginRuntime,
    RuntimeOptions, Task,
};

/// Arguments of `plugin check`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// A .wasm component, or a built-in backend name.
    pub plugin: String,
    /// Folder of canned response fixtures (`*.json`); default: `fixtures/`
    /// beside the .wasm, or `plugins/<name>/fixtures` for a built-in.
    #[arg(long, value_name = "DIR")]
    pub fixtures: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Random multi-way splits per fixture, on top of every two-way split.
    #[arg(long, default_value_t = 20)]
    pub random_splits: u32,
    /// Model name the sample requests carry: `NAME` for every task, or
    /// `TASK=NAME` for one (repeatable), for plugins whose body depends on
    /// the model, e.g. `--model image-text-to-text=anthropic.claude-3-haiku-20240307-v1:0`
    /// [default: check-model].
    #[arg(long, value_name = "[TASK=]NAME")]
    pub model: Vec<String>,
    /// Params every sample request carries, as `benchmark` takes them, for
    /// plugins that need one (OCI's `compartmentId`); validate-params must
    /// accept them [default: {}].
    #[arg(long, value_name = "JSON")]
    pub additional_request_params: Option<String>,
    /// The limits to check under (as `benchmark` applies them).
    #[command(flatten)]
    pub limits: crate::plugin::limits::LimitArgs,
}

/// Time and memory of one kind of call.
#[derive(Debug, Default, Clone)]
struct CallStats {
    times: Vec<Duration>,
    peak_memory: usize,
}

impl CallStats {
    fn add(&mut self, t: Duration, memory: usize) {
        self.times.push(t);
        self.peak_memory = self.peak_memory.max(memory);
    }

    fn median(&self) -> Duration {
        let mut t = self.times.clone();
        t.sort();
        t.get(t.len() / 2).copied().unwrap_or_default()
    }

    fn max(&self) -> Duration {
        self.times.iter().copied().max().unwrap_or_default()
    }
}

/// What `plugin check` found.
#[derive(Debug, Default)]
pub struct Report {
    /// Plugin label and contract, for the header.
    pub plugin: String,
    /// What was checked and passed, one line each.
    pub passed: Vec<String>,
    /// What failed, one line each.
    pub failures: Vec<String>,
    /// Notes that are not failures (e.g. no fixtures).
    pub warnings: Vec<String>,
    calls: BTreeMap<&'static str, CallStats>,
    limits: PluginLimits,
}

impl Report {
    fn fail(&mut self, msg: impl Into<String>) {
        self.failures.push(msg.into());
    }

    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// The report as text for the terminal.
    pub fn render(&self) -> String {
        let mut s = format!("plugin check: {}\n", self.plugin);
        for p in &self.passed {
            s.push_str(&format!("  ok    {p}\n"));
        }
        for w in &self.warnings {
            s.push_str(&format!("  warn  {w}\n"));
        }
        s.push_str(&format!(
            "calls (limits: {} ms CPU per call, {} MiB memory per instance):\n",
            self.limits.call_timeout.as_millis(),
            self.limits.memory_bytes >> 20
        ));
        for (name, c) in &self.calls {
            s.push_str(&format!(
                "  {name:<22} {:>6} calls  median {:>8.3} ms  max {:>8.3} ms  peak memory {:>7.2} MiB\n",
                c.times.len(),
                c.median().as_secs_f64() * 1e3,
                c.max().as_secs_f64() * 1e3,
                c.peak_memory as f64 / (1 << 20) as f64
            ));
        }
        if self.failures.is_empty() {
            s.push_str("PASSED\n");
        } else {
            s.push_str(&format!("FAILED ({} problems):\n", self.failures.len()));
            for f in &self.failures {
                s.push_str(&format!("  - {f}\n"));
            }
        }
        s
    }

    /// The report as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "plugin": self.plugin,
            "ok": self.ok(),
            "passed": self.passed,
            "warnings": self.warnings,
            "failures": self.failures,
            "calls": self.calls.iter().map(|(k, c)| (k.to_string(), json!({
                "count": c.times.len(),
                "median_ms": c.median().as_secs_f64() * 1e3,
                "max_ms": c.max().as_secs_f64() * 1e3,
                "peak_memory_bytes": c.peak_memory,
            }))).collect::<serde_json::Map<_, _>>(),
        })
    }
}

/// Runs every check; `Err` only when the plugin cannot be loaded at all or
/// a fixture file is unreadable.
pub fn run(args: &CheckArgs) -> anyhow::Result<Report> {
    let limits = args.limits.to_limits();
    let runtime = PluginRuntime::new(RuntimeOptions {
        max_instances: 16,
        limits,
        ..RuntimeOptions::default()
    })?;
    let mut report = Report {
        limits,
        ..Report::default()
    };
    let plugin = match runtime.load_named_or_path(&args.plugin) {
        Ok(p) => p,
        Err(e) => {
            report.plugin = args.plugin.clone();
            report.fail(format!("the plugin does not load: {e:#}"));
            return Ok(report);
        }
    };
    report.plugin = format!(
        "{} (contract {}, {})",
        plugin.label(),
        plugin.contract(),
        plugin.origin()
    );
    report.passed.push(format!(
        "loads: contract {}, {} ms",
        plugin.contract(),
        plugin.load_time().as_millis()
    ));
    check_metadata(plugin.info(), &mut report);

    let fixtures_dir = args
        .fixtures
        .clone()
        .or_else(|| default_fixtures(&args.plugin, &plugin.info().name));
    let fixtures = match &fixtures_dir {
        Some(dir) => fixture::load_dir(dir)?,
        None => Vec::new(),
    };
    if fixtures.is_empty() {
        report.warnings.push(match &fixtures_dir {
            Some(d) => format!("no fixtures in {}: responses were not checked", d.display()),
            None => "no fixtures folder (pass --fixtures DIR): responses were not checked".into(),
        });
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let extra = match args
        .additional_request_params
        .as_deref()
        .map(serde_json::from_str::<Value>)
    {
        None => serde_json::Map::new(),
        Some(Ok(Value::Object(m))) => m,
        Some(_) => anyhow::bail!(
            "--additional-request-params must be a JSON object, e.g. \
             '{{\"compartmentId\": \"ocid1.compartment.oc1..x\"}}'"
        ),
    };
    rt.block_on(async {
        check_requests(&plugin, &args.model, &extra, &mut report).await;
        for f in &fixtures {
            check_fixture(&plugin, f, args.random_splits, &mut report).await;
        }
    });
    Ok(report)
}

fn default_fixtures(plugin: &str, name: &str) -> Option<PathBuf> {
    let path = Path::new(plugin);
    let candidates = if path.extension().is_some_and(|x| x == "wasm") {
        vec![path.parent().unwrap_or(Path::new(".")).join("fixtures")]
    } else {
        vec![Path::new("plugins").join(name).join("fixtures")]
    };
    candidates.into_iter().find(|d| d.is_dir())
}

fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// `MAJOR.MINOR.PATCH[-pre][+build]`, numbers without leading zeros.
fn semver_ok(v: &str) -> bool {
    let (rest, build) = match v.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (v, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let ident_ok = |s: &str| {
        s.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    };
    let nums: Vec<&str> = core.split('.').collect();
    nums.len() == 3
        && nums.iter().all(|n| {
            !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
                && (*n == "0" || !n.starts_with('0'))
        })
        && pre.is_none_or(ident_ok)
        && build.is_none_or(ident_ok)
}

fn check_metadata(info: &PluginInfo, report: &mut Report) {
    let before = report.failures.len();
    if !name_ok(&info.name) {
        report.fail(format!(
            "name {:?}: use 1-64 characters of a-z, 0-9, '-' or '_'",
            info.name
        ));
    }
    if !semver_ok(&info.version) {
        report.fail(format!(
            "version {:?} is not a semantic version such as 1.2.3",
            info.version
        ));
    }
    // The host shows descriptions neutralised (`\n`, `\u{1b}`, ...); a
    // description that needed it is a defect to fix.
    let neutralised = ["\\u{", "\\n", "\\r", "\\t"]
        .iter()
        .any(|e| info.description.contains(e));
    if info.description.trim().is_empty() || neutralised {
        report.fail(
            "description must be one non-empty line of printable text (no control characters, escape sequences or bidi marks)",
        );
    }
    if info.tasks.is_empty() {
        report.fail("no task declared: list at least one in `tasks`");
    }
    let mut tasks = info.tasks.clone();
    tasks.sort_by_key(|t| t.as_str());
    tasks.dedup();
    if tasks.len() != info.tasks.len() {
        report.fail("a task is listed twice in `tasks`");
    }
    if let Some(crate::plugin::AuthScheme::Header(auth)) = &info.auth {
        if auth.prefix.contains(['\r', '\n']) || auth.prefix.len() > 64 {
            report.fail("auth prefix must be one short line, e.g. `Bearer `");
        }
        if !auth.prefix.is_empty() && !auth.prefix.ends_with(' ') && !auth.prefix.ends_with('=') {
            report.warnings.push(format!(
                "auth prefix {:?} does not end with a space",
                auth.prefix
            ));
        }
    }
    let mut seen = vec![info.name.clone()];
    for b in &info.backends {
        if !name_ok(b) {
            report.fail(format!(
                "backend name {b:?}: use 1-64 characters of a-z, 0-9, '-' or '_'"
            ));
        }
        if seen.contains(b) {
            report.fail(format!(
                "backend name {b:?} is listed twice (or repeats the plugin's name)"
            ));
        }
        seen.push(b.clone());
    }
    if report.failures.len() == before {
        report.passed.push(format!(
            "metadata: {} {}, tasks {}, auth {}, backends [{}]",
            info.name,
            info.version,
            info.tasks
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            info.auth
                .as_ref()
                .map(|a| format!("'{}'", a.describe()))
                .unwrap_or_else(|| "none".into()),
            info.backends.join(", ")
        ));
    }
}

/// A request as a benchmark of `task` would send it.
/// The model name `--model` gives `task`, else `check-model`.
fn model_for(models: &[String], task: Task) -> String {
    let mut any = None;
    for m in models {
        match m.split_once('=') {
            Some((t, name)) if t.eq_ignore_ascii_case(task.as_str()) => return name.to_string(),
            Some((t, _)) if t.parse::<Task>().is_ok() => {}
            _ => any = Some(m.clone()),
        }
    }
    any.unwrap_or_else(|| "check-model".to_string())
}

fn sample_request(task: Task, stream: bool, backend: &str, model: &str) -> BenchRequest {
    let mut r = BenchRequest::text(model, "Write a haiku about benchmarks.", Some(16), stream);
    r.task = task;
    r.backend = backend.to_string();
    // What a benchmark's flags would give (Azure, Vertex, Bedrock plugins
    // build paths from them).
    r.backend_options = [
        ("azure-deployment", "check-deployment"),
        ("azure-api-version", "2024-02-01"),
        ("aws-region", "us-east-1"),
        ("gcp-project-id", "check-project"),
        ("gcp-location", "us-central1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    match task {
        Task::TextToText => {
            r.params_json = r#"{"min_tokens":16,"ignore_eos":true}"#.into();
        }
        Task::ImageTextToText => {
            r.params_json = r#"{"min_tokens":16,"ignore_eos":true}"#.into();
            r.image_urls = vec![
                crate::sampling::images::synthetic_data_url(32, 24, 1)
                    .map(|u| u.to_string())
                    .unwrap_or_else(|_| "data:image/png;base64,AA==".into()),
            ];
        }
        Task::TextToEmbeddings => {
            r.max_tokens = None;
            r.documents = vec!["first document".into(), "second document".into()];
        }
        Task::TextToRerank => {
            r.max_tokens = None;
            r.query = "which document is first?".into();
            r.documents = vec!["first document".into(), "second document".into()];
        }
        Task::ImageToEmbeddings => {
            r.max_tokens = None;
            r.prompt.clear();
            r.image_urls = vec![
                crate::sampling::images::synthetic_data_url(32, 24, 1)
                    .map(|u| u.to_string())
                    .unwrap_or_else(|_| "data:image/png;base64,AA==".into()),
            ];
        }
        Task::TextToImage => {
            r.max_tokens = None;
            r.image_output = Some((256, 256, 1));
        }
        Task::TextToSpeech => {
            r.max_tokens = None;
        }
    }
    r
}

fn timed<T>(
    report: &mut Report,
    call: &'static str,
    inst: &crate::plugin::PluginInstance,
    started: Instant,
    result: T,
) -> T {
    let t = started.elapsed();
    report
        .calls
        .entry(call)
        .or_default()
        .add(t, inst.peak_memory_bytes());
    result
}

async fn check_requests(
    plugin: &Arc<LoadedPlugin>,
    models: &[String],
    extra: &serde_json::Map<String, Value>,
    report: &mut Report,
) {
    let extra_json = Value::Object(extra.clone()).to_string();
    let info = plugin.info().clone();
    let before = report.failures.len();
    let mut built = 0;
    let backends: Vec<String> = std::iter::once(info.name.clone())
        .chain(info.backends.iter().cloned())
        .collect();
    // validate-params must accept no params (or the ones given).
    match plugin.instantiate(0).await {
        Ok(mut inst) => {
            let t = Instant::now();
            let r = inst.validate_params(&extra_json).await;
            match timed(report, "validate-params", &inst, t, r) {
                Ok(Ok(())) => {}
                Ok(Err(m)) => report.fail(format!("validate-params refuses `{extra_json}`: {m}")),
                Err(e) => report.fail(format!("validate-params: {e}")),
            }
            let t = Instant::now();
            let r = inst.validate_params("[1]").await;
            match timed(report, "validate-params", &inst, t, r) {
                Ok(Err(_)) => {}
                Ok(Ok(())) => report
                    .warnings
                    .push("validate-params accepts `[1]`, which is not a JSON object".into()),
                Err(e) => report.fail(format!("validate-params on `[1]`: {e}")),
            }
        }
        Err(e) => report.fail(format!("instantiation: {e}")),
    }
    for &task in &info.tasks {
        for stream in [true, false] {
            for backend in &backends {
                let mut req = sample_request(task, stream, backend, &model_for(models, task));
                if !extra.is_empty() {
                    let mut p = match serde_json::from_str::<Value>(&req.params_json) {
                        Ok(Value::Object(m)) => m,
                        _ => serde_json::Map::new(),
                    };
                    p.extend(extra.clone());
                    req.params_json = Value::Object(p).to_string();
                }
                let what = format!(
                    "build-request ({task}, {}, backend {backend})",
                    if stream { "streaming" } else { "non-streaming" }
                );
                let mut inst = match plugin.instantiate(0).await {
                    Ok(i) => i,
                    Err(e) => {
                        report.fail(format!("{what}: instantiation: {e}"));
                        continue;
                    }
                };
                let t = Instant::now();
                let r = inst.build_request(&req).await;
                match timed(report, "build-request", &inst, t, r) {
                    Ok(out) => {
                        built += 1;
                        if out.body.is_empty() && out.method == reqwest::Method::POST {
                            report
                                .warnings
                                .push(format!("{what}: a POST with an empty body"));
                        }
                    }
                    Err(e) => report.fail(format!("{what}: {}", describe(&e))),
                }
            }
        }
    }
    if report.failures.len() == before {
        report.passed.push(format!(
            "requests: {built} built and accepted by the host's policy ({} tasks x streaming/non-streaming x {} backend names)",
            info.tasks.len(),
            backends.len()
        ));
    }
}

fn describe(e: &PluginError) -> String {
    format!("{} ({:?})", e.message, e.kind)
}

/// Events and the parse error (if any) for `body` fed in `chunks`.
type Outcome = (Vec<Value>, Option<String>);

/// The events each piece of a split body produced (text merged), in order.
type PerPiece = Vec<Vec<Value>>;

/// How the pieces of a split body go to the plugin.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Feed {
    /// One `feed` call per piece.
    PerCall,
    /// All pieces in one `feed` call, as the host hands over a body.
    Batch,
}

async fn parse(
    plugin: &Arc<LoadedPlugin>,
    f: &Fixture,
    cuts: &[usize],
    how: Feed,
    report: &mut Report,
) -> Result<(Outcome, PerPiece), String> {
    let mut inst = plugin
        .instantiate(0)
        .await
        .map_err(|e| format!("instantiation: {}", describe(&e)))?;
    let t = Instant::now();
    let r = inst.begin_response_with_note(&f.head, &f.parser_note).await;
    timed(report, "response-parser new", &inst, t, r)
        .map_err(|e| format!("constructor: {}", describe(&e)))?;
    let mut events = Vec::new();
    let mut pieces: PerPiece = Vec::new();
    let all_ends: Vec<usize> = cuts.iter().copied().chain([f.body.len()]).collect();
    if how == Feed::Batch {
        let ends: Vec<u32> = all_ends
            .iter()
            .map(|&e| u32::try_from(e).unwrap_or(u32::MAX))
            .collect();
        let t = Instant::now();
        let r = inst.feed_batch(&f.body, &ends).await;
        match timed(report, "feed", &inst, t, r) {
            Ok(lists) if lists.len() == ends.len() => {
                for list in lists {
                    pieces.push(fixture::merge(&list));
                    events.extend(list);
                }
            }
            Ok(lists) => {
                return Err(format!(
                    "feed: {} lists of events for {} chunks",
                    lists.len(),
                    ends.len()
                ));
            }
            Err(e) if e.kind == crate::plugin::PluginErrorKind::Reported => {
                return Ok(((fixture::merge(&events), Some(e.message)), pieces));
            }
            Err(e) => return Err(format!("feed: {}", describe(&e))),
        }
    }
    let per_call = if how == Feed::PerCall {
        &all_ends[..]
    } else {
        &[][..]
    };
    let mut start = 0;
    for &end in per_call {
        let t = Instant::now();
        let r = inst.feed(&f.body[start..end]).await;
        match timed(report, "feed", &inst, t, r) {
            Ok(ev) => {
                pieces.push(fixture::merge(&ev));
                events.extend(ev);
            }
            Err(e) if e.kind == crate::plugin::PluginErrorKind::Reported => {
                return Ok(((fixture::merge(&events), Some(e.message)), pieces));
            }
            Err(e) => return Err(format!("feed: {}", describe(&e))),
        }
        start = end;
    }
    let t = Instant::now();
    let r = inst.finish().await;
    match timed(report, "finish", &inst, t, r) {
        Ok(ev) => events.extend(ev),
        Err(e) if e.kind == crate::plugin::PluginErrorKind::Reported => {
            return Ok(((fixture::merge(&events), Some(e.message)), pieces));
        }
        Err(e) => return Err(format!("finish: {}", describe(&e))),
    }
    Ok(((fixture::merge(&events), None), pieces))
}

fn show(o: &Outcome) -> String {
    let mut s = serde_json::to_string(&o.0).unwrap_or_default();
    if s.len() > 400 {
        s.truncate(400);
        s.push_str("...");
    }
    match &o.1 {
        Some(e) => format!("{s} then error {e:?}"),
        None => s,
    }
}

async fn check_fixture(plugin: &Arc<LoadedPlugin>, f: &Fixture, random: u32, report: &mut Report) {
    let name = &f.name;
    if !plugin.info().tasks.contains(&f.head.task) {
        report.warnings.push(format!(
            "fixture {name}: task {} is not declared by the plugin; skipped",
            f.head.task
        ));
        return;
    }
    let whole = match parse(plugin, f, &[], Feed::PerCall, report).await {
        Ok((o, _)) => o,
        Err(e) => {
            report.fail(format!("fixture {name}: the whole body: {e}"));
            return;
        }
    };
    // The expected outcome.
    let mut ok = true;
    if whole.0 != f.expect {
        ok = false;
        report.fail(format!(
            "fixture {name}: expected {} but got {}",
            serde_json::to_string(&f.expect).unwrap_or_default(),
            show(&whole)
        ));
    }
    match (&f.expect_failure, &whole.1) {
        (None, Some(e)) => {
            ok = false;
            report.fail(format!(
                "fixture {name}: the plugin failed to parse it: {e}"
            ));
        }
        (Some(want), None) => {
            ok = false;
            report.fail(format!(
                "fixture {name}: expected a parse error containing {want:?}, the plugin accepted it"
            ));
        }
        (Some(want), Some(got)) if !got.contains(want.as_str()) => {
            ok = false;
            report.fail(format!(
                "fixture {name}: expected a parse error containing {want:?}, got {got:?}"
            ));
        }
        _ => {}
    }
    // Every split must give what the whole body gave.
    // Single cuts go one piece per call; random ones in one call, as the
    // host hands a body over; every byte both ways.
    let n = f.body.len();
    let mut splits: Vec<(Vec<usize>, Feed)> = (1..n).map(|k| (vec![k], Feed::PerCall)).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(n as u64);
    for _ in 0..random {
        if n < 3 {
            break;
        }
        let pieces = rng.random_range(3..=16.min(n));
        let mut cuts: Vec<usize> = (0..pieces - 1).map(|_| rng.random_range(1..n)).collect();
        cuts.sort_unstable();
        cuts.dedup();
        splits.push((cuts, Feed::Batch));
    }
    if n > 1 {
        splits.push(((1..n).collect(), Feed::PerCall));
        splits.push(((1..n).collect(), Feed::Batch));
    }
    let mut tried = 0;
    for (cuts, how) in &splits {
        tried += 1;
        let parsed = parse(plugin, f, cuts, *how, report).await;
        // In one call the plugin sees every piece at once: each piece's
        // events must still be in that piece's list (as when it came in a
        // call of its own), or they would carry another chunk's time.
        if *how == Feed::Batch
            && let Ok(((_, None), batch)) = &parsed
            && let Ok(((_, None), alone)) = parse(plugin, f, cuts, Feed::PerCall, report).await
            && *batch != alone
        {
            let at = batch
                .iter()
                .zip(&alone)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            ok = false;
            report.fail(format!(
                "fixture {name}: split at bytes {} in one feed call puts piece {at}'s events in the wrong list: {} where a call of its own gives {}",
                show_cuts(cuts),
                serde_json::to_string(&batch.get(at)).unwrap_or_default(),
                serde_json::to_string(&alone.get(at)).unwrap_or_default()
            ));
            break;
        }
        match parsed.map(|(o, _)| o) {
            Ok(o) if o == whole => {}
            // An error fails the whole call it comes from, so the events
            // of the same call before it are not returned: only the error
            // must be the same.
            Ok(o) if *how == Feed::Batch && same_error(&o, &whole) => {}
            Ok(o) => {
                ok = false;
                report.fail(format!(
                    "fixture {name}: split at bytes {}{} gives {} but the whole body gives {}",
                    show_cuts(cuts),
                    if *how == Feed::Batch {
                        " (one feed call)"
                    } else {
                        ""
                    },
                    show(&o),
                    show(&whole)
                ));
                break;
            }
            Err(e) => {
                ok = false;
                report.fail(format!(
                    "fixture {name}: split at bytes {}: {e}",
                    show_cuts(cuts)
                ));
                break;
            }
        }
    }
    if ok {
        report.passed.push(format!(
            "fixture {name}: {} events, identical whole and in {tried} splits{}",
            whole.0.len(),
            if f.description.is_empty() {
                String::new()
            } else {
                format!(" ({})", f.description)
            }
        ));
    }
}

/// Both failed with the same parse error (whichever call reported it).
fn same_error(a: &Outcome, b: &Outcome) -> bool {
    const SAID: &str = "cannot parse the response: ";
    let tail = |m: &str| m.split_once(SAID).map(|(_, t)| t.to_owned());
    match (&a.1, &b.1) {
        (Some(x), Some(y)) => tail(x).is_some() && tail(x) == tail(y),
        _ => false,
    }
}

fn show_cuts(cuts: &[usize]) -> String {
    if cuts.len() > 8 {
        format!("{:?}... ({} pieces)", &cuts[..8], cuts.len() + 1)
    } else {
        format!("{cuts:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver() {
        for ok in [
            "0.1.0",
            "1.2.3",
            "10.0.0-rc.1",
            "1.0.0+build.5",
            "1.0.0-alpha-1+x",
        ] {
            assert!(semver_ok(ok), "{ok}");
        }
        for bad in [
            "", "1", "1.2", "1.2.3.4", "01.2.3", "1.2.x", "v1.2.3", "1.2.3-", "1.2.3+",
        ] {
            assert!(!semver_ok(bad), "{bad}");
        }
    }
}
