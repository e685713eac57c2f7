//! The trigger rules against upstream's cases: library-go `pkg/image/trigger/annotations_test.go`
//! (`TestAnnotationJSONPath`, `TestAnnotationsReactor`, one test per case), the
//! openshift-controller-manager trigger controller and cache
//! (`pkg/image/controller/trigger`, `TestTriggerControllerSyncImageStream`, the annotation
//! indexer's change rules) and library-go `imageutil` (`SplitImageStreamTag`,
//! `ResolveLatestTaggedImage`).

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Container;
use serde_json::{Value, json};

use super::*;
use crate::api::image_stream::ImageStream;

/// Tags that resolve: `(namespace, "stream:tag", pull spec)` (upstream's `fakeTagRetriever`).
struct Tags(Vec<(&'static str, &'static str, &'static str)>);

impl TagSource for Tags {
    fn pull_spec(&self, tag: &TagKey) -> Option<String> {
        let name = format!("{}:{}", tag.stream, tag.tag);
        self.0
            .iter()
            .find(|(ns, n, _)| *ns == tag.namespace && *n == name)
            .map(|(_, _, r)| (*r).to_string())
    }
}

fn trigger(name: &str, namespace: &str, path: &str) -> Value {
    json!({"from": {"kind": "ImageStreamTag", "name": name, "namespace": namespace}, "fieldPath": path})
}

const TEST: &str = "spec.template.spec.containers[?(@.name==\"test\")].image";
const TEST2: &str = "spec.template.spec.containers[?(@.name==\"test2\")].image";
const INIT_TEST: &str = "spec.template.spec.initContainers[?(@.name==\"test\")].image";

/// Upstream's `testStatefulSet`: containers by name (a leading `-` makes an init container),
/// sorted, with the triggers as the annotation.
fn stateful_set(triggers: &[Value], containers: &[(&str, &str)]) -> StatefulSet {
    let mut names: Vec<(&str, &str)> = containers.to_vec();
    names.sort();
    let as_containers = |init: bool| -> Vec<Value> {
        names
            .iter()
            .filter(|(n, _)| n.starts_with('-') == init)
            .map(|(n, image)| json!({"name": n.trim_start_matches('-'), "image": image}))
            .collect()
    };
    serde_json::from_value(json!({
        "metadata": {
            "name": "test", "namespace": "default", "uid": "u1",
            "annotations": {TRIGGER_ANNOTATION: serde_json::to_string(triggers).unwrap()},
        },
        "spec": {
            "selector": {},
            "template": {"spec": {
                "containers": as_containers(false),
                "initContainers": as_containers(true),
            }},
        },
    }))
    .unwrap()
}

/// Upstream's `AnnotationReactor.ImageChanged`: the updated object, `None` when nothing is
/// written, or the error.
fn react(object: &StatefulSet, tags: &Tags) -> Result<Option<StatefulSet>, Error> {
    let Some(workload) = Workload::from_stateful_set(object) else {
        return Ok(None);
    };
    let changes = changes(&workload, tags)?;
    if changes.is_empty() {
        return Ok(None);
    }
    let mut value = serde_json::to_value(object).unwrap();
    json_patch::patch(&mut value, &patch(Kind::StatefulSet, &changes)).expect("patch applies");
    Ok(Some(serde_json::from_value(value).unwrap()))
}

fn lookup_1() -> Tags {
    Tags(vec![("other", "stream-1:1", "image-lookup-1")])
}

#[test]
fn annotation_json_path() {
    // TestAnnotationJSONPath: the canonical path parses (here: finds its container)
    let set = stateful_set(&[], &[("test", "")]);
    let spec = set.spec.unwrap().template.spec.unwrap();
    let found = field_path::container(TEST, "spec.template.spec", &spec.containers, &[]);
    assert_eq!(
        found,
        Ok(ContainerRef {
            init: false,
            index: 0
        })
    );
}

#[test]
fn annotations_reactor_object_without_annotation() {
    let set: StatefulSet =
        serde_json::from_value(json!({"metadata": {"name": "test", "namespace": "default"}}))
            .unwrap();
    assert_eq!(Workload::from_stateful_set(&set), None);
    assert_eq!(react(&set, &Tags(vec![])), Ok(None));
}

#[test]
fn annotations_reactor_no_container_is_an_error() {
    let set = stateful_set(&[trigger("stream-1:1", "other", TEST)], &[]);
    let err = react(&set, &lookup_1()).unwrap_err();
    assert_eq!(err, Error::NoSuchContainer("test".into()));
    assert_eq!(err.reason(), "TriggerContainerNotFound");
}

#[test]
fn annotations_reactor_path_without_image_is_an_error() {
    let path = "spec.template.spec.containers[?(@.name==\"test\")]";
    let set = stateful_set(&[trigger("stream-1:1", "other", path)], &[("test", "")]);
    let err = react(&set, &lookup_1()).unwrap_err();
    assert_eq!(err.reason(), "InvalidTriggerFieldPath");
    assert!(err.to_string().contains(path), "{err}");
}

#[test]
fn annotations_reactor_unclosed_selector_is_an_error() {
    let path = "spec.template.spec.containers[?(@.name==\"test\").image";
    let set = stateful_set(&[trigger("stream-1:1", "other", path)], &[("test", "")]);
    assert_eq!(
        react(&set, &lookup_1()).unwrap_err().reason(),
        "InvalidTriggerFieldPath"
    );
}

#[test]
fn annotations_reactor_selector_in_another_syntax_is_an_error() {
    let path = "spec.template.spec.containers[@.name=test].image";
    let set = stateful_set(&[trigger("stream-1:1", "other", path)], &[("test", "")]);
    assert_eq!(
        react(&set, &lookup_1()).unwrap_err(),
        Error::NoSuchContainer("@.name=test".into())
    );
}

#[test]
fn annotations_reactor_no_ref_no_change() {
    let set = stateful_set(&[trigger("stream-1:1", "other", TEST)], &[("test", "")]);
    assert_eq!(react(&set, &Tags(vec![])), Ok(None));
}

#[test]
fn annotations_reactor_resolved_without_a_change_in_another_namespace() {
    let triggers = [trigger("stream-1:1", "other", TEST)];
    let set = stateful_set(&triggers, &[("test", "")]);
    let expected = stateful_set(&triggers, &[("test", "image-lookup-1")]);
    assert_eq!(react(&set, &lookup_1()), Ok(Some(expected)));
}

#[test]
fn annotations_reactor_resolved_for_init_containers() {
    let triggers = [trigger("stream-1:1", "other", INIT_TEST)];
    let set = stateful_set(&triggers, &[("-test", "")]);
    let expected = stateful_set(&triggers, &[("-test", "image-lookup-1")]);
    assert_eq!(react(&set, &lookup_1()), Ok(Some(expected)));
}

#[test]
fn annotations_reactor_will_not_resolve_if_paused() {
    let mut paused = trigger("stream-1:1", "other", TEST);
    paused["paused"] = json!(true);
    let set = stateful_set(&[paused], &[("test", "")]);
    assert_eq!(react(&set, &lookup_1()), Ok(None));
    // and a paused trigger is not followed at all
    let workload = Workload::from_stateful_set(&set).unwrap();
    assert_eq!(workload.tags().count(), 0);
}

#[test]
fn annotations_reactor_will_fire_if_only_one_trigger_resolves() {
    let triggers = [
        trigger("stream-1:1", "other", TEST),
        trigger("stream-2:1", "other", TEST2),
    ];
    let set = stateful_set(&triggers, &[("test", ""), ("test2", "")]);
    let expected = stateful_set(&triggers, &[("test", "image-lookup-1"), ("test2", "")]);
    assert_eq!(react(&set, &lookup_1()), Ok(Some(expected)));
}

#[test]
fn annotations_reactor_will_fire_if_a_trigger_has_already_been_resolved_before() {
    let triggers = [
        trigger("stream-1:1", "other", TEST),
        trigger("stream-2:1", "other", TEST2),
    ];
    let set = stateful_set(&triggers, &[("test", ""), ("test2", "old-image")]);
    let expected = stateful_set(
        &triggers,
        &[("test", "image-lookup-1"), ("test2", "old-image")],
    );
    assert_eq!(react(&set, &lookup_1()), Ok(Some(expected)));
}

#[test]
fn annotations_reactor_will_fire_if_both_triggers_are_resolved() {
    let triggers = [
        trigger("stream-1:1", "other", TEST),
        trigger("stream-1:1", "other", TEST2),
    ];
    let set = stateful_set(&triggers, &[("test", ""), ("test2", "")]);
    let expected = stateful_set(
        &triggers,
        &[("test", "image-lookup-1"), ("test2", "image-lookup-1")],
    );
    let workload = Workload::from_stateful_set(&set).unwrap();
    // both containers in one patch: one write
    assert_eq!(changes(&workload, &lookup_1()).unwrap().len(), 2);
    assert_eq!(react(&set, &lookup_1()), Ok(Some(expected)));
}

#[test]
fn calculate_annotation_triggers_duplicates_are_not_allowed() {
    let value =
        serde_json::to_string(&[trigger("a:1", "", TEST), trigger("b:1", "", TEST)]).unwrap();
    let err = annotation::parse(&value).unwrap_err();
    assert_eq!(err, Error::DuplicateFieldPath(TEST.into()));
    assert_eq!(err.reason(), "DuplicateTriggerFieldPath");
    // paused ones count too
    let set = stateful_set(
        &[
            trigger("a:1", "", TEST),
            json!({"from": {"kind": "ImageStreamTag", "name": "b:1"}, "fieldPath": TEST, "paused": true}),
        ],
        &[("test", "")],
    );
    assert_eq!(
        Workload::from_stateful_set(&set).unwrap().follows,
        Err(Error::DuplicateFieldPath(TEST.into()))
    );
}

#[test]
fn calculate_annotation_triggers_reads_json_as_go_does() {
    // null: no triggers; unknown fields ignored; missing fields empty
    assert_eq!(annotation::parse("null"), Ok(vec![]));
    assert_eq!(annotation::parse("[]"), Ok(vec![]));
    let wild = r#"[{"from":{"kind":"ImageStreamTag","name":"app:latest","namespace":"tools"},
        "fieldPath":"spec.template.spec.containers[?(@.name==\"app\")].image","pause":"false"}]"#;
    let parsed = annotation::parse(wild).unwrap();
    assert_eq!(parsed.len(), 1);
    assert!(!parsed[0].paused);
    assert_eq!(parsed[0].from.namespace, "tools");
    // a wrongly typed field fails the annotation
    for bad in [
        "",
        "{}",
        "not json",
        r#"[{"from":{"kind":"ImageStreamTag","name":"a:b"},"fieldPath":"x","paused":"true"}]"#,
    ] {
        let err = annotation::parse(bad).unwrap_err();
        assert_eq!(err.reason(), "InvalidTriggerAnnotation", "{bad}");
    }
}

