//! Fixtures made in the tests (keys with aws-lc-rs, a certificate authority with rcgen, cosign
//! payloads, signature layers and Rekor bundles) and the verification cases of issue 20.

use std::collections::BTreeMap;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyUsagePurpose, SanType,
};

use super::cosign::{
    BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING_MEDIA_TYPE, SignatureLayer, Subject, test_bundle,
};
use super::key::{hex, pem_blocks};
use super::policy::{
    Authority, DataSource, Enforcement, Identity, ImagePattern, ImagePolicy, ImagePolicySpec,
    KeylessAuthority, Requirement,
};
use super::resolve::{ResolvedPolicy, resolve};
use super::verify::{Decision, FailureReason, Verdict, verify, verify_policy};
use crate::reference::DockerImageReference;

// ---------------------------------------------------------------- fixtures ---

pub(crate) fn ec_key() -> EcdsaKeyPair {
    EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("key generation")
}

pub(crate) fn sign(pair: &EcdsaKeyPair, message: &[u8]) -> Vec<u8> {
    pair.sign(&SystemRandom::new(), message)
        .expect("signing")
        .as_ref()
        .to_vec()
}

pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn spki(pair: &EcdsaKeyPair) -> Vec<u8> {
    pair.public_key()
        .as_der()
        .expect("public key DER")
        .as_ref()
        .to_vec()
}

/// A key pair and its public key as `cosign.pub`.
pub(crate) fn ec_key_pem() -> (EcdsaKeyPair, String) {
    let pair = ec_key();
    let pem = pem("PUBLIC KEY", &spki(&pair));
    (pair, pem)
}

fn time(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn offset(t: Timestamp) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t.as_second()).expect("in range")
}

/// What a test leaf certificate says.
pub(crate) struct LeafSpec<'a> {
    pub email: Option<&'a str>,
    pub uri: Option<&'a str>,
    pub issuer: &'a str,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    pub code_signing: bool,
}

impl Default for LeafSpec<'_> {
    fn default() -> Self {
        Self {
            email: Some(SUBJECT),
            uri: None,
            issuer: ISSUER,
            not_before: time("2025-06-01T12:00:00Z"),
            not_after: time("2025-06-01T12:10:00Z"),
            code_signing: true,
        }
    }
}

/// A certificate authority made in the test, Fulcio-like.
pub(crate) struct TestCa {
    params: CertificateParams,
    key: rcgen::KeyPair,
    cert: rcgen::Certificate,
}

impl TestCa {
    pub(crate) fn new(common_name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "test.example");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = offset(time("2020-01-01T00:00:00Z"));
        params.not_after = offset(time("2040-01-01T00:00:00Z"));
        let key = rcgen::KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        Self { params, key, cert }
    }

    pub(crate) fn der(&self) -> &[u8] {
        self.cert.der().as_ref()
    }

    pub(crate) fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A signing certificate issued by this CA, with its key.
    pub(crate) fn leaf(&self, spec: &LeafSpec<'_>) -> (EcdsaKeyPair, String) {
        let pair = ec_key();
        let pkcs8 = pair.to_pkcs8v1().expect("PKCS#8");
        let key = rcgen::KeyPair::try_from(pkcs8.as_ref()).expect("rcgen key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.subject_alt_names = spec
            .email
            .map(|e| SanType::Rfc822Name(e.try_into().expect("IA5")))
            .into_iter()
            .chain(spec.uri.map(|u| SanType::URI(u.try_into().expect("IA5"))))
            .collect();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if spec.code_signing {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        } else {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        }
        // Fulcio's OIDC issuer (v2): a DER UTF8String
        let mut issuer = vec![0x0c, u8::try_from(spec.issuer.len()).expect("short issuer")];
        issuer.extend_from_slice(spec.issuer.as_bytes());
        params.custom_extensions = vec![CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 57264, 1, 8],
            issuer,
        )];
        params.not_before = offset(spec.not_before);
        params.not_after = offset(spec.not_after);
        let cert = params
            .signed_by(&key, &Issuer::from_params(&self.params, &self.key))
            .expect("leaf certificate");
        (pair, cert.pem())
    }
}

