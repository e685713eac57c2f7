//! The controllers and what they share: the kube client, reflector caches of streams, Images
//! and pull secrets, the importer (one registry client cache for the process), the schedule
//! of scheduled checks, the configuration, Events and counters.
//!
//! [`run`] wires them: configuration watchers feed [`Context::set_settings`] (which rebuilds
//! the importer only when transport settings change), a change of pull secrets re-queues the
//! streams whose tags failed with `Unauthorized`, and the imagestream controller reconciles
//! ([`image_stream::reconcile`]), ending each pass that wrote nothing by bringing the stream's
//! views in step ([`views`]; a change of a view, or of an Image a stream shows, brings the
//! stream back); ImageStreamImports ([`image_stream_import`]) and ImageStreamMappings
//! ([`image_stream_mapping`]) are processed beside it, and workloads follow their tags
//! ([`trigger`], fed by the same stream watch and cache).

pub mod image_stream;
pub mod image_stream_import;
pub mod image_stream_mapping;
pub mod metrics;
pub mod pruner;
pub mod trigger;
pub mod views;
pub mod write;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt, future};
use k8s_openapi::api::core::v1::{ConfigMap, LimitRange, Secret};
use kube::api::Api;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use crate::api::image::Image;
use crate::api::image_stream::ImageStream;
use crate::config::{ImageConfig, ImageImportConfig, SINGLETON_NAME};
use crate::credentials::{CredentialSetId, Keyring};
use crate::import::contract::{Batch, BatchResult};
use crate::import::engine::KnownImages;
use crate::import::importer::Importer;
use crate::registry::ClientCache;

use crate::stream::image_index::ImageIndex;
use crate::stream::schedule::{self, Decision, Schedule};
pub use crate::stream::settings::Settings;
pub use metrics::Metrics;

/// Pull-secret types the keyring reads.
const SECRET_TYPES: [&str; 2] = ["kubernetes.io/dockerconfigjson", "kubernetes.io/dockercfg"];

/// Why a reconcile or the controller failed; [`Error::reason`] is stable.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing the image stream status: {0}")]
    WriteStatus(#[source] kube::Error),
    #[error("writing the image stream: {0}")]
    WriteStream(#[source] kube::Error),
    #[error("creating an Image: {0}")]
    CreateImage(#[source] kube::Error),
    #[error("the {0} cache did not become ready: {1}")]
    CacheNotReady(&'static str, String),
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::WriteStatus(_) => "StatusWriteFailed",
            Error::WriteStream(_) => "StreamWriteFailed",
            Error::CreateImage(_) => "ImageCreateFailed",
            Error::CacheNotReady(..) => "CacheNotReady",
        }
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    settings: RwLock<Arc<Settings>>,
    importer: RwLock<Arc<Importer>>,
    schedule: Mutex<Option<Schedule>>,
    streams: Store<ImageStream>,
    images: Store<Image>,
    secrets: Vec<Store<Secret>>,
    limit_ranges: Store<LimitRange>,
    /// The keyring a stream's `Unauthorized` failures were seen with, by stream UID.
    credentials: Mutex<HashMap<String, CredentialSetId>>,
    /// Streams an ImageStreamImport is writing (shared with the admission webhook's imports
    /// in this process).
    applying: Arc<InFlight>,
    /// The views controller's state and queue.
    views: views::ViewState,
    /// Tags registry notifications woke, waiting for a check.
    pub(crate) woken: Arc<crate::receiver::Queue>,
}

/// Streams (`namespace/name`) an ImageStreamImport is writing, by the controller or by the
/// admission webhook of the same process: between its spec and its status write the tags look
/// unimported, and the imagestream controller must not fetch them a second time. (A webhook
/// of another replica is not seen: the controller may then fetch once more, and one of the
/// two status writes conflicts and finds the tag imported.)
#[derive(Debug, Default)]
pub struct InFlight(Mutex<HashMap<String, usize>>);

impl InFlight {
    /// Marks `namespace/name` until the guard is dropped.
    pub fn mark(&self, namespace: &str, name: &str) -> Applying<'_> {
        let key = format!("{namespace}/{name}");
        *self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_default() += 1;
        Applying { set: self, key }
    }

    /// Whether a request is writing `namespace/name` right now.
    pub fn contains(&self, namespace: &str, name: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&format!("{namespace}/{name}"))
    }
}

