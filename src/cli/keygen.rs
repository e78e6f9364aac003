//! `puente keygen`: a new age identity (mode 0600) and its recipient.
//!
//! Owns: the command's argument and what it prints: the recipient on
//! standard output, what to do with the identity on standard error.
//! Must not: print the identity.

use std::path::PathBuf;

use anyhow::Result;

use crate::seal::generate_identity_file;

#[derive(clap::Args)]
pub struct KeygenArgs {
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: KeygenArgs) -> Result<()> {
    let out = &args.out;
    let recipient = generate_identity_file(out, jiff::Timestamp::now())?;
    eprintln!(
        "wrote a new age identity to {} (mode 0600); keep it only in Mexico, and list it under [privacy] identities",
        out.display()
    );
    eprintln!("its recipient (add it to the schema's group, e.g. mx = [\"…\"]):");
    println!("{recipient}");
    Ok(())
}
