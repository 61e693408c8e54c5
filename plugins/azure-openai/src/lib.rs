//! genai-bench backend plugin for Azure OpenAI (`--api-backend azure-openai`).
//!
//! Requests go to `/openai/deployments/<deployment>/chat/completions` and
//! `.../embeddings` with `?api-version=` under `--api-base` (or
//! `--azure-endpoint`), as genai-bench's `AzureOpenAIUser` sends them: the
//! deployment from `--azure-deployment` (else the model name), no `model`
//! in the body, every additional param passed as given. The host
//! authenticates with the `azure` scheme: `api-key: <key>`, or
//! `Authorization: Bearer <--azure-ad-token>`.
//!
//! The request building and parsing are the OpenAI plugin's (plugins/kit).

pub use plugin_kit::openai::{params, request};
pub use plugin_kit::{json, model, parser};

/// What `plugin inspect` shows; the version is the crate's.
pub const INFO: plugin_kit::component::Info = plugin_kit::component::Info {
    name: "azure-openai",
    description: "Azure OpenAI deployments: chat completions, streaming or not, images, \
                  embeddings",
    tasks: &[
        model::Task::TextToText,
        model::Task::ImageTextToText,
        model::Task::TextToEmbeddings,
    ],
    auth: Some(model::Auth::Azure),
    backends: &[],
    dialect: model::Dialect::OpenAi,
};

plugin_kit::export_backend! {
    wit: "../../wit",
    info: crate::INFO,
    check_params: crate::params::check,
    build_request: crate::request::build,
}
