//! One tag's import: HEAD first, fetch only what is new, build the Images.
//!
//! Registry traffic is the cost that matters (Docker Hub counts every manifest GET as a pull;
//! a HEAD is free), so the engine asks the cheapest question first:
//!
//! * a digest reference whose Image already exists costs nothing;
//! * a tag whose HEAD digest equals the tag's current image (or the list it came from) costs
//!   one HEAD and produces no Image work;
//! * a manifest whose Image already exists is never fetched again (Images are immutable);
//! * otherwise: manifest GET, config GET, and for lists the children that are missing.
//!
//! The engine is generic over [`Source`], the registry operations it needs, so the transport
//! can change without touching these decisions.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use crate::api::image::Image;
use crate::config::Platform;

use super::manifest::{self, Manifest, ManifestError};

/// Largest manifest accepted, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// Largest image config accepted, in bytes.
pub const MAX_CONFIG_BYTES: usize = 8 << 20;

/// What a HEAD of a manifest tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub digest: String,
    pub media_type: String,
}

/// A fetched manifest: its bytes, verified digest and media type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub digest: String,
    pub media_type: String,
}

/// A registry failure as the engine sees it: a Kubernetes status reason and a message.
pub trait SourceError: std::error::Error + Send + Sync + 'static {
    /// `NotFound`, `Unauthorized`, `Forbidden`, `BadRequest`, `TooManyRequests`, `Timeout`,
    /// `InternalError`.
    fn reason(&self) -> &'static str;
}

/// The registry operations an import needs, on one repository.
pub trait Source {
    type Error: SourceError;
    /// HEAD of a manifest by tag or digest; never a GET.
    fn head(&self, reference: &str) -> impl Future<Output = Result<Head, Self::Error>> + Send;
    /// GET of a manifest by tag or digest, digest-verified, size-limited.
    fn manifest(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<Fetched, Self::Error>> + Send;
    /// GET of a blob (an image config), digest-verified, size-limited.
    fn blob(&self, digest: &str) -> impl Future<Output = Result<Vec<u8>, Self::Error>> + Send;
}

/// How a manifest list is imported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One child: the preferred platform, the default platform, linux/amd64, the first.
    Legacy,
    /// The list and every child.
    PreserveOriginal,
}

/// One tag (or digest) to import.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// The repository as the user wrote it (`nginx`, `quay.io/a/b`): Images and TagEvents
    /// keep this spelling.
    pub repository_as_written: &'a str,
    /// A tag, or a digest.
    pub reference: &'a str,
    pub mode: Mode,
    pub prefer_arch: Option<&'a str>,
    pub prefer_os: Option<&'a str>,
    pub default_platform: &'a Platform,
    /// The tag's current image (items[0].image), for the HEAD-first shortcut.
    pub current_image: Option<&'a str>,
}

/// The result of a successful import.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The registry still serves the current image: nothing to write.
    Unchanged { image: String },
    /// The tag points at `image`; `images` are the Image objects to create (children first),
    /// empty when they all exist already.
    Imported { image: String, images: Vec<Image> },
}

impl Outcome {
    /// The digest the tag now points at.
    pub fn image(&self) -> &str {
        match self {
            Outcome::Unchanged { image } | Outcome::Imported { image, .. } => image,
        }
    }
}

/// A failed import: upstream's status reason and a message naming what failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("{message}")]
pub struct ImportError {
    pub reason: &'static str,
    pub message: String,
}

impl ImportError {
    fn from_source(err: &impl SourceError) -> Self {
        ImportError {
            reason: err.reason(),
            message: err.to_string(),
        }
    }

