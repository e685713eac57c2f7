//! The cluster configuration objects (`ImageConfig`, `ImageImportConfig`, both named
//! `cluster`) turned into the settings the controllers use, with every default applied in one
//! place (`config::effective_*`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::api::image_stream::ImportMode;
use crate::config::{ImageConfigSpec, ImageImportConfigSpec};
use crate::import::contract::{self, CaBundle, Mode};
use crate::registry::config::RegistryConfig;
use crate::registry::policy::BlockedRegistries;
use crate::stream::sync::Repositories;
use crate::stream::views::ViewKinds;

/// Everything the imagestream controller reads from configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub repositories: Repositories,
    pub import: contract::Settings,
    /// The import mode of tags that name none (`imageStreamImportMode`).
    pub default_mode: Mode,
    /// `None` when scheduled imports are disabled.
    pub scheduled_interval: Option<Duration>,
    /// Cluster-wide scheduled checks per minute; `None` is unlimited.
    pub scheduled_per_minute: Option<u32>,
    /// `(host[:port] glob, checks per minute)`, first match wins.
    pub registry_budgets: Vec<(String, u32)>,
    pub max_tag_history: Option<usize>,
    pub max_image_stream_bytes: usize,
    /// How long request objects (ImageStreamMapping, ImageStreamImport) are kept before removal.
    pub request_time_to_live: Duration,
    /// Transport settings shared by every registry client.
    pub registry: RegistryConfig,
    /// The view kinds kept beside each stream.
    pub views: ViewKinds,
}

impl Default for Settings {
    fn default() -> Self {
        Settings::new(None, None, HashMap::new())
    }
}

