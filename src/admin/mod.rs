//! The local admin socket: HTTP/1.1 with JSON over a Unix domain socket.
//!
//! Owns: the server the daemon runs (`server`: bind, serve, connections
//! and their credentials), on a thread and runtime of its own
//! (`runtime`), the endpoints (`endpoints/`: the route table and one file
//! per family), HTTP bodies fed from a channel (`channel_body`) and the
//! typed client the CLI uses (`client`). The JSON shapes both sides share
//! are in `crate::api`, the audit and edit logs in `crate::audit`, the
//! roles in `crate::access`: rooms below this one, which the web and bulk
//! use too.
//! Must not: decide anything about the replica (the `Node` and `Store` do),
//! or let a sealed value reach a log line or an error message.

pub mod channel_body;
pub mod client;
mod endpoints;
pub mod runtime;
pub mod server;

use std::path::PathBuf;

pub use client::{Client, ClientError};
pub use server::{ServeOptions, bind, serve, serve_with};

// The JSON shapes moved to `crate::api`; tests still name them here.
pub use crate::api;
pub use crate::api::staff as staff_api;

/// Errors of binding and serving the admin socket.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(
        "the admin socket's folder {} does not exist; create it (systemd's RuntimeDirectory=puente does) or fix admin_socket in the node config", dir.display()
    )]
    SocketDirMissing { dir: PathBuf },
    #[error(
        "another puente daemon is already serving {}; stop it first (systemctl stop puente) or give this node its own admin_socket", path.display()
    )]
    AlreadyServing { path: PathBuf },
    #[error(
        "{} exists and is not a socket; puente leaves it untouched: move it away or point admin_socket elsewhere", path.display()
    )]
    NotASocket { path: PathBuf },
    #[error(
        "cannot tell whether another daemon serves {}: {source}; check the permissions of the socket and its folder", path.display()
    )]
    Probe {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot remove the stale admin socket {}: {source}; remove it by hand or make its folder writable by the user puente runs as", path.display()
    )]
    RemoveStale {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot create the admin socket {}: {source}; make its folder writable by the user puente runs as (a socket path must also be shorter than 108 bytes)", path.display()
    )]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot set mode 0660 on the admin socket {}: {source}; check that the daemon owns it", path.display()
    )]
    Permissions {
        path: PathBuf,
        source: std::io::Error,
    },
}
