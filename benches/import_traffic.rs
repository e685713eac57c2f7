//! Registry traffic of the import engine (issue 3's benchmark; a program, not a timed test).
//!
//! Against the real local registry (Debian's `docker-registry`) behind a token server, with
//! the production [`Importer`] (one for all phases, so tokens stay cached), counts what each
//! phase costs from the registry's access log and the token server's own count:
//!
//! * 200 single-arch tags in 20 repositories (Legacy mode): (a) first import, (b) re-check
//!   with nothing changed (each tag's current image passed in, so the engine asks HEAD first),
//!   (c) re-check after 20 tags were moved to new images;
//! * the same three phases for 50 multi-arch tags (OCI index, 3 platforms) in 10 repositories,
//!   PreserveOriginal mode, 5 tags moved.
//!
//! Each phase runs as one `Batch` (the importer groups it by repository and runs repositories
//! concurrently); then all six phases again with a second, fresh `Importer` and one `Batch` per
//! tag (8 at a time), as a controller importing tag by tag would, phase (c) moving other tags.
//!
//! Targets (issue 3): (b) exactly one request per tag, a HEAD, once tokens are cached;
//! (a) at most a manifest GET and a config GET per new image plus one token per repository
//! (one token handshake: the 401 that names the token realm and the token request). (c) is
//! held to what the same rules give: one HEAD per tag, plus manifest and config of each new
//! image, no token. Exits non-zero when a target is missed or an import is wrong.
//!
//! `cargo bench --bench import_traffic` (or `make bench`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use futures::StreamExt;

use imagestream_operator::credentials::Keyring;
use imagestream_operator::import::contract::{Batch, BatchResult, ImageImport, Mode, Settings};
use imagestream_operator::import::importer::Importer;
use imagestream_operator::registry::{ClientCache, RegistryConfig};
use support::images::{ImageSpec, IndexSpec, TestImage};
use support::registry::{
    READER_PASSWORD, READER_USER, RegistryClient, RegistryOptions, Request, TestRegistry,
};

/// Concurrent batches in the one-batch-per-tag variant (as many as the importer runs
/// repositories of one batch).
const PER_TAG_CONCURRENCY: usize = 8;

/// One set of tags imported together.
struct Workload {
    name: &'static str,
    mode: Mode,
    repositories: usize,
    tags: Vec<Tag>,
    /// How many tags phase (c) moves (a different set in each variant).
    moved: usize,
}

struct Tag {
    repo: String,
    tag: String,
    /// Index in the workload (picks seeds).
    n: usize,
    /// What the registry serves under the tag now.
    image: TestImage,
}

impl Workload {
    fn image(&self, n: usize, generation: u64) -> TestImage {
        image_for(self.mode, n, generation)
    }

    fn new(name: &'static str, mode: Mode, repositories: usize, tags: usize, moved: usize) -> Self {
        let mut w = Workload {
            name,
            mode,
            repositories,
            tags: Vec::new(),
            moved,
        };
        let per_repo = tags / repositories;
        w.tags = (0..tags)
            .map(|n| Tag {
                repo: format!("bench/{}{:02}", w.prefix(), n / per_repo),
                tag: format!("t{:02}", n % per_repo),
                n,
                image: w.image(n, 0),
            })
            .collect();
        w
    }

    fn prefix(&self) -> &'static str {
        match self.mode {
            Mode::Legacy => "single",
            Mode::PreserveOriginal => "multi",
        }
    }

    /// The tags moved by `variant` (0, 1, …): evenly spread, a different set per variant.
    fn moved_tags(&self, variant: usize) -> Vec<usize> {
        let step = self.tags.len() / self.moved;
        (0..self.moved)
            .map(|k| k * step + (variant * step / 2) % step)
            .collect()
    }
}

/// Digests of every image `image` stands for: (digest, is a list).
fn digests(image: &TestImage) -> Vec<(String, bool)> {
    let mut out = vec![(image.digest().to_string(), image.is_index())];
    if let Some(index) = image.as_index() {
        out.extend(
            index
                .children
                .iter()
                .map(|c| (c.digest().to_string(), false)),
        );
    }
    out
}

