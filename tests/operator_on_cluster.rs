//! The whole operator (`operator::run`: webhooks and controllers in one process) against the
//! real kube-apiserver and the real registry, under its own ServiceAccount bound to the roles
//! in `deploy/`; the webhooks are registered by `url:` and limited to the test's namespace by
//! a label. What only the two together show: generations assigned by the webhook drive the
//! controller's imports. Also: the install (`kubectl apply -k deploy/`) passes the apiserver's
//! validation, applies, and grants what it promises.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Probe, Service};
use kube::ResourceExt;
use kube::api::{
    Api, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::discovery::{self, Scope};
use serde_json::{Value, json};

use imagestream_operator::api::image_stream::{ImageStream, TagEvent, TagReferencePolicyType};
use imagestream_operator::api::image_stream_import::{ImageStreamImport, ImageStreamImportStatus};
use imagestream_operator::{admission, probes};
use support::images::{ImageSpec, TestImage};
use support::operator::Running;
use support::registry::{RegistryOptions, TestRegistry};
use support::{cluster, crds};

fn stream(name: &str, tags: Value) -> ImageStream {
    serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1",
        "kind": "ImageStream",
        "metadata": { "name": name },
        "spec": { "tags": tags },
    }))
    .expect("stream")
}

/// A DockerImage tag as a user writes it: no generation.
fn docker_tag(name: &str, from: &str) -> Value {
    json!({
        "name": name,
        "from": { "kind": "DockerImage", "name": from },
        "importPolicy": { "insecure": true },
    })
}

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

fn spec_generation(stream: &ImageStream, tag: &str) -> Option<i64> {
    stream
        .spec
        .tags
        .iter()
        .find(|t| t.name == tag)
        .and_then(|t| t.generation)
}

async fn wait_for(
    api: &Api<ImageStream>,
    name: &str,
    check: impl Fn(&ImageStream) -> bool,
) -> ImageStream {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stream = api.get(name).await.expect("get stream");
        if check(&stream) {
            return stream;
        }
        assert!(
            Instant::now() < deadline,
            "not reached within 30s: spec {} status {}",
            serde_json::to_string(&stream.spec).unwrap_or_default(),
            serde_json::to_string(&stream.status).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Replaces the stream's spec tags with `tags` (a user's `kubectl replace`).
async fn replace_tags(api: &Api<ImageStream>, name: &str, tags: Value) -> ImageStream {
    let mut current = api.get(name).await.expect("get stream");
    current.spec.tags = serde_json::from_value(tags).expect("tags");
    api.replace(name, &PostParams::default(), &current)
        .await
        .expect("replace stream")
}

/// Semantics 2.7 with the webhook assigning generations (design.md section 4): a new tag gets
/// S = 1 and is imported with E = 1; a stale generation sent by the client is ignored;
/// setting S = 0 makes S = the new G and re-imports (same image: E updated in place,
/// `created` kept, one status write); pointing the tag elsewhere imports a new history
/// entry; afterwards nothing is written.
#[tokio::test]
async fn generations_from_the_webhook_drive_imports() {
    let reg = RegistryOptions::plain().start();
    let d1 = push(&reg, "app", "v1", 801).await;
    let d2 = push(&reg, "app", "v2", 802).await;
    let op = Running::start("op-gen").await;
    let api = op.streams();

    let v1 = reg.image_ref("app", "v1");
    let created = api
        .create(
            &PostParams::default(),
            &stream("app", json!([docker_tag("latest", &v1)])),
        )
        .await
        .expect("create");
    assert_eq!(spec_generation(&created, "latest"), Some(1));
    assert_eq!(created.metadata.generation, Some(1));
    let first = wait_for(&api, "app", |s| !items(s, "latest").is_empty()).await;
    let event = items(&first, "latest")[0].clone();
    assert_eq!((event.image.as_str(), event.generation), (d1.as_str(), 1));

    // a label change keeps G; a stale S = 7 sent by a client is replaced by the stored one
    let mut stale = first.clone();
    stale.spec.tags[0].generation = Some(7);
    stale.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
    let kept = api
        .replace("app", &PostParams::default(), &stale)
        .await
        .expect("replace with a stale generation");
    assert_eq!(spec_generation(&kept, "latest"), Some(1));

    // S = 0: "import again", the same image
    let writes = op.status_writes();
    let mut again = docker_tag("latest", &v1);
    again["generation"] = json!(0);
    let updated = replace_tags(&api, "app", json!([again])).await;
    let g = updated.metadata.generation.expect("G");
    assert_eq!(g, 2);
    assert_eq!(spec_generation(&updated, "latest"), Some(g));
    let reimported = wait_for(&api, "app", |s| {
        items(s, "latest")
            .first()
            .is_some_and(|e| e.generation == g)
    })
    .await;
    let history = items(&reimported, "latest");
    assert_eq!(history.len(), 1, "same image: updated in place");
    assert_eq!(history[0].image, d1);
    assert_eq!(history[0].created, event.created, "created is kept");
    assert_eq!(op.status_writes(), writes + 1, "one status write");

    // a new source: S = G = 3, a new history entry
    let updated = replace_tags(
        &api,
        "app",
        json!([docker_tag("latest", &reg.image_ref("app", "v2"))]),
    )
    .await;
    assert_eq!(spec_generation(&updated, "latest"), Some(3));
    let moved = wait_for(&api, "app", |s| items(s, "latest").len() == 2).await;
    let history = items(&moved, "latest");
    assert_eq!(
        history
            .iter()
            .map(|e| (e.image.as_str(), e.generation))
            .collect::<Vec<_>>(),
        [(d2.as_str(), 3), (d1.as_str(), 2)]
    );

    // nothing left to do: the stream is not written again
    let version = moved.resource_version();
    let writes = op.status_writes();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        api.get("app").await.expect("get").resource_version(),
        version
    );
    assert_eq!(op.status_writes(), writes);
    op.finish().await;
}

