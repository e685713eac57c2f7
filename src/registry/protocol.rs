//! The pure parts of the distribution protocol: authentication challenges, `Retry-After`,
//! `Link` pagination, media types, digests and error bodies. No IO here.

use std::collections::BTreeMap;
use std::time::Duration;

use sha2::{Digest as _, Sha256, Sha384, Sha512};

/// Largest manifest accepted, in bytes (4 MiB, as distribution's own limit).
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// Largest image config blob accepted by default, in bytes.
pub const MAX_CONFIG_BYTES: usize = 8 << 20;
/// Largest tag-list page accepted, in bytes.
pub const MAX_TAG_PAGE_BYTES: usize = 8 << 20;

/// Docker schema2 manifest.
pub const DOCKER_SCHEMA2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema1 (unsigned); requested last so a schema1-only registry says so.
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Docker schema1 (signed).
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Manifest media types in the order we prefer them. Distribution 2.8 answers 404 for OCI
/// content unless the OCI types are listed, and rewrites schema2 tags to schema1 unless
/// schema2 is listed, so every request carries all of them.
pub const MANIFEST_MEDIA_TYPES: [&str; 6] = [
    OCI_INDEX,
    OCI_MANIFEST,
    DOCKER_LIST,
    DOCKER_SCHEMA2,
    DOCKER_SCHEMA1_SIGNED,
    DOCKER_SCHEMA1,
];

/// The `Accept` header value for manifest requests.
pub fn manifest_accept() -> String {
    MANIFEST_MEDIA_TYPES.join(", ")
}

/// Whether `media_type` is one of [`MANIFEST_MEDIA_TYPES`].
pub fn is_manifest_media_type(media_type: &str) -> bool {
    MANIFEST_MEDIA_TYPES.contains(&media_type)
}

/// Whether `media_type` is a schema1 type (its digest is over the unsigned payload, not the
/// body, so the body cannot be checked against it).
pub fn is_schema1(media_type: &str) -> bool {
    media_type == DOCKER_SCHEMA1 || media_type == DOCKER_SCHEMA1_SIGNED
}

/// `Content-Type` without parameters, lower case: `application/json; charset=utf-8` →
/// `application/json`.
pub fn bare_media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The media type of a manifest body when the `Content-Type` does not tell: the body's
/// `mediaType`, else inferred from its shape (OCI allows omitting `mediaType`; schema1 has
/// `schemaVersion: 1`). Errors describe JSON that is not a manifest.
pub fn manifest_media_type_from_body(body: &[u8]) -> Result<Option<String>, String> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let object = value
        .as_object()
        .ok_or_else(|| "expected a JSON object".to_string())?;
    if let Some(mt) = object.get("mediaType") {
        let mt = mt
            .as_str()
            .ok_or_else(|| "mediaType is not a string".to_string())?;
        return Ok(Some(mt.to_string()));
    }
    let schema_version = object
        .get("schemaVersion")
        .and_then(serde_json::Value::as_i64);
    Ok(match schema_version {
        Some(1) if object.contains_key("signatures") => Some(DOCKER_SCHEMA1_SIGNED.to_string()),
        Some(1) => Some(DOCKER_SCHEMA1.to_string()),
        Some(2) if object.contains_key("manifests") => Some(OCI_INDEX.to_string()),
        Some(2) if object.contains_key("config") && object.contains_key("layers") => {
            Some(OCI_MANIFEST.to_string())
        }
        _ => None,
    })
}

// ----------------------------------------------------------------- digests ---

/// A content digest `algorithm:hex`, for the algorithms registries use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Sha384,
    Sha512,
}

