//! ImageStreamMapping (semantics 7.1) decided without IO.
//!
//! Upstream applies a mapping inside its create request; here a mapping is a request object
//! that the controller ([`crate::controller::image_stream_mapping`]) applies later, so the
//! steps are split around the two writes it makes: [`plan`] validates and defaults the
//! request and builds the Image to create; once it is known whether that Image existed,
//! [`tag_event`] chooses the event and [`next_status`] adds it to the stream (tracking tags,
//! history cap, size guard); after a conflicting status write, [`check_conflict`] says
//! whether the write may be retried on the re-read stream.
//!
//! Upstream cases that do not apply: the namespace check (10.5 case 72; the apiserver puts a
//! custom resource in the namespace of its request) and the legacy `dockerImageRepository`
//! lookup (case 76; v1 has no such field, and a custom resource always has a name).

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::api::image::{Image, MANAGED_BY_OPENSHIFT_ANNOTATION};
use crate::api::image_stream::{ImageStream, ImageStreamStatus, TagEvent};
use crate::api::image_stream_mapping::ImageStreamMapping;
use crate::names;

use super::history::latest;
use super::sync::{Repositories, StatusUpdate, TagChange, guard_size};
use super::validation::{FieldError, invalid_message, validate_image_stream_mapping};

const GROUP: &str = "image.openshift.io";

/// Why a mapping cannot be applied; [`Refusal::reason`] is the Event reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The request fails validation (semantics 1.7) after defaulting.
    #[error("{}", invalid_message(GROUP, "ImageStreamMapping", name, errors))]
    Invalid {
        name: String,
        errors: Vec<FieldError>,
    },
    /// No stream has the mapping's name (upstream's 404 with details kind `imagestreams`).
    #[error("imagestreams.image.openshift.io {name:?} not found")]
    StreamNotFound { name: String },
    /// The tag moved while the status was written (upstream's 409 after the re-read).
    #[error(
        "Operation cannot be fulfilled on imagestreams.image.openshift.io {stream:?}: tag {tag:?} changed meanwhile (now {image:?}); the mapping was not applied"
    )]
    Conflict {
        stream: String,
        tag: String,
        image: String,
    },
    /// The event would grow the stream over `maxImageStreamBytes`; the tag has a condition.
    #[error(
        "image stream {stream:?} is too large to record tag {tag:?} (see the tag's ImportSuccess condition)"
    )]
    TooLarge { stream: String, tag: String },
}

impl Refusal {
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Invalid { .. } => "Invalid",
            Refusal::StreamNotFound { .. } => "NotFound",
            Refusal::Conflict { .. } => "Conflict",
            Refusal::TooLarge { .. } => "ImageStreamTooLarge",
        }
    }
}

/// The stream a mapping is for. A mapping is created with its stream's name, as upstream's
/// is; the operator's webhook then stores it under [`request_name`] with the stream's name in
/// [`names::ANNOTATION_STREAM`], so that mappings of one stream can wait side by side.
pub fn stream_name(mapping: &ImageStreamMapping) -> String {
    mapping
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(names::ANNOTATION_STREAM))
        .or(mapping.metadata.name.as_ref())
        .cloned()
        .unwrap_or_default()
}

/// The name a mapping created as `mapping` (named after its stream) is stored under, or
/// `None` when it has its stored name already.
pub fn request_name(mapping: &ImageStreamMapping) -> Option<String> {
    let stream = stream_name(mapping);
    let image = mapping
        .spec
        .image
        .metadata
        .name
        .as_deref()
        .unwrap_or_default();
    let name = names::image_stream_mapping(&stream, &mapping.spec.tag, image);
    (mapping.metadata.name.as_deref() != Some(name.as_str())).then_some(name)
}

