//! imagestream-operator: OpenShift's image API (`image.openshift.io/v1`) on any Kubernetes
//! cluster, served as custom resources and kept by this operator.
//!
//! Modules: [`api`] (the image.openshift.io kinds), [`admission`] (the webhooks that default,
//! order and validate them as OpenShift's apiserver does), [`config`] (the operator's
//! configuration kinds), [`names`] (object names for OpenShift's `stream:tag`-style names),
//! [`crd`] (the CustomResourceDefinitions generated from the types), [`reference`] and
//! [`credentials`] (pull specs and pull secrets, OpenShift's way), [`registry`] (the registry
//! transport), [`import`] (registry images to Image objects), [`inspect`] (one import from the
//! command line), [`stream`] (tag generations, history and conditions), [`trigger`] (workloads
//! that follow ImageStreamTags: image change triggers), [`controller`] (the controllers),
//! [`operator`] (webhooks and controllers in one process), [`permissions`] (its rights,
//! checked at start), [`leader`] (leader election), [`receiver`] (registry notifications),
//! [`probes`] (health and metrics endpoints), [`events`] (the Event recorder), [`task`]
//! (spawned tasks that end with their owner) and [`trust`] (image policies and signature
//! verification before import).

pub mod admission;
pub mod api;
pub mod api_latency;
pub mod cache;
pub mod config;
pub mod controller;
pub mod crd;
pub mod credentials;
pub mod events;
pub mod import;
pub mod inspect;
pub mod leader;
pub mod names;
pub mod operator;
pub mod permissions;
pub mod probes;
pub mod prune;
pub mod receiver;
pub mod reference;
pub mod registry;
pub mod stream;
pub mod task;
pub mod trigger;
pub mod trust;
