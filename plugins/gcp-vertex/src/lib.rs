//! genai-bench backend plugin for Vertex AI (`--api-backend gcp-vertex`):
//! Gemini models through `:streamGenerateContent?alt=sse` (or
//! `:generateContent` without streaming) and text embeddings through
//! `:predict`, under `--api-base` (default
//! `https://<location>-aiplatform.googleapis.com`), at
//! `/v1/projects/<project>/locations/<location>/publishers/google/models/<model>`.
//! The host authenticates with an OAuth2 token of the service account of
//! `--gcp-credentials-path`.
//!
//! Bodies follow genai-bench's `GCPVertexUser` (`contents`/`parts`,
//! `generationConfig`), with two corrections: the stream is asked for as
//! server-sent events (`alt=sse`; genai-bench's line reader gets nothing
//! from Vertex's pretty-printed JSON array), and `ignore_eos` /
//! `min_tokens`, which Vertex refuses as unknown fields, are not sent.

pub use plugin_kit::{json, model, parser};
pub mod request;

/// What `plugin inspect` shows; the version is the crate's.
pub const INFO: plugin_kit::component::Info = plugin_kit::component::Info {
    name: "gcp-vertex",
    description: "Vertex AI: Gemini generateContent (streamed as SSE or whole), images, \
                  text embeddings",
    tasks: &[
        model::Task::TextToText,
        model::Task::ImageTextToText,
        model::Task::TextToEmbeddings,
    ],
    auth: Some(model::Auth::GcpOauth),
    backends: &[],
    dialect: model::Dialect::Gemini,
};

plugin_kit::export_backend! {
    wit: "../../wit",
    info: crate::INFO,
    check_params: crate::request::check_params,
    build_request: crate::request::build,
}
