//! A batch of imports as one request: the pull specs of an ImageStreamImport (or of a stream's
//! tags) turned into registry calls with the right credentials, transport and policy, and
//! back into per-entry results (semantics 5.3, 5.6, 5.8).
//!
//! This is where the pieces meet: references are parsed with OpenShift's rules, each
//! repository gets the client for its credential set and TLS setting (from a shared
//! [`ClientCache`], so a namespace's token never serves another), blocked and non-whitelisted
//! registries are refused before any request (the client checks them), and each entry runs
//! through [`engine::import`] (HEAD first, known Images never refetched).
//!
//! Entries of one repository run one after another, sharing what they learnt (a digest fetched
//! for one tag is not fetched again for the next); repositories run concurrently. Results are
//! plain data: the ImageStreamImport status and the stream's history are written by their
//! controllers.
//!
//! One deviation: where upstream re-runs the *whole* request without credentials when a
//! registry says "incorrect username or password", only the entries that said so are re-run,
//! anonymously; an entry keeps its first answer when the anonymous one is `Unauthorized` too.
//! The outcome for those entries is the same, and the others cost nothing more.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::api::image::Image;
use crate::config::Platform;
use crate::credentials::{Credential, Keyring};
use crate::reference::{DockerImageReference, prioritize_tags};
use crate::registry::{ClientCache, ClientKey, RegistryClient, RegistryError, RepositorySource};

use super::engine::{self, ImportError, KnownImages, ListResolutions, Mode, Outcome};

/// Default of `maxImagesBulkImportedPerRepository`.
pub const DEFAULT_BULK_IMPORT_LIMIT: usize = 50;

/// Repositories imported at the same time within one batch.
const CONCURRENT_REPOSITORIES: usize = 8;

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
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_platform: Platform::default(),
            bulk_import_limit: Some(DEFAULT_BULK_IMPORT_LIMIT),
            insecure_registries: Vec::new(),
            ca_bundles: HashMap::new(),
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
}

/// Platform preference for Legacy mode (the `importer.image.openshift.io/prefer-*`
/// annotations of the target spec tag).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preference {
    pub arch: Option<String>,
    pub os: Option<String>,
}

/// One image to import (an ImageStreamImport `spec.images[i]`, or a spec tag).
#[derive(Clone, Debug)]
pub struct ImageImport {
    /// The pull spec as written (`nginx`, `quay.io/a/b:v1`, `x@sha256:…`).
    pub from: String,
    pub mode: Mode,
    /// `importPolicy.insecure` (or the stream's insecure annotation).
    pub insecure: bool,
    pub prefer: Preference,
    /// The tag's current image, for the HEAD-first shortcut.
    pub current_image: Option<String>,
}

impl ImageImport {
    pub fn new(from: impl Into<String>, mode: Mode) -> ImageImport {
        ImageImport {
            from: from.into(),
            mode,
            insecure: false,
            prefer: Preference::default(),
            current_image: None,
        }
    }
}

/// A whole repository to import (ImageStreamImport `spec.repository`).
#[derive(Clone, Debug)]
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

/// A failed entry: a Kubernetes status reason, its code and a message naming what failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub reason: &'static str,
    pub code: u16,
    pub message: String,
}

impl Failure {
    fn new(reason: &'static str, message: String) -> Failure {
        Failure {
            reason,
            code: status_code(reason),
            message,
        }
    }

    fn from_registry(err: &RegistryError) -> Failure {
        Failure {
            reason: err.reason(),
            code: err.code(),
            message: err.message(),
        }
    }

    /// Upstream's answer to a pull spec that does not parse (semantics 5.3).
    fn invalid_name(from: &str, detail: &str) -> Failure {
        Failure::new(
            "Invalid",
            format!(" \"\" is invalid: from.name: Invalid value: {from:?}: invalid name: {detail}"),
        )
    }

    fn is_bad_password(&self) -> bool {
        self.reason == "Unauthorized"
            && self
                .message
                .to_ascii_lowercase()
                .contains("username or password")
    }
}

impl From<ImportError> for Failure {
    fn from(err: ImportError) -> Failure {
        Failure::new(err.reason, err.message)
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

/// The digest an Image object stands for.
pub fn image_digest(image: &Image) -> Option<String> {
    image
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(crate::names::ANNOTATION_IMAGE).cloned())
        .or_else(|| {
            image
                .metadata
                .name
                .as_deref()
                .and_then(crate::names::parse_image)
        })
}

/// Runs imports with shared registry clients. One per process; cheap to share.
pub struct Importer {
    clients: ClientCache,
    lists: ListResolutions,
}

impl std::fmt::Debug for Importer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Importer")
            .field("clients", &self.clients)
            .finish_non_exhaustive()
    }
}