/// A mapping ready to apply to `stream`.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan<'a> {
    pub stream: &'a ImageStream,
    pub tag: String,
    /// The image's OpenShift name (normally its digest): the event's `image`.
    pub image_name: String,
    /// The Image to create when absent: named with [`names::image`], the exact name in
    /// [`names::ANNOTATION_IMAGE`], the reference defaulted, signatures dropped.
    pub image: Image,
}

/// Steps 1 to 3 of semantics 7.1: `image.dockerImageReference` defaulted to
/// `<internalRegistry>/<namespace>/<name>@<image>` when empty and signatures dropped, then
/// the request validated and the stream (`None` when it does not exist) required.
pub fn plan<'a>(
    mapping: &ImageStreamMapping,
    stream: Option<&'a ImageStream>,
    internal_registry: Option<&str>,
) -> Result<Plan<'a>, Refusal> {
    let name = stream_name(mapping);
    let namespace = mapping.metadata.namespace.as_deref().unwrap_or_default();
    let image_name = mapping.spec.image.metadata.name.clone().unwrap_or_default();
    let mut defaulted = mapping.clone();
    // validated as it was created: named after its stream
    defaulted.metadata.name = Some(name.clone());
    let reference = &mut defaulted.spec.image.spec.docker_image_reference;
    if reference.is_empty()
        && let Some(host) = internal_registry
    {
        *reference = format!("{host}/{namespace}/{name}@{image_name}");
    }
    defaulted.spec.image.spec.signatures.clear();
    let mut errors = validate_image_stream_mapping(&defaulted);
    if defaulted.spec.image.spec.docker_image_reference.is_empty() {
        // no internal registry to default from: upstream's validation then requires it
        errors.push(FieldError::required("image.dockerImageReference", ""));
    }
    if !errors.is_empty() {
        return Err(Refusal::Invalid { name, errors });
    }
    let stream = stream.ok_or_else(|| Refusal::StreamNotFound { name: name.clone() })?;

    let given = defaulted.spec.image;
    let mut annotations = given.metadata.annotations.unwrap_or_default();
    annotations.insert(names::ANNOTATION_IMAGE.to_string(), image_name.clone());
    let image = Image {
        metadata: ObjectMeta {
            name: Some(names::image(&image_name)),
            labels: given.metadata.labels.filter(|l| !l.is_empty()),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: given.spec,
    };
    Ok(Plan {
        stream,
        tag: defaulted.spec.tag,
        image_name,
        image,
    })
}

/// Steps 5 and 6: the event for `stream` (E = its current generation). Its reference is the
/// mapping's, except for an Image that `existing` (it was there before the mapping) and is
/// managed by the integrated registry: `<status.dockerImageRepository>@<image>` when the
/// stream has a repository, since a pushed image is pulled through the stream it is in.
pub fn tag_event(
    plan: &Plan,
    existing: Option<&Image>,
    stream: &ImageStream,
    repositories: &Repositories,
    now: Time,
) -> TagEvent {
    let managed = existing
        .and_then(|i| i.metadata.annotations.as_ref())
        .and_then(|a| a.get(MANAGED_BY_OPENSHIFT_ANNOTATION))
        .is_some_and(|v| v == "true");
    let (repository, _) = repositories.for_stream(stream);
    let docker_image_reference = if managed && !repository.is_empty() {
        format!("{repository}@{}", plan.image_name)
    } else {
        plan.image.spec.docker_image_reference.clone()
    };
    TagEvent {
        created: now,
        docker_image_reference,
        image: plan.image_name.clone(),
        generation: stream.metadata.generation.unwrap_or(0),
    }
}

/// What the controller keeps of the status rules it shares with the imagestream controller.
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    pub max_tag_history: Option<usize>,
    pub max_image_stream_bytes: usize,
}

/// The status to write after a mapping.
#[derive(Clone, Debug, PartialEq)]
pub struct Next {
    /// `None` when the stored status already says it all (upstream: success without a write).
    pub status: Option<ImageStreamStatus>,
    /// The tags that moved: the mapped one and its followers.
    pub changes: Vec<TagChange>,
    /// The size guard refused the growth; `status` carries the tag's condition instead.
    pub too_large: bool,
}

