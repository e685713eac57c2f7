//! `ImageStream` (namespaced): mirrors OpenShift's `image/v1` `ImageStream`,
//! `ImageStreamSpec`, `ImageStreamStatus`, `TagReference`, `TagImportPolicy`,
//! `TagReferencePolicy`, `ImageLookupPolicy`, `NamedTagEventList`, `TagEvent` and
//! `TagEventCondition`, plus the `corev1.ObjectReference` used in `from`.
//!
//! Serialisation follows upstream's Go tags: fields Go always writes (`lookupPolicy`,
//! `importPolicy`, `referencePolicy.type`, `status.dockerImageRepository`, …) are always
//! written, `omitempty` fields only when set, and Go pointers (`from`, `generation`,
//! `annotations`) only when `Some` — so our own writes never claim an unset field under
//! server-side apply. Fields upstream writes as `null` are `nullable` in the schema, so a
//! file with `"generation": null` applies and reads back as written.
//!
//! Deviations from upstream's shape:
//! - `spec.tags` is a list-map keyed by `name` and `status.tags` one keyed by `tag` (upstream
//!   declares the same merge keys for strategic merge patch). Upstream silently keeps the last of
//!   two tags with the same name; here a duplicate is rejected unless the mutating webhook has
//!   removed it first (it runs before schema validation), and a server-side apply with
//!   duplicates is rejected as upstream's own server-side apply does. No real-world file in
//!   `compat/` has duplicates.
//! - `spec.tags[].name` and `status.tags[].tag` are schema-required (list-map keys must be);
//!   upstream accepts a missing name as the tag `""`.
//! - `from.kind` and `from.name` are schema-required when `from` is set, `from.name` non-empty
//!   (upstream reports the same cases as Required); `from.kind` is checked by a CEL rule with
//!   upstream's message.
//! - "only tags pointing to Docker repositories may be scheduled for background import" is a CEL
//!   rule with upstream's message; unlike upstream it also fires (next to the `from.kind` error)
//!   for a scheduled tag whose kind is invalid anyway.
//! - `spec` is optional, as upstream: [`crate::api::crds()`] drops it from the root's `required`
//!   (kube's derive requires it) and [`ImageStreamSpec`] reads a missing or `null` spec as the
//!   default.
//! - `referencePolicy.type` and `importMode` accept `""` besides the upstream values, because
//!   upstream defaults `""` before validating; the webhook writes the defaults.
//! - `status.tags[].items` is written as `[]` when empty (upstream writes `null`; both read back
//!   as empty).
//! - `status.tags[].items[].created` and `.dockerImageReference` are schema-required: status is
//!   written by the operator only (the status subresource drops it from user writes).
//! - `metadata.name` must match upstream's pattern (CEL on the root). The
//!   `len(namespace/name) <= 255` rule needs the namespace, which CEL cannot read: webhook.
//! - Printer columns (approximated: CRD columns are JSONPath, and the apiserver prints only the
//!   first match of a path): IMAGE REPOSITORY is `status.dockerImageRepository` (upstream
//!   prefers `publicDockerImageRepository`, then `spec.dockerImageRepository`); TAGS shows the
//!   first status tag in name order (upstream: every tag, most recently updated first,
//!   truncated); UPDATED is that first tag's newest event (upstream: the newest event of any
//!   tag).
//! - Field selectors on `spec.dockerImageRepository` and `status.dockerImageRepository`, as
//!   upstream (CRD selectable fields).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use super::schema::null_as_default;

/// Stream annotation: RFC 3339 time of the last import that changed the stream.
pub const DOCKER_IMAGE_REPOSITORY_CHECK_ANNOTATION: &str =
    "openshift.io/image.dockerRepositoryCheck";
/// Stream annotation: `true` allows insecure registries for every reference in the stream.
pub const INSECURE_REPOSITORY_ANNOTATION: &str = "openshift.io/image.insecureRepository";
/// Tag annotation: preferred architecture when a `Legacy` import meets a manifest list.
pub const IMPORTER_PREFER_ARCH_ANNOTATION: &str = "importer.image.openshift.io/prefer-arch";
/// Tag annotation: preferred OS when a `Legacy` import meets a manifest list.
pub const IMPORTER_PREFER_OS_ANNOTATION: &str = "importer.image.openshift.io/prefer-os";
/// The only [`TagEventCondition`] type: with status `False`, the import of the tag failed.
pub const IMPORT_SUCCESS: &str = "ImportSuccess";
/// `from.kind` of a tag that imports from a registry.
pub const KIND_DOCKER_IMAGE: &str = "DockerImage";
/// `from.kind` of a tag that follows another tag.
pub const KIND_IMAGE_STREAM_TAG: &str = "ImageStreamTag";
/// `from.kind` of a tag that points at an image of a stream.
pub const KIND_IMAGE_STREAM_IMAGE: &str = "ImageStreamImage";

