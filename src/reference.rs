//! Image references as OpenShift reads and prints them, and the stream-name helpers of
//! library-go's `imageutil`. Pure code: no IO.
//!
//! Mirrors (behaviour, not code) library-go:
//! * `pkg/image/reference` — [`DockerImageReference`] and its methods;
//! * `pkg/image/internal/reference` — the distribution grammar, written here as small scanners
//!   instead of regular expressions (see [`DockerImageReference::parse`]);
//! * `pkg/image/internal/digest` — digest validation ([`validate_digest`]);
//! * `pkg/image/imageutil/helpers.go` — ImageStreamTag / ImageStreamImage names,
//!   [`digest_or_image_match`] and [`prioritize_tags`] (with blang/semver's parsing and
//!   ordering, which that function relies on).
//!
//! Why our own type rather than `oci_client::Reference`: oci-spec's parser normalises
//! (`busybox` becomes `docker.io/library/busybox:latest`), but OpenShift records references
//! as the user spelled them (tag events keep `nginx@sha256:…`, never
//! `docker.io/library/nginx@sha256:…`; semantics §13 quirk 10) and distinguishes an implied
//! registry or tag from an explicit one. Conversion to oci-client's type happens only at the
//! registry boundary ([`DockerImageReference::to_oci_reference`]).
//!
//! Round trips (upstream behaviour, property-tested and fuzzed):
//! * for every input that parses and names a repository, [`DockerImageReference::exact`]
//!   returns the input unchanged — except that an input with both a tag and a digest
//!   (`nginx:1.25@sha256:…`) prints without its tag: upstream `Exact` prefers the ID, just as
//!   `MostSpecific` drops the tag, so OpenShift itself never stores such a pair;
//! * a *registry-only* input (one component that contains `.` or starts with `localhost`, such
//!   as `quay.io` or `localhost:5000`) parses with `registry` holding the whole input (and `id`
//!   its digest, if any) and no name; `exact()` of such a reference is `""`, as upstream;
//! * `Display` (upstream `String()`) re-parses to the same reference with `library` filled in
//!   for Docker Hub and the tag dropped when a digest is present, unless inserting `library/`
//!   pushes the name over 255 characters.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// The registry assumed when a reference names none (upstream `DockerDefaultRegistry`).
pub const DOCKER_DEFAULT_REGISTRY: &str = "docker.io";
/// Docker Hub's v1 host name (upstream `DockerDefaultV1Registry`).
pub const DOCKER_DEFAULT_V1_REGISTRY: &str = "index.docker.io";
/// Docker Hub's v2 host name, used for connecting (upstream `DockerDefaultV2Registry`).
pub const DOCKER_DEFAULT_V2_REGISTRY: &str = "registry-1.docker.io";
/// The namespace Docker Hub assumes for one-component names.
pub const DOCKER_DEFAULT_NAMESPACE: &str = "library";
/// The tag assumed when none is given (upstream `imageutil.DefaultImageTag`).
pub const DEFAULT_IMAGE_TAG: &str = "latest";
/// Longest repository name, registry included (upstream `NameTotalLengthMax`).
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// Longest tag: `[\w][\w.-]{0,127}`.
const TAG_LENGTH_MAX: usize = 128;
/// Shortest digest hex part the grammar accepts (`[[:xdigit:]]{32,}`).
const DIGEST_HEX_MIN: usize = 32;

/// Why a reference, tag or digest is invalid. Messages are upstream's, word for word.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ReferenceError {
    /// Empty input (upstream `ErrNameEmpty`).
    #[error("repository name must have at least one component")]
    NameEmpty,
    /// The input would be valid in lower case (upstream `ErrNameContainsUppercase`).
    #[error("repository name must be lowercase")]
    NameContainsUppercase,
    /// Anything else the grammar rejects (upstream `ErrReferenceInvalidFormat`).
    #[error("invalid reference format")]
    InvalidFormat,
    /// Registry plus repository longer than 255 characters (upstream `ErrNameTooLong`).
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    /// A tag outside `[\w][\w.-]{0,127}` (upstream `ErrTagInvalidFormat`).
    #[error("invalid tag format")]
    TagInvalidFormat,
    /// A digest outside the reference grammar (upstream reference `ErrDigestInvalidFormat`).
    #[error("invalid digest format")]
    DigestInvalidFormat,
    /// A string that is not `algorithm:hex` at all (upstream digest `ErrDigestInvalidFormat`).
    #[error("invalid checksum digest format")]
    ChecksumInvalidFormat,
    /// An algorithm other than sha256, sha384 or sha512 (upstream `ErrDigestUnsupported`).
    #[error("unsupported digest algorithm")]
    DigestUnsupported,
    /// A hex part of the wrong length for its algorithm (upstream `ErrDigestInvalidLength`).
    #[error("invalid checksum digest length")]
    DigestInvalidLength,
    /// Ours, at the registry boundary only: the registry is not a `host[:port]` that can be
    /// connected to (a parsed registry is any first component with a `.`, so `a_b.c/d`
    /// parses, as upstream, with registry `a_b.c`).
    #[error("invalid registry host {0:?}")]
    RegistryInvalid(String),
}

impl ReferenceError {
    /// A stable PascalCase reason for conditions and events.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NameEmpty => "NameEmpty",
            Self::NameContainsUppercase => "NameContainsUppercase",
            Self::InvalidFormat => "InvalidReferenceFormat",
            Self::NameTooLong => "NameTooLong",
            Self::TagInvalidFormat => "TagInvalidFormat",
            Self::DigestInvalidFormat => "DigestInvalidFormat",
            Self::ChecksumInvalidFormat => "ChecksumInvalidFormat",
            Self::DigestUnsupported => "DigestUnsupported",
            Self::DigestInvalidLength => "DigestInvalidLength",
            Self::RegistryInvalid(_) => "RegistryInvalid",
        }
    }
}

/// A Docker pull spec split OpenShift's way (upstream `reference.DockerImageReference`).
///
/// Every field is a plain string; empty means unset. `name` may contain `/`
/// (`quay.io/org/team/app` has namespace `org`, name `team/app`). `id` is normally a digest
/// (`sha256:…`); a non-digest `id` is an old v1 image ID and prints as a tag.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct DockerImageReference {
    /// `host[:port]`, or the whole input for a registry-only reference.
    pub registry: String,
    /// The first path component after the registry.
    pub namespace: String,
    /// The remaining path components.
    pub name: String,
    /// The tag, without `:`.
    pub tag: String,
    /// The digest (or v1 image ID), without `@`.
    pub id: String,
}

