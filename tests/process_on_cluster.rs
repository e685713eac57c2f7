//! The operator binary as a process under its ServiceAccount (issue 7): a role missing one
//! rule stops it at start with the rights it lacks; SIGTERM lets imports in flight finish and
//! releases the Lease; imports stuck past the shutdown grace are dropped without a write, and
//! the next start imports them exactly once.

mod support;

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleRef, Subject};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use imagestream_operator::api::image_stream::ImageStream;
use support::fault_registry::{FaultServer, Reply, Seen};
use support::images::{EmptyImage, OCI_CONFIG, OCI_MANIFEST};
use support::operator::items;
use support::{cluster, crds, rbac};

const LEASE: &str = "imagestream-operator";

/// An OCI image served by hand: manifest and config, the manifest after `delay` while
/// `slow` is set.
struct SlowImage {
    server: FaultServer,
    digest: String,
    slow: Arc<AtomicBool>,
}

fn slow_image(delay: Duration) -> SlowImage {
    let EmptyImage {
        config,
        config_digest,
        manifest,
        digest,
    } = EmptyImage::new();
    let slow = Arc::new(AtomicBool::new(true));
    let server = {
        let (digest, slow) = (digest.clone(), slow.clone());
        let blob = format!("/v2/app/blobs/{config_digest}");
        FaultServer::start(move |req: &Seen| {
            if req.path.starts_with("/v2/app/manifests/") {
                let reply = Reply::ok(OCI_MANIFEST, manifest.clone())
                    .header("Docker-Content-Digest", &digest);
                if slow.load(Ordering::SeqCst) {
                    reply.delay(delay)
                } else {
                    reply
                }
            } else if req.path == blob {
                Reply::ok(OCI_CONFIG, config.clone())
            } else if req.path == "/v2/" {
                Reply::ok("application/json", "{}")
            } else {
                Reply::new(404)
            }
        })
    };
    SlowImage {
        server,
        digest,
        slow,
    }
}

fn stream(name: &str, from: &str) -> ImageStream {
    serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": name},
        "spec": {"tags": [{"name": "t", "generation": 1, "importPolicy": {"insecure": true},
            "from": {"kind": "DockerImage", "name": from}}]},
    }))
    .expect("stream")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// `imagestream-operator run` for `namespace`, without webhooks (their configurations are
/// cluster-wide), logging into `dir`.
fn operator(kubeconfig: &Path, namespace: &str, dir: &Path, extra: &[&str]) -> Child {
    let log = |name: &str| std::fs::File::create(dir.join(name)).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_imagestream-operator"))
        .args([
            "run",
            "--namespace",
            namespace,
            "--watch-namespace",
            namespace,
        ])
        .args(["--no-webhooks", "--metrics-port", &free_port().to_string()])
        .args(extra)
        .env("KUBECONFIG", kubeconfig)
        .env(
            "RUST_LOG",
            "info,imagestream_operator=debug,kube_runtime::controller=debug",
        )
        .stdin(Stdio::null())
        .stdout(log("stdout"))
        .stderr(log("stderr"))
        .spawn()
        .expect("start the operator binary")
}

