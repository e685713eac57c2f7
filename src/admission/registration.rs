//! The operator's MutatingWebhookConfiguration and ValidatingWebhookConfiguration, written by
//! the operator itself (server-side apply, one field manager) so the `caBundle` always matches
//! the CA in its Secret. In a cluster the apiserver reaches the webhooks through the Service;
//! tests against a local apiserver register `url:` endpoints instead.
//!
//! Both fail closed (`failurePolicy: Fail`): an ImageStream written without the mutating
//! webhook would lack its tag generations, and one without validation could name registries
//! the cluster forbids. Only the main `imagestreams` resource is registered, never
//! `imagestreams/status`, so the operator's status writes pass no webhook and keep their
//! generations.

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ServiceReference,
    ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};

use super::Error;
use super::handler::{
    MUTATE_IMAGE_SIGNATURES_PATH, MUTATE_IMAGE_STREAMS_PATH, MUTATE_TAGS_PATH,
    VALIDATE_IMAGE_SIGNATURE_DELETES_PATH, VALIDATE_IMAGE_STREAM_IMPORTS_PATH,
    VALIDATE_IMAGE_STREAMS_PATH, VALIDATE_TAG_DELETES_PATH,
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
        }
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
        ];
        if self.signatures {
            webhooks.push(webhook(
                IMAGE_SIGNATURES_WEBHOOK,
                MUTATE_IMAGE_SIGNATURES_PATH,
                cluster_rule(&["imagesignatures"], &["CREATE"]),
                "NoneOnDryRun",
            ));
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
                ]
                .into_iter()
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
    fn url_registration_appends_paths_and_never_matches_status() {
        let r = Registration {
            endpoint: Endpoint::Url("https://127.0.0.1:8443/".into()),
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
                "https://127.0.0.1:8443/validate/imagesignatures",
            ]
        );
        // the write paths have side effects, skipped on dry runs
        let effects: Vec<_> = hooks.iter().map(|h| h.side_effects.as_str()).collect();
        assert_eq!(effects, ["None", "None", "NoneOnDryRun", "NoneOnDryRun"]);
        let without = Registration {
            signatures: false,
            ..r.clone()
        };
        assert_eq!(without.validating("PEM").webhooks.unwrap().len(), 3);
        assert_eq!(without.mutating("PEM").webhooks.unwrap().len(), 2);
        assert_eq!(r.mutating("PEM").webhooks.unwrap().len(), 3);
        for hook in &hooks {
            for rule in hook.rules.as_ref().unwrap() {
                for resource in rule.resources.as_ref().unwrap() {
                    assert!(!resource.contains('/'), "subresource {resource} registered");
                }
            }
        }
        assert_eq!(
            hooks[1].rules.as_ref().unwrap()[0].operations.as_deref(),
            Some(&["CREATE".to_string()][..])
        );
    }
}
