//! The layering holds by construction (design.md section 5, issue 17 item 7): the pure rule
//! modules reach only other pure modules and no IO crate, and each kind's modules are named
//! the same way in every layer. A failure names the file, the line and what to do.
//!
//! How: every `use` tree and every other path in the pure files (comments and string
//! literals stripped) is resolved the way rustc resolves it (`crate::`, `super::`, `self::`,
//! inline `mod` blocks included) to the module file it names; that file must be pure too.
//! Paths into other crates are checked against the IO crates: the async runtime, the HTTP
//! stacks, the Kubernetes client and runtime, and the file, process and network parts of
//! `std`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The pure modules: decisions and plain data, no IO. A directory entry covers every file
/// under it.
const PURE: &[&str] = &[
    // the rules
    "src/stream/",
    "src/trigger/",
    "src/prune/",
    // the kinds and their names
    "src/api/",
    "src/names.rs",
    "src/reference.rs",
    "src/config.rs",
    // which Events are repeats
    "src/events/series.rs",
    // the import contract, and the pure parts of the import engine and the registry
    // transport: manifests, the protocol, registry policy, quotas, the client's settings
    "src/import/contract.rs",
    "src/import/manifest.rs",
    "src/registry/config.rs",
    "src/registry/policy.rs",
    "src/registry/protocol.rs",
    "src/registry/quota.rs",
    // the registry notifications' decisions: the ImageReceiver kind, payloads, which tags a
    // push wakes, how wakeups coalesce, rate limits
    "src/receiver/limit.rs",
    "src/receiver/payload.rs",
    "src/receiver/resource.rs",
    "src/receiver/select.rs",
    "src/receiver/wake.rs",
    // image policies and signature verification before import (issue 20)
    "src/trust/",
];

/// Crates whose every path is IO (or drives IO) in a pure module.
const IO_CRATES: &[&str] = &[
    "tokio",
    "tokio_rustls",
    "futures",
    "reqwest",
    "hyper",
    "hyper_util",
    "http_body_util",
    "rustls",
    "backon",
    "rcgen",
    "prometheus_client",
    "tracing_subscriber",
];

/// IO crates a pure module's tests may use to make fixtures in memory: rcgen is listed above
/// because it is the webhooks' certificate machinery, but making a test certificate authority
/// is no IO.
const TEST_FIXTURE_CRATES: &[&str] = &["rcgen"];

/// The kube paths a pure module may name: derives, resource traits and the core types.
/// The client, `Api`, the runtime (controllers, watchers, reflectors) and the rest are IO.
const KUBE_ALLOWED: &[&str] = &[
    "kube::CustomResource",
    "kube::CustomResourceExt",
    "kube::KubeSchema",
    "kube::Resource",
    "kube::ResourceExt",
    "kube::core",
    "kube::api::ObjectMeta",
];

