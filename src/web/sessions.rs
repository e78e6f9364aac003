//! Web sessions: who is signed in, held in memory only (a restart signs
//! everyone out; nothing about a session reaches the disk).
//!
//! A session is a random 160-bit id in an HttpOnly, SameSite=Strict cookie
//! (Secure under TLS), the staff member it belongs to, and its own random
//! CSRF token that every form must carry back. It ends after 12 hours
//! without use or 7 days after sign-in, on sign-out, and when its staff
//! member is removed (the node's staff epoch tells the web to re-check).
//!
//! Owns: creating, finding, touching and ending sessions, with time and
//! randomness passed in; the cookie texts.
//! Must not: read the staff table (the caller re-checks a session whose
//! epoch is stale) or log ids and tokens.

use std::collections::HashMap;
use std::sync::Mutex;

use rand::RngCore;

use crate::access::staff_tokens::{StaffRole, new_token};

/// A session unused this long ends.
pub const IDLE_MS: u64 = 12 * 3600 * 1000;
/// A session ends this long after sign-in, used or not.
pub const MAX_AGE_MS: u64 = 7 * 24 * 3600 * 1000;
/// The most sessions held; beyond it the least recently used ends.
pub const MAX_SESSIONS: usize = 10_000;

pub const SESSION_COOKIE: &str = "puente_session";
/// The sign-in form's CSRF cookie (there is no session yet).
pub const LOGIN_COOKIE: &str = "puente_login";
pub const LANG_COOKIE: &str = "puente_lang";

/// One signed-in staff member.
#[derive(Clone, PartialEq, Eq)]
pub struct WebSession {
    pub staff_id: i64,
    pub name: String,
    pub role: StaffRole,
    /// Carried by every form of this session.
    pub csrf: String,
    pub created_ms: u64,
    pub last_ms: u64,
    /// The node's staff epoch when the staff member was last known to exist.
    pub epoch: u64,
}

impl std::fmt::Debug for WebSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSession")
            .field("staff", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, WebSession>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, WebSession>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a session; returns its cookie value.
    pub fn start(
        &self,
        staff_id: i64,
        name: &str,
        role: StaffRole,
        epoch: u64,
        now_ms: u64,
        rng: &mut impl RngCore,
    ) -> String {
        let id = new_token(rng);
        let session = WebSession {
            staff_id,
            name: name.to_string(),
            role,
            csrf: new_token(rng),
            created_ms: now_ms,
            last_ms: now_ms,
            epoch,
        };
        let mut map = self.lock();
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| alive(s, now_ms));
            if map.len() >= MAX_SESSIONS
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, s)| s.last_ms)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(id.clone(), session);
        id
    }

    /// The live session of a cookie value, touched (its idle time starts
    /// again); an expired one is ended.
    pub fn find(&self, cookie: &str, now_ms: u64) -> Option<WebSession> {
        let mut map = self.lock();
        let session = map.get_mut(cookie)?;
        if !alive(session, now_ms) {
            map.remove(cookie);
            return None;
        }
        session.last_ms = now_ms;
        Some(session.clone())
    }

    /// Records that the staff member still exists at `epoch`.
    pub fn confirm(&self, cookie: &str, epoch: u64) {
        if let Some(s) = self.lock().get_mut(cookie) {
            s.epoch = epoch;
        }
    }

    pub fn end(&self, cookie: &str) {
        self.lock().remove(cookie);
    }

    /// Ends every session of a staff member.
    pub fn end_staff(&self, staff_id: i64) {
        self.lock().retain(|_, s| s.staff_id != staff_id);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn alive(s: &WebSession, now_ms: u64) -> bool {
    now_ms.saturating_sub(s.last_ms) < IDLE_MS && now_ms.saturating_sub(s.created_ms) < MAX_AGE_MS
}

/// The value of cookie `name` in a Cookie header.
pub fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == name).then(|| v.trim())
    })
}

/// A Set-Cookie value: HttpOnly and SameSite=Strict, Secure under TLS;
/// `max_age` None for a cookie that ends with the browser, Some(0) to
/// delete it.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> String {
    let mut out = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if secure {
        out.push_str("; Secure");
    }
    if let Some(age) = max_age {
        out.push_str(&format!("; Max-Age={age}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn sessions_end_when_idle_old_ended_or_their_staff_goes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let s = Sessions::default();
        let a = s.start(1, "editor-tj", StaffRole::Editor, 0, 1_000, &mut rng);
        let b = s.start(2, "viewer-tj", StaffRole::Viewer, 0, 1_000, &mut rng);
        assert_ne!(a, b);
        let found = s.find(&a, 2_000).unwrap();
        assert_eq!(
            (found.name.as_str(), found.role),
            ("editor-tj", StaffRole::Editor)
        );
        assert_eq!(found.csrf.len(), 40);
        assert_ne!(found.csrf, a);
        assert!(s.find("nope", 2_000).is_none());
        // Touched at 2 000, so idle until 2 000 + IDLE_MS.
        assert!(s.find(&a, 2_000 + IDLE_MS - 1).is_some());
        assert!(s.find(&b, 1_000 + IDLE_MS).is_none(), "idle too long");
        // Used every hour, it still ends after MAX_AGE_MS.
        let mut t = 2_000 + IDLE_MS - 1;
        while t < 1_000 + MAX_AGE_MS - 3_600_000 {
            t += 3_600_000;
            assert!(s.find(&a, t).is_some());
        }
        assert!(s.find(&a, 1_000 + MAX_AGE_MS).is_none());
        let c = s.start(3, "x", StaffRole::Admin, 4, 5_000, &mut rng);
        let d = s.start(3, "x", StaffRole::Admin, 4, 5_000, &mut rng);
        s.end_staff(3);
        assert!(s.find(&c, 5_001).is_none() && s.find(&d, 5_001).is_none());
        let e = s.start(4, "y", StaffRole::Viewer, 0, 5_000, &mut rng);
        s.confirm(&e, 9);
        assert_eq!(s.find(&e, 5_001).unwrap().epoch, 9);
        s.end(&e);
        assert!(s.is_empty());
    }

    #[test]
    fn cookies_parse_and_are_strict() {
        let h = Some("a=1; puente_session=abc ; puente_lang=en");
        assert_eq!(cookie(h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(h, LANG_COOKIE), Some("en"));
        assert_eq!(cookie(h, "b"), None);
        assert_eq!(cookie(None, "a"), None);
        assert_eq!(
            set_cookie(SESSION_COOKIE, "abc", false, None),
            "puente_session=abc; Path=/; HttpOnly; SameSite=Strict"
        );
        assert_eq!(
            set_cookie(SESSION_COOKIE, "", true, Some(0)),
            "puente_session=; Path=/; HttpOnly; SameSite=Strict; Secure; Max-Age=0"
        );
    }
}
