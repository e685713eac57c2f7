//! One cache per kind for the whole process, shared by every controller and the webhooks that
//! read it (issue 17 item 5): one watch of each kind (ImageStreams, Images, each pull-secret
//! type, LimitRanges, the `cluster` ImageConfig and ImageImportConfig), its reflector store,
//! and its events handed on to each part that follows the kind ([`Shared::follow`]: the
//! controllers' queues, the webhooks' indexes), as linkerd's policy controller fans one watch
//! out to several indexes. Before, a stream was watched by up to four parts of one replica and
//! the configuration by three.
//!
//! A part that follows a kind after its watch listed is handed the store first, as a listing,
//! so it misses nothing and needs no watch of its own: a replica that becomes leader starts
//! its controllers from the streams its webhooks already hold.
//!
//! A kind's watch starts when a part first reads or follows it, so a replica that only serves
//! the webhooks keeps no pull secrets, and one that leads keeps each kind once for its
//! controllers and webhooks alike. Objects are kept without `managedFields` ([`lean`]).
//! The operator's [`Settings`] are computed once for everyone ([`Caches::settings`]) on every
//! change of either configuration object (reading the `additionalTrustedCA` ConfigMap then).
//!
//! A kind the apiserver does not serve (a CRD a `helm upgrade` did not install) is listed as
//! empty, with a warning, and listed for real once it is served: an operator newer than its
//! CRDs runs without what the missing kind configures instead of waiting for it forever.
//!
//! The views are not here: only the views controller reads them, through indexes of what it
//! compares (`controller::views`).

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, future};
use k8s_openapi::api::core::v1::{ConfigMap, LimitRange, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::api::image::Image;
use crate::api::image_stream::ImageStream;
use crate::config::{ImageConfig, ImageImportConfig, SINGLETON_NAME};
use crate::credentials::Keyring;
use crate::import::engine::KnownImages;
use crate::stream::limits::Limits;
use crate::stream::settings::Settings;
use crate::trust::policy::KeyReference;
use crate::trust::resolve::SourceRef;
use crate::trust::{ImagePolicy, ImagePolicyStatus, ResolvedPolicy};

/// A change of a kind as its followers see it: the watch's event, the object shared.
pub type Change<K> = watcher::Event<Arc<K>>;

/// Pull-secret types the keyring reads (a field selector picks one type per watch).
pub const SECRET_TYPES: [&str; 2] = ["kubernetes.io/dockerconfigjson", "kubernetes.io/dockercfg"];

/// What the caches watch.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Streams, pull secrets (and LimitRanges unless `all_limit_ranges`) of this namespace
    /// only; `None` watches the whole cluster.
    pub watch_namespace: Option<String>,
    /// LimitRanges of every namespace (the admission webhook judges writes everywhere).
    pub all_limit_ranges: bool,
    /// Namespace of the `additionalTrustedCA` ConfigMap.
    pub namespace: String,
    /// How often the policies' keys and roots are read again; `None`: [`KEYS_REREAD`].
    pub keys_reread: Option<Duration>,
}

/// The caches of the operator's process.
pub struct Caches {
    pub streams: Shared<ImageStream>,
    pub images: Shared<Image>,
    /// One per [`SECRET_TYPES`] entry.
    pub secrets: [Shared<Secret>; 2],
    pub limit_ranges: Shared<LimitRange>,
    pub image_config: Shared<ImageConfig>,
    pub import_config: Shared<ImageImportConfig>,
    /// The image policies (issue 20), resolved into the settings.
    pub policies: Shared<ImagePolicy>,
    client: Client,
    namespace: String,
    keys_reread: Duration,
    /// The settings' receiver and the task that computes them, once asked for.
    settings: Mutex<Option<SettingsFeed>>,
}

type SettingsFeed = (
    watch::Receiver<Option<Arc<Settings>>>,
    crate::task::Owned<()>,
);