/// Where one parsed entry goes: the client key parts and the registry path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Target {
    /// The defaulted registry (`docker.io`, `quay.io`, `127.0.0.1:5000`).
    registry: String,
    /// The defaulted repository path (`library/nginx`).
    repository: String,
    insecure: bool,
}

/// One engine request, after parsing.
#[derive(Clone, Debug)]
struct Planned {
    /// Index into the batch results (images), or `None` for a repository tag.
    slot: Slot,
    written: String,
    /// Tag or digest.
    reference: String,
    tag: String,
    mode: Mode,
    prefer: Preference,
    current_image: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Image(usize),
    RepositoryTag(usize),
}

impl Importer {
    /// `clients` carries the registry settings (timeouts, retries, whitelist, blocked
    /// registries, concurrency) every import shares.
    pub fn new(clients: ClientCache) -> Importer {
        Importer {
            clients,
            lists: ListResolutions::default(),
        }
    }

    /// The shared client cache (to forget the clients of a changed secret).
    pub fn clients(&self) -> &ClientCache {
        &self.clients
    }

    /// Imports what `batch` asks for with `keyring`'s credentials. Never fails as a whole:
    /// each entry carries its own result.
    pub async fn import<K: KnownImages + Sync>(
        &self,
        batch: &Batch,
        keyring: &Keyring,
        known: &K,
        settings: &Settings,
        now: jiff::Timestamp,
    ) -> BatchResult {
        self.import_until(batch, keyring, known, settings, now, None)
            .await
    }

