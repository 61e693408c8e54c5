//! genai-bench 0.0.5's `benchmark` options that are not about the request
//! format: every one is accepted, and each either does what it does in
//! genai-bench or says why it does not apply and what to use instead.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::benchmark::{Bench, records, sse_answer};
use crate::common::real_servers::{moto_s3, moto_s3_objects};
use crate::common::server::TestServer;

/// Every `benchmark` option of genai-bench 0.0.5 (`genai-bench benchmark
/// --help`, less `--help`).
const GENAI_BENCH_0_0_5_OPTIONS: &[&str] = &[
    "--additional-request-params",
    "--api-backend",
    "--api-base",
    "--api-key",
    "--api-model-name",
    "--auth",
    "--aws-access-key-id",
    "--aws-profile",
    "--aws-region",
    "--aws-secret-access-key",
    "--aws-session-token",
    "--azure-ad-token",
    "--azure-api-version",
    "--azure-deployment",
    "--azure-endpoint",
    "--batch-size",
    "--config-file",
    "--cooldown-ratio",
    "--dataset-config",
    "--dataset-image-column",
    "--dataset-path",
    "--dataset-prompt-column",
    "--experiment-base-dir",
    "--experiment-folder-name",
    "--gcp-credentials-path",
    "--gcp-location",
    "--gcp-project-id",
    "--github-owner",
    "--github-repo",
    "--github-token",
    "--iteration-type",
    "--log-dir",
    "--master-port",
    "--max-requests-per-run",
    "--max-time-per-run",
    "--metrics-refresh-interval",
    "--metrics-time-unit",
    "--model",
    "--model-api-key",
    "--model-auth-type",
    "--model-tokenizer",
    "--namespace",
    "--num-concurrency",
    "--num-workers",
    "--prefix-len",
    "--prefix-ratio",
    "--profile",
    "--region",
    "--security-token",
    "--server-engine",
    "--server-gpu-count",
    "--server-gpu-type",
    "--server-version",
    "--spawn-rate",
    "--storage-auth-type",
    "--storage-aws-access-key-id",
    "--storage-aws-profile",
    "--storage-aws-region",
    "--storage-aws-secret-access-key",
    "--storage-aws-session-token",
    "--storage-azure-account-key",
    "--storage-azure-account-name",
    "--storage-azure-connection-string",
    "--storage-azure-sas-token",
    "--storage-bucket",
    "--storage-gcp-credentials-path",
    "--storage-gcp-project-id",
    "--storage-prefix",
    "--storage-provider",
    "--task",
    "--traffic-scenario",
    "--upload-results",
    "--warmup-ratio",
];

/// A short closed-loop run's flags (`--max-time-per-run 1`), then `extra`.
fn small_run<'a>(
    scenario: &'a str,
    concurrency: &'a str,
    requests: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut v = vec![
        "--traffic-scenario",
        scenario,
        "--num-concurrency",
        concurrency,
        "--max-requests-per-run",
        requests,
        "--max-time-per-run",
        "1",
    ];
    v.extend_from_slice(extra);
    v
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(out: &Output) -> String {
    let e = stderr(out);
    assert!(
        out.status.success(),
        "benchmark failed ({:?}): {e}",
        out.status.code()
    );
    e
}

fn failed(out: &Output) -> String {
    let e = stderr(out);
    assert_eq!(out.status.code(), Some(2), "expected a refusal: {e}");
    e
}

async fn server() -> TestServer {
    TestServer::start(|r| sse_answer(r, Duration::ZERO)).await
}

fn url(s: &TestServer) -> String {
    format!("{}/predict", s.base)
}

