//! The simulator's executor of the session machine, in the role
//! sync/peer.rs plays in the daemon: it carries out the machine's actions
//! and reports back, deciding nothing itself. Frames go through the real
//! encoder, the daemon's `Outbox` (control frames first, a bounded number
//! of batches waiting) and a writer, and are read back as the machine
//! says (`wants_frames`, `reads_ahead`) through the real decoder; batches
//! through the real `store::validate`, `apply_validated` (then `settle`
//! when the machine asks) and `changes_since` on each office's replica.
//! Connections are made and lost in dial.rs.

use puente::store::PeerRef;
use puente::sync::policy::Ending;
use puente::sync::protocol::{ErrorCode, Message, compress_frame, encode};
use puente::sync::rules::LocalInfo;
use puente::sync::session::{
    Action, GroupApplied, Input, Lane, Limits, Pumped, Queued, Received, Report, store_violation,
};

use super::check;
use super::world::{CHANGE_BYTES, Ev, Flying, PumpOrder, Side, World};

/// Codes an honest session may close with in this simulation: those that
/// are no problem, a Hello timeout after a long cut, a failed apply while
/// the disk is full, and a flood of forbidden changes from the dishonest
/// office.
fn expected_close(code: ErrorCode, disk_full: bool, peer_dishonest: bool) -> bool {
    !code.is_problem()
        || code == ErrorCode::Timeout
        || (code == ErrorCode::ApplyFailed && disk_full)
        || (code == ErrorCode::ForbiddenFlood && peer_dishonest)
}

impl World {
    pub fn limits(&self) -> Limits {
        Limits {
            batch_rows: self.scenario.batch_rows,
            batch_bytes: 1 << 20,
            group_changes: self.scenario.group_changes,
            read_ahead: self.scenario.read_ahead,
        }
    }

    pub fn local_info(&self, office: usize) -> LocalInfo {
        LocalInfo {
            site: self.offices[office].site,
            node: self.offices[office].name.clone(),
            schema_hash: self.schema.hash().to_string(),
            schema: self.schema.canonical(),
            versions: self.offices[office].versions.clone(),
        }
    }

    pub fn side(&mut self, conn: u64, side: usize) -> Option<&mut Side> {
        self.conns.get_mut(&conn)?.sides[side].as_mut()
    }

    fn peer_site(&self, conn: u64, side: usize) -> Option<puente::stamp::SiteId> {
        let c = self.conns.get(&conn)?;
        c.sides[side].as_ref()?.session.peer().map(|h| h.site)
    }

    /// Feeds an input to one end and carries out what follows.
    pub fn feed(&mut self, conn: u64, side: usize, input: Input) {
        let now = self.now;
        let Some(s) = self.side(conn, side) else {
            return;
        };
        s.session.handle(input, now);
        self.drive(conn, side);
    }

    /// Feeds an input to one end without carrying out what follows (the
    /// caller's `drive` loop does).
    fn answer(&mut self, conn: u64, side: usize, input: Input) {
        let now = self.now;
        if let Some(s) = self.side(conn, side) {
            s.session.handle(input, now);
        }
    }