/// Step 6: `event` added to `tag` (semantics 3.1), the tags tracking it updated (3.4), then
/// the history cap and size guard, as every status write of the operator.
pub fn next_status(
    stream: &ImageStream,
    tag: &str,
    event: TagEvent,
    repositories: &Repositories,
    limits: Limits,
    now: Time,
) -> Next {
    let mut update = StatusUpdate::new(stream, repositories, now.clone());
    update.apply_event(tag, event);
    update.update_tracking();
    update.cap_history(limits.max_tag_history);
    let (status, changes) = update.finish();
    let Some(status) = status else {
        return Next {
            status: None,
            changes,
            too_large: false,
        };
    };
    let (status, too_large) = guard_size(stream, status, limits.max_image_stream_bytes, now);
    Next {
        status: (stream.status.as_ref() != Some(&status)).then_some(status),
        changes: if too_large { Vec::new() } else { changes },
        too_large,
    }
}

/// Upstream's conflict rule (step 6): the write may be retried on `fresh` when the tag had
/// no event in the stream the mapping was planned on, or its latest event still names the
/// same pull spec and image (generation and time may differ); otherwise someone else moved
/// the tag and the mapping is refused.
pub fn check_conflict(plan: &Plan, fresh: &ImageStream) -> Result<(), Refusal> {
    let Some(before) = plan
        .stream
        .status
        .as_ref()
        .and_then(|s| latest(s, &plan.tag))
    else {
        return Ok(());
    };
    let now = fresh.status.as_ref().and_then(|s| latest(s, &plan.tag));
    match now {
        Some(e)
            if e.docker_image_reference == before.docker_image_reference
                && e.image == before.image =>
        {
            Ok(())
        }
        _ => Err(Refusal::Conflict {
            stream: plan.stream.metadata.name.clone().unwrap_or_default(),
            tag: plan.tag.clone(),
            image: now.map(|e| e.image.clone()).unwrap_or_default(),
        }),
    }
}

