//! `basalt certs`: CURVE certificates for an encrypted master↔slave link.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::transport::Certificate;

/// `basalt certs ...`
#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// Write a new key pair: DIR/NAME.key (public: give it to the other side) and
    /// DIR/NAME.key_secret (secret: keep it where it is), in ZMQ's format, as pyzmq's
    /// create_certificates and LAVA's create_certificate.py write them. For a slave, NAME is
    /// its worker name: the master admits WORKER.key for that worker only.
    Generate(GenerateArgs),
}

/// Flags of `basalt certs generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// The certificate's name: `master`, or the slave's worker name.
    pub name: String,
    /// Where to write the two files.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
}

/// Runs a `certs` command.
pub fn run(command: &CertsCommand) -> anyhow::Result<ExitCode> {
    match command {
        CertsCommand::Generate(args) => {
            if !crate::store::is_valid_name(&args.name) {
                anyhow::bail!(
                    "{:?} is not a usable name: letters, digits, '-', '_' and '.' only",
                    args.name
                );
            }
            std::fs::create_dir_all(&args.dir)
                .with_context(|| format!("cannot create {}", args.dir.display()))?;
            let pair = Certificate::generate()?;
            let (public, secret) = pair.write_pair(&args.dir, &args.name)?;
            println!("public key {}", pair.public_z85());
            println!("wrote {} and {}", public.display(), secret.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
