//! `puente status`: the node's status and one line per peer, as people
//! read it (or the status document as JSON).
//!
//! Owns: the command's arguments and the rendering of the status
//! document: node, replica, keys, reseal and reload, each peer's state,
//! catch-up and held changes.
//! Must not: decide what a state means (node/status.rs fills the
//! document in).

use std::fmt::Write as _;

use anyhow::Result;

use super::call::{self, DaemonTarget, emit, emit_json};
use super::reseal::progress_line;
use crate::admin::Client;
use crate::node::status::{AtRestStatus, PeerState, PeerStatus, Status};

#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    target: DaemonTarget,
    #[arg(long)]
    json: bool,
}

pub fn run(args: StatusArgs) -> Result<()> {
    let socket = args.target.socket()?;
    let status = call::run(async { Ok(Client::new(&socket).status().await?) })?;
    if args.json {
        return emit_json(&status);
    }
    emit(render_status(&status).as_bytes())
}

/// "encrypted (SQLCipher 4.20.0, key from file)" or "NOT encrypted: …".
fn at_rest_line(a: &AtRestStatus) -> String {
    if !a.encrypted {
        return "NOT encrypted: anyone who copies the data dir can read the replica (`puente storage encrypt` encrypts it)".into();
    }
    let version = a
        .cipher
        .as_deref()
        .and_then(|c| c.split_whitespace().next())
        .unwrap_or("?");
    match &a.key_source {
        Some(source) => format!("encrypted (SQLCipher {version}, key from {source})"),
        None => format!("encrypted (SQLCipher {version})"),
    }
}