/// spec describes the desired state of this stream
#[derive(CustomResource, KubeSchema, Serialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "image.openshift.io",
    version = "v1",
    kind = "ImageStream",
    plural = "imagestreams",
    singular = "imagestream",
    namespaced,
    status = "ImageStreamStatus",
    shortname = "is",
    category = "all",
    derive = "Default",
    derive = "PartialEq",
    selectable = ".spec.dockerImageRepository",
    selectable = ".status.dockerImageRepository",
    printcolumn(
        name = "Image Repository",
        type_ = "string",
        json_path = ".status.dockerImageRepository",
        description = "The effective location this stream may be accessed at (upstream prefers publicDockerImageRepository, then spec.dockerImageRepository)."
    ),
    printcolumn(
        name = "Tags",
        type_ = "string",
        json_path = ".status.tags[*].tag",
        description = "The first status tag in name order (upstream lists every tag, most recently updated first)."
    ),
    printcolumn(
        name = "Updated",
        type_ = "date",
        json_path = ".status.tags[0].items[0].created",
        description = "When the first status tag last changed (upstream: the most recent change of any tag)."
    ),
    validation = Rule::new("self.metadata.name.matches('^[a-z0-9]+(?:[._-][a-z0-9]+)*$')")
        .message("metadata.name: must match \"[a-z0-9]+(?:[._-][a-z0-9]+)*\""),
    doc = "An ImageStream stores a mapping of tags to images, metadata overrides that are applied when images are tagged in a stream, and an optional reference to a container image repository on a registry. Users typically update the spec.tags field to point to external images which are imported from container registries using credentials in your namespace with the pull secret type, or to existing image stream tags and images which are immediately accessible for tagging or pulling. The history of images applied to a tag is visible in the status.tags field and any user who can view an image stream is allowed to tag that image into their own image streams. Access to pull images from the integrated registry is granted by having the \"get imagestreams/layers\" permission on a given image stream. Users may remove a tag by deleting the imagestreamtag resource, which causes both spec and status for that tag to be removed. Image stream history is retained until an administrator runs the prune operation, which removes references that are no longer in use. To preserve a historical image, ensure there is a tag in spec pointing to that image by its digest.\n\nCompatibility level 1: Stable within a major release for a minimum of 12 months or 3 minor releases (whichever is longer)."
)]
#[serde(rename_all = "camelCase")]
pub struct ImageStreamSpec {
    /// lookupPolicy controls how other resources reference images within this namespace.
    #[serde(default)]
    pub lookup_policy: ImageLookupPolicy,
    /// dockerImageRepository is optional, if specified this stream is backed by a container repository on this server Deprecated: This field is deprecated as of v3.7 and will be removed in a future release. Specify the source for the tags to be imported in each tag via the spec.tags.from reference instead.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub docker_image_repository: String,
    /// tags map arbitrary string values to specific image locators
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub tags: Vec<TagReference>,
}

impl<'de> Deserialize<'de> for ImageStreamSpec {
    /// A missing or `null` spec reads as the default: the generated `ImageStream` requires a
    /// `spec` field, and serde asks for a missing field through `deserialize_option`.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Fields {
            #[serde(default)]
            lookup_policy: ImageLookupPolicy,
            #[serde(default)]
            docker_image_repository: String,
            #[serde(default)]
            tags: Vec<TagReference>,
        }
        Ok(Option::<Fields>::deserialize(deserializer)?
            .map(|f| ImageStreamSpec {
                lookup_policy: f.lookup_policy,
                docker_image_repository: f.docker_image_repository,
                tags: f.tags,
            })
            .unwrap_or_default())
    }
}

impl ImageStreamSpec {
    /// The spec tag called `name`.
    pub fn tag(&self, name: &str) -> Option<&TagReference> {
        self.tags.iter().find(|t| t.name == name)
    }
}

