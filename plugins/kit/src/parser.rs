//! Incremental response parser: SSE, plain-text streams and whole bodies,
//! shared by the Baseten and OpenAI plugins (OpenAI, vLLM, SGLang and
//! TGI-style fields).
//!
//! Events depend only on the bytes, never on how they were split into
//! chunks: events are emitted for complete lines (or the whole body at
//! `finish`), and bytes are buffered, so UTF-8 split across chunks is
//! decoded only once its line is complete.

use std::borrow::Cow;
use std::mem;

use serde::Deserialize;
use serde_json::Value;

use crate::json::{Body, Message, Payload};
use crate::model::{ApiError, Dialect, Event, Level, Log, ResponseHead, StreamBody, Task, Usage};

mod cohere;
mod fast;
mod gemini;
mod oci;

/// Longest error message taken from a non-2xx body.
const HTTP_ERROR_CHARS: usize = 500;
/// How much of a bad payload or body an error message quotes.
const QUOTE_CHARS: usize = 200;
/// A non-2xx body is kept up to this size: enough for any error message,
/// bounded so a misbehaving server cannot grow it without limit.
const HTTP_ERROR_BODY_CAP: usize = 1 << 20;
/// SSE line starts that identify an event stream.
const SSE_PREFIXES: [&[u8]; 5] = [b"data:", b":", b"event:", b"id:", b"retry:"];

const EMPTY_BODY: &str = "empty response body";

/// The media type of a `content-type` value: lower case, no parameters.
fn media_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Non-2xx: buffer, report one error at the end.
    HttpError,
    /// Non-streaming (or JSON where a stream was asked for): parse at the end.
    Whole,
    /// Streaming, but the first bytes have not told the format yet.
    Detect,
    /// Server-sent events.
    Sse,
    /// A stream of plain-text lines.
    Plain,
    /// Audio bytes (text-to-speech): counted as they arrive.
    Audio,
    /// `finish` ran.
    Done,
}

pub struct Parser {
    state: State,
    task: Task,
    dialect: Dialect,
    status: u16,
    /// `content-type: text/event-stream` was sent.
    sse_header: bool,
    /// An event stream said `[DONE]`.
    done_seen: bool,
    /// An event stream gave a `finish_reason`.
    finish_seen: bool,
    /// The body had a byte that is not whitespace.
    nonblank_seen: bool,
    /// The body had a byte at all (audio).
    audio_seen: bool,
    /// Pending bytes: a partial line, or the whole body.
    buf: Vec<u8>,
    /// The first error; later calls repeat it.
    failed: Option<String>,
    /// The stream's per-token chunk shape, once seen (OpenAI dialect).
    template: fast::Template,
}

impl Parser {
    pub fn new(head: &ResponseHead, log: &mut dyn Log) -> Self {
        let media = head
            .headers
            .iter()
            .find(|(name, _)| name == "content-type")
            .map(|(_, value)| media_type(value));
        let sse_header = media.as_deref() == Some("text/event-stream");
        let mut parser = Parser {
            state: State::Detect,
            task: head.task,
            dialect: head.dialect,
            status: head.status,
            sse_header,
            done_seen: false,
            finish_seen: false,
            nonblank_seen: false,
            audio_seen: false,
            buf: Vec::new(),
            failed: None,
            template: fast::Template::default(),
        };
        if !(200..300).contains(&head.status) {
            log.log(
                Level::Debug,
                &format!("HTTP {}: reading the body as an error report", head.status),
            );
            parser.state = State::HttpError;
        } else if head.task == Task::TextToSpeech {
            log.log(
                Level::Debug,
                "speech response: counting audio bytes as they arrive",
            );
            parser.state = State::Audio;
        } else if !head.stream || !matches!(head.task, Task::TextToText | Task::ImageTextToText) {
            log.log(
                Level::Debug,
                "non-streaming response: parsing the whole body",
            );
            parser.state = State::Whole;
        } else {
            // The content type says what the body is; the bytes of the
            // generated text never do (an answer may start with `{` or `:`).
            // A generic type is read as the request format expects: raw text
            // for Baseten's prompt format, sniffed for chat formats.
            match media.as_deref() {
                Some("text/event-stream") => parser.enter(State::Sse, log),
                Some(m) if m == "application/json" || m.ends_with("+json") => {
                    parser.enter(State::Whole, log)
                }
                _ if head.stream_body == StreamBody::PlainText => parser.enter(State::Plain, log),
                _ => {}
            }
        }
        parser
    }

