//! A test signer that does what `cosign sign --key cosign.key` does to a registry, in Rust,
//! with no network beyond the test registry and no external tools.
//!
//! * [`CosignKey`]: an ECDSA P-256 key pair made with aws-lc-rs; its public key as cosign
//!   writes `cosign.pub` (PEM `PUBLIC KEY`, a DER SubjectPublicKeyInfo).
//! * [`payload`]: cosign's "simple signing" JSON for a docker-reference (the repository the
//!   image is imported by, e.g. `127.0.0.1:5000/signed/app`, no tag) and a manifest digest.
//! * [`CosignLayer`]: one signature, i.e. one layer of the signature manifest: the payload blob
//!   and the base64 ASN.1 signature over its bytes.
//! * [`push_layers`]: the signature manifest cosign pushes: an OCI image manifest tagged
//!   `sha256-<hex>.sig` in the image's repository, with cosign's config blob and one layer of
//!   media type [`SIMPLE_SIGNING_MEDIA_TYPE`] per signature, each annotated with
//!   [`SIGNATURE_ANNOTATION`].
//! * [`sign`] appends a signature to what the `.sig` tag already holds, as cosign does;
//!   [`sign_for_digest`] and [`push_tampered`] make signatures that must not verify.
//! * [`attest`]: what `cosign attest` leaves, an OCI manifest tagged `sha256-<hex>.att`
//!   whose layer is a DSSE envelope of an in-toto statement (unsigned: nothing verifies it).
//!
//! The constants are spelled out here rather than taken from `imagestream_operator::trust`:
//! a signer that shares the verifier's constants would not notice if both were wrong.

use anyhow::{Context, Result, ensure};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::images::{Blob, OCI_CONFIG, OCI_MANIFEST, sha256_digest};
use super::registry::TestRegistry;

/// The media type of a cosign signature layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// `critical.type` of a cosign payload.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";

/// A cosign key pair (`cosign generate-key-pair`, without the password-encrypted private key).
pub struct CosignKey {
    pair: EcdsaKeyPair,
    spki: Vec<u8>,
}

impl std::fmt::Debug for CosignKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CosignKey({})", self.key_id())
    }
}

impl CosignKey {
    /// A fresh ECDSA P-256 key pair.
    pub fn generate() -> CosignKey {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("key pair");
        let spki = pair
            .public_key()
            .as_der()
            .expect("public key as SubjectPublicKeyInfo")
            .as_ref()
            .to_vec();
        CosignKey { pair, spki }
    }

    /// The public key as `cosign.pub` holds it: PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    pub fn public_pem(&self) -> String {
        pem("PUBLIC KEY", &self.spki)
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// The first 16 hex digits of the SHA-256 of the SubjectPublicKeyInfo: the key ID the
    /// operator records as a signature's `issuedTo.publicKeyID`.
    pub fn key_id(&self) -> String {
        sha256_digest(&self.spki)[7..23].to_string()
    }

    /// An ASN.1 DER ECDSA signature over `message` (SHA-256), as cosign makes.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair
            .sign(&SystemRandom::new(), message)
            .expect("signing")
            .as_ref()
            .to_vec()
    }
}

/// PEM with 64-column base64 lines.
pub fn pem(label: &str, der: &[u8]) -> String {
    let body = B64.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// Cosign's tag for the signatures of `digest`: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &str) -> String {
    let (algorithm, hex) = digest.split_once(':').expect("a digest");
    format!("{algorithm}-{hex}.sig")
}

/// Cosign's simple signing payload, byte for byte as cosign 2 writes it (no claims:
/// `"optional":null`; `cosign sign -a k=v` claims go into `optional`).
pub fn payload(docker_reference: &str, digest: &str, claims: &[(&str, &str)]) -> Vec<u8> {
    let optional = if claims.is_empty() {
        Value::Null
    } else {
        Value::Object(
            claims
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect(),
        )
    };
    json!({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": PAYLOAD_TYPE,
        },
        "optional": optional,
    })
    .to_string()
    .into_bytes()
}

/// One signature: a layer of the signature manifest.
#[derive(Clone, Debug)]
pub struct CosignLayer {
    /// The payload, pushed as the layer's blob.
    pub payload: Blob,
    /// The raw signature bytes (the layer's annotation holds them in base64).
    pub signature: Vec<u8>,
}

impl CosignLayer {
    /// `key`'s signature over `payload`.
    pub fn signed(key: &CosignKey, payload: Vec<u8>) -> CosignLayer {
        let signature = key.sign(&payload);
        CosignLayer {
            payload: Blob::new(SIMPLE_SIGNING_MEDIA_TYPE, payload),
            signature,
        }
    }

