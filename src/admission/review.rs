//! AdmissionReview in, AdmissionReview out: decoding a request into our typed kinds, and the
//! responses the webhooks give. A request that cannot be read is answered with a denial that
//! says why, never with a dropped connection, so the user sees the cause in the apiserver's
//! error instead of "failed calling webhook".
//!
//! Field errors are reported as the apiserver reports its own validation: code 422, reason
//! `Invalid`, message `<Kind>.<group> "<name>" is invalid: <errors>` and one `StatusCause` per
//! field error. The apiserver prefixes the message with the webhook's name.

use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::core::response::{StatusCause, StatusDetails, StatusSummary};
use kube::core::{DynamicObject, Status};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::stream::validation::{FieldError, invalid_message};

/// A decoded admission request.
pub type Request = AdmissionRequest<DynamicObject>;

/// Why a request could not be judged; [`ReviewError::reason`] is stable.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("the body is not an admission.k8s.io/v1 AdmissionReview: {0}")]
    Malformed(#[source] serde_json::Error),
    #[error("the AdmissionReview carries no request")]
    MissingRequest,
    #[error("this webhook admits {expected}, not {got}")]
    UnexpectedKind { expected: String, got: String },
    #[error("the request carries no {0}")]
    MissingObject(&'static str),
    #[error("the {which} is not a valid {kind}: {source}")]
    Undecodable {
        which: &'static str,
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl ReviewError {
    pub fn reason(&self) -> &'static str {
        match self {
            ReviewError::Malformed(_) => "MalformedReview",
            ReviewError::MissingRequest => "MissingRequest",
            ReviewError::UnexpectedKind { .. } => "UnexpectedKind",
            ReviewError::MissingObject(_) => "MissingObject",
            ReviewError::Undecodable { .. } => "UndecodableObject",
        }
    }
}

/// Reads an AdmissionReview body.
pub fn parse(body: &[u8]) -> Result<Request, ReviewError> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(ReviewError::Malformed)?;
    review.try_into().map_err(|_| ReviewError::MissingRequest)
}

/// Checks the request is for `group`/`kind` (any version the webhook was registered for).
pub fn expect_kind(request: &Request, group: &str, kind: &str) -> Result<(), ReviewError> {
    if request.kind.group == group && request.kind.kind == kind {
        return Ok(());
    }
    Err(ReviewError::UnexpectedKind {
        expected: format!("{group} {kind}"),
        got: format!(
            "{}/{} {}",
            request.kind.group, request.kind.version, request.kind.kind
        ),
    })
}

/// The request's object (`which` = "object") or old object ("oldObject") as JSON and as `K`.
pub fn decode<K: DeserializeOwned>(
    object: Option<&DynamicObject>,
    which: &'static str,
    kind: &'static str,
) -> Result<(K, Value), ReviewError> {
    let object = object.ok_or(ReviewError::MissingObject(which))?;
    let undecodable = |source| ReviewError::Undecodable {
        which,
        kind,
        source,
    };
    let json = serde_json::to_value(object).map_err(undecodable)?;
    let typed = serde_json::from_value(json.clone()).map_err(undecodable)?;
    Ok((typed, json))
}

/// Admits the request unchanged.
pub fn allow(request: &Request) -> AdmissionResponse {
    AdmissionResponse::from(request)
}

/// Admits the request with `patch` applied (an empty patch is no patch).
pub fn allow_patched(request: &Request, patch: json_patch::Patch) -> AdmissionResponse {
    if patch.0.is_empty() {
        return allow(request);
    }
    match AdmissionResponse::from(request).with_patch(patch) {
        Ok(response) => response,
        Err(e) => internal_error(request, &format!("the patch could not be encoded: {e}")),
    }
}

/// Denies the request as the apiserver denies invalid objects (422 Invalid, one cause per
/// field error).
pub fn invalid(
    request: &Request,
    group: &str,
    kind: &str,
    errors: &[FieldError],
) -> AdmissionResponse {
    let mut response = AdmissionResponse::from(request);
    response.allowed = false;
    response.result = invalid_status(group, kind, &request.name, errors);
    response
}

/// The Status of a 422 Invalid for `errors`.
pub fn invalid_status(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> Status {
    let message = invalid_message(group, kind, name, errors);
    Status {
        status: Some(StatusSummary::Failure),
        code: 422,
        message,
        metadata: None,
        reason: "Invalid".into(),
        details: Some(StatusDetails {
            name: name.into(),
            group: group.into(),
            kind: kind.into(),
            uid: String::new(),
            causes: errors
                .iter()
                .map(|e| StatusCause {
                    reason: e.kind.reason().into(),
                    message: e.message(),
                    field: e.field.clone(),
                })
                .collect(),
            retry_after_seconds: 0,
        }),
    }
}

/// Denies a request that could not be judged (400 BadRequest). Without a readable request
/// the response carries no uid; the apiserver then reports the webhook as failed, with this
/// message in its log.
pub fn bad_request(request: Option<&Request>, error: &ReviewError) -> AdmissionResponse {
    let mut response = match request {
        Some(request) => AdmissionResponse::from(request),
        None => AdmissionResponse::invalid(""),
    };
    response.allowed = false;
    response.result = Status::failure(&error.to_string(), "BadRequest").with_code(400);
    response
}

/// Denies the request because the webhook itself failed (500 InternalError).
pub fn internal_error(request: &Request, message: &str) -> AdmissionResponse {
    let mut response = AdmissionResponse::from(request);
    response.allowed = false;
    response.result = Status::failure(message, "InternalError").with_code(500);
    response
}

/// The JSON body answering with `response`.
pub fn to_body(response: AdmissionResponse) -> Vec<u8> {
    // AdmissionReview<DynamicObject> only holds strings, maps and JSON values
    serde_json::to_vec(&response.into_review()).unwrap_or_else(|_| b"{}".to_vec())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::stream::validation::FieldErrorKind;
    use serde_json::json;

    /// An AdmissionReview body for `object`/`old_object` (ImageStreams unless said otherwise).
    pub(crate) fn review_body(
        operation: &str,
        kind: &str,
        object: Value,
        old_object: Value,
    ) -> Vec<u8> {
        let resource = format!("{}s", kind.to_ascii_lowercase());
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "6d9d7a2c-1111-2222-3333-444455556666",
                "kind": {"group": "image.openshift.io", "version": "v1", "kind": kind},
                "resource": {"group": "image.openshift.io", "version": "v1", "resource": resource},
                "name": object.pointer("/metadata/name").cloned().unwrap_or(json!("")),
                "namespace": "ns",
                "operation": operation,
                "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
                "object": object,
                "oldObject": old_object,
                "dryRun": false,
            }
        }))
        .unwrap()
    }

    #[test]
    fn invalid_reads_like_the_apiservers_own() {
        let body = review_body(
            "CREATE",
            "ImageStream",
            json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream", "metadata": {"name": "s"}}),
            Value::Null,
        );
        let request = parse(&body).unwrap();
        let one = FieldError::invalid("spec.tags[a].from.name", "a:b:c", "bad");
        let response = invalid(
            &request,
            "image.openshift.io",
            "ImageStream",
            std::slice::from_ref(&one),
        );
        assert!(!response.allowed);
        assert_eq!(response.uid, "6d9d7a2c-1111-2222-3333-444455556666");
        assert_eq!(response.result.code, 422);
        assert_eq!(response.result.reason, "Invalid");
        assert_eq!(
            response.result.message,
            r#"ImageStream.image.openshift.io "s" is invalid: spec.tags[a].from.name: Invalid value: "a:b:c": bad"#
        );
        let causes = &response.result.details.as_ref().unwrap().causes;
        assert_eq!(causes[0].reason, FieldErrorKind::Invalid.reason());
        assert_eq!(causes[0].field, "spec.tags[a].from.name");

        let two = FieldError::required("spec.x", "");
        let response = invalid(&request, "g", "K", &[one.clone(), two, one]);
        assert!(response.result.message.ends_with(
            r#"is invalid: [spec.tags[a].from.name: Invalid value: "a:b:c": bad, spec.x: Required value]"#
        ), "{}", response.result.message);
        let out: Value = serde_json::from_slice(&to_body(response)).unwrap();
        assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(out["kind"], "AdmissionReview");
        assert_eq!(out["response"]["status"]["code"], 422);
    }

    #[test]
    fn unreadable_requests_are_explained() {
        let err = parse(b"not json").unwrap_err();
        assert_eq!(err.reason(), "MalformedReview");
        let response = bad_request(None, &err);
        assert!(!response.allowed);
        assert_eq!(response.result.code, 400);
        assert!(
            response
                .result
                .message
                .contains("not an admission.k8s.io/v1 AdmissionReview")
        );

        let err =
            parse(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#).unwrap_err();
        assert_eq!(err.reason(), "MissingRequest");

        let body = review_body(
            "CREATE",
            "Image",
            json!({"metadata": {"name": "x"}}),
            Value::Null,
        );
        let request = parse(&body).unwrap();
        let err = expect_kind(&request, "image.openshift.io", "ImageStream").unwrap_err();
        assert_eq!(
            err.to_string(),
            "this webhook admits image.openshift.io ImageStream, not image.openshift.io/v1 Image"
        );
        let response = bad_request(Some(&request), &err);
        assert_eq!(response.uid, request.uid);
        let err = decode::<crate::api::ImageStream>(
            request.old_object.as_ref(),
            "oldObject",
            "ImageStream",
        )
        .unwrap_err();
        assert_eq!(err.reason(), "MissingObject");
    }
}
