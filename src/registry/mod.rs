//! The registry transport: HEAD and GET of manifests, config blobs and tag lists from
//! container registries (the distribution v2 API), with the guarantees an importer needs.
//!
//! # Why our own HTTP
//!
//! oci-client 0.18 drops response headers (no `Retry-After`, no `Content-Type`), silently turns
//! a manifest HEAD into a GET (a counted pull on Docker Hub), reads bodies without a limit,
//! pings `/v2/` before authenticating and caches tokens per client by host. So requests are
//! made here with `reqwest` directly (the same reqwest build and TLS stack oci-client already
//! brings in). The media types are [`protocol`]'s ([`protocol::MANIFEST_MEDIA_TYPES`], the
//! one place they are written); parsing manifests into Images is `crate::import`'s business.
//!
//! # What a [`RegistryClient`] does
//!
//! * **One client per credential set and TLS setting** ([`ClientKey`], [`ClientCache`]), so a
//!   token fetched with one namespace's pull secret never serves another namespace.
//! * **Challenge-driven auth, no ping**: the request goes out (with a cached token for the
//!   repository if there is one); a 401's `WWW-Authenticate` decides: `Bearer` → a token for
//!   `repository:<repo>:pull` from the realm (Basic credentials to the realm when we have
//!   them), cached per (registry, repository) until shortly before it expires, and the request
//!   is sent once more; `Basic` → once more with the credentials. Once a registry has shown
//!   its Bearer realm, tokens for other repositories are fetched before the first request.
//! * **Insecure** clients try HTTPS without certificate verification, then plain HTTP when the
//!   connection fails, and remember per registry which scheme answered. Secure clients use
//!   HTTPS with the system roots plus an optional CA bundle, and report an HTTP-only registry
//!   as upstream does (`BadRequest`).
//! * **Limits**: a total timeout per attempt (body included), body limits enforced while
//!   reading ([`MAX_MANIFEST_BYTES`], [`MAX_CONFIG_BYTES`]), at most
//!   [`RegistryConfig::max_redirects`] redirects, a per-registry concurrency limit.
//! * **Retries** (backon) on transient failures only: connection errors, timeouts, 429 (after
//!   `Retry-After`, capped), 500/502/503/504; three attempts in all, like upstream.
//! * **Verification**: manifests and blobs must hash to the digest they were asked by and to
//!   the `Docker-Content-Digest` the registry announced (schema1 bodies excepted: their digest
//!   covers the unsigned payload).
//! * **Guards** before any request: the whitelist and blocked registries ([`policy`]), and
//!   link-local / metadata / unspecified addresses, on the first hop and on every redirect
//!   (literal IPs checked directly, names in DNS resolution).
//! * **Quotas**: `ratelimit-limit` / `ratelimit-remaining` on manifest responses are kept per
//!   registry and credential ([`quota`]) for the scheduler's pacing, and told to the observer.
//! * **Observation**: every HTTP exchange (token requests and redirect hops included) is
//!   reported to an optional [`RequestObserver`], for metrics and for tests.
//!
//! Errors are [`RegistryError`]s carrying upstream's status reasons (semantics 5.9). The
//! import engine's `Source` over a client lives with the engine
//! (`crate::import::source::RepositorySource`): the transport knows nothing of imports.

mod cache;
mod client;
pub mod error;
pub mod policy;
pub mod protocol;
pub mod quota;
mod transport;

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub use cache::ClientCache;
pub use client::RegistryClient;
pub use error::{RegistryError, UnauthorizedKind};
pub use policy::{AllowedRegistries, BlockedRegistries, Transport};

pub use crate::credentials::BasicCredentials;
pub use protocol::{MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, MAX_TAG_PAGE_BYTES};

/// What a [`ClientCache`] keys clients by. Two requests share a client (and its tokens) only
/// when all three fields are equal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// Opaque identity of the credential set (from the keyring: e.g. secret UID and
    /// resourceVersion); empty for anonymous access.
    pub credentials_id: String,
    /// Skip certificate verification and fall back to plain HTTP.
    pub insecure: bool,
    /// Hash of the extra CA bundle, if any.
    pub ca_bundle_hash: Option<String>,
}

/// What a manifest HEAD tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestHead {
    /// `Docker-Content-Digest`, or the requested digest when the registry sent none.
    pub digest: String,
    /// `Content-Type` without parameters, when sent.
    pub media_type: Option<String>,
    /// `Content-Length`, when sent.
    pub size: Option<u64>,
}

/// A fetched manifest: its exact bytes, its verified digest and its media type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub bytes: bytes::Bytes,
    pub digest: String,
    pub media_type: String,
}

/// Which registry endpoint a request went to, for metrics labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathKind {
    /// `/v2/<repo>/manifests/<ref>`
    Manifest,
    /// `/v2/<repo>/blobs/<digest>` (and where its redirects lead)
    Blob,
    /// `/v2/<repo>/tags/list`
    Tags,
    /// the token server named by a Bearer challenge
    Token,
}

impl PathKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PathKind::Manifest => "manifest",
            PathKind::Blob => "blob",
            PathKind::Tags => "tags",
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

/// The Docker Hub names users write map to its API host; every other registry is itself.
pub fn endpoint_host(registry: &str) -> &str {
    match registry {
        crate::reference::DOCKER_DEFAULT_REGISTRY
        | crate::reference::DOCKER_DEFAULT_V1_REGISTRY => {
            crate::reference::DOCKER_DEFAULT_V2_REGISTRY
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_names_map_to_the_api_host() {
        assert_eq!(endpoint_host("docker.io"), "registry-1.docker.io");
        assert_eq!(endpoint_host("index.docker.io"), "registry-1.docker.io");
        assert_eq!(endpoint_host("quay.io"), "quay.io");
        assert_eq!(endpoint_host("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
