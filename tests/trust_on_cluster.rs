//! Signature policies at import time (issue 20) with the whole operator against the real
//! apiserver and a real registry, on a cluster of the test's own: ImagePolicies are cluster
//! scoped and would change every other test's imports.
//!
//! What the importer promises (the IO side of the design note in `src/trust/mod.rs`):
//! - an image covered by an `Enforce` policy that fails it does not become the tag's image:
//!   the tag keeps its history and reports `ImportSuccess` False with the core's reason
//!   (`SignatureMissing`, …) and a message naming the policy and the authority;
//! - an image that passes is imported and its Image records the cosign signature
//!   (`CosignSimpleSigningV1`, `Trusted` and `ForImage` True, identity, key ID);
//! - under `Warn` a failing image is imported and a Warning Event `SignatureWarning` on the
//!   stream names the failure;
//! - an image no policy covers is imported as before, with no signature fetched;
//! - the referrers of a covered image (its `.sig` here) are listed in its Image's
//!   `image.imagestream.io/referrers` annotation, which its ImageStreamTag shows;
//! - `imagestream_operator_image_verifications_total{policy,result}` counts the verdicts.
//!
//! Signatures are made by `support::cosign` (what `tests/trust_registry.rs` shows the core
//! verifies through the registry).

mod support;

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use imagestream_operator::api::image::Image;
use imagestream_operator::api::image_stream::{ImageStream, TagEventCondition, TagReference};
use imagestream_operator::api::image_stream_tag::ImageStreamTag;
use imagestream_operator::import::referrers::{self, Referrer};
use imagestream_operator::names;
use imagestream_operator::trigger::TRIGGER_ANNOTATION;
use imagestream_operator::trust::ImagePolicy;
use support::cluster::{TestCluster, events};
use support::cosign::{self, CosignKey};
use support::images::{ImageSpec, TestImage, sha256_digest};
use support::operator::{Running, items};
use support::registry::{RegistryOptions, TestRegistry};

const WAIT: Duration = Duration::from_secs(30);
const POLICY: &str = "signed-apps";
const AUTHORITY: &str = "team-key";

