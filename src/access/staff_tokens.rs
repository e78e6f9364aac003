//! Staff logins: roles, names, tokens and their hashes.
//!
//! A staff member gets two random tokens: a login token (in the login link)
//! and a calendar token (in the feed's address, so a leaked feed address
//! never lets anyone log in). Each is 160 random bits written as 40 hex
//! digits; only their SHA-256 reaches the replica (`store/staff.rs`). A
//! random token needs no slow password hash: there is nothing to guess.
//!
//! Owns: `StaffRole` and what each role may do on the web, staff name
//! rules, making tokens from an injected random source, hashing them.
//! Must not: store, log or compare tokens by value anywhere else.

use rand::RngCore;

/// A staff member's role on the web agenda.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StaffRole {
    /// Reads the agenda and subscribes to the calendar.
    Viewer,
    /// Also creates, edits and cancels events.
    Editor,
    /// Also sees the sync status panel.
    Admin,
}

impl StaffRole {
    pub fn parse(text: &str) -> Option<StaffRole> {
        match text.trim().to_ascii_lowercase().as_str() {
            "viewer" => Some(StaffRole::Viewer),
            "editor" => Some(StaffRole::Editor),
            "admin" => Some(StaffRole::Admin),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            StaffRole::Viewer => "viewer",
            StaffRole::Editor => "editor",
            StaffRole::Admin => "admin",
        }
    }

    pub fn can_edit(self) -> bool {
        self >= StaffRole::Editor
    }

    pub fn sees_status(self) -> bool {
        self == StaffRole::Admin
    }
}

/// The message for a role that is not one of the three.
pub const ROLE_USAGE: &str = "the role must be viewer (reads the agenda), editor (also creates, edits and cancels events) or admin (also sees sync status)";

/// Checks a staff member's name: 1 to 64 characters, letters (any
/// alphabet), digits, spaces, '.', '-', '_' or '@'; no leading or trailing
/// space. Returns the name or a sentence saying what to change.
pub fn check_name(name: &str) -> Result<&str, String> {
    let ok = !name.is_empty()
        && name.chars().count() <= 64
        && name.trim() == name
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '.' | '-' | '_' | '@'));
    if ok {
        Ok(name)
    } else {
        Err("a staff name is 1 to 64 letters, digits, spaces, '.', '-', '_' or '@' (e.g. editor-tijuana)".into())
    }
}

/// Random bytes in a token.
const TOKEN_BYTES: usize = 20;

/// A new token: 160 random bits as 40 lowercase hex digits.
pub fn new_token(rng: &mut impl RngCore) -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `text` has the shape of a token (anything else is refused
/// without a lookup).
pub fn looks_like_token(text: &str) -> bool {
    text.len() == TOKEN_BYTES * 2 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The SHA-256 of a token, as stored.
pub fn hash(token: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn tokens_are_160_random_bits_and_hash_stably() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let a = new_token(&mut rng);
        let b = new_token(&mut rng);
        assert_ne!(a, b);
        assert!(looks_like_token(&a) && looks_like_token(&b), "{a}");
        assert!(!looks_like_token(&a[1..]) && !looks_like_token(&a.to_uppercase()));
        assert_eq!(hash(&a), hash(&a.clone()));
        assert_ne!(hash(&a), hash(&b));
        // SHA-256 of "abc".
        assert_eq!(hash("abc")[..4], [0xba, 0x78, 0x16, 0xbf]);
    }

    #[test]
    fn roles_and_names() {
        assert_eq!(StaffRole::parse("Editor"), Some(StaffRole::Editor));
        assert_eq!(StaffRole::parse("root"), None);
        assert!(!StaffRole::Viewer.can_edit() && StaffRole::Editor.can_edit());
        assert!(StaffRole::Admin.can_edit() && StaffRole::Admin.sees_status());
        assert!(!StaffRole::Editor.sees_status());
        assert!(check_name("coordinación-tj").is_ok());
        assert!(check_name("an editor").is_ok());
        for bad in ["", " x", "x ", "a<b", "a\nb", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
