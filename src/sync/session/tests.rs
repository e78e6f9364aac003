//! The session machine's decisions, step by step, without IO.
//!
//! Owns: inputs given to a `Session` and the actions it answers with.
//! Must not: open a socket or a replica.

use std::path::Path;

use super::*;
use crate::config::Schema;
use crate::stamp::SiteId;
use crate::store::{Change, PeerRef, validate};

fn local() -> LocalInfo {
    LocalInfo {
        site: SiteId([1; 16]),
        node: "tijuana".into(),
        schema_hash: "hash-a".into(),
        schema: "puente-schema-v1\n".into(),
        versions: vec![1, 2],
    }
}

fn hello() -> Message {
    Message::Hello(Hello {
        protocol: 2,
        versions: vec![1, 2, 3],
        site: SiteId([2; 16]),
        node: "san-diego".into(),
        schema_hash: "hash-a".into(),
        schema: Some("puente-schema-v1\n".into()),
        head: 7,
        wall_ms: 1_500,
    })
}

/// A session on a connection that negotiated version 2.
fn session(limits: Limits, timing: Timing, head: u64, now_ms: u64) -> Session {
    Session::new(local(), limits, timing, 2, (now_ms, now_ms), head)
}

fn limits(group_changes: usize) -> Limits {
    Limits {
        batch_rows: 10,
        batch_bytes: 1 << 20,
        group_changes,
        read_ahead: 1 << 10,
    }
}

fn drain(s: &mut Session) -> Vec<Action> {
    std::iter::from_fn(|| s.poll_action()).collect()
}

/// A session that has exchanged Hellos and bound the peer's site, with
/// its actions so far taken.
fn established(group_changes: usize) -> Session {
    let mut s = session(limits(group_changes), Timing::default(), 3, 1_000);
    s.handle(Input::Frame(hello()), 1_000);
    s.handle(Input::Bound(Ok(())), 1_000);
    drain(&mut s);
    s
}

fn applied() -> Input {
    Input::Applied(Ok(GroupApplied::default()))
}

fn batch(changes: usize) -> Batch {
    Batch {
        sites: vec![],
        changes: (0..changes)
            .map(|i| Change::Row {
                table: 0,
                id: format!("r{i}"),
                cells: vec![],
            })
            .collect(),
    }
}

fn received(changes: usize, complete: bool) -> Received {
    let schema =
        Schema::parse(Path::new("t.toml"), "[tables.t.columns]\na = \"shared\"\n").unwrap();
    let peer = PeerRef {
        site: SiteId([2; 16]),
        name: "san-diego".into(),
    };
    Received {
        batch: validate(&schema, &peer, batch(changes)).unwrap(),
        cursor: Cursor::at(changes as u64),
        complete,
        head: 9,
    }
}

fn closed_with(actions: &[Action]) -> Option<ErrorCode> {
    actions.iter().find_map(|a| match a {
        Action::Close(v) => Some(v.code),
        _ => None,
    })
}

