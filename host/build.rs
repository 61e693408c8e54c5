//! Compiles the plugins in `plugins/` (and the test plugins in
//! `tests/plugins/`) for `wasm32-wasip2` and embeds the built-in ones, the
//! way wasmtime's test-programs build their guests: a nested cargo into a
//! target dir of its own, so it never waits on the outer build's lock.

use std::path::{Path, PathBuf};
use std::process::Command;

/// (backend name, further `--api-backend` names it serves, cargo package,
/// wasm file stem) of every built-in plugin. The names must match the
/// plugin's `info` (a host unit test checks).
const BUILTIN: &[(&str, &[&str], &str, &str)] = &[
    ("baseten", &[], "baseten-plugin", "baseten_plugin"),
    (
        "openai",
        &["vllm", "sglang", "together"],
        "openai-plugin",
        "openai_plugin",
    ),
    (
        "azure-openai",
        &[],
        "azure-openai-plugin",
        "azure_openai_plugin",
    ),
    ("cohere", &[], "cohere-plugin", "cohere_plugin"),
    (
        "aws-bedrock",
        &[],
        "aws-bedrock-plugin",
        "aws_bedrock_plugin",
    ),
    ("gcp-vertex", &[], "gcp-vertex-plugin", "gcp_vertex_plugin"),
    (
        "oci-genai",
        &["oci-cohere", "oci-cohere-v2"],
        "oci-plugin",
        "oci_plugin",
    ),
    ("oci-openai", &[], "oci-openai-plugin", "oci_openai_plugin"),
];
/// Test-only plugins, built alongside but not embedded.
const TEST_PLUGINS: &[&str] = &[
    "hostile-plugin",
    "hostile-sleepy",
    "legacy-v0_1-plugin",
    "legacy-v0_3-plugin",
    "legacy-v0_4-plugin",
    "baseten-next",
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    for watched in [
        "plugins",
        "tests/plugins",
        "wit",
        "Cargo.lock",
        "Cargo.toml",
        // The plugins' link flags (initial memory).
        ".cargo/config.toml",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");

    println!("cargo:rerun-if-env-changed=GENAI_BENCH_SKIP_PLUGINS");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    if std::env::var_os("GENAI_BENCH_SKIP_PLUGINS").is_some() {
        // For docs and quick type checks: a host with no built-in plugins.
        println!(
            "cargo:warning=GENAI_BENCH_SKIP_PLUGINS is set: building without built-in plugins"
        );
        write_if_changed(
            &out_dir.join("builtin_plugins.rs"),
            "/// Every plugin embedded at build time.\npub static BUILTIN_PLUGINS: &[BuiltinPlugin] = &[];\n",
        );
        println!("cargo:rustc-env=GENAI_BENCH_PLUGIN_WASM_DIR=");
        return;
    }

    let target_dir = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d).join("plugins"),
        None => workspace.join("target").join("plugins"),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace)
        .args(["build", "--target", "wasm32-wasip2", "--profile", "plugin"])
        .arg("--target-dir")
        .arg(&target_dir);
    for (_, _, package, _) in BUILTIN {
        cmd.args(["-p", package]);
    }
    for package in TEST_PLUGINS {
        cmd.args(["-p", package]);
    }
    // Flags and wrappers meant for the host (coverage, clippy, sanitizers)
    // must not leak into the guest build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PROFILE_RELEASE_LTO",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo for the plugins: {e}"));
    if !status.success() {
        panic!(
            "building the wasm plugins failed (see the errors above). If the target is missing, run: rustup target add wasm32-wasip2"
        );
    }

    let out_wasm = target_dir.join("wasm32-wasip2").join("plugin");
    let mut code = String::from(
        "/// Every plugin embedded at build time.\npub static BUILTIN_PLUGINS: &[BuiltinPlugin] = &[\n",
    );
    for (name, backends, _, stem) in BUILTIN {
        let path = out_wasm.join(format!("{stem}.wasm"));
        assert!(path.exists(), "plugin build produced no {}", path.display());
        code.push_str(&format!(
            "    BuiltinPlugin {{ name: {name:?}, backends: &{backends:?}, wasm: include_bytes!({:?}) }},\n",
            path.display().to_string()
        ));
    }
    code.push_str("];\n");
    write_if_changed(&out_dir.join("builtin_plugins.rs"), &code);
    println!(
        "cargo:rustc-env=GENAI_BENCH_PLUGIN_WASM_DIR={}",
        out_wasm.display()
    );
}

fn write_if_changed(path: &Path, contents: &str) {
    if std::fs::read_to_string(path).ok().as_deref() != Some(contents) {
        std::fs::write(path, contents).unwrap();
    }
}
