//! Shared by the Rust backend plugins (`plugins/baseten`, `plugins/openai`):
//! the incremental response parser (SSE, plain-text streams, whole bodies),
//! the JSON shapes it reads, the params checks they share, and plain types
//! mirroring the WIT contract.
//! Pure Rust with no bindings, so it builds and tests natively.

pub mod json;
pub mod model;
pub mod params;
pub mod parser;