#[test]
fn what_oc_set_triggers_writes_round_trips() {
    // oc pkg/cli/set/triggers.go: kind and name, no namespace when it is the object's,
    // paused only when --manual
    let written = r#"[{"from":{"kind":"ImageStreamTag","name":"app:latest"},"fieldPath":"spec.template.spec.containers[?(@.name==\"web\")].image"}]"#;
    let parsed = annotation::parse(written).unwrap();
    assert_eq!(serde_json::to_string(&parsed).unwrap(), written);
}

#[test]
fn split_image_stream_tag() {
    assert_eq!(annotation::split_stream_tag("a:b"), Some(("a", "b")));
    assert_eq!(annotation::split_stream_tag("a:"), Some(("a", "latest")));
    assert_eq!(annotation::split_stream_tag("a:b:c"), Some(("a", "b:c")));
    assert_eq!(annotation::split_stream_tag("a"), None);
    assert_eq!(annotation::split_stream_tag(":b"), None);
    let set = stateful_set(&[trigger("nocolon", "", TEST)], &[("test", "")]);
    let follows = Workload::from_stateful_set(&set).unwrap().follows;
    assert_eq!(
        follows.unwrap_err().reason(),
        "InvalidTriggerImageStreamTag"
    );
}

#[test]
fn field_path_selectors_as_upstream_reads_them() {
    let c = |name: &str| Container {
        name: name.into(),
        image: Some(format!("{name}-image")),
        ..Container::default()
    };
    let containers = [c("a"), c("b")];
    let init = [c("i")];
    let base = "spec.template.spec";
    let at = |init, index| Ok(ContainerRef { init, index });
    let find = |path: &str| field_path::container(path, base, &containers, &init);
    assert_eq!(find("spec.template.spec.containers[1].image"), at(false, 1));
    assert_eq!(
        find("spec.template.spec.containers[+1].image"),
        at(false, 1)
    );
    assert_eq!(
        find("spec.template.spec.initContainers[0].image"),
        at(true, 0)
    );
    assert_eq!(
        find("spec.template.spec.containers[2].image"),
        Err(Error::NoSuchContainer("2".into()))
    );
    assert_eq!(
        find("spec.template.spec.containers[-1].image"),
        Err(Error::NoSuchContainer("-1".into()))
    );
    // a name is looked up among the init containers first, whichever list the path names
    assert_eq!(
        find("spec.template.spec.containers[?(@.name==\"i\")].image"),
        at(true, 0)
    );
    assert_eq!(
        find("spec.template.spec.initContainers[?(@.name==\"b\")].image"),
        at(false, 1)
    );
    // either trim alone makes it a name
    assert_eq!(
        find("spec.template.spec.containers[b\")].image"),
        at(false, 1)
    );
    for invalid in [
        "spec.template.containers[0].image",
        "spec.template.speccontainers[0].image",
        "spec.template.spec.containers[0].name",
        "spec.template.spec.containers[0]",
        "spec.template.spec.volumes[0].image",
        "spec.jobTemplate.spec.template.spec.containers[0].image",
    ] {
        assert_eq!(
            find(invalid).map_err(|e| e.reason()),
            Err("InvalidTriggerFieldPath"),
            "{invalid}"
        );
    }
}

