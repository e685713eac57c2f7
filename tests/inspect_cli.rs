//! `imagestream-operator inspect` as a user runs it: the built binary against the real
//! registry (plain, TLS + htpasswd, token auth), checking its output, its transcript and its
//! exit codes.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::registry::{RegistryOptions, StandardImages, TestRegistry};

fn inspect(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imagestream-operator"))
        .arg("inspect")
        .args(args)
        .output()
        .expect("run imagestream-operator")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn pull_secret(dir: &Path, reg: &TestRegistry, user: &str, password: &str) -> String {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let config = format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.addr());
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: pull\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{config}'\n"
    );
    let path = dir.join("pull-secret.yaml");
    std::fs::write(&path, secret).expect("write secret");
    path.display().to_string()
}

fn items(o: &Output, json: bool) -> Vec<serde_json::Value> {
    let list: serde_json::Value = if json {
        serde_json::from_slice(&o.stdout).expect("JSON output")
    } else {
        serde_saphyr::from_str(&stdout(o)).expect("YAML output")
    };
    assert_eq!(list["kind"], "List");
    list["items"].as_array().expect("items").clone()
}

#[test]
fn prints_the_image_as_yaml_and_json() {
    let reg = RegistryOptions::plain().seeded_read_only().start();
    let reference = reg.image_ref("lab/docker-single", "v1");
    let digest = StandardImages::build().docker_single.digest().to_string();

    let yaml = inspect(&["--insecure", &reference]);
    assert!(yaml.status.success(), "{}", stderr(&yaml));
    let images = items(&yaml, false);
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["kind"], "Image");
    assert_eq!(images[0]["apiVersion"], "image.openshift.io/v1");
    assert_eq!(
        images[0]["dockerImageReference"],
        format!("{}/lab/docker-single@{digest}", reg.addr())
    );
    assert_eq!(
        images[0]["dockerImageManifestMediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );

    let json = inspect(&["--insecure", "-o", "json", &reference]);
    assert!(json.status.success(), "{}", stderr(&json));
    assert_eq!(items(&json, true), images);
}

#[test]
fn verbose_lists_every_registry_request() {
    let reg = RegistryOptions::plain().seeded_read_only().start();
    let reference = reg.image_ref("lab/oci-single", "v1");
    let out = inspect(&["--insecure", "-v", &reference]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stderr(&out);
    let lines: Vec<&str> = log.lines().collect();
    // the HTTPS attempt fails (plain registry), then HTTP: manifest, then config
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "GET http://{}/v2/lab/oci-single/manifests/v1 -> 200",
            reg.addr()
        ))),
        "{log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("/v2/lab/oci-single/blobs/sha256:") && l.contains("-> 200")),
        "{log}"
    );
}

#[test]
fn preserve_original_prints_the_list_first_then_every_child() {
    let reg = RegistryOptions::plain().seeded_read_only().start();
    let index = StandardImages::build().oci_index;
    let out = inspect(&[
        "--insecure",
        "--import-mode",
        "preserve-original",
        &reg.image_ref("lab/oci-index", "latest"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let images = items(&out, false);
    assert_eq!(images.len(), 4);
    assert_eq!(
        images[0]["metadata"]["annotations"]["image.openshift.io/image"],
        index.digest()
    );
    assert_eq!(
        images[0]["dockerImageManifests"].as_array().unwrap().len(),
        3
    );
}

#[test]
fn platform_picks_the_child_in_legacy_mode() {
    let reg = RegistryOptions::plain().seeded_read_only().start();
    let index = StandardImages::build().oci_index;
    let arm = index.child("linux/arm64/v8").unwrap().digest().to_string();
    let out = inspect(&[
        "--insecure",
        "--platform",
        "linux/arm64/v8",
        &reg.image_ref("lab/oci-index", "latest"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let images = items(&out, false);
    assert_eq!(images.len(), 1);
    assert_eq!(
        images[0]["metadata"]["annotations"]["image.openshift.io/image"],
        arm
    );

    let bad = inspect(&["--platform", "arm64", "x"]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "clap rejects it: {}",
        stderr(&bad)
    );
}

#[test]
fn failures_exit_non_zero_with_the_reason() {
    let reg = RegistryOptions::plain().seeded_read_only().start();

    let missing = inspect(&["--insecure", &reg.image_ref("lab/oci-single", "nope")]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stdout(&missing).is_empty());
    assert_eq!(
        stderr(&missing).trim(),
        format!(
            "error: NotFound: dockerimage.image.openshift.io \"{}/lab/oci-single:nope\" not found",
            reg.addr()
        )
    );

    let http_only = inspect(&[&reg.image_ref("lab/oci-single", "v1")]);
    assert_eq!(http_only.status.code(), Some(1));
    assert!(
        stderr(&http_only).starts_with("error: BadRequest: the repository "),
        "{}",
        stderr(&http_only)
    );

    let unparseable = inspect(&["Not/Valid"]);
    assert_eq!(unparseable.status.code(), Some(1));
    assert!(
        stderr(&unparseable).starts_with("error: Invalid: "),
        "{}",
        stderr(&unparseable)
    );
}

#[test]
fn credentials_from_a_pull_secret_and_a_ca_file() {
    let reg = RegistryOptions::tls_htpasswd().seeded().start();
    let dir = tempfile::tempdir().unwrap();
    let ca = reg.ca_cert_path().expect("CA").display().to_string();
    let reference = reg.image_ref("lab/oci-single", "v1");

    let secret = pull_secret(dir.path(), &reg, "reader", "r3ad");
    let ok = inspect(&["--pull-secret", &secret, "--ca-file", &ca, &reference]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(items(&ok, false).len(), 1);

    let wrong = pull_secret(dir.path(), &reg, "reader", "wrong");
    let denied = inspect(&["--pull-secret", &wrong, "--ca-file", &ca, &reference]);
    assert_eq!(denied.status.code(), Some(1));
    assert_eq!(
        stderr(&denied).trim(),
        format!("error: Unauthorized: incorrect username or password for image \"{reference}\"")
    );
    assert!(!stderr(&denied).contains("wrong"), "no secret in output");

    // without the CA the certificate is not trusted
    let untrusted = inspect(&["--pull-secret", &secret, &reference]);
    assert_eq!(untrusted.status.code(), Some(1));
    assert!(
        stderr(&untrusted).starts_with("error: InternalError: "),
        "{}",
        stderr(&untrusted)
    );

    let missing = inspect(&["--pull-secret", "/nonexistent/secret.yaml", &reference]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("/nonexistent/secret.yaml"),
        "{}",
        stderr(&missing)
    );
}