/// ImageLookupPolicy describes how an image stream can be used to override the image references used by pods, builds, and other resources in a namespace.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageLookupPolicy {
    /// local will change the docker short image references (like "mysql" or "php:latest") on objects in this namespace to the image ID whenever they match this image stream, instead of reaching out to a remote registry. The name will be fully qualified to an image ID if found. The tag's referencePolicy is taken into account on the replaced value. Only works within the current namespace.
    #[serde(default)]
    pub local: bool,
}

/// TagReference specifies optional annotations for images using this tag and an optional reference to an ImageStreamTag, ImageStreamImage, or DockerImage this tag should track.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.importPolicy) || !has(self.importPolicy.scheduled) || !self.importPolicy.scheduled || !has(self.from) || self.from.kind == 'DockerImage'")
        .message("only tags pointing to Docker repositories may be scheduled for background import")
        .field_path(".importPolicy.scheduled")
)]
pub struct TagReference {
    /// name of the tag
    pub name: String,
    /// Optional; if specified, annotations that are applied to images retrieved via ImageStreamTags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Optional; if specified, a reference to another image that this tag should point to. Valid values are ImageStreamTag, ImageStreamImage, and DockerImage.  ImageStreamTag references can only reference a tag within this same ImageStream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(
        validation = Rule::new("self.kind in ['DockerImage', 'ImageStreamTag', 'ImageStreamImage']")
            .message("valid values are 'DockerImage', 'ImageStreamImage', 'ImageStreamTag'")
            .field_path(".kind")
            .reason(Reason::FieldValueRequired)
    )]
    pub from: Option<ObjectReference>,
    /// reference states if the tag will be imported. Default value is false, which means the tag will be imported.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reference: bool,
    /// generation is a counter that tracks mutations to the spec tag (user intent). When a tag reference is changed the generation is set to match the current stream generation (which is incremented every time spec is changed). Other processes in the system like the image importer observe that the generation of spec tag is newer than the generation recorded in the status and use that as a trigger to import the newest remote tag. To trigger a new import, clients may set this value to zero which will reset the generation to the latest stream generation. Legacy clients will send this value as nil which will be merged with the current tag generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// importPolicy is information that controls how images may be imported by the server.
    #[serde(default)]
    pub import_policy: TagImportPolicy,
    /// referencePolicy defines how other components should consume the image.
    #[serde(default)]
    pub reference_policy: TagReferencePolicy,
}

/// A reference to another object (Kubernetes' `core/v1` ObjectReference, as used by
/// `TagReference.from` and the ImageStreamImport sources). `kind` and `name` are required:
/// every place upstream uses it rejects a reference without them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    /// Kind of the referent. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds
    pub kind: String,
    /// Namespace of the referent. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name of the referent. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#names
    #[schemars(length(min = 1))]
    pub name: String,
    /// UID of the referent. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#uids
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// API version of the referent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// Specific resourceVersion to which this reference is made, if any. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#concurrency-control-and-consistency
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: "spec.containers{name}" (where "name" refers to the name of the container that triggered the event) or if no container name is specified "spec.containers[2]" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.
    #[allow(rustdoc::broken_intra_doc_links)] // upstream's text: `containers[2]` is no link
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field_path: String,
}

/// TagImportPolicy controls how images related to this tag will be imported.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagImportPolicy {
    /// insecure is true if the server may bypass certificate verification or connect directly over HTTP during image import.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// scheduled indicates to the server that this tag should be periodically checked to ensure it is up to date, and imported
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub scheduled: bool,
    /// importMode describes how to import an image manifest.
    #[serde(default, skip_serializing_if = "ImportMode::is_unset")]
    pub import_mode: ImportMode,
}

/// ImportModeType describes how to import an image manifest.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum ImportMode {
    /// Not set (the empty string): the server applies the cluster's default import mode.
    #[default]
    #[serde(rename = "")]
    Unset,
    /// ImportModeLegacy indicates that the legacy behaviour should be used. For manifest lists, the legacy behaviour will discard the manifest list and import a single sub-manifest. In this case, the platform is chosen in the following order of priority: 1. tag annotations; 2. control plane arch/os; 3. linux/amd64; 4. the first manifest in the list. This mode is the default.
    Legacy,
    /// ImportModePreserveOriginal indicates that the original manifest will be preserved. For manifest lists, the manifest list and all its sub-manifests will be imported.
    PreserveOriginal,
}

impl ImportMode {
    /// Whether this is the empty string.
    pub fn is_unset(&self) -> bool {
        *self == Self::Unset
    }
}

