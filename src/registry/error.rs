//! Registry failures, classified the way OpenShift's importer reports them (semantics 5.9).
//!
//! Every variant names the image (`registry/repository:tag`, `…@digest`, or
//! `registry/repository` for tag lists and blobs) and what failed. [`RegistryError::reason`]
//! is the `metav1.Status` reason an ImageStreamImport status and a tag condition carry;
//! messages follow upstream's wording where upstream has one. No message ever contains
//! credentials, tokens, or the query string of a redirect URL (signed CDN URLs).

use std::time::Duration;

/// Why a registry could not be asked, or what it answered instead of the content.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The manifest, tag or repository does not exist (HTTP 404 on a manifest or tag list).
    #[error("dockerimage.image.openshift.io {image:?} not found")]
    NotFound { image: String },

    /// The registry or its token server refused us (HTTP 401 after authenticating).
    #[error("{}", unauthorized_message(image, *kind))]
    Unauthorized {
        image: String,
        kind: UnauthorizedKind,
    },

    /// The registry answered HTTP 403.
    #[error("you may not have access to the container image {image:?}")]
    Denied { image: String },

    /// The operator's policy forbids contacting the registry or address.
    #[error("{message}")]
    Forbidden { message: String },

    /// HTTPS to a registry that only speaks HTTP, without the insecure flag (upstream's text).
    #[error("the repository {repository} is HTTP only and requires the insecure flag to import")]
    HttpOnly { repository: String },

    /// The registry, repository or reference cannot be put in a request.
    #[error("{image:?} is invalid: {detail}")]
    Invalid { image: String, detail: String },

    /// HTTP 429 on every attempt.
    #[error("{image}: too many requests to {registry} (HTTP 429){}", retry_after_text(*retry_after))]
    TooManyRequests {
        image: String,
        registry: String,
        retry_after: Option<Duration>,
    },

    /// No complete answer within the request timeout.
    #[error("{image}: no answer from {registry} within {}s", after.as_secs_f64())]
    Timeout {
        image: String,
        registry: String,
        after: Duration,
    },

    /// The connection failed (DNS, TCP, TLS), or the connection broke while reading.
    #[error("Internal error occurred: {image}: {detail}")]
    Transport {
        image: String,
        detail: String,
        /// Connect errors and broken connections are worth another attempt.
        transient: bool,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// An unexpected HTTP status from the registry.
    #[error("Internal error occurred: {image}: {detail}")]
    Status {
        image: String,
        status: u16,
        detail: String,
    },

    /// The content does not hash to the digest it was asked by or announced with.
    #[error(
        "Internal error occurred: {image}: content integrity error: the {what} has digest {actual}, expected {expected}"
    )]
    DigestMismatch {
        image: String,
        what: &'static str,
        expected: String,
        actual: String,
    },

    /// A body larger than we accept.
    #[error(
        "Internal error occurred: {image}: the {what} is larger than the limit of {limit} bytes"
    )]
    TooLarge {
        image: String,
        what: &'static str,
        limit: usize,
    },

    /// A body that is not what the registry protocol promises (bad JSON, missing fields).
    #[error("Internal error occurred: {image}: malformed {what}: {detail}")]
    Malformed {
        image: String,
        what: &'static str,
        detail: String,
    },

    /// A manifest of a media type no importer understands.
    #[error("Internal error occurred: {image}: unsupported image manifest type {media_type:?}")]
    UnsupportedMediaType { image: String, media_type: String },

    /// Too many redirects, a redirect loop, or a redirect we will not follow.
    #[error("Internal error occurred: {image}: {detail}")]
    Redirect { image: String, detail: String },

    /// The client could not be built (for example an unreadable CA bundle).
    #[error("Internal error occurred: registry client: {detail}")]
    Config { detail: String },
}

/// Which of upstream's three Unauthorized messages applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnauthorizedKind {
    /// We had no credentials for the registry.
    NoCredentials,
    /// The registry or token server rejected our username and password.
    BadCredentials,
    /// Authenticated, but not allowed to pull the repository.
    Denied,
}

fn unauthorized_message(image: &str, kind: UnauthorizedKind) -> String {
    match kind {
        UnauthorizedKind::NoCredentials => format!(
            "you may not have access to the container image {image:?} and did not have credentials to the repository"
        ),
        UnauthorizedKind::BadCredentials => {
            format!("incorrect username or password for image {image:?}")
        }
        UnauthorizedKind::Denied => {
            format!("you may not have access to the container image {image:?}")
        }
    }
}

fn retry_after_text(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(", asked to retry after {}s", d.as_secs()),
        None => String::new(),
    }
}

