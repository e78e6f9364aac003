//! `puente schedule` against two real offices on 127.0.0.1: events written
//! at both (with different UTC offsets) converge, and each office prints
//! the same agenda, byte for byte, in Spanish, English and JSON.
//!
//! Owns: the end-to-end check of the agenda over the admin socket, through
//! the library and through the `puente schedule` binary (TZ=America/Tijuana),
//! both at a fixed instant (the binary's hidden `--now`).
//! Must not: depend on the machine's time zone or locale (both are set), or
//! on the time of day or date.

use crate::cluster;

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
    // A date that is not one is refused where it is written, saying what
    // to write (before column types it was taken, and the event silently
    // left the agenda at both offices).
    let refused = tj
        .client()
        .put_row(
            "outreach_events",
            "tj-sin-fecha",
            vec![
                ("title".into(), Plaintext::text("Posada")),
                ("starts_at".into(), Plaintext::text("mediados de diciembre")),
            ],
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("`starts_at` expects a date and time with its offset")
            && refused.contains("2026-12-01T10:00:00-08:00")
            && refused.contains("mediados de diciembre"),
        "{refused}"
    );
    // An event whose start was never written still shows, as unreadable.
    put_event(tj, "tj-sin-fecha", &[("title", "Posada")], None).await;
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
         \x20 Posada  (id tj-sin-fecha: no tiene starts_at)\n"
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
    assert_eq!(v["unreadable"][0]["problem"], "no_start");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_the_same_agenda_at_both_offices() {
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    // Both offices show Tijuana's time (the office's zone decides, not
    // the shell's TZ).
    for i in [TJ, SD] {
        let config = c.lab[i].config.clone();
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, format!("time_zone = \"America/Tijuana\"\n{text}")).unwrap();
    }
    c.link(TJ, SD);
    c.start_all().await;
    let (tj, sd) = (&c[TJ], &c[SD]);

    // Events one and three days after NOW, written with different offsets:
    // Tuesday 10:00 and 09:00 and Thursday 12:00 in Tijuana.
    put_event(
        tj,
        "tj-1",
        &[
            ("title", "Taller"),
            ("starts_at", "2026-12-01T10:00:00-08:00"),
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
            ("starts_at", "2026-12-01T17:00:00Z"),
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
            ("starts_at", "2026-12-03T21:00:00+01:00"),
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
    // The binary, as staff run it, at a fixed instant (the hidden `--now`),
    // so the test reads the same whatever the hour in Tijuana.
    let run = |socket: &str, extra: &[&str]| {
        let mut args = vec!["--socket", socket, "--now", NOW];
        args.extend_from_slice(extra);
        let out = run_schedule(&args);
        assert!(
            out.status.success(),
            "puente schedule {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let agenda = |extra: &[&str]| {
        let (a, b) = (run(&tj_socket, extra), run(&sd_socket, extra));
        assert_eq!(a, b, "the offices' agendas differ ({extra:?})");
        a
    };
    assert_eq!(
        agenda(&[]),
        "Agenda: 7 días a partir del lunes 30 de noviembre, hora de America/Tijuana\n\
         \n\
         martes 1 de diciembre\n\
         \x20 09:00        Clinic · san-diego\n\
         \x20 10:00        Taller · tijuana\n\
         \n\
         jueves 3 de diciembre\n\
         \x20 12:00        Fair · san-diego\n"
    );
    assert_eq!(
        agenda(&["--lang", "en"]),
        "Agenda: 7 days from Monday, November 30, America/Tijuana time\n\
         \n\
         Tuesday, December 1\n\
         \x20 9:00 AM            Clinic · san-diego\n\
         \x20 10:00 AM           Taller · tijuana\n\
         \n\
         Thursday, December 3\n\
         \x20 12:00 PM           Fair · san-diego\n"
    );
    let v: serde_json::Value = serde_json::from_str(&agenda(&["--json"])).unwrap();
    assert_eq!(v["lang"], "es");
    assert_eq!(v["from"], "2026-11-30T12:00:00-08:00");
    assert_eq!(v["until"], "2026-12-07T12:00:00-08:00");
    assert_eq!(v["days"][0]["date"], "2026-12-01");
    assert_eq!(v["days"][0]["events"][0]["id"], "sd-1");
    assert_eq!(
        v["days"][0]["events"][0]["starts_at"],
        "2026-12-01T09:00:00-08:00"
    );
    assert_eq!(v["days"][0]["events"][1]["id"], "tj-1");
    assert_eq!(v["days"][1]["date"], "2026-12-03");
    assert_eq!(v["days"][1]["events"][0]["id"], "sd-3");
    assert_eq!(v["days"][1]["events"][0]["time"], "12:00");

    // Without `--now` the binary reads the clock (the day varies, the
    // heading does not); `--now` is not offered in the help.
    let out = run_schedule(&["--socket", &tj_socket]);
    assert!(out.status.success());
    let today = String::from_utf8(out.stdout).unwrap();
    assert!(today.starts_with("Agenda: 7 días a partir del "), "{today}");
    let help = run_schedule(&["--help"]);
    assert!(!String::from_utf8_lossy(&help.stdout).contains("--now"));
    // Mistakes get a sentence that says what to do.
    for (args, want) in [
        (
            &["--lang", "fr"][..],
            "use --lang es (español) or --lang en (English)",
        ),
        (&["--days", "0"][..], "give a number of days from 1 to 3660"),
        (
            &["--now", "tomorrow"][..],
            "invalid value 'tomorrow' for '--now",
        ),
    ] {
        let mut all = vec!["--socket", tj_socket.as_str()];
        all.extend_from_slice(args);
        let out = run_schedule(&all);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{err}");
    }
}
