//! The simulator's executor of the session machine, in the role
//! sync/peer.rs plays in the daemon: frames through the real encoder and
//! decoder, the real `store::validate`, `apply_validated` and
//! `changes_since` on each office's replica, and connections made,
//! deduplicated (with the daemon's own rule) and lost.

use puente::store::PeerRef;
use puente::sync::policy::{Backoff, Direction, keeps_new_connection};
use puente::sync::protocol::{
    ErrorCode, FrameDecoder, MAX_HELLO_FRAME, Message, compress_frame, compresses, encode,
};
use puente::sync::rules::{LocalInfo, highest_common};
use puente::sync::session::{Action, Input, Limits, Pumped, Report, Session, Timing};
use rand::Rng;

use super::check;
use super::world::{Conn, Ev, HANDSHAKE_TIMEOUT_MS, IDLE_TIMEOUT_MS, Side, World};

/// Codes an honest session may close with in this simulation.
fn expected_close(code: ErrorCode, disk_full: bool) -> bool {
    match code {
        ErrorCode::Normal
        | ErrorCode::ShuttingDown
        | ErrorCode::DuplicateConnection
        // A link cut for more than five seconds right after connecting.
        | ErrorCode::Timeout => true,
        ErrorCode::ApplyFailed => disk_full,
        _ => false,
    }
}

impl World {
    pub fn limits(&self) -> Limits {
        Limits {
            batch_rows: self.scenario.batch_rows,
            batch_bytes: 1 << 20,
            group_changes: self.scenario.group_changes,
        }
    }

    fn local_info(&self, office: usize) -> LocalInfo {
        LocalInfo {
            site: self.offices[office].site,
            node: self.offices[office].name.clone(),
            schema_hash: self.schema.hash().to_string(),
            schema: self.schema.canonical(),
            versions: self.offices[office].versions.clone(),
        }
    }

