//! Which workloads follow which ImageStreamTag (upstream's trigger cache, indexed by
//! stream), fed by the workload watches ([`TriggerIndex::apply`], [`TriggerIndex::delete`],
//! [`TriggerIndex::reset`] after a relist) and asked by the stream watch which workloads a
//! stream change concerns ([`TriggerIndex::stream_changed`]).
//!
//! Upstream queues every follower of a stream on every stream event and lets each sync find
//! that nothing changed. Here the index remembers each followed tag's last pull spec, so a
//! status write that moved one tag wakes only that tag's followers, and a write that moved
//! none wakes nobody. Every answer is a list of workloads to sync: the sync itself decides
//! from the cache whether anything is written.

use std::collections::{BTreeSet, HashMap};

use super::TagSource;
use super::workload::{Kind, TagKey, Workload, WorkloadKey};

/// A followed tag: who follows it and the pull spec last seen.
#[derive(Debug, Default)]
struct Followed {
    followers: BTreeSet<WorkloadKey>,
    /// `None` until the tag was looked at since it got its first follower.
    seen: Option<Option<String>>,
}

/// The annotated workloads and the tags they follow.
#[derive(Debug, Default)]
pub struct TriggerIndex {
    workloads: HashMap<WorkloadKey, Workload>,
    /// By namespace and stream, then tag.
    streams: HashMap<(String, String), HashMap<String, Followed>>,
}

impl TriggerIndex {
    /// The workload as last read.
    pub fn get(&self, key: &WorkloadKey) -> Option<&Workload> {
        self.workloads.get(key)
    }

    /// Annotated workloads kept.
    pub fn len(&self) -> usize {
        self.workloads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.workloads.is_empty()
    }

    /// Tags followed by at least one workload.
    pub fn followed_tags(&self) -> usize {
        self.streams.values().map(HashMap::len).sum()
    }

    /// Workloads following `tag`.
    pub fn followers(&self, tag: &TagKey) -> Vec<WorkloadKey> {
        self.streams
            .get(&(tag.namespace.clone(), tag.stream.clone()))
            .and_then(|tags| tags.get(&tag.tag))
            .map(|f| f.followers.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Keeps `workload` (added or changed); true when it differs from what was kept, so it
    /// must be synced.
    pub fn apply(&mut self, workload: Workload) -> bool {
        if self.workloads.get(&workload.key) == Some(&workload) {
            return false;
        }
        self.unlink(&workload.key);
        for tag in workload.tags() {
            self.streams
                .entry((tag.namespace.clone(), tag.stream.clone()))
                .or_default()
                .entry(tag.tag.clone())
                .or_default()
                .followers
                .insert(workload.key.clone());
        }
        self.workloads.insert(workload.key.clone(), workload);
        true
    }

    /// Forgets a workload (deleted, or its annotation removed); true if it was kept.
    pub fn delete(&mut self, key: &WorkloadKey) -> bool {
        self.unlink(key);
        self.workloads.remove(key).is_some()
    }

    /// Replaces every workload of `kind` with `workloads` (a relist); returns the ones to
    /// sync: new or changed.
    pub fn reset(&mut self, kind: Kind, workloads: Vec<Workload>) -> Vec<WorkloadKey> {
        let listed: BTreeSet<WorkloadKey> = workloads.iter().map(|w| w.key.clone()).collect();
        let gone: Vec<WorkloadKey> = self
            .workloads
            .keys()
            .filter(|k| k.kind == kind && !listed.contains(*k))
            .cloned()
            .collect();
        for key in &gone {
            self.delete(key);
        }
        workloads
            .into_iter()
            .filter_map(|w| {
                let key = w.key.clone();
                self.apply(w).then_some(key)
            })
            .collect()
    }

    /// The stream `namespace/name` changed (or went away): the followers of each of its
    /// followed tags whose pull spec is not the one last seen.
    pub fn stream_changed(
        &mut self,
        namespace: &str,
        name: &str,
        tags: &impl TagSource,
    ) -> Vec<WorkloadKey> {
        let key = (namespace.to_string(), name.to_string());
        let Some(followed) = self.streams.get_mut(&key) else {
            return Vec::new();
        };
        let mut wake = BTreeSet::new();
        for (tag, f) in followed.iter_mut() {
            let now = tags.pull_spec(&TagKey {
                namespace: namespace.to_string(),
                stream: name.to_string(),
                tag: tag.clone(),
            });
            if f.seen.as_ref() != Some(&now) {
                f.seen = Some(now);
                wake.extend(f.followers.iter().cloned());
            }
        }
        wake.into_iter().collect()
    }

    /// The stream cache listed again: every followed stream is looked at.
    pub fn streams_relisted(&mut self, tags: &impl TagSource) -> Vec<WorkloadKey> {
        let streams: Vec<(String, String)> = self.streams.keys().cloned().collect();
        let mut wake = BTreeSet::new();
        for (namespace, name) in streams {
            wake.extend(self.stream_changed(&namespace, &name, tags));
        }
        wake.into_iter().collect()
    }

    fn unlink(&mut self, key: &WorkloadKey) {
        let Some(old) = self.workloads.get(key) else {
            return;
        };
        for tag in old.tags() {
            let stream = (tag.namespace.clone(), tag.stream.clone());
            let Some(tags) = self.streams.get_mut(&stream) else {
                continue;
            };
            if let Some(f) = tags.get_mut(&tag.tag) {
                f.followers.remove(key);
                if f.followers.is_empty() {
                    tags.remove(&tag.tag);
                }
            }
            if tags.is_empty() {
                self.streams.remove(&stream);
            }
        }
    }
}
