//! Fault suite (issue 8): the operator against faults of the registry, of the apiserver and
//! of itself, on the test apiserver with the real docker-registry.
//!
//! Every case checks that
//! * the tag's ImportSuccess condition says what happened while the fault lasts (the exact
//!   reason and message),
//! * no history entry is lost or duplicated: every version of the stream the apiserver sent
//!   (a watch records them all) keeps the entries of the version before, new ones only in
//!   front, no digest twice; and the histories after the fault are the ones before it plus
//!   exactly one entry for the registry change made during or after the fault,
//! * everything recovers without a human, within the bound the case states.
//!
//! Faults a real registry cannot make (500s, 429s, slow answers) come from a proxy in front
//! of the real docker-registry ([`FaultServer::forward`]); "registry down" kills the
//! docker-registry process and starts it again on the same port and storage.
//! `IMAGESTREAM_FAULT_DOWN_SECS` sets how long it stays down (default 120).
//!
//! Run: `e2e/with-cluster.sh cargo nextest run --test faults_on_cluster`.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use imagestream_operator::api::image_stream::{ImageStream, TagEvent};
use imagestream_operator::controller::{self, Metrics, Options, Settings};
use imagestream_operator::registry::{RegistryClient, RegistryConfig};
use support::fault_registry::{FaultServer, FaultSwitch, Reply, Seen, Served};
use support::images::{ImageSpec, TestImage};
use support::operator::create_stream;
use support::registry::{RegistryOptions, TestRegistry};
use support::{cluster, crds, rbac};

/// Scheduled re-checks every 2 s (production: 15 min).
const INTERVAL: Duration = Duration::from_secs(2);

fn settings() -> Settings {
    Settings {
        scheduled_interval: Some(INTERVAL),
        scheduled_per_minute: None,
        ..Settings::default()
    }
}

// ------------------------------------------------------------------ operator ---

