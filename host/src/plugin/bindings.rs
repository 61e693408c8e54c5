//! Host-side bindings generated from `wit/backend.wit`.
//!
//! Kept in their own module so the generated names stay out of the rest of
//! the host, which works with the plain types in [`super::types`].

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    exports: { default: async },
});

pub use self::genai_bench::backend::types as wit;
