//! The operator's MutatingWebhookConfiguration and ValidatingWebhookConfiguration, written by
//! the operator itself (server-side apply, one field manager) so the `caBundle` always matches
//! the CA in its Secret. In a cluster the apiserver reaches the webhooks through the Service;
//! tests against a local apiserver register `url:` endpoints instead.
//!
//! Both fail closed (`failurePolicy: Fail`): an ImageStream written without the mutating
//! webhook would lack its tag generations, and one without validation could name registries
//! the cluster forbids.
//!
//! `imagestreams/status` and Image deletes are registered with a match condition that leaves
//! out the operator's own user: the apiserver evaluates it before calling anything, so the
//! operator's status writes (every import) and the pruner's deletes cost no webhook call and
//! keep their generations as written. Other users' status writes (`oc adm prune images`) go
//! through upstream's status strategy, and their Image deletes through the reference guard.
//!
//! The image lookup webhook ([`LookupRegistration`]) is in every workload's path, so it fails
//! open (`failurePolicy: Ignore`, [`LOOKUP_TIMEOUT_SECONDS`]) and never sees the operator's own
//! namespace or kube-system: the operator's Pods, and the cluster's, start without it.

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations,
    ServiceReference, ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};

use super::Error;
use super::handler::{
    MUTATE_IMAGE_LOOKUP_PATH, MUTATE_IMAGE_SIGNATURES_PATH, MUTATE_IMAGE_STREAM_IMPORTS_PATH,
    MUTATE_IMAGE_STREAM_MAPPINGS_PATH, MUTATE_IMAGE_STREAM_STATUS_PATH, MUTATE_IMAGE_STREAMS_PATH,
    MUTATE_TAGS_PATH, VALIDATE_IMAGE_DELETES_PATH, VALIDATE_IMAGE_SIGNATURE_DELETES_PATH,
    VALIDATE_IMAGE_STREAM_IMPORTS_PATH, VALIDATE_IMAGE_STREAM_STATUS_PATH,
    VALIDATE_IMAGE_STREAMS_PATH, VALIDATE_READ_ONLY_VIEWS_PATH, VALIDATE_TAG_DELETES_PATH,
};
use crate::api::GROUP;

/// Field manager of the webhook configurations.
pub const FIELD_MANAGER: &str = "imagestream-operator-admission";
/// Default name of both webhook configurations.
pub const DEFAULT_CONFIGURATION_NAME: &str = "imagestream-operator";
/// Name of the ImageStream webhooks (shown in denials: `admission webhook "<name>" denied`).
pub const IMAGE_STREAMS_WEBHOOK: &str = "imagestreams.admission.imagestream.io";
/// Name of the ImageStreamImport webhook.
pub const IMAGE_STREAM_IMPORTS_WEBHOOK: &str = "imagestreamimports.admission.imagestream.io";
/// Name of the ImageStreamTag and ImageTag webhooks (their write paths).
pub const TAGS_WEBHOOK: &str = "tags.admission.imagestream.io";
/// Name of the ImageSignature webhooks.
pub const IMAGE_SIGNATURES_WEBHOOK: &str = "imagesignatures.admission.imagestream.io";
/// Name of the `imagestreams/status` webhooks (users' status writes).
pub const IMAGE_STREAM_STATUS_WEBHOOK: &str = "imagestreamstatus.admission.imagestream.io";
/// Name of the Image DELETE guard.
pub const IMAGES_WEBHOOK: &str = "images.admission.imagestream.io";
/// Timeout of the ImageStreamImport webhook, which imports (the most Kubernetes allows).
pub const IMPORT_TIMEOUT_SECONDS: i32 = 30;

/// Which Image deletes the guard judges (Images are cluster scoped: a namespace selector does
/// not limit it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageDeletes {
    /// Not registered.
    Unguarded,
    /// Every user's but the operator's.
    Everyone,
    /// Only these users' (tests sharing a cluster).
    Only(Vec<String>),
}
/// Name of the image lookup webhook (Pods and pod templates).
pub const IMAGE_LOOKUP_WEBHOOK: &str = "imagelookup.admission.imagestream.io";
/// How long the apiserver waits for the image lookup webhook before admitting unchanged.
pub const LOOKUP_TIMEOUT_SECONDS: i32 = 2;
/// The label every namespace carries with its own name.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// Name of the ImageStreamMapping webhook.
pub const IMAGE_STREAM_MAPPINGS_WEBHOOK: &str = "imagestreammappings.admission.imagestream.io";
/// Name of the webhook of the read-only views (ImageStreamImage, ImageStreamLayers).
pub const READ_ONLY_VIEWS_WEBHOOK: &str = "readonlyviews.admission.imagestream.io";

