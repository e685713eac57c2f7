//! Registry notifications end to end: operator replicas (webhooks, receivers and
//! controllers, optionally behind the leader Lease) in one namespace under the operator's
//! RBAC, ImageReceivers with their Secrets, and an HTTPS client that trusts the operator's
//! CA, for the receiver tests and the notification benchmark.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::net::TcpListener;

use imagestream_operator::api::image_stream::ImageStream;
use imagestream_operator::controller::{self, Metrics, Settings};
use imagestream_operator::leader::LeaderOptions;
use imagestream_operator::operator::{self, WebhookOptions};
use imagestream_operator::receiver::ImageReceiver;

use super::cluster::{self, ServiceAccountClient};
use super::operator::{SELECTOR_LABEL, test_admission};
use super::{crds, rbac};

/// The namespace label the webhook registrations select (as `Running` does).
const ACCOUNT: &str = "operator";
pub const LEASE: &str = "imagestream-operator";

/// A fresh namespace for the operator (its CA, Lease, roles) and its streams; returns an
/// admin client and the namespace.
pub async fn namespace(prefix: &str) -> (Client, String) {
    cluster::install_crypto_provider();
    let cluster = cluster::cluster().await;
    let admin = cluster.client().await;
    crds::install(&admin).await;
    let namespace = cluster::fresh_namespace(&admin, prefix).await;
    let label = json!({"metadata": {"labels": {SELECTOR_LABEL: namespace}}});
    Api::<Namespace>::all(admin.clone())
        .patch(&namespace, &PatchParams::default(), &Patch::Merge(&label))
        .await
        .expect("label the namespace");
    rbac::bind_deploy_roles(&admin, &namespace, ACCOUNT, &rbac::OPERATOR_ROLES).await;
    (admin, namespace)
}

/// One operator process in `namespace`: webhooks and receivers on 127.0.0.1, controllers
/// at once or (with `identity`) while it holds the Lease.
pub struct Replica {
    pub port: u16,
    pub probes_port: u16,
    pub metrics: Arc<Metrics>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), operator::Error>>,
}

impl Replica {
    /// Starts a replica and waits until it is ready (webhooks registered).
    pub async fn start(namespace: &str, identity: Option<&str>, settings: Settings) -> Replica {
        let cluster = cluster::cluster().await;
        let account: ServiceAccountClient =
            cluster.service_account_client(namespace, ACCOUNT).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let probes = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let probes_port = probes.local_addr().expect("address").port();
        let admission = test_admission(namespace, port, SELECTOR_LABEL);
        let metrics = Arc::new(Metrics::default());
        let leader = identity.map(|identity| LeaderOptions {
            // shorter than the operator's 10 s, so a takeover fits a test
            lease_duration: Duration::from_secs(3),
            renew_every: Duration::from_secs(1),
            retry_every: Duration::from_millis(500),
            ..LeaderOptions::new(namespace, LEASE, identity)
        });
        let options = operator::Options {
            controllers: controller::Options {
                namespace: namespace.into(),
                watch_namespace: Some(namespace.into()),
                settings: Some(settings),
                concurrency: 8,
                metrics: metrics.clone(),
                pruner: None,
                image_triggers: false,
                in_flight: Arc::default(),
                receivers: None,
                caches: None,
                keys_reread: None,
            },
            webhooks: Some(WebhookOptions {
                listener,
                admission,
                advertise: None,
                receivers: true,
            }),
            leader,
            probes: Some(probes),
            shutdown_grace: operator::DEFAULT_SHUTDOWN_GRACE,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let client = account.client.clone();
        let task = tokio::spawn(async move {
            let _account = account; // keeps the token's kubeconfig alive
            operator::run(client, options, async move {
                let _ = stopped.await;
            })
            .await
        });
        let replica = Replica {
            port,
            probes_port,
            metrics,
            stop: Some(stop),
            task,
        };
        replica.wait_ready().await;
        replica
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("http://127.0.0.1:{}/readyz", self.probes_port);
        loop {
            assert!(!self.task.is_finished(), "the replica stopped");
            if let Ok(r) = reqwest::get(&url).await
                && r.status() == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "the replica never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `https://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// Dies without a word: no Lease release, the listener gone.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// Stops cleanly (the Lease is released).
    pub async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), &mut self.task).await;
    }

