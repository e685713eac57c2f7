//! A keyless authority's trusted root: the certificate authorities signing certificates must
//! chain to, and the transparency log keys that date a signature.
//!
//! Two formats, told apart by their first non-blank character:
//! - a PEM bundle of CA certificates (`-----BEGIN CERTIFICATE-----`…), and optionally
//!   `PUBLIC KEY` blocks taken as transparency log keys;
//! - sigstore's `trusted_root.json` (`{"mediaType": "application/vnd.dev.sigstore.trustedroot…",
//!   "tlogs": […], "certificateAuthorities": […]}`), as `cosign trusted-root create` and
//!   the TUF repository of the public-good instance publish it. Its CT logs and timestamp
//!   authorities are not used.
//!
//! Every certificate given is a trust anchor (an intermediate listed by the user is trusted
//! as much as its root); intermediates a signature carries in its chain annotation are only
//! used to build the path.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use serde::Deserialize;

use super::key::{PublicKey, pem_blocks};

/// Why a trusted root cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RootError {
    #[error("the trusted root holds no CA certificate")]
    NoCertificate,
    #[error("the trusted root is not valid trusted_root.json: {0}")]
    Json(String),
    #[error("a certificate of the trusted root cannot be read: {0}")]
    Certificate(String),
    #[error("a transparency log key of the trusted root cannot be read: {0}")]
    LogKey(String),
}

impl RootError {
    /// A stable PascalCase reason for conditions and events.
    pub fn reason(&self) -> &'static str {
        "TrustedRootInvalid"
    }
}

/// A period during which a CA or a log key is trusted; open ends are unbounded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ValidFor {
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
}

impl ValidFor {
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start.is_none_or(|s| s <= t) && self.end.is_none_or(|e| t <= e)
    }
}

/// A CA certificate (DER) and when it may be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateAuthority {
    pub der: Vec<u8>,
    pub valid_for: ValidFor,
}

/// A transparency log key and when it may be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogKey {
    pub key: PublicKey,
    /// Rekor's log ID: hex SHA-256 of the key's DER SubjectPublicKeyInfo.
    pub log_id: String,
    pub valid_for: ValidFor,
}

/// A parsed trusted root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedRoot {
    pub authorities: Vec<CertificateAuthority>,
    pub logs: Vec<LogKey>,
}

impl TrustedRoot {
    /// Parses a PEM bundle or a trusted_root.json.
    pub fn parse(data: &[u8]) -> Result<Self, RootError> {
        let first = data.iter().find(|c| !c.is_ascii_whitespace());
        let root = if first == Some(&b'{') {
            Self::from_json(data)?
        } else {
            Self::from_pem(data)?
        };
        if root.authorities.is_empty() {
            return Err(RootError::NoCertificate);
        }
        for ca in &root.authorities {
            let cert = rustls_pki_types::CertificateDer::from(ca.der.as_slice());
            webpki::anchor_from_trusted_cert(&cert)
                .map_err(|e| RootError::Certificate(format!("{e:?}")))?;
        }
        Ok(root)
    }

    fn from_pem(data: &[u8]) -> Result<Self, RootError> {
        let authorities = pem_blocks(data, "CERTIFICATE")
            .into_iter()
            .map(|der| CertificateAuthority {
                der,
                valid_for: ValidFor::default(),
            })
            .collect();
        let logs = pem_blocks(data, "PUBLIC KEY")
            .iter()
            .map(|der| {
                let key =
                    PublicKey::from_spki_der(der).map_err(|e| RootError::LogKey(e.to_string()))?;
                Ok(LogKey {
                    log_id: key.fingerprint(),
                    key,
                    valid_for: ValidFor::default(),
                })
            })
            .collect::<Result<_, RootError>>()?;
        Ok(Self { authorities, logs })
    }