    /// Parses the next body chunk.
    pub fn feed(&mut self, chunk: &[u8], log: &mut dyn Log) -> Result<Vec<Event>, String> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if !self.nonblank_seen {
            self.nonblank_seen = chunk.iter().any(|b| !b.is_ascii_whitespace());
        }
        self.audio_seen |= !chunk.is_empty();
        let mut out = Vec::new();
        let result = self.feed_inner(chunk, &mut out, log);
        self.settle(result, out)
    }

    /// The body ended: flushes what is buffered.
    pub fn finish(&mut self, log: &mut dyn Log) -> Result<Vec<Event>, String> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut out = Vec::new();
        let result = self.finish_inner(&mut out, log);
        self.state = State::Done;
        self.buf = Vec::new();
        self.settle(result, out)
    }

    /// Returns the events found before an error and reports the error on
    /// the next call, so the events are the same however the body was split.
    fn settle(
        &mut self,
        result: Result<(), String>,
        out: Vec<Event>,
    ) -> Result<Vec<Event>, String> {
        match result {
            Ok(()) => Ok(out),
            Err(e) => {
                self.failed = Some(e.clone());
                if out.is_empty() { Err(e) } else { Ok(out) }
            }
        }
    }

    fn feed_inner(
        &mut self,
        chunk: &[u8],
        out: &mut Vec<Event>,
        log: &mut dyn Log,
    ) -> Result<(), String> {
        match self.state {
            State::Whole => self.buf.extend_from_slice(chunk),
            State::HttpError => {
                let room = HTTP_ERROR_BODY_CAP.saturating_sub(self.buf.len());
                self.buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            State::Detect => {
                self.buf.extend_from_slice(chunk);
                if let Some(state) = self.detect(false) {
                    self.enter(state, log);
                    if state != State::Whole {
                        let buffered = mem::take(&mut self.buf);
                        self.text(&buffered, out)?;
                    }
                }
            }
            State::Sse | State::Plain => self.text(chunk, out)?,
            State::Audio => {
                if !chunk.is_empty() {
                    out.push(Event::Audio(chunk.len() as u64));
                }
            }
            State::Done => {}
        }
        Ok(())
    }

    fn finish_inner(&mut self, out: &mut Vec<Event>, log: &mut dyn Log) -> Result<(), String> {
        if self.state == State::Detect {
            let Some(state) = self.detect(true) else {
                return Err(EMPTY_BODY.to_owned());
            };
            self.enter(state, log);
            if state != State::Whole {
                let buffered = mem::take(&mut self.buf);
                self.text(&buffered, out)?;
            }
        }
        if matches!(self.state, State::Sse | State::Plain) && !self.nonblank_seen {
            return Err(EMPTY_BODY.to_owned());
        }
        if self.state == State::Audio {
            // Audio may be any bytes (silence included); none at all is not
            // an answer.
            if !self.audio_seen {
                return Err("empty audio body".to_owned());
            }
            out.push(Event::End);
            return Ok(());
        }
        let buf = mem::take(&mut self.buf);
        match self.state {
            State::HttpError => out.push(Event::Error(http_error(self.status, &buf))),
            State::Whole => {
                match self.task {
                    Task::TextToEmbeddings | Task::ImageToEmbeddings | Task::TextToRerank
                        if self.dialect == Dialect::Oci =>
                    {
                        oci::result(self.task == Task::TextToRerank, &buf, out)?
                    }
                    Task::TextToText | Task::ImageTextToText if self.dialect == Dialect::Oci => {
                        if buf.trim_ascii().is_empty() {
                            return Err(EMPTY_BODY.to_owned());
                        }
                        oci::whole(&buf, out)?
                    }
                    Task::TextToRerank | Task::ImageToEmbeddings | Task::TextToImage => {
                        task_body(self.task, &buf, out)?
                    }
                    Task::TextToEmbeddings if self.dialect == Dialect::Cohere => {
                        task_body(self.task, &buf, out)?
                    }
                    Task::TextToEmbeddings if self.dialect == Dialect::Gemini => {
                        gemini::embeddings(&buf, out)?
                    }
                    _ if self.dialect == Dialect::Gemini => {
                        if buf.trim_ascii().is_empty() {
                            return Err(EMPTY_BODY.to_owned());
                        }
                        gemini::whole(&buf, out)?
                    }
                    _ if self.dialect == Dialect::Cohere => {
                        if buf.trim_ascii().is_empty() {
                            return Err(EMPTY_BODY.to_owned());
                        }
                        cohere::whole(&buf, out)?
                    }
                    _ => whole_body(&buf, out, log)?,
                }
                out.push(Event::End);
            }
            State::Sse => {
                // A last line without a newline.
                if !buf.is_empty() {
                    self.line(&buf, out)?;
                }
                // A stream that gave a finish reason is complete even
                // without `[DONE]`; one that gave neither was cut off, and
                // gets no end marker (the host counts it incomplete).
                if self.finish_seen && !self.done_seen {
                    out.push(Event::End);
                }
            }
            State::Plain => {
                // Bytes held back as an incomplete UTF-8 sequence.
                if !buf.is_empty() {
                    out.push(Event::Content(lossy(&buf)));
                }
                // Plain text has no end marker: the body ending is the end
                // (the host knows whether it ended cleanly).
                out.push(Event::End);
            }
            State::Detect | State::Done | State::Audio => {}
        }
        Ok(())
    }

    /// Picks the format from the first non-whitespace bytes; `None` while
    /// they could still start an SSE field (or, at the end, for an empty body).
    fn detect(&self, at_end: bool) -> Option<State> {
        let start = self.buf.iter().position(|b| !b.is_ascii_whitespace())?;
        let head = &self.buf[start..];
        if head[0] == b'{' || head[0] == b'[' {
            // No SSE line starts like this: the server sent one JSON body.
            return Some(State::Whole);
        }
        if self.sse_header || SSE_PREFIXES.iter().any(|p| head.starts_with(p)) {
            return Some(State::Sse);
        }
        if !at_end && SSE_PREFIXES.iter().any(|p| p.starts_with(head)) {
            return None;
        }
        Some(State::Plain)
    }

    fn enter(&mut self, state: State, log: &mut dyn Log) {
        self.state = state;
        match state {
            State::Sse => log.log(Level::Debug, "streaming response: server-sent events"),
            State::Whole => log.log(
                Level::Warn,
                "streaming was requested but the server sent one JSON body; \
                 parsing it whole at the end",
            ),
            State::Plain if !self.sse_header => log.log(
                Level::Debug,
                "streaming response: plain text, read as it arrives",
            ),
            State::Plain => {}
            State::HttpError | State::Detect | State::Done | State::Audio => {}
        }
    }

    /// SSE is processed per complete line; plain text is emitted as soon as
    /// it arrives (servers stream bare tokens without newlines), holding back
    /// only an incomplete UTF-8 sequence at the end.
    fn text(&mut self, data: &[u8], out: &mut Vec<Event>) -> Result<(), String> {
        if self.state != State::Plain {
            return self.lines(data, out);
        }
        self.buf.extend_from_slice(data);
        let split = complete_utf8_prefix(&self.buf);
        if split > 0 {
            out.push(Event::Content(lossy(&self.buf[..split])));
            self.buf.drain(..split);
        }
        Ok(())
    }

    /// Processes every complete line of `data` and keeps the rest.
    fn lines(&mut self, data: &[u8], out: &mut Vec<Event>) -> Result<(), String> {
        let mut rest = data;
        if !self.buf.is_empty() {
            let Some(i) = memchr::memchr(b'\n', rest) else {
                self.buf.extend_from_slice(rest);
                return Ok(());
            };
            self.buf.extend_from_slice(&rest[..=i]);
            rest = &rest[i + 1..];
            let mut line = mem::take(&mut self.buf);
            self.line(&line, out)?;
            // Keep the allocation for the next partial line.
            line.clear();
            self.buf = line;
        }
        while let Some(i) = memchr::memchr(b'\n', rest) {
            self.line(&rest[..=i], out)?;
            rest = &rest[i + 1..];
        }
        self.buf.extend_from_slice(rest);
        Ok(())
    }

    /// One line, with its `\n` unless it is the body's last.
    fn line(&mut self, line: &[u8], out: &mut Vec<Event>) -> Result<(), String> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let start = line
            .iter()
            .position(|&b| b != b' ' && b != b'\t')
            .unwrap_or(line.len());
        // Comments, blank lines and the other SSE fields carry nothing.
        if let Some(rest) = line[start..].strip_prefix(b"data:") {
            let payload = rest.strip_prefix(b" ").unwrap_or(rest);
            let seen = match self.dialect {
                Dialect::OpenAi => sse_payload(payload, out, &mut self.template)?,
                Dialect::Cohere => cohere::event(payload, out)?,
                Dialect::Gemini => gemini::event(payload, out)?,
                Dialect::Oci => oci::event(payload, out)?,
            };
            self.done_seen |= seen.done;
            self.finish_seen |= seen.finish;
        }
        Ok(())
    }
}

