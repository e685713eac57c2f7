//! A hand-written registry for the engine's unit tests: manifests by tag and digest, config
//! blobs by digest, failures by reference, and a log of every call. The registry tests run
//! the same engine against a real registry; this fake is for what they cannot show quickly:
//! every branch of the decisions, with the exact calls each one makes.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::registry::protocol::{DOCKER_LIST, DOCKER_SCHEMA2, OCI_MANIFEST};

use super::{Fetched, Head, Source, SourceError};

/// A failure with a status reason, as a registry client reports it.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct FakeError {
    pub reason: &'static str,
    pub message: String,
}

impl SourceError for FakeError {
    fn reason(&self) -> &'static str {
        self.reason
    }
}

/// One repository of a registry that exists only in memory.
#[derive(Default)]
pub(crate) struct FakeSource {
    /// by tag and by digest
    manifests: HashMap<String, Fetched>,
    blobs: HashMap<String, Vec<u8>>,
    /// by tag, manifest digest or blob digest: every request for it fails so
    failures: HashMap<String, FakeError>,
    /// Referrers indexes by subject digest; `None`: a registry without the referrers API.
    referrers: Option<HashMap<String, Vec<u8>>>,
    calls: Mutex<Vec<String>>,
}

pub(crate) fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

impl FakeSource {
    pub fn new() -> FakeSource {
        FakeSource::default()
    }

    /// A config blob for `os/arch`; returns its digest. `label` makes otherwise equal
    /// configs differ.
    pub fn config(&mut self, os: &str, arch: &str, label: &str) -> String {
        let bytes = serde_json::to_vec(&json!({
            "architecture": arch,
            "os": os,
            "created": "2024-05-01T10:00:00Z",
            "config": {"Labels": {"label": label}},
            "rootfs": {"type": "layers", "diff_ids": []},
        }))
        .unwrap_or_default();
        let digest = digest_of(&bytes);
        self.blobs.insert(digest.clone(), bytes);
        digest
    }

