//! `ImageStreamMapping` (namespaced): mirrors OpenShift's `image/v1` `ImageStreamMapping`, a
//! request to record an image under a tag of the stream named like the mapping.
//!
//! Deviations from upstream's shape:
//! - Upstream's is a create-only action answered with a `Status`; here it is a request object
//!   the operator applies (creates the Image, adds the tag event) and then removes, reporting
//!   failures as Events.
//! - `image` and a non-empty `tag` are schema-required, and the image must have
//!   `metadata.name` (upstream validation requires all three). `image.dockerImageReference` is
//!   not required here: upstream defaults it from the internal registry before validating.
//! - Printer columns: none upstream; the CRD defaults (NAME, AGE).

use kube::{CustomResource, KubeSchema};
use schemars::{Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use super::image::{Image, ImageFields};
use super::schema::embedded;

/// ImageStreamMapping represents a mapping from a single image stream tag to a container image as well as the reference to the container image stream the image came from.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "image.openshift.io",
    version = "v1",
    kind = "ImageStreamMapping",
    plural = "imagestreammappings",
    singular = "imagestreammapping",
    namespaced,
    no_spec,
    derive = "Default",
    derive = "PartialEq",
    doc = "ImageStreamMapping represents a mapping from a single image stream tag to a container image as well as the reference to the container image stream the image came from. This resource is used by privileged integrators to create an image resource and to associate it with an image stream in the status tags field. Creating an ImageStreamMapping will allow any user who can view the image stream to tag or pull that image, so only create mappings where the user has proven they have access to the image contents directly. The only operation supported for this resource is create and the metadata name and namespace should be set to the image stream containing the tag that should be updated.\n\nCompatibility level 1: Stable within a major release for a minimum of 12 months or 3 minor releases (whichever is longer)."
)]
#[serde(rename_all = "camelCase")]
pub struct ImageStreamMappingFields {
    /// image is a container image.
    #[schemars(schema_with = "image_schema")]
    #[x_kube(
        validation = Rule::new("has(self.metadata.name) && self.metadata.name != ''")
            .message("name or generateName is required")
            .field_path(".metadata.name")
            .reason(Reason::FieldValueRequired)
    )]
    pub image: Image,
    /// tag is a string value this image can be located with inside the stream.
    #[schemars(length(min = 1))]
    pub tag: String,
}

fn image_schema(generator: &mut SchemaGenerator) -> Schema {
    embedded::<ImageFields>(generator)
}
