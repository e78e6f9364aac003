//! The web agenda in a real browser: Debian's headless Chromium driven
//! through WebDriver (`chromium`, `chromium-driver`), against two real
//! offices on 127.0.0.1.
//!
//! An editor signs in at Tijuana with the link `puente staff add` printed,
//! creates an event in the form, and a viewer at San Diego sees it after
//! sync, without any edit form. The language follows the browser, can be
//! switched and is remembered. The run saves screenshots of the agenda at
//! 360 and 1280 px in Spanish and English (and of the form and the status
//! panel) under target/tmp/screenshots/, and checks that nothing is wider
//! than a 360 px phone.
//!
//! Must not: pass without a browser: if Chromium or its driver is missing
//! the test fails and says which packages to install.

use crate::cluster;
use crate::web;

use std::time::Duration;

use cluster::*;
use jiff::tz::TimeZone;
use puente::value::{Plaintext, Value};
use serde_json::json;
use web::webdriver::{self, Browser, png_size, screenshot_dir};
use web::{SD, TJ, add_staff, two_offices};

fn tijuana_day(days: i64) -> jiff::civil::Date {
    jiff::Timestamp::now()
        .to_zoned_datetime(TimeZone::get("America/Tijuana").unwrap())
        .date()
        .checked_add(jiff::Span::new().days(days))
        .unwrap()
}

/// RFC 3339 in Tijuana's offset for `days` from today at `hour`.
fn at(days: i64, hour: i8, minute: i8) -> String {
    let tz = TimeZone::get("America/Tijuana").unwrap();
    let z = tijuana_day(days)
        .at(hour, minute, 0, 0)
        .to_zoned_datetime(tz)
        .unwrap();
    z.timestamp().display_with_offset(z.offset()).to_string()
}

/// An event to seed: id, text columns, capacity.
type Seed<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<i64>);

/// A week of realistic events, so the screenshots show what staff see.
async fn seed(o: &Office) {
    let events: &[Seed<'_>] = &[
        (
            "seed-1",
            &[
                ("title", "Taller de derechos laborales"),
                ("starts_at", &at(1, 10, 0)),
                ("ends_at", &at(1, 12, 0)),
                ("office", "tijuana"),
                ("location", "Casa del Migrante, salón 2"),
                ("language", "es"),
                (
                    "description",
                    "Qué hacer si no le pagan: derechos, pruebas y dónde denunciar. Traer identificación si la tiene.",
                ),
                ("status", "scheduled"),
            ],
            Some(25),
        ),
        (
            "seed-2",
            &[
                ("title", "Legal clinic: asylum basics"),
                ("starts_at", &at(1, 17, 30)),
                ("ends_at", &at(1, 19, 0)),
                ("office", "san-diego"),
                ("location", "Public library, community room"),
                ("language", "es,en"),
                ("status", "scheduled"),
            ],
            Some(40),
        ),
        (
            "seed-3",
            &[
                ("title", "Feria de salud"),
                ("starts_at", &at(2, 9, 0)),
                ("ends_at", &at(2, 14, 0)),
                ("office", "tijuana"),
                ("location", "Parque Teniente Guerrero"),
                ("language", "es"),
                ("status", "cancelled"),
                ("description", "Cancelada por lluvia; se reprograma."),
            ],
            None,
        ),
        (
            "seed-4",
            &[
                ("title", "Clases de inglés"),
                ("starts_at", &at(3, 18, 0)),
                ("ends_at", &at(3, 19, 30)),
                ("office", "tijuana"),
                ("location", "Centro cultural"),
                ("language", "es,en"),
                ("status", "scheduled"),
            ],
            Some(15),
        ),
    ];
    for (id, cells, capacity) in events {
        let mut cells: Vec<(String, Plaintext)> = cells
            .iter()
            .map(|(c, v)| (c.to_string(), Plaintext::text(*v)))
            .collect();
        if let Some(n) = capacity {
            cells.push(("capacity".into(), Plaintext::new(Value::Integer(*n))));
        }
        o.client()
            .put_row("outreach_events", id, cells)
            .await
            .unwrap();
    }
}

async fn sign_in(b: &Browser, login_url: &str) {
    b.goto(login_url).await;
    b.click("form[action='/login'] button[type=submit]").await;
    b.wait_source("class=\"pager\"").await;
    let url = b.url().await;
    assert!(
        url.ends_with("/agenda"),
        "after sign-in: {url}\n{}",
        b.source().await
    );
}

