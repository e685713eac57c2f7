//! What the trigger controller keeps of a workload: its key, its UID (for Events), the
//! ServiceAccount its pods run as (the subject of cross-namespace access reviews) and, for
//! each trigger that is not paused, the tag it follows and the container it sets with that
//! container's current image. Everything else of the object is dropped when it is read, and
//! workloads without the annotation are not kept at all.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::annotation::{self, TRIGGER_ANNOTATION};
pub use super::field_path::ContainerRef;
use super::{Error, field_path};

/// The workload kinds upstream's annotation triggers cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Deployment,
    DaemonSet,
    StatefulSet,
    CronJob,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Deployment,
        Kind::DaemonSet,
        Kind::StatefulSet,
        Kind::CronJob,
    ];

    /// The pod spec's field path in the object, as trigger field paths start.
    pub fn pod_spec_path(self) -> &'static str {
        match self {
            Kind::CronJob => "spec.jobTemplate.spec.template.spec",
            _ => "spec.template.spec",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::DaemonSet => "DaemonSet",
            Kind::StatefulSet => "StatefulSet",
            Kind::CronJob => "CronJob",
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Kind::CronJob => "batch/v1",
            _ => "apps/v1",
        }
    }
}

/// One workload of one kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for WorkloadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind.name(), self.namespace, self.name)
    }
}

/// One ImageStreamTag: `namespace/stream:tag`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagKey {
    pub namespace: String,
    pub stream: String,
    pub tag: String,
}

impl std::fmt::Display for TagKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}:{}", self.namespace, self.stream, self.tag)
    }
}

/// A trigger that is followed: the tag, and the container it sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Follow {
    pub tag: TagKey,
    pub container: ContainerRef,
    /// The container's name (tested by the patch, so a reordered list is never written).
    pub name: String,
    /// The container's image now.
    pub image: String,
}

/// An annotated workload, as the trigger controller keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub key: WorkloadKey,
    pub uid: String,
    /// `spec.serviceAccountName` of the pod template, `default` when unset.
    pub service_account: String,
    /// The triggers that are followed, or why the annotation cannot be.
    pub follows: Result<Vec<Follow>, Error>,
}

impl Workload {
    /// The workload of an object, `None` when it has no trigger annotation.
    pub fn read(kind: Kind, meta: &ObjectMeta, pod_spec: Option<&PodSpec>) -> Option<Workload> {
        let value = meta.annotations.as_ref()?.get(TRIGGER_ANNOTATION)?;
        let namespace = meta.namespace.clone().unwrap_or_default();
        let (containers, init, service_account) = match pod_spec {
            Some(spec) => (
                &spec.containers[..],
                spec.init_containers.as_deref().unwrap_or_default(),
                spec.service_account_name
                    .as_deref()
                    .or(spec.service_account.as_deref())
                    .filter(|s| !s.is_empty()),
            ),
            None => (&[][..], &[][..], None),
        };
        Some(Workload {
            key: WorkloadKey {
                kind,
                namespace: namespace.clone(),
                name: meta.name.clone().unwrap_or_default(),
            },
            uid: meta.uid.clone().unwrap_or_default(),
            service_account: service_account.unwrap_or("default").to_string(),
            follows: follows(kind, &namespace, value, containers, init),
        })
    }

    pub fn from_deployment(d: &Deployment) -> Option<Workload> {
        let spec = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
        Workload::read(Kind::Deployment, &d.metadata, spec)
    }

    pub fn from_daemon_set(d: &DaemonSet) -> Option<Workload> {
        let spec = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
        Workload::read(Kind::DaemonSet, &d.metadata, spec)
    }

    pub fn from_stateful_set(s: &StatefulSet) -> Option<Workload> {
        let spec = s.spec.as_ref().and_then(|s| s.template.spec.as_ref());
        Workload::read(Kind::StatefulSet, &s.metadata, spec)
    }

    pub fn from_cron_job(c: &CronJob) -> Option<Workload> {
        let spec = c
            .spec
            .as_ref()
            .and_then(|s| s.job_template.spec.as_ref())
            .and_then(|s| s.template.spec.as_ref());
        Workload::read(Kind::CronJob, &c.metadata, spec)
    }

    /// The tags this workload follows (none when its annotation is invalid).
    pub fn tags(&self) -> impl Iterator<Item = &TagKey> {
        self.follows.iter().flatten().map(|f| &f.tag)
    }
}

/// The followed triggers of an annotation value: paused triggers and sources other than
/// ImageStreamTags are left out; every other trigger must name a tag and a container.
fn follows(
    kind: Kind,
    namespace: &str,
    value: &str,
    containers: &[Container],
    init: &[Container],
) -> Result<Vec<Follow>, Error> {
    let mut follows: Vec<Follow> = Vec::new();
    for trigger in annotation::parse(value)? {
        if trigger.paused || !trigger.from.is_followed() {
            continue;
        }
        let (stream, tag) = annotation::split_stream_tag(&trigger.from.name)
            .ok_or_else(|| Error::StreamTag(trigger.from.name.clone()))?;
        let container =
            field_path::container(&trigger.field_path, kind.pod_spec_path(), containers, init)?;
        let list = if container.init { init } else { containers };
        let c = list
            .get(container.index)
            .ok_or_else(|| Error::NoSuchContainer(container.index.to_string()))?;
        // two triggers setting one container would undo each other on every change
        if follows.iter().any(|f| f.container == container) {
            return Err(Error::SameContainer(c.name.clone()));
        }
        let from_namespace = if trigger.from.namespace.is_empty() {
            namespace
        } else {
            &trigger.from.namespace
        };
        follows.push(Follow {
            tag: TagKey {
                namespace: from_namespace.to_string(),
                stream: stream.to_string(),
                tag: tag.to_string(),
            },
            container,
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
        });
    }
    Ok(follows)
}
