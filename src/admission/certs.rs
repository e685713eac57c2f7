//! The webhook's serving certificate, managed by the operator itself so that installing it
//! needs no cert-manager and no manual `caBundle`.
//!
//! - A CA (ECDSA P-256) lives in a Secret of type `kubernetes.io/tls` (`tls.crt`, `tls.key`).
//!   Every replica and every restart signs with the same CA, so the `caBundle` written into the
//!   webhook configurations stays the same and replicas never fight over it.
//! - Each replica issues its own short-lived serving certificate from that CA, in memory only
//!   (the private key never leaves the process), for the Service's DNS names plus whatever the
//!   caller adds (`127.0.0.1` and `localhost` for tests).
//! - Both are renewed once two thirds of their lifetime has passed ([`Validity::needs_renewal`]).
//!   A renewed CA keeps the previous certificate in the Secret (`ca-previous.crt`) and in the
//!   bundle until it expires, so serving certificates of either CA verify during the change.
//!
//! The issuer's distinguished name is rebuilt from [`CA_COMMON_NAME`] rather than parsed from
//! the stored certificate (that would need an X.509 parser); it must therefore never change.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::Error;

/// Common name of the CA; also the issuer name of every serving certificate (never change it:
/// certificates issued by a CA stored under another name would not chain).
pub const CA_COMMON_NAME: &str = "imagestream-operator-webhook-ca";
/// Secret key holding the CA certificate (PEM).
pub const CA_CERT_KEY: &str = "tls.crt";
/// Secret key holding the CA private key (PKCS#8 PEM).
pub const CA_KEY_KEY: &str = "tls.key";
/// Secret key holding the CA that was replaced, while it is still valid.
pub const CA_PREVIOUS_KEY: &str = "ca-previous.crt";
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "imagestream-operator");
/// Certificates start this much in the past, for clocks behind ours (a quarter of shorter
/// lifetimes, so that renewal at two thirds still comes after issuance).
const CLOCK_SKEW: Duration = Duration::from_secs(60 * 60);

/// Where the CA Secret lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
}

/// Certificate lifetimes and how often they are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CertPolicy {
    pub ca_lifetime: Duration,
    pub serving_lifetime: Duration,
    /// How often [`keep_fresh`](super::keep_fresh) re-reads the CA Secret and checks expiry.
    pub check_interval: Duration,
}

impl Default for CertPolicy {
    fn default() -> Self {
        CertPolicy {
            ca_lifetime: Duration::from_secs(10 * 365 * 24 * 60 * 60),
            serving_lifetime: Duration::from_secs(90 * 24 * 60 * 60),
            check_interval: Duration::from_secs(60 * 60),
        }
    }
}

/// When a certificate is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    pub not_before: Timestamp,
    pub not_after: Timestamp,
}

impl Validity {
    /// `lifetime` starting [`CLOCK_SKEW`] before `now`, in whole seconds as X.509 has them.
    fn starting(now: Timestamp, lifetime: Duration) -> Result<Validity, Error> {
        let now = Timestamp::from_second(now.as_second()).map_err(|_| Error::Lifetime)?;
        let span = |d: Duration| jiff::SignedDuration::try_from(d).map_err(|_| Error::Lifetime);
        let not_before = now
            .checked_sub(span(CLOCK_SKEW.min(lifetime / 4))?)
            .map_err(|_| Error::Lifetime)?;
        let not_after = now
            .checked_add(span(lifetime)?)
            .map_err(|_| Error::Lifetime)?;
        Ok(Validity {
            not_before,
            not_after,
        })
    }

    /// Renew once two thirds of the lifetime have passed, and whenever `now` is outside it
    /// (expired, or a clock that jumped back before `not_before`).
    pub fn needs_renewal(&self, now: Timestamp) -> bool {
        if now < self.not_before || now >= self.not_after {
            return true;
        }
        let lifetime = self.not_after.duration_since(self.not_before);
        let renew_at = self.not_before.saturating_add(lifetime * 2 / 3);
        now >= renew_at.unwrap_or(self.not_after)
    }

