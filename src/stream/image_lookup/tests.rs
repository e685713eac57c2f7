//! Named after apiserver-library-go's `imagepolicy_test.go` cases where one applies.

use serde_json::{Value, json};

use super::*;

const D1: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";
const D2: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const D3: &str = "sha256:293aa25bf219f3e47472281b7e68c09bb6f315c2adf7f86a7302b85bdaa63db3";

fn event(reference: &str, image: &str) -> Value {
    json!({"created": "2026-01-01T00:00:00Z", "dockerImageReference": reference,
        "image": image, "generation": 1})
}

fn stream(
    namespace: &str,
    name: &str,
    local: bool,
    spec_tags: Value,
    status: Value,
) -> ImageStream {
    serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"lookupPolicy": {"local": local}, "tags": spec_tags},
        "status": status,
    }))
    .expect("stream")
}

/// Namespace `ns`: stream `test` (local lookup, upstream's fixture: tag `other` points at
/// image1), `app` (local lookup, in a registry at `internal.svc:5000`, tags `v1`, `latest`,
/// a Local-policy tag, a reference tag, a pending spec tag and one with a broken pull spec),
/// `off` (no local lookup), `bare` (local lookup, no repository). Namespace `elsewhere`:
/// `app` again.
fn index() -> LookupIndex {
    let mut index = LookupIndex::default();
    index.apply(&stream(
        "ns",
        "test",
        true,
        json!([]),
        json!({"dockerImageRepository": "", "tags": [
            {"tag": "other", "items": [event(&format!("integrated.registry/image1/image1@{D1}"), D1)]},
        ]}),
    ));
    index.apply(&stream(
        "ns",
        "app",
        true,
        json!([
            {"name": "local", "referencePolicy": {"type": "Local"},
             "from": {"kind": "DockerImage", "name": "quay.io/org/app:local"}},
            {"name": "pending", "from": {"kind": "DockerImage", "name": "quay.io/org/app:pending"}},
        ]),
        json!({"dockerImageRepository": "internal.svc:5000/ns/app", "tags": [
            {"tag": "v1", "items": [event(&format!("quay.io/org/app@{D1}"), D1)]},
            {"tag": "latest", "items": [event("quay.io/org/app:latest", D2),
                                        event(&format!("quay.io/org/app@{D1}"), D1)]},
            {"tag": "local", "items": [event(&format!("quay.io/org/app@{D3}"), D3)]},
            {"tag": "ref", "items": [event("quay.io/org/app:ref", "")]},
            {"tag": "broken", "items": [event("Not A Reference", D2)]},
        ]}),
    ));
    index.apply(&stream(
        "ns",
        "off",
        false,
        json!([]),
        json!({"dockerImageRepository": "internal.svc:5000/ns/off", "tags": [
            {"tag": "v1", "items": [event(&format!("quay.io/org/off@{D2}"), D2)]},
        ]}),
    ));
    index.apply(&stream(
        "ns",
        "bare",
        true,
        json!([]),
        json!({"dockerImageRepository": "", "tags": []}),
    ));
    index.apply(&stream(
        "elsewhere",
        "app",
        true,
        json!([]),
        json!({"dockerImageRepository": "", "tags": [
            {"tag": "v1", "items": [event(&format!("quay.io/other/app@{D3}"), D3)]},
        ]}),
    ));
    index
}

fn resolved(s: &str) -> Resolution {
    Resolution::Resolved(s.to_string())
}

