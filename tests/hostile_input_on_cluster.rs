//! Hostile input end to end (issue 8, part 3): the operator, running against the test cluster,
//! imports one stream whose tags point at a registry that lies on purpose (huge size claims,
//! 100,000 layers, 50-deep indexes, wrong digests, redirect loops, broken JSON) and at
//! registries on metadata and link-local addresses. Each hostile tag must end with
//! ImportSuccess=False naming what was wrong (size claims excepted: they are recorded, and the
//! image size saturates), the good tag of the same stream must still
//! import and nothing may panic. Memory is bounded by the limits, which the test shows hold
//! (the 25 MB manifest is never read whole, 100,000 terse layers are refused after parsing
//! 1.5 MB): an in-process RSS figure would measure the test's own fixtures. Malformed
//! references and objects are refused by the apiserver or the webhooks with a message.
//!
//! The registry-level behaviour (each guard on its own) is tested in tests/registry_client.rs;
//! this is the view a user gets from the stream.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use imagestream_operator::api::image::Image;
use imagestream_operator::api::image_stream::ImageStream;
use imagestream_operator::controller::Settings;
use support::fault_registry::{FaultServer, Reply, Seen};
use support::images::{OCI_CONFIG, OCI_MANIFEST, sha256_digest};
use support::operator::{Running, create_stream, items, start};

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MAX_MANIFEST_BYTES: usize = imagestream_operator::registry::MAX_MANIFEST_BYTES;

/// Counts panics on any thread of this process (the operator runs in it), keeping the
/// default report.
fn count_panics() -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        seen.fetch_add(1, Ordering::SeqCst);
        default(info);
    }));
    count
}

fn descriptor(media_type: &str, body: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": sha256_digest(body), "size": body.len()})
}

fn config() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {}, "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .expect("config")
}

/// An OCI manifest over the shared config with these layers.
fn manifest(layers: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, &config()),
        "layers": layers,
    }))
    .expect("manifest")
}

fn layer(i: usize, size: Value) -> Value {
    json!({
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        "digest": format!("sha256:{i:064x}"),
        "size": size,
        "annotations": {"org.opencontainers.image.title": format!("layer-{i:0>80}")},
    })
}

fn index(child: &[u8], child_type: &str) -> Vec<u8> {
    let mut entry = descriptor(child_type, child);
    entry["platform"] = json!({"architecture": "amd64", "os": "linux"});
    serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry],
    }))
    .expect("index")
}

/// What the hostile registry serves: `repository:tag` and `repository@digest` to a reply.
struct Hostile {
    manifests: HashMap<String, (String, Vec<u8>)>,
    config: Vec<u8>,
    /// A valid config whose Image would exceed what the apiserver can store.
    bloated_config: Vec<u8>,
    good_digest: String,
    lie_told: String,
    layers_len: usize,
}

fn hostile() -> Hostile {
    let config = config();
    let good = manifest(vec![layer(1, json!(1234))]);
    let mut manifests = HashMap::new();
    let mut serve = |path: &str, media_type: &str, body: Vec<u8>| {
        manifests.insert(path.to_string(), (media_type.to_string(), body));
    };
    serve("good:v1", OCI_MANIFEST, good.clone());
    serve(
        &format!("good@{}", sha256_digest(&good)),
        OCI_MANIFEST,
        good.clone(),
    );
    // sizes near i64::MAX on the config and two layers: claims about blobs never downloaded
    let mut huge: Value = serde_json::from_slice(&manifest(vec![
        layer(1, json!(i64::MAX)),
        layer(2, json!(i64::MAX - 1)),
    ]))
    .expect("json");
    huge["config"]["size"] = json!(i64::MAX);
    serve(
        "huge:v1",
        OCI_MANIFEST,
        serde_json::to_vec(&huge).expect("json"),
    );
    // a size past int64
    let too_big = String::from_utf8(manifest(vec![layer(1, json!(1))]))
        .expect("utf-8")
        .replace("\"size\":1}", "\"size\":18446744073709551615}");
    serve("toobig:v1", OCI_MANIFEST, too_big.into_bytes());
    // 100,000 layers: about 25 MB, over the manifest limit
    let layers = manifest((0..100_000).map(|i| layer(i, json!(1))).collect());
    let layers_len = layers.len();
    serve("layers:v1", OCI_MANIFEST, layers);
    // 100,000 layers written tersely enough to fit under the limit
    let terse: Vec<Value> = (0..100_000)
        .map(|i| json!({"digest": format!("sha256:{i:x}")}))
        .collect();
    serve("terse:v1", OCI_MANIFEST, manifest(terse));
    // index -> index -> ... 50 deep, a real image at the bottom; every level by digest
    let (mut child, mut child_type) = (good.clone(), OCI_MANIFEST);
    for _ in 0..50 {
        let list = index(&child, child_type);
        serve(
            &format!("nested@{}", sha256_digest(&list)),
            OCI_INDEX,
            list.clone(),
        );
        (child, child_type) = (list, OCI_INDEX);
    }
    serve("nested:v1", OCI_INDEX, child);
    // a valid image whose config (2 MB of environment) makes an Image larger than etcd stores
    let bloated_config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": [format!("BLOAT={}", "x".repeat(2_000_000))]},
        "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .expect("config");
    let bloated: Vec<u8> = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, &bloated_config),
        "layers": [layer(1, json!(1))],
    }))
    .expect("manifest");
    serve("bloated:v1", OCI_MANIFEST, bloated);
    serve(
        "broken:v1",
        OCI_MANIFEST,
        b"{\"schemaVersion\": 2, \"config\": {".to_vec(),
    );
    let lie_told = sha256_digest(b"another manifest");
    Hostile {
        manifests,
        config,
        bloated_config,
        good_digest: sha256_digest(&good),
        lie_told,
        layers_len,
    }
}

