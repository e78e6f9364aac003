//! Binding and serving the admin socket.
//!
//! Owns: creating the Unix socket (refusing a live one, replacing a stale
//! one, mode 0660), the peer credentials of each connection, the rules of
//! its connections (a header read timeout: a silent or idle client is
//! dropped, and never holds up another; the shutdown grace) for the
//! accept loop of serve.rs, and removing the socket file on the way out.
//! Must not: hold endpoint logic (endpoints/ does) or log request contents.

use std::future::Future;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use super::AdminError;
use super::endpoints::request::{AdminState, SocketPeer};
use super::endpoints::router::router;
use crate::access::socket_roles::{self, Access, CallerIds};
use crate::audit::{AuditLog, Caller};
use crate::node::Node;
use crate::serve::{self, ConnectionRules};

/// How the server treats connections.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// A connection that does not send a complete request head within this
    /// time (including an idle keep-alive connection) is closed.
    pub header_read_timeout: Duration,
    /// At shutdown, requests in flight get this long to finish.
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Creates the admin socket at `path` (call inside a tokio runtime).
///
/// Refuses when the folder is missing, when something that is not a socket
/// sits at `path`, or when another process answers on it; removes a stale
/// socket (nothing listening) first. The socket gets mode 0660.
pub fn bind(path: &Path) -> Result<UnixListener, AdminError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Err(e) = std::fs::metadata(dir)
        && e.kind() == std::io::ErrorKind::NotFound
    {
        return Err(AdminError::SocketDirMissing {
            dir: dir.to_path_buf(),
        });
    }
    let probe = |source| AdminError::Probe {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(AdminError::NotASocket {
                path: path.to_path_buf(),
            });
        }
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(AdminError::AlreadyServing {
                    path: path.to_path_buf(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                tracing::info!(socket = %path.display(), "replacing a stale admin socket");
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => {
                        return Err(AdminError::RemoveStale {
                            path: path.to_path_buf(),
                            source,
                        });
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(probe(e)),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(probe(e)),
    }
    let listener = UnixListener::bind(path).map_err(|source| AdminError::Bind {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(|source| {
        AdminError::Permissions {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok(listener)
}

/// Serves the admin API on `listener` until `shutdown` completes, with the
/// default options.
pub async fn serve(
    listener: UnixListener,
    node: Arc<Node>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AdminError> {
    serve_with(listener, node, shutdown, ServeOptions::default()).await
}

/// Serves the admin API on `listener` until `shutdown` completes: then it
/// stops accepting, removes the socket file, lets requests in flight finish
/// (up to `shutdown_grace`) and returns.
pub async fn serve_with(
    listener: UnixListener,
    node: Arc<Node>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: ServeOptions,
) -> Result<(), AdminError> {
    let socket = SocketFile::of(&listener);
    let audit = AuditLog::new(&node.config().data_dir);
    let access = resolve_access(&node);
    let edits = crate::audit::edits::EditLog::new(&node.config().data_dir);
    let app = router(Arc::new(AdminState {
        node,
        audit,
        edits,
        access,
        imports: tokio::sync::Semaphore::new(1),
    }));
    let rules = ConnectionRules {
        name: "admin socket",
        max_connections: None,
        header_read_timeout: options.header_read_timeout,
        max_buf_size: None,
    };
    tracing::info!(socket = %socket.display(), "admin socket ready");
    let draining = serve::accept_until(listener, &rules, shutdown, |stream, _, stop| {
        connection(stream, app.clone(), stop, rules.clone())
    })
    .await;
    socket.remove();
    let cut_off = draining.finish(options.shutdown_grace).await;
    if cut_off > 0 {
        tracing::warn!(
            open = cut_off,
            "admin socket: requests still running at shutdown were cut off"
        );
    }
    tracing::info!("admin socket closed");
    Ok(())
}

/// Serves one connection, with the caller's credentials for the handlers.
async fn connection(
    stream: UnixStream,
    app: Router,
    stop: watch::Receiver<bool>,
    rules: ConnectionRules,
) {
    let cred = stream.peer_cred().ok();
    let ids = match cred {
        Some(c) => Some(caller_ids(c.uid(), c.gid(), c.pid()).await),
        None => None,
    };
    let peer = SocketPeer {
        caller: cred.map(|c| Caller {
            uid: c.uid(),
            pid: c.pid(),
        }),
        ids,
    };
    serve::serve_connection(stream, app, peer, &rules, stop).await;
}

/// The node's `[access]` with names resolved from /etc/passwd and
/// /etc/group (read once, at start); unknown names are logged.
fn resolve_access(node: &Node) -> Access {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    // The owner of /proc/self is this process's user.
    let daemon_uid = std::fs::metadata("/proc/self").map_or(0, |m| m.uid());
    let (access, warnings) = Access::resolve(
        &node.config().access,
        &read("/etc/passwd"),
        &read("/etc/group"),
        daemon_uid,
        node.config().file.clone(),
    );
    // Preflight reports these to `puente check` and `puente run`.
    for w in warnings {
        tracing::debug!("{w}");
    }
    if !node.config().access.configured {
        tracing::info!(
            "the node config has no [access] section: only root and the daemon's own user may use the admin socket"
        );
    }
    access
}

/// The caller's uid and groups: from /proc/PID/status (the groups the
/// calling process really holds), or, when /proc hides other users'
/// processes (systemd's ProtectProc=invisible), the groups /etc/group lists
/// the user in.
async fn caller_ids(uid: u32, gid: u32, pid: Option<i32>) -> CallerIds {
    if let Some(pid) = pid
        && let Ok(status) = tokio::fs::read_to_string(format!("/proc/{pid}/status")).await
        && let Some(gids) = socket_roles::proc_groups(&status, uid)
    {
        return CallerIds { uid, gids };
    }
    let mut gids = vec![gid];
    let passwd = tokio::fs::read_to_string("/etc/passwd")
        .await
        .unwrap_or_default();
    if let Some(name) = socket_roles::user_name(&passwd, uid) {
        let group = tokio::fs::read_to_string("/etc/group")
            .await
            .unwrap_or_default();
        for g in socket_roles::member_groups(&group, &name) {
            if !gids.contains(&g) {
                gids.push(g);
            }
        }
    }
    CallerIds { uid, gids }
}

/// The socket file this server created, to remove at shutdown only if it is
/// still the same file (not one another daemon made since).
struct SocketFile {
    path: Option<PathBuf>,
    identity: Option<(u64, u64)>,
}

impl SocketFile {
    fn of(listener: &UnixListener) -> SocketFile {
        let path = listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(Path::to_path_buf));
        let identity = path
            .as_deref()
            .and_then(|p| std::fs::symlink_metadata(p).ok())
            .map(|m| (m.dev(), m.ino()));
        SocketFile { path, identity }
    }

    fn display(&self) -> String {
        self.path
            .as_deref()
            .map_or_else(|| "(unnamed)".to_string(), |p| p.display().to_string())
    }

    fn remove(&self) {
        let (Some(path), Some(identity)) = (&self.path, self.identity) else {
            return;
        };
        let same = std::fs::symlink_metadata(path)
            .is_ok_and(|m| m.file_type().is_socket() && (m.dev(), m.ino()) == identity);
        if same && let Err(e) = std::fs::remove_file(path) {
            tracing::warn!(socket = %path.display(), error = %e, "could not remove the admin socket");
        }
    }
}
