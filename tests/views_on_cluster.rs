//! The tag and image views (issue 5) with the whole operator (webhooks and controllers) under
//! its own ServiceAccount, against the real apiserver and registry: views kept in step with
//! streams, the ImageStreamTag and ImageTag write paths, `imageMissing`, and views removed
//! with their stream.

mod support;

use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use imagestream_operator::api::image::Image;
use imagestream_operator::api::image_stream::ImageStream;
use imagestream_operator::api::image_stream_image::ImageStreamImage;
use imagestream_operator::api::image_stream_layers::ImageStreamLayers;
use imagestream_operator::api::image_stream_tag::ImageStreamTag;
use imagestream_operator::api::image_tag::ImageTag;
use imagestream_operator::config::ImageImportConfig;
use imagestream_operator::names;
use support::images::{ImageSpec, TestImage};
use support::operator::{Running, items};
use support::registry::{RegistryOptions, TestRegistry};

async fn push(reg: &TestRegistry, repo: &str, tag: &str, seed: u64) -> String {
    let image: TestImage = ImageSpec::single("amd64", seed).build().into();
    reg.client().push(repo, tag, &image).await.expect("push")
}

fn docker_tag(name: &str, from: &str) -> Value {
    json!({"name": name, "from": {"kind": "DockerImage", "name": from},
        "importPolicy": {"insecure": true}})
}

async fn create_stream(api: &Api<ImageStream>, name: &str, tags: Value) {
    let stream: ImageStream = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"tags": tags},
    }))
    .expect("stream");
    api.create(&PostParams::default(), &stream)
        .await
        .expect("create stream");
}

/// Polls `probe` until it returns `Some`, for up to `within`.
async fn eventually<T, F, Fut>(within: Duration, what: &str, probe: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const WAIT: Duration = Duration::from_secs(30);

fn istag_from(istag: &ImageStreamTag) -> Option<&str> {
    istag
        .spec
        .tag
        .as_ref()?
        .from
        .as_ref()
        .map(|f| f.name.as_str())
}

fn spec_from<'a>(stream: &'a ImageStream, tag: &str) -> Option<&'a str> {
    stream.spec.tag(tag)?.from.as_ref().map(|f| f.name.as_str())
}

/// An imported tag gets an ImageStreamTag and an ImageTag with the current image, its Image
/// an ImageStreamImage, the stream an ImageStreamLayers; the stream's labels are on them; a
/// moved tag moves its views and adds an ImageStreamImage.
#[tokio::test]
async fn imported_tags_have_views_in_step() {
    let reg = RegistryOptions::plain().start();
    let d1 = push(&reg, "app", "v1", 901).await;
    let d2 = push(&reg, "app", "v2", 902).await;
    let op = Running::start("views").await;
    let ns = op.namespace.clone();
    let streams = op.streams();
    let istags = Api::<ImageStreamTag>::namespaced(op.admin.clone(), &ns);
    let itags = Api::<ImageTag>::namespaced(op.admin.clone(), &ns);
    let isimages = Api::<ImageStreamImage>::namespaced(op.admin.clone(), &ns);
    let layers = Api::<ImageStreamLayers>::namespaced(op.admin.clone(), &ns);

    create_stream(
        &streams,
        "app",
        json!([docker_tag("latest", &reg.image_ref("app", "v1"))]),
    )
    .await;
    let istag = eventually(WAIT, "istag with the image", || async {
        let v = istags.get_opt("app.latest").await.ok()??;
        let name = v.spec.image.as_ref()?.metadata.name.clone()?;
        (name == d1).then_some(v)
    })
    .await;
    assert_eq!(istag.spec.generation, 1);
    assert_eq!(
        istag_from(&istag),
        Some(reg.image_ref("app", "v1").as_str())
    );
    let image = istag.spec.image.as_ref().expect("image");
    assert!(
        image.spec.docker_image_manifest.is_empty(),
        "manifest stays on the Image"
    );
    assert_eq!(image.spec.docker_image_reference, reg.image_ref("app", &d1));
    assert_eq!(istag.labels().get("app").map(String::as_str), Some("app"));
    assert_eq!(
        istag
            .annotations()
            .get(names::ANNOTATION_OPENSHIFT_NAME)
            .map(String::as_str),
        Some("app:latest")
    );

    let itag = eventually(WAIT, "itag with status", || async {
        let v = itags.get_opt("app.latest").await.ok()??;
        (v.status.as_ref()?.items.len() == 1).then_some(v)
    })
    .await;
    assert_eq!(itag.status.as_ref().expect("status").items[0].image, d1);
    assert!(itag.spec.spec.is_some());

    let isimage = eventually(WAIT, "isimage", || async {
        isimages
            .get_opt(&names::stream_image("app", &d1))
            .await
            .ok()?
    })
    .await;
    assert_eq!(
        isimage.spec.image.metadata.name.as_deref(),
        Some(d1.as_str())
    );

    let l = eventually(WAIT, "layers", || async {
        let v = layers.get_opt("app").await.ok()??;
        v.spec.images.contains_key(&d1).then_some(v)
    })
    .await;
    assert!(!l.spec.images[&d1].image_missing);
    assert!(!l.spec.images[&d1].layers.is_empty());
    for layer in &l.spec.images[&d1].layers {
        assert!(l.spec.blobs.contains_key(layer), "{layer} in blobs");
    }

    // the user moves the tag: views follow, history grows, a second isimage appears
    let mut s = streams.get("app").await.expect("get");
    s.spec.tags =
        serde_json::from_value(json!([docker_tag("latest", &reg.image_ref("app", "v2"))]))
            .expect("tags");
    streams
        .replace("app", &PostParams::default(), &s)
        .await
        .expect("replace");
    let istag = eventually(WAIT, "istag moved", || async {
        let v = istags.get_opt("app.latest").await.ok()??;
        (v.spec.image.as_ref()?.metadata.name.as_deref() == Some(d2.as_str())).then_some(v)
    })
    .await;
    assert_eq!(
        istag_from(&istag),
        Some(reg.image_ref("app", "v2").as_str())
    );
    assert_eq!(istag.spec.generation, 2);
    eventually(WAIT, "second isimage", || async {
        isimages
            .get_opt(&names::stream_image("app", &d2))
            .await
            .ok()?
    })
    .await;
    eventually(WAIT, "itag history of two", || async {
        let v = itags.get_opt("app.latest").await.ok()??;
        (v.status.as_ref()?.items.len() == 2).then_some(())
    })
    .await;

    // the number of views: one istag, one itag, two isimages, one layers
    assert_eq!(
        istags
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len(),
        1
    );
    assert_eq!(
        isimages
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len(),
        2
    );
    op.finish().await;
}

