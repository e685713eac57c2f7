//! The registry transport (`imagestream_operator::registry`) against a real registry
//! (distribution 2.8.2: plain, TLS + htpasswd, token auth) and against a fault-injecting server
//! for what a real registry cannot do. Request counts come from the registry's access log, the
//! token server's log and the client's request observer.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imagestream_operator::config::Platform;
use imagestream_operator::import::contract::{ImageImport, Mode};
use imagestream_operator::import::engine::{self, ListResolutions, Outcome};
use imagestream_operator::import::source::RepositorySource;
use imagestream_operator::registry::{
    AllowedRegistries, BasicCredentials, BlockedRegistries, MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES,
    PathKind, RegistryClient, RegistryConfig, RegistryError, RequestObserver,
};
use support::fault_registry::{FaultServer, Reply, Seen};
use support::images::{OCI_CONFIG, OCI_MANIFEST, sha256_digest};
use support::registry::{
    ADMIN_PASSWORD, ADMIN_USER, MULTI_PASSWORD, MULTI_USER, READER_PASSWORD, READER_USER,
    RegistryOptions, STANDARD_TAGS, ensure_crypto, summary,
};

// ------------------------------------------------------------------ helpers ---

/// Quick retries so fault tests do not wait for the production backoff.
fn fast() -> RegistryConfig {
    RegistryConfig {
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        timeout: Duration::from_secs(10),
        ..RegistryConfig::default()
    }
}

fn client_with(
    config: RegistryConfig,
    insecure: bool,
    creds: Option<(&str, &str)>,
    ca: Option<&[u8]>,
) -> RegistryClient {
    ensure_crypto();
    RegistryClient::new(
        config,
        creds.map(|(u, p)| BasicCredentials::new(u, p)),
        insecure,
        ca,
    )
    .unwrap()
}

fn insecure_client() -> RegistryClient {
    client_with(fast(), true, None, None)
}

/// (registry, method, path kind, status) of one exchange.
type Event = (String, String, PathKind, Option<u16>);

/// Records what the client reports for every exchange.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<Event>>,
}

impl RequestObserver for Recorder {
    fn on_request(
        &self,
        registry: &str,
        method: &str,
        path_kind: PathKind,
        status: Option<u16>,
        _duration: Duration,
    ) {
        self.events.lock().unwrap().push((
            registry.to_string(),
            method.to_string(),
            path_kind,
            status,
        ));
    }
}

impl Recorder {
    fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }
}

fn recorded(config: RegistryConfig) -> (RegistryConfig, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    (
        RegistryConfig {
            observer: Some(recorder.clone()),
            ..config
        },
        recorder,
    )
}

fn assert_reason(err: &RegistryError, reason: &str, code: u16) {
    assert_eq!(err.reason(), reason, "{err} ({err:?})");
    assert_eq!(err.code(), code, "{err}");
}

/// A small, valid OCI image manifest and its digest.
fn oci_manifest(seed: &str) -> (Vec<u8>, String) {
    let config = format!("{{\"seed\":\"{seed}\"}}");
    let body = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": sha256_digest(config.as_bytes()),
            "size": config.len(),
        },
        "layers": [],
    }))
    .unwrap();
    let digest = sha256_digest(&body);
    (body, digest)
}

fn manifest_reply(body: &[u8], digest: &str) -> Reply {
    Reply::ok(OCI_MANIFEST, body.to_vec()).header("Docker-Content-Digest", digest)
}

// ------------------------------------------------------------ real registry ---

#[tokio::test]
async fn plain_registry_every_kind_by_tag_and_digest_with_configs_and_tags() {
    let registry = RegistryOptions::plain().seeded_read_only().start();
    let seeded = registry.seeded().unwrap();
    let addr = registry.addr();
    let (config, recorder) = recorded(fast());
    let c = client_with(config, true, None, None);

    // the first request: HTTPS fails (plain registry), HTTP answers and is remembered
    let mark = registry.mark();
    let head = c.head_manifest(addr, "lab/oci-single", "v1").await.unwrap();
    let got = c.get_manifest(addr, "lab/oci-single", "v1").await.unwrap();
    assert_eq!(head.digest, got.digest);
    assert_eq!(
        summary(&registry.requests_since_async(mark).await),
        [
            "HEAD /v2/lab/oci-single/manifests/v1 200",
            "GET /v2/lab/oci-single/manifests/v1 200"
        ]
    );
    let events: Vec<(String, PathKind, Option<u16>)> = recorder
        .take()
        .into_iter()
        .map(|(_, m, k, s)| (m, k, s))
        .collect();
    assert_eq!(
        events,
        [
            ("HEAD".to_string(), PathKind::Manifest, None),
            ("HEAD".to_string(), PathKind::Manifest, Some(200)),
            ("GET".to_string(), PathKind::Manifest, Some(200)),
        ],
        "one failed HTTPS attempt, then HTTP only"
    );

    let mut requests = 0;
    for (repo, tag, image) in seeded.tags() {
        let top = image.manifest();
        for reference in [tag, image.digest()] {
            let head = c.head_manifest(addr, repo, reference).await.unwrap();
            assert_eq!(head.digest, image.digest(), "HEAD {repo}:{reference}");
            assert_eq!(head.media_type.as_deref(), Some(image.media_type()));
            assert_eq!(head.size, Some(top.bytes.len() as u64));
            let m = c.get_manifest(addr, repo, reference).await.unwrap();
            assert_eq!(m.digest, image.digest(), "GET {repo}:{reference}");
            assert_eq!(m.media_type, image.media_type());
            assert_eq!(m.bytes.as_ref(), top.bytes.as_slice());
            requests += 2;
        }
        for child in image.images() {
            if image.is_index() {
                let m = c.get_manifest(addr, repo, child.digest()).await.unwrap();
                assert_eq!(m.digest, child.digest());
                assert_eq!(m.media_type, child.media_type());
                assert_eq!(m.bytes.as_ref(), child.manifest.bytes.as_slice());
                requests += 1;
            }
            let config = c
                .get_blob(addr, repo, &child.config.digest, MAX_CONFIG_BYTES)
                .await
                .unwrap();
            assert_eq!(config.as_ref(), child.config.bytes.as_slice());
            requests += 1;
        }
    }
    let mut expected_tags: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (repo, tag, _) in STANDARD_TAGS {
        expected_tags.entry(repo).or_default().insert(tag);
    }
    for (repo, tags) in &expected_tags {
        let listed = c.list_tags(addr, repo).await.unwrap();
        assert_eq!(listed.len(), tags.len(), "{repo}: {listed:?}");
        assert_eq!(
            &listed.iter().map(String::as_str).collect::<BTreeSet<_>>(),
            tags
        );
        requests += 1;
    }
    // exactly one exchange per call: no pings, no retries, no HTTPS attempts any more
    let events = recorder.take();
    assert_eq!(events.len(), requests, "{events:?}");
    assert!(
        events
            .iter()
            .all(|(r, _, _, s)| r == addr && *s == Some(200))
    );
}

