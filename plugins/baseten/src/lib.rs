//! genai-bench backend plugin for Baseten model endpoints.
//!
//! The logic lives in plain modules so it builds and tests natively; only
//! `component` touches the WIT bindings, and only on wasm.

pub mod params;
// Response parsing and the plain types are shared with the other Rust
// plugins (plugins/kit).
pub use plugin_kit::{json, model, parser};
pub mod request;

#[cfg(target_arch = "wasm32")]
mod component;
