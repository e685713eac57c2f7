//! `imagestream-operator inspect <reference>`: one import, run the way the operator runs it,
//! for a user checking access to a registry (as `oc image info` or `skopeo inspect` do).
//!
//! It goes through the same importer, registry client, credential matching and policy as the
//! controllers, so "inspect works" means "the operator can import this". The Images are
//! printed as a `v1` `List` (YAML or JSON); with `verbose` every HTTP exchange is listed on
//! the error stream. A failed import is an [`InspectError`] with upstream's status reason.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::config::Platform;
use crate::credentials::{CredentialError, Keyring};
use crate::import::contract::{Batch, CaBundle, Failure, ImageImport, Mode, Settings};
use crate::import::importer::{self, Importer};
use crate::reference::DockerImageReference;
use crate::registry::{ClientCache, Exchange, RegistryConfig, RequestObserver};

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Yaml,
    Json,
}

/// What to inspect and how.
#[derive(Clone, Debug)]
pub struct Options {
    pub reference: String,
    /// Skip TLS verification and fall back to plain HTTP.
    pub insecure: bool,
    /// A pull secret (YAML/JSON Secret or list), a docker `config.json` or a `.dockercfg`.
    pub pull_secret: Option<PathBuf>,
    /// Extra CA certificates (PEM) to trust for the registry.
    pub ca_file: Option<PathBuf>,
    pub mode: Mode,
    /// The platform Legacy mode picks from a manifest list.
    pub platform: Option<Platform>,
    pub output: Output,
    pub verbose: bool,
    /// Total time for one registry request.
    pub timeout: Duration,
}

/// Why inspect failed; [`InspectError::reason`] is stable.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("{0}")]
    Import(Failure),
    #[error("reading the pull secret: {0}")]
    PullSecret(#[from] CredentialError),
    #[error("reading the CA file {path}: {source}")]
    CaFile {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid platform {0:?}: expected os/architecture[/variant], e.g. linux/arm64/v8")]
    Platform(String),
    #[error("encoding the result: {0}")]
    Encode(String),
    #[error("writing the result: {0}")]
    Write(#[from] std::io::Error),
}

impl InspectError {
    pub fn reason(&self) -> &str {
        match self {
            InspectError::Import(f) => f.reason,
            InspectError::PullSecret(e) => e.reason(),
            InspectError::CaFile { .. } => "CAFileUnreadable",
            InspectError::Platform(_) => "InvalidPlatform",
            InspectError::Encode(_) => "EncodingFailed",
            InspectError::Write(_) => "WriteFailed",
        }
    }
}

/// Parses `os/architecture[/variant]`.
pub fn parse_platform(s: &str) -> Result<Platform, InspectError> {
    let parts: Vec<&str> = s.split('/').collect();
    match parts.as_slice() {
        [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
            os: (*os).into(),
            architecture: (*arch).into(),
            variant: None,
        }),
        [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => {
            Ok(Platform {
                os: (*os).into(),
                architecture: (*arch).into(),
                variant: Some((*variant).into()),
            })
        }
        _ => Err(InspectError::Platform(s.into())),
    }
}

/// Lists every exchange for `--verbose`.
#[derive(Default)]
struct Transcript {
    lines: Mutex<Vec<String>>,
}

impl RequestObserver for Transcript {
    fn on_exchange(&self, e: &Exchange<'_>) {
        let status = e
            .status
            .map_or_else(|| "no response".into(), |s| s.to_string());
        let line = format!(
            "{} {} -> {status} ({} ms)",
            e.method,
            e.url,
            e.duration.as_millis()
        );
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }
}

/// Runs the import and writes the Images to `out` (and the transcript to `log` when verbose).
pub async fn run(
    options: &Options,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<(), InspectError> {
    let keyring = match &options.pull_secret {
        Some(path) => Keyring::from_file(path)?,
        None => Keyring::empty(),
    };
    for warning in keyring.warnings() {
        writeln!(log, "warning: {warning}")?;
    }
    let mut settings = Settings {
        default_platform: options.platform.clone().unwrap_or_default(),
        ..Settings::default()
    };
    if let Some(path) = &options.ca_file {
        let pem = std::fs::read(path).map_err(|source| InspectError::CaFile {
            path: path.display().to_string(),
            source,
        })?;
        if let Ok(parsed) = DockerImageReference::parse(&options.reference) {
            let registry = parsed.docker_client_defaults().registry;
            settings.ca_bundles = HashMap::from([(registry, Arc::new(CaBundle::new(pem)))]);
        }
    }

    let transcript = Arc::new(Transcript::default());
    let config = RegistryConfig {
        timeout: options.timeout,
        observer: options
            .verbose
            .then(|| transcript.clone() as Arc<dyn RequestObserver>),
        ..RegistryConfig::default()
    };
    let importer = Importer::new(ClientCache::new(config, 4, Duration::from_secs(60)));
    let batch = Batch {
        images: vec![ImageImport {
            insecure: options.insecure,
            ..ImageImport::new(options.reference.clone(), options.mode)
        }],
        repository: None,
    };
    let known: HashMap<String, bool> = HashMap::new();
    let result = importer
        .import(&batch, &keyring, &known, &settings, jiff::Timestamp::now())
        .await;

    if options.verbose {
        let lines = std::mem::take(
            &mut *transcript
                .lines
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for line in lines {
            writeln!(log, "{line}")?;
        }
    }

    let imported = match result.images.into_iter().next() {
        Some(Ok(imported)) => imported,
        Some(Err(failure)) => return Err(InspectError::Import(failure)),
        None => return Err(InspectError::Encode("the import produced no result".into())),
    };
    // The image the reference resolved to first, then its children.
    let mut items: Vec<serde_json::Value> = Vec::new();
    let mut images: Vec<_> = result.new_images.into_values().collect();
    images.sort_by_key(|i| importer::image_digest(i).as_deref() != Some(imported.image.as_str()));
    for image in images {
        items.push(serde_json::to_value(&image).map_err(|e| InspectError::Encode(e.to_string()))?);
    }
    let list = serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": items });
    match options.output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut *out, &list)
                .map_err(|e| InspectError::Encode(e.to_string()))?;
            writeln!(out)?;
        }
        Output::Yaml => {
            let text =
                serde_saphyr::to_string(&list).map_err(|e| InspectError::Encode(e.to_string()))?;
            out.write_all(text.as_bytes())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_with_and_without_variant() {
        assert_eq!(
            parse_platform("linux/arm64/v8").unwrap(),
            Platform {
                os: "linux".into(),
                architecture: "arm64".into(),
                variant: Some("v8".into())
            }
        );
        assert_eq!(parse_platform("linux/amd64").unwrap(), Platform::default());
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", ""] {
            let err = parse_platform(bad).unwrap_err();
            assert_eq!(err.reason(), "InvalidPlatform", "{bad}");
        }
    }
}
