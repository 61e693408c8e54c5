//! Requests of OpenAI-compatible APIs (OpenAI, vLLM, SGLang, Together and
//! Azure OpenAI), following genai-bench's user classes: the payloads, the
//! params checks and each server's rules. Used by `plugins/openai` and
//! `plugins/azure-openai`.

pub mod params;
pub mod request;
