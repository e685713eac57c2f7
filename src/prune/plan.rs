//! What a pruning run removes (semantics 8), decided without IO.
//!
//! Stage 1, per stream ([`prune_history`]): a history entry goes when it is older than the
//! cutoff, not the current entry of its tag, beyond the kept revisions, and its image is not
//! protected; an entry whose Image object is gone goes whatever its place (upstream's
//! dangling rule), except the current one. Stage 2 ([`unreferenced_images`]): an Image goes
//! when no history entry left names it (nor a manifest list that is kept), nothing protects
//! it, and it is older than the cutoff.
//!
//! Protected digests ([`Protected`]) are those running workloads use by digest and those spec
//! tags name exactly (a DockerImage `@digest` or an ImageStreamImage). Unlike upstream, the
//! current entry of every tag is kept whatever workloads use (it is what the tag resolves to),
//! and a protected digest is kept in every stream, not only in the repository a workload
//! names: both only keep more.

use std::collections::{BTreeSet, HashSet};

use jiff::Timestamp;

use crate::api::image_stream::{
    ImageStream, ImageStreamStatus, KIND_DOCKER_IMAGE, KIND_IMAGE_STREAM_IMAGE,
};
use crate::reference::DockerImageReference;

/// A run's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub keep_tag_revisions: usize,
    /// Nothing created after this is removed.
    pub cutoff: Timestamp,
}

/// Digests nothing may remove.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Protected {
    digests: HashSet<String>,
}

/// A workload image reference that does not parse (the run stops unless
/// `ignoreInvalidImageReferences`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{owner}: invalid image reference {reference:?}: {problem}")]
pub struct InvalidReference {
    pub owner: String,
    pub reference: String,
    pub problem: String,
}

impl InvalidReference {
    pub fn reason(&self) -> &'static str {
        "InvalidImageReference"
    }
}

impl Protected {
    pub fn contains(&self, digest: &str) -> bool {
        self.digests.contains(digest)
    }

    pub fn len(&self) -> usize {
        self.digests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Adds the digest a workload's image reference (`owner` names the workload) pulls by;
    /// references by tag protect nothing (the current entry of every tag is kept anyway).
    pub fn add_workload_image(
        &mut self,
        owner: &str,
        reference: &str,
        ignore_invalid: bool,
    ) -> Result<(), InvalidReference> {
        match DockerImageReference::parse(reference) {
            Ok(parsed) => {
                if !parsed.id.is_empty() {
                    self.digests.insert(parsed.id);
                }
                Ok(())
            }
            Err(_) if ignore_invalid => Ok(()),
            Err(e) => Err(InvalidReference {
                owner: owner.into(),
                reference: reference.into(),
                problem: e.to_string(),
            }),
        }
    }

    /// Adds the digests the stream's spec tags name exactly.
    pub fn add_spec_tags(&mut self, stream: &ImageStream) {
        for from in stream.spec.tags.iter().filter_map(|t| t.from.as_ref()) {
            let digest = match from.kind.as_str() {
                KIND_DOCKER_IMAGE => DockerImageReference::parse(&from.name)
                    .ok()
                    .map(|r| r.id)
                    .filter(|id| !id.is_empty()),
                KIND_IMAGE_STREAM_IMAGE => from
                    .name
                    .split_once('@')
                    .map(|(_, id)| id.to_string())
                    .filter(|id| !id.is_empty()),
                _ => None,
            };
            if let Some(digest) = digest {
                self.digests.insert(digest);
            }
        }
    }
}

/// A history entry a run removes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removed {
    pub tag: String,
    /// Place in the tag's history, 0 being the current entry.
    pub revision: usize,
    pub image: String,
    /// The entry's Image object did not exist.
    pub dangling: bool,
}

/// The stream's status after stage 1 and what went, or `None` when nothing goes (also for a
/// stream younger than the cutoff, which is left alone).
pub fn prune_history(
    stream: &ImageStream,
    policy: &Policy,
    image_exists: &dyn Fn(&str) -> bool,
    protected: &Protected,
) -> Option<(ImageStreamStatus, Vec<Removed>)> {
    let created = stream.metadata.creation_timestamp.as_ref().map(|t| t.0);
    if created.is_none_or(|c| c > policy.cutoff) {
        return None;
    }
    let mut status = stream.status.clone()?;
    let mut removed = Vec::new();
    for tag in &mut status.tags {
        let mut revision = 0;
        tag.items.retain(|item| {
            let r = revision;
            revision += 1;
            let keep = item.created.0 > policy.cutoff
                || r == 0
                || (image_exists(&item.image)
                    && (r < policy.keep_tag_revisions || protected.contains(&item.image)));
            if !keep {
                removed.push(Removed {
                    tag: tag.tag.clone(),
                    revision: r,
                    image: item.image.clone(),
                    dangling: !image_exists(&item.image),
                });
            }
            keep
        });
    }
    status
        .tags
        .retain(|t| !t.items.is_empty() || !t.conditions.is_empty());
    (!removed.is_empty()).then_some((status, removed))
}

