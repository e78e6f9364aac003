//! `puente demo`: two offices on 127.0.0.1 in a temporary folder, seeded
//! with a week of outreach events and a few residents, shown side by side.
//!
//! Owns: the demo script (lay out, start, seed, wait, print, scan, stop).
//! Must not: bind anything but 127.0.0.1 or leave processes behind unless
//! asked to with `--keep`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::admin::Client;
use crate::config::schema::DEFAULT_SCHEMA;
use crate::lab::{Lab, scan};
use crate::value::Plaintext;

const TIJUANA: usize = 0;
const SAN_DIEGO: usize = 1;

/// (day offset, hour, minutes, title, description, location, office, languages, capacity, status)
type EventSeed = (
    i64,
    i8,
    i64,
    &'static str,
    &'static str,
    &'static str,
    usize,
    &'static str,
    i64,
    &'static str,
);

const EVENTS: &[EventSeed] = &[
    (
        1,
        10,
        120,
        "Taller de derechos laborales",
        "Qué hacer si no te pagan; cómo documentar horas.",
        "Salón comunitario, Zona Norte",
        TIJUANA,
        "es",
        30,
        "scheduled",
    ),
    (
        1,
        16,
        90,
        "Know-your-rights workshop",
        "Rights at checkpoints and at home; what to carry.",
        "San Diego office, room B",
        SAN_DIEGO,
        "es,en",
        25,
        "scheduled",
    ),
    (
        2,
        9,
        180,
        "Brigada de salud: vacunas y presión",
        "Con el centro de salud; traer cartilla si la hay.",
        "Patio del albergue",
        TIJUANA,
        "es",
        60,
        "scheduled",
    ),
    (
        3,
        11,
        120,
        "Clínica legal: asilo y citas",
        "Revisión de casos con abogadas voluntarias.",
        "Oficina Tijuana, sala 2",
        TIJUANA,
        "es,en",
        20,
        "scheduled",
    ),
    (
        3,
        18,
        60,
        "Volunteer orientation",
        "For new volunteers at both offices.",
        "San Diego office, room A",
        SAN_DIEGO,
        "en",
        20,
        "scheduled",
    ),
    (
        4,
        17,
        90,
        "Clases de inglés básico",
        "Nivel inicial; materiales incluidos.",
        "Aula 1 del albergue",
        TIJUANA,
        "es,en",
        15,
        "scheduled",
    ),
    (
        5,
        10,
        120,
        "Family reunification clinic",
        "Paperwork and appointments for families split at the border.",
        "San Diego office",
        SAN_DIEGO,
        "es,en",
        12,
        "scheduled",
    ),
    (
        6,
        19,
        150,
        "Noche de cine comunitario",
        "Película y conversación; para toda la familia.",
        "Patio del albergue",
        TIJUANA,
        "es",
        80,
        "cancelled",
    ),
    (
        7,
        12,
        180,
        "Cultural afternoon: music and food",
        "Shared meal with both offices.",
        "Community hall, Barrio Logan",
        SAN_DIEGO,
        "es,en",
        100,
        "scheduled",
    ),
];

/// Residents: (office that records them, id, full name, birth date, nationality, phone, case notes, arrival, household)
type ResidentSeed = (
    usize,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    i64,
);

/// Sample values only (no real person): they double as the markers the
/// byte scan looks for.
const RESIDENTS: &[ResidentSeed] = &[
    (
        TIJUANA,
        "res-0001",
        "Residente de ejemplo Uno",
        "1990-04-12",
        "Honduras",
        "+52 664 000 0101",
        "Llegó con dos hijos; cita médica pendiente.",
        "2026-11-02",
        3,
    ),
    (
        TIJUANA,
        "res-0002",
        "Residente de ejemplo Dos",
        "1985-09-30",
        "Guatemala",
        "+52 664 000 0102",
        "Solicitud de asilo en trámite.",
        "2026-11-10",
        1,
    ),
    (
        SAN_DIEGO,
        "res-0003",
        "Residente de ejemplo Tres",
        "2001-01-21",
        "Haití",
        "+1 619 000 0103",
        "Family member located in San Diego.",
        "2026-11-15",
        2,
    ),
    (
        SAN_DIEGO,
        "res-0004",
        "Residente de ejemplo Cuatro",
        "1978-06-05",
        "México",
        "+52 664 000 0104",
        "Necesita acompañamiento a audiencia.",
        "2026-11-18",
        4,
    ),
];

