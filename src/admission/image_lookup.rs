//! The `lookupPolicy.local` webhook: Pods and pod templates with short image names get the
//! stream's digest ([`crate::stream::image_lookup`] decides; this is the IO around it).
//!
//! Every replica serves it from its own [`LookupIndex`], following the process's ImageStream
//! cache ([`ImageLookup::follow`]), so a review never calls the apiserver. It sits in the path of
//! every workload, so it never refuses one: whatever goes wrong (an index still loading, an
//! object it cannot read) admits the object unchanged, with a warning and a count in
//! `image_lookup_reviews_total{result="failed"}`; it is registered with
//! `failurePolicy: Ignore` and a short timeout for the cases where it cannot answer at all.
//!
//! The index follows the streams' watch, a few milliseconds behind the apiserver: a Pod
//! created in the same instant as its stream's first import may keep its short name, where
//! OpenShift's apiserver, reading the stream per request, would already resolve it.

use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use futures::{Stream, StreamExt};
use kube::ResourceExt;
use kube::core::admission::{AdmissionResponse, Operation as AdmissionOperation};
use kube::runtime::watcher;
use serde_json::{Value, json};

use super::review::{self, Request};
use crate::api::image_stream::ImageStream;
use crate::cache::Change;
use crate::controller::Metrics;
use crate::stream::image_lookup::{
    Kept, LookupIndex, Operation, Review, StreamEntry, Workload, plan,
};

/// Why a review was admitted unchanged without being judged; [`Failure::reason`] is stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// The first listing of ImageStreams has not arrived.
    IndexNotSynced,
    MissingObject,
    UndecodableObject,
    PatchUnencodable,
}

impl Failure {
    fn reason(self) -> &'static str {
        match self {
            Failure::IndexNotSynced => "IndexNotSynced",
            Failure::MissingObject => "MissingObject",
            Failure::UndecodableObject => "UndecodableObject",
            Failure::PatchUnencodable => "PatchUnencodable",
        }
    }
}

/// The index and the review of one request.
pub struct ImageLookup {
    index: RwLock<LookupIndex>,
    synced: AtomicBool,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for ImageLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageLookup")
            .field("synced", &self.is_synced())
            .finish_non_exhaustive()
    }
}

impl ImageLookup {
    /// An empty index, not synced until [`ImageLookup::follow`] (or [`ImageLookup::replace`])
    /// fills it; reviews are counted into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> ImageLookup {
        ImageLookup {
            index: RwLock::new(LookupIndex::default()),
            synced: AtomicBool::new(false),
            metrics,
        }
    }

    /// Whether the first listing has been indexed.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Replaces the whole index and marks it synced.
    pub fn replace(&self, index: LookupIndex) {
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = index;
        self.synced.store(true, Ordering::Release);
    }

    /// Streams indexed, and the index's approximate heap bytes.
    pub fn size(&self) -> (usize, usize) {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        (index.len(), index.heap_bytes())
    }

    /// Keeps the index in step with `changes` of the ImageStreams (the process's cache:
    /// all namespaces, or the watched one), calling `synced` once the first listing is in.
    /// Runs until the changes end; the cache's watch retries its errors with backoff, the
    /// index keeping what it had.
    pub async fn follow(
        &self,
        changes: impl Stream<Item = Change<ImageStream>>,
        synced: impl FnOnce(),
    ) {
        let mut synced = Some(synced);
        let mut listing: Option<LookupIndex> = None;
        let mut events = pin!(changes);
        while let Some(event) = events.next().await {
            match event {
                watcher::Event::Init => listing = Some(LookupIndex::default()),
                watcher::Event::InitApply(stream) => {
                    if let Some(listing) = listing.as_mut() {
                        listing.apply(&stream);
                    }
                }
                watcher::Event::InitDone => {
                    if let Some(listing) = listing.take() {
                        tracing::info!(
                            streams = listing.len(),
                            "ImageStreams indexed for image lookup"
                        );
                        self.replace(listing);
                    }
                    if let Some(synced) = synced.take() {
                        synced();
                    }
                }
                watcher::Event::Apply(stream) => {
                    let entry = StreamEntry::of(&stream);
                    let namespace = stream.namespace().unwrap_or_default();
                    self.index
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(&namespace, &stream.name_any(), entry);
                }
                watcher::Event::Delete(stream) => {
                    let namespace = stream.namespace().unwrap_or_default();
                    self.index
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .delete(&namespace, &stream.name_any());
                }
            }
        }
    }

    /// Answers one review: always allowed, with a JSON patch of the image fields that resolve.
    pub fn review(&self, request: &Request) -> AdmissionResponse {
        let (response, result, reason) = match self.judge(request) {
            Ok((response, skipped)) if response.patch.is_some() => (response, "patched", skipped),
            Ok((response, skipped)) => (response, "unchanged", skipped),
            Err(failure) => {
                tracing::warn!(
                    uid = %request.uid,
                    kind = %request.kind.kind,
                    namespace = request.namespace.as_deref().unwrap_or_default(),
                    name = %request.name,
                    reason = failure.reason(),
                    "image lookup skipped; admitted unchanged"
                );
                (review::allow(request), "failed", failure.reason())
            }
        };
        self.metrics.count_image_lookup(result, reason);
        response
    }

    /// The response and, when the object was not looked at, why ("" otherwise).
    fn judge(&self, request: &Request) -> Result<(AdmissionResponse, &'static str), Failure> {
        let operation = match request.operation {
            AdmissionOperation::Create => Operation::Create,
            AdmissionOperation::Update => Operation::Update,
            _ => return Ok((review::allow(request), "Operation")),
        };
        let Some(workload) = Workload::of(&request.kind.group, &request.kind.kind) else {
            return Ok((review::allow(request), "Kind"));
        };
        if !self.is_synced() {
            return Err(Failure::IndexNotSynced);
        }
        let object = as_json(request.object.as_ref())?.ok_or(Failure::MissingObject)?;
        let old_object = as_json(request.old_object.as_ref())?;
        let namespace = request.namespace.as_deref().unwrap_or_default();
        let review = Review {
            workload,
            operation,
            namespace,
            object: &object,
            old_object: old_object.as_ref(),
        };
        let plan = plan(
            &review,
            &self.index.read().unwrap_or_else(|e| e.into_inner()),
        );
        for (path, kept) in &plan.kept {
            if *kept == Kept::Unresolvable {
                tracing::warn!(%namespace, name = %request.name, %path, reason = kept.reason(), "image not resolved: its tag's pull spec does not parse");
            } else {
                tracing::debug!(%namespace, name = %request.name, %path, reason = kept.reason(), "image kept");
            }
        }
        if plan.changes.is_empty() {
            let skipped = plan.skipped.map_or("", |s| s.reason());
            return Ok((review::allow(request), skipped));
        }
        let operations: Vec<Value> = plan
            .changes
            .iter()
            .map(|c| {
                tracing::debug!(%namespace, name = %request.name, path = %c.path, from = %c.from, to = %c.to, "image resolved");
                json!({"op": "replace", "path": c.path, "value": c.to})
            })
            .collect();
        let patch: json_patch::Patch = serde_json::from_value(Value::Array(operations))
            .map_err(|_| Failure::PatchUnencodable)?;
        Ok((review::allow_patched(request, patch), ""))
    }
}

