//! The `image.openshift.io/v1` kinds as Rust types and CustomResourceDefinitions.
//!
//! Work in progress: the kinds are added one module at a time.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// The API group of every kind in this module.
pub const GROUP: &str = "image.openshift.io";
/// The only served and stored version.
pub const VERSION: &str = "v1";
/// `apiVersion` of every kind in this module.
pub const API_VERSION: &str = "image.openshift.io/v1";

/// Every `image.openshift.io` CustomResourceDefinition.
pub fn crds() -> Vec<CustomResourceDefinition> {
    Vec::new()
}
