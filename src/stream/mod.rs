//! ImageStream decisions without IO: spec-tag generations ([`generation`]) and tag history
//! and import conditions ([`history`]), each as OpenShift computes them, and one controller
//! pass over a stream ([`sync`]); ImageStreamImport requests ([`import_request`]) and
//! ImageStreamMapping requests ([`mapping`]); LimitRange limits ([`limits`]); the admission
//! rules of semantics section 1 ([`validation`]); the views kept beside each stream
//! ([`views`], [`layers`]) and what a write to a tag view does to its stream ([`tag_edit`]);
//! short image names in Pods and pod templates resolved through streams ([`image_lookup`]).

pub mod generation;
pub mod history;
pub mod image_lookup;
pub mod import_request;
pub mod layers;
pub mod limits;
pub mod mapping;
pub mod sync;
pub mod tag_edit;
pub mod validation;
pub mod views;
