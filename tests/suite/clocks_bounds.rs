//! Bounds on what a pinned peer can make an office keep for ever: site
//! ids named in one batch, site ids first learned from one peer, site ids
//! bound to one office. Each at its limit and one over; over, refused
//! with a sentence naming the peer, nothing of it kept.

use crate::support;

use puente::clock::Hlc;
use puente::stamp::SiteId;
use puente::store::{
    Batch, CellChange, Change, Cursor, MAX_SITES_PER_BATCH, MAX_SITES_PER_OFFICE,
    MAX_SITES_PER_PEER, Reveal, StoreError,
};
use puente::value::Value;
use support::*;

const NOW: u64 = 1_800_000_000_000;

fn site(n: u32) -> SiteId {
    let mut s = [0xa5; 16];
    s[..4].copy_from_slice(&n.to_be_bytes());
    SiteId(s)
}

/// A batch naming `sites`, with one event row written by each of the
/// first `used` of them.
fn batch(tj: &Replica, sites: Vec<SiteId>, used: usize, tag: &str) -> Batch {
    let s = tj.store.schema();
    let t = s.table_index("outreach_events").unwrap();
    let column = s.tables[t].column_index("title").unwrap() as u16;
    let changes = (0..used)
        .map(|i| Change::Row {
            table: t as u16,
            id: format!("{tag}-{i}"),
            cells: vec![CellChange {
                column,
                hlc: Hlc::from_parts(NOW - 1_000, i as u16),
                site: i as u32,
                value: Value::Text("Taller".into()),
            }],
        })
        .collect();
    Batch { sites, changes }
}

fn pair() -> (Replica, Replica) {
    let s = schema(&[TEST_RECIPIENT]);
    (
        replica("tijuana", s.clone(), Some(TEST_IDENTITY), NOW),
        replica("san-diego", s, None, NOW),
    )
}

#[test]
fn a_batch_naming_more_site_ids_than_the_bound_is_refused() {
    let (mut tj, sd) = pair();
    let peer = sd.peer_ref();
    // At the limit: accepted (only the one site a change uses is kept).
    let at = batch(
        &tj,
        (0..MAX_SITES_PER_BATCH as u32).map(site).collect(),
        1,
        "a",
    );
    tj.store.apply(&peer, at, Cursor::at(1)).unwrap();
    assert!(
        tj.store
            .get("outreach_events", "a-0", Reveal::No)
            .unwrap()
            .is_some()
    );
    // One over: refused whole, nothing applied, the cursor where it was.
    let head = tj.store.head();
    let over = batch(
        &tj,
        (1_000..1_000 + MAX_SITES_PER_BATCH as u32 + 1)
            .map(site)
            .collect(),
        1,
        "b",
    );
    let e = tj.store.apply(&peer, over, Cursor::at(2)).unwrap_err();
    assert!(matches!(e, StoreError::InvalidBatch { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("names 257 site ids, more than the 256 a batch may"),
        "{e}"
    );
    assert_eq!(tj.store.head(), head);
    assert_eq!(tj.store.cursor_for(&peer.site).unwrap(), Cursor::at(1));
}

#[test]
fn a_peer_may_introduce_only_so_many_site_ids() {
    let (mut tj, sd) = pair();
    let peer = sd.peer_ref();
    let per = MAX_SITES_PER_BATCH as u32;
    let rounds = MAX_SITES_PER_PEER as u32 / per;
    // Up to the limit: every batch names new sites, every one used.
    for r in 0..rounds {
        let sites = (r * per..(r + 1) * per).map(site).collect();
        let b = batch(&tj, sites, per as usize, &format!("r{r}"));
        tj.store
            .apply(&peer, b, Cursor::at(u64::from(r) + 1))
            .unwrap();
    }
    // One over: refused, naming the peer; nothing of the batch kept.
    let head = tj.store.head();
    let over = batch(&tj, vec![site(1_000_000)], 1, "over");
    let e = tj
        .store
        .apply(&peer, over, Cursor::at(u64::from(rounds) + 1))
        .unwrap_err();
    assert!(matches!(e, StoreError::TooManySites { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("peer `san-diego` has named 1024 site ids this office never knew"),
        "{e}"
    );
    assert_eq!(tj.store.head(), head);
    assert!(
        tj.store
            .get("outreach_events", "over-0", Reveal::No)
            .unwrap()
            .is_none()
    );
    // Sites already known still come through.
    let known = batch(&tj, vec![site(0)], 1, "known");
    tj.store
        .apply(&peer, known, Cursor::at(u64::from(rounds) + 1))
        .unwrap();
    // The count survives a reopen (it is kept in the replica).
    let path = tj.store.path().to_path_buf();
    let (schema, keyring) = (tj.store.schema().clone(), tj.store.keyring().clone());
    drop(tj.store);
    let mut again = puente::store::Store::open(
        &path,
        puente::store::StoreOptions::new(
            schema,
            keyring,
            tj.clock.clone() as std::sync::Arc<dyn puente::clock::WallClock>,
        ),
    )
    .unwrap();
    let s = again.schema().clone();
    let t = s.table_index("outreach_events").unwrap();
    let over = Batch {
        sites: vec![site(2_000_000)],
        changes: vec![Change::Tombstone {
            table: t as u16,
            id: "r0-0".into(),
            hlc: Hlc::from_parts(NOW, 0),
            site: 0,
        }],
    };
    let e = again.apply(&peer, over, Cursor::at(99)).unwrap_err();
    assert!(matches!(e, StoreError::TooManySites { .. }), "{e}");
}

#[test]
fn an_office_may_have_only_so_many_site_ids_bound() {
    let (mut tj, _sd) = pair();
    // San Diego restored 31 times: 32 site ids, each bound in a session.
    for n in 0..MAX_SITES_PER_OFFICE as u32 {
        tj.store.bind_site(site(n), "san-diego").unwrap();
    }
    // The same again is no new binding.
    tj.store.bind_site(site(0), "san-diego").unwrap();
    // One over: refused, naming the office.
    let e = tj.store.bind_site(site(5_000), "san-diego").unwrap_err();
    assert!(matches!(e, StoreError::TooManyBindings { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("32 site ids are already bound to san-diego here"),
        "{e}"
    );
    assert_eq!(tj.store.office_of_site(&site(5_000)), None);
    // Another office is bounded on its own.
    tj.store.bind_site(site(6_000), "ensenada").unwrap();
}
