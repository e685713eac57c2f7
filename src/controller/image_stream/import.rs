//! The import step: the plan's batch through the importer (registry IO), then the Images it
//! fetched created through the shared [`Writer`](super::super::write::Writer) before any
//! status names them. Imports whose Image the apiserver refused for what it is fail with
//! that refusal ([`refusal::fail_refused`]), so the rest of the stream is still written.

use crate::events::{Event, EventType};
use kube::Resource;

use crate::api::image_stream::ImageStream;
use crate::import::contract::{BatchResult, Verification};
use crate::stream::plan::Plan;
use crate::stream::refusal;
use crate::trust::Decision;

use super::super::write::truncate;
use super::super::{Context, Error};
use super::observe::Snapshot;

/// What the registry answered for the plan, with refused Images failed; `None` when the
/// plan asks the registry nothing.
pub(super) async fn import(
    ctx: &Context,
    seen: &Snapshot<'_>,
    plan: &Plan,
) -> Result<Option<BatchResult>, Error> {
    if plan.is_empty() {
        return Ok(None);
    }
    let mut result = ctx.import(&plan.batch(), &seen.keyring, seen.now.0).await;
    let refused = ctx
        .writer()
        .images(result.images_to_create())
        .await
        .map_err(Error::CreateImage)?;
    refusal::fail_refused(&mut result, &refused);
    verified(ctx, &seen.stream, &result.verifications).await;
    Ok(Some(result))
}

/// An Event per verified image, on its tag: `SignatureVerified`, or a Warning
/// `SignatureWarning` (a `Warn` policy failed; the tag moved) or `SignatureRefused` (an
/// `Enforce` policy failed; the tag kept its image, its condition says why).
async fn verified(ctx: &Context, stream: &ImageStream, verifications: &[Verification]) {
    for v in verifications {
        let (type_, reason) = match v.decision {
            Decision::Passed => (EventType::Normal, "SignatureVerified"),
            Decision::Warned => (EventType::Warning, "SignatureWarning"),
            Decision::Refused => (EventType::Warning, "SignatureRefused"),
            Decision::Unverified => continue,
        };
        let policies: Vec<&str> = v.policies.iter().map(|p| p.policy.as_str()).collect();
        let note = match &v.failure {
            Some((reason, message)) => {
                format!("{} ({}): {reason}: {message}", v.image, policies.join(", "))
            }
            None => format!("{} verified by {}", v.image, policies.join(", ")),
        };
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(truncate(note)),
            action: "Verify".into(),
            secondary: Some(super::super::tag_reference(stream, &v.tag)),
        };
        if let Err(e) = ctx.recorder.publish(&event, &stream.object_ref(&())).await {
            tracing::warn!(error = %e, "publishing an event failed");
        }
    }
}
