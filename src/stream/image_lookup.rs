//! `lookupPolicy.local`: short image names in Pods and pod templates resolved to a stream's
//! digest, as OpenShift's image policy admission plugin does it (apiserver-library-go
//! `pkg/admission/imagepolicy`, `resolveImageReference`, `resolveImageStreamTag`, the
//! `imagereferencemutators` of pods; semantics 9). Pure: the webhook feeds [`LookupIndex`]
//! from a watch and asks [`plan`] which image fields to rewrite.
//!
//! Upstream's rules, with OpenShift's default configuration (`resolveImages: Attempt`, every
//! resolution rule `localNames: true`):
//!
//! - Kinds: Pods, ReplicationControllers, Deployments, ReplicaSets, StatefulSets, DaemonSets,
//!   Jobs and CronJobs; an object with a controller owner reference is left alone (its
//!   owner's template was resolved already); a Job is never rewritten on update (its template
//!   is immutable).
//! - On update, a container whose name and image are the same in the old object is skipped,
//!   unless the resolve-names annotation was added or removed.
//! - A reference is *partial* when it has no registry and no namespace (`mysql`, `php:8`).
//!   With `alpha.image.policy.openshift.io/resolve-names: "*"` on the object or its template
//!   every reference without a digest is partial, and only its last path segment names the
//!   stream (`oc set image-lookup deploy/NAME` relies on this: `registry:5000/test/mysql:v1`
//!   then resolves through stream `mysql`, tag `v1`).
//! - A partial reference is looked up as ImageStreamTag `<name>:<tag or latest>` in the
//!   object's namespace. When the stream has `lookupPolicy.local` (or the annotation asks),
//!   it becomes the tag's current pull spec (referencePolicy honoured) with the tag replaced
//!   by the image's digest. When the tag has no image but the stream has a repository, it
//!   becomes `<status.dockerImageRepository>:<tag>`.
//! - Anything else, and every failure, leaves the reference exactly as written.
//!
//! One addition: ephemeral containers are resolved like the others (upstream never sees
//! them: they arrive through the `pods/ephemeralcontainers` subresource, which it skips).
//!
//! The index keeps per stream only what resolution reads (the flag, the repository, each
//! tag's finished pull spec), so lookups cost a hash probe and a binary search.

use std::collections::HashMap;

use serde_json::Value;

use super::history::{PullSpecMode, pull_spec_for_tag};
use crate::api::image_stream::ImageStream;
use crate::reference::DockerImageReference;

/// Object or pod template annotation: `"*"` resolves every name through the namespace's
/// streams, whatever their lookup policy (what `oc set image-lookup deploy/NAME` writes).
pub const ANNOTATION_RESOLVE_NAMES: &str = "alpha.image.policy.openshift.io/resolve-names";

/// The tag a reference without one means.
const DEFAULT_TAG: &str = "latest";

/// What resolution needs of one stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamEntry {
    /// `spec.lookupPolicy.local`.
    local: bool,
    /// `status.dockerImageRepository`, when set and parseable: where tags without an image
    /// point.
    repository: Option<Box<str>>,
    /// Tags with a current image, sorted by name.
    tags: Box<[TagEntry]>,
}

/// A tag and its digest pull spec, or `None` when the tag's pull spec does not parse
/// (upstream's resolution fails: the reference stays).
type TagEntry = (Box<str>, Option<Box<str>>);

impl StreamEntry {
    /// The entry of `stream`.
    pub fn of(stream: &ImageStream) -> StreamEntry {
        let Some(status) = stream.status.as_ref() else {
            return StreamEntry {
                local: stream.spec.lookup_policy.local,
                ..StreamEntry::default()
            };
        };
        let repository = Some(status.docker_image_repository.as_str())
            .filter(|r| !r.is_empty() && DockerImageReference::parse(r).is_ok())
            .map(Box::from);
        let mut tags: Vec<TagEntry> = status
            .tags
            .iter()
            .filter_map(|t| {
                let event = t.items.first().filter(|e| !e.image.is_empty())?;
                let pull_spec = pull_spec_for_tag(stream, &t.tag, false, PullSpecMode::Recent)
                    .ok()?
                    .pull_spec;
                Some((
                    Box::from(t.tag.as_str()),
                    by_digest(&pull_spec, &event.image).map(Box::from),
                ))
            })
            .collect();
        tags.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        tags.dedup_by(|a, b| a.0 == b.0);
        StreamEntry {
            local: stream.spec.lookup_policy.local,
            repository,
            tags: tags.into_boxed_slice(),
        }
    }

