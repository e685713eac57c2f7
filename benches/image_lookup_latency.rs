//! What the image lookup webhook adds to a Pod's admission (a program, not a timed test):
//! the whole operator (webhooks, controllers) serving a namespace of 1,000 streams with
//! `lookupPolicy.local`, Pods created there naming `sNNNN:v1` (each stored with the digest),
//! against the same creates in a namespace the webhook does not cover; creates alternate
//! between the two so both see the same machine. Also the in-process cost of one review and
//! the index's size at 1,000 and 10,000 streams.
//!
//! `cargo bench --bench image_lookup_latency [-- --streams 1000 --pods 500]` (starts a
//! private cluster unless `IMAGESTREAM_TEST_KUBECONFIG` names one, as `e2e/with-cluster.sh`
//! sets). Exits non-zero unless 99% of the webhook's calls, as the apiserver times them
//! (`apiserver_admission_webhook_admission_duration_seconds`), took at most 5 ms; the
//! client-side figures are printed beside them.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use imagestream_operator::admission::{self, ImageLookup, registration};
use imagestream_operator::api::image_stream::ImageStream;
use imagestream_operator::controller::Metrics;
use imagestream_operator::stream::image_lookup::{LookupIndex, Operation, Review, Workload, plan};
use support::operator::Running;

const TARGET_P99: Duration = Duration::from_millis(5);
const LOOKUP: &str = registration::IMAGE_LOOKUP_WEBHOOK;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn digest(i: usize) -> String {
    format!("sha256:{i:064x}")
}

fn stream(namespace: &str, i: usize) -> ImageStream {
    serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": format!("s{i:04}"), "namespace": namespace},
        "spec": {"lookupPolicy": {"local": true}},
    }))
    .expect("stream")
}

/// A pushed tag, as an ImageStreamMapping leaves it: no spec tag, one history entry.
fn status(i: usize) -> Value {
    json!({"status": {"dockerImageRepository": "", "tags": [{"tag": "v1", "items": [{
        "created": "2026-01-01T00:00:00Z",
        "dockerImageReference": format!("registry.example/bench/s{i:04}@{}", digest(i)),
        "image": digest(i), "generation": 1}]}]}})
}

fn resolved(i: usize) -> String {
    format!("registry.example/bench/s{i:04}@{}", digest(i))
}

fn pod(name: &str, image: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": image},
                                {"name": "sidecar", "image": "quay.io/org/sidecar:1"}]},
    }))
    .expect("pod")
}

fn image(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

fn line(title: &str, sorted: &[Duration]) {
    println!(
        "{title:<46} p50 {:>9}  p99 {:>9}  max {:>9}  ({} creates)",
        ms(percentile(sorted, 50.0)),
        ms(percentile(sorted, 99.0)),
        ms(*sorted.last().unwrap_or(&Duration::ZERO)),
        sorted.len()
    );
}

/// An AdmissionReview of a Pod create in `ns`, as the apiserver sends it.
fn review_body(image: &str) -> Vec<u8> {
    let object = serde_json::to_value(pod("p", image)).expect("pod");
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "6d9d7a2c-1111-2222-3333-444455556666",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "p", "namespace": "ns", "operation": "CREATE",
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": object, "oldObject": null, "dryRun": false,
        }
    }))
    .expect("review")
}

/// Percentiles of `times`.
fn p50_p99(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    (percentile(&times, 50.0), percentile(&times, 99.0))
}

