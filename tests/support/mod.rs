//! Shared support code for the integration tests. Each test crate uses only part of it.
#![allow(dead_code)]

pub mod cluster;
pub mod crds;
pub mod images;
pub mod registry;
