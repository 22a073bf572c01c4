//! Customers. E-mail addresses are unique without regard to letter case.
//!
//! The schema's unique index is on `lower(email)`, so lookups by e-mail
//! compare `lower(email) = lower($1)`: the check before a write then sees
//! exactly the conflicts the index would reject (a failed statement would
//! abort the transaction), and uses that index. PostgreSQL's `lower` folds
//! every cased script, where SQLite's `COLLATE NOCASE` folds only ASCII.

use postgres::Row;
use serde_json::json;

use super::paging::{self, Listing};
use super::session::Session;
use super::{Access, Tx};
use crate::store::{CustomerQuery, CustomerReads, CustomerWrites, MAX_CUSTOMER_IDS, Upserted};
use crate::{
    Customer, CustomerId, CustomerPatch, CustomerRef, Error, NewCustomer, Result, Timestamp,
};

const COLUMNS: &str = "id, name, email, phone, created_at, updated_at";

fn from_row(r: &Row) -> Customer {
    Customer {
        id: CustomerId(r.get(0)),
        name: r.get(1),
        email: r.get(2),
        phone: r.get(3),
        created_at: Timestamp::from_millis(r.get(4)),
        updated_at: Timestamp::from_millis(r.get(5)),
    }
}

pub(crate) fn find(s: &mut Session, customer: &CustomerRef) -> Result<Option<Customer>> {
    let row = match customer {
        CustomerRef::Id(id) => s.query_opt(
            &format!("SELECT {COLUMNS} FROM customers WHERE id = $1"),
            &[&id.get()],
        )?,
        CustomerRef::Email(email) => s.query_opt(
            &format!("SELECT {COLUMNS} FROM customers WHERE lower(email) = lower($1)"),
            &[email],
        )?,
    };
    Ok(row.as_ref().map(from_row))
}

pub(crate) fn get(s: &mut Session, customer: &CustomerRef) -> Result<Customer> {
    find(s, customer)?.ok_or_else(|| Error::not_found("customer", customer))
}

impl Tx<'_> {
    fn ensure_email_free(&self, email: &str, except: Option<CustomerId>) -> Result<()> {
        let found = find(&mut self.session(), &CustomerRef::Email(email.to_string()))?;
        match found {
            Some(c) if Some(c.id) != except => Err(Error::Duplicate {
                what: "customer email",
                value: email.to_string(),
            }),
            _ => Ok(()),
        }
    }
}

