//! Cosign signatures through a real registry (distribution 2.8.2), without a cluster: images
//! pushed with `support::images`, signed with `support::cosign` the way `cosign sign --key`
//! stores signatures (an OCI manifest tagged `sha256-<hex>.sig` whose layers are the simple
//! signing payloads), fetched back with the operator's own registry client and verified by
//! the pure core (`imagestream_operator::trust`). This is the IO layer's step 3 of the design
//! note in `src/trust/mod.rs` done by hand: it shows that what the test signer writes is what
//! the core verifies, so the cluster tests can rely on the signer.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use imagestream_operator::reference::DockerImageReference;
use imagestream_operator::registry::{RegistryClient, RegistryConfig};
use imagestream_operator::trust::policy::{
    Authority, DataSource, ImagePattern, ImagePolicy, ImagePolicySpec, covering,
};
use imagestream_operator::trust::{
    self, Decision, Enforcement, FailureReason, ResolvedPolicy, SignatureLayer, Subject, Verdict,
};
use support::cosign::{self, CosignKey, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE};
use support::images::{ImageSpec, IndexSpec, OCI_MANIFEST, TestImage};
use support::registry::{RegistryOptions, TestRegistry, ensure_crypto};

/// What a signature layer blob may weigh (a payload is a few hundred bytes).
const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

fn client() -> RegistryClient {
    ensure_crypto();
    let config = RegistryConfig {
        timeout: Duration::from_secs(10),
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..RegistryConfig::default()
    };
    RegistryClient::new(config, None, true, None).expect("client")
}

async fn push(reg: &TestRegistry, repo: &str, tag: &str, seed: u64) -> String {
    let image: TestImage = ImageSpec::single("amd64", seed).build().into();
    reg.client().push(repo, tag, &image).await.expect("push")
}