    /// Notifications of `outcome` this replica counted (from `/metrics`).
    pub fn notifications(&self, outcome: &str) -> u64 {
        let needle = format!("outcome=\"{outcome}\"}}");
        self.metrics
            .encode()
            .lines()
            .filter(|l| {
                l.starts_with("imagestream_operator_notifications_total{") && l.contains(&needle)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }
}

/// A Secret holding `token` and an ImageReceiver of `kind` using it; `extra` is merged into
/// the spec. Returns the receiver's path once a leader reported it in the status.
pub async fn receiver(
    admin: &Client,
    namespace: &str,
    name: &str,
    kind: &str,
    token: &str,
    extra: serde_json::Value,
) -> String {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(format!("{name}-token")),
            ..ObjectMeta::default()
        },
        data: Some([("token".to_string(), ByteString(token.as_bytes().to_vec()))].into()),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the token Secret");
    let mut spec = json!({"type": kind, "secretRef": {"name": format!("{name}-token")}});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    let receiver: ImageReceiver = serde_json::from_value(json!({
        "apiVersion": "operator.imagestream.io/v1alpha1", "kind": "ImageReceiver",
        "metadata": {"name": name}, "spec": spec,
    }))
    .expect("receiver");
    let api = Api::<ImageReceiver>::namespaced(admin.clone(), namespace);
    api.create(&PostParams::default(), &receiver)
        .await
        .expect("create the ImageReceiver");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = api.get(name).await.expect("get the ImageReceiver");
        if let Some(path) = got.status.as_ref().and_then(|s| s.webhook_path.clone()) {
            let expected =
                imagestream_operator::receiver::auth::webhook_path(namespace, name, token);
            assert_eq!(path, expected);
            return path;
        }
        assert!(
            Instant::now() < deadline,
            "no status for receiver {name}: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The operator's CA (PEM), which signs every replica's serving certificate.
pub async fn ca_pem(admin: &Client, namespace: &str) -> Vec<u8> {
    let secret = Api::<Secret>::namespaced(admin.clone(), namespace)
        .get("imagestream-operator-webhook-ca")
        .await
        .expect("the CA Secret");
    secret
        .data
        .and_then(|d| d.get("tls.crt").cloned())
        .expect("tls.crt")
        .0
}

/// An HTTPS client trusting only `ca`.
pub fn https(ca: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(ca).expect("CA"))
        .build()
        .expect("client")
}

/// A stream whose tags (name, pull spec) are all scheduled (insecure: plain-HTTP registry).
pub async fn scheduled_stream(api: &Api<ImageStream>, name: &str, tags: &[(&str, String)]) {
    let tags: Vec<serde_json::Value> = tags
        .iter()
        .map(|(tag, from)| {
            json!({"name": tag, "from": {"kind": "DockerImage", "name": from},
                   "importPolicy": {"insecure": true, "scheduled": true}})
        })
        .collect();
    let stream: ImageStream = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": name}, "spec": {"tags": tags},
    }))
    .expect("stream");
    api.create(&PostParams::default(), &stream)
        .await
        .expect("create the stream");
}

/// The image a stream's status tag points at now.
pub fn current(stream: &ImageStream, tag: &str) -> Option<String> {
    stream
        .status
        .as_ref()?
        .tag(tag)?
        .items
        .first()
        .map(|e| e.image.clone())
}

/// Waits until `stream`'s `tag` points at `digest`; how long that took.
pub async fn wait_image(
    api: &Api<ImageStream>,
    stream: &str,
    tag: &str,
    digest: &str,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        if let Ok(s) = api.get(stream).await
            && current(&s, tag).as_deref() == Some(digest)
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{stream}:{tag} not at {digest} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Settings for notification tests: no polling at all (scheduled imports disabled), so
/// every import after the first is a notification's.
pub fn push_only() -> Settings {
    Settings {
        scheduled_interval: None,
        ..Settings::default()
    }
}
