//! genai-bench backend plugin for OCI Generative AI's own API:
//! `--api-backend oci-cohere` (the COHERE chat format, embedText,
//! rerankText), `oci-cohere-v2` (COHEREV2, with images) and `oci-genai`
//! (GENERIC, for Meta, xAI, ... models). OCI's OpenAI-compatible endpoint
//! is the `oci-openai` plugin.
//!
//! Requests go to `/20231130/actions/chat`, `/embedText` and `/rerankText`
//! under `--api-base` (default `https://inference.generativeai.<region>.
//! oci.oraclecloud.com`). Images sent to oci-cohere go in the COHEREV2
//! format (the COHERE format has no place for them). The compartment
//! comes from `--additional-request-params '{"compartmentId":
//! "ocid1.compartment..."}'`, as in genai-bench. The host
//! signs every request with the user's OCI API key (`oci-signature`); the
//! plugin never sees it.
//!
//! Bodies follow genai-bench's OCI user classes, with these corrections:
//! the COHERE format's default `topK` is 0 (genai-bench sends 0.75, which
//! is not an integer), streaming follows `--disable-streaming`, and
//! `ignore_eos` / `min_tokens`, which OCI does not take, are not sent.

pub use plugin_kit::{json, model, parser};
pub mod request;

use model::Dialect;

/// What `plugin inspect` shows; the version is the crate's.
pub const INFO: plugin_kit::component::Info = plugin_kit::component::Info {
    name: "oci-genai",
    description: "OCI Generative AI: COHERE, COHEREV2 and GENERIC chat (streamed or whole, \
                  images), embedText (texts, images), rerankText",
    tasks: &[
        model::Task::TextToText,
        model::Task::ImageTextToText,
        model::Task::TextToEmbeddings,
        model::Task::ImageToEmbeddings,
        model::Task::TextToRerank,
    ],
    auth: Some(model::Auth::OciSignature),
    backends: &["oci-cohere", "oci-cohere-v2"],
    dialect: Dialect::Oci,
};

plugin_kit::export_backend! {
    wit: "../../wit",
    info: crate::INFO,
    check_params: crate::request::check_params,
    build_request: crate::build_request,
}

/// Builds the request in the format of the user's `--api-backend` name.
pub fn build_request(request: &model::Request) -> Result<model::HttpRequest, String> {
    request::build(request, request::Format::of(&request.backend)?)
}