/// The IO layer's step 3: the manifest tagged `sha256-<hex>.sig` in the image's repository
/// and each layer's blob; no such tag is no signature.
async fn fetch_signatures(
    client: &RegistryClient,
    reg: &TestRegistry,
    repo: &str,
    digest: &str,
) -> Vec<SignatureLayer> {
    let tag = trust::cosign::signature_tag(digest).expect("a digest");
    let manifest = match client.get_manifest(reg.addr(), repo, &tag).await {
        Ok(m) => m,
        Err(e) if e.reason() == "NotFound" => return Vec::new(),
        Err(e) => panic!("GET {repo}:{tag}: {e} ({})", e.reason()),
    };
    assert_eq!(
        manifest.media_type, OCI_MANIFEST,
        "cosign pushes OCI manifests"
    );
    let json: serde_json::Value = serde_json::from_slice(&manifest.bytes).expect("manifest JSON");
    let mut layers = Vec::new();
    for layer in json["layers"].as_array().expect("layers") {
        let digest = layer["digest"].as_str().expect("layer digest").to_string();
        let payload = client
            .get_blob(reg.addr(), repo, &digest, MAX_PAYLOAD_BYTES)
            .await
            .unwrap_or_else(|e| panic!("GET blob {digest}: {e}"));
        let annotations: BTreeMap<String, String> = layer["annotations"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect();
        layers.push(SignatureLayer {
            media_type: layer["mediaType"].as_str().unwrap_or_default().to_string(),
            digest,
            annotations,
            payload: payload.to_vec(),
        });
    }
    layers
}

/// An Enforce policy covering `<addr>/signed/**` with `key` as its one authority, inline.
fn policy(reg: &TestRegistry, name: &str, key: &CosignKey) -> ImagePolicy {
    let mut p = ImagePolicy::new(
        name,
        ImagePolicySpec {
            images: vec![ImagePattern {
                glob: format!("{}/signed/**", reg.addr()),
            }],
            authorities: vec![Authority {
                name: "team-key".into(),
                key: Some(DataSource {
                    data: Some(key.public_pem()),
                    ..Default::default()
                }),
                keyless: None,
            }],
            enforcement: Some(Enforcement::Enforce),
            requirement: None,
        },
    );
    p.metadata.generation = Some(1);
    p
}

fn resolved(reg: &TestRegistry, key: &CosignKey) -> ResolvedPolicy {
    let r = trust::resolve(&policy(reg, "signed", key), |source| {
        Err(format!("no cluster here: {source:?}"))
    });
    assert_eq!(r.ready().0, "True", "{:?}", r.ready());
    r
}

/// Fetches the signatures of `repo@digest` (imported as `repo:latest`) and verifies them
/// against `policy`.
async fn check(
    reg: &TestRegistry,
    policy: &ResolvedPolicy,
    repo: &str,
    digest: &str,
) -> (Verdict, Vec<SignatureLayer>) {
    let layers = fetch_signatures(&client(), reg, repo, digest).await;
    let reference = DockerImageReference::parse(&reg.image_ref(repo, "latest")).expect("reference");
    let subject = Subject {
        digest,
        reference: &reference,
        now: Timestamp::now(),
    };
    (trust::verify([policy], &layers, subject), layers)
}

fn failure(verdict: &Verdict) -> (FailureReason, String) {
    let f = verdict.failure().expect("a failure");
    (f.reason, f.message.clone())
}

#[tokio::test]
async fn a_signed_image_verifies_through_the_registry_and_fills_an_image_signature() {
    let reg = RegistryOptions::plain().start();
    let key = CosignKey::generate();
    let digest = push(&reg, "signed/app", "latest", 2001).await;
    let signed = cosign::sign(&reg, "signed/app", &digest, &key)
        .await
        .expect("sign");

    // stored as cosign stores it: a `.sig` tag beside `latest`
    let tags = reg.client().tags("signed/app").await.expect("tags");
    let sig_tag = format!("sha256-{}.sig", &digest[7..]);
    assert!(tags.contains(&sig_tag), "{tags:?}");

    let policy = resolved(&reg, &key);
    let reference = DockerImageReference::parse(&reg.image_ref("signed/app", "latest")).unwrap();
    assert_eq!(
        covering([&policy], &reference).enforcement,
        Some(Enforcement::Enforce)
    );
    let other = DockerImageReference::parse(&reg.image_ref("other/app", "latest")).unwrap();
    assert!(covering([&policy], &other).policies.is_empty());

    let (verdict, layers) = check(&reg, &policy, "signed/app", &digest).await;
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0].media_type, SIMPLE_SIGNING_MEDIA_TYPE);
    assert_eq!(layers[0].digest, signed.payload.digest);
    assert_eq!(
        layers[0].annotations.get(SIGNATURE_ANNOTATION),
        Some(&signed.signature_b64())
    );
    assert_eq!(verdict.decision, Decision::Passed, "{verdict:?}");
    assert_eq!(verdict.failure(), None);
    assert_eq!(verdict.policies[0].result(), "Passed");

    let signatures = verdict.signatures();
    assert_eq!(signatures.len(), 1);
    let now = Timestamp::now();
    let fields = signatures[0].image_signature(now);
    assert_eq!(fields.type_, "CosignSimpleSigningV1");
    assert_eq!(fields.content.0, signed.signature);
    assert_eq!(
        fields.image_identity,
        format!("{}/signed/app", reg.addr()),
        "cosign signs the repository, no tag"
    );
    let statuses: Vec<(&str, &str)> = fields
        .conditions
        .iter()
        .map(|c| (c.type_.as_str(), c.status.as_str()))
        .collect();
    assert_eq!(statuses, [("Trusted", "True"), ("ForImage", "True")]);
    let issued_to = fields.issued_to.as_ref().expect("issuedTo");
    assert_eq!(issued_to.public_key_id, key.key_id());
    assert_eq!(fields.issued_by, None, "a key has no issuer");
    assert!(
        fields.signed_claims.is_empty(),
        "{:?}",
        fields.signed_claims
    );
}

#[tokio::test]
async fn claims_signed_with_the_image_are_recorded() {
    let reg = RegistryOptions::plain().start();
    let key = CosignKey::generate();
    let digest = push(&reg, "signed/claims", "latest", 2002).await;
    cosign::sign_with_claims(
        &reg,
        "signed/claims",
        &digest,
        &key,
        &[("build", "42"), ("git-sha", "abc123")],
    )
    .await
    .expect("sign");
    let (verdict, _) = check(&reg, &resolved(&reg, &key), "signed/claims", &digest).await;
    assert_eq!(verdict.decision, Decision::Passed, "{verdict:?}");
    let claims = &verdict.signatures()[0].signed_claims;
    assert_eq!(
        claims,
        &BTreeMap::from([
            ("build".to_string(), "42".to_string()),
            ("git-sha".to_string(), "abc123".to_string()),
        ])
    );
}

#[tokio::test]
async fn a_signature_by_another_key_is_invalid_and_refused() {
    let reg = RegistryOptions::plain().start();
    let (trusted, other) = (CosignKey::generate(), CosignKey::generate());
    let digest = push(&reg, "signed/app", "latest", 2003).await;
    cosign::sign(&reg, "signed/app", &digest, &other)
        .await
        .expect("sign");

    let (verdict, layers) = check(&reg, &resolved(&reg, &trusted), "signed/app", &digest).await;
    assert_eq!(layers.len(), 1);
    assert_eq!(verdict.decision, Decision::Refused);
    let (reason, message) = failure(&verdict);
    assert_eq!(reason, FailureReason::SignatureInvalid, "{message}");
    assert!(
        message.contains("\"signed\"") && message.contains("\"team-key\""),
        "the message names the policy and the authority: {message}"
    );
    assert!(verdict.signatures().is_empty());
}

