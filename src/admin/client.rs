//! A typed client of the admin socket (what the `puente` CLI uses).
//!
//! Owns: one HTTP/1.1 exchange per call over the Unix socket (hyper's
//! connection API), percent-encoding path segments and query values,
//! decoding answers into the shared `api` types, and turning failures into
//! errors that say what to do.
//! Must not: print anything, or put a value into an error (bodies live in
//! buffers wiped on drop; rows keep values in `Plaintext`).

use std::path::{Path, PathBuf};
use std::pin::pin;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

use super::channel_body::ChannelBody;
use crate::api::held::{HeldDecision, HeldList};
use crate::api::maintenance::{BACKUP_INFO_HEADER, BackupRequest, Checkpointed, ResealRequest};
use crate::api::staff::{StaffAdded, StaffList, StaffNew, StaffRemoved};
use crate::api::{Accepted, ErrorBody, Health, Row, RowWrite, RowsPage, WriteResult};
use crate::bulk::ImportReport;
use crate::bulk::{COLUMNS_HEADER, LEFT_OUT_HEADER, ROWS_HEADER};
use crate::node::backup::BackupInfo;
use crate::node::status::Status;
use crate::percent::encode;
use crate::secret_buf::{self, SecretBuf};
use crate::value::Plaintext;

/// The largest answer the client reads.
const MAX_RESPONSE: usize = 256 << 20;

/// Why the socket could not be reached, and what to do: a socket that is
/// there but not ours is a matter of groups, not of the daemon running.
fn connect_advice(socket: &std::path::Path, source: &std::io::Error) -> String {
    let at = socket.display();
    match source.kind() {
        std::io::ErrorKind::PermissionDenied => format!(
            "cannot use the puente admin socket {at}: permission denied. The daemon may well be running; this user is not allowed to use its socket: join the group that owns it (`sudo usermod -aG puente $USER`, then log in again; the socket is mode 0660) or run the command with sudo"
        ),
        _ => format!(
            "cannot reach the puente daemon at {at}: {source}; is it running (systemctl status puente)?"
        ),
    }
}

/// An HTTP/1.1 connection to the admin socket, to be driven.
type Connection<B> = hyper::client::conn::http1::Connection<TokioIo<UnixStream>, B>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{}", connect_advice(socket, source))]
    Connect {
        socket: PathBuf,
        source: std::io::Error,
    },
    /// The daemon refused the request; `message` says what to do.
    #[error("{message} (HTTP {status})")]
    Api { status: u16, message: String },
    #[error(
        "the puente daemon at {} did not answer within {secs} s; check its log (journalctl -u puente)", socket.display()
    )]
    Timeout { socket: PathBuf, secs: u64 },
    #[error(
        "the connection to the puente daemon at {} failed: {detail}; retry, and check its log (journalctl -u puente) if it keeps failing", socket.display()
    )]
    Transport { socket: PathBuf, detail: String },
    #[error(
        "the puente daemon at {} sent an answer this client does not understand ({detail}); check that the daemon and this command are the same puente version", socket.display()
    )]
    Protocol { socket: PathBuf, detail: String },
}

impl ClientError {
    /// The HTTP status of a refused request.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A client of one daemon's admin socket.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    timeout: Duration,
}

impl Client {
    /// A client of the socket at `socket` (nothing is connected yet); each
    /// call waits at most 60 s for its answer.
    pub fn new(socket: impl Into<PathBuf>) -> Client {
        Client {
            socket: socket.into(),
            timeout: Duration::from_secs(60),
        }
    }

