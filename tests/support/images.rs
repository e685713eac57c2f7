//! Deterministic test images, built in Rust with no network and no external tools.
//!
//! Every byte is a function of the spec (format, platform, seed, config fields), so the same
//! spec always yields the same digests, and changing `seed` yields a new, distinct image.
//!
//! * layers: real gzip'ed ustar archives (fixed mtime/owner/mode; the gzip stream uses
//!   stored deflate blocks, so no compressor is needed); a base layer shared by all
//!   platforms of one seed and one layer per platform;
//! * configs: real image configs (`architecture`, `os`, `variant`, `created`, `author`,
//!   `config.{Env,Cmd,WorkingDir,Labels,ExposedPorts,User}`, `rootfs.diff_ids`, `history`;
//!   the Docker format adds `docker_version`, `container` and `container_config`);
//! * manifests: OCI image manifest, Docker schema2 manifest, OCI index, Docker manifest list,
//!   and BuildKit-style attestation manifests (`unknown/unknown` index entries).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// What distribution 2.8 answers for a schema2 tag fetched without a schema2 Accept.
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const IN_TOTO: &str = "application/vnd.in-toto+json";
/// The four manifest types; distribution 2.8 needs all of them to return stored bytes as is.
pub const ACCEPT_ALL: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// Index-entry annotations BuildKit puts on attestation manifests.
pub const ANNOTATION_REFERENCE_TYPE: &str = "vnd.docker.reference.type";
pub const ANNOTATION_REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";

/// Fixed epoch for tar mtimes and the default `created` (2024-05-01T12:00:00Z).
const EPOCH: u64 = 1_714_564_800;
const DEFAULT_CREATED: &str = "2024-05-01T12:00:00Z";

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in hash {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The smallest OCI image, for hand-written registries: an empty linux/amd64 config and a
/// manifest without layers.
pub struct EmptyImage {
    pub config: Vec<u8>,
    pub config_digest: String,
    pub manifest: Vec<u8>,
    /// The manifest's digest.
    pub digest: String,
}

impl EmptyImage {
    pub fn new() -> EmptyImage {
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {}, "rootfs": {"type": "layers", "diff_ids": []},
        }))
        .expect("config");
        let config_digest = sha256_digest(&config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
            "layers": [],
        }))
        .expect("manifest");
        let digest = sha256_digest(&manifest);
        EmptyImage {
            config,
            config_digest,
            manifest,
            digest,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    Oci,
    Docker,
}

impl Format {
    pub fn manifest_media_type(self) -> &'static str {
        match self {
            Format::Oci => OCI_MANIFEST,
            Format::Docker => DOCKER_MANIFEST,
        }
    }
    pub fn index_media_type(self) -> &'static str {
        match self {
            Format::Oci => OCI_INDEX,
            Format::Docker => DOCKER_LIST,
        }
    }
    pub fn config_media_type(self) -> &'static str {
        match self {
            Format::Oci => OCI_CONFIG,
            Format::Docker => DOCKER_CONFIG,
        }
    }
    pub fn layer_media_type(self) -> &'static str {
        match self {
            Format::Oci => OCI_LAYER_GZIP,
            Format::Docker => DOCKER_LAYER_GZIP,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Format::Oci => "oci",
            Format::Docker => "docker",
        }
    }
}