impl DockerImageReference {
    /// Parses a pull spec (upstream `reference.Parse`).
    ///
    /// The grammar is distribution's:
    /// `[host[:port]/]component[/component…][:tag][@digest]`, components
    /// `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`; host labels
    /// `[a-zA-Z0-9]` or `[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]` joined by `.`; tag
    /// `[\w][\w.-]{0,127}`; digest `alg[sep alg…]:hex{32,}`; whole name at most 255
    /// characters; digest algorithm sha256/384/512 with 64/96/128 hex digits.
    ///
    /// The split follows OpenShift, not the grammar's host capture: the first component is the
    /// registry if it contains `.` or `:` or is `localhost`; the next one is the namespace; the
    /// rest is the name. A single component containing `.` or starting with `localhost` is a
    /// registry-only reference (module docs).
    pub fn parse(spec: &str) -> Result<Self, ReferenceError> {
        let Some(parts) = match_reference(spec) else {
            if spec.is_empty() {
                return Err(ReferenceError::NameEmpty);
            }
            if match_reference(&go_to_lower(spec)).is_some() {
                return Err(ReferenceError::NameContainsUppercase);
            }
            return Err(ReferenceError::InvalidFormat);
        };
        if parts.name.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong);
        }
        if !parts.digest.is_empty() {
            validate_digest(parts.digest)?;
        }

        let mut reference = Self {
            id: parts.digest.to_owned(),
            ..Self::default()
        };
        let path = match parts.name.split_once('/') {
            None if parts.name.contains('.') || parts.name.starts_with("localhost") => {
                // upstream stores the whole reference string (tag and digest included) as the
                // registry, so `localhost:5000` is a registry, not `localhost` tagged `5000`
                reference.registry = spec.to_owned();
                return Ok(reference);
            }
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                reference.registry = first.to_owned();
                rest
            }
            _ => parts.name,
        };
        match path.split_once('/') {
            Some((namespace, name)) => {
                reference.namespace = namespace.to_owned();
                reference.name = name.to_owned();
            }
            None => reference.name = path.to_owned(),
        }
        reference.tag = parts.tag.to_owned();
        Ok(reference)
    }

    /// Compares after applying Docker's defaults, so `foo` equals
    /// `docker.io/library/foo:latest` (upstream `Equal`).
    pub fn equal(&self, other: &Self) -> bool {
        self.docker_client_defaults() == other.docker_client_defaults()
    }

    /// Fills in what the Docker client assumes: registry `docker.io`, namespace `library` for
    /// Docker Hub, tag `latest` (upstream `DockerClientDefaults`). The tag is defaulted even
    /// when an ID is set, as upstream.
    pub fn docker_client_defaults(&self) -> Self {
        let mut r = self.clone();
        if r.registry.is_empty() {
            r.registry = DOCKER_DEFAULT_REGISTRY.to_owned();
        }
        if r.namespace.is_empty() && is_registry_docker_hub(&r.registry) {
            r.namespace = DOCKER_DEFAULT_NAMESPACE.to_owned();
        }
        if r.tag.is_empty() {
            r.tag = DEFAULT_IMAGE_TAG.to_owned();
        }
        r
    }

    /// Drops a `latest` tag (upstream `Minimal`).
    pub fn minimal(&self) -> Self {
        let mut r = self.clone();
        if r.tag == DEFAULT_IMAGE_TAG {
            r.tag.clear();
        }
        r
    }

    /// The reference without tag and ID (upstream `AsRepository`).
    pub fn as_repository(&self) -> Self {
        Self {
            tag: String::new(),
            id: String::new(),
            ..self.clone()
        }
    }

    /// `namespace/name` (or `name`), without registry, tag or ID (upstream `RepositoryName`).
    pub fn repository_name(&self) -> String {
        Self {
            registry: String::new(),
            ..self.as_repository()
        }
        .exact()
    }

    /// The host and port to connect to (upstream `RegistryHostPort`): Docker Hub aliases become
    /// `registry-1.docker.io`; the port defaults to 443, or 80 when `insecure`.
    ///
    /// As upstream, an *empty* registry yields `docker.io` (the v2 mapping runs before the
    /// defaulting), and a registry with a `:` that Go's `net.SplitHostPort` rejects yields two
    /// empty strings.
    pub fn registry_host_port(&self, insecure: bool) -> (String, String) {
        let host = self.as_v2().docker_client_defaults().registry;
        if host.contains(':') {
            return match split_host_port(&host) {
                Some((host, port)) => (host.to_owned(), port.to_owned()),
                None => (String::new(), String::new()),
            };
        }
        let port = if insecure { "80" } else { "443" };
        (host, port.to_owned())
    }

    /// Clears the defaults the Docker daemon assumes: Docker Hub aliases become `docker.io`,
    /// its `library` namespace and a `latest` tag are dropped (upstream `DaemonMinimal`).
    pub fn daemon_minimal(&self) -> Self {
        let mut r = self.clone();
        if r.registry == DOCKER_DEFAULT_V1_REGISTRY || r.registry == DOCKER_DEFAULT_V2_REGISTRY {
            r.registry = DOCKER_DEFAULT_REGISTRY.to_owned();
        }
        if is_registry_docker_hub(&r.registry) && r.namespace == DOCKER_DEFAULT_NAMESPACE {
            r.namespace.clear();
        }
        r.minimal()
    }

    /// Maps `docker.io` and `index.docker.io` to `registry-1.docker.io`, the host that serves
    /// the v2 API (upstream `AsV2`). Other registries, and an empty one, are kept.
    pub fn as_v2(&self) -> Self {
        let mut r = self.clone();
        if r.registry == DOCKER_DEFAULT_REGISTRY || r.registry == DOCKER_DEFAULT_V1_REGISTRY {
            r.registry = DOCKER_DEFAULT_V2_REGISTRY.to_owned();
        }
        r
    }

    /// Prefers the ID over the tag (upstream `MostSpecific`): with a digest ID the tag is
    /// dropped; with a non-digest ID and no tag, the ID moves into the tag.
    pub fn most_specific(&self) -> Self {
        let mut r = self.clone();
        if r.id.is_empty() {
            return r;
        }
        if validate_digest(&r.id).is_ok() {
            r.tag.clear();
        } else if r.tag.is_empty() {
            r.tag = std::mem::take(&mut r.id);
        }
        r
    }

    /// `name@digest`, `name:id` for a non-digest ID, else `name:tag` or `name`; `""` without a
    /// name (upstream `NameString`).
    pub fn name_string(&self) -> String {
        if self.name.is_empty() {
            String::new()
        } else if !self.id.is_empty() {
            let separator = if validate_digest(&self.id).is_ok() {
                '@'
            } else {
                ':'
            };
            format!("{}{separator}{}", self.name, self.id)
        } else if !self.tag.is_empty() {
            format!("{}:{}", self.name, self.tag)
        } else {
            self.name.clone()
        }
    }

    /// Prints exactly the fields that are set, with no defaults (upstream `Exact`); `""` when
    /// there is no name. See the module docs for how this round-trips [`Self::parse`].
    pub fn exact(&self) -> String {
        let name = self.name_string();
        if name.is_empty() {
            return name;
        }
        let mut s =
            String::with_capacity(self.registry.len() + self.namespace.len() + name.len() + 2);
        for part in [&self.registry, &self.namespace] {
            if !part.is_empty() {
                s.push_str(part);
                s.push('/');
            }
        }
        s.push_str(&name);
        s
    }

    /// Whether `id` is a valid digest (upstream code checks `digest.ParseDigest(ref.ID)`).
    pub fn is_digest(&self) -> bool {
        !self.id.is_empty() && validate_digest(&self.id).is_ok()
    }

    /// The same reference with `tag` set, after checking the tag grammar; the ID is kept
    /// (library-go internal `reference.WithTag`).
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        if !is_valid_tag(tag) {
            return Err(ReferenceError::TagInvalidFormat);
        }
        Ok(Self {
            tag: tag.to_owned(),
            ..self.clone()
        })
    }

    /// The same reference with `id` set to `digest`, after checking the digest grammar,
    /// algorithm and length; the tag is kept (library-go internal `reference.WithDigest`). The
    /// importer's "as written, tag replaced by @digest" is `with_digest(d)?.most_specific()`.
    pub fn with_digest(&self, digest: &str) -> Result<Self, ReferenceError> {
        if !is_digest_grammar(digest) {
            return Err(ReferenceError::DigestInvalidFormat);
        }
        validate_digest(digest)?;
        Ok(Self {
            id: digest.to_owned(),
            ..self.clone()
        })
    }

    /// Converts to oci-client's reference for the registry boundary (ours).
    ///
    /// Resolves the defaults the way oci-spec's own parser does: no registry or any Docker Hub
    /// alias (`docker.io`, `index.docker.io`, `registry-1.docker.io`) becomes `docker.io`
    /// (oci-client maps that to `index.docker.io` when connecting), Docker Hub names without a
    /// namespace get `library/`, and a reference without tag or digest gets `latest`. Applies
    /// [`Self::most_specific`] first, so a digest wins over a tag.
    ///
    /// Stricter than oci-spec where a registry would refuse anyway: the repository must be
    /// lower case (upstream parses `Foo/bar` with namespace `Foo`), the registry a
    /// `host[:port]`, and the defaulted name at most 255 characters (distribution's limit).
    pub fn to_oci_reference(&self) -> Result<oci_client::Reference, ReferenceError> {
        if self.name.is_empty() {
            return Err(ReferenceError::NameEmpty);
        }
        let r = self.most_specific();
        let registry = if r.registry.is_empty() || is_registry_docker_hub(&r.registry) {
            DOCKER_DEFAULT_REGISTRY.to_owned()
        } else if is_hostname(&r.registry) {
            r.registry
        } else {
            return Err(ReferenceError::RegistryInvalid(r.registry));
        };
        let namespace = if r.namespace.is_empty() && registry == DOCKER_DEFAULT_REGISTRY {
            DOCKER_DEFAULT_NAMESPACE
        } else {
            &r.namespace
        };
        let repository = if namespace.is_empty() {
            r.name
        } else {
            format!("{namespace}/{}", r.name)
        };
        if !repository.split('/').all(is_component) {
            // `A/b` parses (upstream reads `A` as a host, then calls it a namespace), but
            // registries only know lower-case repositories
            let lower = repository.to_ascii_lowercase();
            return Err(if lower.split('/').all(is_component) {
                ReferenceError::NameContainsUppercase
            } else {
                ReferenceError::InvalidFormat
            });
        }
        if registry.len() + 1 + repository.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong);
        }
        if !r.id.is_empty() {
            validate_digest(&r.id)?;
            return Ok(oci_client::Reference::with_digest(
                registry, repository, r.id,
            ));
        }
        let tag = if r.tag.is_empty() {
            DEFAULT_IMAGE_TAG.to_owned()
        } else if is_valid_tag(&r.tag) {
            r.tag
        } else {
            return Err(ReferenceError::TagInvalidFormat);
        };
        Ok(oci_client::Reference::with_tag(registry, repository, tag))
    }
}

/// Upstream `String()`: [`DockerImageReference::exact`] with namespace `library` inserted
/// for Docker Hub registries.
impl fmt::Display for DockerImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() && is_registry_docker_hub(&self.registry) {
            let with_library = Self {
                namespace: DOCKER_DEFAULT_NAMESPACE.to_owned(),
                ..self.clone()
            };
            f.write_str(&with_library.exact())
        } else {
            f.write_str(&self.exact())
        }
    }
}

impl FromStr for DockerImageReference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Whether `registry` is one of Docker Hub's names (upstream `IsRegistryDockerHub`).
pub fn is_registry_docker_hub(registry: &str) -> bool {
    matches!(
        registry,
        DOCKER_DEFAULT_REGISTRY | DOCKER_DEFAULT_V1_REGISTRY | DOCKER_DEFAULT_V2_REGISTRY
    )
}

/// Validates `algorithm:hex` (upstream `digest.ParseDigest` / `Digest.Validate`): the shape
/// `[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+`, then algorithm sha256, sha384 or sha512 (case-sensitive)
/// with exactly 64, 96 or 128 hex digits.
pub fn validate_digest(digest: &str) -> Result<(), ReferenceError> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err(ReferenceError::ChecksumInvalidFormat);
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'.'));
    if !algorithm_ok || hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ReferenceError::ChecksumInvalidFormat);
    }
    let expected = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(ReferenceError::DigestUnsupported),
    };
    if hex.len() != expected {
        return Err(ReferenceError::DigestInvalidLength);
    }
    Ok(())
}

/// Whether `tag` matches `[\w][\w.-]{0,127}` (upstream `TagRegexp`, also what `oc tag` checks
/// for spec tag names; `\w` is ASCII).
pub fn is_valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) => {
            bytes.len() <= TAG_LENGTH_MAX
                && is_word(*first)
                && rest.iter().all(|&b| is_word(b) || b == b'.' || b == b'-')
        }
        None => false,
    }
}

