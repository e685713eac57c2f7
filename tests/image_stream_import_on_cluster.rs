//! The ImageStreamImport controller end to end: the real kube-apiserver, the real registry,
//! and the controllers running in this process under the operator's ServiceAccount bound to
//! `deploy/rbac.yaml`. A preview changes nothing; an applied import creates the stream, its
//! Images and history, and the imagestream controller leaves it alone afterwards; a
//! repository import honours the bulk limit; failures are per-image statuses and tag
//! conditions; requests are removed after their time to live.

mod support;

use std::time::Duration;

use kube::api::{Api, PostParams};
use serde_json::json;

use imagestream_operator::api::image::Image;
use imagestream_operator::api::image_stream::ImageStream;
use imagestream_operator::api::image_stream_import::{ImageStreamImport, ImageStreamImportStatus};
use imagestream_operator::controller::Settings;
use imagestream_operator::names;
use support::images::{ImageSpec, TestImage};
use support::operator::{items, start as operator};
use support::registry::{RegistryOptions, TestRegistry, summary};

async fn push(reg: &TestRegistry, repo: &str, tag: &str, seed: u64) -> String {
    let image: TestImage = ImageSpec::single("amd64", seed).build().into();
    reg.client().push(repo, tag, &image).await.expect("push")
}

async fn create_request(api: &Api<ImageStreamImport>, name: &str, spec: serde_json::Value) {
    let isi: ImageStreamImport = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1",
        "kind": "ImageStreamImport",
        "metadata": { "name": name },
        "spec": spec,
    }))
    .expect("request");
    api.create(&PostParams::default(), &isi)
        .await
        .expect("create request");
}