/// Length of `buf` without an incomplete UTF-8 sequence at its end. Invalid
/// bytes before it count as complete (they decode to U+FFFD whatever
/// follows), so text is the same however the body is split.
fn complete_utf8_prefix(buf: &[u8]) -> usize {
    let mut pos = 0;
    loop {
        match std::str::from_utf8(&buf[pos..]) {
            Ok(_) => return buf.len(),
            Err(e) => match e.error_len() {
                None => return pos + e.valid_up_to(),
                Some(n) => pos += e.valid_up_to() + n,
            },
        }
    }
}

/// What an SSE payload said about the end of the stream.
#[derive(Default)]
struct Seen {
    /// `[DONE]`.
    done: bool,
    /// A choice with a `finish_reason`.
    finish: bool,
}

fn sse_payload(
    payload: &[u8],
    out: &mut Vec<Event>,
    template: &mut fast::Template,
) -> Result<Seen, String> {
    let mut seen = Seen::default();
    if payload.is_empty() {
        return Ok(seen);
    }
    let trimmed = payload.trim_ascii();
    if trimmed == b"[DONE]" {
        out.push(Event::End);
        seen.done = true;
        return Ok(seen);
    }
    match trimmed.first() {
        Some(b'{') => {
            // The common per-token chunk; anything else the typed view reads.
            if fast::openai_chunk_with(trimmed, out, &mut seen.finish, template).is_none() {
                sse_json(trimmed, out, &mut seen.finish)?;
            }
            Ok(seen)
        }
        // A JSON array carries no event; text that only looks like one is text.
        Some(b'[') if with_json(trimmed, |_| ()).is_some() => Ok(seen),
        _ => {
            out.push(Event::Content(lossy(payload)));
            Ok(seen)
        }
    }
}

