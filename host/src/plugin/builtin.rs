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

#[cfg(test)]
mod tests {
    /// An unsigned LEB128 at `b[*i..]`, moving `i` past it.
    fn leb(b: &[u8], i: &mut usize) -> usize {
        let (mut v, mut shift) = (0usize, 0);
        loop {
            let byte = b[*i];
            *i += 1;
            v |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte < 0x80 {
                return v;
            }
        }
    }

    /// The sections (id, body) of a module or component, after its header.
    fn sections(b: &[u8]) -> Vec<(u8, &[u8])> {
        let mut out = Vec::new();
        let mut i = 8;
        while i < b.len() {
            let id = b[i];
            i += 1;
            let n = leb(b, &mut i);
            out.push((id, &b[i..i + n]));
            i += n;
        }
        out
    }

    /// The workspace's `.cargo/config.toml` links every plugin with 2 MiB
    /// of initial memory, so a fresh instance's allocations need no
    /// `memory.grow` (whose undoing costs a TLB flush per instance). Read
    /// from the embedded bytes: a build that lost the flag fails here.
    #[test]
    fn built_in_plugins_start_with_room_for_a_request() {
        for p in super::BUILTIN_PLUGINS {
            // The main core module is the component's first (section 1).
            let (_, module) = sections(p.wasm)
                .into_iter()
                .find(|(id, _)| *id == 1)
                .unwrap_or_else(|| panic!("{}: no core module", p.name));
            let (_, memories) = sections(module)
                .into_iter()
                .find(|(id, _)| *id == 5)
                .unwrap_or_else(|| panic!("{}: no memory section", p.name));
            let mut i = 0;
            assert_eq!(leb(memories, &mut i), 1, "{}: one memory", p.name);
            i += 1; // limits flags
            let pages = leb(memories, &mut i);
            assert!(
                pages >= 32,
                "{}: initial memory {pages} pages, want >= 32 (2 MiB; see .cargo/config.toml)",
                p.name
            );
        }
    }
}
