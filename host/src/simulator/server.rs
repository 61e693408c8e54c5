//! The HTTP server: accept loop, routing, auth, faults and the timing model.

use std::convert::Infallible;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use super::body::{SimBody, Step, TokenStream};
use super::config::{SimConfig, secs};
use super::faults::{self, FaultKind};
use super::ground_truth::{Recorder, RequestFormat, Sink};
use super::render::{self, StreamKind, Template};
use super::request::{self, Endpoint, SimRequest};
use super::rng::{Purpose, Rng};

/// Request bodies beyond this are refused: long prompts fit, a runaway
/// client does not exhaust memory.
const MAX_REQUEST_BODY: usize = 64 << 20;

/// State shared by every connection.
pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    /// The configured seed, or a random one.
    seed: u64,
    next_id: AtomicU64,
    /// Requests between arrival and the end of their response body.
    pub(crate) in_flight: AtomicUsize,
    pub(crate) sink: Sink,
}

impl Shared {
    pub(crate) fn new(config: SimConfig) -> anyhow::Result<Self> {
        let sink = Sink::new(
            config.keep_ground_truth,
            config.ground_truth_path.as_deref(),
        )?;
        // RandomState is randomly keyed per process: a cheap seed source.
        let seed = config
            .seed
            .unwrap_or_else(|| RandomState::new().hash_one(SystemTime::now()));
        Ok(Shared {
            config,
            seed,
            next_id: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            sink,
        })
    }

    pub(crate) fn requests_seen(&self) -> u64 {
        self.next_id.load(Ordering::Relaxed)
    }

    /// `1 + k × (in flight − 1)`: the continuous-batching slowdown.
    fn load_multiplier(&self) -> f64 {
        let k = self.config.load_factor;
        if k == 0.0 {
            return 1.0;
        }
        let n = self.in_flight.load(Ordering::Relaxed).max(1);
        1.0 + k * (n - 1) as f64
    }
}

/// How the server is asked to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    Running,
    /// Stop accepting; let open requests finish.
    Graceful,
    /// Drop every connection now.
    Hard,
}

/// Accepts connections until told to stop, then drains them.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: watch::Receiver<Stop>) {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().keep_alive(true);
    let mut stop_accept = stop.clone();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop_accept.wait_for(|s| *s != Stop::Running) => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Typically out of file descriptors: back off instead of spinning.
                tracing::warn!("serve-sim: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        // Small SSE frames must not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let service = hyper::service::service_fn(move |req| handle(shared.clone(), req));
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        let mut hard = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = conn => {}
                _ = hard.wait_for(|s| *s == Stop::Hard) => {}
            }
        });
    }
    drop(listener);
    let mut hard = stop.clone();
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = hard.wait_for(|s| *s == Stop::Hard) => {}
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<SimBody>, Infallible> {
    let arrival = std::time::Instant::now();
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    let rec = Recorder::new(shared.clone(), id, req.uri().path(), arrival);
    Ok(route(&shared, req, rec).await)
}

async fn route(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    mut rec: Recorder,
) -> Response<SimBody> {
    let endpoint = match req.uri().path() {
        "/health" => {
            return if req.method() == Method::GET || req.method() == Method::HEAD {
                respond(rec, StatusCode::OK, JSON, br#"{"status":"ok"}"#.to_vec(), 0)
            } else {
                error(rec, StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
            };
        }
        "/v1/chat/completions" => Endpoint::Chat,
        "/v1/completions" => Endpoint::Completions,
        "/v1/embeddings" => Endpoint::Embeddings,
        // `/` too: a Baseten client posts to its base URL as given.
        "/environments/production/predict" | "/predict" | "/" => Endpoint::Predict,
        "/generate" => Endpoint::TgiGenerate { stream: false },
        "/generate_stream" => Endpoint::TgiGenerate { stream: true },
        "/api/chat" => Endpoint::OllamaChat,
        "/api/generate" => Endpoint::OllamaGenerate,
        path => {
            let msg = format!("no route for {path}");
            return error(rec, StatusCode::NOT_FOUND, &msg);
        }
    };
    let dialect = Dialect::of(endpoint);
    let error = |rec, status, msg: &str| dialect.error(rec, status, msg);
    if req.method() != Method::POST {
        return error(rec, StatusCode::METHOD_NOT_ALLOWED, "use POST");
    }
    let auth = req.headers().get(header::AUTHORIZATION);
    if let Some(key) = &shared.config.api_key {
        match auth {
            None => return error(rec, StatusCode::UNAUTHORIZED, "missing API key"),
            Some(v) if !key_matches(v, key) => {
                return error(rec, StatusCode::FORBIDDEN, "invalid API key");
            }
            Some(_) => {}
        }
    }
    let has_auth = auth.is_some();
    let header_fault = match req.headers().get("x-sim-fault").map(HeaderValue::to_str) {
        None => None,
        Some(Ok(s)) => match s.parse::<FaultKind>() {
            Ok(k) => Some(k),
            Err(e) => return error(rec, StatusCode::BAD_REQUEST, &format!("x-sim-fault: {e}")),
        },
        Some(Err(_)) => return error(rec, StatusCode::BAD_REQUEST, "x-sim-fault is not text"),
    };

    let body = match Limited::new(req.into_body(), MAX_REQUEST_BODY)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return error(
                rec,
                StatusCode::BAD_REQUEST,
                &format!("cannot read the body: {e}"),
            );
        }
    };
    let sreq = match request::parse(endpoint, &body) {
        Ok(r) => r,
        Err(msg) => return error(rec, StatusCode::BAD_REQUEST, &msg),
    };
    drop(body);
    rec.gt.format = Some(sreq.format);
    rec.gt.stream = sreq.stream;
    rec.gt.input_tokens = sreq.input_tokens;
    let id = rec.gt.id;
    let fault = header_fault.or(sreq.fault).or_else(|| {
        let mut rng = Rng::for_request(shared.seed, id, Purpose::Fault);
        faults::draw(&shared.config.fault_rates, &mut rng)
    });
    rec.gt.fault = fault;
    generate(shared, sreq, fault, has_auth, rec, dialect).await
}

