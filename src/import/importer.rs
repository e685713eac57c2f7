//! A batch of imports as one request: the pull specs of an ImageStreamImport (or of a stream's
//! tags) turned into registry calls with the right credentials, transport and policy, and
//! back into per-entry results (semantics 5.3, 5.6, 5.8).
//!
//! This is where the pieces meet: the request is the import contract's [`Batch`] (pull specs
//! parsed once, when the rules made it), each
//! repository gets the client for its credential set and TLS setting (from a shared
//! [`ClientCache`], so a namespace's token never serves another), blocked and non-whitelisted
//! registries are refused before any request (the client checks them), and each entry runs
//! through [`engine::import`] (HEAD first, known Images never refetched, config blobs
//! fetched once per process: [`ConfigCache`]).
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

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use tokio::time::Instant;

use crate::api::image::Image;
use crate::credentials::{Credential, Keyring};
use crate::reference::{DockerImageReference, prioritize_tags};
use crate::registry::{ClientCache, ClientKey, RegistryClient, RegistryError};

use super::config_cache::ConfigCache;
use super::contract::{
    Batch, BatchResult, Failure, ImageImport, ImageResult, Imported, PullSpec, ReferrerLookup,
    RepositoryImport, RepositoryResult, Settings, Verification,
};
use super::engine::{self, KnownImages, ListResolutions, Outcome};
use super::referrers::{self, Memo, NoReferrersApi};
use super::source::{CachingSource, RepositorySource};
use super::trust::{self, VerdictCache};

/// Repositories imported at the same time within one batch.
const CONCURRENT_REPOSITORIES: usize = 8;
/// A referrers listing ends this long before a request's deadline, so that the import it
/// follows is answered.
const LISTING_MARGIN: std::time::Duration = std::time::Duration::from_millis(250);

