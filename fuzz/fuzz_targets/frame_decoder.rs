//! Fuzz target: arbitrary bytes, split into arbitrary chunks, through
//! `FrameDecoder`, `Session::receive` and `store::validate`. The input
//! layout and every invariant are in `puente_fuzz::frame_check`, which the
//! stable test `tests/suite/fuzz_corpus.rs` replays the corpus through.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    puente_fuzz::frame_check::run(data);
});