    /// Whether `now` is inside the validity.
    pub fn contains(&self, now: Timestamp) -> bool {
        self.not_before <= now && now < self.not_after
    }
}

/// The CA: its certificate, key and validity, plus the CA it replaced (if still valid).
pub struct CertificateAuthority {
    cert_pem: String,
    key: KeyPair,
    validity: Validity,
    previous_pem: Option<String>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("validity", &self.validity)
            .field("previous", &self.previous_pem.is_some())
            .finish_non_exhaustive()
    }
}

fn ca_params(validity: Validity) -> Result<CertificateParams, Error> {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = to_offset(validity.not_before)?;
    params.not_after = to_offset(validity.not_after)?;
    Ok(params)
}

fn to_offset(t: Timestamp) -> Result<time::OffsetDateTime, Error> {
    time::OffsetDateTime::from_unix_timestamp(t.as_second()).map_err(|_| Error::Lifetime)
}

impl CertificateAuthority {
    /// A new CA valid for `lifetime` from `now`.
    pub fn generate(now: Timestamp, lifetime: Duration) -> Result<Self, Error> {
        let validity = Validity::starting(now, lifetime)?;
        let key = KeyPair::generate().map_err(Error::Generate)?;
        let cert = ca_params(validity)?
            .self_signed(&key)
            .map_err(Error::Generate)?;
        Ok(CertificateAuthority {
            cert_pem: cert.pem(),
            key,
            validity,
            previous_pem: None,
        })
    }

    /// A new CA replacing this one; this one stays in the bundle while it is valid.
    pub fn renew(&self, now: Timestamp, lifetime: Duration) -> Result<Self, Error> {
        let mut next = Self::generate(now, lifetime)?;
        next.previous_pem = self.validity.contains(now).then(|| self.cert_pem.clone());
        Ok(next)
    }

    /// Reads the CA from the Secret's data; a previous CA that no longer parses or has expired
    /// is dropped.
    pub fn from_secret_data(
        data: &BTreeMap<String, ByteString>,
        now: Timestamp,
    ) -> Result<Self, Error> {
        let text = |key: &str| -> Result<String, Error> {
            let bytes = data
                .get(key)
                .ok_or_else(|| Error::InvalidCaSecret(format!("no {key:?} key")))?;
            String::from_utf8(bytes.0.clone())
                .map_err(|_| Error::InvalidCaSecret(format!("{key:?} is not text")))
        };
        let cert_pem = text(CA_CERT_KEY)?;
        let key = KeyPair::from_pem(&text(CA_KEY_KEY)?)
            .map_err(|e| Error::InvalidCaSecret(format!("{CA_KEY_KEY:?}: {e}")))?;
        let der = pem_to_der(&cert_pem).ok_or_else(|| {
            Error::InvalidCaSecret(format!("{CA_CERT_KEY:?} holds no certificate"))
        })?;
        let validity = validity_of(&der)
            .map_err(|e| Error::InvalidCaSecret(format!("{CA_CERT_KEY:?}: {e}")))?;
        let previous_pem = text(CA_PREVIOUS_KEY).ok().filter(|pem| {
            pem_to_der(pem)
                .and_then(|der| validity_of(&der).ok())
                .is_some_and(|v| v.contains(now))
        });
        Ok(CertificateAuthority {
            cert_pem,
            key,
            validity,
            previous_pem,
        })
    }

    /// The Secret data holding this CA.
    pub fn to_secret_data(&self) -> BTreeMap<String, ByteString> {
        let mut data = BTreeMap::from([
            (
                CA_CERT_KEY.to_string(),
                ByteString(self.cert_pem.clone().into_bytes()),
            ),
            (
                CA_KEY_KEY.to_string(),
                ByteString(self.key.serialize_pem().into_bytes()),
            ),
        ]);
        if let Some(previous) = &self.previous_pem {
            data.insert(
                CA_PREVIOUS_KEY.to_string(),
                ByteString(previous.clone().into_bytes()),
            );
        }
        data
    }

    pub fn validity(&self) -> Validity {
        self.validity
    }

