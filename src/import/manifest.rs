//! Registry manifests and configs to `Image` objects (semantics 5.5 and 5.7), without IO.
//!
//! The importer fetches bytes; this module parses them and decides: which media types are
//! supported (schema2, OCI manifest, Docker manifest list, OCI index; schema1 is reported as
//! unsupported), which child of a list Legacy mode takes, and what the resulting Image holds.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::ObjectMeta;
use serde::Deserialize;

use crate::api::docker_image::{DockerConfig, DockerImage};
use crate::api::image::{
    DOCKER_IMAGE_LAYERS_ORDER_ANNOTATION, Image, ImageFields, ImageLayer, ImageManifest,
};
use crate::config::Platform;
use crate::registry::protocol::{
    DOCKER_LIST, DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, DOCKER_SCHEMA2, MANIFEST_MEDIA_TYPES,
    OCI_INDEX, OCI_MANIFEST,
};

/// Most layers (or list entries) a manifest may have. Far above any runnable image (Docker
/// refuses more than 127 layers), and low enough that the Image stays a small object: a
/// 4 MiB manifest of terse descriptors holds 100,000 layers, whose Image the apiserver would
/// refuse as too large.
pub const MAX_MANIFEST_ENTRIES: usize = 1_000;

/// Why bytes from a registry could not become an Image.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error(
        "schema1 manifests ({0}) are not supported: push the image again with a current client to get a schema2 or OCI manifest"
    )]
    Schema1(String),
    #[error("unsupported image manifest type {0:?}")]
    UnsupportedMediaType(String),
    #[error("malformed manifest: {0}")]
    MalformedManifest(String),
    #[error("malformed image config: {0}")]
    MalformedConfig(String),
    #[error("the manifest list has no entries")]
    EmptyList,
    #[error("the manifest has {count} {what}, more than the limit of {MAX_MANIFEST_ENTRIES}")]
    TooManyEntries { what: &'static str, count: usize },
}

impl ManifestError {
    /// Stable reason string for conditions, Events and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            ManifestError::Schema1(_) => "UnsupportedSchema1",
            ManifestError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ManifestError::MalformedManifest(_) => "MalformedManifest",
            ManifestError::MalformedConfig(_) => "MalformedConfig",
            ManifestError::EmptyList => "EmptyManifestList",
            ManifestError::TooManyEntries { .. } => "TooManyManifestEntries",
        }
    }
}

/// A content descriptor (config, layer or list entry).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: i64,
    #[serde(default)]
    pub platform: Option<DescriptorPlatform>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The platform of a list entry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct DescriptorPlatform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// A single-platform manifest (Docker schema2 or OCI).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SingleManifest {
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// A Docker manifest list or OCI index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestList {
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
}

/// A parsed manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Manifest {
    Single(SingleManifest),
    List(ManifestList),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    #[serde(default)]
    schema_version: Option<i64>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

/// Parses manifest bytes. `content_type` is the response's Content-Type, which wins over the
/// body's `mediaType` when it names a manifest type (registries may omit `mediaType`).
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest, ManifestError> {
    let raw: RawManifest = serde_json::from_slice(bytes)
        .map_err(|e| ManifestError::MalformedManifest(e.to_string()))?;
    let header_type = content_type
        .map(|c| c.split(';').next().unwrap_or_default().trim().to_string())
        .filter(|c| MANIFEST_MEDIA_TYPES.contains(&c.as_str()));
    let media_type = header_type.or(raw.media_type.clone()).unwrap_or_else(|| {
        match (&raw.manifests, &raw.config) {
            (Some(_), _) => OCI_INDEX.to_string(),
            (None, Some(_)) => OCI_MANIFEST.to_string(),
            _ => String::new(),
        }
    });
    if raw.schema_version == Some(1)
        || media_type == DOCKER_SCHEMA1
        || media_type == DOCKER_SCHEMA1_SIGNED
    {
        let kind = if media_type.is_empty() {
            DOCKER_SCHEMA1
        } else {
            &media_type
        };
        return Err(ManifestError::Schema1(kind.to_string()));
    }
    match media_type.as_str() {
        DOCKER_SCHEMA2 | OCI_MANIFEST => {
            let config = raw
                .config
                .ok_or_else(|| ManifestError::MalformedManifest("no config descriptor".into()))?;
            let layers = raw.layers.unwrap_or_default();
            if layers.len() > MAX_MANIFEST_ENTRIES {
                return Err(ManifestError::TooManyEntries {
                    what: "layers",
                    count: layers.len(),
                });
            }
            Ok(Manifest::Single(SingleManifest {
                media_type,
                config,
                layers,
            }))
        }
        DOCKER_LIST | OCI_INDEX => {
            let manifests = raw
                .manifests
                .ok_or_else(|| ManifestError::MalformedManifest("no manifests in list".into()))?;
            if manifests.len() > MAX_MANIFEST_ENTRIES {
                return Err(ManifestError::TooManyEntries {
                    what: "list entries",
                    count: manifests.len(),
                });
            }
            Ok(Manifest::List(ManifestList {
                media_type,
                manifests,
            }))
        }
        other => Err(ManifestError::UnsupportedMediaType(other.to_string())),
    }
}

