//! The Helm chart on the harness cluster (issue 19), with the real helm: every object it
//! renders passes a server-side dry run; `helm install`, `helm upgrade` to other values and
//! `helm uninstall` of a release whose operator imported a hundred streams keep every stream,
//! its history and the Images (uninstall keeps the CRDs too, as Helm does with `crds/`).
//!
//! The harness has no kubelet, so the Deployment's Pods never run: the operator binary runs
//! here instead, as the chart's ServiceAccount and with the arguments of the chart's
//! Deployment (its webhooks registered by URL), stopped before the upgrade and started again
//! with the upgraded Deployment's arguments, as a rolling update replaces the Pods.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use imagestream_operator::api::image::Image;
use imagestream_operator::api::image_stream::ImageStream;
use imagestream_operator::config::ImageImportConfig;
use support::images::{ImageSpec, TestImage};
use support::registry::TestRegistry;
use support::tools::{self, CHART};
use support::{cluster, crds};

const RELEASE: &str = "imagestream-operator";
const NAMESPACE: &str = "imagestream-operator";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/chart");
/// Streams present during the upgrade, importing from this many repositories.
const STREAMS: usize = 100;
const REPOS: usize = 10;

fn fixture(name: &str) -> String {
    format!("{FIXTURES}/{name}")
}

/// `helm template` of the chart with `args`, into a file for kubectl.
fn render_to(dir: &Path, name: &str, args: &[&str]) -> (std::path::PathBuf, usize) {
    let yaml = tools::run(
        tools::helm()
            .args(["template", RELEASE, CHART, "--namespace", NAMESPACE])
            .args(args),
    );
    let count = tools::documents(&yaml).len();
    let path = dir.join(name);
    std::fs::write(&path, yaml).expect("write the rendered chart");
    (path, count)
}

/// Every object `helm template` renders, with the defaults and with every value set (the
/// ServiceMonitor and PrometheusRule against stand-in CRDs), passes the apiserver's
/// validation and admission in a server-side dry run with strict field validation.
#[tokio::test]
async fn the_chart_renders_objects_the_apiserver_accepts() {
    cluster::install_crypto_provider();
    let cluster = cluster::cluster().await;
    let admin = cluster.client().await;
    crds::install(&admin).await;
    let out = cluster
        .kubectl()
        .args(["apply", "--server-side", "--field-manager=chart-tests"])
        .args(["-f", &fixture("monitoring-crds.yaml")])
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crd_api = Api::<CustomResourceDefinition>::all(admin.clone());
    for name in [
        "servicemonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
    ] {
        crds::wait_established(&crd_api, name, Duration::from_secs(60)).await;
    }
    // the namespace for real: a dry run cannot create what the namespaced dry runs look for
    let namespace: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE},
    }))
    .expect("namespace");
    Api::<Namespace>::all(admin.clone())
        .patch(
            NAMESPACE,
            &PatchParams::apply("chart-tests"),
            &Patch::Apply(&namespace),
        )
        .await
        .expect("apply the namespace");

    let dir = tempfile::tempdir().expect("tempdir");
    let everything = fixture("everything.yaml");
    for (name, args) in [
        ("defaults.yaml", vec![]),
        ("everything.yaml", vec!["--values", everything.as_str()]),
    ] {
        let (path, count) = render_to(dir.path(), name, &args);
        let out = cluster
            .kubectl()
            .args([
                "apply",
                "--server-side",
                "--dry-run=server",
                "--force-conflicts",
            ])
            .args(["--field-manager=chart-dry-run", "--validate=strict"])
            .args(["--namespace", NAMESPACE, "-f"])
            .arg(&path)
            .output()
            .expect("kubectl runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: refused in a server-side dry run:\n{}{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        let applied = stdout
            .lines()
            .filter(|l| l.contains("serverside-applied (server dry run)"))
            .count();
        assert_eq!(applied, count, "{name}: {stdout}");
        println!("{name}: {count} objects pass a server-side dry run");
    }
}

