//! ImageStreamMapping CREATE (mutating). Upstream names a mapping after its stream and applies
//! it inside the request, so it is never stored; here it is a stored request the controller
//! applies moments later, and two mappings of one stream made at the same time (two tags
//! pushed at once) would collide on that name. The stored request gets a name of its own
//! ([`image_stream_mapping::request_name`]: stream, tag and image) with the stream's name in an annotation,
//! where the controller reads it ([`image_stream_mapping::stream_name`]).

use kube::core::admission::Operation;
use serde_json::Value;

use super::review::{self, Request, ReviewError};
use crate::api::GROUP;
use crate::api::image_stream_mapping::ImageStreamMapping;
use crate::names;
use crate::stream::image_stream_mapping;

const KIND: &str = "ImageStreamMapping";

/// The patch naming a new mapping and recording its stream (none for anything else).
pub fn mutate(request: &Request) -> Result<json_patch::Patch, ReviewError> {
    review::expect_kind(request, GROUP, KIND)?;
    if request.operation != Operation::Create {
        return Ok(json_patch::Patch(Vec::new()));
    }
    let (created, json) =
        review::decode::<ImageStreamMapping>(request.object.as_ref(), "object", KIND)?;
    let Some(name) = image_stream_mapping::request_name(&created) else {
        return Ok(json_patch::Patch(Vec::new()));
    };
    let stream = image_stream_mapping::stream_name(&created);
    let mut stored = json.clone();
    if let Some(meta) = stored.get_mut("metadata").and_then(Value::as_object_mut) {
        super::tags::rename(meta, name, [(names::ANNOTATION_STREAM, stream)]);
    }
    Ok(json_patch::diff(&json, &stored))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::review::tests::review_body;
    use serde_json::json;

    const D1: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn patched(object: Value) -> Value {
        let body = review_body("CREATE", KIND, object.clone(), Value::Null);
        let request = review::parse(&body).expect("a request");
        let patch = mutate(&request).expect("judged");
        let mut out = object;
        json_patch::patch(&mut out, &patch).expect("applies");
        out
    }

    #[test]
    fn a_mapping_is_stored_under_its_own_name_with_its_stream() {
        let created = json!({
            "apiVersion": "image.openshift.io/v1", "kind": KIND,
            "metadata": {"name": "ruby", "namespace": "ns"},
            "image": {"metadata": {"name": D1}, "dockerImageReference": format!("r/ruby@{D1}")},
            "tag": "v1",
        });
        let stored = patched(created);
        assert_eq!(
            stored["metadata"]["name"],
            names::image_stream_mapping("ruby", "v1", D1).as_str()
        );
        assert_eq!(
            stored["metadata"]["annotations"],
            json!({names::ANNOTATION_STREAM: "ruby"})
        );
        // applied again (kubectl apply of the stored object): left alone
        assert_eq!(patched(stored.clone()), stored);
    }
}
