//! The image change trigger controller: workloads annotated with `image.openshift.io/triggers`
//! follow ImageStreamTags (openshift-controller-manager `pkg/image/controller/trigger`; the
//! rules are in [`crate::trigger`]).
//!
//! Wiring: one watch per workload kind feeds the [`TriggerIndex`] with what the rules read of
//! each annotated workload (nothing is kept of the others); the streams come from the
//! controllers' own stream watch and cache, whose events arrive here as [`StreamEvent`]s and
//! wake the followers of the tags that moved. A sync reads the index and the stream cache,
//! decides ([`crate::trigger::changes`]), asks a SubjectAccessReview for streams of other
//! namespaces ([`crate::trigger::access`]) and writes at most one JSON patch. What cannot be
//! followed is a Warning Event on the workload, published once per problem.
//!
//! Syncs start once the streams and every workload kind have been listed, so workloads
//! behind their tags when the operator starts are brought up to date once. A failed write,
//! or a stream of another namespace the workload may not read yet, is retried with backoff
//! (1 s doubling to 30 s, as upstream), so granting access later takes effect on its own.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::events::{Event, EventType, Recorder};
use futures::channel::mpsc::UnboundedReceiver;
use futures::future::{self, BoxFuture};
use futures::{FutureExt, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use super::Metrics;
use crate::api::image_stream::ImageStream;
use crate::cache::scoped;
use crate::trigger::{
    self, Change, Kind, TagKey, TagSource, TriggerIndex, Workload, WorkloadKey, access,
};

/// Field manager of the image patches.
pub const MANAGER: &str = "imagestream-operator-triggers";

/// What the stream watch tells the trigger controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamEvent {
    /// A stream was written or deleted (the cache already holds the change).
    Changed { namespace: String, name: String },
    /// The stream cache listed (again): every followed stream is looked at.
    Listed,
}

/// Why a sync failed; [`Error::reason`] is stable.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("patching the images of {0}: {1}")]
    Patch(WorkloadKey, #[source] kube::Error),
    #[error("asking whether {0} may pull from {1}: {2}")]
    Review(WorkloadKey, String, #[source] kube::Error),
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Patch(..) => "TriggerPatchFailed",
            Error::Review(..) => "TriggerAccessReviewFailed",
        }
    }
}

/// What the controller needs from the rest of the operator.
pub struct Options {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// The controllers' stream cache.
    pub streams: Store<ImageStream>,
    /// Changes of the stream cache.
    pub stream_events: UnboundedReceiver<StreamEvent>,
    /// Set once the stream cache has listed.
    pub streams_listed: tokio::sync::watch::Receiver<bool>,
    /// The only namespace watched, if any.
    pub watch_namespace: Option<String>,
    /// Workloads synced at the same time.
    pub concurrency: usize,
}

/// Runs the trigger controller until `shutdown` completes.
pub async fn run(options: Options, shutdown: impl Future<Output = ()> + Send + 'static) {
    let Options {
        client,
        recorder,
        metrics,
        streams,
        stream_events,
        streams_listed,
        watch_namespace,
        concurrency,
    } = options;
    let shared = Arc::new(Shared {
        client: client.clone(),
        recorder,
        metrics,
        streams,
        index: Mutex::default(),
        queue: Queue::default(),
        reported: Mutex::default(),
        attempts: Mutex::default(),
        watched: watch_namespace.clone(),
    });
    let ns = watch_namespace.as_deref();
    let (listed, kinds_listed) = tokio::sync::mpsc::channel::<Kind>(Kind::ALL.len());
    let watches: Vec<BoxFuture<'static, ()>> = vec![
        watch(
            scoped::<Deployment>(&client, ns),
            Kind::Deployment,
            Workload::from_deployment,
            shared.clone(),
            listed.clone(),
        ),
        watch(
            scoped::<DaemonSet>(&client, ns),
            Kind::DaemonSet,
            Workload::from_daemon_set,
            shared.clone(),
            listed.clone(),
        ),
        watch(
            scoped::<StatefulSet>(&client, ns),
            Kind::StatefulSet,
            Workload::from_stateful_set,
            shared.clone(),
            listed.clone(),
        ),
        watch(
            scoped::<CronJob>(&client, ns),
            Kind::CronJob,
            Workload::from_cron_job,
            shared.clone(),
            listed,
        ),
    ];
    let mut tasks: Vec<crate::task::Owned<()>> =
        watches.into_iter().map(crate::task::spawn).collect();
    tasks.push(crate::task::spawn(follow_streams(
        shared.clone(),
        stream_events,
    )));
    let workers = {
        let shared = shared.clone();
        async move {
            ready(streams_listed, kinds_listed).await;
            tracing::debug!(
                workloads = shared.index().len(),
                "image triggers: caches listed; syncing"
            );
            let workers = (0..concurrency.max(1)).map(|_| work(shared.clone()));
            future::join_all(workers).await;
        }
    };
    tokio::select! {
        () = workers => {}
        () = shutdown => {}
    }
    for t in tasks {
        t.abort();
    }
}

