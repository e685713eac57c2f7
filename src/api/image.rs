//! `Image` (cluster scoped): mirrors OpenShift's `image/v1` `Image`, `ImageLayer` and
//! `ImageManifest`; the signatures embedded in it are [`ImageSignature`] objects.
//!
//! Deviations from upstream's shape:
//! - `dockerImageReference` is required (non-empty) by a CEL rule on the root object only:
//!   an `Image` embedded in an `ImageStreamMapping` may leave it empty, because upstream
//!   defaults it there from the internal registry before validating.
//! - "dockerImageLayers should not be set when dockerImageManifests is set" is a CEL rule on the
//!   root object only (in embedded images it would multiply the CRD's CEL cost estimate); the
//!   webhook checks embedded ones.
//! - `dockerImageManifests[]` carries upstream's validation as schema: `digest` and
//!   `mediaType` patterns, `architecture`/`os` required and non-empty, `manifestSize >= 0`.
//! - `metadata.name` is the encoded digest of [`crate::names::image`] (`sha256:…` is not a
//!   valid custom resource name); the exact digest is kept in an annotation by that module.
//! - `dockerImageMetadata` is a free-form object (`x-kubernetes-preserve-unknown-fields`,
//!   nullable, `x-kubernetes-map-type: atomic` for upstream's `patchStrategy=replace`);
//!   [`DockerImage`] is its typed shape.
//! - `signatures` is an atomic list: upstream's strategic-merge key is each signature's
//!   `metadata.name`, and a CRD list-map key must be a top-level field of the items.
//! - Printer columns: NAME and IMAGE REFERENCE, as `oc get images` (exact).

use k8s_openapi::ByteString;
use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use super::docker_image::{DOCKER_IMAGE_METADATA_VERSION, DockerImage};
use super::image_signature::{ImageSignature, ImageSignatureFields};
use super::schema::{byte_strings, embedded_list, raw_extension};

/// Image annotation: `true` when the image is managed by (pushed to) the integrated registry.
pub const MANAGED_BY_OPENSHIFT_ANNOTATION: &str = "openshift.io/image.managed";
/// Image annotation: the order of `dockerImageLayers` (`ascending` or `descending`).
pub const DOCKER_IMAGE_LAYERS_ORDER_ANNOTATION: &str = "image.openshift.io/dockerLayersOrder";
/// Image annotation: manifest and config blobs are stored in the integrated registry.
pub const IMAGE_MANIFEST_BLOB_STORED_ANNOTATION: &str = "image.openshift.io/manifestBlobStored";

/// The upstream digest pattern for `dockerImageManifests[].digest` (unanchored, as upstream
/// matches it).
pub const IMAGE_DIGEST_PATTERN: &str =
    r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}";
/// The upstream RFC 6838 media type pattern for `dockerImageManifests[].mediaType`.
pub const IMAGE_MEDIA_TYPE_PATTERN: &str =
    r"^ *([A-Za-z0-9][A-Za-z0-9!#$&^_-]{0,126})/([A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}) *$";

