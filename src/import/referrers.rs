//! Referrers (issue 20): the signatures, SBOMs and attestations attached to a new image,
//! listed on its Image so users see them where they look at images.
//!
//! Where: the annotation [`ANNOTATION`] on the Image, a compact JSON array. OpenShift's
//! shapes have no field for an artifact attached to an image (`signatures[]` holds verified
//! signatures only, with content), and `oc describe image` prints an Image's annotations, as
//! does `kubectl get image|istag|isimage -o yaml` (ImageStreamTag `image` and
//! ImageStreamImage `image` carry the Image's metadata). At most [`MAX_LISTED`] entries;
//! beyond that [`ANNOTATION_OMITTED`] says how many were left out.
//!
//! How: the OCI referrers API first (`GET /v2/<name>/referrers/<digest>`, one page); a
//! registry answering 404 has no API, is remembered so for [`NO_API_FOR`], and cosign's tag
//! schema is asked instead: a HEAD of `sha256-<hex>.sig`, `.att` and `.sbom` (404: none).
//! A `.sig` manifest the signature check fetched is not asked again ([`Memo`]). Every
//! request goes through the import's [`Source`]: manifests' size limits, timeouts, budgets.
//!
//! When: only for an image this import creates an Image for (an unchanged check costs its
//! one HEAD), as [`ReferrerListing`] says. A listing is information: a failure leaves the
//! annotation out and never fails the import.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::api::image::Image;
use crate::config::ReferrerListing;

use super::contract::{Failure, ReferrerLookup};
use super::engine::Outcome;
use super::source::{Fetched, Head, Source, SourceError};

/// The Image annotation listing its referrers.
pub const ANNOTATION: &str = "image.imagestream.io/referrers";
/// How many referrers [`ANNOTATION`] left out, when it is full.
pub const ANNOTATION_OMITTED: &str = "image.imagestream.io/referrers-omitted";
/// Referrers listed per image at most.
pub const MAX_LISTED: usize = 32;
/// How long a registry that answered 404 to the referrers API is asked by tags only.
pub const NO_API_FOR: Duration = Duration::from_secs(60 * 60);
/// Registries remembered at most; the memory starts again empty beyond that.
const MAX_REMEMBERED: usize = 10_000;

/// cosign's tag suffixes and what each holds.
const COSIGN_TAGS: [(&str, &str); 3] = [
    ("sig", "signature"),
    ("att", "attestation"),
    ("sbom", "sbom"),
];

/// One referrer as the annotation shows it: from the API its `artifactType`, from cosign's
/// tags its `kind` and `tag`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Referrer {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub artifact_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
    pub digest: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// How the referrers were found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Api,
    Tags,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Api => "api",
            Via::Tags => "tags",
        }
    }
}

/// What a listing found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    pub via: Via,
    pub referrers: Vec<Referrer>,
}

/// Registries known to have no referrers API, by host, since when.
#[derive(Debug, Default)]
pub struct NoReferrersApi(Mutex<HashMap<String, Instant>>);

impl NoReferrersApi {
    fn known(&self, registry: &str, now: Instant) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(registry)
            .is_some_and(|since| now.saturating_duration_since(*since) < NO_API_FOR)
    }

    fn remember(&self, registry: &str, now: Instant) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_REMEMBERED {
            map.clear();
        }
        map.insert(registry.to_string(), now);
    }
}

/// The OCI referrers index, as far as it is read here.
#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    artifact_type: String,
    digest: String,
    #[serde(default)]
    size: Option<u64>,
}