/// Runs an SSE payload through [`fast::openai_chunk`] and the typed view
/// both, and panics if the fast path returned anything but what the typed
/// view returns; true when the fast path read it. For the differential
/// tests and the fuzz target.
#[doc(hidden)]
pub fn check_sse_fast_path(payload: &[u8]) -> bool {
    let json = payload.trim_ascii();
    let (mut fast_events, mut fast_finish) = (Vec::new(), false);
    if fast::openai_chunk(json, &mut fast_events, &mut fast_finish).is_none() {
        assert!(
            fast_events.is_empty() && !fast_finish,
            "the fast path gave up after pushing events"
        );
        return false;
    }
    let (mut events, mut finish) = (Vec::new(), false);
    let typed = sse_json(json, &mut events, &mut finish);
    assert_eq!(
        (typed, events, finish),
        (Ok(()), fast_events, fast_finish),
        "fast path and typed view differ on {:?}",
        String::from_utf8_lossy(json)
    );
    true
}

/// Reads `first` through [`fast::openai_chunk_with`] (its template may
/// learn from it), then `then` through the template alone, and panics if
/// the template read `then` otherwise than the full fast path (and so the
/// typed view) reads it; true when the template read it. For the
/// differential tests and the fuzz target.
#[doc(hidden)]
pub fn check_sse_template(first: &[u8], then: &[u8]) -> bool {
    let mut template = fast::Template::default();
    let _ = fast::openai_chunk_with(
        first.trim_ascii(),
        &mut Vec::new(),
        &mut false,
        &mut template,
    );
    let then = then.trim_ascii();
    let (mut t_events, mut t_finish) = (Vec::new(), false);
    if template.read(then, &mut t_events, &mut t_finish).is_none() {
        assert!(
            t_events.is_empty() && !t_finish,
            "the template gave up after pushing events"
        );
        return false;
    }
    let (mut events, mut finish) = (Vec::new(), false);
    assert!(
        fast::openai_chunk(then, &mut events, &mut finish).is_some(),
        "the template read what the full reader leaves to the typed view: {:?} after {:?}",
        String::from_utf8_lossy(then),
        String::from_utf8_lossy(first)
    );
    assert_eq!(
        (t_events, t_finish),
        (events, finish),
        "template and full reader differ on {:?} after {:?}",
        String::from_utf8_lossy(then),
        String::from_utf8_lossy(first)
    );
    assert!(check_sse_fast_path(then));
    true
}

