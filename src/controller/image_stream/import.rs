//! The import step: the plan's batch through the importer (registry IO), then the Images it
//! fetched created through the shared [`Writer`](super::super::write::Writer) before any
//! status names them. Imports whose Image the apiserver refused for what it is fail with
//! that refusal ([`refusal::fail_refused`]), so the rest of the stream is still written.

use crate::import::contract::BatchResult;
use crate::stream::plan::Plan;
use crate::stream::refusal;

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
    Ok(Some(result))
}
