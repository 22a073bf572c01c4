//! The order status machine of DESIGN §4, as a pure function with no I/O.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use crate::Error;

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Pending,
    Paid,
    Fulfilled,
    Cancelled,
}

/// What a transition does to the stock of every line of the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockEffect {
    /// Nothing moves.
    None,
    /// `reserved -= qty`: the order gives its units back.
    Release,
    /// `on_hand -= qty, reserved -= qty`: the units leave the warehouse.
    Ship,
}

/// The outcome of asking to move an order from one status to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The order already has that status: succeed and change nothing, so
    /// retries never release or ship stock twice.
    NoOp,
    /// A legal move with its stock effect.
    Move(StockEffect),
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 4] = [
        Status::Pending,
        Status::Paid,
        Status::Fulfilled,
        Status::Cancelled,
    ];

    /// The upper-case name used in JSON, CSV and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Paid => "PAID",
            Status::Fulfilled => "FULFILLED",
            Status::Cancelled => "CANCELLED",
        }
    }

    /// Whether the order holds a reservation in this status.
    pub fn holds_stock(self) -> bool {
        matches!(self, Status::Pending | Status::Paid)
    }

    /// The statuses this one may move to.
    pub fn allowed_next(self) -> &'static [Status] {
        match self {
            Status::Pending => &[Status::Paid, Status::Cancelled],
            Status::Paid => &[Status::Fulfilled, Status::Cancelled],
            Status::Fulfilled | Status::Cancelled => &[],
        }
    }

    /// Decides a transition. Refusals name the allowed next states.
    pub fn transition(self, to: Status) -> crate::Result<Transition> {
        use Status::*;
        let effect = match (self, to) {
            (a, b) if a == b => return Ok(Transition::NoOp),
            (Pending, Paid) => StockEffect::None,
            (Pending, Cancelled) | (Paid, Cancelled) => StockEffect::Release,
            (Paid, Fulfilled) => StockEffect::Ship,
            // Negative control for the status-machine model tests: lets an
            // unpaid order ship.
            (Pending, Fulfilled) if crate::controls::STATUS_MACHINE => StockEffect::Ship,
            _ => {
                return Err(Error::InvalidTransition {
                    from: self,
                    to,
                    allowed: self.allowed_next().to_vec(),
                });
            }
        };
        Ok(Transition::Move(effect))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = Error;
    fn from_str(s: &str) -> crate::Result<Status> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown status {s:?}: use one of pending, paid, fulfilled, cancelled"
                ))
            })
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Status::*;
    use super::*;

    /// Every (from, to) pair against the table of DESIGN §4.
    #[test]
    fn every_pair_matches_the_design_table() {
        // None = refused.
        let table: [(Status, Status, Option<Transition>); 16] = [
            (Pending, Pending, Some(Transition::NoOp)),
            (Pending, Paid, Some(Transition::Move(StockEffect::None))),
            (Pending, Fulfilled, None),
            (
                Pending,
                Cancelled,
                Some(Transition::Move(StockEffect::Release)),
            ),
            (Paid, Pending, None),
            (Paid, Paid, Some(Transition::NoOp)),
            (Paid, Fulfilled, Some(Transition::Move(StockEffect::Ship))),
            (
                Paid,
                Cancelled,
                Some(Transition::Move(StockEffect::Release)),
            ),
            (Fulfilled, Pending, None),
            (Fulfilled, Paid, None),
            (Fulfilled, Fulfilled, Some(Transition::NoOp)),
            (Fulfilled, Cancelled, None),
            (Cancelled, Pending, None),
            (Cancelled, Paid, None),
            (Cancelled, Fulfilled, None),
            (Cancelled, Cancelled, Some(Transition::NoOp)),
        ];
        for (from, to, expected) in table {
            let got = from.transition(to);
            match expected {
                Some(t) => assert_eq!(got.unwrap(), t, "{from} -> {to}"),
                None => match got {
                    Err(Error::InvalidTransition { allowed, .. }) => {
                        assert_eq!(allowed, from.allowed_next(), "{from} -> {to}")
                    }
                    other => panic!("{from} -> {to} should be refused, got {other:?}"),
                },
            }
        }
    }

    #[test]
    fn refusal_names_allowed_next_states() {
        let err = Paid.transition(Pending).unwrap_err().to_string();
        assert!(
            err.contains("FULFILLED") && err.contains("CANCELLED"),
            "{err}"
        );
        let err = Cancelled.transition(Paid).unwrap_err().to_string();
        assert!(err.contains("terminal"), "{err}");
    }

    #[test]
    fn parses_case_insensitively() {
        assert_eq!("paid".parse::<Status>().unwrap(), Paid);
        assert_eq!(" Cancelled ".parse::<Status>().unwrap(), Cancelled);
        assert!("shipped".parse::<Status>().is_err());
    }
}