/// An entry that is not a runnable image: BuildKit attestations and `unknown/unknown`.
pub fn is_attestation(entry: &Descriptor) -> bool {
    entry.annotations.contains_key("vnd.docker.reference.type")
        || entry
            .platform
            .as_ref()
            .is_some_and(|p| p.os == "unknown" || p.architecture == "unknown")
}

/// The child Legacy mode imports from a list: the preferred arch/os (the tag's
/// `importer.image.openshift.io/prefer-arch`/`prefer-os` annotations),
/// else the configured default platform, else linux/amd64, else the first runnable entry.
pub fn select_child<'a>(
    list: &'a ManifestList,
    prefer_arch: Option<&str>,
    prefer_os: Option<&str>,
    default_platform: &Platform,
) -> Option<&'a Descriptor> {
    let runnable: Vec<&Descriptor> = list
        .manifests
        .iter()
        .filter(|e| !is_attestation(e))
        .collect();
    let matches = |arch: &str, os: &str| {
        runnable.iter().copied().find(|e| {
            e.platform
                .as_ref()
                .is_some_and(|p| p.architecture == arch && p.os == os)
        })
    };
    if prefer_arch.is_some() || prefer_os.is_some() {
        let arch = prefer_arch.unwrap_or(&default_platform.architecture);
        let os = prefer_os.unwrap_or(&default_platform.os);
        if let Some(found) = matches(arch, os) {
            return Some(found);
        }
    }
    let default_match = runnable.iter().copied().find(|e| {
        e.platform.as_ref().is_some_and(|p| {
            p.architecture == default_platform.architecture
                && p.os == default_platform.os
                && (default_platform.variant.is_none() || p.variant == default_platform.variant)
        })
    });
    default_match
        .or_else(|| matches("amd64", "linux"))
        .or_else(|| runnable.first().copied())
}

/// The image config blob, in the union of the Docker and OCI shapes.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ImageConfigBlob {
    architecture: String,
    created: Option<String>,
    author: String,
    config: Option<DockerConfig>,
    container_config: Option<DockerConfig>,
    container: String,
    docker_version: String,
    comment: String,
    parent: String,
}

