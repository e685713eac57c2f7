//! The importer (a whole ImageStreamImport-like request) against the real registry: the
//! conformance cases of semantics 10.4, each named after its upstream test, plus credentials
//! (wrong password, anonymous fallback, one client per namespace) and repository imports.
//! Registry traffic is counted from the registry's access log.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use imagestream_operator::credentials::Keyring;
use imagestream_operator::import::contract::{
    Batch, BatchResult, ImageImport, Mode, RepositoryImport, Settings,
};
use imagestream_operator::import::importer::{Importer, image_digest};
use imagestream_operator::registry::{ClientCache, RegistryConfig};
use support::images::{ImageSpec, IndexSpec, TestImage};
use support::registry::{
    Grant, RegistryOptions, TestRegistry, TokenOptions, default_users, summary,
};

fn importer() -> Importer {
    support::cluster::install_crypto_provider();
    let config = RegistryConfig {
        timeout: Duration::from_secs(10),
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..RegistryConfig::default()
    };
    Importer::new(ClientCache::new(config, 16, Duration::from_secs(300)))
}

/// The test registries speak plain HTTP: mark them insecure, as a cluster admin would.
fn settings(reg: &TestRegistry) -> Settings {
    Settings {
        insecure_registries: vec![reg.addr().to_string()],
        ..Settings::default()
    }
}

fn keyring(reg: &TestRegistry, user: &str, password: &str) -> Keyring {
    let auth = base64_encode(&format!("{user}:{password}"));
    let json = format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.addr());
    Keyring::from_file_bytes(json.as_bytes(), "test").expect("keyring")
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn no_known() -> HashMap<String, bool> {
    HashMap::new()
}

fn image(from: String, mode: Mode) -> ImageImport {
    ImageImport::new(from, mode)
}

async fn run(
    importer: &Importer,
    reg: &TestRegistry,
    batch: &Batch,
    keyring: &Keyring,
    settings: &Settings,
) -> (BatchResult, Vec<String>) {
    let mark = reg.mark();
    let result = importer
        .import(
            batch,
            keyring,
            &no_known(),
            settings,
            jiff::Timestamp::now(),
        )
        .await;
    (result, summary(&reg.requests_since_async(mark).await))
}

fn manifest_gets(requests: &[String]) -> usize {
    requests
        .iter()
        .filter(|r| r.starts_with("GET ") && r.contains("/manifests/"))
        .count()
}

fn seeded() -> TestRegistry {
    RegistryOptions::plain().seeded_read_only().start()
}

// ------------------------------------------------------------- 10.4 ---

/// 50. TestImportNothing: an empty request makes no requests and has no results.
#[tokio::test]
async fn import_nothing() {
    let reg = seeded();
    let (result, requests) = run(
        &importer(),
        &reg,
        &Batch::default(),
        &Keyring::empty(),
        &settings(&reg),
    )
    .await;
    assert!(result.images.is_empty() && result.repository.is_none());
    assert!(result.new_images.is_empty());
    assert!(requests.is_empty(), "{requests:#?}");
}

/// 51. TestImport "insecure import policy": the entry's insecure flag reaches the transport;
/// without it (and without the registry in insecureRegistries) an HTTP-only registry is a
/// BadRequest with upstream's message.
#[tokio::test]
async fn insecure_import_policy() {
    let reg = seeded();
    let importer = importer();
    let from = reg.image_ref("lab/oci-single", "v1");
    let secure = Settings::default();

    let (result, _) = run(
        &importer,
        &reg,
        &Batch {
            images: vec![image(from.clone(), Mode::Legacy)],
            repository: None,
        },
        &Keyring::empty(),
        &secure,
    )
    .await;
    let failure = result.images[0].clone().unwrap_err();
    assert_eq!((failure.reason, failure.code), ("BadRequest", 400));
    assert_eq!(
        failure.message,
        format!(
            "the repository {}/lab/oci-single is HTTP only and requires the insecure flag to import",
            reg.addr()
        )
    );

    let (result, _) = run(
        &importer,
        &reg,
        &Batch {
            images: vec![ImageImport {
                insecure: true,
                ..image(from, Mode::Legacy)
            }],
            repository: None,
        },
        &Keyring::empty(),
        &secure,
    )
    .await;
    let imported = result.images[0].clone().expect("insecure import");
    assert_eq!(imported.image, seeded_digest("lab/oci-single", "v1"));
}

