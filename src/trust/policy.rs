//! The `ImagePolicy` kind (cluster scoped): which images must be signed, and by whom.
//!
//! The shape is sigstore policy-controller's `ClusterImagePolicy` narrowed to what an importer
//! can check offline: `images` (globs), `authorities` (a cosign public key, or keyless cosign
//! with the identities allowed and a trusted root the user provides), `enforcement`
//! (`Enforce` refuses an image that fails, `Warn` imports it and says so) and `requirement`
//! (`AnyOf`, policy-controller's rule that one authority suffices, or `AllOf`). Keys and roots
//! come from a Secret, a ConfigMap or inline `data`; nothing is ever fetched from the network.
//!
//! No namespaced variant: a policy is the cluster administrator's statement of trust, and a
//! namespaced one that could only add requirements would be a second kind for little gain
//! (Kyverno and policy-controller both started cluster-wide).
//!
//! # Globs
//!
//! A glob is matched against the repository an image is imported from, normalised the Docker
//! way (`nginx` is `docker.io/library/nginx`); tags and digests never take part (a policy
//! covers a repository, whatever it is tagged). In a glob:
//!
//! - `*` matches any characters within one path segment (no `/`);
//! - `**` matches any characters across segments (including `/`), and may be empty;
//! - everything else matches itself.
//!
//! The glob is normalised like a reference: a first segment that has no `.`, `:` or `*` and is
//! not `localhost` is a Docker Hub path, so `nginx` means `docker.io/library/nginx` and
//! `team/*` means `docker.io/team/*`; `index.docker.io/` and `registry-1.docker.io/` mean
//! `docker.io/`. `**` alone covers every image. A trailing `/**` also covers the repository
//! itself (`quay.io/org/**` covers `quay.io/org/app` and `quay.io/org/app/sub`, not
//! `quay.io/org`).
//!
//! # Several policies
//!
//! Every policy whose globs cover an image applies ([`covering`]); the image must satisfy each
//! one, and the combined enforcement is `Enforce` if any covering policy enforces (a `Warn`
//! policy never weakens an `Enforce` one).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::reference::{DockerImageReference, is_registry_docker_hub};

/// An ImagePolicy's spec.
// each print column names its type: the lint takes the repeated `type_` for a duplicate
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[kube(
    group = "operator.imagestream.io",
    version = "v1alpha1",
    kind = "ImagePolicy",
    plural = "imagepolicies",
    shortname = "imgpol",
    status = "ImagePolicyStatus",
    derive = "Default",
    printcolumn(
        name = "Enforcement",
        type_ = "string",
        json_path = ".spec.enforcement"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    doc = "ImagePolicy says which images must be signed before they are imported, and by whom (sigstore policy-controller's ClusterImagePolicy, checked at import time). Every policy whose images globs cover the repository an image is imported from applies: the image must be signed by the authorities each one requires (any one of them by default). An image that fails an Enforce policy is not imported: the tag keeps its current image and reports why; an image that fails only Warn policies is imported with a warning. Keys and trusted roots come from Secrets, ConfigMaps or inline data; nothing is fetched from the network to verify a signature."
)]
#[serde(rename_all = "camelCase")]
pub struct ImagePolicySpec {
    /// images lists the repositories this policy covers, as globs: "*" matches within one
    /// path segment, "**" across segments; "nginx" means "docker.io/library/nginx". Tags and
    /// digests are not part of the match.
    #[schemars(length(min = 1))]
    pub images: Vec<ImagePattern>,

    /// authorities lists who may sign the covered images. Each one is a cosign public key or
    /// keyless cosign identities with the trusted root their certificates chain to.
    #[schemars(length(min = 1))]
    pub authorities: Vec<Authority>,

    /// enforcement is what happens to an image that fails: Enforce (it is not imported, the
    /// tag keeps its image and reports the failure) or Warn (it is imported and the failure is
    /// reported). Default: Enforce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<Enforcement>,

    /// requirement is how many authorities must have signed: AnyOf (one suffices, as in
    /// policy-controller) or AllOf (every one). Default: AnyOf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirement: Option<Requirement>,
}

/// One glob of repositories.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ImagePattern {
    /// glob matches repositories ("registry.example.com/team/*", "quay.io/org/**").
    #[schemars(length(min = 1))]
    pub glob: String,
}

