//! The CLI's error type and the one place that maps errors to exit codes.

use oms_core::ErrorKind;

/// Exit codes, as documented in the README and `oms --help`.
pub mod exit {
    pub const INTERNAL: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NOT_FOUND: u8 = 3;
    pub const CONFLICT: u8 = 4;
    pub const INVALID: u8 = 5;
}

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// An error from the core (database, validation, stock, ...).
    #[error(transparent)]
    Core(#[from] oms_core::Error),
    /// Reading input or writing output.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The daemon could not start or stopped with an error.
    #[error("{0}")]
    Serve(String),
    /// Arguments that parse but make no sense together.
    #[error("{0}")]
    Usage(String),
    /// Some items of a command that handles several (`oms order pay 1 2 3`)
    /// failed; each failure was already reported on its own line, and
    /// `code` is the most severe of their exit codes ([`most_severe`]).
    #[error("{failed} of {total} orders failed (reported above)")]
    Batch {
        failed: usize,
        total: usize,
        code: u8,
    },
    /// `oms notify send` found mail due and could deliver none of it.
    #[error("{0}")]
    Delivery(String),
}

impl CliError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> CliError {
        CliError::Io {
            context: context.into(),
            source,
        }
    }

    /// A closed stdout (`oms order export | head`) is not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        let io = match self {
            CliError::Io { source, .. } => Some(source),
            CliError::Core(oms_core::Error::Io { source, .. }) => Some(source),
            _ => None,
        };
        io.is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// The exit code: 1 internal/I-O, 2 usage, 3 not found, 4 conflict,
    /// 5 invalid input.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Core(e) => match e.kind() {
                ErrorKind::NotFound => exit::NOT_FOUND,
                ErrorKind::Conflict | ErrorKind::Stale => exit::CONFLICT,
                ErrorKind::Invalid => exit::INVALID,
                ErrorKind::Busy
                | ErrorKind::StorageFull
                | ErrorKind::Unavailable
                | ErrorKind::Internal => exit::INTERNAL,
            },
            CliError::Io { .. } | CliError::Serve(_) | CliError::Delivery(_) => exit::INTERNAL,
            CliError::Usage(_) => exit::USAGE,
            CliError::Batch { code, .. } => *code,
        }
    }
}

/// Exit codes from the most to the least severe, for commands that report
/// one outcome per item: an internal error means something is broken beyond
/// that item (the database, the disk), a usage or validation error means the
/// calling script is wrong, a conflict means an order's state refused the
/// change, and an unknown id means there was nothing to change.
pub const SEVERITY: [u8; 5] = [
    exit::INTERNAL,
    exit::USAGE,
    exit::INVALID,
    exit::CONFLICT,
    exit::NOT_FOUND,
];

/// The most severe of several failures' exit codes by [`SEVERITY`]
/// (`None` when there were none).
pub fn most_severe(codes: &[u8]) -> Option<u8> {
    codes
        .iter()
        .copied()
        .min_by_key(|code| SEVERITY.iter().position(|s| s == code).unwrap_or(0))
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> CliError {
        CliError::io("writing output", e)
    }
}

/// Shorthand for command results.
pub type Result<T = ()> = std::result::Result<T, CliError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_severe_follows_the_documented_order() {
        assert_eq!(most_severe(&[]), None);
        assert_eq!(most_severe(&[exit::NOT_FOUND]), Some(exit::NOT_FOUND));
        assert_eq!(
            most_severe(&[exit::NOT_FOUND, exit::CONFLICT, exit::NOT_FOUND]),
            Some(exit::CONFLICT)
        );
        assert_eq!(
            most_severe(&[exit::CONFLICT, exit::INVALID]),
            Some(exit::INVALID)
        );
        assert_eq!(
            most_severe(&[exit::INVALID, exit::INTERNAL, exit::NOT_FOUND]),
            Some(exit::INTERNAL)
        );
        assert_eq!(
            most_severe(&[exit::USAGE, exit::INVALID]),
            Some(exit::USAGE)
        );
    }
}
