//! ImageStreamLayers and the images of a stream's history (semantics 7.4, 7.5), without IO.
//!
//! Upstream computes the layers view on every GET from an index of all Images; here the views
//! controller calls [`layers`] whenever a stream or one of its Images changes and stores the
//! result. [`history_images`] lists the images ImageStreamImage objects are kept for.

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
const DOCKER_CONFIG_TYPE: &str = "application/vnd.docker.container.image.v1+json";
const OCI_CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const OCI_MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// The layers view of `stream` (semantics 7.5 steps 1, 2 and 4; no 250 ms retry: the
/// controller runs again when the missing Image appears).
pub fn layers(stream: &ImageStream, images: &dyn ImageLookup) -> ImageStreamLayersFields {
    let mut out = ImageStreamLayersFields::default();
    for name in history_images(stream, images) {
        let Some(image) = images.image(&name) else {
            out.images.insert(
                name,
                ImageBlobReferences {
                    image_missing: true,
                    ..ImageBlobReferences::default()
                },
            );
            continue;
        };
        let spec = &image.spec;
        let manifest_type = if spec.docker_image_manifest_media_type.is_empty() {
            DEFAULT_MANIFEST_TYPE
        } else {
            spec.docker_image_manifest_media_type.as_str()
        };
        for layer in &spec.docker_image_layers {
            out.blobs
                .entry(layer.name.clone())
                .or_insert_with(|| ImageLayerData {
                    size: Some(layer.size),
                    media_type: layer.media_type.clone(),
                });
        }
        let config = config_digest(&image);
        if let Some(config) = &config {
            let media_type = if manifest_type == OCI_MANIFEST_TYPE {
                OCI_CONFIG_TYPE
            } else {
                DOCKER_CONFIG_TYPE
            };
            out.blobs
                .entry(config.clone())
                .or_insert_with(|| ImageLayerData {
                    size: None,
                    media_type: media_type.into(),
                });
        }
        out.blobs
            .entry(name.clone())
            .or_insert_with(|| ImageLayerData {
                size: None,
                media_type: manifest_type.into(),
            });
        out.images.insert(
            name,
            ImageBlobReferences {
                image_missing: false,
                layers: spec
                    .docker_image_layers
                    .iter()
                    .map(|l| l.name.clone())
                    .collect(),
                config,
                manifests: spec
                    .docker_image_manifests
                    .iter()
                    .map(|m| m.digest.clone())
                    .collect(),
            },
        );
    }
    out
}

/// The config blob of a single-manifest image: `dockerImageMetadata.Id`; lists and images
/// without one have none.
fn config_digest(image: &Image) -> Option<String> {
    if image.spec.is_manifest_list() {
        return None;
    }
    let metadata = image.spec.docker_image_metadata().ok()??;
    (!metadata.id.is_empty()).then_some(metadata.id)
}

/// Every image named in any tag's history, then the children of manifest lists among them
/// (as far as their Images exist), each once, in the order [`layers`] visits them.
pub fn history_images(stream: &ImageStream, images: &dyn ImageLookup) -> Vec<String> {
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
        // depth first, children after their list; `seen` ends cycles
        let mut pending = vec![root.to_string()];
        while let Some(name) = pending.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(image) = images.image(&name) {
                pending.extend(
                    image
                        .spec
                        .docker_image_manifests
                        .iter()
                        .rev()
                        .map(|m| m.digest.clone()),
                );
            }
            order.push(name);
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    use serde_json::json;

    const L: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const C: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const O: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
    const CONFIG: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
    const LAYER: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

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

    fn single(name: &str, media_type: &str) -> Image {
        serde_json::from_value(json!({
            "apiVersion": "image.openshift.io/v1", "kind": "Image",
            "metadata": {"name": name},
            "dockerImageReference": "r",
            "dockerImageManifestMediaType": media_type,
            "dockerImageMetadata": {"kind": "DockerImage", "apiVersion": "image.openshift.io/1.0",
                "Id": CONFIG},
            "dockerImageLayers": [{"name": LAYER, "size": 42, "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip"}],
        }))
        .unwrap()
    }

    fn list(name: &str, children: &[&str]) -> Image {
        serde_json::from_value(json!({
            "apiVersion": "image.openshift.io/v1", "kind": "Image",
            "metadata": {"name": name},
            "dockerImageReference": "r",
            "dockerImageManifestMediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
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

    /// Case 80: a list L with child C.
    #[test]
    fn a_list_lists_its_children_and_the_child_its_blobs() {
        let images = lookup(vec![
            (L, list(L, &[C])),
            (C, single(C, DEFAULT_MANIFEST_TYPE)),
        ]);
        let view = layers(&stream(&[("latest", &[L])]), &images);
        let l = &view.images[L];
        assert_eq!(l.manifests, [C]);
        assert!(l.layers.is_empty() && l.config.is_none() && !l.image_missing);
        let c = &view.images[C];
        assert_eq!(c.layers, [LAYER]);
        assert_eq!(c.config.as_deref(), Some(CONFIG));
        assert_eq!(view.blobs[LAYER].size, Some(42));
        assert_eq!(view.blobs[CONFIG].media_type, DOCKER_CONFIG_TYPE);
        assert_eq!(view.blobs[CONFIG].size, None);
        assert_eq!(
            view.blobs[L].media_type,
            "application/vnd.docker.distribution.manifest.list.v2+json"
        );
        assert_eq!(view.blobs[C].media_type, DEFAULT_MANIFEST_TYPE);
        assert_eq!(
            history_images(&stream(&[("latest", &[L])]), &images),
            [L, C]
        );
    }

    #[test]
    fn a_missing_image_is_marked_and_has_nothing_else() {
        let view = layers(&stream(&[("t", &[C])]), &|_: &str| None);
        assert_eq!(
            view.images[C],
            ImageBlobReferences {
                image_missing: true,
                ..ImageBlobReferences::default()
            }
        );
        assert!(view.blobs.is_empty());
        // a missing child of a list, too
        let view = layers(&stream(&[("t", &[L])]), &lookup(vec![(L, list(L, &[C]))]));
        assert!(view.images[C].image_missing);
    }

    #[test]
    fn oci_configs_have_the_oci_media_type_and_images_count_once() {
        let images = lookup(vec![(O, single(O, OCI_MANIFEST_TYPE))]);
        let s = stream(&[("a", &[O, O]), ("b", &[O])]);
        let view = layers(&s, &images);
        assert_eq!(view.images.len(), 1);
        assert_eq!(view.blobs[CONFIG].media_type, OCI_CONFIG_TYPE);
        assert_eq!(history_images(&s, &images), [O]);
    }

    #[test]
    fn first_writer_of_a_blob_wins_and_cycles_end() {
        let mut other = single(O, DEFAULT_MANIFEST_TYPE);
        other.spec.docker_image_layers[0].size = 7;
        let images = lookup(vec![
            (C, single(C, DEFAULT_MANIFEST_TYPE)),
            (O, other),
            (L, list(L, &[L, C])),
        ]);
        let s = stream(&[("a", &[C, O]), ("b", &[L])]);
        assert_eq!(layers(&s, &images).blobs[LAYER].size, Some(42));
        assert_eq!(history_images(&s, &images), [C, O, L]);
    }
}
