//! Every metric the alerts and the dashboard use (issue 19) is one the operator exports, read
//! from a real `/metrics` scrape of the whole operator. A family without a sample is not in a
//! scrape at all, so the operator is first made to produce each: imports from the real
//! registry and from a registry announcing its quota, a workload followed by an image change
//! trigger and one whose patch a ValidatingAdmissionPolicy refuses (a reconcile error), a
//! notification with the wrong token, webhook reviews. The series the alerts rely on must
//! then carry samples: the leader gauge, webhook reviews and latency, reconcile latency and
//! errors, the quota, the process's CPU and memory.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use imagestream_operator::api::image_stream::ImageStream;
use support::fault_registry::{FaultServer, Reply, Seen};
use support::images::{EmptyImage, ImageSpec, OCI_CONFIG, OCI_MANIFEST, TestImage};
use support::monitoring::{alerts, dashboard, dashboard_exprs, exported_names, metric_names};
use support::operator::{Running, items};
use support::receivers;
use support::registry::RegistryOptions;

async fn scrape(port: u16) -> String {
    let response = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("GET /metrics");
    assert_eq!(response.status().as_u16(), 200);
    response.text().await.expect("body")
}

/// A registry serving one OCI image at `app`, answering manifest requests with Docker Hub's
/// quota headers.
fn quota_registry() -> (FaultServer, String) {
    let EmptyImage {
        config,
        config_digest,
        manifest,
        digest,
    } = EmptyImage::new();
    let server = {
        let digest = digest.clone();
        let blob = format!("/v2/app/blobs/{config_digest}");
        FaultServer::start(move |req: &Seen| {
            if req.path.starts_with("/v2/app/manifests/") {
                Reply::ok(OCI_MANIFEST, manifest.clone())
                    .header("Docker-Content-Digest", &digest)
                    .header("ratelimit-limit", "100;w=21600")
                    .header("ratelimit-remaining", "76;w=21600")
            } else if req.path == blob {
                Reply::ok(OCI_CONFIG, config.clone())
            } else if req.path == "/v2/" {
                Reply::ok("application/json", "{}")
            } else {
                Reply::new(404)
            }
        })
    };
    (server, digest)
}

/// A Deployment whose container `web` follows `app:t`.
fn follower(name: &str, labels: Value) -> Deployment {
    let triggers = json!([{"from": {"kind": "ImageStreamTag", "name": "app:t"},
        "fieldPath": "spec.template.spec.containers[?(@.name==\"web\")].image"}]);
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels,
            "annotations": {"image.openshift.io/triggers": triggers.to_string()}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "web", "image": "placeholder"}]}},
        },
    }))
    .expect("deployment")
}

/// A ValidatingAdmissionPolicy refusing every update of the Deployments of `namespace`
/// labelled frozen: the trigger's patch of such a Deployment fails.
async fn freeze(admin: &kube::Client, namespace: &str) -> String {
    let name = format!("freeze-{namespace}");
    let policy: ValidatingAdmissionPolicy = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                    "operations": ["UPDATE"], "resources": ["deployments"]}],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "objectSelector": {"matchLabels": {"imagestream-operator.test/frozen": "true"}},
            },
            "validations": [{"expression": "false", "message": "frozen"}],
        },
    }))
    .expect("policy");
    let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"]},
    }))
    .expect("binding");
    Api::<ValidatingAdmissionPolicy>::all(admin.clone())
        .create(&PostParams::default(), &policy)
        .await
        .expect("create the policy");
    Api::<ValidatingAdmissionPolicyBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await
        .expect("bind the policy");
    name
}

