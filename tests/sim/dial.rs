//! Connections between simulated offices, made and lost as the daemon's
//! sync/manager.rs makes them, with the daemon's own decisions: each
//! office runs a `policy::Dialler` per peer (dial while no connection is
//! up, rest the backoff after each attempt, start over after a healthy
//! session), and keeps one connection per peer in a `policy::Registry`
//! (which of two both sides keep). What is simulated here is only what the
//! network and the other office do: answers, round trips, timeouts,
//! resets, cuts.

use puente::sync::policy::{
    Admission, Attempt, Direction, Ending, SessionEnded, we_dial_the_winner,
};
use puente::sync::protocol::{ErrorCode, FrameDecoder, MAX_HELLO_FRAME, compresses};
use puente::sync::rules::highest_common;
use puente::sync::session::{Outbox, Session, Timing};
use rand::Rng;

use super::world::{Conn, Ev, HANDSHAKE_TIMEOUT_MS, IDLE_TIMEOUT_MS, Side, World};

impl World {
    /// Whether `office` keeps a connection to `peer`.
    fn connected(&self, office: usize, peer: usize) -> bool {
        self.offices[office].registry.get(&peer).is_some()
    }

    /// The dialler of `from` for `to` dials if it wants to (ready, and no
    /// connection to `to` is up).
    pub fn try_dial(&mut self, from: usize, to: usize) {
        if !self.offices[from].is_up() {
            return;
        }
        let connected = self.connected(from, to);
        let dialler = self.offices[from].diallers.entry(to).or_default();
        if !dialler.wants_to_dial(connected) {
            return;
        }
        dialler.dialling();
        let epoch = self.offices[from].epoch;
        let link = self.link_between(from, to).expect("peers are linked");
        if self.links[link].cut || !self.offices[to].is_up() {
            // No answer: the handshake times out.
            self.after(
                HANDSHAKE_TIMEOUT_MS,
                Ev::Attempted {
                    from,
                    to,
                    epoch,
                    attempt: Attempt::Failed,
                },
            );
            return;
        }
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

    /// The dialler's rest is over.
    pub fn rested(&mut self, from: usize, to: usize, epoch: u64) {
        let o = &mut self.offices[from];
        if !o.is_up() || o.epoch != epoch {
            return;
        }
        o.diallers.entry(to).or_default().rested();
        self.try_dial(from, to);
    }

    /// A dial attempt of `from` for `to` came to `attempt`: the dialler
    /// says what it was and how long to rest.
    pub fn attempted(&mut self, from: usize, to: usize, epoch: u64, attempt: Attempt) {
        let o = &mut self.offices[from];
        if !o.is_up() || o.epoch != epoch {
            return;
        }
        let dialler = o.diallers.entry(to).or_default();
        let (verdict, rest) = dialler.attempted(attempt, &mut self.rng);
        let rest = rest.as_millis() as u64;
        let (me, peer) = (o.name.clone(), self.offices[to].name.clone());
        self.note(format!(
            "{me}: dial to {peer}: {verdict:?}; next in {rest} ms"
        ));
        self.after(rest, Ev::Rested { from, to, epoch });
    }

    /// The handshake finished: each end admits the connection unless it
    /// keeps another one to the same peer (the daemon's registry).
    pub fn establish(&mut self, dialer: usize, acceptor: usize, epoch: u64) {
        if !self.offices[dialer].is_up() || self.offices[dialer].epoch != epoch {
            return;
        }
        let link = self
            .link_between(dialer, acceptor)
            .expect("peers are linked");
        if !self.offices[acceptor].is_up() || self.links[link].cut {
            // The handshake got no answer after all: it times out.
            let rtt = 2 * self.links[link].spec.delay_ms;
            self.after(
                HANDSHAKE_TIMEOUT_MS.saturating_sub(rtt),
                Ev::Attempted {
                    from: dialer,
                    to: acceptor,
                    epoch,
                    attempt: Attempt::Failed,
                },
            );
            return;
        }
        let id = self.new_conn_id();
        let now = self.now;
        let mut keep = [false; 2];
        let mut replaced = Vec::new();
        for (i, (me, peer, direction)) in [
            (dialer, acceptor, Direction::Outbound),
            (acceptor, dialer, Direction::Inbound),
        ]
        .into_iter()
        .enumerate()
        {
            let winner = we_dial_the_winner(&self.offices[me].rank, &self.offices[peer].rank);
            let admission =
                self.offices[me]
                    .registry
                    .admit(peer, id, direction, now, winner, |_| true);
            if let Admission::Admitted { replaced: old } = admission {
                keep[i] = true;
                replaced.extend(old.map(|old| (me, old)));
            }
        }
        let mut conn = Conn {
            ends: [dialer, acceptor],
            sides: [None, None],
            inflight: Default::default(),
        };
        // What TLS would negotiate: the newest version both speak.
        let version = highest_common(
            &self.offices[dialer].versions,
            &self.offices[acceptor].versions,
        )
        .unwrap_or(0);
        for (i, me) in [dialer, acceptor].into_iter().enumerate() {
            if !keep[i] {
                continue;
            }
            let head = self.offices[me].store().head();
            let session = Session::new(
                self.local_info(me),
                self.limits(),
                Timing::default(),
                version,
                (self.now, self.wall(me)),
                head,
            );
            let mut decoder = FrameDecoder::with_limit(MAX_HELLO_FRAME);
            decoder.set_compressed(compresses(version));
            conn.sides[i] = Some(Side {
                office: me,
                epoch: self.offices[me].epoch,
                session,
                decoder,
                tick_at: None,
                outbox: Outbox::default(),
                writing: false,
                parked: None,
                batch_sizes: Default::default(),
                started_ms: now,
                handshaken: false,
            });
        }
        self.conns.insert(id, conn);
        self.stats.sessions += 1;
        self.note(format!(
            "connection {id}: {} dials {} (kept: {keep:?})",
            self.offices[dialer].name, self.offices[acceptor].name
        ));
        // The connections the new one replaces close, as duplicates.
        for (me, old) in replaced {
            if let Some(c) = self.conns.get(&old) {
                let side = c.side_of(me);
                self.end_side(old, side, Ending::ClosedHere);
                self.tell_other_end(
                    old,
                    side,
                    Ending::ClosedByPeer(Some(ErrorCode::DuplicateConnection)),
                );
            }
        }
        if !keep[0] {
            // Dropped at once on the dialler's side: the connection both
            // sides keep is up.
            self.attempted(dialer, acceptor, epoch, Attempt::Duplicate);
        }
        for (i, kept) in keep.into_iter().enumerate() {
            if !kept {
                // This end refuses the duplicate; the other learns it.
                self.tell_other_end(
                    id,
                    i,
                    Ending::ClosedByPeer(Some(ErrorCode::DuplicateConnection)),
                );
            }
        }
        for (i, kept) in keep.into_iter().enumerate() {
            if kept {
                self.drive(id, i);
            }
        }
    }

    /// Removes one end of a connection (closed here, or learnt to be gone,
    /// `ending` saying how). As in the daemon: the registry forgets it; the
    /// dialler that made it (end 0) learns what its attempt came to; a
    /// dialler waiting for the peer's connection to end may dial.
    pub fn end_side(&mut self, conn: u64, side: usize, ending: Ending) {
        let now = self.now;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let office = c.ends[side];
        let peer = c.ends[1 - side];
        let ended = c.sides[side].take();
        c.inflight[side].clear();
        if c.sides.iter().all(Option::is_none) {
            self.conns.remove(&conn);
        }
        let Some(ended) = ended else {
            return;
        };
        let o = &mut self.offices[office];
        o.registry.release(&peer, |c| *c == conn);
        if !o.is_up() || o.epoch != ended.epoch {
            return;
        }
        if side == 0 {
            let session = SessionEnded {
                ending,
                handshaken: ended.handshaken,
                lasted: std::time::Duration::from_millis(now - ended.started_ms),
                refused_by_tls: false,
            };
            self.attempted(office, peer, ended.epoch, Attempt::Ended(session));
        } else {
            self.try_dial(office, peer);
        }
    }

    /// The other end learns the connection is gone, one trip later (or at
    /// the idle timeout, when the link is cut).
    pub fn tell_other_end(&mut self, conn: u64, side: usize, ending: Ending) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let Some(link) = self.link_between(c.ends[0], c.ends[1]) else {
            return;
        };
        let (delay, ending) = if self.links[link].cut {
            (IDLE_TIMEOUT_MS, Ending::Lost)
        } else {
            (self.transit(link), ending)
        };
        self.after(
            delay,
            Ev::Lost {
                conn,
                side: 1 - side,
                ending,
            },
        );
    }

    /// A link cut for longer than the idle timeout ends its connections.
    pub fn idle_timeout(&mut self, conn: u64, link: usize, cut_epoch: u64) {
        if !self.links[link].cut || self.links[link].cut_epoch != cut_epoch {
            return;
        }
        if self.conns.contains_key(&conn) {
            self.note(format!("connection {conn} timed out"));
            self.end_side(conn, 0, Ending::Lost);
            self.end_side(conn, 1, Ending::Lost);
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
                for f in c.inflight[to].iter_mut() {
                    f.at = f.at.max(at);
                    at = f.at;
                }
                let times: Vec<u64> = self.conns[&id].inflight[to].iter().map(|f| f.at).collect();
                for t in times {
                    self.at(t, Ev::Deliver { conn: id, to });
                }
            }
        }
    }

    /// The office's connections end without a word (a crash): the other
    /// ends notice when the office is back (its stateless reset), or only
    /// at the idle timeout; meanwhile the restarted office's new connection
    /// must be admitted (`policy::keeps_new_connection`). Its diallers and
    /// registry go with it.
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
                        ending: Ending::Lost,
                    },
                );
            }
        }
        self.offices[office].registry.clear();
        self.offices[office].diallers.clear();
    }
}
