//! Shared support code for the integration tests. Each test crate uses only part of it.
#![allow(dead_code)]

pub mod cluster;
pub mod cosign;
pub mod crds;
pub mod fault_registry;
pub mod images;
pub mod monitoring;
pub mod oc;
pub mod operator;
pub mod rbac;
pub mod receivers;
pub mod registry;
pub mod tools;