    /// The same signature over a payload changed after signing (a claim added): the blob
    /// and its digest are consistent, the signature is not.
    pub fn tampered(&self) -> CosignLayer {
        let mut changed: Value = serde_json::from_slice(&self.payload.bytes).expect("payload");
        changed["optional"] = json!({"tampered": "yes"});
        CosignLayer {
            payload: Blob::new(SIMPLE_SIGNING_MEDIA_TYPE, changed.to_string().into_bytes()),
            signature: self.signature.clone(),
        }
    }

    /// The base64 signature, as in the layer annotation.
    pub fn signature_b64(&self) -> String {
        B64.encode(&self.signature)
    }

    /// The layer's descriptor in the signature manifest.
    pub fn descriptor(&self) -> Value {
        let mut d = self.payload.descriptor();
        d["annotations"] = json!({ SIGNATURE_ANNOTATION: self.signature_b64() });
        d
    }
}

/// The config blob cosign writes for a signature manifest: an empty image whose diff_ids are
/// the payload digests.
pub fn signature_config(layers: &[CosignLayer]) -> Blob {
    let config = json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.payload.digest.clone()).collect::<Vec<_>>(),
        },
        "config": {},
    });
    Blob::new(OCI_CONFIG, serde_json::to_vec(&config).expect("config"))
}

/// The signature manifest for `layers` (not pushed).
pub fn signature_manifest(layers: &[CosignLayer]) -> (Blob, Blob) {
    let config = signature_config(layers);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": layers.iter().map(CosignLayer::descriptor).collect::<Vec<_>>(),
    });
    (
        config,
        Blob::new(
            OCI_MANIFEST,
            serde_json::to_vec(&manifest).expect("manifest"),
        ),
    )
}

/// What a push of signatures left in the registry.
#[derive(Clone, Debug)]
pub struct Pushed {
    /// `sha256-<hex>.sig`.
    pub tag: String,
    /// The signature manifest's digest.
    pub manifest_digest: String,
    /// Every layer of the signature manifest, in order.
    pub layers: Vec<CosignLayer>,
}

/// Pushes exactly `layers` as the signatures of `repo@digest`: their payload blobs, the
/// config blob, and the manifest under `sha256-<hex>.sig` (replacing what the tag held).
pub async fn push_layers(
    reg: &TestRegistry,
    repo: &str,
    digest: &str,
    layers: Vec<CosignLayer>,
) -> Result<Pushed> {
    let client = reg.client();
    let (config, manifest) = signature_manifest(&layers);
    for layer in &layers {
        client.push_blob(repo, &layer.payload).await?;
    }
    client.push_blob(repo, &config).await?;
    let tag = signature_tag(digest);
    let stored = client
        .put_manifest(repo, &tag, OCI_MANIFEST, &manifest.bytes)
        .await
        .with_context(|| format!("pushing {repo}:{tag}"))?;
    ensure!(
        stored == manifest.digest,
        "{repo}:{tag} stored as {stored}, built {}",
        manifest.digest
    );
    Ok(Pushed {
        tag,
        manifest_digest: stored,
        layers,
    })
}

/// The signature layers `repo`'s `.sig` tag for `digest` holds now (none when it is absent).
pub async fn existing_layers(
    reg: &TestRegistry,
    repo: &str,
    digest: &str,
) -> Result<Vec<CosignLayer>> {
    let client = reg.client();
    let tag = signature_tag(digest);
    let response = client.get_manifest(repo, &tag).await?;
    if response.status == 404 {
        return Ok(Vec::new());
    }
    ensure!(
        response.status == 200,
        "GET {repo}:{tag}: {}",
        response.status
    );
    let manifest = response.json();
    let mut layers = Vec::new();
    for layer in manifest["layers"].as_array().into_iter().flatten() {
        let layer_digest = layer["digest"].as_str().context("layer digest")?;
        let blob = client.get_blob(repo, layer_digest).await?;
        ensure!(
            blob.status == 200,
            "GET blob {layer_digest}: {}",
            blob.status
        );
        let signature = B64
            .decode(
                layer["annotations"][SIGNATURE_ANNOTATION]
                    .as_str()
                    .context("signature annotation")?,
            )
            .context("base64 signature")?;
        layers.push(CosignLayer {
            payload: Blob::new(
                layer["mediaType"]
                    .as_str()
                    .unwrap_or(SIMPLE_SIGNING_MEDIA_TYPE),
                blob.body.clone(),
            ),
            signature,
        });
    }
    Ok(layers)
}

