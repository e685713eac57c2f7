//! The controllers and what they share ([`Context`]): the kube client, Events and counters,
//! the process's caches ([`crate::cache`]: one per kind, shared with the webhooks), the import
//! state ([`import_state`]: settings, importer, schedule), the streams being written by
//! requests, the views' state and the tags registry notifications woke.
//!
//! [`run`] wires them: the configuration ([`crate::cache::Caches::settings`]) feeds
//! [`Context::set_settings`] (which rebuilds the importer only when transport settings
//! change), a change of pull secrets re-queues the streams whose tags failed with
//! `Unauthorized`, and the imagestream controller reconciles ([`image_stream::reconcile`]),
//! handing each stream it settled to the views controller ([`views`], a queue of its own; a
//! change of a view, or of an Image a stream shows, brings the views back, not the import);
//! ImageStreamImports ([`image_stream_import`]) and ImageStreamMappings
//! ([`image_stream_mapping`]) are processed beside it, and workloads follow their tags
//! ([`trigger`], fed by the same stream cache).

pub mod image_stream;
pub mod image_stream_import;
pub mod image_stream_mapping;
pub mod import_state;
pub mod metrics;
pub mod pruner;
pub mod trigger;
pub mod views;
pub mod write;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::events::{Recorder, Reporter};
use futures::{FutureExt, StreamExt, future};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::api::image_stream::ImageStream;
use crate::cache::{Caches, Change, StoreImages};
use crate::credentials::Keyring;
use crate::import::contract::{Batch, BatchResult};
use crate::import::engine::KnownImages;
use crate::import::importer::Importer;
use crate::registry::ClientCache;

use crate::stream::image_index::ImageIndex;
pub use crate::stream::settings::Settings;
use import_state::ImportState;
pub use metrics::Metrics;

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
    /// The process's caches: streams, Images, pull secrets, LimitRanges.
    pub caches: Arc<Caches>,
    /// Settings, importer, schedule and the keyrings failures were seen with.
    pub imports: ImportState,
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

/// Client cache size and idle time of the importer.
const CLIENTS: usize = 256;
const CLIENT_IDLE: Duration = Duration::from_secs(30 * 60);

impl Context {
    fn new(
        client: Client,
        metrics: Arc<Metrics>,
        settings: Settings,
        caches: Arc<Caches>,
        views: views::ViewState,
        applying: Arc<InFlight>,
        woken: Arc<crate::receiver::Queue>,
    ) -> Context {
        let reporter = Reporter {
            controller: "imagestream-operator".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            imports: ImportState::new(settings, metrics.clone()),
            metrics,
            caches,
            applying,
            views,
            woken,
        }
    }

    pub fn settings(&self) -> Arc<Settings> {
        self.imports.settings()
    }

    /// Runs one batch with the current settings and the Images that exist, counting each
    /// entry's outcome.
    async fn import(&self, batch: &Batch, keyring: &Keyring, now: jiff::Timestamp) -> BatchResult {
        self.imports
            .import(batch, keyring, &self.known_images(), now)
            .await
    }

    /// Applies new configuration: the import state's, and the views' kinds.
    pub fn set_settings(&self, next: Settings) {
        let views = next.views;
        let replaced = self.imports.set_settings(next);
        if replaced.views != views {
            let streams = self.caches.streams.store().state();
            self.views.kinds_changed(streams.iter().map(AsRef::as_ref));
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
        self.caches.limits(namespace)
    }

    /// The pull secrets of `namespace` as a keyring.
    fn keyring(&self, namespace: &str) -> Keyring {
        self.caches.keyring(namespace)
    }

    fn stream(&self, namespace: &str, name: &str) -> Option<ImageStream> {
        self.caches.stream(namespace, name).map(|s| (*s).clone())
    }

    /// The shared write step, as the imports write.
    fn writer(&self) -> write::Writer<'_> {
        write::Writer::new(&self.client, &self.metrics)
    }

