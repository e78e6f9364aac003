//! Protocol version 3 compresses batch frames where it pays: two offices of
//! this build send a catch-up compressed, an office speaking only versions
//! 1 and 2 receives the same changes as they are, and all three converge.

use crate::cluster;

use cluster::{Cluster, OfficeExt, wait_converged, wait_for};
use puente::node::status::Status;

const TJ: usize = 0;
const SD: usize = 1;
const OLDER: usize = 2;

fn peer<'a>(s: &'a Status, name: &str) -> &'a puente::node::status::PeerStatus {
    s.peers.iter().find(|p| p.name == name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_3_compresses_catch_ups_and_falls_back_for_version_2() {
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false), ("older", false)]);
    c.debug_setting(OLDER, "protocols = [1, 2]");
    c.link(TJ, SD);
    c.link(TJ, OLDER);
    // Tijuana writes while alone, so the others catch up in large batches.
    c[TJ].start().await.unwrap();
    for i in 0..200 {
        c[TJ]
            .put(
                "outreach_events",
                &format!("ev-{i:03}"),
                &[
                    ("title", &format!("Clinic day {i} at the community centre")),
                    (
                        "description",
                        &"Bring proof of address and the appointment letter. ".repeat(8),
                    ),
                    ("location", "Avenida Revolución 1000, Zona Centro"),
                ],
            )
            .await;
    }
    c[SD].start().await.unwrap();
    c[OLDER].start().await.unwrap();
    let (tj, sd, older) = (&c[TJ], &c[SD], &c[OLDER]);
    wait_converged("all three offices", &[tj, sd, older]).await;
    wait_for("the protocols are shown", || async {
        let s = tj.status().await;
        peer(&s, "san-diego").protocol == Some(3) && peer(&s, "older").protocol == Some(2)
    })
    .await;

    // The same 200 rows crossed both links: compressed to san-diego, as
    // they are to the office speaking version 2.
    let to_sd = peer(&sd.status().await, "tijuana").counters.bytes_in;
    let to_older = peer(&older.status().await, "tijuana").counters.bytes_in;
    assert!(
        to_older > 100_000,
        "{to_older} bytes to the version 2 office"
    );
    assert!(
        (to_sd as f64) < 0.5 * to_older as f64,
        "compressed {to_sd} bytes against {to_older} uncompressed"
    );

    // Live changes keep flowing both ways over both versions.
    sd.put("outreach_events", "from-sd", &[("title", "from san diego")])
        .await;
    older
        .put(
            "outreach_events",
            "from-older",
            &[("title", "from the older office")],
        )
        .await;
    wait_converged("after live writes", &[tj, sd, older]).await;
}