/// Whose error bodies a route sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialect {
    /// `{"error":{"message","type","code"}}` (OpenAI, Baseten).
    OpenAi,
    /// `{"error":"...","error_type":"..."}` (TGI's `ErrorResponse`).
    Tgi,
    /// `{"error":"..."}` (Ollama).
    Ollama,
}

impl Dialect {
    fn of(endpoint: Endpoint) -> Self {
        match endpoint {
            Endpoint::TgiGenerate { .. } => Dialect::Tgi,
            Endpoint::OllamaChat | Endpoint::OllamaGenerate => Dialect::Ollama,
            Endpoint::Chat | Endpoint::Completions | Endpoint::Embeddings | Endpoint::Predict => {
                Dialect::OpenAi
            }
        }
    }

    fn error(self, rec: Recorder, mut status: StatusCode, message: &str) -> Response<SimBody> {
        if self == Dialect::Tgi && status == StatusCode::BAD_REQUEST {
            // TGI answers every invalid request with 422.
            status = StatusCode::UNPROCESSABLE_ENTITY;
        }
        let body = match self {
            Dialect::OpenAi => return error(rec, status, message),
            Dialect::Tgi => {
                // TGI's error types: validation (422), overloaded (429), generation.
                let kind = match status {
                    StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "validation",
                    StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => "overloaded",
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "authentication",
                    _ => "generation",
                };
                serde_json::json!({"error": message, "error_type": kind})
            }
            Dialect::Ollama => serde_json::json!({"error": message}),
        };
        respond(rec, status, JSON, body.to_string().into_bytes(), 0)
    }
}

/// `Bearer KEY` or `Api-Key KEY` (scheme case-insensitive).
fn key_matches(value: &HeaderValue, key: &str) -> bool {
    let Ok(v) = value.to_str() else {
        return false;
    };
    let Some((scheme, token)) = v.trim().split_once(' ') else {
        return false;
    };
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("api-key"))
        && token.trim() == key
}

/// Output length: `max_tokens` when the request forces it (`ignore_eos`,
/// or `min_tokens >= max_tokens`); else a draw from the configured
/// distribution (or `max_tokens`, or the default), raised to `min_tokens`
/// and capped by `max_tokens`.
fn output_len(req: &SimRequest, config: &SimConfig, rng: &mut Rng) -> u32 {
    if let Some(max) = req.max_tokens
        && (req.ignore_eos || req.min_tokens.is_some_and(|min| min >= max))
    {
        return max;
    }
    let n = match config.output_tokens {
        Some(dist) => dist.sample(rng),
        None => req.max_tokens.unwrap_or(config.default_output_tokens),
    };
    let n = n.max(req.min_tokens.unwrap_or(0)).max(1);
    req.max_tokens.map_or(n, |max| n.min(max))
}