    /// Carries out every action the end's session asks for.
    pub fn drive(&mut self, conn: u64, side: usize) {
        loop {
            let Some(s) = self.side(conn, side) else {
                return;
            };
            let Some(action) = s.session.poll_action() else {
                break;
            };
            let office = s.office;
            let epoch = s.epoch;
            match action {
                Action::Send(message) => self.send_control(conn, side, &message),
                Action::SendPull => {
                    let Some(site) = self.peer_site(conn, side) else {
                        continue;
                    };
                    match self.offices[office].store().cursor_for(&site) {
                        Ok(cursor) => self.send_control(conn, side, &Message::Pull { cursor }),
                        Err(e) => self.fail(format!("reading a cursor: {e}")),
                    }
                }
                Action::SendState => {
                    let Some(site) = self.peer_site(conn, side) else {
                        continue;
                    };
                    let wall_ms = self.wall(office);
                    let store = self.offices[office].store();
                    match store.cursor_for(&site) {
                        Ok(applied) => {
                            let state = Message::State {
                                head: store.head(),
                                digest: store.digest(),
                                applied,
                                wall_ms,
                            };
                            self.send_control(conn, side, &state);
                        }
                        Err(e) => self.fail(format!("reading a cursor: {e}")),
                    }
                }
                Action::SetFrameLimit(limit) => {
                    if let Some(s) = self.side(conn, side) {
                        s.decoder.set_limit(limit);
                    }
                }
                Action::Bind(site) => {
                    let peer = self.conns[&conn].ends[1 - side];
                    let peer_name = self.offices[peer].name.clone();
                    self.sync_clock(office);
                    let bound = self.offices[office]
                        .store_mut()
                        .bind_site(site, &peer_name)
                        .map_err(store_violation);
                    self.answer(conn, side, Input::Bound(bound));
                }
                Action::Validate {
                    batch,
                    cursor,
                    complete,
                    head,
                } => {
                    let Some(site) = self.peer_site(conn, side) else {
                        continue;
                    };
                    let own = self.offices[office].site;
                    let sender = self.conns[&conn].ends[1 - side];
                    // (The dishonest office sends forged stamps on purpose.)
                    if batch.sites.contains(&own) && !self.plan.is_dishonest(sender) {
                        let from = self.offices[sender].name.clone();
                        self.fail(format!(
                            "{from} sent {} changes this office wrote back to it",
                            self.offices[office].name
                        ));
                    }
                    let peer = PeerRef {
                        site,
                        name: self.offices[sender].name.clone(),
                    };
                    let received = puente::store::validate(&self.schema, &peer, batch)
                        .map(|batch| Received {
                            batch,
                            cursor,
                            complete,
                            head,
                        })
                        .map_err(store_violation);
                    self.answer(conn, side, Input::Validated(received));
                }
                Action::Apply { group, settle } => {
                    let changes: usize = group.iter().map(|r| r.batch.batch().changes.len()).sum();
                    let cost = 1 + (changes as u64) / 20;
                    self.after(
                        cost,
                        Ev::ApplyDone {
                            conn,
                            side,
                            epoch,
                            group,
                            settle,
                        },
                    );
                }
                Action::Pump {
                    from,
                    generation,
                    max_rows,
                    max_bytes,
                    compress,
                } => {
                    let order = PumpOrder {
                        from,
                        generation,
                        max_rows,
                        max_bytes,
                        compress,
                    };
                    self.after(
                        1,
                        Ev::PumpDone {
                            conn,
                            side,
                            epoch,
                            order,
                        },
                    );
                }
                Action::Report(Report::Established { hello }) => {
                    if let Some(s) = self.side(conn, side) {
                        s.handshaken = true;
                    }
                    let name = self.offices[office].name.clone();
                    self.note(format!(
                        "{name}: session {conn} with {} established",
                        hello.node
                    ));
                }
                Action::Report(Report::PeerState { .. }) => {}
                Action::Report(Report::SchemaDiffers { differences }) => {
                    self.fail(format!(
                        "offices of one schema see it differ: {differences:?}"
                    ));
                }
                Action::Close(violation) => {
                    let disk_full = self.offices[office].disk_full;
                    let peer = self.conns[&conn].ends[1 - side];
                    let peer_dishonest = self.plan.is_dishonest(peer);
                    let name = self.offices[office].name.clone();
                    self.note(format!("{name}: closes session {conn}: {violation}"));
                    if !expected_close(violation.code, disk_full, peer_dishonest) {
                        self.fail(format!("{name} closed a session: {violation}"));
                    }
                    self.close(conn, side, violation.code);
                    return;
                }
            }
        }
        self.schedule_tick(conn, side);
    }

