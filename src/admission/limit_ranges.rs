//! The namespace's LimitRanges for the validating webhook (semantics 7.8). As upstream, they
//! come from a cache of every LimitRange (the process's, [`crate::cache`]), so judging a
//! stream write costs no request; until the cache has loaded, writes are refused as upstream
//! refuses them.
//! [`LimitRangeSource`] is a trait so the handlers can be tested without an apiserver.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::LimitRange;
use kube::Client;

use crate::cache::{Caches, Scope};

/// How long a review waits for the cache after a start before refusing.
const LOAD_WAIT: Duration = Duration::from_secs(5);

/// The LimitRanges of a namespace, or `None` while they are not known yet.
pub trait LimitRangeSource: Send + Sync {
    fn limit_ranges<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Option<Vec<LimitRange>>>;
}

/// Every LimitRange of the cluster, from the process's cache (needs `list` and `watch
/// limitranges`).
pub struct KubeLimitRanges {
    caches: Arc<Caches>,
}

impl KubeLimitRanges {
    /// The LimitRanges of `caches` (which must watch every namespace's).
    pub fn new(caches: Arc<Caches>) -> Self {
        KubeLimitRanges { caches }
    }

    /// A cache of its own, watching every namespace (tests, and webhooks without controllers).
    pub fn watching(client: Client) -> Self {
        let scope = Scope {
            all_limit_ranges: true,
            ..Scope::default()
        };
        KubeLimitRanges::new(Arc::new(Caches::new(client, &scope)))
    }
}

impl LimitRangeSource for KubeLimitRanges {
    fn limit_ranges<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Option<Vec<LimitRange>>> {
        Box::pin(async move {
            tokio::time::timeout(LOAD_WAIT, self.caches.limit_ranges.listed())
                .await
                .ok()?;
            Some(
                self.caches
                    .limit_ranges_of(namespace)
                    .iter()
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