    fn from_json(data: &[u8]) -> Result<Self, RootError> {
        let json: TrustedRootJson =
            serde_json::from_slice(data).map_err(|e| RootError::Json(e.to_string()))?;
        let mut authorities = Vec::new();
        for ca in json.certificate_authorities {
            let valid_for = ca.valid_for.parse()?;
            for cert in ca.cert_chain.certificates {
                let der = STANDARD
                    .decode(cert.raw_bytes)
                    .map_err(|e| RootError::Certificate(e.to_string()))?;
                authorities.push(CertificateAuthority { der, valid_for });
            }
        }
        let mut logs = Vec::new();
        for tlog in json.tlogs {
            let valid_for = tlog.public_key.valid_for.parse()?;
            let der = STANDARD
                .decode(tlog.public_key.raw_bytes)
                .map_err(|e| RootError::LogKey(e.to_string()))?;
            let key =
                PublicKey::from_spki_der(&der).map_err(|e| RootError::LogKey(e.to_string()))?;
            logs.push(LogKey {
                log_id: key.fingerprint(),
                key,
                valid_for,
            });
        }
        Ok(Self { authorities, logs })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrustedRootJson {
    #[serde(default)]
    tlogs: Vec<TlogJson>,
    #[serde(default)]
    certificate_authorities: Vec<CaJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TlogJson {
    public_key: PublicKeyJson,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PublicKeyJson {
    raw_bytes: String,
    #[serde(default)]
    valid_for: ValidForJson,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CaJson {
    cert_chain: CertChainJson,
    #[serde(default)]
    valid_for: ValidForJson,
}

#[derive(Deserialize)]
struct CertChainJson {
    certificates: Vec<RawBytesJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBytesJson {
    raw_bytes: String,
}

#[derive(Deserialize, Default)]
struct ValidForJson {
    start: Option<String>,
    end: Option<String>,
}

impl ValidForJson {
    fn parse(&self) -> Result<ValidFor, RootError> {
        let parse = |s: &Option<String>| {
            s.as_deref()
                .map(|s| s.parse::<Timestamp>())
                .transpose()
                .map_err(|e| RootError::Json(format!("validFor: {e}")))
        };
        Ok(ValidFor {
            start: parse(&self.start)?,
            end: parse(&self.end)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::tests::{TestCa, ec_key_pem};

    #[test]
    fn a_pem_bundle_gives_its_certificates_and_log_keys() {
        let ca = TestCa::new("Test Root");
        let (_, log_pem) = ec_key_pem();
        let root =
            TrustedRoot::parse(format!("{}{log_pem}", ca.pem()).as_bytes()).expect("valid root");
        assert_eq!(root.authorities.len(), 1);
        assert_eq!(root.logs.len(), 1);
        assert_eq!(root.logs[0].log_id.len(), 64);
    }

    #[test]
    fn a_trusted_root_json_gives_its_certificate_authorities_and_tlogs() {
        let ca = TestCa::new("Test Root");
        let (_, log_pem) = ec_key_pem();
        let log_der = pem_blocks(log_pem.as_bytes(), "PUBLIC KEY").remove(0);
        let json = serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [{
                "baseUrl": "https://rekor.example.com",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": STANDARD.encode(&log_der),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": "2020-01-01T00:00:00Z"}
                },
                "logId": {"keyId": "ignored"}
            }],
            "certificateAuthorities": [{
                "subject": {"organization": "test", "commonName": "Test Root"},
                "certChain": {"certificates": [{"rawBytes": STANDARD.encode(ca.der())}]},
                "validFor": {"start": "2020-01-01T00:00:00Z", "end": "2030-01-01T00:00:00Z"}
            }],
            "ctlogs": [],
            "timestampAuthorities": []
        });
        let root = TrustedRoot::parse(json.to_string().as_bytes()).expect("valid root");
        assert_eq!(root.authorities.len(), 1);
        assert!(
            root.authorities[0]
                .valid_for
                .contains("2025-01-01T00:00:00Z".parse().expect("time"))
        );
        assert!(
            !root.authorities[0]
                .valid_for
                .contains("2031-01-01T00:00:00Z".parse().expect("time"))
        );
        assert_eq!(root.logs.len(), 1);
    }

    #[test]
    fn a_root_without_certificates_or_with_broken_json_is_refused() {
        assert_eq!(TrustedRoot::parse(b""), Err(RootError::NoCertificate));
        assert!(matches!(
            TrustedRoot::parse(b"{\"tlogs\": 3}"),
            Err(RootError::Json(_))
        ));
    }
}
