//! The calendar feed against a third-party parser: Debian's
//! python3-icalendar reads the feed that Tijuana serves, and its events
//! are compared with `puente schedule --json`; San Diego serves the same
//! feed, byte for byte.
//!
//! Owns: the end-to-end check of `/cal/TOKEN/outreach.ics` (parsing,
//! times, status, location, UID, SEQUENCE, filters, refusals).
//! Must not: depend on the machine's zone (TZ is set) or the time of day
//! (events are whole days ahead).

use crate::cluster;
use crate::web;

use std::collections::BTreeMap;
use std::process::Command;

use cluster::*;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use puente::value::{Plaintext, Value};
use web::{Http, SD, TJ, add_staff, two_offices};

const PYTHON: &str = "/usr/bin/python3";

/// Reads an .ics file with icalendar and prints its events as JSON.
const PARSE: &str = r#"
import json, sys, datetime
import icalendar
raw = open(sys.argv[1], 'rb').read()
for line in raw.split(b'\r\n'):
    assert len(line) <= 75, ('a line longer than 75 octets', line)
assert b'\n' not in raw.replace(b'\r\n', b''), 'a bare LF'
cal = icalendar.Calendar.from_ical(raw)
def utc(v):
    return v.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
out = []
for e in cal.walk('VEVENT'):
    out.append({
        'uid': str(e['UID']),
        'summary': str(e['SUMMARY']),
        'start': utc(e.decoded('DTSTART')),
        'end': utc(e.decoded('DTEND')) if 'DTEND' in e else None,
        'status': str(e['STATUS']),
        'location': str(e['LOCATION']) if 'LOCATION' in e else None,
        'description': str(e['DESCRIPTION']) if 'DESCRIPTION' in e else None,
        'sequence': int(e['SEQUENCE']),
        'last_modified': utc(e.decoded('LAST-MODIFIED')),
    })
print(json.dumps(out))
"#;

fn parse_feed(text: &str) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("outreach.ics");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(PYTHON)
        .args(["-c", PARSE])
        .arg(&file)
        .output()
        .expect("the feed test needs /usr/bin/python3 with python3-icalendar (apt-get install python3-icalendar)");
    assert!(
        out.status.success(),
        "python3-icalendar could not read the feed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
}

fn tijuana() -> TimeZone {
    TimeZone::get("America/Tijuana").unwrap()
}

/// An instant `days` from today at `hour` in Tijuana, written in the
/// offset `hours` (as an office might store it).
fn at(days: i64, hour: i8, offset: i8) -> String {
    let date = Timestamp::now()
        .to_zoned_datetime(tijuana())
        .date()
        .checked_add(jiff::Span::new().days(days))
        .unwrap();
    let t = date
        .at(hour, 0, 0, 0)
        .to_zoned_datetime(tijuana())
        .unwrap()
        .timestamp();
    t.display_with_offset(jiff::tz::offset(offset)).to_string()
}

async fn put(o: &Office, id: &str, cells: &[(&str, &str)], capacity: Option<i64>) {
    let mut cells: Vec<(String, Plaintext)> = cells
        .iter()
        .map(|(c, v)| (c.to_string(), Plaintext::text(*v)))
        .collect();
    if let Some(n) = capacity {
        cells.push(("capacity".into(), Plaintext::new(Value::Integer(n))));
    }
    o.client()
        .put_row("outreach_events", id, cells)
        .await
        .unwrap();
}