/// Whether `image_id` identifies `image` (upstream `DigestOrImageMatch`): `image` starts with
/// it, or `image` is a valid digest whose hex part starts with it. So `sha256:abc…`, `abc…` and
/// the full digest all match; an empty `image_id` matches everything, as upstream.
pub fn digest_or_image_match(image: &str, image_id: &str) -> bool {
    if image.starts_with(image_id) {
        return true;
    }
    validate_digest(image).is_ok()
        && image
            .split_once(':')
            .is_some_and(|(_, hex)| hex.starts_with(image_id))
}

// ---------------------------------------------------------------------------------------------
// ImageStreamTag / ImageStreamImage names (library-go `imageutil/helpers.go`)
// ---------------------------------------------------------------------------------------------

/// Why an ImageStreamTag (`<stream>:<tag>`) or ImageStreamImage (`<stream>@<id>`) name is
/// malformed. Messages are upstream's (with Go's `%q` quoting).
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum StreamNameError {
    /// An ImageStreamTag name containing `@`.
    #[error("{} is an image stream image, not an image stream tag", go_quote(.0))]
    ImageNotTag(String),
    /// `<stream>:<tag>` with an empty side.
    #[error("image stream tag name {} must have a name and a tag", go_quote(.0))]
    TagNameIncomplete(String),
    /// Not exactly one `:`.
    #[error("expected exactly one : delimiter in the istag {}", go_quote(.0))]
    TagDelimiter(String),
    /// `<stream>@<id>` with an empty side.
    #[error("image stream image name {} must have a name and ID", go_quote(.0))]
    ImageNameIncomplete(String),
    /// Not exactly one `@`.
    #[error("expected exactly one @ in the isimage name {}", go_quote(.0))]
    ImageDelimiter(String),
}

impl StreamNameError {
    /// A stable PascalCase reason for conditions and events.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::ImageNotTag(_) => "ImageNotTag",
            Self::TagNameIncomplete(_) => "TagNameIncomplete",
            Self::TagDelimiter(_) => "TagDelimiter",
            Self::ImageNameIncomplete(_) => "ImageNameIncomplete",
            Self::ImageDelimiter(_) => "ImageDelimiter",
        }
    }
}

/// Splits `<stream>:<tag>` strictly (upstream `ParseImageStreamTagName`): no `@`, exactly one
/// `:`, both sides non-empty.
pub fn parse_image_stream_tag_name(istag: &str) -> Result<(&str, &str), StreamNameError> {
    if istag.contains('@') {
        return Err(StreamNameError::ImageNotTag(istag.to_owned()));
    }
    match istag.split_once(':') {
        Some((name, tag)) if !tag.contains(':') => {
            if name.is_empty() || tag.is_empty() {
                Err(StreamNameError::TagNameIncomplete(istag.to_owned()))
            } else {
                Ok((name, tag))
            }
        }
        _ => Err(StreamNameError::TagDelimiter(istag.to_owned())),
    }
}

/// Splits `<stream>@<id>` strictly (upstream `ParseImageStreamImageName`): exactly one `@`,
/// both sides non-empty.
pub fn parse_image_stream_image_name(input: &str) -> Result<(&str, &str), StreamNameError> {
    match input.split_once('@') {
        Some((name, id)) if !id.contains('@') => {
            if name.is_empty() || id.is_empty() {
                Err(StreamNameError::ImageNameIncomplete(input.to_owned()))
            } else {
                Ok((name, id))
            }
        }
        _ => Err(StreamNameError::ImageDelimiter(input.to_owned())),
    }
}

/// Splits `<stream>[:<tag>]` leniently at the first `:` (upstream `SplitImageStreamTag`): the
/// tag defaults to `latest` when missing or empty; the flag says whether a `:` was present.
pub fn split_image_stream_tag(name_and_tag: &str) -> (&str, &str, bool) {
    match name_and_tag.split_once(':') {
        Some((name, "")) => (name, DEFAULT_IMAGE_TAG, true),
        Some((name, tag)) => (name, tag, true),
        None => (name_and_tag, DEFAULT_IMAGE_TAG, false),
    }
}

/// Splits `<stream>@<id>` leniently at the first `@` (upstream `SplitImageStreamImage`); the
/// flag says whether an `@` was present.
pub fn split_image_stream_image(name_and_id: &str) -> (&str, &str, bool) {
    match name_and_id.split_once('@') {
        Some((name, id)) => (name, id, true),
        None => (name_and_id, "", false),
    }
}

/// `<name>:<tag>`, with `latest` for an empty tag (upstream `JoinImageStreamTag`).
pub fn join_image_stream_tag(name: &str, tag: &str) -> String {
    let tag = if tag.is_empty() {
        DEFAULT_IMAGE_TAG
    } else {
        tag
    };
    format!("{name}:{tag}")
}

/// `<name>@<id>` (upstream `JoinImageStreamImage`).
pub fn join_image_stream_image(name: &str, id: &str) -> String {
    format!("{name}@{id}")
}

// ---------------------------------------------------------------------------------------------
// PrioritizeTags
// ---------------------------------------------------------------------------------------------

/// Orders tags in place the way bulk (`spec.repository`) imports pick them (upstream
/// `PrioritizeTags`):
///
/// 1. `latest`;
/// 2. semantic minor versions (`5.1`, `v5.1`, `v5.1-rc1`), newest first;
/// 3. full semantic versions (`5.1.3`, `v5.1.3-other`), newest first;
/// 4. everything else, in byte order.
///
/// Versions are parsed and compared as blang/semver v4 does (pre-releases below releases,
/// numeric identifiers below alphanumeric ones, build metadata ignored); within equal versions
/// the tag without the `v` prefix comes first. Upstream's sort is not stable; ours is, which
/// only matters for tags whose versions differ solely in build metadata.
pub fn prioritize_tags<S: AsRef<str>>(tags: &mut [S]) {
    tags.sort_by_cached_key(|tag| PrioritizedTag::new(tag.as_ref()));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TagPriority {
    Latest,
    Minor,
    Full,
    Other,
}

#[derive(Debug)]
struct PrioritizedTag {
    tag: String,
    priority: TagPriority,
    version: Option<SemVer>,
    v_prefix: bool,
}

impl PrioritizedTag {
    fn new(tag: &str) -> Self {
        let mut prioritized = Self {
            tag: tag.to_owned(),
            priority: TagPriority::Other,
            version: None,
            v_prefix: false,
        };
        if tag == DEFAULT_IMAGE_TAG {
            prioritized.priority = TagPriority::Latest;
            return prioritized;
        }
        let short = match tag.strip_prefix('v') {
            Some(short) => {
                prioritized.v_prefix = true;
                short
            }
            None => tag,
        };
        let (priority, version) = if let Some(version) = SemVer::parse(short) {
            (TagPriority::Full, Some(version))
        } else if is_minor_semantic(short) {
            (TagPriority::Minor, SemVer::parse(&format!("{short}.0")))
        } else if let Some((minor, rest)) = short.split_once('-')
            && is_minor_semantic(minor)
            && !rest.is_empty()
            && rest.bytes().all(is_word)
        {
            (
                TagPriority::Minor,
                SemVer::parse(&format!("{minor}.0-{rest}")),
            )
        } else {
            (TagPriority::Other, None)
        };
        if version.is_some() {
            prioritized.priority = priority;
            prioritized.version = version;
        }
        prioritized
    }
}

impl Ord for PrioritizedTag {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority.cmp(&other.priority).then_with(|| {
            match (&self.version, &other.version) {
                // newer first, then "" before "v"
                (Some(a), Some(b)) => b.cmp(a).then(self.v_prefix.cmp(&other.v_prefix)),
                // Latest against Latest, or Other against Other
                _ => self.tag.cmp(&other.tag),
            }
        })
    }
}

impl PartialOrd for PrioritizedTag {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PrioritizedTag {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PrioritizedTag {}

/// `^\d+\.\d+$` (ASCII digits, as Go's `\d`).
fn is_minor_semantic(s: &str) -> bool {
    s.split_once('.').is_some_and(|(major, minor)| {
        [major, minor]
            .iter()
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// A semantic version as blang/semver v4 parses it (build metadata is validated, then dropped:
/// it never takes part in comparisons).
#[derive(Debug, Clone, PartialEq, Eq)]
struct SemVer {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Vec<PreRelease>,
}

/// One pre-release identifier; the derived order is blang's: numeric below alphanumeric,
/// numbers by value, strings by bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum PreRelease {
    Numeric(u64),
    Alphanumeric(String),
}

impl SemVer {
    fn parse(s: &str) -> Option<Self> {
        let mut parts = s.splitn(3, '.');
        let major = semver_number(parts.next()?)?;
        let minor = semver_number(parts.next()?)?;
        let rest = parts.next()?;
        let (rest, build) = match rest.split_once('+') {
            Some((rest, build)) => (rest, Some(build)),
            None => (rest, None),
        };
        let (patch, pre) = match rest.split_once('-') {
            Some((patch, pre)) => (patch, Some(pre)),
            None => (rest, None),
        };
        let patch = semver_number(patch)?;
        let pre = match pre {
            Some(pre) => pre
                .split('.')
                .map(PreRelease::parse)
                .collect::<Option<_>>()?,
            None => Vec::new(),
        };
        if let Some(build) = build
            && !build
                .split('.')
                .all(|part| !part.is_empty() && part.bytes().all(is_semver_alphanumeric))
        {
            return None;
        }
        Some(Self {
            major,
            minor,
            patch,
            pre,
        })
    }
}

impl Ord for SemVer {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                // a release is newer than any of its pre-releases
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self.pre.cmp(&other.pre),
            })
    }
}

impl PartialOrd for SemVer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PreRelease {
    fn parse(s: &str) -> Option<Self> {
        if s.is_empty() {
            None
        } else if s.bytes().all(|b| b.is_ascii_digit()) {
            if s.len() > 1 && s.starts_with('0') {
                return None;
            }
            s.parse().ok().map(Self::Numeric)
        } else if s.bytes().all(is_semver_alphanumeric) {
            Some(Self::Alphanumeric(s.to_owned()))
        } else {
            None
        }
    }
}

/// A major, minor or patch number: ASCII digits, no leading zero, fits in u64.
fn semver_number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// blang's `alphanum`: ASCII letters, digits and `-`.
fn is_semver_alphanumeric(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

// ---------------------------------------------------------------------------------------------
// The grammar (library-go `pkg/image/internal/reference/regexp.go`)
// ---------------------------------------------------------------------------------------------

/// The parts of a string matching the anchored `ReferenceRegexp`.
struct ReferenceParts<'a> {
    name: &'a str,
    tag: &'a str,
    digest: &'a str,
}

/// Matches `name[:tag][@digest]`. The split is unambiguous: names and tags have no `@`,
/// digests have one `:` after their algorithm, and a `:` in the name (a host's port) is always
/// followed by a `/`, so the last `:` with no `/` after it starts the tag.
fn match_reference(s: &str) -> Option<ReferenceParts<'_>> {
    let (rest, digest) = match s.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (s, None),
    };
    if let Some(digest) = digest
        && !is_digest_grammar(digest)
    {
        return None;
    }
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if let Some(tag) = tag
        && !is_valid_tag(tag)
    {
        return None;
    }
    if !is_name(name) {
        return None;
    }
    Some(ReferenceParts {
        name,
        tag: tag.unwrap_or_default(),
        digest: digest.unwrap_or_default(),
    })
}

