//! The import engine: registry images to `Image` objects.
//!
//! [`manifest`] holds the pure decisions (media types, Legacy child selection, what an Image
//! contains); the registry IO lives in [`crate::registry`].

pub mod engine;
pub mod manifest;
