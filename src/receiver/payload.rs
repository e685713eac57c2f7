//! What a registry's notification says was pushed, decided without IO: each vendor's payload
//! turned into [`Push`]es (registry host, repository, tag and/or digest).
//!
//! Nothing here is trusted beyond naming what to look at: a push only selects stream tags
//! whose own `from` names that repository (and tag or digest), and those are checked against
//! the registry the stream names. No URL in a payload is ever requested; hosts, repositories,
//! tags and digests are validated against the reference grammar and anything else makes the
//! payload malformed. Events that are not pushes (pulls, deletes, scans, pings) yield nothing.
//!
//! Parsing walks `serde_json::Value`s with `get`, so a field of an unexpected type is a
//! missing field, never a panic.

use base64::Engine as _;
use serde_json::Value;

use crate::reference::{DockerImageReference, is_valid_tag, validate_digest};

use super::resource::ReceiverType;

/// One pushed image, as a notification names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Push {
    /// `host[:port]`, lower case, when the payload names it.
    pub registry: Option<String>,
    /// The repository path, lower case (`library/nginx`, `team/app`).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

/// Most pushes one payload may name (an envelope of events, a Quay push of many tags).
pub const MAX_PUSHES: usize = 256;

/// Why a payload cannot be used (answered 400).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("the body is not JSON: {0}")]
    Json(String),
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("{what} {value:?} is not valid")]
    Invalid { what: &'static str, value: String },
    #[error("more than {MAX_PUSHES} pushes in one notification")]
    TooMany,
}

/// The pushes a `kind` payload names. `header` looks a request header up by lower-case name
/// (GitHub's event name, CloudEvents' binary mode).
pub fn parse(
    kind: ReceiverType,
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
) -> Result<Vec<Push>, Malformed> {
    let pushes = match kind {
        ReceiverType::Distribution | ReceiverType::Gitlab => distribution(&json(body)?)?,
        ReceiverType::Harbor => harbor(&json(body)?)?,
        ReceiverType::Quay => quay(&json(body)?)?,
        ReceiverType::Dockerhub => dockerhub(&json(body)?)?,
        ReceiverType::Github => github(header("x-github-event").as_deref(), &json(body)?)?,
        ReceiverType::Acr => acr(&json(body)?)?,
        ReceiverType::Gar => gar(&json(body)?)?,
        ReceiverType::Ecr => ecr(&json(body)?)?,
        ReceiverType::Cloudevents => cloudevents(header, body)?,
    };
    if pushes.len() > MAX_PUSHES {
        return Err(Malformed::TooMany);
    }
    pushes
        .into_iter()
        .map(clean)
        .collect::<Result<Vec<_>, _>>()
        .map(|mut p| {
            p.sort();
            p.dedup();
            p
        })
}

fn json(body: &[u8]) -> Result<Value, Malformed> {
    serde_json::from_slice(body).map_err(|e| Malformed::Json(e.to_string()))
}

fn text<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut v = value;
    for key in path {
        v = v.get(key)?;
    }
    v.as_str().map(str::trim).filter(|s| !s.is_empty())
}

fn raw(registry: Option<&str>, repository: &str, tag: Option<&str>, digest: Option<&str>) -> Push {
    Push {
        registry: registry.map(str::to_string),
        repository: repository.to_string(),
        tag: tag.map(str::to_string),
        digest: digest.map(str::to_string),
    }
}

/// Validates and normalises one push: host and repository lower case, tag and digest
/// checked against the reference grammar.
fn clean(push: Push) -> Result<Push, Malformed> {
    let invalid = |what: &'static str, value: &str| Malformed::Invalid {
        what,
        value: value.chars().take(200).collect(),
    };
    let registry = match push.registry {
        Some(host) => {
            let host = host.trim().to_ascii_lowercase();
            if !is_host(&host) {
                return Err(invalid("registry host", &host));
            }
            Some(host)
        }
        None => None,
    };
    let repository = push
        .repository
        .trim()
        .trim_matches('/')
        .to_ascii_lowercase();
    if !is_repository(&repository) {
        return Err(invalid("repository", &repository));
    }
    let tag = match push.tag {
        Some(t) if validate_digest(&t).is_ok() => {
            // Harbor names a push by digest with the digest as its tag
            return Ok(Push {
                registry,
                repository,
                tag: None,
                digest: Some(push.digest.unwrap_or(t)),
            })
            .and_then(clean_digest);
        }
        Some(t) if is_valid_tag(&t) => Some(t),
        Some(t) => return Err(invalid("tag", &t)),
        None => None,
    };
    clean_digest(Push {
        registry,
        repository,
        tag,
        digest: push.digest,
    })
}