/// IO in `std` (allowed in tests, which may read fixtures) and in the registry client crate.
const IO_PATHS: &[&str] = &[
    "std::fs",
    "std::process",
    "std::thread",
    "std::env",
    "std::net::TcpStream",
    "std::net::TcpListener",
    "std::net::UdpSocket",
    "std::net::ToSocketAddrs",
    "oci_client::Client",
    "oci_client::client",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn is_pure(relative: &str) -> bool {
    PURE.iter().any(|p| {
        if p.ends_with('/') {
            relative.starts_with(p)
        } else {
            relative == *p
        }
    })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .expect("under the crate")
        .to_string_lossy()
        .replace('\\', "/")
}

/// The module path of a source file: `src/stream/sync.rs` → `[stream, sync]`,
/// `src/stream/mod.rs` → `[stream]`, `src/lib.rs` → `[]`.
fn module_of(relative: &str) -> Vec<String> {
    let inner = relative
        .strip_prefix("src/")
        .expect("a file under src/")
        .strip_suffix(".rs")
        .expect("a .rs file");
    let mut parts: Vec<String> = inner.split('/').map(str::to_string).collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The file that defines module `path` (the deepest existing module file on the way: an item
/// path such as `crate::stream::sync::StatusUpdate` names `src/stream/sync.rs`).
fn file_of(path: &[String]) -> String {
    for n in (1..=path.len()).rev() {
        let base = path[..n].join("/");
        for candidate in [format!("src/{base}.rs"), format!("src/{base}/mod.rs")] {
            if root().join(&candidate).is_file() {
                return candidate;
            }
        }
    }
    "src/lib.rs".to_string()
}

// ------------------------------------------------------------------ tokens ---

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Path,
    Punct(char),
}

/// Identifiers, `::` and punctuation with their lines; comments, string and char literals,
/// and lifetimes dropped.
fn tokens(source: &str) -> Vec<(Tok, usize)> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if (c == 'r' || c == 'b')
            && (at(i + 1) == '"'
                || (at(i + 1) == '#' && c == 'r')
                || (c == 'b' && at(i + 1) == 'r' && (at(i + 2) == '"' || at(i + 2) == '#')))
        {
            // raw or byte strings: r"..", r#".."#, b"..", br#".."#
            let mut j = i + 1;
            if chars[j] == 'r' {
                j += 1;
            }
            let raw = c == 'r' || chars[i + 1] == 'r';
            let mut hashes = 0;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            if at(j) != '"' {
                // an identifier starting with r or b
                i = ident(&chars, i, line, &mut out);
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '\n' {
                    line += 1;
                }
                if !raw && chars[j] == '\\' {
                    j += 2;
                    continue;
                }
                if chars[j] == '"' && (0..hashes).all(|k| at(j + 1 + k) == '#') {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            i = j;
        } else if c == '"' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '"' {
                if chars[j] == '\\' {
                    j += 1;
                }
                if at(j) == '\n' {
                    line += 1;
                }
                j += 1;
            }
            i = j + 1;
        } else if c == '\'' {
            // a char literal ('a', '\n', '\u{1F600}') or a lifetime ('a)
            if at(i + 1) == '\\' {
                let mut j = i + 3;
                while j < chars.len() && chars[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
                while at(i).is_alphanumeric() || at(i) == '_' {
                    i += 1;
                }
            }
        } else if c.is_alphabetic() || c == '_' {
            i = ident(&chars, i, line, &mut out);
        } else if c.is_ascii_digit() {
            while at(i).is_alphanumeric()
                || at(i) == '_'
                || at(i) == '.' && at(i + 1).is_ascii_digit()
            {
                i += 1;
            }
        } else if c == ':' && at(i + 1) == ':' {
            out.push((Tok::Path, line));
            i += 2;
        } else {
            out.push((Tok::Punct(c), line));
            i += 1;
        }
    }
    out
}

fn ident(chars: &[char], mut i: usize, line: usize, out: &mut Vec<(Tok, usize)>) -> usize {
    let start = i;
    while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
        i += 1;
    }
    let word: String = chars[start..i].iter().collect();
    let word = word.strip_prefix("r#").map(str::to_string).unwrap_or(word);
    out.push((Tok::Ident(word), line));
    i
}

// ------------------------------------------------------------------- paths ---

/// A path named in a file: its segments as written, the line, the module it was named in,
/// and whether that is test code (a `#[cfg(test)]` module or a `tests.rs` file).
#[derive(Debug)]
struct Named {
    segments: Vec<String>,
    line: usize,
    module: Vec<String>,
    in_test: bool,
}

/// Expands a `use` tree starting at `toks[i]` (after `use`) into full paths; returns the index
/// after the tree.
fn use_tree(
    toks: &[(Tok, usize)],
    mut i: usize,
    prefix: Vec<String>,
    module: &(Vec<String>, bool),
    out: &mut Vec<Named>,
) -> usize {
    let mut segments = prefix;
    let line = toks.get(i).map_or(0, |t| t.1);
    loop {
        match toks.get(i).map(|t| &t.0) {
            Some(Tok::Path) => i += 1,
            Some(Tok::Ident(word)) if word == "as" => {
                // `as name`: the path is complete
                i += 2;
                break;
            }
            Some(Tok::Ident(word)) => {
                segments.push(word.clone());
                i += 1;
            }
            Some(Tok::Punct('*')) => {
                i += 1;
                break;
            }
            Some(Tok::Punct('{')) => {
                i += 1;
                loop {
                    match toks.get(i).map(|t| &t.0) {
                        Some(Tok::Punct('}')) => {
                            i += 1;
                            return i;
                        }
                        Some(Tok::Punct(',')) => i += 1,
                        None => return i,
                        _ => i = use_tree(toks, i, segments.clone(), module, out),
                    }
                }
            }
            _ => break,
        }
    }
    // `self` inside braces names the prefix itself
    if segments.last().is_some_and(|s| s == "self") && segments.len() > 1 {
        segments.pop();
    }
    out.push(Named {
        segments,
        line,
        module: module.0.clone(),
        in_test: module.1,
    });
    i
}

/// Every path a file names: the `use` trees expanded, and every other `a::b` path not
/// preceded by `::` (a path in an expression, a type, an attribute or a macro call).
fn named_paths(source: &str, file_module: &[String]) -> Vec<Named> {
    let toks = tokens(source);
    let mut out = Vec::new();
    // inline modules: (name, brace depth at which the block opened, under #[cfg(test)])
    let mut inline: Vec<(String, usize, bool)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    let test_file = file_module.last().is_some_and(|m| m == "tests");
    let module_now = |inline: &[(String, usize, bool)]| {
        let mut m = file_module.to_vec();
        m.extend(inline.iter().map(|(n, _, _)| n.clone()));
        (m, test_file || inline.iter().any(|(_, _, test)| *test))
    };
    let cfg_test = [
        Tok::Punct('#'),
        Tok::Punct('['),
        Tok::Ident("cfg".into()),
        Tok::Punct('('),
        Tok::Ident("test".into()),
        Tok::Punct(')'),
        Tok::Punct(']'),
    ];
    while i < toks.len() {
        match &toks[i].0 {
            Tok::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                if inline.last().is_some_and(|(_, d, _)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            Tok::Ident(word) if word == "mod" => {
                if let (Some((Tok::Ident(name), _)), Some((Tok::Punct('{'), _))) =
                    (toks.get(i + 1), toks.get(i + 2))
                {
                    let test = i >= 7 && toks[i - 7..i].iter().map(|(t, _)| t).eq(cfg_test.iter());
                    inline.push((name.clone(), depth + 1, test));
                    depth += 1;
                    i += 3;
                } else {
                    i += 1;
                }
            }
            Tok::Ident(word) if word == "use" => {
                let module = module_now(&inline);
                i = use_tree(&toks, i + 1, Vec::new(), &module, &mut out);
            }
            Tok::Ident(first) => {
                let preceded = i > 0 && toks[i - 1].0 == Tok::Path;
                if !preceded && matches!(toks.get(i + 1), Some((Tok::Path, _))) {
                    let mut segments = vec![first.clone()];
                    let line = toks[i].1;
                    let mut j = i + 1;
                    while let (Some((Tok::Path, _)), Some((Tok::Ident(next), _))) =
                        (toks.get(j), toks.get(j + 1))
                    {
                        segments.push(next.clone());
                        j += 2;
                    }
                    let (module, in_test) = module_now(&inline);
                    out.push(Named {
                        segments,
                        line,
                        module,
                        in_test,
                    });
                    i = j;
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// What is wrong with a path named in a pure file, if anything.
fn violation(named: &Named) -> Option<String> {
    let segments = &named.segments;
    let first = segments.first()?.as_str();
    let joined = segments.join("::");
    let resolved: Option<Vec<String>> = match first {
        "crate" => Some(segments[1..].to_vec()),
        "self" => {
            let mut m = named.module.clone();
            m.extend(segments[1..].iter().cloned());
            Some(m)
        }
        "super" => {
            let mut m = named.module.clone();
            let mut rest = &segments[..];
            while rest.first().is_some_and(|s| s == "super") {
                m.pop();
                rest = &rest[1..];
            }
            m.extend(rest.iter().cloned());
            Some(m)
        }
        _ => None,
    };
    if let Some(path) = resolved {
        let file = file_of(&path);
        return (!is_pure(&file))
            .then(|| format!("`{joined}` reaches {file}, which is not a pure module"));
    }
    if IO_CRATES.contains(&first) && !(named.in_test && TEST_FIXTURE_CRATES.contains(&first)) {
        return Some(format!("`{joined}`: the {first} crate is IO"));
    }
    if first == "kube"
        && !KUBE_ALLOWED
            .iter()
            .any(|a| joined == *a || joined.starts_with(&format!("{a}::")))
    {
        return Some(format!(
            "`{joined}`: only {} of kube may be named here",
            KUBE_ALLOWED.join(", ")
        ));
    }
    // tests of pure modules may read their fixtures
    IO_PATHS
        .iter()
        .filter(|p| !(named.in_test && p.starts_with("std::")))
        .find(|p| joined == **p || joined.starts_with(&format!("{p}::")))
        .map(|p| format!("`{joined}`: {p} is IO"))
}

fn violations_in(relative: &str, source: &str) -> Vec<String> {
    let module = module_of(relative);
    named_paths(source, &module)
        .iter()
        .filter_map(|n| violation(n).map(|v| format!("{relative}:{}: {v}", n.line)))
        .collect()
}

#[test]
fn pure_modules_reach_no_io_layer_and_no_io_crate() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut checked = 0;
    let mut found = Vec::new();
    for path in &files {
        let relative = relative(path);
        if !is_pure(&relative) {
            continue;
        }
        checked += 1;
        let source = std::fs::read_to_string(path).expect("readable source");
        found.extend(violations_in(&relative, &source));
    }
    assert!(
        checked > 40,
        "only {checked} pure files found: is PURE right?"
    );
    let mut message = String::new();
    for v in &found {
        let _ = writeln!(message, "  {v}");
    }
    assert!(
        found.is_empty(),
        "pure modules must not reach the admission, controller, registry or import IO layers \
         nor IO crates (move the decision or the plain data below both):\n{message}"
    );
}

/// The checker itself: each kind of path it must catch, and what it must let through.
#[test]
fn the_checker_catches_io_paths_and_lets_pure_ones_through() {
    let bad = r#"
        use crate::import::{contract::Mode, importer::{self, Batch}};
        use super::super::controller::Context;
        use tokio::time::sleep;
        use kube::{Api, Client, api::ObjectMeta, CustomResource};
        fn f() { let _ = crate::registry::ClientCache::new(); std::fs::read("x"); }
        #[tokio::test]
        async fn t() {}
        mod inner {
            use super::super::super::admission::review;
        }
        use rcgen::KeyPair;
    "#;
    let found = violations_in("src/stream/example.rs", bad);
    let expect = [
        "src/stream/example.rs:2: `crate::import::importer` reaches src/import/importer.rs",
        "src/stream/example.rs:2: `crate::import::importer::Batch` reaches src/import/importer.rs",
        "src/stream/example.rs:3: `super::super::controller::Context` reaches src/controller/mod.rs",
        "src/stream/example.rs:4: `tokio::time::sleep`: the tokio crate is IO",
        "src/stream/example.rs:5: `kube::Api`",
        "src/stream/example.rs:5: `kube::Client`",
        "src/stream/example.rs:6: `crate::registry::ClientCache::new` reaches src/registry/mod.rs",
        "src/stream/example.rs:6: `std::fs::read`: std::fs is IO",
        "src/stream/example.rs:7: `tokio::test`: the tokio crate is IO",
        "src/stream/example.rs:10: `super::super::super::admission::review` reaches src/admission/review.rs",
        "src/stream/example.rs:12: `rcgen::KeyPair`: the rcgen crate is IO",
    ];
    for e in expect {
        assert!(
            found.iter().any(|f| f.starts_with(e)),
            "not caught: {e}\nfound: {found:#?}"
        );
    }
    assert_eq!(found.len(), expect.len(), "{found:#?}");

    let good = r##"
        //! Docs may name [`crate::controller::Context`] and `tokio::spawn`.
        use std::collections::BTreeMap;
        use crate::import::contract::{ImageImport, Mode};
        use crate::api::image_stream::{self, ImageStream};
        use super::history::latest;
        use kube::api::ObjectMeta;
        fn f() -> &'static str { let c = 'x'; let _ = r#"crate::registry::x"#; "tokio::spawn" }
        #[cfg(test)]
        mod tests {
            use super::*;
            use crate::stream::sync::tests::D1;
            use rcgen::KeyPair;
            fn fixture() -> String { std::fs::read_to_string("x").unwrap() }
        }
    "##;
    let found = violations_in("src/stream/example.rs", good);
    assert!(found.is_empty(), "{found:#?}");
}

// -------------------------------------------------------------- kind names ---

/// Other spellings of a kind that must not name a module (the kinds' own spelling is their
/// `src/api/` module: `image_stream_import`, `image_stream_mapping`, ...).
const ALIASES: &[(&str, &str)] = &[
    ("import_request", "image_stream_import"),
    ("isi", "image_stream_import"),
    ("mapping", "image_stream_mapping"),
    ("mappings", "image_stream_mapping"),
    ("istag", "image_stream_tag"),
    ("isimage", "image_stream_image"),
];

/// The kinds' module names, from `src/api/`.
fn kinds() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&root().join("src/api"), &mut files);
    files
        .iter()
        .filter_map(|f| f.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|s| s.starts_with("image"))
        .collect()
}

/// What a module name should be instead, when it spells a kind another way.
fn respelled(name: &str, kinds: &BTreeSet<String>) -> Option<String> {
    if let Some((_, kind)) = ALIASES.iter().find(|(alias, _)| *alias == name) {
        return Some((*kind).to_string());
    }
    kinds
        .iter()
        .find(|kind| {
            name != kind.as_str()
                && (name == kind.replace('_', "")
                    || name == format!("{kind}s")
                    || name == format!("{}s", kind.replace('_', "")))
        })
        .cloned()
}

#[test]
fn each_kind_is_spelled_the_same_way_in_every_layer() {
    let kinds = kinds();
    assert!(kinds.contains("image_stream_import"), "{kinds:?}");
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut found = Vec::new();
    for path in &files {
        let relative = relative(path);
        for name in module_of(&relative) {
            if let Some(kind) = respelled(&name, &kinds) {
                found.push(format!(
                    "{relative}: module `{name}` spells the kind `{kind}` another way"
                ));
            }
        }
        // type names: one spelling per kind there too
        let source = std::fs::read_to_string(path).expect("readable source");
        let toks = tokens(&source);
        for pair in toks.windows(2) {
            if let [(Tok::Ident(keyword), line), (Tok::Ident(name), _)] = pair
                && matches!(keyword.as_str(), "struct" | "enum" | "trait" | "type")
                && [
                    "Isi",
                    "ImportRequest",
                    "IsTag",
                    "Istag",
                    "IsImage",
                    "Isimage",
                ]
                .iter()
                .any(|bad| {
                    name.starts_with(bad)
                        && name[bad.len()..]
                            .chars()
                            .next()
                            .is_none_or(char::is_uppercase)
                })
            {
                found.push(format!(
                    "{relative}:{line}: type `{name}` spells a kind another way"
                ));
            }
        }
    }
    found.sort();
    found.dedup();
    assert!(
        found.is_empty(),
        "name modules and types after their kind as src/api/ does:\n  {}",
        found.join("\n  ")
    );
    // the check itself
    assert_eq!(
        respelled("imagestreamimport", &kinds).as_deref(),
        Some("image_stream_import")
    );
    assert_eq!(
        respelled("image_signatures", &kinds).as_deref(),
        Some("image_signature")
    );
    assert_eq!(
        respelled("mappings", &kinds).as_deref(),
        Some("image_stream_mapping")
    );
    assert_eq!(respelled("image_stream_import", &kinds), None);
    assert_eq!(respelled("image_lookup", &kinds), None);
}
