//! `lookupPolicy.local` end to end: the whole operator under its ServiceAccount (webhooks
//! registered by `url:`, limited to the test's namespace), a real registry, a real
//! kube-apiserver, and the real `kubectl` and `oc`. Pods and pod templates that name a stream
//! by its short name are stored with the imported digest; everything else is stored as
//! written; with the operator gone, Pods are still admitted, unchanged and at once.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use imagestream_operator::admission::registration::LOOKUP_TIMEOUT_SECONDS;
use imagestream_operator::api::image_stream::{ImageStream, TagEvent};
use support::cluster;
use support::images::{ImageSpec, TestImage};
use support::operator::Running;
use support::registry::{RegistryOptions, TestRegistry};

const RESOLVE_NAMES: &str = "alpha.image.policy.openshift.io/resolve-names";

async fn push(reg: &TestRegistry, repo: &str, tag: &str, seed: u64) -> String {
    let image: TestImage = ImageSpec::single("amd64", seed).build().into();
    reg.client().push(repo, tag, &image).await.expect("push")
}

/// Creates stream `name` importing `from` as tag `v1`, with `lookupPolicy.local: local`, and
/// returns the tag's event once imported.
async fn imported_stream(api: &Api<ImageStream>, name: &str, from: &str, local: bool) -> TagEvent {
    let stream: ImageStream = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": name},
        "spec": {"lookupPolicy": {"local": local}, "tags": [{"name": "v1",
            "from": {"kind": "DockerImage", "name": from}, "importPolicy": {"insecure": true}}]},
    }))
    .expect("stream");
    api.create(&PostParams::default(), &stream)
        .await
        .expect("create stream");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stream = api.get(name).await.expect("get stream");
        let event = stream
            .status
            .as_ref()
            .and_then(|s| s.tag("v1"))
            .and_then(|t| t.items.first())
            .filter(|e| !e.image.is_empty());
        if let Some(event) = event {
            return event.clone();
        }
        assert!(Instant::now() < deadline, "{name}:v1 not imported");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn pod(name: &str, images: &[&str], annotations: Value) -> Pod {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"containers": containers, "initContainers": [{"name": "init", "image": images[0]}]},
    }))
    .expect("pod")
}

fn deployment(name: &str, images: &[&str], template_annotations: Value) -> Deployment {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": template_annotations},
                "spec": {"containers": containers},
            },
        },
    }))
    .expect("deployment")
}

fn images(pod: &Pod) -> Vec<String> {
    let spec = pod.spec.as_ref().expect("spec");
    spec.containers
        .iter()
        .map(|c| c.image.clone().unwrap_or_default())
        .collect()
}

fn template_images(deployment: &Deployment) -> Vec<String> {
    let spec = deployment.spec.as_ref().expect("spec");
    let pod = spec.template.spec.as_ref().expect("template spec");
    pod.containers
        .iter()
        .map(|c| c.image.clone().unwrap_or_default())
        .collect()
}

