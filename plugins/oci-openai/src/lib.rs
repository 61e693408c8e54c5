//! genai-bench backend plugin for OCI Generative AI's OpenAI-compatible
//! endpoint (`--api-backend oci-openai`): OpenAI's requests under
//! `--api-base` (default `https://inference.generativeai.<region>.
//! oci.oraclecloud.com/openai/v1`, as the `oci-openai` package builds it),
//! with the compartment from `--additional-request-params '{"compartmentId":
//! "ocid1.compartment..."}'` sent as the `CompartmentId` and
//! `opc-compartment-id` headers. The host signs every request with the
//! user's OCI API key (`oci-signature`).
//!
//! genai-bench's `OCIOpenAIUser` serves text-to-image and text-to-speech;
//! chat and embeddings go through the same endpoint here. Request building
//! and parsing are the OpenAI plugin's (plugins/kit).

use serde_json::Value;

pub use plugin_kit::{json, model, parser};
use plugin_kit::{openai, params};

/// What `plugin inspect` shows; the version is the crate's.
pub const INFO: plugin_kit::component::Info = plugin_kit::component::Info {
    name: "oci-openai",
    description: "OCI Generative AI's OpenAI-compatible endpoint: images, speech, chat \
                  completions, embeddings",
    tasks: &[
        model::Task::TextToImage,
        model::Task::TextToSpeech,
        model::Task::TextToText,
        model::Task::ImageTextToText,
        model::Task::TextToEmbeddings,
    ],
    auth: Some(model::Auth::OciSignature),
    backends: &[],
    dialect: model::Dialect::OpenAi,
};

/// Params that address OCI, not the model: never in the body.
const OCI_ONLY: [&str; 3] = ["compartmentId", "servingType", "endpointId"];

/// Checks `--additional-request-params`: the compartment, then OpenAI's.
pub fn check_params(
    p: &serde_json::Map<String, Value>,
    log: &mut dyn model::Log,
) -> Result<(), String> {
    params::oci_compartment(p)?;
    let mut rest = p.clone();
    for k in OCI_ONLY {
        rest.remove(k);
    }
    openai::params::check(&rest, log)
}

/// The OpenAI request (as `--api-backend openai` sends it) under a base
/// that already ends in `/v1`, with the compartment headers.
pub fn build_request(request: &model::Request) -> Result<model::HttpRequest, String> {
    let p = params::parse(&request.params_json)?;
    check_params(&p, &mut model::NoLog)?;
    let compartment = params::oci_compartment(&p)?.to_owned();
    let mut rest = p.clone();
    for k in OCI_ONLY {
        rest.remove(k);
    }
    let mut openai_request = request.clone();
    openai_request.params_json = Value::Object(rest).to_string();
    openai_request.backend = "openai".into();
    let mut http = openai::request::build(&openai_request)?;
    if let Some(path) = http.path.strip_prefix("/v1") {
        http.path = path.to_owned();
    }
    http.headers
        .push(("CompartmentId".to_owned(), compartment.clone()));
    http.headers
        .push(("opc-compartment-id".to_owned(), compartment));
    Ok(http)
}

plugin_kit::export_backend! {
    wit: "../../wit",
    info: crate::INFO,
    check_params: crate::check_params,
    build_request: crate::build_request,
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{Request, Task};

    fn request(task: Task, params: &str) -> Request {
        Request {
            task,
            model: "openai.gpt-image-1".into(),
            prompt: "Hello there".into(),
            messages: Vec::new(),
            image_urls: Vec::new(),
            documents: vec!["a".into()],
            query: String::new(),
            image_output: Some((512, 512, 1)),
            max_tokens: None,
            stream: false,
            params_json: params.into(),
            backend: "oci-openai".into(),
            backend_options: Vec::new(),
        }
    }

    const PARAMS: &str = r#"{"compartmentId": "ocid1.compartment.oc1..c", "quality": "low"}"#;

    #[test]
    fn openai_requests_under_the_v1_base_with_the_compartment_headers() {
        let http = build_request(&request(Task::TextToImage, PARAMS)).unwrap();
        assert_eq!(http.path, "/images/generations");
        for h in ["CompartmentId", "opc-compartment-id"] {
            assert!(
                http.headers
                    .contains(&(h.into(), "ocid1.compartment.oc1..c".into())),
                "{h}"
            );
        }
        let b: Value = serde_json::from_slice(&http.body).unwrap();
        assert_eq!(b["size"], "512x512");
        assert_eq!(b["quality"], "low");
        assert!(b.get("compartmentId").is_none(), "{b}");
        for (task, path) in [
            (Task::TextToSpeech, "/audio/speech"),
            (Task::TextToText, "/chat/completions"),
            (Task::TextToEmbeddings, "/embeddings"),
        ] {
            assert_eq!(build_request(&request(task, PARAMS)).unwrap().path, path);
        }
    }

    #[test]
    fn the_compartment_is_required() {
        let e = build_request(&request(Task::TextToImage, "{}")).unwrap_err();
        assert!(e.contains("compartmentId"), "{e}");
    }
}
