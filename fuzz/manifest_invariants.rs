// Invariants of manifest parsing (src/import/manifest.rs) for one input.
//
// Shared by the cargo-fuzz target (fuzz/fuzz_targets/manifest.rs) and the library's unit
// tests (`fuzz_body` in src/import/manifest.rs), which both `include!` this file after
// bringing `parse`, `select_child`, `single_image`, `list_image`, `is_attestation`,
// `Manifest`, `ManifestList`, `SingleManifest`, `Descriptor`, `ManifestError`, the media-type
// constants, `Platform` and `serde_json` into scope. Panics (with the input) on the first
// violation.
//
// Input layout: the first byte picks the Content-Type, the rest up to the first 0xff byte
// is the manifest body, whatever follows is the image config blob.

/// Content types a registry may answer with: none, each supported one (with and without
/// parameters) and ones that must be ignored.
#[allow(dead_code)]
const FUZZ_CONTENT_TYPES: [Option<&str>; 12] = [
    None,
    Some(OCI_MANIFEST),
    Some(OCI_INDEX),
    Some(DOCKER_SCHEMA2),
    Some(DOCKER_LIST),
    Some(DOCKER_SCHEMA1),
    Some(DOCKER_SCHEMA1_SIGNED),
    Some("application/vnd.oci.image.index.v1+json; charset=utf-8"),
    Some(" application/vnd.docker.distribution.manifest.v2+json ;q=1"),
    Some("application/json"),
    Some("text/html"),
    Some(""),
];

#[allow(dead_code)]
const FUZZ_REASONS: [&str; 6] = [
    "UnsupportedSchema1",
    "UnsupportedMediaType",
    "MalformedManifest",
    "MalformedConfig",
    "EmptyManifestList",
    "TooManyManifestEntries",
];

#[allow(dead_code)]
fn check_manifest_invariants(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let content_type = FUZZ_CONTENT_TYPES[usize::from(selector) % FUZZ_CONTENT_TYPES.len()];
    let (body, config) = match rest.iter().position(|b| *b == 0xff) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &b"{}"[..]),
    };

    let parsed = parse(body, content_type);
    // 1. Deterministic, and every error has a stable reason and a message.
    assert_eq!(
        parse(body, content_type),
        parsed,
        "parse is not deterministic"
    );
    let manifest = match parsed {
        Ok(m) => m,
        Err(e) => {
            check_manifest_error(&e);
            return;
        }
    };

    // 2. The media type is one of the four supported ones, and a Content-Type naming a
    //    manifest type wins over the body.
    let media_type = match &manifest {
        Manifest::Single(m) => m.media_type.as_str(),
        Manifest::List(l) => l.media_type.as_str(),
    };
    match &manifest {
        Manifest::Single(_) => assert!(
            media_type == OCI_MANIFEST || media_type == DOCKER_SCHEMA2,
            "single manifest of type {media_type:?}"
        ),
        Manifest::List(_) => assert!(
            media_type == OCI_INDEX || media_type == DOCKER_LIST,
            "list of type {media_type:?}"
        ),
    }
    if let Some(header) = content_type
        .and_then(|c| c.split(';').next())
        .map(str::trim)
        && [OCI_MANIFEST, OCI_INDEX, DOCKER_SCHEMA2, DOCKER_LIST].contains(&header)
    {
        assert_eq!(media_type, header, "the Content-Type must win");
    }

    // 3. What parsed re-serialises to a body that parses to the same manifest, without any
    //    Content-Type (the body's mediaType is enough).
    let again = serde_json::to_vec(&manifest_json(&manifest)).unwrap_or_default();
    assert_eq!(
        parse(&again, None).as_ref(),
        Ok(&manifest),
        "re-serialised {:?}",
        String::from_utf8_lossy(&again)
    );

    // 4. Bounded: no manifest with more entries than the limit gets through.
    let entries = match &manifest {
        Manifest::Single(m) => m.layers.len(),
        Manifest::List(l) => l.manifests.len(),
    };
    assert!(entries <= MAX_MANIFEST_ENTRIES, "{entries} entries");

    match &manifest {
        Manifest::Single(single) => check_single(single, body, config),
        Manifest::List(list) => check_list(list, body),
    }
}

#[allow(dead_code)]
fn check_manifest_error(e: &ManifestError) {
    assert!(
        FUZZ_REASONS.contains(&e.reason()),
        "unknown reason {:?}",
        e.reason()
    );
    assert!(!e.to_string().is_empty(), "{e:?} has no message");
}

#[allow(dead_code)]
fn descriptor_json(d: &Descriptor) -> serde_json::Value {
    let mut v = serde_json::json!({
        "mediaType": d.media_type,
        "digest": d.digest,
        "size": d.size,
        "annotations": d.annotations,
    });
    if let Some(p) = &d.platform {
        let mut platform = serde_json::json!({"architecture": p.architecture, "os": p.os});
        if let Some(variant) = &p.variant {
            platform["variant"] = serde_json::json!(variant);
        }
        v["platform"] = platform;
    }
    v
}