/// How the apiserver reaches the webhook server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// In cluster: through a Service.
    Service {
        namespace: String,
        name: String,
        port: i32,
    },
    /// Anywhere else: `https://host:port` (no trailing slash); paths are appended.
    Url(String),
}

/// What to register.
#[derive(Clone, Debug, PartialEq)]
pub struct Registration {
    /// Name of the MutatingWebhookConfiguration.
    pub mutating_name: String,
    /// Name of the ValidatingWebhookConfiguration.
    pub validating_name: String,
    pub endpoint: Endpoint,
    /// Limits the webhooks to matching namespaces (tests sharing a cluster use it).
    pub namespace_selector: Option<LabelSelector>,
    pub timeout_seconds: i32,
    /// Whether to register the ImageSignature webhooks. ImageSignatures are cluster scoped,
    /// so a namespace selector does not limit them: one registration per cluster.
    pub signatures: bool,
    /// Timeout of the ImageStreamImport webhook (the import happens in it).
    pub import_timeout_seconds: i32,
    /// The Image DELETE guard.
    pub image_deletes: ImageDeletes,
    /// The operator's user name: its status writes and Image deletes skip the webhooks.
    /// `None` sends them through too.
    pub operator: Option<String>,
    /// Whether and where to register the image lookup webhook; `None` leaves it out.
    pub image_lookup: Option<LookupRegistration>,
}

/// Where the image lookup webhook applies (besides [`Registration::namespace_selector`]).
#[derive(Clone, Debug, PartialEq)]
pub struct LookupRegistration {
    /// Namespaces it never sees: in a cluster the operator's own and kube-system.
    pub excluded_namespaces: Vec<String>,
    /// The only namespace it sees, when the operator watches only one (streams elsewhere are
    /// not indexed).
    pub only_namespace: Option<String>,
    /// The installer's choice of namespaces (`run --image-lookup-namespace-selector`), on top
    /// of the above.
    pub selector: Option<LabelSelector>,
}

impl LookupRegistration {
    /// Everywhere but the operator's `namespace` and kube-system.
    pub fn in_cluster(namespace: &str) -> LookupRegistration {
        LookupRegistration {
            excluded_namespaces: vec![namespace.to_string(), "kube-system".into()],
            only_namespace: None,
            selector: None,
        }
    }

    /// `base` (the registration's selector) narrowed to these namespaces.
    fn namespace_selector(&self, base: Option<&LabelSelector>) -> LabelSelector {
        let mut selector = base.cloned().unwrap_or_default();
        if let Some(chosen) = &self.selector {
            if let Some(labels) = &chosen.match_labels {
                selector
                    .match_labels
                    .get_or_insert_with(Default::default)
                    .extend(labels.clone());
            }
            if let Some(expressions) = &chosen.match_expressions {
                selector
                    .match_expressions
                    .get_or_insert_with(Vec::new)
                    .extend(expressions.iter().cloned());
            }
        }
        let expressions = selector.match_expressions.get_or_insert_with(Vec::new);
        if !self.excluded_namespaces.is_empty() {
            expressions.push(LabelSelectorRequirement {
                key: NAMESPACE_NAME_LABEL.into(),
                operator: "NotIn".into(),
                values: Some(self.excluded_namespaces.clone()),
            });
        }
        if let Some(only) = &self.only_namespace {
            expressions.push(LabelSelectorRequirement {
                key: NAMESPACE_NAME_LABEL.into(),
                operator: "In".into(),
                values: Some(vec![only.clone()]),
            });
        }
        if expressions.is_empty() {
            selector.match_expressions = None;
        }
        selector
    }
}