#[tokio::test]
async fn an_unsigned_image_has_no_signature_tag_and_misses_its_signature() {
    let reg = RegistryOptions::plain().start();
    let key = CosignKey::generate();
    let digest = push(&reg, "signed/app", "latest", 2004).await;

    // the registry answers 404 for the `.sig` tag: the client's NotFound, no layers
    let tag = trust::cosign::signature_tag(&digest).unwrap();
    let err = client()
        .get_manifest(reg.addr(), "signed/app", &tag)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "NotFound", "{err}");

    let (verdict, layers) = check(&reg, &resolved(&reg, &key), "signed/app", &digest).await;
    assert!(layers.is_empty());
    assert_eq!(verdict.decision, Decision::Refused);
    let (reason, message) = failure(&verdict);
    assert_eq!(reason, FailureReason::SignatureMissing, "{message}");
    assert!(message.contains(&digest), "{message}");
}

#[tokio::test]
async fn signatures_are_appended_and_any_one_by_the_trusted_key_passes() {
    let reg = RegistryOptions::plain().start();
    let (trusted, other) = (CosignKey::generate(), CosignKey::generate());
    let digest = push(&reg, "signed/app", "latest", 2005).await;
    cosign::sign(&reg, "signed/app", &digest, &other)
        .await
        .expect("sign");
    let good = cosign::sign(&reg, "signed/app", &digest, &trusted)
        .await
        .expect("sign");

    let (verdict, layers) = check(&reg, &resolved(&reg, &trusted), "signed/app", &digest).await;
    assert_eq!(layers.len(), 2, "cosign appends a signature layer");
    assert_eq!(verdict.decision, Decision::Passed, "{verdict:?}");
    let signatures = verdict.signatures();
    assert_eq!(signatures.len(), 1, "only the trusted key's signature");
    assert_eq!(signatures[0].signature, good.signature);
}

#[tokio::test]
async fn signatures_for_another_digest_another_repository_or_a_tampered_payload_fail() {
    let reg = RegistryOptions::plain().start();
    let key = CosignKey::generate();
    let policy = resolved(&reg, &key);

    // a valid signature of v1 copied under v2's `.sig` tag
    let v1 = push(&reg, "signed/copied", "v1", 2006).await;
    let v2 = push(&reg, "signed/copied", "latest", 2007).await;
    cosign::sign_for_digest(&reg, "signed/copied", &v2, &v1, &key)
        .await
        .expect("sign");
    let (verdict, _) = check(&reg, &policy, "signed/copied", &v2).await;
    assert_eq!(verdict.decision, Decision::Refused);
    assert_eq!(
        failure(&verdict).0,
        FailureReason::SignatureForAnotherImage,
        "{verdict:?}"
    );

    // the same image pushed to a second repository, signed for the first one
    let moved = push(&reg, "signed/moved", "latest", 2008).await;
    let elsewhere = cosign::docker_reference(&reg, "signed/original");
    cosign::sign_as(&reg, "signed/moved", &moved, &elsewhere, &key)
        .await
        .expect("sign");
    let (verdict, _) = check(&reg, &policy, "signed/moved", &moved).await;
    assert_eq!(
        failure(&verdict).0,
        FailureReason::ReferenceMismatch,
        "{verdict:?}"
    );

    // a payload changed after signing (its blob and digest agree; the signature does not)
    let tampered = push(&reg, "signed/tampered", "latest", 2009).await;
    cosign::push_tampered(&reg, "signed/tampered", &tampered, &key)
        .await
        .expect("sign");
    let (verdict, layers) = check(&reg, &policy, "signed/tampered", &tampered).await;
    assert_eq!(layers.len(), 1);
    assert_eq!(
        failure(&verdict).0,
        FailureReason::SignatureInvalid,
        "{verdict:?}"
    );
}

#[tokio::test]
async fn an_index_is_verified_by_its_own_digest() {
    let reg = RegistryOptions::plain().start();
    let key = CosignKey::generate();
    let index: TestImage = IndexSpec::oci(2010).into();
    let digest = reg
        .client()
        .push("signed/multi", "latest", &index)
        .await
        .expect("push");
    cosign::sign(&reg, "signed/multi", &digest, &key)
        .await
        .expect("sign");
    let policy = resolved(&reg, &key);
    let (verdict, _) = check(&reg, &policy, "signed/multi", &digest).await;
    assert_eq!(verdict.decision, Decision::Passed, "{verdict:?}");

    // a platform image of the index is not signed by the index's signature
    let child = index
        .child("linux/arm64/v8")
        .expect("child")
        .digest()
        .to_string();
    let (verdict, layers) = check(&reg, &policy, "signed/multi", &child).await;
    assert!(layers.is_empty());
    assert_eq!(failure(&verdict).0, FailureReason::SignatureMissing);
}