fn failure_from_registry(err: &RegistryError) -> Failure {
    Failure {
        reason: err.reason(),
        code: err.code(),
        message: err.message(),
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
    configs: ConfigCache,
    /// Passing signature verdicts (see [`super::trust`]).
    verdicts: VerdictCache,
    /// Registries without the OCI referrers API (see [`super::referrers`]).
    no_referrers_api: NoReferrersApi,
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
    /// Where the result goes.
    slot: Slot,
    /// The pull spec as the request wrote it (the repository, for a repository's tag).
    written: String,
    /// The tag the result is found under; empty for a digest.
    tag: String,
    import: ImageImport,
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
            configs: ConfigCache::default(),
            verdicts: VerdictCache::default(),
            no_referrers_api: NoReferrersApi::default(),
        }
    }

    /// The shared client cache (to forget the clients of a changed secret).
    pub fn clients(&self) -> &ClientCache {
        &self.clients
    }

    /// The config blobs fetched so far, by digest.
    pub fn configs(&self) -> &ConfigCache {
        &self.configs
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
            verifications: Mutex::new(Vec::new()),
            referrer_lookups: Mutex::new(Vec::new()),
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
                Ok((target, parsed, tags, additional)) => {
                    for (n, tag) in tags.iter().enumerate() {
                        groups
                            .entry(target.clone())
                            .or_default()
                            .push(plan_repository_tag(n, repo, &parsed, tag));
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
            verifications: known
                .verifications
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner),
            referrer_lookups: known
                .referrer_lookups
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
    ) -> Result<(Target, DockerImageReference, Vec<String>, Vec<String>), Failure> {
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
            .map_err(|e| failure_from_registry(&e))?;

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
            return Ok((target, parsed, tags, Vec::new()));
        }
        let rest = tags.split_off(limit);
        // Tags spec.images fetches from this same repository are included, not "additional".
        let requested: Vec<String> = images
            .iter()
            .filter_map(|i| i.from.parsed().ok())
            .filter(|r| r.id.is_empty() && target_of(r, repo.insecure, settings) == target)
            .map(|r| {
                if r.tag.is_empty() {
                    "latest".to_string()
                } else {
                    r.tag.clone()
                }
            })
            .collect();
        let (extra, additional): (Vec<String>, Vec<String>) =
            rest.into_iter().partition(|t| requested.contains(t));
        tags.extend(extra);
        Ok((target, parsed, tags, additional))
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
            let one = self.import_one(
                &client,
                &credential,
                &target,
                &p,
                known,
                settings,
                (now, deadline),
            );
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
        (now, deadline): (jiff::Timestamp, Option<Instant>),
    ) -> ImageResult {
        let client = client.as_ref().map_err(failure_from_registry)?;
        self.anonymous_fallback(
            target,
            credential,
            client.clone(),
            settings,
            move |client| async move {
                self.run_one(&client, target, p, known, settings, (now, deadline))
                    .await
            },
        )
        .await
    }

    /// One entry with `client`: the engine, the signature check, the referrers listing.
    /// `deadline` is the request's, if any (see [`Importer::import_until`]).
    async fn run_one<K: KnownImages + Sync>(
        &self,
        client: &Arc<RegistryClient>,
        target: &Target,
        p: &Planned,
        known: &Learnt<'_, K>,
        settings: &Settings,
        (now, deadline): (jiff::Timestamp, Option<Instant>),
    ) -> ImageResult {
        let source = RepositorySource::new(
            client.clone(),
            target.registry.clone(),
            target.repository.clone(),
        );
        let source = CachingSource::new(&source, &self.configs);
        let name = p.import.from.image()?;
        let outcome = engine::import(
            &source,
            &p.import,
            &settings.default_platform,
            known,
            &self.lists,
            now,
        )
        .await?;
        let unchanged = matches!(outcome, Outcome::Unchanged { .. });
        let image = outcome.image().to_string();
        // a new image an image policy covers is verified before the tag moves (the current
        // one when the plan asks): by the digest the tag named, the list for a child Legacy
        // mode chose (cosign signs what it is given, the index of a multi-arch tag)
        let signed = match &outcome {
            Outcome::Imported {
                list: Some(list), ..
            }
            | Outcome::Unchanged {
                list: Some(list), ..
            } => list.clone(),
            _ => image.clone(),
        };
        // what the signature check fetches, the referrers listing does not fetch again
        let memo = Memo::new(&source);
        let verify = !unchanged || p.import.verify_current;
        let verdict = match (verify, p.import.from.parsed()) {
            (true, Ok(reference)) if !settings.policies.is_empty() => {
                trust::check(
                    &memo,
                    &settings.policies,
                    &self.verdicts,
                    reference,
                    &signed,
                    now,
                )
                .await
            }
            _ => None,
        };
        let mut outcome = outcome;
        if let Some((verdict, cached)) = &verdict {
            let (verification, refusal) = trust::outcome(verdict, cached, &p.tag, &signed);
            known
                .verifications
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(verification);
            if let Some(refusal) = refusal {
                return Err(refusal);
            }
            // recorded on the Image the signature names (a list chosen from is not created)
            if let Outcome::Imported { images, .. } = &mut outcome {
                trust::record_signatures(images, &signed, verdict, now);
            }
        }
        // information only: a failure leaves the annotation out, and so does a listing still
        // running just before the request's deadline (the import stands)
        let listing = referrers::record(
            &memo,
            settings.referrers,
            verdict.is_some(),
            &mut outcome,
            &target.registry,
            &self.no_referrers_api,
        );
        let before = deadline.map(|d| d.checked_sub(LISTING_MARGIN).unwrap_or(d));
        match until(before, listing).await {
            Some(Some(listed)) => known
                .referrer_lookups
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(referrers::lookup(&listed)),
            Some(None) => {}
            None => {
                tracing::debug!(image = %image, "referrers not listed: the request's time limit")
            }
        }
        if let Outcome::Imported { images, .. } = &outcome {
            known.add(images);
        }
        Ok(Imported {
            tag: p.tag.clone(),
            reference: format!("{}@{image}", name.repository_as_written),
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
            ca_bundle_hash: ca.map(|c| c.hash().to_string()),
        };
        self.clients
            .get(&key, credential.basic(), ca.map(|c| c.pem()))
    }

    /// Runs `op` with the keyring's credential, and once more anonymously when the registry
    /// rejected the username or password.
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
        self.anonymous_fallback(target, &credential, client, settings, op)
            .await
    }

    /// Runs `op` with `client` (made for `credential`), and once more anonymously when the
    /// registry rejected the username or password (semantics 5.2 step 8). The first answer
    /// stands when the anonymous one is `Unauthorized` too, or when no anonymous client can
    /// be made. The one place this fallback is written: tag lists and imports use it alike.
    async fn anonymous_fallback<T, E, F, Fut>(
        &self,
        target: &Target,
        credential: &Credential,
        client: Arc<RegistryClient>,
        settings: &Settings,
        op: F,
    ) -> Result<T, E>
    where
        E: Refusal,
        F: Fn(Arc<RegistryClient>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        match op(client).await {
            Err(first) if first.bad_password() && !credential.is_anonymous() => {
                match self.client(target, &Credential::anonymous(), settings) {
                    Ok(anonymous) => match op(anonymous).await {
                        Err(again) if again.unauthorized() => Err(first),
                        other => other,
                    },
                    Err(_) => Err(first),
                }
            }
            other => other,
        }
    }
}

/// What the anonymous fallback asks of a failure, whether the transport's or an import's.
trait Refusal {
    /// The registry rejected the username or password.
    fn bad_password(&self) -> bool;
    /// Any `Unauthorized` answer.
    fn unauthorized(&self) -> bool;
}

