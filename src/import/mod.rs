//! The import engine: registry images to `Image` objects.
//!
//! [`manifest`] holds the pure decisions (media types, Legacy child selection, what an Image
//! contains), [`engine`] one tag's import (HEAD first, known Images never refetched), and
//! [`importer`] a whole request: parsing, credentials, clients, repository listing; the
//! registry IO lives in [`crate::registry`].

pub mod engine;
pub mod importer;
pub mod manifest;
