//! The operator's Event recorder: kube's `Recorder` API (the same [`Event`] and
//! [`Reporter`], the same names, fields and `series` for repeats), with the record of
//! recent Events kept small ([`series`]): kube's keeps every Event of the last six minutes
//! in full and scans them on each publish, which at a first import of thousands of streams
//! was much of the operator's memory.

pub mod series;

use std::sync::{Arc, Mutex, PoisonError};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
pub use kube::runtime::events::{Event, EventType, Reporter};
use serde_json::json;

use series::{Key, Series, Write};

/// Publishes Events about objects; clones share the record of recent Events.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    reporter: Reporter,
    series: Arc<Mutex<Series>>,
}

impl Recorder {
    pub fn new(client: Client, reporter: Reporter) -> Recorder {
        Recorder {
            client,
            reporter,
            series: Arc::default(),
        }
    }

    /// Publishes `ev` about `regarding`: a new Event, or the count of the same Event published
    /// within the last six minutes. Cluster-scoped objects' Events go to `default`.
    pub async fn publish(
        &self,
        ev: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let key = key(ev, regarding);
        let now = Timestamp::now();
        let write = self.series().write(&key, now);
        if let Write::Repeat {
            namespace,
            name,
            count,
        } = write
        {
            let patch = json!({
                "series": EventSeries { count, last_observed_time: MicroTime(now) },
            });
            match Api::<K8sEvent>::namespaced(self.client.clone(), &namespace)
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.series().written(&key, &namespace, &name, count, now);
                    return Ok(());
                }
                // gone (the apiserver's Event TTL, or deleted): a new Event
                Err(kube::Error::Api(status)) if status.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        let event = self.event(ev, regarding, now);
        let namespace = event.metadata.namespace.clone().unwrap_or_default();
        let name = event.metadata.name.clone().unwrap_or_default();
        Api::<K8sEvent>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &event)
            .await?;
        self.series().written(&key, &namespace, &name, 1, now);
        Ok(())
    }

    fn series(&self) -> std::sync::MutexGuard<'_, Series> {
        self.series.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new Event, named and filled as kube's recorder does.
    fn event(&self, ev: &Event, regarding: &ObjectReference, now: Timestamp) -> K8sEvent {
        let controller = &self.reporter.controller;
        K8sEvent {
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: ev.secondary.clone(),
            note: ev.note.clone(),
            metadata: ObjectMeta {
                namespace: Some(
                    regarding
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".into()),
                ),
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_ref().unwrap_or(controller),
                    now.as_nanosecond()
                )),
                ..ObjectMeta::default()
            },
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| controller.clone()),
            ),
            type_: Some(
                match ev.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            ..K8sEvent::default()
        }
    }
}

fn key<'a>(ev: &'a Event, regarding: &'a ObjectReference) -> Key<'a> {
    fn parts(r: &ObjectReference) -> [Option<&str>; 4] {
        [
            r.kind.as_deref(),
            r.namespace.as_deref(),
            r.name.as_deref(),
            r.uid.as_deref(),
        ]
    }
    Key {
        warning: matches!(ev.type_, EventType::Warning),
        action: &ev.action,
        reason: &ev.reason,
        regarding: parts(regarding),
        related: ev.secondary.as_ref().map(parts),
    }
}
