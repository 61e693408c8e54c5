//! genai-bench backend plugin for Amazon Bedrock (`--api-backend
//! aws-bedrock`): `InvokeModel` (`/model/<id>/invoke`) and
//! `InvokeModelWithResponseStream` (`/model/<id>/invoke-with-response-stream`,
//! AWS event-stream frames) under `--api-base` (default
//! `https://bedrock-runtime.<region>.amazonaws.com`). The host signs every
//! request with SigV4 for service `bedrock`; the plugin never sees a key.
//!
//! Bodies follow genai-bench's `AWSBedrockUser`, by model family (Claude
//! messages, Titan, Llama, other models' `prompt`), with one correction:
//! `ignore_eos`, `min_tokens` and `stream`, which Bedrock models refuse as
//! unknown fields, are not sent. Answers are read per family, with the
//! server's token counts (genai-bench counts words instead).

pub use plugin_kit::{json, model, parser};
pub mod eventstream;
pub mod request;
pub mod response;

/// What `plugin inspect` shows; the version is the crate's.
pub const INFO: plugin_kit::component::Info = plugin_kit::component::Info {
    name: "aws-bedrock",
    description: "Amazon Bedrock InvokeModel: Claude, Titan, Llama and other text models, \
                  streamed (event stream) or not, Claude images, Titan embeddings",
    tasks: &[
        model::Task::TextToText,
        model::Task::ImageTextToText,
        model::Task::TextToEmbeddings,
    ],
    auth: Some(model::Auth::AwsSigv4("bedrock")),
    backends: &[],
    dialect: model::Dialect::OpenAi,
};

plugin_kit::export_backend! {
    wit: "../../wit",
    info: crate::INFO,
    check_params: crate::request::check_params,
    build_request: crate::request::build,
    parser: crate::response::Parser,
}
