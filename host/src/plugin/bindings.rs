//! Host-side bindings generated from the WIT contracts: the current one
//! (`wit/backend.wit`) and every older one this host still loads
//! (`wit/v<version>/`).
//!
//! Kept in their own module so the generated names stay out of the rest of
//! the host, which works with the plain types in [`super::types`].

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    exports: { default: async },
});

pub use self::genai_bench::backend::types as wit;

/// Bindings for contract 0.4.0, frozen in `wit/v0.4.0/`. Its types are
/// the current ones (0.5.0 only added `built-request` and changed two
/// functions), so they are shared: nothing needs converting.
pub mod v0_4 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.4.0",
        world: "plugin",
        exports: { default: async },
        with: { "genai-bench:backend/types@0.4.0": super::genai_bench::backend::types },
    });
}

/// Bindings for contract 0.3.0, frozen in `wit/v0.3.0/`. Its types are
/// the current ones too (0.4.0 changed only `feed`), so they are shared.
pub mod v0_3 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.3.0",
        world: "plugin",
        exports: { default: async },
        with: { "genai-bench:backend/types@0.3.0": super::genai_bench::backend::types },
    });
}

/// Bindings for contract 0.2.0, frozen in `wit/v0.2.0/`.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.2.0",
        world: "plugin",
        exports: { default: async },
    });

    pub use self::genai_bench::backend::types as wit;
}

/// Bindings for contract 0.1.0, frozen in `wit/v0.1.0/`.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "plugin",
        exports: { default: async },
    });

    pub use self::genai_bench::backend::types as wit;
}
