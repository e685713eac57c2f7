//! ImageStreamLayers and the images of a stream's history (semantics 7.4, 7.5), without IO.
//!
//! Upstream computes the layers view on every GET from an index of all Images; here the views
//! controller calls [`layers`] whenever a stream or one of its Images changes and stores the
//! result. [`history_images`] lists the images ImageStreamImage objects are kept for (and the
//! Images whose changes touch the stream). Both walk the same traversal.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::api::image::Image;
use crate::api::image_stream::ImageStream;
use crate::api::image_stream_layers::{
    ImageBlobReferences, ImageLayerData, ImageStreamLayersFields,
};

/// Images by their OpenShift name (the digest, `sha256:…`), as the Image cache holds them.
pub trait ImageLookup {
    fn image(&self, name: &str) -> Option<Arc<Image>>;
}

impl<F: Fn(&str) -> Option<Arc<Image>>> ImageLookup for F {
    fn image(&self, name: &str) -> Option<Arc<Image>> {
        self(name)
    }
}

/// Media type of a manifest whose Image records none (upstream's default).
const DEFAULT_MANIFEST_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
const SCHEMA2_MANIFEST_TYPE: &str = DEFAULT_MANIFEST_TYPE;
const OCI_MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_CONFIG_TYPE: &str = "application/vnd.docker.container.image.v1+json";
const OCI_CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// The layers view of `stream` (semantics 7.5 steps 1, 2 and 4; no 250 ms retry: the
/// controller runs again when the missing Image appears).
///
/// Step 4's rules hold by construction: missing images have nothing else, layer and config
/// names come from non-empty digests, lists have no layers and no config.
pub fn layers(stream: &ImageStream, images: &dyn ImageLookup) -> ImageStreamLayersFields {
    let mut out = ImageStreamLayersFields::default();
    for (name, image) in visit(stream, images) {
        let reference = match image {
            Some(image) => add_blobs(&mut out, &name, &image),
            None => ImageBlobReferences {
                image_missing: true,
                ..ImageBlobReferences::default()
            },
        };
        out.images.insert(name, reference);
    }
    out
}

/// Every image named in any tag's history, then the children of manifest lists among them
/// (as far as the lists' Images exist; a missing child is listed too), each once, in the
/// order [`layers`] visits them.
pub fn history_images(stream: &ImageStream, images: &dyn ImageLookup) -> Vec<String> {
    visit(stream, images).into_iter().map(|(n, _)| n).collect()
}

/// The images of `stream`'s history in upstream's order: status tags in order, their items in
/// order, each list followed depth first by its children; each name once (which also ends
/// cycles). Every name is looked up once, with its Image if it exists.
fn visit(stream: &ImageStream, images: &dyn ImageLookup) -> Vec<(String, Option<Arc<Image>>)> {
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    let roots = stream
        .status
        .iter()
        .flat_map(|s| &s.tags)
        .flat_map(|t| &t.items)
        .map(|e| e.image.as_str())
        .filter(|i| !i.is_empty());
    for root in roots {
        let mut pending = vec![root.to_string()];
        while let Some(name) = pending.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let image = images.image(&name);
            if let Some(image) = &image {
                // reversed onto the stack, so the first child comes out first
                pending.extend(
                    image
                        .spec
                        .docker_image_manifests
                        .iter()
                        .rev()
                        .map(|m| m.digest.clone())
                        .filter(|d| !d.is_empty()),
                );
            }
            order.push((name, image));
        }
    }
    order
}

/// Adds the blobs of the existing image `name` to `out.blobs` (first writer wins) and returns
/// its references.
fn add_blobs(out: &mut ImageStreamLayersFields, name: &str, image: &Image) -> ImageBlobReferences {
    let spec = &image.spec;
    let mut layers = Vec::with_capacity(spec.docker_image_layers.len());
    for layer in spec
        .docker_image_layers
        .iter()
        .filter(|l| !l.name.is_empty())
    {
        layers.push(layer.name.clone());
        out.blobs
            .entry(layer.name.clone())
            .or_insert_with(|| ImageLayerData {
                size: Some(layer.size),
                media_type: layer.media_type.clone(),
            });
    }
    let config = config(image);
    if let Some((digest, media_type)) = &config {
        out.blobs
            .entry(digest.clone())
            .or_insert_with(|| ImageLayerData {
                size: None,
                media_type: (*media_type).into(),
            });
    }
    // the manifest itself is a blob too
    let manifest_type = match spec.docker_image_manifest_media_type.as_str() {
        "" => DEFAULT_MANIFEST_TYPE,
        t => t,
    };
    out.blobs
        .entry(name.to_string())
        .or_insert_with(|| ImageLayerData {
            size: None,
            media_type: manifest_type.into(),
        });
    ImageBlobReferences {
        image_missing: false,
        layers,
        config: config.map(|(digest, _)| digest),
        manifests: spec
            .docker_image_manifests
            .iter()
            .map(|m| m.digest.clone())
            .filter(|d| !d.is_empty())
            .collect(),
    }
}