/// An SSE payload that is a JSON object, read by the typed view (the
/// general path of [`fast::openai_chunk`]).
fn sse_json(trimmed: &[u8], out: &mut Vec<Event>, finish: &mut bool) -> Result<(), String> {
    match with_json(trimmed, |body| {
        body_events(body, false, trimmed, out, finish)
    }) {
        Some(result) => result.map(drop),
        None => Err(format!(
            "malformed JSON in event stream: {}",
            quote(trimmed, QUOTE_CHARS)
        )),
    }
}

/// Parses `bytes` as JSON and hands the typed view to `f`; `None` when the
/// bytes are not JSON. Invalid UTF-8 inside strings is decoded lossily.
fn with_json<R>(bytes: &[u8], f: impl for<'a> FnOnce(Body<'a>) -> R) -> Option<R> {
    match serde_json::from_slice::<Body>(bytes) {
        Ok(body) => Some(f(body)),
        // Rare: invalid UTF-8, or valid JSON the typed view refuses (such as
        // a duplicate key). A generic value takes both.
        Err(_) => {
            let text = String::from_utf8_lossy(bytes);
            let value = serde_json::from_str::<Value>(&text).ok()?;
            Body::deserialize(&value).ok().map(f)
        }
    }
}

/// A whole non-streaming body.
/// A rerank, image-embedding or image-generation answer: one JSON object.
/// Its error, its usage (`usage.prompt_tokens`, or `total_tokens` as rerank
/// servers give it, or Cohere's `meta.billed_units.input_tokens`), and for
/// images how many came back (`data`).
fn task_body(task: Task, buf: &[u8], out: &mut Vec<Event>) -> Result<(), String> {
    // Cohere's embed answers are also read here: their usage is
    // `meta.billed_units.input_tokens`.
    let trimmed = buf.trim_ascii();
    if trimmed.is_empty() {
        return Err(EMPTY_BODY.to_owned());
    }
    let v: Value = serde_json::from_slice(trimmed).map_err(|e| {
        format!(
            "response body is not JSON ({e}): {}",
            quote(trimmed, QUOTE_CHARS)
        )
    })?;
    if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
        out.push(Event::Error(api_error(err)));
        return Ok(());
    }
    if task == Task::TextToImage {
        let n = v
            .get("data")
            .and_then(Value::as_array)
            .map(|a| a.len())
            .ok_or_else(|| {
                format!(
                    "image answer has no `data` list: {}",
                    quote(trimmed, QUOTE_CHARS)
                )
            })?;
        if n == 0 {
            return Err("image answer has an empty `data` list".to_owned());
        }
        out.push(Event::Images(u32::try_from(n).unwrap_or(u32::MAX)));
    } else if !v.is_object() {
        return Err(format!(
            "{} answer is not a JSON object: {}",
            if task == Task::TextToRerank {
                "rerank"
            } else {
                "embedding"
            },
            quote(trimmed, QUOTE_CHARS)
        ));
    }
    let usage = v.get("usage");
    let prompt = usage
        .and_then(|u| u.get("prompt_tokens").or_else(|| u.get("total_tokens")))
        .or_else(|| v.pointer("/meta/billed_units/input_tokens"))
        .and_then(Value::as_u64);
    if prompt.is_some() {
        out.push(Event::Usage(Usage {
            prompt_tokens: prompt,
            completion_tokens: None,
            reasoning_tokens: None,
        }));
    }
    Ok(())
}