#[test]
fn short_names_and_resolution_table() {
    let index = index();
    let app_v1 = format!("quay.io/org/app@{D1}");
    let cases: Vec<(String, bool, Resolution)> = [
        // short names: no registry, no namespace; an empty tag is `latest`
        ("app:v1", false, resolved(&app_v1)),
        ("app", false, resolved(&format!("quay.io/org/app@{D2}"))),
        (
            "app:latest",
            false,
            resolved(&format!("quay.io/org/app@{D2}")),
        ),
        (
            "test:other",
            false,
            resolved(&format!("integrated.registry/image1/image1@{D1}")),
        ),
        // referencePolicy Local: the stream's own repository, by digest
        (
            "app:local",
            false,
            resolved(&format!("internal.svc:5000/ns/app@{D3}")),
        ),
        // tags without an image: `<status.dockerImageRepository>:<tag>`
        (
            "app:pending",
            false,
            resolved("internal.svc:5000/ns/app:pending"),
        ),
        ("app:ref", false, resolved("internal.svc:5000/ns/app:ref")),
        (
            "app:never",
            false,
            resolved("internal.svc:5000/ns/app:never"),
        ),
        ("bare:x", false, Resolution::Kept(Kept::NoImage)),
        ("app:broken", false, Resolution::Kept(Kept::Unresolvable)),
        // not short: a registry host (with or without port, `localhost`), a namespace
        (
            "quay.io/org/app:v1",
            false,
            Resolution::Kept(Kept::NotShortName),
        ),
        (
            "registry:5000/app:v1",
            false,
            Resolution::Kept(Kept::NotShortName),
        ),
        (
            "localhost:5000/app",
            false,
            Resolution::Kept(Kept::NotShortName),
        ),
        ("localhost/app", false, Resolution::Kept(Kept::NotShortName)),
        (
            "docker.io/library/app",
            false,
            Resolution::Kept(Kept::NotShortName),
        ),
        (
            "docker.io/app:v1",
            false,
            Resolution::Kept(Kept::NotShortName),
        ),
        (
            "library/app:v1",
            false,
            Resolution::Kept(Kept::NotShortName),
        ),
        // a single component with a dot is a registry (upstream's split)
        ("app.example", false, Resolution::Kept(Kept::NotShortName)),
        // digests are never rewritten
        (
            &format!("app@{D1}"),
            false,
            Resolution::Kept(Kept::ByDigest),
        ),
        (
            &format!("app:v1@{D1}"),
            false,
            Resolution::Kept(Kept::ByDigest),
        ),
        (&format!("app@{D1}"), true, Resolution::Kept(Kept::ByDigest)),
        // not references
        ("", false, Resolution::Kept(Kept::Unparseable)),
        ("App:v1", false, Resolution::Kept(Kept::Unparseable)),
        ("app:v1:v2", false, Resolution::Kept(Kept::Unparseable)),
        // no such stream in this namespace (another namespace's does not count)
        ("mysql", false, Resolution::Kept(Kept::NoStream)),
        // a stream without lookupPolicy.local, unless resolve-names asks
        ("off:v1", false, Resolution::Kept(Kept::LookupDisabled)),
        ("off:v1", true, resolved(&format!("quay.io/org/off@{D2}"))),
        ("off:v9", true, resolved("internal.svc:5000/ns/off:v9")),
        // resolve-names: every reference without a digest names a stream by its last part
        ("quay.io/elsewhere/app:v1", true, resolved(&app_v1)),
        ("registry:5000/test/app:v1", true, resolved(&app_v1)),
        ("docker.io/library/app:v1", true, resolved(&app_v1)),
        (
            "registry:5000/a/b/app:v1",
            true,
            Resolution::Kept(Kept::NoStream),
        ),
        // already what resolution gives
        (app_v1.as_str(), true, Resolution::Kept(Kept::ByDigest)),
        (
            "internal.svc:5000/ns/app:never",
            true,
            Resolution::Kept(Kept::Same),
        ),
    ]
    .into_iter()
    .map(|(image, all, expected): (&str, bool, Resolution)| (image.to_string(), all, expected))
    .collect();
    for (image, all, expected) in cases {
        assert_eq!(
            resolve(&image, "ns", all, &index),
            expected,
            "{image:?} (resolve-names {all})"
        );
    }
    assert_eq!(
        resolve("app:v1", "elsewhere", false, &index),
        resolved(&format!("quay.io/other/app@{D3}"))
    );
    assert_eq!(
        resolve("app:v1", "third", true, &index),
        Resolution::Kept(Kept::NoStream)
    );
}