/// The request's status once the operator wrote it.
async fn answered(api: &Api<ImageStreamImport>, name: &str) -> ImageStreamImportStatus {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = api.get(name).await.expect("get request").status {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no status within 30s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn image(from: &str, to: Option<&str>) -> serde_json::Value {
    let mut entry = json!({
        "from": { "kind": "DockerImage", "name": from },
        "importPolicy": { "insecure": true },
    });
    if let Some(to) = to {
        entry["to"] = json!({ "name": to });
    }
    entry
}

/// A preview (`import: false`) answers with the image and changes nothing: no stream, no
/// Image object.
#[tokio::test]
async fn preview_changes_nothing() {
    let reg = RegistryOptions::plain().start();
    let digest = push(&reg, "app", "v1", 801).await;
    let (admin, ns, _operator) = operator("isi-preview", Settings::default()).await;
    let requests: Api<ImageStreamImport> = Api::namespaced(admin.clone(), &ns);

    let spec = json!({
        "import": false,
        "images": [image(&reg.image_ref("app", "v1"), Some("v1")), image(&reg.image_ref("app", "nope"), None)],
    });
    create_request(&requests, "app", spec).await;
    let status = answered(&requests, "app").await;
    let found = &status.images[0];
    assert_eq!(found.status.status, "Success");
    assert_eq!(found.tag, "v1");
    let shown = found.image.as_ref().expect("the image");
    assert_eq!(
        shown.metadata.name.as_deref(),
        Some(digest.as_str()),
        "named as upstream names Images"
    );
    assert_eq!(
        shown.spec.docker_image_reference,
        format!("{}/app@{digest}", reg.addr())
    );
    let missing = &status.images[1];
    assert_eq!(
        (
            missing.status.status.as_str(),
            missing.status.reason.as_str(),
            missing.status.code
        ),
        ("Failure", "NotFound", 404)
    );
    assert!(status.import.is_none());

    let streams: Api<ImageStream> = Api::namespaced(admin.clone(), &ns);
    assert!(streams.get_opt("app").await.unwrap().is_none(), "no stream");
    assert!(
        Api::<Image>::all(admin.clone())
            .get_opt(&names::image(&digest))
            .await
            .unwrap()
            .is_none(),
        "no Image"
    );
}

/// An applied import (`import: true`) creates the stream with a spec tag for `to`, one
/// history entry with E = S, the Image, and `status.import`; the imagestream controller does
/// not import the tag again; a failing image records Failure and a condition on its tag.
#[tokio::test]
async fn apply_creates_the_stream_and_history() {
    let reg = RegistryOptions::plain().start();
    let digest = push(&reg, "app", "v1", 811).await;
    let (admin, ns, _operator) = operator("isi-apply", Settings::default()).await;
    let requests: Api<ImageStreamImport> = Api::namespaced(admin.clone(), &ns);
    let streams: Api<ImageStream> = Api::namespaced(admin.clone(), &ns);

    let mark = reg.mark();
    let spec = json!({
        "import": true,
        "images": [
            image(&reg.image_ref("app", "v1"), Some("v1")),
            image(&reg.image_ref("app", "gone"), Some("gone")),
        ],
    });
    create_request(&requests, "app", spec).await;
    let status = answered(&requests, "app").await;
    assert_eq!(status.images[0].status.status, "Success");
    assert_eq!(status.images[1].status.reason, "NotFound");
    let imported = status.import.expect("status.import");
    assert_eq!(items(&imported, "v1").len(), 1);

    let stream = streams.get("app").await.expect("the stream was created");
    let v1 = stream.spec.tag("v1").expect("spec tag v1");
    assert_eq!(
        v1.from.as_ref().unwrap().name,
        reg.image_ref("app", "v1"),
        "from as written"
    );
    let history = items(&stream, "v1");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].image, digest);
    assert_eq!(Some(history[0].generation), v1.generation, "E = S");
    let gone = stream.status.as_ref().unwrap().tag("gone").expect("gone");
    let condition = &gone.conditions[0];
    assert_eq!(
        (
            condition.type_.as_str(),
            condition.status.as_str(),
            condition.reason.as_str()
        ),
        ("ImportSuccess", "False", "NotFound")
    );
    assert_eq!(
        Some(condition.generation),
        stream.spec.tag("gone").and_then(|t| t.generation),
        "C = S"
    );
    assert!(
        stream.spec.tag("gone").is_some(),
        "a failed tag gets its spec tag"
    );
    Api::<Image>::all(admin.clone())
        .get(&names::image(&digest))
        .await
        .expect("the Image exists");

    // settled: the imagestream controller imports nothing more and writes nothing
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rv = streams.get("app").await.unwrap().metadata.resource_version;
    let manifest_gets = |requests: &[String]| {
        requests
            .iter()
            .filter(|r| r.starts_with("GET /v2/app/manifests/v1"))
            .count()
    };
    let before = summary(&reg.requests_since_async(mark).await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = summary(&reg.requests_since_async(mark).await);
    assert_eq!(
        streams.get("app").await.unwrap().metadata.resource_version,
        rv,
        "no further writes"
    );
    assert_eq!(manifest_gets(&after), manifest_gets(&before));
    assert_eq!(manifest_gets(&after), 1, "{after:#?}");
    assert_eq!(items(&streams.get("app").await.unwrap(), "v1").len(), 1);
}

/// A repository import applies the first `maxImagesBulkImportedPerRepository` tags in
/// upstream's order and lists the rest as `additionalTags`; the request is removed after its
/// time to live.
#[tokio::test]
async fn repository_import_and_expiry() {
    let reg = RegistryOptions::plain().start();
    for (i, tag) in ["latest", "1.0", "1.1"].iter().enumerate() {
        push(&reg, "many", tag, 821 + i as u64).await;
    }
    let mut settings = Settings {
        request_time_to_live: Duration::from_secs(8),
        ..Settings::default()
    };
    settings.import.bulk_import_limit = Some(2);
    let (admin, ns, _operator) = operator("isi-repository", settings).await;
    let requests: Api<ImageStreamImport> = Api::namespaced(admin.clone(), &ns);
    let streams: Api<ImageStream> = Api::namespaced(admin.clone(), &ns);

    let spec = json!({
        "import": true,
        "repository": {
            "from": { "kind": "DockerImage", "name": format!("{}/many", reg.addr()) },
            "importPolicy": { "insecure": true },
        },
    });
    create_request(&requests, "many", spec).await;
    let status = answered(&requests, "many").await;
    let repository = status.repository.expect("status.repository");
    assert_eq!(repository.status.status, "Success");
    let tags: Vec<&str> = repository.images.iter().map(|i| i.tag.as_str()).collect();
    assert_eq!(
        tags,
        ["latest", "1.1"],
        "latest first, then newest versions"
    );
    assert_eq!(repository.additional_tags, ["1.0"]);

    let stream = streams.get("many").await.expect("stream");
    let names: Vec<&str> = stream.spec.tags.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["1.1", "latest"]);
    assert_eq!(
        stream.spec.tag("1.1").unwrap().from.as_ref().unwrap().name,
        format!("{}/many:1.1", reg.addr())
    );
    assert_eq!(items(&stream, "1.1").len(), 1);

    // removed once its time to live has passed
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while requests.get_opt("many").await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "not removed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        streams.get_opt("many").await.unwrap().is_some(),
        "the stream stays"
    );
}
