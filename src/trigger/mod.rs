//! Image change triggers without IO: workloads that follow ImageStreamTags through the
//! `image.openshift.io/triggers` annotation (semantics section 9), as OpenShift's
//! openshift-controller-manager runs them with library-go's `pkg/image/trigger` rules.
//!
//! - [`annotation`]: the annotation's format and its parsing (a JSON list of
//!   `{from, fieldPath, paused}`; duplicate field paths are an error).
//! - [`field_path`]: `fieldPath` into the pod template's `containers` or `initContainers`, by
//!   index or by `[?(@.name=="x")]`, ending in `.image`.
//! - [`workload`]: what the controller keeps of a workload: its kind, key and the containers
//!   its triggers point at, nothing else (the caches hold every annotated workload).
//! - [`index`]: which workloads follow which tag, and each followed tag's last pull spec, so a
//!   stream change wakes only the workloads of the tags that moved.
//! - [`decide`]: the changes a workload needs and the one JSON patch that makes them.
//! - [`access`]: the SubjectAccessReview asked before a workload follows a stream of another
//!   namespace.
//!
//! Which kinds: upstream registers annotation triggers for Deployments, DaemonSets,
//! StatefulSets and CronJobs (`pkg/cmd/controller/image.go`), not Jobs or Pods, and so does
//! this module ([`Kind`]).

pub mod access;
pub mod annotation;
pub mod decide;
pub mod field_path;
pub mod index;
pub mod workload;

pub use annotation::{ObjectFieldTrigger, TRIGGER_ANNOTATION, TriggerSource};
pub use decide::{Change, changes, patch};
pub use index::TriggerIndex;
pub use workload::{ContainerRef, Follow, Kind, TagKey, Workload, WorkloadKey};

use crate::api::image_stream::ImageStream;
use crate::stream::history::{PullSpecMode, pull_spec_for_tag};

/// Why a workload's triggers cannot be followed; [`Error::reason`] is stable (the reason of
/// the Warning Event on the workload).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("the {TRIGGER_ANNOTATION} annotation is not a JSON list of triggers: {0}")]
    Annotation(String),
    #[error("duplicate triggers are not allowed: fieldPath {0:?} appears more than once")]
    DuplicateFieldPath(String),
    #[error(
        "field path is not valid: {path} (expected {base}.containers[<index>].image, \
         {base}.initContainers[<index>].image or {base}.containers[?(@.name==\"<name>\")].image)"
    )]
    FieldPath { path: String, base: &'static str },
    #[error("trigger from {0:?} does not name an ImageStreamTag: expected <stream>:<tag>")]
    StreamTag(String),
    #[error("no such container: {0}")]
    NoSuchContainer(String),
    #[error("container {0:?} is the target of more than one trigger")]
    SameContainer(String),
}

impl Error {
    /// Stable reason for Events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Annotation(_) => "InvalidTriggerAnnotation",
            Error::DuplicateFieldPath(_) => "DuplicateTriggerFieldPath",
            Error::FieldPath { .. } => "InvalidTriggerFieldPath",
            Error::StreamTag(_) => "InvalidTriggerImageStreamTag",
            Error::NoSuchContainer(_) => "TriggerContainerNotFound",
            Error::SameContainer(_) => "DuplicateTriggerContainer",
        }
    }
}

/// The current pull spec of each followed tag (the controller reads its stream cache).
pub trait TagSource {
    /// The pull spec `tag` points at now; `None` while the tag has no image (no stream, no
    /// such tag, nothing imported yet).
    fn pull_spec(&self, tag: &TagKey) -> Option<String>;
}

/// What a trigger on `stream:tag` sets the container image to: the tag's current history
/// entry, through the stream's own repository by digest when the spec tag's referencePolicy
/// is `Local` (library-go `ResolveLatestTaggedImage`, semantics 3.3). `None` when the tag has
/// no history: a trigger never writes a guess.
///
/// Upstream substitutes its internal registry's host when `status.dockerImageRepository` is
/// empty; there is no internal registry here, so a `Local` tag of a stream without a
/// repository resolves to the entry's own pull spec, as library-go does for that case.
pub fn current_pull_spec(stream: &ImageStream, tag: &str) -> Option<String> {
    let tag = if tag.is_empty() { "latest" } else { tag };
    pull_spec_for_tag(stream, tag, false, PullSpecMode::Recent)
        .ok()
        .filter(|p| p.has_status)
        .map(|p| p.pull_spec)
}

#[cfg(test)]
mod tests;
