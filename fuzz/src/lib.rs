//! Code shared by puente's fuzz targets. `frame_check` is also compiled
//! into the main crate's stable test `tests/suite/fuzz_corpus.rs` (via `#[path]`),
//! so it depends on nothing but puente and std.

pub mod frame_check;
