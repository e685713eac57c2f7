//! The objects the operator keeps beside each stream (design.md section 2), computed without
//! IO: an ImageStreamTag and an ImageTag per tag (spec ∪ status), an ImageStreamImage per
//! image of the history, one ImageStreamLayers.
//!
//! Upstream computes these on every read; here they are stored objects, so each carries a
//! hash of its content ([`ANNOTATION_VIEW_HASH`]) and the controller writes one only when the
//! hash differs: it compares without reading the objects' bodies, and a cache of object
//! metadata is enough. The webhooks build the view a user's write leaves behind with the same
//! functions, so the controller finds it already in step.
//!
//! Every view names its stream, tag or image exactly in annotations ([`crate::names`]), is
//! owned by the stream (garbage collection removes it with the stream where a collector runs)
//! and copies the stream's labels, so label selectors over views work as upstream's.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::history::{PullSpecMode, pull_spec_for_tag};
use super::layers::{self, ImageLookup};
use crate::api::API_VERSION;
use crate::api::image::Image;
use crate::api::image_stream::ImageStream;
use crate::api::image_stream_image::{ImageStreamImage, ImageStreamImageFields};
use crate::api::image_stream_layers::ImageStreamLayers;
use crate::api::image_stream_tag::{ImageStreamTag, ImageStreamTagFields};
use crate::api::image_tag::{ImageTag, ImageTagFields};
use crate::names;

/// Annotation with the hash of a view's content, as the operator computed it.
pub const ANNOTATION_VIEW_HASH: &str = "image.openshift.io/view-hash";
/// Annotations of these prefixes belong to clients (`kubectl apply`'s last applied
/// configuration); views keep them and never copy them into tags.
const CLIENT_ANNOTATION_PREFIXES: [&str; 1] = ["kubectl.kubernetes.io/"];

/// Every view of one stream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Views {
    pub tags: Vec<ImageStreamTag>,
    pub image_tags: Vec<ImageTag>,
    pub images: Vec<ImageStreamImage>,
    pub layers: ImageStreamLayers,
    /// Every image the stream shows (history and children of lists, existing or not): the
    /// Images whose changes concern it.
    pub shown: Vec<String>,
}

/// Which view kinds the operator keeps (`ImageImportConfig` `spec.views`); every kind by
/// default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViewKinds {
    pub image_stream_tags: bool,
    pub image_tags: bool,
    pub image_stream_images: bool,
    pub image_stream_layers: bool,
}

impl Default for ViewKinds {
    fn default() -> Self {
        ViewKinds {
            image_stream_tags: true,
            image_tags: true,
            image_stream_images: true,
            image_stream_layers: true,
        }
    }
}

impl ViewKinds {
    /// From the configuration's `views` (absent fields keep their view).
    pub fn from_config(config: Option<&crate::config::ViewsConfig>) -> ViewKinds {
        let kept = |field: Option<bool>| field.unwrap_or(true);
        match config {
            None => ViewKinds::default(),
            Some(c) => ViewKinds {
                image_stream_tags: kept(c.image_stream_tags),
                image_tags: kept(c.image_tags),
                image_stream_images: kept(c.image_stream_images),
                image_stream_layers: kept(c.image_stream_layers),
            },
        }
    }
}

/// The views of one stream that are kept: those of the kinds turned off are wanted by none,
/// so the ones stored are removed. `shown` stays whole (it says which Images concern the
/// stream, whichever views show them).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Kept {
    pub tags: Vec<ImageStreamTag>,
    pub image_tags: Vec<ImageTag>,
    pub images: Vec<ImageStreamImage>,
    pub layers: Option<ImageStreamLayers>,
    pub shown: Vec<String>,
}

