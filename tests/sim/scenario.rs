//! One run's shape, drawn from its seed: how many offices, which are
//! linked and how well, what the workload is, and which faults strike when
//! (crashes, partitions, clock jumps, a day of skew, full disks).

use rand::Rng;
use rand::rngs::StdRng;

/// A link between two offices.
#[derive(Debug, Clone)]
pub struct LinkSpec {
    pub a: usize,
    pub b: usize,
    /// One-way delay and its jitter (ms).
    pub delay_ms: u64,
    pub jitter_ms: u64,
    /// Chance that a frame waits for a retransmission (a lost packet that
    /// QUIC resends: the stream stays ordered, so later frames wait too).
    pub loss: f64,
}

/// A fault at a time (ms of simulated time).
#[derive(Debug, Clone)]
pub enum Fault {
    Crash { office: usize, down_ms: u64 },
    Cut { a: usize, b: usize, for_ms: u64 },
    ClockJump { office: usize, delta_ms: i64 },
    DiskFull { office: usize, for_ms: u64 },
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub offices: usize,
    pub links: Vec<LinkSpec>,
    /// Constant clock offsets per office (one may be a day ahead).
    pub skew_ms: Vec<i64>,
    pub writes: usize,
    /// Writes and faults happen in [0, chaos_ms).
    pub chaos_ms: u64,
    pub faults: Vec<(u64, Fault)>,
    pub batch_rows: usize,
    pub group_changes: usize,
    /// Bytes one read takes ahead of decoding (`Limits::read_ahead`): the
    /// daemon's 2 MiB, or a few frames' worth so that the bound matters.
    pub read_ahead: usize,
    /// How fast each end writes its frames onto the stream (bytes per ms:
    /// about 0.8, 8 or 80 Mbit/s); a slow one makes frames wait in the
    /// outbox, so its order and its bound matter.
    pub write_bytes_per_ms: u64,
    /// Ids per table the workload draws from (small: writes overlap).
    pub ids: usize,
}

impl Scenario {
    pub fn draw(rng: &mut StdRng) -> Scenario {
        let offices = rng.random_range(2..=5);
        let mut pairs = Vec::new();
        match rng.random_range(0..3) {
            // Everyone linked with everyone.
            0 => {
                for a in 0..offices {
                    for b in a + 1..offices {
                        pairs.push((a, b));
                    }
                }
            }
            // A line: changes travel through relays.
            1 => pairs.extend((1..offices).map(|b| (b - 1, b))),
            // A star around office 0.
            _ => pairs.extend((1..offices).map(|b| (0, b))),
        }
        let links = pairs
            .into_iter()
            .map(|(a, b)| LinkSpec {
                a,
                b,
                delay_ms: rng.random_range(1..=60),
                jitter_ms: rng.random_range(0..=20),
                loss: [0.0, 0.01, 0.05][rng.random_range(0..3)],
            })
            .collect::<Vec<_>>();
        let mut skew_ms: Vec<i64> = (0..offices)
            .map(|_| rng.random_range(-2_000..=2_000))
            .collect();
        if rng.random_bool(0.25) {
            let o = rng.random_range(0..offices);
            skew_ms[o] += 24 * 3_600_000;
        }
        let chaos_ms = rng.random_range(5_000..=60_000);
        let mut faults = Vec::new();
        for _ in 0..rng.random_range(0..=3) {
            let office = rng.random_range(0..offices);
            let down_ms = rng.random_range(10..=20_000);
            faults.push((
                rng.random_range(0..chaos_ms),
                Fault::Crash { office, down_ms },
            ));
        }
        for _ in 0..rng.random_range(0..=3) {
            let l = &links[rng.random_range(0..links.len())];
            let for_ms = rng.random_range(100..=30_000);
            faults.push((
                rng.random_range(0..chaos_ms),
                Fault::Cut {
                    a: l.a,
                    b: l.b,
                    for_ms,
                },
            ));
        }
        for _ in 0..rng.random_range(0..=2) {
            let office = rng.random_range(0..offices);
            let delta_ms = if rng.random_bool(0.5) {
                rng.random_range(1_000..=7_200_000)
            } else {
                -rng.random_range(1_000..=7_200_000)
            };
            faults.push((
                rng.random_range(0..chaos_ms),
                Fault::ClockJump { office, delta_ms },
            ));
        }
        for _ in 0..rng.random_range(0..=2) {
            let office = rng.random_range(0..offices);
            let for_ms = rng.random_range(100..=10_000);
            faults.push((
                rng.random_range(0..chaos_ms),
                Fault::DiskFull { office, for_ms },
            ));
        }
        Scenario {
            offices,
            links,
            skew_ms,
            writes: rng.random_range(10..=60),
            chaos_ms,
            faults,
            batch_rows: rng.random_range(1..=20),
            group_changes: rng.random_range(1..=40),
            ids: rng.random_range(2..=8),
            read_ahead: [1 << 10, 8 << 10, 2 << 20][rng.random_range(0..3)],
            write_bytes_per_ms: [100, 1_000, 10_000][rng.random_range(0..3)],
        }
    }
}