fn clean_digest(push: Push) -> Result<Push, Malformed> {
    match &push.digest {
        Some(d) if validate_digest(d).is_err() => Err(Malformed::Invalid {
            what: "digest",
            value: d.chars().take(200).collect(),
        }),
        _ => Ok(push),
    }
}

/// `host[:port]`: DNS labels or an IPv4/bracketed IPv6 address, an optional numeric port.
fn is_host(host: &str) -> bool {
    if host.is_empty() || host.len() > 255 {
        return false;
    }
    let (name, port) = match host.rsplit_once(':') {
        // a bare IPv6 address has colons and no port
        Some((name, _)) if !name.ends_with(']') && name.contains(':') => (host, None),
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    })
}

/// A repository path the reference grammar accepts.
fn is_repository(repository: &str) -> bool {
    !repository.is_empty()
        && repository.len() <= 255
        && DockerImageReference::parse(&format!("registry.invalid/{repository}"))
            .is_ok_and(|r| r.tag.is_empty() && r.id.is_empty())
}

// ------------------------------------------------------------ distribution ---

/// The Distribution notification envelope (`docker-registry`, GitLab's registry, Harbor's
/// legacy endpoints): `events[]` with `action`, `target.{repository,tag,digest,mediaType}`
/// and `request.host`. Pushes of manifests only: blob pushes carry no tag and name layers.
fn distribution(v: &Value) -> Result<Vec<Push>, Malformed> {
    let events = v
        .get("events")
        .and_then(Value::as_array)
        .ok_or(Malformed::Missing("events"))?;
    if events.len() > MAX_PUSHES {
        return Err(Malformed::TooMany);
    }
    let mut pushes = Vec::new();
    for event in events {
        if text(event, &["action"]) != Some("push") {
            continue;
        }
        let tag = text(event, &["target", "tag"]);
        let media_type = text(event, &["target", "mediaType"]).unwrap_or_default();
        let manifest = media_type.contains("manifest") || media_type.contains("image.index");
        if tag.is_none() && !manifest {
            continue;
        }
        let repository = text(event, &["target", "repository"])
            .ok_or(Malformed::Missing("target.repository"))?;
        pushes.push(raw(
            text(event, &["request", "host"]),
            repository,
            tag,
            text(event, &["target", "digest"]),
        ));
    }
    Ok(pushes)
}

// ------------------------------------------------------------------ harbor ---

/// Harbor's default payload: `type` `PUSH_ARTIFACT` (`pushImage` before 2.0), with
/// `event_data.resources[]` (`tag`, `digest`, `resource_url` = `host/repository:tag`) and
/// `event_data.repository.repo_full_name`.
fn harbor(v: &Value) -> Result<Vec<Push>, Malformed> {
    match text(v, &["type"]) {
        Some("PUSH_ARTIFACT" | "pushImage") => {}
        Some(_) => return Ok(Vec::new()),
        None => return Err(Malformed::Missing("type")),
    }
    harbor_data(
        v.get("event_data")
            .ok_or(Malformed::Missing("event_data"))?,
    )
}

/// `event_data` (default format) or `data` (CloudEvents format) of a Harbor push.
fn harbor_data(data: &Value) -> Result<Vec<Push>, Malformed> {
    let repository = text(data, &["repository", "repo_full_name"])
        .map(str::to_string)
        .or_else(|| {
            Some(format!(
                "{}/{}",
                text(data, &["repository", "namespace"])?,
                text(data, &["repository", "name"])?
            ))
        })
        .ok_or(Malformed::Missing("repository.repo_full_name"))?;
    let resources = data
        .get("resources")
        .and_then(Value::as_array)
        .ok_or(Malformed::Missing("resources"))?;
    if resources.len() > MAX_PUSHES {
        return Err(Malformed::TooMany);
    }
    Ok(resources
        .iter()
        .map(|r| {
            let host = text(r, &["resource_url"]).and_then(|u| u.split('/').next());
            raw(host, &repository, text(r, &["tag"]), text(r, &["digest"]))
        })
        .collect())
}

// -------------------------------------------------------------------- quay ---

