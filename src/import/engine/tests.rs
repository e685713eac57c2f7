//! `engine::import` against the hand-written [`FakeSource`]: what each decision costs in
//! registry calls, and what it produces.

use std::collections::HashMap;

use super::*;
use crate::import::config_cache::ConfigCache;
use crate::import::contract::{ImageImport, Mode, Preference};
use crate::import::source::CachingSource;
use crate::import::source::fake::FakeSource;
use crate::registry::protocol::{
    DOCKER_LIST, DOCKER_SCHEMA1, DOCKER_SCHEMA2, OCI_INDEX, OCI_MANIFEST,
};

const REPO: &str = "quay.io/team/app";

fn now() -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_750_000_000).unwrap_or_default()
}

fn tag(tag: &str, mode: Mode) -> ImageImport {
    ImageImport::new(format!("{REPO}:{tag}"), mode)
}

fn at(digest: &str, mode: Mode) -> ImageImport {
    ImageImport::new(format!("{REPO}@{digest}"), mode)
}

fn current(mut import: ImageImport, image: &str) -> ImageImport {
    import.current_image = Some(image.to_string());
    import
}

/// Runs one import with the default platform (linux/amd64) and no known Images.
async fn run(source: &FakeSource, import: &ImageImport) -> Result<Outcome, Failure> {
    let known: HashMap<String, bool> = HashMap::new();
    run_with(source, import, &known, &ListResolutions::default()).await
}

async fn run_with(
    source: &FakeSource,
    import: &ImageImport,
    known: &HashMap<String, bool>,
    lists: &ListResolutions,
) -> Result<Outcome, Failure> {
    import_with(source, import, &Platform::default(), known, lists).await
}

async fn import_with<S: Source>(
    source: &S,
    import: &ImageImport,
    platform: &Platform,
    known: &HashMap<String, bool>,
    lists: &ListResolutions,
) -> Result<Outcome, Failure> {
    super::import(source, import, platform, known, lists, now()).await
}

fn images(outcome: &Outcome) -> Vec<(String, bool)> {
    match outcome {
        Outcome::Imported { images, .. } => images
            .iter()
            .map(|i| {
                (
                    crate::import::importer::image_digest(i).unwrap_or_default(),
                    i.spec.is_manifest_list(),
                )
            })
            .collect(),
        Outcome::Unchanged { .. } => Vec::new(),
    }
}

fn architecture(outcome: &Outcome, index: usize) -> String {
    let Outcome::Imported { images, .. } = outcome else {
        return String::new();
    };
    images[index]
        .spec
        .docker_image_metadata()
        .ok()
        .flatten()
        .map(|m| m.architecture)
        .unwrap_or_default()
}

#[tokio::test]
async fn a_first_import_fetches_the_manifest_and_its_config() {
    let mut source = FakeSource::new();
    let digest = source.image(Some("v1"), "linux", "amd64");
    let config = source.config("linux", "amd64", "v1");

    let outcome = run(&source, &tag("v1", Mode::Legacy)).await.unwrap();
    assert_eq!(outcome.image(), digest);
    assert_eq!(
        source.take_calls(),
        ["GET v1".to_string(), format!("BLOB {config}")]
    );
    assert_eq!(images(&outcome), [(digest.clone(), false)]);
    let Outcome::Imported { images, .. } = &outcome else {
        panic!("{outcome:?}")
    };
    // the user's spelling of the repository, never the defaulted one
    assert_eq!(
        images[0].spec.docker_image_reference,
        format!("{REPO}@{digest}")
    );
    assert_eq!(
        images[0].spec.docker_image_manifest_media_type,
        OCI_MANIFEST
    );
    assert_eq!(architecture(&outcome, 0), "amd64");
}

#[tokio::test]
async fn a_tag_without_tag_imports_latest() {
    let mut source = FakeSource::new();
    let digest = source.image(Some("latest"), "linux", "amd64");
    let outcome = run(&source, &ImageImport::new(REPO, Mode::Legacy))
        .await
        .unwrap();
    assert_eq!(outcome.image(), digest);
    assert_eq!(source.take_calls()[0], "GET latest");
}

#[tokio::test]
async fn a_recheck_whose_head_matches_costs_one_head() {
    let mut source = FakeSource::new();
    let digest = source.image(Some("v1"), "linux", "amd64");
    let outcome = run(&source, &current(tag("v1", Mode::Legacy), &digest))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Unchanged {
            image: digest,
            list: None
        }
    );
    assert_eq!(source.take_calls(), ["HEAD v1"]);
}

