//! What a running replica is read and written with, swapped by a reload:
//! the schema (the same layout, other recipients) and the keyring.
//!
//! Owns: refusing a schema whose layout differs (that needs a migration,
//! not a swap) and putting the new ones in place for the next operation.
//! Must not: touch the file.

use std::sync::Arc;

use super::{Store, StoreError};
use crate::config::Schema;
use crate::seal::Keyring;

impl Store {
    /// Seals and opens with `schema` and `keyring` from the next operation
    /// on. The schema must have this replica's layout (tables, columns and
    /// privacy classes): only its recipients may differ.
    pub fn set_schema_and_keyring(
        &mut self,
        schema: Arc<Schema>,
        keyring: Arc<Keyring>,
    ) -> Result<(), StoreError> {
        if schema.layout_hash() != self.schema.layout_hash() {
            return Err(StoreError::LayoutChanged {
                path: self.path.clone(),
            });
        }
        self.schema = schema;
        self.keyring = keyring;
        Ok(())
    }
}
