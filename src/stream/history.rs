//! Tag history and import conditions, exactly as OpenShift keeps them (semantics 3.1, 3.4, 4).
//!
//! Pure functions over [`ImageStreamStatus`]: the controller decides with them and writes the
//! result in one status patch.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::image_stream::{
    IMPORT_SUCCESS, ImageStreamSpec, ImageStreamStatus, KIND_IMAGE_STREAM_TAG, NamedTagEventList,
    TagEvent, TagEventCondition,
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
/// already has a condition with the same status, reason and message, in which case nothing
/// changes (no write, the first occurrence's time kept). Returns whether anything changed.
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
    let identical = entry.conditions.iter().any(|c| {
        c.type_ == IMPORT_SUCCESS
            && c.status == "False"
            && c.reason == reason
            && c.message == message
    });
    if identical {
        return false;
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

    // Semantics 4 / OA TestCreateImages: message defaults; identical failure not rewritten.
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
            3,
            t("2026-01-05T00:00:00Z")
        ));
        assert_eq!(
            status.tags[0].conditions[0].last_transition_time,
            Some(first)
        );
        assert_eq!(status.tags[0].conditions[0].generation, 2);
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
}