impl Registration {
    /// The in-cluster registration: both configurations named
    /// [`DEFAULT_CONFIGURATION_NAME`], reached through `service` in `namespace` on `port`.
    pub fn in_cluster(namespace: &str, service: &str, port: i32) -> Registration {
        Registration {
            mutating_name: DEFAULT_CONFIGURATION_NAME.into(),
            validating_name: DEFAULT_CONFIGURATION_NAME.into(),
            endpoint: Endpoint::Service {
                namespace: namespace.into(),
                name: service.into(),
                port,
            },
            namespace_selector: None,
            timeout_seconds: 10,
            signatures: true,
            import_timeout_seconds: IMPORT_TIMEOUT_SECONDS,
            image_deletes: ImageDeletes::Everyone,
            operator: None,
            image_lookup: Some(LookupRegistration::in_cluster(namespace)),
        }
    }

    /// Match conditions leaving out the operator's own requests (none without its name).
    fn not_the_operator(&self) -> Option<Vec<MatchCondition>> {
        let operator = self.operator.as_deref().filter(|o| !o.is_empty())?;
        Some(vec![MatchCondition {
            name: "not-the-operator".into(),
            expression: format!("request.userInfo.username != {}", cel_string(operator)),
        }])
    }

    /// The match conditions of the Image DELETE guard (`None` when it is not registered).
    fn image_delete_conditions(&self) -> Option<Vec<MatchCondition>> {
        let mut conditions = self.not_the_operator().unwrap_or_default();
        match &self.image_deletes {
            ImageDeletes::Unguarded => return None,
            ImageDeletes::Everyone => {}
            ImageDeletes::Only(users) => conditions.push(MatchCondition {
                name: "only-these-users".into(),
                expression: format!(
                    "request.userInfo.username in [{}]",
                    users
                        .iter()
                        .map(|u| cel_string(u))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
        Some(conditions)
    }

    fn client_config(&self, path: &str, ca_bundle: &str) -> WebhookClientConfig {
        let ca_bundle = Some(ByteString(ca_bundle.as_bytes().to_vec()));
        match &self.endpoint {
            Endpoint::Service {
                namespace,
                name,
                port,
            } => WebhookClientConfig {
                ca_bundle,
                service: Some(ServiceReference {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    path: Some(path.into()),
                    port: Some(*port),
                }),
                url: None,
            },
            Endpoint::Url(base) => WebhookClientConfig {
                ca_bundle,
                service: None,
                url: Some(format!("{}{path}", base.trim_end_matches('/'))),
            },
        }
    }

    /// The MutatingWebhookConfiguration with `ca_bundle` (PEM). The tag and signature
    /// webhooks write streams and Images (`sideEffects: NoneOnDryRun`).
    pub fn mutating(&self, ca_bundle: &str) -> MutatingWebhookConfiguration {
        let webhook =
            |name: &str, path: &str, rule: RuleWithOperations, effects: &str| MutatingWebhook {
                name: name.into(),
                admission_review_versions: vec!["v1".into()],
                client_config: self.client_config(path, ca_bundle),
                failure_policy: Some("Fail".into()),
                match_policy: Some("Equivalent".into()),
                namespace_selector: self.namespace_selector.clone(),
                reinvocation_policy: Some("Never".into()),
                rules: Some(vec![rule]),
                side_effects: effects.into(),
                timeout_seconds: Some(self.timeout_seconds),
                ..MutatingWebhook::default()
            };
        let mut webhooks = vec![
            webhook(
                IMAGE_STREAMS_WEBHOOK,
                MUTATE_IMAGE_STREAMS_PATH,
                rule(&["imagestreams"], &["CREATE", "UPDATE"]),
                "None",
            ),
            webhook(
                TAGS_WEBHOOK,
                MUTATE_TAGS_PATH,
                rule(&["imagestreamtags", "imagetags"], &["CREATE", "UPDATE"]),
                "NoneOnDryRun",
            ),
            MutatingWebhook {
                timeout_seconds: Some(self.import_timeout_seconds),
                ..webhook(
                    IMAGE_STREAM_IMPORTS_WEBHOOK,
                    MUTATE_IMAGE_STREAM_IMPORTS_PATH,
                    rule(&["imagestreamimports"], &["CREATE"]),
                    "NoneOnDryRun",
                )
            },
            MutatingWebhook {
                match_conditions: self.not_the_operator(),
                ..webhook(
                    IMAGE_STREAM_STATUS_WEBHOOK,
                    MUTATE_IMAGE_STREAM_STATUS_PATH,
                    rule(&["imagestreams/status"], &["UPDATE"]),
                    "None",
                )
            },
            webhook(
                IMAGE_STREAM_MAPPINGS_WEBHOOK,
                MUTATE_IMAGE_STREAM_MAPPINGS_PATH,
                rule(&["imagestreammappings"], &["CREATE"]),
                "None",
            ),
        ];
        if self.signatures {
            webhooks.push(webhook(
                IMAGE_SIGNATURES_WEBHOOK,
                MUTATE_IMAGE_SIGNATURES_PATH,
                cluster_rule(&["imagesignatures"], &["CREATE"]),
                "NoneOnDryRun",
            ));
        }
        if let Some(lookup) = &self.image_lookup {
            webhooks.push(MutatingWebhook {
                failure_policy: Some("Ignore".into()),
                namespace_selector: Some(
                    lookup.namespace_selector(self.namespace_selector.as_ref()),
                ),
                rules: Some(lookup_rules()),
                timeout_seconds: Some(LOOKUP_TIMEOUT_SECONDS),
                ..webhook(
                    IMAGE_LOOKUP_WEBHOOK,
                    MUTATE_IMAGE_LOOKUP_PATH,
                    rule(&[], &[]),
                    "None",
                )
            });
        }
        MutatingWebhookConfiguration {
            metadata: ObjectMeta {
                name: Some(self.mutating_name.clone()),
                ..ObjectMeta::default()
            },
            webhooks: Some(webhooks),
        }
    }

    /// The ValidatingWebhookConfiguration with `ca_bundle` (PEM).
    pub fn validating(&self, ca_bundle: &str) -> ValidatingWebhookConfiguration {
        let webhook = |name: &str, path: &str, rule: RuleWithOperations| ValidatingWebhook {
            name: name.into(),
            admission_review_versions: vec!["v1".into()],
            client_config: self.client_config(path, ca_bundle),
            failure_policy: Some("Fail".into()),
            match_policy: Some("Equivalent".into()),
            namespace_selector: self.namespace_selector.clone(),
            rules: Some(vec![rule]),
            side_effects: "None".into(),
            timeout_seconds: Some(self.timeout_seconds),
            ..ValidatingWebhook::default()
        };
        let with_effects = |name: &str, path: &str, rule: RuleWithOperations| ValidatingWebhook {
            side_effects: "NoneOnDryRun".into(),
            ..webhook(name, path, rule)
        };
        ValidatingWebhookConfiguration {
            metadata: ObjectMeta {
                name: Some(self.validating_name.clone()),
                ..ObjectMeta::default()
            },
            webhooks: Some(
                vec![
                    webhook(
                        IMAGE_STREAMS_WEBHOOK,
                        VALIDATE_IMAGE_STREAMS_PATH,
                        rule(&["imagestreams"], &["CREATE", "UPDATE"]),
                    ),
                    webhook(
                        IMAGE_STREAM_IMPORTS_WEBHOOK,
                        VALIDATE_IMAGE_STREAM_IMPORTS_PATH,
                        rule(&["imagestreamimports"], &["CREATE"]),
                    ),
                    with_effects(
                        TAGS_WEBHOOK,
                        VALIDATE_TAG_DELETES_PATH,
                        rule(&["imagestreamtags", "imagetags"], &["DELETE"]),
                    ),
                    ValidatingWebhook {
                        match_conditions: self.not_the_operator(),
                        ..webhook(
                            IMAGE_STREAM_STATUS_WEBHOOK,
                            VALIDATE_IMAGE_STREAM_STATUS_PATH,
                            rule(&["imagestreams/status"], &["UPDATE"]),
                        )
                    },
                    webhook(
                        READ_ONLY_VIEWS_WEBHOOK,
                        VALIDATE_READ_ONLY_VIEWS_PATH,
                        rule(
                            &["imagestreamimages", "imagestreamlayers"],
                            &["CREATE", "UPDATE"],
                        ),
                    ),
                ]
                .into_iter()
                .chain(
                    self.image_delete_conditions()
                        .map(|conditions| ValidatingWebhook {
                            match_conditions: Some(conditions).filter(|c| !c.is_empty()),
                            namespace_selector: None,
                            ..webhook(
                                IMAGES_WEBHOOK,
                                VALIDATE_IMAGE_DELETES_PATH,
                                cluster_rule(&["images"], &["DELETE"]),
                            )
                        }),
                )
                .chain(self.signatures.then(|| {
                    with_effects(
                        IMAGE_SIGNATURES_WEBHOOK,
                        VALIDATE_IMAGE_SIGNATURE_DELETES_PATH,
                        cluster_rule(&["imagesignatures"], &["DELETE"]),
                    )
                }))
                .collect(),
            ),
        }
    }
}

fn rule(resources: &[&str], operations: &[&str]) -> RuleWithOperations {
    RuleWithOperations {
        api_groups: Some(vec![GROUP.into()]),
        api_versions: Some(vec!["v1".into()]),
        operations: Some(operations.iter().map(|o| (*o).to_string()).collect()),
        resources: Some(resources.iter().map(|r| (*r).to_string()).collect()),
        scope: Some("Namespaced".into()),
    }
}

/// A CEL string literal.
fn cel_string(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Pods (and their ephemeral containers) and the pod templates of the workload kinds
/// OpenShift's image policy resolves, on create and update.
fn lookup_rules() -> Vec<RuleWithOperations> {
    let write = ["CREATE".to_string(), "UPDATE".to_string()];
    let namespaced = |group: &str, resources: &[&str], operations: &[String]| RuleWithOperations {
        api_groups: Some(vec![group.into()]),
        api_versions: Some(vec!["v1".into()]),
        operations: Some(operations.to_vec()),
        resources: Some(resources.iter().map(|r| (*r).to_string()).collect()),
        scope: Some("Namespaced".into()),
    };
    vec![
        namespaced("", &["pods", "replicationcontrollers"], &write),
        namespaced("", &["pods/ephemeralcontainers"], &write[1..]),
        namespaced(
            "apps",
            &["deployments", "replicasets", "statefulsets", "daemonsets"],
            &write,
        ),
        namespaced("batch", &["jobs", "cronjobs"], &write),
    ]
}

fn cluster_rule(resources: &[&str], operations: &[&str]) -> RuleWithOperations {
    RuleWithOperations {
        scope: Some("Cluster".into()),
        ..rule(resources, operations)
    }
}

/// Creates or updates both configurations with `ca_bundle` (PEM). Idempotent: applying the
/// same bundle again changes nothing.
pub async fn apply(
    client: &Client,
    registration: &Registration,
    ca_bundle: &str,
) -> Result<(), Error> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mutating = registration.mutating(ca_bundle);
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .patch(
            &registration.mutating_name,
            &params,
            &Patch::Apply(&mutating),
        )
        .await
        .map_err(|source| Error::Register {
            configuration: format!(
                "MutatingWebhookConfiguration {}",
                registration.mutating_name
            ),
            source,
        })?;
    let validating = registration.validating(ca_bundle);
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .patch(
            &registration.validating_name,
            &params,
            &Patch::Apply(&validating),
        )
        .await
        .map_err(|source| Error::Register {
            configuration: format!(
                "ValidatingWebhookConfiguration {}",
                registration.validating_name
            ),
            source,
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_cluster_registration_uses_the_service() {
        let r = Registration::in_cluster("operators", "imagestream-operator", 443);
        let m = r.mutating("PEM");
        let hook = &m.webhooks.as_ref().unwrap()[0];
        let service = hook.client_config.service.as_ref().unwrap();
        assert_eq!(service.namespace, "operators");
        assert_eq!(service.path.as_deref(), Some(MUTATE_IMAGE_STREAMS_PATH));
        assert_eq!(hook.client_config.url, None);
        assert_eq!(
            hook.client_config.ca_bundle,
            Some(ByteString(b"PEM".to_vec()))
        );
        assert_eq!(hook.failure_policy.as_deref(), Some("Fail"));
        assert_eq!(hook.side_effects, "None");
        let rules = hook.rules.as_ref().unwrap();
        assert_eq!(
            rules[0].resources.as_deref(),
            Some(&["imagestreams".to_string()][..])
        );
    }

    #[test]
    fn url_registration_appends_paths_and_leaves_the_operator_out_of_status_and_images() {
        let r = Registration {
            endpoint: Endpoint::Url("https://127.0.0.1:8443/".into()),
            operator: Some("system:serviceaccount:ops:imagestream-operator".into()),
            ..Registration::in_cluster("x", "y", 1)
        };
        let v = r.validating("PEM");
        let hooks = v.webhooks.unwrap();
        let urls: Vec<_> = hooks
            .iter()
            .map(|h| h.client_config.url.clone().unwrap())
            .collect();
        assert_eq!(
            urls,
            [
                "https://127.0.0.1:8443/validate/imagestreams",
                "https://127.0.0.1:8443/validate/imagestreamimports",
                "https://127.0.0.1:8443/validate/tags",
                "https://127.0.0.1:8443/validate/imagestreams/status",
                "https://127.0.0.1:8443/validate/readonlyviews",
                "https://127.0.0.1:8443/validate/images",
                "https://127.0.0.1:8443/validate/imagesignatures",
            ]
        );
        // the write paths have side effects, skipped on dry runs
        let effects: Vec<_> = hooks.iter().map(|h| h.side_effects.as_str()).collect();
        assert_eq!(
            effects,
            [
                "None",
                "None",
                "NoneOnDryRun",
                "None",
                "None",
                "None",
                "NoneOnDryRun"
            ]
        );
        // status writes and Image deletes: everyone's but the operator's
        let not_operator = "request.userInfo.username != \
                            'system:serviceaccount:ops:imagestream-operator'";
        for hook in [&hooks[3], &hooks[5]] {
            let conditions = hook.match_conditions.as_ref().expect("match conditions");
            assert_eq!(conditions[0].expression, not_operator, "{}", hook.name);
        }
        assert!(hooks[0].match_conditions.is_none());
        assert!(hooks[4].match_conditions.is_none());
        assert_eq!(
            hooks[5].rules.as_ref().unwrap()[0].scope.as_deref(),
            Some("Cluster")
        );
        let m = r.mutating("PEM");
        let mutating = m.webhooks.unwrap();
        let isi = mutating
            .iter()
            .find(|h| h.name == IMAGE_STREAM_IMPORTS_WEBHOOK)
            .expect("the import webhook");
        assert_eq!(isi.timeout_seconds, Some(IMPORT_TIMEOUT_SECONDS));
        assert_eq!(isi.side_effects, "NoneOnDryRun");
        let status = mutating
            .iter()
            .find(|h| h.name == IMAGE_STREAM_STATUS_WEBHOOK)
            .expect("the status webhook");
        assert_eq!(
            status.rules.as_ref().unwrap()[0].resources.as_deref(),
            Some(&["imagestreams/status".to_string()][..])
        );
        assert_eq!(
            status.match_conditions.as_ref().unwrap()[0].expression,
            not_operator
        );

        let without = Registration {
            signatures: false,
            image_deletes: ImageDeletes::Unguarded,
            operator: None,
            ..r.clone()
        };
        let hooks = without.validating("PEM").webhooks.unwrap();
        assert_eq!(hooks.len(), 5);
        assert!(hooks.iter().all(|h| h.match_conditions.is_none()));
        assert_eq!(without.mutating("PEM").webhooks.unwrap().len(), 6);
        assert_eq!(r.mutating("PEM").webhooks.unwrap().len(), 7);
        // the only subresource the image API's webhooks see is users' status writes
        for hook in &hooks {
            for rule in hook.rules.as_ref().unwrap() {
                for resource in rule.resources.as_ref().unwrap() {
                    assert!(
                        !resource.contains('/') || resource == "imagestreams/status",
                        "subresource {resource} registered"
                    );
                }
            }
        }
        assert_eq!(
            hooks[1].rules.as_ref().unwrap()[0].operations.as_deref(),
            Some(&["CREATE".to_string()][..])
        );

        // tests sharing a cluster limit the Image guard to their own users
        let only = Registration {
            image_deletes: ImageDeletes::Only(vec!["a".into(), "it's".into()]),
            ..r
        };
        let hooks = only.validating("PEM").webhooks.unwrap();
        let conditions = hooks[5].match_conditions.as_ref().unwrap();
        assert_eq!(
            conditions[1].expression,
            r"request.userInfo.username in ['a', 'it\'s']"
        );
    }

    #[test]
    fn the_image_lookup_webhook_fails_open_outside_its_own_namespace() {
        let r = Registration::in_cluster("operators", "imagestream-operator", 443);
        let m = r.mutating("PEM");
        let hooks = m.webhooks.unwrap();
        let lookup = hooks
            .iter()
            .find(|h| h.name == IMAGE_LOOKUP_WEBHOOK)
            .expect("registered by default");
        assert_eq!(lookup.failure_policy.as_deref(), Some("Ignore"));
        assert_eq!(lookup.timeout_seconds, Some(LOOKUP_TIMEOUT_SECONDS));
        assert_eq!(lookup.side_effects, "None");
        assert_eq!(
            lookup
                .client_config
                .service
                .as_ref()
                .unwrap()
                .path
                .as_deref(),
            Some(MUTATE_IMAGE_LOOKUP_PATH)
        );
        let selector = lookup.namespace_selector.as_ref().unwrap();
        assert_eq!(selector.match_labels, None);
        assert_eq!(
            selector.match_expressions,
            Some(vec![LabelSelectorRequirement {
                key: "kubernetes.io/metadata.name".into(),
                operator: "NotIn".into(),
                values: Some(vec!["operators".into(), "kube-system".into()]),
            }])
        );
        let resources: Vec<String> = lookup
            .rules
            .as_ref()
            .unwrap()
            .iter()
            .flat_map(|rule| {
                let group = rule.api_groups.as_ref().unwrap()[0].clone();
                rule.resources
                    .clone()
                    .unwrap()
                    .into_iter()
                    .map(move |r| format!("{group}/{r}"))
            })
            .collect();
        assert_eq!(
            resources,
            [
                "/pods",
                "/replicationcontrollers",
                "/pods/ephemeralcontainers",
                "apps/deployments",
                "apps/replicasets",
                "apps/statefulsets",
                "apps/daemonsets",
                "batch/jobs",
                "batch/cronjobs",
            ]
        );
        // the image API's own webhooks keep failing closed, without the exclusions
        for hook in hooks.iter().filter(|h| h.name != IMAGE_LOOKUP_WEBHOOK) {
            assert_eq!(hook.failure_policy.as_deref(), Some("Fail"));
            assert_eq!(hook.namespace_selector, None);
        }

        // a test's selector is kept and narrowed; a watched namespace limits it further
        let label = LabelSelector {
            match_labels: Some([("test".to_string(), "ns1".to_string())].into()),
            ..LabelSelector::default()
        };
        let narrowed = Registration {
            namespace_selector: Some(label.clone()),
            image_lookup: Some(LookupRegistration {
                excluded_namespaces: vec!["kube-system".into()],
                only_namespace: Some("ns1".into()),
                selector: None,
            }),
            ..r.clone()
        };
        let hooks = narrowed.mutating("PEM").webhooks.unwrap();
        let lookup = hooks
            .iter()
            .find(|h| h.name == IMAGE_LOOKUP_WEBHOOK)
            .unwrap();
        let selector = lookup.namespace_selector.as_ref().unwrap();
        assert_eq!(selector.match_labels, label.match_labels);
        let expressions = selector.match_expressions.as_ref().unwrap();
        assert_eq!(expressions.len(), 2);
        assert_eq!(
            (
                expressions[1].operator.as_str(),
                expressions[1].values.as_deref()
            ),
            ("In", Some(&["ns1".to_string()][..]))
        );
        assert_eq!(hooks[0].namespace_selector, Some(label));

        // the installer's selector (`--image-lookup-namespace-selector`) adds to the exclusions
        let chosen: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchLabels": {"team": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["prod"]}],
        }))
        .unwrap();
        let selected = Registration {
            image_lookup: Some(LookupRegistration {
                selector: Some(chosen),
                ..LookupRegistration::in_cluster("operators")
            }),
            ..r.clone()
        };
        let hooks = selected.mutating("PEM").webhooks.unwrap();
        let lookup = hooks
            .iter()
            .find(|h| h.name == IMAGE_LOOKUP_WEBHOOK)
            .unwrap();
        let selector = serde_json::to_value(lookup.namespace_selector.as_ref().unwrap()).unwrap();
        assert_eq!(
            selector,
            serde_json::json!({
                "matchLabels": {"team": "web"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["prod"]},
                    {"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                        "values": ["operators", "kube-system"]},
                ],
            })
        );
        // the image API's own webhooks do not follow it
        assert!(
            hooks
                .iter()
                .filter(|h| h.name != IMAGE_LOOKUP_WEBHOOK)
                .all(|h| h.namespace_selector.is_none())
        );

        // turned off: not registered
        let off = Registration {
            image_lookup: None,
            ..r
        };
        assert!(
            off.mutating("PEM")
                .webhooks
                .unwrap()
                .iter()
                .all(|h| h.name != IMAGE_LOOKUP_WEBHOOK)
        );
    }
}