#[test]
fn two_triggers_on_one_container_would_undo_each_other() {
    let set = stateful_set(
        &[
            trigger("a:1", "", TEST),
            trigger("b:1", "", "spec.template.spec.containers[0].image"),
        ],
        &[("test", "")],
    );
    let follows = Workload::from_stateful_set(&set).unwrap().follows;
    assert_eq!(follows, Err(Error::SameContainer("test".into())));
}

#[test]
fn other_sources_are_kept_but_not_followed() {
    let set = stateful_set(
        &[
            json!({"from": {"kind": "DockerImage", "name": "test/stream:1"}, "fieldPath": TEST}),
            json!({"from": {"kind": "ImageStreamTag", "name": "s:1", "apiVersion": "image.openshift.io/v1"}, "fieldPath": TEST2}),
        ],
        &[("test", ""), ("test2", "")],
    );
    let workload = Workload::from_stateful_set(&set).unwrap();
    assert_eq!(workload.follows, Ok(vec![]));
}

#[test]
fn a_cron_job_follows_through_its_job_template() {
    let path = "spec.jobTemplate.spec.template.spec.containers[?(@.name==\"job\")].image";
    let job: k8s_openapi::api::batch::v1::CronJob = serde_json::from_value(json!({
        "metadata": {"name": "nightly", "namespace": "ns", "annotations": {
            TRIGGER_ANNOTATION: serde_json::to_string(&[trigger("app:latest", "", path)]).unwrap(),
        }},
        "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": {
            "serviceAccountName": "runner",
            "containers": [{"name": "job", "image": "old"}],
        }}}}},
    }))
    .unwrap();
    let workload = Workload::from_cron_job(&job).unwrap();
    assert_eq!(workload.service_account, "runner");
    let tags = Tags(vec![("ns", "app:latest", "reg/ns/app@sha256:1")]);
    let changes = changes(&workload, &tags).unwrap();
    let mut value = serde_json::to_value(&job).unwrap();
    json_patch::patch(&mut value, &patch(Kind::CronJob, &changes)).unwrap();
    assert_eq!(
        value["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"],
        "reg/ns/app@sha256:1"
    );
    // the same path on a Deployment is not the pod spec's
    let deployment: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(json!({
        "metadata": {"name": "d", "namespace": "ns", "annotations": {
            TRIGGER_ANNOTATION: serde_json::to_string(&[trigger("app:latest", "", path)]).unwrap(),
        }},
        "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "job"}]}}},
    }))
    .unwrap();
    let follows = Workload::from_deployment(&deployment).unwrap().follows;
    assert_eq!(follows.unwrap_err().reason(), "InvalidTriggerFieldPath");
}