/// Returns once the stream cache and every workload kind have been listed.
async fn ready(
    mut streams_listed: tokio::sync::watch::Receiver<bool>,
    mut kinds: tokio::sync::mpsc::Receiver<Kind>,
) {
    let _ = streams_listed.wait_for(|done| *done).await;
    let mut seen = BTreeSet::new();
    while seen.len() < Kind::ALL.len() {
        match kinds.recv().await {
            Some(kind) => {
                seen.insert(kind);
            }
            None => return,
        }
    }
}

/// What the tasks of the controller share.
struct Shared {
    client: Client,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    streams: Store<ImageStream>,
    index: Mutex<TriggerIndex>,
    queue: Queue,
    /// The problems the last sync of each workload reported: each is published once.
    reported: Mutex<HashMap<WorkloadKey, BTreeSet<(&'static str, String)>>>,
    /// Failed syncs in a row, per workload (the backoff).
    attempts: Mutex<HashMap<WorkloadKey, u32>>,
    watched: Option<String>,
}

impl Shared {
    fn index(&self) -> std::sync::MutexGuard<'_, TriggerIndex> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push_all(&self, keys: Vec<WorkloadKey>) {
        for key in keys {
            self.queue.push(key);
        }
    }

    fn forget(&self, key: &WorkloadKey) {
        self.reported
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
        self.attempts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

/// The stream cache as the rules' [`TagSource`].
struct StoreTags<'a>(&'a Store<ImageStream>);

impl TagSource for StoreTags<'_> {
    fn pull_spec(&self, tag: &TagKey) -> Option<String> {
        let stream = self
            .0
            .get(&ObjectRef::new(&tag.stream).within(&tag.namespace))?;
        trigger::current_pull_spec(&stream, &tag.tag)
    }
}

/// Keeps the index in step with one workload kind. A relist replaces the kind's entries
/// once it is complete, as a reflector does.
fn watch<K>(
    api: Api<K>,
    kind: Kind,
    read: fn(&K) -> Option<Workload>,
    shared: Arc<Shared>,
    listed: tokio::sync::mpsc::Sender<Kind>,
) -> BoxFuture<'static, ()>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
{
    let mut relist: Vec<Workload> = Vec::new();
    let key_of = move |object: &K| WorkloadKey {
        kind,
        namespace: object.namespace().unwrap_or_default(),
        name: object.name_any(),
    };
    watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .for_each(move |event| {
            match event {
                Ok(watcher::Event::Init) => relist.clear(),
                Ok(watcher::Event::InitApply(object)) => relist.extend(read(&object)),
                Ok(watcher::Event::InitDone) => {
                    let keys = shared.index().reset(kind, std::mem::take(&mut relist));
                    shared.push_all(keys);
                    let _ = listed.try_send(kind);
                }
                Ok(watcher::Event::Apply(object)) => match read(&object) {
                    Some(workload) => {
                        let key = workload.key.clone();
                        if shared.index().apply(workload) {
                            shared.queue.push(key);
                        }
                    }
                    None => {
                        let key = key_of(&object);
                        if shared.index().delete(&key) {
                            shared.forget(&key);
                        }
                    }
                },
                Ok(watcher::Event::Delete(object)) => {
                    let key = key_of(&object);
                    shared.index().delete(&key);
                    shared.forget(&key);
                }
                Err(e) => tracing::warn!(kind = kind.name(), error = %e, "watching workloads"),
            }
            future::ready(())
        })
        .boxed()
}

/// Wakes the followers of the tags a stream change moved.
async fn follow_streams(shared: Arc<Shared>, mut events: UnboundedReceiver<StreamEvent>) {
    while let Some(event) = events.next().await {
        let tags = StoreTags(&shared.streams);
        let keys = match event {
            StreamEvent::Changed { namespace, name } => {
                shared.index().stream_changed(&namespace, &name, &tags)
            }
            StreamEvent::Listed => shared.index().streams_relisted(&tags),
        };
        shared.push_all(keys);
    }
}

