//! OpenShift's own `oc` (4.20, `../shared/tools/oc/oc`) against the harness cluster, the whole
//! operator ([`Running`]: webhooks and controllers under its ServiceAccount) and a real
//! docker-registry: `oc import-image` in every form (issue 16 item 2) and
//! `oc adm prune images` losing nothing (item 3), typed as a user types them, asserting exit
//! codes and the lines oc prints. The guards behind them are tested with plain API calls too.
//!
//! `oc adm prune images` is cluster-wide and the cluster is shared with other tests, so it runs
//! as a ServiceAccount that may read everything but delete only this test's Images and write
//! only this namespace's stream statuses; the Image guard is registered for that user only.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use imagestream_operator::admission::{
    self, AdmissionSettings, Hook, ImageDeletes, KubeAuthorizer, KubeLimitRanges, Webhooks,
};
use imagestream_operator::api::image::Image;
use imagestream_operator::api::image_stream::{ImageStream, TagEvent};
use imagestream_operator::api::image_stream_import::{ImageStreamImport, ImageStreamImportStatus};
use imagestream_operator::names;
use support::cluster::{self, ServiceAccountClient};
use support::fault_registry::{FaultServer, FaultSwitch};
use support::images::{ImageSpec, IndexSpec, TestImage};
use support::oc::Oc;
use support::operator::{Running, test_admission};
use support::registry::{RegistryOptions, TestRegistry};
use support::{crds, rbac};

async fn push(reg: &TestRegistry, repo: &str, tag: &str, seed: u64) -> String {
    let image: TestImage = ImageSpec::single("amd64", seed).build().into();
    reg.client().push(repo, tag, &image).await.expect("push")
}

fn items<'a>(stream: &'a ImageStream, tag: &str) -> &'a [TagEvent] {
    stream
        .status
        .as_ref()
        .and_then(|s| s.tag(tag))
        .map_or(&[][..], |t| &t.items[..])
}

fn history<'a>(stream: &'a ImageStream, tag: &str) -> Vec<&'a str> {
    items(stream, tag)
        .iter()
        .map(|e| e.image.as_str())
        .collect()
}

