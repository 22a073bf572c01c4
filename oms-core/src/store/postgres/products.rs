//! Products: catalogue and stock levels. Stock only changes through guarded
//! updates (see `inventory`), each with a ledger row and a change-log row.

use postgres::Row;
use serde_json::json;

use super::paging::{self, Listing};
use super::session::Session;
use super::{Access, Tx};
use crate::store::{ProductQuery, ProductReads, ProductWrites, Reason, Upserted};
use crate::{
    Currency, Error, MAX_STOCK, Money, NewProduct, Product, ProductId, ProductPatch, ProductRef,
    Restock, Result, Sku, Timestamp,
};

const COLUMNS: &str =
    "id, sku, name, price, stock_on_hand, stock_reserved, active, created_at, updated_at";

fn from_row(r: &Row, currency: Currency) -> Product {
    let on_hand: i64 = r.get(4);
    let reserved: i64 = r.get(5);
    Product {
        id: ProductId(r.get(0)),
        sku: Sku::from_stored(r.get(1)),
        name: r.get(2),
        price: currency.from_minor(r.get(3)),
        stock_on_hand: on_hand,
        stock_reserved: reserved,
        stock_available: on_hand - reserved,
        active: r.get(6),
        created_at: Timestamp::from_millis(r.get(7)),
        updated_at: Timestamp::from_millis(r.get(8)),
    }
}

/// Finds a product by SKU first, then by id.
pub(crate) fn find(
    s: &mut Session,
    product: &ProductRef,
    currency: Currency,
) -> Result<Option<Product>> {
    match product {
        ProductRef::Id(id) => find_by_id(s, id.get(), currency),
        ProductRef::Key(key) => {
            if let Some(p) = find_by_sku(s, key, currency)? {
                return Ok(Some(p));
            }
            match key.parse::<i64>() {
                Ok(id) => find_by_id(s, id, currency),
                Err(_) => Ok(None),
            }
        }
    }
}

/// The product with this id.
fn find_by_id(s: &mut Session, id: i64, currency: Currency) -> Result<Option<Product>> {
    let row = s.query_opt(
        &format!("SELECT {COLUMNS} FROM products WHERE id = $1"),
        &[&id],
    )?;
    Ok(row.map(|r| from_row(&r, currency)))
}

/// The product whose SKU is exactly `sku`.
fn find_by_sku(s: &mut Session, sku: &str, currency: Currency) -> Result<Option<Product>> {
    let row = s.query_opt(
        &format!("SELECT {COLUMNS} FROM products WHERE sku = $1"),
        &[&sku],
    )?;
    Ok(row.map(|r| from_row(&r, currency)))
}

pub(crate) fn get(s: &mut Session, product: &ProductRef, currency: Currency) -> Result<Product> {
    find(s, product, currency)?.ok_or_else(|| Error::not_found("product", product))
}

impl Tx<'_> {
    fn product_by_id(&self, id: ProductId) -> Result<Product> {
        get(&mut self.session(), &ProductRef::Id(id), self.currency)
    }

    fn ensure_sku_free(&self, sku: &Sku, except: Option<ProductId>) -> Result<()> {
        let existing: Option<i64> = self
            .session()
            .query_opt("SELECT id FROM products WHERE sku = $1", &[&sku.as_str()])?
            .map(|r| r.get(0));
        match existing {
            Some(id) if Some(ProductId(id)) != except => Err(Error::Duplicate {
                what: "product SKU",
                value: sku.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Inserts a product whose SKU is known to be free.
    fn insert_product(&self, new: &NewProduct) -> Result<Product> {
        check_stock(new.stock_on_hand)?;
        let row = self.session().query_one(
            "INSERT INTO products (sku, name, price, stock_on_hand, active, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)
             RETURNING id",
            &[
                &new.sku.as_str(),
                &new.name,
                &new.price.minor(),
                &new.stock_on_hand,
                &new.active,
                &self.now.millis(),
            ],
        )?;
        let id = ProductId(row.get(0));
        if new.stock_on_hand != 0 {
            self.ledger(id, new.stock_on_hand, 0, Reason::Create, None)?;
        }
        // Built from what was written, not read back (imports add 100k).
        let product = Product {
            id,
            sku: new.sku.clone(),
            name: new.name.clone(),
            price: new.price,
            stock_on_hand: new.stock_on_hand,
            stock_reserved: 0,
            stock_available: new.stock_on_hand,
            active: new.active,
            created_at: self.now,
            updated_at: self.now,
        };
        self.log_change("product.created", "product", id.get(), None, &product)?;
        Ok(product)
    }

    fn set_on_hand(&self, before: &Product, target: i64, reason: Reason) -> Result<()> {
        if target < 0 {
            return Err(Error::invalid(format!(
                "stock of {} cannot go below zero (it has {})",
                before.sku, before.stock_on_hand
            )));
        }
        check_stock(target)?;
        let delta = target - before.stock_on_hand;
        if delta == 0 {
            return Ok(());
        }
        let changed = self.session().execute(
            "UPDATE products SET stock_on_hand = $2, updated_at = $3
             WHERE id = $1 AND stock_reserved <= $2",
            &[&before.id.get(), &target, &self.now.millis()],
        )?;
        if changed != 1 {
            return Err(Error::Conflict(format!(
                "cannot set stock of {} to {target}: {} units are reserved by open orders",
                before.sku, before.stock_reserved
            )));
        }
        self.ledger(before.id, delta, 0, reason, None)?;
        let after = self.product_by_id(before.id)?;
        self.log_change(
            "product.stock_changed",
            "product",
            after.id.get(),
            None,
            &json!({
                "sku": after.sku,
                "delta": delta,
                "reason": reason_name(reason),
                "stock_on_hand": after.stock_on_hand,
                "stock_reserved": after.stock_reserved,
                "stock_available": after.stock_available,
            }),
        )?;
        Ok(())
    }
}

fn check_stock(n: i64) -> Result<()> {
    if (0..=MAX_STOCK).contains(&n) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid stock {n}: must be between 0 and {MAX_STOCK}"
        )))
    }
}

