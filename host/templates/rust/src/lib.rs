//! genai-bench backend plugin '{{name}}'.
//!
//! The logic lives in `logic` (plain Rust, tested natively with
//! `cargo test`); this file only converts between the WIT bindings and it,
//! and only on wasm.

pub mod logic;

#[cfg(target_arch = "wasm32")]
mod component {
    use std::cell::RefCell;

    use crate::logic;

    wit_bindgen::generate!({ path: "wit", world: "plugin" });

    use exports::genai_bench::backend::backend::{Guest, GuestResponseParser};
    use genai_bench::backend::host;
    use genai_bench::backend::types::{
        ApiError, AuthHeader, AuthScheme, BuiltRequest, Event, HttpRequest, LogLevel, PluginInfo,
        Request, ResponseHead, Task, Usage,
    };

    struct Component;

    impl Guest for Component {
        type ResponseParser = ResponseParser;

        fn info() -> PluginInfo {
            PluginInfo {
                name: logic::NAME.to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                description: logic::DESCRIPTION.to_owned(),
                tasks: vec![Task::TextToText],
                // The host inserts `Authorization: Bearer <key>`; the key
                // never enters the plugin. Use `None` for no key; the
                // contract's other schemes (AWS SigV4, Azure, ...) are
                // signed by the host too.
                auth: Some(AuthScheme::Header(AuthHeader {
                    name: "Authorization".to_owned(),
                    prefix: "Bearer ".to_owned(),
                })),
                // Further --api-backend names this plugin answers to.
                backends: Vec::new(),
            }
        }

        fn validate_params(params_json: String) -> Result<(), String> {
            logic::parse_params(&params_json).map(|_| ())
        }

        fn build_request(request: Request) -> Result<BuiltRequest, String> {
            if request.task != Task::TextToText {
                return Err("this plugin only supports --task text-to-text".to_owned());
            }
            host::log(LogLevel::Debug, "building a completions request");
            let (path, body) = logic::build_request(
                &request.model,
                &request.prompt,
                request.max_tokens,
                request.stream,
                &request.params_json,
            )?;
            Ok(BuiltRequest {
                http: HttpRequest {
                    method: "POST".to_owned(),
                    path,
                    headers: vec![("Content-Type".to_owned(), "application/json".to_owned())],
                    body,
                },
                // The parser runs in another instance: anything it must
                // know about this request goes here (this one needs nothing).
                parser_note: String::new(),
            })
        }
    }

    /// The exported resource; WIT methods take `&self`.
    struct ResponseParser(RefCell<logic::Parser>);

    impl GuestResponseParser for ResponseParser {
        /// `_parser_note` is what `build_request` returned for this request.
        fn new(head: ResponseHead, _parser_note: String) -> Self {
            ResponseParser(RefCell::new(logic::Parser::new(head.status, head.stream)))
        }

        /// The chunks that arrived since the last call: chunk `i` ends at
        /// `ends[i]` in `bytes`. One list of events per chunk.
        fn feed(&self, bytes: Vec<u8>, ends: Vec<u32>) -> Result<Vec<Vec<Event>>, String> {
            let mut parser = self.0.borrow_mut();
            let mut from = 0;
            ends.into_iter()
                .map(|end| {
                    let chunk = bytes.get(from..end as usize).ok_or("bad chunk ends")?;
                    from = end as usize;
                    parser.feed(chunk).map(events)
                })
                .collect()
        }

        fn finish(&self) -> Result<Vec<Event>, String> {
            self.0.borrow_mut().finish().map(events)
        }
    }

    fn events(events: Vec<logic::Event>) -> Vec<Event> {
        events
            .into_iter()
            .map(|e| match e {
                logic::Event::Content(text) => Event::Content(text),
                logic::Event::Usage { prompt, completion } => Event::Usage(Usage {
                    prompt_tokens: prompt,
                    completion_tokens: completion,
                    reasoning_tokens: None,
                }),
                logic::Event::Error { code, message } => Event::Error(ApiError { code, message }),
                logic::Event::End => Event::End,
            })
            .collect()
    }

    export!(Component);
}
