//! The admin API's endpoints, one file per family: the route table and
//! the node's own small endpoints (`router`), what every endpoint shares
//! (`request`), rows (`rows`), staff logins (`staff`), held changes
//! (`held`), backup, reseal and checkpoint (`maintenance`), import and
//! export (`bulk`), and the HTTP shape of every error (`errors`).
//! Grouped apart from the server (admin/server.rs: the socket, its
//! connections and credentials) because they are what a request does,
//! and the server only carries them.
//!
//! Owns: reading requests, calling the `Node`, writing audit and edit
//! lines, answering in the shapes of `crate::api`.
//! Must not: touch SQLite or sealing directly (the `Node` does), or let a
//! value reach a log line or an error message.

pub(super) mod bulk;
pub(super) mod errors;
pub(super) mod held;
pub(super) mod maintenance;
pub(super) mod request;
pub(super) mod router;
pub(super) mod rows;
pub(super) mod staff;
