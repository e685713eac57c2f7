//! Fuzzes manifest parsing (src/import/manifest.rs) as the importer meets it: registry bytes
//! under a Content-Type, then Legacy mode's child choice and the Images built from what
//! parsed, with the invariants of fuzz/manifest_invariants.rs (no panic, stable reasons,
//! re-serialisation round trip, image sizes that cannot overflow).
//!
//! Run: `cargo +nightly fuzz run manifest` from the repository root (or scripts/fuzz.sh).

#![no_main]

use imagestream_operator::config::Platform;
use imagestream_operator::import::manifest::*;
use libfuzzer_sys::fuzz_target;

include!("../manifest_invariants.rs");

fuzz_target!(|data: &[u8]| {
    check_manifest_invariants(data);
});
