//! Fuzzes the image-reference parser (src/reference.rs): arbitrary UTF-8 in, and whenever it
//! parses, the round-trip invariants of fuzz/invariants.rs (exact() is the user's spelling,
//! Display re-parses stably, the grammar agrees with oci-spec's, the oci-client conversion
//! re-parses to itself). The stream-name helpers and PrioritizeTags run on the same input.
//!
//! Run: `cargo +nightly fuzz run reference` from the repository root (or from fuzz/).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/reference.rs"]
mod reference;

use reference::*;

include!("../invariants.rs");

fuzz_target!(|data: &[u8]| {
    if let Ok(input) = std::str::from_utf8(data) {
        check_reference_invariants(input);
        check_name_helper_invariants(input);
    }
});