fn start_registry(h: &Hostile) -> FaultServer {
    let manifests = h.manifests.clone();
    let config = h.config.clone();
    let config_path = format!("/v2/{{}}/blobs/{}", sha256_digest(&config));
    let bloated = h.bloated_config.clone();
    let bloated_path = format!("/v2/bloated/blobs/{}", sha256_digest(&bloated));
    let lie = h.lie_told.clone();
    let good = manifests["good:v1"].1.clone();
    FaultServer::start(move |req: &Seen| {
        let path = req.path.as_str();
        if path == "/v2/" {
            return Reply::ok("application/json", "{}");
        }
        let Some(rest) = path.strip_prefix("/v2/") else {
            return match path {
                // a redirect loop
                "/a" => Reply::redirect(302, "/b"),
                "/b" => Reply::redirect(302, "/a"),
                _ => Reply::new(404),
            };
        };
        let (repository, kind, reference) = match rest.split('/').collect::<Vec<_>>()[..] {
            [r, k, x] => (r, k, x),
            _ => return Reply::new(404),
        };
        match (repository, kind) {
            (_, "blobs") if path == config_path.replace("{}", repository) => {
                Reply::ok(OCI_CONFIG, config.clone())
            }
            (_, "blobs") if path == bloated_path => Reply::ok(OCI_CONFIG, bloated.clone()),
            ("loop", _) => Reply::redirect(302, "/a"),
            // announces a digest the body does not have, or serves other bytes for a digest
            ("mismatch", "manifests") => {
                Reply::ok(OCI_MANIFEST, good.clone()).header("Docker-Content-Digest", &lie)
            }
            (_, "manifests") => {
                let separator = if reference.contains(':') { "@" } else { ":" };
                match manifests.get(&format!("{repository}{separator}{reference}")) {
                    Some((media_type, body)) => Reply::ok(media_type, body.clone())
                        .header("Docker-Content-Digest", &sha256_digest(body)),
                    None => Reply::new(404),
                }
            }
            _ => Reply::new(404),
        }
    })
}

fn tag(name: &str, from: &str, mode: &str) -> Value {
    json!({
        "name": name,
        "from": {"kind": "DockerImage", "name": from},
        "generation": 1,
        "importPolicy": {"insecure": true, "importMode": mode},
    })
}

/// `(reason, message)` of a tag's ImportSuccess=False condition.
fn failure(stream: &ImageStream, tag: &str) -> Option<(String, String)> {
    let c = stream
        .status
        .as_ref()?
        .tag(tag)?
        .conditions
        .first()?
        .clone();
    (c.type_ == "ImportSuccess" && c.status == "False").then_some((c.reason, c.message))
}

