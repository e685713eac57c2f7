//! What a write to an ImageStreamTag or ImageTag does to its stream (semantics 3.7, 7.2, 7.3),
//! without IO. The admission webhook of the tag kinds reads the stream, applies an [`Edit`]
//! here and writes the stream back, retrying on conflicts, as upstream's REST storage does.

use crate::api::image_stream::{ImageStream, TagReference};

/// One write to a tag view.
#[derive(Clone, Debug, PartialEq)]
pub enum Edit {
    /// Create the view: the spec tag is set to `tag` (none: nothing is added).
    Create(Option<TagReference>),
    /// ImageStreamTag update: `tag` replaces the spec tag; none leaves it (an error when the
    /// tag is not a spec tag).
    UpdateStreamTag(Option<TagReference>),
    /// ImageTag update: `spec` replaces the spec tag; none removes only the spec tag.
    UpdateImageTag(Option<TagReference>),
    /// Delete the view: the spec tag and the status history go.
    Delete,
}

/// Why an edit is refused; the webhook answers with [`EditError::code`] and the message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("{kind} \"{name}\" already exists")]
    AlreadyExists { kind: &'static str, name: String },
    #[error(
        "imagestreamtag {tag} is not a spec tag in imagestream {namespace}/{stream}, cannot be updated"
    )]
    NotSpecTag {
        tag: String,
        namespace: String,
        stream: String,
    },
    #[error("{kind} \"{name}\" not found")]
    NotFound { kind: &'static str, name: String },
}

impl EditError {
    /// The HTTP status upstream answers with.
    pub fn code(&self) -> u16 {
        match self {
            EditError::AlreadyExists { .. } => 409,
            EditError::NotSpecTag { .. } => 400,
            EditError::NotFound { .. } => 404,
        }
    }

    /// Stable reason for Events, logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            EditError::AlreadyExists { .. } => "AlreadyExists",
            EditError::NotSpecTag { .. } => "NotSpecTag",
            EditError::NotFound { .. } => "NotFound",
        }
    }
}

/// What an edit changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changed {
    pub spec: bool,
    pub status: bool,
}

/// Applies `edit` of `tag` to `stream` (a new stream when `None` was found: upstream creates
/// it). `kind` names the view in errors (`imagestreamtags`, `imagetags`).
///
/// A create is refused when the tag exists in spec or status: its view exists already (a
/// deviation from upstream, which lets a status-only tag be "created"; update it instead).
pub fn apply(
    stream: &mut ImageStream,
    tag: &str,
    edit: Edit,
    kind: &'static str,
) -> Result<Changed, EditError> {
    let stream_name = stream.metadata.name.clone().unwrap_or_default();
    let view_name = format!("{stream_name}:{tag}");
    let in_spec = stream.spec.tag(tag).is_some();
    let in_status = stream.status.as_ref().and_then(|s| s.tag(tag)).is_some();
    match edit {
        Edit::Create(reference) => {
            if in_spec || in_status {
                return Err(EditError::AlreadyExists {
                    kind,
                    name: view_name,
                });
            }
            Ok(Changed {
                spec: reference.is_some_and(|r| set_spec_tag(stream, tag, r)),
                status: false,
            })
        }
        Edit::UpdateStreamTag(reference) => match reference {
            Some(r) => Ok(Changed {
                spec: set_spec_tag(stream, tag, r),
                status: false,
            }),
            None if in_spec => Ok(Changed::default()),
            None => Err(EditError::NotSpecTag {
                tag: tag.into(),
                namespace: stream.metadata.namespace.clone().unwrap_or_default(),
                stream: stream_name,
            }),
        },
        Edit::UpdateImageTag(reference) => Ok(Changed {
            spec: match reference {
                Some(r) => set_spec_tag(stream, tag, r),
                None => remove_spec_tag(stream, tag),
            },
            status: false,
        }),
        Edit::Delete => {
            if !in_spec && !in_status {
                return Err(EditError::NotFound {
                    kind,
                    name: view_name,
                });
            }
            let spec = remove_spec_tag(stream, tag);
            let status = match stream.status.as_mut() {
                Some(status) => {
                    let before = status.tags.len();
                    status.tags.retain(|t| t.tag != tag);
                    status.tags.len() != before
                }
                None => false,
            };
            Ok(Changed { spec, status })
        }
    }
}