/// `oc import-image` of a new stream, of an existing one (oc sends the stream's
/// resourceVersion as a precondition), twice in a row, as a preview, of a tag that the
/// registry lost (non-zero exit, `imported with errors`), and `oc get isi`.
#[tokio::test]
async fn oc_import_image_creates_reimports_and_fails_like_openshift() {
    let reg = RegistryOptions::plain().start();
    let d1 = push(&reg, "app", "v1", 1601).await;
    let op = Running::start("oc-import").await;
    let cluster = cluster::cluster().await;
    let oc = Oc::with_kubeconfig(cluster.kubeconfig(), &op.namespace);
    let streams = op.streams();
    let from = format!("--from={}", reg.image_ref("app", "v1"));

    // a new stream needs --confirm
    let ran = oc
        .run(&["import-image", "app:v1", &from, "--insecure"])
        .await
        .failed();
    assert!(
        ran.stderr
            .contains(r#"no image stream named "app" exists, pass --confirm to create and import"#),
        "{ran:#?}"
    );
    let ran = oc
        .run(&["import-image", "app:v1", &from, "--insecure", "--confirm"])
        .await
        .succeeded();
    assert_eq!(
        ran.lines()[0],
        "imagestream.image.openshift.io/app imported"
    );
    ran.has_field("Name:", "app")
        .has_line("v1")
        .has_line(&format!("tagged from {}", reg.image_ref("app", "v1")))
        .has_line(&format!("* {}/app@{d1}", reg.addr()))
        .has_field("Image Name:", "app:v1")
        .has_field("Name:", &d1)
        .has_field("Docker Image:", &format!("{}/app@{d1}", reg.addr()))
        .has_field("Arch:", "amd64");
    assert!(
        !ran.stdout.contains(&names::image(&d1)),
        "Images are shown by their digest, not the object name"
    );
    let stream = streams.get("app").await.expect("the stream");
    assert_eq!(history(&stream, "v1"), [d1.as_str()]);

    // the registry moved the tag: re-import the existing stream (oc sends its
    // resourceVersion), then again at once: both answered, history grows once
    let d2 = push(&reg, "app", "v1", 1602).await;
    let ran = oc.run(&["import-image", "app:v1"]).await.succeeded();
    assert_eq!(
        ran.lines()[0],
        "imagestream.image.openshift.io/app imported"
    );
    ran.has_line(&format!("* {}/app@{d2}", reg.addr()))
        .has_line(&format!("{}/app@{d1}", reg.addr()))
        .has_field("Name:", &d2);
    let ran = oc.run(&["import-image", "app:v1"]).await.succeeded();
    ran.has_field("Name:", &d2);
    let stream = streams.get("app").await.expect("the stream");
    assert_eq!(history(&stream, "v1"), [d2.as_str(), d1.as_str()]);
    // `oc import-image app` is app:latest, which the stream lacks
    let ran = oc.run(&["import-image", "app"]).await.failed();
    assert!(
        ran.stderr
            .contains(r#"the tag "latest" does not exist on the image stream"#),
        "{ran:#?}"
    );

    // a preview: the image, nothing written
    let d3 = push(&reg, "app", "v1", 1603).await;
    let ran = oc
        .run(&["import-image", "app:v1", "--dry-run"])
        .await
        .succeeded();
    assert_eq!(
        ran.lines()[0],
        "imagestream.image.openshift.io/app imported (dry run)"
    );
    ran.has_field("Name:", &d3);
    let stream = streams.get("app").await.expect("the stream");
    assert_eq!(
        history(&stream, "v1"),
        [d2.as_str(), d1.as_str()],
        "a preview writes nothing"
    );

    // a tag the registry does not have: printed as an error, exit 1
    let nope = format!("--from={}", reg.image_ref("nope", "v1"));
    let ran = oc
        .run(&["import-image", "bogus:v1", &nope, "--insecure", "--confirm"])
        .await
        .failed();
    assert_eq!(
        ran.lines()[0],
        "imagestream.image.openshift.io/bogus imported with errors"
    );
    assert!(ran.stderr.contains("error: tag v1 failed: "), "{ran:#?}");
    assert!(ran.stderr.contains("not found"), "{ran:#?}");
    let bogus = streams.get("bogus").await.expect("the stream is created");
    let condition = &bogus.status.as_ref().unwrap().tag("v1").unwrap().conditions[0];
    assert_eq!(condition.reason, "NotFound");
    // …and again: still answered (the first request was replaced), still exit 1
    oc.run(&["import-image", "bogus:v1"]).await.failed();

    // the requests are there to look at, by the short name
    let ran = oc.run(&["get", "isi"]).await.succeeded();
    ran.has_field("app", "");
    ran.has_field("bogus", "");
    op.finish().await;
}

/// `--all` (a new stream from a whole repository, then again for its DockerImage tags),
/// `--scheduled`, `--reference-policy=local` and `--import-mode=PreserveOriginal`.
#[tokio::test]
async fn oc_import_image_all_scheduled_reference_policy_and_import_mode() {
    let reg = RegistryOptions::plain().start();
    let mut many = BTreeMap::new();
    for (i, tag) in ["latest", "1.0", "1.1"].iter().enumerate() {
        many.insert(*tag, push(&reg, "many", tag, 1610 + i as u64).await);
    }
    let index: TestImage = IndexSpec::oci(1620).build().into();
    let list = reg
        .client()
        .push("multi", "v1", &index)
        .await
        .expect("push the index");
    let op = Running::start("oc-import-all").await;
    let cluster = cluster::cluster().await;
    let oc = Oc::with_kubeconfig(cluster.kubeconfig(), &op.namespace);
    let streams = op.streams();

    let repository = format!("--from={}/many", reg.addr());
    let ran = oc
        .run(&[
            "import-image",
            "many",
            "--all",
            &repository,
            "--insecure",
            "--confirm",
        ])
        .await
        .succeeded();
    assert_eq!(
        ran.lines()[0],
        "imagestream.image.openshift.io/many imported"
    );
    for (tag, digest) in &many {
        ran.has_field("Image Name:", &format!("many:{tag}"))
            .has_field("Name:", digest);
    }
    let stream = streams.get("many").await.expect("the stream");
    for (tag, digest) in &many {
        assert_eq!(history(&stream, tag), [digest.as_str()], "{tag}");
    }
    // again, for the stream's DockerImage tags
    let moved = push(&reg, "many", "1.0", 1613).await;
    let ran = oc.run(&["import-image", "many", "--all"]).await.succeeded();
    ran.has_field("Name:", &moved);
    let stream = streams.get("many").await.expect("the stream");
    assert_eq!(
        history(&stream, "1.0"),
        [moved.as_str(), many["1.0"].as_str()]
    );

    // scheduled, pulled through the integrated registry's policy
    let app = push(&reg, "app", "v1", 1614).await;
    let from = format!("--from={}", reg.image_ref("app", "v1"));
    oc.run(&[
        "import-image",
        "sched:v1",
        &from,
        "--insecure",
        "--confirm",
        "--scheduled",
        "--reference-policy=local",
    ])
    .await
    .succeeded()
    .has_field("Name:", &app);
    let sched = streams.get("sched").await.expect("the stream");
    let tag = sched.spec.tag("v1").expect("spec tag v1");
    assert!(tag.import_policy.scheduled, "{tag:?}");
    assert!(tag.import_policy.insecure, "{tag:?}");
    assert_eq!(
        serde_json::to_value(tag.reference_policy).unwrap(),
        json!({"type": "Local"})
    );
    let ran = oc.run(&["describe", "is", "sched"]).await.succeeded();
    ran.has_line(&format!(
        "updates automatically from registry {}",
        reg.image_ref("app", "v1")
    ))
    .has_line("prefer registry pullthrough when referencing this tag");

    // the whole manifest list
    let from = format!("--from={}", reg.image_ref("multi", "v1"));
    let ran = oc
        .run(&[
            "import-image",
            "multi:v1",
            &from,
            "--insecure",
            "--confirm",
            "--import-mode=PreserveOriginal",
        ])
        .await
        .succeeded();
    ran.has_field("Name:", &list);
    let multi = streams.get("multi").await.expect("the stream");
    assert_eq!(history(&multi, "v1"), [list.as_str()]);
    let images = Api::<Image>::all(op.admin.clone());
    let stored = images
        .get(&names::image(&list))
        .await
        .expect("the list's Image");
    assert_eq!(stored.spec.docker_image_manifests.len(), 3);
    for child in &stored.spec.docker_image_manifests {
        images
            .get(&names::image(&child.digest))
            .await
            .expect("each child's Image");
    }
    op.finish().await;
}

/// A registry slower than the import webhook's time limit still gets an answer: the entries
/// not done are failed with `Timeout` (oc exits 1 with the reason) well within the limit.
#[tokio::test]
async fn a_slow_registry_is_answered_at_the_time_limit() {
    let reg = RegistryOptions::plain().start();
    push(&reg, "app", "v1", 1630).await;
    let switch = FaultSwitch::new();
    let slow = FaultServer::forward(reg.addr(), switch.clone());
    switch.delay(Duration::from_secs(20));
    // a 6 s webhook: registry work stops after 4 s
    let op = Running::start_registered("oc-slow", |_, r| r.import_timeout_seconds = 6).await;
    let cluster = cluster::cluster().await;
    let oc = Oc::with_kubeconfig(cluster.kubeconfig(), &op.namespace);
    let from = format!("--from={}/app:v1", slow.addr());
    let started = Instant::now();
    let ran = oc
        .run(&["import-image", "slow:v1", &from, "--insecure", "--confirm"])
        .await
        .failed();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(6), "answered after {took:?}");
    assert!(took >= Duration::from_secs(4), "answered after {took:?}");
    assert_eq!(
        ran.lines()[0],
        "imagestream.image.openshift.io/slow imported with errors"
    );
    assert!(
        ran.stderr
            .contains("the registry did not answer within the time limit of the import request"),
        "{ran:#?}"
    );
    let stream = op.streams().get("slow").await.expect("the stream");
    let condition = &stream
        .status
        .as_ref()
        .unwrap()
        .tag("v1")
        .unwrap()
        .conditions[0];
    assert_eq!(condition.reason, "Timeout");
    switch.clear();
    op.finish().await;
}

/// The create of an ImageStreamImport as upstream answers it, through the API: a stale
/// resourceVersion is a 409 with upstream's message (and imports nothing), a resourceVersion
/// for a missing stream a 404; a dry run answers from the registry and writes
/// nothing; `to` defaults from the source tag; `includeManifest` returns the manifest of an
/// image already in the cluster; the answer is stored with the request.
#[tokio::test]
async fn import_requests_are_answered_in_their_create() {
    let reg = RegistryOptions::plain().start();
    let d1 = push(&reg, "app", "v1", 1640).await;
    let d2 = push(&reg, "app", "v2", 1641).await;
    let op = Running::start("isi-create").await;
    let requests: Api<ImageStreamImport> = Api::namespaced(op.admin.clone(), &op.namespace);
    let streams = op.streams();
    let images = Api::<Image>::all(op.admin.clone());
    let isi = |name: &str, import: bool, entries: Value, metadata: Value| -> ImageStreamImport {
        let mut meta = json!({"name": name});
        if let (Some(meta), Some(extra)) = (meta.as_object_mut(), metadata.as_object()) {
            meta.extend(extra.clone());
        }
        serde_json::from_value(json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStreamImport",
            "metadata": meta,
            "spec": {"import": import, "images": entries},
        }))
        .expect("request")
    };
    let entry = |from: String| {
        json!({"from": {"kind": "DockerImage", "name": from},
        "importPolicy": {"insecure": true}})
    };

    // `to` defaults from the source tag; the answer comes with the create
    let answered = requests
        .create(
            &PostParams::default(),
            &isi(
                "app",
                true,
                json!([entry(reg.image_ref("app", "v1"))]),
                json!({}),
            ),
        )
        .await
        .expect("create");
    let status: ImageStreamImportStatus = answered.status.clone().expect("answered in the create");
    assert_eq!(status.images[0].status.status, "Success");
    assert_eq!(status.images[0].tag, "v1");
    let shown = status.images[0].image.as_ref().expect("the image");
    assert_eq!(shown.metadata.name.as_deref(), Some(d1.as_str()));
    assert_eq!(shown.metadata.uid, None);
    assert_eq!(
        answered.spec.images[0].to.as_ref().map(|t| t.name.as_str()),
        Some("v1")
    );
    let stream = status.import.expect("status.import");
    assert_eq!(history(&stream, "v1"), [d1.as_str()]);
    let stored = requests.get("app").await.expect("stored");
    assert_eq!(stored.status, answered.status, "stored as answered");

    // a stale resourceVersion: 409, nothing imported
    let stale = stream.resource_version().expect("resourceVersion");
    let current = streams.get("app").await.expect("stream");
    let mut touched = current.clone();
    touched
        .metadata
        .labels
        .get_or_insert_default()
        .insert("touched".into(), "yes".into());
    let touched = streams
        .replace("app", &PostParams::default(), &touched)
        .await
        .expect("label");
    let refused = requests
        .create(
            &PostParams::default(),
            &isi(
                "app",
                true,
                json!([entry(reg.image_ref("app", "v2"))]),
                json!({"resourceVersion": stale}),
            ),
        )
        .await
        .expect_err("a stale resourceVersion");
    let kube::Error::Api(status) = refused else {
        panic!("{refused:?}")
    };
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "Conflict"),
        "{status:?}"
    );
    assert!(
        status.message.contains(&format!(
            r#"Operation cannot be fulfilled on imagestream.image.openshift.io "app": the image stream was updated from "{stale}" to "{}""#,
            touched.resource_version().unwrap()
        )),
        "{}",
        status.message
    );
    assert!(
        streams.get("app").await.unwrap().spec.tag("v2").is_none(),
        "not imported"
    );
    // the current resourceVersion is accepted (and removed)
    let answered = requests
        .create(
            &PostParams::default(),
            &isi(
                "app",
                true,
                json!([entry(reg.image_ref("app", "v2"))]),
                json!({"resourceVersion": touched.resource_version()}),
            ),
        )
        .await
        .expect("the current resourceVersion");
    assert_eq!(
        history(
            answered.status.as_ref().unwrap().import.as_ref().unwrap(),
            "v2"
        ),
        [d2.as_str()]
    );
    // a resourceVersion for a stream that does not exist: 404
    let refused = requests
        .create(
            &PostParams::default(),
            &isi(
                "nostream",
                true,
                json!([entry(reg.image_ref("app", "v1"))]),
                json!({"resourceVersion": "1"}),
            ),
        )
        .await
        .expect_err("no stream");
    let kube::Error::Api(status) = refused else {
        panic!("{refused:?}")
    };
    assert_eq!(status.code, 404, "{status:?}");
    assert!(
        status
            .message
            .contains(r#"imagestreams.image.openshift.io "nostream" not found"#),
        "{}",
        status.message
    );

    // a dry run: the registry's answer, no stream, no Image, no stored request
    let d3 = push(&reg, "fresh", "v1", 1642).await;
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let answered = requests
        .create(
            &dry_run,
            &isi(
                "fresh",
                true,
                json!([entry(reg.image_ref("fresh", "v1"))]),
                json!({}),
            ),
        )
        .await
        .expect("dry run");
    let status = answered.status.expect("answered");
    assert_eq!(
        status.images[0]
            .image
            .as_ref()
            .unwrap()
            .metadata
            .name
            .as_deref(),
        Some(d3.as_str())
    );
    assert!(status.import.is_none());
    assert!(
        streams.get_opt("fresh").await.unwrap().is_none(),
        "no stream"
    );
    assert!(
        images.get_opt(&names::image(&d3)).await.unwrap().is_none(),
        "no Image"
    );
    assert!(
        requests.get_opt("fresh").await.unwrap().is_none(),
        "no request"
    );

    // includeManifest for an image that is already in the cluster
    let mut wanted = entry(reg.image_ref("app", "v1"));
    wanted["includeManifest"] = json!(true);
    let answered = requests
        .create(
            &PostParams::default(),
            &isi("preview", false, json!([wanted]), json!({})),
        )
        .await
        .expect("preview");
    let image = answered.status.unwrap().images[0]
        .image
        .clone()
        .expect("the image");
    assert!(
        images.get_opt(&names::image(&d1)).await.unwrap().is_some(),
        "in the cluster"
    );
    assert!(
        image.spec.docker_image_manifest.contains("schemaVersion"),
        "{image:?}"
    );
    assert!(!image.spec.docker_image_config.is_empty());
    op.finish().await;
}

