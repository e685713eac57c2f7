//! The `ImageReceiver` kind: a URL a registry calls when images are pushed.
//!
//! The shape follows Flux's `Receiver` (a type, a Secret with the token, a generated path in
//! the status), narrowed to what a registry notification can do here: wake the scheduled
//! tags that pull from the pushed repository. Namespaced, so a team configures its own
//! registry; which namespaces a receiver may wake is decided by [`super::select::allowed`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An ImageReceiver's spec.
// each print column names its type: the lint takes the repeated `type_` for a duplicate
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "operator.imagestream.io",
    version = "v1alpha1",
    kind = "ImageReceiver",
    plural = "imagereceivers",
    namespaced,
    status = "ImageReceiverStatus",
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url"),
    doc = "ImageReceiver serves a URL that a registry calls when images are pushed (a webhook or notification endpoint). Each notification checks, with one HEAD, the scheduled tags of the image streams that pull from the pushed repository and tag, and imports them if they moved, as their next scheduled check would. The URL is in status.url; its path is derived from the token in the Secret spec.secretRef names, so it cannot be guessed."
)]
#[serde(rename_all = "camelCase")]
pub struct ImageReceiverSpec {
    /// type is the payload format the registry sends: distribution (docker-registry and
    /// other CNCF Distribution notifications, Harbor's legacy endpoints), gitlab (GitLab's
    /// container registry notifications, the same envelope), harbor, quay, dockerhub, github
    /// (registry_package and package events, signed with X-Hub-Signature-256), acr (Azure
    /// Container Registry webhooks), gar (Google Artifact Registry through a Pub/Sub push
    /// subscription), ecr (Amazon ECR events through an EventBridge API destination) or
    /// cloudevents (Harbor's and Azure Event Grid's CloudEvents, structured or binary).
    #[serde(rename = "type")]
    pub type_: ReceiverType,

    /// secretRef names a Secret in the receiver's namespace whose key "token" holds the
    /// shared token: the registry sends it in the Authorization header (distribution, gitlab,
    /// harbor, acr, ecr, cloudevents), signs the body with it (github), or, for registries that
    /// can do neither (dockerhub, quay, gar), only the URL carries it.
    pub secret_ref: SecretReference,

    /// namespaces lists the namespaces whose image streams this receiver may wake; "*" is
    /// every namespace. Only receivers in the operator's own namespace may name other
    /// namespaces; elsewhere only the receiver's own namespace is honoured. Default: the
    /// receiver's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,

    /// registry is the "host[:port]" the notifications concern, as image streams name it. Set
    /// it when the registry knows itself under another name than the streams use (a proxy,
    /// an internal Service name). Default: the host the payload names (docker.io for
    /// dockerhub, ghcr.io for github).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,

    /// maxRequestsPerMinute caps the requests this receiver accepts on each replica; more
    /// are answered 429 (senders retry). Default: 1200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_requests_per_minute: Option<i32>,
}

/// The payload formats a receiver understands.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReceiverType {
    Distribution,
    Gitlab,
    Harbor,
    Quay,
    Dockerhub,
    Github,
    Acr,
    Gar,
    Ecr,
    Cloudevents,
}

impl ReceiverType {
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiverType::Distribution => "distribution",
            ReceiverType::Gitlab => "gitlab",
            ReceiverType::Harbor => "harbor",
            ReceiverType::Quay => "quay",
            ReceiverType::Dockerhub => "dockerhub",
            ReceiverType::Github => "github",
            ReceiverType::Acr => "acr",
            ReceiverType::Gar => "gar",
            ReceiverType::Ecr => "ecr",
            ReceiverType::Cloudevents => "cloudevents",
        }
    }
}

/// A Secret in the receiver's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SecretReference {
    /// name of the Secret.
    pub name: String,
}

/// The key of the Secret that holds the token.
pub const TOKEN_KEY: &str = "token";

/// What the operator reports about a receiver.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageReceiverStatus {
    /// url is where the registry sends its notifications: the operator's Service (or the
    /// address its webhooks are registered at) and webhookPath. Expose it to the registry
    /// through an Ingress or a load balancer keeping this path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// webhookPath is the path the operator serves this receiver at on its HTTPS port:
    /// "/hooks/" followed by a digest of the namespace, name and token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_path: Option<String>,
    /// namespaces the receiver wakes, after the rule that only receivers in the operator's
    /// namespace may name others ("*" for all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// observedGeneration is the generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// conditions: Ready is True while the receiver is served.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
