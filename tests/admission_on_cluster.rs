//! The admission webhooks against the real kube-apiserver: served by this process over HTTPS
//! with the self-managed CA, registered by `url:` (limited to the test's namespace by a label,
//! so tests sharing a cluster never see each other's webhooks), and running under the
//! operator's ServiceAccount bound to `deploy/admission-rbac.yaml` (not admin).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use imagestream_operator::admission::{
    self, AdmissionSettings, CertPolicy, Endpoint, Hook, KubeAuthorizer, KubeLimitRanges, Options,
    Registration, SecretRef, Webhooks,
};
use imagestream_operator::api::ImageStream;
use imagestream_operator::api::image_stream::ImportMode;
use imagestream_operator::api::image_stream_import::ImageStreamImport;
use imagestream_operator::config::{ImageConfigSpec, RegistryLocation};
use support::{cluster, crds, rbac};

const SELECTOR_LABEL: &str = "imagestream-operator.test/admission";
const CA_SECRET: &str = "imagestream-operator-webhook-ca";
const OPERATOR_ACCOUNT: &str = "operator";

/// How to stop a running server, and its task.
type Running = (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), admission::Error>>,
);

/// One webhook server of this process, registered for one namespace.
struct Webhook {
    admin: Client,
    namespace: String,
    options: Options,
    webhooks: Arc<Webhooks>,
    settings: watch::Sender<Arc<AdmissionSettings>>,
    running: Option<Running>,
    port: u16,
    account: cluster::ServiceAccountClient,
}

impl Webhook {
    /// A fresh namespace with the webhooks registered for it and serving.
    async fn start(prefix: &str) -> Webhook {
        Webhook::start_with(prefix, CertPolicy::default()).await
    }

    /// As [`Self::start`], with certificate lifetimes of the test's choosing.
    async fn start_with(prefix: &str, certificates: CertPolicy) -> Webhook {
        let cluster = cluster::cluster().await;
        let admin = cluster.client().await;
        crds::install(&admin).await;
        let namespace = cluster::fresh_namespace(&admin, prefix).await;
        label_namespace(&admin, &namespace).await;
        rbac::bind_deploy_roles(
            &admin,
            &namespace,
            OPERATOR_ACCOUNT,
            &["deploy/admission-rbac.yaml"],
        )
        .await;
        let account = cluster
            .service_account_client(&namespace, OPERATOR_ACCOUNT)
            .await;
        let (settings, _) = watch::channel(Arc::new(AdmissionSettings::default()));
        let webhooks = Arc::new(
            Webhooks::new(
                KubeAuthorizer::new(account.client.clone()),
                settings.subscribe(),
            )
            .with_limit_ranges(KubeLimitRanges::watching(account.client.clone())),
        );
        let options = Options {
            ca_secret: SecretRef {
                namespace: namespace.clone(),
                name: CA_SECRET.into(),
            },
            dns_names: vec!["localhost".into(), "127.0.0.1".into()],
            registration: Registration {
                mutating_name: format!("imagestream-test-{namespace}"),
                validating_name: format!("imagestream-test-{namespace}"),
                endpoint: Endpoint::Url(String::new()),
                namespace_selector: Some(LabelSelector {
                    match_labels: Some([(SELECTOR_LABEL.to_string(), namespace.clone())].into()),
                    ..LabelSelector::default()
                }),
                timeout_seconds: 10,
                signatures: false,
                import_timeout_seconds: 30,
                image_deletes: admission::ImageDeletes::Unguarded,
                operator: None,
                image_lookup: None,
            },
            certificates,
        };
        let mut webhook = Webhook {
            admin,
            namespace,
            options,
            webhooks,
            settings,
            running: None,
            port: 0,
            account,
        };
        webhook.serve().await;
        webhook
    }

