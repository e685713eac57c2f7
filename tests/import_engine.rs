//! The import engine against a real registry: what each import costs in registry requests,
//! and what it produces, for every manifest kind and both import modes, through the
//! production registry client.

mod support;

use std::collections::HashMap;

use imagestream_operator::config::Platform;
use std::sync::Arc;

use imagestream_operator::import::contract::{Failure, ImageImport, Mode};
use imagestream_operator::import::engine::{self, ListResolutions, Outcome};
use imagestream_operator::import::source::RepositorySource;
use imagestream_operator::registry::{RegistryClient, RegistryConfig};
use support::images::ImageSpec;
use support::registry::{TestRegistry, summary};

struct Fixture {
    registry: TestRegistry,
    client: Arc<RegistryClient>,
    platform: Platform,
    lists: ListResolutions,
}

impl Fixture {
    fn new() -> Self {
        support::cluster::install_crypto_provider();
        // The plain-HTTP test registry needs insecure: one HTTPS attempt, then HTTP,
        // remembered per host (the failed HTTPS attempt never reaches the access log).
        let client = RegistryClient::new(RegistryConfig::default(), None, true, None)
            .expect("registry client");
        Fixture {
            registry: TestRegistry::start(support::registry::RegistryOptions::plain().seeded()),
            client: Arc::new(client),
            platform: Platform::default(),
            lists: ListResolutions::default(),
        }
    }

    fn source(&self, repo: &str) -> RepositorySource {
        RepositorySource::new(self.client.clone(), self.registry.addr(), repo)
    }

    fn written(&self, repo: &str) -> String {
        format!("{}/{repo}", self.registry.addr())
    }

    /// Runs one import and returns its outcome and the registry requests it made.
    async fn run(
        &self,
        repo: &str,
        reference: &str,
        mode: Mode,
        current: Option<&str>,
        known: &HashMap<String, bool>,
    ) -> (Result<Outcome, Failure>, Vec<String>) {
        let written = self.written(repo);
        let separator = if reference.contains(':') { '@' } else { ':' };
        let req = ImageImport {
            current_image: current.map(str::to_string),
            ..ImageImport::new(format!("{written}{separator}{reference}"), mode)
        };
        let mark = self.registry.mark();
        let now = jiff::Timestamp::now();
        let outcome = engine::import(
            &self.source(repo),
            &req,
            &self.platform,
            known,
            &self.lists,
            now,
        )
        .await;
        (
            outcome,
            summary(&self.registry.requests_since_async(mark).await),
        )
    }
}

fn seeded(f: &Fixture) -> &'static support::registry::Seeded {
    f.registry.seeded().expect("seeded registry")
}

fn remember(known: &mut HashMap<String, bool>, outcome: &Outcome) {
    if let Outcome::Imported { images, .. } = outcome {
        for image in images {
            let digest = image
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(imagestream_operator::names::ANNOTATION_IMAGE))
                .cloned()
                .unwrap_or_default();
            known.insert(digest, image.spec.is_manifest_list());
        }
    }
}

#[tokio::test]
async fn single_image_first_import_recheck_and_move() {
    let f = Fixture::new();
    let digest = seeded(&f).digest("lab/oci-single", "v1").to_string();
    let mut known = HashMap::new();

    // First import: manifest + config, nothing else.
    let (outcome, requests) = f
        .run("lab/oci-single", "v1", Mode::Legacy, None, &known)
        .await;
    let outcome = outcome.expect("imports");
    assert_eq!(outcome.image(), digest);
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert!(
        requests[0].starts_with("GET /v2/lab/oci-single/manifests/v1 200"),
        "{requests:#?}"
    );
    assert!(
        requests[1].starts_with("GET /v2/lab/oci-single/blobs/sha256:"),
        "{requests:#?}"
    );
    let Outcome::Imported { images, .. } = &outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(images.len(), 1);
    assert_eq!(
        images[0].spec.docker_image_reference,
        format!("{}@{digest}", f.written("lab/oci-single"))
    );
    assert!(!images[0].spec.docker_image_layers.is_empty());
    remember(&mut known, &outcome);

    // Re-check, nothing changed: exactly one HEAD.
    let (outcome, requests) = f
        .run("lab/oci-single", "v1", Mode::Legacy, Some(&digest), &known)
        .await;
    assert_eq!(
        outcome.expect("checks"),
        Outcome::Unchanged {
            image: digest.clone(),
            list: None
        }
    );
    assert_eq!(requests, ["HEAD /v2/lab/oci-single/manifests/v1 200"]);

    // The tag moves: HEAD, manifest, config.
    let moved = ImageSpec::single("amd64", 7).build();
    let new_digest = f
        .registry
        .client()
        .push(
            "lab/oci-single",
            "v1",
            &support::images::TestImage::Single(moved),
        )
        .await
        .expect("push");
    let (outcome, requests) = f
        .run("lab/oci-single", "v1", Mode::Legacy, Some(&digest), &known)
        .await;
    let outcome = outcome.expect("imports the moved tag");
    assert_eq!(outcome.image(), new_digest);
    assert_eq!(requests.len(), 3, "{requests:#?}");
    assert!(requests[0].starts_with("HEAD "), "{requests:#?}");
}