impl Algorithm {
    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha384 => 96,
            Algorithm::Sha512 => 128,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// `algorithm:hex` of `bytes`.
    pub fn digest(self, bytes: &[u8]) -> String {
        let hex = match self {
            Algorithm::Sha256 => hex(&Sha256::digest(bytes)),
            Algorithm::Sha384 => hex(&Sha384::digest(bytes)),
            Algorithm::Sha512 => hex(&Sha512::digest(bytes)),
        };
        format!("{}:{hex}", self.name())
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The algorithm of a well-formed digest (`sha256:` + 64 lower-case hex digits, and the
/// sha384/sha512 equivalents), or `None`.
pub fn parse_digest(digest: &str) -> Option<Algorithm> {
    let (alg, hex) = digest.split_once(':')?;
    let alg = match alg {
        "sha256" => Algorithm::Sha256,
        "sha384" => Algorithm::Sha384,
        "sha512" => Algorithm::Sha512,
        _ => return None,
    };
    let ok = hex.len() == alg.hex_len()
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    ok.then_some(alg)
}

/// Whether `reference` (the last part of a manifest URL) is a digest rather than a tag.
pub fn is_digest_reference(reference: &str) -> bool {
    reference.contains(':')
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    Algorithm::Sha256.digest(bytes)
}

// ---------------------------------------------------------- names (paths) ---

/// Whether `repository` can go into a `/v2/<repository>/…` path: lower-case path components
/// of `[a-z0-9]` separated by `.`, `_`, `__` or `-` runs, joined by `/`.
pub fn is_valid_repository(repository: &str) -> bool {
    !repository.is_empty()
        && repository.len() <= 255
        && repository.split('/').all(|component| {
            !component.is_empty()
                && component
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && component
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphanumeric())
                && component
                    .bytes()
                    .last()
                    .is_some_and(|b| b.is_ascii_alphanumeric())
        })
}

/// Whether `tag` is a valid tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
pub fn is_valid_tag(tag: &str) -> bool {
    tag.len() <= 128
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Whether `registry` is a plausible `host[:port]` (no scheme, path, user info or spaces).
pub fn is_valid_registry(registry: &str) -> bool {
    !registry.is_empty()
        && registry.len() <= 255
        && registry
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
}

// ------------------------------------------------------------- challenges ---

/// One `WWW-Authenticate` challenge: the scheme (lower case) and its parameters (names lower
/// case, values unquoted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parses a `WWW-Authenticate` value, which may hold several comma-separated challenges:
/// `Bearer realm="https://auth.example/token",service="reg",scope="repository:a:pull"`.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut scanner = Scanner::new(header);
    let mut challenges = Vec::new();
    loop {
        scanner.skip(|c| c.is_whitespace() || c == ',');
        let scheme = scanner.token();
        if scheme.is_empty() {
            break;
        }
        let mut params = BTreeMap::new();
        loop {
            let before = scanner.pos;
            scanner.skip(|c| c.is_whitespace() || c == ',');
            let name = scanner.token();
            scanner.skip(char::is_whitespace);
            if name.is_empty() || !scanner.eat('=') {
                // a token without `=` starts the next challenge
                scanner.pos = before;
                break;
            }
            scanner.skip(char::is_whitespace);
            let value = if scanner.peek() == Some('"') {
                scanner.quoted()
            } else {
                scanner.token().to_string()
            };
            params.insert(name.to_ascii_lowercase(), value);
        }
        challenges.push(Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params,
        });
        if scanner.pos >= scanner.input.len() {
            break;
        }
    }
    challenges
}

struct Scanner<'a> {
    input: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn new(input: &'a str) -> Self {
        Scanner { input, pos: 0 }
    }

