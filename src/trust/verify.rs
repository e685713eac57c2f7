//! Verdicts: an image's signatures against the policies that cover it.
//!
//! Per authority: the image passes when any of its signature layers checks out
//! ([`super::cosign::check_layer`]); when none does, the failure reported is the one that
//! got furthest (a signature that verified but names another digest says more than one made
//! with another key). Per policy: `AnyOf` passes with one authority, `AllOf` needs all. Over
//! policies: every covering policy must pass; a failing `Enforce` policy refuses the image, a
//! failing `Warn` policy only warns.
//!
//! The results are plain data (`Clone + PartialEq`, no keys, certificates or payloads), so the
//! IO layer can cache a [`PolicyVerdict`] per image digest, repository and
//! [`ResolvedPolicy::material`].

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::cosign::{
    IMAGE_SIGNATURE_TYPE_COSIGN, SIMPLE_SIGNING_MEDIA_TYPE, SignatureLayer, Subject, check_layer,
};
use super::policy::{Enforcement, Requirement, combine};
use super::resolve::ResolvedPolicy;
use crate::api::image_signature::{
    ImageSignatureFields, SignatureCondition, SignatureIssuer, SignatureSubject,
};

/// Why an image (or a policy) fails, as a stable reason for conditions, events and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// No signature layer at all.
    SignatureMissing,
    /// The signatures could not be read from the registry (an error, not an absence): the
    /// tag is tried again on its next check.
    SignatureUnreadable,
    /// A signature does not verify (wrong key, tampered payload, not base64).
    SignatureInvalid,
    /// The signing certificate does not chain to the trusted root, or cannot be read.
    CertificateUntrusted,
    /// The signing certificate had expired at the signing time.
    CertificateExpired,
    /// The signing certificate was not yet valid at the signing time.
    CertificateNotYetValid,
    /// The certificate's issuer or subject is not one the authority accepts.
    IdentityMismatch,
    /// The signed payload is not cosign's simple signing JSON.
    PayloadInvalid,
    /// The signature is valid but signs another image digest.
    SignatureForAnotherImage,
    /// The signature is valid but names another repository.
    ReferenceMismatch,
    /// The authority's key cannot be parsed.
    KeyInvalid,
    /// The authority's trusted root cannot be parsed.
    TrustedRootInvalid,
    /// The authority's identities cannot be used (a bad regular expression).
    IdentityInvalid,
    /// A Secret or ConfigMap the policy names cannot be read.
    SourceUnavailable,
    /// A glob of the policy cannot be parsed.
    GlobInvalid,
}

impl FailureReason {
    pub const ALL: [FailureReason; 15] = [
        Self::SignatureMissing,
        Self::SignatureUnreadable,
        Self::SignatureInvalid,
        Self::CertificateUntrusted,
        Self::CertificateExpired,
        Self::CertificateNotYetValid,
        Self::IdentityMismatch,
        Self::PayloadInvalid,
        Self::SignatureForAnotherImage,
        Self::ReferenceMismatch,
        Self::KeyInvalid,
        Self::TrustedRootInvalid,
        Self::IdentityInvalid,
        Self::SourceUnavailable,
        Self::GlobInvalid,
    ];

    /// Whether a condition's `reason` is a verification's (an image a policy refused).
    pub fn is_verification_reason(reason: &str) -> bool {
        Self::ALL.iter().any(|r| r.as_str() == reason)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignatureMissing => "SignatureMissing",
            Self::SignatureUnreadable => "SignatureUnreadable",
            Self::SignatureInvalid => "SignatureInvalid",
            Self::CertificateUntrusted => "CertificateUntrusted",
            Self::CertificateExpired => "CertificateExpired",
            Self::CertificateNotYetValid => "CertificateNotYetValid",
            Self::IdentityMismatch => "IdentityMismatch",
            Self::PayloadInvalid => "PayloadInvalid",
            Self::SignatureForAnotherImage => "SignatureForAnotherImage",
            Self::ReferenceMismatch => "ReferenceMismatch",
            Self::KeyInvalid => "KeyInvalid",
            Self::TrustedRootInvalid => "TrustedRootInvalid",
            Self::IdentityInvalid => "IdentityInvalid",
            Self::SourceUnavailable => "SourceUnavailable",
            Self::GlobInvalid => "GlobInvalid",
        }
    }
}

/// A failure: a stable reason and a message naming what failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub reason: FailureReason,
    pub message: String,
}

impl Failure {
    pub fn new(reason: FailureReason, message: String) -> Self {
        Self { reason, message }
    }

    /// A stable PascalCase reason for conditions and events.
    pub fn reason(&self) -> &'static str {
        self.reason.as_str()
    }
}

