//! The admission webhooks: where OpenShift's apiserver strategy goes on plain Kubernetes
//! (design.md section 3). OpenShift computes tag generations, defaults and validation inside
//! its apiserver in the same write; here the operator serves a mutating and a validating
//! webhook that do the same, before the object is stored.
//!
//! Every replica serves them (leadership gates only the controllers), so the process that
//! runs [`serve`] needs no lease. Parts:
//!
//! - [`server`]: the HTTPS server; [`handler`]: paths, settings snapshot, counters;
//!   [`review`]: AdmissionReview decoding and responses.
//! - [`image_stream`]: mutation (defaults, order, generations) and validation of ImageStreams;
//!   [`image_stream_import`]: ImageStreamImports answered in their create; [`prune_guard`]:
//!   users' Image deletes and `imagestreams/status` writes; [`tags`]: the write paths of
//!   ImageStreamTags and ImageTags (they edit the stream); [`image_signature`]: ImageSignatures
//!   attached to and detached from their Image; [`image_lookup`]: short image names in Pods
//!   and pod templates resolved through the namespace's streams; [`access`]: the
//!   SubjectAccessReviews for the requesting user; [`limit_ranges`]: the namespace's limits;
//!   [`image_stream_mapping`]: stored ImageStreamMappings named per stream, tag and image; [`read_only`]:
//!   ImageStreamImages and ImageStreamLayers refuse writes but the operator's.
//! - [`certs`]: the self-managed CA (a Secret) and serving certificates;
//!   [`registration`]: the webhook configurations carrying the CA bundle.
//!
//! The cluster's `allowedRegistriesForImport` and `imageStreamImportMode` come in as a
//! [`tokio::sync::watch`] of [`AdmissionSettings`], fed by whoever watches the `cluster` ImageConfig.

pub mod access;
pub mod certs;
pub mod handler;
pub mod image_lookup;
pub mod image_signature;
pub mod image_stream;
pub mod image_stream_import;
pub mod image_stream_mapping;
pub mod limit_ranges;
pub mod prune_guard;
pub mod read_only;
pub mod registration;
pub mod review;
pub mod server;
pub mod tags;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::Client;
use tokio::net::TcpListener;

use crate::api::image_stream::ImportMode;
use crate::config::ImageConfigSpec;
use crate::registry::policy::{AllowedRegistries, InvalidAllowedRegistry};

pub use access::{Authorizer, KubeAuthorizer};
pub use certs::{CertPolicy, CertificateStore, SecretRef};
pub use handler::{
    Hook, HookCounts, MUTATE_IMAGE_LOOKUP_PATH, MUTATE_IMAGE_STREAMS_PATH,
    VALIDATE_IMAGE_STREAM_IMPORTS_PATH, VALIDATE_IMAGE_STREAMS_PATH, Webhooks,
};
pub use image_lookup::ImageLookup;
pub use image_stream_import::Imports;
pub use limit_ranges::{KubeLimitRanges, LimitRangeSource};
pub use prune_guard::{KubeReferences, ReferenceSource};
pub use registration::{Endpoint, ImageDeletes, LookupRegistration, Registration};
pub use tags::Writer;

/// Port the webhook server listens on in a cluster (the Service maps 443 to it).
pub const DEFAULT_PORT: u16 = 9443;

/// Why the webhooks could not be set up or served; [`Error::reason`] is stable.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the webhook CA Secret {secret}: {source}")]
    ReadCaSecret {
        secret: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing the webhook CA Secret {secret}: {source}")]
    WriteCaSecret {
        secret: String,
        #[source]
        source: kube::Error,
    },
    #[error("the webhook CA Secret is unusable: {0}")]
    InvalidCaSecret(String),
    #[error("the webhook CA Secret {0} kept changing while it was being written")]
    CaSecretContended(String),
    #[error("generating a certificate: {0}")]
    Generate(#[source] rcgen::Error),
    #[error("a certificate lifetime is out of range")]
    Lifetime,
    #[error("TLS setup: {0}")]
    Tls(#[source] rustls::Error),
    #[error("applying the {configuration}: {source}")]
    Register {
        configuration: String,
        #[source]
        source: kube::Error,
    },
    #[error("allowedRegistriesForImport: {0}")]
    InvalidAllowedRegistries(#[source] InvalidAllowedRegistry),
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::ReadCaSecret { .. } => "CaSecretReadFailed",
            Error::WriteCaSecret { .. } => "CaSecretWriteFailed",
            Error::InvalidCaSecret(_) => "InvalidCaSecret",
            Error::CaSecretContended(_) => "CaSecretContended",
            Error::Generate(_) => "CertificateGenerationFailed",
            Error::Lifetime => "CertificateLifetimeOutOfRange",
            Error::Tls(_) => "TlsSetupFailed",
            Error::Register { .. } => "WebhookRegistrationFailed",
            Error::InvalidAllowedRegistries(_) => "InvalidAllowedRegistries",
        }
    }
}

/// What the webhooks read from the cluster configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdmissionSettings {
    /// `allowedRegistriesForImport`; `None` allows every registry.
    pub allowed_registries: Option<AllowedRegistries>,
    /// The `importPolicy.importMode` given to tags that name none.
    pub default_import_mode: ImportMode,
}

