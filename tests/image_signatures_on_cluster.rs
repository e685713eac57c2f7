//! ImageSignatures (semantics 7.7) with the whole operator and its cluster-wide ImageSignature
//! webhooks (only this test registers them): a create attaches the signature to its Image
//! with the server-parsed fields cleared, a duplicate is refused with 409, a signature of a
//! missing Image with 404, labels and annotations with 422, a dry run writes nothing, a
//! delete detaches it.

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
        "signedClaims": {"claim": "cleared"},
        "issuedBy": {"organization": "cleared"},
        "conditions": [{"type": "Trusted", "status": "True"}],
    }))
    .expect("signature")
}

/// The status code and message of a refused request.
fn refusal(err: &kube::Error) -> (u16, String) {
    match err {
        kube::Error::Api(s) => (s.code, s.message.clone()),
        other => panic!("not an API error: {other:?}"),
    }
}

fn attached(image: &Image) -> Vec<String> {
    image
        .spec
        .signatures
        .iter()
        .map(|s| s.metadata.name.clone().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn signatures_attach_to_their_image_and_detach() {
    let op = Running::start_with("sigs", true).await;
    let images = Api::<Image>::all(op.admin.clone());
    let signatures = Api::<ImageSignature>::all(op.admin.clone());
    let create = PostParams::default();
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    // a digest of this test's own, so parallel runs do not meet
    let hex = format!("{:0>64x}", (u128::from(std::process::id()) << 16) | 0x5157);
    let digest = format!("sha256:{hex}");
    let image_object = names::image(&digest);
    let image: Image = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1", "kind": "Image",
        "metadata": {"name": image_object, "annotations": {"keep": "me"}},
        "dockerImageReference": format!("example.com/app@{digest}"),
    }))
    .expect("image");
    let _ = images.delete(&image_object, &DeleteParams::default()).await;
    images.create(&create, &image).await.expect("create image");

    // a dry run answers as a create would and writes nothing
    signatures
        .create(&dry_run, &signature(&digest, "sig1", "c2lnbmVkIG9uY2U="))
        .await
        .expect("dry-run signature");
    let stored = images.get(&image_object).await.expect("image");
    assert!(stored.spec.signatures.is_empty(), "{:?}", attached(&stored));
    let missing = format!("sha256:{}", "f".repeat(64));
    let err = signatures
        .create(&dry_run, &signature(&missing, "s", "eA=="))
        .await
        .expect_err("dry run for a missing image");
    assert_eq!(refusal(&err).0, 404, "{err:?}");

    let created = signatures
        .create(&create, &signature(&digest, "sig1", "c2lnbmVkIG9uY2U="))
        .await
        .expect("create signature");
    assert!(
        created.spec.image_identity.is_empty(),
        "server fields cleared"
    );
    assert!(created.spec.conditions.is_empty());
    assert!(created.spec.signed_claims.is_empty() && created.spec.issued_by.is_none());
    let stored = images.get(&image_object).await.expect("image");
    assert_eq!(attached(&stored), [format!("{digest}@sig1")]);
    let embedded = &stored.spec.signatures[0];
    assert_eq!(embedded.spec.type_, "AtomicImageV1");
    assert_eq!(embedded.spec.content.0, b"signed once");
    assert!(embedded.spec.image_identity.is_empty() && embedded.spec.conditions.is_empty());
    assert_eq!(
        stored
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("keep")),
        Some(&"me".to_string()),
        "the Image's own metadata is untouched"
    );

    // the same content under another name: 409, nothing stored
    let err = signatures
        .create(&create, &signature(&digest, "sig2", "c2lnbmVkIG9uY2U="))
        .await
        .expect_err("duplicate content");
    let (code, message) = refusal(&err);
    assert_eq!(code, 409, "{err:?}");
    assert!(
        message.contains(&format!("imageSignatures \"{digest}@sig2\" already exists")),
        "{message}"
    );
    assert!(
        signatures
            .get_opt(&names::image_signature(&digest, "sig2"))
            .await
            .expect("get")
            .is_none()
    );

    // a signature of an Image that does not exist: 404
    let err = signatures
        .create(&create, &signature(&missing, "s", "eA=="))
        .await
        .expect_err("missing image");
    let (code, message) = refusal(&err);
    assert_eq!(code, 404, "{err:?}");
    assert!(
        message.contains(&format!("images \"{missing}\" not found")),
        "{message}"
    );

    // labels and annotations are refused with upstream's words
    let mut labelled = signature(&digest, "sig3", "b3RoZXI=");
    labelled.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
    let err = signatures
        .create(&create, &labelled)
        .await
        .expect_err("labels");
    let (code, message) = refusal(&err);
    assert_eq!(code, 422, "{err:?}");
    assert!(
        message.contains("signature labels cannot be set"),
        "{message}"
    );
    let mut annotated = signature(&digest, "sig3", "b3RoZXI=");
    annotated.metadata.annotations = Some([("a".to_string(), "b".to_string())].into());
    let err = signatures
        .create(&create, &annotated)
        .await
        .expect_err("annotations");
    assert!(
        refusal(&err)
            .1
            .contains("signature annotations cannot be set"),
        "{err:?}"
    );

    // a name the plain form cannot carry: named by the annotations, attached under it
    let mut exact = signature(&digest, "Sig_2", "b3RoZXI=");
    exact.metadata.annotations = Some(
        [
            (
                names::ANNOTATION_OPENSHIFT_NAME.to_string(),
                format!("{digest}@Sig_2"),
            ),
            (names::ANNOTATION_IMAGE.to_string(), digest.clone()),
        ]
        .into(),
    );
    signatures
        .create(&create, &exact)
        .await
        .expect("annotated signature");
    let stored = images.get(&image_object).await.expect("image");
    assert_eq!(
        attached(&stored),
        [format!("{digest}@sig1"), format!("{digest}@Sig_2")]
    );
    assert!(
        stored.spec.signatures[1].metadata.annotations.is_none(),
        "the bookkeeping annotations stay on the ImageSignature object"
    );

    // delete detaches
    signatures
        .delete(
            &names::image_signature(&digest, "sig1"),
            &DeleteParams::default(),
        )
        .await
        .expect("delete signature");
    let stored = images.get(&image_object).await.expect("image");
    assert_eq!(attached(&stored), [format!("{digest}@Sig_2")]);

    // a signature whose Image is gone can still be deleted
    images
        .delete(&image_object, &DeleteParams::default())
        .await
        .expect("delete image");
    signatures
        .delete(
            &names::image_signature(&digest, "Sig_2"),
            &DeleteParams::default(),
        )
        .await
        .expect("delete the orphaned signature");
    op.finish().await;
}
