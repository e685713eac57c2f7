//! ImageStream decisions without IO: spec-tag generations ([`generation`]) and tag history
//! and import conditions ([`history`]), each as OpenShift computes them, and one controller
//! pass over a stream ([`sync`]).

pub mod generation;
pub mod history;
pub mod sync;