impl Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Caches {
    /// The caches of `scope`; no watch starts before a part reads a kind.
    pub fn new(client: Client, scope: &Scope) -> Caches {
        let namespace = scope.watch_namespace.as_deref();
        let by_name =
            || watcher::Config::default().fields(&format!("metadata.name={SINGLETON_NAME}"));
        let secrets = SECRET_TYPES.map(|type_| {
            Shared::new(
                scoped::<Secret>(&client, namespace),
                watcher::Config::default().fields(&format!("type={type_}")),
            )
        });
        let limit_ranges_namespace = if scope.all_limit_ranges {
            None
        } else {
            namespace
        };
        Caches {
            // deletions reach the followers too: a deleted stream's views go
            streams: Shared::new(
                scoped::<ImageStream>(&client, namespace),
                watcher::Config::default().any_semantic(),
            ),
            images: Shared::new(Api::all(client.clone()), watcher::Config::default()),
            secrets,
            limit_ranges: Shared::new(
                scoped::<LimitRange>(&client, limit_ranges_namespace),
                watcher::Config::default(),
            ),
            image_config: Shared::new(Api::all(client.clone()), by_name()),
            import_config: Shared::new(Api::all(client.clone()), by_name()),
            policies: Shared::new(Api::all(client.clone()), watcher::Config::default()),
            client,
            namespace: scope.namespace.clone(),
            keys_reread: scope.keys_reread.unwrap_or(KEYS_REREAD),
            settings: Mutex::new(None),
        }
    }

    /// The operator's settings from the configuration objects and the image policies:
    /// `None` until all three listed, then a new value on every change of any.
    pub fn settings(&self) -> watch::Receiver<Option<Arc<Settings>>> {
        let mut settings = self.settings.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((rx, _)) = settings.as_ref() {
            return rx.clone();
        }
        let (tx, rx) = watch::channel(None);
        let task = crate::task::spawn(follow_configuration(
            self.client.clone(),
            self.namespace.clone(),
            self.image_config.clone(),
            self.import_config.clone(),
            self.policies.clone(),
            self.keys_reread,
            tx,
        ));
        *settings = Some((rx.clone(), task));
        rx
    }

    /// The stream `namespace/name`.
    pub fn stream(&self, namespace: &str, name: &str) -> Option<Arc<ImageStream>> {
        self.streams
            .store()
            .get(&ObjectRef::new(name).within(namespace))
    }

    /// The Image named `name` (`sha256:…`).
    pub fn image(&self, name: &str) -> Option<Arc<Image>> {
        self.images.store().get(&ObjectRef::new(name))
    }

    /// The pull secrets of `namespace` as a keyring.
    pub fn keyring(&self, namespace: &str) -> Keyring {
        let secrets: Vec<Arc<Secret>> = self
            .secrets
            .iter()
            .flat_map(|s| s.store().state())
            .filter(|s| s.namespace().as_deref() == Some(namespace))
            .collect();
        Keyring::from_secrets(secrets.iter().map(AsRef::as_ref))
    }

    /// The LimitRanges of `namespace`.
    pub fn limit_ranges_of(&self, namespace: &str) -> Vec<Arc<LimitRange>> {
        self.limit_ranges
            .store()
            .state()
            .into_iter()
            .filter(|r| r.namespace().as_deref() == Some(namespace))
            .collect()
    }

    /// The LimitRange limits on the streams of `namespace` (semantics 7.8).
    pub fn limits(&self, namespace: &str) -> Limits {
        let ranges = self.limit_ranges_of(namespace);
        Limits::from_ranges(ranges.iter().map(AsRef::as_ref))
    }

    /// The Images that exist, for the importer.
    pub fn known_images(&self) -> StoreImages {
        StoreImages(self.images.store())
    }
}

/// The Images that exist, from the cache.
pub struct StoreImages(Store<Image>);

impl KnownImages for StoreImages {
    fn is_list(&self, digest: &str) -> Option<bool> {
        self.0
            .get(&ObjectRef::new(&crate::names::image(digest)))
            .map(|i| i.spec.is_manifest_list())
    }
}

