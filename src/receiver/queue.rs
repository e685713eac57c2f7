//! The leader's side of notifications: which stream tags a notification wakes, the wake-ups
//! waiting for the imagestream controller, and the requests waiting for their checks.
//!
//! The controllers create one [`Queue`] and hand it to [`super::Receivers`] while they run
//! (only the leader runs them). A notification selects tags through the stream cache and
//! the [`SourceIndex`] kept from the stream watch, records them in [`Wakeups`] and triggers
//! a reconcile of each stream; the reconcile takes the stream's woken tags ([`Queue::take`])
//! and checks them with the scheduled ones, one HEAD each, importing what moved; the
//! request that asked is answered once its tags are checked ([`Queue::wait`]).

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use crate::api::image_stream::ImageStream;

use super::payload::Push;
use super::select::{Allowed, SourceIndex, StreamKey, push_source, wakes};
use super::wake::{Check, TagKey, Wakeups, Woken};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How long after a notification its tags are checked.
pub const SETTLE: Duration = Duration::from_millis(50);

/// A notification's tickets: one per woken tag.
pub type Tickets = Vec<(TagKey, u64)>;

/// Woken tags and the streams that pull from each repository, on the leader.
pub struct Queue {
    wakeups: Mutex<Wakeups>,
    index: Mutex<SourceIndex>,
    streams: Store<ImageStream>,
    trigger: UnboundedSender<ObjectRef<ImageStream>>,
    checked: tokio::sync::Notify,
    swept: Mutex<Instant>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").finish_non_exhaustive()
    }
}

impl Queue {
    /// A queue over the stream cache; the receiver yields the streams to reconcile.
    pub fn new(streams: Store<ImageStream>) -> (Queue, UnboundedReceiver<ObjectRef<ImageStream>>) {
        let (trigger, triggered) = unbounded();
        let queue = Queue {
            wakeups: Mutex::default(),
            index: Mutex::default(),
            streams,
            trigger,
            checked: tokio::sync::Notify::new(),
            swept: Mutex::new(Instant::now()),
        };
        (queue, triggered)
    }

    /// Keeps the index in step with the stream watch (after its store was updated).
    pub fn observe(&self, event: &crate::cache::Change<ImageStream>) {
        match event {
            watcher::Event::Apply(s) | watcher::Event::InitApply(s) => lock(&self.index).apply(s),
            watcher::Event::Delete(s) => lock(&self.index).remove(
                s.metadata.namespace.as_deref().unwrap_or_default(),
                s.metadata.name.as_deref().unwrap_or_default(),
            ),
            // a relist: streams deleted meanwhile never got a Delete
            watcher::Event::InitDone => {
                let mut index = SourceIndex::default();
                for s in self.streams.state() {
                    index.apply(&s);
                }
                *lock(&self.index) = index;
            }
            watcher::Event::Init => {}
        }
    }

