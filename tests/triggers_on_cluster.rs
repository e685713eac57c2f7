//! Image change triggers (issue 15): the whole operator under its ServiceAccount, the real
//! registry, and kube-controller-manager in the harness, so a patched Deployment really rolls
//! out a new ReplicaSet. Workloads are annotated as users do it: by hand, with
//! `kubectl annotate`, and with OpenShift's `oc set triggers`.

mod support;

use std::future::Future;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use imagestream_operator::api::image_stream::ImageStream;
use imagestream_operator::api::image_stream_import::ImageStreamImport;
use imagestream_operator::controller::{self, Metrics, Settings};
use imagestream_operator::trigger::TRIGGER_ANNOTATION;
use support::cluster;
use support::images::{ImageSpec, TestImage};
use support::operator::{Running, items};
use support::registry::{RegistryOptions, TestRegistry};

const WAIT: Duration = Duration::from_secs(60);

/// Polls `check` until it answers, for at most `within`.
async fn until<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(state) if Instant::now() >= deadline => {
                panic!("{what}: not within {within:?}; last seen: {state}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn push(reg: &TestRegistry, repo: &str, tag: &str, seed: u64) -> String {
    let image: TestImage = ImageSpec::single("amd64", seed).build().into();
    reg.client().push(repo, tag, &image).await.expect("push")
}

/// Creates stream `name` with tag `latest` from `from` and returns its first pull spec.
async fn imported_stream(api: &Api<ImageStream>, name: &str, from: &str, digest: &str) -> String {
    let stream: ImageStream = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": name},
        "spec": {"tags": [{"name": "latest", "from": {"kind": "DockerImage", "name": from},
                           "importPolicy": {"insecure": true}}]},
    }))
    .expect("stream");
    api.create(&PostParams::default(), &stream)
        .await
        .expect("create stream");
    current(api, name, digest).await
}

/// Waits until the stream's `latest` points at `digest`; its pull spec.
async fn current(api: &Api<ImageStream>, name: &str, digest: &str) -> String {
    until("the tag imports", WAIT, || async {
        let stream = api.get(name).await.map_err(|e| e.to_string())?;
        match items(&stream, "latest").first() {
            Some(e) if e.image == digest => Ok(e.docker_image_reference.clone()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

/// What `oc import-image STREAM:latest` does: an `import: true` ImageStreamImport of the
/// tag's source; removed again once answered.
async fn reimport(admin: &Client, namespace: &str, stream: &str, from: &str) {
    let requests: Api<ImageStreamImport> = Api::namespaced(admin.clone(), namespace);
    let isi: ImageStreamImport = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStreamImport",
        "metadata": {"name": stream},
        "spec": {"import": true, "images": [{"from": {"kind": "DockerImage", "name": from},
                 "to": {"name": "latest"}, "importPolicy": {"insecure": true}}]},
    }))
    .expect("request");
    requests
        .create(&PostParams::default(), &isi)
        .await
        .expect("create request");
    until("the import is answered", WAIT, || async {
        let r = requests.get(stream).await.map_err(|e| e.to_string())?;
        r.status.map(|_| ()).ok_or_else(|| "no status".to_string())
    })
    .await;
    requests
        .delete(stream, &DeleteParams::default())
        .await
        .expect("remove request");
    until("the request is removed", WAIT, || async {
        match requests.get_opt(stream).await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

fn by_name(tag: &str, container: &str) -> Value {
    json!({"from": {"kind": "ImageStreamTag", "name": tag},
           "fieldPath": format!("spec.template.spec.containers[?(@.name==\"{container}\")].image")})
}

fn deployment(name: &str, triggers: Option<String>, containers: Value) -> Deployment {
    let annotations = triggers.map(|t| json!({ TRIGGER_ANNOTATION: t }));
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": containers}},
        },
    }))
    .expect("deployment")
}

fn images(spec: Option<&PodSpec>) -> Vec<String> {
    spec.map(|s| {
        s.init_containers
            .iter()
            .flatten()
            .chain(&s.containers)
            .map(|c| c.image.clone().unwrap_or_default())
            .collect()
    })
    .unwrap_or_default()
}

fn deployment_images(d: &Deployment) -> Vec<String> {
    images(d.spec.as_ref().and_then(|s| s.template.spec.as_ref()))
}

/// Waits until Deployment `name` shows `expected`; returns it.
async fn deployment_at(api: &Api<Deployment>, name: &str, expected: &[&str]) -> Deployment {
    until(
        &format!("Deployment {name} shows {expected:?}"),
        WAIT,
        || async {
            let d = api.get(name).await.map_err(|e| e.to_string())?;
            if deployment_images(&d) == expected {
                Ok(d)
            } else {
                Err(format!("{:?}", deployment_images(&d)))
            }
        },
    )
    .await
}

/// The images of the ReplicaSets kube-controller-manager made for `deployment`.
async fn replica_sets(admin: &Client, deployment: &Deployment) -> Vec<Vec<String>> {
    let uid = deployment.uid().unwrap_or_default();
    let mut sets: Vec<ReplicaSet> =
        Api::<ReplicaSet>::namespaced(admin.clone(), &deployment.namespace().unwrap_or_default())
            .list(&ListParams::default())
            .await
            .expect("list ReplicaSets")
            .items
            .into_iter()
            .filter(|r| r.owner_references().iter().any(|o| o.uid == uid))
            .collect();
    sets.sort_by_key(|r| r.metadata.creation_timestamp.clone().map(|t| t.0));
    sets.iter()
        .map(|r| {
            images(
                r.spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref()?.spec.as_ref()),
            )
        })
        .collect()
}

