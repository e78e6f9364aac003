//! The connection policy's decisions, one by one, without IO: time and
//! randomness passed in.
//!
//! Owns: inputs given to the backoff, the dialler and the registry, and
//! what they answer.
//! Must not: open a socket, sleep or read a clock.

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

fn ended(ending: Ending, handshaken: bool, lasted_s: u64) -> Attempt {
    Attempt::Ended(SessionEnded {
        ending,
        handshaken,
        lasted: Duration::from_secs(lasted_s),
        refused_by_tls: false,
    })
}

#[test]
fn an_end_is_a_problem_unless_orderly_a_shutdown_a_duplicate_or_ours() {
    use ErrorCode::*;
    for quiet in [Normal, ShuttingDown, DuplicateConnection] {
        assert!(!Ending::Closed(quiet).is_problem());
        assert!(!Ending::ClosedByPeer(Some(quiet)).is_problem());
    }
    for bad in [InvalidBatch, ApplyFailed, Timeout, ForbiddenFlood, Internal] {
        assert!(Ending::Closed(bad).is_problem(), "{bad:?}");
        assert!(Ending::ClosedByPeer(Some(bad)).is_problem(), "{bad:?}");
    }
    // A code this build does not know, a timeout or a reset are.
    assert!(Ending::ClosedByPeer(None).is_problem());
    assert!(Ending::Lost.is_problem());
    assert!(!Ending::ClosedHere.is_problem());
    assert_eq!(Ending::ClosedByPeer(Some(Flood)).code(), Some(Flood));
    assert_eq!(Ending::Lost.code(), None);
}

#[test]
fn a_session_is_healthy_once_established_if_it_lasted_or_ended_well() {
    let healthy = |a: Attempt| a.verdict() == Verdict::Served { healthy: true };
    // Established and ended without a problem, however short.
    assert!(healthy(ended(
        Ending::ClosedByPeer(Some(ErrorCode::ShuttingDown)),
        true,
        0
    )));
    assert!(healthy(ended(Ending::ClosedHere, true, 1)));
    // Established, ended badly, but after a healthy while.
    assert!(healthy(ended(
        Ending::Lost,
        true,
        HEALTHY_SESSION.as_secs()
    )));
    // Ended badly soon after: not healthy (the backoff keeps growing).
    assert!(!healthy(ended(
        Ending::Lost,
        true,
        HEALTHY_SESSION.as_secs() - 1
    )));
    assert!(!healthy(ended(
        Ending::Closed(ErrorCode::ApplyFailed),
        true,
        2
    )));
    // Never established, even if it ended quietly and lasted.
    assert!(!healthy(ended(
        Ending::ClosedByPeer(Some(ErrorCode::DuplicateConnection)),
        false,
        60
    )));
    // Dropped at once for the connection both sides keep: all is well.
    assert!(healthy(Attempt::Duplicate));
    assert_eq!(Attempt::Failed.verdict(), Verdict::Failed);
    assert_eq!(Attempt::Refused.verdict(), Verdict::Refused);
}

#[test]
fn a_refusal_before_hello_passed_shows_as_refused() {
    for code in [ErrorCode::ProtocolMismatch, ErrorCode::SchemaMismatch] {
        for ending in [Ending::Closed(code), Ending::ClosedByPeer(Some(code))] {
            assert_eq!(ended(ending, false, 0).verdict(), Verdict::Refused);
            // Once established, the same code is an ordinary bad end.
            assert_eq!(
                ended(ending, true, 0).verdict(),
                Verdict::Served { healthy: false }
            );
        }
    }
    let by_tls = Attempt::Ended(SessionEnded {
        ending: Ending::Lost,
        handshaken: false,
        lasted: Duration::ZERO,
        refused_by_tls: true,
    });
    assert_eq!(by_tls.verdict(), Verdict::Refused);
    // Other codes before Hello are failures of a served connection.
    assert_eq!(
        ended(Ending::Closed(ErrorCode::Timeout), false, 5).verdict(),
        Verdict::Served { healthy: false }
    );
}

