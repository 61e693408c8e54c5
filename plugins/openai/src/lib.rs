//! genai-bench backend plugin for OpenAI-compatible servers: OpenAI itself,
//! vLLM, SGLang and Together (`--api-backend openai|vllm|sglang|together`).
//!
//! Requests go to `/v1/chat/completions`, `/v1/embeddings`, `/v1/rerank`,
//! `/v1/images/generations` and `/v1/audio/speech` under `--api-base`. The
//! backend name decides `ignore_eos`, as in genai-bench: vLLM, SGLang and
//! Together default it to whether an output length is set, OpenAI never
//! gets it.
//!
//! The logic lives in plain modules so it builds and tests natively; only
//! `component` touches the WIT bindings, and only on wasm.

// Request building, params checks, response parsing and the plain types
// are shared with the other Rust plugins (plugins/kit).
pub use plugin_kit::openai::{params, request};
pub use plugin_kit::{json, model, parser};

/// What `plugin inspect` shows; the version is the crate's.
pub const INFO: plugin_kit::component::Info = plugin_kit::component::Info {
    name: "openai",
    description: "OpenAI-compatible servers (OpenAI, vLLM, SGLang, Together): chat \
                  completions, streaming or not, images, embeddings, rerank, image \
                  generation, speech",
    tasks: &[
        model::Task::TextToText,
        model::Task::ImageTextToText,
        model::Task::TextToEmbeddings,
        model::Task::TextToRerank,
        model::Task::TextToImage,
        model::Task::TextToSpeech,
    ],
    auth: Some(model::Auth::Header("Authorization", "Bearer ")),
    backends: &["vllm", "sglang", "together"],
    dialect: model::Dialect::OpenAi,
};

// The WIT glue (on wasm only): bindings, conversions, the exported parser.
plugin_kit::export_backend! {
    wit: "../../wit",
    info: crate::INFO,
    check_params: crate::params::check,
    build_request: crate::request::build,
}