fn reason_name(reason: Reason) -> &'static str {
    match reason {
        Reason::Import => "import",
        _ => "restock",
    }
}

for_conn_and_tx!(ProductReads {
    /// A product by SKU or id.
    fn product(&self, product: &ProductRef) -> Result<Product> {
        get(&mut self.session(), product, self.stored_currency())
    }

    /// Products ordered by id.
    fn products(&self, query: &ProductQuery) -> Result<Vec<Product>> {
        paging::collect(|f| self.for_each_product(query, f))
    }

    /// Streams products ordered by id (bounded memory).
    fn for_each_product(
        &self,
        query: &ProductQuery,
        f: &mut dyn FnMut(Product) -> Result<()>,
    ) -> Result<()> {
        let currency = self.stored_currency();
        Listing {
            table: "products",
            columns: COLUMNS,
            searched: ["name", "sku"],
            after: query.after.map_or(0, ProductId::get),
            search: query.search.as_deref(),
            limit: query.limit,
        }
        .for_each(self, |row| from_row(row, currency), f)
    }
});

impl ProductWrites for Tx<'_> {
    /// Adds a product; its initial stock is a `create` ledger row.
    fn add_product(&self, new: &NewProduct) -> Result<Product> {
        self.atomic(|| {
            self.ensure_sku_free(&new.sku, None)?;
            self.insert_product(new)
        })
    }

    /// Changes name, SKU, price or active flag.
    fn update_product(&self, product: &ProductRef, patch: &ProductPatch) -> Result<Product> {
        self.atomic(|| {
            let before = self.product(product)?;
            if let Some(sku) = &patch.sku {
                self.ensure_sku_free(sku, Some(before.id))?;
            }
            self.session().execute(
                "UPDATE products SET sku = COALESCE($2, sku), name = COALESCE($3, name),
                     price = COALESCE($4, price), active = COALESCE($5, active), updated_at = $6
                 WHERE id = $1",
                &[
                    &before.id.get(),
                    &patch.sku.as_ref().map(Sku::as_str),
                    &patch.name,
                    &patch.price.map(|p| p.minor()),
                    &patch.active,
                    &self.now.millis(),
                ],
            )?;
            let after = self.product_by_id(before.id)?;
            self.log_change("product.updated", "product", after.id.get(), None, &after)?;
            Ok(after)
        })
    }

    /// Adjusts stock on hand. Refused if it would fall below what open
    /// orders have reserved.
    fn restock(&self, product: &ProductRef, how: Restock) -> Result<Product> {
        self.atomic(|| {
            let before = self.product(product)?;
            let target = match how {
                Restock::Add(n) => before.stock_on_hand.checked_add(n),
                Restock::Set(n) => Some(n),
            }
            .ok_or_else(|| Error::invalid("stock adjustment is too large"))?;
            self.set_on_hand(&before, target, Reason::Restock)?;
            self.product_by_id(before.id)
        })
    }

    /// Removes a product that no order mentions; otherwise suggests
    /// deactivating it.
    fn remove_product(&self, product: &ProductRef) -> Result<Product> {
        self.atomic(|| {
            let p = self.product(product)?;
            let orders: i64 = self
                .session()
                .query_one(
                    "SELECT count(*) FROM order_items WHERE product_id = $1",
                    &[&p.id.get()],
                )?
                .get(0);
            if orders > 0 {
                return Err(Error::Conflict(format!(
                    "product {} appears on {orders} order line(s) and cannot be removed; deactivate it with `oms product update {} --active false`",
                    p.sku, p.sku
                )));
            }
            self.session()
                .execute("DELETE FROM products WHERE id = $1", &[&p.id.get()])?;
            self.log_change("product.deleted", "product", p.id.get(), None, &json!({"sku": p.sku}))?;
            Ok(p)
        })
    }

    /// Creates or updates the product with this SKU (CSV import). Stock on
    /// hand is set only when given; `active` defaults to true for new
    /// products and is left alone otherwise.
    fn upsert_product(
        &self,
        sku: &Sku,
        name: &str,
        price: Money,
        stock_on_hand: Option<i64>,
        active: Option<bool>,
    ) -> Result<Upserted> {
        self.atomic(|| {
            // Matched by SKU only (never by id); a miss means the SKU is
            // free, so the insert needs no second lookup.
            let found = find_by_sku(&mut self.session(), sku.as_str(), self.currency)?;
            match found {
                None => {
                    self.insert_product(&NewProduct {
                        sku: sku.clone(),
                        name: name.to_string(),
                        price,
                        stock_on_hand: stock_on_hand.unwrap_or(0),
                        active: active.unwrap_or(true),
                    })?;
                    Ok(Upserted::Created)
                }
                Some(before) => {
                    let fields_same = before.name == name
                        && before.price == price
                        && active.is_none_or(|a| a == before.active);
                    let stock_same = stock_on_hand.is_none_or(|s| s == before.stock_on_hand);
                    if fields_same && stock_same {
                        return Ok(Upserted::Unchanged);
                    }
                    if !fields_same {
                        self.update_product(
                            &ProductRef::Id(before.id),
                            &ProductPatch {
                                sku: None,
                                name: Some(name.to_string()),
                                price: Some(price),
                                active,
                            },
                        )?;
                    }
                    if let Some(target) = stock_on_hand {
                        self.set_on_hand(&before, target, Reason::Import)?;
                    }
                    Ok(Upserted::Updated)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdb::TestDb;
    use crate::prelude::*;
    use crate::store::Upserted;
    use crate::{Actor, NewProduct, ProductRef, Restock, Sku};

    /// The product returned by add is built in memory; it must be what
    /// reading it back gives (booleans and bigints round-trip).
    #[test]
    fn added_product_equals_the_stored_one() {
        let Some(scratch) = TestDb::create("added_product_equals_the_stored_one") else {
            return;
        };
        let db = scratch.open();
        let added = db
            .write(&Actor::cli(), |tx| {
                tx.add_product(&NewProduct {
                    sku: Sku::parse("A-1")?,
                    name: "Apple".into(),
                    price: tx.currency().parse_amount("2.50")?,
                    stock_on_hand: 7,
                    active: false,
                })
            })
            .unwrap();
        assert_eq!(db.product(&ProductRef::Id(added.id)).unwrap(), added);
    }

    /// An upsert reads the product, then updates it and sets its stock
    /// through other methods of the same transaction: no session borrow
    /// may outlive the read (that would panic), and both changes land.
    #[test]
    fn an_upsert_updates_fields_and_stock_in_one_transaction() {
        let Some(scratch) = TestDb::create("an_upsert_updates_fields_and_stock") else {
            return;
        };
        let db = scratch.open();
        let sku = Sku::parse("A-1").unwrap();
        let upserted = |name: &str, stock: Option<i64>| {
            db.write(&Actor::cli(), |tx| {
                let price = tx.currency().parse_amount("1.00")?;
                tx.upsert_product(&sku, name, price, stock, None)
            })
            .unwrap()
        };
        assert_eq!(upserted("Apple", Some(3)), Upserted::Created);
        assert_eq!(upserted("Apple", Some(3)), Upserted::Unchanged);
        assert_eq!(upserted("Green apple", Some(5)), Upserted::Updated);
        let p = db.product(&ProductRef::Key("A-1".into())).unwrap();
        assert_eq!((p.name.as_str(), p.stock_on_hand), ("Green apple", 5));
        // A refused restock writes nothing, and the shop still verifies.
        let err = db
            .write(&Actor::cli(), |tx| {
                tx.restock(&ProductRef::Id(p.id), Restock::Add(-6))
            })
            .unwrap_err();
        assert!(err.to_string().contains("cannot go below zero"), "{err}");
        assert!(db.verify().unwrap().problems.is_empty());
    }
}
