//! The pruner (issue 6) against the real apiserver, under the operator's RBAC: a dry run
//! changes nothing and reports what it would do; a run prunes a tag's history to the kept
//! revisions, keeps young entries, entries a Pod uses by digest and entries a spec tag names,
//! then deletes the Images nothing refers to; `suspend` stops runs.
//!
//! The pruner object is named after the test's namespace and only Images labelled for it are
//! collected, so other tests sharing the cluster are never touched.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use imagestream_operator::api::image::Image;
use imagestream_operator::api::image_stream::ImageStream;
use imagestream_operator::config::{ImagePruner, PruneRun, RUN_NOW_ANNOTATION};
use imagestream_operator::controller::Settings;
use imagestream_operator::controller::pruner::PrunerOptions;
use imagestream_operator::names;
use support::operator::{items, start_with_pruner};

const LABEL: &str = "imagestream-operator.test/prune";

fn digest(namespace: &str, n: u32) -> String {
    let hex: String = Sha256::digest(format!("{namespace}/{n}"))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

async fn create_image(admin: &Client, namespace: &str, digest: &str) {
    let image: Image = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1", "kind": "Image",
        "metadata": {"name": names::image(digest), "labels": {LABEL: namespace}},
        "dockerImageReference": format!("example.com/app@{digest}"),
    }))
    .expect("image");
    Api::<Image>::all(admin.clone())
        .create(&PostParams::default(), &image)
        .await
        .expect("create image");
}

async fn image_exists(admin: &Client, digest: &str) -> bool {
    Api::<Image>::all(admin.clone())
        .get_opt(&names::image(digest))
        .await
        .expect("get image")
        .is_some()
}

/// Creates stream `name` with spec `tags` and writes status tag `t` with `history` (image,
/// old: two hours ago, else ten minutes ahead), newest first.
async fn stream_with_history(
    streams: &Api<ImageStream>,
    name: &str,
    tags: Value,
    history: &[(String, bool)],
) {
    let stream: ImageStream = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": name}, "spec": {"tags": tags},
    }))
    .expect("stream");
    streams
        .create(&PostParams::default(), &stream)
        .await
        .expect("create stream");
    let old = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2)).to_string();
    let young = (jiff::Timestamp::now() + jiff::SignedDuration::from_mins(10)).to_string();
    let items: Vec<Value> = history
        .iter()
        .map(|(image, is_old)| {
            json!({"created": if *is_old { &old } else { &young },
                "dockerImageReference": format!("example.com/app@{image}"),
                "image": image, "generation": 1})
        })
        .collect();
    // the controller may write the status too (resolving reference tags): retry on conflicts
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut current = streams.get(name).await.expect("get");
        let mut status = current.status.clone().unwrap_or_default();
        status.tags.retain(|t| t.tag != "t");
        status
            .tags
            .push(serde_json::from_value(json!({"tag": "t", "items": items})).expect("tag"));
        current.status = Some(status);
        match streams
            .replace_status(name, &PostParams::default(), &current)
            .await
        {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 409 && Instant::now() < deadline => {}
            Err(e) => panic!("write history: {e}"),
        }
    }
}

