//! The views controller keeps each stream's views (ImageStreamTag, ImageTag, ImageStreamImage,
//! ImageStreamLayers) in step with it, on a queue of its own ([`run`]) so that writing views
//! never delays an import: [`sync`] computes them from the stream as stored
//! ([`crate::stream::views`]) and writes only those whose hash differs from the stored one;
//! views of tags and images the stream no longer has are deleted, and so are all views of a
//! deleted stream ([`remove_stream`], [`sweep`]).
//!
//! What brings a stream here: the imagestream controller settling it (a pass of its that had
//! nothing to write, [`ViewState::settle`]); an Image it shows created or deleted
//! (`imageMissing`, embedded images; which streams show which Image is remembered from their
//! last sync, [`ImageIndex`]); a change to one of its views that the operator did not make;
//! its deletion. A stream is synced only at the version the imagestream controller settled,
//! so views are not written for a state an import is about to change.
//!
//! A tag view the stream no longer wants is deleted only once it has been unwanted for
//! [`DELETE_GRACE`]: a user's DELETE of an ImageStreamTag or ImageTag edits the stream in its
//! admission webhook, and deleting the view at once raced with the apiserver's own delete of
//! it, which then answered the user 404 (`oc delete istag a b c` reported some as not found,
//! oc-compat.md 3.7). Within the grace the user's delete removes the view itself.
//!
//! The stored views are watched as metadata, and only what a sync reads of each is kept
//! ([`ViewIndex`]: resourceVersion, uid, hash, stream, client annotations): a stream of 5
//! tags has 16 views or more, and their full metadata was most of the operator's memory at
//! scale (`benches/cache_memory.rs`, issue 8). The index takes the operator's own writes as
//! they are answered, so their watch events change nothing in it and bring nothing back; an
//! event that adds a view, removes one or changes its hash is someone else's, and brings its
//! stream back ([`Triggers`]).

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender};
use futures::future::BoxFuture;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PartialObjectMeta, PostParams, Preconditions};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Context;
use crate::api::image::Image;
use crate::api::image_stream::ImageStream;
use crate::api::image_stream_image::ImageStreamImage;
use crate::api::image_stream_layers::ImageStreamLayers;
use crate::api::image_stream_tag::ImageStreamTag;
use crate::api::image_tag::ImageTag;
use crate::cache::scoped;
use crate::names;
use crate::stream::image_index::ImageIndex;
use crate::stream::layers::ImageLookup;
use crate::stream::view_index::ViewIndex;
use crate::stream::views::{self, Views};

/// Field manager of view writes.
pub const MANAGER: &str = "imagestream-operator-views";
/// How long a tag view (ImageStreamTag, ImageTag) is left after its tag went, for the user's
/// DELETE that removed the tag to delete it (see the module docs).
pub const DELETE_GRACE: Duration = Duration::from_secs(2);

/// Why a view could not be written; [`Error::reason`] is stable.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing {kind} {name}: {source}")]
    Write {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting {kind} {name}: {source}")]
    Delete {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Write { .. } => "ViewWriteFailed",
            Error::Delete { .. } => "ViewDeleteFailed",
        }
    }

    /// Someone wrote or deleted the view meanwhile (the cache is behind): worth a quick
    /// retry once the cache has caught up.
    pub fn is_stale(&self) -> bool {
        match self {
            Error::Write { source, .. } | Error::Delete { source, .. } => {
                matches!(source, kube::Error::Api(s)
                    if s.is_conflict() || s.is_already_exists() || s.is_not_found())
            }
        }
    }
}

/// The stored views, one index per kind.
#[derive(Clone)]
pub struct ViewStores {
    tags: ViewCache<ImageStreamTag>,
    image_tags: ViewCache<ImageTag>,
    images: ViewCache<ImageStreamImage>,
    layers: ViewCache<ImageStreamLayers>,
}

/// A view watch ended before it listed once.
#[derive(Debug, thiserror::Error)]
#[error("the {0} watch ended before it listed")]
pub struct NotListed(String);

impl ViewStores {
    /// Waits until every index has listed once.
    pub async fn wait_until_ready(&self) -> Result<(), NotListed> {
        self.tags.wait_until_ready().await?;
        self.image_tags.wait_until_ready().await?;
        self.images.wait_until_ready().await?;
        self.layers.wait_until_ready().await
    }
}

