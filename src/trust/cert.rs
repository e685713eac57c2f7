//! Keyless signing certificates: what they say (subject, OIDC issuer, validity, issuing CA)
//! and whether they chain to the trusted root at a given time.
//!
//! Reading uses x509-parser; the chain (signatures, validity at the signing time, CA basic
//! constraints, the codeSigning extended key usage) is checked by rustls-webpki, the verifier
//! rustls uses, with aws-lc-rs algorithms.

use jiff::Timestamp;
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, UnixTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::asn1_rs::Any;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use super::key::PublicKey;
use super::root::TrustedRoot;

/// Fulcio's OIDC issuer extension, v2: a DER UTF8String.
const FULCIO_ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
/// Fulcio's OIDC issuer extension, v1 (deprecated): the raw string.
const FULCIO_ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
/// id-kp-codeSigning (1.3.6.1.5.5.7.3.3), DER contents.
const EKU_CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

static ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::aws_lc_rs::ECDSA_P256_SHA256,
    webpki::aws_lc_rs::ECDSA_P256_SHA384,
    webpki::aws_lc_rs::ECDSA_P384_SHA256,
    webpki::aws_lc_rs::ECDSA_P384_SHA384,
    webpki::aws_lc_rs::ECDSA_P521_SHA512,
    webpki::aws_lc_rs::ED25519,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA384,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA512,
    webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
];

/// What a signing certificate says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// The DER certificate.
    pub der: Vec<u8>,
    /// The first email or URI subject alternative name.
    pub subject: Option<String>,
    /// The OIDC issuer (Fulcio's extension, v2 preferred).
    pub oidc_issuer: Option<String>,
    /// The issuing CA's organization and common name.
    pub issuer_organization: String,
    pub issuer_common_name: String,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    /// The certificate's key.
    pub key: PublicKey,
}

/// Why a certificate is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("the certificate cannot be read: {0}")]
    Unreadable(String),
    #[error("the certificate expired at {not_after}, before {at}")]
    Expired { not_after: Timestamp, at: Timestamp },
    #[error("the certificate is valid from {not_before}, after {at}")]
    NotYetValid {
        not_before: Timestamp,
        at: Timestamp,
    },
    #[error("the certificate does not chain to the trusted root: {0}")]
    Untrusted(String),
}

impl CertError {
    /// A stable PascalCase reason for conditions and events.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unreadable(_) | Self::Untrusted(_) => "CertificateUntrusted",
            Self::Expired { .. } => "CertificateExpired",
            Self::NotYetValid { .. } => "CertificateNotYetValid",
        }
    }
}

impl Leaf {
    /// Reads a DER certificate.
    pub fn parse(der: &[u8]) -> Result<Self, CertError> {
        let unreadable = |e: String| CertError::Unreadable(e);
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| unreadable(e.to_string()))?;
        let subject = cert
            .subject_alternative_name()
            .map_err(|e| unreadable(e.to_string()))?
            .and_then(|san| {
                san.value.general_names.iter().find_map(|n| match n {
                    GeneralName::RFC822Name(s) | GeneralName::URI(s) => Some(s.to_string()),
                    _ => None,
                })
            });
        let extension = |oid: &str| {
            cert.extensions()
                .iter()
                .find(|e| e.oid.to_id_string() == oid)
                .map(|e| e.value)
        };
        let oidc_issuer = extension(FULCIO_ISSUER_V2)
            .and_then(|v| Any::from_der(v).ok())
            .and_then(|(_, any)| any.as_str().ok().map(str::to_string))
            .or_else(|| {
                extension(FULCIO_ISSUER_V1)
                    .and_then(|v| std::str::from_utf8(v).ok().map(str::to_string))
            });
        let issuer = cert.issuer();
        let first = |a: Option<&x509_parser::x509::AttributeTypeAndValue<'_>>| {
            a.and_then(|a| a.as_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let issuer_organization = first(issuer.iter_organization().next());
        let issuer_common_name = first(issuer.iter_common_name().next());
        let time = |secs: i64| Timestamp::from_second(secs).map_err(|e| unreadable(e.to_string()));
        let key = PublicKey::from_spki_der(cert.public_key().raw)
            .map_err(|e| unreadable(e.to_string()))?;
        Ok(Self {
            der: der.to_vec(),
            subject,
            oidc_issuer,
            issuer_organization,
            issuer_common_name,
            not_before: time(cert.validity().not_before.timestamp())?,
            not_after: time(cert.validity().not_after.timestamp())?,
            key,
        })
    }

    /// Whether the certificate chains to a CA of `root` trusted at `at` (through the
    /// `intermediates` the signature carries), is valid at `at` and allows code signing.
    pub fn verify_chain(
        &self,
        intermediates: &[Vec<u8>],
        root: &TrustedRoot,
        at: Timestamp,
    ) -> Result<(), CertError> {
        // validity first, so an expired certificate says so whatever its chain
        if at > self.not_after {
            return Err(CertError::Expired {
                not_after: self.not_after,
                at,
            });
        }
        if at < self.not_before {
            return Err(CertError::NotYetValid {
                not_before: self.not_before,
                at,
            });
        }
        let anchor_ders: Vec<CertificateDer<'_>> = root
            .authorities
            .iter()
            .filter(|ca| ca.valid_for.contains(at))
            .map(|ca| CertificateDer::from(ca.der.as_slice()))
            .collect();
        let anchors: Vec<_> = anchor_ders
            .iter()
            .filter_map(|c| webpki::anchor_from_trusted_cert(c).ok())
            .collect();
        if anchors.is_empty() {
            return Err(CertError::Untrusted(format!(
                "no certificate authority of the trusted root is valid at {at}"
            )));
        }
        let intermediates: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .map(|der| CertificateDer::from(der.as_slice()))
            .collect();
        let leaf = CertificateDer::from(self.der.as_slice());
        let end_entity = webpki::EndEntityCert::try_from(&leaf)
            .map_err(|e| CertError::Unreadable(format!("{e:?}")))?;
        let seconds = u64::try_from(at.as_second()).unwrap_or(0);
        let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds));
        end_entity
            .verify_for_usage(
                ALGORITHMS,
                &anchors,
                &intermediates,
                time,
                webpki::KeyUsage::required(EKU_CODE_SIGNING),
                None,
                None,
            )
            .map(|_| ())
            .map_err(|e| match e {
                webpki::Error::CertExpired { .. } => CertError::Expired {
                    not_after: self.not_after,
                    at,
                },
                webpki::Error::CertNotValidYet { .. } => CertError::NotYetValid {
                    not_before: self.not_before,
                    at,
                },
                webpki::Error::UnknownIssuer => CertError::Untrusted(
                    "its issuer is not a certificate authority of the trusted root".to_string(),
                ),
                webpki::Error::RequiredEkuNotFoundContext(_) => {
                    CertError::Untrusted("it does not allow code signing".to_string())
                }
                other => CertError::Untrusted(format!("{other:?}")),
            })
    }
}
