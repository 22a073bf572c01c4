//! Domain types: what the store returns and what callers ask for. Field
//! names are the external names of DESIGN §3, shared by every face.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::{CustomerId, Error, Money, OrderId, ProductId, Seq, Status, Timestamp, UserId};

/// Largest quantity on one order line.
pub const MAX_QUANTITY: i64 = 1_000_000;
/// Largest stock level of a product.
pub const MAX_STOCK: i64 = 1_000_000_000;

/// A stock keeping unit: 1–64 printable characters without spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Sku(String);

impl Sku {
    /// Validates a SKU.
    pub fn parse(input: &str) -> crate::Result<Sku> {
        let s = input.trim();
        if s.is_empty() || s.len() > 64 {
            return Err(Error::invalid(format!(
                "invalid SKU {input:?}: must be 1 to 64 characters"
            )));
        }
        // `;` separates lines in the `items` CSV cell (SKU*QTY;SKU*QTY).
        if s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ';')
        {
            return Err(Error::invalid(format!(
                "invalid SKU {input:?}: no spaces, semicolons or control characters"
            )));
        }
        Ok(Sku(s.to_string()))
    }

    /// A SKU read back from the database, validated when it was written.
    pub(crate) fn from_stored(s: String) -> Sku {
        Sku(s)
    }

    /// The SKU text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A positive order-line quantity, at most [`MAX_QUANTITY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Quantity(i64);

impl Quantity {
    /// Validates a quantity.
    pub fn new(q: i64) -> crate::Result<Quantity> {
        if (1..=MAX_QUANTITY).contains(&q) {
            Ok(Quantity(q))
        } else {
            Err(Error::invalid(format!(
                "invalid quantity {q}: must be between 1 and {MAX_QUANTITY}"
            )))
        }
    }

    /// The number of units.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl FromStr for Quantity {
    type Err = Error;
    fn from_str(s: &str) -> crate::Result<Quantity> {
        let q: i64 = s.trim().parse().map_err(|_| {
            Error::invalid(format!(
                "invalid quantity {s:?}: must be a whole number between 1 and {MAX_QUANTITY}"
            ))
        })?;
        Quantity::new(q)
    }
}

/// A product named by id or by SKU. Lookups try the SKU first, then the id,
/// so a numeric SKU still works.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProductRef {
    Id(ProductId),
    /// A SKU, or a number that may be either.
    Key(String),
}

impl ProductRef {
    /// From user text: a SKU or an id.
    pub fn parse(input: &str) -> crate::Result<ProductRef> {
        let s = input.trim();
        if s.is_empty() {
            return Err(Error::invalid("empty product: give a SKU or an id"));
        }
        Ok(ProductRef::Key(s.to_string()))
    }
}

impl fmt::Display for ProductRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProductRef::Id(id) => write!(f, "{id}"),
            ProductRef::Key(k) => f.write_str(k),
        }
    }
}

/// A customer named by id or by email (anything with an `@`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CustomerRef {
    Id(CustomerId),
    Email(String),
}

impl CustomerRef {
    /// From user text: an email or an id.
    pub fn parse(input: &str) -> crate::Result<CustomerRef> {
        let s = input.trim();
        if s.contains('@') {
            Ok(CustomerRef::Email(s.to_string()))
        } else {
            s.parse().map(CustomerRef::Id).map_err(|_| {
                Error::invalid(format!(
                    "invalid customer {input:?}: give an email or an id"
                ))
            })
        }
    }
}

impl fmt::Display for CustomerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CustomerRef::Id(id) => write!(f, "{id}"),
            CustomerRef::Email(e) => f.write_str(e),
        }
    }
}