    /// Starts serving on a new port (again, after [`Self::stop`]) and waits until the
    /// apiserver calls it.
    async fn serve(&mut self) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        self.port = port;
        self.options.registration.endpoint = Endpoint::Url(format!("https://127.0.0.1:{port}"));
        let (stop, stopped) = oneshot::channel::<()>();
        let client = self.account.client.clone();
        let task = tokio::spawn(admission::serve(
            client,
            listener,
            self.options.clone(),
            self.webhooks.clone(),
            async {
                let _ = stopped.await;
            },
            || (),
        ));
        self.running = Some((stop, task));
        self.wait_until_called().await;
    }

    /// A dry-run create comes back mutated once the apiserver has picked up the configuration.
    async fn wait_until_called(&self) {
        let api = self.streams();
        let probe = stream("probe", json!([docker("t", "nginx:1")]));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((_, task)) = &self.running {
                assert!(!task.is_finished(), "the webhook server stopped");
            }
            match api
                .create(
                    &PostParams {
                        dry_run: true,
                        ..PostParams::default()
                    },
                    &probe,
                )
                .await
            {
                Ok(s) if s.spec.tags[0].generation == Some(1) => return,
                other => assert!(
                    Instant::now() < deadline,
                    "the webhooks were not called: {other:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(());
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("the webhook server stops")
                .expect("the server task")
                .expect("the webhook server ends without error");
        }
    }

    /// Stops serving and removes the webhook configurations.
    async fn finish(mut self) {
        self.stop().await;
        let dp = DeleteParams::default();
        let name = &self.options.registration.mutating_name;
        let _ = Api::<MutatingWebhookConfiguration>::all(self.admin.clone())
            .delete(name, &dp)
            .await;
        let _ = Api::<ValidatingWebhookConfiguration>::all(self.admin.clone())
            .delete(name, &dp)
            .await;
    }

    fn streams(&self) -> Api<ImageStream> {
        Api::namespaced(self.admin.clone(), &self.namespace)
    }

    async fn ca_bundles(&self) -> (String, String) {
        let name = &self.options.registration.mutating_name;
        let m = Api::<MutatingWebhookConfiguration>::all(self.admin.clone())
            .get(name)
            .await
            .expect("mutating configuration");
        let v = Api::<ValidatingWebhookConfiguration>::all(self.admin.clone())
            .get(name)
            .await
            .expect("validating configuration");
        let bundle = |c: &k8s_openapi::api::admissionregistration::v1::WebhookClientConfig| {
            String::from_utf8(c.ca_bundle.clone().expect("caBundle").0).expect("PEM")
        };
        let mb = bundle(&m.webhooks.expect("webhooks")[0].client_config);
        let vb = v.webhooks.expect("webhooks");
        assert_eq!(bundle(&vb[0].client_config), bundle(&vb[1].client_config));
        (mb, bundle(&vb[0].client_config))
    }
}

async fn label_namespace(admin: &Client, namespace: &str) {
    let patch = json!({"metadata": {"labels": {SELECTOR_LABEL: namespace}}});
    Api::<Namespace>::all(admin.clone())
        .patch(namespace, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("label the namespace");
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: kind.into(),
        name: name.into(),
    }
}

async fn bind_role(admin: &Client, namespace: &str, role: &str, subject: Subject) {
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some(format!("{role}-{}", subject.name)),
            ..ObjectMeta::default()
        },
        role_ref: role_ref("Role", role),
        subjects: Some(vec![subject]),
    };
    Api::<RoleBinding>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &binding)
        .await
        .expect("create the RoleBinding");
}

async fn create_role(admin: &Client, namespace: &str, name: &str, rules: Vec<PolicyRule>) {
    let role = Role {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        rules: Some(rules),
    };
    Api::<Role>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &role)
        .await
        .expect("create a Role");
}

fn rule(resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec!["image.openshift.io".into()]),
        resources: Some(resources.iter().map(|r| (*r).to_string()).collect()),
        verbs: verbs.iter().map(|v| (*v).to_string()).collect(),
        ..PolicyRule::default()
    }
}

fn stream(name: &str, tags: Value) -> ImageStream {
    serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1",
        "kind": "ImageStream",
        "metadata": {"name": name},
        "spec": {"tags": tags},
    }))
    .expect("an ImageStream")
}

fn docker(name: &str, from: &str) -> Value {
    json!({"name": name, "from": {"kind": "DockerImage", "name": from}})
}

fn generations(s: &ImageStream) -> Vec<(String, Option<i64>)> {
    s.spec
        .tags
        .iter()
        .map(|t| (t.name.clone(), t.generation))
        .collect()
}

