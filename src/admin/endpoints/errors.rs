//! Error responses of the admin API.
//!
//! Owns: mapping node, store and seal errors to an HTTP status and a JSON
//! body `{"error": "<sentence saying what to do>", "status": CODE}`.
//! Must not: put a value into a message (the errors it maps never hold one;
//! messages built here name tables, ids and columns only).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::ErrorBody;
use crate::audit::AuditError;
use crate::node::NodeError;
use crate::seal::SealError;
use crate::store::StoreError;

/// An error answer: its status and the sentence for the caller.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let status = match &e {
            StoreError::UnknownTable { .. }
            | StoreError::UnknownColumn { .. }
            | StoreError::NoSuchRow { .. } => StatusCode::NOT_FOUND,
            StoreError::InvalidId { .. }
            | StoreError::InvalidWrite { .. }
            | StoreError::MissingRequired { .. }
            | StoreError::InvalidValue { .. } => StatusCode::BAD_REQUEST,
            StoreError::RowDeleted { .. } => StatusCode::GONE,
            StoreError::Forbidden { .. } => StatusCode::FORBIDDEN,
            StoreError::NoSuchHeld { .. } => StatusCode::NOT_FOUND,
            StoreError::HeldDecided { .. } => StatusCode::CONFLICT,
            StoreError::Seal(seal) => return seal_error(seal, &e),
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match &e {
            StoreError::NoSuchRow { table, id } => format!(
                "no row {table}/{id}; check the id (GET /v1/tables/{table}/rows lists the rows)"
            ),
            other => other.to_string(),
        };
        ApiError::new(status, message)
    }
}

fn seal_error(seal: &SealError, e: &StoreError) -> ApiError {
    let status = match seal {
        SealError::NoIdentity { .. } => StatusCode::FORBIDDEN,
        SealError::NotAgeFile { .. } | SealError::Decrypt { .. } | SealError::Binding { .. } => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        SealError::NoRecipients { .. } | SealError::Encrypt { .. } => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    ApiError::new(status, e.to_string())
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> ApiError {
        match e {
            NodeError::Store(e) => e.into(),
            NodeError::Internal(detail) => ApiError::internal(format!(
                "{detail}; the request was not completed, retry it and check the daemon's log (journalctl -u puente)"
            )),
        }
    }
}

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> ApiError {
        ApiError::internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), error = %self.message, "admin request failed");
        }
        let body = ErrorBody {
            error: self.message,
            status: self.status.as_u16(),
        };
        (self.status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_error() {
        let cases: Vec<(StoreError, u16)> = vec![
            (
                StoreError::UnknownTable {
                    table: "x".into(),
                    known: "a".into(),
                },
                404,
            ),
            (StoreError::InvalidId { id: "a b".into() }, 400),
            (
                StoreError::RowDeleted {
                    table: "t".into(),
                    id: "r".into(),
                },
                410,
            ),
            (SealError::NoIdentity { group: "mx".into() }.into(), 403),
            (
                SealError::Binding {
                    table: "t".into(),
                    id: "r".into(),
                    column: "c".into(),
                    reason: "moved".into(),
                }
                .into(),
                422,
            ),
            (SealError::NoRecipients { group: "mx".into() }.into(), 500),
            (
                StoreError::Forbidden {
                    office: "san-diego".into(),
                    allowed: vec!["tijuana".into()],
                    message: "san-diego may not delete rows of residents".into(),
                },
                403,
            ),
            (StoreError::NoSuchHeld { id: 4 }, 404),
        ];
        for (e, status) in cases {
            assert_eq!(ApiError::from(e).status.as_u16(), status);
        }
    }
}
