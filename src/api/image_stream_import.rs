//! `ImageStreamImport` (namespaced): mirrors OpenShift's `image/v1` `ImageStreamImport`,
//! `ImageStreamImportSpec`, `ImageStreamImportStatus`, `RepositoryImportSpec`,
//! `RepositoryImportStatus`, `ImageImportSpec` and `ImageImportStatus`, plus the
//! `metav1.Status` and `corev1.LocalObjectReference` they use.
//!
//! Deviations from upstream's shape:
//! - Upstream's is a create-only action answered synchronously, never stored; here it is a
//!   request object: the user writes `spec`, the operator's admission webhook answers the
//!   create by filling `status` (a plain field: no status subresource, which would drop it from
//!   the create), and the operator removes the object after a configurable time to live, or
//!   when the next request of the same name comes.
//! - Short name `isi` (upstream has none).
//! - `spec.images[].from` and `spec.repository.from` must have a non-empty `kind` and `name`;
//!   "only DockerImage is supported", "the name of the target tag must be specified" and "you
//!   must specify at least one image or a repository import" are CEL rules with upstream's
//!   messages. Reference parsing ("you must specify an image repository, not a tag or ID") is
//!   the webhook's.
//! - `metadata.name` must match upstream's image stream name pattern (CEL on the root).
//! - `status.images[].status` and `status.repository.status` are [`MetaStatus`]: `metav1.Status`
//!   without k8s-openapi's fixed `apiVersion: v1`/`kind: Status` (upstream's nested statuses
//!   carry neither).
//! - Printer columns: none upstream; the CRD defaults (NAME, AGE).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, StatusDetails};
use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use super::image::{Image, ImageFields};
use super::image_stream::{
    EmbeddedImageStream, ImageStream, ObjectReference, TagImportPolicy, TagReferencePolicy,
};
use super::schema::{embedded_list, is_default, nullable_embedded};

/// `MetaStatus.status` of a successful import.
pub const STATUS_SUCCESS: &str = "Success";
/// `MetaStatus.status` of a failed import.
pub const STATUS_FAILURE: &str = "Failure";

/// spec is a description of the images that the user wishes to import
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "image.openshift.io",
    version = "v1",
    kind = "ImageStreamImport",
    plural = "imagestreamimports",
    singular = "imagestreamimport",
    shortname = "isi",
    namespaced,
    status = "ImageStreamImportStatus",
    derive = "Default",
    derive = "PartialEq",
    validation = Rule::new("self.metadata.name.matches('^[a-z0-9]+(?:[._-][a-z0-9]+)*$')")
        .message("metadata.name: must match \"[a-z0-9]+(?:[._-][a-z0-9]+)*\""),
    doc = "The image stream import resource provides an easy way for a user to find and import container images from other container image registries into the server. Individual images or an entire image repository may be imported, and users may choose to see the results of the import prior to tagging the resulting images into the specified image stream.\n\nThis API is intended for end-user tools that need to see the metadata of the image prior to import (for instance, to generate an application from it). Clients that know the desired image can continue to create spec.tags directly into their image streams.\n\nCompatibility level 1: Stable within a major release for a minimum of 12 months or 3 minor releases (whichever is longer)."
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.images) && size(self.images) > 0) || has(self.repository)")
        .message("you must specify at least one image or a repository import")
        .field_path(".images")
)]
pub struct ImageStreamImportSpec {
    /// import indicates whether to perform an import - if so, the specified tags are set on the spec and status of the image stream defined by the type meta.
    #[serde(default)]
    pub import: bool,
    /// repository is an optional import of an entire container image repository. A maximum limit on the number of tags imported this way is imposed by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<RepositoryImportSpec>,
    /// images are a list of individual images to import.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageImportSpec>,
}

/// ImageStreamImportStatus contains information about the status of an image stream import.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageStreamImportStatus {
    /// import is the image stream that was successfully updated or created when 'to' was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "image_stream_schema")]
    pub import: Option<ImageStream>,
    /// repository is set if spec.repository was set to the outcome of the import
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<RepositoryImportStatus>,
    /// images is set with the result of importing spec.images
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageImportStatus>,
}

