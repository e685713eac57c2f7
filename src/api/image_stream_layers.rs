//! `ImageStreamLayers` (namespaced): mirrors OpenShift's `image/v1` `ImageStreamLayers`,
//! `ImageBlobReferences` and `ImageLayerData`: the blobs referenced by the images of a stream.
//!
//! Deviations from upstream's shape:
//! - Upstream computes this on every GET of the `imagestreams/layers` subresource; here it is an
//!   object the operator keeps per stream, with the stream's name. Its metadata is its own, not
//!   a copy of the stream's.
//! - Printer columns: none upstream; the CRD defaults (NAME, AGE).

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::schema::null_as_default;

/// ImageStreamLayers describes information about the layers referenced by images in this image stream.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "image.openshift.io",
    version = "v1",
    kind = "ImageStreamLayers",
    plural = "imagestreamlayers",
    singular = "imagestreamlayer",
    namespaced,
    no_spec,
    derive = "Default",
    derive = "PartialEq",
    doc = "ImageStreamLayers describes information about the layers referenced by images in this image stream.\n\nCompatibility level 1: Stable within a major release for a minimum of 12 months or 3 minor releases (whichever is longer)."
)]
#[serde(rename_all = "camelCase")]
pub struct ImageStreamLayersFields {
    /// blobs is a map of blob name to metadata about the blob.
    #[serde(default, deserialize_with = "null_as_default")]
    pub blobs: BTreeMap<String, ImageLayerData>,
    /// images is a map between an image name and the names of the blobs and config that comprise the image.
    #[serde(default, deserialize_with = "null_as_default")]
    pub images: BTreeMap<String, ImageBlobReferences>,
}

/// ImageBlobReferences describes the blob references within an image.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageBlobReferences {
    /// imageMissing is true if the image is referenced by the image stream but the image object has been deleted from the API by an administrator. When this field is set, layers and config fields may be empty and callers that depend on the image metadata should consider the image to be unavailable for download or viewing.
    #[serde(default)]
    pub image_missing: bool,
    /// layers is the list of blobs that compose this image, from base layer to top layer. All layers referenced by this array will be defined in the blobs map. Some images may have zero layers.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schemars(extend("nullable" = true))]
    pub layers: Vec<String>,
    /// config, if set, is the blob that contains the image config. Some images do not have separate config blobs and this field will be set to nil if so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// manifests is the list of other image names that this image points to. For a single architecture image, it is empty. For a multi-arch image, it consists of the digests of single architecture images, such images shouldn't have layers nor config.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<String>,
}

/// ImageLayerData contains metadata about an image layer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageLayerData {
    /// size of the layer in bytes as defined by the underlying store. This field is optional if the necessary information about size is not available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// mediaType of the referenced object.
    #[serde(default)]
    pub media_type: String,
}