/// Appends `layer` to the signatures of `repo@digest` (as cosign does: a second `cosign sign`
/// adds a layer; the same payload and signature again is not added twice).
pub async fn append(
    reg: &TestRegistry,
    repo: &str,
    digest: &str,
    layer: CosignLayer,
) -> Result<Pushed> {
    let mut layers = existing_layers(reg, repo, digest).await?;
    if !layers
        .iter()
        .any(|l| l.payload == layer.payload && l.signature == layer.signature)
    {
        layers.push(layer);
    }
    push_layers(reg, repo, digest, layers).await
}

/// The media type of a cosign attestation layer (a DSSE envelope).
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";

/// `cosign attest --type slsaprovenance` of `repo@digest`, its signature left out: an
/// in-toto statement naming `digest` in a DSSE envelope, the layer of a manifest tagged
/// `sha256-<hex>.att`. Returns the manifest's digest.
pub async fn attest(reg: &TestRegistry, repo: &str, digest: &str) -> Result<String> {
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://slsa.dev/provenance/v0.2",
        "subject": [{"name": docker_reference(reg, repo), "digest": {"sha256": &digest[7..]}}],
        "predicate": {"builder": {"id": "https://example.com/test-builder"}},
    });
    let envelope = json!({
        "payloadType": "application/vnd.in-toto+json",
        "payload": B64.encode(statement.to_string()),
        "signatures": [{"keyid": "", "sig": ""}],
    });
    let layer = Blob::new(DSSE_MEDIA_TYPE, envelope.to_string().into_bytes());
    let config = Blob::new(OCI_CONFIG, b"{}".to_vec());
    let mut descriptor = layer.descriptor();
    descriptor["annotations"] = json!({"predicateType": "https://slsa.dev/provenance/v0.2"});
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [descriptor],
    });
    let client = reg.client();
    client.push_blob(repo, &layer).await?;
    client.push_blob(repo, &config).await?;
    let (algorithm, hex) = digest.split_once(':').context("a digest")?;
    let tag = format!("{algorithm}-{hex}.att");
    client
        .put_manifest(
            repo,
            &tag,
            OCI_MANIFEST,
            &serde_json::to_vec(&manifest).context("manifest")?,
        )
        .await
        .with_context(|| format!("pushing {repo}:{tag}"))
}

/// The docker-reference cosign signs for `repo` of `reg`: `<addr>/<repo>`, no tag or digest.
pub fn docker_reference(reg: &TestRegistry, repo: &str) -> String {
    format!("{}/{repo}", reg.addr())
}

/// `cosign sign --key` of `repo@digest` with `key`: a payload naming `<addr>/<repo>` and
/// `digest`, appended to the image's signatures. Returns the new layer.
pub async fn sign(
    reg: &TestRegistry,
    repo: &str,
    digest: &str,
    key: &CosignKey,
) -> Result<CosignLayer> {
    let layer = CosignLayer::signed(key, payload(&docker_reference(reg, repo), digest, &[]));
    append(reg, repo, digest, layer.clone()).await?;
    Ok(layer)
}

/// As [`sign`] with claims (`cosign sign -a key=value`).
pub async fn sign_with_claims(
    reg: &TestRegistry,
    repo: &str,
    digest: &str,
    key: &CosignKey,
    claims: &[(&str, &str)],
) -> Result<CosignLayer> {
    let layer = CosignLayer::signed(key, payload(&docker_reference(reg, repo), digest, claims));
    append(reg, repo, digest, layer.clone()).await?;
    Ok(layer)
}

/// A valid signature by `key` whose payload names `signed_digest`, stored under the `.sig`
/// tag of `digest` (a signature copied from another image).
pub async fn sign_for_digest(
    reg: &TestRegistry,
    repo: &str,
    digest: &str,
    signed_digest: &str,
    key: &CosignKey,
) -> Result<CosignLayer> {
    let layer = CosignLayer::signed(
        key,
        payload(&docker_reference(reg, repo), signed_digest, &[]),
    );
    append(reg, repo, digest, layer.clone()).await?;
    Ok(layer)
}

/// A signature by `key` naming `docker_reference` (another repository, say) for `digest`.
pub async fn sign_as(
    reg: &TestRegistry,
    repo: &str,
    digest: &str,
    docker_reference: &str,
    key: &CosignKey,
) -> Result<CosignLayer> {
    let layer = CosignLayer::signed(key, payload(docker_reference, digest, &[]));
    append(reg, repo, digest, layer.clone()).await?;
    Ok(layer)
}

/// A signature by `key` for `repo@digest` whose payload was changed after signing.
pub async fn push_tampered(
    reg: &TestRegistry,
    repo: &str,
    digest: &str,
    key: &CosignKey,
) -> Result<CosignLayer> {
    let layer =
        CosignLayer::signed(key, payload(&docker_reference(reg, repo), digest, &[])).tampered();
    append(reg, repo, digest, layer.clone()).await?;
    Ok(layer)
}
