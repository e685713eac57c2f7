//! The registry test support against a real `docker-registry` (distribution 2.8.2): every image
//! kind is served with and without credentials, TLS trust, token auth, exact request counting,
//! tag moves and deletes, and process cleanup.

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use support::images::*;
use support::registry::*;

fn assert_stored(resp: &HttpResponse, blob: &Blob, what: &str) {
    assert_eq!(resp.status, 200, "{what}: {}", resp.text());
    assert!(
        resp.body == blob.bytes,
        "{what}: body differs from the pushed bytes"
    );
    assert_eq!(resp.body_digest(), blob.digest, "{what}: sha256(body)");
    assert_eq!(
        resp.digest().as_deref(),
        Some(blob.digest.as_str()),
        "{what}: Docker-Content-Digest"
    );
}

fn headers<'a>(auth: Option<&'a str>, accept: Option<&'a str>) -> Vec<(&'static str, &'a str)> {
    let mut h = Vec::new();
    if let Some(a) = auth {
        h.push(("Authorization", a));
    }
    if let Some(a) = accept {
        h.push(("Accept", a));
    }
    h
}

/// Fetches every seeded tag by tag and by digest (full Accept list), HEADs it, fetches index
/// children, configs and attestation layers, and lists tags: one request per call with
/// `auth` as the Authorization header. The access log must show exactly these requests.
async fn check_every_kind(reg: &TestRegistry, seeded: &Seeded, auth: Option<&str>) {
    let client = reg.anonymous_client();
    let mut expected = Vec::new();
    let mark = reg.mark();
    let mut get = async |path: String, accept: Option<&str>| {
        let r = client
            .send_raw(Method::GET, &path, &headers(auth, accept), None)
            .await
            .unwrap();
        expected.push(Request::new("GET", &path, r.status));
        r
    };
    for (repo, tag, image) in seeded.tags() {
        let top = image.manifest();
        for reference in [tag, image.digest()] {
            let r = get(
                format!("/v2/{repo}/manifests/{reference}"),
                Some(ACCEPT_ALL),
            )
            .await;
            assert_stored(&r, top, &format!("{repo}:{reference}"));
            assert_eq!(r.content_type().as_deref(), Some(image.media_type()));
            assert_eq!(r.json()["mediaType"], image.media_type());
        }
        for child in image.images() {
            if image.is_index() {
                let r = get(
                    format!("/v2/{repo}/manifests/{}", child.digest()),
                    Some(ACCEPT_ALL),
                )
                .await;
                assert_stored(
                    &r,
                    &child.manifest,
                    &format!("{repo}:{tag} child {}", child.platform),
                );
                assert_eq!(r.content_type().as_deref(), Some(child.media_type()));
            }
            let r = get(format!("/v2/{repo}/blobs/{}", child.config.digest), None).await;
            assert_stored(
                &r,
                &child.config,
                &format!("{repo}:{tag} config of {}", child.platform),
            );
            let config = r.json();
            assert_eq!(config["architecture"], child.platform.architecture.as_str());
            assert_eq!(config["os"], child.platform.os.as_str());
            if child.is_attestation() {
                let layer = &child.layers[0];
                assert_eq!(layer.media_type, IN_TOTO);
                let r = get(format!("/v2/{repo}/blobs/{}", layer.digest), None).await;
                assert_stored(&r, layer, "in-toto layer");
                assert_eq!(r.json()["_type"], "https://in-toto.io/Statement/v0.1");
            } else {
                assert_eq!(
                    config["variant"].as_str(),
                    child.platform.variant.as_deref()
                );
                assert_eq!(
                    config["config"]["Labels"]["lab.arch"],
                    child.platform.architecture.as_str()
                );
                assert_eq!(
                    config["rootfs"]["diff_ids"].as_array().unwrap().len(),
                    child.layers.len()
                );
            }
        }
        if let Some(index) = image.as_index() {
            let manifests = index.manifest_json()["manifests"]
                .as_array()
                .unwrap()
                .clone();
            assert_eq!(manifests.len(), index.children.len());
            let platform_digests: BTreeSet<&str> =
                index.platform_images().map(|c| c.digest()).collect();
            for entry in &manifests {
                let annotations = &entry["annotations"];
                if entry["platform"]["os"] == "unknown" {
                    assert_eq!(
                        entry["platform"],
                        json!({"architecture": "unknown", "os": "unknown"})
                    );
                    assert_eq!(annotations[ANNOTATION_REFERENCE_TYPE], ATTESTATION_MANIFEST);
                    let subject = annotations[ANNOTATION_REFERENCE_DIGEST].as_str().unwrap();
                    assert!(
                        platform_digests.contains(subject),
                        "attestation for an unknown image {subject}"
                    );
                } else {
                    assert!(annotations.is_null());
                }
            }
        }
    }
    let mut repos: Vec<&str> = STANDARD_TAGS.iter().map(|(r, _, _)| *r).collect();
    repos.dedup();
    for repo in repos {
        let r = get(format!("/v2/{repo}/tags/list"), None).await;
        assert_eq!(r.status, 200);
        let mut tags: Vec<String> = r.json()["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        tags.sort();
        let mut want: Vec<&str> = STANDARD_TAGS
            .iter()
            .filter(|(r, _, _)| *r == repo)
            .map(|(_, t, _)| *t)
            .collect();
        want.sort();
        assert_eq!(tags, want, "tags of {repo}");
    }
    let got = reg.requests_since_async(mark).await;
    assert!(
        expected.len() > 60,
        "the walk should be substantial, made {}",
        expected.len()
    );
    assert_eq!(
        summary(&got),
        summary(&expected),
        "access log vs requests made"
    );
}

// ------------------------------------------------------------- images ---

#[test]
fn images_are_deterministic_distinct_and_well_formed() {
    let a = StandardImages::build();
    let b = StandardImages::build();
    for k in StandardKind::ALL {
        assert_eq!(
            a.get(k).digest(),
            b.get(k).digest(),
            "{k:?} is not deterministic"
        );
        assert_eq!(a.get(k).manifest().bytes, b.get(k).manifest().bytes);
    }
    let digests: BTreeSet<&str> = StandardKind::ALL
        .iter()
        .map(|k| a.get(*k).digest())
        .collect();
    assert_eq!(
        digests.len(),
        5,
        "the standard kinds must have distinct digests"
    );

    // a new seed is a new image: new layers, config and manifest
    let one = ImageSpec::single("amd64", 1).build();
    let two = ImageSpec::single("amd64", 2).build();
    assert_ne!(one.digest(), two.digest());
    assert_ne!(one.config.digest, two.config.digest);
    assert!(
        one.layers
            .iter()
            .zip(&two.layers)
            .all(|(x, y)| x.digest != y.digest)
    );
    assert_ne!(
        one.digest(),
        ImageSpec::single("amd64", 1)
            .label("x", "y")
            .build()
            .digest()
    );
    assert_eq!(one, ImageSpec::single("amd64", 1).build());

    // an index child is the single image of the same spec
    assert_eq!(
        a.oci_index.child("linux/amd64").unwrap().digest(),
        a.oci_single.digest()
    );
    assert_eq!(
        a.docker_list.child("amd64").unwrap().digest(),
        a.docker_single.digest()
    );
    assert_eq!(
        a.oci_index
            .platform_digests()
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        vec!["linux/amd64", "linux/arm/v7", "linux/arm64/v8"]
    );

    // manifests: media types and descriptors
    for img in [
        a.oci_single.as_single().unwrap(),
        a.docker_single.as_single().unwrap(),
    ] {
        let m = img.manifest_json();
        assert_eq!(m["schemaVersion"], 2);
        assert_eq!(m["mediaType"], img.format.manifest_media_type());
        assert_eq!(m["config"]["mediaType"], img.format.config_media_type());
        assert_eq!(m["config"]["digest"], img.config.digest.as_str());
        assert_eq!(m["config"]["size"], img.config.size());
        for (d, l) in m["layers"].as_array().unwrap().iter().zip(&img.layers) {
            assert_eq!(d["mediaType"], img.format.layer_media_type());
            assert_eq!(d["digest"], l.digest.as_str());
            assert_eq!(d["size"], l.size());
        }
    }
    // configs: the fields an importer reads; Docker-only fields only in the Docker config
    let oci = a.oci_index.child("linux/arm64/v8").unwrap().config_json();
    let docker = a.docker_list.child("linux/arm/v7").unwrap().config_json();
    for (c, arch, variant) in [(&oci, "arm64", "v8"), (&docker, "arm", "v7")] {
        assert_eq!(
            (c["os"].as_str(), c["architecture"].as_str()),
            (Some("linux"), Some(arch))
        );
        assert_eq!(c["variant"], variant);
        assert_eq!(c["created"], "2024-05-01T12:00:00Z");
        assert!(c["author"].as_str().unwrap().contains("tests"));
        assert_eq!(c["config"]["WorkingDir"], "/srv/lab");
        assert_eq!(c["config"]["Labels"]["lab.arch"], arch);
        assert!(
            c["config"]["Env"]
                .as_array()
                .unwrap()
                .contains(&json!(format!("LAB_ARCH={arch}")))
        );
        assert_eq!(c["config"]["Cmd"][0], "/bin/sh");
        assert_eq!(c["config"]["ExposedPorts"], json!({"8080/tcp": {}}));
        assert_eq!(c["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
        assert_eq!(c["history"].as_array().unwrap().len(), 3);
    }
    assert!(oci.get("docker_version").is_none() && oci.get("container_config").is_none());
    assert_eq!(docker["docker_version"], "24.0.7");
    assert_eq!(docker["container_config"]["WorkingDir"], "/srv/lab");
    assert_eq!(docker["amd64"], Value::Null);

    // layers are real gzip'ed tars whose uncompressed sha256 is the diff_id
    let img = a.docker_list.child("linux/arm/v7").unwrap();
    let diff_ids = img.config_json()["rootfs"]["diff_ids"].clone();
    for (layer, diff_id) in img.layers.iter().zip(diff_ids.as_array().unwrap()) {
        let tar = pipe("gzip", &["-dc"], &layer.bytes);
        assert_eq!(sha256_digest(&tar), diff_id.as_str().unwrap());
        let listing = String::from_utf8(pipe("tar", &["-t"], &tar)).unwrap();
        assert!(
            listing.contains("etc/lab-release") || listing.contains("usr/share/lab/platform"),
            "{listing}"
        );
    }

    // the attestation index, BuildKit style
    let attest = a.attest.as_index().unwrap();
    assert_eq!(attest.platform_images().count(), 2);
    assert_eq!(attest.attestations().count(), 2);
    let entries = attest.manifest_json()["manifests"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        entries[2]["platform"],
        json!({"architecture": "unknown", "os": "unknown"})
    );
    assert_eq!(
        entries[2]["annotations"][ANNOTATION_REFERENCE_TYPE],
        ATTESTATION_MANIFEST
    );
    assert_eq!(
        entries[2]["annotations"][ANNOTATION_REFERENCE_DIGEST],
        entries[0]["digest"]
    );
    assert_eq!(
        entries[3]["annotations"][ANNOTATION_REFERENCE_DIGEST],
        entries[1]["digest"]
    );
    let att = attest.attestations().next().unwrap();
    assert_eq!(att.layers[0].media_type, IN_TOTO);
    assert_eq!(
        att.layers[0].json()["subject"][0]["digest"]["sha256"],
        &entries[0]["digest"].as_str().unwrap()[7..]
    );
    assert!(attest.child("linux/amd64").is_some() && attest.child("unknown/unknown").is_none());
}

fn pipe(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{program} {args:?} failed");
    out.stdout
}

#[test]
fn access_log_lines_parse_for_http1_and_http2() {
    let h1 = r#"127.0.0.1 - - [22/Nov/2026:08:10:41 +0000] "GET /v2/lab/multi/manifests/oci-index?x=1 HTTP/1.1" 200 796 "" "skopeo/1.9.3""#;
    let h2 = r#"127.0.0.1 - - [22/Nov/2026:08:17:12 +0000] "HEAD /v2/ HTTP/2.0" 401 87 "" "curl/7.88.1""#;
    assert_eq!(
        parse_access_log_line(h1),
        Some(Request::new(
            "GET",
            "/v2/lab/multi/manifests/oci-index",
            200
        ))
    );
    assert_eq!(
        parse_access_log_line(h2),
        Some(Request::new("HEAD", "/v2/", 401))
    );
    let app = r#"time="2026-11-22T08:10:41Z" level=info msg="response completed" http.request.method=GET"#;
    assert_eq!(parse_access_log_line(app), None);
    assert_eq!(parse_access_log_line(""), None);
}

#[test]
fn challenges_and_scopes_parse() {
    let c = parse_challenge(
        r#"Bearer realm="http://127.0.0.1:5099/token",service="reg",scope="repository:lab/multi:pull,push",error="insufficient_scope""#,
    )
    .unwrap();
    assert_eq!(c.scheme, "Bearer");
    assert_eq!(c.param("realm"), Some("http://127.0.0.1:5099/token"));
    assert_eq!(c.param("scope"), Some("repository:lab/multi:pull,push"));
    assert_eq!(c.param("error"), Some("insufficient_scope"));
    assert_eq!(
        scope_for(&Method::HEAD, "/v2/lab/nested/deep/repo/blobs/sha256:ab").as_deref(),
        Some("repository:lab/nested/deep/repo:pull")
    );
    assert_eq!(
        scope_for(&Method::PUT, "/v2/a/b/blobs/uploads/123").as_deref(),
        Some("repository:a/b:pull,push")
    );
    assert_eq!(
        scope_for(&Method::DELETE, "/v2/a/manifests/sha256:x").as_deref(),
        Some("repository:a:delete")
    );
    assert_eq!(
        scope_for(&Method::GET, "/v2/_catalog").as_deref(),
        Some("registry:catalog:*")
    );
    assert_eq!(scope_for(&Method::GET, "/v2/"), None);
}

// -------------------------------------------------- plain registry ---

#[tokio::test]
async fn plain_registry_serves_every_kind_and_counts_exactly() {
    let t0 = Instant::now();
    let reg = TestRegistry::plain();
    let started = t0.elapsed();
    let t1 = Instant::now();
    let seeded = reg.seed_standard().await.unwrap();
    let seeding = t1.elapsed();
    let seeding_requests = reg.access_log().all_requests();
    eprintln!(
        "plain registry: start {started:?}, seeding {} tags {seeding:?} ({} requests)",
        STANDARD_TAGS.len(),
        seeding_requests.len()
    );

    check_every_kind(&reg, &seeded, None).await;

    // distribution 2.8 quirks the importer must live with, seen through the fixture
    let c = reg.client();
    let mark = reg.mark();
    let r = c
        .get_manifest_accept("lab/oci-single", "v1", Some(DOCKER_MANIFEST))
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (404, Some("MANIFEST_UNKNOWN"))
    );
    let r = c
        .get_manifest_accept("lab/docker-single", "v1", None)
        .await
        .unwrap();
    assert_eq!(r.content_type().as_deref(), Some(DOCKER_SCHEMA1_SIGNED));
    let r = c
        .get_manifest_accept("lab/multi", "docker-list", Some(DOCKER_MANIFEST))
        .await
        .unwrap();
    assert_eq!(
        r.digest().as_deref(),
        Some(seeded.child_digest("lab/multi", "docker-list", "linux/amd64"))
    );
    let r = c.get_manifest("lab/multi", "nope").await.unwrap();
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (404, Some("MANIFEST_UNKNOWN"))
    );
    assert_eq!(
        summary(&reg.requests_since(mark)),
        [
            "GET /v2/lab/oci-single/manifests/v1 404",
            "GET /v2/lab/docker-single/manifests/v1 200",
            "GET /v2/lab/multi/manifests/docker-list 200",
            "GET /v2/lab/multi/manifests/nope 404",
        ]
    );
    // an empty window is empty, and a second mark/count does not see the first window
    let mark = reg.mark();
    assert_eq!(reg.requests_since(mark), vec![]);
}

#[tokio::test]
async fn tags_move_to_new_images_and_manifests_delete() {
    let reg = RegistryOptions::plain().seeded().start();
    let seeded = reg.seeded().unwrap();
    let c = reg.client();
    let old = seeded.digest("lab/oci-single", "v1").to_string();

    // move v1 to a new single image
    let new: TestImage = ImageSpec::single("amd64", 42).into();
    assert_ne!(new.digest(), old);
    let mark = reg.mark();
    assert_eq!(
        c.push("lab/oci-single", "v1", &new).await.unwrap(),
        new.digest()
    );
    let pushed = reg.requests_since(mark);
    // HEAD config+2 layers (404), POST+PUT each, PUT manifest
    assert_eq!(
        pushed
            .iter()
            .filter(|r| r.method == "HEAD" && r.status == 404)
            .count(),
        3
    );
    assert_eq!(
        pushed
            .iter()
            .filter(|r| r.method == "POST" && r.status == 202)
            .count(),
        3
    );
    assert_eq!(
        pushed
            .iter()
            .filter(|r| r.method == "PUT" && r.status == 201)
            .count(),
        4
    );
    assert_eq!(pushed.len(), 10);
    assert_eq!(
        c.head_manifest("lab/oci-single", "v1")
            .await
            .unwrap()
            .digest()
            .as_deref(),
        Some(new.digest())
    );
    assert_eq!(
        c.head_manifest("lab/oci-single", "latest")
            .await
            .unwrap()
            .digest(),
        Some(old.clone())
    );

    // pushing content that is already there: only HEADs and the manifest PUT
    let mark = reg.mark();
    c.push("lab/oci-single", "v2", &new).await.unwrap();
    let blobs: Vec<String> = new
        .blobs()
        .iter()
        .map(|b| format!("HEAD /v2/lab/oci-single/blobs/{} 200", b.digest))
        .collect();
    let mut want = blobs.clone();
    want.push("PUT /v2/lab/oci-single/manifests/v2 201".into());
    assert_eq!(summary(&reg.requests_since(mark)), want);

    // move v1 back (content present: one PUT) and move an index tag to a new index
    let original = seeded.image("lab/oci-single", "v1");
    c.tag("lab/oci-single", "v1", original).await.unwrap();
    assert_eq!(
        c.head_manifest("lab/oci-single", "v1")
            .await
            .unwrap()
            .digest(),
        Some(old.clone())
    );
    let index: TestImage = IndexSpec::oci(7).into();
    c.push("lab/multi", "oci-index", &index).await.unwrap();
    let r = c.get_manifest("lab/multi", "oci-index").await.unwrap();
    assert_stored(&r, index.manifest(), "moved index");
    for (platform, digest) in index.platform_digests() {
        assert_ne!(
            digest,
            seeded.child_digest("lab/multi", "oci-index", &platform)
        );
        assert_eq!(
            c.head_manifest("lab/multi", &digest).await.unwrap().status,
            200
        );
    }

    // delete by digest: the manifest and the tags pointing at it are gone
    let mut tags = c.tags("lab/oci-single").await.unwrap();
    tags.sort();
    assert_eq!(tags, ["latest", "v1", "v2"]);
    c.delete_manifest("lab/oci-single", new.digest())
        .await
        .unwrap();
    assert_eq!(
        c.get_manifest("lab/oci-single", new.digest())
            .await
            .unwrap()
            .status,
        404
    );
    assert_eq!(
        c.get_manifest("lab/oci-single", "v2").await.unwrap().status,
        404
    );
    assert_eq!(
        c.get_manifest("lab/oci-single", "v1")
            .await
            .unwrap()
            .digest(),
        Some(old)
    );
    // distribution cannot delete a tag by name
    let r = c
        .request(
            Method::DELETE,
            "/v2/lab/oci-single/manifests/latest",
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);

    // the shared seed is untouched: a read-only registry on it still has the old tags
    let ro = RegistryOptions::plain().seeded_read_only().start();
    let r = ro
        .client()
        .get_manifest("lab/multi", "oci-index")
        .await
        .unwrap();
    assert_stored(
        &r,
        seeded.image("lab/multi", "oci-index").manifest(),
        "shared seed",
    );
}

#[tokio::test]
async fn read_only_seeded_registry_serves_and_refuses_writes() {
    let t0 = Instant::now();
    let reg = RegistryOptions::plain().seeded_read_only().start();
    eprintln!(
        "read-only seeded registry: start {:?} (seeding in this process: {:?})",
        t0.elapsed(),
        shared_seed().seeding_time
    );
    assert!(reg.is_read_only());
    let seeded = reg.seeded().unwrap();
    let c = reg.client();
    for (repo, tag, image) in seeded.tags() {
        let r = c.get_manifest(repo, tag).await.unwrap();
        assert_stored(&r, image.manifest(), &format!("{repo}:{tag}"));
    }
    let image: TestImage = ImageSpec::single("arm64", 99).into();
    let err = c.push("lab/oci-single", "new", &image).await.unwrap_err();
    assert!(format!("{err:#}").contains("405"), "{err:#}");
    let r = c
        .request(
            Method::PUT,
            "/v2/lab/oci-single/manifests/new",
            &[("Content-Type", OCI_MANIFEST)],
            Some(
                seeded
                    .image("lab/oci-single", "v1")
                    .manifest()
                    .bytes
                    .clone(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 405);
}

// ---------------------------------------------------- TLS + htpasswd ---

#[tokio::test]
async fn tls_htpasswd_registry_needs_credentials_and_the_ca() {
    let t0 = Instant::now();
    let reg = TestRegistry::tls_htpasswd();
    let started = t0.elapsed();
    assert!(reg.url().starts_with("https://127.0.0.1:"));
    let ca = String::from_utf8(reg.ca_pem().unwrap().to_vec()).unwrap();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(reg.admin(), (ADMIN_USER, ADMIN_PASSWORD));

    let t1 = Instant::now();
    let seeded = reg.seed_standard().await.unwrap(); // pushes over TLS with basic auth
    eprintln!(
        "tls+htpasswd registry: start {started:?} (incl. openssl, htpasswd), seeding {:?}",
        t1.elapsed()
    );

    let mark = reg.mark();
    let anon = reg.anonymous_client();
    let r = anon.get("/v2/").await.unwrap();
    assert_eq!(r.status, 401);
    let ch = r.challenge().unwrap();
    assert_eq!(
        (ch.scheme.as_str(), ch.param("realm")),
        ("Basic", Some("test-registry"))
    );
    let r = anon.get_manifest("lab/multi", "oci-index").await.unwrap();
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (401, Some("UNAUTHORIZED"))
    );
    let r = reg
        .client_as(READER_USER, "wrong")
        .get_manifest("lab/multi", "oci-index")
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    let r = reg
        .client_as(READER_USER, READER_PASSWORD)
        .get_manifest("lab/multi", "oci-index")
        .await
        .unwrap();
    assert_stored(
        &r,
        seeded.image("lab/multi", "oci-index").manifest(),
        "with credentials",
    );
    // by name: localhost is in the certificate too
    let by_name = RegistryClient::new(
        &reg.localhost_url(),
        reg.ca_pem(),
        ClientAuth::basic(ADMIN_USER, ADMIN_PASSWORD),
    );
    assert_eq!(by_name.get("/v2/").await.unwrap().status, 200);
    // without the CA, TLS fails before any HTTP request is made
    let untrusted = RegistryClient::new(
        &reg.url(),
        None,
        ClientAuth::basic(ADMIN_USER, ADMIN_PASSWORD),
    );
    let err = untrusted.get("/v2/").await.unwrap_err();
    let msg = format!("{err:?}");
    assert!(
        msg.to_lowercase().contains("certificate") || msg.contains("UnknownIssuer"),
        "{msg}"
    );
    // with another CA, too
    let other_ca = make_tls(&reg.dir().join("other-ca"));
    let wrong_ca = RegistryClient::new(&reg.url(), Some(&other_ca.ca_pem), ClientAuth::Anonymous);
    assert!(wrong_ca.get("/v2/").await.is_err());

    assert_eq!(
        summary(&reg.requests_since_async(mark).await),
        [
            "GET /v2/ 401",
            "GET /v2/lab/multi/manifests/oci-index 401",
            "GET /v2/lab/multi/manifests/oci-index 401",
            "GET /v2/lab/multi/manifests/oci-index 200",
            "GET /v2/ 200",
        ]
    );

    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{READER_USER}:{READER_PASSWORD}")
        )
    );
    check_every_kind(&reg, &seeded, Some(&basic)).await;
}