    fn schedule_tick(&mut self, conn: u64, side: usize) {
        let Some(s) = self.side(conn, side) else {
            return;
        };
        let Some(at) = s.session.poll_timeout() else {
            return;
        };
        if s.tick_at.is_some_and(|t| t <= at) {
            return;
        }
        s.tick_at = Some(at);
        self.at(at, Ev::Tick { conn, side });
    }

    pub fn on_tick(&mut self, conn: u64, side: usize) {
        if let Some(s) = self.side(conn, side) {
            s.tick_at = None;
        }
        self.feed(conn, side, Input::Tick);
    }

    /// Queues a control message (never compressed) for the end's writer.
    fn send_control(&mut self, conn: u64, side: usize, message: &Message) {
        let frame = match encode(message) {
            Ok(f) => f,
            Err(v) => {
                self.fail(format!("encoding a {}: {v}", message.kind()));
                return;
            }
        };
        let Some(s) = self.side(conn, side) else {
            return;
        };
        if s.outbox.push_control(frame) != Queued::Yes {
            self.fail("the outbox of a live session refused a control frame".into());
            return;
        }
        self.wake_writer(conn, side);
    }

    /// Starts the end's writer unless it is busy.
    fn wake_writer(&mut self, conn: u64, side: usize) {
        let Some(s) = self.side(conn, side) else {
            return;
        };
        if s.writing || s.outbox.is_empty() {
            return;
        }
        s.writing = true;
        self.after(0, Ev::WriteFrame { conn, side });
    }

    /// The end's writer takes the next frame the outbox hands out and puts
    /// it on the stream; it is busy for as long as the frame takes to write
    /// at the scenario's speed (a batch by its number of changes: see
    /// `CHANGE_BYTES`).
    pub fn write(&mut self, conn: u64, side: usize) {
        let speed = self.scenario.write_bytes_per_ms;
        let Some(s) = self.side(conn, side) else {
            return;
        };
        s.writing = false;
        let Some((lane, frame)) = s.outbox.next_frame() else {
            return;
        };
        let size = match lane {
            Lane::Control => frame.len() as u64,
            Lane::Batch => s.batch_sizes.pop_front().unwrap_or(1),
        };
        // At least a millisecond a frame: the writer takes one at a time.
        let busy = size.div_ceil(speed);
        // A batch taken makes room for the pump waiting for it, if any.
        let unparked = if lane == Lane::Batch {
            s.parked.take().map(|(parked, pumped, size)| {
                let queued = s.outbox.push_batch(parked);
                s.batch_sizes.push_back(size);
                (queued, pumped)
            })
        } else {
            None
        };
        if !s.outbox.is_empty() {
            s.writing = true;
            self.after(busy, Ev::WriteFrame { conn, side });
        }
        self.transmit(conn, side, frame, size);
        if let Some((queued, pumped)) = unparked {
            if queued != Queued::Yes {
                self.fail("the outbox had no room after its writer took a batch".into());
                return;
            }
            self.wake_writer(conn, side);
            self.feed(conn, side, Input::Pumped(Ok(pumped)));
        }
    }

    /// Puts a frame on the stream from end `side` to the other.
    fn transmit(&mut self, conn: u64, side: usize, frame: Vec<u8>, size: u64) {
        self.stats.frames += 1;
        let to = 1 - side;
        let ends = self.conns[&conn].ends;
        let Some(link) = self.link_between(ends[0], ends[1]) else {
            return;
        };
        let transit = self.transit(link);
        let c = self.conns.get_mut(&conn).expect("the connection exists");
        // Ordered: never before the frame ahead of it.
        let behind = c.inflight[to].back().map_or(0, |f| f.at);
        let at = (self.now + transit).max(behind);
        c.inflight[to].push_back(Flying { at, frame, size });
        self.at(at, Ev::Deliver { conn, to });
    }

