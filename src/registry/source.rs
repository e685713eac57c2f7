//! The import engine's [`Source`] over a [`RegistryClient`]: one repository of one registry.

use std::sync::Arc;

use crate::import::engine::{Fetched, Head, Source, SourceError};

use super::{MAX_CONFIG_BYTES, RegistryClient, RegistryError};

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
}
