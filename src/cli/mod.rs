//! The command-line edge: one `puente` command a file, each with its
//! arguments (clap) and a `run` that turns them into calls on the library
//! and prints the result for people (or JSON for scripts). `anyhow` lives
//! here only.
//!
//! Owns: the commands — `init`, `id`, `keygen`, `check`, `bench`, `peer`,
//! `storage`, `schema`, `run`, `status`, `rows/` (list, get, put, delete,
//! and `import`, `export`, `view` in the sub-room), `demo`, `schedule`,
//! `staff`, `held`, `sync`, `backup`, `restore`, `reseal`, `checkpoint` —
//! and what they share: which daemon and one call to it (`call`), bars
//! and spinners on standard error (`progress`).
//! Must not: hold logic the daemon or tests need (that lives in the
//! library); draw progress on standard output.

pub mod backup;
pub mod bench;
pub mod call;
pub mod check;
pub mod checkpoint;
pub mod demo;
pub mod held;
pub mod id;
pub mod init;
pub mod keygen;
pub mod peer;
pub mod progress;
pub mod reseal;
pub mod restore;
pub mod rows;
pub mod run;
pub mod schedule;
pub mod schema;
pub mod staff;
pub mod status;
pub mod storage;
pub mod sync;

/// The rows and status functions under the path tests still name
/// (`cli::remote`, the file that held them before one command a file).
pub mod remote {
    pub use super::rows::{parse_assignment, put as rows_put};
    pub use super::status::render_status;
}
