//! Customers. E-mail addresses are unique without regard to ASCII case.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::json;

use super::paging::{self, Listing};
use super::{Access, Tx};
use crate::store::{CustomerQuery, CustomerReads, CustomerWrites, MAX_CUSTOMER_IDS, Upserted};
use crate::{
    Customer, CustomerId, CustomerPatch, CustomerRef, Error, NewCustomer, Result, Timestamp,
};

const COLUMNS: &str = "id, name, email, phone, created_at, updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Customer> {
    Ok(Customer {
        id: CustomerId(r.get(0)?),
        name: r.get(1)?,
        email: r.get(2)?,
        phone: r.get(3)?,
        created_at: Timestamp::from_millis(r.get(4)?),
        updated_at: Timestamp::from_millis(r.get(5)?),
    })
}

pub(crate) fn find(conn: &Connection, customer: &CustomerRef) -> Result<Option<Customer>> {
    Ok(match customer {
        CustomerRef::Id(id) => conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM customers WHERE id = ?1"))?
            .query_row([id.get()], from_row)
            .optional()?,
        CustomerRef::Email(email) => conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM customers WHERE email = ?1 COLLATE NOCASE"
            ))?
            .query_row([email], from_row)
            .optional()?,
    })
}

pub(crate) fn get(conn: &Connection, customer: &CustomerRef) -> Result<Customer> {
    find(conn, customer)?.ok_or_else(|| Error::not_found("customer", customer))
}

impl Tx<'_> {
    fn ensure_email_free(&self, email: &str, except: Option<CustomerId>) -> Result<()> {
        match find(self.conn, &CustomerRef::Email(email.to_string()))? {
            Some(c) if Some(c.id) != except => Err(Error::Duplicate {
                what: "customer email",
                value: email.to_string(),
            }),
            _ => Ok(()),
        }
    }
}

impl<S: Access + ?Sized> CustomerReads for S {
    /// A customer by id or e-mail.
    fn customer(&self, customer: &CustomerRef) -> Result<Customer> {
        get(self.sql(), customer)
    }

    /// Customers ordered by id.
    fn customers(&self, query: &CustomerQuery) -> Result<Vec<Customer>> {
        paging::collect(|f| self.for_each_customer(query, f))
    }

    /// The customers with these ids, ordered by id; ids that name no
    /// customer are left out. At most 500 ids are looked up.
    fn customers_by_ids(&self, ids: &[CustomerId]) -> Result<Vec<Customer>> {
        let mut stmt = self
            .sql()
            .prepare_cached(&format!("SELECT {COLUMNS} FROM customers WHERE id = ?1"))?;
        let mut ids: Vec<i64> = ids.iter().map(|id| id.get()).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut out = Vec::with_capacity(ids.len().min(MAX_CUSTOMER_IDS));
        for id in ids.into_iter().take(MAX_CUSTOMER_IDS) {
            if let Some(customer) = stmt.query_row([id], from_row).optional()? {
                out.push(customer);
            }
        }
        Ok(out)
    }

    /// Streams customers ordered by id (constant memory).
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
        .for_each(self.sql(), from_row, f)
    }
}

impl CustomerWrites for Tx<'_> {
    /// Adds a customer.
    fn add_customer(&self, new: &NewCustomer) -> Result<Customer> {
        self.atomic(|| {
            self.ensure_email_free(&new.email, None)?;
            self.conn
                .prepare_cached(
                    "INSERT INTO customers (name, email, phone, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?4)",
                )?
                .execute(params![new.name, new.email, new.phone, self.now.millis()])?;
            let id = CustomerId(self.conn.last_insert_rowid());
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
            self.conn
                .prepare_cached(
                    "UPDATE customers SET name = COALESCE(?2, name), email = COALESCE(?3, email),
                         phone = ?4, updated_at = ?5
                     WHERE id = ?1",
                )?
                .execute(params![
                    before.id.get(),
                    patch.name,
                    patch.email,
                    phone,
                    self.now.millis()
                ])?;
            let after = self.customer(&CustomerRef::Id(before.id))?;
            if let Some(email) = &patch.email {
                // Keep a linked login's e-mail in step with its customer.
                self.conn
                    .prepare_cached("UPDATE users SET email = ?2 WHERE customer_id = ?1")?
                    .execute(params![before.id.get(), email])?;
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
            let (orders, users): (i64, i64) = self
                .conn
                .prepare_cached(
                    "SELECT (SELECT count(*) FROM orders WHERE customer_id = ?1),
                            (SELECT count(*) FROM users WHERE customer_id = ?1)",
                )?
                .query_row([c.id.get()], |r| Ok((r.get(0)?, r.get(1)?)))?;
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
            self.conn
                .prepare_cached("DELETE FROM customers WHERE id = ?1")?
                .execute([c.id.get()])?;
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
        self.atomic(
            || match find(self.conn, &CustomerRef::Email(new.email.clone()))? {
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
            },
        )
    }
}
