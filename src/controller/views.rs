//! Keeps each stream's views (ImageStreamTag, ImageTag, ImageStreamImage, ImageStreamLayers)
//! in step with it: [`sync`] computes them ([`crate::stream::views`]) and writes only those
//! whose hash differs from the stored one; views of tags and images the stream no longer has
//! are deleted, and so are all views of a deleted stream ([`remove_stream`], [`sweep`]).
//!
//! The stored views are cached as metadata only (name, resourceVersion, annotations with the
//! hash), so the cache stays small however large the embedded Images are. A change to a view
//! or to an Image a stream uses brings that stream back ([`Triggers`]); which streams use an
//! Image is remembered from their last sync ([`ImageIndex`]).

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::{Mutex, PoisonError};

use futures::StreamExt;
use futures::channel::mpsc::UnboundedSender;
use futures::future::BoxFuture;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, PartialObjectMeta, PostParams, Preconditions};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Context, scoped};
use crate::api::image::Image;
use crate::api::image_stream::ImageStream;
use crate::api::image_stream_image::ImageStreamImage;
use crate::api::image_stream_layers::ImageStreamLayers;
use crate::api::image_stream_tag::ImageStreamTag;
use crate::api::image_tag::ImageTag;
use crate::names;
use crate::stream::layers::ImageLookup;
use crate::stream::views::{self, Views};

/// Field manager of view writes.
pub const MANAGER: &str = "imagestream-operator-views";

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

/// The stored views, as metadata.
#[derive(Clone)]
pub struct ViewStores {
    tags: ViewCache<ImageStreamTag>,
    image_tags: ViewCache<ImageTag>,
    images: ViewCache<ImageStreamImage>,
    layers: ViewCache<ImageStreamLayers>,
}

impl ViewStores {
    /// Waits until every cache has listed once.
    pub async fn wait_until_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.tags.store.wait_until_ready().await?;
        self.image_tags.store.wait_until_ready().await?;
        self.images.store.wait_until_ready().await?;
        self.layers.store.wait_until_ready().await
    }
}

/// The views of one kind (metadata only), with the names of each stream's views, so a sync
/// reads its stream's views without a pass over every view of the cluster.
pub struct ViewCache<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<PartialObjectMeta<K>>,
    by_stream: Arc<Mutex<ViewNames>>,
}

/// View names by stream (`namespace`, `name`).
type ViewNames = HashMap<(String, String), BTreeSet<String>>;

impl<K: Resource<DynamicType = ()> + Clone + 'static> Clone for ViewCache<K> {
    fn clone(&self) -> Self {
        ViewCache {
            store: self.store.clone(),
            by_stream: self.by_stream.clone(),
        }
    }
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> ViewCache<K> {
    /// The stored views of stream `namespace/stream`.
    fn of_stream(&self, namespace: &str, stream: &str) -> Vec<Arc<PartialObjectMeta<K>>> {
        let names = self
            .by_stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(namespace.to_string(), stream.to_string()))
            .cloned()
            .unwrap_or_default();
        names
            .iter()
            .filter_map(|name| self.store.get(&ObjectRef::new(name).within(namespace)))
            .filter(|v| views::stream_of(&v.metadata) == Some(stream))
            .collect()
    }

    /// The metadata of every stored view of this kind.
    fn metas(&self) -> Vec<kube::api::ObjectMeta> {
        self.store
            .state()
            .iter()
            .map(|v| v.metadata.clone())
            .collect()
    }

    /// Keeps the index in step with one watch event (after the store applied it).
    fn index(&self, event: &watcher::Event<PartialObjectMeta<K>>) {
        let (view, present) = match event {
            watcher::Event::Apply(v) | watcher::Event::InitApply(v) => (v, true),
            watcher::Event::Delete(v) => (v, false),
            watcher::Event::Init | watcher::Event::InitDone => return,
        };
        let (Some(stream), Some(namespace)) = (views::stream_of(&view.metadata), view.namespace())
        else {
            return;
        };
        let mut index = self
            .by_stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = (namespace, stream.to_string());
        if present {
            index.entry(key).or_default().insert(view.name_any());
        } else if let Some(names) = index.get_mut(&key) {
            names.remove(&view.name_any());
            if names.is_empty() {
                index.remove(&key);
            }
        }
    }
}