#[test]
fn the_patch_tests_the_container_name() {
    let set = stateful_set(&[trigger("stream-1:1", "other", TEST)], &[("test", "old")]);
    let workload = Workload::from_stateful_set(&set).unwrap();
    let changes = changes(&workload, &lookup_1()).unwrap();
    let ops = serde_json::to_value(patch(Kind::StatefulSet, &changes)).unwrap();
    assert_eq!(
        ops,
        json!([
            {"op": "test", "path": "/spec/template/spec/containers/0/name", "value": "test"},
            {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "image-lookup-1"},
        ])
    );
    // a list reordered since it was read: the patch fails instead of setting another container
    let mut reordered = serde_json::to_value(stateful_set(
        &[trigger("stream-1:1", "other", TEST)],
        &[("a", "x"), ("test", "old")],
    ))
    .unwrap();
    assert!(json_patch::patch(&mut reordered, &patch(Kind::StatefulSet, &changes)).is_err());
}

fn workload(name: &str, triggers: &[Value], containers: &[(&str, &str)]) -> Workload {
    let mut set = stateful_set(triggers, containers);
    set.metadata.name = Some(name.into());
    Workload::from_stateful_set(&set).unwrap()
}

fn key(name: &str) -> WorkloadKey {
    WorkloadKey {
        kind: Kind::StatefulSet,
        namespace: "default".into(),
        name: name.into(),
    }
}

