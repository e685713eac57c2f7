//! Calibration of the harness apiserver (issue 17): how fast it stores, by itself, the
//! objects the operator writes on a first import, at the operator's concurrency, with no
//! operator running. The scale benchmark (`e2e/bench/scale.rs --calibration FILE`) divides
//! the first import's time by the time these rates allow for the writes it made.
//!
//! The objects are the operator's own: one stream of 5 tags is imported by the operator
//! binary first (the template), and its stream, Images, Events and views (ImageStreamTags,
//! ImageTags, ImageStreamImages, ImageStreamLayers) are read back and copied for N
//! stream-equivalents named and shared as the scale benchmark's (`s<i>` in M namespaces,
//! every 5 Images shared by N/R streams), with other digests. Then each kind is written as the
//! operator writes it (create; status by PUT with the resourceVersion the create returned),
//! kind after kind, C at a time (the operator's `--concurrency`, 16).
//!
//! Reports, by kind (`resource[/subresource] VERB`): writes per second, the latency the
//! client saw (p50/p99) and the apiserver's own, the stored size, the CPU of kube-apiserver
//! with etcd, of kube-controller-manager and of the rest of the machine; per stream-equivalent:
//! the writes and the seconds they take at these rates; etcd's database growth, and its size
//! in use after a compaction, with and without the views. Everything it wrote is deleted at
//! the end and etcd is compacted and defragmented, so a scale run on the same cluster starts
//! clean (`--keep` leaves them).
//!
//! ```text
//! e2e/with-cluster.sh cargo bench --bench calibrate -- --streams 1000 --out e2e/bench/results
//! make calibrate STREAMS=1000     # calibration, then the scale run, on one cluster
//! ```
//!
//! Options: `--streams N` (1000), `--namespaces M` (100), `--repos R` (100), `--concurrency C`
//! (16), `--out DIR` (writes `calibrate-<N>.json`, regenerates `DIR/calibrate.md`), `--keep`,
//! `--render DIR`. Exits non-zero when a write fails.

#[path = "../../tests/support/mod.rs"]
mod support;

#[path = "measure.rs"]
mod measure;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Client;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use measure::{Apiserver, Etcd, TestBed, round};
use support::images::{ImageSpec, TestImage};
use support::registry::{RegistryOptions, TestRegistry};

const TAGS: usize = 5;
const LABEL: &str = "bench.imagestream.io/calibrate";
const TEMPLATE_NAMESPACE: &str = "calibrate-template";
const TEMPLATE_STREAM: &str = "tmplstream";
const GROUP: &str = "image.openshift.io";

struct Args {
    streams: usize,
    namespaces: usize,
    repos: usize,
    concurrency: usize,
    out: Option<PathBuf>,
    keep: bool,
}

fn args() -> Args {
    let mut a = Args {
        streams: 1000,
        namespaces: 100,
        repos: 100,
        concurrency: 16,
        out: None,
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--streams" => a.streams = value().parse().expect("--streams"),
            "--namespaces" => a.namespaces = value().parse().expect("--namespaces"),
            "--repos" => a.repos = value().parse().expect("--repos"),
            "--concurrency" => a.concurrency = value().parse().expect("--concurrency"),
            "--out" => a.out = Some(PathBuf::from(value())),
            "--keep" => a.keep = true,
            "--render" => {
                render_table(Path::new(&value()));
                std::process::exit(0);
            }
            "--bench" => {}
            other => panic!("unknown option {other}"),
        }
    }
    a.namespaces = a.namespaces.clamp(1, a.streams);
    a.repos = a.repos.clamp(1, a.streams);
    a.concurrency = a.concurrency.max(1);
    a
}

/// A kind as the apiserver serves it.
#[derive(Clone, Copy)]
struct Kind {
    group: &'static str,
    plural: &'static str,
    namespaced: bool,
}

const STREAMS: Kind = Kind {
    group: GROUP,
    plural: "imagestreams",
    namespaced: true,
};
const IMAGES: Kind = Kind {
    group: GROUP,
    plural: "images",
    namespaced: false,
};
const EVENTS: Kind = Kind {
    group: "events.k8s.io",
    plural: "events",
    namespaced: true,
};
const TAG_VIEWS: Kind = Kind {
    group: GROUP,
    plural: "imagestreamtags",
    namespaced: true,
};
const IMAGE_TAGS: Kind = Kind {
    group: GROUP,
    plural: "imagetags",
    namespaced: true,
};
const IMAGE_VIEWS: Kind = Kind {
    group: GROUP,
    plural: "imagestreamimages",
    namespaced: true,
};
const LAYERS: Kind = Kind {
    group: GROUP,
    plural: "imagestreamlayers",
    namespaced: true,
};
/// The views, in the order the operator writes them.
const VIEWS: [Kind; 4] = [TAG_VIEWS, IMAGE_TAGS, IMAGE_VIEWS, LAYERS];