/// Requests by kind, from the access log and the token server.
#[derive(Default, Clone, Debug)]
struct Counts {
    head_manifest: usize,
    get_manifest: usize,
    get_blob: usize,
    tags: usize,
    /// 401 answers (the token handshake's challenge), whatever was asked.
    challenge: usize,
    other: usize,
    token: usize,
}

impl Counts {
    fn of(requests: &[Request], token: usize) -> Counts {
        let mut c = Counts {
            token,
            ..Counts::default()
        };
        for r in requests {
            match kind(r) {
                Kind::Challenge => c.challenge += 1,
                Kind::HeadManifest => c.head_manifest += 1,
                Kind::GetManifest => c.get_manifest += 1,
                Kind::GetBlob => c.get_blob += 1,
                Kind::Tags => c.tags += 1,
                Kind::Other => c.other += 1,
            }
        }
        c
    }

    fn registry(&self) -> usize {
        self.head_manifest
            + self.get_manifest
            + self.get_blob
            + self.tags
            + self.challenge
            + self.other
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Challenge,
    HeadManifest,
    GetManifest,
    GetBlob,
    Tags,
    Other,
}

fn kind(r: &Request) -> Kind {
    if r.status == 401 {
        return Kind::Challenge;
    }
    match (r.method.as_str(), r.path.as_str()) {
        ("HEAD", p) if p.contains("/manifests/") => Kind::HeadManifest,
        ("GET", p) if p.contains("/manifests/") => Kind::GetManifest,
        ("GET", p) if p.contains("/blobs/") => Kind::GetBlob,
        ("GET", p) if p.ends_with("/tags/list") => Kind::Tags,
        _ => Kind::Other,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    First,
    Unchanged,
    Moved,
}

impl Phase {
    fn label(self) -> &'static str {
        match self {
            Phase::First => "(a) first import",
            Phase::Unchanged => "(b) re-check, unchanged",
            Phase::Moved => "(c) re-check, moved",
        }
    }
}

/// What a phase must cost at most.
struct Budget {
    tags: usize,
    repositories: usize,
    new_manifests: usize,
    new_configs: usize,
}

struct Row {
    label: String,
    tags: usize,
    new_images: usize,
    counts: Counts,
    wall: Duration,
    target: String,
    met: bool,
    /// Requests outside the target, aggregated, for the report.
    extra: Vec<String>,
    /// Wrong import results (a correctness failure, not a traffic one).
    errors: Vec<String>,
    /// The 401s, aggregated, shown even when within the target.
    challenges: Vec<String>,
}

fn judge(
    phase: Phase,
    b: &Budget,
    c: &Counts,
    requests: &[Request],
) -> (String, bool, Vec<String>) {
    // Which request kinds the phase may make, and how many of each.
    let (target, allowed): (String, Vec<(Kind, usize)>) = match phase {
        Phase::First => (
            format!(
                "<= {} manifest + {} config GETs, <= {} tokens and 401s",
                b.new_manifests, b.new_configs, b.repositories
            ),
            vec![
                (Kind::GetManifest, b.new_manifests),
                (Kind::GetBlob, b.new_configs),
                (Kind::Challenge, b.repositories),
            ],
        ),
        Phase::Unchanged => (
            format!("== {} HEADs, nothing else", b.tags),
            vec![(Kind::HeadManifest, b.tags)],
        ),
        Phase::Moved => (
            format!(
                "{} HEADs + <= {} manifest + {} config GETs, no token",
                b.tags, b.new_manifests, b.new_configs
            ),
            vec![
                (Kind::HeadManifest, b.tags),
                (Kind::GetManifest, b.new_manifests),
                (Kind::GetBlob, b.new_configs),
            ],
        ),
    };
    let token_budget = if phase == Phase::First {
        b.repositories
    } else {
        0
    };
    let mut extra = Vec::new();
    let mut met = true;
    for k in [
        Kind::HeadManifest,
        Kind::GetManifest,
        Kind::GetBlob,
        Kind::Tags,
        Kind::Challenge,
        Kind::Other,
    ] {
        let n = requests.iter().filter(|r| kind(r) == k).count();
        let limit = allowed.iter().find(|(a, _)| *a == k).map_or(0, |(_, l)| *l);
        let exact = phase == Phase::Unchanged || (phase == Phase::Moved && k == Kind::HeadManifest);
        if n > limit || (exact && n != limit) {
            met = false;
            extra.push(format!("{k:?}: {n} (target {limit})"));
            extra.extend(aggregate(requests.iter().filter(|r| kind(r) == k)));
        }
    }
    if c.token > token_budget {
        met = false;
        extra.push(format!(
            "token requests: {} (target <= {token_budget})",
            c.token
        ));
    }
    (target, met, extra)
}

/// `METHOD /path-with-repo-and-reference STATUS ×n`, paths with tags and digests elided.
fn aggregate<'a>(requests: impl Iterator<Item = &'a Request>) -> Vec<String> {
    let mut m: BTreeMap<String, usize> = BTreeMap::new();
    for r in requests {
        let shape = match r.path.rsplit_once('/') {
            Some((head, _)) => format!("{head}/…"),
            None => r.path.clone(),
        };
        *m.entry(format!("{} {shape} {}", r.method, r.status))
            .or_default() += 1;
    }
    m.into_iter().map(|(k, n)| format!("  {k} ×{n}")).collect()
}