impl Default for AdmissionSettings {
    /// OpenShift's defaults: every registry allowed, `Legacy` imports.
    fn default() -> Self {
        AdmissionSettings {
            allowed_registries: None,
            default_import_mode: ImportMode::Legacy,
        }
    }
}

impl AdmissionSettings {
    /// From the `cluster` ImageConfig's spec (absent: the defaults). An empty
    /// `allowedRegistriesForImport` allows everything; a non-empty one always allows
    /// `internalRegistryHostname` too.
    pub fn from_image_config(spec: Option<&ImageConfigSpec>) -> Result<Self, Error> {
        let Some(spec) = spec else {
            return Ok(AdmissionSettings::default());
        };
        let allowed_registries = match spec.allowed_registries_for_import.as_deref() {
            None | Some([]) => None,
            Some(locations) => Some(
                AllowedRegistries::new(locations, spec.internal_registry_hostname.as_deref())
                    .map_err(Error::InvalidAllowedRegistries)?,
            ),
        };
        let default_import_mode = match spec.image_stream_import_mode.as_deref() {
            Some("PreserveOriginal") => ImportMode::PreserveOriginal,
            _ => ImportMode::Legacy,
        };
        Ok(AdmissionSettings {
            allowed_registries,
            default_import_mode,
        })
    }
}

/// Everything [`serve`] needs besides the client and the listener.
#[derive(Clone, Debug)]
pub struct Options {
    pub ca_secret: SecretRef,
    /// Names in the serving certificate (DNS names or IP addresses).
    pub dns_names: Vec<String>,
    pub registration: Registration,
    pub certificates: CertPolicy,
}

impl Options {
    /// In a cluster: reached through Service `service` in `namespace` (port 443), CA kept in
    /// Secret `<service>-webhook-ca` there.
    pub fn in_cluster(namespace: &str, service: &str) -> Options {
        Options {
            ca_secret: SecretRef {
                namespace: namespace.into(),
                name: format!("{service}-webhook-ca"),
            },
            dns_names: service_dns_names(namespace, service),
            registration: Registration::in_cluster(namespace, service, 443),
            certificates: CertPolicy::default(),
        }
    }
}

