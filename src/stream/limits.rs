//! LimitRange limits on image streams (semantics 7.8, conformance case 24), decided without
//! IO: a LimitRange item of type `openshift.io/ImageStream` caps the unique images in a
//! stream's status (`openshift.io/images`) and the unique image references in its spec
//! (`openshift.io/image-tags`). A write is refused only when it makes a count exceed its
//! limit and grow, so streams that were over a limit before it was set keep working.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::LimitRange;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::image_stream::{
    ImageStream, ImageStreamStatus, KIND_DOCKER_IMAGE, KIND_IMAGE_STREAM_IMAGE,
    KIND_IMAGE_STREAM_TAG,
};
use crate::reference::DockerImageReference;

use super::history::set_failure_condition;

pub const LIMIT_TYPE_IMAGE_STREAM: &str = "openshift.io/ImageStream";
pub const RESOURCE_IMAGES: &str = "openshift.io/images";
pub const RESOURCE_IMAGE_TAGS: &str = "openshift.io/image-tags";
/// The condition reason of a tag whose import a limit refused.
pub const REASON_LIMIT_EXCEEDED: &str = "LimitExceeded";

/// The tightest limits of a namespace's LimitRanges; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub images: Option<i64>,
    pub image_tags: Option<i64>,
}

impl Limits {
    pub fn from_ranges<'a>(ranges: impl IntoIterator<Item = &'a LimitRange>) -> Limits {
        let mut limits = Limits::default();
        let items = ranges
            .into_iter()
            .filter_map(|r| r.spec.as_ref())
            .flat_map(|s| &s.limits)
            .filter(|l| l.type_ == LIMIT_TYPE_IMAGE_STREAM);
        for item in items {
            let max = |resource: &str| {
                item.max
                    .as_ref()
                    .and_then(|m| m.get(resource))
                    .and_then(|q| quantity(&q.0))
            };
            let tighter = |a: Option<i64>, b: Option<i64>| match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            limits.images = tighter(limits.images, max(RESOURCE_IMAGES));
            limits.image_tags = tighter(limits.image_tags, max(RESOURCE_IMAGE_TAGS));
        }
        limits
    }

    pub fn is_unlimited(&self) -> bool {
        self.images.is_none() && self.image_tags.is_none()
    }
}

/// A count as a Kubernetes quantity writes it: an integer, optionally with a decimal SI or
/// binary suffix. Anything else is no limit (the apiserver validated the object already).
fn quantity(text: &str) -> Option<i64> {
    let text = text.trim();
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let factor: i64 = match &text[digits.len()..] {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => return None,
    };
    digits.parse::<i64>().ok()?.checked_mul(factor)
}

/// What a stream uses: unique image names in its status, unique references in its spec
/// (registry pull specs normalised, as upstream's `GetImageStreamUsage`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub images: i64,
    pub image_tags: i64,
}

pub fn usage(stream: &ImageStream) -> Usage {
    Usage {
        images: status_images(stream.status.as_ref()),
        image_tags: spec_references(stream),
    }
}

/// Unique image names in a status (`openshift.io/images`).
pub fn status_images(status: Option<&ImageStreamStatus>) -> i64 {
    let images: BTreeSet<&str> = status
        .iter()
        .flat_map(|s| &s.tags)
        .flat_map(|t| &t.items)
        .map(|e| e.image.as_str())
        .filter(|i| !i.is_empty())
        .collect();
    count(images.len())
}

