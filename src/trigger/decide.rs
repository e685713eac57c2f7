//! What a workload's triggers ask for now (library-go `UpdateObjectFromImages`): for each
//! followed trigger whose tag has an image and whose container shows another one, a change;
//! all of a workload's changes go into one JSON patch, so triggers that fire together cause
//! one write (one rollout).

use json_patch::jsonptr::PointerBuf;
use json_patch::{PatchOperation, ReplaceOperation, TestOperation};
use serde_json::Value;

use super::workload::{ContainerRef, Kind, TagKey, Workload};
use super::{Error, TagSource};

/// One container image to set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub container: ContainerRef,
    pub name: String,
    pub from: String,
    pub to: String,
    pub tag: TagKey,
}

/// The changes `workload` needs: empty when every followed tag without an image is skipped
/// and every container already shows its tag's pull spec; the annotation's error when it
/// cannot be followed at all.
pub fn changes(workload: &Workload, tags: &impl TagSource) -> Result<Vec<Change>, Error> {
    let follows = workload.follows.as_ref().map_err(Clone::clone)?;
    Ok(follows
        .iter()
        .filter_map(|f| {
            let to = tags.pull_spec(&f.tag)?;
            (to != f.image).then(|| Change {
                container: f.container,
                name: f.name.clone(),
                from: f.image.clone(),
                to,
                tag: f.tag.clone(),
            })
        })
        .collect())
}

/// The JSON patch that makes `changes` on a workload of `kind`: per container, a test of its
/// name (a list reordered since it was read fails the patch instead of setting the wrong
/// container) and the new image.
pub fn patch(kind: Kind, changes: &[Change]) -> json_patch::Patch {
    let mut operations = Vec::with_capacity(changes.len() * 2);
    for change in changes {
        operations.push(PatchOperation::Test(TestOperation {
            path: field(kind, change.container, "name"),
            value: Value::String(change.name.clone()),
        }));
        operations.push(PatchOperation::Replace(ReplaceOperation {
            path: field(kind, change.container, "image"),
            value: Value::String(change.to.clone()),
        }));
    }
    json_patch::Patch(operations)
}

/// The pointer of `field` of a container of the pod template.
fn field(kind: Kind, container: ContainerRef, field: &str) -> PointerBuf {
    let list = if container.init {
        "initContainers"
    } else {
        "containers"
    };
    let index = container.index.to_string();
    PointerBuf::from_tokens(
        kind.pod_spec_path()
            .split('.')
            .chain([list, index.as_str(), field]),
    )
}
