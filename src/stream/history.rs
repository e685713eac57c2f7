//! Tag history and import conditions, exactly as OpenShift keeps them (semantics 3.1, 3.4, 4).
//!
//! Pure functions over [`ImageStreamStatus`]: the controller decides with them and writes the
//! result in one status patch.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::image_stream::{
    IMPORT_SUCCESS, ImageStream, ImageStreamSpec, ImageStreamStatus, KIND_DOCKER_IMAGE,
    KIND_IMAGE_STREAM_TAG, NamedTagEventList, TagEvent, TagEventCondition, TagReferencePolicyType,
};

/// The status entry of `tag`, created (empty) when absent, keeping the list sorted by tag.
pub fn tag_entry<'a>(status: &'a mut ImageStreamStatus, tag: &str) -> &'a mut NamedTagEventList {
    let index = match status.tags.binary_search_by(|t| t.tag.as_str().cmp(tag)) {
        Ok(i) => i,
        Err(i) => {
            status.tags.insert(
                i,
                NamedTagEventList {
                    tag: tag.to_string(),
                    ..NamedTagEventList::default()
                },
            );
            i
        }
    };
    &mut status.tags[index]
}

/// The current event of `tag` (items[0]), if any.
pub fn latest<'a>(status: &'a ImageStreamStatus, tag: &str) -> Option<&'a TagEvent> {
    status
        .tags
        .iter()
        .find(|t| t.tag == tag)
        .and_then(|t| t.items.first())
}

/// Upstream's `AddTagEventToImageStream`: a new entry only when both the pull spec and the
/// image differ from items[0]; otherwise items[0] is updated in place (its `created` kept).
/// Conditions are cleared on every change. Returns whether anything changed.
pub fn add_tag_event(status: &mut ImageStreamStatus, tag: &str, next: TagEvent) -> bool {
    let entry = tag_entry(status, tag);
    let changed = match entry.items.first_mut() {
        None => {
            entry.items.push(next);
            true
        }
        Some(prev) => {
            let same_ref = prev.docker_image_reference == next.docker_image_reference;
            let same_image = prev.image == next.image;
            match (same_ref, same_image) {
                (true, true) if prev.generation == next.generation => false,
                (true, true) => {
                    prev.generation = next.generation;
                    true
                }
                (true, false) => {
                    prev.image = next.image;
                    prev.generation = next.generation;
                    true
                }
                (false, true) => {
                    prev.docker_image_reference = next.docker_image_reference;
                    prev.generation = next.generation;
                    true
                }
                (false, false) => {
                    entry.items.insert(0, next);
                    true
                }
            }
        }
    };
    if changed {
        entry.conditions.clear();
    }
    changed
}

/// How a tag's history changed between two versions of it (upstream's `tagsChanged` helper,
/// semantics 3.4): `changed` when items[0] differs in any field or appeared or went away,
/// `deleted` when the history became empty. Tracking tags follow a change that is not a
/// deletion.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistoryChange {
    pub changed: bool,
    pub deleted: bool,
}

pub fn history_changed(old: &[TagEvent], new: &[TagEvent]) -> HistoryChange {
    match (old.first(), new.first()) {
        (None, None) => HistoryChange::default(),
        (Some(_), None) => HistoryChange {
            changed: true,
            deleted: true,
        },
        (None, Some(_)) => HistoryChange {
            changed: true,
            deleted: false,
        },
        (Some(o), Some(n)) => HistoryChange {
            changed: o != n,
            deleted: false,
        },
    }
}