    /// The PEM certificate of this CA.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The `caBundle` for the webhook configurations: this CA, then the previous one.
    pub fn bundle_pem(&self) -> String {
        let mut bundle = self.cert_pem.clone();
        if let Some(previous) = &self.previous_pem {
            if !bundle.ends_with('\n') {
                bundle.push('\n');
            }
            bundle.push_str(previous);
        }
        bundle
    }

    /// A serving certificate for `names` (DNS names or IP addresses), valid for `lifetime`
    /// but never beyond this CA.
    pub fn issue(
        &self,
        names: &[String],
        now: Timestamp,
        lifetime: Duration,
    ) -> Result<ServingCertificate, Error> {
        let mut validity = Validity::starting(now, lifetime)?;
        validity.not_after = validity.not_after.min(self.validity.not_after);
        let mut params = CertificateParams::new(names.to_vec()).map_err(Error::Generate)?;
        let mut subject = DistinguishedName::new();
        subject.push(
            DnType::CommonName,
            names.first().map_or("imagestream-operator", String::as_str),
        );
        params.distinguished_name = subject;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = to_offset(validity.not_before)?;
        params.not_after = to_offset(validity.not_after)?;
        let issuer = Issuer::new(ca_params(self.validity)?, &self.key);
        let key = KeyPair::generate().map_err(Error::Generate)?;
        let cert = params.signed_by(&key, &issuer).map_err(Error::Generate)?;
        Ok(ServingCertificate {
            chain: vec![cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            validity,
        })
    }
}

/// One replica's serving certificate and key.
pub struct ServingCertificate {
    chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
    validity: Validity,
}

impl std::fmt::Debug for ServingCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingCertificate")
            .field("validity", &self.validity)
            .finish_non_exhaustive()
    }
}

impl ServingCertificate {
    pub fn validity(&self) -> Validity {
        self.validity
    }

    /// The leaf certificate (DER).
    pub fn leaf(&self) -> Option<&CertificateDer<'static>> {
        self.chain.first()
    }

    fn certified_key(&self) -> Result<CertifiedKey, Error> {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        CertifiedKey::from_der(
            self.chain.clone(),
            PrivateKeyDer::Pkcs8(self.key.clone_key()),
            &provider,
        )
        .map_err(Error::Tls)
    }
}

/// The current serving certificate, swapped in place on renewal: new TLS handshakes use the
/// new one, open connections keep theirs.
#[derive(Debug)]
pub struct CertificateStore {
    current: RwLock<Arc<CertifiedKey>>,
    validity: RwLock<Validity>,
}

impl CertificateStore {
    pub fn new(serving: &ServingCertificate) -> Result<Self, Error> {
        Ok(CertificateStore {
            current: RwLock::new(Arc::new(serving.certified_key()?)),
            validity: RwLock::new(serving.validity),
        })
    }