/// TagReferencePolicy describes how pull-specs for images in this image stream tag are generated when image change triggers in deployment configs or builds are resolved. This allows the image stream author to control how images are accessed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagReferencePolicy {
    /// type determines how the image pull spec should be transformed when the image stream tag is used in deployment config triggers or new builds. The default value is `Source`, indicating the original location of the image should be used (if imported). The user may also specify `Local`, indicating that the pull spec should point to the integrated container image registry and leverage the registry's ability to proxy the pull to an upstream registry. `Local` allows the credentials used to pull this image to be managed from the image stream's namespace, so others on the platform can access a remote image but have no access to the remote secret. It also allows the image layers to be mirrored into the local registry which the images can still be pulled even if the upstream registry is unavailable.
    #[serde(rename = "type", default)]
    pub type_: TagReferencePolicyType,
}

/// TagReferencePolicyType describes how pull-specs for images in an image stream tag are generated when image change triggers are fired.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum TagReferencePolicyType {
    /// Not set (the empty string): the server defaults it to `Source`.
    #[default]
    #[serde(rename = "")]
    Unset,
    /// SourceTagReferencePolicy indicates the image's original location should be used when the image stream tag is resolved into other resources (builds and deployment configurations).
    Source,
    /// LocalTagReferencePolicy indicates the image should prefer to pull via the local integrated registry, falling back to the remote location if the integrated registry has not been configured. The reference will use the internal DNS name or registry service IP.
    Local,
}

/// ImageStreamStatus contains information about the state of this image stream.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageStreamStatus {
    /// dockerImageRepository represents the effective location this stream may be accessed at. May be empty until the server determines where the repository is located
    #[serde(default)]
    pub docker_image_repository: String,
    /// publicDockerImageRepository represents the public location from where the image can be pulled outside the cluster. This field may be empty if the administrator has not exposed the integrated registry externally.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub public_docker_image_repository: String,
    /// tags are a historical record of images associated with each tag. The first entry in the TagEvent array is the currently tagged image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["tag".into()]))]
    pub tags: Vec<NamedTagEventList>,
}

impl ImageStreamStatus {
    /// The history of the status tag called `tag`.
    pub fn tag(&self, tag: &str) -> Option<&NamedTagEventList> {
        self.tags.iter().find(|t| t.tag == tag)
    }
}

/// NamedTagEventList relates a tag to its image history.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamedTagEventList {
    /// tag is the tag for which the history is recorded
    pub tag: String,
    /// Standard object's metadata.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schemars(extend("nullable" = true))]
    pub items: Vec<TagEvent>,
    /// conditions is an array of conditions that apply to the tag event list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<TagEventCondition>,
}

impl NamedTagEventList {
    /// The current event (`items[0]`), if any.
    pub fn latest(&self) -> Option<&TagEvent> {
        self.items.first()
    }
}

/// TagEvent is used by ImageStreamStatus to keep a historical record of images associated with a tag.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagEvent {
    /// created holds the time the TagEvent was created
    pub created: Time,
    /// dockerImageReference is the string that can be used to pull this image
    #[schemars(length(min = 1))]
    pub docker_image_reference: String,
    /// image is the image
    #[serde(default)]
    pub image: String,
    /// generation is the spec tag generation that resulted in this tag being updated
    #[serde(default)]
    pub generation: i64,
}

/// TagEventCondition contains condition information for a tag event.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagEventCondition {
    /// type of tag event condition, currently only ImportSuccess
    #[serde(rename = "type")]
    pub type_: String,
    /// status of the condition, one of True, False, Unknown.
    pub status: String,
    /// lastTransitionTime is the time the condition transitioned from one status to another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// reason is a brief machine readable explanation for the condition's last transition.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// message is a human readable description of the details about last transition, complementing reason.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// generation is the spec tag generation that this status corresponds to
    #[serde(default)]
    pub generation: i64,
}

// The schema of an ImageStream embedded in another object (`ImageStreamImport.status.import`):
// its `spec` and `status`; metadata, apiVersion and kind are added by `schema::embedded`.
// Never serialised.
/// An ImageStream stores a mapping of tags to images, metadata overrides that are applied when images are tagged in a stream, and an optional reference to a container image repository on a registry.
#[derive(JsonSchema)]
#[allow(dead_code)]
pub(crate) struct EmbeddedImageStream {
    /// spec describes the desired state of this stream
    spec: Option<ImageStreamSpec>,
    /// status describes the current state of this stream
    status: Option<ImageStreamStatus>,
}