/// Upstream's `UpdateTrackingTags`: every spec tag that follows `updated` in the same stream
/// (`from.kind: ImageStreamTag`, name `<updated>` or `<stream>:<updated>`, no other
/// namespace) receives `event`. Returns the tags that changed.
pub fn update_tracking_tags(
    stream_name: &str,
    stream_namespace: &str,
    spec: &ImageStreamSpec,
    status: &mut ImageStreamStatus,
    updated: &str,
    event: &TagEvent,
) -> Vec<String> {
    let qualified = format!("{stream_name}:{updated}");
    let mut changed = Vec::new();
    for tag in &spec.tags {
        let Some(from) = &tag.from else { continue };
        let same_namespace = from.namespace.is_empty() || from.namespace == stream_namespace;
        if tag.name == updated
            || from.kind != KIND_IMAGE_STREAM_TAG
            || !same_namespace
            || (from.name != updated && from.name != qualified)
        {
            continue;
        }
        let mut copy = event.clone();
        if let Some(generation) = tag.generation {
            copy.generation = generation;
        }
        if add_tag_event(status, &tag.name, copy) {
            changed.push(tag.name.clone());
        }
    }
    changed
}

/// The message upstream writes when a failed import carries none.
pub const UNKNOWN_IMPORT_ERROR: &str = "unknown error prevented import";

/// Records a failed import of `tag` (semantics 4): an `ImportSuccess=False` condition with
/// `reason`, `message` and `generation`, replacing the tag's conditions — unless the tag
/// already has a condition with the same status, reason and message: then only a newer
/// generation is recorded (the first occurrence's time kept), and an identical failure
/// changes nothing (no write). Returns whether anything changed.
pub fn set_failure_condition(
    status: &mut ImageStreamStatus,
    tag: &str,
    reason: &str,
    message: &str,
    generation: i64,
    now: Time,
) -> bool {
    let message = if message.is_empty() {
        UNKNOWN_IMPORT_ERROR
    } else {
        message
    };
    let entry = tag_entry(status, tag);
    let same = entry.conditions.iter_mut().find(|c| {
        c.type_ == IMPORT_SUCCESS
            && c.status == "False"
            && c.reason == reason
            && c.message == message
    });
    if let Some(same) = same {
        // The same failure for a newer generation records that generation (the tag counts
        // as observed, or it would be imported again on every pass), keeping the time of
        // the first occurrence; otherwise nothing changes.
        if same.generation >= generation {
            return false;
        }
        same.generation = generation;
        return true;
    }
    entry.conditions = vec![TagEventCondition {
        type_: IMPORT_SUCCESS.to_string(),
        status: "False".to_string(),
        last_transition_time: Some(now),
        reason: reason.to_string(),
        message: message.to_string(),
        generation,
    }];
    true
}

/// Clears the conditions of `tag` after a successful import. Returns whether any existed.
pub fn clear_conditions(status: &mut ImageStreamStatus, tag: &str) -> bool {
    match status.tags.iter_mut().find(|t| t.tag == tag) {
        Some(entry) if !entry.conditions.is_empty() => {
            entry.conditions.clear();
            true
        }
        _ => false,
    }
}

/// Drops status tags with neither items nor conditions, as every upstream update does.
pub fn drop_empty_tags(status: &mut ImageStreamStatus) {
    status
        .tags
        .retain(|t| !t.items.is_empty() || !t.conditions.is_empty());
}

/// Upstream's `latestObservedTagGeneration`: max(items[0].generation, the first
/// ImportSuccess condition's generation), 0 without status.
pub fn observed_generation(status: Option<&ImageStreamStatus>, tag: &str) -> i64 {
    let Some(entry) = status.and_then(|s| s.tags.iter().find(|t| t.tag == tag)) else {
        return 0;
    };
    let event = entry.items.first().map_or(0, |e| e.generation);
    let condition = entry
        .conditions
        .iter()
        .find(|c| c.type_ == IMPORT_SUCCESS)
        .map_or(0, |c| c.generation);
    event.max(condition)
}

/// Where a tag can be pulled from (library-go `ResolveRecentPullSpecForTag` and
/// `ResolveNewestPullSpecForTag`, semantics 3.3), for the views and for tools.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullSpec {
    pub pull_spec: String,
    /// The spec tag asks for a newer generation than the pull spec answers.
    pub has_newer: bool,
    /// The pull spec comes from the tag's history.
    pub has_status: bool,
    /// Nothing is known about the tag yet: the pull spec is `<repository>:<tag>`.
    pub is_tag_empty: bool,
}