impl Views {
    /// Only the views of `kinds`.
    pub fn keep(self, kinds: ViewKinds) -> Kept {
        let Views {
            tags,
            image_tags,
            images,
            layers,
            shown,
        } = self;
        Kept {
            tags: kept(kinds.image_stream_tags, tags),
            image_tags: kept(kinds.image_tags, image_tags),
            images: kept(kinds.image_stream_images, images),
            layers: kinds.image_stream_layers.then_some(layers),
            shown,
        }
    }

    /// The views of `stream`, each with its hash.
    pub fn of(stream: &ImageStream, images: &dyn ImageLookup) -> Views {
        let tags = tag_names(stream);
        let shown = layers::history_images(stream, images);
        Views {
            tags: tags
                .iter()
                .map(|t| image_stream_tag(stream, t, images))
                .collect(),
            image_tags: tags.iter().map(|t| image_tag(stream, t, images)).collect(),
            images: shown
                .iter()
                .filter_map(|i| image_stream_image(stream, i, images))
                .collect(),
            layers: image_stream_layers(stream, images),
            shown,
        }
    }
}

/// `views` when their kind is kept, none otherwise.
fn kept<V>(on: bool, views: Vec<V>) -> Vec<V> {
    if on { views } else { Vec::new() }
}

/// The tags of a stream: spec and status, sorted, each once.
pub fn tag_names(stream: &ImageStream) -> Vec<String> {
    let mut names: Vec<String> = stream
        .spec
        .tags
        .iter()
        .map(|t| t.name.clone())
        .chain(
            stream
                .status
                .iter()
                .flat_map(|s| &s.tags)
                .map(|t| t.tag.clone()),
        )
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Whether an annotation belongs to a client and is kept as it is on a view.
pub fn is_client_annotation(key: &str) -> bool {
    CLIENT_ANNOTATION_PREFIXES
        .iter()
        .any(|p| key.starts_with(p))
}

/// Whether an annotation is the operator's bookkeeping on a view.
pub fn is_bookkeeping_annotation(key: &str) -> bool {
    matches!(
        key,
        names::ANNOTATION_STREAM
            | names::ANNOTATION_TAG
            | names::ANNOTATION_IMAGE
            | names::ANNOTATION_OPENSHIFT_NAME
            | ANNOTATION_VIEW_HASH
    )
}

/// The annotations a user means for a tag: a view's annotations without bookkeeping and
/// client annotations.
pub fn user_annotations(annotations: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    annotations
        .iter()
        .filter(|(k, _)| !is_bookkeeping_annotation(k) && !is_client_annotation(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The owner reference to `stream` every view carries.
pub fn owner(stream: &ImageStream) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: API_VERSION.into(),
        kind: "ImageStream".into(),
        name: stream.metadata.name.clone()?,
        uid: stream.metadata.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: None,
    })
}

fn meta(
    stream: &ImageStream,
    name: String,
    openshift_name: String,
    mut annotations: BTreeMap<String, String>,
) -> ObjectMeta {
    let stream_name = stream.metadata.name.clone().unwrap_or_default();
    annotations.insert(names::ANNOTATION_STREAM.into(), stream_name);
    annotations.insert(names::ANNOTATION_OPENSHIFT_NAME.into(), openshift_name);
    ObjectMeta {
        name: Some(name),
        namespace: stream.metadata.namespace.clone(),
        labels: stream.metadata.labels.clone().filter(|l| !l.is_empty()),
        annotations: Some(annotations),
        owner_references: owner(stream).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// The stream's own annotations, as upstream copies them onto ImageTags and
/// ImageStreamImages, without client annotations.
fn stream_annotations(stream: &ImageStream) -> BTreeMap<String, String> {
    user_annotations(&stream.metadata.annotations.clone().unwrap_or_default())
}

/// The Image as views embed it: named by its digest, raw manifest and config left on the
/// Image object, `extra` annotations merged in, pulled by `reference`.
pub fn embedded_image(
    image: &Image,
    digest: &str,
    extra: &BTreeMap<String, String>,
    reference: Option<String>,
) -> Image {
    let mut annotations = image.metadata.annotations.clone().unwrap_or_default();
    annotations.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut spec = image.spec.clone();
    spec.docker_image_manifest.clear();
    spec.docker_image_config.clear();
    if let Some(reference) = reference {
        spec.docker_image_reference = reference;
    }
    Image {
        metadata: ObjectMeta {
            name: Some(digest.to_string()),
            creation_timestamp: image.metadata.creation_timestamp.clone(),
            labels: image.metadata.labels.clone().filter(|l| !l.is_empty()),
            annotations: Some(annotations).filter(|a| !a.is_empty()),
            ..ObjectMeta::default()
        },
        spec,
    }
}

/// The tag's current image as views show it: upstream's resolved pull spec (semantics 3.3)
/// and the spec tag's annotations merged into the Image's. `None` without history or when
/// the Image does not exist.
fn current_image(stream: &ImageStream, tag: &str, images: &dyn ImageLookup) -> Option<Image> {
    let event = stream.status.as_ref()?.tag(tag)?.latest()?;
    if event.image.is_empty() {
        return None;
    }
    let image = images.image(&event.image)?;
    let reference = pull_spec_for_tag(stream, tag, false, PullSpecMode::Recent)
        .map(|p| p.pull_spec)
        .unwrap_or_else(|_| event.docker_image_reference.clone());
    let extra = stream
        .spec
        .tag(tag)
        .and_then(|t| t.annotations.clone())
        .unwrap_or_default();
    Some(embedded_image(
        &image,
        &event.image,
        &extra,
        Some(reference),
    ))
}

/// The ImageStreamTag of `stream:tag` (semantics 1.4): the spec tag, the generation of the
/// current event, the stream's lookup policy, the tag's conditions and current image;
/// annotations are the spec tag's.
pub fn image_stream_tag(
    stream: &ImageStream,
    tag: &str,
    images: &dyn ImageLookup,
) -> ImageStreamTag {
    let stream_name = stream.metadata.name.clone().unwrap_or_default();
    let spec_tag = stream.spec.tag(tag).cloned();
    let status = stream.status.as_ref().and_then(|s| s.tag(tag));
    let mut annotations = spec_tag
        .as_ref()
        .and_then(|t| t.annotations.clone())
        .unwrap_or_default();
    annotations.insert(names::ANNOTATION_TAG.into(), tag.into());
    let mut view = ImageStreamTag {
        metadata: meta(
            stream,
            names::stream_tag(&stream_name, tag),
            format!("{stream_name}:{tag}"),
            annotations,
        ),
        spec: ImageStreamTagFields {
            tag: spec_tag,
            generation: status.and_then(|s| s.latest()).map_or(0, |e| e.generation),
            lookup_policy: stream.spec.lookup_policy,
            conditions: status.map(|s| s.conditions.clone()).unwrap_or_default(),
            image: current_image(stream, tag, images),
        },
    };
    seal(&mut view.metadata, &view.spec);
    view
}

/// The ImageTag of `stream:tag` (semantics 1.5): spec tag, status history, current image;
/// annotations are the stream's.
pub fn image_tag(stream: &ImageStream, tag: &str, images: &dyn ImageLookup) -> ImageTag {
    let stream_name = stream.metadata.name.clone().unwrap_or_default();
    let mut annotations = stream_annotations(stream);
    annotations.insert(names::ANNOTATION_TAG.into(), tag.into());
    let mut view = ImageTag {
        metadata: meta(
            stream,
            names::stream_tag(&stream_name, tag),
            format!("{stream_name}:{tag}"),
            annotations,
        ),
        spec: ImageTagFields {
            spec: stream.spec.tag(tag).cloned(),
            image: current_image(stream, tag, images),
        },
        status: stream.status.as_ref().and_then(|s| s.tag(tag)).cloned(),
    };
    seal(&mut view.metadata, &(&view.spec, &view.status));
    view
}

/// The ImageStreamImage of `stream@image` (semantics 1.6), `None` when the Image does not
/// exist (upstream answers 404); annotations are the stream's (upstream's quirk).
pub fn image_stream_image(
    stream: &ImageStream,
    image: &str,
    images: &dyn ImageLookup,
) -> Option<ImageStreamImage> {
    let found = images.image(image)?;
    let stream_name = stream.metadata.name.clone().unwrap_or_default();
    let mut annotations = stream_annotations(stream);
    annotations.insert(names::ANNOTATION_IMAGE.into(), image.into());
    let mut view = ImageStreamImage {
        metadata: meta(
            stream,
            names::stream_image(&stream_name, image),
            format!("{stream_name}@{image}"),
            annotations,
        ),
        spec: ImageStreamImageFields {
            image: embedded_image(&found, image, &BTreeMap::new(), None),
        },
    };
    seal(&mut view.metadata, &view.spec);
    Some(view)
}

/// The ImageStreamLayers of `stream` (semantics 7.5), named as the stream.
pub fn image_stream_layers(stream: &ImageStream, images: &dyn ImageLookup) -> ImageStreamLayers {
    let stream_name = stream.metadata.name.clone().unwrap_or_default();
    let mut view = ImageStreamLayers {
        metadata: meta(stream, stream_name.clone(), stream_name, BTreeMap::new()),
        spec: layers::layers(stream, images),
    };
    seal(&mut view.metadata, &view.spec);
    view
}

/// Sets the view hash over `content` and the metadata the operator owns.
fn seal(metadata: &mut ObjectMeta, content: &impl Serialize) {
    let hash = view_hash(metadata, content);
    metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(ANNOTATION_VIEW_HASH.into(), hash);
}

/// The hash of a view: its content, labels, owner and annotations other than client ones and
/// the hash itself.
pub fn view_hash(metadata: &ObjectMeta, content: &impl Serialize) -> String {
    let annotations: BTreeMap<&String, &String> = metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != ANNOTATION_VIEW_HASH && !is_client_annotation(k))
        .collect();
    let owned = (
        &metadata.labels,
        annotations,
        &metadata.owner_references,
        content,
    );
    let bytes = serde_json::to_vec(&owned).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    digest.iter().take(10).map(|b| format!("{b:02x}")).collect()
}

/// The hash a stored view carries, if any.
pub fn stored_hash(metadata: &ObjectMeta) -> Option<&str> {
    metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION_VIEW_HASH)
        .map(String::as_str)
}

/// `desired` metadata with the client annotations of `existing` kept.
pub fn keep_client_annotations(desired: &mut ObjectMeta, existing: &ObjectMeta) {
    let kept = existing
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| is_client_annotation(k));
    let annotations = desired.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in kept {
        annotations.insert(k.clone(), v.clone());
    }
}