/// One worker: syncs queued workloads one at a time, forever.
async fn work(shared: Arc<Shared>) {
    loop {
        let key = shared.queue.pop().await;
        let result = {
            let _reconciling = shared.metrics.reconciling("imagetrigger");
            sync(&shared, &key).await
        };
        let again = match result {
            Ok(Synced::Done) => None,
            Ok(Synced::Retry) => Some(()),
            Err(e) => {
                tracing::warn!(reason = e.reason(), error = %e, "image trigger sync failed; retrying");
                shared.metrics.reconcile_error("imagetrigger", e.reason());
                Some(())
            }
        };
        shared.queue.done(&key);
        let mut attempts = shared
            .attempts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match again {
            None => {
                attempts.remove(&key);
            }
            Some(()) => {
                let attempt = attempts.entry(key.clone()).or_insert(0);
                let delay = retry_delay(*attempt);
                *attempt = attempt.saturating_add(1);
                let shared = shared.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    shared.queue.push(key);
                });
            }
        }
    }
}

/// 1 s doubling to 30 s (openshift-controller-manager `defaultResourceFailureDelay`).
fn retry_delay(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.min(5)).min(Duration::from_secs(30))
}

/// How a sync ended.
enum Synced {
    Done,
    /// Some trigger is waiting for access to a stream of another namespace.
    Retry,
}

/// Brings one workload's images in step with its tags: decide, ask, report, write once.
async fn sync(shared: &Shared, key: &WorkloadKey) -> Result<Synced, Error> {
    let Some(workload) = shared.index().get(key).cloned() else {
        return Ok(Synced::Done);
    };
    let mut problems = BTreeSet::new();
    let mut changes = match trigger::changes(&workload, &StoreTags(&shared.streams)) {
        Ok(changes) => changes,
        Err(e) => {
            problems.insert((e.reason(), e.to_string()));
            report(shared, &workload, problems).await;
            return Ok(Synced::Done);
        }
    };
    if let Some(watched) = &shared.watched {
        for tag in workload.tags().filter(|t| t.namespace != *watched) {
            problems.insert((
                "TriggerNamespaceNotWatched",
                format!("the operator watches only namespace {watched}: {tag} is never read"),
            ));
        }
    }
    let mut waiting = false;
    for (namespace, stream) in access::needed(&workload, &changes) {
        if may_pull(shared, &workload, &namespace, &stream).await? {
            continue;
        }
        waiting = true;
        problems.insert((
            "TriggerForbidden",
            format!(
                "system:serviceaccount:{}:{} may not get imagestreams/layers {stream:?} in \
                 namespace {namespace}: grant it (e.g. a RoleBinding there to group \
                 system:serviceaccounts:{}) for the trigger to follow {namespace}/{stream}",
                workload.key.namespace, workload.service_account, workload.key.namespace
            ),
        ));
        changes.retain(|c| !(c.tag.namespace == namespace && c.tag.stream == stream));
    }
    report(shared, &workload, problems).await;
    if !changes.is_empty() {
        write(shared, &workload, &changes).await?;
    }
    Ok(if waiting { Synced::Retry } else { Synced::Done })
}

/// Whether the workload's pods may pull from stream `namespace/stream`.
async fn may_pull(
    shared: &Shared,
    workload: &Workload,
    namespace: &str,
    stream: &str,
) -> Result<bool, Error> {
    let review = SubjectAccessReview {
        spec: access::review(workload, namespace, stream),
        ..SubjectAccessReview::default()
    };
    let answer = Api::<SubjectAccessReview>::all(shared.client.clone())
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| Error::Review(workload.key.clone(), format!("{namespace}/{stream}"), e))?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// The one patch of a sync.
async fn write(shared: &Shared, workload: &Workload, changes: &[Change]) -> Result<(), Error> {
    let key = &workload.key;
    let patch = Patch::Json::<()>(trigger::patch(key.kind, changes));
    let params = PatchParams {
        field_manager: Some(MANAGER.into()),
        ..PatchParams::default()
    };
    let client = &shared.client;
    let result = match key.kind {
        Kind::Deployment => patch_as::<Deployment>(client, key, &params, &patch).await,
        Kind::DaemonSet => patch_as::<DaemonSet>(client, key, &params, &patch).await,
        Kind::StatefulSet => patch_as::<StatefulSet>(client, key, &params, &patch).await,
        Kind::CronJob => patch_as::<CronJob>(client, key, &params, &patch).await,
    };
    match result {
        Ok(()) => {
            shared.metrics.trigger_patch(key.kind.name());
            for c in changes {
                tracing::info!(workload = %key, container = %c.name, tag = %c.tag, image = %c.to, "image trigger");
            }
            Ok(())
        }
        // deleted meanwhile: its watch event removes it from the index
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        Err(e) => Err(Error::Patch(key.clone(), e)),
    }
}