/// An instant as people at the office read it: in the office's zone
/// (`zone`, an IANA name; UTC when empty or unknown).
pub fn office_time(at_ms: u64, zone: &str) -> String {
    let tz = jiff::tz::TimeZone::get(zone).unwrap_or(jiff::tz::TimeZone::UTC);
    match jiff::Timestamp::from_millisecond(at_ms as i64) {
        Ok(t) => t
            .to_zoned_datetime(tz)
            .strftime("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
        Err(_) => at_ms.to_string(),
    }
}

/// The status document for people.
pub fn render_status(s: &Status) -> String {
    let mut out = String::new();
    let line = |out: &mut String, key: &str, value: &str| {
        let _ = writeln!(out, "{key:<11} {value}");
    };
    line(
        &mut out,
        "node",
        &format!(
            "{}  (puente {}, up {})",
            s.node,
            s.version,
            duration(s.uptime_s)
        ),
    );
    if !s.time_zone.is_empty() {
        line(&mut out, "time zone", &s.time_zone);
    }
    line(&mut out, "head", &s.head.to_string());
    line(&mut out, "digest", &short(&s.digest));
    let rows = s
        .rows
        .iter()
        .map(|(t, n)| format!("{t} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = if s.tombstones > 0 {
        format!("{rows}  ({} deleted)", s.tombstones)
    } else {
        rows
    };
    line(&mut out, "rows", &rows);
    line(&mut out, "sealed", &format!("{} cells", s.sealed_cells));
    let unseal = if s.can_unseal.is_empty() {
        "no (this node holds no identity)".to_string()
    } else {
        format!("yes: {}", s.can_unseal.join(", "))
    };
    line(&mut out, "can unseal", &unseal);
    line(&mut out, "at rest", &at_rest_line(&s.at_rest));
    render_maintenance(&mut out, s);
    if s.peers.is_empty() {
        line(
            &mut out,
            "peers",
            "none pinned (`puente peer add` pins one)",
        );
    } else {
        out.push_str("peers\n");
        let width = s.peers.iter().map(|p| p.name.len()).max().unwrap_or(0);
        for p in &s.peers {
            render_peer(&mut out, p, width);
        }
    }
    if !s.refused.is_empty() {
        out.push_str("refused connections (most recent last)\n");
        for r in &s.refused {
            let at = office_time(r.at_ms, &s.time_zone);
            let _ = writeln!(out, "  {at}  {}  {}", r.remote_address, r.reason);
        }
    }
    if s.held > 0 {
        line(
            &mut out,
            "held",
            &format!(
                "{} {} from peers that their office may not make, waiting for review: `puente held list`",
                s.held,
                if s.held == 1 { "change" } else { "changes" }
            ),
        );
    }
    if s.garbage_datagrams > 0 {
        line(
            &mut out,
            "garbage",
            &format!(
                "{} datagrams on the sync port were not QUIC (dropped)",
                s.garbage_datagrams
            ),
        );
    }
    out
}

/// Status lines for keys, reseal, reload and retired site ids.
fn render_maintenance(out: &mut String, s: &Status) {
    let old: Vec<String> = s
        .sealed_to_old_keys
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(g, n)| format!("{g} {n}"))
        .collect();
    if !old.is_empty() {
        let _ = writeln!(
            out,
            "{:<11} {} cells sealed to an old recipient set (`puente reseal` at an office holding the key)",
            "old keys",
            old.join(", ")
        );
    }
    if let Some(r) = &s.reseal {
        let _ = writeln!(out, "{:<11} {}", "reseal", progress_line(r));
    }
    if let Some(r) = &s.reload {
        let at = office_time(r.at_ms, &s.time_zone);
        let what = if r.applied {
            "applied"
        } else {
            "REFUSED (running config kept)"
        };
        let _ = writeln!(out, "{:<11} {at} {what}", "reload");
        for m in &r.messages {
            let _ = writeln!(out, "{:<11}   {m}", "");
        }
    }
    if !s.retired_sites.is_empty() {
        let _ = writeln!(
            out,
            "{:<11} {} (restored from a backup)",
            "retired ids",
            s.retired_sites.join(", ")
        );
    }
}

fn render_peer(out: &mut String, p: &PeerStatus, width: usize) {
    let mut parts = Vec::new();
    parts.push(match p.state {
        PeerState::Connected => "connected".to_string(),
        PeerState::Connecting => "connecting".to_string(),
        PeerState::Waiting => "waiting for it to connect".to_string(),
        PeerState::Refused => format!(
            "refused: {}",
            p.detail.as_deref().unwrap_or("no reason given")
        ),
    });
    if let Some(rtt) = p.rtt_ms {
        parts.push(format!("rtt {rtt:.0} ms"));
    }
    match (p.in_sync, p.we_owe, p.they_owe) {
        (Some(true), _, _) => parts.push("in sync".to_string()),
        (_, _, _) if p.held_note.is_some() => {
            parts.push("caught up, with held changes".to_string())
        }
        (_, Some(we), Some(they)) => parts.push(format!("behind: we owe {we}, they owe {they}")),
        (_, Some(we), None) => parts.push(format!("behind: we owe {we}")),
        (_, None, Some(they)) => parts.push(format!("behind: they owe {they}")),
        _ => {}
    }
    if let Some(skew) = p.clock_skew_ms.filter(|s| s.abs() >= 1000) {
        parts.push(format!("clock skew {:+.1} s", skew as f64 / 1000.0));
    }
    let _ = writeln!(out, "  {:width$}  {}", p.name, parts.join("  "));
    if let Some(note) = &p.held_note {
        let _ = writeln!(out, "  {:width$}  {note}", "");
    } else if p.held > 0 {
        let _ = writeln!(
            out,
            "  {:width$}  {} {} from {} held for review (`puente held list`)",
            "",
            p.held,
            if p.held == 1 { "change" } else { "changes" },
            p.name
        );
    }
    if let Some(a) = &p.clock_ahead {
        let _ = writeln!(
            out,
            "  {:width$}  clock ahead: {} stamped changes {} ahead of this office's clock (more than the {} allowed); they are held until this clock catches up: check NTP at {}",
            "",
            a.office,
            crate::store::words_for_ms(a.ahead_ms),
            crate::store::words_for_ms(a.max_drift_ms),
            a.office
        );
    }
    for why in &p.held_reasons {
        let _ = writeln!(out, "  {:width$}  held: {why}", "");
    }
    for (c, verb, who) in [
        (&p.receiving, "received", "catching up"),
        (&p.sending, "sent", "it catches up"),
    ] {
        if let Some(c) = c {
            let eta = match c.eta_s {
                Some(s) => format!(", about {} left", duration(s.ceil() as u64)),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "  {:width$}  {who}: {} changes {verb}, {} to go{eta}",
                "", c.done, c.left
            );
        }
    }
    if let Some(e) = &p.last_error {
        let _ = writeln!(out, "  {:width$}  last error: {e}", "");
    }
}

fn short(digest: &str) -> String {
    match digest.get(..16) {
        Some(head) if digest.len() > 16 => format!("{head}…"),
        _ => digest.to_string(),
    }
}

fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s:02}s"),
        (0, _, _) => format!("{h}h {m:02}m"),
        _ => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::status::PeerCounters;

    #[test]
    fn status_reads_as_a_summary() {
        let peer = |name: &str, state| PeerStatus {
            name: name.into(),
            fingerprint: "sha256:00".into(),
            address: None,
            state,
            detail: None,
            direction: None,
            remote_address: None,
            site_id: None,
            rtt_ms: None,
            last_contact_ms: None,
            we_owe: None,
            they_owe: None,
            peer_head: None,
            peer_digest: None,
            in_sync: None,
            clock_skew_ms: None,
            clock_ahead: None,
            last_error: None,
            protocol: None,
            schema_differences: vec![],
            schema_advice: None,
            held: 0,
            held_diverged: 0,
            held_reasons: vec![],
            held_note: None,
            counters: PeerCounters::default(),
            receiving: None,
            sending: None,
        };
        let mut sd = peer("san-diego", PeerState::Connected);
        sd.rtt_ms = Some(14.2);
        sd.in_sync = Some(true);
        let mut ens = peer("ensenada", PeerState::Connected);
        (ens.we_owe, ens.they_owe, ens.in_sync) = (Some(12), Some(0), Some(false));
        let mut rogue = peer("rogue", PeerState::Connected);
        (rogue.we_owe, rogue.they_owe, rogue.in_sync) = (Some(0), Some(0), Some(false));
        rogue.held = 2;
        rogue.held_reasons =
            vec!["rogue may not delete rows of residents (rights: delete = tijuana)".into()];
        rogue.held_note = Some(
            "digests differ because 2 changes from rogue are held for review (`puente held list`)"
                .into(),
        );
        ens.receiving = Some(crate::node::status::CatchUp {
            done: 40_000,
            left: 60_000,
            rate_per_s: Some(2_000.0),
            eta_s: Some(30.0),
        });
        let mut far = peer("far", PeerState::Refused);
        far.detail = Some("certificate not pinned".into());
        far.last_error = Some("handshake failed".into());
        let s = Status {
            node: "tijuana".into(),
            version: "0.1.0".into(),
            uptime_s: 3725,
            site_id: "ab".into(),
            fingerprint: "sha256:11".into(),
            listen: "127.0.0.1:7441".into(),
            time_zone: "America/Tijuana".into(),
            schema_hash: "h".into(),
            head: 42,
            digest: "0123456789abcdef0123".into(),
            rows: [("residents".to_string(), 3u64)].into_iter().collect(),
            sealed_cells: 6,
            tombstones: 0,
            can_unseal: vec![],
            peers: vec![sd, ens, rogue, far, peer("new", PeerState::Connecting)],
            refused: vec![],
            garbage_datagrams: 0,
            held: 2,
            at_rest: AtRestStatus {
                encrypted: true,
                cipher: Some("4.20.0 community".into()),
                key_source: Some("credential".into()),
                warning: None,
            },
            sealed_to_old_keys: [("mx".to_string(), 4u64)].into_iter().collect(),
            reseal: Some(crate::node::status::ResealStatus {
                groups: vec!["mx".into()],
                state: "running".into(),
                total: 10,
                done: 6,
                skipped: 0,
                failed: 1,
                started_ms: 0,
                finished_ms: None,
                message: None,
            }),
            reload: Some(crate::node::status::ReloadStatus {
                at_ms: 0,
                applied: false,
                messages: vec!["schema.toml:3: not valid TOML".into()],
            }),
            retired_sites: vec!["cd".into()],
        };
        let text = render_status(&s);
        for want in [
            "tijuana  (puente 0.1.0, up 1h 02m)",
            "0123456789abcdef…",
            "residents 3",
            "6 cells",
            "can unseal  no",
            "  san-diego  connected  rtt 14 ms  in sync",
            "  ensenada   connected  behind: we owe 12, they owe 0",
            "             catching up: 40000 changes received, 60000 to go, about 30s left",
            "  rogue      connected  caught up, with held changes",
            "             digests differ because 2 changes from rogue are held for review (`puente held list`)",
            "             held: rogue may not delete rows of residents (rights: delete = tijuana)",
            "held        2 changes from peers that their office may not make, waiting for review: `puente held list`",
            "  far        refused: certificate not pinned",
            "last error: handshake failed",
            "  new        connecting",
            "at rest     encrypted (SQLCipher 4.20.0, key from credential)",
            "old keys    mx 4 cells sealed to an old recipient set",
            "reseal      reseal mx running: 6 of 10 cells re-sealed, 1 could not be opened",
            "reload      1969-12-31 16:00:00 PST REFUSED (running config kept)",
            "              schema.toml:3: not valid TOML",
            "retired ids cd (restored from a backup)",
            "time zone   America/Tijuana",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        let plain = Status {
            at_rest: AtRestStatus::default(),
            ..s.clone()
        };
        assert!(
            render_status(&plain).contains("at rest     NOT encrypted: anyone who copies"),
            "{}",
            render_status(&plain)
        );
        assert!(!text.contains("garbage") && !text.contains("refused connections"));
    }
}