/// Dry-run creates Pods until one with `image` is stored as `expected`: the index follows the
/// streams' watch, a moment behind the test's own reads.
async fn until_resolved(pods: &Api<Pod>, image: &str, annotations: Value, expected: &str) {
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stored = pods
            .create(&dry_run, &pod("probe", &[image], annotations.clone()))
            .await
            .expect("dry-run create");
        if images(&stored) == [expected] {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{image} not resolved to {expected}: {:?}",
            images(&stored)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the imported event resolves to: its pull spec by digest.
fn by_digest(event: &TagEvent) -> String {
    assert!(
        event
            .docker_image_reference
            .ends_with(&format!("@{}", event.image)),
        "{event:?}"
    );
    event.docker_image_reference.clone()
}

/// Runs a client without blocking the runtime the operator answers on.
async fn run(command: Command) -> (bool, String) {
    let output = tokio::process::Command::from(command)
        .output()
        .await
        .expect("run the client");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

async fn kubectl(namespace: &str, args: &[&str]) -> (bool, String) {
    let mut command = cluster::cluster().await.kubectl();
    command.args(["-n", namespace]).args(args);
    run(command).await
}

/// The real `oc` 4.20 (`../shared/tools/oc/oc`) as admin.
async fn oc(namespace: &str, args: &[&str]) -> (bool, String) {
    let cluster = cluster::cluster().await;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/tools/oc/oc");
    let mut command = Command::new(path);
    command
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["-n", namespace])
        .args(args);
    run(command).await
}

/// A Pod, a Deployment, an update and an ephemeral container naming `app:v1` (a stream with
/// `lookupPolicy.local`) are stored with the digest; `plain:v1` (a stream without it), other
/// names and other registries as written, until `kubectl patch` turns lookup on for `plain`.
#[tokio::test]
async fn short_names_resolve_through_streams_with_local_lookup() {
    let reg = RegistryOptions::plain().start();
    push(&reg, "app", "v1", 1501).await;
    push(&reg, "plain", "v1", 1502).await;
    let op = Running::start("lookup-local").await;
    let streams = op.streams();
    let app = by_digest(&imported_stream(&streams, "app", &reg.image_ref("app", "v1"), true).await);
    let plain =
        by_digest(&imported_stream(&streams, "plain", &reg.image_ref("plain", "v1"), false).await);
    let pods: Api<Pod> = Api::namespaced(op.admin.clone(), &op.namespace);
    until_resolved(&pods, "app:v1", json!({}), &app).await;
    until_resolved(&pods, "plain:v1", json!({RESOLVE_NAMES: "*"}), &plain).await;

    let other_registry = reg.image_ref("app", "v1");
    let written = [
        "app:v1",
        "plain:v1",
        "app:v2",
        "mysql",
        other_registry.as_str(),
        "docker.io/library/app:v1",
    ];
    let stored = pods
        .create(&PostParams::default(), &pod("web", &written, json!({})))
        .await
        .expect("create pod");
    let mut expected: Vec<String> = written.iter().map(ToString::to_string).collect();
    expected[0] = app.clone();
    assert_eq!(images(&stored), expected);
    assert_eq!(images(&pods.get("web").await.expect("get pod")), expected);
    let init = &stored
        .spec
        .as_ref()
        .unwrap()
        .init_containers
        .as_ref()
        .unwrap()[0];
    assert_eq!(init.image.as_deref(), Some(app.as_str()));

    // an update that names a stream: resolved; the containers it leaves alone: as they were
    let patch = json!({"spec": {"containers": [{"name": "c2", "image": "app:v1"}]}});
    let updated = pods
        .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .expect("update pod image");
    expected[2] = app.clone();
    assert_eq!(images(&updated), expected);

    // an ephemeral container (what `kubectl debug --image=app:v1` adds)
    let debug = json!({"spec": {"ephemeralContainers": [
        {"name": "debug", "image": "app:v1", "targetContainerName": "c0"}]}});
    let with_debug = pods
        .patch_subresource(
            "ephemeralcontainers",
            "web",
            &PatchParams::default(),
            &Patch::Strategic(&debug),
        )
        .await
        .expect("add an ephemeral container");
    let ephemeral = with_debug
        .spec
        .as_ref()
        .and_then(|s| s.ephemeral_containers.as_ref())
        .expect("ephemeral containers");
    assert_eq!(ephemeral[0].image.as_deref(), Some(app.as_str()));
    assert_eq!(
        images(&with_debug),
        expected,
        "the containers are untouched"
    );

    let deployments: Api<Deployment> = Api::namespaced(op.admin.clone(), &op.namespace);
    let stored = deployments
        .create(
            &PostParams::default(),
            &deployment("web", &["app:v1", "plain:v1", "nginx:1.27"], json!({})),
        )
        .await
        .expect("create deployment");
    assert_eq!(
        template_images(&stored),
        [app.as_str(), "plain:v1", "nginx:1.27"]
    );

    // `kubectl patch is plain --type=merge` turns lookup on (oc set image-lookup plain cannot:
    // it sends a strategic merge patch)
    let (ok, out) = oc(&op.namespace, &["set", "image-lookup", "plain"]).await;
    assert!(!ok, "oc set image-lookup STREAM: {out}");
    assert!(out.contains("failed to patch image lookup"), "{out}");
    let (ok, out) = kubectl(
        &op.namespace,
        &[
            "patch",
            "is",
            "plain",
            "--type=merge",
            "-p",
            r#"{"spec":{"lookupPolicy":{"local":true}}}"#,
        ],
    )
    .await;
    assert!(ok, "kubectl patch: {out}");
    until_resolved(&pods, "plain:v1", json!({}), &plain).await;
    let stored = pods
        .create(
            &PostParams::default(),
            &pod("web2", &["plain:v1"], json!({})),
        )
        .await
        .expect("create pod");
    assert_eq!(images(&stored), [plain.as_str()]);
    op.finish().await;
}

/// `alpha.image.policy.openshift.io/resolve-names: "*"` resolves through a stream without
/// `lookupPolicy.local`: on the template, through `oc set image-lookup deploy/NAME`, and
/// through `kubectl annotate` on the object.
#[tokio::test]
async fn resolve_names_annotation_resolves_without_lookup_policy() {
    let reg = RegistryOptions::plain().start();
    push(&reg, "plain", "v1", 1511).await;
    let op = Running::start("lookup-annotation").await;
    let streams = op.streams();
    let plain =
        by_digest(&imported_stream(&streams, "plain", &reg.image_ref("plain", "v1"), false).await);
    let pods: Api<Pod> = Api::namespaced(op.admin.clone(), &op.namespace);
    until_resolved(&pods, "plain:v1", json!({RESOLVE_NAMES: "*"}), &plain).await;
    let deployments: Api<Deployment> = Api::namespaced(op.admin.clone(), &op.namespace);

    let annotated = deployments
        .create(
            &PostParams::default(),
            &deployment("annotated", &["plain:v1"], json!({RESOLVE_NAMES: "*"})),
        )
        .await
        .expect("create deployment");
    assert_eq!(template_images(&annotated), [plain.as_str()]);
    // the annotation resolves any name through the stream of its last segment
    let full = reg.image_ref("elsewhere/plain", "v1");
    let stored = pods
        .create(
            &PostParams::default(),
            &pod("full", &[&full], json!({RESOLVE_NAMES: "*"})),
        )
        .await
        .expect("create pod");
    assert_eq!(images(&stored), [plain.as_str()]);

    for (name, client) in [("by-oc", "oc"), ("by-kubectl", "kubectl")] {
        let created = deployments
            .create(
                &PostParams::default(),
                &deployment(name, &["plain:v1"], json!({})),
            )
            .await
            .expect("create deployment");
        assert_eq!(template_images(&created), ["plain:v1"], "{name}");
        let (ok, out) = match client {
            "oc" => {
                oc(
                    &op.namespace,
                    &["set", "image-lookup", &format!("deploy/{name}")],
                )
                .await
            }
            _ => {
                kubectl(
                    &op.namespace,
                    &[
                        "annotate",
                        &format!("deploy/{name}"),
                        &format!("{RESOLVE_NAMES}=*"),
                    ],
                )
                .await
            }
        };
        assert!(ok, "{client}: {out}");
        let updated = deployments.get(name).await.expect("get deployment");
        assert_eq!(template_images(&updated), [plain.as_str()], "{client}");
    }
    op.finish().await;
}

/// With the operator stopped and its webhooks still registered, the apiserver cannot reach
/// the lookup webhook: Pods are admitted as written, without waiting for its timeout.
#[tokio::test]
async fn a_stopped_operator_admits_pods_unchanged_and_fast() {
    let reg = RegistryOptions::plain().start();
    push(&reg, "app", "v1", 1521).await;
    let mut op = Running::start("lookup-down").await;
    let streams = op.streams();
    let app = by_digest(&imported_stream(&streams, "app", &reg.image_ref("app", "v1"), true).await);
    let pods: Api<Pod> = Api::namespaced(op.admin.clone(), &op.namespace);
    until_resolved(&pods, "app:v1", json!({}), &app).await;

    op.stop_keeping_webhooks().await;
    for i in 0..3 {
        let started = Instant::now();
        let stored = pods
            .create(
                &PostParams::default(),
                &pod(&format!("down-{i}"), &["app:v1"], json!({})),
            )
            .await
            .expect("a Pod is admitted without the webhook");
        let took = started.elapsed();
        assert_eq!(images(&stored), ["app:v1"]);
        println!("create with the webhook down: {took:?}");
        assert!(
            took < Duration::from_secs(LOOKUP_TIMEOUT_SECONDS as u64),
            "took {took:?}: the apiserver waited for the webhook"
        );
    }
    op.finish().await;
}