/// The resourceVersions of the operator's own view writes whose watch events have not come
/// yet: those events are its own, and bring nothing back. An event that came before the
/// write's answer leaves its entry behind; entries are dropped after [`ECHO_TTL`] and at
/// every relist.
#[derive(Debug, Default)]
struct Echoes(HashMap<Box<str>, Instant>);

/// How long an echo is waited for.
const ECHO_TTL: Duration = Duration::from_secs(60);
/// Echoes kept before old ones are looked for.
const ECHO_SWEEP: usize = 1024;

impl Echoes {
    fn expect(&mut self, resource_version: &str, now: Instant) {
        if self.0.len() >= ECHO_SWEEP {
            self.0
                .retain(|_, at| now.saturating_duration_since(*at) < ECHO_TTL);
        }
        self.0.insert(resource_version.into(), now);
    }

    /// Whether the event at `resource_version` is the echo of an own write (forgotten then).
    fn arrived(&mut self, resource_version: Option<&str>) -> bool {
        resource_version.is_some_and(|rv| self.0.remove(rv).is_some())
    }
}

/// Keeps a [`ViewIndex`] in step with a watch, as a reflector keeps its store: a (re)list is
/// collected aside and replaces the index when it is complete.
struct Indexer {
    index: Arc<Mutex<ViewIndex>>,
    echoes: Arc<Mutex<Echoes>>,
    relist: Option<ViewIndex>,
    listed: tokio::sync::watch::Sender<bool>,
}

impl Indexer {
    /// Applies one event; returns whether someone other than the operator changed what a
    /// sync compares (see [`ViewIndex::put`]): the operator's own writes and deletes are in
    /// the index before their events, and their echoes are known.
    fn apply(&mut self, event: &watcher::Event<ObjectMeta>) -> bool {
        let mut index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        let mut echoes = self.echoes.lock().unwrap_or_else(PoisonError::into_inner);
        match event {
            watcher::Event::Apply(meta) => {
                let own = echoes.arrived(meta.resource_version.as_deref());
                index.put(meta) && !own
            }
            watcher::Event::Delete(meta) => match (&meta.namespace, &meta.name) {
                (Some(namespace), Some(name)) => index.remove(namespace, name),
                _ => false,
            },
            watcher::Event::Init => {
                self.relist = Some(ViewIndex::default());
                echoes.0.clear();
                false
            }
            watcher::Event::InitApply(meta) => {
                self.relist.get_or_insert_default().put(meta);
                false
            }
            watcher::Event::InitDone => {
                *index = self.relist.take().unwrap_or_default();
                self.listed.send_replace(true);
                false
            }
        }
    }
}

/// The views of one kind, as a [`ViewIndex`] fed by a metadata watch.
pub struct ViewCache<K> {
    index: Arc<Mutex<ViewIndex>>,
    echoes: Arc<Mutex<Echoes>>,
    listed: tokio::sync::watch::Receiver<bool>,
    kind: std::marker::PhantomData<fn() -> K>,
}

impl<K> Clone for ViewCache<K> {
    fn clone(&self) -> Self {
        ViewCache {
            index: self.index.clone(),
            echoes: self.echoes.clone(),
            listed: self.listed.clone(),
            kind: std::marker::PhantomData,
        }
    }
}

impl<K: Resource<DynamicType = ()>> ViewCache<K> {
    fn lock(&self) -> std::sync::MutexGuard<'_, ViewIndex> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn wait_until_ready(&self) -> Result<(), NotListed> {
        let mut listed = self.listed.clone();
        listed
            .wait_for(|done| *done)
            .await
            .map(|_| ())
            .map_err(|_| NotListed(K::kind(&()).into_owned()))
    }

    /// The stored view `namespace/name`.
    fn get(&self, namespace: &str, name: &str) -> Option<ObjectMeta> {
        self.lock().get(namespace, name)
    }

    /// The stored views of stream `namespace/stream`.
    fn of_stream(&self, namespace: &str, stream: &str) -> Vec<ObjectMeta> {
        self.lock().of_stream(namespace, stream)
    }

    /// The streams (`namespace`, `name`) the stored views of this kind name.
    fn streams(&self) -> Vec<(String, String)> {
        self.lock().streams()
    }

    /// Takes a view as the apiserver answered the operator's write of it, ahead of its watch
    /// event, which is then known as the write's echo.
    fn written(&self, meta: &ObjectMeta) {
        if let Some(rv) = &meta.resource_version {
            self.echoes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .expect(rv, Instant::now());
        }
        self.lock().put(meta);
    }

    /// Forgets a view the operator deleted, ahead of its watch event.
    fn deleted(&self, meta: &ObjectMeta) {
        if let (Some(namespace), Some(name)) = (&meta.namespace, &meta.name) {
            self.lock().remove(namespace, name);
        }
    }
}

