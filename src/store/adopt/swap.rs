//! What a running replica is read and written with, swapped by a reload:
//! the keyring, and the schema — adopted as at start (plan.rs): additive
//! changes and shared → sealed by themselves, anything that needs a word
//! from the admin refused with the replica left as it was.
//!
//! Owns: the order (the new keyring first, so that a newly typed sealed
//! column is checked with the identities now held) and putting the old
//! keyring back when the schema is refused.
//! Must not: touch the file beyond what `adopt_schema` does.

use std::sync::Arc;

use crate::config::Schema;
use crate::seal::Keyring;
use crate::store::adopt::plan::{AdoptionPlan, Allow};
use crate::store::{Store, StoreError};

impl Store {
    /// Seals and opens with `keyring` and adopts `schema` from the next
    /// operation on. On an error (a change a reload may not make, values
    /// that do not fit a new type) nothing changes: the running schema and
    /// keyring stay.
    pub fn reload_schema(
        &mut self,
        schema: Arc<Schema>,
        keyring: Arc<Keyring>,
    ) -> Result<AdoptionPlan, StoreError> {
        let old = std::mem::replace(&mut self.keyring, keyring);
        match self.adopt_schema(schema, &Allow::default()) {
            Ok(plan) => Ok(plan),
            Err(e) => {
                self.keyring = old;
                Err(e)
            }
        }
    }
}
