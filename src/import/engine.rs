//! One tag's import: HEAD first, fetch only what is new, build the Images.
//!
//! Registry traffic is the cost that matters (Docker Hub counts every manifest GET as a pull;
//! a HEAD is free), so the engine asks the cheapest question first:
//!
//! * a digest reference whose Image already exists costs nothing;
//! * a tag whose HEAD digest equals the tag's current image (or the list it came from) costs
//!   one HEAD and produces no Image work;
//! * a manifest whose Image already exists is never fetched again (Images are immutable);
//! * otherwise: manifest GET, config GET, and for lists the children that are missing;
//! * a config whose digest was fetched before is not fetched again when the source is a
//!   [`super::source::CachingSource`] (the importer's is).
//!
//! The request is the rules' own [`ImageImport`] (the import contract). The engine is generic
//! over [`Source`], the registry operations it needs, so the transport can change without
//! touching these decisions, and the decisions are unit-tested against a fake.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::api::image::Image;
use crate::config::Platform;

use super::contract::{Failure, ImageImport, ImageName, Mode};
use super::manifest::{self, Manifest, ManifestError};
use super::source::{Fetched, Source, SourceError};

/// The result of a successful import.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The registry still serves the current image: nothing to write. `list` is the manifest
    /// list Legacy mode chose `image` from, when the import saw it.
    Unchanged { image: String, list: Option<String> },
    /// The tag points at `image`; `images` are the Image objects to create (children first),
    /// empty when they all exist already. `list` is the manifest list Legacy mode chose
    /// `image` from (what a signature of the tag names).
    Imported {
        image: String,
        images: Vec<Image>,
        list: Option<String>,
    },
}

impl Outcome {
    /// The digest the tag now points at.
    pub fn image(&self) -> &str {
        match self {
            Outcome::Unchanged { image, .. } | Outcome::Imported { image, .. } => image,
        }
    }
}

fn from_source(err: &impl SourceError) -> Failure {
    Failure::new(err.reason(), err.to_string())
}

fn from_manifest(reference: &str, err: &ManifestError) -> Failure {
    Failure::new(
        "InternalError",
        format!("Internal error occurred: {reference}: {err}"),
    )
}

/// Which Images exist already, and whether each is a manifest list; the engine never fetches
/// those again.
pub trait KnownImages {
    /// `None` when no Image has this digest; `Some(true)` for a manifest list.
    fn is_list(&self, digest: &str) -> Option<bool>;

    fn contains(&self, digest: &str) -> bool {
        self.is_list(digest).is_some()
    }
}

/// A plain set of known Images, digest to "is a list".
impl KnownImages for HashMap<String, bool> {
    fn is_list(&self, digest: &str) -> Option<bool> {
        self.get(digest).copied()
    }
}

/// Remembers which child Legacy mode took from which list, so a HEAD that returns the list
/// digest can be compared with a tag whose current image is the child.
#[derive(Default)]
pub struct ListResolutions {
    children: Mutex<HashMap<ResolutionKey, String>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ResolutionKey {
    repository: String,
    list: String,
    arch: Option<String>,
    os: Option<String>,
    platform: (String, String, Option<String>),
}

impl ResolutionKey {
    fn new(req: &Resolved<'_>, list: &str) -> Self {
        ResolutionKey {
            repository: req.name.repository_as_written.clone(),
            list: list.to_string(),
            arch: req.import.prefer.arch.clone(),
            os: req.import.prefer.os.clone(),
            platform: (
                req.platform.os.clone(),
                req.platform.architecture.clone(),
                req.platform.variant.clone(),
            ),
        }
    }
}

impl ListResolutions {
    fn get(&self, key: &ResolutionKey) -> Option<String> {
        self.children.lock().ok().and_then(|m| m.get(key).cloned())
    }

    fn put(&self, key: ResolutionKey, child: String) {
        if let Ok(mut m) = self.children.lock() {
            // Bounded: an operator watching many lists keeps the most recent ones.
            if m.len() >= 65_536 {
                m.clear();
            }
            m.insert(key, child);
        }
    }
}

/// One import with its pull spec resolved.
struct Resolved<'a> {
    import: &'a ImageImport,
    name: ImageName,
    platform: &'a Platform,
    /// `<repository>:<tag>` or `<repository>@<digest>`, for messages.
    full_ref: String,
}

impl Resolved<'_> {
    fn current(&self) -> Option<&str> {
        self.import.current_image.as_deref()
    }
}