/// Marks a stream as being written by a request until dropped.
pub struct Applying<'a> {
    set: &'a InFlight,
    key: String,
}

impl Drop for Applying<'_> {
    fn drop(&mut self) {
        let mut marks = self.set.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = marks.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                marks.remove(&self.key);
            }
        }
    }
}

/// The reflector caches a [`Context`] reads.
struct Caches {
    streams: Store<ImageStream>,
    images: Store<Image>,
    secrets: Vec<Store<Secret>>,
    limit_ranges: Store<LimitRange>,
}

/// Client cache size and idle time of the importer.
const CLIENTS: usize = 256;
const CLIENT_IDLE: Duration = Duration::from_secs(30 * 60);

impl Context {
    fn new(
        client: Client,
        metrics: Arc<Metrics>,
        settings: Settings,
        caches: Caches,
        views: views::ViewState,
        applying: Arc<InFlight>,
        woken: Arc<crate::receiver::Queue>,
    ) -> Context {
        let Caches {
            streams,
            images,
            secrets,
            limit_ranges,
        } = caches;
        // registry requests are counted unless the caller observes them itself
        let mut settings = settings;
        with_observer(&mut settings, &metrics);
        let reporter = Reporter {
            controller: "imagestream-operator".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let importer = Importer::new(ClientCache::new(
            settings.registry.clone(),
            CLIENTS,
            CLIENT_IDLE,
        ));
        let schedule = schedule_for(&settings);
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            settings: RwLock::new(Arc::new(settings)),
            importer: RwLock::new(Arc::new(importer)),
            schedule: Mutex::new(schedule),
            applying,
            streams,
            images,
            limit_ranges,
            secrets,
            credentials: Mutex::new(HashMap::new()),
            views,
            woken,
        }
    }

    pub fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn importer(&self) -> Arc<Importer> {
        self.importer
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs one batch with the current settings and the Images that exist, counting each
    /// entry's outcome.
    async fn import(&self, batch: &Batch, keyring: &Keyring, now: jiff::Timestamp) -> BatchResult {
        let settings = self.settings();
        let run = Run {
            importer: &self.importer(),
            settings: &settings.import,
            metrics: &self.metrics,
            deadline: None,
        };
        run.import(batch, keyring, &self.known_images(), now).await
    }

    /// Applies new configuration; registry clients (and their tokens) are rebuilt only when
    /// transport settings changed, the schedule only when its own settings did.
    pub fn set_settings(&self, mut next: Settings) {
        with_observer(&mut next, &self.metrics);
        let current = self.settings();
        if !current.same_transport(&next) {
            let importer = Importer::new(ClientCache::new(
                next.registry.clone(),
                CLIENTS,
                CLIENT_IDLE,
            ));
            *self
                .importer
                .write()
                .unwrap_or_else(PoisonError::into_inner) = Arc::new(importer);
        }
        if current.scheduled_interval != next.scheduled_interval
            || current.scheduled_per_minute != next.scheduled_per_minute
            || current.registry_budgets != next.registry_budgets
        {
            *self.schedule.lock().unwrap_or_else(PoisonError::into_inner) = schedule_for(&next);
        }
        let views_changed = current.views != next.views;
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
        if views_changed {
            let streams = self.streams.state();
            self.views.kinds_changed(streams.iter().map(AsRef::as_ref));
        }
    }

    fn schedule_decide(
        &self,
        uid: &str,
        registries: &[String],
        demands: &[schedule::QuotaDemand],
    ) -> Option<Decision> {
        let mut schedule = self.schedule.lock().unwrap_or_else(PoisonError::into_inner);
        let schedule = schedule.as_mut()?;
        let now = Instant::now();
        let due = schedule.due(uid);
        let decision = schedule.decide_paced(uid, registries, demands, now);
        self.metrics
            .schedule(schedule.len(), &schedule.budgets_left());
        // a check that was due starts now: how late (waits for budgets and quotas)
        let late = match (decision, due) {
            (Decision::CheckNow { .. }, Some(due)) => Some(now.saturating_duration_since(due)),
            _ => None,
        };
        self.metrics.scheduled(schedule.interval(), late);
        Some(decision)
    }

    /// Spends from the budgets and quotas a check outside the schedule draws from (see
    /// [`Schedule::spend`]); without a schedule (scheduled imports disabled) nothing limits it.
    fn schedule_spend(
        &self,
        registries: &[String],
        demands: &[schedule::QuotaDemand],
    ) -> Result<(), Duration> {
        match self
            .schedule
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            Some(schedule) => schedule.spend(registries, demands, Instant::now()),
            None => Ok(()),
        }
    }

