// Invariants of pull-secret parsing and lookup (src/credentials.rs) for one input.
//
// Shared by the cargo-fuzz target (fuzz/fuzz_targets/credentials.rs) and the library's unit
// tests (`fuzz_body` in src/credentials.rs), which both `include!` this file after bringing
// `Keyring`, `Credential` and `CredentialError` into scope. Panics (with the input) on the
// first violation.
//
// The input is a pull-secret file (a Secret, a List, a config.json or a .dockercfg, JSON or
// YAML). The hosts looked up come from the keyring's own entries and from the input's words.

#[allow(dead_code)]
const FUZZ_CREDENTIAL_REASONS: [&str; 11] = [
    "MissingData",
    "InvalidJson",
    "InvalidStructure",
    "InvalidAuthEncoding",
    "InvalidAuthFormat",
    "InvalidRegistryKey",
    "EmptyCredentials",
    "CredentialHelpersIgnored",
    "UnsupportedSecretType",
    "UnrecognizedFormat",
    "ReadFailed",
];

#[allow(dead_code)]
fn check_credential_error(e: &CredentialError) {
    assert!(
        FUZZ_CREDENTIAL_REASONS.contains(&e.reason()),
        "unknown reason {:?}",
        e.reason()
    );
    assert!(!e.to_string().is_empty(), "{e:?} has no message");
}

#[allow(dead_code)]
fn check_credential_invariants(data: &[u8]) {
    let keyring = match Keyring::from_file_bytes(data, "fuzz") {
        Ok(keyring) => keyring,
        Err(e) => {
            check_credential_error(&e);
            return;
        }
    };
    for warning in keyring.warnings() {
        check_credential_error(&warning.error);
        assert_eq!(warning.reason(), warning.error.reason());
    }

    // 1. Deterministic, ids included (keyed per process, so stable within one).
    let again = Keyring::from_file_bytes(data, "fuzz");
    let Ok(again) = again else {
        panic!("the second parse failed: {again:?}");
    };
    assert_eq!(again.id(), keyring.id(), "keyring id is not stable");
    assert_eq!(again.len(), keyring.len());
    assert_eq!(keyring.entries().count(), keyring.len());
    assert_eq!(keyring.is_empty(), keyring.entries().next().is_none());

    // 2. Every entry answers a lookup for its own (normalised) key, unless its host is a
    //    glob: the entry's credential is in the list, and nothing is anonymous then.
    for (key, credential) in keyring.entries() {
        assert!(!credential.is_anonymous());
        assert!(!credential.id().as_str().is_empty());
        if key.contains(['*', '?', '[', '\\']) {
            continue;
        }
        let (host_port, path) = key.split_once('/').unwrap_or((key.as_str(), ""));
        let found = keyring.lookup(host_port, path);
        assert!(
            found.iter().any(|c| c.id() == credential.id()),
            "entry {key:?} does not answer its own lookup: {found:?}"
        );
        assert!(
            found.iter().all(|c| !c.is_anonymous()),
            "{key:?}: {found:?}"
        );
        check_lookup(&keyring, host_port, path);
    }

    // 3. Any host the input names (and a few classics): never empty, best() is the first,
    //    no credential twice.
    let text = String::from_utf8_lossy(data);
    let words = text
        .split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '{' | '}'))
        .filter(|w| !w.is_empty())
        .take(32);
    for word in words.chain(["", "docker.io", "localhost:5000", "[::1]:443", "a.b.c:443"]) {
        let (host_port, path) = word.split_once('/').unwrap_or((word, "library/x"));
        check_lookup(&keyring, host_port, path);
    }

    // 4. A credential's Debug never shows its password (checked where a password cannot
    //    occur by accident: long, with a character Debug's scaffolding never has, and found
    //    in none of the fields Debug does show).
    let plain = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_graphic() && c != '\\' && c != '"')
    };
    for (_, credential) in keyring.entries() {
        let shown = format!("{credential:?}");
        let visible = [
            credential.username().to_owned(),
            credential.registry_key().unwrap_or_default().to_owned(),
            format!("{:?}", credential.source()),
        ];
        let password = credential.password();
        let distinctive = password.len() >= 8
            && password
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!$%^~".contains(c))
            && password.contains(['!', '$', '%', '^', '~']);
        let elsewhere = visible.iter().any(|s| s.contains(password));
        if distinctive && !elsewhere && visible[..2].iter().all(|s| plain(s)) {
            assert!(!shown.contains(password), "Debug shows a password: {shown}");
        }
    }
}

#[allow(dead_code)]
fn check_lookup(keyring: &Keyring, host_port: &str, path: &str) {
    let found = keyring.lookup(host_port, path);
    assert!(
        !found.is_empty(),
        "lookup({host_port:?}, {path:?}) is empty"
    );
    assert_eq!(
        keyring.best(host_port, path),
        found[0],
        "best({host_port:?}, {path:?})"
    );
    if found.iter().any(Credential::is_anonymous) {
        assert_eq!(found.len(), 1, "anonymous next to credentials: {found:?}");
    }
    let mut ids: Vec<&str> = found.iter().map(|c| c.id().as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        found.len(),
        "a credential listed twice: {found:?}"
    );
}