#[test]
fn trigger_controller_sync_image_stream() {
    // TestTriggerControllerSyncImageStream: a workload following two tags of a stream (and a
    // DockerImage source, not followed) is queued once for a change of the stream
    let mut index = TriggerIndex::default();
    let w = workload(
        "build1",
        &[
            trigger("stream:1", "", TEST),
            trigger("stream:2", "", TEST2),
            json!({"from": {"kind": "DockerImage", "name": "test/stream:1"},
                   "fieldPath": "spec.template.spec.containers[?(@.name==\"other\")].image"}),
        ],
        &[("test", ""), ("test2", ""), ("other", "")],
    );
    assert!(index.apply(w));
    let tags = Tags(vec![
        ("default", "stream:1", "a@sha256:1"),
        ("default", "stream:2", "a@sha256:2"),
    ]);
    assert_eq!(
        index.stream_changed("default", "stream", &tags),
        vec![key("build1")]
    );
    // nothing moved: nobody is woken
    assert!(index.stream_changed("default", "stream", &tags).is_empty());
    // another stream: nobody
    assert!(index.stream_changed("default", "other", &tags).is_empty());
    // one tag moves
    let moved = Tags(vec![
        ("default", "stream:1", "a@sha256:1"),
        ("default", "stream:2", "a@sha256:3"),
    ]);
    assert_eq!(
        index.stream_changed("default", "stream", &moved),
        vec![key("build1")]
    );
}