impl RegistryError {
    /// The `metav1.Status` reason (PascalCase), as upstream reports it; `TooManyRequests` and
    /// `Timeout` are ours where upstream would say `InternalError`.
    pub fn reason(&self) -> &'static str {
        match self {
            RegistryError::NotFound { .. } => "NotFound",
            RegistryError::Unauthorized { .. } => "Unauthorized",
            RegistryError::Denied { .. } | RegistryError::Forbidden { .. } => "Forbidden",
            RegistryError::HttpOnly { .. } => "BadRequest",
            RegistryError::Invalid { .. } => "Invalid",
            RegistryError::TooManyRequests { .. } => "TooManyRequests",
            RegistryError::Timeout { .. } => "Timeout",
            RegistryError::Transport { .. }
            | RegistryError::Status { .. }
            | RegistryError::DigestMismatch { .. }
            | RegistryError::TooLarge { .. }
            | RegistryError::Malformed { .. }
            | RegistryError::UnsupportedMediaType { .. }
            | RegistryError::Redirect { .. }
            | RegistryError::Config { .. } => "InternalError",
        }
    }

    /// The `metav1.Status` code that goes with [`reason`](Self::reason).
    pub fn code(&self) -> u16 {
        match self.reason() {
            "NotFound" => 404,
            "Unauthorized" => 401,
            "Forbidden" => 403,
            "BadRequest" => 400,
            "Invalid" => 422,
            "TooManyRequests" => 429,
            "Timeout" => 504,
            _ => 500,
        }
    }

    /// The status message (the same as `Display`).
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// Whether another attempt may succeed: connection failures, timeouts, HTTP 429 and
    /// 500/502/503/504.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Transport { transient, .. } => *transient,
            RegistryError::Status { status, .. } => matches!(status, 500 | 502 | 503 | 504),
            RegistryError::TooManyRequests { .. } | RegistryError::Timeout { .. } => true,
            _ => false,
        }
    }

    /// The delay the registry asked for with `Retry-After` on a 429.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RegistryError::TooManyRequests { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status the registry answered, when the failure is one.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            RegistryError::NotFound { .. } => Some(404),
            RegistryError::Denied { .. } => Some(403),
            RegistryError::TooManyRequests { .. } => Some(429),
            RegistryError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_codes_and_messages_follow_upstream() {
        let image = "reg.io/ns/app:v1".to_string();
        let cases: Vec<(RegistryError, &str, u16, &str)> = vec![
            (
                RegistryError::NotFound {
                    image: image.clone(),
                },
                "NotFound",
                404,
                r#"dockerimage.image.openshift.io "reg.io/ns/app:v1" not found"#,
            ),
            (
                RegistryError::Unauthorized {
                    image: image.clone(),
                    kind: UnauthorizedKind::NoCredentials,
                },
                "Unauthorized",
                401,
                r#"you may not have access to the container image "reg.io/ns/app:v1" and did not have credentials to the repository"#,
            ),
            (
                RegistryError::Unauthorized {
                    image: image.clone(),
                    kind: UnauthorizedKind::BadCredentials,
                },
                "Unauthorized",
                401,
                r#"incorrect username or password for image "reg.io/ns/app:v1""#,
            ),
            (
                RegistryError::Unauthorized {
                    image: image.clone(),
                    kind: UnauthorizedKind::Denied,
                },
                "Unauthorized",
                401,
                r#"you may not have access to the container image "reg.io/ns/app:v1""#,
            ),
            (
                RegistryError::HttpOnly {
                    repository: "reg.io/ns/app".into(),
                },
                "BadRequest",
                400,
                "the repository reg.io/ns/app is HTTP only and requires the insecure flag to import",
            ),
            (
                RegistryError::Status {
                    image: image.clone(),
                    status: 502,
                    detail: "HTTP 502 Bad Gateway".into(),
                },
                "InternalError",
                500,
                "Internal error occurred: reg.io/ns/app:v1: HTTP 502 Bad Gateway",
            ),
            (
                RegistryError::TooManyRequests {
                    image: image.clone(),
                    registry: "reg.io".into(),
                    retry_after: Some(Duration::from_secs(3)),
                },
                "TooManyRequests",
                429,
                "reg.io/ns/app:v1: too many requests to reg.io (HTTP 429), asked to retry after 3s",
            ),
            (
                RegistryError::Timeout {
                    image,
                    registry: "reg.io".into(),
                    after: Duration::from_millis(1500),
                },
                "Timeout",
                504,
                "reg.io/ns/app:v1: no answer from reg.io within 1.5s",
            ),
        ];
        for (err, reason, code, message) in cases {
            assert_eq!(err.reason(), reason, "{err:?}");
            assert_eq!(err.code(), code, "{err:?}");
            assert_eq!(err.message(), message);
        }
    }

    #[test]
    fn only_transport_timeouts_429_and_5xx_are_transient() {
        let status = |status| RegistryError::Status {
            image: "i".into(),
            status,
            detail: String::new(),
        };
        for s in [500, 502, 503, 504] {
            assert!(status(s).is_transient());
        }
        for s in [400, 405, 501] {
            assert!(!status(s).is_transient());
        }
        assert!(!RegistryError::NotFound { image: "i".into() }.is_transient());
        assert!(
            RegistryError::Transport {
                image: "i".into(),
                detail: String::new(),
                transient: true,
                source: None
            }
            .is_transient()
        );
    }
}