fn api_error(result: Result<ImageStream, kube::Error>) -> Box<kube::core::Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn create_gives_every_tag_generation_one_sorted_unique_and_defaulted() {
    let webhook = Webhook::start("adm-create").await;
    let api = webhook.streams();
    let mut sent = docker("b", "nginx:1");
    sent["generation"] = json!(7);
    let created = api
        .create(
            &PostParams::default(),
            &stream(
                "s",
                json!([
                    sent,
                    docker("a", "nginx:2"),
                    docker("c", "nginx:3"),
                    docker("a", "nginx:4")
                ]),
            ),
        )
        .await
        .expect("create");
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(
        generations(&created),
        [
            ("a".to_string(), Some(1)),
            ("b".to_string(), Some(1)),
            ("c".to_string(), Some(1))
        ],
        "sorted, one per name, all S = 1"
    );
    let a = &created.spec.tags[0];
    assert_eq!(
        a.from.as_ref().map(|f| f.name.as_str()),
        Some("nginx:4"),
        "the last duplicate wins"
    );
    let stored = api.get("s").await.expect("get");
    for tag in &stored.spec.tags {
        let raw = serde_json::to_value(tag).expect("json");
        assert_eq!(raw["referencePolicy"]["type"], "Source", "{raw}");
        assert_eq!(raw["importPolicy"]["importMode"], "Legacy", "{raw}");
    }
    let counts = webhook.webhooks.counts(Hook::MutateImageStreams);
    assert!(counts.patched >= 2, "{counts:?}");

    // the cluster's imageStreamImportMode reaches the next write
    webhook.settings.send_replace(Arc::new(
        AdmissionSettings::from_image_config(Some(&ImageConfigSpec {
            image_stream_import_mode: Some("PreserveOriginal".into()),
            ..ImageConfigSpec::default()
        }))
        .expect("settings"),
    ));
    let created = api
        .create(
            &PostParams::default(),
            &stream("p", json!([docker("x", "nginx:1")])),
        )
        .await
        .expect("create");
    assert_eq!(
        created.spec.tags[0].import_policy.import_mode,
        ImportMode::PreserveOriginal
    );
    webhook.finish().await;
}

#[tokio::test]
async fn update_gives_only_changed_or_reset_tags_the_new_generation() {
    let webhook = Webhook::start("adm-update").await;
    let api = webhook.streams();
    api.create(
        &PostParams::default(),
        &stream(
            "s",
            json!([
                docker("a", "nginx:1"),
                docker("b", "nginx:1"),
                docker("c", "nginx:1")
            ]),
        ),
    )
    .await
    .expect("create");

    // a changes, b is re-sent with a made-up generation, c is sent with generation 0
    let mut next = api.get("s").await.expect("get");
    next.spec.tags[0].from.as_mut().expect("from").name = "nginx:2".into();
    next.spec.tags[1].generation = Some(99);
    next.spec.tags[2].generation = Some(0);
    let updated = api
        .replace("s", &PostParams::default(), &next)
        .await
        .expect("update");
    assert_eq!(updated.metadata.generation, Some(2));
    assert_eq!(
        generations(&updated),
        [
            ("a".to_string(), Some(2)),
            ("b".to_string(), Some(1)),
            ("c".to_string(), Some(2))
        ]
    );

    // a new tag through a merge patch (as kubectl does); the others keep theirs
    let mut tags = serde_json::to_value(&updated.spec.tags).expect("json");
    tags.as_array_mut()
        .expect("list")
        .push(docker("d", "nginx:1"));
    let patched = api
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"tags": tags}})),
        )
        .await
        .expect("patch");
    assert_eq!(patched.metadata.generation, Some(3));
    assert_eq!(
        generations(&patched),
        [
            ("a".to_string(), Some(2)),
            ("b".to_string(), Some(1)),
            ("c".to_string(), Some(2)),
            ("d".to_string(), Some(3))
        ]
    );

    // writing the same spec again (generations omitted, as a legacy client would) changes
    // nothing, and a policy-only change bumps G but no S
    let mut same = patched.clone();
    for tag in &mut same.spec.tags {
        tag.generation = None;
    }
    let unchanged = api
        .replace("s", &PostParams::default(), &same)
        .await
        .expect("update");
    assert_eq!(unchanged.metadata.generation, Some(3));
    assert_eq!(generations(&unchanged), generations(&patched));
    let mut policy = unchanged.clone();
    policy.spec.tags[3].import_policy.scheduled = true;
    let policy = api
        .replace("s", &PostParams::default(), &policy)
        .await
        .expect("update");
    assert_eq!(policy.metadata.generation, Some(4));
    assert_eq!(generations(&policy), generations(&patched));
    webhook.finish().await;
}

