//! Commands that talk to a running daemon through its admin socket:
//! status, rows list/get/put/delete, sync now.
//!
//! Owns: running one client call per command, parsing `col=value` and
//! `col:=JSON` assignments, and printing answers for people (or as JSON
//! with `--json`). The caller resolves the socket path from `--config`.
//! Must not: hold logic the daemon or tests need, or put a value into an
//! error message (revealed values go to stdout only, from wiped buffers).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use zeroize::Zeroizing;

use super::rows_view;
use crate::admin::Client;
use crate::api::{self, Row};
use crate::node::status::{AtRestStatus, PeerState, PeerStatus, Status};
use crate::secret_buf;
use crate::value::{Plaintext, Value};

pub use super::rows_view::SEALED_MARK;

/// Runs one async client call on a small runtime of its own.
pub(super) fn run<T>(call: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(call)
}

/// Writes `text` to stdout (with a final newline).
pub(super) fn emit(text: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text)?;
    if !text.ends_with(b"\n") {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Prints `value` as indented JSON from a buffer wiped afterwards.
pub(super) fn emit_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let text = secret_buf::to_json_pretty(value).context("cannot encode the answer as JSON")?;
    emit(text.as_slice())
}

pub fn status(socket: &Path, json: bool) -> Result<()> {
    let status = run(async { Ok(Client::new(socket).status().await?) })?;
    if json {
        return emit_json(&status);
    }
    emit(render_status(&status).as_bytes())
}

pub fn rows_list(
    socket: &Path,
    table: &str,
    after: Option<&str>,
    limit: Option<usize>,
    reveal: bool,
    json: bool,
) -> Result<()> {
    let page = run(async {
        Ok(Client::new(socket)
            .list_rows(table, after, limit, reveal)
            .await?)
    })?;
    if json {
        return emit_json(&page);
    }
    let mut text = Zeroizing::new(String::new());
    rows_view::render_table(&mut text, &page.rows, &local_zone());
    match (&page.next, page.rows.len()) {
        (_, 0) => text.push_str(&format!("no rows in {table}\n")),
        (Some(next), n) => text.push_str(&format!(
            "\n{n} {}; more follow: pass --after {next} for the next page\n",
            if n == 1 { "row" } else { "rows" }
        )),
        (None, 1) => text.push_str("\n1 row\n"),
        (None, n) => text.push_str(&format!("\n{n} rows\n")),
    }
    emit(text.as_bytes())
}

pub fn rows_get(socket: &Path, table: &str, id: &str, reveal: bool, json: bool) -> Result<()> {
    let row = run(async { Ok(Client::new(socket).get_row(table, id, reveal).await?) })?;
    if json {
        return emit_json(&row);
    }
    emit(row_text(table, &row).as_bytes())
}

pub fn rows_put(
    socket: &Path,
    table: &str,
    id: &str,
    assignments: &[String],
    json: bool,
) -> Result<()> {
    if assignments.is_empty() {
        bail!(
            "give at least one column to write: COLUMN=TEXT or COLUMN:=JSON (e.g. title=Taller capacity:=25)"
        );
    }
    let cells = assignments
        .iter()
        .map(|a| parse_assignment(a))
        .collect::<Result<Vec<_>>>()?;
    let written = run(async { Ok(Client::new(socket).put_row(table, id, cells).await?) })?;
    if json {
        return emit_json(&written);
    }
    emit(
        format!(
            "wrote {table}/{} (hlc {}, sequence {})",
            written.id, written.hlc, written.seq
        )
        .as_bytes(),
    )
}

pub fn rows_delete(socket: &Path, table: &str, id: &str, json: bool) -> Result<()> {
    let written = run(async { Ok(Client::new(socket).delete_row(table, id).await?) })?;
    if json {
        return emit_json(&written);
    }
    emit(
        format!(
            "deleted {table}/{} for good (hlc {}, sequence {}); the id can never be written again",
            written.id, written.hlc, written.seq
        )
        .as_bytes(),
    )
}

pub fn sync_now(socket: &Path, json: bool) -> Result<()> {
    run(async { Ok(Client::new(socket).sync_now().await?) })?;
    if json {
        return emit_json(&api::Accepted { ok: true });
    }
    emit(b"asked the daemon to contact its peers now; `puente status` shows progress")
}

/// Parses one `COLUMN=TEXT` (the value as text) or `COLUMN:=JSON` (a typed
/// value: a number, a quoted string or null) assignment. Errors name the
/// column at most, never the value.
pub fn parse_assignment(text: &str) -> Result<(String, Plaintext)> {
    let usage = "write COLUMN=TEXT or COLUMN:=JSON, e.g. title=Taller, capacity:=25, phone:=null";
    let Some(eq) = text.find('=') else {
        bail!("an assignment has no `=`; {usage}");
    };
    let (column, typed) = match text[..eq].strip_suffix(':') {
        Some(column) => (column, true),
        None => (&text[..eq], false),
    };
    let value = &text[eq + 1..];
    let is_name = !column.is_empty()
        && column
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !is_name {
        bail!("the part before `=` is not a column name; {usage}");
    }
    let value = if typed {
        api::parse_value(column, value).map_err(|e| anyhow!("{e}"))?
    } else {
        Plaintext::new(Value::Text(value.to_string()))
    };
    Ok((column.to_string(), value))
}

// ---- rendering ------------------------------------------------------------

/// A row as `rows get` prints it (local time of this machine), in a
/// buffer wiped when dropped.
pub fn row_text(table: &str, row: &Row) -> Zeroizing<String> {
    let mut text = Zeroizing::new(String::new());
    rows_view::render_row(&mut text, table, row, &local_zone());
    text
}

/// This machine's time zone (UTC if it cannot tell).
fn local_zone() -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC)
}

/// The status document for people.
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
    super::life::render_life(&mut out, s);
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
            let at = jiff::Timestamp::from_millisecond(r.at_ms as i64)
                .map_or_else(|_| r.at_ms.to_string(), |t| t.to_string());
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
            "reload      1970-01-01T00:00:00Z REFUSED (running config kept)",
            "              schema.toml:3: not valid TOML",
            "retired ids cd (restored from a backup)",
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