struct Bench {
    reg: TestRegistry,
    pusher: RegistryClient,
    keyring: Keyring,
    settings: Settings,
}

impl Bench {
    async fn push_all(&self, items: Vec<(String, Option<String>, TestImage)>) {
        // repositories in parallel, each repository's pushes in order
        let mut by_repo: BTreeMap<String, Vec<(Option<String>, TestImage)>> = BTreeMap::new();
        for (repo, tag, image) in items {
            by_repo.entry(repo).or_default().push((tag, image));
        }
        futures::stream::iter(by_repo)
            .map(|(repo, items)| async move {
                for (tag, image) in items {
                    match tag {
                        Some(tag) => self.pusher.push(&repo, &tag, &image).await,
                        None => self.pusher.push_by_digest(&repo, &image).await,
                    }
                    .unwrap_or_else(|e| panic!("push {repo}: {e:#}"));
                }
            })
            .buffer_unordered(8)
            .collect::<Vec<()>>()
            .await;
    }

    /// Runs one phase of `w` with `importer` and counts what it cost.
    #[allow(clippy::too_many_arguments)]
    async fn phase(
        &self,
        importer: &Importer,
        known: &mut HashMap<String, bool>,
        current: &mut [Option<String>],
        w: &Workload,
        phase: Phase,
        per_tag: bool,
        moved: &BTreeSet<usize>,
    ) -> Row {
        let expected_new: BTreeMap<String, bool> = w
            .tags
            .iter()
            .flat_map(|t| digests(&t.image))
            .filter(|(d, _)| !known.contains_key(d))
            .collect();
        let budget = Budget {
            tags: w.tags.len(),
            repositories: w.repositories,
            new_manifests: expected_new.len(),
            new_configs: expected_new.values().filter(|list| !**list).count(),
        };
        let imports: Vec<ImageImport> = w
            .tags
            .iter()
            .map(|t| ImageImport {
                current_image: current[t.n].clone(),
                ..ImageImport::new(self.reg.image_ref(&t.repo, &t.tag), w.mode)
            })
            .collect();

        let tokens = self.reg.token_server().expect("token registry");
        let token_mark = tokens.mark();
        let mark = self.reg.mark();
        let now = jiff::Timestamp::now();
        let started = Instant::now();
        let result = if per_tag {
            let parts: Vec<BatchResult> = futures::stream::iter(imports)
                .map(|image| {
                    let batch = Batch {
                        images: vec![image],
                        repository: None,
                    };
                    let known = &*known;
                    async move {
                        importer
                            .import(&batch, &self.keyring, known, &self.settings, now)
                            .await
                    }
                })
                .buffered(PER_TAG_CONCURRENCY)
                .collect()
                .await;
            let mut all = BatchResult::default();
            for part in parts {
                all.images.extend(part.images);
                all.new_images.extend(part.new_images);
            }
            all
        } else {
            let batch = Batch {
                images: imports,
                repository: None,
            };
            importer
                .import(&batch, &self.keyring, &*known, &self.settings, now)
                .await
        };
        let wall = started.elapsed();
        let requests = self.reg.requests_since_async(mark).await;
        let token_requests = tokens.requests_since(token_mark).len();
        let counts = Counts::of(&requests, token_requests);

        // Correctness: each tag at its image; unchanged exactly where nothing moved; the new
        // Images exactly those not known before.
        let mut errors = Vec::new();
        for (t, r) in w.tags.iter().zip(&result.images) {
            match r {
                Err(f) => errors.push(format!("{}:{}: {} {}", t.repo, t.tag, f.reason, f.message)),
                Ok(i) => {
                    if i.image != t.image.digest() {
                        errors.push(format!(
                            "{}:{}: imported {}, registry serves {}",
                            t.repo,
                            t.tag,
                            i.image,
                            t.image.digest()
                        ));
                    }
                    let should_be_unchanged = match phase {
                        Phase::First => false,
                        Phase::Unchanged => true,
                        Phase::Moved => !moved.contains(&t.n),
                    };
                    if i.unchanged != should_be_unchanged {
                        errors.push(format!(
                            "{}:{}: unchanged = {}, expected {should_be_unchanged}",
                            t.repo, t.tag, i.unchanged
                        ));
                    }
                }
            }
        }
        let got: BTreeSet<&String> = result.new_images.keys().collect();
        let want: BTreeSet<&String> = expected_new.keys().collect();
        if got != want {
            errors.push(format!(
                "new Images: {} made, {} expected ({} unexpected, {} missing)",
                got.len(),
                want.len(),
                got.difference(&want).count(),
                want.difference(&got).count()
            ));
        }
        for (digest, image) in &result.new_images {
            known.insert(digest.clone(), image.spec.is_manifest_list());
        }
        for t in &w.tags {
            current[t.n] = Some(t.image.digest().to_string());
        }

        let (target, met, extra) = judge(phase, &budget, &counts, &requests);
        Row {
            label: format!(
                "{:<6} {}{}",
                w.name,
                phase.label(),
                if phase == Phase::Moved {
                    format!(" ({})", moved.len())
                } else {
                    String::new()
                }
            ),
            tags: w.tags.len(),
            new_images: expected_new.len(),
            wall,
            target,
            met: met && errors.is_empty(),
            extra,
            errors,
            challenges: aggregate(requests.iter().filter(|r| kind(r) == Kind::Challenge)),
            counts,
        }
    }

