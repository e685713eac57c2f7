//! A trigger's `fieldPath`: which container image it sets (library-go
//! `pkg/image/trigger/annotations.go`, `parseContainerReference` and
//! `findContainerBySelector`).
//!
//! The path is the pod spec's path in the object (`spec.template.spec`, for a CronJob
//! `spec.jobTemplate.spec.template.spec`), a dot, `containers[<selector>]` or
//! `initContainers[<selector>]`, and `.image`. The selector is an index into that list, or
//! `?(@.name=="<name>")`. Upstream's quirks are kept because `oc set triggers` relies on
//! them: a name is looked up among the init containers first and then the containers,
//! whichever list the path names (oc writes `containers[?(@.name=="x")]` for an init
//! container `x` too); the selector ends at the first `]`; the name is what is left after
//! trimming the `?(@.name=="` prefix and the `")` suffix, if either was there.
//!
//! Upstream skips a trigger whose path does not start with the pod spec's path; here that is
//! an invalid path like any other, so the workload gets an Event instead of silence.

use k8s_openapi::api::core::v1::Container;

use super::Error;

/// A container of the pod template: which list, which position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerRef {
    pub init: bool,
    pub index: usize,
}

/// How a path picks its container.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Selector {
    Index(i64),
    Name(String),
    /// Neither: never matches (upstream: "no such container").
    Unknown(String),
}

/// The container `path` points at among `containers` and `init_containers`, where `base` is
/// the object's pod spec path.
pub fn container(
    path: &str,
    base: &'static str,
    containers: &[Container],
    init_containers: &[Container],
) -> Result<ContainerRef, Error> {
    let invalid = || Error::FieldPath {
        path: path.to_string(),
        base,
    };
    let rest = path
        .strip_prefix(base)
        .and_then(|r| r.strip_prefix('.'))
        .ok_or_else(invalid)?;
    let (init, selector, remainder) = container_reference(rest).ok_or_else(invalid)?;
    if remainder != "image" {
        return Err(invalid());
    }
    let found = match &selector {
        Selector::Index(i) => {
            let list = if init { init_containers } else { containers };
            usize::try_from(*i)
                .ok()
                .filter(|i| *i < list.len())
                .map(|index| ContainerRef { init, index })
        }
        Selector::Name(name) => by_name(name, containers, init_containers),
        Selector::Unknown(_) => None,
    };
    found.ok_or_else(|| {
        Error::NoSuchContainer(match selector {
            Selector::Index(i) => i.to_string(),
            Selector::Name(n) | Selector::Unknown(n) => n,
        })
    })
}

/// `containers[<selector>]<remainder>` or `initContainers[...]`; the remainder without its
/// leading dot.
fn container_reference(path: &str) -> Option<(bool, Selector, &str)> {
    let (init, rest) = if let Some(rest) = path.strip_prefix("containers[") {
        (false, rest)
    } else if let Some(rest) = path.strip_prefix("initContainers[") {
        (true, rest)
    } else {
        return None;
    };
    let (selector, remainder) = rest.split_once(']')?;
    let remainder = remainder.strip_prefix('.').unwrap_or(remainder);
    Some((init, selector_of(selector), remainder))
}

fn selector_of(selector: &str) -> Selector {
    // Go's strconv.Atoi: an optional sign and decimal digits
    if let Ok(i) = selector.parse::<i64>() {
        return Selector::Index(i);
    }
    let trimmed = selector.strip_prefix("?(@.name==\"").unwrap_or(selector);
    let name = trimmed.strip_suffix("\")").unwrap_or(trimmed);
    if name == selector {
        Selector::Unknown(selector.to_string())
    } else {
        Selector::Name(name.to_string())
    }
}

/// Init containers first, then containers (library-go `GetContainerByName`).
fn by_name(name: &str, containers: &[Container], init: &[Container]) -> Option<ContainerRef> {
    let position = |list: &[Container]| list.iter().position(|c| c.name == name);
    position(init)
        .map(|index| ContainerRef { init: true, index })
        .or_else(|| position(containers).map(|index| ContainerRef { init: false, index }))
}
