//! The disk fills up while an office applies a peer's changes: each batch
//! group is refused whole, the session is retried later, nothing is half
//! applied, and the daemon keeps serving. When space returns, it catches
//! up. Two ways to fill the disk, one test each: SQLite's page cap
//! (`[debug] max_db_pages`), which runs everywhere, and a real 3 MiB tmpfs
//! over the data dir, which needs root (CI runs as root; as root, a tmpfs
//! that cannot be mounted fails the test; otherwise the test says that it
//! checked nothing).

use crate::cluster;
use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use cluster::*;

/// A tmpfs mounted over a folder, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// How the disk is filled.
enum Full {
    PageCap,
    Tmpfs(Tmpfs),
}

const ROWS: usize = 800;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_played_by_the_page_cap_refuses_whole_batches_and_recovers() {
    let c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    // ~2.5 MB of 4 KiB pages.
    c.debug_setting(1, "max_db_pages = 600");
    full_disk(c, Full::PageCap).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_tmpfs_refuses_whole_batches_and_recovers_when_root() {
    let c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    if !support::runs_as_root("a real full disk is a tmpfs mounted for the test") {
        return;
    }
    let Some(tmpfs) = Tmpfs::mount(&c[1].data_dir(), "3m") else {
        panic!("running as root, yet `mount -t tmpfs` failed: this test needs a real full disk");
    };
    full_disk(c, Full::Tmpfs(tmpfs)).await;
}

async fn full_disk(mut c: Cluster, full: Full) {
    c.link(0, 1);
    c.start_all().await;
    let (tj, sd) = (&c[0], &c[1]);
    // More than fits: about 5 MB.
    let client = tj.client();
    for i in 0..ROWS {
        let id = format!("{i:04}");
        let big = "y".repeat(6_000);
        let cells = vec![
            (
                "title".to_string(),
                puente::value::Plaintext::text(format!("event {id}")),
            ),
            (
                "description".to_string(),
                puente::value::Plaintext::text(big),
            ),
        ];
        client.put_row("outreach_events", &id, cells).await.unwrap();
    }
    wait_for("san diego refuses a batch for lack of space", || async {
        sd.client().status().await.is_ok_and(|s| {
            s.peers[0]
                .counters
                .errors
                .get("apply_failed")
                .copied()
                .unwrap_or(0)
                >= 1
        })
    })
    .await;
    // The daemon keeps serving its admin socket, and local reads work.
    let status = sd.status().await;
    assert!(
        (status.rows["outreach_events"] as usize) < ROWS,
        "{:?}",
        status.rows
    );
    let logs = sd.logs();
    assert!(
        logs.contains("could not store the peer's changes"),
        "the failure was not logged"
    );
    assert!(
        logs.contains("full"),
        "the log does not say the disk is full"
    );

    // Space comes back: the retried session catches up.
    match &full {
        Full::Tmpfs(t) => t.resize("64m"),
        Full::PageCap => {
            assert_eq!(c[1].stop().unwrap(), Some(0));
            let config = c[1].config.clone();
            let text = std::fs::read_to_string(&config)
                .unwrap()
                .replace("max_db_pages = 600", "");
            std::fs::write(&config, text).unwrap();
            c[1].start().await.unwrap();
        }
    }
    let (tj, sd) = (&c[0], &c[1]);
    sd.client().sync_now().await.unwrap();
    tj.client().sync_now().await.unwrap();
    wait_converged("after space returned", &[tj, sd]).await;
    assert_eq!(sd.status().await.rows["outreach_events"] as usize, ROWS);

    // Nothing was ever half applied.
    assert_eq!(c[1].stop().unwrap(), Some(0));
    assert_replica_sound(&c[1], &c.lab.schema_text);
    // The tmpfs (if any) is unmounted before the temp dir is removed.
    drop(full);
    drop(c);
}
