//! Protocol version negotiation between real daemons: each pair settles on
//! the newest version both speak (TLS ALPN), says which in status, and
//! syncs; a pair with no version in common is refused at both ends with a
//! message naming both lists.

use crate::cluster;

use cluster::{Cluster, OfficeExt, cell, wait_for};
use puente::node::status::PeerState;

const TJ: usize = 0;
const OLD: usize = 1;
const NEWER: usize = 2;
const LONELY: usize = 3;
const FAR: usize = 4;

fn protocol_with(s: &puente::node::status::Status, peer: &str) -> Option<u16> {
    s.peers
        .iter()
        .find(|p| p.name == peer)
        .and_then(|p| p.protocol)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offices_negotiate_the_newest_common_version_or_refuse_naming_both() {
    // tijuana speaks what this build speaks (1, 2, 3); `old` only 1, like
    // puente 0.1.0; `newer` advertises 1 to 4, like a release after this
    // one; `lonely` only 4; `far` (this build) is linked to `newer` alone,
    // so what it gets from `old` and sends there is relayed.
    let mut c = Cluster::new(&[
        ("tijuana", true),
        ("old", false),
        ("newer", false),
        ("lonely", false),
        ("far", false),
    ]);
    c.debug_setting(OLD, "protocols = [1]");
    c.debug_setting(NEWER, "protocols = [1, 2, 3, 4]");
    c.debug_setting(LONELY, "protocols = [4]");
    c.link(TJ, OLD);
    c.link(TJ, NEWER);
    c.link(NEWER, OLD);
    c.link(TJ, LONELY);
    c.link(NEWER, FAR);
    c.start_all().await;
    let (tj, old, newer, lonely, far) = (&c[TJ], &c[OLD], &c[NEWER], &c[LONELY], &c[FAR]);

    wait_for("every pair with a common version connects", || async {
        let s = tj.status().await;
        let n = newer.status().await;
        protocol_with(&s, "old") == Some(1)
            && protocol_with(&s, "newer") == Some(3)
            && protocol_with(&n, "old") == Some(1)
            && protocol_with(&n, "tijuana") == Some(3)
    })
    .await;
    assert_eq!(protocol_with(&old.status().await, "tijuana"), Some(1));

    // Changes flow over both versions, directly and relayed: `far` has no
    // link to `old`, so a write at either end reaches the other only
    // through a version 1 link and a version 3 link, one after the other.
    assert!(
        !far.status().await.peers.iter().any(|p| p.name == "old"),
        "far has no link to old"
    );
    old.put("outreach_events", "from-old", &[("title", "v1 office")])
        .await;
    newer
        .put("outreach_events", "from-newer", &[("title", "v3 office")])
        .await;
    far.put(
        "outreach_events",
        "from-far",
        &[("title", "relayed office")],
    )
    .await;
    wait_for(
        "writes cross version 1 and 3 links, relayed too",
        || async {
            cell(tj, "outreach_events", "from-old", "title", false)
                .await
                .is_some()
                && cell(old, "outreach_events", "from-newer", "title", false)
                    .await
                    .is_some()
                && cell(far, "outreach_events", "from-old", "title", false)
                    .await
                    .as_deref()
                    == Some("v1 office")
                && cell(old, "outreach_events", "from-far", "title", false)
                    .await
                    .as_deref()
                    == Some("relayed office")
        },
    )
    .await;

    // No version in common: refused at both ends, each naming both lists.
    wait_for("tijuana refuses lonely, naming both", || async {
        let s = tj.status().await;
        let p = s.peers.iter().find(|p| p.name == "lonely").unwrap();
        p.last_error.as_deref().is_some_and(|e| {
            e.contains("no protocol version in common")
                && e.contains("speaks 4, this node speaks 1, 2, 3")
        })
    })
    .await;
    wait_for("lonely shows tijuana as refused, naming both", || async {
        let s = lonely.status().await;
        let p = s.peers.iter().find(|p| p.name == "tijuana").unwrap();
        p.state == PeerState::Refused
            && p.detail.as_deref().is_some_and(|e| {
                e.contains("no protocol version in common")
                    && e.contains("speaks 1, 2, 3, this node speaks 4")
            })
    })
    .await;
    assert!(tj.logs().contains("no protocol version in common"));
    // Nothing crossed.
    assert_eq!(
        cell(lonely, "outreach_events", "from-old", "title", false).await,
        None
    );
}
