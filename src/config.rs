//! The operator's runtime configuration, as cluster-scoped custom resources named `cluster`.
//!
//! OpenShift spreads these settings over `config.openshift.io/v1 Image`, the image registry
//! operator's `ImagePruner` and the controller manager's `ImagePolicyConfig` /
//! `ImageImportControllerConfig`. We keep OpenShift's field names and defaults, in our own
//! group [`GROUP`]:
//!
//! * [`ImageConfig`] mirrors `config.openshift.io/v1 Image` `spec` (the kind is renamed: a
//!   second `images` resource would shadow `kubectl get images`). Because there is no
//!   registry operator here, `internalRegistryHostname` is a spec field instead of status.
//! * [`ImagePruner`] mirrors `imageregistry.operator.openshift.io/v1 ImagePruner`, minus the
//!   CronJob scheduling fields (the pruner runs in-process), plus `dryRun`.
//! * [`ImageImportConfig`] is ours: the controller-manager settings plus budgets, limits and
//!   time-to-live values OpenShift has no resource for.
//!
//! Every field is optional; the documented default applies when it is absent. The resolved
//! values come from the `effective_*` methods, so the defaults live in one place.

use std::time::Duration;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the configuration kinds.
pub const GROUP: &str = "operator.imagestream.io";
/// API version of the configuration kinds.
pub const VERSION: &str = "v1alpha1";
/// The only object name the operator reads for each configuration kind.
pub const SINGLETON_NAME: &str = "cluster";

/// Cluster image policy: which registries may be imported from and how streams are addressed.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "operator.imagestream.io",
    version = "v1alpha1",
    kind = "ImageConfig",
    plural = "imageconfigs",
    doc = "ImageConfig holds cluster-wide image import policy (OpenShift's config.openshift.io/v1 Image). The operator reads the object named 'cluster'."
)]
#[serde(rename_all = "camelCase")]
pub struct ImageConfigSpec {
    /// allowedRegistriesForImport limits the container image registries that normal users may
    /// import images from. Set this list to the registries that you trust to contain valid
    /// images. An empty or absent list allows every registry. Users who may create Images or
    /// ImageStreamMappings are not limited by it. Default: empty (all allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_registries_for_import: Option<Vec<RegistryLocation>>,

    /// externalRegistryHostnames provides the hostnames for the default external image
    /// registry. The first value is used in the publicDockerImageRepository field of image
    /// streams. The value must be in "hostname[:port]" format. Default: empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_registry_hostnames: Option<Vec<String>>,

    /// internalRegistryHostname is the "hostname[:port]" of a registry that serves this
    /// cluster's images. When set, status.dockerImageRepository of every stream is
    /// "<hostname>/<namespace>/<name>" and the registry is always allowed for import.
    /// Default: empty (no internal registry; status.dockerImageRepository echoes
    /// spec.dockerImageRepository).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_registry_hostname: Option<String>,

    /// additionalTrustedCA is a reference to a ConfigMap, in the operator's namespace,
    /// containing additional CAs that should be trusted during imagestream import. Each key is
    /// a registry hostname ("registry.example.com", or "registry.example.com..5000" for a
    /// port) and its value is a PEM bundle. Default: none.
    #[serde(
        default,
        rename = "additionalTrustedCA",
        skip_serializing_if = "Option::is_none"
    )]
    pub additional_trusted_ca: Option<ConfigMapNameReference>,

    /// registrySources contains configuration that determines how the operator treats
    /// individual registries when importing. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_sources: Option<RegistrySources>,

    /// imageStreamImportMode controls the import mode behaviour of imagestreams. It can be set
    /// to "Legacy" or "PreserveOriginal". Tags whose importPolicy.importMode is empty get this
    /// value. Default: Legacy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "import_mode_schema")]
    pub image_stream_import_mode: Option<String>,
}

/// RegistryLocation contains a location of the registry specified by the registry domain name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryLocation {
    /// domainName specifies a domain name for the registry. In case the registry uses a
    /// non-standard (80 or 443) port, the port should be included in the domain name as well.
    /// Wildcards "*" and "?" are allowed.
    pub domain_name: String,
    /// insecure indicates whether the registry is secure (https) or insecure (http). By
    /// default (if not specified) the registry is assumed as secure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
}

/// ConfigMapNameReference references a ConfigMap by name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ConfigMapNameReference {
    /// name is the metadata.name of the referenced ConfigMap.
    pub name: String,
}