#[tokio::test]
async fn the_alerts_and_the_dashboard_use_only_exported_metrics() {
    let reg = RegistryOptions::plain().start();
    let image: TestImage = ImageSpec::single("amd64", 19).build().into();
    let digest = reg.client().push("app", "v1", &image).await.expect("push");
    let (quota, quota_digest) = quota_registry();
    let op = Running::start("monitoring").await;
    let ns = op.namespace.clone();
    let admin = op.admin.clone();

    // two followers of app:t, one frozen by a policy, in force once our own update is refused
    let policy = freeze(&admin, &ns).await;
    let deployments = Api::<Deployment>::namespaced(admin.clone(), &ns);
    for (name, labels) in [
        ("web", json!({})),
        (
            "frozen",
            json!({"imagestream-operator.test/frozen": "true"}),
        ),
    ] {
        deployments
            .create(&PostParams::default(), &follower(name, labels))
            .await
            .expect("create the Deployment");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let touch = json!({"metadata": {"annotations": {"touched": "yes"}}});
        match deployments
            .patch("frozen", &PatchParams::default(), &Patch::Merge(&touch))
            .await
        {
            Err(kube::Error::Api(status)) if status.message.contains("frozen") => break,
            other => assert!(
                Instant::now() < deadline,
                "the policy never applied: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let stream: ImageStream = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": "app"},
        "spec": {"tags": [
            {"name": "t", "importPolicy": {"insecure": true, "scheduled": true},
                "from": {"kind": "DockerImage", "name": reg.image_ref("app", "v1")}},
            {"name": "q", "importPolicy": {"insecure": true},
                "from": {"kind": "DockerImage", "name": format!("{}/app:v1", quota.addr())}},
        ]},
    }))
    .expect("stream");
    op.streams()
        .create(&PostParams::default(), &stream)
        .await
        .expect("create");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = op.streams().get("app").await.expect("get");
        if items(&s, "t").first().is_some_and(|e| e.image == digest)
            && items(&s, "q")
                .first()
                .is_some_and(|e| e.image == quota_digest)
        {
            break;
        }
        assert!(Instant::now() < deadline, "not imported: {:?}", s.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // a notification with the wrong token
    let path =
        receivers::receiver(&admin, &ns, "registry", "distribution", "s3cret", json!({})).await;
    let ca = receivers::ca_pem(&admin, &ns).await;
    let refused = receivers::https(&ca)
        .post(format!("https://127.0.0.1:{}{path}", op.webhook_port))
        .header("Authorization", "Bearer not-the-token")
        .body("{}")
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), 401);

    // every family the alerts and the dashboard use, with a sample
    let deadline = Instant::now() + Duration::from_secs(30);
    let (text, exported) = loop {
        let text = scrape(op.probes_port).await;
        let exported = exported_names(&text);
        let ready = [
            "imagestream_operator_image_trigger_patches_total",
            "imagestream_operator_reconcile_errors_total",
        ]
        .iter()
        .all(|name| exported.contains(*name));
        if ready || Instant::now() > deadline {
            break (text, exported);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let mut used: Vec<(String, String)> = Vec::new();
    for alert in alerts() {
        let name = alert["alert"].as_str().unwrap_or_default().to_string();
        for metric in metric_names(alert["expr"].as_str().expect("expr")) {
            used.push((format!("alert {name}"), metric));
        }
    }
    for expr in dashboard_exprs(&dashboard()) {
        for metric in metric_names(&expr) {
            used.push(("the dashboard".to_string(), metric));
        }
    }
    let distinct: BTreeSet<&str> = used.iter().map(|(_, m)| m.as_str()).collect();
    println!(
        "{} metric names used by the alerts and the dashboard, all in a scrape of /metrics",
        distinct.len()
    );
    let missing: Vec<String> = used
        .iter()
        .filter(|(_, metric)| !exported.contains(metric))
        .map(|(by, metric)| format!("{metric} (used by {by})"))
        .collect();
    assert!(
        missing.is_empty(),
        "not exported by the operator: {missing:#?}\n/metrics:\n{text}"
    );

    // the series the alerts need, with the labels they group by
    let sample = |prefix: &str| {
        text.lines()
            .any(|l| l.starts_with(prefix) && !l.starts_with('#'))
    };
    let quota_host = quota.addr().to_string();
    for prefix in [
        // no leader election in tests: the controllers run at once
        "imagestream_operator_leader 1".to_string(),
        // the dry runs that wait for the webhooks, and the stream's create
        r#"imagestream_operator_admission_reviews_total{webhook="mutate/imagestreams",result="patched"}"#.into(),
        r#"imagestream_operator_admission_reviews_total{webhook="validate/imagestreams",result="denied"}"#.into(),
        r#"imagestream_operator_admission_review_duration_seconds_bucket{le="+Inf",webhook="mutate/imagestreams"}"#.into(),
        r#"imagestream_operator_reconcile_duration_seconds_count{controller="imagestream"}"#.into(),
        r#"imagestream_operator_reconcile_errors_total{controller="imagetrigger",reason="TriggerPatchFailed"}"#.into(),
        r#"imagestream_operator_image_trigger_patches_total{kind="Deployment"} 1"#.into(),
        r#"imagestream_operator_image_lookup_reviews_total{"#.into(),
        format!(
            r#"imagestream_operator_notifications_total{{receiver="{ns}/registry",type="distribution",outcome="unauthorized"}} 1"#
        ),
        format!(
            r#"imagestream_operator_registry_quota_remaining{{registry="{quota_host}",credential="anonymous"}} 76"#
        ),
        format!(
            r#"imagestream_operator_registry_quota_limit{{registry="{quota_host}",credential="anonymous"}} 100"#
        ),
        r#"imagestream_operator_imports_total{"#.into(),
        "imagestream_operator_scheduled_interval_seconds 900".into(),
        "imagestream_operator_scheduled_streams 1".into(),
        "process_cpu_seconds_total ".into(),
        "process_resident_memory_bytes ".into(),
        "process_open_fds ".into(),
        "process_start_time_seconds ".into(),
    ] {
        assert!(sample(&prefix), "no sample {prefix}… in:\n{text}");
    }

    let dp = DeleteParams::default();
    let _ = Api::<ValidatingAdmissionPolicyBinding>::all(admin.clone())
        .delete(&policy, &dp)
        .await;
    let _ = Api::<ValidatingAdmissionPolicy>::all(admin.clone())
        .delete(&policy, &dp)
        .await;
    op.finish().await;
}