    /// As [`Importer::import`], stopping at `deadline`: what is not done by then (the tag
    /// list, an entry in flight, entries not started) fails with `Timeout`; what finished
    /// keeps its result. For requests answered within a time limit (the admission webhook).
    pub async fn import_until<K: KnownImages + Sync>(
        &self,
        batch: &Batch,
        keyring: &Keyring,
        known: &K,
        settings: &Settings,
        now: jiff::Timestamp,
        deadline: Option<Instant>,
    ) -> BatchResult {
        let known = Learnt {
            base: known,
            added: Mutex::new(BTreeMap::new()),
        };
        let mut images: Vec<Option<ImageResult>> = vec![None; batch.images.len()];
        let mut groups: BTreeMap<Target, Vec<Planned>> = BTreeMap::new();

        for (i, entry) in batch.images.iter().enumerate() {
            match plan_image(i, entry, settings) {
                Ok((target, planned)) => groups.entry(target).or_default().push(planned),
                Err(failure) => images[i] = Some(Err(failure)),
            }
        }

        // The repository's tag list comes first: which tags it imports depends on it.
        let mut repository = None;
        let mut repository_tags = Vec::new();
        if let Some(repo) = &batch.repository {
            let listed = until(
                deadline,
                self.plan_repository(repo, keyring, settings, &batch.images),
            )
            .await
            .unwrap_or_else(|| Err(timed_out(&repo.from)));
            match listed {
                Ok((target, tags, additional)) => {
                    for (n, tag) in tags.iter().enumerate() {
                        groups.entry(target.clone()).or_default().push(Planned {
                            slot: Slot::RepositoryTag(n),
                            written: repo.from.clone(),
                            reference: tag.clone(),
                            tag: tag.clone(),
                            mode: repo.mode,
                            prefer: repo.prefer.get(tag).cloned().unwrap_or_default(),
                            current_image: repo.current.get(tag).cloned(),
                        });
                    }
                    repository_tags = vec![None; tags.len()];
                    repository = Some(RepositoryResult {
                        images: Ok(Vec::new()),
                        tags,
                        additional_tags: additional,
                    });
                }
                Err(failure) => {
                    repository = Some(RepositoryResult {
                        images: Err(failure),
                        tags: Vec::new(),
                        additional_tags: Vec::new(),
                    })
                }
            }
        }

        let results: Vec<(Slot, ImageResult)> = futures::stream::iter(groups)
            .map(|(target, planned)| {
                self.import_group(target, planned, keyring, &known, settings, now, deadline)
            })
            .buffer_unordered(CONCURRENT_REPOSITORIES)
            .flat_map(futures::stream::iter)
            .collect()
            .await;

        for (slot, result) in results {
            match slot {
                Slot::Image(i) => images[i] = Some(result),
                Slot::RepositoryTag(n) => repository_tags[n] = Some(result),
            }
        }
        if let Some(RepositoryResult {
            images: Ok(list), ..
        }) = &mut repository
        {
            *list = repository_tags
                .into_iter()
                .map(|r| r.unwrap_or_else(|| Err(unknown_failure())))
                .collect();
        }
        BatchResult {
            images: images
                .into_iter()
                .map(|r| r.unwrap_or_else(|| Err(unknown_failure())))
                .collect(),
            repository,
            new_images: known
                .added
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner),
        }
    }

    /// Lists and orders a repository's tags: the first `limit` to import, and the rest
    /// (minus those `spec.images` already asks for, which are imported too, as upstream).
    async fn plan_repository(
        &self,
        repo: &RepositoryImport,
        keyring: &Keyring,
        settings: &Settings,
        images: &[ImageImport],
    ) -> Result<(Target, Vec<String>, Vec<String>), Failure> {
        let parsed = DockerImageReference::parse(&repo.from)
            .map_err(|e| Failure::invalid_name(&repo.from, &e.to_string()))?;
        if !parsed.tag.is_empty() || !parsed.id.is_empty() || parsed.name.is_empty() {
            return Err(Failure::new(
                "Invalid",
                format!(
                    " \"\" is invalid: from.name: Invalid value: {:?}: you must specify an image repository, not a tag or ID",
                    repo.from
                ),
            ));
        }
        let target = target_of(&parsed, repo.insecure, settings);
        let listed = self
            .with_credential_fallback(&target, keyring, settings, |client| {
                let target = target.clone();
                async move { client.list_tags(&target.registry, &target.repository).await }
            })
            .await
            .map_err(|e| Failure::from_registry(&e))?;

        let mut tags: Vec<String> = listed
            .into_iter()
            .map(|t| {
                if t.is_empty() {
                    "latest".to_string()
                } else {
                    t
                }
            })
            .collect();
        tags.sort();
        tags.dedup();
        prioritize_tags(&mut tags);
        let limit = settings.bulk_import_limit.unwrap_or(usize::MAX);
        if tags.len() <= limit {
            return Ok((target, tags, Vec::new()));
        }
        let rest = tags.split_off(limit);
        // Tags spec.images fetches from this same repository are included, not "additional".
        let requested: Vec<String> = images
            .iter()
            .filter_map(|i| DockerImageReference::parse(&i.from).ok())
            .filter(|r| r.id.is_empty() && target_of(r, repo.insecure, settings) == target)
            .map(|r| {
                if r.tag.is_empty() {
                    "latest".to_string()
                } else {
                    r.tag
                }
            })
            .collect();
        let (extra, additional): (Vec<String>, Vec<String>) =
            rest.into_iter().partition(|t| requested.contains(t));
        tags.extend(extra);
        Ok((target, tags, additional))
    }

    /// Imports one repository's entries in order, each with the target's client; an entry
    /// not done by `deadline` fails with `Timeout`.
    #[allow(clippy::too_many_arguments)]
    async fn import_group<K: KnownImages + Sync>(
        &self,
        target: Target,
        planned: Vec<Planned>,
        keyring: &Keyring,
        known: &Learnt<'_, K>,
        settings: &Settings,
        now: jiff::Timestamp,
        deadline: Option<Instant>,
    ) -> Vec<(Slot, ImageResult)> {
        let credential = keyring.best(&target.registry, &target.repository);
        let client = self.client(&target, &credential, settings);
        let mut out = Vec::with_capacity(planned.len());
        for p in planned {
            let one = self.import_one(&client, &credential, &target, &p, known, settings, now);
            let result = until(deadline, one)
                .await
                .unwrap_or_else(|| Err(timed_out(&p.written)));
            out.push((p.slot, result));
        }
        out
    }

    /// One entry with the target's client, and once more anonymously when the registry
    /// rejected the username or password.
    #[allow(clippy::too_many_arguments)]
    async fn import_one<K: KnownImages + Sync>(
        &self,
        client: &Result<Arc<RegistryClient>, RegistryError>,
        credential: &Credential,
        target: &Target,
        p: &Planned,
        known: &Learnt<'_, K>,
        settings: &Settings,
        now: jiff::Timestamp,
    ) -> ImageResult {
        let client = client.as_ref().map_err(Failure::from_registry)?;
        let first = self.run_one(client, target, p, known, settings, now).await;
        match first {
            Err(f) if f.is_bad_password() && !credential.is_anonymous() => {
                match self.client(target, &Credential::anonymous(), settings) {
                    Ok(anonymous) => {
                        match self
                            .run_one(&anonymous, target, p, known, settings, now)
                            .await
                        {
                            Err(again) if again.reason == "Unauthorized" => Err(f),
                            other => other,
                        }
                    }
                    Err(_) => Err(f),
                }
            }
            other => other,
        }
    }

    async fn run_one<K: KnownImages + Sync>(
        &self,
        client: &Arc<RegistryClient>,
        target: &Target,
        p: &Planned,
        known: &Learnt<'_, K>,
        settings: &Settings,
        now: jiff::Timestamp,
    ) -> ImageResult {
        let source = RepositorySource::new(
            client.clone(),
            target.registry.clone(),
            target.repository.clone(),
        );
        let repository_as_written = repository_as_written(&p.written);
        let request = engine::Request {
            repository_as_written: &repository_as_written,
            reference: &p.reference,
            mode: p.mode,
            prefer_arch: p.prefer.arch.as_deref(),
            prefer_os: p.prefer.os.as_deref(),
            default_platform: &settings.default_platform,
            current_image: p.current_image.as_deref(),
        };
        let outcome = engine::import(&source, &request, known, &self.lists, now).await?;
        let unchanged = matches!(outcome, Outcome::Unchanged { .. });
        if let Outcome::Imported { images, .. } = &outcome {
            known.add(images);
        }
        let image = outcome.image().to_string();
        Ok(Imported {
            tag: p.tag.clone(),
            reference: format!("{repository_as_written}@{image}"),
            image,
            unchanged,
        })
    }

    fn client(
        &self,
        target: &Target,
        credential: &Credential,
        settings: &Settings,
    ) -> Result<Arc<RegistryClient>, RegistryError> {
        let ca = settings.ca_bundles.get(&target.registry);
        let key = ClientKey {
            credentials_id: credential.id().as_str().to_string(),
            insecure: target.insecure,
            ca_bundle_hash: ca.map(|c| c.hash.clone()),
        };
        self.clients
            .get(&key, credential.basic(), ca.map(|c| c.pem.as_slice()))
    }

    /// Runs `op` with the keyring's credential, and once more anonymously when the registry
    /// rejected the username or password (semantics 5.2 step 8).
    async fn with_credential_fallback<T, F, Fut>(
        &self,
        target: &Target,
        keyring: &Keyring,
        settings: &Settings,
        op: F,
    ) -> Result<T, RegistryError>
    where
        F: Fn(Arc<RegistryClient>) -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        let credential = keyring.best(&target.registry, &target.repository);
        let client = self.client(target, &credential, settings)?;
        match op(client).await {
            Err(
                first @ RegistryError::Unauthorized {
                    kind: crate::registry::UnauthorizedKind::BadCredentials,
                    ..
                },
            ) if !credential.is_anonymous() => {
                let anonymous = self.client(target, &Credential::anonymous(), settings)?;
                match op(anonymous).await {
                    Err(RegistryError::Unauthorized { .. }) => Err(first),
                    other => other,
                }
            }
            other => other,
        }
    }
}

