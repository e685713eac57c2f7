//! Image change triggers against the local cluster (a program, not a timed test; issue 15):
//!
//! - 1,000 Deployments (replicas 0) follow 100 streams, each stream with tags `a` and `b`,
//!   five Deployments per tag; the controllers (in this process, as admin) bring them all to
//!   their tags first.
//! - 20 moves of an `a` tag, one at a time: from the stream's status write to each follower
//!   showing the new pull spec (100 Deployments), p50 and p99.
//! - writes per tag move: 20 more moves of `b` tags and 10 status writes that move no followed
//!   tag; patches counted by the controller and, independently, generations seen by a watch of
//!   the Deployments. Target: exactly the followers of the moved tag, 0 others.
//! - heap bytes of the trigger index holding the 1,000 Deployments (counted by a global
//!   allocator, after the controllers stopped), beside the Deployments as full objects.
//!
//! `cargo bench --bench triggers` (starts a private cluster unless `IMAGESTREAM_TEST_KUBECONFIG`
//! names one, as `e2e/with-cluster.sh` sets). Exits non-zero when a write target is missed.

#[path = "../tests/support/mod.rs"]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

use imagestream_operator::api::image_stream::ImageStream;
use imagestream_operator::controller::{self, Metrics, Options, Settings};
use imagestream_operator::trigger::{TRIGGER_ANNOTATION, TriggerIndex, Workload};

const STREAMS: usize = 100;
const DEPLOYMENTS: usize = 1000;
const MOVES: usize = 20;
const NO_OPS: usize = 10;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded as received
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded as received
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The pull spec of version `v` of stream `s`, tag `tag`.
fn pull_spec(s: usize, tag: &str, v: usize) -> String {
    let salt = if tag == "a" { 1 } else { 2 };
    format!(
        "registry.example/bench/app{s}@sha256:{:064x}",
        (s * 10 + salt) * 100_000 + v
    )
}

fn event(s: usize, tag: &str, v: usize) -> Value {
    let reference = pull_spec(s, tag, v);
    let image = reference.rsplit('@').next().unwrap_or_default().to_string();
    json!({"created": "2026-01-01T00:00:00Z", "dockerImageReference": reference,
           "image": image, "generation": 1})
}

/// The status of stream `s` with its tags at versions `a` and `b` (and `extra` untouched
/// tags, which no Deployment follows).
fn status(s: usize, a: usize, b: usize, extra: usize) -> Value {
    let mut tags = vec![
        json!({"tag": "a", "items": [event(s, "a", a)]}),
        json!({"tag": "b", "items": [event(s, "b", b)]}),
    ];
    for e in 0..extra {
        tags.push(json!({"tag": format!("c{e}"), "items": [event(s, "c", e)]}));
    }
    json!({"status": {"tags": tags}})
}

/// Deployment `j` follows stream `j % 100`, tag `a` or `b` by hundreds.
fn followed(j: usize) -> (usize, &'static str) {
    (
        j % STREAMS,
        if (j / STREAMS).is_multiple_of(2) {
            "a"
        } else {
            "b"
        },
    )
}

/// What the watch of the Deployments saw: per name, each generation with its image and
/// when it was first seen.
type Seen = Arc<Mutex<HashMap<String, Vec<(i64, String, Instant)>>>>;

fn watch_deployments(api: Api<Deployment>, seen: Seen) {
    tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
        while let Some(event) = events.next().await {
            let Ok(d) = event else { continue };
            let image = d
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .and_then(|s| s.containers.first())
                .and_then(|c| c.image.clone())
                .unwrap_or_default();
            let generation = d.metadata.generation.unwrap_or_default();
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            let history = seen.entry(d.name_any()).or_default();
            if history.last().is_none_or(|(g, _, _)| *g != generation) {
                history.push((generation, image, Instant::now()));
            }
        }
    });
}

/// When Deployment `name` was first seen showing `image`.
fn shown(seen: &Seen, name: &str, image: &str) -> Option<Instant> {
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    seen.get(name)?
        .iter()
        .find(|(_, i, _)| i == image)
        .map(|(_, _, t)| *t)
}