fn spec_references(stream: &ImageStream) -> i64 {
    let namespace = stream.metadata.namespace.as_deref().unwrap_or_default();
    let references: BTreeSet<String> = stream
        .spec
        .tags
        .iter()
        .filter_map(|t| t.from.as_ref())
        .filter_map(|from| match from.kind.as_str() {
            KIND_DOCKER_IMAGE => Some(
                DockerImageReference::parse(&from.name)
                    .map(|r| r.docker_client_defaults().exact())
                    .unwrap_or_else(|_| from.name.clone()),
            ),
            KIND_IMAGE_STREAM_TAG | KIND_IMAGE_STREAM_IMAGE => {
                let ns = if from.namespace.is_empty() {
                    namespace
                } else {
                    from.namespace.as_str()
                };
                Some(format!("{ns}/{}", from.name))
            }
            _ => None,
        })
        .collect();
    count(references.len())
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Upstream's message when `next` exceeds a limit it grew past `old`'s usage (`old` is
/// `None` on create); `None` when the write is within the limits. Both resources are named
/// in one message when both are exceeded.
pub fn exceeded(limits: &Limits, next: Usage, old: Option<Usage>) -> Option<String> {
    let over = |resource: &str, max: Option<i64>, used: i64, before: Option<i64>| {
        let max = max?;
        (used > max && before.is_none_or(|b| used > b)).then(|| {
            format!(
                "requested usage of {resource} exceeds the maximum limit per {LIMIT_TYPE_IMAGE_STREAM} ({used} > {max})"
            )
        })
    };
    let messages: Vec<String> = [
        over(
            RESOURCE_IMAGES,
            limits.images,
            next.images,
            old.map(|u| u.images),
        ),
        over(
            RESOURCE_IMAGE_TAGS,
            limits.image_tags,
            next.image_tags,
            old.map(|u| u.image_tags),
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!messages.is_empty()).then(|| messages.join(", "))
}

/// The message when `next` holds more images than `before` and more than `limits.images`.
pub fn images_exceeded(
    limits: &Limits,
    before: Option<&ImageStreamStatus>,
    next: &ImageStreamStatus,
) -> Option<String> {
    let only_images = Limits {
        images: limits.images,
        image_tags: None,
    };
    let images = |status| Usage {
        images: status_images(status),
        image_tags: 0,
    };
    exceeded(&only_images, images(Some(next)), Some(images(before)))
}

/// The status a controller may write under `limits` (semantics 4, "limit exceeded"): `next`
/// when it stays within them, otherwise the stored status with a `LimitExceeded` failure
/// condition on every tag that would have grown. Returns whether the limit refused it.
pub fn guard_status(
    stream: &ImageStream,
    next: ImageStreamStatus,
    limits: &Limits,
    now: Time,
) -> (ImageStreamStatus, bool) {
    let Some(message) = images_exceeded(limits, stream.status.as_ref(), &next) else {
        return (next, false);
    };
    let stored = stream.status.clone().unwrap_or_default();
    let mut kept = stored.clone();
    for tag in &next.tags {
        let grew = stored
            .tag(&tag.tag)
            .is_none_or(|old| old.items.first() != tag.items.first());
        if grew && !tag.items.is_empty() {
            let generation = tag.items[0].generation;
            set_failure_condition(
                &mut kept,
                &tag.tag,
                REASON_LIMIT_EXCEEDED,
                &message,
                generation,
                now.clone(),
            );
        }
    }
    (kept, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::image_stream::{
        ImageStreamSpec, NamedTagEventList, ObjectReference, TagEvent, TagReference,
    };
    use k8s_openapi::api::core::v1::{LimitRangeItem, LimitRangeSpec};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use std::collections::BTreeMap;

    fn range(items: &[(&str, &str, &str)]) -> LimitRange {
        LimitRange {
            spec: Some(LimitRangeSpec {
                limits: items
                    .iter()
                    .map(|(type_, resource, max)| LimitRangeItem {
                        type_: (*type_).into(),
                        max: Some(BTreeMap::from([(
                            (*resource).to_string(),
                            Quantity((*max).into()),
                        )])),
                        ..LimitRangeItem::default()
                    })
                    .collect(),
            }),
            ..LimitRange::default()
        }
    }

    fn event(image: &str) -> TagEvent {
        TagEvent {
            created: Time("2026-11-01T00:00:00Z".parse().unwrap()),
            docker_image_reference: format!("x@{image}"),
            image: image.into(),
            generation: 1,
        }
    }

    fn stream(tags: &[(&str, &str)], status: &[(&str, &[&str])]) -> ImageStream {
        ImageStream {
            metadata: kube::api::ObjectMeta {
                name: Some("s".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: ImageStreamSpec {
                tags: tags
                    .iter()
                    .map(|(name, from)| TagReference {
                        name: (*name).into(),
                        from: Some(ObjectReference {
                            kind: KIND_DOCKER_IMAGE.into(),
                            name: (*from).into(),
                            ..ObjectReference::default()
                        }),
                        ..TagReference::default()
                    })
                    .collect(),
                ..ImageStreamSpec::default()
            },
            status: Some(ImageStreamStatus {
                tags: status
                    .iter()
                    .map(|(tag, images)| NamedTagEventList {
                        tag: (*tag).into(),
                        items: images.iter().map(|i| event(i)).collect(),
                        conditions: vec![],
                    })
                    .collect(),
                ..ImageStreamStatus::default()
            }),
        }
    }

    #[test]
    fn limits_from_ranges_take_the_tightest() {
        let ranges = [
            range(&[
                (LIMIT_TYPE_IMAGE_STREAM, RESOURCE_IMAGES, "5"),
                ("Container", "cpu", "1"),
            ]),
            range(&[
                (LIMIT_TYPE_IMAGE_STREAM, RESOURCE_IMAGES, "2"),
                (LIMIT_TYPE_IMAGE_STREAM, RESOURCE_IMAGE_TAGS, "1k"),
            ]),
        ];
        assert_eq!(
            Limits::from_ranges(&ranges),
            Limits {
                images: Some(2),
                image_tags: Some(1000)
            }
        );
        assert!(Limits::from_ranges(&Vec::<LimitRange>::new()).is_unlimited());
    }

    #[test]
    fn usage_counts_unique_images_and_normalised_references() {
        let s = stream(
            &[
                ("a", "nginx"),
                ("b", "docker.io/library/nginx:latest"),
                ("c", "quay.io/x/y:1"),
            ],
            &[("a", &["i1", "i2"]), ("b", &["i1"])],
        );
        assert_eq!(
            usage(&s),
            Usage {
                images: 2,
                image_tags: 2
            }
        );
    }

    // 10.1 case 24 (TestLimitVerifier): two images over a limit of one; one spec reference
    // over a limit of zero; both in one message; create and update alike, and an update
    // that does not grow an existing excess passes.
    #[test]
    fn test_limit_verifier() {
        let images = Limits {
            images: Some(1),
            image_tags: None,
        };
        let s = stream(&[], &[("a", &["i1"]), ("b", &["i2"])]);
        let message = exceeded(&images, usage(&s), None).expect("over");
        assert_eq!(
            message,
            "requested usage of openshift.io/images exceeds the maximum limit per openshift.io/ImageStream (2 > 1)"
        );
        let before = usage(&stream(&[], &[("a", &["i1"])]));
        assert_eq!(exceeded(&images, usage(&s), Some(before)), Some(message));
        assert_eq!(exceeded(&images, usage(&s), Some(usage(&s))), None);

        let tags = Limits {
            images: None,
            image_tags: Some(0),
        };
        let one_tag = stream(&[("a", "nginx")], &[]);
        assert_eq!(
            exceeded(&tags, usage(&one_tag), None).as_deref(),
            Some(
                "requested usage of openshift.io/image-tags exceeds the maximum limit per openshift.io/ImageStream (1 > 0)"
            )
        );
        let both = Limits {
            images: Some(1),
            image_tags: Some(0),
        };
        let s = stream(&[("a", "nginx")], &[("a", &["i1"]), ("b", &["i2"])]);
        let message = exceeded(&both, usage(&s), None).unwrap();
        assert!(message.contains(RESOURCE_IMAGES) && message.contains(RESOURCE_IMAGE_TAGS));
    }

    // Semantics 4 "limit exceeded": the stored status is kept and the tags that would have
    // grown get the condition; within the limit the next status passes unchanged.
    #[test]
    fn status_over_the_limit_keeps_the_stored_one_with_conditions() {
        let s = stream(&[], &[("a", &["i1"])]);
        let mut next = s.status.clone().unwrap();
        next.tags.push(NamedTagEventList {
            tag: "b".into(),
            items: vec![event("i2")],
            conditions: vec![],
        });
        let limits = Limits {
            images: Some(1),
            image_tags: None,
        };
        let now = Time("2026-11-22T00:00:00Z".parse().unwrap());
        let (kept, refused) = guard_status(&s, next.clone(), &limits, now.clone());
        assert!(refused);
        assert!(kept.tag("b").unwrap().items.is_empty());
        let c = &kept.tag("b").unwrap().conditions[0];
        assert_eq!(c.reason, REASON_LIMIT_EXCEEDED);
        assert!(c.message.contains("(2 > 1)"), "{}", c.message);
        assert_eq!(kept.tag("a"), s.status.as_ref().unwrap().tag("a"));
        let (passed, refused) = guard_status(&s, next.clone(), &Limits::default(), now);
        assert!(!refused);
        assert_eq!(passed, next);
    }
}