    /// Frames have arrived at end `to`: it reads them unless its link is
    /// cut (they wait).
    pub fn deliver(&mut self, conn: u64, to: usize) {
        let ends = match self.conns.get(&conn) {
            Some(c) => c.ends,
            None => return,
        };
        if let Some(link) = self.link_between(ends[0], ends[1])
            && self.links[link].cut
        {
            return;
        }
        self.read(conn, to);
    }

    /// One read, as the machine says: while the session wants frames, take
    /// what has arrived (at least one frame, then more while it reads
    /// ahead), hand over every message in it, then say the read is drained.
    /// Frames left over make another read.
    pub fn read(&mut self, conn: u64, side: usize) {
        let now = self.now;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(s) = c.sides[side].as_mut() else {
            return;
        };
        if !s.session.wants_frames() {
            return;
        }
        // (Frames are whole and every read decodes all it took, so what
        // this read took is what the decoder holds: counted as the
        // simulator counts sizes.)
        let inflight = &mut c.inflight[side];
        let mut taken = 0;
        let mut took = false;
        while inflight.front().is_some_and(|f| f.at <= now)
            && (!took || s.session.reads_ahead(taken as usize))
        {
            if let Some(f) = inflight.pop_front() {
                s.decoder.push(&f.frame);
                taken += f.size;
                took = true;
            }
        }
        if !took {
            return;
        }
        let more = inflight.front().is_some_and(|f| f.at <= now);
        loop {
            let Some(s) = self.side(conn, side) else {
                return;
            };
            match s.decoder.next_message() {
                Ok(Some(message)) => self.feed(conn, side, Input::Frame(message)),
                Ok(None) => break,
                Err(v) => {
                    self.fail(format!("a frame failed to decode: {v}"));
                    self.close(conn, side, v.code);
                    return;
                }
            }
        }
        self.feed(conn, side, Input::FramesDrained);
        if more {
            self.after(0, Ev::Deliver { conn, to: side });
        }
    }

    /// This end closes the connection with `code`: it ends here, and the
    /// other end learns it one trip later.
    pub fn close(&mut self, conn: u64, side: usize, code: ErrorCode) {
        self.end_side(conn, side, Ending::Closed(code));
        self.tell_other_end(conn, side, Ending::ClosedByPeer(Some(code)));
    }

    pub fn apply_done(
        &mut self,
        conn: u64,
        side: usize,
        epoch: u64,
        group: Vec<Received>,
        settle: bool,
    ) {
        let Some(s) = self.side(conn, side) else {
            return;
        };
        let office = s.office;
        if s.epoch != epoch || self.offices[office].epoch != epoch {
            return;
        }
        let Some(site) = self.peer_site(conn, side) else {
            return;
        };
        let sender = self.conns[&conn].ends[1 - side];
        self.sync_clock(office);
        let peer = PeerRef {
            site,
            name: self.offices[sender].name.clone(),
        };
        let forbidden: Vec<puente::store::Batch> = if self.plan.is_dishonest(sender) {
            group.iter().map(|r| r.batch.batch().clone()).collect()
        } else {
            Vec::new()
        };
        let items = group.into_iter().map(|r| (r.batch, r.cursor)).collect();
        let before = self.offices[office].store().head();
        let result = self.offices[office]
            .store_mut()
            .apply_validated(&peer, items);
        if let Ok(applied) = &result {
            self.stats.held += applied.held as u64;
            for batch in &forbidden {
                self.record_forbidden(office, batch);
            }
            if settle && let Err(e) = self.offices[office].store_mut().settle() {
                // As the daemon: committed already, worth a line only.
                self.note(format!("settling after a catch-up failed: {e}"));
            }
        }
        let result = result
            .map(|applied| GroupApplied {
                held: applied.held,
                dropped: applied.held_dropped,
            })
            .map_err(store_violation);
        if result.is_ok() {
            self.check_cursor(office, sender);
        }
        let head = self.offices[office].store().head();
        self.feed(conn, side, Input::Applied(result));
        if head != before {
            self.head_moved(office);
        }
        // The session may want frames again.
        self.read(conn, side);
    }