// ---------------------------------------------------------------------------------------
// oc adm prune images

/// Creates `name` (cluster-wide) or replaces it; returns nothing.
async fn apply<K>(api: &Api<K>, object: &K)
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = PatchParams::apply("oc-import-test").force();
    api.patch(&object.name_any(), &params, &Patch::Apply(object))
        .await
        .expect("apply");
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[String]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(groups.iter().map(|g| (*g).to_string()).collect()),
        resources: Some(resources.iter().map(|r| (*r).to_string()).collect()),
        verbs: verbs.iter().map(|v| (*v).to_string()).collect(),
        resource_names: (!names.is_empty()).then(|| names.to_vec()),
        ..PolicyRule::default()
    }
}

/// The pruning user: reads what `oc adm prune images` reads everywhere, writes the statuses
/// of `namespace`'s streams, deletes only `images` (object names).
async fn pruner(
    cluster: &cluster::TestCluster,
    admin: &Client,
    namespace: &str,
    images: &[String],
) -> ServiceAccountClient {
    let account = cluster.service_account_client(namespace, "pruner").await;
    let subject = Subject {
        kind: "ServiceAccount".into(),
        name: "pruner".into(),
        namespace: Some(namespace.into()),
        ..Subject::default()
    };
    let role_ref = |kind: &str, name: &str| RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: kind.into(),
        name: name.into(),
    };
    let cluster_role = ClusterRole {
        metadata: ObjectMeta {
            name: Some(format!("oc-prune-{namespace}")),
            ..ObjectMeta::default()
        },
        rules: Some(vec![
            rule(
                &[""],
                &["pods", "replicationcontrollers", "limitranges"],
                &["get", "list"],
                &[],
            ),
            rule(
                &["apps"],
                &["daemonsets", "deployments", "replicasets", "statefulsets"],
                &["list"],
                &[],
            ),
            rule(&["batch"], &["jobs", "cronjobs"], &["list"], &[]),
            // not served here (oc tolerates the 404 once RBAC lets the request through)
            rule(
                &["build.openshift.io"],
                &["builds", "buildconfigs"],
                &["list"],
                &[],
            ),
            rule(
                &["apps.openshift.io"],
                &["deploymentconfigs"],
                &["list"],
                &[],
            ),
            rule(
                &["image.openshift.io"],
                &["imagestreams", "images"],
                &["get", "list"],
                &[],
            ),
            rule(&["image.openshift.io"], &["images"], &["delete"], images),
        ]),
        ..ClusterRole::default()
    };
    apply(&Api::<ClusterRole>::all(admin.clone()), &cluster_role).await;
    let binding = ClusterRoleBinding {
        metadata: cluster_role.metadata.clone(),
        role_ref: role_ref("ClusterRole", &cluster_role.name_any()),
        subjects: Some(vec![subject.clone()]),
    };
    apply(&Api::<ClusterRoleBinding>::all(admin.clone()), &binding).await;
    let role = Role {
        metadata: ObjectMeta {
            name: Some("oc-prune".into()),
            namespace: Some(namespace.into()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![rule(
            &["image.openshift.io"],
            &["imagestreams/status"],
            &["update"],
            &[],
        )]),
    };
    apply(&Api::<Role>::namespaced(admin.clone(), namespace), &role).await;
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some("oc-prune".into()),
            namespace: Some(namespace.into()),
            ..ObjectMeta::default()
        },
        role_ref: role_ref("Role", "oc-prune"),
        subjects: Some(vec![subject]),
    };
    apply(
        &Api::<RoleBinding>::namespaced(admin.clone(), namespace),
        &binding,
    )
    .await;
    account
}