/// What happens to an image that fails a policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum Enforcement {
    /// Not imported: the tag keeps its current image and reports the failure.
    #[default]
    Enforce,
    /// Imported; the failure is reported.
    Warn,
}

impl Enforcement {
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Enforce => "Enforce",
            Enforcement::Warn => "Warn",
        }
    }
}

/// How many authorities of a policy must have signed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum Requirement {
    /// One authority suffices.
    #[default]
    AnyOf,
    /// Every authority must have signed.
    AllOf,
}

/// Someone whose signature a policy accepts: exactly one of key and keyless.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.key) != has(self.keyless)")
        .message("exactly one of key and keyless must be set")
)]
pub struct Authority {
    /// name identifies the authority in conditions, events and metrics.
    #[schemars(length(min = 1))]
    pub name: String,
    /// key: cosign signatures made with this public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<DataSource>,
    /// keyless: cosign signatures made with a short-lived certificate (Fulcio's, or another
    /// certificate authority's) issued to one of the identities listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyless: Option<KeylessAuthority>,
}

/// Keyless cosign: the identities allowed and the roots their certificates chain to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeylessAuthority {
    /// identities lists the certificate identities accepted; a certificate matching any one of
    /// them passes.
    #[schemars(length(min = 1))]
    pub identities: Vec<Identity>,
    /// trustedRoot holds the certificate authorities the signing certificates must chain to,
    /// as a PEM bundle of CA certificates or sigstore's trusted_root.json (its
    /// certificateAuthorities and the transparency log keys, which date a signature by the
    /// log's signed entry timestamp). Without a log key, the certificate must be valid when
    /// the image is verified.
    pub trusted_root: DataSource,
}

/// An OIDC issuer and subject, each given exactly or as a regular expression.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.issuer) != has(self.issuerRegExp)")
        .message("exactly one of issuer and issuerRegExp must be set"),
    validation = Rule::new("has(self.subject) != has(self.subjectRegExp)")
        .message("exactly one of subject and subjectRegExp must be set")
)]
pub struct Identity {
    /// issuer is the OIDC issuer recorded in the certificate (Fulcio's issuer extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// subject is the certificate's subject alternative name (an email address or a URI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// issuerRegExp matches the issuer with a regular expression (anchored at both ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_reg_exp: Option<String>,
    /// subjectRegExp matches the subject with a regular expression (anchored at both ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_reg_exp: Option<String>,
}

/// Where a key or a trusted root is: exactly one of secretRef, configMapRef and data.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.secretRef) ? 1 : 0) + (has(self.configMapRef) ? 1 : 0) + (has(self.data) ? 1 : 0) == 1")
        .message("exactly one of secretRef, configMapRef and data must be set")
)]
pub struct DataSource {
    /// secretRef names a key of a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<KeyReference>,
    /// configMapRef names a key of a ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<KeyReference>,
    /// data holds the PEM (or trusted_root.json) inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// A key of a Secret or ConfigMap.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub struct KeyReference {
    /// name of the object.
    #[schemars(length(min = 1))]
    pub name: String,
    /// namespace of the object.
    #[schemars(length(min = 1))]
    pub namespace: String,
    /// key in the object's data.
    #[schemars(length(min = 1))]
    pub key: String,
}

/// What the operator reports about a policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImagePolicyStatus {
    /// observedGeneration is the generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// conditions: Ready is True when every glob, key, trusted root and regular expression
    /// could be read; False with the first problem otherwise (an authority that cannot be
    /// read fails every image it is asked to verify).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

// ------------------------------------------------------------------- globs ---

/// Why a glob is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("glob is empty")]
    Empty,
    #[error("glob {0:?} has an empty path segment")]
    EmptySegment(String),
    #[error("glob {0:?} names a tag or digest; globs match repositories only")]
    TagOrDigest(String),
}

