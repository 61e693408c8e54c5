//! genai-bench: an LLM-serving benchmark whose API formats live in
//! sandboxed WebAssembly plugins.
//!
//! Data flow: [`cli`] parses flags → the [`plugin`] runtime loads the backend
//! component → for each request, [`transport`] asks a fresh plugin instance
//! to build the HTTP request, sends it, timestamps every body chunk as it
//! arrives and hands the bytes to the plugin's parser → the typed events and
//! host timestamps become measurements.

pub mod auth;
pub mod aws;
pub mod benchmark;
pub mod calibrate;
pub mod cli;
pub mod cloud;
pub mod demo;
pub mod gcp;
pub mod load;
pub mod logging;
pub mod merge;
pub mod metrics;
pub mod oci;
pub mod plugin;
pub mod plugin_dev;
pub mod progress;
pub(crate) mod race;
pub mod reports;
pub mod results;
pub mod sampling;
pub mod scenarios;
pub mod scheduler;
pub mod simulator;
pub mod tokenizer;
pub mod transport;
pub mod upload;
pub mod validity;
