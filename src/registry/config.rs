//! The registry client's settings and its observer, as plain data: built by the operator's
//! configuration (which is pure, `crate::stream::settings`), read by every client. No IO here.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::policy::{AllowedRegistries, BlockedRegistries};
use super::quota;

/// Which registry endpoint a request went to, for metrics labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathKind {
    /// `/v2/<repo>/manifests/<ref>`
    Manifest,
    /// `/v2/<repo>/blobs/<digest>` (and where its redirects lead)
    Blob,
    /// `/v2/<repo>/tags/list`
    Tags,
    /// `/v2/<repo>/referrers/<digest>` (the OCI referrers API)
    Referrers,
    /// the token server named by a Bearer challenge
    Token,
}

impl PathKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PathKind::Manifest => "manifest",
            PathKind::Blob => "blob",
            PathKind::Tags => "tags",
            PathKind::Referrers => "referrers",
            PathKind::Token => "token",
        }
    }
}

/// One HTTP exchange as a [`RequestObserver`] sees it.
#[derive(Clone, Copy, Debug)]
pub struct Exchange<'a> {
    /// The registry as the caller named it.
    pub registry: &'a str,
    pub method: &'a str,
    pub path_kind: PathKind,
    /// Scheme, host and path; never the query (signed CDN URLs carry secrets there).
    pub url: &'a str,
    /// `None` when no response arrived.
    pub status: Option<u16>,
    /// Until the response headers.
    pub duration: Duration,
}

/// Told about every HTTP exchange a client makes (each attempt, auth retry, token request
/// and redirect hop). Must be cheap and must not block. Implement either method.
pub trait RequestObserver: Send + Sync {
    /// `registry` as the caller named it; `status` is `None` when no response arrived;
    /// `duration` is until the response headers.
    fn on_request(
        &self,
        _registry: &str,
        _method: &str,
        _path_kind: PathKind,
        _status: Option<u16>,
        _duration: Duration,
    ) {
    }

    /// A manifest response announced a quota (`ratelimit-limit` / `ratelimit-remaining`) for
    /// `credential` (a credential set's identity, or `anonymous`).
    fn on_quota(&self, _registry: &str, _credential: &str, _quota: &quota::Quota) {}

    /// The whole exchange, URL included; by default forwards to [`Self::on_request`].
    fn on_exchange(&self, exchange: &Exchange<'_>) {
        self.on_request(
            exchange.registry,
            exchange.method,
            exchange.path_kind,
            exchange.status,
            exchange.duration,
        );
    }
}

/// Settings shared by every client (built once from the operator's configuration).
#[derive(Clone)]
pub struct RegistryConfig {
    /// Total time for one attempt: connecting, auth, redirects and reading the body.
    pub timeout: Duration,
    /// Retries after the first attempt (transient failures only).
    pub max_retries: usize,
    /// First backoff delay (exponential with jitter after that).
    pub min_backoff: Duration,
    /// Longest backoff delay.
    pub max_backoff: Duration,
    /// Cap on a 429's `Retry-After`.
    pub max_retry_after: Duration,
    /// Concurrent requests per registry host.
    pub max_concurrent_per_registry: usize,
    /// `(host[:port] glob, limit)` overrides of `max_concurrent_per_registry`, first match
    /// wins.
    pub concurrency_overrides: Vec<(String, usize)>,
    /// Redirect hops followed per request.
    pub max_redirects: usize,
    /// Tag-list pages followed per listing; more are dropped with a warning.
    pub max_tag_pages: usize,
    /// The import whitelist; `None` allows every registry.
    pub allowed: Option<AllowedRegistries>,
    /// Registries never contacted.
    pub blocked: BlockedRegistries,
    /// Names resolved to fixed addresses instead of DNS (still guarded).
    pub dns_overrides: HashMap<String, Vec<IpAddr>>,
    pub observer: Option<Arc<dyn RequestObserver>>,
    pub user_agent: String,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            timeout: Duration::from_secs(30),
            max_retries: 2,
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
            max_concurrent_per_registry: 4,
            concurrency_overrides: Vec::new(),
            max_redirects: 5,
            max_tag_pages: 100,
            allowed: None,
            blocked: BlockedRegistries::default(),
            dns_overrides: HashMap::new(),
            observer: None,
            user_agent: concat!("imagestream-operator/", env!("CARGO_PKG_VERSION")).into(),
        }
    }
}

impl fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryConfig")
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("min_backoff", &self.min_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("max_retry_after", &self.max_retry_after)
            .field(
                "max_concurrent_per_registry",
                &self.max_concurrent_per_registry,
            )
            .field("concurrency_overrides", &self.concurrency_overrides)
            .field("max_redirects", &self.max_redirects)
            .field("max_tag_pages", &self.max_tag_pages)
            .field("allowed", &self.allowed)
            .field("blocked", &self.blocked)
            .field("dns_overrides", &self.dns_overrides)
            .field("observer", &self.observer.as_ref().map(|_| "…"))
            .field("user_agent", &self.user_agent)
            .finish()
    }
}