    fn from_manifest(reference: &str, err: &ManifestError) -> Self {
        ImportError {
            reason: "InternalError",
            message: format!("Internal error occurred: {reference}: {err}"),
        }
    }
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
    fn new(req: &Request<'_>, list: &str) -> Self {
        ResolutionKey {
            repository: req.repository_as_written.to_string(),
            list: list.to_string(),
            arch: req.prefer_arch.map(str::to_string),
            os: req.prefer_os.map(str::to_string),
            platform: (
                req.default_platform.os.clone(),
                req.default_platform.architecture.clone(),
                req.default_platform.variant.clone(),
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

fn is_digest(reference: &str) -> bool {
    reference.contains(':')
}

/// Imports one tag or digest.
pub async fn import<S: Source>(
    source: &S,
    req: &Request<'_>,
    known: &impl KnownImages,
    lists: &ListResolutions,
    now: jiff::Timestamp,
) -> Result<Outcome, ImportError> {
    let full_ref = format!(
        "{}{}{}",
        req.repository_as_written,
        if is_digest(req.reference) { "@" } else { ":" },
        req.reference
    );

    // A digest reference names its content: if that Image exists there is nothing to ask.
    // In Legacy mode a current image that is a list (the tag was PreserveOriginal before)
    // is not an answer: the tag must move to a child.
    let current_usable =
        |current: &str| !(req.mode == Mode::Legacy && known.is_list(current) == Some(true));
    if is_digest(req.reference) {
        if req.current_image == Some(req.reference) && current_usable(req.reference) {
            return Ok(Outcome::Unchanged {
                image: req.reference.to_string(),
            });
        }
        match (known.is_list(req.reference), req.mode) {
            (Some(false), _) | (Some(true), Mode::PreserveOriginal) => {
                return Ok(Outcome::Imported {
                    image: req.reference.to_string(),
                    images: Vec::new(),
                });
            }
            (Some(true), Mode::Legacy) => {
                if let Some(child) = lists.get(&ResolutionKey::new(req, req.reference))
                    && known.contains(&child)
                {
                    return Ok(if req.current_image == Some(child.as_str()) {
                        Outcome::Unchanged { image: child }
                    } else {
                        Outcome::Imported {
                            image: child,
                            images: Vec::new(),
                        }
                    });
                }
            }
            (None, _) => {}
        }
    }

    if !is_digest(req.reference)
        && let Some(current) = req.current_image
    {
        let head = source
            .head(req.reference)
            .await
            .map_err(|e| ImportError::from_source(&e))?;
        if head.digest == current && current_usable(current) {
            return Ok(Outcome::Unchanged {
                image: current.to_string(),
            });
        }
        if req.mode == Mode::Legacy
            && lists.get(&ResolutionKey::new(req, &head.digest)).as_deref() == Some(current)
        {
            return Ok(Outcome::Unchanged {
                image: current.to_string(),
            });
        }
    }

    let top = source
        .manifest(req.reference)
        .await
        .map_err(|e| ImportError::from_source(&e))?;
    let parsed = manifest::parse(&top.bytes, Some(&top.media_type))
        .map_err(|e| ImportError::from_manifest(&full_ref, &e))?;
    match parsed {
        Manifest::Single(single) => {
            if known.contains(&top.digest) {
                return Ok(Outcome::Imported {
                    image: top.digest,
                    images: Vec::new(),
                });
            }
            let image =
                single_from(source, req.repository_as_written, &top, &single, &full_ref).await?;
            Ok(Outcome::Imported {
                image: top.digest,
                images: vec![image],
            })
        }
        Manifest::List(list) => match req.mode {
            Mode::Legacy => {
                let child = manifest::select_child(&list, req.prefer_arch, req.prefer_os, req.default_platform)
                    .ok_or_else(|| ImportError {
                        reason: "InternalError",
                        message: format!(
                            "Internal error occurred: {full_ref}: the manifest list has no image for any platform"
                        ),
                    })?
                    .digest
                    .clone();
                lists.put(ResolutionKey::new(req, &top.digest), child.clone());
                if req.current_image == Some(child.as_str()) {
                    return Ok(Outcome::Unchanged { image: child });
                }
                if known.contains(&child) {
                    return Ok(Outcome::Imported {
                        image: child,
                        images: Vec::new(),
                    });
                }
                let image =
                    fetch_single(source, req.repository_as_written, &child, &full_ref).await?;
                Ok(Outcome::Imported {
                    image: child,
                    images: vec![image],
                })
            }
            Mode::PreserveOriginal => {
                let mut images = Vec::new();
                for entry in &list.manifests {
                    if known.contains(&entry.digest) {
                        continue;
                    }
                    images.push(
                        fetch_single(source, req.repository_as_written, &entry.digest, &full_ref)
                            .await?,
                    );
                }
                if !known.contains(&top.digest) {
                    let list_image = manifest::list_image(
                        req.repository_as_written,
                        &top.digest,
                        &list,
                        &top.bytes,
                        now,
                    )
                    .map_err(|e| ImportError::from_manifest(&full_ref, &e))?;
                    images.push(list_image);
                }
                Ok(Outcome::Imported {
                    image: top.digest,
                    images,
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
) -> Result<Image, ImportError> {
    let fetched = source
        .manifest(digest)
        .await
        .map_err(|e| ImportError::from_source(&e))?;
    match manifest::parse(&fetched.bytes, Some(&fetched.media_type))
        .map_err(|e| ImportError::from_manifest(full_ref, &e))?
    {
        Manifest::Single(single) => {
            single_from(source, repository, &fetched, &single, full_ref).await
        }
        Manifest::List(_) => Err(ImportError {
            reason: "InternalError",
            message: format!(
                "Internal error occurred: {full_ref}: manifest list {digest} contains another list"
            ),
        }),
    }
}

async fn single_from<S: Source>(
    source: &S,
    repository: &str,
    fetched: &Fetched,
    single: &manifest::SingleManifest,
    full_ref: &str,
) -> Result<Image, ImportError> {
    let config = source
        .blob(&single.config.digest)
        .await
        .map_err(|e| ImportError::from_source(&e))?;
    manifest::single_image(repository, &fetched.digest, single, &fetched.bytes, &config)
        .map_err(|e| ImportError::from_manifest(full_ref, &e))
}