#[tokio::test]
async fn status_subresource_is_not_mutated() {
    let webhook = Webhook::start("adm-status").await;
    let api = webhook.streams();
    api.create(
        &PostParams::default(),
        &stream("s", json!([docker("b", "nginx:1")])),
    )
    .await
    .expect("create");
    let before = (
        webhook.webhooks.counts(Hook::MutateImageStreams),
        webhook.webhooks.counts(Hook::ValidateImageStreams),
    );
    // unsorted status tags, one not in spec, generations the mutating rules would never write
    // (valid pull specs: a user's status write is held to upstream's status rules)
    let (aa, bb) = (
        format!("sha256:{}", "a".repeat(64)),
        format!("sha256:{}", "b".repeat(64)),
    );
    let status = json!({"status": {"dockerImageRepository": "", "tags": [
        {"tag": "z", "items": [{"created": "2031-01-01T00:00:00Z", "dockerImageReference": format!("nginx@{aa}"), "image": aa, "generation": 9}]},
        {"tag": "b", "items": [{"created": "2031-01-01T00:00:00Z", "dockerImageReference": format!("nginx@{bb}"), "image": bb, "generation": 5}]},
    ]}});
    let written = api
        .patch_status("s", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status patch");
    assert_eq!(written.metadata.generation, Some(1));
    assert_eq!(generations(&written), [("b".to_string(), Some(1))]);
    let tags: Vec<_> = written
        .status
        .as_ref()
        .expect("status")
        .tags
        .iter()
        .map(|t| (t.tag.clone(), t.items[0].generation))
        .collect();
    assert_eq!(
        tags,
        [("z".to_string(), 9), ("b".to_string(), 5)],
        "status stored as written"
    );
    let after = (
        webhook.webhooks.counts(Hook::MutateImageStreams),
        webhook.webhooks.counts(Hook::ValidateImageStreams),
    );
    assert_eq!(
        after.0.requests, before.0.requests,
        "no mutating review for /status"
    );
    assert_eq!(
        after.1.requests, before.1.requests,
        "no validating review for /status"
    );
    webhook.finish().await;
}

#[tokio::test]
async fn invalid_streams_and_forbidden_registries_are_rejected_with_upstreams_messages() {
    let webhook = Webhook::start("adm-invalid").await;
    let api = webhook.streams();
    let bad = json!([{"name": "bad", "from": {"kind": "ImageStreamTag", "name": "a:b:c"}}]);
    let status = api_error(api.create(&PostParams::default(), &stream("s", bad)).await);
    assert_eq!(status.code, 422, "{status:?}");
    assert_eq!(status.reason, "Invalid");
    assert_eq!(
        status.message,
        r#"admission webhook "imagestreams.admission.imagestream.io" denied the request: ImageStream.image.openshift.io "s" is invalid: spec.tags[bad].from.name: Invalid value: "a:b:c": must be of the form <tag>, <repo>:<tag>, <id>, or <repo>@<id>"#
    );
    let causes = status
        .details
        .as_ref()
        .map(|d| d.causes.clone())
        .unwrap_or_default();
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].field, "spec.tags[bad].from.name");
    assert_eq!(causes[0].reason, "FieldValueInvalid");

    // allowedRegistriesForImport
    webhook.settings.send_replace(Arc::new(
        AdmissionSettings::from_image_config(Some(&ImageConfigSpec {
            allowed_registries_for_import: Some(vec![RegistryLocation {
                domain_name: "quay.io".into(),
                insecure: None,
            }]),
            ..ImageConfigSpec::default()
        }))
        .expect("settings"),
    ));
    let status = api_error(
        api.create(
            &PostParams::default(),
            &stream("r", json!([docker("t", "docker.io/library/nginx:1")])),
        )
        .await,
    );
    assert_eq!(status.code, 422);
    assert!(
        status.message.ends_with(
            r#"spec.tags[t].from.name: Forbidden: registry "docker.io" not allowed by whitelist: "quay.io:443""#
        ),
        "{}",
        status.message
    );
    api.create(
        &PostParams::default(),
        &stream("q", json!([docker("t", "quay.io/a/b:1")])),
    )
    .await
    .expect("an allowed registry");

    // ImageStreamImport: a user who may not create Images is held to the list; admin is not
    let cluster = cluster::cluster().await;
    let dev = cluster
        .service_account_client(&webhook.namespace, "dev")
        .await;
    create_role(
        &webhook.admin,
        &webhook.namespace,
        "importer",
        vec![rule(&["imagestreamimports"], &["create"])],
    )
    .await;
    bind_role(
        &webhook.admin,
        &webhook.namespace,
        "importer",
        Subject {
            kind: "ServiceAccount".into(),
            name: "dev".into(),
            namespace: Some(webhook.namespace.clone()),
            ..Subject::default()
        },
    )
    .await;
    let isi: ImageStreamImport = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStreamImport",
        "metadata": {"name": "i"},
        "spec": {"import": false, "images": [{"from": {"kind": "DockerImage", "name": "docker.io/library/nginx:1"}}]},
    }))
    .expect("an ImageStreamImport");
    let as_dev: Api<ImageStreamImport> = Api::namespaced(dev.client.clone(), &webhook.namespace);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match as_dev.create(&PostParams::default(), &isi).await {
            Err(kube::Error::Api(s)) if s.code == 403 && Instant::now() < deadline => {
                // RBAC for the new binding not visible yet
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(kube::Error::Api(s)) => break s,
            other => panic!("expected a denial, got {other:?}"),
        }
    };
    assert_eq!(status.code, 422, "{status:?}");
    assert!(
        status.message.contains(
            r#"spec.images[0].from.name: Forbidden: importing images from registry "registry-1.docker.io:443" is forbidden"#
        ),
        "{}",
        status.message
    );
    let as_admin: Api<ImageStreamImport> =
        Api::namespaced(webhook.admin.clone(), &webhook.namespace);
    as_admin
        .create(&PostParams::default(), &isi)
        .await
        .expect("admin may create Images, so any registry");
    webhook.finish().await;
}