/// Imports one tag or digest: `import` says what and how (its pull spec, mode, platform
/// preference and current image), `default_platform` is the cluster's Legacy default.
pub async fn import<S: Source>(
    source: &S,
    import: &ImageImport,
    default_platform: &Platform,
    known: &impl KnownImages,
    lists: &ListResolutions,
    now: jiff::Timestamp,
) -> Result<Outcome, Failure> {
    let name = import.from.image()?;
    let req = Resolved {
        import,
        full_ref: name.full(),
        name,
        platform: default_platform,
    };
    let reference = req.name.reference.as_str();
    let repository = req.name.repository_as_written.as_str();
    let full_ref = req.full_ref.as_str();
    let mode = import.mode;

    // A digest reference names its content: if that Image exists there is nothing to ask.
    // In Legacy mode a current image that is a list (the tag was PreserveOriginal before)
    // is not an answer: the tag must move to a child.
    let current_usable =
        |current: &str| !(mode == Mode::Legacy && known.is_list(current) == Some(true));
    if req.name.is_digest() {
        if req.current() == Some(reference) && current_usable(reference) {
            return Ok(Outcome::Unchanged {
                image: reference.to_string(),
                list: None,
            });
        }
        match (known.is_list(reference), mode) {
            (Some(false), _) | (Some(true), Mode::PreserveOriginal) => {
                return Ok(Outcome::Imported {
                    image: reference.to_string(),
                    images: Vec::new(),
                    list: None,
                });
            }
            (Some(true), Mode::Legacy) => {
                if let Some(child) = lists.get(&ResolutionKey::new(&req, reference))
                    && known.contains(&child)
                {
                    return Ok(if req.current() == Some(child.as_str()) {
                        Outcome::Unchanged {
                            image: child,
                            list: Some(reference.to_string()),
                        }
                    } else {
                        Outcome::Imported {
                            image: child,
                            images: Vec::new(),
                            list: Some(reference.to_string()),
                        }
                    });
                }
            }
            (None, _) => {}
        }
    }

    if !req.name.is_digest()
        && let Some(current) = req.current()
    {
        let head = source.head(reference).await.map_err(|e| from_source(&e))?;
        if head.digest == current && current_usable(current) {
            return Ok(Outcome::Unchanged {
                image: current.to_string(),
                list: None,
            });
        }
        if mode == Mode::Legacy
            && lists
                .get(&ResolutionKey::new(&req, &head.digest))
                .as_deref()
                == Some(current)
        {
            return Ok(Outcome::Unchanged {
                image: current.to_string(),
                list: Some(head.digest),
            });
        }
    }

    let top = source
        .manifest(reference)
        .await
        .map_err(|e| from_source(&e))?;
    let parsed = manifest::parse(&top.bytes, Some(&top.media_type))
        .map_err(|e| from_manifest(full_ref, &e))?;
    match parsed {
        Manifest::Single(single) => {
            if known.contains(&top.digest) {
                return Ok(Outcome::Imported {
                    image: top.digest,
                    images: Vec::new(),
                    list: None,
                });
            }
            let image = single_from(source, repository, &top, &single, full_ref).await?;
            Ok(Outcome::Imported {
                image: top.digest,
                images: vec![image],
                list: None,
            })
        }
        Manifest::List(list) => match mode {
            Mode::Legacy => {
                let child = manifest::select_child(
                    &list,
                    import.prefer.arch.as_deref(),
                    import.prefer.os.as_deref(),
                    default_platform,
                )
                .ok_or_else(|| {
                    Failure::new(
                        "InternalError",
                        format!(
                            "Internal error occurred: {full_ref}: the manifest list has no image for any platform"
                        ),
                    )
                })?
                .digest
                .clone();
                lists.put(ResolutionKey::new(&req, &top.digest), child.clone());
                if req.current() == Some(child.as_str()) {
                    return Ok(Outcome::Unchanged {
                        image: child,
                        list: Some(top.digest),
                    });
                }
                if known.contains(&child) {
                    return Ok(Outcome::Imported {
                        image: child,
                        images: Vec::new(),
                        list: Some(top.digest),
                    });
                }
                let image = fetch_single(source, repository, &child, full_ref).await?;
                Ok(Outcome::Imported {
                    image: child,
                    images: vec![image],
                    list: Some(top.digest),
                })
            }
            Mode::PreserveOriginal => {
                let mut images = Vec::new();
                for entry in &list.manifests {
                    if known.contains(&entry.digest) {
                        continue;
                    }
                    images.push(fetch_single(source, repository, &entry.digest, full_ref).await?);
                }
                if !known.contains(&top.digest) {
                    let list_image =
                        manifest::list_image(repository, &top.digest, &list, &top.bytes, now)
                            .map_err(|e| from_manifest(full_ref, &e))?;
                    images.push(list_image);
                }
                Ok(Outcome::Imported {
                    image: top.digest,
                    images,
                    list: None,
                })
            }
        },
    }
}

/// Fetches a child manifest by digest and its config; a nested list is refused.
async fn fetch_single<S: Source>(
    source: &S,
    repository: &str,
    digest: &str,
    full_ref: &str,
) -> Result<Image, Failure> {
    let fetched = source.manifest(digest).await.map_err(|e| from_source(&e))?;
    match manifest::parse(&fetched.bytes, Some(&fetched.media_type))
        .map_err(|e| from_manifest(full_ref, &e))?
    {
        Manifest::Single(single) => {
            single_from(source, repository, &fetched, &single, full_ref).await
        }
        Manifest::List(_) => Err(Failure::new(
            "InternalError",
            format!(
                "Internal error occurred: {full_ref}: manifest list {digest} contains another list"
            ),
        )),
    }
}

async fn single_from<S: Source>(
    source: &S,
    repository: &str,
    fetched: &Fetched,
    single: &manifest::SingleManifest,
    full_ref: &str,
) -> Result<Image, Failure> {
    let config = source
        .blob(&single.config.digest)
        .await
        .map_err(|e| from_source(&e))?;
    manifest::single_image(repository, &fetched.digest, single, &fetched.bytes, &config)
        .map_err(|e| from_manifest(full_ref, &e))
}

#[cfg(test)]
mod tests;