fn whole_body(buf: &[u8], out: &mut Vec<Event>, log: &mut dyn Log) -> Result<(), String> {
    let trimmed = buf.trim_ascii();
    if trimmed.is_empty() {
        return Err(EMPTY_BODY.to_owned());
    }
    let mut finish = false;
    match with_json(trimmed, |body| {
        body_events(body, true, trimmed, out, &mut finish)
    }) {
        Some(Ok(false)) => {}
        // A custom model may answer any JSON: its text is the answer, as
        // genai-bench counts it (any usage it had is kept). Said once a run.
        Some(Ok(true)) | Some(Err(_)) => {
            if !out.iter().any(|e| matches!(e, Event::Content(_))) {
                out.push(Event::Content(lossy(trimmed)));
            }
            // The same words every time, so the host shows it once a run;
            // the body itself only at DEBUG.
            log.log(
                Level::Warn,
                "response JSON has none of choices, text, output, response, generated_text; counting the whole body as the answer's text",
            );
            log.log(
                Level::Debug,
                &format!(
                    "unrecognised response JSON: {}",
                    quote(trimmed, QUOTE_CHARS)
                ),
            );
        }
        None => {
            log.log(
                Level::Warn,
                "response body is not JSON; using it as plain text",
            );
            out.push(Event::Content(lossy(trimmed)));
        }
    }
    Ok(())
}

/// Events of one JSON document, in the order error, reasoning, content,
/// usage. `whole` is set for a complete response body, which must say
/// what it is; an SSE payload may carry nothing (a role-only chunk).
/// `finish` is set when a choice gives a `finish_reason`. Returns whether
/// a whole body's object had no known text field, so its raw text was
/// taken as the answer.
fn body_events(
    body: Body,
    whole: bool,
    raw: &[u8],
    out: &mut Vec<Event>,
    finish: &mut bool,
) -> Result<bool, String> {
    let none_of = || {
        format!(
            "response JSON has none of choices, text, output, response, generated_text: {}",
            quote(raw, QUOTE_CHARS)
        )
    };
    let payload = match body {
        Body::Object(payload) => payload,
        Body::String(text) if whole => {
            push_text(out, Event::Content, Some(&text));
            return Ok(false);
        }
        Body::Array(Some(text)) if whole => {
            push_text(out, Event::Content, Some(&text));
            return Ok(false);
        }
        _ if whole => return Err(none_of()),
        _ => return Ok(false),
    };
    let Payload {
        error,
        choices,
        usage,
        data,
        text,
        output,
        response,
        generated_text,
    } = *payload;
    let mut unknown = false;
    let choice = choices.first.as_ref();
    *finish |= choice.is_some_and(|c| c.finish_reason.non_empty().is_some());
    let delta = choice.and_then(|c| c.delta.0.as_ref());
    let message = choice.and_then(|c| c.message.0.as_deref());

    if let Some(error) = &error {
        out.push(Event::Error(api_error(error)));
    } else if let Some(choice) = choice {
        let reasoning = delta
            .and_then(reasoning_of)
            .or_else(|| message.and_then(reasoning_of));
        push_text(out, Event::Reasoning, reasoning);
        let content = delta
            .and_then(|d| d.content.non_empty())
            .or_else(|| choice.text.non_empty())
            .or_else(|| message.and_then(|m| m.content.non_empty()));
        push_text(out, Event::Content, content);
    } else if whole && !choices.is_array && !data.0 {
        let fields = [&text, &output, &response, &generated_text];
        if fields.iter().all(|t| t.0.is_none()) {
            // A custom model's own JSON: its text is the answer.
            out.push(Event::Content(lossy(raw)));
            unknown = true;
        } else {
            // An empty string is an empty answer, not an unknown format.
            push_text(
                out,
                Event::Content,
                fields.iter().find_map(|t| t.non_empty()),
            );
        }
    }

    let usage = usage
        .0
        .map(|u| *u)
        .or_else(|| delta.and_then(|d| d.usage.0.as_deref().copied()))
        .or_else(|| message.and_then(|m| m.usage.0.as_deref().copied()));
    if let Some(u) = usage {
        out.push(Event::Usage(Usage {
            prompt_tokens: u.prompt_tokens.0,
            completion_tokens: u.completion_tokens.0,
            reasoning_tokens: u
                .completion_tokens_details
                .0
                .and_then(|d| d.reasoning_tokens.0),
        }));
    }
    Ok(unknown)
}