    pub fn pump_done(&mut self, conn: u64, side: usize, epoch: u64, order: PumpOrder) {
        let Some(s) = self.side(conn, side) else {
            return;
        };
        let office = s.office;
        if s.epoch != epoch || self.offices[office].epoch != epoch {
            return;
        }
        let Some(site) = self.peer_site(conn, side) else {
            return;
        };
        let out = self.offices[office].store().changes_since(
            order.from,
            order.max_rows,
            order.max_bytes,
            Some(site),
        );
        let mut out = match out {
            Ok(out) => out,
            Err(e) => {
                self.fail(format!("reading changes: {e}"));
                return;
            }
        };
        let pumped = Pumped {
            generation: order.generation,
            cursor: out.cursor,
            complete: out.complete,
            head: out.head,
        };
        if self.plan.is_dishonest(office) {
            let to = self.conns[&conn].ends[1 - side];
            self.forge(office, to, &mut out.batch);
        }
        let size = 64 + out.batch.changes.len() as u64 * CHANGE_BYTES;
        let message = Message::Batch {
            batch: out.batch,
            cursor: out.cursor,
            complete: out.complete,
            head: out.head,
        };
        let frame = match encode(&message) {
            Ok(f) => f,
            Err(v) => return self.fail(format!("encoding a batch: {v}")),
        };
        let frame = if order.compress {
            compress_frame(frame)
        } else {
            frame
        };
        let Some(s) = self.side(conn, side) else {
            return;
        };
        match s.outbox.push_batch(frame) {
            Queued::Yes => {
                s.batch_sizes.push_back(size);
                self.wake_writer(conn, side);
                self.feed(conn, side, Input::Pumped(Ok(pumped)));
            }
            // The pump waits for room, as the daemon's does.
            Queued::Full(frame) => s.parked = Some((frame, pumped, size)),
            Queued::Closed => self.fail("the outbox of a live session is closed".into()),
        }
    }

    /// Tells every session of `office` that its head moved.
    pub fn head_moved(&mut self, office: usize) {
        let head = self.offices[office].store().head();
        let ends: Vec<(u64, usize)> = self
            .conns
            .iter()
            .filter_map(|(id, c)| {
                let side = c.side_of(office);
                (c.ends[side] == office && c.sides[side].is_some()).then_some((*id, side))
            })
            .collect();
        for (conn, side) in ends {
            self.feed(conn, side, Input::HeadMoved(head));
        }
    }

    /// The cursor `receiver` keeps for `sender` is not ahead of its data.
    pub fn check_cursor(&mut self, receiver: usize, sender: usize) {
        if !self.offices[receiver].is_up() || !self.offices[sender].is_up() {
            return;
        }
        let r = self.offices[receiver].store().snapshot();
        let s = self.offices[sender].store().snapshot();
        match (r, s) {
            (Ok(r), Ok(s)) => {
                self.check_nothing_forbidden_applied(receiver, &r);
                let excused = match super::forbidden::excused(self, receiver, sender, &s) {
                    Ok(e) => e,
                    Err(e) => return self.fail(format!("reading held changes: {e}")),
                };
                match check::cursor_is_not_ahead(&r, &s, &excused) {
                    Ok(promised) => self.stats.cursor_promises_checked += promised,
                    Err(e) => {
                        let names = (
                            self.offices[receiver].name.clone(),
                            self.offices[sender].name.clone(),
                        );
                        self.fail(format!("at {} for {}: {e}", names.0, names.1));
                    }
                }
            }
            (Err(e), _) | (_, Err(e)) => self.fail(format!("taking a snapshot: {e}")),
        }
    }
}
