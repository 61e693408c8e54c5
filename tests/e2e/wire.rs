//! Wire shapes against genai-bench 0.0.5 itself: for every backend and task
//! both support, genai-bench's own user class sends one request to a
//! recording server (`tests/wire/genai_bench_wire.py`), our binary sends
//! one to another that answers with the same bytes, and the two requests
//! and what each client read from the answer are compared.
//!
//! Differences are allowed only where listed per case, each with its
//! reason (a genai-bench bug, or a field a benchmark needs).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::server::{Canned, Received, TestServer};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// What genai-bench 0.0.5 sends and reads, from its own code.
fn genai_bench_capture(backend: &str, task: &str, stream: Option<bool>) -> Value {
    let python = repo().join("target/py-genai-bench/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `bash tests/setup.sh` (it installs genai-bench 0.0.5)",
        python.display()
    );
    let mut cmd = Command::new(python);
    cmd.current_dir(repo())
        .env("WIRE_OCI_KEY_FILE", repo().join(OCI_KEY))
        .arg("tests/wire/genai_bench_wire.py")
        .args([backend, task]);
    match stream {
        Some(true) => {
            cmd.arg("--stream");
        }
        Some(false) => {
            cmd.arg("--no-stream");
        }
        None => {}
    }
    let out = cmd.output().expect("run genai_bench_wire.py");
    assert!(
        out.status.success(),
        "genai_bench_wire.py {backend} {task}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the harness prints JSON")
}

/// One backend and task both clients support.
struct Case {
    backend: &'static str,
    /// `--api-model-name` (the harness's default for the backend).
    model: &'static str,
    task: &'static str,
    stream: Option<bool>,
    /// Our flags that make the same request (scenario, batch, Azure deployment).
    flags: &'static [&'static str],
    /// Body keys we send that genai-bench does not, and why.
    extra: &'static [&'static str],
    /// Body keys genai-bench sends that we do not, and why.
    missing: &'static [&'static str],
    /// What our path has after genai-bench's, and why.
    path_suffix: &'static str,
    /// Whether genai-bench reads the answer right (so both must read the
    /// same from it).
    reads_same: bool,
}

/// Body values compared exactly when both send the key: everything but the
/// sampled text (prompts, documents, images).
const SAME_VALUE: &[&str] = &[
    "model",
    "stream",
    "stream_options",
    "temperature",
    "ignore_eos",
    "encoding_format",
    "input_type",
    "embedding_types",
    "truncate",
    "n",
    "size",
    "voice",
    "max_tokens",
];

