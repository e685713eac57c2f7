//! The imagestream controller end to end: the real kube-apiserver, the real registry, and the
//! controller running in this process under its own ServiceAccount bound to
//! `deploy/rbac.yaml` (not admin), scoped to the test's namespace.

mod support;

use std::time::Duration;

use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

use imagestream_operator::api::image::Image;
use imagestream_operator::api::image_stream::ImageStream;
use imagestream_operator::controller::Settings;
use support::images::{ImageSpec, TestImage};
use support::operator::{create_stream, items, start as operator};
use support::registry::{RegistryOptions, TestRegistry, summary};

fn fast_schedule() -> Settings {
    Settings {
        scheduled_interval: Some(Duration::from_secs(2)),
        scheduled_per_minute: None,
        ..Settings::default()
    }
}

fn tag(name: &str, from: &str, generation: i64, scheduled: bool) -> serde_json::Value {
    json!({
        "name": name,
        "from": { "kind": "DockerImage", "name": from },
        "generation": generation,
        "importPolicy": { "insecure": true, "scheduled": scheduled },
    })
}

/// Waits until `check` holds for the stream (or panics with the stream after `secs`).
async fn wait_for(
    api: &Api<ImageStream>,
    name: &str,
    secs: u64,
    check: impl Fn(&ImageStream) -> bool,
) -> ImageStream {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let stream = api.get(name).await.expect("get stream");
        if check(&stream) {
            return stream;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "condition not met within {secs}s: {}",
                serde_json::to_string_pretty(&stream.status).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn condition(stream: &ImageStream, tag: &str) -> Option<(String, String, i64)> {
    let c = stream
        .status
        .as_ref()?
        .tag(tag)?
        .conditions
        .first()?
        .clone();
    Some((c.reason, c.message, c.generation))
}

async fn push(reg: &TestRegistry, repo: &str, tag: &str, seed: u64) -> String {
    let image: TestImage = ImageSpec::single("amd64", seed).build().into();
    reg.client().push(repo, tag, &image).await.expect("push")
}

/// Semantics 2.7 with design rule 4: a new tag is imported with E = S, the Image is created
/// without manifest and config, a changed tag (S = new G, as the webhook assigns) is imported
/// again into a new history entry, and nothing is written when nothing changed.
#[tokio::test]
async fn worked_example_import_history_and_images() {
    let reg = RegistryOptions::plain().start();
    let d1 = push(&reg, "app", "v1", 701).await;
    let d2 = push(&reg, "app", "v2", 702).await;
    let (admin, ns, _operator) = operator("is-worked", Settings::default()).await;
    let api: Api<ImageStream> = Api::namespaced(admin.clone(), &ns);

    create_stream(
        &api,
        "app",
        json!([tag("latest", &reg.image_ref("app", "v1"), 1, false)]),
    )
    .await;
    let stream = wait_for(&api, "app", 30, |s| !items(s, "latest").is_empty()).await;
    let event = &items(&stream, "latest")[0];
    assert_eq!(event.image, d1);
    assert_eq!(event.generation, 1);
    assert_eq!(
        event.docker_image_reference,
        format!("{}/app@{d1}", reg.addr())
    );
    assert_eq!(
        stream.status.as_ref().unwrap().docker_image_repository,
        "",
        "no internal registry configured"
    );

    let image = Api::<Image>::all(admin.clone())
        .get(&imagestream_operator::names::image(&d1))
        .await
        .expect("the Image exists");
    assert!(image.spec.docker_image_manifest.is_empty());
    assert!(image.spec.docker_image_config.is_empty());
    assert_eq!(
        image.spec.docker_image_reference,
        format!("{}/app@{d1}", reg.addr())
    );

    // the user points the tag elsewhere; the webhook would give it S = G + 1 = 2
    let patch =
        json!({ "spec": { "tags": [tag("latest", &reg.image_ref("app", "v2"), 2, false)] } });
    api.patch("app", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("update the tag");
    let stream = wait_for(&api, "app", 30, |s| items(s, "latest").len() == 2).await;
    let history = items(&stream, "latest");
    assert_eq!(
        (history[0].image.as_str(), history[0].generation),
        (d2.as_str(), 2)
    );
    assert_eq!(history[1].image, d1);

    // settled: no further writes
    let rv = stream.resource_version();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(api.get("app").await.unwrap().resource_version(), rv);
}

/// Tags imported in one pass each get their own `Imported` Event, naming the tag and its
/// ImageStreamTag as the related object (kube's recorder would fold Events alike but for
/// the note into one, the first tag's note counted for all).
#[tokio::test]
async fn each_imported_tag_gets_its_own_event() {
    let reg = RegistryOptions::plain().start();
    let mut digests = Vec::new();
    for (i, t) in ["t0", "t1", "t2"].iter().enumerate() {
        digests.push(push(&reg, "events", t, 760 + i as u64).await);
    }
    let (admin, ns, _operator) = operator("is-events", Settings::default()).await;
    let api: Api<ImageStream> = Api::namespaced(admin.clone(), &ns);
    let tags: Vec<_> = ["t0", "t1", "t2"]
        .iter()
        .map(|t| tag(t, &reg.image_ref("events", t), 1, false))
        .collect();
    create_stream(&api, "s", json!(tags)).await;
    wait_for(&api, "s", 30, |s| {
        ["t0", "t1", "t2"].iter().all(|t| !items(s, t).is_empty())
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let events = support::cluster::events(&admin, &ns, "ImageStream", "s", "Imported").await;
        let mut seen: Vec<(String, String)> = events
            .iter()
            .map(|e| {
                let related = e.related.as_ref();
                (
                    format!(
                        "{}/{}",
                        related.and_then(|r| r.kind.clone()).unwrap_or_default(),
                        related.and_then(|r| r.name.clone()).unwrap_or_default()
                    ),
                    e.note.clone().unwrap_or_default(),
                )
            })
            .collect();
        seen.sort();
        let wanted: Vec<(String, String)> = ["t0", "t1", "t2"]
            .iter()
            .zip(&digests)
            .map(|(t, d)| {
                (
                    format!(
                        "ImageStreamTag/{}",
                        imagestream_operator::names::stream_tag("s", t)
                    ),
                    format!("tag {t} now points at {d}"),
                )
            })
            .collect();
        if seen == wanted {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Imported Events {seen:#?}, wanted {wanted:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A tag that fails gets ImportSuccess=False with upstream's reason and message (written
/// once), and a scheduled tag recovers on its own when the registry is fixed.
#[tokio::test]
async fn failure_condition_and_recovery() {
    let reg = RegistryOptions::plain().start();
    let (admin, ns, _operator) = operator("is-failure", fast_schedule()).await;
    let api: Api<ImageStream> = Api::namespaced(admin.clone(), &ns);

    let from = reg.image_ref("missing", "v1");
    create_stream(&api, "broken", json!([tag("v1", &from, 1, true)])).await;
    let stream = wait_for(&api, "broken", 30, |s| condition(s, "v1").is_some()).await;
    let (reason, message, generation) = condition(&stream, "v1").unwrap();
    assert_eq!(reason, "NotFound");
    assert_eq!(
        message,
        format!(
            "dockerimage.image.openshift.io \"{}/missing:v1\" not found",
            reg.addr()
        )
    );
    assert_eq!(generation, 1);
    let first_time = stream.status.as_ref().unwrap().tags[0].conditions[0]
        .last_transition_time
        .clone();

    // identical failures on later scheduled checks are not written again
    let rv = stream.resource_version();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let again = api.get("broken").await.unwrap();
    assert_eq!(
        again.resource_version(),
        rv,
        "no write for an identical failure"
    );
    assert_eq!(
        again.status.as_ref().unwrap().tags[0].conditions[0].last_transition_time,
        first_time
    );

    let digest = push(&reg, "missing", "v1", 703).await;
    let stream = wait_for(&api, "broken", 30, |s| !items(s, "v1").is_empty()).await;
    assert_eq!(items(&stream, "v1")[0].image, digest);
    assert_eq!(condition(&stream, "v1"), None, "cleared on success");
}

/// Scheduled checks: an unchanged tag costs one HEAD and no write; a tag moved in the
/// registry becomes a new history entry on the next check, and a same-stream alias follows.
#[tokio::test]
async fn scheduled_checks_head_first_and_aliases_follow() {
    let reg = RegistryOptions::plain().start();
    let d1 = push(&reg, "moving", "latest", 711).await;
    let (admin, ns, _operator) = operator("is-scheduled", fast_schedule()).await;
    let api: Api<ImageStream> = Api::namespaced(admin.clone(), &ns);

    create_stream(
        &api,
        "moving",
        json!([
            tag("latest", &reg.image_ref("moving", "latest"), 1, true),
            { "name": "alias", "generation": 1, "from": { "kind": "ImageStreamTag", "name": "moving:latest" } },
        ]),
    )
    .await;
    let stream = wait_for(&api, "moving", 30, |s| !items(s, "alias").is_empty()).await;
    assert_eq!(items(&stream, "latest")[0].image, d1);
    assert_eq!(items(&stream, "alias")[0].image, d1);

    // count writes while unchanged: watch the stream for a few intervals
    let watch = watcher::watch_object(api.clone(), "moving");
    let mark = reg.mark();
    let writes = tokio::time::timeout(Duration::from_secs(7), watch.skip(1).count())
        .await
        .unwrap_or(0);
    let requests = summary(&reg.requests_since_async(mark).await);
    assert_eq!(writes, 0, "an unchanged scheduled tag writes nothing");
    assert!(!requests.is_empty(), "checks happened");
    assert!(
        requests
            .iter()
            .all(|r| r == "HEAD /v2/moving/manifests/latest 200"),
        "only HEADs: {requests:#?}"
    );

    let d2 = push(&reg, "moving", "latest", 712).await;
    let stream = wait_for(&api, "moving", 30, |s| {
        items(s, "latest").len() == 2 && items(s, "alias").len() == 2
    })
    .await;
    assert_eq!(items(&stream, "latest")[0].image, d2);
    assert_eq!(
        items(&stream, "latest")[0].generation,
        1,
        "E = S, spec untouched"
    );
    assert_eq!(items(&stream, "alias")[0].image, d2, "the alias follows");
}

/// A tag that failed with Unauthorized is retried when a pull secret appears in its
/// namespace.
#[tokio::test]
async fn unauthorized_tags_retry_when_pull_secrets_change() {
    let reg = RegistryOptions::token().start();
    let digest = push(&reg, "private", "v1", 721).await;
    let (admin, ns, _operator) = operator("is-unauthorized", Settings::default()).await;
    let api: Api<ImageStream> = Api::namespaced(admin.clone(), &ns);

    create_stream(
        &api,
        "private",
        json!([tag("v1", &reg.image_ref("private", "v1"), 1, false)]),
    )
    .await;
    let stream = wait_for(&api, "private", 30, |s| condition(s, "v1").is_some()).await;
    assert_eq!(condition(&stream, "v1").unwrap().0, "Unauthorized");

    support::cluster::create_pull_secret(&admin, &ns, reg.addr(), "reader", "r3ad").await;
    let stream = wait_for(&api, "private", 30, |s| !items(s, "v1").is_empty()).await;
    assert_eq!(items(&stream, "v1")[0].image, digest);
    assert_eq!(condition(&stream, "v1"), None);
}

/// `spec.dockerImageRepository` (semantics 2.6, 5.6): the repository's tags are imported into
/// status tags with E = G and the `dockerRepositoryCheck` annotation is set, after which the
/// repository is left alone (no requests, no writes); removing the annotation imports it
/// again, and a moved tag becomes a new history entry. A repository that cannot be listed
/// gets a Warning Event and no annotation.
#[tokio::test]
async fn docker_image_repository_is_imported_once() {
    use imagestream_operator::api::image_stream::DOCKER_IMAGE_REPOSITORY_CHECK_ANNOTATION as CHECK;

    let reg = RegistryOptions::plain().start();
    let latest = push(&reg, "whole", "latest", 731).await;
    let v1 = push(&reg, "whole", "v1", 732).await;
    let (admin, ns, _operator) = operator("is-repository", Settings::default()).await;
    let api: Api<ImageStream> = Api::namespaced(admin.clone(), &ns);
    let create = |name: &str, repository: String| {
        serde_json::from_value::<ImageStream>(json!({
            "apiVersion": "image.openshift.io/v1",
            "kind": "ImageStream",
            "metadata": {
                "name": name,
                "annotations": { "openshift.io/image.insecureRepository": "true" },
            },
            "spec": { "dockerImageRepository": repository },
        }))
        .expect("stream")
    };
    api.create(
        &PostParams::default(),
        &create("whole", format!("{}/whole", reg.addr())),
    )
    .await
    .expect("create stream");
    let checked = |s: &ImageStream| s.annotations().contains_key(CHECK);
    let stream = wait_for(&api, "whole", 30, |s| {
        checked(s) && items(s, "latest").len() == 1 && items(s, "v1").len() == 1
    })
    .await;
    assert_eq!(items(&stream, "latest")[0].image, latest);
    assert_eq!(items(&stream, "v1")[0].image, v1);
    assert_eq!(
        items(&stream, "v1")[0].docker_image_reference,
        format!("{}/whole@{v1}", reg.addr())
    );
    assert_eq!(items(&stream, "v1")[0].generation, 1, "E = G");
    assert!(stream.spec.tags.is_empty(), "the spec is not written");

    // checked: nothing more is asked of the registry and nothing written
    let mark = reg.mark();
    let rv = stream.resource_version();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(api.get("whole").await.unwrap().resource_version(), rv);
    let requests = summary(&reg.requests_since_async(mark).await);
    assert!(requests.is_empty(), "{requests:#?}");

    // the annotation removed: imported again; v1 moved meanwhile
    let v1_moved = push(&reg, "whole", "v1", 733).await;
    let unmark = json!({ "metadata": { "annotations": { CHECK: null } } });
    api.patch("whole", &PatchParams::default(), &Patch::Merge(&unmark))
        .await
        .expect("remove the annotation");
    let stream = wait_for(&api, "whole", 30, |s| {
        checked(s) && items(s, "v1").len() == 2
    })
    .await;
    assert_eq!(items(&stream, "v1")[0].image, v1_moved);
    assert_eq!(items(&stream, "latest").len(), 1, "unchanged tag kept");

    // a repository that does not exist: a Warning Event, no annotation
    api.create(
        &PostParams::default(),
        &create("nothing", format!("{}/nothing", reg.addr())),
    )
    .await
    .expect("create stream");
    let note = import_failed(&admin, &ns, "no Warning Event", |found| {
        found.first().map(|e| e.note.clone().unwrap_or_default())
    })
    .await;
    assert!(note.contains("/nothing"), "{note}");
    assert!(note.contains("NotFound"), "{note}");
    assert!(!checked(&api.get("nothing").await.unwrap()));

    // tried again (a label brings a pass): the same Warning counts on the Event written
    relabel(&api, "nothing", "1").await;
    let gone = import_failed(&admin, &ns, "no repeat counted", |found| {
        assert_eq!(found.len(), 1, "one Event for the repeats: {found:#?}");
        let e = &found[0];
        e.series.as_ref().filter(|s| s.count >= 2)?;
        e.metadata.name.clone()
    })
    .await;

    // the Event gone (the apiserver's TTL, or deleted): the next repeat is a new Event
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(admin.clone(), &ns);
    events
        .delete(&gone, &Default::default())
        .await
        .expect("delete the Event");
    relabel(&api, "nothing", "2").await;
    let e = import_failed(&admin, &ns, "no new Event after the deletion", |found| {
        assert!(found.len() <= 1, "{found:#?}");
        found.first().cloned()
    })
    .await;
    assert_ne!(e.metadata.name.as_deref(), Some(gone.as_str()));
    assert_eq!(e.series, None, "a new Event: {e:#?}");
}

/// A label change, which brings the stream a pass.
async fn relabel(api: &Api<ImageStream>, name: &str, value: &str) {
    let label = json!({ "metadata": { "labels": { "again": value } } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&label))
        .await
        .expect("label");
}

/// Polls the `RepositoryImportFailed` Events of the stream `nothing` for 30 s until `done`
/// takes what it waits for from them.
async fn import_failed<T>(
    admin: &kube::Client,
    ns: &str,
    missing: &str,
    done: impl Fn(&[k8s_openapi::api::events::v1::Event]) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let found = support::cluster::events(
            admin,
            ns,
            "ImageStream",
            "nothing",
            "RepositoryImportFailed",
        )
        .await;
        if let Some(t) = done(&found) {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{missing}: {found:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Semantics 4 "limit exceeded" with 7.8: under a LimitRange of `openshift.io/images` = 1, a
/// stream whose import would hold two images keeps its status and gets a `LimitExceeded`
/// condition on each tag the import would have added; a stream within the limit imports.
#[tokio::test]
async fn limit_ranges_refuse_imports_past_them() {
    let reg = RegistryOptions::plain().start();
    push(&reg, "limited", "a", 741).await;
    push(&reg, "limited", "b", 742).await;
    let (admin, ns, _operator) = operator("is-limits", Settings::default()).await;
    support::cluster::limit_image_streams(&admin, &ns, "openshift.io/images", "1").await;
    let api: Api<ImageStream> = Api::namespaced(admin.clone(), &ns);

    create_stream(
        &api,
        "two",
        json!([
            tag("a", &reg.image_ref("limited", "a"), 1, false),
            tag("b", &reg.image_ref("limited", "b"), 1, false),
        ]),
    )
    .await;
    let stream = wait_for(&api, "two", 30, |s| {
        condition(s, "a").is_some() && condition(s, "b").is_some()
    })
    .await;
    for t in ["a", "b"] {
        let (reason, message, _) = condition(&stream, t).unwrap();
        assert_eq!(reason, "LimitExceeded");
        assert!(message.ends_with("(2 > 1)"), "{message}");
        assert!(items(&stream, t).is_empty(), "nothing imported");
    }

    create_stream(
        &api,
        "one",
        json!([tag("a", &reg.image_ref("limited", "a"), 1, false)]),
    )
    .await;
    wait_for(&api, "one", 30, |s| items(s, "a").len() == 1).await;
}

/// A `spec.dockerImageRepository` the registry refuses without credentials is imported as
/// soon as a pull secret appears in the namespace (not only on its ten-minute retry).
#[tokio::test]
async fn unauthorized_repository_retries_when_pull_secrets_change() {
    use imagestream_operator::api::image_stream::DOCKER_IMAGE_REPOSITORY_CHECK_ANNOTATION as CHECK;
    let reg = RegistryOptions::token().start();
    let digest = push(&reg, "private", "v1", 751).await;
    let (admin, ns, _operator) = operator("is-repo-unauthorized", Settings::default()).await;
    let api: Api<ImageStream> = Api::namespaced(admin.clone(), &ns);
    let stream: ImageStream = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1",
        "kind": "ImageStream",
        "metadata": {
            "name": "private",
            "annotations": { "openshift.io/image.insecureRepository": "true" },
        },
        "spec": { "dockerImageRepository": format!("{}/private", reg.addr()) },
    }))
    .unwrap();
    api.create(&PostParams::default(), &stream)
        .await
        .expect("create stream");
    // the first attempt is refused: no annotation, no tags
    tokio::time::sleep(Duration::from_secs(3)).await;
    let refused = api.get("private").await.unwrap();
    assert!(!refused.annotations().contains_key(CHECK));
    assert!(items(&refused, "v1").is_empty());

    support::cluster::create_pull_secret(&admin, &ns, reg.addr(), "reader", "r3ad").await;
    let stream = wait_for(&api, "private", 30, |s| !items(s, "v1").is_empty()).await;
    assert_eq!(items(&stream, "v1")[0].image, digest);
    assert!(stream.annotations().contains_key(CHECK));
}

/// Issue 16: an ImageStreamImage reference by image id alone (`from.name: <id>`, an image of
/// the stream itself as upstream reads it; validation accepts it) is resolved, where the
/// controller used to fail it with `Invalid`.
#[tokio::test]
async fn an_image_stream_image_by_id_alone_is_resolved() {
    let reg = RegistryOptions::plain().start();
    let d1 = push(&reg, "app", "v1", 711).await;
    let (admin, ns, _operator) = operator("is-by-id", Settings::default()).await;
    let api: Api<ImageStream> = Api::namespaced(admin.clone(), &ns);
    create_stream(
        &api,
        "app",
        json!([
            tag("v1", &reg.image_ref("app", "v1"), 1, false),
            {"name": "byid", "from": {"kind": "ImageStreamImage", "name": &d1[..19]},
                "generation": 1},
        ]),
    )
    .await;
    let stream = wait_for(&api, "app", 30, |s| !items(s, "byid").is_empty()).await;
    assert_eq!(items(&stream, "byid")[0].image, d1);
    assert_eq!(condition(&stream, "byid"), None);
}