/// One kind: its watch (started on first use), store, listing and followers.
pub struct Shared<K: kube::Resource<DynamicType = ()> + Clone + 'static> {
    inner: Arc<Inner<K>>,
}

impl<K: kube::Resource<DynamicType = ()> + Clone + 'static> Clone for Shared<K> {
    fn clone(&self) -> Self {
        Shared {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<K: kube::Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    listed: watch::Receiver<bool>,
    fanout: Arc<Mutex<Fanout<K>>>,
    /// The watch until it starts, then its task (aborted with the last handle).
    watch: Mutex<Watch>,
}

struct Watch {
    waiting: Option<BoxFuture<'static, ()>>,
    /// Kept only to be aborted with the last handle.
    _running: Option<crate::task::Owned<()>>,
}

impl<K> Shared<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// A cache of `api`'s objects (watched with `config` once it is first read).
    pub fn new(api: Api<K>, config: watcher::Config) -> Shared<K> {
        let (store, writer) = reflector::store::<K>();
        let (listed_tx, listed) = watch::channel(false);
        let fanout = Arc::new(Mutex::new(Fanout::default()));
        let task = {
            let (fanout, store) = (fanout.clone(), store.clone());
            watcher(api, config)
                .default_backoff()
                .modify(lean)
                .reflect(writer)
                .for_each(move |event| {
                    // the store took the event; its followers get it in the same order
                    let event = match event {
                        Ok(event) => event,
                        // a kind the apiserver does not serve (its CRD is not installed, as
                        // after a `helm upgrade`, which leaves CRDs as they were) lists as
                        // empty; the watch keeps trying and lists it once it is served
                        Err(e) if unserved(&e) && !*listed_tx.borrow() => {
                            tracing::warn!(
                                kind = %K::kind(&()),
                                error = %e,
                                "the apiserver does not serve this kind (is its CRD installed?): \
                                 none until it does"
                            );
                            listed_tx.send_replace(true);
                            let mut fanout = fanout.lock().unwrap_or_else(PoisonError::into_inner);
                            fanout.send(&watcher::Event::Init, || store.state());
                            fanout.send(&watcher::Event::InitDone, || store.state());
                            return future::ready(());
                        }
                        Err(_) => return future::ready(()),
                    };
                    // listed before the followers hear of it: one that checks `is_listed` on
                    // this InitDone must find it true
                    if matches!(event, watcher::Event::InitDone) {
                        listed_tx.send_replace(true);
                    }
                    let mut fanout = fanout.lock().unwrap_or_else(PoisonError::into_inner);
                    fanout.send(&shared(event), || store.state());
                    future::ready(())
                })
                .boxed()
        };
        Shared {
            inner: Arc::new(Inner {
                store,
                listed,
                fanout,
                watch: Mutex::new(Watch {
                    waiting: Some(task),
                    _running: None,
                }),
            }),
        }
    }
}

impl<K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static> Shared<K> {
    /// Starts the watch unless it runs.
    fn started(&self) {
        let mut watch = self
            .inner
            .watch
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = watch.waiting.take() {
            watch._running = Some(crate::task::spawn(task));
        }
    }

    /// The store (empty until the watch listed).
    pub fn store(&self) -> Store<K> {
        self.started();
        self.inner.store.clone()
    }

    /// Returns once the watch has listed. Not `Store::wait_until_ready`: its signal keeps one
    /// waker, so a second waiter would take the wake-up from a controller's own runner.
    pub async fn listed(&self) {
        self.started();
        let mut listed = self.inner.listed.clone();
        let _ = listed.wait_for(|done| *done).await;
    }

    /// A receiver that turns `true` once the watch has listed.
    pub fn listed_signal(&self) -> watch::Receiver<bool> {
        self.started();
        self.inner.listed.clone()
    }

    /// Whether the watch has listed.
    pub fn is_listed(&self) -> bool {
        *self.inner.listed.borrow()
    }