/// `NameRegexp`: `[hostname/]component[/component…]`.
fn is_name(name: &str) -> bool {
    let mut components = name.split('/');
    let first = components.next().unwrap_or_default();
    let mut rest = components.peekable();
    let has_rest = rest.peek().is_some();
    rest.all(is_component) && (is_component(first) || (has_rest && is_hostname(first)))
}

/// `[a-z0-9]+` runs joined by exactly one separator: `.`, `_`, `__` or any run of `-`.
fn is_component(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    loop {
        let run = i;
        while i < bytes.len() && (bytes[i].is_ascii_lowercase() || bytes[i].is_ascii_digit()) {
            i += 1;
        }
        if i == run {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        let separator = i;
        while i < bytes.len() && matches!(bytes[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        // an empty separator means a foreign byte, which the next run check rejects
        let separator = &bytes[separator..i];
        if !matches!(separator, b"." | b"_" | b"__") && !separator.iter().all(|&b| b == b'-') {
            return false;
        }
    }
}

/// `hostname`: labels `[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]` joined by `.`, then an
/// optional `:` and port digits.
fn is_hostname(s: &str) -> bool {
    let (host, port) = match s.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (s, None),
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    host.split('.').all(|label| {
        let bytes = label.as_bytes();
        match (bytes.first(), bytes.last()) {
            (Some(first), Some(last)) => {
                first.is_ascii_alphanumeric()
                    && last.is_ascii_alphanumeric()
                    && bytes
                        .iter()
                        .all(|&b| b.is_ascii_alphanumeric() || b == b'-')
            }
            _ => false,
        }
    })
}

/// `DigestRegexp`: `[A-Za-z][A-Za-z0-9]*` components joined by one of `-_+.`, a `:`, then at
/// least 32 hex digits.
fn is_digest_grammar(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let algorithm_ok = algorithm.split(['-', '_', '+', '.']).all(|component| {
        let bytes = component.as_bytes();
        bytes.first().is_some_and(u8::is_ascii_alphabetic)
            && bytes.iter().all(u8::is_ascii_alphanumeric)
    });
    algorithm_ok && hex.len() >= DIGEST_HEX_MIN && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Go's `\w`: ASCII letters, digits and `_`.
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Go's `strings.ToLower`: per-character simple case mapping. Rust's full mapping differs only
/// for U+0130 (İ), which Go maps to a plain `i`.
fn go_to_lower(s: &str) -> String {
    let mut lower = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\u{130}' {
            lower.push('i');
        } else {
            lower.extend(c.to_lowercase());
        }
    }
    lower
}

/// Go's `net.SplitHostPort`, `None` where it returns an error.
fn split_host_port(hostport: &str) -> Option<(&str, &str)> {
    let colon = hostport.rfind(':')?;
    let (host, search_open, search_close) = if hostport.starts_with('[') {
        let end = hostport.find(']')?;
        // "[host]" without port, or anything but ':' right after ']'
        if end + 1 != colon {
            return None;
        }
        (&hostport[1..end], 1, end + 1)
    } else {
        let host = &hostport[..colon];
        if host.contains(':') {
            return None;
        }
        (host, 0, 0)
    };
    if hostport[search_open..].contains('[') || hostport[search_close..].contains(']') {
        return None;
    }
    Some((host, &hostport[colon + 1..]))
}

/// Go's `%q` (`strconv.Quote`) for the characters object names can hold; other non-ASCII
/// characters are kept unless they are control, space or format characters.
fn go_quote(s: &str) -> String {
    let mut quoted = String::with_capacity(s.len() + 2);
    quoted.push('"');
    for c in s.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\u{7}' => quoted.push_str("\\a"),
            '\u{8}' => quoted.push_str("\\b"),
            '\u{c}' => quoted.push_str("\\f"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            '\u{b}' => quoted.push_str("\\v"),
            ' '..='~' => quoted.push(c),
            c if c.is_ascii() => quoted.push_str(&format!("\\x{:02x}", c as u32)),
            c if !c.is_control()
                && !c.is_whitespace()
                && !matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
                    | '\u{2060}'..='\u{2064}' | '\u{feff}') =>
            {
                quoted.push(c)
            }
            c if (c as u32) < 0x10000 => quoted.push_str(&format!("\\u{:04x}", c as u32)),
            c => quoted.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DIGEST: &str = "sha256:3c87c572822935df60f0f5d3665bd376841a7fcfeb806b5f212de6a00e9a7b25";

    include!("../fuzz/invariants.rs");

    fn reference(
        registry: &str,
        namespace: &str,
        name: &str,
        tag: &str,
        id: &str,
    ) -> DockerImageReference {
        DockerImageReference {
            registry: registry.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            tag: tag.to_owned(),
            id: id.to_owned(),
        }
    }

    /// library-go `pkg/image/reference/reference_test.go` TestParse, every case, plus the error
    /// kind where upstream's message is known.
    #[test]
    fn test_parse() {
        let long_ok = format!("bar:5000/{}/{}:tag", "a".repeat(63), "b".repeat(182));
        let hub_explicit = format!("docker.io/library/{}:tag", "b".repeat(231));
        let hub_implicit = format!("docker.io/{}:tag", "b".repeat(231));
        let ok: &[(&str, [&str; 5])] = &[
            ("foo", ["", "", "foo", "", ""]),
            ("foo:tag", ["", "", "foo", "tag", ""]),
            (
                "sha256:3c87c572822935df60f0f5d3665bd376841a7fcfeb806b5f212de6a00e9a7b25",
                [
                    "",
                    "",
                    "sha256",
                    "3c87c572822935df60f0f5d3665bd376841a7fcfeb806b5f212de6a00e9a7b25",
                    "",
                ],
            ),
            (&format!("foo@{DIGEST}"), ["", "", "foo", "", DIGEST]),
            ("bar/foo", ["", "bar", "foo", "", ""]),
            ("bar/foo:tag", ["", "bar", "foo", "tag", ""]),
            (&format!("bar/foo@{DIGEST}"), ["", "bar", "foo", "", DIGEST]),
            ("bar/foo/baz", ["", "bar", "foo/baz", "", ""]),
            ("bar/library/baz", ["", "bar", "library/baz", "", ""]),
            ("bar/foo/baz:tag", ["", "bar", "foo/baz", "tag", ""]),
            (
                &format!("bar/foo/baz@{DIGEST}"),
                ["", "bar", "foo/baz", "", DIGEST],
            ),
            ("bar:5000/foo/baz", ["bar:5000", "foo", "baz", "", ""]),
            (
                "bar:5000/library/baz",
                ["bar:5000", "library", "baz", "", ""],
            ),
            ("bar:5000/baz", ["bar:5000", "", "baz", "", ""]),
            (
                "bar:5000/foo/baz:tag",
                ["bar:5000", "foo", "baz", "tag", ""],
            ),
            (
                &format!("bar:5000/foo/baz@{DIGEST}"),
                ["bar:5000", "foo", "baz", "", DIGEST],
            ),
            ("myregistry.io/foo", ["myregistry.io", "", "foo", "", ""]),
            ("localhost/bar", ["localhost", "", "bar", "", ""]),
            (
                "docker.io/library/myapp",
                ["docker.io", "library", "myapp", "", ""],
            ),
            ("docker.io/myapp", ["docker.io", "", "myapp", "", ""]),
            (
                "docker.io/user/myapp",
                ["docker.io", "user", "myapp", "", ""],
            ),
            (
                "docker.io/user/project/myapp",
                ["docker.io", "user", "project/myapp", "", ""],
            ),
            (
                "index.docker.io/bar",
                ["index.docker.io", "", "bar", "", ""],
            ),
            (
                &long_ok,
                ["bar:5000", &"a".repeat(63), &"b".repeat(182), "tag", ""],
            ),
            (
                &hub_explicit,
                ["docker.io", "library", &"b".repeat(231), "tag", ""],
            ),
            (
                &hub_implicit,
                ["docker.io", "", &"b".repeat(231), "tag", ""],
            ),
            ("quay.io", ["quay.io", "", "", "", ""]),
            ("quay.io/org", ["quay.io", "", "org", "", ""]),
            ("localhost:5000", ["localhost:5000", "", "", "", ""]),
            ("localhost:5000/org", ["localhost:5000", "", "org", "", ""]),
            ("wildfly:15.0", ["", "", "wildfly", "15.0", ""]),
            ("bar/foo/baz/biz", ["", "bar", "foo/baz/biz", "", ""]),
        ];
        for &(from, [registry, namespace, name, tag, id]) in ok {
            assert_eq!(
                DockerImageReference::parse(from),
                Ok(reference(registry, namespace, name, tag, id)),
                "{from}"
            );
        }

        let too_long = format!("bar:5000/{}/{}:tag", "a".repeat(63), "b".repeat(183));
        let hub_too_long = format!("docker.io/{}:tag", "b".repeat(246));
        let errors: &[(&str, ReferenceError)] = &[
            (&too_long, ReferenceError::NameTooLong),
            (&hub_too_long, ReferenceError::NameTooLong),
            ("registry.io/foo/bar/:Tag", ReferenceError::InvalidFormat),
            ("https://bar:5000/foo/baz", ReferenceError::InvalidFormat),
            (
                &format!("http://bar:5000/foo/baz@{DIGEST}"),
                ReferenceError::InvalidFormat,
            ),
            (
                "registry:3000/integration/imageStream:success",
                ReferenceError::NameContainsUppercase,
            ),
            (
                "registry:5000/integration/test-image-stream@sha256:00000000000000000000000000000001",
                ReferenceError::DigestInvalidLength,
            ),
            ("abc@badid", ReferenceError::InvalidFormat),
            (
                "index.docker.io/mysql@sha256:bad",
                ReferenceError::InvalidFormat,
            ),
            (&format!("@{DIGEST}"), ReferenceError::InvalidFormat),
            (":tag", ReferenceError::InvalidFormat),
            ("bar/foo/baz////biz", ReferenceError::InvalidFormat),
            ("//foo/baz/biz", ReferenceError::InvalidFormat),
            ("ftp://baz/baz/biz", ReferenceError::InvalidFormat),
            ("", ReferenceError::NameEmpty),
        ];
        for (from, error) in errors {
            assert_eq!(
                DockerImageReference::parse(from),
                Err(error.clone()),
                "{from}"
            );
        }
    }

    /// Semantics 1.9: the grammar's edges and the registry-vs-namespace split.
    #[test]
    fn grammar_edges_and_split() {
        let sha384 = format!("sha384:{}", "a".repeat(96));
        let sha512 = format!("sha512:{}", "F".repeat(128));
        let accepted = [
            "a__b/c",
            "a-----b",
            "a.b_c/d",
            "Host-1.Example.COM:443/x",
            "1.2.3.4:80/x/y/z",
            "x:_tag",
            "x:A.b-c_d",
            &format!("x:{}", "t".repeat(128)),
            &format!("x@{sha384}"),
            &format!("x@{sha512}"),
            &format!("x:t@{DIGEST}"),
            "localhost",
            "localhostfoo",
            "localhost:5000@sha256:3c87c572822935df60f0f5d3665bd376841a7fcfeb806b5f212de6a00e9a7b25",
        ];
        for spec in accepted {
            assert!(DockerImageReference::parse(spec).is_ok(), "{spec}");
        }
        let rejected = [
            ("a___b", ReferenceError::InvalidFormat),
            ("a..b", ReferenceError::InvalidFormat),
            ("a._b", ReferenceError::InvalidFormat),
            ("-a", ReferenceError::InvalidFormat),
            ("a-", ReferenceError::InvalidFormat),
            ("a/", ReferenceError::InvalidFormat),
            ("-host.com/x", ReferenceError::InvalidFormat),
            ("host-.com/x", ReferenceError::InvalidFormat),
            ("host.com:/x", ReferenceError::InvalidFormat),
            ("host.com:80:90/x", ReferenceError::InvalidFormat),
            ("x:", ReferenceError::InvalidFormat),
            ("x:.tag", ReferenceError::InvalidFormat),
            ("x:-tag", ReferenceError::InvalidFormat),
            (
                &format!("x:{}", "t".repeat(129)),
                ReferenceError::InvalidFormat,
            ),
            ("x:tÄg", ReferenceError::InvalidFormat),
            ("x@sha256:abc", ReferenceError::InvalidFormat),
            (
                "x@1sha:3c87c572822935df60f0f5d3665bd376",
                ReferenceError::InvalidFormat,
            ),
            (
                "x@sha256:3c87c572822935df60f0f5d3665bd37g",
                ReferenceError::InvalidFormat,
            ),
            (
                "x@@sha256:3c87c572822935df60f0f5d3665bd376",
                ReferenceError::InvalidFormat,
            ),
            (
                "x@md5:3c87c572822935df60f0f5d3665bd376",
                ReferenceError::DigestUnsupported,
            ),
            (
                "x@SHA256:3c87c572822935df60f0f5d3665bd376841a7fcfeb806b5f212de6a00e9a7b25",
                ReferenceError::DigestUnsupported,
            ),
            (
                "x@sha256+b64:3c87c572822935df60f0f5d3665bd376",
                ReferenceError::DigestUnsupported,
            ),
            (
                "x@sha512:3c87c572822935df60f0f5d3665bd376841a7fcfeb806b5f212de6a00e9a7b25",
                ReferenceError::DigestInvalidLength,
            ),
            ("Foo", ReferenceError::NameContainsUppercase),
            ("foo/Bar:TAG", ReferenceError::NameContainsUppercase),
            // Go's ToLower maps the Kelvin sign and the dotted capital I to ASCII letters
            ("\u{212a}ube", ReferenceError::NameContainsUppercase),
            ("\u{130}mage", ReferenceError::NameContainsUppercase),
            ("ümlaut", ReferenceError::InvalidFormat),
        ];
        for (spec, error) in rejected {
            assert_eq!(DockerImageReference::parse(spec), Err(error), "{spec}");
        }

        // 255 characters in total is the limit, registry included
        let at_limit = format!("quay.io/{}", "a".repeat(247));
        assert!(DockerImageReference::parse(&at_limit).is_ok());
        let over = format!("quay.io/{}", "a".repeat(248));
        assert_eq!(
            DockerImageReference::parse(&over),
            Err(ReferenceError::NameTooLong)
        );

        // upstream quirks kept: a first component with a dot is a registry even where the
        // grammar read it as a path component; `localhost…` alone is a registry
        assert_eq!(
            DockerImageReference::parse("a_b.c/d").map(|r| r.registry),
            Ok("a_b.c".to_owned())
        );
        assert_eq!(
            DockerImageReference::parse("localhostfoo"),
            Ok(reference("localhostfoo", "", "", "", ""))
        );
        assert_eq!(
            DockerImageReference::parse("localhostfoo/bar"),
            Ok(reference("", "localhostfoo", "bar", "", ""))
        );
        // registry-only keeps the whole string (tag and digest too) as the registry
        assert_eq!(
            DockerImageReference::parse(&format!("quay.io:tag@{DIGEST}")),
            Ok(reference(
                &format!("quay.io:tag@{DIGEST}"),
                "",
                "",
                "",
                DIGEST
            ))
        );
        assert_eq!(
            "nginx:1.25".parse(),
            Ok(reference("", "", "nginx", "1.25", ""))
        );
    }

    /// Older DockerImageReference tests (TestDockerImageReferenceString).
    #[test]
    fn test_docker_image_reference_string() {
        let cases = [
            (reference("", "", "foo", "", ""), "foo".to_owned()),
            (reference("", "", "foo", "tag", ""), "foo:tag".to_owned()),
            (
                reference("", "", "foo", "", DIGEST),
                format!("foo@{DIGEST}"),
            ),
            (
                reference(
                    "",
                    "",
                    "foo",
                    "",
                    "3c87c572822935df60f0f5d3665bd376841a7fcfeb806b5f212de6a00e9a7b25",
                ),
                "foo:3c87c572822935df60f0f5d3665bd376841a7fcfeb806b5f212de6a00e9a7b25".to_owned(),
            ),
            (reference("", "bar", "foo", "", ""), "bar/foo".to_owned()),
            (
                reference("", "bar", "foo", "tag", ""),
                "bar/foo:tag".to_owned(),
            ),
            (
                reference("", "bar", "foo", "", DIGEST),
                format!("bar/foo@{DIGEST}"),
            ),
            (
                reference("bar", "foo", "baz", "", ""),
                "bar/foo/baz".to_owned(),
            ),
            (
                reference("bar", "foo", "baz", "tag", ""),
                "bar/foo/baz:tag".to_owned(),
            ),
            (
                reference("bar", "foo", "baz", "", DIGEST),
                format!("bar/foo/baz@{DIGEST}"),
            ),
            (
                reference("bar:5000", "foo", "baz", "", ""),
                "bar:5000/foo/baz".to_owned(),
            ),
            (
                reference("bar:5000", "foo", "baz", "tag", ""),
                "bar:5000/foo/baz:tag".to_owned(),
            ),
            (
                reference("bar:5000", "library", "baz", "tag", ""),
                "bar:5000/library/baz:tag".to_owned(),
            ),
            (
                reference("bar:5000", "foo", "baz", "", DIGEST),
                format!("bar:5000/foo/baz@{DIGEST}"),
            ),
            (
                reference("docker.io", "user", "app", "", ""),
                "docker.io/user/app".to_owned(),
            ),
            (
                reference("index.docker.io", "", "foo", "", ""),
                "index.docker.io/library/foo".to_owned(),
            ),
            (
                reference("index.docker.io", "library", "bar", "", DIGEST),
                format!("index.docker.io/library/bar@{DIGEST}"),
            ),
        ];
        for (r, expected) in cases {
            assert_eq!(r.to_string(), expected, "{r:?}");
        }
        // Exact prints no defaults; String only adds Docker Hub's library
        assert_eq!(
            reference("docker.io", "", "foo", "", "").exact(),
            "docker.io/foo"
        );
        assert_eq!(
            reference("docker.io", "", "foo", "", "").to_string(),
            "docker.io/library/foo"
        );
        assert_eq!(reference("", "", "foo", "", "").to_string(), "foo");
        assert_eq!(reference("quay.io", "", "", "", "").exact(), "");
        assert_eq!(reference("", "", "", "tag", "").to_string(), "");
    }

    /// Older DockerImageReference tests (TestDockerImageReferenceAsRepository).
    #[test]
    fn test_docker_image_reference_as_repository() {
        let cases = [
            (reference("", "bar", "foo", "tag", ""), "bar/foo"),
            (reference("", "bar", "foo", "", DIGEST), "bar/foo"),
            (reference("bar", "foo", "baz", "", ""), "bar/foo/baz"),
        ];
        for (r, expected) in cases {
            assert_eq!(r.as_repository().to_string(), expected, "{r:?}");
        }
        assert_eq!(
            reference("quay.io", "org", "team/app", "1", DIGEST).repository_name(),
            "org/team/app"
        );
        assert_eq!(
            reference("quay.io", "", "app", "1", "").repository_name(),
            "app"
        );
    }

    /// Older DockerImageReference tests (TestDockerImageReferenceDaemonMinimal).
    #[test]
    fn test_docker_image_reference_daemon_minimal() {
        let cases = [
            (
                reference("", "library", "foo", "tag", ""),
                "library/foo:tag".to_owned(),
            ),
            (
                reference("", "bar", "foo", "", DIGEST),
                format!("bar/foo@{DIGEST}"),
            ),
            (
                reference("bar", "foo", "baz", "", ""),
                "bar/foo/baz".to_owned(),
            ),
            (
                reference("localhost:5000", "library", "bar", "latest", ""),
                "localhost:5000/library/bar".to_owned(),
            ),
            (
                reference("index.docker.io", "foo", "bar", "latest", ""),
                "docker.io/foo/bar".to_owned(),
            ),
            (
                reference("registry-1.docker.io", "library", "foo", "bar", ""),
                "docker.io/foo:bar".to_owned(),
            ),
            (
                reference("docker.io", "foo", "library", "", ""),
                "docker.io/foo/library".to_owned(),
            ),
            (
                reference("registry-1.docker.io", "", "library", "foo", ""),
                "docker.io/library:foo".to_owned(),
            ),
        ];
        for (r, expected) in cases {
            assert_eq!(r.daemon_minimal().exact(), expected, "{r:?}");
        }
    }

    /// Older DockerImageReference tests (TestDockerImageReferenceEquality), with the
    /// commutativity check.
    #[test]
    fn test_docker_image_reference_equality() {
        let openshift = reference("", "", "openshift", "", "");
        let cases = [
            (
                DockerImageReference::default(),
                DockerImageReference::default(),
                true,
            ),
            (openshift.clone(), openshift.clone(), true),
            (
                openshift.clone(),
                reference("", "", "openshift3", "", ""),
                false,
            ),
            (
                openshift.clone(),
                reference("docker.io", "library", "openshift", "latest", ""),
                true,
            ),
            (
                openshift.clone(),
                reference("docker.io", "library", "openshift", "v1.0", ""),
                false,
            ),
            (
                openshift.clone(),
                reference("docker.io", "library", "openshift", "latest", "d0a28ab59a"),
                false,
            ),
        ];
        for (a, b, equal) in cases {
            assert_eq!(a.equal(&b), equal, "{a:?} {b:?}");
            assert_eq!(b.equal(&a), equal, "{b:?} {a:?}");
        }
    }

    /// Semantics 1.9: DockerClientDefaults, AsV2, MostSpecific, Minimal.
    #[test]
    fn defaults_v2_and_most_specific() {
        assert_eq!(
            reference("", "", "busybox", "", "").docker_client_defaults(),
            reference("docker.io", "library", "busybox", "latest", "")
        );
        assert_eq!(
            reference("quay.io", "", "busybox", "", DIGEST).docker_client_defaults(),
            reference("quay.io", "", "busybox", "latest", DIGEST)
        );
        assert_eq!(
            reference("index.docker.io", "", "x", "1", "").docker_client_defaults(),
            reference("index.docker.io", "library", "x", "1", "")
        );
        for hub in ["docker.io", "index.docker.io"] {
            assert_eq!(
                reference(hub, "", "x", "", "").as_v2().registry,
                "registry-1.docker.io"
            );
        }
        assert_eq!(reference("", "", "x", "", "").as_v2().registry, "");
        assert_eq!(
            reference("quay.io", "", "x", "", "").as_v2().registry,
            "quay.io"
        );

        assert_eq!(
            reference("", "", "x", "1", DIGEST).most_specific(),
            reference("", "", "x", "", DIGEST)
        );
        assert_eq!(
            reference("", "", "x", "", "abc").most_specific(),
            reference("", "", "x", "abc", "")
        );
        assert_eq!(
            reference("", "", "x", "1", "abc").most_specific(),
            reference("", "", "x", "1", "abc")
        );
        assert_eq!(
            reference("", "", "x", "1", "").most_specific(),
            reference("", "", "x", "1", "")
        );
        assert_eq!(
            reference("", "", "x", "latest", "").minimal(),
            reference("", "", "x", "", "")
        );
        assert!(reference("", "", "x", "", DIGEST).is_digest());
        assert!(!reference("", "", "x", "", "abc").is_digest());
        assert!(!reference("", "", "x", "", "").is_digest());
    }

    /// Upstream RegistryHostPort: AsV2, then defaults; 443, or 80 when insecure.
    #[test]
    fn registry_host_port() {
        let port = |registry: &str, insecure| {
            reference(registry, "", "x", "", "").registry_host_port(insecure)
        };
        let pair = |host: &str, port: &str| (host.to_owned(), port.to_owned());
        assert_eq!(port("quay.io", false), pair("quay.io", "443"));
        assert_eq!(port("quay.io", true), pair("quay.io", "80"));
        assert_eq!(port("localhost:5000", true), pair("localhost", "5000"));
        assert_eq!(
            port("docker.io", false),
            pair("registry-1.docker.io", "443")
        );
        assert_eq!(
            port("index.docker.io", false),
            pair("registry-1.docker.io", "443")
        );
        // upstream defaults after the v2 mapping, so an empty registry stays docker.io
        assert_eq!(port("", false), pair("docker.io", "443"));
        assert_eq!(port("[::1]:5000", false), pair("::1", "5000"));
        assert_eq!(port("a:b:c", false), pair("", ""));
        assert_eq!(port("[::1]", false), pair("", ""));
    }

    /// Semantics 5.3 and §13 quirk 10: an import records the reference as written, tag
    /// replaced by the digest, without defaults.
    #[test]
    fn import_keeps_the_users_spelling() {
        let cases = [
            ("nginx", format!("nginx@{DIGEST}")),
            ("nginx:1.25", format!("nginx@{DIGEST}")),
            ("quay.io/a/b:latest", format!("quay.io/a/b@{DIGEST}")),
            ("docker.io/nginx:1", format!("docker.io/nginx@{DIGEST}")),
        ];
        for (from, expected) in cases {
            let imported = DockerImageReference::parse(from)
                .and_then(|r| r.with_digest(DIGEST))
                .map(|r| r.most_specific().exact());
            assert_eq!(imported, Ok(expected), "{from}");
        }
        let r = reference("", "", "x", "", "");
        assert_eq!(
            r.with_tag("v1.0_b-c"),
            Ok(reference("", "", "x", "v1.0_b-c", ""))
        );
        assert_eq!(r.with_tag(".x"), Err(ReferenceError::TagInvalidFormat));
        assert_eq!(r.with_tag(""), Err(ReferenceError::TagInvalidFormat));
        assert_eq!(
            r.with_digest("sha256:abc"),
            Err(ReferenceError::DigestInvalidFormat)
        );
        assert_eq!(
            r.with_digest("md5:3c87c572822935df60f0f5d3665bd376"),
            Err(ReferenceError::DigestUnsupported)
        );
        assert_eq!(
            reference("", "", "x", "1", "").with_digest(DIGEST),
            Ok(reference("", "", "x", "1", DIGEST))
        );
    }

    /// Upstream digest.Validate, as used by MostSpecific, NameString and DigestOrImageMatch.
    #[test]
    fn validate_digests() {
        assert_eq!(validate_digest(DIGEST), Ok(()));
        assert_eq!(
            validate_digest(&format!("sha384:{}", "0".repeat(96))),
            Ok(())
        );
        assert_eq!(
            validate_digest(&format!("sha512:{}", "0".repeat(128))),
            Ok(())
        );
        assert_eq!(
            validate_digest("sha256:abc"),
            Err(ReferenceError::DigestInvalidLength)
        );
        assert_eq!(
            validate_digest("md5:abc"),
            Err(ReferenceError::DigestUnsupported)
        );
        assert_eq!(
            validate_digest("sha256:"),
            Err(ReferenceError::ChecksumInvalidFormat)
        );
        assert_eq!(
            validate_digest("abc"),
            Err(ReferenceError::ChecksumInvalidFormat)
        );
        assert_eq!(
            validate_digest(""),
            Err(ReferenceError::ChecksumInvalidFormat)
        );
        assert_eq!(
            validate_digest("sha256:xyz"),
            Err(ReferenceError::ChecksumInvalidFormat)
        );
        assert_eq!(
            validate_digest("sha 256:abc"),
            Err(ReferenceError::ChecksumInvalidFormat)
        );
    }

    /// Semantics 1.9 DigestOrImageMatch: `sha256:abc`, `abc` and full digests all match.
    #[test]
    fn test_digest_or_image_match() {
        let hex = &DIGEST["sha256:".len()..];
        assert!(digest_or_image_match(DIGEST, DIGEST));
        assert!(digest_or_image_match(DIGEST, "sha256:3c87"));
        assert!(digest_or_image_match(DIGEST, "3c87"));
        assert!(digest_or_image_match(DIGEST, hex));
        assert!(digest_or_image_match(DIGEST, ""));
        assert!(!digest_or_image_match(DIGEST, "3c88"));
        assert!(!digest_or_image_match(DIGEST, "sha256:3c88"));
        // not a valid digest: only the plain prefix counts
        assert!(digest_or_image_match("sha256:3c87", "sha256:3c"));
        assert!(!digest_or_image_match("sha256:3c87", "3c"));
        assert!(digest_or_image_match("myimage", "my"));
    }

    /// Conformance 91: library-go helpers_test.go TestJoinImageStreamTag.
    #[test]
    fn test_join_image_stream_tag() {
        assert_eq!(join_image_stream_tag("foo", "bar"), "foo:bar");
        assert_eq!(join_image_stream_tag("foo", ""), "foo:latest");
        assert_eq!(join_image_stream_image("foo", "sha256:1"), "foo@sha256:1");
    }

    /// Conformance 91: library-go helpers_test.go TestParseImageStreamTagName, with upstream's
    /// messages.
    #[test]
    fn test_parse_image_stream_tag_name() {
        assert_eq!(parse_image_stream_tag_name("name:tag"), Ok(("name", "tag")));
        let errors = [
            ("", "expected exactly one : delimiter in the istag \"\""),
            (
                "hello",
                "expected exactly one : delimiter in the istag \"hello\"",
            ),
            (
                "a:b:c",
                "expected exactly one : delimiter in the istag \"a:b:c\"",
            ),
            (
                ":tag",
                "image stream tag name \":tag\" must have a name and a tag",
            ),
            (
                "name:",
                "image stream tag name \"name:\" must have a name and a tag",
            ),
            (
                "name@sha256:x",
                "\"name@sha256:x\" is an image stream image, not an image stream tag",
            ),
        ];
        for (input, message) in errors {
            let error = parse_image_stream_tag_name(input).err();
            assert_eq!(
                error.map(|e| e.to_string()).as_deref(),
                Some(message),
                "{input}"
            );
        }
        assert_eq!(
            parse_image_stream_tag_name("a\"b\n").map_err(|e| e.to_string()),
            Err("expected exactly one : delimiter in the istag \"a\\\"b\\n\"".to_owned())
        );
    }

    /// Conformance 91: library-go helpers_test.go TestParseImageStreamImageName.
    #[test]
    fn test_parse_image_stream_image_name() {
        assert_eq!(parse_image_stream_image_name("repo@id"), Ok(("repo", "id")));
        let errors = [
            ("", StreamNameError::ImageDelimiter(String::new())),
            ("a", StreamNameError::ImageDelimiter("a".to_owned())),
            ("a@b@c", StreamNameError::ImageDelimiter("a@b@c".to_owned())),
            (
                "@id",
                StreamNameError::ImageNameIncomplete("@id".to_owned()),
            ),
            (
                "name@",
                StreamNameError::ImageNameIncomplete("name@".to_owned()),
            ),
        ];
        for (input, error) in errors {
            assert_eq!(parse_image_stream_image_name(input), Err(error), "{input}");
        }
        assert_eq!(
            StreamNameError::ImageNameIncomplete("@id".to_owned()).to_string(),
            "image stream image name \"@id\" must have a name and ID"
        );
        assert_eq!(
            StreamNameError::ImageDelimiter("a".to_owned()).to_string(),
            "expected exactly one @ in the isimage name \"a\""
        );
    }

    /// Semantics 1.9 SplitImageStreamTag (lenient, tag defaults to latest).
    #[test]
    fn split_names_leniently() {
        assert_eq!(split_image_stream_tag("foo:bar"), ("foo", "bar", true));
        assert_eq!(split_image_stream_tag("foo"), ("foo", "latest", false));
        assert_eq!(split_image_stream_tag("foo:"), ("foo", "latest", true));
        assert_eq!(split_image_stream_tag("a:b:c"), ("a", "b:c", true));
        assert_eq!(
            split_image_stream_image("foo@sha256:1"),
            ("foo", "sha256:1", true)
        );
        assert_eq!(split_image_stream_image("foo"), ("foo", "", false));
    }

    /// Conformance 90: library-go helpers_test.go TestPrioritizeTags, all four cases.
    #[test]
    fn test_prioritize_tags() {
        let cases: [(&[&str], &[&str]); 4] = [
            (
                &[
                    "other",
                    "latest",
                    "v5.5",
                    "5.2.3",
                    "5.5",
                    "v5.3.6-bother",
                    "5.3.6-abba",
                    "5.6",
                ],
                &[
                    "latest",
                    "5.6",
                    "5.5",
                    "v5.5",
                    "v5.3.6-bother",
                    "5.3.6-abba",
                    "5.2.3",
                    "other",
                ],
            ),
            (
                &[
                    "1.1-beta1",
                    "1.2-rc1",
                    "1.1-rc1",
                    "1.1-beta2",
                    "1.2-beta1",
                    "1.2-alpha1",
                    "1.2-beta4",
                    "latest",
                ],
                &[
                    "latest",
                    "1.2-rc1",
                    "1.2-beta4",
                    "1.2-beta1",
                    "1.2-alpha1",
                    "1.1-rc1",
                    "1.1-beta2",
                    "1.1-beta1",
                ],
            ),
            (&["7.1", "v7.1", "7.1.0"], &["7.1", "v7.1", "7.1.0"]),
            (&["7.1.0", "v7.1", "7.1"], &["7.1", "v7.1", "7.1.0"]),
        ];
        for (tags, expected) in cases {
            let mut sorted = tags.to_vec();
            prioritize_tags(&mut sorted);
            assert_eq!(sorted, expected, "{tags:?}");
            let mut owned: Vec<String> = tags.iter().map(|t| (*t).to_owned()).collect();
            prioritize_tags(&mut owned);
            assert_eq!(owned, expected, "{tags:?}");
        }
    }

    /// blang/semver rules PrioritizeTags depends on: numeric pre-releases below alphanumeric,
    /// numbers by value, longer pre-release lists above their prefixes, build metadata
    /// ignored, leading zeros and bad identifiers not semantic versions.
    #[test]
    fn prioritize_tags_semver_details() {
        let mut tags = vec![
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.0-2",
            "1.0.0-10",
        ];
        prioritize_tags(&mut tags);
        assert_eq!(
            tags,
            [
                "1.0.0",
                "1.0.0-rc.1",
                "1.0.0-beta.11",
                "1.0.0-beta.2",
                "1.0.0-beta",
                "1.0.0-alpha.beta",
                "1.0.0-alpha.1",
                "1.0.0-alpha",
                "1.0.0-10",
                "1.0.0-2",
            ]
        );
        // not versions: sorted as plain strings after every version
        let mut tags = vec![
            "zeta",
            "01.2.3",
            "1.02",
            "1.2.3-01",
            "1.2.3+",
            "1.2.3-",
            "1.2.3_x",
            "1.2-rc_1",
            "v",
            "V1.2",
            "1.2.3+build.1",
            "18446744073709551616.0.0",
            "1.2-rc-1",
            "1.2.3.4",
        ];
        prioritize_tags(&mut tags);
        assert_eq!(
            tags,
            [
                "1.2.3+build.1",
                "01.2.3",
                "1.02",
                "1.2-rc-1",
                "1.2-rc_1",
                "1.2.3+",
                "1.2.3-",
                "1.2.3-01",
                "1.2.3.4",
                "1.2.3_x",
                "18446744073709551616.0.0",
                "V1.2",
                "v",
                "zeta",
            ]
        );
        // build metadata does not order; the sort is stable
        let mut tags = vec!["1.0.0+b", "1.0.0+a", "v1.0.0+c", "1.0.0"];
        prioritize_tags(&mut tags);
        assert_eq!(tags, ["1.0.0+b", "1.0.0+a", "1.0.0", "v1.0.0+c"]);
        // minor versions before full ones, whatever the numbers
        let mut tags = vec!["9.9.9", "1.0", "v2.0-rc1", "2.0"];
        prioritize_tags(&mut tags);
        assert_eq!(tags, ["2.0", "v2.0-rc1", "1.0", "9.9.9"]);
    }

    #[test]
    fn to_oci_reference_resolves_defaults() {
        let oci = |spec: &str| DockerImageReference::parse(spec).and_then(|r| r.to_oci_reference());
        let whole = |spec: &str| oci(spec).map(|r| r.whole());
        assert_eq!(
            whole("busybox"),
            Ok("docker.io/library/busybox:latest".to_owned())
        );
        assert_eq!(
            whole("index.docker.io/busybox:1"),
            Ok("docker.io/library/busybox:1".to_owned())
        );
        assert_eq!(
            whole("registry-1.docker.io/busybox:1"),
            Ok("docker.io/library/busybox:1".to_owned())
        );
        assert_eq!(
            whole("docker.io/org/app"),
            Ok("docker.io/org/app:latest".to_owned())
        );
        assert_eq!(
            whole("localhost:5000/app:1"),
            Ok("localhost:5000/app:1".to_owned())
        );
        assert_eq!(
            whole("quay.io/org/team/app:1"),
            Ok("quay.io/org/team/app:1".to_owned())
        );
        assert_eq!(
            whole(&format!("quay.io/a/b:1@{DIGEST}")),
            Ok(format!("quay.io/a/b@{DIGEST}"))
        );
        let busybox = oci("busybox");
        assert_eq!(
            busybox.as_ref().map(|r| r.resolve_registry()),
            Ok("index.docker.io")
        );
        assert_eq!(
            busybox.as_ref().map(|r| r.repository()),
            Ok("library/busybox")
        );
        assert_eq!(busybox.as_ref().map(|r| r.tag()), Ok(Some("latest")));
        // the same as oci-spec's own normalisation
        for spec in [
            "busybox",
            "docker.io/busybox",
            "index.docker.io/library/busybox:1",
            "foo/bar",
            "localhost/foo",
        ] {
            assert_eq!(
                oci(spec),
                oci_client::Reference::try_from(spec).map_err(|_| ReferenceError::InvalidFormat),
                "{spec}"
            );
        }
        assert_eq!(oci("quay.io"), Err(ReferenceError::NameEmpty));
        assert_eq!(
            oci("a_b.c/d"),
            Err(ReferenceError::RegistryInvalid("a_b.c".to_owned()))
        );
        let long = format!("{}:1", "a".repeat(240));
        assert_eq!(oci(&long), Err(ReferenceError::NameTooLong));
        // hand-built references are checked too
        assert_eq!(
            reference("", "", "x", "", "abc")
                .to_oci_reference()
                .map(|r| r.whole()),
            Ok("docker.io/library/x:abc".to_owned())
        );
        assert_eq!(
            reference("", "", "x", "1", "abc").to_oci_reference(),
            Err(ReferenceError::ChecksumInvalidFormat)
        );
        assert_eq!(
            reference("", "", "x", "-1", "").to_oci_reference(),
            Err(ReferenceError::TagInvalidFormat)
        );
        assert_eq!(
            reference("", "", "x/", "", "").to_oci_reference(),
            Err(ReferenceError::InvalidFormat)
        );
        assert_eq!(oci("Foo/bar"), Err(ReferenceError::NameContainsUppercase));
        assert_eq!(
            DockerImageReference::parse("Foo/bar"),
            Ok(reference("", "Foo", "bar", "", ""))
        );
        assert_eq!(
            reference("a/b", "", "x", "", "").to_oci_reference(),
            Err(ReferenceError::RegistryInvalid("a/b".to_owned()))
        );
    }

    #[test]
    fn reasons_are_stable() {
        assert_eq!(
            ReferenceError::InvalidFormat.reason(),
            "InvalidReferenceFormat"
        );
        assert_eq!(
            ReferenceError::NameContainsUppercase.reason(),
            "NameContainsUppercase"
        );
        assert_eq!(
            ReferenceError::DigestInvalidLength.reason(),
            "DigestInvalidLength"
        );
        assert_eq!(
            StreamNameError::TagDelimiter(String::new()).reason(),
            "TagDelimiter"
        );
        assert_eq!(
            ReferenceError::NameTooLong.to_string(),
            "repository name must not be more than 255 characters"
        );
    }

    #[test]
    fn go_quote_matches_strconv_quote() {
        assert_eq!(go_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(go_quote("\u{0}\u{7f}\t"), "\"\\x00\\x7f\\t\"");
        assert_eq!(go_quote("é\u{feff}\u{a0}"), "\"é\\ufeff\\u00a0\"");
    }

    // --- property tests -------------------------------------------------------------------

    fn component() -> impl Strategy<Value = String> {
        let separator = prop_oneof![
            Just(".".to_owned()),
            Just("_".to_owned()),
            Just("__".to_owned()),
            "-{1,3}"
        ];
        (
            "[a-z0-9]{1,6}",
            prop::collection::vec((separator, "[a-z0-9]{1,6}"), 0..3),
        )
            .prop_map(|(first, rest)| {
                rest.into_iter().fold(first, |mut s, (sep, run)| {
                    s.push_str(&sep);
                    s.push_str(&run);
                    s
                })
            })
    }

    fn hostname() -> impl Strategy<Value = String> {
        let label = prop_oneof!["[a-zA-Z0-9]", "[a-zA-Z0-9][a-zA-Z0-9-]{0,6}[a-zA-Z0-9]"];
        let host = prop::collection::vec(label, 1..4).prop_map(|labels| labels.join("."));
        let named = prop_oneof![
            host,
            Just("localhost".to_owned()),
            Just("docker.io".to_owned()),
            Just("index.docker.io".to_owned()),
            Just("registry-1.docker.io".to_owned()),
        ];
        (named, prop::option::of("[0-9]{1,5}")).prop_map(|(host, port)| match port {
            Some(port) => format!("{host}:{port}"),
            None => host,
        })
    }

    fn tag() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => "[A-Za-z0-9_][A-Za-z0-9_.-]{0,12}",
            1 => "[A-Za-z0-9_][A-Za-z0-9_.-]{120,127}",
        ]
    }

    fn digest() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9a-f]{64}".prop_map(|hex| format!("sha256:{hex}")),
            "[0-9a-fA-F]{64}".prop_map(|hex| format!("sha256:{hex}")),
            "[0-9a-f]{96}".prop_map(|hex| format!("sha384:{hex}")),
            "[0-9a-f]{128}".prop_map(|hex| format!("sha512:{hex}")),
        ]
    }

    /// Valid references, generated from the grammar (names over 255 characters filtered out).
    fn valid_reference() -> impl Strategy<Value = String> {
        let component = prop_oneof![9 => component(), 1 => "[a-z0-9]{40,100}"];
        let name = (
            prop::option::of(hostname()),
            prop::collection::vec(component, 1..5),
        )
            .prop_map(|(host, components)| {
                let mut name = host.map(|h| format!("{h}/")).unwrap_or_default();
                name.push_str(&components.join("/"));
                name
            })
            .prop_filter("name within 255 characters", |name| {
                name.len() <= NAME_TOTAL_LENGTH_MAX
            });
        (name, prop::option::of(tag()), prop::option::of(digest())).prop_map(
            |(mut s, tag, digest)| {
                if let Some(tag) = tag {
                    s.push(':');
                    s.push_str(&tag);
                }
                if let Some(digest) = digest {
                    s.push('@');
                    s.push_str(&digest);
                }
                s
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// TagEvents keep the user's spelling: every valid reference parses, and exact() gives
        /// the input back (registry-only inputs and tag+digest pairs as the module docs say).
        #[test]
        fn exact_round_trips_user_spelling(spec in valid_reference()) {
            let r = DockerImageReference::parse(&spec);
            prop_assert!(r.is_ok(), "{spec:?}: {r:?}");
            let r = r.unwrap_or_default();
            if r.name.is_empty() {
                prop_assert_eq!(&r.registry, &spec);
                prop_assert_eq!(r.exact(), "");
            } else if r.tag.is_empty() || r.id.is_empty() {
                prop_assert_eq!(r.exact(), spec);
            } else {
                prop_assert_eq!(r.exact(), spec.replacen(&format!(":{}@", r.tag), "@", 1));
            }
        }

        /// parse → Display → parse is stable, and everything else the fuzz target checks.
        #[test]
        fn valid_references_keep_all_invariants(spec in valid_reference()) {
            check_reference_invariants(&spec);
        }

        /// Near-misses: characters the grammar cares about, in any order.
        #[test]
        fn arbitrary_strings_keep_all_invariants(spec in "[a-cA-C0-9._:/@+,-]{0,24}") {
            check_reference_invariants(&spec);
            check_name_helper_invariants(&spec);
        }

        /// Valid references with one character changed.
        #[test]
        fn mutated_references_keep_all_invariants(
            spec in valid_reference(),
            at in any::<prop::sample::Index>(),
            c in prop::sample::select(vec!['a', 'A', '0', '.', '_', '-', ':', '/', '@', '+', 'é']),
            delete in any::<bool>(),
        ) {
            let mut chars: Vec<char> = spec.chars().collect();
            let i = at.index(chars.len() + 1);
            if delete && i < chars.len() {
                chars.remove(i);
            } else {
                chars.insert(i, c);
            }
            check_reference_invariants(&chars.into_iter().collect::<String>());
        }
    }

    /// The fuzz target's body (fuzz/invariants.rs) over pseudo-random inputs from a fixed
    /// seed, so plain `cargo test` exercises it even where cargo-fuzz cannot run.
    #[test]
    fn fuzz_body_over_pseudo_random_inputs() {
        const INPUTS: usize = 300_000;
        const PIECES: &[&str] = &[
            "a",
            "b",
            "z",
            "0",
            "9",
            "A",
            "Z",
            ".",
            "_",
            "__",
            "-",
            "--",
            ":",
            "/",
            "@",
            "+",
            "é",
            "\u{212a}",
            "localhost",
            "docker.io",
            "index.docker.io",
            "registry-1.docker.io",
            "quay.io",
            ":5000",
            "library",
            "latest",
            "sha256:",
            "sha384:",
            "sha512:",
            "md5:",
            "3c87c572822935df60f0f5d3665bd376841a7fcfeb806b5f212de6a00e9a7b25",
            "0123456789abcdef",
            ",",
            "v",
            "1.2",
            "-rc1",
            ".3",
            "+b",
        ];
        let mut state: u64 = 0x5eed_1234_abcd_0042;
        let mut next = move || {
            // SplitMix64
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut parsed = 0usize;
        let mut input = String::new();
        for _ in 0..INPUTS {
            input.clear();
            let pieces = next() % 12;
            for _ in 0..pieces {
                let piece = PIECES[usize::try_from(next() % PIECES.len() as u64).unwrap_or(0)];
                input.push_str(piece);
            }
            check_reference_invariants(&input);
            check_name_helper_invariants(&input);
            parsed += usize::from(DockerImageReference::parse(&input).is_ok());
        }
        // the generator must reach both sides of the grammar
        assert!(
            parsed > INPUTS / 50 && parsed < INPUTS / 2,
            "{parsed} of {INPUTS} parsed"
        );
    }
}
