//! Client CPU per streamed token, ours against a floor client (run with
//! `cargo bench --bench floor`).
//!
//! The floor is the least a streaming benchmark client can do: tokio +
//! reqwest, POST, read every chunk, take one timestamp per chunk, count the
//! `data:` lines, nothing else. Ours is the full benchmark engine
//! (`run_closed_loop` through the real Baseten plugin). Both run against
//! `genai-bench serve-sim` in another process (TTFT 20 ms, ITL 5 ms, 100
//! output tokens, one HTTP chunk per token), each client in a process of
//! its own, so one's threads never bill the other. CPU is measured over
//! the load window only (after a warm-up wave, before any report); rounds
//! are interleaved (floor, ours, floor, ours) so drift hits both.
//!
//! It then prints the peak RSS one more stream in flight costs each client
//! (one wave of 1024 streams against one of 64, over the 960 extra) and
//! ours' CPU per second at concurrency 1 with nothing arriving.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use genai_bench::plugin::{BenchRequest, PluginRuntime, RuntimeOptions, Task};
use genai_bench::progress::Progress;
use genai_bench::scheduler::{RunSpec, Stop, run_closed_loop};
use genai_bench::transport::{Secret, Target, Transport};

const TOKENS: u64 = 100;
/// Requests per measured window, per unit of concurrency (waves).
const WAVES: u64 = 8;
/// Interleaved rounds per level (`FLOOR_ROUNDS`, default 2); the median
/// is reported.
fn rounds() -> usize {
    std::env::var("FLOOR_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(2)
}
const LEVELS: [u32; 2] = [64, 256];
const PROMPT: &str = "The quick brown fox jumps over the lazy dog again and again.";

/// Process CPU time (user + system, all threads), seconds (getrusage:
/// microseconds, where /proc's ticks are 10 ms).
fn cpu_seconds() -> f64 {
    genai_bench::validity::process_cpu_time()
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// What one client process measured over its load window.
struct Window {
    cpu_s: f64,
    wall_s: f64,
    ok: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let kind = args[i + 1].as_str();
        let base = &args[i + 2];
        let c: u32 = args[i + 3].parse().unwrap();
        let w = match kind {
            "floor" => floor_client(base, c, WAVES),
            "floor-rss" => floor_client(base, c, 0),
            "idle" => idle_client(base),
            "ours-rss" => our_client(base, c, 0),
            _ => our_client(base, c, WAVES),
        };
        if kind.ends_with("-rss") {
            // The process's peak, all of it: one wave, so it is the wave's
            // streams in flight together, on top of start-up.
            println!("{} {} {}", peak_rss_kib(), w.wall_s, w.ok);
        } else {
            println!("{} {} {}", w.cpu_s, w.wall_s, w.ok);
        }
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let (mut sim, base) = start_sim(&[
        "--ttft-ms",
        "20",
        "--prefill-us-per-token",
        "0",
        "--itl-ms",
        "5",
        "--tokens-per-chunk",
        "1",
    ]);
    println!("simulator (separate process): {base}; TTFT 20 ms, ITL 5 ms, {TOKENS} tokens");
    for c in LEVELS {
        let (mut floor_us, mut ours_us) = (Vec::new(), Vec::new());
        for round in 1..=rounds() {
            for kind in ["floor", "ours"] {
                let w = child(kind, &base, c);
                let us = w.cpu_s / (w.ok * TOKENS) as f64 * 1e6;
                println!(
                    "c={c} round {round} {kind:<5}: {:.2} µs CPU per token ({} requests in {:.2} s, {:.2} CPU s)",
                    us, w.ok, w.wall_s, w.cpu_s
                );
                if kind == "floor" {
                    floor_us.push(us);
                } else {
                    ours_us.push(us);
                }
            }
        }
        // Each round's ratio pairs two runs made back to back, so drift
        // of the machine cancels within it.
        let ratios: Vec<f64> = ours_us.iter().zip(&floor_us).map(|(o, f)| o / f).collect();
        // The spread says how far one round can be trusted on this machine.
        let (lo, hi) = ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &r| (lo.min(r), hi.max(r)));
        let paired = median(ratios);
        let (f, o) = (median(floor_us), median(ours_us));
        println!(
            "c={c}: floor {f:.2} µs/token, ours {o:.2} µs/token, ratio {:.2}x, median of the rounds' ratios {paired:.2}x (rounds {lo:.2}-{hi:.2}x; target <= 1.3x)",
            o / f
        );
    }

    // Memory per stream in flight: one wave of c streams, peak RSS at a
    // high and a low concurrency; the difference over the extra streams
    // is what one more stream costs (start-up and the runtime cancel).
    let (lo, hi) = (64u32, 1024u32);
    let per_stream = |kind: &str| {
        let runs: Vec<f64> = (0..rounds())
            .map(|_| {
                let (a, b) = (peak_child(kind, &base, lo), peak_child(kind, &base, hi));
                (b - a) / f64::from(hi - lo)
            })
            .collect();
        median(runs)
    };
    let (f, o) = (per_stream("floor-rss"), per_stream("ours-rss"));
    println!(
        "peak RSS per stream in flight (c={hi} minus c={lo}, one wave): floor {f:.1} KiB, ours {o:.1} KiB (target <= 64 KiB)"
    );
    let _ = sim.kill();
    let _ = sim.wait();

    // Idle cost: one request in flight that the server holds for a minute.
    let (mut slow, slow_base) = start_sim(&["--ttft-ms", "60000"]);
    let idle: Vec<f64> = (0..3)
        .map(|_| {
            let w = child("idle", &slow_base, 1);
            w.cpu_s / w.wall_s * 1000.0
        })
        .collect();
    println!(
        "idle (concurrency 1, nothing arriving): {:.2} ms of client CPU per second (median of 3; target <= 2)",
        median(idle)
    );
    let _ = slow.kill();
    let _ = slow.wait();
}

/// `genai-bench serve-sim` on a free port with `args`; the process and its URL.
fn start_sim(args: &[&str]) -> (Child, String) {
    let mut sim = Command::new(env!("CARGO_BIN_EXE_genai-bench"))
        .args(["serve-sim", "--port", "0", "--seed", "1"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start genai-bench serve-sim");
    let mut line = String::new();
    BufReader::new(sim.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.trim().rsplit(' ').next().unwrap().to_string();
    (sim, base)
}

/// The process's peak resident set (`VmHWM`), KiB; 0 where /proc has none.
fn peak_rss_kib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// Run one client (`floor`, `ours` or `idle`; `floor-rss` and `ours-rss`
/// print their peak RSS in KiB where the others print CPU seconds) in a
/// process of its own.
fn child(kind: &str, base: &str, c: u32) -> Window {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--child", kind, base, &c.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = s
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    assert_eq!(v.len(), 3, "child {kind} c={c} printed {s:?}");
    Window {
        cpu_s: v[0],
        wall_s: v[1],
        ok: v[2] as u64,
    }
}

/// Peak RSS (KiB) of a `floor-rss` or `ours-rss` child: one wave of `c`
/// streams, every one of which must succeed.
fn peak_child(kind: &str, base: &str, c: u32) -> f64 {
    let w = child(kind, base, c);
    assert_eq!(w.ok, u64::from(c), "{kind} c={c}: requests failed");
    // The child prints its peak where the CPU children print CPU seconds.
    assert!(
        w.cpu_s > 0.0,
        "{kind}: no peak RSS (VmHWM needs Linux's /proc)"
    );
    w.cpu_s
}

/// Our engine as `genai-bench` runs it: an I/O runtime, a plugin
/// executor, the Baseten plugin and a transport to `base`.
struct Ours {
    io: tokio::runtime::Runtime,
    plugin_rt: tokio::runtime::Runtime,
    _runtime: PluginRuntime,
    plugin: Arc<genai_bench::plugin::LoadedPlugin>,
    transport: Transport,
}

impl Ours {
    fn new(base: &str, c: u32) -> Ours {
        let io = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("io")
            .build()
            .unwrap();
        // As `genai-bench benchmark` builds it.
        let plugin_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(genai_bench::benchmark::plugin_threads())
            .thread_name("plugin")
            .on_thread_start(genai_bench::plugin::lower_thread_priority)
            .enable_time()
            .build()
            .unwrap();
        let runtime = PluginRuntime::new(RuntimeOptions {
            max_instances: c + genai_bench::plugin::SPARE_INSTANCES,
            ..RuntimeOptions::default()
        })
        .unwrap();
        let plugin = runtime.load_builtin("baseten").unwrap();
        let url = url::Url::parse(&format!("{base}/environments/production/predict")).unwrap();
        let transport = Transport::new(
            Transport::client_for(c as usize).unwrap(),
            Target::new(url, Secret::new(Some("bench".into()))),
            plugin_rt.handle().clone(),
        );
        Ours {
            io,
            plugin_rt,
            _runtime: runtime,
            plugin,
            transport,
        }
    }

    /// A closed-loop run of `n` requests of `tokens` tokens at `c`.
    async fn run(&self, c: u32, n: u64, tokens: u32) -> genai_bench::scheduler::RunOutcome {
        let (_stop_tx, stop_rx) = tokio::sync::watch::channel(Stop::Run);
        let source = move || -> anyhow::Result<(BenchRequest, Option<u64>)> {
            let mut r = BenchRequest::text("bench", PROMPT, Some(tokens), true);
            r.params_json = r#"{"temperature": 0.7, "ignore_eos": true}"#.into();
            Ok((r, Some(12)))
        };
        let spec = RunSpec {
            concurrency: c,
            max_requests: n,
            max_time: Duration::from_secs(600),
            task: Task::TextToText,
            stream: true,
            arrivals: None,
            max_concurrency: None,
            spawn_rate: None,
        };
        run_closed_loop(
            &self.transport,
            genai_bench::plugin::swap::PluginSlot::new(self.plugin.clone()),
            Box::new(source),
            spec,
            Arc::new(|s: &str| s.split_whitespace().count() as u64),
            stop_rx,
            Arc::new(Progress::new()),
        )
        .await
    }
}

impl Drop for Ours {
    fn drop(&mut self) {
        // The plugin executor may hold parked tasks; never block on them.
        let rt = std::mem::replace(
            &mut self.plugin_rt,
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
        );
        rt.shutdown_background();
    }
}

/// CPU over two seconds in which the only request waits for its first byte.
fn idle_client(base: &str) -> Window {
    let ours = Ours::new(base, 1);
    ours.io.block_on(async {
        let measure = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let cpu0 = cpu_seconds();
            let t0 = Instant::now();
            tokio::time::sleep(Duration::from_secs(2)).await;
            Window {
                cpu_s: cpu_seconds() - cpu0,
                wall_s: t0.elapsed().as_secs_f64(),
                ok: 0,
            }
        };
        tokio::select! {
            _ = ours.run(1, 1, 8) => panic!("the held request finished"),
            w = measure => w,
        }
    })
}

/// The request body the Baseten plugin sends for the same request.
fn body() -> String {
    serde_json::json!({
        "model": "bench",
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": TOKENS,
        "stream": true,
        "stream_options": {"include_usage": true},
        "temperature": 0.7,
        "ignore_eos": true,
    })
    .to_string()
}

/// The floor client: a warm-up wave of `c` requests, then `waves` waves
/// measured; with `waves` 0, the one wave is measured.
fn floor_client(base: &str, c: u32, waves: u64) -> Window {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(c as usize)
            .tcp_nodelay(true)
            .build()
            .unwrap();
        let url = format!("{base}/environments/production/predict");
        let body = bytes::Bytes::from(body());
        let wave = |n: u64| {
            let client = client.clone();
            let url = url.clone();
            let body = body.clone();
            async move {
                let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
                let mut tasks = Vec::new();
                for _ in 0..c {
                    let (client, url, body, next) =
                        (client.clone(), url.clone(), body.clone(), next.clone());
                    tasks.push(tokio::spawn(async move {
                        let mut ok = 0u64;
                        let mut stamps: Vec<Instant> = Vec::with_capacity(128);
                        while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                            let resp = client
                                .post(&url)
                                .header("Authorization", "Api-Key bench")
                                .header("Content-Type", "application/json")
                                .body(body.clone())
                                .send()
                                .await
                                .unwrap();
                            let mut resp = resp;
                            let mut lines = 0usize;
                            stamps.clear();
                            while let Some(chunk) = resp.chunk().await.unwrap() {
                                stamps.push(Instant::now());
                                lines += chunk.windows(5).filter(|w| w == b"data:").count();
                            }
                            if lines > 0 {
                                ok += 1;
                            }
                            std::hint::black_box(&stamps);
                        }
                        ok
                    }));
                }
                let mut ok = 0;
                for t in tasks {
                    ok += t.await.unwrap();
                }
                ok
            }
        };
        if waves == 0 {
            let (cpu0, t0) = (cpu_seconds(), Instant::now());
            let ok = wave(u64::from(c)).await;
            return Window {
                cpu_s: cpu_seconds() - cpu0,
                wall_s: t0.elapsed().as_secs_f64(),
                ok,
            };
        }
        wave(u64::from(c)).await; // warm-up: connections
        let cpu0 = cpu_seconds();
        let t0 = Instant::now();
        let ok = wave(u64::from(c) * waves).await;
        Window {
            cpu_s: cpu_seconds() - cpu0,
            wall_s: t0.elapsed().as_secs_f64(),
            ok,
        }
    })
}

/// Our engine, as [`floor_client`]: a warm-up wave (connections,
/// instances), then `waves` measured; with `waves` 0, the one wave.
fn our_client(base: &str, c: u32, waves: u64) -> Window {
    let ours = Ours::new(base, c);
    ours.io.block_on(async {
        let (cpu0, t0) = (cpu_seconds(), Instant::now());
        let out = ours.run(c, u64::from(c), TOKENS as u32).await;
        if waves == 0 {
            return Window {
                cpu_s: cpu_seconds() - cpu0,
                wall_s: t0.elapsed().as_secs_f64(),
                ok: out.records.iter().filter(|r| r.ok()).count() as u64,
            };
        }
        let cpu0 = cpu_seconds();
        let t0 = Instant::now();
        let out = ours.run(c, u64::from(c) * waves, TOKENS as u32).await;
        Window {
            cpu_s: cpu_seconds() - cpu0,
            wall_s: t0.elapsed().as_secs_f64(),
            ok: out.records.iter().filter(|r| r.ok()).count() as u64,
        }
    })
}
