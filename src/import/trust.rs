//! Trust before import (issue 20): an image an [`ImagePolicy`](crate::trust::ImagePolicy)
//! covers is verified before its tag moves. The decisions are [`crate::trust`]'s; this is the
//! IO around them: the cosign signatures of a digest are read through the same [`Source`] as
//! its manifest (the manifest tagged `sha256-<hex>.sig` and its layers' blobs), so they have
//! the manifests' size limits, timeouts, credentials and registry budgets.
//!
//! Only an import that found a new image verifies, or one the plan asks to verify the
//! current image (a policy changed, or the current image was refused): an unchanged scheduled
//! check of a trusted tag costs its one HEAD, as without a policy. A passing verdict is kept per (digest, repository, policy,
//! policy material), so a second tag or stream moving to the same image fetches nothing more;
//! a failing one is not kept (the signature may be pushed after the image).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use serde::Deserialize;

use crate::api::image::Image;
use crate::api::image_signature::ImageSignature;
use crate::reference::DockerImageReference;
use crate::trust::cosign::SIMPLE_SIGNING_MEDIA_TYPE;
use crate::trust::policy::covering;
use crate::trust::verify::verify_policy;
use crate::trust::{Decision, PolicyVerdict, ResolvedPolicy, SignatureLayer, Subject, Verdict};

use super::contract::{Failure, PolicyResult, Verification};
use super::source::{Source, SourceError};

/// Signature layers read per image at most (cosign appends one per signing).
const MAX_SIGNATURES: usize = 16;
/// Passing verdicts kept; the cache starts again empty beyond that.
const MAX_VERDICTS: usize = 10_000;

/// Passing verdicts by (digest, repository, policy, material).
#[derive(Default)]
pub struct VerdictCache(Mutex<HashMap<(String, String, String, String), PolicyVerdict>>);

impl VerdictCache {
    fn get(&self, key: &(String, String, String, String)) -> Option<PolicyVerdict> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn keep(&self, key: (String, String, String, String), verdict: &PolicyVerdict) {
        if !verdict.passed() {
            return;
        }
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_VERDICTS {
            map.clear();
        }
        map.insert(key, verdict.clone());
    }
}

/// The verdict on `digest`, imported by `reference`, under `policies`; `None` when no policy
/// covers it. A registry failure while reading the signatures refuses the image under an
/// enforcing policy (the tag keeps its image and is tried again) and only warns otherwise.
pub async fn check<S: Source>(
    source: &S,
    policies: &[ResolvedPolicy],
    cache: &VerdictCache,
    reference: &DockerImageReference,
    digest: &str,
    now: jiff::Timestamp,
) -> Option<(Verdict, Vec<bool>)> {
    let coverage = covering(policies.iter(), reference);
    if coverage.policies.is_empty() {
        return None;
    }
    let defaulted = reference.docker_client_defaults();
    let repository = format!("{}/{}", defaulted.registry, defaulted.repository_name());
    let key = |p: &ResolvedPolicy| {
        (
            digest.to_string(),
            repository.clone(),
            p.name.clone(),
            p.material.clone(),
        )
    };
    let mut verdicts = Vec::new();
    let mut cached = Vec::new();
    let mut missing = Vec::new();
    for policy in &coverage.policies {
        match cache.get(&key(policy)) {
            Some(verdict) => {
                verdicts.push(verdict);
                cached.push(true);
            }
            None => missing.push(*policy),
        }
    }
    if !missing.is_empty() {
        let subject = Subject {
            digest,
            reference,
            now,
        };
        match signature_layers(source, digest).await {
            Ok(layers) => {
                for policy in missing {
                    let verdict = verify_policy(policy, &layers, subject);
                    cache.keep(key(policy), &verdict);
                    verdicts.push(verdict);
                    cached.push(false);
                }
            }
            Err(failure) => {
                for policy in missing {
                    verdicts.push(unreadable(policy, &failure));
                    cached.push(false);
                }
            }
        }
    }
    Some((Verdict::from_policies(verdicts), cached))
}

/// A policy's verdict when the signatures could not be read.
fn unreadable(policy: &ResolvedPolicy, failure: &Failure) -> PolicyVerdict {
    let failure = crate::trust::Failure::new(
        crate::trust::FailureReason::SignatureUnreadable,
        format!(
            "policy {:?}: the signatures could not be read ({}): {}",
            policy.name, failure.reason, failure.message
        ),
    );
    PolicyVerdict {
        policy: policy.name.clone(),
        generation: policy.generation,
        enforcement: policy.enforcement,
        authorities: Vec::new(),
        failure: Some(failure),
    }
}

