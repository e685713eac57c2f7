//! The oc tier: OpenShift's own `oc` 4.20 (`../shared/tools/oc/oc`) against the harness
//! cluster and the whole operator, every command typed as a user types it, as cluster admin
//! and as a user bound to the `edit` role (`deploy/user-roles.yaml` aggregated into it). Exit
//! codes and the lines oc prints are asserted, and the stream is read back for what oc did.
//!
//! `oc tag` writes an ImageStreamTag named `<stream>:<tag>`; the operator stores a new one
//! under its encoded name and answers 405 for an existing one, on which oc edits the
//! ImageStream. `oc tag -d` sends a DELETE of `<stream>:<tag>`, which the apiserver answers
//! 404 before any webhook: for cluster admins it fails (they delete `istag <stream>.<tag>`
//! instead); the `edit` role may not delete ImageStreamTags, so oc's fallback edits the stream.

mod support;

use std::time::{Duration, Instant};

use kube::api::{Api, PostParams};
use serde_json::json;

use imagestream_operator::api::image_stream::ImageStream;
use imagestream_operator::api::image_stream_tag::ImageStreamTag;
use support::cluster;
use support::images::{ImageSpec, TestImage};
use support::oc::{self, Oc};
use support::operator::{Running, items};
use support::registry::{RegistryOptions, TestRegistry};

const WAIT: Duration = Duration::from_secs(30);

async fn push(reg: &TestRegistry, repo: &str, tag: &str, seed: u64) -> String {
    let image: TestImage = ImageSpec::single("amd64", seed).build().into();
    reg.client().push(repo, tag, &image).await.expect("push")
}