const CASES: &[Case] = &[
    // --- OpenAI-compatible (OpenAIUser).
    Case {
        model: "test-model",
        backend: "openai",
        task: "text-to-text",
        stream: None,
        flags: &["--traffic-scenario", "D(2,5)"],
        // Our scenario pins the output length as the Baseten fork does.
        extra: &["min_tokens"],
        missing: &[],
        path_suffix: "",
        reads_same: true,
    },
    Case {
        model: "test-model",
        backend: "vllm",
        task: "text-to-text",
        stream: None,
        flags: &["--traffic-scenario", "D(2,5)"],
        extra: &["min_tokens"],
        missing: &[],
        path_suffix: "",
        reads_same: true,
    },
    Case {
        model: "test-model",
        backend: "sglang",
        task: "image-text-to-text",
        stream: None,
        flags: &[
            "--traffic-scenario",
            "I(8,8)",
            "--additional-request-params",
            r#"{"max_tokens": 5}"#,
        ],
        extra: &[],
        missing: &[],
        path_suffix: "",
        reads_same: true,
    },
    Case {
        model: "test-model",
        backend: "openai",
        task: "text-to-embeddings",
        stream: None,
        flags: &["--traffic-scenario", "E(2)", "--batch-size", "1"],
        extra: &[],
        missing: &[],
        path_suffix: "",
        reads_same: true,
    },
    Case {
        model: "test-model",
        backend: "vllm",
        task: "text-to-rerank",
        stream: None,
        flags: &["--traffic-scenario", "R(3,2)", "--batch-size", "1"],
        extra: &[],
        missing: &[],
        path_suffix: "",
        reads_same: true,
    },
    Case {
        model: "test-model",
        backend: "openai",
        task: "text-to-image",
        stream: None,
        flags: &["--traffic-scenario", "I(512,512)"],
        extra: &[],
        missing: &[],
        path_suffix: "",
        reads_same: true,
    },
    Case {
        model: "test-model",
        backend: "openai",
        task: "text-to-speech",
        stream: None,
        flags: &["--traffic-scenario", "A(11)"],
        extra: &[],
        missing: &[],
        path_suffix: "",
        reads_same: true,
    },
    // --- Together (TogetherUser).
    Case {
        model: "test-model",
        backend: "together",
        task: "text-to-text",
        stream: None,
        flags: &["--traffic-scenario", "D(2,5)"],
        extra: &["min_tokens"],
        missing: &[],
        path_suffix: "",
        reads_same: true,
    },
    Case {
        model: "test-model",
        backend: "together",
        task: "text-to-embeddings",
        stream: None,
        flags: &["--traffic-scenario", "E(2)", "--batch-size", "1"],
        extra: &[],
        missing: &[],
        path_suffix: "",
        reads_same: true,
    },
    // --- Azure OpenAI (AzureOpenAIUser).
    Case {
        model: "test-model",
        backend: "azure-openai",
        task: "text-to-text",
        stream: Some(true),
        flags: &[
            "--traffic-scenario",
            "D(2,5)",
            "--azure-deployment",
            "test-deploy",
        ],
        extra: &["min_tokens"],
        missing: &[],
        path_suffix: "",
        reads_same: true,
    },
    Case {
        model: "test-model",
        backend: "azure-openai",
        task: "text-to-embeddings",
        stream: None,
        flags: &[
            "--traffic-scenario",
            "E(2)",
            "--batch-size",
            "1",
            "--azure-deployment",
            "test-deploy",
        ],
        extra: &[],
        missing: &[],
        path_suffix: "",
        reads_same: true,
    },
    // --- Cohere v2 (CohereUser).
    Case {
        model: "test-model",
        backend: "cohere",
        task: "text-to-text",
        stream: None,
        flags: &["--traffic-scenario", "D(2,5)"],
        // genai-bench sends no output length (a D scenario meant nothing)
        // and passes ignore_eos, which Cohere does not take.
        extra: &["max_tokens"],
        missing: &["ignore_eos"],
        path_suffix: "",
        reads_same: true,
    },
    Case {
        model: "test-model",
        backend: "cohere",
        task: "text-to-embeddings",
        stream: None,
        flags: &["--traffic-scenario", "E(2)", "--batch-size", "1"],
        extra: &[],
        missing: &[],
        path_suffix: "",
        reads_same: true,
    },
    Case {
        model: "test-model",
        backend: "cohere",
        task: "image-to-embeddings",
        stream: None,
        flags: &["--traffic-scenario", "I(8,8)"],
        extra: &[],
        missing: &[],
        path_suffix: "",
        reads_same: true,
    },
    // --- Amazon Bedrock (AWSBedrockUser; the host signs with SigV4).
    Case {
        model: "anthropic.claude-test-model-v1:0",
        backend: "aws-bedrock",
        task: "text-to-text",
        stream: Some(true),
        flags: &["--traffic-scenario", "D(2,5)"],
        // genai-bench merges ignore_eos into the body; Bedrock refuses
        // unknown fields with a 400.
        extra: &[],
        missing: &["ignore_eos"],
        path_suffix: "",
        reads_same: true,
    },
    Case {
        model: "anthropic.claude-test-model-v1:0",
        backend: "aws-bedrock",
        task: "text-to-text",
        stream: Some(false),
        flags: &["--traffic-scenario", "D(2,5)"],
        // ...and `stream: false`, which is no Bedrock field either.
        extra: &[],
        missing: &["ignore_eos", "stream"],
        path_suffix: "",
        reads_same: true,
    },
    Case {
        model: "anthropic.claude-test-model-v1:0",
        backend: "aws-bedrock",
        task: "image-text-to-text",
        stream: Some(true),
        flags: &[
            "--traffic-scenario",
            "I(8,8)",
            "--additional-request-params",
            r#"{"max_tokens": 5}"#,
        ],
        extra: &[],
        missing: &["ignore_eos"],
        path_suffix: "",
        reads_same: true,
    },
    Case {
        model: "amazon.titan-embed-test-model-v2:0",
        backend: "aws-bedrock",
        task: "text-to-embeddings",
        stream: None,
        flags: &["--traffic-scenario", "E(2)", "--batch-size", "1"],
        extra: &[],
        missing: &[],
        path_suffix: "",
        reads_same: true,
    },
    // --- Vertex AI (GCPVertexUser; the host gets an OAuth token).
    Case {
        model: "gemini-test-model",
        backend: "gcp-vertex",
        task: "text-to-text",
        stream: Some(true),
        flags: &["--traffic-scenario", "D(2,5)"],
        // Vertex refuses unknown fields such as ignore_eos.
        extra: &[],
        missing: &["ignore_eos"],
        // Server-sent events: without alt=sse Vertex answers one
        // pretty-printed JSON array, from which genai-bench's line reader
        // gets nothing (its request is dropped).
        path_suffix: "?alt=sse",
        reads_same: false,
    },
    Case {
        model: "gemini-test-model",
        backend: "gcp-vertex",
        task: "image-text-to-text",
        stream: Some(false),
        flags: &[
            "--traffic-scenario",
            "I(8,8)",
            "--additional-request-params",
            r#"{"max_tokens": 5}"#,
        ],
        extra: &[],
        missing: &["ignore_eos", "stream"],
        path_suffix: "",
        // genai-bench drops vision requests (no prompt token count).
        reads_same: false,
    },
    Case {
        model: "test-model",
        backend: "gcp-vertex",
        task: "text-to-embeddings",
        stream: None,
        flags: &["--traffic-scenario", "E(2)", "--batch-size", "1"],
        extra: &[],
        missing: &[],
        path_suffix: "",
        // genai-bench counts predictions as input tokens.
        reads_same: false,
    },
    // --- OCI Generative AI (OCI SDK / oci-openai; the host signs).
    // The COHERE stream has no usage: genai-bench counts one token per
    // event, ours counts the text with the model's tokenizer.
    oci(
        "oci-cohere",
        "text-to-text",
        &[
            "--traffic-scenario",
            "D(2,5)",
            "--additional-request-params",
            OCI_PARAMS,
        ],
        false,
    ),
    oci(
        "oci-cohere",
        "text-to-embeddings",
        &[
            "--traffic-scenario",
            "E(2)",
            "--batch-size",
            "1",
            "--additional-request-params",
            OCI_PARAMS,
        ],
        true,
    ),
    oci(
        "oci-cohere",
        "image-to-embeddings",
        &[
            "--traffic-scenario",
            "I(8,8)",
            "--additional-request-params",
            OCI_PARAMS,
        ],
        true,
    ),
    oci(
        "oci-cohere",
        "text-to-rerank",
        &[
            "--traffic-scenario",
            "R(3,2)",
            "--batch-size",
            "1",
            "--additional-request-params",
            OCI_PARAMS,
        ],
        true,
    ),
    oci(
        "oci-cohere-v2",
        "text-to-text",
        &[
            "--traffic-scenario",
            "D(2,5)",
            "--additional-request-params",
            OCI_PARAMS,
        ],
        true,
    ),
    Case {
        flags: &[
            "--traffic-scenario",
            "I(8,8)",
            "--additional-request-params",
            r#"{"compartmentId": "ocid1.compartment.oc1..aaaatestcompartment", "max_tokens": 5}"#,
        ],
        ..oci("oci-cohere-v2", "image-text-to-text", &[], true)
    },
    oci(
        "oci-genai",
        "text-to-text",
        &[
            "--traffic-scenario",
            "D(2,5)",
            "--additional-request-params",
            OCI_PARAMS,
        ],
        true,
    ),
    oci(
        "oci-openai",
        "text-to-image",
        &[
            "--traffic-scenario",
            "I(512,512)",
            "--additional-request-params",
            OCI_PARAMS,
        ],
        true,
    ),
    oci(
        "oci-openai",
        "text-to-speech",
        &[
            "--traffic-scenario",
            "A(11)",
            "--additional-request-params",
            OCI_PARAMS,
        ],
        true,
    ),
];

