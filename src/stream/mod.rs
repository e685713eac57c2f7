//! ImageStream decisions without IO: spec-tag generations ([`generation`]) and tag history
//! and import conditions ([`history`]), each as OpenShift computes them, and one controller
//! pass over a stream ([`sync`]); ImageStreamImport requests ([`image_stream_import`]) and
//! ImageStreamMapping requests ([`image_stream_mapping`]); LimitRange limits ([`limits`]);
//! the admission rules of semantics section 1 ([`validation`]); the views kept beside each stream
//! ([`views`], [`layers`]) and what a write to a tag view does to its stream ([`tag_edit`]);
//! short image names in Pods and pod templates resolved through streams ([`image_lookup`]).
//!
//! Pure by construction: these modules name only other pure modules (the kinds, names and
//! references, the import contract `crate::import::contract`) and no IO crate;
//! `tests/layering.rs` fails naming the line otherwise.

pub mod generation;
pub mod history;
pub mod image_lookup;
pub mod image_stream_import;
pub mod image_stream_mapping;
pub mod layers;
pub mod limits;
pub mod sync;
pub mod tag_edit;
pub mod validation;
pub mod views;