    fn tag(&self, tag: &str) -> Option<&Option<Box<str>>> {
        self.tags
            .binary_search_by(|(t, _)| (**t).cmp(tag))
            .ok()
            .map(|i| &self.tags[i].1)
    }

    /// Heap bytes held (strings and the tag slice).
    fn heap_bytes(&self) -> usize {
        let tags = self.tags.len() * std::mem::size_of::<TagEntry>();
        let strings: usize = self
            .tags
            .iter()
            .map(|(t, p)| t.len() + p.as_ref().map_or(0, |p| p.len()))
            .sum();
        tags + strings + self.repository.as_ref().map_or(0, |r| r.len())
    }
}

/// `pull_spec` with its tag dropped and `image` as its ID (upstream sets `Tag = ""` and
/// `ID = image.Name` on the parsed istag reference); `None` when it does not parse.
fn by_digest(pull_spec: &str, image: &str) -> Option<String> {
    let mut reference = DockerImageReference::parse(pull_spec).ok()?;
    reference.tag.clear();
    reference.id = image.to_string();
    Some(reference.exact()).filter(|s| !s.is_empty())
}

/// Every stream's [`StreamEntry`], by namespace and name.
#[derive(Clone, Debug, Default)]
pub struct LookupIndex {
    namespaces: HashMap<Box<str>, HashMap<Box<str>, StreamEntry>>,
}

impl LookupIndex {
    /// Adds or replaces `stream`.
    pub fn apply(&mut self, stream: &ImageStream) {
        if let (Some(namespace), Some(name)) = (
            stream.metadata.namespace.as_deref(),
            stream.metadata.name.as_deref(),
        ) {
            self.insert(namespace, name, StreamEntry::of(stream));
        }
    }

    /// Adds or replaces the entry of stream `namespace/name`.
    pub fn insert(&mut self, namespace: &str, name: &str, entry: StreamEntry) {
        match self.namespaces.get_mut(namespace) {
            Some(streams) => {
                streams.insert(name.into(), entry);
            }
            None => {
                self.namespaces
                    .insert(namespace.into(), HashMap::from([(name.into(), entry)]));
            }
        }
    }

    /// Removes stream `namespace/name`.
    pub fn delete(&mut self, namespace: &str, name: &str) {
        if let Some(streams) = self.namespaces.get_mut(namespace) {
            streams.remove(name);
            if streams.is_empty() {
                self.namespaces.remove(namespace);
            }
        }
    }

    pub fn stream(&self, namespace: &str, name: &str) -> Option<&StreamEntry> {
        self.namespaces.get(namespace)?.get(name)
    }

    /// Streams indexed.
    pub fn len(&self) -> usize {
        self.namespaces.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty()
    }

    /// Approximate heap bytes held: entries, their strings, and the maps' slots.
    pub fn heap_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(Box<str>, StreamEntry)>() + 1;
        self.namespaces
            .iter()
            .map(|(namespace, streams)| {
                namespace.len()
                    + std::mem::size_of::<(Box<str>, HashMap<Box<str>, StreamEntry>)>()
                    + 1
                    + streams.capacity() * slot
                    + streams
                        .iter()
                        .map(|(name, entry)| name.len() + entry.heap_bytes())
                        .sum::<usize>()
            })
            .sum()
    }
}

/// What became of one image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Rewritten to this pull spec.
    Resolved(String),
    /// Left as written.
    Kept(Kept),
}

/// Why a reference was left as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kept {
    /// Not a pull spec.
    Unparseable,
    /// Pinned by digest already.
    ByDigest,
    /// Has a registry or a namespace (and no annotation asks for every name).
    NotShortName,
    /// No stream of that name in the namespace.
    NoStream,
    /// The stream does not resolve local names, and no annotation asks.
    LookupDisabled,
    /// The tag has no image and the stream no repository.
    NoImage,
    /// The tag's pull spec does not parse.
    Unresolvable,
    /// Resolution gives what is written.
    Same,
}