async fn eventually<T, F, Fut>(within: Duration, what: &str, probe: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn push(reg: &TestRegistry, repo: &str, tag: &str, seed: u64) -> String {
    let image: TestImage = ImageSpec::single("amd64", seed).build().into();
    reg.client().push(repo, tag, &image).await.expect("push")
}

fn docker_tag(name: &str, from: &str) -> Value {
    json!({"name": name, "from": {"kind": "DockerImage", "name": from},
        "importPolicy": {"insecure": true}})
}

/// The stream's tag `tag` as its status shows it: (history images, conditions).
fn tag_status(stream: &ImageStream, tag: &str) -> (Vec<String>, Vec<TagEventCondition>) {
    let images = items(stream, tag).iter().map(|e| e.image.clone()).collect();
    let conditions = stream
        .status
        .as_ref()
        .and_then(|s| s.tag(tag))
        .map(|t| t.conditions.clone())
        .unwrap_or_default();
    (images, conditions)
}

fn describe(stream: &ImageStream) -> String {
    format!(
        "spec {} status {}",
        serde_json::to_string(&stream.spec).unwrap_or_default(),
        serde_json::to_string(&stream.status).unwrap_or_default()
    )
}

/// Waits until `check` holds for stream `name`; panics with the stream past [`WAIT`].
async fn wait_stream(
    api: &Api<ImageStream>,
    name: &str,
    what: &str,
    check: impl Fn(&ImageStream) -> bool,
) -> ImageStream {
    let deadline = Instant::now() + WAIT;
    loop {
        let stream = api.get(name).await.expect("get stream");
        if check(&stream) {
            return stream;
        }
        assert!(
            Instant::now() < deadline,
            "not within {WAIT:?}: {what}: {}",
            describe(&stream)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `oc import-image app:<tag>`: the spec tag again with generation 0, which the webhook turns
/// into the stream's new generation. Returns that generation.
async fn reimport(api: &Api<ImageStream>, name: &str, tag: &str, from: &str) -> i64 {
    let mut stream = api.get(name).await.expect("get stream");
    let mut again = docker_tag(tag, from);
    again["generation"] = json!(0);
    let again: TagReference = serde_json::from_value(again).expect("tag");
    for t in stream.spec.tags.iter_mut().filter(|t| t.name == tag) {
        *t = again.clone();
    }
    let updated = api
        .replace(name, &PostParams::default(), &stream)
        .await
        .expect("replace the stream");
    let generation = updated
        .spec
        .tags
        .iter()
        .find(|t| t.name == tag)
        .and_then(|t| t.generation)
        .expect("the webhook assigns the tag a generation");
    assert_eq!(Some(generation), updated.metadata.generation);
    generation
}

/// The ImagePolicy of the scenario: `<registry>/signed/**` must be signed with the key in the
/// Secret `cosign` of `namespace`.
fn policy(reg: &TestRegistry, namespace: &str, enforcement: &str) -> Value {
    json!({
        "apiVersion": "operator.imagestream.io/v1alpha1",
        "kind": "ImagePolicy",
        "metadata": {"name": POLICY},
        "spec": {
            "images": [{"glob": format!("{}/signed/**", reg.addr())}],
            "enforcement": enforcement,
            "authorities": [{
                "name": AUTHORITY,
                "key": {"secretRef": {"namespace": namespace, "name": "cosign", "key": "cosign.pub"}},
            }],
        },
    })
}

/// Stream `name` with one tag, `latest`, from `from`.
async fn create_stream(streams: &Api<ImageStream>, name: &str, from: &str) {
    let stream: ImageStream = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": name},
        "spec": {"tags": [docker_tag("latest", from)]},
    }))
    .expect("stream");
    streams
        .create(&PostParams::default(), &stream)
        .await
        .expect("create the stream");
}

/// `cosign.pub` of `key` in the Secret `cosign` of the operator's namespace (what
/// [`policy`] names).
async fn key_secret(op: &Running, key: &CosignKey) {
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "cosign"},
        "stringData": {"cosign.pub": key.public_pem()},
    }))
    .expect("Secret");
    Api::<Secret>::namespaced(op.admin.clone(), &op.namespace)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the Secret");
}

async fn apply_policy(api: &Api<ImagePolicy>, policy: &Value) -> i64 {
    let applied = api
        .patch(
            POLICY,
            &PatchParams::apply("trust-test").force(),
            &Patch::Apply(policy),
        )
        .await
        .expect("apply the ImagePolicy");
    applied.metadata.generation.expect("generation")
}

/// Waits until the operator reports the policy Ready for `generation`: it has read the key
/// and verifies with this version of the policy from now on.
async fn wait_ready(api: &Api<ImagePolicy>, generation: i64) {
    wait_ready_within(api, generation, WAIT).await;
}

