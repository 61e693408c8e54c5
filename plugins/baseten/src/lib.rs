//! genai-bench backend plugin for Baseten model endpoints.
//!
//! The logic lives in plain modules so it builds and tests natively; only
//! `component` touches the WIT bindings, and only on wasm.

pub mod json;
pub mod model;
pub mod params;
pub mod parser;
pub mod request;

#[cfg(target_arch = "wasm32")]
mod component;
