//! Who may notify: the receiver's path, and the token or signature each request carries.
//! Decided without IO; every comparison of secret material is constant time.
//!
//! The path is derived from the token ([`webhook_path`]), so it is as hard to guess as the
//! token, and for senders that can neither add a header nor sign (Docker Hub, Quay, Pub/Sub
//! push) it is the credential. Senders that can carry the token send it in `Authorization`
//! (`Bearer <token>`, or the bare token as Harbor and GitLab do); GitHub signs the body with
//! HMAC-SHA256 (`X-Hub-Signature-256: sha256=<hex>`).

use aws_lc_rs::{constant_time, hmac};
use sha2::{Digest, Sha256};

use super::resource::ReceiverType;

/// Where receivers are served on the operator's HTTPS listener.
pub const PATH_PREFIX: &str = "/hooks/";

/// `/hooks/<64 hex>`: SHA-256 of a label, the receiver's namespace and name, and its token.
pub fn webhook_path(namespace: &str, name: &str, token: &str) -> String {
    let mut h = Sha256::new();
    for part in ["imagestream-operator/receiver/v1", namespace, name, token] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    let mut path = String::with_capacity(PATH_PREFIX.len() + 64);
    path.push_str(PATH_PREFIX);
    for byte in digest {
        path.push_str(&format!("{byte:02x}"));
    }
    path
}

/// Why a request was refused (answered 401, costing nothing more).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("no {0} header")]
    Missing(&'static str),
    #[error("the {0} header does not carry the receiver's token")]
    WrongToken(&'static str),
    #[error("the X-Hub-Signature-256 header is not a valid HMAC-SHA256 of the body")]
    BadSignature,
}

/// How a receiver type authenticates beyond its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// The token in `Authorization`.
    Token,
    /// An HMAC-SHA256 of the body in `X-Hub-Signature-256`.
    GithubSignature,
    /// Nothing but the path (the sender cannot add headers).
    PathOnly,
}

pub fn scheme(kind: ReceiverType) -> Scheme {
    match kind {
        ReceiverType::Distribution
        | ReceiverType::Gitlab
        | ReceiverType::Harbor
        | ReceiverType::Acr
        | ReceiverType::Ecr
        | ReceiverType::Cloudevents => Scheme::Token,
        ReceiverType::Github => Scheme::GithubSignature,
        ReceiverType::Dockerhub | ReceiverType::Quay | ReceiverType::Gar => Scheme::PathOnly,
    }
}

/// Checks one request (already matched to the receiver by its path) for `kind`.
pub fn check(
    kind: ReceiverType,
    token: &str,
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
) -> Result<(), Refused> {
    match scheme(kind) {
        Scheme::PathOnly => Ok(()),
        Scheme::Token => {
            let value = header("authorization").ok_or(Refused::Missing("Authorization"))?;
            let value = value.trim();
            let presented = match value.split_once(' ') {
                Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
                _ => value,
            };
            if equal(presented.as_bytes(), token.as_bytes()) {
                Ok(())
            } else {
                Err(Refused::WrongToken("Authorization"))
            }
        }
        Scheme::GithubSignature => {
            let value =
                header("x-hub-signature-256").ok_or(Refused::Missing("X-Hub-Signature-256"))?;
            let tag = value
                .trim()
                .strip_prefix("sha256=")
                .and_then(decode_hex)
                .ok_or(Refused::BadSignature)?;
            let key = hmac::Key::new(hmac::HMAC_SHA256, token.as_bytes());
            hmac::verify(&key, body, &tag).map_err(|_| Refused::BadSignature)
        }
    }
}

/// Constant-time equality (the length is not secret).
pub fn equal(a: &[u8], b: &[u8]) -> bool {
    constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// GitHub's signature header for `body` (tests and senders of our own).
pub fn github_signature(token: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, token.as_bytes());
    let tag = hmac::sign(&key, body);
    let mut out = String::from("sha256=");
    for byte in tag.as_ref() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 256 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn paths_are_stable_distinct_and_unguessable_without_the_token() {
        let p = webhook_path("team-a", "harbor", "s3cret");
        assert_eq!(p, webhook_path("team-a", "harbor", "s3cret"));
        assert!(p.starts_with(PATH_PREFIX));
        assert_eq!(p.len(), PATH_PREFIX.len() + 64);
        assert!(
            p[PATH_PREFIX.len()..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit())
        );
        for other in [
            webhook_path("team-a", "harbor", "s3cret2"),
            webhook_path("team-b", "harbor", "s3cret"),
            webhook_path("team-a", "harbo", "rs3cret"),
        ] {
            assert_ne!(p, other);
        }
    }

    #[test]
    fn tokens_in_authorization_bearer_or_bare() {
        let body = b"{}";
        for value in ["Bearer tok", "bearer  tok", "tok", " tok "] {
            let h = headers(&[("Authorization", value)]);
            assert_eq!(
                check(ReceiverType::Distribution, "tok", &h, body),
                Ok(()),
                "{value}"
            );
        }
        for value in ["Bearer tok2", "Bearer to", "Basic dG9r", "", "Bearer"] {
            let h = headers(&[("Authorization", value)]);
            assert_eq!(
                check(ReceiverType::Harbor, "tok", &h, body),
                Err(Refused::WrongToken("Authorization")),
                "{value}"
            );
        }
        assert_eq!(
            check(ReceiverType::Acr, "tok", &headers(&[]), body),
            Err(Refused::Missing("Authorization"))
        );
        // the path is the only credential these senders can carry
        for kind in [
            ReceiverType::Dockerhub,
            ReceiverType::Quay,
            ReceiverType::Gar,
        ] {
            assert_eq!(check(kind, "tok", &headers(&[]), body), Ok(()));
        }
    }

    #[test]
    fn github_signatures_are_verified_and_forgeries_refused() {
        // GitHub's documented test vector (docs.github.com, "Validating webhook deliveries"):
        // secret "It's a Secret to Everybody", payload "Hello, World!"
        let signature = github_signature("It's a Secret to Everybody", b"Hello, World!");
        assert_eq!(
            signature,
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        let h = headers(&[("X-Hub-Signature-256", &signature)]);
        assert_eq!(
            check(
                ReceiverType::Github,
                "It's a Secret to Everybody",
                &h,
                b"Hello, World!"
            ),
            Ok(())
        );
        // another body, another secret, a truncated or malformed signature
        assert_eq!(
            check(
                ReceiverType::Github,
                "It's a Secret to Everybody",
                &h,
                b"Hello, World?"
            ),
            Err(Refused::BadSignature)
        );
        assert_eq!(
            check(ReceiverType::Github, "another", &h, b"Hello, World!"),
            Err(Refused::BadSignature)
        );
        for forged in [
            &signature[..signature.len() - 2],
            "sha256=zz",
            "sha1=757107ea0eb2509fc211221cce984b8a37570b6d",
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha256=",
        ] {
            let h = headers(&[("X-Hub-Signature-256", forged)]);
            assert_eq!(
                check(
                    ReceiverType::Github,
                    "It's a Secret to Everybody",
                    &h,
                    b"Hello, World!"
                ),
                Err(Refused::BadSignature),
                "{forged}"
            );
        }
        assert_eq!(
            check(ReceiverType::Github, "s", &headers(&[]), b"x"),
            Err(Refused::Missing("X-Hub-Signature-256"))
        );
    }
}