// ---------------------------------------------------------------- the importer itself ---

mod through_the_importer {
    //! The importer with a policy in its settings, as the controllers run it: what a signed
    //! first import costs with and without a policy, that an unchanged check still costs one
    //! HEAD, and that a multi-arch tag in Legacy mode is verified by its index.

    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use imagestream_operator::config::ReferrerListing;
    use imagestream_operator::credentials::Keyring;
    use imagestream_operator::import::contract::{Batch, BatchResult, ImageImport, Mode, Settings};
    use imagestream_operator::import::importer::Importer;
    use imagestream_operator::import::referrers::{ANNOTATION, Referrer};
    use imagestream_operator::registry::protocol::OCI_INDEX;
    use imagestream_operator::registry::{ClientCache, RegistryConfig};
    use imagestream_operator::trust::Decision;

    use super::support::cosign::{self, CosignKey, CosignLayer};
    use super::support::fault_registry::{FaultServer, FaultSwitch, Reply};
    use super::support::images::{IndexSpec, OCI_MANIFEST, TestImage};
    use super::support::registry::{RegistryOptions, TestRegistry, ensure_crypto, summary};
    use super::{push, resolved};

    fn importer() -> Importer {
        ensure_crypto();
        let config = RegistryConfig {
            timeout: Duration::from_secs(10),
            min_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            ..RegistryConfig::default()
        };
        Importer::new(ClientCache::new(config, 16, Duration::from_secs(300)))
    }

    /// Referrers are not listed here: these tests count what the signature check costs;
    /// `referrers_of_a_new_image_are_listed_on_its_image` counts what the listing adds.
    fn settings(reg: &TestRegistry, key: Option<&CosignKey>) -> Settings {
        Settings {
            insecure_registries: vec![reg.addr().to_string()],
            policies: Arc::new(key.map(|k| vec![resolved(reg, k)]).unwrap_or_default()),
            referrers: ReferrerListing::None,
            ..Settings::default()
        }
    }

    /// `batch` with no credentials and no known Images.
    async fn run_batch(importer: &Importer, batch: &Batch, settings: &Settings) -> BatchResult {
        importer
            .import(
                batch,
                &Keyring::empty(),
                &HashMap::<String, bool>::new(),
                settings,
                jiff::Timestamp::now(),
            )
            .await
    }

    /// One import of `from` (current image `current`): the result, the registry requests it
    /// made and how long it took.
    async fn import(
        importer: &Importer,
        reg: &TestRegistry,
        from: &str,
        current: Option<&str>,
        settings: &Settings,
    ) -> (BatchResult, Vec<String>, Duration) {
        import_verifying(importer, reg, from, current, false, settings).await
    }

    /// [`import`], verifying the current image too when `verify_current`.
    async fn import_verifying(
        importer: &Importer,
        reg: &TestRegistry,
        from: &str,
        current: Option<&str>,
        verify_current: bool,
        settings: &Settings,
    ) -> (BatchResult, Vec<String>, Duration) {
        let mut entry = ImageImport::new(from.to_string(), Mode::Legacy);
        entry.current_image = current.map(str::to_string);
        entry.verify_current = verify_current;
        let batch = Batch {
            images: vec![entry],
            repository: None,
        };
        let mark = reg.mark();
        let started = Instant::now();
        let result = run_batch(importer, &batch, settings).await;
        let took = started.elapsed();
        (result, summary(&reg.requests_since_async(mark).await), took)
    }