    fn peek(&self) -> Option<char> {
        self.input[self.pos..].chars().next()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn skip(&mut self, pred: impl Fn(char) -> bool) {
        while let Some(c) = self.peek() {
            if !pred(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
    }

    fn token(&mut self) -> &'a str {
        let start = self.pos;
        self.skip(|c| !(c.is_whitespace() || c == ',' || c == '=' || c == '"'));
        &self.input[start..self.pos]
    }

    /// A quoted string starting at `"`, with `\` escapes; an unterminated one runs to the end.
    fn quoted(&mut self) -> String {
        let mut out = String::new();
        self.eat('"');
        while let Some(c) = self.peek() {
            self.pos += c.len_utf8();
            match c {
                '"' => break,
                '\\' => {
                    if let Some(next) = self.peek() {
                        self.pos += next.len_utf8();
                        out.push(next);
                    }
                }
                c => out.push(c),
            }
        }
        out
    }
}

// ------------------------------------------------------------ Retry-After ---

/// `Retry-After` as a delay from `now`: delta-seconds (`120`) or an HTTP date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`); a date in the past is zero. Garbage is `None`.
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    static PARSER: jiff::fmt::rfc2822::DateTimeParser = jiff::fmt::rfc2822::DateTimeParser::new();
    let at = PARSER.parse_timestamp(value).ok()?;
    let delta = at.duration_since(now);
    Some(Duration::try_from(delta).unwrap_or(Duration::ZERO))
}

// ------------------------------------------------------------------- Link ---

/// The target of the `rel="next"` link in a `Link` header, as written (usually a path with a
/// query: `</v2/a/tags/list?last=x&n=100>; rel="next"`).
pub fn parse_next_link(header: &str) -> Option<String> {
    let mut rest = header;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let end = after.find('>')?;
        let target = &after[..end];
        let params_and_more = &after[end + 1..];
        // the parameters of this link run up to the next `<`
        let params = params_and_more
            .find('<')
            .map_or(params_and_more, |i| &params_and_more[..i]);
        let is_next = params.split(';').any(|p| {
            let Some((name, value)) = p.split_once('=') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_matches('"')
                    .split_whitespace()
                    .any(|rel| rel.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.to_string());
        }
        rest = params_and_more;
    }
    None
}

// ------------------------------------------------------------ error bodies ---

/// A short description of a registry error body (`{"errors":[{"code":…,"message":…}]}`):
/// `MANIFEST_UNKNOWN: manifest unknown`; `None` when the body is not one.
pub fn describe_error_body(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Body {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let body: Body = serde_json::from_slice(body).ok()?;
    let parts: Vec<String> = body
        .errors
        .iter()
        .take(3)
        .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
            (false, false) => format!("{}: {}", e.code, e.message),
            (false, true) => e.code.clone(),
            _ => e.message.clone(),
        })
        .filter(|s| !s.is_empty())
        .collect();
    if parts.is_empty() {
        return None;
    }
    let mut s = parts.join("; ");
    truncate(&mut s, 300);
    Some(s)
}