fn seeded_digest(repo: &str, tag: &str) -> String {
    support::registry::StandardImages::build()
        .get(
            support::registry::STANDARD_TAGS
                .iter()
                .find(|(r, t, _)| *r == repo && *t == tag)
                .expect("seeded tag")
                .2,
        )
        .digest()
        .to_string()
}

/// 52. TestImport "missing tag, digest, and invalid image reference": each entry gets its
/// own status; an unknown tag keeps its tag name, an unknown digest has no tag; the
/// unparseable name gets upstream's Invalid message.
#[tokio::test]
async fn missing_tag_digest_and_invalid_image_reference() {
    let reg = seeded();
    let missing_digest = "sha256:0000000000000000000000000000000000000000000000000000000000000001";
    let batch = Batch {
        images: vec![
            image(reg.image_ref("lab/oci-single", "nope"), Mode::Legacy),
            image(
                format!("{}/lab/oci-single@{missing_digest}", reg.addr()),
                Mode::Legacy,
            ),
            image("test///un/parse/able/image".into(), Mode::Legacy),
        ],
        repository: None,
    };
    let (result, requests) = run(
        &importer(),
        &reg,
        &batch,
        &Keyring::empty(),
        &settings(&reg),
    )
    .await;
    let failures: Vec<_> = result
        .images
        .iter()
        .map(|r| r.clone().unwrap_err())
        .collect();
    assert_eq!(failures[0].reason, "NotFound");
    assert_eq!(
        failures[0].message,
        format!(
            "dockerimage.image.openshift.io \"{}/lab/oci-single:nope\" not found",
            reg.addr()
        )
    );
    assert_eq!(failures[1].reason, "NotFound");
    assert!(failures[1].message.contains(missing_digest), "{failures:?}");
    assert_eq!(failures[2].reason, "Invalid");
    assert_eq!(
        failures[2].message,
        " \"\" is invalid: from.name: Invalid value: \"test///un/parse/able/image\": invalid name: invalid reference format"
    );
    // one GET per missing manifest; nothing for the unparseable name
    assert_eq!(manifest_gets(&requests), 2, "{requests:#?}");
}

/// 53. TestImport "failed repository import": the registry cannot be reached: the
/// repository fails as a whole, with no images and no additional tags.
#[tokio::test]
async fn failed_repository_import() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = closed.local_addr().expect("addr").to_string();
    drop(closed);
    let batch = Batch {
        images: vec![],
        repository: Some(RepositoryImport {
            from: format!("{addr}/test"),
            mode: Mode::Legacy,
            insecure: true,
            prefer: BTreeMap::new(),
            current: BTreeMap::new(),
        }),
    };
    let result = importer()
        .import(
            &batch,
            &Keyring::empty(),
            &no_known(),
            &Settings::default(),
            jiff::Timestamp::now(),
        )
        .await;
    let repository = result.repository.expect("repository result");
    let failure = repository.images.clone().unwrap_err();
    assert_eq!(failure.reason, "InternalError");
    assert!(
        failure
            .message
            .starts_with(&format!("Internal error occurred: {addr}/test")),
        "{failure:?}"
    );
    assert!(repository.additional_tags.is_empty());
    assert_eq!(repository.failure(), Some(failure));
}

/// 54. TestImport "successfull import by tag and digest" (schema2 and OCI here: schema1 is
/// refused as unsupported, see `import::manifest`): both succeed with the same image, the
/// tag import under its tag, the digest import with no tag.
#[tokio::test]
async fn successful_import_by_tag_and_digest() {
    let reg = seeded();
    for repo in ["lab/docker-single", "lab/oci-single"] {
        let digest = seeded_digest(repo, "v1");
        let batch = Batch {
            images: vec![
                image(format!("{}/{repo}@{digest}", reg.addr()), Mode::Legacy),
                image(reg.image_ref(repo, "v1"), Mode::Legacy),
            ],
            repository: None,
        };
        let (result, requests) = run(
            &importer(),
            &reg,
            &batch,
            &Keyring::empty(),
            &settings(&reg),
        )
        .await;
        let by_digest = result.images[0].clone().expect("by digest");
        let by_tag = result.images[1].clone().expect("by tag");
        assert_eq!((by_digest.tag.as_str(), by_tag.tag.as_str()), ("", "v1"));
        assert_eq!(by_digest.image, digest);
        assert_eq!(by_tag.image, digest);
        assert_eq!(by_tag.reference, format!("{}/{repo}@{digest}", reg.addr()));
        // the tag is resolved with a GET; the Image the digest entry built is not rebuilt
        assert_eq!(manifest_gets(&requests), 2, "{requests:#?}");
        assert_eq!(
            requests.iter().filter(|r| r.contains("/blobs/")).count(),
            1,
            "{requests:#?}"
        );
        assert_eq!(result.new_images.len(), 1);
    }
}