#[test]
fn hello_goes_first_then_leads_to_a_bind_a_pull_and_a_larger_frame_limit() {
    let mut s = session(limits(100), Timing::default(), 3, 1_000);
    let first = drain(&mut s);
    assert!(
        matches!(&first[..], [Action::Send(Message::Hello(h))] if h.head == 3 && h.wall_ms == 1_000 && h.site == SiteId([1; 16]) && h.protocol == 2 && h.versions == [1, 2] && h.schema.is_some())
    );
    assert_eq!(s.poll_timeout(), Some(6_000));
    s.handle(Input::Frame(hello()), 1_200);
    let after = drain(&mut s);
    assert!(matches!(after[0], Action::SetFrameLimit(MAX_FRAME)));
    // The peer's site is bound to its office before anything else.
    assert!(matches!(after[1], Action::Bind(site) if site == SiteId([2; 16])));
    assert_eq!(after.len(), 2);
    s.handle(Input::Bound(Ok(())), 1_200);
    let after = drain(&mut s);
    assert!(
        matches!(&after[0], Action::Report(Report::Established { hello }) if hello.node == "san-diego" && hello.wall_ms == 1_500)
    );
    assert!(matches!(after[1], Action::SendPull));
    assert_eq!(after.len(), 2);
    assert_eq!(s.peer().map(|h| h.head), Some(7));
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn a_site_bound_to_another_office_closes_before_the_session_is_established() {
    let mut s = session(limits(100), Timing::default(), 3, 0);
    drain(&mut s);
    s.handle(Input::Frame(hello()), 0);
    drain(&mut s);
    s.handle(
        Input::Bound(Err(Violation::new(ErrorCode::SameSite, "another office's"))),
        0,
    );
    let after = drain(&mut s);
    assert_eq!(closed_with(&after), Some(ErrorCode::SameSite));
    assert_eq!(after.len(), 1, "no Established, no Pull: {after:?}");
}

#[test]
fn a_version_1_connection_sends_a_version_1_hello() {
    let mut s = Session::new(local(), limits(100), Timing::default(), 1, (0, 5), 3);
    let first = drain(&mut s);
    assert!(
        matches!(&first[..], [Action::Send(Message::Hello(h))] if h.protocol == 1 && h.versions == [1] && h.schema.is_none())
    );
    // A version 2 Hello on it is refused.
    s.handle(Input::Frame(hello()), 0);
    assert_eq!(
        closed_with(&drain(&mut s)),
        Some(ErrorCode::ProtocolMismatch)
    );
}

#[test]
fn without_a_common_version_both_sides_say_what_they_speak_and_close() {
    let mut s = Session::new(local(), limits(100), Timing::default(), 0, (0, 0), 3);
    assert!(matches!(
        &drain(&mut s)[..],
        [Action::Send(Message::Versions { versions, .. })] if versions == &[1, 2]
    ));
    s.handle(
        Input::Frame(Message::Versions {
            versions: vec![3],
            node: "future".into(),
        }),
        0,
    );
    let a = drain(&mut s);
    let Some(Action::Close(v)) = a.last() else {
        panic!("{a:?}")
    };
    assert_eq!(v.code, ErrorCode::ProtocolMismatch);
    assert!(
        v.reason
            .contains("`future` speaks 3, this node speaks 1, 2"),
        "{v}"
    );
    // On a connection with a version, Versions is out of place.
    let mut s = established(100);
    s.handle(
        Input::Frame(Message::Versions {
            versions: vec![3],
            node: "x".into(),
        }),
        0,
    );
    assert_eq!(
        closed_with(&drain(&mut s)),
        Some(ErrorCode::UnexpectedMessage)
    );
}

#[test]
fn no_hello_in_time_closes_with_timeout() {
    let mut s = session(limits(100), Timing::default(), 0, 1_000);
    drain(&mut s);
    s.handle(Input::Tick, 5_999);
    assert!(drain(&mut s).is_empty());
    s.handle(Input::Tick, 6_000);
    assert_eq!(closed_with(&drain(&mut s)), Some(ErrorCode::Timeout));
    assert!(s.is_closed());
    // Nothing follows a close.
    s.handle(Input::Frame(hello()), 6_001);
    assert!(drain(&mut s).is_empty());
}

#[test]
fn out_of_order_messages_close_the_session() {
    let mut s = session(limits(100), Timing::default(), 0, 0);
    drain(&mut s);
    s.handle(
        Input::Frame(Message::Pull {
            cursor: Cursor::ZERO,
        }),
        0,
    );
    assert_eq!(
        closed_with(&drain(&mut s)),
        Some(ErrorCode::UnexpectedMessage)
    );

    let mut s = established(100);
    s.handle(Input::Frame(hello()), 0);
    assert_eq!(
        closed_with(&drain(&mut s)),
        Some(ErrorCode::UnexpectedMessage)
    );

    let mut s = session(limits(100), Timing::default(), 0, 0);
    drain(&mut s);
    let Message::Hello(mut h) = hello() else {
        unreachable!()
    };
    h.schema_hash = "hash-b".into();
    s.handle(Input::Frame(Message::Hello(h)), 0);
    assert_eq!(closed_with(&drain(&mut s)), Some(ErrorCode::SchemaMismatch));
}

#[test]
fn pull_starts_the_pump_which_runs_until_caught_up() {
    let mut s = established(100);
    s.handle(
        Input::Frame(Message::Pull {
            cursor: Cursor::at(4),
        }),
        0,
    );
    let a = drain(&mut s);
    // Batches of the configured size, compressed on a version 3 connection
    // only (this one negotiated version 2).
    assert!(
        matches!(a[..], [Action::Pump { from, generation: 1, max_rows: 10, max_bytes: 1_048_576, compress: false }] if from == Cursor::at(4))
    );
    let mid = Cursor {
        base: 4,
        progress: 20,
    };
    s.handle(
        Input::Pumped(Ok(Pumped {
            generation: 1,
            cursor: mid,
            complete: false,
            head: 50,
        })),
        1,
    );
    let a = drain(&mut s);
    assert!(matches!(a[..], [Action::Pump { from, generation: 1, .. }] if from == mid));
    s.handle(
        Input::Pumped(Ok(Pumped {
            generation: 1,
            cursor: Cursor::at(50),
            complete: true,
            head: 50,
        })),
        2,
    );
    assert!(drain(&mut s).is_empty(), "caught up: the pump waits");
}

#[test]
fn live_pushes_follow_the_head_paced() {
    let timing = Timing {
        live_pace_ms: 10,
        ..Timing::default()
    };
    let mut s = session(limits(100), timing, 0, 0);
    s.handle(Input::Frame(hello()), 0);
    s.handle(Input::Bound(Ok(())), 0);
    s.handle(
        Input::Frame(Message::Pull {
            cursor: Cursor::ZERO,
        }),
        0,
    );
    drain(&mut s);
    s.handle(
        Input::Pumped(Ok(Pumped {
            generation: 1,
            cursor: Cursor::at(5),
            complete: true,
            head: 5,
        })),
        0,
    );
    drain(&mut s);
    // A head at or below what was sent starts nothing.
    s.handle(Input::HeadMoved(5), 1);
    assert!(
        !drain(&mut s)
            .iter()
            .any(|a| matches!(a, Action::Pump { .. }))
    );
    // The first live push goes at once.
    s.handle(Input::HeadMoved(6), 100);
    assert!(matches!(drain(&mut s)[..], [Action::Pump { from, .. }] if from == Cursor::at(5)));
    s.handle(
        Input::Pumped(Ok(Pumped {
            generation: 1,
            cursor: Cursor::at(6),
            complete: true,
            head: 6,
        })),
        101,
    );
    // The next waits for the pace: due at 110.
    s.handle(Input::HeadMoved(7), 102);
    assert!(
        !drain(&mut s)
            .iter()
            .any(|a| matches!(a, Action::Pump { .. }))
    );
    // (The debounced State is due earlier, at 21.)
    assert_eq!(s.poll_timeout(), Some(21));
    s.handle(Input::Tick, 21);
    assert!(matches!(drain(&mut s)[..], [Action::SendState]));
    assert_eq!(s.poll_timeout(), Some(110));
    s.handle(Input::Tick, 109);
    assert!(
        !drain(&mut s)
            .iter()
            .any(|a| matches!(a, Action::Pump { .. }))
    );
    s.handle(Input::Tick, 110);
    let a = drain(&mut s);
    assert!(
        a.iter()
            .any(|a| matches!(a, Action::Pump { from, .. } if *from == Cursor::at(6)))
    );
}

#[test]
fn a_pull_during_a_pump_restarts_it_from_the_new_cursor_when_the_old_one_answers() {
    let mut s = established(100);
    s.handle(
        Input::Frame(Message::Pull {
            cursor: Cursor::at(10),
        }),
        0,
    );
    drain(&mut s);
    s.handle(
        Input::Frame(Message::Pull {
            cursor: Cursor::at(2),
        }),
        0,
    );
    assert!(drain(&mut s).is_empty(), "one pump out at a time");
    s.handle(
        Input::Pumped(Ok(Pumped {
            generation: 1,
            cursor: Cursor::at(30),
            complete: true,
            head: 30,
        })),
        1,
    );
    let a = drain(&mut s);
    assert!(matches!(a[..], [Action::Pump { from, generation: 2, .. }] if from == Cursor::at(2)));
}

#[test]
fn batches_queued_during_an_apply_go_together_up_to_the_group_bound() {
    let mut s = established(10);
    s.handle(
        Input::Frame(Message::Batch {
            batch: batch(3),
            cursor: Cursor::at(3),
            complete: false,
            head: 9,
        }),
        0,
    );
    assert!(matches!(drain(&mut s)[..], [Action::Validate { .. }]));
    s.handle(Input::Validated(Ok(received(3, false))), 0);
    assert!(drain(&mut s).is_empty(), "waits for the end of the read");
    s.handle(Input::FramesDrained, 0);
    assert!(
        matches!(&drain(&mut s)[..], [Action::Apply { group, settle: false }] if group.len() == 1)
    );
    // While it is applied, more arrive.
    s.handle(Input::Validated(Ok(received(4, false))), 0);
    s.handle(Input::Validated(Ok(received(4, true))), 0);
    s.handle(Input::FramesDrained, 0);
    assert!(drain(&mut s).is_empty(), "one group out at a time");
    assert!(s.wants_frames());
    s.handle(Input::Validated(Ok(received(4, false))), 0);
    assert!(!s.wants_frames(), "the next group is full: stop reading");
    s.handle(applied(), 0);
    let a = drain(&mut s);
    // That group reaches the sender's head: the replica settles after it.
    assert!(
        matches!(&a[..], [Action::Apply { group, settle: true }] if group.len() == 3),
        "{a:?}"
    );
    assert!(s.wants_frames());
    // Once it is applied, State follows it.
    s.handle(applied(), 0);
    assert!(matches!(drain(&mut s)[..], [Action::SendState]));
}

#[test]
fn a_read_takes_what_arrived_up_to_the_read_ahead() {
    let s = established(100);
    // `limits` reads ahead 1 KiB.
    assert!(s.reads_ahead(0));
    assert!(s.reads_ahead(1_023));
    assert!(!s.reads_ahead(1_024));
    assert!(Limits::default().read_ahead >= Limits::default().batch_bytes);
}

#[test]
fn only_a_group_that_reaches_the_senders_head_settles_the_replica() {
    let mut s = established(100);
    for complete in [false, true] {
        s.handle(Input::Validated(Ok(received(2, complete))), 0);
        s.handle(Input::FramesDrained, 0);
        let a = drain(&mut s);
        assert!(
            matches!(&a[..], [Action::Apply { settle, .. }] if *settle == complete),
            "{a:?}"
        );
        s.handle(applied(), 0);
        let a = drain(&mut s);
        assert_eq!(
            a.iter().any(|a| matches!(a, Action::SendState)),
            complete,
            "{a:?}"
        );
    }
}

#[test]
fn held_changes_are_fine_but_dropped_ones_close_with_forbidden_flood() {
    let mut s = established(100);
    s.handle(Input::Validated(Ok(received(2, true))), 0);
    s.handle(Input::FramesDrained, 0);
    drain(&mut s);
    s.handle(
        Input::Applied(Ok(GroupApplied {
            held: 2,
            dropped: 0,
        })),
        0,
    );
    let a = drain(&mut s);
    assert!(matches!(a[..], [Action::SendState]), "{a:?}");
    assert!(!s.is_closed());

    // The held list is full: what was held is committed, the session ends
    // (no State, no further group), and the sentence says what to do.
    s.handle(Input::Validated(Ok(received(2, false))), 0);
    s.handle(Input::FramesDrained, 0);
    drain(&mut s);
    s.handle(Input::Validated(Ok(received(2, true))), 0);
    s.handle(
        Input::Applied(Ok(GroupApplied {
            held: 1,
            dropped: 1,
        })),
        0,
    );
    let a = drain(&mut s);
    assert!(
        matches!(&a[..], [Action::Close(v)] if v.code == ErrorCode::ForbiddenFlood && v.reason.contains("1 dropped") && v.reason.contains("puente held list")),
        "{a:?}"
    );
    assert!(s.is_closed());
}

#[test]
fn a_version_3_connection_compresses_its_batches() {
    let mut s = Session::new(local(), limits(100), Timing::default(), 3, (0, 0), 0);
    let Message::Hello(mut h) = hello() else {
        unreachable!()
    };
    h.protocol = 3;
    let mut l = local();
    l.versions = vec![1, 2, 3];
    s.local = l;
    s.handle(Input::Frame(Message::Hello(h)), 0);
    s.handle(Input::Bound(Ok(())), 0);
    s.handle(
        Input::Frame(Message::Pull {
            cursor: Cursor::ZERO,
        }),
        0,
    );
    let a = drain(&mut s);
    assert!(
        a.iter()
            .any(|a| matches!(a, Action::Pump { compress: true, .. })),
        "{a:?}"
    );
}

#[test]
fn store_errors_close_with_the_code_that_names_them() {
    use crate::store::StoreError;
    let schema =
        Schema::parse(Path::new("t.toml"), "[tables.t.columns]\na = \"shared\"\n").unwrap();
    let peer = PeerRef {
        site: SiteId([2; 16]),
        name: "san-diego".into(),
    };
    let mut bad = batch(1);
    bad.changes[0] = Change::Row {
        table: 9,
        id: "r".into(),
        cells: vec![],
    };
    let invalid = validate(&schema, &peer, bad).unwrap_err();
    assert_eq!(store_violation(invalid).code, ErrorCode::InvalidBatch);
    let other = StoreError::SiteOfAnotherOffice {
        site: SiteId([2; 16]).to_string(),
        office: "tijuana".into(),
        peer: "san-diego".into(),
    };
    assert_eq!(store_violation(other).code, ErrorCode::SameSite);
}

#[test]
fn state_is_announced_once_after_a_burst_of_commits() {
    let mut s = established(100);
    s.handle(Input::HeadMoved(4), 100);
    s.handle(Input::HeadMoved(5), 105);
    s.handle(Input::HeadMoved(6), 110);
    assert_eq!(s.poll_timeout(), Some(120));
    s.handle(Input::Tick, 119);
    assert!(drain(&mut s).is_empty());
    s.handle(Input::Tick, 120);
    assert!(matches!(drain(&mut s)[..], [Action::SendState]));
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn failures_reported_back_close_with_their_code() {
    for input in [
        Input::Validated(Err(Violation::new(ErrorCode::InvalidBatch, "bad"))),
        Input::Applied(Err(Violation::new(ErrorCode::InvalidBatch, "bad"))),
        Input::Bound(Err(Violation::new(ErrorCode::InvalidBatch, "bad"))),
        Input::Pumped(Err(Violation::new(ErrorCode::InvalidBatch, "bad"))),
    ] {
        let mut s = established(100);
        s.handle(input, 0);
        assert_eq!(closed_with(&drain(&mut s)), Some(ErrorCode::InvalidBatch));
    }
}

#[test]
fn a_flood_of_tiny_batches_closes_the_session() {
    let mut s = established(100);
    let mut code = None;
    for i in 0..10_000u64 {
        s.handle(
            Input::Frame(Message::Batch {
                batch: batch(1),
                cursor: Cursor::ZERO,
                complete: false,
                head: 0,
            }),
            i / 50,
        );
        if let Some(c) = closed_with(&drain(&mut s)) {
            code = Some(c);
            break;
        }
    }
    assert_eq!(code, Some(ErrorCode::Flood));
}
