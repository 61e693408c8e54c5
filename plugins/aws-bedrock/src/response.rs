//! Bedrock answers: the response stream's event-stream frames (each a
//! `{"bytes": base64}` chunk of the model's own JSON) or one JSON body, read
//! by the fields each model family uses. Error statuses are read by the
//! shared parser.

use base64::Engine as _;
use serde_json::Value;

use crate::eventstream::{Frame, take_frames};
use crate::model::{ApiError, Event, Level, Log, ResponseHead, Task, Usage};

enum Mode {
    /// Non-2xx: the shared parser reads the error report.
    Shared(Box<plugin_kit::parser::Parser>),
    /// `application/vnd.amazon.eventstream`.
    Stream,
    /// One JSON body, read at the end.
    Whole,
}

/// Parser of one Bedrock response.
pub struct Parser {
    mode: Mode,
    task: Task,
    buf: Vec<u8>,
    /// The model said it is done (a stop reason, or Claude's message_stop).
    ended: bool,
    /// The first error; later calls repeat it.
    failed: Option<String>,
}

impl Parser {
    /// Starts reading a response.
    pub fn new(head: &ResponseHead, log: &mut dyn Log) -> Self {
        let media = head
            .headers
            .iter()
            .find(|(k, _)| k == "content-type")
            .map(|(_, v)| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let mode = if !(200..300).contains(&head.status) {
            Mode::Shared(Box::new(plugin_kit::parser::Parser::new(head, log)))
        } else if media == "application/vnd.amazon.eventstream" {
            log.log(Level::Debug, "Bedrock response stream: event-stream frames");
            Mode::Stream
        } else {
            Mode::Whole
        };
        Parser {
            mode,
            task: head.task,
            buf: Vec::new(),
            ended: false,
            failed: None,
        }
    }

    /// The next body chunk.
    pub fn feed(&mut self, chunk: &[u8], log: &mut dyn Log) -> Result<Vec<Event>, String> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut out = Vec::new();
        let result = match &mut self.mode {
            Mode::Shared(p) => return p.feed(chunk, log),
            Mode::Whole => {
                self.buf.extend_from_slice(chunk);
                Ok(())
            }
            Mode::Stream => {
                self.buf.extend_from_slice(chunk);
                take_frames(&mut self.buf).and_then(|frames| {
                    frames
                        .iter()
                        .try_for_each(|f| frame_events(f, &mut out, &mut self.ended))
                })
            }
        };
        self.settle(result, out)
    }

    /// The body ended.
    pub fn finish(&mut self, log: &mut dyn Log) -> Result<Vec<Event>, String> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut out = Vec::new();
        let result = match &mut self.mode {
            Mode::Shared(p) => return p.finish(log),
            Mode::Stream => {
                if !self.buf.is_empty() {
                    Err(format!(
                        "the event stream ended inside a frame ({} bytes left)",
                        self.buf.len()
                    ))
                } else {
                    // Only a model that said it was done is complete; a cut
                    // stream gets no end (the host counts it incomplete).
                    if self.ended {
                        out.push(Event::End);
                    }
                    Ok(())
                }
            }
            Mode::Whole => {
                let body = std::mem::take(&mut self.buf);
                whole(&body, self.task, &mut out).map(|()| out.push(Event::End))
            }
        };
        self.settle(result, out)
    }

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
}

/// Events of one frame.
fn frame_events(frame: &Frame, out: &mut Vec<Event>, ended: &mut bool) -> Result<(), String> {
    let payload: Value = serde_json::from_slice(&frame.payload).map_err(|_| {
        format!(
            "event stream frame payload is not JSON: {}",
            String::from_utf8_lossy(&frame.payload[..frame.payload.len().min(200)])
        )
    })?;
    match frame.header(":message-type") {
        Some("exception") | Some("error") => {
            let kind = frame
                .header(":exception-type")
                .or(frame.header(":error-code"))
                .unwrap_or("exception");
            let message = payload
                .get("message")
                .or(payload.get("Message"))
                .and_then(Value::as_str)
                .unwrap_or("(no message)");
            out.push(Event::Error(ApiError {
                code: None,
                message: format!("{kind}: {message}"),
            }));
            return Ok(());
        }
        _ => {}
    }
    let Some(bytes) = payload.get("bytes").and_then(Value::as_str) else {
        return Ok(());
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(bytes)
        .map_err(|e| format!("event stream chunk is not base64 ({e})"))?;
    let chunk: Value = serde_json::from_slice(&decoded).map_err(|_| {
        format!(
            "event stream chunk is not JSON: {}",
            String::from_utf8_lossy(&decoded[..decoded.len().min(200)])
        )
    })?;
    chunk_events(&chunk, out, ended);
    Ok(())
}

fn text(out: &mut Vec<Event>, t: Option<&Value>) {
    if let Some(t) = t.and_then(Value::as_str)
        && !t.is_empty()
    {
        out.push(Event::Content(t.to_owned()));
    }
}

fn u(v: Option<&Value>) -> Option<u64> {
    v.and_then(Value::as_u64)
}

fn usage(out: &mut Vec<Event>, prompt: Option<u64>, completion: Option<u64>) {
    if prompt.is_some() || completion.is_some() {
        out.push(Event::Usage(Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            reasoning_tokens: None,
        }));
    }
}