/// The stream once `done` holds for it.
async fn stream_when(
    op: &Running,
    name: &str,
    what: &str,
    done: impl Fn(&ImageStream) -> bool,
) -> ImageStream {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(Some(stream)) = op.streams().get_opt(name).await
            && done(&stream)
        {
            return stream;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: not within {WAIT:?}: {what}: {:#?}",
            op.streams().get_opt(name).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn current(stream: &ImageStream, tag: &str) -> Option<String> {
    items(stream, tag).first().map(|e| e.image.clone())
}

fn from_of(stream: &ImageStream, tag: &str) -> Option<(String, String)> {
    let from = stream.spec.tag(tag)?.from.as_ref()?;
    Some((from.kind.clone(), from.name.clone()))
}

/// The images the tests tag: `demo/hello:{v1,v2,latest}` and `demo/tools:1.0`.
struct Images {
    v1: String,
    v2: String,
    registry: String,
}

async fn images(reg: &TestRegistry) -> Images {
    let v1 = push(reg, "demo/hello", "v1", 1601).await;
    let v2 = push(reg, "demo/hello", "v2", 1602).await;
    push(reg, "demo/hello", "latest", 1603).await;
    push(reg, "demo/tools", "1.0", 1604).await;
    Images {
        v1,
        v2,
        registry: reg.addr().to_string(),
    }
}

/// Every form of `oc tag` (and `oc create imagestreamtag`) as `oc`'s user; `-d` is left to
/// the callers, whose answers differ.
async fn tag_every_form(op: &Running, oc: &Oc, img: &Images) {
    let reg = &img.registry;
    let ns = op.namespace.as_str();

    // a new stream from a registry
    let out = oc
        .ok(&[
            "tag",
            &format!("{reg}/demo/hello:v1"),
            "hello:v1",
            "--insecure",
        ])
        .await;
    assert_eq!(out, format!("Tag hello:v1 set to {reg}/demo/hello:v1.\n"));
    let stream = stream_when(op, "hello", "v1 imported", |s| {
        current(s, "v1").as_deref() == Some(img.v1.as_str())
    })
    .await;
    let v1 = stream.spec.tag("v1").expect("spec tag v1");
    assert!(v1.import_policy.insecure, "{v1:?}");
    // the view was stored under the encoded name, the OpenShift name in an annotation
    let istag = Api::<ImageStreamTag>::namespaced(op.admin.clone(), ns)
        .get("hello.v1")
        .await
        .expect("istag hello.v1");
    assert_eq!(
        istag.metadata.annotations.as_ref().unwrap()["image.openshift.io/name"],
        "hello:v1"
    );

    // a new tag on the stream
    let out = oc
        .ok(&[
            "tag",
            &format!("{reg}/demo/hello:v2"),
            "hello:v2",
            "--insecure",
        ])
        .await;
    assert_eq!(out, format!("Tag hello:v2 set to {reg}/demo/hello:v2.\n"));
    stream_when(op, "hello", "v2 imported", |s| {
        current(s, "v2").as_deref() == Some(img.v2.as_str())
    })
    .await;

    // another tag of the stream: resolved by oc to the image, an ImageStreamImage source
    let out = oc.ok(&["tag", "hello:v1", "hello:alias"]).await;
    assert_eq!(out, format!("Tag hello:alias set to hello@{}.\n", img.v1));
    let stream = stream_when(op, "hello", "alias resolved", |s| {
        current(s, "alias").as_deref() == Some(img.v1.as_str())
    })
    .await;
    assert_eq!(
        from_of(&stream, "alias"),
        Some(("ImageStreamImage".into(), format!("hello@{}", img.v1)))
    );

    // --alias: a tag that tracks another
    let out = oc.ok(&["tag", "--alias", "hello:v2", "hello:al2"]).await;
    assert_eq!(out, "Tag hello:al2 set up to track hello:v2.\n");
    let stream = stream_when(op, "hello", "al2 follows v2", |s| {
        current(s, "al2").as_deref() == Some(img.v2.as_str())
    })
    .await;
    assert_eq!(
        from_of(&stream, "al2"),
        Some(("ImageStreamTag".into(), "hello:v2".into()))
    );

    // --scheduled
    let out = oc
        .ok(&[
            "tag",
            "--scheduled",
            &format!("{reg}/demo/hello:latest"),
            "hello:sched",
            "--insecure",
        ])
        .await;
    assert_eq!(
        out,
        format!("Tag hello:sched set to import {reg}/demo/hello:latest periodically.\n")
    );
    let stream = stream_when(op, "hello", "sched imported", |s| {
        current(s, "sched").is_some()
    })
    .await;
    let sched = stream.spec.tag("sched").expect("spec tag sched");
    assert!(
        sched.import_policy.scheduled && sched.import_policy.insecure,
        "{sched:?}"
    );

    // overwrite an existing tag: the create is answered 405 and oc edits the stream; the
    // history gets the new image, and the tag that tracks it follows
    let out = oc.ok(&["tag", "hello:v1", "hello:v2"]).await;
    assert_eq!(out, format!("Tag hello:v2 set to hello@{}.\n", img.v1));
    let stream = stream_when(op, "hello", "v2 moved to v1's image, al2 with it", |s| {
        current(s, "v2").as_deref() == Some(img.v1.as_str())
            && current(s, "al2").as_deref() == Some(img.v1.as_str())
    })
    .await;
    let history: Vec<&str> = items(&stream, "v2")
        .iter()
        .map(|e| e.image.as_str())
        .collect();
    assert_eq!(history, [img.v1.as_str(), img.v2.as_str()]);

    // an @sha256 source
    let out = oc
        .ok(&["tag", &format!("hello@{}", img.v2), "hello:pinned"])
        .await;
    assert_eq!(out, format!("Tag hello:pinned set to hello@{}.\n", img.v2));
    stream_when(op, "hello", "pinned resolved", |s| {
        current(s, "pinned").as_deref() == Some(img.v2.as_str())
    })
    .await;

    // another stream that exists, and a new one
    oc.ok(&[
        "tag",
        &format!("{reg}/demo/tools:1.0"),
        "tools:1.0",
        "--insecure",
    ])
    .await;
    stream_when(op, "tools", "1.0 imported", |s| current(s, "1.0").is_some()).await;
    let out = oc.ok(&["tag", "hello:v1", "tools:hello"]).await;
    assert_eq!(out, format!("Tag tools:hello set to hello@{}.\n", img.v1));
    stream_when(op, "tools", "tools:hello resolved", |s| {
        current(s, "hello").as_deref() == Some(img.v1.as_str())
    })
    .await;
    let out = oc.ok(&["tag", "hello:v1", "fresh:v1", "fresh:v1b"]).await;
    assert_eq!(
        out,
        format!(
            "Tag fresh:v1 set to hello@{0}.\nTag fresh:v1b set to hello@{0}.\n",
            img.v1
        )
    );
    stream_when(op, "fresh", "fresh:v1 and v1b resolved", |s| {
        current(s, "v1").as_deref() == Some(img.v1.as_str())
            && current(s, "v1b").as_deref() == Some(img.v1.as_str())
    })
    .await;

    // oc create imagestreamtag, new and existing
    let out = oc
        .ok(&[
            "create",
            "imagestreamtag",
            "hello:created",
            &format!("--from-image={reg}/demo/hello:v2"),
            "--insecure",
        ])
        .await;
    assert_eq!(
        out,
        "imagestreamtag.image.openshift.io/hello.created created\n"
    );
    stream_when(op, "hello", "created imported", |s| {
        current(s, "created").as_deref() == Some(img.v2.as_str())
    })
    .await;
    let out = oc
        .fails(&[
            "create",
            "imagestreamtag",
            "hello:v1",
            &format!("--from-image={reg}/demo/hello:v2"),
        ])
        .await;
    assert!(
        out.stderr.contains("(MethodNotAllowed)")
            && out
                .stderr
                .contains("imagestreamtags \"hello:v1\" already exists"),
        "{out}"
    );
    let stream = op.streams().get("hello").await.expect("hello");
    assert_eq!(current(&stream, "v1").as_deref(), Some(img.v1.as_str()));

    // and what oc shows of it all
    let out = oc.ok(&["describe", "is", "hello"]).await;
    for line in ["v2 (al2)", "sched", "pinned", "created"] {
        assert!(out.contains(line), "{line:?} in {out}");
    }
}

/// Cluster admins: every form works; `oc tag -d` cannot (the apiserver answers the DELETE of
/// `hello:alias` with 404 before the operator sees it), `oc delete istag hello.alias` does it.
#[tokio::test]
async fn oc_tag_every_form_as_cluster_admin() {
    let reg = RegistryOptions::plain().start();
    let img = images(&reg).await;
    let op = Running::start("oc-admin").await;
    let oc = Oc::admin(cluster::cluster().await, &op.namespace);
    tag_every_form(&op, &oc, &img).await;

    let out = oc.fails(&["tag", "-d", "hello:alias"]).await;
    assert_eq!(
        out.stderr,
        "Error from server (NotFound): imagestreamtags.image.openshift.io \"hello:alias\" not found\n",
        "{out}"
    );
    let stream = op.streams().get("hello").await.expect("hello");
    assert!(stream.spec.tag("alias").is_some(), "nothing was removed");
    let out = oc.ok(&["delete", "istag", "hello.alias"]).await;
    assert_eq!(
        out,
        "imagestreamtag.image.openshift.io \"hello.alias\" deleted\n"
    );
    stream_when(&op, "hello", "alias gone with its history", |s| {
        s.spec.tag("alias").is_none() && items(s, "alias").is_empty()
    })
    .await;
    op.finish().await;
}

/// A user bound to `edit` in the namespace: every form works, `oc tag -d` too (the role may
/// not delete ImageStreamTags, so oc edits the stream: the spec tag goes, its history stays,
/// as upstream's ImageStream edit keeps it); `oc delete itag` removes the history too.
#[tokio::test]
async fn oc_tag_every_form_as_an_edit_user() {
    let reg = RegistryOptions::plain().start();
    let img = images(&reg).await;
    let op = Running::start("oc-edit").await;
    let cluster = cluster::cluster().await;
    oc::install_user_roles(&op.admin).await;
    let oc = Oc::user(cluster, &op.namespace, "alice", "edit").await;
    tag_every_form(&op, &oc, &img).await;

    let out = oc.ok(&["tag", "-d", "hello:alias"]).await;
    assert_eq!(out, format!("Deleted tag {}/hello:alias.\n", op.namespace));
    let stream = stream_when(&op, "hello", "alias no longer in spec", |s| {
        s.spec.tag("alias").is_none()
    })
    .await;
    assert_eq!(
        current(&stream, "alias").as_deref(),
        Some(img.v1.as_str()),
        "the history stays"
    );
    let out = oc.fails(&["tag", "-d", "hello:nosuch"]).await;
    assert!(
        out.stderr.contains(&format!(
            "destination tag {}/hello:nosuch does not exist",
            op.namespace
        )),
        "{out}"
    );
    // the history goes with the ImageTag; ImageStreamTags are not the edit role's to delete
    let out = oc.fails(&["delete", "istag", "hello.al2"]).await;
    assert!(out.stderr.contains("(Forbidden)"), "{out}");
    let out = oc.ok(&["delete", "itag", "hello.alias"]).await;
    assert_eq!(out, "imagetag.image.openshift.io \"hello.alias\" deleted\n");
    stream_when(&op, "hello", "alias history gone", |s| {
        items(s, "alias").is_empty()
    })
    .await;

    // oc-compat 3.7: a tag left with history only (here by `oc tag -d` of an alias) keeps it
    // and its views through later edits of the stream, until its own delete
    oc.ok(&["tag", "-d", "hello:al2"]).await;
    oc.ok(&["tag", &format!("hello@{}", img.v2), "hello:v2"])
        .await;
    oc.ok(&["tag", "-d", "hello:sched"]).await;
    let stream = stream_when(&op, "hello", "v2 back on its first image", |s| {
        s.spec.tag("al2").is_none() && current(s, "v2").as_deref() == Some(img.v2.as_str())
    })
    .await;
    let al2: Vec<&str> = items(&stream, "al2")
        .iter()
        .map(|e| e.image.as_str())
        .collect();
    assert_eq!(
        al2,
        [img.v1.as_str(), img.v2.as_str()],
        "al2 no longer follows"
    );
    let out = oc.ok(&["get", "istag", "hello.al2", "-o", "name"]).await;
    assert_eq!(out, "imagestreamtag.image.openshift.io/hello.al2\n");
    let admin = Oc::admin(cluster, &op.namespace);
    let out = admin
        .ok(&[
            "delete",
            "istag",
            "hello.sched",
            "hello.pinned",
            "hello.al2",
        ])
        .await;
    assert_eq!(
        out,
        "imagestreamtag.image.openshift.io \"hello.sched\" deleted\n\
         imagestreamtag.image.openshift.io \"hello.pinned\" deleted\n\
         imagestreamtag.image.openshift.io \"hello.al2\" deleted\n"
    );
    stream_when(&op, "hello", "al2 gone with its history", |s| {
        items(s, "al2").is_empty() && items(s, "pinned").is_empty()
    })
    .await;
    op.finish().await;
}

/// What each role may do with `oc auth can-i`, as the bound users ask it: `view` reads streams
/// and their views; `edit` and `admin` also write streams, tags and imports, but delete no
/// ImageStreamTags; Images, signatures and mappings stay with cluster admins; and `view` may
/// not tag (`oc tag` fails on the stream write oc falls back to).
#[tokio::test]
async fn roles_for_users_grant_what_openshift_grants() {
    let op = Running::start("oc-roles").await;
    let cluster = cluster::cluster().await;
    oc::install_user_roles(&op.admin).await;
    let viewer = Oc::user(cluster, &op.namespace, "viewer", "view").await;
    let editor = Oc::user(cluster, &op.namespace, "editor", "edit").await;
    let admin = Oc::user(cluster, &op.namespace, "owner", "admin").await;
    let reads = [
        "get imagestreams",
        "list imagestreams",
        "watch imagestreams",
        "get imagestreams --subresource=status",
        "get imagestreamtags",
        "list imagetags",
        "get imagestreamimages",
        "get imagestreamlayers",
    ];
    let writes = [
        "create imagestreams",
        "update imagestreams",
        "patch imagestreams",
        "delete imagestreams",
        "create imagestreamtags",
        "update imagestreamtags",
        "create imagetags",
        "delete imagetags",
        "create imagestreamimports",
        "get imagestreams --subresource=layers",
    ];
    let nobody = [
        "delete imagestreamtags",
        "create imagestreammappings",
        "create images",
        "delete images",
        "create imagesignatures",
        "update imagestreams --subresource=status",
        "create imagestreamimages",
    ];
    for (oc, may) in [
        (&viewer, reads.iter().collect::<Vec<_>>()),
        (&editor, reads.iter().chain(&writes).collect()),
        (&admin, reads.iter().chain(&writes).collect()),
    ] {
        for check in reads.iter().chain(&writes).chain(&nobody) {
            let mut args = vec!["auth", "can-i"];
            args.extend(check.split(' '));
            let out = oc.run(&args).await;
            let want = may.contains(&check);
            assert_eq!(
                out.stdout.trim(),
                if want { "yes" } else { "no" },
                "{} {check}: {out}",
                oc.username()
            );
            assert_eq!(out.success(), want, "{out}");
        }
    }

    // the viewer reads what oc shows and cannot tag
    let streams = op.streams();
    let stream: ImageStream = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": "seen"},
        "spec": {"tags": [{"name": "t", "from": {"kind": "DockerImage", "name": "example.com/a:1"},
            "reference": true}]},
    }))
    .expect("stream");
    streams
        .create(&PostParams::default(), &stream)
        .await
        .expect("create");
    let out = viewer.ok(&["get", "is"]).await;
    assert!(out.contains("seen"), "{out}");
    let out = viewer.ok(&["describe", "is", "seen"]).await;
    assert!(out.contains("example.com/a:1"), "{out}");
    let out = viewer.fails(&["tag", "seen:t", "seen:u"]).await;
    assert!(
        out.stderr.contains("(Forbidden)") && out.stderr.contains("imagestreams"),
        "{out}"
    );
    op.finish().await;
}

