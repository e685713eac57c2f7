//! An [`ImagePolicy`] with its keys, trusted roots, globs and regular expressions read and
//! parsed: what verification runs against, and what the policy's `Ready` condition reports.
//!
//! The IO layer reads the Secrets and ConfigMaps a policy names ([`sources`]) from its caches
//! and hands their bytes to [`resolve`] through a lookup function; nothing here reads a
//! cluster. A problem (a missing Secret, a key that does not parse) does not drop the
//! authority: it stays, failing every verification with the problem's reason, so an
//! enforcing policy with a broken key refuses images instead of letting them through.

use sha2::{Digest, Sha256};

use super::key::{PublicKey, hex};
use super::policy::{
    Authority, Covers, DataSource, Enforcement, Glob, Identity, ImagePolicy, KeyReference,
    Requirement,
};
use super::root::TrustedRoot;
use super::verify::{Failure, FailureReason};
use crate::reference::DockerImageReference;

/// Where the bytes of a [`DataSource`] live in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceRef<'a> {
    Secret(&'a KeyReference),
    ConfigMap(&'a KeyReference),
}

/// Every Secret and ConfigMap key a policy reads, so the IO layer knows what to watch.
pub fn sources(policy: &ImagePolicy) -> Vec<SourceRef<'_>> {
    let mut out = Vec::new();
    for authority in &policy.spec.authorities {
        let data = [
            authority.key.as_ref(),
            authority.keyless.as_ref().map(|k| &k.trusted_root),
        ];
        for source in data.into_iter().flatten() {
            if let Some(r) = &source.secret_ref {
                out.push(SourceRef::Secret(r));
            }
            if let Some(r) = &source.config_map_ref {
                out.push(SourceRef::ConfigMap(r));
            }
        }
    }
    out
}

/// A policy ready to verify with.
#[derive(Clone, Debug)]
pub struct ResolvedPolicy {
    /// The policy's name.
    pub name: String,
    /// `metadata.generation`.
    pub generation: i64,
    pub globs: Vec<Glob>,
    pub enforcement: Enforcement,
    pub requirement: Requirement,
    pub authorities: Vec<ResolvedAuthority>,
    /// Problems found while resolving (bad globs, keys, roots, regular expressions).
    pub problems: Vec<Failure>,
    /// Hex SHA-256 over the generation and every byte read: the part of a verification cache
    /// key that changes when the policy or a key or root it reads changes.
    pub material: String,
}

/// One authority, ready or failing with the reason it could not be read.
#[derive(Clone, Debug)]
pub struct ResolvedAuthority {
    pub name: String,
    pub verifier: Result<Verifier, Failure>,
}

/// How an authority checks a signature.
#[derive(Clone, Debug)]
pub enum Verifier {
    /// A cosign public key.
    Key(PublicKey),
    /// Keyless: the identities accepted and the root their certificates chain to.
    Keyless {
        identities: Vec<IdentityMatcher>,
        root: TrustedRoot,
    },
}

/// An accepted issuer and subject.
#[derive(Clone, Debug)]
pub struct IdentityMatcher {
    pub issuer: Matcher,
    pub subject: Matcher,
}

/// An exact string or an anchored regular expression.
#[derive(Clone, Debug)]
pub enum Matcher {
    Exact(String),
    RegExp(regex::Regex),
}

impl Matcher {
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(s) => s == value,
            Matcher::RegExp(r) => r.is_match(value),
        }
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Matcher::Exact(s) => write!(f, "{s:?}"),
            Matcher::RegExp(r) => write!(f, "/{}/", r.as_str()),
        }
    }
}

impl IdentityMatcher {
    pub fn matches(&self, issuer: &str, subject: &str) -> bool {
        self.issuer.matches(issuer) && self.subject.matches(subject)
    }
}

impl Covers for ResolvedPolicy {
    fn covers(&self, reference: &DockerImageReference) -> bool {
        self.globs.iter().any(|g| g.matches(reference))
    }
    fn enforcement(&self) -> Enforcement {
        self.enforcement
    }
}

