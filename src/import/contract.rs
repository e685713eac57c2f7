//! The import contract: what the rules ask the import engine for, and what it answers, as
//! plain data. No IO here.
//!
//! Why one module: the rules ([`crate::stream`]) decide *which* references to import *how*,
//! and the engine ([`super::engine`], [`super::importer`]) talks to registries. Both speak
//! these types, so a spec tag becomes an [`ImageImport`] once, in the rules, and reaches the
//! engine as it is: no field is copied from one request type into another, and its pull spec
//! is parsed once, when the [`PullSpec`] is made. The rules depend on this module, never on
//! the engine; the engine depends on it and on the registry transport.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::api::image::Image;
use crate::config::Platform;
use crate::reference::{DEFAULT_IMAGE_TAG, DockerImageReference, ReferenceError};

/// Default of `maxImagesBulkImportedPerRepository`.
pub const DEFAULT_BULK_IMPORT_LIMIT: usize = 50;

/// How a manifest list is imported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One child: the preferred platform, the default platform, linux/amd64, the first.
    Legacy,
    /// The list and every child.
    PreserveOriginal,
}

/// Platform preference for Legacy mode (the `importer.image.openshift.io/prefer-*`
/// annotations of the target spec tag).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preference {
    pub arch: Option<String>,
    pub os: Option<String>,
}

/// A pull spec as the user wrote it, parsed once with OpenShift's rules when it is made.
/// The spelling is kept for everything recorded (TagEvents, Images, messages); the parsed
/// form decides where requests go.
#[derive(Clone, PartialEq, Eq)]
pub struct PullSpec {
    written: String,
    parsed: Result<DockerImageReference, ReferenceError>,
}

impl PullSpec {
    /// Parses `written` (an unparseable pull spec is kept, and answered as upstream does when
    /// it is imported: [`PullSpec::image`]).
    pub fn new(written: impl Into<String>) -> PullSpec {
        let written = written.into();
        let parsed = DockerImageReference::parse(&written);
        PullSpec { written, parsed }
    }

    /// A pull spec whose parsed form is already known (`parsed` must be what `written`
    /// parses to).
    pub fn from_parsed(written: impl Into<String>, parsed: DockerImageReference) -> PullSpec {
        PullSpec {
            written: written.into(),
            parsed: Ok(parsed),
        }
    }

    /// The pull spec as written.
    pub fn as_str(&self) -> &str {
        &self.written
    }

    /// The parsed reference, or why it does not parse.
    pub fn parsed(&self) -> Result<&DockerImageReference, &ReferenceError> {
        self.parsed.as_ref()
    }

    /// The registry a client connects to for it (`docker.io` for `nginx`); `None` when the
    /// pull spec does not parse.
    pub fn registry(&self) -> Option<String> {
        self.parsed
            .as_ref()
            .ok()
            .map(|r| r.docker_client_defaults().registry)
    }

    /// Whether it names an image by digest.
    pub fn is_digest(&self) -> bool {
        self.parsed
            .as_ref()
            .is_ok_and(DockerImageReference::is_digest)
    }

    /// What to fetch: the repository as written, and a tag (`latest` when none is written)
    /// or a digest. Upstream's `Invalid` answer when the pull spec names no image.
    pub fn image(&self) -> Result<ImageName, Failure> {
        let parsed = self
            .parsed
            .as_ref()
            .map_err(|e| Failure::invalid_name(&self.written, &e.to_string()))?;
        if parsed.name.is_empty() {
            return Err(Failure::invalid_name(
                &self.written,
                "a repository is required, not only a registry",
            ));
        }
        let (reference, tag) = if parsed.is_digest() {
            (parsed.id.clone(), String::new())
        } else if !parsed.id.is_empty() {
            return Err(Failure::invalid_name(
                &self.written,
                "invalid reference format",
            ));
        } else {
            let tag = if parsed.tag.is_empty() {
                DEFAULT_IMAGE_TAG.to_string()
            } else {
                parsed.tag.clone()
            };
            (tag.clone(), tag)
        };
        Ok(ImageName {
            repository_as_written: parsed.as_repository().exact(),
            reference,
            tag,
        })
    }
}