/// The in-process cost of one Pod against `streams` indexed streams: the plan alone, and a
/// whole review as the webhook server handles it (AdmissionReview parsed, planned, answered
/// with a patch, serialized); and the index's heap bytes.
fn in_process(streams: usize) -> ((Duration, Duration), (Duration, Duration), usize) {
    let mut index = LookupIndex::default();
    for i in 0..streams {
        let mut s = stream("ns", i);
        s.status = serde_json::from_value(status(i)["status"].clone()).expect("status");
        index.apply(&s);
    }
    let bytes = index.heap_bytes();
    let lookup = ImageLookup::new(Arc::new(Metrics::default()));
    lookup.replace(index.clone());
    let mut reviews = Vec::with_capacity(10_000);
    for n in 0..10_000 {
        let body = review_body(&format!("s{:04}:v1", n % streams));
        let started = Instant::now();
        let request = admission::review::parse(&body).expect("review");
        let answer = admission::review::to_body(lookup.review(&request));
        reviews.push(started.elapsed());
        assert!(answer.len() > 100);
    }
    let mut times = Vec::with_capacity(10_000);
    for n in 0..10_000 {
        let i = n % streams;
        let object = serde_json::to_value(pod("p", &format!("s{i:04}:v1"))).expect("pod");
        let started = Instant::now();
        let planned = plan(
            &Review {
                workload: Workload::Pod,
                operation: Operation::Create,
                namespace: "ns",
                object: &object,
                old_object: None,
            },
            &index,
        );
        times.push(started.elapsed());
        assert_eq!(planned.changes.len(), 1);
    }
    (p50_p99(times), p50_p99(reviews), bytes)
}

/// The apiserver's histogram of one webhook's calls
/// (`apiserver_admission_webhook_admission_duration_seconds`).
#[derive(Debug, Default)]
struct WebhookCalls {
    count: u64,
    under_5ms: u64,
    seconds: f64,
}

impl WebhookCalls {
    async fn read(webhook: &str) -> WebhookCalls {
        let mut kubectl = support::cluster::cluster().await.kubectl();
        kubectl.args(["get", "--raw", "/metrics"]);
        let output = tokio::process::Command::from(kubectl)
            .output()
            .await
            .expect("kubectl get --raw /metrics");
        let text = String::from_utf8_lossy(&output.stdout);
        let name = format!("name=\"{webhook}\"");
        let metric = "apiserver_admission_webhook_admission_duration_seconds";
        let mut calls = WebhookCalls::default();
        for line in text.lines().filter(|l| l.contains(&name)) {
            let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
                continue;
            };
            if line.starts_with(&format!("{metric}_count")) {
                calls.count += value as u64;
            } else if line.starts_with(&format!("{metric}_sum")) {
                calls.seconds += value;
            } else if line.starts_with(&format!("{metric}_bucket")) && line.contains("le=\"0.005\"")
            {
                calls.under_5ms += value as u64;
            }
        }
        calls
    }

    fn mean(&self) -> Duration {
        Duration::from_secs_f64(self.seconds / self.count.max(1) as f64)
    }

    fn share_under_5ms(&self) -> f64 {
        self.under_5ms as f64 / self.count.max(1) as f64
    }

    fn since(&self, before: &WebhookCalls) -> WebhookCalls {
        WebhookCalls {
            count: self.count - before.count,
            under_5ms: self.under_5ms - before.under_5ms,
            seconds: self.seconds - before.seconds,
        }
    }
}

