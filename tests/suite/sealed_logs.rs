//! With tracing at TRACE while writing, merging and revealing, the log
//! output holds no sealed plaintext. (In a process of its own: it installs
//! a global subscriber so threads spawned for sealing are captured too.)

use crate::support;

use puente::store::Reveal;
use support::*;

#[test]
fn trace_logs_never_contain_sealed_plaintext() {
    in_a_process_of_its_own(
        concat!(
            module_path!(),
            "::trace_logs_never_contain_sealed_plaintext"
        ),
        write_merge_and_reveal_under_a_trace_subscriber,
    );
}

fn write_merge_and_reveal_under_a_trace_subscriber() {
    let capture = LogCapture::install_global();

    let secrets = [
        "Trace-Secret-Name-1",
        "+52 664 TRACE 0001",
        "Trace case note: refugio",
    ];
    let s = schema(&[TEST_RECIPIENT]);
    let mut tijuana = replica("tijuana", s.clone(), Some(TEST_IDENTITY), 1_000);
    let mut san_diego = replica("san-diego", s, None, 1_000);
    let rows: Vec<_> = (0..20)
        .map(|i| {
            (
                format!("trace-row-{i}"),
                cells(&[
                    ("full_name", secrets[0]),
                    ("phone", secrets[1]),
                    ("case_notes", secrets[2]),
                ]),
            )
        })
        .collect();
    tijuana.store.put_many("residents", rows).unwrap();
    sync(&tijuana, &mut san_diego, 7);
    san_diego
        .store
        .put(
            "residents",
            "trace-row-sd",
            cells(&[("full_name", secrets[0])]),
        )
        .unwrap();
    sync(&san_diego, &mut tijuana, 7);
    let row = tijuana
        .store
        .get("residents", "trace-row-3", Reveal::Yes)
        .unwrap()
        .unwrap();
    tracing::trace!(?row, "a revealed row, debug-printed");
    let _ = san_diego.store.get("residents", "trace-row-3", Reveal::Yes);
    tijuana.store.delete("residents", "trace-row-4").unwrap();

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    // The capture works: it holds the events (ids, tables, peers).
    for expected in [
        "local put",
        "applied a batch",
        "revealing a sealed cell",
        "trace-row-3",
        "a revealed row",
    ] {
        assert!(logs.contains(expected), "missing `{expected}` in:\n{logs}");
    }
    for secret in secrets {
        for enc in encodings(secret) {
            assert!(
                !logs
                    .as_bytes()
                    .windows(enc.len())
                    .any(|w| w == enc.as_slice()),
                "sealed plaintext `{secret}` in the logs"
            );
        }
    }
}
