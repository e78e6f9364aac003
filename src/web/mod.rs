//! The staff web agenda and calendar feed the daemon serves over HTTP(S).
//!
//! Owns (one file per concern): staff roles and tokens (`tokens`), the
//! edit log (`edits`).
//! Must not: show or accept a sealed value; read anything but the shared
//! columns of the outreach table.

pub mod edits;
pub mod tokens;
