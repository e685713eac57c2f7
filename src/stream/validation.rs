//! The validating admission webhook's rules (semantics section 1, 3.6 and 5.10) as pure
//! functions: each takes the decoded object(s) and returns Kubernetes-style field errors with
//! upstream's field paths and messages (openshift-apiserver
//! `pkg/image/apis/image/validation`), so a user reading the 422 can act on it. The webhook does
//! the IO: it decodes the request, issues the SubjectAccessReviews that
//! [`cross_namespace_references`] asks for, and turns the errors into a response. These rules
//! live here rather than in CEL because they need the namespace, the old object, or the
//! cluster's `allowedRegistriesForImport`.
//!
//! | Request | Rule |
//! |---|---|
//! | ImageStream create / update | [`validate_image_stream`] / [`validate_image_stream_update`], then one SubjectAccessReview per [`cross_namespace_references`] entry, denials reported with [`forbidden_reference_errors`] |
//! | ImageStreamTag create / update | [`validate_image_stream_tag`] / [`validate_image_stream_tag_update_with_context`] ([`validate_image_stream_tag_update`] skips the registry check) |
//! | ImageTag create / update | [`validate_image_tag`] / [`validate_image_tag_update_with_context`] ([`validate_image_tag_update`] skips the registry check) |
//! | ImageStreamImport create | [`validate_image_stream_import`], plus [`validate_registry_allowed_for_import`] for users who may not create Images |
//! | Image create / update | [`validate_image`] |
//! | ImageSignature create | [`validate_image_signature`] |
//! | ImageStreamMapping create | [`validate_image_stream_mapping`] |
//!
//! What is deliberately not here, and why:
//! - Checks the apiserver already makes for every custom resource: the `metadata` rules of
//!   `ValidateObjectMeta`/`ValidateObjectMetaUpdate` beyond names and namespaces (labels,
//!   annotations, owner references, immutable fields), the Image's cluster scope.
//! - `referencePolicy.type` and `importPolicy.importMode` values (semantics 10.2 cases 29 and
//!   31): the API types are enums, so a value upstream rejects cannot be decoded, and the CRD
//!   schema's `enum` rejects it before any webhook runs (with Kubernetes' "Unsupported value"
//!   text, not upstream's). `""` is accepted: upstream defaults it before validating, here the
//!   mutating webhook does.
//! - ImageStreamLayers (case 42): only the operator writes them.
//! - Limit ranges (case 24): [`crate::stream::limits`], applied by the webhook with the
//!   namespace's LimitRanges. The tag-event resolution of semantics 3.2 (referenced streams
//!   must exist, ImageStreamImage prefixes must be unique) needs reads: the controller
//!   resolves and reports it (design rule 6).
//!
//! Deviations from upstream, each for a reason:
//! - Errors are reported as plain field errors. Upstream wraps the cross-namespace errors
//!   (invalid `from.name`, denied SubjectAccessReviews) into one `InternalError` cause
//!   (semantics 13, quirk 11), which hides the field a user has to fix.
//! - Updates of the view kinds compare only what a user can change: labels (and, for ImageTag,
//!   annotations) plus the fields the operator renders. The apiserver owns the rest of
//!   `metadata`, and the garbage collector writes finalizers and owner references. These
//!   rules judge user requests; the operator's own renders of a view must not be run through
//!   them.
//! - Object names of the view kinds are encoded ([`crate::names`]): the `<stream>:<tag>` of an
//!   ImageTag and the `<image>@<signature>` of an ImageSignature are read from the plain-form
//!   name or, failing that, from the `image.openshift.io/name` annotation, which is therefore
//!   not a "signature annotation" users are forbidden to set.
//! - ImageStreamMapping: `image.dockerImageReference` may be empty (the operator defaults it
//!   from the internal registry when it applies the mapping); the legacy internal
//!   `dockerImageRepository` does not exist in v1, so a mapping without a name reports it as
//!   Required exactly as upstream does for v1 clients, but there is nothing else to check.
//! - The manifest size error is reported on `dockerImageManifests[i].manifestSize`, the field's
//!   real name (upstream says `size`).
//! - Signature conditions: the newest `Trusted` and the newest `ForImage` condition are used.
//!   Upstream's loop also counts a condition of any other type as `ForImage` (an operator
//!   precedence slip), which this does not copy.
//! - Values are quoted with Rust's `{:?}`, which equals Go's `%q` except for control and
//!   non-printable characters.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::api::image_stream::{
    INSECURE_REPOSITORY_ANNOTATION, KIND_DOCKER_IMAGE, KIND_IMAGE_STREAM_IMAGE,
    KIND_IMAGE_STREAM_TAG,
};
use crate::api::{
    Image, ImageFields, ImageManifest, ImageSignature, ImageStream, ImageStreamImport,
    ImageStreamMapping, ImageStreamTag, ImageTag, SignatureCondition, TagReference,
};
use crate::names;
use crate::reference::{DockerImageReference, NAME_TOTAL_LENGTH_MAX, parse_image_stream_tag_name};
use crate::registry::policy::{AllowedRegistries, NotAllowed, Transport};

use super::generation::tag_ref_changed;

/// One field error, as Kubernetes reports them in a 422 Invalid's causes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// What is wrong.
    pub kind: FieldErrorKind,
    /// The JSON path of the field, Kubernetes style (`spec.tags[latest].from.name`).
    pub field: String,
    /// Upstream's explanation; may be empty.
    pub detail: String,
    /// The rejected value as Kubernetes prints it: strings quoted, numbers and booleans bare,
    /// anything else as JSON. Printed only by the kinds that show a value; `None` prints as
    /// `"null"`.
    pub value: Option<String>,
}

/// Kubernetes' `field.ErrorType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// A required field is missing.
    Required,
    /// A value is malformed or out of range.
    Invalid,
    /// A value is well-formed but not permitted.
    Forbidden,
    /// A value is not one of the supported ones.
    NotSupported,
    /// A value is too long.
    TooLong,
    /// A value appears twice where it must be unique.
    Duplicate,
    /// Validation itself failed.
    InternalError,
}

impl FieldErrorKind {
    /// The `StatusCause.reason` (`metav1.CauseType`) of this kind.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid => "FieldValueInvalid",
            Self::Forbidden => "FieldValueForbidden",
            Self::NotSupported => "FieldValueNotSupported",
            Self::TooLong => "FieldValueTooLong",
            Self::Duplicate => "FieldValueDuplicate",
            Self::InternalError => "InternalError",
        }
    }

    /// How Kubernetes names the kind in messages.
    fn label(self) -> &'static str {
        match self {
            Self::Required => "Required value",
            Self::Invalid => "Invalid value",
            Self::Forbidden => "Forbidden",
            Self::NotSupported => "Unsupported value",
            Self::TooLong => "Too long",
            Self::Duplicate => "Duplicate value",
            Self::InternalError => "Internal error",
        }
    }

    /// Whether messages of this kind show the rejected value.
    fn shows_value(self) -> bool {
        matches!(self, Self::Invalid | Self::NotSupported | Self::Duplicate)
    }
}

impl FieldError {
    /// A missing field.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Required, field, detail, None)
    }

    /// A malformed string value.
    pub fn invalid(field: impl Into<String>, value: &str, detail: impl Into<String>) -> Self {
        Self::new(
            FieldErrorKind::Invalid,
            field,
            detail,
            Some(format!("{value:?}")),
        )
    }

    /// A malformed value of another type; `value` is already rendered (see [`Self::value`]).
    pub fn invalid_rendered(
        field: impl Into<String>,
        value: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(FieldErrorKind::Invalid, field, detail, Some(value.into()))
    }

    /// A value that is not permitted.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Forbidden, field, detail, None)
    }

    fn new(
        kind: FieldErrorKind,
        field: impl Into<String>,
        detail: impl Into<String>,
        value: Option<String>,
    ) -> Self {
        FieldError {
            kind,
            field: field.into(),
            detail: detail.into(),
            value,
        }
    }

    /// The message without the field (Kubernetes' `ErrorBody`), as a `StatusCause.message`:
    /// `Invalid value: "a:b:c": <detail>`.
    pub fn message(&self) -> String {
        let mut body = self.kind.label().to_string();
        if self.kind.shows_value() {
            body.push_str(": ");
            body.push_str(self.value.as_deref().unwrap_or("\"null\""));
        }
        if !self.detail.is_empty() {
            body.push_str(": ");
            body.push_str(&self.detail);
        }
        body
    }
}

/// The message of a 422 Invalid, as the apiserver writes it for its own validation:
/// `<Kind>.<group> "<name>" is invalid: <errors>`.
pub fn invalid_message(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> String {
    format!(
        "{kind}.{group} {name:?} is invalid: {}",
        aggregate(errors.iter().map(ToString::to_string))
    )
}

/// Kubernetes' aggregate error text: one message alone, several as `[a, b]`, duplicates once.
fn aggregate(messages: impl Iterator<Item = String>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for message in messages {
        if !seen.contains(&message) {
            seen.push(message);
        }
    }
    match seen.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message())
    }
}

/// What the rules need besides the objects.
#[derive(Clone, Copy, Debug, Default)]
pub struct ValidationContext<'a> {
    /// `allowedRegistriesForImport`; `None` allows every registry.
    pub allowed_registries: Option<&'a AllowedRegistries>,
}

/// Spec tags of one stream that reference one stream in another namespace; the webhook asks
/// whether the requesting user may `get` `imagestreams/layers` of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CrossNamespaceReference {
    /// The namespace of the referenced stream.
    pub namespace: String,
    /// The referenced stream.
    pub stream: String,
    /// The spec tags of the validated stream that reference it, sorted.
    pub tags: Vec<String>,
}

const FROM_NAME_FORM: &str = "must be of the form <tag>, <repo>:<tag>, <id>, or <repo>@<id>";
const FROM_KIND_VALUES: &str =
    "valid values are 'DockerImage', 'ImageStreamImage', 'ImageStreamTag'";
const ONLY_DOCKER_SCHEDULED: &str =
    "only tags pointing to Docker repositories may be scheduled for background import";
const ONLY_DOCKER_IMAGE: &str = "only DockerImage is supported";
const NAME_REQUIRED: &str = "name or generateName is required";
const UNKNOWN_SIGNATURE_STATE: &str = "must be unset for unknown signature state";
const SIGNATURE_TRUSTED: &str = "Trusted";
const SIGNATURE_FOR_IMAGE: &str = "ForImage";

// ---------------------------------------------------------------------------------------------
// ImageStream
// ---------------------------------------------------------------------------------------------

/// ImageStream create (upstream `ValidateImageStreamWithWhitelister` plus the `from.name` form
/// check of the strategy's tag verification, semantics 3.2 and 3.6).
pub fn validate_image_stream(new: &ImageStream, ctx: &ValidationContext) -> Vec<FieldError> {
    let gate = RegistryGate::new(ctx, None);
    let mut errors = stream_errors(new, &gate);
    errors.extend(from_name_form_errors(new, None));
    errors
}

/// ImageStream update: as create, except that registries the old object already referenced
/// stay allowed (semantics 5.10, case 34) and only new or changed tags have their `from.name`
/// form checked.
pub fn validate_image_stream_update(
    new: &ImageStream,
    old: &ImageStream,
    ctx: &ValidationContext,
) -> Vec<FieldError> {
    let gate = RegistryGate::new(ctx, Some(old));
    let mut errors = stream_errors(new, &gate);
    errors.extend(from_name_form_errors(new, Some(old)));
    errors
}

/// A user's `imagestreams/status` write (upstream `ValidateImageStreamStatusUpdateWithWhitelister`,
/// semantics 2.4): every pull spec in the new history that the old history lacks must parse and
/// be allowed by `allowedRegistriesForImport` (an insecure stream or tag allows either port);
/// pull specs already there may stay.
pub fn validate_image_stream_status_update(
    new: &ImageStream,
    old: &ImageStream,
    ctx: &ValidationContext,
) -> Vec<FieldError> {
    let known: HashSet<&str> = old
        .status
        .iter()
        .flat_map(|s| &s.tags)
        .flat_map(|t| &t.items)
        .map(|e| e.docker_image_reference.as_str())
        .collect();
    let insecure_stream = is_insecure(&new.metadata);
    let mut errors = Vec::new();
    for history in new.status.iter().flat_map(|s| &s.tags) {
        let insecure = insecure_stream
            || new
                .spec
                .tag(&history.tag)
                .is_some_and(|t| t.import_policy.insecure);
        for (index, event) in history.items.iter().enumerate() {
            let pull_spec = event.docker_image_reference.as_str();
            if known.contains(pull_spec) {
                continue;
            }
            let field = format!(
                "status.tags[{}].items[{index}].dockerImageReference",
                history.tag
            );
            match DockerImageReference::parse(pull_spec) {
                Err(err) => errors.push(FieldError::invalid(field, pull_spec, err.to_string())),
                Ok(reference) => {
                    let Some(allowed) = ctx.allowed_registries else {
                        continue;
                    };
                    let transport = if insecure {
                        Transport::Any
                    } else {
                        Transport::Secure
                    };
                    if let Err(not_allowed) = allowed.admit(&reference.registry, transport) {
                        errors.push(FieldError::forbidden(field, not_allowed.to_string()));
                    }
                }
            }
        }
    }
    errors
}

/// Distinct (namespace, stream) pairs referenced by new or changed spec tags whose `from` is an
/// ImageStreamTag or ImageStreamImage in another namespace (semantics 3.6), sorted. Tags whose
/// `from.name` is malformed are left out: validation reports them.
pub fn cross_namespace_references(
    new: &ImageStream,
    old: Option<&ImageStream>,
) -> Vec<CrossNamespaceReference> {
    let namespace = new.metadata.namespace.as_deref().unwrap_or_default();
    let stream_name = new.metadata.name.as_deref().unwrap_or_default();
    let mut by_stream: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for tag in new_or_changed_tags(new, old) {
        let Some(from) = &tag.from else { continue };
        if !is_cross_namespace(&from.namespace, namespace) {
            continue;
        }
        if let Some((source, _)) = split_from_reference(&from.kind, &from.name, stream_name) {
            by_stream
                .entry((from.namespace.clone(), source.to_string()))
                .or_default()
                .insert(tag.name.clone());
        }
    }
    by_stream
        .into_iter()
        .map(|((namespace, stream), tags)| CrossNamespaceReference {
            namespace,
            stream,
            tags: tags.into_iter().collect(),
        })
        .collect()
}

