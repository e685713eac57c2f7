//! `ImageStreamTag` (namespaced): mirrors OpenShift's `image/v1` `ImageStreamTag`, a view of one
//! tag of a stream: its spec tag, the current image and the import conditions.
//!
//! Deviations from upstream's shape:
//! - Upstream serves this as a virtual resource named `<stream>:<tag>`; here it is an object the
//!   operator keeps per tag, named by [`crate::names::stream_tag`], with the exact stream and tag
//!   in annotations. Writes to `tag` are applied to the stream by the operator.
//! - `image` may be absent (a user's create request carries only `tag`; upstream ignores `image`
//!   on create). When present, the embedded Image must carry `metadata`.
//! - `tag.name` is required when `tag` is set (upstream defaults it from the object name, which
//!   is encoded here). "tag annotations must be null or equal to metadata.annotations" and the
//!   update rules ("may not update fields other than metadata.annotations") need metadata, which
//!   CEL cannot read: webhook.
//! - Printer columns: NAME, IMAGE REFERENCE (`image.dockerImageReference`, exact), UPDATED and
//!   IMAGE NAME (priority 1). UPDATED is approximated by the embedded image's
//!   `metadata.creationTimestamp` (upstream: the time of the tag's current event, `items[0].created`,
//!   which differs when an existing image is re-tagged). IMAGE NAME is the embedded image's
//!   `metadata.name`: exact when the writer puts the OpenShift image name (the digest) there,
//!   which an embedded object may carry (its name is not a Kubernetes object name).

use kube::{CustomResource, KubeSchema};
use schemars::{Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use super::image::{Image, ImageFields};
use super::image_stream::{ImageLookupPolicy, TagEventCondition, TagReference};
use super::schema::embedded;

/// ImageStreamTag represents an Image that is retrieved by tag name from an ImageStream.
// The printcolumn(...) entries repeat `type_`/`priority`, which clippy mistakes for
// duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "image.openshift.io",
    version = "v1",
    kind = "ImageStreamTag",
    plural = "imagestreamtags",
    singular = "imagestreamtag",
    namespaced,
    no_spec,
    shortname = "istag",
    derive = "Default",
    derive = "PartialEq",
    printcolumn(
        name = "Image Reference",
        type_ = "string",
        json_path = ".image.dockerImageReference",
        description = "The pull spec of the tag's current image."
    ),
    printcolumn(
        name = "Updated",
        type_ = "date",
        json_path = ".image.metadata.creationTimestamp",
        description = "When the current image was created (upstream: when the tag last changed)."
    ),
    printcolumn(
        name = "Image Name",
        type_ = "string",
        json_path = ".image.metadata.name",
        description = "The name of the current image.",
        priority = 1
    ),
    doc = "ImageStreamTag represents an Image that is retrieved by tag name from an ImageStream. Use this resource to interact with the tags and images in an image stream by tag, or to see the image details for a particular tag. The image associated with this resource is the most recently successfully tagged, imported, or pushed image (as described in the image stream status.tags.items list for this tag). If an import is in progress or has failed the previous image will be shown. Deleting an image stream tag clears both the status and spec fields of an image stream. If no image can be retrieved for a given tag, a not found error will be returned.\n\nCompatibility level 1: Stable within a major release for a minimum of 12 months or 3 minor releases (whichever is longer)."
)]
#[serde(rename_all = "camelCase")]
pub struct ImageStreamTagFields {
    /// tag is the spec tag associated with this image stream tag, and it may be null if only pushes have occurred to this image stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<TagReference>,
    /// generation is the current generation of the tagged image - if tag is provided and this value is not equal to the tag generation, a user has requested an import that has not completed, or conditions will be filled out indicating any error.
    #[serde(default)]
    pub generation: i64,
    /// lookupPolicy indicates whether this tag will handle image references in this namespace.
    #[serde(default)]
    pub lookup_policy: ImageLookupPolicy,
    /// conditions is an array of conditions that apply to the image stream tag.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<TagEventCondition>,
    /// image associated with the ImageStream and tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "image_schema")]
    pub image: Option<Image>,
}

fn image_schema(generator: &mut SchemaGenerator) -> Schema {
    embedded::<ImageFields>(generator)
}
