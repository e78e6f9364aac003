//! Owns: the connection policy, without IO: how long to wait before dialling a
//! peer again (exponential backoff with jitter drawn from an injected
//! random source) and which of two connections to the same peer both sides
//! keep.
//!
//! Must not: sleep, read clocks, draw from a global random source or hold
//! connections (sync/manager.rs does what these decide).

use std::time::Duration;

use rand::Rng;

/// Which side opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Outbound,
    Inbound,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }
}

/// The first wait after a failed dial, and the longest.
pub const BACKOFF_START: Duration = Duration::from_millis(250);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Waits between dial attempts: each the current delay with jitter (50–100
/// %), then the delay doubles up to `BACKOFF_MAX`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: BACKOFF_START,
        }
    }
}

impl Backoff {
    /// After a healthy session (or an explicit `puente sync`), start over.
    pub fn reset(&mut self) {
        self.next = BACKOFF_START;
    }

    /// The next wait.
    pub fn wait(&mut self, rng: &mut impl Rng) -> Duration {
        let jitter = 0.5 + rng.random::<f64>() * 0.5;
        let wait = self.next.mul_f64(jitter);
        self.next = (self.next * 2).min(BACKOFF_MAX);
        wait
    }
}

/// Two connections to the same peer admitted within this of each other
/// are a race (both sides dialled at once); a later one means the peer
/// lost the first (it restarted, or saw it die).
pub const DUPLICATE_RACE: Duration = Duration::from_secs(3);

/// Whether a new connection to a peer replaces the live one, admitted
/// `existing_age` ago. The same side dialling again means the old one is
/// stale, and so does a peer dialling long after the old one came up (a
/// peer dials only when it has no connection: it restarted, or lost it).
/// When both sides dialled at once, both keep the connection dialled by the
/// node with the lower certificate fingerprint (`we_dial_the_winner` when
/// that is this node), so they agree without talking.
pub fn keeps_new_connection(
    existing: Direction,
    existing_age: Duration,
    new: Direction,
    we_dial_the_winner: bool,
) -> bool {
    if existing == new || existing_age >= DUPLICATE_RACE {
        return true;
    }
    (new == Direction::Outbound) == we_dial_the_winner
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap_and_resets() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut b = Backoff::default();
        let mut ceiling = BACKOFF_START;
        for _ in 0..12 {
            let w = b.wait(&mut rng);
            assert!(
                w >= ceiling / 2 && w <= ceiling,
                "{w:?} outside [{:?}, {ceiling:?}]",
                ceiling / 2
            );
            ceiling = (ceiling * 2).min(BACKOFF_MAX);
        }
        assert!(b.wait(&mut rng) <= BACKOFF_MAX);
        b.reset();
        assert!(b.wait(&mut rng) <= BACKOFF_START);
    }

    #[test]
    fn the_same_seed_gives_the_same_waits() {
        let waits = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut b = Backoff::default();
            (0..8).map(|_| b.wait(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(waits(1), waits(1));
        assert_ne!(waits(1), waits(2));
    }

    #[test]
    fn both_sides_keep_the_connection_the_lower_fingerprint_dialled() {
        use Direction::{Inbound, Outbound};
        let race = Duration::from_millis(200);
        // A redial from the same side replaces the stale connection.
        assert!(keeps_new_connection(Outbound, race, Outbound, false));
        assert!(keeps_new_connection(Inbound, race, Inbound, true));
        // Both dialled. Node A (lower fingerprint) keeps its outbound one;
        // node B keeps the same connection, which for B is inbound.
        let a_keeps_new_outbound = keeps_new_connection(Inbound, race, Outbound, true);
        let b_keeps_new_inbound = keeps_new_connection(Outbound, race, Inbound, false);
        assert!(a_keeps_new_outbound && b_keeps_new_inbound);
        let a_keeps_new_inbound = keeps_new_connection(Outbound, race, Inbound, true);
        let b_keeps_new_outbound = keeps_new_connection(Inbound, race, Outbound, false);
        assert!(!a_keeps_new_inbound && !b_keeps_new_outbound);
        // Long after its connection came up, the peer dials: it lost that
        // one (a restart), so the new one is kept even against the
        // tie-break.
        assert!(keeps_new_connection(
            Outbound,
            DUPLICATE_RACE,
            Inbound,
            true
        ));
    }
}