async fn wait_ready_within(api: &Api<ImagePolicy>, generation: i64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let policy = api.get(POLICY).await.expect("get the ImagePolicy");
        let status = policy.status.clone().unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if ready && status.observed_generation == Some(generation) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not within {within:?}: the ImagePolicy Ready for generation {generation}: status {}",
            serde_json::to_string(&policy.status).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn scrape(port: u16) -> String {
    let response = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("GET /metrics");
    assert_eq!(response.status().as_u16(), 200);
    response.text().await.expect("body")
}

/// The value of `imagestream_operator_image_verifications_total{policy,result}`, 0 when the
/// scrape has no such sample.
/// Verifications counted for `policy` with `reason` (`""`: passed).
fn verifications(text: &str, policy: &str, reason: &str) -> f64 {
    let result = if reason.is_empty() {
        "passed"
    } else {
        "failed"
    };
    text.lines()
        .filter(|l| l.starts_with("imagestream_operator_image_verifications_total{"))
        .filter(|l| {
            l.contains(&format!("policy=\"{policy}\""))
                && l.contains(&format!("result=\"{result}\""))
                && l.contains(&format!("reason=\"{reason}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn an_enforced_policy_keeps_unsigned_images_out_and_a_warning_one_lets_them_in() {
    let reg = RegistryOptions::plain().start();
    let key = CosignKey::generate();
    let v1 = push(&reg, "signed/app", "latest", 3001).await;
    let signature = cosign::sign(&reg, "signed/app", &v1, &key)
        .await
        .expect("sign v1");
    let outside = push(&reg, "other/app", "latest", 3002).await;

    let own = TestCluster::start().await;
    let op = Running::start_following_config(&own, "trust").await;
    let ns = op.namespace.clone();
    let streams = op.streams();
    let images = Api::<Image>::all(op.admin.clone());
    let policies = Api::<ImagePolicy>::all(op.admin.clone());

    // cosign.pub in a Secret, and the policy naming it
    key_secret(&op, &key).await;
    let g1 = apply_policy(&policies, &policy(&reg, &ns, "Enforce")).await;
    wait_ready(&policies, g1).await;

    // 1. a signed image is imported and its Image records the signature
    let signed_from = reg.image_ref("signed/app", "latest");
    let outside_from = reg.image_ref("other/app", "latest");
    let stream: ImageStream = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": "app"},
        "spec": {"tags": [docker_tag("latest", &signed_from), docker_tag("other", &outside_from)]},
    }))
    .expect("stream");
    streams
        .create(&PostParams::default(), &stream)
        .await
        .expect("create the stream");
    let imported = wait_stream(&streams, "app", "both tags imported", |s| {
        tag_status(s, "latest").0.first() == Some(&v1)
            && tag_status(s, "other").0.first() == Some(&outside)
    })
    .await;
    assert!(
        tag_status(&imported, "latest").1.is_empty(),
        "{}",
        describe(&imported)
    );
    // 4. (a tag outside the policy's globs) imports unsigned, with no condition
    assert!(
        tag_status(&imported, "other").1.is_empty(),
        "{}",
        describe(&imported)
    );

    let image = eventually(WAIT, "the Image of v1 with its signature", || async {
        let image = images.get_opt(&names::image(&v1)).await.ok()??;
        (!image.spec.signatures.is_empty()).then_some(image)
    })
    .await;
    let recorded: Vec<_> = image
        .spec
        .signatures
        .iter()
        .filter(|s| s.spec.type_ == "CosignSimpleSigningV1")
        .collect();
    assert_eq!(recorded.len(), 1, "{:?}", image.spec.signatures);
    let recorded = &recorded[0].spec;
    assert_eq!(recorded.content.0, signature.signature);
    assert_eq!(
        recorded.image_identity,
        cosign::docker_reference(&reg, "signed/app")
    );
    for condition in ["Trusted", "ForImage"] {
        assert!(
            recorded
                .conditions
                .iter()
                .any(|c| c.type_ == condition && c.status == "True"),
            "{condition} True: {:?}",
            recorded.conditions
        );
    }
    assert_eq!(
        recorded
            .issued_to
            .as_ref()
            .map(|s| s.public_key_id.as_str()),
        Some(key.key_id().as_str())
    );
    let unsigned_image = images
        .get(&names::image(&outside))
        .await
        .expect("the Image of other/app");
    assert!(
        unsigned_image.spec.signatures.is_empty(),
        "no signature is looked for outside the globs"
    );
    // the referrers of a covered image are listed on it, and show in its ImageStreamTag
    // (`kubectl get istag -o yaml`); outside the globs nothing is listed (the default Covered)
    let sig_tag = cosign::signature_tag(&v1);
    let sig = reg
        .client()
        .get_manifest("signed/app", &sig_tag)
        .await
        .expect("the .sig manifest");
    let istag = Api::<ImageStreamTag>::namespaced(op.admin.clone(), &ns)
        .get("app.latest")
        .await
        .expect("the ImageStreamTag app.latest");
    let embedded = istag.spec.image.expect("the tag's image");
    let listed: Vec<Referrer> = serde_json::from_str(
        embedded
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(referrers::ANNOTATION))
            .unwrap_or_else(|| panic!("no referrers on {:?}", embedded.metadata)),
    )
    .expect("a JSON array");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (listed[0].kind.as_str(), listed[0].tag.as_str()),
        ("signature", sig_tag.as_str())
    );
    assert_eq!(listed[0].digest, sha256_digest(&sig.body));
    assert!(
        unsigned_image
            .metadata
            .annotations
            .as_ref()
            .is_none_or(|a| !a.contains_key(referrers::ANNOTATION)),
        "{:?}",
        unsigned_image.metadata
    );
    let text = scrape(op.probes_port).await;
    assert!(
        verifications(&text, POLICY, "") >= 1.0,
        "a Passed verification: {text}"
    );

    // 2. an unsigned image pushed to the tag is not imported under Enforce
    let v2 = push(&reg, "signed/app", "latest", 3003).await;
    let g = reimport(&streams, "app", "latest", &signed_from).await;
    let refused = wait_stream(
        &streams,
        "app",
        "latest refused with SignatureMissing",
        |s| {
            tag_status(s, "latest").1.iter().any(|c| {
                c.type_ == "ImportSuccess"
                    && c.status == "False"
                    && c.reason == "SignatureMissing"
                    && c.generation == g
            })
        },
    )
    .await;
    let (history, conditions) = tag_status(&refused, "latest");
    assert_eq!(history.first(), Some(&v1), "the tag keeps v1");
    assert!(!history.contains(&v2), "v2 is never the tag's image");
    let condition = conditions
        .iter()
        .find(|c| c.type_ == "ImportSuccess")
        .expect("ImportSuccess");
    assert!(
        condition.message.contains(POLICY) && condition.message.contains(AUTHORITY),
        "the message names the policy and the authority: {}",
        condition.message
    );
    assert_eq!(
        tag_status(&refused, "other").0.first(),
        Some(&outside),
        "the other tag is untouched"
    );
    let text = scrape(op.probes_port).await;
    assert!(
        verifications(&text, POLICY, "SignatureMissing") >= 1.0,
        "a SignatureMissing verification: {text}"
    );

    // 3. the policy changes to Warn: the refused tag is verified again at once (no import
    //    asked for), the same image is imported, with a Warning Event on the stream
    let g2 = apply_policy(&policies, &policy(&reg, &ns, "Warn")).await;
    assert!(g2 > g1);
    wait_ready(&policies, g2).await;
    let warned = wait_stream(&streams, "app", "latest moved to v2 under Warn", |s| {
        tag_status(s, "latest").0.first() == Some(&v2)
    })
    .await;
    let (history, conditions) = tag_status(&warned, "latest");
    assert_eq!(history, [v2.clone(), v1.clone()], "v2 on top of v1");
    assert!(
        !conditions
            .iter()
            .any(|c| c.type_ == "ImportSuccess" && c.status == "False"),
        "a warned import succeeded: {conditions:?}"
    );
    let warning = eventually(WAIT, "a SignatureWarning Event on the stream", || async {
        events(&op.admin, &ns, "ImageStream", "app", "SignatureWarning")
            .await
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    let note = warning.note.clone().unwrap_or_default();
    assert!(
        note.contains("SignatureMissing") && note.contains(POLICY),
        "the note names the failure and the policy: {note}"
    );
    let image = images
        .get(&names::image(&v2))
        .await
        .expect("the Image of v2");
    assert!(
        image.spec.signatures.is_empty(),
        "an unsigned image has no signature to record"
    );

    // 4. back to Enforce: the tags the policy covers are verified again, and the current
    //    image v2 fails. The tag keeps it (workloads run it) and says so; `other`, outside
    //    the globs, is not touched
    let g3 = apply_policy(&policies, &policy(&reg, &ns, "Enforce")).await;
    wait_ready(&policies, g3).await;
    let flagged = wait_stream(&streams, "app", "the current v2 refused", |s| {
        tag_status(s, "latest").1.iter().any(|c| {
            c.type_ == "ImportSuccess" && c.status == "False" && c.reason == "SignatureMissing"
        })
    })
    .await;
    assert_eq!(
        tag_status(&flagged, "latest").0,
        [v2.clone(), v1.clone()],
        "the history is kept"
    );
    assert!(
        tag_status(&flagged, "other").1.is_empty(),
        "{}",
        describe(&flagged)
    );

    // 5. v2 is signed and the policy changes again (AllOf, same authority): verified again,
    //    v2 passes and the condition goes
    cosign::sign(&reg, "signed/app", &v2, &key)
        .await
        .expect("sign v2");
    let mut all_of = policy(&reg, &ns, "Enforce");
    all_of["spec"]["requirement"] = json!("AllOf");
    let g4 = apply_policy(&policies, &all_of).await;
    wait_ready(&policies, g4).await;
    let trusted = wait_stream(&streams, "app", "the current v2 trusted", |s| {
        tag_status(s, "latest").1.is_empty()
    })
    .await;
    assert_eq!(tag_status(&trusted, "latest").0, [v2.clone(), v1.clone()]);

    // 6. the key is rotated in its Secret (the policy itself unchanged): the operator reads
    //    it again (every second here, every minute by default) and v2, signed by the old
    //    key, fails under the new one
    let rotated = CosignKey::generate();
    Api::<Secret>::namespaced(op.admin.clone(), &ns)
        .patch(
            "cosign",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"cosign.pub": rotated.public_pem()}})),
        )
        .await
        .expect("rotate the key");
    let rotated_out = wait_stream(&streams, "app", "v2 refused under the rotated key", |s| {
        tag_status(s, "latest")
            .1
            .iter()
            .any(|c| c.status == "False" && c.reason == "SignatureInvalid")
    })
    .await;
    assert_eq!(
        tag_status(&rotated_out, "latest").0,
        [v2.clone(), v1.clone()]
    );

    op.finish().await;
}

