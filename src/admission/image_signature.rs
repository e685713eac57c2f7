//! ImageSignature write paths (semantics 7.7): a create attaches the signature to its Image's
//! `signatures`, a delete detaches it, inside the request as upstream's REST storage does, so a
//! missing Image (404) or a duplicate (409) comes back to the user and nothing is stored.
//!
//! The object names the image and the signature by its encoded name
//! ([`names::image_signature`]), or exactly by the annotations `image.openshift.io/image` and
//! `image.openshift.io/name` (`<image>@<signature>`); those two are the only annotations a
//! signature may carry, as upstream forbids labels and annotations.
//!
//! A dry-run create reads the Image and answers as a real one would (404, 409), writing
//! nothing; a dry-run delete is allowed unread.

use std::collections::BTreeMap;

use kube::api::{Api, ObjectMeta, PostParams};
use kube::core::Status;
use kube::core::admission::{AdmissionResponse, Operation};
use serde_json::Value;

use super::review::{self, Request, ReviewError};
use super::tags::Writer;
use crate::api::GROUP;
use crate::api::image::Image;
use crate::api::image_signature::ImageSignature;
use crate::names;
use crate::stream::validation::{self, FieldError};

const KIND: &str = "ImageSignature";
/// Attempts at writing the Image before giving up (upstream retries updates the same way).
const ATTEMPTS: usize = 10;
/// Field manager of the Image writes.
pub const MANAGER: &str = "imagestream-operator-signatures";

/// The image (`sha256:…`) and signature name a signature object stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureName {
    pub image: String,
    pub signature: String,
}

impl SignatureName {
    /// Upstream's name, `<image>@<signature>`.
    pub fn openshift_name(&self) -> String {
        format!("{}@{}", self.image, self.signature)
    }
}

/// Upstream's rule for the name of an ImageSignature.
const NAME_FORMAT: &str = "name must be of format <imageName>@<signatureName>";

/// Splits `<image>@<signature>` as upstream's `SplitImageSignatureName`: exactly one `@`,
/// both parts non-empty.
pub fn split_openshift_name(name: &str) -> Option<(&str, &str)> {
    let (image, signature) = name.split_once('@')?;
    (!image.is_empty() && !signature.is_empty() && !signature.contains('@'))
        .then_some((image, signature))
}

/// The image and signature of `meta`: from the annotation `image.openshift.io/name` when set
/// (its image must equal `image.openshift.io/image` when that is set too), else from the
/// plain object name; the object name must be the one [`names::image_signature`] gives them.
pub fn signature_name(meta: &ObjectMeta) -> Result<SignatureName, FieldError> {
    let name = meta.name.as_deref().unwrap_or_default();
    let annotation = |key: &str| meta.annotations.as_ref().and_then(|a| a.get(key));
    let name_field = format!("metadata.annotations[{}]", names::ANNOTATION_OPENSHIFT_NAME);
    let (image, signature) = match annotation(names::ANNOTATION_OPENSHIFT_NAME) {
        Some(full) => match split_openshift_name(full) {
            Some((image, signature)) => (image.to_string(), signature.to_string()),
            None => return Err(FieldError::invalid(&name_field, full, NAME_FORMAT)),
        },
        None => match names::parse_image_signature(name) {
            Some((image, signature)) => (image, signature.to_string()),
            None => {
                return Err(FieldError::invalid(
                    "metadata.name",
                    name,
                    format!(
                        "{NAME_FORMAT}: name the object <algorithm>.<hex>.<signature>, or give that name in the annotation {}",
                        names::ANNOTATION_OPENSHIFT_NAME
                    ),
                ));
            }
        },
    };
    let parsed = SignatureName { image, signature };
    let full = parsed.openshift_name();
    // upstream's ValidatePathSegmentName on `<image>@<signature>` (`.` and `..` have no `@`)
    if let Some(c) = ['/', '%'].into_iter().find(|c| full.contains(*c)) {
        return Err(FieldError::invalid(
            &name_field,
            &full,
            format!("may not contain '{c}'"),
        ));
    }
    if let Some(exact) = annotation(names::ANNOTATION_IMAGE)
        && *exact != parsed.image
    {
        return Err(FieldError::invalid(
            format!("metadata.annotations[{}]", names::ANNOTATION_IMAGE),
            exact,
            format!("must be the image of {full}"),
        ));
    }
    let expected = names::image_signature(&parsed.image, &parsed.signature);
    if expected != name {
        return Err(FieldError::invalid(
            "metadata.name",
            name,
            format!("the ImageSignature {full} must be named {expected}"),
        ));
    }
    Ok(parsed)
}