#[tokio::main]
async fn main() {
    let streams = arg("--streams", 1000);
    let pods = arg("--pods", 500);
    println!("image lookup webhook: Pod admission with {streams} streams in the namespace");

    let ((p50, p99), (review_p50, review_p99), bytes) = in_process(streams);
    let us = |d: Duration| format!("{:.1} µs", d.as_secs_f64() * 1e6);
    println!(
        "in process, one Pod planned against the index  p50 {:>9}  p99 {:>9}",
        us(p50),
        us(p99)
    );
    println!(
        "in process, one whole review (parse, plan, answer) p50 {:>9}  p99 {:>9}",
        us(review_p50),
        us(review_p99)
    );
    let (_, _, bytes_10k) = in_process(10_000);
    println!(
        "index heap: {streams} streams {:.0} KiB ({} B per stream); 10,000 streams {:.1} MiB",
        bytes as f64 / 1024.0,
        bytes / streams.max(1),
        bytes_10k as f64 / (1024.0 * 1024.0)
    );

    let op = Running::start("bench-lookup").await;
    let admin = op.admin.clone();
    let baseline_namespace = support::cluster::fresh_namespace(&admin, "bench-nolookup").await;
    let api = op.streams();
    let namespace = op.namespace.clone();
    let t0 = Instant::now();
    futures::stream::iter(0..streams)
        .map(|i| {
            let api = api.clone();
            let namespace = namespace.clone();
            async move {
                let name = format!("s{i:04}");
                api.create(&PostParams::default(), &stream(&namespace, i))
                    .await?;
                api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status(i)))
                    .await
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await
        .expect("create the streams");
    println!(
        "{streams} streams created with a tag each in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let with: Api<Pod> = Api::namespaced(admin.clone(), &op.namespace);
    let without: Api<Pod> = Api::namespaced(admin.clone(), &baseline_namespace);
    // the index has the last stream, and the controllers are done with the new streams
    let last = streams - 1;
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let stored = with
            .create(&dry_run, &pod("probe", &format!("s{last:04}:v1")))
            .await
            .expect("dry run");
        if image(&stored) == resolved(last) && op.metrics.in_flight() == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the index never caught up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // warm-up, then alternate: one create with the webhook, one without
    let mut with_times = Vec::with_capacity(pods);
    let mut without_times = Vec::with_capacity(pods);
    let warm_up = 50;
    let mut calls_before = WebhookCalls::default();
    for n in 0..warm_up + pods {
        if n == warm_up {
            calls_before = WebhookCalls::read(LOOKUP).await;
        }
        let i = (n * 7) % streams;
        let written = format!("s{i:04}:v1");
        let started = Instant::now();
        let stored = with
            .create(&PostParams::default(), &pod(&format!("p{n}"), &written))
            .await
            .expect("create with the webhook");
        let took_with = started.elapsed();
        assert_eq!(image(&stored), resolved(i), "stored with the digest");
        let started = Instant::now();
        let stored = without
            .create(&PostParams::default(), &pod(&format!("p{n}"), &written))
            .await
            .expect("create without the webhook");
        let took_without = started.elapsed();
        assert_eq!(image(&stored), written, "no webhook there");
        if n >= warm_up {
            with_times.push(took_with);
            without_times.push(took_without);
        }
    }
    let calls = WebhookCalls::read(LOOKUP).await.since(&calls_before);
    // each pair ran back to back: their difference, as far as the machine lets it show
    let mut paired: Vec<i128> = with_times
        .iter()
        .zip(&without_times)
        .map(|(w, wo)| w.as_micros() as i128 - wo.as_micros() as i128)
        .collect();
    paired.sort();
    let paired_at = |p: f64| {
        let rank = ((p / 100.0) * paired.len() as f64).ceil() as usize;
        paired[rank.clamp(1, paired.len()) - 1] as f64 / 1000.0
    };
    with_times.sort();
    without_times.sort();
    line(
        &format!("Pod create, lookup webhook ({streams} streams)"),
        &with_times,
    );
    line("Pod create, no webhook", &without_times);
    let added_p50 = percentile(&with_times, 50.0).saturating_sub(percentile(&without_times, 50.0));
    let added_p99 = percentile(&with_times, 99.0).saturating_sub(percentile(&without_times, 99.0));
    println!(
        "with minus without, pair by pair                p50 {:>6.2} ms  p99 {:>6.2} ms",
        paired_at(50.0),
        paired_at(99.0)
    );
    println!(
        "added (difference of the two)                  p50 {:>9}  p99 {:>9}",
        ms(added_p50),
        ms(added_p99),
    );
    // the client's figures carry the whole machine's noise; the apiserver times the webhook
    // call itself (its histogram's first bucket ends at 5 ms)
    let met = calls.count >= pods as u64 && calls.share_under_5ms() >= 0.99;
    println!(
        "the webhook call, as the apiserver times it: mean {}, {} of {} calls ({:.1}%) within 5 ms: p99 < {} {}",
        ms(calls.mean()),
        calls.under_5ms,
        calls.count,
        calls.share_under_5ms() * 100.0,
        ms(TARGET_P99),
        if met { "met" } else { "MISSED" }
    );
    op.finish().await;
    if !met {
        std::process::exit(1);
    }
}
