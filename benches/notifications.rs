//! Registry notifications against the local cluster and a real `docker-registry` (a program,
//! not a timed test):
//!
//! 1. push → stream status through `docker-registry`'s own notifications: p50 and p99 over
//!    100 pushes (each its own tag, one after another; from the manifest PUT, the last step
//!    of a push, to the watch event of the status), beside
//! 2. the same 100 pushes found by polling at the demo interval (15 s, as
//!    config/image-import-config.yaml), no notifications;
//! 3. a burst: 1,000 notifications in 10 s for 50 tags that moved (each notification names
//!    its tag's new digest, as a registry repeating itself would): the registry requests it
//!    cost, from the registry's access log;
//! 4. the same burst without digests (as Docker Hub and Quay send), for tags that did not move:
//!    a check per tag at once, then one per `receiver::wake::REPEAT` while the burst lasts.
//!
//! `e2e/with-cluster.sh cargo bench --bench notifications` (the figures in the README were
//! taken with `--profile dev`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use imagestream_operator::api::image_stream::ImageStream;
use imagestream_operator::controller::Settings;
use support::images::{ImageSpec, TestImage};
use support::receivers::{
    Replica, ca_pem, current, https, namespace, push_only, receiver, scheduled_stream,
};
use support::registry::{NotifyEndpoint, RegistryOptions, TestRegistry, summary};

const PUSHES: usize = 100;
const BURST_TAGS: usize = 50;
const BURST_NOTIFICATIONS: usize = 1000;
const BURST_SECONDS: u64 = 10;
const DEMO_INTERVAL: Duration = Duration::from_secs(15);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn report(title: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    println!(
        "{title:<58} p50 {:>10}  p99 {:>10}  max {:>10}  ({} pushes)",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(*latencies.last().unwrap_or(&Duration::ZERO)),
        latencies.len()
    );
}

/// When each stream's tag `t` was first seen (by a watch) at each image.
type Seen = Arc<Mutex<HashMap<(String, String), Instant>>>;

fn observe(api: Api<ImageStream>) -> Seen {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
        while let Some(event) = events.next().await {
            let Ok(stream) = event else { continue };
            if let Some(image) = current(&stream, "t") {
                record
                    .lock()
                    .unwrap()
                    .entry((stream.name_any(), image))
                    .or_insert_with(Instant::now);
            }
        }
    });
    seen
}