/// Cuts `s` to at most `max` bytes on a character boundary, marking the cut with `…`.
pub fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_with_quoted_params() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(c[0].param("scope"), Some("repository:library/ubuntu:pull"));
    }

    #[test]
    fn several_challenges_spaces_tokens_and_escapes() {
        let c = parse_challenges(
            r#"Basic realm="Registry Realm", Bearer realm = "https://a/token" , service=reg,error="insufficient_scope", Negotiate"#,
        );
        assert_eq!(c.len(), 3, "{c:?}");
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("Registry Realm"));
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].param("realm"), Some("https://a/token"));
        assert_eq!(c[1].param("service"), Some("reg"));
        assert_eq!(c[1].param("error"), Some("insufficient_scope"));
        assert_eq!(c[2].scheme, "negotiate");
        assert!(c[2].params.is_empty());

        let c = parse_challenges(r#"BEARER Realm="a\"b\\c""#);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some(r#"a"b\c"#));
        assert!(parse_challenges("").is_empty());
        assert!(parse_challenges("  ,, ").is_empty());
        let c = parse_challenges(r#"Bearer realm="unterminated"#);
        assert_eq!(c[0].param("realm"), Some("unterminated"));
    }

    #[test]
    fn retry_after_seconds_dates_and_garbage() {
        let now: jiff::Timestamp = "2015-10-21T07:27:00Z".parse().unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(parse_retry_after("1.5", now), None);
    }

    #[test]
    fn next_links() {
        assert_eq!(
            parse_next_link(r#"</v2/_catalog?last=lab%2Fdocker-list&n=2>; rel="next""#).as_deref(),
            Some("/v2/_catalog?last=lab%2Fdocker-list&n=2")
        );
        assert_eq!(
            parse_next_link(r#"<https://r/v2/a/tags/list?last=b>;rel=next"#).as_deref(),
            Some("https://r/v2/a/tags/list?last=b")
        );
        assert_eq!(
            parse_next_link(r#"</first>; rel="prev", </second>; rel="other next""#).as_deref(),
            Some("/second")
        );
        assert_eq!(parse_next_link(r#"</x>; rel="prev""#), None);
        assert_eq!(parse_next_link("garbage"), None);
        assert_eq!(parse_next_link("<unterminated; rel=next"), None);
    }

    #[test]
    fn digests() {
        let d = sha256_digest(b"");
        assert_eq!(
            d,
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(parse_digest(&d), Some(Algorithm::Sha256));
        assert_eq!(parse_digest("sha256:abc"), None);
        assert_eq!(parse_digest(&d.to_uppercase()), None);
        assert_eq!(parse_digest("md5:d41d8cd98f00b204e9800998ecf8427e"), None);
        let d512 = Algorithm::Sha512.digest(b"x");
        assert_eq!(parse_digest(&d512), Some(Algorithm::Sha512));
        assert!(is_digest_reference(&d) && !is_digest_reference("latest"));
    }

    #[test]
    fn media_types() {
        assert_eq!(
            bare_media_type("Application/JSON; charset=utf-8"),
            "application/json"
        );
        assert!(manifest_accept().starts_with(OCI_INDEX));
        assert!(manifest_accept().ends_with(DOCKER_SCHEMA1));
        let from = |s: &str| manifest_media_type_from_body(s.as_bytes());
        assert_eq!(
            from(r#"{"mediaType":"x/y"}"#).unwrap().as_deref(),
            Some("x/y")
        );
        assert_eq!(
            from(r#"{"schemaVersion":2,"manifests":[]}"#)
                .unwrap()
                .as_deref(),
            Some(OCI_INDEX)
        );
        assert_eq!(
            from(r#"{"schemaVersion":2,"config":{},"layers":[]}"#)
                .unwrap()
                .as_deref(),
            Some(OCI_MANIFEST)
        );
        assert_eq!(
            from(r#"{"schemaVersion":1,"signatures":[]}"#)
                .unwrap()
                .as_deref(),
            Some(DOCKER_SCHEMA1_SIGNED)
        );
        assert_eq!(from(r#"{"schemaVersion":3}"#).unwrap(), None);
        assert!(from("{not json").is_err());
        assert!(from("[]").is_err());
        assert!(from(r#"{"mediaType":1}"#).is_err());
    }

    #[test]
    fn names() {
        for ok in ["a", "lab/multi", "a/b/c-d", "a__b", "a.b"] {
            assert!(is_valid_repository(ok), "{ok}");
        }
        for bad in ["", "A", "a//b", "/a", "a/", "-a", "a?b", "a b", "../x"] {
            assert!(!is_valid_repository(bad), "{bad}");
        }
        for ok in ["latest", "v1.2-rc_3", "_x", "A"] {
            assert!(is_valid_tag(ok), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", &"x".repeat(129)] {
            assert!(!is_valid_tag(bad), "{bad}");
        }
        assert!(is_valid_registry("127.0.0.1:5000"));
        assert!(is_valid_registry("[::1]:5000"));
        assert!(!is_valid_registry("https://a"));
        assert!(!is_valid_registry("a/b"));
        assert!(!is_valid_registry("user@a"));
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            describe_error_body(
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#
            )
            .as_deref(),
            Some("MANIFEST_UNKNOWN: manifest unknown")
        );
        assert_eq!(describe_error_body(b"<html>"), None);
        assert_eq!(describe_error_body(br#"{"errors":[]}"#), None);
        let mut s = "é".repeat(10);
        truncate(&mut s, 5);
        assert_eq!(s, "éé…");
    }
}