/// 10.1 case 24 against the apiserver: with a LimitRange of `openshift.io/image-tags` = 1 in
/// the namespace, a stream with two distinct references is refused with upstream's text, one
/// with a single reference is stored, and an update that adds a second is refused too (read
/// under the operator's admission RBAC).
#[tokio::test]
async fn limit_ranges_cap_the_references_a_stream_may_add() {
    let webhook = Webhook::start("adm-limits").await;
    support::cluster::limit_image_streams(
        &webhook.admin,
        &webhook.namespace,
        "openshift.io/image-tags",
        "1",
    )
    .await;
    let api = webhook.streams();
    let two = stream(
        "two",
        json!([docker("a", "quay.io/a/b:1"), docker("b", "quay.io/a/b:2")]),
    );
    // the webhook's cache sees the new LimitRange within moments (dry runs write nothing)
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.create(&dry_run, &two).await.is_ok() {
        assert!(Instant::now() < deadline, "the limit never applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = api_error(api.create(&PostParams::default(), &two).await);
    assert_eq!(status.code, 422, "{status:?}");
    assert!(
        status.message.ends_with(
            "imageStream: Forbidden: requested usage of openshift.io/image-tags exceeds the maximum limit per openshift.io/ImageStream (2 > 1)"
        ),
        "{}",
        status.message
    );
    api.create(
        &PostParams::default(),
        &stream("one", json!([docker("a", "quay.io/a/b:1")])),
    )
    .await
    .expect("one reference is within the limit");
    let add =
        json!({ "spec": { "tags": [docker("a", "quay.io/a/b:1"), docker("b", "quay.io/a/b:2")] } });
    let status = api_error(
        api.patch("one", &PatchParams::default(), &Patch::Merge(&add))
            .await,
    );
    assert_eq!(status.code, 422, "{status:?}");
    webhook.finish().await;
}

#[tokio::test]
async fn cross_namespace_reference_needs_get_imagestreams_layers_in_the_source() {
    let webhook = Webhook::start("adm-xns").await;
    let cluster = cluster::cluster().await;
    let source = cluster::fresh_namespace(&webhook.admin, "adm-xns-source").await;
    Api::<ImageStream>::namespaced(webhook.admin.clone(), &source)
        .create(
            &PostParams::default(),
            &stream("src", json!([docker("latest", "nginx:1")])),
        )
        .await
        .expect("the source stream");

    let dev = cluster
        .service_account_client(&webhook.namespace, "dev")
        .await;
    let dev_subject = Subject {
        kind: "ServiceAccount".into(),
        name: "dev".into(),
        namespace: Some(webhook.namespace.clone()),
        ..Subject::default()
    };
    create_role(
        &webhook.admin,
        &webhook.namespace,
        "editor",
        vec![rule(
            &["imagestreams"],
            &["get", "list", "create", "update", "patch"],
        )],
    )
    .await;
    bind_role(
        &webhook.admin,
        &webhook.namespace,
        "editor",
        dev_subject.clone(),
    )
    .await;

    let as_dev: Api<ImageStream> = Api::namespaced(dev.client.clone(), &webhook.namespace);
    let tagged = stream(
        "mine",
        json!([{"name": "t", "from": {"kind": "ImageStreamTag", "name": "src:latest", "namespace": source}}]),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match as_dev.create(&PostParams::default(), &tagged).await {
            Err(kube::Error::Api(s)) if s.code == 403 && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(kube::Error::Api(s)) => break s,
            other => panic!("expected a denial, got {other:?}"),
        }
    };
    assert_eq!(status.code, 422, "{status:?}");
    let expected = format!(r#"spec.tags[t].from: Forbidden: {source}/src: "" """#);
    assert!(status.message.ends_with(&expected), "{}", status.message);

    // the same tag from the stream's own namespace needs nothing
    as_dev
        .create(
            &PostParams::default(),
            &stream(
                "local",
                json!([{"name": "t", "from": {"kind": "ImageStreamTag", "name": "mine:latest"}}]),
            ),
        )
        .await
        .expect("a same-namespace reference");

    // grant get imagestreams/layers on the source stream
    create_role(
        &webhook.admin,
        &source,
        "puller",
        vec![PolicyRule {
            resource_names: Some(vec!["src".into()]),
            ..rule(&["imagestreams/layers"], &["get"])
        }],
    )
    .await;
    bind_role(&webhook.admin, &source, "puller", dev_subject).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let created = loop {
        match as_dev.create(&PostParams::default(), &tagged).await {
            Ok(created) => break created,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "still refused after the grant: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert_eq!(generations(&created), [("t".to_string(), Some(1))]);
    webhook.finish().await;
}

#[tokio::test]
async fn ca_secret_is_reused_on_restart() {
    let mut webhook = Webhook::start("adm-restart").await;
    let secrets: Api<Secret> = Api::namespaced(webhook.admin.clone(), &webhook.namespace);
    let secret = secrets.get(CA_SECRET).await.expect("the CA Secret");
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let bundles = webhook.ca_bundles().await;
    assert_eq!(bundles.0, bundles.1, "one bundle in both configurations");
    let ca_pem = secret
        .data
        .as_ref()
        .and_then(|d| d.get("tls.crt"))
        .expect("tls.crt")
        .0
        .clone();
    assert_eq!(bundles.0.as_bytes(), ca_pem, "the bundle is the CA");

    webhook.stop().await;
    webhook.serve().await;
    let again = secrets.get(CA_SECRET).await.expect("the CA Secret");
    assert_eq!(
        again.resource_version(),
        secret.resource_version(),
        "the Secret is not rewritten"
    );
    assert_eq!(
        webhook.ca_bundles().await,
        bundles,
        "same caBundle after restart"
    );
    let created = webhook
        .streams()
        .create(
            &PostParams::default(),
            &stream("after", json!([docker("t", "nginx:1")])),
        )
        .await
        .expect("create after restart");
    assert_eq!(created.spec.tags[0].generation, Some(1));
    webhook.finish().await;
}

/// The certificate a fresh TLS handshake with the webhook server presents, verified against
/// `roots_pem` (one or more PEM certificates); `None` if it does not verify.
async fn served_leaf(port: u16, roots_pem: &str) -> Option<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(roots_pem.as_bytes()) {
        roots.add(cert.expect("a PEM certificate")).expect("a root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("a server name");
    let tls = connector.connect(name, tcp).await.ok()?;
    Some(tls.get_ref().1.peer_certificates()?.first()?.to_vec())
}

fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?.0.clone();
    String::from_utf8(bytes).ok()
}

/// Polls `check` every 200 ms until it returns `Some`, for at most `limit`.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn certificates_are_renewed_before_expiry_and_the_bundle_follows() {
    // serving certificates due after ~5 s, the CA after ~14 s
    let policy = CertPolicy {
        ca_lifetime: Duration::from_secs(24),
        serving_lifetime: Duration::from_secs(8),
        check_interval: Duration::from_millis(500),
    };
    let webhook = Webhook::start_with("adm-rotate", policy).await;
    let secrets: Api<Secret> = Api::namespaced(webhook.admin.clone(), &webhook.namespace);
    let first_ca =
        secret_text(&secrets.get(CA_SECRET).await.expect("CA Secret"), "tls.crt").expect("tls.crt");
    let first_leaf = served_leaf(webhook.port, &first_ca)
        .await
        .expect("the serving certificate chains to the CA");

    // a new serving certificate from the same CA
    let port = webhook.port;
    let first_ca_ref = &first_ca;
    let first_leaf_ref = &first_leaf;
    eventually(
        Duration::from_secs(20),
        "a renewed serving certificate",
        || async move {
            served_leaf(port, first_ca_ref)
                .await
                .filter(|leaf| leaf != first_leaf_ref)
        },
    )
    .await;

    // a new CA: the old one kept in the Secret and in both configurations' bundle
    let renewed = eventually(Duration::from_secs(30), "a renewed CA", || async {
        let secret = secrets.get(CA_SECRET).await.ok()?;
        let ca = secret_text(&secret, "tls.crt")?;
        (ca != first_ca).then_some(secret)
    })
    .await;
    assert_eq!(
        secret_text(&renewed, "ca-previous.crt").as_deref(),
        Some(first_ca.as_str()),
        "the replaced CA is kept while valid"
    );
    let new_ca = secret_text(&renewed, "tls.crt").expect("tls.crt");
    // both configurations carry both CAs (the mutating one is written first)
    eventually(
        Duration::from_secs(10),
        "the bundle with both CAs",
        || async {
            let (mutating, validating) = webhook.ca_bundles().await;
            let both = |b: &str| b.contains(&new_ca) && b.contains(&first_ca);
            (both(&mutating) && both(&validating)).then_some(())
        },
    )
    .await;
    let new_ca_ref = &new_ca;
    eventually(
        Duration::from_secs(10),
        "a serving certificate from the new CA",
        || async move { served_leaf(port, new_ca_ref).await },
    )
    .await;

    // the apiserver keeps calling the webhooks through all of it
    let created = webhook
        .streams()
        .create(
            &PostParams::default(),
            &stream("rotated", json!([docker("t", "nginx:1")])),
        )
        .await
        .expect("create after rotation");
    assert_eq!(created.spec.tags[0].generation, Some(1));
    webhook.finish().await;
}

/// Figures, not a benchmark: end-to-end create latency with and without the webhooks, and the
/// time the webhooks spend per review. Run with `--no-capture` to see them.
#[tokio::test]
async fn webhook_latency_figures() {
    const N: usize = 40;
    let webhook = Webhook::start("adm-latency").await;
    let plain_namespace = cluster::fresh_namespace(&webhook.admin, "adm-latency-plain").await;
    let plain: Api<ImageStream> = Api::namespaced(webhook.admin.clone(), &plain_namespace);
    let hooked = webhook.streams();
    let tags = json!([docker("a", "nginx:1"), docker("b", "nginx:2")]);
    let measure = async |api: &Api<ImageStream>, prefix: &str| {
        let mut times = Vec::with_capacity(N);
        for i in 0..N {
            let started = Instant::now();
            api.create(
                &PostParams::default(),
                &stream(&format!("{prefix}{i}"), tags.clone()),
            )
            .await
            .expect("create");
            times.push(started.elapsed());
        }
        times.sort();
        times
    };
    let without = measure(&plain, "p").await;
    let with = measure(&hooked, "h").await;
    let median = |t: &[Duration]| t[t.len() / 2];
    let m = webhook.webhooks.counts(Hook::MutateImageStreams);
    let v = webhook.webhooks.counts(Hook::ValidateImageStreams);
    eprintln!(
        "create latency over {N} streams: median {:?} without webhooks, {:?} with (max {:?}); \
         server time per review: mutate mean {} µs (max {}), validate mean {} µs (max {})",
        median(&without),
        median(&with),
        with[N - 1],
        m.total_micros / m.requests.max(1),
        m.max_micros,
        v.total_micros / v.requests.max(1),
        v.max_micros,
    );
    assert!(
        median(&with) < Duration::from_secs(1),
        "webhooks too slow: {:?}",
        median(&with)
    );
    assert_eq!(m.failed + v.failed, 0);
    webhook.finish().await;
}
