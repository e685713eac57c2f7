//! What users may not remove by hand (issue 16 item 3), decided without IO: Images a stream
//! still refers to, and history entries whose Images still exist. Removing those is the
//! ImagePruner's job ([`crate::controller::pruner`], run by the operator).
//!
//! Why a guard at all: `oc adm prune images` relates Images to streams by the Image's object
//! name, which is `sha256:<hex>` on OpenShift and `sha256.<hex>` here (a custom resource name
//! may not contain `:`). So oc sees no stream using any Image: it drops every history entry
//! older than its cutoff as "dangling" (an `imagestreams/status` write) and deletes every
//! Image. The admission webhooks refuse both for anyone but the operator.
//!
//! [`References`] is the index the Image DELETE guard reads: which streams' histories name
//! which digests, and which manifest lists contain which children (a child of a referenced list
//! is referenced too, as upstream's pruner keeps it). [`dropped_entries`] is what a status write
//! removes from a stream's history.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::api::image_stream::{ImageStream, ImageStreamStatus};

/// A stream, `namespace/name`.
pub type StreamKey = String;

/// Which streams' histories name which digests, and what manifest lists contain.
#[derive(Debug, Default)]
pub struct References {
    /// Per stream, the digests its status history names.
    streams: HashMap<StreamKey, BTreeSet<String>>,
    /// Per digest, the streams naming it.
    holders: HashMap<String, BTreeSet<StreamKey>>,
    /// Per manifest list, its children.
    lists: HashMap<String, Vec<String>>,
    /// Per child, the lists containing it.
    parents: HashMap<String, BTreeSet<String>>,
}

/// Why an Image is still needed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// A stream (`namespace/name`) whose history names the Image, or the list containing it.
    pub stream: StreamKey,
    /// The manifest list through which the stream refers to the Image, if not directly.
    pub via_list: Option<String>,
}

impl References {
    /// Records the history of `stream` (replacing what was known of it).
    pub fn set_stream(&mut self, stream: &ImageStream) {
        let key = stream_key(stream);
        let digests = history_digests(stream.status.as_ref());
        self.remove_stream_key(&key);
        for digest in &digests {
            self.holders
                .entry(digest.clone())
                .or_default()
                .insert(key.clone());
        }
        if !digests.is_empty() {
            self.streams.insert(key, digests);
        }
    }

    /// Forgets a deleted stream.
    pub fn remove_stream(&mut self, stream: &ImageStream) {
        self.remove_stream_key(&stream_key(stream));
    }

    fn remove_stream_key(&mut self, key: &str) {
        let Some(old) = self.streams.remove(key) else {
            return;
        };
        for digest in old {
            if let Some(holders) = self.holders.get_mut(&digest) {
                holders.remove(key);
                if holders.is_empty() {
                    self.holders.remove(&digest);
                }
            }
        }
    }

    /// Takes the streams of `fresh` (a complete re-list), keeping the lists known here.
    pub fn replace_streams(&mut self, fresh: References) {
        self.streams = fresh.streams;
        self.holders = fresh.holders;
    }

    /// Records the children of Image `digest` (none for a single image; only lists are kept).
    pub fn set_image(&mut self, digest: &str, children: Vec<String>) {
        self.remove_image(digest);
        if children.is_empty() {
            return;
        }
        for child in &children {
            self.parents
                .entry(child.clone())
                .or_default()
                .insert(digest.to_string());
        }
        self.lists.insert(digest.to_string(), children);
    }

    /// Forgets a deleted Image.
    pub fn remove_image(&mut self, digest: &str) {
        let Some(children) = self.lists.remove(digest) else {
            return;
        };
        for child in children {
            if let Some(parents) = self.parents.get_mut(&child) {
                parents.remove(digest);
                if parents.is_empty() {
                    self.parents.remove(&child);
                }
            }
        }
    }

    /// A stream that still needs Image `digest`: one whose history names it, or names a list
    /// containing it (to any depth). `None` when nothing does.
    pub fn holder(&self, digest: &str) -> Option<Holder> {
        if let Some(stream) = self.holders.get(digest).and_then(|h| h.first()) {
            return Some(Holder {
                stream: stream.clone(),
                via_list: None,
            });
        }
        let mut seen = BTreeSet::new();
        let mut pending: Vec<&str> = vec![digest];
        while let Some(child) = pending.pop() {
            for list in self.parents.get(child).into_iter().flatten() {
                if !seen.insert(list.as_str()) {
                    continue;
                }
                if let Some(stream) = self.holders.get(list).and_then(|h| h.first()) {
                    return Some(Holder {
                        stream: stream.clone(),
                        via_list: Some(list.clone()),
                    });
                }
                pending.push(list);
            }
        }
        None
    }

    /// Streams known, for tests and metrics.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }
}

fn stream_key(stream: &ImageStream) -> StreamKey {
    format!(
        "{}/{}",
        stream.metadata.namespace.as_deref().unwrap_or_default(),
        stream.metadata.name.as_deref().unwrap_or_default()
    )
}

fn history_digests(status: Option<&ImageStreamStatus>) -> BTreeSet<String> {
    status
        .iter()
        .flat_map(|s| &s.tags)
        .flat_map(|t| &t.items)
        .filter(|i| !i.image.is_empty())
        .map(|i| i.image.clone())
        .collect()
}

