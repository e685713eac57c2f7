//! The ImageStreamMapping controller end to end: the real kube-apiserver and the controllers
//! running in this process under the operator's ServiceAccount bound to `deploy/rbac.yaml`.
//! A mapping is applied and removed; one to a missing stream waits for it (Warning Event)
//! until the request time to live; an invalid one is reported and removed.

mod support;

use std::time::Duration;

use kube::api::{Api, PostParams};
use serde_json::json;

use imagestream_operator::api::image::Image;
use imagestream_operator::api::image_stream::ImageStream;
use imagestream_operator::api::image_stream_mapping::ImageStreamMapping;
use imagestream_operator::controller::Settings;
use imagestream_operator::names;
use imagestream_operator::stream::sync::Repositories;
use support::cluster::events;
use support::operator::{Running, create_stream, items, start as operator};

const D1: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const D2: &str = "sha256:293aa25bf219f3e47472281b7e68c09bb6f315c2adf7f86a7302b85bdaa63db3";
const REGISTRY: &str = "image-registry.test:5000";

fn with_registry() -> Settings {
    Settings {
        repositories: Repositories {
            internal: Some(REGISTRY.into()),
            external: None,
        },
        ..Settings::default()
    }
}

async fn create_mapping(
    api: &Api<ImageStreamMapping>,
    stream: &str,
    tag: &str,
    image: &str,
    reference: &str,
) {
    let mapping: ImageStreamMapping = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1",
        "kind": "ImageStreamMapping",
        "metadata": { "name": stream },
        "tag": tag,
        "image": {
            "metadata": { "name": image, "labels": { "pushed-by": "test" } },
            "dockerImageReference": reference,
            "dockerImageManifestMediaType": "application/vnd.oci.image.manifest.v1+json",
        },
    }))
    .expect("mapping");
    api.create(&PostParams::default(), &mapping)
        .await
        .expect("create mapping");
}

