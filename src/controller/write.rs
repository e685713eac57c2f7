//! The one step that writes streams, shared by every controller that does: the imagestream
//! controller's imports, ImageStreamImports, ImageStreamMappings and the pruner. A
//! [`Writer`] creates the Images a status will name (children before the lists that name
//! them; an Image that exists is fine, Images are immutable and the first writer wins), then
//! replaces the status with the resourceVersion it was decided from, so a concurrent write is
//! a conflict, never a lost update. The transitions a status write makes are told as Events
//! on the stream ([`tag_event`]).

use std::collections::HashMap;

use crate::events::{Event, EventType};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};

use crate::api::image::Image;
use crate::api::image_stream::{
    DOCKER_IMAGE_REPOSITORY_CHECK_ANNOTATION, ImageStream, ImageStreamStatus,
};
use crate::import::contract::Failure;
use crate::import::importer::image_digest;
use crate::stream::refusal;
use crate::stream::sync::TagChange;

use super::Metrics;

/// Field manager of the imports' status writes.
pub const MANAGER: &str = "imagestream-operator";

/// Writes streams and Images through the operator's client as one field manager, counting
/// each write.
#[derive(Clone, Copy)]
pub struct Writer<'a> {
    client: &'a Client,
    metrics: &'a Metrics,
    manager: &'static str,
}

