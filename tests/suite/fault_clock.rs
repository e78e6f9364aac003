//! One office's wall clock is a day ahead: the offices still converge,
//! status reports the skew on both sides, and hybrid logical clocks keep
//! the order of writes that saw each other.

use crate::cluster;

use cluster::*;

const DAY_MS: i64 = 86_400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_a_day_ahead_is_reported_and_hlc_order_still_decides() {
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    let relay = c.link_via_relay(0, 1).await;
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