/// Quay's "Repository Push" notification: `docker_url` (`host/repository`), `repository`,
/// `updated_tags` (a list; an object of tag to image ID in older Quay). No digests.
fn quay(v: &Value) -> Result<Vec<Push>, Malformed> {
    let repository = text(v, &["repository"]).ok_or(Malformed::Missing("repository"))?;
    let host = text(v, &["docker_url"]).and_then(|u| {
        let (host, rest) = u.split_once('/')?;
        (rest.eq_ignore_ascii_case(repository)).then_some(host)
    });
    let tags: Vec<&str> = match v.get("updated_tags") {
        Some(Value::Array(tags)) => tags.iter().filter_map(Value::as_str).collect(),
        Some(Value::Object(tags)) => tags.keys().map(String::as_str).collect(),
        // other events (build queued, vulnerability found) have no pushed tags
        _ => return Ok(Vec::new()),
    };
    if tags.len() > MAX_PUSHES {
        return Err(Malformed::TooMany);
    }
    Ok(tags
        .into_iter()
        .map(|tag| raw(host, repository, Some(tag), None))
        .collect())
}

// --------------------------------------------------------------- dockerhub ---

/// Docker Hub's webhook: `repository.repo_name` and `push_data.tag`; the registry is Docker
/// Hub. `callback_url` is never called.
fn dockerhub(v: &Value) -> Result<Vec<Push>, Malformed> {
    let repository =
        text(v, &["repository", "repo_name"]).ok_or(Malformed::Missing("repository.repo_name"))?;
    let tag = text(v, &["push_data", "tag"]).ok_or(Malformed::Missing("push_data.tag"))?;
    Ok(vec![raw(Some("docker.io"), repository, Some(tag), None)])
}

// ------------------------------------------------------------------ github ---

/// GitHub's `registry_package` and `package` events (`X-GitHub-Event`), action `published`
/// (or `updated`) of a container package: the repository and tag from
/// `package_version.package_url` (`ghcr.io/owner/name:tag`) or the owner and package name,
/// the tag from `container_metadata.tag.name`, the digest from the version.
fn github(event: Option<&str>, v: &Value) -> Result<Vec<Push>, Malformed> {
    let key = match event {
        Some("registry_package") => "registry_package",
        Some("package") => "package",
        // ping and every other event
        Some(_) => return Ok(Vec::new()),
        None => return Err(Malformed::Missing("X-GitHub-Event header")),
    };
    if !matches!(text(v, &["action"]), Some("published" | "updated")) {
        return Ok(Vec::new());
    }
    let package = v.get(key).ok_or(Malformed::Missing("package"))?;
    let container = ["package_type", "ecosystem"].iter().any(|field| {
        text(package, &[field]).is_some_and(|t| {
            t.eq_ignore_ascii_case("container") || t.eq_ignore_ascii_case("docker")
        })
    });
    if !container {
        return Ok(Vec::new());
    }
    let version = package
        .get("package_version")
        .ok_or(Malformed::Missing("package_version"))?;
    // ghcr.io/owner/name:tag (the tag may be empty)
    let from_url = text(version, &["package_url"]).and_then(|url| {
        let (host, path) = url.split_once('/')?;
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repository, tag)) => (repository, Some(tag).filter(|t| !t.is_empty())),
            None => (path, None),
        };
        Some((host, repository, tag))
    });
    let (host, repository) = match &from_url {
        Some((host, repository, _)) => (*host, (*repository).to_string()),
        None => (
            "ghcr.io",
            format!(
                "{}/{}",
                text(package, &["owner", "login"])
                    .ok_or(Malformed::Missing("package.owner.login"))?,
                text(package, &["name"]).ok_or(Malformed::Missing("package.name"))?
            ),
        ),
    };
    let tag = text(version, &["container_metadata", "tag", "name"])
        .or(from_url.and_then(|(_, _, tag)| tag));
    let digest = [
        text(version, &["version"]),
        text(version, &["container_metadata", "tag", "digest"]),
        text(version, &["container_metadata", "manifest", "digest"]),
    ]
    .into_iter()
    .flatten()
    .find(|d| validate_digest(d).is_ok());
    if tag.is_none() && digest.is_none() {
        return Err(Malformed::Missing("package_version.container_metadata.tag"));
    }
    Ok(vec![raw(Some(host), &repository, tag, digest)])
}

// --------------------------------------------------------------------- acr ---

