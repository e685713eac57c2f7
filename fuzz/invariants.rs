// Invariants of `DockerImageReference::parse` (src/reference.rs) for one input.
//
// Shared by the cargo-fuzz target (fuzz/fuzz_targets/reference.rs) and the library's own unit
// tests (the `fuzz_body_*` tests in src/reference.rs), which both `include!` this file after
// bringing `DockerImageReference`, `ReferenceError`, `NAME_TOTAL_LENGTH_MAX`,
// `DOCKER_DEFAULT_V2_REGISTRY`, `is_registry_docker_hub`, `is_valid_tag` and `validate_digest`
// into scope. Panics (with the input) on the first violation.

#[allow(dead_code)]
fn check_reference_invariants(input: &str) {
    let parsed = DockerImageReference::parse(input);

    // 1. The grammar agrees with oci-spec's: the same distribution regular expression, compiled
    //    by the regex crate. ASCII input only, since oci-spec's `\w` is Unicode and Go's is not.
    if input.is_ascii() {
        let ours = !matches!(
            parsed,
            Err(ReferenceError::InvalidFormat
                | ReferenceError::NameContainsUppercase
                | ReferenceError::NameEmpty)
        );
        let theirs = !matches!(
            oci_client::Reference::try_from(input),
            Err(oci_client::ParseError::ReferenceInvalidFormat | oci_client::ParseError::NameEmpty)
        );
        assert_eq!(ours, theirs, "grammar disagrees with oci-spec on {input:?}: {parsed:?}");
        if parsed == Err(ReferenceError::NameContainsUppercase) {
            let lower = DockerImageReference::parse(&input.to_ascii_lowercase());
            assert!(
                !matches!(lower, Err(ReferenceError::InvalidFormat | ReferenceError::NameEmpty)),
                "{input:?} is reported upper-case but its lower case does not match: {lower:?}"
            );
        }
    }

    let Ok(r) = parsed else { return };

    // 2. Field shapes.
    assert!(r.tag.is_empty() || is_valid_tag(&r.tag), "{input:?}: tag {:?}", r.tag);
    assert!(r.id.is_empty() || validate_digest(&r.id).is_ok(), "{input:?}: id {:?}", r.id);
    assert!(!r.registry.contains('/') && !r.namespace.contains('/'), "{input:?}: {r:?}");

    // 3. Registry-only references: the whole input is the registry, nothing prints.
    if r.name.is_empty() {
        assert_eq!(r.registry, input, "registry-only {input:?}");
        assert!(r.namespace.is_empty() && r.tag.is_empty(), "registry-only {input:?}: {r:?}");
        assert_eq!(r.exact(), "", "registry-only {input:?}");
        assert_eq!(r.to_string(), "", "registry-only {input:?}");
        assert_eq!(r.to_oci_reference(), Err(ReferenceError::NameEmpty), "{input:?}");
        return;
    }
    assert!(r.namespace.is_empty() || !r.name.is_empty());
    let name_len = r.registry.len() + r.namespace.len() + r.name.len() + 2;

    // 4. exact() is the user's spelling; only a tag next to a digest is dropped (Exact prefers
    //    the ID), and the result parses back to most_specific().
    let expected = if !r.tag.is_empty() && !r.id.is_empty() {
        input.replacen(&format!(":{}@", r.tag), "@", 1)
    } else {
        input.to_owned()
    };
    assert_eq!(r.exact(), expected, "exact() of {input:?}");
    assert_eq!(
        DockerImageReference::parse(&expected),
        Ok(r.most_specific()),
        "exact() of {input:?} re-parsed"
    );

    // 5. Display (upstream String()) re-parses to the same reference with Docker Hub's
    //    `library` filled in, and prints the same again; only the added `library/` may push
    //    the name over the limit.
    let display = r.to_string();
    let mut normalised = r.most_specific();
    let library_added = normalised.namespace.is_empty() && is_registry_docker_hub(&r.registry);
    if library_added {
        normalised.namespace = "library".to_owned();
    }
    match DockerImageReference::parse(&display) {
        Ok(again) => {
            assert_eq!(again, normalised, "Display of {input:?} = {display:?} re-parsed");
            assert_eq!(again.to_string(), display, "Display of {input:?} is not stable");
            assert_eq!(again.exact(), display, "{input:?}");
        }
        Err(ReferenceError::NameTooLong) => {
            assert!(library_added && name_len + 8 > NAME_TOTAL_LENGTH_MAX, "{input:?}");
        }
        Err(error) => panic!("Display of {input:?} = {display:?} does not parse: {error}"),
    }

    // 6. Idempotence and the defaulting helpers.
    let defaults = r.docker_client_defaults();
    assert_eq!(defaults.docker_client_defaults(), defaults, "{input:?}");
    assert!(r.equal(&defaults), "{input:?}");
    let most_specific = r.most_specific();
    assert_eq!(most_specific.most_specific(), most_specific, "{input:?}");
    assert_eq!(r.is_digest(), !r.id.is_empty(), "{input:?}");
    let repository = if r.namespace.is_empty() {
        r.name.clone()
    } else {
        format!("{}/{}", r.namespace, r.name)
    };
    assert_eq!(r.repository_name(), repository, "{input:?}");
    assert_eq!(r.as_v2().as_v2(), r.as_v2(), "{input:?}");

    // 7. The registry boundary: the oci-client reference re-parses to itself, and agrees with
    //    oci-spec's own normalisation of the input wherever both apply (oci-spec keeps
    //    `registry-1.docker.io` as an ordinary registry and keeps a tag next to a digest; it
    //    checks only the repository's length and no host syntax).
    match r.to_oci_reference() {
        Ok(oci) => {
            let whole = oci.whole();
            assert_eq!(
                oci_client::Reference::try_from(whole.as_str()),
                Ok(oci.clone()),
                "{input:?}: oci reference {whole:?} does not re-parse to itself"
            );
            if r.registry != DOCKER_DEFAULT_V2_REGISTRY && (r.tag.is_empty() || r.id.is_empty()) {
                assert_eq!(
                    oci_client::Reference::try_from(input),
                    Ok(oci),
                    "{input:?}: normalisation differs from oci-spec's"
                );
            }
        }
        Err(ReferenceError::NameTooLong) => {
            assert!(name_len + 18 > NAME_TOTAL_LENGTH_MAX, "{input:?}: spurious NameTooLong");
        }
        Err(ReferenceError::NameContainsUppercase) => {
            // `Foo/bar`: a host-like first component that upstream calls a namespace
            assert!(r.namespace.bytes().any(|b| b.is_ascii_uppercase()), "{input:?}");
        }
        Err(ReferenceError::RegistryInvalid(registry)) => {
            assert_eq!(registry, r.registry, "{input:?}");
            assert!(!registry.contains(':') && registry != "localhost", "{input:?}");
        }
        Err(error) => panic!("{input:?}: to_oci_reference failed: {error}"),
    }
}