/// The container images of Deployment `name`.
async fn deployment_images(api: &Api<Deployment>, name: &str) -> Vec<String> {
    let d = api.get(name).await.expect("the Deployment");
    d.spec
        .and_then(|s| s.template.spec)
        .map(|s| s.containers.into_iter().filter_map(|c| c.image).collect())
        .unwrap_or_default()
}

/// With an image change trigger (issue 15) on the tag, a Deployment follows only images the
/// policy trusts: the unsigned image an Enforce policy keeps out of the tag never reaches it.
#[tokio::test]
async fn a_deployment_follows_only_trusted_images() {
    let reg = RegistryOptions::plain().start();
    let key = CosignKey::generate();
    let v1 = push(&reg, "signed/web", "latest", 3101).await;
    cosign::sign(&reg, "signed/web", &v1, &key)
        .await
        .expect("sign v1");

    let own = TestCluster::start().await;
    let op = Running::start_following_config(&own, "trust-trigger").await;
    let ns = op.namespace.clone();
    let streams = op.streams();
    let policies = Api::<ImagePolicy>::all(op.admin.clone());
    key_secret(&op, &key).await;
    let g1 = apply_policy(&policies, &policy(&reg, &ns, "Enforce")).await;
    wait_ready(&policies, g1).await;

    let from = reg.image_ref("signed/web", "latest");
    create_stream(&streams, "web", &from).await;
    let imported = wait_stream(&streams, "web", "latest at v1", |s| {
        tag_status(s, "latest").0.first() == Some(&v1)
    })
    .await;
    let v1_ref = items(&imported, "latest")[0].docker_image_reference.clone();

    let triggers = json!([{
        "from": {"kind": "ImageStreamTag", "name": "web:latest"},
        "fieldPath": "spec.template.spec.containers[?(@.name==\"web\")].image",
    }]);
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "annotations": {TRIGGER_ANNOTATION: triggers.to_string()}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "placeholder"}]}},
        },
    }))
    .expect("Deployment");
    let deployments = Api::<Deployment>::namespaced(op.admin.clone(), &ns);
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create the Deployment");
    eventually(WAIT, "the Deployment at the signed v1", || async {
        (deployment_images(&deployments, "web").await == [v1_ref.clone()]).then_some(())
    })
    .await;

    // an unsigned image on the tag: refused, and the Deployment stays on v1
    let v2 = push(&reg, "signed/web", "latest", 3102).await;
    let g = reimport(&streams, "web", "latest", &from).await;
    wait_stream(&streams, "web", "latest refused", |s| {
        tag_status(s, "latest")
            .1
            .iter()
            .any(|c| c.reason == "SignatureMissing" && c.generation == g)
    })
    .await;
    // the trigger controller acts within milliseconds of a tag's move; give it two seconds
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        deployment_images(&deployments, "web").await,
        std::slice::from_ref(&v1_ref),
        "the Deployment does not follow the untrusted {v2}"
    );

    // signed, the same image is let in and the Deployment follows it
    cosign::sign(&reg, "signed/web", &v2, &key)
        .await
        .expect("sign v2");
    reimport(&streams, "web", "latest", &from).await;
    let moved = wait_stream(&streams, "web", "latest at the signed v2", |s| {
        tag_status(s, "latest").0.first() == Some(&v2)
    })
    .await;
    let v2_ref = items(&moved, "latest")[0].docker_image_reference.clone();
    eventually(WAIT, "the Deployment at the signed v2", || async {
        (deployment_images(&deployments, "web").await == [v2_ref.clone()]).then_some(())
    })
    .await;
    op.finish().await;
}

