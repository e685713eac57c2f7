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
pub mod config;
pub mod error;
pub mod policy;
pub mod protocol;
pub mod quota;
mod transport;

pub use cache::ClientCache;
pub use client::RegistryClient;
pub use config::{Exchange, PathKind, RegistryConfig, RequestObserver};
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