    #[tokio::test]
    async fn a_policy_costs_two_requests_on_a_new_image_and_none_on_an_unchanged_check() {
        let reg = RegistryOptions::plain().start();
        let key = CosignKey::generate();
        let v1 = push(&reg, "signed/app", "latest", 4001).await;
        cosign::sign(&reg, "signed/app", &v1, &key)
            .await
            .expect("sign");
        let from = reg.image_ref("signed/app", "latest");

        let (plain, without, took_without) =
            import(&importer(), &reg, &from, None, &settings(&reg, None)).await;
        assert!(plain.images[0].is_ok(), "{:?}", plain.images);
        assert!(plain.verifications.is_empty());

        let with_policy = settings(&reg, Some(&key));
        let importer = importer();
        let (signed, with, took_with) = import(&importer, &reg, &from, None, &with_policy).await;
        let imported = signed.images[0].as_ref().expect("imported");
        assert_eq!(imported.image, v1);
        assert_eq!(signed.verifications.len(), 1);
        assert_eq!(signed.verifications[0].decision, Decision::Passed);
        let recorded = &signed.new_images[&v1].spec.signatures;
        assert_eq!(recorded.len(), 1, "the signature is on the new Image");
        // the signature manifest and its payload: two GETs more, nothing else
        assert_eq!(with.len(), without.len() + 2, "{without:#?}\n{with:#?}");
        let sig_tag = cosign::signature_tag(&v1);
        assert!(
            with.iter()
                .any(|r| r.contains(&format!("/manifests/{sig_tag}"))),
            "{with:#?}"
        );
        eprintln!(
            "first import of a signed single-arch tag: {} requests in {took_without:?} \
             without a policy, {} requests in {took_with:?} with one",
            without.len(),
            with.len()
        );

        // a scheduled check of the unchanged tag: one HEAD, policy or not
        let (unchanged, requests, _) =
            import(&importer, &reg, &from, Some(&v1), &with_policy).await;
        assert!(unchanged.images[0].as_ref().is_ok_and(|i| i.unchanged));
        assert_eq!(requests.len(), 1, "{requests:#?}");
        assert!(requests[0].starts_with("HEAD "), "{requests:#?}");
        assert!(unchanged.verifications.is_empty());
        eprintln!("unchanged check with a policy: {requests:?}");

        // another stream importing the same image: the passing verdict is kept
        let (again, requests, _) = import(&importer, &reg, &from, None, &with_policy).await;
        assert_eq!(again.verifications[0].decision, Decision::Passed);
        assert!(again.verifications[0].policies[0].cached);
        assert!(
            !requests.iter().any(|r| r.contains(".sig")),
            "the signatures are not read again: {requests:#?}"
        );
    }

    #[tokio::test]
    async fn an_unsigned_new_image_is_refused_with_the_policys_reason() {
        let reg = RegistryOptions::plain().start();
        let key = CosignKey::generate();
        push(&reg, "signed/app", "latest", 4002).await;
        let from = reg.image_ref("signed/app", "latest");
        let (result, _, _) =
            import(&importer(), &reg, &from, None, &settings(&reg, Some(&key))).await;
        let failure = result.images[0].as_ref().expect_err("refused");
        assert_eq!(failure.reason, "SignatureMissing");
        assert!(failure.message.contains("signed"), "{}", failure.message);
        assert!(
            result.new_images.is_empty()
                || result
                    .new_images
                    .values()
                    .all(|i| i.spec.signatures.is_empty())
        );
        assert_eq!(result.verifications[0].decision, Decision::Refused);
    }

    /// A multi-arch `signed/multi:latest` whose index `key` signed: its digest and pull spec.
    async fn signed_index(reg: &TestRegistry, key: &CosignKey, seed: u64) -> (String, String) {
        let index: TestImage = IndexSpec::oci(seed).into();
        let digest = reg
            .client()
            .push("signed/multi", "latest", &index)
            .await
            .expect("push");
        cosign::sign(reg, "signed/multi", &digest, key)
            .await
            .expect("sign");
        (digest, reg.image_ref("signed/multi", "latest"))
    }

    /// A policy change (or a refused current image) asks for the current image to be
    /// verified: the unchanged check reads its signatures after the HEAD, refuses it when it
    /// is unsigned (the tag keeps it: nothing new to move to) and passes it once signed.
    #[tokio::test]
    async fn the_current_image_is_verified_when_the_plan_asks() {
        let reg = RegistryOptions::plain().start();
        let key = CosignKey::generate();
        let v1 = push(&reg, "signed/app", "latest", 4004).await;
        let from = reg.image_ref("signed/app", "latest");
        let with_policy = settings(&reg, Some(&key));
        let importer = importer();

        let (result, requests, _) =
            import_verifying(&importer, &reg, &from, Some(&v1), true, &with_policy).await;
        let failure = result.images[0]
            .as_ref()
            .expect_err("the current image refused");
        assert_eq!(failure.reason, "SignatureMissing");
        assert_eq!(result.verifications[0].image, v1);
        assert_eq!(result.verifications[0].decision, Decision::Refused);
        assert_eq!(
            requests.len(),
            2,
            "HEAD, then the signature tag: {requests:#?}"
        );
        assert!(requests[0].starts_with("HEAD "), "{requests:#?}");
        assert!(
            requests[1].contains(&cosign::signature_tag(&v1)),
            "{requests:#?}"
        );

        cosign::sign(&reg, "signed/app", &v1, &key)
            .await
            .expect("sign");
        let (result, _, _) =
            import_verifying(&importer, &reg, &from, Some(&v1), true, &with_policy).await;
        let imported = result.images[0].as_ref().expect("the current image passes");
        assert!(imported.unchanged && imported.image == v1, "{imported:?}");
        assert_eq!(result.verifications[0].decision, Decision::Passed);

        // not asked: the unchanged check is its one HEAD
        let (result, requests, _) =
            import_verifying(&importer, &reg, &from, Some(&v1), false, &with_policy).await;
        assert!(result.verifications.is_empty());
        assert_eq!(requests.len(), 1, "{requests:#?}");
    }