async fn seen_at(seen: &Seen, stream: &str, image: &str, within: Duration) -> Instant {
    let deadline = Instant::now() + within;
    loop {
        if let Some(at) = seen
            .lock()
            .unwrap()
            .get(&(stream.to_string(), image.to_string()))
        {
            return *at;
        }
        assert!(Instant::now() < deadline, "{stream} never showed {image}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn image(seed: u64) -> TestImage {
    ImageSpec::single("amd64", seed).build().into()
}

/// Pushes `count` repositories' tag `t` and streams `<prefix><i>` following them; waits until
/// each imported.
async fn streams(
    reg: &TestRegistry,
    api: &Api<ImageStream>,
    seen: &Seen,
    prefix: &str,
    count: usize,
    seed: u64,
) -> Vec<String> {
    let mut first = Vec::new();
    for i in 0..count {
        let digest = reg
            .client()
            .push(&format!("{prefix}/app{i}"), "t", &image(seed + i as u64))
            .await
            .expect("push");
        scheduled_stream(
            api,
            &format!("{prefix}{i}"),
            &[("t", reg.image_ref(&format!("{prefix}/app{i}"), "t"))],
        )
        .await;
        first.push(digest);
    }
    for (i, digest) in first.iter().enumerate() {
        seen_at(
            seen,
            &format!("{prefix}{i}"),
            digest,
            Duration::from_secs(120),
        )
        .await;
    }
    first
}

/// Moves every tag: the layers first, then the manifest PUTs, timed from the PUT.
async fn push_new(
    reg: &TestRegistry,
    prefix: &str,
    count: usize,
    seed: u64,
) -> Vec<(String, Instant)> {
    let mut moved = Vec::new();
    for i in 0..count {
        let repo = format!("{prefix}/app{i}");
        let img = image(seed + i as u64);
        reg.client()
            .push_content(&repo, &img)
            .await
            .expect("layers");
        let at = Instant::now();
        let digest = reg.client().tag(&repo, "t", &img).await.expect("manifest");
        moved.push((digest, at));
    }
    moved
}

#[tokio::main]
async fn main() {
    // the operator's log on stderr when RUST_LOG asks for it
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    println!("registry notifications, local cluster and docker-registry");

    // 1. through docker-registry's notifications, one push after another
    let (admin, ns) = namespace("bench-notify").await;
    let replica = Replica::start(&ns, None, push_only()).await;
    let token = "bench-token-0123456789abcdef";
    let path = receiver(
        &admin,
        &ns,
        "registry",
        "distribution",
        token,
        json!({"maxRequestsPerMinute": 60000}),
    )
    .await;
    let ca = ca_pem(&admin, &ns).await;
    let reg = RegistryOptions::plain()
        .trust(&ca)
        .notify(
            NotifyEndpoint::new("operator", &replica.url(&path))
                .header("Authorization", &format!("Bearer {token}")),
        )
        .start();
    let api = Api::<ImageStream>::namespaced(admin.clone(), &ns);
    let seen = observe(api.clone());
    streams(&reg, &api, &seen, "n", PUSHES, 30_000).await;
    let mut latencies = Vec::new();
    for i in 0..PUSHES {
        let repo = format!("n/app{i}");
        let img = image(31_000 + i as u64);
        reg.client()
            .push_content(&repo, &img)
            .await
            .expect("layers");
        let at = Instant::now();
        let digest = reg.client().tag(&repo, "t", &img).await.expect("manifest");
        let shown = seen_at(&seen, &format!("n{i}"), &digest, Duration::from_secs(60)).await;
        let took = shown.saturating_duration_since(at);
        latencies.push(took);
    }
    let mut slowest: Vec<(Duration, usize)> = latencies.iter().copied().zip(0..).collect();
    slowest.sort();
    slowest.reverse();
    report("push → status, docker-registry notifications", latencies);
    println!(
        "  slowest: {}",
        slowest
            .iter()
            .take(3)
            .map(|(d, i)| format!("push {i} {}", ms(*d)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let accepted = replica.notifications("accepted");
    println!("  notifications accepted: {accepted}");

    // 2. the same pushes found by polling at the demo interval
    let (admin2, ns2) = namespace("bench-poll").await;
    let polling = Replica::start(
        &ns2,
        None,
        Settings {
            scheduled_interval: Some(DEMO_INTERVAL),
            scheduled_per_minute: None,
            ..Settings::default()
        },
    )
    .await;
    let reg2 = RegistryOptions::plain().start();
    let api2 = Api::<ImageStream>::namespaced(admin2.clone(), &ns2);
    let seen2 = observe(api2.clone());
    streams(&reg2, &api2, &seen2, "p", PUSHES, 40_000).await;
    let moved = push_new(&reg2, "p", PUSHES, 41_000).await;
    let mut latencies = Vec::new();
    for (i, (digest, at)) in moved.iter().enumerate() {
        let shown = seen_at(&seen2, &format!("p{i}"), digest, DEMO_INTERVAL * 4).await;
        latencies.push(shown.saturating_duration_since(*at));
    }
    report(
        &format!("push → status, polling every {}s", DEMO_INTERVAL.as_secs()),
        latencies,
    );
    polling.finish().await;

    // 3. a burst of 1,000 notifications in 10 s for 50 tags that moved
    let reg3 = RegistryOptions::plain().start();
    streams(&reg3, &api, &seen, "b", BURST_TAGS, 50_000).await;
    let moved = push_new(&reg3, "b", BURST_TAGS, 51_000).await;
    let client = https(&ca);
    let url = replica.url(&path);
    let burst = |digests: Option<Vec<String>>| {
        let (client, url, host) = (client.clone(), url.clone(), reg3.addr().to_string());
        async move {
            let started = Instant::now();
            let mut replies = Vec::new();
            for k in 0..BURST_NOTIFICATIONS {
                let at = started
                    + Duration::from_millis(
                        k as u64 * BURST_SECONDS * 1000 / BURST_NOTIFICATIONS as u64,
                    );
                tokio::time::sleep_until(at.into()).await;
                let tag = k % BURST_TAGS;
                let mut target = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "repository": format!("b/app{tag}"), "tag": "t"});
                if let Some(d) = &digests {
                    target["digest"] = json!(d[tag]);
                }
                let body = json!({"events": [{"id": k.to_string(), "action": "push",
                    "target": target, "request": {"host": host}}]});
                let request = client
                    .post(&url)
                    .header("Authorization", format!("Bearer {token}"))
                    .body(body.to_string());
                replies.push(tokio::spawn(async move {
                    request
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0)
                }));
            }
            let mut codes: BTreeMap<u16, usize> = BTreeMap::new();
            for r in replies {
                *codes.entry(r.await.unwrap_or(0)).or_default() += 1;
            }
            (codes, started.elapsed())
        }
    };
    let mark = reg3.mark();
    let digests: Vec<String> = moved.iter().map(|(d, _)| d.clone()).collect();
    let (codes, took) = burst(Some(digests.clone())).await;
    for (i, digest) in digests.iter().enumerate() {
        seen_at(&seen, &format!("b{i}"), digest, Duration::from_secs(60)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let requests = summary(&reg3.requests_since_async(mark).await);
    let count = |prefix: &str| requests.iter().filter(|r| r.starts_with(prefix)).count();
    println!(
        "burst of {BURST_NOTIFICATIONS} notifications in {:.1} s for {BURST_TAGS} moved tags (with digests): answers {codes:?}",
        took.as_secs_f64()
    );
    println!(
        "  registry requests: {} HEAD manifest, {} GET manifest, {} GET blob ({} in all; target at most {BURST_TAGS} HEAD + {} fetches)",
        count("HEAD /v2/b/"),
        requests
            .iter()
            .filter(|r| r.starts_with("GET /v2/b/") && r.contains("/manifests/"))
            .count(),
        requests
            .iter()
            .filter(|r| r.starts_with("GET /v2/b/") && r.contains("/blobs/"))
            .count(),
        requests.len(),
        2 * BURST_TAGS
    );

    // 4. the same burst without digests, for tags that did not move
    let mark = reg3.mark();
    let (codes, took) = burst(None).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let requests = summary(&reg3.requests_since_async(mark).await);
    println!(
        "burst of {BURST_NOTIFICATIONS} notifications in {:.1} s for {BURST_TAGS} unchanged tags (no digests): answers {codes:?}",
        took.as_secs_f64()
    );
    println!(
        "  registry requests: {} HEAD manifest, {} other ({} HEAD per tag)",
        requests
            .iter()
            .filter(|r| r.starts_with("HEAD /v2/b/"))
            .count(),
        requests
            .iter()
            .filter(|r| !r.starts_with("HEAD /v2/b/"))
            .count(),
        requests
            .iter()
            .filter(|r| r.starts_with("HEAD /v2/b/"))
            .count() as f64
            / BURST_TAGS as f64
    );
    replica.finish().await;
}