#[tokio::test]
async fn plain_registry_not_found_invalid_and_http_only_without_insecure() {
    let registry = RegistryOptions::plain().seeded_read_only().start();
    let addr = registry.addr();
    let c = insecure_client();

    let err = c
        .get_manifest(addr, "lab/oci-single", "nope")
        .await
        .unwrap_err();
    assert_reason(&err, "NotFound", 404);
    assert_eq!(
        err.to_string(),
        format!(r#"dockerimage.image.openshift.io "{addr}/lab/oci-single:nope" not found"#)
    );
    let err = c
        .head_manifest(addr, "lab/no-such-repo", "v1")
        .await
        .unwrap_err();
    assert_reason(&err, "NotFound", 404);
    let missing = sha256_digest(b"missing");
    let err = c
        .head_manifest(addr, "lab/oci-single", &missing)
        .await
        .unwrap_err();
    assert_reason(&err, "NotFound", 404);
    assert!(err.to_string().contains(&format!("@{missing}")), "{err}");
    let err = c.list_tags(addr, "lab/no-such-repo").await.unwrap_err();
    assert_reason(&err, "NotFound", 404);
    // a missing config blob is an internal error, as upstream reports it
    let err = c
        .get_blob(addr, "lab/oci-single", &missing, MAX_CONFIG_BYTES)
        .await
        .unwrap_err();
    assert_reason(&err, "InternalError", 500);
    assert!(!err.is_transient());
    assert!(err.to_string().contains(&missing), "{err}");

    // names that cannot go into a request never leave the process
    for (repo, reference) in [
        ("Lab/X", "v1"),
        ("lab/x", "bad tag"),
        ("lab/x", "sha256:abc"),
    ] {
        let err = c.head_manifest(addr, repo, reference).await.unwrap_err();
        assert_reason(&err, "Invalid", 422);
    }

    // a secure client at a plain-HTTP registry: upstream's BadRequest, and no retries
    let (config, recorder) = recorded(fast());
    let secure = client_with(config, false, None, None);
    let err = secure
        .head_manifest(addr, "lab/oci-single", "v1")
        .await
        .unwrap_err();
    assert_reason(&err, "BadRequest", 400);
    assert_eq!(
        err.to_string(),
        format!(
            "the repository {addr}/lab/oci-single is HTTP only and requires the insecure flag to import"
        )
    );
    assert!(!err.is_transient());
    assert_eq!(recorder.take().len(), 1, "one attempt only");
}

#[tokio::test]
async fn tls_htpasswd_registry_ca_credentials_and_insecure() {
    let registry = RegistryOptions::tls_htpasswd().seeded_read_only().start();
    let seeded = registry.seeded().unwrap();
    let addr = registry.addr();
    let ca = registry.ca_pem().unwrap();
    let digest = seeded.digest("lab/oci-index", "latest");

    // the CA trusted, the admin's credentials: Basic after the first challenge, then up front
    let c = client_with(fast(), false, Some((ADMIN_USER, ADMIN_PASSWORD)), Some(ca));
    let mark = registry.mark();
    let head = c
        .head_manifest(addr, "lab/oci-index", "latest")
        .await
        .unwrap();
    assert_eq!(head.digest, digest);
    let m = c.get_manifest(addr, "lab/oci-index", digest).await.unwrap();
    assert_eq!(m.digest, digest);
    let tags = c.list_tags(addr, "lab/oci-index").await.unwrap();
    assert_eq!(tags, ["latest"]);
    assert_eq!(
        summary(&registry.requests_since_async(mark).await),
        [
            "HEAD /v2/lab/oci-index/manifests/latest 401",
            "HEAD /v2/lab/oci-index/manifests/latest 200",
            format!("GET /v2/lab/oci-index/manifests/{digest} 200").as_str(),
            "GET /v2/lab/oci-index/tags/list 200",
        ]
    );

    // a reader may pull too
    let reader = client_with(
        fast(),
        false,
        Some((READER_USER, READER_PASSWORD)),
        Some(ca),
    );
    reader
        .head_manifest(addr, "lab/multi", "oci-index")
        .await
        .unwrap();

    let image = format!("{addr}/lab/oci-index:latest");
    let wrong = client_with(fast(), false, Some((ADMIN_USER, "wrong")), Some(ca));
    let err = wrong
        .head_manifest(addr, "lab/oci-index", "latest")
        .await
        .unwrap_err();
    assert_reason(&err, "Unauthorized", 401);
    assert_eq!(
        err.to_string(),
        format!(r#"incorrect username or password for image "{image}""#)
    );
    assert!(!err.to_string().contains("wrong"));
    let anonymous = client_with(fast(), false, None, Some(ca));
    let err = anonymous
        .get_manifest(addr, "lab/oci-index", "latest")
        .await
        .unwrap_err();
    assert_reason(&err, "Unauthorized", 401);
    assert_eq!(
        err.to_string(),
        format!(
            r#"you may not have access to the container image "{image}" and did not have credentials to the repository"#
        )
    );

    // insecure: no CA needed
    let insecure = client_with(fast(), true, Some((ADMIN_USER, ADMIN_PASSWORD)), None);
    let m = insecure
        .get_manifest(addr, "lab/oci-index", "latest")
        .await
        .unwrap();
    assert_eq!(m.digest, digest);

    // secure without the CA: a certificate error, not retried
    let (config, recorder) = recorded(fast());
    let untrusting = client_with(config, false, Some((ADMIN_USER, ADMIN_PASSWORD)), None);
    let err = untrusting
        .head_manifest(addr, "lab/oci-index", "latest")
        .await
        .unwrap_err();
    assert_reason(&err, "InternalError", 500);
    assert!(!err.is_transient(), "{err}");
    assert!(err.to_string().contains("certificate"), "{err}");
    assert_eq!(recorder.take().len(), 1);
}

#[tokio::test]
async fn token_registry_one_token_per_repository_reused_and_never_shared() {
    let registry = RegistryOptions::token().seeded_read_only().start();
    let seeded = registry.seeded().unwrap();
    let ts = registry.token_server().unwrap();
    let addr = registry.addr();
    let digest = seeded.digest("lab/multi", "oci-index");
    let head_path = "HEAD /v2/lab/multi/manifests/oci-index";

    let c = client_with(fast(), true, Some((READER_USER, READER_PASSWORD)), None);
    let mark = registry.mark();
    let tmark = ts.mark();
    for _ in 0..10 {
        let head = c
            .head_manifest(addr, "lab/multi", "oci-index")
            .await
            .unwrap();
        assert_eq!(head.digest, digest);
    }
    let tokens = ts.requests_since(tmark);
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert_eq!(tokens[0].user.as_deref(), Some(READER_USER));
    assert_eq!(tokens[0].service.as_deref(), Some(ts.service()));
    assert_eq!(tokens[0].scopes, ["repository:lab/multi:pull"]);
    let reqs = summary(&registry.requests_since_async(mark).await);
    let mut expected = vec![format!("{head_path} 401")];
    expected.extend((0..10).map(|_| format!("{head_path} 200")));
    assert_eq!(reqs, expected, "10 HEADs: one 401, then 10 with the token");

    // once cached: exactly one request per call, no token requests
    let mark = registry.mark();
    let tmark = ts.mark();
    for _ in 0..10 {
        c.head_manifest(addr, "lab/multi", "oci-index")
            .await
            .unwrap();
    }
    assert_eq!(ts.requests_since(tmark).len(), 0);
    assert_eq!(
        summary(&registry.requests_since_async(mark).await),
        vec![format!("{head_path} 200"); 10]
    );

    // another repository: the realm is known, so its token comes first (no 401)
    let mark = registry.mark();
    let tmark = ts.mark();
    let m = c.get_manifest(addr, "lab/oci-single", "v1").await.unwrap();
    assert_eq!(m.digest, seeded.digest("lab/oci-single", "v1"));
    let tokens = ts.requests_since(tmark);
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].scopes, ["repository:lab/oci-single:pull"]);
    assert_eq!(
        summary(&registry.requests_since_async(mark).await),
        ["GET /v2/lab/oci-single/manifests/v1 200"]
    );

    // two clients with different credentials each get their own token
    let admin = client_with(fast(), true, Some((ADMIN_USER, ADMIN_PASSWORD)), None);
    let reader = client_with(fast(), true, Some((READER_USER, READER_PASSWORD)), None);
    let tmark = ts.mark();
    admin
        .head_manifest(addr, "lab/multi", "oci-index")
        .await
        .unwrap();
    reader
        .head_manifest(addr, "lab/multi", "oci-index")
        .await
        .unwrap();
    admin
        .head_manifest(addr, "lab/multi", "oci-index")
        .await
        .unwrap();
    reader
        .head_manifest(addr, "lab/multi", "oci-index")
        .await
        .unwrap();
    let users: Vec<Option<String>> = ts
        .requests_since(tmark)
        .into_iter()
        .map(|r| r.user)
        .collect();
    assert_eq!(
        users,
        [Some(ADMIN_USER.to_string()), Some(READER_USER.to_string())]
    );

    // Unauthorized, in upstream's three wordings
    let image = format!("{addr}/lab/oci-single:v1");
    let multi_only = client_with(fast(), true, Some((MULTI_USER, MULTI_PASSWORD)), None);
    multi_only
        .head_manifest(addr, "lab/multi", "oci-index")
        .await
        .unwrap();
    let err = multi_only
        .head_manifest(addr, "lab/oci-single", "v1")
        .await
        .unwrap_err();
    assert_reason(&err, "Unauthorized", 401);
    assert_eq!(
        err.to_string(),
        format!(r#"you may not have access to the container image "{image}""#)
    );
    let wrong = client_with(fast(), true, Some((READER_USER, "nope")), None);
    let err = wrong
        .head_manifest(addr, "lab/oci-single", "v1")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(r#"incorrect username or password for image "{image}""#)
    );
    let anonymous = client_with(fast(), true, None, None);
    let err = anonymous
        .head_manifest(addr, "lab/oci-single", "v1")
        .await
        .unwrap_err();
    assert_reason(&err, "Unauthorized", 401);
    assert!(
        err.to_string()
            .ends_with("and did not have credentials to the repository"),
        "{err}"
    );
}

#[tokio::test]
async fn token_registry_concurrent_requests_share_one_token_and_refresh_before_expiry() {
    let registry = RegistryOptions::token().seeded_read_only().start();
    let ts = registry.token_server().unwrap();
    let addr = registry.addr();

    // ten at once on a fresh client: all meet the challenge, one token request serves them
    let c = client_with(fast(), true, Some((READER_USER, READER_PASSWORD)), None);
    let tmark = ts.mark();
    let heads = (0..10).map(|_| c.head_manifest(addr, "lab/multi", "docker-list"));
    for r in futures::future::join_all(heads).await {
        r.unwrap();
    }
    assert_eq!(ts.requests_since(tmark).len(), 1);

    // a 2 s token is refreshed 1 s early, without another 401
    ts.set_expires_in(2);
    let c = client_with(fast(), true, Some((READER_USER, READER_PASSWORD)), None);
    let mark = registry.mark();
    let tmark = ts.mark();
    c.head_manifest(addr, "lab/multi", "docker-list")
        .await
        .unwrap();
    c.head_manifest(addr, "lab/multi", "docker-list")
        .await
        .unwrap();
    assert_eq!(ts.requests_since(tmark).len(), 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    c.head_manifest(addr, "lab/multi", "docker-list")
        .await
        .unwrap();
    assert_eq!(ts.requests_since(tmark).len(), 2);
    let path = "HEAD /v2/lab/multi/manifests/docker-list";
    assert_eq!(
        summary(&registry.requests_since_async(mark).await),
        [
            format!("{path} 401"),
            format!("{path} 200"),
            format!("{path} 200"),
            format!("{path} 200"),
        ]
    );
}

#[tokio::test]
async fn import_engine_runs_on_the_transport_through_token_auth() {
    let registry = RegistryOptions::token().seeded_read_only().start();
    let seeded = registry.seeded().unwrap();
    let ts = registry.token_server().unwrap();
    let addr = registry.addr();
    let client = Arc::new(client_with(
        fast(),
        true,
        Some((READER_USER, READER_PASSWORD)),
        None,
    ));
    let source = RepositorySource::new(client, addr, "lab/multi");
    let written = format!("{addr}/lab/multi");
    let platform = Platform::default();
    let lists = ListResolutions::default();
    let list = seeded.digest("lab/multi", "oci-index");
    let mut req = ImageImport::new(format!("{written}:oci-index"), Mode::PreserveOriginal);

    let mark = registry.mark();
    let tmark = ts.mark();
    let known: HashMap<String, bool> = HashMap::new();
    let outcome = engine::import(
        &source,
        &req,
        &platform,
        &known,
        &lists,
        jiff::Timestamp::now(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.image(), list);
    let Outcome::Imported { images, .. } = &outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(images.len(), 4, "the list and its three children");
    let requests = summary(&registry.requests_since_async(mark).await);
    // a 401, the list, then manifest and config per child
    assert_eq!(requests.len(), 1 + 1 + 3 * 2, "{requests:#?}");
    assert_eq!(ts.requests_since(tmark).len(), 1);

    // the scheduled re-check: one HEAD with the cached token
    req.current_image = Some(list.to_string());
    let mark = registry.mark();
    let outcome = engine::import(
        &source,
        &req,
        &platform,
        &known,
        &lists,
        jiff::Timestamp::now(),
    )
    .await
    .unwrap();
    assert!(matches!(outcome, Outcome::Unchanged { .. }), "{outcome:?}");
    assert_eq!(
        summary(&registry.requests_since_async(mark).await),
        ["HEAD /v2/lab/multi/manifests/oci-index 200"]
    );
    assert_eq!(ts.requests_since(tmark).len(), 1);

    // failures keep the transport's reasons
    req.from = format!("{written}:missing").into();
    req.current_image = None;
    let err = engine::import(
        &source,
        &req,
        &platform,
        &known,
        &lists,
        jiff::Timestamp::now(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.reason, "NotFound", "{err:?}");
}

// ------------------------------------------------------------- fault server ---

#[tokio::test]
async fn too_many_requests_waits_for_retry_after() {
    let (body, digest) = oci_manifest("429");
    let calls = AtomicUsize::new(0);
    let server = {
        let (body, digest) = (body.clone(), digest.clone());
        FaultServer::start(move |_req: &Seen| {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Reply::new(429).header("Retry-After", "1")
            } else {
                manifest_reply(&body, &digest)
            }
        })
    };
    let c = insecure_client();
    let started = Instant::now();
    let m = c.get_manifest(server.addr(), "a/b", "v1").await.unwrap();
    assert_eq!(m.digest, digest);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let served = server.requests_to("/v2/a/b/manifests/v1");
    assert_eq!(served.len(), 2);
    assert!(served[1].request.at - served[0].request.at >= Duration::from_secs(1));

    // always 429: three attempts, each wait capped at max_retry_after, then TooManyRequests
    let server = FaultServer::start(|_req: &Seen| Reply::new(429).header("Retry-After", "100"));
    let c = client_with(
        RegistryConfig {
            max_retry_after: Duration::from_millis(300),
            ..fast()
        },
        true,
        None,
        None,
    );
    let started = Instant::now();
    let err = c
        .head_manifest(server.addr(), "a/b", "v1")
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_reason(&err, "TooManyRequests", 429);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(100)));
    assert!(err.is_transient());
    assert_eq!(server.count("/v2/a/b/manifests/v1"), 3);
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_secs(10),
        "{took:?}"
    );

    // Retry-After as an HTTP date
    let calls = AtomicUsize::new(0);
    let server = {
        let (body, digest) = (body.clone(), digest.clone());
        FaultServer::start(move |_req: &Seen| {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(2);
                let date = jiff::fmt::rfc2822::DateTimePrinter::new()
                    .timestamp_to_rfc9110_string(&at)
                    .unwrap();
                Reply::new(429).header("Retry-After", &date)
            } else {
                manifest_reply(&body, &digest)
            }
        })
    };
    let started = Instant::now();
    insecure_client()
        .get_manifest(server.addr(), "a/b", "v1")
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn slow_headers_and_slow_bodies_time_out() {
    let (body, digest) = oci_manifest("slow");
    let server = {
        let (body, digest) = (body.clone(), digest.clone());
        FaultServer::start(move |req: &Seen| match req.path.as_str() {
            "/v2/a/b/manifests/slow-head" => {
                manifest_reply(&body, &digest).delay(Duration::from_secs(3))
            }
            _ => Reply::new(200)
                .header("Content-Type", OCI_MANIFEST)
                .chunked(&b" "[..], 200, Duration::from_millis(50)),
        })
    };
    let config = RegistryConfig {
        timeout: Duration::from_millis(400),
        ..fast()
    };
    let c = client_with(config.clone(), true, None, None);
    let started = Instant::now();
    let err = c
        .get_manifest(server.addr(), "a/b", "slow-head")
        .await
        .unwrap_err();
    assert_reason(&err, "Timeout", 504);
    assert!(err.is_transient());
    assert!(
        err.to_string().contains(server.addr()) && err.to_string().contains("0.4s"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // three attempts, each an HTTPS try (no scheme learnt yet) and an HTTP request the
    // client gave up on; the server logs them when its delay is over
    let served = server.wait_done(6, Duration::from_secs(10));
    assert_eq!(
        served.iter().filter(|s| s.request.method == "GET").count(),
        3
    );

    // headers in time, the body trickles: the timeout covers reading it
    let c = client_with(
        RegistryConfig {
            max_retries: 0,
            ..config
        },
        true,
        None,
        None,
    );
    let started = Instant::now();
    let err = c
        .get_manifest(server.addr(), "a/b", "trickle")
        .await
        .unwrap_err();
    assert_reason(&err, "Timeout", 504);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn digests_are_verified() {
    let (body, digest) = oci_manifest("digest");
    let (_, other) = oci_manifest("other");
    let config = b"{\"config\":true}".to_vec();
    let config_digest = sha256_digest(&config);
    let server = {
        let (body, other, config) = (body.clone(), other.clone(), config.clone());
        FaultServer::start(move |req: &Seen| match req.path.as_str() {
            // announces a digest the body does not have
            "/v2/a/b/manifests/lying" => manifest_reply(&body, &other),
            // served for any digest
            p if p.starts_with("/v2/a/b/manifests/sha256:") => {
                Reply::ok(OCI_MANIFEST, body.clone())
            }
            // the config for its own digest, and for any other digest too
            p if p.starts_with("/v2/a/b/blobs/") => {
                Reply::ok("application/octet-stream", config.clone())
            }
            _ => Reply::new(404),
        })
    };
    let c = insecure_client();
    let err = c
        .get_manifest(server.addr(), "a/b", "lying")
        .await
        .unwrap_err();
    assert_reason(&err, "InternalError", 500);
    assert!(!err.is_transient());
    let message = err.to_string();
    assert!(
        message.contains(&digest) && message.contains(&other) && message.contains("integrity"),
        "{message}"
    );
    // asked by digest, served other bytes
    let err = c
        .get_manifest(server.addr(), "a/b", &other)
        .await
        .unwrap_err();
    assert_reason(&err, "InternalError", 500);
    assert!(err.to_string().contains(&other), "{err}");
    // the right digest passes (no Docker-Content-Digest: the body's own digest is used)
    let m = c.get_manifest(server.addr(), "a/b", &digest).await.unwrap();
    assert_eq!(m.digest, digest);
    // blobs too
    let wanted = sha256_digest(b"another config");
    let err = c
        .get_blob(server.addr(), "a/b", &wanted, MAX_CONFIG_BYTES)
        .await
        .unwrap_err();
    assert_reason(&err, "InternalError", 500);
    let message = err.to_string();
    assert!(
        message.contains(&wanted) && message.contains(&config_digest),
        "{message}"
    );
    let fine = c
        .get_blob(server.addr(), "a/b", &config_digest, MAX_CONFIG_BYTES)
        .await
        .unwrap();
    assert_eq!(fine.as_ref(), config.as_slice());
}

#[tokio::test]
async fn oversized_bodies_are_refused_while_reading() {
    let server = FaultServer::start(|req: &Seen| match req.path.as_str() {
        "/v2/a/b/manifests/declared" => Reply::ok(OCI_MANIFEST, vec![b' '; MAX_MANIFEST_BYTES + 1]),
        // 64 MiB in 1 MiB chunks, no Content-Length
        _ => Reply::new(200)
            .header("Content-Type", OCI_MANIFEST)
            .chunked(vec![b' '; 1 << 20], 64, Duration::ZERO),
    });
    let c = insecure_client();
    let err = c
        .get_manifest(server.addr(), "a/b", "declared")
        .await
        .unwrap_err();
    assert_reason(&err, "InternalError", 500);
    assert!(!err.is_transient());
    assert!(
        err.to_string()
            .contains("manifest is larger than the limit of 4194304 bytes"),
        "{err}"
    );

    let started = Instant::now();
    let err = c
        .get_manifest(server.addr(), "a/b", "endless")
        .await
        .unwrap_err();
    assert_reason(&err, "InternalError", 500);
    assert!(err.to_string().contains("larger than the limit"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // the client hung up: the server could not write all 64 MiB
    server.wait_done(1, Duration::from_secs(10));
    let endless = server.requests_to("/v2/a/b/manifests/endless");
    assert_eq!(endless.len(), 1, "not retried");
    assert!(!endless[0].complete);
    assert!(
        endless[0].body_written < 64 << 20,
        "{}",
        endless[0].body_written
    );

    // a blob over its caller's limit
    let err = c
        .get_blob(server.addr(), "a/b", &sha256_digest(b"x"), 1024)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("blob is larger than the limit of 1024 bytes"),
        "{err}"
    );
}

#[tokio::test]
async fn redirects_loops_hops_and_forbidden_targets() {
    let config = b"{}".to_vec();
    let config_digest = sha256_digest(&config);
    let cdn = {
        let config = config.clone();
        FaultServer::start(move |req: &Seen| match req.path.as_str() {
            // a signed URL that keeps redirecting to itself
            "/cdn/loop" => Reply::redirect(302, "/cdn/loop?signature=s3cr3t-sig"),
            _ => Reply::ok("application/octet-stream", config.clone()),
        })
    };
    let cdn_addr = cdn.addr().to_string();
    let blob_path = format!("/v2/a/b/blobs/{config_digest}");
    let server = {
        let blob_path = blob_path.clone();
        FaultServer::start(move |req: &Seen| {
            if req.header("authorization").is_none() {
                return Reply::new(401).header("WWW-Authenticate", r#"Basic realm="fault""#);
            }
            match req.path.as_str() {
                p if p == blob_path => Reply::redirect(
                    307,
                    &format!("http://{cdn_addr}/cdn/blob?signature=s3cr3t-sig"),
                ),
                p if p.starts_with("/v2/a/cdnloop/") => Reply::redirect(
                    307,
                    &format!("http://{cdn_addr}/cdn/loop?signature=s3cr3t-sig"),
                ),
                p if p.starts_with("/v2/a/loop/") => Reply::redirect(302, "/a"),
                "/a" => Reply::redirect(302, "/b"),
                "/b" => Reply::redirect(302, "/a"),
                "/v2/a/hops/manifests/v1" => Reply::redirect(302, "/hop/1"),
                p if p.starts_with("/hop/") => {
                    let n: u32 = p[5..].parse().unwrap();
                    Reply::redirect(302, &format!("/hop/{}", n + 1))
                }
                "/v2/a/metadata/manifests/v1" => {
                    Reply::redirect(302, "http://169.254.169.254/latest/meta-data/")
                }
                "/v2/a/named/manifests/v1" => {
                    Reply::redirect(302, "http://metadata.test/latest/meta-data/")
                }
                _ => Reply::new(404),
            }
        })
    };
    let addr = server.addr();
    let config_with_dns = RegistryConfig {
        dns_overrides: [(
            "metadata.test".to_string(),
            vec!["169.254.169.254".parse().unwrap()],
        )]
        .into_iter()
        .collect(),
        ..fast()
    };
    let c = client_with(config_with_dns, true, Some(("user", "pass")), None);

    // a blob redirected to another host: followed, without our credentials
    let blob = c
        .get_blob(addr, "a/b", &config_digest, MAX_CONFIG_BYTES)
        .await
        .unwrap();
    assert_eq!(blob.as_ref(), config.as_slice());
    let at_registry = server.requests_to(&blob_path);
    assert_eq!(at_registry.len(), 2, "a 401, then with Basic");
    assert!(at_registry[1].request.header("authorization").is_some());
    let at_cdn = cdn.requests_to("/cdn/blob");
    assert_eq!(at_cdn.len(), 1);
    assert_eq!(at_cdn[0].request.header("authorization"), None);

    let err = c
        .get_blob(
            addr,
            "a/loop",
            "sha256:0000000000000000000000000000000000000000000000000000000000000000",
            10,
        )
        .await
        .unwrap_err();
    assert_reason(&err, "InternalError", 500);
    assert!(err.to_string().contains("redirect loop"), "{err}");
    assert!(!err.is_transient());
    assert_eq!(server.count("/a"), 1);
    assert_eq!(server.count("/b"), 1);

    let err = c.head_manifest(addr, "a/hops", "v1").await.unwrap_err();
    assert!(
        err.to_string().contains("too many redirects (more than 5)"),
        "{err}"
    );
    assert_eq!(server.count("/hop/5"), 1);
    assert_eq!(server.count("/hop/6"), 0);

    for repo in ["a/metadata", "a/named"] {
        let err = c.head_manifest(addr, repo, "v1").await.unwrap_err();
        assert_reason(&err, "Forbidden", 403);
        assert!(!err.is_transient());
        let message = err.to_string();
        assert!(
            message.contains("169.254.169.254") && message.contains("cloud metadata"),
            "{message}"
        );
    }
    // a signed redirect URL is named without its query (the signature) in messages
    let err = c
        .get_blob(addr, "a/cdnloop", &config_digest, MAX_CONFIG_BYTES)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "redirect loop: http://{}/cdn/loop was visited before",
            cdn.addr()
        )),
        "{message}"
    );
    assert!(
        !message.contains("s3cr3t") && !format!("{err:?}").contains("s3cr3t"),
        "{err:?}"
    );
    assert_eq!(cdn.count("/cdn/loop"), 1);
}

#[tokio::test]
async fn blocked_allowed_and_metadata_registries_are_refused_before_any_request() {
    let server = FaultServer::start(|_req: &Seen| Reply::new(500));
    let addr = server.addr();
    let (config, recorder) = recorded(RegistryConfig {
        blocked: BlockedRegistries::new(["127.0.0.1:*"]),
        dns_overrides: [(
            "metadata.test".to_string(),
            vec!["169.254.169.254".parse().unwrap()],
        )]
        .into_iter()
        .collect(),
        ..fast()
    });
    let c = client_with(config, true, None, None);
    let err = c.head_manifest(addr, "a/b", "v1").await.unwrap_err();
    assert_reason(&err, "Forbidden", 403);
    assert!(
        err.to_string()
            .starts_with(&format!("forbidden: registry {addr} blocked")),
        "{err}"
    );
    for registry in ["169.254.169.254", "[fe80::1]:5000", "metadata.test:5000"] {
        let err = c.head_manifest(registry, "a/b", "v1").await.unwrap_err();
        assert_reason(&err, "Forbidden", 403);
    }

    let allowed = AllowedRegistries::new(
        &[imagestream_operator::config::RegistryLocation {
            domain_name: "quay.io".into(),
            insecure: None,
        }],
        None,
    )
    .unwrap();
    let c = client_with(
        RegistryConfig {
            allowed: Some(allowed),
            observer: Some(recorder.clone()),
            ..fast()
        },
        false,
        None,
        None,
    );
    let err = c.list_tags(addr, "a/b").await.unwrap_err();
    assert_reason(&err, "Forbidden", 403);
    assert_eq!(
        err.to_string(),
        format!(
            r#"importing images from registry "{addr}" is forbidden: registry "{addr}" not allowed by whitelist: "quay.io:443""#
        )
    );
    // nothing reached the server; the guard for names needs a connection attempt, nothing else
    assert!(server.served().is_empty(), "{:?}", server.served());
    let events = recorder.take();
    assert!(
        events
            .iter()
            .all(|(r, _, _, s)| r == "metadata.test:5000" && s.is_none()),
        "{events:?}"
    );
}

#[tokio::test]
async fn malformed_json_unknown_media_types_and_head_without_digest() {
    let (body, digest) = oci_manifest("malformed");
    let server = {
        let (body, digest) = (body.clone(), digest.clone());
        FaultServer::start(move |req: &Seen| {
            let addr = req.header("host").unwrap_or_default().to_string();
            match req.path.as_str() {
                "/v2/a/b/manifests/broken" => {
                    Reply::ok(OCI_MANIFEST, &b"{\"schemaVersion\": 2,"[..])
                }
                "/v2/a/b/manifests/unknown" => Reply::ok(
                    "application/vnd.example.thing+json",
                    &br#"{"schemaVersion":2,"mediaType":"application/vnd.example.thing+json"}"#[..],
                ),
                "/v2/a/b/manifests/html" => Reply::ok("text/html", &b"<html>hello</html>"[..]),
                // a registry that omits Content-Type: the body's mediaType is used
                "/v2/a/b/manifests/untyped" => Reply::new(200)
                    .body(body.clone())
                    .header("Docker-Content-Digest", &digest),
                "/v2/a/b/manifests/nodigest" => Reply::ok(OCI_MANIFEST, body.clone()),
                "/v2/a/b/tags/list" => Reply::ok("application/json", &b"{\"tags\": [1, 2"[..]),
                "/v2/a/tok/manifests/v1" if req.header("authorization").is_none() => {
                    Reply::new(401).header(
                        "WWW-Authenticate",
                        &format!(r#"Bearer realm="http://{addr}/token",service="fault""#),
                    )
                }
                "/token" => Reply::ok("application/json", &b"not json"[..]),
                _ => Reply::new(404),
            }
        })
    };
    let addr = server.addr();
    let c = insecure_client();
    let err = c.get_manifest(addr, "a/b", "broken").await.unwrap_err();
    assert_reason(&err, "InternalError", 500);
    assert!(err.to_string().contains("malformed manifest"), "{err}");
    for reference in ["unknown", "html"] {
        let err = c.get_manifest(addr, "a/b", reference).await.unwrap_err();
        assert_reason(&err, "InternalError", 500);
        assert!(
            err.to_string().contains("unsupported image manifest type")
                || err.to_string().contains("malformed manifest"),
            "{err}"
        );
    }
    let err = c.get_manifest(addr, "a/b", "unknown").await.unwrap_err();
    assert!(
        err.to_string()
            .contains(r#"unsupported image manifest type "application/vnd.example.thing+json""#),
        "{err}"
    );
    let m = c.get_manifest(addr, "a/b", "untyped").await.unwrap();
    assert_eq!(
        (m.media_type.as_str(), m.digest.as_str()),
        (OCI_MANIFEST, digest.as_str())
    );
    let err = c.list_tags(addr, "a/b").await.unwrap_err();
    assert_reason(&err, "InternalError", 500);
    assert!(err.to_string().contains("malformed tag list"), "{err}");

    // a HEAD without Docker-Content-Digest is an error, never a GET
    let err = c.head_manifest(addr, "a/b", "nodigest").await.unwrap_err();
    assert!(err.to_string().contains("Docker-Content-Digest"), "{err}");
    let reqs = server.requests_to("/v2/a/b/manifests/nodigest");
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].request.method, "HEAD");
    // the GET of the same tag computes the digest from the body
    let m = c.get_manifest(addr, "a/b", "nodigest").await.unwrap();
    assert_eq!(m.digest, digest);

    // a token server answering garbage (last: the client now knows the realm)
    let err = c.head_manifest(addr, "a/tok", "v1").await.unwrap_err();
    assert_reason(&err, "InternalError", 500);
    assert!(
        err.to_string().contains("malformed token response"),
        "{err}"
    );
}

#[tokio::test]
async fn server_errors_are_retried_three_attempts_in_all() {
    let (body, digest) = oci_manifest("5xx");
    let flaky = AtomicUsize::new(0);
    let server = {
        let (body, digest) = (body.clone(), digest.clone());
        FaultServer::start(move |req: &Seen| match req.path.as_str() {
            "/v2/a/b/manifests/flaky" => {
                if flaky.fetch_add(1, Ordering::SeqCst) == 0 {
                    Reply::new(500)
                } else {
                    manifest_reply(&body, &digest)
                }
            }
            "/v2/a/b/manifests/down" => Reply::new(503).body(
                &br#"{"errors":[{"code":"UNAVAILABLE","message":"service unavailable"}]}"#[..],
            ),
            "/v2/a/b/manifests/teapot" => Reply::new(418),
            _ => Reply::new(404),
        })
    };
    let addr = server.addr();
    let (config, recorder) = recorded(fast());
    let c = client_with(config, true, None, None);

    let m = c.get_manifest(addr, "a/b", "flaky").await.unwrap();
    assert_eq!(m.digest, digest);
    assert_eq!(server.count("/v2/a/b/manifests/flaky"), 2);
    let statuses: Vec<Option<u16>> = recorder.take().into_iter().map(|e| e.3).collect();
    assert_eq!(
        statuses,
        [None, Some(500), Some(200)],
        "HTTPS attempt, 500, 200"
    );

    let err = c.get_manifest(addr, "a/b", "down").await.unwrap_err();
    assert_reason(&err, "InternalError", 500);
    assert!(err.is_transient());
    assert_eq!(err.http_status(), Some(503));
    assert!(
        err.to_string().contains("UNAVAILABLE: service unavailable"),
        "{err}"
    );
    assert_eq!(server.count("/v2/a/b/manifests/down"), 3);

    // other statuses are not retried
    let err = c.head_manifest(addr, "a/b", "teapot").await.unwrap_err();
    assert_reason(&err, "InternalError", 500);
    assert_eq!(server.count("/v2/a/b/manifests/teapot"), 1);
}

#[tokio::test]
async fn tag_lists_follow_links_and_stop_on_repeats_and_page_caps() {
    let server = FaultServer::start(|req: &Seen| {
        let page = |tags: &[&str]| {
            Reply::ok(
                "application/json",
                serde_json::to_vec(&serde_json::json!({"name": "x", "tags": tags})).unwrap(),
            )
        };
        let last = req
            .query
            .as_deref()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("last=")))
            .map(str::to_string);
        match (req.path.as_str(), last.as_deref()) {
            ("/v2/a/paged/tags/list", None) => page(&["b", "a"])
                .header("Link", r#"</v2/a/paged/tags/list?last=a&n=2>; rel="next""#),
            ("/v2/a/paged/tags/list", Some("a")) => page(&["c"]),
            // ignores `last`: the same page and link forever
            ("/v2/a/stuck/tags/list", _) => {
                page(&["x", "y"]).header("Link", r#"</v2/a/stuck/tags/list?last=y>; rel="next""#)
            }
            // a new page every time
            ("/v2/a/endless/tags/list", l) => {
                let n: u32 = l.map_or(0, |l| l.parse().unwrap());
                page(&[&n.to_string()]).header(
                    "Link",
                    &format!(r#"</v2/a/endless/tags/list?last={}>; rel="next""#, n + 1),
                )
            }
            ("/v2/a/elsewhere/tags/list", _) => page(&["x"]).header(
                "Link",
                r#"<http://example.com/v2/a/elsewhere/tags/list?last=x>; rel="next""#,
            ),
            ("/v2/a/empty/tags/list", _) => Reply::ok(
                "application/json",
                &br#"{"name":"a/empty","tags":null}"#[..],
            ),
            _ => Reply::new(404),
        }
    });
    let addr = server.addr();
    let c = client_with(
        RegistryConfig {
            max_tag_pages: 4,
            ..fast()
        },
        true,
        None,
        None,
    );
    assert_eq!(c.list_tags(addr, "a/paged").await.unwrap(), ["b", "a", "c"]);
    assert_eq!(server.count("/v2/a/paged/tags/list"), 2);
    assert_eq!(c.list_tags(addr, "a/stuck").await.unwrap(), ["x", "y"]);
    assert_eq!(server.count("/v2/a/stuck/tags/list"), 2);
    assert_eq!(
        c.list_tags(addr, "a/endless").await.unwrap(),
        ["0", "1", "2", "3"]
    );
    assert_eq!(server.count("/v2/a/endless/tags/list"), 4);
    let err = c.list_tags(addr, "a/elsewhere").await.unwrap_err();
    assert!(err.to_string().contains("another host"), "{err}");
    assert!(c.list_tags(addr, "a/empty").await.unwrap().is_empty());
}

#[tokio::test]
async fn concurrency_is_limited_per_registry() {
    let (body, digest) = oci_manifest("concurrency");
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let server = {
        let (in_flight, peak) = (in_flight.clone(), peak.clone());
        FaultServer::start(move |_req: &Seen| {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
            in_flight.fetch_sub(1, Ordering::SeqCst);
            manifest_reply(&body, &digest)
        })
    };
    let addr = server.addr().to_string();
    let c = client_with(
        RegistryConfig {
            concurrency_overrides: vec![("127.0.0.1:*".into(), 2)],
            ..fast()
        },
        true,
        None,
        None,
    );
    // learn the scheme first, so every request below is a real one
    c.head_manifest(&addr, "a/b", "v0").await.unwrap();
    let heads = (0..8).map(|i| {
        let c = &c;
        let addr = &addr;
        async move { c.head_manifest(addr, "a/b", &format!("v{i}")).await }
    });
    for r in futures::future::join_all(heads).await {
        r.unwrap();
    }
    assert_eq!(peak.load(Ordering::SeqCst), 2);
}
