//! The whole operator in one process: the admission webhooks and the controllers side by
//! side, stopping on one signal.
//!
//! The webhooks are where OpenShift's apiserver computes generations and defaults
//! (design.md section 3), so a stream written while they are down would get no generations:
//! they are registered with `failurePolicy: Fail`, and a failure to set them up ends the
//! process (Kubernetes restarts it) instead of running the controllers alone.

use std::future::Future;
use std::sync::Arc;

use futures::{FutureExt, StreamExt, TryFutureExt, future};
use kube::Client;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admission::{self, AdmissionSettings, KubeAuthorizer, KubeLimitRanges, Webhooks};
use crate::config::{ImageConfig, SINGLETON_NAME};
use crate::controller;

/// What [`run`] starts.
pub struct Options {
    pub controllers: controller::Options,
    /// The webhook server; `None` runs the controllers alone (clusters whose webhooks are
    /// served by another deployment of the operator).
    pub webhooks: Option<WebhookOptions>,
    /// Leader election: with it, the controllers run only while this process holds the
    /// Lease; `None` runs them at once (a single replica, tests).
    pub leader: Option<crate::leader::LeaderOptions>,
    /// Where `/livez`, `/readyz` and `/metrics` are served (bound by the caller).
    pub probes: Option<TcpListener>,
}

/// Where and how the webhooks are served.
pub struct WebhookOptions {
    /// Bound by the caller, so tests can pick a free port.
    pub listener: TcpListener,
    pub admission: admission::Options,
}

/// Why the operator stopped; [`Error::reason`] is stable.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("admission webhooks: {0}")]
    Admission(#[source] admission::Error),
    #[error("controllers: {0}")]
    Controllers(#[source] controller::Error),
    #[error("asking the apiserver who the operator is (a SelfSubjectReview): {0}")]
    Identity(#[source] kube::Error),
    #[error("leader election: {0}")]
    Leader(#[source] crate::leader::Error),
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Admission(e) => e.reason(),
            Error::Controllers(e) => e.reason(),
            Error::Identity(_) => "IdentityUnknown",
            Error::Leader(e) => e.reason(),
        }
    }
}

/// Runs the webhooks (when configured) and the controllers until `shutdown` completes, or
/// until either fails.
pub async fn run(
    client: Client,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), Error> {
    let shutdown = shutdown.boxed().shared();
    let readiness = crate::probes::Readiness::default();
    let probes = options.probes.map(|listener| {
        tokio::spawn(crate::probes::serve(
            listener,
            options.controllers.metrics.clone(),
            readiness.clone(),
            shutdown.clone(),
        ))
    });
    let controllers = run_controllers(
        client.clone(),
        options.controllers,
        options.leader,
        shutdown.clone(),
    );
    let Some(web) = options.webhooks else {
        readiness.set(true);
        let result = controllers.await;
        drop(probes);
        return result;
    };
    let (settings, settings_rx) = watch::channel(Arc::new(AdmissionSettings::default()));
    // the tag views' write paths edit streams as the operator, and let its own writes pass
    let writer = admission::Writer::discover(client.clone())
        .await
        .map_err(Error::Identity)?;
    let webhooks = Arc::new(
        Webhooks::new(KubeAuthorizer::new(client.clone()), settings_rx)
            .with_limit_ranges(KubeLimitRanges::new(client.clone()))
            .with_writer(writer),
    );
    let server = admission::serve(
        client.clone(),
        web.listener,
        web.admission,
        webhooks,
        shutdown,
    )
    .map_err(Error::Admission);
    let config = tokio::spawn(watch_admission_settings(client, settings));
    // the webhook listener is bound and the webhooks answer from here on
    readiness.set(true);
    let result = future::try_join(server, controllers).await.map(|_| ());
    config.abort();
    if let Some(p) = probes {
        p.abort();
    }
    result
}

/// The controllers, at once or once this process leads.
async fn run_controllers(
    client: Client,
    options: controller::Options,
    leader: Option<crate::leader::LeaderOptions>,
    shutdown: futures::future::Shared<futures::future::BoxFuture<'static, ()>>,
) -> Result<(), Error> {
    match leader {
        None => controller::run(client, options, shutdown)
            .await
            .map_err(Error::Controllers),
        Some(leader) => {
            let work = |stop| controller::run(client.clone(), options, stop);
            match crate::leader::run_as_leader(client.clone(), leader, shutdown, work).await {
                Ok(Some(result)) => result.map_err(Error::Controllers),
                Ok(None) => Ok(()),
                Err(e) => Err(Error::Leader(e)),
            }
        }
    }
}

/// Feeds the webhooks the `cluster` ImageConfig's `allowedRegistriesForImport` and import
/// mode. An invalid configuration keeps the last valid one (with a warning); a deleted one
/// brings back the defaults.
async fn watch_admission_settings(client: Client, settings: watch::Sender<Arc<AdmissionSettings>>) {
    let (store, writer) = reflector::store::<ImageConfig>();
    let config = watcher::Config::default().fields(&format!("metadata.name={SINGLETON_NAME}"));
    let mut events = std::pin::pin!(
        watcher(Api::<ImageConfig>::all(client), config)
            .default_backoff()
            .reflect(writer)
    );
    while events.next().await.is_some() {
        let current = store.state().into_iter().next();
        match AdmissionSettings::from_image_config(current.as_ref().map(|c| &c.spec)) {
            Ok(next) => {
                settings.send_if_modified(|old| {
                    let changed = **old != next;
                    if changed {
                        *old = Arc::new(next);
                    }
                    changed
                });
            }
            Err(e) => {
                tracing::warn!(reason = e.reason(), error = %e, "ImageConfig ignored by the webhooks");
            }
        }
    }
}
