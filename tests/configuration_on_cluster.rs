//! The operator's configuration objects, read from the cluster (every other test fixes its
//! settings): an ImageImportConfig that exists before the operator starts is applied. It was
//! not before: the objects listed at start reach the reflector's store only at the end of the
//! list, and the settings were read before that.
//!
//! Only this test creates the cluster-scoped `cluster` ImageImportConfig, and only controllers
//! without fixed settings (none in the other tests) read it.

mod support;

use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use imagestream_operator::api::image_stream::ImageStream;
use imagestream_operator::config::ImageImportConfig;
use imagestream_operator::controller::{self, Options};
use support::images::{ImageSpec, TestImage};
use support::operator::items;
use support::registry::{RegistryOptions, TestRegistry};
use support::{cluster, crds, rbac};

async fn push(reg: &TestRegistry, tag: &str, seed: u64) -> String {
    let image: TestImage = ImageSpec::single("amd64", seed).build().into();
    reg.client().push("app", tag, &image).await.expect("push")
}

#[tokio::test]
async fn a_configuration_present_at_start_is_applied() {
    cluster::install_crypto_provider();
    let reg = RegistryOptions::plain().start();
    let d1 = push(&reg, "latest", 981).await;
    let cluster = cluster::cluster().await;
    let admin = cluster.client().await;
    crds::install(&admin).await;
    let configs = Api::<ImageImportConfig>::all(admin.clone());
    let _ = configs.delete("cluster", &DeleteParams::default()).await;
    let config: ImageImportConfig = serde_json::from_value(json!({
        "apiVersion": "operator.imagestream.io/v1alpha1", "kind": "ImageImportConfig",
        "metadata": {"name": "cluster"},
        "spec": {"scheduledImageImportMinimumIntervalSeconds": 2},
    }))
    .expect("config");
    configs
        .create(&PostParams::default(), &config)
        .await
        .expect("create config");

    let ns = cluster::fresh_namespace(&admin, "config").await;
    rbac::bind_deploy_roles(&admin, &ns, "operator", &["deploy/rbac.yaml"]).await;
    let account = cluster.service_account_client(&ns, "operator").await;
    let options = Options {
        namespace: ns.clone(),
        watch_namespace: Some(ns.clone()),
        settings: None,
        pruner: None,
        ..Options::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let client = account.client.clone();
    let task = tokio::spawn(async move {
        let _account = account;
        controller::run(client, options, async move {
            let _ = stopped.await;
        })
        .await
    });

    let streams = Api::<ImageStream>::namespaced(admin.clone(), &ns);
    let stream: ImageStream = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": "app"},
        "spec": {"tags": [{"name": "latest", "generation": 1,
            "importPolicy": {"insecure": true, "scheduled": true},
            "from": {"kind": "DockerImage", "name": reg.image_ref("app", "latest")}}]},
    }))
    .expect("stream");
    streams
        .create(&PostParams::default(), &stream)
        .await
        .expect("create");
    let wait = |digest: String, within: u64| {
        let streams = streams.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(within);
            loop {
                let s = streams.get("app").await.expect("get");
                if items(&s, "latest")
                    .first()
                    .is_some_and(|e| e.image == digest)
                {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "{digest} not in history within {within}s"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    wait(d1, 30).await;
    // with the default interval (900 s) the moved tag would not be seen for minutes
    let d2 = push(&reg, "latest", 982).await;
    wait(d2, 15).await;

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
    configs
        .delete("cluster", &DeleteParams::default())
        .await
        .expect("delete config");
}