/// Generations seen per Deployment.
fn generations(seen: &Seen) -> HashMap<String, usize> {
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    seen.iter().map(|(n, h)| (n.clone(), h.len())).collect()
}

async fn wait_shown(seen: &Seen, names: &[String], image: &str, within: Duration) -> Vec<Instant> {
    let deadline = Instant::now() + within;
    loop {
        let times: Vec<Option<Instant>> = names.iter().map(|n| shown(seen, n, image)).collect();
        if times.iter().all(Option::is_some) {
            return times.into_iter().flatten().collect();
        }
        assert!(
            Instant::now() < deadline,
            "{image} not shown by all of {names:?} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::main]
async fn main() {
    support::cluster::install_crypto_provider();
    let cluster = support::cluster::cluster().await;
    let admin = cluster.client().await;
    support::crds::install(&admin).await;
    let namespace = support::cluster::fresh_namespace(&admin, "bench-triggers").await;
    let streams: Api<ImageStream> = Api::namespaced(admin.clone(), &namespace);
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &namespace);

    for s in 0..STREAMS {
        let stream: ImageStream = serde_json::from_value(json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
            "metadata": {"name": format!("s{s}")},
        }))
        .expect("stream");
        streams
            .create(&PostParams::default(), &stream)
            .await
            .expect("create stream");
        streams
            .patch_status(
                &format!("s{s}"),
                &PatchParams::default(),
                &Patch::Merge(status(s, 1, 1, 0)),
            )
            .await
            .expect("status");
    }
    let seen: Seen = Arc::default();
    watch_deployments(deployments.clone(), seen.clone());
    for j in 0..DEPLOYMENTS {
        let (s, tag) = followed(j);
        let triggers = json!([{"from": {"kind": "ImageStreamTag", "name": format!("s{s}:{tag}")},
            "fieldPath": "spec.template.spec.containers[?(@.name==\"app\")].image"}]);
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": format!("d{j}"),
                         "annotations": {TRIGGER_ANNOTATION: triggers.to_string()}},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": format!("d{j}")}},
                     "template": {"metadata": {"labels": {"app": format!("d{j}")}},
                                  "spec": {"containers": [{"name": "app", "image": "placeholder"}]}}},
        }))
        .expect("deployment");
        deployments
            .create(&PostParams::default(), &d)
            .await
            .expect("create deployment");
    }

    let metrics = Arc::new(Metrics::default());
    let options = Options {
        watch_namespace: Some(namespace.clone()),
        settings: Some(Settings::default()),
        concurrency: 16,
        metrics: metrics.clone(),
        pruner: None,
        ..Options::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let operator = tokio::spawn(controller::run(admin.clone(), options, async move {
        let _ = stopped.await;
    }));
    println!(
        "image change triggers: {DEPLOYMENTS} Deployments following {STREAMS} streams (2 tags each, 5 Deployments per tag), local cluster"
    );

    // start-up: every Deployment behind its tag is brought up to date once
    let everyone: Vec<String> = (0..DEPLOYMENTS).map(|j| format!("d{j}")).collect();
    for (j, name) in everyone.iter().enumerate() {
        let (s, tag) = followed(j);
        wait_shown(
            &seen,
            std::slice::from_ref(name),
            &pull_spec(s, tag, 1),
            Duration::from_secs(300),
        )
        .await;
    }
    let caught_up = started.elapsed();
    let initial = Metrics::get(&metrics.trigger_patches);
    println!(
        "{:<52} {:>9}  ({initial} patches for {DEPLOYMENTS} Deployments behind)",
        "start-up: all caught up after",
        ms(caught_up)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = generations(&seen);
    let patches_before = Metrics::get(&metrics.trigger_patches);

    // moves, one at a time: `a` tags of streams 0..20 (latency), `b` tags of streams 20..40
    let mut latencies = Vec::new();
    let mut expected: BTreeSet<String> = BTreeSet::new();
    let mut version: HashMap<(usize, &str), usize> = HashMap::new();
    for m in 0..2 * MOVES {
        let (s, tag) = if m < MOVES { (m, "a") } else { (m, "b") };
        let v = version.entry((s, tag)).or_insert(1);
        *v += 1;
        let (va, vb) = if tag == "a" { (*v, 1) } else { (1, *v) };
        let followers: Vec<String> = (0..DEPLOYMENTS)
            .filter(|j| followed(*j) == (s, tag))
            .map(|j| format!("d{j}"))
            .collect();
        expected.extend(followers.iter().cloned());
        let t0 = Instant::now();
        streams
            .patch_status(
                &format!("s{s}"),
                &PatchParams::default(),
                &Patch::Merge(status(s, va, vb, 0)),
            )
            .await
            .expect("move");
        let times = wait_shown(
            &seen,
            &followers,
            &pull_spec(s, tag, *v),
            Duration::from_secs(60),
        )
        .await;
        if tag == "a" {
            latencies.extend(times.iter().map(|t| t.duration_since(t0)));
        }
    }
    // status writes that move no followed tag (another tag of the stream changes)
    for n in 0..NO_OPS {
        let s = 50 + n;
        streams
            .patch_status(
                &format!("s{s}"),
                &PatchParams::default(),
                &Patch::Merge(status(s, 1, 1, 1 + n % 3)),
            )
            .await
            .expect("no-op write");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    latencies.sort();
    println!(
        "{:<52} p50 {:>9}  p99 {:>9}  max {:>9}  ({} Deployments, 5 per move)",
        "status write -> Deployment patched (seen by a watch)",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(*latencies.last().unwrap_or(&Duration::ZERO)),
        latencies.len()
    );
    let after = generations(&seen);
    let written: BTreeSet<String> = after
        .iter()
        .filter(|(n, g)| before.get(*n).copied().unwrap_or(0) < **g)
        .map(|(n, _)| n.clone())
        .collect();
    let generations_added: usize = after
        .iter()
        .map(|(n, g)| g - before.get(n).copied().unwrap_or(0))
        .sum();
    let patches = Metrics::get(&metrics.trigger_patches) - patches_before;
    let others = written.difference(&expected).count();
    let moves = 2 * MOVES;
    println!(
        "{:<52} {moves} moves + {NO_OPS} status writes moving no followed tag: {} followers to change, {patches} patches, {generations_added} new generations on {} Deployments, {others} others written",
        "writes per tag move",
        expected.len(),
        written.len(),
    );
    println!(
        "{:<52} {:.2} patches per move (target 5.00: the tag's followers), 0 per no-op write",
        "",
        patches as f64 / moves as f64
    );

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), operator).await;

    // memory: the Deployments as full objects, then the index built from them
    let listed = deployments
        .list(&ListParams::default())
        .await
        .expect("list")
        .items;
    let json_bytes: usize = listed
        .iter()
        .map(|d| serde_json::to_vec(d).map(|v| v.len()).unwrap_or(0))
        .sum();
    let start = live();
    let copies: Vec<Deployment> = listed.to_vec();
    let full = live() - start;
    drop(copies);
    let start = live();
    let mut index = TriggerIndex::default();
    for d in &listed {
        if let Some(w) = Workload::from_deployment(d) {
            index.apply(w);
        }
    }
    let index_bytes = live() - start;
    println!(
        "{:<52} {} bytes for {} workloads, {} tags: {:.0} bytes per workload (the Deployments as full objects: {:.0} bytes each, {:.0} as JSON)",
        "trigger index heap",
        index_bytes,
        index.len(),
        index.followed_tags(),
        index_bytes as f64 / index.len().max(1) as f64,
        full as f64 / listed.len().max(1) as f64,
        json_bytes as f64 / listed.len().max(1) as f64,
    );

    let mut failed = Vec::new();
    if patches as usize != expected.len() {
        failed.push(format!(
            "{patches} patches for {} followers",
            expected.len()
        ));
    }
    if others != 0 || generations_added != expected.len() {
        failed.push(format!(
            "{others} other Deployments written, {generations_added} generations for {} followers",
            expected.len()
        ));
    }
    if initial as usize != DEPLOYMENTS {
        failed.push(format!("{initial} patches at start-up for {DEPLOYMENTS}"));
    }
    if !failed.is_empty() {
        eprintln!("targets missed: {}", failed.join("; "));
        std::process::exit(1);
    }
}