    /// How long each call waits for the whole answer.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub async fn health(&self) -> Result<Health, ClientError> {
        self.call(Method::GET, "/v1/health".into(), None).await
    }

    pub async fn status(&self) -> Result<Status, ClientError> {
        self.call(Method::GET, "/v1/status".into(), None).await
    }

    /// The Prometheus text exposition of the node (`GET /v1/metrics`).
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let (_, answer) = self.answer(Method::GET, "/v1/metrics".into(), None).await?;
        String::from_utf8(answer.as_slice().to_vec())
            .map_err(|_| self.protocol("the metrics are not UTF-8".into()))
    }

    /// One page of live rows ordered by id, after `after`; `limit` defaults
    /// to the server's (100). Sealed cells are revealed only with `reveal`
    /// (and on a node holding the identity; each reveal is audited).
    pub async fn list_rows(
        &self,
        table: &str,
        after: Option<&str>,
        limit: Option<usize>,
        reveal: bool,
    ) -> Result<RowsPage, ClientError> {
        let mut query = Vec::new();
        if let Some(after) = after {
            query.push(format!("after={}", encode(after)));
        }
        if let Some(limit) = limit {
            query.push(format!("limit={limit}"));
        }
        if reveal {
            query.push("reveal=true".to_string());
        }
        let mut path = format!("/v1/tables/{}/rows", encode(table));
        if !query.is_empty() {
            path = format!("{path}?{}", query.join("&"));
        }
        self.call(Method::GET, path, None).await
    }

    pub async fn get_row(&self, table: &str, id: &str, reveal: bool) -> Result<Row, ClientError> {
        let mut path = row_path(table, id);
        if reveal {
            path.push_str("?reveal=true");
        }
        self.call(Method::GET, path, None).await
    }

    /// Writes some columns of a row (creating it if new); other columns
    /// keep their values.
    pub async fn put_row(
        &self,
        table: &str,
        id: &str,
        cells: Vec<(String, Plaintext)>,
    ) -> Result<WriteResult, ClientError> {
        let body = secret_buf::to_json(&RowWrite(cells)).map_err(|e| ClientError::Protocol {
            socket: self.socket.clone(),
            detail: format!("could not encode the request: {e}"),
        })?;
        self.call(Method::PUT, row_path(table, id), Some(body))
            .await
    }

    /// Deletes a row for good (its id can never be written again).
    pub async fn delete_row(&self, table: &str, id: &str) -> Result<WriteResult, ClientError> {
        self.call(Method::DELETE, row_path(table, id), None).await
    }

    /// Streams import lines (`body`) to the daemon, which writes every row
    /// in one transaction or none; the report says which, and why not.
    /// Waits up to an hour (sealing many rows takes a while).
    pub async fn import_rows(
        &self,
        table: &str,
        body: ChannelBody,
    ) -> Result<ImportReport, ClientError> {
        let path = format!("/v1/tables/{}/import", encode(table));
        let call = async {
            let response = self
                .send(Method::POST, path, "application/x-ndjson", body)
                .await?;
            let status = response.status();
            let answer = self.collect(response.into_body()).await?;
            if status.is_success() || status == StatusCode::UNPROCESSABLE_ENTITY {
                return serde_json::from_slice::<ImportReport>(answer.as_slice())
                    .map_err(|e| self.protocol(format!("HTTP {status}: {e}")));
            }
            Err(self.refused(status, &answer))
        };
        tokio::time::timeout(Duration::from_secs(3600), call)
            .await
            .map_err(|_| ClientError::Timeout {
                socket: self.socket.clone(),
                secs: 3600,
            })?
    }

    /// Starts an export of `table`: the columns (all shared ones unless
    /// `columns` names some; sealed ones only with `reveal`, audited).
    /// Lines come from the stream returned.
    pub async fn export_rows(
        &self,
        table: &str,
        columns: Option<&str>,
        reveal: bool,
    ) -> Result<ExportStream, ClientError> {
        let mut query = Vec::new();
        if let Some(c) = columns {
            query.push(format!("columns={}", encode(c)));
        }
        if reveal {
            query.push("reveal=true".to_string());
        }
        let mut path = format!("/v1/tables/{}/export", encode(table));
        if !query.is_empty() {
            path = format!("{path}?{}", query.join("&"));
        }
        let response = tokio::time::timeout(
            self.timeout,
            self.send(
                Method::GET,
                path,
                "application/json",
                http_body_util::Empty::<Bytes>::new(),
            ),
        )
        .await
        .map_err(|_| ClientError::Timeout {
            socket: self.socket.clone(),
            secs: self.timeout.as_secs(),
        })??;
        let status = response.status();
        if !status.is_success() {
            let answer = self.collect(response.into_body()).await?;
            return Err(self.refused(status, &answer));
        }
        let list = |name: &str| -> Vec<String> {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| {
                    v.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let columns = list(COLUMNS_HEADER);
        let left_out = list(LEFT_OUT_HEADER);
        let rows = response
            .headers()
            .get(ROWS_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok(ExportStream {
            columns,
            rows,
            left_out,
            body: response.into_body(),
            pending: SecretBuf::with_capacity(64 * 1024),
            start: 0,
            done: false,
            client: self.clone(),
        })
    }

    /// Sends one request with `body` on a new connection (driven by a task
    /// of its own) and gives back the response as it starts.
    async fn send<B>(
        &self,
        method: Method,
        path: String,
        content_type: &str,
        body: B,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut sender = self.connect().await?;
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "localhost")
            .header(header::CONTENT_TYPE, content_type)
            .body(body)
            .map_err(|e| self.protocol(format!("could not build the request: {e}")))?;
        sender
            .send_request(request)
            .await
            .map_err(|e| self.transport(e))
    }

    /// Reads a (small) answer body whole, refusing more than `MAX_RESPONSE`.
    async fn collect(&self, mut body: hyper::body::Incoming) -> Result<SecretBuf, ClientError> {
        let mut answer = SecretBuf::with_capacity(4096);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| self.transport(e))?;
            if let Ok(chunk) = frame.into_data() {
                if answer.len() + chunk.len() > MAX_RESPONSE {
                    return Err(self.protocol("the answer is too large".into()));
                }
                secret_buf::take_chunk(&mut answer, chunk);
            }
        }
        Ok(answer)
    }

    /// Adds a web staff login; the answer holds its tokens (shown once).
    pub async fn add_staff(&self, name: &str, role: &str) -> Result<StaffAdded, ClientError> {
        let body = secret_buf::to_json(&StaffNew {
            name: name.to_string(),
            role: role.to_string(),
        })
        .map_err(|e| self.protocol(format!("could not encode the request: {e}")))?;
        self.call(Method::POST, "/v1/staff".into(), Some(body))
            .await
    }

    pub async fn list_staff(&self) -> Result<StaffList, ClientError> {
        self.call(Method::GET, "/v1/staff".into(), None).await
    }

    /// Removes a web staff login; their sessions end at once.
    pub async fn remove_staff(&self, name: &str) -> Result<StaffRemoved, ClientError> {
        self.call(Method::DELETE, format!("/v1/staff/{}", encode(name)), None)
            .await
    }

    /// Changes held for review (`all`: decided ones too).
    pub async fn list_held(&self, all: bool) -> Result<HeldList, ClientError> {
        let path = if all { "/v1/held?all=true" } else { "/v1/held" };
        self.call(Method::GET, path.into(), None).await
    }

    /// Accepts (`accept`) or discards a held change.
    pub async fn decide_held(&self, id: i64, accept: bool) -> Result<HeldDecision, ClientError> {
        let decision = if accept { "accept" } else { "discard" };
        self.call(Method::POST, format!("/v1/held/{id}/{decision}"), None)
            .await
    }

    /// Asks the daemon to contact its peers now.
    pub async fn sync_now(&self) -> Result<(), ClientError> {
        let _: Accepted = self.call(Method::POST, "/v1/sync".into(), None).await?;
        Ok(())
    }

    /// Starts a reseal of `group` (every sealed group if None); returns
    /// its progress.
    pub async fn reseal(
        &self,
        group: Option<&str>,
    ) -> Result<crate::node::status::ResealStatus, ClientError> {
        let body = secret_buf::to_json(&ResealRequest {
            group: group.map(str::to_string),
        })
        .map_err(|e| self.protocol(format!("could not encode the request: {e}")))?;
        self.call(Method::POST, "/v1/reseal".into(), Some(body))
            .await
    }

    /// The running or last reseal's progress.
    pub async fn reseal_status(&self) -> Result<crate::node::status::ResealStatus, ClientError> {
        self.call(Method::GET, "/v1/reseal".into(), None).await
    }

    /// Folds the WAL into the database and truncates it.
    pub async fn checkpoint(&self) -> Result<Checkpointed, ClientError> {
        self.call(Method::POST, "/v1/checkpoint".into(), None).await
    }

    /// Takes a backup (wrapped for `to` if any) and hands its bytes to
    /// `sink` as they arrive; returns what it holds. The answer may take
    /// long (a large replica): it is bounded by 30 minutes, not the
    /// client's timeout. A cut answer is an error, never a short backup.
    pub async fn backup(
        &self,
        to: &[String],
        mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<BackupInfo, ClientError> {
        let body = secret_buf::to_json(&BackupRequest { to: to.to_vec() })
            .map_err(|e| self.protocol(format!("could not encode the request: {e}")))?;
        let exchange = async {
            let mut sender = self.connect().await?;
            let request = Request::builder()
                .method(Method::POST)
                .uri("/v1/backup")
                .header(header::HOST, "localhost")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(body.into_bytes()))
                .map_err(|e| self.protocol(format!("could not build the request: {e}")))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| self.transport(e))?;
            let status = response.status();
            let info = response
                .headers()
                .get(BACKUP_INFO_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let mut incoming = response.into_body();
            if !status.is_success() {
                let mut answer = SecretBuf::with_capacity(1024);
                while let Some(frame) = incoming.frame().await {
                    if let Ok(chunk) = frame.map_err(|e| self.transport(e))?.into_data() {
                        secret_buf::take_chunk(&mut answer, chunk);
                    }
                }
                return Err(
                    match serde_json::from_slice::<ErrorBody>(answer.as_slice()) {
                        Ok(e) => ClientError::Api {
                            status: status.as_u16(),
                            message: e.error,
                        },
                        Err(_) => self.protocol(format!("HTTP {status} without an error message")),
                    },
                );
            }
            let info: BackupInfo = info
                .and_then(|i| serde_json::from_str(&i).ok())
                .ok_or_else(|| self.protocol("the backup came without its description".into()))?;
            let mut received = 0u64;
            while let Some(frame) = incoming.frame().await {
                let frame = frame.map_err(|e| self.transport(e))?;
                if let Ok(chunk) = frame.into_data() {
                    received += chunk.len() as u64;
                    sink(&chunk).map_err(|e| ClientError::Transport {
                        socket: self.socket.clone(),
                        detail: format!("writing the backup failed: {e}"),
                    })?;
                }
            }
            if received != info.bytes {
                return Err(self.protocol(format!(
                    "the backup arrived cut short ({received} of {} bytes)",
                    info.bytes
                )));
            }
            Ok(info)
        };
        tokio::time::timeout(Duration::from_secs(1800), exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                socket: self.socket.clone(),
                secs: 1800,
            })?
    }

    /// Connects to the socket and makes the HTTP/1.1 handshake; the
    /// connection it gives back must be driven (`connect` drives it on a
    /// task of its own).
    async fn handshake<B>(&self) -> Result<(SendRequest<B>, Connection<B>), ClientError>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| ClientError::Connect {
                    socket: self.socket.clone(),
                    source,
                })?;
        hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.transport(e))
    }

    /// Opens a connection and drives it in the background.
    async fn connect<B>(&self) -> Result<SendRequest<B>, ClientError>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (sender, conn) = self.handshake().await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: String,
        body: Option<SecretBuf>,
    ) -> Result<T, ClientError> {
        let (status, answer) = self.answer(method, path, body).await?;
        serde_json::from_slice(answer.as_slice())
            .map_err(|e| self.protocol(format!("HTTP {status}: {e}")))
    }

    /// One exchange within the client's timeout: the answer of a request
    /// that succeeded, or the error a refused one carries.
    async fn answer(
        &self,
        method: Method,
        path: String,
        body: Option<SecretBuf>,
    ) -> Result<(StatusCode, SecretBuf), ClientError> {
        let exchange = self.exchange(method, path, body);
        let (status, answer) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                socket: self.socket.clone(),
                secs: self.timeout.as_secs(),
            })??;
        if !status.is_success() {
            return Err(self.refused(status, &answer));
        }
        Ok((status, answer))
    }

    /// Sends one request on a new connection and reads the whole answer.
    async fn exchange(
        &self,
        method: Method,
        path: String,
        body: Option<SecretBuf>,
    ) -> Result<(StatusCode, SecretBuf), ClientError> {
        let (mut sender, conn) = self.handshake().await?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "localhost")
            .header(header::ACCEPT, "application/json");
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let body = body.map_or_else(Bytes::new, SecretBuf::into_bytes);
        let request = request
            .body(Full::new(body))
            .map_err(|e| self.protocol(format!("could not build the request: {e}")))?;
        let exchange = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| self.transport(e))?;
            let status = response.status();
            let answer = self.collect(response.into_body()).await?;
            Ok((status, answer))
        };
        let mut exchange = pin!(exchange);
        tokio::select! {
            result = &mut exchange => result,
            ended = conn => match ended {
                // The daemon closed the connection after answering: the
                // answer may still be buffered.
                Ok(()) => exchange.await,
                Err(e) => Err(self.transport(e)),
            },
        }
    }

    /// The error of a refused request, from its JSON error body.
    fn refused(&self, status: StatusCode, answer: &SecretBuf) -> ClientError {
        match serde_json::from_slice::<ErrorBody>(answer.as_slice()) {
            Ok(e) => ClientError::Api {
                status: status.as_u16(),
                message: e.error,
            },
            Err(_) => self.protocol(format!("HTTP {status} without an error message")),
        }
    }

    fn transport(&self, e: hyper::Error) -> ClientError {
        ClientError::Transport {
            socket: self.socket.clone(),
            detail: e.to_string(),
        }
    }

    fn protocol(&self, detail: String) -> ClientError {
        ClientError::Protocol {
            socket: self.socket.clone(),
            detail,
        }
    }
}