#[test]
fn the_index_wakes_only_the_followers_of_the_tag_that_moved() {
    let mut index = TriggerIndex::default();
    index.apply(workload(
        "one",
        &[trigger("s:1", "", TEST)],
        &[("test", "")],
    ));
    index.apply(workload(
        "two",
        &[trigger("s:2", "", TEST)],
        &[("test", "")],
    ));
    index.apply(workload(
        "three",
        &[trigger("t:1", "", TEST)],
        &[("test", "")],
    ));
    let before = Tags(vec![("default", "s:1", "x1"), ("default", "s:2", "y1")]);
    assert_eq!(index.followed_tags(), 3);
    assert_eq!(
        index.stream_changed("default", "s", &before),
        vec![key("one"), key("two")]
    );
    let after = Tags(vec![("default", "s:1", "x1"), ("default", "s:2", "y2")]);
    assert_eq!(
        index.stream_changed("default", "s", &after),
        vec![key("two")]
    );
    // a deleted stream: the tags lost their image, which wakes (and writes nothing)
    assert_eq!(
        index.stream_changed("default", "s", &Tags(vec![])),
        vec![key("one"), key("two")]
    );
    // after a relist every followed stream is looked at: s moved back, t is seen first
    assert_eq!(
        index.streams_relisted(&after),
        vec![key("one"), key("three"), key("two")]
    );
    assert!(index.streams_relisted(&after).is_empty());
}

#[test]
fn the_index_follows_workload_changes() {
    // upstream's annotation indexer: added → synced; triggers changed → synced; a container
    // image a trigger sets changed → synced; anything else → not
    let mut index = TriggerIndex::default();
    let base = [trigger("s:1", "", TEST)];
    assert!(index.apply(workload("w", &base, &[("test", "a")])));
    assert!(!index.apply(workload("w", &base, &[("test", "a")])));
    assert!(!index.apply(workload("w", &base, &[("test", "a"), ("zsidecar", "b")])));
    assert!(index.apply(workload("w", &base, &[("test", "changed")])));
    let moved = [trigger("s:2", "", TEST)];
    assert!(index.apply(workload("w", &moved, &[("test", "changed")])));
    assert_eq!(
        index.followers(&TagKey {
            namespace: "default".into(),
            stream: "s".into(),
            tag: "1".into()
        }),
        vec![]
    );
    assert_eq!(
        index.followers(&TagKey {
            namespace: "default".into(),
            stream: "s".into(),
            tag: "2".into()
        }),
        vec![key("w")]
    );
    // paused: kept, follows nothing (unpausing is a change, so it catches up)
    let mut paused = trigger("s:2", "", TEST);
    paused["paused"] = json!(true);
    assert!(index.apply(workload("w", &[paused], &[("test", "changed")])));
    assert_eq!(index.followed_tags(), 0);
    assert!(index.apply(workload("w", &moved, &[("test", "changed")])));
    assert_eq!(index.followed_tags(), 1);
    // deleted
    assert!(index.delete(&key("w")));
    assert!(!index.delete(&key("w")));
    assert!(index.is_empty());
    assert_eq!(index.followed_tags(), 0);
}

#[test]
fn a_relist_replaces_the_workloads_of_its_kind() {
    let mut index = TriggerIndex::default();
    index.apply(workload(
        "keep",
        &[trigger("s:1", "", TEST)],
        &[("test", "")],
    ));
    index.apply(workload(
        "gone",
        &[trigger("s:1", "", TEST)],
        &[("test", "")],
    ));
    let cron = Workload {
        key: WorkloadKey {
            kind: Kind::CronJob,
            namespace: "default".into(),
            name: "c".into(),
        },
        uid: String::new(),
        service_account: "default".into(),
        follows: Ok(vec![]),
    };
    index.apply(cron.clone());
    let synced = index.reset(
        Kind::StatefulSet,
        vec![
            workload("keep", &[trigger("s:1", "", TEST)], &[("test", "")]),
            workload("new", &[trigger("s:1", "", TEST)], &[("test", "")]),
        ],
    );
    assert_eq!(synced, vec![key("new")]);
    assert!(index.get(&key("gone")).is_none());
    assert_eq!(index.get(&cron.key), Some(&cron));
    assert_eq!(index.len(), 3);
}