/// 55. TestImport "successful import by tag": name = manifest digest, size = config length
/// plus layers, reference `<repository as written>@<digest>`.
#[tokio::test]
async fn successful_import_by_tag() {
    let reg = seeded();
    let batch = Batch {
        images: vec![image(
            reg.image_ref("lab/docker-single", "v1"),
            Mode::Legacy,
        )],
        repository: None,
    };
    let (result, requests) = run(
        &importer(),
        &reg,
        &batch,
        &Keyring::empty(),
        &settings(&reg),
    )
    .await;
    let imported = result.images[0].clone().expect("imported");
    let digest = seeded_digest("lab/docker-single", "v1");
    assert_eq!(imported.tag, "v1");
    let image = &result.new_images[&digest];
    assert_eq!(image_digest(image).as_deref(), Some(digest.as_str()));
    assert_eq!(
        image.spec.docker_image_reference,
        format!("{}/lab/docker-single@{digest}", reg.addr())
    );
    let metadata = image.spec.docker_image_metadata().unwrap().unwrap();
    let layers: i64 = image.spec.docker_image_layers.iter().map(|l| l.size).sum();
    assert_eq!(
        metadata.size,
        i64::try_from(image.spec.docker_image_config.len()).unwrap() + layers
    );
    assert_eq!(requests.len(), 2, "manifest and config only: {requests:#?}");
}

/// 56. TestImport "import repository with additional tags": tags {v1, other, v2, 3, 3.1,
/// abc} with a limit of 5 import `3.1, 3, abc, other, v1` in that order; `v2` is an
/// additional tag.
#[tokio::test]
async fn import_repository_with_additional_tags() {
    let reg = RegistryOptions::plain().start();
    let pusher = reg.client();
    let single: TestImage = ImageSpec::single("amd64", 56).build().into();
    for tag in ["v1", "other", "v2", "3", "3.1", "abc"] {
        pusher.push("test", tag, &single).await.expect("push");
    }
    let batch = Batch {
        images: vec![],
        repository: Some(RepositoryImport {
            from: format!("{}/test", reg.addr()),
            mode: Mode::Legacy,
            insecure: false,
            prefer: BTreeMap::new(),
            current: BTreeMap::new(),
        }),
    };
    let settings = Settings {
        bulk_import_limit: Some(5),
        ..settings(&reg)
    };
    let (result, requests) = run(&importer(), &reg, &batch, &Keyring::empty(), &settings).await;
    let repository = result.repository.expect("repository");
    let tags: Vec<String> = repository
        .images
        .clone()
        .expect("listed")
        .into_iter()
        .map(|r| r.expect("imported").tag)
        .collect();
    assert_eq!(tags, ["3.1", "3", "abc", "other", "v1"]);
    assert_eq!(repository.additional_tags, ["v2"]);
    assert_eq!(repository.failure(), None);
    // one tag list; a manifest GET per tag, but one config: the five tags share an image,
    // built once
    assert_eq!(
        requests.iter().filter(|r| r.contains("/tags/list")).count(),
        1,
        "{requests:#?}"
    );
    assert_eq!(
        requests.iter().filter(|r| r.contains("/blobs/")).count(),
        1,
        "{requests:#?}"
    );
}