/// Lists the referrers of `digest` in `registry` (a host, for [`NoReferrersApi`]); a
/// failure says where it happened.
pub async fn list<S: Source>(
    source: &S,
    registry: &str,
    digest: &str,
    no_api: &NoReferrersApi,
    now: Instant,
) -> Result<Listing, (Via, Failure)> {
    if !no_api.known(registry, now) {
        match source.referrers(digest).await {
            Ok(bytes) => return from_index(digest, &bytes).map_err(|f| (Via::Api, f)),
            Err(e) if e.reason() == "NotFound" => no_api.remember(registry, now),
            Err(e) => {
                return Err((
                    Via::Api,
                    Failure::new(
                        e.reason(),
                        format!("listing the referrers of {digest}: {e}"),
                    ),
                ));
            }
        }
    }
    let mut referrers = Vec::new();
    for (suffix, kind) in COSIGN_TAGS {
        let Some(tag) = crate::trust::cosign::tag_with_suffix(digest, suffix) else {
            break;
        };
        match source.head(&tag).await {
            Ok(head) => referrers.push(Referrer {
                artifact_type: String::new(),
                kind: kind.to_string(),
                tag,
                digest: head.digest,
                media_type: head.media_type,
                size: head.size,
            }),
            Err(e) if e.reason() == "NotFound" => {}
            Err(e) => {
                return Err((
                    Via::Tags,
                    Failure::new(
                        e.reason(),
                        format!("listing the referrers of {digest} ({tag}): {e}"),
                    ),
                ));
            }
        }
    }
    Ok(Listing {
        via: Via::Tags,
        referrers,
    })
}

fn from_index(digest: &str, bytes: &[u8]) -> Result<Listing, Failure> {
    let index: Index = serde_json::from_slice(bytes).map_err(|e| {
        Failure::new(
            "BadRequest",
            format!("the referrers of {digest} are not an image index: {e}"),
        )
    })?;
    Ok(Listing {
        via: Via::Api,
        referrers: index
            .manifests
            .into_iter()
            .map(|d| Referrer {
                artifact_type: d.artifact_type,
                kind: String::new(),
                tag: String::new(),
                digest: d.digest,
                media_type: d.media_type,
                size: d.size,
            })
            .collect(),
    })
}

/// Sets the annotations of the Image of `digest` among `images` (none when nothing refers
/// to it).
pub fn annotate(images: &mut [Image], digest: &str, referrers: &[Referrer]) {
    if referrers.is_empty() {
        return;
    }
    let Some(target) = images
        .iter_mut()
        .find(|i| super::importer::image_digest(i).as_deref() == Some(digest))
    else {
        return;
    };
    let listed = &referrers[..referrers.len().min(MAX_LISTED)];
    let Ok(value) = serde_json::to_string(listed) else {
        return;
    };
    let annotations = target
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    annotations.insert(ANNOTATION.to_string(), value);
    if referrers.len() > listed.len() {
        annotations.insert(
            ANNOTATION_OMITTED.to_string(),
            (referrers.len() - listed.len()).to_string(),
        );
    }
}

/// Lists and records the referrers of the image an import created, when `listing` asks for
/// it (`covered`: an image policy covers the image). Makes no request for an unchanged
/// image, nor for one whose Image exists already. Returns what was listed, or where and why
/// not; `None` when nothing was asked.
pub async fn record<S: Source>(
    source: &S,
    listing: ReferrerListing,
    covered: bool,
    outcome: &mut Outcome,
    registry: &str,
    no_api: &NoReferrersApi,
) -> Option<Result<Listing, (Via, Failure)>> {
    let Outcome::Imported { image, images, .. } = outcome else {
        return None;
    };
    let creates = images
        .iter()
        .any(|i| super::importer::image_digest(i).as_deref() == Some(image.as_str()));
    if !creates || !listing.lists(covered) {
        return None;
    }
    let listed = list(source, registry, image, no_api, Instant::now()).await;
    match &listed {
        Ok(found) => annotate(images, image, &found.referrers),
        Err((_, failure)) => tracing::debug!(
            image = %image,
            reason = failure.reason,
            message = %failure.message,
            "referrers not listed"
        ),
    }
    Some(listed)
}

/// What the metrics count of a listing.
pub fn lookup(listed: &Result<Listing, (Via, Failure)>) -> ReferrerLookup {
    match listed {
        Ok(found) => ReferrerLookup {
            source: found.via.as_str(),
            result: if found.referrers.is_empty() {
                "none"
            } else {
                "listed"
            },
        },
        Err((via, _)) => ReferrerLookup {
            source: via.as_str(),
            result: "failed",
        },
    }
}

