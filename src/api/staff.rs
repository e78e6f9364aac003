//! The JSON shapes of the staff endpoints (`/v1/staff`), shared by the
//! server and the client.
//!
//! Owns: request and response bodies of adding, listing and removing the
//! office's web staff logins.
//! Must not: hold a token anywhere but in the one answer that hands it out.

use serde::{Deserialize, Serialize};

/// `POST /v1/staff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffNew {
    pub name: String,
    /// viewer, editor or admin.
    pub role: String,
}

/// The answer to `POST /v1/staff`: the only time the tokens are shown.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffAdded {
    pub name: String,
    pub role: String,
    pub login_token: String,
    pub calendar_token: String,
    /// The web agenda's login link (absent when `[web]` is off).
    pub login_url: Option<String>,
    /// The calendar feed's address (absent when `[web]` is off).
    pub calendar_url: Option<String>,
    /// Why the links would not open on staff's devices (no public
    /// `[web] url`), naming what to set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links_warning: Option<String>,
}

impl std::fmt::Debug for StaffAdded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaffAdded")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// One staff member in `GET /v1/staff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffEntry {
    pub name: String,
    pub role: String,
    /// When they were added (RFC 3339, UTC).
    pub added: String,
}

/// `GET /v1/staff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffList {
    pub staff: Vec<StaffEntry>,
    /// The web agenda's address, if it is served.
    pub web: Option<String>,
}

/// `DELETE /v1/staff/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffRemoved {
    pub name: String,
    pub removed: bool,
}