/// RepositoryImportSpec describes a request to import images from a container image repository.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryImportSpec {
    /// from is the source for the image repository to import; only kind DockerImage and a name of a container image repository is allowed
    #[x_kube(
        validation = Rule::new("self.kind == 'DockerImage'")
            .message("only DockerImage is supported")
            .field_path(".kind")
    )]
    pub from: ObjectReference,
    /// importPolicy is the policy controlling how the image is imported
    #[serde(default)]
    pub import_policy: TagImportPolicy,
    /// referencePolicy defines how other components should consume the image
    #[serde(default)]
    pub reference_policy: TagReferencePolicy,
    /// includeManifest determines if the manifest for each image is returned in the response
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_manifest: bool,
}

/// RepositoryImportStatus describes the result of an image repository import
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryImportStatus {
    /// status reflects whether any failure occurred during import
    #[serde(default)]
    pub status: MetaStatus,
    /// images is a list of images successfully retrieved by the import of the repository.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageImportStatus>,
    /// additionalTags are tags that exist in the repository but were not imported because a maximum limit of automatic imports was applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_tags: Vec<String>,
}

/// ImageImportSpec describes a request to import a specific image.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.to) || (has(self.to.name) && self.to.name != '')")
        .message("the name of the target tag must be specified")
        .field_path(".to.name")
)]
pub struct ImageImportSpec {
    /// from is the source of an image to import; only kind DockerImage is allowed
    #[x_kube(
        validation = Rule::new("self.kind == 'DockerImage'")
            .message("only DockerImage is supported")
            .field_path(".kind")
    )]
    pub from: ObjectReference,
    /// to is a tag in the current image stream to assign the imported image to, if name is not specified the default tag from from.name will be used
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<LocalObjectReference>,
    /// importPolicy is the policy controlling how the image is imported
    #[serde(default)]
    pub import_policy: TagImportPolicy,
    /// referencePolicy defines how other components should consume the image
    #[serde(default)]
    pub reference_policy: TagReferencePolicy,
    /// includeManifest determines if the manifest for each image is returned in the response
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_manifest: bool,
}

/// ImageImportStatus describes the result of an image import.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageImportStatus {
    /// status is the status of the image import, including errors encountered while retrieving the image
    #[serde(default)]
    pub status: MetaStatus,
    /// image is the metadata of that image, if the image was located
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "image_schema")]
    pub image: Option<Image>,
    /// tag is the tag this image was located under, if any
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
    /// manifests holds sub-manifests metadata when importing a manifest list
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "image_list_schema")]
    pub manifests: Vec<Image>,
}

/// LocalObjectReference contains enough information to let you locate the referenced object inside the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectReference {
    /// Name of the referent. This field is effectively required, but due to backwards compatibility is allowed to be empty. Instances of this type with an empty value here are almost certainly wrong. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#names
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// Status is a return value for calls that don't return other objects.
///
/// Kubernetes' `meta/v1` Status as it appears nested in an import result: `kind` and
/// `apiVersion` are plain optional strings (k8s-openapi's `Status` always writes
/// `v1`/`Status`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetaStatus {
    /// Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ListMeta>,
    /// Status of the operation. One of: "Success" or "Failure". More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#spec-and-status
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// A human-readable description of the status of this operation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// A machine-readable description of why this operation is in the "Failure" status. If this value is empty there is no information available. A Reason clarifies an HTTP status code but does not override it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Extended data associated with the reason.  Each reason may define its own extended details. This field is optional and the data returned is not guaranteed to conform to any schema except that defined by the reason type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    /// Suggested HTTP return code for this status, 0 if not set.
    #[serde(default, skip_serializing_if = "is_default")]
    pub code: i32,
}

fn image_stream_schema(generator: &mut SchemaGenerator) -> Schema {
    nullable_embedded::<EmbeddedImageStream>(generator)
}

fn image_schema(generator: &mut SchemaGenerator) -> Schema {
    nullable_embedded::<ImageFields>(generator)
}

fn image_list_schema(generator: &mut SchemaGenerator) -> Schema {
    embedded_list::<ImageFields>(generator)
}
