//! The `image.openshift.io/triggers` annotation (library-go `pkg/image/trigger/types.go`,
//! `CalculateAnnotationTriggers`): a JSON list of triggers, read as Go's `encoding/json`
//! reads it. Missing fields are empty, unknown fields are ignored (a `"pause": "false"` seen
//! in the wild is no error, and pauses nothing), a wrongly typed field fails the whole
//! annotation, `null` is no triggers. Two triggers with the same `fieldPath` are an error.
//!
//! What `oc set triggers deploy/web --from-image=app:latest -c web` writes:
//! `[{"from":{"kind":"ImageStreamTag","name":"app:latest"},"fieldPath":"spec.template.spec.containers[?(@.name==\"web\")].image"}]`
//! (`"namespace"` only for another namespace, `"paused":true` with `--manual`).

use serde::{Deserialize, Serialize};

use super::Error;

/// The annotation that carries a workload's triggers.
pub const TRIGGER_ANNOTATION: &str = "image.openshift.io/triggers";

/// The only `from.kind` a trigger follows.
pub const KIND_IMAGE_STREAM_TAG: &str = crate::api::image_stream::KIND_IMAGE_STREAM_TAG;

/// One trigger: the tag it follows and the field it sets (library-go `ObjectFieldTrigger`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectFieldTrigger {
    #[serde(default)]
    pub from: TriggerSource,
    #[serde(default)]
    pub field_path: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

/// What a trigger follows (library-go's `trigger.ObjectReference`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerSource {
    #[serde(default)]
    pub kind: String,
    /// `<stream>:<tag>`.
    #[serde(default)]
    pub name: String,
    /// Empty: the workload's own namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
}

impl TriggerSource {
    /// Whether the controller follows this source: an ImageStreamTag with no apiVersion, as
    /// upstream's trigger cache indexes them (`triggerCacheIndexer`); other sources are kept
    /// in the annotation and ignored.
    pub fn is_followed(&self) -> bool {
        self.kind == KIND_IMAGE_STREAM_TAG && self.api_version.is_empty()
    }
}

/// The triggers of an annotation value, or why it is not one.
pub fn parse(value: &str) -> Result<Vec<ObjectFieldTrigger>, Error> {
    let triggers: Option<Vec<ObjectFieldTrigger>> =
        serde_json::from_str(value).map_err(|e| Error::Annotation(e.to_string()))?;
    let triggers = triggers.unwrap_or_default();
    for (i, a) in triggers.iter().enumerate() {
        if triggers[i + 1..]
            .iter()
            .any(|b| b.field_path == a.field_path)
        {
            return Err(Error::DuplicateFieldPath(a.field_path.clone()));
        }
    }
    Ok(triggers)
}

/// `<stream>:<tag>` as stream and tag (library-go `SplitImageStreamTag`): an empty tag is
/// `latest`; `None` without a colon (upstream never resolves such a name) or a stream.
pub fn split_stream_tag(name: &str) -> Option<(&str, &str)> {
    let (stream, tag) = name.split_once(':')?;
    if stream.is_empty() {
        return None;
    }
    Some((stream, if tag.is_empty() { "latest" } else { tag }))
}
