//! What the scale and calibration benchmarks measure from outside the operator (issue 17):
//! the apiserver's request counters and latency histograms (its own `/metrics`), etcd's
//! database size (its JSON gateway), the CPU of each process of the test bed (`/proc`), and
//! the machine's load, which other builds share.
//!
//! Everything here reads; the one write is [`Etcd::compact`], which compacts etcd's history
//! at the current revision so that what is left in use is the live objects' size.

#![allow(dead_code)] // each benchmark uses part of it

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::Client;
use serde_json::{Value, json};

/// One sample of a Prometheus text exposition.
#[derive(Clone, Debug)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> &str {
        self.labels.get(key).map_or("", String::as_str)
    }
}

/// The samples of a Prometheus text exposition (comments skipped).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut key = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '}' => {
                    end = Some(i);
                    break;
                }
                ',' | ' ' => {}
                '=' => {
                    // a quoted value with escapes
                    let (_, quote) = chars.next()?;
                    if quote != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        let (_, c) = chars.next()?;
                        match c {
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            '"' => break,
                            other => value.push(other),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                other => key.push(other),
            }
        }
        rest = &body[end? + 1..];
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// A cumulative histogram (Prometheus `_bucket`, `_sum`, `_count`).
#[derive(Clone, Debug, Default)]
pub struct Hist {
    /// (upper bound, cumulative count), ascending.
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

impl Hist {
    fn add_bucket(&mut self, le: f64, count: f64) {
        match self.buckets.iter_mut().find(|(b, _)| *b == le) {
            Some((_, c)) => *c += count,
            None => {
                self.buckets.push((le, count));
                self.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            }
        }
    }

    /// `self - earlier`: the observations between two scrapes.
    pub fn since(&self, earlier: &Hist) -> Hist {
        let before = |le: f64| {
            earlier
                .buckets
                .iter()
                .find(|(b, _)| *b == le)
                .map_or(0.0, |(_, c)| *c)
        };
        Hist {
            buckets: self
                .buckets
                .iter()
                .map(|(le, c)| (*le, c - before(*le)))
                .collect(),
            sum: self.sum - earlier.sum,
            count: self.count - earlier.count,
        }
    }

    pub fn mean(&self) -> f64 {
        if self.count > 0.0 {
            self.sum / self.count
        } else {
            f64::NAN
        }
    }

    /// The `q` quantile, interpolated linearly within its bucket (as PromQL's
    /// `histogram_quantile`).
    pub fn quantile(&self, q: f64) -> f64 {
        if self.count <= 0.0 {
            return f64::NAN;
        }
        let rank = q * self.count;
        let mut lower = 0.0;
        let mut below = 0.0;
        for &(le, cumulative) in &self.buckets {
            if cumulative >= rank {
                if le.is_infinite() {
                    return lower;
                }
                let inside = cumulative - below;
                let fraction = if inside > 0.0 {
                    (rank - below) / inside
                } else {
                    1.0
                };
                return lower + (le - lower) * fraction;
            }
            lower = le;
            below = cumulative;
        }
        lower
    }

    pub fn merge(&mut self, other: &Hist) {
        for (le, c) in &other.buckets {
            self.add_bucket(*le, *c);
        }
        self.sum += other.sum;
        self.count += other.count;
    }

