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
//! Exits non-zero when an invariant breaks: a tag never imported, a write while nothing
//! changes, more than one HEAD per tag per interval, a change never seen.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use imagestream_operator::api::image_stream::ImageStream;
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
}

fn args() -> Args {
    let mut a = Args {
        streams: 10_000,
        namespaces: 100,
        repos: 100,
        interval: 120,
        out: None,
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

/// The operator binary's resource use, from /proc.
struct Proc(u32);

impl Proc {
    fn status_kib(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.0)).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
    fn rss_mib(&self) -> f64 {
        self.status_kib("VmRSS:") as f64 / 1024.0
    }
    fn peak_rss_mib(&self) -> f64 {
        self.status_kib("VmHWM:") as f64 / 1024.0
    }
    /// User + system CPU seconds.
    fn cpu_seconds(&self) -> f64 {
        let text = std::fs::read_to_string(format!("/proc/{}/stat", self.0)).unwrap_or_default();
        // fields after the command (which may hold spaces): state is field 3, utime 14, stime 15
        let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // SAFETY: sysconf has no preconditions
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        (ticks(11) + ticks(12)) as f64 / hz
    }
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
    Command::new(env!("CARGO_BIN_EXE_imagestream-operator"))
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

/// Follows every bench stream, recording the head of each tag's history.
fn follow(client: Client, seen: Seen, changed_at: Arc<Mutex<HashMap<(String, usize), Instant>>>) {
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
    follow(admin.clone(), seen.clone(), changed_at.clone());

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
                    .map(|_| ())
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
    loop {
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

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
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
    std::fs::write(dir.join("scale.md"), md).expect("write markdown");
}