/// Validates an email address: something@something.tld, no spaces.
pub fn parse_email(input: &str) -> crate::Result<String> {
    let s = input.trim();
    let ok = s.len() <= 254
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(s.split_once('@'), Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
               && !domain.ends_with('.') && !domain.contains('@'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(Error::invalid(format!("invalid email {input:?}")))
    }
}

/// Validates a display name: non-empty, at most 200 characters, no control
/// characters other than none.
pub fn parse_name(field: &str, input: &str) -> crate::Result<String> {
    let s = input.trim();
    if s.is_empty() {
        return Err(Error::invalid(format!("{field} must not be empty")));
    }
    if s.chars().count() > 200 {
        return Err(Error::invalid(format!(
            "{field} is longer than 200 characters"
        )));
    }
    if s.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Error::invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(s.to_string())
}

/// A product and its stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Product {
    pub id: ProductId,
    pub sku: Sku,
    pub name: String,
    pub price: Money,
    pub stock_on_hand: i64,
    pub stock_reserved: i64,
    pub stock_available: i64,
    pub active: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Fields to create a product.
#[derive(Debug, Clone)]
pub struct NewProduct {
    pub sku: Sku,
    pub name: String,
    pub price: Money,
    pub stock_on_hand: i64,
    pub active: bool,
}

/// Fields to change on a product; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct ProductPatch {
    pub sku: Option<Sku>,
    pub name: Option<String>,
    pub price: Option<Money>,
    pub active: Option<bool>,
}

/// How to adjust a product's stock on hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restock {
    /// Add (or with a negative number, remove) units.
    Add(i64),
    /// Set the count after a stocktake.
    Set(i64),
}

/// A customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Customer {
    pub id: CustomerId,
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Fields to create a customer.
#[derive(Debug, Clone)]
pub struct NewCustomer {
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
}

/// Fields to change on a customer; `None` leaves a field alone, and
/// `phone: Some(None)` clears the phone.
#[derive(Debug, Clone, Default)]
pub struct CustomerPatch {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<Option<String>>,
}

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Customer,
}

impl Role {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Customer => "customer",
        }
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> crate::Result<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "admin" => Ok(Role::Admin),
            "customer" => Ok(Role::Customer),
            _ => Err(Error::invalid(format!(
                "unknown role {s:?}: use admin or customer"
            ))),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user account. The password hash is never part of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub customer_id: Option<CustomerId>,
    pub created_at: Timestamp,
}

/// What a token must still match to be honoured: the user's current role,
/// customer record and token generation. A new generation is drawn when the
/// password or the role changes, and the row is gone once the user is
/// removed, so every token issued before stops working at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub user: UserId,
    pub role: Role,
    pub customer_id: Option<CustomerId>,
    /// Opaque; carried in the token as text.
    pub generation: String,
}

/// A user's login details: the user, its password hash (if it has one) and
/// what a token issued now must carry.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: User,
    pub password_hash: Option<String>,
    pub grant: TokenGrant,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub name: Option<String>,
    pub role: Option<Role>,
}

/// Fields to create a user.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub name: String,
    pub role: Role,
    /// An argon2id PHC string from [`crate::password::hash`], or `None` for an
    /// account that cannot log in with a password (e.g. a script's admin).
    pub password_hash: Option<String>,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderItem {
    pub product_id: ProductId,
    pub sku: Sku,
    pub name: String,
    pub unit_price: Money,
    pub quantity: i64,
    pub line_total: Money,
}

/// An order with its items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Order {
    pub id: OrderId,
    pub customer_id: CustomerId,
    pub status: Status,
    pub items: Vec<OrderItem>,
    pub total: Money,
    pub currency: crate::Currency,
    pub payment_collected: bool,
    pub tracking_code: String,
    pub idempotency_key: Option<String>,
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One requested line: a product and a quantity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRequest {
    pub product: ProductRef,
    pub quantity: Quantity,
}

impl ItemRequest {
    /// Parses `SKU:QTY` (the last `:` splits, so SKUs may contain colons).
    pub fn parse(input: &str) -> crate::Result<ItemRequest> {
        let (product, qty) = input.rsplit_once(':').ok_or_else(|| {
            Error::invalid(format!(
                "invalid item {input:?}: use SKU:QUANTITY, like LAPTOP-13:2"
            ))
        })?;
        Ok(ItemRequest {
            product: ProductRef::parse(product)?,
            quantity: qty.parse()?,
        })
    }
}