#[tokio::test]
async fn docker_schema2_by_digest_costs_nothing_once_known() {
    let f = Fixture::new();
    let digest = seeded(&f).digest("lab/docker-single", "v1").to_string();
    let mut known = HashMap::new();
    let (outcome, requests) = f
        .run("lab/docker-single", &digest, Mode::Legacy, None, &known)
        .await;
    let outcome = outcome.expect("imports by digest");
    assert_eq!(outcome.image(), digest);
    assert_eq!(requests.len(), 2, "{requests:#?}");
    remember(&mut known, &outcome);
    let Outcome::Imported { images, .. } = &outcome else {
        panic!()
    };
    assert_eq!(
        images[0].spec.docker_image_manifest_media_type,
        "application/vnd.docker.distribution.manifest.v2+json"
    );

    // Another tag pinned to the same digest: the Image exists, no request at all.
    let (outcome, requests) = f
        .run("lab/docker-single", &digest, Mode::Legacy, None, &known)
        .await;
    assert_eq!(
        outcome.expect("known"),
        Outcome::Imported {
            image: digest.clone(),
            images: vec![],
            list: None,
        }
    );
    assert!(requests.is_empty(), "{requests:#?}");
}

#[tokio::test]
async fn legacy_list_takes_the_amd64_child_and_rechecks_with_one_head() {
    let f = Fixture::new();
    for (tag, kind) in [
        ("oci-index", "OCI index"),
        ("docker-list", "Docker manifest list"),
    ] {
        let child = seeded(&f)
            .child_digest("lab/multi", tag, "linux/amd64")
            .to_string();
        let mut known = HashMap::new();
        let (outcome, requests) = f.run("lab/multi", tag, Mode::Legacy, None, &known).await;
        let outcome = outcome.unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(outcome.image(), child, "{kind}");
        let Outcome::Imported {
            list: Some(list), ..
        } = &outcome
        else {
            panic!("{kind}: a child of the list: {outcome:?}")
        };
        let list = list.clone();
        assert_eq!(
            requests.len(),
            3,
            "{kind}: list, child, config: {requests:#?}"
        );
        remember(&mut known, &outcome);
        let (outcome, requests) = f
            .run("lab/multi", tag, Mode::Legacy, Some(&child), &known)
            .await;
        assert_eq!(
            outcome.expect("rechecks"),
            Outcome::Unchanged {
                image: child.clone(),
                list: Some(list)
            },
            "{kind}"
        );
        assert_eq!(requests.len(), 1, "{kind}: {requests:#?}");
    }
}

// Semantics quirk 8: a list imported by digest in Legacy mode yields the child.
#[tokio::test]
async fn legacy_list_by_digest_yields_the_child() {
    let f = Fixture::new();
    let list = seeded(&f).digest("lab/multi", "oci-index").to_string();
    let child = seeded(&f)
        .child_digest("lab/multi", "oci-index", "linux/amd64")
        .to_string();
    let (outcome, _) = f
        .run("lab/multi", &list, Mode::Legacy, None, &HashMap::new())
        .await;
    assert_eq!(outcome.expect("imports").image(), child);
}