/// The page is not wider than the window (nothing to scroll sideways).
async fn fits(b: &Browser, width: u32) {
    let scroll = b
        .script("return document.documentElement.scrollWidth;", json!([]))
        .await
        .as_u64()
        .unwrap();
    assert!(
        scroll <= u64::from(width),
        "{} is {scroll} px wide in a {width} px window",
        b.url().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_edit_at_tijuana_and_see_it_at_san_diego_in_a_real_browser() {
    assert!(
        webdriver::available(),
        "the browser tests need Debian's chromium and chromium-driver: apt-get install chromium chromium-driver"
    );
    let c = two_offices().await;
    let (tj, sd) = (&c[TJ], &c[SD]);
    seed(tj).await;
    let editor = add_staff(tj, "editor-tj", "editor").await;
    let admin = add_staff(tj, "admin-tj", "admin").await;
    let viewer = add_staff(sd, "viewer-sd", "viewer").await;
    let (editor_link, viewer_link) = (
        editor.login_url.clone().unwrap(),
        viewer.login_url.clone().unwrap(),
    );
    wait_converged("the seeded events reach San Diego", &[tj, sd]).await;
    let shots = screenshot_dir();

    // An editor at Tijuana, browser in English.
    let b = Browser::start(1280, 900, "en-US,en").await;
    sign_in(&b, &editor_link).await;
    assert!(
        b.source().await.contains("Outreach agenda"),
        "English from the browser"
    );
    b.click("a[href='/events/new']").await;
    b.type_into("#title", "Asesoría migratoria gratuita").await;
    b.set_value("input[name=start_date]", &tijuana_day(4).to_string())
        .await;
    b.set_value("input[name=start_time]", "11:00").await;
    // First a mistake: the end before the start. The form comes back with
    // the error and what was typed.
    b.set_value("input[name=end_time]", "10:00").await;
    b.type_into("#location", "Casa del Migrante").await;
    b.type_into("#capacity", "30").await;
    b.click("form.event button[type=submit]").await;
    let page = b.wait_source("role=\"alert\"").await;

    assert!(
        page.contains("End: the event must end after it starts."),
        "{page}"
    );
    assert!(page.contains("Asesoría migratoria gratuita"));
    b.full_screenshot(&shots.join("form-errors-en-1280.png"))
        .await;
    b.set_value("input[name=end_time]", "13:00").await;
    b.click("form.event button[type=submit]").await;
    b.wait_source("class=\"pager\"").await;
    let url = b.url().await;
    assert!(url.contains("/agenda"), "after saving: {url}");
    assert!(b.source().await.contains("Asesoría migratoria gratuita"));
    // Switch to Spanish; the choice is remembered.
    b.click("a[hreflang=es]").await;
    b.wait_source("Agenda de actividades").await;
    let tj_web = tj.web.unwrap();
    b.goto(&format!("http://{tj_web}/agenda")).await;
    assert!(
        b.source().await.contains("Agenda de actividades"),
        "the language is remembered"
    );
    // Screenshots at 1280 px in both languages.
    for lang in ["es", "en"] {
        b.goto(&format!("http://{tj_web}/agenda?lang={lang}")).await;
        fits(&b, 1280).await;
        let png = b
            .screenshot(&shots.join(format!("agenda-{lang}-1280.png")))
            .await;
        assert_eq!(png_size(&png).0, 1280);
        b.full_screenshot(&shots.join(format!("agenda-{lang}-1280-full.png")))
            .await;
    }
    b.quit();

    // A viewer at San Diego on a phone, browser in Spanish: the event
    // arrives by sync; there is no way to edit.
    let sd_web = sd.web.unwrap();
    let phone = Browser::start(360, 740, "es-MX,es").await;
    sign_in(&phone, &viewer_link).await;
    phone
        .wait_for_text(
            &format!("http://{sd_web}/agenda"),
            "Asesoría migratoria gratuita",
            Duration::from_secs(30),
        )
        .await;
    assert!(phone.source().await.contains("Agenda de actividades"));
    assert!(
        phone.find_all("a.edit").await.is_empty(),
        "a viewer gets no edit link"
    );
    assert!(phone.find_all("a[href='/events/new']").await.is_empty());
    fits(&phone, 360).await;
    phone.goto(&format!("http://{sd_web}/events/new")).await;
    assert!(
        phone.find_all("form.event").await.is_empty(),
        "a viewer gets no edit form"
    );
    assert!(
        phone
            .source()
            .await
            .contains("Su función no permite hacer esto.")
    );
    phone
        .goto(&format!("http://{sd_web}/events/seed-1/edit"))
        .await;
    assert!(phone.find_all("form.event").await.is_empty());

    // The same phone at Tijuana as the editor: screenshots at 360 px.
    sign_in(&phone, &editor_link).await;
    for lang in ["es", "en"] {
        phone
            .goto(&format!("http://{tj_web}/agenda?lang={lang}"))
            .await;
        fits(&phone, 360).await;
        let png = phone
            .screenshot(&shots.join(format!("agenda-{lang}-360.png")))
            .await;
        assert_eq!(png_size(&png).0, 360);
        phone
            .full_screenshot(&shots.join(format!("agenda-{lang}-360-full.png")))
            .await;
        phone
            .goto(&format!("http://{tj_web}/events/seed-1/edit"))
            .await;
        fits(&phone, 360).await;
        phone
            .full_screenshot(&shots.join(format!("form-{lang}-360.png")))
            .await;
    }
    // Signed out, then in as a staff admin: the status panel.
    phone.goto(&format!("http://{tj_web}/agenda?lang=es")).await;
    phone.click("form[action='/logout'] button").await;
    phone
        .wait_source("form method=\"post\" action=\"/login\"")
        .await;
    sign_in(&phone, admin.login_url.as_deref().unwrap()).await;
    phone.click("a[href='/status']").await;
    let page = phone.wait_source("<table").await;
    assert!(
        page.contains("Estado de la sincronización") && page.contains("San Diego"),
        "{page}"
    );
    fits(&phone, 360).await;
    phone.screenshot(&shots.join("status-es-360.png")).await;
    phone.quit();
    eprintln!("screenshots in {}", shots.display());
    // PUENTE_UPDATE_DOCS=1 refreshes the ones README shows.
    if std::env::var_os("PUENTE_UPDATE_DOCS").is_some() {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        for (from, to) in [
            ("agenda-es-360-full.png", "web-agenda-es-360.png"),
            ("agenda-en-1280.png", "web-agenda-en-1280.png"),
        ] {
            std::fs::copy(shots.join(from), docs.join(to)).unwrap();
        }
    }
}
