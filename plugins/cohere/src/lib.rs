//! genai-bench backend plugin for Cohere's v2 API (`--api-backend cohere`):
//! `/v2/chat` (streamed as Cohere's typed events) and `/v2/embed` (texts
//! or images) under `--api-base`, authenticated with `Authorization:
//! Bearer <key>`.
//!
//! The bodies follow genai-bench's `CohereUser`, with two corrections a
//! benchmark needs: the scenario's output length is sent as `max_tokens`
//! (genai-bench sends none, so `D(100,100)` asked for whatever length the
//! model chose), and `ignore_eos` / `min_tokens`, which Cohere does not
//! take, are not sent.

pub use plugin_kit::{json, model, parser};
pub mod request;

/// What `plugin inspect` shows; the version is the crate's.
pub const INFO: plugin_kit::component::Info = plugin_kit::component::Info {
    name: "cohere",
    description: "Cohere v2 API: chat (streamed typed events or whole), text and image \
                  embeddings",
    tasks: &[
        model::Task::TextToText,
        model::Task::TextToEmbeddings,
        model::Task::ImageToEmbeddings,
    ],
    auth: Some(model::Auth::Header("Authorization", "Bearer ")),
    backends: &[],
    dialect: model::Dialect::Cohere,
};

plugin_kit::export_backend! {
    wit: "../../wit",
    info: crate::INFO,
    check_params: crate::request::check_params,
    build_request: crate::request::build,
}