    /// The three phases of `w` with `importer`, as one batch or one batch per tag.
    async fn run(
        &self,
        importer: &Importer,
        w: &mut Workload,
        variant: usize,
        per_tag: bool,
    ) -> Vec<Row> {
        let mut known = HashMap::new();
        let mut current = vec![None; w.tags.len()];
        let mut rows = Vec::new();
        let moved: BTreeSet<usize> = w.moved_tags(variant).into_iter().collect();
        for phase in [Phase::First, Phase::Unchanged, Phase::Moved] {
            if phase == Phase::Moved {
                // Move the tags: the new images' content was pushed up front, only the top
                // manifests are PUT now.
                for t in w.tags.iter_mut().filter(|t| moved.contains(&t.n)) {
                    t.image = image_for(w.mode, t.n, 1 + variant as u64);
                    self.pusher
                        .tag(&t.repo, &t.tag, &t.image)
                        .await
                        .unwrap_or_else(|e| panic!("move {}:{}: {e:#}", t.repo, t.tag));
                }
            }
            rows.push(
                self.phase(
                    importer,
                    &mut known,
                    &mut current,
                    w,
                    phase,
                    per_tag,
                    &moved,
                )
                .await,
            );
        }
        rows
    }
}

/// Tag `n`'s image of `generation` (0: first pushed; 1, 2: what phase (c) moves it to):
/// distinct seeds, so no two tags or generations share an image.
fn image_for(mode: Mode, n: usize, generation: u64) -> TestImage {
    let seed = n as u64 + generation * 1_000;
    match mode {
        Mode::Legacy => ImageSpec::single("amd64", 1 + seed).build().into(),
        Mode::PreserveOriginal => IndexSpec::oci(500_000 + seed).build().into(),
    }
}

/// The production importer as the controller builds it (default transport settings).
fn importer() -> Importer {
    Importer::new(ClientCache::new(
        RegistryConfig::default(),
        256,
        Duration::from_secs(30 * 60),
    ))
}

fn keyring(reg: &TestRegistry) -> Keyring {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("{READER_USER}:{READER_PASSWORD}"));
    let json = format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.addr());
    Keyring::from_file_bytes(json.as_bytes(), "bench").expect("keyring")
}

