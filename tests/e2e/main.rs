//! End-to-end tests: the real host, real wasm plugins built from `plugins/`
//! and `tests/plugins/`, real HTTP over loopback.
//!
//! One test binary on purpose: every binary that touches wasmtime's generics
//! pays their compile time again.

mod common;

mod accuracy;
mod baseten_requests;
mod baseten_responses;
mod benchmark;
mod cli;
mod honest;
mod hostile;
mod hot_swap;
mod http_flow;
mod load;
mod openai;
mod options;
mod other_languages;
mod plugin_dev;
mod plugin_versions;
mod real_servers;
mod reports;
mod sandbox;
mod simulator;
mod spec_commands;
mod wire;