/// Where changes that concern a stream are sent.
pub type Triggers = UnboundedSender<ObjectRef<ImageStream>>;

/// The view indexes and the tasks that fill them; each change of a view after the initial
/// list that the operator did not make is sent to `triggers` as its stream.
pub fn watch(
    client: &Client,
    namespace: Option<&str>,
    triggers: &Triggers,
) -> (ViewStores, Vec<BoxFuture<'static, ()>>) {
    let (tags, tags_task) = watch_kind::<ImageStreamTag>(client, namespace, triggers.clone());
    let (image_tags, image_tags_task) = watch_kind::<ImageTag>(client, namespace, triggers.clone());
    let (images, images_task) = watch_kind::<ImageStreamImage>(client, namespace, triggers.clone());
    let (layers, layers_task) =
        watch_kind::<ImageStreamLayers>(client, namespace, triggers.clone());
    (
        ViewStores {
            tags,
            image_tags,
            images,
            layers,
        },
        vec![tags_task, image_tags_task, images_task, layers_task],
    )
}

fn watch_kind<K>(
    client: &Client,
    namespace: Option<&str>,
    triggers: Triggers,
) -> (ViewCache<K>, BoxFuture<'static, ()>)
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let (listed, listed_rx) = tokio::sync::watch::channel(false);
    let index = Arc::<Mutex<ViewIndex>>::default();
    let echoes = Arc::<Mutex<Echoes>>::default();
    let cache = ViewCache {
        index: index.clone(),
        echoes: echoes.clone(),
        listed: listed_rx,
        kind: std::marker::PhantomData,
    };
    let mut indexer = Indexer {
        index,
        echoes,
        relist: None,
        listed,
    };
    let task = watcher(
        scoped::<PartialObjectMeta<K>>(client, namespace),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .for_each(move |event| {
        let Ok(event) = event else {
            return futures::future::ready(());
        };
        let event = metadata(event);
        if indexer.apply(&event)
            && let watcher::Event::Apply(meta) | watcher::Event::Delete(meta) = &event
            && let (Some(stream), Some(ns)) = (views::stream_of(meta), &meta.namespace)
        {
            let _ = triggers.unbounded_send(ObjectRef::new(stream).within(ns));
        }
        futures::future::ready(())
    });
    (cache, Box::pin(task))
}

/// A watch event of a view as its metadata.
fn metadata<K>(event: watcher::Event<PartialObjectMeta<K>>) -> watcher::Event<ObjectMeta> {
    match event {
        watcher::Event::Apply(v) => watcher::Event::Apply(v.metadata),
        watcher::Event::Delete(v) => watcher::Event::Delete(v.metadata),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(v) => watcher::Event::InitApply(v.metadata),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

/// Sends the streams that show `image` to `triggers`.
pub fn image_changed(index: &Mutex<ImageIndex>, image: &Image, triggers: &Triggers) {
    let streams = index
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .streams(&image.name_any());
    for (namespace, name) in streams {
        let _ = triggers.unbounded_send(ObjectRef::new(&name).within(&namespace));
    }
}

/// Images from the cache, by OpenShift name.
struct CachedImages<'a>(&'a Store<Image>);

impl ImageLookup for CachedImages<'_> {
    fn image(&self, name: &str) -> Option<std::sync::Arc<Image>> {
        self.0.get(&ObjectRef::new(&names::image(name)))
    }
}

/// What the views controller keeps between passes: the stored views, which streams show
/// which Image, the version of each stream the imagestream controller settled and the one
/// its views are in step with, tag views left for their grace, and its queue.
pub struct ViewState {
    stores: ViewStores,
    images: Arc<Mutex<ImageIndex>>,
    settled: Versions,
    in_step: Versions,
    unwanted: Unwanted,
    queue: Triggers,
}

impl ViewState {
    /// `queue` is where [`Self::settle`] sends streams (the views controller's, [`run`]).
    pub fn new(stores: ViewStores, images: Arc<Mutex<ImageIndex>>, queue: Triggers) -> ViewState {
        ViewState {
            stores,
            images,
            settled: Versions::default(),
            in_step: Versions::default(),
            unwanted: Unwanted::default(),
            queue,
        }
    }

    /// The imagestream controller has nothing to write for `stream` as it is: its views may
    /// follow this version. Queued for the views controller when the version is new.
    pub fn settle(&self, stream: &ImageStream) {
        let Some(version) = stream.resource_version() else {
            return;
        };
        let key = (stream.namespace().unwrap_or_default(), stream.name_any());
        if self.settled.record(key, version) {
            let _ = self.queue.unbounded_send(ObjectRef::from_obj(stream));
        }
    }

    /// The view kinds kept changed: every settled stream's views are computed again.
    pub fn kinds_changed<'a>(&self, streams: impl Iterator<Item = &'a ImageStream>) {
        self.in_step.clear();
        for stream in streams {
            let _ = self.queue.unbounded_send(ObjectRef::from_obj(stream));
        }
    }

    /// Waits until every view index has listed once.
    pub async fn wait_until_ready(&self) -> Result<(), NotListed> {
        self.stores.wait_until_ready().await
    }
}

