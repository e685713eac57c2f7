//! The controllers running in the test process under the operator's own ServiceAccount bound
//! to `deploy/rbac.yaml` (not admin), scoped to a fresh namespace, and the stream helpers the
//! tests of those controllers share; and the whole operator (webhooks and controllers,
//! [`Running`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::net::TcpListener;

use imagestream_operator::admission::{
    self, CertPolicy, Endpoint, ImageDeletes, LookupRegistration, Registration, SecretRef,
};
use imagestream_operator::api::image_stream::{ImageStream, TagEvent};
use imagestream_operator::controller::pruner::PrunerOptions;
use imagestream_operator::controller::{self, Metrics, Options, Settings};
use imagestream_operator::operator::{self, WebhookOptions};

use super::{cluster, crds, rbac};

/// The controllers of one namespace, stopped when dropped.
pub struct Operator {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

/// A fresh namespace (named after `prefix`) with the controllers running in it; returns an
/// admin client, the namespace and the running operator.
pub async fn start(prefix: &str, settings: Settings) -> (Client, String, Operator) {
    start_with_pruner(prefix, settings, |_| None).await
}

/// As [`start`], following the pruner `pruner` names for the fresh namespace.
pub async fn start_with_pruner(
    prefix: &str,
    settings: Settings,
    pruner: impl FnOnce(&str) -> Option<PrunerOptions>,
) -> (Client, String, Operator) {
    cluster::install_crypto_provider();
    let cluster = cluster::cluster().await;
    let admin = cluster.client().await;
    crds::install(&admin).await;
    let namespace = cluster::fresh_namespace(&admin, prefix).await;
    rbac::bind_deploy_roles(&admin, &namespace, "operator", &["deploy/rbac.yaml"]).await;
    let account = cluster.service_account_client(&namespace, "operator").await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = Options {
        watch_namespace: Some(namespace.clone()),
        settings: Some(settings),
        concurrency: 4,
        pruner: pruner(&namespace),
        ..Options::default()
    };
    let client = account.client.clone();
    let task = tokio::spawn(async move {
        let _account = account; // keeps the token's kubeconfig alive
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(e) = controller::run(client, options, shutdown).await {
            panic!("controller stopped: {e}");
        }
    });
    (
        admin,
        namespace,
        Operator {
            stop: Some(stop),
            task,
        },
    )
}

/// Creates stream `name` with spec `tags` (JSON, as a user writes them).
pub async fn create_stream(api: &Api<ImageStream>, name: &str, tags: serde_json::Value) {
    let stream: ImageStream = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1",
        "kind": "ImageStream",
        "metadata": { "name": name },
        "spec": { "tags": tags },
    }))
    .expect("stream");
    api.create(&PostParams::default(), &stream)
        .await
        .expect("create stream");
}

/// The history of a status tag, empty when it has none.
pub fn items<'a>(stream: &'a ImageStream, tag: &str) -> &'a [TagEvent] {
    stream
        .status
        .as_ref()
        .and_then(|s| s.tag(tag))
        .map_or(&[][..], |t| &t.items[..])
}

pub const SELECTOR_LABEL: &str = "imagestream-operator.test/operator";

/// The webhooks of a test's operator: served on 127.0.0.1:`port` by `url:`, for the
/// namespaces labelled `label`=`namespace`, with their CA in `namespace`; no image lookup,
/// no cluster-wide guards (a test turns on what it needs).
pub fn test_admission(namespace: &str, port: u16, label: &str) -> admission::Options {
    let configuration = format!("imagestream-operator-{namespace}");
    admission::Options {
        ca_secret: SecretRef {
            namespace: namespace.into(),
            name: "imagestream-operator-webhook-ca".into(),
        },
        dns_names: vec!["127.0.0.1".into()],
        registration: Registration {
            mutating_name: configuration.clone(),
            validating_name: configuration,
            endpoint: Endpoint::Url(format!("https://127.0.0.1:{port}")),
            namespace_selector: Some(LabelSelector {
                match_labels: Some([(label.to_string(), namespace.to_string())].into()),
                ..LabelSelector::default()
            }),
            timeout_seconds: 10,
            signatures: false,
            import_timeout_seconds: admission::registration::IMPORT_TIMEOUT_SECONDS,
            image_deletes: ImageDeletes::Unguarded,
            operator: None,
            image_lookup: None,
        },
        certificates: CertPolicy::default(),
    }
}
const ACCOUNT: &str = "operator";