pub(crate) const DIGEST: &str =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const OTHER_DIGEST: &str =
    "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const REPOSITORY: &str = "registry.example.com/team/app";
const ISSUER: &str = "https://issuer.example.com";
const SUBJECT: &str = "dev@example.com";

fn now() -> Timestamp {
    time("2025-06-01T12:05:00Z")
}

fn reference() -> DockerImageReference {
    DockerImageReference::parse(&format!("{REPOSITORY}:1.0")).expect("reference")
}

fn subject(reference: &DockerImageReference, now: Timestamp) -> Subject<'_> {
    Subject {
        digest: DIGEST,
        reference,
        now,
    }
}

/// Cosign's simple signing payload.
pub(crate) fn payload(digest: &str, docker_reference: &str) -> Vec<u8> {
    serde_json::json!({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature"
        },
        "optional": {"build": "42", "signed-by": "ci"}
    })
    .to_string()
    .into_bytes()
}

fn layer(payload: Vec<u8>, signature: &[u8], extra: &[(&str, String)]) -> SignatureLayer {
    let mut annotations =
        BTreeMap::from([(SIGNATURE_ANNOTATION.to_string(), STANDARD.encode(signature))]);
    for (k, v) in extra {
        annotations.insert(k.to_string(), v.clone());
    }
    SignatureLayer {
        media_type: SIMPLE_SIGNING_MEDIA_TYPE.to_string(),
        digest: String::new(),
        annotations,
        payload,
    }
}

/// A layer signed by `pair` over a payload for `digest`.
fn keyed_layer(pair: &EcdsaKeyPair, digest: &str) -> SignatureLayer {
    let p = payload(digest, REPOSITORY);
    let sig = sign(pair, &p);
    layer(p, &sig, &[])
}

pub(crate) fn key_authority(name: &str, pem: &str) -> Authority {
    Authority {
        name: name.to_string(),
        key: Some(DataSource {
            data: Some(pem.to_string()),
            ..Default::default()
        }),
        keyless: None,
    }
}

fn keyless_authority(name: &str, root: &str, identity: Identity) -> Authority {
    Authority {
        name: name.to_string(),
        key: None,
        keyless: Some(KeylessAuthority {
            identities: vec![identity],
            trusted_root: DataSource {
                data: Some(root.to_string()),
                ..Default::default()
            },
        }),
    }
}

fn exact(issuer: &str, subject: &str) -> Identity {
    Identity {
        issuer: Some(issuer.to_string()),
        subject: Some(subject.to_string()),
        ..Default::default()
    }
}

pub(crate) fn policy_with(
    name: &str,
    authorities: Vec<Authority>,
    enforcement: Enforcement,
    requirement: Requirement,
) -> ResolvedPolicy {
    let mut p = ImagePolicy::new(
        name,
        ImagePolicySpec {
            images: vec![ImagePattern {
                glob: "registry.example.com/**".to_string(),
            }],
            authorities,
            enforcement: Some(enforcement),
            requirement: Some(requirement),
        },
    );
    p.metadata.generation = Some(1);
    resolve(&p, |_| Err("no cluster in unit tests".to_string()))
}

fn policy(authorities: Vec<Authority>) -> ResolvedPolicy {
    policy_with(
        "signed",
        authorities,
        Enforcement::Enforce,
        Requirement::AnyOf,
    )
}

fn reason_of(policy: &ResolvedPolicy, layers: &[SignatureLayer], now: Timestamp) -> &'static str {
    let r = reference();
    verify_policy(policy, layers, subject(&r, now)).result()
}