/// A tag that is new in an update is imported; a tag removed from the spec keeps its status
/// history (semantics 3.7) and is not imported again.
#[tokio::test]
async fn tags_added_by_update_are_imported() {
    let reg = RegistryOptions::plain().start();
    let d1 = push(&reg, "lib", "a", 811).await;
    let d2 = push(&reg, "lib", "b", 812).await;
    let op = Running::start("op-add").await;
    let api = op.streams();
    api.create(
        &PostParams::default(),
        &stream("lib", json!([docker_tag("a", &reg.image_ref("lib", "a"))])),
    )
    .await
    .expect("create");
    wait_for(&api, "lib", |s| !items(s, "a").is_empty()).await;

    let updated = replace_tags(
        &api,
        "lib",
        json!([docker_tag("b", &reg.image_ref("lib", "b"))]),
    )
    .await;
    assert_eq!(spec_generation(&updated, "b"), Some(2));
    let s = wait_for(&api, "lib", |s| !items(s, "b").is_empty()).await;
    assert_eq!(items(&s, "b")[0].image, d2);
    assert_eq!(items(&s, "b")[0].generation, 2);
    assert_eq!(
        items(&s, "a")[0].image,
        d1,
        "history of a removed tag is kept"
    );
    op.finish().await;
}

/// One cache per kind for the whole process (issue 17 item 5): with the webhooks (image
/// lookup, the prune guard, LimitRanges, the import webhook's settings) and every controller
/// running, each kind is watched once; pull secrets twice, a watch per secret type (a field
/// selector picks one type). Counted from the operator's own requests, as the apiserver
/// answered them (`imagestream_operator_apiserver_request_duration_seconds`).
#[tokio::test]
async fn each_kind_is_watched_once_by_the_whole_process() {
    let reg = RegistryOptions::plain().start();
    push(&reg, "one", "v1", 821).await;
    let op = Running::start("op-watch").await;
    let api = op.streams();
    api.create(
        &PostParams::default(),
        &stream(
            "one",
            json!([docker_tag("v1", &reg.image_ref("one", "v1"))]),
        ),
    )
    .await
    .expect("create");
    // imported: the controllers (and their caches) run
    wait_for(&api, "one", |s| !items(s, "v1").is_empty()).await;
    // the views controller is the last to start following
    tokio::time::sleep(Duration::from_secs(1)).await;

    let text = op.metrics.encode();
    let prefix =
        "imagestream_operator_apiserver_request_duration_seconds_count{verb=\"WATCH\",resource=\"";
    let watches: Vec<(String, u64)> = text
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(prefix)?;
            let (resource, count) = rest.split_once("\"} ")?;
            Some((resource.to_string(), count.trim().parse().ok()?))
        })
        .collect();
    for kind in [
        "imagestreams",
        "images",
        "limitranges",
        "imageconfigs",
        "secrets",
    ] {
        assert!(
            watches.iter().any(|(r, _)| r == kind),
            "{kind} is watched: {watches:?}"
        );
    }
    for (resource, count) in &watches {
        let expected = if resource == "secrets" { 2 } else { 1 };
        assert_eq!(*count, expected, "watches of {resource} (all: {watches:?})");
    }
    op.finish().await;
}