/// The image and signature a new signature stands for, or every reason to refuse it:
/// upstream's validation (type and content required, labels and annotations forbidden but
/// for the two bookkeeping ones) of the [`cleared`] signature, as upstream validates after
/// clearing, and the name resolution of [`signature_name`].
pub fn admitted(signature: &ImageSignature) -> Result<SignatureName, Vec<FieldError>> {
    let mut errors = validation::validate_image_signature(signature);
    match signature_name(&signature.metadata) {
        Ok(name) if errors.is_empty() => Ok(name),
        Ok(_) => Err(errors),
        Err(error) => {
            // the resolution's error says more about the name than the generic rule
            errors.retain(|e| e.field != "metadata.name");
            errors.insert(0, error);
            Err(errors)
        }
    }
}

/// The signature as the server stores it: the fields the server parses from the content are
/// cleared (upstream's PrepareForCreate).
pub fn cleared(mut signature: ImageSignature) -> ImageSignature {
    let spec = &mut signature.spec;
    spec.conditions.clear();
    spec.image_identity.clear();
    spec.signed_claims = BTreeMap::new();
    spec.created = None;
    spec.issued_by = None;
    spec.issued_to = None;
    signature
}

/// Adds `signature` (named `name`) to the Image's signatures, or says why not: one of the
/// same name or the same type and content exists.
pub fn attach(
    image: &mut Image,
    name: &SignatureName,
    signature: &ImageSignature,
) -> Result<(), String> {
    let full = name.openshift_name();
    let duplicate = image.spec.signatures.iter().any(|s| {
        s.metadata.name.as_deref() == Some(full.as_str())
            || (s.spec.type_ == signature.spec.type_ && s.spec.content == signature.spec.content)
    });
    if duplicate {
        return Err(format!("imageSignatures \"{full}\" already exists"));
    }
    let mut embedded = signature.clone();
    embedded.metadata = ObjectMeta {
        name: Some(full),
        ..ObjectMeta::default()
    };
    image.spec.signatures.push(embedded);
    Ok(())
}

/// Removes the signature `name` from the Image; whether it was there.
pub fn detach(image: &mut Image, name: &SignatureName) -> bool {
    let full = name.openshift_name();
    let before = image.spec.signatures.len();
    image
        .spec
        .signatures
        .retain(|s| s.metadata.name.as_deref() != Some(full.as_str()));
    image.spec.signatures.len() != before
}

/// The JSON patch from the request's object `sent` to `stored`: the cleared fields go, the
/// metadata stays as sent.
pub fn patch(
    sent: &Value,
    stored: &ImageSignature,
) -> Result<json_patch::Patch, serde_json::Error> {
    let mut mutated = serde_json::to_value(stored)?;
    if let (Some(map), Some(meta)) = (mutated.as_object_mut(), sent.get("metadata")) {
        map.insert("metadata".into(), meta.clone());
    }
    Ok(json_patch::diff(sent, &mutated))
}

fn deny(request: &Request, code: u16, reason: &str, message: &str) -> AdmissionResponse {
    let mut response = AdmissionResponse::from(request);
    response.allowed = false;
    response.result = Status::failure(message, reason).with_code(code);
    response
}

/// What happened to the Image.
enum Outcome {
    /// Written, or nothing to write, or (dry run) writable.
    Written,
    ImageMissing,
    Refused(String),
    Failed(u16, String),
}

