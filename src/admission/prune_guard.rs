//! Users' Image deletes and `imagestreams/status` writes (issue 16 item 3): what
//! `oc adm prune images` does, and what it must not do here ([`crate::prune::guard`] says why).
//!
//! - [`validate_image_delete`]: an Image a stream still uses (its history names it, or a
//!   manifest list it names contains it) is not deleted; the message points at the ImagePruner.
//! - [`mutate_status`]: upstream's status strategy (semantics 2.4): a new history entry written
//!   with generation 0 gets one. (The apiserver itself restores the spec on a status write.)
//! - [`validate_status`]: new pull specs must parse and pass `allowedRegistriesForImport`, the
//!   write must not grow the stream past a LimitRange (Forbidden on `imageStream`, as
//!   upstream), and it must not drop history entries whose Images still exist.
//!
//! The operator's own requests never get here: the webhooks are registered with a match
//! condition leaving out its user, so its status writes (every import) and the pruner's deletes
//! cost nothing; should one arrive anyway it is let through at once.
//!
//! State, on every replica: [`KubeReferences`] follows every stream and Image (of the watched
//! namespace) in the process's caches ([`crate::cache`]) and keeps only the digests each stream's history names and the children of each
//! manifest list ([`crate::prune::guard::References`]), not the objects. Until both watches
//! have listed, deletes are refused with a message saying so. A status write's dropped entries
//! are checked with one GET per distinct digest (exact, and rare).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use futures::future::{self, BoxFuture};
use kube::api::Api;
use kube::core::Status;
use kube::core::admission::{AdmissionResponse, Operation};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tokio::sync::watch;

use super::AdmissionSettings;
use super::image_stream::limit_errors;
use super::limit_ranges::LimitRangeSource;
use super::review::{self, Request, ReviewError};
use super::tags::Writer;
use crate::api::GROUP;
use crate::api::image::Image;
use crate::api::image_stream::ImageStream;
use crate::cache::{Caches, Change};
use crate::import::importer::image_digest;
use crate::prune::guard::{self, Holder, References};
use crate::stream::generation::observe_status_update;
use crate::stream::validation::{self, FieldError, ValidationContext};

const IMAGE: &str = "Image";
const STREAM: &str = "ImageStream";

/// How long a review waits for the indexes after a start before refusing.
const LOAD_WAIT: Duration = Duration::from_secs(5);

/// What the guards read: which stream still uses an Image, and whether an Image exists.
pub trait ReferenceSource: Send + Sync {
    /// `Some(holder)` once the index is loaded (`None` inside: nothing uses the Image); `None`
    /// while it is not.
    fn holder<'a>(&'a self, digest: &'a str) -> BoxFuture<'a, Option<Option<Holder>>>;
    /// Whether Image `digest` exists now.
    fn image_exists<'a>(&'a self, digest: &'a str) -> BoxFuture<'a, Result<bool, kube::Error>>;
}

/// The index of every stream's history and every manifest list, following the process's
/// stream and Image caches. It stops following when dropped.
pub struct KubeReferences {
    client: Client,
    index: Arc<Mutex<References>>,
    ready: watch::Receiver<bool>,
    _tasks: Vec<crate::task::Owned<()>>,
}

impl KubeReferences {
    /// Follows the streams and Images of `caches` (on the current tokio runtime).
    pub fn new(client: Client, caches: &Caches) -> KubeReferences {
        let index = Arc::new(Mutex::new(References::default()));
        let (streams_listed, streams_ready) = watch::channel(false);
        let (images_listed, images_ready) = watch::channel(false);
        let streams_task = {
            let index = index.clone();
            let mut shadow: Option<References> = None;
            caches.streams.follow().for_each(move |change| {
                apply_stream_event(&index, &mut shadow, &change, &streams_listed);
                future::ready(())
            })
        };
        let images_task = {
            let index = index.clone();
            caches.images.follow().for_each(move |change| {
                apply_image_event(&index, &change, &images_listed);
                future::ready(())
            })
        };
        let (ready_tx, ready) = watch::channel(false);
        let ready_task = async move {
            let (mut a, mut b) = (streams_ready, images_ready);
            let listed = a.wait_for(|r| *r).await.is_ok() && b.wait_for(|r| *r).await.is_ok();
            if !listed {
                return;
            }
            ready_tx.send_replace(true);
            // keep the sender alive: receivers see `true` for good
            future::pending::<()>().await;
        };
        KubeReferences {
            client,
            index,
            ready,
            _tasks: vec![
                crate::task::spawn(streams_task),
                crate::task::spawn(images_task),
                crate::task::spawn(ready_task),
            ],
        }
    }
}

