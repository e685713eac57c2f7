//! ImageStream decisions without IO: spec-tag generations ([`generation`]) and tag history
//! and import conditions ([`history`]), each as OpenShift computes them; one pass of the
//! imagestream controller over a stream, as its pure steps: what it imports ([`plan`]), how
//! the results become the status ([`decide`], built on [`sync`]), Images the apiserver
//! refuses ([`refusal`]), when the stream comes back ([`requeue`]), when scheduled tags are
//! checked ([`schedule`]), and the cluster configuration as the settings they read
//! ([`settings`]); ImageStreamImport requests ([`image_stream_import`]) and
//! ImageStreamMapping requests ([`image_stream_mapping`]); LimitRange limits ([`limits`]);
//! the admission rules of semantics section 1 ([`validation`]); the views kept beside each
//! stream ([`views`], [`layers`]), what the operator keeps of the stored ones ([`view_index`])
//! and which streams show which Image ([`image_index`]), and what a write to a tag view does
//! to its stream ([`tag_edit`]);
//! short image names in Pods and pod templates resolved through streams ([`image_lookup`]).
//!
//! Pure by construction: these modules name only other pure modules (the kinds, names and
//! references, the import contract `crate::import::contract`) and no IO crate;
//! `tests/layering.rs` fails naming the line otherwise.

pub mod decide;
pub mod generation;
pub mod history;
pub mod image_index;
pub mod image_lookup;
pub mod image_stream_import;
pub mod image_stream_mapping;
pub mod layers;
pub mod limits;
pub mod plan;
pub mod refusal;
pub mod requeue;
pub mod schedule;
pub mod settings;
pub mod sync;
pub mod tag_edit;
pub mod validation;
pub mod view_index;
pub mod views;