impl<'a> Writer<'a> {
    /// Writes as the imports do ([`MANAGER`]).
    pub fn new(client: &'a Client, metrics: &'a Metrics) -> Writer<'a> {
        Writer {
            client,
            metrics,
            manager: MANAGER,
        }
    }

    /// Writes as `manager`.
    pub fn as_manager(self, manager: &'static str) -> Writer<'a> {
        Writer { manager, ..self }
    }

    /// Replaces the stream's status, keeping its resourceVersion: a concurrent write makes
    /// this a conflict, never a lost update.
    pub async fn status(
        &self,
        stream: &ImageStream,
        status: ImageStreamStatus,
    ) -> Result<(), kube::Error> {
        let mut next = stream.clone();
        next.status = Some(status);
        let namespace = stream.namespace().unwrap_or_default();
        Api::<ImageStream>::namespaced(self.client.clone(), &namespace)
            .replace_status(
                &stream.name_any(),
                &PostParams {
                    field_manager: Some(self.manager.into()),
                    ..PostParams::default()
                },
                &next,
            )
            .await?;
        self.metrics.status_write();
        Ok(())
    }

    /// Creates `image` unless it exists (then nothing is changed); manifest and config JSON
    /// are not stored. Returns whether it was created.
    pub async fn image(&self, image: &Image) -> Result<bool, kube::Error> {
        let mut image = image.clone();
        image.spec.docker_image_manifest.clear();
        image.spec.docker_image_config.clear();
        match Api::<Image>::all(self.client.clone())
            .create(&PostParams::default(), &image)
            .await
        {
            Ok(_) => {
                self.metrics.image_created();
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates the Images an import fetched, in order ([`Self::image`]). An Image the
    /// apiserver refuses for what it is ([`refusal`]) is returned by digest with the failure
    /// its tags get, so the rest of the stream is still written; any other error ends the
    /// step, to be retried.
    pub async fn images(
        &self,
        images: Vec<&Image>,
    ) -> Result<HashMap<String, Failure>, kube::Error> {
        let mut refused = HashMap::new();
        for image in images {
            let digest = image_digest(image).unwrap_or_default();
            let outcome = match refusal::too_large(image) {
                Some(refused) => Err(refused),
                None => match self.image(image).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(status))
                        if refusal::image_refused(status.code, &status.message) =>
                    {
                        Err((status.code, status.message))
                    }
                    Err(e) => return Err(e),
                },
            };
            if let Err((code, why)) = outcome {
                tracing::warn!(%digest, code, %why, "Image refused");
                let failure = refusal::refusal(&digest, code, &why);
                refused.insert(digest, failure);
            }
        }
        Ok(refused)
    }

    /// Records that `spec.dockerImageRepository` was imported, as upstream does, with the
    /// `openshift.io/image.dockerRepositoryCheck` annotation: a merge patch of that one key
    /// (the spec is not touched, so the generation does not move, and nothing a user wrote
    /// meanwhile is lost). A stream deleted meanwhile is fine.
    pub async fn repository_checked(
        &self,
        stream: &ImageStream,
        now: &Time,
    ) -> Result<(), kube::Error> {
        let api = Api::<ImageStream>::namespaced(
            self.client.clone(),
            &stream.namespace().unwrap_or_default(),
        );
        let stamp = now.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let patch = serde_json::json!({
            "metadata": {
                "annotations": { (DOCKER_IMAGE_REPOSITORY_CHECK_ANNOTATION): stamp },
            }
        });
        match api
            .patch(
                &stream.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The Event of one tag transition on `stream`; `by` names what made it when that is not
/// the stream's own import (an ImageStreamImport).
pub fn tag_event(stream: &ImageStream, change: &TagChange, by: Option<&str>) -> Event {
    let (type_, reason, note) = match change {
        TagChange::Updated { tag, image } => (
            EventType::Normal,
            "Imported",
            format!("tag {tag} now points at {image}"),
        ),
        TagChange::Failed {
            tag,
            reason,
            message,
        } => (
            EventType::Warning,
            "ImportFailed",
            format!("tag {tag}: {reason}: {message}"),
        ),
        TagChange::Recovered { tag } => (
            EventType::Normal,
            "ImportRecovered",
            format!("tag {tag} imported again after a failure"),
        ),
    };
    let note = match by {
        Some(by) => format!("{note} ({by})"),
        None => note,
    };
    Event {
        type_,
        reason: reason.into(),
        note: Some(truncate(note)),
        action: "Import".into(),
        secondary: Some(super::tag_reference(stream, change.tag())),
    }
}

/// Event notes are limited to 1 kB.
pub fn truncate(mut s: String) -> String {
    if s.len() > 1000 {
        let mut end = 1000;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn stream() -> ImageStream {
        ImageStream {
            metadata: ObjectMeta {
                name: Some("ruby".into()),
                namespace: Some("ns".into()),
                ..ObjectMeta::default()
            },
            ..ImageStream::default()
        }
    }

    /// The Events of the imports and of ImageStreamImports say the same, the latter naming
    /// the request; each names its tag's ImageStreamTag as the related object.
    #[test]
    fn tag_events_name_the_tag_and_what_made_them() {
        let moved = TagChange::Updated {
            tag: "latest".into(),
            image: "sha256:a".into(),
        };
        let event = tag_event(&stream(), &moved, None);
        assert_eq!(event.reason, "Imported");
        assert_eq!(
            event.note.as_deref(),
            Some("tag latest now points at sha256:a")
        );
        let related = event.secondary.expect("the tag");
        assert_eq!(related.name.as_deref(), Some("ruby.latest"));
        assert_eq!(related.kind.as_deref(), Some("ImageStreamTag"));

        let failed = TagChange::Failed {
            tag: "latest".into(),
            reason: "NotFound".into(),
            message: "x".repeat(2000),
        };
        let event = tag_event(&stream(), &failed, Some("ImageStreamImport ruby"));
        assert_eq!(event.type_, EventType::Warning);
        assert_eq!(event.reason, "ImportFailed");
        let note = event.note.expect("note");
        assert_eq!(note.len(), 1000, "cut to an Event's limit");
        assert!(note.starts_with("tag latest: NotFound: xxx"), "{note}");

        let recovered = TagChange::Recovered {
            tag: "latest".into(),
        };
        let event = tag_event(&stream(), &recovered, Some("ImageStreamImport ruby"));
        assert_eq!(event.reason, "ImportRecovered");
        assert_eq!(
            event.note.as_deref(),
            Some("tag latest imported again after a failure (ImageStreamImport ruby)")
        );
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        let s = "é".repeat(600);
        let cut = truncate(s);
        assert!(cut.len() <= 1000);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(truncate("short".into()), "short");
    }
}