fn generation(d: &Deployment) -> i64 {
    d.metadata.generation.unwrap_or_default()
}

async fn set_annotation(api: &Api<Deployment>, name: &str, triggers: &Value) {
    let patch = json!({"metadata": {"annotations": {TRIGGER_ANNOTATION: triggers.to_string()}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate");
}

fn trigger_patches(metrics: &Metrics) -> u64 {
    Metrics::get(&metrics.trigger_patches)
}

/// A Deployment with two containers following `app:latest` (one by name, one by index) gets
/// the imported pull spec in one patch and kube-controller-manager rolls out its ReplicaSet;
/// when the tag moves in the registry and is imported again it gets the new one in one more
/// patch and a second ReplicaSet; paused it stays while the tag moves, unpaused it catches up.
/// Exactly one write per move, none while paused.
#[tokio::test]
async fn a_deployment_follows_its_tag_rolls_out_and_pauses() {
    let reg = RegistryOptions::plain().start();
    let from = reg.image_ref("app", "latest");
    let d1 = push(&reg, "app", "latest", 901).await;
    let op = Running::start("trig-deploy").await;
    let streams = op.streams();
    let ref1 = imported_stream(&streams, "app", &from, &d1).await;

    let deployments: Api<Deployment> = Api::namespaced(op.admin.clone(), &op.namespace);
    let triggers = json!([
        by_name("app:latest", "web"),
        {"from": {"kind": "ImageStreamTag", "name": "app:latest"},
         "fieldPath": "spec.template.spec.containers[1].image"},
    ]);
    let containers = json!([{"name": "web", "image": "app:latest"},
                            {"name": "sidecar", "image": "app:latest"}]);
    deployments
        .create(
            &PostParams::default(),
            &deployment("web", Some(triggers.to_string()), containers),
        )
        .await
        .expect("create deployment");
    let web = deployment_at(&deployments, "web", &[&ref1, &ref1]).await;
    assert_eq!(generation(&web), 2, "both containers in one patch");
    // (kube-controller-manager may have rolled out the placeholder first)
    let rolled_out = |r: String| {
        let (admin, web) = (op.admin.clone(), web.clone());
        async move {
            until(&format!("a ReplicaSet of {r}"), WAIT, || async {
                let sets = replica_sets(&admin, &web).await;
                sets.contains(&vec![r.clone(), r.clone()])
                    .then_some(sets.len())
                    .ok_or(format!("{sets:?}"))
            })
            .await
        }
    };
    let first = rolled_out(ref1.clone()).await;

    // the tag moves in the registry
    let d2 = push(&reg, "app", "latest", 902).await;
    reimport(&op.admin, &op.namespace, "app", &from).await;
    let ref2 = current(&streams, "app", &d2).await;
    assert_ne!(ref1, ref2);
    let web = deployment_at(&deployments, "web", &[&ref2, &ref2]).await;
    assert_eq!(generation(&web), 3);
    assert_eq!(
        rolled_out(ref2.clone()).await,
        first + 1,
        "one new ReplicaSet"
    );
    assert_eq!(trigger_patches(&op.metrics), 2);

    // paused: the tag moves, the Deployment stays
    let mut paused = triggers.clone();
    for t in paused.as_array_mut().expect("list") {
        t["paused"] = json!(true);
    }
    set_annotation(&deployments, "web", &paused).await;
    // (a Deployment's annotations count in its generation)
    let paused_at = generation(&deployments.get("web").await.expect("get"));
    // the operator's watch sees the annotation well before the import below finishes
    tokio::time::sleep(Duration::from_secs(2)).await;
    let d3 = push(&reg, "app", "latest", 903).await;
    reimport(&op.admin, &op.namespace, "app", &from).await;
    let ref3 = current(&streams, "app", &d3).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = deployments.get("web").await.expect("get");
    assert_eq!(deployment_images(&still), [ref2.clone(), ref2.clone()]);
    assert_eq!(generation(&still), paused_at);
    assert_eq!(trigger_patches(&op.metrics), 2);

    // unpaused: it catches up, in one patch
    set_annotation(&deployments, "web", &triggers).await;
    let web = deployment_at(&deployments, "web", &[&ref3, &ref3]).await;
    assert_eq!(
        generation(&web),
        paused_at + 2,
        "the annotation, then one patch"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(trigger_patches(&op.metrics), 3);
    op.finish().await;
}

fn oc() -> Command {
    let path = std::env::var_os("IMAGESTREAM_OC")
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/tools/oc/oc").into());
    Command::new(path)
}

/// A StatefulSet annotated by `oc set triggers` (an init container and a container, both by
/// name as oc writes them) and a CronJob annotated with `kubectl annotate` follow the tag
/// like a Deployment.
#[tokio::test]
async fn stateful_sets_and_cron_jobs_follow_too() {
    let reg = RegistryOptions::plain().start();
    let from = reg.image_ref("app", "latest");
    let d1 = push(&reg, "app", "latest", 911).await;
    let op = Running::start("trig-kinds").await;
    let streams = op.streams();
    let ref1 = imported_stream(&streams, "app", &from, &d1).await;
    let kubeconfig = cluster::cluster().await.kubeconfig().to_path_buf();

    let sets: Api<StatefulSet> = Api::namespaced(op.admin.clone(), &op.namespace);
    let set: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {
                "initContainers": [{"name": "migrate", "image": "placeholder"}],
                "containers": [{"name": "db", "image": "placeholder"},
                               {"name": "exporter", "image": "exporter:1"}],
            }},
        },
    }))
    .expect("statefulset");
    sets.create(&PostParams::default(), &set)
        .await
        .expect("create statefulset");
    let out = oc()
        .args(["--kubeconfig"])
        .arg(&kubeconfig)
        .args(["-n", &op.namespace, "set", "triggers", "statefulset/db"])
        .args(["--from-image=app:latest", "-c", "db,migrate"])
        .output()
        .expect("run oc");
    assert!(
        out.status.success(),
        "oc set triggers: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let jobs: Api<CronJob> = Api::namespaced(op.admin.clone(), &op.namespace);
    let job: CronJob = serde_json::from_value(json!({
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "0 0 1 1 *", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "report", "image": "placeholder"}],
        }}}}},
    }))
    .expect("cronjob");
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("create cronjob");
    let annotation = json!([{"from": {"kind": "ImageStreamTag", "name": "app:latest"},
        "fieldPath": "spec.jobTemplate.spec.template.spec.containers[?(@.name==\"report\")].image"}]);
    let status = Command::new("kubectl")
        .env("KUBECONFIG", &kubeconfig)
        .args(["-n", &op.namespace, "annotate", "cronjob/nightly"])
        .arg(format!("{TRIGGER_ANNOTATION}={annotation}"))
        .status()
        .expect("run kubectl");
    assert!(status.success());

    let set_images =
        |s: &StatefulSet| images(s.spec.as_ref().and_then(|s| s.template.spec.as_ref()));
    let job_images = |c: &CronJob| {
        images(
            c.spec
                .as_ref()
                .and_then(|s| s.job_template.spec.as_ref())
                .and_then(|s| s.template.spec.as_ref()),
        )
    };
    let both_at = |r: String| {
        let (sets, jobs) = (sets.clone(), jobs.clone());
        async move {
            until(&format!("both at {r}"), WAIT, || async {
                let s = sets.get("db").await.map_err(|e| e.to_string())?;
                let c = jobs.get("nightly").await.map_err(|e| e.to_string())?;
                let seen = (set_images(&s), job_images(&c));
                if seen
                    == (
                        vec![r.clone(), r.clone(), "exporter:1".into()],
                        vec![r.clone()],
                    )
                {
                    Ok(s)
                } else {
                    Err(format!("{seen:?}"))
                }
            })
            .await
        }
    };
    let db = both_at(ref1.clone()).await;
    // what oc wrote: both by name, the init container too
    let written = db.annotations()[TRIGGER_ANNOTATION].clone();
    assert!(
        written.contains(r#"containers[?(@.name==\"migrate\")].image"#),
        "{written}"
    );

    let d2 = push(&reg, "app", "latest", 912).await;
    reimport(&op.admin, &op.namespace, "app", &from).await;
    let ref2 = current(&streams, "app", &d2).await;
    both_at(ref2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        trigger_patches(&op.metrics),
        4,
        "one patch per workload per move"
    );
    op.finish().await;
}