/// The ImageStreamTag / ImageStreamImage name helpers and `prioritize_tags` on one input
/// (tags: the input split at `,`).
#[allow(dead_code)]
fn check_name_helper_invariants(input: &str) {
    if let Ok((name, tag)) = parse_image_stream_tag_name(input) {
        assert_eq!(join_image_stream_tag(name, tag), input);
        assert_eq!(split_image_stream_tag(input), (name, tag, true));
    }
    if let Ok((name, id)) = parse_image_stream_image_name(input) {
        assert_eq!(join_image_stream_image(name, id), input);
        assert_eq!(split_image_stream_image(input), (name, id, true));
    }
    let (name, tag, _) = split_image_stream_tag(input);
    assert!(!tag.is_empty() && name.len() <= input.len());
    assert!(digest_or_image_match(input, "") && digest_or_image_match(input, input));

    let mut tags: Vec<&str> = input.split(',').collect();
    prioritize_tags(&mut tags);
    let mut again = tags.clone();
    prioritize_tags(&mut again);
    assert_eq!(again, tags, "prioritize_tags is not idempotent on {input:?}");
    let mut original: Vec<&str> = input.split(',').collect();
    let mut permutation = tags.clone();
    original.sort_unstable();
    permutation.sort_unstable();
    assert_eq!(original, permutation, "prioritize_tags lost or invented tags on {input:?}");
    if tags.contains(&"latest") {
        assert_eq!(tags.first(), Some(&"latest"), "{input:?}");
    }
}
