//! The import engine: registry images to `Image` objects.
//!
//! [`contract`] is what the rules ask for and what they get back (plain data, no IO: the
//! rules in [`crate::stream`] depend on it and on nothing else here); [`manifest`] holds the
//! pure decisions (media types, Legacy child selection, what an Image contains); [`source`]
//! the registry operations one import needs ([`source::Source`], over the registry client in
//! [`crate::registry`]); [`engine`] one tag's import (HEAD first, known Images never
//! refetched); [`config_cache`] config blobs by digest, fetched once; and [`importer`] a whole
//! request: credentials, clients, repository listing; [`trust`] the verification of an
//! image a policy covers before its tag moves; [`referrers`] the listing of what is attached
//! to a new image (signatures, SBOMs, attestations) on its Image.

pub mod config_cache;
pub mod contract;
pub mod engine;
pub mod importer;
pub mod manifest;
pub mod referrers;
pub mod source;
pub mod trust;