impl Kind {
    fn collection(&self, namespace: &str) -> String {
        match (self.namespaced, self.group) {
            (true, group) => format!("/apis/{group}/v1/namespaces/{namespace}/{}", self.plural),
            (false, group) => format!("/apis/{group}/v1/{}", self.plural),
        }
    }
    fn object(&self, namespace: &str, name: &str) -> String {
        format!("{}/{name}", self.collection(namespace))
    }
}

async fn send(
    client: &Client,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> kube::Result<String> {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.map(|b| b.to_string().into_bytes()).unwrap_or_default())
        .expect("a request");
    client.request_text(request).await
}

async fn get(client: &Client, path: &str) -> Value {
    let text = send(client, "GET", path, None)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

async fn list(client: &Client, kind: Kind, namespace: &str) -> Vec<Value> {
    let list = get(client, &kind.collection(namespace)).await;
    list["items"].as_array().cloned().unwrap_or_default()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn start_operator(kubeconfig: &Path, log: &Path) -> Child {
    let file = std::fs::File::create(log).expect("operator log");
    Command::new(env!("CARGO_BIN_EXE_imagestream-operator"))
        .args([
            "run",
            "--no-webhooks",
            "--no-leader-elect",
            "--namespace",
            "default",
        ])
        .args(["--metrics-port", &free_port().to_string()])
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log"))
        .stderr(file)
        .spawn()
        .expect("start the operator")
}

async fn push(registry: &TestRegistry, repo: &str, tag: &str, seed: u64) -> String {
    let image: TestImage = ImageSpec::single("amd64", seed).build().into();
    registry
        .client()
        .push(repo, tag, &image)
        .await
        .expect("push")
}

/// What the operator wrote for one stream of 5 tags.
struct Template {
    stream: Value,
    /// By tag: the Image, and its digest's hex.
    images: Vec<(Value, String)>,
    events: Vec<Value>,
    /// By kind of [`VIEWS`].
    views: Vec<Vec<Value>>,
    /// The writes the operator made for it (`resource[/subresource] VERB`).
    writes: BTreeMap<String, f64>,
    seconds: f64,
}

async fn ensure_namespace(client: &Client, name: &str) {
    let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    match send(client, "POST", "/api/v1/namespaces", Some(&body)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("namespace {name}: {e}"),
    }
}

/// Imports one stream like the scale benchmark's with the operator binary and reads back
/// what it wrote.
async fn template(client: &Client, kubeconfig: &Path) -> Template {
    let registry = RegistryOptions::plain().start();
    for t in 0..TAGS {
        // the scale benchmark's first repository, so the same images
        push(
            &registry,
            "scale/app0",
            &format!("v{t}"),
            1_000_000 + t as u64,
        )
        .await;
    }
    let config = json!({
        "apiVersion": "operator.imagestream.io/v1alpha1", "kind": "ImageImportConfig",
        "metadata": {"name": "cluster"},
        "spec": {
            "scheduledImageImportMinimumIntervalSeconds": 120,
            "maxScheduledImageImportsPerMinute": -1,
            "maxConcurrentRequestsPerRegistry": 16,
        },
    });
    let configs = kube::Api::<imagestream_operator::config::ImageImportConfig>::all(client.clone());
    configs
        .patch(
            "cluster",
            &kube::api::PatchParams::apply("scale-bench").force(),
            &kube::api::Patch::Apply(&config),
        )
        .await
        .expect("ImageImportConfig");
    ensure_namespace(client, TEMPLATE_NAMESPACE).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut operator = start_operator(kubeconfig, &dir.path().join("log"));
    // the operator lists its caches first
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = Apiserver::scrape(client).await.writes();
    let t0 = Instant::now();
    let tags: Vec<Value> = (0..TAGS)
        .map(|t| {
            json!({"name": format!("t{t}"), "generation": 1,
                "from": {"kind": "DockerImage", "name": registry.image_ref("scale/app0", &format!("v{t}"))},
                "importPolicy": {"insecure": true, "scheduled": true}})
        })
        .collect();
    let stream = json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": TEMPLATE_STREAM, "labels": {LABEL: "true"}},
        "spec": {"tags": tags},
    });
    send(
        client,
        "POST",
        &STREAMS.collection(TEMPLATE_NAMESPACE),
        Some(&stream),
    )
    .await
    .expect("create the template stream");
    // every tag imported and every view written, then no write for 3 s
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut quiet_since: Option<(Instant, BTreeMap<String, f64>)> = None;
    loop {
        assert!(
            Instant::now() < deadline,
            "the operator did not import the template stream within 180 s (log: {})",
            std::fs::read_to_string(dir.path().join("log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let stream = get(client, &STREAMS.object(TEMPLATE_NAMESPACE, TEMPLATE_STREAM)).await;
        let imported = stream["status"]["tags"].as_array().is_some_and(|tags| {
            tags.iter()
                .filter(|t| t["items"][0]["image"].is_string())
                .count()
                == TAGS
        });
        let mut views = 0;
        for kind in VIEWS {
            views += list(client, kind, TEMPLATE_NAMESPACE).await.len();
        }
        if !imported || views < 3 * TAGS + 1 {
            continue;
        }
        let writes = Apiserver::scrape(client).await.writes();
        match &quiet_since {
            Some((since, seen)) if *seen == writes => {
                if since.elapsed() >= Duration::from_secs(3) {
                    break;
                }
            }
            _ => quiet_since = Some((Instant::now(), writes)),
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    let after = Apiserver::scrape(client).await.writes();
    let _ = operator.kill();
    let _ = operator.wait();
    drop(registry);

    let stream = get(client, &STREAMS.object(TEMPLATE_NAMESPACE, TEMPLATE_STREAM)).await;
    let mut images = Vec::new();
    for t in 0..TAGS {
        let tag = stream["status"]["tags"]
            .as_array()
            .and_then(|tags| tags.iter().find(|s| s["tag"] == format!("t{t}")))
            .cloned()
            .unwrap_or_default();
        let digest = tag["items"][0]["image"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let image = get(
            client,
            &IMAGES.object("", &imagestream_operator::names::image(&digest)),
        )
        .await;
        let hex = digest.trim_start_matches("sha256:").to_string();
        images.push((image, hex));
    }
    let events: Vec<Value> = list(client, EVENTS, TEMPLATE_NAMESPACE)
        .await
        .into_iter()
        .filter(|e| e["regarding"]["name"] == TEMPLATE_STREAM)
        .collect();
    let mut views = Vec::new();
    for kind in VIEWS {
        views.push(list(client, kind, TEMPLATE_NAMESPACE).await);
    }
    Template {
        stream,
        images,
        events,
        views,
        writes: measure::delta(&before, &after),
        seconds,
    }
}

/// Another digest's hex for the Image of `repo`'s tag `t`.
fn image_hex(repo: usize, t: usize) -> String {
    Sha256::digest(format!("calibrate {repo} v{t}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where stream-equivalent `i` lives and which Images it shows.
struct Place {
    namespace: String,
    name: String,
    repo: usize,
}

fn place(i: usize, args: &Args) -> Place {
    Place {
        namespace: format!("calibrate-{}", i % args.namespaces),
        name: format!("s{i}"),
        repo: i % args.repos,
    }
}

impl Template {
    /// `object` of the template, made stream-equivalent `place`'s: names, namespace and
    /// digests replaced, what the apiserver sets removed, labelled for the clean-up.
    fn copy(&self, object: &Value, place: &Place, api_version: &str, kind: &str) -> Value {
        let mut text = object.to_string();
        text = text.replace(TEMPLATE_NAMESPACE, &place.namespace);
        text = text.replace(TEMPLATE_STREAM, &place.name);
        for (t, (_, hex)) in self.images.iter().enumerate() {
            text = text.replace(hex, &image_hex(place.repo, t));
        }
        let mut v: Value = serde_json::from_str(&text).expect("a copied object");
        v["apiVersion"] = json!(api_version);
        v["kind"] = json!(kind);
        if let Some(meta) = v["metadata"].as_object_mut() {
            for k in [
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "managedFields",
                "generation",
                "selfLink",
            ] {
                meta.remove(k);
            }
        }
        v["metadata"]["labels"][LABEL] = json!("true");
        v
    }
}

/// One write and what it took.
struct Done {
    seconds: f64,
    bytes: usize,
    resource_version: Option<String>,
    uid: Option<String>,
}

async fn write(client: &Client, method: &str, path: String, body: Value) -> Result<Done, String> {
    let started = Instant::now();
    let text = send(client, method, &path, Some(&body))
        .await
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let stored: Value = serde_json::from_str(&text).unwrap_or_default();
    Ok(Done {
        seconds,
        bytes: text.len(),
        resource_version: stored["metadata"]["resourceVersion"]
            .as_str()
            .map(Into::into),
        uid: stored["metadata"]["uid"].as_str().map(Into::into),
    })
}

/// One kind written for every stream-equivalent.
struct Phase {
    key: String,
    results: Vec<Result<Done, String>>,
    seconds: f64,
    apiserver: Value,
    cpu: Value,
    db_size_after: f64,
}

/// Runs `writes` (in order, `concurrency` at a time) and measures them.
async fn phase<F>(ctx: &Ctx<'_>, key: &str, writes: impl Iterator<Item = F>) -> Phase
where
    F: std::future::Future<Output = Result<Done, String>>,
{
    let latency_before = Apiserver::scrape(ctx.client).await.write_latency();
    let cpu0 = ctx.bed.cpu(None);
    let started = Instant::now();
    let results: Vec<Result<Done, String>> = futures::stream::iter(writes)
        .buffered(ctx.concurrency)
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = ctx.bed.cpu(None).since(&cpu0, seconds);
    let latency = measure::delta_hist(
        &latency_before,
        &Apiserver::scrape(ctx.client).await.write_latency(),
    );
    let db_size_after = match ctx.etcd {
        Some(etcd) => etcd.status().await.map_or(f64::NAN, |s| s.db_size),
        None => f64::NAN,
    };
    let failed = results.iter().filter(|r| r.is_err()).count();
    println!(
        "{key}: {} writes in {seconds:.1} s ({:.0}/s){}",
        results.len(),
        results.len() as f64 / seconds,
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    );
    Phase {
        key: key.into(),
        apiserver: latency.get(key).map_or(Value::Null, measure::Hist::summary),
        results,
        seconds,
        cpu,
        db_size_after,
    }
}

struct Ctx<'a> {
    client: &'a Client,
    bed: &'a TestBed,
    etcd: Option<&'a Etcd>,
    concurrency: usize,
}

impl Phase {
    fn json(&self, streams: usize) -> Value {
        let mut seconds: Vec<f64> = self
            .results
            .iter()
            .filter_map(|r| r.as_ref().ok().map(|d| d.seconds))
            .collect();
        seconds.sort_by(f64::total_cmp);
        let bytes: Vec<usize> = self
            .results
            .iter()
            .filter_map(|r| r.as_ref().ok().map(|d| d.bytes))
            .collect();
        let n = self.results.len() as f64;
        json!({
            "key": self.key,
            "writes": self.results.len(),
            "failed": self.results.iter().filter(|r| r.is_err()).count(),
            "per_stream": round(n / streams as f64),
            "seconds": round(self.seconds),
            "writes_per_second": round(n / self.seconds),
            "client_p50_ms": round(measure::percentile(&seconds, 50.0) * 1000.0),
            "client_p99_ms": round(measure::percentile(&seconds, 99.0) * 1000.0),
            "client_mean_ms": round(seconds.iter().sum::<f64>() / seconds.len().max(1) as f64 * 1000.0),
            "apiserver": self.apiserver,
            "stored_bytes_mean": round(bytes.iter().sum::<usize>() as f64 / bytes.len().max(1) as f64),
            "cpu": self.cpu,
            "etcd_db_size_after": self.db_size_after,
        })
    }
}

/// Deletes the objects of `kinds` the calibration wrote.
async fn clean_up(client: &Client, args: &Args, kinds: &[Kind]) {
    let selector = format!("?labelSelector={}", LABEL.replace('/', "%2F") + "%3Dtrue");
    let namespaces: Vec<String> = (0..args.namespaces)
        .map(|n| format!("calibrate-{n}"))
        .chain([TEMPLATE_NAMESPACE.to_string()])
        .collect();
    let mut paths: Vec<String> = namespaces
        .iter()
        .flat_map(|ns| {
            kinds
                .iter()
                .map(|kind| match (kind.namespaced, kind.plural) {
                    (false, _) => format!("{}{selector}", kind.collection("")),
                    // Events carry no labels: every Event of these namespaces is ours
                    (true, "events") => kind.collection(ns),
                    (true, _) => format!("{}{selector}", kind.collection(ns)),
                })
        })
        .collect();
    paths.sort();
    paths.dedup();
    let requests = paths.iter().map(|path| async move {
        if let Err(e) = send(client, "DELETE", path, None).await {
            eprintln!("DELETE {path}: {e}");
        }
    });
    futures::stream::iter(requests)
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
}

#[tokio::main]
async fn main() {
    let args = args();
    let started_all = Instant::now();
    support::cluster::install_crypto_provider();
    let cluster = support::cluster::cluster().await;
    let client = cluster.client().await;
    support::crds::install(&client).await;
    let dir = measure::cluster_dir(cluster.harness_dir());
    let etcd = dir.as_deref().and_then(Etcd::of_cluster);
    if etcd.is_none() {
        eprintln!("calibrate: no etcd found (IMAGESTREAM_CLUSTER_DIR unset?): no database sizes");
    }
    let uptime_before = measure::uptime();
    println!("calibrate: {uptime_before}");

    // 1. the template: what the operator writes for one stream
    let template = template(&client, cluster.kubeconfig()).await;
    println!(
        "template: one stream imported by the operator in {:.1} s, {} writes: {:?}",
        template.seconds,
        template.writes.values().sum::<f64>(),
        template.writes
    );

    // 2. the same objects for N stream-equivalents, kind by kind
    let bed = TestBed::find(dir.as_deref());
    let ctx = Ctx {
        client: &client,
        bed: &bed,
        etcd: etcd.as_ref(),
        concurrency: args.concurrency,
    };
    let base = match &etcd {
        Some(etcd) => {
            etcd.compact().await;
            etcd.defragment().await
        }
        None => None,
    };
    for n in 0..args.namespaces {
        ensure_namespace(&client, &format!("calibrate-{n}")).await;
    }
    let n = args.streams;
    let places: Vec<Place> = (0..n).map(|i| place(i, &args)).collect();
    let mut phases = Vec::new();

    let t = &template;
    let c = &client;
    let streams = phase(
        &ctx,
        "imagestreams POST",
        places.iter().map(|p| {
            let mut body = t.copy(&t.stream, p, "image.openshift.io/v1", "ImageStream");
            body.as_object_mut().map(|o| o.remove("status"));
            write(c, "POST", STREAMS.collection(&p.namespace), body)
        }),
    )
    .await;
    let created: Vec<(Option<String>, Option<String>)> = streams
        .results
        .iter()
        .map(|r| match r {
            Ok(d) => (d.uid.clone(), d.resource_version.clone()),
            Err(_) => (None, None),
        })
        .collect();
    phases.push(streams);

    // Images: R×5, shared by the streams of each repository
    let images: Vec<(usize, usize)> = (0..args.repos)
        .flat_map(|r| (0..TAGS).map(move |t| (r, t)))
        .collect();
    phases.push(
        phase(
            &ctx,
            "images POST",
            images.iter().map(|&(repo, tag)| {
                let place = Place {
                    namespace: String::new(),
                    name: String::new(),
                    repo,
                };
                let body = t.copy(&t.images[tag].0, &place, "image.openshift.io/v1", "Image");
                write(c, "POST", IMAGES.collection(""), body)
            }),
        )
        .await,
    );

    phases.push(
        phase(
            &ctx,
            "imagestreams/status PUT",
            places.iter().zip(&created).map(|(p, (uid, rv))| {
                let mut body = t.copy(&t.stream, p, "image.openshift.io/v1", "ImageStream");
                body["metadata"]["resourceVersion"] = json!(rv);
                body["metadata"]["uid"] = json!(uid);
                let path = format!("{}/status", STREAMS.object(&p.namespace, &p.name));
                write(c, "PUT", path, body)
            }),
        )
        .await,
    );

    phases.push(
        phase(
            &ctx,
            "events POST",
            places.iter().zip(&created).flat_map(|(p, (uid, _))| {
                t.events.iter().map(move |e| {
                    let mut body = t.copy(e, p, "events.k8s.io/v1", "Event");
                    body["regarding"]["uid"] = json!(uid);
                    write(c, "POST", EVENTS.collection(&p.namespace), body)
                })
            }),
        )
        .await,
    );

    let owned = |view: &Value, p: &Place, uid: &Option<String>, kind: &str| {
        let mut body = t.copy(view, p, "image.openshift.io/v1", kind);
        if let Some(owners) = body["metadata"]["ownerReferences"].as_array_mut() {
            for o in owners {
                o["uid"] = json!(uid);
            }
        }
        body
    };
    let view_kinds = [
        "ImageStreamTag",
        "ImageTag",
        "ImageStreamImage",
        "ImageStreamLayers",
    ];
    phases.push(
        phase(
            &ctx,
            "imagestreamtags POST",
            places.iter().zip(&created).flat_map(|(p, (uid, _))| {
                t.views[0].iter().map(move |v| {
                    write(
                        c,
                        "POST",
                        TAG_VIEWS.collection(&p.namespace),
                        owned(v, p, uid, view_kinds[0]),
                    )
                })
            }),
        )
        .await,
    );
    let image_tags = phase(
        &ctx,
        "imagetags POST",
        places.iter().zip(&created).flat_map(|(p, (uid, _))| {
            t.views[1].iter().map(move |v| {
                write(
                    c,
                    "POST",
                    IMAGE_TAGS.collection(&p.namespace),
                    owned(v, p, uid, view_kinds[1]),
                )
            })
        }),
    )
    .await;
    let image_tag_versions: Vec<Option<String>> = image_tags
        .results
        .iter()
        .map(|r| r.as_ref().ok().and_then(|d| d.resource_version.clone()))
        .collect();
    phases.push(image_tags);
    let per_stream = t.views[1].len();
    phases.push(
        phase(
            &ctx,
            "imagetags/status PUT",
            places
                .iter()
                .zip(&created)
                .enumerate()
                .flat_map(|(i, (p, (uid, _)))| {
                    let versions = &image_tag_versions;
                    t.views[1].iter().enumerate().map(move |(k, v)| {
                        let mut body = owned(v, p, uid, view_kinds[1]);
                        body["metadata"]["resourceVersion"] = json!(versions[i * per_stream + k]);
                        let name = body["metadata"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string();
                        let path = format!("{}/status", IMAGE_TAGS.object(&p.namespace, &name));
                        write(c, "PUT", path, body)
                    })
                }),
        )
        .await,
    );
    phases.push(
        phase(
            &ctx,
            "imagestreamimages POST",
            places.iter().zip(&created).flat_map(|(p, (uid, _))| {
                t.views[2].iter().map(move |v| {
                    write(
                        c,
                        "POST",
                        IMAGE_VIEWS.collection(&p.namespace),
                        owned(v, p, uid, view_kinds[2]),
                    )
                })
            }),
        )
        .await,
    );
    phases.push(
        phase(
            &ctx,
            "imagestreamlayers POST",
            places.iter().zip(&created).flat_map(|(p, (uid, _))| {
                t.views[3].iter().map(move |v| {
                    write(
                        c,
                        "POST",
                        LAYERS.collection(&p.namespace),
                        owned(v, p, uid, view_kinds[3]),
                    )
                })
            }),
        )
        .await,
    );

    // 3. etcd: what the writes left, then what the live objects take with and without views
    let after_writes = match &etcd {
        Some(etcd) => etcd.status().await,
        None => None,
    };
    let with_views = match &etcd {
        Some(etcd) => etcd.compact().await,
        None => None,
    };
    let mut without_views = None;
    let mut cleanup_seconds = 0.0;
    let started_cleanup = Instant::now();
    if !args.keep {
        clean_up(&client, &args, &VIEWS).await;
        without_views = match &etcd {
            Some(etcd) => etcd.compact().await,
            None => None,
        };
        clean_up(&client, &args, &[STREAMS, EVENTS, IMAGES]).await;
        // the template's Images carry no calibration label
        for (image, _) in &template.images {
            let name = image["metadata"]["name"].as_str().unwrap_or_default();
            let _ = send(&client, "DELETE", &IMAGES.object("", name), None).await;
        }
        for ns in (0..args.namespaces)
            .map(|n| format!("calibrate-{n}"))
            .chain([TEMPLATE_NAMESPACE.to_string()])
        {
            let _ = send(&client, "DELETE", &format!("/api/v1/namespaces/{ns}"), None).await;
        }
        // the namespace controller finishes them now, not during a scale run that follows
        let deadline = Instant::now() + Duration::from_secs(300);
        for ns in (0..args.namespaces)
            .map(|n| format!("calibrate-{n}"))
            .chain([TEMPLATE_NAMESPACE.to_string()])
        {
            let path = format!("/api/v1/namespaces/{ns}");
            while Instant::now() < deadline {
                match send(&client, "GET", &path, None).await {
                    Err(kube::Error::Api(s)) if s.code == 404 => break,
                    _ => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
        }
        cleanup_seconds = started_cleanup.elapsed().as_secs_f64();
    }
    let clean = match &etcd {
        Some(etcd) if !args.keep => {
            etcd.compact().await;
            etcd.defragment().await
        }
        _ => None,
    };
    let uptime_after = measure::uptime();

    // 4. figures
    let kinds: Vec<Value> = phases.iter().map(|p| p.json(n)).collect();
    let failed: usize = phases
        .iter()
        .map(|p| p.results.iter().filter(|r| r.is_err()).count())
        .sum();
    let is_view = |key: &str| {
        let resource = key.split(' ').next().unwrap_or_default();
        measure::VIEW_RESOURCES.contains(&resource)
    };
    // seconds per stream-equivalent at the calibrated rates: Σ writes per stream / rate
    let (mut seconds, mut view_seconds, mut writes, mut view_writes) = (0.0, 0.0, 0.0, 0.0);
    let mut bytes = BTreeMap::new();
    for k in &kinds {
        let key = k["key"].as_str().unwrap_or_default();
        let per_stream = k["per_stream"].as_f64().unwrap_or(0.0);
        let rate = k["writes_per_second"].as_f64().unwrap_or(f64::NAN);
        let s = per_stream / rate;
        seconds += s;
        writes += per_stream;
        if is_view(key) {
            view_seconds += s;
            view_writes += per_stream;
        }
        // stored size per stream: creates only (a status PUT replaces its object)
        if key.ends_with(" POST") {
            let b = k["stored_bytes_mean"].as_f64().unwrap_or(0.0) * per_stream;
            bytes.insert(key.trim_end_matches(" POST").to_string(), round(b));
        }
    }
    let total_writes: f64 = phases.iter().map(|p| p.results.len() as f64).sum();
    let total_seconds: f64 = phases.iter().map(|p| p.seconds).sum();
    let per = |x: f64| round(x / n as f64);
    let etcd_json = match (base, after_writes, with_views) {
        (Some(base), Some(after), Some(with)) => json!({
            "db_size_before": base.db_size,
            "db_size_after_writes": after.db_size,
            "db_growth_per_stream_bytes": per(after.db_size - base.db_size),
            "in_use_per_stream_bytes": per(with.db_size_in_use - base.db_size_in_use),
            "in_use_per_stream_without_views_bytes": without_views
                .map_or(Value::Null, |w| json!(per(w.db_size_in_use - base.db_size_in_use))),
            "db_size_after_cleanup": clean.map_or(Value::Null, |c| json!(c.db_size)),
        }),
        _ => Value::Null,
    };
    let view_bytes: f64 = bytes
        .iter()
        .filter(|(k, _)| is_view(k))
        .map(|(_, v)| *v)
        .sum();
    let all_bytes: f64 = bytes.values().sum();
    let result = json!({
        "streams": n,
        "namespaces": args.namespaces,
        "repos": args.repos,
        "tags_per_stream": TAGS,
        "concurrency": args.concurrency,
        "kinds": kinds,
        "per_stream": {
            "writes": round(writes),
            "view_writes": round(view_writes),
            "seconds_at_calibrated_rates": round(seconds),
            "view_seconds": round(view_seconds),
            "stream_equivalents_per_second": round(1.0 / seconds),
            "stored_json_bytes": bytes,
            "stored_json_bytes_total": round(all_bytes),
            "stored_json_bytes_views": round(view_bytes),
        },
        "all_kinds": {
            "writes": total_writes,
            "seconds": round(total_seconds),
            "writes_per_second": round(total_writes / total_seconds),
        },
        "first_import_bound_seconds": round(seconds * n as f64),
        "etcd": etcd_json,
        "template": {
            "seconds": round(template.seconds),
            "operator_writes_one_stream": measure::counts(&template.writes),
            "events": template.events.len(),
            "views": template.views.iter().map(Vec::len).collect::<Vec<_>>(),
        },
        "cleanup_seconds": round(cleanup_seconds),
        "uptime_before": uptime_before,
        "uptime_after": uptime_after,
        "machine": machine(),
        "wall_seconds": round(started_all.elapsed().as_secs_f64()),
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&result).unwrap_or_default()
    );
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).expect("results directory");
        let body = serde_json::to_string_pretty(&result).unwrap_or_default() + "\n";
        std::fs::write(out.join(format!("calibrate-{n}.json")), body).expect("write JSON");
        render_table(out);
    }
    if failed > 0 {
        let first = phases
            .iter()
            .flat_map(|p| p.results.iter())
            .find_map(|r| r.as_ref().err())
            .cloned()
            .unwrap_or_default();
        eprintln!("calibrate: {failed} writes failed; the first: {first}");
        std::process::exit(1);
    }
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

/// `dir/calibrate.md` from every `calibrate-*.json` in `dir`.
fn render_table(dir: &Path) {
    let mut results: Vec<Value> = std::fs::read_dir(dir)
        .expect("read results")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("calibrate-") && n.ends_with(".json"))
        })
        .filter_map(|p| serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok())
        .collect();
    results.sort_by_key(|r| r["streams"].as_u64().unwrap_or(0));
    let n = |v: &Value, digits: usize| match v.as_f64() {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        _ => "–".into(),
    };
    let kib = |v: &Value| match v.as_f64() {
        Some(x) => format!("{:.1}", x / 1024.0),
        None => "–".into(),
    };
    let mut md = String::from(
        "# Apiserver calibration\n\nGenerated by `e2e/bench/calibrate.rs` (see its header for the \
         command). The harness apiserver (kube-apiserver + etcd, with kube-controller-manager) \
         storing, without the operator, the objects the operator writes on a first import: \
         copies of what the operator wrote for one stream of 5 tags, for N stream-equivalents, \
         kind after kind, at the operator's concurrency. Latency as the client saw it; CPU in \
         core-seconds per 1,000 writes; `load` is the machine's 1-minute load average from \
         `uptime` before the run (2 cores shared with other builds).\n\n",
    );
    for r in &results {
        md.push_str(&format!(
            "## {} stream-equivalents, concurrency {}\n\n`{}`\n\n\
             | kind | writes per stream | writes/s | p50 ms | p99 ms | apiserver p50 / p99 ms | stored KiB | apiserver+etcd CPU s / 1,000 | machine busy cores |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
            r["streams"],
            r["concurrency"],
            r["uptime_before"].as_str().unwrap_or_default(),
        ));
        for k in r["kinds"].as_array().into_iter().flatten() {
            let writes = k["writes"].as_f64().unwrap_or(0.0).max(1.0);
            let cpu_per_1000 = k["cpu"]["apiserver_etcd"]
                .as_f64()
                .map(|c| c / writes * 1000.0);
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} / {} | {} | {} | {} |\n",
                k["key"].as_str().unwrap_or_default(),
                n(&k["per_stream"], 2),
                n(&k["writes_per_second"], 0),
                n(&k["client_p50_ms"], 1),
                n(&k["client_p99_ms"], 1),
                n(&k["apiserver"]["p50_ms"], 1),
                n(&k["apiserver"]["p99_ms"], 1),
                kib(&k["stored_bytes_mean"]),
                cpu_per_1000.map_or("–".into(), |c| format!("{c:.2}")),
                n(&k["cpu"]["machine_busy_cores"], 2),
            ));
        }
        let p = &r["per_stream"];
        let e = &r["etcd"];
        md.push_str(&format!(
            "\nPer stream-equivalent: {} writes ({} of them views) take {} ms at these rates \
             ({} ms of views): {} stream-equivalents/s, a first import of {} streams bound at {} s. \
             Stored JSON {} KiB ({} KiB views). etcd: database growth {} KiB per stream; in use \
             after compaction {} KiB with views, {} KiB without.\n\n",
            n(&p["writes"], 1),
            n(&p["view_writes"], 1),
            n(&(p["seconds_at_calibrated_rates"].as_f64().map(|s| s * 1000.0).into()), 1),
            n(&(p["view_seconds"].as_f64().map(|s| s * 1000.0).into()), 1),
            n(&p["stream_equivalents_per_second"], 1),
            r["streams"],
            n(&r["first_import_bound_seconds"], 1),
            kib(&p["stored_json_bytes_total"]),
            kib(&p["stored_json_bytes_views"]),
            kib(&e["db_growth_per_stream_bytes"]),
            kib(&e["in_use_per_stream_bytes"]),
            kib(&e["in_use_per_stream_without_views_bytes"]),
        ));
        md.push_str(&format!(
            "What the operator wrote for the template stream (`resource VERB`: count): {}\n\n",
            r["template"]["operator_writes_one_stream"]
        ));
    }
    std::fs::write(dir.join("calibrate.md"), md).expect("write markdown");
}
