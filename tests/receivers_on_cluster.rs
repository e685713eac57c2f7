//! Registry notifications (issue 18) against a real apiserver and a real registry: Debian's
//! `docker-registry` configured with a `notifications` endpoint at the operator's receiver is
//! the sender, with its own retries. Request counts come from the registry's access log.
//!
//! Scheduled imports are disabled in these tests (push only), so every import after a
//! stream's first is a notification's doing.

mod support;

use std::time::{Duration, Instant};

use kube::api::Api;
use serde_json::json;

use imagestream_operator::api::image_stream::ImageStream;
use imagestream_operator::controller::Settings;
use support::fault_registry::{FaultServer, Reply, Seen, relay};
use support::images::{ImageSpec, TestImage};
use support::receivers::{
    LEASE, Replica, ca_pem, current, https, namespace, push_only, receiver, scheduled_stream,
    wait_image,
};
use support::registry::{NotifyEndpoint, RegistryOptions, Request, TestRegistry};

async fn push(reg: &TestRegistry, repo: &str, tag: &str, seed: u64) -> String {
    let image: TestImage = ImageSpec::single("amd64", seed).build().into();
    reg.client().push(repo, tag, &image).await.expect("push")
}

/// What the operator asked the registry (the pusher's own requests left out): manifest HEADs
/// and GETs, blob GETs.
fn operator_requests(requests: &[Request]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| {
            (r.path.contains("/manifests/") && matches!(r.method.as_str(), "HEAD" | "GET"))
                || (r.path.contains("/blobs/") && r.method == "GET")
        })
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The operator's log on the test's output when `RUST_LOG` asks for it.
fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

