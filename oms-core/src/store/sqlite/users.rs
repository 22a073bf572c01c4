//! User accounts. A customer user is linked to the customer record with the
//! same e-mail (created if missing). Password hashes never leave this module
//! except through `credentials`, for the login check.
//!
//! Tokens: every user row carries a random token generation that a token
//! must repeat to be honoured ([`TokenGrant`]). Changing the password or the
//! role draws a new one in the same transaction as the change, and removing
//! the user deletes the row, so from the commit on no earlier token matches.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::json;

use super::{Access, Tx};
use crate::store::{CustomerWrites, UserReads, UserWrites};
use crate::{
    Credentials, CustomerId, CustomerRef, Error, NewCustomer, NewUser, Result, Role, Timestamp,
    TokenGrant, User, UserId, UserPatch,
};

const COLUMNS: &str = "id, email, name, role, customer_id, created_at, token_generation";

fn parse_role(text: &str) -> Role {
    if text == "admin" {
        Role::Admin
    } else {
        Role::Customer
    }
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: UserId(r.get(0)?),
        email: r.get(1)?,
        name: r.get(2)?,
        role: parse_role(&r.get::<_, String>(3)?),
        customer_id: r.get::<_, Option<i64>>(4)?.map(CustomerId),
        created_at: Timestamp::from_millis(r.get(5)?),
    })
}

/// The grant of a row read with [`COLUMNS`].
fn grant_from_row(r: &Row<'_>) -> rusqlite::Result<TokenGrant> {
    Ok(TokenGrant {
        user: UserId(r.get(0)?),
        role: parse_role(&r.get::<_, String>(3)?),
        customer_id: r.get::<_, Option<i64>>(4)?.map(CustomerId),
        generation: generation_text(r.get(6)?),
    })
}

/// The generation as it appears in a token: 16 hex digits.
fn generation_text(generation: i64) -> String {
    format!("{:016x}", generation as u64)
}

fn find(conn: &Connection, email: &str) -> Result<Option<User>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM users WHERE email = ?1 COLLATE NOCASE"
        ))?
        .query_row([email], from_row)
        .optional()?)
}

fn get(conn: &Connection, email: &str) -> Result<User> {
    find(conn, email)?.ok_or_else(|| Error::not_found("user", email))
}

impl Tx<'_> {
    /// The customer record a customer user with this e-mail is linked to:
    /// the one with the same e-mail, created (with `name`) if missing.
    fn customer_for_user(&self, email: &str, name: &str) -> Result<CustomerId> {
        let by_email = CustomerRef::Email(email.to_string());
        let customer = match super::customers::find(self.conn, &by_email)? {
            Some(c) => c,
            None => self.add_customer(&NewCustomer {
                name: name.to_string(),
                email: email.to_string(),
                phone: None,
            })?,
        };
        Ok(customer.id)
    }
}

impl<S: Access + ?Sized> UserReads for S {
    fn find_user(&self, email: &str) -> Result<Option<User>> {
        find(self.sql(), email)
    }

    /// A user by e-mail.
    fn user(&self, email: &str) -> Result<User> {
        get(self.sql(), email)
    }

