//! One office, one time zone: the node config's `time_zone` decides the
//! day and hour people read, in `puente schedule`, on the web agenda and
//! in the calendar feed's display hint, whatever the zone of the shell or
//! of the daemon's process.
//!
//! Owns: the end-to-end check with `TZ=UTC` for both the CLI and the
//! daemon and `America/Tijuana` as the office's zone: an event at 16:00
//! in Tijuana (00:00 the next day in UTC) shows on the same day at 16:00
//! in all three; `--tz UTC` shows the other day (the control: the zones
//! really disagree on that event).
//! Must not: depend on the machine's zone (every process's TZ is set) or
//! on the time of day (the event is days ahead).

use crate::cluster;
use crate::web;

use std::process::Command;

use cluster::*;
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use puente::value::Plaintext;
use web::{Http, add_staff};

const ZONE: &str = "America/Tijuana";

/// Reads the feed with python3-icalendar: each event's start in the zone
/// the feed's X-WR-TIMEZONE names, as "YYYY-MM-DD HH:MM".
const LOCAL_STARTS: &str = r#"
import json, sys
from zoneinfo import ZoneInfo
import icalendar
cal = icalendar.Calendar.from_ical(open(sys.argv[1], 'rb').read())
zone = str(cal['X-WR-TIMEZONE'])
out = {'zone': zone, 'events': {}}
for e in cal.walk('VEVENT'):
    start = e.decoded('DTSTART').astimezone(ZoneInfo(zone))
    out['events'][str(e['UID'])] = start.strftime('%Y-%m-%d %H:%M')
print(json.dumps(out))
"#;

/// The day `days` from today in Tijuana.
fn tijuana_day(days: i64) -> Date {
    Timestamp::now()
        .to_zoned_datetime(TimeZone::get(ZONE).unwrap())
        .date()
        .checked_add(jiff::Span::new().days(days))
        .unwrap()
}

/// Puts `time_zone` at the top of the office's config and turns the web
/// on without a zone of its own, the daemon's process in UTC.
fn office_in_tijuana(c: &mut Cluster, i: usize) {
    let office = &mut c.lab[i];
    let text = std::fs::read_to_string(&office.config).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    std::fs::write(
        &office.config,
        format!("time_zone = \"{ZONE}\"\n{text}\n[web]\nlisten = \"{addr}\"\n"),
    )
    .unwrap();
    office.web = Some(addr);
    office.env.push(("TZ".into(), "UTC".into()));
}