/// Imports `tag` of stream `app` through the webhook (as `oc import-image` does).
async fn import(
    requests: &Api<ImageStreamImport>,
    from: &str,
    tag: &str,
    mode: &str,
) -> ImageStreamImportStatus {
    let isi: ImageStreamImport = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStreamImport",
        "metadata": {"name": "app"},
        "spec": {"import": true, "images": [{"from": {"kind": "DockerImage", "name": from},
            "to": {"name": tag}, "importPolicy": {"insecure": true, "importMode": mode}}]},
    }))
    .expect("request");
    let answered = requests
        .create(&PostParams::default(), &isi)
        .await
        .expect("import");
    let status = answered.status.expect("answered");
    assert_eq!(status.images[0].status.status, "Success", "{status:?}");
    status
}

/// The real `oc adm prune images --confirm --prune-registry=false --keep-younger-than=0`
/// (which cannot relate our Images to streams, and so believes every history entry dangling
/// and every Image unused) removes nothing a stream uses: every referenced Image, the children
/// of a referenced manifest list and every history entry are still there, each refusal names
/// the ImagePruner, and an Image no stream uses is deleted. The same guards through the API:
/// deletes of a referenced Image and of a child are refused, a status write of a new entry
/// gets its generation, one dropping entries of existing Images is refused, and the operator
/// itself (its imports write statuses) is not held up.
#[tokio::test]
async fn oc_adm_prune_images_loses_nothing() {
    let reg = RegistryOptions::plain().start();
    let d1 = push(&reg, "app", "v1", 1650).await;
    // oc prunes cluster-wide: a cluster of its own holds no other test's Images
    let own = cluster::TestCluster::start().await;
    let admin = own.client().await;
    let op = Running::start_registered_on(&own, "oc-prune", |namespace, r| {
        r.image_deletes =
            ImageDeletes::Only(vec![format!("system:serviceaccount:{namespace}:pruner")]);
    })
    .await;
    let namespace = op.namespace.clone();
    let requests: Api<ImageStreamImport> = Api::namespaced(admin.clone(), &namespace);
    let streams = op.streams();
    let images = Api::<Image>::all(admin.clone());

    // history: v1 twice, a manifest list with its children
    import(&requests, &reg.image_ref("app", "v1"), "v1", "Legacy").await;
    let d2 = push(&reg, "app", "v1", 1651).await;
    import(&requests, &reg.image_ref("app", "v1"), "v1", "Legacy").await;
    let index: TestImage = IndexSpec::oci(1652).build().into();
    let list = reg
        .client()
        .push("app", "multi", &index)
        .await
        .expect("push the index");
    import(
        &requests,
        &reg.image_ref("app", "multi"),
        "multi",
        "PreserveOriginal",
    )
    .await;
    let children: Vec<String> = images
        .get(&names::image(&list))
        .await
        .expect("the list")
        .spec
        .docker_image_manifests
        .iter()
        .map(|m| m.digest.clone())
        .collect();
    assert_eq!(children.len(), 3);
    // an Image no stream uses
    let loose = push(&reg, "loose", "v1", 1653).await;
    let mut loose_image = images
        .get(&names::image(&d1))
        .await
        .expect("an Image to copy");
    loose_image.metadata = ObjectMeta {
        name: Some(names::image(&loose)),
        ..ObjectMeta::default()
    };
    loose_image.spec.docker_image_reference = format!("{}/loose@{loose}", reg.addr());
    images
        .create(&PostParams::default(), &loose_image)
        .await
        .expect("an unused Image");
    let before = streams.get("app").await.expect("stream");
    assert_eq!(history(&before, "v1"), [d2.as_str(), d1.as_str()]);
    let referenced: Vec<String> = [d1.clone(), d2.clone(), list.clone()]
        .into_iter()
        .chain(children.iter().cloned())
        .collect();
    let mut deletable: Vec<String> = referenced.iter().map(|d| names::image(d)).collect();
    deletable.push(names::image(&loose));
    let account = pruner(&own, &admin, &namespace, &deletable).await;
    // oc is older than a second: entries and Images created before it are "old"
    tokio::time::sleep(Duration::from_secs(1)).await;

    let oc = Oc::with_kubeconfig(account.kubeconfig(), &namespace);
    let ran = oc
        .run_anywhere(&[
            "adm",
            "prune",
            "images",
            "--confirm",
            "--prune-registry=false",
            "--keep-younger-than=0",
        ])
        .await
        .failed();
    ran.has_line(
        "Only API objects will be removed.  No modifications to the image registry will be made.",
    );
    ran.has_line(&format!(
        "Deleting 3 items from image stream {namespace}/app"
    ));
    assert!(
        ran.stderr.contains(&format!(
            "error updating image stream {namespace}/app to remove image references"
        )),
        "{ran:#?}"
    );
    assert!(
        ran.stderr.contains("may only be removed by the operator"),
        "{ran:#?}"
    );
    for digest in &referenced {
        let name = names::image(digest);
        assert!(
            ran.stderr.contains(&format!(r#"error deleting image {name} from server: admission webhook "images.admission.imagestream.io" denied the request: Image "{name}" is still used by image stream {namespace}/app"#)),
            "{name}: {ran:#?}"
        );
    }
    assert!(ran.stderr.contains("ImagePruner"));

    // nothing a stream uses is gone; the unused Image is
    for digest in &referenced {
        assert!(
            images
                .get_opt(&names::image(digest))
                .await
                .unwrap()
                .is_some(),
            "{digest} was deleted"
        );
    }
    assert!(
        images
            .get_opt(&names::image(&loose))
            .await
            .unwrap()
            .is_none(),
        "unused Image kept"
    );
    let after = streams.get("app").await.expect("stream");
    assert_eq!(after.status, before.status, "history intact");

    // the same guards through the API, as the pruning user
    let as_pruner = Api::<Image>::all(account.client.clone());
    for digest in [&d1, &children[0]] {
        let refused = as_pruner
            .delete(&names::image(digest), &DeleteParams::default())
            .await
            .expect_err("in use");
        let kube::Error::Api(status) = refused else {
            panic!("{refused:?}")
        };
        assert_eq!(status.code, 403, "{status:?}");
    }
    let streams_as_pruner: Api<ImageStream> = Api::namespaced(account.client.clone(), &namespace);
    let mut dropped = after.clone();
    dropped
        .status
        .as_mut()
        .unwrap()
        .tags
        .retain(|t| t.tag != "multi");
    let refused = streams_as_pruner
        .replace_status("app", &PostParams::default(), &dropped)
        .await
        .expect_err("drops the list's entry");
    let kube::Error::Api(status) = refused else {
        panic!("{refused:?}")
    };
    assert_eq!(status.code, 422, "{status:?}");
    assert!(
        status.message.contains(
            "status.tags[multi].items: Forbidden: history entries whose Images still exist"
        ),
        "{}",
        status.message
    );
    // a new entry written with generation 0 gets one (the spec tag's: the image changed)
    let mut grown = streams.get("app").await.expect("stream");
    let v1 = grown
        .status
        .as_mut()
        .unwrap()
        .tags
        .iter_mut()
        .find(|t| t.tag == "v1")
        .expect("v1");
    v1.items.insert(
        0,
        serde_json::from_value(json!({"created": "2026-01-01T00:00:00Z",
            "dockerImageReference": format!("{}/app@{loose}", reg.addr()), "image": loose, "generation": 0}))
        .unwrap(),
    );
    let written = streams_as_pruner
        .replace_status("app", &PostParams::default(), &grown)
        .await
        .expect("a new entry");
    assert_eq!(
        Some(items(&written, "v1")[0].generation),
        written.spec.tag("v1").and_then(|t| t.generation)
    );

    // the operator's own status writes pass: a new import still applies
    let d4 = push(&reg, "app", "v1", 1654).await;
    import(&requests, &reg.image_ref("app", "v1"), "v1", "Legacy").await;
    assert_eq!(history(&streams.get("app").await.unwrap(), "v1")[0], d4);
    op.finish().await;
}

/// The status and Image webhooks leave out the operator's own user by a match condition: its
/// status writes cost no webhook call at all, anyone else's are judged.
#[tokio::test]
async fn the_operators_own_status_writes_skip_the_webhook() {
    cluster::install_crypto_provider();
    let cluster = cluster::cluster().await;
    let admin = cluster.client().await;
    crds::install(&admin).await;
    let namespace = cluster::fresh_namespace(&admin, "oc-status-skip").await;
    let label = "imagestream-operator.test/status-skip";
    Api::<Namespace>::all(admin.clone())
        .patch(
            &namespace,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {label: namespace}}})),
        )
        .await
        .expect("label");
    rbac::bind_deploy_roles(&admin, &namespace, "operator", &rbac::OPERATOR_ROLES).await;
    let server = cluster.service_account_client(&namespace, "operator").await;
    // the "operator" the registration leaves out is admin here
    let me = Api::<SelfSubjectReview>::all(admin.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .expect("who am I")
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .expect("admin's name");
    let (_settings, settings_rx) = watch::channel(Arc::new(AdmissionSettings::default()));
    let webhooks = Arc::new(
        Webhooks::new(KubeAuthorizer::new(server.client.clone()), settings_rx)
            .with_limit_ranges(KubeLimitRanges::watching(server.client.clone())),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let mut options = test_admission(&namespace, port, label);
    options.registration.import_timeout_seconds = 30;
    options.registration.operator = Some(me);
    let configuration = options.registration.mutating_name.clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(admission::serve(
        server.client.clone(),
        listener,
        options,
        webhooks.clone(),
        async {
            let _ = stopped.await;
        },
        || (),
    ));
    let streams: Api<ImageStream> = Api::namespaced(admin.clone(), &namespace);
    let stream: ImageStream = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": "s"},
        "spec": {"tags": [{"name": "t", "from": {"kind": "DockerImage", "name": "quay.io/a/b:t"}}]},
    }))
    .unwrap();
    // registered once the mutating webhook gives the tag its generation
    let deadline = Instant::now() + Duration::from_secs(30);
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    loop {
        if let Ok(s) = streams.create(&dry_run, &stream).await
            && s.spec.tags[0].generation == Some(1)
        {
            break;
        }
        assert!(Instant::now() < deadline, "the webhooks were not called");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    streams
        .create(&PostParams::default(), &stream)
        .await
        .expect("create");
    let entry = |n: u32| {
        json!({"created": "2026-01-01T00:00:00Z", "generation": 0,
            "dockerImageReference": format!("quay.io/a/b@sha256:{n:064x}"), "image": format!("sha256:{n:064x}")})
    };
    let write = |api: Api<ImageStream>, n: u32| async move {
        let mut current = api.get("s").await.expect("get");
        current.status = Some(
            serde_json::from_value(
                json!({"dockerImageRepository": "", "tags": [{"tag": "t", "items": [entry(n)]}]}),
            )
            .unwrap(),
        );
        api.replace_status("s", &PostParams::default(), &current)
            .await
            .expect("status write")
    };
    // the left-out user: untouched (generation 0 stays), not reviewed
    let written = write(streams.clone(), 1).await;
    assert_eq!(
        items(&written, "t")[0].generation,
        0,
        "no webhook changed it"
    );
    assert_eq!(webhooks.counts(Hook::MutateImageStreamStatus).requests, 0);
    assert_eq!(webhooks.counts(Hook::ValidateImageStreamStatus).requests, 0);
    // anyone else: reviewed, the new entry gets its generation
    let user = cluster.service_account_client(&namespace, "editor").await;
    let role = Role {
        metadata: ObjectMeta {
            name: Some("status-writer".into()),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![
            rule(&["image.openshift.io"], &["imagestreams"], &["get"], &[]),
            rule(
                &["image.openshift.io"],
                &["imagestreams/status"],
                &["update"],
                &[],
            ),
        ]),
    };
    apply(&Api::<Role>::namespaced(admin.clone(), &namespace), &role).await;
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some("status-writer".into()),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: "status-writer".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "editor".into(),
            namespace: Some(namespace.clone()),
            ..Subject::default()
        }]),
    };
    apply(
        &Api::<RoleBinding>::namespaced(admin.clone(), &namespace),
        &binding,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let written = write(Api::namespaced(user.client.clone(), &namespace), 2).await;
    assert_eq!(
        items(&written, "t")[0].generation,
        1,
        "G, from the status strategy"
    );
    assert_eq!(webhooks.counts(Hook::MutateImageStreamStatus).requests, 1);
    assert_eq!(webhooks.counts(Hook::ValidateImageStreamStatus).requests, 1);
    let _ = stop.send(());
    let _ = task.await;
    let dp = DeleteParams::default();
    let _ = Api::<k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration>::all(
        admin.clone(),
    )
    .delete(&configuration, &dp)
    .await;
    let _ =
        Api::<k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration>::all(
            admin.clone(),
        )
        .delete(&configuration, &dp)
        .await;
}
