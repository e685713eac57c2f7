//! What the operator counts: plain counters for benchmarks and tests, and the Prometheus
//! families served on `/metrics` ([`Metrics::encode`]). The names are listed in the README.
//!
//! Registry requests are counted by the registry client's [`RequestObserver`] hook, so every
//! HTTP exchange (each retry, auth round and redirect hop) is one sample. The process's own
//! CPU, memory and file descriptors are read from `/proc` at each scrape ([`process`]), under
//! the names every Prometheus client uses (`process_*`), so dashboards written for those work.
//! The alerts and the dashboard in `charts/imagestream-operator/files/` use only these names (a
//! test reads them from a real scrape).

mod process;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::registry::{PathKind, RequestObserver};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ImportLabels {
    registry: String,
    /// `new`, `unchanged` or `failed`.
    result: &'static str,
    /// The failure's stable reason; empty on success.
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerificationLabels {
    policy: String,
    /// `passed` or `failed`.
    result: &'static str,
    /// The failure's stable reason (`SignatureMissing`, ...); empty when it passed.
    reason: &'static str,
    /// `registry` (the signatures were read) or `cache` (a passing verdict kept).
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReferrerLabels {
    /// `api` (the OCI referrers API) or `tags` (cosign's tags).
    source: &'static str,
    /// `listed`, `none` or `failed`.
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    registry: String,
    method: String,
    /// The HTTP status, or `none` when no response arrived.
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    controller: &'static str,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LookupLabels {
    /// `patched`, `unchanged` or `failed`.
    result: &'static str,
    /// Why unchanged without a look (`Controlled`, `JobUpdate`, …) or why failed; else empty.
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegistryLabel {
    registry: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuotaLabels {
    registry: String,
    /// A credential set's identity (a hash, never the secret), or `anonymous`.
    credential: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    /// The webhook's path without the leading `/` (`mutate/imagestreams`, …).
    webhook: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReviewLabels {
    webhook: &'static str,
    /// `allowed`, `patched`, `denied` (the object was judged and refused) or `error` (the
    /// review could not be judged: unreadable, or the webhook itself failed).
    result: &'static str,
}

/// A family of histograms, each made by a plain function.
type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    /// `namespace/name` of the ImageReceiver.
    receiver: String,
    /// Its type (`distribution`, `harbor`, …).
    r#type: String,
    /// `accepted`, `no_match`, `unauthorized`, `malformed`, `rate_limited`, `unavailable`.
    outcome: &'static str,
}

/// Counters for benchmarks and tests, and the Prometheus families.
pub struct Metrics {
    pub imports_new: AtomicU64,
    pub imports_unchanged: AtomicU64,
    pub imports_failed: AtomicU64,
    pub status_writes: AtomicU64,
    pub images_created: AtomicU64,
    /// Scheduled checks of a stream, and the tags they covered.
    pub scheduled_checks: AtomicU64,
    pub scheduled_tags: AtomicU64,
    /// Workloads patched by image change triggers (one patch per workload and change).
    pub trigger_patches: AtomicU64,
    registry: Registry,
    imports: Family<ImportLabels, Counter>,
    verifications: Family<VerificationLabels, Counter>,
    referrer_lookups: Family<ReferrerLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    import_seconds: Histogram,
    reconcile_errors: Family<ErrorLabels, Counter>,
    scheduled_streams: Gauge,
    budget_remaining: Family<RegistryLabel, Gauge>,
    in_flight: Family<ControllerLabel, Gauge>,
    trigger_writes: Family<KindLabel, Counter>,
    image_lookups: Family<LookupLabels, Counter>,
    quota_limit: Family<QuotaLabels, Gauge>,
    quota_remaining: Family<QuotaLabels, Gauge>,
    quota_window: Family<QuotaLabels, Gauge>,
    notifications: Family<NotificationLabels, Counter>,
    notification_seconds: Histogram,
    reconcile_seconds: Histograms<ControllerLabel>,
    leader: Gauge,
    reviews: Family<ReviewLabels, Counter>,
    review_seconds: Histograms<WebhookLabels>,
    scheduled_checks_total: Counter,
    scheduled_interval: Gauge,
    scheduled_delay: Histogram,
    registry_request_seconds: Histogram,
    api_request_seconds: Family<ApiRequestLabels, Histogram>,
    /// Notifications by outcome, for tests and benchmarks.
    pub notifications_accepted: AtomicU64,
    pub notifications_refused: AtomicU64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiRequestLabels {
    /// The HTTP method, or `WATCH` for a watch.
    verb: String,
    /// The resource and subresource, as the apiserver's own metrics name them
    /// (`imagestreams`, `imagestreams/status`, `events`).
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabel {
    controller: &'static str,
}

/// One reconcile in flight, counted until dropped; its duration is observed then.
pub(crate) struct Reconciling {
    in_flight: Gauge,
    seconds: Histogram,
    started: Instant,
}

impl Drop for Reconciling {
    fn drop(&mut self) {
        self.in_flight.dec();
        self.seconds.observe(self.started.elapsed().as_secs_f64());
    }
}

/// This process runs the controllers (it leads) until dropped.
pub struct Leading(Gauge);

impl Drop for Leading {
    fn drop(&mut self) {
        self.0.set(0);
    }
}

fn reconcile_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// 1 ms to 33 s: the import webhook may take its whole 30 s timeout.
fn review_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// How late a scheduled check starts, in seconds: from "on time" to hours behind.
const SCHEDULE_DELAY_BUCKETS: [f64; 13] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0,
];

/// Buckets of the latency histograms added for issue 17's breakdown: 1 ms to about 65 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut root = Registry::default();
        root.register_collector(Box::new(process::Collector));
        let registry = root.sub_registry_with_prefix("imagestream_operator");
        let imports = Family::<ImportLabels, Counter>::default();
        registry.register(
            "imports",
            "Tag imports by registry, result (new, unchanged, failed) and failure reason",
            imports.clone(),
        );
        let verifications = Family::<VerificationLabels, Counter>::default();
        registry.register(
            "image_verifications",
            "Signature verifications of imported images by image policy, result (passed, failed), failure reason and source (registry, cache)",
            verifications.clone(),
        );
        let referrer_lookups = Family::<ReferrerLabels, Counter>::default();
        registry.register(
            "image_referrer_lookups",
            "Referrers listings of new images by source (api, tags) and result (listed, none, failed)",
            referrer_lookups.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "registry_requests",
            "HTTP exchanges with registries by registry, method and status code",
            requests.clone(),
        );
        let import_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "import_duration_seconds",
            "Time one import batch (the tags of one reconcile or request) took",
            import_seconds.clone(),
        );
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Failed reconciles by controller and reason",
            reconcile_errors.clone(),
        );
        let scheduled_streams = Gauge::default();
        registry.register(
            "scheduled_streams",
            "Streams with scheduled tags in the re-check schedule",
            scheduled_streams.clone(),
        );
        let budget_remaining = Family::<RegistryLabel, Gauge>::default();
        registry.register(
            "registry_budget_remaining",
            "Scheduled checks left in the current minute, by registry budget (\"*\" is the cluster-wide budget)",
            budget_remaining.clone(),
        );
        let in_flight = Family::<ControllerLabel, Gauge>::default();
        registry.register(
            "reconciles_in_flight",
            "Reconciles running now, by controller",
            in_flight.clone(),
        );
        let trigger_writes = Family::<KindLabel, Counter>::default();
        registry.register(
            "image_trigger_patches",
            "Workloads patched by image change triggers, by kind",
            trigger_writes.clone(),
        );
        let image_lookups = Family::<LookupLabels, Counter>::default();
        registry.register(
            "image_lookup_reviews",
            "Reviews of the image lookup webhook by result (patched, unchanged, failed) and reason",
            image_lookups.clone(),
        );
        let quota_limit = Family::<QuotaLabels, Gauge>::default();
        registry.register(
            "registry_quota_limit",
            "Requests per window a registry announced (ratelimit-limit), by registry and credential",
            quota_limit.clone(),
        );
        let quota_remaining = Family::<QuotaLabels, Gauge>::default();
        registry.register(
            "registry_quota_remaining",
            "Requests left in the window at the last manifest response (ratelimit-remaining), by registry and credential",
            quota_remaining.clone(),
        );
        let quota_window = Family::<QuotaLabels, Gauge>::default();
        registry.register(
            "registry_quota_window_seconds",
            "The window of a registry's announced quota, by registry and credential",
            quota_window.clone(),
        );
        let notifications = Family::<NotificationLabels, Counter>::default();
        registry.register(
            "notifications",
            "Registry notifications received, by ImageReceiver, type and outcome",
            notifications.clone(),
        );
        let notification_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "notification_to_status_seconds",
            "From a notification's arrival to the end of the check it asked for (the stream's status written when the tag moved)",
            notification_seconds.clone(),
        );
        let reconcile_seconds: Histograms<ControllerLabel> =
            Family::new_with_constructor(reconcile_histogram);
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took, by controller (its _count is every reconcile, failed or not)",
            reconcile_seconds.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica runs the controllers (holds the Lease, or runs without leader election)",
            leader.clone(),
        );
        let reviews = Family::<ReviewLabels, Counter>::default();
        registry.register(
            "admission_reviews",
            "Admission reviews answered, by webhook and result (allowed, patched, denied, error)",
            reviews.clone(),
        );
        let review_seconds: Histograms<WebhookLabels> =
            Family::new_with_constructor(review_histogram);
        registry.register(
            "admission_review_duration_seconds",
            "Time the webhook took to answer one admission review, by webhook",
            review_seconds.clone(),
        );
        let scheduled_checks_total = Counter::default();
        registry.register(
            "scheduled_checks",
            "Scheduled checks of a stream's scheduled tags (one per stream and interval when on time)",
            scheduled_checks_total.clone(),
        );
        let scheduled_interval = Gauge::default();
        registry.register(
            "scheduled_interval_seconds",
            "The interval at which each stream's scheduled tags are checked (scheduledImageImportMinimumIntervalSeconds)",
            scheduled_interval.clone(),
        );
        let scheduled_delay = Histogram::new(SCHEDULE_DELAY_BUCKETS);
        registry.register(
            "scheduled_check_delay_seconds",
            "How long after it was due a scheduled check started (waits for request budgets and quotas)",
            scheduled_delay.clone(),
        );
        let registry_request_seconds = latency_histogram();
        registry.register(
            "registry_request_duration_seconds",
            "Time one HTTP exchange with a registry took",
            registry_request_seconds.clone(),
        );
        let api_request_seconds = Family::<ApiRequestLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Time from sending a request to the apiserver to its response headers, as the operator sees it, by verb and resource",
            api_request_seconds.clone(),
        );
        Metrics {
            imports_new: AtomicU64::default(),
            imports_unchanged: AtomicU64::default(),
            imports_failed: AtomicU64::default(),
            status_writes: AtomicU64::default(),
            images_created: AtomicU64::default(),
            scheduled_checks: AtomicU64::default(),
            scheduled_tags: AtomicU64::default(),
            trigger_patches: AtomicU64::default(),
            imports,
            verifications,
            referrer_lookups,
            requests,
            import_seconds,
            reconcile_errors,
            scheduled_streams,
            budget_remaining,
            in_flight,
            trigger_writes,
            image_lookups,
            quota_limit,
            quota_remaining,
            quota_window,
            notifications,
            notification_seconds,
            reconcile_seconds,
            leader,
            reviews,
            review_seconds,
            scheduled_checks_total,
            scheduled_interval,
            scheduled_delay,
            registry_request_seconds,
            api_request_seconds,
            notifications_accepted: AtomicU64::default(),
            notifications_refused: AtomicU64::default(),
            registry: root,
        }
    }
}