/// RegistrySources holds cluster-wide information about how to handle the registries config.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrySources {
    /// insecureRegistries are registries which do not have a valid TLS certificate or only
    /// support HTTP connections ("host[:port]").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_registries: Option<Vec<String>>,
    /// blockedRegistries are registries that imports are never allowed to contact
    /// ("host[:port]"). Link-local and cloud metadata addresses are always blocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_registries: Option<Vec<String>>,
    /// allowedRegistries are accepted for compatibility with OpenShift; imports do not use
    /// them (as upstream), use allowedRegistriesForImport instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_registries: Option<Vec<String>>,
    /// containerRuntimeSearchRegistries are accepted for compatibility with OpenShift;
    /// imports do not use them (as upstream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_runtime_search_registries: Option<Vec<String>>,
}

/// Scheduled pruning of tag history and unreferenced Images.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "operator.imagestream.io",
    version = "v1alpha1",
    kind = "ImagePruner",
    plural = "imagepruners",
    status = "ImagePrunerStatus",
    doc = "ImagePruner configures history pruning and Image garbage collection (OpenShift's imageregistry.operator.openshift.io/v1 ImagePruner, run in-process). The operator reads the object named 'cluster'."
)]
#[serde(rename_all = "camelCase")]
pub struct ImagePrunerSpec {
    /// schedule specifies when to execute the pruner, in standard cron syntax
    /// ("minute hour day-of-month month day-of-week", UTC). Default: "0 0 * * *" (daily at
    /// midnight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// suspend specifies whether or not to suspend subsequent runs. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// keepTagRevisions specifies the number of image revisions for a tag in an image stream
    /// that will be preserved. Default: 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub keep_tag_revisions: Option<i32>,
    /// keepYoungerThanDuration specifies the minimum age of an image and its referrers for it
    /// to be considered a candidate for pruning (a duration such as "60m" or "1h30m").
    /// Default: 60m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "duration_schema")]
    pub keep_younger_than_duration: Option<String>,
    /// ignoreInvalidImageReferences indicates whether the pruner can ignore errors while
    /// parsing image references. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_invalid_image_references: Option<bool>,
    /// dryRun makes every run report what it would remove without removing anything.
    /// Not in OpenShift. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

/// Annotation on the `cluster` ImagePruner asking for a run now: any new value starts one
/// (unless suspended); the value is echoed in `status.observedRunRequest`.
pub const RUN_NOW_ANNOTATION: &str = "operator.imagestream.io/run-now";

/// What the pruner did, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImagePrunerStatus {
    /// lastRun is the latest run, finished or stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<PruneRun>,
    /// nextRun is when the schedule runs the pruner next (absent while suspended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// observedRunRequest is the value of the operator.imagestream.io/run-now annotation the
    /// last run answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_run_request: Option<String>,
    /// resumeAfter is the last stream ("namespace/name") the last run pruned when it stopped
    /// at its bound; the next run continues after it, shortly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_after: Option<String>,
}