/// The controllers running in this process, stopped when dropped.
struct Controllers {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Controllers {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

struct Setup {
    api: Api<ImageStream>,
    metrics: Arc<Metrics>,
    _controllers: Controllers,
}

/// A fresh namespace with the controllers running in this process under the operator's
/// ServiceAccount; `server` replaces the apiserver URL they use (a relay).
async fn controllers(prefix: &str, settings: Settings, server: Option<String>) -> Setup {
    cluster::install_crypto_provider();
    let cluster = cluster::cluster().await;
    let admin = cluster.client().await;
    crds::install(&admin).await;
    let ns = cluster::fresh_namespace(&admin, prefix).await;
    rbac::bind_deploy_roles(&admin, &ns, "operator", &["deploy/rbac.yaml"]).await;
    let account = cluster.service_account_client(&ns, "operator").await;
    let mut config = account.config.clone();
    if let Some(url) = server {
        config.cluster_url = url.parse().expect("relay URL");
    }
    let client = Client::try_from(config).expect("operator client");
    let metrics = Arc::new(Metrics::default());
    let options = Options {
        watch_namespace: Some(ns.clone()),
        settings: Some(settings),
        concurrency: 4,
        metrics: metrics.clone(),
        pruner: None,
        ..Options::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _account = account; // keeps the token's kubeconfig alive
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(e) = controller::run(client, options, shutdown).await {
            panic!("controller stopped: {e}");
        }
    });
    Setup {
        api: Api::namespaced(admin, &ns),
        metrics,
        _controllers: Controllers {
            stop: Some(stop),
            task,
        },
    }
}

fn tag(name: &str, from: &str, generation: i64, scheduled: bool) -> Value {
    json!({
        "name": name,
        "from": { "kind": "DockerImage", "name": from },
        "generation": generation,
        "importPolicy": { "insecure": true, "scheduled": scheduled },
    })
}

async fn push(reg: &TestRegistry, repo: &str, tag: &str, seed: u64) -> String {
    let image: TestImage = ImageSpec::single("amd64", seed).build().into();
    reg.client().push(repo, tag, &image).await.expect("push")
}

// ------------------------------------------------------------------- status ---

type History = BTreeMap<String, Vec<TagEvent>>;

/// Every status tag's full history.
fn history(stream: &ImageStream) -> History {
    stream
        .status
        .iter()
        .flat_map(|s| &s.tags)
        .map(|t| (t.tag.clone(), t.items.clone()))
        .collect()
}

fn items(stream: &ImageStream, tag: &str) -> Vec<TagEvent> {
    history(stream).remove(tag).unwrap_or_default()
}

/// The tag's failed ImportSuccess condition: (reason, message).
fn failure(stream: &ImageStream, tag: &str) -> Option<(String, String)> {
    stream
        .status
        .as_ref()?
        .tag(tag)?
        .conditions
        .iter()
        .find(|c| c.type_ == "ImportSuccess" && c.status == "False")
        .map(|c| (c.reason.clone(), c.message.clone()))
}

/// Imported `digest` as its latest entry, and no failure.
fn at(stream: &ImageStream, tag: &str, digest: &str) -> bool {
    items(stream, tag)
        .first()
        .is_some_and(|e| e.image == digest)
        && failure(stream, tag).is_none()
}

/// Polls until `check` holds; returns the stream and how long it took.
async fn wait_for(
    api: &Api<ImageStream>,
    name: &str,
    within: Duration,
    what: &str,
    check: impl Fn(&ImageStream) -> bool,
) -> (ImageStream, Duration) {
    let started = Instant::now();
    loop {
        let stream = api.get(name).await.expect("get stream");
        if check(&stream) {
            return (stream, started.elapsed());
        }
        assert!(
            started.elapsed() < within,
            "{what}: not within {within:?}; status:\n{}",
            serde_json::to_string_pretty(&stream.status).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `after` is `before` with exactly `new` (digests) in front.
fn assert_extends(tag: &str, before: &[TagEvent], after: &[TagEvent], new: &[&str]) {
    let added: Vec<&str> = after
        .iter()
        .take(after.len().saturating_sub(before.len()))
        .map(|e| e.image.as_str())
        .collect();
    assert_eq!(added, new, "{tag}: new entries; history now {after:#?}");
    assert_eq!(
        &after[new.len()..],
        before,
        "{tag}: the entries before the fault changed"
    );
}

/// Every version of one stream the apiserver sent, in order.
struct Versions {
    seen: Arc<Mutex<Vec<(Instant, ImageStream)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Versions {
    fn record(api: &Api<ImageStream>, name: &str) -> Versions {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        // no backoff of its own (it grows to 30 s, past the checks' waits): a quarter of a
        // second after each error
        let stream = watcher::watcher(api.clone(), config);
        let task = {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut stream = std::pin::pin!(stream);
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => {
                            seen.lock().unwrap().push((Instant::now(), s));
                        }
                        Ok(_) => {}
                        Err(e) => {
                            eprintln!("watching the stream: {e}");
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                    }
                }
            })
        };
        Versions { seen, task }
    }

    fn all(&self) -> Vec<ImageStream> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, s)| s.clone())
            .collect()
    }

    fn between(&self, from: Instant, to: Instant) -> Vec<ImageStream> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// Waits until a version says `expected` on `tag`; returns how long it took.
    async fn failed(&self, tag: &str, expected: &(String, String), within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if self
                .all()
                .iter()
                .any(|s| failure(s, tag).as_ref() == Some(expected))
            {
                return started.elapsed();
            }
            if started.elapsed() > within {
                let said: Vec<_> = self.all().iter().map(|s| failure(s, tag)).collect();
                panic!(
                    "{tag}: no version said {expected:?} within {within:?}; they said {said:#?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// No version lost an entry of the one before it, entries were only added in front, and
    /// no history holds a digest twice; and the watch saw it all up to `last` (the history
    /// the stream ended with), so the check covered the whole fault.
    async fn assert_history_kept(&self, last: &History) -> usize {
        let started = Instant::now();
        while self.all().last().map(history).as_ref() != Some(last) {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "the watch did not see the final history; it saw {} versions, the last {:#?}",
                self.all().len(),
                self.all().last().map(history)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let all = self.all();
        for pair in all.windows(2) {
            let (prev, next) = (history(&pair[0]), history(&pair[1]));
            for (tag, before) in &prev {
                let after = next.get(tag).cloned().unwrap_or_default();
                assert!(
                    after.len() >= before.len()
                        && after[after.len() - before.len()..] == before[..],
                    "{tag}: resourceVersion {} → {} lost or rewrote entries: {before:#?} → {after:#?}",
                    pair[0].resource_version().unwrap_or_default(),
                    pair[1].resource_version().unwrap_or_default(),
                );
            }
        }
        for stream in &all {
            for (tag, items) in history(stream) {
                let mut digests: Vec<&str> = items.iter().map(|e| e.image.as_str()).collect();
                digests.sort_unstable();
                let count = digests.len();
                digests.dedup();
                assert_eq!(digests.len(), count, "{tag}: a digest twice: {items:#?}");
            }
        }
        all.len()
    }
}

impl Drop for Versions {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The sum of the metric lines starting with `prefix` and containing every `labels` item.
fn metric(metrics: &Metrics, prefix: &str, labels: &[&str]) -> u64 {
    metrics
        .encode()
        .lines()
        .filter(|l| l.starts_with(prefix) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

// ------------------------------------------------------------- registry faults ---

/// A stream `s` with scheduled tags `a` and `b` from `registry` (app:a, app:b), imported.
struct Scheduled {
    setup: Setup,
    versions: Versions,
    before: History,
}

async fn scheduled_stream(
    prefix: &str,
    settings: Settings,
    registry: &str,
    digests: (&str, &str),
) -> Scheduled {
    let setup = controllers(prefix, settings, None).await;
    let versions = Versions::record(&setup.api, "s");
    let from = |t: &str| format!("{registry}/app:{t}");
    create_stream(
        &setup.api,
        "s",
        json!([tag("a", &from("a"), 1, true), tag("b", &from("b"), 1, true)]),
    )
    .await;
    let (stream, _) = wait_for(&setup.api, "s", Duration::from_secs(30), "import", |s| {
        at(s, "a", digests.0) && at(s, "b", digests.1)
    })
    .await;
    Scheduled {
        setup,
        versions,
        before: history(&stream),
    }
}

impl Scheduled {
    /// After the fault: `a` gained exactly `new_a`, `b` nothing, no failure left, and two
    /// more intervals change nothing. Returns the recovery time.
    async fn assert_recovered(&self, new_a: &str, within: Duration) -> Duration {
        let (stream, took) = wait_for(&self.setup.api, "s", within, "recovery", |s| {
            at(s, "a", new_a) && failure(s, "b").is_none()
        })
        .await;
        let after = history(&stream);
        assert_extends("a", &self.before["a"], &after["a"], &[new_a]);
        assert_extends("b", &self.before["b"], &after["b"], &[]);
        tokio::time::sleep(INTERVAL * 2).await;
        let settled = self.setup.api.get("s").await.expect("get");
        assert_eq!(history(&settled), after, "history moved after recovery");
        assert_eq!(failure(&settled, "a"), None);
        assert_eq!(failure(&settled, "b"), None);
        let versions = self.versions.assert_history_kept(&after).await;
        println!("{versions} versions of the stream, none lost or repeated an entry");
        took
    }
}

fn failed(reason: &str, message: String) -> (String, String) {
    (reason.to_string(), message)
}

#[tokio::test]
async fn registry_down_for_minutes_while_scheduled_tags_are_rechecked() {
    let down = Duration::from_secs(
        std::env::var("IMAGESTREAM_FAULT_DOWN_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(120),
    );
    let mut reg = RegistryOptions::plain().start();
    let a1 = push(&reg, "app", "a", 8101).await;
    let b1 = push(&reg, "app", "b", 8102).await;
    let addr = reg.addr().to_string();
    let lab = scheduled_stream("fault-down", settings(), &addr, (&a1, &b1)).await;
    let m = &lab.setup.metrics;
    let registry_label = format!("registry=\"{addr}\"");
    let refused = || {
        metric(
            m,
            "imagestream_operator_registry_requests_total",
            &[&registry_label, "code=\"none\""],
        )
    };
    let failed_imports = || {
        metric(
            m,
            "imagestream_operator_imports_total",
            &[&registry_label, "result=\"failed\""],
        )
    };

    reg.stop();
    let stopped = Instant::now();
    let expected = |t: &str| {
        failed(
            "InternalError",
            format!(
                "Internal error occurred: {addr}/app:{t}: connection failed: Connection refused (os error 111)"
            ),
        )
    };
    let took = lab
        .versions
        .failed("a", &expected("a"), Duration::from_secs(30))
        .await;
    lab.versions
        .failed("b", &expected("b"), Duration::from_secs(30))
        .await;
    println!("both tags failing {took:?} after the registry went down");
    let said = Instant::now();
    let (refused_then, failed_then) = (refused(), failed_imports());
    tokio::time::sleep(down.saturating_sub(stopped.elapsed())).await;

    // still down: the conditions stand, written once, and the checks went on meanwhile
    let stream = lab.setup.api.get("s").await.expect("get");
    assert_eq!(failure(&stream, "a"), Some(expected("a")));
    assert_eq!(failure(&stream, "b"), Some(expected("b")));
    assert_eq!(history(&stream), lab.before, "history changed while down");
    let rewrites = lab.versions.between(said, Instant::now()).len();
    assert_eq!(rewrites, 0, "status rewritten while nothing changed");
    let checks = failed_imports() - failed_then;
    let attempts = refused() - refused_then;
    let window = said.elapsed().as_secs();
    println!(
        "while down ({window} s after the conditions): {checks} failed tag checks, {attempts} refused connections"
    );
    // a check is due every interval, and takes three attempts with 1–2 s and 2–4 s of
    // backoff between them, for each of the two tags in turn: about one every 10–15 s
    assert!(
        checks >= 2 * (window / 30),
        "{checks} failed checks in {window} s"
    );
    // a check in flight (one per tag) when the counters were first read made some of its
    // attempts before: it counts as a failed check here with up to two attempts missing
    assert!(
        attempts + 2 * 2 >= 3 * checks,
        "{attempts} attempts for {checks}"
    );

    reg.restart();
    let restarted = Instant::now();
    let a2 = push(&reg, "app", "a", 8103).await;
    let recovery = lab.assert_recovered(&a2, Duration::from_secs(30)).await;
    println!(
        "down {:?}; recovered {recovery:?} after the restart ({:?} since)",
        restarted - stopped,
        restarted.elapsed()
    );
}

/// Of each request path's answers, three are 500, three passed on, three 500, …: half of
/// all, in runs as long as the client's three attempts, so one check in a few fails whole.
#[tokio::test]
async fn half_of_the_registry_answers_500() {
    let reg = RegistryOptions::plain().start();
    let a1 = push(&reg, "app", "a", 8201).await;
    let b1 = push(&reg, "app", "b", 8202).await;
    let switch = FaultSwitch::new();
    let proxy = FaultServer::forward(reg.addr(), switch.clone());
    let p = proxy.addr().to_string();
    let lab = scheduled_stream("fault-500", settings(), &p, (&a1, &b1)).await;

    let counts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    {
        let counts = counts.clone();
        switch.inject(move |req| {
            let mut counts = counts.lock().unwrap();
            let n = counts
                .entry(format!("{} {}", req.method, req.path))
                .or_default();
            let fail = (*n / 3).is_multiple_of(2);
            *n += 1;
            fail.then(|| {
                Reply::new(500)
                    .header("Content-Type", "application/json")
                    .body(r#"{"errors":[{"code":"UNKNOWN","message":"unknown error"}]}"#)
            })
        });
    }
    let fault_on = Instant::now();
    let expected = |t: &str| {
        failed(
            "InternalError",
            format!("Internal error occurred: {p}/app:{t}: HTTP 500 Internal Server Error"),
        )
    };
    for t in ["a", "b"] {
        let took = lab
            .versions
            .failed(t, &expected(t), Duration::from_secs(30))
            .await;
        println!("{t}: {expected:?} after {took:?}", expected = expected(t).1);
    }
    // the registry changes while it fails half the time; it lands, once
    let a2 = push(&reg, "app", "a", 8203).await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    switch.clear();
    let fault_off = Instant::now();
    let recovery = lab.assert_recovered(&a2, Duration::from_secs(20)).await;

    let during: Vec<Served> = proxy
        .http_requests()
        .into_iter()
        .filter(|s| s.request.at >= fault_on && s.request.at < fault_off)
        .collect();
    let errors = during.iter().filter(|s| s.status == 500).count();
    let paths = counts.lock().unwrap().len();
    println!(
        "during the fault: {errors} of {} answers were 500 ({paths} paths); recovered {recovery:?} after it ended",
        during.len()
    );
    // half, up to one unfinished run per path
    let passed = during.len() - errors;
    assert!(
        errors.abs_diff(passed) <= 3 * paths,
        "{errors} 500s, {passed} passed"
    );
    // the flapping conditions came and went with the checks
    let recoveries = lab
        .versions
        .all()
        .windows(2)
        .filter(|w| failure(&w[0], "b").is_some() && failure(&w[1], "b").is_none())
        .count();
    assert!(recoveries >= 1, "b never recovered during the fault");
}

#[tokio::test]
async fn too_many_requests_with_retry_after() {
    const RETRY_AFTER: Duration = Duration::from_secs(3);
    let reg = RegistryOptions::plain().start();
    let a1 = push(&reg, "app", "a", 8301).await;
    let b1 = push(&reg, "app", "b", 8302).await;
    let switch = FaultSwitch::new();
    let proxy = FaultServer::forward(reg.addr(), switch.clone());
    let p = proxy.addr().to_string();
    let lab = scheduled_stream("fault-429", settings(), &p, (&a1, &b1)).await;

    switch.always(
        Reply::new(429)
            .header("Retry-After", &RETRY_AFTER.as_secs().to_string())
            .header("Content-Type", "application/json")
            .body(r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#),
    );
    let fault_on = Instant::now();
    let expected = |t: &str| {
        failed(
            "TooManyRequests",
            format!(
                "{p}/app:{t}: too many requests to {p} (HTTP 429), asked to retry after {}s",
                RETRY_AFTER.as_secs()
            ),
        )
    };
    for t in ["a", "b"] {
        let took = lab
            .versions
            .failed(t, &expected(t), Duration::from_secs(30))
            .await;
        println!("{t}: {:?} after {took:?}", expected(t).1);
    }
    let a2 = push(&reg, "app", "a", 8303).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    // a change made while rate-limited is not imported yet
    let stream = lab.setup.api.get("s").await.expect("get");
    assert_eq!(history(&stream), lab.before);
    switch.clear();
    let fault_off = Instant::now();
    let recovery = lab.assert_recovered(&a2, Duration::from_secs(20)).await;
    println!("recovered {recovery:?} after the 429s ended");

    // The request log: after each 429 the registry heard nothing from the operator until
    // its Retry-After had passed: not the retry, not the other tag, not the next check.
    let mut log: Vec<Served> = proxy
        .http_requests()
        .into_iter()
        .filter(|s| s.request.at >= fault_on)
        .collect();
    log.sort_by_key(|s| s.request.at);
    let since = |s: &Served| (s.request.at - fault_on).as_secs_f64();
    let mut waits = Vec::new();
    for pair in log.windows(2) {
        if pair[0].status != 429 {
            continue;
        }
        let (this, next) = (&pair[0], &pair[1]);
        let wait = next.request.at - this.request.at;
        let retried = next.request.path == this.request.path;
        println!(
            "429 at +{:.3}s for {} {}; next request +{:.3}s ({} {}{}): {:.3}s later",
            since(this),
            this.request.method,
            this.request.path,
            since(next),
            next.request.method,
            next.request.path,
            if retried { ", the same" } else { "" },
            wait.as_secs_f64()
        );
        waits.push((retried, wait));
    }
    let answered_429 = log
        .iter()
        .filter(|s| s.status == 429 && s.request.at < fault_off)
        .count();
    let retried = waits.iter().filter(|(same, _)| *same).count();
    assert!(answered_429 >= 6, "only {answered_429} 429s");
    assert!(retried >= 3, "only {retried} retried requests");
    let early: Vec<_> = waits.iter().filter(|(_, w)| *w < RETRY_AFTER).collect();
    assert!(
        early.is_empty(),
        "requests sent before Retry-After ({RETRY_AFTER:?}) had passed: {early:?}"
    );
    let min = waits.iter().map(|(_, w)| *w).min().unwrap_or_default();
    println!(
        "{answered_429} 429s, {} requests after them ({retried} retries of the same request); the shortest wait was {min:?}",
        waits.len()
    );
}

/// The client side of the fix the 429 case found: a 429's Retry-After holds back every
/// request to that registry (another repository here), not only the retry of the same one.
#[tokio::test]
async fn retry_after_holds_back_the_next_request_to_the_registry() {
    let server = FaultServer::start(|req: &Seen| {
        if req.path == "/v2/one/manifests/v1" {
            Reply::new(429).header("Retry-After", "1")
        } else {
            Reply::new(404)
        }
    });
    support::registry::ensure_crypto();
    let config = RegistryConfig {
        max_retries: 0,
        ..RegistryConfig::default()
    };
    let client = RegistryClient::new(config, None, true, None).expect("client");
    let limited = client.head_manifest(server.addr(), "one", "v1").await;
    assert_eq!(
        limited.map_err(|e| e.reason()).err(),
        Some("TooManyRequests")
    );
    let other = client.head_manifest(server.addr(), "two", "v1").await;
    assert_eq!(other.map_err(|e| e.reason()).err(), Some("NotFound"));
    let log = server.http_requests();
    let paths: Vec<&str> = log.iter().map(|s| s.request.path.as_str()).collect();
    assert_eq!(paths, ["/v2/one/manifests/v1", "/v2/two/manifests/v1"]);
    let wait = log[1].request.at - log[0].request.at;
    assert!(wait >= Duration::from_secs(1), "{wait:?}");
}

#[tokio::test]
async fn five_second_answers_past_the_request_timeout() {
    let reg = RegistryOptions::plain().start();
    let a1 = push(&reg, "app", "a", 8401).await;
    let b1 = push(&reg, "app", "b", 8402).await;
    let switch = FaultSwitch::new();
    let proxy = FaultServer::forward(reg.addr(), switch.clone());
    let p = proxy.addr().to_string();
    let mut settings = settings();
    // ImageImportConfig's request timeout (production default 30 s)
    settings.registry.timeout = Duration::from_secs(3);
    let lab = scheduled_stream("fault-slow", settings, &p, (&a1, &b1)).await;

    switch.delay(Duration::from_secs(5));
    let expected = |t: &str| {
        failed(
            "Timeout",
            format!("{p}/app:{t}: no answer from {p} within 3s"),
        )
    };
    for t in ["a", "b"] {
        let took = lab
            .versions
            .failed(t, &expected(t), Duration::from_secs(40))
            .await;
        println!("{t}: {:?} after {took:?}", expected(t).1);
    }
    let a2 = push(&reg, "app", "a", 8403).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    switch.clear();
    // a check in flight may still be waiting for a slow answer (up to 3 × 3 s and backoff)
    let recovery = lab.assert_recovered(&a2, Duration::from_secs(30)).await;
    println!("recovered {recovery:?} after the answers were fast again");
}

// -------------------------------------------------------------- apiserver ---

/// A TCP relay to the apiserver that can be cut: while cut its port refuses connections and
/// every relayed connection has been shut down.
struct ApiRelay {
    port: u16,
    target: SocketAddr,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    running: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
}

impl ApiRelay {
    fn start(target: SocketAddr) -> ApiRelay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let mut relay = ApiRelay {
            port,
            target,
            conns: Arc::default(),
            running: None,
        };
        relay.serve(listener);
        relay
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn serve(&mut self, listener: TcpListener) {
        let stop = Arc::new(AtomicBool::new(false));
        let (target, conns, flag) = (self.target, self.conns.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for client in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let mut list = conns.lock().unwrap();
                for s in [&client, &server] {
                    if let Ok(s) = s.try_clone() {
                        list.push(s);
                    }
                }
                drop(list);
                pipe(&client, &server);
                pipe(&server, &client);
            }
        });
        self.running = Some((stop, thread));
    }

    /// The apiserver goes away: the port refuses connections, open ones are shut down.
    fn cut(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            stop.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect(("127.0.0.1", self.port));
            let _ = thread.join();
        }
        for conn in self.conns.lock().unwrap().drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }

    /// Back on the same port.
    fn restore(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("bind the same port");
        self.serve(listener);
    }
}

impl Drop for ApiRelay {
    fn drop(&mut self) {
        self.cut();
    }
}

fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let _ = io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

/// The apiserver out of reach while scheduled checks go on (a network partition, or the
/// part of a restart the operator sees): every connection to it is cut and new ones are
/// refused for a while, then the same apiserver answers again. A real restart is
/// [`apiserver_restarted_under_two_replicas`].
#[tokio::test]
async fn apiserver_unreachable_then_back() {
    const OUTAGE: Duration = Duration::from_secs(15);
    let reg = RegistryOptions::plain().start();
    let a1 = push(&reg, "app", "a", 8501).await;
    let b1 = push(&reg, "app", "b", 8502).await;
    cluster::install_crypto_provider();
    let server = cluster::cluster().await.config().await.cluster_url;
    let target: SocketAddr = format!(
        "{}:{}",
        server.host().expect("host"),
        server.port_u16().expect("port")
    )
    .parse()
    .expect("apiserver address");
    let mut relay = ApiRelay::start(target);
    // 3 s: a few checks during the outage, each failing to store the Image
    let interval = Duration::from_secs(3);
    let settings = Settings {
        scheduled_interval: Some(interval),
        ..settings()
    };
    let setup = controllers("fault-apiserver", settings, Some(relay.url())).await;
    let versions = Versions::record(&setup.api, "s");
    let from = |t: &str| reg.image_ref("app", t);
    create_stream(
        &setup.api,
        "s",
        json!([tag("a", &from("a"), 1, true), tag("b", &from("b"), 1, true)]),
    )
    .await;
    let (stream, _) = wait_for(&setup.api, "s", Duration::from_secs(30), "import", |s| {
        at(s, "a", &a1) && at(s, "b", &b1)
    })
    .await;
    let before = history(&stream);
    let errors = || {
        metric(
            &setup.metrics,
            "imagestream_operator_reconcile_errors_total",
            &["controller=\"imagestream\""],
        )
    };
    let errors_before = errors();

    relay.cut();
    let cut = Instant::now();
    // the registry changes while the operator cannot write
    let mark = reg.mark();
    let a2 = push(&reg, "app", "a", 8503).await;
    tokio::time::sleep(OUTAGE).await;
    let stream = setup.api.get("s").await.expect("get");
    assert_eq!(history(&stream), before, "written while cut off?");
    let failed = errors() - errors_before;
    let reasons: Vec<String> = setup
        .metrics
        .encode()
        .lines()
        .filter(|l| l.starts_with("imagestream_operator_reconcile_errors_total"))
        .map(str::to_string)
        .collect();
    let fetched = reg
        .requests_since_async(mark)
        .await
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == "/v2/app/manifests/a" && r.status == 200)
        .count();
    relay.restore();
    let restored = Instant::now();
    println!("apiserver unreachable for {:?}", restored - cut);
    // the checks went on: the change was fetched, and storing its Image failed
    assert!(fetched >= 1, "the change was not fetched during the outage");
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("reason=\"ImageCreateFailed\"")),
        "{reasons:?}"
    );

    let (stream, took) = wait_for(&setup.api, "s", Duration::from_secs(60), "recovery", |s| {
        at(s, "a", &a2)
    })
    .await;
    let after = history(&stream);
    assert_extends("a", &before["a"], &after["a"], &[&a2]);
    assert_extends("b", &before["b"], &after["b"], &[]);
    tokio::time::sleep(interval * 2).await;
    assert_eq!(
        history(&setup.api.get("s").await.expect("get")),
        after,
        "history moved after recovery"
    );
    // the registry never failed: no condition on any version
    let all = versions.all();
    for s in &all {
        assert_eq!(failure(s, "a"), None);
        assert_eq!(failure(s, "b"), None);
    }
    let n = versions.assert_history_kept(&after).await;
    println!(
        "{failed} reconciles failed during the outage ({reasons:?}), the change fetched {fetched} times; it landed {took:?} after the apiserver was back; {n} versions"
    );
    drop(relay);
}

// ------------------------------------------------------- operator processes ---

const LEASE: &str = "imagestream-operator";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// `imagestream-operator run` for `namespace` without webhooks (cluster-wide), as
/// `identity`, logging into `dir`.
fn operator_process(kubeconfig: &Path, namespace: &str, identity: &str, dir: &Path) -> Child {
    let log = |name: &str| std::fs::File::create(dir.join(name)).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_imagestream-operator"))
        .args(["run", "--namespace", namespace])
        .args(["--watch-namespace", namespace, "--no-webhooks"])
        .args(["--metrics-port", &free_port().to_string()])
        .args(["--leader-identity", identity])
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "info,imagestream_operator=debug")
        .stdin(Stdio::null())
        .stdout(log("stdout"))
        .stderr(log("stderr"))
        .spawn()
        .expect("start the operator binary")
}

fn output(dir: &Path) -> String {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    format!("{}{}", read("stdout"), read("stderr"))
}

async fn holder(admin: &Client, namespace: &str) -> Option<String> {
    Api::<Lease>::namespaced(admin.clone(), namespace)
        .get_opt(LEASE)
        .await
        .expect("get lease")
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
}

async fn wait_for_holder(admin: &Client, namespace: &str, identity: &str, within: Duration) {
    let started = Instant::now();
    while holder(admin, namespace).await.as_deref() != Some(identity) {
        assert!(started.elapsed() < within, "{identity} never led");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn stop(child: &mut Child) {
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on our own child's pid
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

struct Processes {
    admin: Client,
    ns: String,
    api: Api<ImageStream>,
    account: cluster::ServiceAccountClient,
}

async fn processes(prefix: &str) -> Processes {
    cluster::install_crypto_provider();
    processes_on(cluster::cluster().await, prefix).await
}

async fn processes_on(cluster: &cluster::TestCluster, prefix: &str) -> Processes {
    let admin = cluster.client().await;
    crds::install(&admin).await;
    let ns = cluster::fresh_namespace(&admin, prefix).await;
    rbac::bind_deploy_roles(&admin, &ns, "operator", &rbac::OPERATOR_ROLES).await;
    let account = cluster.service_account_client(&ns, "operator").await;
    Processes {
        api: Api::namespaced(admin.clone(), &ns),
        admin,
        ns,
        account,
    }
}

/// Creates stream `s` with unscheduled tags `a` and `b` from `(pull spec, digest)` and waits
/// until both are imported.
async fn imported_pair(
    api: &Api<ImageStream>,
    (a_from, a): (&str, &str),
    (b_from, b): (&str, &str),
) -> ImageStream {
    create_stream(
        api,
        "s",
        json!([tag("a", a_from, 1, false), tag("b", b_from, 1, false)]),
    )
    .await;
    let (stream, _) = wait_for(api, "s", Duration::from_secs(30), "import", |s| {
        at(s, "a", a) && at(s, "b", b)
    })
    .await;
    stream
}

async fn set_tags(api: &Api<ImageStream>, tags: Value) {
    api.patch(
        "s",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"tags": tags}})),
    )
    .await
    .expect("patch the tags");
}

/// SIGKILL while an import waits for the registry; the restarted process (same identity, as
/// a restarted Pod) imports it exactly once.
#[tokio::test]
async fn operator_killed_mid_import_and_started_again() {
    let reg = RegistryOptions::plain().start();
    let a1 = push(&reg, "app", "a", 8601).await;
    let b1 = push(&reg, "app", "b", 8602).await;
    let a2 = push(&reg, "app", "a2", 8603).await;
    let switch = FaultSwitch::new();
    let proxy = FaultServer::forward(reg.addr(), switch.clone());
    let from = |t: &str| format!("{}/app:{t}", proxy.addr());
    let lab = processes("fault-sigkill").await;
    let kubeconfig = lab.account.kubeconfig();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut first = operator_process(kubeconfig, &lab.ns, "op", dir.path());
    wait_for_holder(&lab.admin, &lab.ns, "op", Duration::from_secs(30)).await;
    let versions = Versions::record(&lab.api, "s");
    let stream = imported_pair(&lab.api, (&from("a"), &a1), (&from("b"), &b1)).await;
    let before = history(&stream);

    // the user points a elsewhere (generation 2, as the webhook would set); the registry
    // holds its answers, and the operator dies waiting
    switch.delay(Duration::from_secs(60));
    set_tags(
        &lab.api,
        json!([
            tag("a", &from("a2"), 2, false),
            tag("b", &from("b"), 1, false)
        ]),
    )
    .await;
    let manifest = "/v2/app/manifests/a2";
    let deadline = Instant::now() + Duration::from_secs(30);
    while !proxy.requests_to(manifest).iter().any(|s| !s.done) {
        assert!(
            Instant::now() < deadline,
            "the import never started:\n{}",
            output(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = lab.api.get("s").await.expect("get").status;
    first.kill().expect("SIGKILL");
    let _ = first.wait();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        lab.api.get("s").await.expect("get").status,
        status,
        "status moved after SIGKILL"
    );

    switch.clear();
    let dir2 = tempfile::tempdir().expect("tempdir");
    let mut second = operator_process(kubeconfig, &lab.ns, "op", dir2.path());
    let started = Instant::now();
    let (stream, took) = wait_for(&lab.api, "s", Duration::from_secs(30), "re-import", |s| {
        at(s, "a", &a2)
    })
    .await;
    let after = history(&stream);
    assert_extends("a", &before["a"], &after["a"], &[&a2]);
    assert_eq!(after["a"][0].generation, 2);
    assert_extends("b", &before["b"], &after["b"], &[]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(history(&lab.api.get("s").await.expect("get")), after);
    let n = versions.assert_history_kept(&after).await;
    println!(
        "killed mid-import; the restart imported it {took:?} after starting ({:?} after the kill); {n} versions",
        started - killed + took
    );
    assert_eq!(holder(&lab.admin, &lab.ns).await.as_deref(), Some("op"));
    stop(&mut second);
}

/// The leader dies (SIGKILL, the Lease not released); the user changes a tag while nobody
/// leads; the other replica takes over, imports the change exactly once and leaves the rest
/// of the history alone.
#[tokio::test]
async fn leader_killed_the_other_replica_keeps_the_history() {
    let reg = RegistryOptions::plain().start();
    let a1 = push(&reg, "app", "a", 8701).await;
    let b1 = push(&reg, "app", "b", 8702).await;
    let a2 = push(&reg, "app", "a2", 8703).await;
    let from = |t: &str| reg.image_ref("app", t);
    let lab = processes("fault-leader").await;
    let kubeconfig = lab.account.kubeconfig();
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let mut leader = operator_process(kubeconfig, &lab.ns, "replica-a", dir_a.path());
    wait_for_holder(&lab.admin, &lab.ns, "replica-a", Duration::from_secs(30)).await;
    let mut other = operator_process(kubeconfig, &lab.ns, "replica-b", dir_b.path());
    let versions = Versions::record(&lab.api, "s");
    let stream = imported_pair(&lab.api, (&from("a"), &a1), (&from("b"), &b1)).await;
    let before = history(&stream);
    assert_eq!(
        holder(&lab.admin, &lab.ns).await.as_deref(),
        Some("replica-a")
    );

    leader.kill().expect("SIGKILL");
    let _ = leader.wait();
    let killed = Instant::now();
    set_tags(
        &lab.api,
        json!([
            tag("a", &from("a2"), 2, false),
            tag("b", &from("b"), 1, false)
        ]),
    )
    .await;
    let (stream, took) = wait_for(&lab.api, "s", Duration::from_secs(40), "take-over", |s| {
        at(s, "a", &a2)
    })
    .await;
    assert_eq!(
        holder(&lab.admin, &lab.ns).await.as_deref(),
        Some("replica-b"),
        "{}",
        output(dir_b.path())
    );
    let after = history(&stream);
    assert_extends("a", &before["a"], &after["a"], &[&a2]);
    assert_extends("b", &before["b"], &after["b"], &[]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(history(&lab.api.get("s").await.expect("get")), after);
    let n = versions.assert_history_kept(&after).await;
    println!(
        "the change landed {took:?} after the leader died ({:?}); {n} versions",
        killed.elapsed()
    );
    stop(&mut other);
}

/// Operator processes restarted as the kubelet would restart their containers: whichever
/// has exited is started again (same identity, new log directory).
struct Replicas {
    kubeconfig: std::path::PathBuf,
    namespace: String,
    running: Vec<(String, Child, tempfile::TempDir)>,
    /// Each exit: identity, status, what the process wrote.
    exits: Vec<(String, std::process::ExitStatus, String)>,
}

impl Replicas {
    fn start(kubeconfig: &Path, namespace: &str, identities: &[&str]) -> Replicas {
        let mut replicas = Replicas {
            kubeconfig: kubeconfig.to_path_buf(),
            namespace: namespace.to_string(),
            running: Vec::new(),
            exits: Vec::new(),
        };
        for identity in identities {
            replicas.spawn(identity);
        }
        replicas
    }

    fn spawn(&mut self, identity: &str) {
        let dir = tempfile::tempdir().expect("tempdir");
        let child = operator_process(&self.kubeconfig, &self.namespace, identity, dir.path());
        self.running.push((identity.to_string(), child, dir));
    }

    /// Starts again every replica that has exited.
    fn restart_exited(&mut self) {
        let mut exited = Vec::new();
        self.running.retain_mut(
            |(identity, child, dir)| match child.try_wait().expect("wait") {
                Some(status) => {
                    exited.push(identity.clone());
                    self.exits
                        .push((identity.clone(), status, output(dir.path())));
                    false
                }
                None => true,
            },
        );
        for identity in exited {
            self.spawn(&identity);
        }
    }

    /// What the running replica `identity` wrote.
    fn output(&self, identity: &str) -> String {
        self.running
            .iter()
            .find(|(i, _, _)| i == identity)
            .map(|(_, _, dir)| output(dir.path()))
            .unwrap_or_else(|| panic!("{identity} is not running; exits {:#?}", self.exits))
    }

    fn logs(&self) -> String {
        self.running
            .iter()
            .map(|(identity, _, dir)| format!("--- {identity} ---\n{}", output(dir.path())))
            .collect()
    }
}

impl Drop for Replicas {
    fn drop(&mut self) {
        for (_, child, _) in &mut self.running {
            stop(child);
        }
    }
}

/// The apiserver stops (SIGTERM, as on a control-plane upgrade) and starts again on the same
/// etcd data and certificates 15 s later, under the two replicas of the Deployment. Its
/// graceful shutdown refuses new connections at once but waits for the open watches up to
/// its 60 s shutdown timeout, so the operator is cut off for well over the 10 s lease. The leader, unable to renew, stops and exits; started again (as the
/// kubelet would) it or the other replica leads again; a change made after the restart is
/// imported exactly once and nothing imported before is lost or imported again. A replica
/// started while the apiserver is down waits for it.
#[tokio::test]
async fn apiserver_restarted_under_two_replicas() {
    const DOWN: Duration = Duration::from_secs(15);
    let reg = RegistryOptions::plain().start();
    let a1 = push(&reg, "app", "a", 8801).await;
    let b1 = push(&reg, "app", "b", 8802).await;
    let a2 = push(&reg, "app", "a2", 8803).await;
    let from = |t: &str| reg.image_ref("app", t);
    let cluster = cluster::TestCluster::start_restartable().await;
    let lab = processes_on(&cluster, "fault-restart").await;
    let mut replicas = Replicas::start(lab.account.kubeconfig(), &lab.ns, &["replica-a"]);
    wait_for_holder(&lab.admin, &lab.ns, "replica-a", Duration::from_secs(30)).await;
    replicas.spawn("replica-b");
    let versions = Versions::record(&lab.api, "s");
    let stream = imported_pair(&lab.api, (&from("a"), &a1), (&from("b"), &b1)).await;
    let before = history(&stream);
    let resource_version = stream.resource_version();
    let mark = reg.mark();

    let stopping = Instant::now();
    cluster.stop().await;
    let stopped = stopping.elapsed();
    // a third replica starts while the apiserver is down (a rescheduled Pod): it waits for
    // the apiserver instead of ending
    replicas.spawn("replica-c");
    tokio::time::sleep(DOWN).await;
    let starting = Instant::now();
    cluster.start_again().await;
    let back = Instant::now();
    println!(
        "apiserver: stopped in {stopped:?}, down {DOWN:?}, ready again in {:?}",
        back - starting
    );

    // the same objects, at the same versions
    let stream = lab.api.get("s").await.expect("get after the restart");
    assert_eq!(stream.resource_version(), resource_version);
    assert_eq!(history(&stream), before);

    // a leader again, within the lease duration and a retry or two
    let leader = loop {
        replicas.restart_exited();
        if let Some(holder) = holder(&lab.admin, &lab.ns).await
            && lease_is_live(&lab.admin, &lab.ns).await
        {
            break holder;
        }
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "no live Lease 30 s after the restart; exits {:#?}\n{}",
            replicas.exits,
            replicas.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let led = back.elapsed();

    set_tags(
        &lab.api,
        json!([
            tag("a", &from("a2"), 2, false),
            tag("b", &from("b"), 1, false)
        ]),
    )
    .await;
    let edited = Instant::now();
    let stream = loop {
        replicas.restart_exited();
        let stream = lab.api.get("s").await.expect("get");
        if at(&stream, "a", &a2) {
            break stream;
        }
        assert!(
            edited.elapsed() < Duration::from_secs(60),
            "the change after the restart was not imported; status {:#?}; exits {:#?}\n{}",
            stream.status,
            replicas.exits,
            replicas.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let took = edited.elapsed();
    let after = history(&stream);
    assert_extends("a", &before["a"], &after["a"], &[&a2]);
    assert_eq!(after["a"][0].generation, 2);
    assert_extends("b", &before["b"], &after["b"], &[]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    replicas.restart_exited();
    assert_eq!(history(&lab.api.get("s").await.expect("get")), after);
    // b1 was never fetched again: a restart is no reason to re-import
    let refetched = reg
        .requests_since_async(mark)
        .await
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == "/v2/app/manifests/b")
        .count();
    assert_eq!(refetched, 0, "b re-imported after the restart");
    let waited = replicas.output("replica-c");
    assert!(
        waited.contains("the apiserver did not answer the permission check; asking again"),
        "{waited}"
    );
    // a leader that could not renew for a whole lease stopped with that reason
    for (identity, status, out) in &replicas.exits {
        assert!(!status.success(), "{identity} exited with {status}:\n{out}");
        assert!(
            out.contains("could not be renewed for a whole lease duration"),
            "{identity} exited with {status} for another reason:\n{out}"
        );
    }
    let n = versions.assert_history_kept(&after).await;
    println!(
        "{} restart(s) ({:?}); {leader} led {led:?} after the apiserver was back; the change landed {took:?} after the edit; {n} versions",
        replicas.exits.len(),
        replicas
            .exits
            .iter()
            .map(|(identity, status, _)| format!("{identity}: {status}"))
            .collect::<Vec<_>>()
    );
}

/// The Lease was renewed within its duration.
async fn lease_is_live(admin: &Client, namespace: &str) -> bool {
    let Some(spec) = Api::<Lease>::namespaced(admin.clone(), namespace)
        .get_opt(LEASE)
        .await
        .expect("get lease")
        .and_then(|l| l.spec)
    else {
        return false;
    };
    let (Some(renewed), Some(seconds)) = (spec.renew_time, spec.lease_duration_seconds) else {
        return false;
    };
    let age = jiff::Timestamp::now().duration_since(renewed.0);
    age < jiff::SignedDuration::from_secs(i64::from(seconds))
}