#[tokio::test]
async fn a_moved_tag_is_fetched_and_a_known_image_is_not_built_again() {
    let mut source = FakeSource::new();
    let old = source.image(None, "linux", "amd64");
    let new = source.image(Some("v1"), "linux", "amd64");
    assert_ne!(old, new);

    let outcome = run(&source, &current(tag("v1", Mode::Legacy), &old))
        .await
        .unwrap();
    assert_eq!(outcome.image(), new);
    let calls = source.take_calls();
    assert_eq!(calls[..2], ["HEAD v1".to_string(), "GET v1".to_string()]);
    assert!(calls[2].starts_with("BLOB "), "{calls:?}");
    assert_eq!(calls.len(), 3);

    // the new image exists already: the manifest is read (to learn the digest), no config
    let known = HashMap::from([(new.clone(), false)]);
    let outcome = run_with(
        &source,
        &current(tag("v1", Mode::Legacy), &old),
        &known,
        &ListResolutions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        outcome,
        Outcome::Imported {
            image: new,
            images: Vec::new(),
            list: None,
        }
    );
    assert_eq!(source.take_calls(), ["HEAD v1", "GET v1"]);
}

#[tokio::test]
async fn a_digest_whose_image_exists_costs_nothing() {
    let mut source = FakeSource::new();
    let digest = source.image(None, "linux", "amd64");
    let known = HashMap::from([(digest.clone(), false)]);
    let lists = ListResolutions::default();

    let outcome = run_with(&source, &at(&digest, Mode::Legacy), &known, &lists)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Imported {
            image: digest.clone(),
            images: Vec::new(),
            list: None,
        }
    );
    let outcome = run_with(
        &source,
        &current(at(&digest, Mode::Legacy), &digest),
        &known,
        &lists,
    )
    .await
    .unwrap();
    assert_eq!(
        outcome,
        Outcome::Unchanged {
            image: digest,
            list: None
        }
    );
    assert!(source.take_calls().is_empty());
}

#[tokio::test]
async fn a_digest_not_yet_known_is_fetched_without_a_head() {
    let mut source = FakeSource::new();
    let digest = source.image(None, "linux", "amd64");
    let outcome = run(&source, &at(&digest, Mode::Legacy)).await.unwrap();
    assert_eq!(images(&outcome), [(digest.clone(), false)]);
    let calls = source.take_calls();
    assert_eq!(calls[0], format!("GET {digest}"));
    assert_eq!(calls.len(), 2, "{calls:?}");
}

#[tokio::test]
async fn not_found_keeps_the_reason_and_the_message() {
    let source = FakeSource::new();
    let err = run(&source, &tag("missing", Mode::Legacy))
        .await
        .unwrap_err();
    assert_eq!((err.reason, err.code), ("NotFound", 404));
    assert_eq!(err.message, "manifest missing not found");

    // a recheck asks HEAD first, and reports its failure the same way
    let err = run(&source, &current(tag("missing", Mode::Legacy), "sha256:0"))
        .await
        .unwrap_err();
    assert_eq!(err.reason, "NotFound");
    assert_eq!(source.take_calls(), ["GET missing", "HEAD missing"]);
}

#[tokio::test]
async fn unauthorized_keeps_the_reason_wherever_it_happens() {
    let mut source = FakeSource::new();
    source.image(Some("v1"), "linux", "amd64");
    source.fail("v1", "Unauthorized", "authentication required");
    let err = run(&source, &tag("v1", Mode::Legacy)).await.unwrap_err();
    assert_eq!((err.reason, err.code), ("Unauthorized", 401));
    assert_eq!(err.message, "authentication required");

    // the manifest answers, the config does not: no Image, the config's failure
    let mut source = FakeSource::new();
    source.image(Some("v1"), "linux", "amd64");
    let config = source.config("linux", "amd64", "v1");
    source.fail(&config, "Forbidden", "denied: access to the blob");
    let err = run(&source, &tag("v1", Mode::Legacy)).await.unwrap_err();
    assert_eq!((err.reason, err.code), ("Forbidden", 403));
    assert_eq!(source.take_calls().len(), 2);
}