/// An operator newer than its CRDs (`helm upgrade` leaves CRDs as they were): without the
/// ImagePolicy CRD the controllers start and import (they would otherwise wait for the
/// policies, give up after 60 s and restart forever), and once the CRD is installed its
/// policies are read and applied without a restart.
#[tokio::test]
async fn without_the_policy_crd_imports_go_on_and_a_late_crd_is_picked_up() {
    let reg = RegistryOptions::plain().start();
    let v1 = push(&reg, "signed/late", "latest", 3201).await;

    let own = TestCluster::start().await;
    let admin = own.client().await;
    support::crds::install(&admin).await;
    let crds = Api::<CustomResourceDefinition>::all(admin.clone());
    let crd = support::crds::crd_for_kind("ImagePolicy");
    let crd_name = crd.metadata.name.clone().expect("CRD name");
    crds.delete(&crd_name, &DeleteParams::default())
        .await
        .expect("delete the ImagePolicy CRD");
    let policies = Api::<ImagePolicy>::all(admin.clone());
    eventually(WAIT, "ImagePolicies no longer served", || async {
        let listed = policies.list(&ListParams::default()).await;
        matches!(listed, Err(kube::Error::Api(s)) if s.code == 404).then_some(())
    })
    .await;

    let op = Running::start_following_config(&own, "trust-no-crd").await;
    let streams = op.streams();
    let from = reg.image_ref("signed/late", "latest");
    create_stream(&streams, "late", &from).await;
    // within WAIT (30 s), half the time the controllers would wait for their caches
    wait_stream(&streams, "late", "latest imported without the CRD", |s| {
        tag_status(s, "latest").0.first() == Some(&v1)
    })
    .await;

    // the CRD comes: its watch lists it once served (within its backoff, at most 30 s)
    crds.patch(
        &crd_name,
        &PatchParams::apply("trust-test").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("install the ImagePolicy CRD again");
    support::crds::wait_established(&crds, &crd_name, WAIT).await;
    let key = CosignKey::generate();
    key_secret(&op, &key).await;
    let mut enforce = policy(&reg, &op.namespace, "Enforce");
    enforce["spec"]["images"] = json!([{"glob": format!("{}/signed/late", reg.addr())}]);
    let generation = eventually(WAIT, "the ImagePolicy created", || async {
        policies
            .patch(
                POLICY,
                &PatchParams::apply("trust-test").force(),
                &Patch::Apply(&enforce),
            )
            .await
            .ok()?
            .metadata
            .generation
    })
    .await;
    // the CRD's watch lists it within its backoff
    wait_ready_within(&policies, generation, 3 * WAIT).await;
    // and it is in force: the unsigned current image is verified again and refused
    wait_stream(&streams, "late", "the unsigned v1 refused", |s| {
        tag_status(s, "latest")
            .1
            .iter()
            .any(|c| c.reason == "SignatureMissing")
    })
    .await;
    op.finish().await;
}