/// Replaces (or adds, keeping name order) the spec tag; the name is forced to `tag`, and the
/// stored generation is kept so the mutating webhook decides it. Returns whether it changed.
fn set_spec_tag(stream: &mut ImageStream, tag: &str, mut reference: TagReference) -> bool {
    reference.name = tag.into();
    let tags = &mut stream.spec.tags;
    match tags.iter_mut().find(|t| t.name == tag) {
        Some(existing) => {
            if reference.generation.is_none() {
                reference.generation = existing.generation;
            }
            if *existing == reference {
                return false;
            }
            *existing = reference;
        }
        None => {
            let at = tags.partition_point(|t| t.name.as_str() < tag);
            tags.insert(at, reference);
        }
    }
    true
}

fn remove_spec_tag(stream: &mut ImageStream, tag: &str) -> bool {
    let before = stream.spec.tags.len();
    stream.spec.tags.retain(|t| t.name != tag);
    stream.spec.tags.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::image_stream::{ImageStreamStatus, NamedTagEventList, TagEvent};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn stream(spec: serde_json::Value, status: &[&str]) -> ImageStream {
        let mut s: ImageStream = serde_json::from_value(json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
            "metadata": {"name": "test", "namespace": "default", "generation": 2},
            "spec": {"tags": spec},
        }))
        .unwrap();
        s.status = Some(ImageStreamStatus {
            tags: status
                .iter()
                .map(|t| NamedTagEventList {
                    tag: (*t).into(),
                    items: vec![TagEvent {
                        created: Time("2026-01-01T00:00:00Z".parse().unwrap()),
                        docker_image_reference: format!("r/{t}"),
                        image: "sha256:abc".into(),
                        generation: 1,
                    }],
                    conditions: vec![],
                })
                .collect(),
            ..ImageStreamStatus::default()
        });
        s
    }

    fn tag_ref(from_kind: &str, from: &str) -> TagReference {
        serde_json::from_value(json!({"name": "", "from": {"kind": from_kind, "name": from}}))
            .unwrap()
    }

    fn spec_names(s: &ImageStream) -> Vec<&str> {
        s.spec.tags.iter().map(|t| t.name.as_str()).collect()
    }

    fn status_names(s: &ImageStream) -> Vec<&str> {
        s.status
            .iter()
            .flat_map(|s| &s.tags)
            .map(|t| t.tag.as_str())
            .collect()
    }

    /// Case 66: deleting `test:latest` removes its spec and status entries, nothing else.
    #[test]
    fn delete_removes_spec_and_status_only_of_that_tag() {
        let mut s = stream(
            json!([
                {"name": "another", "from": {"kind": "ImageStreamTag", "name": "test:foo"}},
                {"name": "latest", "from": {"kind": "ImageStreamTag", "name": "test:bar"}},
            ]),
            &["another", "bar", "foo", "latest"],
        );
        let changed = apply(&mut s, "latest", Edit::Delete, "imagestreamtags").unwrap();
        assert_eq!(
            changed,
            Changed {
                spec: true,
                status: true
            }
        );
        assert_eq!(spec_names(&s), ["another"]);
        assert_eq!(status_names(&s), ["another", "bar", "foo"]);
    }

    /// Case 66: a tag in neither spec nor status is not found.
    #[test]
    fn delete_of_an_absent_tag_is_not_found() {
        let mut s = stream(json!([]), &["other"]);
        let err = apply(&mut s, "latest", Edit::Delete, "imagestreamtags").unwrap_err();
        assert_eq!(err.code(), 404);
        assert_eq!(err.to_string(), "imagestreamtags \"test:latest\" not found");
    }

    /// Case 67: create with `tag: null` succeeds and adds nothing; with a tag it adds it.
    #[test]
    fn create_adds_the_spec_tag_in_order_or_nothing() {
        let mut s = stream(
            json!([{"name": "z", "from": {"kind": "DockerImage", "name": "x"}}]),
            &[],
        );
        assert_eq!(
            apply(&mut s, "tag", Edit::Create(None), "imagestreamtags").unwrap(),
            Changed::default()
        );
        assert_eq!(spec_names(&s), ["z"]);
        let changed = apply(
            &mut s,
            "tag",
            Edit::Create(Some(tag_ref("DockerImage", "nginx:1"))),
            "imagestreamtags",
        )
        .unwrap();
        assert!(changed.spec);
        assert_eq!(spec_names(&s), ["tag", "z"]);
        assert_eq!(s.spec.tag("tag").unwrap().name, "tag");
    }

    /// Upstream answers AlreadyExists for an existing spec tag; so do we for a status-only
    /// tag, whose view exists.
    #[test]
    fn create_of_an_existing_tag_is_already_exists() {
        for (spec, status) in [
            (
                json!([{"name": "tag", "from": {"kind": "DockerImage", "name": "x"}}]),
                vec![],
            ),
            (json!([]), vec!["tag"]),
        ] {
            let mut s = stream(spec, &status);
            let err = apply(
                &mut s,
                "tag",
                Edit::Create(Some(tag_ref("DockerImage", "y"))),
                "imagetags",
            )
            .unwrap_err();
            assert_eq!(err.code(), 409);
            assert_eq!(err.to_string(), "imagetags \"test:tag\" already exists");
        }
    }

    /// Case 68: an update of a tag absent from spec adds it; `tag: null` for such a tag is a
    /// 400 with upstream's message; `tag: null` on a spec tag changes nothing.
    #[test]
    fn stream_tag_update_rules() {
        let mut s = stream(json!([]), &["pushed"]);
        let changed = apply(
            &mut s,
            "tag",
            Edit::UpdateStreamTag(Some(tag_ref("DockerImage", "nginx:1"))),
            "imagestreamtags",
        )
        .unwrap();
        assert!(changed.spec);
        let err = apply(
            &mut s,
            "pushed",
            Edit::UpdateStreamTag(None),
            "imagestreamtags",
        )
        .unwrap_err();
        assert_eq!(err.code(), 400);
        assert_eq!(
            err.to_string(),
            "imagestreamtag pushed is not a spec tag in imagestream default/test, cannot be updated"
        );
        let before = s.clone();
        assert_eq!(
            apply(
                &mut s,
                "tag",
                Edit::UpdateStreamTag(None),
                "imagestreamtags"
            )
            .unwrap(),
            Changed::default()
        );
        assert_eq!(s, before);
    }

    /// Semantics 3.7: an ImageTag update with `spec: null` removes only the spec tag.
    #[test]
    fn image_tag_null_spec_removes_only_the_spec_tag() {
        let mut s = stream(
            json!([{"name": "tag", "from": {"kind": "DockerImage", "name": "x"}}]),
            &["tag"],
        );
        let changed = apply(&mut s, "tag", Edit::UpdateImageTag(None), "imagetags").unwrap();
        assert_eq!(
            changed,
            Changed {
                spec: true,
                status: false
            }
        );
        assert!(spec_names(&s).is_empty());
        assert_eq!(status_names(&s), ["tag"]);
    }

    /// An unchanged tag keeps its stored generation and reports no change, so a write that
    /// repeats the stored tag costs no stream write.
    #[test]
    fn an_identical_tag_is_no_change_and_keeps_its_generation() {
        let mut s = stream(
            json!([{"name": "tag", "generation": 2, "from": {"kind": "DockerImage", "name": "x"}}]),
            &[],
        );
        let changed = apply(
            &mut s,
            "tag",
            Edit::UpdateStreamTag(Some(tag_ref("DockerImage", "x"))),
            "imagestreamtags",
        )
        .unwrap();
        assert_eq!(changed, Changed::default());
        assert_eq!(s.spec.tag("tag").unwrap().generation, Some(2));
    }
}
