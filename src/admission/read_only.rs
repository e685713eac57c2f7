//! ImageStreamImages and ImageStreamLayers are read-only (validating, CREATE and UPDATE).
//! Upstream serves them only for GET; here they are stored objects the operator keeps in step
//! with their stream, so a user's write would be overwritten at the next sync or, worse, be
//! read as the truth until then. Writes by anyone but the operator are refused with upstream's
//! 405. Deletes pass: the operator writes the view again, and garbage collection and namespace
//! deletion must be able to remove views.

use kube::core::Status;
use kube::core::admission::{AdmissionResponse, Operation};

use super::review::{self, Request, ReviewError};
use crate::api::GROUP;

const READ_ONLY: [&str; 2] = ["ImageStreamImage", "ImageStreamLayers"];

/// Refuses a create or update of a read-only view unless `operator` (the operator's own user
/// name; `None` when unknown, which refuses everyone) sent it.
pub fn validate(
    request: &Request,
    operator: Option<&str>,
) -> Result<AdmissionResponse, ReviewError> {
    let kind = READ_ONLY
        .into_iter()
        .find(|k| request.kind.group == GROUP && request.kind.kind == *k)
        .ok_or_else(|| ReviewError::UnexpectedKind {
            expected: format!("{GROUP} {}", READ_ONLY.join(" or ")),
            got: format!(
                "{}/{} {}",
                request.kind.group, request.kind.version, request.kind.kind
            ),
        })?;
    let by_operator =
        operator.is_some_and(|o| !o.is_empty() && request.user_info.username.as_deref() == Some(o));
    if by_operator || !matches!(request.operation, Operation::Create | Operation::Update) {
        return Ok(review::allow(request));
    }
    let mut response = AdmissionResponse::from(request);
    response.allowed = false;
    response.result = Status::failure(
        &format!(
            "{}s are read-only: the operator keeps them in step with their image stream",
            kind.to_lowercase()
        ),
        "MethodNotAllowed",
    )
    .with_code(405);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::review::tests::review_body;
    use serde_json::{Value, json};

    fn judged(operation: &str, kind: &str, operator: Option<&str>) -> AdmissionResponse {
        let object = json!({"apiVersion": "image.openshift.io/v1", "kind": kind,
            "metadata": {"name": "ruby", "namespace": "ns"}});
        let body = review_body(operation, kind, object, Value::Null);
        validate(&review::parse(&body).expect("a request"), operator).expect("judged")
    }

    #[test]
    fn only_the_operator_writes_read_only_views() {
        for kind in READ_ONLY {
            for operation in ["CREATE", "UPDATE"] {
                let refused = judged(operation, kind, Some("system:serviceaccount:x:operator"));
                assert!(!refused.allowed, "{kind} {operation}");
                assert_eq!(refused.result.code, 405);
                assert_eq!(refused.result.reason, "MethodNotAllowed");
                assert!(refused.result.message.contains("read-only"));
                assert!(!judged(operation, kind, None).allowed, "unknown operator");
                // review_body's user is alice
                assert!(judged(operation, kind, Some("alice")).allowed);
            }
            assert!(judged("DELETE", kind, Some("someone-else")).allowed);
        }
    }
}