    fn side(&mut self, conn: u64, side: usize) -> Option<&mut Side> {
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
                Action::Send(message) => self.send(conn, side, &message),
                Action::SendPull => {
                    let Some(site) = self.peer_site(conn, side) else {
                        continue;
                    };
                    match self.offices[office].store().cursor_for(&site) {
                        Ok(cursor) => self.send(conn, side, &Message::Pull { cursor }),
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
                            self.send(conn, side, &state);
                        }
                        Err(e) => self.fail(format!("reading a cursor: {e}")),
                    }
                }
                Action::SetFrameLimit(limit) => {
                    if let Some(s) = self.side(conn, side) {
                        s.decoder.set_limit(limit);
                    }
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
                        let from = self.offices[self.conns[&conn].ends[1 - side]].name.clone();
                        self.fail(format!(
                            "{from} sent {} changes this office wrote back to it",
                            self.offices[office].name
                        ));
                    }
                    let peer = PeerRef {
                        site,
                        name: "peer".into(),
                    };
                    let received = puente::store::validate(&self.schema, &peer, batch)
                        .map(|batch| puente::sync::session::Received {
                            batch,
                            cursor,
                            complete,
                            head,
                        })
                        .map_err(|e| {
                            puente::sync::protocol::Violation::new(
                                ErrorCode::InvalidBatch,
                                e.to_string(),
                            )
                        });
                    let now = self.now;
                    if let Some(s) = self.side(conn, side) {
                        s.session.handle(Input::Validated(received), now);
                    }
                }
                Action::Apply(group) => {
                    let changes: usize = group.iter().map(|r| r.batch.batch().changes.len()).sum();
                    let cost = 1 + (changes as u64) / 20;
                    self.after(
                        cost,
                        Ev::ApplyDone {
                            conn,
                            side,
                            epoch,
                            group,
                        },
                    );
                }
                Action::Pump { from, generation } => {
                    self.after(
                        1,
                        Ev::PumpDone {
                            conn,
                            side,
                            epoch,
                            from,
                            generation,
                        },
                    );
                }
                Action::Report(Report::Established { hello }) => {
                    let peer = self.conns[&conn].ends[1 - side];
                    // As the daemon: the Hello over a pinned connection
                    // binds the peer's site to its office.
                    let peer_name = self.offices[peer].name.clone();
                    let bound = self.offices[office]
                        .store_mut()
                        .bind_site(hello.site, &peer_name);
                    // (A full disk may refuse it; the apply binds it again.)
                    if let Err(e) = bound
                        && !self.offices[office].disk_full
                    {
                        self.fail(format!("binding {peer_name}'s site: {e}"));
                    }
                    if let Some(b) = self.offices[office].backoff.get_mut(&peer) {
                        b.reset();
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
                    let name = self.offices[office].name.clone();
                    self.note(format!("{name}: closes session {conn}: {violation}"));
                    if !expected_close(violation.code, disk_full) {
                        self.fail(format!("{name} closed a session: {violation}"));
                    }
                    self.end_side(conn, side);
                    self.tell_other_end(conn, side);
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

    /// Puts a frame on the stream from end `side` to the other.
    fn send(&mut self, conn: u64, side: usize, message: &Message) {
        let frame = match encode(message) {
            Ok(f) => f,
            Err(v) => {
                self.fail(format!("encoding a {}: {v}", message.kind()));
                return;
            }
        };
        // As the daemon does: compressed where it pays on version 3.
        let compress = self
            .side(conn, side)
            .is_some_and(|s| compresses(s.session.version()));
        let frame = if compress {
            compress_frame(frame)
        } else {
            frame
        };
        self.stats.frames += 1;
        let to = 1 - side;
        let ends = self.conns[&conn].ends;
        let Some(link) = self.link_between(ends[0], ends[1]) else {
            return;
        };
        let transit = self.transit(link);
        let c = self.conns.get_mut(&conn).expect("the connection exists");
        // Ordered: never before the frame ahead of it.
        let behind = c.inflight[to].back().map_or(0, |(t, _)| *t);
        let at = (self.now + transit).max(behind);
        c.inflight[to].push_back((at, frame));
        self.at(at, Ev::Deliver { conn, to });
    }

    /// Hands the frames that have arrived at end `to` to its session, as
    /// far as it takes them.
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
        let now = self.now;
        let c = self.conns.get_mut(&conn).expect("the connection exists");
        let Some(s) = c.sides[to].as_mut() else {
            return;
        };
        while c.inflight[to].front().is_some_and(|(t, _)| *t <= now) {
            if let Some((_, frame)) = c.inflight[to].pop_front() {
                s.decoder.push(&frame);
            }
        }
        self.take_frames(conn, to);
    }

    /// Decodes what the end's decoder holds while its session takes frames.
    pub fn take_frames(&mut self, conn: u64, side: usize) {
        let now = self.now;
        let mut decoded = 0;
        loop {
            let Some(s) = self.side(conn, side) else {
                return;
            };
            if !s.session.wants_frames() {
                break;
            }
            match s.decoder.next_message() {
                Ok(Some(message)) => {
                    decoded += 1;
                    s.session.handle(Input::Frame(message), now);
                    self.drive(conn, side);
                }
                Ok(None) => break,
                Err(v) => {
                    self.fail(format!("a frame failed to decode: {v}"));
                    self.end_side(conn, side);
                    self.tell_other_end(conn, side);
                    return;
                }
            }
        }
        // As the daemon's executor: only a read that took frames ends with
        // "drained".
        if decoded > 0 {
            self.feed(conn, side, Input::FramesDrained);
        }
    }

    pub fn apply_done(
        &mut self,
        conn: u64,
        side: usize,
        epoch: u64,
        group: Vec<puente::sync::session::Received>,
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
        }
        let result = result.map(|_| ()).map_err(|e| {
            puente::sync::protocol::Violation::new(ErrorCode::ApplyFailed, e.to_string())
        });
        if result.is_ok() {
            self.check_cursor(office, sender);
        }
        let head = self.offices[office].store().head();
        self.feed(conn, side, Input::Applied(result));
        if head != before {
            self.head_moved(office);
        }
        self.take_frames(conn, side);
    }

    pub fn pump_done(
        &mut self,
        conn: u64,
        side: usize,
        epoch: u64,
        from: puente::store::Cursor,
        generation: u64,
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
        let limits = self.limits();
        let out = self.offices[office].store().changes_since(
            from,
            limits.batch_rows,
            limits.batch_bytes,
            Some(site),
        );
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                self.fail(format!("reading changes: {e}"));
                return;
            }
        };
        let pumped = Pumped {
            generation,
            cursor: out.cursor,
            complete: out.complete,
            head: out.head,
        };
        let mut out = out;
        if self.plan.is_dishonest(office) {
            let to = self.conns[&conn].ends[1 - side];
            self.forge(office, to, &mut out.batch);
        }
        self.send(
            conn,
            side,
            &Message::Batch {
                batch: out.batch,
                cursor: out.cursor,
                complete: out.complete,
                head: out.head,
            },
        );
        self.feed(conn, side, Input::Pumped(Ok(pumped)));
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
                let excused = match super::dishonest::excused(self, receiver, sender, &s) {
                    Ok(e) => e,
                    Err(e) => return self.fail(format!("reading held changes: {e}")),
                };
                if let Err(e) = check::cursor_is_not_ahead(&r, &s, &excused) {
                    let names = (
                        self.offices[receiver].name.clone(),
                        self.offices[sender].name.clone(),
                    );
                    self.fail(format!("at {} for {}: {e}", names.0, names.1));
                }
            }
            (Err(e), _) | (_, Err(e)) => self.fail(format!("taking a snapshot: {e}")),
        }
    }

    /// Removes one end of a connection (closed here, or its office gone).
    pub fn end_side(&mut self, conn: u64, side: usize) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let office = c.ends[side];
        let peer = c.ends[1 - side];
        let had = c.sides[side].take().is_some();
        c.inflight[side].clear();
        if c.sides.iter().all(Option::is_none) {
            self.conns.remove(&conn);
        }
        if !had {
            return;
        }
        let o = &mut self.offices[office];
        if o.registry.get(&peer).is_some_and(|(id, _, _)| *id == conn) {
            o.registry.remove(&peer);
        }
        if o.is_up() {
            let epoch = o.epoch;
            self.schedule_dial(office, peer, epoch);
        }
    }

    /// The other end learns the connection is gone, one trip later (or at
    /// the idle timeout, when the link is cut).
    pub fn tell_other_end(&mut self, conn: u64, side: usize) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let Some(link) = self.link_between(c.ends[0], c.ends[1]) else {
            return;
        };
        let delay = if self.links[link].cut {
            IDLE_TIMEOUT_MS
        } else {
            self.transit(link)
        };
        self.after(
            delay,
            Ev::Lost {
                conn,
                side: 1 - side,
            },
        );
    }

    pub fn schedule_dial(&mut self, from: usize, to: usize, epoch: u64) {
        if self.offices[from]
            .dialling
            .get(&to)
            .copied()
            .unwrap_or(false)
        {
            return;
        }
        self.offices[from].dialling.insert(to, true);
        let mut backoff = self.offices[from].backoff.remove(&to).unwrap_or_default();
        let wait = backoff.wait(&mut self.rng).as_millis() as u64;
        self.offices[from].backoff.insert(to, backoff);
        self.after(wait, Ev::Dial { from, to, epoch });
    }

    pub fn dial(&mut self, from: usize, to: usize, epoch: u64) {
        let o = &mut self.offices[from];
        if !o.is_up() || o.epoch != epoch {
            return;
        }
        o.dialling.insert(to, false);
        if o.registry.contains_key(&to) {
            // Connected (either way): the dialler waits for it to end.
            return;
        }
        let link = self.link_between(from, to).expect("peers are linked");
        if self.links[link].cut || !self.offices[to].is_up() {
            // No answer: the attempt times out, then the backoff.
            self.offices[from].dialling.insert(to, true);
            let mut backoff: Backoff = self.offices[from].backoff.remove(&to).unwrap_or_default();
            let wait = backoff.wait(&mut self.rng).as_millis() as u64;
            self.offices[from].backoff.insert(to, backoff);
            self.after(HANDSHAKE_TIMEOUT_MS + wait, Ev::Dial { from, to, epoch });
            return;
        }
        self.offices[from].dialling.insert(to, true);
        let rtt = 2 * self.links[link].spec.delay_ms;
        self.after(
            rtt,
            Ev::Establish {
                dialer: from,
                acceptor: to,
                epoch,
            },
        );
    }

    /// The handshake finished: each end admits the connection unless it
    /// keeps another one to the same peer (the daemon's rule).
    pub fn establish(&mut self, dialer: usize, acceptor: usize, epoch: u64) {
        self.offices[dialer].dialling.insert(acceptor, false);
        let link = self
            .link_between(dialer, acceptor)
            .expect("peers are linked");
        let reachable = self.offices[dialer].is_up()
            && self.offices[dialer].epoch == epoch
            && self.offices[acceptor].is_up()
            && !self.links[link].cut;
        if !reachable {
            if self.offices[dialer].is_up() && self.offices[dialer].epoch == epoch {
                self.schedule_dial(dialer, acceptor, epoch);
            }
            return;
        }
        let id = self.new_conn_id();
        let mut keep = [false; 2];
        for (i, (me, peer, direction)) in [
            (dialer, acceptor, Direction::Outbound),
            (acceptor, dialer, Direction::Inbound),
        ]
        .into_iter()
        .enumerate()
        {
            let we_dial_the_winner = self.offices[me].rank < self.offices[peer].rank;
            keep[i] = match self.offices[me].registry.get(&peer).copied() {
                None => true,
                Some((_, existing, admitted)) => keeps_new_connection(
                    existing,
                    std::time::Duration::from_millis(self.now - admitted),
                    direction,
                    we_dial_the_winner,
                ),
            };
        }
        let mut conn = Conn {
            ends: [dialer, acceptor],
            sides: [None, None],
            inflight: Default::default(),
        };
        let limits = self.limits();
        for (i, me) in [dialer, acceptor].into_iter().enumerate() {
            if !keep[i] {
                continue;
            }
            let head = self.offices[me].store().head();
            // What TLS would negotiate: the newest version both speak.
            let version = highest_common(
                &self.offices[dialer].versions,
                &self.offices[acceptor].versions,
            )
            .unwrap_or(0);
            let session = Session::new(
                self.local_info(me),
                limits,
                Timing::default(),
                version,
                (self.now, self.wall(me)),
                head,
            );
            conn.sides[i] = Some(Side {
                office: me,
                epoch: self.offices[me].epoch,
                session,
                decoder: {
                    let mut d = FrameDecoder::with_limit(MAX_HELLO_FRAME);
                    d.set_compressed(compresses(version));
                    d
                },
                tick_at: None,
            });
        }
        self.conns.insert(id, conn);
        self.stats.sessions += 1;
        self.note(format!(
            "connection {id}: {} dials {} (kept: {keep:?})",
            self.offices[dialer].name, self.offices[acceptor].name
        ));
        for (i, me, peer) in [(0, dialer, acceptor), (1, acceptor, dialer)] {
            if !keep[i] {
                // This end refuses the duplicate; the other learns it.
                self.tell_other_end(id, i);
                continue;
            }
            let direction = if i == 0 {
                Direction::Outbound
            } else {
                Direction::Inbound
            };
            let admitted = self.now;
            if let Some((old, _, _)) = self.offices[me]
                .registry
                .insert(peer, (id, direction, admitted))
            {
                // The connection this end replaces closes.
                if let Some(c) = self.conns.get(&old) {
                    let side = c.side_of(me);
                    self.end_side(old, side);
                    self.tell_other_end(old, side);
                }
            }
        }
        for (i, kept) in keep.into_iter().enumerate() {
            if kept {
                self.drive(id, i);
            }
        }
    }

    /// A link cut for longer than the idle timeout ends its connections.
    pub fn idle_timeout(&mut self, conn: u64, link: usize, cut_epoch: u64) {
        if !self.links[link].cut || self.links[link].cut_epoch != cut_epoch {
            return;
        }
        if self.conns.contains_key(&conn) {
            self.note(format!("connection {conn} timed out"));
            self.end_side(conn, 0);
            self.end_side(conn, 1);
        }
    }

    /// Frames that waited on a cut link move on.
    pub fn heal_link(&mut self, link: usize) {
        self.links[link].cut = false;
        let (a, b) = (self.links[link].spec.a, self.links[link].spec.b);
        let ids: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| (c.ends == [a, b]) || (c.ends == [b, a]))
            .map(|(id, _)| *id)
            .collect();
        let delay = self.links[link].spec.delay_ms;
        for id in ids {
            for to in 0..2 {
                let now = self.now;
                let c = self.conns.get_mut(&id).expect("listed above");
                let mut at = now + delay;
                for (t, _) in c.inflight[to].iter_mut() {
                    *t = (*t).max(at);
                    at = *t;
                }
                let times: Vec<u64> = self.conns[&id].inflight[to]
                    .iter()
                    .map(|(t, _)| *t)
                    .collect();
                for t in times {
                    self.at(t, Ev::Deliver { conn: id, to });
                }
            }
        }
    }

    /// The office's connections end without a word (a crash): the other
    /// ends notice when the office is back (its stateless reset), or only
    /// at the idle timeout; meanwhile the restarted office's new connection
    /// must be admitted (`policy::keeps_new_connection`).
    pub fn drop_connections_of(&mut self, office: usize, back_in: u64) {
        let ids: Vec<(u64, usize)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.ends.contains(&office))
            .map(|(id, c)| (*id, c.side_of(office)))
            .collect();
        for (id, side) in ids {
            if let Some(c) = self.conns.get_mut(&id) {
                c.sides[side] = None;
                c.inflight[side].clear();
                let other = 1 - side;
                let ends = c.ends;
                if c.sides[other].is_none() {
                    self.conns.remove(&id);
                    continue;
                }
                let link = self.link_between(ends[0], ends[1]).expect("linked");
                let delay = self.links[link].spec.delay_ms;
                // The restarted office's stateless reset tells the other end
                // at once — unless no packet of the old connection reaches it
                // (then only the idle timeout does).
                let noticed = if self.rng.random_bool(0.5) {
                    IDLE_TIMEOUT_MS.min(back_in + delay)
                } else {
                    IDLE_TIMEOUT_MS
                };
                self.after(
                    noticed,
                    Ev::Lost {
                        conn: id,
                        side: other,
                    },
                );
            }
        }
        self.offices[office].registry.clear();
        self.offices[office].dialling.clear();
    }
}