/// The Image for a single-platform manifest.
///
/// `repository` is the repository as the user wrote it (no tag or digest);
/// `dockerImageReference` becomes `<repository>@<digest>`, keeping the user's spelling.
/// `dockerImageManifest` and `dockerImageConfig` are filled; callers that store the Image
/// clear them, as OpenShift does.
pub fn single_image(
    repository: &str,
    digest: &str,
    manifest: &SingleManifest,
    raw_manifest: &[u8],
    config: &[u8],
) -> Result<Image, ManifestError> {
    let blob: ImageConfigBlob = serde_json::from_slice(config)
        .map_err(|e| ManifestError::MalformedConfig(e.to_string()))?;
    let created = match blob.created.as_deref() {
        Some(text) => Some(Time(text.parse().map_err(|e| {
            ManifestError::MalformedConfig(format!("created {text:?}: {e}"))
        })?)),
        None => None,
    };
    // Sizes are the registry's claims: saturate rather than overflow on hostile ones.
    let mut unique = BTreeSet::new();
    let layer_bytes: i64 = manifest
        .layers
        .iter()
        .filter(|l| unique.insert(l.digest.as_str()))
        .fold(0, |sum, l| sum.saturating_add(l.size.max(0)));
    let config_len = i64::try_from(config.len()).unwrap_or(i64::MAX);
    let metadata = DockerImage {
        id: manifest.config.digest.clone(),
        parent: blob.parent,
        comment: blob.comment,
        created,
        container: blob.container,
        container_config: blob.container_config.unwrap_or_default(),
        docker_version: blob.docker_version,
        author: blob.author,
        config: blob.config,
        architecture: blob.architecture,
        size: config_len.saturating_add(layer_bytes),
        ..DockerImage::default()
    };
    let mut fields = ImageFields {
        docker_image_reference: format!("{repository}@{digest}"),
        docker_image_manifest_media_type: manifest.media_type.clone(),
        docker_image_manifest: String::from_utf8_lossy(raw_manifest).into_owned(),
        docker_image_config: String::from_utf8_lossy(config).into_owned(),
        docker_image_layers: manifest
            .layers
            .iter()
            .map(|l| ImageLayer {
                name: l.digest.clone(),
                size: l.size,
                media_type: l.media_type.clone(),
            })
            .collect(),
        ..ImageFields::default()
    };
    fields
        .set_docker_image_metadata(&metadata)
        .map_err(|e| ManifestError::MalformedConfig(e.to_string()))?;
    Ok(Image {
        metadata: image_meta(digest, true),
        spec: fields,
    })
}

/// The Image for a manifest list kept whole (PreserveOriginal): its children as
/// `dockerImageManifests`, no layers and no config; `Id` is the list digest and `Created` the
/// import time, as upstream.
pub fn list_image(
    repository: &str,
    digest: &str,
    list: &ManifestList,
    raw_manifest: &[u8],
    now: jiff::Timestamp,
) -> Result<Image, ManifestError> {
    if list.manifests.is_empty() {
        return Err(ManifestError::EmptyList);
    }
    let metadata = DockerImage {
        id: digest.to_string(),
        created: Some(Time(now)),
        ..DockerImage::default()
    };
    let mut fields = ImageFields {
        docker_image_reference: format!("{repository}@{digest}"),
        docker_image_manifest_media_type: list.media_type.clone(),
        docker_image_manifest: String::from_utf8_lossy(raw_manifest).into_owned(),
        docker_image_manifests: list
            .manifests
            .iter()
            .map(|e| {
                let platform = e.platform.clone().unwrap_or_default();
                ImageManifest {
                    digest: e.digest.clone(),
                    media_type: e.media_type.clone(),
                    manifest_size: e.size,
                    architecture: platform.architecture,
                    os: platform.os,
                    variant: platform.variant.unwrap_or_default(),
                }
            })
            .collect(),
        ..ImageFields::default()
    };
    fields
        .set_docker_image_metadata(&metadata)
        .map_err(|e| ManifestError::MalformedConfig(e.to_string()))?;
    Ok(Image {
        metadata: image_meta(digest, false),
        spec: fields,
    })
}