/// Reads the Image, applies `change` (an `Err` refuses, `Ok(false)` means nothing to write)
/// and replaces it with its resourceVersion, reading again on conflicts. A dry run stops
/// before writing.
async fn edit_image(
    writer: &Writer,
    image: &str,
    dry_run: bool,
    change: impl Fn(&mut Image) -> Result<bool, String>,
) -> Outcome {
    let api = Api::<Image>::all(writer.client().clone());
    let object = names::image(image);
    let params = PostParams {
        field_manager: Some(MANAGER.into()),
        ..PostParams::default()
    };
    for _ in 0..ATTEMPTS {
        let mut current = match api.get_opt(&object).await {
            Ok(Some(i)) => i,
            Ok(None) => return Outcome::ImageMissing,
            Err(e) => return Outcome::Failed(500, format!("reading the image: {e}")),
        };
        match change(&mut current) {
            Err(refusal) => return Outcome::Refused(refusal),
            Ok(false) => return Outcome::Written,
            Ok(true) if dry_run => return Outcome::Written,
            Ok(true) => {}
        }
        match api.replace(&object, &params, &current).await {
            Ok(_) => return Outcome::Written,
            Err(kube::Error::Api(s)) if s.is_conflict() => continue,
            Err(kube::Error::Api(s)) if s.is_not_found() => return Outcome::ImageMissing,
            Err(kube::Error::Api(s)) => {
                return Outcome::Failed(s.code, format!("writing the image: {}", s.message));
            }
            Err(e) => return Outcome::Failed(500, format!("writing the image: {e}")),
        }
    }
    Outcome::Failed(
        504,
        format!("the image {image} kept changing; {ATTEMPTS} attempts failed"),
    )
}

/// Answers an ImageSignature CREATE: validated, server fields cleared, attached to its Image.
pub async fn mutate(
    request: &Request,
    writer: Option<&Writer>,
) -> Result<AdmissionResponse, ReviewError> {
    review::expect_kind(request, GROUP, KIND)?;
    if request.operation != Operation::Create {
        return Ok(review::allow(request));
    }
    let Some(writer) = writer else {
        return Ok(review::internal_error(
            request,
            "this webhook server does not write Images for ImageSignatures",
        ));
    };
    if writer.is_operator(request) {
        return Ok(review::allow(request));
    }
    let (signature, json) =
        review::decode::<ImageSignature>(request.object.as_ref(), "object", KIND)?;
    let stored = cleared(signature);
    let name = match admitted(&stored) {
        Ok(name) => name,
        Err(errors) => return Ok(review::invalid(request, GROUP, KIND, &errors)),
    };
    let outcome = edit_image(writer, &name.image, request.dry_run, |image| {
        attach(image, &name, &stored).map(|()| true)
    })
    .await;
    match outcome {
        Outcome::Written => {}
        Outcome::ImageMissing => {
            let message = format!("images \"{}\" not found", name.image);
            return Ok(deny(request, 404, "NotFound", &message));
        }
        Outcome::Refused(message) => {
            return Ok(deny(request, 409, "AlreadyExists", &message));
        }
        Outcome::Failed(code, message) => {
            return Ok(deny(request, code, "ImageWriteFailed", &message));
        }
    }
    match patch(&json, &stored) {
        Ok(patch) => Ok(review::allow_patched(request, patch)),
        Err(e) => Ok(review::internal_error(
            request,
            &format!("the signature could not be encoded: {e}"),
        )),
    }
}