    /// Replaces the served certificate.
    pub fn set(&self, serving: &ServingCertificate) -> Result<(), Error> {
        let key = Arc::new(serving.certified_key()?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = key;
        *self
            .validity
            .write()
            .unwrap_or_else(PoisonError::into_inner) = serving.validity;
        Ok(())
    }

    /// The validity of the served certificate.
    pub fn validity(&self) -> Validity {
        *self.validity.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ResolvesServerCert for CertificateStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// Reads the CA from its Secret, creating it if absent and renewing it when due. Concurrent
/// replicas agree through the Secret's `resourceVersion`: whoever loses a create or replace
/// race reads the winner's CA.
pub async fn ensure_ca(
    client: &Client,
    secret: &SecretRef,
    policy: &CertPolicy,
) -> Result<CertificateAuthority, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &secret.namespace);
    let read_error = |source| Error::ReadCaSecret {
        secret: format!("{}/{}", secret.namespace, secret.name),
        source,
    };
    let write_error = |source| Error::WriteCaSecret {
        secret: format!("{}/{}", secret.namespace, secret.name),
        source,
    };
    for _ in 0..5 {
        let now = Timestamp::now();
        let existing = api.get_opt(&secret.name).await.map_err(read_error)?;
        let Some(existing) = existing else {
            let ca = CertificateAuthority::generate(now, policy.ca_lifetime)?;
            match api
                .create(&PostParams::default(), &ca_secret(secret, &ca, None))
                .await
            {
                Ok(_) => {
                    tracing::info!(secret = %secret.name, namespace = %secret.namespace, "created the webhook CA");
                    return Ok(ca);
                }
                Err(kube::Error::Api(s)) if s.is_already_exists() => continue,
                Err(e) => return Err(write_error(e)),
            }
        };
        let data = existing.data.clone().unwrap_or_default();
        let ca = CertificateAuthority::from_secret_data(&data, now).map_err(|e| match e {
            Error::InvalidCaSecret(why) => Error::InvalidCaSecret(format!(
                "Secret {}/{}: {why} (delete it to have a new CA generated)",
                secret.namespace, secret.name
            )),
            other => other,
        })?;
        if !ca.validity().needs_renewal(now) {
            return Ok(ca);
        }
        let next = ca.renew(now, policy.ca_lifetime)?;
        let replacement = ca_secret(secret, &next, existing.resource_version());
        match api
            .replace(&secret.name, &PostParams::default(), &replacement)
            .await
        {
            Ok(_) => {
                tracing::info!(secret = %secret.name, namespace = %secret.namespace, "renewed the webhook CA");
                return Ok(next);
            }
            Err(kube::Error::Api(s)) if s.is_conflict() => continue,
            Err(e) => return Err(write_error(e)),
        }
    }
    Err(Error::CaSecretContended(format!(
        "{}/{}",
        secret.namespace, secret.name
    )))
}

fn ca_secret(
    secret: &SecretRef,
    ca: &CertificateAuthority,
    resource_version: Option<String>,
) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(secret.name.clone()),
            namespace: Some(secret.namespace.clone()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY.0.to_string(),
                MANAGED_BY.1.to_string(),
            )])),
            resource_version,
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(ca.to_secret_data()),
        ..Secret::default()
    }
}

/// The DER of the first `CERTIFICATE` block of a PEM text.
fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = pem.find(BEGIN)? + BEGIN.len();
    let end = start + pem[start..].find(END)?;
    let body: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// Why a certificate's validity could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not an X.509 certificate: {0}")]
pub struct MalformedCertificate(&'static str);

/// `notBefore`/`notAfter` of a DER X.509 certificate, read by walking just enough DER:
/// Certificate → TBSCertificate → (version), serialNumber, signature, issuer, validity.
pub fn validity_of(der: &[u8]) -> Result<Validity, MalformedCertificate> {
    let (certificate, _) = der_element(der, 0x30)?;
    let (tbs, _) = der_element(certificate, 0x30)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = der_element(rest, 0xa0)?.1;
    }
    rest = der_element(rest, 0x02)?.1; // serialNumber
    rest = der_element(rest, 0x30)?.1; // signature algorithm
    rest = der_element(rest, 0x30)?.1; // issuer
    let (validity, _) = der_element(rest, 0x30)?;
    let (not_before, rest) = der_time(validity)?;
    let (not_after, _) = der_time(rest)?;
    Ok(Validity {
        not_before,
        not_after,
    })
}

/// One DER element with the expected single-byte tag: (contents, what follows).
fn der_element(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), MalformedCertificate> {
    let (&actual, rest) = input
        .split_first()
        .ok_or(MalformedCertificate("truncated"))?;
    if actual != tag {
        return Err(MalformedCertificate("unexpected element"));
    }
    let (&first, mut rest) = rest
        .split_first()
        .ok_or(MalformedCertificate("truncated"))?;
    let length = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return Err(MalformedCertificate("bad length"));
        }
        let (bytes, after) = rest.split_at(count);
        rest = after;
        bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b))
    };
    if rest.len() < length {
        return Err(MalformedCertificate("truncated"));
    }
    Ok(rest.split_at(length))
}