/// os/architecture/variant, as in an index entry and a config.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.into(),
            architecture: architecture.into(),
            variant: variant.map(Into::into),
        }
    }

    /// `linux/<arch>` with the usual default variant (arm64 → v8, arm → v7).
    pub fn linux(arch: &str) -> Platform {
        let variant = match arch {
            "arm64" => Some("v8"),
            "arm" => Some("v7"),
            _ => None,
        };
        Platform::new("linux", arch, variant)
    }

    /// `"linux/arm64/v8"`, `"linux/amd64"`; a bare architecture means `linux/<arch>` with its default variant.
    pub fn parse(s: &str) -> Platform {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [arch] => Platform::linux(arch),
            [os, arch] => Platform::new(os, arch, None),
            [os, arch, variant] => Platform::new(os, arch, Some(variant)),
            _ => panic!("bad platform {s:?}"),
        }
    }

    /// `unknown/unknown`, the platform of attestation entries.
    pub fn unknown() -> Platform {
        Platform::new("unknown", "unknown", None)
    }

    /// linux/amd64, linux/arm64/v8, linux/arm/v7.
    pub fn standard() -> Vec<Platform> {
        vec![
            Platform::linux("amd64"),
            Platform::linux("arm64"),
            Platform::linux("arm"),
        ]
    }

    /// The `platform` object of an index entry.
    pub fn to_json(&self) -> Value {
        let mut v = json!({"architecture": self.architecture, "os": self.os});
        if let Some(variant) = &self.variant {
            v["variant"] = json!(variant);
        }
        v
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Content-addressed bytes with their media type (a layer, a config or a manifest).
#[derive(Clone, PartialEq, Eq)]
pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.into(),
            digest: sha256_digest(&bytes),
            bytes,
        }
    }
    pub fn size(&self) -> usize {
        self.bytes.len()
    }
    /// `{mediaType, digest, size}`.
    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len()})
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).expect("blob is not JSON")
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Blob({}, {}, {} bytes)",
            self.media_type,
            self.digest,
            self.bytes.len()
        )
    }
}

/// Everything that goes into one single-platform image. Public fields; builder methods below.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    pub format: Format,
    pub platform: Platform,
    /// Changes every layer (and so every digest) of the image.
    pub seed: u64,
    pub created: String,
    pub author: String,
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub labels: BTreeMap<String, String>,
    pub exposed_ports: Vec<String>,
    /// OCI manifest annotations (ignored for Docker manifests, which have none).
    pub annotations: BTreeMap<String, String>,
    /// Additional layers after the base and platform layers.
    pub extra_layers: u32,
}

impl ImageSpec {
    /// An OCI image for `linux/<arch>` (default variant); `seed` picks the bytes.
    pub fn single(arch: &str, seed: u64) -> ImageSpec {
        ImageSpec::new(Format::Oci, Platform::linux(arch), seed)
    }