/// An annotation that is not JSON, and one that names no container of the object: a Warning
/// Event on the Deployment with a stable reason, published once, and no write, also when the
/// tag moves. Fixed, the annotation is followed.
#[tokio::test]
async fn a_malformed_annotation_is_an_event_and_no_write() {
    let reg = RegistryOptions::plain().start();
    let from = reg.image_ref("app", "latest");
    let d1 = push(&reg, "app", "latest", 921).await;
    let op = Running::start("trig-bad").await;
    let streams = op.streams();
    let ref1 = imported_stream(&streams, "app", &from, &d1).await;
    let deployments: Api<Deployment> = Api::namespaced(op.admin.clone(), &op.namespace);
    let web = json!([{"name": "web", "image": "placeholder"}]);
    for (name, annotation) in [
        ("broken", "[{\"from\": ".to_string()),
        (
            "unknown",
            json!([by_name("app:latest", "nope")]).to_string(),
        ),
    ] {
        deployments
            .create(
                &PostParams::default(),
                &deployment(name, Some(annotation), web.clone()),
            )
            .await
            .expect("create deployment");
    }
    for (name, reason) in [
        ("broken", "InvalidTriggerAnnotation"),
        ("unknown", "TriggerContainerNotFound"),
    ] {
        until(&format!("a {reason} Event"), WAIT, || async {
            let events =
                cluster::events(&op.admin, &op.namespace, "Deployment", name, reason).await;
            (!events.is_empty())
                .then_some(())
                .ok_or_else(|| "none".to_string())
        })
        .await;
    }
    let d2 = push(&reg, "app", "latest", 922).await;
    reimport(&op.admin, &op.namespace, "app", &from).await;
    let ref2 = current(&streams, "app", &d2).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for name in ["broken", "unknown"] {
        let d = deployments.get(name).await.expect("get");
        // (kube-controller-manager writes their status)
        assert_eq!(generation(&d), 1, "{name} was written");
        assert!(
            d.managed_fields()
                .iter()
                .all(|f| f.manager.as_deref() != Some(controller::trigger::MANAGER)),
            "{name} was written"
        );
        assert_eq!(deployment_images(&d), ["placeholder"]);
    }
    assert_eq!(trigger_patches(&op.metrics), 0);
    let once = cluster::events(
        &op.admin,
        &op.namespace,
        "Deployment",
        "unknown",
        "TriggerContainerNotFound",
    )
    .await;
    assert_eq!(once.len(), 1, "{once:?}");
    assert_eq!(once[0].type_.as_deref(), Some("Warning"));
    assert_eq!(once[0].series, None, "published once: {once:?}");

    // fixed: followed at once
    set_annotation(
        &deployments,
        "unknown",
        &json!([by_name("app:latest", "web")]),
    )
    .await;
    deployment_at(&deployments, "unknown", &[&ref2]).await;
    assert_ne!(ref1, ref2);
    op.finish().await;
}