#[test]
fn a_resolution_to_itself_is_kept() {
    let mut index = LookupIndex::default();
    index.apply(&stream(
        "ns",
        "x",
        true,
        json!([]),
        json!({"dockerImageRepository": "x", "tags": []}),
    ));
    // the stream's repository is the bare name `x`: `x:v1` resolves to itself
    assert_eq!(
        resolve("x:v1", "ns", false, &index),
        Resolution::Kept(Kept::Same)
    );
}

#[test]
fn the_index_follows_applies_and_deletes() {
    let mut index = index();
    assert_eq!(index.len(), 5);
    assert!(index.heap_bytes() > 0);
    // lookup turned off: kept; turned on again: resolved
    index.apply(&stream("ns", "test", false, json!([]), json!({"tags": [
        {"tag": "other", "items": [event(&format!("integrated.registry/image1/image1@{D1}"), D1)]},
    ]})));
    assert_eq!(
        resolve("test:other", "ns", false, &index),
        Resolution::Kept(Kept::LookupDisabled)
    );
    assert_eq!(index.len(), 5);
    index.delete("ns", "test");
    assert_eq!(
        resolve("test:other", "ns", true, &index),
        Resolution::Kept(Kept::NoStream)
    );
    index.delete("elsewhere", "app");
    index.delete("nowhere", "app");
    assert_eq!(index.len(), 3);
    // a stream without status: the flag only
    index.apply(
        &serde_json::from_value(json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
            "metadata": {"name": "new", "namespace": "ns"},
            "spec": {"lookupPolicy": {"local": true}},
        }))
        .unwrap(),
    );
    assert_eq!(
        resolve("new", "ns", false, &index),
        Resolution::Kept(Kept::NoImage)
    );
}

fn pod(containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"},
        "spec": containers})
}

fn review<'a>(workload: Workload, object: &'a Value, old: Option<&'a Value>) -> Review<'a> {
    Review {
        workload,
        operation: if old.is_some() {
            Operation::Update
        } else {
            Operation::Create
        },
        namespace: "ns",
        object,
        old_object: old,
    }
}

fn change(path: &str, from: &str, to: &str) -> ImageChange {
    ImageChange {
        path: path.into(),
        from: from.into(),
        to: to.into(),
    }
}

#[test]
fn resolves_pods() {
    let object = pod(json!({
        "initContainers": [{"name": "init", "image": "app"}],
        "containers": [
            {"name": "a", "image": "test:other"},
            {"name": "b", "image": "nginx:1.27"},
            {"name": "c", "image": "quay.io/org/app:v1"},
            {"name": "d", "image": "off:v1"},
            {"name": "e"},
        ],
        "ephemeralContainers": [{"name": "debug", "image": "app:v1"}],
    }));
    let plan = plan(&review(Workload::Pod, &object, None), &index());
    assert_eq!(
        plan.changes,
        [
            change(
                "/spec/initContainers/0/image",
                "app",
                &format!("quay.io/org/app@{D2}")
            ),
            change(
                "/spec/containers/0/image",
                "test:other",
                &format!("integrated.registry/image1/image1@{D1}")
            ),
            change(
                "/spec/ephemeralContainers/0/image",
                "app:v1",
                &format!("quay.io/org/app@{D1}")
            ),
        ]
    );
    assert_eq!(
        plan.kept,
        [
            ("/spec/containers/1/image".to_string(), Kept::NoStream),
            ("/spec/containers/3/image".to_string(), Kept::LookupDisabled),
        ]
    );
    assert_eq!(plan.skipped, None);
}

fn workload(kind: &str, template_annotations: Value, image: &str) -> Value {
    let template = json!({"metadata": {"annotations": template_annotations},
        "spec": {"containers": [{"name": "c", "image": image}]}});
    match kind {
        "CronJob" => json!({"kind": kind, "metadata": {"name": "w"},
            "spec": {"jobTemplate": {"spec": {"template": template}}}}),
        _ => json!({"kind": kind, "metadata": {"name": "w"}, "spec": {"template": template}}),
    }
}