    /// The current child of a multi-arch tag is verified by the index it was chosen from.
    #[tokio::test]
    async fn a_current_child_is_verified_by_its_index() {
        let reg = RegistryOptions::plain().start();
        let key = CosignKey::generate();
        let (digest, from) = signed_index(&reg, &key, 4005).await;
        let with_policy = settings(&reg, Some(&key));
        let importer = importer();
        let (first, _, _) = import(&importer, &reg, &from, None, &with_policy).await;
        let child = first.images[0].as_ref().expect("imported").image.clone();
        let (again, _, _) =
            import_verifying(&importer, &reg, &from, Some(&child), true, &with_policy).await;
        assert!(
            again.images[0].as_ref().is_ok_and(|i| i.unchanged),
            "{:?}",
            again.images
        );
        assert_eq!(again.verifications[0].image, digest, "by the index");
        assert_eq!(again.verifications[0].decision, Decision::Passed);
    }

    /// `cosign sign` of a multi-arch tag signs its index; Legacy mode imports a child, which
    /// passes by the index's signature.
    #[tokio::test]
    async fn a_multi_arch_tag_in_legacy_mode_is_verified_by_its_index() {
        let reg = RegistryOptions::plain().start();
        let key = CosignKey::generate();
        let (digest, from) = signed_index(&reg, &key, 4003).await;
        let (result, _, _) =
            import(&importer(), &reg, &from, None, &settings(&reg, Some(&key))).await;
        let imported = result.images[0].as_ref().expect("imported");
        assert_ne!(imported.image, digest, "a child, in Legacy mode");
        assert_eq!(
            result.verifications[0].image, digest,
            "verified by the index"
        );
        assert_eq!(result.verifications[0].decision, Decision::Passed);
    }