/// A UTCTime or GeneralizedTime in UTC (`Z`), as X.509 requires.
fn der_time(input: &[u8]) -> Result<(Timestamp, &[u8]), MalformedCertificate> {
    let bad = MalformedCertificate("bad time");
    let (text, rest, century) = match input.first() {
        Some(0x17) => {
            let (text, rest) = der_element(input, 0x17)?;
            (text, rest, None)
        }
        Some(0x18) => {
            let (text, rest) = der_element(input, 0x18)?;
            (text, rest, Some(()))
        }
        _ => return Err(MalformedCertificate("unexpected element")),
    };
    let text = std::str::from_utf8(text).map_err(|_| bad.clone())?;
    let digits = text.strip_suffix('Z').ok_or(bad.clone())?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    let number = |range: std::ops::Range<usize>| -> Result<i16, MalformedCertificate> {
        digits
            .get(range)
            .and_then(|s| s.parse().ok())
            .ok_or(MalformedCertificate("bad time"))
    };
    let (year, at) = match (century, digits.len()) {
        (None, 12) => {
            let yy = number(0..2)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        }
        (Some(()), 14) => (number(0..4)?, 4),
        _ => return Err(bad),
    };
    let field = |i: usize| number(at + 2 * i..at + 2 * i + 2);
    let to_i8 = |v: i16| i8::try_from(v).map_err(|_| MalformedCertificate("bad time"));
    let datetime = jiff::civil::DateTime::new(
        year,
        to_i8(field(0)?)?,
        to_i8(field(1)?)?,
        to_i8(field(2)?)?,
        to_i8(field(3)?)?,
        to_i8(field(4)?)?,
        0,
    )
    .map_err(|_| MalformedCertificate("bad time"))?;
    let timestamp = datetime
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|_| MalformedCertificate("bad time"))?
        .timestamp();
    Ok((timestamp, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{ServerName, UnixTime};

    const DAY: Duration = Duration::from_secs(24 * 60 * 60);

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn renewal_after_two_thirds_of_the_lifetime() {
        let v = Validity {
            not_before: ts("2030-01-01T00:00:00Z"),
            not_after: ts("2030-01-31T00:00:00Z"),
        };
        assert!(
            v.needs_renewal(ts("2029-12-31T23:59:59Z")),
            "before validity"
        );
        assert!(!v.needs_renewal(ts("2030-01-01T00:00:00Z")));
        assert!(!v.needs_renewal(ts("2030-01-20T23:59:59Z")));
        assert!(v.needs_renewal(ts("2030-01-21T00:00:00Z")), "two thirds");
        assert!(v.needs_renewal(ts("2030-01-31T00:00:00Z")), "expired");
        assert!(v.contains(ts("2030-01-30T00:00:00Z")));
        assert!(!v.contains(ts("2030-01-31T00:00:00Z")));
    }

    #[test]
    fn generated_ca_round_trips_through_its_secret_data() {
        let now = ts("2031-05-01T12:00:00Z");
        let ca = CertificateAuthority::generate(now, 365 * DAY).unwrap();
        let v = ca.validity();
        assert_eq!(v.not_before, ts("2031-05-01T11:00:00Z"));
        assert_eq!(v.not_after, ts("2032-04-30T12:00:00Z"));
        let read = CertificateAuthority::from_secret_data(&ca.to_secret_data(), now).unwrap();
        assert_eq!(read.validity(), v, "validity parsed back from the DER");
        assert_eq!(read.bundle_pem(), ca.bundle_pem());
        assert!(!read.validity().needs_renewal(now));
    }

    #[test]
    fn renewed_ca_keeps_the_previous_one_in_the_bundle_while_valid() {
        let now = ts("2031-05-01T12:00:00Z");
        let old = CertificateAuthority::generate(now, 30 * DAY).unwrap();
        let later = ts("2031-05-25T12:00:00Z");
        assert!(old.validity().needs_renewal(later));
        let next = old.renew(later, 30 * DAY).unwrap();
        assert!(next.bundle_pem().starts_with(next.cert_pem()));
        assert!(next.bundle_pem().ends_with(old.cert_pem()));
        let data = next.to_secret_data();
        assert!(data.contains_key(CA_PREVIOUS_KEY));
        // once the old CA expired it is dropped when read back
        let read =
            CertificateAuthority::from_secret_data(&data, ts("2031-06-02T00:00:00Z")).unwrap();
        assert_eq!(read.bundle_pem(), next.cert_pem());
    }

    #[test]
    fn bad_secret_data_is_reported_not_panicked() {
        let now = ts("2031-05-01T12:00:00Z");
        let empty = BTreeMap::new();
        let err = CertificateAuthority::from_secret_data(&empty, now).unwrap_err();
        assert_eq!(err.reason(), "InvalidCaSecret");
        let ca = CertificateAuthority::generate(now, 30 * DAY).unwrap();
        let mut data = ca.to_secret_data();
        data.insert(CA_CERT_KEY.into(), ByteString(b"garbage".to_vec()));
        let err = CertificateAuthority::from_secret_data(&data, now).unwrap_err();
        assert!(err.to_string().contains("holds no certificate"), "{err}");
    }

    #[test]
    fn serving_certificate_chains_to_the_ca_for_each_name() {
        let now = Timestamp::now();
        let ca = CertificateAuthority::generate(now, 365 * DAY).unwrap();
        let names = vec![
            "webhook.ns.svc".to_string(),
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ];
        let serving = ca.issue(&names, now, 30 * DAY).unwrap();
        let leaf = serving.leaf().unwrap();
        assert_eq!(validity_of(leaf).unwrap(), serving.validity());

        let mut roots = rustls::RootCertStore::empty();
        let ca_der = pem_to_der(ca.cert_pem()).unwrap();
        roots.add(CertificateDer::from(ca_der)).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
        let unix = UnixTime::since_unix_epoch(Duration::from_secs(now.as_second() as u64));
        for name in ["webhook.ns.svc", "localhost", "127.0.0.1"] {
            let server = ServerName::try_from(name).unwrap();
            verifier
                .verify_server_cert(leaf, &[], &server, &[], unix)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let other = ServerName::try_from("other.ns.svc").unwrap();
        assert!(
            verifier
                .verify_server_cert(leaf, &[], &other, &[], unix)
                .is_err()
        );

        // a CA read back from its Secret issues certificates that chain the same way
        let read = CertificateAuthority::from_secret_data(&ca.to_secret_data(), now).unwrap();
        let again = read.issue(&names, now, 30 * DAY).unwrap();
        let server = ServerName::try_from("webhook.ns.svc").unwrap();
        verifier
            .verify_server_cert(again.leaf().unwrap(), &[], &server, &[], unix)
            .unwrap();
        assert!(CertificateStore::new(&again).is_ok());
    }

    #[test]
    fn short_lifetimes_are_not_due_at_once() {
        let now = ts("2031-05-01T12:00:00Z");
        let ca = CertificateAuthority::generate(now, Duration::from_secs(60)).unwrap();
        assert_eq!(ca.validity().not_before, ts("2031-05-01T11:59:45Z"));
        assert!(!ca.validity().needs_renewal(now));
        assert!(ca.validity().needs_renewal(ts("2031-05-01T12:00:35Z")));
    }

    #[test]
    fn serving_certificate_never_outlives_its_ca() {
        let now = ts("2031-05-01T12:00:00Z");
        let ca = CertificateAuthority::generate(now, 10 * DAY).unwrap();
        let serving = ca.issue(&["a.b.svc".into()], now, 90 * DAY).unwrap();
        assert_eq!(serving.validity().not_after, ca.validity().not_after);
    }

    #[test]
    fn der_times() {
        assert_eq!(
            der_time(b"\x17\x0d491231235959Z").unwrap().0,
            ts("2049-12-31T23:59:59Z")
        );
        assert_eq!(
            der_time(b"\x17\x0d500101000000Z").unwrap().0,
            ts("1950-01-01T00:00:00Z")
        );
        assert_eq!(
            der_time(b"\x18\x0f20991231235959Z").unwrap().0,
            ts("2099-12-31T23:59:59Z")
        );
        assert!(der_time(b"\x17\x0d4912312359590").is_err());
        assert!(der_time(b"\x17\x05abcdZ").is_err());
        assert!(validity_of(b"\x30\x82\xff").is_err());
        assert!(validity_of(&[]).is_err());
    }
}
