//! The webhooks behind the HTTP server: which path judges what, the configuration snapshot each
//! review reads, and per-webhook counters (requests, outcomes, time spent), also exported to
//! Prometheus when given the operator's [`Metrics`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use kube::core::admission::AdmissionResponse;
use tokio::sync::watch;

use super::access::Authorizer;
use super::image_lookup::ImageLookup;
use super::image_stream_import::Imports;
use super::limit_ranges::{LimitRangeSource, NoLimitRanges};
use super::prune_guard::{self, ReferenceSource};
use super::review::{self, ReviewError};
use super::tags::Writer;
use super::{
    AdmissionSettings, image_signature, image_stream, image_stream_import, image_stream_mapping,
    read_only, tags,
};
use crate::controller::Metrics;

/// Path of the mutating ImageStream webhook.
pub const MUTATE_IMAGE_STREAMS_PATH: &str = "/mutate/imagestreams";
/// Path of the validating ImageStream webhook.
pub const VALIDATE_IMAGE_STREAMS_PATH: &str = "/validate/imagestreams";
/// Path of the validating ImageStreamImport webhook.
pub const VALIDATE_IMAGE_STREAM_IMPORTS_PATH: &str = "/validate/imagestreamimports";
/// Path of the mutating ImageStreamImport webhook (it answers the import).
pub const MUTATE_IMAGE_STREAM_IMPORTS_PATH: &str = "/mutate/imagestreamimports";
/// Path of the mutating webhook of users' `imagestreams/status` writes.
pub const MUTATE_IMAGE_STREAM_STATUS_PATH: &str = "/mutate/imagestreams/status";
/// Path of the validating webhook of users' `imagestreams/status` writes.
pub const VALIDATE_IMAGE_STREAM_STATUS_PATH: &str = "/validate/imagestreams/status";
/// Path of the validating Image DELETE webhook.
pub const VALIDATE_IMAGE_DELETES_PATH: &str = "/validate/images";
/// Path of the mutating ImageStreamTag and ImageTag webhook (their write paths).
pub const MUTATE_TAGS_PATH: &str = "/mutate/tags";
/// Path of the validating ImageStreamTag and ImageTag DELETE webhook.
pub const VALIDATE_TAG_DELETES_PATH: &str = "/validate/tags";
/// Path of the mutating ImageSignature CREATE webhook (attaches it to its Image).
pub const MUTATE_IMAGE_SIGNATURES_PATH: &str = "/mutate/imagesignatures";
/// Path of the validating ImageSignature DELETE webhook (detaches it).
pub const VALIDATE_IMAGE_SIGNATURE_DELETES_PATH: &str = "/validate/imagesignatures";
/// Path of the mutating Pod and pod template webhook (`lookupPolicy.local`).
pub const MUTATE_IMAGE_LOOKUP_PATH: &str = "/mutate/image-lookup";
/// Path of the mutating ImageStreamMapping CREATE webhook (names the stored request).
pub const MUTATE_IMAGE_STREAM_MAPPINGS_PATH: &str = "/mutate/imagestreammappings";
/// Path of the validating webhook of the read-only views (ImageStreamImage, ImageStreamLayers).
pub const VALIDATE_READ_ONLY_VIEWS_PATH: &str = "/validate/readonlyviews";

/// One webhook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hook {
    MutateImageStreams,
    ValidateImageStreams,
    ValidateImageStreamImports,
    MutateTags,
    ValidateTagDeletes,
    MutateImageSignatures,
    ValidateImageSignatureDeletes,
    MutateImageStreamImports,
    MutateImageStreamStatus,
    ValidateImageStreamStatus,
    ValidateImageDeletes,
    MutateImageLookup,
    MutateImageStreamMappings,
    ValidateReadOnlyViews,
}

