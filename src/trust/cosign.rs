//! Cosign signatures as registries store them, and the check of one signature against one
//! authority.
//!
//! Cosign's tag schema: the signatures of `repo@sha256:<hex>` are the layers of the manifest
//! tagged `sha256-<hex>.sig` in the same repository ([`signature_tag`]). Each layer:
//! - has media type [`SIMPLE_SIGNING_MEDIA_TYPE`]; its blob is the "simple signing" payload,
//!   JSON naming the image digest (`critical.image.docker-manifest-digest`), the reference it
//!   was signed as (`critical.identity.docker-reference`) and optional claims;
//! - carries the base64 signature over the blob bytes in [`SIGNATURE_ANNOTATION`];
//! - for keyless signatures, the PEM signing certificate in [`CERTIFICATE_ANNOTATION`], the
//!   PEM chain in [`CHAIN_ANNOTATION`] and Rekor's bundle in [`BUNDLE_ANNOTATION`] (the log
//!   entry and its signed entry timestamp, which dates the signature).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::cert::Leaf;
use super::key::{hex, pem_blocks};
use super::policy::repository_of;
use super::resolve::{IdentityMatcher, Verifier};
use super::root::TrustedRoot;
use super::verify::{Failure, FailureReason, VerifiedSignature};
use crate::api::image_signature::{SignatureIssuer, SignatureSubject};
use crate::reference::DockerImageReference;

/// The media type of a cosign signature layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The layer annotation holding the PEM signing certificate (keyless).
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// The layer annotation holding the PEM certificate chain (keyless).
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// The layer annotation holding Rekor's bundle.
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// `critical.type` of a cosign payload.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";
/// The `type` of the ImageSignatures recorded for cosign signatures.
pub const IMAGE_SIGNATURE_TYPE_COSIGN: &str = "CosignSimpleSigningV1";

/// The tag cosign stores an image's signatures under: `sha256-<hex>.sig` for `sha256:<hex>`.
pub fn signature_tag(digest: &str) -> Option<String> {
    tag_with_suffix(digest, "sig")
}

/// The tag cosign stores an image's attestations under: `sha256-<hex>.att`.
pub fn attestation_tag(digest: &str) -> Option<String> {
    tag_with_suffix(digest, "att")
}

/// The tag cosign stores `digest`'s artifacts of kind `suffix` (`sig`, `att`, `sbom`) under.
pub fn tag_with_suffix(digest: &str, suffix: &str) -> Option<String> {
    let (algorithm, hex) = digest.split_once(':')?;
    (!algorithm.is_empty() && !hex.is_empty()).then(|| format!("{algorithm}-{hex}.{suffix}"))
}

/// One layer of a signature manifest, as the IO layer fetched it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignatureLayer {
    /// The layer's media type.
    pub media_type: String,
    /// The layer's digest from the manifest (`sha256:…`); checked against the payload when
    /// set.
    pub digest: String,
    /// The layer's annotations.
    pub annotations: BTreeMap<String, String>,
    /// The layer blob: the simple signing payload.
    pub payload: Vec<u8>,
}

/// The image whose signatures are checked.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// The image's manifest digest (`sha256:…`).
    pub digest: &'a str,
    /// The reference it is imported by (its repository must be the one signed).
    pub reference: &'a DockerImageReference,
    /// When the verification runs: a keyless certificate without a verified log entry must be
    /// valid then.
    pub now: Timestamp,
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
    #[serde(default)]
    optional: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct Critical {
    identity: PayloadIdentity,
    image: PayloadImage,
    #[serde(rename = "type")]
    type_: String,
}

