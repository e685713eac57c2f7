//! `DockerImage`: the typed form of `Image.dockerImageMetadata`, in OpenShift's
//! `image/docker10` shape (`kind: DockerImage`, `apiVersion: image.openshift.io/1.0`, Docker
//! 1.0-style capitalised field names).
//!
//! This is not a kind and has no CRD: `Image.dockerImageMetadata` itself stays a free-form
//! object (OpenShift's `runtime.RawExtension`, kept with `x-kubernetes-preserve-unknown-fields`),
//! so metadata written by other tools survives untouched. The import engine fills this type and
//! stores it with [`ImageFields::set_docker_image_metadata`](super::ImageFields::set_docker_image_metadata);
//! readers parse it back with [`ImageFields::docker_image_metadata`](super::ImageFields::docker_image_metadata).
//!
//! Serialisation follows upstream's Go tags: `Id` is always written, the other fields only
//! when set (`omitempty`), and `ContainerConfig` always (Go never omits a struct). Fields not
//! listed here are ignored when parsing.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::{Deserialize, Serialize};

use super::schema::is_default;

/// `kind` of the metadata object.
pub const DOCKER_IMAGE_KIND: &str = "DockerImage";
/// `apiVersion` of the metadata object (`image.openshift.io/1.0`).
pub const DOCKER_IMAGE_API_VERSION: &str = "image.openshift.io/1.0";
/// `Image.dockerImageMetadataVersion` that goes with this shape.
pub const DOCKER_IMAGE_METADATA_VERSION: &str = "1.0";

/// DockerImage is the type representing a container image and its various properties when
/// retrieved from the Docker client API.
///
/// `Default` sets `kind` and `apiVersion` to the values upstream writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DockerImage {
    /// Always [`DOCKER_IMAGE_KIND`] when written by us.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Always [`DOCKER_IMAGE_API_VERSION`] when written by us.
    #[serde(rename = "apiVersion", skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// The image ID: for schema2 and OCI images, the digest of the config blob.
    #[serde(rename = "Id")]
    pub id: String,
    /// The parent image ID (legacy Docker images only).
    #[serde(rename = "Parent", skip_serializing_if = "String::is_empty")]
    pub parent: String,
    /// The commit message or comment of the image.
    #[serde(rename = "Comment", skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// When the image was created (the config's `created`).
    #[serde(rename = "Created", skip_serializing_if = "Option::is_none")]
    pub created: Option<Time>,
    /// The ID of the container the image was committed from.
    #[serde(rename = "Container", skip_serializing_if = "String::is_empty")]
    pub container: String,
    /// The configuration of the container the image was committed from.
    #[serde(rename = "ContainerConfig")]
    pub container_config: DockerConfig,
    /// The Docker version that built the image.
    #[serde(rename = "DockerVersion", skip_serializing_if = "String::is_empty")]
    pub docker_version: String,
    /// The author of the image.
    #[serde(rename = "Author", skip_serializing_if = "String::is_empty")]
    pub author: String,
    /// The runtime configuration of the image (the config's `config`).
    #[serde(rename = "Config", skip_serializing_if = "Option::is_none")]
    pub config: Option<DockerConfig>,
    /// The CPU architecture, for example `amd64`.
    #[serde(rename = "Architecture", skip_serializing_if = "String::is_empty")]
    pub architecture: String,
    /// The total size of the image's layers, in bytes.
    #[serde(rename = "Size", skip_serializing_if = "is_default")]
    pub size: i64,
}

impl Default for DockerImage {
    fn default() -> Self {
        Self {
            kind: DOCKER_IMAGE_KIND.into(),
            api_version: DOCKER_IMAGE_API_VERSION.into(),
            id: String::new(),
            parent: String::new(),
            comment: String::new(),
            created: None,
            container: String::new(),
            container_config: DockerConfig::default(),
            docker_version: String::new(),
            author: String::new(),
            config: None,
            architecture: String::new(),
            size: 0,
        }
    }
}

/// An empty JSON object: the value type of Go's `map[string]struct{}` (`ExposedPorts`,
/// `Volumes`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// DockerConfig is the list of configuration options used when creating a container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DockerConfig {
    /// Hostname of the container.
    #[serde(rename = "Hostname", skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// Domain name of the container.
    #[serde(rename = "Domainname", skip_serializing_if = "String::is_empty")]
    pub domainname: String,
    /// The user (and group) the process runs as.
    #[serde(rename = "User", skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// Memory limit in bytes.
    #[serde(rename = "Memory", skip_serializing_if = "is_default")]
    pub memory: i64,
    /// Memory plus swap limit in bytes.
    #[serde(rename = "MemorySwap", skip_serializing_if = "is_default")]
    pub memory_swap: i64,
    /// Relative CPU weight.
    #[serde(rename = "CpuShares", skip_serializing_if = "is_default")]
    pub cpu_shares: i64,
    /// CPUs the container may use.
    #[serde(rename = "Cpuset", skip_serializing_if = "String::is_empty")]
    pub cpuset: String,
    /// Attach standard input.
    #[serde(rename = "AttachStdin", skip_serializing_if = "is_default")]
    pub attach_stdin: bool,
    /// Attach standard output.
    #[serde(rename = "AttachStdout", skip_serializing_if = "is_default")]
    pub attach_stdout: bool,
    /// Attach standard error.
    #[serde(rename = "AttachStderr", skip_serializing_if = "is_default")]
    pub attach_stderr: bool,
    /// Legacy port specifications.
    #[serde(rename = "PortSpecs", skip_serializing_if = "Vec::is_empty")]
    pub port_specs: Vec<String>,
    /// Exposed ports, as `<port>/<protocol>` keys.
    #[serde(rename = "ExposedPorts", skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, Empty>,
    /// Allocate a TTY.
    #[serde(rename = "Tty", skip_serializing_if = "is_default")]
    pub tty: bool,
    /// Keep standard input open.
    #[serde(rename = "OpenStdin", skip_serializing_if = "is_default")]
    pub open_stdin: bool,
    /// Close standard input after the first client detaches.
    #[serde(rename = "StdinOnce", skip_serializing_if = "is_default")]
    pub stdin_once: bool,
    /// Environment variables, `NAME=value`.
    #[serde(rename = "Env", skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Default command.
    #[serde(rename = "Cmd", skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    /// DNS servers (Docker API v1.9 and below only).
    #[serde(rename = "Dns", skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// The image the container was created from.
    #[serde(rename = "Image", skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// Volumes, as path keys.
    #[serde(rename = "Volumes", skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Empty>,
    /// Container to take volumes from.
    #[serde(rename = "VolumesFrom", skip_serializing_if = "String::is_empty")]
    pub volumes_from: String,
    /// Working directory.
    #[serde(rename = "WorkingDir", skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    /// Entrypoint.
    #[serde(rename = "Entrypoint", skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    /// Disable networking.
    #[serde(rename = "NetworkDisabled", skip_serializing_if = "is_default")]
    pub network_disabled: bool,
    /// Security options.
    #[serde(rename = "SecurityOpts", skip_serializing_if = "Vec::is_empty")]
    pub security_opts: Vec<String>,
    /// ONBUILD triggers.
    #[serde(rename = "OnBuild", skip_serializing_if = "Vec::is_empty")]
    pub on_build: Vec<String>,
    /// Image labels.
    #[serde(rename = "Labels", skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}