/// A keyless layer: a leaf from `ca` signing a payload for DIGEST, with chain and optional
/// bundle annotations.
fn keyless_layer(
    ca: &TestCa,
    spec: &LeafSpec<'_>,
    bundle: Option<(&EcdsaKeyPair, i64)>,
) -> SignatureLayer {
    let (leaf_key, leaf_pem) = ca.leaf(spec);
    let p = payload(DIGEST, REPOSITORY);
    let sig = sign(&leaf_key, &p);
    let mut extra = vec![
        (CERTIFICATE_ANNOTATION, leaf_pem.clone()),
        (CHAIN_ANNOTATION, ca.pem()),
    ];
    if let Some((log, integrated_time)) = bundle {
        let log_id = hex(&sha256(&spki(log)));
        extra.push((
            BUNDLE_ANNOTATION,
            test_bundle(log, &log_id, integrated_time, &p, &sig, &leaf_pem),
        ));
    }
    layer(p, &sig, &extra)
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).to_vec()
}

// ------------------------------------------------------------- keyed cases ---

#[test]
fn a_valid_keyed_signature_passes_and_fills_the_image_signature() {
    let (pair, pem) = ec_key_pem();
    let p = policy(vec![key_authority("release", &pem)]);
    let r = reference();
    let verdict = verify([&p], &[keyed_layer(&pair, DIGEST)], subject(&r, now()));
    assert_eq!(verdict.decision, Decision::Passed, "{verdict:#?}");
    assert_eq!(verdict.failure(), None);
    let signatures = verdict.signatures();
    assert_eq!(signatures.len(), 1);
    let fields = signatures[0].image_signature(now());
    assert_eq!(fields.type_, "CosignSimpleSigningV1");
    assert_eq!(fields.image_identity, REPOSITORY);
    assert_eq!(
        fields.signed_claims.get("build").map(String::as_str),
        Some("42")
    );
    let conditions: Vec<_> = fields
        .conditions
        .iter()
        .map(|c| (c.type_.as_str(), c.status.as_str()))
        .collect();
    assert_eq!(conditions, [("Trusted", "True"), ("ForImage", "True")]);
    let key_id = &fields.issued_to.as_ref().expect("issuedTo").public_key_id;
    assert_eq!(key_id.len(), 16);
    assert!(!fields.content.0.is_empty());
}

#[test]
fn a_signature_by_another_key_fails_as_signature_invalid() {
    let (_, pem) = ec_key_pem();
    let other = ec_key();
    let p = policy(vec![key_authority("release", &pem)]);
    assert_eq!(
        reason_of(&p, &[keyed_layer(&other, DIGEST)], now()),
        "SignatureInvalid"
    );
}

#[test]
fn a_tampered_payload_fails_as_signature_invalid() {
    let (pair, pem) = ec_key_pem();
    let p = policy(vec![key_authority("release", &pem)]);
    let mut l = keyed_layer(&pair, DIGEST);
    l.payload = payload(DIGEST, "registry.example.com/team/evil");
    assert_eq!(reason_of(&p, &[l], now()), "SignatureInvalid");
}

#[test]
fn a_payload_that_does_not_match_its_layer_digest_fails_as_signature_invalid() {
    let (pair, pem) = ec_key_pem();
    let p = policy(vec![key_authority("release", &pem)]);
    let mut l = keyed_layer(&pair, DIGEST);
    l.digest = OTHER_DIGEST.to_string();
    assert_eq!(reason_of(&p, &[l.clone()], now()), "SignatureInvalid");
    l.digest = format!("sha256:{}", hex(&sha256(&l.payload)));
    assert_eq!(reason_of(&p, &[l], now()), "Passed");
}

#[test]
fn a_signature_for_another_digest_fails_as_signature_for_another_image() {
    let (pair, pem) = ec_key_pem();
    let p = policy(vec![key_authority("release", &pem)]);
    let r = reference();
    let v = verify_policy(&p, &[keyed_layer(&pair, OTHER_DIGEST)], subject(&r, now()));
    let failure = v.failure.expect("fails");
    assert_eq!(failure.reason(), "SignatureForAnotherImage");
    assert!(
        failure.message.contains("policy \"signed\""),
        "{}",
        failure.message
    );
    assert!(
        failure.message.contains("authority \"release\""),
        "{}",
        failure.message
    );
    assert!(
        failure.message.contains(OTHER_DIGEST),
        "{}",
        failure.message
    );
}

