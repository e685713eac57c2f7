//! The `imagestream-operator` binary: command-line parsing and start-up only.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use imagestream_operator::import::contract::Mode;
use imagestream_operator::inspect;
use imagestream_operator::{admission, crd, operator};

#[derive(Parser)]
#[command(name = "imagestream-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print every CustomResourceDefinition as YAML, or write one file per CRD.
    Crds {
        /// Write `<plural>.<group>.yaml` files into this directory instead of printing.
        #[arg(long)]
        output_dir: Option<PathBuf>,
    },
    /// Serve the admission webhooks and run the controllers against the cluster of the
    /// current kubeconfig (or in-cluster configuration) until SIGINT/SIGTERM.
    Run {
        /// Namespace the operator runs in (its additionalTrustedCA ConfigMap lives there).
        #[arg(long, env = "POD_NAMESPACE", default_value = "imagestream-operator")]
        namespace: String,
        /// Only watch this namespace (default: every namespace).
        #[arg(long)]
        watch_namespace: Option<String>,
        /// Streams reconciled at the same time.
        #[arg(long, default_value_t = 16)]
        concurrency: u16,
        /// Port of the admission webhooks' HTTPS server.
        #[arg(long, default_value_t = imagestream_operator::admission::DEFAULT_PORT)]
        webhook_port: u16,
        /// The Service in front of the webhooks (port 443), in `--namespace`.
        #[arg(long, default_value = "imagestream-operator")]
        webhook_service: String,
        /// Register the webhooks by URL (`https://host:port`) instead of by Service, for an
        /// operator running outside the cluster; the host goes into the serving certificate.
        #[arg(long, value_name = "URL", conflicts_with = "webhook_service")]
        webhook_url: Option<String>,
        /// Do not serve the admission webhooks (another deployment serves them). Without
        /// them, streams written meanwhile get no tag generations.
        #[arg(long, conflicts_with_all = ["webhook_url", "webhook_port"])]
        no_webhooks: bool,
        /// Do not resolve short image names in Pods and pod templates through streams with
        /// `lookupPolicy.local` (the image lookup webhook is then not registered).
        #[arg(long)]
        no_image_lookup: bool,
        /// Only send the image lookup webhook Pods of namespaces matching this label selector,
        /// as JSON (`{"matchLabels": {…}, "matchExpressions": […]}`); the operator's namespace
        /// and kube-system stay out either way.
        #[arg(long, value_name = "JSON", value_parser = parse_label_selector, conflicts_with = "no_image_lookup")]
        image_lookup_namespace_selector: Option<LabelSelector>,
        /// Do not serve registry notifications (ImageReceivers) beside the webhooks.
        #[arg(long)]
        no_receivers: bool,
        /// Run the controllers without leader election (one replica only).
        #[arg(long)]
        no_leader_elect: bool,
        /// Do not run the image change trigger controller: workloads annotated with
        /// image.openshift.io/triggers are left alone, and its rights (the
        /// imagestream-operator-triggers ClusterRole) are not needed.
        #[arg(long)]
        no_image_triggers: bool,
        /// This replica's name in the leader Lease (default: the host name and process id).
        #[arg(long, env = "POD_NAME")]
        leader_identity: Option<String>,
        /// This replica's IP address: the leader keeps `<ip>:<webhook port>` in its Lease, and
        /// the other replicas forward registry notifications there.
        #[arg(long, env = "POD_IP")]
        pod_ip: Option<String>,
        /// Port of /livez, /readyz and /metrics (plain HTTP); 0 turns them off.
        #[arg(long, default_value_t = imagestream_operator::probes::DEFAULT_PORT)]
        metrics_port: u16,
        /// Log format.
        #[arg(long, value_enum, default_value = "text", env = "LOG_FORMAT")]
        log_format: LogFormat,
        /// After SIGTERM, seconds reconciles in flight may take to finish before they are
        /// dropped; keep it below the Pod's terminationGracePeriodSeconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 20)]
        shutdown_grace: u64,
    },
    /// Import one image the way the operator would, and print the resulting Image objects.
    ///
    /// Exits non-zero with the status reason (NotFound, Unauthorized, BadRequest, ...) and
    /// message when the import fails.
    Inspect {
        /// The pull spec, e.g. `quay.io/org/app:v1`, `nginx`, `registry:5000/a/b@sha256:...`.
        reference: String,
        /// Skip TLS verification, and fall back to plain HTTP.
        #[arg(long)]
        insecure: bool,
        /// Credentials: a pull Secret (YAML or JSON), a docker config.json or a .dockercfg.
        #[arg(long, value_name = "FILE")]
        pull_secret: Option<PathBuf>,
        /// Extra CA certificates (PEM) to trust.
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
        /// How a manifest list is imported.
        #[arg(long, value_enum, default_value = "legacy")]
        import_mode: ImportMode,
        /// The platform Legacy mode picks from a manifest list (os/arch[/variant]).
        #[arg(long, value_parser = parse_platform)]
        platform: Option<imagestream_operator::config::Platform>,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "yaml")]
        output: inspect::Output,
        /// List every registry request on stderr.
        #[arg(short, long)]
        verbose: bool,
        /// Time limit for each registry request, in seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ImportMode {
    Legacy,
    PreserveOriginal,
}