    /// What each registry's quota asks of a check of `tags` (pull specs) with `keyring`: how
    /// many tags pull from it with which credential, and its last announcement.
    fn quota_demands<'a>(
        &self,
        tags: impl Iterator<Item = &'a str>,
        keyring: &Keyring,
    ) -> Vec<schedule::QuotaDemand> {
        let importer = self.importer();
        let mut counts: HashMap<(String, String), u64> = HashMap::new();
        for from in tags {
            let Ok(parsed) = crate::reference::DockerImageReference::parse(from) else {
                continue;
            };
            let defaulted = parsed.docker_client_defaults();
            let credential = keyring.best(&defaulted.registry, &defaulted.repository_name());
            *counts
                .entry((defaulted.registry, credential.id().as_str().to_string()))
                .or_default() += 1;
        }
        counts
            .into_iter()
            .map(|((registry, credential), checks)| schedule::QuotaDemand {
                observed: importer.clients().quota(&registry, &credential),
                registry,
                credential,
                checks,
            })
            .collect()
    }

    fn schedule_remove(&self, uid: &str) {
        if let Some(s) = self
            .schedule
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            s.remove(uid);
        }
    }

    /// Marks `namespace/name` as being written by a request (see [`InFlight`]).
    pub(crate) fn applying(&self, namespace: &str, name: &str) -> Applying<'_> {
        self.applying.mark(namespace, name)
    }

    /// Whether a request is writing the stream right now.
    fn is_applying(&self, namespace: &str, name: &str) -> bool {
        self.applying.contains(namespace, name)
    }

    /// The LimitRange limits on the streams of `namespace` (semantics 7.8), from the cache.
    fn limits(&self, namespace: &str) -> crate::stream::limits::Limits {
        let ranges = self.limit_ranges.state();
        crate::stream::limits::Limits::from_ranges(
            ranges
                .iter()
                .filter(|r| r.namespace().as_deref() == Some(namespace))
                .map(AsRef::as_ref),
        )
    }

    /// The pull secrets of `namespace` as a keyring.
    fn keyring(&self, namespace: &str) -> Keyring {
        let secrets: Vec<Arc<Secret>> = self
            .secrets
            .iter()
            .flat_map(|s| s.state())
            .filter(|s| s.namespace().as_deref() == Some(namespace))
            .collect();
        Keyring::from_secrets(secrets.iter().map(AsRef::as_ref))
    }

    /// Whether `Unauthorized` tags of the stream should be tried again: the keyring differs
    /// from the one they failed with (or that is not known, e.g. after a restart).
    fn credentials_changed(&self, uid: &str, id: &CredentialSetId) -> bool {
        self.credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(uid)
            .is_none_or(|seen| seen != id)
    }

    fn remember_credentials(&self, uid: &str, id: CredentialSetId) {
        self.credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(uid.to_string(), id);
    }

    fn stream(&self, namespace: &str, name: &str) -> Option<ImageStream> {
        self.streams
            .get(&ObjectRef::new(name).within(namespace))
            .map(|s| (*s).clone())
    }

    /// The shared write step, as the imports write.
    fn writer(&self) -> write::Writer<'_> {
        write::Writer::new(&self.client, &self.metrics)
    }

    fn known_images(&self) -> StoreImages {
        StoreImages(self.images.clone())
    }
}

/// One import run: the importer, its settings, the counters, and when to stop (`None`:
/// never). The controllers and the admission webhook run batches the same way.
pub struct Run<'a> {
    pub importer: &'a Importer,
    pub settings: &'a crate::import::contract::Settings,
    pub metrics: &'a Metrics,
    pub deadline: Option<tokio::time::Instant>,
}

