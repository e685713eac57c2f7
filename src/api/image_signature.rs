//! `ImageSignature` (cluster scoped): mirrors OpenShift's `image/v1` `ImageSignature`,
//! `SignatureCondition`, `SignatureIssuer` and `SignatureSubject`.
//!
//! The same type is embedded, with its metadata, in [`Image::signatures`](super::ImageFields::signatures).
//!
//! Deviations from upstream's shape:
//! - Upstream serves ImageSignature as a create/delete-only virtual resource whose name is
//!   `<imageName>@<signatureName>`; custom resource names cannot contain `@`, so the object name
//!   is the encoding in [`crate::names::image_signature`] and the schema does not check the
//!   `@` form. Upstream's "signature labels/annotations cannot be set" and the
//!   Trusted/ForImage condition rules are left to the validating webhook (CEL at the root cannot
//!   read `metadata.labels`).
//! - `type` and `content` are schema-required and must be non-empty, as upstream validation
//!   requires.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::schema::non_empty_byte_string;

/// The only signature type upstream knows (`image/v1` `ImageSignatureTypeAtomicImageV1`).
pub const IMAGE_SIGNATURE_TYPE_ATOMIC_IMAGE_V1: &str = "AtomicImageV1";

/// ImageSignature holds a signature of an image. It allows to verify image identity and possibly other claims as long as the signature is trusted. Based on this information it is possible to restrict runnable images to those matching cluster-wide policy. Mandatory fields should be parsed by clients doing image verification. The others are parsed from signature's content by the server. They serve just an informative purpose.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "image.openshift.io",
    version = "v1",
    kind = "ImageSignature",
    plural = "imagesignatures",
    singular = "imagesignature",
    no_spec,
    derive = "Default",
    derive = "PartialEq",
    doc = "ImageSignature holds a signature of an image. It allows to verify image identity and possibly other claims as long as the signature is trusted. Based on this information it is possible to restrict runnable images to those matching cluster-wide policy. Mandatory fields should be parsed by clients doing image verification. The others are parsed from signature's content by the server. They serve just an informative purpose.\n\nCompatibility level 1: Stable within a major release for a minimum of 12 months or 3 minor releases (whichever is longer)."
)]
#[serde(rename_all = "camelCase")]
pub struct ImageSignatureFields {
    /// Required: Describes a type of stored blob.
    #[serde(rename = "type")]
    #[schemars(length(min = 1))]
    pub type_: String,
    /// Required: An opaque binary string which is an image's signature.
    #[schemars(schema_with = "non_empty_byte_string")]
    pub content: ByteString,
    /// conditions represent the latest available observations of a signature's current state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<SignatureCondition>,
    /// A human readable string representing image's identity. It could be a product name and version, or an image pull spec (e.g. "registry.access.redhat.com/rhel7/rhel:7.2").
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_identity: String,
    /// Contains claims from the signature.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub signed_claims: BTreeMap<String, String>,
    /// If specified, it is the time of signature's creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Time>,
    /// If specified, it holds information about an issuer of signing certificate or key (a person or entity who signed the signing certificate or key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_by: Option<SignatureIssuer>,
    /// If specified, it holds information about a subject of signing certificate or key (a person or entity who signed the image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_to: Option<SignatureSubject>,
}

/// SignatureCondition describes an image signature condition of particular kind at particular probe time.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignatureCondition {
    /// type of signature condition, Complete or Failed.
    #[serde(rename = "type")]
    pub type_: String,
    /// status of the condition, one of True, False, Unknown.
    pub status: String,
    /// Last time the condition was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,
    /// Last time the condition transit from one status to another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// (brief) reason for the condition's last transition.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Human readable message indicating details about last transition.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// SignatureIssuer holds information about an issuer of signing certificate or key.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignatureIssuer {
    /// organization name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub organization: String,
    /// Common name (e.g. openshift-signing-service).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub common_name: String,
}

/// SignatureSubject holds information about a person or entity who created the signature.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignatureSubject {
    /// organization name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub organization: String,
    /// Common name (e.g. openshift-signing-service).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub common_name: String,
    /// If present, it is a human readable key id of public key belonging to the subject used to verify image signature. It should contain at least 64 lowest bits of public key's fingerprint (e.g. 0x685ebe62bf278440).
    #[serde(rename = "publicKeyID", default)]
    pub public_key_id: String,
}
