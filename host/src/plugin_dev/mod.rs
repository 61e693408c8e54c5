//! Tools for plugin authors: `genai-bench plugin check` (a conformance kit)
//! and `genai-bench plugin new` (a scaffold that passes it).

pub mod check;
pub mod fixture;
pub mod scaffold;
