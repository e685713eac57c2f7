//! Trust before import: image policies and the verification of cosign signatures, as pure
//! decisions (issue 20, items 1 and 2). No IO here: the registry, the cluster and the clock
//! are the caller's.
//!
//! Why here and not in an admission controller: the importer is where an image becomes
//! current. Verifying before the tag moves means an unsigned image never becomes the tag's
//! image at all, instead of being refused later when a pod runs it.
//!
//! # Design note: what the IO layer supplies, and what it gets
//!
//! 1. Policies. Watch [`ImagePolicy`] objects and, for each, the Secret and ConfigMap keys
//!    [`resolve::sources`] lists. [`resolve::resolve`] turns a policy plus a lookup of those
//!    bytes into a [`ResolvedPolicy`] (keys, trusted roots, globs, regular expressions
//!    parsed); [`ResolvedPolicy::ready`] is the policy's `Ready` condition. Re-resolve when
//!    the policy or a source changes; [`ResolvedPolicy::material`] changes with them, so
//!    tags verified under the old material are re-evaluated.
//! 2. Coverage. For an image about to be imported by `reference`,
//!    [`policy::covering`] gives the covering policies and the combined enforcement. No
//!    covering policy: import as today, no signature fetch.
//! 3. Signatures. Otherwise fetch the manifest tagged [`cosign::signature_tag`]`(digest)` in
//!    the image's repository (with the manifest size limits, timeouts and budgets), and each
//!    layer's blob; hand them over as [`SignatureLayer`]s (media type, digest, annotations,
//!    payload bytes). No signature manifest means an empty list (the verdict then says
//!    `SignatureMissing`).
//! 4. Verdict. [`verify::verify`] with the covering policies, the layers and a [`Subject`]
//!    (digest, reference, the current time) returns a [`Verdict`]: per policy and authority,
//!    pass or a [`Failure`] (stable [`FailureReason`], message naming the policy, the
//!    authority and what failed), and the [`Decision`]: `Passed`, `Warned` (import and say
//!    so), `Refused` (the tag keeps its image; [`Verdict::failure`] is the condition's reason
//!    and message) or `Unverified`.
//! 5. Records. [`Verdict::signatures`] are the passing signatures; each one's
//!    [`VerifiedSignature::image_signature`] fills an ImageSignature (type, content,
//!    `Trusted`/`ForImage` True, identity, issuer, subject, claims, created).
//! 6. Cache. A [`PolicyVerdict`] is `Clone + PartialEq` and small (no keys, certificates or
//!    payloads): cache it per (image digest, repository, policy name, `material`) and
//!    rebuild the [`Verdict`] with [`Verdict::from_policies`]; an unchanged scheduled check
//!    then verifies nothing and fetches nothing beyond its HEAD.
//!
//! Time is an input ([`Subject::now`]): a keyless certificate must be valid at the time of its
//! transparency log entry when the bundle verifies with a log key of the trusted root, else
//! at `now`.
//!
//! Not here (yet): notation signatures, attestations (`.att`) and the OCI referrers API
//! listing, which the IO layer does on top of [`cosign::attestation_tag`].

pub mod cert;
pub mod cosign;
pub mod key;
pub mod policy;
pub mod resolve;
pub mod root;
pub mod verify;

#[cfg(test)]
pub(crate) mod tests;

pub use cosign::{SignatureLayer, Subject};
pub use policy::{Enforcement, ImagePolicy, ImagePolicySpec, ImagePolicyStatus, Requirement};
pub use resolve::{ResolvedPolicy, resolve};
pub use verify::{
    Decision, Failure, FailureReason, PolicyVerdict, Verdict, VerifiedSignature, verify,
};