/// Tagging from another namespace's stream needs the right to read it there: refused for an
/// `edit` user of one namespace alone, allowed once `system:image-puller` is bound in the
/// source namespace (as `oc policy add-role-to-user system:image-puller` does on OpenShift).
#[tokio::test]
async fn cross_namespace_tags_need_the_image_puller_role() {
    let op = Running::start("oc-puller").await;
    let cluster = cluster::cluster().await;
    oc::install_user_roles(&op.admin).await;
    let source = cluster::fresh_namespace(&op.admin, "oc-source").await;
    let oc = Oc::user(cluster, &op.namespace, "bob", "edit").await;
    let digest = format!("sha256:{}", "a".repeat(64));
    let from = format!("{source}/src@{digest}");

    let out = oc.fails(&["tag", &from, "mine:v1"]).await;
    assert_eq!(
        out.stderr,
        format!(
            "The ImageStreamTag \"mine:v1\" is invalid: spec.tags[v1].from: Forbidden: {source}/src: \"\" \"\"\n"
        ),
        "{out}"
    );
    assert!(op.streams().get_opt("mine").await.expect("read").is_none());

    let puller = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "pullers"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
            "name": "system:image-puller"},
        "subjects": [{"kind": "ServiceAccount", "name": "bob", "namespace": op.namespace}],
    });
    Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(op.admin.clone(), &source)
        .create(
            &PostParams::default(),
            &serde_json::from_value(puller).expect("binding"),
        )
        .await
        .expect("bind system:image-puller");
    // RBAC answers from its cache: the binding takes a moment
    let deadline = Instant::now() + WAIT;
    let out = loop {
        let out = oc.run(&["tag", &from, "mine:v1"]).await;
        if out.success() || Instant::now() >= deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(out.stdout, format!("Tag mine:v1 set to {from}.\n"), "{out}");
    let stream = op.streams().get("mine").await.expect("mine");
    let tag = stream.spec.tag("v1").expect("spec tag");
    let tag_from = tag.from.as_ref().expect("from");
    assert_eq!(
        (
            tag_from.kind.as_str(),
            tag_from.namespace.as_str(),
            tag_from.name.as_str()
        ),
        (
            "ImageStreamImage",
            source.as_str(),
            format!("src@{digest}").as_str()
        )
    );
    op.finish().await;
}
