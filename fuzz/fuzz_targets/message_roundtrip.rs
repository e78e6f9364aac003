//! Fuzz target: any `Message` → `encode` → `FrameDecoder` gives the same
//! message back, in one frame, with nothing left over. The message is built
//! from the input with `arbitrary` (first byte even) or decoded from the
//! input as a message body (first byte odd), so both generated messages and
//! whatever the decoder accepts are covered.

#![no_main]

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use puente::clock::Hlc;
use puente::stamp::SiteId;
use puente::store::{Batch, CellChange, Change, Cursor, Digest};
use puente::sync::protocol::{self, FrameDecoder, Hello, MESSAGE_FORMAT, Message};
use puente::value::Value;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let message = if mode % 2 == 0 {
        match message(&mut Unstructured::new(rest)) {
            Ok(m) => m,
            Err(_) => return,
        }
    } else {
        let mut body = vec![MESSAGE_FORMAT];
        body.extend_from_slice(rest);
        match protocol::decode_body(&body) {
            Ok(m) => m,
            Err(_) => return,
        }
    };
    let frame = protocol::encode(&message).unwrap();
    let mut decoder = FrameDecoder::new();
    decoder.push(&frame);
    let decoded = decoder.next_message().unwrap().unwrap();
    assert_eq!(decoder.pending(), 0);
    assert_eq!(decoder.bytes_decoded, frame.len() as u64);
    assert_eq!(decoder.next_message().unwrap(), None);
    assert_eq!(protocol::encode(&decoded).unwrap(), frame);
    if decoded != message {
        // Only a NaN real is unequal to itself.
        assert!(has_nan(&message), "{message:?} came back as {decoded:?}");
    }
    puente_fuzz::frame_check::check_round_trip(&message);
});

fn has_nan(message: &Message) -> bool {
    let Message::Batch { batch, .. } = message else {
        return false;
    };
    batch.changes.iter().any(|c| match c {
        Change::Row { cells, .. } => cells
            .iter()
            .any(|cell| matches!(cell.value, Value::Real(r) if r.is_nan())),
        Change::Tombstone { .. } => false,
    })
}

fn message(u: &mut Unstructured<'_>) -> Result<Message> {
    Ok(match u.int_in_range(0u8..=3)? {
        0 => {
            let protocol: u16 = u.arbitrary()?;
            Message::Hello(Hello {
                protocol,
                // What the decoder reads back: a version 1 Hello carries
                // neither versions nor schema.
                versions: if protocol >= 2 { u.arbitrary()? } else { vec![protocol] },
                site: SiteId(u.arbitrary()?),
                node: u.arbitrary()?,
                schema_hash: u.arbitrary()?,
                schema: if protocol >= 2 { Some(u.arbitrary()?) } else { None },
                head: u.arbitrary()?,
                wall_ms: u.arbitrary()?,
            })
        }
        1 => Message::Pull { cursor: cursor(u)? },
        2 => Message::Batch {
            batch: batch(u)?,
            cursor: cursor(u)?,
            complete: u.arbitrary()?,
            head: u.arbitrary()?,
        },
        _ => Message::State {
            head: u.arbitrary()?,
            digest: Digest(u.arbitrary()?),
            applied: cursor(u)?,
            wall_ms: u.arbitrary()?,
        },
    })
}

fn cursor(u: &mut Unstructured<'_>) -> Result<Cursor> {
    Ok(Cursor {
        base: u.arbitrary()?,
        progress: u.arbitrary()?,
    })
}

fn batch(u: &mut Unstructured<'_>) -> Result<Batch> {
    let sites = u
        .arbitrary::<Vec<[u8; 16]>>()?
        .into_iter()
        .map(SiteId)
        .collect();
    let mut changes = Vec::new();
    for _ in 0..u.arbitrary_len::<[u8; 4]>()? {
        changes.push(change(u)?);
    }
    Ok(Batch { sites, changes })
}

fn change(u: &mut Unstructured<'_>) -> Result<Change> {
    if u.arbitrary()? {
        let (table, id) = (u.arbitrary()?, u.arbitrary()?);
        let mut cells = Vec::new();
        for _ in 0..u.arbitrary_len::<[u8; 4]>()? {
            cells.push(CellChange {
                column: u.arbitrary()?,
                hlc: Hlc(u.arbitrary()?),
                site: u.arbitrary()?,
                value: value(u)?,
            });
        }
        Ok(Change::Row { table, id, cells })
    } else {
        Ok(Change::Tombstone {
            table: u.arbitrary()?,
            id: u.arbitrary()?,
            hlc: Hlc(u.arbitrary()?),
            site: u.arbitrary()?,
        })
    }
}

fn value(u: &mut Unstructured<'_>) -> Result<Value> {
    Ok(match u.int_in_range(0u8..=4)? {
        0 => Value::Null,
        1 => Value::Integer(u.arbitrary()?),
        2 => Value::Real(u.arbitrary()?),
        3 => Value::Text(u.arbitrary()?),
        _ => Value::Blob(u.arbitrary()?),
    })
}