fn as_json(object: Option<&kube::core::DynamicObject>) -> Result<Option<Value>, Failure> {
    object
        .map(serde_json::to_value)
        .transpose()
        .map_err(|_| Failure::UndecodableObject)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::review::tests::review_body;

    const D1: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";

    fn lookup() -> ImageLookup {
        let lookup = ImageLookup::new(Arc::new(Metrics::default()));
        let stream: ImageStream = serde_json::from_value(json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
            "metadata": {"name": "app", "namespace": "ns"},
            "spec": {"lookupPolicy": {"local": true}},
            "status": {"dockerImageRepository": "", "tags": [{"tag": "v1", "items": [
                {"created": "2026-01-01T00:00:00Z", "dockerImageReference": format!("reg.example/lab/app@{D1}"),
                 "image": D1, "generation": 1}]}]},
        }))
        .unwrap();
        let mut index = LookupIndex::default();
        index.apply(&stream);
        lookup.replace(index);
        lookup
    }

    fn pod_request(image: &str) -> Request {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [{"name": "c", "image": image}, {"name": "d", "image": "nginx"}]}});
        let mut body: Value =
            serde_json::from_slice(&review_body("CREATE", "Pod", pod, Value::Null)).unwrap();
        body["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "Pod"});
        body["request"]["resource"] = json!({"group": "", "version": "v1", "resource": "pods"});
        body["request"]["namespace"] = json!("ns");
        review::parse(&serde_json::to_vec(&body).unwrap()).unwrap()
    }

    fn patch_of(response: &AdmissionResponse) -> Option<Value> {
        serde_json::from_slice(response.patch.as_ref()?).ok()
    }

    #[test]
    fn a_short_name_is_patched_and_nothing_else() {
        let lookup = lookup();
        let response = lookup.review(&pod_request("app:v1"));
        assert!(response.allowed);
        assert_eq!(
            patch_of(&response),
            Some(json!([{"op": "replace", "path": "/spec/containers/0/image",
                "value": format!("reg.example/lab/app@{D1}")}]))
        );
        let response = lookup.review(&pod_request("quay.io/org/app:v1"));
        assert!(response.allowed);
        assert_eq!(patch_of(&response), None);
    }

    #[test]
    fn an_index_that_has_not_loaded_admits_unchanged() {
        let metrics = Arc::new(Metrics::default());
        let lookup = ImageLookup::new(metrics.clone());
        let response = lookup.review(&pod_request("app:v1"));
        assert!(response.allowed);
        assert_eq!(patch_of(&response), None);
        assert!(
            metrics.encode().contains(
                r#"image_lookup_reviews_total{result="failed",reason="IndexNotSynced"} 1"#
            ),
            "{}",
            metrics.encode()
        );
    }

    #[test]
    fn other_kinds_and_operations_are_admitted_unchanged() {
        let lookup = lookup();
        let mut request = pod_request("app:v1");
        request.kind.kind = "Service".into();
        assert_eq!(patch_of(&lookup.review(&request)), None);
        let mut request = pod_request("app:v1");
        request.operation = AdmissionOperation::Delete;
        assert!(lookup.review(&request).allowed);
        let mut request = pod_request("app:v1");
        request.object = None;
        let response = lookup.review(&request);
        assert!(response.allowed);
        assert_eq!(patch_of(&response), None);
    }
}
