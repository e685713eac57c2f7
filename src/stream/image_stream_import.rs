//! ImageStreamImport requests decided without IO (semantics 5.2 to 5.6): what to fetch, the
//! request's status, and, for `import: true`, the Images to create and the stream's next
//! spec and status.
//!
//! An applied import is the one place the operator writes a stream's spec (design.md
//! section 4, rule 5), in two writes: the spec first, then the status. A tag that changed
//! is sent with S = G + 1, the generation the apiserver gives the next spec (the mutating
//! webhook assigns the same number, or keeps the stored S for a tag it does not count as
//! changed). The status is then decided from the stream *as the spec write stored it*: each
//! event records E = that stored S (a condition C = S). So S never runs ahead of what was
//! observed and the imagestream controller does not import the tag again. Upstream resets S
//! to 0 in the same write instead and records E = G + 1; the generations differ, the history
//! does not.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::api::image::Image;
use crate::api::image_stream::{
    ImageStream, ImageStreamSpec, ImageStreamStatus, KIND_DOCKER_IMAGE, ObjectReference,
    TagImportPolicy, TagReference, TagReferencePolicy, TagReferencePolicyType,
};
use crate::api::image_stream_import::{
    ImageImportStatus, ImageStreamImport, ImageStreamImportStatus, LocalObjectReference,
    MetaStatus, RepositoryImportStatus, STATUS_FAILURE, STATUS_SUCCESS,
};
use crate::import::contract::{
    Batch, BatchResult, Failure, ImageImport, ImageResult, Mode, PullSpec, RepositoryImport,
};
use crate::reference::DockerImageReference;

use super::history::{latest, set_failure_condition};
use super::limits::REASON_LIMIT_EXCEEDED;
use super::sync::{Repositories, StatusUpdate, TagChange, import_mode, preference};

/// What the request asks the registry for. Platform preferences come from the stream's spec
/// tag named by `to` (or by the source tag), as upstream.
pub fn batch(isi: &ImageStreamImport, stream: Option<&ImageStream>, default_mode: Mode) -> Batch {
    let spec_tag = |name: &str| stream.and_then(|s| s.spec.tag(name));
    let images = isi
        .spec
        .images
        .iter()
        .map(|image| {
            let from = PullSpec::new(image.from.name.clone());
            let target = image
                .to
                .as_ref()
                .map(|t| t.name.clone())
                .unwrap_or_else(|| tag_of(from.parsed().ok()));
            ImageImport {
                from,
                mode: import_mode(image.import_policy.import_mode, default_mode),
                insecure: image.import_policy.insecure,
                prefer: spec_tag(&target).map(preference).unwrap_or_default(),
                current_image: None,
                verify_current: false,
            }
        })
        .collect();
    let repository = isi.spec.repository.as_ref().map(|r| RepositoryImport {
        from: r.from.name.clone(),
        mode: import_mode(r.import_policy.import_mode, default_mode),
        insecure: r.import_policy.insecure,
        prefer: stream
            .iter()
            .flat_map(|s| &s.spec.tags)
            .map(|t| (t.name.clone(), preference(t)))
            .collect(),
        current: BTreeMap::new(),
    });
    Batch { images, repository }
}

/// Upstream's defaulting of a request (`SetDefaults_ImageImportSpec`): an image without `to`
/// goes to the tag its pull spec names, when it names one (`quay.io/a/b:v2` → `v2`; `quay.io/a/b`
/// and digests stay without). Returns whether anything changed.
pub fn default_targets(isi: &mut ImageStreamImport) -> bool {
    let mut changed = false;
    for image in isi.spec.images.iter_mut().filter(|i| i.to.is_none()) {
        if let Ok(reference) = DockerImageReference::parse(&image.from.name)
            && !reference.tag.is_empty()
        {
            image.to = Some(LocalObjectReference {
                name: reference.tag,
            });
            changed = true;
        }
    }
    changed
}

/// Whether a preview asks for manifest and config JSON. Those are not kept on stored Images,
/// so such a request fetches every image, also those already in the cluster (an applied import
/// returns none, as upstream).
pub fn wants_manifests(isi: &ImageStreamImport) -> bool {
    !isi.spec.import
        && (isi.spec.images.iter().any(|i| i.include_manifest)
            || isi
                .spec
                .repository
                .as_ref()
                .is_some_and(|r| r.include_manifest))
}

/// The tag a pull spec names (`latest` when it names none), empty for a digest.
fn source_tag(from: &str) -> String {
    tag_of(DockerImageReference::parse(from).ok().as_ref())
}

/// [`source_tag`] of a parsed pull spec (`None`: it does not parse).
fn tag_of(parsed: Option<&DockerImageReference>) -> String {
    match parsed {
        Some(r) if !r.id.is_empty() => String::new(),
        Some(r) if !r.tag.is_empty() => r.tag.clone(),
        _ => "latest".to_string(),
    }
}