#[tokio::test]
async fn legacy_mode_takes_the_preferred_platform_and_skips_attestations() {
    let mut source = FakeSource::new();
    let amd = source.image(None, "linux", "amd64");
    let arm = source.image(None, "linux", "arm64");
    source.list(
        Some("multi"),
        OCI_INDEX,
        &[(&arm, "linux", "arm64"), (&amd, "linux", "amd64")],
        Some(&amd),
    );

    // no preference: the default platform, linux/amd64, though arm64 comes first
    let outcome = run(&source, &tag("multi", Mode::Legacy)).await.unwrap();
    assert_eq!(outcome.image(), amd);
    assert_eq!(images(&outcome), [(amd.clone(), false)]);
    let calls = source.take_calls();
    assert_eq!(calls[..2], ["GET multi".to_string(), format!("GET {amd}")]);
    assert_eq!(
        calls.len(),
        3,
        "the list, the child and its config: {calls:?}"
    );

    // prefer-arch annotation: arm64
    let preferred = ImageImport {
        prefer: Preference {
            arch: Some("arm64".into()),
            os: None,
        },
        ..tag("multi", Mode::Legacy)
    };
    let outcome = run(&source, &preferred).await.unwrap();
    assert_eq!(outcome.image(), arm);
    assert_eq!(architecture(&outcome, 0), "arm64");
    source.take_calls();

    // the cluster's default platform: arm64
    let platform = Platform {
        architecture: "arm64".into(),
        ..Platform::default()
    };
    let outcome = import_with(
        &source,
        &tag("multi", Mode::Legacy),
        &platform,
        &HashMap::new(),
        &ListResolutions::default(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.image(), arm);
}

#[tokio::test]
async fn a_legacy_recheck_of_a_list_costs_one_head() {
    let mut source = FakeSource::new();
    let amd = source.image(None, "linux", "amd64");
    let arm = source.image(None, "linux", "arm64");
    source.list(
        Some("multi"),
        DOCKER_LIST,
        &[(&amd, "linux", "amd64"), (&arm, "linux", "arm64")],
        None,
    );
    let lists = ListResolutions::default();
    let known = HashMap::new();
    let first = run_with(&source, &tag("multi", Mode::Legacy), &known, &lists)
        .await
        .unwrap();
    assert_eq!(first.image(), amd);
    let Outcome::Imported {
        list: Some(list), ..
    } = first
    else {
        panic!("the child of a list: {first:?}")
    };
    source.take_calls();

    // HEAD answers the list's digest; the tag holds its child: unchanged
    let again = run_with(
        &source,
        &current(tag("multi", Mode::Legacy), &amd),
        &known,
        &lists,
    )
    .await
    .unwrap();
    // the list it was chosen from is named (what a signature of the tag signs)
    assert_eq!(
        again,
        Outcome::Unchanged {
            image: amd.clone(),
            list: Some(list.clone())
        }
    );
    assert_eq!(source.take_calls(), ["HEAD multi"]);

    // without what the first import learnt, the list is read again (no child fetched)
    let cold = run_with(
        &source,
        &current(tag("multi", Mode::Legacy), &amd),
        &known,
        &ListResolutions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        cold,
        Outcome::Unchanged {
            image: amd,
            list: Some(list)
        }
    );
    assert_eq!(source.take_calls(), ["HEAD multi", "GET multi"]);
}

#[tokio::test]
async fn preserve_original_imports_the_list_and_each_missing_child() {
    let mut source = FakeSource::new();
    let amd = source.image(None, "linux", "amd64");
    let arm = source.image(None, "linux", "arm64");
    let list = source.list(
        Some("multi"),
        OCI_INDEX,
        &[(&amd, "linux", "amd64"), (&arm, "linux", "arm64")],
        None,
    );
    let known = HashMap::from([(amd.clone(), false)]);
    let outcome = run_with(
        &source,
        &tag("multi", Mode::PreserveOriginal),
        &known,
        &ListResolutions::default(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.image(), list);
    // children first, then the list; the known child is neither fetched nor built
    assert_eq!(
        images(&outcome),
        [(arm.clone(), false), (list.clone(), true)]
    );
    let calls = source.take_calls();
    assert_eq!(calls[..2], ["GET multi".to_string(), format!("GET {arm}")]);
    assert_eq!(calls.len(), 3, "{calls:?}");
    let Outcome::Imported { images, .. } = &outcome else {
        panic!("{outcome:?}")
    };
    let children: Vec<&str> = images[1]
        .spec
        .docker_image_manifests
        .iter()
        .map(|m| m.digest.as_str())
        .collect();
    assert_eq!(children, [amd.as_str(), arm.as_str()]);
}

#[tokio::test]
async fn a_list_without_a_runnable_image_is_an_internal_error() {
    let mut source = FakeSource::new();
    let amd = source.image(None, "linux", "amd64");
    source.list(Some("att"), OCI_INDEX, &[], Some(&amd));
    let err = run(&source, &tag("att", Mode::Legacy)).await.unwrap_err();
    assert_eq!((err.reason, err.code), ("InternalError", 500));
    assert_eq!(
        err.message,
        format!(
            "Internal error occurred: {REPO}:att: the manifest list has no image for any platform"
        )
    );
}

#[tokio::test]
async fn a_list_inside_a_list_is_refused() {
    let mut source = FakeSource::new();
    let amd = source.image(None, "linux", "amd64");
    let inner = source.list(None, OCI_INDEX, &[(&amd, "linux", "amd64")], None);
    source.list(
        Some("nested"),
        OCI_INDEX,
        &[(&inner, "linux", "amd64")],
        None,
    );
    let err = run(&source, &tag("nested", Mode::PreserveOriginal))
        .await
        .unwrap_err();
    assert_eq!(err.reason, "InternalError");
    assert!(
        err.message
            .ends_with(&format!("manifest list {inner} contains another list")),
        "{err:?}"
    );
}

#[tokio::test]
async fn schema1_and_malformed_manifests_are_internal_errors_naming_the_reference() {
    let mut source = FakeSource::new();
    source.put(
        Some("old"),
        br#"{"schemaVersion": 1, "name": "team/app", "tag": "old", "fsLayers": [], "history": []}"#
            .to_vec(),
        DOCKER_SCHEMA1,
    );
    let err = run(&source, &tag("old", Mode::Legacy)).await.unwrap_err();
    assert_eq!(err.reason, "InternalError");
    assert!(
        err.message
            .starts_with(&format!("Internal error occurred: {REPO}:old: schema1")),
        "{err:?}"
    );

    source.put(Some("junk"), b"{not json".to_vec(), OCI_MANIFEST);
    let err = run(&source, &tag("junk", Mode::Legacy)).await.unwrap_err();
    assert!(err.message.contains("malformed manifest"), "{err:?}");
}

#[tokio::test]
async fn a_legacy_tag_held_by_a_list_moves_to_a_child() {
    // PreserveOriginal before: the tag's current image is the list. Legacy must move it.
    let mut source = FakeSource::new();
    let amd = source.image(None, "linux", "amd64");
    let list = source.list(Some("multi"), OCI_INDEX, &[(&amd, "linux", "amd64")], None);
    let known = HashMap::from([(list.clone(), true)]);
    let outcome = run_with(
        &source,
        &current(tag("multi", Mode::Legacy), &list),
        &known,
        &ListResolutions::default(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.image(), amd);
    assert_eq!(source.take_calls()[..2], ["HEAD multi", "GET multi"]);
}

#[tokio::test]
async fn an_unparseable_pull_spec_is_invalid_before_any_request() {
    let source = FakeSource::new();
    let err = run(&source, &ImageImport::new("Bad//Name", Mode::Legacy))
        .await
        .unwrap_err();
    assert_eq!((err.reason, err.code), ("Invalid", 422));
    assert!(source.take_calls().is_empty());
}

#[tokio::test]
async fn a_config_shared_by_two_images_is_fetched_once_through_the_cache() {
    let mut source = FakeSource::new();
    let config = source.config("linux", "amd64", "shared");
    let oci = source.single(Some("oci"), OCI_MANIFEST, &config, 1);
    let docker = source.single(Some("docker"), DOCKER_SCHEMA2, &config, 1);
    assert_ne!(oci, docker);

    // without a cache: one config GET per image
    for t in ["oci", "docker"] {
        run(&source, &tag(t, Mode::Legacy)).await.unwrap();
    }
    let blobs = |calls: &[String]| calls.iter().filter(|c| c.starts_with("BLOB ")).count();
    assert_eq!(blobs(&source.take_calls()), 2);

    // through the cache: one
    let cache = ConfigCache::default();
    let cached = CachingSource::new(&source, &cache);
    for (t, digest) in [("oci", &oci), ("docker", &docker)] {
        let outcome = import_with(
            &cached,
            &tag(t, Mode::Legacy),
            &Platform::default(),
            &HashMap::new(),
            &ListResolutions::default(),
        )
        .await
        .unwrap();
        assert_eq!(images(&outcome), [(digest.clone(), false)]);
        assert_eq!(architecture(&outcome, 0), "amd64");
    }
    assert_eq!(
        source.take_calls(),
        [
            "GET oci".to_string(),
            format!("BLOB {config}"),
            "GET docker".to_string()
        ]
    );
    assert_eq!(cache.len(), 1);
}

#[tokio::test]
async fn a_failed_config_fetch_is_not_cached() {
    let mut source = FakeSource::new();
    let config = source.config("linux", "amd64", "v1");
    source.single(Some("v1"), OCI_MANIFEST, &config, 1);
    source.fail(&config, "TooManyRequests", "slow down");
    let cache = ConfigCache::default();
    let cached = CachingSource::new(&source, &cache);
    let err = import_with(
        &cached,
        &tag("v1", Mode::Legacy),
        &Platform::default(),
        &HashMap::new(),
        &ListResolutions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.reason, "TooManyRequests");
    assert!(cache.is_empty());
}