    /// All users ordered by id.
    fn users(&self) -> Result<Vec<User>> {
        let mut stmt = self
            .sql()
            .prepare_cached(&format!("SELECT {COLUMNS} FROM users ORDER BY id"))?;
        let rows = stmt.query_map([], from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A user, its password hash (if it has one) and its current token
    /// grant, for the login check and for minting tokens.
    fn credentials(&self, email: &str) -> Result<Option<Credentials>> {
        Ok(self
            .sql()
            .prepare_cached(&format!(
                "SELECT {COLUMNS}, password_hash FROM users WHERE email = ?1 COLLATE NOCASE"
            ))?
            .query_row([email], |r| {
                Ok(Credentials {
                    user: from_row(r)?,
                    password_hash: r.get(7)?,
                    grant: grant_from_row(r)?,
                })
            })
            .optional()?)
    }

    /// What a token of user `id` must match now; `None` once the user is
    /// removed. One primary-key lookup: the daemon runs it on every
    /// authenticated request.
    fn token_grant(&self, id: UserId) -> Result<Option<TokenGrant>> {
        Ok(self
            .sql()
            .prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE id = ?1"))?
            .query_row([id.get()], grant_from_row)
            .optional()?)
    }
}

impl UserWrites for Tx<'_> {
    /// Adds a user. A customer user is linked to the customer with its
    /// e-mail, which is created (with the user's name) if missing.
    fn add_user(&self, new: &NewUser) -> Result<User> {
        self.atomic(|| {
            if find(self.conn, &new.email)?.is_some() {
                return Err(Error::Duplicate {
                    what: "user email",
                    value: new.email.clone(),
                });
            }
            let customer_id = match new.role {
                Role::Admin => None,
                Role::Customer => Some(self.customer_for_user(&new.email, &new.name)?),
            };
            self.conn
                .prepare_cached(
                    "INSERT INTO users (email, name, role, customer_id, password_hash, created_at,
                                        token_generation)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, random())",
                )?
                .execute(params![
                    new.email,
                    new.name,
                    new.role.as_str(),
                    customer_id.map(CustomerId::get),
                    new.password_hash,
                    self.now.millis()
                ])?;
            let user = get(self.conn, &new.email)?;
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

    /// Replaces a user's password hash. Every token issued before stops
    /// working.
    fn set_password(&self, email: &str, password_hash: &str) -> Result<User> {
        self.atomic(|| {
            let user = get(self.conn, email)?;
            self.conn
                .prepare_cached(
                    "UPDATE users SET password_hash = ?2, token_generation = random() WHERE id = ?1",
                )?
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

    /// Renames a user or changes its role. A customer made admin keeps its
    /// customer record and orders but is no longer linked to them; an admin
    /// made customer is linked like a new customer user. A role change ends
    /// every token issued before; a rename does not.
    fn update_user(&self, email: &str, patch: &UserPatch) -> Result<User> {
        self.atomic(|| {
            let before = get(self.conn, email)?;
            let name = patch.name.clone().unwrap_or_else(|| before.name.clone());
            let role = patch.role.unwrap_or(before.role);
            let role_changed = role != before.role;
            let customer_id = match (role_changed, role) {
                (false, _) => before.customer_id,
                (true, Role::Admin) => None,
                (true, Role::Customer) => Some(self.customer_for_user(&before.email, &name)?),
            };
            self.conn
                .prepare_cached(
                    "UPDATE users SET name = ?2, role = ?3, customer_id = ?4,
                         token_generation = CASE WHEN ?5 THEN random() ELSE token_generation END
                     WHERE id = ?1",
                )?
                .execute(params![
                    before.id.get(),
                    name,
                    role.as_str(),
                    customer_id.map(CustomerId::get),
                    role_changed
                ])?;
            let user = get(self.conn, email)?;
            let mut data = json!({"email": user.email, "name": user.name, "role": user.role});
            if role_changed {
                data["previous_role"] = json!(before.role);
            }
            self.log_change(
                "user.updated",
                "user",
                user.id.get(),
                user.customer_id.or(before.customer_id),
                &data,
            )?;
            Ok(user)
        })
    }

    /// Removes a login (its customer record and orders stay). Every token
    /// issued to it stops working.
    fn remove_user(&self, email: &str) -> Result<User> {
        self.atomic(|| {
            let user = get(self.conn, email)?;
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

#[cfg(test)]
mod tests {
    use crate::prelude::*;
    use crate::{Actor, Db, NewUser, Role, UserPatch};

    fn store_with_user(role: Role) -> Db {
        let store = Db::open_in_memory().unwrap();
        store
            .write(&Actor::cli(), |tx| {
                tx.add_user(&NewUser {
                    email: "u@example.com".into(),
                    name: "U".into(),
                    role,
                    password_hash: None,
                })
            })
            .unwrap();
        store
    }

    fn grant(store: &Db) -> crate::TokenGrant {
        let user = store.user("u@example.com").unwrap();
        store.token_grant(user.id).unwrap().unwrap()
    }

    #[test]
    fn a_password_change_draws_a_new_generation() {
        let store = store_with_user(Role::Admin);
        let before = grant(&store);
        assert_eq!(before.generation.len(), 16);
        store
            .write(&Actor::cli(), |tx| tx.set_password("u@example.com", "x"))
            .unwrap();
        assert_ne!(grant(&store).generation, before.generation);
    }

    #[test]
    fn a_role_change_draws_a_new_generation_and_relinks_the_customer() {
        let store = store_with_user(Role::Customer);
        let before = grant(&store);
        assert!(before.customer_id.is_some());
        let patch = UserPatch {
            role: Some(Role::Admin),
            ..UserPatch::default()
        };
        let user = store
            .write(&Actor::cli(), |tx| tx.update_user("u@example.com", &patch))
            .unwrap();
        assert_eq!((user.role, user.customer_id), (Role::Admin, None));
        let after = grant(&store);
        assert_ne!(after.generation, before.generation);
        assert_eq!(after.role, Role::Admin);

        // Back to customer: linked to the same customer record again.
        let patch = UserPatch {
            role: Some(Role::Customer),
            ..UserPatch::default()
        };
        let user = store
            .write(&Actor::cli(), |tx| tx.update_user("u@example.com", &patch))
            .unwrap();
        assert_eq!(user.customer_id, before.customer_id);
    }

    #[test]
    fn a_rename_keeps_the_generation() {
        let store = store_with_user(Role::Admin);
        let before = grant(&store);
        let patch = UserPatch {
            name: Some("New name".into()),
            role: Some(Role::Admin),
        };
        let user = store
            .write(&Actor::cli(), |tx| tx.update_user("u@example.com", &patch))
            .unwrap();
        assert_eq!(user.name, "New name");
        assert_eq!(grant(&store), before);
    }

    #[test]
    fn a_removed_user_has_no_grant_even_if_its_id_comes_back() {
        let store = store_with_user(Role::Admin);
        let before = grant(&store);
        store
            .write(&Actor::cli(), |tx| tx.remove_user("u@example.com"))
            .unwrap();
        assert_eq!(store.token_grant(before.user).unwrap(), None);
        // SQLite reuses the highest rowid once it is deleted: the new user
        // may get the same id, but never the same generation.
        store
            .write(&Actor::cli(), |tx| {
                tx.add_user(&NewUser {
                    email: "other@example.com".into(),
                    name: "O".into(),
                    role: Role::Admin,
                    password_hash: None,
                })
            })
            .unwrap();
        let other = store.user("other@example.com").unwrap();
        let now = store.token_grant(other.id).unwrap().unwrap();
        assert_ne!(now.generation, before.generation);
    }
}