    /// The kind's changes from now on, after the store as it is (a listing) when it listed.
    pub fn follow(&self) -> UnboundedReceiver<Change<K>> {
        self.started();
        let store = &self.inner.store;
        self.inner
            .fanout
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .follow(|| store.state())
    }
}

/// The watch's listing failed because the apiserver does not serve the kind (404).
fn unserved(error: &watcher::Error) -> bool {
    matches!(error, watcher::Error::InitialListFailed(kube::Error::Api(s)) if s.code == 404)
}

fn shared<K>(event: watcher::Event<K>) -> Change<K> {
    match event {
        watcher::Event::Apply(o) => watcher::Event::Apply(Arc::new(o)),
        watcher::Event::Delete(o) => watcher::Event::Delete(Arc::new(o)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(o) => watcher::Event::InitApply(Arc::new(o)),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

/// The followers of one kind, and where its listing stands. A follower that joins while a
/// listing is under way gets it whole, from the store, when it is done; one that joins
/// between listings gets the store as a listing at once.
struct Fanout<K> {
    followers: Vec<Follower<K>>,
    /// A listing has completed.
    listed: bool,
    /// A (re)listing is under way.
    listing: bool,
}

impl<K> Default for Fanout<K> {
    fn default() -> Self {
        Fanout {
            followers: Vec::new(),
            listed: false,
            listing: false,
        }
    }
}

struct Follower<K> {
    tx: UnboundedSender<Change<K>>,
    /// Saw the start of the listing under way (or joined between listings).
    from_start: bool,
}

impl<K> Fanout<K> {
    /// Hands `event` on (the store has taken it: `snapshot` is the store).
    fn send(&mut self, event: &Change<K>, snapshot: impl Fn() -> Vec<Arc<K>>) {
        self.followers.retain(|f| !f.tx.is_closed());
        match event {
            watcher::Event::Init => {
                self.listing = true;
                for f in &mut self.followers {
                    f.from_start = true;
                    let _ = f.tx.unbounded_send(watcher::Event::Init);
                }
            }
            watcher::Event::InitDone => {
                self.listing = false;
                self.listed = true;
                // a follower that came during the listing has seen none of it: it gets the
                // listing whole, from the store
                let mut objects = None;
                for f in &mut self.followers {
                    if f.from_start {
                        let _ = f.tx.unbounded_send(watcher::Event::InitDone);
                    } else {
                        replay(&f.tx, objects.get_or_insert_with(&snapshot));
                        f.from_start = true;
                    }
                }
            }
            watcher::Event::InitApply(_) => {
                for f in self.followers.iter().filter(|f| f.from_start) {
                    let _ = f.tx.unbounded_send(event.clone());
                }
            }
            watcher::Event::Apply(_) | watcher::Event::Delete(_) => {
                for f in &self.followers {
                    let _ = f.tx.unbounded_send(event.clone());
                }
            }
        }
    }

    fn follow(&mut self, snapshot: impl Fn() -> Vec<Arc<K>>) -> UnboundedReceiver<Change<K>> {
        let (tx, rx) = unbounded();
        let current = self.listed && !self.listing;
        if current {
            replay(&tx, &snapshot());
        }
        self.followers.push(Follower {
            tx,
            from_start: current,
        });
        rx
    }
}

/// `objects` as a whole listing.
fn replay<K>(tx: &UnboundedSender<Change<K>>, objects: &[Arc<K>]) {
    let _ = tx.unbounded_send(watcher::Event::Init);
    for o in objects {
        let _ = tx.unbounded_send(watcher::Event::InitApply(o.clone()));
    }
    let _ = tx.unbounded_send(watcher::Event::InitDone);
}

/// Whether a change changed what a store holds (objects listed are buffered by the reflector
/// until `InitDone`: reading the store on `InitApply` finds the old listing).
pub fn changed<K>(change: &Change<K>) -> bool {
    matches!(
        change,
        watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone
    )
}

/// How often the keys and trusted roots the policies name are read again: a Secret or
/// ConfigMap holding one is not watched (that would be every Secret of the cluster).
pub const KEYS_REREAD: Duration = Duration::from_secs(60);

/// Recomputes the settings on every change of the two configuration objects or a policy
/// once all listed (reading the `additionalTrustedCA` ConfigMap in `namespace`, and the keys
/// and trusted roots the policies name, then), and when a key or root the policies read
/// changed (read again every `keys_reread`, by default [`KEYS_REREAD`]).
async fn follow_configuration(
    client: Client,
    namespace: String,
    image: Shared<ImageConfig>,
    import: Shared<ImageImportConfig>,
    policy: Shared<ImagePolicy>,
    keys_reread: Duration,
    settings: watch::Sender<Option<Arc<Settings>>>,
) {
    let images = image
        .follow()
        .filter(|e| future::ready(changed(e)))
        .map(|_| ());
    let imports = import
        .follow()
        .filter(|e| future::ready(changed(e)))
        .map(|_| ());
    let policies = policy
        .follow()
        .filter(|e| future::ready(changed(e)))
        .map(|_| ());
    let mut events = std::pin::pin!(futures::stream::select(
        futures::stream::select(images, imports),
        policies
    ));
    let mut reread =
        tokio::time::interval_at(tokio::time::Instant::now() + keys_reread, keys_reread);
    reread.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // the policies' names and materials of the settings last sent
    let mut sent: Option<Vec<(String, String)>> = None;
    loop {
        let keys_only = tokio::select! {
            event = events.next() => match event {
                Some(()) => false,
                None => return,
            },
            _ = reread.tick() => true,
        };
        if !(image.is_listed() && import.is_listed() && policy.is_listed()) {
            continue;
        }
        let policies = policy.store().state();
        if keys_only && policies.is_empty() {
            continue;
        }
        let resolved = resolve_policies(&client, &policies).await;
        let materials: Vec<(String, String)> = resolved
            .iter()
            .map(|r| (r.name.clone(), r.material.clone()))
            .collect();
        if keys_only && sent.as_ref() == Some(&materials) {
            continue;
        }
        let (image, import) = (
            image.store().state().into_iter().next(),
            import.store().state().into_iter().next(),
        );
        tracing::debug!(
            image = image.is_some(),
            import = import.is_some(),
            keys_only,
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
        let mut next = Settings::new(
            image.as_ref().map(|i| &i.spec),
            import.as_ref().map(|i| &i.spec),
            ca,
        );
        next.import.policies = Arc::new(resolved.clone());
        settings.send_replace(Some(Arc::new(next)));
        sent = Some(materials);
        // after the imports have them: Ready says a policy is in force
        report_policies(&client, &policies, &resolved).await;
    }
}

/// Writes each policy's `Ready` condition where it changed (every replica computes the same,
/// so a second writer finds nothing to change).
async fn report_policies(
    client: &Client,
    policies: &[Arc<ImagePolicy>],
    resolved: &[ResolvedPolicy],
) {
    let api = Api::<ImagePolicy>::all(client.clone());
    for policy in policies {
        let name = policy.name_any();
        let Some(resolved) = resolved.iter().find(|r| r.name == name) else {
            continue;
        };
        let (status, reason, message) = resolved.ready();
        let current = policy.status.clone().unwrap_or_default();
        let previous = current.conditions.iter().find(|c| c.type_ == "Ready");
        let generation = policy.metadata.generation;
        let unchanged = current.observed_generation == generation
            && previous
                .is_some_and(|c| c.status == status && c.reason == reason && c.message == message);
        if unchanged {
            continue;
        }
        let transition = match previous {
            Some(c) if c.status == status => c.last_transition_time.clone(),
            _ => Time(jiff::Timestamp::now()),
        };
        let next = ImagePolicyStatus {
            observed_generation: generation,
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: status.into(),
                reason: reason.into(),
                message,
                observed_generation: generation,
                last_transition_time: transition,
            }],
        };
        let patch = serde_json::json!({"status": next});
        if let Err(e) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!(policy = %name, error = %e, "writing the ImagePolicy status failed");
        }
    }
}

/// The policies with the keys and trusted roots they name read from their Secrets and
/// ConfigMaps (a missing one leaves its authority failing, with the reason in its message).
async fn resolve_policies(client: &Client, policies: &[Arc<ImagePolicy>]) -> Vec<ResolvedPolicy> {
    let mut read: HashMap<(bool, KeyReference), Result<Vec<u8>, String>> = HashMap::new();
    for policy in policies {
        for source in crate::trust::resolve::sources(policy) {
            let (secret, reference) = match source {
                SourceRef::Secret(r) => (true, r),
                SourceRef::ConfigMap(r) => (false, r),
            };
            if read.contains_key(&(secret, reference.clone())) {
                continue;
            }
            let bytes = read_key(client, secret, reference).await;
            read.insert((secret, reference.clone()), bytes);
        }
    }
    let mut resolved: Vec<ResolvedPolicy> = policies
        .iter()
        .map(|policy| {
            crate::trust::resolve(policy, |source| {
                let key = match source {
                    SourceRef::Secret(r) => (true, r.clone()),
                    SourceRef::ConfigMap(r) => (false, r.clone()),
                };
                read.get(&key)
                    .cloned()
                    .unwrap_or_else(|| Err("not read".to_string()))
            })
        })
        .collect();
    resolved.sort_by(|a, b| a.name.cmp(&b.name));
    resolved
}

/// The bytes under `reference.key` of a Secret (`secret`) or ConfigMap.
async fn read_key(
    client: &Client,
    secret: bool,
    reference: &KeyReference,
) -> Result<Vec<u8>, String> {
    let (kind, found) = if secret {
        let found = Api::<Secret>::namespaced(client.clone(), &reference.namespace)
            .get_opt(&reference.name)
            .await
            .map(|s| {
                s.and_then(|s| s.data)
                    .and_then(|mut d| d.remove(&reference.key))
                    .map(|b| b.0)
            });
        ("Secret", found)
    } else {
        let found = Api::<ConfigMap>::namespaced(client.clone(), &reference.namespace)
            .get_opt(&reference.name)
            .await
            .map(|c| {
                c.and_then(|c| {
                    let text = c
                        .data
                        .and_then(|mut d| d.remove(&reference.key))
                        .map(String::into_bytes);
                    text.or_else(|| {
                        c.binary_data
                            .and_then(|mut d| d.remove(&reference.key))
                            .map(|b| b.0)
                    })
                })
            });
        ("ConfigMap", found)
    };
    match found {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(format!(
            "{kind} {}/{} has no key {:?}",
            reference.namespace, reference.name, reference.key
        )),
        Err(e) => Err(format!(
            "{kind} {}/{} could not be read: {e}",
            reference.namespace, reference.name
        )),
    }
}

/// Drops what the caches never read: `managedFields` is a large part of a small object, and
/// the caches hold every stream, Image and view (measured by `e2e/bench/scale.rs`).
pub fn lean<K: kube::Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// `K`s of `namespace`, or of every namespace.
pub fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a follower received so far, as `Init`, `+x` (listed), `x` (applied), `-x`
    /// (deleted) and `Done`.
    fn received(rx: &mut UnboundedReceiver<Change<String>>) -> Vec<String> {
        let mut seen = Vec::new();
        while let Ok(event) = rx.try_recv() {
            seen.push(match event {
                watcher::Event::Init => "Init".to_string(),
                watcher::Event::InitApply(o) => format!("+{o}"),
                watcher::Event::InitDone => "Done".to_string(),
                watcher::Event::Apply(o) => o.to_string(),
                watcher::Event::Delete(o) => format!("-{o}"),
            });
        }
        seen
    }

    fn o(name: &str) -> Arc<String> {
        Arc::new(name.to_string())
    }

    /// Feeds a fanout as a watch and its reflector store would.
    struct FakeWatch {
        fanout: Fanout<String>,
        store: Vec<Arc<String>>,
        listing: Vec<Arc<String>>,
    }

    impl FakeWatch {
        fn new() -> FakeWatch {
            FakeWatch {
                fanout: Fanout::default(),
                store: Vec::new(),
                listing: Vec::new(),
            }
        }

        fn event(&mut self, event: Change<String>) {
            match &event {
                watcher::Event::Init => self.listing.clear(),
                watcher::Event::InitApply(x) => self.listing.push(x.clone()),
                watcher::Event::InitDone => self.store = std::mem::take(&mut self.listing),
                watcher::Event::Apply(x) => {
                    self.store.retain(|s| s != x);
                    self.store.push(x.clone());
                }
                watcher::Event::Delete(x) => self.store.retain(|s| s != x),
            }
            let store = self.store.clone();
            self.fanout.send(&event, || store.clone());
        }

        fn follow(&mut self) -> UnboundedReceiver<Change<String>> {
            let store = self.store.clone();
            self.fanout.follow(|| store.clone())
        }
    }

    #[test]
    fn followers_from_the_start_see_the_watch_as_it_is() {
        let mut watch = FakeWatch::new();
        let mut a = watch.follow();
        watch.event(watcher::Event::Init);
        watch.event(watcher::Event::InitApply(o("x")));
        watch.event(watcher::Event::InitDone);
        watch.event(watcher::Event::Apply(o("y")));
        watch.event(watcher::Event::Delete(o("x")));
        assert_eq!(received(&mut a), ["Init", "+x", "Done", "y", "-x"]);
    }

    /// A follower that comes after the listing is handed the store as a listing, then the
    /// changes; one that comes in the middle of a listing gets it whole when it is done.
    #[test]
    fn late_followers_miss_nothing() {
        let mut watch = FakeWatch::new();
        watch.event(watcher::Event::Init);
        watch.event(watcher::Event::InitApply(o("x")));
        let mut middle = watch.follow();
        watch.event(watcher::Event::InitApply(o("y")));
        assert!(received(&mut middle).is_empty(), "nothing half listed");
        watch.event(watcher::Event::InitDone);
        assert_eq!(received(&mut middle), ["Init", "+x", "+y", "Done"]);

        watch.event(watcher::Event::Apply(o("z")));
        let mut after = watch.follow();
        assert_eq!(received(&mut after), ["Init", "+x", "+y", "+z", "Done"]);
        watch.event(watcher::Event::Delete(o("y")));
        assert_eq!(received(&mut after), ["-y"]);
        assert_eq!(received(&mut middle), ["z", "-y"]);
    }

    /// A relist goes to every follower; one that joins during it gets the new listing whole.
    #[test]
    fn a_relist_reaches_every_follower_whole() {
        let mut watch = FakeWatch::new();
        let mut early = watch.follow();
        watch.event(watcher::Event::Init);
        watch.event(watcher::Event::InitApply(o("x")));
        watch.event(watcher::Event::InitDone);
        received(&mut early);

        watch.event(watcher::Event::Init);
        let mut during = watch.follow();
        watch.event(watcher::Event::InitApply(o("w")));
        watch.event(watcher::Event::InitDone);
        assert_eq!(received(&mut early), ["Init", "+w", "Done"]);
        assert_eq!(received(&mut during), ["Init", "+w", "Done"]);
        watch.event(watcher::Event::Apply(o("v")));
        assert_eq!(received(&mut during), ["v"]);
    }

    #[test]
    fn followers_that_went_are_forgotten() {
        let mut watch = FakeWatch::new();
        let gone = watch.follow();
        let mut kept = watch.follow();
        drop(gone);
        watch.event(watcher::Event::Apply(o("x")));
        assert_eq!(watch.fanout.followers.len(), 1);
        assert_eq!(received(&mut kept), ["x"]);
    }
}
