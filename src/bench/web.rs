//! Owns: the web agenda's cost: a replica of N outreach events (90 days of
//! them, several offices, a share cancelled) behind the real web server in
//! this process on 127.0.0.1, asked for the agenda page and the calendar
//! feed over HTTP by a signed-in editor.
//!
//! Figures: the agenda page's time when the replica has just changed (the
//! server reads every event again), its time with the events cached (the
//! head has not moved), its size, and the feed's time and size.
//! Must not: bind anything but 127.0.0.1.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::median;
use super::merge::TempDir;
use crate::clock::{SystemClock, WallClock};
use crate::config::{NodeConfig, Schema};
use crate::fingerprint::Fingerprint;
use crate::node::Node;
use crate::seal::Keyring;
use crate::store::Store;
use crate::value::{Plaintext, Value};

pub struct WebFigures {
    pub events: usize,
    /// Agenda page right after a change (events read again), per sample.
    pub agenda_cold_ms: Vec<f64>,
    /// Agenda page with the events cached, per sample.
    pub agenda_warm_ms: Vec<f64>,
    pub agenda_bytes: usize,
    pub feed_ms: Vec<f64>,
    pub feed_bytes: usize,
}

/// One GET (or form POST) on a new connection: status, Set-Cookie values,
/// body.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: &str,
    body: &str,
) -> Result<(u16, Vec<String>, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept-Language: es\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8(raw).context("the answer is not UTF-8")?;
    let (head, body) = text.split_once("\r\n\r\n").context("not an HTTP answer")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    let cookies = head
        .lines()
        .filter_map(|l| l.strip_prefix("set-cookie: "))
        .filter_map(|c| c.split(';').next())
        .map(str::to_string)
        .collect();
    Ok((status, cookies, body.to_string()))
}

fn csrf_of(page: &str) -> Result<String> {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).context("no CSRF field")? + marker.len();
    Ok(page[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_string())
}

/// N events over 90 days from today, as the offices would write them.
fn events(n: usize, now: jiff::Timestamp) -> Vec<crate::store::RowPut> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    let offices = ["tijuana", "san-diego", "tijuana", "ensenada"];
    let places = [
        "Casa del Migrante, salón 2",
        "Public library, community room",
        "Parque Teniente Guerrero",
        "Centro cultural",
    ];
    (0..n)
        .map(|i| {
            let start =
                now + jiff::SignedDuration::from_mins(rng.random_range(0..90 * 24 * 60) / 15 * 15);
            let end = start + jiff::SignedDuration::from_mins(rng.random_range(4..12) * 15);
            let z = start.to_zoned_datetime(jiff::tz::offset(-8).to_time_zone());
            let text = |t: jiff::Timestamp| t.display_with_offset(z.offset()).to_string();
            let cells = vec![
                (
                    "title".to_string(),
                    Plaintext::text(format!("Taller comunitario {i}")),
                ),
                ("starts_at".into(), Plaintext::text(text(start))),
                ("ends_at".into(), Plaintext::text(text(end))),
                ("office".into(), Plaintext::text(offices[i % offices.len()])),
                ("location".into(), Plaintext::text(places[i % places.len()])),
                (
                    "language".into(),
                    Plaintext::text(if i % 3 == 0 { "es,en" } else { "es" }),
                ),
                (
                    "capacity".into(),
                    Plaintext::new(Value::Integer(10 + (i % 40) as i64)),
                ),
                (
                    "description".into(),
                    Plaintext::text(
                        "Información y acompañamiento; traer identificación si la tiene.",
                    ),
                ),
                (
                    "status".into(),
                    Plaintext::text(if i % 10 == 0 {
                        "cancelled"
                    } else {
                        "scheduled"
                    }),
                ),
            ];
            (format!("ev-{i:05}"), cells)
        })
        .collect()
}

