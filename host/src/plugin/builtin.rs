//! Plugins compiled from `plugins/` by the build script and embedded in the
//! binary, so `--api-backend baseten` works after `cargo install`.

/// One embedded plugin.
pub struct BuiltinPlugin {
    /// Backend name (`--api-backend`).
    pub name: &'static str,
    /// The component's bytes.
    pub wasm: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));

/// The embedded plugin called `name`, if any.
pub fn find(name: &str) -> Option<&'static BuiltinPlugin> {
    BUILTIN_PLUGINS.iter().find(|p| p.name == name)
}

/// Names of all embedded plugins.
pub fn names() -> Vec<&'static str> {
    BUILTIN_PLUGINS.iter().map(|p| p.name).collect()
}
