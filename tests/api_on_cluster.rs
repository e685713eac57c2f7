//! The API types against a real kube-apiserver: the CRDs install, full objects of every kind
//! survive a write and a read unchanged, the real-world OpenShift files in `../shared/compat`
//! apply, and `kubectl get` shows OpenShift's columns.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kube::{
    Api,
    api::{DeleteParams, DynamicObject, PostParams},
    discovery::Scope,
};
use serde_json::{Value, json};

use support::{cluster, crds};

const IMAGE_API_VERSION: &str = "image.openshift.io/v1";

/// Metadata the apiserver owns; a file may carry stale values of these (a "saved" object).
const SERVER_METADATA: [&str; 7] = [
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "namespace",
];

#[tokio::test]
async fn every_crd_installs_and_becomes_established() {
    let cluster = cluster::cluster().await;
    let client = cluster.client().await;
    crds::install(&client).await;
    let api: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    for crd in imagestream_operator::crd::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let live = api.get(&name).await.expect("CRD exists");
        let conditions = live.status.and_then(|s| s.conditions).unwrap_or_default();
        for wanted in ["Established", "NamesAccepted"] {
            assert!(
                conditions
                    .iter()
                    .any(|c| c.type_ == wanted && c.status == "True"),
                "{name}: {wanted} not True: {conditions:?}"
            );
        }
        // Schemas must be structural: the apiserver reports violations as a condition.
        assert!(
            !conditions
                .iter()
                .any(|c| c.type_ == "NonStructuralSchema" && c.status == "True"),
            "{name} has a non-structural schema: {conditions:?}"
        );
    }
}