/// A [`Source`] that keeps the manifests fetched through it (found or not found) and
/// answers a HEAD of one from them: the `.sig` manifest the signature check read is not
/// asked for again by the listing.
pub struct Memo<'a, S: Source> {
    inner: &'a S,
    fetched: Mutex<HashMap<String, Option<Head>>>,
}

impl<'a, S: Source> Memo<'a, S> {
    pub fn new(inner: &'a S) -> Self {
        Memo {
            inner,
            fetched: Mutex::new(HashMap::new()),
        }
    }

    fn kept(&self, reference: &str) -> Option<Option<Head>> {
        self.fetched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(reference)
            .cloned()
    }

    fn keep(&self, reference: &str, head: Option<Head>) {
        self.fetched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(reference.to_string(), head);
    }
}

/// The NotFound a [`Memo`] answers for a manifest its source said was not there.
#[derive(Debug, thiserror::Error)]
pub enum MemoError<E: SourceError> {
    #[error("manifest {0} not found")]
    NotFound(String),
    #[error(transparent)]
    Source(E),
}

impl<E: SourceError> SourceError for MemoError<E> {
    fn reason(&self) -> &'static str {
        match self {
            MemoError::NotFound(_) => "NotFound",
            MemoError::Source(e) => e.reason(),
        }
    }
}