#[test]
fn cross_namespace_triggers_are_reviewed_for_the_pods_service_account() {
    let set = stateful_set(
        &[
            trigger("stream-1:1", "other", TEST),
            trigger("own:1", "", TEST2),
        ],
        &[("test", ""), ("test2", "")],
    );
    let w = Workload::from_stateful_set(&set).unwrap();
    let tags = Tags(vec![
        ("other", "stream-1:1", "a"),
        ("default", "own:1", "b"),
    ]);
    let changes = changes(&w, &tags).unwrap();
    assert_eq!(
        access::needed(&w, &changes).into_iter().collect::<Vec<_>>(),
        vec![("other".to_string(), "stream-1".to_string())]
    );
    let review = serde_json::to_value(access::review(&w, "other", "stream-1")).unwrap();
    assert_eq!(
        review,
        json!({
            "user": "system:serviceaccount:default:default",
            "groups": ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"],
            "resourceAttributes": {
                "namespace": "other", "verb": "get", "group": "image.openshift.io",
                "resource": "imagestreams", "subresource": "layers", "name": "stream-1",
            },
        })
    );
}

fn stream(value: Value) -> ImageStream {
    serde_json::from_value(value).unwrap()
}

#[test]
fn resolve_latest_tagged_image() {
    let d1 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let s = stream(json!({
        "metadata": {"name": "app", "namespace": "ns"},
        "spec": {"tags": [
            {"name": "local", "referencePolicy": {"type": "Local"}},
            {"name": "source", "referencePolicy": {"type": "Source"}},
            {"name": "pending", "from": {"kind": "DockerImage", "name": "quay.io/a/b:1"}},
        ]},
        "status": {"dockerImageRepository": "registry.local/ns/app", "tags": [
            {"tag": "local", "items": [{"created": "2026-01-01T00:00:00Z", "dockerImageReference": format!("quay.io/a/b@{d1}"), "image": d1, "generation": 1}]},
            {"tag": "source", "items": [{"created": "2026-01-01T00:00:00Z", "dockerImageReference": format!("quay.io/a/b@{d1}"), "image": d1, "generation": 1}]},
            {"tag": "latest", "items": [{"created": "2026-01-01T00:00:00Z", "dockerImageReference": format!("quay.io/a/c@{d1}"), "image": d1, "generation": 1}]},
        ]},
    }));
    assert_eq!(
        current_pull_spec(&s, "local").as_deref(),
        Some(format!("registry.local/ns/app@{d1}").as_str())
    );
    assert_eq!(
        current_pull_spec(&s, "source").as_deref(),
        Some(format!("quay.io/a/b@{d1}").as_str())
    );
    // a status tag without a spec tag; the empty tag is latest
    assert_eq!(
        current_pull_spec(&s, "").as_deref(),
        Some(format!("quay.io/a/c@{d1}").as_str())
    );
    // no history yet: nothing, never a guess
    assert_eq!(current_pull_spec(&s, "pending"), None);
    assert_eq!(current_pull_spec(&s, "missing"), None);
    // Local without a repository: the entry's own pull spec
    let mut no_repository = s.clone();
    no_repository
        .status
        .as_mut()
        .unwrap()
        .docker_image_repository
        .clear();
    assert_eq!(
        current_pull_spec(&no_repository, "local").as_deref(),
        Some(format!("quay.io/a/b@{d1}").as_str())
    );
}