impl Run<'_> {
    /// Runs `batch` with `known` Images, counting each entry's outcome.
    pub async fn import<K: KnownImages + Sync>(
        &self,
        batch: &Batch,
        keyring: &Keyring,
        known: &K,
        now: jiff::Timestamp,
    ) -> BatchResult {
        let started = Instant::now();
        let result = self
            .importer
            .import_until(batch, keyring, known, self.settings, now, self.deadline)
            .await;
        self.metrics.import_batch(started.elapsed());
        let registry_of = |spec: &str| {
            crate::reference::DockerImageReference::parse(spec)
                .map(|r| r.docker_client_defaults().registry)
                .unwrap_or_default()
        };
        for (entry, r) in batch.images.iter().zip(&result.images) {
            self.metrics.import(
                &entry.from.registry().unwrap_or_default(),
                r.as_ref().map(|i| i.unchanged).map_err(|f| f.reason),
            );
        }
        if let (Some(repository), Some(listed)) = (&batch.repository, &result.repository) {
            let registry = registry_of(&repository.from);
            for r in listed.images.iter().flatten() {
                self.metrics.import(
                    &registry,
                    r.as_ref().map(|i| i.unchanged).map_err(|f| f.reason),
                );
            }
        }
        result
    }
}

/// The importer for `settings` (one registry client cache), counting registry requests in
/// `metrics` unless the settings observe them otherwise.
pub fn importer_for(settings: &mut Settings, metrics: &Arc<Metrics>) -> Importer {
    with_observer(settings, metrics);
    Importer::new(ClientCache::new(
        settings.registry.clone(),
        CLIENTS,
        CLIENT_IDLE,
    ))
}

/// Counts the registry requests of `settings`' clients in `metrics` unless the settings observe
/// them otherwise.
pub fn with_observer(settings: &mut Settings, metrics: &Arc<Metrics>) {
    if settings.registry.observer.is_none() {
        settings.registry.observer = Some(metrics.clone());
    }
}

fn schedule_for(settings: &Settings) -> Option<Schedule> {
    settings.scheduled_interval.map(|interval| {
        Schedule::new(
            interval,
            settings.scheduled_per_minute,
            &settings.registry_budgets,
            Instant::now(),
        )
    })
}

/// The Images that exist, from the reflector cache.
struct StoreImages(Store<Image>);

impl KnownImages for StoreImages {
    fn is_list(&self, digest: &str) -> Option<bool> {
        self.0
            .get(&ObjectRef::new(&crate::names::image(digest)))
            .map(|i| i.spec.is_manifest_list())
    }
}

/// How the operator runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Namespace of the `additionalTrustedCA` ConfigMap.
    pub namespace: String,
    /// Streams reconciled at the same time.
    pub concurrency: u16,
    /// Only streams (and pull secrets) of this namespace; `None` watches the whole cluster.
    pub watch_namespace: Option<String>,
    /// Fixed settings instead of the cluster's configuration objects (tests, demos).
    pub settings: Option<Settings>,
    /// Where the controllers count what they do.
    pub metrics: Arc<Metrics>,
    /// The pruner to follow; `None` runs none.
    pub pruner: Option<pruner::PrunerOptions>,
    /// Run the image change trigger controller ([`trigger`]).
    pub image_triggers: bool,
    /// Streams being written by ImageStreamImports; shared with the admission webhook when
    /// both run in one process.
    pub in_flight: Arc<InFlight>,
    /// Registry notification receivers to take notifications from while these controllers
    /// run (the webhook server serves them).
    pub receivers: Option<Arc<crate::receiver::Receivers>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            namespace: "imagestream-operator".into(),
            concurrency: 16,
            watch_namespace: None,
            settings: None,
            metrics: Arc::default(),
            pruner: Some(pruner::PrunerOptions::default()),
            image_triggers: true,
            in_flight: Arc::default(),
            receivers: None,
        }
    }
}

fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the controllers until `shutdown` completes.
pub async fn run(
    client: Client,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), Error> {
    // every controller stops on the same signal
    let shutdown = shutdown.boxed().shared();
    // changes that concern a stream's views (a view, an Image it shows, the stream deleted),
    // and the streams the imagestream controller settled: the views controller's queue
    let (triggers, triggered) = futures::channel::mpsc::unbounded::<ObjectRef<ImageStream>>();
    let (to_views, settled) = futures::channel::mpsc::unbounded::<ObjectRef<ImageStream>>();
    let image_index = Arc::new(Mutex::new(ImageIndex::default()));
    let (images, images_writer) = reflector::store::<Image>();
    let images_task = {
        let (index, triggers) = (image_index.clone(), triggers.clone());
        watcher(
            Api::<Image>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .modify(lean)
        .reflect(images_writer)
        .for_each(move |event| {
            if let Ok(watcher::Event::Apply(image) | watcher::Event::Delete(image)) = event {
                views::image_changed(&index, &image, &triggers);
            }
            future::ready(())
        })
    };
    let (view_stores, view_tasks) =
        views::watch(&client, options.watch_namespace.as_deref(), &triggers);

    let (limit_ranges, limit_ranges_writer) = reflector::store::<LimitRange>();
    let limit_ranges_task = watcher(
        scoped::<LimitRange>(&client, options.watch_namespace.as_deref()),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(lean)
    .reflect(limit_ranges_writer)
    .for_each(|_| future::ready(()));

    let mut secrets = Vec::new();
    let mut secret_tasks = Vec::new();
    for type_ in SECRET_TYPES {
        let (reader, writer) = reflector::store::<Secret>();
        secrets.push(reader);
        secret_tasks.push(
            watcher(
                scoped::<Secret>(&client, options.watch_namespace.as_deref()),
                watcher::Config::default().fields(&format!("type={type_}")),
            )
            .default_backoff()
            .modify(lean)
            .reflect(writer)
            .for_each(|_| future::ready(())),
        );
    }

    let streams_api = scoped::<ImageStream>(&client, options.watch_namespace.as_deref());
    // deletions trigger too: a deleted stream's reconcile finds no object, and its views go
    let (streams, streams_writer) = reflector::store::<ImageStream>();
    // set once the stream cache has listed (see `loaded`)
    let (listed, streams_listed) = tokio::sync::watch::channel(false);
    // the trigger controller follows the same watch, after the cache took each change
    let (to_triggers, trigger_events) = futures::channel::mpsc::unbounded();
    let to_triggers = options.image_triggers.then_some(to_triggers);
    // registry notifications: the tags they wake, and the streams to reconcile for them
    let (woken, woken_streams) = crate::receiver::Queue::new(streams.clone());
    let woken = Arc::new(woken);
    let stream_events = watcher(streams_api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(lean)
        .reflect(streams_writer)
        .inspect({
            let woken = woken.clone();
            move |event| woken.observe(event)
        })
        .inspect({
            // a deleted stream's views go
            let triggers = triggers.clone();
            move |event| {
                if let Ok(watcher::Event::Delete(stream)) = event {
                    let _ = triggers.unbounded_send(ObjectRef::from_obj(stream));
                }
            }
        })
        .inspect(move |event| {
            if matches!(event, Ok(watcher::Event::InitDone)) {
                listed.send_replace(true);
            }
            if let (Some(tx), Ok(event)) = (&to_triggers, event) {
                let _ = match event {
                    watcher::Event::Apply(s) | watcher::Event::Delete(s) => {
                        tx.unbounded_send(trigger::StreamEvent::Changed {
                            namespace: s.namespace().unwrap_or_default(),
                            name: s.name_any(),
                        })
                    }
                    watcher::Event::InitDone => tx.unbounded_send(trigger::StreamEvent::Listed),
                    _ => Ok(()),
                };
            }
        })
        .touched_objects();
    let controller = Controller::for_stream(stream_events, streams.clone());
    let fixed = options.settings.is_some();
    let initial = options.settings.clone().unwrap_or_default();
    let ctx = Arc::new(Context::new(
        client.clone(),
        options.metrics.clone(),
        initial,
        Caches {
            streams: streams.clone(),
            images: images.clone(),
            secrets: secrets.clone(),
            limit_ranges: limit_ranges.clone(),
        },
        views::ViewState::new(view_stores, image_index, to_views),
        options.in_flight.clone(),
        woken.clone(),
    ));

    // Configuration: re-read on every change of the two objects; every stream is reconciled
    // again afterwards.
    let (config_tx, config_rx) = futures::channel::mpsc::unbounded::<()>();
    // With fixed settings the sender is kept (unused) so the trigger stream stays open.
    let keep_open = fixed.then(|| config_tx.clone());
    let config_task = {
        let ctx = ctx.clone();
        watch_configuration(client.clone(), options.namespace.clone(), move |next| {
            ctx.set_settings(next);
            config_tx.unbounded_send(()).is_ok()
        })
    };

    let tokio_images = crate::task::spawn(images_task);
    let tokio_limit_ranges = crate::task::spawn(limit_ranges_task);
    let tokio_secrets: Vec<_> = secret_tasks.into_iter().map(crate::task::spawn).collect();
    let tokio_views: Vec<_> = view_tasks.into_iter().map(crate::task::spawn).collect();
    let tokio_config = (!fixed).then(|| crate::task::spawn(config_task));
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        images.wait_until_ready().await.map_err(|e| e.to_string())?;
        limit_ranges
            .wait_until_ready()
            .await
            .map_err(|e| e.to_string())?;
        for s in &secrets {
            s.wait_until_ready().await.map_err(|e| e.to_string())?;
        }
        ctx.views
            .wait_until_ready()
            .await
            .map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    })
    .await;
    match ready {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return Err(Error::CacheNotReady("images/secrets/limitranges/views", e));
        }
        Err(_) => {
            return Err(Error::CacheNotReady(
                "images/secrets/limitranges/views",
                "no answer within 60s".into(),
            ));
        }
    }

    let mut controller = controller
        .with_config(controller::Config::default().concurrency(options.concurrency))
        .reconcile_all_on(config_rx)
        .reconcile_on(woken_streams)
        .graceful_shutdown_on(shutdown.clone());
    // notifications come here while these controllers run, once the stream cache listed
    let leading = options.receivers.clone().map(|receivers| {
        let (woken, listed) = (woken.clone(), streams_listed.clone());
        crate::task::spawn(async move {
            loaded(listed).await;
            let _leading = receivers.lead(woken);
            std::future::pending::<()>().await
        })
    });
    for type_ in SECRET_TYPES {
        let streams = streams.clone();
        controller = controller.watches(
            scoped::<Secret>(&client, options.watch_namespace.as_deref()),
            watcher::Config::default().fields(&format!("type={type_}")),
            move |secret| unauthorized_streams(&streams, &secret),
        );
    }
    let streams_controller = controller
        .run(image_stream::reconcile, error_policy, ctx.clone())
        .for_each(|result| {
            if let Err(e) = result {
                // a deleted stream included: the views controller removes its views
                tracing::debug!(error = %e, "reconcile");
            }
            future::ready(())
        });
    // the views beside it, on their own queue
    let views_controller = views::run(
        ctx.clone(),
        streams.clone(),
        triggered,
        settled,
        streams_listed.clone(),
        options.concurrency,
        shutdown.clone(),
    );
    // The request controllers (each stops on `shutdown`) run beside it.
    let mappings_controller = image_stream_mapping::run(
        client.clone(),
        options.watch_namespace.as_deref(),
        ctx.clone(),
        shutdown.clone(),
    );
    let imports_controller = image_stream_import::run(
        client.clone(),
        options.watch_namespace.as_deref(),
        ctx.clone(),
        shutdown.clone(),
    );
    let triggers_task = options.image_triggers.then(|| {
        crate::task::spawn(trigger::run(
            trigger::Options {
                client: client.clone(),
                recorder: ctx.recorder.clone(),
                metrics: ctx.metrics.clone(),
                streams: streams.clone(),
                stream_events: trigger_events,
                streams_listed: streams_listed.clone(),
                watch_namespace: options.watch_namespace.clone(),
                concurrency: usize::from(options.concurrency),
            },
            shutdown.clone(),
        ))
    });
    let pruner_task = options.pruner.clone().map(|p| {
        let (ctx, shutdown, listed) = (ctx.clone(), shutdown.clone(), streams_listed.clone());
        crate::task::spawn(async move {
            // the stream cache must be loaded: the pruner reads it
            loaded(listed).await;
            pruner::run(ctx, p, shutdown).await;
        })
    });
    future::join4(
        streams_controller,
        views_controller,
        mappings_controller,
        imports_controller,
    )
    .await;
    if let Some(task) = leading {
        task.abort();
    }
    if let Some(t) = pruner_task {
        // a run in progress finishes its current write; then the task ends with `shutdown`
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    if let Some(t) = triggers_task {
        // it ends with `shutdown` too; a patch in flight finishes
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    drop(keep_open);
    for t in tokio_views {
        t.abort();
    }
    tokio_images.abort();
    tokio_limit_ranges.abort();
    if let Some(t) = tokio_config {
        t.abort();
    }
    for t in tokio_secrets {
        t.abort();
    }
    Ok(())
}

/// Drops what the caches never read: `managedFields` is a large part of a small object, and
/// the caches hold every stream, Image and view (measured by `e2e/bench/scale.rs`).
pub(crate) fn lean<K: kube::Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// Returns once the stream cache has listed. Not `Store::wait_until_ready`: its signal keeps
/// one waker, so a second waiter takes the wake-up from the controller's own runner.
async fn loaded(mut listed: tokio::sync::watch::Receiver<bool>) {
    let _ = listed.wait_for(|done| *done).await;
}

/// Streams in the secret's namespace with a tag that failed with `Unauthorized`, or whose
/// `spec.dockerImageRepository` was not imported yet.
fn unauthorized_streams(
    streams: &Store<ImageStream>,
    secret: &Secret,
) -> Vec<ObjectRef<ImageStream>> {
    let namespace = secret.namespace();
    streams
        .state()
        .iter()
        .filter(|s| s.namespace() == namespace)
        .filter(|s| {
            // a repository not imported yet may have failed for want of credentials too
            crate::stream::sync::repository_pending(s)
                || s.status
                    .iter()
                    .flat_map(|st| &st.tags)
                    .any(|t| t.conditions.iter().any(|c| c.reason == "Unauthorized"))
        })
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

fn error_policy(_stream: Arc<ImageStream>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(reason = error.reason(), %error, "reconcile failed; retrying");
    ctx.metrics.reconcile_error("imagestream", error.reason());
    match error {
        // a conflict: someone wrote the stream meanwhile; the watch brings the new one too
        Error::WriteStatus(kube::Error::Api(s)) if s.is_conflict() => {
            Action::requeue(Duration::from_millis(200))
        }
        _ => Action::requeue(Duration::from_secs(5)),
    }
}

/// Whether a watch event changed what a reflector's store holds.
fn settled<K>(event: &Result<watcher::Event<K>, watcher::Error>) -> bool {
    matches!(
        event,
        Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone)
    )
}

/// Watches the `cluster` ImageConfig and ImageImportConfig (and the `additionalTrustedCA`
/// ConfigMap in `namespace`) and hands every change to `apply`, until it returns false.
pub async fn watch_configuration(
    client: Client,
    namespace: String,
    mut apply: impl FnMut(Settings) -> bool,
) {
    let by_name = || watcher::Config::default().fields(&format!("metadata.name={SINGLETON_NAME}"));
    let (image_store, image_writer) = reflector::store::<ImageConfig>();
    let (import_store, import_writer) = reflector::store::<ImageImportConfig>();
    // the stores change on Apply, Delete and InitDone (objects listed at start are buffered
    // until InitDone: reading the store on InitApply finds it still empty)
    let images = watcher(Api::<ImageConfig>::all(client.clone()), by_name())
        .default_backoff()
        .reflect(image_writer)
        .filter(|e| future::ready(settled(e)))
        .map(|_| ());
    let imports = watcher(Api::<ImageImportConfig>::all(client.clone()), by_name())
        .default_backoff()
        .reflect(import_writer)
        .filter(|e| future::ready(settled(e)))
        .map(|_| ());
    let mut events = std::pin::pin!(futures::stream::select(images, imports));
    while events.next().await.is_some() {
        let image = image_store.state().into_iter().next();
        let import = import_store.state().into_iter().next();
        tracing::debug!(
            image = image.is_some(),
            import = import.is_some(),
            "configuration read"
        );
        let ca = match image
            .as_ref()
            .and_then(|i| i.spec.additional_trusted_ca.as_ref())
        {
            Some(reference) => Api::<ConfigMap>::namespaced(client.clone(), &namespace)
                .get_opt(&reference.name)
                .await
                .ok()
                .flatten()
                .and_then(|cm| cm.data)
                .map(|d| d.into_iter().collect())
                .unwrap_or_default(),
            None => HashMap::new(),
        };
        let next = Settings::new(
            image.as_ref().map(|i| &i.spec),
            import.as_ref().map(|i| &i.spec),
            ca,
        );
        if !apply(next) {
            return;
        }
    }
}

/// The ImageStreamTag `stream:tag` as an Event's related object. Kube's recorder folds
/// Events with the same object, reason and related object into one (a count on the first
/// note), so each tag's Events name their own tag here to stay apart.
pub(crate) fn tag_reference(
    stream: &ImageStream,
    tag: &str,
) -> k8s_openapi::api::core::v1::ObjectReference {
    use kube::Resource;
    k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(crate::api::image_stream_tag::ImageStreamTag::api_version(&()).into()),
        kind: Some(crate::api::image_stream_tag::ImageStreamTag::kind(&()).into()),
        namespace: stream.namespace(),
        name: Some(crate::names::stream_tag(&stream.name_any(), tag)),
        ..Default::default()
    }
}