pub async fn run(n: usize, samples: usize) -> Result<WebFigures> {
    let tmp = TempDir::new()?;
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("data"))?;
    let config_text = format!(
        "name = \"tijuana\"\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\nadmin_socket = \"admin.sock\"\nschema = \"schema.toml\"\n[tls]\ncert = \"c\"\nkey = \"k\"\n[[peers]]\nname = \"san-diego\"\nfingerprint = \"{}\"\n[[peers]]\nname = \"ensenada\"\nfingerprint = \"{}\"\n[web]\nlisten = \"127.0.0.1:0\"\ntime_zone = \"America/Tijuana\"\n",
        Fingerprint([1; 32]),
        Fingerprint([2; 32])
    );
    let config = NodeConfig::parse(&dir.join("puente.toml"), &config_text)?;
    let schema = Arc::new(Schema::parse(
        &dir.join("schema.toml"),
        crate::config::schema::DEFAULT_SCHEMA,
    )?);
    let clock: Arc<dyn WallClock> = Arc::new(SystemClock);
    let now = jiff::Timestamp::now();
    let mut store = Store::open(
        &config.database_path(),
        crate::store::StoreOptions::new(schema.clone(), Arc::new(Keyring::empty()), clock.clone()),
    )?;
    // The office the daemon's config names (it writes residents below).
    store.set_office(&config.name)?;
    store.put_many(crate::schedule::TABLE, events(n, now))?;
    let token = crate::access::staff_tokens::new_token(&mut rand::rng());
    let hash = crate::access::staff_tokens::hash(&token);
    let calendar = crate::access::staff_tokens::new_token(&mut rand::rng());
    store.staff_add(
        "bench",
        "editor",
        &hash,
        &crate::access::staff_tokens::hash(&calendar),
    )?;
    let web_config = config.web.clone().context("the bench config has [web]")?;
    let node = Node::new(config, schema, Fingerprint([0; 32]), clock, store);
    let web = crate::web::start(node.clone(), &web_config).await?;
    let addr = web.local_addr;

    // Sign in as a person would.
    let (_, cookies, page) = request(addr, "GET", "/login", "", "").await?;
    let login_cookie = cookies.join("; ");
    let body = format!("csrf={}&token={token}", csrf_of(&page)?);
    let (status, cookies, _) = request(addr, "POST", "/login", &login_cookie, &body).await?;
    if status != 303 {
        bail!("signing in to the bench's web agenda failed (HTTP {status})");
    }
    let session = cookies
        .into_iter()
        .find(|c| c.starts_with("puente_session="))
        .context("no session cookie")?;

    let mut cold = Vec::new();
    let mut warm = Vec::new();
    let mut agenda_bytes = 0;
    for i in 0..samples {
        // A change elsewhere moves the head: the next page reads again.
        node.put(
            "residents".into(),
            "bench-touch".into(),
            vec![(
                "household_size".into(),
                Plaintext::new(Value::Integer(i as i64 + 1)),
            )],
        )
        .await?;
        let started = Instant::now();
        let (status, _, page) = request(addr, "GET", "/agenda", &session, "").await?;
        cold.push(started.elapsed().as_secs_f64() * 1000.0);
        if status != 200 {
            bail!("the agenda answered HTTP {status}");
        }
        agenda_bytes = page.len();
        let started = Instant::now();
        request(addr, "GET", "/agenda", &session, "").await?;
        warm.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let mut feed = Vec::new();
    let mut feed_bytes = 0;
    let path = format!("/cal/{calendar}/outreach.ics");
    for _ in 0..samples.max(1) {
        let started = Instant::now();
        let (status, _, body) = request(addr, "GET", &path, "", "").await?;
        feed.push(started.elapsed().as_secs_f64() * 1000.0);
        if status != 200 {
            bail!("the feed answered HTTP {status}");
        }
        feed_bytes = body.len();
    }
    web.stop().await;
    Ok(WebFigures {
        events: n,
        agenda_cold_ms: cold,
        agenda_warm_ms: warm,
        agenda_bytes,
        feed_ms: feed,
        feed_bytes,
    })
}

/// The figures for the report.
pub fn figures(f: &WebFigures) -> Vec<super::Figure> {
    use super::Figure;
    let n = f.events;
    let cold = median(&f.agenda_cold_ms);
    let kb = f.agenda_bytes as f64 / 1000.0;
    vec![
        Figure::new(
            "web.agenda_ms",
            &format!("web agenda page, {n} events, right after a change (HTTP on loopback)"),
            cold,
            "ms",
        )
        .target("< 20 ms", cold < 20.0)
        .samples(f.agenda_cold_ms.clone()),
        Figure::new(
            "web.agenda_cached_ms",
            &format!("web agenda page, {n} events, events cached"),
            median(&f.agenda_warm_ms),
            "ms",
        )
        .samples(f.agenda_warm_ms.clone()),
        Figure::new("web.agenda_kb", "web agenda page size", kb, "kB").target("< 60 kB", kb < 60.0),
        Figure::new(
            "web.feed_ms",
            &format!("calendar feed, {n} events"),
            median(&f.feed_ms),
            "ms",
        )
        .samples(f.feed_ms.clone()),
        Figure::new(
            "web.feed_kb",
            "calendar feed size",
            f.feed_bytes as f64 / 1000.0,
            "kB",
        ),
    ]
}