/// Applies one stream watch event. A re-list is collected aside (`shadow`) and swapped in
/// when complete, keeping the lists' children.
fn apply_stream_event(
    index: &Mutex<References>,
    shadow: &mut Option<References>,
    event: &Change<ImageStream>,
    listed: &watch::Sender<bool>,
) {
    let mut index = index.lock().unwrap_or_else(PoisonError::into_inner);
    match event {
        watcher::Event::Apply(stream) => index.set_stream(stream),
        watcher::Event::Delete(stream) => index.remove_stream(stream),
        watcher::Event::Init => *shadow = Some(References::default()),
        watcher::Event::InitApply(stream) => {
            if let Some(shadow) = shadow.as_mut() {
                shadow.set_stream(stream);
            }
        }
        watcher::Event::InitDone => {
            if let Some(fresh) = shadow.take() {
                index.replace_streams(fresh);
            }
            listed.send_replace(true);
        }
    }
}

/// Applies one Image watch event (only manifest lists are kept). A re-list re-adds every list;
/// lists deleted meanwhile stay known until their delete event, which only keeps more.
fn apply_image_event(
    index: &Mutex<References>,
    event: &Change<Image>,
    listed: &watch::Sender<bool>,
) {
    let children = |image: &Image| -> Vec<String> {
        image
            .spec
            .docker_image_manifests
            .iter()
            .map(|m| m.digest.clone())
            .collect()
    };
    let mut index = index.lock().unwrap_or_else(PoisonError::into_inner);
    match event {
        watcher::Event::Apply(image) | watcher::Event::InitApply(image) => {
            if let Some(digest) = image_digest(image) {
                index.set_image(&digest, children(image));
            }
        }
        watcher::Event::Delete(image) => {
            if let Some(digest) = image_digest(image) {
                index.remove_image(&digest);
            }
        }
        watcher::Event::InitDone => {
            listed.send_replace(true);
        }
        watcher::Event::Init => {}
    }
}

impl ReferenceSource for KubeReferences {
    fn holder<'a>(&'a self, digest: &'a str) -> BoxFuture<'a, Option<Option<Holder>>> {
        Box::pin(async move {
            let mut ready = self.ready.clone();
            tokio::time::timeout(LOAD_WAIT, ready.wait_for(|r| *r))
                .await
                .ok()?
                .ok()?;
            Some(
                self.index
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .holder(digest),
            )
        })
    }

    fn image_exists<'a>(&'a self, digest: &'a str) -> BoxFuture<'a, Result<bool, kube::Error>> {
        Box::pin(async move {
            Api::<Image>::all(self.client.clone())
                .get_opt(&crate::names::image(digest))
                .await
                .map(|found| found.is_some())
        })
    }
}

/// Judges an Image DELETE.
pub async fn validate_image_delete(
    request: &Request,
    writer: Option<&Writer>,
    references: Option<&dyn ReferenceSource>,
) -> Result<AdmissionResponse, ReviewError> {
    review::expect_kind(request, GROUP, IMAGE)?;
    if request.operation != Operation::Delete || writer.is_some_and(|w| w.is_operator(request)) {
        return Ok(review::allow(request));
    }
    let Some(references) = references else {
        return Ok(review::allow(request));
    };
    let (image, _) = review::decode::<Image>(request.old_object.as_ref(), "oldObject", IMAGE)?;
    let Some(digest) = image_digest(&image) else {
        return Ok(review::allow(request));
    };
    Ok(match references.holder(&digest).await {
        None => refuse(
            request,
            503,
            "ServiceUnavailable",
            "the server is still loading which image streams use which Images; try again"
                .to_string(),
        ),
        Some(None) => review::allow(request),
        Some(Some(holder)) => refuse(
            request,
            403,
            "Forbidden",
            guard::delete_refusal(&image.name_any(), &holder),
        ),
    })
}

