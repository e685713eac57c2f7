//! The namespace's LimitRanges, read for each ImageStream write the validating webhook judges
//! (semantics 7.8): [`LimitRangeSource`] is a trait so the handlers can be tested without an
//! apiserver. Upstream reads them from an informer; one list per write keeps the webhook
//! stateless, and a stream write is rare next to the reads it serves.

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::LimitRange;
use kube::Client;
use kube::api::{Api, ListParams};

/// The LimitRanges of a namespace.
pub trait LimitRangeSource: Send + Sync {
    fn limit_ranges<'a>(
        &'a self,
        namespace: &'a str,
    ) -> BoxFuture<'a, Result<Vec<LimitRange>, kube::Error>>;
}

/// Through the operator's client (needs `list limitranges`).
#[derive(Clone)]
pub struct KubeLimitRanges {
    client: Client,
}

impl KubeLimitRanges {
    pub fn new(client: Client) -> Self {
        KubeLimitRanges { client }
    }
}

impl LimitRangeSource for KubeLimitRanges {
    fn limit_ranges<'a>(
        &'a self,
        namespace: &'a str,
    ) -> BoxFuture<'a, Result<Vec<LimitRange>, kube::Error>> {
        Box::pin(async move {
            Api::<LimitRange>::namespaced(self.client.clone(), namespace)
                .list(&ListParams::default())
                .await
                .map(|list| list.items)
        })
    }
}

/// No limits (tests of other rules, and webhooks built without a cluster).
pub struct NoLimitRanges;

impl LimitRangeSource for NoLimitRanges {
    fn limit_ranges<'a>(
        &'a self,
        _namespace: &'a str,
    ) -> BoxFuture<'a, Result<Vec<LimitRange>, kube::Error>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}
