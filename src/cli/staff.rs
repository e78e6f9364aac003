//! `puente staff add|list|remove`: the office's web logins, through the
//! admin socket (admin role).
//!
//! Owns: printing a new member's login link and calendar address once,
//! with what to do with them, and the list of staff.
//! Must not: keep or log a token (it goes to stdout once).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use zeroize::Zeroizing;

use super::call::{self, DaemonTarget};
use crate::admin::Client;
use crate::api::staff::StaffAdded;

#[derive(clap::Subcommand)]
pub enum StaffCommand {
    /// Give one person a login link for the web agenda and a calendar feed
    /// address (both shown once).
    Add {
        name: String,
        /// viewer (reads), editor (also creates, edits and cancels events)
        /// or admin (also sees sync status).
        #[arg(long)]
        role: String,
        #[command(flatten)]
        target: DaemonTarget,
        #[arg(long)]
        json: bool,
    },
    /// List the staff who have a login.
    List {
        #[command(flatten)]
        target: DaemonTarget,
        #[arg(long)]
        json: bool,
    },
    /// Remove a login: their link and feed stop working, their sessions end.
    Remove {
        name: String,
        #[command(flatten)]
        target: DaemonTarget,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: StaffCommand) -> Result<()> {
    match command {
        StaffCommand::Add {
            name,
            role,
            target,
            json,
        } => add(&target.socket()?, &name, &role, json),
        StaffCommand::List { target, json } => list(&target.socket()?, json),
        StaffCommand::Remove { name, target, json } => remove(&target.socket()?, &name, json),
    }
}

/// What `staff add` prints for people.
pub fn added_text(a: &StaffAdded) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::new());
    let _ = writeln!(out, "Added {} as {}.", a.name, a.role);
    let _ = writeln!(out);
    match (&a.login_url, &a.calendar_url) {
        (Some(login), Some(calendar)) => {
            let _ = match a.links_warning {
                None => writeln!(out, "Login link (open it on their phone or computer):"),
                Some(_) => writeln!(
                    out,
                    "Login link (opens on this server only; see the warning below):"
                ),
            };
            let _ = writeln!(out, "  {login}");
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "Calendar feed (add it as a subscribed calendar, e.g. \"Add calendar > From URL\"):"
            );
            let _ = writeln!(out, "  {calendar}");
            if let Some(warning) = &a.links_warning {
                let _ = writeln!(out);
                let _ = writeln!(out, "WARNING: {warning}.");
            }
        }
        _ => {
            let _ = writeln!(out, "Login token:    {}", a.login_token);
            let _ = writeln!(out, "Calendar token: {}", a.calendar_token);
            let _ = writeln!(
                out,
                "(The web agenda is off: add a [web] section to the node config and restart puente to use them.)"
            );
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Both are shown only now and work until `puente staff remove {:?}`. Give them to {} only.",
        a.name, a.name
    );
    out
}

fn add(socket: &Path, name: &str, role: &str, json: bool) -> Result<()> {
    let added = call::run(async { Ok(Client::new(socket).add_staff(name, role).await?) })?;
    if json {
        let text = Zeroizing::new(serde_json::to_string_pretty(&added)? + "\n");
        return call::emit(text.as_bytes());
    }
    call::emit(added_text(&added).as_bytes())
}

fn list(socket: &Path, json: bool) -> Result<()> {
    let list = call::run(async { Ok(Client::new(socket).list_staff().await?) })?;
    if json {
        return call::emit((serde_json::to_string_pretty(&list)? + "\n").as_bytes());
    }
    let mut out = String::new();
    if list.staff.is_empty() {
        out.push_str("no staff logins yet; add one with `puente staff add NAME --role viewer|editor|admin`\n");
    } else {
        let width = list
            .staff
            .iter()
            .map(|s| s.name.chars().count())
            .max()
            .unwrap_or(0);
        for s in &list.staff {
            let pad = width - s.name.chars().count();
            let _ = writeln!(
                out,
                "{}{}  {:<6}  added {}",
                s.name,
                " ".repeat(pad),
                s.role,
                s.added
            );
        }
    }
    match &list.web {
        Some(url) => {
            let _ = writeln!(out, "\nweb agenda: {url}");
        }
        None => out.push_str("\nthe web agenda is off (no [web] section in the node config)\n"),
    }
    call::emit(out.as_bytes())
}

fn remove(socket: &Path, name: &str, json: bool) -> Result<()> {
    let removed = call::run(async { Ok(Client::new(socket).remove_staff(name).await?) })?;
    if json {
        return call::emit((serde_json::to_string_pretty(&removed)? + "\n").as_bytes());
    }
    call::emit(format!(
        "removed {}: their login link and calendar address no longer work, and their open sessions have ended\n",
        removed.name
    )
    .as_bytes())
}