#[test]
fn resolves_replica_sets_that_have_a_local_name_to_their_image_stream_tags() {
    let index = index();
    let to = format!("integrated.registry/image1/image1@{D1}");
    for (group, kind, path) in [
        (
            "apps",
            "ReplicaSet",
            "/spec/template/spec/containers/0/image",
        ),
        (
            "apps",
            "Deployment",
            "/spec/template/spec/containers/0/image",
        ),
        (
            "apps",
            "StatefulSet",
            "/spec/template/spec/containers/0/image",
        ),
        (
            "apps",
            "DaemonSet",
            "/spec/template/spec/containers/0/image",
        ),
        ("batch", "Job", "/spec/template/spec/containers/0/image"),
        (
            "",
            "ReplicationController",
            "/spec/template/spec/containers/0/image",
        ),
        (
            "batch",
            "CronJob",
            "/spec/jobTemplate/spec/template/spec/containers/0/image",
        ),
    ] {
        let workload_kind = Workload::of(group, kind).expect(kind);
        let object = workload(kind, json!({}), "test:other");
        let plan = plan(&review(workload_kind, &object, None), &index);
        assert_eq!(plan.changes, [change(path, "test:other", &to)], "{kind}");
    }
    assert_eq!(Workload::of("", "PodTemplate"), None);
    assert_eq!(Workload::of("apps", "Pod"), None);
    assert_eq!(Workload::of("extensions", "Deployment"), None);
}

#[test]
fn does_not_resolve_replica_sets_by_default() {
    let object = workload("ReplicaSet", json!({}), "off:v1");
    let plan = plan(&review(Workload::ReplicaSet, &object, None), &index());
    assert!(plan.changes.is_empty());
    assert_eq!(
        plan.kept,
        [(
            "/spec/template/spec/containers/0/image".to_string(),
            Kept::LookupDisabled
        )]
    );
}

#[test]
fn resolves_replica_sets_that_specifically_request_lookup() {
    let index = index();
    let to = format!("quay.io/org/off@{D2}");
    // on the template (what `oc set image-lookup deploy/NAME` writes) or on the object
    let on_template = workload(
        "ReplicaSet",
        json!({ANNOTATION_RESOLVE_NAMES: "*"}),
        "off:v1",
    );
    let mut on_object = workload("ReplicaSet", json!({}), "off:v1");
    on_object["metadata"]["annotations"] = json!({ANNOTATION_RESOLVE_NAMES: "*"});
    for object in [&on_template, &on_object] {
        let plan = plan(&review(Workload::ReplicaSet, object, None), &index);
        assert_eq!(
            plan.changes,
            [change(
                "/spec/template/spec/containers/0/image",
                "off:v1",
                &to
            )]
        );
    }
    // only "*" asks
    let other = workload(
        "ReplicaSet",
        json!({ANNOTATION_RESOLVE_NAMES: "true"}),
        "off:v1",
    );
    assert!(
        plan(&review(Workload::ReplicaSet, &other, None), &index)
            .changes
            .is_empty()
    );
    // a Pod has no template: its own annotation
    let mut p = pod(json!({"containers": [{"name": "c", "image": "off:v1"}]}));
    p["metadata"]["annotations"] = json!({ANNOTATION_RESOLVE_NAMES: "*"});
    assert_eq!(
        plan(&review(Workload::Pod, &p, None), &index).changes.len(),
        1
    );
}

#[test]
fn if_the_tag_is_not_found_but_the_stream_is_and_resolves_resolve_to_the_tag() {
    let object = workload("ReplicaSet", json!({}), "app:other");
    let plan = plan(&review(Workload::ReplicaSet, &object, None), &index());
    assert_eq!(
        plan.changes,
        [change(
            "/spec/template/spec/containers/0/image",
            "app:other",
            "internal.svc:5000/ns/app:other"
        )]
    );
}

#[test]
fn if_the_tag_is_not_found_but_the_stream_is_and_doesnt_resolve_use_the_original_value() {
    let object = workload("ReplicaSet", json!({}), "off:other");
    assert!(
        plan(&review(Workload::ReplicaSet, &object, None), &index())
            .changes
            .is_empty()
    );
}

