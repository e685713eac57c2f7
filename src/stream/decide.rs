//! What one pass of the imagestream controller writes, decided without IO (its decide step):
//! the import results applied to the stored status with [`StatusUpdate`] (imports, the
//! repository, then references resolved, tags that follow others, the history cap), then the
//! size guard ([`guard_size`]) and the namespace's LimitRanges ([`limits::guard_status`]).
//! Also what the rest of the pass needs from the results: which tags failed or came back
//! unchanged (for the tags a notification woke), whether the repository was listed, and
//! whether an `Unauthorized` failure makes the keyring worth remembering.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::image_stream::{ImageStream, ImageStreamStatus};
use crate::import::contract::{BatchResult, Failure};
use crate::receiver::wake::Check;

use super::limits::{self, Limits};
use super::sync::{Repositories, StatusUpdate, StreamLookup, TagChange, TagImport, guard_size};
use super::validation::split_from_reference;

/// What a pass decides from.
pub struct Inputs<'a, L> {
    pub stream: &'a ImageStream,
    /// The tags imported, in the order of `result.images`.
    pub work: &'a [TagImport],
    /// What the importer found (Images the apiserver refused already failed); `None` when the
    /// pass asked the registry nothing.
    pub result: Option<&'a BatchResult>,
    pub repositories: &'a Repositories,
    pub max_tag_history: Option<usize>,
    pub max_image_stream_bytes: usize,
    /// The namespace's LimitRange limits on streams.
    pub limits: &'a Limits,
    /// Other streams, for tags that follow theirs.
    pub others: &'a L,
    pub now: Time,
}

/// What the pass writes and reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// The status to write; `None` when the stored one stands.
    pub status: Option<ImageStreamStatus>,
    /// Transitions to report as Events (a tag moved, a new failure, a recovery).
    pub changes: Vec<TagChange>,
    /// The stream would grow past `maxImageStreamBytes`: its history was not grown.
    pub too_large: bool,
    /// A LimitRange refused the stream's new images.
    pub limited: bool,
    /// Tags whose import failed.
    pub failed: BTreeSet<String>,
    /// Tags the registry still serves unchanged, with their image.
    pub unchanged: HashMap<String, String>,
    /// `Ok` once `spec.dockerImageRepository` was listed, `Err` when it could not be.
    pub repository: Option<Result<(), Failure>>,
    /// An import failed with `Unauthorized`: the keyring it was tried with is remembered, so
    /// the tags are tried again only once the pull secrets change.
    pub unauthorized: bool,
}

impl Outcome {
    /// What the check of a woken `tag` found: a failure, or an unchanged tag although the
    /// notification named another digest (`notified`: the push may not be visible yet, so
    /// it is checked again).
    pub fn woken_check(&self, tag: &str, notified: Option<&str>) -> Check {
        if self.failed.contains(tag) {
            return Check::Failed;
        }
        match (self.unchanged.get(tag), notified) {
            (Some(image), Some(notified)) if image != notified => Check::Stale,
            _ => Check::Done,
        }
    }
}

/// The streams a pass read besides its own, by (`namespace`, `name`) ([`followed_streams`]).
pub type Followed = BTreeMap<(String, String), ImageStream>;

impl StreamLookup for Followed {
    fn stream(&self, namespace: &str, name: &str) -> Option<ImageStream> {
        self.get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }
}