/// `kubectl kustomize deploy/`: the install as `kubectl apply -k deploy/` sends it.
fn render_deploy() -> Vec<Value> {
    let out = std::process::Command::new("kubectl")
        .args(["kustomize", concat!(env!("CARGO_MANIFEST_DIR"), "/deploy")])
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl kustomize deploy/: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).expect("UTF-8");
    let documents: Vec<Value> = serde_saphyr::from_multiple(&yaml).expect("YAML documents");
    documents.into_iter().filter(|d| !d.is_null()).collect()
}

fn kind_and_name(object: &Value) -> (String, String) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (text(&object["kind"]), text(&object["metadata"]["name"]))
}

/// `kubectl apply -k deploy/` is the whole install: every object the kustomization renders
/// passes the apiserver's validation and admission in a server-side dry run (`dryRun=All`),
/// cluster-scoped ones too, and the set is complete and consistent: every CRD of `crds/`, each
/// binding's role and ServiceAccount, and no webhook configuration (the operator writes those).
#[tokio::test]
async fn deploy_kustomization_passes_a_server_side_dry_run() {
    cluster::install_crypto_provider();
    let cluster = cluster::cluster().await;
    let admin = cluster.client().await;
    let objects = render_deploy();
    let ns = "imagestream-operator";
    let names: Vec<(String, String)> = objects.iter().map(kind_and_name).collect();
    let has = |kind: &str, name: &str| names.iter().any(|(k, n)| k == kind && n == name);

    // the CRDs are crds/ (whose kustomization.yaml must list every generated file)
    let mut want_crds: Vec<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/crds"))
            .expect("crds/")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|f| f.ends_with(".yaml") && f != "kustomization.yaml")
            .map(|f| f.trim_end_matches(".yaml").to_string())
            .collect();
    want_crds.sort();
    let mut crds: Vec<String> = names
        .iter()
        .filter(|(k, _)| k == "CustomResourceDefinition")
        .map(|(_, n)| n.clone())
        .collect();
    crds.sort();
    assert_eq!(crds, want_crds, "crds/kustomization.yaml lists every CRD");
    for (kind, name) in [
        ("Namespace", ns),
        ("ServiceAccount", "imagestream-operator"),
        ("Deployment", "imagestream-operator"),
        ("Service", "imagestream-operator"),
    ] {
        assert!(has(kind, name), "{kind} {name} in {names:?}");
    }
    assert!(
        !names
            .iter()
            .any(|(k, _)| k.ends_with("WebhookConfiguration")),
        "the operator registers its webhooks itself: {names:?}"
    );
    // everything namespaced lands in the operator's namespace (admission-rbac.yaml names none)
    for object in &objects {
        let (kind, name) = kind_and_name(object);
        let cluster_scoped = matches!(
            kind.as_str(),
            "Namespace" | "CustomResourceDefinition" | "ClusterRole" | "ClusterRoleBinding"
        );
        let namespace = object["metadata"]["namespace"].as_str();
        if cluster_scoped {
            assert_eq!(namespace, None, "{kind} {name}");
        } else {
            assert_eq!(namespace, Some(ns), "{kind} {name}");
        }
    }
    // each binding names a role of the install and grants it to the operator's account
    for binding in objects
        .iter()
        .filter(|o| o["kind"].as_str().is_some_and(|k| k.ends_with("Binding")))
    {
        let (kind, name) = kind_and_name(binding);
        let role = &binding["roleRef"];
        let role_kind = role["kind"].as_str().unwrap_or_default();
        let role_name = role["name"].as_str().unwrap_or_default();
        assert!(
            has(role_kind, role_name),
            "{kind} {name}: no {role_kind} {role_name}"
        );
        assert_eq!(
            binding["subjects"],
            json!([{ "kind": "ServiceAccount", "name": "imagestream-operator", "namespace": ns }]),
            "{kind} {name}"
        );
    }
    // the roles for users are in the install, for users to be bound to (or aggregated)
    let user_roles: Vec<String> = support::oc::user_roles()
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    for name in &user_roles {
        assert!(has("ClusterRole", name), "ClusterRole {name} in {names:?}");
    }
    for (kind, name) in names
        .iter()
        .filter(|(k, _)| k == "Role" || k == "ClusterRole")
        .filter(|(_, n)| !user_roles.contains(n))
    {
        let binding = if kind == "Role" {
            "RoleBinding"
        } else {
            "ClusterRoleBinding"
        };
        assert!(
            objects.iter().any(|o| o["kind"] == binding
                && o["roleRef"]["kind"] == kind.as_str()
                && o["roleRef"]["name"] == name.as_str()),
            "{kind} {name} is bound"
        );
    }

    // the CRDs first, so that their kinds are served; the namespace for real, as a dry run
    // cannot create what the namespaced objects' dry runs then look for
    crds::install(&admin).await;
    let apply = PatchParams::apply("deploy-dry-run").force();
    let namespace = objects
        .iter()
        .find(|o| o["kind"] == "Namespace")
        .expect("the Namespace");
    Api::<k8s_openapi::api::core::v1::Namespace>::all(admin.clone())
        .patch(ns, &apply, &Patch::Apply(namespace))
        .await
        .expect("apply the Namespace");
    let dry_run = PatchParams {
        dry_run: true,
        ..apply
    };
    let mut refused = Vec::new();
    for object in &objects {
        let (kind, name) = kind_and_name(object);
        let api_version = object["apiVersion"].as_str().expect("apiVersion");
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, &kind);
        let (resource, capabilities) = discovery::pinned_kind(&admin, &gvk)
            .await
            .unwrap_or_else(|e| panic!("{api_version} {kind} is not served: {e}"));
        let api: Api<DynamicObject> = match capabilities.scope {
            Scope::Cluster => Api::all_with(admin.clone(), &resource),
            Scope::Namespaced => Api::namespaced_with(admin.clone(), ns, &resource),
        };
        match api.patch(&name, &dry_run, &Patch::Apply(object)).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) => {
                refused.push(format!("{kind} {name}: {}", status.message))
            }
            Err(e) => refused.push(format!("{kind} {name}: {e}")),
        }
    }
    assert!(refused.is_empty(), "refused in a dry run: {refused:#?}");
}