/// `puente schedule ARGS` as staff run it on a server set to UTC.
fn schedule(socket: &str, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("schedule")
        .args(["--socket", socket])
        .args(args)
        .env("TZ", "UTC")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env("LANG", "en_US.UTF-8")
        .output()
        .expect("run puente schedule");
    assert!(
        out.status.success(),
        "puente schedule {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_the_web_page_and_the_feed_show_the_same_day_and_hour() {
    let mut c = Cluster::new(&[("tijuana", true)]);
    office_in_tijuana(&mut c, 0);
    c.start_all().await;
    let tj = &c[0];
    let tz = TimeZone::get(ZONE).unwrap();

    // 16:00 in Tijuana three days ahead: the next day at 00:00 in UTC.
    let day = tijuana_day(3);
    let start = day.at(16, 0, 0, 0).to_zoned_datetime(tz.clone()).unwrap();
    let in_utc = start.timestamp().to_zoned_datetime(TimeZone::UTC);
    assert_ne!(
        in_utc.date(),
        day,
        "the event must fall on another day in UTC"
    );
    tj.client()
        .put_row(
            "outreach_events",
            "ev-late",
            vec![
                ("title".into(), Plaintext::text("Taller de la tarde")),
                (
                    "starts_at".into(),
                    Plaintext::text(start.timestamp().to_string()),
                ),
                ("office".into(), Plaintext::text("tijuana")),
            ],
        )
        .await
        .unwrap();

    // Status names the office's zone.
    assert_eq!(tj.status().await.time_zone, ZONE);

    // The CLI in a UTC shell: the office's day and hour.
    let socket = tj.socket.to_str().unwrap().to_string();
    let json: serde_json::Value =
        serde_json::from_str(&schedule(&socket, &["--days", "7", "--json"])).unwrap();
    assert_eq!(json["time_zone"], ZONE, "{json}");
    let cli_day = json["days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| {
            d["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["id"] == "ev-late")
        })
        .unwrap_or_else(|| panic!("the event is not in the agenda: {json}"));
    assert_eq!(cli_day["date"], day.to_string(), "{json}");
    let text = schedule(&socket, &["--days", "7"]);
    let heading = puente::schedule::words::day_heading(puente::schedule::Lang::En, day, day.year());
    let at = text
        .find(&heading)
        .unwrap_or_else(|| panic!("{heading:?} missing:\n{text}"));
    let line = text[at..].lines().nth(1).unwrap();
    assert!(
        line.trim_start().starts_with("4:00 PM") && line.contains("Taller de la tarde"),
        "{text}"
    );
    // The control: with --tz UTC the same event is on the next day at
    // 00:00, so a schedule that followed the shell would have shown that.
    let utc: serde_json::Value = serde_json::from_str(&schedule(
        &socket,
        &["--days", "7", "--json", "--tz", "UTC"],
    ))
    .unwrap();
    let utc_day = utc["days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| {
            d["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["id"] == "ev-late")
        })
        .unwrap();
    assert_eq!(utc_day["date"], in_utc.date().to_string(), "{utc}");
    let bad = Command::new(BIN)
        .args(["schedule", "--socket", &socket, "--tz", "Mars/Olympus"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success()
            && said.contains("`Mars/Olympus` is not a time zone")
            && said.contains("America/Tijuana"),
        "{said}"
    );

    // The web page (its daemon runs with TZ=UTC): the same day, 4:00 PM.
    let admin = add_staff(tj, "viewer-tj", "viewer").await;
    let mut http = Http::new(tj.web.unwrap(), "en");
    http.sign_in(admin.login_url.as_deref().unwrap()).await;
    let page = http.get("/agenda?lang=en").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(ZONE), "the page names the zone");
    let section = page
        .body
        .split(&format!("id=\"d-{day}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no section for {day}:\n{}", page.body));
    let section = &section[..section.find("</section>").unwrap()];
    assert!(
        section.contains("Taller de la tarde")
            && section.contains("<div class=\"when\">4:00 PM</div>"),
        "{section}"
    );
    assert!(
        !page.body.contains(&format!("id=\"d-{}\"", in_utc.date())),
        "a section for the UTC day: {}",
        page.body
    );

    // The feed, read by python3-icalendar in the zone it names.
    let path = &admin.calendar_url.as_deref().unwrap();
    let feed = http.get(&path[path.find("/cal/").unwrap()..]).await;
    assert_eq!(feed.status, 200, "{}", feed.body);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("outreach.ics");
    std::fs::write(&file, &feed.body).unwrap();
    let out = Command::new("/usr/bin/python3")
        .args(["-c", LOCAL_STARTS])
        .arg(&file)
        .output()
        .expect("the feed test needs /usr/bin/python3 with python3-icalendar");
    assert!(
        out.status.success(),
        "python3-icalendar: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parsed["zone"], ZONE);
    assert_eq!(
        parsed["events"]["ev-late@puente"],
        format!("{day} 16:00"),
        "{parsed}"
    );
}

#[test]
fn init_writes_the_zone_it_is_given_and_refuses_an_unknown_one() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, zone: &str| {
        Command::new(BIN)
            .args(["init", "--name", name, "--listen", "127.0.0.1:7441"])
            .arg("--dir")
            .arg(dir.path().join(name))
            .args(["--time-zone", zone])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = run("tijuana", ZONE);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("time zone: America/Tijuana"), "{said}");
    let config = std::fs::read_to_string(dir.path().join("tijuana/puente.toml")).unwrap();
    assert!(
        config.contains("\ntime_zone = \"America/Tijuana\"\n"),
        "{config}"
    );
    let parsed = puente::config::NodeConfig::load(&dir.path().join("tijuana/puente.toml")).unwrap();
    assert_eq!(parsed.office_zone().1, ZONE);

    let out = run("mars", "Mars/Olympus");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("`Mars/Olympus` is not a time zone")
            && said.contains("timedatectl list-timezones"),
        "{said}"
    );
    assert!(
        !dir.path().join("mars").exists(),
        "nothing made for a bad zone"
    );
}
