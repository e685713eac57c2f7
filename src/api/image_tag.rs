//! `ImageTag` (namespaced): mirrors OpenShift's `image/v1` `ImageTag`, the full view of one tag
//! of a stream: spec tag, status history and current image.
//!
//! Deviations from upstream's shape:
//! - Upstream serves this as a virtual resource named `<stream>:<tag>`; here it is an object the
//!   operator keeps per tag, named by [`crate::names::stream_tag`]. `status` is a status
//!   subresource written by the operator; `spec` writes are applied to the stream.
//! - "spec is a required field during creation" is the webhook's rule for users, not a schema
//!   rule: the operator creates the ImageTags of status-only tags (pushed or repository tags),
//!   which have no spec. `spec.name` is required when `spec` is set (upstream defaults it from
//!   the object name, which is encoded here); "must match image tag name" and "may not update
//!   fields other than spec" need the object name or metadata: webhook.
//! - Printer columns: NAME, SPEC, STATUS, HISTORY, UPDATED, plus IMPORT FAILURE (priority 1, not
//!   upstream). Upstream computes SPEC/STATUS/HISTORY from several fields; here each is one
//!   JSONPath: SPEC is `spec.from.name` (upstream: Tag/Ref/Track/Scheduled/Push and the source),
//!   STATUS is the current image, `status.items[0].image` (upstream: the source, `Importing`, or
//!   `ImportFailed (<reason>)`), HISTORY is the previous image, `status.items[1].image`
//!   (upstream: the number of history entries, which JSONPath cannot count), UPDATED is
//!   `status.items[0].created` (upstream: also considers condition transition times), and
//!   IMPORT FAILURE is `status.conditions[0].reason` (empty when the last import succeeded).

use kube::{CustomResource, KubeSchema};
use schemars::{Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use super::image::{Image, ImageFields};
use super::image_stream::{NamedTagEventList, TagReference};
use super::schema::nullable_embedded;

/// ImageTag represents a single tag within an image stream and includes the spec, the status history, and the currently referenced image (if any) of the provided tag.
// The printcolumn(...) entries repeat `type_`, which clippy mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "image.openshift.io",
    version = "v1",
    kind = "ImageTag",
    plural = "imagetags",
    singular = "imagetag",
    namespaced,
    no_spec,
    status = "NamedTagEventList",
    shortname = "itag",
    derive = "Default",
    derive = "PartialEq",
    printcolumn(
        name = "Spec",
        type_ = "string",
        json_path = ".spec.from.name",
        description = "The source the spec tag points at (upstream: the kind of tag and its source)."
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.items[0].image",
        description = "The current image (upstream: the source, Importing, or ImportFailed)."
    ),
    printcolumn(
        name = "History",
        type_ = "string",
        json_path = ".status.items[1].image",
        description = "The previous image (upstream: the number of history entries)."
    ),
    printcolumn(
        name = "Updated",
        type_ = "date",
        json_path = ".status.items[0].created",
        description = "When the tag last changed."
    ),
    printcolumn(
        name = "Import Failure",
        type_ = "string",
        json_path = ".status.conditions[0].reason",
        description = "Why the last import failed; empty when it succeeded.",
        priority = 1
    ),
    doc = "ImageTag represents a single tag within an image stream and includes the spec, the status history, and the currently referenced image (if any) of the provided tag. This type replaces the ImageStreamTag by providing a full view of the tag. ImageTags are returned for every spec or status tag present on the image stream. If no tag exists in either form, a not found error will be returned by the API. A create operation will succeed if no spec tag has already been defined and the spec field is set. Delete will remove both spec and status elements from the image stream.\n\nCompatibility level 1: Stable within a major release for a minimum of 12 months or 3 minor releases (whichever is longer)."
)]
#[serde(rename_all = "camelCase")]
pub struct ImageTagFields {
    /// spec is the spec tag associated with this image stream tag, and it may be null if only pushes have occurred to this image stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<TagReference>,
    /// image is the details of the most recent image stream status tag, and it may be null if import has not completed or an administrator has deleted the image object. To verify this is the most recent image, you must verify the generation of the most recent status.items entry matches the spec tag (if a spec tag is set). This field will not be set when listing image tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "image_schema")]
    pub image: Option<Image>,
}

fn image_schema(generator: &mut SchemaGenerator) -> Schema {
    nullable_embedded::<ImageFields>(generator)
}
