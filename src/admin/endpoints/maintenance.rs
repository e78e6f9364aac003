//! The maintenance endpoints of the admin socket (admin role): a backup
//! streamed to the caller, starting and following a reseal, and folding
//! the WAL into the database (a checkpoint that truncates it).
//!
//! Owns: reading these requests, running the work on the blocking pool or
//! as the node's background task, and streaming a backup file from the
//! data dir's work folder to the socket (the file is removed afterwards,
//! sent or not).
//! Must not: decide anything about the replica (node/backup.rs,
//! node/reseal.rs and the store do).

use std::io::Read;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hyper::body::Bytes;

use super::errors::ApiError;
use super::request::{SharedAdmin, json, read_body};
use crate::api::maintenance::{BACKUP_INFO_HEADER, BackupRequest, Checkpointed, ResealRequest};
use crate::node::backup::{self, BackupError, WORK_DIR};
use crate::node::reseal::ResealError;

/// Bytes per chunk of a streamed backup.
const CHUNK: usize = 256 << 10;

pub(super) fn routes() -> Router<SharedAdmin> {
    Router::new()
        .route("/v1/backup", post(make_backup))
        .route("/v1/reseal", post(start_reseal).get(reseal_status))
        .route("/v1/checkpoint", post(checkpoint))
}

/// Parses an optional JSON body (empty: the default).
async fn body_of<T: serde::de::DeserializeOwned + Default>(
    headers: &HeaderMap,
    body: Body,
    example: &str,
) -> Result<T, ApiError> {
    let buf = read_body(headers, body).await?;
    if buf.as_slice().iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(buf.as_slice()).map_err(|e| {
        ApiError::bad_request(format!(
            "the request body is not valid ({e}); send JSON such as {example}"
        ))
    })
}

fn backup_error(e: BackupError) -> ApiError {
    match e {
        BackupError::Recipient(_) => ApiError::bad_request(e.to_string()),
        other => ApiError::internal(format!("the backup failed: {other}")),
    }
}

async fn make_backup(
    State(app): State<SharedAdmin>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let request: BackupRequest = body_of(&headers, body, r#"{"to": ["age1…"]}"#).await?;
    let to = backup::parse_recipients(&request.to).map_err(backup_error)?;
    let node = app.node.clone();
    let (db, at_rest, schema) = node
        .with_store(|s| {
            (
                s.path().to_path_buf(),
                s.at_rest().clone(),
                s.schema().clone(),
            )
        })
        .await?;
    let config = node.config();
    let (name, work) = (config.name.clone(), config.data_dir.join(WORK_DIR));
    let now = node.now_ms();
    let made = tokio::task::spawn_blocking(move || {
        backup::make(&db, &at_rest, schema, &name, &work, &to, now)
    })
    .await
    .map_err(|e| ApiError::internal(format!("the backup task failed ({e})")))?
    .map_err(backup_error)?;
    tracing::info!(
        head = made.info.head,
        bytes = made.info.bytes,
        wrapped = made.info.wrapped,
        "backup taken"
    );
    let info = serde_json::to_string(&made.info)
        .map_err(|e| ApiError::internal(format!("could not describe the backup ({e})")))?;
    let info = HeaderValue::from_str(&info)
        .map_err(|e| ApiError::internal(format!("could not describe the backup ({e})")))?;
    let (mut sender, stream) = http_body_util::channel::Channel::<Bytes, std::io::Error>::new(2);
    let (file, plain) = (made.file, made.plain);
    tokio::spawn(async move {
        let (chunks, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(2);
        let path = file.clone();
        let reader = tokio::task::spawn_blocking(move || {
            let mut f = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) => {
                    let _ = chunks.blocking_send(Err(e));
                    return;
                }
            };
            loop {
                let mut buf = vec![0u8; CHUNK];
                match f.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        buf.truncate(n);
                        if chunks.blocking_send(Ok(Bytes::from(buf))).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = chunks.blocking_send(Err(e));
                        return;
                    }
                }
            }
        });
        while let Some(chunk) = rx.recv().await {
            match chunk {
                Ok(bytes) => {
                    if sender.send_data(bytes).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::error!("reading the backup to send it failed: {e}");
                    // Dropping the sender aborts the body: the client sees
                    // a cut answer, never a short file taken as whole.
                    sender.abort(e);
                    break;
                }
            }
        }
        drop(rx);
        let _ = reader.await;
        let _ = tokio::task::spawn_blocking(move || backup::remove_work_file(&file, plain)).await;
    });
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::HeaderName::from_static(BACKUP_INFO_HEADER), info),
        ],
        Body::new(stream),
    )
        .into_response())
}

fn reseal_error(e: ResealError) -> ApiError {
    match e {
        ResealError::UnknownGroup { .. } => ApiError::not_found(e.to_string()),
        ResealError::NoIdentity { .. }
        | ResealError::NotAllowed { .. }
        | ResealError::NothingSealed => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        ResealError::Node(n) => n.into(),
        ResealError::Store(s) => s.into(),
    }
}

async fn start_reseal(
    State(app): State<SharedAdmin>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let request: ResealRequest = body_of(&headers, body, r#"{"group": "mx"}"#).await?;
    let status = app
        .node
        .start_reseal(request.group)
        .await
        .map_err(reseal_error)?;
    Ok(json(StatusCode::ACCEPTED, &status))
}

async fn reseal_status(State(app): State<SharedAdmin>) -> Result<Response, ApiError> {
    match app.node.long_work.reseal() {
        Some(status) => Ok(json(StatusCode::OK, &status)),
        None => Err(ApiError::not_found(
            "no reseal has run since the daemon started; start one with POST /v1/reseal (`puente reseal`)",
        )),
    }
}

async fn checkpoint(State(app): State<SharedAdmin>) -> Result<Response, ApiError> {
    let wal_bytes_before = app
        .node
        .with_store(|s| -> Result<u64, crate::store::StoreError> {
            let mut wal = s.path().as_os_str().to_owned();
            wal.push("-wal");
            let before = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
            s.checkpoint()?;
            Ok(before)
        })
        .await??;
    Ok(json(
        StatusCode::OK,
        &Checkpointed {
            ok: true,
            wal_bytes_before,
        },
    ))
}