/// The operator binary as one replica of the chart's Deployment would run it.
struct Replica {
    child: Child,
    logs: tempfile::TempDir,
    metrics_port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// The container arguments of the release's Deployment.
async fn deployment_args(admin: &Client) -> Vec<String> {
    let deployment = Api::<Deployment>::namespaced(admin.clone(), NAMESPACE)
        .get(RELEASE)
        .await
        .expect("the Deployment");
    deployment
        .spec
        .and_then(|s| s.template.spec)
        .map(|p| p.containers[0].args.clone().unwrap_or_default())
        .unwrap_or_default()
}

impl Replica {
    /// Starts `imagestream-operator run` with the Deployment's `args` under `kubeconfig`;
    /// only what a Pod gets from its surroundings differs (the Service, reached by URL here,
    /// and the ports), and waits until it is ready and leads.
    async fn start(kubeconfig: &Path, args: &[String], identity: &str) -> Replica {
        let logs = tempfile::tempdir().expect("tempdir");
        let (webhook_port, metrics_port) = (free_port(), free_port());
        let log = |name: &str| std::fs::File::create(logs.path().join(name)).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_imagestream-operator"))
            .arg("run")
            .args(args.iter().filter(|a| !a.starts_with("--webhook-service")))
            .args(["--namespace", NAMESPACE, "--leader-identity", identity])
            .arg(format!("--webhook-url=https://127.0.0.1:{webhook_port}"))
            .arg(format!("--webhook-port={webhook_port}"))
            .arg(format!("--metrics-port={metrics_port}"))
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log("stdout"))
            .stderr(log("stderr"))
            .spawn()
            .expect("start the operator binary");
        let mut replica = Replica {
            child,
            logs,
            metrics_port,
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = replica.child.try_wait().expect("wait") {
                panic!("the operator exited with {status}:\n{}", replica.output());
            }
            if replica
                .metrics()
                .await
                .contains("imagestream_operator_leader 1")
            {
                let ready = reqwest::get(format!("http://127.0.0.1:{metrics_port}/readyz")).await;
                if ready.is_ok_and(|r| r.status() == 200) {
                    return replica;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the operator was not ready and leading within 90 s:\n{}",
                replica.output()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn metrics(&self) -> String {
        match reqwest::get(format!("http://127.0.0.1:{}/metrics", self.metrics_port)).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// A counter's value (0 when absent).
    async fn counter(&self, name: &str) -> f64 {
        self.metrics()
            .await
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    fn output(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.logs.path().join(name)).unwrap_or_default();
        let text = format!("{}{}", read("stdout"), read("stderr"));
        let tail: Vec<&str> = text.lines().rev().take(60).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// SIGTERM, as a Pod being replaced gets; it must end cleanly.
    fn stop(mut self) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on our own child's pid
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "{status}:\n{}", self.output());
                return;
            }
            assert!(Instant::now() < deadline, "no exit:\n{}", self.output());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the streams hold: per stream and tag, the history's images, newest first; and every
/// Image of the cluster.
#[derive(Debug, PartialEq)]
struct Contents {
    histories: BTreeMap<String, Vec<String>>,
    streams: usize,
    entries: usize,
    images: usize,
}

async fn contents(admin: &Client, namespace: &str) -> Contents {
    let streams = Api::<ImageStream>::namespaced(admin.clone(), namespace)
        .list(&ListParams::default())
        .await
        .expect("list streams");
    let mut histories = BTreeMap::new();
    for stream in &streams {
        for tag in stream.status.iter().flat_map(|s| s.tags.iter()) {
            histories.insert(
                format!("{}:{}", stream.name_any(), tag.tag),
                tag.items
                    .iter()
                    .map(|e| e.image.clone())
                    .collect::<Vec<_>>(),
            );
        }
    }
    let images = Api::<Image>::all(admin.clone())
        .list(&ListParams::default())
        .await
        .expect("list images")
        .items
        .len();
    Contents {
        streams: streams.items.len(),
        entries: histories.values().map(Vec::len).sum(),
        histories,
        images,
    }
}

/// Waits until every stream's tag has `len` history entries, its newest `digests[repo]`.
async fn wait_for_histories(
    admin: &Client,
    namespace: &str,
    expected: impl Fn(usize) -> (usize, String),
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let current = contents(admin, namespace).await;
        let behind: Vec<String> = (0..STREAMS)
            .filter(|i| {
                let (len, newest) = expected(*i);
                let history = current.histories.get(&format!("s{i}:t"));
                !history.is_some_and(|h| h.len() == len && h.first() == Some(&newest))
            })
            .map(|i| format!("s{i}"))
            .collect();
        if behind.is_empty() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{} streams without their history after {within:?}: {:?}",
            behind.len(),
            &behind[..behind.len().min(10)]
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Pushes a new image to each repository (`seed` apart from earlier pushes); the digests.
async fn push_all(registry: &TestRegistry, seed: u64) -> Vec<String> {
    let mut digests = Vec::new();
    for repo in 0..REPOS {
        let image: TestImage = ImageSpec::single("amd64", seed + repo as u64)
            .build()
            .into();
        digests.push(
            registry
                .client()
                .push(&format!("r{repo}"), "v1", &image)
                .await
                .expect("push"),
        );
    }
    digests
}

fn helm(cluster: &cluster::TestCluster, args: &[&str]) -> String {
    tools::run(
        tools::helm()
            .env("KUBECONFIG", cluster.kubeconfig())
            .args(args),
    )
}

async fn import_config(admin: &Client) -> Option<Value> {
    Api::<ImageImportConfig>::all(admin.clone())
        .get_opt("cluster")
        .await
        .expect("get ImageImportConfig")
        .map(|c| serde_json::to_value(c.spec).expect("spec"))
}

#[tokio::test]
async fn helm_install_upgrade_and_uninstall_keep_every_stream_and_its_history() {
    cluster::install_crypto_provider();
    // cluster-scoped objects (roles, the webhook configurations) of a release of its own
    let cluster = cluster::TestCluster::start().await;
    let admin = cluster.client().await;
    let registry = TestRegistry::plain();

    // install: the CRDs from crds/, then the rest
    helm(
        &cluster,
        &[
            "install",
            RELEASE,
            CHART,
            "--namespace",
            NAMESPACE,
            "--create-namespace",
            "--values",
            &fixture("install.yaml"),
        ],
    );
    let crd_api = Api::<CustomResourceDefinition>::all(admin.clone());
    let ours = |c: &CustomResourceDefinition| {
        c.spec.group == "image.openshift.io" || c.spec.group == "operator.imagestream.io"
    };
    let installed: Vec<String> = crd_api
        .list(&ListParams::default())
        .await
        .expect("CRDs")
        .items
        .iter()
        .filter(|c| ours(c))
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(installed.len(), imagestream_operator::crd::all().len());
    for name in &installed {
        crds::wait_established(&crd_api, name, Duration::from_secs(60)).await;
    }
    let args = deployment_args(&admin).await;
    assert_eq!(
        args,
        [
            "--concurrency=8",
            r#"--image-lookup-namespace-selector={"matchLabels":{"imagestream-operator.test/lookup":"on"}}"#,
        ]
    );
    assert_eq!(
        import_config(&admin).await,
        Some(json!({
            "scheduledImageImportMinimumIntervalSeconds": 5,
            "maxScheduledImageImportsPerMinute": -1,
        }))
    );
    // the operator as the chart's ServiceAccount, with the chart's roles and arguments
    let account = cluster.service_account_client(NAMESPACE, RELEASE).await;
    let replica = Replica::start(account.kubeconfig(), &args, "install").await;

    // a hundred streams following ten repositories, each tag moved once
    let apps = cluster::fresh_namespace(&admin, "helm-apps").await;
    let first = push_all(&registry, 1000).await;
    let streams = Api::<ImageStream>::namespaced(admin.clone(), &apps);
    for i in 0..STREAMS {
        let stream: ImageStream = serde_json::from_value(json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
            "metadata": {"name": format!("s{i}")},
            "spec": {"tags": [{"name": "t",
                "importPolicy": {"insecure": true, "scheduled": true},
                "from": {"kind": "DockerImage",
                    "name": registry.image_ref(&format!("r{}", i % REPOS), "v1")}}]},
        }))
        .expect("stream");
        streams
            .create(&PostParams::default(), &stream)
            .await
            .expect("create stream");
    }
    let took = wait_for_histories(
        &admin,
        &apps,
        |i| (1, first[i % REPOS].clone()),
        Duration::from_secs(120),
    )
    .await;
    println!("{STREAMS} streams imported in {took:?}");
    let second = push_all(&registry, 2000).await;
    let took = wait_for_histories(
        &admin,
        &apps,
        |i| (2, second[i % REPOS].clone()),
        Duration::from_secs(120),
    )
    .await;
    println!("{STREAMS} tags moved by scheduled checks in {took:?}");
    let before = contents(&admin, &apps).await;
    assert_eq!(
        (before.streams, before.entries, before.images),
        (STREAMS, 2 * STREAMS, 2 * REPOS)
    );
    // the checks that moved them were due ones, timed against their due time
    let delays = replica
        .counter("imagestream_operator_scheduled_check_delay_seconds_count")
        .await;
    assert!(delays >= STREAMS as f64, "{delays} delays observed");
    replica.stop();

    // upgrade to other values; the replica replaced by one with the new arguments
    let started = Instant::now();
    helm(
        &cluster,
        &[
            "upgrade",
            RELEASE,
            CHART,
            "--namespace",
            NAMESPACE,
            "--values",
            &fixture("upgrade.yaml"),
        ],
    );
    let upgrade_took = started.elapsed();
    let status: Value = serde_json::from_str(&helm(
        &cluster,
        &["status", RELEASE, "-n", NAMESPACE, "-o", "json"],
    ))
    .expect("helm status JSON");
    assert_eq!(status["version"], 2);
    assert_eq!(status["info"]["status"], "deployed");
    let deployment = Api::<Deployment>::namespaced(admin.clone(), NAMESPACE)
        .get(RELEASE)
        .await
        .expect("Deployment");
    let spec = deployment.spec.expect("spec");
    assert_eq!(spec.replicas, Some(3));
    let pod = spec.template.spec.expect("pod spec");
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some("registry.example/imagestream-operator:0.1.1")
    );
    let args = deployment_args(&admin).await;
    assert_eq!(
        args,
        [
            "--concurrency=4",
            "--no-image-triggers",
            "--no-receivers",
            "--log-format=json",
        ]
    );
    // triggers off: their role goes with the upgrade
    assert!(
        Api::<ClusterRole>::all(admin.clone())
            .get_opt("imagestream-operator-triggers")
            .await
            .expect("get")
            .is_none()
    );
    assert_eq!(
        import_config(&admin).await,
        Some(json!({
            "scheduledImageImportMinimumIntervalSeconds": 6,
            "maxScheduledImageImportsPerMinute": 600,
        }))
    );
    let replica = Replica::start(account.kubeconfig(), &args, "upgrade").await;
    // every stream checked again by the upgraded operator: nothing moved, nothing lost
    let deadline = Instant::now() + Duration::from_secs(60);
    while replica
        .counter("imagestream_operator_scheduled_checks_total")
        .await
        < STREAMS as f64
    {
        assert!(
            Instant::now() < deadline,
            "the upgraded operator did not check every stream:\n{}",
            replica.output()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        replica.output().contains(r#""level":"INFO""#),
        "JSON logs after the upgrade:\n{}",
        replica.output()
    );
    let after = contents(&admin, &apps).await;
    println!(
        "helm upgrade with {} streams present took {upgrade_took:?}: before {} streams, {} \
         history entries, {} Images; after {} streams, {} history entries, {} Images",
        before.streams,
        before.streams,
        before.entries,
        before.images,
        after.streams,
        after.entries,
        after.images
    );
    assert_eq!(after, before, "the upgrade changed the streams");

    // the upgraded operator imports: one repository moves again
    let image: TestImage = ImageSpec::single("amd64", 3000).build().into();
    let moved = registry
        .client()
        .push("r0", "v1", &image)
        .await
        .expect("push");
    wait_for_histories(
        &admin,
        &apps,
        |i| {
            if i % REPOS == 0 {
                (3, moved.clone())
            } else {
                (2, second[i % REPOS].clone())
            }
        },
        Duration::from_secs(120),
    )
    .await;
    replica.stop();

    // uninstall: the release's objects go; the CRDs, streams, histories, Images and the
    // import settings stay
    let before = contents(&admin, &apps).await;
    helm(&cluster, &["uninstall", RELEASE, "--namespace", NAMESPACE]);
    let left: Vec<String> = crd_api
        .list(&ListParams::default())
        .await
        .expect("CRDs")
        .items
        .iter()
        .filter(|c| ours(c))
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(left, installed);
    let after = contents(&admin, &apps).await;
    assert_eq!(after, before, "the uninstall changed the streams");
    println!(
        "helm uninstall: {} CRDs, {} streams, {} history entries, {} Images left",
        left.len(),
        after.streams,
        after.entries,
        after.images
    );
    assert!(
        Api::<Deployment>::namespaced(admin.clone(), NAMESPACE)
            .get_opt(RELEASE)
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        Api::<ServiceAccount>::namespaced(admin.clone(), NAMESPACE)
            .get_opt(RELEASE)
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        Api::<ClusterRole>::all(admin.clone())
            .get_opt(RELEASE)
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        import_config(&admin).await.is_some(),
        "the settings are kept"
    );
}