/// Answers an ImageSignature DELETE: detached from its Image (nothing to do when the Image or
/// the signature is gone).
pub async fn validate_delete(
    request: &Request,
    writer: Option<&Writer>,
) -> Result<AdmissionResponse, ReviewError> {
    review::expect_kind(request, GROUP, KIND)?;
    if request.operation != Operation::Delete {
        return Ok(review::allow(request));
    }
    let Some(writer) = writer else {
        return Ok(review::internal_error(
            request,
            "this webhook server does not write Images for ImageSignatures",
        ));
    };
    if writer.is_operator(request) || request.dry_run {
        return Ok(review::allow(request));
    }
    let (old, _) = review::decode::<Value>(request.old_object.as_ref(), "oldObject", KIND)?;
    let Some(Ok(meta)) = old
        .get("metadata")
        .map(|m| serde_json::from_value::<ObjectMeta>(m.clone()))
    else {
        return Err(ReviewError::MissingObject("oldObject.metadata"));
    };
    let Ok(name) = signature_name(&meta) else {
        return Ok(review::allow(request));
    };
    match edit_image(writer, &name.image, false, |image| Ok(detach(image, &name))).await {
        Outcome::Written | Outcome::ImageMissing | Outcome::Refused(_) => {
            Ok(review::allow(request))
        }
        Outcome::Failed(code, message) => Ok(deny(request, code, "ImageWriteFailed", &message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use serde_json::json;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn image_name() -> String {
        format!("sha256:{HEX}")
    }

    fn sig_name(signature: &str) -> SignatureName {
        SignatureName {
            image: image_name(),
            signature: signature.into(),
        }
    }

    fn object(name: &str, extra: Value) -> Value {
        let mut object = json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageSignature",
            "metadata": {"name": name},
            "type": "AtomicImageV1", "content": "c2lnbmVk",
        });
        if let (Some(o), Some(e)) = (object.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                o.insert(k.clone(), v.clone());
            }
        }
        object
    }

    fn signature(name: &str, extra: Value) -> ImageSignature {
        serde_json::from_value(object(name, extra)).unwrap()
    }

    fn annotated(name: &str, annotations: &[(&str, &str)]) -> ImageSignature {
        let mut s = signature(name, json!({}));
        s.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        s
    }

    fn image() -> Image {
        serde_json::from_value(json!({
            "apiVersion": "image.openshift.io/v1", "kind": "Image",
            "metadata": {"name": names::image(&image_name()), "annotations": {"keep": "me"}},
            "dockerImageReference": format!("example.com/app@{}", image_name()),
        }))
        .unwrap()
    }

    fn messages(errors: &[FieldError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn upstream_names_split_at_exactly_one_at() {
        assert_eq!(split_openshift_name("sha256:a@s"), Some(("sha256:a", "s")));
        for bad in ["", "a", "a@b@c", "@s", "i@"] {
            assert_eq!(split_openshift_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_come_from_the_plain_name() {
        let plain = names::image_signature(&image_name(), "sig1");
        let s = signature(&plain, json!({}));
        assert_eq!(signature_name(&s.metadata).unwrap(), sig_name("sig1"));
        assert_eq!(
            sig_name("sig1").openshift_name(),
            format!("{}@sig1", image_name())
        );
        let odd = names::image_signature(&image_name(), "Sig_1");
        let e = signature_name(&signature(&odd, json!({})).metadata).unwrap_err();
        assert_eq!(e.field, "metadata.name");
        assert!(
            e.message()
                .contains("name must be of format <imageName>@<signatureName>"),
            "hashed names need the annotation: {}",
            e.message()
        );
        let wrong = signature("sha256.abc.sig", json!({}));
        assert!(signature_name(&wrong.metadata).is_err());
    }

    #[test]
    fn names_come_from_the_annotations() {
        let full = format!("{}@Sig_1", image_name());
        let odd = names::image_signature(&image_name(), "Sig_1");
        let s = annotated(&odd, &[(names::ANNOTATION_OPENSHIFT_NAME, &full)]);
        assert_eq!(signature_name(&s.metadata).unwrap(), sig_name("Sig_1"));
        let image = image_name();
        let s = annotated(
            &odd,
            &[
                (names::ANNOTATION_OPENSHIFT_NAME, &full),
                (names::ANNOTATION_IMAGE, &image),
            ],
        );
        assert_eq!(signature_name(&s.metadata).unwrap(), sig_name("Sig_1"));
        // the annotation wins over the plain name, which must then be its encoding
        let plain = names::image_signature(&image_name(), "other");
        let s = annotated(&plain, &[(names::ANNOTATION_OPENSHIFT_NAME, &full)]);
        let e = signature_name(&s.metadata).unwrap_err();
        assert!(
            e.message().contains(&format!("must be named {odd}")),
            "{}",
            e.message()
        );
    }

    #[test]
    fn inconsistent_or_malformed_annotations_are_refused() {
        let plain = names::image_signature(&image_name(), "s");
        let other = format!("sha256:{}", "0".repeat(64));
        let s = annotated(&plain, &[(names::ANNOTATION_IMAGE, &other)]);
        let e = signature_name(&s.metadata).unwrap_err();
        assert_eq!(e.field, "metadata.annotations[image.openshift.io/image]");
        for bad in ["no-at", "a@b@c", "@s", "i@"] {
            let s = annotated(&plain, &[(names::ANNOTATION_OPENSHIFT_NAME, bad)]);
            let e = signature_name(&s.metadata).unwrap_err();
            assert_eq!(
                e.field, "metadata.annotations[image.openshift.io/name]",
                "{bad}"
            );
            assert!(e.message().contains("<imageName>@<signatureName>"), "{bad}");
        }
        let slashed = format!("{}@a/b", image_name());
        let s = annotated(
            &names::image_signature(&image_name(), "a/b"),
            &[(names::ANNOTATION_OPENSHIFT_NAME, &slashed)],
        );
        let e = signature_name(&s.metadata).unwrap_err();
        assert!(
            e.message().contains("may not contain '/'"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn labels_and_foreign_annotations_are_refused_with_upstreams_words() {
        let plain = names::image_signature(&image_name(), "s");
        let mut s = annotated(&plain, &[("a", "b")]);
        s.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
        let errors = admitted(&s).unwrap_err();
        let m = messages(&errors);
        assert!(
            m.iter()
                .any(|m| m == "metadata.labels: Forbidden: signature labels cannot be set"),
            "{m:?}"
        );
        assert!(
            m.iter().any(
                |m| m == "metadata.annotations: Forbidden: signature annotations cannot be set"
            ),
            "{m:?}"
        );
        let full = format!("{}@s", image_name());
        let image = image_name();
        let ok = annotated(
            &plain,
            &[
                (names::ANNOTATION_OPENSHIFT_NAME, &full),
                (names::ANNOTATION_IMAGE, &image),
            ],
        );
        assert_eq!(
            admitted(&ok),
            Ok(sig_name("s")),
            "the bookkeeping annotations are ours"
        );
    }

    #[test]
    fn type_and_content_are_required_and_all_errors_come_together() {
        let plain = names::image_signature(&image_name(), "s");
        let s = signature(&plain, json!({"type": "", "content": ""}));
        let m = messages(&admitted(&s).unwrap_err());
        assert_eq!(m, ["type: Required value", "content: Required value"]);
        let s = signature("x", json!({"type": ""}));
        let errors = admitted(&s).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["metadata.name", "type"], "{:?}", messages(&errors));
    }

    #[test]
    fn validation_judges_the_cleared_signature() {
        // upstream validates after clearing, so client-set server fields never fail it
        let plain = names::image_signature(&image_name(), "s");
        let s = signature(
            &plain,
            json!({"imageIdentity": "me", "conditions": [{"type": "Trusted", "status": "True"}]}),
        );
        assert!(admitted(&s).is_err());
        assert_eq!(admitted(&cleared(s)), Ok(sig_name("s")));
    }

    #[test]
    fn server_fields_are_cleared() {
        let s = signature(
            "x",
            json!({"imageIdentity": "me", "signedClaims": {"a": "b"},
                "created": "2026-01-01T00:00:00Z",
                "conditions": [{"type": "Trusted", "status": "True"}],
                "issuedBy": {"organization": "o"}, "issuedTo": {"publicKeyID": "k"}}),
        );
        let c = cleared(s);
        assert!(c.spec.image_identity.is_empty() && c.spec.signed_claims.is_empty());
        assert!(c.spec.conditions.is_empty() && c.spec.created.is_none());
        assert!(c.spec.issued_by.is_none() && c.spec.issued_to.is_none());
        assert_eq!(c.spec.type_, "AtomicImageV1");
        assert_eq!(c.spec.content.0, b"signed");
    }

    #[test]
    fn the_patch_removes_the_server_fields_and_keeps_the_metadata() {
        let plain = names::image_signature(&image_name(), "s");
        let sent = object(
            &plain,
            json!({"metadata": {"name": plain, "annotations": {names::ANNOTATION_IMAGE: image_name()}},
                "imageIdentity": "me", "signedClaims": {"a": "b"},
                "created": "2026-01-01T00:00:00Z",
                "conditions": [{"type": "Trusted", "status": "True"}],
                "issuedBy": {"organization": "o"}, "issuedTo": {"publicKeyID": "k"}}),
        );
        let stored = cleared(serde_json::from_value(sent.clone()).unwrap());
        let p = patch(&sent, &stored).unwrap();
        let mut applied = sent.clone();
        json_patch::patch(&mut applied, &p).unwrap();
        assert_eq!(
            applied,
            object(&plain, json!({"metadata": sent["metadata"].clone()}))
        );
        let untouched = object(&plain, json!({}));
        let p = patch(
            &untouched,
            &serde_json::from_value(untouched.clone()).unwrap(),
        )
        .unwrap();
        assert!(p.0.is_empty(), "{p:?}");
    }

    #[test]
    fn attach_refuses_the_same_name_or_content() {
        let name = sig_name("s1");
        let s = signature("x", json!({}));
        let mut img = image();
        attach(&mut img, &name, &s).unwrap();
        assert_eq!(
            img.spec.signatures[0].metadata.name.as_deref(),
            Some(format!("{}@s1", image_name()).as_str())
        );
        let err = attach(
            &mut img,
            &name,
            &signature("y", json!({"content": "b3RoZXI="})),
        )
        .unwrap_err();
        assert_eq!(
            err,
            format!("imageSignatures \"{}@s1\" already exists", image_name())
        );
        let err = attach(&mut img, &sig_name("s2"), &s).unwrap_err();
        assert!(err.contains("already exists"), "same content: {err}");
        // the same content under another type is another signature
        let mut retyped = s.clone();
        retyped.spec.type_ = "Other".into();
        attach(&mut img, &sig_name("s3"), &retyped).unwrap();
        let mut different = s.clone();
        different.spec.content = ByteString(b"other".to_vec());
        attach(&mut img, &sig_name("s2"), &different).unwrap();
        assert_eq!(img.spec.signatures.len(), 3);
        assert_eq!(img.metadata.annotations, image().metadata.annotations);
    }

    #[test]
    fn attached_signatures_carry_only_upstreams_name() {
        let full = format!("{}@s1", image_name());
        let image_annotation = image_name();
        let s = annotated(
            "x",
            &[
                (names::ANNOTATION_OPENSHIFT_NAME, &full),
                (names::ANNOTATION_IMAGE, &image_annotation),
            ],
        );
        let mut img = image();
        attach(&mut img, &sig_name("s1"), &s).unwrap();
        let embedded = &img.spec.signatures[0];
        assert_eq!(embedded.metadata.name.as_deref(), Some(full.as_str()));
        assert!(embedded.metadata.annotations.is_none());
        assert_eq!(embedded.spec, s.spec);
        // and they pass the Image's own validation of embedded signatures
        assert_eq!(
            messages(&validation::validate_image(&img)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn detach_removes_by_name_only() {
        let mut img = image();
        attach(&mut img, &sig_name("s1"), &signature("x", json!({}))).unwrap();
        let other = signature("x", json!({"content": "b3RoZXI="}));
        attach(&mut img, &sig_name("s2"), &other).unwrap();
        assert!(detach(&mut img, &sig_name("s1")));
        assert!(!detach(&mut img, &sig_name("s1")));
        assert_eq!(img.spec.signatures.len(), 1);
        assert_eq!(img.spec.signatures[0].spec.content.0, b"other");
        assert_eq!(img.metadata.annotations, image().metadata.annotations);
    }
}