#[derive(Deserialize)]
struct PayloadIdentity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Deserialize)]
struct PayloadImage {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// The fields of a verified signature that come from the payload and the signer.
struct Checked {
    image_identity: String,
    signed_claims: BTreeMap<String, String>,
}

/// Checks one signature layer against one authority.
pub fn check_layer(
    authority: &str,
    verifier: &Verifier,
    layer: &SignatureLayer,
    subject: Subject<'_>,
) -> Result<VerifiedSignature, Failure> {
    let invalid = |m: String| Failure::new(FailureReason::SignatureInvalid, m);
    if !layer.digest.is_empty() {
        let actual = format!("sha256:{}", hex(&Sha256::digest(&layer.payload)));
        if actual != layer.digest {
            return Err(invalid(format!(
                "the signature payload does not match its layer digest {}",
                layer.digest
            )));
        }
    }
    let encoded = layer.annotations.get(SIGNATURE_ANNOTATION).ok_or_else(|| {
        invalid(format!(
            "the layer has no {SIGNATURE_ANNOTATION} annotation"
        ))
    })?;
    let signature = STANDARD
        .decode(encoded.trim())
        .map_err(|e| invalid(format!("the signature is not base64: {e}")))?;
    match verifier {
        Verifier::Key(key) => {
            if !key.verify(&layer.payload, &signature) {
                return Err(invalid(format!(
                    "the signature does not verify with the key of authority {authority:?}"
                )));
            }
            let checked = check_payload(&layer.payload, subject)?;
            Ok(VerifiedSignature {
                authority: authority.to_string(),
                signature,
                image_identity: checked.image_identity,
                signed_claims: checked.signed_claims,
                issued_by: None,
                issued_to: Some(SignatureSubject {
                    public_key_id: key.fingerprint()[..16].to_string(),
                    ..Default::default()
                }),
                // a key authority has no log keys to verify a bundle's time with
                created: None,
            })
        }
        Verifier::Keyless { identities, root } => {
            keyless(authority, identities, root, layer, signature, subject)
        }
    }
}

fn keyless(
    authority: &str,
    identities: &[IdentityMatcher],
    root: &TrustedRoot,
    layer: &SignatureLayer,
    signature: Vec<u8>,
    subject: Subject<'_>,
) -> Result<VerifiedSignature, Failure> {
    let untrusted = |m: String| Failure::new(FailureReason::CertificateUntrusted, m);
    let pem = layer
        .annotations
        .get(CERTIFICATE_ANNOTATION)
        .ok_or_else(|| {
            untrusted(format!(
                "the signature has no certificate ({CERTIFICATE_ANNOTATION}) for keyless authority {authority:?}"
            ))
        })?;
    let der = pem_blocks(pem.as_bytes(), "CERTIFICATE")
        .into_iter()
        .next()
        .ok_or_else(|| untrusted("the signing certificate is not PEM".to_string()))?;
    let leaf = Leaf::parse(&der).map_err(|e| untrusted(e.to_string()))?;
    if !leaf.key.verify(&layer.payload, &signature) {
        return Err(Failure::new(
            FailureReason::SignatureInvalid,
            "the signature does not verify with its certificate's key".to_string(),
        ));
    }
    let chain: Vec<Vec<u8>> = layer
        .annotations
        .get(CHAIN_ANNOTATION)
        .map(|pem| pem_blocks(pem.as_bytes(), "CERTIFICATE"))
        .unwrap_or_default();
    let logged = bundle_time(layer, &signature, &der, root);
    let at = logged.unwrap_or(subject.now);
    leaf.verify_chain(&chain, root, at).map_err(|e| {
        let reason = match e.reason() {
            "CertificateExpired" => FailureReason::CertificateExpired,
            "CertificateNotYetValid" => FailureReason::CertificateNotYetValid,
            _ => FailureReason::CertificateUntrusted,
        };
        let when = if logged.is_some() {
            "at its transparency log time"
        } else {
            "now (no transparency log entry verified with a key of the trusted root)"
        };
        Failure::new(reason, format!("{e} ({when})"))
    })?;
    let issuer = leaf.oidc_issuer.clone().unwrap_or_default();
    let subject_name = leaf.subject.clone().unwrap_or_default();
    if !identities.iter().any(|i| i.matches(&issuer, &subject_name)) {
        let accepted = identities
            .iter()
            .map(|i| format!("issuer {} subject {}", i.issuer, i.subject))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Failure::new(
            FailureReason::IdentityMismatch,
            format!(
                "the certificate was issued to {subject_name:?} by {issuer:?}; authority {authority:?} accepts {accepted}"
            ),
        ));
    }
    let checked = check_payload(&layer.payload, subject)?;
    Ok(VerifiedSignature {
        authority: authority.to_string(),
        signature,
        image_identity: checked.image_identity,
        signed_claims: checked.signed_claims,
        issued_by: Some(SignatureIssuer {
            organization: leaf.issuer_organization.clone(),
            common_name: issuer,
        }),
        issued_to: Some(SignatureSubject {
            common_name: subject_name,
            public_key_id: leaf.key.fingerprint()[..16].to_string(),
            ..Default::default()
        }),
        created: Some(logged.unwrap_or(leaf.not_before)),
    })
}