/// What the process wrote (logs go to stdout, errors to stderr).
fn output(dir: &Path) -> String {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    format!("{}{}", read("stdout"), read("stderr"))
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn sigterm(child: &Child) {
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on our own child's pid
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
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

async fn wait_for_holder(admin: &Client, namespace: &str, identity: &str, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while holder(admin, namespace).await.as_deref() != Some(identity) {
        assert!(
            Instant::now() < deadline,
            "{identity} never led; stderr:\n{}",
            output(dir)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the registry has seen a manifest request for each of `count` streams.
fn wait_in_flight(server: &FaultServer, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let manifests = server
            .served()
            .iter()
            .filter(|s| s.request.path.starts_with("/v2/app/manifests/"))
            .count();
        if manifests >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{manifests} of {count} imports started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn a_missing_rule_stops_the_operator_at_start_naming_the_right() {
    cluster::install_crypto_provider();
    let cluster = cluster::cluster().await;
    let admin = cluster.client().await;
    crds::install(&admin).await;
    let ns = cluster::fresh_namespace(&admin, "rights").await;
    // the Roles (webhook CA, Lease) as shipped; the ClusterRole without its status rule
    rbac::bind_deploy_roles(&admin, &ns, "operator", &["deploy/admission-rbac.yaml"]).await;
    let yaml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/rbac.yaml"))
        .expect("deploy/rbac.yaml");
    let documents: Vec<Value> = serde_saphyr::from_multiple(&yaml).expect("YAML");
    let mut role: ClusterRole = serde_json::from_value(documents[0].clone()).expect("ClusterRole");
    let rules = role.rules.as_mut().expect("rules");
    let before = rules.len();
    rules.retain(|r| r.resources.as_deref() != Some(&["imagestreams/status".to_string()][..]));
    assert_eq!(rules.len(), before - 1, "the status rule was not found");
    let name = format!("imagestream-operator-without-status-{ns}");
    role.metadata = ObjectMeta {
        name: Some(name.clone()),
        ..ObjectMeta::default()
    };
    Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &role)
        .await
        .expect("create the ClusterRole");
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "operator".into(),
            namespace: Some(ns.clone()),
            ..Subject::default()
        }]),
    };
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await
        .expect("bind it");
    let account = cluster.service_account_client(&ns, "operator").await;
    let dir = tempfile::tempdir().expect("tempdir");

    // without triggers their role (not bound here) is not asked for
    let mut child = operator(
        account.kubeconfig(),
        &ns,
        dir.path(),
        &["--leader-identity", "a", "--no-image-triggers"],
    );
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let _ = child.kill();
    let stderr = output(dir.path());
    let status = status.unwrap_or_else(|| panic!("still running after 30 s; stderr:\n{stderr}"));
    assert!(!status.success(), "{status}; stderr:\n{stderr}");
    let expected = format!(
        "PermissionsMissing: the operator lacks 2 right(s) that its roles in deploy/ grant: \
         patch imagestreams/status.image.openshift.io in namespace {ns}, update \
         imagestreams/status.image.openshift.io in namespace {ns}; re-apply them"
    );
    assert!(stderr.contains(&expected), "{expected}\nnot in:\n{stderr}");
    // it stopped before doing anything: no Lease taken
    assert_eq!(holder(&admin, &ns).await, None);

    Api::<ClusterRoleBinding>::all(admin.clone())
        .delete(&name, &Default::default())
        .await
        .expect("delete the binding");
    Api::<ClusterRole>::all(admin)
        .delete(&name, &Default::default())
        .await
        .expect("delete the role");
}

#[tokio::test]
async fn sigterm_finishes_imports_in_flight_and_releases_the_lease() {
    cluster::install_crypto_provider();
    let image = slow_image(Duration::from_secs(3));
    let cluster = cluster::cluster().await;
    let admin = cluster.client().await;
    crds::install(&admin).await;
    let ns = cluster::fresh_namespace(&admin, "sigterm").await;
    rbac::bind_deploy_roles(&admin, &ns, "operator", &rbac::OPERATOR_ROLES).await;
    let account = cluster.service_account_client(&ns, "operator").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = operator(
        account.kubeconfig(),
        &ns,
        dir.path(),
        &["--leader-identity", "one"],
    );
    wait_for_holder(&admin, &ns, "one", dir.path()).await;

    let streams = Api::<ImageStream>::namespaced(admin.clone(), &ns);
    let from = format!("{}/app:v1", image.server.addr());
    let names = ["s1", "s2", "s3"];
    for name in names {
        streams
            .create(&PostParams::default(), &stream(name, &from))
            .await
            .expect("create");
    }
    wait_in_flight(&image.server, names.len());
    let signalled = Instant::now();
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let took = signalled.elapsed();
    let stderr = output(dir.path());
    let status = status.unwrap_or_else(|| panic!("no exit within 30 s; stderr:\n{stderr}"));
    assert!(status.success(), "{status}; stderr:\n{stderr}");
    println!("exited {took:?} after SIGTERM");
    // it waited for the registry's answers (3 s), not for the grace (20 s)
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(15),
        "{took:?}"
    );
    assert!(stderr.contains("shutting down"), "{stderr}");

    // every import in flight was written, once
    for name in names {
        let s = streams.get(name).await.expect("get");
        let history: Vec<&str> = items(&s, "t").iter().map(|e| e.image.as_str()).collect();
        assert_eq!(history, [image.digest.as_str()], "{name}");
    }
    // the Lease is free for the next replica at once
    assert_eq!(holder(&admin, &ns).await, None);
}

