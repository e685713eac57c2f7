//! One pass of the imagestream controller over a stream, decided without IO: which tags to
//! import, how tags that follow other tags resolve, and how results become the stream's
//! status (semantics 2.6, 3.1 to 3.5, 4, 6; design.md sections 4 and 5).
//!
//! The controller reads the stream, asks [`imports`] what to fetch, runs the importer,
//! then builds the next status with [`StatusUpdate`] (import results, then resolutions,
//! then tracking tags) and writes it once, only when it differs.
//!
//! Generations follow design rule 4: an attempt for spec generation S writes E = S on
//! success and C = S on failure; the spec is never written.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::image_stream::{
    DOCKER_IMAGE_REPOSITORY_CHECK_ANNOTATION, IMPORTER_PREFER_ARCH_ANNOTATION,
    IMPORTER_PREFER_OS_ANNOTATION, INSECURE_REPOSITORY_ANNOTATION, ImageStream, ImageStreamStatus,
    ImportMode, KIND_DOCKER_IMAGE, KIND_IMAGE_STREAM_IMAGE, KIND_IMAGE_STREAM_TAG, TagEvent,
    TagReference,
};
use crate::import::contract::{
    ImageImport, ImageResult, Mode, Preference, PullSpec, RepositoryImport, RepositoryResult,
};
use crate::reference::{DockerImageReference, digest_or_image_match};

use super::generation::{importable, needs_import};
use super::history::{
    add_tag_event, clear_conditions, drop_empty_tags, history_changed, latest, observed_generation,
    set_failure_condition, update_tracking_tags,
};
use super::validation::split_from_reference;

/// Where the cluster's registry is, for `status.dockerImageRepository` and
/// `status.publicDockerImageRepository` (semantics 10.1 cases 1 to 5).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Repositories {
    /// `internalRegistryHostname`.
    pub internal: Option<String>,
    /// The first `externalRegistryHostnames` entry.
    pub external: Option<String>,
}

impl Repositories {
    /// `(dockerImageRepository, publicDockerImageRepository)` of a stream.
    pub fn for_stream(&self, stream: &ImageStream) -> (String, String) {
        let namespace = stream
            .metadata
            .namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or("default");
        let name = stream.metadata.name.as_deref().unwrap_or_default();
        let internal = match &self.internal {
            Some(host) => format!("{host}/{namespace}/{name}"),
            None => stream.spec.docker_image_repository.clone(),
        };
        let public = match &self.external {
            Some(host) => match stream.metadata.namespace.as_deref() {
                Some(ns) if !ns.is_empty() => format!("{host}/{ns}/{name}"),
                _ => format!("{host}/{name}"),
            },
            None => String::new(),
        };
        (internal, public)
    }
}

/// One tag to import: the spec tag and generation its result goes to, and the import the
/// engine runs as it is (the import contract's [`ImageImport`], its pull spec parsed here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagImport {
    pub tag: String,
    /// The spec generation this attempt answers (E or C on the result).
    pub generation: i64,
    pub import: ImageImport,
}

/// Whether a scheduled tag is still due for checks: digest references stop once imported
/// (semantics 6, `needsScheduling`).
pub fn scheduled_eligible(stream: &ImageStream, tag: &TagReference) -> bool {
    if !importable(tag) || !tag.import_policy.scheduled {
        return false;
    }
    let Some(from) = &tag.from else { return false };
    scheduled_due(
        stream,
        tag,
        DockerImageReference::parse(&from.name).as_ref().ok(),
    )
}

/// [`scheduled_eligible`] for an importable tag whose pull spec is parsed already (`None`
/// when it does not parse).
fn scheduled_due(
    stream: &ImageStream,
    tag: &TagReference,
    parsed: Option<&DockerImageReference>,
) -> bool {
    if !tag.import_policy.scheduled {
        return false;
    }
    let Some(parsed) = parsed else {
        return false;
    };
    if !parsed.id.is_empty() {
        let imported =
            latest_event(stream, &tag.name).is_some_and(|e| Some(e.generation) == tag.generation);
        return !imported;
    }
    true
}

/// Whether any tag of the stream is due for scheduled checks.
pub fn has_scheduled_tags(stream: &ImageStream) -> bool {
    stream
        .spec
        .tags
        .iter()
        .any(|t| scheduled_eligible(stream, t))
}

/// The tags to import now: every importable tag whose generation is ahead of what was
/// observed (a tag without generation counts as new), plus, when `scheduled` is set, every
/// eligible scheduled tag (checked HEAD first). Each tag's pull spec is parsed once, into
/// its [`TagImport`].
pub fn imports(stream: &ImageStream, scheduled: bool, default_mode: Mode) -> Vec<TagImport> {
    let status = stream.status.as_ref();
    stream
        .spec
        .tags
        .iter()
        .filter_map(|t| {
            let work = import_for(stream, t, default_mode)?;
            let due = needs_import(t, status, true)
                || (scheduled && scheduled_due(stream, t, work.import.from.parsed().ok()));
            due.then_some(work)
        })
        .collect()
}

/// The import of one importable tag, whatever its generations say (`None` otherwise).
pub fn import_for(stream: &ImageStream, t: &TagReference, default_mode: Mode) -> Option<TagImport> {
    if !importable(t) {
        return None;
    }
    let from = t.from.as_ref()?;
    Some(TagImport {
        tag: t.name.clone(),
        generation: t.generation.unwrap_or(0),
        import: ImageImport {
            from: PullSpec::new(from.name.clone()),
            mode: import_mode(t.import_policy.import_mode, default_mode),
            insecure: t.import_policy.insecure || insecure_stream(stream),
            prefer: preference(t),
            current_image: latest_event(stream, &t.name)
                .map(|e| e.image.clone())
                .filter(|i| !i.is_empty()),
            verify_current: false,
        },
    })
}

/// The stream's `openshift.io/image.insecureRepository` annotation.
fn insecure_stream(stream: &ImageStream) -> bool {
    stream
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(INSECURE_REPOSITORY_ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// The import mode a policy asks for (the cluster's default when unset).
pub fn import_mode(mode: ImportMode, default_mode: Mode) -> Mode {
    match mode {
        ImportMode::Unset => default_mode,
        ImportMode::Legacy => Mode::Legacy,
        ImportMode::PreserveOriginal => Mode::PreserveOriginal,
    }
}

/// A spec tag's platform preference annotations (semantics 5.3).
pub fn preference(t: &TagReference) -> Preference {
    let annotation = |key: &str| {
        t.annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .filter(|v| !v.is_empty())
            .cloned()
    };
    Preference {
        arch: annotation(IMPORTER_PREFER_ARCH_ANNOTATION),
        os: annotation(IMPORTER_PREFER_OS_ANNOTATION),
    }
}

/// Whether `spec.dockerImageRepository` is set and not yet imported (no
/// `openshift.io/image.dockerRepositoryCheck` annotation).
pub fn repository_pending(stream: &ImageStream) -> bool {
    let checked = stream
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DOCKER_IMAGE_REPOSITORY_CHECK_ANNOTATION))
        .is_some_and(|v| !v.is_empty());
    !stream.spec.docker_image_repository.trim().is_empty() && !checked
}

