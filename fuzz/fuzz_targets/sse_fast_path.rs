//! The kit's fast path for per-token SSE chunks against the typed view it
//! stands in for: whatever payload the fast path reads, it must return the
//! events (and the finish flag) the typed view returns for it
//! (`check_sse_fast_path` panics otherwise). An input with a newline is
//! also two payloads: a template is learnt from the first and must read
//! the second as the full reader does (`check_sse_template`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|payload: &[u8]| {
    plugin_kit::parser::check_sse_fast_path(payload);
    if let Some(at) = payload.iter().position(|&b| b == b'\n') {
        plugin_kit::parser::check_sse_template(&payload[..at], &payload[at + 1..]);
    }
});