/// Where changes that concern a stream are sent.
pub type Triggers = UnboundedSender<ObjectRef<ImageStream>>;

/// The view caches and the tasks that fill them; each change of a view after the initial
/// list is sent to `triggers` as its stream.
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
    let (store, writer) = reflector::store::<PartialObjectMeta<K>>();
    let cache = ViewCache {
        store,
        by_stream: Arc::default(),
    };
    let indexer = cache.clone();
    let task = watcher(
        scoped::<PartialObjectMeta<K>>(client, namespace),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .modify(lean_view)
    .reflect(writer)
    .for_each(move |event| {
        if let Ok(event) = &event {
            indexer.index(event);
        }
        if let Ok(watcher::Event::Apply(view) | watcher::Event::Delete(view)) = event
            && let (Some(stream), Some(ns)) = (views::stream_of(&view.metadata), view.namespace())
        {
            let _ = triggers.unbounded_send(ObjectRef::new(stream).within(&ns));
        }
        futures::future::ready(())
    });
    (cache, Box::pin(task))
}

/// What the view caches never read: a stored view is compared by its hash annotation only.
fn lean_view<K: Resource>(view: &mut K) {
    let meta = view.meta_mut();
    meta.managed_fields = None;
    meta.labels = None;
    meta.owner_references = None;
}

/// Which streams show which Images, from their last sync: an Image created or deleted brings
/// exactly those streams back (`imageMissing`, embedded images).
#[derive(Default)]
pub struct ImageIndex {
    by_image: HashMap<String, BTreeSet<(String, String)>>,
    by_stream: HashMap<(String, String), Vec<String>>,
}

impl ImageIndex {
    /// Records the Images (by object name) `stream` shows.
    pub fn set(&mut self, stream: (String, String), images: Vec<String>) {
        self.remove(&stream);
        for image in &images {
            self.by_image
                .entry(image.clone())
                .or_default()
                .insert(stream.clone());
        }
        self.by_stream.insert(stream, images);
    }

    pub fn remove(&mut self, stream: &(String, String)) {
        for image in self.by_stream.remove(stream).unwrap_or_default() {
            if let Some(users) = self.by_image.get_mut(&image) {
                users.remove(stream);
                if users.is_empty() {
                    self.by_image.remove(&image);
                }
            }
        }
    }

    /// The streams (`namespace`, `name`) showing the Image object `image`.
    pub fn streams(&self, image: &str) -> Vec<(String, String)> {
        self.by_image
            .get(image)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
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

/// The resourceVersion at which each stream's views were last brought in step. A scheduled
/// check of an unchanged stream then skips computing its views (most of a check's CPU);
/// anything else that could put them out of step (a view or an Image it shows changed)
/// arrives as a trigger of the stream, which forgets it first.
#[derive(Default)]
pub struct InStep(Mutex<HashMap<(String, String), String>>);

impl InStep {
    fn at(&self, key: &(String, String)) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn record(&self, key: (String, String), resource_version: String) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, resource_version);
    }

    pub fn forget(&self, namespace: &str, name: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(namespace.to_string(), name.to_string()));
    }
}

/// Brings the views of `stream` in step with it.
pub async fn sync(ctx: &Context, stream: &ImageStream) -> Result<(), Error> {
    let namespace = stream.namespace().unwrap_or_default();
    let name = stream.name_any();
    let key = (namespace.clone(), name.clone());
    let version = stream.resource_version();
    if version.is_some() && ctx.views_in_step.at(&key) == version {
        return Ok(());
    }
    let lookup = CachedImages(&ctx.images);
    let desired = Views::of(stream, &lookup);
    let shown: Vec<String> = desired.shown.iter().map(|i| names::image(i)).collect();
    ctx.image_index
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .set((namespace.clone(), name.clone()), shown);

    let stores = &ctx.views;
    let client = &ctx.client;
    put_all(client, &namespace, &name, desired.tags, &stores.tags, false).await?;
    put_all(
        client,
        &namespace,
        &name,
        desired.image_tags,
        &stores.image_tags,
        true,
    )
    .await?;
    put_all(
        client,
        &namespace,
        &name,
        desired.images,
        &stores.images,
        false,
    )
    .await?;
    put_all(
        client,
        &namespace,
        &name,
        vec![desired.layers],
        &stores.layers,
        false,
    )
    .await?;
    if let Some(version) = version {
        ctx.views_in_step.record(key, version);
    }
    Ok(())
}