impl Metrics {
    /// One tag import from `registry`: `Ok(unchanged)` or the failure's reason.
    pub(super) fn import(&self, registry: &str, result: Result<bool, &str>) {
        let (counter, label, reason) = match result {
            Ok(true) => (&self.imports_unchanged, "unchanged", ""),
            Ok(false) => (&self.imports_new, "new", ""),
            Err(reason) => (&self.imports_failed, "failed", reason),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.imports
            .get_or_create(&ImportLabels {
                registry: registry.into(),
                result: label,
                reason: reason.into(),
            })
            .inc();
    }

    /// One image's verification against `policy` (see [`crate::import::trust`]).
    pub(crate) fn verification(
        &self,
        policy: &str,
        passed: bool,
        reason: &'static str,
        cached: bool,
    ) {
        self.verifications
            .get_or_create(&VerificationLabels {
                policy: policy.into(),
                result: if passed { "passed" } else { "failed" },
                reason,
                source: if cached { "cache" } else { "registry" },
            })
            .inc();
    }

    /// One referrers listing of a new image (see [`crate::import::referrers`]).
    pub(crate) fn referrer_lookup(&self, source: &'static str, result: &'static str) {
        self.referrer_lookups
            .get_or_create(&ReferrerLabels { source, result })
            .inc();
    }

    /// One review of the image lookup webhook.
    pub(crate) fn count_image_lookup(&self, result: &'static str, reason: &'static str) {
        self.image_lookups
            .get_or_create(&LookupLabels { result, reason })
            .inc();
    }

    pub(super) fn import_batch(&self, took: Duration) {
        self.import_seconds.observe(took.as_secs_f64());
    }

    pub(super) fn reconcile_error(&self, controller: &'static str, reason: &str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels {
                controller,
                reason: reason.into(),
            })
            .inc();
    }

    pub(super) fn schedule(&self, streams: usize, budgets: &[(String, u32)]) {
        self.scheduled_streams
            .set(i64::try_from(streams).unwrap_or(i64::MAX));
        for (registry, left) in budgets {
            self.budget_remaining
                .get_or_create(&RegistryLabel {
                    registry: registry.clone(),
                })
                .set(i64::from(*left));
        }
    }

    pub(super) fn status_write(&self) {
        self.status_writes.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn image_created(&self) {
        self.images_created.fetch_add(1, Ordering::Relaxed);
    }

    /// The schedule's interval, and how late a check that starts now is (`None`: not one
    /// that was due).
    pub(super) fn scheduled(&self, interval: Duration, late: Option<Duration>) {
        self.scheduled_interval
            .set(i64::try_from(interval.as_secs()).unwrap_or(i64::MAX));
        if let Some(late) = late {
            self.scheduled_delay.observe(late.as_secs_f64());
        }
    }

    pub(super) fn scheduled_check(&self, tags: usize) {
        self.scheduled_checks_total.inc();
        self.scheduled_checks.fetch_add(1, Ordering::Relaxed);
        self.scheduled_tags
            .fetch_add(u64::try_from(tags).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(super) fn trigger_patch(&self, kind: &'static str) {
        self.trigger_patches.fetch_add(1, Ordering::Relaxed);
        self.trigger_writes.get_or_create(&KindLabel { kind }).inc();
    }

    /// One notification to `receiver` (`namespace/name`) of `kind`, and what became of it.
    pub fn notification(&self, receiver: &str, kind: &str, outcome: &'static str) {
        match outcome {
            "accepted" | "no_match" => &self.notifications_accepted,
            _ => &self.notifications_refused,
        }
        .fetch_add(1, Ordering::Relaxed);
        self.notifications
            .get_or_create(&NotificationLabels {
                receiver: receiver.into(),
                r#type: kind.into(),
                outcome,
            })
            .inc();
    }

    /// From a notification's arrival to the end of the check it asked for.
    pub fn notification_checked(&self, took: Duration) {
        self.notification_seconds.observe(took.as_secs_f64());
    }

    /// Counts a reconcile of `controller` as in flight until the guard is dropped, and
    /// observes its duration then.
    pub(crate) fn reconciling(&self, controller: &'static str) -> Reconciling {
        let label = ControllerLabel { controller };
        let in_flight = self.in_flight.get_or_create(&label).clone();
        in_flight.inc();
        Reconciling {
            in_flight,
            seconds: self.reconcile_seconds.get_or_create(&label).clone(),
            started: Instant::now(),
        }
    }

    /// This process leads (runs the controllers) until the guard is dropped.
    pub fn leading(&self) -> Leading {
        self.leader.set(1);
        Leading(self.leader.clone())
    }

    /// Whether this process runs the controllers now.
    pub fn is_leading(&self) -> bool {
        self.leader.get() == 1
    }

    /// One admission review answered by the webhook at `path`, and how long it took.
    pub fn admission_review(&self, path: &'static str, result: &'static str, took: Duration) {
        let webhook = path.strip_prefix('/').unwrap_or(path);
        self.reviews
            .get_or_create(&ReviewLabels { webhook, result })
            .inc();
        self.review_seconds
            .get_or_create(&WebhookLabels { webhook })
            .observe(took.as_secs_f64());
    }

    /// One request to the apiserver answered after `took` (see [`crate::api_latency`]).
    pub fn apiserver_request(&self, verb: &str, resource: &str, took: Duration) {
        self.api_request_seconds
            .get_or_create(&ApiRequestLabels {
                verb: verb.into(),
                resource: resource.into(),
            })
            .observe(took.as_secs_f64());
    }

    /// Reconciles running now, in every controller.
    pub fn in_flight(&self) -> i64 {
        [
            "imagestream",
            "imagestreamviews",
            "imagestreamimport",
            "imagestreammapping",
            "imagetrigger",
        ]
        .into_iter()
        .map(|controller| {
            self.in_flight
                .get_or_create(&ControllerLabel { controller })
                .get()
        })
        .sum()
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition of every family.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl RequestObserver for Metrics {
    fn on_quota(&self, registry: &str, credential: &str, quota: &crate::registry::quota::Quota) {
        let labels = QuotaLabels {
            registry: registry.into(),
            credential: credential.into(),
        };
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.quota_limit
            .get_or_create(&labels)
            .set(gauge(quota.limit));
        self.quota_remaining
            .get_or_create(&labels)
            .set(gauge(quota.remaining));
        self.quota_window
            .get_or_create(&labels)
            .set(gauge(quota.window.as_secs()));
    }

    fn on_request(
        &self,
        registry: &str,
        method: &str,
        _path_kind: PathKind,
        status: Option<u16>,
        duration: Duration,
    ) {
        self.registry_request_seconds
            .observe(duration.as_secs_f64());
        let code = status.map_or_else(|| "none".to_string(), |s| s.to_string());
        self.requests
            .get_or_create(&RequestLabels {
                registry: registry.into(),
                method: method.into(),
                code,
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_families_are_exposed_with_their_labels() {
        let m = Metrics::default();
        m.import("quay.io", Ok(false));
        m.import("quay.io", Err("NotFound"));
        m.on_request(
            "quay.io",
            "HEAD",
            PathKind::Manifest,
            Some(200),
            Duration::ZERO,
        );
        m.on_request("quay.io", "GET", PathKind::Manifest, None, Duration::ZERO);
        m.reconcile_error("imagestream", "StatusWriteFailed");
        m.import_batch(Duration::from_millis(30));
        m.schedule(3, &[("*".into(), 57)]);
        m.trigger_patch("Deployment");
        m.referrer_lookup("tags", "listed");
        m.on_quota(
            "docker.io",
            "anonymous",
            &crate::registry::quota::Quota {
                limit: 100,
                remaining: 76,
                window: Duration::from_secs(21600),
            },
        );
        m.notification("ns/hub", "dockerhub", "accepted");
        m.notification("ns/hub", "dockerhub", "unauthorized");
        m.notification_checked(Duration::from_millis(80));
        drop(m.reconciling("imagestream"));
        m.apiserver_request("PUT", "imagestreams/status", Duration::from_millis(4));
        m.scheduled(Duration::from_secs(900), Some(Duration::from_secs(40)));
        m.scheduled_check(2);
        m.admission_review("/mutate/imagestreams", "patched", Duration::from_millis(3));
        m.admission_review("/validate/imagestreams", "error", Duration::from_millis(1));
        let leading = m.leading();
        let text = m.encode();
        for line in [
            r#"imagestream_operator_imports_total{registry="quay.io",result="new",reason=""} 1"#,
            r#"imagestream_operator_imports_total{registry="quay.io",result="failed",reason="NotFound"} 1"#,
            r#"imagestream_operator_registry_requests_total{registry="quay.io",method="HEAD",code="200"} 1"#,
            r#"imagestream_operator_registry_requests_total{registry="quay.io",method="GET",code="none"} 1"#,
            r#"imagestream_operator_reconcile_errors_total{controller="imagestream",reason="StatusWriteFailed"} 1"#,
            "imagestream_operator_import_duration_seconds_count 1",
            "imagestream_operator_scheduled_streams 3",
            r#"imagestream_operator_registry_budget_remaining{registry="*"} 57"#,
            r#"imagestream_operator_image_trigger_patches_total{kind="Deployment"} 1"#,
            r#"imagestream_operator_image_referrer_lookups_total{source="tags",result="listed"} 1"#,
            r#"imagestream_operator_registry_quota_limit{registry="docker.io",credential="anonymous"} 100"#,
            r#"imagestream_operator_registry_quota_remaining{registry="docker.io",credential="anonymous"} 76"#,
            r#"imagestream_operator_registry_quota_window_seconds{registry="docker.io",credential="anonymous"} 21600"#,
            r#"imagestream_operator_notifications_total{receiver="ns/hub",type="dockerhub",outcome="accepted"} 1"#,
            r#"imagestream_operator_notifications_total{receiver="ns/hub",type="dockerhub",outcome="unauthorized"} 1"#,
            "imagestream_operator_notification_to_status_seconds_count 1",
            r#"imagestream_operator_reconcile_duration_seconds_count{controller="imagestream"} 1"#,
            "imagestream_operator_registry_request_duration_seconds_count 2",
            r#"imagestream_operator_apiserver_request_duration_seconds_count{verb="PUT",resource="imagestreams/status"} 1"#,
            r#"imagestream_operator_reconciles_in_flight{controller="imagestream"} 0"#,
            "imagestream_operator_scheduled_interval_seconds 900",
            r#"imagestream_operator_scheduled_check_delay_seconds_bucket{le="60.0"} 1"#,
            r#"imagestream_operator_scheduled_check_delay_seconds_bucket{le="30.0"} 0"#,
            "imagestream_operator_scheduled_checks_total 1",
            r#"imagestream_operator_admission_reviews_total{webhook="mutate/imagestreams",result="patched"} 1"#,
            r#"imagestream_operator_admission_reviews_total{webhook="validate/imagestreams",result="error"} 1"#,
            r#"imagestream_operator_admission_review_duration_seconds_count{webhook="mutate/imagestreams"} 1"#,
            "imagestream_operator_leader 1",
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        drop(leading);
        assert!(m.encode().contains("imagestream_operator_leader 0\n"));
        assert!(!m.is_leading());
        assert_eq!(Metrics::get(&m.imports_new), 1);
    }
}