/// One pruner run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PruneRun {
    /// started is when the run began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// finished is when the run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// dryRun is true when the run only reported what it would remove.
    #[serde(default)]
    pub dry_run: bool,
    /// complete is false when the run stopped at its bound (see status.resumeAfter) or on an
    /// error before looking at every stream; Images are only deleted by complete runs.
    #[serde(default)]
    pub complete: bool,
    /// streamsPruned counts the streams whose history lost entries (or would have).
    #[serde(default)]
    pub streams_pruned: i64,
    /// eventsRemoved counts the history entries removed (or that would have been).
    #[serde(default)]
    pub events_removed: i64,
    /// imagesDeleted counts the Image objects deleted (or that would have been).
    #[serde(default)]
    pub images_deleted: i64,
    /// removed names what went, first entries only: "namespace/stream:tag@image" for history
    /// entries, "image sha256:…" for Images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    /// errors of the run, each "reason: message".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// Import scheduling, budgets and limits.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "operator.imagestream.io",
    version = "v1alpha1",
    kind = "ImageImportConfig",
    plural = "imageimportconfigs",
    doc = "ImageImportConfig tunes imports: scheduling, request budgets, bulk limits and request lifetimes. The operator reads the object named 'cluster'."
)]
#[serde(rename_all = "camelCase")]
pub struct ImageImportConfigSpec {
    /// disableScheduledImport turns off periodic re-imports of tags with
    /// importPolicy.scheduled. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_scheduled_import: Option<bool>,
    /// scheduledImageImportMinimumIntervalSeconds is the interval at which scheduled tags are
    /// re-checked; checks are spread evenly over it. Default: 900 (15 minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub scheduled_image_import_minimum_interval_seconds: Option<i64>,
    /// maxScheduledImageImportsPerMinute is the cluster-wide budget of scheduled tag checks
    /// per minute; -1 means unlimited. Default: 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub max_scheduled_image_imports_per_minute: Option<i64>,
    /// maxImagesBulkImportedPerRepository caps the tags imported by one repository import;
    /// the remaining tags are reported as additionalTags. -1 means unlimited. Default: 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub max_images_bulk_imported_per_repository: Option<i64>,
    /// registryBudgets limit traffic to individual registries, first match wins.
    /// Default: none (only maxConcurrentRequestsPerRegistry applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_budgets: Option<Vec<RegistryBudget>>,
    /// maxConcurrentRequestsPerRegistry bounds in-flight requests to any one registry host.
    /// Default: 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_concurrent_requests_per_registry: Option<i32>,
    /// registryRequestTimeoutSeconds is the total time allowed for one registry request,
    /// including reading the body. Default: 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub registry_request_timeout_seconds: Option<i64>,
    /// defaultPlatform is the platform picked from a manifest list in Legacy import mode when
    /// the stream has no importer.image.openshift.io/prefer-os or prefer-arch annotation.
    /// Default: linux/amd64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_platform: Option<Platform>,
    /// requestTimeToLive is how long processed ImageStreamImport requests, and
    /// ImageStreamMappings waiting for their image stream, are kept before the operator
    /// removes them (a duration such as "1h"). Default: 1h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "duration_schema")]
    pub request_time_to_live: Option<String>,
    /// maxTagHistory caps the number of history entries kept per tag when the operator writes
    /// status; 0 keeps everything, as OpenShift does. Default: 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_tag_history: Option<i32>,
    /// maxImageStreamBytes is the serialized size beyond which the operator refuses to grow an
    /// ImageStream (etcd rejects objects over about 1.5 MiB) and reports a condition instead.
    /// Default: 1048576.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 65536))]
    pub max_image_stream_bytes: Option<i64>,
    /// views turns off the read-only views a cluster does not use. Each view kind is kept
    /// beside every stream unless set to false here; its objects are then removed, and kept
    /// again when set back. The views are most of the apiserver's work on a first import and
    /// most of etcd's space (e2e/bench/results/where-the-time-goes.md). Default: every view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub views: Option<ViewsConfig>,
    /// referrers says which new Images get the signatures, SBOMs and attestations attached to
    /// them listed in their image.imagestream.io/referrers annotation: Covered (the images
    /// an ImagePolicy covers, whose signatures are read anyway), All (every new image: a few
    /// requests more per new image) or None. Default: Covered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrers: Option<ReferrerListing>,
}

// Which new images have their referrers listed (no doc comment: the schema takes the
// field's, `referrers`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ReferrerListing {
    /// The images an ImagePolicy covers.
    #[default]
    Covered,
    /// Every new image.
    All,
    /// None.
    None,
}

impl ReferrerListing {
    /// Whether a new image is listed; `covered`: an image policy covers it.
    pub fn lists(self, covered: bool) -> bool {
        match self {
            ReferrerListing::Covered => covered,
            ReferrerListing::All => true,
            ReferrerListing::None => false,
        }
    }
}

/// Which views the operator keeps beside each stream; an unset field keeps its view.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ViewsConfig {
    /// ImageStreamTags (`kubectl get istag`, `oc tag`, `oc describe istag`). Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_stream_tags: Option<bool>,
    /// ImageTags (`kubectl get itag`). Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tags: Option<bool>,
    /// ImageStreamImages (`stream@sha256:...`, one per image in a stream's history).
    /// Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_stream_images: Option<bool>,
    /// ImageStreamLayers (one per stream: the layers of its images). Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_stream_layers: Option<bool>,
}

/// A traffic budget for the registries whose host matches `registry`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryBudget {
    /// registry is a "host[:port]" pattern; "*" and "?" are wildcards.
    pub registry: String,
    /// importsPerMinute is the number of scheduled tag checks per minute allowed for the
    /// registry. Default: no limit beyond the cluster-wide budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub imports_per_minute: Option<i64>,
    /// maxConcurrentRequests bounds in-flight requests to the registry.
    /// Default: maxConcurrentRequestsPerRegistry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_concurrent_requests: Option<i32>,
}

/// An OS and CPU architecture, as in an OCI image index.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Platform {
    /// os, for example "linux".
    pub os: String,
    /// architecture, for example "amd64" or "arm64".
    pub architecture: String,
    /// variant, for example "v8" for arm64 or "v7" for arm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Default for Platform {
    fn default() -> Self {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }
}

/// Import modes accepted for `imageStreamImportMode`.
pub const IMPORT_MODES: [&str; 3] = ["", "Legacy", "PreserveOriginal"];