#[tokio::test]
async fn hostile_registries_fail_their_tags_with_a_reason_and_spare_the_good_one() {
    let panics = count_panics();
    let h = hostile();
    let server = start_registry(&h);
    let addr = server.addr().to_string();
    let mut settings = Settings::default();
    settings.registry.min_backoff = Duration::from_millis(10);
    settings.registry.max_backoff = Duration::from_millis(50);
    // as on Google Cloud, where the name resolves to the metadata server
    settings.registry.dns_overrides.insert(
        "metadata.google.internal".into(),
        vec!["169.254.169.254".parse().expect("ip")],
    );
    let (admin, ns, _operator) = start("hostile", settings).await;
    let api: Api<ImageStream> = Api::namespaced(admin.clone(), &ns);

    let at = |r: &str| format!("{addr}/{r}");
    let cases: Vec<(&str, String, &str)> = vec![
        ("good", at("good:v1"), "Legacy"),
        ("huge", at("huge:v1"), "Legacy"),
        ("toobig", at("toobig:v1"), "Legacy"),
        ("layers", at("layers:v1"), "Legacy"),
        ("terse", at("terse:v1"), "Legacy"),
        ("nested", at("nested:v1"), "Legacy"),
        ("nested-all", at("nested:v1"), "PreserveOriginal"),
        ("lying", at("mismatch:v1"), "Legacy"),
        (
            "wrong-bytes",
            at(&format!("mismatch@{}", h.lie_told)),
            "Legacy",
        ),
        ("loop", at("loop:v1"), "Legacy"),
        ("broken", at("broken:v1"), "Legacy"),
        ("bloated", at("bloated:v1"), "Legacy"),
        ("metadata", "169.254.169.254/a/b:v1".into(), "Legacy"),
        ("link-local", "169.254.10.10:5000/a/b:v1".into(), "Legacy"),
        ("link-local-v6", "[fe80::1]:5000/a/b:v1".into(), "Legacy"),
        ("gce", "metadata.google.internal/a/b:v1".into(), "Legacy"),
    ];
    let tags: Vec<Value> = cases
        .iter()
        .map(|(n, from, mode)| tag(n, from, mode))
        .collect();
    create_stream(&api, "hostile", Value::Array(tags)).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let stream = loop {
        let stream = api.get("hostile").await.expect("get stream");
        let settled = |t: &str| !items(&stream, t).is_empty() || failure(&stream, t).is_some();
        if cases.iter().all(|(t, _, _)| settled(t)) {
            break stream;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not settled: {}",
            serde_json::to_string_pretty(&stream.status).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let outcome = |t: &str| {
        failure(&stream, t).unwrap_or_else(|| panic!("{t} imported: {:?}", items(&stream, t)))
    };
    let expect = |t: &str, reason: &str, needles: &[&str]| {
        let (got, message) = outcome(t);
        assert_eq!(got, reason, "{t}: {message}");
        for needle in needles {
            assert!(
                message.contains(needle),
                "{t}: {message:?} lacks {needle:?}"
            );
        }
    };

    // the good tag of the same stream imports
    assert_eq!(failure(&stream, "good"), None);
    assert_eq!(items(&stream, "good")[0].image, h.good_digest);

    expect(
        "toobig",
        "InternalError",
        &["malformed manifest", "expected i64"],
    );
    expect(
        "layers",
        "InternalError",
        &["manifest is larger than the limit of 4194304 bytes"],
    );
    expect(
        "terse",
        "InternalError",
        &["100000 layers, more than the limit of 1000"],
    );
    expect("nested", "InternalError", &["contains another list"]);
    expect("nested-all", "InternalError", &["contains another list"]);
    expect("lying", "InternalError", &["integrity", &h.lie_told]);
    expect("wrong-bytes", "InternalError", &[&h.lie_told]);
    expect("loop", "InternalError", &["redirect loop"]);
    expect("broken", "InternalError", &["malformed manifest"]);
    // an Image the apiserver could not store fails its tag only; it once failed the stream's
    // whole reconcile, so no tag's status was ever written
    expect(
        "bloated",
        "RequestEntityTooLarge",
        &[
            "cannot be stored",
            "more than the 1048576 an object may have",
        ],
    );
    expect(
        "metadata",
        "Forbidden",
        &["169.254.169.254", "cloud metadata"],
    );
    expect(
        "link-local",
        "Forbidden",
        &["169.254.10.10 is a link-local address"],
    );
    // the reference grammar has no IPv6 literals: refused before any address is considered
    expect(
        "link-local-v6",
        "Invalid",
        &["\"[fe80::1]:5000/a/b:v1\": invalid name: invalid reference format"],
    );
    expect(
        "gce",
        "Forbidden",
        &["metadata.google.internal resolves to 169.254.169.254"],
    );

    // size claims about blobs never downloaded are recorded, not trusted: the image size
    // saturates (it overflowed before: a panic with overflow checks, negative without)
    let huge = &items(&stream, "huge")[0].image;
    let image = Api::<Image>::all(admin.clone())
        .get(&imagestream_operator::names::image(huge))
        .await
        .expect("the huge Image");
    let layers = &image.spec.docker_image_layers;
    assert_eq!(
        layers.iter().map(|l| l.size).collect::<Vec<_>>(),
        [i64::MAX, i64::MAX - 1]
    );
    let metadata = image.spec.docker_image_metadata().expect("metadata");
    assert_eq!(metadata.map(|m| m.size), Some(i64::MAX));

    // bounded work: a 50-deep index costs the top list and one child, never a walk
    let nested_gets = server
        .http_requests()
        .iter()
        .filter(|s| s.request.path.starts_with("/v2/nested/manifests/"))
        .count();
    assert!(
        nested_gets <= 4,
        "{nested_gets} manifest requests for the nested index"
    );
    // bounded memory: the 25 MB manifest was refused while reading, never read whole
    assert!(h.layers_len > 5 * MAX_MANIFEST_BYTES, "{}", h.layers_len);
    let layers = server.requests_to("/v2/layers/manifests/v1");
    assert!(!layers.is_empty());
    assert!(layers.iter().all(|s| !s.complete), "{layers:?}");

    // nothing reached a forbidden address, nothing panicked
    assert_eq!(panics.load(Ordering::SeqCst), 0, "a panic in the operator");
}

/// A create refused by the apiserver or a webhook: `(code, message)`.
async fn refused<K>(api: &Api<K>, object: Value) -> (u16, String)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = match serde_json::from_value(object.clone()) {
        Ok(o) => o,
        Err(e) => panic!("{object}: {e}"),
    };
    match api.create(&PostParams::default(), &object).await {
        Err(kube::Error::Api(status)) => (status.code, status.message),
        other => panic!("accepted: {other:?}"),
    }
}

fn stream_object(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": name}, "spec": spec,
    })
}

