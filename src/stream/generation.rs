//! Spec-tag generations (design.md section 4, semantics 2): what the mutating webhook writes
//! on create and update, and when a tag needs an import.
//!
//! One deliberate choice against design.md rule 2: a tag sent with no generation (`null`)
//! keeps its stored value, as upstream does. Treating "no generation" as a reset would make
//! every `kubectl replace` or server-side apply that omits the field re-import tags whose
//! stream generation moved on, costing registry traffic for nothing. `generation: 0` is the
//! reset signal, as upstream.

use crate::api::image_stream::{
    ImageStreamSpec, ImageStreamStatus, KIND_DOCKER_IMAGE, TagReference,
};

use super::history::observed_generation;

/// Upstream's `tagRefChanged`: whether a spec tag's intent changed so that it must be
/// imported or resolved again. `from.kind`, insecure, scheduled, referencePolicy and
/// annotations do not count (semantics 2.3).
pub fn tag_ref_changed(old: &TagReference, new: &TagReference, stream_namespace: &str) -> bool {
    let Some(new_from) = &new.from else {
        return false;
    };
    if new_from.kind.is_empty() && new_from.name.is_empty() {
        return false;
    }
    let Some(old_from) = &old.from else {
        return true;
    };
    let effective = |ns: &str| {
        if ns.is_empty() {
            stream_namespace.to_string()
        } else {
            ns.to_string()
        }
    };
    if effective(&old_from.namespace) != effective(&new_from.namespace) {
        return true;
    }
    if old_from.name != new_from.name || old.reference != new.reference {
        return true;
    }
    if old.import_policy.import_mode != new.import_policy.import_mode {
        return true;
    }
    matches!((old.generation, new.generation), (Some(o), Some(0)) if o != 0)
}

/// Create: every spec tag gets generation 1 (rule 1).
pub fn assign_on_create(spec: &mut ImageStreamSpec) {
    for tag in &mut spec.tags {
        tag.generation = Some(1);
    }
}

/// Update: neutralises client-sent generations, predicts the stream generation the apiserver
/// will count (old + 1 when the spec differs, or when it was 0), and gives every new, changed
/// or reset (`generation: 0`) tag that generation (rule 2). Returns the predicted generation.
pub fn assign_on_update(
    old_spec: &ImageStreamSpec,
    old_generation: i64,
    new_spec: &mut ImageStreamSpec,
    stream_namespace: &str,
) -> i64 {
    let old_tag = |name: &str| old_spec.tags.iter().find(|t| t.name == name);
    for tag in &mut new_spec.tags {
        if let Some(old) = old_tag(&tag.name)
            && tag.generation != Some(0)
        {
            tag.generation = old.generation;
        }
    }
    let generation = if *new_spec != *old_spec || old_generation == 0 {
        old_generation + 1
    } else {
        old_generation
    };
    for tag in &mut new_spec.tags {
        let reset = match old_tag(&tag.name) {
            None => true,
            Some(old) => tag.generation == Some(0) || tag_ref_changed(old, tag, stream_namespace),
        };
        if reset || tag.generation.is_none() {
            tag.generation = Some(generation);
        }
    }
    generation
}

/// A user's `imagestreams/status` write (upstream's `updateObservedGenerationForStatusUpdate`,
/// semantics 2.4): every tag whose newest entry was written with generation 0 gets one. The
/// stream's `generation` when the entry is unchanged from the stored one (same image and
/// pull spec, generation not lower) or the tag had no history; otherwise the spec tag's, or the
/// stream's when the spec tag has none. `spec` and `generation` are the stored ones (a status
/// write keeps them). Returns whether anything changed.
pub fn observe_status_update(
    new: &mut ImageStreamStatus,
    old: Option<&ImageStreamStatus>,
    spec: &ImageStreamSpec,
    generation: i64,
) -> bool {
    let mut changed = false;
    for tag in &mut new.tags {
        let Some(newest) = tag.items.first_mut() else {
            continue;
        };
        if newest.generation != 0 {
            continue;
        }
        let older = old
            .and_then(|o| o.tag(&tag.tag))
            .and_then(|t| t.items.first());
        let unchanged = older.is_none_or(|o| {
            o.image == newest.image
                && o.docker_image_reference == newest.docker_image_reference
                && o.generation <= newest.generation
        });
        newest.generation = if unchanged {
            generation
        } else {
            spec.tag(&tag.tag)
                .and_then(|t| t.generation)
                .unwrap_or(generation)
        };
        changed = true;
    }
    changed
}