/// The errors for a cross-namespace reference the requesting user may not read: Forbidden on
/// `spec.tags[<tag>].from` of every tag using it, with the detail `<ns>/<stream>: <reason>`.
/// For upstream's exact text pass [`subject_access_review_denial`] of the review's status.
pub fn forbidden_reference_errors(
    reference: &CrossNamespaceReference,
    reason: &str,
) -> Vec<FieldError> {
    let detail = format!("{}/{}: {reason}", reference.namespace, reference.stream);
    reference
        .tags
        .iter()
        .map(|tag| FieldError::forbidden(format!("{}.from", spec_tag_path(tag)), detail.clone()))
        .collect()
}

/// Upstream's rendering of a denied SubjectAccessReview: its `status.reason` and
/// `status.evaluationError`, each quoted.
pub fn subject_access_review_denial(reason: &str, evaluation_error: &str) -> String {
    format!("{reason:?} {evaluation_error:?}")
}

fn stream_errors(stream: &ImageStream, gate: &RegistryGate) -> Vec<FieldError> {
    let meta = &stream.metadata;
    let mut errors = object_meta_errors(meta, "metadata", true, image_stream_name_problems);
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    let name = meta.name.as_deref().unwrap_or_default();
    if namespace.len() + 1 + name.len() > NAME_TOTAL_LENGTH_MAX {
        errors.push(FieldError::invalid(
            "metadata.name",
            name,
            format!("'namespace/name' cannot be longer than {NAME_TOTAL_LENGTH_MAX} characters"),
        ));
    }
    let insecure_stream = is_insecure(meta);

    let repository = &stream.spec.docker_image_repository;
    if !repository.is_empty() {
        let field = "spec.dockerImageRepository";
        match DockerImageReference::parse(repository) {
            Err(err) => errors.push(FieldError::invalid(field, repository, err.to_string())),
            Ok(reference) => {
                let mut valid = true;
                if !reference.tag.is_empty() {
                    errors.push(FieldError::invalid(
                        field,
                        repository,
                        "the repository name may not contain a tag",
                    ));
                    valid = false;
                }
                if !reference.id.is_empty() {
                    errors.push(FieldError::invalid(
                        field,
                        repository,
                        "the repository name may not contain an ID",
                    ));
                    valid = false;
                }
                if valid && let Err(not_allowed) = gate.admit(&reference, insecure_stream) {
                    errors.push(FieldError::forbidden(field, not_allowed.to_string()));
                }
            }
        }
    }

    for tag in &stream.spec.tags {
        errors.extend(tag_reference_errors(
            tag,
            &spec_tag_path(&tag.name),
            insecure_stream,
            gate,
        ));
    }

    if let Some(status) = &stream.status {
        for history in &status.tags {
            let insecure_tag = stream
                .spec
                .tag(&history.tag)
                .is_some_and(|t| t.import_policy.insecure);
            for (index, event) in history.items.iter().enumerate() {
                let field = format!(
                    "status.tags[{}].items[{index}].dockerImageReference",
                    history.tag
                );
                let pull_spec = &event.docker_image_reference;
                if pull_spec.is_empty() {
                    errors.push(FieldError::required(field, ""));
                    continue;
                }
                match DockerImageReference::parse(pull_spec) {
                    Err(err) => errors.push(FieldError::invalid(field, pull_spec, err.to_string())),
                    Ok(reference) => {
                        if let Err(not_allowed) =
                            gate.admit(&reference, insecure_tag || insecure_stream)
                        {
                            errors.push(FieldError::forbidden(field, not_allowed.to_string()));
                        }
                    }
                }
            }
        }
    }
    errors
}

/// Upstream `ValidateImageStreamTagReference`, with `path` the tag's own path.
fn tag_reference_errors(
    tag: &TagReference,
    path: &str,
    insecure_stream: bool,
    gate: &RegistryGate,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let Some(from) = &tag.from else {
        return errors;
    };
    if from.name.is_empty() {
        errors.push(FieldError::required(format!("{path}.from.name"), ""));
    }
    match from.kind.as_str() {
        KIND_DOCKER_IMAGE => match DockerImageReference::parse(&from.name) {
            Err(err) if !from.name.is_empty() => errors.push(FieldError::invalid(
                format!("{path}.from.name"),
                &from.name,
                err.to_string(),
            )),
            // an empty name is checked as the default reference, as upstream
            parsed => {
                let reference = parsed.unwrap_or_default();
                let insecure = tag.import_policy.insecure || insecure_stream;
                if let Err(not_allowed) = gate.admit(&reference, insecure) {
                    errors.push(FieldError::forbidden(
                        format!("{path}.from.name"),
                        not_allowed.to_string(),
                    ));
                }
            }
        },
        KIND_IMAGE_STREAM_TAG | KIND_IMAGE_STREAM_IMAGE => {
            if tag.import_policy.scheduled {
                errors.push(FieldError::invalid_rendered(
                    format!("{path}.importPolicy.scheduled"),
                    "true",
                    ONLY_DOCKER_SCHEDULED,
                ));
            }
        }
        _ => errors.push(FieldError::required(
            format!("{path}.from.kind"),
            FROM_KIND_VALUES,
        )),
    }
    errors
}

/// The `from.name` form check of upstream's tag verification (cross-namespace references) and
/// `tagsChanged` (every other new or changed reference that is not a named DockerImage).
fn from_name_form_errors(new: &ImageStream, old: Option<&ImageStream>) -> Vec<FieldError> {
    let namespace = new.metadata.namespace.as_deref().unwrap_or_default();
    let stream_name = new.metadata.name.as_deref().unwrap_or_default();
    new_or_changed_tags(new, old)
        .filter_map(|tag| {
            let from = tag.from.as_ref()?;
            let named_docker_image = from.kind == KIND_DOCKER_IMAGE && !from.name.is_empty();
            let checked = is_cross_namespace(&from.namespace, namespace) || !named_docker_image;
            (checked && split_from_reference(&from.kind, &from.name, stream_name).is_none()).then(
                || {
                    FieldError::invalid(
                        format!("{}.from.name", spec_tag_path(&tag.name)),
                        &from.name,
                        FROM_NAME_FORM,
                    )
                },
            )
        })
        .collect()
}

/// Spec tags with a `from` that are new, or changed as upstream's `tagRefChanged` counts it.
fn new_or_changed_tags<'a>(
    new: &'a ImageStream,
    old: Option<&'a ImageStream>,
) -> impl Iterator<Item = &'a TagReference> {
    let namespace = new.metadata.namespace.as_deref().unwrap_or_default();
    new.spec.tags.iter().filter(move |tag| {
        tag.from.is_some()
            && match old.and_then(|o| o.spec.tag(&tag.name)) {
                Some(previous) => tag_ref_changed(previous, tag, namespace),
                None => true,
            }
    })
}

fn is_cross_namespace(from_namespace: &str, stream_namespace: &str) -> bool {
    !from_namespace.is_empty() && from_namespace != stream_namespace
}

/// Upstream `parseFromReference`: `(stream, tag or id)` of an ImageStreamTag (`<tag>`,
/// `<stream>:<tag>`) or ImageStreamImage (`<id>`, `<stream>@<id>`) reference, a name without
/// separator naming `stream_name` itself; `None` for any other kind, an empty name, more than
/// one separator or an empty side. The controller resolves exactly what this accepts, so a
/// reference is either refused when written or resolved (upstream fails a stream named `""`
/// when it looks it up, in the same write).
pub fn split_from_reference<'a>(
    kind: &str,
    name: &'a str,
    stream_name: &'a str,
) -> Option<(&'a str, &'a str)> {
    let separator = match kind {
        KIND_IMAGE_STREAM_TAG => ':',
        KIND_IMAGE_STREAM_IMAGE => '@',
        _ => return None,
    };
    match name.split_once(separator) {
        None if name.is_empty() => None,
        None => Some((stream_name, name)),
        Some((_, rest)) if rest.contains(separator) => None,
        Some(("", _) | (_, "")) => None,
        Some(parts) => Some(parts),
    }
}

fn spec_tag_path(tag: &str) -> String {
    format!("spec.tags[{tag}]")
}

fn is_insecure(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(INSECURE_REPOSITORY_ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// The import whitelist of one request, plus the repositories the old object already
/// referenced (upstream `WhitelistRepository`): those stay allowed whatever their registry.
struct RegistryGate<'a> {
    allowed: Option<&'a AllowedRegistries>,
    known_repositories: HashSet<String>,
}

impl<'a> RegistryGate<'a> {
    fn new(ctx: &ValidationContext<'a>, old: Option<&ImageStream>) -> Self {
        let mut known_repositories = HashSet::new();
        if let (Some(_), Some(old)) = (ctx.allowed_registries, old) {
            let spec_refs = std::iter::once(old.spec.docker_image_repository.as_str())
                .filter(|r| !r.is_empty())
                .chain(old.spec.tags.iter().filter_map(|t| {
                    t.from
                        .as_ref()
                        .filter(|f| f.kind == KIND_DOCKER_IMAGE)
                        .map(|f| f.name.as_str())
                }));
            let status_refs = old.status.iter().flat_map(|s| {
                s.tags
                    .iter()
                    .flat_map(|t| t.items.iter().map(|e| e.docker_image_reference.as_str()))
            });
            // unparseable old references are skipped: users must be able to remove them
            known_repositories.extend(
                spec_refs
                    .chain(status_refs)
                    .filter_map(|r| DockerImageReference::parse(r).ok())
                    .map(|r| canonical_repository(&r)),
            );
        }
        RegistryGate {
            allowed: ctx.allowed_registries,
            known_repositories,
        }
    }

    /// Upstream `AdmitDockerImageReference` with the transport of `getWhitelistTransportForFlag`
    /// (an insecure reference may use either port).
    fn admit(&self, reference: &DockerImageReference, insecure: bool) -> Result<(), NotAllowed> {
        let Some(allowed) = self.allowed else {
            return Ok(());
        };
        if self
            .known_repositories
            .contains(&canonical_repository(reference))
        {
            return Ok(());
        }
        let transport = if insecure {
            Transport::Any
        } else {
            Transport::Secure
        };
        allowed.admit(&reference.registry, transport)
    }
}

fn canonical_repository(reference: &DockerImageReference) -> String {
    reference.docker_client_defaults().as_repository().exact()
}

/// Upstream `ValidateRegistryAllowedForImport` (case 43): Forbidden on `field` unless imports
/// from `host:port` are allowed. For ImageStreamImport requests by users who may not create
/// Images or ImageStreamMappings.
pub fn validate_registry_allowed_for_import(
    allowed: &AllowedRegistries,
    field: &str,
    host: &str,
    port: &str,
) -> Vec<FieldError> {
    let host_port = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    match allowed.admit(&host_port, Transport::Secure) {
        Ok(()) => Vec::new(),
        Err(not_allowed) => vec![FieldError::forbidden(
            field,
            not_allowed.import_forbidden_message(),
        )],
    }
}

// ---------------------------------------------------------------------------------------------
// ImageStreamTag and ImageTag
// ---------------------------------------------------------------------------------------------

/// ImageStreamTag create (upstream `ValidateImageStreamTagWithWhitelister`).
pub fn validate_image_stream_tag(new: &ImageStreamTag, ctx: &ValidationContext) -> Vec<FieldError> {
    let mut errors = object_meta_errors(&new.metadata, "metadata", true, path_segment_problems);
    errors.extend(stream_tag_errors(new, &RegistryGate::new(ctx, None)));
    errors
}

/// ImageStreamTag update without registry checks (upstream `ValidateImageStreamTagUpdate`);
/// see [`validate_image_stream_tag_update_with_context`].
pub fn validate_image_stream_tag_update(
    new: &ImageStreamTag,
    old: &ImageStreamTag,
) -> Vec<FieldError> {
    validate_image_stream_tag_update_with_context(new, old, &ValidationContext::default())
}

/// ImageStreamTag update (upstream `ValidateImageStreamTagUpdateWithWhitelister`): the tag is
/// valid, its registry allowed unless the old tag already used that repository, and nothing
/// but `metadata.annotations` and `tag` changed (`lookupPolicy` and `generation` are ignored).
pub fn validate_image_stream_tag_update_with_context(
    new: &ImageStreamTag,
    old: &ImageStreamTag,
    ctx: &ValidationContext,
) -> Vec<FieldError> {
    let gate = RegistryGate::for_tag(ctx, old.spec.tag.as_ref());
    let mut errors = stream_tag_errors(new, &gate);
    let unchanged = new.metadata.labels == old.metadata.labels
        && new.spec.image == old.spec.image
        && new.spec.conditions == old.spec.conditions;
    if !unchanged {
        errors.push(FieldError::invalid(
            "metadata",
            "",
            "may not update fields other than metadata.annotations",
        ));
    }
    errors
}

fn stream_tag_errors(ist: &ImageStreamTag, gate: &RegistryGate) -> Vec<FieldError> {
    let Some(tag) = &ist.spec.tag else {
        return Vec::new();
    };
    let mut errors = tag_reference_errors(tag, "tag", is_insecure(&ist.metadata), gate);
    if let Some(tag_annotations) = &tag.annotations {
        let meta_annotations = ist.metadata.annotations.clone().unwrap_or_default();
        if *tag_annotations != meta_annotations {
            errors.push(FieldError::invalid(
                "tag.annotations",
                "<map>",
                "tag annotations must not be provided or must be equal to the object meta annotations",
            ));
        }
    }
    errors
}

/// ImageTag create (upstream `ValidateImageTagWithWhitelister`).
pub fn validate_image_tag(new: &ImageTag, ctx: &ValidationContext) -> Vec<FieldError> {
    let mut errors = object_meta_errors(&new.metadata, "metadata", true, path_segment_problems);
    match &new.spec.spec {
        None => errors.push(FieldError::required(
            "spec",
            "spec is a required field during creation",
        )),
        Some(spec) => errors.extend(image_tag_spec_errors(
            new,
            spec,
            &RegistryGate::new(ctx, None),
        )),
    }
    errors
}

/// ImageTag update without registry checks (upstream `ValidateImageTagUpdate`); see
/// [`validate_image_tag_update_with_context`].
pub fn validate_image_tag_update(new: &ImageTag, old: &ImageTag) -> Vec<FieldError> {
    validate_image_tag_update_with_context(new, old, &ValidationContext::default())
}

/// ImageTag update (upstream `ValidateImageTagUpdateWithWhitelister`): `spec` is valid and
/// names the object's tag, its registry is allowed unless the old spec already used that
/// repository, and metadata (labels, annotations) and status are unchanged. `spec: null` is
/// valid (it removes the spec tag).
pub fn validate_image_tag_update_with_context(
    new: &ImageTag,
    old: &ImageTag,
    ctx: &ValidationContext,
) -> Vec<FieldError> {
    let gate = RegistryGate::for_tag(ctx, old.spec.spec.as_ref());
    let mut errors = match &new.spec.spec {
        Some(spec) => image_tag_spec_errors(new, spec, &gate),
        None => Vec::new(),
    };
    let metadata_unchanged = new.metadata.labels == old.metadata.labels
        && new.metadata.annotations == old.metadata.annotations;
    if !metadata_unchanged {
        errors.push(FieldError::invalid(
            "metadata",
            "",
            "may not update fields other than spec",
        ));
    }
    if new.status != old.status {
        errors.push(FieldError::invalid(
            "status",
            "",
            "may not update fields other than spec",
        ));
    }
    errors
}

fn image_tag_spec_errors(
    itag: &ImageTag,
    spec: &TagReference,
    gate: &RegistryGate,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if view_tag_name(&itag.metadata).as_deref() != Some(spec.name.as_str()) {
        errors.push(FieldError::invalid(
            "spec.name",
            &spec.name,
            "must match image tag name",
        ));
    }
    errors.extend(tag_reference_errors(
        spec,
        "spec",
        is_insecure(&itag.metadata),
        gate,
    ));
    errors
}

/// The tag an ImageStreamTag or ImageTag object stands for: from its plain-form name, else from
/// its `image.openshift.io/name` (`<stream>:<tag>`) or `image.openshift.io/tag` annotation.
fn view_tag_name(meta: &ObjectMeta) -> Option<String> {
    if let Some((_, tag)) = meta.name.as_deref().and_then(names::parse_stream_tag) {
        return Some(tag.to_string());
    }
    let annotation = |key: &str| meta.annotations.as_ref().and_then(|a| a.get(key));
    if let Some(openshift_name) = annotation(names::ANNOTATION_OPENSHIFT_NAME) {
        return parse_image_stream_tag_name(openshift_name)
            .ok()
            .map(|(_, tag)| tag.to_string());
    }
    annotation(names::ANNOTATION_TAG).cloned()
}

impl<'a> RegistryGate<'a> {
    /// The gate of a tag view's update: the old tag's DockerImage repository stays allowed.
    fn for_tag(ctx: &ValidationContext<'a>, old: Option<&TagReference>) -> Self {
        let mut gate = RegistryGate::new(ctx, None);
        if ctx.allowed_registries.is_some()
            && let Some(from) = old.and_then(|t| t.from.as_ref())
            && from.kind == KIND_DOCKER_IMAGE
            && let Ok(reference) = DockerImageReference::parse(&from.name)
        {
            gate.known_repositories
                .insert(canonical_repository(&reference));
        }
        gate
    }
}

// ---------------------------------------------------------------------------------------------
// ImageStreamImport
// ---------------------------------------------------------------------------------------------

/// ImageStreamImport create (upstream `ValidateImageStreamImport`). The registry check for
/// users who may not create Images is [`validate_registry_allowed_for_import`].
pub fn validate_image_stream_import(isi: &ImageStreamImport) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (index, image) in isi.spec.images.iter().enumerate() {
        let path = format!("spec.images[{index}]");
        let from = &image.from;
        if from.kind != KIND_DOCKER_IMAGE {
            errors.push(FieldError::invalid(
                format!("{path}.from.kind"),
                &from.kind,
                ONLY_DOCKER_IMAGE,
            ));
            continue;
        }
        if image.to.as_ref().is_some_and(|to| to.name.is_empty()) {
            errors.push(FieldError::invalid(
                format!("{path}.to.name"),
                "",
                "the name of the target tag must be specified",
            ));
        }
        if from.name.is_empty() {
            errors.push(FieldError::required(format!("{path}.from.name"), ""));
        // `*` is what legacy clients send to look streams up; upstream lets it through
        } else if from.name != "*"
            && let Err(err) = DockerImageReference::parse(&from.name)
        {
            errors.push(FieldError::invalid(
                format!("{path}.from.name"),
                &from.name,
                err.to_string(),
            ));
        }
    }

    if let Some(repository) = &isi.spec.repository {
        let from = &repository.from;
        if from.kind != KIND_DOCKER_IMAGE {
            errors.push(FieldError::invalid(
                "spec.repository.from.kind",
                &from.kind,
                ONLY_DOCKER_IMAGE,
            ));
        } else if from.name.is_empty() {
            errors.push(FieldError::required(
                "spec.repository.from.name",
                "container image references require a name",
            ));
        } else {
            match DockerImageReference::parse(&from.name) {
                Err(err) => errors.push(FieldError::invalid(
                    "spec.repository.from.name",
                    &from.name,
                    err.to_string(),
                )),
                Ok(reference) if !reference.tag.is_empty() || !reference.id.is_empty() => errors
                    .push(FieldError::invalid(
                        "spec.repository.from.name",
                        &from.name,
                        "you must specify an image repository, not a tag or ID",
                    )),
                Ok(_) => {}
            }
        }
    }
    if isi.spec.images.is_empty() && isi.spec.repository.is_none() {
        errors.push(FieldError::new(
            FieldErrorKind::Invalid,
            "spec.images",
            "you must specify at least one image or a repository import",
            None,
        ));
    }
    errors.extend(object_meta_errors(
        &isi.metadata,
        "metadata",
        true,
        image_stream_name_problems,
    ));
    errors
}

