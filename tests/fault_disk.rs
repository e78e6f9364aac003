//! The disk fills up while an office applies a peer's changes: each batch
//! group is refused whole, the session is retried later, nothing is half
//! applied, and the daemon keeps serving. When space returns, it catches
//! up. The data dir is a small tmpfs when the test may mount one (as root
//! in CI), otherwise SQLite's page cap (`[debug] max_db_pages`) plays the
//! full disk.

mod cluster;
mod support;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_whole_batches_and_recovers() {
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    c.link(0, 1);
    let tmpfs = Tmpfs::mount(&c[1].data_dir(), "3m");
    if tmpfs.is_none() {
        // ~2.5 MB of 4 KiB pages.
        c.debug_setting(1, "max_db_pages = 600");
    }
    c.start_all().await;
    let (tj, sd) = (&c[0], &c[1]);
    // Enough rows that they cannot fit: about 12 MB.
    let client = tj.client();
    for chunk in 0..40 {
        for i in 0..50 {
            let id = format!("{chunk:02}-{i:02}");
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
    assert!(status.rows["outreach_events"] < 2_000, "{:?}", status.rows);
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
    match &tmpfs {
        Some(t) => t.resize("64m"),
        None => {
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
    assert_eq!(sd.status().await.rows["outreach_events"], 2_000);

    // Nothing was ever half applied.
    assert_eq!(c[1].stop().unwrap(), Some(0));
    assert_replica_sound(&c[1], &c.lab.schema_text);
    drop(tmpfs);
}