fn refuse(request: &Request, code: u16, reason: &str, message: String) -> AdmissionResponse {
    let mut response = AdmissionResponse::from(request);
    response.allowed = false;
    response.result = Status::failure(&message, reason).with_code(code);
    response
}

/// The JSON patch for a user's `imagestreams/status` UPDATE: generations for new entries.
pub fn mutate_status(
    request: &Request,
    writer: Option<&Writer>,
) -> Result<json_patch::Patch, ReviewError> {
    review::expect_kind(request, GROUP, STREAM)?;
    if request.operation != Operation::Update || writer.is_some_and(|w| w.is_operator(request)) {
        return Ok(json_patch::Patch(Vec::new()));
    }
    let (stream, json) = review::decode::<ImageStream>(request.object.as_ref(), "object", STREAM)?;
    let (old, _) = review::decode::<ImageStream>(request.old_object.as_ref(), "oldObject", STREAM)?;
    let Some(mut status) = stream.status else {
        return Ok(json_patch::Patch(Vec::new()));
    };
    let generation = old.metadata.generation.unwrap_or(0);
    if !observe_status_update(&mut status, old.status.as_ref(), &old.spec, generation) {
        return Ok(json_patch::Patch(Vec::new()));
    }
    let status = serde_json::to_value(&status).map_err(|source| ReviewError::Undecodable {
        which: "object",
        kind: STREAM,
        source,
    })?;
    let mut mutated = json.clone();
    match mutated.as_object_mut() {
        Some(map) => {
            map.insert("status".into(), status);
        }
        None => return Err(ReviewError::MissingObject("object")),
    }
    Ok(json_patch::diff(&json, &mutated))
}

/// Judges a user's `imagestreams/status` UPDATE.
pub async fn validate_status(
    request: &Request,
    settings: &AdmissionSettings,
    writer: Option<&Writer>,
    limit_ranges: &dyn LimitRangeSource,
    references: Option<&dyn ReferenceSource>,
) -> Result<AdmissionResponse, ReviewError> {
    review::expect_kind(request, GROUP, STREAM)?;
    if request.operation != Operation::Update || writer.is_some_and(|w| w.is_operator(request)) {
        return Ok(review::allow(request));
    }
    let (mut stream, _) = review::decode::<ImageStream>(request.object.as_ref(), "object", STREAM)?;
    let (old, _) = review::decode::<ImageStream>(request.old_object.as_ref(), "oldObject", STREAM)?;
    if stream.metadata.namespace.is_none() {
        stream.metadata.namespace = request.namespace.clone();
    }
    let ctx = ValidationContext {
        allowed_registries: settings.allowed_registries.as_ref(),
    };
    let mut errors = validation::validate_image_stream_status_update(&stream, &old, &ctx);
    errors.extend(limit_errors(&stream, Some(&old), limit_ranges).await);
    if let Some(references) = references {
        match dropped_images(&stream, &old, references).await {
            Ok(Some(error)) => errors.push(error),
            Ok(None) => {}
            Err(e) => {
                return Ok(review::internal_error(
                    request,
                    &format!("looking up the Images of removed history entries: {e}"),
                ));
            }
        }
    }
    Ok(if errors.is_empty() {
        review::allow(request)
    } else {
        review::invalid(request, GROUP, STREAM, &errors)
    })
}