#[tokio::test]
async fn docker_registry_notifications_import_a_pushed_tag_without_polling() {
    logs();
    let (admin, ns) = namespace("receivers").await;
    let replica = Replica::start(&ns, None, push_only()).await;
    let token = "registry-token-0123456789";
    let path = receiver(&admin, &ns, "registry", "distribution", token, json!({})).await;
    // a receiver that may wake only another namespace
    let elsewhere_token = "elsewhere-token-9876543210";
    let elsewhere = receiver(
        &admin,
        &ns,
        "elsewhere",
        "distribution",
        elsewhere_token,
        json!({"namespaces": ["somewhere-else"]}),
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

    let v1 = push(&reg, "app", "v1", 18_001).await;
    // docker-registry sends notifications on its own schedule: this push's must be answered
    // (no stream follows it yet) before the streams exist, or it would wake them later
    wait_until("the first push answered", Duration::from_secs(30), || {
        replica.notifications("no_match") >= 1
    })
    .await;
    let streams = Api::<ImageStream>::namespaced(admin.clone(), &ns);
    scheduled_stream(&streams, "app", &[("v1", reg.image_ref("app", "v1"))]).await;
    // the same source, not scheduled: imported once, never woken
    let manual: ImageStream = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": "manual"},
        "spec": {"tags": [{"name": "v1", "importPolicy": {"insecure": true},
            "from": {"kind": "DockerImage", "name": reg.image_ref("app", "v1")}}]},
    }))
    .unwrap();
    streams
        .create(&Default::default(), &manual)
        .await
        .expect("create");
    wait_image(&streams, "app", "v1", &v1, Duration::from_secs(30)).await;
    wait_image(&streams, "manual", "v1", &v1, Duration::from_secs(30)).await;

    // a push to the watched tag (polling is off): in the status for one HEAD and one
    // manifest and config fetch
    let mark = reg.mark();
    tracing::info!("pushing v2");
    let v2 = push(&reg, "app", "v1", 18_002).await;
    let pushed = Instant::now();
    tracing::info!("pushed v2");
    let took = wait_image(&streams, "app", "v1", &v2, Duration::from_secs(10)).await;
    // well inside the scheduled interval; the latency itself is benches/notifications.rs'
    println!("push to status through docker-registry's notification: {took:?}");
    wait_until("the notification answered", Duration::from_secs(5), || {
        replica.notifications("accepted") >= 1
    })
    .await;
    assert_eq!(
        replica.notifications("accepted"),
        1,
        "one push, one notification taken"
    );
    let requests = operator_requests(&reg.requests_since(mark));
    let count = |method: &str, kind: &str| {
        requests
            .iter()
            .filter(|r| r.starts_with(&format!("{method} /v2/app/{kind}/")))
            .count()
    };
    assert_eq!(
        (
            count("HEAD", "manifests"),
            count("GET", "manifests"),
            count("GET", "blobs")
        ),
        (1, 1, 1),
        "one HEAD, one manifest and one config fetch: {requests:?}"
    );
    assert_eq!(requests.len(), 3, "{requests:?}");
    let manual = streams.get("manual").await.expect("get");
    assert_eq!(
        current(&manual, "v1").as_deref(),
        Some(v1.as_str()),
        "not scheduled: not woken"
    );
    println!(
        "requests for the push: {requests:?} ({:?} after the push)",
        pushed.elapsed()
    );

    // a push to a repository no stream watches costs no request
    let mark = reg.mark();
    let unmatched = replica.notifications("no_match");
    push(&reg, "unwatched", "v1", 18_003).await;
    wait_until(
        "the unwatched push answered",
        Duration::from_secs(10),
        || replica.notifications("no_match") > unmatched,
    )
    .await;
    let requests = operator_requests(&reg.requests_since(mark));
    assert!(requests.is_empty(), "{requests:?}");

    // a wrong token is refused, and costs nothing either
    let client = https(&ca);
    let mark = reg.mark();
    let envelope = |digest: &str| {
        json!({"events": [{"id": "1", "action": "push", "target": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "repository": "app",
            "tag": "v1", "digest": digest}, "request": {"host": reg.addr()}}]})
    };
    let forged = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    let refused = client
        .post(replica.url(&path))
        .header("Authorization", "Bearer not-the-token")
        .header(
            "Content-Type",
            "application/vnd.docker.distribution.events.v1+json",
        )
        .body(envelope(forged).to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), 401);
    let unsigned = client
        .post(replica.url(&path))
        .body(envelope(forged).to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(unsigned.status(), 401);
    // a receiver that may not wake this namespace does not
    let other = client
        .post(replica.url(&elsewhere))
        .header("Authorization", format!("Bearer {elsewhere_token}"))
        .body(envelope(forged).to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(other.status(), 200);
    // an unknown path, a body too large, truncated JSON
    let nowhere = client
        .post(replica.url("/hooks/0000"))
        .body("{}")
        .send()
        .await
        .expect("post");
    assert_eq!(nowhere.status(), 404);
    let huge = client
        .post(replica.url(&path))
        .header("Authorization", format!("Bearer {token}"))
        .body(vec![b' '; (1 << 20) + 1])
        .send()
        .await
        .expect("post");
    assert_eq!(huge.status(), 413);
    let truncated = client
        .post(replica.url(&path))
        .header("Authorization", format!("Bearer {token}"))
        .body(r#"{"events": [{"action": "push", "target": {"repo"#)
        .send()
        .await
        .expect("post");
    assert_eq!(truncated.status(), 400);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let requests = operator_requests(&reg.requests_since(mark));
    assert!(requests.is_empty(), "{requests:?}");
    assert_eq!(replica.notifications("unauthorized"), 2);
    assert_eq!(replica.notifications("malformed"), 2);
    let app = streams.get("app").await.expect("get");
    assert_eq!(current(&app, "v1").as_deref(), Some(v2.as_str()));
    let text = replica.metrics.encode();
    assert!(
        text.contains(&format!(
            "imagestream_operator_notifications_total{{receiver=\"{ns}/elsewhere\",type=\"distribution\",outcome=\"no_match\"}} 1"
        )),
        "{text}"
    );
    assert!(text.contains("imagestream_operator_notification_to_status_seconds_count 1"));
    replica.finish().await;
}

/// A follower forwards what it receives to the leader; when the leader dies, the registry's
/// retries carry every notification over to the next leader (with polling off, nothing else
/// could import them).
#[tokio::test]
async fn notifications_survive_a_leader_change() {
    let (admin, ns) = namespace("receivers-leader").await;
    let a = Replica::start(&ns, Some("replica-a"), push_only()).await;
    let leases = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(admin.clone(), &ns);
    wait_lease(&leases, "replica-a").await;
    let b = Replica::start(&ns, Some("replica-b"), push_only()).await;
    let token = "leader-change-token-42";
    let path = receiver(&admin, &ns, "registry", "distribution", token, json!({})).await;
    let ca = ca_pem(&admin, &ns).await;
    // the registry only knows the follower
    let reg = RegistryOptions::plain()
        .trust(&ca)
        .notify(
            NotifyEndpoint::new("operator", &b.url(&path))
                .header("Authorization", &format!("Bearer {token}")),
        )
        .start();
    let tags: Vec<String> = (0..5).map(|i| format!("t{i}")).collect();
    let mut first = Vec::new();
    for (i, tag) in tags.iter().enumerate() {
        first.push(push(&reg, "app", tag, 18_100 + i as u64).await);
    }
    let streams = Api::<ImageStream>::namespaced(admin.clone(), &ns);
    let specs: Vec<(&str, String)> = tags
        .iter()
        .map(|t| (t.as_str(), reg.image_ref("app", t)))
        .collect();
    scheduled_stream(&streams, "app", &specs).await;
    for (tag, digest) in tags.iter().zip(&first) {
        wait_image(&streams, "app", tag, digest, Duration::from_secs(30)).await;
    }

    // through the follower to the leader
    let moved = push(&reg, "app", "t0", 18_200).await;
    let took = wait_image(&streams, "app", "t0", &moved, Duration::from_secs(10)).await;
    // polling is off: only the forwarded notification can have imported it (its latency is
    // measured by benches/notifications.rs, not asserted here)
    println!("push to status through the follower: {took:?}");
    assert_eq!(a.notifications("accepted"), 1, "the leader took it");
    assert_eq!(
        b.notifications("accepted"),
        0,
        "the follower only forwarded it"
    );

    // the leader dies; pushes go on
    a.kill().await;
    let killed = Instant::now();
    let mut pushed = Vec::new();
    for (i, tag) in tags.iter().enumerate().skip(1) {
        let digest = push(&reg, "app", tag, 18_300 + i as u64).await;
        pushed.push((tag.clone(), digest, Instant::now()));
    }
    let leader = wait_lease(&leases, "replica-b").await;
    println!("replica-b leads {:?} after replica-a died", leader - killed);
    for (tag, digest, at) in &pushed {
        wait_image(&streams, "app", tag, digest, Duration::from_secs(30)).await;
        println!(
            "{tag}: pushed {:?} after the leader died, in the status {:?} after its push",
            *at - killed,
            at.elapsed()
        );
    }
    println!(
        "every notification sent while no replica led was imported, {:?} after the kill; none lost",
        killed.elapsed()
    );
    assert!(
        b.notifications("unavailable") >= 1,
        "the follower answered 503 while no one led"
    );
    assert!(
        b.notifications("accepted") >= 1,
        "the new leader took the retries"
    );
    b.finish().await;
}

/// Waits until `identity` holds the Lease; when that was seen.
async fn wait_lease(
    leases: &Api<k8s_openapi::api::coordination::v1::Lease>,
    identity: &str,
) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(lease)) = leases.get_opt(LEASE).await
            && lease.spec.and_then(|s| s.holder_identity).as_deref() == Some(identity)
        {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "{identity} never led");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The fault-injecting server in front of a real registry answers manifest requests with
/// Docker Hub's quota headers and a sliding window; scheduled checks every second of four
/// streams would use it up in seconds, so they are paced: no 429, and checks go on at the
/// rate the quota comes back.
#[tokio::test]
async fn quota_headers_pace_scheduled_checks() {
    const LIMIT: f64 = 10.0;
    const WINDOW: f64 = 20.0;
    let reg = RegistryOptions::plain().start();
    let mut digests = Vec::new();
    for i in 0..4 {
        digests.push(push(&reg, "app", &format!("t{i}"), 18_400 + i).await);
    }
    // the quota as the registry keeps it: LIMIT per WINDOW seconds, coming back steadily
    let bucket = std::sync::Arc::new(std::sync::Mutex::new((LIMIT, Instant::now())));
    let remaining_seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
    let upstream = reg.addr().to_string();
    let (b, seen) = (bucket.clone(), remaining_seen.clone());
    let server = FaultServer::start(move |req: &Seen| {
        if !req.path.contains("/manifests/") {
            return relay(&upstream, req);
        }
        let mut state = b.lock().unwrap();
        let now = Instant::now();
        state.0 = (state.0 + now.duration_since(state.1).as_secs_f64() * LIMIT / WINDOW).min(LIMIT);
        state.1 = now;
        let limit = format!("{LIMIT};w={WINDOW}");
        if state.0 < 1.0 {
            seen.lock().unwrap().push(state.0);
            return Reply::new(429)
                .header("ratelimit-limit", &limit)
                .header("ratelimit-remaining", &format!("0;w={WINDOW}"))
                .header("Content-Type", "application/json")
                .body(r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"quota exhausted"}]}"#);
        }
        state.0 -= 1.0;
        seen.lock().unwrap().push(state.0);
        relay(&upstream, req)
            .header("ratelimit-limit", &limit)
            .header(
                "ratelimit-remaining",
                &format!("{};w={WINDOW}", state.0.floor()),
            )
    });
    let registry = server.addr().to_string();
    let (admin, ns) = namespace("receivers-quota").await;
    let settings = Settings {
        scheduled_interval: Some(Duration::from_secs(1)),
        scheduled_per_minute: None,
        ..Settings::default()
    };
    let replica = Replica::start(&ns, None, settings).await;
    let streams = Api::<ImageStream>::namespaced(admin.clone(), &ns);
    for i in 0..4 {
        scheduled_stream(
            &streams,
            &format!("s{i}"),
            &[("t", format!("{registry}/app:t{i}"))],
        )
        .await;
    }
    for (i, digest) in digests.iter().enumerate() {
        wait_image(
            &streams,
            &format!("s{i}"),
            "t",
            digest,
            Duration::from_secs(30),
        )
        .await;
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let served = server.http_requests();
    let manifests: Vec<_> = served
        .iter()
        .filter(|s| s.request.path.contains("/manifests/"))
        .collect();
    let during: Vec<_> = manifests
        .iter()
        .filter(|s| s.request.at >= started)
        .collect();
    let too_many = manifests.iter().filter(|s| s.status == 429).count();
    let least = remaining_seen
        .lock()
        .unwrap()
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    println!(
        "{} manifest requests in all, {} in the 20 s of scheduled checks (4 streams every second would be 80); 429s: {too_many}; least quota left: {least:.2}",
        manifests.len(),
        during.len()
    );
    let text = replica.metrics.encode();
    let quota_line = text
        .lines()
        .find(|l| l.starts_with("imagestream_operator_registry_quota_remaining{"))
        .unwrap_or_default()
        .to_string();
    println!("{quota_line}");
    assert_eq!(too_many, 0, "the quota ran out");
    assert!(least >= 0.0);
    // the checks went on, within what the quota allows in 20 s (what was left, plus 10 that
    // came back), not at 4 a second
    assert!(
        (4..=20).contains(&during.len()),
        "{} requests during the checks",
        during.len()
    );
    assert!(
        quota_line.contains(&format!("registry=\"{registry}\""))
            && quota_line.contains("credential=\"anonymous\""),
        "{text}"
    );
    replica.finish().await;
}