impl GlobError {
    /// A stable PascalCase reason for conditions and events.
    pub fn reason(&self) -> &'static str {
        "GlobInvalid"
    }
}

/// A parsed, normalised repository glob (see the module docs for the semantics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    /// The normalised pattern, e.g. `docker.io/library/nginx`.
    pattern: String,
}

impl Glob {
    /// Parses and normalises a glob.
    pub fn parse(glob: &str) -> Result<Self, GlobError> {
        let glob = glob.trim();
        if glob.is_empty() {
            return Err(GlobError::Empty);
        }
        let segments: Vec<&str> = glob.split('/').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Err(GlobError::EmptySegment(glob.to_string()));
        }
        let last = segments.last().copied().unwrap_or_default();
        // a registry port is the only ':' allowed, in the first segment of a multi-segment glob
        if last.contains('@') || (segments.len() > 1 && last.contains(':')) {
            return Err(GlobError::TagOrDigest(glob.to_string()));
        }
        let first = segments[0];
        let is_registry = first.contains(['.', ':', '*']) || first == "localhost";
        let pattern = if segments.len() == 1 && !first.contains('*') && is_registry {
            // "quay.io" alone names no repository: it covers the registry's repositories
            format!("{first}/**")
        } else if !is_registry {
            if segments.len() == 1 {
                format!("docker.io/library/{glob}")
            } else {
                format!("docker.io/{glob}")
            }
        } else if is_registry_docker_hub(first) || first == "registry-1.docker.io" {
            format!("docker.io/{}", segments[1..].join("/"))
        } else {
            glob.to_string()
        };
        Ok(Self { pattern })
    }

    /// The normalised pattern.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the glob covers the repository `reference` names.
    pub fn matches(&self, reference: &DockerImageReference) -> bool {
        glob_match(self.pattern.as_bytes(), repository_of(reference).as_bytes())
    }
}

/// The repository a reference names, normalised the way globs are: `registry/namespace/name`
/// with Docker Hub's defaults filled in and its aliases folded to `docker.io`.
pub fn repository_of(reference: &DockerImageReference) -> String {
    let mut r = reference.docker_client_defaults().as_repository();
    if is_registry_docker_hub(&r.registry) || r.registry == "registry-1.docker.io" {
        r.registry = "docker.io".to_string();
    }
    [r.registry.as_str(), r.namespace.as_str(), r.name.as_str()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/")
}

/// `*` within a segment, `**` across segments (a `/**` suffix also matches nothing).
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern {
        [] => text.is_empty(),
        [b'/', b'*', b'*'] => {
            // "a/**" covers "a" itself and everything under it
            text.is_empty() || (text[0] == b'/' && glob_match(&pattern[1..], &text[1..]))
        }
        [b'*', b'*', rest @ ..] => (0..=text.len()).any(|i| glob_match(rest, &text[i..])),
        [b'*', rest @ ..] => {
            let segment = text.iter().position(|&c| c == b'/').unwrap_or(text.len());
            (0..=segment).any(|i| glob_match(rest, &text[i..]))
        }
        [c, rest @ ..] => text.first() == Some(c) && glob_match(rest, &text[1..]),
    }
}

impl ImagePolicySpec {
    /// The enforcement with its default.
    pub fn effective_enforcement(&self) -> Enforcement {
        self.enforcement.unwrap_or_default()
    }

    /// The requirement with its default.
    pub fn effective_requirement(&self) -> Requirement {
        self.requirement.unwrap_or_default()
    }

    /// Whether any glob covers the reference's repository (an unparsable glob covers nothing).
    pub fn covers(&self, reference: &DockerImageReference) -> bool {
        self.images
            .iter()
            .filter_map(|p| Glob::parse(&p.glob).ok())
            .any(|g| g.matches(reference))
    }
}

