//! A UDP relay that makes a link bad on purpose: delay with jitter, loss,
//! duplication (and reordering, which jitter causes), cut/heal, and a WAN's
//! bottleneck (a rate and a router queue), each direction controlled
//! separately. This kernel has no netem; tests and benchmarks put this
//! between two daemons on 127.0.0.1 instead. What happens to each datagram
//! is decided in shaper.rs (seeded, time passed in); this file moves bytes.
//!
//! Owns: forwarding datagrams between clients that send to `addr()` and one
//! upstream address, through one upstream socket per client, and sending
//! each copy at its time from one delivery thread (a thread sleeps to the
//! microsecond; tokio timers round every delay up to the next millisecond).
//! Must not: inspect or alter payloads, or bind anything but 127.0.0.1.

use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use super::shaper::Shaper;
pub use super::shaper::{Conditions, DatagramCounts};

struct RelayState {
    to_upstream: Conditions,
    to_client: Conditions,
    up: Shaper,
    down: Shaper,
}

pub struct Relay {
    addr: SocketAddr,
    state: Arc<Mutex<RelayState>>,
    task: JoinHandle<()>,
}

/// A copy of a datagram waiting for its time.
struct Parcel {
    at: Instant,
    order: u64,
    data: Vec<u8>,
    socket: Arc<std::net::UdpSocket>,
    to: Option<SocketAddr>,
}

impl PartialEq for Parcel {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for Parcel {}
impl PartialOrd for Parcel {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Parcel {
    /// Reversed: the heap gives the earliest first.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.order).cmp(&(self.at, self.order))
    }
}

/// Sends every parcel at its time; ends when every sender is gone.
fn deliver(parcels: mpsc::Receiver<Parcel>) {
    let mut heap: BinaryHeap<Parcel> = BinaryHeap::new();
    loop {
        let now = Instant::now();
        while heap.peek().is_some_and(|p| p.at <= now) {
            if let Some(p) = heap.pop() {
                send_now(&p);
            }
        }
        let next = match heap.peek() {
            Some(p) => parcels.recv_timeout(p.at.saturating_duration_since(now)),
            None => parcels
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        match next {
            Ok(p) => heap.push(p),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn send_now(p: &Parcel) {
    // The socket is non-blocking (tokio reads it): a full send buffer on
    // loopback clears in microseconds.
    for _ in 0..100 {
        let sent = match p.to {
            Some(to) => p.socket.send_to(&p.data, to),
            None => p.socket.send(&p.data),
        };
        match sent {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_micros(50));
            }
            _ => return,
        }
    }
}

/// A 127.0.0.1 socket for tokio to read and a handle for the delivery
/// thread to send with.
fn bind_pair(
    connect: Option<SocketAddr>,
) -> std::io::Result<(UdpSocket, Arc<std::net::UdpSocket>)> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    if let Some(to) = connect {
        socket.connect(to)?;
    }
    socket.set_nonblocking(true)?;
    let sender = Arc::new(socket.try_clone()?);
    Ok((UdpSocket::from_std(socket)?, sender))
}

impl Relay {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Relay> {
        Relay::start_seeded(upstream, rand::random()).await
    }

    /// The same, with the randomness of loss, jitter and duplication drawn
    /// from `seed`.
    pub async fn start_seeded(upstream: SocketAddr, seed: u64) -> std::io::Result<Relay> {
        let (front, front_sender) = bind_pair(None)?;
        let addr = front.local_addr()?;
        let state = Arc::new(Mutex::new(RelayState {
            to_upstream: Conditions::CLEAN,
            to_client: Conditions::CLEAN,
            up: Shaper::new(seed),
            down: Shaper::new(seed ^ 0x005e_edd0_5eed),
        }));
        let (parcels, inbox) = mpsc::channel();
        std::thread::Builder::new()
            .name("relay-delivery".into())
            .spawn(move || deliver(inbox))?;
        let link = Link {
            epoch: Instant::now(),
            state: state.clone(),
            parcels,
            order: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        };
        let task = tokio::spawn(run(Arc::new(front), front_sender, upstream, link));
        Ok(Relay { addr, state, task })
    }

    /// Where clients send (pin this address instead of the upstream's).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RelayState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the same conditions both ways.
    pub fn set(&self, conditions: Conditions) {
        let mut s = self.lock();
        s.to_upstream = conditions;
        s.to_client = conditions;
    }

    pub fn set_each(&self, to_upstream: Conditions, to_client: Conditions) {
        let mut s = self.lock();
        s.to_upstream = to_upstream;
        s.to_client = to_client;
    }

    /// Cuts the link both ways (datagrams are dropped).
    pub fn cut(&self) {
        let mut s = self.lock();
        s.to_upstream.cut = true;
        s.to_client.cut = true;
    }

    pub fn heal(&self) {
        let mut s = self.lock();
        s.to_upstream.cut = false;
        s.to_client.cut = false;
    }

    /// Both directions together.
    pub fn counts(&self) -> DatagramCounts {
        let s = self.lock();
        let (a, b) = (s.up.counts, s.down.counts);
        DatagramCounts {
            forwarded: a.forwarded + b.forwarded,
            dropped: a.dropped + b.dropped,
            overflowed: a.overflowed + b.overflowed,
            duplicated: a.duplicated + b.duplicated,
            bytes: a.bytes + b.bytes,
        }
    }

    /// Towards the upstream, and towards the clients.
    pub fn counts_each(&self) -> (DatagramCounts, DatagramCounts) {
        let s = self.lock();
        (s.up.counts, s.down.counts)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the reading tasks share: the decisions and the delivery thread.
#[derive(Clone)]
struct Link {
    epoch: Instant,
    state: Arc<Mutex<RelayState>>,
    parcels: mpsc::Sender<Parcel>,
    order: Arc<std::sync::atomic::AtomicU64>,
}

impl Link {
    /// Decides the fate of one datagram that just arrived and queues its
    /// copies.
    fn forward(
        &self,
        data: &[u8],
        upstream: bool,
        socket: &Arc<std::net::UdpSocket>,
        to: Option<SocketAddr>,
    ) {
        let now = self.epoch.elapsed();
        let times = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let s = &mut *s;
            if upstream {
                s.up.admit(&s.to_upstream, data.len(), now)
            } else {
                s.down.admit(&s.to_client, data.len(), now)
            }
        };
        for at in times {
            let order = self
                .order
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let _ = self.parcels.send(Parcel {
                at: self.epoch + at,
                order,
                data: data.to_vec(),
                socket: socket.clone(),
                to,
            });
        }
    }
}

/// Aborts the tasks answering clients when the relay goes.
struct Backs(HashMap<SocketAddr, (Arc<std::net::UdpSocket>, JoinHandle<()>)>);

impl Drop for Backs {
    fn drop(&mut self) {
        for (_, task) in self.0.values() {
            task.abort();
        }
    }
}

async fn run(
    front: Arc<UdpSocket>,
    front_sender: Arc<std::net::UdpSocket>,
    upstream: SocketAddr,
    link: Link,
) {
    let mut backs = Backs(HashMap::new());
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, client)) = front.recv_from(&mut buf).await else {
            continue;
        };
        let back = match backs.0.get(&client) {
            Some((b, _)) => b.clone(),
            None => {
                let Ok((reader, sender)) = bind_pair(Some(upstream)) else {
                    continue;
                };
                let answers =
                    tokio::spawn(answer(reader, front_sender.clone(), client, link.clone()));
                backs.0.insert(client, (sender.clone(), answers));
                sender
            }
        };
        link.forward(&buf[..n], true, &back, None);
    }
}