/// The request's status (semantics 5.3, 5.6): one entry per image, the repository's
/// outcome, and the Images found. `image` looks Images up by digest (the ones this import
/// fetched are in the result; the others already exist). Manifest and config JSON are kept
/// only for a preview that asked for them (5.2 step 9; an applied import stores Images
/// without them, so it returns none either, as upstream).
pub fn import_status<F: Fn(&str) -> Option<Image> + ?Sized>(
    isi: &ImageStreamImport,
    result: &BatchResult,
    image: &F,
) -> ImageStreamImportStatus {
    let keep = |include: bool| include && !isi.spec.import;
    let lookup = |digest: &str| {
        result
            .new_images
            .get(digest)
            .cloned()
            .or_else(|| image(digest))
    };
    let images = isi
        .spec
        .images
        .iter()
        .zip(&result.images)
        .map(|(spec, r)| {
            let tag = match r {
                Ok(imported) => imported.tag.clone(),
                Err(_) => source_tag(&spec.from.name),
            };
            entry(r, tag, keep(spec.include_manifest), &lookup)
        })
        .collect();
    let repository = isi.spec.repository.as_ref().and_then(|spec| {
        let listed = result.repository.as_ref()?;
        let status = match listed.failure() {
            None => success(),
            Some(f) => failure(&f),
        };
        let images = match &listed.images {
            Ok(images) => listed
                .tags
                .iter()
                .zip(images)
                .map(|(tag, r)| entry(r, tag.clone(), keep(spec.include_manifest), &lookup))
                .collect(),
            Err(_) => Vec::new(),
        };
        Some(RepositoryImportStatus {
            status,
            images,
            additional_tags: listed.additional_tags.clone(),
        })
    });
    ImageStreamImportStatus {
        import: None,
        repository,
        images,
    }
}

/// Largest answer kept with its request: etcd refuses objects over 1.5 MiB, and the request
/// holds its spec too (OpenShift stores no request, so it has no such limit).
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Shrinks an answer too large to store with its request, least useful parts first: the
/// children of manifest lists (`manifests`), then each Image's layers and metadata, then
/// `status.import`. Statuses and tags always stay. Returns whether anything was dropped.
pub fn fit_answer(status: &mut ImageStreamImportStatus, max_bytes: usize) -> bool {
    let size = |s: &ImageStreamImportStatus| serde_json::to_vec(s).map_or(0, |v| v.len());
    if size(status) <= max_bytes {
        return false;
    }
    for entry in entries(status) {
        entry.manifests.clear();
    }
    if size(status) > max_bytes {
        for entry in entries(status) {
            if let Some(image) = entry.image.as_mut() {
                image.spec.docker_image_layers.clear();
                image.spec.docker_image_metadata = None;
            }
        }
    }
    if size(status) > max_bytes {
        status.import = None;
    }
    true
}

/// Every entry of an answer: the images, then the repository's.
fn entries(status: &mut ImageStreamImportStatus) -> impl Iterator<Item = &mut ImageImportStatus> {
    let repository = status
        .repository
        .iter_mut()
        .flat_map(|r| r.images.iter_mut());
    status.images.iter_mut().chain(repository)
}

fn success() -> MetaStatus {
    MetaStatus {
        status: STATUS_SUCCESS.into(),
        ..MetaStatus::default()
    }
}

fn failure(f: &Failure) -> MetaStatus {
    MetaStatus {
        status: STATUS_FAILURE.into(),
        reason: f.reason.into(),
        message: f.message.clone(),
        code: i32::from(f.code),
        ..MetaStatus::default()
    }
}

fn entry(
    result: &ImageResult,
    tag: String,
    include_manifest: bool,
    lookup: &impl Fn(&str) -> Option<Image>,
) -> ImageImportStatus {
    let imported = match result {
        Ok(imported) => imported,
        Err(f) => {
            return ImageImportStatus {
                status: failure(f),
                tag,
                ..ImageImportStatus::default()
            };
        }
    };
    let repository = imported
        .reference
        .split_once('@')
        .map_or(imported.reference.as_str(), |(r, _)| r);
    let shown = |digest: &str, reference: String| {
        lookup(digest).map(|image| answered_image(image, digest, reference, include_manifest))
    };
    let image = shown(&imported.image, imported.reference.clone());
    let manifests = image
        .iter()
        .flat_map(|i| &i.spec.docker_image_manifests)
        .filter_map(|m| shown(&m.digest, format!("{repository}@{}", m.digest)))
        .collect();
    ImageImportStatus {
        status: success(),
        image,
        tag,
        manifests,
    }
}

/// An Image as an answer embeds it: named by its digest as upstream names Images
/// (`sha256:<hex>`, not the object name), without the stored object's server fields, pulled
/// by `reference`, with manifest and config JSON only when asked for.
fn answered_image(image: Image, digest: &str, reference: String, include_manifest: bool) -> Image {
    let Image { metadata, mut spec } = image;
    spec.docker_image_reference = reference;
    if !include_manifest {
        spec.docker_image_manifest.clear();
        spec.docker_image_config.clear();
    }
    Image {
        metadata: ObjectMeta {
            name: Some(digest.to_string()),
            creation_timestamp: metadata.creation_timestamp,
            labels: metadata.labels.filter(|l| !l.is_empty()),
            // the digest is the name now: the object-name bookkeeping is not upstream's
            annotations: metadata
                .annotations
                .map(|mut a| {
                    a.remove(crate::names::ANNOTATION_IMAGE);
                    a
                })
                .filter(|a| !a.is_empty()),
            ..ObjectMeta::default()
        },
        spec,
    }
}

/// One result to apply to a tag of the stream.
#[derive(Clone, Debug)]
pub struct Applied {
    pub tag: String,
    /// The pull spec as the request wrote it (`<repository>:<tag>` for repository tags).
    pub from: String,
    pub import_policy: TagImportPolicy,
    pub reference_policy: TagReferencePolicy,
    /// A tag of `spec.repository`: a failure only records its condition (5.4).
    pub from_repository: bool,
    pub result: ImageResult,
}