/// A resourceVersion per stream.
#[derive(Default)]
struct Versions(Mutex<HashMap<StreamKey, String>>);

impl Versions {
    fn at(&self, key: &StreamKey) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// Records `resource_version`; returns whether it differs from the one recorded.
    fn record(&self, key: StreamKey, resource_version: String) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, resource_version.clone())
            .is_none_or(|before| before != resource_version)
    }

    fn forget(&self, key: &StreamKey) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    fn clear(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Tag views unwanted since when, by namespace, stream and (kind, name): deleted once
/// [`DELETE_GRACE`] has passed.
#[derive(Default)]
pub struct Unwanted(Mutex<HashMap<StreamKey, UnwantedSince>>);

/// A stream's namespace and name.
type StreamKey = (String, String);
/// Since when each view (kind, name) of a stream has been unwanted.
type UnwantedSince = HashMap<(String, String), Instant>;

impl Unwanted {
    /// Of `unwanted` (names of views of `kind` the stream no longer wants), those due for
    /// deletion at `now`, and how long until the next one is; forgets views wanted again.
    fn due(
        &self,
        stream: &(String, String),
        kind: &str,
        unwanted: &[String],
        now: Instant,
    ) -> (Vec<String>, Option<Duration>) {
        let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = all.entry(stream.clone()).or_default();
        seen.retain(|(k, name), _| k != kind || unwanted.contains(name));
        let mut due = Vec::new();
        let mut wait: Option<Duration> = None;
        for name in unwanted {
            let since = *seen.entry((kind.to_string(), name.clone())).or_insert(now);
            let left = DELETE_GRACE.saturating_sub(now.saturating_duration_since(since));
            if left.is_zero() {
                due.push(name.clone());
            } else {
                wait = Some(wait.map_or(left, |w| w.min(left)));
            }
        }
        if seen.is_empty() {
            all.remove(stream);
        }
        (due, wait)
    }

    fn forget(&self, stream: &(String, String)) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(stream);
    }
}

/// Runs the views controller until `shutdown`: `changes` are streams whose views or shown
/// Images changed (or that were deleted), the state's queue the streams the imagestream
/// controller settled. Starts once the stream cache listed (`listed`), with a sweep of the
/// views of streams deleted while the operator was not running.
pub(super) async fn run(
    ctx: Arc<Context>,
    streams: Store<ImageStream>,
    changes: UnboundedReceiver<ObjectRef<ImageStream>>,
    settled: UnboundedReceiver<ObjectRef<ImageStream>>,
    listed: tokio::sync::watch::Receiver<bool>,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    super::loaded(listed).await;
    // The store's readiness has one waker, the imagestream controller's: it is taken here
    // once it is certain (the listing is in), so this controller's runner finds it kept.
    if streams.wait_until_ready().await.is_err() {
        return;
    }
    match sweep(&ctx).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(streams = n, "removed the views of deleted streams"),
        Err(e) => tracing::warn!(reason = e.reason(), error = %e, "sweeping views"),
    }
    let changes = {
        // a view or an Image of the stream changed: its views must be computed again
        let ctx = ctx.clone();
        changes.inspect(move |stream| {
            let namespace = stream.namespace.clone().unwrap_or_default();
            ctx.views.in_step.forget(&(namespace, stream.name.clone()));
        })
    };
    Controller::for_stream(futures::stream::pending(), streams)
        .with_config(controller::Config::default().concurrency(concurrency))
        .reconcile_on(changes)
        .reconcile_on(settled)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|result| {
            match result {
                // a deleted stream: its views go too
                Err(controller::Error::ObjectNotFound(stream)) => {
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        let namespace = stream.namespace.clone().unwrap_or_default();
                        if let Err(e) = remove_stream(&ctx, &namespace, &stream.name).await {
                            tracing::warn!(reason = e.reason(), error = %e, "removing views");
                        }
                    });
                }
                Err(e) => tracing::debug!(error = %e, "views reconcile"),
                Ok(_) => {}
            }
            futures::future::ready(())
        })
        .await;
}