/// The compartment genai-bench's OCI users need (the harness's).
const OCI_PARAMS: &str = r#"{"compartmentId": "ocid1.compartment.oc1..aaaatestcompartment"}"#;

/// An OCI case with our `flags`: bodies have the same keys as
/// genai-bench's (the chat request's are compared separately).
const fn oci(
    backend: &'static str,
    task: &'static str,
    flags: &'static [&'static str],
    reads_same: bool,
) -> Case {
    Case {
        model: "test-model",
        backend,
        task,
        stream: None,
        flags,
        extra: &[],
        missing: &[],
        path_suffix: "",
        reads_same,
    }
}

/// The RSA key both clients sign OCI requests with.
const OCI_KEY: &str = "host/tests/data/test-oci-api-key.pem";

/// The attributes of an OCI `Signature k="v",...` header (their order is
/// free).
fn signature_attributes(v: &str) -> std::collections::BTreeMap<String, String> {
    v.trim_start_matches("Signature ")
        .split("\",")
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.trim_matches('"').to_string()))
        })
        .collect()
}

/// Recomputes an OCI signature of a received request (its date, host,
/// path, body digest) with the test key and checks it is the one sent.
fn same_oci_signature(
    label: &str,
    who: &str,
    method: &str,
    path: &str,
    header: &dyn Fn(&str) -> Option<String>,
) {
    let auth = header("authorization").unwrap();
    let attrs = signature_attributes(&auth);
    assert_eq!(
        attrs["headers"], "date (request-target) host content-length content-type x-content-sha256",
        "{label}: {who} signed headers"
    );
    assert_eq!(attrs["algorithm"], "rsa-sha256", "{label}");
    let key_path = repo().join(OCI_KEY);
    let signer = genai_bench::oci::Signer::from_pem(
        attrs["keyId"].clone(),
        &std::fs::read_to_string(&key_path).unwrap(),
        &key_path,
    )
    .unwrap();
    let url = url::Url::parse(&format!("http://{}{path}", header("host").unwrap())).unwrap();
    let digest = genai_bench::oci::BodyDigest {
        length: header("content-length").unwrap().parse().unwrap(),
        content_type: header("content-type").unwrap(),
        sha256: header("x-content-sha256").unwrap(),
    };
    let ours = signer
        .authorization(method, &url, &header("date").unwrap(), Some(&digest))
        .unwrap();
    assert_eq!(
        signature_attributes(&ours),
        attrs,
        "{label}: the signature {who} sent is not the one the test key makes for its request"
    );
}