/// Why a tag has no pull spec.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PullSpecError {
    #[error("image stream does not have a valid docker image repository")]
    NoStreamRepository,
    #[error("the tag has not been imported yet; wait for the status to report a pull spec")]
    WaitForPullSpec,
}

impl PullSpecError {
    /// Stable reason for conditions, Events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            PullSpecError::NoStreamRepository => "NoStreamRepository",
            PullSpecError::WaitForPullSpec => "WaitForPullSpec",
        }
    }
}

/// Which answer a caller wants when the spec tag is ahead of its history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullSpecMode {
    /// The current history entry, flagged `has_newer` (`ResolveRecentPullSpecForTag`).
    Recent,
    /// Only what the spec asks for: a Source-policy DockerImage tag's own pull spec, else
    /// [`PullSpecError::WaitForPullSpec`] (`ResolveNewestPullSpecForTag`).
    Newest,
}

/// The pull spec of `tag` in `stream`. `default_external` prefers the public repository.
/// With a Local reference policy and a known image, the stream's own repository is used
/// by digest.
pub fn pull_spec_for_tag(
    stream: &ImageStream,
    tag: &str,
    default_external: bool,
    mode: PullSpecMode,
) -> Result<PullSpec, PullSpecError> {
    let spec_tag = stream.spec.tag(tag);
    // borrowed: triggers resolve tags on every stream event
    let none = ImageStreamStatus::default();
    let status = stream.status.as_ref().unwrap_or(&none);
    let repository = if default_external && !status.public_docker_image_repository.is_empty() {
        status.public_docker_image_repository.as_str()
    } else {
        status.docker_image_repository.as_str()
    };
    let source_docker_image = spec_tag.and_then(|t| {
        let from = t.from.as_ref()?;
        (from.kind == KIND_DOCKER_IMAGE
            && t.reference_policy.type_ != TagReferencePolicyType::Local)
            .then(|| from.name.clone())
    });
    let Some(event) = latest(status, tag) else {
        if let Some(pull_spec) = source_docker_image {
            return Ok(PullSpec {
                pull_spec,
                has_newer: false,
                has_status: false,
                is_tag_empty: false,
            });
        }
        if repository.is_empty() {
            return Err(PullSpecError::NoStreamRepository);
        }
        return Ok(PullSpec {
            pull_spec: format!("{repository}:{tag}"),
            has_newer: false,
            has_status: false,
            is_tag_empty: true,
        });
    };
    let has_newer = spec_tag
        .and_then(|t| t.generation)
        .is_some_and(|g| g > event.generation);
    if has_newer && mode == PullSpecMode::Newest {
        return match source_docker_image {
            Some(pull_spec) => Ok(PullSpec {
                pull_spec,
                has_newer: false,
                has_status: false,
                is_tag_empty: false,
            }),
            None => Err(PullSpecError::WaitForPullSpec),
        };
    }
    let local = spec_tag.is_some_and(|t| t.reference_policy.type_ == TagReferencePolicyType::Local);
    let pull_spec = if local && !repository.is_empty() && !event.image.is_empty() {
        format!("{repository}@{}", event.image)
    } else {
        event.docker_image_reference.clone()
    };
    Ok(PullSpec {
        pull_spec,
        has_newer,
        has_status: true,
        is_tag_empty: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::image_stream::{ObjectReference, TagReference};

    const D1: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const D2: &str = "sha256:293aa25bf219f3e47472281b7e68c09bb6f315c2adf7f86a7302b85bdaa63db3";

    fn t(s: &str) -> Time {
        Time(s.parse().expect("timestamp"))
    }

    fn event(reference: &str, image: &str, generation: i64) -> TagEvent {
        TagEvent {
            created: t("2026-01-01T00:00:00Z"),
            docker_image_reference: reference.into(),
            image: image.into(),
            generation,
        }
    }

    fn status_with(tag: &str, items: Vec<TagEvent>) -> ImageStreamStatus {
        ImageStreamStatus {
            tags: vec![NamedTagEventList {
                tag: tag.into(),
                items,
                conditions: vec![],
            }],
            ..ImageStreamStatus::default()
        }
    }

    #[test]
    fn first_event_creates_the_history() {
        let mut status = ImageStreamStatus::default();
        assert!(add_tag_event(&mut status, "latest", event("a@d1", D1, 1)));
        assert_eq!(status.tags[0].items.len(), 1);
    }

    // OA imagestreamimport rest_test TestImportSuccessful "reference differs": both differ → prepend.
    #[test]
    fn reference_differs_prepends() {
        let mut status = status_with(
            "t",
            vec![event(&format!("registry.com/namespace/image@{D2}"), D2, 1)],
        );
        let next = TagEvent {
            created: t("2026-02-01T00:00:00Z"),
            ..event(&format!("registry.com/namespace/image@{D1}"), D1, 2)
        };
        assert!(add_tag_event(&mut status, "t", next.clone()));
        assert_eq!(
            status.tags[0].items,
            vec![
                next,
                event(&format!("registry.com/namespace/image@{D2}"), D2, 1)
            ]
        );
    }

    // OA TestImportSuccessful "only generation differ": collapse, created kept.
    #[test]
    fn only_generation_differs_updates_in_place() {
        let mut status = status_with("t", vec![event("a@d", D1, 1)]);
        let next = TagEvent {
            created: t("2026-03-01T00:00:00Z"),
            ..event("a@d", D1, 2)
        };
        assert!(add_tag_event(&mut status, "t", next));
        assert_eq!(status.tags[0].items.len(), 1);
        assert_eq!(status.tags[0].items[0].generation, 2);
        assert_eq!(status.tags[0].items[0].created, t("2026-01-01T00:00:00Z"));
    }

    #[test]
    fn identical_event_changes_nothing_and_keeps_conditions() {
        let mut status = status_with("t", vec![event("a@d", D1, 1)]);
        set_failure_condition(
            &mut status,
            "t",
            "NotFound",
            "gone",
            1,
            t("2026-01-02T00:00:00Z"),
        );
        assert!(!add_tag_event(&mut status, "t", event("a@d", D1, 1)));
        assert_eq!(status.tags[0].conditions.len(), 1);
    }

    #[test]
    fn one_side_differing_rewrites_items0_and_clears_conditions() {
        let mut status = status_with("t", vec![event("a:1", D1, 1)]);
        set_failure_condition(
            &mut status,
            "t",
            "NotFound",
            "gone",
            2,
            t("2026-01-02T00:00:00Z"),
        );
        assert!(add_tag_event(&mut status, "t", event("a:1", D2, 3)));
        assert_eq!(status.tags[0].items, vec![event("a:1", D2, 3)]);
        assert!(status.tags[0].conditions.is_empty());
        assert!(add_tag_event(&mut status, "t", event("b:1", D2, 4)));
        assert_eq!(status.tags[0].items, vec![event("b:1", D2, 4)]);
    }

    #[test]
    fn a_b_a_is_a_legal_history() {
        let mut status = ImageStreamStatus::default();
        add_tag_event(&mut status, "t", event("x@1", D1, 1));
        add_tag_event(&mut status, "t", event("x@2", D2, 2));
        add_tag_event(&mut status, "t", event("x@1", D1, 3));
        let images: Vec<_> = status.tags[0]
            .items
            .iter()
            .map(|e| e.image.as_str())
            .collect();
        assert_eq!(images, [D1, D2, D1]);
    }

    // Semantics 4 / OA TestCreateImages: message defaults; an identical failure is not
    // rewritten, the same failure for a newer generation only moves C.
    #[test]
    fn failure_conditions_are_written_once() {
        let mut status = ImageStreamStatus::default();
        let first = t("2026-01-01T00:00:00Z");
        assert!(set_failure_condition(
            &mut status,
            "mytag",
            "",
            "",
            2,
            first.clone()
        ));
        let c = &status.tags[0].conditions[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.message.as_str()),
            (IMPORT_SUCCESS, "False", UNKNOWN_IMPORT_ERROR)
        );
        assert!(!set_failure_condition(
            &mut status,
            "mytag",
            "",
            "",
            2,
            t("2026-01-05T00:00:00Z")
        ));
        // The same failure for a newer generation records it (design rule 4: C = S), keeping
        // the first occurrence's time; upstream rewrites the spec instead.
        assert!(set_failure_condition(
            &mut status,
            "mytag",
            "",
            "",
            3,
            t("2026-01-05T00:00:00Z")
        ));
        assert_eq!(
            status.tags[0].conditions[0].last_transition_time,
            Some(first)
        );
        assert_eq!(status.tags[0].conditions[0].generation, 3);
        // A different failure replaces it.
        assert!(set_failure_condition(
            &mut status,
            "mytag",
            "Unauthorized",
            "no",
            3,
            t("2026-01-06T00:00:00Z")
        ));
        assert_eq!(status.tags[0].conditions.len(), 1);
        assert_eq!(status.tags[0].conditions[0].reason, "Unauthorized");
        assert!(clear_conditions(&mut status, "mytag"));
        assert!(!clear_conditions(&mut status, "mytag"));
        drop_empty_tags(&mut status);
        assert!(status.tags.is_empty());
    }

    // OCM TestHandleImageStream: observed = max(E of items[0], C).
    #[test]
    fn observed_generation_is_the_max_of_event_and_condition() {
        assert_eq!(observed_generation(None, "t"), 0);
        let mut status = status_with("t", vec![event("a", D1, 1)]);
        assert_eq!(observed_generation(Some(&status), "t"), 1);
        set_failure_condition(&mut status, "t", "X", "y", 2, t("2026-01-01T00:00:00Z"));
        assert_eq!(observed_generation(Some(&status), "t"), 2);
        assert_eq!(observed_generation(Some(&status), "other"), 0);
    }

    // OA ImageStreamMapping TestTrackingTags: tracking and tracking2 follow 2.0; nontracking not.
    #[test]
    fn tracking_tags_follow_the_updated_tag() {
        let follow = |name: &str, from: &str, ns: &str| TagReference {
            name: name.into(),
            from: Some(ObjectReference {
                kind: KIND_IMAGE_STREAM_TAG.into(),
                name: from.into(),
                namespace: ns.into(),
                ..ObjectReference::default()
            }),
            generation: Some(5),
            ..TagReference::default()
        };
        let spec = ImageStreamSpec {
            tags: vec![
                follow("tracking", "2.0", ""),
                follow("tracking2", "stream:2.0", "ns"),
                follow("other-ns", "2.0", "elsewhere"),
                follow("other-stream", "other:2.0", ""),
            ],
            ..ImageStreamSpec::default()
        };
        let mut status = status_with("nontracking", vec![event("x", D2, 1)]);
        let pushed = event("registry/ns/stream@d1", D1, 7);
        let changed = update_tracking_tags("stream", "ns", &spec, &mut status, "2.0", &pushed);
        assert_eq!(changed, ["tracking", "tracking2"]);
        assert_eq!(
            latest(&status, "tracking").map(|e| e.image.as_str()),
            Some(D1)
        );
        assert_eq!(
            latest(&status, "tracking").map(|e| e.generation),
            Some(5),
            "E = the alias tag's S"
        );
        assert_eq!(
            latest(&status, "nontracking").map(|e| e.image.as_str()),
            Some(D2)
        );
        assert!(latest(&status, "other-ns").is_none());
        assert!(latest(&status, "other-stream").is_none());
    }

    #[test]
    fn status_tags_stay_sorted() {
        let mut status = ImageStreamStatus::default();
        for tag in ["b", "a", "c"] {
            add_tag_event(&mut status, tag, event(tag, D1, 1));
        }
        let tags: Vec<_> = status.tags.iter().map(|t| t.tag.as_str()).collect();
        assert_eq!(tags, ["a", "b", "c"]);
    }

    // 10.1 case 23 (TestTagsChangedHelper)
    #[test]
    fn test_tags_changed_helper() {
        let a = event("a@d1", D1, 1);
        let b = event("a@d2", D2, 1);
        let unchanged = HistoryChange::default();
        assert_eq!(history_changed(&[], &[]), unchanged);
        assert_eq!(
            history_changed(&[], std::slice::from_ref(&a)),
            HistoryChange {
                changed: true,
                deleted: false
            }
        );
        assert_eq!(
            history_changed(std::slice::from_ref(&a), &[]),
            HistoryChange {
                changed: true,
                deleted: true
            }
        );
        assert_eq!(
            history_changed(std::slice::from_ref(&a), std::slice::from_ref(&b)),
            HistoryChange {
                changed: true,
                deleted: false
            }
        );
        assert_eq!(
            history_changed(&[a.clone(), b.clone()], std::slice::from_ref(&a)),
            unchanged,
            "only items[0] counts"
        );
    }

    // 10.7 case 92 (library-go TestResolvePullSpecForTag), every upstream row.
    #[test]
    fn test_resolve_pull_spec_for_tag() {
        use crate::api::image_stream::{ImageStreamSpec, TagReferencePolicy};
        use kube::api::ObjectMeta;
        const SHA: &str = "sha256:13897c84ca5715a68feafcce9acf779f35806f42d1fcd37e8a2a5706c075252d";
        let stream =
            |tags: Vec<TagReference>, internal: &str, public: &str, items: Vec<TagEvent>| {
                ImageStream {
                    metadata: ObjectMeta {
                        name: Some("stream1".into()),
                        namespace: Some("test".into()),
                        ..ObjectMeta::default()
                    },
                    spec: ImageStreamSpec {
                        tags,
                        ..ImageStreamSpec::default()
                    },
                    status: Some(ImageStreamStatus {
                        docker_image_repository: internal.into(),
                        public_docker_image_repository: public.into(),
                        tags: if items.is_empty() {
                            vec![]
                        } else {
                            vec![NamedTagEventList {
                                tag: "1".into(),
                                items,
                                conditions: vec![],
                            }]
                        },
                    }),
                }
            };
        let spec_tag =
            |policy: TagReferencePolicyType, kind: &str, name: &str, g: Option<i64>| TagReference {
                name: "1".into(),
                reference_policy: TagReferencePolicy { type_: policy },
                from: (!kind.is_empty()).then(|| ObjectReference {
                    kind: kind.into(),
                    name: name.into(),
                    ..ObjectReference::default()
                }),
                generation: g,
                ..TagReference::default()
            };
        let spec = |pull_spec: &str, has_newer, has_status, is_tag_empty| PullSpec {
            pull_spec: pull_spec.into(),
            has_newer,
            has_status,
            is_tag_empty,
        };
        let recent = PullSpecMode::Recent;
        let internal = "registry.test.svc/test/stream1";
        let public = "registry.test.public/test/stream1";
        let source = TagReferencePolicyType::Source;
        let local = TagReferencePolicyType::Local;

        // no status and no repository
        let bare = stream(vec![], "", "", vec![]);
        assert_eq!(
            pull_spec_for_tag(&bare, "empty", false, recent),
            Err(PullSpecError::NoStreamRepository)
        );
        // repository only: <repo>:<tag>, the public one when default_external
        let s = stream(vec![], internal, "", vec![]);
        let want = spec(&format!("{internal}:empty"), false, false, true);
        assert_eq!(
            pull_spec_for_tag(&s, "empty", false, recent),
            Ok(want.clone())
        );
        assert_eq!(pull_spec_for_tag(&s, "empty", true, recent), Ok(want));
        let s = stream(vec![], internal, public, vec![]);
        assert_eq!(
            pull_spec_for_tag(&s, "empty", true, recent),
            Ok(spec(&format!("{public}:empty"), false, false, true))
        );
        // spec tags that cannot answer without status
        for t in [
            spec_tag(source, "", "", None),
            spec_tag(source, "ImageStreamTag", "other", None),
            spec_tag(local, "ImageStreamTag", "test", None),
            spec_tag(local, "DockerImage", "quay.io/test/first:tag", None),
        ] {
            let s = stream(vec![t.clone()], internal, "", vec![]);
            assert_eq!(
                pull_spec_for_tag(&s, "1", false, recent),
                Ok(spec(&format!("{internal}:1"), false, false, true)),
                "{t:?}"
            );
        }
        // a Source-policy DockerImage tag without status: its own pull spec
        let s = stream(
            vec![spec_tag(
                source,
                "DockerImage",
                "quay.io/test/first:tag",
                None,
            )],
            internal,
            "",
            vec![],
        );
        assert_eq!(
            pull_spec_for_tag(&s, "1", false, recent),
            Ok(spec("quay.io/test/first:tag", false, false, false))
        );
        // S=5 > E=4: recent answers the older entry with has_newer; newest the spec's pull spec
        let older = event("quay.io/test/first:older", "", 4);
        let s = stream(
            vec![spec_tag(
                source,
                "DockerImage",
                "quay.io/test/first:tag",
                Some(5),
            )],
            internal,
            "",
            vec![older.clone()],
        );
        assert_eq!(
            pull_spec_for_tag(&s, "1", false, recent),
            Ok(spec("quay.io/test/first:older", true, true, false))
        );
        assert_eq!(
            pull_spec_for_tag(&s, "1", false, PullSpecMode::Newest),
            Ok(spec("quay.io/test/first:tag", false, false, false))
        );
        // ... and newest has nothing to offer for a tag that is not a Source DockerImage
        let s = stream(
            vec![spec_tag(
                local,
                "DockerImage",
                "quay.io/test/first:tag",
                Some(5),
            )],
            internal,
            "",
            vec![older.clone()],
        );
        assert_eq!(
            pull_spec_for_tag(&s, "1", false, PullSpecMode::Newest),
            Err(PullSpecError::WaitForPullSpec)
        );
        // same generation; spec older than history (a pushed image)
        let s = stream(
            vec![spec_tag(
                source,
                "DockerImage",
                "quay.io/test/first:tag",
                Some(4),
            )],
            internal,
            "",
            vec![older],
        );
        assert_eq!(
            pull_spec_for_tag(&s, "1", false, recent),
            Ok(spec("quay.io/test/first:older", false, true, false))
        );
        let s = stream(
            vec![spec_tag(
                source,
                "DockerImage",
                "quay.io/test/first:tag",
                Some(4),
            )],
            internal,
            "",
            vec![event("quay.io/test/first:newer", "", 5)],
        );
        assert_eq!(
            pull_spec_for_tag(&s, "1", false, recent),
            Ok(spec("quay.io/test/first:newer", false, true, false))
        );
        // Local policy with a known image: the stream's repository by digest
        let s = stream(
            vec![spec_tag(
                local,
                "DockerImage",
                "quay.io/test/first:tag",
                Some(4),
            )],
            internal,
            "",
            vec![event("quay.io/test/first:newer", SHA, 5)],
        );
        assert_eq!(
            pull_spec_for_tag(&s, "1", false, recent),
            Ok(spec(&format!("{internal}@{SHA}"), false, true, false))
        );
    }
}