/// One streamed chunk of a model's JSON, whichever family.
fn chunk_events(c: &Value, out: &mut Vec<Event>, ended: &mut bool) {
    match c.get("type").and_then(Value::as_str) {
        // Claude's Messages API events.
        Some("message_start") => usage(out, u(c.pointer("/message/usage/input_tokens")), None),
        Some("content_block_delta") => {
            text(out, c.pointer("/delta/text"));
        }
        Some("message_delta") => usage(out, None, u(c.pointer("/usage/output_tokens"))),
        Some("message_stop") => *ended = true,
        Some("error") => out.push(Event::Error(ApiError {
            code: None,
            message: c
                .pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or("error event")
                .to_owned(),
        })),
        Some(_) => {}
        None => {
            // Titan, Llama and other models: one object per chunk.
            text(out, c.get("outputText"));
            text(out, c.get("generation"));
            text(out, c.get("completion"));
            text(
                out,
                c.get("text")
                    .or(c.pointer("/outputs/0/text"))
                    .or(c.get("output")),
            );
            usage(
                out,
                u(c.get("prompt_token_count")).or(u(c.get("inputTextTokenCount"))),
                None,
            );
            for key in ["stop_reason", "completionReason", "finish_reason"] {
                if c.get(key).is_some_and(|v| !v.is_null()) {
                    *ended = true;
                }
            }
            if c.pointer("/outputs/0/stop_reason")
                .is_some_and(|v| !v.is_null())
            {
                *ended = true;
            }
        }
    }
    // Bedrock's own count, in the last chunk of every model.
    if let Some(m) = c.get("amazon-bedrock-invocationMetrics") {
        usage(
            out,
            u(m.get("inputTokenCount")),
            u(m.get("outputTokenCount")),
        );
    }
}

