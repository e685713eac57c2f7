//! ImageStream decisions without IO: spec-tag generations ([`generation`]) and tag history
//! and import conditions ([`history`]), each as OpenShift computes them.

pub mod generation;
pub mod history;