/// The names a Service answers to inside the cluster.
pub fn service_dns_names(namespace: &str, service: &str) -> Vec<String> {
    vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// Runs the webhooks until `shutdown` completes: ensures the CA, issues this replica's serving
/// certificate, starts serving on `listener`, registers the webhook configurations with the
/// CA bundle (then calls `registered`), then keeps certificates and bundle fresh
/// ([`keep_fresh`]). Fails if the CA or the registration cannot be set up at start; later
/// renewal failures are logged and retried.
pub async fn serve(
    client: Client,
    listener: TcpListener,
    options: Options,
    webhooks: Arc<Webhooks>,
    shutdown: impl Future<Output = ()>,
    registered: impl FnOnce(),
) -> Result<(), Error> {
    let policy = options.certificates;
    let ca = certs::ensure_ca(&client, &options.ca_secret, &policy).await?;
    let serving = ca.issue(
        &options.dns_names,
        Timestamp::now(),
        policy.serving_lifetime,
    )?;
    let store = Arc::new(CertificateStore::new(&serving)?);
    let server = server::serve_tls(listener, store.clone(), webhooks, shutdown);
    tokio::pin!(server);
    // register while already accepting, so the first reviews find a server
    let bundle = ca.bundle_pem();
    tokio::select! {
        registered = registration::apply(&client, &options.registration, &bundle) => registered?,
        served = &mut server => return served,
    }
    registered();
    tokio::select! {
        served = &mut server => served,
        never = keep_fresh(client, options, store, bundle) => match never {},
    }
}

/// Every `check_interval`: re-reads the CA Secret (renewing the CA when due, or picking up
/// another replica's renewal), re-applies the webhook configurations when the bundle changed,
/// and reissues the serving certificate when it is due or the CA changed. Failures are logged
/// and retried a minute later.
pub async fn keep_fresh(
    client: Client,
    options: Options,
    store: Arc<CertificateStore>,
    mut applied_bundle: String,
) -> Infallible {
    const RETRY: Duration = Duration::from_secs(60);
    let mut wait = options.certificates.check_interval;
    loop {
        tokio::time::sleep(wait).await;
        wait = match refresh(&client, &options, &store, &mut applied_bundle).await {
            Ok(()) => options.certificates.check_interval,
            Err(e) => {
                tracing::warn!(reason = e.reason(), error = %e, "renewing webhook certificates failed");
                RETRY.min(options.certificates.check_interval)
            }
        };
    }
}

async fn refresh(
    client: &Client,
    options: &Options,
    store: &CertificateStore,
    applied_bundle: &mut String,
) -> Result<(), Error> {
    let policy = &options.certificates;
    let ca = certs::ensure_ca(client, &options.ca_secret, policy).await?;
    let bundle = ca.bundle_pem();
    let ca_changed = bundle != *applied_bundle;
    if ca_changed {
        // the bundle first: it trusts both CAs, so either serving certificate verifies
        registration::apply(client, &options.registration, &bundle).await?;
        *applied_bundle = bundle;
        tracing::info!("webhook CA bundle updated");
    }
    let now = Timestamp::now();
    if ca_changed || store.validity().needs_renewal(now) {
        store.set(&ca.issue(&options.dns_names, now, policy.serving_lifetime)?)?;
        tracing::info!("webhook serving certificate renewed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RegistryLocation;

    #[test]
    fn settings_follow_the_image_config() {
        assert_eq!(
            AdmissionSettings::from_image_config(None).unwrap(),
            AdmissionSettings::default()
        );
        let spec = ImageConfigSpec {
            allowed_registries_for_import: Some(vec![]),
            image_stream_import_mode: Some("PreserveOriginal".into()),
            ..ImageConfigSpec::default()
        };
        let s = AdmissionSettings::from_image_config(Some(&spec)).unwrap();
        assert_eq!(s.allowed_registries, None, "empty list allows everything");
        assert_eq!(s.default_import_mode, ImportMode::PreserveOriginal);

        let spec = ImageConfigSpec {
            allowed_registries_for_import: Some(vec![RegistryLocation {
                domain_name: "quay.io".into(),
                insecure: None,
            }]),
            internal_registry_hostname: Some("registry.svc:5000".into()),
            image_stream_import_mode: Some(String::new()),
            ..ImageConfigSpec::default()
        };
        let s = AdmissionSettings::from_image_config(Some(&spec)).unwrap();
        let allowed = s.allowed_registries.unwrap();
        assert!(
            allowed
                .admit("quay.io", crate::registry::policy::Transport::Secure)
                .is_ok()
        );
        assert!(
            allowed
                .admit(
                    "registry.svc:5000",
                    crate::registry::policy::Transport::Secure
                )
                .is_ok()
        );
        assert!(
            allowed
                .admit("docker.io", crate::registry::policy::Transport::Secure)
                .is_err()
        );
        assert_eq!(s.default_import_mode, ImportMode::Legacy);

        let spec = ImageConfigSpec {
            allowed_registries_for_import: Some(vec![RegistryLocation {
                domain_name: "a:b:c".into(),
                insecure: None,
            }]),
            ..ImageConfigSpec::default()
        };
        let err = AdmissionSettings::from_image_config(Some(&spec)).unwrap_err();
        assert_eq!(err.reason(), "InvalidAllowedRegistries");
    }

    #[test]
    fn in_cluster_options_name_the_service() {
        let o = Options::in_cluster("ops", "imagestream-operator");
        assert_eq!(o.ca_secret.name, "imagestream-operator-webhook-ca");
        assert!(
            o.dns_names
                .contains(&"imagestream-operator.ops.svc".to_string())
        );
        assert_eq!(
            o.registration.endpoint,
            Endpoint::Service {
                namespace: "ops".into(),
                name: "imagestream-operator".into(),
                port: 443
            }
        );
    }
}