impl Refusal for RegistryError {
    fn bad_password(&self) -> bool {
        matches!(
            self,
            RegistryError::Unauthorized {
                kind: crate::registry::UnauthorizedKind::BadCredentials,
                ..
            }
        )
    }

    fn unauthorized(&self) -> bool {
        matches!(self, RegistryError::Unauthorized { .. })
    }
}

impl Refusal for Failure {
    fn bad_password(&self) -> bool {
        self.is_bad_password()
    }

    fn unauthorized(&self) -> bool {
        self.reason == "Unauthorized"
    }
}

/// A `spec.images` entry's target and engine request (its pull spec was parsed when the
/// entry was made).
fn plan_image(
    index: usize,
    entry: &ImageImport,
    settings: &Settings,
) -> Result<(Target, Planned), Failure> {
    let name = entry.from.image()?;
    let parsed = entry
        .from
        .parsed()
        .map_err(|e| Failure::invalid_name(entry.from.as_str(), &e.to_string()))?;
    Ok((
        target_of(parsed, entry.insecure, settings),
        Planned {
            slot: Slot::Image(index),
            written: entry.from.as_str().to_string(),
            tag: name.tag,
            import: entry.clone(),
        },
    ))
}

/// The engine request for one tag of a listed repository: the repository's pull spec with
/// the tag set (parsed already), and the repository's policy for that tag.
fn plan_repository_tag(
    index: usize,
    repo: &RepositoryImport,
    parsed: &DockerImageReference,
    tag: &str,
) -> Planned {
    let mut tagged = parsed.clone();
    tagged.tag = tag.to_string();
    Planned {
        slot: Slot::RepositoryTag(index),
        written: repo.from.clone(),
        tag: tag.to_string(),
        import: ImageImport {
            from: PullSpec::from_parsed(format!("{}:{tag}", repo.from), tagged),
            mode: repo.mode,
            insecure: repo.insecure,
            prefer: repo.prefer.get(tag).cloned().unwrap_or_default(),
            current_image: repo.current.get(tag).cloned(),
            verify_current: false,
        },
    }
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
    /// What the verification of each image a policy covered decided.
    verifications: Mutex<Vec<Verification>>,
    /// The referrers listings made.
    referrer_lookups: Mutex<Vec<ReferrerLookup>>,
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
    use crate::import::contract::Mode;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn entries_are_planned_with_docker_defaults_and_the_users_spelling() {
        let settings = Settings::default();
        let (target, planned) =
            plan_image(0, &ImageImport::new("nginx", Mode::Legacy), &settings).unwrap();
        assert_eq!(target.registry, "docker.io");
        assert_eq!(target.repository, "library/nginx");
        assert!(!target.insecure);
        let name = planned.import.from.image().unwrap();
        assert_eq!(
            (name.reference.as_str(), planned.tag.as_str()),
            ("latest", "latest")
        );
        assert_eq!(name.repository_as_written, "nginx");

        let from = format!("quay.io/a/b:v1@{D}");
        let (target, planned) =
            plan_image(1, &ImageImport::new(from.clone(), Mode::Legacy), &settings).unwrap();
        assert_eq!(
            (target.registry.as_str(), target.repository.as_str()),
            ("quay.io", "a/b")
        );
        let name = planned.import.from.image().unwrap();
        assert_eq!((name.reference.as_str(), planned.tag.as_str()), (D, ""));
        assert_eq!(name.repository_as_written, "quay.io/a/b");
        assert_eq!(planned.written, from);
    }

    #[test]
    fn a_repository_tag_is_planned_from_the_parsed_repository() {
        let repo = RepositoryImport {
            from: "quay.io/a/b".into(),
            mode: Mode::PreserveOriginal,
            insecure: true,
            prefer: BTreeMap::new(),
            current: BTreeMap::from([("v2".to_string(), D.to_string())]),
        };
        let parsed = DockerImageReference::parse(&repo.from).unwrap();
        let planned = plan_repository_tag(3, &repo, &parsed, "v2");
        assert_eq!(planned.slot, Slot::RepositoryTag(3));
        assert_eq!(
            (planned.written.as_str(), planned.tag.as_str()),
            ("quay.io/a/b", "v2")
        );
        let name = planned.import.from.image().unwrap();
        assert_eq!(
            (name.repository_as_written.as_str(), name.reference.as_str()),
            ("quay.io/a/b", "v2")
        );
        assert_eq!(planned.import.from.as_str(), "quay.io/a/b:v2");
        assert_eq!(planned.import.current_image.as_deref(), Some(D));
        assert!(planned.import.insecure);
        assert_eq!(planned.import.mode, Mode::PreserveOriginal);
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
}