/// An export as it arrives: its columns (`id` first), the live rows when
/// it began, the sealed columns left out, and its lines one by one.
pub struct ExportStream {
    pub columns: Vec<String>,
    pub rows: u64,
    pub left_out: Vec<String>,
    body: hyper::body::Incoming,
    /// Received bytes; those before `start` were handed out already.
    pending: SecretBuf,
    start: usize,
    done: bool,
    client: Client,
}

impl ExportStream {
    /// The next line (one row as JSON, without its newline), or None at
    /// the end. A stream cut off by the daemon is an error.
    pub async fn next_line(&mut self) -> Result<Option<SecretBuf>, ClientError> {
        loop {
            let bytes = &self.pending.as_slice()[self.start..];
            if let Some(at) = bytes.iter().position(|b| *b == b'\n') {
                let mut line = SecretBuf::with_capacity(at);
                line.extend(&bytes[..at]);
                self.start += at + 1;
                return Ok(Some(line));
            }
            if self.done {
                return Ok(None);
            }
            let frame = tokio::time::timeout(self.client.timeout, self.body.frame())
                .await
                .map_err(|_| ClientError::Timeout {
                    socket: self.client.socket.clone(),
                    secs: self.client.timeout.as_secs(),
                })?;
            match frame {
                None => self.done = true,
                Some(Err(e)) => {
                    return Err(ClientError::Transport {
                        socket: self.client.socket.clone(),
                        detail: format!("the export was cut off ({e})"),
                    });
                }
                Some(Ok(frame)) => {
                    if let Ok(chunk) = frame.into_data() {
                        // Keep only the unread part (the old buffer is wiped).
                        let rest = &self.pending.as_slice()[self.start..];
                        let mut next = SecretBuf::with_capacity(rest.len() + chunk.len());
                        next.extend(rest);
                        secret_buf::take_chunk(&mut next, chunk);
                        self.pending = next;
                        self.start = 0;
                    }
                }
            }
        }
    }
}

fn row_path(table: &str, id: &str) -> String {
    format!("/v1/tables/{}/rows/{}", encode(table), encode(id))
}
