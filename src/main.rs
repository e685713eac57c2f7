//! The `imagestream-operator` binary: command-line parsing and start-up only.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use imagestream_operator::crd;

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
}

fn main() -> anyhow::Result<()> {
    // One process-wide TLS provider for kube, the registry client and our servers; with two
    // compiled in, rustls would otherwise panic when the first client is built.
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was already installed"))?;

    match Cli::parse().command {
        Command::Crds { output_dir } => write_crds(output_dir),
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