impl ResolvedPolicy {
    /// The policy's `Ready` condition: `(status, reason, message)`.
    pub fn ready(&self) -> (&'static str, &'static str, String) {
        match self.problems.first() {
            None => (
                "True",
                "Resolved",
                format!(
                    "{} authorities ready for {} globs",
                    self.authorities.len(),
                    self.globs.len()
                ),
            ),
            Some(first) => (
                "False",
                first.reason.as_str(),
                self.problems
                    .iter()
                    .map(|p| p.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        }
    }
}

/// Reads a policy's globs, keys, trusted roots and regular expressions. `lookup` returns the
/// bytes of a Secret or ConfigMap key, or why it cannot (`"Secret ns/name not found"`).
pub fn resolve(
    policy: &ImagePolicy,
    lookup: impl Fn(SourceRef<'_>) -> Result<Vec<u8>, String>,
) -> ResolvedPolicy {
    let name = policy.metadata.name.clone().unwrap_or_default();
    let generation = policy.metadata.generation.unwrap_or_default();
    let mut problems = Vec::new();
    let mut material = Sha256::new();
    material.update(generation.to_be_bytes());
    let globs = policy
        .spec
        .images
        .iter()
        .filter_map(|p| match Glob::parse(&p.glob) {
            Ok(g) => Some(g),
            Err(e) => {
                problems.push(Failure::new(FailureReason::GlobInvalid, e.to_string()));
                None
            }
        })
        .collect();
    let authorities = policy
        .spec
        .authorities
        .iter()
        .map(|a| {
            let verifier = verifier(a, &lookup, &mut material);
            if let Err(e) = &verifier {
                problems.push(e.clone());
            }
            ResolvedAuthority {
                name: a.name.clone(),
                verifier,
            }
        })
        .collect();
    ResolvedPolicy {
        name,
        generation,
        globs,
        enforcement: policy.spec.effective_enforcement(),
        requirement: policy.spec.effective_requirement(),
        authorities,
        problems,
        material: hex(&material.finalize()),
    }
}

fn verifier(
    authority: &Authority,
    lookup: &impl Fn(SourceRef<'_>) -> Result<Vec<u8>, String>,
    material: &mut Sha256,
) -> Result<Verifier, Failure> {
    let name = &authority.name;
    let mut read = |source: &DataSource, what: &str| -> Result<Vec<u8>, Failure> {
        let bytes = if let Some(data) = &source.data {
            Ok(data.as_bytes().to_vec())
        } else if let Some(r) = &source.secret_ref {
            lookup(SourceRef::Secret(r))
        } else if let Some(r) = &source.config_map_ref {
            lookup(SourceRef::ConfigMap(r))
        } else {
            Err("none of secretRef, configMapRef and data is set".to_string())
        };
        let bytes = bytes.map_err(|e| {
            Failure::new(
                FailureReason::SourceUnavailable,
                format!("authority {name:?}: the {what} cannot be read: {e}"),
            )
        })?;
        material.update((bytes.len() as u64).to_be_bytes());
        material.update(&bytes);
        Ok(bytes)
    };
    match (&authority.key, &authority.keyless) {
        (Some(key), None) => {
            let pem = read(key, "key")?;
            PublicKey::from_pem(&pem).map(Verifier::Key).map_err(|e| {
                Failure::new(
                    FailureReason::KeyInvalid,
                    format!("authority {name:?}: {e}"),
                )
            })
        }
        (None, Some(keyless)) => {
            let data = read(&keyless.trusted_root, "trusted root")?;
            let root = TrustedRoot::parse(&data).map_err(|e| {
                Failure::new(
                    FailureReason::TrustedRootInvalid,
                    format!("authority {name:?}: {e}"),
                )
            })?;
            let identities = keyless
                .identities
                .iter()
                .map(identity)
                .collect::<Result<Vec<_>, String>>()
                .map_err(|e| {
                    Failure::new(
                        FailureReason::IdentityInvalid,
                        format!("authority {name:?}: {e}"),
                    )
                })?;
            if identities.is_empty() {
                return Err(Failure::new(
                    FailureReason::IdentityInvalid,
                    format!("authority {name:?}: keyless lists no identity"),
                ));
            }
            Ok(Verifier::Keyless { identities, root })
        }
        _ => Err(Failure::new(
            FailureReason::KeyInvalid,
            format!("authority {name:?}: exactly one of key and keyless must be set"),
        )),
    }
}

fn identity(identity: &Identity) -> Result<IdentityMatcher, String> {
    let matcher = |exact: &Option<String>, re: &Option<String>, what: &str| match (exact, re) {
        (Some(s), None) => Ok(Matcher::Exact(s.clone())),
        (None, Some(re)) => regex::Regex::new(&format!("^(?:{re})$"))
            .map(Matcher::RegExp)
            .map_err(|e| format!("{what}RegExp {re:?}: {e}")),
        _ => Err(format!(
            "exactly one of {what} and {what}RegExp must be set"
        )),
    };
    Ok(IdentityMatcher {
        issuer: matcher(&identity.issuer, &identity.issuer_reg_exp, "issuer")?,
        subject: matcher(&identity.subject, &identity.subject_reg_exp, "subject")?,
    })
}

/// One value for the policies in force: it changes when a policy is added, removed or
/// changed, or a key or root one reads changes (what the controllers compare to re-verify
/// the tags the policies cover).
pub fn fingerprint(policies: &[ResolvedPolicy]) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    for p in policies {
        (&p.name, &p.material).hash(&mut hasher);
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::policy::{ImagePattern, ImagePolicySpec, KeylessAuthority};
    use crate::trust::tests::{TestCa, ec_key_pem};

    fn policy(authorities: Vec<Authority>) -> ImagePolicy {
        let mut p = ImagePolicy::new(
            "p",
            ImagePolicySpec {
                images: vec![ImagePattern {
                    glob: "quay.io/**".into(),
                }],
                authorities,
                ..Default::default()
            },
        );
        p.metadata.generation = Some(3);
        p
    }

    fn secret(name: &str) -> DataSource {
        DataSource {
            secret_ref: Some(KeyReference {
                name: name.into(),
                namespace: "ops".into(),
                key: "cosign.pub".into(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn keys_from_secrets_and_inline_data_resolve_and_the_policy_is_ready() {
        let (_, pem) = ec_key_pem();
        let p = policy(vec![
            Authority {
                name: "from-secret".into(),
                key: Some(secret("signing")),
                keyless: None,
            },
            Authority {
                name: "inline".into(),
                key: Some(DataSource {
                    data: Some(pem.clone()),
                    ..Default::default()
                }),
                keyless: None,
            },
        ]);
        assert_eq!(sources(&p).len(), 1);
        let resolved = resolve(&p, |_| Ok(pem.clone().into_bytes()));
        assert!(resolved.problems.is_empty(), "{:?}", resolved.problems);
        assert_eq!(resolved.ready().0, "True");
        assert!(resolved.authorities.iter().all(|a| a.verifier.is_ok()));
        assert_eq!(resolved.generation, 3);
    }

    #[test]
    fn a_missing_secret_or_a_bad_key_makes_the_policy_not_ready_with_its_reason() {
        let p = policy(vec![Authority {
            name: "k".into(),
            key: Some(secret("gone")),
            keyless: None,
        }]);
        let resolved = resolve(&p, |_| Err("Secret ops/gone not found".into()));
        let (status, reason, message) = resolved.ready();
        assert_eq!((status, reason), ("False", "SourceUnavailable"));
        assert!(message.contains("Secret ops/gone not found"), "{message}");
        assert!(resolved.authorities[0].verifier.is_err());

        let resolved = resolve(&p, |_| Ok(b"garbage".to_vec()));
        assert_eq!(resolved.ready().1, "KeyInvalid");
    }

    #[test]
    fn the_material_changes_when_a_key_changes() {
        let (_, a) = ec_key_pem();
        let (_, b) = ec_key_pem();
        let p = policy(vec![Authority {
            name: "k".into(),
            key: Some(secret("signing")),
            keyless: None,
        }]);
        let one = resolve(&p, |_| Ok(a.clone().into_bytes()));
        let again = resolve(&p, |_| Ok(a.clone().into_bytes()));
        let other = resolve(&p, |_| Ok(b.clone().into_bytes()));
        assert_eq!(one.material, again.material);
        assert_ne!(one.material, other.material);
    }

    #[test]
    fn identity_regular_expressions_are_anchored_and_bad_ones_are_reported() {
        let ca = TestCa::new("Root");
        let keyless = |subject_re: &str| Authority {
            name: "ci".into(),
            key: None,
            keyless: Some(KeylessAuthority {
                identities: vec![Identity {
                    issuer: Some("https://issuer.example.com".into()),
                    subject_reg_exp: Some(subject_re.into()),
                    ..Default::default()
                }],
                trusted_root: DataSource {
                    data: Some(ca.pem()),
                    ..Default::default()
                },
            }),
        };
        let resolved = resolve(&policy(vec![keyless(".*@example\\.com")]), |_| {
            Err("unused".into())
        });
        let Ok(Verifier::Keyless { identities, .. }) = &resolved.authorities[0].verifier else {
            panic!("keyless verifier expected: {resolved:?}");
        };
        assert!(identities[0].matches("https://issuer.example.com", "dev@example.com"));
        assert!(!identities[0].matches("https://issuer.example.com", "dev@example.com.evil"));
        assert!(!identities[0].matches("https://other.example.com", "dev@example.com"));

        let resolved = resolve(&policy(vec![keyless("(")]), |_| Err("unused".into()));
        assert_eq!(resolved.ready().1, "IdentityInvalid");
    }
}