/// Azure Container Registry's webhook (and Event Grid's data): `action` `push`,
/// `target.{repository,tag,digest}`, `request.host`.
fn acr(v: &Value) -> Result<Vec<Push>, Malformed> {
    if text(v, &["action"]) != Some("push") {
        return Ok(Vec::new());
    }
    let repository =
        text(v, &["target", "repository"]).ok_or(Malformed::Missing("target.repository"))?;
    Ok(vec![raw(
        text(v, &["request", "host"]),
        repository,
        text(v, &["target", "tag"]),
        text(v, &["target", "digest"]),
    )])
}

// --------------------------------------------------------------------- gar ---

/// Google Artifact Registry (and Container Registry) through a Pub/Sub push subscription:
/// `message.data` is base64 of `{"action":"INSERT","digest":"<host/path>@sha256:…",
/// "tag":"<host/path>:<tag>"}`; an unwrapped subscription posts that object itself.
fn gar(v: &Value) -> Result<Vec<Push>, Malformed> {
    let decoded;
    let message = match text(v, &["message", "data"]) {
        Some(data) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|e| Malformed::Invalid {
                    what: "message.data (base64)",
                    value: e.to_string(),
                })?;
            decoded = json(&bytes)?;
            &decoded
        }
        None if v.get("action").is_some() => v,
        None => return Err(Malformed::Missing("message.data")),
    };
    if text(message, &["action"]) != Some("INSERT") {
        return Ok(Vec::new());
    }
    let reference = |field: &'static str| -> Result<Option<DockerImageReference>, Malformed> {
        text(message, &[field])
            .filter(|r| r.contains('/'))
            .map(|r| {
                DockerImageReference::parse(r).map_err(|_| Malformed::Invalid {
                    what: field,
                    value: r.chars().take(200).collect(),
                })
            })
            .transpose()
    };
    let by_digest = reference("digest")?;
    let by_tag = reference("tag")?;
    let named = by_tag
        .as_ref()
        .or(by_digest.as_ref())
        .ok_or(Malformed::Missing("digest"))?;
    if named.registry.is_empty() {
        return Err(Malformed::Missing("registry host in digest"));
    }
    let repository = named.repository_name();
    let registry = named.registry.clone();
    // a bare tag ("1.1") next to a full digest reference
    let tag = match &by_tag {
        Some(t) => Some(t.tag.clone()).filter(|t| !t.is_empty()),
        None => text(message, &["tag"]).map(str::to_string),
    };
    let digest = by_digest.map(|d| d.id).filter(|d| !d.is_empty());
    Ok(vec![Push {
        registry: Some(registry),
        repository,
        tag,
        digest,
    }])
}

// --------------------------------------------------------------------- ecr ---

/// Amazon ECR's `ECR Image Action` event as EventBridge delivers it (an API destination
/// posts the event itself): a successful `PUSH` of `repository-name` with `image-tag` and
/// `image-digest`; the registry is `<account>.dkr.ecr.<region>.amazonaws.com`.
fn ecr(v: &Value) -> Result<Vec<Push>, Malformed> {
    if text(v, &["source"]) != Some("aws.ecr")
        || text(v, &["detail-type"]) != Some("ECR Image Action")
        || text(v, &["detail", "action-type"]) != Some("PUSH")
        || text(v, &["detail", "result"]) != Some("SUCCESS")
    {
        return Ok(Vec::new());
    }
    let account = text(v, &["account"]).ok_or(Malformed::Missing("account"))?;
    let region = text(v, &["region"]).ok_or(Malformed::Missing("region"))?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Malformed::Invalid {
            what: "account",
            value: account.chars().take(40).collect(),
        });
    }
    let repository = text(v, &["detail", "repository-name"])
        .ok_or(Malformed::Missing("detail.repository-name"))?;
    Ok(vec![raw(
        Some(&format!("{account}.dkr.ecr.{region}.amazonaws.com")),
        repository,
        text(v, &["detail", "image-tag"]),
        text(v, &["detail", "image-digest"]),
    )])
}

// ------------------------------------------------------------- cloudevents ---