/// The config blob of a schema2 or OCI image and its media type: `dockerImageMetadata.Id`.
/// As upstream, only those two manifest types (exactly, not an empty one) have a config;
/// schema1 images, lists and images without an id have none.
fn config(image: &Image) -> Option<(String, &'static str)> {
    let spec = &image.spec;
    let media_type = match spec.docker_image_manifest_media_type.as_str() {
        SCHEMA2_MANIFEST_TYPE => DOCKER_CONFIG_TYPE,
        OCI_MANIFEST_TYPE => OCI_CONFIG_TYPE,
        _ => return None,
    };
    if spec.is_manifest_list() {
        return None;
    }
    let metadata = spec.docker_image_metadata().ok()??;
    (!metadata.id.is_empty()).then_some((metadata.id, media_type))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    use serde_json::json;

    const L: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const C: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const O: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
    const D: &str = "sha256:4444444444444444444444444444444444444444444444444444444444444444";
    const M: &str = "sha256:5555555555555555555555555555555555555555555555555555555555555555";
    const CONFIG: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
    const LAYER: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const LAYER_TYPE: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    const LIST_TYPE: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    const SCHEMA1_TYPE: &str = "application/vnd.docker.distribution.manifest.v1+json";

    fn stream(tags: &[(&str, &[&str])]) -> ImageStream {
        let tags: Vec<_> = tags
            .iter()
            .map(|(t, images)| {
                json!({"tag": t, "items": images.iter().map(|i| json!({
                    "created": "2026-01-01T00:00:00Z", "dockerImageReference": format!("r@{i}"),
                    "image": i, "generation": 1})).collect::<Vec<_>>()})
            })
            .collect();
        serde_json::from_value(json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
            "metadata": {"name": "s", "namespace": "ns"},
            "spec": {}, "status": {"dockerImageRepository": "", "tags": tags},
        }))
        .unwrap()
    }

    /// A single-manifest image with one layer (`LAYER`, 42 bytes) and config id `id`.
    fn image_with(name: &str, media_type: &str, id: &str) -> Image {
        serde_json::from_value(json!({
            "apiVersion": "image.openshift.io/v1", "kind": "Image",
            "metadata": {"name": crate::names::image(name)},
            "dockerImageReference": "r",
            "dockerImageManifestMediaType": media_type,
            "dockerImageMetadata": {"kind": "DockerImage", "apiVersion": "image.openshift.io/1.0",
                "Id": id},
            "dockerImageLayers": [{"name": LAYER, "size": 42, "mediaType": LAYER_TYPE}],
        }))
        .unwrap()
    }

    fn single(name: &str, media_type: &str) -> Image {
        image_with(name, media_type, CONFIG)
    }

    fn list(name: &str, children: &[&str]) -> Image {
        serde_json::from_value(json!({
            "apiVersion": "image.openshift.io/v1", "kind": "Image",
            "metadata": {"name": crate::names::image(name)},
            "dockerImageReference": "r",
            "dockerImageManifestMediaType": LIST_TYPE,
            "dockerImageManifests": children.iter().map(|c| json!({"digest": c,
                "mediaType": DEFAULT_MANIFEST_TYPE, "manifestSize": 1, "architecture": "amd64",
                "os": "linux"})).collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    fn lookup(images: Vec<(&'static str, Image)>) -> impl Fn(&str) -> Option<Arc<Image>> {
        let map: HashMap<&str, Arc<Image>> =
            images.into_iter().map(|(n, i)| (n, Arc::new(i))).collect();
        move |name: &str| map.get(name).cloned()
    }

    fn missing() -> ImageBlobReferences {
        ImageBlobReferences {
            image_missing: true,
            ..ImageBlobReferences::default()
        }
    }

    /// Case 80: a tag pointing to a list L with child C.
    #[test]
    fn a_list_lists_its_children_and_the_child_its_blobs() {
        let images = lookup(vec![
            (L, list(L, &[C])),
            (C, single(C, DEFAULT_MANIFEST_TYPE)),
        ]);
        let s = stream(&[("latest", &[L])]);
        let view = layers(&s, &images);
        assert_eq!(
            view.images[L],
            ImageBlobReferences {
                manifests: vec![C.into()],
                ..ImageBlobReferences::default()
            }
        );
        assert_eq!(
            view.images[C],
            ImageBlobReferences {
                layers: vec![LAYER.into()],
                config: Some(CONFIG.into()),
                ..ImageBlobReferences::default()
            }
        );
        let blob = |size: Option<i64>, media_type: &str| ImageLayerData {
            size,
            media_type: media_type.into(),
        };
        assert_eq!(
            view.blobs.into_iter().collect::<Vec<_>>(),
            [
                (L.to_string(), blob(None, LIST_TYPE)),
                (C.to_string(), blob(None, DEFAULT_MANIFEST_TYPE)),
                (LAYER.to_string(), blob(Some(42), LAYER_TYPE)),
                (CONFIG.to_string(), blob(None, DOCKER_CONFIG_TYPE)),
            ]
        );
        assert_eq!(history_images(&s, &images), [L, C]);
    }

    #[test]
    fn a_missing_image_is_marked_and_has_nothing_else() {
        let view = layers(&stream(&[("t", &[C])]), &|_: &str| None);
        assert_eq!(
            view.images.into_iter().collect::<Vec<_>>(),
            [(C.to_string(), missing())]
        );
        assert!(view.blobs.is_empty());
        // a missing child of a list, too; it is still part of the history
        let images = lookup(vec![(L, list(L, &[C]))]);
        let s = stream(&[("t", &[L])]);
        let view = layers(&s, &images);
        assert_eq!(view.images[C], missing());
        assert_eq!(view.images[L].manifests, [C]);
        assert!(!view.blobs.contains_key(C));
        assert_eq!(history_images(&s, &images), [L, C]);
    }

    #[test]
    fn oci_configs_have_the_oci_media_type_and_images_count_once() {
        let images = lookup(vec![(O, single(O, OCI_MANIFEST_TYPE))]);
        let s = stream(&[("a", &[O, O]), ("b", &[O])]);
        let view = layers(&s, &images);
        assert_eq!(view.images.len(), 1);
        assert_eq!(view.images[O].config.as_deref(), Some(CONFIG));
        assert_eq!(
            view.blobs[CONFIG],
            ImageLayerData {
                size: None,
                media_type: OCI_CONFIG_TYPE.into()
            }
        );
        assert_eq!(view.blobs[O].media_type, OCI_MANIFEST_TYPE);
        assert_eq!(history_images(&s, &images), [O]);
    }

    #[test]
    fn only_schema2_and_oci_images_with_an_id_have_a_config() {
        let images = lookup(vec![
            (C, image_with(C, SCHEMA1_TYPE, CONFIG)),
            (O, image_with(O, "", CONFIG)),
            (D, image_with(D, DEFAULT_MANIFEST_TYPE, "")),
        ]);
        let view = layers(&stream(&[("t", &[C, O, D])]), &images);
        for name in [C, O, D] {
            assert_eq!(view.images[name].config, None, "{name}");
            assert_eq!(view.images[name].layers, [LAYER], "{name}");
        }
        assert!(!view.blobs.contains_key(CONFIG));
        assert_eq!(view.blobs[C].media_type, SCHEMA1_TYPE);
        // an empty manifest type defaults for the manifest blob
        assert_eq!(view.blobs[O].media_type, DEFAULT_MANIFEST_TYPE);
    }

    #[test]
    fn first_writer_of_a_blob_wins_and_cycles_end() {
        let mut other = single(O, OCI_MANIFEST_TYPE);
        other.spec.docker_image_layers[0].size = 7;
        other.spec.docker_image_layers[0].media_type = "other".into();
        let images = lookup(vec![
            (C, single(C, DEFAULT_MANIFEST_TYPE)),
            (O, other),
            (L, list(L, &[L, C, M])),
            (M, list(M, &[L])),
        ]);
        let s = stream(&[("a", &[C, O]), ("b", &[L])]);
        let view = layers(&s, &images);
        assert_eq!(
            view.blobs[LAYER],
            ImageLayerData {
                size: Some(42),
                media_type: LAYER_TYPE.into()
            }
        );
        assert_eq!(view.blobs[CONFIG].media_type, DOCKER_CONFIG_TYPE);
        assert_eq!(view.images[L].manifests, [L, C, M]);
        assert_eq!(view.images[M].manifests, [L]);
        assert_eq!(history_images(&s, &images), [C, O, L, M]);
    }

    #[test]
    fn history_images_go_depth_first_in_tag_and_item_order() {
        // L = [M, C], M = [D]; tags a: [O, L], b: [C, D, O]
        let images = lookup(vec![
            (L, list(L, &[M, C])),
            (M, list(M, &[D])),
            (C, single(C, DEFAULT_MANIFEST_TYPE)),
            (D, single(D, DEFAULT_MANIFEST_TYPE)),
            (O, single(O, DEFAULT_MANIFEST_TYPE)),
        ]);
        let s = stream(&[("a", &[O, L]), ("b", &[C, D, O])]);
        assert_eq!(history_images(&s, &images), [O, L, M, D, C]);
        assert_eq!(layers(&s, &images).images.len(), 5);
        // tags without images, and empty image names, are skipped
        let s = stream(&[("a", &[]), ("b", &[""])]);
        assert!(history_images(&s, &images).is_empty());
        assert_eq!(layers(&s, &images), ImageStreamLayersFields::default());
    }
}