    pub fn new(format: Format, platform: Platform, seed: u64) -> ImageSpec {
        let arch = platform.architecture.clone();
        let mut labels = BTreeMap::new();
        labels.insert("lab.arch".to_string(), arch.clone());
        labels.insert("lab.seed".to_string(), seed.to_string());
        labels.insert(
            "org.opencontainers.image.title".to_string(),
            "lab".to_string(),
        );
        ImageSpec {
            format,
            platform,
            seed,
            created: DEFAULT_CREATED.into(),
            author: "imagestream-operator tests <tests@example.invalid>".into(),
            env: vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                format!("LAB_ARCH={arch}"),
                format!("LAB_SEED={seed}"),
            ],
            cmd: vec!["/bin/sh".into(), "-c".into(), "cat /etc/lab-release".into()],
            working_dir: "/srv/lab".into(),
            user: "1001".into(),
            labels,
            exposed_ports: vec!["8080/tcp".into()],
            annotations: BTreeMap::new(),
            extra_layers: 0,
        }
    }

    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }
    /// Docker schema2 manifest and Docker config.
    pub fn docker(self) -> Self {
        self.format(Format::Docker)
    }
    pub fn oci(self) -> Self {
        self.format(Format::Oci)
    }
    pub fn platform(mut self, platform: Platform) -> Self {
        self.platform = platform;
        self
    }
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
    pub fn env(mut self, kv: &str) -> Self {
        self.env.push(kv.into());
        self
    }
    pub fn cmd(mut self, cmd: &[&str]) -> Self {
        self.cmd = cmd.iter().map(|s| s.to_string()).collect();
        self
    }
    /// RFC 3339, e.g. `2025-01-02T03:04:05Z`.
    pub fn created(mut self, created: &str) -> Self {
        self.created = created.into();
        self
    }
    pub fn author(mut self, author: &str) -> Self {
        self.author = author.into();
        self
    }
    pub fn working_dir(mut self, dir: &str) -> Self {
        self.working_dir = dir.into();
        self
    }
    pub fn expose(mut self, port: &str) -> Self {
        self.exposed_ports.push(port.into());
        self
    }
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }
    pub fn extra_layers(mut self, n: u32) -> Self {
        self.extra_layers = n;
        self
    }

    pub fn build(&self) -> Image {
        let f = self.format;
        let p = &self.platform;
        let base_tar = base_layer_tar(self.seed);
        let plat_tar = tar(&[
            TarEntry::dir("usr/"),
            TarEntry::dir("usr/share/"),
            TarEntry::dir("usr/share/lab/"),
            TarEntry::file(
                "usr/share/lab/platform",
                format!("platform={p}\nseed={}\n", self.seed).as_bytes(),
            ),
        ]);
        let mut tars = vec![
            (base_tar, "ADD rootfs.tar / # buildkit".to_string()),
            (plat_tar, format!("COPY platform /usr/share/lab/ # {p}")),
        ];
        for i in 0..self.extra_layers {
            let content = format!("extra layer {i} of seed {} for {p}\n", self.seed);
            tars.push((
                tar(&[
                    TarEntry::dir("srv/"),
                    TarEntry::file(&format!("srv/extra-{i}.txt"), content.as_bytes()),
                ]),
                format!("RUN echo extra-{i} # buildkit"),
            ));
        }
        let layers: Vec<Blob> = tars
            .iter()
            .map(|(t, _)| Blob::new(f.layer_media_type(), gzip_stored(t)))
            .collect();
        let diff_ids: Vec<String> = tars.iter().map(|(t, _)| sha256_digest(t)).collect();

        let ports: serde_json::Map<String, Value> = self
            .exposed_ports
            .iter()
            .map(|p| (p.clone(), json!({})))
            .collect();
        let container_cfg = json!({
            "User": self.user,
            "ExposedPorts": ports,
            "Env": self.env,
            "Cmd": self.cmd,
            "WorkingDir": self.working_dir,
            "Labels": self.labels,
        });
        let mut history: Vec<Value> = tars
            .iter()
            .map(
                |(_, by)| json!({"created": self.created, "created_by": by, "author": self.author}),
            )
            .collect();
        history.push(json!({"created": self.created, "created_by": "CMD [\"/bin/sh\"] # buildkit", "empty_layer": true}));
        let mut config = json!({
            "architecture": p.architecture,
            "os": p.os,
            "created": self.created,
            "author": self.author,
            "config": container_cfg,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        });
        if let Some(v) = &p.variant {
            config["variant"] = json!(v);
        }
        if f == Format::Docker {
            config["docker_version"] = json!("24.0.7");
            config["container"] =
                json!(&sha256_digest(format!("container {} {p}", self.seed).as_bytes())[7..]);
            let mut cc = config["config"].clone();
            cc["Hostname"] = json!("");
            cc["Image"] = json!(diff_ids[0]);
            cc["Cmd"] = json!(["/bin/sh", "-c", "#(nop) ", format!("CMD {:?}", self.cmd)]);
            config["container_config"] = cc;
        }
        let config = Blob::new(f.config_media_type(), serde_json::to_vec(&config).unwrap());

        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": f.manifest_media_type(),
            "config": config.descriptor(),
            "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
        });
        if f == Format::Oci && !self.annotations.is_empty() {
            manifest["annotations"] = json!(self.annotations);
        }
        let manifest = Blob::new(f.manifest_media_type(), pretty(&manifest));
        Image {
            format: f,
            platform: p.clone(),
            manifest,
            config,
            layers,
            attestation_for: None,
        }
    }
}

