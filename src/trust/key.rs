//! Public keys as cosign writes them (`cosign.pub`: a PEM `PUBLIC KEY`, i.e. a DER
//! SubjectPublicKeyInfo) and signature verification with aws-lc-rs.
//!
//! Algorithms: ECDSA P-256 with SHA-256 and P-384 with SHA-384 (ASN.1 DER signatures, what
//! cosign makes), Ed25519, and RSA PKCS#1 v1.5 or PSS with SHA-256 (2048 to 8192 bits).

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use sha2::{Digest, Sha256};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const P256: &str = "1.2.840.10045.3.1.7";
const P384: &str = "1.3.132.0.34";
const ED25519: &str = "1.3.101.112";
const RSA: &str = "1.2.840.113549.1.1.1";

/// Why a key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("no PEM PUBLIC KEY block found")]
    NoPem,
    #[error("the key is not a DER SubjectPublicKeyInfo: {0}")]
    NotSpki(String),
    #[error("unsupported key algorithm {0} (supported: ECDSA P-256, P-384, Ed25519, RSA)")]
    Unsupported(String),
}

impl KeyError {
    /// A stable PascalCase reason for conditions and events.
    pub fn reason(&self) -> &'static str {
        "KeyInvalid"
    }
}

/// The kinds of key we verify with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
    Rsa,
}

/// A parsed public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    kind: KeyKind,
    /// The key bits as aws-lc-rs wants them: the EC point, the Ed25519 key, or the PKCS#1
    /// RSAPublicKey.
    bits: Vec<u8>,
    /// The whole DER SubjectPublicKeyInfo.
    spki: Vec<u8>,
}

impl PublicKey {
    /// The first `PUBLIC KEY` block of a PEM text (other blocks are skipped).
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let der = pem_blocks(pem, "PUBLIC KEY")
            .into_iter()
            .next()
            .ok_or(KeyError::NoPem)?;
        Self::from_spki_der(&der)
    }

    /// A DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let (_, spki) =
            SubjectPublicKeyInfo::from_der(der).map_err(|e| KeyError::NotSpki(e.to_string()))?;
        let algorithm = spki.algorithm.algorithm.to_id_string();
        let parameter = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|o| o.to_id_string());
        let kind = match (algorithm.as_str(), parameter.as_deref()) {
            (EC_PUBLIC_KEY, Some(P256)) => KeyKind::EcdsaP256,
            (EC_PUBLIC_KEY, Some(P384)) => KeyKind::EcdsaP384,
            (EC_PUBLIC_KEY, other) => {
                return Err(KeyError::Unsupported(format!(
                    "ECDSA on curve {}",
                    other.unwrap_or("(none)")
                )));
            }
            (ED25519, _) => KeyKind::Ed25519,
            (RSA, _) => KeyKind::Rsa,
            (other, _) => return Err(KeyError::Unsupported(other.to_string())),
        };
        Ok(Self {
            kind,
            bits: spki.subject_public_key.data.to_vec(),
            spki: der.to_vec(),
        })
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// SHA-256 of the DER SubjectPublicKeyInfo, hex: Rekor's log ID for a log key, and the
    /// key ID we report for a signing key.
    pub fn fingerprint(&self) -> String {
        hex(&Sha256::digest(&self.spki))
    }

    /// Whether `signature` is this key's signature over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let algorithms: &[&'static dyn VerificationAlgorithm] = match self.kind {
            KeyKind::EcdsaP256 => &[&signature::ECDSA_P256_SHA256_ASN1],
            KeyKind::EcdsaP384 => &[&signature::ECDSA_P384_SHA384_ASN1],
            KeyKind::Ed25519 => &[&signature::ED25519],
            KeyKind::Rsa => &[
                &signature::RSA_PKCS1_2048_8192_SHA256,
                &signature::RSA_PSS_2048_8192_SHA256,
            ],
        };
        algorithms.iter().any(|alg| {
            UnparsedPublicKey::new(*alg, &self.bits)
                .verify(message, signature)
                .is_ok()
        })
    }
}

/// The DER contents of every PEM block with `label` (`CERTIFICATE`, `PUBLIC KEY`).
pub fn pem_blocks(text: &[u8], label: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(text)
        .filter_map(Result::ok)
        .filter(|p| p.label == label)
        .map(|p| p.contents)
        .collect()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::tests::{ec_key, ec_key_pem, sign};

    #[test]
    fn a_cosign_pub_key_verifies_its_own_signatures_only() {
        let (pair, pem) = ec_key_pem();
        let key = PublicKey::from_pem(pem.as_bytes()).expect("valid key");
        assert_eq!(key.kind(), KeyKind::EcdsaP256);
        let sig = sign(&pair, b"payload");
        assert!(key.verify(b"payload", &sig));
        assert!(!key.verify(b"payload!", &sig));
        let other = ec_key();
        assert!(!key.verify(b"payload", &sign(&other, b"payload")));
    }

    #[test]
    fn pem_without_a_public_key_or_with_garbage_is_refused() {
        assert_eq!(PublicKey::from_pem(b"not a pem"), Err(KeyError::NoPem));
        let garbage = b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        assert!(matches!(
            PublicKey::from_pem(garbage),
            Err(KeyError::NotSpki(_))
        ));
    }
}
