//! The scale benchmark (issue 8): N ImageStreams with 5 scheduled tags each across M
//! namespaces, imported by the operator binary (a process of its own, so its memory and CPU
//! are its own) from a local `docker-registry`, on the local cluster harness.
//!
//! Reports: time to the first full import (and until the views stop being written); with
//! nothing changing, registry requests and apiserver writes per minute over one schedule
//! interval (targets: one HEAD per tag per interval, zero writes); the operator's RSS
//! (target < 256 MiB) and CPU per 1,000 tag checks (target < 1 core-second); and p50/p99 from
//! a registry change to the new history entry when 1% of the tags change.
//!
//! ```text
//! e2e/with-cluster.sh cargo bench --bench scale -- --streams 10000 --out e2e/bench/results
//! e2e/with-cluster.sh cargo bench --bench scale -- --streams 1000 --interval 60 --out e2e/bench/results
//! ```
//!
//! Options: `--streams N` (10000), `--namespaces M` (100), `--repos R` (100; every registry
//! tag is shared by N/R streams), `--interval S` (120, the schedule interval),
//! `--out DIR` (writes `scale-<N>.json` and regenerates `DIR/scale.md` from every JSON there).
//! `SCALE_WRAP` (environment) runs the operator under a command, for a heap profile:
//! `SCALE_WRAP="heaptrack -o /tmp/op"` (then stop the operator with SIGINT, not the bench,
//! so the profile is complete; its RSS figures include the profiler).
//! Exits non-zero when an invariant breaks: a tag never imported, a write while nothing
//! changes, more than one HEAD per tag per interval, a change never seen.
//!
//! The first import is broken down (issue 17, `first_import` in the JSON, the second table
//! of `scale.md`): the apiserver's writes by kind (`resource[/subresource] VERB`, from its
//! `apiserver_request_total`), its latency for them and the latency the operator saw
//! (`imagestream_operator_apiserver_request_duration_seconds`), reconcile passes and their
//! duration, reconciles in flight (of `--concurrency` 16), time from a stream's creation to
//! its import and from its import to its views, registry time, the CPU of each process
//! (operator, kube-apiserver with etcd, kube-controller-manager, registry, the rest of the
//! machine), and etcd's database per stream (grown, and in use after a compaction).
//! `--calibration FILE` (a `calibrate-<N>.json` of `e2e/bench/calibrate.rs`, measured on the
//! same cluster just before) turns the writes into the time the apiserver needs for them at
//! its calibrated rates, and the first import into a ratio to that capacity (target ≥ 0.7):
//!
//! ```text
//! make calibrate STREAMS=1000     # calibrate.rs then scale.rs --calibration, one cluster
//! ```

#[path = "../../tests/support/mod.rs"]
mod support;

#[path = "measure.rs"]
mod measure;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PartialObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use std::collections::BTreeMap;

use imagestream_operator::api::image_stream::ImageStream;
use imagestream_operator::api::image_stream_layers::ImageStreamLayers;
use measure::{Apiserver, Etcd, Proc, TestBed, round};
use support::images::{ImageSpec, TestImage};
use support::registry::{RegistryOptions, TestRegistry};

const TAGS: usize = 5;
const LABEL: &str = "bench.imagestream.io/scale";

struct Args {
    streams: usize,
    namespaces: usize,
    repos: usize,
    interval: u64,
    out: Option<PathBuf>,
    calibration: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        streams: 10_000,
        namespaces: 100,
        repos: 100,
        interval: 120,
        out: None,
        calibration: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--streams" => a.streams = value().parse().expect("--streams"),
            "--namespaces" => a.namespaces = value().parse().expect("--namespaces"),
            "--repos" => a.repos = value().parse().expect("--repos"),
            "--interval" => a.interval = value().parse().expect("--interval"),
            "--out" => a.out = Some(PathBuf::from(value())),
            "--calibration" => a.calibration = Some(PathBuf::from(value())),
            // only regenerate DIR/scale.md from the JSON results there
            "--render" => {
                render_table(Path::new(&value()));
                std::process::exit(0);
            }
            // cargo bench passes --bench
            "--bench" => {}
            other => panic!("unknown option {other}"),
        }
    }
    a.namespaces = a.namespaces.clamp(1, a.streams);
    a.repos = a.repos.clamp(1, a.streams);
    a
}