/// 56 (continued): a tag beyond the limit that spec.images asks for is imported, not listed
/// as additional; `None` is unlimited.
#[tokio::test]
async fn repository_limit_includes_tags_requested_by_images() {
    let reg = RegistryOptions::plain().start();
    let pusher = reg.client();
    let single: TestImage = ImageSpec::single("amd64", 57).build().into();
    for tag in ["a", "b", "c"] {
        pusher.push("repo", tag, &single).await.expect("push");
    }
    let repo = RepositoryImport {
        from: format!("{}/repo", reg.addr()),
        mode: Mode::Legacy,
        insecure: false,
        prefer: BTreeMap::new(),
        current: BTreeMap::new(),
    };
    let batch = Batch {
        images: vec![image(reg.image_ref("repo", "c"), Mode::Legacy)],
        repository: Some(repo.clone()),
    };
    let limited = Settings {
        bulk_import_limit: Some(1),
        ..settings(&reg)
    };
    let (result, _) = run(&importer(), &reg, &batch, &Keyring::empty(), &limited).await;
    let repository = result.repository.expect("repository");
    let tags: Vec<String> = repository
        .images
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap().tag)
        .collect();
    assert_eq!(tags, ["a", "c"]);
    assert_eq!(repository.additional_tags, ["b"]);

    let unlimited = Settings {
        bulk_import_limit: None,
        ..settings(&reg)
    };
    let batch = Batch {
        images: vec![],
        repository: Some(repo),
    };
    let (result, _) = run(&importer(), &reg, &batch, &Keyring::empty(), &unlimited).await;
    let repository = result.repository.expect("repository");
    assert_eq!(repository.images.unwrap().len(), 3);
    assert!(repository.additional_tags.is_empty());
}

/// 58. TestImportManifestListSingleManifest: a list by digest or by tag in Legacy mode costs
/// exactly two manifest GETs (the list, then the amd64 child) and yields the child.
#[tokio::test]
async fn import_manifest_list_single_manifest() {
    let reg = seeded();
    let list = seeded_digest("lab/multi", "oci-index");
    let child = support::registry::StandardImages::build()
        .oci_index
        .child("linux/amd64")
        .expect("amd64 child")
        .digest()
        .to_string();
    for from in [
        reg.image_ref("lab/multi", "oci-index"),
        format!("{}/lab/multi@{list}", reg.addr()),
    ] {
        let batch = Batch {
            images: vec![image(from.clone(), Mode::Legacy)],
            repository: None,
        };
        let (result, requests) = run(
            &importer(),
            &reg,
            &batch,
            &Keyring::empty(),
            &settings(&reg),
        )
        .await;
        let imported = result.images[0].clone().expect("imported");
        // semantics quirk 8: the child, even when the list was asked for by digest
        assert_eq!(imported.image, child, "{from}");
        assert_eq!(manifest_gets(&requests), 2, "{from}: {requests:#?}");
        assert_eq!(result.new_images.len(), 1);
    }
}

/// 59. TestImportManifestList: PreserveOriginal by tag, by digest and via a repository
/// fetches the list and every child; the list Image names every child.
#[tokio::test]
async fn import_manifest_list() {
    let reg = seeded();
    let list = seeded_digest("lab/oci-index", "latest");
    let children = 3;
    for batch in [
        Batch {
            images: vec![image(
                reg.image_ref("lab/oci-index", "latest"),
                Mode::PreserveOriginal,
            )],
            repository: None,
        },
        Batch {
            images: vec![image(
                format!("{}/lab/oci-index@{list}", reg.addr()),
                Mode::PreserveOriginal,
            )],
            repository: None,
        },
        Batch {
            images: vec![],
            repository: Some(RepositoryImport {
                from: format!("{}/lab/oci-index", reg.addr()),
                mode: Mode::PreserveOriginal,
                insecure: false,
                prefer: BTreeMap::new(),
                current: BTreeMap::new(),
            }),
        },
    ] {
        let (result, requests) = run(
            &importer(),
            &reg,
            &batch,
            &Keyring::empty(),
            &settings(&reg),
        )
        .await;
        let imported = match &result.repository {
            Some(r) => r.images.clone().unwrap()[0].clone().unwrap(),
            None => result.images[0].clone().unwrap(),
        };
        assert_eq!(imported.image, list);
        assert_eq!(manifest_gets(&requests), 1 + children, "{requests:#?}");
        let list_image = &result.new_images[&list];
        assert_eq!(list_image.spec.docker_image_manifests.len(), children);
        assert_eq!(result.new_images.len(), 1 + children);
        // children are created before the list that names them
        let order = result.images_to_create();
        assert_eq!(
            image_digest(order.last().unwrap()).as_deref(),
            Some(list.as_str())
        );
    }
}