/// The pass's outcome (see the module docs).
pub fn decide<L: StreamLookup>(inputs: Inputs<'_, L>) -> Outcome {
    let Inputs {
        stream, work, now, ..
    } = inputs;
    let mut outcome = Outcome::default();
    let mut update = StatusUpdate::new(stream, inputs.repositories, now.clone());
    if let Some(result) = inputs.result {
        for (w, r) in work.iter().zip(&result.images) {
            update.apply_import(&w.tag, w.generation, r);
            match r {
                Err(_) => {
                    outcome.failed.insert(w.tag.clone());
                }
                Ok(imported) if imported.unchanged => {
                    outcome
                        .unchanged
                        .insert(w.tag.clone(), imported.image.clone());
                }
                Ok(_) => {}
            }
        }
        if let Some(listed) = &result.repository {
            update.apply_repository(listed);
            outcome.repository = Some(listed.images.as_ref().map(|_| ()).map_err(Clone::clone));
        }
        let unauthorized = |f: &Failure| f.reason == "Unauthorized";
        outcome.unauthorized = result
            .images
            .iter()
            .any(|r| r.as_ref().err().is_some_and(unauthorized))
            || matches!(&outcome.repository, Some(Err(f)) if unauthorized(f));
    }
    update.resolve_references(inputs.others);
    update.update_tracking();
    update.cap_history(inputs.max_tag_history);
    let (status, changes) = update.finish();
    outcome.changes = changes;
    if let Some(status) = status {
        let (status, too_large) =
            guard_size(stream, status, inputs.max_image_stream_bytes, now.clone());
        let (status, limited) = limits::guard_status(stream, status, inputs.limits, now);
        outcome.too_large = too_large;
        outcome.limited = limited;
        outcome.status = (stream.status.as_ref() != Some(&status)).then_some(status);
    }
    outcome
}