fn parse_label_selector(s: &str) -> Result<LabelSelector, String> {
    serde_json::from_str(s).map_err(|e| format!("not a label selector in JSON: {e}"))
}

fn parse_platform(s: &str) -> Result<imagestream_operator::config::Platform, String> {
    inspect::parse_platform(s).map_err(|e| e.to_string())
}

fn main() -> anyhow::Result<()> {
    // One process-wide TLS provider for kube, the registry client and our servers; with two
    // compiled in, rustls would otherwise panic when the first client is built.
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was already installed"))?;

    match Cli::parse().command {
        Command::Crds { output_dir } => write_crds(output_dir),
        Command::Run {
            namespace,
            watch_namespace,
            concurrency,
            webhook_port,
            webhook_service,
            webhook_url,
            no_webhooks,
            no_image_lookup,
            image_lookup_namespace_selector,
            no_receivers,
            no_leader_elect,
            no_image_triggers,
            leader_identity,
            pod_ip,
            metrics_port,
            log_format,
            shutdown_grace,
        } => {
            let identity = leader_identity.unwrap_or_else(|| {
                let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "operator".into());
                format!("{host}-{}", std::process::id())
            });
            let leader = (!no_leader_elect).then(|| {
                imagestream_operator::leader::LeaderOptions::new(
                    &namespace,
                    "imagestream-operator",
                    &identity,
                )
            });
            let webhooks = (!no_webhooks).then(|| {
                let mut admission = match webhook_url {
                    Some(url) => by_url(&namespace, &webhook_service, url),
                    None => admission::Options::in_cluster(&namespace, &webhook_service),
                };
                admission.registration.image_lookup =
                    (!no_image_lookup).then(|| admission::LookupRegistration {
                        only_namespace: watch_namespace.clone(),
                        selector: image_lookup_namespace_selector,
                        ..admission::LookupRegistration::in_cluster(&namespace)
                    });
                Webhooks {
                    port: webhook_port,
                    advertise: pod_ip.map(|ip| match ip.parse::<std::net::Ipv6Addr>() {
                        Ok(_) => format!("[{ip}]:{webhook_port}"),
                        Err(_) => format!("{ip}:{webhook_port}"),
                    }),
                    admission,
                    receivers: !no_receivers,
                }
            });
            let controllers = imagestream_operator::controller::Options {
                namespace,
                watch_namespace,
                concurrency,
                settings: None,
                metrics: Default::default(),
                pruner: Some(Default::default()),
                image_triggers: !no_image_triggers,
                in_flight: Default::default(),
                receivers: None,
                caches: None,
                keys_reread: None,
            };
            let started = Started {
                metrics_port,
                log_format,
                shutdown_grace: std::time::Duration::from_secs(shutdown_grace),
            };
            run_operator(controllers, webhooks, leader, started)
        }
        Command::Inspect {
            reference,
            insecure,
            pull_secret,
            ca_file,
            import_mode,
            platform,
            output,
            verbose,
            timeout,
        } => {
            let options = inspect::Options {
                reference,
                insecure,
                pull_secret,
                ca_file,
                mode: match import_mode {
                    ImportMode::Legacy => Mode::Legacy,
                    ImportMode::PreserveOriginal => Mode::PreserveOriginal,
                },
                platform,
                output,
                verbose,
                timeout: std::time::Duration::from_secs(timeout.max(1)),
            };
            run_inspect(&options)
        }
    }
}

