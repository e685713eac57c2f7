//! The alerts and the dashboard (issue 19) without a cluster: the real promtool checks the
//! rule file and runs its unit tests (deploy/monitoring/tests/), every alert is tested firing
//! and quiet and has its runbook in the README, and the dashboard is a whole Grafana
//! dashboard. That every metric they use is exported is checked against a real scrape in
//! tests/monitoring_on_cluster.rs.

mod support;

use std::collections::BTreeSet;

use serde_json::Value;

use support::monitoring::{alerts, dashboard, dashboard_exprs, metric_names, panels};
use support::tools::{self, REPO};

const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/monitoring/prometheus-rules.yaml"
);
const RULE_TESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/monitoring/tests");
const RUNBOOKS: &str =
    "https://github.com/imagestream-operator/imagestream-operator/blob/main/README.md";

fn rule_tests() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(RULE_TESTS)
        .expect("deploy/monitoring/tests")
        .map(|e| e.expect("entry").path().to_string_lossy().into_owned())
        .filter(|p| p.ends_with(".yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no rule tests in {RULE_TESTS}");
    files
}

#[test]
fn promtool_checks_the_rules_and_passes_their_unit_tests() {
    let out = tools::run(tools::promtool().args(["check", "rules", RULES]));
    println!("{out}");
    let count = alerts().len();
    assert!(
        out.contains(&format!("SUCCESS: {count} rules found")),
        "{out}"
    );
    let out = tools::run(tools::promtool().args(["test", "rules"]).args(rule_tests()));
    println!("{out}");
    assert!(out.contains("SUCCESS"), "{out}");
    assert!(!out.contains("FAILED"), "{out}");
}

/// The GitHub anchor of a heading: lower case, spaces to dashes, punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn every_alert_fires_and_stays_quiet_in_a_test_and_has_a_runbook() {
    let readme = std::fs::read_to_string(format!("{REPO}/README.md")).expect("README");
    let anchors: BTreeSet<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect();
    let mut fired = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for file in rule_tests() {
        let yaml = std::fs::read_to_string(&file).expect("rule test");
        let tests: Value = serde_saphyr::from_str(&yaml).expect("rule test YAML");
        for test in tests["tests"].as_array().expect("tests") {
            for case in test["alert_rule_test"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                let name = case["alertname"].as_str().expect("alertname").to_string();
                match case["exp_alerts"].as_array() {
                    Some(expected) if !expected.is_empty() => fired.insert(name),
                    _ => quiet.insert(name),
                };
            }
        }
    }
    let alerts = alerts();
    assert!(alerts.len() >= 9, "{alerts:?}");
    for alert in &alerts {
        let name = alert["alert"].as_str().expect("alert name");
        assert!(fired.contains(name), "no test makes {name} fire");
        assert!(quiet.contains(name), "no test keeps {name} quiet");
        let severity = alert["labels"]["severity"].as_str().unwrap_or_default();
        assert!(
            ["warning", "critical"].contains(&severity),
            "{name}: severity {severity:?}"
        );
        for annotation in ["summary", "description"] {
            assert!(
                alert["annotations"][annotation]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "{name}: no {annotation}"
            );
        }
        let runbook = alert["annotations"]["runbook_url"]
            .as_str()
            .unwrap_or_default();
        let section = name.to_lowercase();
        assert_eq!(runbook, format!("{RUNBOOKS}#{section}"), "{name}");
        assert!(
            anchors.contains(&section),
            "{name}: the README has no section `{name}` (anchor #{section})"
        );
    }
}

#[test]
fn the_dashboard_is_a_whole_grafana_dashboard() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "imagestream-operator");
    assert!(dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    // a data source chosen on import, and the scrape job(s) of the operator
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(variables, ["datasource", "job"]);
    let mut ids = BTreeSet::new();
    let mut titles = BTreeSet::new();
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().unwrap_or_default().to_string();
        assert!(ids.insert(panel["id"].as_u64().expect("id")), "{title}: id");
        let grid = &panel["gridPos"];
        let (x, w) = (
            grid["x"].as_u64().expect("x"),
            grid["w"].as_u64().expect("w"),
        );
        assert!(x + w <= 24, "{title}: wider than the dashboard");
        if panel["type"] == "row" {
            continue;
        }
        assert!(titles.insert(title.clone()), "two panels named {title}");
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            assert!(!metric_names(expr).is_empty(), "{title}: {expr}");
            // the process_* names are every process's: only the operator's job is shown
            assert!(
                expr.contains(r#"job=~"$job""#),
                "{title}: {expr} is not limited to $job"
            );
        }
    }
    // what the issue asks to see
    let exprs = dashboard_exprs(&dashboard).join("\n");
    for wanted in [
        "imagestream_operator_imports_total",
        "imagestream_operator_registry_requests_total",
        "imagestream_operator_registry_budget_remaining",
        "imagestream_operator_reconciles_in_flight",
        "imagestream_operator_reconcile_duration_seconds_bucket",
        "imagestream_operator_scheduled_checks_total",
        "imagestream_operator_scheduled_interval_seconds",
        "imagestream_operator_scheduled_check_delay_seconds_bucket",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    ] {
        assert!(
            exprs.contains(wanted),
            "the dashboard does not show {wanted}"
        );
    }
}