/// A service account whose token endpoint is the test server.
fn service_account(dir: &std::path::Path, token_uri: &str) -> PathBuf {
    let path = dir.join("sa.json");
    std::fs::write(
        &path,
        serde_json::json!({
            "type": "service_account",
            "client_email": "bench@test-project.iam.gserviceaccount.com",
            "private_key": std::fs::read_to_string(repo().join("host/tests/data/test-service-account-key.pem")).unwrap(),
            "token_uri": token_uri,
            "project_id": "test-project",
        })
        .to_string(),
    )
    .unwrap();
    path
}

/// The harness's fake AWS key (tests/wire/genai_bench_wire.py).
const WIRE_AWS: (&str, &str) = ("AKIAWIRETESTKEY00000", "wire-test-secret-key");

/// `yyyymmddThhmmssZ` as a time.
fn amz_date(date: &str) -> std::time::SystemTime {
    let n = |a: usize, b: usize| date[a..b].parse::<i64>().unwrap();
    let (y, mo, d) = (n(0, 4), n(4, 6), n(6, 8));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = days * 86_400 + n(9, 11) * 3600 + n(11, 13) * 60 + n(13, 15);
    std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
}

/// Our SigV4 signer, given the request botocore signed (its headers, its
/// body's hash, its time), must compute botocore's signature.
fn same_signature_as_botocore(label: &str, theirs: &Value) {
    let headers = &theirs["headers"];
    let auth = headers["authorization"].as_str().unwrap();
    let signed = auth
        .split("SignedHeaders=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    let pairs: Vec<(&str, &str)> = signed
        .split(';')
        .filter(|h| *h != "x-amz-date")
        .map(|h| (h, headers[h].as_str().unwrap()))
        .collect();
    let url = format!(
        "http://{}{}",
        headers["host"].as_str().unwrap(),
        theirs["path"].as_str().unwrap()
    );
    let ours = genai_bench::aws::sign(
        genai_bench::aws::Service::Named("bedrock".into()),
        theirs["method"].as_str().unwrap(),
        &url,
        &pairs,
        genai_bench::aws::Payload::Sha256(theirs["body_sha256"].as_str().unwrap()),
        &genai_bench::aws::Credentials::new(WIRE_AWS.0, WIRE_AWS.1, None),
        "us-east-1",
        amz_date(headers["x-amz-date"].as_str().unwrap()),
    )
    .unwrap();
    let ours = &ours.iter().find(|(k, _)| k == "authorization").unwrap().1;
    assert_eq!(ours, auth, "{label}: SigV4 differs from botocore's");
}

/// One AWS event-stream frame with string headers.
fn event_frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut hb = Vec::new();
    for (k, v) in headers {
        hb.push(k.len() as u8);
        hb.extend_from_slice(k.as_bytes());
        hb.push(7);
        hb.extend_from_slice(&(v.len() as u16).to_be_bytes());
        hb.extend_from_slice(v.as_bytes());
    }
    let total = 12 + hb.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(hb.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(&out[..8]).to_be_bytes());
    out.extend_from_slice(&hb);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// The answer genai-bench got, for our client to get too.
fn same_answer(capture: &Value) -> Canned {
    let sent = &capture["response_sent"];
    let content_type = sent["content_type"].as_str().unwrap_or("application/json");
    let len = sent["body_length"].as_u64().unwrap() as usize;
    let preview = sent["body_preview"].as_str().unwrap_or_default();
    let body = if preview.len() == len {
        preview.as_bytes().to_vec()
    } else if let Some(events) = sent["events"].as_array() {
        // Bedrock's event stream, framed again from the decoded events.
        events
            .iter()
            .flat_map(|e| {
                use base64::Engine as _;
                let headers: Vec<(&str, &str)> = e["headers"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
                    .collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .encode(e["decoded_bytes"].to_string());
                event_frame(
                    &headers,
                    serde_json::json!({"bytes": bytes}).to_string().as_bytes(),
                )
            })
            .collect()
    } else {
        // Audio: only its length matters to either client.
        assert!(content_type.starts_with("audio/"), "{capture}");
        vec![0xAA; len]
    };
    // Several chunks, as servers stream.
    let chunks = body.chunks(256).map(<[u8]>::to_vec).collect();
    let mut c = Canned::new(200, content_type, chunks);
    c.delay = Duration::from_millis(2);
    c
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

/// Scheme word of an auth header value (`Bearer`, `Api-Key`), or the value
/// itself for a bare key.
fn scheme(v: &str) -> &str {
    v.split_whitespace().next().unwrap_or_default()
}

fn our_run(case: &Case, server: &TestServer) -> (Received, Value) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = crate::common::genai_bench();
    // OCI's OpenAI-compatible base ends in /openai/v1, as the harness's.
    let base = if case.backend == "oci-openai" {
        format!("{}/openai/v1", server.base)
    } else {
        server.base.clone()
    };
    cmd.args(["benchmark", "--api-backend", case.backend, "--api-base"])
        .arg(&base)
        .args([
            "--api-key",
            "test-key",
            "--api-model-name",
            case.model,
            "--task",
            case.task,
        ])
        .args([
            "--aws-access-key-id",
            WIRE_AWS.0,
            "--aws-secret-access-key",
            WIRE_AWS.1,
        ])
        .args(["--aws-region", "us-east-1"])
        .arg("--gcp-credentials-path")
        .arg(service_account(
            dir.path(),
            &format!("{}/token", server.base),
        ))
        .arg("--model-tokenizer")
        .arg(crate::benchmark::test_tokenizer())
        .args([
            "--max-requests-per-run",
            "1",
            "--max-time-per-run",
            "1",
            "--no-preflight",
        ])
        .arg("--experiment-base-dir")
        .arg(dir.path())
        .args(["--experiment-folder-name", "exp"])
        .args(case.flags);
    // Embeddings of text and rerank iterate over --batch-size (genai-bench).
    if !matches!(case.task, "text-to-embeddings" | "text-to-rerank") {
        cmd.args(["--num-concurrency", "1"]);
    }
    if case.stream == Some(false) {
        cmd.arg("--disable-streaming");
    }
    if case.backend.starts_with("oci-") {
        let config = dir.path().join("oci_config");
        std::fs::write(
            &config,
            format!(
                "[DEFAULT]\nuser=ocid1.user.oc1..aaaatestuser\nfingerprint=d6:c0:e3:d4:1d:a8:5b:d9:68:b7:41:e8:c8:7b:45:af\n\
                 tenancy=ocid1.tenancy.oc1..aaaatesttenancy\nregion=us-chicago-1\nkey_file={}\n",
                repo().join(OCI_KEY).display()
            ),
        )
        .unwrap();
        cmd.arg("--config-file").arg(config);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{} {}: {}",
        case.backend,
        case.task,
        String::from_utf8_lossy(&out.stderr)
    );
    let run = std::fs::read_dir(dir.path().join("exp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.ends_with("s.json") && n != "experiment_metadata.json"
        })
        .expect("a run file");
    let run: Value = serde_json::from_slice(&std::fs::read(run).unwrap()).unwrap();
    let record = run["individual_request_metrics"][0].clone();
    // genai-bench's own pydantic models accept what we wrote for this task.
    let check = Command::new(repo().join("target/py-genai-bench/bin/python"))
        .arg("-c")
        .arg(crate::reports::PYDANTIC_CHECK)
        .arg(dir.path().join("exp"))
        .output()
        .unwrap();
    assert!(
        check.status.success() && String::from_utf8_lossy(&check.stdout).contains("validated 1"),
        "{} {}: genai-bench's models refuse our files ({record}): {}{}",
        case.backend,
        case.task,
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    (server.last(), record)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_readings_match_genai_bench_for_every_shared_backend_and_task() {
    let _m = crate::common::shared_machine().await;
    let mut report = Vec::new();
    for case in CASES {
        let label = format!("{} {}", case.backend, case.task);
        let capture = tokio::task::spawn_blocking({
            let (b, t, s) = (case.backend, case.task, case.stream);
            move || genai_bench_capture(b, t, s)
        })
        .await
        .unwrap();
        let answer = same_answer(&capture);
        // The same server issues Google tokens (the service account's token_uri).
        let server = TestServer::start(move |r| {
            if r.path == "/token" {
                assert!(
                    String::from_utf8_lossy(&r.body).contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=ey"),
                    "a JWT-bearer token request"
                );
                Canned::new(200, "application/json", vec![br#"{"access_token":"ya29.ours","expires_in":3600,"token_type":"Bearer"}"#.to_vec()])
            } else {
                answer.clone()
            }
        })
        .await;
        let (ours, record) = tokio::task::block_in_place(|| our_run(case, &server));
        let theirs = &capture["request"];

        // Method and path (query included).
        assert_eq!(ours.method, theirs["method"], "{label}: method");
        assert_eq!(
            ours.path,
            format!("{}{}", theirs["path"].as_str().unwrap(), case.path_suffix),
            "{label}: path"
        );
        // The credential goes where genai-bench puts it, in the same scheme.
        let their_headers = &theirs["headers"];
        for h in ["authorization", "api-key"] {
            let t = their_headers[h].as_str();
            let o = ours.header(h);
            assert_eq!(
                t.is_some(),
                o.is_some(),
                "{label}: header {h}: {t:?} vs {o:?}"
            );
            if let (Some(t), Some(o)) = (t, o) {
                assert_eq!(scheme(t), scheme(o), "{label}: {h} scheme");
                if case.backend == "gcp-vertex" {
                    assert_eq!(
                        o, "Bearer ya29.ours",
                        "{label}: the token our host obtained"
                    );
                }
                if scheme(t) == "AWS4-HMAC-SHA256" {
                    // The same signed headers and credential scope service.
                    let part = |v: &str, k: &str| {
                        v.split(k)
                            .nth(1)
                            .unwrap()
                            .split(',')
                            .next()
                            .unwrap()
                            .to_string()
                    };
                    assert_eq!(
                        part(o, "SignedHeaders="),
                        part(t, "SignedHeaders="),
                        "{label}"
                    );
                    assert!(
                        o.contains("/us-east-1/bedrock/aws4_request"),
                        "{label}: {o}"
                    );
                    same_signature_as_botocore(&label, theirs);
                }
                if scheme(t) == "Signature" {
                    // Both signatures are the test key's over what was sent,
                    // with the same key ID and signed headers.
                    assert_eq!(
                        signature_attributes(o)["keyId"],
                        signature_attributes(t)["keyId"],
                        "{label}: keyId"
                    );
                    same_oci_signature(
                        &label,
                        "the OCI SDK",
                        theirs["method"].as_str().unwrap(),
                        theirs["path"].as_str().unwrap(),
                        &|h| their_headers[h].as_str().map(str::to_string),
                    );
                    same_oci_signature(&label, "our host", &ours.method, &ours.path, &|h| {
                        ours.header(h).map(str::to_string)
                    });
                    use base64::Engine as _;
                    use sha2::Digest as _;
                    assert_eq!(
                        ours.header("x-content-sha256").unwrap(),
                        base64::engine::general_purpose::STANDARD
                            .encode(sha2::Sha256::digest(&ours.body)),
                        "{label}: x-content-sha256 is the digest of the body sent"
                    );
                }
            }
        }
        let media = |v: Option<&str>| v.map(|v| v.split(';').next().unwrap().trim().to_string());
        assert_eq!(
            media(ours.header("content-type")),
            media(their_headers["content-type"].as_str()),
            "{label}: content-type"
        );

        // Body: the same keys, bar the listed differences, and the same
        // values for everything that is not sampled text.
        let ours_body = ours.json();
        let theirs_body = &theirs["body_json"];
        let mut want: Vec<String> = keys(theirs_body)
            .into_iter()
            .filter(|k| !case.missing.contains(&k.as_str()))
            .collect();
        want.extend(case.extra.iter().map(|k| k.to_string()));
        want.sort();
        assert_eq!(
            keys(&ours_body),
            want,
            "{label}: body keys\nours {ours_body}\ntheirs {theirs_body}"
        );
        for k in SAME_VALUE {
            if let (Some(o), Some(t)) = (ours_body.get(*k), theirs_body.get(*k)) {
                assert_eq!(o, t, "{label}: value of {k}");
            }
        }
        // OCI's chat request is nested: the same keys, and the same values
        // for all but the messages' text.
        if let (Some(o), Some(t)) = (ours_body.get("chatRequest"), theirs_body.get("chatRequest")) {
            assert_eq!(
                keys(o),
                keys(t),
                "{label}: chatRequest keys\nours {o}\ntheirs {t}"
            );
            for k in keys(t) {
                if k == "message" || k == "messages" {
                    continue;
                }
                // genai-bench's COHERE default topK 0.75 is not an integer
                // (OCI's topK is); ours is 0, OCI's documented default.
                if case.backend == "oci-cohere" && k == "topK" {
                    assert_eq!(o[&k], 0, "{label}");
                    continue;
                }
                assert_eq!(o[&k], t[&k], "{label}: chatRequest.{k}");
            }
            // Messages: the same roles and part types.
            let shape = |v: &Value| -> Vec<(String, Vec<String>)> {
                v["messages"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| {
                        (
                            m["role"].as_str().unwrap_or_default().to_string(),
                            m["content"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .map(|p| p["type"].as_str().unwrap_or_default().to_string())
                                .collect(),
                        )
                    })
                    .collect()
            };
            assert_eq!(shape(o), shape(t), "{label}: messages");
        }
        for k in ["servingMode", "compartmentId", "inputType", "truncate"] {
            if let (Some(o), Some(t)) = (ours_body.get(k), theirs_body.get(k)) {
                assert_eq!(o, t, "{label}: value of {k}");
            }
        }
        if case.backend == "oci-openai" {
            assert_eq!(
                ours.header("compartmentid"),
                their_headers["compartmentid"].as_str(),
                "{label}: the compartment header"
            );
        }
        if let Some(docs) = theirs_body
            .get("documents")
            .or(theirs_body.get("input"))
            .or(theirs_body.get("texts"))
            .or(theirs_body.get("inputs"))
        {
            let ours_docs = ours_body
                .get("documents")
                .or(ours_body.get("input"))
                .or(ours_body.get("texts"))
                .or(ours_body.get("inputs"))
                .unwrap();
            assert_eq!(
                ours_docs.as_array().map(Vec::len),
                docs.as_array().map(Vec::len),
                "{label}: documents per request"
            );
        }

        // What each client read from the same bytes.
        let parsed = &capture["parsed"];
        assert!(record["error_code"].is_null(), "{label}: {record}");
        if !case.reads_same {
            report.push(label);
            continue;
        }
        if let Some(n) = parsed["tokens_received"].as_u64() {
            assert_eq!(record["num_output_tokens"], n, "{label}: output tokens");
            assert!(record["ttft"].as_f64().unwrap() > 0.0, "{label}");
        }
        if let Some(n) = parsed["audio_bytes"].as_u64() {
            assert_eq!(record["audio_bytes"], n, "{label}: audio bytes");
            assert!(record["ttft"].as_f64().unwrap() <= record["e2e_latency"].as_f64().unwrap());
        }
        if let Some(n) = parsed["images_generated"].as_u64() {
            assert_eq!(record["num_images"], n, "{label}: images");
        }
        // The server's own prompt count, where genai-bench used it.
        if parsed["num_prefill_tokens"] == 7 {
            assert_eq!(
                record["server_prompt_tokens"], 7,
                "{label}: server prompt tokens"
            );
        }
        report.push(label);
    }
    assert_eq!(report.len(), CASES.len());
}