    /// Wakes the tags `pushes` name in the namespaces `allowed`; `registry` replaces the
    /// payloads' host. Returns a ticket per woken tag (none: nothing matched).
    pub fn submit(
        &self,
        pushes: &[Push],
        allowed: &Allowed,
        registry: Option<&str>,
        now: Instant,
    ) -> Tickets {
        let mut tickets = Vec::new();
        // streams to reconcile, and how long to wait first
        let mut streams: Vec<(ObjectRef<ImageStream>, Duration)> = Vec::new();
        for push in pushes {
            let Some(source) = push_source(push, registry) else {
                continue;
            };
            let candidates = lock(&self.index).streams(&source);
            for (namespace, name) in candidates {
                if !allowed.contains(&namespace) {
                    continue;
                }
                let reference = ObjectRef::new(&name).within(&namespace);
                let Some(stream) = self.streams.get(&reference) else {
                    continue;
                };
                for tag in wakes(&stream, &source, push) {
                    let key = TagKey {
                        namespace: namespace.clone(),
                        name: name.clone(),
                        tag,
                    };
                    let mut wakeups = lock(&self.wakeups);
                    let (ticket, queued) = wakeups.notify(&key, push.digest.as_deref(), now);
                    if queued {
                        let hold = wakeups.hold(&key, now).max(SETTLE);
                        match streams.iter_mut().find(|(r, _)| *r == reference) {
                            Some((_, wait)) => *wait = (*wait).min(hold),
                            None => streams.push((reference.clone(), hold)),
                        }
                    }
                    drop(wakeups);
                    tickets.push((key, ticket));
                }
            }
        }
        // registries notify while they are still recording the push (docker-registry moves
        // the tag after sending, and answers 500 while it writes): a moment later
        for (stream, wait) in streams {
            let trigger = self.trigger.clone();
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                // the controller is gone when this fails: `wait` answers 503
                let _ = trigger.unbounded_send(stream);
            });
        }
        self.sweep(now);
        tickets
    }

    /// Waits until every ticket's check is done (`true`), or `timeout` passed.
    pub async fn wait(&self, tickets: &[(TagKey, u64)], timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.checked.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let done = {
                let wakeups = lock(&self.wakeups);
                tickets.iter().all(|(key, t)| wakeups.is_checked(key, *t))
            };
            if done {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    /// Takes `stream`'s woken tags for the check the reconcile is about to make. Tags not
    /// finished when the returned guard is dropped wait again.
    pub fn take(&self, namespace: &str, name: &str) -> Taken<'_> {
        let stream = (namespace.to_string(), name.to_string());
        let woken = lock(&self.wakeups).take(&stream);
        Taken {
            queue: self,
            stream,
            woken,
        }
    }

    /// Streams with woken tags not checked yet.
    pub fn waiting(&self) -> Vec<ObjectRef<ImageStream>> {
        lock(&self.wakeups)
            .waiting_streams()
            .into_iter()
            .map(|(namespace, name)| ObjectRef::new(&name).within(&namespace))
            .collect()
    }

    fn sweep(&self, now: Instant) {
        let mut swept = lock(&self.swept);
        if now.saturating_duration_since(*swept) > Duration::from_secs(60) {
            *swept = now;
            lock(&self.wakeups).sweep(now);
        }
    }
}

/// Woken tags taken for one check; those neither finished nor handed back wait again when
/// it is dropped (a reconcile that failed half way).
pub struct Taken<'a> {
    queue: &'a Queue,
    stream: StreamKey,
    woken: Vec<Woken>,
}

impl Taken<'_> {
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.woken.iter().map(|w| w.tag.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.woken.is_empty()
    }

    /// Gives the tags back to wait for a later check (a budget said not yet).
    pub fn defer(&mut self) {
        let woken = std::mem::take(&mut self.woken);
        lock(&self.queue.wakeups).restore(&self.stream, woken);
    }

    /// The check is over: `found(woken)` says what it found for each tag. Returns, per tag
    /// checked, how long ago its oldest notification arrived, and when stale tags should be
    /// checked again (see [`Check::Stale`]).
    pub fn finish(&mut self, found: impl Fn(&Woken) -> Check) -> (Vec<Duration>, Option<Duration>) {
        let woken = std::mem::take(&mut self.woken);
        let mut waited = Vec::with_capacity(woken.len());
        let mut again: Option<Duration> = None;
        {
            let mut wakeups = lock(&self.queue.wakeups);
            for w in woken {
                let key = TagKey {
                    namespace: self.stream.0.clone(),
                    name: self.stream.1.clone(),
                    tag: w.tag.clone(),
                };
                match wakeups.finish(&key, &w, found(&w)) {
                    Some(delay) => again = Some(again.map_or(delay, |a| a.min(delay))),
                    None => waited.push(w.since.elapsed()),
                }
            }
        }
        self.queue.checked.notify_waiters();
        (waited, again)
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if !self.woken.is_empty() {
            let woken = std::mem::take(&mut self.woken);
            lock(&self.queue.wakeups).restore(&self.stream, woken);
        }
    }
}