#[tokio::test]
async fn imports_stuck_past_the_grace_are_dropped_and_redone_once() {
    cluster::install_crypto_provider();
    let image = slow_image(Duration::from_secs(120));
    let cluster = cluster::cluster().await;
    let admin = cluster.client().await;
    crds::install(&admin).await;
    let ns = cluster::fresh_namespace(&admin, "grace").await;
    rbac::bind_deploy_roles(&admin, &ns, "operator", &rbac::OPERATOR_ROLES).await;
    let account = cluster.service_account_client(&ns, "operator").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let grace = ["--shutdown-grace", "2"];
    let mut child = operator(
        account.kubeconfig(),
        &ns,
        dir.path(),
        &[&["--leader-identity", "first"][..], &grace].concat(),
    );
    wait_for_holder(&admin, &ns, "first", dir.path()).await;
    let streams = Api::<ImageStream>::namespaced(admin.clone(), &ns);
    let from = format!("{}/app:v1", image.server.addr());
    streams
        .create(&PostParams::default(), &stream("stuck", &from))
        .await
        .expect("create");
    wait_in_flight(&image.server, 1);
    let before = streams.get("stuck").await.expect("get");

    let signalled = Instant::now();
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let took = signalled.elapsed();
    let stderr = output(dir.path());
    let status = status.unwrap_or_else(|| panic!("no exit within 30 s; stderr:\n{stderr}"));
    assert!(status.success(), "{status}; stderr:\n{stderr}");
    println!("exited {took:?} after SIGTERM with a 2 s grace");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(8),
        "{took:?}"
    );
    assert!(stderr.contains("shutdown grace"), "{stderr}");
    // the dropped import wrote nothing
    let after = streams.get("stuck").await.expect("get");
    assert_eq!(after.resource_version(), before.resource_version());
    assert!(items(&after, "t").is_empty());
    assert_eq!(holder(&admin, &ns).await, None);

    // the next replica imports it, once
    image.slow.store(false, Ordering::SeqCst);
    let dir2 = tempfile::tempdir().expect("tempdir");
    let mut second = operator(
        account.kubeconfig(),
        &ns,
        dir2.path(),
        &["--leader-identity", "second"],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = streams.get("stuck").await.expect("get");
        let history: Vec<String> = items(&s, "t").iter().map(|e| e.image.clone()).collect();
        if !history.is_empty() {
            assert_eq!(history, std::slice::from_ref(&image.digest));
            break;
        }
        assert!(Instant::now() < deadline, "not imported after the restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sigterm(&second);
    assert!(
        wait_exit(&mut second, Duration::from_secs(30)).is_some_and(|s| s.success()),
        "the second replica did not stop cleanly"
    );
}

#[tokio::test]
async fn sigterm_right_after_taking_the_lease_stops_at_once() {
    cluster::install_crypto_provider();
    let cluster = cluster::cluster().await;
    let admin = cluster.client().await;
    crds::install(&admin).await;
    let ns = cluster::fresh_namespace(&admin, "early").await;
    rbac::bind_deploy_roles(&admin, &ns, "operator", &rbac::OPERATOR_ROLES).await;
    let account = cluster.service_account_client(&ns, "operator").await;
    // the caches may still be listing: nothing is in flight, so nothing is waited for
    for round in 0..3 {
        let dir = tempfile::tempdir().expect("tempdir");
        let identity = format!("early-{round}");
        let mut child = operator(
            account.kubeconfig(),
            &ns,
            dir.path(),
            &["--leader-identity", &identity],
        );
        wait_for_holder(&admin, &ns, &identity, dir.path()).await;
        let signalled = Instant::now();
        sigterm(&child);
        let status = wait_exit(&mut child, Duration::from_secs(30));
        let took = signalled.elapsed();
        let log = output(dir.path());
        assert!(
            status.is_some_and(|s| s.success()),
            "{status:?}; output:\n{log}"
        );
        assert!(took < Duration::from_secs(5), "{took:?}; output:\n{log}");
        assert_eq!(holder(&admin, &ns).await, None);
    }
}
