//! The whole operator in one process: the admission webhooks and the controllers side by
//! side, stopping on one signal.
//!
//! The webhooks are where OpenShift's apiserver computes generations and defaults
//! (design.md section 3), so a stream written while they are down would get no generations:
//! they are registered with `failurePolicy: Fail`, and a failure to set them up ends the
//! process (Kubernetes restarts it) instead of running the controllers alone.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

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
    /// After the shutdown signal, how long reconciles in flight may take to finish before
    /// they are dropped (below the Pod's termination grace period).
    pub shutdown_grace: Duration,
}

/// Twenty seconds: ten less than a Pod's default termination grace period.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

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
    #[error("{0}")]
    Permissions(#[source] crate::permissions::Error),
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Admission(e) => e.reason(),
            Error::Controllers(e) => e.reason(),
            Error::Identity(_) => "IdentityUnknown",
            Error::Leader(e) => e.reason(),
            Error::Permissions(e) => e.reason(),
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
    let mut parts = vec![PERMISSIONS];
    if options.webhooks.is_some() {
        parts.extend([WEBHOOKS_REGISTERED, ADMISSION_SETTINGS]);
    }
    let readiness = crate::probes::Readiness::waiting_for(&parts);
    let probes = options.probes.map(|listener| {
        tokio::spawn(crate::probes::serve(
            listener,
            options.controllers.metrics.clone(),
            readiness.clone(),
            shutdown.clone(),
        ))
    });
    let stop_probes = || {
        if let Some(p) = &probes {
            p.abort();
        }
    };
    let scope = crate::permissions::Scope {
        namespace: options.controllers.namespace.clone(),
        watch_namespace: options.controllers.watch_namespace.clone(),
        webhooks: options.webhooks.is_some(),
        leader: options.leader.is_some(),
        triggers: options.controllers.image_triggers,
    };
    let checked = tokio::select! {
        checked = crate::permissions::check_until_answered(&client, &scope) => checked,
        () = shutdown.clone() => {
            stop_probes();
            return Ok(());
        }
    };
    if let Err(e) = checked {
        stop_probes();
        return Err(Error::Permissions(e));
    }
    readiness.done(PERMISSIONS);
    let controllers = run_controllers(
        client.clone(),
        options.controllers,
        options.leader,
        shutdown.clone(),
        options.shutdown_grace,
    );
    let Some(web) = options.webhooks else {
        let result = controllers.await;
        stop_probes();
        return result;
    };
    let (settings, settings_rx) = watch::channel(Arc::new(AdmissionSettings::default()));
    // the tag views' write paths edit streams as the operator, and let its own writes pass
    let writer = match admission::Writer::discover(client.clone()).await {
        Ok(writer) => writer,
        Err(e) => {
            stop_probes();
            return Err(Error::Identity(e));
        }
    };
    let webhooks = Arc::new(
        Webhooks::new(KubeAuthorizer::new(client.clone()), settings_rx)
            .with_limit_ranges(KubeLimitRanges::new(client.clone()))
            .with_writer(writer),
    );
    let registered = readiness.clone();
    let server = admission::serve(
        client.clone(),
        web.listener,
        web.admission,
        webhooks,
        shutdown,
        move || registered.done(WEBHOOKS_REGISTERED),
    )
    .map_err(Error::Admission);
    let config = tokio::spawn(watch_admission_settings(
        client,
        settings,
        readiness.clone(),
    ));
    let result = future::try_join(server, controllers).await.map(|_| ());
    config.abort();
    stop_probes();
    result
}

/// The parts `/readyz` waits for.
const PERMISSIONS: &str = "permissions checked";
const WEBHOOKS_REGISTERED: &str = "webhooks registered";
const ADMISSION_SETTINGS: &str = "ImageConfig read";

/// The controllers, at once or once this process leads.
async fn run_controllers(
    client: Client,
    options: controller::Options,
    leader: Option<crate::leader::LeaderOptions>,
    shutdown: futures::future::Shared<futures::future::BoxFuture<'static, ()>>,
    grace: Duration,
) -> Result<(), Error> {
    let metrics = options.metrics.clone();
    match leader {
        None => within_grace(
            controller::run(client, options, shutdown.clone()),
            shutdown,
            grace,
            metrics,
        )
        .await
        .map_err(Error::Controllers),
        Some(leader) => {
            let work = |stop: futures::future::Shared<futures::future::BoxFuture<'static, ()>>| {
                within_grace(
                    controller::run(client.clone(), options, stop.clone()),
                    stop,
                    grace,
                    metrics,
                )
            };
            match crate::leader::run_as_leader(client.clone(), leader, shutdown, work).await {
                Ok(Some(result)) => result.map_err(Error::Controllers),
                Ok(None) => Ok(()),
                Err(e) => Err(Error::Leader(e)),
            }
        }
    }
}

/// Runs `work` to its end, or drops it `grace` after `shutdown`: a reconcile still waiting
/// on a registry then writes nothing, and the next leader starts it again. Status writes are
/// single requests, so none is left half done.
/// Once no reconcile is in flight, it stops at once: a controller whose cache had not loaded
/// when the signal came would otherwise wait for a listing that nothing polls any more.
async fn within_grace(
    work: impl Future<Output = Result<(), controller::Error>>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    metrics: Arc<controller::Metrics>,
) -> Result<(), controller::Error> {
    let deadline = async {
        shutdown.await;
        let started = tokio::time::Instant::now();
        while started.elapsed() < grace {
            if metrics.in_flight() == 0 {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    };
    tokio::select! {
        result = work => result,
        late = deadline => {
            if late {
                tracing::warn!(?grace, "reconciles still in flight after the shutdown grace; dropped");
            } else {
                tracing::info!("no reconcile in flight; controllers stopped");
            }
            Ok(())
        }
    }
}

/// Feeds the webhooks the `cluster` ImageConfig's `allowedRegistriesForImport` and import
/// mode. An invalid configuration keeps the last valid one (with a warning); a deleted one
/// brings back the defaults.
async fn watch_admission_settings(
    client: Client,
    settings: watch::Sender<Arc<AdmissionSettings>>,
    readiness: crate::probes::Readiness,
) {
    let (store, writer) = reflector::store::<ImageConfig>();
    let config = watcher::Config::default().fields(&format!("metadata.name={SINGLETON_NAME}"));
    let mut events = std::pin::pin!(
        watcher(Api::<ImageConfig>::all(client), config)
            .default_backoff()
            .reflect(writer)
    );
    while let Some(event) = events.next().await {
        // the first listing done: the webhooks answer with the cluster's settings
        if matches!(event, Ok(watcher::Event::InitDone)) {
            readiness.done(ADMISSION_SETTINGS);
        }
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