/// The policies that cover a reference, and what they require together.
#[derive(Clone, Debug, PartialEq)]
pub struct Coverage<'a, P> {
    /// Every covering policy, in the order given.
    pub policies: Vec<&'a P>,
    /// `Enforce` if any covering policy enforces; `None` when no policy covers the image
    /// (it is imported without verification).
    pub enforcement: Option<Enforcement>,
}

impl<P> Coverage<'_, P> {
    /// Whether the image must be verified at all.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }
}

/// Something that can say whether it covers a reference and how it enforces: the spec itself,
/// or the resolved form [`super::ResolvedPolicy`].
pub trait Covers {
    fn covers(&self, reference: &DockerImageReference) -> bool;
    fn enforcement(&self) -> Enforcement;
}

impl Covers for ImagePolicy {
    fn covers(&self, reference: &DockerImageReference) -> bool {
        self.spec.covers(reference)
    }
    fn enforcement(&self) -> Enforcement {
        self.spec.effective_enforcement()
    }
}

/// The policies among `policies` that cover `reference`, and the combined enforcement.
pub fn covering<'a, P: Covers>(
    policies: impl IntoIterator<Item = &'a P>,
    reference: &DockerImageReference,
) -> Coverage<'a, P> {
    let policies: Vec<&P> = policies
        .into_iter()
        .filter(|p| p.covers(reference))
        .collect();
    let enforcement = policies.iter().map(|p| p.enforcement()).reduce(combine);
    Coverage {
        policies,
        enforcement,
    }
}