/// A whole `InvokeModel` answer.
fn whole(body: &[u8], task: Task, out: &mut Vec<Event>) -> Result<(), String> {
    let v: Value = serde_json::from_slice(body.trim_ascii()).map_err(|_| {
        format!(
            "Bedrock answer is not JSON: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )
    })?;
    if task == Task::TextToEmbeddings {
        if v.get("embedding").is_none() && v.get("embeddings").is_none() {
            return Err("Bedrock embedding answer has no embedding".to_owned());
        }
        usage(out, u(v.get("inputTextTokenCount")), None);
        return Ok(());
    }
    let before = out.len();
    if let Some(parts) = v.get("content").and_then(Value::as_array) {
        for p in parts {
            text(out, p.get("text"));
        }
        usage(
            out,
            u(v.pointer("/usage/input_tokens")),
            u(v.pointer("/usage/output_tokens")),
        );
    } else if let Some(results) = v.get("results").and_then(Value::as_array) {
        for r in results {
            text(out, r.get("outputText"));
        }
        usage(
            out,
            u(v.get("inputTextTokenCount")),
            u(v.pointer("/results/0/tokenCount")),
        );
    } else {
        text(out, v.get("generation"));
        text(out, v.get("completion"));
        text(
            out,
            v.get("text")
                .or(v.pointer("/outputs/0/text"))
                .or(v.get("output")),
        );
        usage(
            out,
            u(v.get("prompt_token_count")),
            u(v.get("generation_token_count")),
        );
    }
    if out.len() == before {
        return Err(format!(
            "Bedrock answer has none of content, results, generation, completion, text, \
             outputs: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::eventstream::encode;
    use crate::model::{NoLog, StreamBody};

    fn head(status: u16, content_type: &str, task: Task) -> ResponseHead {
        ResponseHead {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            task,
            stream: true,
            stream_body: StreamBody::Sniff,
            dialect: crate::model::Dialect::OpenAi,
        }
    }

    fn chunk(v: Value) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(v.to_string());
        encode(
            &[
                (":event-type", "chunk"),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            json!({"bytes": b64, "p": "abcd"}).to_string().as_bytes(),
        )
    }

    fn run(h: &ResponseHead, body: &[u8], step: usize) -> (Vec<Event>, Option<String>) {
        let mut p = Parser::new(h, &mut NoLog);
        let mut events = Vec::new();
        for c in body.chunks(step.max(1)) {
            match p.feed(c, &mut NoLog) {
                Ok(e) => events.extend(e),
                Err(e) => return (events, Some(e)),
            }
        }
        match p.finish(&mut NoLog) {
            Ok(e) => events.extend(e),
            Err(e) => return (events, Some(e)),
        }
        (events, None)
    }

    fn merged(events: Vec<Event>) -> Vec<Event> {
        let mut out: Vec<Event> = Vec::new();
        for e in events {
            if let (Some(Event::Content(prev)), Event::Content(t)) = (out.last_mut(), &e) {
                prev.push_str(t);
                continue;
            }
            out.push(e);
        }
        out
    }

    #[test]
    fn claude_stream_gives_text_usage_and_end_however_split() {
        let body = [
            chunk(json!({"type": "message_start", "message": {"usage": {"input_tokens": 7, "output_tokens": 1}}})),
            chunk(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
            chunk(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " one"}})),
            chunk(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " two"}})),
            chunk(json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 2}})),
            chunk(json!({"type": "message_stop", "amazon-bedrock-invocationMetrics": {"inputTokenCount": 7, "outputTokenCount": 2}})),
        ]
        .concat();
        let h = head(200, "application/vnd.amazon.eventstream", Task::TextToText);
        let whole = merged(run(&h, &body, body.len()).0);
        assert_eq!(
            whole,
            vec![
                Event::Usage(Usage {
                    prompt_tokens: Some(7),
                    completion_tokens: None,
                    reasoning_tokens: None
                }),
                Event::Content(" one two".into()),
                Event::Usage(Usage {
                    prompt_tokens: None,
                    completion_tokens: Some(2),
                    reasoning_tokens: None
                }),
                Event::Usage(Usage {
                    prompt_tokens: Some(7),
                    completion_tokens: Some(2),
                    reasoning_tokens: None
                }),
                Event::End,
            ]
        );
        for step in [1, 7, 64, 333] {
            assert_eq!(merged(run(&h, &body, step).0), whole, "step {step}");
        }
        // Cut before message_stop: no end, so the host counts it incomplete.
        let cut = &body[..body.len() - 40];
        let (events, err) = run(&h, cut, 50);
        assert!(!events.contains(&Event::End));
        assert!(err.unwrap().contains("ended inside a frame"));
    }

    #[test]
    fn llama_and_titan_streams_and_exceptions() {
        let h = head(200, "application/vnd.amazon.eventstream", Task::TextToText);
        let llama = [
            chunk(json!({"generation": " one", "prompt_token_count": 7, "generation_token_count": 1, "stop_reason": null})),
            chunk(json!({"generation": " two", "prompt_token_count": null, "generation_token_count": 2, "stop_reason": "length"})),
        ]
        .concat();
        let (events, err) = run(&h, &llama, 9);
        assert_eq!(err, None);
        assert_eq!(merged(events).last(), Some(&Event::End));
        let titan = chunk(
            json!({"outputText": " hi", "index": 0, "totalOutputTextTokenCount": 1, "completionReason": "FINISH", "inputTextTokenCount": 3}),
        );
        let (events, _) = run(&h, &titan, 5);
        assert!(events.contains(&Event::Content(" hi".into())) && events.contains(&Event::End));
        let exc = encode(
            &[
                (":message-type", "exception"),
                (":exception-type", "throttlingException"),
            ],
            br#"{"message":"Too many requests"}"#,
        );
        let (events, _) = run(&h, &exc, 100);
        assert!(
            matches!(&events[0], Event::Error(e) if e.message == "throttlingException: Too many requests")
        );
    }

    #[test]
    fn whole_answers_by_family_and_errors_by_status() {
        let h = head(200, "application/json", Task::TextToText);
        let claude = br#"{"content":[{"type":"text","text":" one two"}],"usage":{"input_tokens":7,"output_tokens":2}}"#;
        let (events, err) = run(&h, claude, 10);
        assert_eq!(err, None);
        assert_eq!(merged(events)[0], Event::Content(" one two".into()));
        let llama = br#"{"generation":" x","prompt_token_count":3,"generation_token_count":1,"stop_reason":"stop"}"#;
        assert!(run(&h, llama, 4).0.contains(&Event::End));
        let (_, err) = run(&h, br#"{"foo":1}"#, 4);
        assert!(err.unwrap().contains("has none of"));
        let e = head(200, "application/json", Task::TextToEmbeddings);
        let (events, _) = run(&e, br#"{"embedding":[0.1],"inputTextTokenCount":7}"#, 3);
        assert_eq!(
            events[0],
            Event::Usage(Usage {
                prompt_tokens: Some(7),
                completion_tokens: None,
                reasoning_tokens: None
            })
        );
        let bad = head(400, "application/json", Task::TextToText);
        let (events, _) = run(&bad, br#"{"message":"Malformed input request"}"#, 8);
        assert!(matches!(&events[0], Event::Error(e) if e.message.contains("Malformed input")));
    }
}