/// A signature that passed, with what an ImageSignature records of it.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedSignature {
    /// The authority it satisfied.
    pub authority: String,
    /// The raw signature bytes (the ImageSignature's content).
    pub signature: Vec<u8>,
    /// `critical.identity.docker-reference` of the payload.
    pub image_identity: String,
    /// The payload's `optional` section (non-string values as JSON).
    pub signed_claims: BTreeMap<String, String>,
    /// Keyless: the CA's organization and the OIDC issuer (as common name).
    pub issued_by: Option<SignatureIssuer>,
    /// The signer: keyless subject (as common name) and the key's ID (the first 16 hex digits
    /// of the SHA-256 of its SubjectPublicKeyInfo).
    pub issued_to: Option<SignatureSubject>,
    /// The transparency log's integratedTime, else the certificate's notBefore; `None` for
    /// key signatures.
    pub created: Option<Timestamp>,
}

impl VerifiedSignature {
    /// The ImageSignature fields for this signature, with `Trusted` and `ForImage` True,
    /// probed at `now`.
    pub fn image_signature(&self, now: Timestamp) -> ImageSignatureFields {
        let condition = |type_: &str, message: String| SignatureCondition {
            type_: type_.to_string(),
            status: "True".to_string(),
            last_probe_time: Some(Time(now)),
            last_transition_time: Some(Time(now)),
            reason: "Verified".to_string(),
            message,
        };
        ImageSignatureFields {
            type_: IMAGE_SIGNATURE_TYPE_COSIGN.to_string(),
            content: ByteString(self.signature.clone()),
            conditions: vec![
                condition(
                    "Trusted",
                    format!("verified for authority {:?}", self.authority),
                ),
                condition(
                    "ForImage",
                    "the signed payload names this image's digest".to_string(),
                ),
            ],
            image_identity: self.image_identity.clone(),
            signed_claims: self.signed_claims.clone(),
            created: self.created.map(Time),
            issued_by: self.issued_by.clone(),
            issued_to: self.issued_to.clone(),
        }
    }
}

/// One authority's result.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthorityVerdict {
    pub authority: String,
    /// The signatures that satisfied it, or why none did.
    pub result: Result<Vec<VerifiedSignature>, Failure>,
}

/// One policy's result.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyVerdict {
    pub policy: String,
    pub generation: i64,
    pub enforcement: Enforcement,
    pub authorities: Vec<AuthorityVerdict>,
    /// `None` when the policy is satisfied.
    pub failure: Option<Failure>,
}

impl PolicyVerdict {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }

    /// "Passed" or the failure's reason: the `result` label of a verification metric.
    pub fn result(&self) -> &'static str {
        self.failure.as_ref().map_or("Passed", Failure::reason)
    }
}

/// What to do with the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// No policy covers the image.
    Unverified,
    /// Every covering policy passed.
    Passed,
    /// Only `Warn` policies failed: import, and say so.
    Warned,
    /// An `Enforce` policy failed: the tag keeps its image.
    Refused,
}

/// An image's result against every covering policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub policies: Vec<PolicyVerdict>,
    pub decision: Decision,
}

impl Verdict {
    /// Combines policy verdicts (computed now or taken from a cache).
    pub fn from_policies(policies: Vec<PolicyVerdict>) -> Self {
        let failed = policies
            .iter()
            .filter(|p| !p.passed())
            .map(|p| p.enforcement)
            .reduce(combine);
        let decision = match (policies.is_empty(), failed) {
            (true, _) => Decision::Unverified,
            (false, None) => Decision::Passed,
            (false, Some(Enforcement::Warn)) => Decision::Warned,
            (false, Some(Enforcement::Enforce)) => Decision::Refused,
        };
        Self { policies, decision }
    }

    /// The failure to report on the tag: the first failing enforcing policy's, else the first
    /// failing policy's. `None` when every policy passed.
    pub fn failure(&self) -> Option<&Failure> {
        let failing = |e: Option<Enforcement>| {
            self.policies
                .iter()
                .filter(move |p| e.is_none_or(|e| p.enforcement == e))
                .find_map(|p| p.failure.as_ref())
        };
        failing(Some(Enforcement::Enforce)).or_else(|| failing(None))
    }

    /// The signatures to record (each signature once, from the passing authorities).
    pub fn signatures(&self) -> Vec<&VerifiedSignature> {
        let mut out: Vec<&VerifiedSignature> = Vec::new();
        for s in self
            .policies
            .iter()
            .flat_map(|p| &p.authorities)
            .filter_map(|a| a.result.as_ref().ok())
            .flatten()
        {
            if !out.iter().any(|o| o.signature == s.signature) {
                out.push(s);
            }
        }
        out
    }
}