/// Polls `probe` every 100 ms until it returns something (or panics after `secs`).
async fn eventually<T, F: Future<Output = Option<T>>>(
    secs: u64,
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {secs}s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn gone(api: &Api<ImageStreamMapping>, name: &str) -> Option<()> {
    match api.get_opt(name).await.expect("get mapping") {
        Some(_) => None,
        None => Some(()),
    }
}

/// A mapping applied (semantics 7.1, 10.5 cases 74 and 77): the Image created with the
/// reference defaulted from the internal registry, the tag's items[0] pointing at it with
/// E = the stream's generation, the tracking tag following, an unrelated tag untouched, and
/// the mapping removed.
#[tokio::test]
async fn a_mapping_applied() {
    let (admin, ns, _operator) = operator("ism-applied", with_registry()).await;
    let streams: Api<ImageStream> = Api::namespaced(admin.clone(), &ns);
    let mappings: Api<ImageStreamMapping> = Api::namespaced(admin.clone(), &ns);
    create_stream(
        &streams,
        "app",
        json!([
            { "name": "tracking", "from": { "kind": "ImageStreamTag", "name": "v1" } },
            { "name": "other", "from": { "kind": "ImageStreamTag", "name": "v2" } },
        ]),
    )
    .await;

    create_mapping(&mappings, "app", "v1", D1, "").await;
    eventually(30, "the mapping removed", || gone(&mappings, "app")).await;
    let stream = streams.get("app").await.expect("get stream");
    let expected = format!("{REGISTRY}/{ns}/app@{D1}");
    let event = &items(&stream, "v1")[0];
    assert_eq!(
        (event.image.as_str(), event.docker_image_reference.as_str()),
        (D1, expected.as_str())
    );
    assert_eq!(Some(event.generation), stream.metadata.generation);
    assert_eq!(items(&stream, "tracking")[0].image, D1, "tracking tag");
    assert!(items(&stream, "other").is_empty(), "{:?}", stream.status);
    assert_eq!(
        stream.status.as_ref().unwrap().docker_image_repository,
        format!("{REGISTRY}/{ns}/app")
    );

    let image = Api::<Image>::all(admin.clone())
        .get(&names::image(D1))
        .await
        .expect("the Image exists");
    assert_eq!(image.spec.docker_image_reference, expected);
    assert_eq!(
        image.metadata.annotations.as_ref().unwrap()[names::ANNOTATION_IMAGE],
        D1
    );
    assert_eq!(image.metadata.labels.as_ref().unwrap()["pushed-by"], "test");

    // a second mapping to a new image: a new history entry, the follower moves too
    create_mapping(
        &mappings,
        "app",
        "v1",
        D2,
        &format!("{REGISTRY}/{ns}/app@{D2}"),
    )
    .await;
    eventually(30, "the second mapping removed", || gone(&mappings, "app")).await;
    let stream = streams.get("app").await.expect("get stream");
    let history: Vec<&str> = items(&stream, "v1")
        .iter()
        .map(|e| e.image.as_str())
        .collect();
    assert_eq!(history, [D2, D1]);
    assert_eq!(items(&stream, "tracking")[0].image, D2);
    let mapped = events(&admin, &ns, "ImageStream", "app", "Mapped").await;
    assert!(!mapped.is_empty(), "a Normal Event on the stream");
}

/// A mapping to a missing stream (10.5 case 73): a Warning Event on the mapping names the
/// stream; the mapping waits and is applied once the stream is created.
#[tokio::test]
async fn a_mapping_waits_for_its_stream() {
    let (admin, ns, _operator) = operator("ism-waits", with_registry()).await;
    let streams: Api<ImageStream> = Api::namespaced(admin.clone(), &ns);
    let mappings: Api<ImageStreamMapping> = Api::namespaced(admin.clone(), &ns);

    create_mapping(&mappings, "later", "v1", D1, "").await;
    let warning = eventually(30, "a NotFound Event", || async {
        events(&admin, &ns, "ImageStreamMapping", "later", "NotFound")
            .await
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    assert_eq!(
        warning.note.as_deref(),
        Some(r#"imagestreams.image.openshift.io "later" not found"#)
    );
    let related = warning.related.expect("the stream as related object");
    assert_eq!(
        (related.kind.as_deref(), related.name.as_deref()),
        (Some("ImageStream"), Some("later"))
    );
    assert!(
        mappings.get_opt("later").await.unwrap().is_some(),
        "kept while the stream is missing"
    );

    create_stream(&streams, "later", json!([])).await;
    eventually(30, "the mapping applied and removed", || {
        gone(&mappings, "later")
    })
    .await;
    let stream = streams.get("later").await.expect("get stream");
    assert_eq!(items(&stream, "v1")[0].image, D1);
}

/// A mapping whose stream never appears is removed after the request time to live, with an
/// `Expired` Warning Event; an invalid mapping is reported and removed at once, creating
/// nothing.
#[tokio::test]
async fn expired_and_invalid_mappings_are_removed() {
    let settings = Settings {
        request_time_to_live: Duration::from_secs(4),
        ..with_registry()
    };
    let (admin, ns, _operator) = operator("ism-removed", settings).await;
    let streams: Api<ImageStream> = Api::namespaced(admin.clone(), &ns);
    let mappings: Api<ImageStreamMapping> = Api::namespaced(admin.clone(), &ns);

    create_mapping(&mappings, "never", "v1", D1, "").await;
    create_stream(&streams, "app", json!([])).await;
    let invalid = format!("sha256:{}", "a".repeat(64));
    create_mapping(
        &mappings,
        "app",
        "v1",
        &invalid,
        "registry/extra/openshift//ruby",
    )
    .await;

    eventually(30, "the invalid mapping removed", || gone(&mappings, "app")).await;
    let reported = events(&admin, &ns, "ImageStreamMapping", "app", "Invalid").await;
    let note = reported[0].note.clone().unwrap_or_default();
    assert!(
        note.starts_with(r#"ImageStreamMapping.image.openshift.io "app" is invalid: image.dockerImageReference: Invalid value: "registry/extra/openshift//ruby""#),
        "{note}"
    );
    assert!(
        Api::<Image>::all(admin.clone())
            .get_opt(&names::image(&invalid))
            .await
            .unwrap()
            .is_none(),
        "no Image for an invalid mapping"
    );
    assert!(items(&streams.get("app").await.unwrap(), "v1").is_empty());

    eventually(30, "the waiting mapping expired", || {
        gone(&mappings, "never")
    })
    .await;
    let expired = events(&admin, &ns, "ImageStreamMapping", "never", "Expired").await;
    let note = expired[0].note.clone().unwrap_or_default();
    assert_eq!(
        note,
        r#"removed after 4s without being applied: imagestreams.image.openshift.io "never" not found"#
    );
}

/// Semantics 7.8: under a LimitRange of `openshift.io/images` = 1, a mapping that would give
/// the stream a second image is refused (a `LimitExceeded` Warning Event, the mapping removed,
/// the stream unchanged); the same image again is within the limit.
#[tokio::test]
async fn a_mapping_past_the_image_limit_is_refused() {
    let (admin, ns, _operator) = operator("ism-limits", with_registry()).await;
    support::cluster::limit_image_streams(&admin, &ns, "openshift.io/images", "1").await;
    let streams: Api<ImageStream> = Api::namespaced(admin.clone(), &ns);
    let mappings: Api<ImageStreamMapping> = Api::namespaced(admin.clone(), &ns);
    create_stream(&streams, "app", json!([])).await;

    create_mapping(&mappings, "app", "v1", D1, "").await;
    eventually(30, "the first mapping applied", || gone(&mappings, "app")).await;
    assert_eq!(items(&streams.get("app").await.unwrap(), "v1").len(), 1);

    create_mapping(&mappings, "app", "v2", D2, "").await;
    eventually(30, "the second mapping removed", || gone(&mappings, "app")).await;
    let refused = events(&admin, &ns, "ImageStreamMapping", "app", "LimitExceeded").await;
    let note = refused[0].note.clone().unwrap_or_default();
    assert_eq!(
        note,
        "requested usage of openshift.io/images exceeds the maximum limit per openshift.io/ImageStream (2 > 1)"
    );
    let stream = streams.get("app").await.unwrap();
    assert!(items(&stream, "v2").is_empty(), "nothing written");

    create_mapping(&mappings, "app", "v2", D1, "").await;
    eventually(30, "the same image mapped again", || gone(&mappings, "app")).await;
    assert_eq!(items(&streams.get("app").await.unwrap(), "v2")[0].image, D1);
}

/// Issue 16: mappings for two tags of one stream waiting at the same time (two pushes before
/// the stream exists, or while the operator is busy) are both accepted and both applied. A
/// mapping is named after its stream; the operator's webhook stores each under a name of its
/// own, where the second create used to be refused with AlreadyExists while the first waited.
#[tokio::test]
async fn mappings_of_two_tags_at_once_both_apply() {
    let op = Running::start("ism-two").await;
    let ns = op.namespace.clone();
    let streams = op.streams();
    let mappings: Api<ImageStreamMapping> = Api::namespaced(op.admin.clone(), &ns);
    create_mapping(
        &mappings,
        "app",
        "v1",
        D1,
        &format!("{REGISTRY}/{ns}/app@{D1}"),
    )
    .await;
    create_mapping(
        &mappings,
        "app",
        "v2",
        D2,
        &format!("{REGISTRY}/{ns}/app@{D2}"),
    )
    .await;
    let waiting = mappings.list(&Default::default()).await.expect("list");
    assert_eq!(waiting.items.len(), 2, "both wait for the stream");
    create_stream(&streams, "app", json!([])).await;
    let stream = eventually(30, "both tags mapped", || {
        let streams = streams.clone();
        async move {
            let s = streams.get("app").await.expect("get stream");
            (!items(&s, "v1").is_empty() && !items(&s, "v2").is_empty()).then_some(s)
        }
    })
    .await;
    assert_eq!(items(&stream, "v1")[0].image, D1);
    assert_eq!(items(&stream, "v2")[0].image, D2);
    eventually(30, "the mappings removed", || {
        let mappings = mappings.clone();
        async move {
            let left = mappings.list(&Default::default()).await.expect("list");
            left.items.is_empty().then_some(())
        }
    })
    .await;
    op.finish().await;
}
