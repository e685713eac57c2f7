//! Object names for the kinds whose OpenShift names are not valid custom-resource names.
//!
//! OpenShift names its views `stream:tag` (ImageStreamTag, ImageTag), `stream@sha256:…`
//! (ImageStreamImage), Images `sha256:…` and ImageSignatures `sha256:…@signame`. Custom
//! resources must be DNS subdomains (lowercase `[a-z0-9.-]`, at most 253 characters), so every
//! derived name goes through this one module.
//!
//! Two forms, chosen deterministically:
//!
//! * **Plain** (the common case, readable and reversible): the parts joined with `.`:
//!   `ruby.latest`, `ruby.sha256.<hex>`, `sha256.<hex>`, `sha256.<hex>.<signame>`. It is used
//!   only when every part is already lowercase `[a-z0-9]` words joined by single `.`/`-`, the
//!   leading part (stream) has no `.`, and the result fits. Such names split back exactly
//!   ([`parse_stream_tag`] and friends), and the plain form never has `--` in its last label.
//! * **Hashed** (anything else: upper case, `_`, a dotted stream name, over-long names): a
//!   sanitised readable prefix, then `--` and 20 hex digits of SHA-256 over the exact parts.
//!   The last label always contains `--`, so a hashed name never equals a plain one; two
//!   hashed names are equal only if 80 bits of SHA-256 collide. Hashed names are not parsed
//!   back: the exact stream, tag and digest live on the object (see the `ANNOTATION_*`
//!   constants), and writers compare them before overwriting an object of the same name.
//!
//! Names are unique per kind (and namespace), so an ImageStreamTag and an ImageStreamImage may
//! share a name without harm.

use sha2::{Digest, Sha256};

/// Longest custom-resource name (DNS subdomain).
pub const MAX_NAME_LEN: usize = 253;
/// Hex digits of the SHA-256 suffix of a hashed name.
const HASH_HEX_LEN: usize = 20;

/// Annotation with the exact ImageStream name a view belongs to.
pub const ANNOTATION_STREAM: &str = "image.openshift.io/stream";
/// Annotation with the exact tag name of an ImageStreamTag or ImageTag.
pub const ANNOTATION_TAG: &str = "image.openshift.io/tag";
/// Annotation with the exact image name (digest) of an ImageStreamImage or Image.
pub const ANNOTATION_IMAGE: &str = "image.openshift.io/image";
/// Annotation with the exact OpenShift name (`<stream>:<tag>`, `<image>@<signature>`, …).
pub const ANNOTATION_OPENSHIFT_NAME: &str = "image.openshift.io/name";

/// Object name of the ImageStreamTag or ImageTag for `stream:tag`.
pub fn stream_tag(stream: &str, tag: &str) -> String {
    if is_plain_head(stream) && is_plain(tag) {
        let name = format!("{stream}.{tag}");
        if name.len() <= MAX_NAME_LEN {
            return name;
        }
    }
    hashed(&[stream, tag])
}

/// Object name of the ImageStreamImage for `stream@image`.
pub fn stream_image(stream: &str, image: &str) -> String {
    if is_plain_head(stream)
        && let Some((algo, hex)) = split_digest(image)
    {
        let name = format!("{stream}.{algo}.{hex}");
        if name.len() <= MAX_NAME_LEN {
            return name;
        }
    }
    hashed(&[stream, image])
}

/// Object name of the Image whose OpenShift name is `image` (normally a digest).
///
/// A digest `algo:hex` becomes `algo.hex`. A name that is already a valid object name and
/// does not look like that form (an admin-created Image named `base`, say) is kept as is.
pub fn image(image: &str) -> String {
    if let Some((algo, hex)) = split_digest(image) {
        return format!("{algo}.{hex}");
    }
    if is_dns_subdomain(image) && !looks_like_dotted_digest(image) && !has_hash_suffix(image) {
        return image.to_string();
    }
    hashed(&[image])
}

/// Object name of the ImageSignature whose OpenShift name is `<image>@<signature>`.
pub fn image_signature(image: &str, signature: &str) -> String {
    if let Some((algo, hex)) = split_digest(image)
        && is_plain(signature)
    {
        let name = format!("{algo}.{hex}.{signature}");
        if name.len() <= MAX_NAME_LEN {
            return name;
        }
    }
    hashed(&[image, signature])
}

