//! Fuzzes pull-secret parsing and lookup (src/credentials.rs): arbitrary file contents into
//! `Keyring::from_file_bytes`, then `lookup`/`best` for every entry's own key and for the
//! words of the input, with the invariants of fuzz/credentials_invariants.rs.
//!
//! Run: `cargo +nightly fuzz run credentials` from the repository root (or scripts/fuzz.sh).

#![no_main]

use imagestream_operator::credentials::*;
use libfuzzer_sys::fuzz_target;

include!("../credentials_invariants.rs");

fuzz_target!(|data: &[u8]| {
    check_credential_invariants(data);
});
