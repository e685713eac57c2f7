//! The whole operator in one process: the admission webhooks and the controllers side by
//! side, stopping on one signal.
//!
//! The webhooks are where OpenShift's apiserver computes generations and defaults
//! (design.md section 3), so a stream written while they are down would get no generations:
//! they are registered with `failurePolicy: Fail`, and a failure to set them up ends the
//! process (Kubernetes restarts it) instead of running the controllers alone. The image
//! lookup webhook (unless turned off) answers from an index of the ImageStreams that every
//! replica keeps for itself. Webhooks and controllers read one cache per kind
//! ([`crate::cache`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt, TryFutureExt, future};
use kube::Client;
use kube::runtime::watcher;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admission::{
    self, AdmissionSettings, ImageLookup, Imports, KubeAuthorizer, KubeLimitRanges, KubeReferences,
    Webhooks,
};
use crate::cache::Caches;
use crate::config::ImageConfig;
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

/// Where and how the webhooks (and the registry notification receivers) are served.
pub struct WebhookOptions {
    /// Bound by the caller, so tests can pick a free port.
    pub listener: TcpListener,
    pub admission: admission::Options,
    /// `ip:port` the other replicas reach this one's listener at (the Pod IP in a cluster),
    /// for notifications they forward to the leader. Default: the host and port of a URL
    /// registration; without either, a follower answers notifications 503.
    pub advertise: Option<String>,
    /// Whether registry notifications (ImageReceivers) are served beside the webhooks.
    pub receivers: bool,
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
    let image_lookup = options
        .webhooks
        .as_ref()
        .is_some_and(|w| w.admission.registration.image_lookup.is_some())
        .then(|| Arc::new(ImageLookup::new(options.controllers.metrics.clone())));
    if image_lookup.is_some() {
        parts.push(IMAGE_STREAMS_INDEXED);
    }
    let readiness = crate::probes::Readiness::waiting_for(&parts);
    let probes = options.probes.map(|listener| {
        crate::task::spawn(crate::probes::serve(
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
    // one cache per kind for the controllers and the webhooks of this process
    let caches = Arc::new(Caches::new(
        client.clone(),
        &crate::cache::Scope {
            watch_namespace: options.controllers.watch_namespace.clone(),
            all_limit_ranges: options.webhooks.is_some(),
            namespace: options.controllers.namespace.clone(),
            keys_reread: options.controllers.keys_reread,
        },
    ));
    // what the webhooks' imports share with the controllers
    let shared = Shared {
        metrics: options.controllers.metrics.clone(),
        in_flight: options.controllers.in_flight.clone(),
        settings: options.controllers.settings.clone(),
    };
    let mut controller_options = options.controllers;
    controller_options.caches = Some(caches.clone());
    let mut leader = options.leader;
    // registry notifications are served where the webhooks are, and imported by the leader
    let receivers = options
        .webhooks
        .as_ref()
        .filter(|w| w.receivers)
        .map(|web| {
            let receivers = Arc::new(crate::receiver::Receivers::new(
                client.clone(),
                receiver_options(&controller_options, leader.as_ref(), web),
                controller_options.metrics.clone(),
            ));
            controller_options.receivers = Some(receivers.clone());
            if let Some(leader) = leader.as_mut() {
                leader.address = advertised(web);
            }
            receivers
        });
    let controllers = run_controllers(
        client.clone(),
        controller_options,
        leader,
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
    let mut admission_options = web.admission;
    // the operator's own status writes and Image deletes skip the webhooks
    admission_options.registration.operator =
        Some(writer.operator().to_string()).filter(|o| !o.is_empty());
    let fixed = shared.settings.is_some();
    let imports = Arc::new(Imports::new(
        client.clone(),
        shared.metrics.clone(),
        shared.in_flight,
        shared.settings.unwrap_or_default(),
        import_budget(admission_options.registration.import_timeout_seconds),
    ));
    let import_settings = (!fixed).then(|| {
        let (imports, mut settings) = (imports.clone(), caches.settings());
        crate::task::spawn(async move {
            loop {
                let next = settings.borrow_and_update().clone();
                if let Some(next) = next {
                    imports.set_settings((*next).clone());
                }
                if settings.changed().await.is_err() {
                    return;
                }
            }
        })
    });
    let webhooks = Webhooks::new(KubeAuthorizer::new(client.clone()), settings_rx)
        .with_metrics(shared.metrics)
        .with_limit_ranges(KubeLimitRanges::new(caches.clone()))
        .with_writer(writer)
        .with_imports(imports)
        .with_references(KubeReferences::new(client.clone(), &caches));
    let mut webhooks = match &image_lookup {
        Some(lookup) => webhooks.with_image_lookup(lookup.clone()),
        None => webhooks,
    };
    if let Some(receivers) = &receivers {
        webhooks = webhooks.with_receivers(receivers.clone());
    }
    let receivers_task =
        receivers.map(|r| crate::task::spawn(crate::receiver::watch::run(client.clone(), r)));
    // the index loads while the webhooks are being registered
    let lookup_watch = image_lookup.map(|lookup| {
        let (changes, indexed) = (caches.streams.follow(), readiness.clone());
        crate::task::spawn(async move {
            lookup
                .follow(changes, move || indexed.done(IMAGE_STREAMS_INDEXED))
                .await;
        })
    });
    let webhooks = Arc::new(webhooks);
    let registered = readiness.clone();
    let server = admission::serve(
        client.clone(),
        web.listener,
        admission_options,
        webhooks,
        shutdown,
        move || registered.done(WEBHOOKS_REGISTERED),
    )
    .map_err(Error::Admission);
    let config = crate::task::spawn(watch_admission_settings(
        caches.image_config.clone(),
        settings,
        readiness.clone(),
    ));
    let result = future::try_join(server, controllers).await.map(|_| ());
    config.abort();
    if let Some(task) = import_settings {
        task.abort();
    }
    if let Some(watch) = lookup_watch {
        watch.abort();
    }
    if let Some(task) = receivers_task {
        task.abort();
    }
    stop_probes();
    result
}

/// What the webhooks' imports share with the controllers of the same process.
struct Shared {
    metrics: Arc<crate::controller::Metrics>,
    in_flight: Arc<crate::controller::InFlight>,
    /// Fixed settings (tests, demos); `None` follows the cluster's configuration objects.
    settings: Option<crate::controller::Settings>,
}

/// How long the registry work of an import answered in admission may take: two thirds of the
/// webhook's timeout, the rest is for writing Images and the stream.
fn import_budget(timeout_seconds: i32) -> Duration {
    let millis = u64::try_from(timeout_seconds.max(1)).unwrap_or(1) * 1000;
    Duration::from_millis(millis * 2 / 3)
}

/// Where receivers are served and how a follower reaches the leader.
fn receiver_options(
    controllers: &controller::Options,
    leader: Option<&crate::leader::LeaderOptions>,
    web: &WebhookOptions,
) -> crate::receiver::Options {
    let base_url = match &web.admission.registration.endpoint {
        admission::Endpoint::Url(url) => url.trim_end_matches('/').to_string(),
        admission::Endpoint::Service {
            namespace,
            name,
            port,
        } if *port == 443 => format!("https://{name}.{namespace}.svc"),
        admission::Endpoint::Service {
            namespace,
            name,
            port,
        } => format!("https://{name}.{namespace}.svc:{port}"),
    };
    crate::receiver::Options {
        operator_namespace: controllers.namespace.clone(),
        watch_namespace: controllers.watch_namespace.clone(),
        base_url,
        forward: leader.map(|l| crate::receiver::forward::ForwardOptions {
            lease_namespace: l.namespace.clone(),
            lease_name: l.name.clone(),
            tls_name: web.admission.dns_names.first().cloned().unwrap_or_default(),
            ca_secret: web.admission.ca_secret.clone(),
        }),
    }
}

/// This replica's `host:port` for the others: as given, or the URL it is registered at.
fn advertised(web: &WebhookOptions) -> Option<String> {
    if let Some(address) = &web.advertise {
        return Some(address.clone());
    }
    match &web.admission.registration.endpoint {
        admission::Endpoint::Url(url) => url
            .trim_start_matches("https://")
            .split('/')
            .next()
            .map(str::to_string)
            .filter(|a| !a.is_empty()),
        admission::Endpoint::Service { .. } => None,
    }
}

/// The parts `/readyz` waits for.
const PERMISSIONS: &str = "permissions checked";
const WEBHOOKS_REGISTERED: &str = "webhooks registered";
const ADMISSION_SETTINGS: &str = "ImageConfig read";
const IMAGE_STREAMS_INDEXED: &str = "ImageStreams indexed for image lookup";

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
    // the controllers run from here on: this replica leads until they end
    let _leading = metrics.leading();
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
    image_config: crate::cache::Shared<ImageConfig>,
    settings: watch::Sender<Arc<AdmissionSettings>>,
    readiness: crate::probes::Readiness,
) {
    let mut changes = image_config.follow();
    while let Some(change) = changes.next().await {
        // the first listing done: the webhooks answer with the cluster's settings
        if matches!(change, watcher::Event::InitDone) {
            readiness.done(ADMISSION_SETTINGS);
        }
        if !crate::cache::changed(&change) {
            continue;
        }
        let current = image_config.store().state().into_iter().next();
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
