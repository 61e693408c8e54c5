//! Plugins compiled from `plugins/` by the build script and embedded in the
//! binary, so `--api-backend baseten` works after `cargo install`.

/// One embedded plugin.
pub struct BuiltinPlugin {
    /// Backend name (`--api-backend`).
    pub name: &'static str,
    /// Further `--api-backend` names it serves (its `plugin-info.backends`).
    pub backends: &'static [&'static str],
    /// The component's bytes.
    pub wasm: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));

/// The embedded plugin serving `--api-backend name` (its name or one of its
/// `backends`, any case), if any.
pub fn find(name: &str) -> Option<&'static BuiltinPlugin> {
    BUILTIN_PLUGINS.iter().find(|p| {
        p.name.eq_ignore_ascii_case(name) || p.backends.iter().any(|b| b.eq_ignore_ascii_case(name))
    })
}

/// Names of all embedded plugins.
pub fn names() -> Vec<&'static str> {
    BUILTIN_PLUGINS.iter().map(|p| p.name).collect()
}

/// Every `--api-backend` name the embedded plugins serve.
pub fn backend_names() -> Vec<&'static str> {
    BUILTIN_PLUGINS
        .iter()
        .flat_map(|p| std::iter::once(p.name).chain(p.backends.iter().copied()))
        .collect()
}