/// How long a mapping created at `created` may still wait for its stream; `None` once
/// `ttl` has passed.
pub fn remaining(created: Option<&Time>, ttl: Duration, now: jiff::Timestamp) -> Option<Duration> {
    let created = created.map_or(now, |t| t.0);
    let age = Duration::try_from(now.duration_since(created)).unwrap_or(Duration::ZERO);
    ttl.checked_sub(age).filter(|left| !left.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::image::ImageFields;
    use crate::api::image_signature::ImageSignature;
    use crate::api::image_stream::{
        ImageStreamSpec, KIND_IMAGE_STREAM_TAG, NamedTagEventList, ObjectReference, TagReference,
    };
    use crate::api::image_stream_mapping::ImageStreamMappingFields;
    use crate::stream::sync::tests::{D1, D2, earlier, event, now};
    use crate::stream::validation::FieldErrorKind;
    use std::collections::BTreeMap;

    const REGISTRY: &str = "172.30.0.1:5000";

    fn image(name: &str, reference: &str) -> Image {
        Image {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            spec: ImageFields {
                docker_image_reference: reference.into(),
                ..ImageFields::default()
            },
        }
    }

    fn mapping(namespace: &str, name: &str, tag: &str, image: Image) -> ImageStreamMapping {
        ImageStreamMapping {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                ..ObjectMeta::default()
            },
            spec: ImageStreamMappingFields {
                image,
                tag: tag.into(),
            },
        }
    }

    fn stream(namespace: &str, name: &str, generation: i64) -> ImageStream {
        ImageStream {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                generation: Some(generation),
                ..ObjectMeta::default()
            },
            spec: ImageStreamSpec::default(),
            status: None,
        }
    }

    fn with_history(mut s: ImageStream, tag: &str, items: Vec<TagEvent>) -> ImageStream {
        let status = s.status.get_or_insert_with(ImageStreamStatus::default);
        status.tags.push(NamedTagEventList {
            tag: tag.into(),
            items,
            conditions: vec![],
        });
        s
    }

    fn managed(mut image: Image) -> Image {
        image.metadata.annotations = Some(BTreeMap::from([(
            MANAGED_BY_OPENSHIFT_ANNOTATION.to_string(),
            "true".to_string(),
        )]));
        image
    }

    fn apply(plan: &Plan, existing: Option<&Image>, repositories: &Repositories) -> Next {
        let event = tag_event(plan, existing, plan.stream, repositories, now());
        next_status(
            plan.stream,
            &plan.tag,
            event,
            repositories,
            Limits {
                max_tag_history: None,
                max_image_stream_bytes: 1 << 20,
            },
            now(),
        )
    }

    /// A mapping created as `<stream>` is stored under a name of its own and still maps to
    /// its stream, with the defaults and checks of one named after the stream (issue 16).
    #[test]
    fn a_stored_mapping_keeps_its_stream() {
        let created = mapping("ns", "ruby", "v1", image(D1, ""));
        let stored_name = request_name(&created).expect("renamed");
        assert_eq!(stored_name, names::image_stream_mapping("ruby", "v1", D1));
        let mut stored = created.clone();
        stored.metadata.name = Some(stored_name);
        stored.metadata.annotations = Some(BTreeMap::from([(
            names::ANNOTATION_STREAM.to_string(),
            "ruby".to_string(),
        )]));
        assert_eq!(request_name(&stored), None, "named already");
        assert_eq!(stream_name(&stored), "ruby");
        let s = stream("ns", "ruby", 1);
        let plan = plan(&stored, Some(&s), Some(REGISTRY)).expect("plan");
        assert_eq!(
            plan.image.spec.docker_image_reference,
            format!("{REGISTRY}/ns/ruby@{D1}")
        );
        assert_eq!(
            super::plan(&stored, None, Some(REGISTRY)).unwrap_err(),
            Refusal::StreamNotFound {
                name: "ruby".into()
            }
        );
        let other_tag = mapping("ns", "ruby", "v2", image(D1, ""));
        assert_ne!(request_name(&other_tag), request_name(&created));
    }

    // 10.5 case 73 (TestCreateImageStreamNotFoundWithName): the failure names kind
    // `imagestreams` and the stream.
    #[test]
    fn test_create_image_stream_not_found_with_name() {
        let m = mapping(
            "default",
            "somerepo",
            "latest",
            image(D1, "localhost:5000/a/b"),
        );
        let refusal = plan(&m, None, None).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::StreamNotFound {
                name: "somerepo".into()
            }
        );
        assert_eq!(refusal.reason(), "NotFound");
        assert_eq!(
            refusal.to_string(),
            r#"imagestreams.image.openshift.io "somerepo" not found"#
        );
    }

    // 10.5 case 74 (TestCreateSuccessWithName): the Image as given (under its encoded name),
    // items[0] pointing at it with E = the stream's generation.
    #[test]
    fn test_create_success_with_name() {
        let s = stream("default", "somerepo", 3);
        let mut given = image(D1, "localhost:5000/default/somerepo:latest");
        given.metadata.labels = Some(BTreeMap::from([("team".into(), "a".into())]));
        let m = mapping("default", "somerepo", "latest", given);
        let p = plan(&m, Some(&s), None).expect("valid");
        assert_eq!(
            p.image.metadata.name.as_deref(),
            Some(names::image(D1).as_str())
        );
        assert_eq!(
            p.image.metadata.annotations.as_ref().unwrap()[names::ANNOTATION_IMAGE],
            D1
        );
        assert_eq!(p.image.metadata.labels.as_ref().unwrap()["team"], "a");
        assert_eq!(
            p.image.spec.docker_image_reference,
            "localhost:5000/default/somerepo:latest"
        );

        let next = apply(&p, None, &Repositories::default());
        let status = next.status.expect("written");
        let items = &status.tag("latest").unwrap().items;
        assert_eq!(
            items[..],
            [TagEvent {
                created: now(),
                docker_image_reference: "localhost:5000/default/somerepo:latest".into(),
                image: D1.into(),
                generation: 3,
            }]
        );
        assert_eq!(
            next.changes,
            [TagChange::Updated {
                tag: "latest".into(),
                image: D1.into()
            }]
        );
        assert!(!next.too_large);
    }

    // 10.5 case 75 (TestAddExistingImageOverridingDockerImageReference): an existing managed
    // Image pushed into default/newrepo is pulled through that stream.
    #[test]
    fn test_add_existing_image_overriding_docker_image_reference() {
        let s = stream("default", "newrepo", 1);
        let pushed = format!("{REGISTRY}/otherproject/otherrepo@{D1}");
        let m = mapping("default", "newrepo", "latest", image(D1, &pushed));
        let p = plan(&m, Some(&s), Some(REGISTRY)).expect("valid");
        let existing = managed(image(D1, &pushed));
        let repositories = Repositories {
            internal: Some(REGISTRY.into()),
            external: None,
        };
        let event = tag_event(&p, Some(&existing), &s, &repositories, now());
        assert_eq!(
            event.docker_image_reference,
            format!("{REGISTRY}/default/newrepo@{D1}")
        );
        // the stream's spec.dockerImageRepository when no internal registry is configured
        let mut legacy = s.clone();
        legacy.spec.docker_image_repository = "mirror.example.com/default/newrepo".into();
        let event = tag_event(
            &p,
            Some(&existing),
            &legacy,
            &Repositories::default(),
            now(),
        );
        assert_eq!(
            event.docker_image_reference,
            format!("mirror.example.com/default/newrepo@{D1}")
        );
        // no repository at all: the Image's own reference
        let event = tag_event(&p, Some(&existing), &s, &Repositories::default(), now());
        assert_eq!(event.docker_image_reference, pushed);
        // created by this mapping (not existing before): as given, as upstream
        let event = tag_event(&p, None, &s, &repositories, now());
        assert_eq!(event.docker_image_reference, pushed);
    }

    // 10.5 case 75 (TestAddExistingImageWithNewTag): an unmanaged existing Image keeps its
    // reference, and a second tag gets the same event.
    #[test]
    fn test_add_existing_image_with_new_tag() {
        let reference = format!("localhost:5000/someproject/somerepo@{D1}");
        let s = with_history(
            stream("default", "somerepo", 2),
            "existingTag",
            vec![event(&reference, D1, 1)],
        );
        let m = mapping("default", "somerepo", "latest", image(D1, &reference));
        let p = plan(&m, Some(&s), Some(REGISTRY)).expect("valid");
        let existing = image(D1, &reference);
        let repositories = Repositories {
            internal: Some(REGISTRY.into()),
            external: None,
        };
        let next = apply(&p, Some(&existing), &repositories);
        let status = next.status.expect("written");
        assert_eq!(
            status.tag("latest").unwrap().items[0].docker_image_reference,
            reference
        );
        assert_eq!(
            status.tag("existingTag").unwrap().items,
            [event(&reference, D1, 1)]
        );
    }

    // 10.5 case 76 (TestAddExistingImageAndTag, adapted): a mapping that names no stream is
    // Invalid as upstream's v1 validation reports it; v1 has no legacy repository to search.
    #[test]
    fn test_mapping_without_name_is_invalid() {
        let m = mapping("default", "", "latest", image(D1, "localhost:5000/a/b"));
        let refusal = plan(&m, None, None).unwrap_err();
        assert_eq!(refusal.reason(), "Invalid");
        let Refusal::Invalid { errors, .. } = &refusal else {
            panic!("{refusal:?}")
        };
        let fields: Vec<_> = errors.iter().map(|e| (e.kind, e.field.as_str())).collect();
        assert!(fields.contains(&(FieldErrorKind::Required, "name")));
        assert!(fields.contains(&(FieldErrorKind::Required, "dockerImageRepository")));
        assert!(
            refusal
                .to_string()
                .starts_with(r#"ImageStreamMapping.image.openshift.io "" is invalid: ["#),
            "{refusal}"
        );
    }

    // 10.5 case 77 (TestTrackingTags): tags tracking 2.0 receive the event; others do not.
    #[test]
    fn test_tracking_tags() {
        let track = |name: &str| TagReference {
            name: name.into(),
            from: Some(ObjectReference {
                kind: KIND_IMAGE_STREAM_TAG.into(),
                name: "2.0".into(),
                ..ObjectReference::default()
            }),
            generation: Some(1),
            ..TagReference::default()
        };
        let mut s = with_history(
            stream("default", "stream", 1),
            "nontracking",
            vec![event("x@old", D2, 1)],
        );
        s.spec.tags = vec![track("tracking"), track("tracking2")];
        let reference = format!("{REGISTRY}/default/stream@{D1}");
        let m = mapping("default", "stream", "2.0", image(D1, &reference));
        let p = plan(&m, Some(&s), None).expect("valid");
        let next = apply(&p, None, &Repositories::default());
        let status = next.status.expect("written");
        for tag in ["2.0", "tracking", "tracking2"] {
            let items = &status.tag(tag).unwrap().items;
            assert_eq!((items[0].image.as_str(), items.len()), (D1, 1), "{tag}");
            assert_eq!(items[0].docker_image_reference, reference, "{tag}");
        }
        assert_eq!(
            status.tag("nontracking").unwrap().items,
            [event("x@old", D2, 1)]
        );
        let moved: Vec<_> = next
            .changes
            .iter()
            .map(|c| match c {
                TagChange::Updated { tag, .. } => tag.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(moved, ["2.0", "tracking", "tracking2"]);
    }

    // 10.5 case 78 (TestCreateRetryConflictNoTagDiff, TestCreateRetryConflictTagDiff): after a
    // conflict the write is retried when the tag is unchanged apart from generation and time
    // (or had no event), and refused when someone moved it.
    #[test]
    fn test_create_retry_conflict() {
        let reference = format!("localhost:5000/default/somerepo@{D1}");
        let s = with_history(
            stream("default", "somerepo", 1),
            "latest",
            vec![event(&reference, D1, 1)],
        );
        let m = mapping(
            "default",
            "somerepo",
            "latest",
            image(D2, "localhost:5000/x/y"),
        );
        let p = plan(&m, Some(&s), None).expect("valid");

        let mut same = with_history(
            stream("default", "somerepo", 2),
            "latest",
            vec![TagEvent {
                created: now(),
                ..event(&reference, D1, 2)
            }],
        );
        same.metadata.resource_version = Some("2".into());
        assert_eq!(check_conflict(&p, &same), Ok(()));

        let moved = with_history(
            stream("default", "somerepo", 1),
            "latest",
            vec![event("localhost:5000/x/z", D2, 1)],
        );
        let refusal = check_conflict(&p, &moved).unwrap_err();
        assert_eq!(refusal.reason(), "Conflict");
        assert_eq!(
            refusal,
            Refusal::Conflict {
                stream: "somerepo".into(),
                tag: "latest".into(),
                image: D2.into()
            }
        );
        let emptied = stream("default", "somerepo", 2);
        assert!(check_conflict(&p, &emptied).is_err(), "history removed");

        // no event before the mapping: retried whatever happened meanwhile
        let fresh = stream("default", "somerepo", 1);
        let p = plan(&m, Some(&fresh), None).expect("valid");
        assert_eq!(check_conflict(&p, &moved), Ok(()));
    }

    // Semantics 7.1 step 1: the reference defaults from the internal registry; signatures
    // are dropped; without a registry an empty reference is Required.
    #[test]
    fn defaulting_and_signatures() {
        let s = stream("ns", "app", 1);
        let mut given = image(D1, "");
        given.spec.signatures = vec![ImageSignature::default()];
        let m = mapping("ns", "app", "v1", given);
        let p = plan(&m, Some(&s), Some(REGISTRY)).expect("valid");
        assert_eq!(
            p.image.spec.docker_image_reference,
            format!("{REGISTRY}/ns/app@{D1}")
        );
        assert!(p.image.spec.signatures.is_empty());

        let refusal = plan(&m, Some(&s), None).unwrap_err();
        let Refusal::Invalid { errors, .. } = refusal else {
            panic!("{refusal:?}")
        };
        assert_eq!(
            errors,
            [FieldError::required("image.dockerImageReference", "")]
        );

        // an invalid request is reported before a missing stream
        let bad = mapping(
            "ns",
            "app",
            "v1",
            image(D1, "registry/extra/openshift//ruby"),
        );
        assert_eq!(plan(&bad, None, None).unwrap_err().reason(), "Invalid");
    }

    // Semantics 7.1 step 6: an identical event is success without a write; a newer stream
    // generation only moves items[0].generation.
    #[test]
    fn identical_mapping_writes_nothing() {
        let reference = format!("{REGISTRY}/ns/app@{D1}");
        let s = with_history(stream("ns", "app", 4), "v1", vec![event(&reference, D1, 4)]);
        let m = mapping("ns", "app", "v1", image(D1, &reference));
        let p = plan(&m, Some(&s), None).expect("valid");
        assert_eq!(apply(&p, None, &Repositories::default()).status, None);

        let mut newer = s.clone();
        newer.metadata.generation = Some(5);
        let p = plan(&m, Some(&newer), None).expect("valid");
        let next = apply(&p, None, &Repositories::default());
        let items = next.status.expect("written").tags[0].items.clone();
        assert_eq!((items.len(), items[0].generation), (1, 5));
        assert_eq!(items[0].created, earlier(), "created kept");
        assert!(next.changes.is_empty());
    }

    #[test]
    fn the_size_guard_refuses_growth() {
        let s = with_history(
            stream("ns", "app", 1),
            "v1",
            vec![event(&format!("x@{D2}"), D2, 1)],
        );
        let m = mapping("ns", "app", "v1", image(D1, &format!("x@{D1}")));
        let p = plan(&m, Some(&s), None).expect("valid");
        let event = tag_event(&p, None, &s, &Repositories::default(), now());
        let limits = Limits {
            max_tag_history: None,
            max_image_stream_bytes: 64,
        };
        let next = next_status(&s, "v1", event, &Repositories::default(), limits, now());
        assert!(next.too_large);
        assert!(next.changes.is_empty());
        let tag = next.status.expect("condition written").tags[0].clone();
        assert_eq!(tag.items, [event_of(&s)]);
        assert_eq!(tag.conditions[0].reason, "ImageStreamTooLarge");
    }

    fn event_of(s: &ImageStream) -> TagEvent {
        s.status.as_ref().unwrap().tags[0].items[0].clone()
    }

    #[test]
    fn mappings_wait_for_their_stream_until_the_time_to_live() {
        let ttl = Duration::from_secs(3600);
        let created = earlier();
        let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        assert_eq!(
            remaining(Some(&created), ttl, at("2026-11-20T10:15:00Z")),
            Some(Duration::from_secs(45 * 60))
        );
        assert_eq!(
            remaining(Some(&created), ttl, at("2026-11-20T11:00:00Z")),
            None
        );
        assert_eq!(
            remaining(Some(&created), ttl, at("2026-11-21T10:00:00Z")),
            None
        );
        assert_eq!(remaining(None, ttl, at("2026-11-21T10:00:00Z")), Some(ttl));
        // a clock behind the apiserver's counts as age zero
        assert_eq!(
            remaining(Some(&created), ttl, at("2026-11-20T09:00:00Z")),
            Some(ttl)
        );
    }
}
