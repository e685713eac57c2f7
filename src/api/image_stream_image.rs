//! `ImageStreamImage` (namespaced): mirrors OpenShift's `image/v1` `ImageStreamImage`, an image
//! of a stream's history looked up by name.
//!
//! Deviations from upstream's shape:
//! - Upstream serves this as a read-only virtual resource named `<stream>@<id>`; here it is an
//!   object the operator keeps per image of a stream's history, named by
//!   [`crate::names::stream_image`]. `image` is schema-required (the operator always writes it).
//! - Printer columns: NAME, UPDATED (`image.metadata.creationTimestamp`, exact: upstream uses
//!   the Image's creation time too), IMAGE REFERENCE and IMAGE NAME (priority 1). IMAGE NAME is
//!   the embedded image's `metadata.name`: exact when the writer puts the OpenShift image name
//!   (the digest) there, which an embedded object may carry (its name is not a Kubernetes object
//!   name).

use kube::{CustomResource, KubeSchema};
use schemars::{Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use super::image::{Image, ImageFields};
use super::schema::embedded;

/// ImageStreamImage represents an Image that is retrieved by image name from an ImageStream.
// The printcolumn(...) entries repeat `type_`/`priority`, which clippy mistakes for
// duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "image.openshift.io",
    version = "v1",
    kind = "ImageStreamImage",
    plural = "imagestreamimages",
    singular = "imagestreamimage",
    namespaced,
    no_spec,
    shortname = "isimage",
    derive = "Default",
    derive = "PartialEq",
    printcolumn(
        name = "Updated",
        type_ = "date",
        json_path = ".image.metadata.creationTimestamp",
        description = "When the image was created."
    ),
    printcolumn(
        name = "Image Reference",
        type_ = "string",
        json_path = ".image.dockerImageReference",
        description = "The string that can be used to pull this image.",
        priority = 1
    ),
    printcolumn(
        name = "Image Name",
        type_ = "string",
        json_path = ".image.metadata.name",
        description = "The name of the image.",
        priority = 1
    ),
    doc = "ImageStreamImage represents an Image that is retrieved by image name from an ImageStream. User interfaces and regular users can use this resource to access the metadata details of a tagged image in the image stream history for viewing, since Image resources are not directly accessible to end users. A not found error will be returned if no such image is referenced by a tag within the ImageStream. Images are created when spec tags are set on an image stream that represent an image in an external registry, when pushing to the integrated registry, or when tagging an existing image from one image stream to another. The name of an image stream image is in the form \"<STREAM>@<DIGEST>\", where the digest is the content addressible identifier for the image (sha256:xxxxx...). You can use ImageStreamImages as the from.kind of an image stream spec tag to reference an image exactly. The only operations supported on the imagestreamimage endpoint are retrieving the image.\n\nCompatibility level 1: Stable within a major release for a minimum of 12 months or 3 minor releases (whichever is longer)."
)]
#[serde(rename_all = "camelCase")]
pub struct ImageStreamImageFields {
    /// image associated with the ImageStream and image name.
    #[schemars(schema_with = "image_schema")]
    pub image: Image,
}

fn image_schema(generator: &mut SchemaGenerator) -> Schema {
    embedded::<ImageFields>(generator)
}
