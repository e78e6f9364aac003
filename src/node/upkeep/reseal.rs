//! `puente reseal`: re-encrypting a group's sealed cells to the schema's
//! current recipients, in the running daemon, while sync and staff writes
//! go on.
//!
//! Owns: checking a reseal may start (the group exists, this node holds
//! one of its identities), running it as a background task in bounded
//! steps — read a few hundred rows under the store's lock (in storage
//! order), seal them on every core with the lock released while the
//! previous step's write runs, write them back in one short transaction —
//! repeating passes while cells are left, the progress
//! status shows, and remembering an unfinished reseal in the replica so
//! that the daemon resumes it after a crash or restart.
//! Must not: seal or write itself (store/reseal.rs does), or let a value
//! into its progress or log lines (failed cells are named, never shown).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::config::Schema;
use crate::node::status::ResealStatus;
use crate::node::{Node, NodeError};
use crate::seal::Keyring;
use crate::seal::SealError;
use crate::store::StoreError;
use crate::store::reseal::{ResealCursor, ResealFailure, ResealWritten, StaleBatch, seal_batch};

/// Rows read, sealed and written per step: one transaction each.
pub const ROWS_PER_STEP: usize = 256;
/// Rows looked at per read, at most (most may be current already).
pub const SCAN_PER_STEP: usize = 4_096;
/// Passes over the tables while cells are left and the last pass did some.
const MAX_PASSES: usize = 4;
/// Failed cells named in the progress message.
const NAMED_FAILURES: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum ResealError {
    #[error("the schema has no group `{group}`; it has: {known}")]
    UnknownGroup { group: String, known: String },
    #[error(
        "this node holds no identity of group `{group}`, so it cannot open the cells to re-seal them; run `puente reseal` at an office that holds one (list the identity file under [privacy] identities and reload)"
    )]
    NoIdentity { group: String },
    #[error(
        "this office may not update {columns} (the write rights in the schema), so every other office would hold its re-sealed versions for review; run `puente reseal` at an office that may update them"
    )]
    NotAllowed { columns: String },
    #[error("the schema has no seal group with sealed columns; there is nothing to re-seal")]
    NothingSealed,
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The groups a reseal of `group` (every sealed group if None) covers,
/// checked against the schema and this node's identities.
fn groups_for(node: &Node, group: Option<&str>) -> Result<Vec<String>, ResealError> {
    let schema = node.schema();
    let sealed: Vec<String> = {
        let mut g: Vec<String> = schema
            .tables
            .iter()
            .flat_map(|t| t.columns.iter())
            .filter_map(|c| c.group().map(str::to_string))
            .collect();
        g.sort();
        g.dedup();
        g
    };
    let wanted = match group {
        Some(g) if schema.group(g).is_none() => {
            return Err(ResealError::UnknownGroup {
                group: g.to_string(),
                known: schema.groups.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        }
        Some(g) => vec![g.to_string()],
        None if sealed.is_empty() => return Err(ResealError::NothingSealed),
        None => sealed,
    };
    Ok(wanted)
}

impl Node {
    /// Starts re-sealing `group` (every group with sealed columns if None)
    /// in the background; returns its progress. While one runs, asking
    /// again returns the running one's progress.
    pub async fn start_reseal(
        self: &Arc<Self>,
        group: Option<String>,
    ) -> Result<ResealStatus, ResealError> {
        if self.long_work.resealing.load(Ordering::SeqCst)
            && let Some(running) = self.long_work.reseal()
        {
            return Ok(running);
        }
        let groups = groups_for(self, group.as_deref())?;
        for g in &groups {
            let can = self.with_store({
                let g = g.clone();
                move |s| s.can_unseal(&g)
            });
            if !can.await? {
                return Err(ResealError::NoIdentity { group: g.clone() });
            }
            let forbidden = self
                .with_store({
                    let g = g.clone();
                    move |s| s.reseal_forbidden(&g)
                })
                .await?;
            if !forbidden.is_empty() {
                return Err(ResealError::NotAllowed {
                    columns: forbidden.join(", "),
                });
            }
        }
        self.with_store({
            let groups = groups.clone();
            move |s| s.set_pending_reseal(&groups)
        })
        .await??;
        Ok(self.spawn_reseal(groups).await)
    }

    /// Resumes a reseal an earlier run of the daemon left unfinished.
    pub async fn resume_reseal(self: &Arc<Self>) -> Result<Option<ResealStatus>, ResealError> {
        let pending = self.with_store(|s| s.pending_reseal()).await??;
        if pending.is_empty() {
            return Ok(None);
        }
        tracing::info!(groups = %pending.join(", "), "resuming an unfinished reseal");
        Ok(Some(self.spawn_reseal(pending).await))
    }

    async fn spawn_reseal(self: &Arc<Self>, groups: Vec<String>) -> ResealStatus {
        let stale = self
            .with_store(|s| s.sealed_to_old_keys())
            .await
            .unwrap_or_default();
        let total = groups
            .iter()
            .map(|g| stale.get(g).copied().unwrap_or(0))
            .sum();
        let status = ResealStatus {
            groups: groups.clone(),
            state: "running".into(),
            total,
            done: 0,
            skipped: 0,
            failed: 0,
            started_ms: self.now_ms(),
            finished_ms: None,
            message: None,
        };
        *self
            .long_work
            .reseal
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(status.clone());
        self.long_work.resealing.store(true, Ordering::SeqCst);
        tracing::info!(groups = %groups.join(", "), cells = total, "reseal started");
        let node = self.clone();
        tokio::spawn(async move {
            let outcome = node.run_reseal(&groups).await;
            let now = node.now_ms();
            let cleared = match &outcome {
                Ok(()) => node
                    .with_store(|s| s.set_pending_reseal(&[]))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string())),
                Err(e) => Err(e.to_string()),
            };
            node.long_work.update_reseal(|r| {
                r.finished_ms = Some(now);
                match &cleared {
                    Ok(()) => r.state = "done".into(),
                    Err(e) => {
                        r.state = "failed".into();
                        r.message = Some(format!("{e}; run `puente reseal` again to continue"));
                    }
                }
            });
            node.long_work.resealing.store(false, Ordering::SeqCst);
            match cleared {
                Ok(()) => tracing::info!("reseal finished"),
                Err(e) => tracing::error!("reseal stopped: {e}"),
            }
        });
        status
    }

    async fn run_reseal(self: &Arc<Self>, groups: &[String]) -> Result<(), ResealError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut failures: Vec<String> = Vec::new();
        for group in groups {
            for _pass in 0..MAX_PASSES {
                let mut progressed = false;
                // The previous step's write, running while this step seals
                // (its rows are others: the cursor moved past them). The
                // next step is read before this one's write starts, so the
                // read does not wait behind the write for the store.
                let mut writing: Option<Writing> = None;
                let mut pending = Some(self.reseal_read(group, ResealCursor::default()).await?);
                while let Some((batch, schema, keyring)) = pending.take() {
                    let next = batch.next.clone();
                    if batch.rows.is_empty() {
                        if let Some(next) = next {
                            pending = Some(self.reseal_read(group, next).await?);
                        }
                        continue;
                    }
                    let group_name = group.clone();
                    let (sealed, failed) = tokio::task::spawn_blocking(move || {
                        seal_batch(&schema, &keyring, &group_name, &batch, threads)
                    })
                    .await
                    .map_err(|e| NodeError::Internal(format!("a sealing task failed: {e}")))?;
                    if let Some(w) = writing.take() {
                        progressed |= self.finish_step(w, &mut failures).await?;
                    }
                    if let Some(next) = next {
                        pending = Some(self.reseal_read(group, next).await?);
                    }
                    let node = self.clone();
                    writing = Some(Writing {
                        task: tokio::spawn(async move {
                            node.with_store(move |s| s.reseal_write(sealed)).await
                        }),
                        failed,
                    });
                }
                if let Some(w) = writing.take() {
                    progressed |= self.finish_step(w, &mut failures).await?;
                }
                let left = self
                    .with_store({
                        let group = group.clone();
                        move |s| s.sealed_to_old_keys().get(&group).copied().unwrap_or(0)
                    })
                    .await?;
                if left == 0 || !progressed {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Reads the next step's rows from `cursor`, with the schema and
    /// keyring to seal them under.
    async fn reseal_read(
        self: &Arc<Self>,
        group: &str,
        cursor: ResealCursor,
    ) -> Result<(StaleBatch, Arc<Schema>, Arc<Keyring>), ResealError> {
        let group = group.to_string();
        Ok(self
            .with_store(move |s| {
                s.reseal_read(&group, &cursor, ROWS_PER_STEP, SCAN_PER_STEP)
                    .map(|b| (b, s.schema().clone(), s.keyring().clone()))
            })
            .await??)
    }

    /// Waits for a step's write and counts it in the progress; true if it
    /// wrote anything.
    async fn finish_step(
        &self,
        step: Writing,
        failures: &mut Vec<String>,
    ) -> Result<bool, ResealError> {
        let written = step
            .task
            .await
            .map_err(|e| NodeError::Internal(format!("a reseal write failed: {e}")))???;
        for f in &step.failed {
            if failures.len() < NAMED_FAILURES {
                failures.push(describe_failure(&f.table, &f.id, &f.column, &f.error));
            }
            tracing::warn!(table = %f.table, id = %f.id, column = %f.column, "a sealed cell could not be opened for the reseal: {}", f.error);
        }
        let message = (!failures.is_empty()).then(|| failures.join("; "));
        self.long_work.update_reseal(|r| {
            r.done += written.written;
            r.skipped += written.skipped;
            r.failed += step.failed.len() as u64;
            r.message.clone_from(&message);
        });
        Ok(written.written > 0)
    }
}

/// A step's write in flight, and the cells of that step that could not be
/// opened.
struct Writing {
    task: tokio::task::JoinHandle<Result<Result<ResealWritten, StoreError>, NodeError>>,
    failed: Vec<ResealFailure>,
}

fn describe_failure(table: &str, id: &str, column: &str, error: &SealError) -> String {
    match error {
        SealError::NoIdentity { .. } => {
            format!("{table}/{id}/{column} is sealed to keys this node does not hold")
        }
        other => other.to_string(),
    }
}