#[test]
fn if_the_tag_is_not_found_the_stream_resolves_but_the_registry_is_not_installed_dont_match() {
    let object = workload("ReplicaSet", json!({}), "bare:other");
    let plan = plan(&review(Workload::ReplicaSet, &object, None), &index());
    assert!(plan.changes.is_empty());
    assert_eq!(plan.kept[0].1, Kept::NoImage);
}

#[test]
fn skip_resolution_for_objects_with_controller_owner_references() {
    let index = index();
    let mut object = pod(json!({"containers": [{"name": "c", "image": "app:v1"}]}));
    object["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": true}]);
    let planned = plan(&review(Workload::Pod, &object, None), &index);
    assert_eq!(planned.skipped, Some(Skipped::Controlled));
    assert!(planned.changes.is_empty());
    // an owner that is not the controller does not count
    object["metadata"]["ownerReferences"][0]["controller"] = json!(false);
    assert_eq!(
        plan(&review(Workload::Pod, &object, None), &index)
            .changes
            .len(),
        1
    );
}

#[test]
fn updates_resolve_only_changed_containers() {
    let index = index();
    let old = pod(json!({"containers": [
        {"name": "a", "image": "app:v1"}, {"name": "b", "image": "app:v1"}]}));
    let new = pod(json!({"containers": [
        {"name": "a", "image": "app:v1"}, {"name": "b", "image": "app:latest"},
        {"name": "c", "image": "app:v1"}]}));
    let planned = plan(&review(Workload::Pod, &new, Some(&old)), &index);
    let paths: Vec<_> = planned.changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/spec/containers/1/image", "/spec/containers/2/image"]
    );

    // adding the annotation resolves the unchanged ones too
    let annotated = |mut object: Value| {
        object["spec"]["template"]["metadata"]["annotations"] =
            json!({ANNOTATION_RESOLVE_NAMES: "*"});
        object
    };
    let old = workload("Deployment", json!({}), "off:v1");
    let new = annotated(old.clone());
    let planned = plan(&review(Workload::Deployment, &new, Some(&old)), &index);
    assert_eq!(planned.changes.len(), 1);
    // ...and an update that keeps it and the images does not
    let planned = plan(&review(Workload::Deployment, &new, Some(&new)), &index);
    assert!(planned.changes.is_empty());
    // on a new ephemeral container (the pods/ephemeralcontainers subresource)
    let old = pod(json!({"containers": [{"name": "a", "image": "app:v1"}]}));
    let mut new = old.clone();
    new["spec"]["ephemeralContainers"] = json!([{"name": "dbg", "image": "app"}]);
    let planned = plan(&review(Workload::Pod, &new, Some(&old)), &index);
    let paths: Vec<_> = planned.changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["/spec/ephemeralContainers/0/image"]);
}

#[test]
fn jobs_are_not_rewritten_on_update() {
    let old = workload("Job", json!({}), "nginx");
    let new = workload("Job", json!({}), "app:v1");
    let planned = plan(&review(Workload::Job, &new, Some(&old)), &index());
    assert_eq!(planned.skipped, Some(Skipped::JobUpdate));
    assert!(planned.changes.is_empty());
}

#[test]
fn objects_without_a_pod_spec_are_skipped() {
    let rc = json!({"kind": "ReplicationController", "metadata": {"name": "rc"},
        "spec": {"replicas": 1}});
    assert_eq!(
        plan(
            &review(Workload::ReplicationController, &rc, None),
            &index()
        )
        .skipped,
        Some(Skipped::NoPodSpec)
    );
    let odd = json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": "nonsense"});
    assert_eq!(
        plan(&review(Workload::Pod, &odd, None), &index()).skipped,
        Some(Skipped::NoPodSpec)
    );
    // containers that are not objects, images that are not strings: left alone
    let odd = pod(json!({"containers": [5, {"name": "x", "image": 7}], "initContainers": {}}));
    let planned = plan(&review(Workload::Pod, &odd, None), &index());
    assert_eq!(planned, Plan::default());
}