/// The results an `import: true` request applies, in upstream's order: the repository's
/// tags, then the images with a `to` (an image without one is skipped, 5.4).
pub fn applied(isi: &ImageStreamImport, result: &BatchResult) -> Vec<Applied> {
    let mut out = Vec::new();
    if let (Some(spec), Some(listed)) = (&isi.spec.repository, &result.repository)
        && let Ok(images) = &listed.images
    {
        for (tag, r) in listed.tags.iter().zip(images) {
            out.push(Applied {
                tag: tag.clone(),
                from: format!("{}:{tag}", spec.from.name),
                import_policy: spec.import_policy,
                reference_policy: spec.reference_policy,
                from_repository: true,
                result: r.clone(),
            });
        }
    }
    for (spec, r) in isi.spec.images.iter().zip(&result.images) {
        let Some(to) = spec.to.as_ref().filter(|t| !t.name.is_empty()) else {
            continue;
        };
        out.push(Applied {
            tag: to.name.clone(),
            from: spec.from.name.clone(),
            import_policy: spec.import_policy,
            reference_policy: spec.reference_policy,
            from_repository: false,
            result: r.clone(),
        });
    }
    out
}

/// The Images an applied import creates (5.4 step 4, conformance 10.3 case 48): the ones
/// this import fetched that an applied success names, each list's children before the list,
/// each Image once. Images of entries without `to` and of previews are not created, as
/// upstream; Images that already existed are not in the result.
pub fn images_to_create<'a>(result: &'a BatchResult, applied: &[Applied]) -> Vec<&'a Image> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for a in applied {
        let Ok(imported) = &a.result else { continue };
        let Some(image) = result.new_images.get(&imported.image) else {
            continue;
        };
        let children = image
            .spec
            .docker_image_manifests
            .iter()
            .filter_map(|m| result.new_images.get_key_value(&m.digest));
        for (digest, image) in children.chain(result.new_images.get_key_value(&imported.image)) {
            if seen.insert(digest.as_str()) {
                out.push(image);
            }
        }
    }
    out
}

/// The stream's next spec for an applied import (semantics 5.4): a tag whose import
/// succeeded is rewritten when it "changed" (new, no history, no generation, another image
/// or pull spec, or S ahead of items[0]) with the request's pull spec and import policy, and
/// the request's reference policy only when the tag has none; an unchanged one takes the
/// request's import policy. A failed image creates its tag when missing (an existing tag is
/// left alone); a failed repository tag changes no spec. `stream` is `None` when the stream
/// does not exist yet.
pub fn next_spec(stream: Option<&ImageStream>, applied: &[Applied]) -> ImageStreamSpec {
    let mut spec = stream.map(|s| s.spec.clone()).unwrap_or_default();
    let status = stream.and_then(|s| s.status.as_ref());
    // the generation the next spec gets: 1 on create, G + 1 when it differs
    let next = stream.map_or(1, |s| s.metadata.generation.unwrap_or(0) + 1);
    for a in applied {
        let existing = spec.tags.iter().position(|t| t.name == a.tag);
        match (&a.result, existing) {
            (Err(_), _) if a.from_repository => {}
            (Err(_), Some(_)) => {}
            (Err(_), None) => {
                let mut tag = TagReference {
                    name: a.tag.clone(),
                    ..TagReference::default()
                };
                reset(&mut tag, a, next);
                spec.tags.push(tag);
            }
            (Ok(imported), Some(index)) => {
                let tag = &mut spec.tags[index];
                let changed = status.and_then(|s| latest(s, &a.tag)).is_none_or(|e| {
                    e.docker_image_reference != imported.reference
                        || e.image != imported.image
                        || tag.generation.is_none_or(|s| s > e.generation)
                });
                if changed {
                    reset(tag, a, next);
                }
                tag.import_policy = a.import_policy;
            }
            (Ok(_), None) => {
                let mut tag = TagReference {
                    name: a.tag.clone(),
                    ..TagReference::default()
                };
                reset(&mut tag, a, next);
                spec.tags.push(tag);
            }
        }
    }
    spec.tags.sort_by(|a, b| a.name.cmp(&b.name));
    spec
}

/// Upstream's `ensureSpecTag` with reset: the request's pull spec and import policy, S for
/// the next generation, and the request's reference policy unless the tag has one.
fn reset(tag: &mut TagReference, a: &Applied, next: i64) {
    tag.from = Some(ObjectReference {
        kind: KIND_DOCKER_IMAGE.into(),
        name: a.from.clone(),
        ..ObjectReference::default()
    });
    tag.generation = Some(next);
    tag.import_policy = a.import_policy;
    if tag.reference_policy.type_ == TagReferencePolicyType::Unset {
        tag.reference_policy = a.reference_policy;
    }
}

/// The stream's next status once its spec was written (`stream` as stored): each applied
/// result with E (or C) = the tag's stored S (the stream's G for a tag without one, a
/// failed repository tag), then the tags that follow them. `None` when nothing changed.
pub fn next_status(
    stream: &ImageStream,
    applied: &[Applied],
    repositories: &Repositories,
    max_tag_history: Option<usize>,
    now: Time,
) -> (Option<ImageStreamStatus>, Vec<TagChange>) {
    let mut update = StatusUpdate::new(stream, repositories, now);
    for a in applied {
        update.apply_import(&a.tag, generation_of(stream, &a.tag), &a.result);
    }
    update.update_tracking();
    update.cap_history(max_tag_history);
    update.finish()
}