fn print_table(title: &str, rows: &[Row]) {
    println!("\n{title}");
    println!(
        "{:<33} {:>4} {:>4} {:>5} {:>5} {:>5} {:>4} {:>4} {:>4} {:>5} {:>5} {:>6} {:>9}  target                                                 met",
        "phase",
        "tags",
        "new",
        "HEADm",
        "GETm",
        "GETb",
        "tags",
        "401",
        "oth",
        "token",
        "total",
        "/tag",
        "wall"
    );
    for r in rows {
        let c = &r.counts;
        let total = c.registry() + c.token;
        println!(
            "{:<33} {:>4} {:>4} {:>5} {:>5} {:>5} {:>4} {:>4} {:>4} {:>5} {:>5} {:>6.2} {:>7.0}ms  {:<54} {}",
            r.label,
            r.tags,
            r.new_images,
            c.head_manifest,
            c.get_manifest,
            c.get_blob,
            c.tags,
            c.challenge,
            c.other,
            c.token,
            total,
            total as f64 / r.tags as f64,
            r.wall.as_secs_f64() * 1000.0,
            r.target,
            if r.met { "yes" } else { "NO" }
        );
    }
}

#[tokio::main]
async fn main() {
    support::cluster::install_crypto_provider();
    let reg = RegistryOptions::token().start();
    let bench = Bench {
        pusher: reg.client(),
        keyring: keyring(&reg),
        settings: Settings {
            insecure_registries: vec![reg.addr().to_string()],
            ..Settings::default()
        },
        reg,
    };
    let mut single = Workload::new("single", Mode::Legacy, 20, 200, 20);
    let mut multi = Workload::new("multi", Mode::PreserveOriginal, 10, 50, 5);

    // Everything the phases will see, pushed up front: the tags, and the content (not the
    // tags) of the images phase (c) moves them to in each variant.
    let started = Instant::now();
    let mut pushes = Vec::new();
    for w in [&single, &multi] {
        for t in &w.tags {
            pushes.push((t.repo.clone(), Some(t.tag.clone()), t.image.clone()));
        }
        for variant in 0..2 {
            for n in w.moved_tags(variant) {
                let t = &w.tags[n];
                pushes.push((t.repo.clone(), None, w.image(n, 1 + variant as u64)));
            }
        }
    }
    bench.push_all(pushes).await;
    println!(
        "import traffic: docker-registry with token auth at {} (pushed in {:.1}s); user {READER_USER}",
        bench.reg.addr(),
        started.elapsed().as_secs_f64()
    );

    // One Importer for every phase of a variant, as the operator keeps one: tokens and the
    // registry's token realm stay cached from phase to phase.
    let shared = importer();
    let mut batched = bench.run(&shared, &mut single, 0, false).await;
    batched.extend(bench.run(&shared, &mut multi, 0, false).await);
    let fresh = importer();
    let mut per_tag = bench.run(&fresh, &mut single, 1, true).await;
    per_tag.extend(bench.run(&fresh, &mut multi, 1, true).await);

    print_table(
        "one Batch per phase (one Importer for all phases, tokens cached across phases)",
        &batched,
    );
    print_table(
        &format!(
            "one Batch per tag, {PER_TAG_CONCURRENCY} at a time (a second, fresh Importer for all phases)"
        ),
        &per_tag,
    );
    println!(
        "\nHEADm/GETm: manifest HEAD/GET; GETb: blob (config) GET; 401: challenges (any request \
         answered 401, not counted in the other columns); token: token-server requests; \
         /tag: (registry + token requests) per tag"
    );

    let mut ok = true;
    let variants = [
        ("one Batch per phase", &batched),
        ("one Batch per tag", &per_tag),
    ];
    for (variant, r) in variants
        .iter()
        .flat_map(|(v, rows)| rows.iter().map(move |r| (v, r)))
    {
        if !r.challenges.is_empty() {
            println!("{variant}, {}: 401 challenges:", r.label);
            for line in &r.challenges {
                println!("{line}");
            }
        }
        if !r.met {
            ok = false;
            println!("{variant}, {}: TARGET MISSED", r.label);
            for line in r.extra.iter().chain(&r.errors) {
                println!("  {line}");
            }
        }
    }
    if !ok {
        eprintln!("import_traffic: a target was missed");
        std::process::exit(1);
    }
    println!("all targets met");
}