/// Object name of a stored ImageStreamMapping request that maps `image` to `stream:tag`.
///
/// Upstream names a mapping after its stream and never stores it; here it waits to be applied,
/// so each (stream, tag, image) gets a name of its own and two mappings of one stream can wait
/// at the same time. The stream's name stays in [`ANNOTATION_STREAM`].
pub fn image_stream_mapping(stream: &str, tag: &str, image: &str) -> String {
    if is_plain_head(stream)
        && is_plain(tag)
        && let Some((algo, hex)) = split_digest(image)
    {
        let name = format!("{stream}.{tag}.{algo}.{hex}");
        if name.len() <= MAX_NAME_LEN {
            return name;
        }
    }
    hashed(&[stream, tag, image])
}

/// Splits a plain-form ImageStreamTag name back into `(stream, tag)`; `None` for hashed names.
pub fn parse_stream_tag(name: &str) -> Option<(&str, &str)> {
    if has_hash_suffix(name) {
        return None;
    }
    let (stream, tag) = name.split_once('.')?;
    (is_plain_head(stream) && is_plain(tag)).then_some((stream, tag))
}

/// Splits a plain-form ImageStreamImage name into `(stream, "algo:hex")`.
pub fn parse_stream_image(name: &str) -> Option<(&str, String)> {
    if has_hash_suffix(name) {
        return None;
    }
    let (stream, digest) = name.split_once('.')?;
    let (algo, hex) = digest.split_once('.')?;
    let image = format!("{algo}:{hex}");
    split_digest(&image)?;
    is_plain_head(stream).then_some((stream, image))
}

/// The OpenShift image name (`algo:hex`) of a plain-form Image object name.
pub fn parse_image(name: &str) -> Option<String> {
    if looks_like_dotted_digest(name) {
        name.split_once('.').map(|(a, h)| format!("{a}:{h}"))
    } else if has_hash_suffix(name) {
        None
    } else {
        Some(name.to_string())
    }
}

/// Splits a plain-form ImageSignature name into `("algo:hex", signature)`.
pub fn parse_image_signature(name: &str) -> Option<(String, &str)> {
    if has_hash_suffix(name) {
        return None;
    }
    let (algo, rest) = name.split_once('.')?;
    let (hex, signature) = rest.split_once('.')?;
    let image = format!("{algo}:{hex}");
    split_digest(&image)?;
    is_plain(signature).then_some((image, signature))
}

/// `(algo, hex)` of a digest with a supported algorithm and the exact hex length.
fn split_digest(s: &str) -> Option<(&str, &str)> {
    let (algo, hex) = s.split_once(':')?;
    let want = match algo {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return None,
    };
    let lower_hex = hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (hex.len() == want && lower_hex).then_some((algo, hex))
}

fn looks_like_dotted_digest(s: &str) -> bool {
    s.split_once('.')
        .is_some_and(|(a, h)| split_digest(&format!("{a}:{h}")).is_some())
}

/// Lowercase alphanumeric words joined by single `.` or `-`.
fn is_plain(s: &str) -> bool {
    !s.is_empty()
        && s.split(['.', '-']).all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// A plain part without `.`, so the first `.` of a plain name ends it.
fn is_plain_head(s: &str) -> bool {
    is_plain(s) && !s.contains('.')
}

fn has_hash_suffix(name: &str) -> bool {
    name.rsplit('.')
        .next()
        .is_some_and(|label| label.contains("--"))
}

/// Whether `s` is a valid custom-resource name.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && label.len() <= 63
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

/// `<sanitised parts joined by .>--<20 hex of sha256(parts joined by NUL)>`.
fn hashed(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update([0u8]);
        }
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let suffix = format!("--{}", &hex[..HASH_HEX_LEN]);

    let budget = MAX_NAME_LEN - suffix.len();
    let mut prefix = parts
        .iter()
        .map(|p| sanitise_label(p))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(".");
    prefix.truncate(budget);
    let prefix = prefix.trim_end_matches(['.', '-']);
    let prefix = if prefix.is_empty() { "x" } else { prefix };
    // The last label (prefix tail + suffix) must stay within 63 characters.
    let tail_start = prefix.rfind('.').map_or(0, |i| i + 1);
    let max_tail = 63 - suffix.len();
    let head = &prefix[..tail_start];
    let mut tail = prefix[tail_start..].to_string();
    tail.truncate(max_tail);
    let tail = tail.trim_end_matches('-');
    let tail = if tail.is_empty() { "x" } else { tail };
    format!("{head}{tail}{suffix}")
}