/// The repository import `spec.dockerImageRepository` asks for (semantics 2.6, a "full"
/// import): only while the stream lacks the `openshift.io/image.dockerRepositoryCheck`
/// annotation, which the controller sets once the repository was listed, so a stream that
/// carries it imports nothing for its repository (conformance case 83). Removing the
/// annotation imports the repository again.
pub fn repository_import(stream: &ImageStream, default_mode: Mode) -> Option<RepositoryImport> {
    if !repository_pending(stream) {
        return None;
    }
    let from = stream.spec.docker_image_repository.trim();
    let current: BTreeMap<String, String> = stream
        .status
        .iter()
        .flat_map(|s| &s.tags)
        .filter_map(|t| Some((t.tag.clone(), t.items.first()?.image.clone())))
        .filter(|(_, image)| !image.is_empty())
        .collect();
    Some(RepositoryImport {
        from: from.to_string(),
        mode: default_mode,
        insecure: insecure_stream(stream),
        prefer: stream
            .spec
            .tags
            .iter()
            .map(|t| (t.name.clone(), preference(t)))
            .collect(),
        current,
    })
}

fn latest_event<'a>(stream: &'a ImageStream, tag: &str) -> Option<&'a TagEvent> {
    stream.status.as_ref().and_then(|s| latest(s, tag))
}

/// What happened to one tag in this pass, for Events and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagChange {
    /// The tag points at a new image (or a new pull spec) now.
    Updated { tag: String, image: String },
    /// The import failed and the condition is new (an identical failure is not reported).
    Failed {
        tag: String,
        reason: String,
        message: String,
    },
    /// The tag had a failure condition and the import succeeded.
    Recovered { tag: String },
}

impl TagChange {
    pub fn tag(&self) -> &str {
        match self {
            TagChange::Updated { tag, .. }
            | TagChange::Failed { tag, .. }
            | TagChange::Recovered { tag } => tag,
        }
    }
}

/// A stream found elsewhere, for ImageStreamTag/ImageStreamImage references to other streams.
pub trait StreamLookup {
    /// The stream `name` in `namespace`, if it exists.
    fn stream(&self, namespace: &str, name: &str) -> Option<ImageStream>;
}

impl<F: Fn(&str, &str) -> Option<ImageStream>> StreamLookup for F {
    fn stream(&self, namespace: &str, name: &str) -> Option<ImageStream> {
        self(namespace, name)
    }
}

/// The next status of one stream, built step by step.
#[derive(Debug)]
pub struct StatusUpdate<'a> {
    stream: &'a ImageStream,
    status: ImageStreamStatus,
    now: Time,
    changes: Vec<TagChange>,
    /// Tags whose items[0] changed (upstream's `tagsChanged`), for tracking tags.
    moved: BTreeSet<String>,
}

impl<'a> StatusUpdate<'a> {
    /// Starts from the stored status with the repositories recomputed and empty tags dropped.
    pub fn new(stream: &'a ImageStream, repositories: &Repositories, now: Time) -> Self {
        let mut status = stream.status.clone().unwrap_or_default();
        let (internal, public) = repositories.for_stream(stream);
        status.docker_image_repository = internal;
        status.public_docker_image_repository = public;
        drop_empty_tags(&mut status);
        StatusUpdate {
            stream,
            status,
            now,
            changes: Vec::new(),
            moved: BTreeSet::new(),
        }
    }

    /// Applies one import result for the spec generation `generation` to `tag` (semantics
    /// 5.4 with design rule 4: E = S on success, C = S on failure).
    pub fn apply_import(&mut self, tag: &str, generation: i64, result: &ImageResult) {
        let had_condition = self
            .status
            .tag(tag)
            .is_some_and(|t| !t.conditions.is_empty());
        match result {
            Ok(imported) => {
                let event = TagEvent {
                    created: self.now.clone(),
                    docker_image_reference: imported.reference.clone(),
                    image: imported.image.clone(),
                    generation,
                };
                self.apply_event(tag, event);
                clear_conditions(&mut self.status, tag);
                if had_condition {
                    self.changes.push(TagChange::Recovered {
                        tag: tag.to_string(),
                    });
                }
            }
            Err(failure) => {
                self.fail(tag, failure.reason, &failure.message, generation);
            }
        }
    }

    /// Applies a repository import (semantics 5.6) to the status: every listed tag gets its
    /// event (E = the stream's generation) or its failure condition. Tags the spec names are
    /// imported from their own `from` and left alone here (deviation: upstream writes the
    /// repository's tags into the spec; the operator never writes a stream's spec, so they
    /// are status tags, as pushed tags are). A repository that could not be listed changes
    /// nothing.
    pub fn apply_repository(&mut self, result: &RepositoryResult) {
        let Ok(images) = &result.images else { return };
        let generation = self.stream.metadata.generation.unwrap_or(0);
        for (tag, image) in result.tags.iter().zip(images) {
            if self.stream.spec.tag(tag).is_none() {
                self.apply_import(tag, generation, image);
            }
        }
    }

    /// Adds `event` to `tag` with upstream's rules (semantics 3.1): items[0] rewritten in
    /// place or a new entry. A tag that moved is reported and passed on to the tags that
    /// follow it by [`Self::update_tracking`]. Returns whether the status changed.
    pub fn apply_event(&mut self, tag: &str, event: TagEvent) -> bool {
        let before = latest(&self.status, tag).cloned();
        let image = event.image.clone();
        let changed = add_tag_event(&mut self.status, tag, event);
        let after = latest(&self.status, tag);
        let history = history_changed(
            before.as_slice(),
            after.map(std::slice::from_ref).unwrap_or_default(),
        );
        if history.changed && !history.deleted {
            self.moved.insert(tag.to_string());
        }
        if points_elsewhere(before.as_ref(), after) {
            self.changes.push(TagChange::Updated {
                tag: tag.to_string(),
                image,
            });
        }
        changed
    }

    fn fail(&mut self, tag: &str, reason: &str, message: &str, generation: i64) {
        let now = self.now.clone();
        let known = |status: &ImageStreamStatus| {
            status
                .tag(tag)
                .and_then(|t| t.conditions.first())
                .map(|c| (c.reason.clone(), c.message.clone()))
        };
        let before = known(&self.status);
        if set_failure_condition(&mut self.status, tag, reason, message, generation, now)
            && known(&self.status) != before
        {
            let message = self
                .status
                .tag(tag)
                .and_then(|t| t.conditions.first())
                .map(|c| c.message.clone())
                .unwrap_or_default();
            self.changes.push(TagChange::Failed {
                tag: tag.to_string(),
                reason: reason.to_string(),
                message,
            });
        }
    }