/// Workloads already behind their tag when the operator starts are brought up to date once;
/// those in step are not written.
#[tokio::test]
async fn workloads_behind_their_tag_catch_up_at_start() {
    let reg = RegistryOptions::plain().start();
    let from = reg.image_ref("app", "latest");
    let d1 = push(&reg, "app", "latest", 931).await;
    let op = Running::start("trig-start").await;
    let (admin, namespace) = (op.admin.clone(), op.namespace.clone());
    let ref1 = imported_stream(&op.streams(), "app", &from, &d1).await;
    op.finish().await;

    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &namespace);
    let follows = Some(json!([by_name("app:latest", "web")]).to_string());
    for (name, image) in [("behind", "placeholder"), ("in-step", ref1.as_str())] {
        deployments
            .create(
                &PostParams::default(),
                &deployment(
                    name,
                    follows.clone(),
                    json!([{"name": "web", "image": image}]),
                ),
            )
            .await
            .expect("create deployment");
    }
    // the controllers again, as the operator's account (its roles are still bound)
    let account = cluster::cluster()
        .await
        .service_account_client(&namespace, "operator")
        .await;
    let metrics = std::sync::Arc::new(Metrics::default());
    let options = controller::Options {
        namespace: namespace.clone(),
        watch_namespace: Some(namespace.clone()),
        settings: Some(Settings::default()),
        concurrency: 4,
        metrics: metrics.clone(),
        pruner: None,
        ..controller::Options::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let client = account.client.clone();
    let task = tokio::spawn(async move {
        controller::run(client, options, async move {
            let _ = stopped.await;
        })
        .await
    });
    let behind = deployment_at(&deployments, "behind", &[&ref1]).await;
    assert_eq!(generation(&behind), 2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let in_step = deployments.get("in-step").await.expect("get");
    assert_eq!(generation(&in_step), 1);
    assert_eq!(trigger_patches(&metrics), 1);
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the controllers stop")
        .expect("task")
        .expect("the controllers end without error");
    drop(account);
}

/// A trigger on a tag in another namespace: refused (a `TriggerForbidden` Event, no write)
/// until the Deployment's namespace may pull from that stream, then followed without
/// anything else changing. Cluster-wide, so on a cluster of its own.
#[tokio::test]
async fn a_tag_in_another_namespace_once_the_namespace_may_read_it() {
    let reg = RegistryOptions::plain().start();
    let from = reg.image_ref("app", "latest");
    let d1 = push(&reg, "app", "latest", 941).await;
    let own = cluster::TestCluster::start().await;
    let op = Running::start_cluster_wide(&own, "trig-cross").await;
    let source = cluster::fresh_namespace(&op.admin, "trig-source").await;
    op.serve(&source).await;
    let streams: Api<ImageStream> = Api::namespaced(op.admin.clone(), &source);
    let ref1 = imported_stream(&streams, "app", &from, &d1).await;

    let deployments: Api<Deployment> = Api::namespaced(op.admin.clone(), &op.namespace);
    let triggers = json!([{"from": {"kind": "ImageStreamTag", "name": "app:latest", "namespace": source},
        "fieldPath": "spec.template.spec.containers[?(@.name==\"web\")].image"}]);
    deployments
        .create(
            &PostParams::default(),
            &deployment(
                "web",
                Some(triggers.to_string()),
                json!([{"name": "web", "image": "placeholder"}]),
            ),
        )
        .await
        .expect("create deployment");
    let events = until("a TriggerForbidden Event", WAIT, || async {
        let events = cluster::events(
            &op.admin,
            &op.namespace,
            "Deployment",
            "web",
            "TriggerForbidden",
        )
        .await;
        (!events.is_empty())
            .then_some(events)
            .ok_or_else(|| "none".to_string())
    })
    .await;
    let note = events[0].note.clone().unwrap_or_default();
    assert!(
        note.contains(&format!("system:serviceaccount:{}:default", op.namespace)),
        "{note}"
    );
    let web = deployments.get("web").await.expect("get");
    assert_eq!(deployment_images(&web), ["placeholder"]);
    assert_eq!(generation(&web), 1);

    // the namespace's service accounts may pull from the stream (as system:image-puller)
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "puller"},
        "rules": [{"apiGroups": ["image.openshift.io"], "resources": ["imagestreams/layers"],
                   "verbs": ["get"]}],
    }))
    .expect("role");
    Api::<Role>::namespaced(op.admin.clone(), &source)
        .create(&PostParams::default(), &role)
        .await
        .expect("create role");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "puller"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "puller"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                      "name": format!("system:serviceaccounts:{}", op.namespace)}],
    }))
    .expect("binding");
    Api::<RoleBinding>::namespaced(op.admin.clone(), &source)
        .create(&PostParams::default(), &binding)
        .await
        .expect("create binding");
    let web = deployment_at(&deployments, "web", &[&ref1]).await;
    assert_eq!(generation(&web), 2);
    assert_eq!(trigger_patches(&op.metrics), 1);
    op.finish().await;
}
