//! `puente schedule` against two real offices on 127.0.0.1: events written
//! at both (with different UTC offsets) converge, and each office prints
//! the same agenda, byte for byte, in Spanish, English and JSON.
//!
//! Owns: the end-to-end check of the agenda over the admin socket, through
//! the library (a fixed instant) and through the `puente schedule` binary
//! (events placed relative to today, TZ=America/Tijuana).
//! Must not: depend on the machine's time zone or locale (both are set), or
//! on the time of day (only whole days ahead are used).

mod cluster;

use cluster::*;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use puente::cli::schedule::{agenda_text, read_events};
use puente::schedule::Lang;
use puente::value::{Plaintext, Value};

const TJ: usize = 0;
const SD: usize = 1;

/// Monday 30 November 2026, noon in Tijuana.
const NOW: &str = "2026-11-30T12:00:00-08:00";

async fn put_event(o: &Office, id: &str, cells: &[(&str, &str)], capacity: Option<i64>) {
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
        .expect("put an event");
}

/// The agenda each office prints, read on a blocking thread (the CLI runs
/// its own small runtime).
async fn agendas(c: &Cluster, lang: Lang, json: bool) -> Vec<String> {
    let mut out = Vec::new();
    for o in c.offices() {
        let socket = o.socket.clone();
        let text = tokio::task::spawn_blocking(move || {
            let tz = TimeZone::get("America/Tijuana").expect("the tz database has America/Tijuana");
            agenda_text(
                &socket,
                NOW.parse::<Timestamp>().unwrap(),
                &tz,
                7,
                lang,
                json,
            )
        })
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("schedule at {}: {e:#}", o.name));
        out.push(text);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_offices_print_the_same_agenda() {
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    c.link(TJ, SD);
    c.start_all().await;
    let (tj, sd) = (&c[TJ], &c[SD]);

    // Tijuana writes in its own offset.
    put_event(
        tj,
        "tj-taller",
        &[
            ("title", "Taller de derechos laborales"),
            ("starts_at", "2026-12-01T10:00:00-08:00"),
            ("ends_at", "2026-12-01T12:00:00-08:00"),
            ("office", "tijuana"),
            ("location", "Casa del Migrante"),
            ("language", "es"),
            ("status", "scheduled"),
        ],
        Some(25),
    )
    .await;
    put_event(
        tj,
        "tj-vigilia",
        &[
            ("title", "Vigilia"),
            ("starts_at", "2026-12-01T23:30:00-08:00"),
            ("ends_at", "2026-12-02T01:00:00-08:00"),
            ("office", "tijuana"),
            ("location", "Parque"),
        ],
        None,
    )
    .await;
    put_event(
        tj,
        "tj-sin-fecha",
        &[("title", "Posada"), ("starts_at", "mediados de diciembre")],
        None,
    )
    .await;
    // San Diego writes in UTC and in New York time.
    put_event(
        sd,
        "sd-clinic",
        &[
            ("title", "Legal clinic"),
            ("starts_at", "2026-12-01T17:00:00Z"),
            ("ends_at", "2026-12-01T18:30:00Z"),
            ("office", "san-diego"),
            ("location", "Library"),
            ("language", "es,en"),
        ],
        None,
    )
    .await;
    put_event(
        sd,
        "sd-fair",
        &[
            ("title", "Resource fair"),
            ("starts_at", "2026-12-03T11:00:00-05:00"),
            ("office", "san-diego"),
            ("location", "Chicano Park"),
            ("status", "cancelled"),
        ],
        None,
    )
    .await;
    put_event(
        sd,
        "sd-later",
        &[
            ("title", "Out of the window"),
            ("starts_at", "2026-12-07T12:00:00-08:00"),
        ],
        None,
    )
    .await;

    wait_converged("both offices hold every event", &[tj, sd]).await;

    // Every row arrives, whatever the page size.
    let socket = tj.socket.clone();
    let (small, large) = tokio::task::spawn_blocking(move || {
        (
            read_events(&socket, 2).unwrap(),
            read_events(&socket, 500).unwrap(),
        )
    })
    .await
    .unwrap();
    assert_eq!(small.len(), 6);
    assert_eq!(small, large);

    let es = agendas(&c, Lang::Es, false).await;
    assert_eq!(es[0], es[1], "the two offices' agendas differ");
    assert_eq!(
        es[0],
        "Agenda: 7 días a partir del lunes 30 de noviembre, hora de America/Tijuana\n\
         \n\
         martes 1 de diciembre\n\
         \x20 09:00–10:30  Legal clinic · san-diego · Library · español e inglés\n\
         \x20 10:00–12:00  Taller de derechos laborales · tijuana · Casa del Migrante · español · cupo 25\n\
         \x20 23:30–01:00 (miércoles 2 de diciembre)  Vigilia · tijuana · Parque\n\
         \n\
         jueves 3 de diciembre\n\
         \x20 08:00        [CANCELADO] Resource fair · san-diego · Chicano Park\n\
         \n\
         Eventos con fechas que no se pueden leer (escriba starts_at y ends_at en RFC 3339 con desfase, p. ej. 2026-12-01T10:00:00-08:00, con `puente rows put outreach_events ID starts_at=…`)\n\
         \x20 Posada  (id tj-sin-fecha: starts_at «mediados de diciembre» no es una fecha RFC 3339 con desfase)\n"
    );

    let en = agendas(&c, Lang::En, false).await;
    assert_eq!(en[0], en[1]);
    let order: Vec<usize> = ["Tuesday, December 1", "Legal clinic", "Taller", "Vigilia"]
        .iter()
        .chain(&[
            "Thursday, December 3",
            "[CANCELLED] Resource fair",
            "Posada",
        ])
        .map(|w| {
            en[0]
                .find(w)
                .unwrap_or_else(|| panic!("{w} missing:\n{}", en[0]))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{}", en[0]);
    assert!(!en[0].contains("Out of the window"));

    let json = agendas(&c, Lang::En, true).await;
    assert_eq!(json[0], json[1]);
    let v: serde_json::Value = serde_json::from_str(&json[0]).unwrap();
    assert_eq!(v["time_zone"], "America/Tijuana");
    assert_eq!(v["days"][0]["date"], "2026-12-01");
    assert_eq!(v["days"][0]["events"][0]["id"], "sd-clinic");
    assert_eq!(
        v["days"][0]["events"][0]["starts_at"],
        "2026-12-01T09:00:00-08:00"
    );
    assert_eq!(v["days"][0]["events"][1]["capacity"], "25");
    assert_eq!(v["days"][1]["events"][0]["cancelled"], true);
    assert_eq!(v["unreadable"][0]["problem"], "bad_start");
}

/// Runs `puente schedule ARGS` in Tijuana's zone with a Spanish locale.
fn run_schedule(args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .arg("schedule")
        .args(args)
        .env("TZ", "America/Tijuana")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env("LANG", "es_MX.UTF-8")
        .output()
        .expect("run puente schedule")
}

/// Today's date in Tijuana.
fn tijuana_today() -> jiff::civil::Date {
    Timestamp::now()
        .to_zoned_datetime(TimeZone::get("America/Tijuana").unwrap())
        .date()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_the_same_agenda_at_both_offices() {
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    c.link(TJ, SD);
    c.start_all().await;
    let (tj, sd) = (&c[TJ], &c[SD]);

    // Events one and three days from today, written with different offsets.
    let tz = TimeZone::get("America/Tijuana").unwrap();
    let at = |days: i64, hour: i8| {
        let date = tijuana_today()
            .checked_add(jiff::Span::new().days(days))
            .unwrap();
        date.at(hour, 0, 0, 0)
            .to_zoned_datetime(tz.clone())
            .unwrap()
            .timestamp()
    };
    let in_offset =
        |t: Timestamp, hours: i8| t.display_with_offset(jiff::tz::offset(hours)).to_string();
    put_event(
        tj,
        "tj-1",
        &[
            ("title", "Taller"),
            ("starts_at", &in_offset(at(1, 10), -8)),
            ("office", "tijuana"),
        ],
        None,
    )
    .await;
    put_event(
        sd,
        "sd-1",
        &[
            ("title", "Clinic"),
            ("starts_at", &at(1, 9).to_string()), // UTC, "Z"
            ("office", "san-diego"),
        ],
        None,
    )
    .await;
    put_event(
        sd,
        "sd-3",
        &[
            ("title", "Fair"),
            ("starts_at", &in_offset(at(3, 12), 1)),
            ("office", "san-diego"),
        ],
        None,
    )
    .await;
    wait_converged("both offices hold every event", &[tj, sd]).await;

    let (tj_socket, sd_socket) = (
        tj.socket.to_str().unwrap().to_string(),
        sd.socket.to_str().unwrap().to_string(),
    );
    for extra in [&[][..], &["--json"][..], &["--lang", "en"][..]] {
        // Both runs must see the same day; if midnight passed between
        // them (in Tijuana), run them again.
        let (a, b) = loop {
            let day = tijuana_today();
            let run = |socket: &str| {
                let mut args = vec!["--socket", socket];
                args.extend_from_slice(extra);
                let out = run_schedule(&args);
                assert!(
                    out.status.success(),
                    "puente schedule {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8(out.stdout).unwrap()
            };
            let (a, b) = (run(&tj_socket), run(&sd_socket));
            if tijuana_today() == day {
                break (a, b);
            }
        };
        if extra == ["--json"] {
            // Only the window (the instant each run started) may differ.
            let strip = |text: &str| {
                let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
                for key in ["from", "until"] {
                    let t = v[key].as_str().unwrap();
                    assert!(t.parse::<Timestamp>().is_ok(), "{key}: {t}");
                    v[key] = serde_json::Value::Null;
                }
                v
            };
            assert_eq!(strip(&a), strip(&b), "the offices' JSON agendas differ");
        } else {
            assert_eq!(a, b, "the offices' agendas differ ({extra:?})");
        }
        if extra.is_empty() {
            assert!(a.starts_with("Agenda: 7 días a partir del "), "{a}");
            assert!(a.contains("hora de America/Tijuana"), "{a}");
            let order: Vec<usize> = [
                "  09:00        Clinic",
                "  10:00        Taller",
                "  12:00        Fair",
            ]
            .iter()
            .map(|w| a.find(w).unwrap_or_else(|| panic!("{w} missing:\n{a}")))
            .collect();
            assert!(order.windows(2).all(|w| w[0] < w[1]), "{a}");
        }
        if extra == ["--json"] {
            let v: serde_json::Value = serde_json::from_str(&a).unwrap();
            let today = tijuana_today();
            let date = |n: i64| {
                today
                    .checked_add(jiff::Span::new().days(n))
                    .unwrap()
                    .to_string()
            };
            assert_eq!(v["lang"], "es");
            assert_eq!(v["days"][0]["date"], date(1));
            assert_eq!(v["days"][0]["events"][0]["id"], "sd-1");
            assert_eq!(v["days"][0]["events"][1]["id"], "tj-1");
            assert_eq!(v["days"][1]["date"], date(3));
            assert_eq!(v["days"][1]["events"][0]["id"], "sd-3");
        }
        if extra == ["--lang", "en"] {
            assert!(a.contains("America/Tijuana time"), "{a}");
            assert!(a.contains("  9:00 AM            Clinic"), "{a}");
        }
    }

    // Mistakes get a sentence that says what to do.
    for (args, want) in [
        (
            &["--lang", "fr"][..],
            "use --lang es (español) or --lang en (English)",
        ),
        (&["--days", "0"][..], "give a number of days from 1 to 3660"),
    ] {
        let mut all = vec!["--socket", tj_socket.as_str()];
        all.extend_from_slice(args);
        let out = run_schedule(&all);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{err}");
    }
}