    /// Resolves the tags that follow something other than a registry (semantics 3.2, 3.5):
    /// `reference: true` DockerImage tags, ImageStreamTag and ImageStreamImage references,
    /// each when its generation is ahead of what was observed.
    pub fn resolve_references(&mut self, others: &impl StreamLookup) {
        let namespace = self.stream.metadata.namespace.clone().unwrap_or_default();
        let name = self.stream.metadata.name.clone().unwrap_or_default();
        for tag in &self.stream.spec.tags {
            let Some(from) = &tag.from else { continue };
            let generation = tag.generation.unwrap_or(0);
            let observed = observed_generation(Some(&self.status), &tag.name);
            let pending = observed == 0 || generation > observed;
            if !pending || importable(tag) {
                continue;
            }
            let resolved = match from.kind.as_str() {
                KIND_DOCKER_IMAGE if tag.reference => Ok(Some(TagEvent {
                    created: self.now.clone(),
                    docker_image_reference: from.name.clone(),
                    image: String::new(),
                    generation,
                })),
                KIND_IMAGE_STREAM_TAG => {
                    self.resolve_stream_tag(&namespace, &name, from, generation, others)
                }
                KIND_IMAGE_STREAM_IMAGE => {
                    self.resolve_stream_image(&namespace, &name, from, generation, others)
                }
                _ => Ok(None),
            };
            match resolved {
                Ok(Some(event)) => {
                    self.apply_event(&tag.name, event);
                }
                Ok(None) => {}
                Err((reason, message)) => self.fail(&tag.name, reason, &message, generation),
            }
        }
    }

    fn resolve_stream_tag(
        &self,
        namespace: &str,
        name: &str,
        from: &crate::api::image_stream::ObjectReference,
        generation: i64,
        others: &impl StreamLookup,
    ) -> Result<Option<TagEvent>, (&'static str, String)> {
        let Some((stream, source_tag)) = split_from_reference(&from.kind, &from.name, name) else {
            return Err((
                "Invalid",
                format!(
                    "spec.tags.from.name: Invalid value: {:?}: must be of the form <tag>, <stream>:<tag>, or <namespace>/<stream>:<tag>",
                    from.name
                ),
            ));
        };
        let source_namespace = if from.namespace.is_empty() {
            namespace
        } else {
            from.namespace.as_str()
        };
        let event = if source_namespace == namespace && stream == name {
            latest(&self.status, source_tag).cloned()
        } else {
            let Some(other) = others.stream(source_namespace, stream) else {
                return Err((
                    "NotFound",
                    format!(
                        "imagestreams.image.openshift.io {stream:?} not found in namespace {source_namespace:?}"
                    ),
                ));
            };
            other
                .status
                .as_ref()
                .and_then(|s| latest(s, source_tag))
                .cloned()
        };
        // A source tag without history yields nothing yet, as upstream (no error).
        Ok(event.map(|e| TagEvent { generation, ..e }))
    }