/// Image metadata: the object name from the digest (see [`crate::names::image`]), the exact
/// digest in an annotation, and the layer-order annotation for images with layers.
fn image_meta(digest: &str, has_layers: bool) -> ObjectMeta {
    let mut annotations = BTreeMap::new();
    annotations.insert(
        crate::names::ANNOTATION_IMAGE.to_string(),
        digest.to_string(),
    );
    if has_layers {
        annotations.insert(
            DOCKER_IMAGE_LAYERS_ORDER_ANNOTATION.to_string(),
            "ascending".to_string(),
        );
    }
    ObjectMeta {
        name: Some(crate::names::image(digest)),
        annotations: Some(annotations),
        ..ObjectMeta::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const D1: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const D2: &str = "sha256:293aa25bf219f3e47472281b7e68c09bb6f315c2adf7f86a7302b85bdaa63db3";

    fn entry(arch: &str, os: &str, variant: Option<&str>, digest: &str) -> serde_json::Value {
        let mut platform = json!({"architecture": arch, "os": os});
        if let Some(v) = variant {
            platform["variant"] = json!(v);
        }
        json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": 500, "platform": platform})
    }

    fn list(entries: Vec<serde_json::Value>) -> ManifestList {
        let bytes = serde_json::to_vec(
            &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}),
        )
        .unwrap();
        match parse(&bytes, None).unwrap() {
            Manifest::List(l) => l,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn schema1_is_reported_as_unsupported() {
        let body = br#"{"schemaVersion": 1, "name": "a/b", "tag": "latest", "fsLayers": [], "history": []}"#;
        let err = parse(body, Some(DOCKER_SCHEMA1_SIGNED)).unwrap_err();
        assert_eq!(err.reason(), "UnsupportedSchema1");
        assert!(err.to_string().contains("schema1"));
        assert!(matches!(parse(body, None), Err(ManifestError::Schema1(_))));
    }

    #[test]
    fn unknown_media_type_and_malformed_json_are_errors() {
        let body = br#"{"schemaVersion": 2, "mediaType": "application/vnd.example+json"}"#;
        assert_eq!(
            parse(body, None).unwrap_err(),
            ManifestError::UnsupportedMediaType("application/vnd.example+json".into())
        );
        assert_eq!(
            parse(b"{not json", None).unwrap_err().reason(),
            "MalformedManifest"
        );
        let no_config =
            br#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}"#;
        assert_eq!(
            parse(no_config, None).unwrap_err().reason(),
            "MalformedManifest"
        );
    }

    #[test]
    fn content_type_wins_when_the_body_has_no_media_type() {
        let body = serde_json::to_vec(
            &json!({"schemaVersion": 2, "config": {"digest": D1, "size": 2}, "layers": []}),
        )
        .unwrap();
        match parse(
            &body,
            Some("application/vnd.docker.distribution.manifest.v2+json; charset=utf-8"),
        )
        .unwrap()
        {
            Manifest::Single(m) => assert_eq!(m.media_type, DOCKER_SCHEMA2),
            other => panic!("{other:?}"),
        }
    }

    // OA importer_manifestlist_test TestImportManifestListSingleManifest: Legacy takes amd64.
    #[test]
    fn legacy_mode_picks_linux_amd64_by_default() {
        let l = list(vec![
            entry("arm64", "linux", Some("v8"), D2),
            entry("amd64", "linux", None, D1),
        ]);
        let child = select_child(&l, None, None, &Platform::default()).unwrap();
        assert_eq!(child.digest, D1);
    }

    #[test]
    fn legacy_mode_honours_preference_then_default_then_first() {
        let l = list(vec![
            entry("amd64", "linux", None, D1),
            entry("arm64", "linux", Some("v8"), D2),
        ]);
        assert_eq!(
            select_child(&l, Some("arm64"), None, &Platform::default())
                .unwrap()
                .digest,
            D2
        );
        // A preference that matches nothing falls back to the default platform.
        assert_eq!(
            select_child(&l, Some("s390x"), None, &Platform::default())
                .unwrap()
                .digest,
            D1
        );
        let arm = Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: None,
        };
        assert_eq!(select_child(&l, None, None, &arm).unwrap().digest, D2);
        let only_ppc = list(vec![entry("ppc64le", "linux", None, D2)]);
        assert_eq!(
            select_child(&only_ppc, None, None, &Platform::default())
                .unwrap()
                .digest,
            D2
        );
    }

    #[test]
    fn attestations_are_never_selected() {
        let mut attest = entry("unknown", "unknown", None, D2);
        attest["annotations"] = json!({"vnd.docker.reference.type": "attestation-manifest"});
        let l = list(vec![attest, entry("arm64", "linux", None, D1)]);
        assert_eq!(
            select_child(&l, None, None, &Platform::default())
                .unwrap()
                .digest,
            D1
        );
        let only_attest = list(vec![entry("unknown", "unknown", None, D2)]);
        assert!(select_child(&only_attest, None, None, &Platform::default()).is_none());
    }

    // OA image_test TestManifestListToImageConversion.
    #[test]
    fn list_image_mirrors_the_entries() {
        let l = list(vec![
            entry("amd64", "linux", None, D1),
            entry("arm", "linux", Some("v7"), D2),
        ]);
        let now: jiff::Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        let image = list_image("quay.io/a/b", D1, &l, b"{}", now).unwrap();
        assert_eq!(
            image.metadata.name.as_deref(),
            Some(crate::names::image(D1).as_str())
        );
        assert_eq!(
            image.spec.docker_image_reference,
            format!("quay.io/a/b@{D1}")
        );
        assert!(image.spec.docker_image_layers.is_empty());
        assert_eq!(image.spec.docker_image_manifests.len(), 2);
        assert_eq!(image.spec.docker_image_manifests[1].variant, "v7");
        assert_eq!(image.spec.docker_image_manifests[1].manifest_size, 500);
        let meta = image.spec.docker_image_metadata().unwrap().unwrap();
        assert_eq!(meta.id, D1);
        assert_eq!(meta.created.map(|t| t.0), Some(now));
    }

    // OA importer_test "successful import by tag": name = manifest digest, size = config + layers.
    #[test]
    fn single_image_takes_metadata_from_the_config() {
        let config = serde_json::to_vec(&json!({
            "architecture": "arm64", "os": "linux", "created": "2024-01-01T00:00:00Z",
            "author": "lab", "docker_version": "24.0.0",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "WorkingDir": "/app", "Labels": {"a": "b"},
                       "ExposedPorts": {"8080/tcp": {}}},
            "rootfs": {"type": "layers", "diff_ids": []}
        }))
        .unwrap();
        let manifest = SingleManifest {
            media_type: OCI_MANIFEST.into(),
            config: Descriptor {
                media_type: "application/vnd.oci.image.config.v1+json".into(),
                digest: D2.into(),
                size: 10,
                platform: None,
                annotations: BTreeMap::new(),
            },
            layers: vec![
                Descriptor {
                    media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                    digest: D1.into(),
                    size: 100,
                    platform: None,
                    annotations: BTreeMap::new(),
                },
                // The same blob twice counts once.
                Descriptor {
                    media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                    digest: D1.into(),
                    size: 100,
                    platform: None,
                    annotations: BTreeMap::new(),
                },
            ],
        };
        let image = single_image("nginx", D1, &manifest, b"{\"m\":1}", &config).unwrap();
        assert_eq!(image.spec.docker_image_reference, format!("nginx@{D1}"));
        assert_eq!(image.spec.docker_image_manifest_media_type, OCI_MANIFEST);
        assert_eq!(image.spec.docker_image_layers.len(), 2);
        assert_eq!(image.spec.docker_image_layers[0].name, D1);
        let meta = image.spec.docker_image_metadata().unwrap().unwrap();
        assert_eq!(meta.id, D2, "Id is the config digest");
        assert_eq!(meta.architecture, "arm64");
        assert_eq!(meta.author, "lab");
        assert_eq!(meta.docker_version, "24.0.0");
        assert_eq!(meta.size, config.len() as i64 + 100);
        let cfg = meta.config.unwrap();
        assert_eq!(cfg.env, vec!["PATH=/bin".to_string()]);
        assert_eq!(cfg.working_dir, "/app");
        assert_eq!(cfg.labels.get("a").map(String::as_str), Some("b"));
        assert!(cfg.exposed_ports.contains_key("8080/tcp"));
        let annotations = image.metadata.annotations.unwrap();
        assert_eq!(
            annotations
                .get(DOCKER_IMAGE_LAYERS_ORDER_ANNOTATION)
                .map(String::as_str),
            Some("ascending")
        );
        assert_eq!(
            annotations
                .get(crate::names::ANNOTATION_IMAGE)
                .map(String::as_str),
            Some(D1)
        );
    }

    #[test]
    fn malformed_config_is_an_error_not_a_panic() {
        let manifest = SingleManifest {
            media_type: DOCKER_SCHEMA2.into(),
            config: Descriptor {
                media_type: String::new(),
                digest: D2.into(),
                size: 1,
                platform: None,
                annotations: BTreeMap::new(),
            },
            layers: vec![],
        };
        let err = single_image("a/b", D1, &manifest, b"{}", b"[1,2").unwrap_err();
        assert_eq!(err.reason(), "MalformedConfig");
        let err =
            single_image("a/b", D1, &manifest, b"{}", br#"{"created": "yesterday"}"#).unwrap_err();
        assert_eq!(err.reason(), "MalformedConfig");
    }

    // A registry may claim any size; two layers near i64::MAX overflowed the sum (a panic
    // with overflow checks, a negative image size without).
    #[test]
    fn huge_layer_sizes_saturate() {
        let layer = |digest: &str| Descriptor {
            media_type: String::new(),
            digest: digest.into(),
            size: i64::MAX,
            platform: None,
            annotations: BTreeMap::new(),
        };
        let manifest = SingleManifest {
            media_type: OCI_MANIFEST.into(),
            config: layer(D2),
            layers: vec![layer(D1), layer(D2)],
        };
        let image = single_image("a/b", D1, &manifest, b"{}", b"{}").unwrap();
        let meta = image.spec.docker_image_metadata().unwrap().unwrap();
        assert_eq!(meta.size, i64::MAX);
        // u64::MAX does not fit the schema's int64: refused while parsing
        let body = format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{D1}","size":18446744073709551615}}}}"#
        );
        let err = parse(body.as_bytes(), None).unwrap_err();
        assert_eq!(err.reason(), "MalformedManifest");
        assert!(err.to_string().contains("expected i64"), "{err}");
    }

    // 100,000 terse layers fit the 4 MiB body limit, but their Image is too large for the
    // apiserver, whose refusal held back every other tag of the stream.
    #[test]
    fn too_many_layers_or_entries_are_refused() {
        let entries = |n: usize| vec![r#"{"digest":"a"}"#; n].join(",");
        let single = |n| {
            format!(
                r#"{{"mediaType":"{OCI_MANIFEST}","config":{{"digest":"c"}},"layers":[{}]}}"#,
                entries(n)
            )
        };
        assert!(parse(single(MAX_MANIFEST_ENTRIES).as_bytes(), None).is_ok());
        let body = single(100_000);
        assert!(body.len() < crate::registry::protocol::MAX_MANIFEST_BYTES);
        let err = parse(body.as_bytes(), None).unwrap_err();
        assert_eq!(err.reason(), "TooManyManifestEntries");
        assert_eq!(
            err.to_string(),
            "the manifest has 100000 layers, more than the limit of 1000"
        );
        let list = format!(
            r#"{{"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
            entries(MAX_MANIFEST_ENTRIES + 1)
        );
        assert_eq!(
            parse(list.as_bytes(), None).unwrap_err().to_string(),
            "the manifest has 1001 list entries, more than the limit of 1000"
        );
    }
}

