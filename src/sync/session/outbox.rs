//! The order frames leave a session in: control frames (Hello, Versions,
//! Pull, State: small, and what the peer needs to make progress) before
//! any batch that is waiting; batches in the order the pump made them,
//! at most `QUEUED_BATCHES` of them waiting, so that a slow link slows the
//! pump (it answers `Input::Pumped` only once its frame is in).
//!
//! Owns: the two lanes, which frame goes next, the bound on batches, and
//! whether the stream still takes frames.
//! Must not: write to a stream, wait or read clocks: sync/peer.rs's writer
//! task and the simulator's writer take frames out and carry them.

use std::collections::VecDeque;

use crate::mutants::{self, Mutant};

/// Batch frames waiting for the writer, at most.
pub const QUEUED_BATCHES: usize = 16;

/// Which lane a frame went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Control,
    Batch,
}

/// What became of a frame put into the outbox.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum Queued {
    /// It waits for the writer.
    Yes,
    /// The batch lane is full: here is the frame back; try again once the
    /// writer took a batch.
    Full(Vec<u8>),
    /// The stream is gone: nothing more is taken.
    Closed,
}

/// The frames of one session waiting for the stream.
#[derive(Debug, Default)]
pub struct Outbox {
    control: VecDeque<Vec<u8>>,
    batches: VecDeque<Vec<u8>>,
    closed: bool,
}

impl Outbox {
    /// Queues a control frame: there is always room for one.
    pub fn push_control(&mut self, frame: Vec<u8>) -> Queued {
        if self.closed {
            return Queued::Closed;
        }
        self.control.push_back(frame);
        Queued::Yes
    }

    /// Queues a batch frame if fewer than `QUEUED_BATCHES` are waiting.
    pub fn push_batch(&mut self, frame: Vec<u8>) -> Queued {
        if self.closed {
            return Queued::Closed;
        }
        if self.batches.len() >= QUEUED_BATCHES {
            return Queued::Full(frame);
        }
        self.batches.push_back(frame);
        Queued::Yes
    }

    /// The next frame to write: the oldest control frame, else the oldest
    /// batch.
    pub fn next_frame(&mut self) -> Option<(Lane, Vec<u8>)> {
        if let Some(frame) = self.control.pop_front() {
            return Some((Lane::Control, frame));
        }
        if mutants::active(Mutant::OutboxNewestFirst) {
            return self.batches.pop_back().map(|f| (Lane::Batch, f));
        }
        self.batches.pop_front().map(|f| (Lane::Batch, f))
    }

    pub fn is_empty(&self) -> bool {
        self.control.is_empty() && self.batches.is_empty()
    }

    /// The stream is gone: what waits is dropped and nothing more is taken.
    pub fn close(&mut self) {
        self.closed = true;
        self.control.clear();
        self.batches.clear();
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u8) -> Vec<u8> {
        vec![n]
    }

    #[test]
    fn control_frames_overtake_waiting_batches_and_each_lane_keeps_its_order() {
        let mut out = Outbox::default();
        assert_eq!(out.push_batch(frame(1)), Queued::Yes);
        assert_eq!(out.push_batch(frame(2)), Queued::Yes);
        assert_eq!(out.push_control(frame(10)), Queued::Yes);
        assert_eq!(out.push_control(frame(11)), Queued::Yes);
        let order: Vec<(Lane, Vec<u8>)> = std::iter::from_fn(|| out.next_frame()).collect();
        assert_eq!(
            order,
            [
                (Lane::Control, frame(10)),
                (Lane::Control, frame(11)),
                (Lane::Batch, frame(1)),
                (Lane::Batch, frame(2)),
            ]
        );
        assert!(out.is_empty());
    }

    #[test]
    fn the_batch_lane_is_bounded_and_hands_a_frame_back_when_full() {
        let mut out = Outbox::default();
        for i in 0..QUEUED_BATCHES {
            assert_eq!(out.push_batch(frame(i as u8)), Queued::Yes);
        }
        assert_eq!(out.push_batch(frame(99)), Queued::Full(frame(99)));
        // Control frames are never held back by full batches.
        assert_eq!(out.push_control(frame(7)), Queued::Yes);
        assert_eq!(out.next_frame(), Some((Lane::Control, frame(7))));
        // Taking a batch makes room for one.
        assert_eq!(out.next_frame(), Some((Lane::Batch, frame(0))));
        assert_eq!(out.push_batch(frame(99)), Queued::Yes);
        assert_eq!(out.push_batch(frame(100)), Queued::Full(frame(100)));
    }

    #[test]
    fn a_closed_outbox_takes_nothing_and_drops_what_waited() {
        let mut out = Outbox::default();
        assert_eq!(out.push_batch(frame(1)), Queued::Yes);
        out.close();
        assert!(out.is_closed() && out.is_empty());
        assert_eq!(out.push_control(frame(2)), Queued::Closed);
        assert_eq!(out.push_batch(frame(3)), Queued::Closed);
        assert_eq!(out.next_frame(), None);
    }
}