impl Hook {
    pub const ALL: [Hook; 14] = [
        Hook::MutateImageStreams,
        Hook::ValidateImageStreams,
        Hook::ValidateImageStreamImports,
        Hook::MutateTags,
        Hook::ValidateTagDeletes,
        Hook::MutateImageSignatures,
        Hook::ValidateImageSignatureDeletes,
        Hook::MutateImageStreamImports,
        Hook::MutateImageStreamStatus,
        Hook::ValidateImageStreamStatus,
        Hook::ValidateImageDeletes,
        Hook::MutateImageLookup,
        Hook::MutateImageStreamMappings,
        Hook::ValidateReadOnlyViews,
    ];

    pub fn path(self) -> &'static str {
        match self {
            Hook::MutateImageStreams => MUTATE_IMAGE_STREAMS_PATH,
            Hook::ValidateImageStreams => VALIDATE_IMAGE_STREAMS_PATH,
            Hook::ValidateImageStreamImports => VALIDATE_IMAGE_STREAM_IMPORTS_PATH,
            Hook::MutateTags => MUTATE_TAGS_PATH,
            Hook::ValidateTagDeletes => VALIDATE_TAG_DELETES_PATH,
            Hook::MutateImageSignatures => MUTATE_IMAGE_SIGNATURES_PATH,
            Hook::ValidateImageSignatureDeletes => VALIDATE_IMAGE_SIGNATURE_DELETES_PATH,
            Hook::MutateImageStreamImports => MUTATE_IMAGE_STREAM_IMPORTS_PATH,
            Hook::MutateImageStreamStatus => MUTATE_IMAGE_STREAM_STATUS_PATH,
            Hook::ValidateImageStreamStatus => VALIDATE_IMAGE_STREAM_STATUS_PATH,
            Hook::ValidateImageDeletes => VALIDATE_IMAGE_DELETES_PATH,
            Hook::MutateImageLookup => MUTATE_IMAGE_LOOKUP_PATH,
            Hook::MutateImageStreamMappings => MUTATE_IMAGE_STREAM_MAPPINGS_PATH,
            Hook::ValidateReadOnlyViews => VALIDATE_READ_ONLY_VIEWS_PATH,
        }
    }

    pub fn from_path(path: &str) -> Option<Hook> {
        Hook::ALL.into_iter().find(|h| h.path() == path)
    }

    fn index(self) -> usize {
        match self {
            Hook::MutateImageStreams => 0,
            Hook::ValidateImageStreams => 1,
            Hook::ValidateImageStreamImports => 2,
            Hook::MutateTags => 3,
            Hook::ValidateTagDeletes => 4,
            Hook::MutateImageSignatures => 5,
            Hook::ValidateImageSignatureDeletes => 6,
            Hook::MutateImageStreamImports => 7,
            Hook::MutateImageStreamStatus => 8,
            Hook::ValidateImageStreamStatus => 9,
            Hook::ValidateImageDeletes => 10,
            Hook::MutateImageLookup => 11,
            Hook::MutateImageStreamMappings => 12,
            Hook::ValidateReadOnlyViews => 13,
        }
    }
}

/// Counters of one webhook since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HookCounts {
    pub requests: u64,
    /// Allowed without a patch.
    pub allowed: u64,
    /// Allowed with a patch.
    pub patched: u64,
    /// Denied: invalid objects and reviews that could not be judged.
    pub denied: u64,
    /// Of the denied, those that could not be judged (bad requests, internal errors).
    pub failed: u64,
    pub total_micros: u64,
    pub max_micros: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    allowed: AtomicU64,
    patched: AtomicU64,
    denied: AtomicU64,
    failed: AtomicU64,
    total_micros: AtomicU64,
    max_micros: AtomicU64,
}

/// The webhooks: settings, the authorizer for SubjectAccessReviews, and counters.
pub struct Webhooks {
    settings: watch::Receiver<Arc<AdmissionSettings>>,
    authorizer: Box<dyn Authorizer>,
    limits: Box<dyn LimitRangeSource>,
    writer: Option<Writer>,
    imports: Option<Arc<Imports>>,
    references: Option<Box<dyn ReferenceSource>>,
    image_lookup: Option<Arc<ImageLookup>>,
    counters: [Counters; Hook::ALL.len()],
    /// Registry notifications served beside the webhooks, under `/hooks/`.
    receivers: Option<Arc<crate::receiver::Receivers>>,
    metrics: Option<Arc<Metrics>>,
}