/// The operator serving one namespace, stopped (and its webhooks removed) when finished.
pub struct Running {
    /// Port of /livez, /readyz and /metrics on 127.0.0.1.
    pub probes_port: u16,
    /// Port of the webhooks (and registry notifications, under `/hooks/`) on 127.0.0.1.
    pub webhook_port: u16,
    pub admin: Client,
    pub namespace: String,
    pub metrics: Arc<Metrics>,
    configuration: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), operator::Error>>,
    /// Set once the task has been awaited to its end.
    ended: bool,
}

impl Running {
    /// A fresh namespace served by the whole operator (webhooks limited to it by a label).
    pub async fn start(prefix: &str) -> Running {
        Running::start_with(prefix, false).await
    }

    /// As [`Running::start`]; `signatures` also registers the (cluster-wide) ImageSignature
    /// webhooks, which only one test at a time may do.
    pub async fn start_with(prefix: &str, signatures: bool) -> Running {
        Running::start_registered(prefix, |_, r| r.signatures = signatures).await
    }

    /// As [`Running::start`], with the webhook registration changed by `configure` (given the
    /// fresh namespace): the cluster-wide Image guard, the import webhook's timeout.
    pub async fn start_registered(
        prefix: &str,
        configure: impl FnOnce(&str, &mut Registration),
    ) -> Running {
        cluster::install_crypto_provider();
        let cluster = cluster::cluster().await;
        Running::start_on(cluster, prefix, configure, false, false).await
    }

    /// As [`Running::start_registered`] on `cluster` (a cluster of the test's own, for a test
    /// whose client looks at every namespace, as `oc adm prune` does).
    pub async fn start_registered_on(
        cluster: &cluster::TestCluster,
        prefix: &str,
        configure: impl FnOnce(&str, &mut Registration),
    ) -> Running {
        cluster::install_crypto_provider();
        Running::start_on(cluster, prefix, configure, false, false).await
    }

    /// As [`Running::start`] on `cluster`, with the controllers watching every namespace:
    /// only on a cluster of the test's own ([`cluster::TestCluster::start`]), where no other
    /// test's streams are. The webhooks serve the fresh namespace and those of
    /// [`Running::serve`].
    pub async fn start_cluster_wide(cluster: &cluster::TestCluster, prefix: &str) -> Running {
        Running::start_on(cluster, prefix, |_, _| {}, true, false).await
    }

    /// As [`Running::start`] on `cluster`, following the cluster's configuration objects
    /// (`ImageConfig`, `ImageImportConfig`) as a deployed operator does: cluster-wide
    /// settings, so on a cluster of the test's own.
    pub async fn start_following_config(cluster: &cluster::TestCluster, prefix: &str) -> Running {
        Running::start_on(cluster, prefix, |_, _| {}, false, true).await
    }

    /// The webhooks serve `namespace` too.
    pub async fn serve(&self, namespace: &str) {
        let label = json!({"metadata": {"labels": {SELECTOR_LABEL: self.namespace}}});
        Api::<Namespace>::all(self.admin.clone())
            .patch(namespace, &PatchParams::default(), &Patch::Merge(&label))
            .await
            .expect("label the namespace");
    }