/// 60. TestImportManifestList "ImportTwoImagesBySameDigest": one list digest asked for in
/// both modes gives each mode its answer; the Legacy entry reuses the child the
/// PreserveOriginal entry fetched (upstream fetches it again).
#[tokio::test]
async fn import_two_images_by_same_digest() {
    let reg = seeded();
    let list = seeded_digest("lab/oci-index", "latest");
    let from = format!("{}/lab/oci-index@{list}", reg.addr());
    let batch = Batch {
        images: vec![
            image(from.clone(), Mode::PreserveOriginal),
            image(from, Mode::Legacy),
        ],
        repository: None,
    };
    let (result, requests) = run(
        &importer(),
        &reg,
        &batch,
        &Keyring::empty(),
        &settings(&reg),
    )
    .await;
    let preserved = result.images[0].clone().unwrap();
    let legacy = result.images[1].clone().unwrap();
    assert_eq!(preserved.image, list);
    let amd64 = support::registry::StandardImages::build()
        .oci_index
        .child("linux/amd64")
        .unwrap()
        .digest()
        .to_string();
    assert_eq!(legacy.image, amd64);
    // list + 3 children, then the list once more for the Legacy entry; no child twice
    assert_eq!(manifest_gets(&requests), 5, "{requests:#?}");
}

/// 61. TestImportManifestListWithError: a PreserveOriginal list whose child is missing
/// fails the entry (and nothing of it is kept).
#[tokio::test]
async fn import_manifest_list_with_error() {
    let reg = RegistryOptions::plain().start();
    let pusher = reg.client();
    let index: TestImage = IndexSpec::oci(61).build().into();
    pusher.push("broken", "latest", &index).await.expect("push");
    let missing = index.child("linux/arm64/v8").unwrap().digest().to_string();
    pusher
        .delete_manifest("broken", &missing)
        .await
        .expect("delete child");
    let batch = Batch {
        images: vec![image(
            reg.image_ref("broken", "latest"),
            Mode::PreserveOriginal,
        )],
        repository: None,
    };
    let (result, _) = run(
        &importer(),
        &reg,
        &batch,
        &Keyring::empty(),
        &settings(&reg),
    )
    .await;
    let failure = result.images[0].clone().unwrap_err();
    assert_eq!(failure.reason, "NotFound", "{failure:?}");
    assert!(failure.message.contains(&missing), "{failure:?}");
}

/// 62. TestManifestListToImageConversion: the list Image is named by the list digest and
/// mirrors its entries (digest, media type, size, platform).
#[tokio::test]
async fn manifest_list_to_image_conversion() {
    let reg = seeded();
    let list = seeded_digest("lab/docker-list", "latest");
    let batch = Batch {
        images: vec![image(
            reg.image_ref("lab/docker-list", "latest"),
            Mode::PreserveOriginal,
        )],
        repository: None,
    };
    let (result, _) = run(
        &importer(),
        &reg,
        &batch,
        &Keyring::empty(),
        &settings(&reg),
    )
    .await;
    let image = &result.new_images[&list];
    let TestImage::Index(index) = support::registry::StandardImages::build().docker_list else {
        panic!("the docker list is an index");
    };
    let manifests = &image.spec.docker_image_manifests;
    assert_eq!(manifests.len(), index.children.len());
    for (entry, child) in manifests.iter().zip(&index.children) {
        assert_eq!(entry.digest, child.digest());
        assert_eq!(entry.media_type, child.media_type());
        assert_eq!(
            usize::try_from(entry.manifest_size).unwrap(),
            child.manifest.size()
        );
    }
    assert_eq!(
        manifests
            .iter()
            .map(|m| format!("{}/{}", m.os, m.architecture))
            .collect::<Vec<_>>(),
        ["linux/amd64", "linux/arm64", "linux/arm"]
    );
}

// -------------------------------------------------------- credentials ---