/// `kubectl apply -k deploy/` applies to a real apiserver; the Deployment is wired to the
/// Service, probes and security settings the operator needs; and the ServiceAccount it creates
/// holds the rights the operator uses, and not more.
#[tokio::test]
async fn deploy_manifests_apply_and_grant_the_operator_its_rights() {
    cluster::install_crypto_provider();
    let cluster = cluster::cluster().await;
    let admin = cluster.client().await;
    crds::install(&admin).await;
    let out = cluster
        .kubectl()
        .args(["apply", "--server-side", "--force-conflicts"])
        .args(["-k", concat!(env!("CARGO_MANIFEST_DIR"), "/deploy")])
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl apply -k deploy/: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let ns = "imagestream-operator";
    let service = Api::<Service>::namespaced(admin.clone(), ns)
        .get("imagestream-operator")
        .await
        .expect("the Service");
    let deployment = Api::<Deployment>::namespaced(admin.clone(), ns)
        .get("imagestream-operator")
        .await
        .expect("the Deployment");
    let spec = deployment.spec.expect("deployment spec");
    assert_eq!(spec.replicas, Some(2), "a leader and a standby");
    let pod = spec.template.spec.expect("pod spec");
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("imagestream-operator")
    );
    let container = &pod.containers[0];
    let container_port = |name: &str| {
        container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| u16::try_from(p.container_port).ok())
    };
    assert_eq!(container_port("webhooks"), Some(admission::DEFAULT_PORT));
    assert_eq!(container_port("metrics"), Some(probes::DEFAULT_PORT));
    let service_ports: Vec<(String, i32, Value)> = service
        .spec
        .and_then(|s| s.ports)
        .expect("ports")
        .into_iter()
        .map(|p| {
            let target = serde_json::to_value(&p.target_port).expect("json");
            (p.name.unwrap_or_default(), p.port, target)
        })
        .collect();
    assert_eq!(
        service_ports,
        [
            ("webhooks".into(), 443, json!("webhooks")),
            (
                "metrics".into(),
                i32::from(probes::DEFAULT_PORT),
                json!("metrics")
            ),
        ]
    );
    let probe = |probe: Option<&Probe>| {
        let get = probe
            .and_then(|p| p.http_get.clone())
            .expect("an HTTP probe");
        let port = serde_json::to_value(&get.port).expect("json");
        (get.path.unwrap_or_default(), port, get.scheme)
    };
    assert_eq!(
        probe(container.liveness_probe.as_ref()),
        ("/livez".into(), json!("metrics"), Some("HTTP".into()))
    );
    assert_eq!(
        probe(container.readiness_probe.as_ref()),
        ("/readyz".into(), json!("metrics"), Some("HTTP".into()))
    );
    let env: Vec<&str> = container
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    assert!(
        env.contains(&"POD_NAME") && env.contains(&"POD_NAMESPACE"),
        "{env:?}"
    );
    let resources = container.resources.as_ref().expect("resources");
    for (what, quantities) in [
        ("requests", &resources.requests),
        ("limits", &resources.limits),
    ] {
        let quantities = quantities.as_ref().expect(what);
        assert!(
            quantities.contains_key("cpu") && quantities.contains_key("memory"),
            "{what}: {quantities:?}"
        );
    }
    let security = container
        .security_context
        .as_ref()
        .expect("securityContext");
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(
        security.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_string()])
    );
    let pod_security = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(pod_security.run_as_user, Some(65532), "the image's user");
    assert_eq!(
        pod_security
            .seccomp_profile
            .as_ref()
            .map(|p| p.type_.as_str()),
        Some("RuntimeDefault")
    );

    // what the controllers, the webhooks and the leader election do, asked as the
    // ServiceAccount itself
    let account = cluster
        .service_account_client(ns, "imagestream-operator")
        .await;
    let checks: [(&str, &str, &str, &str, Option<&str>); 9] = [
        ("image.openshift.io", "imagestreams", "", "watch", None),
        (
            "image.openshift.io",
            "imagestreams",
            "status",
            "update",
            None,
        ),
        ("image.openshift.io", "images", "", "create", None),
        ("", "secrets", "", "list", None),
        ("events.k8s.io", "events", "", "create", None),
        (
            "authorization.k8s.io",
            "subjectaccessreviews",
            "",
            "create",
            None,
        ),
        (
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
            "",
            "patch",
            None,
        ),
        (
            "",
            "secrets",
            "",
            "update",
            Some("imagestream-operator-webhook-ca"),
        ),
        (
            "coordination.k8s.io",
            "leases",
            "",
            "update",
            Some("imagestream-operator"),
        ),
    ];
    for (group, resource, subresource, verb, name) in checks {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    group: Some(group.into()),
                    resource: Some(resource.into()),
                    subresource: Some(subresource.into()),
                    verb: Some(verb.into()),
                    namespace: Some(ns.into()),
                    name: name.map(Into::into),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let answer = Api::<SelfSubjectAccessReview>::all(account.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .expect("SelfSubjectAccessReview");
        assert!(
            answer.status.is_some_and(|s| s.allowed),
            "{verb} {group}/{resource}/{subresource} {name:?} not granted"
        );
    }
    // and not more than that: the operator never deletes streams
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some("image.openshift.io".into()),
                resource: Some("imagestreams".into()),
                verb: Some("delete".into()),
                namespace: Some(ns.into()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(account.client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SelfSubjectAccessReview");
    assert!(!answer.status.is_some_and(|s| s.allowed));
}

/// ImageStreamImport under the webhooks (semantics 5.4, design.md section 4): applied to an
/// existing stream, a new digest of a tag becomes a new history entry with E = the S the
/// webhook stored, a new tag is created with E = S, the tag's Source reference policy stays
/// although the request asks for Local (10.3 case 46), and nothing is imported or written
/// afterwards. Under a LimitRange the spec write is refused: the request is answered without
/// `status.import` and with a `LimitExceeded` Warning Event, the spec is unchanged, and the
/// tag the import would have added carries a `LimitExceeded` condition.
#[tokio::test]
async fn image_stream_imports_under_the_webhooks() {
    let reg = RegistryOptions::plain().start();
    let d1 = push(&reg, "app", "v1", 841).await;
    let op = Running::start("op-isi").await;
    let api = op.streams();
    let requests: Api<ImageStreamImport> = Api::namespaced(op.admin.clone(), &op.namespace);
    let v1 = reg.image_ref("app", "v1");
    api.create(
        &PostParams::default(),
        &stream("app", json!([docker_tag("v1", &v1)])),
    )
    .await
    .expect("create");
    let first = wait_for(&api, "app", |s| !items(s, "v1").is_empty()).await;
    assert_eq!(items(&first, "v1")[0].image, d1);

    let d2 = push(&reg, "app", "v1", 842).await;
    let d3 = push(&reg, "app", "v2", 843).await;
    let mut local = isi_image(&v1, "v1");
    local["referencePolicy"] = json!({ "type": "Local" });
    let answer = import(
        &requests,
        json!([local, isi_image(&reg.image_ref("app", "v2"), "v2")]),
    )
    .await;
    assert!(answer.import.is_some(), "status.import");
    let applied = api.get("app").await.expect("get stream");
    let history: Vec<&str> = items(&applied, "v1")
        .iter()
        .map(|e| e.image.as_str())
        .collect();
    assert_eq!(history, [d2.as_str(), d1.as_str()]);
    for tag in ["v1", "v2"] {
        assert_eq!(
            Some(items(&applied, tag)[0].generation),
            spec_generation(&applied, tag),
            "E = S for {tag}"
        );
    }
    assert_eq!(items(&applied, "v2")[0].image, d3);
    let v1_tag = applied.spec.tag("v1").expect("v1");
    assert_eq!(
        v1_tag.reference_policy.type_,
        TagReferencePolicyType::Source
    );

    // settled: the imagestream controller finds nothing to import
    tokio::time::sleep(Duration::from_secs(1)).await;
    let version = api.get("app").await.expect("get").resource_version();
    let writes = op.status_writes();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        api.get("app").await.expect("get").resource_version(),
        version
    );
    assert_eq!(op.status_writes(), writes);

    // a LimitRange of two references: a third is refused
    cluster::limit_image_streams(&op.admin, &op.namespace, "openshift.io/image-tags", "2").await;
    let v3 = reg.image_ref("app", "v3");
    let mut grown = api.get("app").await.expect("get");
    grown
        .spec
        .tags
        .push(serde_json::from_value(docker_tag("v3", &v3)).expect("tag"));
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.replace("app", &dry_run, &grown).await.is_ok() {
        assert!(Instant::now() < deadline, "the limit never applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    push(&reg, "app", "v3", 844).await;
    requests
        .delete("app", &DeleteParams::default())
        .await
        .expect("remove the first request");
    let deadline = Instant::now() + Duration::from_secs(10);
    while requests
        .get_opt("app")
        .await
        .expect("get request")
        .is_some()
    {
        assert!(Instant::now() < deadline, "the first request stays");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = api.get("app").await.expect("get");
    let answer = import(&requests, json!([isi_image(&v3, "v3")])).await;
    assert!(answer.import.is_none(), "not applied");
    assert_eq!(answer.images[0].status.status, "Success");
    let refused = api.get("app").await.expect("get");
    assert_eq!(refused.spec, before.spec, "the spec is unchanged");
    let v3_status = refused
        .status
        .as_ref()
        .and_then(|s| s.tag("v3"))
        .expect("a status tag for v3");
    assert_eq!(v3_status.conditions[0].reason, "LimitExceeded");
    assert!(
        v3_status.conditions[0]
            .message
            .contains("exceeds the maximum limit")
    );
    let refused = cluster::events(
        &op.admin,
        &op.namespace,
        "ImageStreamImport",
        "app",
        "LimitExceeded",
    )
    .await;
    assert!(!refused.is_empty(), "a LimitExceeded Event on the request");
    op.finish().await;
}

/// A `spec.images` entry of an ImageStreamImport targeting `to`.
fn isi_image(from: &str, to: &str) -> Value {
    json!({
        "from": { "kind": "DockerImage", "name": from },
        "to": { "name": to },
        "importPolicy": { "insecure": true },
    })
}

/// Creates the `import: true` request for stream `app` and waits for its answer.
async fn import(api: &Api<ImageStreamImport>, images: Value) -> ImageStreamImportStatus {
    let isi: ImageStreamImport = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1",
        "kind": "ImageStreamImport",
        "metadata": { "name": "app" },
        "spec": { "import": true, "images": images },
    }))
    .expect("request");
    api.create(&PostParams::default(), &isi)
        .await
        .expect("create request");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = api.get("app").await.expect("get request").status {
            return status;
        }
        assert!(Instant::now() < deadline, "no answer within 30s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
