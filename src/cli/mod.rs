//! The command-line edge: each `puente` subcommand as a function.
//!
//! Owns: turning parsed arguments into calls on the library and printing
//! results for people (or JSON for scripts). `anyhow` lives here only.
//! Must not: hold logic the daemon or tests need (that lives in the library).

pub mod local;
pub mod remote;

use std::path::Path;

pub fn bench(opts: &crate::bench::BenchOptions, json: Option<&Path>) -> anyhow::Result<()> {
    let report = crate::bench::run(opts)?;
    print!("{}", crate::bench::report::render(&report));
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        println!("\nwrote {}", path.display());
    }
    Ok(())
}

pub use local::{check, id, init, keygen, peer_add};
