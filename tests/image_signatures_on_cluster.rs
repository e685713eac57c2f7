//! ImageSignatures (semantics 7.7) with the whole operator and its cluster-wide ImageSignature
//! webhooks (only this test registers them): a create attaches the signature to its Image
//! with the server-parsed fields cleared, a duplicate is refused with 409, a signature of a
//! missing Image with 404, a delete detaches it.

mod support;

use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use imagestream_operator::api::image::Image;
use imagestream_operator::api::image_signature::ImageSignature;
use imagestream_operator::names;
use support::operator::Running;

fn signature(image: &str, name: &str, content: &str) -> ImageSignature {
    serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageSignature",
        "metadata": {"name": names::image_signature(image, name)},
        "type": "AtomicImageV1",
        "content": content,
        "imageIdentity": "set by the client, cleared by the server",
        "conditions": [{"type": "Trusted", "status": "True"}],
    }))
    .expect("signature")
}

#[tokio::test]
async fn signatures_attach_to_their_image_and_detach() {
    let op = Running::start_with("sigs", true).await;
    let images = Api::<Image>::all(op.admin.clone());
    let signatures = Api::<ImageSignature>::all(op.admin.clone());
    // a digest of this test's own, so parallel runs do not meet
    let hex = format!("{:0>64x}", u128::from(std::process::id()) << 16 | 0x5157);
    let digest = format!("sha256:{hex}");
    let image: Image = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1", "kind": "Image",
        "metadata": {"name": names::image(&digest)},
        "dockerImageReference": format!("example.com/app@{digest}"),
    }))
    .expect("image");
    let _ = images
        .delete(&names::image(&digest), &DeleteParams::default())
        .await;
    images
        .create(&PostParams::default(), &image)
        .await
        .expect("create image");

    let created = signatures
        .create(
            &PostParams::default(),
            &signature(&digest, "sig1", "c2lnbmVkIG9uY2U="),
        )
        .await
        .expect("create signature");
    assert!(
        created.spec.image_identity.is_empty(),
        "server fields cleared"
    );
    assert!(created.spec.conditions.is_empty());
    let stored = images.get(&names::image(&digest)).await.expect("image");
    let attached = &stored.spec.signatures;
    assert_eq!(attached.len(), 1);
    assert_eq!(
        attached[0].metadata.name.as_deref(),
        Some(format!("{digest}@sig1").as_str())
    );
    assert_eq!(attached[0].spec.content.0, b"signed once");
    assert!(attached[0].spec.image_identity.is_empty());

    // the same content under another name: 409, nothing stored
    let err = signatures
        .create(
            &PostParams::default(),
            &signature(&digest, "sig2", "c2lnbmVkIG9uY2U="),
        )
        .await
        .expect_err("duplicate content");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409),
        "{err:?}"
    );
    assert!(
        signatures
            .get_opt(&names::image_signature(&digest, "sig2"))
            .await
            .expect("get")
            .is_none()
    );

    // a signature of an Image that does not exist: 404
    let missing = format!("sha256:{}", "f".repeat(64));
    let err = signatures
        .create(&PostParams::default(), &signature(&missing, "s", "eA=="))
        .await
        .expect_err("missing image");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 404),
        "{err:?}"
    );

    // labels are refused with upstream's words
    let mut labelled = signature(&digest, "sig3", "b3RoZXI=");
    labelled.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
    let err = signatures
        .create(&PostParams::default(), &labelled)
        .await
        .expect_err("labels");
    assert!(
        err.to_string().contains("signature labels cannot be set"),
        "{err}"
    );

    // delete detaches
    signatures
        .delete(
            &names::image_signature(&digest, "sig1"),
            &DeleteParams::default(),
        )
        .await
        .expect("delete signature");
    let stored = images.get(&names::image(&digest)).await.expect("image");
    assert!(
        stored.spec.signatures.is_empty(),
        "{:?}",
        stored.spec.signatures
    );

    images
        .delete(&names::image(&digest), &DeleteParams::default())
        .await
        .expect("delete image");
    op.finish().await;
}
