//! Who may do what: the roles on the admin socket (`socket_roles`: the
//! `[access]` names resolved against /etc/passwd and /etc/group, the role
//! each endpoint needs, from the admin request parsed once in
//! `admin_request`) and the staff roles of the web agenda with their
//! login and calendar tokens (`staff_tokens`). The admin socket hands out
//! staff tokens and the web checks them, and the node checks `[access]`
//! before start, so these decisions sit below all three.
//!
//! Owns: those decisions, without IO: callers pass the text of the files
//! and an injected random source in.
//! Must not: read files or sockets, or store, log or compare a token by
//! value.

pub mod admin_request;
pub mod socket_roles;
pub mod staff_tokens;