#[test]
fn the_dialler_waits_while_connected_rests_after_each_attempt_and_starts_over_when_healthy() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut d = Dialler::default();
    assert!(d.wants_to_dial(false));
    assert!(
        !d.wants_to_dial(true),
        "a connection is up: wait for it to end"
    );
    d.dialling();
    assert!(!d.wants_to_dial(false));
    // Failures: the rests grow.
    let mut ceiling = BACKOFF_START;
    for _ in 0..4 {
        let (verdict, rest) = d.attempted(Attempt::Failed, &mut rng);
        assert_eq!(verdict, Verdict::Failed);
        assert!(rest <= ceiling && rest >= ceiling / 2, "{rest:?}");
        assert_eq!(d.state(), DialState::Resting);
        assert!(!d.wants_to_dial(false), "resting");
        d.rested();
        assert!(d.wants_to_dial(false));
        d.dialling();
        ceiling *= 2;
    }
    // A session that ended badly soon after it started does not reset.
    let (_, rest) = d.attempted(ended(Ending::Lost, true, 1), &mut rng);
    assert!(rest >= ceiling / 2, "{rest:?} < {:?}", ceiling / 2);
    d.rested();
    d.dialling();
    // A healthy one starts over.
    let (verdict, rest) = d.attempted(ended(Ending::ClosedHere, true, 1), &mut rng);
    assert_eq!(verdict, Verdict::Served { healthy: true });
    assert!(rest <= BACKOFF_START, "{rest:?}");
}

#[test]
fn sync_now_cuts_only_a_rest_short_and_starts_the_backoff_over() {
    let mut rng = StdRng::seed_from_u64(4);
    let mut d = Dialler::default();
    assert!(!d.sync_now(), "ready: nothing to cut short");
    d.dialling();
    assert!(!d.sync_now(), "an attempt under way is left alone");
    for _ in 0..5 {
        d.attempted(Attempt::Failed, &mut rng);
        d.rested();
        d.dialling();
    }
    d.attempted(Attempt::Failed, &mut rng);
    assert!(d.sync_now());
    assert!(d.wants_to_dial(false));
    d.dialling();
    let (_, rest) = d.attempted(Attempt::Failed, &mut rng);
    assert!(rest <= BACKOFF_START, "{rest:?}");
}

#[test]
fn the_registry_keeps_one_connection_per_peer_and_says_which_to_close() {
    use Direction::{Inbound, Outbound};
    let alive = |_: &u32| true;
    let mut r: Registry<&str, u32> = Registry::default();
    assert_eq!(
        r.admit("b", 1, Outbound, 0, true, alive),
        Admission::Admitted { replaced: None }
    );
    // Both dialled at once; we dial the winner: the inbound one loses.
    assert_eq!(
        r.admit("b", 2, Inbound, 100, true, alive),
        Admission::Refused
    );
    assert_eq!(r.get(&"b").map(|k| k.conn), Some(1));
    // The peer dials long after: it lost the first one; replace it.
    let later = DUPLICATE_RACE.as_millis() as u64;
    assert_eq!(
        r.admit("b", 3, Inbound, later, true, alive),
        Admission::Admitted { replaced: Some(1) }
    );
    // A dead connection kept is replaced without a close.
    assert_eq!(
        r.admit("b", 4, Outbound, later + 1, false, |c| *c != 3),
        Admission::Admitted { replaced: None }
    );
    // Only the connection kept is released.
    assert!(!r.release(&"b", |c| *c == 3));
    assert!(r.release(&"b", |c| *c == 4));
    assert!(r.get(&"b").is_none());
    r.admit("c", 5, Outbound, 0, false, alive);
    assert_eq!(r.connections().copied().collect::<Vec<_>>(), [5]);
    r.clear();
    assert_eq!(r.connections().count(), 0);
}

#[test]
fn the_lower_fingerprint_dials_the_winner() {
    assert!(we_dial_the_winner(&[1u8, 2], &[1, 3]));
    assert!(!we_dial_the_winner(&[1u8, 3], &[1, 2]));
}
