//! Leader election (issue 7): two operator processes' controllers under the operator's RBAC,
//! each behind the same Lease; only the leader imports; when the leader dies without
//! releasing the Lease, the other takes over and imports continue within 15 s.

mod support;

use std::time::{Duration, Instant};

use futures::FutureExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;

use imagestream_operator::api::image_stream::ImageStream;
use imagestream_operator::controller::{self, Options, Settings};
use imagestream_operator::leader::{self, LeaderOptions};
use support::images::{ImageSpec, TestImage};
use support::operator::items;
use support::registry::{RegistryOptions, TestRegistry};
use support::{cluster, crds, rbac};

const LEASE: &str = "imagestream-operator";

/// One operator process: its controllers behind the Lease, as `identity`.
fn replica(client: Client, namespace: &str, identity: &str) -> tokio::task::JoinHandle<()> {
    let options = Options {
        namespace: namespace.into(),
        watch_namespace: Some(namespace.into()),
        settings: Some(Settings::default()),
        concurrency: 4,
        pruner: None,
        ..Options::default()
    };
    // the operator's own timing
    let leader = LeaderOptions::new(namespace, LEASE, identity);
    tokio::spawn(async move {
        let shutdown = futures::future::pending::<()>().boxed().shared();
        let work = |stop| controller::run(client.clone(), options, stop);
        let _ = leader::run_as_leader(client.clone(), leader, shutdown, work).await;
    })
}

async fn push(reg: &TestRegistry, repo: &str, tag: &str, seed: u64) -> String {
    let image: TestImage = ImageSpec::single("amd64", seed).build().into();
    reg.client().push(repo, tag, &image).await.expect("push")
}

async fn imported(api: &Api<ImageStream>, name: &str, digest: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if let Ok(s) = api.get(name).await
            && items(&s, "t").first().is_some_and(|e| e.image == digest)
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{name} not imported within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn holder(admin: &Client, namespace: &str) -> Option<String> {
    Api::<Lease>::namespaced(admin.clone(), namespace)
        .get_opt(LEASE)
        .await
        .expect("get lease")?
        .spec?
        .holder_identity
}

#[tokio::test]
async fn imports_continue_when_the_leader_dies() {
    cluster::install_crypto_provider();
    let reg = RegistryOptions::plain().start();
    let d1 = push(&reg, "app", "v1", 971).await;
    let d2 = push(&reg, "app", "v2", 972).await;
    let cluster = cluster::cluster().await;
    let admin = cluster.client().await;
    crds::install(&admin).await;
    let ns = cluster::fresh_namespace(&admin, "leader").await;
    rbac::bind_deploy_roles(&admin, &ns, "operator", &rbac::OPERATOR_ROLES).await;
    let account = cluster.service_account_client(&ns, "operator").await;

    let a = replica(account.client.clone(), &ns, "replica-a");
    // a leads before b starts
    let deadline = Instant::now() + Duration::from_secs(20);
    while holder(&admin, &ns).await.as_deref() != Some("replica-a") {
        assert!(Instant::now() < deadline, "replica-a never led");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let b = replica(account.client.clone(), &ns, "replica-b");

    let streams = Api::<ImageStream>::namespaced(admin.clone(), &ns);
    let create = |name: &str, tag: &str| {
        serde_json::from_value::<ImageStream>(json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
            "metadata": {"name": name},
            "spec": {"tags": [{"name": "t", "generation": 1, "importPolicy": {"insecure": true},
                "from": {"kind": "DockerImage", "name": reg.image_ref("app", tag)}}]},
        }))
        .expect("stream")
    };
    streams
        .create(&PostParams::default(), &create("first", "v1"))
        .await
        .expect("create");
    imported(&streams, "first", &d1, Duration::from_secs(20)).await;
    assert_eq!(holder(&admin, &ns).await.as_deref(), Some("replica-a"));

    // the leader dies without a word: its Lease runs out, b takes over
    a.abort();
    let _ = a.await;
    let killed = Instant::now();
    streams
        .create(&PostParams::default(), &create("second", "v2"))
        .await
        .expect("create");
    imported(&streams, "second", &d2, Duration::from_secs(15)).await;
    println!(
        "imports continued {:?} after the leader died",
        killed.elapsed()
    );
    assert_eq!(holder(&admin, &ns).await.as_deref(), Some("replica-b"));
    b.abort();
}
