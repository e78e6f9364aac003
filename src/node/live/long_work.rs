//! What the running node keeps about long work on its replica: the
//! progress of a reseal and the outcome of the last reload.
//!
//! Owns: those reports, behind their own locks (never the store's), so
//! status reads them without waiting for a reseal step.
//! Must not: do the work (reseal.rs, reload.rs do).

use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use crate::node::status::{ReloadStatus, ResealStatus};

#[derive(Debug, Default)]
pub struct LongWork {
    /// The running or last reseal.
    pub reseal: Mutex<Option<ResealStatus>>,
    /// True while a reseal task runs.
    pub resealing: AtomicBool,
    /// The last reload (SIGHUP).
    pub reload: Mutex<Option<ReloadStatus>>,
}

impl LongWork {
    pub fn reseal(&self) -> Option<ResealStatus> {
        self.reseal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn update_reseal(&self, f: impl FnOnce(&mut ResealStatus)) {
        if let Some(r) = self
            .reseal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            f(r);
        }
    }

    pub fn reload(&self) -> Option<ReloadStatus> {
        self.reload
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_reload(&self, status: ReloadStatus) {
        *self.reload.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
    }
}
