//! Fuzz target: arbitrary request lines (a flags byte, then `METHOD
//! TARGET`) through the admin socket's one parse (`admin_request::parse`)
//! and its role decision (`socket_roles::needed`). The input layout and
//! every invariant are in `puente_fuzz::request_check`, which the stable
//! test `tests/suite/fuzz_admin_request.rs` replays the corpus through.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    puente_fuzz::request_check::run(data);
});