/// CloudEvents 1.0 in structured mode (`application/cloudevents+json`, or a batch array) or
/// binary mode (`ce-type` and friends as headers, the data as the body). Understood types:
/// Harbor's `harbor.artifact.pushed` and Azure Event Grid's
/// `Microsoft.ContainerRegistry.ImagePushed`; other types name no push.
fn cloudevents(
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
) -> Result<Vec<Push>, Malformed> {
    if let Some(kind) = header("ce-type") {
        if header("ce-specversion").is_none() {
            return Err(Malformed::Missing("ce-specversion header"));
        }
        return cloudevent_data(kind.trim(), &json(body)?);
    }
    let v = json(body)?;
    let events: Vec<&Value> = match &v {
        Value::Array(batch) => batch.iter().collect(),
        single => vec![single],
    };
    if events.len() > MAX_PUSHES {
        return Err(Malformed::TooMany);
    }
    let mut pushes = Vec::new();
    for event in events {
        if text(event, &["specversion"]).is_none() {
            return Err(Malformed::Missing("specversion"));
        }
        let kind = text(event, &["type"]).ok_or(Malformed::Missing("type"))?;
        let data = event.get("data").unwrap_or(&Value::Null);
        pushes.extend(cloudevent_data(kind, data)?);
    }
    Ok(pushes)
}