/// Brings the views of `stream` in step, at the version the imagestream controller settled
/// (another version waits for that controller to settle it).
pub async fn reconcile(stream: Arc<ImageStream>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _in_flight = ctx.metrics.reconciling(CONTROLLER);
    let key = (stream.namespace().unwrap_or_default(), stream.name_any());
    let version = stream.resource_version();
    if version.is_none() || ctx.views.settled.at(&key) != version {
        return Ok(Action::await_change());
    }
    // tag views left for a user's delete: the pass after the wait removes what is left
    Ok(sync(&ctx, &stream)
        .await?
        .map_or_else(Action::await_change, Action::requeue))
}

/// The views controller's name in metrics.
const CONTROLLER: &str = "imagestreamviews";

fn error_policy(_stream: Arc<ImageStream>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(reason = error.reason(), %error, "views reconcile failed; retrying");
    ctx.metrics.reconcile_error(CONTROLLER, error.reason());
    if error.is_stale() {
        // the cache is behind: once it caught up the retry finds the view as it is
        Action::requeue(Duration::from_millis(200))
    } else {
        Action::requeue(Duration::from_secs(5))
    }
}

/// Brings the views of `stream` in step with it. Returns how long until tag views that are
/// no longer wanted may be deleted, when some are left for their grace (the stream is then
/// not recorded as in step, so the pass after that wait deletes them).
pub async fn sync(ctx: &Context, stream: &ImageStream) -> Result<Option<Duration>, Error> {
    let namespace = stream.namespace().unwrap_or_default();
    let name = stream.name_any();
    let key = (namespace.clone(), name.clone());
    let state = &ctx.views;
    let version = stream.resource_version();
    if version.is_some() && state.in_step.at(&key) == version {
        return Ok(None);
    }
    let images = ctx.caches.images.store();
    let lookup = CachedImages(&images);
    let desired = Views::of(stream, &lookup).keep(ctx.settings().views);
    let shown: Vec<String> = desired.shown.iter().map(|i| names::image(i)).collect();
    state
        .images
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .set((namespace.clone(), name.clone()), shown);

    let stores = &state.stores;
    let client = &ctx.client;
    let grace = Some((&state.unwanted, &key));
    let tags_wait = put_all(
        client,
        &namespace,
        &name,
        desired.tags,
        &stores.tags,
        false,
        grace,
    )
    .await?;
    let image_tags_wait = put_all(
        client,
        &namespace,
        &name,
        desired.image_tags,
        &stores.image_tags,
        true,
        grace,
    )
    .await?;
    put_all(
        client,
        &namespace,
        &name,
        desired.images,
        &stores.images,
        false,
        None,
    )
    .await?;
    put_all(
        client,
        &namespace,
        &name,
        desired.layers.into_iter().collect(),
        &stores.layers,
        false,
        None,
    )
    .await?;
    let wait = match (tags_wait, image_tags_wait) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if let (Some(version), None) = (version, wait) {
        state.in_step.record(key, version);
    }
    Ok(wait)
}