/// Wrong credentials are Unauthorized with upstream's message; with no anonymous access
/// the first answer is kept after the anonymous retry.
#[tokio::test]
async fn wrong_credentials_are_unauthorized() {
    let reg = RegistryOptions::token().seeded().start();
    let batch = Batch {
        images: vec![image(reg.image_ref("lab/oci-single", "v1"), Mode::Legacy)],
        repository: None,
    };
    let importer = importer();
    let wrong = keyring(&reg, "reader", "wrong");
    let (result, _) = run(&importer, &reg, &batch, &wrong, &settings(&reg)).await;
    let failure = result.images[0].clone().unwrap_err();
    assert_eq!((failure.reason, failure.code), ("Unauthorized", 401));
    assert_eq!(
        failure.message,
        format!(
            "incorrect username or password for image \"{}/lab/oci-single:v1\"",
            reg.addr()
        )
    );

    let (result, _) = run(&importer, &reg, &batch, &Keyring::empty(), &settings(&reg)).await;
    let failure = result.images[0].clone().unwrap_err();
    assert_eq!(failure.reason, "Unauthorized");
    assert!(
        failure
            .message
            .ends_with("and did not have credentials to the repository"),
        "{failure:?}"
    );

    let right = keyring(&reg, "reader", "r3ad");
    let (result, _) = run(&importer, &reg, &batch, &right, &settings(&reg)).await;
    assert!(result.images[0].is_ok(), "{:?}", result.images[0]);
}

/// Semantics 5.2 step 8: "incorrect username or password" is retried anonymously, and a
/// registry that serves the image anonymously then succeeds.
#[tokio::test]
async fn bad_password_falls_back_to_anonymous_access() {
    let reg = RegistryOptions::token()
        .token_options(TokenOptions {
            anonymous: vec![Grant::repository("lab/*", &["pull"])],
            ..TokenOptions::default()
        })
        .seeded()
        .start();
    let batch = Batch {
        images: vec![image(reg.image_ref("lab/oci-single", "v1"), Mode::Legacy)],
        repository: Some(RepositoryImport {
            from: format!("{}/lab/multi", reg.addr()),
            mode: Mode::Legacy,
            insecure: false,
            prefer: BTreeMap::new(),
            current: BTreeMap::new(),
        }),
    };
    let wrong = keyring(&reg, "reader", "wrong");
    let (result, _) = run(&importer(), &reg, &batch, &wrong, &settings(&reg)).await;
    assert_eq!(
        result.images[0].clone().expect("anonymous retry").image,
        seeded_digest("lab/oci-single", "v1")
    );
    let repository = result.repository.expect("repository");
    assert_eq!(repository.images.expect("listed anonymously").len(), 2);
}

/// Two namespaces with different credentials for one registry get their own clients and
/// tokens: one namespace's access never serves the other.
#[tokio::test]
async fn namespaces_with_different_credentials_get_their_own_clients() {
    let reg = RegistryOptions::token()
        .users(default_users())
        .seeded()
        .start();
    let importer = importer();
    let reader = keyring(&reg, "reader", "r3ad");
    let multi_only = keyring(&reg, "multi-only", "m0nly");
    let single = Batch {
        images: vec![image(reg.image_ref("lab/oci-single", "v1"), Mode::Legacy)],
        repository: None,
    };
    let multi = Batch {
        images: vec![image(reg.image_ref("lab/multi", "oci-index"), Mode::Legacy)],
        repository: None,
    };

    let (a, _) = run(&importer, &reg, &single, &reader, &settings(&reg)).await;
    assert!(a.images[0].is_ok(), "{:?}", a.images[0]);
    // same repository, other namespace: the reader's token is not reused
    let (b, _) = run(&importer, &reg, &single, &multi_only, &settings(&reg)).await;
    assert_eq!(b.images[0].clone().unwrap_err().reason, "Unauthorized");
    let (c, _) = run(&importer, &reg, &multi, &multi_only, &settings(&reg)).await;
    assert!(c.images[0].is_ok(), "{:?}", c.images[0]);
    assert_eq!(importer.clients().len(), 2);

    let server = reg.token_server().expect("token server");
    let users: Vec<Option<String>> = server
        .requests_since(0)
        .into_iter()
        .map(|r| r.user)
        .collect();
    assert!(users.contains(&Some("reader".into())), "{users:?}");
    assert!(users.contains(&Some("multi-only".into())), "{users:?}");
}