#[tokio::test]
async fn preserve_original_imports_the_list_and_every_child() {
    let f = Fixture::new();
    let list = seeded(&f).digest("lab/multi", "docker-list").to_string();
    let mut known = HashMap::new();
    let (outcome, requests) = f
        .run(
            "lab/multi",
            "docker-list",
            Mode::PreserveOriginal,
            None,
            &known,
        )
        .await;
    let outcome = outcome.expect("imports");
    assert_eq!(outcome.image(), list);
    // The list, then manifest + config per child (3 platforms).
    assert_eq!(requests.len(), 1 + 3 * 2, "{requests:#?}");
    let Outcome::Imported { images, .. } = &outcome else {
        panic!()
    };
    assert_eq!(images.len(), 4);
    let top = images.last().expect("list image last");
    assert_eq!(top.spec.docker_image_manifests.len(), 3);
    assert!(top.spec.docker_image_layers.is_empty());
    let platforms: Vec<_> = top
        .spec
        .docker_image_manifests
        .iter()
        .map(|m| {
            format!(
                "{}/{}{}",
                m.os,
                m.architecture,
                if m.variant.is_empty() {
                    String::new()
                } else {
                    format!("/{}", m.variant)
                }
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"]);
    remember(&mut known, &outcome);

    // Re-check: one HEAD.
    let (outcome, requests) = f
        .run(
            "lab/multi",
            "docker-list",
            Mode::PreserveOriginal,
            Some(&list),
            &known,
        )
        .await;
    assert_eq!(
        outcome.expect("rechecks"),
        Outcome::Unchanged {
            image: list,
            list: None
        }
    );
    assert_eq!(requests.len(), 1, "{requests:#?}");
}

/// A tag that was PreserveOriginal (its current image is the list) switched to Legacy:
/// the HEAD still returns the list digest, which is not an answer in Legacy mode.
#[tokio::test]
async fn switching_a_list_tag_to_legacy_moves_it_to_the_child() {
    let f = Fixture::new();
    let list = seeded(&f).digest("lab/multi", "docker-list").to_string();
    let child = seeded(&f)
        .child_digest("lab/multi", "docker-list", "linux/amd64")
        .to_string();
    let mut known = HashMap::new();
    let (outcome, _) = f
        .run(
            "lab/multi",
            "docker-list",
            Mode::PreserveOriginal,
            None,
            &known,
        )
        .await;
    remember(&mut known, &outcome.expect("imports"));

    let (outcome, _) = f
        .run(
            "lab/multi",
            "docker-list",
            Mode::Legacy,
            Some(&list),
            &known,
        )
        .await;
    assert_eq!(
        outcome.expect("imports"),
        Outcome::Imported {
            image: child.clone(),
            images: vec![],
            list: Some(list.clone()),
        },
        "the child is known already: nothing to build"
    );
    let (outcome, _) = f
        .run("lab/multi", &list, Mode::Legacy, Some(&list), &known)
        .await;
    assert_eq!(outcome.expect("imports").image(), child, "by digest too");
}

#[tokio::test]
async fn attestations_are_skipped_in_legacy_and_kept_in_preserve_original() {
    let f = Fixture::new();
    let (outcome, _) = f
        .run("lab/attest", "latest", Mode::Legacy, None, &HashMap::new())
        .await;
    let child = seeded(&f)
        .child_digest("lab/attest", "latest", "linux/amd64")
        .to_string();
    assert_eq!(outcome.expect("imports").image(), child);
    let (outcome, _) = f
        .run(
            "lab/attest",
            "latest",
            Mode::PreserveOriginal,
            None,
            &HashMap::new(),
        )
        .await;
    let Outcome::Imported { images, .. } = outcome.expect("imports") else {
        panic!()
    };
    let top = images.last().expect("list image");
    assert!(
        top.spec
            .docker_image_manifests
            .iter()
            .any(|m| m.os == "unknown"),
        "the index is kept whole"
    );
    // as upstream (openshift-apiserver importer: manifestListToImage lists every entry of
    // the list, importSubManifests imports each): attestation manifests (`unknown/unknown`)
    // are listed and imported as Images like the platform images
    let index = seeded(&f)
        .image("lab/attest", "latest")
        .as_index()
        .expect("an index");
    let listed: Vec<&str> = top
        .spec
        .docker_image_manifests
        .iter()
        .map(|m| m.digest.as_str())
        .collect();
    let manifest = index.manifest_json();
    let entries: Vec<&str> = manifest["manifests"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["digest"].as_str().expect("digest"))
        .collect();
    assert_eq!(listed, entries, "every entry, in the list's order");
    let imported: Vec<String> = images[..images.len() - 1]
        .iter()
        .filter_map(imagestream_operator::import::importer::image_digest)
        .collect();
    for attestation in index.attestations() {
        assert!(
            imported.iter().any(|d| d == attestation.digest()),
            "attestation {} imported: {imported:?}",
            attestation.digest()
        );
    }
    assert_eq!(imported.len(), entries.len());
}

#[tokio::test]
async fn unknown_tag_is_not_found() {
    let f = Fixture::new();
    let (outcome, requests) = f
        .run(
            "lab/oci-single",
            "nope",
            Mode::Legacy,
            None,
            &HashMap::new(),
        )
        .await;
    let err = outcome.expect_err("no such tag");
    assert_eq!(err.reason, "NotFound");
    assert_eq!(requests.len(), 1, "{requests:#?}");
}
