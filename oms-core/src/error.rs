//! The one error type of `oms-core`. Variants carry the context a user needs
//! to fix the problem; the faces map them to exit codes and HTTP statuses in
//! one place each (`ErrorKind`).

use std::fmt;

use crate::Status;

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One line of an order that could not be reserved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineFailure {
    /// The SKU or id as the caller gave it.
    pub product: String,
    /// Quantity asked for (summed over lines naming the same product).
    pub requested: i64,
    /// Why it failed.
    pub reason: String,
}

impl fmt::Display for LineFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} × {}: {}", self.product, self.requested, self.reason)
    }
}

/// Everything that can go wrong in `oms-core`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A referenced entity does not exist.
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },

    /// Placement or edit could not reserve every line; nothing was written.
    #[error("cannot reserve every line, nothing was written: {}", join(lines))]
    InsufficientStock { lines: Vec<LineFailure> },

    /// The status machine refuses this move.
    #[error("cannot move order from {from} to {to}: {}", allowed_text(*from, allowed))]
    InvalidTransition {
        from: Status,
        to: Status,
        allowed: Vec<Status>,
    },

    /// A unique value is already taken.
    #[error("{what} {value:?} already exists")]
    Duplicate { what: &'static str, value: String },

    /// An idempotency key was reused with different contents.
    #[error(
        "idempotency key {key:?} was already used for order {order_id} with different contents"
    )]
    IdempotencyMismatch { key: String, order_id: i64 },

    /// The operation conflicts with the current state (e.g. removing a
    /// product that has orders).
    #[error("{0}")]
    Conflict(String),

    /// The caller's version is not the current one (optimistic locking).
    #[error("order {order_id} has version {current}, not {expected}; reload and retry")]
    StaleVersion {
        order_id: i64,
        expected: i64,
        current: i64,
    },

    /// Bad input: validation failed.
    #[error("{0}")]
    Invalid(String),

    /// A problem at a line of a CSV file; nothing of the file was written.
    #[error("line {line}: {source}")]
    AtLine {
        line: u64,
        #[source]
        source: Box<Error>,
    },

    /// Another writer held the database lock for longer than the busy
    /// timeout.
    #[error(
        "database is busy: another oms process held the write lock for more than {timeout_ms} ms; nothing was written, retry the command"
    )]
    Busy { timeout_ms: u64 },

    /// The disk holding the database is full (SQLite's `SQLITE_FULL`):
    /// the write was rolled back; it succeeds again once space is freed.
    #[error(
        "the disk holding the database is full: nothing was written; free space on it and retry"
    )]
    StorageFull,

    /// The database server cannot be reached (it restarts, the network is
    /// down): nothing was written; the same request succeeds once it is
    /// back.
    #[error("the database is unavailable: {0}; nothing was written, retry")]
    Unavailable(String),

    /// The database was written by a newer oms.
    #[error("database schema {found} is newer than this oms supports ({supported}); upgrade oms")]
    SchemaTooNew { found: i64, supported: i64 },

    /// `verify` found drift.
    #[error("verify found {0} problem(s)")]
    Drift(usize),

    /// File or stream I/O.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// An unexpected database error (a bug or a broken file).
    #[error("database error: {0}")]
    Database(String),
}

/// The coarse class of an error: what the faces map to exit codes and HTTP
/// statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Conflict,
    Stale,
    Invalid,
    Busy,
    /// The storage cannot take writes now (disk full); retrying later helps.
    StorageFull,
    /// The database server cannot be reached now; retrying later helps.
    Unavailable,
    Internal,
}

impl Error {
    /// A validation error with a message.
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::Invalid(msg.into())
    }

    /// A not-found error.
    pub fn not_found(what: &'static str, id: impl fmt::Display) -> Error {
        Error::NotFound {
            what,
            id: id.to_string(),
        }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Attaches a CSV line number (the innermost one wins).
    pub fn at_line(self, line: u64) -> Error {
        match self {
            already @ Error::AtLine { .. } => already,
            other => Error::AtLine {
                line,
                source: Box::new(other),
            },
        }
    }

    /// The coarse class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::InsufficientStock { .. }
            | Error::InvalidTransition { .. }
            | Error::Duplicate { .. }
            | Error::IdempotencyMismatch { .. }
            | Error::Conflict(_)
            | Error::Drift(_) => ErrorKind::Conflict,
            Error::StaleVersion { .. } => ErrorKind::Stale,
            Error::Invalid(_) => ErrorKind::Invalid,
            Error::AtLine { source, .. } => source.kind(),
            Error::Busy { .. } => ErrorKind::Busy,
            Error::StorageFull => ErrorKind::StorageFull,
            Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::SchemaTooNew { .. } | Error::Io { .. } | Error::Database(_) => {
                ErrorKind::Internal
            }
        }
    }
}

fn join(lines: &[LineFailure]) -> String {
    lines
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn allowed_text(from: Status, allowed: &[Status]) -> String {
    if allowed.is_empty() {
        format!("{from} is terminal")
    } else {
        let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
        format!("from {from} the order may move to {}", names.join(" or "))
    }
}