    fn known_images(&self) -> StoreImages {
        self.caches.known_images()
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
        for v in &result.verifications {
            for p in &v.policies {
                self.metrics
                    .verification(&p.policy, p.passed, p.reason, p.cached);
            }
        }
        for l in &result.referrer_lookups {
            self.metrics.referrer_lookup(l.source, l.result);
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
    /// The process's caches, shared with its webhooks; `None`: the controllers make their own.
    pub caches: Option<Arc<Caches>>,
    /// How often the image policies' keys and roots are read again; `None`: every
    /// [`crate::cache::KEYS_REREAD`].
    pub keys_reread: Option<Duration>,
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
            caches: None,
            keys_reread: None,
        }
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
    let caches = options.caches.clone().unwrap_or_else(|| {
        Arc::new(Caches::new(
            client.clone(),
            &crate::cache::Scope {
                watch_namespace: options.watch_namespace.clone(),
                all_limit_ranges: false,
                namespace: options.namespace.clone(),
                keys_reread: options.keys_reread,
            },
        ))
    });
    let streams = caches.streams.store();
    let streams_listed = caches.streams.listed_signal();
    // changes that concern a stream's views (a view, an Image it shows, the stream deleted),
    // and the streams the imagestream controller settled: the views controller's queue
    let (triggers, triggered) = futures::channel::mpsc::unbounded::<ObjectRef<ImageStream>>();
    let (to_views, settled) = futures::channel::mpsc::unbounded::<ObjectRef<ImageStream>>();
    let image_index = Arc::new(Mutex::new(ImageIndex::default()));
    let images_task = {
        let (index, triggers) = (image_index.clone(), triggers.clone());
        caches.images.follow().for_each(move |change| {
            if let watcher::Event::Apply(image) | watcher::Event::Delete(image) = change {
                views::image_changed(&index, &image, &triggers);
            }
            future::ready(())
        })
    };
    let (view_stores, view_tasks) =
        views::watch(&client, options.watch_namespace.as_deref(), &triggers);

    // the trigger controller follows the same stream cache, after it took each change
    let (to_triggers, trigger_events) = futures::channel::mpsc::unbounded();
    let to_triggers = options.image_triggers.then_some(to_triggers);
    // registry notifications: the tags they wake, and the streams to reconcile for them
    let (woken, woken_streams) = crate::receiver::Queue::new(streams.clone());
    let woken = Arc::new(woken);
    let fixed = options.settings.is_some();
    let initial = options.settings.clone().unwrap_or_default();
    let ctx = Arc::new(Context::new(
        client.clone(),
        options.metrics.clone(),
        initial,
        caches.clone(),
        views::ViewState::new(view_stores, image_index, to_views),
        options.in_flight.clone(),
        woken.clone(),
    ));
    let stream_events = caches
        .streams
        .follow()
        .inspect({
            let woken = woken.clone();
            move |change| woken.observe(change)
        })
        .inspect({
            // what the operator kept of a deleted stream goes with it
            let ctx = ctx.clone();
            move |change| {
                if let watcher::Event::Delete(stream) = change
                    && let Some(uid) = stream.uid()
                {
                    ctx.imports.forget(&uid);
                }
            }
        })
        .inspect({
            // a deleted stream's views go
            let triggers = triggers.clone();
            move |change| {
                if let watcher::Event::Delete(stream) = change {
                    let _ = triggers.unbounded_send(ObjectRef::from_obj(stream.as_ref()));
                }
            }
        })
        .inspect(move |change| {
            if let Some(tx) = &to_triggers {
                let _ = match change {
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
        // deletions too: a deleted stream's reconcile finds no object
        .filter_map(|change| future::ready(touched(change)));
    let controller = Controller::for_shared_stream(stream_events, streams.clone());

    // Configuration: every change of the two objects is applied, and every stream is
    // reconciled again afterwards. With fixed settings the sender is kept (unused) so the
    // trigger stream stays open.
    let (config_tx, config_rx) = futures::channel::mpsc::unbounded::<()>();
    let keep_open = fixed.then(|| config_tx.clone());
    let mut configuration = (!fixed).then(|| caches.settings());
    let config_task = configuration.clone().map(|mut settings| {
        let ctx = ctx.clone();
        crate::task::spawn(async move {
            loop {
                let next = settings.borrow_and_update().clone();
                if let Some(next) = next {
                    ctx.set_settings((*next).clone());
                    if config_tx.unbounded_send(()).is_err() {
                        return;
                    }
                }
                if settings.changed().await.is_err() {
                    return;
                }
            }
        })
    });

    let images_task = crate::task::spawn(images_task);
    let view_tasks: Vec<_> = view_tasks.into_iter().map(crate::task::spawn).collect();
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        caches.images.listed().await;
        caches.limit_ranges.listed().await;
        for s in &caches.secrets {
            s.listed().await;
        }
        ctx.views
            .wait_until_ready()
            .await
            .map_err(|e| e.to_string())?;
        // the cluster's configuration is read before the first import
        if let Some(settings) = configuration.as_mut() {
            let read = settings
                .wait_for(Option::is_some)
                .await
                .map_err(|e| e.to_string())?
                .clone();
            // in force before the first pass (the configuration task may not have run yet):
            // a stream's first pass records the image policies it was imported under
            if let Some(read) = read {
                ctx.set_settings((*read).clone());
            }
        }
        Ok::<(), String>(())
    })
    .await;
    const CACHES: &str = "images/secrets/limitranges/views/configuration";
    match ready {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(Error::CacheNotReady(CACHES, e)),
        Err(_) => return Err(Error::CacheNotReady(CACHES, "no answer within 60s".into())),
    }

    // a change of pull secrets: the streams whose tags failed for want of them
    let secret_changes = futures::stream::select_all(caches.secrets.iter().map(|s| s.follow()))
        .filter_map({
            let streams = streams.clone();
            move |change| {
                future::ready(match change {
                    watcher::Event::Apply(secret) | watcher::Event::Delete(secret) => Some(
                        futures::stream::iter(unauthorized_streams(&streams, &secret)),
                    ),
                    _ => None,
                })
            }
        })
        .flatten();
    let controller = controller
        .with_config(controller::Config::default().concurrency(options.concurrency))
        .reconcile_all_on(config_rx)
        .reconcile_on(woken_streams)
        .reconcile_on(secret_changes)
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
    drop(leading);
    if let Some(t) = pruner_task {
        // a run in progress finishes its current write; then the task ends with `shutdown`
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    if let Some(t) = triggers_task {
        // it ends with `shutdown` too; a patch in flight finishes
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    drop(keep_open);
    drop((view_tasks, images_task, config_task));
    Ok(())
}

/// The stream a change touched (applied, listed or deleted).
fn touched(change: Change<ImageStream>) -> Option<Arc<ImageStream>> {
    match change {
        watcher::Event::Apply(s) | watcher::Event::InitApply(s) | watcher::Event::Delete(s) => {
            Some(s)
        }
        watcher::Event::Init | watcher::Event::InitDone => None,
    }
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
