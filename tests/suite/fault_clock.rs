//! One office's wall clock is twelve hours ahead, within a drift bound of
//! a day: the offices still converge, status reports the skew on both
//! sides, and hybrid logical clocks keep the order of writes that saw each
//! other. Beyond the bound (the default five minutes), a clock years
//! ahead: its changes are held at the other office, whose clock and
//! writes stay in the present, and status and metrics name the office
//! whose clock is ahead and by how much.

use crate::cluster;

use cluster::*;

/// How far San Diego's clock is ahead (half a day).
const DAY_MS: i64 = 43_200_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_hours_ahead_within_the_bound_is_reported_and_hlc_order_still_decides() {
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    let relay = c.link_via_relay(0, 1).await;
    for office in [0, 1] {
        c.sync_setting(office, "max_clock_drift_s = 86400");
    }
    c.debug_setting(1, &format!("clock_offset_ms = {DAY_MS}"));
    c.start_all().await;
    let (tj, sd) = (&c[0], &c[1]);
    wait_for("connected", || connected(tj, "san-diego")).await;

    // Concurrent writes to one cell (the link is cut, so neither sees the
    // other's): San Diego's stamp is a day later, so it wins although
    // Tijuana wrote last in real time.
    relay.cut();
    sd.put(
        "outreach_events",
        "ev",
        &[("title", "from the clock a day ahead")],
    )
    .await;
    tj.put(
        "outreach_events",
        "ev",
        &[("title", "written later in real time")],
    )
    .await;
    relay.heal();
    tj.client().sync_now().await.unwrap();
    wait_converged("after the concurrent writes", &[tj, sd]).await;
    for o in [tj, sd] {
        assert_eq!(
            cell(o, "outreach_events", "ev", "title", false)
                .await
                .as_deref(),
            Some("from the clock a day ahead"),
            "{}",
            o.name
        );
    }
    // Tijuana has now seen that stamp: its next write orders after it.
    tj.put(
        "outreach_events",
        "ev",
        &[("title", "after seeing the future")],
    )
    .await;
    wait_converged("after the causal write", &[tj, sd]).await;
    for o in [tj, sd] {
        assert_eq!(
            cell(o, "outreach_events", "ev", "title", false)
                .await
                .as_deref(),
            Some("after seeing the future")
        );
    }

    // Both sides report the skew (to within a minute).
    let skew = |s: &puente::node::status::Status| s.peers[0].clock_skew_ms.expect("skew reported");
    let (a, b) = (tj.status().await, sd.status().await);
    assert!(
        (skew(&a) - DAY_MS).abs() < 60_000,
        "tijuana sees {} ms",
        skew(&a)
    );
    assert!(
        (skew(&b) + DAY_MS).abs() < 60_000,
        "san diego sees {} ms",
        skew(&b)
    );
    assert!(
        tj.logs().contains("clock differs"),
        "the skew was not logged"
    );
}

const YEAR_MS: i64 = 365 * 86_400_000;

/// The reproduction with real daemons: San Diego's clock is ten
/// years ahead (the lab's offset clock). Before the bound, Tijuana took
/// its stamps and stamped every later write in 2036; at the maximum, its
/// next `rows put` printed `hlc 0.0` and the row read back as 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_years_ahead_is_held_and_named_and_tijuana_writes_in_the_present() {
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    c.link(0, 1);
    c.debug_setting(1, &format!("clock_offset_ms = {}", 10 * YEAR_MS));
    c.start_all().await;
    let (tj, sd) = (&c[0], &c[1]);
    wait_for("connected", || connected(tj, "san-diego")).await;
    sd.put("outreach_events", "ev-2036", &[("title", "Feria de 2036")])
        .await;
    wait_for("san diego's change held at tijuana", || async {
        tj.status().await.peers[0].held == 1
    })
    .await;
    let status = tj.status().await;
    let ahead = status.peers[0]
        .clock_ahead
        .clone()
        .expect("clock_ahead in status");
    assert_eq!(ahead.office, "san-diego");
    assert!(
        (ahead.ahead_ms as i64 - 10 * YEAR_MS).abs() < 3_600_000,
        "{ahead:?}"
    );
    assert_eq!(ahead.max_drift_ms, puente::clock::DEFAULT_MAX_DRIFT_MS);
    // The person's view: status in words, the held list, the metrics.
    let config = tj.config.to_str().unwrap();
    let words = puente(&["status", "--config", config]);
    assert!(
        words.contains("clock ahead: san-diego stamped changes 9 years 364 days ahead")
            || words.contains("clock ahead: san-diego stamped changes 10 years 0 days ahead"),
        "{words}"
    );
    let held = puente(&["held", "list", "--config", config]);
    assert!(held.contains("ahead of this office's clock"), "{held}");
    let metrics = tj.client().metrics().await.unwrap();
    assert!(
        metrics.contains("puente_peer_changes_ahead_total{peer=\"san-diego\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("puente_peer_clock_ahead_seconds{peer=\"san-diego\"} 3"),
        "{metrics}"
    );
    // Tijuana writes in the present, and reads it back.
    let out = puente(&[
        "rows",
        "put",
        "outreach_events",
        "ev-after",
        "title=Clase de ingles",
        "--config",
        config,
    ]);
    assert!(out.starts_with("wrote "), "{out}");
    assert!(!out.contains("hlc 0.0"), "{out}");
    let hlc: puente::clock::Hlc = out
        .split("hlc ")
        .nth(1)
        .and_then(|r| r.split([' ', ')', ',']).next())
        .and_then(|h| h.parse().ok())
        .unwrap_or_else(|| panic!("no hlc in {out}"));
    let now_ms = jiff::Timestamp::now().as_millisecond() as u64;
    assert!(
        hlc.millis() <= now_ms + 1_000,
        "stamped {hlc} in the future: {out}"
    );
    let got = puente(&[
        "rows",
        "get",
        "outreach_events",
        "ev-after",
        "--config",
        config,
    ]);
    assert!(got.contains("Clase de ingles"), "{got}");
    // San Diego still gets Tijuana's write (its stamp is in its past).
    wait_for("tijuana's write at san diego", || async {
        cell(sd, "outreach_events", "ev-after", "title", false)
            .await
            .is_some()
    })
    .await;
    let logs = tj.logs();
    assert!(
        logs.contains("are stamped up to 9 years 364 days ahead")
            || logs.contains("are stamped up to 10 years 0 days ahead"),
        "{logs}"
    );
    assert!(
        logs.contains("san-diego's clock is ahead, so they are held until this clock catches up"),
        "{logs}"
    );
}