/// Forbidden on `status.tags[<tag>].items` for the first tag that loses entries whose Images
/// still exist, naming them.
async fn dropped_images(
    stream: &ImageStream,
    old: &ImageStream,
    references: &dyn ReferenceSource,
) -> Result<Option<FieldError>, kube::Error> {
    let dropped = guard::dropped_entries(old.status.as_ref(), stream.status.as_ref());
    for (tag, digests) in dropped {
        let mut existing = Vec::new();
        for digest in digests {
            if references.image_exists(&digest).await? {
                existing.push(digest);
            }
        }
        if !existing.is_empty() {
            return Ok(Some(FieldError::forbidden(
                format!("status.tags[{tag}].items"),
                guard::drop_refusal(&existing),
            )));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::limit_ranges::NoLimitRanges;
    use crate::admission::review::tests::review_body;
    use serde_json::{Value, json};
    use std::collections::BTreeSet;

    fn digest(n: u32) -> String {
        format!("sha256:{n:064x}")
    }

    /// Holders by digest; Images that exist.
    struct Fixed {
        held: Vec<(String, Holder)>,
        existing: BTreeSet<String>,
        loaded: bool,
    }

    impl ReferenceSource for Fixed {
        fn holder<'a>(&'a self, digest: &'a str) -> BoxFuture<'a, Option<Option<Holder>>> {
            let found = self
                .held
                .iter()
                .find(|(d, _)| d == digest)
                .map(|(_, h)| h.clone());
            let loaded = self.loaded;
            Box::pin(async move { loaded.then_some(found) })
        }

        fn image_exists<'a>(&'a self, digest: &'a str) -> BoxFuture<'a, Result<bool, kube::Error>> {
            let exists = self.existing.contains(digest);
            Box::pin(async move { Ok(exists) })
        }
    }

    fn image(n: u32) -> Value {
        json!({"apiVersion": "image.openshift.io/v1", "kind": "Image",
            "metadata": {"name": crate::names::image(&digest(n))},
            "dockerImageReference": format!("r@{}", digest(n))})
    }

    fn stream(generation: i64, spec_generation: i64, history: &[(u32, i64)]) -> Value {
        let items: Vec<_> = history
            .iter()
            .map(|(d, g)| {
                json!({"created": "2026-01-01T00:00:00Z", "generation": g,
                    "dockerImageReference": format!("quay.io/a/b@{}", digest(*d)), "image": digest(*d)})
            })
            .collect();
        json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
            "metadata": {"name": "s", "namespace": "ns", "generation": generation},
            "spec": {"tags": [{"name": "t", "generation": spec_generation,
                "from": {"kind": "DockerImage", "name": "quay.io/a/b:t"}}]},
            "status": {"dockerImageRepository": "", "tags": [{"tag": "t", "items": items}]}})
    }

    fn request(operation: &str, kind: &str, object: Value, old: Value) -> Request {
        let body = review_body(operation, kind, object, old);
        review::parse(&body).unwrap()
    }

    #[tokio::test]
    async fn referenced_images_are_not_deleted() {
        let refs = Fixed {
            held: vec![(
                digest(1),
                Holder {
                    stream: "ns/s".into(),
                    via_list: None,
                },
            )],
            existing: BTreeSet::new(),
            loaded: true,
        };
        let held = request("DELETE", "Image", Value::Null, image(1));
        let answer = validate_image_delete(&held, None, Some(&refs))
            .await
            .unwrap();
        assert!(!answer.allowed);
        assert_eq!(answer.result.code, 403);
        assert!(
            answer.result.message.contains("ImagePruner"),
            "{}",
            answer.result.message
        );
        let free = request("DELETE", "Image", Value::Null, image(2));
        assert!(
            validate_image_delete(&free, None, Some(&refs))
                .await
                .unwrap()
                .allowed
        );
        let loading = Fixed {
            loaded: false,
            ..refs
        };
        let answer = validate_image_delete(&free, None, Some(&loading))
            .await
            .unwrap();
        assert_eq!((answer.allowed, answer.result.code), (false, 503));
    }

    // Semantics 2.4: a new entry written with generation 0 gets S (the tag changed), an entry
    // equal to the stored one gets G.
    #[test]
    fn new_entries_get_generations() {
        let old = stream(7, 5, &[(1, 3)]);
        let new = stream(7, 5, &[(2, 0), (1, 3)]);
        let request = request("UPDATE", "ImageStream", new.clone(), old);
        let patch = mutate_status(&request, None).unwrap();
        let mut out = new;
        json_patch::patch(&mut out, &patch.0).unwrap();
        assert_eq!(out["status"]["tags"][0]["items"][0]["generation"], 5);
        assert_eq!(out["status"]["tags"][0]["items"][1]["generation"], 3);
        let mut same = stream(7, 5, &[(1, 0)]);
        let request =
            super::tests::request("UPDATE", "ImageStream", same.clone(), stream(7, 5, &[]));
        json_patch::patch(&mut same, &mutate_status(&request, None).unwrap().0).unwrap();
        assert_eq!(
            same["status"]["tags"][0]["items"][0]["generation"], 7,
            "no history: G"
        );
    }

    #[tokio::test]
    async fn status_writes_keep_the_history_of_existing_images() {
        let refs = Fixed {
            held: vec![],
            existing: BTreeSet::from([digest(2)]),
            loaded: true,
        };
        let settings = AdmissionSettings::default();
        let old = stream(1, 1, &[(1, 1), (2, 1), (3, 1)]);
        // dropping the dangling entry (its Image is gone) is fine
        let kept = request(
            "UPDATE",
            "ImageStream",
            stream(1, 1, &[(1, 1), (2, 1)]),
            old.clone(),
        );
        let answer = validate_status(&kept, &settings, None, &NoLimitRanges, Some(&refs))
            .await
            .unwrap();
        assert!(answer.allowed, "{:?}", answer.result);
        let dropped = request("UPDATE", "ImageStream", stream(1, 1, &[(1, 1)]), old);
        let answer = validate_status(&dropped, &settings, None, &NoLimitRanges, Some(&refs))
            .await
            .unwrap();
        assert!(!answer.allowed);
        assert_eq!(answer.result.code, 422);
        assert!(
            answer.result.message.contains(&format!(
                "status.tags[t].items: Forbidden: history entries whose Images still exist ({})",
                digest(2)
            )),
            "{}",
            answer.result.message
        );
    }

    /// One LimitRange capping a stream's images.
    struct OneImage;

    impl LimitRangeSource for OneImage {
        fn limit_ranges<'a>(
            &'a self,
            _namespace: &'a str,
        ) -> BoxFuture<'a, Option<Vec<k8s_openapi::api::core::v1::LimitRange>>> {
            let range = serde_json::from_value(json!({
                "metadata": {"name": "l", "namespace": "ns"},
                "spec": {"limits": [{"type": "openshift.io/ImageStream",
                    "max": {"openshift.io/images": "1"}}]},
            }))
            .unwrap();
            Box::pin(async move { Some(vec![range]) })
        }
    }

    // Semantics 2.4: a status write growing the stream past a LimitRange is Forbidden on
    // `imageStream`; one that does not grow it passes.
    #[tokio::test]
    async fn status_writes_respect_limit_ranges() {
        let settings = AdmissionSettings::default();
        let old = stream(1, 1, &[(1, 1)]);
        let grown = request(
            "UPDATE",
            "ImageStream",
            stream(1, 1, &[(2, 1), (1, 1)]),
            old.clone(),
        );
        let answer = validate_status(&grown, &settings, None, &OneImage, None)
            .await
            .unwrap();
        assert!(!answer.allowed);
        assert!(
            answer
                .result
                .message
                .contains("imageStream: Forbidden: requested usage of openshift.io/images exceeds the maximum limit"),
            "{}",
            answer.result.message
        );
        let same = request("UPDATE", "ImageStream", stream(1, 1, &[(1, 1)]), old);
        assert!(
            validate_status(&same, &settings, None, &OneImage, None)
                .await
                .unwrap()
                .allowed
        );
    }
}