fn generation_of(stream: &ImageStream, tag: &str) -> i64 {
    stream
        .spec
        .tag(tag)
        .and_then(|t| t.generation)
        .unwrap_or_else(|| stream.metadata.generation.unwrap_or(0))
}

/// What is recorded when a LimitRange refuses the spec write (semantics 4, upstream's
/// `recordLimitExceededStatus`): the stored status with a `LimitExceeded` condition carrying
/// the refusal on every applied tag the stream has no status for yet. `None` when that
/// changes nothing.
pub fn limit_refused_status(
    stream: &ImageStream,
    applied: &[Applied],
    message: &str,
    now: Time,
) -> Option<ImageStreamStatus> {
    let stored = stream.status.clone().unwrap_or_default();
    let mut status = stored.clone();
    for a in applied {
        if stored.tag(&a.tag).is_none() {
            let generation = generation_of(stream, &a.tag);
            set_failure_condition(
                &mut status,
                &a.tag,
                REASON_LIMIT_EXCEEDED,
                message,
                generation,
                now.clone(),
            );
        }
    }
    (status != stored).then_some(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::image_stream::{IMPORTER_PREFER_ARCH_ANNOTATION, NamedTagEventList, TagEvent};
    use crate::api::image_stream_import::{
        ImageImportSpec, ImageStreamImportSpec, LocalObjectReference, RepositoryImportSpec,
    };
    use crate::import::contract::{Imported, Preference, RepositoryResult};
    use kube::api::ObjectMeta;

    const D1: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const D2: &str = "sha256:293aa25bf219f3e47472281b7e68c09bb6f315c2adf7f86a7302b85bdaa63db3";

    fn now() -> Time {
        Time("2026-11-22T10:00:00Z".parse().unwrap())
    }

    fn request(import: bool, images: Vec<(&str, Option<&str>)>) -> ImageStreamImport {
        ImageStreamImport {
            metadata: ObjectMeta {
                name: Some("app".into()),
                namespace: Some("ns".into()),
                ..ObjectMeta::default()
            },
            spec: ImageStreamImportSpec {
                import,
                repository: None,
                images: images
                    .into_iter()
                    .map(|(from, to)| ImageImportSpec {
                        from: ObjectReference {
                            kind: KIND_DOCKER_IMAGE.into(),
                            name: from.into(),
                            ..ObjectReference::default()
                        },
                        to: to.map(|t| LocalObjectReference { name: t.into() }),
                        reference_policy: TagReferencePolicy {
                            type_: TagReferencePolicyType::Local,
                        },
                        ..ImageImportSpec::default()
                    })
                    .collect(),
            },
            status: None,
        }
    }

    fn ok(reference: &str, image: &str, tag: &str) -> ImageResult {
        Ok(Imported {
            tag: tag.into(),
            image: image.into(),
            reference: format!("{reference}@{image}"),
            unchanged: false,
        })
    }

    fn image(digest: &str, manifests: &[&str]) -> Image {
        let mut i = Image::default();
        i.metadata.name = Some(crate::names::image(digest));
        i.spec.docker_image_reference = format!("elsewhere@{digest}");
        i.spec.docker_image_manifest = "{}".into();
        i.spec.docker_image_manifests = manifests
            .iter()
            .map(|d| crate::api::image::ImageManifest {
                digest: (*d).into(),
                ..Default::default()
            })
            .collect();
        i
    }

    fn stream(tags: Vec<TagReference>, status: Vec<(&str, TagEvent)>, g: i64) -> ImageStream {
        let mut s = ImageStream::default();
        s.metadata.name = Some("app".into());
        s.metadata.namespace = Some("ns".into());
        s.metadata.generation = Some(g);
        s.spec.tags = tags;
        s.status = Some(ImageStreamStatus {
            tags: status
                .into_iter()
                .map(|(tag, e)| NamedTagEventList {
                    tag: tag.into(),
                    items: vec![e],
                    conditions: vec![],
                })
                .collect(),
            ..ImageStreamStatus::default()
        });
        s
    }

    fn docker_tag(name: &str, from: &str, s: i64, policy: TagReferencePolicyType) -> TagReference {
        TagReference {
            name: name.into(),
            from: Some(ObjectReference {
                kind: KIND_DOCKER_IMAGE.into(),
                name: from.into(),
                ..ObjectReference::default()
            }),
            generation: Some(s),
            reference_policy: TagReferencePolicy { type_: policy },
            ..TagReference::default()
        }
    }

    fn event(reference: &str, image: &str, generation: i64) -> TagEvent {
        TagEvent {
            created: Time("2026-11-01T00:00:00Z".parse().unwrap()),
            docker_image_reference: reference.into(),
            image: image.into(),
            generation,
        }
    }

    fn result(images: Vec<ImageResult>) -> BatchResult {
        BatchResult {
            images,
            ..BatchResult::default()
        }
    }

    /// Writes the spec as the apiserver would (generation + 1 when it differs) and applies.
    fn apply(
        isi: &ImageStreamImport,
        s: Option<&ImageStream>,
        r: &BatchResult,
    ) -> (ImageStream, Option<ImageStreamStatus>) {
        let applied = applied(isi, r);
        let spec = next_spec(s, &applied);
        let mut stored = s.cloned().unwrap_or_else(|| {
            let mut n = ImageStream::default();
            n.metadata.name = Some("app".into());
            n.metadata.namespace = Some("ns".into());
            n
        });
        if s.is_none_or(|s| s.spec != spec) {
            stored.metadata.generation = Some(stored.metadata.generation.unwrap_or(0) + 1);
        }
        stored.spec = spec;
        let (status, _) = next_status(&stored, &applied, &Repositories::default(), None, now());
        (stored, status)
    }

    // 10.3 case 44 (TestImportSuccessful "reference differs"): a new image is prepended with
    // E = the new S; the tag's Source policy is kept.
    #[test]
    fn test_import_successful_reference_differs() {
        let s = stream(
            vec![docker_tag(
                "tag",
                "registry.com/namespace/image:tag",
                1,
                TagReferencePolicyType::Source,
            )],
            vec![(
                "tag",
                event(&format!("registry.com/namespace/image@{D2}"), D2, 1),
            )],
            1,
        );
        let isi = request(
            true,
            vec![("registry.com/namespace/image:tag", Some("tag"))],
        );
        let r = result(vec![ok("registry.com/namespace/image", D1, "tag")]);
        let (stored, status) = apply(&isi, Some(&s), &r);
        let tag = stored.spec.tag("tag").unwrap();
        assert_eq!(tag.generation, Some(2));
        assert_eq!(tag.reference_policy.type_, TagReferencePolicyType::Source);
        let status = status.unwrap();
        let items = &status.tag("tag").unwrap().items;
        assert_eq!(items.len(), 2);
        assert_eq!(
            (items[0].image.as_str(), items[0].generation),
            (D1, 2),
            "E = S"
        );
        assert_eq!(
            items[0].docker_image_reference,
            format!("registry.com/namespace/image@{D1}")
        );
    }

    // 10.3 case 45 ("image differs"): items[0] names another image; the tag had no
    // reference policy, so it takes the request's (Local).
    #[test]
    fn test_import_successful_image_differs() {
        let s = stream(
            vec![docker_tag(
                "tag",
                "registry.com/namespace/image:othertag",
                1,
                TagReferencePolicyType::Unset,
            )],
            vec![(
                "tag",
                event("registry.com/namespace/image:othertag", "non-image", 1),
            )],
            1,
        );
        let isi = request(
            true,
            vec![("registry.com/namespace/image:tag", Some("tag"))],
        );
        let r = result(vec![ok("registry.com/namespace/image", D1, "tag")]);
        let (stored, status) = apply(&isi, Some(&s), &r);
        let tag = stored.spec.tag("tag").unwrap();
        assert_eq!(tag.reference_policy.type_, TagReferencePolicyType::Local);
        assert_eq!(
            tag.from.as_ref().unwrap().name,
            "registry.com/namespace/image:tag"
        );
        assert_eq!(status.unwrap().tag("tag").unwrap().items.len(), 2);
    }

    // 10.3 case 46 ("empty status"): an event is created; an existing Source policy stays.
    #[test]
    fn test_import_successful_empty_status() {
        let s = stream(
            vec![docker_tag(
                "tag",
                "registry.com/namespace/image:tag",
                1,
                TagReferencePolicyType::Source,
            )],
            vec![],
            1,
        );
        let isi = request(
            true,
            vec![("registry.com/namespace/image:tag", Some("tag"))],
        );
        let r = result(vec![ok("registry.com/namespace/image", D1, "tag")]);
        let (stored, status) = apply(&isi, Some(&s), &r);
        assert_eq!(
            stored.spec.tag("tag").unwrap().reference_policy.type_,
            TagReferencePolicyType::Source
        );
        let status = status.unwrap();
        let items = &status.tag("tag").unwrap().items;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].image, D1);
    }

    // 10.3 case 47 ("only generation differ"): S ahead of items[0] with the same image
    // collapses into items[0] with E = S; `created` is kept, no new item.
    #[test]
    fn test_import_successful_only_generation_differ() {
        let reference = format!("registry.com/namespace/image@{D1}");
        let s = stream(
            vec![docker_tag(
                "tag",
                "registry.com/namespace/image:tag",
                2,
                TagReferencePolicyType::Source,
            )],
            vec![("tag", event(&reference, D1, 1))],
            2,
        );
        let isi = request(
            true,
            vec![("registry.com/namespace/image:tag", Some("tag"))],
        );
        let r = result(vec![ok("registry.com/namespace/image", D1, "tag")]);
        let (stored, status) = apply(&isi, Some(&s), &r);
        let items = status.unwrap().tag("tag").unwrap().items.clone();
        assert_eq!(items.len(), 1);
        assert_eq!(
            Some(items[0].generation),
            stored.spec.tag("tag").unwrap().generation
        );
        assert_eq!(items[0].created, event(&reference, D1, 1).created);
    }

    // Applying the same image again changes nothing: no spec change, no status write.
    #[test]
    fn the_same_image_again_writes_nothing() {
        let s = stream(
            vec![docker_tag(
                "tag",
                "registry.com/namespace/image:tag",
                1,
                TagReferencePolicyType::Source,
            )],
            vec![(
                "tag",
                event(&format!("registry.com/namespace/image@{D1}"), D1, 1),
            )],
            1,
        );
        let isi = request(
            true,
            vec![("registry.com/namespace/image:tag", Some("tag"))],
        );
        let r = result(vec![ok("registry.com/namespace/image", D1, "tag")]);
        let applied = applied(&isi, &r);
        assert_eq!(next_spec(Some(&s), &applied), s.spec);
        let (status, changes) = next_status(&s, &applied, &Repositories::default(), None, now());
        assert_eq!((status, changes), (None, vec![]));
    }

    // Semantics 5.2 step 4 and 5.4: applied to a missing stream, the stream is created with
    // spec tags for `to` (S = 1 = E); an image without `to` is not applied; a failure creates
    // its tag and records the condition with C = S.
    #[test]
    fn applied_to_a_missing_stream_creates_it() {
        let isi = request(
            true,
            vec![
                ("quay.io/a/b:v1", Some("v1")),
                ("quay.io/a/b:v2", None),
                ("quay.io/a/b:gone", Some("gone")),
            ],
        );
        let r = result(vec![
            ok("quay.io/a/b", D1, "v1"),
            ok("quay.io/a/b", D2, "v2"),
            Err(Failure {
                reason: "NotFound",
                code: 404,
                message: "no such tag".into(),
            }),
        ]);
        let (stored, status) = apply(&isi, None, &r);
        let names: Vec<&str> = stored.spec.tags.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["gone", "v1"]);
        assert_eq!(stored.spec.tag("v1").unwrap().generation, Some(1));
        let status = status.unwrap();
        assert_eq!(status.tag("v1").unwrap().items[0].generation, 1);
        assert!(status.tag("v2").is_none());
        let c = &status.tag("gone").unwrap().conditions[0];
        assert_eq!((c.reason.as_str(), c.generation), ("NotFound", 1));
    }

    // 10.3 case 48 and 5.7 (TestImportSuccessfulWithSubmanifests): the status shows the list
    // Image and its children, each with the request's repository, without manifest JSON
    // unless a preview asked for it.
    #[test]
    fn test_import_successful_with_submanifests_status() {
        let mut isi = request(false, vec![("quay.io/a/b:multi", Some("multi"))]);
        let list = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        let mut r = result(vec![ok("quay.io/a/b", list, "multi")]);
        r.new_images
            .insert(list.to_string(), image(list, &[D1, D2]));
        r.new_images.insert(D1.to_string(), image(D1, &[]));
        let known = |d: &str| (d == D2).then(|| image(D2, &[]));
        let status = import_status(&isi, &r, &known);
        let entry = &status.images[0];
        assert_eq!(entry.status.status, STATUS_SUCCESS);
        assert_eq!(entry.tag, "multi");
        let shown = entry.image.as_ref().unwrap();
        assert_eq!(
            shown.spec.docker_image_reference,
            format!("quay.io/a/b@{list}")
        );
        assert!(shown.spec.docker_image_manifest.is_empty());
        let children: Vec<&str> = entry
            .manifests
            .iter()
            .map(|m| m.spec.docker_image_reference.as_str())
            .collect();
        assert_eq!(
            children,
            [format!("quay.io/a/b@{D1}"), format!("quay.io/a/b@{D2}")]
        );

        isi.spec.images[0].include_manifest = true;
        let status = import_status(&isi, &r, &known);
        assert_eq!(
            status.images[0]
                .image
                .as_ref()
                .unwrap()
                .spec
                .docker_image_manifest,
            "{}"
        );
        isi.spec.import = true;
        let status = import_status(&isi, &r, &known);
        assert!(
            status.images[0]
                .image
                .as_ref()
                .unwrap()
                .spec
                .docker_image_manifest
                .is_empty(),
            "applied imports return no manifests (upstream quirk)"
        );
    }

    // 5.3 and 5.9: failures carry reason, message and code, and the tag the pull spec names.
    #[test]
    fn failures_in_the_status() {
        let isi = request(
            false,
            vec![("quay.io/a/b", None), (&format!("x@{D1}"), None)],
        );
        let gone = Failure {
            reason: "NotFound",
            code: 404,
            message: "gone".into(),
        };
        let r = result(vec![Err(gone.clone()), Err(gone)]);
        let status = import_status(&isi, &r, &|_: &str| None);
        let first = &status.images[0];
        assert_eq!(
            (
                first.status.status.as_str(),
                first.status.reason.as_str(),
                first.status.code,
                first.tag.as_str()
            ),
            (STATUS_FAILURE, "NotFound", 404, "latest")
        );
        assert_eq!(status.images[1].tag, "", "a digest names no tag");
    }

    // 5.6: a repository import's status and what it applies (`<repo>:<tag>`).
    #[test]
    fn repository_import_status_and_application() {
        let mut isi = request(true, vec![]);
        isi.spec.repository = Some(RepositoryImportSpec {
            from: ObjectReference {
                kind: KIND_DOCKER_IMAGE.into(),
                name: "quay.io/a/b".into(),
                ..ObjectReference::default()
            },
            ..RepositoryImportSpec::default()
        });
        let mut r = result(vec![]);
        r.repository = Some(RepositoryResult {
            images: Ok(vec![
                ok("quay.io/a/b", D1, "latest"),
                Err(Failure {
                    reason: "NotFound",
                    code: 404,
                    message: "gone".into(),
                }),
            ]),
            tags: vec!["latest".into(), "v1".into()],
            additional_tags: vec!["v2".into()],
        });
        let status = import_status(&isi, &r, &|_: &str| None);
        let repo = status.repository.unwrap();
        assert_eq!(repo.status.reason, "ImportFailed");
        assert_eq!(repo.additional_tags, ["v2"]);
        assert_eq!(repo.images[1].tag, "v1");
        let applied = applied(&isi, &r);
        assert_eq!(applied[0].from, "quay.io/a/b:latest");
        let (stored, status) = apply(&isi, None, &r);
        let names: Vec<&str> = stored.spec.tags.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["latest"],
            "a failed repository tag gets no spec tag"
        );
        let status = status.unwrap();
        assert_eq!(status.tag("latest").unwrap().items[0].image, D1);
        let c = &status.tag("v1").unwrap().conditions[0];
        assert_eq!((c.reason.as_str(), c.generation), ("NotFound", 1), "C = G");
    }

    // 10.3 case 48 (TestImportSuccessfulWithSubmanifests): a PreserveOriginal list with two
    // children is three creates, children first; the same image applied twice in one request
    // is created once; an image without `to` is not created.
    #[test]
    fn test_import_successful_with_submanifests() {
        let list = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        let other = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
        let isi = request(
            true,
            vec![
                ("quay.io/a/b:multi", Some("multi")),
                ("quay.io/a/b:multi", Some("again")),
                ("quay.io/a/b:other", None),
            ],
        );
        let mut r = result(vec![
            ok("quay.io/a/b", list, "multi"),
            ok("quay.io/a/b", list, "multi"),
            ok("quay.io/a/b", other, "other"),
        ]);
        // the list sorts before its children by digest: the order comes from the list
        r.new_images = BTreeMap::from([
            (list.to_string(), image(list, &[D2, D1])),
            (D1.to_string(), image(D1, &[])),
            (D2.to_string(), image(D2, &[])),
            (other.to_string(), image(other, &[])),
        ]);
        let applied = applied(&isi, &r);
        let created: Vec<&str> = images_to_create(&r, &applied)
            .iter()
            .filter_map(|i| i.metadata.name.as_deref())
            .collect();
        let names = [D2, D1, list].map(crate::names::image);
        assert_eq!(
            created,
            names.iter().map(String::as_str).collect::<Vec<_>>()
        );

        // a child that already existed is not in the result and not created again
        r.new_images.remove(D1);
        assert_eq!(images_to_create(&r, &applied).len(), 2);
    }

    // 10.3 case 49 (TestCreateImages) and semantics 4: a failed image for a missing tag
    // creates the spec tag from the request and records the condition with C = S, and
    // creates no Image.
    #[test]
    fn test_create_images() {
        let s = stream(vec![], vec![], 3);
        let isi = request(true, vec![("quay.io/a/b:v1", Some("mytag"))]);
        let r = result(vec![Err(Failure {
            reason: "",
            code: 500,
            message: String::new(),
        })]);
        assert!(images_to_create(&r, &applied(&isi, &r)).is_empty());
        let (stored, status) = apply(&isi, Some(&s), &r);
        let tag = stored.spec.tag("mytag").expect("created");
        assert_eq!(tag.from.as_ref().unwrap().name, "quay.io/a/b:v1");
        assert_eq!(tag.generation, Some(4));
        assert_eq!(tag.reference_policy.type_, TagReferencePolicyType::Local);
        let status = status.unwrap();
        let c = &status.tag("mytag").unwrap().conditions[0];
        assert_eq!(
            (c.status.as_str(), c.message.as_str(), c.generation),
            ("False", "unknown error prevented import", 4)
        );
    }

    // Semantics 4 and 5.4: a failure on an existing tag leaves its spec alone (import policy
    // included); the condition records the stored S, so the tag is not imported again.
    #[test]
    fn a_failure_leaves_an_existing_tag_alone() {
        let mut t = docker_tag("v1", "quay.io/a/b:v1", 2, TagReferencePolicyType::Source);
        t.import_policy.scheduled = true;
        let s = stream(
            vec![t],
            vec![("v1", event(&format!("quay.io/a/b@{D1}"), D1, 2))],
            2,
        );
        let isi = request(true, vec![("quay.io/a/b:v1", Some("v1"))]);
        let r = result(vec![Err(Failure {
            reason: "NotFound",
            code: 404,
            message: "gone".into(),
        })]);
        let applied = applied(&isi, &r);
        assert_eq!(next_spec(Some(&s), &applied), s.spec);
        let (status, changes) = next_status(&s, &applied, &Repositories::default(), None, now());
        let status = status.unwrap();
        let v1 = status.tag("v1").unwrap();
        assert_eq!(v1.items.len(), 1, "history kept");
        assert_eq!(v1.conditions[0].generation, 2);
        assert!(matches!(&changes[..], [TagChange::Failed { .. }]));
    }

    // Semantics 4 ("limit exceeded"): a refused spec write records the refusal on the tags
    // the import would have added; tags with a status keep it.
    #[test]
    fn a_limit_refusal_marks_the_new_tags() {
        let s = stream(
            vec![docker_tag(
                "v1",
                "quay.io/a/b:v1",
                1,
                TagReferencePolicyType::Source,
            )],
            vec![("v1", event(&format!("quay.io/a/b@{D1}"), D1, 1))],
            1,
        );
        let isi = request(
            true,
            vec![
                ("quay.io/a/b:v1", Some("v1")),
                ("quay.io/a/b:v2", Some("v2")),
            ],
        );
        let r = result(vec![
            ok("quay.io/a/b", D2, "v1"),
            ok("quay.io/a/b", D2, "v2"),
        ]);
        let message = "requested usage of openshift.io/image-tags exceeds the maximum limit";
        let status = limit_refused_status(&s, &applied(&isi, &r), message, now()).unwrap();
        let v2 = &status.tag("v2").unwrap().conditions[0];
        assert_eq!(
            (v2.reason.as_str(), v2.message.as_str(), v2.generation),
            ("LimitExceeded", message, 1)
        );
        assert_eq!(status.tag("v1"), s.status.as_ref().unwrap().tag("v1"));
        let mut again = stream(vec![], vec![], 1);
        again.status = Some(status);
        assert_eq!(
            limit_refused_status(&again, &applied(&isi, &r), message, now()),
            None,
            "recorded once"
        );
    }

    // 5.3: the source tag's platform preference reaches the importer.
    #[test]
    fn preferences_come_from_the_target_spec_tag() {
        let mut t = docker_tag("v1", "x", 1, TagReferencePolicyType::Source);
        t.annotations = Some(BTreeMap::from([(
            IMPORTER_PREFER_ARCH_ANNOTATION.to_string(),
            "arm64".to_string(),
        )]));
        let s = stream(vec![t], vec![], 1);
        let isi = request(
            false,
            vec![("quay.io/a/b:v1", None), ("quay.io/a/b:v2", Some("v1"))],
        );
        let b = batch(&isi, Some(&s), Mode::Legacy);
        assert_eq!(b.images[0].prefer.arch.as_deref(), Some("arm64"));
        assert_eq!(b.images[1].prefer.arch.as_deref(), Some("arm64"));
        let b = batch(&isi, None, Mode::PreserveOriginal);
        assert_eq!(b.images[0].prefer, Preference::default());
        assert_eq!(b.images[0].mode, Mode::PreserveOriginal);
    }

    // Upstream SetDefaults_ImageImportSpec: `to` from the tag the pull spec names; none for a
    // repository without tag or a digest; an explicit `to` stays.
    #[test]
    fn targets_default_to_the_source_tag() {
        let mut isi = request(
            true,
            vec![
                ("quay.io/a/b:v2", None),
                ("quay.io/a/b", None),
                (&format!("quay.io/a/b@{D1}"), None),
                ("quay.io/a/b:v3", Some("mine")),
            ],
        );
        assert!(default_targets(&mut isi));
        let targets: Vec<Option<&str>> = isi
            .spec
            .images
            .iter()
            .map(|i| i.to.as_ref().map(|t| t.name.as_str()))
            .collect();
        assert_eq!(targets, [Some("v2"), None, None, Some("mine")]);
        assert!(!default_targets(&mut isi), "nothing more to default");
    }

    // Answers name Images by digest as upstream, without the stored object's server fields
    // or the operator's name bookkeeping.
    #[test]
    fn answered_images_are_named_by_digest() {
        let isi = request(false, vec![("quay.io/a/b:v1", Some("v1"))]);
        let r = result(vec![ok("quay.io/a/b", D1, "v1")]);
        let stored = |_: &str| {
            let mut i = image(D1, &[]);
            i.metadata.uid = Some("u".into());
            i.metadata.resource_version = Some("7".into());
            i.metadata.annotations = Some(BTreeMap::from([
                (crate::names::ANNOTATION_IMAGE.to_string(), D1.to_string()),
                ("keep".to_string(), "me".to_string()),
            ]));
            Some(i)
        };
        let status = import_status(&isi, &r, &stored);
        let shown = status.images[0].image.as_ref().unwrap();
        assert_eq!(shown.metadata.name.as_deref(), Some(D1));
        assert_eq!(
            (
                shown.metadata.uid.as_ref(),
                shown.metadata.resource_version.as_ref()
            ),
            (None, None)
        );
        assert_eq!(
            shown.metadata.annotations,
            Some(BTreeMap::from([("keep".to_string(), "me".to_string())]))
        );
    }

    // Previews asking for manifests fetch everything (stored Images keep none).
    #[test]
    fn only_previews_asking_for_manifests_want_them() {
        let mut isi = request(false, vec![("quay.io/a/b:v1", None)]);
        assert!(!wants_manifests(&isi));
        isi.spec.images[0].include_manifest = true;
        assert!(wants_manifests(&isi));
        isi.spec.import = true;
        assert!(
            !wants_manifests(&isi),
            "applied imports return none (upstream)"
        );
    }

    // An answer too large to store loses the list children first, then Image details, then
    // the stream; statuses stay.
    #[test]
    fn oversized_answers_are_trimmed() {
        let isi = request(false, vec![("quay.io/a/b:multi", Some("multi"))]);
        let list = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        let mut r = result(vec![ok("quay.io/a/b", list, "multi")]);
        r.new_images.insert(list.to_string(), image(list, &[D1]));
        let mut child = image(D1, &[]);
        child.spec.docker_image_layers = vec![Default::default(); 2000];
        r.new_images.insert(D1.to_string(), child);
        let mut status = import_status(&isi, &r, &|_: &str| None);
        status.import = Some(stream(vec![], vec![], 1));
        let before = serde_json::to_vec(&status).unwrap().len();
        assert!(!fit_answer(&mut status.clone(), before));
        assert!(fit_answer(&mut status, before - 1));
        assert!(status.images[0].manifests.is_empty());
        assert!(status.images[0].image.is_some() && status.import.is_some());
        assert!(fit_answer(&mut status, 10));
        assert_eq!(status.import, None);
        assert_eq!(status.images[0].status.status, STATUS_SUCCESS);
    }
}