/// HEAD first through the importer: a tag whose current image is still served costs one
/// HEAD once the token is cached.
#[tokio::test]
async fn unchanged_tag_costs_one_head() {
    let reg = RegistryOptions::token().seeded().start();
    let importer = importer();
    let reader = keyring(&reg, "reader", "r3ad");
    let from = reg.image_ref("lab/oci-single", "v1");
    let first = Batch {
        images: vec![image(from.clone(), Mode::Legacy)],
        repository: None,
    };
    let (result, _) = run(&importer, &reg, &first, &reader, &settings(&reg)).await;
    let current = result.images[0].clone().unwrap().image;

    let recheck = Batch {
        images: vec![ImageImport {
            current_image: Some(current.clone()),
            ..image(from, Mode::Legacy)
        }],
        repository: None,
    };
    let (result, requests) = run(&importer, &reg, &recheck, &reader, &settings(&reg)).await;
    let imported = result.images[0].clone().unwrap();
    assert!(imported.unchanged);
    assert_eq!(imported.image, current);
    assert!(result.new_images.is_empty());
    assert_eq!(requests, ["HEAD /v2/lab/oci-single/manifests/v1 200"]);
}

// ------------------------------------------------------------ config cache ---

/// Issue 17 item 6: two images whose manifests differ but share a config (the same image
/// under two manifest annotations) cost one config GET, in one batch and in the next one,
/// from another repository too: a config is fetched once per process, by digest.
#[tokio::test]
async fn a_config_shared_by_two_images_is_fetched_once() {
    let reg = RegistryOptions::plain().start();
    let pusher = reg.client();
    let spec = ImageSpec::single("amd64", 1706);
    let variants: Vec<support::images::Image> = ["a", "b", "c"]
        .iter()
        .map(|v| spec.clone().annotation("lab.variant", v).build())
        .collect();
    let config = variants[0].config.digest.clone();
    assert!(variants.iter().all(|v| v.config.digest == config));
    assert_ne!(variants[0].digest(), variants[1].digest());
    for (repo, tag, variant) in [
        ("shared", "a", 0),
        ("shared", "b", 1),
        ("elsewhere", "c", 2),
    ] {
        let image: TestImage = variants[variant].clone().into();
        pusher.push(repo, tag, &image).await.expect("push");
    }
    let config_gets = |requests: &[String]| {
        requests
            .iter()
            .filter(|r| r.starts_with("GET ") && r.contains(&format!("/blobs/{config}")))
            .count()
    };

    let cached = importer();
    let both = Batch {
        images: vec![
            image(reg.image_ref("shared", "a"), Mode::Legacy),
            image(reg.image_ref("shared", "b"), Mode::Legacy),
        ],
        repository: None,
    };
    let (result, requests) = run(&cached, &reg, &both, &Keyring::empty(), &settings(&reg)).await;
    let images: Vec<String> = result
        .images
        .iter()
        .map(|r| r.clone().expect("imported").image)
        .collect();
    assert_eq!(images, [variants[0].digest(), variants[1].digest()]);
    assert_eq!(result.new_images.len(), 2, "two Images, one config");
    assert_eq!(manifest_gets(&requests), 2, "{requests:#?}");
    assert_eq!(config_gets(&requests), 1, "{requests:#?}");
    for built in result.new_images.values() {
        let metadata = built.spec.docker_image_metadata().unwrap().unwrap();
        assert_eq!(metadata.id, config, "both Images carry the shared config");
    }

    // a later batch, another repository, a third manifest over the same config
    let third = Batch {
        images: vec![image(reg.image_ref("elsewhere", "c"), Mode::Legacy)],
        repository: None,
    };
    let (result, requests) = run(&cached, &reg, &third, &Keyring::empty(), &settings(&reg)).await;
    assert_eq!(
        result.images[0].clone().expect("imported").image,
        variants[2].digest()
    );
    assert_eq!(manifest_gets(&requests), 1, "{requests:#?}");
    assert_eq!(config_gets(&requests), 0, "{requests:#?}");
    assert_eq!(cached.configs().len(), 1);

    // another importer (a fresh process) fetches it again: the cache is what saved the GETs
    let (_, requests) = run(
        &importer(),
        &reg,
        &third,
        &Keyring::empty(),
        &settings(&reg),
    )
    .await;
    assert_eq!(config_gets(&requests), 1, "{requests:#?}");
}