/// The history entries (`tag` → digests) that `old` has and `new` has not, per tag; a tag
/// removed from the status loses all its entries.
pub fn dropped_entries(
    old: Option<&ImageStreamStatus>,
    new: Option<&ImageStreamStatus>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut dropped = BTreeMap::new();
    for tag in old.iter().flat_map(|s| &s.tags) {
        let kept: BTreeSet<&str> = new
            .and_then(|s| s.tag(&tag.tag))
            .iter()
            .flat_map(|t| &t.items)
            .map(|i| i.image.as_str())
            .collect();
        let gone: BTreeSet<String> = tag
            .items
            .iter()
            .filter(|i| !i.image.is_empty() && !kept.contains(i.image.as_str()))
            .map(|i| i.image.clone())
            .collect();
        if !gone.is_empty() {
            dropped.insert(tag.tag.clone(), gone);
        }
    }
    dropped
}

/// Where users are sent instead: the operator's pruner.
pub const PRUNER_HINT: &str = "the operator's ImagePruner removes them (kubectl get \
     imagepruner cluster; its spec sets the schedule and what is kept). `oc adm prune \
     images` cannot be used here: Images are named sha256.<hex>, so oc finds no stream using \
     any of them";

/// The refusal of a delete of Image `name` that `holder` still needs.
pub fn delete_refusal(name: &str, holder: &Holder) -> String {
    let via = holder
        .via_list
        .as_ref()
        .map(|list| format!(" through manifest list {list}"))
        .unwrap_or_default();
    format!(
        "Image {name:?} is still used by image stream {}{via}; Images that streams use may only \
         be deleted by the operator: {PRUNER_HINT}",
        holder.stream
    )
}

/// The refusal of a status write dropping `digests` from `tag`'s history while their Images
/// exist.
pub fn drop_refusal(digests: &[String]) -> String {
    format!(
        "history entries whose Images still exist ({}) may only be removed by the operator: \
         {PRUNER_HINT}",
        digests.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn digest(n: u32) -> String {
        format!("sha256:{n:064x}")
    }

    fn stream(name: &str, tags: &[(&str, &[u32])]) -> ImageStream {
        let tags: Vec<_> = tags
            .iter()
            .map(|(tag, images)| {
                let items: Vec<_> = images
                    .iter()
                    .map(|d| {
                        json!({"created": "2026-01-01T00:00:00Z", "generation": 1,
                            "dockerImageReference": format!("r@{}", digest(*d)), "image": digest(*d)})
                    })
                    .collect();
                json!({"tag": tag, "items": items})
            })
            .collect();
        serde_json::from_value(json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {},
            "status": {"dockerImageRepository": "", "tags": tags},
        }))
        .unwrap()
    }

    #[test]
    fn images_in_any_history_and_children_of_their_lists_are_held() {
        let mut refs = References::default();
        refs.set_stream(&stream("a", &[("v1", &[1, 2]), ("v2", &[3])]));
        refs.set_stream(&stream("b", &[("x", &[2])]));
        refs.set_image(&digest(3), vec![digest(30), digest(31)]);
        refs.set_image(&digest(31), vec![digest(310)]);
        refs.set_image(&digest(9), vec![digest(90)]);
        assert_eq!(refs.holder(&digest(1)).unwrap().stream, "ns/a");
        assert_eq!(refs.holder(&digest(2)).unwrap().stream, "ns/a");
        let child = refs.holder(&digest(30)).unwrap();
        assert_eq!(
            (child.stream.as_str(), child.via_list),
            ("ns/a", Some(digest(3)))
        );
        assert!(refs.holder(&digest(310)).is_some(), "any depth");
        assert_eq!(refs.holder(&digest(90)), None, "a list no stream uses");
        assert_eq!(refs.holder(&digest(4)), None);

        // history shrinks: the digest is free once no stream names it
        refs.set_stream(&stream("a", &[("v1", &[1])]));
        assert_eq!(refs.holder(&digest(2)).unwrap().stream, "ns/b");
        assert_eq!(refs.holder(&digest(30)), None);
        refs.remove_stream(&stream("b", &[]));
        assert_eq!(refs.holder(&digest(2)), None);
        assert_eq!(refs.stream_count(), 1);
        refs.remove_image(&digest(3));
        refs.set_stream(&stream("a", &[("v1", &[3])]));
        assert_eq!(refs.holder(&digest(30)), None, "the list's Image is gone");
    }

    #[test]
    fn dropped_entries_are_per_tag() {
        let old = stream("a", &[("v1", &[1, 2, 3]), ("v2", &[4]), ("v3", &[5])]);
        let new = stream("a", &[("v1", &[1]), ("v3", &[5, 6])]);
        let dropped = dropped_entries(old.status.as_ref(), new.status.as_ref());
        assert_eq!(
            dropped,
            BTreeMap::from([
                ("v1".to_string(), BTreeSet::from([digest(2), digest(3)])),
                ("v2".to_string(), BTreeSet::from([digest(4)])),
            ])
        );
        assert!(dropped_entries(new.status.as_ref(), new.status.as_ref()).is_empty());
        assert_eq!(dropped_entries(old.status.as_ref(), None).len(), 3);
    }

    #[test]
    fn refusals_point_at_the_pruner() {
        let holder = Holder {
            stream: "ns/a".into(),
            via_list: None,
        };
        let message = delete_refusal("sha256.ab", &holder);
        assert!(
            message.contains("still used by image stream ns/a"),
            "{message}"
        );
        assert!(message.contains("ImagePruner"), "{message}");
        assert!(drop_refusal(&[digest(1)]).contains("ImagePruner"));
    }
}