impl ImagePrunerSpec {
    pub fn effective_schedule(&self) -> &str {
        self.schedule
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or("0 0 * * *")
    }
    pub fn effective_keep_tag_revisions(&self) -> usize {
        self.keep_tag_revisions
            .map_or(3, |n| usize::try_from(n).unwrap_or(0))
    }
    /// The minimum age; an unparsable value was rejected by the schema, so it falls back to
    /// the default.
    pub fn effective_keep_younger_than(&self) -> Duration {
        self.keep_younger_than_duration
            .as_deref()
            .and_then(parse_duration)
            .unwrap_or(Duration::from_secs(60 * 60))
    }
}

impl ImageImportConfigSpec {
    pub fn effective_scheduled_interval(&self) -> Duration {
        let secs = self
            .scheduled_image_import_minimum_interval_seconds
            .filter(|s| *s > 0)
            .unwrap_or(900);
        Duration::from_secs(secs.unsigned_abs())
    }
    /// `None` means unlimited.
    pub fn effective_scheduled_imports_per_minute(&self) -> Option<u32> {
        match self.max_scheduled_image_imports_per_minute {
            None | Some(0) => Some(60),
            Some(n) if n < 0 => None,
            Some(n) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
        }
    }
    /// `None` means unlimited.
    pub fn effective_bulk_import_limit(&self) -> Option<usize> {
        match self.max_images_bulk_imported_per_repository {
            None | Some(0) => Some(50),
            Some(n) if n < 0 => None,
            Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
        }
    }
    pub fn effective_concurrency_per_registry(&self) -> usize {
        self.max_concurrent_requests_per_registry
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n > 0)
            .unwrap_or(4)
    }
    pub fn effective_request_timeout(&self) -> Duration {
        let secs = self
            .registry_request_timeout_seconds
            .filter(|s| *s > 0)
            .unwrap_or(30);
        Duration::from_secs(secs.unsigned_abs())
    }
    pub fn effective_default_platform(&self) -> Platform {
        self.default_platform.clone().unwrap_or_default()
    }
    pub fn effective_request_time_to_live(&self) -> Duration {
        self.request_time_to_live
            .as_deref()
            .and_then(parse_duration)
            .unwrap_or(Duration::from_secs(60 * 60))
    }
    /// `None` means unlimited history.
    pub fn effective_max_tag_history(&self) -> Option<usize> {
        self.max_tag_history
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n > 0)
    }
    pub fn effective_referrers(&self) -> ReferrerListing {
        self.referrers.unwrap_or_default()
    }
    pub fn effective_max_image_stream_bytes(&self) -> usize {
        self.max_image_stream_bytes
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(1 << 20)
    }
}

/// Parses a Go-style duration ("90s", "60m", "1h30m", "1.5h", "250ms").
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// Go duration syntax, checked by the apiserver so a typo is rejected at apply time.
fn duration_schema(_: &mut schemars::generate::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "pattern": "^([0-9]+(\\.[0-9]+)?(h|m|s|ms|us|ns))+$|^0$"
    })
}

fn import_mode_schema(_: &mut schemars::generate::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "enum": IMPORT_MODES
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("60m"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("1d"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn defaults_match_openshift() {
        let pruner = ImagePrunerSpec::default();
        assert_eq!(pruner.effective_schedule(), "0 0 * * *");
        assert_eq!(pruner.effective_keep_tag_revisions(), 3);
        assert_eq!(
            pruner.effective_keep_younger_than(),
            Duration::from_secs(3600)
        );

        let import = ImageImportConfigSpec::default();
        assert_eq!(import.effective_referrers(), ReferrerListing::Covered);
        assert!(ReferrerListing::Covered.lists(true) && !ReferrerListing::Covered.lists(false));
        assert!(ReferrerListing::All.lists(false) && !ReferrerListing::None.lists(true));
        assert_eq!(
            import.effective_scheduled_interval(),
            Duration::from_secs(900)
        );
        assert_eq!(import.effective_scheduled_imports_per_minute(), Some(60));
        assert_eq!(import.effective_bulk_import_limit(), Some(50));
        assert_eq!(import.effective_default_platform(), Platform::default());
        assert_eq!(import.effective_max_tag_history(), None);
        assert_eq!(
            import.effective_request_time_to_live(),
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn minus_one_means_unlimited() {
        let import = ImageImportConfigSpec {
            max_scheduled_image_imports_per_minute: Some(-1),
            max_images_bulk_imported_per_repository: Some(-1),
            ..Default::default()
        };
        assert_eq!(import.effective_scheduled_imports_per_minute(), None);
        assert_eq!(import.effective_bulk_import_limit(), None);
    }
}