fn text(s: &str) -> Plaintext {
    Plaintext::text(s)
}

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Leave both offices running and print how to talk to them.
    #[arg(long)]
    keep: bool,
}

pub fn run(args: DemoArgs) -> Result<()> {
    let keep = args.keep;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(play(keep))
}

async fn play(keep: bool) -> Result<()> {
    let started = Instant::now();
    let bin = std::env::current_exe().context("cannot find the puente binary")?;
    let root = std::env::temp_dir().join(format!("puente-demo-{}", rand::random::<u32>()));
    println!(
        "== puente demo: two offices on 127.0.0.1 in {}\n",
        root.display()
    );
    let mut lab = Lab::create(
        &root,
        &bin,
        &[("tijuana", true), ("san-diego", false)],
        DEFAULT_SCHEMA,
    )?;
    lab.link(TIJUANA, SAN_DIEGO)?;
    for o in &mut lab.offices {
        o.start().await?;
    }
    let result = show(&lab).await;
    if keep && result.is_ok() {
        let pids: Vec<String> = lab
            .offices
            .iter_mut()
            .filter_map(|o| o.detach())
            .map(|p| p.to_string())
            .collect();
        println!("\n== both offices keep running (pids {})", pids.join(", "));
        for o in &lab.offices {
            println!(
                "  {:<10} puente status --socket {}",
                o.name,
                o.socket.display()
            );
        }
        println!(
            "  e.g.       puente rows get residents res-0001 --reveal --socket {}",
            lab[TIJUANA].socket.display()
        );
        println!(
            "             puente schedule --socket {}",
            lab[SAN_DIEGO].socket.display()
        );
        println!(
            "  stop them: kill {}   (the folder {} stays until you remove it)",
            pids.join(" "),
            root.display()
        );
        return Ok(());
    }
    for o in &mut lab.offices {
        o.stop()?;
    }
    let _ = std::fs::remove_dir_all(&root);
    result?;
    println!(
        "\n== done in {:.1} s; the offices are stopped and the folder removed (use --keep to leave them running)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn show(lab: &Lab) -> Result<()> {
    let tj = lab[TIJUANA].client();
    let sd = lab[SAN_DIEGO].client();
    wait_until("the offices to connect", || {
        let (tj, sd) = (tj.clone(), sd.clone());
        async move { connected(&tj).await && connected(&sd).await }
    })
    .await?;
    seed(lab).await?;
    wait_until("both offices to hold the same records", || {
        let (tj, sd) = (tj.clone(), sd.clone());
        async move { in_sync(&tj, &sd).await }
    })
    .await?;

    for client in [&tj, &sd] {
        let status = client.status().await?;
        println!("== status of {}", status.node);
        println!("{}", super::status::render_status(&status));
    }

    // One instant and zone for both, so the two agendas can be compared.
    let now = jiff::Timestamp::now();
    let tz = jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC);
    let mut agendas = Vec::new();
    for office in [TIJUANA, SAN_DIEGO] {
        let socket = lab[office].socket.clone();
        let tz = tz.clone();
        let text = tokio::task::spawn_blocking(move || {
            super::schedule::agenda_text(&socket, now, &tz, 7, crate::schedule::Lang::Es, false)
        })
        .await??;
        println!("== `puente schedule --lang es` at {}", lab[office].name);
        println!("{text}");
        agendas.push(text);
    }
    anyhow::ensure!(
        agendas[0] == agendas[1],
        "the two offices print different agendas"
    );
    println!("(the same agenda at both offices)\n");

    println!("== resident res-0003 (recorded in San Diego) as San Diego sees it: sealed");
    let row = sd.get_row("residents", "res-0003", false).await?;
    println!("{}", super::rows::row_text("residents", &row, &tz).as_str());
    println!("== the same resident as Tijuana sees it with --reveal (audited)");
    let row = tj.get_row("residents", "res-0003", true).await?;
    println!("{}", super::rows::row_text("residents", &row, &tz).as_str());

    // Shared values are plaintext to every office, but not on disk: the
    // replicas (database and live WAL) are encrypted at rest.
    let event_ids: Vec<String> = (1..=EVENTS.len())
        .map(|i| format!("event-{i:02}"))
        .collect();
    let shared: Vec<&str> = EVENTS
        .iter()
        .map(|e| e.3)
        .chain(RESIDENTS.iter().flat_map(|r| [r.1, r.7]))
        .chain(event_ids.iter().map(String::as_str))
        .collect();
    for office in [SAN_DIEGO, TIJUANA] {
        let o = &lab[office];
        let replica = scan::replica_files(&o.data_dir());
        let (hits, files, bytes) = scan::hits_in(&replica, &shared);
        anyhow::ensure!(
            replica
                .iter()
                .any(|f| f.to_string_lossy().ends_with("-wal")),
            "{} has no WAL to scan",
            o.name
        );
        println!(
            "== byte scan of {}'s replica while it runs ({files} files, {bytes} bytes: database, WAL) for {} shared values (event titles, arrival dates, row ids): {} hits",
            o.name,
            shared.len(),
            hits.len()
        );
        anyhow::ensure!(
            hits.is_empty(),
            "shared plaintext found in the replica of {}: {:?}",
            o.name,
            hits.iter().map(|h| &h.0).collect::<Vec<_>>()
        );
    }

    let needles: Vec<&str> = RESIDENTS
        .iter()
        .flat_map(|r| [r.2, r.3, r.5, r.6])
        .collect();
    // Positive controls, so that a scan that read nothing cannot pass: the
    // node's name in its log, and a file planted in the data dir. (The
    // replica itself is encrypted: the scan above read its database and
    // live WAL and found no shared value either.)
    for office in [SAN_DIEGO, TIJUANA] {
        let o = &lab[office];
        let planted =
            scan::plant_control(&o.data_dir()).context("cannot write the scan's control file")?;
        let report = scan::Scan::forbidding(&needles)
            .control(scan::Control::in_file("daemon.log", &o.name))
            .control(planted)
            .run(&o.dir);
        let _ = std::fs::remove_file(o.data_dir().join(scan::CONTROL_FILE));
        println!(
            "== byte scan of every file of {} ({} files, {} bytes: replica, WAL, logs, config) for the {} sealed values: {} plaintext hits; controls found in {}",
            o.name,
            report.files.len(),
            report.bytes,
            needles.len(),
            report.hits.len(),
            report.control_files().join(", ")
        );
        report.verdict(&o.dir)?;
    }
    Ok(())
}