impl Webhooks {
    /// `settings` is read once per review, so configuration changes apply to the next one.
    pub fn new(
        authorizer: impl Authorizer + 'static,
        settings: watch::Receiver<Arc<AdmissionSettings>>,
    ) -> Webhooks {
        Webhooks {
            settings,
            authorizer: Box::new(authorizer),
            limits: Box::new(NoLimitRanges),
            writer: None,
            imports: None,
            references: None,
            image_lookup: None,
            counters: Default::default(),
            receivers: None,
            metrics: None,
        }
    }

    /// Counts every review in `metrics` too (`admission_reviews`, and its duration).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Webhooks {
        self.metrics = Some(metrics);
        self
    }

    /// Serves the registry notification receivers too.
    pub fn with_receivers(mut self, receivers: Arc<crate::receiver::Receivers>) -> Webhooks {
        self.receivers = Some(receivers);
        self
    }

    /// The receivers served beside the webhooks, if any.
    pub fn receivers(&self) -> Option<&crate::receiver::Receivers> {
        self.receivers.as_deref()
    }

    /// Enforces the LimitRanges `source` reads (none without it).
    pub fn with_limit_ranges(mut self, source: impl LimitRangeSource + 'static) -> Webhooks {
        self.limits = Box::new(source);
        self
    }

    /// Serves the write paths of the tag views and ImageSignatures through `writer` (without
    /// it those webhooks refuse every request).
    pub fn with_writer(mut self, writer: Writer) -> Webhooks {
        self.writer = Some(writer);
        self
    }

    /// Answers ImageStreamImports in their create through `imports` (without it they are only
    /// checked and defaulted, and the controller answers them).
    pub fn with_imports(mut self, imports: Arc<Imports>) -> Webhooks {
        self.imports = Some(imports);
        self
    }

    /// Guards Image deletes and users' status writes with what `references` knows (without it
    /// nothing is refused for being in use).
    pub fn with_references(mut self, references: impl ReferenceSource + 'static) -> Webhooks {
        self.references = Some(Box::new(references));
        self
    }

    /// Resolves short image names in Pods and pod templates through `lookup` (without it
    /// that webhook admits everything unchanged).
    pub fn with_image_lookup(mut self, lookup: Arc<ImageLookup>) -> Webhooks {
        self.image_lookup = Some(lookup);
        self
    }

    /// Answers one AdmissionReview body with an AdmissionReview body.
    pub async fn handle(&self, hook: Hook, body: &[u8]) -> Vec<u8> {
        let started = Instant::now();
        let settings = self.settings.borrow().clone();
        let response = match review::parse(body) {
            Err(e) => {
                tracing::warn!(path = hook.path(), reason = e.reason(), error = %e, "unreadable AdmissionReview");
                Err((None, e))
            }
            Ok(request) => {
                let judged = match hook {
                    Hook::MutateImageStreams => image_stream::mutate(&request, &settings)
                        .map(|patch| review::allow_patched(&request, patch)),
                    Hook::ValidateImageStreams => {
                        image_stream::validate(
                            &request,
                            &settings,
                            self.authorizer.as_ref(),
                            self.limits.as_ref(),
                        )
                        .await
                    }
                    Hook::ValidateImageStreamImports => {
                        image_stream_import::validate(&request, &settings, self.authorizer.as_ref())
                            .await
                    }
                    Hook::MutateTags => {
                        tags::mutate(
                            &request,
                            &settings,
                            self.authorizer.as_ref(),
                            self.writer.as_ref(),
                        )
                        .await
                    }
                    Hook::ValidateTagDeletes => {
                        tags::validate_delete(&request, self.writer.as_ref()).await
                    }
                    Hook::MutateImageSignatures => {
                        image_signature::mutate(&request, self.writer.as_ref()).await
                    }
                    Hook::ValidateImageSignatureDeletes => {
                        image_signature::validate_delete(&request, self.writer.as_ref()).await
                    }
                    Hook::MutateImageStreamStatus => {
                        prune_guard::mutate_status(&request, self.writer.as_ref())
                            .map(|patch| review::allow_patched(&request, patch))
                    }
                    Hook::ValidateImageStreamStatus => {
                        prune_guard::validate_status(
                            &request,
                            &settings,
                            self.writer.as_ref(),
                            self.limits.as_ref(),
                            self.references.as_deref(),
                        )
                        .await
                    }
                    Hook::ValidateImageDeletes => {
                        prune_guard::validate_image_delete(
                            &request,
                            self.writer.as_ref(),
                            self.references.as_deref(),
                        )
                        .await
                    }
                    Hook::MutateImageStreamImports => {
                        image_stream_import::mutate(
                            &request,
                            &settings,
                            self.authorizer.as_ref(),
                            self.limits.as_ref(),
                            self.imports.as_deref(),
                        )
                        .await
                    }
                    Hook::MutateImageLookup => Ok(match &self.image_lookup {
                        Some(lookup) => lookup.review(&request),
                        None => review::allow(&request),
                    }),
                    Hook::MutateImageStreamMappings => image_stream_mapping::mutate(&request)
                        .map(|patch| review::allow_patched(&request, patch)),
                    Hook::ValidateReadOnlyViews => {
                        read_only::validate(&request, self.writer.as_ref().map(Writer::operator))
                    }
                };
                judged.map_err(|e| {
                    tracing::warn!(path = hook.path(), uid = %request.uid, reason = e.reason(), error = %e, "admission request not judged");
                    (Some(request), e)
                })
            }
        };
        // not judged for a reason of the webhook's own (anything but the user's undecodable
        // object) is an error of the webhook, as is an internal failure
        let unjudged = response
            .as_ref()
            .err()
            .map(|(_, e)| e.reason())
            .filter(|reason| *reason != "UndecodableObject");
        let response = response.unwrap_or_else(|(request, e): (_, ReviewError)| {
            review::bad_request(request.as_ref(), &e)
        });
        self.count(hook, &response, started, unjudged.is_some());
        review::to_body(response)
    }

    fn count(&self, hook: Hook, response: &AdmissionResponse, started: Instant, unjudged: bool) {
        let c = &self.counters[hook.index()];
        c.requests.fetch_add(1, Ordering::Relaxed);
        let outcome = match (response.allowed, response.patch.is_some()) {
            (true, true) => &c.patched,
            (true, false) => &c.allowed,
            (false, _) => &c.denied,
        };
        outcome.fetch_add(1, Ordering::Relaxed);
        if !response.allowed && response.result.code != 422 {
            c.failed.fetch_add(1, Ordering::Relaxed);
        }
        let took = started.elapsed();
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        c.total_micros.fetch_add(micros, Ordering::Relaxed);
        c.max_micros.fetch_max(micros, Ordering::Relaxed);
        if let Some(metrics) = &self.metrics {
            let result = match (response.allowed, response.patch.is_some()) {
                _ if unjudged || response.result.code >= 500 => "error",
                (true, true) => "patched",
                (true, false) => "allowed",
                (false, _) => "denied",
            };
            metrics.admission_review(hook.path(), result, took);
        }
    }

    /// The counters of `hook`.
    pub fn counts(&self, hook: Hook) -> HookCounts {
        let c = &self.counters[hook.index()];
        HookCounts {
            requests: c.requests.load(Ordering::Relaxed),
            allowed: c.allowed.load(Ordering::Relaxed),
            patched: c.patched.load(Ordering::Relaxed),
            denied: c.denied.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            total_micros: c.total_micros.load(Ordering::Relaxed),
            max_micros: c.max_micros.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::access::Decision;
    use crate::admission::review::tests::review_body;
    use futures::future::BoxFuture;
    use k8s_openapi::api::authentication::v1::UserInfo;
    use k8s_openapi::api::authorization::v1::ResourceAttributes;
    use serde_json::{Value, json};

    struct Nobody;

    impl Authorizer for Nobody {
        fn review<'a>(
            &'a self,
            _user: &'a UserInfo,
            _attributes: ResourceAttributes,
        ) -> BoxFuture<'a, Result<Decision, kube::Error>> {
            Box::pin(async { Ok(Decision::default()) })
        }
    }

    fn webhooks() -> Webhooks {
        let (_tx, rx) = watch::channel(Arc::new(AdmissionSettings::default()));
        Webhooks::new(Nobody, rx)
    }

    #[tokio::test]
    async fn every_body_gets_an_admission_review_back() {
        let webhooks = webhooks();
        for body in [&b""[..], b"{", b"[]", b"{\"request\": 5}"] {
            for hook in Hook::ALL {
                let out: Value =
                    serde_json::from_slice(&webhooks.handle(hook, body).await).unwrap();
                assert_eq!(out["kind"], "AdmissionReview");
                assert_eq!(out["response"]["allowed"], false);
                assert_eq!(out["response"]["status"]["code"], 400);
            }
        }
        assert_eq!(webhooks.counts(Hook::MutateImageStreams).failed, 4);
    }

    #[tokio::test]
    async fn reviews_are_exported_by_webhook_and_result() {
        let metrics = Arc::new(Metrics::default());
        let webhooks = webhooks().with_metrics(metrics.clone());
        let _ = webhooks.handle(Hook::ValidateImageStreams, b"{").await;
        let object = json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
            "metadata": {"name": "s", "namespace": "ns"},
            "spec": {"tags": [{"name": "a", "from": {"kind": "DockerImage", "name": "x"}}]}});
        let body = review_body("CREATE", "ImageStream", object, Value::Null);
        let _ = webhooks.handle(Hook::MutateImageStreams, &body).await;
        // the user's object that is no ImageStream is refused, not an error of the webhook
        let bad = json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
            "metadata": {"name": "s", "namespace": "ns"}, "spec": {"tags": 5}});
        let body = review_body("CREATE", "ImageStream", bad, Value::Null);
        let _ = webhooks.handle(Hook::MutateImageStreams, &body).await;
        let text = metrics.encode();
        for line in [
            r#"imagestream_operator_admission_reviews_total{webhook="validate/imagestreams",result="error"} 1"#,
            r#"imagestream_operator_admission_reviews_total{webhook="mutate/imagestreams",result="patched"} 1"#,
            r#"imagestream_operator_admission_reviews_total{webhook="mutate/imagestreams",result="denied"} 1"#,
            r#"imagestream_operator_admission_review_duration_seconds_count{webhook="mutate/imagestreams"} 2"#,
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }

    #[tokio::test]
    async fn a_kind_sent_to_the_wrong_webhook_is_refused_with_its_uid() {
        let webhooks = webhooks();
        let object = json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStreamImport",
            "metadata": {"name": "s", "namespace": "ns"}, "spec": {"images": []}});
        let body = review_body("CREATE", "ImageStreamImport", object, Value::Null);
        let out: Value =
            serde_json::from_slice(&webhooks.handle(Hook::MutateImageStreams, &body).await)
                .unwrap();
        assert_eq!(
            out["response"]["uid"],
            "6d9d7a2c-1111-2222-3333-444455556666"
        );
        assert_eq!(out["response"]["allowed"], false);
        assert!(
            out["response"]["status"]["message"]
                .as_str()
                .unwrap()
                .contains("admits image.openshift.io ImageStream")
        );
    }

    #[tokio::test]
    async fn mutation_answers_with_a_json_patch() {
        let webhooks = webhooks();
        let object = json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
            "metadata": {"name": "s", "namespace": "ns"},
            "spec": {"tags": [{"name": "a", "from": {"kind": "DockerImage", "name": "x"}}]}});
        let body = review_body("CREATE", "ImageStream", object, Value::Null);
        let out: Value =
            serde_json::from_slice(&webhooks.handle(Hook::MutateImageStreams, &body).await)
                .unwrap();
        assert_eq!(out["response"]["allowed"], true);
        assert_eq!(out["response"]["patchType"], "JSONPatch");
        let counts = webhooks.counts(Hook::MutateImageStreams);
        assert_eq!((counts.requests, counts.patched), (1, 1));
    }
}