/// An Image as stage 2 sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageFacts {
    /// The OpenShift name (the digest).
    pub name: String,
    pub created: Option<Timestamp>,
    /// Digests of the sub-manifests of a manifest list.
    pub children: Vec<String>,
}

/// The Images stage 2 deletes: not named by any history entry of `streams` (as they are after
/// stage 1), nor a child of a kept manifest list, nor protected, and older than the cutoff.
pub fn unreferenced_images<'a>(
    images: &'a [ImageFacts],
    streams: impl IntoIterator<Item = &'a ImageStreamStatus>,
    protected: &Protected,
    cutoff: Timestamp,
) -> Vec<&'a str> {
    let mut used: BTreeSet<&str> = streams
        .into_iter()
        .flat_map(|s| &s.tags)
        .flat_map(|t| &t.items)
        .map(|i| i.image.as_str())
        .collect();
    used.extend(
        images
            .iter()
            .filter(|i| protected.contains(&i.name))
            .map(|i| i.name.as_str()),
    );
    // children of used lists are used, to any depth
    let mut pending: Vec<&str> = used.iter().copied().collect();
    while let Some(name) = pending.pop() {
        if let Some(image) = images.iter().find(|i| i.name == name) {
            for child in &image.children {
                if used.insert(child.as_str()) {
                    pending.push(child.as_str());
                }
            }
        }
    }
    images
        .iter()
        .filter(|i| !used.contains(i.name.as_str()))
        .filter(|i| i.created.is_some_and(|c| c <= cutoff))
        .map(|i| i.name.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn digest(n: u32) -> String {
        format!("sha256:{n:064x}")
    }

    fn at(minutes_ago: i64) -> String {
        (now() - jiff::SignedDuration::from_mins(minutes_ago)).to_string()
    }

    fn now() -> Timestamp {
        "2026-11-22T12:00:00Z".parse().unwrap()
    }

    fn policy(keep: usize) -> Policy {
        Policy {
            keep_tag_revisions: keep,
            cutoff: now() - jiff::SignedDuration::from_mins(60),
        }
    }

    /// A stream created `age` minutes ago whose tag `t` has the given (image, minutes ago)
    /// history, newest first.
    fn stream(age: i64, spec: serde_json::Value, history: &[(u32, i64)]) -> ImageStream {
        let items: Vec<_> = history
            .iter()
            .map(|(d, m)| {
                json!({"created": at(*m), "dockerImageReference": format!("r@{}", digest(*d)),
                    "image": digest(*d), "generation": 1})
            })
            .collect();
        serde_json::from_value(json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
            "metadata": {"name": "s", "namespace": "ns", "creationTimestamp": at(age)},
            "spec": {"tags": spec},
            "status": {"dockerImageRepository": "", "tags": [{"tag": "t", "items": items}]},
        }))
        .unwrap()
    }

    fn kept(status: &ImageStreamStatus) -> Vec<String> {
        status.tags[0]
            .items
            .iter()
            .map(|i| i.image.clone())
            .collect()
    }

    const ALL: &dyn Fn(&str) -> bool = &|_: &str| true;

    /// Case 94: keep 3, four old revisions: only the 4th goes, and its Image with it.
    #[test]
    fn keeps_the_newest_revisions() {
        let s = stream(600, json!([]), &[(1, 500), (2, 400), (3, 300), (4, 200)]);
        let (status, removed) = prune_history(&s, &policy(3), ALL, &Protected::default()).unwrap();
        assert_eq!(kept(&status), [digest(1), digest(2), digest(3)]);
        assert_eq!(removed.len(), 1);
        assert_eq!(
            (removed[0].revision, removed[0].image.clone()),
            (3, digest(4))
        );
        let images: Vec<ImageFacts> = (1..=4)
            .map(|d| ImageFacts {
                name: digest(d),
                created: Some(now() - jiff::SignedDuration::from_hours(10)),
                children: vec![],
            })
            .collect();
        assert_eq!(
            unreferenced_images(&images, [&status], &Protected::default(), policy(3).cutoff),
            [digest(4).as_str()]
        );
    }

    /// The issue's case: 10 entries per tag pruned to 3, entries younger than the cutoff kept
    /// whatever their place; the current entry is never removed, even with keep 0.
    #[test]
    fn young_entries_and_the_current_one_stay() {
        let history: Vec<(u32, i64)> = (1..=10)
            .map(|d| (d, if d <= 5 { 30 } else { 300 }))
            .collect();
        let s = stream(600, json!([]), &history);
        let (status, removed) = prune_history(&s, &policy(3), ALL, &Protected::default()).unwrap();
        assert_eq!(kept(&status).len(), 5, "the five young entries");
        assert_eq!(removed.len(), 5);
        let old: Vec<(u32, i64)> = (1..=10).map(|d| (d, 300)).collect();
        let s = stream(600, json!([]), &old);
        let (status, _) = prune_history(&s, &policy(3), ALL, &Protected::default()).unwrap();
        assert_eq!(kept(&status).len(), 3);
        let (status, _) = prune_history(&s, &policy(0), ALL, &Protected::default()).unwrap();
        assert_eq!(kept(&status), [digest(1)]);
    }

    /// Case 95: an image a running workload uses by digest is kept beyond the revisions.
    #[test]
    fn workload_digests_are_kept() {
        let s = stream(600, json!([]), &[(1, 500), (2, 400)]);
        let mut protected = Protected::default();
        protected
            .add_workload_image(
                "pod ns/p",
                &format!("registry.io/foo/bar@{}", digest(2)),
                false,
            )
            .unwrap();
        protected
            .add_workload_image("pod ns/q", "registry.io/foo/bar:latest", false)
            .unwrap();
        assert_eq!(protected.len(), 1);
        assert_eq!(prune_history(&s, &policy(0), ALL, &protected), None);
        let err = protected
            .add_workload_image("pod ns/r", "Not A Reference!", false)
            .unwrap_err();
        assert_eq!(err.reason(), "InvalidImageReference");
        assert!(err.to_string().contains("pod ns/r"), "{err}");
        assert!(
            protected
                .add_workload_image("pod ns/r", "Not A Reference!", true)
                .is_ok()
        );
    }

    /// Spec tags pointing at a digest (DockerImage or ImageStreamImage) protect it.
    #[test]
    fn spec_digests_are_kept() {
        let s = stream(
            600,
            json!([
                {"name": "pinned", "from": {"kind": "DockerImage", "name": format!("r/app@{}", digest(2))}},
                {"name": "isi", "from": {"kind": "ImageStreamImage", "name": format!("s@{}", digest(3))}},
            ]),
            &[(1, 500), (2, 400), (3, 300), (4, 200)],
        );
        let mut protected = Protected::default();
        protected.add_spec_tags(&s);
        let (status, removed) = prune_history(&s, &policy(0), ALL, &protected).unwrap();
        assert_eq!(kept(&status), [digest(1), digest(2), digest(3)]);
        assert_eq!(removed[0].image, digest(4));
    }

    /// Case 96: a stream younger than the cutoff is untouched.
    #[test]
    fn young_streams_are_left_alone() {
        let s = stream(30, json!([]), &[(1, 500), (2, 400)]);
        assert_eq!(
            prune_history(&s, &policy(0), ALL, &Protected::default()),
            None
        );
    }

    /// Case 97: entries whose Image is gone go (not the current one); a tag left with nothing
    /// goes from status.
    #[test]
    fn dangling_entries_go() {
        let s = stream(600, json!([]), &[(1, 500), (2, 400), (3, 300)]);
        let exists = |d: &str| d != digest(2);
        let (status, removed) =
            prune_history(&s, &policy(3), &exists, &Protected::default()).unwrap();
        assert_eq!(kept(&status), [digest(1), digest(3)]);
        assert!(removed[0].dangling);
        let mut empty = stream(600, json!([]), &[(1, 500)]);
        if let Some(status) = empty.status.as_mut() {
            status.tags[0].items.clear();
            status.tags.push(status.tags[0].clone());
            status.tags[1].tag = "u".into();
            status.tags[1].items = vec![serde_json::from_value(json!({
                "created": at(500), "dockerImageReference": "r", "image": digest(9), "generation": 1
            })).unwrap(), serde_json::from_value(json!({
                "created": at(500), "dockerImageReference": "r", "image": digest(8), "generation": 1
            })).unwrap()];
        }
        let (status, _) =
            prune_history(&empty, &policy(0), &|_: &str| false, &Protected::default()).unwrap();
        assert_eq!(status.tags.len(), 1, "the empty tag went: {status:?}");
    }

    /// Case 98: a kept list keeps its children; with no streams the list and children go;
    /// young and protected Images stay.
    #[test]
    fn lists_keep_their_children() {
        let old = Some(now() - jiff::SignedDuration::from_hours(10));
        let images = vec![
            ImageFacts {
                name: digest(1),
                created: old,
                children: vec![digest(2), digest(3)],
            },
            ImageFacts {
                name: digest(2),
                created: old,
                children: vec![],
            },
            ImageFacts {
                name: digest(3),
                created: old,
                children: vec![],
            },
            ImageFacts {
                name: digest(4),
                created: old,
                children: vec![],
            },
            ImageFacts {
                name: digest(5),
                created: Some(now()),
                children: vec![],
            },
            ImageFacts {
                name: digest(6),
                created: old,
                children: vec![],
            },
        ];
        let s = stream(600, json!([]), &[(1, 500)]);
        let mut protected = Protected::default();
        protected
            .add_workload_image("pod", &format!("r/x@{}", digest(6)), false)
            .unwrap();
        let status = s.status.clone().unwrap();
        assert_eq!(
            unreferenced_images(&images, [&status], &protected, policy(3).cutoff),
            [digest(4).as_str()]
        );
        let none: [&ImageStreamStatus; 0] = [];
        assert_eq!(
            unreferenced_images(&images, none, &Protected::default(), policy(3).cutoff),
            [digest(1), digest(2), digest(3), digest(4), digest(6)]
        );
    }
}