impl<S: Source + Sync> Source for Memo<'_, S> {
    type Error = MemoError<S::Error>;

    async fn head(&self, reference: &str) -> Result<Head, Self::Error> {
        match self.kept(reference) {
            Some(Some(head)) => Ok(head),
            Some(None) => Err(MemoError::NotFound(reference.to_string())),
            None => self.inner.head(reference).await.map_err(MemoError::Source),
        }
    }

    async fn manifest(&self, reference: &str) -> Result<Fetched, Self::Error> {
        match self.inner.manifest(reference).await {
            Ok(fetched) => {
                let head = Head {
                    digest: fetched.digest.clone(),
                    media_type: fetched.media_type.clone(),
                    size: u64::try_from(fetched.bytes.len()).ok(),
                };
                self.keep(reference, Some(head));
                Ok(fetched)
            }
            Err(e) => {
                if e.reason() == "NotFound" {
                    self.keep(reference, None);
                }
                Err(MemoError::Source(e))
            }
        }
    }

    async fn blob(&self, digest: &str) -> Result<Vec<u8>, Self::Error> {
        self.inner.blob(digest).await.map_err(MemoError::Source)
    }

    async fn referrers(&self, digest: &str) -> Result<Vec<u8>, Self::Error> {
        self.inner
            .referrers(digest)
            .await
            .map_err(MemoError::Source)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::import::source::fake::FakeSource;
    use crate::registry::protocol::OCI_MANIFEST;

    const REGISTRY: &str = "registry.example.com";
    const SIGNATURE_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
    const SBOM_TYPE: &str = "application/spdx+json";

    fn new_image(digest: &str) -> Outcome {
        let mut image = Image::default();
        image.metadata.name = Some(crate::names::image(digest));
        Outcome::Imported {
            image: digest.to_string(),
            images: vec![image],
            list: None,
        }
    }

    fn annotation(outcome: &Outcome) -> Option<Vec<Referrer>> {
        let Outcome::Imported { images, .. } = outcome else {
            return None;
        };
        let value = images
            .first()?
            .metadata
            .annotations
            .as_ref()?
            .get(ANNOTATION)?;
        Some(serde_json::from_str(value).expect("a JSON array of referrers"))
    }

    /// Pushes a manifest under cosign's `suffix` tag of `subject`; returns its digest.
    fn attach(source: &mut FakeSource, subject: &str, suffix: &str) -> String {
        let tag = crate::trust::cosign::tag_with_suffix(subject, suffix).expect("tag");
        let bytes = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": subject, "size": 2},
            "layers": [{"mediaType": "application/vnd.dsse.envelope.v1+json", "digest": subject, "size": 3, "annotations": {"kind": suffix}}],
        }))
        .expect("json");
        source.put(Some(&tag), bytes, OCI_MANIFEST)
    }

    fn descriptor(artifact_type: &str, n: u8) -> serde_json::Value {
        json!({
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "digest": crate::import::source::fake::digest_of(&[n]),
            "size": 500 + u64::from(n),
            "annotations": {"org.opencontainers.image.created": "2026-12-07T12:00:00Z"},
        })
    }

    /// [`record_all`], which must list.
    async fn record_listed(source: &FakeSource, outcome: &mut Outcome, no_api: &NoReferrersApi) {
        let listed = record_all(source, outcome, no_api).await;
        assert!(matches!(listed, Some(Ok(_))), "{listed:?}");
    }

    /// [`record`] with `All`, for an image no policy covers.
    async fn record_all(
        source: &FakeSource,
        outcome: &mut Outcome,
        no_api: &NoReferrersApi,
    ) -> Option<Result<Listing, (Via, Failure)>> {
        record(
            source,
            ReferrerListing::All,
            false,
            outcome,
            REGISTRY,
            no_api,
        )
        .await
    }

    fn assert_lookup(
        listed: &Result<Listing, (Via, Failure)>,
        source: &'static str,
        result: &'static str,
    ) {
        assert_eq!(lookup(listed), ReferrerLookup { source, result });
    }

    #[tokio::test]
    async fn the_referrers_api_answer_is_listed_with_one_request() {
        let mut source = FakeSource::new();
        let digest = source.image(Some("latest"), "linux", "amd64");
        source.referrers_api(
            &digest,
            vec![descriptor(SIGNATURE_TYPE, 1), descriptor(SBOM_TYPE, 2)],
        );
        let mut outcome = new_image(&digest);
        let no_api = NoReferrersApi::default();
        let listed = record_all(&source, &mut outcome, &no_api).await;
        let listed = listed.expect("asked");
        assert_lookup(&listed, "api", "listed");
        assert_eq!(listed.map(|l| l.via), Ok(Via::Api));
        assert_eq!(source.take_calls(), [format!("REFERRERS {digest}")]);
        let listed = annotation(&outcome).expect("annotated");
        let shown: Vec<(&str, &str, Option<u64>)> = listed
            .iter()
            .map(|r| (r.artifact_type.as_str(), r.media_type.as_str(), r.size))
            .collect();
        assert_eq!(
            shown,
            [
                (SIGNATURE_TYPE, OCI_MANIFEST, Some(501)),
                (SBOM_TYPE, OCI_MANIFEST, Some(502))
            ]
        );
        assert_eq!(
            listed[1].digest,
            crate::import::source::fake::digest_of(&[2])
        );
        // compact: no annotations of the referrers, no empty fields
        let Outcome::Imported { images, .. } = &outcome else {
            panic!("imported")
        };
        let raw = &images[0]
            .metadata
            .annotations
            .as_ref()
            .expect("annotations")[ANNOTATION];
        assert!(
            !raw.contains("created") && !raw.contains("\"kind\""),
            "{raw}"
        );
    }

    #[tokio::test]
    async fn without_the_api_cosign_tags_are_listed_and_the_registry_is_remembered() {
        let mut source = FakeSource::new();
        let first = source.image(Some("v1"), "linux", "amd64");
        let sig = attach(&mut source, &first, "sig");
        let att = attach(&mut source, &first, "att");
        let no_api = NoReferrersApi::default();

        let mut outcome = new_image(&first);
        record_listed(&source, &mut outcome, &no_api).await;
        let hex = &first[7..];
        assert_eq!(
            source.take_calls(),
            [
                format!("REFERRERS {first}"),
                format!("HEAD sha256-{hex}.sig"),
                format!("HEAD sha256-{hex}.att"),
                format!("HEAD sha256-{hex}.sbom"),
            ]
        );
        let listed = annotation(&outcome).expect("annotated");
        let shown: Vec<(&str, &str, &str)> = listed
            .iter()
            .map(|r| (r.kind.as_str(), r.tag.as_str(), r.digest.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "signature",
                    format!("sha256-{hex}.sig").as_str(),
                    sig.as_str()
                ),
                (
                    "attestation",
                    format!("sha256-{hex}.att").as_str(),
                    att.as_str()
                ),
            ]
        );
        assert_eq!(listed[0].media_type, OCI_MANIFEST);
        assert!(listed[0].size.is_some_and(|s| s > 0));

        // a second image of the same registry: the API is not asked again
        let second = source.image(Some("v2"), "linux", "amd64");
        let mut outcome = new_image(&second);
        let listed = record_all(&source, &mut outcome, &no_api)
            .await
            .expect("asked");
        assert_lookup(&listed, "tags", "none");
        let calls = source.take_calls();
        assert_eq!(calls.len(), 3, "{calls:?}");
        assert!(calls.iter().all(|c| c.starts_with("HEAD ")), "{calls:?}");
        assert_eq!(
            annotation(&outcome),
            None,
            "nothing attached, no annotation"
        );

        // another registry is asked
        let listed = list(
            &source,
            "other.example.com",
            &second,
            &no_api,
            Instant::now(),
        )
        .await;
        assert_eq!(listed.map(|l| l.via), Ok(Via::Tags));
        assert_eq!(source.take_calls()[0], format!("REFERRERS {second}"));
        // and the memory ends
        let later = Instant::now() + NO_API_FOR + Duration::from_secs(1);
        let _ = list(&source, REGISTRY, &second, &no_api, later).await;
        assert_eq!(source.take_calls()[0], format!("REFERRERS {second}"));
    }

    #[tokio::test]
    async fn nothing_attached_leaves_no_annotation() {
        let mut source = FakeSource::new();
        let digest = source.image(Some("latest"), "linux", "amd64");
        source.referrers_api("sha256:other", Vec::new());
        let mut outcome = new_image(&digest);
        record_listed(&source, &mut outcome, &NoReferrersApi::default()).await;
        assert_eq!(source.take_calls().len(), 1);
        let Outcome::Imported { images, .. } = &outcome else {
            panic!("imported")
        };
        assert_eq!(images[0].metadata.annotations, None);
    }

    #[tokio::test]
    async fn no_request_for_an_unchanged_image_an_existing_image_or_an_image_not_asked_for() {
        let mut source = FakeSource::new();
        let digest = source.image(Some("latest"), "linux", "amd64");
        attach(&mut source, &digest, "sig");
        let no_api = NoReferrersApi::default();
        let mut unchanged = Outcome::Unchanged {
            image: digest.clone(),
            list: None,
        };
        let mut existing = Outcome::Imported {
            image: digest.clone(),
            images: Vec::new(),
            list: None,
        };
        for (listing, covered, outcome) in [
            (ReferrerListing::All, true, &mut unchanged),
            (ReferrerListing::All, true, &mut existing),
            (ReferrerListing::None, true, &mut new_image(&digest)),
            (ReferrerListing::Covered, false, &mut new_image(&digest)),
        ] {
            let listed = record(&source, listing, covered, outcome, REGISTRY, &no_api).await;
            assert_eq!(listed, None, "{listing:?}");
            assert_eq!(source.take_calls(), Vec::<String>::new(), "{listing:?}");
            assert_eq!(annotation(outcome), None);
        }
        let mut covered = new_image(&digest);
        let listed = record(
            &source,
            ReferrerListing::Covered,
            true,
            &mut covered,
            REGISTRY,
            &no_api,
        )
        .await;
        assert!(matches!(listed, Some(Ok(_))));
        assert_eq!(annotation(&covered).map(|l| l.len()), Some(1));
    }

    /// A failure is reported to the caller (which logs it) and leaves the Image as it was;
    /// a registry that failed otherwise than 404 is not taken for one without the API.
    #[tokio::test]
    async fn a_listing_failure_leaves_the_image_unannotated() {
        let mut source = FakeSource::new();
        let digest = source.image(Some("latest"), "linux", "amd64");
        attach(&mut source, &digest, "sig");
        source.fail(&format!("referrers/{digest}"), "InternalError", "broken");
        let no_api = NoReferrersApi::default();
        let mut outcome = new_image(&digest);
        let listed = record_all(&source, &mut outcome, &no_api).await;
        let listed = listed.expect("asked");
        assert_lookup(&listed, "api", "failed");
        let (_, failure) = listed.expect_err("failed");
        assert_eq!(failure.reason, "InternalError");
        assert!(failure.message.contains("broken"), "{}", failure.message);
        assert_eq!(annotation(&outcome), None);
        assert!(!no_api.known(REGISTRY, Instant::now()));

        // the fallback failing midway lists nothing either
        let mut source = FakeSource::new();
        let digest = source.image(Some("latest"), "linux", "amd64");
        attach(&mut source, &digest, "sig");
        let att = crate::trust::cosign::tag_with_suffix(&digest, "att").expect("tag");
        source.fail(&att, "Unauthorized", "no");
        let mut outcome = new_image(&digest);
        let listed = record_all(&source, &mut outcome, &no_api).await;
        assert_eq!(
            listed.map(|l| l.map_err(|(via, f)| (via, f.reason))),
            Some(Err((Via::Tags, "Unauthorized")))
        );
        assert_eq!(annotation(&outcome), None);
    }

    /// The `.sig` manifest the signature check fetched answers the listing's HEAD.
    #[tokio::test]
    async fn a_signature_manifest_fetched_already_is_not_asked_again() {
        let mut source = FakeSource::new();
        let digest = source.image(Some("latest"), "linux", "amd64");
        let sig = attach(&mut source, &digest, "sig");
        let memo = Memo::new(&source);
        let hex = &digest[7..];
        let fetched = memo.manifest(&format!("sha256-{hex}.sig")).await;
        assert!(fetched.is_ok());
        // an .att the check found absent is absent without asking
        assert!(memo.manifest(&format!("sha256-{hex}.att")).await.is_err());
        source.take_calls();
        let mut outcome = new_image(&digest);
        let listed = record(
            &memo,
            ReferrerListing::All,
            false,
            &mut outcome,
            REGISTRY,
            &NoReferrersApi::default(),
        )
        .await;
        assert!(matches!(listed, Some(Ok(_))));
        assert_eq!(
            source.take_calls(),
            [
                format!("REFERRERS {digest}"),
                format!("HEAD sha256-{hex}.sbom")
            ]
        );
        let listed = annotation(&outcome).expect("annotated");
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].kind.as_str(), listed[0].digest.as_str()),
            ("signature", sig.as_str())
        );
    }

    #[test]
    fn a_long_list_is_cut_and_says_how_many_were_left_out() {
        let digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        let Outcome::Imported { mut images, .. } = new_image(digest) else {
            panic!("imported")
        };
        let referrers: Vec<Referrer> = (0..40u8)
            .map(|n| Referrer {
                artifact_type: SBOM_TYPE.to_string(),
                kind: String::new(),
                tag: String::new(),
                digest: crate::import::source::fake::digest_of(&[n]),
                media_type: OCI_MANIFEST.to_string(),
                size: Some(1),
            })
            .collect();
        annotate(&mut images, digest, &referrers);
        let annotations = images[0].metadata.annotations.clone().expect("annotated");
        let listed: Vec<Referrer> = serde_json::from_str(&annotations[ANNOTATION]).expect("JSON");
        assert_eq!(listed.len(), MAX_LISTED);
        assert_eq!(annotations[ANNOTATION_OMITTED], "8");
        // another digest: not annotated
        let mut others = images.clone();
        others[0].metadata.annotations = None;
        annotate(&mut others, "sha256:2222", &referrers);
        assert_eq!(others[0].metadata.annotations, None);
    }
}