/// Sum of one family in a Prometheus text exposition, optionally filtered by a label.
fn metric_sum(text: &str, name: &str, label: Option<&str>) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| label.is_none_or(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn operator_metrics(port: u16) -> String {
    let url = format!("http://127.0.0.1:{port}/metrics");
    match reqwest::get(&url).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Writes to image.openshift.io resources the apiserver has served (its own /metrics).
fn apiserver_image_writes(cluster: &support::cluster::TestCluster) -> f64 {
    let out = cluster
        .kubectl()
        .args(["get", "--raw", "/metrics"])
        .output()
        .expect("kubectl get --raw /metrics");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter(|l| l.contains("group=\"image.openshift.io\""))
        .filter(|l| {
            ["POST", "PUT", "PATCH", "DELETE"]
                .iter()
                .any(|v| l.contains(&format!("verb=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn start_operator(kubeconfig: &Path, metrics_port: u16, log: &Path) -> Child {
    let file = std::fs::File::create(log).expect("operator log");
    let bin = env!("CARGO_BIN_EXE_imagestream-operator");
    let mut command = match std::env::var("SCALE_WRAP") {
        Ok(wrap) if !wrap.is_empty() => {
            let mut words = wrap.split_whitespace();
            let mut c = Command::new(words.next().expect("SCALE_WRAP"));
            c.args(words).arg(bin);
            c
        }
        _ => Command::new(bin),
    };
    command
        .args([
            "run",
            "--no-webhooks",
            "--no-leader-elect",
            "--namespace",
            "default",
        ])
        .args(["--metrics-port", &metrics_port.to_string()])
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log"))
        .stderr(file)
        .spawn()
        .expect("start the operator")
}

fn namespace_of(stream: usize, args: &Args) -> String {
    format!("scale-{}", stream % args.namespaces)
}

/// The (repository, tag) stream `i`'s tag `t` follows.
fn source(stream: usize, tag: usize, args: &Args) -> (String, String) {
    (
        format!("scale/app{}", stream % args.repos),
        format!("v{tag}"),
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Per stream key (`ns/name`), the current digest of each tag.
type Seen = Arc<Mutex<HashMap<String, [Option<String>; TAGS]>>>;

/// When each stream (`ns/name`) was first seen in some state.
type Times = Arc<Mutex<HashMap<String, Instant>>>;

/// Follows every bench stream, recording the head of each tag's history, and when each
/// stream first had all its tags imported.
fn follow(
    client: Client,
    seen: Seen,
    changed_at: Arc<Mutex<HashMap<(String, usize), Instant>>>,
    imported_at: Times,
) {
    let api = Api::<ImageStream>::all(client);
    tokio::spawn(async move {
        let config = watcher::Config::default().labels(LABEL);
        let mut events = std::pin::pin!(watcher(api, config).default_backoff().applied_objects());
        while let Some(event) = events.next().await {
            let Ok(stream) = event else { continue };
            let key = format!(
                "{}/{}",
                stream.namespace().unwrap_or_default(),
                stream.name_any()
            );
            let mut heads: [Option<String>; TAGS] = Default::default();
            for (t, head) in heads.iter_mut().enumerate() {
                *head = stream
                    .status
                    .as_ref()
                    .and_then(|s| s.tag(&format!("t{t}")))
                    .and_then(|tag| tag.items.first())
                    .map(|e| e.image.clone());
            }
            let now = Instant::now();
            if heads.iter().all(Option::is_some) {
                imported_at
                    .lock()
                    .expect("imported")
                    .entry(key.clone())
                    .or_insert(now);
            }
            let mut seen = seen.lock().expect("seen");
            let previous = seen.insert(key.clone(), heads.clone());
            if let Some(previous) = previous {
                let mut changed = changed_at.lock().expect("changed");
                for t in 0..TAGS {
                    if previous[t] != heads[t] && previous[t].is_some() {
                        changed.entry((key.clone(), t)).or_insert(now);
                    }
                }
            }
        }
    });
}

/// Records when each bench stream's ImageStreamLayers (the last view a sync writes) first
/// appears: its views are written.
fn follow_layers(client: Client, layers_at: Times) {
    let api = Api::<PartialObjectMeta<ImageStreamLayers>>::all(client);
    tokio::spawn(async move {
        let config = watcher::Config::default().labels(LABEL);
        let mut events = std::pin::pin!(watcher(api, config).default_backoff().applied_objects());
        while let Some(event) = events.next().await {
            let Ok(layers) = event else { continue };
            let key = format!(
                "{}/{}",
                layers.namespace().unwrap_or_default(),
                layers.name_any()
            );
            layers_at
                .lock()
                .expect("layers")
                .entry(key)
                .or_insert_with(Instant::now);
        }
    });
}

async fn push(registry: &TestRegistry, repo: &str, tag: &str, seed: u64) -> String {
    let image: TestImage = ImageSpec::single("amd64", seed).build().into();
    registry
        .client()
        .push(repo, tag, &image)
        .await
        .expect("push")
}

#[tokio::main]
async fn main() {
    let args = args();
    let started_all = Instant::now();
    support::cluster::install_crypto_provider();
    let cluster = support::cluster::cluster().await;
    let admin = cluster.client().await;
    support::crds::install(&admin).await;
    let total_tags = args.streams * TAGS;
    println!(
        "scale: {} streams × {TAGS} tags = {total_tags} scheduled tags in {} namespaces, {} registry tags, interval {} s",
        args.streams,
        args.namespaces,
        args.repos * TAGS,
        args.interval
    );

    // the registry: R repositories × 5 tags
    let registry = RegistryOptions::plain().start();
    let mut digests: HashMap<(String, String), String> = HashMap::new();
    let pairs: Vec<(String, String)> = (0..args.repos)
        .flat_map(|r| (0..TAGS).map(move |t| (format!("scale/app{r}"), format!("v{t}"))))
        .collect();
    let pushed: Vec<((String, String), String)> = futures::stream::iter(pairs.iter().enumerate())
        .map(|(i, (repo, tag))| {
            let registry = &registry;
            async move {
                let digest = push(registry, repo, tag, 1_000_000 + i as u64).await;
                ((repo.clone(), tag.clone()), digest)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    digests.extend(pushed);

    // the schedule: every interval, no per-minute cap
    let config: Value = json!({
        "apiVersion": "operator.imagestream.io/v1alpha1", "kind": "ImageImportConfig",
        "metadata": {"name": "cluster"},
        "spec": {
            "scheduledImageImportMinimumIntervalSeconds": args.interval,
            "maxScheduledImageImportsPerMinute": -1,
            "maxConcurrentRequestsPerRegistry": 16,
        },
    });
    let configs = Api::<imagestream_operator::config::ImageImportConfig>::all(admin.clone());
    configs
        .patch(
            "cluster",
            &PatchParams::apply("scale-bench").force(),
            &Patch::Apply(&config),
        )
        .await
        .expect("ImageImportConfig");

    let dir = tempfile::tempdir().expect("tempdir");
    let metrics_port = free_port();
    let mut operator = start_operator(cluster.kubeconfig(), metrics_port, &dir.path().join("log"));
    let proc = Proc(operator.id());

    let seen: Seen = Arc::default();
    let changed_at = Arc::new(Mutex::new(HashMap::new()));
    let imported_at: Times = Arc::default();
    let layers_at: Times = Arc::default();
    let created_at: Times = Arc::default();
    follow(
        admin.clone(),
        seen.clone(),
        changed_at.clone(),
        imported_at.clone(),
    );
    follow_layers(admin.clone(), layers_at.clone());
    let cluster_dir = measure::cluster_dir(cluster.harness_dir());
    let etcd = cluster_dir.as_deref().and_then(Etcd::of_cluster);
    let bed = TestBed::find(cluster_dir.as_deref());
    // the operator has listed its caches (its /metrics answers)
    let up = Instant::now();
    while operator_metrics(metrics_port).await.is_empty() && up.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let uptime_before = measure::uptime();
    println!("{uptime_before}");
    let before = Snapshot::take(&admin, metrics_port, &bed, proc, etcd.as_ref(), true).await;

    // 1. create everything, and time the first full import
    for n in 0..args.namespaces {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(format!("scale-{n}")),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        match Api::<Namespace>::all(admin.clone())
            .create(&PostParams::default(), &ns)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("namespace: {e}"),
        }
    }
    let cpu_before_import = proc.cpu_seconds();
    let t0 = Instant::now();
    futures::stream::iter(0..args.streams)
        .map(|i| {
            let admin = admin.clone();
            let registry = &registry;
            let args = &args;
            let created_at = created_at.clone();
            async move {
                let tags: Vec<Value> = (0..TAGS)
                    .map(|t| {
                        let (repo, tag) = source(i, t, args);
                        json!({"name": format!("t{t}"), "generation": 1,
                            "from": {"kind": "DockerImage", "name": registry.image_ref(&repo, &tag)},
                            "importPolicy": {"insecure": true, "scheduled": true}})
                    })
                    .collect();
                let stream: ImageStream = serde_json::from_value(json!({
                    "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
                    "metadata": {"name": format!("s{i}"), "labels": {LABEL: "true"}},
                    "spec": {"tags": tags},
                }))
                .expect("stream");
                Api::<ImageStream>::namespaced(admin, &namespace_of(i, args))
                    .create(&PostParams::default(), &stream)
                    .await
                    .map(|_| {
                        created_at
                            .lock()
                            .expect("created")
                            .insert(format!("{}/s{i}", namespace_of(i, args)), Instant::now());
                    })
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await
        .expect("create streams");
    let created = t0.elapsed();
    println!(
        "created {} streams in {:.1} s",
        args.streams,
        created.as_secs_f64()
    );
    let complete = |seen: &HashMap<String, [Option<String>; TAGS]>| {
        seen.values()
            .filter(|heads| heads.iter().all(Option::is_some))
            .count()
    };
    let import_deadline = Duration::from_secs(3600);
    // reconciles in flight, sampled about once a second until the views settle
    let mut in_flight_samples: Vec<f64> = Vec::new();
    let mut sampled = Instant::now();
    loop {
        if sampled.elapsed() >= Duration::from_secs(1) {
            sampled = Instant::now();
            in_flight_samples.extend(in_flight(metrics_port).await);
        }
        let done = complete(&seen.lock().expect("seen"));
        if done == args.streams {
            break;
        }
        if t0.elapsed() > import_deadline {
            eprintln!(
                "only {done} of {} streams imported after {import_deadline:?}",
                args.streams
            );
            let _ = operator.kill();
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first_import = t0.elapsed();
    println!(
        "first full import: {:.1} s ({:.0} tags/s); operator RSS {:.0} MiB",
        first_import.as_secs_f64(),
        total_tags as f64 / first_import.as_secs_f64(),
        proc.rss_mib()
    );
    // every tag shows the digest its registry tag had
    let wrong = {
        let seen = seen.lock().expect("seen");
        (0..args.streams)
            .filter(|&i| {
                let key = format!("{}/s{i}", namespace_of(i, &args));
                let heads = &seen[&key];
                (0..TAGS).any(|t| heads[t].as_ref() != Some(&digests[&source(i, t, &args)]))
            })
            .count()
    };
    // the views follow: wait until image.openshift.io writes stop for 10 s
    let mut last = apiserver_image_writes(cluster);
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(10) && t0.elapsed() < import_deadline {
        tokio::time::sleep(Duration::from_secs(2)).await;
        in_flight_samples.extend(in_flight(metrics_port).await);
        let now = apiserver_image_writes(cluster);
        if now > last {
            quiet_since = Instant::now();
            last = now;
        }
    }
    let settled = quiet_since.duration_since(t0);
    let import_cpu = proc.cpu_seconds() - cpu_before_import;
    println!(
        "views settled: {:.1} s after the first create; {:.0} image.openshift.io writes so far; import CPU {import_cpu:.1} s",
        settled.as_secs_f64(),
        last
    );
    let after = Snapshot::take(&admin, metrics_port, &bed, proc, etcd.as_ref(), false).await;
    let uptime_after = measure::uptime();
    let calibration = args.calibration.as_ref().map(|path| {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("--calibration {}: {e}", path.display()));
        serde_json::from_str::<Value>(&text)
            .unwrap_or_else(|e| panic!("--calibration {}: {e}", path.display()))
    });
    let times = StreamTimes {
        created: created_at.lock().expect("created").clone(),
        imported: imported_at.lock().expect("imported").clone(),
        layers: layers_at.lock().expect("layers").clone(),
    };
    let breakdown = breakdown(
        &args,
        &before,
        &after,
        (
            t0.elapsed().as_secs_f64(),
            settled.as_secs_f64(),
            first_import.as_secs_f64(),
        ),
        &in_flight_samples,
        &times,
        calibration.as_ref(),
        (uptime_before, uptime_after),
    );
    println!(
        "first import breakdown: {}",
        serde_json::to_string_pretty(&breakdown).unwrap_or_default()
    );

    // 2. nothing changes: one interval to reach the steady schedule, then one measured
    let interval = Duration::from_secs(args.interval);
    tokio::time::sleep(interval).await;
    let metrics0 = operator_metrics(metrics_port).await;
    let writes0 = apiserver_image_writes(cluster);
    let cpu0 = proc.cpu_seconds();
    let mark = registry.mark();
    let w0 = Instant::now();
    tokio::time::sleep(interval).await;
    let window = w0.elapsed().as_secs_f64();
    let metrics1 = operator_metrics(metrics_port).await;
    let writes = apiserver_image_writes(cluster) - writes0;
    let cpu = proc.cpu_seconds() - cpu0;
    let requests = registry.requests_since_async(mark).await;
    let heads = requests.iter().filter(|r| r.method == "HEAD").count();
    let checks = metric_sum(&metrics1, "imagestream_operator_imports_total", None)
        - metric_sum(&metrics0, "imagestream_operator_imports_total", None);
    let per_min = |n: f64| n * 60.0 / window;
    let rss = proc.rss_mib();
    let heads_per_tag_per_interval =
        heads as f64 / total_tags as f64 * (args.interval as f64 / window);
    let cpu_per_1000 = if checks > 0.0 {
        cpu / (checks / 1000.0)
    } else {
        f64::NAN
    };
    println!(
        "idle over {window:.0} s: {} registry requests/min ({} HEAD/min, {heads_per_tag_per_interval:.3} HEAD per tag per interval), {:.1} apiserver writes/min, {checks:.0} tag checks, CPU {cpu:.2} s ({cpu_per_1000:.3} s per 1,000 checks), RSS {rss:.0} MiB",
        per_min(requests.len() as f64).round(),
        per_min(heads as f64).round(),
        per_min(writes)
    );

    // 3. 1% of the tags change in the registry
    let pairs_to_change = (args.repos * TAGS).div_ceil(100).max(1);
    let changed_pairs: Vec<(String, String)> =
        pairs.iter().take(pairs_to_change).cloned().collect();
    let mut affected: HashSet<(String, usize)> = HashSet::new();
    for i in 0..args.streams {
        for t in 0..TAGS {
            if changed_pairs.contains(&source(i, t, &args)) {
                affected.insert((format!("{}/s{i}", namespace_of(i, &args)), t));
            }
        }
    }
    changed_at.lock().expect("changed").clear();
    let pushed_at = Instant::now();
    let mut new_digests = HashMap::new();
    for (k, (repo, tag)) in changed_pairs.iter().enumerate() {
        let d = push(&registry, repo, tag, 2_000_000 + k as u64).await;
        new_digests.insert((repo.clone(), tag.clone()), d);
    }
    let change_deadline = interval * 3 + Duration::from_secs(60);
    loop {
        let n = {
            let changed = changed_at.lock().expect("changed");
            affected.iter().filter(|k| changed.contains_key(*k)).count()
        };
        if n == affected.len() || pushed_at.elapsed() > change_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (mut latencies, unchanged_moved) = {
        let changed = changed_at.lock().expect("changed");
        let latencies: Vec<Duration> = affected
            .iter()
            .filter_map(|k| {
                changed
                    .get(k)
                    .map(|at| at.saturating_duration_since(pushed_at))
            })
            .collect();
        let others = changed.keys().filter(|k| !affected.contains(*k)).count();
        (latencies, others)
    };
    latencies.sort();
    let missed_changes = affected.len() - latencies.len();
    let (p50, p99, max) = if latencies.is_empty() {
        (Duration::ZERO, Duration::ZERO, Duration::ZERO)
    } else {
        (
            percentile(&latencies, 50.0),
            percentile(&latencies, 99.0),
            *latencies.last().unwrap_or(&Duration::ZERO),
        )
    };
    // the new heads are the pushed digests, with the old entry kept below
    let wrong_after_change = {
        let seen = seen.lock().expect("seen");
        affected
            .iter()
            .filter(|(key, t)| {
                let i: usize = key
                    .rsplit_once("/s")
                    .and_then(|(_, n)| n.parse().ok())
                    .unwrap_or(0);
                seen[key][*t].as_ref() != Some(&new_digests[&source(i, *t, &args)])
            })
            .count()
    };
    println!(
        "1% change: {} registry tags pushed, {} stream tags affected: p50 {:.1} s, p99 {:.1} s, max {:.1} s (interval {} s); {missed_changes} not seen, {unchanged_moved} unaffected tags moved",
        changed_pairs.len(),
        affected.len(),
        p50.as_secs_f64(),
        p99.as_secs_f64(),
        max.as_secs_f64(),
        args.interval
    );
    let peak = proc.peak_rss_mib();
    let _ = operator.kill();
    let _ = operator.wait();

    let result = json!({
        "streams": args.streams,
        "namespaces": args.namespaces,
        "tags_per_stream": TAGS,
        "scheduled_tags": total_tags,
        "registry_tags": args.repos * TAGS,
        "interval_seconds": args.interval,
        "first_full_import_seconds": round(first_import.as_secs_f64()),
        "views_settled_seconds": round(settled.as_secs_f64()),
        "import_cpu_seconds": round(import_cpu),
        "idle": {
            "window_seconds": round(window),
            "registry_requests_per_minute": round(per_min(requests.len() as f64)),
            "head_per_minute": round(per_min(heads as f64)),
            "head_per_tag_per_interval": round(heads_per_tag_per_interval),
            "apiserver_writes_per_minute": round(per_min(writes)),
            "tag_checks": checks,
            "cpu_seconds": round(cpu),
            "cpu_seconds_per_1000_checks": round(cpu_per_1000),
        },
        "rss_mib": round(rss),
        "peak_rss_mib": round(peak),
        "change": {
            "registry_tags_pushed": changed_pairs.len(),
            "stream_tags_affected": affected.len(),
            "p50_seconds": round(p50.as_secs_f64()),
            "p99_seconds": round(p99.as_secs_f64()),
            "max_seconds": round(max.as_secs_f64()),
            "not_seen": missed_changes,
        },
        "machine": machine(),
        "wall_seconds": round(started_all.elapsed().as_secs_f64()),
        "first_import": breakdown,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&result).unwrap_or_default()
    );
    if let Some(out) = &args.out {
        write_results(out, args.streams, &result);
    }

    let mut broken = Vec::new();
    if wrong > 0 {
        broken.push(format!("{wrong} streams imported a wrong digest"));
    }
    if writes > 0.0 {
        broken.push(format!("{writes} apiserver writes while nothing changed"));
    }
    if heads_per_tag_per_interval > 1.05 {
        broken.push(format!(
            "{heads_per_tag_per_interval:.3} HEAD per tag per interval"
        ));
    }
    if heads == 0 {
        broken.push("no scheduled check while idle".into());
    }
    if missed_changes > 0 || wrong_after_change > 0 || unchanged_moved > 0 {
        broken.push(format!(
            "change: {missed_changes} not seen, {wrong_after_change} wrong, {unchanged_moved} moved without a change"
        ));
    }
    if !broken.is_empty() {
        eprintln!("scale: {}", broken.join("; "));
        std::process::exit(1);
    }
    if rss >= 256.0 {
        println!("target missed: RSS {rss:.0} MiB ≥ 256 MiB");
    }
    if cpu_per_1000 >= 1.0 {
        println!("target missed: {cpu_per_1000:.3} CPU s per 1,000 checks ≥ 1");
    }
}

/// What is measured at both ends of the first import.
struct Snapshot {
    at: Instant,
    apiserver: Apiserver,
    operator: Vec<measure::Sample>,
    cpu: measure::Cpu,
    /// etcd as the import left it, and after a compaction (the live keys in use).
    etcd: Option<measure::EtcdStatus>,
    etcd_compacted: Option<measure::EtcdStatus>,
}

impl Snapshot {
    async fn take(
        client: &Client,
        metrics_port: u16,
        bed: &TestBed,
        operator: Proc,
        etcd: Option<&Etcd>,
        defragment: bool,
    ) -> Snapshot {
        let at = Instant::now();
        let cpu = bed.cpu(Some(operator));
        let apiserver = Apiserver::scrape(client).await;
        let operator = measure::parse(&operator_metrics(metrics_port).await);
        let (etcd, etcd_compacted) = match etcd {
            Some(etcd) => {
                let raw = etcd.status().await;
                let mut compacted = etcd.compact().await;
                if defragment {
                    compacted = etcd.defragment().await;
                }
                (if defragment { compacted } else { raw }, compacted)
            }
            None => (None, None),
        };
        Snapshot {
            at,
            apiserver,
            operator,
            cpu,
            etcd,
            etcd_compacted,
        }
    }

    /// The operator's histograms of `family` (without its prefix), by `key`.
    fn operator_hist(
        &self,
        family: &str,
        key: impl Fn(&measure::Sample) -> Option<String>,
    ) -> BTreeMap<String, measure::Hist> {
        measure::histograms(
            &self.operator,
            &format!("imagestream_operator_{family}"),
            key,
        )
    }

    fn operator_counters(&self, family: &str, label: &str) -> BTreeMap<String, f64> {
        let name = format!("imagestream_operator_{family}");
        let mut out = BTreeMap::new();
        for s in self.operator.iter().filter(|s| s.name == name) {
            *out.entry(s.label(label).to_string()).or_insert(0.0) += s.value;
        }
        out
    }
}

/// `imagestream_operator_reconciles_in_flight{controller="imagestream"}` now.
async fn in_flight(port: u16) -> Option<f64> {
    measure::parse(&operator_metrics(port).await)
        .into_iter()
        .find(|s| {
            s.name == "imagestream_operator_reconciles_in_flight"
                && s.label("controller") == "imagestream"
        })
        .map(|s| s.value)
}

/// When each stream was created, had every tag imported, and had its views written.
struct StreamTimes {
    created: HashMap<String, Instant>,
    imported: HashMap<String, Instant>,
    layers: HashMap<String, Instant>,
}

impl StreamTimes {
    /// Seconds from `from` to `to` for every stream that has both, sorted.
    fn spans(from: &HashMap<String, Instant>, to: &HashMap<String, Instant>) -> Vec<f64> {
        let mut spans: Vec<f64> = from
            .iter()
            .filter_map(|(k, a)| Some(to.get(k)?.saturating_duration_since(*a).as_secs_f64()))
            .collect();
        spans.sort_by(f64::total_cmp);
        spans
    }

    fn summary(spans: &[f64]) -> Value {
        json!({
            "streams": spans.len(),
            "mean_seconds": round(spans.iter().sum::<f64>() / spans.len().max(1) as f64),
            "p50_seconds": round(measure::percentile(spans, 50.0)),
            "p99_seconds": round(measure::percentile(spans, 99.0)),
            "max_seconds": round(spans.last().copied().unwrap_or(f64::NAN)),
        })
    }
}

fn summaries(hists: &BTreeMap<String, measure::Hist>) -> Value {
    Value::Object(
        hists
            .iter()
            .map(|(k, h)| (k.clone(), h.summary()))
            .collect(),
    )
}

fn is_view(key: &str) -> bool {
    measure::VIEW_RESOURCES.contains(&key.split(' ').next().unwrap_or_default())
}

/// `resource VERB` of the operator's own request histogram, for write verbs.
fn operator_write_key(s: &measure::Sample) -> Option<String> {
    measure::WRITE_VERBS
        .contains(&s.label("verb"))
        .then(|| format!("{} {}", s.label("resource"), s.label("verb")))
}

/// The first import broken down (issue 17): see the module docs.
#[allow(clippy::too_many_arguments)]
fn breakdown(
    args: &Args,
    before: &Snapshot,
    after: &Snapshot,
    (_elapsed, settled, first_import): (f64, f64, f64),
    in_flight_samples: &[f64],
    times: &StreamTimes,
    calibration: Option<&Value>,
    (uptime_before, uptime_after): (String, String),
) -> Value {
    let n = args.streams as f64;
    let per = |x: f64| round(x / n);
    let window = after.at.duration_since(before.at).as_secs_f64();
    let writes = measure::delta(&before.apiserver.writes(), &after.apiserver.writes());
    let conflicts = measure::delta(&before.apiserver.conflicts(), &after.apiserver.conflicts());
    let total: f64 = writes.values().sum();
    let views: f64 = writes
        .iter()
        .filter(|(k, _)| is_view(k))
        .map(|(_, v)| v)
        .sum();
    let server = measure::delta_hist(
        &before.apiserver.write_latency(),
        &after.apiserver.write_latency(),
    );
    let seen = measure::delta_hist(
        &before.operator_hist("apiserver_request_duration_seconds", operator_write_key),
        &after.operator_hist("apiserver_request_duration_seconds", operator_write_key),
    );
    let all = |hists: &BTreeMap<String, measure::Hist>| {
        let mut merged = measure::Hist::default();
        for h in hists.values() {
            merged.merge(h);
        }
        merged
    };
    let one = |s: &Snapshot, family: &str| {
        s.operator_hist(family, |s| {
            (s.label("controller") == "imagestream" || s.label("controller").is_empty())
                .then(String::new)
        })
        .remove("")
        .unwrap_or_default()
    };
    let reconcile =
        one(after, "reconcile_duration_seconds").since(&one(before, "reconcile_duration_seconds"));
    let registry_requests = one(after, "registry_request_duration_seconds")
        .since(&one(before, "registry_request_duration_seconds"));
    let batches =
        one(after, "import_duration_seconds").since(&one(before, "import_duration_seconds"));
    let by_method = measure::delta(
        &before.operator_counters("registry_requests_total", "method"),
        &after.operator_counters("registry_requests_total", "method"),
    );
    let import_spans = StreamTimes::spans(&times.created, &times.imported);
    let view_spans = StreamTimes::spans(&times.imported, &times.layers);
    // the service time of a first pass up to its status write: the import batch, the
    // stream's share of Image creates, the status write (the latency the operator saw)
    let seen_mean = |key: &str| seen.get(key).map_or(0.0, measure::Hist::mean);
    let images_per_stream = writes.get("images POST").copied().unwrap_or(0.0) / n;
    let first_pass = batches.mean()
        + images_per_stream * seen_mean("images POST")
        + seen_mean("imagestreams/status PUT");
    let mean_import = import_spans.iter().sum::<f64>() / import_spans.len().max(1) as f64;
    let mean_in_flight =
        in_flight_samples.iter().sum::<f64>() / in_flight_samples.len().max(1) as f64;
    let etcd = match (
        before.etcd,
        after.etcd,
        before.etcd_compacted,
        after.etcd_compacted,
    ) {
        (Some(b), Some(a), Some(bc), Some(ac)) => {
            let in_use = per(ac.db_size_in_use - bc.db_size_in_use);
            // the views' share, from the calibration's in-use sizes with and without them
            let views_in_use = calibration.and_then(|c| {
                Some(
                    c["etcd"]["in_use_per_stream_bytes"].as_f64()?
                        - c["etcd"]["in_use_per_stream_without_views_bytes"].as_f64()?,
                )
            });
            json!({
                "db_size_before": b.db_size,
                "db_size_after": a.db_size,
                "db_growth_per_stream_bytes": per(a.db_size - b.db_size),
                "in_use_per_stream_bytes": in_use,
                "views_in_use_per_stream_bytes_calibrated": views_in_use.map(round),
                "in_use_per_stream_without_views_bytes": views_in_use.map(|v| round(in_use - v)),
            })
        }
        _ => Value::Null,
    };
    let capacity = calibration.map(|c| {
        let rates: BTreeMap<&str, f64> = c["kinds"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| Some((k["key"].as_str()?, k["writes_per_second"].as_f64()?)))
            .collect();
        let mean_rate = c["all_kinds"]["writes_per_second"]
            .as_f64()
            .unwrap_or(f64::NAN);
        // kube-apiserver's (with etcd) CPU per write of each kind, as calibrated
        let cpu: BTreeMap<&str, f64> = c["kinds"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| {
                Some((
                    k["key"].as_str()?,
                    k["cpu"]["apiserver_etcd"].as_f64()? / k["writes"].as_f64()?.max(1.0),
                ))
            })
            .collect();
        let mean_cpu = cpu.values().sum::<f64>() / cpu.len().max(1) as f64;
        let expected_cpu: f64 = writes
            .iter()
            .map(|(key, count)| count * cpu.get(key.as_str()).copied().unwrap_or(mean_cpu))
            .sum();
        let apiserver_cpu = after.cpu.apiserver - before.cpu.apiserver;
        let mut bound = 0.0;
        let mut view_bound = 0.0;
        let mut uncalibrated = BTreeMap::new();
        for (key, count) in &writes {
            let rate = match rates.get(key.as_str()) {
                Some(rate) => *rate,
                None => {
                    uncalibrated.insert(key.clone(), *count);
                    mean_rate
                }
            };
            bound += count / rate;
            if is_view(key) {
                view_bound += count / rate;
            }
        }
        json!({
            "streams": c["streams"],
            "uptime": c["uptime_before"],
            "bound_seconds": round(bound),
            "views_bound_seconds": round(view_bound),
            "bound_without_views_seconds": round(bound - view_bound),
            "ratio_to_capacity": round(bound / settled),
            "ratio_to_capacity_first_full_import": round(bound / first_import),
            // the apiserver's CPU for these writes at the calibrated cost, against what it
            // used during the import (reads, watches, conflicts and kube-controller-manager's
            // requests come on top of the writes)
            "apiserver_cpu_calibrated_seconds": round(expected_cpu),
            "apiserver_cpu_seconds": round(apiserver_cpu),
            "apiserver_cpu_ratio": round(expected_cpu / apiserver_cpu),
            "uncalibrated_writes_at_mean_rate": measure::counts(&uncalibrated),
        })
    });
    json!({
        "window_seconds": round(window),
        "settled_seconds": round(settled),
        "settled_ms_per_stream": round(settled / n * 1000.0),
        "writes": measure::counts(&writes),
        "writes_total": total,
        "writes_per_stream": per(total),
        "view_writes_per_stream": per(views),
        "conflicts": measure::counts(&conflicts),
        "writes_per_second": round(total / settled),
        "apiserver_latency": summaries(&server),
        "apiserver_latency_all_writes": all(&server).summary(),
        "operator_seen_latency": summaries(&seen),
        "operator_seen_latency_all_writes": all(&seen).summary(),
        "reconcile": {
            "passes": reconcile.count,
            "passes_per_stream": per(reconcile.count),
            "duration": reconcile.summary(),
            // Σ reconcile time / time: the workers busy on average (of --concurrency)
            "busy_workers": round(reconcile.sum / settled),
            "mean_in_flight_sampled": round(mean_in_flight),
        },
        "stream_latency": {
            "created_to_imported": StreamTimes::summary(&import_spans),
            "imported_to_views": StreamTimes::summary(&view_spans),
            "first_pass_service_seconds_estimate": round(first_pass),
            "queue_wait_seconds_estimate": round(mean_import - first_pass),
        },
        "registry": {
            "requests": measure::counts(&by_method),
            "request_seconds": registry_requests.summary(),
            "import_batches": batches.summary(),
        },
        "cpu": after.cpu.since(&before.cpu, window),
        "cpu_ms_per_stream": {
            "operator": round((after.cpu.operator - before.cpu.operator) / n * 1000.0),
            "apiserver_etcd": round((after.cpu.apiserver - before.cpu.apiserver) / n * 1000.0),
            "controller_manager": round((after.cpu.controller_manager - before.cpu.controller_manager) / n * 1000.0),
        },
        "etcd": etcd,
        "capacity": capacity,
        "uptime_before": uptime_before,
        "uptime_after": uptime_after,
    })
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    format!("{cpus} cores, {} GiB", mem / 1024 / 1024)
}

/// `scale-<N>.json`, and `scale.md` regenerated from every result in `dir`.
fn write_results(dir: &Path, streams: usize, result: &Value) {
    std::fs::create_dir_all(dir).expect("results directory");
    let body = serde_json::to_string_pretty(result).unwrap_or_default() + "\n";
    std::fs::write(dir.join(format!("scale-{streams}.json")), body).expect("write JSON");
    render_table(dir);
}

/// `dir/scale.md` from every `scale-*.json` in `dir`.
fn render_table(dir: &Path) {
    let mut results: Vec<Value> = std::fs::read_dir(dir)
        .expect("read results")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("scale-") && n.ends_with(".json"))
        })
        .filter_map(|p| serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok())
        .collect();
    results.sort_by_key(|r| r["streams"].as_u64().unwrap_or(0));
    let mut md = String::from(
        "# Scale benchmark\n\nGenerated by `e2e/bench/scale.rs` (see its header for the command). \
         Each row is one run: N streams × 5 scheduled tags, the operator binary (release) as its \
         own process, the cluster harness and `docker-registry` on the same machine.\n\n\
         | streams | tags | interval | first full import | views settled | idle registry req/min | HEAD per tag per interval | idle apiserver writes/min | RSS (peak) | CPU s per 1,000 checks | 1% change p50 / p99 | machine |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    let n = |v: &Value, digits: usize| match v.as_f64() {
        Some(x) => format!("{x:.digits$}"),
        None => "–".into(),
    };
    for r in &results {
        md.push_str(&format!(
            "| {} | {} | {} s | {} s | {} s | {} | {} | {} | {} MiB ({} MiB) | {} | {} s / {} s | {} |\n",
            r["streams"],
            r["scheduled_tags"],
            r["interval_seconds"],
            n(&r["first_full_import_seconds"], 1),
            n(&r["views_settled_seconds"], 1),
            n(&r["idle"]["registry_requests_per_minute"], 0),
            n(&r["idle"]["head_per_tag_per_interval"], 3),
            n(&r["idle"]["apiserver_writes_per_minute"], 1),
            n(&r["rss_mib"], 0),
            n(&r["peak_rss_mib"], 0),
            n(&r["idle"]["cpu_seconds_per_1000_checks"], 3),
            n(&r["change"]["p50_seconds"], 1),
            n(&r["change"]["p99_seconds"], 1),
            r["machine"].as_str().unwrap_or_default(),
        ));
    }
    md.push_str(&breakdown_table(&results));
    std::fs::write(dir.join("scale.md"), md).expect("write markdown");
}

/// The second table of `scale.md`: the first import broken down (runs with `first_import`).
fn breakdown_table(results: &[Value]) -> String {
    let runs: Vec<&Value> = results
        .iter()
        .filter(|r| r["first_import"].is_object())
        .collect();
    if runs.is_empty() {
        return String::new();
    }
    let n = |v: &Value, digits: usize| match v.as_f64() {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        _ => "–".into(),
    };
    let kib = |v: &Value| match v.as_f64() {
        Some(x) => format!("{:.1}", x / 1024.0),
        None => "–".into(),
    };
    let mut md = String::from(
        "\n## First import, broken down (issue 17)\n\n\
         From `first_import` in each JSON: apiserver writes by kind during the import (its own \
         `apiserver_request_total`; views are ImageStreamTags, ImageTags and their status, \
         ImageStreamImages, ImageStreamLayers), write latency as the apiserver measured it and \
         as the operator saw it, reconcile passes, streams' time from creation to import and \
         from import to views, CPU by process in ms per stream, etcd's database per stream in \
         use after a compaction (without views: minus the calibrated views' share), and the \
         time the calibrated apiserver needs for these writes (`calibrate.md`, same cluster, \
         just before) with the import's ratio to it (target ≥ 0.70). `load` is the 1-minute \
         load average before the import on this 2-core machine shared with other builds.\n\n\
         | streams | load | settled | ms per stream | writes per stream (views) | apiserver write p50 / p99 ms | operator-seen write p50 / p99 ms | passes per stream | busy workers | created→imported p50 / p99 | imported→views p50 / p99 | CPU ms per stream: operator / apiserver+etcd / kcm | etcd KiB per stream (without views) | calibrated bound | ratio to capacity |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in &runs {
        let b = &r["first_import"];
        let load = b["uptime_before"]
            .as_str()
            .and_then(|u| u.split("load average:").nth(1))
            .and_then(|l| l.split(',').next())
            .unwrap_or("–")
            .trim()
            .to_string();
        let cap = &b["capacity"];
        md.push_str(&format!(
            "| {} | {} | {} s | {} | {} ({}) | {} / {} | {} / {} | {} | {} | {} s / {} s | {} s / {} s | {} / {} / {} | {} ({}) | {} | {} |\n",
            r["streams"],
            load,
            n(&b["settled_seconds"], 1),
            n(&b["settled_ms_per_stream"], 1),
            n(&b["writes_per_stream"], 1),
            n(&b["view_writes_per_stream"], 1),
            n(&b["apiserver_latency_all_writes"]["p50_ms"], 1),
            n(&b["apiserver_latency_all_writes"]["p99_ms"], 1),
            n(&b["operator_seen_latency_all_writes"]["p50_ms"], 1),
            n(&b["operator_seen_latency_all_writes"]["p99_ms"], 1),
            n(&b["reconcile"]["passes_per_stream"], 2),
            n(&b["reconcile"]["busy_workers"], 1),
            n(&b["stream_latency"]["created_to_imported"]["p50_seconds"], 1),
            n(&b["stream_latency"]["created_to_imported"]["p99_seconds"], 1),
            n(&b["stream_latency"]["imported_to_views"]["p50_seconds"], 1),
            n(&b["stream_latency"]["imported_to_views"]["p99_seconds"], 1),
            n(&b["cpu_ms_per_stream"]["operator"], 1),
            n(&b["cpu_ms_per_stream"]["apiserver_etcd"], 1),
            n(&b["cpu_ms_per_stream"]["controller_manager"], 1),
            kib(&b["etcd"]["in_use_per_stream_bytes"]),
            kib(&b["etcd"]["in_use_per_stream_without_views_bytes"]),
            if cap.is_object() { format!("{} s", n(&cap["bound_seconds"], 1)) } else { "–".into() },
            n(&cap["ratio_to_capacity"], 2),
        ));
    }
    // per stream at the largest run against the smallest (target ≤ 1.2)
    let per_stream = |r: &Value| r["first_import"]["settled_ms_per_stream"].as_f64();
    if let (Some(small), Some(large)) = (runs.first(), runs.last())
        && small["streams"] != large["streams"]
        && let (Some(a), Some(b)) = (per_stream(small), per_stream(large))
    {
        md.push_str(&format!(
            "\nPer stream at {} streams against {}: {:.2} times (target ≤ 1.2).\n",
            large["streams"],
            small["streams"],
            b / a
        ));
    }
    md
}
