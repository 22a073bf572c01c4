//! User accounts. A customer user is linked to the customer record with the
//! same e-mail (created if missing). Password hashes never leave this module
//! except through [`Store::credentials`], for the login check.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::json;

use super::{Store, WriteTx};
use crate::{
    CustomerId, CustomerRef, Error, NewCustomer, NewUser, Result, Role, Timestamp, User, UserId,
};

const COLUMNS: &str = "id, email, name, role, customer_id, created_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<User> {
    let role: String = r.get(3)?;
    Ok(User {
        id: UserId(r.get(0)?),
        email: r.get(1)?,
        name: r.get(2)?,
        role: if role == "admin" {
            Role::Admin
        } else {
            Role::Customer
        },
        customer_id: r.get::<_, Option<i64>>(4)?.map(CustomerId),
        created_at: Timestamp::from_millis(r.get(5)?),
    })
}

fn find(conn: &Connection, email: &str) -> Result<Option<User>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM users WHERE email = ?1 COLLATE NOCASE"
        ))?
        .query_row([email], from_row)
        .optional()?)
}

impl Store {
    /// A user by e-mail.
    pub fn user(&self, email: &str) -> Result<User> {
        find(&self.conn, email)?.ok_or_else(|| Error::not_found("user", email))
    }

    /// All users ordered by id.
    pub fn users(&self) -> Result<Vec<User>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM users ORDER BY id"))?;
        let rows = stmt.query_map([], from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A user and its password hash (if it has one), for the login check.
    pub fn credentials(&self, email: &str) -> Result<Option<(User, Option<String>)>> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS}, password_hash FROM users WHERE email = ?1 COLLATE NOCASE"
            ))?
            .query_row([email], |r| Ok((from_row(r)?, r.get(6)?)))
            .optional()?)
    }
}

impl WriteTx<'_> {
    /// A user by e-mail, if there is one.
    pub fn find_user(&self, email: &str) -> Result<Option<User>> {
        find(self.conn, email)
    }

    /// Adds a user. A customer user is linked to the customer with its
    /// e-mail, which is created (with the user's name) if missing.
    pub fn add_user(&self, new: &NewUser) -> Result<User> {
        self.atomic(|| {
            if find(self.conn, &new.email)?.is_some() {
                return Err(Error::Duplicate {
                    what: "user email",
                    value: new.email.clone(),
                });
            }
            let customer_id = match new.role {
                Role::Admin => None,
                Role::Customer => {
                    let email = CustomerRef::Email(new.email.clone());
                    let customer = match super::customers::find(self.conn, &email)? {
                        Some(c) => c,
                        None => self.add_customer(&NewCustomer {
                            name: new.name.clone(),
                            email: new.email.clone(),
                            phone: None,
                        })?,
                    };
                    Some(customer.id)
                }
            };
            self.conn
                .prepare_cached(
                    "INSERT INTO users (email, name, role, customer_id, password_hash, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    new.email,
                    new.name,
                    new.role.as_str(),
                    customer_id.map(CustomerId::get),
                    new.password_hash,
                    self.now.millis()
                ])?;
            let user = find(self.conn, &new.email)?
                .ok_or_else(|| Error::Database("user vanished after insert".into()))?;
            self.log_change(
                "user.created",
                "user",
                user.id.get(),
                customer_id,
                &json!({"email": user.email, "role": user.role}),
            )?;
            Ok(user)
        })
    }

    /// Replaces a user's password hash.
    pub fn set_password(&self, email: &str, password_hash: &str) -> Result<User> {
        self.atomic(|| {
            let user = find(self.conn, email)?.ok_or_else(|| Error::not_found("user", email))?;
            self.conn
                .prepare_cached("UPDATE users SET password_hash = ?2 WHERE id = ?1")?
                .execute(params![user.id.get(), password_hash])?;
            self.log_change(
                "user.updated",
                "user",
                user.id.get(),
                user.customer_id,
                &json!({"email": user.email, "password_changed": true}),
            )?;
            Ok(user)
        })
    }

    /// Removes a login (its customer record and orders stay).
    pub fn remove_user(&self, email: &str) -> Result<User> {
        self.atomic(|| {
            let user = find(self.conn, email)?.ok_or_else(|| Error::not_found("user", email))?;
            self.conn
                .prepare_cached("DELETE FROM users WHERE id = ?1")?
                .execute([user.id.get()])?;
            self.log_change(
                "user.deleted",
                "user",
                user.id.get(),
                user.customer_id,
                &json!({"email": user.email}),
            )?;
            Ok(user)
        })
    }
}
