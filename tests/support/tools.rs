//! The Go tools the tests run, built from their modules by `tools/build.sh` (cached in the
//! machine's cache directory, so a warm call costs a hash): the real `helm` (helm.sh/helm/v4)
//! and the real `promtool` (github.com/prometheus/prometheus).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The repository's root.
pub const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// The chart's directory.
pub const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/imagestream-operator");

/// Path of `tools/build.sh NAME`'s binary, built on first use in this process.
fn binary(name: &'static str, cell: &'static OnceLock<PathBuf>) -> &'static Path {
    cell.get_or_init(|| {
        let out = Command::new(format!("{REPO}/tools/build.sh"))
            .arg(name)
            .output()
            .unwrap_or_else(|e| panic!("tools/build.sh {name}: {e}"));
        assert!(
            out.status.success(),
            "tools/build.sh {name} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// `helm`, with its cache, configuration and data in a directory of this process (no
/// repositories or plugins of the machine's user).
pub fn helm() -> Command {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    static HOME: OnceLock<tempfile::TempDir> = OnceLock::new();
    let home = HOME
        .get_or_init(|| tempfile::tempdir().expect("helm home"))
        .path();
    let mut cmd = Command::new(binary("helm", &BINARY));
    cmd.env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    cmd
}

/// `promtool`.
pub fn promtool() -> Command {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    Command::new(binary("promtool", &BINARY))
}

/// Runs `cmd`, panics with its output unless it succeeds, and returns its stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Runs `cmd` to its end.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("{cmd:?} did not start: {e}"))
}

/// The documents of a multi-document YAML text, empty ones left out.
pub fn documents(yaml: &str) -> Vec<serde_json::Value> {
    let documents: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(yaml).expect("YAML documents");
    documents.into_iter().filter(|d| !d.is_null()).collect()
}

/// `helm template` of the chart as release imagestream-operator in namespace
/// imagestream-operator, with `args` (values files, `--set`), as objects.
pub fn template(args: &[&str]) -> Vec<serde_json::Value> {
    let yaml = run(helm()
        .args(["template", "imagestream-operator", CHART])
        .args(["--namespace", "imagestream-operator"])
        .args(args));
    documents(&yaml)
}