impl Kept {
    /// Stable reason, for logs and metric labels.
    pub fn reason(self) -> &'static str {
        match self {
            Kept::Unparseable => "Unparseable",
            Kept::ByDigest => "ByDigest",
            Kept::NotShortName => "NotShortName",
            Kept::NoStream => "NoStream",
            Kept::LookupDisabled => "LookupDisabled",
            Kept::NoImage => "NoImage",
            Kept::Unresolvable => "Unresolvable",
            Kept::Same => "Same",
        }
    }
}

/// Resolves `image` written in `namespace` against `index`; `resolve_all` is the
/// resolve-names annotation.
pub fn resolve(image: &str, namespace: &str, resolve_all: bool, index: &LookupIndex) -> Resolution {
    let kept = Resolution::Kept;
    let Ok(reference) = DockerImageReference::parse(image) else {
        return kept(Kept::Unparseable);
    };
    if !reference.id.is_empty() {
        return kept(Kept::ByDigest);
    }
    let short = reference.registry.is_empty()
        && reference.namespace.is_empty()
        && !reference.name.is_empty();
    if !(short || resolve_all) {
        return kept(Kept::NotShortName);
    }
    let tag = if reference.tag.is_empty() {
        DEFAULT_TAG
    } else {
        reference.tag.as_str()
    };
    let Some(stream) = index.stream(namespace, &reference.name) else {
        return kept(Kept::NoStream);
    };
    if !(stream.local || resolve_all) {
        return kept(Kept::LookupDisabled);
    }
    let resolved = match stream.tag(tag) {
        Some(Some(pull_spec)) => pull_spec.to_string(),
        Some(None) => return kept(Kept::Unresolvable),
        None => {
            let Some(repository) = stream
                .repository
                .as_deref()
                .and_then(|r| DockerImageReference::parse(r).ok())
            else {
                return kept(Kept::NoImage);
            };
            let tagged = DockerImageReference {
                tag: tag.to_string(),
                ..repository
            }
            .exact();
            if tagged.is_empty() {
                return kept(Kept::NoImage);
            }
            tagged
        }
    };
    if resolved == image {
        return kept(Kept::Same);
    }
    Resolution::Resolved(resolved)
}

/// The workload kinds whose pod specs are resolved (upstream's default resolution rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Pod,
    ReplicationController,
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
}

impl Workload {
    /// The workload of API group `group`, kind `kind`.
    pub fn of(group: &str, kind: &str) -> Option<Workload> {
        Some(match (group, kind) {
            ("", "Pod") => Workload::Pod,
            ("", "ReplicationController") => Workload::ReplicationController,
            ("apps", "Deployment") => Workload::Deployment,
            ("apps", "ReplicaSet") => Workload::ReplicaSet,
            ("apps", "StatefulSet") => Workload::StatefulSet,
            ("apps", "DaemonSet") => Workload::DaemonSet,
            ("batch", "Job") => Workload::Job,
            ("batch", "CronJob") => Workload::CronJob,
            _ => return None,
        })
    }

    /// JSON pointer of the pod template (none for a Pod).
    fn template(self) -> Option<&'static str> {
        match self {
            Workload::Pod => None,
            Workload::CronJob => Some("/spec/jobTemplate/spec/template"),
            _ => Some("/spec/template"),
        }
    }

    /// JSON pointer of the pod spec.
    fn pod_spec(self) -> &'static str {
        match self {
            Workload::Pod => "/spec",
            Workload::CronJob => "/spec/jobTemplate/spec/template/spec",
            _ => "/spec/template/spec",
        }
    }
}

/// The admission operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
}

/// One admission request, as far as resolution reads it.
#[derive(Clone, Copy, Debug)]
pub struct Review<'a> {
    pub workload: Workload,
    pub operation: Operation,
    pub namespace: &'a str,
    pub object: &'a Value,
    /// The stored object, on update.
    pub old_object: Option<&'a Value>,
}

/// One image field to rewrite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageChange {
    /// JSON pointer of the `image` field.
    pub path: String,
    pub from: String,
    pub to: String,
}

