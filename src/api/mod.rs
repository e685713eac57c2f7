//! The `image.openshift.io/v1` kinds as Rust types and CustomResourceDefinitions.
//!
//! One module per kind, each mirroring OpenShift's `image/v1` type field for field (same JSON
//! names, nesting and types) and listing its deviations in its module doc:
//!
//! | Kind | Scope | Rust root / fields struct | Module |
//! |---|---|---|---|
//! | Image | cluster | [`Image`] / [`ImageFields`] (flattened) | [`image`] |
//! | ImageSignature | cluster | [`ImageSignature`] / [`ImageSignatureFields`] (flattened) | [`image_signature`] |
//! | ImageStream | namespaced | [`ImageStream`] / [`ImageStreamSpec`], [`ImageStreamStatus`] | [`image_stream`] |
//! | ImageStreamTag | namespaced | [`ImageStreamTag`] / [`ImageStreamTagFields`] (flattened) | [`image_stream_tag`] |
//! | ImageTag | namespaced | [`ImageTag`] / [`ImageTagFields`] (flattened), status [`NamedTagEventList`] | [`image_tag`] |
//! | ImageStreamImage | namespaced | [`ImageStreamImage`] / [`ImageStreamImageFields`] (flattened) | [`image_stream_image`] |
//! | ImageStreamLayers | namespaced | [`ImageStreamLayers`] / [`ImageStreamLayersFields`] (flattened) | [`image_stream_layers`] |
//! | ImageStreamImport | namespaced | [`ImageStreamImport`] / [`ImageStreamImportSpec`], [`ImageStreamImportStatus`] | [`image_stream_import`] |
//! | ImageStreamMapping | namespaced | [`ImageStreamMapping`] / [`ImageStreamMappingFields`] (flattened) | [`image_stream_mapping`] |
//!
//! Kinds without `spec` upstream use kube's `#[kube(no_spec)]`: the Rust value is still
//! `Foo { metadata, spec: FooFields }`, but the fields sit at the root on the wire.
//! [`DockerImage`] is the typed shape of `Image.dockerImageMetadata` (no CRD).
//!
//! Conventions every type follows:
//! - Serialisation mirrors upstream's Go tags: fields Go always writes are always written,
//!   `omitempty` ones only when non-empty, Go pointers only when `Some`, so a typed
//!   server-side apply never claims a field the writer left unset.
//! - The schema requires a field only where upstream validation requires it, never just
//!   because Go lacks `omitempty`; fields upstream writes as `null` are `nullable`. Anything
//!   the schema accepts deserialises (a watch must never fail on an object the apiserver took).
//! - No schema `default`s: objects read back exactly as written; defaulting is the mutating
//!   webhook's job.
//! - Full objects embedded in others (`ImageStreamTag.image`, `ImageStreamImport.status.import`,
//!   `Image.signatures[]`, …) are the kinds' own root types, with a complete `metadata`. When
//!   written by us they also carry `apiVersion`/`kind` (upstream's nested objects have none;
//!   both forms read back).
//!
//! Always install the CRDs from [`crds()`], not `Foo::crd()`: [`crds()`] removes the `default`s
//! schemars derives from `#[serde(default)]` and makes ImageStream's `spec` optional.

// Field docs are upstream's text verbatim (they become the CRD descriptions), bare URLs included.
#![allow(rustdoc::bare_urls)]

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub mod docker_image;
pub mod image;
pub mod image_signature;
pub mod image_stream;
pub mod image_stream_image;
pub mod image_stream_import;
pub mod image_stream_layers;
pub mod image_stream_mapping;
pub mod image_stream_tag;
pub mod image_tag;
pub(crate) mod schema;

#[cfg(test)]
mod tests;

pub use docker_image::{DockerConfig, DockerImage};
pub use image::{Image, ImageFields, ImageLayer, ImageManifest};
pub use image_signature::{
    ImageSignature, ImageSignatureFields, SignatureCondition, SignatureIssuer, SignatureSubject,
};
pub use image_stream::{
    ImageLookupPolicy, ImageStream, ImageStreamSpec, ImageStreamStatus, ImportMode,
    NamedTagEventList, ObjectReference, TagEvent, TagEventCondition, TagImportPolicy, TagReference,
    TagReferencePolicy, TagReferencePolicyType,
};
pub use image_stream_image::{ImageStreamImage, ImageStreamImageFields};
pub use image_stream_import::{
    ImageImportSpec, ImageImportStatus, ImageStreamImport, ImageStreamImportSpec,
    ImageStreamImportStatus, LocalObjectReference, MetaStatus, RepositoryImportSpec,
    RepositoryImportStatus,
};
pub use image_stream_layers::{
    ImageBlobReferences, ImageLayerData, ImageStreamLayers, ImageStreamLayersFields,
};
pub use image_stream_mapping::{ImageStreamMapping, ImageStreamMappingFields};
pub use image_stream_tag::{ImageStreamTag, ImageStreamTagFields};
pub use image_tag::{ImageTag, ImageTagFields};

/// The API group of every kind in this module.
pub const GROUP: &str = "image.openshift.io";
/// The only served and stored version.
pub const VERSION: &str = "v1";
/// `apiVersion` of every kind in this module.
pub const API_VERSION: &str = "image.openshift.io/v1";

/// Every `image.openshift.io` CustomResourceDefinition, ready to install.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        schema::finalize(Image::crd(), &[]),
        schema::finalize(ImageSignature::crd(), &[]),
        schema::finalize(ImageStream::crd(), &["spec"]),
        schema::finalize(ImageStreamTag::crd(), &[]),
        schema::finalize(ImageTag::crd(), &[]),
        schema::finalize(ImageStreamImage::crd(), &[]),
        schema::finalize(ImageStreamLayers::crd(), &[]),
        without_status_subresource(schema::finalize(ImageStreamImport::crd(), &[])),
        schema::finalize(ImageStreamMapping::crd(), &[]),
    ]
}

/// The CRD with `status` as a plain field: an ImageStreamImport is answered in its create (the
/// admission webhook fills `status`), and a status subresource would make the apiserver drop
/// it from the create.
fn without_status_subresource(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        version.subresources = None;
    }
    crd
}
