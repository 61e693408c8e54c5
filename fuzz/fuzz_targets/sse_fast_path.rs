//! The kit's fast path for per-token SSE chunks against the typed view it
//! stands in for: whatever payload the fast path reads, it must return the
//! events (and the finish flag) the typed view returns for it
//! (`check_sse_fast_path` panics otherwise).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|payload: &[u8]| {
    plugin_kit::parser::check_sse_fast_path(payload);
});