/// Writes each of `desired` whose hash differs from the stored one, deletes the stored views
/// of the stream not in `desired` (with `grace`, only those unwanted for [`DELETE_GRACE`];
/// the wait for the others is returned). A kind `with_status` has its status written first
/// (a subresource), so the hash on the main object is stored only once both are. The cache
/// takes each write and delete as the apiserver answered it.
async fn put_all<K>(
    client: &Client,
    namespace: &str,
    stream: &str,
    desired: Vec<K>,
    cache: &ViewCache<K>,
    with_status: bool,
    grace: Option<(&Unwanted, &(String, String))>,
) -> Result<Option<Duration>, Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug,
{
    let api = Api::<K>::namespaced(client.clone(), namespace);
    let kind = K::kind(&());
    let stored = cache.of_stream(namespace, stream);
    let wanted: BTreeSet<String> = desired.iter().map(ResourceExt::name_any).collect();
    let params = PostParams {
        field_manager: Some(MANAGER.into()),
        ..PostParams::default()
    };
    let failed = |name: &str| {
        let name = name.to_string();
        let kind = kind.to_string();
        move |source| Error::Write { kind, name, source }
    };
    for mut view in desired {
        let name = view.name_any();
        match cache.get(namespace, &name) {
            Some(meta) if views::stored_hash(&meta) == views::stored_hash(view.meta()) => {}
            Some(meta) => {
                views::keep_client_annotations(view.meta_mut(), &meta);
                view.meta_mut().resource_version = meta.resource_version.clone();
                if with_status {
                    let stored = api
                        .replace_status(&name, &params, &view)
                        .await
                        .map_err(failed(&name))?;
                    cache.written(stored.meta());
                    view.meta_mut().resource_version = stored.meta().resource_version.clone();
                }
                let stored = api
                    .replace(&name, &params, &view)
                    .await
                    .map_err(failed(&name))?;
                cache.written(stored.meta());
            }
            None => {
                let created = api.create(&params, &view).await.map_err(failed(&name))?;
                cache.written(created.meta());
                if with_status {
                    view.meta_mut().resource_version = created.meta().resource_version.clone();
                    match api.replace_status(&name, &params, &view).await {
                        Ok(stored) => cache.written(stored.meta()),
                        Err(e) => {
                            // without its status the view must not keep the hash: start over
                            let _ = delete(&api, cache, created.meta()).await;
                            return Err(failed(&name)(e));
                        }
                    }
                }
            }
        }
    }
    let unwanted: Vec<ObjectMeta> = stored
        .into_iter()
        .filter(|meta| !meta.name.as_ref().is_some_and(|name| wanted.contains(name)))
        .collect();
    let (due, wait) = match grace {
        Some((unwanted_since, key)) => {
            let names: Vec<String> = unwanted.iter().filter_map(|m| m.name.clone()).collect();
            let (due, wait) = unwanted_since.due(key, &kind, &names, Instant::now());
            (Some(due), wait)
        }
        None => (None, None),
    };
    for meta in unwanted {
        let is_due = due
            .as_ref()
            .is_none_or(|due| meta.name.as_ref().is_some_and(|n| due.contains(n)));
        if is_due {
            delete(&api, cache, &meta).await?;
        }
    }
    Ok(wait)
}

/// Deletes the view `meta` names if it is still the same object (its uid); the cache forgets
/// it once it is gone.
async fn delete<K>(api: &Api<K>, cache: &ViewCache<K>, meta: &ObjectMeta) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let name = meta.name.clone().unwrap_or_default();
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: meta.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => {
            cache.deleted(meta);
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.is_not_found() => {
            cache.deleted(meta);
            Ok(())
        }
        // another object of that name now: not the operator's to delete
        Err(kube::Error::Api(s)) if s.is_conflict() => Ok(()),
        Err(source) => Err(Error::Delete {
            kind: K::kind(&()).into_owned(),
            name,
            source,
        }),
    }
}

/// Deletes every view of the stream `namespace/name` (it was deleted).
pub async fn remove_stream(ctx: &Context, namespace: &str, name: &str) -> Result<(), Error> {
    let state = &ctx.views;
    let key = (namespace.to_string(), name.to_string());
    state.in_step.forget(&key);
    state.settled.forget(&key);
    state.unwanted.forget(&key);
    state
        .images
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&key);
    let client = &ctx.client;
    let stores = &state.stores;
    // nothing is left for a grace: the stream is gone
    put_all::<ImageStreamTag>(
        client,
        namespace,
        name,
        Vec::new(),
        &stores.tags,
        false,
        None,
    )
    .await?;
    put_all::<ImageTag>(
        client,
        namespace,
        name,
        Vec::new(),
        &stores.image_tags,
        true,
        None,
    )
    .await?;
    put_all::<ImageStreamImage>(
        client,
        namespace,
        name,
        Vec::new(),
        &stores.images,
        false,
        None,
    )
    .await?;
    put_all::<ImageStreamLayers>(
        client,
        namespace,
        name,
        Vec::new(),
        &stores.layers,
        false,
        None,
    )
    .await?;
    Ok(())
}