    async fn start_on(
        cluster: &cluster::TestCluster,
        prefix: &str,
        configure: impl FnOnce(&str, &mut Registration),
        cluster_wide: bool,
        follow_config: bool,
    ) -> Running {
        let admin = cluster.client().await;
        crds::install(&admin).await;
        let namespace = cluster::fresh_namespace(&admin, prefix).await;
        let label = json!({"metadata": {"labels": {SELECTOR_LABEL: namespace}}});
        Api::<Namespace>::all(admin.clone())
            .patch(&namespace, &PatchParams::default(), &Patch::Merge(&label))
            .await
            .expect("label the namespace");
        rbac::bind_deploy_roles(&admin, &namespace, ACCOUNT, &rbac::OPERATOR_ROLES).await;
        let account = cluster.service_account_client(&namespace, ACCOUNT).await;

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let probes = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let probes_port = probes.local_addr().expect("address").port();
        let configuration = format!("imagestream-operator-{namespace}");
        let mut admission = test_admission(&namespace, port, SELECTOR_LABEL);
        // the operator's namespace is the test's: only kube-system stays out
        admission.registration.image_lookup = Some(LookupRegistration {
            excluded_namespaces: vec!["kube-system".into()],
            only_namespace: Some(namespace.clone()),
            selector: None,
        });
        configure(&namespace, &mut admission.registration);
        let metrics = Arc::new(Metrics::default());
        let options = operator::Options {
            controllers: controller::Options {
                namespace: namespace.clone(),
                watch_namespace: (!cluster_wide).then(|| namespace.clone()),
                settings: (!follow_config).then(Settings::default),
                concurrency: 4,
                metrics: metrics.clone(),
                pruner: None,
                image_triggers: true,
                in_flight: Arc::default(),
                receivers: None,
                caches: None,
                // a rotated key is seen within a second (the trust tests)
                keys_reread: Some(Duration::from_secs(1)),
            },
            webhooks: Some(WebhookOptions {
                listener,
                admission,
                advertise: None,
                receivers: true,
            }),
            leader: None,
            probes: Some(probes),
            shutdown_grace: operator::DEFAULT_SHUTDOWN_GRACE,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // as `main` builds it: every request to the apiserver counted by verb and resource
        let client =
            imagestream_operator::api_latency::client(account.config.clone(), metrics.clone())
                .expect("the operator's client");
        let task = tokio::spawn(async move {
            let _account = account; // keeps the token's kubeconfig alive
            operator::run(client, options, async move {
                let _ = stopped.await;
            })
            .await
        });
        let running = Running {
            probes_port,
            webhook_port: port,
            admin,
            namespace,
            metrics,
            configuration,
            stop: Some(stop),
            task,
            ended: false,
        };
        running.wait_until_called().await;
        running
    }

    pub fn streams(&self) -> Api<ImageStream> {
        Api::namespaced(self.admin.clone(), &self.namespace)
    }

    /// A dry-run create comes back with generations once the apiserver calls the mutating
    /// webhooks, and an invalid one is refused once it calls the validating ones.
    async fn wait_until_called(&self) {
        let probe: ImageStream = serde_json::from_value(json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
            "metadata": {"name": "probe"},
            "spec": {"tags": [{"name": "t", "from": {"kind": "DockerImage", "name": "nginx:1"}}]},
        }))
        .expect("probe");
        let deadline = Instant::now() + Duration::from_secs(30);
        self.dry_run_until(
            &probe,
            deadline,
            "the webhooks were not called",
            |r| matches!(r, Ok(s) if s.spec.tags[0].generation == Some(1)),
        )
        .await;
        // the validating configuration is written after the mutating one, and the apiserver
        // may call the one before it knows the other
        let mut invalid = probe;
        if let Some(from) = invalid.spec.tags[0].from.as_mut() {
            from.name = "abc@badid".into();
        }
        self.dry_run_until(
            &invalid,
            deadline,
            "the validating webhook was not called",
            |r| {
                matches!(r, Err(kube::Error::Api(status))
                if status.code == 422 && status.message.contains("denied the request"))
            },
        )
        .await;
    }

    /// Dry-run creates `object` until `done` holds for the answer; panics past `deadline`.
    async fn dry_run_until(
        &self,
        object: &ImageStream,
        deadline: Instant,
        what: &str,
        done: impl Fn(&Result<ImageStream, kube::Error>) -> bool,
    ) {
        let dry_run = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        loop {
            assert!(!self.task.is_finished(), "the operator stopped");
            let answer = self.streams().create(&dry_run, object).await;
            if done(&answer) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: {answer:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the operator (it must end without error) and removes its webhooks.
    pub async fn finish(mut self) {
        self.stop_keeping_webhooks().await;
        let dp = DeleteParams::default();
        let _ = Api::<MutatingWebhookConfiguration>::all(self.admin.clone())
            .delete(&self.configuration, &dp)
            .await;
        let _ = Api::<ValidatingWebhookConfiguration>::all(self.admin.clone())
            .delete(&self.configuration, &dp)
            .await;
    }

    /// Stops the operator (it must end without error) and leaves its webhook configurations
    /// registered, as a replica that went away would.
    pub async fn stop_keeping_webhooks(&mut self) {
        if self.ended {
            return;
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let ended = tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .expect("the operator stops")
            .expect("the operator task");
        self.ended = true;
        if let Err(e) = ended {
            panic!("the operator ended with {}: {e}", e.reason());
        }
    }

    pub fn status_writes(&self) -> u64 {
        self.metrics.status_writes.load(Ordering::Relaxed)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}