impl fmt::Debug for PullSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.written, f)
    }
}

impl fmt::Display for PullSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

impl From<String> for PullSpec {
    fn from(written: String) -> PullSpec {
        PullSpec::new(written)
    }
}

impl From<&str> for PullSpec {
    fn from(written: &str) -> PullSpec {
        PullSpec::new(written)
    }
}

/// The image a [`PullSpec`] names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageName {
    /// The repository as the user wrote it (`nginx`, `quay.io/a/b`): Images and TagEvents
    /// keep this spelling.
    pub repository_as_written: String,
    /// A tag, or a digest.
    pub reference: String,
    /// The tag; empty for a digest.
    pub tag: String,
}

impl ImageName {
    /// Whether [`Self::reference`] is a digest.
    pub fn is_digest(&self) -> bool {
        self.tag.is_empty()
    }

    /// `<repository>:<tag>` or `<repository>@<digest>`, for messages.
    pub fn full(&self) -> String {
        let separator = if self.is_digest() { '@' } else { ':' };
        format!(
            "{}{separator}{}",
            self.repository_as_written, self.reference
        )
    }
}

/// "Import this reference with this policy": one image (an ImageStreamImport
/// `spec.images[i]`, or a spec tag).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageImport {
    /// The pull spec as written (`nginx`, `quay.io/a/b:v1`, `x@sha256:…`).
    pub from: PullSpec,
    pub mode: Mode,
    /// `importPolicy.insecure` (or the stream's insecure annotation).
    pub insecure: bool,
    pub prefer: Preference,
    /// The tag's current image (items[0].image), for the HEAD-first shortcut.
    pub current_image: Option<String>,
    /// Verify the image against the image policies even when it is the current one (a
    /// policy changed, or the current image failed its last verification); otherwise only a
    /// new image is verified.
    pub verify_current: bool,
}

impl ImageImport {
    pub fn new(from: impl Into<PullSpec>, mode: Mode) -> ImageImport {
        ImageImport {
            from: from.into(),
            mode,
            insecure: false,
            prefer: Preference::default(),
            current_image: None,
            verify_current: false,
        }
    }
}

/// A whole repository to import (ImageStreamImport `spec.repository`,
/// `spec.dockerImageRepository`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepositoryImport {
    /// The repository as written, without tag or digest.
    pub from: String,
    pub mode: Mode,
    pub insecure: bool,
    /// Preferences by tag name (the stream's spec tags of the same name).
    pub prefer: BTreeMap<String, Preference>,
    /// Current images by tag name, for the HEAD-first shortcut.
    pub current: BTreeMap<String, String>,
}

/// What one import request asks for.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub images: Vec<ImageImport>,
    pub repository: Option<RepositoryImport>,
}

/// The cluster settings an import applies (from `ImageConfig` and `ImageImportConfig`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// The platform Legacy mode picks from a list when no annotation says otherwise.
    pub default_platform: Platform,
    /// Tags imported from a repository; `None` is unlimited.
    pub bulk_import_limit: Option<usize>,
    /// `registrySources.insecureRegistries`: registries (`host[:port]`, compared exactly with
    /// the defaulted registry, as upstream) imported without TLS verification.
    pub insecure_registries: Vec<String>,
    /// Extra CA bundles (PEM) by registry `host[:port]`.
    pub ca_bundles: HashMap<String, Arc<CaBundle>>,
    /// The image policies, resolved: an image one covers is verified before its tag moves.
    pub policies: Arc<Vec<crate::trust::ResolvedPolicy>>,
    /// Which new images have their referrers listed (`ImageImportConfig` `referrers`).
    pub referrers: crate::config::ReferrerListing,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_platform: Platform::default(),
            bulk_import_limit: Some(DEFAULT_BULK_IMPORT_LIMIT),
            insecure_registries: Vec::new(),
            ca_bundles: HashMap::new(),
            policies: Arc::default(),
            referrers: crate::config::ReferrerListing::default(),
        }
    }
}

/// A PEM bundle and its hash (which keys the clients that trust it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaBundle {
    pem: Vec<u8>,
    hash: String,
}