/// Upstream's `tagImportable`: a DockerImage tag that is not `reference: true`.
pub fn importable(tag: &TagReference) -> bool {
    !tag.reference
        && tag
            .from
            .as_ref()
            .is_some_and(|f| f.kind == KIND_DOCKER_IMAGE)
}

/// Rule 3 (`tagNeedsImport`): importable and its generation is ahead of what was observed;
/// a tag without generation needs an import only if `when_unset`.
pub fn needs_import(
    tag: &TagReference,
    status: Option<&ImageStreamStatus>,
    when_unset: bool,
) -> bool {
    importable(tag)
        && match tag.generation {
            None => when_unset,
            Some(s) => s > observed_generation(status, &tag.name),
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::image_stream::{
        ImportMode, KIND_IMAGE_STREAM_TAG, NamedTagEventList, ObjectReference, TagEvent,
        TagEventCondition,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn from(kind: &str, name: &str, namespace: &str) -> Option<ObjectReference> {
        Some(ObjectReference {
            kind: kind.into(),
            name: name.into(),
            namespace: namespace.into(),
            ..ObjectReference::default()
        })
    }

    fn tag(name: &str, from_name: &str, generation: Option<i64>) -> TagReference {
        TagReference {
            name: name.into(),
            from: from(KIND_DOCKER_IMAGE, from_name, ""),
            generation,
            ..TagReference::default()
        }
    }

    // Conformance 22 (OA strategy_test TestTagRefChanged).
    #[test]
    fn tag_ref_changed_cases() {
        let ns = "streamnamespace";
        let empty = TagReference::default();
        assert!(!tag_ref_changed(&empty, &empty, ns), "both empty");
        assert!(
            !tag_ref_changed(&tag("t", "a", None), &tag("t", "a", None), ns),
            "same DockerImage name"
        );
        assert!(
            tag_ref_changed(&tag("t", "a", None), &tag("t", "b", None), ns),
            "different name"
        );
        let empty_from = TagReference {
            from: from("", "", ""),
            ..TagReference::default()
        };
        assert!(
            !tag_ref_changed(&tag("t", "a", None), &empty_from, ns),
            "from with empty kind and name"
        );
        let other = TagReference {
            from: from("", "other:latest", "another"),
            ..TagReference::default()
        };
        assert!(tag_ref_changed(&empty, &other, ns), "old from nil");
        let implicit = TagReference {
            from: from(KIND_IMAGE_STREAM_TAG, "other:latest", ""),
            ..TagReference::default()
        };
        let explicit = TagReference {
            from: from(KIND_IMAGE_STREAM_TAG, "other:latest", ns),
            ..TagReference::default()
        };
        assert!(
            !tag_ref_changed(&implicit, &explicit, ns),
            "implicit vs explicit namespace"
        );
        let elsewhere = TagReference {
            from: from(KIND_IMAGE_STREAM_TAG, "other:latest", "another"),
            ..TagReference::default()
        };
        assert!(
            tag_ref_changed(&explicit, &elsewhere, ns),
            "different namespaces"
        );
        let other_tag = TagReference {
            from: from(KIND_IMAGE_STREAM_TAG, "other:other", ns),
            ..TagReference::default()
        };
        assert!(
            tag_ref_changed(&explicit, &other_tag, ns),
            "same name different tag"
        );
    }

    #[test]
    fn kind_policies_and_annotations_do_not_count_but_mode_and_reset_do() {
        let ns = "n";
        let old = tag("t", "a", Some(3));
        let mut new = old.clone();
        new.import_policy.scheduled = true;
        new.import_policy.insecure = true;
        new.annotations = Some([("k".to_string(), "v".to_string())].into());
        assert!(!tag_ref_changed(&old, &new, ns));
        new.import_policy.import_mode = ImportMode::PreserveOriginal;
        assert!(tag_ref_changed(&old, &new, ns));
        let mut reset = old.clone();
        reset.generation = Some(0);
        assert!(tag_ref_changed(&old, &reset, ns));
    }

    // Semantics 2.7, the worked example, as far as the webhook's part goes.
    #[test]
    fn worked_example_generations() {
        let mut spec = ImageStreamSpec {
            tags: vec![tag("latest", "nginx:1.25", Some(42))],
            ..ImageStreamSpec::default()
        };
        assign_on_create(&mut spec);
        assert_eq!(spec.tags[0].generation, Some(1));

        // A client re-sending the spec with another number changes nothing.
        let mut same = spec.clone();
        same.tags[0].generation = Some(99);
        assert_eq!(assign_on_update(&spec, 1, &mut same, "ns"), 1);
        assert_eq!(same.tags[0].generation, Some(1));

        // generation: null keeps the stored value (upstream; see the module doc).
        let mut null = spec.clone();
        null.tags[0].generation = None;
        assert_eq!(assign_on_update(&spec, 1, &mut null, "ns"), 1);
        assert_eq!(null.tags[0].generation, Some(1));

        // generation: 0 resets: G and S advance together.
        let mut reset = spec.clone();
        reset.tags[0].generation = Some(0);
        assert_eq!(assign_on_update(&spec, 1, &mut reset, "ns"), 2);
        assert_eq!(reset.tags[0].generation, Some(2));

        // A new tag and a changed tag get the new G; an untouched one keeps its S.
        let mut grown = reset.clone();
        grown.tags.push(tag("new", "nginx:1.26", None));
        let g = assign_on_update(&reset, 2, &mut grown, "ns");
        assert_eq!(g, 3);
        assert_eq!(grown.tags[0].generation, Some(2));
        assert_eq!(grown.tags[1].generation, Some(3));
        let mut changed = grown.clone();
        changed.tags[0].from = from(KIND_DOCKER_IMAGE, "nginx:1.27", "");
        assert_eq!(assign_on_update(&grown, 3, &mut changed, "ns"), 4);
        assert_eq!(changed.tags[0].generation, Some(4));
        assert_eq!(changed.tags[1].generation, Some(3));

        // Changing only a policy bumps G but keeps S: no re-import.
        let mut policy = changed.clone();
        policy.tags[1].import_policy.scheduled = true;
        assert_eq!(assign_on_update(&changed, 4, &mut policy, "ns"), 5);
        assert_eq!(policy.tags[1].generation, Some(3));
    }

    fn status(
        tag: &str,
        event_generation: Option<i64>,
        condition_generation: Option<i64>,
    ) -> ImageStreamStatus {
        ImageStreamStatus {
            tags: vec![NamedTagEventList {
                tag: tag.into(),
                items: event_generation
                    .map(|g| TagEvent {
                        created: Time(jiff::Timestamp::UNIX_EPOCH),
                        docker_image_reference: "x".into(),
                        image: "sha256:1".into(),
                        generation: g,
                    })
                    .into_iter()
                    .collect(),
                conditions: condition_generation
                    .map(|g| TagEventCondition {
                        type_: "ImportSuccess".into(),
                        status: "False".into(),
                        generation: g,
                        ..TagEventCondition::default()
                    })
                    .into_iter()
                    .collect(),
            }],
            ..ImageStreamStatus::default()
        }
    }

    // Conformance 84–86 (OCM imagestream_controller_test TestHandleImageStream).
    #[test]
    fn needs_import_cases() {
        let mut reference = tag("t", "a", Some(1));
        reference.reference = true;
        assert!(
            !needs_import(&reference, None, true),
            "reference tags are never imported"
        );
        let another = TagReference {
            name: "t".into(),
            from: from("AnotherImage", "a", ""),
            generation: Some(1),
            ..TagReference::default()
        };
        assert!(
            !needs_import(&another, None, true),
            "unknown kinds are not imported"
        );
        assert!(
            needs_import(&tag("latest", "test/other:latest", None), None, true),
            "nil generation, no status"
        );
        assert!(!needs_import(
            &tag("latest", "test/other:latest", None),
            None,
            false
        ));
        assert!(
            needs_import(&tag("t", "a", Some(2)), None, false),
            "S=2, no status"
        );
        assert!(
            !needs_import(
                &tag("t", "a", Some(1)),
                Some(&status("t", Some(1), None)),
                false
            ),
            "S=E"
        );
        assert!(
            needs_import(
                &tag("t", "a", Some(2)),
                Some(&status("t", Some(1), None)),
                false
            ),
            "S>E"
        );
        assert!(
            !needs_import(
                &tag("t", "a", Some(2)),
                Some(&status("t", None, Some(2))),
                false
            ),
            "C=S"
        );
        assert!(
            needs_import(
                &tag("t", "a", Some(2)),
                Some(&status("t", None, Some(1))),
                false
            ),
            "C<S"
        );
        assert!(
            !needs_import(
                &tag("t", "a", Some(2)),
                Some(&status("t", Some(2), None)),
                false
            ),
            "E=S"
        );
    }

    fn status_with(tag: &str, events: &[(&str, &str, i64)]) -> ImageStreamStatus {
        ImageStreamStatus {
            tags: vec![NamedTagEventList {
                tag: tag.into(),
                items: events
                    .iter()
                    .map(|(reference, image, generation)| TagEvent {
                        created: Time(jiff::Timestamp::UNIX_EPOCH),
                        docker_image_reference: (*reference).into(),
                        image: (*image).into(),
                        generation: *generation,
                    })
                    .collect(),
                conditions: vec![],
            }],
            ..ImageStreamStatus::default()
        }
    }

    // Semantics 2.4 (updateObservedGenerationForStatusUpdate): a newest entry written with
    // generation 0 gets G when the tag had no history or the entry is the stored one with a
    // generation not lower (never, once the stored one has any), else the spec tag's S, or G
    // without a spec tag; entries with a generation keep it.
    #[test]
    fn status_updates_get_generations_as_upstream() {
        let spec = ImageStreamSpec {
            tags: vec![TagReference {
                name: "t".into(),
                generation: Some(5),
                ..TagReference::default()
            }],
            ..ImageStreamSpec::default()
        };
        let observe = |old: Option<ImageStreamStatus>, mut new: ImageStreamStatus| {
            observe_status_update(&mut new, old.as_ref(), &spec, 7);
            new.tags[0].items[0].generation
        };
        assert_eq!(
            observe(None, status_with("t", &[("r@a", "a", 0)])),
            7,
            "no history"
        );
        let stored = status_with("t", &[("r@a", "a", 3)]);
        assert_eq!(
            observe(Some(stored.clone()), status_with("t", &[("r@b", "b", 0)])),
            5,
            "a changed entry: the spec tag's"
        );
        assert_eq!(
            observe(Some(stored.clone()), status_with("t", &[("r@a", "a", 0)])),
            5,
            "the stored entry with a lower generation counts as changed"
        );
        assert_eq!(
            observe(
                Some(status_with("t", &[("r@a", "a", 0)])),
                status_with("t", &[("r@a", "a", 0)])
            ),
            7,
            "unchanged"
        );
        assert_eq!(
            observe(Some(stored.clone()), status_with("t", &[("r@a", "a", 4)])),
            4,
            "set by the writer"
        );
        let mut other = status_with("x", &[("r@b", "b", 0)]);
        observe_status_update(
            &mut other,
            Some(&status_with("x", &[("r@a", "a", 1)])),
            &spec,
            7,
        );
        assert_eq!(other.tags[0].items[0].generation, 7, "no spec tag: G");
        let mut unchanged = stored.clone();
        assert!(!observe_status_update(
            &mut unchanged,
            Some(&stored),
            &spec,
            7
        ));
    }
}