    fn resolve_stream_image(
        &self,
        namespace: &str,
        name: &str,
        from: &crate::api::image_stream::ObjectReference,
        generation: i64,
        others: &impl StreamLookup,
    ) -> Result<Option<TagEvent>, (&'static str, String)> {
        let Some((stream, id)) = split_from_reference(&from.kind, &from.name, name) else {
            return Err((
                "Invalid",
                format!(
                    "spec.tags.from.name: Invalid value: {:?}: must be of the form <id> or <stream>@<id>",
                    from.name
                ),
            ));
        };
        let source_namespace = if from.namespace.is_empty() {
            namespace
        } else {
            from.namespace.as_str()
        };
        let other;
        let status = if source_namespace == namespace && stream == name {
            Some(&self.status)
        } else {
            other = others.stream(source_namespace, stream).ok_or_else(|| {
                (
                    "NotFound",
                    format!("imagestreams.image.openshift.io {stream:?} not found in namespace {source_namespace:?}"),
                )
            })?;
            other.status.as_ref()
        };
        let mut images: Vec<&TagEvent> = Vec::new();
        for event in status.iter().flat_map(|s| &s.tags).flat_map(|t| &t.items) {
            if digest_or_image_match(&event.image, id)
                && !images.iter().any(|e| e.image == event.image)
            {
                images.push(event);
            }
        }
        match images.as_slice() {
            [] => Err((
                "NotFound",
                format!("imagestreamimages.image.openshift.io \"{stream}@{id}\" not found"),
            )),
            [event] => Ok(Some(TagEvent {
                created: self.now.clone(),
                docker_image_reference: event.docker_image_reference.clone(),
                image: event.image.clone(),
                generation,
            })),
            several => Err((
                "Conflict",
                format!(
                    "multiple images match the prefix {id:?}: {}",
                    several
                        .iter()
                        .map(|e| e.image.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    /// Tags that follow a tag of this stream whose image moved receive its event (3.4).
    /// Repeats while tags keep moving, so chains of aliases settle in one pass.
    pub fn update_tracking(&mut self) {
        let namespace = self.stream.metadata.namespace.clone().unwrap_or_default();
        let name = self.stream.metadata.name.clone().unwrap_or_default();
        let mut pending: Vec<String> = self.moved.iter().cloned().collect();
        let mut rounds = 0;
        while let Some(tag) = pending.pop() {
            rounds += 1;
            if rounds > 4 * self.stream.spec.tags.len().max(1) {
                break; // a cycle of aliases
            }
            let Some(event) = latest(&self.status, &tag).cloned() else {
                continue;
            };
            for followed in update_tracking_tags(
                &name,
                &namespace,
                &self.stream.spec,
                &mut self.status,
                &tag,
                &event,
            ) {
                self.changes.push(TagChange::Updated {
                    tag: followed.clone(),
                    image: event.image.clone(),
                });
                pending.push(followed);
            }
        }
    }

    /// Keeps at most `max` events per tag (the cluster's optional cap).
    pub fn cap_history(&mut self, max: Option<usize>) {
        if let Some(max) = max.filter(|m| *m > 0) {
            for tag in &mut self.status.tags {
                tag.items.truncate(max);
            }
        }
    }

    /// The status to write, or `None` when it equals the stored one.
    pub fn finish(self) -> (Option<ImageStreamStatus>, Vec<TagChange>) {
        let unchanged = self.stream.status.as_ref() == Some(&self.status)
            || (self.stream.status.is_none() && self.status == ImageStreamStatus::default());
        ((!unchanged).then_some(self.status), self.changes)
    }

    /// The status as built so far.
    pub fn status(&self) -> &ImageStreamStatus {
        &self.status
    }
}

/// Whether items[0] now names another pull spec or image (a generation alone is no news).
fn points_elsewhere(before: Option<&TagEvent>, after: Option<&TagEvent>) -> bool {
    match (before, after) {
        (None, Some(_)) => true,
        (Some(b), Some(a)) => {
            b.image != a.image || b.docker_image_reference != a.docker_image_reference
        }
        _ => false,
    }
}

/// The size guard (issue 4 item 7): when `next` would make the stream larger than
/// `max_bytes` (and larger than it is), the stored status is kept and every tag that would
/// have changed gets a failure condition instead.
pub fn guard_size(
    stream: &ImageStream,
    next: ImageStreamStatus,
    max_bytes: usize,
    now: Time,
) -> (ImageStreamStatus, bool) {
    let size_of = |status: &ImageStreamStatus| {
        let mut copy = stream.clone();
        copy.status = Some(status.clone());
        serde_json::to_vec(&copy).map_or(0, |v| v.len())
    };
    let before = stream.status.clone().unwrap_or_default();
    let after = size_of(&next);
    if after <= max_bytes || after <= size_of(&before) {
        return (next, false);
    }
    let mut kept = before.clone();
    let message = format!(
        "the image stream would grow to {after} bytes, over the limit of {max_bytes}; prune its history or raise maxImageStreamBytes"
    );
    for tag in &next.tags {
        let old = before.tag(&tag.tag);
        let grew = old.is_none_or(|o| o.items.len() < tag.items.len() || o.items != tag.items);
        if grew {
            let generation = tag.items.first().map_or(0, |e| e.generation);
            set_failure_condition(
                &mut kept,
                &tag.tag,
                "ImageStreamTooLarge",
                &message,
                generation,
                now.clone(),
            );
        }
    }
    (kept, true)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::api::image_stream::{
        ImageStreamSpec, NamedTagEventList, ObjectReference, TagEventCondition, TagImportPolicy,
    };
    use crate::import::contract::{Failure, Imported};
    use kube::api::ObjectMeta;
    use std::collections::BTreeMap;

    pub(in crate::stream) const D1: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    pub(in crate::stream) const D2: &str =
        "sha256:293aa25bf219f3e47472281b7e68c09bb6f315c2adf7f86a7302b85bdaa63db3";

    pub(in crate::stream) fn now() -> Time {
        Time("2026-11-22T10:00:00Z".parse().unwrap())
    }

    pub(in crate::stream) fn earlier() -> Time {
        Time("2026-11-20T10:00:00Z".parse().unwrap())
    }

    pub(in crate::stream) fn from(kind: &str, name: &str) -> Option<ObjectReference> {
        Some(ObjectReference {
            kind: kind.into(),
            name: name.into(),
            ..ObjectReference::default()
        })
    }

    pub(in crate::stream) fn docker(
        name: &str,
        pull: &str,
        generation: Option<i64>,
    ) -> TagReference {
        TagReference {
            name: name.into(),
            from: from(KIND_DOCKER_IMAGE, pull),
            generation,
            ..TagReference::default()
        }
    }

    pub(in crate::stream) fn event(reference: &str, image: &str, generation: i64) -> TagEvent {
        TagEvent {
            created: earlier(),
            docker_image_reference: reference.into(),
            image: image.into(),
            generation,
        }
    }

    pub(in crate::stream) fn stream(
        tags: Vec<TagReference>,
        status: Vec<NamedTagEventList>,
    ) -> ImageStream {
        ImageStream {
            metadata: ObjectMeta {
                name: Some("stream".into()),
                namespace: Some("ns".into()),
                ..ObjectMeta::default()
            },
            spec: ImageStreamSpec {
                tags,
                ..ImageStreamSpec::default()
            },
            status: (!status.is_empty()).then(|| ImageStreamStatus {
                tags: status,
                ..ImageStreamStatus::default()
            }),
        }
    }

    pub(in crate::stream) fn history(tag: &str, items: Vec<TagEvent>) -> NamedTagEventList {
        NamedTagEventList {
            tag: tag.into(),
            items,
            conditions: vec![],
        }
    }

    pub(in crate::stream) fn condition(generation: i64) -> TagEventCondition {
        TagEventCondition {
            type_: "ImportSuccess".into(),
            status: "False".into(),
            last_transition_time: Some(earlier()),
            reason: "NotFound".into(),
            message: "gone".into(),
            generation,
        }
    }

    pub(in crate::stream) fn ok(tag: &str, image: &str) -> ImageResult {
        Ok(Imported {
            tag: tag.into(),
            image: image.into(),
            reference: format!("nginx@{image}"),
            unchanged: false,
        })
    }

    pub(in crate::stream) fn tags_of(work: &[TagImport]) -> Vec<&str> {
        work.iter().map(|w| w.tag.as_str()).collect()
    }

    // 10.1 cases 1-5 (TestDockerImageRepository, TestPublicDockerImageRepository)
    #[test]
    fn test_docker_image_repository() {
        let mut s = stream(vec![], vec![]);
        s.metadata.name = Some("somerepo".into());
        s.metadata.namespace = Some("foo".into());
        s.spec.docker_image_repository = "a/b".into();
        let none = Repositories::default();
        assert_eq!(none.for_stream(&s), ("a/b".to_string(), String::new()));
        let internal = Repositories {
            internal: Some("registry:5000".into()),
            external: None,
        };
        assert_eq!(internal.for_stream(&s).0, "registry:5000/foo/somerepo");
        s.metadata.namespace = None;
        assert_eq!(internal.for_stream(&s).0, "registry:5000/default/somerepo");
        s.spec.docker_image_repository.clear();
        assert_eq!(none.for_stream(&s).0, "");
        let external = Repositories {
            internal: None,
            external: Some("registry-default.external.url".into()),
        };
        assert_eq!(
            external.for_stream(&s).1,
            "registry-default.external.url/somerepo"
        );
    }

    // 10.6 case 83 (TestHandleImageStream): the check annotation (whatever it holds) and no
    // tags: nothing to import, with or without spec.dockerImageRepository. Without the
    // annotation the repository is imported (semantics 2.6, "full").
    #[test]
    fn test_handle_image_stream_checked_without_tags_imports_nothing() {
        for repository in ["", "test/other"] {
            for value in ["2026-11-22T10:00:00Z", "garbage"] {
                let mut s = stream(vec![], vec![]);
                s.spec.docker_image_repository = repository.into();
                s.metadata.annotations = Some(BTreeMap::from([(
                    DOCKER_IMAGE_REPOSITORY_CHECK_ANNOTATION.to_string(),
                    value.to_string(),
                )]));
                assert!(imports(&s, false, Mode::Legacy).is_empty());
                assert!(imports(&s, true, Mode::Legacy).is_empty());
                assert!(
                    repository_import(&s, Mode::Legacy).is_none(),
                    "{repository} {value}"
                );
            }
        }
        let mut s = stream(
            vec![TagReference {
                name: "v1".into(),
                annotations: Some(BTreeMap::from([(
                    IMPORTER_PREFER_ARCH_ANNOTATION.to_string(),
                    "arm64".to_string(),
                )])),
                ..TagReference::default()
            }],
            vec![history("latest", vec![event("test/other@x", D1, 1)])],
        );
        s.spec.docker_image_repository = "test/other".into();
        s.metadata.annotations = Some(BTreeMap::from([(
            INSECURE_REPOSITORY_ANNOTATION.to_string(),
            "true".to_string(),
        )]));
        let repo = repository_import(&s, Mode::PreserveOriginal).expect("full import");
        assert_eq!(repo.from, "test/other");
        assert_eq!(repo.mode, Mode::PreserveOriginal);
        assert!(repo.insecure);
        assert_eq!(repo.current.get("latest").map(String::as_str), Some(D1));
        assert_eq!(repo.prefer["v1"].arch.as_deref(), Some("arm64"));
    }

    // Semantics 5.6 applied to a stream: listed tags become status tags with E = G, a
    // failed tag gets its condition, spec tags are left to their own import, and a
    // repository that could not be listed changes nothing.
    #[test]
    fn repository_results_become_status_tags() {
        let mut s = stream(
            vec![docker("pinned", "elsewhere/x:1", Some(2))],
            vec![history("v1", vec![event("test/other@old", D2, 1)])],
        );
        s.spec.docker_image_repository = "test/other".into();
        s.metadata.generation = Some(3);
        if let Some(status) = &mut s.status {
            status.docker_image_repository = "test/other".into();
        }
        let imported = |tag: &str, image: &str| -> ImageResult {
            Ok(Imported {
                tag: tag.into(),
                image: image.into(),
                reference: format!("test/other@{image}"),
                unchanged: false,
            })
        };
        let result = RepositoryResult {
            images: Ok(vec![
                imported("latest", D1),
                imported("v1", D1),
                imported("pinned", D2),
                Err(Failure {
                    reason: "NotFound",
                    code: 404,
                    message: "gone".into(),
                }),
            ]),
            tags: vec!["latest".into(), "v1".into(), "pinned".into(), "v2".into()],
            additional_tags: vec![],
        };
        let mut update = StatusUpdate::new(&s, &Repositories::default(), now());
        update.apply_repository(&result);
        let (status, changes) = update.finish();
        let status = status.expect("changed");
        let latest = &status.tag("latest").unwrap().items;
        assert_eq!(latest.len(), 1);
        assert_eq!(latest[0].docker_image_reference, format!("test/other@{D1}"));
        assert_eq!(latest[0].generation, 3);
        let v1 = &status.tag("v1").unwrap().items;
        assert_eq!(v1.len(), 2, "a new image is a new entry");
        assert!(
            status.tag("pinned").is_none(),
            "spec tags import their own from"
        );
        assert_eq!(status.tag("v2").unwrap().conditions[0].reason, "NotFound");
        assert_eq!(changes.len(), 3, "{changes:?}");

        let unlisted = RepositoryResult {
            images: Err(Failure {
                reason: "Unauthorized",
                code: 401,
                message: "no".into(),
            }),
            tags: vec![],
            additional_tags: vec![],
        };
        let mut update = StatusUpdate::new(&s, &Repositories::default(), now());
        update.apply_repository(&unlisted);
        assert_eq!(update.finish(), (None, vec![]));
    }

    // 10.6 case 84 (TestHandleImageStream): reference tags and other kinds are not imported.
    #[test]
    fn test_handle_image_stream_reference_and_other_kinds_are_not_imported() {
        let mut reference = docker("a", "test/other:latest", Some(1));
        reference.reference = true;
        let other = TagReference {
            name: "b".into(),
            from: from("AnotherImage", "x"),
            generation: Some(1),
            ..TagReference::default()
        };
        let s = stream(vec![reference, other], vec![]);
        assert!(imports(&s, false, Mode::Legacy).is_empty());
    }

    // 10.6 case 85: a DockerImage tag with nil generation is imported.
    #[test]
    fn test_handle_image_stream_nil_generation_imports() {
        let s = stream(vec![docker("latest", "test/other:latest", None)], vec![]);
        let work = imports(&s, false, Mode::Legacy);
        assert_eq!(tags_of(&work), ["latest"]);
        assert_eq!(work[0].import.from.as_str(), "test/other:latest");
    }

    // 10.6 case 86: only tags whose generation is ahead of the observed one.
    #[test]
    fn test_handle_image_stream_generations() {
        let s = stream(vec![docker("latest", "x", Some(2))], vec![]);
        assert_eq!(tags_of(&imports(&s, false, Mode::Legacy)), ["latest"]);

        let s = stream(
            vec![
                docker("v1", "x:v1", Some(1)),
                docker("latest", "x", Some(2)),
            ],
            vec![
                history("v1", vec![event("x@a", D1, 1)]),
                history("latest", vec![event("x@a", D1, 1)]),
            ],
        );
        assert_eq!(tags_of(&imports(&s, false, Mode::Legacy)), ["latest"]);

        let mut failed = history("latest", vec![]);
        failed.conditions = vec![condition(2)];
        let s = stream(vec![docker("latest", "x", Some(2))], vec![failed.clone()]);
        assert!(imports(&s, false, Mode::Legacy).is_empty());
        failed.conditions = vec![condition(1)];
        let s = stream(vec![docker("latest", "x", Some(2))], vec![failed]);
        assert_eq!(tags_of(&imports(&s, false, Mode::Legacy)), ["latest"]);

        let s = stream(
            vec![docker("latest", "x", Some(2))],
            vec![history("latest", vec![event("x@a", D1, 2)])],
        );
        assert!(imports(&s, false, Mode::Legacy).is_empty());
    }

    // 10.6 case 88 (TestSchedulingChecks)
    #[test]
    fn test_scheduling_checks() {
        let scheduled = |name: &str, pull: &str| TagReference {
            import_policy: TagImportPolicy {
                scheduled: true,
                ..TagImportPolicy::default()
            },
            ..docker(name, pull, Some(2))
        };
        let s = stream(vec![docker("a", "x", Some(1))], vec![]);
        assert!(!has_scheduled_tags(&s), "no scheduled tags");

        let digest_ref = format!("x@{D1}");
        let mut failed = history("a", vec![]);
        failed.conditions = vec![condition(2)];
        let s = stream(vec![scheduled("a", &digest_ref)], vec![failed]);
        assert!(has_scheduled_tags(&s), "digest with only a failure");

        let s = stream(
            vec![scheduled("a", &digest_ref)],
            vec![history("a", vec![event(&digest_ref, D1, 2)])],
        );
        assert!(!has_scheduled_tags(&s), "digest imported");
        let s = stream(
            vec![
                scheduled("a", &digest_ref),
                scheduled("b", &format!("x@{D2}")),
            ],
            vec![history("a", vec![event(&digest_ref, D1, 2)])],
        );
        assert!(has_scheduled_tags(&s), "second digest not imported yet");

        let s = stream(
            vec![scheduled("a", "x:latest")],
            vec![history("a", vec![event("x@a", D1, 2)])],
        );
        assert!(has_scheduled_tags(&s), "tag reference");
        let work = imports(&s, true, Mode::Legacy);
        assert_eq!(tags_of(&work), ["a"]);
        assert_eq!(work[0].import.current_image.as_deref(), Some(D1));
        assert!(imports(&s, false, Mode::Legacy).is_empty());
    }

    #[test]
    fn import_mode_annotations_and_insecure_reach_the_import() {
        let mut tag = docker("a", "x", Some(1));
        tag.annotations = Some(BTreeMap::from([
            (
                IMPORTER_PREFER_ARCH_ANNOTATION.to_string(),
                "arm64".to_string(),
            ),
            (
                IMPORTER_PREFER_OS_ANNOTATION.to_string(),
                "linux".to_string(),
            ),
        ]));
        let mut preserve = docker("b", "y", Some(1));
        preserve.import_policy.import_mode = ImportMode::PreserveOriginal;
        let mut s = stream(vec![tag, preserve], vec![]);
        s.metadata.annotations = Some(BTreeMap::from([(
            INSECURE_REPOSITORY_ANNOTATION.to_string(),
            "true".to_string(),
        )]));
        let work = imports(&s, false, Mode::PreserveOriginal);
        assert_eq!(work[0].import.prefer.arch.as_deref(), Some("arm64"));
        assert_eq!(work[0].import.prefer.os.as_deref(), Some("linux"));
        assert_eq!(
            work[0].import.mode,
            Mode::PreserveOriginal,
            "cluster default"
        );
        assert_eq!(work[1].import.mode, Mode::PreserveOriginal);
        assert!(work.iter().all(|w| w.import.insecure));
    }

    // 10.3 case 44 ("reference differs"): a new image is prepended with E = S.
    #[test]
    fn test_import_successful_reference_differs() {
        let s = stream(
            vec![docker("latest", "nginx", Some(2))],
            vec![history("latest", vec![event("nginx@old", D2, 1)])],
        );
        let mut update = StatusUpdate::new(&s, &Repositories::default(), now());
        update.apply_import("latest", 2, &ok("latest", D1));
        let (status, changes) = update.finish();
        let status = status.expect("changed");
        let items = &status.tag("latest").unwrap().items;
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[0],
            TagEvent {
                created: now(),
                docker_image_reference: format!("nginx@{D1}"),
                image: D1.into(),
                generation: 2,
            }
        );
        assert_eq!(
            changes,
            [TagChange::Updated {
                tag: "latest".into(),
                image: D1.into()
            }]
        );
    }

    // 10.3 case 47 ("only generation differ"): the event collapses, created kept.
    #[test]
    fn test_import_successful_only_generation_differs() {
        let s = stream(
            vec![docker("latest", "nginx", Some(2))],
            vec![history(
                "latest",
                vec![event(&format!("nginx@{D1}"), D1, 1)],
            )],
        );
        let mut update = StatusUpdate::new(&s, &Repositories::default(), now());
        update.apply_import("latest", 2, &ok("latest", D1));
        let (status, changes) = update.finish();
        let items = status.expect("generation moved").tags[0].items.clone();
        assert_eq!(items.len(), 1);
        assert_eq!(
            (items[0].generation, items[0].created.clone()),
            (2, earlier())
        );
        assert!(changes.is_empty(), "same image: no Updated event");
    }

    #[test]
    fn an_unchanged_recheck_writes_nothing() {
        let s = stream(
            vec![docker("latest", "nginx", Some(2))],
            vec![history(
                "latest",
                vec![event(&format!("nginx@{D1}"), D1, 2)],
            )],
        );
        let mut update = StatusUpdate::new(&s, &Repositories::default(), now());
        update.apply_import("latest", 2, &ok("latest", D1));
        assert_eq!(update.finish(), (None, vec![]));
    }

    // 10.3 case 49 (TestCreateImages) and semantics 4: a failure without a message gets
    // upstream's text; an identical failure is not written again; success clears it.
    #[test]
    fn test_create_images_failure_condition_lifecycle() {
        let s = stream(vec![docker("mytag", "nginx", Some(3))], vec![]);
        let mut update = StatusUpdate::new(&s, &Repositories::default(), now());
        let failure = Failure {
            reason: "",
            code: 500,
            message: String::new(),
        };
        update.apply_import("mytag", 3, &Err(failure.clone()));
        let (status, changes) = update.finish();
        let status = status.expect("condition written");
        let c = &status.tag("mytag").unwrap().conditions[0];
        assert_eq!(
            (c.status.as_str(), c.message.as_str(), c.generation),
            ("False", "unknown error prevented import", 3)
        );
        assert!(matches!(&changes[..], [TagChange::Failed { .. }]));

        let failed = stream(vec![docker("mytag", "nginx", Some(3))], status.tags.clone());
        let mut again = StatusUpdate::new(&failed, &Repositories::default(), now());
        again.apply_import("mytag", 3, &Err(failure));
        assert_eq!(
            again.finish(),
            (None, vec![]),
            "identical failure: no write"
        );

        // the same failure after a reset (S = 4): C follows, the first time is kept, and
        // the tag no longer needs an import; it is not reported again
        let reset = stream(vec![docker("mytag", "nginx", Some(4))], status.tags.clone());
        assert!(needs_import(
            &reset.spec.tags[0],
            reset.status.as_ref(),
            true
        ));
        let mut retried = StatusUpdate::new(&reset, &Repositories::default(), now());
        retried.apply_import(
            "mytag",
            4,
            &Err(Failure {
                reason: "",
                code: 500,
                message: String::new(),
            }),
        );
        let (written, reported) = retried.finish();
        let written = written.expect("the generation is recorded");
        let c = &written.tag("mytag").unwrap().conditions[0];
        assert_eq!(c.generation, 4);
        assert_eq!(
            c.last_transition_time,
            status.tag("mytag").unwrap().conditions[0].last_transition_time
        );
        assert!(reported.is_empty(), "no second Event");
        let observed = stream(reset.spec.tags.clone(), written.tags.clone());
        assert!(!needs_import(
            &observed.spec.tags[0],
            observed.status.as_ref(),
            true
        ));

        let mut recover = StatusUpdate::new(&failed, &Repositories::default(), now());
        recover.apply_import("mytag", 3, &ok("mytag", D1));
        let (status, changes) = recover.finish();
        assert!(status.unwrap().tag("mytag").unwrap().conditions.is_empty());
        assert!(changes.contains(&TagChange::Recovered {
            tag: "mytag".into()
        }));
    }

    // 10.1 case 13: reference tags get {ref: from.name, image: ""}.
    #[test]
    fn test_tags_changed_new_reference_tags_no_history() {
        let mut t1 = docker("t1", "registry:5000/ns/stream:t1", Some(1));
        t1.reference = true;
        let mut t2 = docker("t2", &format!("registry:5000/ns/stream@{D1}"), Some(1));
        t2.reference = true;
        let s = stream(vec![t1, t2], vec![]);
        let mut update = StatusUpdate::new(&s, &Repositories::default(), now());
        update.resolve_references(&|_: &str, _: &str| None);
        let (status, _) = update.finish();
        let status = status.unwrap();
        assert_eq!(
            status.tag("t1").unwrap().items[0].docker_image_reference,
            "registry:5000/ns/stream:t1"
        );
        assert_eq!(status.tag("t2").unwrap().items[0].image, "");
    }

    fn resolved(s: &ImageStream) -> (Option<ImageStreamStatus>, Vec<TagChange>) {
        let mut update = StatusUpdate::new(s, &Repositories::default(), now());
        update.resolve_references(&|_: &str, _: &str| None);
        update.update_tracking();
        update.finish()
    }

    // 10.1 case 11 ("empty tag ignored on create"): a tag without `from` gets no status.
    #[test]
    fn test_tags_changed_empty_tag_ignored_on_create() {
        let s = stream(
            vec![TagReference {
                name: "t1".into(),
                generation: Some(1),
                ..TagReference::default()
            }],
            vec![],
        );
        assert_eq!(resolved(&s), (None, vec![]));
    }

    // 10.1 case 12 ("tag to missing ignored on create"): a DockerImage tag waits for its
    // import; resolving writes nothing for it.
    #[test]
    fn test_tags_changed_tag_to_missing_ignored_on_create() {
        let s = stream(vec![docker("t1", "t2", Some(1))], vec![]);
        assert_eq!(resolved(&s), (None, vec![]));
    }

    // 10.1 case 14 ("single tag update, preserves history"): t1 added beside t2.
    #[test]
    fn test_tags_changed_single_tag_update_preserves_history() {
        let t2_history = history(
            "t2",
            vec![event(&format!("registry:5000/ns/stream@{D1}"), D1, 1)],
        );
        let mut t1 = docker("t1", "registry:5000/ns/stream:v1image1", Some(2));
        t1.reference = true;
        let s = stream(vec![t1], vec![t2_history.clone()]);
        let status = resolved(&s).0.expect("t1 added");
        assert_eq!(status.tag("t2"), Some(&t2_history));
        let t1 = &status.tag("t1").unwrap().items;
        assert_eq!(t1.len(), 1);
        assert_eq!(
            (t1[0].docker_image_reference.as_str(), t1[0].image.as_str()),
            ("registry:5000/ns/stream:v1image1", "")
        );
    }

    // 10.1 case 15 ("no-op"): non-reference DockerImage tags, nothing pending: no write.
    #[test]
    fn test_tags_changed_no_op() {
        let s = stream(
            vec![docker("t1", "t1", Some(1)), docker("t2", "t2", Some(1))],
            vec![
                history(
                    "t1",
                    vec![event("registry:5000/ns/stream:v1image1", "v1image1", 1)],
                ),
                history(
                    "t2",
                    vec![event(&format!("registry:5000/ns/stream@{D1}"), D1, 1)],
                ),
            ],
        );
        assert_eq!(resolved(&s), (None, vec![]));
    }

    // 10.1 case 16 ("new tag copies existing history"): t1 becomes a reference to the pull
    // spec it already had (image cleared in place), t2 is new, t3 flips to a reference of
    // another pull spec (a new entry).
    #[test]
    fn test_tags_changed_new_tag_copies_existing_history() {
        let reference = |name: &str, pull: &str| {
            let mut t = docker(name, pull, Some(2));
            t.reference = true;
            t
        };
        let odd = format!("@{D1}");
        let s = stream(
            vec![
                reference("t1", "registry:5000/ns/stream:v1image1"),
                reference("t2", "registry:5000/ns/stream:v1image1"),
                reference("t3", &odd),
            ],
            vec![
                history(
                    "t1",
                    vec![event("registry:5000/ns/stream:v1image1", "v1image1", 1)],
                ),
                history(
                    "t3",
                    vec![event(&format!("registry:5000/ns/stream@{D1}"), D1, 1)],
                ),
            ],
        );
        let status = resolved(&s).0.expect("changed");
        let refs = |tag: &str| -> Vec<(String, String)> {
            status
                .tag(tag)
                .unwrap()
                .items
                .iter()
                .map(|e| (e.docker_image_reference.clone(), e.image.clone()))
                .collect()
        };
        let pair = |r: &str, i: &str| (r.to_string(), i.to_string());
        assert_eq!(refs("t1"), [pair("registry:5000/ns/stream:v1image1", "")]);
        assert_eq!(refs("t2"), [pair("registry:5000/ns/stream:v1image1", "")]);
        assert_eq!(
            refs("t3"),
            [
                pair(&odd, ""),
                pair(&format!("registry:5000/ns/stream@{D1}"), D1)
            ]
        );
    }

    // 10.1 case 18 ("tag changes and referenced tag should react"): t1 moves to an
    // ImageStreamImage and t2, which tracks t1, follows in the same pass.
    #[test]
    fn test_tags_changed_tag_changes_and_referenced_tag_should_react() {
        let at = |d: &str| format!("registry:5000/ns/stream@{d}");
        let s = stream(
            vec![
                TagReference {
                    name: "t1".into(),
                    from: from(KIND_IMAGE_STREAM_IMAGE, &format!("stream@{D1}")),
                    generation: Some(2),
                    ..TagReference::default()
                },
                TagReference {
                    name: "t2".into(),
                    from: from(KIND_IMAGE_STREAM_TAG, "stream:t1"),
                    generation: Some(1),
                    ..TagReference::default()
                },
            ],
            vec![
                history("other", vec![event(&at(D2), D2, 1), event(&at(D1), D1, 1)]),
                history("t1", vec![event(&at(D2), D2, 1)]),
                history("t2", vec![event(&at(D2), D2, 1)]),
            ],
        );
        let (status, changes) = resolved(&s);
        let status = status.expect("changed");
        for tag in ["t1", "t2"] {
            let images: Vec<&str> = status
                .tag(tag)
                .unwrap()
                .items
                .iter()
                .map(|e| e.image.as_str())
                .collect();
            assert_eq!(images, [D1, D2], "{tag}");
        }
        assert_eq!(status.tag("other"), s.status.as_ref().unwrap().tag("other"));
        assert_eq!(changes.len(), 2, "{changes:?}");
    }

    // 10.1 case 17 and 3.4: a same-stream ImageStreamTag copies the source's event, and
    // follows it when the source moves.
    #[test]
    fn test_tags_changed_object_reference_to_image_stream_tag_in_same_stream() {
        let alias = TagReference {
            name: "t1".into(),
            from: from(KIND_IMAGE_STREAM_TAG, "stream:other"),
            generation: Some(2),
            ..TagReference::default()
        };
        let s = stream(
            vec![alias, docker("other", "x", Some(1))],
            vec![history("other", vec![event(&format!("x@{D1}"), D1, 1)])],
        );
        let mut update = StatusUpdate::new(&s, &Repositories::default(), now());
        update.resolve_references(&|_: &str, _: &str| None);
        let status = update.status().clone();
        assert_eq!(status.tag("t1").unwrap().items[0].image, D1);
        assert_eq!(status.tag("t1").unwrap().items[0].generation, 2);

        // the source moves: the alias follows in the same pass
        let s2 = stream(s.spec.tags.clone(), status.tags.clone());
        let mut update = StatusUpdate::new(&s2, &Repositories::default(), now());
        update.apply_import("other", 1, &ok("other", D2));
        update.update_tracking();
        let (status, changes) = update.finish();
        assert_eq!(status.unwrap().tag("t1").unwrap().items[0].image, D2);
        assert!(changes.contains(&TagChange::Updated {
            tag: "t1".into(),
            image: D2.into()
        }));
    }

    // 10.1 cases 19-21: ImageStreamImage by digest or prefix, other streams by lookup.
    #[test]
    fn test_tags_changed_object_reference_to_image_stream_image() {
        let isimage = |name: &str| TagReference {
            name: "t1".into(),
            from: from(KIND_IMAGE_STREAM_IMAGE, name),
            generation: Some(1),
            ..TagReference::default()
        };
        let base = vec![history(
            "t2",
            vec![event(&format!("registry:5000/ns/stream@{D1}"), D1, 1)],
        )];
        let s = stream(vec![isimage(&format!("stream@{D1}"))], base.clone());
        let mut update = StatusUpdate::new(&s, &Repositories::default(), now());
        update.resolve_references(&|_: &str, _: &str| None);
        assert_eq!(
            update.status().tag("t1").unwrap().items[0].docker_image_reference,
            format!("registry:5000/ns/stream@{D1}")
        );

        // missing: a NotFound condition on the tag
        let s = stream(vec![isimage(&format!("stream@{D2}"))], base.clone());
        let mut update = StatusUpdate::new(&s, &Repositories::default(), now());
        update.resolve_references(&|_: &str, _: &str| None);
        let c = &update.status().tag("t1").unwrap().conditions[0];
        assert_eq!(c.reason, "NotFound");

        // other stream through the lookup (10.1 case 21 for tags)
        let other = stream(vec![], vec![history("other", vec![event("o@x", D2, 1)])]);
        let s = stream(
            vec![TagReference {
                name: "t1".into(),
                from: from(KIND_IMAGE_STREAM_TAG, "other:other"),
                generation: Some(1),
                ..TagReference::default()
            }],
            vec![],
        );
        let mut update = StatusUpdate::new(&s, &Repositories::default(), now());
        update.resolve_references(&|ns: &str, name: &str| {
            (ns == "ns" && name == "other").then(|| other.clone())
        });
        assert_eq!(update.status().tag("t1").unwrap().items[0].image, D2);
    }

    /// Issue 16: `from.name: <id>` names an image of the stream itself, as upstream's
    /// `parseFromReference` reads it; validation accepts it, so the controller resolves it.
    #[test]
    fn an_image_id_alone_names_the_stream_itself() {
        let base = vec![history(
            "t2",
            vec![event(&format!("registry:5000/ns/stream@{D1}"), D1, 1)],
        )];
        for id in [D1, &D1[..15]] {
            let s = stream(
                vec![TagReference {
                    name: "t1".into(),
                    from: from(KIND_IMAGE_STREAM_IMAGE, id),
                    generation: Some(1),
                    ..TagReference::default()
                }],
                base.clone(),
            );
            let mut update = StatusUpdate::new(&s, &Repositories::default(), now());
            update.resolve_references(&|_: &str, _: &str| None);
            let t1 = update.status().tag("t1").unwrap();
            assert!(t1.conditions.is_empty(), "{id}: {t1:?}");
            assert_eq!(t1.items[0].image, D1, "{id}");
        }
    }

    #[test]
    fn ambiguous_image_prefixes_are_a_conflict() {
        let s = stream(
            vec![TagReference {
                name: "t1".into(),
                from: from(KIND_IMAGE_STREAM_IMAGE, "stream@sha256"),
                generation: Some(1),
                ..TagReference::default()
            }],
            vec![history("t2", vec![event("a", D1, 1), event("b", D2, 1)])],
        );
        let mut update = StatusUpdate::new(&s, &Repositories::default(), now());
        update.resolve_references(&|_: &str, _: &str| None);
        let c = &update.status().tag("t1").unwrap().conditions[0];
        assert_eq!(c.reason, "Conflict");
        assert!(
            c.message.starts_with("multiple images match the prefix"),
            "{c:?}"
        );
    }

    #[test]
    fn history_cap_and_size_guard() {
        let events: Vec<TagEvent> = (0..5)
            .map(|i| event(&format!("x@{i}"), &format!("i{i}"), 1))
            .collect();
        let s = stream(vec![docker("a", "x", Some(1))], vec![history("a", events)]);
        let mut update = StatusUpdate::new(&s, &Repositories::default(), now());
        update.cap_history(Some(2));
        assert_eq!(update.status().tag("a").unwrap().items.len(), 2);

        let mut bigger = s.status.clone().unwrap();
        bigger.tags[0].items.insert(0, event("x@new", "new", 2));
        let (kept, refused) = guard_size(&s, bigger.clone(), 64, now());
        assert!(refused);
        assert_eq!(kept.tags[0].items, s.status.as_ref().unwrap().tags[0].items);
        assert_eq!(kept.tags[0].conditions[0].reason, "ImageStreamTooLarge");
        let (kept, refused) = guard_size(&s, bigger.clone(), 1 << 20, now());
        assert!(!refused);
        assert_eq!(kept, bigger);
    }
    // Semantics 7.1 step 6: a mapping's event goes through 3.1, clears the tag's conditions
    // and moves the tags that follow it; the same event with another generation only
    // rewrites items[0].generation (a change, but no move).
    #[test]
    fn apply_event_adds_history_and_moves_followers() {
        let alias = TagReference {
            name: "alias".into(),
            from: from(KIND_IMAGE_STREAM_TAG, "latest"),
            generation: Some(3),
            ..TagReference::default()
        };
        let mut failed = history("latest", vec![event("x@old", D2, 1)]);
        failed.conditions = vec![condition(1)];
        let s = stream(vec![alias], vec![failed]);
        let mut update = StatusUpdate::new(&s, &Repositories::default(), now());
        let pushed = TagEvent {
            created: now(),
            ..event(&format!("x@{D1}"), D1, 4)
        };
        assert!(update.apply_event("latest", pushed.clone()));
        update.update_tracking();
        let (status, changes) = update.finish();
        let status = status.expect("changed");
        let latest = status.tag("latest").unwrap();
        assert_eq!(latest.items.len(), 2);
        assert_eq!(latest.items[0], pushed);
        assert!(latest.conditions.is_empty());
        assert_eq!(status.tag("alias").unwrap().items[0].image, D1);
        assert_eq!(status.tag("alias").unwrap().items[0].generation, 3);
        assert_eq!(
            changes,
            [
                TagChange::Updated {
                    tag: "latest".into(),
                    image: D1.into()
                },
                TagChange::Updated {
                    tag: "alias".into(),
                    image: D1.into()
                }
            ]
        );

        let s = stream(vec![], status.tags.clone());
        let mut update = StatusUpdate::new(&s, &Repositories::default(), now());
        assert!(!update.apply_event("latest", pushed.clone()), "identical");
        assert!(update.apply_event(
            "latest",
            TagEvent {
                generation: 5,
                ..pushed
            }
        ));
        let (status, changes) = update.finish();
        assert_eq!(
            status.unwrap().tag("latest").unwrap().items[0].generation,
            5
        );
        assert!(changes.is_empty(), "only the generation moved");
    }
}