/// Enforce wins over Warn.
pub fn combine(a: Enforcement, b: Enforcement) -> Enforcement {
    if a == Enforcement::Enforce || b == Enforcement::Enforce {
        Enforcement::Enforce
    } else {
        Enforcement::Warn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(s: &str) -> DockerImageReference {
        DockerImageReference::parse(s).expect("valid reference")
    }

    fn covers(glob: &str, image: &str) -> bool {
        Glob::parse(glob)
            .expect("valid glob")
            .matches(&reference(image))
    }

    fn policy(name: &str, globs: &[&str], enforcement: Enforcement) -> ImagePolicy {
        let mut p = ImagePolicy::new(
            name,
            ImagePolicySpec {
                images: globs
                    .iter()
                    .map(|g| ImagePattern {
                        glob: g.to_string(),
                    })
                    .collect(),
                enforcement: Some(enforcement),
                ..Default::default()
            },
        );
        p.metadata.generation = Some(1);
        p
    }

    #[test]
    fn a_star_matches_within_one_path_segment_only() {
        assert!(covers(
            "registry.example.com/team/*",
            "registry.example.com/team/app"
        ));
        assert!(covers(
            "registry.example.com/team/*",
            "registry.example.com/team/app:1.0"
        ));
        assert!(!covers(
            "registry.example.com/team/*",
            "registry.example.com/team/app/sub"
        ));
        assert!(!covers(
            "registry.example.com/team/*",
            "registry.example.com/other/app"
        ));
        assert!(covers(
            "registry.example.com/team/app-*",
            "registry.example.com/team/app-x"
        ));
        assert!(!covers(
            "registry.example.com/team/app-*",
            "registry.example.com/team/ap"
        ));
    }

    #[test]
    fn a_double_star_matches_across_segments_and_the_repository_itself() {
        assert!(covers("quay.io/org/**", "quay.io/org/app"));
        assert!(covers(
            "quay.io/org/**",
            "quay.io/org/team/app@sha256:0000000000000000000000000000000000000000000000000000000000000000"
        ));
        assert!(!covers("quay.io/org/**", "quay.io/organisation/app"));
        assert!(covers("**", "nginx"));
        assert!(covers("**", "localhost:5000/a/b/c"));
        assert!(covers("*.example.com/**", "registry.example.com/a/b"));
        assert!(!covers("*.example.com/**", "example.com/a"));
    }

    #[test]
    fn docker_hub_globs_are_normalised_like_references() {
        assert!(covers("nginx", "nginx:1.25"));
        assert!(covers("nginx", "docker.io/library/nginx"));
        assert!(covers("index.docker.io/library/nginx", "nginx"));
        assert!(covers("team/*", "docker.io/team/app"));
        assert!(!covers("team/*", "quay.io/team/app"));
        assert!(covers("docker.io/library/*", "busybox"));
    }

    #[test]
    fn a_registry_alone_covers_its_repositories() {
        assert!(covers("quay.io", "quay.io/a/b"));
        assert!(covers("localhost:5000", "localhost:5000/a"));
        assert!(!covers("quay.io", "ghcr.io/a/b"));
    }

    #[test]
    fn globs_with_tags_digests_or_empty_segments_are_refused() {
        assert_eq!(Glob::parse(""), Err(GlobError::Empty));
        assert!(matches!(
            Glob::parse("quay.io//a"),
            Err(GlobError::EmptySegment(_))
        ));
        assert!(matches!(
            Glob::parse("quay.io/a:1.0"),
            Err(GlobError::TagOrDigest(_))
        ));
        assert!(matches!(
            Glob::parse("quay.io/a@sha256:00"),
            Err(GlobError::TagOrDigest(_))
        ));
        assert!(Glob::parse("localhost:5000/a").is_ok());
    }

    #[test]
    fn every_covering_policy_applies_and_enforce_wins_over_warn() {
        let policies = [
            policy("team", &["registry.example.com/team/*"], Enforcement::Warn),
            policy("all", &["registry.example.com/**"], Enforcement::Enforce),
            policy("other", &["quay.io/**"], Enforcement::Enforce),
        ];
        let c = covering(&policies, &reference("registry.example.com/team/app:1"));
        let names: Vec<_> = c.policies.iter().map(|p| p.metadata.name.clone()).collect();
        assert_eq!(names, [Some("team".into()), Some("all".into())]);
        assert_eq!(c.enforcement, Some(Enforcement::Enforce));

        let warn_only = [policy(
            "team",
            &["registry.example.com/team/*"],
            Enforcement::Warn,
        )];
        let c = covering(&warn_only, &reference("registry.example.com/team/app"));
        assert_eq!(c.enforcement, Some(Enforcement::Warn));

        let c = covering(&policies, &reference("ghcr.io/x/y"));
        assert!(c.is_empty());
        assert_eq!(c.enforcement, None);
    }

    #[test]
    fn the_example_policies_parse_and_resolve_their_globs() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/examples/image-policy.yaml"
        );
        let text = std::fs::read_to_string(path).expect("example exists");
        let policies: Vec<ImagePolicy> = serde_saphyr::from_multiple(&text).expect("policies");
        assert_eq!(policies.len(), 2);
        assert!(
            policies[0]
                .spec
                .covers(&reference("registry.example.com/team/app:1"))
        );
        assert!(
            policies[1]
                .spec
                .covers(&reference("ghcr.io/example-org/a/b"))
        );
        assert_eq!(policies[1].spec.effective_enforcement(), Enforcement::Warn);
        let identity = &policies[1].spec.authorities[0]
            .keyless
            .as_ref()
            .expect("keyless")
            .identities[0];
        let re = regex::Regex::new(identity.subject_reg_exp.as_deref().expect("regexp"))
            .expect("valid regexp");
        assert!(re.is_match(
            "https://github.com/example-org/app/.github/workflows/release.yml@refs/tags/v1"
        ));
    }

    #[test]
    fn enforcement_and_requirement_default_to_enforce_and_any_of() {
        let spec = ImagePolicySpec::default();
        assert_eq!(spec.effective_enforcement(), Enforcement::Enforce);
        assert_eq!(spec.effective_requirement(), Requirement::AnyOf);
        let spec: ImagePolicySpec = serde_json::from_value(serde_json::json!({
            "images": [{"glob": "**"}],
            "authorities": [{"name": "k", "key": {"data": "x"}}],
            "enforcement": "Warn",
            "requirement": "AllOf"
        }))
        .expect("valid spec");
        assert_eq!(spec.effective_enforcement(), Enforcement::Warn);
        assert_eq!(spec.effective_requirement(), Requirement::AllOf);
    }
}