    /// A single-platform manifest of `media_type` (OCI or Docker schema2) over `config`,
    /// stored by digest and, when given, by `tag`; returns its digest. `layer` makes
    /// manifests over the same config differ.
    pub fn single(
        &mut self,
        tag: Option<&str>,
        media_type: &str,
        config: &str,
        layer: u8,
    ) -> String {
        let config_len = self.blobs.get(config).map_or(0, Vec::len);
        let config_type = if media_type == DOCKER_SCHEMA2 {
            "application/vnd.docker.container.image.v1+json"
        } else {
            "application/vnd.oci.image.config.v1+json"
        };
        let bytes = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": config_type, "digest": config, "size": config_len},
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest_of(&[layer]),
                "size": 100 + u64::from(layer),
            }],
        }))
        .unwrap_or_default();
        self.put(tag, bytes, media_type)
    }

    /// An OCI image for `os/arch` (its own config and manifest); returns the manifest digest.
    pub fn image(&mut self, tag: Option<&str>, os: &str, arch: &str) -> String {
        let config = self.config(os, arch, tag.unwrap_or("untagged"));
        self.single(tag, OCI_MANIFEST, &config, 1)
    }

    /// A list of `media_type` (OCI index or Docker list) over `children` (digest, os, arch,
    /// annotations), stored by digest and `tag`; returns its digest.
    pub fn list(
        &mut self,
        tag: Option<&str>,
        media_type: &str,
        children: &[(&str, &str, &str)],
        attestation_of: Option<&str>,
    ) -> String {
        let mut manifests: Vec<serde_json::Value> = children
            .iter()
            .map(|(digest, os, arch)| {
                let size = self.manifests.get(*digest).map_or(0, |m| m.bytes.len());
                json!({
                    "mediaType": if media_type == DOCKER_LIST { DOCKER_SCHEMA2 } else { OCI_MANIFEST },
                    "digest": digest,
                    "size": size,
                    "platform": {"os": os, "architecture": arch},
                })
            })
            .collect();
        if let Some(subject) = attestation_of {
            manifests.push(json!({
                "mediaType": OCI_MANIFEST,
                "digest": digest_of(b"attestation"),
                "size": 10,
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {
                    "vnd.docker.reference.type": "attestation-manifest",
                    "vnd.docker.reference.digest": subject,
                },
            }));
        }
        let bytes = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": manifests,
        }))
        .unwrap_or_default();
        self.put(tag, bytes, media_type)
    }

    /// Stores a blob; returns its digest.
    pub fn blob(&mut self, bytes: Vec<u8>) -> String {
        let digest = digest_of(&bytes);
        self.blobs.insert(digest.clone(), bytes);
        digest
    }

    /// Stores raw manifest bytes (by digest and `tag`); returns the digest.
    pub fn put(&mut self, tag: Option<&str>, bytes: Vec<u8>, media_type: &str) -> String {
        let digest = digest_of(&bytes);
        let fetched = Fetched {
            bytes,
            digest: digest.clone(),
            media_type: media_type.to_string(),
        };
        if let Some(tag) = tag {
            self.manifests.insert(tag.to_string(), fetched.clone());
        }
        self.manifests.insert(digest.clone(), fetched);
        digest
    }

    /// Serves the referrers API: `subject`'s index lists `descriptors` (any subject not
    /// given has an empty index, as the API answers).
    pub fn referrers_api(&mut self, subject: &str, descriptors: Vec<serde_json::Value>) {
        let bytes = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": crate::registry::protocol::OCI_INDEX,
            "manifests": descriptors,
        }))
        .unwrap_or_default();
        self.referrers
            .get_or_insert_with(HashMap::new)
            .insert(subject.to_string(), bytes);
    }

    /// Every request for `reference` (a tag, a manifest digest, a blob digest, or
    /// `referrers/<digest>`) fails with `reason`.
    pub fn fail(&mut self, reference: &str, reason: &'static str, message: &str) {
        self.failures.insert(
            reference.to_string(),
            FakeError {
                reason,
                message: message.to_string(),
            },
        );
    }

    /// The calls made since the last call of `take_calls`: `HEAD <ref>`, `GET <ref>` (a
    /// manifest), `BLOB <digest>` and `REFERRERS <digest>`.
    pub fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn record(&self, call: String) {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(call);
    }

    fn check(&self, reference: &str) -> Result<(), FakeError> {
        match self.failures.get(reference) {
            Some(failure) => Err(failure.clone()),
            None => Ok(()),
        }
    }

    fn not_found(what: &str, reference: &str) -> FakeError {
        FakeError {
            reason: "NotFound",
            message: format!("{what} {reference} not found"),
        }
    }
}

impl Source for FakeSource {
    type Error = FakeError;

    async fn head(&self, reference: &str) -> Result<Head, FakeError> {
        self.record(format!("HEAD {reference}"));
        self.check(reference)?;
        let found = self
            .manifests
            .get(reference)
            .ok_or_else(|| FakeSource::not_found("manifest", reference))?;
        Ok(Head {
            digest: found.digest.clone(),
            media_type: found.media_type.clone(),
            size: u64::try_from(found.bytes.len()).ok(),
        })
    }

    async fn manifest(&self, reference: &str) -> Result<Fetched, FakeError> {
        self.record(format!("GET {reference}"));
        self.check(reference)?;
        self.manifests
            .get(reference)
            .cloned()
            .ok_or_else(|| FakeSource::not_found("manifest", reference))
    }

    async fn blob(&self, digest: &str) -> Result<Vec<u8>, FakeError> {
        self.record(format!("BLOB {digest}"));
        self.check(digest)?;
        self.blobs
            .get(digest)
            .cloned()
            .ok_or_else(|| FakeSource::not_found("blob", digest))
    }

    async fn referrers(&self, digest: &str) -> Result<Vec<u8>, FakeError> {
        self.record(format!("REFERRERS {digest}"));
        self.check(&format!("referrers/{digest}"))?;
        let api = self
            .referrers
            .as_ref()
            .ok_or_else(|| FakeSource::not_found("referrers API", digest))?;
        Ok(api.get(digest).cloned().unwrap_or_else(|| {
            serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": []})).unwrap_or_default()
        }))
    }
}