/// A request to place an order.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub customer: CustomerRef,
    pub items: Vec<ItemRequest>,
    /// Place it directly as PAID (payment already collected).
    pub paid: bool,
    pub idempotency_key: Option<String>,
}

/// Filters shared by order list and export, on every face.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub status: Option<Status>,
    pub customer: Option<CustomerRef>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Matches customer name or email, SKU, product name, idempotency key or
    /// tracking code (case-insensitive substring).
    pub search: Option<String>,
    pub limit: Option<u64>,
    /// Cursor: only orders after this id in the listing's order (a larger
    /// id, or a smaller one when `newest_first`).
    pub after: Option<OrderId>,
    /// List the newest orders (largest ids) first.
    pub newest_first: bool,
}

/// The entity a change is about, to narrow the change log to one record's
/// history (`entity = "order"`, `entity_id = 7`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityFilter {
    pub entity: String,
    /// Only changes about this id of the entity; all of them when `None`.
    pub entity_id: Option<i64>,
}

impl EntityFilter {
    /// Whether `change` is about this entity.
    pub fn matches(&self, change: &Change) -> bool {
        change.entity == self.entity && self.entity_id.is_none_or(|id| change.entity_id == id)
    }
}

/// One entry of the change log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub seq: Seq,
    pub at: Timestamp,
    #[serde(rename = "type")]
    pub kind: String,
    pub entity: String,
    pub entity_id: i64,
    pub actor: String,
    pub data: serde_json::Value,
    /// The customer whose data this change concerns (a customer's feed shows
    /// only these); not part of the JSON.
    #[serde(skip)]
    pub customer_id: Option<CustomerId>,
}

/// One row of the flat order export (one per order item).
#[derive(Debug, Clone)]
pub struct OrderExportRow {
    pub order_id: OrderId,
    pub order_ref: String,
    pub created_at: Timestamp,
    pub status: Status,
    pub customer_id: CustomerId,
    pub customer_email: String,
    pub customer_name: String,
    pub sku: String,
    pub product_name: String,
    pub quantity: i64,
    pub unit_price: Money,
    pub line_total: Money,
    pub order_total: Money,
    pub currency: crate::Currency,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_parsing() {
        let it = ItemRequest::parse("LAPTOP-13:2").unwrap();
        assert_eq!(it.product, ProductRef::Key("LAPTOP-13".into()));
        assert_eq!(it.quantity.get(), 2);
        let it = ItemRequest::parse("A:B:3").unwrap();
        assert_eq!(it.product, ProductRef::Key("A:B".into()));
        for bad in ["LAPTOP", "X:0", "X:-1", "X:1.5", ":2", "X:99999999"] {
            assert!(ItemRequest::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_and_refs() {
        assert!(parse_email("a@b.co").is_ok());
        for bad in ["", "a", "a@b", "@b.co", "a b@c.de", "a@.b", "a@b."] {
            assert!(parse_email(bad).is_err(), "{bad}");
        }
        assert_eq!(
            CustomerRef::parse("7").unwrap(),
            CustomerRef::Id(CustomerId(7))
        );
        assert!(matches!(
            CustomerRef::parse("x@y.z").unwrap(),
            CustomerRef::Email(_)
        ));
        assert!(CustomerRef::parse("bob").is_err());
    }

    #[test]
    fn sku_rules() {
        assert!(Sku::parse("LAPTOP-13").is_ok());
        assert!(Sku::parse("has space").is_err());
        assert!(
            Sku::parse("A;B").is_err(),
            "would break the items cell of --by-order"
        );
        assert!(Sku::parse("").is_err());
        assert!(Sku::parse(&"x".repeat(65)).is_err());
    }
}
