//! The validating admission webhook's rules (semantics section 1), as pure functions: each
//! takes the decoded object(s) and returns Kubernetes-style field errors, with upstream's
//! field paths and messages, so a user reading a 422 can act on it.
//!
//! Work in progress: the public API is fixed here first so the webhook can compile against it.

use std::fmt;

use crate::api::{
    Image, ImageSignature, ImageStream, ImageStreamImport, ImageStreamMapping, ImageStreamTag,
    ImageTag,
};
use crate::registry::policy::AllowedRegistries;

/// One field error, as Kubernetes reports them in a 422 Invalid's causes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// What is wrong.
    pub kind: FieldErrorKind,
    /// The JSON path of the field, Kubernetes style (`spec.tags[latest].from.name`).
    pub field: String,
    /// Upstream's explanation; may be empty.
    pub detail: String,
    /// The rejected value as Kubernetes prints it (strings quoted, numbers and booleans bare);
    /// printed only for kinds that show a value. `None` prints as `"null"`.
    pub value: Option<String>,
}

/// Kubernetes' `field.ErrorType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldErrorKind {
    Required,
    Invalid,
    Forbidden,
    NotSupported,
    TooLong,
    Duplicate,
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
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.detail)
    }
}

/// What the rules need besides the objects.
#[derive(Clone, Copy, Debug, Default)]
pub struct ValidationContext<'a> {
    /// `allowedRegistriesForImport`; `None` allows every registry.
    pub allowed_registries: Option<&'a AllowedRegistries>,
}

/// Spec tags of one stream that reference one stream in another namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CrossNamespaceReference {
    /// The namespace of the referenced stream.
    pub namespace: String,
    /// The referenced stream.
    pub stream: String,
    /// The spec tags of the validated stream that reference it, sorted.
    pub tags: Vec<String>,
}

/// ImageStream create.
pub fn validate_image_stream(new: &ImageStream, ctx: &ValidationContext) -> Vec<FieldError> {
    let _ = (new, ctx);
    Vec::new()
}

/// ImageStream update.
pub fn validate_image_stream_update(
    new: &ImageStream,
    old: &ImageStream,
    ctx: &ValidationContext,
) -> Vec<FieldError> {
    let _ = (new, old, ctx);
    Vec::new()
}

/// Distinct (namespace, stream) pairs of new or changed spec tags that reference another
/// namespace (semantics 3.6).
pub fn cross_namespace_references(
    new: &ImageStream,
    old: Option<&ImageStream>,
) -> Vec<CrossNamespaceReference> {
    let _ = (new, old);
    Vec::new()
}

/// The Forbidden errors for a denied cross-namespace reference.
pub fn forbidden_reference_errors(
    reference: &CrossNamespaceReference,
    reason: &str,
) -> Vec<FieldError> {
    let _ = (reference, reason);
    Vec::new()
}

/// ImageStreamTag update.
pub fn validate_image_stream_tag_update(
    new: &ImageStreamTag,
    old: &ImageStreamTag,
) -> Vec<FieldError> {
    let _ = (new, old);
    Vec::new()
}

/// ImageTag update.
pub fn validate_image_tag_update(new: &ImageTag, old: &ImageTag) -> Vec<FieldError> {
    let _ = (new, old);
    Vec::new()
}

/// ImageStreamImport create.
pub fn validate_image_stream_import(isi: &ImageStreamImport) -> Vec<FieldError> {
    let _ = isi;
    Vec::new()
}

/// Image create and update.
pub fn validate_image(image: &Image) -> Vec<FieldError> {
    let _ = image;
    Vec::new()
}

/// ImageSignature create.
pub fn validate_image_signature(sig: &ImageSignature) -> Vec<FieldError> {
    let _ = sig;
    Vec::new()
}

/// ImageStreamMapping create.
pub fn validate_image_stream_mapping(m: &ImageStreamMapping) -> Vec<FieldError> {
    let _ = m;
    Vec::new()
}
