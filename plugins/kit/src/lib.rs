//! Shared by the Rust backend plugins (`plugins/baseten`, `plugins/openai`,
//! `plugins/azure-openai`, `plugins/cohere`):
//! the incremental response parser (SSE, plain-text streams, whole bodies),
//! the JSON shapes it reads, the params checks they share, plain types
//! mirroring the WIT contract, OpenAI-compatible request building, and
//! [`export_backend!`], the WIT glue.
//! Pure Rust with no bindings, so it builds and tests natively.

pub mod component;
pub mod json;
pub mod model;
pub mod openai;
pub mod params;
pub mod parser;
