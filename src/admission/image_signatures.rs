//! ImageSignature write paths (semantics 7.7): a create attaches the signature to its Image's
//! `signatures`, a delete detaches it, inside the request as upstream's REST storage does, so a
//! missing Image (404) or a duplicate (409) comes back to the user and nothing is stored.
//!
//! The object names the image and the signature by its encoded name
//! ([`names::image_signature`]), or exactly by the annotations `image.openshift.io/image` and
//! `image.openshift.io/name` (`<image>@<signature>`); those two are the only annotations a
//! signature may carry, as upstream forbids labels and annotations.

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
use crate::stream::validation::FieldError;

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

/// The image and signature of `meta`: its annotations, else its plain name; the object name
/// must be the one [`names::image_signature`] gives them.
pub fn signature_name(meta: &ObjectMeta) -> Result<SignatureName, FieldError> {
    let name = meta.name.clone().unwrap_or_default();
    let annotations = meta.annotations.clone().unwrap_or_default();
    let annotated = annotations
        .get(names::ANNOTATION_OPENSHIFT_NAME)
        .and_then(|n| n.split_once('@'))
        .map(|(i, s)| (i.to_string(), s.to_string()));
    let (image, signature) = match annotated {
        Some((image, signature)) if !image.is_empty() && !signature.is_empty() => {
            (image, signature)
        }
        _ => match names::parse_image_signature(&name) {
            Some((image, signature)) => (image, signature.to_string()),
            None => {
                return Err(FieldError::invalid(
                    "metadata.name",
                    &name,
                    format!(
                        "ImageSignatures must be named <algorithm>.<hex>.<signature>, or carry the annotation {} with <image>@<signature>",
                        names::ANNOTATION_OPENSHIFT_NAME
                    ),
                ));
            }
        },
    };
    if let Some(exact) = annotations.get(names::ANNOTATION_IMAGE)
        && *exact != image
    {
        return Err(FieldError::invalid(
            "metadata.annotations",
            exact,
            format!(
                "{} must name the image of {image}@{signature}",
                names::ANNOTATION_IMAGE
            ),
        ));
    }
    let expected = names::image_signature(&image, &signature);
    if expected != name {
        return Err(FieldError::invalid(
            "metadata.name",
            &name,
            format!("the ImageSignature {image}@{signature} must be named {expected}"),
        ));
    }
    Ok(SignatureName { image, signature })
}

/// Upstream's validation of a new signature (labels and annotations forbidden; the two
/// bookkeeping annotations excepted).
pub fn validation_errors(signature: &ImageSignature) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if signature.spec.type_.is_empty() {
        errors.push(FieldError::required("type", ""));
    }
    if signature.spec.content.0.is_empty() {
        errors.push(FieldError::required("content", ""));
    }
    if signature
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| !l.is_empty())
    {
        errors.push(FieldError::forbidden(
            "metadata.labels",
            "signature labels cannot be set",
        ));
    }
    let foreign = signature
        .metadata
        .annotations
        .iter()
        .flatten()
        .any(|(k, _)| k != names::ANNOTATION_IMAGE && k != names::ANNOTATION_OPENSHIFT_NAME);
    if foreign {
        errors.push(FieldError::forbidden(
            "metadata.annotations",
            "signature annotations cannot be set",
        ));
    }
    errors
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

fn deny(request: &Request, code: u16, reason: &str, message: &str) -> AdmissionResponse {
    let mut response = AdmissionResponse::from(request);
    response.allowed = false;
    response.result = Status::failure(message, reason).with_code(code);
    response
}

/// What happened to the Image.
enum Outcome {
    Written,
    ImageMissing,
    Refused(String),
    Failed(u16, String),
}