#[test]
fn an_image_without_signatures_fails_as_signature_missing() {
    let (_, pem) = ec_key_pem();
    let p = policy(vec![key_authority("release", &pem)]);
    assert_eq!(reason_of(&p, &[], now()), "SignatureMissing");
    // layers of other media types are not signatures
    let (pair, _) = ec_key_pem();
    let mut l = keyed_layer(&pair, DIGEST);
    l.media_type = "application/vnd.oci.image.layer.v1.tar".to_string();
    assert_eq!(reason_of(&p, &[l], now()), "SignatureMissing");
}

#[test]
fn a_signature_naming_another_repository_fails_as_reference_mismatch() {
    let (pair, pem) = ec_key_pem();
    let p = policy(vec![key_authority("release", &pem)]);
    let pl = payload(DIGEST, "registry.example.com/other/app:1.0");
    let sig = sign(&pair, &pl);
    assert_eq!(
        reason_of(&p, &[layer(pl, &sig, &[])], now()),
        "ReferenceMismatch"
    );
}

#[test]
fn a_signed_payload_of_another_type_fails_as_payload_invalid() {
    let (pair, pem) = ec_key_pem();
    let p = policy(vec![key_authority("release", &pem)]);
    let pl = br#"{"critical":{"identity":{"docker-reference":"x"},"image":{"docker-manifest-digest":"sha256:1"},"type":"something else"}}"#.to_vec();
    let sig = sign(&pair, &pl);
    assert_eq!(
        reason_of(&p, &[layer(pl, &sig, &[])], now()),
        "PayloadInvalid"
    );
}

#[test]
fn an_authority_whose_key_cannot_be_parsed_fails_images_with_key_invalid() {
    let (pair, _) = ec_key_pem();
    let p = policy(vec![key_authority("broken", "not a key")]);
    assert_eq!(p.ready().1, "KeyInvalid");
    assert_eq!(
        reason_of(&p, &[keyed_layer(&pair, DIGEST)], now()),
        "KeyInvalid"
    );
}

#[test]
fn the_layer_that_got_furthest_explains_the_failure() {
    let (pair, pem) = ec_key_pem();
    let stranger = ec_key();
    let p = policy(vec![key_authority("release", &pem)]);
    let layers = [
        keyed_layer(&stranger, DIGEST),
        keyed_layer(&pair, OTHER_DIGEST),
    ];
    assert_eq!(reason_of(&p, &layers, now()), "SignatureForAnotherImage");
    // and one good layer among bad ones passes
    let layers = [keyed_layer(&stranger, DIGEST), keyed_layer(&pair, DIGEST)];
    assert_eq!(reason_of(&p, &layers, now()), "Passed");
}

// ----------------------------------------------------------- keyless cases ---

#[test]
fn a_keyless_signature_from_the_trusted_ca_with_the_right_identity_passes() {
    let ca = TestCa::new("Test Fulcio");
    let p = policy(vec![keyless_authority(
        "ci",
        &ca.pem(),
        exact(ISSUER, SUBJECT),
    )]);
    let l = keyless_layer(&ca, &LeafSpec::default(), None);
    let r = reference();
    let verdict = verify([&p], &[l], subject(&r, now()));
    assert_eq!(verdict.decision, Decision::Passed, "{verdict:#?}");
    let fields = verdict.signatures()[0].image_signature(now());
    let issued_by = fields.issued_by.expect("issuedBy");
    assert_eq!(issued_by.common_name, ISSUER);
    assert_eq!(issued_by.organization, "test.example");
    assert_eq!(fields.issued_to.expect("issuedTo").common_name, SUBJECT);
    // without a log entry, created is the certificate's notBefore
    assert_eq!(
        fields.created.map(|t| t.0),
        Some(time("2025-06-01T12:00:00Z"))
    );
}