// ---------------------------------------------------------------------------------------------
// Image, ImageSignature, ImageStreamMapping
// ---------------------------------------------------------------------------------------------

/// Image create and update (upstream `ValidateImage`).
pub fn validate_image(image: &Image) -> Vec<FieldError> {
    image_errors(&image.metadata, &image.spec, "", true)
}

/// ImageSignature create (upstream `ValidateImageSignature`). Type and content may not change
/// on update; the API serves no signature updates, so there is no update rule.
pub fn validate_image_signature(sig: &ImageSignature) -> Vec<FieldError> {
    signature_errors(sig, "")
}

/// ImageStreamMapping create (upstream `ValidateImageStreamMapping`).
pub fn validate_image_stream_mapping(m: &ImageStreamMapping) -> Vec<FieldError> {
    let mut errors = object_meta_errors(&m.metadata, "metadata", true, path_segment_problems);
    if m.metadata.name.as_deref().unwrap_or_default().is_empty() {
        // v1 has no way to name the stream by repository, so both are missing
        errors.push(FieldError::required("name", ""));
        errors.push(FieldError::required("dockerImageRepository", ""));
    }
    if m.spec.tag.is_empty() {
        errors.push(FieldError::required("tag", ""));
    }
    errors.extend(image_errors(
        &m.spec.image.metadata,
        &m.spec.image.spec,
        "image.",
        false,
    ));
    errors
}

/// Upstream `validateImage` under `prefix` (`""` or `"image."`); `reference_required` is false
/// for a mapping's image, whose reference the operator defaults.
fn image_errors(
    meta: &ObjectMeta,
    image: &ImageFields,
    prefix: &str,
    reference_required: bool,
) -> Vec<FieldError> {
    let mut errors = object_meta_errors(
        meta,
        &format!("{prefix}metadata"),
        false,
        path_segment_problems,
    );
    let field = format!("{prefix}dockerImageReference");
    let reference = &image.docker_image_reference;
    if reference.is_empty() {
        if reference_required {
            errors.push(FieldError::required(field, ""));
        }
    } else if let Err(err) = DockerImageReference::parse(reference) {
        errors.push(FieldError::invalid(field, reference, err.to_string()));
    }
    for (index, signature) in image.signatures.iter().enumerate() {
        errors.extend(signature_errors(
            signature,
            &format!("{prefix}signatures[{index}]."),
        ));
    }
    if !image.docker_image_manifests.is_empty() {
        for (index, manifest) in image.docker_image_manifests.iter().enumerate() {
            errors.extend(manifest_errors(
                manifest,
                &format!("{prefix}dockerImageManifests[{index}]"),
            ));
        }
        if !image.docker_image_layers.is_empty() {
            let layers = serde_json::to_string(&image.docker_image_layers).unwrap_or_default();
            errors.push(FieldError::invalid_rendered(
                format!("{prefix}dockerImageLayers"),
                layers,
                "dockerImageLayers should not be set when dockerImageManifests is set",
            ));
        }
    }
    errors
}

fn manifest_errors(manifest: &ImageManifest, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if !contains_image_digest(&manifest.digest) {
        errors.push(FieldError::invalid(
            format!("{path}.digest"),
            &manifest.digest,
            "digest does not conform with OCI image specification",
        ));
    }
    if !is_media_type(&manifest.media_type) {
        errors.push(FieldError::invalid(
            format!("{path}.mediaType"),
            &manifest.media_type,
            "media type does not conform to RFC6838",
        ));
    }
    if manifest.architecture.is_empty() {
        errors.push(FieldError::required(format!("{path}.architecture"), ""));
    }
    if manifest.os.is_empty() {
        errors.push(FieldError::required(format!("{path}.os"), ""));
    }
    if manifest.manifest_size < 0 {
        errors.push(FieldError::invalid_rendered(
            format!("{path}.manifestSize"),
            manifest.manifest_size.to_string(),
            "manifest size cannot be negative",
        ));
    }
    errors
}

/// Whether `s` contains a digest as upstream's unanchored `imageDigestRegexp` finds one:
/// `alg(sep alg)*:hex{32,}` with `alg` = `[A-Za-z][A-Za-z0-9]*`. A search needs no more than a
/// colon followed by 32 hex digits and preceded by an alphanumeric run with a letter in it
/// (the last `alg`; the `(sep alg)*` part may be empty).
fn contains_image_digest(s: &str) -> bool {
    s.match_indices(':').any(|(colon, _)| {
        let hex_run = s[colon + 1..]
            .bytes()
            .take_while(u8::is_ascii_hexdigit)
            .count();
        let mut algorithm_run = s[..colon]
            .bytes()
            .rev()
            .take_while(u8::is_ascii_alphanumeric);
        hex_run >= 32 && algorithm_run.any(|b| b.is_ascii_alphabetic())
    })
}

/// Upstream's RFC 6838 pattern ([`crate::api::image::IMAGE_MEDIA_TYPE_PATTERN`]): optional spaces,
/// `type/subtype`, optional spaces; type `[A-Za-z0-9][A-Za-z0-9!#$&^_-]{0,126}`, subtype the
/// same with `.` and `+` allowed too.
fn is_media_type(s: &str) -> bool {
    let trimmed = s.trim_matches(' ');
    let Some((kind, subtype)) = trimmed.split_once('/') else {
        return false;
    };
    let part = |p: &str, extra: &[u8]| {
        let bytes = p.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= 127
            && bytes[0].is_ascii_alphanumeric()
            && bytes[1..]
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_-".contains(b) || extra.contains(b))
    };
    part(kind, b"") && part(subtype, b".+")
}

/// Upstream `validateImageSignature` under `prefix` (`""` or `"signatures[i]."`).
fn signature_errors(sig: &ImageSignature, prefix: &str) -> Vec<FieldError> {
    let meta = &sig.metadata;
    let fields = &sig.spec;
    let mut errors = object_meta_errors(
        meta,
        &format!("{prefix}metadata"),
        false,
        path_segment_problems,
    );
    if meta.labels.as_ref().is_some_and(|l| !l.is_empty()) {
        errors.push(FieldError::forbidden(
            format!("{prefix}metadata.labels"),
            "signature labels cannot be set",
        ));
    }
    let user_annotations =
        meta.annotations.iter().flatten().any(|(key, _)| {
            key != names::ANNOTATION_OPENSHIFT_NAME && key != names::ANNOTATION_IMAGE
        });
    if user_annotations {
        errors.push(FieldError::forbidden(
            format!("{prefix}metadata.annotations"),
            "signature annotations cannot be set",
        ));
    }
    if !is_signature_name(meta) {
        errors.push(FieldError::invalid(
            format!("{prefix}metadata.name"),
            meta.name.as_deref().unwrap_or_default(),
            "name must be of format <imageName>@<signatureName>",
        ));
    }
    if fields.type_.is_empty() {
        errors.push(FieldError::required(format!("{prefix}type"), ""));
    }
    if fields.content.0.is_empty() {
        errors.push(FieldError::required(format!("{prefix}content"), ""));
    }

    let trusted = newest_condition(&fields.conditions, SIGNATURE_TRUSTED);
    let for_image = newest_condition(&fields.conditions, SIGNATURE_FOR_IMAGE);
    let missing = match (trusted, for_image) {
        (Some(_), None) => Some(SIGNATURE_FOR_IMAGE),
        (None, Some(_)) => Some(SIGNATURE_TRUSTED),
        _ => None,
    };
    if let Some(missing) = missing {
        errors.push(FieldError::invalid_rendered(
            format!("{prefix}conditions"),
            serde_json::to_string(&fields.conditions).unwrap_or_default(),
            format!("missing {missing:?} condition type"),
        ));
    }
    if trusted.is_none_or(|c| c.status == "Unknown") {
        let unset = |field: &str, value: Option<String>| {
            value.map(|v| {
                FieldError::invalid_rendered(format!("{prefix}{field}"), v, UNKNOWN_SIGNATURE_STATE)
            })
        };
        errors.extend(
            [
                unset(
                    "imageIdentity",
                    (!fields.image_identity.is_empty())
                        .then(|| format!("{:?}", fields.image_identity)),
                ),
                unset(
                    "signedClaims",
                    (!fields.signed_claims.is_empty())
                        .then(|| serde_json::to_string(&fields.signed_claims).unwrap_or_default()),
                ),
                unset(
                    "issuedBy",
                    fields
                        .issued_by
                        .as_ref()
                        .map(|v| serde_json::to_string(v).unwrap_or_default()),
                ),
                unset(
                    "issuedTo",
                    fields
                        .issued_to
                        .as_ref()
                        .map(|v| serde_json::to_string(v).unwrap_or_default()),
                ),
            ]
            .into_iter()
            .flatten(),
        );
    }
    errors
}