async fn seed(lab: &Lab) -> Result<()> {
    let now = jiff::ZonedDateTime::now();
    for (i, e) in EVENTS.iter().enumerate() {
        let (
            days,
            hour,
            minutes,
            title,
            description,
            location,
            office,
            languages,
            capacity,
            status,
        ) = *e;
        let date = now.date().checked_add(jiff::Span::new().days(days))?;
        let start = date
            .at(hour, 0, 0, 0)
            .to_zoned_datetime(now.time_zone().clone())?;
        let end = start.checked_add(jiff::Span::new().minutes(minutes))?;
        let format = |z: &jiff::ZonedDateTime| z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string();
        let cells = vec![
            ("title".to_string(), text(title)),
            ("description".to_string(), text(description)),
            ("starts_at".to_string(), text(&format(&start))),
            ("ends_at".to_string(), text(&format(&end))),
            ("location".to_string(), text(location)),
            ("office".to_string(), text(&lab[office].name)),
            ("language".to_string(), text(languages)),
            (
                "capacity".to_string(),
                Plaintext::new(crate::value::Value::Integer(capacity)),
            ),
            ("status".to_string(), text(status)),
        ];
        lab[office]
            .client()
            .put_row("outreach_events", &format!("event-{:02}", i + 1), cells)
            .await?;
    }
    for r in RESIDENTS {
        let (office, id, name, birth, nationality, phone, notes, arrival, household) = *r;
        let cells = vec![
            ("full_name".to_string(), text(name)),
            ("birth_date".to_string(), text(birth)),
            ("nationality".to_string(), text(nationality)),
            ("phone".to_string(), text(phone)),
            ("case_notes".to_string(), text(notes)),
            ("arrival_date".to_string(), text(arrival)),
            (
                "household_size".to_string(),
                Plaintext::new(crate::value::Value::Integer(household)),
            ),
            ("status".to_string(), text("active")),
        ];
        lab[office].client().put_row("residents", id, cells).await?;
    }
    Ok(())
}

async fn connected(client: &Client) -> bool {
    client.status().await.is_ok_and(|s| {
        s.peers
            .iter()
            .all(|p| p.state == crate::node::status::PeerState::Connected)
    })
}

async fn in_sync(a: &Client, b: &Client) -> bool {
    match (a.status().await, b.status().await) {
        (Ok(x), Ok(y)) => {
            x.digest == y.digest
                && x.peers
                    .iter()
                    .chain(&y.peers)
                    .all(|p| p.in_sync == Some(true))
        }
        _ => false,
    }
}

async fn wait_until<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