/// Writes each of `desired` whose hash differs from the stored one, deletes the stored views
/// of the stream not in `desired`. A kind `with_status` has its status written first (a
/// subresource), so the hash on the main object is stored only once both are.
async fn put_all<K>(
    client: &Client,
    namespace: &str,
    stream: &str,
    desired: Vec<K>,
    cache: &ViewCache<K>,
    with_status: bool,
) -> Result<(), Error>
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
        match cache.store.get(&ObjectRef::new(&name).within(namespace)) {
            Some(meta) if views::stored_hash(&meta.metadata) == views::stored_hash(view.meta()) => {
            }
            Some(meta) => {
                views::keep_client_annotations(view.meta_mut(), &meta.metadata);
                view.meta_mut().resource_version = meta.metadata.resource_version.clone();
                if with_status {
                    let stored = api
                        .replace_status(&name, &params, &view)
                        .await
                        .map_err(failed(&name))?;
                    view.meta_mut().resource_version = stored.meta().resource_version.clone();
                }
                api.replace(&name, &params, &view)
                    .await
                    .map_err(failed(&name))?;
            }
            None => {
                let created = api.create(&params, &view).await.map_err(failed(&name))?;
                if with_status {
                    view.meta_mut().resource_version = created.meta().resource_version.clone();
                    if let Err(e) = api.replace_status(&name, &params, &view).await {
                        // without its status the view must not keep the hash: start over
                        let _ = delete(&api, created.meta()).await;
                        return Err(failed(&name)(e));
                    }
                }
            }
        }
    }
    for view in stored {
        let name = view.name_any();
        if wanted.contains(&name) {
            continue;
        }
        delete(&api, &view.metadata).await?;
    }
    Ok(())
}

async fn delete<K>(api: &Api<K>, meta: &kube::api::ObjectMeta) -> Result<(), Error>
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
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_not_found() || s.is_conflict() => Ok(()),
        Err(source) => Err(Error::Delete {
            kind: K::kind(&()).into_owned(),
            name,
            source,
        }),
    }
}

/// Deletes every view of the stream `namespace/name` (it was deleted).
pub async fn remove_stream(ctx: &Context, namespace: &str, name: &str) -> Result<(), Error> {
    ctx.views_in_step.forget(namespace, name);
    ctx.image_index
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&(namespace.to_string(), name.to_string()));
    let client = &ctx.client;
    let stores = &ctx.views;
    put_all::<ImageStreamTag>(client, namespace, name, Vec::new(), &stores.tags, false).await?;
    put_all::<ImageTag>(
        client,
        namespace,
        name,
        Vec::new(),
        &stores.image_tags,
        true,
    )
    .await?;
    put_all::<ImageStreamImage>(client, namespace, name, Vec::new(), &stores.images, false).await?;
    put_all::<ImageStreamLayers>(client, namespace, name, Vec::new(), &stores.layers, false)
        .await?;
    Ok(())
}

/// Deletes the views whose stream does not exist (it was deleted while the operator was not
/// running); returns how many streams' views went.
pub async fn sweep(ctx: &Context) -> Result<usize, Error> {
    let mut orphans = BTreeSet::new();
    let stores = &ctx.views;
    let metas = [
        stores.tags.metas(),
        stores.image_tags.metas(),
        stores.images.metas(),
        stores.layers.metas(),
    ]
    .concat();
    for meta in metas {
        let (Some(stream), Some(namespace)) = (views::stream_of(&meta), meta.namespace.clone())
        else {
            continue;
        };
        if ctx.stream(&namespace, stream).is_none() {
            orphans.insert((namespace, stream.to_string()));
        }
    }
    for (namespace, stream) in &orphans {
        remove_stream(ctx, namespace, stream).await?;
    }
    Ok(orphans.len())
}