/// The webhook server to start.
struct Webhooks {
    port: u16,
    /// `ip:port` for the other replicas.
    advertise: Option<String>,
    admission: admission::Options,
    /// Registry notifications served beside them.
    receivers: bool,
}

/// Registration by URL: the certificate names the URL's host.
fn by_url(namespace: &str, service: &str, url: String) -> admission::Options {
    let mut options = admission::Options::in_cluster(namespace, service);
    let host = url
        .trim_start_matches("https://")
        .split(['/', '?'])
        .next()
        .unwrap_or_default();
    let host = match host.rsplit_once(':') {
        // host:port, but not a bare IPv6 address
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => host,
    };
    options.dns_names = vec![
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    ];
    options.registration.endpoint = admission::Endpoint::Url(url);
    options
}

/// How the process itself runs.
struct Started {
    metrics_port: u16,
    log_format: LogFormat,
    shutdown_grace: std::time::Duration,
}

fn run_operator(
    controllers: imagestream_operator::controller::Options,
    webhooks: Option<Webhooks>,
    leader: Option<imagestream_operator::leader::LeaderOptions>,
    started: Started,
) -> anyhow::Result<()> {
    let Started {
        metrics_port,
        log_format,
        shutdown_grace,
    } = started;
    // level from RUST_LOG (default info); credentials are never logged by the library
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let config = kube::Config::infer()
            .await
            .context("connecting to the cluster")?;
        // every request timed, for the apiserver latency the operator sees
        let client = imagestream_operator::api_latency::client(config, controllers.metrics.clone())
            .context("connecting to the cluster")?;
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
            tracing::info!("shutting down");
        };
        let webhooks = match webhooks {
            Some(w) => {
                let listener = tokio::net::TcpListener::bind(("0.0.0.0", w.port))
                    .await
                    .with_context(|| format!("listening on port {}", w.port))?;
                Some(operator::WebhookOptions {
                    listener,
                    admission: w.admission,
                    advertise: w.advertise,
                    receivers: w.receivers,
                })
            }
            None => None,
        };
        let probes = if metrics_port == 0 {
            None
        } else {
            Some(
                tokio::net::TcpListener::bind(("0.0.0.0", metrics_port))
                    .await
                    .with_context(|| format!("listening on port {metrics_port}"))?,
            )
        };
        let options = operator::Options {
            controllers,
            webhooks,
            leader,
            probes,
            shutdown_grace,
        };
        operator::run(client, options, shutdown)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", e.reason()))
    })
}

fn run_inspect(options: &inspect::Options) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr();
    match runtime.block_on(inspect::run(options, &mut stdout, &mut stderr)) {
        Ok(()) => Ok(()),
        Err(err) => {
            eprintln!("error: {}: {err}", err.reason());
            std::process::exit(1);
        }
    }
}

fn write_crds(output_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let crds = crd::all();
    match output_dir {
        None => {
            for c in &crds {
                print!("---\n{}", crd::to_yaml(c)?);
            }
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for c in &crds {
                let path = dir.join(crd::file_name(c));
                std::fs::write(&path, crd::to_yaml(c)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    Ok(())
}
