//! The imagestream controller against the local cluster and registry (a program, not a
//! timed test): latency from a spec change to the status event over 100 tags (p50, p99),
//! and what a scheduled check of an unchanged tag costs (status writes, registry requests).
//!
//! `cargo bench --bench controller_latency` (starts a private cluster unless
//! `IMAGESTREAM_TEST_KUBECONFIG` names one, as `e2e/with-cluster.sh` sets).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use imagestream_operator::api::image_stream::ImageStream;
use imagestream_operator::controller::{self, Metrics, Options, Settings};
use support::images::{ImageSpec, TestImage};
use support::registry::{RegistryOptions, summary};

const TAGS: usize = 100;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn tag_spec(from: &str, generation: i64) -> serde_json::Value {
    json!([{
        "name": "latest",
        "from": { "kind": "DockerImage", "name": from },
        "generation": generation,
        "importPolicy": { "insecure": true, "scheduled": true },
    }])
}

/// Records, per stream, when its `latest` tag first shows `image`.
async fn observe(
    api: Api<ImageStream>,
    expected: HashMap<String, String>,
) -> HashMap<String, Instant> {
    let mut seen = HashMap::new();
    let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
    while seen.len() < expected.len() {
        let Some(Ok(stream)) = events.next().await else {
            continue;
        };
        let name = stream.name_any();
        let current = stream
            .status
            .as_ref()
            .and_then(|s| s.tag("latest"))
            .and_then(|t| t.items.first())
            .map(|e| e.image.clone());
        if current.is_some() && current.as_ref() == expected.get(&name) {
            seen.entry(name).or_insert_with(Instant::now);
        }
    }
    seen
}

fn report(title: &str, started: &HashMap<String, Instant>, seen: &HashMap<String, Instant>) {
    let mut latencies: Vec<Duration> = started
        .iter()
        .map(|(name, t0)| seen[name].duration_since(*t0))
        .collect();
    latencies.sort();
    println!(
        "{title:<44} p50 {:>9}  p99 {:>9}  max {:>9}  ({} tags)",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(*latencies.last().unwrap_or(&Duration::ZERO)),
        latencies.len()
    );
}

#[tokio::main]
async fn main() {
    support::cluster::install_crypto_provider();
    let cluster = support::cluster::cluster().await;
    let admin = cluster.client().await;
    support::crds::install(&admin).await;
    let namespace = support::cluster::fresh_namespace(&admin, "bench-latency").await;
    let registry = RegistryOptions::plain().start();
    let pusher = registry.client();
    let mut v1 = HashMap::new();
    let mut v2 = HashMap::new();
    for i in 0..TAGS {
        let a: TestImage = ImageSpec::single("amd64", 10_000 + i as u64).build().into();
        let b: TestImage = ImageSpec::single("amd64", 20_000 + i as u64).build().into();
        let repo = format!("bench/app{i}");
        v1.insert(
            format!("s{i}"),
            pusher.push(&repo, "v1", &a).await.expect("push"),
        );
        v2.insert(
            format!("s{i}"),
            pusher.push(&repo, "v2", &b).await.expect("push"),
        );
    }

    let metrics = Arc::new(Metrics::default());
    let interval = Duration::from_secs(5);
    let options = Options {
        watch_namespace: Some(namespace.clone()),
        settings: Some(Settings {
            scheduled_interval: Some(interval),
            scheduled_per_minute: None,
            ..Settings::default()
        }),
        concurrency: 16,
        metrics: metrics.clone(),
        pruner: None,
        ..Options::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(controller::run(admin.clone(), options, async move {
        let _ = stopped.await;
    }));

    let api: Api<ImageStream> = Api::namespaced(admin.clone(), &namespace);
    println!("imagestream controller, {TAGS} tags (one per stream), local cluster and registry");

    // 0. warm-up: the controllers' caches loaded and their watches open, so the figures are
    // steady-state latencies, not start-up time
    let warm = tokio::spawn(observe(
        api.clone(),
        HashMap::from([("warm-up".to_string(), v1["s0"].clone())]),
    ));
    let stream: ImageStream = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1",
        "kind": "ImageStream",
        "metadata": { "name": "warm-up" },
        "spec": { "tags": tag_spec(&registry.image_ref("bench/app0", "v1"), 1) },
    }))
    .expect("stream");
    let t0 = Instant::now();
    api.create(&PostParams::default(), &stream)
        .await
        .expect("create");
    warm.await.expect("warm-up");
    println!(
        "warm-up stream, create → status (includes the operator's start-up): {}",
        ms(t0.elapsed())
    );

    // 1. create: spec written → first TagEvent
    let watch = tokio::spawn(observe(api.clone(), v1.clone()));
    let mut started = HashMap::new();
    for i in 0..TAGS {
        let name = format!("s{i}");
        let stream: ImageStream = serde_json::from_value(json!({
            "apiVersion": "image.openshift.io/v1",
            "kind": "ImageStream",
            "metadata": { "name": name },
            "spec": { "tags": tag_spec(&registry.image_ref(&format!("bench/app{i}"), "v1"), 1) },
        }))
        .expect("stream");
        started.insert(name, Instant::now());
        api.create(&PostParams::default(), &stream)
            .await
            .expect("create");
    }
    let seen = watch.await.expect("observer");
    report("create → status event", &started, &seen);

    // 2. spec change: the tag points elsewhere (S = 2, as the webhook assigns)
    let watch = tokio::spawn(observe(api.clone(), v2.clone()));
    let mut started = HashMap::new();
    for i in 0..TAGS {
        let name = format!("s{i}");
        let patch = json!({ "spec": { "tags":
            tag_spec(&registry.image_ref(&format!("bench/app{i}"), "v2"), 2) } });
        started.insert(name.clone(), Instant::now());
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("patch");
    }
    let seen = watch.await.expect("observer");
    report("spec change → status event", &started, &seen);

    // 3. scheduled checks of unchanged tags
    tokio::time::sleep(Duration::from_secs(1)).await;
    let writes_before = Metrics::get(&metrics.status_writes);
    let checks_before = Metrics::get(&metrics.scheduled_tags);
    let mark = registry.mark();
    tokio::time::sleep(interval * 4).await;
    let writes = Metrics::get(&metrics.status_writes) - writes_before;
    let checks = Metrics::get(&metrics.scheduled_tags) - checks_before;
    let requests = summary(&registry.requests_since_async(mark).await);
    let heads = requests.iter().filter(|r| r.starts_with("HEAD ")).count();
    println!(
        "scheduled checks of unchanged tags over {}s: {checks} tag checks, {writes} status writes ({:.2}/check, target 0), {} registry requests ({:.2}/check, target 1; {heads} HEAD)",
        (interval * 4).as_secs(),
        writes as f64 / checks.max(1) as f64,
        requests.len(),
        requests.len() as f64 / checks.max(1) as f64,
    );
    let ok =
        writes == 0 && checks > 0 && requests.len() as u64 == checks && heads == requests.len();
    let _ = stop.send(());
    let _ = operator.await;
    if !ok {
        eprintln!("target missed");
        std::process::exit(1);
    }
}
