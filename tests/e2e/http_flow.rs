//! The real flow: the host sends a plugin-built request over loopback HTTP,
//! timestamps chunks as they arrive and turns the plugin's events into a
//! measured exchange.

use std::time::Duration;

use genai_bench::plugin::Task;
use genai_bench::transport::{ErrorKind, Exchange, Secret, Target, Transport};

use crate::common::server::{Canned, TestServer};
use crate::common::{baseten, chat_request};

const KEY: &str = "sk-test-secret-key-123";

fn transport(server: &TestServer, key: Option<&str>) -> Transport {
    let base =
        url::Url::parse(&format!("{}/environments/production/predict", server.base)).unwrap();
    Transport::new(
        Transport::client_for(4).unwrap(),
        Target::new(base, Secret::new(key.map(String::from))),
        tokio::runtime::Handle::current(),
    )
}

async fn run(canned: Canned, stream: bool, params: &str) -> (Exchange, TestServer) {
    let server = TestServer::start(move |_| canned.clone()).await;
    let t = transport(&server, Some(KEY));
    let ex = t
        .execute(
            &baseten(),
            chat_request("Hello", Some(3), stream, params),
            7,
        )
        .await;
    (ex, server)
}

fn sse(parts: &[&str]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.as_bytes().to_vec()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_chat_is_timed_per_chunk_and_sent_with_the_key() {
    let _machine = crate::common::shared_machine().await;
    let mut canned = Canned::new(
        200,
        "text/event-stream",
        sse(&[
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"one\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\" two\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\" three\"},\"finish_reason\":\"length\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":3}}\n\n",
            "data: [DONE]\n\n",
        ]),
    );
    canned.delay = Duration::from_millis(30);
    let (ex, server) = run(canned, true, r#"{"temperature": 0.7}"#).await;
    assert!(ex.error.is_none(), "{:?}", ex.error);
    assert_eq!(ex.content, "one two three");
    assert_eq!(ex.usage.completion_tokens, Some(3));
    assert_eq!(ex.usage.prompt_tokens, Some(4));
    assert!(ex.end_seen);
    assert_eq!(ex.plugin, baseten().label());
    // The role-only chunk (first, ~30 ms) is not the first token; the
    // content chunk (second, ~60 ms) is.
    let ttft = ex.first_token_at.expect("ttft");
    let role_chunk = ex.chunks[0].at();
    assert!(
        ttft > role_chunk,
        "ttft {ttft:?} vs role chunk {role_chunk:?}"
    );
    assert!(ttft >= Duration::from_millis(55), "{ttft:?}");
    assert!(ex.end_at >= Duration::from_millis(175), "{:?}", ex.end_at);
    assert_eq!(ex.chunks.iter().filter(|c| c.has_text()).count(), 3);

    let got = server.last();
    assert_eq!(got.method, "POST");
    assert_eq!(got.path, "/environments/production/predict");
    assert_eq!(
        got.header("authorization"),
        Some(format!("Api-Key {KEY}").as_str())
    );
    assert_eq!(got.json()["stream"], serde_json::json!(true));
    assert_eq!(got.json()["messages"][0]["content"], "Hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_streaming_json_and_plain_text_flow() {
    let _machine = crate::common::shared_machine().await;
    let (ex, server) = run(
        Canned::new(
            200,
            "application/json",
            sse(&[
                r#"{"choices":[{"message":{"content":"whole answer"}}],"#,
                r#""usage":{"prompt_tokens":2,"completion_tokens":2}}"#,
            ]),
        ),
        false,
        r#"{"temperature": 0.7}"#,
    )
    .await;
    assert!(ex.error.is_none(), "{:?}", ex.error);
    assert_eq!(ex.content, "whole answer");
    assert_eq!(ex.usage.completion_tokens, Some(2));
    assert_eq!(server.last().json()["stream"], serde_json::json!(false));

    let (ex, server) = run(
        Canned::new(200, "text/plain", sse(&["plain ", "text answer"])),
        false,
        r#"{"use_prompt_format": true, "temperature": 0.7}"#,
    )
    .await;
    assert!(ex.error.is_none(), "{:?}", ex.error);
    assert_eq!(ex.content, "plain text answer");
    assert_eq!(server.last().json()["prompt"], "Hello");

    for field in ["text", "output", "response", "generated_text"] {
        let body = format!("{{\"{field}\": \"via {field}\"}}");
        let (ex, _) = run(
            Canned::new(200, "application/json", vec![body.into_bytes()]),
            false,
            r#"{"use_prompt_format": true}"#,
        )
        .await;
        assert!(ex.error.is_none(), "{field}: {:?}", ex.error);
        assert_eq!(ex.content, format!("via {field}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_streaming_flow() {
    let _machine = crate::common::shared_machine().await;
    let mut canned = Canned::new(200, "text/plain", sse(&["tok1 ", "tok2\n", "tok3\n"]));
    canned.delay = Duration::from_millis(10);
    let (ex, _) = run(canned, true, r#"{"use_prompt_format": true}"#).await;
    assert!(ex.error.is_none(), "{:?}", ex.error);
    assert_eq!(ex.content, "tok1 tok2\ntok3\n");
    assert!(ex.first_token_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_typed_and_keep_their_codes() {
    let _machine = crate::common::shared_machine().await;
    // HTTP error status with a JSON message.
    let (ex, _) = run(
        Canned::new(
            403,
            "application/json",
            sse(&[r#"{"error": "Forbidden: bad key"}"#]),
        ),
        true,
        "{}",
    )
    .await;
    let e = ex.error.expect("error");
    assert_eq!(e.kind, ErrorKind::Http(403));
    assert_eq!(e.code, 403);
    assert!(e.message.contains("Forbidden"), "{}", e.message);

    // An error object inside a 200 stream.
    let (ex, _) = run(
        Canned::new(
            200,
            "text/event-stream",
            sse(&["data: {\"error\":{\"code\":503,\"message\":\"overloaded\"}}\n\n"]),
        ),
        true,
        "{}",
    )
    .await;
    let e = ex.error.expect("error");
    assert_eq!(e.kind, ErrorKind::Api);
    assert_eq!(e.code, 503);
    assert_eq!(e.message, "overloaded");

    // Malformed JSON in the stream: the server's fault (the plugin read it
    // fine and says so), recorded with the real status.
    let (ex, _) = run(
        Canned::new(
            200,
            "text/event-stream",
            sse(&["data: {\"choices\": [\n\n"]),
        ),
        true,
        "{}",
    )
    .await;
    let e = ex.error.expect("error");
    assert_eq!(e.kind, ErrorKind::Malformed, "{e:?}");
    assert_eq!(e.code, 200);
    assert!(e.message.contains("malformed JSON"), "{e:?}");

    // The connection breaks mid-stream.
    let mut canned = Canned::new(
        200,
        "text/event-stream",
        sse(&[
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n",
            "data: never",
        ]),
    );
    canned.cut_after = Some(1);
    let (ex, _) = run(canned, true, "{}").await;
    let e = ex.error.expect("error");
    assert_eq!(e.kind, ErrorKind::Reset, "{e:?}");
}

/// A transport to a port with nothing listening.
fn nowhere(key: Option<&str>) -> Transport {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    Transport::new(
        Transport::client_for(1).unwrap(),
        Target::new(
            url::Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(),
            Secret::new(key.map(String::from)),
        ),
        tokio::runtime::Handle::current(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failure_and_timeout_are_counted() {
    let _machine = crate::common::shared_machine().await;
    let t = nowhere(Some(KEY));
    let ex = t
        .execute(&baseten(), chat_request("x", Some(1), true, "{}"), 1)
        .await;
    let e = ex.error.expect("error");
    assert_eq!(e.kind, ErrorKind::Connect);
    assert_eq!(e.code, 503);
    assert!(!e.message.contains(KEY));

    let mut canned = Canned::new(200, "text/event-stream", sse(&["data: [DONE]\n\n"]));
    canned.delay = Duration::from_secs(5);
    let server = TestServer::start(move |_| canned.clone()).await;
    let mut target = Target::new(url::Url::parse(&server.base).unwrap(), Secret::new(None));
    target.timeout = Duration::from_millis(300);
    let t = Transport::new(
        Transport::client_for(1).unwrap(),
        target,
        tokio::runtime::Handle::current(),
    );
    let ex = t
        .execute(&baseten(), chat_request("x", Some(1), true, "{}"), 2)
        .await;
    let e = ex.error.expect("error");
    assert_eq!(e.kind, ErrorKind::Timeout);
    assert_eq!(e.code, 408);
    // Without a key the header is not sent at all.
    assert_eq!(server.last().header("authorization"), None);

    // A body that keeps trickling (a token every 20 ms for 20 s) meets the
    // same timeout: the deadline is looked at only when its timer fires,
    // never at the chunks' wake-ups, and must fire all the same.
    let token = "data: {\"choices\":[{\"delta\":{\"content\":\" t\"}}]}\n\n";
    let mut canned = Canned::new(200, "text/event-stream", sse(&[token; 1000]));
    canned.delay = Duration::from_millis(20);
    let server = TestServer::start(move |_| canned.clone()).await;
    let mut target = Target::new(url::Url::parse(&server.base).unwrap(), Secret::new(None));
    target.timeout = Duration::from_millis(400);
    let t = Transport::new(
        Transport::client_for(1).unwrap(),
        target,
        tokio::runtime::Handle::current(),
    );
    let ex = t
        .execute(&baseten(), chat_request("x", Some(1000), true, "{}"), 3)
        .await;
    let e = ex.error.expect("error");
    assert_eq!(e.kind, ErrorKind::Timeout, "{e:?}");
    assert!(
        ex.chunks.len() >= 5,
        "{} chunks before the timeout",
        ex.chunks.len()
    );
    assert!(ex.end_at < Duration::from_secs(3), "{:?}", ex.end_at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_flow() {
    let _machine = crate::common::shared_machine().await;
    let server = TestServer::start(|_| {
        Canned::new(
            200,
            "application/json",
            vec![
                br#"{"data":[{"embedding":[0.1]}],"usage":{"prompt_tokens":6,"total_tokens":6}}"#
                    .to_vec(),
            ],
        )
    })
    .await;
    let t = transport(&server, Some(KEY));
    let mut req = chat_request("", None, false, "{}");
    req.task = Task::TextToEmbeddings;
    req.documents = vec!["doc".into()];
    let ex = t.execute(&baseten(), req, 3).await;
    assert!(ex.error.is_none(), "{:?}", ex.error);
    assert_eq!(ex.usage.prompt_tokens, Some(6));
    assert_eq!(server.last().json()["input"], serde_json::json!(["doc"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_empty_answers_and_error_bodies_are_recorded_as_such() {
    let _machine = crate::common::shared_machine().await;
    // A redirect is not followed: it could leave --api-base.
    let mut redirect = Canned::new(307, "text/plain", vec![b"moved".to_vec()]);
    redirect
        .headers
        .push(("Location".into(), "http://127.0.0.2:1/elsewhere".into()));
    let (ex, server) = run(redirect, true, "{}").await;
    let e = ex.error.expect("error");
    assert_eq!(e.kind, ErrorKind::Http(307));
    assert_eq!(server.received.lock().unwrap().len(), 1);

    // A 200 stream that ends with neither text nor [DONE] is cut off: an
    // incomplete response, recorded with its real status.
    let (ex, _) = run(
        Canned::new(
            200,
            "text/event-stream",
            sse(&["data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n"]),
        ),
        true,
        "{}",
    )
    .await;
    let e = ex.error.expect("error");
    assert_eq!(e.kind, ErrorKind::Incomplete);
    assert_eq!(e.code, 200);

    // A proxy's HTML error page: the message says what the server said.
    let (ex, _) = run(
        Canned::new(
            502,
            "text/html",
            sse(&["<html>Bad Gateway from proxy</html>"]),
        ),
        true,
        "{}",
    )
    .await;
    let e = ex.error.expect("error");
    assert_eq!(e.code, 502);
    assert!(
        e.message.contains("Bad Gateway from proxy"),
        "{}",
        e.message
    );
}

/// A raw HTTP/1.1 server: the first connection answers one request and
/// keeps the connection, then reads the next request on it and closes
/// without a byte (a server closing an idle keep-alive connection as the
/// request went out); later connections answer normally.
async fn keep_alive_racer() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = requests.clone();
    tokio::spawn(async move {
        let mut conn_no = 0;
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            conn_no += 1;
            let first = conn_no == 1;
            let seen = seen.clone();
            tokio::spawn(async move {
                let body = r#"{"choices":[{"message":{"content":"hi there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":2,"completion_tokens":2}}"#;
                let mut served = 0;
                loop {
                    // Read one request: head, then content-length bytes.
                    let mut buf = Vec::new();
                    let mut tmp = [0u8; 8192];
                    let head_end = loop {
                        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break p + 4;
                        }
                        match sock.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        match sock.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    }
                    seen.fetch_add(1, Ordering::SeqCst);
                    if first && served == 1 {
                        // Hang up without answering.
                        return;
                    }
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if sock.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                    served += 1;
                }
            });
        }
    });
    (format!("http://{addr}"), requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_connection_closed_before_any_response_is_retried_once_and_recorded() {
    let _machine = crate::common::shared_machine().await;
    let (base, requests) = keep_alive_racer().await;
    let url = url::Url::parse(&format!("{base}/environments/production/predict")).unwrap();
    let t = Transport::new(
        Transport::client_for(1).unwrap(),
        Target::new(url, Secret::new(Some(KEY.into()))),
        tokio::runtime::Handle::current(),
    );
    let req = || chat_request("Hello", Some(3), false, "{}");
    let ex = t.execute(&baseten(), req(), 1).await;
    assert!(ex.error.is_none(), "{:?}", ex.error);
    assert_eq!(ex.retries, 0);
    // Reuses the pooled connection, which the server closes unanswered:
    // sent once more on a new connection, and the record says so.
    let ex = t.execute(&baseten(), req(), 2).await;
    assert!(ex.error.is_none(), "{:?}", ex.error);
    assert_eq!(ex.content, "hi there");
    assert_eq!(ex.retries, 1);
    assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 3);
}

/// A closed-loop run through `t` with the Baseten plugin.
async fn closed_loop(
    t: &Transport,
    concurrency: u32,
    max_requests: u64,
    max_time: Duration,
    source: impl genai_bench::scheduler::RequestSource,
) -> genai_bench::scheduler::RunOutcome {
    use genai_bench::scheduler::{RunSpec, Stop, run_closed_loop};
    let spec = RunSpec {
        concurrency,
        max_requests,
        max_time,
        task: Task::TextToText,
        stream: true,
        arrivals: None,
        max_concurrency: None,
        spawn_rate: None,
    };
    let (_stop, stop_rx) = tokio::sync::watch::channel(Stop::Run);
    run_closed_loop(
        t,
        genai_bench::plugin::swap::PluginSlot::new(baseten()),
        Box::new(source),
        spec,
        std::sync::Arc::new(|s: &str| s.split_whitespace().count() as u64),
        stop_rx,
        std::sync::Arc::new(genai_bench::progress::Progress::new()),
    )
    .await
}

/// A good answer, a malformed stream, an HTTP 500 and a body cut short, in
/// turn by arrival order.
fn by_turn(k: usize) -> Canned {
    let good =
        "data: {\"choices\":[{\"delta\":{\"content\":\"one\"},\"finish_reason\":\"stop\"}]}\n\n";
    match k % 4 {
        0 => Canned::new(200, "text/event-stream", sse(&[good, "data: [DONE]\n\n"])),
        1 => Canned::new(200, "text/event-stream", sse(&["data: {not json\n\n"])),
        2 => Canned::new(
            500,
            "application/json",
            sse(&["{\"error\": {\"message\": \"overloaded\"}}"]),
        ),
        _ => {
            let mut c = Canned::new(200, "text/event-stream", sse(&[good, good]));
            c.cut_after = Some(1);
            c
        }
    }
}

/// Next requests for [`Transport::send`]: "question N" from N = 2 on, built
/// with the plugin in `slot`; counts how often it was asked.
struct Questions {
    slot: std::sync::Arc<genai_bench::plugin::swap::PluginSlot>,
    next: std::sync::Mutex<u64>,
}

impl genai_bench::transport::NextRequest for Questions {
    fn take(&self) -> Option<(genai_bench::plugin::BenchRequest, u64)> {
        let mut n = self.next.lock().unwrap();
        *n += 1;
        Some((
            chat_request(&format!("question {n}"), Some(3), true, "{}"),
            *n,
        ))
    }
    fn plugin(&self) -> std::sync::Arc<genai_bench::plugin::LoadedPlugin> {
        self.slot.current()
    }
}

/// A server answering as [`by_turn`] says, in arrival order.
async fn by_turn_server() -> TestServer {
    let turn = std::sync::atomic::AtomicUsize::new(0);
    TestServer::start(move |_| by_turn(turn.fetch_add(1, std::sync::atomic::Ordering::SeqCst)))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_end_builds_the_next_request_in_the_same_plugin_visit() {
    use genai_bench::plugin::swap::PluginSlot;
    use genai_bench::transport::{SendState, Then};
    let _machine = crate::common::shared_machine().await;
    let server = by_turn_server().await;
    let base = url::Url::parse(&format!("{}/", server.base)).unwrap();
    let t = Transport::new(
        Transport::client_for(4).unwrap(),
        Target::new(base, Secret::new(Some(KEY.into()))),
        tokio::runtime::Handle::current(),
    );
    // The next request takes the plugin in the slot when it is built, not
    // the one of the request in flight.
    let openai = crate::common::runtime().load_builtin("openai").unwrap();
    let questions = std::sync::Arc::new(Questions {
        slot: PluginSlot::new(openai.clone()),
        next: std::sync::Mutex::new(1),
    });
    let then: Then = questions.clone();
    let asked = || *questions.next.lock().unwrap() - 1;
    let mut now = t
        .prepare(
            &baseten(),
            chat_request("question 1", Some(3), true, "{}"),
            1,
        )
        .await
        .unwrap_or_else(|e| panic!("{:?}", e.error));
    // Every response whose parser runs to its end builds the next one: a
    // good answer, an HTTP error, a body cut short. A malformed one (its
    // parser fails first) asks for none; the worker takes it the usual way.
    let want = [
        (None, true),
        (Some(ErrorKind::Malformed), false),
        (Some(ErrorKind::Http(500)), true),
        (Some(ErrorKind::Reset), true),
    ];
    for (i, (kind, built)) in want.into_iter().enumerate() {
        let before = asked();
        let (ex, next) = t.send(now, Some(then.clone()), &SendState::default()).await;
        assert_eq!(
            ex.error.as_ref().map(|e| e.kind.clone()),
            kind,
            "{:?}",
            ex.error
        );
        now = match next {
            Some(Ok(p)) if built => {
                assert_eq!(asked(), before + 1);
                assert_eq!(p.request_id(), before + 2);
                assert_eq!(p.plugin().label(), openai.label());
                p
            }
            None if !built => {
                assert_eq!(asked(), before, "response {i}: a next request was taken");
                let id = before + 2;
                *questions.next.lock().unwrap() = id;
                let req = chat_request(&format!("question {id}"), Some(3), true, "{}");
                t.prepare(&questions.slot.current(), req, id)
                    .await
                    .unwrap_or_else(|e| panic!("{:?}", e.error))
            }
            Some(Ok(_)) => panic!("response {i}: built, though its parser failed first"),
            Some(Err(e)) => panic!("response {i}: {:?}", e.error),
            None => panic!("response {i}: not built in the response's visit"),
        };
    }
    // Each was sent once, with its own prompt, by the plugin it was built with.
    let (ex, _) = t.send(now, None, &SendState::default()).await;
    assert!(ex.error.is_none(), "{:?}", ex.error);
    let got = server.received.lock().unwrap().clone();
    assert_eq!(got.len(), 5);
    for (i, r) in got.iter().enumerate() {
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            body.contains(&format!("question {}\"", i + 1)),
            "{i}: {body}"
        );
        assert_eq!(r.path == "/v1/chat/completions", i > 0, "{i}: {}", r.path);
    }

    // A request that fails before any response asks for no next one.
    let dead = nowhere(None);
    let p = dead
        .prepare(&baseten(), chat_request("x", Some(1), true, "{}"), 1)
        .await
        .unwrap_or_else(|e| panic!("{:?}", e.error));
    let before = asked();
    let state = SendState::default();
    let (ex, next) = dead.send(p, Some(then.clone()), &state).await;
    assert_eq!(ex.error.map(|e| e.kind), Some(ErrorKind::Connect));
    assert!(next.is_none());
    assert_eq!(asked(), before);
    assert!(!state.body_ended());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_loop_sends_each_prompt_exactly_once_whichever_way_requests_fail() {
    let _machine = crate::common::shared_machine().await;
    let server = by_turn_server().await;
    let t = transport(&server, Some(KEY));
    let mut n = 0;
    let source = move || -> anyhow::Result<(genai_bench::plugin::BenchRequest, Option<u64>)> {
        n += 1;
        Ok((
            chat_request(&format!("question {n}"), Some(3), true, "{}"),
            Some(2),
        ))
    };
    let out = closed_loop(&t, 3, 40, Duration::from_secs(120), source).await;
    assert_eq!(out.records.len(), 40);
    let kinds = |k: &str| {
        out.records
            .iter()
            .filter(|r| r.error_kind.as_deref() == Some(k))
            .count()
    };
    assert_eq!(
        (kinds("malformed"), kinds("http"), kinds("reset")),
        (10, 10, 10)
    );
    assert_eq!(
        out.records
            .iter()
            .filter(|r| r.error_code.is_none())
            .count(),
        10
    );
    // The server saw prompts 1 to 40, each once.
    let mut prompts: Vec<u64> = server
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|r| {
            let body = String::from_utf8_lossy(&r.body).into_owned();
            let at = body.find("question ").expect("a prompt") + "question ".len();
            body[at..].split('"').next().unwrap().parse().unwrap()
        })
        .collect();
    prompts.sort_unstable();
    assert_eq!(prompts, (1..=40).collect::<Vec<u64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_loop_of_fewer_than_two_requests_a_worker_starts_at_its_concurrency() {
    let _machine = crate::common::shared_machine().await;
    // Every answer takes 800 ms (two chunks, 400 ms before each).
    let good =
        "data: {\"choices\":[{\"delta\":{\"content\":\"one\"},\"finish_reason\":\"stop\"}]}\n\n";
    let mut canned = Canned::new(200, "text/event-stream", sse(&[good, "data: [DONE]\n\n"]));
    canned.delay = Duration::from_millis(400);
    let arrivals = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let a2 = arrivals.clone();
    let server = TestServer::start(move |_| {
        a2.lock().unwrap().push(std::time::Instant::now());
        canned.clone()
    })
    .await;
    let t = transport(&server, Some(KEY));
    let source = || -> anyhow::Result<(genai_bench::plugin::BenchRequest, Option<u64>)> {
        Ok((chat_request("x", Some(3), true, "{}"), Some(1)))
    };
    let out = closed_loop(&t, 8, 12, Duration::from_secs(60), source).await;
    assert_eq!(out.records.len(), 12);
    assert!(out.records.iter().all(|r| r.error_code.is_none()));
    // A worker taking its next prompt ahead must not take another's first:
    // all 8 went out before any answer could end.
    let got = arrivals.lock().unwrap().clone();
    assert_eq!(got.len(), 12);
    let first_wave = got[7].duration_since(got[0]);
    assert!(
        first_wave < Duration::from_millis(500),
        "the 8th request went out {first_wave:?} after the first"
    );
}

/// A closed loop with a 1 s limit whose only plugin thread is blocked for
/// `block` from the moment each request arrives: its answer (in at once)
/// waits that long to be parsed, past the limit. The run's outcome, how
/// long it took, and how many requests the server saw.
async fn run_with_parsing_blocked(
    block: Duration,
) -> (genai_bench::scheduler::RunOutcome, Duration, usize) {
    let plugin_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let plugin_exec = plugin_rt.handle().clone();
    let good =
        "data: {\"choices\":[{\"delta\":{\"content\":\"one\"},\"finish_reason\":\"stop\"}]}\n\n";
    let canned = Canned::new(200, "text/event-stream", sse(&[good, "data: [DONE]\n\n"]));
    let blocker = plugin_exec.clone();
    let server = TestServer::start(move |_| {
        blocker.spawn(async move { std::thread::sleep(block) });
        canned.clone()
    })
    .await;
    let base =
        url::Url::parse(&format!("{}/environments/production/predict", server.base)).unwrap();
    let t = Transport::new(
        Transport::client_for(1).unwrap(),
        Target::new(base, Secret::new(Some(KEY.into()))),
        plugin_exec,
    );
    let source = || -> anyhow::Result<(genai_bench::plugin::BenchRequest, Option<u64>)> {
        Ok((chat_request("x", Some(3), true, "{}"), Some(1)))
    };
    let started = std::time::Instant::now();
    let out = closed_loop(&t, 1, 5, Duration::from_secs(1), source).await;
    let took = started.elapsed();
    plugin_rt.shutdown_background();
    let seen = server.received.lock().unwrap().len();
    (out, took, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_in_before_the_run_is_cut_is_recorded_not_cancelled() {
    let _machine = crate::common::shared_machine().await;
    let (out, _, seen) = run_with_parsing_blocked(Duration::from_millis(1300)).await;
    // Its timestamps were final before the limit: it counts, with the
    // server's answer, and no next request went out after the limit.
    assert_eq!(out.records.len(), 1);
    let r = &out.records[0];
    assert_eq!(r.error_kind, None, "{:?}", r.error_message);
    assert_eq!(r.num_output_tokens, Some(1));
    assert!(r.e2e_latency.unwrap() < 0.5, "{:?}", r.e2e_latency);
    assert_eq!(seen, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parse_that_outlasts_the_cut_by_its_grace_is_cancelled_and_the_run_ends() {
    let _machine = crate::common::shared_machine().await;
    // Parsing blocked for 6 s: the run still ends about a second (the
    // grace a finished body gets) after its 1 s limit, with the request
    // recorded as cancelled.
    let (out, took, seen) = run_with_parsing_blocked(Duration::from_secs(6)).await;
    assert!(took < Duration::from_secs(4), "the run took {took:?}");
    assert_eq!(out.records.len(), 1);
    assert_eq!(out.records[0].error_kind.as_deref(), Some("cancelled"));
    assert_eq!(seen, 1);
}