fn cloudevent_data(kind: &str, data: &Value) -> Result<Vec<Push>, Malformed> {
    match kind {
        "harbor.artifact.pushed" => harbor_data(data),
        "Microsoft.ContainerRegistry.ImagePushed" => acr(data),
        _ => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_headers(_: &str) -> Option<String> {
        None
    }

    fn push(registry: &str, repository: &str, tag: Option<&str>, digest: Option<&str>) -> Push {
        Push {
            registry: Some(registry.into()),
            repository: repository.into(),
            tag: tag.map(Into::into),
            digest: digest.map(Into::into),
        }
    }

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!("../../tests/fixtures/receivers/", $name))
        };
    }

    // https://distribution.github.io/distribution/about/notifications/ ("Events", "Envelope"):
    // a blob push, a manifest push with its tag, and a pull; only the manifest push counts.
    #[test]
    fn distribution_envelope() {
        let pushes = parse(
            ReceiverType::Distribution,
            &no_headers,
            fixture!("distribution.json"),
        );
        assert_eq!(
            pushes,
            Ok(vec![push(
                "192.168.100.227:5000",
                "hello-world",
                Some("latest"),
                Some("sha256:c6e0b4e8f4f1ddd8a8d6e3a3e7b14b3f2a8e6e9c8d1ad3c3e0b7e1f6a9b2c4d1")
            )])
        );
    }

    // GitLab's container registry sends the Distribution envelope
    // (https://docs.gitlab.com/administration/packages/container_registry/, "Configure
    // Container Registry notifications"); nested group paths are repositories too.
    #[test]
    fn gitlab_registry_notifications() {
        let pushes = parse(ReceiverType::Gitlab, &no_headers, fixture!("gitlab.json"));
        assert_eq!(
            pushes,
            Ok(vec![push(
                "registry.gitlab.example.com",
                "mygroup/myproject/api",
                Some("main"),
                Some("sha256:4a5573037f358b6cdfa2f3e8a9c33a5cf11bcd1675ca3c3b0e7e4f8e36e0b9b2")
            )])
        );
    }

    // https://goharbor.io/docs/latest/working-with-projects/project-configuration/configure-webhooks/
    // ("Payload Format", the HTTP endpoint example).
    #[test]
    fn harbor_default_format() {
        let pushes = parse(ReceiverType::Harbor, &no_headers, fixture!("harbor.json"));
        assert_eq!(
            pushes,
            Ok(vec![push(
                "hub.harbor.com",
                "test-webhook/debian",
                Some("latest"),
                Some("sha256:8a9e9863dbb6e10edb5adfe917c00da84e1700fa76e7ed02476aa6e6fb8ee0d8")
            )])
        );
        // a pull or a scan is no push
        let pull = br#"{"type":"PULL_ARTIFACT","occur_at":1,"event_data":{}}"#;
        assert_eq!(parse(ReceiverType::Harbor, &no_headers, pull), Ok(vec![]));
    }

    // https://docs.redhat.com/en/documentation/red_hat_quay/3.12/html/use_red_hat_quay/repository-events
    // ("Repository Push"); and the older object form of updated_tags
    // (https://gist.github.com/jakedt/7533338, Quay.io's published example).
    #[test]
    fn quay_repository_push() {
        let pushes = parse(ReceiverType::Quay, &no_headers, fixture!("quay.json"));
        assert_eq!(
            pushes,
            Ok(vec![push("quay.io", "dgangaia/test", Some("latest"), None)])
        );
        let legacy = parse(
            ReceiverType::Quay,
            &no_headers,
            fixture!("quay-legacy.json"),
        );
        assert_eq!(
            legacy,
            Ok(vec![push(
                "quay.io",
                "devtable/ubuntu",
                Some("latest"),
                None
            )])
        );
    }

    // https://docs.docker.com/docker-hub/webhooks/ ("Example webhook payload").
    #[test]
    fn docker_hub_webhook() {
        let pushes = parse(
            ReceiverType::Dockerhub,
            &no_headers,
            fixture!("dockerhub.json"),
        );
        assert_eq!(
            pushes,
            Ok(vec![push(
                "docker.io",
                "svendowideit/testhook",
                Some("latest"),
                None
            )])
        );
    }

    // https://docs.github.com/en/webhooks/webhook-events-and-payloads#registry_package and
    // #package; the shape of octokit/webhooks' payload-examples (registry_package/
    // published.docker.payload.json, package/published.docker.payload.json) for a ghcr.io
    // container with a tag. GitHub keeps the owner's casing; references are lower case.
    #[test]
    fn github_package_events() {
        let event = |name: &str| {
            let name = name.to_string();
            move |h: &str| (h == "x-github-event").then(|| name.clone())
        };
        let digest = "sha256:3da1996a8115d7616457760d9920b815241d0a03b34cf5f04e9a0e9d8de37498";
        let pushes = parse(
            ReceiverType::Github,
            &event("registry_package"),
            fixture!("github-registry-package.json"),
        );
        assert_eq!(
            pushes,
            Ok(vec![push(
                "ghcr.io",
                "octo-org/hello-world",
                Some("v1.2.0"),
                Some(digest)
            )])
        );
        let pushes = parse(
            ReceiverType::Github,
            &event("package"),
            fixture!("github-package.json"),
        );
        assert_eq!(
            pushes,
            Ok(vec![push(
                "ghcr.io",
                "codertocat/hello-world",
                Some("latest"),
                Some(digest)
            )])
        );
        // a ping, or an event GitHub sends for the repository, names nothing
        assert_eq!(
            parse(
                ReceiverType::Github,
                &event("ping"),
                br#"{"zen":"Keep it logically awesome."}"#
            ),
            Ok(vec![])
        );
        assert_eq!(
            parse(
                ReceiverType::Github,
                &no_headers,
                fixture!("github-package.json")
            ),
            Err(Malformed::Missing("X-GitHub-Event header"))
        );
        // npm packages are not images
        let npm = br#"{"action":"published","package":{"package_type":"npm","name":"x"}}"#;
        assert_eq!(
            parse(ReceiverType::Github, &event("package"), npm),
            Ok(vec![])
        );
    }

    // https://learn.microsoft.com/azure/container-registry/container-registry-webhook-reference
    // ("Payload example: image push event"; the documentation masks part of the digest, the
    // fixture has a whole one).
    #[test]
    fn azure_container_registry_webhook() {
        let pushes = parse(ReceiverType::Acr, &no_headers, fixture!("acr.json"));
        assert_eq!(
            pushes,
            Ok(vec![push(
                "myregistry.azurecr.io",
                "hello-world",
                Some("v1"),
                Some("sha256:80f0d5c8786bb9e621a45ece0db56d11cdc624ad20da9fe62e9d25490f331d7d")
            )])
        );
        let delete = br#"{"action":"delete","target":{"repository":"hello-world"}}"#;
        assert_eq!(parse(ReceiverType::Acr, &no_headers, delete), Ok(vec![]));
    }

    // https://cloud.google.com/artifact-registry/docs/configure-notifications ("Notification
    // examples": INSERT with digest and tag) inside a Pub/Sub push request
    // (https://cloud.google.com/pubsub/docs/push, "Receive messages": message.data base64).
    #[test]
    fn artifact_registry_through_pubsub_push() {
        let pushes = parse(ReceiverType::Gar, &no_headers, fixture!("gar.json"));
        assert_eq!(
            pushes,
            Ok(vec![push(
                "us-east1-docker.pkg.dev",
                "my-project/my-repo/hello-world",
                Some("1.1"),
                Some("sha256:6ec128e26cd5fd6f2e8e2f1b8a2bb3d9dbd9c1e2e1c3a4b5c6d7e8f9a0b1c2d3")
            )])
        );
        // an unwrapped subscription posts the message itself; a bare tag is accepted
        let unwrapped = br#"{"action":"INSERT","digest":"gcr.io/p/app@sha256:6ec128e26cd5fd6f2e8e2f1b8a2bb3d9dbd9c1e2e1c3a4b5c6d7e8f9a0b1c2d3","tag":"v2"}"#;
        assert_eq!(
            parse(ReceiverType::Gar, &no_headers, unwrapped),
            Ok(vec![push(
                "gcr.io",
                "p/app",
                Some("v2"),
                Some("sha256:6ec128e26cd5fd6f2e8e2f1b8a2bb3d9dbd9c1e2e1c3a4b5c6d7e8f9a0b1c2d3")
            )])
        );
        let delete = br#"{"action":"DELETE","digest":"gcr.io/p/app@sha256:6ec128e26cd5fd6f2e8e2f1b8a2bb3d9dbd9c1e2e1c3a4b5c6d7e8f9a0b1c2d3"}"#;
        assert_eq!(parse(ReceiverType::Gar, &no_headers, delete), Ok(vec![]));
        let not_base64 = br#"{"message":{"data":"%%%"}}"#;
        assert!(matches!(
            parse(ReceiverType::Gar, &no_headers, not_base64),
            Err(Malformed::Invalid { .. })
        ));
    }

    // https://docs.aws.amazon.com/AmazonECR/latest/userguide/ecr-eventbridge.html ("Event for
    // a completed image push"; the documented digest is 60 hex digits, the fixture's 64).
    #[test]
    fn ecr_through_eventbridge() {
        let pushes = parse(ReceiverType::Ecr, &no_headers, fixture!("ecr.json"));
        assert_eq!(
            pushes,
            Ok(vec![push(
                "123456789012.dkr.ecr.us-west-2.amazonaws.com",
                "my-repository-name",
                Some("latest"),
                Some("sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd12345678")
            )])
        );
        let failed = String::from_utf8_lossy(fixture!("ecr.json")).replace("SUCCESS", "FAILURE");
        assert_eq!(
            parse(ReceiverType::Ecr, &no_headers, failed.as_bytes()),
            Ok(vec![])
        );
    }

    // CloudEvents 1.0 (https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md and
    // its JSON and HTTP bindings): Harbor's CloudEvents format (Harbor 2.10, same page as the
    // default format) and Azure Event Grid's ImagePushed event in the CloudEvents schema
    // (https://learn.microsoft.com/azure/event-grid/event-schema-container-registry).
    #[test]
    fn cloudevents_structured_batch_and_binary() {
        let harbor = parse(
            ReceiverType::Cloudevents,
            &no_headers,
            fixture!("cloudevents-harbor.json"),
        );
        let harbor_push = push(
            "harbor.example.com",
            "library/busybox",
            Some("v1.0"),
            Some("sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4"),
        );
        assert_eq!(harbor, Ok(vec![harbor_push.clone()]));
        let azure = parse(
            ReceiverType::Cloudevents,
            &no_headers,
            fixture!("cloudevents-acr.json"),
        );
        let azure_push = push(
            "myregistry.azurecr.io",
            "aci-helloworld",
            Some("v1"),
            Some("sha256:213bbc182920ab41e18edc2001e06abcca6735d87782d9cef68abd83941cf0e5"),
        );
        assert_eq!(azure, Ok(vec![azure_push.clone()]));
        // a batch of both
        let batch = format!(
            "[{}, {}]",
            String::from_utf8_lossy(fixture!("cloudevents-harbor.json")),
            String::from_utf8_lossy(fixture!("cloudevents-acr.json"))
        );
        let mut both = vec![harbor_push.clone(), azure_push];
        both.sort();
        assert_eq!(
            parse(ReceiverType::Cloudevents, &no_headers, batch.as_bytes()),
            Ok(both)
        );
        // binary mode: the attributes in headers, the data as the body
        let data: Value = serde_json::from_slice(fixture!("cloudevents-harbor.json")).unwrap();
        let body = serde_json::to_vec(&data["data"]).unwrap();
        let binary = |h: &str| match h {
            "ce-type" => Some("harbor.artifact.pushed".to_string()),
            "ce-specversion" => Some("1.0".to_string()),
            _ => None,
        };
        assert_eq!(
            parse(ReceiverType::Cloudevents, &binary, &body),
            Ok(vec![harbor_push])
        );
        // other types name nothing; an event without specversion is no CloudEvent
        let other = br#"{"specversion":"1.0","type":"harbor.artifact.deleted","data":{}}"#;
        assert_eq!(
            parse(ReceiverType::Cloudevents, &no_headers, other),
            Ok(vec![])
        );
        let bare = br#"{"type":"harbor.artifact.pushed","data":{}}"#;
        assert_eq!(
            parse(ReceiverType::Cloudevents, &no_headers, bare),
            Err(Malformed::Missing("specversion"))
        );
    }

    #[test]
    fn truncated_and_hostile_payloads_are_malformed_never_a_panic() {
        let fixtures: [(ReceiverType, &[u8]); 12] = [
            (ReceiverType::Distribution, fixture!("distribution.json")),
            (ReceiverType::Gitlab, fixture!("gitlab.json")),
            (ReceiverType::Harbor, fixture!("harbor.json")),
            (ReceiverType::Quay, fixture!("quay.json")),
            (ReceiverType::Dockerhub, fixture!("dockerhub.json")),
            (ReceiverType::Github, fixture!("github-package.json")),
            (ReceiverType::Acr, fixture!("acr.json")),
            (ReceiverType::Gar, fixture!("gar.json")),
            (ReceiverType::Ecr, fixture!("ecr.json")),
            (
                ReceiverType::Cloudevents,
                fixture!("cloudevents-harbor.json"),
            ),
            (ReceiverType::Cloudevents, fixture!("cloudevents-acr.json")),
            (
                ReceiverType::Github,
                fixture!("github-registry-package.json"),
            ),
        ];
        let github = |h: &str| (h == "x-github-event").then(|| "package".to_string());
        for (kind, body) in fixtures {
            // every prefix of the body: JSON cut short is refused, never a panic
            let body = body.trim_ascii_end();
            for end in 0..body.len() {
                let cut = &body[..end];
                if let Ok(pushes) = parse(kind, &github, cut) {
                    panic!("{kind:?} cut at {end} parsed: {pushes:?}");
                }
            }
        }
        // values of the wrong type are missing values
        for body in [
            &br#"{"events":"x"}"#[..],
            br#"{"events":[{"action":"push","target":{"repository":7,"tag":"a"}}]}"#,
            br#"[]"#,
            br#"null"#,
            br#""push""#,
        ] {
            assert!(
                parse(ReceiverType::Distribution, &no_headers, body).is_err(),
                "{body:?}"
            );
        }
        // invalid names are refused whole
        for (repository, tag, host) in [
            ("UPPER/../etc", "latest", "r.io"),
            ("a//b", "latest", "r.io"),
            ("app", "-bad", "r.io"),
            ("app", "latest", "r.io/../../x"),
            ("app", "latest", "host name"),
            ("app", "latest", "r.io:99999999"),
        ] {
            let body = serde_json::json!({"events": [{"action": "push", "target": {
                "repository": repository, "tag": tag, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            }, "request": {"host": host}}]});
            let result = parse(
                ReceiverType::Distribution,
                &no_headers,
                body.to_string().as_bytes(),
            );
            assert!(
                result
                    .as_ref()
                    .is_err_and(|e| matches!(e, Malformed::Invalid { .. })),
                "{repository} {tag} {host}: {result:?}"
            );
        }
        // too many events
        let many: Vec<Value> = (0..=MAX_PUSHES)
            .map(|i| serde_json::json!({"action": "push", "target": {"repository": "a", "tag": format!("t{i}")}}))
            .collect();
        let body = serde_json::json!({ "events": many }).to_string();
        assert_eq!(
            parse(ReceiverType::Distribution, &no_headers, body.as_bytes()),
            Err(Malformed::TooMany)
        );
    }

    // A payload may name any host, the cloud metadata service's included: it is only a name
    // to compare with the hosts streams pull from (select.rs), never an address to contact.
    #[test]
    fn a_payload_naming_a_metadata_service_is_just_a_name() {
        let body = br#"{"events":[{"action":"push","target":{"repository":"latest/meta-data","tag":"iam","url":"http://169.254.169.254/latest/meta-data/iam","mediaType":"application/vnd.oci.image.manifest.v1+json"},"request":{"host":"169.254.169.254"}}]}"#;
        assert_eq!(
            parse(ReceiverType::Distribution, &no_headers, body),
            Ok(vec![push(
                "169.254.169.254",
                "latest/meta-data",
                Some("iam"),
                None
            )])
        );
        let hub = br#"{"callback_url":"http://169.254.169.254/latest/api/token","push_data":{"tag":"x"},"repository":{"repo_name":"a/b"}}"#;
        assert_eq!(
            parse(ReceiverType::Dockerhub, &no_headers, hub),
            Ok(vec![push("docker.io", "a/b", Some("x"), None)])
        );
    }
}
