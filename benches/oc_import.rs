//! `oc import-image` against the whole operator (a program, not a timed test): wall time of
//! OpenShift's real `oc` (`../shared/tools/oc/oc`) importing a new single-arch tag from the
//! local registry into an existing stream, over 50 runs (p50, p99), next to what `oc` costs
//! when it does nothing (`oc version --client`). The import is answered inside the admission
//! request, so this is the whole round trip a user waits for.
//!
//! Also: what the `imagestreams/status` webhooks cost the operator's own status writes (none:
//! a match condition leaves its user out) against a namespace without webhooks, and what they
//! cost a user's status write (reviewed twice).
//!
//! `e2e/with-cluster.sh cargo bench --bench oc_import` (starts a private cluster unless
//! `IMAGESTREAM_TEST_KUBECONFIG` names one).

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use kube::api::{Api, PostParams};
use serde_json::json;

use imagestream_operator::api::image_stream::ImageStream;
use support::images::{ImageSpec, TestImage};
use support::operator::Running;
use support::registry::RegistryOptions;
use support::{cluster, rbac};

const RUNS: usize = 50;
const STATUS_WRITES: usize = 100;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn report(title: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{title:<58} p50 {:>9}  p99 {:>9}  max {:>9}  ({} runs)",
        ms(percentile(&samples, 50.0)),
        ms(percentile(&samples, 99.0)),
        ms(*samples.last().expect("samples")),
        samples.len()
    );
}

fn oc(kubeconfig: &std::path::Path, args: &[&str]) -> Duration {
    let binary = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/tools/oc/oc");
    let started = Instant::now();
    let output = Command::new(binary)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{binary}: {e} (needs xz-utils)"));
    let took = started.elapsed();
    assert!(
        output.status.success(),
        "oc {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    took
}

/// `count` status writes of stream `s` through `api`, each adding one history entry.
async fn status_writes(api: &Api<ImageStream>, count: usize) -> Vec<Duration> {
    let stream: ImageStream = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": "s"},
        "spec": {"tags": [{"name": "t", "from": {"kind": "DockerImage", "name": "quay.io/a/b:t"}}]},
    }))
    .expect("stream");
    let _ = api.create(&PostParams::default(), &stream).await;
    let mut current = api.get("s").await.expect("get");
    let mut took = Vec::with_capacity(count);
    for n in 0..count {
        let digest = format!("sha256:{:064x}", n + 1);
        current.status = Some(
            serde_json::from_value(json!({"dockerImageRepository": "", "tags": [{"tag": "t",
                "items": [{"created": "2026-01-01T00:00:00Z", "generation": 1,
                    "dockerImageReference": format!("quay.io/a/b@{digest}"), "image": digest}]}]}))
            .expect("status"),
        );
        let started = Instant::now();
        current = api
            .replace_status("s", &PostParams::default(), &current)
            .await
            .expect("status write");
        took.push(started.elapsed());
    }
    took
}

#[tokio::main]
async fn main() {
    let reg = RegistryOptions::plain().start();
    for n in 0..=RUNS {
        let image: TestImage = ImageSpec::single("amd64", 1700 + n as u64).build().into();
        reg.client()
            .push("app", &format!("t{n}"), &image)
            .await
            .expect("push");
    }
    let op = Running::start("bench-oc-import").await;
    let cluster = cluster::cluster().await;
    let kubeconfig = cluster.kubeconfig().to_path_buf();
    let ns = op.namespace.clone();

    // oc itself, doing nothing with the cluster
    let idle: Vec<Duration> = (0..RUNS)
        .map(|_| oc(&kubeconfig, &["version", "--client"]))
        .collect();
    // the stream exists (created by the first import); each run imports a new tag
    let imports: Vec<Duration> = tokio::task::spawn_blocking({
        let (kubeconfig, ns, reg_addr) = (kubeconfig.clone(), ns.clone(), reg.addr().to_string());
        move || {
            let import = |n: usize| {
                let from = format!("--from={reg_addr}/app:t{n}");
                let target = format!("app:t{n}");
                oc(
                    &kubeconfig,
                    &[
                        "-n",
                        &ns,
                        "import-image",
                        &target,
                        &from,
                        "--insecure",
                        "--confirm",
                    ],
                )
            };
            import(0);
            (1..=RUNS).map(import).collect()
        }
    })
    .await
    .expect("imports");
    let stream = op.streams().get("app").await.expect("the stream");
    let imported = stream.status.as_ref().map_or(0, |s| s.tags.len());
    assert_eq!(imported, RUNS + 1, "every tag imported");

    println!("oc import-image of a new single-arch tag (whole operator, local registry)");
    report("oc version --client (oc alone)", idle);
    report(
        "oc import-image app:tN --from=… --insecure --confirm",
        imports,
    );

    // status writes: the operator's (skipped by the match condition) with and without the
    // webhooks registered in the namespace, and a user's (reviewed)
    let operator = cluster.service_account_client(&ns, "operator").await;
    let admin = cluster.client().await;
    let plain_ns = cluster::fresh_namespace(&admin, "bench-no-webhooks").await;
    rbac::bind_deploy_roles(&admin, &plain_ns, "operator", &rbac::OPERATOR_ROLES).await;
    let with_hooks = status_writes(
        &Api::namespaced(operator.client.clone(), &ns),
        STATUS_WRITES,
    )
    .await;
    let without = status_writes(
        &Api::namespaced(operator.client.clone(), &plain_ns),
        STATUS_WRITES,
    )
    .await;
    let user = status_writes(&Api::namespaced(admin.clone(), &ns), STATUS_WRITES).await;
    println!("imagestreams/status writes");
    report("operator, namespace with the status webhooks", with_hooks);
    report("operator, namespace without webhooks", without);
    report("a user (admin), namespace with the status webhooks", user);
    op.finish().await;
}