/// The fuzz target's body (fuzz/manifest_invariants.rs) over the seed corpus and mutations of
/// it from a fixed seed, so the normal test command exercises it without cargo-fuzz.
#[cfg(test)]
mod fuzz_body {
    use super::*;
    use crate::config::Platform;

    include!("../../fuzz/manifest_invariants.rs");

    const SEEDS: [&[u8]; 6] = [
        include_bytes!("../../fuzz/corpus/manifest/seed-oci-manifest"),
        include_bytes!("../../fuzz/corpus/manifest/seed-oci-index"),
        include_bytes!("../../fuzz/corpus/manifest/seed-docker-schema2"),
        include_bytes!("../../fuzz/corpus/manifest/seed-docker-list"),
        include_bytes!("../../fuzz/corpus/manifest/seed-schema1"),
        include_bytes!("../../fuzz/corpus/manifest/seed-untyped"),
    ];

    /// Text a mutation may splice in: what hostile registries send.
    const PIECES: [&str; 14] = [
        "9223372036854775807",
        "18446744073709551615",
        "-1",
        "1e400",
        "null",
        "[]",
        "{}",
        "\"manifests\":[]",
        "\"schemaVersion\":1,",
        "\"layers\":[{\"digest\":\"a\",\"size\":9223372036854775807},{\"digest\":\"b\",\"size\":9223372036854775807}],",
        "\"platform\":{\"architecture\":\"unknown\",\"os\":\"unknown\"},",
        "\"annotations\":{\"vnd.docker.reference.type\":\"x\"},",
        "\u{ff}",
        "\"",
    ];

