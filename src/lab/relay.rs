//! A UDP relay that makes a link bad on purpose: delay with jitter, loss,
//! duplication (and reordering, which jitter causes), and cut/heal, each
//! direction controlled separately. This kernel has no netem; tests and
//! benchmarks put this between two daemons on 127.0.0.1 instead.
//!
//! Owns: forwarding datagrams between clients that send to `addr()` and one
//! upstream address, through one upstream socket per client.
//! Must not: inspect or alter payloads, or bind anything but 127.0.0.1.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// What happens to datagrams in one direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conditions {
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Each datagram is delayed by an extra uniform amount in
    /// [-jitter, +jitter] (never below zero): this reorders datagrams.
    pub jitter: Duration,
    /// Probability that a datagram is dropped.
    pub loss: f64,
    /// Probability that a datagram is delivered twice.
    pub duplicate: f64,
    /// Drop everything (a cut link).
    pub cut: bool,
}

impl Conditions {
    pub const CLEAN: Conditions = Conditions {
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
        loss: 0.0,
        duplicate: 0.0,
        cut: false,
    };

    pub fn delayed(delay: Duration) -> Conditions {
        Conditions {
            delay,
            ..Conditions::CLEAN
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub forwarded: u64,
    pub dropped: u64,
    pub duplicated: u64,
}

#[derive(Debug)]
struct State {
    to_upstream: Conditions,
    to_client: Conditions,
    counts: Counts,
}

pub struct Relay {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Relay {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Relay> {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let addr = front.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            to_upstream: Conditions::CLEAN,
            to_client: Conditions::CLEAN,
            counts: Counts::default(),
        }));
        let task = tokio::spawn(run(front, upstream, state.clone()));
        Ok(Relay { addr, state, task })
    }

    /// Where clients send (pin this address instead of the upstream's).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
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

    pub fn counts(&self) -> Counts {
        self.lock().counts
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Decides the fate of one datagram: the delays at which to deliver it
/// (none: dropped; two: duplicated).
fn fate(c: &Conditions, counts: &mut Counts) -> Vec<Duration> {
    if c.cut || (c.loss > 0.0 && rand::random::<f64>() < c.loss) {
        counts.dropped += 1;
        return Vec::new();
    }
    let one = || {
        let jitter = c.jitter.as_secs_f64() * (rand::random::<f64>() * 2.0 - 1.0);
        Duration::from_secs_f64((c.delay.as_secs_f64() + jitter).max(0.0))
    };
    counts.forwarded += 1;
    let mut out = vec![one()];
    if c.duplicate > 0.0 && rand::random::<f64>() < c.duplicate {
        counts.duplicated += 1;
        out.push(one());
    }
    out
}

fn send_later(socket: Arc<UdpSocket>, data: Vec<u8>, to: Option<SocketAddr>, delay: Duration) {
    let send = async move {
        let _ = match to {
            Some(to) => socket.send_to(&data, to).await,
            None => socket.send(&data).await,
        };
    };
    if delay.is_zero() {
        tokio::spawn(send);
    } else {
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            send.await;
        });
    }
}

async fn run(front: Arc<UdpSocket>, upstream: SocketAddr, state: Arc<Mutex<State>>) {
    let mut backs: HashMap<SocketAddr, (Arc<UdpSocket>, JoinHandle<()>)> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, client)) = front.recv_from(&mut buf).await else {
            continue;
        };
        let back = match backs.get(&client) {
            Some((b, _)) => b.clone(),
            None => {
                let Ok(b) = UdpSocket::bind("127.0.0.1:0").await else {
                    continue;
                };
                if b.connect(upstream).await.is_err() {
                    continue;
                }
                let b = Arc::new(b);
                let reader = tokio::spawn(answer(b.clone(), front.clone(), client, state.clone()));
                backs.insert(client, (b.clone(), reader));
                b
            }
        };
        let delays = {
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            let c = s.to_upstream;
            fate(&c, &mut s.counts)
        };
        for d in delays {
            send_later(back.clone(), buf[..n].to_vec(), None, d);
        }
    }
}

/// Carries the upstream's answers back to one client.
async fn answer(
    back: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    client: SocketAddr,
    state: Arc<Mutex<State>>,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok(n) = back.recv(&mut buf).await else {
            continue;
        };
        let delays = {
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            let c = s.to_client;
            fate(&c, &mut s.counts)
        };
        for d in delays {
            send_later(front.clone(), buf[..n].to_vec(), Some(client), d);
        }
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