impl Settings {
    /// From the two configuration objects (absent ones mean "all defaults") and the CA
    /// bundles of `additionalTrustedCA` (ConfigMap keys `host` or `host..port`).
    pub fn new(
        image: Option<&ImageConfigSpec>,
        import: Option<&ImageImportConfigSpec>,
        ca_config_map: HashMap<String, String>,
    ) -> Settings {
        let image = image.cloned().unwrap_or_default();
        let import = import.cloned().unwrap_or_default();
        let sources = image.registry_sources.clone().unwrap_or_default();
        let ca_bundles = ca_config_map
            .into_iter()
            .map(|(key, pem)| {
                (
                    key.replacen("..", ":", 1),
                    Arc::new(CaBundle::new(pem.into_bytes())),
                )
            })
            .collect();
        let budgets = import
            .registry_budgets
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|b| {
                let per_minute = u32::try_from(b.imports_per_minute?).ok()?;
                Some((b.registry, per_minute))
            })
            .collect();
        let concurrency_overrides = import
            .registry_budgets
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|b| {
                let limit = usize::try_from(b.max_concurrent_requests?).ok()?;
                Some((b.registry, limit))
            })
            .collect();
        let first = |v: &Option<Vec<String>>| {
            v.as_ref()
                .and_then(|v| v.first().cloned())
                .filter(|s| !s.is_empty())
        };
        Settings {
            repositories: Repositories {
                internal: image
                    .internal_registry_hostname
                    .clone()
                    .filter(|s| !s.is_empty()),
                external: first(&image.external_registry_hostnames),
            },
            import: contract::Settings {
                default_platform: import.effective_default_platform(),
                bulk_import_limit: import.effective_bulk_import_limit(),
                insecure_registries: sources.insecure_registries.clone().unwrap_or_default(),
                ca_bundles,
                policies: Default::default(),
                referrers: import.effective_referrers(),
            },
            default_mode: match image.image_stream_import_mode.as_deref() {
                Some("PreserveOriginal") => Mode::PreserveOriginal,
                _ => Mode::Legacy,
            },
            scheduled_interval: (!import.disable_scheduled_import.unwrap_or(false))
                .then(|| import.effective_scheduled_interval()),
            scheduled_per_minute: import.effective_scheduled_imports_per_minute(),
            registry_budgets: budgets,
            max_tag_history: import.effective_max_tag_history(),
            max_image_stream_bytes: import.effective_max_image_stream_bytes(),
            request_time_to_live: import.effective_request_time_to_live(),
            views: ViewKinds::from_config(import.views.as_ref()),
            registry: RegistryConfig {
                timeout: import.effective_request_timeout(),
                max_concurrent_per_registry: import.effective_concurrency_per_registry(),
                concurrency_overrides,
                // The controllers import on behalf of the stream, whose references the
                // admission webhook checked against allowedRegistriesForImport (as
                // upstream's controller, which may create Images, bypasses it).
                allowed: None,
                blocked: BlockedRegistries::new(
                    sources.blocked_registries.clone().unwrap_or_default(),
                ),
                ..RegistryConfig::default()
            },
        }
    }

    /// The wire value of a tag's import mode when none is set.
    pub fn default_import_mode(&self) -> ImportMode {
        match self.default_mode {
            Mode::Legacy => ImportMode::Legacy,
            Mode::PreserveOriginal => ImportMode::PreserveOriginal,
        }
    }

    /// Whether two settings need different registry clients (tokens are then dropped).
    pub fn same_transport(&self, other: &Settings) -> bool {
        let a = &self.registry;
        let b = &other.registry;
        a.timeout == b.timeout
            && a.max_concurrent_per_registry == b.max_concurrent_per_registry
            && a.concurrency_overrides == b.concurrency_overrides
            && a.blocked == b.blocked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RegistryBudget, RegistrySources};

    #[test]
    fn defaults_are_openshifts() {
        let s = Settings::default();
        assert_eq!(s.repositories, Repositories::default());
        assert_eq!(s.default_mode, Mode::Legacy);
        assert_eq!(s.scheduled_interval, Some(Duration::from_secs(900)));
        assert_eq!(s.scheduled_per_minute, Some(60));
        assert_eq!(s.import.bulk_import_limit, Some(50));
        assert_eq!(s.max_tag_history, None);
        assert_eq!(s.max_image_stream_bytes, 1 << 20);
        assert_eq!(s.request_time_to_live, Duration::from_secs(3600));
        assert!(s.registry.allowed.is_none());
        assert_eq!(s.views, ViewKinds::default(), "every view");
    }

    #[test]
    fn configuration_reaches_every_setting() {
        let image = ImageConfigSpec {
            internal_registry_hostname: Some("registry:5000".into()),
            external_registry_hostnames: Some(vec!["ext.example.com".into()]),
            image_stream_import_mode: Some("PreserveOriginal".into()),
            registry_sources: Some(RegistrySources {
                insecure_registries: Some(vec!["insecure:5000".into()]),
                blocked_registries: Some(vec!["blocked.example.com".into()]),
                ..RegistrySources::default()
            }),
            ..ImageConfigSpec::default()
        };
        let import = ImageImportConfigSpec {
            disable_scheduled_import: Some(true),
            registry_budgets: Some(vec![RegistryBudget {
                registry: "docker.io".into(),
                imports_per_minute: Some(10),
                max_concurrent_requests: Some(2),
            }]),
            max_tag_history: Some(5),
            request_time_to_live: Some("90s".into()),
            views: Some(crate::config::ViewsConfig {
                image_stream_images: Some(false),
                ..Default::default()
            }),
            ..ImageImportConfigSpec::default()
        };
        let s = Settings::new(
            Some(&image),
            Some(&import),
            HashMap::from([("reg.example.com..5000".to_string(), "PEM".to_string())]),
        );
        assert_eq!(s.repositories.internal.as_deref(), Some("registry:5000"));
        assert_eq!(s.repositories.external.as_deref(), Some("ext.example.com"));
        assert_eq!(s.default_mode, Mode::PreserveOriginal);
        assert_eq!(s.default_import_mode(), ImportMode::PreserveOriginal);
        assert_eq!(s.scheduled_interval, None);
        assert_eq!(s.registry_budgets, [("docker.io".to_string(), 10)]);
        assert_eq!(
            s.registry.concurrency_overrides,
            [("docker.io".to_string(), 2)]
        );
        assert_eq!(s.import.insecure_registries, ["insecure:5000"]);
        assert!(s.import.ca_bundles.contains_key("reg.example.com:5000"));
        assert!(s.registry.blocked.blocking("blocked.example.com").is_some());
        assert_eq!(s.max_tag_history, Some(5));
        assert_eq!(s.request_time_to_live, Duration::from_secs(90));
        assert!(!s.views.image_stream_images && s.views.image_stream_tags);
        assert!(!s.same_transport(&Settings::default()));
    }
}