    /// The annotation on the new Image of `digest`.
    fn listed(result: &BatchResult, digest: &str) -> Vec<Referrer> {
        let image = result.new_images.get(digest).expect("a new Image");
        let value = image
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION))
            .unwrap_or_else(|| panic!("no {ANNOTATION} on {:?}", image.metadata));
        serde_json::from_str(value).expect("a JSON array")
    }

    /// A signed and attested image imported under a covering policy: the Image lists both
    /// (distribution 2.8 has no referrers API: cosign's tags are asked), for three requests
    /// more on the registry's first new image and two on the next (the 404 is remembered);
    /// an unchanged check stays one HEAD.
    #[tokio::test]
    async fn referrers_of_a_new_image_are_listed_on_its_image() {
        let reg = RegistryOptions::plain().start();
        let key = CosignKey::generate();
        let repo = "signed/app";
        let v1 = push(&reg, repo, "latest", 4005).await;
        let signed = |digest: &str| {
            CosignLayer::signed(
                &key,
                cosign::payload(&cosign::docker_reference(&reg, repo), digest, &[]),
            )
        };
        let sig = cosign::append(&reg, repo, &v1, signed(&v1))
            .await
            .expect("sign")
            .manifest_digest;
        let att = cosign::attest(&reg, repo, &v1).await.expect("attest");
        let from = reg.image_ref(repo, "latest");

        let unlisted = settings(&reg, Some(&key));
        let (_, without, _) = import(&importer(), &reg, &from, None, &unlisted).await;
        let covered = Settings {
            referrers: ReferrerListing::default(),
            ..unlisted.clone()
        };
        let importer = importer();
        let (result, with, _) = import(&importer, &reg, &from, None, &covered).await;
        assert_eq!(result.images[0].as_ref().map(|i| &i.image), Ok(&v1));
        let hex = &v1[7..];
        let added: Vec<&String> = with.iter().filter(|r| !without.contains(r)).collect();
        assert_eq!(
            added,
            [
                &format!("GET /v2/{repo}/referrers/{v1} 404"),
                &format!("HEAD /v2/{repo}/manifests/sha256-{hex}.att 200"),
                &format!("HEAD /v2/{repo}/manifests/sha256-{hex}.sbom 404"),
            ],
            "the .sig the signature check read is not asked again:\n{without:#?}\n{with:#?}"
        );
        assert_eq!(with.len(), without.len() + 3, "{without:#?}\n{with:#?}");
        let referrers = listed(&result, &v1);
        let shown: Vec<(&str, String, &str)> = referrers
            .iter()
            .map(|r| (r.kind.as_str(), r.tag.clone(), r.digest.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                ("signature", format!("sha256-{hex}.sig"), sig.as_str()),
                ("attestation", format!("sha256-{hex}.att"), att.as_str()),
            ]
        );
        assert!(
            referrers
                .iter()
                .all(|r| r.media_type == OCI_MANIFEST && r.size.is_some_and(|s| s > 0)),
            "{referrers:?}"
        );
        eprintln!(
            "referrers of a new signed and attested image: {} requests without the listing, {} with",
            without.len(),
            with.len()
        );

        // an unchanged check: one HEAD
        let (unchanged, requests, _) = import(&importer, &reg, &from, Some(&v1), &covered).await;
        assert!(unchanged.images[0].as_ref().is_ok_and(|i| i.unchanged));
        assert_eq!(requests.len(), 1, "{requests:#?}");

        // the next new image of the registry: the referrers API is not asked again
        let v2 = push(&reg, repo, "latest", 4006).await;
        cosign::append(&reg, repo, &v2, signed(&v2))
            .await
            .expect("sign");
        let (result, requests, _) = import(&importer, &reg, &from, Some(&v1), &covered).await;
        assert_eq!(result.images[0].as_ref().map(|i| &i.image), Ok(&v2));
        assert!(
            !requests.iter().any(|r| r.contains("/referrers/")),
            "{requests:#?}"
        );
        let heads: Vec<&String> = requests
            .iter()
            .filter(|r| r.starts_with("HEAD ") && r.contains("sha256-"))
            .collect();
        assert_eq!(heads.len(), 2, ".att and .sbom: {requests:#?}");
        let referrers = listed(&result, &v2);
        assert_eq!(referrers.len(), 1, "{referrers:?}");
        assert_eq!(referrers[0].kind, "signature");
    }

    /// `All` lists an image no policy covers; the default (`Covered`) costs it nothing.
    #[tokio::test]
    async fn all_lists_every_new_image_and_covered_only_those_a_policy_covers() {
        let reg = RegistryOptions::plain().start();
        let repo = "plain/app";
        let digest = push(&reg, repo, "latest", 4007).await;
        let att = cosign::attest(&reg, repo, &digest).await.expect("attest");
        let from = reg.image_ref(repo, "latest");
        let none = settings(&reg, None);
        let (_, without, _) = import(&importer(), &reg, &from, None, &none).await;

        let covered = Settings {
            referrers: ReferrerListing::Covered,
            ..none.clone()
        };
        let (result, requests, _) = import(&importer(), &reg, &from, None, &covered).await;
        assert_eq!(requests, without, "not covered: nothing more");
        assert!(
            result.new_images[&digest]
                .metadata
                .annotations
                .as_ref()
                .is_none_or(|a| !a.contains_key(ANNOTATION))
        );

        let all = Settings {
            referrers: ReferrerListing::All,
            ..none
        };
        let (result, requests, _) = import(&importer(), &reg, &from, None, &all).await;
        assert_eq!(requests.len(), without.len() + 4, "{requests:#?}");
        let referrers = listed(&result, &digest);
        assert_eq!(referrers.len(), 1, "{referrers:?}");
        assert_eq!(
            (referrers[0].kind.as_str(), referrers[0].digest.as_str()),
            ("attestation", att.as_str())
        );
    }

    /// A registry with the OCI referrers API (the real one behind a proxy that answers
    /// `/v2/<repo>/referrers/<digest>`): its index is listed for one GET, no cosign tag is
    /// asked, and an empty index lists nothing.
    #[tokio::test]
    async fn a_registry_with_the_referrers_api_is_asked_once_per_new_image() {
        let reg = RegistryOptions::plain().start();
        let repo = "plain/app";
        let v1 = push(&reg, repo, "v1", 4008).await;
        let v2 = push(&reg, repo, "v2", 4009).await;
        let bundle = format!("sha256:{}", "a".repeat(64));
        let sbom = format!("sha256:{}", "b".repeat(64));
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                 "digest": bundle, "size": 1234,
                 "annotations": {"dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1"}},
                {"mediaType": OCI_MANIFEST, "artifactType": "application/spdx+json",
                 "digest": sbom, "size": 567},
            ],
        })
        .to_string();
        let empty =
            serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
                .to_string();
        let switch = FaultSwitch::new();
        let with_referrers = format!("/v2/{repo}/referrers/{v1}");
        switch.inject(move |seen| {
            if !seen.path.contains("/referrers/") {
                return None;
            }
            let body = if seen.path == with_referrers {
                &index
            } else {
                &empty
            };
            Some(Reply::ok(OCI_INDEX, body.clone()))
        });
        let proxy = FaultServer::forward(reg.addr(), switch);
        let settings = listing_all(&proxy);
        let importer = importer();
        let import = |tag: &str| {
            let batch = Batch {
                images: vec![ImageImport::new(
                    format!("{}/{repo}:{tag}", proxy.addr()),
                    Mode::Legacy,
                )],
                repository: None,
            };
            let (importer, settings) = (&importer, &settings);
            async move { run_batch(importer, &batch, settings).await }
        };

        let result = import("v1").await;
        assert_eq!(result.images[0].as_ref().map(|i| &i.image), Ok(&v1));
        let referrers = listed(&result, &v1);
        let shown: Vec<(&str, &str, Option<u64>)> = referrers
            .iter()
            .map(|r| (r.artifact_type.as_str(), r.digest.as_str(), r.size))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "application/vnd.dev.sigstore.bundle.v0.3+json",
                    bundle.as_str(),
                    Some(1234)
                ),
                ("application/spdx+json", sbom.as_str(), Some(567)),
            ]
        );
        let asked = proxy.requests_to(&format!("/v2/{repo}/referrers/{v1}"));
        assert_eq!(asked.len(), 1, "{asked:#?}");
        assert_eq!(asked[0].request.method, "GET");
        assert_eq!(asked[0].request.header("accept"), Some(OCI_INDEX));
        let tags: Vec<String> = proxy
            .http_requests()
            .iter()
            .map(|s| s.request.path.clone())
            .filter(|p| p.contains("sha256-"))
            .collect();
        assert_eq!(tags, Vec::<String>::new(), "no cosign tag asked");

        // the API answered: the next new image asks it again, and an empty index lists nothing
        let result = import("v2").await;
        assert_eq!(result.images[0].as_ref().map(|i| &i.image), Ok(&v2));
        assert_eq!(
            proxy
                .requests_to(&format!("/v2/{repo}/referrers/{v2}"))
                .len(),
            1
        );
        assert!(
            result.new_images[&v2]
                .metadata
                .annotations
                .as_ref()
                .is_none_or(|a| !a.contains_key(ANNOTATION))
        );
    }

    /// Every new image's referrers listed, through `proxy`.
    fn listing_all(proxy: &FaultServer) -> Settings {
        Settings {
            insecure_registries: vec![proxy.addr().to_string()],
            referrers: ReferrerListing::All,
            ..Settings::default()
        }
    }

    /// A referrers API that fails (500s, retried as any request) or answers too slowly for
    /// a request with a time limit: the import stands, without the annotation, and the
    /// registry is not taken for one without the API.
    #[tokio::test]
    async fn a_failing_or_slow_referrers_listing_never_fails_the_import() {
        let reg = RegistryOptions::plain().start();
        let repo = "plain/app";
        let v1 = push(&reg, repo, "v1", 4010).await;
        let v2 = push(&reg, repo, "v2", 4011).await;
        let switch = FaultSwitch::new();
        let slow = format!("/v2/{repo}/referrers/{v2}");
        switch.inject(move |seen| {
            if seen.path == slow {
                return Some(
                    Reply::ok(OCI_INDEX, r#"{"schemaVersion":2,"manifests":[]}"#)
                        .delay(Duration::from_secs(5)),
                );
            }
            seen.path
                .contains("/referrers/")
                .then(|| Reply::new(500).body("broken"))
        });
        let proxy = FaultServer::forward(reg.addr(), switch);
        let settings = listing_all(&proxy);
        let importer = importer();
        let batch = |tag: &str| Batch {
            images: vec![ImageImport::new(
                format!("{}/{repo}:{tag}", proxy.addr()),
                Mode::Legacy,
            )],
            repository: None,
        };
        let unlisted = |result: &BatchResult, digest: &str| {
            result.new_images[digest]
                .metadata
                .annotations
                .as_ref()
                .is_none_or(|a| !a.contains_key(ANNOTATION))
        };

        let result = run_batch(&importer, &batch("v1"), &settings).await;
        assert_eq!(result.images[0].as_ref().map(|i| &i.image), Ok(&v1));
        assert!(unlisted(&result, &v1));
        let asked = proxy.requests_to(&format!("/v2/{repo}/referrers/{v1}"));
        assert_eq!(asked.len(), 3, "a 500 is retried: {asked:#?}");
        assert!(
            !proxy
                .http_requests()
                .iter()
                .any(|s| s.request.path.contains("sha256-")),
            "a 500 is no 404: no cosign tag asked"
        );

        let started = std::time::Instant::now();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        let result = importer
            .import_until(
                &batch("v2"),
                &Keyring::empty(),
                &HashMap::<String, bool>::new(),
                &settings,
                jiff::Timestamp::now(),
                Some(deadline),
            )
            .await;
        assert_eq!(result.images[0].as_ref().map(|i| &i.image), Ok(&v2));
        assert!(unlisted(&result, &v2));
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "answered by the deadline: {:?}",
            started.elapsed()
        );
    }
}