/// Why an object was not looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skipped {
    /// A controller owns it: its owner's template was resolved.
    Controlled,
    /// A Job's template cannot change after creation.
    JobUpdate,
    /// No pod spec (a ReplicationController without a template).
    NoPodSpec,
}

impl Skipped {
    pub fn reason(self) -> &'static str {
        match self {
            Skipped::Controlled => "Controlled",
            Skipped::JobUpdate => "JobUpdate",
            Skipped::NoPodSpec => "NoPodSpec",
        }
    }
}

/// What to do with one object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The image fields to rewrite, in document order (init, regular, ephemeral containers).
    pub changes: Vec<ImageChange>,
    /// References left as written, with why (short names only: `NotShortName`, `ByDigest`
    /// and `Same` are not listed).
    pub kept: Vec<(String, Kept)>,
    pub skipped: Option<Skipped>,
}

const CONTAINER_LISTS: [&str; 3] = ["initContainers", "containers", "ephemeralContainers"];

/// Which image fields of `review`'s object to rewrite.
pub fn plan(review: &Review<'_>, index: &LookupIndex) -> Plan {
    let skip = |why| Plan {
        skipped: Some(why),
        ..Plan::default()
    };
    if controlled(review.object) {
        return skip(Skipped::Controlled);
    }
    if review.workload == Workload::Job && review.operation == Operation::Update {
        return skip(Skipped::JobUpdate);
    }
    let spec_path = review.workload.pod_spec();
    let Some(spec) = review.object.pointer(spec_path).filter(|s| s.is_object()) else {
        return skip(Skipped::NoPodSpec);
    };
    let resolve_all = resolves_all_names(review.object, review.workload);
    let old_spec = review
        .old_object
        .and_then(|old| old.pointer(spec_path))
        .filter(|_| review.operation == Operation::Update);
    let annotation_changed = review
        .old_object
        .is_some_and(|old| resolves_all_names(old, review.workload) != resolve_all);
    let mut plan = Plan::default();
    for list in CONTAINER_LISTS {
        let Some(containers) = spec.get(list).and_then(Value::as_array) else {
            continue;
        };
        for (i, container) in containers.iter().enumerate() {
            let Some(image) = container.get("image").and_then(Value::as_str) else {
                continue;
            };
            let name = container.get("name").and_then(Value::as_str).unwrap_or("");
            if !annotation_changed && old_spec.is_some_and(|old| same_image(old, name, image)) {
                continue;
            }
            let path = format!("{spec_path}/{list}/{i}/image");
            match resolve(image, review.namespace, resolve_all, index) {
                Resolution::Resolved(to) => plan.changes.push(ImageChange {
                    path,
                    from: image.to_string(),
                    to,
                }),
                Resolution::Kept(Kept::NotShortName | Kept::ByDigest | Kept::Same) => {}
                Resolution::Kept(why) => plan.kept.push((path, why)),
            }
        }
    }
    plan
}

/// Whether an owner reference has `controller: true`.
fn controlled(object: &Value) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|owners| {
            owners
                .iter()
                .any(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
        })
}

/// The resolve-names annotation on the template or the object (upstream `ResolveAllNames`).
fn resolves_all_names(object: &Value, workload: Workload) -> bool {
    let asks = |metadata: Option<&Value>| {
        metadata
            .and_then(|m| m.pointer("/annotations"))
            .and_then(|a| a.get(ANNOTATION_RESOLVE_NAMES))
            .and_then(Value::as_str)
            == Some("*")
    };
    let template = workload
        .template()
        .and_then(|t| object.pointer(t))
        .and_then(|t| t.get("metadata"));
    asks(template) || asks(object.get("metadata"))
}

/// Whether the old pod spec has a container called `name` with `image` (upstream
/// `hasIdenticalPodSpecImage`; container names are unique across the lists).
fn same_image(old_spec: &Value, name: &str, image: &str) -> bool {
    CONTAINER_LISTS
        .iter()
        .filter_map(|list| old_spec.get(list).and_then(Value::as_array))
        .flatten()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
        .is_some_and(|c| c.get("image").and_then(Value::as_str) == Some(image))
}

#[cfg(test)]
mod tests;
