//! The probes and Prometheus metrics (issue 7) of the whole operator: `/livez` and `/readyz`
//! answer, and an import shows up in the import and registry-request families.

mod support;

use std::time::{Duration, Instant};

use kube::api::PostParams;
use serde_json::json;

use imagestream_operator::api::image_stream::ImageStream;
use support::images::{ImageSpec, TestImage};
use support::operator::{Running, items};
use support::registry::RegistryOptions;

async fn get(port: u16, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .expect("GET");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[tokio::test]
async fn probes_answer_and_imports_are_counted() {
    let reg = RegistryOptions::plain().start();
    let image: TestImage = ImageSpec::single("amd64", 991).build().into();
    let digest = reg.client().push("app", "v1", &image).await.expect("push");
    let op = Running::start("metrics").await;
    assert_eq!(get(op.probes_port, "/livez").await.0, 200);
    // ready once its caches have synced, which may come after the webhooks answer
    let ready_by = Instant::now() + Duration::from_secs(30);
    while get(op.probes_port, "/readyz").await.0 != 200 {
        assert!(Instant::now() < ready_by, "never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get(op.probes_port, "/nope").await.0, 404);

    let stream: ImageStream = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": "app"},
        "spec": {"tags": [{"name": "t", "importPolicy": {"insecure": true},
            "from": {"kind": "DockerImage", "name": reg.image_ref("app", "v1")}}]},
    }))
    .expect("stream");
    op.streams()
        .create(&PostParams::default(), &stream)
        .await
        .expect("create");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = op.streams().get("app").await.expect("get");
        if items(&s, "t").first().is_some_and(|e| e.image == digest) {
            break;
        }
        assert!(Instant::now() < deadline, "not imported");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, text) = get(op.probes_port, "/metrics").await;
    assert_eq!(status, 200);
    let registry = reg.image_ref("app", "v1");
    let host = registry.split('/').next().expect("host");
    for expected in [
        format!(
            r#"imagestream_operator_imports_total{{registry="{host}",result="new",reason=""}} 1"#
        ),
        format!(
            r#"imagestream_operator_registry_requests_total{{registry="{host}",method="GET",code="200"}}"#
        ),
        "imagestream_operator_import_duration_seconds_count".to_string(),
    ] {
        assert!(text.contains(&expected), "{expected} missing from:\n{text}");
    }
    op.finish().await;
}
