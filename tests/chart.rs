//! The Helm chart (issue 19) without a cluster, with the real helm: `helm lint`, deploy/ being
//! the chart rendered (one source of truth), and values that turn parts of the operator on
//! and off as the flags of `imagestream-operator run`. The install, upgrade and uninstall on
//! a cluster are in tests/chart_on_cluster.rs.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use support::tools::{self, CHART, REPO};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/chart");

fn fixture(name: &str) -> String {
    format!("{FIXTURES}/{name}")
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

fn kinds(objects: &[Value]) -> Vec<(String, String)> {
    objects
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap_or_default().to_string(),
                o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

fn container(objects: &[Value]) -> &Value {
    &find(objects, "Deployment", "imagestream-operator").expect("the Deployment")["spec"]["template"]
        ["spec"]["containers"][0]
}

fn args(objects: &[Value]) -> Vec<String> {
    serde_json::from_value(container(objects)["args"].clone()).unwrap_or_default()
}

#[test]
fn the_chart_lints_with_every_values_file() {
    for values in [
        None,
        Some("install.yaml"),
        Some("upgrade.yaml"),
        Some("everything.yaml"),
    ] {
        let mut cmd = tools::helm();
        cmd.args(["lint", "--strict", CHART]);
        if let Some(values) = values {
            cmd.args(["--values", &fixture(values)]);
        }
        let out = tools::run(&mut cmd);
        assert!(
            out.contains("1 chart(s) linted, 0 chart(s) failed"),
            "{out}"
        );
    }
    // a combination the operator refuses is refused at render time
    let out = tools::output(tools::helm().args(["template", "x", CHART]).args([
        "--set",
        "leaderElection=false",
        "--set",
        "replicas=2",
    ]));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("leaderElection: false runs the controllers in every replica"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Files of `dir` (relative paths, recursively), with their contents.
fn files(dir: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path
                    .strip_prefix(dir)
                    .expect("below dir")
                    .to_string_lossy()
                    .into_owned();
                found.insert(
                    relative,
                    std::fs::read_to_string(&path).expect("UTF-8 file"),
                );
            }
        }
    }
    found
}

/// deploy/ is the chart rendered by scripts/render-deploy.sh: the same files, byte for byte,
/// and nothing else but the hand-written kustomizations, namespace and alert tests.
#[test]
fn deploy_is_the_chart_rendered() {
    let rendered = tempfile::tempdir().expect("tempdir");
    tools::run(
        std::process::Command::new(format!("{REPO}/scripts/render-deploy.sh")).arg(rendered.path()),
    );
    let rendered = files(rendered.path());
    let deploy = files(&Path::new(REPO).join("deploy"));
    let fix = "deploy/ differs from the chart: edit charts/imagestream-operator and run \
               scripts/render-deploy.sh";
    for (path, text) in &rendered {
        assert_eq!(deploy.get(path), Some(text), "{fix} (deploy/{path})");
    }
    let hand_written = |path: &str| {
        [
            "kustomization.yaml",
            "namespace.yaml",
            "monitoring/kustomization.yaml",
        ]
        .contains(&path)
            || path.starts_with("monitoring/tests/")
    };
    for path in deploy.keys() {
        assert!(
            rendered.contains_key(path) || hand_written(path),
            "deploy/{path} is neither rendered from the chart nor one of the hand-written files"
        );
    }
    for expected in [
        "rbac.yaml",
        "admission-rbac.yaml",
        "user-roles.yaml",
        "service-account.yaml",
        "deployment.yaml",
        "service.yaml",
        "monitoring/prometheus-rules.yaml",
        "monitoring/prometheus-rule.yaml",
        "monitoring/service-monitor.yaml",
        "monitoring/dashboard.json",
    ] {
        assert!(rendered.contains_key(expected), "{expected} not rendered");
    }
    // the CRDs of the chart are crds/, which tests elsewhere keep in step with the Rust types
    let with_crds = tools::run(
        tools::helm()
            .args(["template", "imagestream-operator", CHART, "--include-crds"])
            .args(["--namespace", "imagestream-operator"]),
    );
    let mut crds: Vec<String> = tools::documents(&with_crds)
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .map(|o| {
            format!(
                "{}.yaml",
                o["metadata"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    crds.sort();
    let mut generated: Vec<String> = std::fs::read_dir(format!("{REPO}/crds"))
        .expect("crds/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml") && f != "kustomization.yaml")
        .collect();
    generated.sort();
    assert_eq!(crds, generated);
}

/// The default values render the install of deploy/: no arguments (the operator's defaults),
/// two replicas with a PodDisruptionBudget, every part on, no import settings object.
#[test]
fn the_defaults_are_the_operators_defaults() {
    let objects = tools::template(&[]);
    assert_eq!(args(&objects), Vec::<String>::new());
    let deployment = find(&objects, "Deployment", "imagestream-operator").expect("Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(container(&objects)["image"], "imagestream-operator");
    assert!(find(&objects, "PodDisruptionBudget", "imagestream-operator").is_some());
    for name in [
        "imagestream-operator",
        "imagestream-operator-triggers",
        "imagestream-operator-admission",
        "imagestream-operator:aggregate-to-view",
        "imagestream-operator:aggregate-to-edit",
        "system:image-puller",
    ] {
        assert!(find(&objects, "ClusterRole", name).is_some(), "{name}");
    }
    let names = kinds(&objects);
    assert!(
        !names.iter().any(|(k, _)| {
            k == "ImageImportConfig" || k == "ServiceMonitor" || k == "PrometheusRule"
        }),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|(k, _)| k.ends_with("WebhookConfiguration"))
    );
}

/// Values become `run` flags, roles follow the parts that are on, and the scheduled-import
/// settings become the `cluster` ImageImportConfig, kept on uninstall.
#[test]
fn values_choose_the_parts_that_run() {
    let objects = tools::template(&[
        "--set",
        "imageTriggers.enabled=false",
        "--set",
        "receivers.enabled=false",
        "--set",
        "leaderElection=false",
        "--set",
        "replicas=1",
        "--set",
        "logFormat=json",
        "--set",
        "concurrency=8",
        "--set",
        "watchNamespace=apps",
        "--set",
        "shutdownGraceSeconds=45",
        "--set",
        "userRoles.enabled=false",
        "--set",
        "imageLookup.namespaceSelector.matchLabels.team=web",
        "--set",
        "scheduledImport.intervalSeconds=60",
        "--set",
        "scheduledImport.maxPerMinute=-1",
    ]);
    assert_eq!(
        args(&objects),
        [
            "--watch-namespace=apps",
            "--concurrency=8",
            "--shutdown-grace=45",
            "--no-leader-elect",
            "--no-image-triggers",
            r#"--image-lookup-namespace-selector={"matchLabels":{"team":"web"}}"#,
            "--no-receivers",
            "--log-format=json",
        ]
    );
    let deployment = find(&objects, "Deployment", "imagestream-operator").expect("Deployment");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
        55
    );
    // one replica: no budget for disruptions to keep
    assert!(find(&objects, "PodDisruptionBudget", "imagestream-operator").is_none());
    assert!(find(&objects, "ClusterRole", "imagestream-operator-triggers").is_none());
    assert!(
        find(
            &objects,
            "ClusterRoleBinding",
            "imagestream-operator-triggers"
        )
        .is_none()
    );
    assert!(find(&objects, "ClusterRole", "system:image-puller").is_none());
    let config = find(&objects, "ImageImportConfig", "cluster").expect("ImageImportConfig");
    assert_eq!(
        config["spec"],
        json!({
            "scheduledImageImportMinimumIntervalSeconds": 60,
            "maxScheduledImageImportsPerMinute": -1,
        })
    );
    assert_eq!(
        config["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );

    // the image lookup webhook off: no selector for it either
    let objects = tools::template(&[
        "--set",
        "imageLookup.enabled=false",
        "--set",
        "imageLookup.namespaceSelector.matchLabels.team=web",
        "--set",
        "scheduledImport.enabled=false",
    ]);
    assert_eq!(args(&objects), ["--no-image-lookup"]);
    assert_eq!(
        find(&objects, "ImageImportConfig", "cluster").expect("config")["spec"],
        json!({"disableScheduledImport": true})
    );

    // every flag the chart can write is one `imagestream-operator run` has
    let help = tools::run(
        std::process::Command::new(env!("CARGO_BIN_EXE_imagestream-operator"))
            .args(["run", "--help"]),
    );
    let everything = tools::template(&["--values", &fixture("everything.yaml")]);
    let written: Vec<String> = args(&everything)
        .into_iter()
        .chain(args(&objects))
        .chain(
            [
                "--no-leader-elect",
                "--no-image-triggers",
                "--no-receivers",
                "--webhook-service",
            ]
            .map(String::from),
        )
        .collect();
    for flag in &written {
        let name = flag.split('=').next().unwrap_or_default();
        assert!(
            help.split_whitespace().any(|word| word == name),
            "run has no {name}:\n{help}"
        );
    }
}

/// Another release name prefixes every name and tells the operator its Service.
#[test]
fn another_release_name_prefixes_the_objects() {
    let yaml = tools::run(
        tools::helm()
            .args(["template", "images", CHART])
            .args(["--namespace", "platform"]),
    );
    let objects = tools::documents(&yaml);
    let deployment =
        find(&objects, "Deployment", "images-imagestream-operator").expect("Deployment");
    let args: Vec<String> = serde_json::from_value(
        deployment["spec"]["template"]["spec"]["containers"][0]["args"].clone(),
    )
    .expect("args");
    assert_eq!(args, ["--webhook-service=images-imagestream-operator"]);
    assert!(find(&objects, "Service", "images-imagestream-operator").is_some());
    let binding = find(
        &objects,
        "ClusterRoleBinding",
        "images-imagestream-operator",
    )
    .expect("binding");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "images-imagestream-operator", "namespace": "platform"}])
    );
}

/// The monitoring objects: a ServiceMonitor on the Service's metrics port, the alerts as a
/// PrometheusRule (runbooks at a base of the installer's choice), the dashboard in a ConfigMap
/// for Grafana's sidecar: each the file it comes from.
#[test]
fn monitoring_objects_carry_the_files() {
    let objects = tools::template(&["--values", &fixture("everything.yaml")]);
    let monitor = find(&objects, "ServiceMonitor", "imagestream-operator").expect("ServiceMonitor");
    let service = find(&objects, "Service", "imagestream-operator").expect("Service");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["interval"], "15s");
    assert!(
        service["spec"]["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .any(|p| p["name"] == "metrics")
    );
    for (label, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("selector")
    {
        assert_eq!(&service["metadata"]["labels"][label], value, "{label}");
    }
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");

    let rule = find(&objects, "PrometheusRule", "imagestream-operator").expect("PrometheusRule");
    let file = std::fs::read_to_string(format!("{CHART}/files/prometheus-rules.yaml"))
        .expect("rules file")
        .replace(
            "https://github.com/imagestream-operator/imagestream-operator/blob/main/README.md",
            "https://wiki.example/imagestream-operator",
        );
    let expected: Value = serde_saphyr::from_str(&file).expect("rules YAML");
    assert_eq!(rule["spec"], expected);
    assert!(file.contains("https://wiki.example/imagestream-operator#imagestreamimportsfailing"));

    let dashboard =
        find(&objects, "ConfigMap", "imagestream-operator-dashboard").expect("ConfigMap");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let json = dashboard["data"]["imagestream-operator.json"]
        .as_str()
        .expect("dashboard");
    let file = std::fs::read_to_string(format!("{CHART}/files/dashboard.json")).expect("dashboard");
    assert_eq!(json.trim_end(), file.trim_end());
}