/// Parses a `spec.images` entry into its target and engine request.
fn plan_image(
    index: usize,
    entry: &ImageImport,
    settings: &Settings,
) -> Result<(Target, Planned), Failure> {
    let parsed = DockerImageReference::parse(&entry.from)
        .map_err(|e| Failure::invalid_name(&entry.from, &e.to_string()))?;
    if parsed.name.is_empty() {
        return Err(Failure::invalid_name(
            &entry.from,
            "a repository is required, not only a registry",
        ));
    }
    let (reference, tag) = if parsed.is_digest() {
        (parsed.id.clone(), String::new())
    } else if !parsed.id.is_empty() {
        return Err(Failure::invalid_name(
            &entry.from,
            "invalid reference format",
        ));
    } else {
        let tag = if parsed.tag.is_empty() {
            "latest".to_string()
        } else {
            parsed.tag.clone()
        };
        (tag.clone(), tag)
    };
    Ok((
        target_of(&parsed, entry.insecure, settings),
        Planned {
            slot: Slot::Image(index),
            written: entry.from.clone(),
            reference,
            tag,
            mode: entry.mode,
            prefer: entry.prefer.clone(),
            current_image: entry.current_image.clone(),
        },
    ))
}

fn target_of(parsed: &DockerImageReference, insecure: bool, settings: &Settings) -> Target {
    let defaulted = parsed.docker_client_defaults();
    let insecure = insecure
        || settings
            .insecure_registries
            .iter()
            .any(|r| r == &defaulted.registry);
    Target {
        repository: defaulted.repository_name(),
        registry: defaulted.registry,
        insecure,
    }
}