/// The other streams (`namespace`, `name`) whose tags the stream's spec tags follow: what a
/// pass reads besides the stream to resolve them.
pub fn followed_streams(stream: &ImageStream) -> BTreeSet<(String, String)> {
    let namespace = stream.metadata.namespace.as_deref().unwrap_or_default();
    let name = stream.metadata.name.as_deref().unwrap_or_default();
    stream
        .spec
        .tags
        .iter()
        .filter_map(|tag| {
            let from = tag.from.as_ref()?;
            let (other, _) = split_from_reference(&from.kind, &from.name, name)?;
            let other_namespace = if from.namespace.is_empty() {
                namespace
            } else {
                from.namespace.as_str()
            };
            ((other_namespace, other) != (namespace, name))
                .then(|| (other_namespace.to_string(), other.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::image_stream::{
        KIND_IMAGE_STREAM_IMAGE, KIND_IMAGE_STREAM_TAG, ObjectReference, TagReference,
    };
    use crate::import::contract::Mode;
    use crate::import::contract::{ImageResult, Imported, RepositoryResult};
    use crate::stream::sync::tests::{D1, D2, docker, event, history, now, stream};
    use crate::stream::sync::{import_for, imports};

    fn no_streams(_: &str, _: &str) -> Option<ImageStream> {
        None
    }

    fn ok(image: &str, unchanged: bool) -> ImageResult {
        Ok(Imported {
            tag: String::new(),
            image: image.into(),
            reference: format!("r/a@{image}"),
            unchanged,
        })
    }

    fn failed(reason: &'static str) -> ImageResult {
        Err(Failure {
            reason,
            code: 401,
            message: "no".into(),
        })
    }

    fn inputs<'a, L>(
        s: &'a ImageStream,
        work: &'a [TagImport],
        result: Option<&'a BatchResult>,
        others: &'a L,
    ) -> Inputs<'a, L> {
        static REPOSITORIES: Repositories = Repositories {
            internal: None,
            external: None,
        };
        static LIMITS: Limits = Limits {
            images: None,
            image_tags: None,
        };
        Inputs {
            stream: s,
            work,
            result,
            repositories: &REPOSITORIES,
            max_tag_history: None,
            max_image_stream_bytes: 1 << 20,
            limits: &LIMITS,
            others,
            now: now(),
        }
    }

    fn batch(images: Vec<ImageResult>) -> BatchResult {
        BatchResult {
            images,
            ..BatchResult::default()
        }
    }

    // design rule 4: an attempt for S writes E = S on success, C = S on failure
    #[test]
    fn results_become_one_status_and_their_transitions() {
        let s = stream(
            vec![
                docker("a", "r/a:1", Some(2)),
                docker("b", "r/b:1", Some(1)),
                docker("c", "r/c:1", Some(1)),
            ],
            vec![],
        );
        let work = imports(&s, false, Mode::Legacy);
        let result = batch(vec![ok(D1, false), failed("Unauthorized"), ok(D2, true)]);
        let outcome = decide(inputs(&s, &work, Some(&result), &no_streams));
        let status = outcome.status.expect("a status to write");
        let a = status.tag("a").expect("a");
        assert_eq!((a.items[0].image.as_str(), a.items[0].generation), (D1, 2));
        let b = status.tag("b").expect("b");
        assert_eq!(b.conditions[0].generation, 1);
        assert_eq!(outcome.failed, BTreeSet::from(["b".to_string()]));
        assert_eq!(outcome.unchanged, HashMap::from([("c".into(), D2.into())]));
        assert!(outcome.unauthorized);
        assert_eq!(outcome.repository, None);
        assert!(!outcome.too_large && !outcome.limited);
        let changed: Vec<&str> = outcome.changes.iter().map(TagChange::tag).collect();
        assert_eq!(changed, ["a", "b", "c"]);
    }

    #[test]
    fn a_pass_that_changes_nothing_writes_nothing() {
        let s = stream(
            vec![docker("a", "r/a:1", Some(1))],
            vec![history("a", vec![event(&format!("r/a@{D1}"), D1, 1)])],
        );
        let outcome = decide(inputs(&s, &[], None, &no_streams));
        assert_eq!(outcome, Outcome::default());
        // the registry serving the same image changes nothing either
        let work = vec![import_for(&s, &s.spec.tags[0], Mode::Legacy).expect("importable")];
        let mut result = batch(vec![ok(D1, true)]);
        if let Ok(i) = &mut result.images[0] {
            i.reference = format!("r/a@{D1}");
        }
        let outcome = decide(inputs(&s, &work, Some(&result), &no_streams));
        assert_eq!(outcome.status, None, "{:?}", outcome.status);
        assert!(outcome.changes.is_empty());
        assert_eq!(outcome.unchanged["a"], D1);
    }

    #[test]
    fn a_repository_that_could_not_be_listed_is_reported() {
        let mut s = stream(vec![], vec![]);
        s.spec.docker_image_repository = "r/all".into();
        let failure = Failure {
            reason: "Unauthorized",
            code: 401,
            message: "no".into(),
        };
        let result = BatchResult {
            images: vec![],
            repository: Some(RepositoryResult {
                images: Err(failure.clone()),
                tags: vec![],
                additional_tags: vec![],
            }),
            new_images: Default::default(),
            verifications: Vec::new(),
            referrer_lookups: Vec::new(),
        };
        let outcome = decide(inputs(&s, &[], Some(&result), &no_streams));
        assert_eq!(outcome.repository, Some(Err(failure)));
        assert!(outcome.unauthorized);
        // listed: its tags become status tags
        let listed = BatchResult {
            images: vec![],
            repository: Some(RepositoryResult {
                images: Ok(vec![ok(D1, false)]),
                tags: vec!["v1".into()],
                additional_tags: vec![],
            }),
            new_images: Default::default(),
            verifications: Vec::new(),
            referrer_lookups: Vec::new(),
        };
        let outcome = decide(inputs(&s, &[], Some(&listed), &no_streams));
        assert_eq!(outcome.repository, Some(Ok(())));
        assert!(!outcome.unauthorized);
        assert!(outcome.status.expect("status").tag("v1").is_some());
    }

    #[test]
    fn tags_follow_other_streams_through_the_lookup() {
        let follower = TagReference {
            name: "copy".into(),
            from: Some(ObjectReference {
                kind: KIND_IMAGE_STREAM_TAG.into(),
                name: "source:latest".into(),
                ..ObjectReference::default()
            }),
            generation: Some(1),
            ..TagReference::default()
        };
        let s = stream(vec![follower], vec![]);
        let mut source = stream(
            vec![],
            vec![history("latest", vec![event(&format!("r/s@{D2}"), D2, 3)])],
        );
        source.metadata.name = Some("source".into());
        let others =
            |ns: &str, name: &str| (ns == "ns" && name == "source").then(|| source.clone());
        let outcome = decide(inputs(&s, &[], None, &others));
        let status = outcome.status.expect("status");
        let copy = status.tag("copy").expect("resolved");
        assert_eq!(
            (copy.items[0].image.as_str(), copy.items[0].generation),
            (D2, 1)
        );
        // without the source: a NotFound condition
        let outcome = decide(inputs(&s, &[], None, &no_streams));
        let status = outcome.status.expect("status");
        assert_eq!(
            status.tag("copy").expect("copy").conditions[0].reason,
            "NotFound"
        );
    }

    #[test]
    fn woken_tags_are_checked_again_while_the_push_is_not_visible() {
        let outcome = Outcome {
            failed: BTreeSet::from(["f".to_string()]),
            unchanged: HashMap::from([("u".to_string(), D1.to_string())]),
            ..Outcome::default()
        };
        assert_eq!(outcome.woken_check("f", Some(D2)), Check::Failed);
        assert_eq!(outcome.woken_check("u", Some(D2)), Check::Stale);
        assert_eq!(outcome.woken_check("u", Some(D1)), Check::Done);
        assert_eq!(
            outcome.woken_check("u", None),
            Check::Done,
            "no digest named"
        );
        assert_eq!(outcome.woken_check("moved", Some(D2)), Check::Done);
    }

    #[test]
    fn followed_streams_are_looked_up_by_namespace_and_name() {
        let mut other = stream(vec![], vec![]);
        other.metadata.name = Some("other".into());
        let followed = Followed::from([(("ns".to_string(), "other".to_string()), other.clone())]);
        assert_eq!(StreamLookup::stream(&followed, "ns", "other"), Some(other));
        assert_eq!(StreamLookup::stream(&followed, "elsewhere", "other"), None);
    }

    #[test]
    fn a_pass_reads_the_streams_its_tags_follow() {
        let follow = |name: &str, kind: &str, from: &str, namespace: &str| TagReference {
            name: name.into(),
            from: Some(ObjectReference {
                kind: kind.into(),
                name: from.into(),
                namespace: namespace.into(),
                ..ObjectReference::default()
            }),
            ..TagReference::default()
        };
        let s = stream(
            vec![
                follow("a", KIND_IMAGE_STREAM_TAG, "other:latest", ""),
                follow("b", KIND_IMAGE_STREAM_TAG, "latest", ""),
                follow("c", KIND_IMAGE_STREAM_TAG, "stream:a", ""),
                follow(
                    "d",
                    KIND_IMAGE_STREAM_IMAGE,
                    &format!("third@{D1}"),
                    "elsewhere",
                ),
                follow("e", KIND_IMAGE_STREAM_TAG, "stream:a", "elsewhere"),
                follow("f", KIND_IMAGE_STREAM_TAG, "bad:a:b", ""),
                docker("g", "r/g:1", None),
            ],
            vec![],
        );
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            followed_streams(&s),
            BTreeSet::from([
                pair("elsewhere", "stream"),
                pair("elsewhere", "third"),
                pair("ns", "other"),
            ])
        );
    }

    #[test]
    fn a_limit_range_keeps_the_stored_status_with_conditions() {
        let s = stream(vec![docker("a", "r/a:1", Some(1))], vec![]);
        let work = imports(&s, false, Mode::Legacy);
        let result = batch(vec![ok(D1, false)]);
        let limits = Limits {
            images: Some(0),
            image_tags: None,
        };
        let outcome = decide(Inputs {
            limits: &limits,
            ..inputs(&s, &work, Some(&result), &no_streams)
        });
        assert!(outcome.limited);
        let status = outcome.status.expect("conditions are written");
        let a = status.tag("a").expect("a");
        assert!(a.items.is_empty(), "{a:?}");
        assert_eq!(a.conditions[0].reason, limits::REASON_LIMIT_EXCEEDED);
    }
}