/// `reasoning_content`, or `reasoning` when that is missing or empty.
fn reasoning_of<'m, 'a>(m: &'m Message<'a>) -> Option<&'m Cow<'a, str>> {
    m.reasoning_content
        .non_empty()
        .or_else(|| m.reasoning.non_empty())
}

fn push_text(out: &mut Vec<Event>, event: fn(String) -> Event, text: Option<&Cow<str>>) {
    if let Some(text) = text.filter(|t| !t.is_empty()) {
        out.push(event(String::from(text.as_ref())));
    }
}

/// An `error` value from inside a body.
fn api_error(error: &Value) -> ApiError {
    match error {
        Value::String(message) => ApiError {
            code: None,
            message: message.clone(),
        },
        Value::Object(fields) => ApiError {
            code: fields.get("code").and_then(error_code),
            message: match fields.get("message") {
                Some(Value::String(m)) => m.clone(),
                _ => error.to_string(),
            },
        },
        other => ApiError {
            code: None,
            message: other.to_string(),
        },
    }
}

/// An integer code, or a string holding one, within `s32`.
fn error_code(code: &Value) -> Option<i32> {
    match code {
        Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The error event for a non-2xx response.
fn http_error(status: u16, body: &[u8]) -> ApiError {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let from_json = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| json_error_message(&v));
    let message = from_json.as_deref().unwrap_or(text).trim();
    let message = match message.char_indices().nth(HTTP_ERROR_CHARS) {
        Some((cut, _)) => message[..cut].trim_end(),
        None => message,
    };
    ApiError {
        code: Some(i32::from(status)),
        message: if message.is_empty() {
            EMPTY_BODY.to_owned()
        } else {
            message.to_owned()
        },
    }
}

/// `error.message`, `error` (a string), `detail` or `message` of an error body.
fn json_error_message(body: &Value) -> Option<String> {
    let fields = body.as_object()?;
    match fields.get("error") {
        Some(Value::Object(e)) => {
            if let Some(Value::String(m)) = e.get("message") {
                return Some(m.clone());
            }
        }
        Some(Value::String(e)) => return Some(e.clone()),
        _ => {}
    }
    match fields.get("detail") {
        Some(Value::String(d)) => return Some(d.clone()),
        // FastAPI validation errors put a list here.
        Some(d) if !d.is_null() => return Some(d.to_string()),
        _ => {}
    }
    match fields.get("message") {
        Some(Value::String(m)) => Some(m.clone()),
        _ => None,
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The first `max` characters of `bytes`, decoded lossily.
fn quote(bytes: &[u8], max: usize) -> String {
    String::from_utf8_lossy(bytes).chars().take(max).collect()
}

#[cfg(test)]
mod tests;