#[tokio::test]
async fn full_fixture_of_every_kind_reads_back_unchanged() {
    let cluster = cluster::cluster().await;
    let client = cluster.client().await;
    crds::install(&client).await;
    let ns = cluster::fresh_namespace(&client, "fixtures").await;

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/api");
    let fixtures = json_files(&dir);
    let kinds: Vec<String> = imagestream_operator::api::crds()
        .iter()
        .map(|c| c.spec.names.kind.clone())
        .collect();
    let mut covered = Vec::new();
    let mut failures = Vec::new();
    for path in fixtures {
        let fixture: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("readable"))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let kind = fixture["kind"]
            .as_str()
            .expect("fixture has a kind")
            .to_string();
        covered.push(kind.clone());
        let (api, _, scope) = crds::dynamic_api(&client, &kind, &ns);
        let mut want = fixture.clone();
        if scope == Scope::Namespaced {
            want["metadata"]["namespace"] = json!(ns);
        }
        let have = write_and_read(&api, &want).await;
        let differences = diff(&strip_server_metadata(want), &strip_server_metadata(have));
        if !differences.is_empty() {
            failures.push(format!(
                "{kind} ({}): {}",
                path.display(),
                differences.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "objects changed on the way through the apiserver:\n{}",
        failures.join("\n")
    );
    for kind in kinds {
        assert!(
            covered.contains(&kind),
            "no full fixture for {kind} in {}",
            dir.display()
        );
    }
}

/// Creates `obj` (status through the status subresource, as the operator writes it, or with
/// the object for a kind without one) and reads it back.
async fn write_and_read(api: &Api<DynamicObject>, obj: &Value) -> Value {
    let name = obj["metadata"]["name"].as_str().expect("named").to_string();
    let _ = api.delete(&name, &DeleteParams::default()).await;
    let mut object: DynamicObject =
        serde_json::from_value(obj.clone()).expect("a Kubernetes object");
    let status = object.data.as_object_mut().and_then(|m| m.remove("status"));
    let created = api
        .create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    if let Some(status) = status {
        let mut with_status = created.clone();
        with_status.data["status"] = status;
        match api
            .replace_status(&name, &PostParams::default(), &with_status)
            .await
        {
            Ok(_) => {}
            // a kind whose status is a plain field (ImageStreamImport): no subresource
            Err(kube::Error::Api(s)) if s.is_not_found() => {
                api.replace(&name, &PostParams::default(), &with_status)
                    .await
                    .unwrap_or_else(|e| panic!("write {name} with its status: {e}"));
            }
            Err(e) => panic!("write status of {name}: {e}"),
        }
    }
    let read = api
        .get(&name)
        .await
        .unwrap_or_else(|e| panic!("get {name}: {e}"));
    serde_json::to_value(read).expect("serialisable")
}

/// What `../shared/compat` files may not get through unchanged, and why. Anything else that
/// differs fails the test.
fn known_unservable(value_path: &str, api_version: &str) -> Option<&'static str> {
    if value_path == "apiVersion" && api_version != IMAGE_API_VERSION {
        return Some(
            "legacy group-less OpenShift API version (v1, v1beta1): a CRD can only serve \
             image.openshift.io/v1; the object is served once apiVersion says so",
        );
    }
    if value_path == "labels" {
        return Some(
            "top-level `labels` is not an ImageStream field (OpenShift drops it too); \
             the apiserver prunes unknown fields",
        );
    }
    if value_path == "status" || value_path.starts_with("status.") {
        return Some("status is server-owned: create drops it, as OpenShift's create resets it");
    }
    None
}

#[tokio::test]
async fn openshift_files_from_the_wild_apply_unchanged() {
    let cluster = cluster::cluster().await;
    let client = cluster.client().await;
    crds::install(&client).await;

    let root = compat_dir();
    let files = all_files(&root);
    assert!(
        files.len() >= 40,
        "expected the compat corpus under {}, found {} files",
        root.display(),
        files.len()
    );
    let mut report = Vec::new();
    let mut failures = Vec::new();
    let mut objects_checked = 0;

    for file in files {
        let rel = file
            .strip_prefix(&root)
            .unwrap_or(&file)
            .display()
            .to_string();
        let objects = parse_objects(&file);
        assert!(!objects.is_empty(), "{rel}: no objects");
        let ns = cluster::fresh_namespace(&client, "compat").await;
        let legacy = objects
            .iter()
            .filter_map(|o| o["apiVersion"].as_str())
            .find(|v| *v != IMAGE_API_VERSION)
            .map(str::to_string);

        // The user's path first: kubectl create -f on the file exactly as published.
        let out = cluster
            .kubectl()
            .args(["create", "-n", &ns, "-f"])
            .arg(&file)
            .output()
            .expect("kubectl runs");
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        match &legacy {
            None => {
                if !out.status.success() {
                    failures.push(format!("{rel}: kubectl create failed: {stderr}"));
                    continue;
                }
            }
            Some(version) => {
                assert!(
                    !out.status.success(),
                    "{rel}: kubectl accepted apiVersion {version}, so the legacy rule below is wrong"
                );
                assert!(
                    stderr.contains("no matches for kind") || stderr.contains("apiVersion"),
                    "{rel}: kubectl failed for another reason than the legacy apiVersion: {stderr}"
                );
                report.push(format!(
                    "{rel}: apiVersion {version}: {}",
                    known_unservable("apiVersion", version).unwrap_or_default()
                ));
                // The rest of the object must still be served: create it under the real group.
                for obj in &objects {
                    let mut obj = obj.clone();
                    obj["apiVersion"] = json!(IMAGE_API_VERSION);
                    let (api, _, _) = crds::dynamic_api(&client, "ImageStream", &ns);
                    let mut dynamic: DynamicObject = serde_json::from_value(strip_for_create(&obj))
                        .unwrap_or_else(|e| panic!("{rel}: {e}"));
                    dynamic.metadata.namespace = Some(ns.clone());
                    if let Err(e) = api.create(&PostParams::default(), &dynamic).await {
                        failures.push(format!(
                            "{rel}: create with apiVersion {IMAGE_API_VERSION}: {e}"
                        ));
                    }
                }
            }
        }

        // Then every object must read back as written, but for the listed reasons.
        let api: Api<DynamicObject> = crds::dynamic_api(&client, "ImageStream", &ns).0;
        for original in &objects {
            let name = original["metadata"]["name"]
                .as_str()
                .expect("named")
                .to_string();
            let Ok(read) = api.get(&name).await else {
                failures.push(format!("{rel}: {name} was not created"));
                continue;
            };
            objects_checked += 1;
            let have = strip_server_metadata(serde_json::to_value(read).expect("serialisable"));
            let want = strip_server_metadata(drop_null_metadata(original.clone()));
            let version = original["apiVersion"]
                .as_str()
                .unwrap_or(IMAGE_API_VERSION)
                .to_string();
            for difference in diff_paths(&want, &have) {
                match known_unservable(&difference, &version) {
                    Some(reason) => {
                        if difference != "apiVersion" {
                            report.push(format!("{rel}: {name}: {difference}: {reason}"));
                        }
                    }
                    None => failures.push(format!(
                        "{rel}: {name}: {difference}: want {} have {}",
                        at(&want, &difference),
                        at(&have, &difference)
                    )),
                }
            }
        }
    }
    println!(
        "compat report ({objects_checked} objects):\n{}",
        report.join("\n")
    );
    assert!(
        failures.is_empty(),
        "real OpenShift files were not served unchanged:\n{}",
        failures.join("\n")
    );
    assert!(
        objects_checked >= 70,
        "only {objects_checked} objects were checked"
    );
}

#[tokio::test]
async fn kubectl_get_shows_openshift_columns() {
    let cluster = cluster::cluster().await;
    let client = cluster.client().await;
    crds::install(&client).await;
    let ns = cluster::fresh_namespace(&client, "columns").await;

    let digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let stream = json!({
        "apiVersion": IMAGE_API_VERSION, "kind": "ImageStream",
        "metadata": {"name": "ruby", "namespace": ns},
        "spec": {"tags": [{"name": "latest", "from": {"kind": "DockerImage", "name": "quay.io/ruby:latest"}}]},
        "status": {
            "dockerImageRepository": "registry.example.com/columns/ruby",
            "tags": [
                {"tag": "2.7", "items": [{"created": "2026-11-01T10:00:00Z", "dockerImageReference": format!("quay.io/ruby@{digest}"), "image": digest, "generation": 1}]},
                {"tag": "latest", "items": [{"created": "2026-11-02T10:00:00Z", "dockerImageReference": format!("quay.io/ruby@{digest}"), "image": digest, "generation": 1}]}
            ]
        }
    });
    let api = crds::dynamic_api(&client, "ImageStream", &ns).0;
    write_and_read(&api, &stream).await;

    let istag = json!({
        "apiVersion": IMAGE_API_VERSION, "kind": "ImageStreamTag",
        "metadata": {"name": imagestream_operator::names::stream_tag("ruby", "latest"), "namespace": ns},
        "tag": null, "generation": 1, "lookupPolicy": {"local": false},
        "image": {
            "metadata": {"name": digest},
            "dockerImageReference": format!("quay.io/ruby@{digest}"),
            "dockerImageMetadata": {"kind": "DockerImage", "apiVersion": "image.openshift.io/1.0"}
        }
    });
    let api = crds::dynamic_api(&client, "ImageStreamTag", &ns).0;
    write_and_read(&api, &istag).await;

    let table = kubectl_table(cluster, &["get", "is", "-n", &ns]);
    assert_eq!(
        table.header,
        ["NAME", "IMAGE REPOSITORY", "TAGS", "UPDATED"]
    );
    let row = &table.rows[0];
    assert_eq!(row[0], "ruby");
    assert_eq!(row[1], "registry.example.com/columns/ruby");
    // JSONPath columns show the first match only: the first status tag in name order
    // (OpenShift lists every tag, newest first; a documented difference).
    assert_eq!(row[2], "2.7", "TAGS column: {row:?}");
    assert!(!row[3].is_empty(), "UPDATED column: {row:?}");

    let table = kubectl_table(cluster, &["get", "istag", "-n", &ns, "-o", "wide"]);
    assert_eq!(
        table.header,
        ["NAME", "IMAGE REFERENCE", "UPDATED", "IMAGE NAME"]
    );
    assert_eq!(table.rows[0][0], "ruby.latest");
    assert_eq!(table.rows[0][1], format!("quay.io/ruby@{digest}"));
    assert_eq!(table.rows[0][3], digest);

    // The short names resolve to our kinds.
    for short in ["is", "istag", "itag", "isimage"] {
        let out = cluster
            .kubectl()
            .args(["get", short, "-n", &ns])
            .output()
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "kubectl get {short}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// Runs kubectl and splits its table at the header's column starts.
fn kubectl_table(cluster: &cluster::TestCluster, args: &[&str]) -> Table {
    let out = cluster.kubectl().args(args).output().expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lines = text.lines();
    let header_line = lines.next().unwrap_or_default().to_string();
    // Column starts: a non-space after two spaces (headers themselves hold single spaces).
    let bytes = header_line.as_bytes();
    let mut starts = vec![0];
    for i in 2..bytes.len() {
        if bytes[i] != b' ' && bytes[i - 1] == b' ' && bytes[i - 2] == b' ' {
            starts.push(i);
        }
    }
    let cut = |line: &str| -> Vec<String> {
        (0..starts.len())
            .map(|k| {
                let from = starts[k].min(line.len());
                let to = starts
                    .get(k + 1)
                    .copied()
                    .unwrap_or(line.len())
                    .min(line.len());
                line[from..to].trim().to_string()
            })
            .collect()
    };
    Table {
        header: cut(&header_line),
        rows: lines.map(cut).collect(),
    }
}

fn compat_dir() -> PathBuf {
    std::env::var_os("IMAGESTREAM_COMPAT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/compat/openshift-imagestreams")
        })
}

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("json" | "yaml" | "yml")
            ) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    all_files(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect()
}