/// One single-platform image manifest with its config and layers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub format: Format,
    /// For an attestation manifest: `unknown/unknown`.
    pub platform: Platform,
    pub manifest: Blob,
    pub config: Blob,
    pub layers: Vec<Blob>,
    /// Set on BuildKit-style attestation manifests: the digest of the image they describe.
    pub attestation_for: Option<String>,
}

impl Image {
    pub fn digest(&self) -> &str {
        &self.manifest.digest
    }
    pub fn media_type(&self) -> &str {
        &self.manifest.media_type
    }
    pub fn config_json(&self) -> Value {
        self.config.json()
    }
    pub fn manifest_json(&self) -> Value {
        self.manifest.json()
    }
    /// Config then layers: the blobs a registry must hold before the manifest is pushed.
    pub fn blobs(&self) -> Vec<&Blob> {
        std::iter::once(&self.config)
            .chain(self.layers.iter())
            .collect()
    }
    pub fn is_attestation(&self) -> bool {
        self.attestation_for.is_some()
    }
}

/// A BuildKit-style provenance attestation manifest for `subject`.
pub fn attestation_for(subject: &Image, seed: u64) -> Image {
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://slsa.dev/provenance/v0.2",
        "subject": [{
            "name": format!("pkg:docker/lab@seed{seed}?platform={}", subject.platform.to_string().replace('/', "%2F")),
            "digest": {"sha256": &subject.digest()[7..]},
        }],
        "predicate": {
            "builder": {"id": ""},
            "buildType": "https://mobyproject.org/buildkit@v1",
            "metadata": {"buildkit_metadata": {"seed": seed}},
        },
    });
    let layer = Blob::new(IN_TOTO, serde_json::to_vec(&statement).unwrap());
    let config = json!({
        "architecture": "unknown",
        "os": "unknown",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
    });
    let config = Blob::new(OCI_CONFIG, serde_json::to_vec(&config).unwrap());
    let mut layer_desc = layer.descriptor();
    layer_desc["annotations"] =
        json!({"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"});
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer_desc],
    });
    Image {
        format: Format::Oci,
        platform: Platform::unknown(),
        manifest: Blob::new(OCI_MANIFEST, pretty(&manifest)),
        config,
        layers: vec![layer],
        attestation_for: Some(subject.digest().to_string()),
    }
}

/// A multi-platform image: OCI index or Docker manifest list.
#[derive(Clone, Debug)]
pub struct IndexSpec {
    pub format: Format,
    pub platforms: Vec<Platform>,
    pub seed: u64,
    /// Add one attestation manifest per platform image (OCI only), as BuildKit does.
    pub attestations: bool,
    /// Index annotations (OCI only).
    pub annotations: BTreeMap<String, String>,
    /// Applied to each child's `ImageSpec` (after format/platform/seed are set).
    pub child: fn(ImageSpec) -> ImageSpec,
}

