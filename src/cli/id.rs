//! `puente id`: this node's certificate fingerprint, one line to pin
//! elsewhere.
//!
//! Owns: the command's argument and its one line of output.
//! Must not: read anything but the config and the certificate it names.

use std::path::PathBuf;

use anyhow::Result;

use crate::config::NodeConfig;
use crate::config::node::DEFAULT_CONFIG_PATH;
use crate::node::identity;

#[derive(clap::Args)]
pub struct IdArgs {
    #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
}

pub fn run(args: IdArgs) -> Result<()> {
    let cfg = NodeConfig::load(&args.config)?;
    let fp = identity::certificate_fingerprint(&cfg.tls_cert)?;
    println!("{fp}");
    Ok(())
}