async fn generate(
    shared: &Arc<Shared>,
    req: SimRequest,
    fault: Option<FaultKind>,
    has_auth: bool,
    mut rec: Recorder,
    dialect: Dialect,
) -> Response<SimBody> {
    let config = &shared.config;
    let error = |rec, status, msg: &str| dialect.error(rec, status, msg);
    match fault {
        Some(FaultKind::TooManyRequests) => {
            let mut resp = error(rec, StatusCode::TOO_MANY_REQUESTS, "simulated rate limit");
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return resp;
        }
        Some(FaultKind::InternalError) => {
            return error(
                rec,
                StatusCode::INTERNAL_SERVER_ERROR,
                "simulated server error",
            );
        }
        Some(FaultKind::Unavailable) => {
            return error(rec, StatusCode::SERVICE_UNAVAILABLE, "simulated overload");
        }
        Some(FaultKind::Auth) if has_auth => {
            return error(rec, StatusCode::FORBIDDEN, "simulated invalid API key");
        }
        Some(FaultKind::Auth) => {
            return error(rec, StatusCode::UNAUTHORIZED, "simulated missing API key");
        }
        _ => {}
    }
    let id = rec.gt.id;
    let stall = req.stall_secs.map_or_else(|| config.stall(), secs);
    let mut base = Instant::from_std(rec.arrival());
    if fault == Some(FaultKind::SlowHeaders) {
        // The whole schedule moves: the server "queued" the request.
        base += stall;
        tokio::time::sleep_until(base).await;
    }
    let load = shared.load_multiplier();
    let ttft_secs =
        config.ttft_base_ms / 1e3 + config.prefill_us_per_token * req.input_tokens as f64 / 1e6;
    let first_token = base + secs(ttft_secs * load);
    let model = req.model.as_deref().unwrap_or(&config.model);
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut text_rng = Rng::for_request(shared.seed, id, Purpose::Text);

    if req.format == RequestFormat::Embeddings {
        tokio::time::sleep_until(first_token).await;
        let body = render::embeddings_body(
            &mut text_rng,
            model,
            req.embedding_inputs,
            config.embedding_dims,
            req.input_tokens,
        );
        return respond_with_fault(rec, body, 0, fault, stall, StreamKind::Chat);
    }

    let total = output_len(
        &req,
        config,
        &mut Rng::for_request(shared.seed, id, Purpose::Length),
    );
    rec.gt.planned_output_tokens = u64::from(total);
    let finish_reason = if req.max_tokens == Some(total) {
        "length"
    } else {
        "stop"
    };
    let mut timing_rng = Rng::for_request(shared.seed, id, Purpose::Timing);

    let kind = match req.format {
        RequestFormat::Chat => StreamKind::Chat,
        RequestFormat::Completions => StreamKind::Completion,
        RequestFormat::Tgi => StreamKind::Tgi,
        RequestFormat::OllamaChat => StreamKind::OllamaChat,
        RequestFormat::OllamaGenerate => StreamKind::OllamaGenerate,
        RequestFormat::Prompt | RequestFormat::Embeddings => StreamKind::Plain,
    };
    if req.stream {
        let fault = fault
            .filter(|k| {
                matches!(
                    k,
                    FaultKind::Reset
                        | FaultKind::Cut
                        | FaultKind::Malformed
                        | FaultKind::ErrorInStream
                        | FaultKind::Stall
                )
            })
            .map(|k| (k, (total / 2).max(1)));
        let stream = TokenStream {
            template: Template::new(kind, id, created, model),
            total,
            per_chunk: config.tokens_per_chunk,
            first_token,
            itl: config.itl,
            load_factor: config.load_factor,
            shared: shared.clone(),
            timing_rng,
            text_rng,
            fault,
            stall,
            usage: (req.include_usage && kind != StreamKind::Plain).then_some(req.input_tokens),
            finish_reason,
            frame_per_group: config.frame_per_group,
        };
        let content_type = kind.content_type();
        rec.gt.status = 200;
        let mut resp = Response::new(SimBody::stream(rec, stream));
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(REQUEST_ID, HeaderValue::from(id));
        return resp;
    }

    // Not streamed: the response is due when the last token would be.
    let mut gen_secs = 0.0;
    if !config.itl.is_zero() {
        for _ in 1..total {
            gen_secs += config.itl.sample_secs(&mut timing_rng);
        }
    }
    tokio::time::sleep_until(first_token + secs(gen_secs * load)).await;
    let text = render::words(&mut text_rng, total);
    let (input, output) = (req.input_tokens, u64::from(total));
    let body = match req.format {
        RequestFormat::Chat => {
            render::chat_body(id, created, model, &text, finish_reason, input, output)
        }
        RequestFormat::Completions => {
            render::completion_body(id, created, model, &text, finish_reason, input, output)
        }
        RequestFormat::Tgi => render::tgi_body(
            &text,
            finish_reason,
            req.include_usage.then_some((input, output)),
        ),
        RequestFormat::OllamaChat | RequestFormat::OllamaGenerate => render::ollama_body(
            req.format == RequestFormat::OllamaChat,
            model,
            created,
            &text,
            finish_reason,
            input,
            output,
        ),
        RequestFormat::Prompt | RequestFormat::Embeddings => {
            render::prompt_body(&text, input, output)
        }
    };
    respond_with_fault(rec, body, total, fault, stall, kind)
}