/// Deletes the views whose stream does not exist (it was deleted while the operator was not
/// running); returns how many streams' views went.
pub async fn sweep(ctx: &Context) -> Result<usize, Error> {
    let stores = &ctx.views.stores;
    let orphans: BTreeSet<(String, String)> = [
        stores.tags.streams(),
        stores.image_tags.streams(),
        stores.images.streams(),
        stores.layers.streams(),
    ]
    .into_iter()
    .flatten()
    .filter(|(namespace, stream)| ctx.stream(namespace, stream).is_none())
    .collect();
    for (namespace, stream) in &orphans {
        remove_stream(ctx, namespace, stream).await?;
    }
    Ok(orphans.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::view_index::tests::{at, meta};

    /// A sync reads the name, namespace, resourceVersion, uid, stream, hash and client
    /// annotations of a stored view, and nothing else is kept.
    #[test]
    fn unwanted_tag_views_wait_for_their_grace() {
        let unwanted = Unwanted::default();
        let stream = ("ns".to_string(), "s".to_string());
        let t0 = Instant::now();
        let names = vec!["s.a".to_string(), "s.b".to_string()];
        let (due, wait) = unwanted.due(&stream, "ImageStreamTag", &names, t0);
        assert!(due.is_empty());
        assert_eq!(wait, Some(DELETE_GRACE));
        // b is wanted again, c goes later: only a is due after the grace
        let later = t0 + DELETE_GRACE;
        let names = vec!["s.a".to_string(), "s.c".to_string()];
        let (due, wait) = unwanted.due(&stream, "ImageStreamTag", &names, later);
        assert_eq!(due, ["s.a"]);
        assert_eq!(wait, Some(DELETE_GRACE));
        // kinds are apart; nothing unwanted forgets the stream
        let (due, _) = unwanted.due(&stream, "ImageTag", &["s.a".to_string()], later);
        assert!(due.is_empty());
        unwanted.due(&stream, "ImageStreamTag", &[], later);
        unwanted.due(&stream, "ImageTag", &[], later);
        assert!(unwanted.0.lock().unwrap().is_empty());
    }

    /// The operator's writes and deletes are in the index before their watch events, which
    /// then bring nothing back; changes someone else makes do (issue 17: a view write no
    /// longer brings its stream back for a pass that writes nothing).
    #[test]
    fn only_changes_the_operator_did_not_make_bring_a_stream_back() {
        let (listed, ready) = tokio::sync::watch::channel(false);
        let mut indexer = Indexer {
            index: Arc::default(),
            echoes: Arc::default(),
            relist: None,
            listed,
        };
        let cache = ViewCache::<ImageTag> {
            index: indexer.index.clone(),
            echoes: indexer.echoes.clone(),
            listed: ready,
            kind: std::marker::PhantomData,
        };
        indexer.apply(&watcher::Event::Init);
        indexer.apply(&watcher::Event::InitDone);

        // created, then its status written (an ImageTag): both answered before the events
        let created = meta("ns", "s.a", Some("s"), "1");
        let with_status = at(created.clone(), "2");
        cache.written(&created);
        cache.written(&with_status);
        assert!(!indexer.apply(&watcher::Event::Apply(created.clone())));
        assert!(!indexer.apply(&watcher::Event::Apply(with_status)));
        // updated: the status first (the old hash), then the object (the new one); the
        // status's event arrives after both answers
        let status = at(created, "3");
        let updated = meta("ns", "s.a", Some("s"), "4");
        cache.written(&status);
        cache.written(&updated);
        assert!(!indexer.apply(&watcher::Event::Apply(status)));
        assert!(!indexer.apply(&watcher::Event::Apply(updated)));
        assert_eq!(
            views::stored_hash(&cache.get("ns", "s.a").unwrap()),
            Some("hash-4")
        );
        assert!(
            indexer.echoes.lock().unwrap().0.is_empty(),
            "every echo came"
        );

        // someone else changes its hash: the stream comes back
        let theirs = at(meta("ns", "s.a", Some("s"), "9"), "5");
        assert!(indexer.apply(&watcher::Event::Apply(theirs.clone())));
        // the operator deletes it: nothing; someone creates and deletes another: twice
        cache.deleted(&theirs);
        assert!(!indexer.apply(&watcher::Event::Delete(theirs)));
        let other = meta("ns", "s.b", Some("s"), "6");
        assert!(indexer.apply(&watcher::Event::Apply(other.clone())));
        assert!(indexer.apply(&watcher::Event::Delete(other)));

        // an event ahead of its write's answer comes back once; a relist drops its echo
        let early = meta("ns", "s.c", Some("s"), "7");
        assert!(indexer.apply(&watcher::Event::Apply(early.clone())));
        cache.written(&early);
        assert_eq!(indexer.echoes.lock().unwrap().0.len(), 1);
        indexer.apply(&watcher::Event::Init);
        assert!(indexer.echoes.lock().unwrap().0.is_empty());
    }

    #[test]
    fn echoes_not_seen_for_a_minute_are_dropped() {
        let mut echoes = Echoes::default();
        let t0 = Instant::now();
        for n in 0..ECHO_SWEEP {
            echoes.expect(&n.to_string(), t0);
        }
        echoes.expect("late", t0 + ECHO_TTL - Duration::from_secs(1));
        assert_eq!(echoes.0.len(), ECHO_SWEEP + 1, "none old enough yet");
        echoes.expect("later", t0 + ECHO_TTL);
        assert_eq!(echoes.0.len(), 2, "{:?}", echoes.0.keys());
        assert!(echoes.arrived(Some("later")));
        assert!(!echoes.arrived(Some("later")), "once");
        assert!(!echoes.arrived(None));
    }

    #[test]
    fn a_stream_is_settled_once_per_version() {
        let versions = Versions::default();
        let key = ("ns".to_string(), "s".to_string());
        assert!(versions.record(key.clone(), "1".into()));
        assert!(!versions.record(key.clone(), "1".into()));
        assert!(versions.record(key.clone(), "2".into()));
        assert_eq!(versions.at(&key).as_deref(), Some("2"));
        versions.forget(&key);
        assert_eq!(versions.at(&key), None);
        assert!(versions.record(key, "2".into()), "new after forgetting");
    }

    /// A (re)list replaces the index once complete, as a reflector replaces its store: views
    /// deleted while the watch was down go, and the index is ready after the first list.
    #[test]
    fn a_relist_replaces_the_index() {
        let (listed, ready) = tokio::sync::watch::channel(false);
        let mut indexer = Indexer {
            index: Arc::default(),
            echoes: Arc::default(),
            relist: None,
            listed,
        };
        let index = indexer.index.clone();
        // every view of these tests is of stream x in namespace a
        let all = |index: &Arc<Mutex<ViewIndex>>| {
            let mut all: Vec<(String, String)> = index
                .lock()
                .unwrap()
                .of_stream("a", "x")
                .into_iter()
                .filter_map(|m| Some((m.namespace?, m.name?)))
                .collect();
            all.sort();
            all
        };
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());

        indexer.apply(&watcher::Event::Init);
        indexer.apply(&watcher::Event::InitApply(meta("a", "x.1", Some("x"), "1")));
        indexer.apply(&watcher::Event::InitApply(meta("a", "x.2", Some("x"), "2")));
        assert!(all(&index).is_empty());
        assert!(!*ready.borrow());
        indexer.apply(&watcher::Event::InitDone);
        assert!(*ready.borrow());
        assert_eq!(all(&index), [pair("a", "x.1"), pair("a", "x.2")]);

        indexer.apply(&watcher::Event::Apply(meta("a", "x.3", Some("x"), "3")));
        indexer.apply(&watcher::Event::Delete(meta("a", "x.1", Some("x"), "1")));
        assert_eq!(all(&index), [pair("a", "x.2"), pair("a", "x.3")]);

        // the watch restarts: x.2 went meanwhile, x.3 changed
        indexer.apply(&watcher::Event::Init);
        indexer.apply(&watcher::Event::InitApply(meta("a", "x.3", Some("x"), "9")));
        assert_eq!(all(&index), [pair("a", "x.2"), pair("a", "x.3")]);
        indexer.apply(&watcher::Event::InitDone);
        assert_eq!(all(&index), [pair("a", "x.3")]);
        let got = index.lock().unwrap().of_stream("a", "x");
        assert_eq!(got[0].resource_version.as_deref(), Some("9"));
    }
}