impl IndexSpec {
    /// OCI index over linux/amd64, linux/arm64/v8, linux/arm/v7.
    pub fn oci(seed: u64) -> IndexSpec {
        IndexSpec {
            format: Format::Oci,
            platforms: Platform::standard(),
            seed,
            attestations: false,
            annotations: BTreeMap::new(),
            child: |s| s,
        }
    }
    /// Docker manifest list over linux/amd64, linux/arm64/v8, linux/arm/v7.
    pub fn docker(seed: u64) -> IndexSpec {
        IndexSpec {
            format: Format::Docker,
            ..IndexSpec::oci(seed)
        }
    }
    pub fn platforms(mut self, platforms: &[&str]) -> Self {
        self.platforms = platforms.iter().map(|p| Platform::parse(p)).collect();
        self
    }
    pub fn with_attestations(mut self) -> Self {
        assert_eq!(
            self.format,
            Format::Oci,
            "attestation manifests live in OCI indexes"
        );
        self.attestations = true;
        self
    }
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }
    pub fn map_children(mut self, f: fn(ImageSpec) -> ImageSpec) -> Self {
        self.child = f;
        self
    }

    pub fn build(&self) -> Index {
        let f = self.format;
        let mut children = Vec::new();
        let mut attestations = Vec::new();
        for p in &self.platforms {
            let image = (self.child)(ImageSpec::new(f, p.clone(), self.seed)).build();
            if self.attestations {
                attestations.push(attestation_for(&image, self.seed));
            }
            children.push(image);
        }
        children.extend(attestations);
        let entries: Vec<Value> = children
            .iter()
            .map(|c| {
                let mut d = c.manifest.descriptor();
                d["platform"] = c.platform.to_json();
                if let Some(subject) = &c.attestation_for {
                    d["annotations"] = json!({
                        ANNOTATION_REFERENCE_DIGEST: subject,
                        ANNOTATION_REFERENCE_TYPE: ATTESTATION_MANIFEST,
                    });
                }
                d
            })
            .collect();
        let mut index = json!({
            "schemaVersion": 2,
            "mediaType": f.index_media_type(),
            "manifests": entries,
        });
        if f == Format::Oci && !self.annotations.is_empty() {
            index["annotations"] = json!(self.annotations);
        }
        Index {
            format: f,
            manifest: Blob::new(f.index_media_type(), pretty(&index)),
            children,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Index {
    pub format: Format,
    pub manifest: Blob,
    /// In index order: the platform images, then any attestation manifests.
    pub children: Vec<Image>,
}

impl Index {
    pub fn digest(&self) -> &str {
        &self.manifest.digest
    }
    pub fn media_type(&self) -> &str {
        &self.manifest.media_type
    }
    pub fn manifest_json(&self) -> Value {
        self.manifest.json()
    }
    /// The child for `"linux/arm64/v8"` (or `"arm64"`), never an attestation.
    pub fn child(&self, platform: &str) -> Option<&Image> {
        let p = Platform::parse(platform);
        self.platform_images().find(|c| c.platform == p)
    }
    pub fn platform_images(&self) -> impl Iterator<Item = &Image> {
        self.children.iter().filter(|c| !c.is_attestation())
    }
    pub fn attestations(&self) -> impl Iterator<Item = &Image> {
        self.children.iter().filter(|c| c.is_attestation())
    }
}

/// What can be pushed under a tag: a single image or an index/list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TestImage {
    Single(Image),
    Index(Index),
}

impl From<Image> for TestImage {
    fn from(i: Image) -> Self {
        TestImage::Single(i)
    }
}
impl From<Index> for TestImage {
    fn from(i: Index) -> Self {
        TestImage::Index(i)
    }
}
impl From<ImageSpec> for TestImage {
    fn from(s: ImageSpec) -> Self {
        TestImage::Single(s.build())
    }
}
impl From<IndexSpec> for TestImage {
    fn from(s: IndexSpec) -> Self {
        TestImage::Index(s.build())
    }
}

impl TestImage {
    pub fn digest(&self) -> &str {
        &self.manifest().digest
    }
    pub fn media_type(&self) -> &str {
        &self.manifest().media_type
    }
    /// The top-level manifest (image manifest, index or list).
    pub fn manifest(&self) -> &Blob {
        match self {
            TestImage::Single(i) => &i.manifest,
            TestImage::Index(i) => &i.manifest,
        }
    }
    pub fn format(&self) -> Format {
        match self {
            TestImage::Single(i) => i.format,
            TestImage::Index(i) => i.format,
        }
    }
    pub fn is_index(&self) -> bool {
        matches!(self, TestImage::Index(_))
    }
    pub fn as_index(&self) -> Option<&Index> {
        match self {
            TestImage::Index(i) => Some(i),
            TestImage::Single(_) => None,
        }
    }
    pub fn as_single(&self) -> Option<&Image> {
        match self {
            TestImage::Single(i) => Some(i),
            TestImage::Index(_) => None,
        }
    }
    /// Every image manifest: the image itself, or all children of an index (attestations included).
    pub fn images(&self) -> Vec<&Image> {
        match self {
            TestImage::Single(i) => vec![i],
            TestImage::Index(i) => i.children.iter().collect(),
        }
    }
    /// The image for a platform: an index child, or the single image if its platform matches.
    pub fn child(&self, platform: &str) -> Option<&Image> {
        match self {
            TestImage::Single(i) => (i.platform == Platform::parse(platform)).then_some(i),
            TestImage::Index(i) => i.child(platform),
        }
    }
    /// `"linux/arm64/v8" -> digest` for every platform image (attestations excluded).
    pub fn platform_digests(&self) -> BTreeMap<String, String> {
        self.images()
            .into_iter()
            .filter(|i| !i.is_attestation())
            .map(|i| (i.platform.to_string(), i.digest().to_string()))
            .collect()
    }
    /// Every distinct config/layer blob, in push order.
    pub fn blobs(&self) -> Vec<&Blob> {
        let mut seen = std::collections::HashSet::new();
        self.images()
            .into_iter()
            .flat_map(|i| i.blobs())
            .filter(|b| seen.insert(b.digest.clone()))
            .collect()
    }
}

// ---------------------------------------------------------------- bytes ---

fn pretty(v: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap()
}

fn base_layer_tar(seed: u64) -> Vec<u8> {
    tar(&[
        TarEntry::dir("etc/"),
        TarEntry::file(
            "etc/lab-release",
            format!("NAME=lab\nLAB_SEED={seed}\n").as_bytes(),
        ),
        TarEntry::file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nlab:x:1001:1001::/srv/lab:/bin/sh\n",
        ),
        TarEntry::dir("srv/"),
        TarEntry::dir("srv/lab/"),
    ])
}