/// Creating an ImageStreamTag creates the stream with that tag (as upstream) and the tag is
/// imported; creating it again is refused; an update changes the stream; deleting it removes
/// spec and status; the views of a deleted stream go.
#[tokio::test]
async fn istag_writes_edit_the_stream() {
    let reg = RegistryOptions::plain().start();
    let d1 = push(&reg, "web", "v1", 911).await;
    let d2 = push(&reg, "web", "v2", 912).await;
    let op = Running::start("istag").await;
    let ns = op.namespace.clone();
    let streams = op.streams();
    let istags = Api::<ImageStreamTag>::namespaced(op.admin.clone(), &ns);
    let itags = Api::<ImageTag>::namespaced(op.admin.clone(), &ns);

    let istag: ImageStreamTag = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStreamTag",
        "metadata": {"name": "web.prod", "annotations": {"team": "blue"}},
        "tag": docker_tag("prod", &reg.image_ref("web", "v1")),
    }))
    .expect("istag");
    let created = istags
        .create(&PostParams::default(), &istag)
        .await
        .expect("create istag");
    // the stored view is the stream's, already with the tag's generation
    assert_eq!(
        created.spec.tag.as_ref().and_then(|t| t.generation),
        Some(1)
    );
    let stream = streams.get("web").await.expect("the stream was created");
    assert_eq!(
        spec_from(&stream, "prod"),
        Some(reg.image_ref("web", "v1").as_str())
    );
    assert_eq!(
        stream.spec.tag("prod").and_then(|t| t.annotations.clone()),
        Some([("team".to_string(), "blue".to_string())].into())
    );
    let imported = eventually(WAIT, "imported", || async {
        let s = streams.get("web").await.ok()?;
        (items(&s, "prod").first()?.image == d1).then_some(s)
    })
    .await;
    assert_eq!(items(&imported, "prod").len(), 1);
    eventually(WAIT, "istag image", || async {
        let v = istags.get_opt("web.prod").await.ok()??;
        (v.spec.image?.metadata.name? == d1).then_some(())
    })
    .await;

    // a second create of the same tag: 409, the stream unchanged
    let err = istags
        .create(&PostParams::default(), &istag)
        .await
        .expect_err("exists");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409),
        "{err:?}"
    );

    // update through the istag: the stream's tag follows and is imported
    let mut current = istags.get("web.prod").await.expect("get");
    if let Some(t) = current.spec.tag.as_mut() {
        t.from.as_mut().expect("from").name = reg.image_ref("web", "v2");
    }
    istags
        .replace("web.prod", &PostParams::default(), &current)
        .await
        .expect("update istag");
    let s = eventually(WAIT, "stream follows the istag", || async {
        let s = streams.get("web").await.ok()?;
        (items(&s, "prod").first()?.image == d2).then_some(s)
    })
    .await;
    assert_eq!(
        spec_from(&s, "prod"),
        Some(reg.image_ref("web", "v2").as_str())
    );
    assert_eq!(items(&s, "prod").len(), 2);

    // a stale update (old resourceVersion) is refused and changes nothing
    let err = istags
        .replace("web.prod", &PostParams::default(), &current)
        .await
        .expect_err("stale");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409),
        "{err:?}"
    );

    // an ImageTag with spec: null removes only the spec tag
    let istag2: ImageStreamTag = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStreamTag",
        "metadata": {"name": "web.dev"},
        "tag": docker_tag("dev", &reg.image_ref("web", "v1")),
    }))
    .expect("istag");
    istags
        .create(&PostParams::default(), &istag2)
        .await
        .expect("create dev");
    eventually(WAIT, "dev imported", || async {
        let s = streams.get("web").await.ok()?;
        (!items(&s, "dev").is_empty()).then_some(())
    })
    .await;
    let mut itag = eventually(WAIT, "itag dev", || async {
        itags.get_opt("web.dev").await.ok()?
    })
    .await;
    itag.spec.spec = None;
    itags
        .replace("web.dev", &PostParams::default(), &itag)
        .await
        .expect("itag spec null");
    let s = streams.get("web").await.expect("get");
    assert!(s.spec.tag("dev").is_none(), "spec tag removed");
    assert_eq!(items(&s, "dev").len(), 1, "history kept");

    // deleting the istag removes spec and status of that tag only
    istags
        .delete("web.prod", &DeleteParams::default())
        .await
        .expect("delete istag");
    let s = streams.get("web").await.expect("get");
    assert!(s.spec.tag("prod").is_none());
    assert!(items(&s, "prod").is_empty());
    assert_eq!(items(&s, "dev").len(), 1);
    eventually(WAIT, "prod's itag gone", || async {
        itags
            .get_opt("web.prod")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    // d2 was only in prod's history: its ImageStreamImage goes, d1's (dev) stays
    let isimages = Api::<ImageStreamImage>::namespaced(op.admin.clone(), &ns);
    eventually(WAIT, "stale isimage removed", || async {
        isimages
            .get_opt(&names::stream_image("web", &d2))
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        isimages
            .get_opt(&names::stream_image("web", &d1))
            .await
            .expect("get")
            .is_some()
    );
    // the views do not come back
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(istags.get_opt("web.prod").await.expect("get").is_none());

    // the stream deleted: all its views go
    streams
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete stream");
    eventually(WAIT, "views of a deleted stream removed", || async {
        let n = istags.list(&ListParams::default()).await.ok()?.items.len()
            + itags.list(&ListParams::default()).await.ok()?.items.len()
            + Api::<ImageStreamImage>::namespaced(op.admin.clone(), &ns)
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .len()
            + Api::<ImageStreamLayers>::namespaced(op.admin.clone(), &ns)
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .len();
        (n == 0).then_some(())
    })
    .await;
    op.finish().await;
}

/// An Image deleted by an admin shows as `imageMissing` within seconds, and recovers when it
/// is created again.
#[tokio::test]
async fn a_deleted_image_is_missing_until_it_comes_back() {
    let reg = RegistryOptions::plain().start();
    let digest = push(&reg, "db", "v1", 921).await;
    let op = Running::start("missing").await;
    let ns = op.namespace.clone();
    let streams = op.streams();
    let layers = Api::<ImageStreamLayers>::namespaced(op.admin.clone(), &ns);
    let images = Api::<Image>::all(op.admin.clone());
    create_stream(
        &streams,
        "db",
        json!([docker_tag("v1", &reg.image_ref("db", "v1"))]),
    )
    .await;
    eventually(WAIT, "layers with the image", || async {
        let v = layers.get_opt("db").await.ok()??;
        (!v.spec.images.get(&digest)?.image_missing).then_some(())
    })
    .await;
    let image = images.get(&names::image(&digest)).await.expect("image");

    images
        .delete(&names::image(&digest), &DeleteParams::default())
        .await
        .expect("delete image");
    let deleted = Instant::now();
    let missing = eventually(Duration::from_secs(10), "imageMissing", || async {
        let v = layers.get_opt("db").await.ok()??;
        v.spec.images.get(&digest)?.image_missing.then_some(v)
    })
    .await;
    println!("imageMissing after {:?}", deleted.elapsed());
    assert!(missing.spec.images[&digest].layers.is_empty());
    assert_eq!(missing.spec.images[&digest].config, None);

    let mut again = image.clone();
    again.metadata = kube::api::ObjectMeta {
        name: image.metadata.name.clone(),
        ..Default::default()
    };
    images
        .create(&PostParams::default(), &again)
        .await
        .expect("recreate image");
    eventually(Duration::from_secs(10), "imageMissing cleared", || async {
        let v = layers.get_opt("db").await.ok()??;
        let entry = v.spec.images.get(&digest)?;
        (!entry.image_missing && !entry.layers.is_empty()).then_some(())
    })
    .await;
    op.finish().await;
}

/// Two writers in a loop: one edits tag `a` through its ImageStreamTag, the other edits tag
/// `b` in the stream (both retrying on conflicts, as clients do). Every acknowledged edit is
/// in the stream at the end, and the views agree with it.
#[tokio::test]
async fn concurrent_edits_of_an_istag_and_its_stream_lose_nothing() {
    let op = Running::start("race").await;
    let ns = op.namespace.clone();
    let streams = op.streams();
    let istags = Api::<ImageStreamTag>::namespaced(op.admin.clone(), &ns);
    // references only: nothing to import, the race is about spec writes
    let reference = |name: &str, from: &str| json!({"name": name, "reference": true, "from": {"kind": "DockerImage", "name": from}});
    create_stream(
        &streams,
        "race",
        json!([
            reference("a", "example.com/a:0"),
            reference("b", "example.com/b:0")
        ]),
    )
    .await;
    eventually(WAIT, "istag a", || async {
        istags.get_opt("race.a").await.ok()?
    })
    .await;

    const ROUNDS: usize = 15;
    let through_istag = {
        let istags = istags.clone();
        async move {
            for i in 1..=ROUNDS {
                loop {
                    let mut v = istags.get("race.a").await.expect("get istag");
                    if let Some(t) = v.spec.tag.as_mut() {
                        t.from.as_mut().expect("from").name = format!("example.com/a:{i}");
                    }
                    match istags.replace("race.a", &PostParams::default(), &v).await {
                        Ok(_) => break,
                        Err(kube::Error::Api(s)) if s.code == 409 => continue,
                        Err(e) => panic!("istag write {i}: {e}"),
                    }
                }
            }
        }
    };
    let through_stream = {
        let streams = streams.clone();
        async move {
            for i in 1..=ROUNDS {
                loop {
                    let mut s = streams.get("race").await.expect("get stream");
                    let tag = s.spec.tags.iter_mut().find(|t| t.name == "b").expect("b");
                    tag.from.as_mut().expect("from").name = format!("example.com/b:{i}");
                    match streams.replace("race", &PostParams::default(), &s).await {
                        Ok(_) => break,
                        Err(kube::Error::Api(s)) if s.code == 409 => continue,
                        Err(e) => panic!("stream write {i}: {e}"),
                    }
                }
            }
        }
    };
    tokio::join!(through_istag, through_stream);

    let last_a = format!("example.com/a:{ROUNDS}");
    let last_b = format!("example.com/b:{ROUNDS}");
    let s = streams.get("race").await.expect("get");
    assert_eq!(
        spec_from(&s, "a"),
        Some(last_a.as_str()),
        "the istag's last edit"
    );
    assert_eq!(
        spec_from(&s, "b"),
        Some(last_b.as_str()),
        "the stream's last edit"
    );
    eventually(WAIT, "views in step", || async {
        let a = istags.get("race.a").await.ok()?;
        let b = istags.get("race.b").await.ok()?;
        (istag_from(&a) == Some(last_a.as_str()) && istag_from(&b) == Some(last_b.as_str()))
            .then_some(())
    })
    .await;
    // and they settle: no ping-pong between the view and the stream (a few writes of
    // resolved references and views may still be on their way)
    let versions = || async {
        (
            istags.get("race.a").await.expect("get").resource_version(),
            streams.get("race").await.expect("get").resource_version(),
        )
    };
    let settled = Instant::now() + Duration::from_secs(15);
    let mut last = versions().await;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = versions().await;
        if now == last {
            break;
        }
        assert!(
            Instant::now() < settled,
            "still changing: {last:?} → {now:?}"
        );
        last = now;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(versions().await, last, "written again after settling");
    op.finish().await;
}

/// Issue 16: ImageStreamImages and ImageStreamLayers are read-only for users (405, as upstream
/// serves them only for GET) while the operator keeps writing them; one deleted comes back.
#[tokio::test]
async fn read_only_views_refuse_user_writes() {
    let reg = RegistryOptions::plain().start();
    let d1 = push(&reg, "app", "v1", 931).await;
    let op = Running::start("views-ro").await;
    let ns = op.namespace.clone();
    create_stream(
        &op.streams(),
        "app",
        json!([docker_tag("v1", &reg.image_ref("app", "v1"))]),
    )
    .await;
    let isimages = Api::<ImageStreamImage>::namespaced(op.admin.clone(), &ns);
    let name = names::stream_image("app", &d1);
    let view = eventually(WAIT, "the ImageStreamImage", || async {
        isimages.get_opt(&name).await.ok().flatten()
    })
    .await;
    let refused = |e: kube::Error| match e {
        kube::Error::Api(s) => {
            assert_eq!(
                (s.code, s.reason.as_str()),
                (405, "MethodNotAllowed"),
                "{s:?}"
            );
            assert!(s.message.contains("are read-only"), "{s:?}");
        }
        e => panic!("{e}"),
    };
    let mut labelled = view.clone();
    labelled.metadata.labels = Some([("mine".to_string(), "x".to_string())].into());
    refused(
        isimages
            .replace(&name, &PostParams::default(), &labelled)
            .await
            .expect_err("an update is refused"),
    );
    let mut other = view.clone();
    other.metadata = kube::api::ObjectMeta {
        name: Some("app.made-up".into()),
        ..Default::default()
    };
    refused(
        isimages
            .create(&PostParams::default(), &other)
            .await
            .expect_err("a create is refused"),
    );
    let layers = Api::<ImageStreamLayers>::namespaced(op.admin.clone(), &ns);
    let mut stream_layers = layers.get("app").await.expect("the ImageStreamLayers");
    stream_layers.metadata.labels = Some([("mine".to_string(), "x".to_string())].into());
    refused(
        layers
            .replace("app", &PostParams::default(), &stream_layers)
            .await
            .expect_err("an update is refused"),
    );
    // a delete passes (garbage collection and namespace deletion need it); the view returns
    isimages
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete");
    eventually(WAIT, "the ImageStreamImage written again", || async {
        isimages
            .get_opt(&name)
            .await
            .ok()
            .flatten()
            .filter(|v| v.uid() != view.uid())
    })
    .await;
    op.finish().await;
}

/// oc-compat.md 3.7: a DELETE of a tag view answers success. The webhook removes the tag from
/// the stream within the request; the operator used to delete the view at once on seeing
/// that, and the apiserver's own delete of it then answered the user 404 (`oc delete istag
/// a b c` reported some as not found). Tag views the stream no longer wants are left for a
/// moment to the user's delete now.
#[tokio::test]
async fn tag_view_deletes_answer_success() {
    let op = Running::start("views-del").await;
    let ns = op.namespace.clone();
    let tags: Vec<String> = (0..48).map(|i| format!("t{i}")).collect();
    let spec: Vec<Value> = tags
        .iter()
        .map(|t| {
            json!({"name": t, "reference": true,
                "from": {"kind": "DockerImage", "name": format!("example.com/app:{t}")}})
        })
        .collect();
    create_stream(&op.streams(), "app", json!(spec)).await;
    let istags = Api::<ImageStreamTag>::namespaced(op.admin.clone(), &ns);
    let itags = Api::<ImageTag>::namespaced(op.admin.clone(), &ns);
    eventually(WAIT, "every tag view", || async {
        let (a, b) = (
            istags.list(&ListParams::default()).await.ok()?,
            itags.list(&ListParams::default()).await.ok()?,
        );
        (a.items.len() == tags.len() && b.items.len() == tags.len()).then_some(())
    })
    .await;
    let mut refused = Vec::new();
    for (i, tag) in tags.iter().enumerate() {
        let name = names::stream_tag("app", tag);
        let deleted = if i % 2 == 0 {
            istags.delete(&name, &DeleteParams::default()).await.err()
        } else {
            itags.delete(&name, &DeleteParams::default()).await.err()
        };
        if let Some(e) = deleted {
            refused.push(format!("{name}: {e}"));
        }
    }
    assert!(refused.is_empty(), "{refused:#?}");
    let stream = op.streams().get("app").await.expect("app");
    assert!(stream.spec.tags.is_empty(), "{:?}", stream.spec);
    eventually(WAIT, "no tag views left", || async {
        let (a, b) = (
            istags.list(&ListParams::default()).await.ok()?,
            itags.list(&ListParams::default()).await.ok()?,
        );
        (a.items.is_empty() && b.items.is_empty()).then_some(())
    })
    .await;
    op.finish().await;
}

/// `ImageImportConfig` `spec.views` turns view kinds off and on under a running operator: the
/// ImageStreamImages and the ImageStreamLayers go, the tag views stay, a tag imported
/// meanwhile gets tag views only, and everything is back once the setting is removed.
/// Cluster-wide configuration, so on a cluster of its own.
#[tokio::test]
async fn view_kinds_turned_off_are_removed_and_come_back() {
    let reg = RegistryOptions::plain().start();
    let d1 = push(&reg, "app", "v1", 931).await;
    let d2 = push(&reg, "app", "v2", 932).await;
    let own = support::cluster::TestCluster::start().await;
    let op = Running::start_following_config(&own, "views-off").await;
    let ns = op.namespace.clone();
    let streams = op.streams();
    let istags = Api::<ImageStreamTag>::namespaced(op.admin.clone(), &ns);
    let itags = Api::<ImageTag>::namespaced(op.admin.clone(), &ns);
    let isimages = Api::<ImageStreamImage>::namespaced(op.admin.clone(), &ns);
    let layers = Api::<ImageStreamLayers>::namespaced(op.admin.clone(), &ns);
    let configs = Api::<ImageImportConfig>::all(op.admin.clone());
    let set_views = |views: Value| {
        let configs = configs.clone();
        async move {
            let config = json!({
                "apiVersion": "operator.imagestream.io/v1alpha1", "kind": "ImageImportConfig",
                "metadata": {"name": "cluster"},
                "spec": {"views": views},
            });
            configs
                .patch(
                    "cluster",
                    &PatchParams::apply("views-test").force(),
                    &Patch::Apply(&config),
                )
                .await
                .expect("apply the ImageImportConfig");
        }
    };

    create_stream(
        &streams,
        "app",
        json!([docker_tag("latest", &reg.image_ref("app", "v1"))]),
    )
    .await;
    let first = names::stream_image("app", &d1);
    eventually(WAIT, "every view of the first image", || async {
        isimages.get_opt(&first).await.ok()??;
        layers.get_opt("app").await.ok()??;
        istags.get_opt("app.latest").await.ok()??;
        itags.get_opt("app.latest").await.ok()?
    })
    .await;

    set_views(json!({"imageStreamImages": false, "imageStreamLayers": false})).await;
    eventually(WAIT, "the ImageStreamImages and Layers removed", || async {
        let gone = isimages.get_opt(&first).await.ok()?.is_none()
            && layers.get_opt("app").await.ok()?.is_none();
        gone.then_some(())
    })
    .await;
    assert!(istags.get_opt("app.latest").await.expect("get").is_some());
    assert!(itags.get_opt("app.latest").await.expect("get").is_some());

    // a tag imported while they are off gets its tag views only
    let mut stream = streams.get("app").await.expect("stream");
    stream.spec.tags.push(
        serde_json::from_value(docker_tag("next", &reg.image_ref("app", "v2"))).expect("tag"),
    );
    streams
        .replace("app", &PostParams::default(), &stream)
        .await
        .expect("add a tag");
    let second = names::stream_image("app", &d2);
    eventually(WAIT, "the new tag's views", || async {
        let v = istags.get_opt("app.next").await.ok()??;
        let image = v.spec.image.as_ref()?.metadata.name.clone()?;
        itags.get_opt("app.next").await.ok()??;
        (image == d2).then_some(())
    })
    .await;
    assert!(
        isimages.get_opt(&second).await.expect("get").is_none(),
        "no ImageStreamImage while they are off"
    );

    set_views(Value::Null).await;
    eventually(WAIT, "every view back", || async {
        isimages.get_opt(&first).await.ok()??;
        isimages.get_opt(&second).await.ok()??;
        layers.get_opt("app").await.ok()?
    })
    .await;
    op.finish().await;
}
