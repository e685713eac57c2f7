//! The controllers running in the test process under the operator's own ServiceAccount bound
//! to `deploy/rbac.yaml` (not admin), scoped to a fresh namespace, and the stream helpers the
//! tests of those controllers share.

use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;

use imagestream_operator::api::image_stream::{ImageStream, TagEvent};
use imagestream_operator::controller::{self, Options, Settings};

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