impl CaBundle {
    pub fn new(pem: Vec<u8>) -> CaBundle {
        let hash = format!("{:x}", Sha256::digest(&pem));
        CaBundle { pem, hash }
    }

    pub fn pem(&self) -> &[u8] {
        &self.pem
    }

    /// SHA-256 of the PEM, hex.
    pub fn hash(&self) -> &str {
        &self.hash
    }
}

/// A failed import: a Kubernetes status reason (stable, used for conditions, Events and
/// metric labels), its code and a message naming what failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub reason: &'static str,
    pub code: u16,
    pub message: String,
}

impl Failure {
    /// A failure with the code Kubernetes pairs with `reason`.
    pub fn new(reason: &'static str, message: String) -> Failure {
        Failure {
            reason,
            code: status_code(reason),
            message,
        }
    }

    /// Upstream's answer to a pull spec that does not parse (semantics 5.3).
    pub fn invalid_name(from: &str, detail: &str) -> Failure {
        Failure::new(
            "Invalid",
            format!(" \"\" is invalid: from.name: Invalid value: {from:?}: invalid name: {detail}"),
        )
    }

    /// Whether the registry rejected the username or password (upstream then tries again
    /// without credentials).
    pub fn is_bad_password(&self) -> bool {
        self.reason == "Unauthorized"
            && self
                .message
                .to_ascii_lowercase()
                .contains("username or password")
    }
}

/// The HTTP code Kubernetes pairs with a status reason.
pub fn status_code(reason: &str) -> u16 {
    match reason {
        "BadRequest" => 400,
        "Unauthorized" => 401,
        "Forbidden" => 403,
        "NotFound" => 404,
        "Conflict" => 409,
        "Invalid" => 422,
        "TooManyRequests" => 429,
        "Timeout" => 504,
        _ => 500,
    }
}

/// A successful entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// The tag it was found under; empty for an import by digest.
    pub tag: String,
    /// The digest the entry resolved to (the child for a list in Legacy mode).
    pub image: String,
    /// `<repository as written>@<image>`, the pull spec a TagEvent records.
    pub reference: String,
    /// The registry still serves `current_image`: nothing was fetched.
    pub unchanged: bool,
}

pub type ImageResult = Result<Imported, Failure>;

/// The result of a repository import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepositoryResult {
    /// The imported tags in priority order, or why the repository could not be listed.
    pub images: Result<Vec<ImageResult>, Failure>,
    /// The tag of each entry of `images` (a failed entry names no tag of its own).
    pub tags: Vec<String>,
    /// Tags beyond the bulk limit, not imported.
    pub additional_tags: Vec<String>,
}

impl RepositoryResult {
    /// Upstream's overall status: `None` for success, else `ImportFailed` with a count.
    pub fn failure(&self) -> Option<Failure> {
        match &self.images {
            Err(failure) => Some(failure.clone()),
            Ok(images) => {
                let failed = images.iter().filter(|r| r.is_err()).count();
                match failed {
                    0 => None,
                    1 => Some(Failure::new(
                        "ImportFailed",
                        "one of the images from this repository failed to import".into(),
                    )),
                    n => Some(Failure::new(
                        "ImportFailed",
                        format!("{n} of the images from this repository failed to import"),
                    )),
                }
            }
        }
    }
}

/// Everything a batch produced.
#[derive(Clone, Debug, Default)]
pub struct BatchResult {
    /// One per [`Batch::images`] entry, in order.
    pub images: Vec<ImageResult>,
    pub repository: Option<RepositoryResult>,
    /// Images fetched by this batch, by digest (children and lists alike); Images that were
    /// already known are not here.
    pub new_images: BTreeMap<String, Image>,
    /// The images an image policy covered, and what their verification decided.
    pub verifications: Vec<Verification>,
    /// The referrers listings this batch made.
    pub referrer_lookups: Vec<ReferrerLookup>,
}

/// One referrers listing, for the metrics: where it looked last (`api`, `tags`) and what it
/// found (`listed`, `none`, `failed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReferrerLookup {
    pub source: &'static str,
    pub result: &'static str,
}