#[test]
fn a_keyless_signature_with_a_uri_subject_passes() {
    let ca = TestCa::new("Test Fulcio");
    let workflow = "https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main";
    let p = policy(vec![keyless_authority(
        "ci",
        &ca.pem(),
        exact(ISSUER, workflow),
    )]);
    let spec = LeafSpec {
        email: None,
        uri: Some(workflow),
        ..Default::default()
    };
    assert_eq!(
        reason_of(&p, &[keyless_layer(&ca, &spec, None)], now()),
        "Passed"
    );
}

#[test]
fn a_keyless_signature_from_another_issuer_fails_as_identity_mismatch() {
    let ca = TestCa::new("Test Fulcio");
    let p = policy(vec![keyless_authority(
        "ci",
        &ca.pem(),
        exact(ISSUER, SUBJECT),
    )]);
    let spec = LeafSpec {
        issuer: "https://evil.example.com",
        ..Default::default()
    };
    let r = reference();
    let v = verify_policy(&p, &[keyless_layer(&ca, &spec, None)], subject(&r, now()));
    let failure = v.failure.expect("fails");
    assert_eq!(failure.reason(), "IdentityMismatch");
    assert!(
        failure.message.contains("https://evil.example.com"),
        "{}",
        failure.message
    );
}

#[test]
fn a_keyless_signature_for_another_subject_fails_as_identity_mismatch() {
    let ca = TestCa::new("Test Fulcio");
    let p = policy(vec![keyless_authority(
        "ci",
        &ca.pem(),
        exact(ISSUER, SUBJECT),
    )]);
    let spec = LeafSpec {
        email: Some("intruder@example.com"),
        ..Default::default()
    };
    assert_eq!(
        reason_of(&p, &[keyless_layer(&ca, &spec, None)], now()),
        "IdentityMismatch"
    );
}

#[test]
fn identity_regular_expressions_match_issuer_and_subject_separately() {
    let ca = TestCa::new("Test Fulcio");
    let by_regexp = |issuer: &str, subject: &str| Identity {
        issuer_reg_exp: Some(issuer.to_string()),
        subject_reg_exp: Some(subject.to_string()),
        ..Default::default()
    };
    let l = keyless_layer(&ca, &LeafSpec::default(), None);
    let check = |identity: Identity| {
        reason_of(
            &policy(vec![keyless_authority("ci", &ca.pem(), identity)]),
            std::slice::from_ref(&l),
            now(),
        )
    };
    assert_eq!(
        check(by_regexp(
            r"https://issuer\.example\.com",
            r".*@example\.com"
        )),
        "Passed"
    );
    assert_eq!(
        check(by_regexp(r"https://other\..*", r".*@example\.com")),
        "IdentityMismatch"
    );
    assert_eq!(
        check(by_regexp(r"https://issuer\.example\.com", r".*@other\.com")),
        "IdentityMismatch"
    );
    // anchored: a prefix is not a match
    assert_eq!(
        check(by_regexp(r"https://issuer", r".*")),
        "IdentityMismatch"
    );
}

#[test]
fn an_expired_certificate_fails_as_certificate_expired() {
    let ca = TestCa::new("Test Fulcio");
    let p = policy(vec![keyless_authority(
        "ci",
        &ca.pem(),
        exact(ISSUER, SUBJECT),
    )]);
    let l = keyless_layer(&ca, &LeafSpec::default(), None);
    let later = time("2025-06-02T00:00:00Z");
    let r = reference();
    let v = verify_policy(&p, std::slice::from_ref(&l), subject(&r, later));
    let failure = v.failure.expect("fails");
    assert_eq!(failure.reason(), "CertificateExpired");
    assert!(
        failure.message.contains("no transparency log entry"),
        "{}",
        failure.message
    );
    // and one not valid yet
    let earlier = time("2025-06-01T00:00:00Z");
    assert_eq!(reason_of(&p, &[l], earlier), "CertificateNotYetValid");
}