/// Reads the Image, applies `change` (an `Err` refuses, `Ok(false)` means nothing to write)
/// and replaces it with its resourceVersion, reading again on conflicts.
async fn edit_image(
    writer: &Writer,
    image: &str,
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
    let name = match signature_name(&signature.metadata) {
        Ok(name) => name,
        Err(e) => return Ok(review::invalid(request, GROUP, KIND, &[e])),
    };
    let errors = validation_errors(&signature);
    if !errors.is_empty() {
        return Ok(review::invalid(request, GROUP, KIND, &errors));
    }
    let stored = cleared(signature);
    if !request.dry_run {
        let outcome = edit_image(writer, &name.image, |image| {
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
    }
    let Ok(mut mutated) = serde_json::to_value(&stored) else {
        return Ok(review::internal_error(
            request,
            "the signature could not be encoded",
        ));
    };
    // the request's metadata as sent, only the cleared fields change
    if let (Some(map), Some(meta)) = (mutated.as_object_mut(), json.get("metadata")) {
        map.insert("metadata".into(), meta.clone());
    }
    Ok(review::allow_patched(
        request,
        json_patch::diff(&json, &mutated),
    ))
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
    match edit_image(writer, &name.image, |image| Ok(detach(image, &name))).await {
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

    fn signature(name: &str, extra: Value) -> ImageSignature {
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
        serde_json::from_value(object).unwrap()
    }

    fn image() -> Image {
        serde_json::from_value(json!({
            "apiVersion": "image.openshift.io/v1", "kind": "Image",
            "metadata": {"name": names::image(&image_name())},
            "dockerImageReference": "r@x",
        }))
        .unwrap()
    }

    #[test]
    fn names_come_from_the_plain_name_or_the_annotation() {
        let plain = names::image_signature(&image_name(), "sig1");
        let s = signature(&plain, json!({}));
        assert_eq!(
            signature_name(&s.metadata).unwrap(),
            SignatureName {
                image: image_name(),
                signature: "sig1".into()
            }
        );
        let odd = names::image_signature(&image_name(), "Sig_1");
        let mut s = signature(&odd, json!({}));
        assert!(
            signature_name(&s.metadata).is_err(),
            "hashed names need the annotation"
        );
        s.metadata.annotations = Some(
            [(
                names::ANNOTATION_OPENSHIFT_NAME.to_string(),
                format!("{}@Sig_1", image_name()),
            )]
            .into(),
        );
        assert_eq!(signature_name(&s.metadata).unwrap().signature, "Sig_1");
        let wrong = signature("sha256.abc.sig", json!({}));
        assert!(signature_name(&wrong.metadata).is_err());
    }

    #[test]
    fn labels_and_foreign_annotations_are_refused_with_upstreams_words() {
        let mut s = signature("x", json!({}));
        s.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
        s.metadata.annotations = Some([("a".to_string(), "b".to_string())].into());
        let messages: Vec<String> = validation_errors(&s)
            .iter()
            .map(FieldError::message)
            .collect();
        assert!(
            messages
                .iter()
                .any(|m| m.contains("signature labels cannot be set"))
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("signature annotations cannot be set"))
        );
        let mut ok = signature("x", json!({}));
        ok.metadata.annotations = Some(
            [(
                names::ANNOTATION_OPENSHIFT_NAME.to_string(),
                "i@s".to_string(),
            )]
            .into(),
        );
        assert!(validation_errors(&ok).is_empty());
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
    }

    #[test]
    fn attach_refuses_the_same_name_or_content_and_detach_removes() {
        let name = SignatureName {
            image: image_name(),
            signature: "s1".into(),
        };
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
        assert!(err.contains("already exists"), "{err}");
        let other = SignatureName {
            signature: "s2".into(),
            ..name.clone()
        };
        let err = attach(&mut img, &other, &s).unwrap_err();
        assert!(err.contains("already exists"), "same content: {err}");
        let mut different = s.clone();
        different.spec.content = ByteString(b"other".to_vec());
        attach(&mut img, &other, &different).unwrap();
        assert!(detach(&mut img, &name));
        assert!(!detach(&mut img, &name));
        assert_eq!(img.spec.signatures.len(), 1);
    }
}