fn path_of(url: &str) -> String {
    url[url.find("/cal/").unwrap()..].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_parses_and_matches_the_schedule_at_both_offices() {
    let c = two_offices().await;
    let (tj, sd) = (&c[TJ], &c[SD]);
    let long = "Traer: identificación, comprobante; y 2 fotos.\nSegunda línea con acentos: ñandú, pingüino. ".repeat(3);
    put(
        tj,
        "tj-taller",
        &[
            ("title", "Taller de derechos; laborales, básico"),
            ("starts_at", &at(1, 10, -8)),
            ("ends_at", &at(1, 12, -8)),
            ("office", "tijuana"),
            ("location", "Casa del Migrante, salón 2"),
            ("language", "es"),
            ("description", &long),
        ],
        Some(25),
    )
    .await;
    put(
        sd,
        "sd-clinic",
        &[
            ("title", "Legal clinic"),
            ("starts_at", &at(2, 9, 0)),
            ("ends_at", &at(2, 11, 0)),
            ("office", "san-diego"),
            ("location", "Library"),
            ("language", "es,en"),
        ],
        None,
    )
    .await;
    put(
        tj,
        "tj-feria",
        &[
            ("title", "Feria"),
            ("starts_at", &at(5, 9, -7)),
            ("office", "tijuana"),
            ("status", "cancelled"),
        ],
        None,
    )
    .await;
    // Past (in the feed, not in the schedule) and unreadable (in neither).
    put(
        tj,
        "tj-pasado",
        &[
            ("title", "Posada pasada"),
            ("starts_at", &at(-10, 18, -8)),
            ("ends_at", &at(-10, 20, -8)),
            ("office", "tijuana"),
        ],
        None,
    )
    .await;
    put(
        tj,
        "tj-sin-fecha",
        // No start (a start that is not a date is refused at the write).
        &[("title", "Algún día")],
        None,
    )
    .await;
    wait_converged("both offices hold every event", &[tj, sd]).await;

    let tj_staff = add_staff(tj, "viewer-tj", "viewer").await;
    let sd_staff = add_staff(sd, "viewer-sd", "viewer").await;
    let mut tj_http = Http::new(tj.web.unwrap(), "es");
    let mut sd_http = Http::new(sd.web.unwrap(), "es");
    let tj_feed = tj_http
        .get(&path_of(tj_staff.calendar_url.as_deref().unwrap()))
        .await;
    assert_eq!(tj_feed.status, 200, "{}", tj_feed.body);
    assert_eq!(
        tj_feed.header("content-type"),
        Some("text/calendar; charset=utf-8")
    );
    let sd_feed = sd_http
        .get(&path_of(sd_staff.calendar_url.as_deref().unwrap()))
        .await;
    assert_eq!(
        sd_feed.body, tj_feed.body,
        "both offices serve the same feed"
    );

    let events = parse_feed(&tj_feed.body);
    let by_uid: BTreeMap<String, &serde_json::Value> = events
        .iter()
        .map(|e| (e["uid"].as_str().unwrap().to_string(), e))
        .collect();
    assert!(
        by_uid.contains_key("tj-pasado@puente"),
        "recent past events stay in the feed"
    );
    assert!(!by_uid.contains_key("tj-sin-fecha@puente"));
    let taller = by_uid["tj-taller@puente"];
    assert_eq!(taller["summary"], "Taller de derechos; laborales, básico");
    assert_eq!(taller["location"], "Casa del Migrante, salón 2");
    assert!(
        taller["description"]
            .as_str()
            .unwrap()
            .starts_with(long.trim_end()),
        "{}",
        taller["description"]
    );
    assert_eq!(by_uid["tj-feria@puente"]["status"], "CANCELLED");
    assert_eq!(by_uid["sd-clinic@puente"]["status"], "CONFIRMED");

    // The same events as `puente schedule --json` (30 days, Tijuana time).
    let out = Command::new(BIN)
        .args(["schedule", "--json", "--days", "30", "--socket"])
        .arg(&tj.socket)
        .env("TZ", "America/Tijuana")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let schedule: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let utc = |text: &str| {
        text.parse::<Timestamp>()
            .unwrap()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    let from = utc(schedule["from"].as_str().unwrap());
    let until = utc(schedule["until"].as_str().unwrap());
    let mut listed = Vec::new();
    for day in schedule["days"].as_array().unwrap() {
        for e in day["events"].as_array().unwrap() {
            let uid = format!("{}@puente", e["id"].as_str().unwrap());
            let f = by_uid
                .get(&uid)
                .unwrap_or_else(|| panic!("{uid} is in the schedule, not in the feed"));
            assert_eq!(f["summary"], e["title"], "{uid}");
            assert_eq!(
                f["start"].as_str().unwrap(),
                utc(e["starts_at"].as_str().unwrap()),
                "{uid}"
            );
            assert_eq!(
                f["end"].as_str().map(str::to_string),
                e["ends_at"].as_str().map(utc),
                "{uid}"
            );
            assert_eq!(f["location"], e["location"], "{uid}");
            let cancelled = e["cancelled"].as_bool().unwrap();
            assert_eq!(f["status"] == "CANCELLED", cancelled, "{uid}");
            listed.push(uid);
        }
    }
    assert_eq!(listed.len(), 3, "{schedule}");
    let in_window: Vec<&String> = by_uid
        .iter()
        .filter(|(_, e)| {
            let start = e["start"].as_str().unwrap();
            start >= from.as_str() && start < until.as_str()
        })
        .map(|(uid, _)| uid)
        .collect();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(
        in_window,
        sorted.iter().collect::<Vec<_>>(),
        "the feed has events the schedule lacks"
    );

    // An edit raises the version the feed reports. SEQUENCE counts whole
    // seconds of the row's newest change (src/web/ics.rs): an edit within
    // the same second keeps it, so the edit waits for the wall clock to
    // pass that second (a condition polled with a deadline).
    let before = (
        taller["sequence"].as_i64().unwrap(),
        taller["last_modified"].as_str().unwrap().to_string(),
    );
    let version_second = before.0 + puente::web::ics::SEQUENCE_EPOCH_S;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64)
        <= version_second
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the wall clock never passed the event's version second"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    put(
        tj,
        "tj-taller",
        &[("title", "Taller de derechos laborales")],
        None,
    )
    .await;
    let again = tj_http
        .get(&path_of(tj_staff.calendar_url.as_deref().unwrap()))
        .await;
    let events = parse_feed(&again.body);
    let edited = events
        .iter()
        .find(|e| e["uid"] == "tj-taller@puente")
        .unwrap();
    assert_eq!(edited["summary"], "Taller de derechos laborales");
    assert!(
        edited["sequence"].as_i64().unwrap() > before.0,
        "SEQUENCE did not grow: {} then {edited:?}",
        before.0
    );
    assert!(
        edited["last_modified"].as_str().unwrap() > before.1.as_str(),
        "LAST-MODIFIED did not grow: {} then {edited:?}",
        before.1
    );

    // Filters and refusals.
    let path = path_of(tj_staff.calendar_url.as_deref().unwrap());
    let only_sd = tj_http
        .get(&format!("{path}?office=san-diego&lang=en"))
        .await;
    let events = parse_feed(&only_sd.body);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["uid"], "sd-clinic@puente");
    assert!(
        events[0]["description"]
            .as_str()
            .unwrap()
            .contains("Language: Spanish and English")
    );
    let bad = tj_http.get(&format!("{path}?office=ensenada")).await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body.contains("«ensenada» no es una de las oficinas"),
        "{}",
        bad.body
    );
    let wrong = tj_http
        .get("/cal/0123456789abcdef0123456789abcdef01234567/outreach.ics")
        .await;
    assert_eq!(wrong.status, 404);
    assert!(
        wrong.body.contains("Esa clave no es válida"),
        "{}",
        wrong.body
    );
    // A login token is not a calendar token.
    let login = tj_staff.login_token.clone();
    let as_feed = tj_http.get(&format!("/cal/{login}/outreach.ics")).await;
    assert_eq!(as_feed.status, 404);
}