    fn splitmix(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    #[test]
    fn seeds_parse_as_what_they_are() {
        let kinds: Vec<_> = SEEDS
            .iter()
            .map(|s| {
                check_manifest_invariants(s);
                let body = &s[1..s.iter().position(|b| *b == 0xff).unwrap_or(s.len())];
                let ct = FUZZ_CONTENT_TYPES[usize::from(s[0]) % FUZZ_CONTENT_TYPES.len()];
                match parse(body, ct) {
                    Ok(Manifest::Single(m)) => m.media_type,
                    Ok(Manifest::List(l)) => l.media_type,
                    Err(e) => e.reason().to_string(),
                }
            })
            .collect();
        assert_eq!(
            kinds,
            [
                OCI_MANIFEST,
                OCI_INDEX,
                DOCKER_SCHEMA2,
                DOCKER_LIST,
                "UnsupportedSchema1",
                OCI_MANIFEST
            ]
        );
    }

    #[test]
    fn hostile_manifests_keep_all_invariants() {
        let layers = |n: usize, size: &str| {
            let layer = format!(r#"{{"digest":"sha256:{{}}","size":{size}}}"#);
            (0..n)
                .map(|i| layer.replace("{}", &format!("{i:064x}")))
                .collect::<Vec<_>>()
                .join(",")
        };
        let single = |layers: String| {
            format!(
                r#"1{{"mediaType":"{OCI_MANIFEST}","config":{{"digest":"sha256:c","size":9223372036854775807}},"layers":[{layers}]}}"#
            )
        };
        let mut nested = String::from(r#"{"digest":"sha256:x"}"#);
        for _ in 0..50 {
            nested =
                format!(r#"{{"mediaType":"{OCI_INDEX}","manifests":[{nested}],"digest":"d"}}"#);
        }
        let inputs = [
            single(layers(3, "9223372036854775807")),
            single(layers(3, "-9223372036854775808")),
            single(layers(2, "18446744073709551615")),
            single(layers(10_000, "1")),
            format!("2{nested}"),
            format!("0{}", "[".repeat(10_000)),
            r#"4{"manifests":null}"#.to_string(),
            r#"2{"manifests":[]}"#.to_string(),
        ];
        for input in &inputs {
            check_manifest_invariants(input.as_bytes());
        }
    }

    #[test]
    fn mutated_seeds_keep_all_invariants() {
        const INPUTS: usize = 20_000;
        let mut state: u64 = 0x5eed_0f4a_11f3_5700;
        let mut parsed = 0usize;
        for _ in 0..INPUTS {
            let seed = SEEDS[usize::try_from(splitmix(&mut state) % 6).unwrap_or(0)];
            let mut input = seed.to_vec();
            for _ in 0..1 + splitmix(&mut state) % 4 {
                let at =
                    usize::try_from(splitmix(&mut state) % (input.len() as u64 + 1)).unwrap_or(0);
                match splitmix(&mut state) % 4 {
                    0 if at < input.len() => {
                        input[at] = u8::try_from(splitmix(&mut state) % 256).unwrap_or(0);
                    }
                    1 if at < input.len() => {
                        let end = (at + 1 + (splitmix(&mut state) % 16) as usize).min(input.len());
                        input.drain(at..end);
                    }
                    _ => {
                        let piece = PIECES[(splitmix(&mut state) % PIECES.len() as u64) as usize];
                        input.splice(at..at, piece.bytes());
                    }
                }
            }
            check_manifest_invariants(&input);
            let body = &input[1.min(input.len())..];
            let body = &body[..body.iter().position(|b| *b == 0xff).unwrap_or(body.len())];
            parsed += usize::from(parse(body, None).is_ok());
        }
        // the mutations must reach both sides
        assert!(
            parsed > INPUTS / 20 && parsed < INPUTS * 19 / 20,
            "{parsed} of {INPUTS} parsed"
        );
    }
}