/// The payload's checks: its type, the digest it signs and the repository it names.
fn check_payload(payload: &[u8], subject: Subject<'_>) -> Result<Checked, Failure> {
    let invalid = |m: String| Failure::new(FailureReason::PayloadInvalid, m);
    let parsed: Payload = serde_json::from_slice(payload)
        .map_err(|e| invalid(format!("the signed payload is not cosign's: {e}")))?;
    if parsed.critical.type_ != PAYLOAD_TYPE {
        return Err(invalid(format!(
            "the signed payload's type is {:?}, not {PAYLOAD_TYPE:?}",
            parsed.critical.type_
        )));
    }
    let signed_digest = parsed.critical.image.docker_manifest_digest;
    if signed_digest != subject.digest {
        return Err(Failure::new(
            FailureReason::SignatureForAnotherImage,
            format!(
                "the signature is for image {signed_digest}, not {}",
                subject.digest
            ),
        ));
    }
    let identity = parsed.critical.identity.docker_reference;
    let signed = DockerImageReference::parse(&identity).map_err(|e| {
        invalid(format!(
            "the signed docker-reference {identity:?} is not a reference: {e}"
        ))
    })?;
    let (signed_repository, imported) = (repository_of(&signed), repository_of(subject.reference));
    if signed_repository != imported {
        return Err(Failure::new(
            FailureReason::ReferenceMismatch,
            format!("the signature is for repository {signed_repository}, not {imported}"),
        ));
    }
    let signed_claims = parsed
        .optional
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect();
    Ok(Checked {
        image_identity: identity,
        signed_claims,
    })
}

#[derive(Deserialize)]
struct Bundle {
    #[serde(rename = "SignedEntryTimestamp")]
    signed_entry_timestamp: String,
    #[serde(rename = "Payload")]
    payload: BundlePayload,
}