async fn patch_as<K>(
    client: &Client,
    key: &WorkloadKey,
    params: &PatchParams,
    patch: &Patch<()>,
) -> Result<(), kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    Api::<K>::namespaced(client.clone(), &key.namespace)
        .patch(&key.name, params, patch)
        .await
        .map(|_| ())
}

/// Publishes the problems this sync found that the last one did not (a Warning Event each),
/// and remembers them.
async fn report(shared: &Shared, workload: &Workload, problems: BTreeSet<(&'static str, String)>) {
    let new: Vec<(&'static str, String)> = {
        let mut reported = shared
            .reported
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let last = reported.get(&workload.key);
        let new = problems
            .iter()
            .filter(|p| last.is_none_or(|l| !l.contains(*p)))
            .cloned()
            .collect();
        if problems.is_empty() {
            reported.remove(&workload.key);
        } else {
            reported.insert(workload.key.clone(), problems);
        }
        new
    };
    if new.is_empty() {
        return;
    }
    let reference = ObjectReference {
        api_version: Some(workload.key.kind.api_version().into()),
        kind: Some(workload.key.kind.name().into()),
        namespace: Some(workload.key.namespace.clone()),
        name: Some(workload.key.name.clone()),
        uid: Some(workload.uid.clone()).filter(|u| !u.is_empty()),
        ..ObjectReference::default()
    };
    for (reason, note) in new {
        tracing::warn!(workload = %workload.key, reason, note, "image trigger not followed");
        let event = Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(note),
            action: "ImageTrigger".into(),
            secondary: None,
        };
        if let Err(e) = shared.recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, "publishing an event failed");
        }
    }
}

/// Workloads waiting for a sync: each at most once in the queue and never synced twice at
/// once (one pushed while it is synced runs again afterwards).
#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    ready: Notify,
}

#[derive(Default)]
struct QueueState {
    order: VecDeque<WorkloadKey>,
    queued: HashSet<WorkloadKey>,
    running: HashSet<WorkloadKey>,
    again: HashSet<WorkloadKey>,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, key: WorkloadKey) {
        let mut state = self.lock();
        if state.running.contains(&key) {
            state.again.insert(key);
            return;
        }
        if state.queued.insert(key.clone()) {
            state.order.push_back(key);
            drop(state);
            self.ready.notify_one();
        }
    }

    async fn pop(&self) -> WorkloadKey {
        loop {
            let notified = self.ready.notified();
            {
                let mut state = self.lock();
                if let Some(key) = state.order.pop_front() {
                    state.queued.remove(&key);
                    state.running.insert(key.clone());
                    return key;
                }
            }
            notified.await;
        }
    }

    fn done(&self, key: &WorkloadKey) {
        let mut state = self.lock();
        state.running.remove(key);
        if state.again.remove(key) && state.queued.insert(key.clone()) {
            state.order.push_back(key.clone());
            drop(state);
            self.ready.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> WorkloadKey {
        WorkloadKey {
            kind: Kind::Deployment,
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    #[tokio::test]
    async fn the_queue_holds_each_workload_once_and_never_runs_it_twice_at_once() {
        let queue = Queue::default();
        queue.push(key("a"));
        queue.push(key("b"));
        queue.push(key("a"));
        assert_eq!(queue.pop().await, key("a"));
        // pushed while running: runs again after, not beside
        queue.push(key("a"));
        assert_eq!(queue.pop().await, key("b"));
        queue.done(&key("b"));
        let waiting = tokio::time::timeout(Duration::from_millis(50), queue.pop()).await;
        assert!(waiting.is_err(), "a is still running");
        queue.done(&key("a"));
        assert_eq!(queue.pop().await, key("a"));
        queue.done(&key("a"));
        assert!(
            tokio::time::timeout(Duration::from_millis(50), queue.pop())
                .await
                .is_err()
        );
    }

    #[test]
    fn retries_back_off_to_thirty_seconds() {
        let delays: Vec<u64> = (0..8).map(|a| retry_delay(a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