#[test]
fn a_certificate_valid_at_its_verified_log_time_passes_after_it_expired() {
    let ca = TestCa::new("Test Fulcio");
    let log = ec_key();
    let root = format!("{}{}", ca.pem(), pem("PUBLIC KEY", &spki(&log)));
    let p = policy(vec![keyless_authority("ci", &root, exact(ISSUER, SUBJECT))]);
    let logged_at = time("2025-06-01T12:01:00Z").as_second();
    let l = keyless_layer(&ca, &LeafSpec::default(), Some((&log, logged_at)));
    let later = time("2026-01-01T00:00:00Z");
    let r = reference();
    let verdict = verify([&p], &[l], subject(&r, later));
    assert_eq!(verdict.decision, Decision::Passed, "{verdict:#?}");
    assert_eq!(
        verdict.signatures()[0].created,
        Some(time("2025-06-01T12:01:00Z"))
    );
}

#[test]
fn a_bundle_from_a_log_the_root_does_not_trust_dates_nothing() {
    let ca = TestCa::new("Test Fulcio");
    let trusted_log = ec_key();
    let rogue_log = ec_key();
    let root = format!("{}{}", ca.pem(), pem("PUBLIC KEY", &spki(&trusted_log)));
    let p = policy(vec![keyless_authority("ci", &root, exact(ISSUER, SUBJECT))]);
    let logged_at = time("2025-06-01T12:01:00Z").as_second();
    let l = keyless_layer(&ca, &LeafSpec::default(), Some((&rogue_log, logged_at)));
    assert_eq!(
        reason_of(&p, &[l], time("2026-01-01T00:00:00Z")),
        "CertificateExpired"
    );
}

#[test]
fn a_certificate_from_an_untrusted_ca_fails_as_certificate_untrusted() {
    let trusted = TestCa::new("Trusted");
    let rogue = TestCa::new("Rogue");
    let p = policy(vec![keyless_authority(
        "ci",
        &trusted.pem(),
        exact(ISSUER, SUBJECT),
    )]);
    let l = keyless_layer(&rogue, &LeafSpec::default(), None);
    assert_eq!(reason_of(&p, &[l], now()), "CertificateUntrusted");
}

#[test]
fn a_certificate_without_code_signing_fails_as_certificate_untrusted() {
    let ca = TestCa::new("Test Fulcio");
    let p = policy(vec![keyless_authority(
        "ci",
        &ca.pem(),
        exact(ISSUER, SUBJECT),
    )]);
    let spec = LeafSpec {
        code_signing: false,
        ..Default::default()
    };
    assert_eq!(
        reason_of(&p, &[keyless_layer(&ca, &spec, None)], now()),
        "CertificateUntrusted"
    );
}

#[test]
fn a_keyless_layer_without_a_certificate_fails_as_certificate_untrusted() {
    let ca = TestCa::new("Test Fulcio");
    let p = policy(vec![keyless_authority(
        "ci",
        &ca.pem(),
        exact(ISSUER, SUBJECT),
    )]);
    let (pair, _) = ec_key_pem();
    assert_eq!(
        reason_of(&p, &[keyed_layer(&pair, DIGEST)], now()),
        "CertificateUntrusted"
    );
}

#[test]
fn a_trusted_root_json_verifies_keyless_signatures_and_dates_them_by_its_tlog() {
    let ca = TestCa::new("Test Fulcio");
    let log = ec_key();
    let root = serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [{"publicKey": {"rawBytes": STANDARD.encode(spki(&log)),
                                 "validFor": {"start": "2020-01-01T00:00:00Z"}}}],
        "certificateAuthorities": [{
            "certChain": {"certificates": [{"rawBytes": STANDARD.encode(ca.der())}]},
            "validFor": {"start": "2020-01-01T00:00:00Z"}
        }]
    })
    .to_string();
    let p = policy(vec![keyless_authority("ci", &root, exact(ISSUER, SUBJECT))]);
    let logged_at = time("2025-06-01T12:01:00Z").as_second();
    let l = keyless_layer(&ca, &LeafSpec::default(), Some((&log, logged_at)));
    assert_eq!(reason_of(&p, &[l], time("2027-01-01T00:00:00Z")), "Passed");
}