impl BatchResult {
    /// New Images in creation order: children before the lists that name them.
    pub fn images_to_create(&self) -> Vec<&Image> {
        let (lists, singles): (Vec<&Image>, Vec<&Image>) = self
            .new_images
            .values()
            .partition(|i| i.spec.is_manifest_list());
        singles.into_iter().chain(lists).collect()
    }
}

/// What the verification of one imported image decided, for the controllers' Events and
/// counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    /// The tag it was imported for (empty for an import by digest).
    pub tag: String,
    pub image: String,
    pub decision: crate::trust::Decision,
    /// The reason and message reported: the refusal's, or what a `Warn` policy found.
    pub failure: Option<(&'static str, String)>,
    /// Each covering policy's result.
    pub policies: Vec<PolicyResult>,
}

/// One covering policy's result for an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyResult {
    pub policy: String,
    pub passed: bool,
    /// Why it failed (a stable reason); empty when it passed.
    pub reason: &'static str,
    /// A passing verdict kept from an earlier verification of the same image.
    pub cached: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn a_pull_spec_names_its_image_with_the_users_spelling() {
        let name = PullSpec::new("nginx").image().unwrap();
        assert_eq!(
            (
                name.repository_as_written.as_str(),
                name.reference.as_str(),
                name.tag.as_str()
            ),
            ("nginx", "latest", "latest")
        );
        assert_eq!(name.full(), "nginx:latest");
        assert_eq!(
            PullSpec::new("nginx").registry().as_deref(),
            Some("docker.io")
        );

        let spec = PullSpec::new(format!("quay.io/a/b:v1@{D}"));
        assert!(spec.is_digest());
        let name = spec.image().unwrap();
        assert_eq!(name.repository_as_written, "quay.io/a/b");
        assert_eq!((name.reference.as_str(), name.tag.as_str()), (D, ""));
        assert_eq!(name.full(), format!("quay.io/a/b@{D}"));
        assert_eq!(spec.as_str(), format!("quay.io/a/b:v1@{D}"));
        assert_eq!(spec.registry().as_deref(), Some("quay.io"));
    }

    #[test]
    fn a_pull_spec_that_names_no_image_is_invalid() {
        // TestImport "missing tag, digest, and invalid image reference" (conformance 52)
        let err = PullSpec::new("test///un/parse/able/image")
            .image()
            .unwrap_err();
        assert_eq!((err.reason, err.code), ("Invalid", 422));
        assert_eq!(
            err.message,
            " \"\" is invalid: from.name: Invalid value: \"test///un/parse/able/image\": invalid name: invalid reference format"
        );
        assert_eq!(PullSpec::new("test///un").registry(), None);
        let registry_only = PullSpec::new("quay.io").image().unwrap_err();
        assert!(
            registry_only
                .message
                .ends_with("a repository is required, not only a registry"),
            "{registry_only:?}"
        );
    }

    #[test]
    fn repository_failure_messages_count_failed_tags() {
        let ok = || {
            Ok(Imported {
                tag: "a".into(),
                image: D.into(),
                reference: format!("x@{D}"),
                unchanged: false,
            })
        };
        let bad = || Err(Failure::new("NotFound", "gone".into()));
        let result = |images: Vec<ImageResult>| RepositoryResult {
            tags: (0..images.len()).map(|i| format!("t{i}")).collect(),
            images: Ok(images),
            additional_tags: vec![],
        };
        assert_eq!(result(vec![ok(), ok()]).failure(), None);
        let one = result(vec![ok(), bad()]).failure().unwrap();
        assert_eq!(
            (one.reason, one.message.as_str()),
            (
                "ImportFailed",
                "one of the images from this repository failed to import"
            )
        );
        let two = result(vec![bad(), bad()]).failure().unwrap();
        assert_eq!(
            two.message,
            "2 of the images from this repository failed to import"
        );
    }

    #[test]
    fn status_codes_follow_the_reason() {
        for (reason, code) in [
            ("NotFound", 404),
            ("Unauthorized", 401),
            ("Forbidden", 403),
            ("BadRequest", 400),
            ("Invalid", 422),
            ("TooManyRequests", 429),
            ("Timeout", 504),
            ("InternalError", 500),
        ] {
            assert_eq!(status_code(reason), code, "{reason}");
        }
    }
}