#[derive(Deserialize)]
struct BundlePayload {
    body: String,
    #[serde(rename = "integratedTime")]
    integrated_time: i64,
    #[serde(rename = "logIndex")]
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

#[derive(Deserialize)]
struct HashedRekord {
    kind: String,
    spec: HashedRekordSpec,
}

#[derive(Deserialize)]
struct HashedRekordSpec {
    data: HashedRekordData,
    signature: HashedRekordSignature,
}

#[derive(Deserialize)]
struct HashedRekordData {
    hash: HashedRekordHash,
}

#[derive(Deserialize)]
struct HashedRekordHash {
    algorithm: String,
    value: String,
}

#[derive(Deserialize)]
struct HashedRekordSignature {
    content: String,
    #[serde(rename = "publicKey")]
    public_key: Option<HashedRekordKey>,
}

#[derive(Deserialize)]
struct HashedRekordKey {
    content: String,
}

/// The signature's log time: the bundle's integratedTime when the bundle's signed entry
/// timestamp verifies with a log key of `root` valid then, and its entry records this
/// signature over this payload by this certificate. `None` otherwise.
fn bundle_time(
    layer: &SignatureLayer,
    signature: &[u8],
    certificate: &[u8],
    root: &TrustedRoot,
) -> Option<Timestamp> {
    let bundle: Bundle = serde_json::from_str(layer.annotations.get(BUNDLE_ANNOTATION)?).ok()?;
    let p = &bundle.payload;
    let time = Timestamp::from_second(p.integrated_time).ok()?;
    let log = root
        .logs
        .iter()
        .find(|l| l.log_id == p.log_id && l.valid_for.contains(time))?;
    let set = STANDARD.decode(&bundle.signed_entry_timestamp).ok()?;
    if !log.key.verify(canonical_payload(p).as_bytes(), &set) {
        return None;
    }
    let body: HashedRekord = serde_json::from_slice(&STANDARD.decode(&p.body).ok()?).ok()?;
    let spec = &body.spec;
    let recorded = STANDARD.decode(&spec.signature.content).ok()?;
    let payload_hash = hex(&Sha256::digest(&layer.payload));
    let same_entry = body.kind == "hashedrekord"
        && spec.data.hash.algorithm == "sha256"
        && spec.data.hash.value == payload_hash
        && recorded == signature;
    if !same_entry {
        return None;
    }
    let key_pem = STANDARD
        .decode(&spec.signature.public_key.as_ref()?.content)
        .ok()?;
    let logged_certificate = pem_blocks(&key_pem, "CERTIFICATE");
    (logged_certificate.first().map(Vec::as_slice) == Some(certificate)).then_some(time)
}

/// Rekor's canonical JSON of a bundle payload (RFC 8785: sorted keys, no spaces), which the
/// signed entry timestamp signs.
fn canonical_payload(p: &BundlePayload) -> String {
    let string = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    format!(
        "{{\"body\":{},\"integratedTime\":{},\"logID\":{},\"logIndex\":{}}}",
        string(&p.body),
        p.integrated_time,
        string(&p.log_id),
        p.log_index
    )
}

/// Test support: a Rekor bundle for `signature` over `payload` by the holder of
/// `certificate_pem` (or a key), logged at `integrated_time` and signed with `log`.
#[cfg(test)]
pub(crate) fn test_bundle(
    log: &aws_lc_rs::signature::EcdsaKeyPair,
    log_id: &str,
    integrated_time: i64,
    payload: &[u8],
    signature: &[u8],
    certificate_pem: &str,
) -> String {
    let body = serde_json::json!({
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hex(&Sha256::digest(payload))}},
            "signature": {
                "content": STANDARD.encode(signature),
                "publicKey": {"content": STANDARD.encode(certificate_pem)}
            }
        }
    });
    let p = BundlePayload {
        body: STANDARD.encode(body.to_string()),
        integrated_time,
        log_index: 7,
        log_id: log_id.to_string(),
    };
    let set = super::tests::sign(log, canonical_payload(&p).as_bytes());
    serde_json::json!({
        "SignedEntryTimestamp": STANDARD.encode(set),
        "Payload": {
            "body": p.body,
            "integratedTime": p.integrated_time,
            "logIndex": p.log_index,
            "logID": p.log_id
        }
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_and_attestation_tags_follow_cosigns_tag_schema() {
        assert_eq!(
            signature_tag("sha256:abcd").as_deref(),
            Some("sha256-abcd.sig")
        );
        assert_eq!(
            attestation_tag("sha256:abcd").as_deref(),
            Some("sha256-abcd.att")
        );
        assert_eq!(signature_tag("abcd"), None);
    }

    #[test]
    fn the_canonical_bundle_payload_sorts_its_keys() {
        let p = BundlePayload {
            body: "Ym9keQ==".into(),
            integrated_time: 1700000000,
            log_index: 12,
            log_id: "c0d2".into(),
        };
        assert_eq!(
            canonical_payload(&p),
            r#"{"body":"Ym9keQ==","integratedTime":1700000000,"logID":"c0d2","logIndex":12}"#
        );
    }
}