/// The repository part of a pull spec as the user wrote it (`nginx`, `quay.io/a/b`).
fn repository_as_written(from: &str) -> String {
    DockerImageReference::parse(from)
        .map(|r| r.as_repository().exact())
        .unwrap_or_else(|_| from.to_string())
}

/// `work`, unless `deadline` comes first (`None` then).
async fn until<T>(deadline: Option<Instant>, work: impl Future<Output = T>) -> Option<T> {
    match deadline {
        None => Some(work.await),
        Some(deadline) => tokio::time::timeout_at(deadline, work).await.ok(),
    }
}

/// An entry (or tag list) not done by the request's deadline.
fn timed_out(from: &str) -> Failure {
    Failure::new(
        "Timeout",
        format!("{from}: the registry did not answer within the time limit of the import request"),
    )
}

/// Upstream's answer when an entry produced neither an image nor an error.
fn unknown_failure() -> Failure {
    Failure::new(
        "InternalError",
        "unknown error while importing, please try again.".into(),
    )
}

/// The caller's known Images plus those this batch fetched.
struct Learnt<'a, K> {
    base: &'a K,
    added: Mutex<BTreeMap<String, Image>>,
}

impl<K> Learnt<'_, K> {
    fn add(&self, images: &[Image]) {
        let mut added = self.added.lock().unwrap_or_else(PoisonError::into_inner);
        for image in images {
            if let Some(digest) = image_digest(image) {
                added.entry(digest).or_insert_with(|| image.clone());
            }
        }
    }
}

impl<K: KnownImages> KnownImages for Learnt<'_, K> {
    fn is_list(&self, digest: &str) -> Option<bool> {
        self.base.is_list(digest).or_else(|| {
            self.added
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(digest)
                .map(|i| i.spec.is_manifest_list())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn entries_are_planned_with_docker_defaults_and_the_users_spelling() {
        let settings = Settings::default();
        let (target, planned) =
            plan_image(0, &ImageImport::new("nginx", Mode::Legacy), &settings).unwrap();
        assert_eq!(target.registry, "docker.io");
        assert_eq!(target.repository, "library/nginx");
        assert!(!target.insecure);
        assert_eq!(
            (planned.reference.as_str(), planned.tag.as_str()),
            ("latest", "latest")
        );
        assert_eq!(repository_as_written(&planned.written), "nginx");

        let from = format!("quay.io/a/b:v1@{D}");
        let (target, planned) =
            plan_image(1, &ImageImport::new(from.clone(), Mode::Legacy), &settings).unwrap();
        assert_eq!(
            (target.registry.as_str(), target.repository.as_str()),
            ("quay.io", "a/b")
        );
        assert_eq!((planned.reference.as_str(), planned.tag.as_str()), (D, ""));
        assert_eq!(repository_as_written(&from), "quay.io/a/b");
    }

    #[test]
    fn insecure_registries_match_the_defaulted_registry_exactly() {
        let settings = Settings {
            insecure_registries: vec!["docker.io".into(), "reg.example.com:5000".into()],
            ..Settings::default()
        };
        let t = |s: &str| {
            target_of(&DockerImageReference::parse(s).unwrap(), false, &settings).insecure
        };
        assert!(t("busybox"));
        assert!(t("reg.example.com:5000/a/b"));
        assert!(!t("reg.example.com/a/b"));
        assert!(!t("x.reg.example.com:5000/a/b"));
    }

    #[test]
    fn unparseable_names_get_upstreams_invalid_message() {
        // TestImport "missing tag, digest, and invalid image reference" (conformance 52)
        let err = plan_image(
            0,
            &ImageImport::new("test///un/parse/able/image", Mode::Legacy),
            &Settings::default(),
        )
        .unwrap_err();
        assert_eq!(err.reason, "Invalid");
        assert_eq!(err.code, 422);
        assert_eq!(
            err.message,
            " \"\" is invalid: from.name: Invalid value: \"test///un/parse/able/image\": invalid name: invalid reference format"
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
