//! Images the apiserver refuses for what they are (too large for etcd, invalid), decided
//! without IO: such an Image is not sent, or its refusal is told from a passing failure, and
//! every import that found it fails with the refusal, so the rest of the stream is still
//! written (the tag gets a condition, as a registry failure would give it).

use std::collections::HashMap;

use crate::api::image::Image;
use crate::import::contract::{BatchResult, Failure, ImageResult};

/// Images above this size are not sent: etcd refuses requests over 1.5 MiB by default, and
/// the ImageStreamTag, ImageTag and ImageStreamImage views embed the Image again.
pub const MAX_IMAGE_BYTES: usize = 1024 * 1024;

/// The Image's size as stored (without manifest and config, which are not stored).
pub fn stored_size(image: &Image) -> usize {
    let mut stored = image.clone();
    stored.spec.docker_image_manifest.clear();
    stored.spec.docker_image_config.clear();
    serde_json::to_vec(&stored).map_or(0, |bytes| bytes.len())
}

/// Why `image` is not sent at all: it is larger than [`MAX_IMAGE_BYTES`] as stored (the code
/// and message of the refusal the apiserver would give).
pub fn too_large(image: &Image) -> Option<(u16, String)> {
    let size = stored_size(image);
    (size > MAX_IMAGE_BYTES).then(|| {
        (
            413,
            format!("it would be {size} bytes, more than the {MAX_IMAGE_BYTES} an object may have"),
        )
    })
}

/// A refusal of the Image itself, not of the moment: retrying cannot help. The apiserver
/// answers an object too large for etcd with a 500 naming the size.
pub fn image_refused(code: u16, message: &str) -> bool {
    matches!(code, 400 | 413 | 422)
        || (code == 500 && (message.contains("too large") || message.contains("larger than max")))
}

/// The failure the imports of Image `digest` get when it is refused with `code` and `why`
/// (a 500 that names the size is a 413).
pub fn refusal(digest: &str, code: u16, why: &str) -> Failure {
    let code = if code == 500 { 413 } else { code };
    Failure {
        reason: refusal_reason(code),
        code,
        message: format!("Image {digest} cannot be stored: {why}"),
    }
}

fn refusal_reason(code: u16) -> &'static str {
    match code {
        413 => "RequestEntityTooLarge",
        422 => "Invalid",
        _ => "BadRequest",
    }
}

/// Turns every import whose Image was refused (by digest) into that failure.
pub fn fail_refused(result: &mut BatchResult, refused: &HashMap<String, Failure>) {
    if refused.is_empty() {
        return;
    }
    let fail = |r: &mut ImageResult| {
        if let Ok(imported) = r
            && let Some(failure) = refused.get(&imported.image)
        {
            *r = Err(failure.clone());
        }
    };
    result.images.iter_mut().for_each(fail);
    if let Some(Ok(images)) = result.repository.as_mut().map(|r| r.images.as_mut()) {
        images.iter_mut().for_each(fail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::contract::{Imported, RepositoryResult};

    fn imported(image: &str) -> ImageResult {
        Ok(Imported {
            tag: "t".into(),
            image: image.into(),
            reference: format!("r/a@{image}"),
            unchanged: false,
        })
    }

    #[test]
    fn only_the_imports_of_a_refused_image_fail() {
        let failure = refusal("sha256:a", 422, "too long");
        assert_eq!(
            failure.message, "Image sha256:a cannot be stored: too long",
            "names the Image"
        );
        let refused = HashMap::from([("sha256:a".to_string(), failure.clone())]);
        let earlier = Failure {
            reason: "NotFound",
            code: 404,
            message: "gone".into(),
        };
        let mut result = BatchResult {
            images: vec![
                imported("sha256:a"),
                imported("sha256:b"),
                Err(earlier.clone()),
            ],
            repository: Some(RepositoryResult {
                images: Ok(vec![imported("sha256:b"), imported("sha256:a")]),
                tags: vec!["x".into(), "y".into()],
                additional_tags: Vec::new(),
            }),
            new_images: Default::default(),
            verifications: Vec::new(),
            referrer_lookups: Vec::new(),
        };
        fail_refused(&mut result, &refused);
        assert_eq!(result.images[0], Err(failure.clone()));
        assert_eq!(result.images[1], imported("sha256:b"));
        assert_eq!(result.images[2], Err(earlier));
        let repository = result.repository.expect("repository");
        assert_eq!(
            repository.images,
            Ok(vec![imported("sha256:b"), Err(failure)])
        );
    }

    #[test]
    fn refusals_of_the_image_itself_are_told_from_passing_failures() {
        for code in [400, 413, 422] {
            assert!(image_refused(code, "refused"), "{code}");
        }
        for code in [403, 409, 429, 500, 503, 504] {
            assert!(!image_refused(code, "etcdserver: leader changed"), "{code}");
        }
        assert!(image_refused(500, "etcdserver: request is too large"));
        assert!(image_refused(
            500,
            "rpc error: code = ResourceExhausted desc = trying to send message larger than max (3000679 vs. 2097152)"
        ));
        assert_eq!(refusal_reason(413), "RequestEntityTooLarge");
        assert_eq!(refusal_reason(422), "Invalid");
        assert_eq!(refusal_reason(400), "BadRequest");
        let etcd = refusal("sha256:a", 500, "etcdserver: request is too large");
        assert_eq!((etcd.code, etcd.reason), (413, "RequestEntityTooLarge"));
    }

    #[test]
    fn an_image_too_large_for_etcd_is_not_sent() {
        let mut image = Image::default();
        image.spec.docker_image_manifest = "m".repeat(2 * MAX_IMAGE_BYTES);
        assert_eq!(too_large(&image), None, "the manifest is not stored");
        image.spec.docker_image_reference = "r".repeat(MAX_IMAGE_BYTES);
        let (code, why) = too_large(&image).expect("too large");
        assert_eq!(code, 413);
        assert!(why.contains("more than the 1048576"), "{why}");
    }
}
