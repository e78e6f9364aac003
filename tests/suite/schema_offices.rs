//! A schema change reaching two real offices one at a time: Tijuana adopts
//! a new column and a new table first and both offices keep writing; while
//! their schemas differ each status says what differs, in words, and what
//! to do, and nothing crosses; once San Diego has the same schema every
//! write made meanwhile arrives at both and the digests are equal.

use crate::cluster;

use cluster::{Cluster, OfficeExt, cell, wait_converged, wait_for};

const TJ: usize = 0;
const SD: usize = 1;

/// The shipped schema with a column and a table more.
fn newer_schema(current: &str) -> String {
    format!(
        "{}\n[tables.volunteers.columns]\nname = \"shared\"\nphone = {{ sealed = \"mx\" }}\n",
        current.replace(
            "location = \"shared\"",
            "location = \"shared\"\naccessibility = \"shared\""
        )
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offices_upgrade_their_schema_one_at_a_time_and_lose_nothing() {
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    c.link(TJ, SD);
    c.start_all().await;
    c[TJ]
        .put("outreach_events", "before", &[("title", "Antes")])
        .await;
    wait_converged("in sync before the change", &[&c[TJ], &c[SD]]).await;

    // Tijuana adopts the newer schema (at its restart).
    let schema_file = c[TJ].dir.join("schema.toml");
    let newer = newer_schema(&std::fs::read_to_string(&schema_file).unwrap());
    std::fs::write(&schema_file, &newer).unwrap();
    assert_eq!(c[TJ].stop().unwrap(), Some(0));
    c[TJ].start().await.unwrap();

    let (tj, sd) = (&c[TJ], &c[SD]);
    // Each side says what differs, in words, and what to do.
    for (office, says) in [
        (
            tj,
            [
                "column `outreach_events.accessibility` is only in this office's schema",
                "table `volunteers` is only in this office's schema",
            ],
        ),
        (
            sd,
            [
                "column `outreach_events.accessibility` is only in tijuana's schema",
                "table `volunteers` is only in tijuana's schema",
            ],
        ),
    ] {
        wait_for("the differences in status", || async {
            let s = office.status().await;
            let p = &s.peers[0];
            says.iter()
                .all(|w| p.schema_differences.iter().any(|d| d == w))
                && p.schema_advice
                    .as_deref()
                    .is_some_and(|a| a.contains("same schema file"))
        })
        .await;
    }

    // Both keep writing meanwhile.
    let mut written_at_tj = Vec::new();
    let mut written_at_sd = Vec::new();
    for i in 0..15 {
        let id = format!("tj-{i}");
        tj.put(
            "outreach_events",
            &id,
            &[("title", "Nuevo"), ("accessibility", "rampa")],
        )
        .await;
        written_at_tj.push(("outreach_events", id, "accessibility", "rampa"));
        let vid = format!("vol-{i}");
        tj.put(
            "volunteers",
            &vid,
            &[("name", "Voluntaria"), ("phone", "+52 664 1")],
        )
        .await;
        written_at_tj.push(("volunteers", vid, "name", "Voluntaria"));
        let sid = format!("sd-{i}");
        sd.put("outreach_events", &sid, &[("title", "Written meanwhile")])
            .await;
        written_at_sd.push(("outreach_events", sid, "title", "Written meanwhile"));
    }
    // Nothing crossed.
    assert_eq!(
        cell(sd, "outreach_events", "tj-3", "title", false).await,
        None
    );
    assert_eq!(
        cell(tj, "outreach_events", "sd-3", "title", false).await,
        None
    );

    // San Diego gets the same schema file.
    std::fs::write(c[SD].dir.join("schema.toml"), &newer).unwrap();
    assert_eq!(c[SD].stop().unwrap(), Some(0));
    c[SD].start().await.unwrap();
    let (tj, sd) = (&c[TJ], &c[SD]);
    wait_converged("in sync once the schemas match", &[tj, sd]).await;
    for (table, id, column, v) in written_at_tj.iter().chain(&written_at_sd) {
        for o in [tj, sd] {
            assert_eq!(
                cell(o, table, id, column, false).await.as_deref(),
                Some(*v),
                "{table}/{id}/{column} at {}",
                o.name
            );
        }
    }
    let (a, b) = (tj.status().await, sd.status().await);
    assert_eq!(a.digest, b.digest);
    assert!(a.peers[0].schema_differences.is_empty());
    // The sealed column of the new table stays sealed at San Diego and
    // opens at Tijuana.
    for o in [tj, sd] {
        assert_eq!(
            cell(o, "volunteers", "vol-2", "phone", false)
                .await
                .as_deref(),
            Some("<sealed>"),
            "vol-2's phone unrevealed at {}",
            o.name
        );
    }
    assert_eq!(
        cell(sd, "volunteers", "vol-2", "phone", true).await,
        None,
        "san diego has no identity to reveal vol-2's phone with"
    );
    assert_eq!(
        cell(tj, "volunteers", "vol-2", "phone", true)
            .await
            .as_deref(),
        Some("+52 664 1")
    );
}