/// The exact stream a view belongs to, from its annotation.
pub fn stream_of(metadata: &ObjectMeta) -> Option<&str> {
    metadata
        .annotations
        .as_ref()?
        .get(names::ANNOTATION_STREAM)
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use serde_json::json;

    const D10: &str = "sha256:1000000000000000000000000000000000000000000000000000000000000010";

    fn stream(spec: serde_json::Value, status: serde_json::Value) -> ImageStream {
        serde_json::from_value(json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
            "metadata": {"name": "test", "namespace": "default", "uid": "u-1",
                "labels": {"app": "x"},
                "annotations": {"stream": "note",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"tags": spec},
            "status": {"dockerImageRepository": "", "tags": status},
        }))
        .unwrap()
    }

    fn image(reference: &str) -> Arc<Image> {
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "image.openshift.io/v1", "kind": "Image",
                "metadata": {"name": names::image(D10), "creationTimestamp": "2015-03-24T09:38:00Z",
                    "annotations": {"from-image": "yes"}},
                "dockerImageReference": reference,
                "dockerImageManifest": "{\"raw\": true}",
                "dockerImageConfig": "{}",
            }))
            .unwrap(),
        )
    }

    fn one_image(reference: &'static str) -> impl Fn(&str) -> Option<Arc<Image>> {
        move |name: &str| (name == D10).then(|| image(reference))
    }

    fn event(reference: &str) -> serde_json::Value {
        json!({"created": "2015-03-24T09:38:00Z", "dockerImageReference": reference,
            "image": D10, "generation": 1})
    }

    /// Case 63: spec tag annotations are the view's and are merged into the image's; the
    /// manifest and config stay on the Image object.
    #[test]
    fn image_stream_tag_view() {
        let s = stream(
            json!([{"name": "latest", "annotations": {"color": "blue", "size": "large"},
                "generation": 1, "from": {"kind": "DockerImage", "name": "foo/bar/baz:latest"}}]),
            json!([{"tag": "latest", "items": [event("foo/bar/baz:latest")]}]),
        );
        let view = image_stream_tag(&s, "latest", &one_image("foo/bar/baz:different"));
        assert_eq!(view.metadata.name.as_deref(), Some("test.latest"));
        assert_eq!(view.metadata.namespace.as_deref(), Some("default"));
        let annotations = view.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations["color"], "blue");
        assert_eq!(annotations[names::ANNOTATION_OPENSHIFT_NAME], "test:latest");
        assert_eq!(annotations[names::ANNOTATION_TAG], "latest");
        assert!(
            !annotations.contains_key("stream"),
            "the stream's annotations are not an istag's"
        );
        let image = view.spec.image.as_ref().unwrap();
        assert_eq!(image.metadata.name.as_deref(), Some(D10));
        let image_annotations = image.metadata.annotations.as_ref().unwrap();
        assert_eq!(image_annotations["color"], "blue");
        assert_eq!(image_annotations["size"], "large");
        assert_eq!(image_annotations["from-image"], "yes");
        assert_eq!(
            image
                .metadata
                .creation_timestamp
                .as_ref()
                .unwrap()
                .0
                .to_string(),
            "2015-03-24T09:38:00Z"
        );
        assert!(image.spec.docker_image_manifest.is_empty());
        assert!(image.spec.docker_image_config.is_empty());
        assert_eq!(view.spec.generation, 1);
        assert_eq!(
            view.metadata.owner_references.as_ref().unwrap()[0].uid,
            "u-1"
        );
        assert_eq!(view.metadata.labels.as_ref().unwrap()["app"], "x");
    }

    /// Case 65: the image's pull spec is the event's, not the Image object's.
    #[test]
    fn image_reference_is_the_events() {
        let s = stream(
            json!([]),
            json!([{"tag": "latest", "items": [event("foo/bar/baz:latest")]}]),
        );
        let view = image_stream_tag(&s, "latest", &one_image("foo/bar/baz:different"));
        assert_eq!(
            view.spec.image.unwrap().spec.docker_image_reference,
            "foo/bar/baz:latest"
        );
        assert_eq!(view.spec.tag, None, "a status-only tag has no spec tag");
    }

    /// A missing Image leaves the view without an image (upstream answers 404; the view stays).
    #[test]
    fn a_missing_image_leaves_no_image() {
        let s = stream(json!([]), json!([{"tag": "t", "items": [event("r:t")]}]));
        let view = image_stream_tag(&s, "t", &|_: &str| None);
        assert_eq!(view.spec.image, None);
        assert_eq!(view.spec.generation, 1);
    }

    /// Case 70: one ImageTag per spec ∪ status tag, with the stream's labels and annotations
    /// (client annotations left out).
    #[test]
    fn image_tags_cover_spec_and_status() {
        let s = stream(
            json!([{"name": "a", "from": {"kind": "DockerImage", "name": "x"}},
                   {"name": "b", "from": {"kind": "DockerImage", "name": "y"}}]),
            json!([{"tag": "b", "items": [event("r:b")]}, {"tag": "c", "items": [event("r:c")]}]),
        );
        assert_eq!(tag_names(&s), ["a", "b", "c"]);
        let none = |_: &str| None;
        let a = image_tag(&s, "a", &none);
        assert!(a.spec.spec.is_some() && a.status.is_none());
        let c = image_tag(&s, "c", &none);
        assert!(c.spec.spec.is_none());
        assert_eq!(c.status.as_ref().unwrap().items.len(), 1);
        let annotations = c.metadata.annotations.unwrap();
        assert_eq!(annotations["stream"], "note");
        assert!(!annotations.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
        assert_eq!(c.metadata.labels.unwrap()["app"], "x");
    }

    /// `spec.views` turns kinds off one by one; what a stream shows is kept whole.
    #[test]
    fn only_the_view_kinds_kept_are_wanted() {
        let s = stream(
            json!([{"name": "a", "from": {"kind": "DockerImage", "name": "x"}}]),
            json!([{"tag": "a", "items": [event("r:a")]}]),
        );
        let shown = one_image("r:a");
        let all = Views::of(&s, &shown).keep(ViewKinds::default());
        assert_eq!(
            (all.tags.len(), all.image_tags.len(), all.images.len()),
            (1, 1, 1)
        );
        assert!(all.layers.is_some());
        let config = crate::config::ViewsConfig {
            image_stream_images: Some(false),
            image_stream_layers: Some(false),
            ..Default::default()
        };
        let kinds = ViewKinds::from_config(Some(&config));
        assert_eq!(
            kinds,
            ViewKinds {
                image_stream_tags: true,
                image_tags: true,
                image_stream_images: false,
                image_stream_layers: false,
            }
        );
        let kept = Views::of(&s, &shown).keep(kinds);
        assert_eq!((kept.tags.len(), kept.image_tags.len()), (1, 1));
        assert!(kept.images.is_empty() && kept.layers.is_none());
        assert_eq!(kept.shown, all.shown, "the Images that concern the stream");
        assert_eq!(ViewKinds::from_config(None), ViewKinds::default());
        let none_off = crate::config::ViewsConfig::default();
        assert_eq!(
            ViewKinds::from_config(Some(&none_off)),
            ViewKinds::default()
        );
    }

    /// The hash moves with the content and the metadata the operator owns, not with client
    /// annotations.
    #[test]
    fn the_hash_follows_content_only() {
        let s = stream(json!([]), json!([{"tag": "t", "items": [event("r:t")]}]));
        let none = |_: &str| None;
        let a = image_tag(&s, "t", &none);
        let again = image_tag(&s, "t", &none);
        assert_eq!(stored_hash(&a.metadata), stored_hash(&again.metadata));

        let moved = stream(json!([]), json!([{"tag": "t", "items": [event("r:t2")]}]));
        let b = image_tag(&moved, "t", &none);
        assert_ne!(
            stored_hash(&a.metadata),
            stored_hash(&b.metadata),
            "status counts"
        );

        let mut with_client = a.metadata.clone();
        with_client.annotations.as_mut().unwrap().insert(
            "kubectl.kubernetes.io/last-applied-configuration".into(),
            "{}".into(),
        );
        assert_eq!(
            view_hash(&with_client, &(&a.spec, &a.status)),
            stored_hash(&a.metadata).unwrap()
        );
    }

    #[test]
    fn user_annotations_drop_bookkeeping_and_client_keys() {
        let all: BTreeMap<String, String> = [
            (names::ANNOTATION_STREAM, "s"),
            (ANNOTATION_VIEW_HASH, "h"),
            ("kubectl.kubernetes.io/last-applied-configuration", "{}"),
            ("color", "blue"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            user_annotations(&all),
            [("color".to_string(), "blue".to_string())].into()
        );
    }
}
