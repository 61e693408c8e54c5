//! The commands of the Baseten guide, as written, against the simulator
//! (endpoint, key and tokenizer swapped for local ones, runs kept short).

use std::process::Output;

use genai_bench::simulator::{self, SimConfig};
use serde_json::Value;

use crate::benchmark::{Bench, KEY, records};

async fn sim() -> simulator::SimHandle {
    simulator::start(SimConfig {
        api_key: Some(KEY.into()),
        seed: Some(3),
        keep_ground_truth: true,
        ..SimConfig::zero_delay()
    })
    .await
    .unwrap()
}

fn url(s: &simulator::SimHandle) -> String {
    format!("{}/environments/production/predict", s.base_url())
}

async fn run(b: &Bench, url: String, args: &[&str]) -> Output {
    let mut c = b.command_url(&url, args);
    let out = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    crate::common::assert_success(&out);
    out
}

fn all_ok(b: &Bench) -> Vec<(String, Value)> {
    let runs = b.runs();
    assert!(!runs.is_empty());
    for (name, run) in &runs {
        for r in records(run) {
            assert_eq!(r["error_code"], Value::Null, "{name}: {r}");
        }
    }
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_compatible_format() {
    let _m = crate::common::shared_machine().await;
    let s = sim().await;
    let b = Bench::new();
    run(
        &b,
        url(&s),
        &[
            "--api-model-name",
            "Qwen3-30B-A3B-Instruct-2507-FP8",
            "--task",
            "text-to-text",
            "--max-requests-per-run",
            "20",
            "--num-concurrency",
            "8",
            "--max-time-per-run",
            "600",
            "--traffic-scenario",
            "D(100,100)",
            "--additional-request-params",
            r#"{"temperature": 0.7}"#,
        ],
    )
    .await;
    let runs = all_ok(&b);
    assert_eq!(records(&runs[0].1).len(), 20);
    let gt = s.ground_truth();
    assert!(gt.iter().all(|t| t.output_tokens == 100 && t.stream));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_prompt_format_streams_plain_text() {
    let _m = crate::common::shared_machine().await;
    let s = sim().await;
    let b = Bench::new();
    run(
        &b,
        url(&s),
        &[
            "--api-model-name",
            "Mistral-7B-v0.1",
            "--task",
            "text-to-text",
            "--additional-request-params",
            r#"{"use_prompt_format": true, "temperature": 0.7}"#,
            "--num-concurrency",
            "1",
            "--traffic-scenario",
            "N(100,100)/(100,100)",
            "--max-requests-per-run",
            "5",
        ],
    )
    .await;
    let runs = all_ok(&b);
    for r in records(&runs[0].1) {
        // Plain-text streams carry no usage: the tokenizer counts the output,
        // and TTFT is the first chunk's arrival, not the end.
        assert!(r["num_output_tokens"].as_u64().unwrap() > 0);
        assert_eq!(r["output_tokens_source"], "tokenizer");
        if r["num_output_tokens"].as_u64().unwrap() > 2 {
            assert!(r["ttft"].as_f64().unwrap() <= r["e2e_latency"].as_f64().unwrap());
        }
    }
    let gt = s.ground_truth();
    assert!(
        gt.iter()
            .all(|t| t.format == Some(simulator::RequestFormat::Prompt)),
        "{gt:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_streaming_mode() {
    let _m = crate::common::shared_machine().await;
    let s = sim().await;
    let b = Bench::new();
    run(
        &b,
        url(&s),
        &[
            "--api-model-name",
            "test-model",
            "--task",
            "text-to-text",
            "--disable-streaming",
            "--additional-request-params",
            r#"{"use_prompt_format": true, "temperature": 0.7}"#,
            "--traffic-scenario",
            "D(50,20)",
            "--num-concurrency",
            "2",
            "--max-requests-per-run",
            "4",
        ],
    )
    .await;
    let runs = all_ok(&b);
    for r in records(&runs[0].1) {
        // Not streamed: the first token came with the whole answer.
        assert_eq!(r["streamed"], false);
        assert_eq!(r["ttft"], r["e2e_latency"]);
        assert_eq!(r["num_output_tokens"], 20);
    }
    assert_eq!(
        runs[0].1["aggregated_metrics"]["stats"]["ttft"]["mean"],
        Value::Null
    );
    assert!(s.ground_truth().iter().all(|t| !t.stream));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_to_text_with_a_folder_of_images_and_generated_images() {
    let _m = crate::common::shared_machine().await;
    let s = sim().await;
    let images = tempfile::tempdir().unwrap();
    // Real JPEG files, made by the sampler's own generator.
    let jpeg = genai_bench::sampling::images::generate_jpeg(64, 48, 1).unwrap();
    std::fs::write(images.path().join("a.jpg"), &jpeg).unwrap();
    std::fs::write(images.path().join("b.jpeg"), &jpeg).unwrap();
    let b = Bench::new();
    let dir = images.path().to_str().unwrap().to_string();
    let args = [
        "--api-model-name",
        "vision-model",
        "--task",
        "image-text-to-text",
        "--dataset-path",
        &dir,
        "--max-requests-per-run",
        "4",
        "--max-time-per-run",
        "10",
        "--num-concurrency",
        "2",
    ];
    run(&b, url(&s), &args).await;
    all_ok(&b);
    let b2 = Bench::new();
    run(
        &b2,
        url(&s),
        &[
            "--api-model-name",
            "vision-model",
            "--task",
            "image-text-to-text",
            "--traffic-scenario",
            "I(64,32,2)",
            "--max-requests-per-run",
            "3",
            "--num-concurrency",
            "1",
        ],
    )
    .await;
    all_ok(&b2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_to_embeddings() {
    let _m = crate::common::shared_machine().await;
    let s = sim().await;
    let b = Bench::new();
    run(
        &b,
        url(&s),
        &[
            "--api-model-name",
            "embed-model",
            "--task",
            "text-to-embeddings",
            "--traffic-scenario",
            "E(32)",
            "--batch-size",
            "1",
            "--batch-size",
            "4",
            "--max-requests-per-run",
            "3",
        ],
    )
    .await;
    let runs = all_ok(&b);
    let names: Vec<&str> = runs.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.iter().any(|n| n.contains("_batch_size_4_")),
        "{names:?}"
    );
    for (_, run) in &runs {
        for r in records(run) {
            assert_eq!(r["num_input_tokens"].as_u64().unwrap() % 32, 0, "{r}");
            assert_eq!(r["num_output_tokens"], 0);
        }
    }
}