for_conn_and_tx!(CustomerReads {
    /// A customer by id or e-mail.
    fn customer(&self, customer: &CustomerRef) -> Result<Customer> {
        get(&mut self.session(), customer)
    }

    /// Customers ordered by id.
    fn customers(&self, query: &CustomerQuery) -> Result<Vec<Customer>> {
        paging::collect(|f| self.for_each_customer(query, f))
    }

    /// The customers with these ids, ordered by id; ids that name no
    /// customer are left out. At most 500 ids are looked up.
    fn customers_by_ids(&self, ids: &[CustomerId]) -> Result<Vec<Customer>> {
        let mut ids: Vec<i64> = ids.iter().map(|id| id.get()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.truncate(MAX_CUSTOMER_IDS);
        let rows = self.session().query(
            &format!("SELECT {COLUMNS} FROM customers WHERE id = ANY($1) ORDER BY id"),
            &[&ids],
        )?;
        Ok(rows.iter().map(from_row).collect())
    }

    /// Streams customers ordered by id (bounded memory).
    fn for_each_customer(
        &self,
        query: &CustomerQuery,
        f: &mut dyn FnMut(Customer) -> Result<()>,
    ) -> Result<()> {
        Listing {
            table: "customers",
            columns: COLUMNS,
            searched: ["name", "email"],
            after: query.after.map_or(0, CustomerId::get),
            search: query.search.as_deref(),
            limit: query.limit,
        }
        .for_each(self, from_row, f)
    }
});

impl CustomerWrites for Tx<'_> {
    /// Adds a customer.
    fn add_customer(&self, new: &NewCustomer) -> Result<Customer> {
        self.atomic(|| {
            self.ensure_email_free(&new.email, None)?;
            let row = self.session().query_one(
                "INSERT INTO customers (name, email, phone, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $4)
                 RETURNING id",
                &[&new.name, &new.email, &new.phone, &self.now.millis()],
            )?;
            let id = CustomerId(row.get(0));
            let customer = self.customer(&CustomerRef::Id(id))?;
            self.log_change(
                "customer.created",
                "customer",
                id.get(),
                Some(id),
                &customer,
            )?;
            Ok(customer)
        })
    }

    /// Changes name, e-mail or phone.
    fn update_customer(&self, customer: &CustomerRef, patch: &CustomerPatch) -> Result<Customer> {
        self.atomic(|| {
            let before = self.customer(customer)?;
            if let Some(email) = &patch.email {
                self.ensure_email_free(email, Some(before.id))?;
            }
            let phone = match &patch.phone {
                Some(p) => p.clone(),
                None => before.phone.clone(),
            };
            self.session().execute(
                "UPDATE customers SET name = COALESCE($2, name), email = COALESCE($3, email),
                     phone = $4, updated_at = $5
                 WHERE id = $1",
                &[
                    &before.id.get(),
                    &patch.name,
                    &patch.email,
                    &phone,
                    &self.now.millis(),
                ],
            )?;
            let after = self.customer(&CustomerRef::Id(before.id))?;
            if let Some(email) = &patch.email {
                // Keep a linked login's e-mail in step with its customer.
                self.session().execute(
                    "UPDATE users SET email = $2 WHERE customer_id = $1",
                    &[&before.id.get(), email],
                )?;
            }
            self.log_change(
                "customer.updated",
                "customer",
                after.id.get(),
                Some(after.id),
                &after,
            )?;
            Ok(after)
        })
    }

    /// Removes a customer without orders or a login.
    fn remove_customer(&self, customer: &CustomerRef) -> Result<Customer> {
        self.atomic(|| {
            let c = self.customer(customer)?;
            let row = self.session().query_one(
                "SELECT (SELECT count(*) FROM orders WHERE customer_id = $1),
                        (SELECT count(*) FROM users WHERE customer_id = $1)",
                &[&c.id.get()],
            )?;
            let (orders, users): (i64, i64) = (row.get(0), row.get(1));
            if orders > 0 {
                return Err(Error::Conflict(format!(
                    "customer {} has {orders} order(s) and cannot be removed",
                    c.email
                )));
            }
            if users > 0 {
                return Err(Error::Conflict(format!(
                    "customer {} has a login; remove it first with `oms user remove {}`",
                    c.email, c.email
                )));
            }
            self.session()
                .execute("DELETE FROM customers WHERE id = $1", &[&c.id.get()])?;
            self.log_change(
                "customer.deleted",
                "customer",
                c.id.get(),
                Some(c.id),
                &json!({"email": c.email}),
            )?;
            Ok(c)
        })
    }

    /// Creates or updates the customer with this e-mail (CSV import).
    /// `phone: None` leaves an existing phone alone.
    fn upsert_customer(&self, new: &NewCustomer) -> Result<Upserted> {
        self.atomic(|| {
            let found = find(&mut self.session(), &CustomerRef::Email(new.email.clone()))?;
            match found {
                None => {
                    self.add_customer(new)?;
                    Ok(Upserted::Created)
                }
                Some(before) => {
                    let phone_same = new.phone.is_none() || new.phone == before.phone;
                    if before.name == new.name && phone_same {
                        return Ok(Upserted::Unchanged);
                    }
                    self.update_customer(
                        &CustomerRef::Id(before.id),
                        &CustomerPatch {
                            name: Some(new.name.clone()),
                            email: None,
                            phone: new.phone.clone().map(Some),
                        },
                    )?;
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
    use crate::{Actor, CustomerId, CustomerRef, Error, NewCustomer};

    fn new(name: &str, email: &str) -> NewCustomer {
        NewCustomer {
            name: name.into(),
            email: email.into(),
            phone: None,
        }
    }

    /// E-mails are matched as the unique index compares them: a second
    /// spelling in another case is a duplicate (not a failed statement),
    /// and finds the first one.
    #[test]
    fn emails_match_in_any_case() {
        let Some(scratch) = TestDb::create("emails_match_in_any_case") else {
            return;
        };
        let db = scratch.open();
        let zoe = db
            .write(&Actor::cli(), |tx| {
                tx.add_customer(&new("Zoë", "zoë@example.com"))
            })
            .unwrap();
        let err = db
            .write(&Actor::cli(), |tx| {
                tx.add_customer(&new("Z", "ZOË@EXAMPLE.COM"))
            })
            .unwrap_err();
        assert!(matches!(err, Error::Duplicate { .. }), "{err:?}");
        let found = db
            .customer(&CustomerRef::Email("Zoë@Example.com".into()))
            .unwrap();
        assert_eq!(found, zoe);
        // An upsert in another case updates the same customer.
        let upserted = db
            .write(&Actor::cli(), |tx| {
                tx.upsert_customer(&new("Zoë Ünal", "ZOË@example.com"))
            })
            .unwrap();
        assert_eq!(upserted, Upserted::Updated);
        let after = db.customer(&CustomerRef::Id(zoe.id)).unwrap();
        assert_eq!(
            (after.name.as_str(), after.email.as_str()),
            ("Zoë Ünal", "zoë@example.com")
        );
    }

    /// Ids are looked up at once: sorted, without duplicates or unknown ids.
    #[test]
    fn customers_by_ids_sorts_and_skips() {
        let Some(scratch) = TestDb::create("customers_by_ids_sorts_and_skips") else {
            return;
        };
        let db = scratch.open();
        let (a, b) = db
            .write(&Actor::cli(), |tx| {
                let a = tx.add_customer(&new("A", "a@example.com"))?;
                let b = tx.add_customer(&new("B", "b@example.com"))?;
                Ok((a.id, b.id))
            })
            .unwrap();
        let found = db
            .customers_by_ids(&[b, CustomerId(999_999), a, b])
            .unwrap();
        let ids: Vec<CustomerId> = found.iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![a, b]);
        assert!(db.customers_by_ids(&[]).unwrap().is_empty());
    }
}