    pub fn summary(&self) -> Value {
        json!({
            "count": self.count,
            "mean_ms": round(self.mean() * 1000.0),
            "p50_ms": round(self.quantile(0.5) * 1000.0),
            "p99_ms": round(self.quantile(0.99) * 1000.0),
            "sum_seconds": round(self.sum),
        })
    }
}

/// The histograms of family `name`, keyed by `key` of each sample's labels (samples with
/// the same key are added up).
pub fn histograms(
    samples: &[Sample],
    name: &str,
    key: impl Fn(&Sample) -> Option<String>,
) -> BTreeMap<String, Hist> {
    let mut out: BTreeMap<String, Hist> = BTreeMap::new();
    let bucket = format!("{name}_bucket");
    let sum = format!("{name}_sum");
    let count = format!("{name}_count");
    for s in samples {
        let Some(k) = key(s) else { continue };
        if s.name == bucket {
            let le = match s.label("le") {
                "+Inf" => f64::INFINITY,
                v => match v.parse() {
                    Ok(v) => v,
                    Err(_) => continue,
                },
            };
            out.entry(k).or_default().add_bucket(le, s.value);
        } else if s.name == sum {
            out.entry(k).or_default().sum += s.value;
        } else if s.name == count {
            out.entry(k).or_default().count += s.value;
        }
    }
    out
}

pub const WRITE_VERBS: [&str; 5] = ["POST", "PUT", "PATCH", "DELETE", "APPLY"];

/// `resource[/subresource] VERB`, as the apiserver labels a request.
pub fn request_key(s: &Sample) -> String {
    let resource = match s.label("subresource") {
        "" => s.label("resource").to_string(),
        sub => format!("{}/{sub}", s.label("resource")),
    };
    format!("{resource} {}", s.label("verb"))
}

/// One scrape of the apiserver's `/metrics`.
pub struct Apiserver(pub Vec<Sample>);

impl Apiserver {
    pub async fn scrape(client: &Client) -> Apiserver {
        let request = http::Request::get("/metrics")
            .body(Vec::new())
            .expect("a GET request");
        match client.request_text(request).await {
            Ok(text) => Apiserver(parse(&text)),
            Err(e) => {
                eprintln!("apiserver /metrics: {e}");
                Apiserver(Vec::new())
            }
        }
    }

    /// Requests by `resource[/subresource] VERB` (every code), for write verbs only.
    pub fn writes(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for s in &self.0 {
            if s.name == "apiserver_request_total" && WRITE_VERBS.contains(&s.label("verb")) {
                *out.entry(request_key(s)).or_insert(0.0) += s.value;
            }
        }
        out
    }

    /// Requests that failed with a conflict or already-exists (409), by key.
    pub fn conflicts(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for s in &self.0 {
            if s.name == "apiserver_request_total"
                && WRITE_VERBS.contains(&s.label("verb"))
                && s.label("code") == "409"
            {
                *out.entry(request_key(s)).or_insert(0.0) += s.value;
            }
        }
        out
    }

    /// Latency of write requests, as the apiserver measures it, by key.
    pub fn write_latency(&self) -> BTreeMap<String, Hist> {
        histograms(&self.0, "apiserver_request_duration_seconds", |s| {
            WRITE_VERBS
                .contains(&s.label("verb"))
                .then(|| request_key(s))
        })
    }

    /// Objects stored, by resource (`apiserver_storage_objects`).
    pub fn objects(&self) -> BTreeMap<String, f64> {
        self.0
            .iter()
            .filter(|s| s.name == "apiserver_storage_objects")
            .map(|s| (s.label("resource").to_string(), s.value))
            .collect()
    }
}

/// `after - before` of two maps of counters (keys with no change left out).
pub fn delta(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

/// `after - before` of two maps of histograms (keys with no observation left out).
pub fn delta_hist(
    before: &BTreeMap<String, Hist>,
    after: &BTreeMap<String, Hist>,
) -> BTreeMap<String, Hist> {
    after
        .iter()
        .map(|(k, h)| {
            (
                k.clone(),
                h.since(&before.get(k).cloned().unwrap_or_default()),
            )
        })
        .filter(|(_, h)| h.count > 0.0)
        .collect()
}

/// etcd's status: database size on disk, in use, and the current revision.
#[derive(Clone, Copy, Debug, Default)]
pub struct EtcdStatus {
    pub db_size: f64,
    pub db_size_in_use: f64,
    pub revision: i64,
}

/// The harness's embedded etcd, through its JSON gateway.
pub struct Etcd {
    url: String,
    http: reqwest::Client,
}

/// The directory of the cluster harness in use: `IMAGESTREAM_CLUSTER_DIR` (set by
/// `e2e/with-cluster.sh`) or the one this process started.
pub fn cluster_dir(started: Option<&Path>) -> Option<PathBuf> {
    std::env::var_os("IMAGESTREAM_CLUSTER_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| started.map(Path::to_path_buf))
}

fn number(v: &Value) -> f64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0.0),
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        _ => 0.0,
    }
}