// ---------------------------------------------------- combining policies ---

#[test]
fn any_of_passes_with_one_authority_and_all_of_needs_every_one() {
    let (pair, pem) = ec_key_pem();
    let (_, absent_pem) = ec_key_pem();
    let authorities = || {
        vec![
            key_authority("release", &pem),
            key_authority("security", &absent_pem),
        ]
    };
    let layers = [keyed_layer(&pair, DIGEST)];
    let any = policy_with(
        "any",
        authorities(),
        Enforcement::Enforce,
        Requirement::AnyOf,
    );
    assert_eq!(reason_of(&any, &layers, now()), "Passed");
    let all = policy_with(
        "all",
        authorities(),
        Enforcement::Enforce,
        Requirement::AllOf,
    );
    let r = reference();
    let v = verify_policy(&all, &layers, subject(&r, now()));
    let failure = v.failure.expect("fails");
    assert_eq!(failure.reason(), "SignatureInvalid");
    assert!(
        failure.message.contains("authority \"security\""),
        "{}",
        failure.message
    );
    assert!(
        !failure.message.contains("authority \"release\""),
        "{}",
        failure.message
    );
}

#[test]
fn an_enforce_failure_refuses_a_warn_failure_only_warns() {
    let (pair, pem) = ec_key_pem();
    let (_, other_pem) = ec_key_pem();
    let passing = policy_with(
        "passing",
        vec![key_authority("k", &pem)],
        Enforcement::Enforce,
        Requirement::AnyOf,
    );
    let warn = policy_with(
        "warn",
        vec![key_authority("k", &other_pem)],
        Enforcement::Warn,
        Requirement::AnyOf,
    );
    let enforce = policy_with(
        "enforce",
        vec![key_authority("k", &other_pem)],
        Enforcement::Enforce,
        Requirement::AnyOf,
    );
    let layers = [keyed_layer(&pair, DIGEST)];
    let r = reference();
    let s = subject(&r, now());

    let v = verify([&passing, &warn], &layers, s);
    assert_eq!(v.decision, Decision::Warned);
    assert!(v.failure().expect("warned").message.contains("\"warn\""));
    // the passing policy's signature is still recorded
    assert_eq!(v.signatures().len(), 1);

    let v = verify([&warn, &enforce], &layers, s);
    assert_eq!(v.decision, Decision::Refused);
    assert!(
        v.failure()
            .expect("refused")
            .message
            .contains("\"enforce\"")
    );

    let v = verify(std::iter::empty::<&ResolvedPolicy>(), &layers, s);
    assert_eq!(v.decision, Decision::Unverified);
}

#[test]
fn verdicts_are_plain_data_that_a_cache_can_replay() {
    let (pair, pem) = ec_key_pem();
    let p = policy(vec![key_authority("release", &pem)]);
    let layers = [keyed_layer(&pair, DIGEST)];
    let r = reference();
    let first = verify_policy(&p, &layers, subject(&r, now()));
    let again = verify_policy(&p, &layers, subject(&r, now()));
    assert_eq!(first, again);
    let replayed = Verdict::from_policies(vec![first.clone()]);
    assert_eq!(replayed, verify([&p], &layers, subject(&r, now())));
    assert_eq!(first.result(), "Passed");
    // PEM helpers round-trip
    assert_eq!(pem_blocks(pem.as_bytes(), "PUBLIC KEY").len(), 1);
    assert_eq!(FailureReason::SignatureMissing.as_str(), "SignatureMissing");
}
