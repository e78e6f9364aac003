//! `puente held list|accept|discard`: changes peers sent that their
//! office may not make, through the admin socket (admin role).
//!
//! Owns: printing the held list for people (what, from whom, why, and how
//! to decide) and what a decision did.
//! Must not: decide anything (the daemon's store does).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use super::call::{self, DaemonTarget};
use crate::admin::Client;
use crate::api::held::{HeldDecision, HeldEntry};

#[derive(clap::Subcommand)]
pub enum HeldCommand {
    /// List the changes held for review, oldest first.
    List {
        /// Also those already accepted or discarded.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        target: DaemonTarget,
        #[arg(long)]
        json: bool,
    },
    /// Apply a held change as if its office had been allowed to make it.
    Accept {
        /// Its number in `puente held list`.
        id: i64,
        #[command(flatten)]
        target: DaemonTarget,
        #[arg(long)]
        json: bool,
    },
    /// Drop a held change and keep this office's version (written again
    /// so that the peer takes it back, where that can be done).
    Discard {
        /// Its number in `puente held list`.
        id: i64,
        #[command(flatten)]
        target: DaemonTarget,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: HeldCommand) -> Result<()> {
    match command {
        HeldCommand::List { all, target, json } => list(&target.socket()?, all, json),
        HeldCommand::Accept { id, target, json } => decide(&target.socket()?, id, true, json),
        HeldCommand::Discard { id, target, json } => decide(&target.socket()?, id, false, json),
    }
}

/// One held change as a block of lines.
pub fn entry_text(out: &mut String, h: &HeldEntry) {
    let what = match h.kind.as_str() {
        "delete" => format!("delete {}/{}", h.table, h.row),
        kind => format!("{kind} {}/{} ({})", h.table, h.row, h.columns.join(", ")),
    };
    let _ = writeln!(out, "#{}  {what}", h.id);
    let from = if h.origin == h.peer {
        format!("from {}", h.peer)
    } else {
        format!("from {}, sent by {}", h.origin, h.peer)
    };
    let _ = writeln!(out, "    {from}, held {} (stamp {})", h.held_at, h.hlc);
    let _ = writeln!(out, "    why: {}", h.why);
    if h.state != "held" {
        let by = h
            .decided_by
            .map_or(String::new(), |u| format!(" by uid {u}"));
        let at = h.decided_at.as_deref().unwrap_or("?");
        let _ = writeln!(out, "    {}{by} at {at}", h.state);
    }
    if let Some(note) = &h.note {
        let _ = writeln!(out, "    {note}");
    }
}

/// The list as people read it.
pub fn list_text(held: &[HeldEntry], all: bool) -> String {
    let mut out = String::new();
    if held.is_empty() {
        out.push_str(if all {
            "no change was ever held: every change from the peers was theirs to make\n"
        } else {
            "no change is held for review\n"
        });
        return out;
    }
    for h in held {
        entry_text(&mut out, h);
    }
    let waiting = held.iter().filter(|h| h.state == "held").count();
    if waiting > 0 {
        let _ = writeln!(
            out,
            "\n{waiting} waiting: `puente held accept N` applies one as if it had been allowed; `puente held discard N` keeps this office's version"
        );
    }
    out
}

fn list(socket: &Path, all: bool, json: bool) -> Result<()> {
    let list = call::run(async { Ok(Client::new(socket).list_held(all).await?) })?;
    if json {
        return call::emit((serde_json::to_string_pretty(&list)? + "\n").as_bytes());
    }
    call::emit(list_text(&list.held, all).as_bytes())
}

/// What a decision did, as people read it.
pub fn decision_text(d: &HeldDecision) -> String {
    let mut out = String::new();
    let h = &d.change;
    let done = match h.state.as_str() {
        "accepted" => format!(
            "accepted #{}: applied {} {} to {}/{}; it reaches the other offices at the next sync",
            h.id,
            d.written,
            if d.written == 1 { "change" } else { "changes" },
            h.table,
            h.row
        ),
        _ => format!(
            "discarded #{}: this office keeps its version of {}/{}",
            h.id, h.table, h.row
        ),
    };
    let _ = writeln!(out, "{done}");
    if let Some(note) = &h.note {
        let _ = writeln!(out, "{note}");
    }
    out
}

fn decide(socket: &Path, id: i64, accept: bool, json: bool) -> Result<()> {
    let decided = call::run(async { Ok(Client::new(socket).decide_held(id, accept).await?) })?;
    if json {
        return call::emit((serde_json::to_string_pretty(&decided)? + "\n").as_bytes());
    }
    call::emit(decision_text(&decided).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: &str, state: &str) -> HeldEntry {
        HeldEntry {
            id: 3,
            peer: "san-diego".into(),
            origin: "san-diego".into(),
            origin_site: "ab".into(),
            table: "residents".into(),
            row: "r1".into(),
            kind: kind.into(),
            columns: if kind == "delete" {
                vec![]
            } else {
                vec!["case_notes".into()]
            },
            hlc: "2027-01-15T10:00:00.000Z/0".into(),
            why: "san-diego may not delete rows of residents (rights: delete = tijuana)".into(),
            held_at: "2027-01-15T10:00:01Z".into(),
            state: state.into(),
            decided_by: (state != "held").then_some(1000),
            decided_at: (state != "held").then(|| "2027-01-16T09:00:00Z".into()),
            diverges: false,
            note: None,
        }
    }

    #[test]
    fn the_list_says_what_from_whom_why_and_how_to_decide() {
        let text = list_text(
            &[entry("delete", "held"), entry("update", "accepted")],
            true,
        );
        for want in [
            "#3  delete residents/r1",
            "    from san-diego, held 2027-01-15T10:00:01Z",
            "    why: san-diego may not delete rows of residents (rights: delete = tijuana)",
            "#3  update residents/r1 (case_notes)",
            "    accepted by uid 1000 at 2027-01-16T09:00:00Z",
            "1 waiting: `puente held accept N`",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert_eq!(list_text(&[], false), "no change is held for review\n");
        let mut relayed = entry("delete", "held");
        relayed.origin = "unknown site 0a0b".into();
        assert!(list_text(&[relayed], false).contains("from unknown site 0a0b, sent by san-diego"));
    }
}