const REQUEST_ID: &str = "x-sim-request-id";
const JSON: &str = "application/json";

/// A 200 JSON body, altered by a mid-stream fault (see [`FaultKind`]).
fn respond_with_fault(
    mut rec: Recorder,
    body: Vec<u8>,
    tokens: u32,
    fault: Option<FaultKind>,
    stall: Duration,
    kind: StreamKind,
) -> Response<SimBody> {
    let half = Bytes::from(body[..body.len() / 2].to_vec());
    let steps = match fault {
        Some(FaultKind::Reset) => vec![Step::Data(half, 0), Step::Reset],
        Some(FaultKind::Cut) => vec![Step::Data(half, 0)],
        Some(FaultKind::Malformed) => {
            // Without its closing brace the JSON cannot parse.
            let mut broken = body;
            broken.pop();
            vec![Step::Data(broken.into(), 0)]
        }
        Some(FaultKind::ErrorInStream) => {
            vec![Step::Data(render::error_event_body(kind).into(), 0)]
        }
        Some(FaultKind::Stall) => vec![
            Step::Wait(Instant::now() + stall),
            Step::Data(body.into(), tokens),
        ],
        _ => return respond(rec, StatusCode::OK, JSON, body, tokens),
    };
    // A cut body must not announce the full length; the others may.
    let exact = !matches!(fault, Some(FaultKind::Cut | FaultKind::Reset));
    rec.gt.status = 200;
    let id = rec.gt.id;
    let mut resp = Response::new(SimBody::script(rec, steps, exact));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    h.insert(REQUEST_ID, HeaderValue::from(id));
    resp
}

fn respond(
    mut rec: Recorder,
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
    tokens: u32,
) -> Response<SimBody> {
    rec.gt.status = status.as_u16();
    let id = rec.gt.id;
    let mut resp = Response::new(SimBody::full(rec, body, tokens));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(REQUEST_ID, HeaderValue::from(id));
    resp
}

/// An OpenAI-style error: `{"error":{"message","type","code"}}`.
fn error(rec: Recorder, status: StatusCode, message: &str) -> Response<SimBody> {
    let kind = match status {
        StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED => "invalid_request_error",
        StatusCode::UNAUTHORIZED => "authentication_error",
        StatusCode::FORBIDDEN => "permission_error",
        StatusCode::NOT_FOUND => "not_found_error",
        StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
        StatusCode::SERVICE_UNAVAILABLE => "service_unavailable_error",
        _ => "server_error",
    };
    let body = render::error_body(status.as_u16(), kind, message);
    respond(rec, status, JSON, body, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(max: Option<u32>, min: Option<u32>, ignore_eos: bool) -> SimRequest {
        SimRequest {
            format: RequestFormat::Chat,
            model: None,
            stream: false,
            include_usage: false,
            max_tokens: max,
            min_tokens: min,
            ignore_eos,
            input_tokens: 0,
            embedding_inputs: 0,
            fault: None,
            stall_secs: None,
        }
    }

    #[test]
    fn output_length_rules() {
        let mut rng = Rng::new(1);
        let mut c = SimConfig::default();
        assert_eq!(output_len(&req(None, None, false), &c, &mut rng), 128);
        assert_eq!(output_len(&req(Some(7), None, false), &c, &mut rng), 7);
        c.output_tokens = Some("constant:50".parse().unwrap());
        assert_eq!(output_len(&req(Some(7), None, false), &c, &mut rng), 7);
        assert_eq!(output_len(&req(Some(70), None, false), &c, &mut rng), 50);
        assert_eq!(output_len(&req(Some(70), None, true), &c, &mut rng), 70);
        assert_eq!(
            output_len(&req(Some(70), Some(70), false), &c, &mut rng),
            70
        );
        assert_eq!(
            output_len(&req(Some(70), Some(60), false), &c, &mut rng),
            60
        );
        assert_eq!(output_len(&req(None, None, true), &c, &mut rng), 50);
    }

    #[test]
    fn api_key_schemes() {
        let ok = |v: &str| key_matches(&HeaderValue::from_str(v).unwrap(), "k1");
        assert!(ok("Bearer k1"));
        assert!(ok("Api-Key k1"));
        assert!(ok("bearer k1"));
        assert!(!ok("Bearer k2"));
        assert!(!ok("k1"));
        assert!(!ok("Basic k1"));
    }
}