/// Lowercases and maps every character outside `[a-z0-9]` to `-` (dots of a stream name
/// become label separators no more: one part stays one label), trimmed and collapsed.
fn sanitise_label(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for c in part.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_matches('-');
    trimmed[..trimmed.len().min(40)]
        .trim_end_matches('-')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const HEX64: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn mappings_are_named_per_stream_tag_and_image() {
        let digest = format!("sha256:{HEX64}");
        assert_eq!(
            image_stream_mapping("ruby", "latest", &digest),
            format!("ruby.latest.sha256.{HEX64}")
        );
        let names = [
            image_stream_mapping("ruby", "latest", &digest),
            image_stream_mapping("ruby", "v2", &digest),
            image_stream_mapping("ruby", "Latest", &digest),
            image_stream_mapping("ruby", "latest", "not-a-digest"),
            image_stream_mapping("my.app", "latest", &digest),
        ];
        for (i, name) in names.iter().enumerate() {
            // what the apiserver checks of a custom resource's name (no per-label limit)
            let valid = name.len() <= MAX_NAME_LEN
                && name.split('.').all(|l| {
                    !l.is_empty()
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                        && l.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                });
            assert!(valid, "{name}");
            assert!(!names[..i].contains(name), "{name} twice");
        }
    }

    #[test]
    fn common_names_are_readable() {
        assert_eq!(stream_tag("ruby", "latest"), "ruby.latest");
        assert_eq!(stream_tag("nodejs", "14-ubi8"), "nodejs.14-ubi8");
        assert_eq!(stream_tag("python", "3.9"), "python.3.9");
        assert_eq!(
            stream_image("ruby", &format!("sha256:{HEX64}")),
            format!("ruby.sha256.{HEX64}")
        );
        assert_eq!(image(&format!("sha256:{HEX64}")), format!("sha256.{HEX64}"));
        assert_eq!(
            image_signature(&format!("sha256:{HEX64}"), "b27b1f7d2b8c6a8e"),
            format!("sha256.{HEX64}.b27b1f7d2b8c6a8e")
        );
        assert_eq!(image("base"), "base");
    }

    #[test]
    fn plain_names_round_trip() {
        assert_eq!(parse_stream_tag("ruby.latest"), Some(("ruby", "latest")));
        assert_eq!(parse_stream_tag("python.3.9"), Some(("python", "3.9")));
        let img = format!("sha256:{HEX64}");
        assert_eq!(
            parse_stream_image(&stream_image("ruby", &img)),
            Some(("ruby", img.clone()))
        );
        assert_eq!(parse_image(&image(&img)), Some(img.clone()));
        assert_eq!(parse_image("base"), Some("base".to_string()));
        let sig = image_signature(&img, "b27b1f7d2b8c6a8e");
        assert_eq!(
            parse_image_signature(&sig),
            Some((img.clone(), "b27b1f7d2b8c6a8e"))
        );
        assert_eq!(
            parse_image_signature(&image_signature(&img, "Odd_Name")),
            None
        );
        assert_eq!(parse_image_signature("sha256.abc.sig"), None);
    }

    #[test]
    fn image_signature_names_parse_back() {
        let img = format!("sha256:{HEX64}");
        for sig in ["s", "b27b1f7d2b8c6a8e", "a.b", "a-b.c-1"] {
            assert_eq!(
                parse_image_signature(&image_signature(&img, sig)),
                Some((img.clone(), sig)),
                "{sig}"
            );
        }
        let img512 = format!("sha512:{}", "ab".repeat(64));
        assert_eq!(
            parse_image_signature(&image_signature(&img512, "s")),
            Some((img512, "s"))
        );
        // hashed names, other algorithms, wrong lengths, upper case and missing parts
        for sig in ["Sig", "a_b", "a--b", "-a", "a."] {
            assert_eq!(
                parse_image_signature(&image_signature(&img, sig)),
                None,
                "{sig}"
            );
        }
        for name in [
            format!("md5.{HEX64}.s"),
            format!("sha256.{}.s", &HEX64[1..]),
            format!("sha256.{}.s", HEX64.to_uppercase()),
            format!("sha256.{HEX64}"),
            format!("sha256.{HEX64}."),
            format!("sha256.{HEX64}.a..b"),
            "s".to_string(),
        ] {
            assert_eq!(parse_image_signature(&name), None, "{name}");
        }
    }

    #[test]
    fn ambiguous_inputs_do_not_collide() {
        let pairs = [
            ("a.b", "c"),
            ("a", "b.c"),
            ("ruby", "Latest"),
            ("ruby", "latest"),
            ("ruby", "LATEST"),
            ("ruby", "a_b"),
            ("ruby", "a-b"),
            ("ruby", "a--b"),
            ("ruby", "_a"),
            ("ruby", "a-"),
            ("ruby", "a."),
            ("ruby", ".a"),
            ("my.stream", "latest"),
            ("my-stream", "latest"),
        ];
        let mut seen = HashMap::new();
        for (s, t) in pairs {
            let n = stream_tag(s, t);
            assert!(is_dns_subdomain(&n), "{n:?} for {s}:{t}");
            if let Some(prev) = seen.insert(n.clone(), (s, t)) {
                panic!("{s}:{t} and {}:{} both map to {n}", prev.0, prev.1);
            }
        }
    }

    #[test]
    fn hashed_names_are_not_parsed_back() {
        let n = stream_tag("ruby", "Latest");
        assert!(n.starts_with("ruby.latest--"), "{n}");
        assert_eq!(parse_stream_tag(&n), None);
        let n = stream_tag("my.stream", "v1");
        assert_eq!(parse_stream_tag(&n), None);
    }

    #[test]
    fn dotted_digest_lookalike_images_are_hashed() {
        // An admin may name an Image "sha256.<hex>"; it must not take the name of "sha256:<hex>".
        let lookalike = format!("sha256.{HEX64}");
        assert_ne!(image(&lookalike), image(&format!("sha256:{HEX64}")));
        assert!(is_dns_subdomain(&image(&lookalike)));
        assert!(is_dns_subdomain(&image("Weird_Name")));
    }

    #[test]
    fn long_names_fit() {
        let stream = "s".repeat(250);
        let tag = "t".repeat(128);
        let n = stream_tag(&stream, &tag);
        assert!(is_dns_subdomain(&n), "{n}");
        assert_ne!(n, stream_tag(&stream, &"t".repeat(127)));
        let n = stream_image(&stream, &format!("sha256:{HEX64}"));
        assert!(is_dns_subdomain(&n), "{n}");
    }

    fn stream_name() -> impl Strategy<Value = String> {
        // DNS-subdomain stream names, sometimes dotted.
        "[a-z0-9]{1,12}([.-][a-z0-9]{1,8}){0,3}"
    }

    fn tag_name() -> impl Strategy<Value = String> {
        // oc's tag rule: [\w][\w.-]{0,127}
        "[A-Za-z0-9_][A-Za-z0-9_.-]{0,30}"
    }

    proptest! {
        #[test]
        fn stream_tag_is_valid_and_plain_forms_round_trip(s in stream_name(), t in tag_name()) {
            let n = stream_tag(&s, &t);
            prop_assert!(is_dns_subdomain(&n), "{} from {}:{}", n, s, t);
            if let Some((ps, pt)) = parse_stream_tag(&n) {
                prop_assert_eq!((ps, pt), (s.as_str(), t.as_str()));
            }
        }

        #[test]
        fn distinct_pairs_get_distinct_names(
            a in (stream_name(), tag_name()),
            b in (stream_name(), tag_name()),
        ) {
            prop_assume!(a != b);
            prop_assert_ne!(stream_tag(&a.0, &a.1), stream_tag(&b.0, &b.1));
        }

        #[test]
        fn image_signature_names_are_valid_and_plain_forms_round_trip(
            hex in "[0-9a-f]{64}",
            sig in "[A-Za-z0-9_.-]{1,40}",
        ) {
            let img = format!("sha256:{hex}");
            let n = image_signature(&img, &sig);
            // Kubernetes' IsDNS1123Subdomain: no 63-character label limit, which the 64 hex
            // digits of a plain name exceed
            let k8s_subdomain = n.len() <= MAX_NAME_LEN
                && n.split('.').all(|l| {
                    !l.is_empty()
                        && l.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                });
            prop_assert!(k8s_subdomain, "{} from {}@{}", n, img, sig);
            if let Some((pi, ps)) = parse_image_signature(&n) {
                prop_assert_eq!((pi, ps), (img, sig.as_str()));
            }
        }

        #[test]
        fn images_are_valid(s in "[a-zA-Z0-9:._@-]{1,80}") {
            prop_assert!(is_dns_subdomain(&image(&s)));
        }
    }

    #[test]
    fn no_collisions_over_a_dense_set() {
        // Every pair from small alphabets, including the tricky separators.
        let streams = ["a", "b", "a.b", "a-b", "ab", "a.b.c", "b.c"];
        let tags = [
            "c", "b.c", "c.d", "C", "c_d", "c-d", "_c", "c-", "c.", "latest", "Latest",
        ];
        let mut seen = HashMap::new();
        for s in streams {
            for t in tags {
                let n = stream_tag(s, t);
                assert!(is_dns_subdomain(&n), "{n}");
                if let Some(prev) = seen.insert(n.clone(), (s, t)) {
                    panic!("{s}:{t} collides with {prev:?} as {n}");
                }
            }
        }
    }
}
