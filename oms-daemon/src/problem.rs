//! Errors as HTTP answers: RFC 9457 `application/problem+json`. The one
//! place that maps core errors to status codes is [`Problem::from_core`].

use hyper::StatusCode;
use oms_core::Error;
use serde::Serialize;

/// One field problem in a request body.
#[derive(Debug, Clone, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// An error answer.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u64>,
}

/// `Retry-After` of an answer refused because the disk is full.
pub const STORAGE_FULL_RETRY_SECS: u64 = 10;

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            title: status.canonical_reason().unwrap_or("Error"),
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::CONFLICT, detail)
    }

    pub fn unprocessable(detail: impl Into<String>, errors: Vec<FieldError>) -> Problem {
        Problem {
            errors,
            ..Problem::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
        }
    }

    pub fn too_many(retry_after: u64) -> Problem {
        Problem {
            retry_after: Some(retry_after),
            ..Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many attempts; retry later",
            )
        }
    }

    pub fn unavailable(detail: impl Into<String>, retry_after: u64) -> Problem {
        Problem {
            retry_after: Some(retry_after),
            ..Problem::new(StatusCode::SERVICE_UNAVAILABLE, detail)
        }
    }

    pub fn internal() -> Problem {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "an internal error occurred; it has been logged",
        )
    }

    /// Maps a core error. Exhaustive on purpose: a new variant must be
    /// given a status here.
    pub fn from_core(e: &Error) -> Problem {
        match e {
            Error::NotFound { .. } => Problem::not_found(e.to_string()),
            Error::InsufficientStock { lines } => Problem {
                errors: lines
                    .iter()
                    .map(|l| FieldError {
                        field: l.product.clone(),
                        message: format!("{} requested: {}", l.requested, l.reason),
                    })
                    .collect(),
                ..Problem::conflict(e.to_string())
            },
            Error::InvalidTransition { .. }
            | Error::Duplicate { .. }
            | Error::Conflict(_)
            | Error::Drift(_) => Problem::conflict(e.to_string()),
            Error::IdempotencyMismatch { .. } => Problem::unprocessable(e.to_string(), Vec::new()),
            Error::StaleVersion { .. } => {
                Problem::new(StatusCode::PRECONDITION_FAILED, e.to_string())
            }
            Error::Invalid(_) => Problem::unprocessable(e.to_string(), Vec::new()),
            Error::AtLine { source, .. } => {
                let mut p = Problem::from_core(source);
                p.detail = e.to_string();
                p
            }
            Error::Busy { .. } => Problem::unavailable("the database is busy; retry", 1),
            // Not a bug of the request or of oms: name the cause, and say
            // when to retry (the write succeeds once space is freed).
            Error::StorageFull => Problem::unavailable(e.to_string(), STORAGE_FULL_RETRY_SECS),
            Error::Unavailable(_) => Problem::unavailable(e.to_string(), 1),
            Error::SchemaTooNew { .. } | Error::Io { .. } | Error::Database(_) => {
                tracing::error!(error = %e, "internal error");
                Problem::internal()
            }
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        let mut body = serde_json::json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if !self.errors.is_empty() {
            body["errors"] = serde_json::json!(self.errors);
        }
        body
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Problem {
        Problem::from_core(&e)
    }
}