struct TarEntry<'a> {
    name: String,
    data: Option<&'a [u8]>,
}

impl<'a> TarEntry<'a> {
    fn dir(name: &str) -> Self {
        TarEntry {
            name: name.into(),
            data: None,
        }
    }
    fn file(name: &str, data: &'a [u8]) -> Self {
        TarEntry {
            name: name.into(),
            data: Some(data),
        }
    }
}

/// A ustar archive with fixed owner (0:0 root), mode and mtime.
fn tar(entries: &[TarEntry<'_>]) -> Vec<u8> {
    fn field(h: &mut [u8], at: usize, s: &str) {
        h[at..at + s.len()].copy_from_slice(s.as_bytes());
    }
    let mut out = Vec::new();
    for e in entries {
        assert!(e.name.len() < 100, "tar name too long");
        let size = e.data.map_or(0, <[u8]>::len);
        let mut h = [0u8; 512];
        field(&mut h, 0, &e.name);
        field(
            &mut h,
            100,
            if e.data.is_some() {
                "0000644\0"
            } else {
                "0000755\0"
            },
        );
        field(&mut h, 108, "0000000\0");
        field(&mut h, 116, "0000000\0");
        field(&mut h, 124, &format!("{size:011o}\0"));
        field(&mut h, 136, &format!("{EPOCH:011o}\0"));
        field(&mut h, 148, "        ");
        h[156] = if e.data.is_some() { b'0' } else { b'5' };
        field(&mut h, 257, "ustar\0");
        field(&mut h, 263, "00");
        field(&mut h, 265, "root");
        field(&mut h, 297, "root");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        field(&mut h, 148, &format!("{sum:06o}\0 "));
        out.extend_from_slice(&h);
        if let Some(d) = e.data {
            out.extend_from_slice(d);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// A gzip member holding `data` in stored (uncompressed) deflate blocks: valid for any
/// gunzip, deterministic, and needs no compressor.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    // magic, CM=deflate, no flags, mtime 0, XFL 0, OS 3 (unix) - what `gzip -n` writes
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    let mut chunks = data.chunks(0xffff).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let len = chunk.len() as u16;
        out.push(u8::from(last));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