#[allow(dead_code)]
fn manifest_json(m: &Manifest) -> serde_json::Value {
    match m {
        Manifest::Single(s) => serde_json::json!({
            "schemaVersion": 2,
            "mediaType": s.media_type,
            "config": descriptor_json(&s.config),
            "layers": s.layers.iter().map(descriptor_json).collect::<Vec<_>>(),
        }),
        Manifest::List(l) => serde_json::json!({
            "schemaVersion": 2,
            "mediaType": l.media_type,
            "manifests": l.manifests.iter().map(descriptor_json).collect::<Vec<_>>(),
        }),
    }
}

/// The Image of a single manifest: one layer per descriptor, sizes kept, and an image size
/// that never overflows or goes negative whatever sizes the registry claims.
#[allow(dead_code)]
fn check_single(single: &SingleManifest, body: &[u8], config: &[u8]) {
    const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let image = match single_image("registry.test/a/b", DIGEST, single, body, config) {
        Ok(image) => image,
        Err(e) => {
            check_manifest_error(&e);
            assert_eq!(e.reason(), "MalformedConfig", "{e}");
            return;
        }
    };
    let layers = &image.spec.docker_image_layers;
    assert_eq!(layers.len(), single.layers.len());
    for (layer, descriptor) in layers.iter().zip(&single.layers) {
        assert_eq!(layer.name, descriptor.digest);
        assert_eq!(layer.size, descriptor.size);
    }
    assert_eq!(
        image.spec.docker_image_reference,
        format!("registry.test/a/b@{DIGEST}")
    );
    let metadata = image.spec.docker_image_metadata();
    let Ok(Some(metadata)) = metadata else {
        panic!("the Image's metadata does not read back: {metadata:?}");
    };
    assert_eq!(metadata.id, single.config.digest);
    let mut seen = std::collections::BTreeSet::new();
    let expected = single
        .layers
        .iter()
        .filter(|l| seen.insert(l.digest.as_str()))
        .fold(i64::try_from(config.len()).unwrap_or(i64::MAX), |sum, l| {
            sum.saturating_add(l.size.max(0))
        });
    assert_eq!(metadata.size, expected, "image size");
    assert!(metadata.size >= 0);
}

/// Legacy mode's child is a runnable entry of the list (the preferred platform when one
/// matches), and the PreserveOriginal Image mirrors the entries.
#[allow(dead_code)]
fn check_list(list: &ManifestList, body: &[u8]) {
    let platforms = [
        Platform::default(),
        Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: Some("v8".into()),
        },
    ];
    let runnable = list.manifests.iter().filter(|e| !is_attestation(e)).count();
    for platform in &platforms {
        for (arch, os) in [
            (None, None),
            (Some("arm64"), None),
            (Some("s390x"), Some("linux")),
        ] {
            let child = select_child(list, arch, os, platform);
            assert_eq!(
                child.is_some(),
                runnable > 0,
                "a child exactly when one is runnable"
            );
            let Some(child) = child else { continue };
            assert!(!is_attestation(child), "attestation {child:?} selected");
            assert!(list.manifests.iter().any(|e| std::ptr::eq(e, child)));
            let wanted_arch = arch.unwrap_or(&platform.architecture);
            let wanted_os = os.unwrap_or(&platform.os);
            let preferred = list.manifests.iter().any(|e| {
                !is_attestation(e)
                    && e.platform
                        .as_ref()
                        .is_some_and(|p| p.architecture == wanted_arch && p.os == wanted_os)
            });
            if (arch.is_some() || os.is_some()) && preferred {
                let p = child.platform.clone().unwrap_or_default();
                assert_eq!(
                    (p.architecture.as_str(), p.os.as_str()),
                    (wanted_arch, wanted_os)
                );
            }
        }
    }

    const DIGEST: &str = "sha256:293aa25bf219f3e47472281b7e68c09bb6f315c2adf7f86a7302b85bdaa63db3";
    let now = jiff::Timestamp::UNIX_EPOCH;
    match list_image("registry.test/a/b", DIGEST, list, body, now) {
        Ok(image) => {
            assert!(!list.manifests.is_empty());
            let entries = &image.spec.docker_image_manifests;
            assert_eq!(entries.len(), list.manifests.len());
            for (entry, descriptor) in entries.iter().zip(&list.manifests) {
                assert_eq!(entry.digest, descriptor.digest);
                assert_eq!(entry.manifest_size, descriptor.size);
            }
            assert!(image.spec.docker_image_layers.is_empty());
        }
        Err(e) => {
            check_manifest_error(&e);
            assert_eq!(e, ManifestError::EmptyList, "{e}");
            assert!(list.manifests.is_empty());
        }
    }
}
