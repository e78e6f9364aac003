//! Owns: an HTTP body fed from a channel: how the export streams rows out
//! of the daemon and how `rows import` streams a file into it, one bounded
//! chunk at a time, never the whole in one buffer.
//!
//! Must not: look at the bytes.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame};
use hyper::body::Bytes;
use tokio::sync::mpsc;

/// Why a streamed body stopped early (the receiving side sees the
/// connection fail, so nothing half-sent is taken as whole).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StreamError(pub String);

/// Chunks queued ahead of the connection: the producer waits beyond this.
pub const QUEUED_CHUNKS: usize = 8;

/// The receiving end of a body; the sender gives chunks or an error.
pub struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, StreamError>>,
}

/// A body and the sender that feeds it.
pub fn channel() -> (mpsc::Sender<Result<Bytes, StreamError>>, ChannelBody) {
    let (tx, rx) = mpsc::channel(QUEUED_CHUNKS);
    (tx, ChannelBody { rx })
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = StreamError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| c.map(Frame::data)))
    }
}
