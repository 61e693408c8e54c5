//! Client throughput (run with `cargo bench --bench client`): the benchmark
//! engine at concurrency 256 against a zero-delay simulator in another
//! process (100 output tokens per request, one HTTP chunk per token),
//! through the real Baseten plugin. Prints requests/s, streamed tokens/s and
//! the client's CPU seconds per 1,000 requests; medians of several rounds.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use genai_bench::plugin::{BenchRequest, PluginRuntime, RuntimeOptions, Task};
use genai_bench::progress::Progress;
use genai_bench::scheduler::{RunSpec, Stop, run_closed_loop};
use genai_bench::transport::{Secret, Target, Transport};

const CONCURRENCY: u32 = 256;
const REQUESTS: u64 = 10_000;
const ROUNDS: usize = 5;

/// Process CPU time (user + system, all threads), from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 here.
    (ticks(11) + ticks(12)) / 100.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut sim = Command::new(env!("CARGO_BIN_EXE_genai-bench"))
        .args([
            "serve-sim",
            "--port",
            "0",
            "--zero-delay",
            "--frame-per-group",
            "--seed",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start genai-bench serve-sim");
    let mut line = String::new();
    BufReader::new(sim.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .rsplit(' ')
        .next()
        .expect("serve-sim prints its URL")
        .to_string();
    println!("simulator (separate process): {base}");

    let io = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let plugin_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let runtime = PluginRuntime::new(RuntimeOptions {
        max_instances: CONCURRENCY * 2,
        ..RuntimeOptions::default()
    })
    .unwrap();
    let plugin = runtime.load_builtin("baseten").unwrap();
    let url = url::Url::parse(&format!("{base}/environments/production/predict")).unwrap();
    let transport = Transport::new(
        Transport::client_for(CONCURRENCY as usize).unwrap(),
        Target::new(url, Secret::new(Some("bench".into()))),
        plugin_rt.handle().clone(),
    );
    let (rps, tps, cpu_per_k, tok_per_core) = io.block_on(async {
        let (_stop_tx, stop_rx) = tokio::sync::watch::channel(Stop::Run);
        let (mut rps, mut tps, mut cpk, mut tpc) = (vec![], vec![], vec![], vec![]);
        for round in 0..=ROUNDS {
            let source = move || -> anyhow::Result<(BenchRequest, Option<u64>)> {
                let mut r = BenchRequest::text(
                    "bench",
                    "The quick brown fox jumps over the lazy dog again and again.",
                    Some(100),
                    true,
                );
                r.params_json = r#"{"temperature": 0.7, "ignore_eos": true}"#.into();
                Ok((r, Some(12)))
            };
            let spec = RunSpec {
                concurrency: CONCURRENCY,
                max_requests: REQUESTS,
                max_time: Duration::from_secs(600),
                task: Task::TextToText,
                stream: true,
                arrivals: None,
                max_concurrency: None,
            spawn_rate: None,
            };
            let cpu0 = cpu_seconds();
            let t0 = Instant::now();
            let out = run_closed_loop(
                &transport,
                genai_bench::plugin::swap::PluginSlot::new(plugin.clone()),
                Box::new(source),
                spec,
                Arc::new(|s: &str| s.split_whitespace().count() as u64),
                stop_rx.clone(),
                Arc::new(Progress::new()),
            )
            .await;
            let wall = t0.elapsed().as_secs_f64();
            let cpu = cpu_seconds() - cpu0;
            let ok = out.records.iter().filter(|r| r.ok()).count() as f64;
            let tokens: u64 = out.records.iter().filter_map(|r| r.num_output_tokens).sum();
            // Text-carrying chunks: the simulator coalesces overdue tokens,
            // so chunks per request say how much per-chunk work was done.
            let chunks: usize = out.records.iter().map(|r| r.inter_chunk.len() + 1).sum();
            for r in out.records.iter().filter(|r| !r.ok()) {
                println!(
                    "round {round}: failed request: {} {}",
                    r.error_kind.as_deref().unwrap_or("?"),
                    r.error_message.as_deref().unwrap_or("")
                );
            }
            if round == 0 {
                continue; // warm-up round: connections, caches
            }
            println!(
                "round {round}: {:.0} req/s, {:.0} tok/s, {:.0} text chunks/s ({:.1} per request), {:.3} CPU s per 1000 requests",
                ok / wall,
                tokens as f64 / wall,
                chunks as f64 / wall,
                chunks as f64 / ok,
                cpu / ok * 1000.0
            );
            rps.push(ok / wall);
            tps.push(tokens as f64 / wall);
            cpk.push(cpu / ok * 1000.0);
            tpc.push(tokens as f64 / cpu);
        }
        (median(rps), median(tps), median(cpk), median(tpc))
    });
    println!(
        "median of {ROUNDS} rounds at concurrency {CONCURRENCY}, {REQUESTS} requests of 100 streamed tokens each:"
    );
    println!("  requests/s:                 {rps:.0}");
    println!("  streamed tokens/s:          {tps:.0}");
    println!("  client CPU s / 1000 req:    {cpu_per_k:.3}");
    println!("  streamed tokens/s per client core: {tok_per_core:.0} (target >= 20000)");
    let _ = sim.kill();
    let _ = sim.wait();
    plugin_rt.shutdown_background();
}
