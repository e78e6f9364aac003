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

/// What to do with the identity just written: an office key goes into
/// that office's config, the offline recovery key into no config at all.
pub fn written_note(out: &std::path::Path) -> String {
    format!(
        "wrote a new age identity to {} (mode 0600); keep it only in Mexico.\n\
         - the office key (Tijuana): list this file under [privacy] identities in puente.toml, then `systemctl reload puente`\n\
         - the offline recovery key: list it in no config; move the file to paper or a USB stick kept in a safe in Mexico, and keep no copy on a server",
        out.display()
    )
}

pub fn run(args: KeygenArgs) -> Result<()> {
    let out = &args.out;
    let recipient = generate_identity_file(out, jiff::Timestamp::now())?;
    eprintln!("{}", written_note(out));
    eprintln!("its recipient (add it to the schema's group, e.g. mx = [\"…\"]):");
    println!("{recipient}");
    Ok(())
}