#[tokio::test]
async fn tls_registry_counts_http2_requests_from_curl() {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("SKIP: curl is not installed");
        return;
    }
    let reg = TestRegistry::tls_htpasswd();
    let mark = reg.mark();
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            "--http2",
            "--cacert",
        ])
        .arg(reg.ca_cert_path().unwrap())
        .args(["-u", &format!("{ADMIN_USER}:{ADMIN_PASSWORD}")])
        .arg(format!("{}/v2/", reg.url()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 200");
    let lines = reg.log_lines_since(mark);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("\"GET /v2/ HTTP/2.0\" 200"),
        "{}",
        lines[0]
    );
    assert_eq!(
        reg.requests_since(mark),
        vec![Request::new("GET", "/v2/", 200)]
    );
}

// ------------------------------------------------------- token auth ---

#[tokio::test]
async fn token_registry_grants_only_what_was_asked_and_allowed() {
    let t0 = Instant::now();
    let reg = TestRegistry::token();
    let started = t0.elapsed();
    let ts = reg.token_server().unwrap();
    let t1 = Instant::now();
    let seeded = reg.seed_standard().await.unwrap(); // admin: Basic to the token server, Bearer to the registry
    eprintln!(
        "token registry: start {started:?} (incl. openssl), seeding {:?}",
        t1.elapsed()
    );
    // distribution lists the actions of a challenge scope in map order: pull,push or push,pull
    let push_scopes = ts.count_for_scope("repository:lab/multi:pull,push")
        + ts.count_for_scope("repository:lab/multi:push,pull");
    assert!(push_scopes >= 1, "{:?}", ts.counts_by_scope());
    assert_eq!(ts.key_id().split(':').count(), 12);

    let mark = reg.mark();
    let tmark = ts.mark();
    let anon = reg.anonymous_client();
    let multi = "/v2/lab/multi/manifests/oci-index";
    let accept = Some(ACCEPT_ALL);
    let raw = async |auth: Option<&str>, path: &str| {
        anon.send_raw(Method::GET, path, &headers(auth, accept), None)
            .await
            .unwrap()
    };

    // anonymous: the Bearer challenge names our realm, service and the scope
    let r = raw(None, multi).await;
    assert_eq!(r.status, 401);
    let ch = r.challenge().unwrap();
    assert_eq!(ch.scheme, "Bearer");
    assert_eq!(ch.param("realm"), Some(ts.realm()));
    assert_eq!(ch.param("service"), Some(ts.service()));
    assert_eq!(ch.param("scope"), Some("repository:lab/multi:pull"));
    // a garbage token
    let r = raw(Some("Bearer not.a.jwt"), multi).await;
    assert_eq!(
        (r.status, r.challenge().unwrap().param("error")),
        (401, Some("invalid_token"))
    );

    // a token from our server lets the request through
    let (st, token) = ts
        .request_token(
            Some((READER_USER, READER_PASSWORD)),
            &["repository:lab/multi:pull"],
        )
        .await
        .unwrap();
    assert_eq!(st, 200);
    let bearer = format!("Bearer {}", token.unwrap());
    let r = raw(Some(&bearer), multi).await;
    assert_stored(
        &r,
        seeded.image("lab/multi", "oci-index").manifest(),
        "with a token",
    );
    // ... for that repository only
    let r = raw(Some(&bearer), "/v2/lab/oci-single/manifests/v1").await;
    assert_eq!(
        (r.status, r.challenge().unwrap().param("error")),
        (401, Some("insufficient_scope"))
    );
    // a token for another repository does not open lab/multi
    let (_, other) = ts
        .request_token(
            Some((READER_USER, READER_PASSWORD)),
            &["repository:lab/attest:pull"],
        )
        .await
        .unwrap();
    let r = raw(Some(&format!("Bearer {}", other.unwrap())), multi).await;
    assert_eq!(r.status, 401);
    // a wrong password gets no token at all
    let (st, none) = ts
        .request_token(Some((READER_USER, "wrong")), &["repository:lab/multi:pull"])
        .await
        .unwrap();
    assert_eq!((st, none), (401, None));
    // a user limited to lab/multi gets a token without the access it may not have
    let (st, limited) = ts
        .request_token(
            Some((MULTI_USER, MULTI_PASSWORD)),
            &["repository:lab/oci-single:pull"],
        )
        .await
        .unwrap();
    assert_eq!(st, 200);
    let r = raw(
        Some(&format!("Bearer {}", limited.unwrap())),
        "/v2/lab/oci-single/manifests/v1",
    )
    .await;
    assert_eq!(r.status, 401);
    // pull,push asked by a puller: pull is granted, push is not
    let (_, partial) = ts
        .request_token(
            Some((MULTI_USER, MULTI_PASSWORD)),
            &["repository:lab/multi:pull,push"],
        )
        .await
        .unwrap();
    let partial = partial.unwrap();
    let r = raw(Some(&format!("Bearer {partial}")), multi).await;
    assert_eq!(r.status, 200);
    let r = anon
        .send_raw(
            Method::POST,
            "/v2/lab/multi/blobs/uploads/",
            &headers(Some(&format!("Bearer {partial}")), None),
            Some(vec![]),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    // anonymous token requests are answered, with nothing granted
    let (st, anon_token) = ts
        .request_token(None, &["repository:lab/multi:pull"])
        .await
        .unwrap();
    assert_eq!(st, 200);
    let r = raw(Some(&format!("Bearer {}", anon_token.unwrap())), multi).await;
    assert_eq!(r.status, 401);
    // a token signed by a key the registry does not trust
    let stranger = TokenServer::start(
        &reg.dir().join("stranger"),
        TokenOptions::default(),
        default_users(),
    );
    let forged = stranger.issue(Some(ADMIN_USER), &["repository:lab/multi:pull"]);
    let r = raw(Some(&format!("Bearer {forged}")), multi).await;
    assert_eq!(
        (r.status, r.challenge().unwrap().param("error")),
        (401, Some("invalid_token"))
    );

    // the client's token dance: 401, token, 200; the second GET reuses the token
    let reader = reg.client_as(READER_USER, READER_PASSWORD);
    let scope_before = ts.count_for_scope("repository:lab/docker-list:pull");
    for _ in 0..2 {
        let r = reader
            .get_manifest("lab/docker-list", "latest")
            .await
            .unwrap();
        assert_stored(
            &r,
            seeded.image("lab/docker-list", "latest").manifest(),
            "token dance",
        );
    }
    assert_eq!(
        ts.count_for_scope("repository:lab/docker-list:pull") - scope_before,
        1
    );

    let multi_lines = |n: &[u16]| {
        n.iter()
            .map(|s| format!("GET {multi} {s}"))
            .collect::<Vec<_>>()
    };
    let mut want = multi_lines(&[401, 401, 200]);
    want.push("GET /v2/lab/oci-single/manifests/v1 401".into());
    want.extend(multi_lines(&[401]));
    want.push("GET /v2/lab/oci-single/manifests/v1 401".into());
    want.extend(multi_lines(&[200]));
    want.push("POST /v2/lab/multi/blobs/uploads/ 401".into());
    want.extend(multi_lines(&[401, 401]));
    want.extend(
        ["401", "200", "200"].map(|s| format!("GET /v2/lab/docker-list/manifests/latest {s}")),
    );
    assert_eq!(summary(&reg.requests_since_async(mark).await), want);

    type Served = (Option<String>, Vec<String>, u16, Vec<Access>);
    let served: Vec<Served> = ts
        .requests_since(tmark)
        .into_iter()
        .map(|r| (r.user, r.scopes, r.status, r.granted))
        .collect();
    let s = |x: &str| vec![x.to_string()];
    let pull = |name: &str| {
        vec![Access {
            resource_type: "repository".into(),
            name: name.into(),
            actions: s("pull"),
        }]
    };
    let reader = Some(READER_USER.to_string());
    let limited = Some(MULTI_USER.to_string());
    assert_eq!(
        served,
        vec![
            (
                reader.clone(),
                s("repository:lab/multi:pull"),
                200,
                pull("lab/multi")
            ),
            (
                reader.clone(),
                s("repository:lab/attest:pull"),
                200,
                pull("lab/attest")
            ),
            (None, s("repository:lab/multi:pull"), 401, vec![]),
            (
                limited.clone(),
                s("repository:lab/oci-single:pull"),
                200,
                vec![]
            ),
            (
                limited,
                s("repository:lab/multi:pull,push"),
                200,
                pull("lab/multi")
            ),
            (None, s("repository:lab/multi:pull"), 200, vec![]),
            (
                reader,
                s("repository:lab/docker-list:pull"),
                200,
                pull("lab/docker-list")
            ),
        ]
    );

    // every kind through a token that covers all seeded repositories
    let scopes: Vec<String> = STANDARD_TAGS
        .iter()
        .map(|(r, _, _)| format!("repository:{r}:pull"))
        .collect();
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let (_, all) = ts
        .request_token(Some((READER_USER, READER_PASSWORD)), &scopes)
        .await
        .unwrap();
    check_every_kind(&reg, &seeded, Some(&format!("Bearer {}", all.unwrap()))).await;
}

// ---------------------------------------------------------- processes ---

fn process_gone(pid: u32) -> bool {
    // gone, or a zombie nobody reaped yet (PID 1 in a container may not reap)
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
    }
}