/// The condition of `type_` probed last; on equal probe times the later one in the list.
fn newest_condition<'a>(
    conditions: &'a [SignatureCondition],
    type_: &str,
) -> Option<&'a SignatureCondition> {
    conditions
        .iter()
        .filter(|c| c.type_ == type_)
        .reduce(|newest, c| {
            let probed = |c: &SignatureCondition| c.last_probe_time.as_ref().map(|t| t.0);
            if probed(c) >= probed(newest) {
                c
            } else {
                newest
            }
        })
}

/// Whether a signature object names `<imageName>@<signatureName>`: its name itself (embedded
/// signatures may use it), the plain form `<algo>.<hex>.<signature>` of [`names`], or the
/// `image.openshift.io/name` annotation.
fn is_signature_name(meta: &ObjectMeta) -> bool {
    let has_form = |name: &str| {
        name.split_once('@')
            .is_some_and(|(image, sig)| !image.is_empty() && !sig.is_empty() && !sig.contains('@'))
    };
    let name = meta.name.as_deref().unwrap_or_default();
    if has_form(name) || is_plain_signature_object_name(name) {
        return true;
    }
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(names::ANNOTATION_OPENSHIFT_NAME))
        .is_some_and(|n| has_form(n))
}

fn is_plain_signature_object_name(name: &str) -> bool {
    let mut parts = name.splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(algo), Some(hex), Some(signature)) if !signature.is_empty() => {
            names::image_signature(&format!("{algo}:{hex}"), signature) == name
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Names and namespaces (the parts of upstream `ValidateObjectMeta` a CRD does not get for free)
// ---------------------------------------------------------------------------------------------

/// Name and namespace errors under `path` (`metadata`, `image.metadata`, …). Cluster-scoped
/// kinds (`requires_namespace` false) are not checked for a namespace: the apiserver drops it.
fn object_meta_errors(
    meta: &ObjectMeta,
    path: &str,
    requires_namespace: bool,
    name_problems: fn(&str) -> Vec<String>,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if requires_namespace {
        let namespace = meta.namespace.as_deref().unwrap_or_default();
        if namespace.is_empty() {
            errors.push(FieldError::required(format!("{path}.namespace"), ""));
        } else {
            errors.extend(
                dns_label_problems(namespace)
                    .into_iter()
                    .map(|p| FieldError::invalid(format!("{path}.namespace"), namespace, p)),
            );
        }
    }
    let name = meta.name.as_deref().unwrap_or_default();
    if name.is_empty() {
        errors.push(FieldError::required(format!("{path}.name"), NAME_REQUIRED));
    } else {
        errors.extend(
            name_problems(name)
                .into_iter()
                .map(|p| FieldError::invalid(format!("{path}.name"), name, p)),
        );
    }
    errors
}

/// Kubernetes `IsValidPathSegmentName`.
fn path_segment_problems(name: &str) -> Vec<String> {
    if name == "." || name == ".." {
        return vec![format!("may not be '{name}'")];
    }
    ["/", "%"]
        .iter()
        .filter(|c| name.contains(**c))
        .map(|c| format!("may not contain '{c}'"))
        .collect()
}

/// Upstream `ValidateImageStreamName`: a path segment that fully matches
/// `[a-z0-9]+(?:[._-][a-z0-9]+)*`.
fn image_stream_name_problems(name: &str) -> Vec<String> {
    let problems = path_segment_problems(name);
    if !problems.is_empty() {
        return problems;
    }
    let component = |w: &str| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if name.split(['.', '_', '-']).all(component) {
        Vec::new()
    } else {
        vec![r#"must match "[a-z0-9]+(?:[._-][a-z0-9]+)*""#.to_string()]
    }
}

/// Kubernetes `IsDNS1123Label`.
fn dns_label_problems(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > 63 {
        problems.push("must be no more than 63 characters".to_string());
    }
    let bytes = value.as_bytes();
    let valid = !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-';
    if !valid {
        problems.push(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
             and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', \
             regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
                .to_string(),
        );
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::image_stream::{
        ImageStreamSpec, ImageStreamStatus, NamedTagEventList, ObjectReference, TagEvent,
        TagImportPolicy, TagReferencePolicy, TagReferencePolicyType,
    };
    use crate::api::{
        ImageImportSpec, ImageLayer, ImageSignatureFields, ImageStreamImportSpec,
        ImageStreamMappingFields, ImageStreamTagFields, ImageTagFields, LocalObjectReference,
        RepositoryImportSpec, SignatureIssuer, SignatureSubject,
    };
    use crate::config::RegistryLocation;
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const DIGEST: &str = "sha256:82bc737c1fede1c1534446cd5fdd0737c4e0f3650454c9e1905e2d70af95778e";

    fn meta(namespace: &str, name: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: (!namespace.is_empty()).then(|| namespace.to_string()),
            name: (!name.is_empty()).then(|| name.to_string()),
            ..ObjectMeta::default()
        }
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn stream(namespace: &str, name: &str) -> ImageStream {
        ImageStream {
            metadata: meta(namespace, name),
            spec: ImageStreamSpec::default(),
            status: None,
        }
    }

    fn from(kind: &str, name: &str, namespace: &str) -> Option<ObjectReference> {
        Some(ObjectReference {
            kind: kind.into(),
            name: name.into(),
            namespace: namespace.into(),
            ..ObjectReference::default()
        })
    }

    /// A spec tag as upstream's tests write them: Source reference policy.
    fn tag(name: &str, kind: &str, from_name: &str) -> TagReference {
        TagReference {
            name: name.into(),
            from: from(kind, from_name, ""),
            reference_policy: TagReferencePolicy {
                type_: TagReferencePolicyType::Source,
            },
            ..TagReference::default()
        }
    }

    fn cross_tag(name: &str, namespace: &str, from_name: &str) -> TagReference {
        TagReference {
            from: from(KIND_IMAGE_STREAM_TAG, from_name, namespace),
            ..tag(name, KIND_IMAGE_STREAM_TAG, from_name)
        }
    }

    fn scheduled(mut t: TagReference) -> TagReference {
        t.import_policy.scheduled = true;
        t
    }

    fn insecure(mut t: TagReference) -> TagReference {
        t.import_policy.insecure = true;
        t
    }

    fn history(tag: &str, pull_specs: &[&str]) -> NamedTagEventList {
        NamedTagEventList {
            tag: tag.into(),
            items: pull_specs
                .iter()
                .map(|p| TagEvent {
                    created: Time(jiff::Timestamp::UNIX_EPOCH),
                    docker_image_reference: p.to_string(),
                    image: String::new(),
                    generation: 0,
                })
                .collect(),
            conditions: Vec::new(),
        }
    }

    fn with(
        mut s: ImageStream,
        repository: &str,
        tags: Vec<TagReference>,
        status: Vec<NamedTagEventList>,
    ) -> ImageStream {
        s.spec.docker_image_repository = repository.into();
        s.spec.tags = tags;
        if !status.is_empty() {
            s.status = Some(ImageStreamStatus {
                tags: status,
                ..ImageStreamStatus::default()
            });
        }
        s
    }

    fn allowed(domains: &[&str]) -> AllowedRegistries {
        let locations: Vec<_> = domains
            .iter()
            .map(|d| RegistryLocation {
                domain_name: d.to_string(),
                insecure: None,
            })
            .collect();
        AllowedRegistries::new(&locations, None).unwrap()
    }

    fn all_allowed() -> ValidationContext<'static> {
        ValidationContext::default()
    }

    fn validate(s: &ImageStream) -> Vec<FieldError> {
        validate_image_stream(s, &all_allowed())
    }

    /// Kinds and fields only, for upstream tests that check nothing else.
    fn kinds_and_fields(errors: &[FieldError]) -> Vec<(FieldErrorKind, &str)> {
        errors.iter().map(|e| (e.kind, e.field.as_str())).collect()
    }

    // --- FieldError -----------------------------------------------------------------------

    #[test]
    fn field_errors_print_as_kubernetes_does() {
        let invalid = FieldError::invalid(
            "spec.tags[latest].from.name",
            "a:b:c",
            "must be of the form <tag>, <repo>:<tag>, <id>, or <repo>@<id>",
        );
        assert_eq!(
            invalid.to_string(),
            r#"spec.tags[latest].from.name: Invalid value: "a:b:c": must be of the form <tag>, <repo>:<tag>, <id>, or <repo>@<id>"#
        );
        assert_eq!(invalid.kind.reason(), "FieldValueInvalid");
        assert_eq!(
            FieldError::required("tag", "").to_string(),
            "tag: Required value"
        );
        assert_eq!(
            FieldError::forbidden("spec.tags[x].from", "ns/s: \"\" \"\"").message(),
            r#"Forbidden: ns/s: "" """#
        );
        let no_value = FieldError::new(FieldErrorKind::Invalid, "spec.images", "why", None);
        assert_eq!(no_value.message(), r#"Invalid value: "null": why"#);
        assert_eq!(
            FieldError::invalid_rendered("a.scheduled", "true", "no").message(),
            "Invalid value: true: no"
        );
        assert_eq!(FieldErrorKind::Required.reason(), "FieldValueRequired");
        assert_eq!(FieldErrorKind::Forbidden.reason(), "FieldValueForbidden");
        assert_eq!(FieldErrorKind::InternalError.reason(), "InternalError");
    }

    // --- case 25-31: TestValidateImageStream ------------------------------------------------

    // Upstream TestValidateImageStream "missing name".
    #[test]
    fn test_validate_image_stream_missing_name() {
        assert_eq!(
            validate(&stream("foo", "")),
            [FieldError::required(
                "metadata.name",
                "name or generateName is required"
            )]
        );
    }

    // Upstream TestValidateImageStream "no slash in Name".
    #[test]
    fn test_validate_image_stream_no_slash_in_name() {
        assert_eq!(
            validate(&stream("foo", "foo/bar")),
            [FieldError::invalid(
                "metadata.name",
                "foo/bar",
                "may not contain '/'"
            )]
        );
    }

    // Upstream TestValidateImageStream "no percent in Name".
    #[test]
    fn test_validate_image_stream_no_percent_in_name() {
        assert_eq!(
            validate(&stream("foo", "foo%%bar")),
            [FieldError::invalid(
                "metadata.name",
                "foo%%bar",
                "may not contain '%'"
            )]
        );
    }

    // Upstream TestValidateImageStream "other invalid name" (a space).
    #[test]
    fn test_validate_image_stream_other_invalid_name() {
        let errors = validate(&stream("foo", "foo bar"));
        assert_eq!(
            errors,
            [FieldError::invalid(
                "metadata.name",
                "foo bar",
                r#"must match "[a-z0-9]+(?:[._-][a-z0-9]+)*""#
            )]
        );
        assert_eq!(
            errors[0].to_string(),
            r#"metadata.name: Invalid value: "foo bar": must match "[a-z0-9]+(?:[._-][a-z0-9]+)*""#
        );
        for bad in ["Foo", "a..b", "-a", "a-", "a__b"] {
            assert_eq!(validate(&stream("foo", bad)).len(), 1, "{bad}");
        }
    }

    // Upstream TestValidateImageStream "missing namespace".
    #[test]
    fn test_validate_image_stream_missing_namespace() {
        assert_eq!(
            validate(&stream("", "foo")),
            [FieldError::required("metadata.namespace", "")]
        );
    }

    // Upstream TestValidateImageStream "invalid namespace".
    #[test]
    fn test_validate_image_stream_invalid_namespace() {
        assert_eq!(
            validate(&stream("!$", "foo")),
            [FieldError::invalid(
                "metadata.namespace",
                "!$",
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            )]
        );
    }

    // Upstream TestValidateImageStream "shortest name components".
    #[test]
    fn test_validate_image_stream_shortest_name_components() {
        assert_eq!(validate(&stream("f", "g")), []);
    }

    // Upstream TestValidateImageStream "all possible characters used".
    #[test]
    fn test_validate_image_stream_all_possible_characters_used() {
        let s = stream(
            "abcdefghijklmnopqrstuvwxyz-1234567890",
            "abcdefghijklmnopqrstuvwxyz-1234567890.dot_underscore-dash",
        );
        assert_eq!(validate(&s), []);
    }

    // Upstream TestValidateImageStream "max name and namespace length met".
    #[test]
    fn test_validate_image_stream_max_name_and_namespace_length_met() {
        let s = stream(&"a".repeat(63), &"b".repeat(191));
        assert_eq!(validate(&s), []);
    }

    // Upstream TestValidateImageStream "max name and namespace length exceeded".
    #[test]
    fn test_validate_image_stream_max_name_and_namespace_length_exceeded() {
        let name = format!("x{}", "b".repeat(191));
        assert_eq!(
            validate(&stream(&"a".repeat(63), &name)),
            [FieldError::invalid(
                "metadata.name",
                &name,
                "'namespace/name' cannot be longer than 255 characters"
            )]
        );
    }

    // Upstream TestValidateImageStream "invalid dockerImageRepository".
    #[test]
    fn test_validate_image_stream_invalid_docker_image_repository() {
        let s = with(stream("namespace", "foo"), "a-|///bbb", vec![], vec![]);
        assert_eq!(
            validate(&s),
            [FieldError::invalid(
                "spec.dockerImageRepository",
                "a-|///bbb",
                "invalid reference format"
            )]
        );
    }

    // Upstream TestValidateImageStream "invalid dockerImageRepository with tag".
    #[test]
    fn test_validate_image_stream_invalid_docker_image_repository_with_tag() {
        let s = with(stream("namespace", "foo"), "a/b:tag", vec![], vec![]);
        assert_eq!(
            validate(&s),
            [FieldError::invalid(
                "spec.dockerImageRepository",
                "a/b:tag",
                "the repository name may not contain a tag"
            )]
        );
    }

    // Upstream TestValidateImageStream "invalid dockerImageRepository with ID".
    #[test]
    fn test_validate_image_stream_invalid_docker_image_repository_with_id() {
        let s = with(
            stream("namespace", "foo"),
            "a/b@sha256:something",
            vec![],
            vec![],
        );
        assert_eq!(
            validate(&s),
            [FieldError::invalid(
                "spec.dockerImageRepository",
                "a/b@sha256:something",
                "invalid reference format"
            )]
        );
        // a well-formed ID gets upstream's own message
        let s = with(
            stream("namespace", "foo"),
            &format!("a/b@{DIGEST}"),
            vec![],
            vec![],
        );
        assert_eq!(
            validate(&s)[0].detail,
            "the repository name may not contain an ID"
        );
    }

    // Upstream TestValidateImageStream "status tag missing dockerImageReference".
    #[test]
    fn test_validate_image_stream_status_tag_missing_docker_image_reference() {
        let s = with(
            stream("namespace", "foo"),
            "",
            vec![],
            vec![history("tag", &["", "foo/bar:latest", ""])],
        );
        assert_eq!(
            validate(&s),
            [
                FieldError::required("status.tags[tag].items[0].dockerImageReference", ""),
                FieldError::required("status.tags[tag].items[2].dockerImageReference", ""),
            ]
        );
    }

    /// The properties of a spec tag in the installed ImageStream CRD.
    fn tag_schema() -> serde_json::Value {
        let crd = crate::api::crds()
            .into_iter()
            .find(|c| c.spec.names.kind == "ImageStream")
            .unwrap();
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
        schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["tags"]["items"]["properties"]
            .clone()
    }

    // Upstream TestValidateImageStream "referencePolicy.type must be valid": the typed field
    // cannot hold `Other`, and the CRD schema lists only the valid values.
    #[test]
    fn test_validate_image_stream_reference_policy_type_must_be_valid() {
        let decoded = serde_json::from_value::<TagReferencePolicy>(serde_json::json!({
            "type": "Other"
        }));
        assert!(decoded.is_err());
        assert_eq!(
            tag_schema()["referencePolicy"]["properties"]["type"]["enum"],
            serde_json::json!(["", "Source", "Local"])
        );
    }

    // Upstream TestValidateImageStream "ImageStreamTags can't be scheduled".
    #[test]
    fn test_validate_image_stream_image_stream_tags_cant_be_scheduled() {
        let s = with(
            stream("namespace", "foo"),
            "",
            vec![
                scheduled(tag("tag", KIND_DOCKER_IMAGE, "abc")),
                scheduled(tag("other", KIND_IMAGE_STREAM_TAG, "other:latest")),
            ],
            vec![],
        );
        let errors = validate(&s);
        assert_eq!(
            errors,
            [FieldError::invalid_rendered(
                "spec.tags[other].importPolicy.scheduled",
                "true",
                "only tags pointing to Docker repositories may be scheduled for background import"
            )]
        );
        assert_eq!(
            errors[0].to_string(),
            "spec.tags[other].importPolicy.scheduled: Invalid value: true: only tags pointing to Docker repositories may be scheduled for background import"
        );
    }

    // Upstream TestValidateImageStream "image IDs can't be scheduled".
    #[test]
    fn test_validate_image_stream_image_ids_cant_be_scheduled() {
        let s = with(
            stream("namespace", "foo"),
            "",
            vec![scheduled(tag("badid", KIND_DOCKER_IMAGE, "abc@badid"))],
            vec![],
        );
        assert_eq!(
            validate(&s),
            [FieldError::invalid(
                "spec.tags[badid].from.name",
                "abc@badid",
                "invalid reference format"
            )]
        );
        // upstream TestValidateImageStreamImport "valid scheduled dockerimage sha/digest ref"
        let digest = format!("abc@{DIGEST}");
        let s = with(
            stream("namespace", "foo"),
            "",
            vec![scheduled(tag("tag", KIND_DOCKER_IMAGE, &digest))],
            vec![],
        );
        assert_eq!(validate(&s), []);
    }

    // Upstream TestValidateImageStream "ImageStreamImages can't be scheduled".
    #[test]
    fn test_validate_image_stream_image_stream_images_cant_be_scheduled() {
        let s = with(
            stream("namespace", "foo"),
            "",
            vec![scheduled(tag(
                "otherimage",
                KIND_IMAGE_STREAM_IMAGE,
                "other@latest",
            ))],
            vec![],
        );
        assert_eq!(
            validate(&s),
            [FieldError::invalid_rendered(
                "spec.tags[otherimage].importPolicy.scheduled",
                "true",
                ONLY_DOCKER_SCHEDULED
            )]
        );
    }

    // Upstream TestValidateImageStream "valid".
    #[test]
    fn test_validate_image_stream_valid() {
        let s = with(
            stream("namespace", "foo"),
            "",
            vec![
                tag("tag", KIND_DOCKER_IMAGE, "abc"),
                tag("other", KIND_IMAGE_STREAM_TAG, "other:latest"),
            ],
            vec![history("tag", &["foo/bar:latest"])],
        );
        assert_eq!(validate(&s), []);
    }

    // Upstream TestValidateImageStream "valid importMode".
    #[test]
    fn test_validate_image_stream_valid_import_mode() {
        let mut t = tag("tag", KIND_DOCKER_IMAGE, "abc");
        t.import_policy.import_mode = crate::api::ImportMode::PreserveOriginal;
        let s = with(stream("namespace", "foo"), "", vec![t], vec![]);
        assert_eq!(validate(&s), []);
    }

    // Upstream TestValidateImageStream "invalid importMode": not representable, and the CRD
    // schema lists only the valid values.
    #[test]
    fn test_validate_image_stream_invalid_import_mode() {
        let decoded = serde_json::from_value::<TagImportPolicy>(serde_json::json!({
            "importMode": "Invalid"
        }));
        assert!(decoded.is_err());
        assert_eq!(
            tag_schema()["importPolicy"]["properties"]["importMode"]["enum"],
            serde_json::json!(["", "Legacy", "PreserveOriginal"])
        );
    }

    #[test]
    fn from_kind_and_name_are_required() {
        let mut no_kind = tag("a", "", "foo/bar:biz");
        no_kind.reference_policy.type_ = TagReferencePolicyType::Unset;
        let s = with(
            stream("namespace", "foo"),
            "",
            vec![no_kind, tag("b", KIND_DOCKER_IMAGE, "")],
            vec![],
        );
        assert_eq!(
            validate(&s),
            [
                FieldError::required(
                    "spec.tags[a].from.kind",
                    "valid values are 'DockerImage', 'ImageStreamImage', 'ImageStreamTag'"
                ),
                FieldError::required("spec.tags[b].from.name", ""),
                // the kind is not one a tag can be resolved from (upstream tagsChanged)
                FieldError::invalid("spec.tags[a].from.name", "foo/bar:biz", FROM_NAME_FORM),
                FieldError::invalid("spec.tags[b].from.name", "", FROM_NAME_FORM),
            ]
        );
    }

    /// `<id>` and `<tag>` name the stream itself (the controller resolves them); a side left
    /// empty can name nothing and is refused when written, not left to fail in the
    /// controller (issue 16).
    #[test]
    fn references_with_an_empty_side_are_refused() {
        for (kind, name) in [
            (KIND_IMAGE_STREAM_IMAGE, "sha256:abc"),
            (KIND_IMAGE_STREAM_IMAGE, "other@sha256:abc"),
            (KIND_IMAGE_STREAM_TAG, "v1"),
            (KIND_IMAGE_STREAM_TAG, "other:v1"),
        ] {
            let s = with(stream("ns", "foo"), "", vec![tag("a", kind, name)], vec![]);
            assert_eq!(validate(&s), [], "{kind} {name}");
        }
        for (kind, name) in [
            (KIND_IMAGE_STREAM_IMAGE, "@sha256:abc"),
            (KIND_IMAGE_STREAM_IMAGE, "other@"),
            (KIND_IMAGE_STREAM_TAG, ":v1"),
            (KIND_IMAGE_STREAM_TAG, "other:"),
        ] {
            let s = with(stream("ns", "foo"), "", vec![tag("a", kind, name)], vec![]);
            assert_eq!(
                validate(&s),
                [FieldError::invalid(
                    "spec.tags[a].from.name",
                    name,
                    FROM_NAME_FORM
                )],
                "{kind} {name}"
            );
        }
        assert_eq!(
            split_from_reference(KIND_IMAGE_STREAM_IMAGE, "sha256:abc", "foo"),
            Some(("foo", "sha256:abc"))
        );
    }

    // --- case 32, 33: TestValidateImageStreamWithWhitelister --------------------------------

    fn validate_allowing(s: &ImageStream, domains: &[&str]) -> Vec<FieldError> {
        let allowed = allowed(domains);
        let ctx = ValidationContext {
            allowed_registries: Some(&allowed),
        };
        validate_image_stream(s, &ctx)
    }

    const THREE: &[&str] = &["example.com", "localhost:5000", "dev.null.io:80"];
    const THREE_LISTED: &str = r#""example.com:443", "localhost:5000", "dev.null.io:80""#;

    fn secure_and_insecure_tags() -> Vec<TagReference> {
        vec![
            tag("secure", KIND_DOCKER_IMAGE, "example.com:443/repo"),
            insecure(tag("insecure", KIND_DOCKER_IMAGE, "example.com/repo")),
        ]
    }

    // Upstream TestValidateImageStreamWithWhitelister "forbid spec references not on the
    // whitelist".
    #[test]
    fn test_validate_image_stream_with_whitelister_forbid_spec_references_not_on_the_whitelist() {
        let s = with(
            stream("foo", "bar"),
            "",
            vec![tag("fail", KIND_DOCKER_IMAGE, "registry.ltd/a/b")],
            vec![],
        );
        assert_eq!(
            validate_allowing(&s, THREE),
            [FieldError::forbidden(
                "spec.tags[fail].from.name",
                format!(r#"registry "registry.ltd" not allowed by whitelist: {THREE_LISTED}"#)
            )]
        );
    }

    // Upstream TestValidateImageStreamWithWhitelister "forbid status references not on the
    // whitelist - secure".
    #[test]
    fn test_validate_image_stream_with_whitelister_forbid_status_references_secure() {
        let s = with(
            stream("foo", "bar"),
            "",
            secure_and_insecure_tags(),
            vec![history(
                "secure",
                &[
                    "docker.io/foo/bar:latest",
                    "example.com/bar:latest",
                    "example.com:80/repo:latest",
                    "dev.null.io/myapp",
                    "dev.null.io:80/myapp",
                ],
            )],
        );
        let forbidden = |index: usize, registry: &str| {
            FieldError::forbidden(
                format!("status.tags[secure].items[{index}].dockerImageReference"),
                format!(r#"registry "{registry}" not allowed by whitelist: {THREE_LISTED}"#),
            )
        };
        assert_eq!(
            validate_allowing(&s, THREE),
            [
                forbidden(0, "docker.io"),
                forbidden(2, "example.com:80"),
                forbidden(3, "dev.null.io"),
            ]
        );
    }

    // Upstream TestValidateImageStreamWithWhitelister "forbid status references not on the
    // whitelist - insecure".
    #[test]
    fn test_validate_image_stream_with_whitelister_forbid_status_references_insecure() {
        let s = with(
            stream("foo", "bar"),
            "",
            secure_and_insecure_tags(),
            vec![history(
                "insecure",
                &[
                    "localhost:5000/baz:latest",
                    "example.com:80/bar:latest",
                    "registry.ltd/repo:latest",
                    "dev.null.io/myapp",
                    "dev.null.io:80/myapp",
                ],
            )],
        );
        let forbidden = |index: usize, registry: &str| {
            FieldError::forbidden(
                format!("status.tags[insecure].items[{index}].dockerImageReference"),
                format!(r#"registry "{registry}" not allowed by whitelist: {THREE_LISTED}"#),
            )
        };
        assert_eq!(
            validate_allowing(&s, THREE),
            [forbidden(1, "example.com:80"), forbidden(2, "registry.ltd")]
        );
    }

    // Upstream TestValidateImageStreamWithWhitelister "forbid status references not on the
    // whitelist" and "local reference policy does not matter".
    #[test]
    fn test_validate_image_stream_with_whitelister_forbid_status_references_not_on_the_whitelist() {
        for policy in [
            TagReferencePolicyType::Source,
            TagReferencePolicyType::Local,
        ] {
            let mut tags = secure_and_insecure_tags();
            for t in &mut tags {
                t.reference_policy.type_ = policy;
            }
            let s = with(
                stream("foo", "bar"),
                "",
                tags,
                vec![history(
                    "securebydefault",
                    &[
                        "localhost/repo:latest",
                        "example.com:443/bar:latest",
                        "example.com/repo:latest",
                    ],
                )],
            );
            assert_eq!(
                validate_allowing(&s, THREE),
                [FieldError::forbidden(
                    "status.tags[securebydefault].items[0].dockerImageReference",
                    format!(r#"registry "localhost" not allowed by whitelist: {THREE_LISTED}"#)
                )],
                "{policy:?}"
            );
        }
    }

    // Upstream TestValidateImageStreamWithWhitelister "whitelisted repository".
    #[test]
    fn test_validate_image_stream_with_whitelister_whitelisted_repository() {
        let s = with(
            stream("foo", "bar"),
            "example.com/openshift/origin",
            vec![],
            vec![],
        );
        assert_eq!(validate_allowing(&s, &["example.com"]), []);
    }

    // Upstream TestValidateImageStreamWithWhitelister "not whitelisted repository" (case 33).
    #[test]
    fn test_validate_image_stream_with_whitelister_not_whitelisted_repository() {
        let s = with(
            stream("foo", "bar"),
            "example.com/openshift/origin",
            vec![],
            vec![],
        );
        assert_eq!(
            validate_allowing(&s, &["*.example.com"]),
            [FieldError::forbidden(
                "spec.dockerImageRepository",
                r#"registry "example.com" not allowed by whitelist: "*.example.com:443""#
            )]
        );
    }

    #[test]
    fn insecure_stream_annotation_allows_either_port() {
        let mut s = with(
            stream("foo", "bar"),
            "",
            vec![tag("t", KIND_DOCKER_IMAGE, "dev.null.io/app")],
            vec![],
        );
        assert_eq!(validate_allowing(&s, THREE).len(), 1);
        s.metadata.annotations = Some(map(&[(INSECURE_REPOSITORY_ANNOTATION, "true")]));
        assert_eq!(validate_allowing(&s, THREE), []);
    }

    // --- case 34: TestValidateImageStreamUpdateWithWhitelister ------------------------------

    fn update_allowing(
        old: (&str, Vec<TagReference>, Vec<NamedTagEventList>),
        new: (&str, Vec<TagReference>, Vec<NamedTagEventList>),
        domains: &[&str],
    ) -> Vec<FieldError> {
        let old = with(stream("nm", "testis"), old.0, old.1, old.2);
        let new = with(stream("nm", "testis"), new.0, new.1, new.2);
        let allowed = allowed(domains);
        let ctx = ValidationContext {
            allowed_registries: Some(&allowed),
        };
        validate_image_stream_update(&new, &old, &ctx)
    }

    const HUB_REPO_DIGEST: &str =
        "sha256:3c87c572822935df60f0f5d3665bd376841a7fcfeb806b5f212de6a00e9a7b25";

    // --- semantics 2.4: a user's imagestreams/status write ----------------------------------

    fn status_update_allowing(
        old: Vec<NamedTagEventList>,
        new: (Vec<TagReference>, Vec<NamedTagEventList>),
        domains: Option<&[&str]>,
    ) -> Vec<FieldError> {
        let old = with(stream("nm", "testis"), "", vec![], old);
        let new = with(stream("nm", "testis"), "", new.0, new.1);
        let allowed = domains.map(allowed);
        let ctx = ValidationContext {
            allowed_registries: allowed.as_ref(),
        };
        validate_image_stream_status_update(&new, &old, &ctx)
    }

    // New pull specs must parse and be allowed; those already in the history may stay (upstream
    // ValidateImageStreamStatusUpdateWithWhitelister: "allow to manipulate not whitelisted
    // references if already present").
    #[test]
    fn status_updates_check_only_new_pull_specs() {
        let old_ref = format!("abcd.com/repo/myapp@{HUB_REPO_DIGEST}");
        let new_ref = format!("quay.io/a/b@{HUB_REPO_DIGEST}");
        let errors = status_update_allowing(
            vec![history("t", &[&old_ref])],
            (vec![], vec![history("t", &[&new_ref, &old_ref])]),
            Some(&["docker.io"]),
        );
        assert_eq!(
            kinds_and_fields(&errors),
            [(
                FieldErrorKind::Forbidden,
                "status.tags[t].items[0].dockerImageReference"
            )]
        );
        assert!(
            errors[0]
                .to_string()
                .contains(r#"registry "quay.io" not allowed"#)
        );
        // no list: anything that parses
        assert_eq!(
            status_update_allowing(vec![], (vec![], vec![history("t", &[&new_ref])]), None),
            []
        );
        let errors =
            status_update_allowing(vec![], (vec![], vec![history("t", &["abc@badid"])]), None);
        assert_eq!(
            kinds_and_fields(&errors),
            [(
                FieldErrorKind::Invalid,
                "status.tags[t].items[0].dockerImageReference"
            )]
        );
        // an insecure tag may use either port: a registry allowed on 80 only
        let portless = format!("dev.null.io/a/b@{HUB_REPO_DIGEST}");
        let secure = status_update_allowing(
            vec![],
            (vec![], vec![history("t", &[&portless])]),
            Some(&["dev.null.io:80"]),
        );
        assert_eq!(secure.len(), 1);
        let insecure = status_update_allowing(
            vec![],
            (
                vec![insecure(tag("t", KIND_DOCKER_IMAGE, "dev.null.io/a/b:t"))],
                vec![history("t", &[&portless])],
            ),
            Some(&["dev.null.io:80"]),
        );
        assert_eq!(insecure, []);
    }

    // Upstream TestValidateImageStreamUpdateWithWhitelister "no old referencess".
    #[test]
    fn test_validate_image_stream_update_with_whitelister_no_old_references() {
        let errors = update_allowing(
            ("", vec![], vec![]),
            (
                "",
                vec![tag("latest", KIND_DOCKER_IMAGE, "example.com/repo")],
                vec![history("latest", &["example.com"])],
            ),
            &["docker.io", "example.com"],
        );
        assert_eq!(errors, []);
    }

    // Upstream TestValidateImageStreamUpdateWithWhitelister "report not whitelisted".
    #[test]
    fn test_validate_image_stream_update_with_whitelister_report_not_whitelisted() {
        let failing = format!("example.com/repo@{HUB_REPO_DIGEST}");
        let errors = update_allowing(
            ("", vec![], vec![]),
            (
                "",
                vec![
                    tag("fail", KIND_DOCKER_IMAGE, "example.com/repo"),
                    tag("ok", KIND_DOCKER_IMAGE, "docker.io/busybox"),
                ],
                vec![
                    history("fail", &[&failing]),
                    history("ok", &["docker.io/library/busybox:latest"]),
                ],
            ),
            &["docker.io"],
        );
        let message = r#"registry "example.com" not allowed by whitelist: "docker.io:443""#;
        assert_eq!(
            errors,
            [
                FieldError::forbidden("spec.tags[fail].from.name", message),
                FieldError::forbidden("status.tags[fail].items[0].dockerImageReference", message),
            ]
        );
    }

    // Upstream TestValidateImageStreamUpdateWithWhitelister "allow old not whitelisted
    // references".
    #[test]
    fn test_validate_image_stream_update_with_whitelister_allow_old_not_whitelisted_references() {
        let old_tags = vec![tag("fail", KIND_DOCKER_IMAGE, "example.com/repo")];
        let errors = update_allowing(
            ("", old_tags.clone(), vec![]),
            ("", old_tags, vec![history("fail", &["example.com/repo"])]),
            &["docker.io"],
        );
        assert_eq!(errors, []);
        // another repository of the same registry is still new
        let errors = update_allowing(
            (
                "",
                vec![tag("fail", KIND_DOCKER_IMAGE, "example.com/repo")],
                vec![],
            ),
            (
                "",
                vec![tag("fail", KIND_DOCKER_IMAGE, "example.com/other")],
                vec![],
            ),
            &["docker.io"],
        );
        assert_eq!(
            kinds_and_fields(&errors),
            [(FieldErrorKind::Forbidden, "spec.tags[fail].from.name")]
        );
    }

    // Upstream TestValidateImageStreamUpdateWithWhitelister "allow old not whitelisted
    // references from status".
    #[test]
    fn test_validate_image_stream_update_with_whitelister_allow_old_not_whitelisted_references_from_status()
     {
        let digest = format!("abcd.com/repo/myapp@{HUB_REPO_DIGEST}");
        let errors = update_allowing(
            (
                "",
                vec![],
                vec![history("latest", &["abcd.com/repo/myapp:latest"])],
            ),
            (
                "",
                vec![tag(
                    "whitelisted",
                    KIND_DOCKER_IMAGE,
                    "abcd.com/repo/myapp:latest",
                )],
                vec![history("fail", &[&digest])],
            ),
            &["docker.io"],
        );
        assert_eq!(errors, []);
    }

    // Upstream TestValidateImageStreamUpdateWithWhitelister "allow whitelisted
    // dockerImageRepository".
    #[test]
    fn test_validate_image_stream_update_with_whitelister_allow_whitelisted_docker_image_repository()
     {
        let errors = update_allowing(
            ("example.com/my/app", vec![], vec![]),
            ("docker.io/my/newapp", vec![], vec![]),
            &["docker.io"],
        );
        assert_eq!(errors, []);
    }

    // Upstream TestValidateImageStreamUpdateWithWhitelister "forbid not whitelisted
    // dockerImageRepository".
    #[test]
    fn test_validate_image_stream_update_with_whitelister_forbid_not_whitelisted_docker_image_repository()
     {
        let errors = update_allowing(
            ("docker.io/my/app", vec![], vec![]),
            ("example.com/my/newapp", vec![], vec![]),
            &["docker.io"],
        );
        assert_eq!(
            errors,
            [FieldError::forbidden(
                "spec.dockerImageRepository",
                r#"registry "example.com" not allowed by whitelist: "docker.io:443""#
            )]
        );
    }

    // Upstream TestValidateImageStreamUpdateWithWhitelister "permit no change to not
    // whitelisted dockerImageRepository".
    #[test]
    fn test_validate_image_stream_update_with_whitelister_permit_no_change_to_not_whitelisted_docker_image_repository()
     {
        let errors = update_allowing(
            ("example.com/my/newapp", vec![], vec![]),
            ("example.com/my/newapp", vec![], vec![]),
            &["docker.io"],
        );
        assert_eq!(errors, []);
    }

    // --- case 6-10 (pure parts): TestTagVerifier --------------------------------------------

    fn verifier_stream(tags: Vec<TagReference>) -> ImageStream {
        with(stream("namespace", "stream"), "", tags, vec![])
    }

    // Upstream TestTagVerifier "invalid from name" (case 9).
    #[test]
    fn test_tag_verifier_invalid_from_name() {
        let s = verifier_stream(vec![cross_tag("latest", "otherns", "a:b:c")]);
        assert_eq!(
            validate(&s),
            [FieldError::invalid(
                "spec.tags[latest].from.name",
                "a:b:c",
                "must be of the form <tag>, <repo>:<tag>, <id>, or <repo>@<id>"
            )]
        );
        assert_eq!(cross_namespace_references(&s, None), []);
        // the same check runs for same-namespace references of new or changed tags
        let s = verifier_stream(vec![tag("latest", KIND_IMAGE_STREAM_IMAGE, "a@b@c")]);
        assert_eq!(
            kinds_and_fields(&validate(&s)),
            [(FieldErrorKind::Invalid, "spec.tags[latest].from.name")]
        );
        // an unchanged tag is not checked again
        assert_eq!(validate_image_stream_update(&s, &s, &all_allowed()), []);
        // a DockerImage cannot come from another namespace
        let mut docker = tag("latest", KIND_DOCKER_IMAGE, "busybox");
        docker.from = from(KIND_DOCKER_IMAGE, "busybox", "otherns");
        assert_eq!(
            validate(&verifier_stream(vec![docker])),
            [FieldError::invalid(
                "spec.tags[latest].from.name",
                "busybox",
                FROM_NAME_FORM
            )]
        );
    }

    // Upstream TestTagVerifier "old nil, all tags are new" (case 6) and "multiple sars to
    // multiple namespaces".
    #[test]
    fn test_tag_verifier_old_nil_all_tags_are_new() {
        let s = verifier_stream(vec![
            cross_tag("latest", "otherns", "otherstream:latest"),
            cross_tag("second", "secondns", "otherstream:latest"),
        ]);
        assert_eq!(validate(&s), []);
        assert_eq!(
            cross_namespace_references(&s, None),
            [
                CrossNamespaceReference {
                    namespace: "otherns".into(),
                    stream: "otherstream".into(),
                    tags: vec!["latest".into()],
                },
                CrossNamespaceReference {
                    namespace: "secondns".into(),
                    stream: "otherstream".into(),
                    tags: vec!["second".into()],
                },
            ]
        );
    }

    // Upstream TestTagVerifier "nil from" and "same namespace" (case 7).
    #[test]
    fn test_tag_verifier_same_namespace() {
        let s = verifier_stream(vec![
            tag("latest", KIND_DOCKER_IMAGE, "registry/old/stream:latest"),
            cross_tag("other", "namespace", "otherstream:latest"),
            tag("placeholder", KIND_DOCKER_IMAGE, "x"),
        ]);
        assert_eq!(cross_namespace_references(&s, None), []);
    }

    // Upstream TestTagVerifier "ref unchanged" (case 8) and "ref changed".
    #[test]
    fn test_tag_verifier_ref_unchanged() {
        let old = verifier_stream(vec![cross_tag("latest", "otherns", "otherstream:foo")]);
        assert_eq!(cross_namespace_references(&old, Some(&old)), []);
        let new = verifier_stream(vec![cross_tag("latest", "otherns", "otherstream:latest")]);
        assert_eq!(
            cross_namespace_references(&new, Some(&old)),
            [CrossNamespaceReference {
                namespace: "otherns".into(),
                stream: "otherstream".into(),
                tags: vec!["latest".into()],
            }]
        );
    }

    // Upstream TestTagVerifier "sar denied", "sar error", "sar error propagates to all tags
    // sharing a SAR" and "... only to tags sharing a SAR" (case 10).
    #[test]
    fn test_tag_verifier_sar_denied() {
        let s = verifier_stream(vec![
            cross_tag("latest", "otherns", "otherstream:latest"),
            cross_tag("other", "otherns", "otherstream:latest"),
            cross_tag("third", "thirdns", "something:latest"),
            TagReference {
                from: from(KIND_IMAGE_STREAM_IMAGE, "otherstream@sha256:abc", "otherns"),
                ..tag("image", KIND_IMAGE_STREAM_IMAGE, "")
            },
        ]);
        let references = cross_namespace_references(&s, None);
        assert_eq!(references.len(), 2);
        assert_eq!(references[0].tags, ["image", "latest", "other"]);
        let denied =
            forbidden_reference_errors(&references[0], &subject_access_review_denial("", ""));
        assert_eq!(
            denied,
            ["image", "latest", "other"].map(|t| FieldError::forbidden(
                format!("spec.tags[{t}].from"),
                r#"otherns/otherstream: "" """#
            ))
        );
        let failed = forbidden_reference_errors(
            &references[1],
            &format!("{}- foo", subject_access_review_denial("", "")),
        );
        assert_eq!(
            failed,
            [FieldError::forbidden(
                "spec.tags[third].from",
                r#"thirdns/something: "" ""- foo"#
            )]
        );
    }

    // --- case 35: TestValidateISTUpdate -----------------------------------------------------

    fn istag(annotations: &[(&str, &str)], tag: Option<TagReference>) -> ImageStreamTag {
        let mut metadata = meta("default", "foo.bar");
        metadata.annotations = Some(map(annotations));
        ImageStreamTag {
            metadata,
            spec: ImageStreamTagFields {
                tag,
                ..ImageStreamTagFields::default()
            },
        }
    }

    fn old_istag() -> ImageStreamTag {
        let mut t = TagReference {
            from: from(KIND_DOCKER_IMAGE, "some/other:system", ""),
            ..TagReference::default()
        };
        t.name = "bar".into();
        istag(&[("one", "two")], Some(t))
    }

    // Upstream TestValidateISTUpdate (the successful update: only annotations change).
    #[test]
    fn test_validate_ist_update_annotations_only() {
        let new = istag(&[("one", "two"), ("three", "four")], None);
        assert_eq!(validate_image_stream_tag_update(&new, &old_istag()), []);
        // lookupPolicy and generation are ignored
        let mut new = old_istag();
        new.spec.generation = 5;
        new.spec.lookup_policy.local = true;
        assert_eq!(validate_image_stream_tag_update(&new, &old_istag()), []);
    }

    // Upstream TestValidateISTUpdate "changedLabel".
    #[test]
    fn test_validate_ist_update_changed_label() {
        let mut new = istag(&[("one", "two")], None);
        new.metadata.labels = Some(map(&[("a", "b")]));
        assert_eq!(
            validate_image_stream_tag_update(&new, &old_istag()),
            [FieldError::invalid(
                "metadata",
                "",
                "may not update fields other than metadata.annotations"
            )]
        );
        // so is the rendered image
        let mut new = old_istag();
        new.spec.image = Some(Image::default());
        assert_eq!(
            kinds_and_fields(&validate_image_stream_tag_update(&new, &old_istag())),
            [(FieldErrorKind::Invalid, "metadata")]
        );
    }

    // Upstream TestValidateISTUpdate "mismatchedAnnotations".
    #[test]
    fn test_validate_ist_update_mismatched_annotations() {
        let mut t = tag("bar", KIND_DOCKER_IMAGE, "some/other:system");
        t.annotations = Some(map(&[("one", "three")]));
        let new = istag(&[("one", "two")], Some(t));
        assert_eq!(
            validate_image_stream_tag_update(&new, &old_istag()),
            [FieldError::invalid(
                "tag.annotations",
                "<map>",
                "tag annotations must not be provided or must be equal to the object meta annotations"
            )]
        );
        // equal ones are fine
        let mut t = tag("bar", KIND_DOCKER_IMAGE, "some/other:system");
        t.annotations = Some(map(&[("one", "two")]));
        let new = istag(&[("one", "two")], Some(t));
        assert_eq!(validate_image_stream_tag_update(&new, &old_istag()), []);
    }

    // Upstream TestValidateISTUpdate "tagToNameRequired".
    #[test]
    fn test_validate_ist_update_tag_to_name_required() {
        let new = istag(&[("one", "two")], Some(tag("bar", KIND_DOCKER_IMAGE, "")));
        assert_eq!(
            kinds_and_fields(&validate_image_stream_tag_update(&new, &old_istag())),
            [(FieldErrorKind::Required, "tag.from.name")]
        );
    }

    // Upstream TestValidateISTUpdate "tagToKindRequired".
    #[test]
    fn test_validate_ist_update_tag_to_kind_required() {
        let new = istag(&[("one", "two")], Some(tag("bar", "", "foo/bar:biz")));
        assert_eq!(
            kinds_and_fields(&validate_image_stream_tag_update(&new, &old_istag())),
            [(FieldErrorKind::Required, "tag.from.kind")]
        );
    }

    // Upstream TestValidateISTUpdateWithWhitelister (old repository stays allowed, a new one
    // is checked).
    #[test]
    fn test_validate_ist_update_with_whitelister() {
        let allowed = allowed(&["docker.io"]);
        let ctx = ValidationContext {
            allowed_registries: Some(&allowed),
        };
        let mut old = old_istag();
        old.spec.tag = Some(tag("bar", KIND_DOCKER_IMAGE, "example.com/repo:v1"));
        let mut new = old.clone();
        new.spec.tag = Some(tag("bar", KIND_DOCKER_IMAGE, "example.com/repo:v2"));
        assert_eq!(
            validate_image_stream_tag_update_with_context(&new, &old, &ctx),
            []
        );
        new.spec.tag = Some(tag("bar", KIND_DOCKER_IMAGE, "quay.io/repo:v2"));
        assert_eq!(
            validate_image_stream_tag_update_with_context(&new, &old, &ctx),
            [FieldError::forbidden(
                "tag.from.name",
                r#"registry "quay.io" not allowed by whitelist: "docker.io:443""#
            )]
        );
        assert_eq!(
            kinds_and_fields(&validate_image_stream_tag(&new, &ctx)),
            [(FieldErrorKind::Forbidden, "tag.from.name")]
        );
    }

    // --- case 36: TestValidateITUpdate ------------------------------------------------------

    fn itag(name: &str, spec: Option<TagReference>) -> ImageTag {
        let mut metadata = meta("default", name);
        metadata.annotations = Some(map(&[("one", "two")]));
        ImageTag {
            metadata,
            spec: ImageTagFields { spec, image: None },
            status: None,
        }
    }

    fn old_itag() -> ImageTag {
        let spec = TagReference {
            from: from(KIND_DOCKER_IMAGE, "some/other:system", ""),
            ..TagReference::default()
        };
        itag("foo.bar", Some(spec))
    }

    // Upstream TestValidateITUpdate (the successful update: spec removed).
    #[test]
    fn test_validate_it_update_valid() {
        assert_eq!(
            validate_image_tag_update(&itag("foo.bar", None), &old_itag()),
            []
        );
        let new = itag(
            "foo.bar",
            Some(tag("bar", KIND_DOCKER_IMAGE, "some/valid:image")),
        );
        assert_eq!(validate_image_tag_update(&new, &old_itag()), []);
    }

    // Upstream TestValidateITUpdate "changedAnnotations".
    #[test]
    fn test_validate_it_update_changed_annotations() {
        let mut new = itag("foo.bar", None);
        new.metadata.annotations = Some(map(&[("one", "two"), ("three", "four")]));
        assert_eq!(
            validate_image_tag_update(&new, &old_itag()),
            [FieldError::invalid(
                "metadata",
                "",
                "may not update fields other than spec"
            )]
        );
    }

    // Upstream TestValidateITUpdate "changedLabel".
    #[test]
    fn test_validate_it_update_changed_label() {
        let mut new = itag("foo.bar", None);
        new.metadata.labels = Some(map(&[("a", "b")]));
        assert_eq!(
            kinds_and_fields(&validate_image_tag_update(&new, &old_itag())),
            [(FieldErrorKind::Invalid, "metadata")]
        );
        let mut new = itag("foo.bar", None);
        new.status = Some(history("bar", &["a/b"]));
        assert_eq!(
            kinds_and_fields(&validate_image_tag_update(&new, &old_itag())),
            [(FieldErrorKind::Invalid, "status")]
        );
    }

    // Upstream TestValidateITUpdate "mismatchedSpecName".
    #[test]
    fn test_validate_it_update_mismatched_spec_name() {
        let new = itag(
            "foo.bar",
            Some(tag("baz", KIND_DOCKER_IMAGE, "some/valid:image")),
        );
        assert_eq!(
            validate_image_tag_update(&new, &old_itag()),
            [FieldError::invalid(
                "spec.name",
                "baz",
                "must match image tag name"
            )]
        );
        // a hashed object name: the tag comes from the annotations
        let mut new = itag(
            &names::stream_tag("Foo", "bar"),
            Some(tag("bar", KIND_DOCKER_IMAGE, "some/valid:image")),
        );
        let mut old = old_itag();
        old.metadata.name = new.metadata.name.clone();
        for annotation in [
            (names::ANNOTATION_OPENSHIFT_NAME, "Foo:bar"),
            (names::ANNOTATION_TAG, "bar"),
        ] {
            let annotations = map(&[("one", "two"), annotation]);
            new.metadata.annotations = Some(annotations.clone());
            old.metadata.annotations = Some(annotations);
            assert_eq!(validate_image_tag_update(&new, &old), [], "{annotation:?}");
        }
        new.metadata.annotations = Some(map(&[("one", "two")]));
        old.metadata.annotations = new.metadata.annotations.clone();
        assert_eq!(
            kinds_and_fields(&validate_image_tag_update(&new, &old)),
            [(FieldErrorKind::Invalid, "spec.name")]
        );
    }

    // Upstream TestValidateITUpdate "tagToNameRequired".
    #[test]
    fn test_validate_it_update_tag_to_name_required() {
        let new = itag("foo.bar", Some(tag("bar", KIND_DOCKER_IMAGE, "")));
        assert_eq!(
            kinds_and_fields(&validate_image_tag_update(&new, &old_itag())),
            [(FieldErrorKind::Required, "spec.from.name")]
        );
    }

    // Upstream TestValidateITUpdate "tagToKindRequired".
    #[test]
    fn test_validate_it_update_tag_to_kind_required() {
        let new = itag("foo.bar", Some(tag("bar", "", "foo/bar:biz")));
        assert_eq!(
            kinds_and_fields(&validate_image_tag_update(&new, &old_itag())),
            [(FieldErrorKind::Required, "spec.from.kind")]
        );
    }

    #[test]
    fn image_tag_create_requires_spec() {
        assert_eq!(
            validate_image_tag(&itag("foo.bar", None), &all_allowed()),
            [FieldError::required(
                "spec",
                "spec is a required field during creation"
            )]
        );
        let ok = itag("foo.bar", Some(tag("bar", KIND_DOCKER_IMAGE, "a/b")));
        assert_eq!(validate_image_tag(&ok, &all_allowed()), []);
    }

    // --- case 37: TestValidateImageStreamImport ---------------------------------------------

    fn isi(namespace: &str, name: &str, spec: ImageStreamImportSpec) -> ImageStreamImport {
        ImageStreamImport {
            metadata: meta(namespace, name),
            spec,
            status: None,
        }
    }

    fn repository(name: &str) -> ImageStreamImportSpec {
        ImageStreamImportSpec {
            repository: Some(RepositoryImportSpec {
                from: from(KIND_DOCKER_IMAGE, name, "").unwrap_or_default(),
                ..RepositoryImportSpec::default()
            }),
            ..ImageStreamImportSpec::default()
        }
    }

    fn image_import(kind: &str, name: &str) -> ImageImportSpec {
        ImageImportSpec {
            from: from(kind, name, "").unwrap_or_default(),
            import_policy: TagImportPolicy {
                scheduled: true,
                ..TagImportPolicy::default()
            },
            ..ImageImportSpec::default()
        }
    }

    // Upstream TestValidateImageStreamImport "missing name", "no slash in Name", "no percent
    // in Name", "other invalid name", "missing namespace", "invalid namespace".
    #[test]
    fn test_validate_image_stream_import_metadata() {
        let cases = [
            ("foo", "", "metadata.name", FieldErrorKind::Required),
            ("foo", "foo/bar", "metadata.name", FieldErrorKind::Invalid),
            ("foo", "foo%%bar", "metadata.name", FieldErrorKind::Invalid),
            ("foo", "foo bar", "metadata.name", FieldErrorKind::Invalid),
            ("", "foo", "metadata.namespace", FieldErrorKind::Required),
            ("!$", "foo", "metadata.namespace", FieldErrorKind::Invalid),
        ];
        for (namespace, name, field, kind) in cases {
            let errors = validate_image_stream_import(&isi(namespace, name, repository("redis")));
            assert_eq!(kinds_and_fields(&errors), [(kind, field)], "{name}");
        }
        // no 'namespace/name' length limit here
        let long = isi(&"a".repeat(63), &"b".repeat(192), repository("redis"));
        assert_eq!(validate_image_stream_import(&long), []);
    }

    // Upstream TestValidateImageStreamImport "invalid dockerImageRepository", "... with tag",
    // "... with ID".
    #[test]
    fn test_validate_image_stream_import_invalid_docker_image_repository() {
        for (name, detail) in [
            ("a-|///bbb", "invalid reference format"),
            (
                "a/b:tag",
                "you must specify an image repository, not a tag or ID",
            ),
            ("a/b@sha256:something", "invalid reference format"),
        ] {
            assert_eq!(
                validate_image_stream_import(&isi("foo", "foo", repository(name))),
                [FieldError::invalid(
                    "spec.repository.from.name",
                    name,
                    detail
                )]
            );
        }
        assert_eq!(
            validate_image_stream_import(&isi("foo", "foo", repository(""))),
            [FieldError::required(
                "spec.repository.from.name",
                "container image references require a name"
            )]
        );
    }

    // Upstream TestValidateImageStreamImport "only DockerImage tags can be scheduled".
    #[test]
    fn test_validate_image_stream_import_only_docker_image_tags_can_be_scheduled() {
        let spec = ImageStreamImportSpec {
            images: vec![
                image_import(KIND_DOCKER_IMAGE, "abc"),
                image_import(KIND_DOCKER_IMAGE, "abc@badid"),
                image_import(KIND_IMAGE_STREAM_TAG, "other:latest"),
                image_import(KIND_IMAGE_STREAM_IMAGE, "other@latest"),
                image_import(KIND_DOCKER_IMAGE, "*"),
            ],
            ..ImageStreamImportSpec::default()
        };
        assert_eq!(
            validate_image_stream_import(&isi("foo", "foo", spec)),
            [
                FieldError::invalid(
                    "spec.images[1].from.name",
                    "abc@badid",
                    "invalid reference format"
                ),
                FieldError::invalid(
                    "spec.images[2].from.kind",
                    "ImageStreamTag",
                    ONLY_DOCKER_IMAGE
                ),
                FieldError::invalid(
                    "spec.images[3].from.kind",
                    "ImageStreamImage",
                    ONLY_DOCKER_IMAGE
                ),
            ]
        );
    }

    #[test]
    fn image_stream_import_needs_images_or_repository_and_target_names() {
        let errors =
            validate_image_stream_import(&isi("foo", "foo", ImageStreamImportSpec::default()));
        assert_eq!(
            errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                r#"spec.images: Invalid value: "null": you must specify at least one image or a repository import"#
            ]
        );
        let mut image = image_import(KIND_DOCKER_IMAGE, "");
        image.to = Some(LocalObjectReference::default());
        let spec = ImageStreamImportSpec {
            images: vec![image],
            ..ImageStreamImportSpec::default()
        };
        assert_eq!(
            kinds_and_fields(&validate_image_stream_import(&isi("foo", "foo", spec))),
            [
                (FieldErrorKind::Invalid, "spec.images[0].to.name"),
                (FieldErrorKind::Required, "spec.images[0].from.name"),
            ]
        );
    }

    // --- case 38, 39: TestValidateImageOK, TestValidateImageMissingFields,
    //     TestValidateImageManifests ----------------------------------------------------------

    fn image(name: &str, reference: &str) -> Image {
        Image {
            metadata: meta("", name),
            spec: ImageFields {
                docker_image_reference: reference.into(),
                ..ImageFields::default()
            },
        }
    }

    // Upstream TestValidateImageOK.
    #[test]
    fn test_validate_image_ok() {
        assert_eq!(
            validate_image(&image("foo", "openshift/ruby-19-centos")),
            []
        );
    }

    // Upstream TestValidateImageMissingFields "missing Name", "no slash in Name", "no percent
    // in Name", "missing DockerImageReference".
    #[test]
    fn test_validate_image_missing_fields() {
        let cases = [
            (image("", "ref"), FieldErrorKind::Required, "metadata.name"),
            (
                image("foo/bar", ""),
                FieldErrorKind::Invalid,
                "metadata.name",
            ),
            (
                image("foo%%bar", ""),
                FieldErrorKind::Invalid,
                "metadata.name",
            ),
            (
                image("foo", ""),
                FieldErrorKind::Required,
                "dockerImageReference",
            ),
        ];
        for (image, kind, field) in cases {
            let errors = validate_image(&image);
            assert!(
                kinds_and_fields(&errors).contains(&(kind, field)),
                "{image:?}: {errors:?}"
            );
        }
        assert_eq!(
            validate_image(&image("foo", "Upper/Case")),
            [FieldError::invalid(
                "dockerImageReference",
                "Upper/Case",
                "repository name must be lowercase"
            )]
        );
    }

    fn manifest(digest: &str, media_type: &str, architecture: &str, os: &str) -> ImageManifest {
        ImageManifest {
            digest: digest.into(),
            media_type: media_type.into(),
            architecture: architecture.into(),
            os: os.into(),
            ..ImageManifest::default()
        }
    }

    fn list_image(manifests: Vec<ImageManifest>) -> Image {
        let mut list = image("foo", "openshift/ruby-19-centos");
        list.spec.docker_image_manifests = manifests;
        list
    }

    // Upstream TestValidateImageManifests "invalid digest".
    #[test]
    fn test_validate_image_manifests_invalid_digest() {
        let list = list_image(vec![manifest("abc", "foo/bar", "foo", "bar")]);
        assert_eq!(
            validate_image(&list),
            [FieldError::invalid(
                "dockerImageManifests[0].digest",
                "abc",
                "digest does not conform with OCI image specification"
            )]
        );
        for ok in [
            DIGEST,
            "x.sha256+b:0123456789abcdef0123456789abcdef",
            "9a:0123456789abcdef0123456789abcdef",
        ] {
            assert!(contains_image_digest(ok), "{ok}");
        }
        for bad in [
            "sha256:abc",
            "123:0123456789abcdef0123456789abcdef",
            ":0123456789abcdef0123456789abcdef",
        ] {
            assert!(!contains_image_digest(bad), "{bad}");
        }
    }

    // Upstream TestValidateImageManifests "invalid media type".
    #[test]
    fn test_validate_image_manifests_invalid_media_type() {
        let list = list_image(vec![manifest(DIGEST, "foobar", "foo", "bar")]);
        assert_eq!(
            validate_image(&list),
            [FieldError::invalid(
                "dockerImageManifests[0].mediaType",
                "foobar",
                "media type does not conform to RFC6838"
            )]
        );
        assert!(is_media_type(
            " application/vnd.oci.image.manifest.v1+json "
        ));
        assert!(!is_media_type("application/"));
        assert!(!is_media_type("a/b/c"));
    }

    // Upstream TestValidateImageManifests "required architecture".
    #[test]
    fn test_validate_image_manifests_required_architecture() {
        let list = list_image(vec![manifest(DIGEST, "foo/bar", "", "bar")]);
        assert_eq!(
            validate_image(&list),
            [FieldError::required(
                "dockerImageManifests[0].architecture",
                ""
            )]
        );
    }

    // Upstream TestValidateImageManifests "required OS".
    #[test]
    fn test_validate_image_manifests_required_os() {
        let list = list_image(vec![manifest(DIGEST, "foo/bar", "bar", "")]);
        assert_eq!(
            validate_image(&list),
            [FieldError::required("dockerImageManifests[0].os", "")]
        );
    }

    // Upstream TestValidateImageManifests "negative size" (reported on the real field name).
    #[test]
    fn test_validate_image_manifests_negative_size() {
        let mut child = manifest(DIGEST, "foo/bar", "bar", "linux");
        child.manifest_size = -2;
        let errors = validate_image(&list_image(vec![child]));
        assert_eq!(
            errors,
            [FieldError::invalid_rendered(
                "dockerImageManifests[0].manifestSize",
                "-2",
                "manifest size cannot be negative"
            )]
        );
        assert_eq!(
            errors[0].to_string(),
            "dockerImageManifests[0].manifestSize: Invalid value: -2: manifest size cannot be negative"
        );
    }

    #[test]
    fn image_layers_and_manifests_are_exclusive() {
        let mut list = list_image(vec![manifest(DIGEST, "foo/bar", "amd64", "linux")]);
        list.spec.docker_image_layers = vec![ImageLayer::default()];
        assert_eq!(
            kinds_and_fields(&validate_image(&list)),
            [(FieldErrorKind::Invalid, "dockerImageLayers")]
        );
    }

    // --- case 40: TestValidateImageSignature ------------------------------------------------

    fn signature(name: &str, type_: &str, content: &str) -> ImageSignature {
        ImageSignature {
            metadata: meta("", name),
            spec: ImageSignatureFields {
                type_: type_.into(),
                content: ByteString(content.as_bytes().to_vec()),
                ..ImageSignatureFields::default()
            },
        }
    }

    fn condition(type_: &str, status: &str) -> SignatureCondition {
        SignatureCondition {
            type_: type_.into(),
            status: status.into(),
            ..SignatureCondition::default()
        }
    }

    // Upstream TestValidateImageSignature "valid", "valid trusted", "valid untrusted".
    #[test]
    fn test_validate_image_signature_valid() {
        assert_eq!(
            validate_image_signature(&signature("imgname@valid", "valid", "blob")),
            []
        );
        let mut trusted = signature("imgname@trusted", "valid", "blob");
        trusted.spec.conditions = vec![
            condition(SIGNATURE_TRUSTED, "True"),
            condition(SIGNATURE_FOR_IMAGE, "True"),
        ];
        trusted.spec.image_identity = "registry.company.ltd/app/core:v1.2".into();
        assert_eq!(validate_image_signature(&trusted), []);
        let mut untrusted = trusted.clone();
        untrusted.metadata.name = Some("imgname@untrusted".into());
        untrusted.spec.conditions = vec![
            condition(SIGNATURE_TRUSTED, "True"),
            condition(SIGNATURE_FOR_IMAGE, "False"),
            condition(SIGNATURE_TRUSTED, "False"),
        ];
        assert_eq!(validate_image_signature(&untrusted), []);
        // object names in the encoded plain form, or with the OpenShift name annotated
        let plain = names::image_signature(DIGEST, "sig1");
        assert_eq!(
            validate_image_signature(&signature(&plain, "valid", "blob")),
            []
        );
        let mut annotated = signature(&names::image_signature("base", "Sig"), "valid", "blob");
        annotated.metadata.annotations =
            Some(map(&[(names::ANNOTATION_OPENSHIFT_NAME, "base@Sig")]));
        assert_eq!(validate_image_signature(&annotated), []);
    }

    // Upstream TestValidateImageSignature "invalid name and missing type".
    #[test]
    fn test_validate_image_signature_invalid_name_and_missing_type() {
        assert_eq!(
            validate_image_signature(&signature("notype", "", "blob")),
            [
                FieldError::invalid(
                    "metadata.name",
                    "notype",
                    "name must be of format <imageName>@<signatureName>"
                ),
                FieldError::required("type", ""),
            ]
        );
    }

    // Upstream TestValidateImageSignature "missing content".
    #[test]
    fn test_validate_image_signature_missing_content() {
        assert_eq!(
            validate_image_signature(&signature("img@nocontent", "invalid", "")),
            [FieldError::required("content", "")]
        );
    }

    // Upstream TestValidateImageSignature "missing ForImage condition".
    #[test]
    fn test_validate_image_signature_missing_for_image_condition() {
        let mut sig = signature("img@noforimage", "invalid", "blob");
        sig.spec.conditions = vec![condition(SIGNATURE_TRUSTED, "True")];
        sig.spec.image_identity = "registry.company.ltd/app/core:v1.2".into();
        let errors = validate_image_signature(&sig);
        assert_eq!(
            kinds_and_fields(&errors),
            [(FieldErrorKind::Invalid, "conditions")]
        );
        assert_eq!(errors[0].detail, r#"missing "ForImage" condition type"#);
        sig.spec.conditions = vec![condition(SIGNATURE_FOR_IMAGE, "True")];
        sig.spec.image_identity.clear();
        assert_eq!(
            validate_image_signature(&sig)[0].detail,
            r#"missing "Trusted" condition type"#
        );
    }

    // Upstream TestValidateImageSignature "adding labels and anotations".
    #[test]
    fn test_validate_image_signature_adding_labels_and_annotations() {
        let mut sig = signature("img@annotated", "valid", "blob");
        sig.metadata.annotations = Some(map(&[("key", "value")]));
        sig.metadata.labels = Some(map(&[("label", "value")]));
        assert_eq!(
            validate_image_signature(&sig),
            [
                FieldError::forbidden("metadata.labels", "signature labels cannot be set"),
                FieldError::forbidden(
                    "metadata.annotations",
                    "signature annotations cannot be set"
                ),
            ]
        );
    }

    // Upstream TestValidateImageSignature "filled metadata for unknown signature state".
    #[test]
    fn test_validate_image_signature_filled_metadata_for_unknown_signature_state() {
        let mut sig = signature("img@metadatafilled", "invalid", "blob");
        sig.spec.conditions = vec![
            condition(SIGNATURE_TRUSTED, "Unknown"),
            condition(SIGNATURE_FOR_IMAGE, "Unknown"),
        ];
        sig.spec.image_identity = "registry.company.ltd/app/core:v1.2".into();
        sig.spec.signed_claims = map(&[("claim", "value")]);
        sig.spec.issued_by = Some(SignatureIssuer {
            organization: "org".into(),
            ..SignatureIssuer::default()
        });
        sig.spec.issued_to = Some(SignatureSubject {
            public_key_id: "id".into(),
            ..SignatureSubject::default()
        });
        let errors = validate_image_signature(&sig);
        assert_eq!(
            errors,
            [
                FieldError::invalid(
                    "imageIdentity",
                    "registry.company.ltd/app/core:v1.2",
                    UNKNOWN_SIGNATURE_STATE
                ),
                FieldError::invalid_rendered(
                    "signedClaims",
                    r#"{"claim":"value"}"#,
                    UNKNOWN_SIGNATURE_STATE
                ),
                FieldError::invalid_rendered(
                    "issuedBy",
                    r#"{"organization":"org"}"#,
                    UNKNOWN_SIGNATURE_STATE
                ),
                FieldError::invalid_rendered(
                    "issuedTo",
                    r#"{"publicKeyID":"id"}"#,
                    UNKNOWN_SIGNATURE_STATE
                ),
            ]
        );
    }

    #[test]
    fn signatures_embedded_in_images_are_validated_under_their_index() {
        let mut img = image("foo", "a/b");
        img.spec.signatures = vec![signature("img@ok", "t", "c"), signature("bad", "t", "")];
        assert_eq!(
            kinds_and_fields(&validate_image(&img)),
            [
                (FieldErrorKind::Invalid, "signatures[1].metadata.name"),
                (FieldErrorKind::Required, "signatures[1].content"),
            ]
        );
    }

    // --- case 41: TestValidateImageStreamMappingNotOK ---------------------------------------

    fn mapping(name: &str, tag: &str, image: Image) -> ImageStreamMapping {
        ImageStreamMapping {
            metadata: meta("default", name),
            spec: ImageStreamMappingFields {
                image,
                tag: tag.into(),
            },
        }
    }

    // Upstream TestValidateImageStreamMappingNotOK "missing DockerImageRepository" and
    // "missing Name".
    #[test]
    fn test_validate_image_stream_mapping_missing_name() {
        let m = mapping("", "latest", image("foo", "openshift/ruby-19-centos"));
        let errors = validate_image_stream_mapping(&m);
        let found = kinds_and_fields(&errors);
        assert!(
            found.contains(&(FieldErrorKind::Required, "name")),
            "{errors:?}"
        );
        assert!(
            found.contains(&(FieldErrorKind::Required, "dockerImageRepository")),
            "{errors:?}"
        );
    }

    // Upstream TestValidateImageStreamMappingNotOK "missing Tag".
    #[test]
    fn test_validate_image_stream_mapping_missing_tag() {
        let m = mapping("ruby", "", image("foo", "openshift/ruby-19-centos"));
        assert_eq!(
            validate_image_stream_mapping(&m),
            [FieldError::required("tag", "")]
        );
    }

    // Upstream TestValidateImageStreamMappingNotOK "missing image name".
    #[test]
    fn test_validate_image_stream_mapping_missing_image_name() {
        let m = mapping("ruby", "latest", image("", "openshift/ruby-19-centos"));
        assert_eq!(
            validate_image_stream_mapping(&m),
            [FieldError::required(
                "image.metadata.name",
                "name or generateName is required"
            )]
        );
        // the operator defaults an empty reference; a bad one is reported
        let m = mapping("ruby", "latest", image("foo", ""));
        assert_eq!(validate_image_stream_mapping(&m), []);
        let m = mapping(
            "ruby",
            "latest",
            image("foo", "registry/extra/openshift//ruby"),
        );
        assert_eq!(
            kinds_and_fields(&validate_image_stream_mapping(&m)),
            [(FieldErrorKind::Invalid, "image.dockerImageReference")]
        );
    }

    // --- case 43: TestValidateRegistryAllowedForImport --------------------------------------

    // Upstream TestValidateRegistryAllowedForImport.
    #[test]
    fn test_validate_registry_allowed_for_import() {
        let allowed = allowed(&["foo.bar"]);
        assert_eq!(
            validate_registry_allowed_for_import(
                &allowed,
                "spec.images[0].from.name",
                "example.com",
                "443"
            ),
            [FieldError::forbidden(
                "spec.images[0].from.name",
                r#"importing images from registry "example.com:443" is forbidden: registry "example.com:443" not allowed by whitelist: "foo.bar:443""#
            )]
        );
        assert_eq!(
            validate_registry_allowed_for_import(&allowed, "f", "foo.bar", "443"),
            []
        );
    }
}
