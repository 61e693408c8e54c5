//! The WIT glue: converts between the bindings and the plain logic types.

use std::cell::RefCell;

use crate::model;
use crate::parser::Parser;

wit_bindgen::generate!({ path: "../../wit", world: "plugin" });

use exports::genai_bench::backend::backend::{Guest, GuestResponseParser};
use genai_bench::backend::host;
use genai_bench::backend::types::{
    ApiError, AuthHeader, Event, HttpRequest, LogLevel, PluginInfo, Request, ResponseHead, Task,
    Usage,
};

struct Component;

/// Forwards log lines to the host.
struct HostLog;

impl model::Log for HostLog {
    fn log(&mut self, level: model::Level, message: &str) {
        let level = match level {
            model::Level::Debug => LogLevel::Debug,
            model::Level::Warn => LogLevel::Warn,
        };
        host::log(level, message);
    }
}

impl Guest for Component {
    type ResponseParser = ResponseParser;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "baseten".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: "Baseten model endpoints: OpenAI-compatible chat or plain prompt format, \
                          streaming or not, plus embeddings"
                .to_owned(),
            tasks: vec![
                Task::TextToText,
                Task::ImageTextToText,
                Task::TextToEmbeddings,
            ],
            auth: Some(AuthHeader {
                name: "Authorization".to_owned(),
                prefix: "Api-Key ".to_owned(),
            }),
            backends: Vec::new(),
        }
    }

    fn validate_params(params_json: String) -> Result<(), String> {
        crate::params::check(&crate::params::parse(&params_json)?, &mut HostLog)
    }

    fn build_request(request: Request) -> Result<HttpRequest, String> {
        let request = model::Request {
            task: task(request.task),
            model: request.model,
            prompt: request.prompt,
            messages: request
                .messages
                .into_iter()
                .map(|m| model::Message {
                    role: m.role,
                    content: m.content,
                })
                .collect(),
            image_urls: request.image_urls,
            documents: request.documents,
            max_tokens: request.max_tokens,
            stream: request.stream,
            params_json: request.params_json,
            backend: request.backend,
        };
        let http = crate::request::build(&request)?;
        Ok(HttpRequest {
            method: http.method,
            path: http.path,
            headers: http.headers,
            body: http.body,
        })
    }
}

fn task(task: Task) -> model::Task {
    match task {
        Task::TextToText => model::Task::TextToText,
        Task::ImageTextToText => model::Task::ImageTextToText,
        Task::TextToEmbeddings => model::Task::TextToEmbeddings,
    }
}

/// The exported resource; the WIT methods take `&self`.
struct ResponseParser(RefCell<Parser>);

impl GuestResponseParser for ResponseParser {
    fn new(head: ResponseHead) -> Self {
        let head = model::ResponseHead {
            status: head.status,
            headers: head.headers,
            task: task(head.task),
            stream: head.stream,
        };
        ResponseParser(RefCell::new(Parser::new(&head, &mut HostLog)))
    }

    fn feed(&self, chunk: Vec<u8>) -> Result<Vec<Event>, String> {
        self.0.borrow_mut().feed(&chunk, &mut HostLog).map(events)
    }

    fn finish(&self) -> Result<Vec<Event>, String> {
        self.0.borrow_mut().finish(&mut HostLog).map(events)
    }
}

fn events(events: Vec<model::Event>) -> Vec<Event> {
    events
        .into_iter()
        .map(|e| match e {
            model::Event::Content(text) => Event::Content(text),
            model::Event::Reasoning(text) => Event::Reasoning(text),
            model::Event::Usage(u) => Event::Usage(Usage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                reasoning_tokens: u.reasoning_tokens,
            }),
            model::Event::Error(e) => Event::Error(ApiError {
                code: e.code,
                message: e.message,
            }),
            model::Event::End => Event::End,
        })
        .collect()
}

export!(Component);