fn wait_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if process_gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn registry_is_killed_on_drop() {
    let reg = TestRegistry::plain();
    let (pid, addr, dir) = (reg.pid(), reg.addr().to_string(), reg.dir().to_path_buf());
    assert!(!process_gone(pid));
    assert!(std::net::TcpStream::connect(&addr).is_ok());
    drop(reg);
    assert!(wait_gone(pid), "registry {pid} still running after drop");
    assert!(std::net::TcpStream::connect(&addr).is_err());
    assert!(!dir.exists(), "temp dir left behind");
}

const KILL_HELPER_ENV: &str = "IMAGESTREAM_TEST_KILL_HELPER";

/// Not a test on its own: run by `registry_dies_with_the_test_process` in a child process.
#[test]
fn kill_helper_starts_registries_then_dies() {
    if std::env::var_os(KILL_HELPER_ENV).is_none() {
        return;
    }
    let plain = TestRegistry::plain();
    let token = TestRegistry::token();
    // started from a thread that ends before the die: the death signal must still fire
    let from_thread = std::thread::spawn(TestRegistry::plain).join().unwrap();
    println!("PIDS {} {} {}", plain.pid(), token.pid(), from_thread.pid());
    // die like a test killed by a timeout: SIGKILL, no destructors, no unwinding
    let _ = Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    std::thread::sleep(Duration::from_secs(10));
    unreachable!("still alive after SIGKILL");
}

