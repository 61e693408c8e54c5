//! Plugin runtime figures (run with `cargo bench --bench plugin_runtime`):
//! instantiate + build one request, feed one one-token SSE chunk (alone,
//! and 100 in one call as the host hands a body over), and load
//! the Baseten plugin from the compiled-plugin cache. Prints medians and
//! p90s over many rounds; no timing assertions (the machines are noisy).

use std::time::{Duration, Instant};

use genai_bench::plugin::{BenchRequest, PluginRuntime, ResponseHead, RuntimeOptions, Task};

const CHUNK: &[u8] = b"data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" the\"},\"finish_reason\":null}]}\n\n";

fn stats(name: &str, target: &str, mut v: Vec<Duration>) {
    v.sort();
    let med = v[v.len() / 2];
    let p90 = v[v.len() * 9 / 10];
    println!(
        "{name:<44} median {:>10.2} µs   p90 {:>10.2} µs   (n={}, target {target})",
        med.as_secs_f64() * 1e6,
        p90.as_secs_f64() * 1e6,
        v.len()
    );
}

fn main() {
    let cache = tempfile_dir();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runtime = PluginRuntime::new(RuntimeOptions {
        max_instances: 64,
        cache_dir: Some(cache.clone()),
        ..RuntimeOptions::default()
    })
    .unwrap();
    // First load compiles and fills the cache.
    let t = Instant::now();
    let plugin = runtime.load_builtin("baseten").unwrap();
    println!("pooling allocator: {}", runtime.pooling());
    println!(
        "first load (compile): {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );

    // 1. Load from the compiled-plugin cache.
    let mut loads = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let p = runtime.load_builtin("baseten").unwrap();
        loads.push(t.elapsed());
        assert!(p.from_cache());
    }
    stats("load baseten from compiled cache", "<= 20 ms", loads);

    // 2. Fresh instance + build one request.
    let mut req = BenchRequest::text(
        "bench-model",
        "Hello, how are you today? Tell me a story.",
        Some(128),
        true,
    );
    req.params_json = r#"{"temperature": 0.7}"#.into();
    let mut builds = Vec::new();
    rt.block_on(async {
        for i in 0..20_000u64 {
            let t = Instant::now();
            let mut inst = plugin.instantiate(i).await.unwrap();
            let out = inst.build_request(&req).await.unwrap();
            let d = t.elapsed();
            std::hint::black_box(out);
            if i >= 1000 {
                builds.push(d);
            }
        }
    });
    stats("instantiate + build-request", "<= 50 µs", builds);

    // 3. Feed one one-token SSE chunk into a live parser.
    let head = ResponseHead {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        task: Task::TextToText,
        stream: true,
    };
    let mut feeds = Vec::new();
    rt.block_on(async {
        for round in 0..20 {
            let mut inst = plugin.instantiate(round).await.unwrap();
            inst.begin_response(&head).await.unwrap();
            for i in 0..5_000 {
                let t = Instant::now();
                let ev = inst.feed(CHUNK).await.unwrap();
                let d = t.elapsed();
                assert_eq!(ev.len(), 1);
                if i >= 100 {
                    feeds.push(d);
                }
            }
        }
    });
    stats("feed one one-token SSE chunk", "<= 3 µs", feeds);

    // 4. The same chunks 100 at a time, one `feed` call each, as the host
    // hands a streamed body over: the time per chunk.
    let batch: Vec<u8> = CHUNK.repeat(100);
    let ends: Vec<u32> = (1..=100).map(|i| (i * CHUNK.len()) as u32).collect();
    let mut batched = Vec::new();
    rt.block_on(async {
        for round in 0..20 {
            let mut inst = plugin.instantiate(round).await.unwrap();
            inst.begin_response(&head).await.unwrap();
            for i in 0..50 {
                let t = Instant::now();
                let lists = inst.feed_batch(&batch, &ends).await.unwrap();
                let d = t.elapsed();
                assert_eq!(lists.len(), 100);
                if i >= 1 {
                    batched.push(d / 100);
                }
            }
        }
    });
    stats(
        "feed 100 such chunks in one call, per chunk",
        "<= 1 µs",
        batched,
    );
    let _ = std::fs::remove_dir_all(&cache);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("genai-bench-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
