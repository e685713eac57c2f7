//! ImageSignature write paths (semantics 7.7): a create attaches the signature to its Image's
//! `signatures`, a delete detaches it.

use kube::core::admission::AdmissionResponse;

use super::review::{self, Request, ReviewError};
use super::tags::Writer;

/// Answers an ImageSignature CREATE.
pub async fn mutate(
    request: &Request,
    writer: Option<&Writer>,
) -> Result<AdmissionResponse, ReviewError> {
    let _ = writer;
    Ok(review::internal_error(request, "not yet"))
}

/// Answers an ImageSignature DELETE.
pub async fn validate_delete(
    request: &Request,
    writer: Option<&Writer>,
) -> Result<AdmissionResponse, ReviewError> {
    let _ = writer;
    Ok(review::internal_error(request, "not yet"))
}