#[test]
fn registry_dies_with_the_test_process() {
    let tmp = tempfile::tempdir().unwrap(); // the killed process cannot clean up its temp dirs
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "kill_helper_starts_registries_then_dies",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(KILL_HELPER_ENV, "1")
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(
        out.status.signal(),
        Some(9),
        "the helper should have been SIGKILLed"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let pids: Vec<u32> = stdout
        .lines()
        .find_map(|l| l.split_once("PIDS ").map(|(_, p)| p.trim()))
        .unwrap_or_else(|| {
            panic!(
                "no PIDS line in {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .split(' ')
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 3);
    for pid in pids {
        assert!(wait_gone(pid), "registry {pid} outlived its test process");
    }
}

// ---------------------------------------------------- oci-client ---

/// The project's registry client works against the fixtures: token dance with our JWTs (and
/// token reuse), TLS with the test CA plus basic auth. Also a recipe for later tests.
#[tokio::test]
async fn oci_client_pulls_through_token_auth_and_tls() {
    use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
    use oci_client::secrets::RegistryAuth;
    use oci_client::{Client, Reference};

    let reg = RegistryOptions::token().seeded().start();
    let seeded = reg.seeded().unwrap();
    let ts = reg.token_server().unwrap();
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let auth = RegistryAuth::Basic(READER_USER.into(), READER_PASSWORD.into());
    let reference: Reference = reg.image_ref("lab/multi", "oci-index").parse().unwrap();
    let mark = reg.mark();
    let tmark = ts.mark();
    let (bytes, digest) = client
        .pull_manifest_raw(
            &reference,
            &auth,
            &[OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST],
        )
        .await
        .unwrap();
    assert_eq!(digest, seeded.digest("lab/multi", "oci-index"));
    assert_eq!(
        bytes.as_ref(),
        seeded
            .image("lab/multi", "oci-index")
            .manifest()
            .bytes
            .as_slice()
    );
    let arm_digest = seeded.child_digest("lab/multi", "oci-index", "linux/arm64/v8");
    let arm: Reference = reg.image_ref("lab/multi", arm_digest).parse().unwrap();
    let (_, pulled) = client.pull_manifest(&arm, &auth).await.unwrap();
    assert_eq!(pulled, arm_digest);
    assert_eq!(
        arm_digest,
        seeded.child_digest("lab/multi", "oci-index", "linux/arm64/v8")
    );
    // one token for the repository, reused for the second pull
    let served = ts.requests_since(tmark);
    assert_eq!(served.len(), 1, "{served:?}");
    assert_eq!(served[0].scopes, ["repository:lab/multi:pull"]);
    assert_eq!(served[0].user.as_deref(), Some(READER_USER));
    let reqs = summary(&reg.requests_since_async(mark).await);
    assert!(
        reqs.iter()
            .all(|r| r.ends_with(" 200") || r.ends_with(" 401")),
        "{reqs:?}"
    );
    assert_eq!(
        reqs.iter()
            .filter(|r| r.ends_with(" 200") && r.contains("/manifests/"))
            .count(),
        2,
        "{reqs:?}"
    );

    // TLS with the test CA and basic auth
    let tls = RegistryOptions::tls_htpasswd().seeded_read_only().start();
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Https,
        extra_root_certificates: vec![Certificate {
            encoding: CertificateEncoding::Pem,
            data: tls.ca_pem().unwrap().to_vec(),
        }],
        ..Default::default()
    });
    let reference: Reference = tls.image_ref("lab/attest", "latest").parse().unwrap();
    let auth = RegistryAuth::Basic(ADMIN_USER.into(), ADMIN_PASSWORD.into());
    let digest = client
        .fetch_manifest_digest(&reference, &auth)
        .await
        .unwrap();
    assert_eq!(digest, seeded.digest("lab/attest", "latest"));
}