/// Image is an immutable representation of a container image and its metadata at a point in time. Images are named by taking a hash of their contents (metadata and content) and any change in format, content, or metadata results in a new name. The images resource is primarily for use by cluster administrators and integrations like the cluster image registry - end users, instead, access images via the imagestreamtags or imagestreamimages resources. While image metadata is stored in the API, any integration that implements the container image registry API must provide its own storage for the raw manifest data, image config, and layer contents.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "image.openshift.io",
    version = "v1",
    kind = "Image",
    plural = "images",
    singular = "image",
    no_spec,
    derive = "Default",
    derive = "PartialEq",
    printcolumn(
        name = "Image Reference",
        type_ = "string",
        json_path = ".dockerImageReference",
        description = "The string that can be used to pull this image."
    ),
    validation = Rule::new("has(self.dockerImageReference) && self.dockerImageReference != ''")
        .message("dockerImageReference is required")
        .field_path(".dockerImageReference")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("!has(self.dockerImageManifests) || size(self.dockerImageManifests) == 0 || !has(self.dockerImageLayers) || size(self.dockerImageLayers) == 0")
        .message("dockerImageLayers should not be set when dockerImageManifests is set")
        .field_path(".dockerImageLayers"),
    doc = "Image is an immutable representation of a container image and its metadata at a point in time. Images are named by taking a hash of their contents (metadata and content) and any change in format, content, or metadata results in a new name. The images resource is primarily for use by cluster administrators and integrations like the cluster image registry - end users, instead, access images via the imagestreamtags or imagestreamimages resources. While image metadata is stored in the API, any integration that implements the container image registry API must provide its own storage for the raw manifest data, image config, and layer contents.\n\nCompatibility level 1: Stable within a major release for a minimum of 12 months or 3 minor releases (whichever is longer)."
)]
#[serde(rename_all = "camelCase")]
pub struct ImageFields {
    /// dockerImageReference is the string that can be used to pull this image.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub docker_image_reference: String,
    /// dockerImageMetadata contains metadata about this image
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "raw_extension")]
    pub docker_image_metadata: Option<serde_json::Value>,
    /// dockerImageMetadataVersion conveys the version of the object, which if empty defaults to "1.0"
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub docker_image_metadata_version: String,
    /// dockerImageManifest is the raw JSON of the manifest
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub docker_image_manifest: String,
    /// dockerImageLayers represents the layers in the image. May not be set if the image does not define that data or if the image represents a manifest list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub docker_image_layers: Vec<ImageLayer>,
    /// signatures holds all signatures of the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "signature_list")]
    pub signatures: Vec<ImageSignature>,
    /// dockerImageSignatures provides the signatures as opaque blobs. This is a part of manifest schema v1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "byte_strings")]
    pub docker_image_signatures: Vec<ByteString>,
    /// dockerImageManifestMediaType specifies the mediaType of manifest. This is a part of manifest schema v2.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub docker_image_manifest_media_type: String,
    /// dockerImageConfig is a JSON blob that the runtime uses to set up the container. This is a part of manifest schema v2. Will not be set when the image represents a manifest list.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub docker_image_config: String,
    /// dockerImageManifests holds information about sub-manifests when the image represents a manifest list. When this field is present, no DockerImageLayers should be specified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub docker_image_manifests: Vec<ImageManifest>,
}

fn signature_list(generator: &mut SchemaGenerator) -> Schema {
    embedded_list::<ImageSignatureFields>(generator)
}

/// `dockerImageMetadata` is free-form (any object is kept as written); these helpers read and
/// write it in the typed [`DockerImage`] shape.
impl ImageFields {
    /// `dockerImageMetadata` parsed into the typed docker10 shape; `None` when unset.
    pub fn docker_image_metadata(&self) -> Result<Option<DockerImage>, serde_json::Error> {
        self.docker_image_metadata
            .as_ref()
            .map(DockerImage::deserialize)
            .transpose()
    }

    /// Stores `metadata` as `dockerImageMetadata` and sets `dockerImageMetadataVersion` to
    /// `1.0`, the version of that shape.
    pub fn set_docker_image_metadata(
        &mut self,
        metadata: &DockerImage,
    ) -> Result<(), serde_json::Error> {
        self.docker_image_metadata = Some(serde_json::to_value(metadata)?);
        self.docker_image_metadata_version = DOCKER_IMAGE_METADATA_VERSION.into();
        Ok(())
    }

    /// Whether this image is a manifest list or OCI index (it has sub-manifests).
    pub fn is_manifest_list(&self) -> bool {
        !self.docker_image_manifests.is_empty()
    }
}

/// ImageLayer represents a single layer of the image. Some images may have multiple layers. Some may have none.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageLayer {
    /// name of the layer as defined by the underlying store.
    #[serde(default)]
    pub name: String,
    /// size of the layer in bytes as defined by the underlying store.
    #[serde(default)]
    pub size: i64,
    /// mediaType of the referenced object.
    #[serde(default)]
    pub media_type: String,
}

/// ImageManifest represents sub-manifests of a manifest list. The Digest field points to a regular Image object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// digest is the unique identifier for the manifest. It refers to an Image object.
    #[schemars(pattern(IMAGE_DIGEST_PATTERN))]
    pub digest: String,
    /// mediaType defines the type of the manifest, possible values are application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json or application/vnd.docker.distribution.manifest.v1+json.
    #[schemars(pattern(IMAGE_MEDIA_TYPE_PATTERN))]
    pub media_type: String,
    /// manifestSize represents the size of the raw object contents, in bytes.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub manifest_size: i64,
    /// architecture specifies the supported CPU architecture, for example `amd64` or `ppc64le`.
    #[schemars(length(min = 1))]
    pub architecture: String,
    /// os specifies the operating system, for example `linux`.
    #[schemars(length(min = 1))]
    pub os: String,
    /// variant is an optional field repreenting a variant of the CPU, for example v6 to specify a particular CPU variant of the ARM CPU.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}