/// Every object in a file, List wrappers unwrapped.
fn parse_objects(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("readable");
    let docs: Vec<Value> = if path.extension().is_some_and(|e| e == "json") {
        vec![serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))]
    } else {
        serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let mut out = Vec::new();
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        match doc.get("items").and_then(Value::as_array) {
            Some(items) => out.extend(items.iter().cloned()),
            None => out.push(doc),
        }
    }
    out
}

fn strip_for_create(obj: &Value) -> Value {
    let mut obj = strip_server_metadata(drop_null_metadata(obj.clone()));
    if let Some(map) = obj.as_object_mut() {
        map.remove("status");
    }
    obj
}

fn strip_server_metadata(mut obj: Value) -> Value {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in SERVER_METADATA {
            meta.remove(key);
        }
    }
    obj
}

/// `"annotations": null` and friends in a file's metadata mean "none".
fn drop_null_metadata(mut obj: Value) -> Value {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|_, v| !v.is_null());
    }
    obj
}

/// Dotted paths where `want` and `have` differ (a missing key and a different value alike).
fn diff_paths(want: &Value, have: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_diff("", want, have, &mut out);
    out
}

fn walk_diff(path: &str, want: &Value, have: &Value, out: &mut Vec<String>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (want, have) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeMap<&String, ()> = a.keys().chain(b.keys()).map(|k| (k, ())).collect();
            for key in keys.keys() {
                match (a.get(*key), b.get(*key)) {
                    (Some(x), Some(y)) => walk_diff(&join(key), x, y, out),
                    _ => out.push(join(key)),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                walk_diff(&join(&i.to_string()), x, y, out);
            }
        }
        _ if want == have => {}
        _ => out.push(path.to_string()),
    }
}

fn diff(want: &Value, have: &Value) -> Vec<String> {
    diff_paths(want, have)
        .into_iter()
        .map(|p| format!("{p}: want {} have {}", at(want, &p), at(have, &p)))
        .collect()
}

fn at(v: &Value, path: &str) -> String {
    let mut cur = v;
    for key in path.split('.').filter(|k| !k.is_empty()) {
        cur = match cur {
            Value::Object(m) => match m.get(key) {
                Some(x) => x,
                None => return "<absent>".into(),
            },
            Value::Array(a) => match key.parse::<usize>().ok().and_then(|i| a.get(i)) {
                Some(x) => x,
                None => return "<absent>".into(),
            },
            _ => return "<absent>".into(),
        };
    }
    cur.to_string()
}