#[tokio::test]
async fn malformed_references_and_objects_are_refused_with_a_message() {
    let panics = count_panics();
    let running = Running::start("hostile-objects").await;
    let streams = running.streams();
    let docker = |name: &str, from: &str, scheduled: bool| {
        json!({"tags": [{"name": name, "from": {"kind": "DockerImage", "name": from},
            "importPolicy": {"scheduled": scheduled}}]})
    };
    let webhook =
        r#"admission webhook "imagestreams.admission.imagestream.io" denied the request: "#;
    let long = format!("r/{}:1", "a".repeat(300));
    let cases = [
        (
            stream_object("a", docker("t", "abc@badid", true)),
            r#"spec.tags[t].from.name: Invalid value: "abc@badid": invalid reference format"#
                .to_string(),
        ),
        (
            stream_object("b", docker("t", "Quay.io/UPPER/x:1", true)),
            r#"spec.tags[t].from.name: Invalid value: "Quay.io/UPPER/x:1": repository name must be lowercase"#
                .to_string(),
        ),
        (
            stream_object("c", docker("t", "a b:c", true)),
            r#"spec.tags[t].from.name: Invalid value: "a b:c": invalid reference format"#
                .to_string(),
        ),
        (
            stream_object("d", docker("t", &long, true)),
            format!(
                r#"spec.tags[t].from.name: Invalid value: "{long}": repository name must not be more than 255 characters"#
            ),
        ),
        (
            stream_object("e", json!({"dockerImageRepository": "a-|///bbb"})),
            r#"spec.dockerImageRepository: Invalid value: "a-|///bbb": invalid reference format"#
                .to_string(),
        ),
    ];
    for (object, wanted) in cases {
        let (code, message) = refused(&streams, object).await;
        assert_eq!(code, 422, "{message}");
        assert!(message.starts_with(webhook), "{message}");
        assert!(message.ends_with(&wanted), "{message}\nwanted: {wanted}");
    }
    // a name no object may have: refused by the apiserver itself
    let (code, message) = refused(&streams, stream_object("Not A Name", json!({}))).await;
    assert_eq!(code, 422, "{message}");
    assert!(
        message.contains(
            r#"metadata.name: Invalid value: "Not A Name": a lowercase RFC 1123 subdomain"#
        ),
        "{message}"
    );
    // a spec of the wrong shape (sent untyped): the webhook cannot decode it
    let raw = Api::<kube::api::DynamicObject>::namespaced_with(
        running.admin.clone(),
        &running.namespace,
        &kube::api::ApiResource::erase::<ImageStream>(&()),
    );
    let (code, message) = refused(&raw, stream_object("h", json!({"tags": "not a list"}))).await;
    assert_eq!(code, 400, "{message}");
    assert!(
        message.ends_with(
            r#"denied the request: the object is not a valid ImageStream: invalid type: string "not a list", expected a sequence"#
        ),
        "{message}"
    );
    assert_eq!(panics.load(Ordering::SeqCst), 0, "a panic in the operator");
    running.finish().await;
}