/// The manifest of cosign's signature tag, as far as it is read here.
#[derive(Deserialize)]
struct SignatureManifest {
    #[serde(default)]
    layers: Vec<SignatureDescriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignatureDescriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// The signature layers of `digest` with their payloads; none when the image has no
/// signature tag.
async fn signature_layers<S: Source>(
    source: &S,
    digest: &str,
) -> Result<Vec<SignatureLayer>, Failure> {
    let Some(tag) = crate::trust::cosign::signature_tag(digest) else {
        return Ok(Vec::new());
    };
    let fetched = match source.manifest(&tag).await {
        Ok(fetched) => fetched,
        Err(e) if e.reason() == "NotFound" => return Ok(Vec::new()),
        Err(e) => {
            return Err(Failure::new(
                e.reason(),
                format!("reading the signatures of {digest} ({tag}): {e}"),
            ));
        }
    };
    let manifest: SignatureManifest = serde_json::from_slice(&fetched.bytes).map_err(|e| {
        Failure::new(
            "BadRequest",
            format!("the signature manifest {tag} of {digest} is not a manifest: {e}"),
        )
    })?;
    let mut layers = Vec::new();
    for layer in manifest
        .layers
        .into_iter()
        .filter(|l| l.media_type == SIMPLE_SIGNING_MEDIA_TYPE)
        .take(MAX_SIGNATURES)
    {
        let payload = source.blob(&layer.digest).await.map_err(|e| {
            Failure::new(
                e.reason(),
                format!("reading the signature {} of {digest}: {e}", layer.digest),
            )
        })?;
        layers.push(SignatureLayer {
            media_type: layer.media_type,
            digest: layer.digest,
            annotations: layer.annotations,
            payload,
        });
    }
    Ok(layers)
}

/// What the importer makes of a verdict: the refusal to return, or the record to keep.
pub fn outcome(
    verdict: &Verdict,
    cached: &[bool],
    tag: &str,
    image: &str,
) -> (Verification, Option<Failure>) {
    let failure = verdict.failure().map(|f| (f.reason(), f.message.clone()));
    let refusal = match (verdict.decision, &failure) {
        (Decision::Refused, Some((reason, message))) => Some(Failure::new(reason, message.clone())),
        _ => None,
    };
    let policies = verdict
        .policies
        .iter()
        .zip(cached.iter().copied().chain(std::iter::repeat(false)))
        .map(|(p, cached)| PolicyResult {
            policy: p.policy.clone(),
            passed: p.passed(),
            reason: p.failure.as_ref().map_or("", |f| f.reason()),
            cached,
        })
        .collect();
    (
        Verification {
            tag: tag.to_string(),
            image: image.to_string(),
            decision: verdict.decision,
            failure: if verdict.decision == Decision::Passed {
                None
            } else {
                failure
            },
            policies,
        },
        refusal,
    )
}

/// Records the verdict's passing signatures on the Image of digest `image` among `images`
/// (the Images this import creates; an Image that exists already keeps what it has).
pub fn record_signatures(
    images: &mut [Image],
    image: &str,
    verdict: &Verdict,
    now: jiff::Timestamp,
) {
    let Some(target) = images
        .iter_mut()
        .find(|i| super::importer::image_digest(i).as_deref() == Some(image))
    else {
        return;
    };
    for signature in verdict.signatures() {
        let fields = signature.image_signature(now);
        // upstream's form for a signature inside its Image: `<image>@<signature>`
        let name = format!("{image}@{}", signature_name(&signature.signature));
        if target
            .spec
            .signatures
            .iter()
            .any(|s| s.metadata.name.as_deref() == Some(name.as_str()))
        {
            continue;
        }
        let mut recorded = ImageSignature::new(&name, fields);
        recorded.metadata.name = Some(name);
        target.spec.signatures.push(recorded);
    }
}

/// A signature's name: the first 32 hex digits of its SHA-256 (OpenShift's names are 32 hex
/// digits too).
fn signature_name(signature: &[u8]) -> String {
    use sha2::Digest;
    let hex = format!("{:x}", sha2::Sha256::digest(signature));
    hex[..32].to_string()
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::json;

    use super::*;
    use crate::import::source::fake::FakeSource;
    use crate::registry::protocol::OCI_MANIFEST;
    use crate::trust::policy::{Enforcement, Requirement};
    use crate::trust::tests::{ec_key_pem, key_authority, payload, policy_with, sign};

    const REPOSITORY: &str = "registry.example.com/team/app";
    const OTHER: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn now() -> jiff::Timestamp {
        "2026-12-07T12:00:00Z".parse().expect("timestamp")
    }

    fn reference() -> DockerImageReference {
        DockerImageReference::parse(&format!("{REPOSITORY}:latest")).expect("reference")
    }

    /// Pushes cosign's signature manifest for `digest` with one layer signed by `pair`.
    fn sign_into(source: &mut FakeSource, pair: &aws_lc_rs::signature::EcdsaKeyPair, digest: &str) {
        let body = payload(digest, REPOSITORY);
        let signature = sign(pair, &body);
        let layer = source.blob(body.clone());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": layer, "size": 2},
            "layers": [{
                "mediaType": SIMPLE_SIGNING_MEDIA_TYPE,
                "digest": layer,
                "size": body.len(),
                "annotations": {"dev.cosignproject.cosign/signature": STANDARD.encode(signature)},
            }],
        });
        let tag = crate::trust::cosign::signature_tag(digest).expect("a sha256 digest");
        source.put(
            Some(&tag),
            serde_json::to_vec(&manifest).expect("json"),
            OCI_MANIFEST,
        );
    }

    fn policy(pem: &str, enforcement: Enforcement) -> ResolvedPolicy {
        policy_with(
            "team",
            vec![key_authority("team-key", pem)],
            enforcement,
            Requirement::AnyOf,
        )
    }

    #[tokio::test]
    async fn a_signed_image_passes_once_and_its_verdict_is_kept() {
        let (pair, pem) = ec_key_pem();
        let mut source = FakeSource::new();
        let digest = source.image(Some("latest"), "linux", "amd64");
        sign_into(&mut source, &pair, &digest);
        let policies = [policy(&pem, Enforcement::Enforce)];
        let cache = VerdictCache::default();

        let (verdict, cached) = check(&source, &policies, &cache, &reference(), &digest, now())
            .await
            .expect("covered");
        assert_eq!(
            verdict.decision,
            Decision::Passed,
            "{:?}",
            verdict.failure()
        );
        assert_eq!(cached, [false]);
        let calls = source.take_calls();
        assert_eq!(
            calls.len(),
            2,
            "the signature manifest and its payload: {calls:?}"
        );
        assert!(calls[0].starts_with("GET sha256-"), "{calls:?}");
        assert!(calls[1].starts_with("BLOB sha256:"), "{calls:?}");

        // another tag moving to the same image: nothing fetched
        let (again, cached) = check(&source, &policies, &cache, &reference(), &digest, now())
            .await
            .expect("covered");
        assert_eq!(again.decision, Decision::Passed);
        assert_eq!(cached, [true]);
        assert_eq!(source.take_calls(), Vec::<String>::new());

        let (verification, refusal) = outcome(&again, &cached, "latest", &digest);
        assert_eq!(refusal, None);
        assert_eq!(
            verification.policies,
            [PolicyResult {
                policy: "team".to_string(),
                passed: true,
                reason: "",
                cached: true,
            }]
        );
    }

    #[tokio::test]
    async fn an_unsigned_image_is_refused_and_asked_again_next_time() {
        let (_, pem) = ec_key_pem();
        let mut source = FakeSource::new();
        let digest = source.image(Some("latest"), "linux", "amd64");
        let policies = [policy(&pem, Enforcement::Enforce)];
        let cache = VerdictCache::default();
        for _ in 0..2 {
            let (verdict, cached) = check(&source, &policies, &cache, &reference(), &digest, now())
                .await
                .expect("covered");
            assert_eq!(verdict.decision, Decision::Refused);
            let (verification, refusal) = outcome(&verdict, &cached, "latest", &digest);
            let refusal = refusal.expect("refused");
            assert_eq!(refusal.reason, "SignatureMissing");
            assert!(refusal.message.contains("team"), "{}", refusal.message);
            assert_eq!(verification.decision, Decision::Refused);
            // a failure is not kept: a signature pushed later is found
            assert_eq!(source.take_calls().len(), 1);
        }
    }

    #[tokio::test]
    async fn a_signature_by_another_key_is_refused() {
        let (_, pem) = ec_key_pem();
        let (other, _) = ec_key_pem();
        let mut source = FakeSource::new();
        let digest = source.image(Some("latest"), "linux", "amd64");
        sign_into(&mut source, &other, &digest);
        let policies = [policy(&pem, Enforcement::Enforce)];
        let (verdict, cached) = check(
            &source,
            &policies,
            &VerdictCache::default(),
            &reference(),
            &digest,
            now(),
        )
        .await
        .expect("covered");
        let (_, refusal) = outcome(&verdict, &cached, "latest", &digest);
        assert_eq!(refusal.map(|r| r.reason), Some("SignatureInvalid"));
    }

    #[tokio::test]
    async fn an_image_no_policy_covers_costs_nothing() {
        let (_, pem) = ec_key_pem();
        let mut source = FakeSource::new();
        let digest = source.image(Some("latest"), "linux", "amd64");
        let policies = [policy(&pem, Enforcement::Enforce)];
        let elsewhere = DockerImageReference::parse("quay.io/other/app:latest").expect("reference");
        assert!(
            check(
                &source,
                &policies,
                &VerdictCache::default(),
                &elsewhere,
                &digest,
                now()
            )
            .await
            .is_none()
        );
        assert_eq!(source.take_calls(), Vec::<String>::new());
    }

    /// A registry failure reading the signatures refuses under `Enforce` (the tag is tried
    /// again) and only warns under `Warn`.
    #[tokio::test]
    async fn unreadable_signatures_refuse_under_enforce_and_warn_under_warn() {
        let (_, pem) = ec_key_pem();
        let mut source = FakeSource::new();
        let digest = source.image(Some("latest"), "linux", "amd64");
        let tag = crate::trust::cosign::signature_tag(&digest).expect("tag");
        source.fail(&tag, "InternalError", "the registry broke");
        for (enforcement, decision) in [
            (Enforcement::Enforce, Decision::Refused),
            (Enforcement::Warn, Decision::Warned),
        ] {
            let policies = [policy(&pem, enforcement)];
            let (verdict, cached) = check(
                &source,
                &policies,
                &VerdictCache::default(),
                &reference(),
                &digest,
                now(),
            )
            .await
            .expect("covered");
            assert_eq!(verdict.decision, decision);
            let (verification, refusal) = outcome(&verdict, &cached, "latest", &digest);
            let (reason, message) = verification.failure.expect("said why");
            assert_eq!(reason, "SignatureUnreadable");
            assert!(message.contains("the registry broke"), "{message}");
            assert_eq!(refusal.is_some(), decision == Decision::Refused);
        }
    }

    #[tokio::test]
    async fn passing_signatures_are_recorded_on_the_new_image() {
        let (pair, pem) = ec_key_pem();
        let mut source = FakeSource::new();
        let digest = source.image(Some("latest"), "linux", "amd64");
        sign_into(&mut source, &pair, &digest);
        let policies = [policy(&pem, Enforcement::Enforce)];
        let (verdict, _) = check(
            &source,
            &policies,
            &VerdictCache::default(),
            &reference(),
            &digest,
            now(),
        )
        .await
        .expect("covered");
        let mut images = vec![Image::default(), Image::default()];
        images[0].metadata.name = Some(crate::names::image(OTHER));
        images[1].metadata.name = Some(crate::names::image(&digest));
        record_signatures(&mut images, &digest, &verdict, now());
        record_signatures(&mut images, &digest, &verdict, now());
        assert!(images[0].spec.signatures.is_empty(), "another image");
        let signatures = &images[1].spec.signatures;
        assert_eq!(signatures.len(), 1, "recorded once");
        let name = signatures[0].metadata.name.clone().unwrap_or_default();
        let (image, signature) = name.split_once('@').expect("<image>@<signature>");
        assert_eq!((image, signature.len()), (digest.as_str(), 32));
        let conditions: Vec<(&str, &str)> = signatures[0]
            .spec
            .conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(conditions, [("Trusted", "True"), ("ForImage", "True")]);
        assert_eq!(signatures[0].spec.image_identity, REPOSITORY);
    }
}