/// Carries the upstream's answers back to one client.
async fn answer(back: UdpSocket, front: Arc<std::net::UdpSocket>, client: SocketAddr, link: Link) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok(n) = back.recv(&mut buf).await else {
            continue;
        };
        link.forward(&buf[..n], false, &front, Some(client));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn forwards_both_ways_and_obeys_cut_loss_and_delay() {
        let echo = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = echo.recv_from(&mut buf).await {
                let _ = echo.send_to(&buf[..n], from).await;
            }
        });
        let relay = Relay::start(echo_addr).await.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.connect(relay.addr()).await.unwrap();
        let mut buf = [0u8; 64];
        async fn round_trip(client: &UdpSocket) -> Option<usize> {
            client.send(b"ping").await.unwrap();
            let mut buf = [0u8; 64];
            tokio::time::timeout(Duration::from_millis(500), client.recv(&mut buf))
                .await
                .ok()
                .map(|r| r.unwrap())
        }
        assert_eq!(round_trip(&client).await, Some(4));

        relay.cut();
        client.send(b"lost").await.unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(200), client.recv(&mut buf))
                .await
                .is_err()
        );
        relay.heal();

        relay.set(Conditions::delayed(Duration::from_millis(40)));
        let started = std::time::Instant::now();
        assert_eq!(round_trip(&client).await, Some(4));
        assert!(
            started.elapsed() >= Duration::from_millis(80),
            "{:?}",
            started.elapsed()
        );

        relay.set(Conditions {
            loss: 1.0,
            ..Conditions::CLEAN
        });
        client.send(b"dropped").await.unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(200), client.recv(&mut buf))
                .await
                .is_err()
        );
        assert!(relay.counts().dropped >= 2);
    }
}
