//! A look at every datagram the sync port receives, to count and report
//! what is not QUIC at all.
//!
//! Owns: a wrapper around quinn's UDP socket that classifies incoming
//! datagrams (QUIC v1 has the fixed bit set — puente turns greasing of that
//! bit off — a long header carries version 1, and a client's Initial fills
//! at least 1200 bytes) and reports the rest, rate-limited, to a callback.
//! Must not: drop, alter or delay anything: quinn still sees every datagram
//! and discards garbage itself. Short-header garbage cannot be told from
//! traffic of an unknown connection here and is left to quinn uncounted.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

/// Called with the source and the number of non-QUIC datagrams seen.
pub type GarbageReport = Arc<dyn Fn(SocketAddr, u64) + Send + Sync>;

/// Whether a datagram can be QUIC v1 as puente speaks it.
pub fn looks_like_quic_v1(datagram: &[u8]) -> bool {
    let Some(&first) = datagram.first() else {
        return false;
    };
    if first & 0x40 == 0 {
        return false; // the fixed bit
    }
    if first & 0x80 == 0 {
        return true; // a short header: only a connection can tell
    }
    if datagram.len() < 7 {
        return false;
    }
    let version = u32::from_be_bytes([datagram[1], datagram[2], datagram[3], datagram[4]]);
    if version != 1 {
        return false;
    }
    let is_initial = (first & 0x30) >> 4 == 0;
    !(is_initial && datagram.len() < 1200)
}

pub struct GuardedSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    report: GarbageReport,
}

impl fmt::Debug for GuardedSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedSocket")
            .field("inner", &self.inner)
            .finish()
    }
}

impl GuardedSocket {
    pub fn new(inner: Arc<dyn AsyncUdpSocket>, report: GarbageReport) -> Arc<GuardedSocket> {
        Arc::new(GuardedSocket { inner, report })
    }
}

impl AsyncUdpSocket for GuardedSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.inner.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let result = self.inner.poll_recv(cx, bufs, meta);
        if let Poll::Ready(Ok(n)) = &result {
            for (buf, m) in bufs.iter().zip(meta.iter()).take(*n) {
                let data = &buf[..m.len.min(buf.len())];
                let stride = m.stride.max(1);
                let garbage = data
                    .chunks(stride)
                    .filter(|d| !looks_like_quic_v1(d))
                    .count() as u64;
                if garbage > 0 {
                    (self.report)(m.addr, garbage);
                }
            }
        }
        result
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert!(!looks_like_quic_v1(&[]));
        // Fixed bit clear (0x13) cannot be QUIC; text starting with 'h'
        // (0x68) has it set and looks like a short header: left to quinn.
        assert!(!looks_like_quic_v1(&[0x13, 1, 2]));
        assert!(looks_like_quic_v1(b"hello"));
        assert!(!looks_like_quic_v1(&[0x00; 50]));
        // A long-header Initial of QUIC v1, padded as clients must.
        let mut initial = vec![0xc3, 0, 0, 0, 1, 8];
        initial.resize(1200, 0);
        assert!(looks_like_quic_v1(&initial));
        assert!(!looks_like_quic_v1(&initial[..600]));
        // Another version.
        let mut v2 = initial.clone();
        v2[4] = 2;
        assert!(!looks_like_quic_v1(&v2));
        // Short header.
        assert!(looks_like_quic_v1(&[0x41, 1, 2, 3]));
    }
}