/// Verifies an image's signature layers against one policy.
pub fn verify_policy(
    policy: &ResolvedPolicy,
    layers: &[SignatureLayer],
    subject: Subject<'_>,
) -> PolicyVerdict {
    let layers: Vec<&SignatureLayer> = layers
        .iter()
        .filter(|l| l.media_type == SIMPLE_SIGNING_MEDIA_TYPE)
        .collect();
    let authorities: Vec<AuthorityVerdict> = policy
        .authorities
        .iter()
        .map(|a| {
            let result = match &a.verifier {
                Err(problem) => Err(problem.clone()),
                Ok(_) if layers.is_empty() => Err(Failure::new(
                    FailureReason::SignatureMissing,
                    format!("image {} has no cosign signature", subject.digest),
                )),
                Ok(verifier) => {
                    let (passed, failed): (Vec<_>, Vec<_>) = layers
                        .iter()
                        .map(|l| check_layer(&a.name, verifier, l, subject))
                        .partition(Result::is_ok);
                    if passed.is_empty() {
                        Err(furthest(failed.into_iter().filter_map(Result::err)))
                    } else {
                        Ok(passed.into_iter().filter_map(Result::ok).collect())
                    }
                }
            };
            AuthorityVerdict {
                authority: a.name.clone(),
                result,
            }
        })
        .collect();
    let failure = policy_failure(policy, &authorities);
    PolicyVerdict {
        policy: policy.name.clone(),
        generation: policy.generation,
        enforcement: policy.enforcement,
        authorities,
        failure,
    }
}

/// Verifies an image against every policy that covers it (see [`super::policy::covering`]).
pub fn verify<'a>(
    policies: impl IntoIterator<Item = &'a ResolvedPolicy>,
    layers: &[SignatureLayer],
    subject: Subject<'_>,
) -> Verdict {
    Verdict::from_policies(
        policies
            .into_iter()
            .map(|p| verify_policy(p, layers, subject))
            .collect(),
    )
}

/// The failure of the layer check that got furthest.
fn furthest(failures: impl Iterator<Item = Failure>) -> Failure {
    failures
        .max_by_key(|f| progress(f.reason))
        .unwrap_or_else(|| {
            Failure::new(FailureReason::SignatureMissing, "no signature".to_string())
        })
}

/// How far a layer check got before failing; the furthest failure explains the most.
fn progress(reason: FailureReason) -> u8 {
    match reason {
        FailureReason::SignatureMissing | FailureReason::SignatureUnreadable => 0,
        FailureReason::SignatureInvalid => 1,
        FailureReason::CertificateUntrusted => 2,
        FailureReason::CertificateExpired | FailureReason::CertificateNotYetValid => 3,
        FailureReason::IdentityMismatch => 4,
        FailureReason::PayloadInvalid => 5,
        FailureReason::SignatureForAnotherImage | FailureReason::ReferenceMismatch => 6,
        FailureReason::KeyInvalid
        | FailureReason::TrustedRootInvalid
        | FailureReason::IdentityInvalid
        | FailureReason::SourceUnavailable
        | FailureReason::GlobInvalid => 7,
    }
}

fn policy_failure(policy: &ResolvedPolicy, authorities: &[AuthorityVerdict]) -> Option<Failure> {
    let failures: Vec<(&str, &Failure)> = authorities
        .iter()
        .filter_map(|a| a.result.as_ref().err().map(|f| (a.authority.as_str(), f)))
        .collect();
    let describe = |failures: &[(&str, &Failure)]| {
        failures
            .iter()
            .map(|(name, f)| format!("authority {name:?}: {} ({})", f.message, f.reason()))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let name = &policy.name;
    match policy.requirement {
        _ if authorities.is_empty() => Some(Failure::new(
            FailureReason::KeyInvalid,
            format!("policy {name:?} has no authority"),
        )),
        Requirement::AnyOf if failures.len() == authorities.len() => {
            let reason = failures
                .iter()
                .map(|(_, f)| f.reason)
                .max_by_key(|r| progress(*r))
                .unwrap_or(FailureReason::SignatureMissing);
            Some(Failure::new(
                reason,
                format!(
                    "policy {name:?} requires a signature by any of its authorities: {}",
                    describe(&failures)
                ),
            ))
        }
        Requirement::AllOf if !failures.is_empty() => Some(Failure::new(
            failures[0].1.reason,
            format!(
                "policy {name:?} requires a signature by every authority: {}",
                describe(&failures)
            ),
        )),
        _ => None,
    }
}