impl Etcd {
    /// The etcd the harness in `dir` runs (its log says where).
    pub fn of_cluster(dir: &Path) -> Option<Etcd> {
        let log = std::fs::read_to_string(dir.join("cluster.log")).ok()?;
        let url = log
            .lines()
            .find_map(|l| l.split("etcd ready at ").nth(1))?
            .split_whitespace()
            .next()?
            .to_string();
        Some(Etcd {
            url,
            http: reqwest::Client::new(),
        })
    }

    async fn post(&self, path: &str, body: Value) -> Option<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .body(body.to_string())
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .ok()?;
        let text = response.text().await.ok()?;
        serde_json::from_str(&text).ok()
    }

    pub async fn status(&self) -> Option<EtcdStatus> {
        let v = self.post("/v3/maintenance/status", json!({})).await?;
        Some(EtcdStatus {
            db_size: number(&v["dbSize"]),
            db_size_in_use: number(&v["dbSizeInUse"]),
            revision: number(&v["header"]["revision"]) as i64,
        })
    }

    /// Compacts the history at the current revision (physically) and returns the status
    /// after it: `db_size_in_use` is then the live keys' size.
    pub async fn compact(&self) -> Option<EtcdStatus> {
        let status = self.status().await?;
        self.post(
            "/v3/kv/compaction",
            json!({"revision": status.revision.to_string(), "physical": true}),
        )
        .await?;
        self.status().await
    }

    /// Gives the space freed by compaction back, so that the next measurement starts from a
    /// database of the live keys only.
    pub async fn defragment(&self) -> Option<EtcdStatus> {
        self.post("/v3/maintenance/defragment", json!({})).await?;
        self.status().await
    }
}

/// A process's resource use, from /proc.
#[derive(Clone, Copy, Debug)]
pub struct Proc(pub u32);

impl Proc {
    fn status_kib(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.0)).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
    pub fn rss_mib(&self) -> f64 {
        self.status_kib("VmRSS:") as f64 / 1024.0
    }
    pub fn peak_rss_mib(&self) -> f64 {
        self.status_kib("VmHWM:") as f64 / 1024.0
    }
    fn stat_fields(&self) -> Vec<String> {
        let text = std::fs::read_to_string(format!("/proc/{}/stat", self.0)).unwrap_or_default();
        // after the command (which may hold spaces): state is field 3, ppid 4, utime 14, stime 15
        let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        rest.split_whitespace().map(str::to_string).collect()
    }
    /// User + system CPU seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let fields = self.stat_fields();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        (ticks(11) + ticks(12)) as f64 / clock_ticks()
    }
    fn ppid(&self) -> Option<u32> {
        self.stat_fields().get(1)?.parse().ok()
    }
    fn cmdline(&self) -> Vec<String> {
        std::fs::read(format!("/proc/{}/cmdline", self.0))
            .unwrap_or_default()
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }
    fn comm(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/comm", self.0))
            .unwrap_or_default()
            .trim()
            .to_string()
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as f64
}

fn processes() -> Vec<Proc> {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .map(Proc)
                .collect()
        })
        .unwrap_or_default()
}

/// The processes of the test bed whose CPU is accounted apart: the cluster harness
/// (kube-apiserver and etcd in one process), its kube-controller-manager, the registries
/// this process started, and this process itself.
#[derive(Clone, Debug, Default)]
pub struct TestBed {
    pub apiserver: Option<Proc>,
    pub controller_manager: Option<Proc>,
    pub registries: Vec<Proc>,
}

