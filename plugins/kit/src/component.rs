//! The WIT glue of a Rust backend plugin, as a macro: the bindings are
//! generated in each plugin crate, so the conversions between them and the
//! plain [`crate::model`] types cannot live here as functions.

/// A plugin's metadata in plain types (the WIT `plugin-info`, less the
/// version, which the macro takes from the plugin crate's Cargo.toml).
#[derive(Clone, Copy, Debug)]
pub struct Info {
    /// Short name, e.g. `baseten`.
    pub name: &'static str,
    /// One line for `plugin inspect`.
    pub description: &'static str,
    /// Tasks the plugin builds requests for.
    pub tasks: &'static [crate::model::Task],
    /// How the host authenticates requests.
    pub auth: Option<crate::model::Auth>,
    /// Other `--api-backend` names it serves besides `name`.
    pub backends: &'static [&'static str],
    /// The answer format its parser reads.
    pub dialect: crate::model::Dialect,
}

/// Generate the component's bindings from the contract at `wit` (relative
/// to the plugin crate's Cargo.toml) and export the plugin:
///
/// ```ignore
/// plugin_kit::export_backend! {
///     wit: "../../wit",
///     info: INFO,                               // a plugin_kit::component::Info
///     check_params: crate::params::check,       // (&Map, &mut dyn Log) -> Result<(), String>
///     build_request: crate::request::build,     // (&model::Request) -> Result<model::HttpRequest, String>
/// }
/// ```
///
/// Responses are parsed by [`crate::parser::Parser`], or by the type given
/// as `parser: path::To::Parser` after `build_request` (same `new`, `feed`
/// and `finish`). Expands to nothing but on wasm, so the plugin's logic
/// still builds and tests natively.
#[macro_export]
macro_rules! export_backend {
    (
        wit: $wit:literal,
        info: $info:expr,
        check_params: $check:path,
        build_request: $build:path $(,)?
    ) => {
        $crate::export_backend! {
            wit: $wit,
            info: $info,
            check_params: $check,
            build_request: $build,
            parser: $crate::parser::Parser,
        }
    };
    (
        wit: $wit:literal,
        info: $info:expr,
        check_params: $check:path,
        build_request: $build:path,
        parser: $parser:path $(,)?
    ) => {
        #[cfg(target_arch = "wasm32")]
        mod component {
            use std::cell::RefCell;

            use $crate::model;
            use $parser as Parser;

            wit_bindgen::generate!({ path: $wit, world: "plugin" });

            use exports::genai_bench::backend::backend::{Guest, GuestResponseParser};
            use genai_bench::backend::host;
            use genai_bench::backend::types::{
                ApiError, AuthHeader, AuthScheme, BuiltRequest, Event, HttpRequest, ImageOutput, LogLevel,
                PluginInfo, Request, ResponseHead, Task, Usage,
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
                    let info: $crate::component::Info = $info;
                    PluginInfo {
                        name: info.name.to_owned(),
                        version: env!("CARGO_PKG_VERSION").to_owned(),
                        description: info.description.to_owned(),
                        tasks: info.tasks.iter().map(|t| wit_task(*t)).collect(),
                        auth: info.auth.map(|a| match a {
                            model::Auth::Header(name, prefix) => AuthScheme::Header(AuthHeader {
                                name: name.to_owned(),
                                prefix: prefix.to_owned(),
                            }),
                            model::Auth::AwsSigv4(service) => {
                                AuthScheme::AwsSigv4(service.to_owned())
                            }
                            model::Auth::OciSignature => AuthScheme::OciSignature,
                            model::Auth::GcpOauth => AuthScheme::GcpOauth,
                            model::Auth::Azure => AuthScheme::Azure,
                        }),
                        backends: info.backends.iter().map(|b| (*b).to_owned()).collect(),
                    }
                }

                fn validate_params(params_json: String) -> Result<(), String> {
                    $check(&$crate::params::parse(&params_json)?, &mut HostLog)
                }

                fn build_request(request: Request) -> Result<BuiltRequest, String> {
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
                        query: request.query,
                        image_output: request
                            .image_output
                            .map(|ImageOutput { width, height, count }| (width, height, count)),
                        max_tokens: request.max_tokens,
                        stream: request.stream,
                        params_json: request.params_json,
                        backend: request.backend,
                        backend_options: request.backend_options,
                    };
                    let http = $build(&request)?;
                    // The parser runs in another instance: how to read a
                    // stream of unspecific type travels in the note.
                    Ok(BuiltRequest {
                        http: HttpRequest {
                            method: http.method,
                            path: http.path,
                            headers: http.headers,
                            body: http.body,
                        },
                        parser_note: http.stream_body.note().to_owned(),
                    })
                }
            }

            fn task(task: Task) -> model::Task {
                match task {
                    Task::TextToText => model::Task::TextToText,
                    Task::ImageTextToText => model::Task::ImageTextToText,
                    Task::TextToEmbeddings => model::Task::TextToEmbeddings,
                    Task::TextToRerank => model::Task::TextToRerank,
                    Task::ImageToEmbeddings => model::Task::ImageToEmbeddings,
                    Task::TextToImage => model::Task::TextToImage,
                    Task::TextToSpeech => model::Task::TextToSpeech,
                }
            }

            fn wit_task(task: model::Task) -> Task {
                match task {
                    model::Task::TextToText => Task::TextToText,
                    model::Task::ImageTextToText => Task::ImageTextToText,
                    model::Task::TextToEmbeddings => Task::TextToEmbeddings,
                    model::Task::TextToRerank => Task::TextToRerank,
                    model::Task::ImageToEmbeddings => Task::ImageToEmbeddings,
                    model::Task::TextToImage => Task::TextToImage,
                    model::Task::TextToSpeech => Task::TextToSpeech,
                }
            }

            /// The exported resource; the WIT methods take `&self`.
            struct ResponseParser(RefCell<Parser>);

            impl GuestResponseParser for ResponseParser {
                fn new(head: ResponseHead, parser_note: String) -> Self {
                    let head = model::ResponseHead {
                        status: head.status,
                        headers: head.headers,
                        task: task(head.task),
                        stream: head.stream,
                        stream_body: model::StreamBody::from_note(&parser_note),
                        dialect: {
                            let info: $crate::component::Info = $info;
                            info.dialect
                        },
                    };
                    ResponseParser(RefCell::new(Parser::new(&head, &mut HostLog)))
                }

                fn feed(&self, bytes: Vec<u8>, ends: Vec<u32>) -> Result<Vec<Vec<Event>>, String> {
                    let mut parser = self.0.borrow_mut();
                    let mut out = Vec::with_capacity(ends.len());
                    let mut from = 0usize;
                    for end in ends {
                        let end = end as usize;
                        let chunk = bytes
                            .get(from..end)
                            .ok_or("feed: chunk ends out of order or past the bytes")?;
                        out.push(events(parser.feed(chunk, &mut HostLog)?));
                        from = end;
                    }
                    Ok(out)
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
                        model::Event::Audio(n) => Event::Audio(n),
                        model::Event::Images(n) => Event::Images(n),
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
        }
    };
}