/// The prompts the server received, in arrival order.
fn prompts(s: &TestServer) -> Vec<String> {
    s.received
        .lock()
        .unwrap()
        .iter()
        .map(|r| {
            r.json()["messages"][0]["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn common_prefix_chars(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count()
}

/// Tokens of the prefix two prompts share, up to the blank line that ends
/// a shared prefix.
fn shared_prefix_tokens(a: &str, b: &str) -> usize {
    let common: String = a.chars().take(common_prefix_chars(a, b)).collect();
    let head = &common[..common.rfind("\n\n").expect("a blank line after the prefix")];
    let t = genai_bench::tokenizer::TokenCounter::load(
        crate::benchmark::test_tokenizer().to_str().unwrap(),
    )
    .unwrap();
    t.count(head)
}

#[test]
fn every_genai_bench_option_is_in_help() {
    let out = crate::common::genai_bench()
        .args(["benchmark", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<&&str> = GENAI_BENCH_0_0_5_OPTIONS
        .iter()
        .filter(|o| !help.contains(&format!("{o} ")) && !help.contains(&format!("{o}\n")))
        .collect();
    assert!(missing.is_empty(), "not accepted: {missing:?}");
    assert_eq!(GENAI_BENCH_0_0_5_OPTIONS.len(), 73);
    for heading in ["Cloud model credentials:", "Result upload:"] {
        assert!(help.lines().any(|l| l == heading), "no {heading}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_len_and_ratio_share_one_prefix_per_scenario() {
    let _m = crate::common::shared_machine().await;
    let s = server().await;
    let b = Bench::new();
    let args = small_run("D(200,4)", "1", "4", &["--prefix-len", "120"]);
    ok(&b.command_url(&url(&s), &args).output().unwrap());
    let p = prompts(&s);
    assert_eq!(p.len(), 4);
    let shared = common_prefix_chars(&p[0], &p[1]).min(common_prefix_chars(&p[2], &p[3]));
    // 120 tokens of English are several hundred characters; without a
    // shared prefix, windows of the corpus differ within a line.
    assert!(shared > 200, "shared {shared} chars: {:?}", &p[..2]);
    assert_eq!(shared_prefix_tokens(&p[0], &p[3]), 120);
    assert!(
        p.iter().any(|x| x != &p[0]),
        "prompts must differ after the prefix"
    );
    let runs = b.runs();
    for r in records(&runs[0].1) {
        assert_eq!(r["num_input_tokens"], 200, "{r}");
    }
    assert_eq!(b.metadata()["prefix_len"], 120);

    // --prefix-ratio 0.5 of D(200,..): the same 100-token prefix.
    let s2 = server().await;
    let b2 = Bench::new();
    let args = small_run("D(200,4)", "1", "4", &["--prefix-ratio", "0.5"]);
    ok(&b2.command_url(&url(&s2), &args).output().unwrap());
    let p2 = prompts(&s2);
    assert_eq!(shared_prefix_tokens(&p2[0], &p2[1]), 100);
    assert_eq!(shared_prefix_tokens(&p2[2], &p2[3]), 100);

    // Without either flag, prompts share next to nothing.
    let s3 = server().await;
    let b3 = Bench::new();
    let args = small_run("D(200,4)", "1", "4", &[]);
    ok(&b3.command_url(&url(&s3), &args).output().unwrap());
    let p3 = prompts(&s3);
    assert!(common_prefix_chars(&p3[0], &p3[1]) < 100);
}

#[test]
fn prefix_flags_refuse_what_genai_bench_refuses() {
    let b = Bench::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "--traffic-scenario",
                "N(480,240)/(300,150)",
                "--prefix-ratio",
                "0.5",
            ],
            "--prefix-ratio needs deterministic scenarios",
        ),
        (
            &[
                "--traffic-scenario",
                "N(480,100)/(300,150)",
                "--prefix-len",
                "200",
            ],
            "--prefix-len 200 must be at most the smallest input of N(480,100)/(300,150) (180 tokens",
        ),
        (
            &[
                "--traffic-scenario",
                "D(100,10)",
                "--prefix-len",
                "10",
                "--prefix-ratio",
                "0.1",
            ],
            "cannot be used with",
        ),
        (
            &["--task", "text-to-embeddings", "--prefix-len", "10"],
            "--prefix-len only applies to --task text-to-text",
        ),
    ];
    for (args, want) in cases {
        let out = b
            .command_url("http://127.0.0.1:9/predict", args)
            .output()
            .unwrap();
        let e = stderr(&out);
        assert!(!out.status.success() && e.contains(want), "{args:?}: {e}");
        assert!(!b.folder().exists(), "a refused run makes no folder");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_file_iteration_type_workers_and_refresh_interval() {
    let _m = crate::common::shared_machine().await;
    let s = server().await;
    let b = Bench::new();
    let logs = b.base().join("logs");
    let logs_arg = logs.to_str().unwrap();
    let out = b
        .command_url(
            &url(&s),
            &small_run(
                "D(10,4)",
                "1",
                "2",
                &[
                    "--iteration-type",
                    "batch_size",
                    "--num-workers",
                    "4",
                    "--master-port",
                    "6000",
                    "--metrics-refresh-interval",
                    "0.2",
                    "--log-dir",
                    logs_arg,
                ],
            ),
        )
        .output()
        .unwrap();
    let e = ok(&out);
    assert!(
        e.contains("--iteration-type batch_size: text-to-text runs iterate over --num-concurrency"),
        "{e}"
    );
    assert!(
        e.contains("--num-workers 4: no worker processes are started"),
        "{e}"
    );
    assert_eq!(b.metadata()["iteration_type"], "num_concurrency");
    let log = std::fs::read_to_string(logs.join("genai_bench.log"))
        .expect("genai_bench.log in --log-dir");
    // The whole log: start-up lines from before the folder existed, and the run.
    assert!(log.contains("--num-workers 4"), "{log}");
    assert!(
        log.contains("[run 1/1]") || log.contains("run 1/1"),
        "{log}"
    );
    assert!(!log.contains('\u{1b}'), "no colour codes in the file");
    assert!(!b.folder().join("genai_bench.log").exists());

    // Without --log-dir the log sits with the results.
    let b2 = Bench::new();
    ok(&b2
        .command_url(&url(&s), &small_run("D(10,4)", "1", "1", &[]))
        .output()
        .unwrap());
    let log2 = std::fs::read_to_string(b2.folder().join("genai_bench.log")).unwrap();
    assert!(log2.contains("plugin limits"), "{log2}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_rate_starts_clients_one_by_one() {
    let _m = crate::common::shared_machine().await;
    // Each answer takes about 8 x 25 ms.
    let s = TestServer::start(|r| sse_answer(r, Duration::from_millis(25))).await;
    let early = |b: &Bench| {
        let runs = b.runs();
        records(&runs[0].1)
            .iter()
            .filter(|r| r["start_offset"].as_f64().unwrap() < 0.1)
            .count()
    };
    let base = small_run("D(10,8)", "4", "12", &[]);
    let b = Bench::new();
    ok(&b.command_url(&url(&s), &base).output().unwrap());
    assert_eq!(early(&b), 4, "all four clients start at once by default");

    let b2 = Bench::new();
    let mut args = base.to_vec();
    args.extend(["--spawn-rate", "4"]);
    ok(&b2.command_url(&url(&s), &args).output().unwrap());
    assert_eq!(early(&b2), 1, "one client per 250 ms");
    let runs = b2.runs();
    assert_eq!(
        runs[0].1["individual_request_metrics"]
            .as_array()
            .unwrap()
            .len(),
        12
    );
    assert_eq!(b2.metadata()["spawn_rate"], 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataset_config_loads_local_files_and_names_what_it_cannot_do() {
    let _m = crate::common::shared_machine().await;
    let s = server().await;
    let b = Bench::new();
    let dir = b.base().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("rows.jsonl"),
        "{\"question\": \"What is a sonnet?\", \"id\": 1}\n{\"question\": \"Who wrote Hamlet?\", \"id\": 2}\n",
    )
    .unwrap();
    let write = |name: &str, v: Value| {
        let p = dir.join(name);
        std::fs::write(&p, v.to_string()).unwrap();
        p
    };
    let good = write(
        "config.json",
        serde_json::json!({"source": {"type": "file", "path": "rows.jsonl", "file_format": "jsonl"},
                           "prompt_column": "question"}),
    );
    let out = b
        .command_url(
            &url(&s),
            &[
                "--num-concurrency",
                "1",
                "--max-requests-per-run",
                "4",
                "--max-time-per-run",
                "1",
                "--dataset-config",
                good.to_str().unwrap(),
            ],
        )
        .output()
        .unwrap();
    ok(&out);
    for p in prompts(&s) {
        assert!(p == "What is a sonnet?" || p == "Who wrote Hamlet?", "{p}");
    }
    let meta = b.metadata();
    assert!(
        meta["dataset_path"]
            .as_str()
            .unwrap()
            .ends_with("rows.jsonl"),
        "{meta}"
    );
    assert_eq!(meta["traffic_scenario"][0], "dataset");

    let refusals = [
        (
            serde_json::json!({"source": {"type": "huggingface", "path": "squad"}}),
            "source type 'huggingface' is not downloaded by this client",
        ),
        (
            serde_json::json!({"source": {"type": "file", "path": "rows.jsonl"},
                               "prompt_lambda": "lambda item: item['question']"}),
            "prompt_lambda is Python code",
        ),
        (
            serde_json::json!({"source": {"type": "custom", "loader_class": "x.Y"}}),
            "runs a Python loader class",
        ),
        (
            serde_json::json!({"prompt_column": "q"}),
            "is not a dataset configuration",
        ),
    ];
    for (i, (config, want)) in refusals.into_iter().enumerate() {
        let p = write(&format!("bad{i}.json"), config);
        let b = Bench::new();
        let e = failed(
            &b.command_url(&url(&s), &["--dataset-config", p.to_str().unwrap()])
                .output()
                .unwrap(),
        );
        assert!(e.contains(want), "{want}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_flags_a_backend_does_not_read_are_named_and_never_written() {
    let _m = crate::common::shared_machine().await;
    let s = server().await;
    let b = Bench::new();
    let secret = "aws-secret-value-1234";
    let out = b
        .command_url(
            &url(&s),
            &small_run(
                "D(10,4)",
                "1",
                "1",
                &[
                    "--aws-region",
                    "us-west-2",
                    "--aws-secret-access-key",
                    secret,
                    "--auth",
                    "INSTANCE_PRINCIPAL",
                    "--model-auth-type",
                    "api_key",
                ],
            ),
        )
        .output()
        .unwrap();
    let e = ok(&out);
    assert!(
        e.contains(
            "--aws-secret-access-key, --aws-region are only read by --api-backend aws-bedrock"
        ),
        "{e}"
    );
    assert!(
        e.contains("--auth is only read by --api-backend oci-cohere"),
        "{e}"
    );
    let meta = b.metadata();
    assert_eq!(meta["auth_config"]["model_auth_type"], "api_key");
    let cmd = meta["cmd"].as_str().unwrap();
    assert!(cmd.contains("--aws-secret-access-key [REDACTED]"), "{cmd}");
    for f in walk(&b.folder()) {
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        assert!(!text.contains(secret), "{} holds the secret", f.display());
    }
    assert!(!e.contains(secret));
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn upload_flags_are_checked_before_any_request() {
    let b = Bench::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--upload-results"],
            "--upload-results needs --storage-bucket",
        ),
        (
            &["--upload-results", "--storage-bucket", "b"],
            "--storage-provider oci is not built into this client yet; use --storage-provider aws",
        ),
        (
            &[
                "--upload-results",
                "--storage-bucket",
                "b",
                "--storage-provider",
                "gcp",
            ],
            "--storage-provider gcp is not built into this client yet",
        ),
        (
            &[
                "--upload-results",
                "--storage-bucket",
                "b",
                "--storage-provider",
                "aws",
                "--storage-aws-access-key-id",
                "AKIAEXAMPLE",
            ],
            "needs both an access key ID and a secret access key",
        ),
    ];
    for (args, want) in cases {
        let out = b
            .command_url("http://127.0.0.1:9/predict", args)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("HOME", b.base())
            .output()
            .unwrap();
        let e = failed(&out);
        assert!(e.contains(want), "{args:?}: {e}");
        assert!(!b.folder().exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_results_writes_every_file_to_s3_signed() {
    let _m = crate::common::shared_machine().await;
    let (store, id, secret) = tokio::task::spawn_blocking(|| moto_s3("results"))
        .await
        .unwrap();
    let s = server().await;
    let b = Bench::new();
    let run = |b: &Bench, bucket: &str, secret: &str| {
        b.command_url(
            &url(&s),
            &small_run(
                "D(10,4)",
                "1",
                "2",
                &[
                    "--upload-results",
                    "--storage-provider",
                    "AWS",
                    "--storage-bucket",
                    bucket,
                    "--storage-prefix",
                    "team/nightly/",
                    "--storage-aws-access-key-id",
                    &id,
                    "--storage-aws-secret-access-key",
                    secret,
                ],
            ),
        )
        .env("AWS_ENDPOINT_URL", &store.base)
        .output()
        .unwrap()
    };
    let e = ok(&run(&b, "results", &secret));
    assert!(
        e.contains("uploaded") && e.contains("s3://results/team/nightly/exp/"),
        "{e}"
    );
    let objects = {
        let (id, secret) = (id.clone(), secret.clone());
        let store_ref = &store;
        tokio::task::block_in_place(|| {
            moto_s3_objects(store_ref, &id, &secret, "results", "team/nightly/")
        })
    };
    // Every file of the folder (run files with parentheses and commas in
    // their names included), byte for byte; not the lock.
    let mut local = std::collections::BTreeMap::new();
    for f in walk(&b.folder()) {
        let rel = f
            .strip_prefix(b.folder())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        // The lock is not uploaded; the log goes on after the upload
        // (its "uploaded" line), so only its presence is compared.
        if rel == ".lock" || rel == "genai_bench.log" {
            continue;
        }
        use sha2::Digest as _;
        local.insert(
            format!("team/nightly/exp/{rel}"),
            hex::encode(sha2::Sha256::digest(std::fs::read(&f).unwrap())),
        );
    }
    assert!(
        local.keys().any(|k| k.contains("/D10_4_text-to-text")),
        "{local:?}"
    );
    assert!(objects.contains_key("team/nightly/exp/genai_bench.log"));
    assert!(!objects.contains_key("team/nightly/exp/.lock"));
    let uploaded: std::collections::BTreeMap<_, _> = objects
        .into_iter()
        .filter(|(k, _)| !k.ends_with("/genai_bench.log"))
        .collect();
    assert_eq!(uploaded, local);
    assert!(!e.contains(&secret));

    // A wrong secret: moto refuses the signature; the results stay local
    // and the error says what S3 said.
    let b2 = Bench::new();
    let e2 = failed(&run(&b2, "results", "not-the-secret-key-0000"));
    assert!(e2.contains("SignatureDoesNotMatch"), "{e2}");
    assert!(e2.contains("the results are in"), "{e2}");
    assert!(b2.folder().join("experiment_metadata.json").is_file());
    // A bucket that does not exist.
    let b3 = Bench::new();
    let e3 = failed(&run(&b3, "no-such-bucket", &secret));
    assert!(e3.contains("NoSuchBucket"), "{e3}");
}

#[test]
fn oci_setup_problems_are_named_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/test-oci-api-key.pem");
    let config = dir.path().join("oci_config");
    std::fs::write(
        &config,
        format!(
            "[DEFAULT]\nuser=ocid1.user.oc1..u\nfingerprint=aa:bb\ntenancy=ocid1.tenancy.oc1..t\n\
             key_file={}\n",
            key.display()
        ),
    )
    .unwrap();
    let compartment = r#"{"compartmentId": "ocid1.compartment.oc1..c"}"#;
    let run = |args: &[&str]| {
        let out = crate::common::genai_bench()
            .args(["benchmark", "--api-backend", "oci-genai"])
            .args(["--api-model-name", "meta.llama-3.3-70b-instruct"])
            .arg("--model-tokenizer")
            .arg(crate::benchmark::test_tokenizer())
            .arg("--experiment-base-dir")
            .arg(dir.path())
            .args(small_run("D(10,10)", "1", "1", &["--no-preflight"]))
            .args(args)
            .env("HOME", dir.path())
            .env_remove("OCI_CLI_CONFIG_FILE")
            .output()
            .unwrap();
        failed(&out)
    };
    let config = config.to_str().unwrap();
    let url = "http://127.0.0.1:9";
    let cases: &[(&[&str], &str)] = &[
        // No config file at ~/.oci/config.
        (
            &[
                "--api-base",
                url,
                "--additional-request-params",
                compartment,
            ],
            "create one with `oci setup config`",
        ),
        (
            &[
                "--api-base",
                url,
                "--config-file",
                config,
                "--auth",
                "instance_principal",
                "--additional-request-params",
                compartment,
            ],
            "use --auth user_principal",
        ),
        (
            &["--api-base", url, "--config-file", config],
            "--additional-request-params '{\"compartmentId\"",
        ),
        // No --api-base, and no region to derive it from.
        (
            &[
                "--config-file",
                config,
                "--additional-request-params",
                compartment,
            ],
            "--region",
        ),
        (
            &[
                "--api-base",
                url,
                "--config-file",
                config,
                "--profile",
                "PROD",
                "--additional-request-params",
                compartment,
            ],
            "has no profile [PROD]",
        ),
    ];
    for (args, want) in cases {
        let e = run(args);
        assert!(e.contains(want), "{args:?}: {e}");
    }
}
