//! Code shared by puente's fuzz targets. `frame_check` is also compiled
//! into the main crate's stable test `tests/suite/fuzz_corpus.rs` and
//! `request_check` into `tests/suite/fuzz_admin_request.rs` (via `#[path]`),
//! so they depend on nothing but puente and std.

pub mod frame_check;
pub mod request_check;
