//! Typed ids: an `OrderId` can never be passed where a `ProductId` is meant.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl $name {
            /// The raw integer, as stored and as shown to users.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl FromStr for $name {
            type Err = crate::Error;
            fn from_str(s: &str) -> crate::Result<Self> {
                s.trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|id| *id > 0)
                    .map($name)
                    .ok_or_else(|| crate::Error::invalid(format!("{} id must be a positive integer, got {s:?}", $what)))
            }
        }
    };
}

id_type!(
    /// Identifies an order.
    OrderId, "order"
);
id_type!(
    /// Identifies a product.
    ProductId, "product"
);
id_type!(
    /// Identifies a customer.
    CustomerId, "customer"
);
id_type!(
    /// Identifies a user account.
    UserId, "user"
);
id_type!(
    /// Identifies a recorded payment.
    PaymentId, "payment"
);
id_type!(
    /// A position in the change log; strictly increasing, gap-free.
    Seq, "change sequence"
);
id_type!(
    /// Identifies a row of the notification outbox.
    NotificationId, "notification"
);