/// Asks for a run (annotation `request`) and waits for its report.
async fn run_now(pruners: &Api<ImagePruner>, name: &str, spec: Value, request: &str) -> PruneRun {
    let patch = json!({"metadata": {"annotations": {RUN_NOW_ANNOTATION: request}}, "spec": spec});
    pruners
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch pruner");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let p = pruners.get(name).await.expect("get pruner");
        if let Some(status) = p.status
            && status.observed_run_request.as_deref() == Some(request)
        {
            return status.last_run.expect("last run");
        }
        assert!(Instant::now() < deadline, "run {request} not reported");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn history_is_pruned_and_unreferenced_images_collected() {
    let (admin, ns, _operator) = start_with_pruner("prune", Settings::default(), |ns| {
        Some(PrunerOptions {
            name: ns.to_string(),
            image_selector: Some(format!("{LABEL}={ns}")),
            ..PrunerOptions::default()
        })
    })
    .await;
    let d = |n: u32| digest(&ns, n);
    for n in 1..=11 {
        create_image(&admin, &ns, &d(n)).await;
    }

    // a stream whose tag `t` has ten entries: d1 current, d2 young, the rest two hours old
    let streams = Api::<ImageStream>::namespaced(admin.clone(), &ns);
    // a spec tag naming d6 exactly (a reference: nothing is imported)
    let pinned = json!([{"name": "pinned", "reference": true,
        "from": {"kind": "DockerImage", "name": format!("example.com/app@{}", d(6))}}]);
    let history: Vec<(String, bool)> = (1..=10).map(|n| (d(n), n != 2)).collect();
    stream_with_history(&streams, "app", pinned, &history).await;

    // a pending Pod uses d5 by digest
    Api::<ServiceAccount>::namespaced(admin.clone(), &ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "default"}})).expect("sa"),
        )
        .await
        .ok();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "uses-d5"},
        "spec": {"automountServiceAccountToken": false, "containers": [
            {"name": "app", "image": format!("example.com/app@{}", d(5))}]},
    }))
    .expect("pod");
    Api::<Pod>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    // everything above is older than the one-second cutoff
    tokio::time::sleep(Duration::from_secs(2)).await;

    let pruners = Api::<ImagePruner>::all(admin.clone());
    let pruner: ImagePruner = serde_json::from_value(json!({
        "apiVersion": "operator.imagestream.io/v1alpha1", "kind": "ImagePruner",
        "metadata": {"name": ns},
        "spec": {"keepTagRevisions": 3, "keepYoungerThanDuration": "1s", "dryRun": true},
    }))
    .expect("pruner");
    pruners
        .create(&PostParams::default(), &pruner)
        .await
        .expect("create pruner");

    // dry run: the report, and nothing changed
    let spec = json!({"dryRun": true});
    let report = run_now(&pruners, &ns, spec, "1").await;
    assert!(report.dry_run && report.complete, "{report:?}");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.streams_pruned, 1);
    assert_eq!(report.events_removed, 5, "{:?}", report.removed);
    assert_eq!(report.images_deleted, 6, "{:?}", report.removed);
    assert!(
        report.removed.contains(&format!("{ns}/app:t@{}", d(4))),
        "{:?}",
        report.removed
    );
    assert!(
        report.removed.contains(&format!("image {}", d(11))),
        "{:?}",
        report.removed
    );
    let s = streams.get("app").await.expect("get");
    assert_eq!(items(&s, "t").len(), 10, "a dry run changes nothing");
    for n in 1..=11 {
        assert!(
            image_exists(&admin, &d(n)).await,
            "d{n} kept by the dry run"
        );
    }

    // the run: kept revisions d1-d3 (d2 also young), d5 (the Pod), d6 (the spec tag)
    let report = run_now(&pruners, &ns, json!({"dryRun": false}), "2").await;
    assert!(!report.dry_run && report.complete, "{report:?}");
    assert_eq!(
        (report.events_removed, report.images_deleted),
        (5, 6),
        "{report:?}"
    );
    let s = streams.get("app").await.expect("get");
    let kept: Vec<&str> = items(&s, "t").iter().map(|i| i.image.as_str()).collect();
    assert_eq!(kept, [d(1), d(2), d(3), d(5), d(6)]);
    for n in [1, 2, 3, 5, 6] {
        assert!(
            image_exists(&admin, &d(n)).await,
            "d{n} is still referenced"
        );
    }
    for n in [4, 7, 8, 9, 10, 11] {
        assert!(!image_exists(&admin, &d(n)).await, "d{n} was collected");
    }
    // the status-only tag has its ImageTag (no spec) following the pruned history
    let itags =
        Api::<imagestream_operator::api::image_tag::ImageTag>::namespaced(admin.clone(), &ns);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let itag = itags.get_opt("app.t").await.expect("get itag");
        if let Some(itag) = itag
            && itag.status.as_ref().is_some_and(|s| s.items.len() == 5)
        {
            assert!(itag.spec.spec.is_none());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the ImageTag of a status-only tag"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let events = support::cluster::events(&admin, "default", "ImagePruner", &ns, "Pruned").await;
    assert!(!events.is_empty(), "a Pruned Event");

    // again: nothing left to do
    let report = run_now(&pruners, &ns, json!({}), "3").await;
    assert_eq!((report.events_removed, report.images_deleted), (0, 0));

    // suspended: a request is not answered
    let patch = json!({"metadata": {"annotations": {RUN_NOW_ANNOTATION: "4"}},
        "spec": {"suspend": true}});
    pruners
        .patch(&ns, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("suspend");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let p = pruners.get(&ns).await.expect("get");
    let status = p.status.expect("status");
    assert_eq!(status.observed_run_request.as_deref(), Some("3"));
    pruners
        .delete(&ns, &Default::default())
        .await
        .expect("delete pruner");
}

/// A run bounded to one stream write stops after the first stream, says where, and the next
/// run continues after it and collects the Images once every stream was seen.
#[tokio::test]
async fn bounded_runs_resume_where_they_stopped() {
    let (admin, ns, _operator) = start_with_pruner("prune-bound", Settings::default(), |ns| {
        Some(PrunerOptions {
            name: ns.to_string(),
            image_selector: Some(format!("{LABEL}={ns}")),
            stream_writes_per_run: 1,
            image_deletes_per_run: 10,
            resume_pause: Duration::from_secs(1),
        })
    })
    .await;
    let d = |n: u32| digest(&ns, n);
    for n in 1..=4 {
        create_image(&admin, &ns, &d(n)).await;
    }
    let streams = Api::<ImageStream>::namespaced(admin.clone(), &ns);
    stream_with_history(&streams, "a", json!([]), &[(d(1), true), (d(2), true)]).await;
    stream_with_history(&streams, "b", json!([]), &[(d(3), true), (d(4), true)]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let pruners = Api::<ImagePruner>::all(admin.clone());
    let pruner: ImagePruner = serde_json::from_value(json!({
        "apiVersion": "operator.imagestream.io/v1alpha1", "kind": "ImagePruner",
        "metadata": {"name": ns},
        "spec": {"keepTagRevisions": 1, "keepYoungerThanDuration": "1s"},
    }))
    .expect("pruner");
    pruners
        .create(&PostParams::default(), &pruner)
        .await
        .expect("create pruner");
    let first = run_now(&pruners, &ns, json!({}), "1").await;
    assert!(!first.complete, "{first:?}");
    assert_eq!((first.streams_pruned, first.images_deleted), (1, 0));
    assert_eq!(first.removed, [format!("{ns}/a:t@{}", d(2))]);
    assert!(
        image_exists(&admin, &d(2)).await,
        "no Image goes before every stream was seen"
    );

    // the continuation, a second later
    let deadline = Instant::now() + Duration::from_secs(30);
    let last = loop {
        let status = pruners.get(&ns).await.expect("get").status.expect("status");
        if let Some(run) = status.last_run
            && run.complete
        {
            assert_eq!(status.resume_after, None);
            break run;
        }
        assert!(Instant::now() < deadline, "the run did not continue");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (last.streams_pruned, last.events_removed),
        (1, 1),
        "{last:?}"
    );
    assert_eq!(last.images_deleted, 2, "{last:?}");
    for (stream, kept) in [("a", d(1)), ("b", d(3))] {
        let s = streams.get(stream).await.expect("get");
        let images: Vec<&str> = items(&s, "t").iter().map(|i| i.image.as_str()).collect();
        assert_eq!(images, [kept.as_str()]);
    }
    assert!(!image_exists(&admin, &d(2)).await && !image_exists(&admin, &d(4)).await);
    pruners
        .delete(&ns, &Default::default())
        .await
        .expect("delete pruner");
}
