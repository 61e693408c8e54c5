//! genai-bench backend plugin for Baseten model endpoints.
//!
//! The logic lives in plain modules so it builds and tests natively; only
//! `component` touches the WIT bindings, and only on wasm.

pub mod params;
// Response parsing and the plain types are shared with the other Rust
// plugins (plugins/kit).
pub use plugin_kit::{json, model, parser};
pub mod request;

/// What `plugin inspect` shows; the version is the crate's.
pub const INFO: plugin_kit::component::Info = plugin_kit::component::Info {
    name: "baseten",
    description: "Baseten model endpoints: OpenAI-compatible chat or plain prompt format, \
                  streaming or not, plus embeddings",
    tasks: &[
        model::Task::TextToText,
        model::Task::ImageTextToText,
        model::Task::TextToEmbeddings,
    ],
    auth: Some(model::Auth::Header("Authorization", "Api-Key ")),
    backends: &[],
    dialect: model::Dialect::OpenAi,
};

// The WIT glue (on wasm only): bindings, conversions, the exported parser.
plugin_kit::export_backend! {
    wit: "../../wit",
    info: crate::INFO,
    check_params: crate::params::check,
    build_request: crate::request::build,
}
