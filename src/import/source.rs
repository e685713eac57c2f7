//! Where the engine's bytes come from: the [`Source`] trait (the registry operations one
//! import needs, on one repository), [`RepositorySource`] over a [`RegistryClient`], and
//! [`CachingSource`], which serves config blobs already fetched from a [`ConfigCache`].
//!
//! The trait keeps [`super::engine`] free of the transport: the engine's decisions are tested
//! against a hand-written fake (`fake`, tests only), and run against a registry in
//! production and in the registry tests.

use std::future::Future;
use std::sync::Arc;

use crate::registry::{MAX_CONFIG_BYTES, RegistryClient, RegistryError};

use super::config_cache::ConfigCache;

#[cfg(test)]
pub(crate) mod fake;

/// What a HEAD of a manifest tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub digest: String,
    pub media_type: String,
    /// `Content-Length`, when the registry sent it.
    pub size: Option<u64>,
}

/// A fetched manifest: its bytes, verified digest and media type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub digest: String,
    pub media_type: String,
}

/// A registry failure as the engine sees it: a Kubernetes status reason and a message.
pub trait SourceError: std::error::Error + Send + Sync + 'static {
    /// `NotFound`, `Unauthorized`, `Forbidden`, `BadRequest`, `TooManyRequests`, `Timeout`,
    /// `InternalError`.
    fn reason(&self) -> &'static str;
}

/// The registry operations an import needs, on one repository.
pub trait Source {
    type Error: SourceError;
    /// HEAD of a manifest by tag or digest; never a GET.
    fn head(&self, reference: &str) -> impl Future<Output = Result<Head, Self::Error>> + Send;
    /// GET of a manifest by tag or digest, digest-verified, size-limited.
    fn manifest(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<Fetched, Self::Error>> + Send;
    /// GET of a blob (an image config), digest-verified, size-limited.
    fn blob(&self, digest: &str) -> impl Future<Output = Result<Vec<u8>, Self::Error>> + Send;
    /// GET of the OCI referrers index of `digest`, size-limited as a manifest, unparsed;
    /// `NotFound` from a registry without the API.
    fn referrers(&self, digest: &str) -> impl Future<Output = Result<Vec<u8>, Self::Error>> + Send;
}

impl SourceError for RegistryError {
    fn reason(&self) -> &'static str {
        RegistryError::reason(self)
    }
}

/// `registry/repository` through a client (whose credentials and TLS setting fit it).
#[derive(Clone, Debug)]
pub struct RepositorySource {
    client: Arc<RegistryClient>,
    registry: String,
    repository: String,
    config_limit: usize,
}

impl RepositorySource {
    /// `registry` is `host[:port]` as the reference names it (`docker.io` is fine);
    /// `repository` is the path (`library/nginx`).
    pub fn new(
        client: Arc<RegistryClient>,
        registry: impl Into<String>,
        repository: impl Into<String>,
    ) -> Self {
        RepositorySource {
            client,
            registry: registry.into(),
            repository: repository.into(),
            config_limit: MAX_CONFIG_BYTES,
        }
    }

    /// Largest config blob accepted (default [`MAX_CONFIG_BYTES`]).
    pub fn with_config_limit(mut self, limit: usize) -> Self {
        self.config_limit = limit;
        self
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }
}

impl Source for RepositorySource {
    type Error = RegistryError;

    async fn head(&self, reference: &str) -> Result<Head, RegistryError> {
        let head = self
            .client
            .head_manifest(&self.registry, &self.repository, reference)
            .await?;
        Ok(Head {
            digest: head.digest,
            media_type: head.media_type.unwrap_or_default(),
            size: head.size,
        })
    }

    async fn manifest(&self, reference: &str) -> Result<Fetched, RegistryError> {
        let manifest = self
            .client
            .get_manifest(&self.registry, &self.repository, reference)
            .await?;
        Ok(Fetched {
            bytes: manifest.bytes.to_vec(),
            digest: manifest.digest,
            media_type: manifest.media_type,
        })
    }

    async fn blob(&self, digest: &str) -> Result<Vec<u8>, RegistryError> {
        let bytes = self
            .client
            .get_blob(&self.registry, &self.repository, digest, self.config_limit)
            .await?;
        Ok(bytes.to_vec())
    }

    async fn referrers(&self, digest: &str) -> Result<Vec<u8>, RegistryError> {
        let bytes = self
            .client
            .get_referrers(&self.registry, &self.repository, digest)
            .await?;
        Ok(bytes.to_vec())
    }
}

/// A [`Source`] whose config blobs come from `cache` when their digest was fetched before
/// (by any import: a config is named by its digest, and the source verified the bytes
/// against it). Manifests and HEADs always go to the source.
#[derive(Debug)]
pub struct CachingSource<'a, S> {
    inner: &'a S,
    cache: &'a ConfigCache,
}

impl<'a, S> CachingSource<'a, S> {
    pub fn new(inner: &'a S, cache: &'a ConfigCache) -> Self {
        CachingSource { inner, cache }
    }
}

impl<S: Source + Sync> Source for CachingSource<'_, S> {
    type Error = S::Error;

    fn head(&self, reference: &str) -> impl Future<Output = Result<Head, Self::Error>> + Send {
        self.inner.head(reference)
    }

    fn manifest(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<Fetched, Self::Error>> + Send {
        self.inner.manifest(reference)
    }

    async fn blob(&self, digest: &str) -> Result<Vec<u8>, Self::Error> {
        if let Some(bytes) = self.cache.get(digest) {
            return Ok(bytes.to_vec());
        }
        let bytes = self.inner.blob(digest).await?;
        self.cache.put(digest, &bytes);
        Ok(bytes)
    }

    fn referrers(&self, digest: &str) -> impl Future<Output = Result<Vec<u8>, Self::Error>> + Send {
        self.inner.referrers(digest)
    }
}
