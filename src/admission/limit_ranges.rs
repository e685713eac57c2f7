//! The namespace's LimitRanges for the validating webhook (semantics 7.8). As upstream, they
//! come from a cache of every LimitRange (a reflector), so judging a stream write costs no
//! request; until the cache has loaded, writes are refused as upstream refuses them.
//! [`LimitRangeSource`] is a trait so the handlers can be tested without an apiserver.

use std::time::Duration;

use futures::StreamExt;
use futures::future::{self, BoxFuture};
use k8s_openapi::api::core::v1::LimitRange;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

/// How long a review waits for the cache after a start before refusing.
const LOAD_WAIT: Duration = Duration::from_secs(5);

/// The LimitRanges of a namespace, or `None` while they are not known yet.
pub trait LimitRangeSource: Send + Sync {
    fn limit_ranges<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Option<Vec<LimitRange>>>;
}

/// Every LimitRange of the cluster, watched through the operator's client (needs `list` and
/// `watch limitranges`). The watch stops when this is dropped.
pub struct KubeLimitRanges {
    store: Store<LimitRange>,
    _task: crate::task::Owned<()>,
}

impl KubeLimitRanges {
    /// Starts the watch (on the current tokio runtime).
    pub fn new(client: Client) -> Self {
        let (store, writer) = reflector::store();
        let task = crate::task::spawn(
            watcher(Api::<LimitRange>::all(client), watcher::Config::default())
                .default_backoff()
                .reflect(writer)
                .for_each(|_| future::ready(())),
        );
        KubeLimitRanges { store, _task: task }
    }
}

impl LimitRangeSource for KubeLimitRanges {
    fn limit_ranges<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Option<Vec<LimitRange>>> {
        Box::pin(async move {
            tokio::time::timeout(LOAD_WAIT, self.store.wait_until_ready())
                .await
                .ok()?
                .ok()?;
            Some(
                self.store
                    .state()
                    .iter()
                    .filter(|r| r.namespace().as_deref() == Some(namespace))
                    .map(|r| (**r).clone())
                    .collect(),
            )
        })
    }
}

/// No limits (tests of other rules, and webhooks built without a cluster).
pub struct NoLimitRanges;

impl LimitRangeSource for NoLimitRanges {
    fn limit_ranges<'a>(&'a self, _namespace: &'a str) -> BoxFuture<'a, Option<Vec<LimitRange>>> {
        Box::pin(async { Some(Vec::new()) })
    }
}