impl TestBed {
    pub fn find(cluster_dir: Option<&Path>) -> TestBed {
        let mut bed = TestBed::default();
        let me = std::process::id();
        let Some(dir) = cluster_dir.map(|d| d.to_string_lossy().into_owned()) else {
            return bed;
        };
        let kubeconfig = format!("--kubeconfig={dir}/kubeconfig");
        for p in processes() {
            let args = p.cmdline();
            if args.iter().any(|a| a == "kube-controller-manager") && args.contains(&kubeconfig) {
                bed.controller_manager = Some(p);
            } else if args.windows(2).any(|w| w[0] == "--dir" && w[1] == dir) {
                bed.apiserver = Some(p);
            } else if p.ppid() == Some(me) && p.comm() == "docker-registry" {
                bed.registries.push(p);
            }
        }
        bed
    }

    /// CPU seconds so far of each part, and of the machine as a whole (busy core-seconds).
    pub fn cpu(&self, operator: Option<Proc>) -> Cpu {
        Cpu {
            apiserver: self.apiserver.map_or(f64::NAN, |p| p.cpu_seconds()),
            controller_manager: self
                .controller_manager
                .map_or(f64::NAN, |p| p.cpu_seconds()),
            registry: self.registries.iter().map(Proc::cpu_seconds).sum(),
            operator: operator.map_or(f64::NAN, |p| p.cpu_seconds()),
            bench: Proc(std::process::id()).cpu_seconds(),
            machine_busy: machine_busy_seconds(),
        }
    }
}

/// CPU seconds by part of the test bed (see [`TestBed`]); `machine_busy` is every process.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu {
    pub apiserver: f64,
    pub controller_manager: f64,
    pub registry: f64,
    pub operator: f64,
    pub bench: f64,
    pub machine_busy: f64,
}

impl Cpu {
    /// CPU seconds spent between `earlier` and `self`, as JSON; `others` is what the rest of
    /// the machine (other builds) used meanwhile.
    pub fn since(&self, earlier: &Cpu, seconds: f64) -> Value {
        let d = |a: f64, b: f64| round(a - b);
        let ours = [
            self.apiserver - earlier.apiserver,
            self.controller_manager - earlier.controller_manager,
            self.registry - earlier.registry,
            self.operator - earlier.operator,
            self.bench - earlier.bench,
        ]
        .iter()
        .filter(|v| v.is_finite())
        .sum::<f64>();
        let busy = self.machine_busy - earlier.machine_busy;
        json!({
            "window_seconds": round(seconds),
            "apiserver_etcd": d(self.apiserver, earlier.apiserver),
            "controller_manager": d(self.controller_manager, earlier.controller_manager),
            "registry": d(self.registry, earlier.registry),
            "operator": d(self.operator, earlier.operator),
            "bench": d(self.bench, earlier.bench),
            "machine_busy": round(busy),
            "others": round(busy - ours),
            "machine_busy_cores": round(busy / seconds.max(1e-9)),
        })
    }
}

/// Busy core-seconds of the whole machine since boot (/proc/stat: all but idle and iowait).
pub fn machine_busy_seconds() -> f64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return f64::NAN;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle) as f64 / clock_ticks()
}

/// `uptime`'s line: the load other builds put on the machine.
pub fn uptime() -> String {
    std::process::Command::new("uptime")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The 1-minute load average.
pub fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

pub fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The `p` percentile of sorted `values`.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A map of numbers as JSON, rounded.
pub fn counts(map: &BTreeMap<String, f64>) -> Value {
    Value::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), json!(round(*v))))
            .collect(),
    )
}

/// The view kinds, by the apiserver's resource names.
pub const VIEW_RESOURCES: [&str; 5] = [
    "imagestreamtags",
    "imagetags",
    "imagetags/status",
    "imagestreamimages",
    "imagestreamlayers",
];
