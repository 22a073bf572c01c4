//! User accounts. A customer user is linked to the customer record with the
//! same e-mail (created if missing). Password hashes never leave this module
//! except through `credentials`, for the login check.
//!
//! Tokens: every user row carries a random token generation that a token
//! must repeat to be honoured ([`TokenGrant`]). Changing the password or the
//! role draws a new one in the same transaction as the change, and removing
//! the user deletes the row, so from the commit on no earlier token matches.
//!
//! E-mails are matched as `lower(email) = lower($1)`, the expression of the
//! schema's unique index (see `customers`).

use postgres::Row;
use serde_json::json;

use super::session::Session;
use super::{Access, Tx};
use crate::store::{CustomerWrites, UserReads, UserWrites};
use crate::{
    Credentials, CustomerId, CustomerRef, Error, NewCustomer, NewUser, Result, Role, Timestamp,
    TokenGrant, User, UserId, UserPatch,
};

const COLUMNS: &str = "id, email, name, role, customer_id, created_at, token_generation";

/// A new token generation: 64 random bits as a signed `bigint`, like
/// SQLite's `random()`. They come from two `gen_random_uuid()`s (the
/// server's strong random source), whose first 8 hex digits are random in
/// every version-4 UUID.
macro_rules! new_generation {
    () => {
        "('x' || left(gen_random_uuid()::text, 8) || left(gen_random_uuid()::text, 8))::bit(64)::bigint"
    };
}

fn parse_role(text: &str) -> Role {
    if text == "admin" {
        Role::Admin
    } else {
        Role::Customer
    }
}

fn from_row(r: &Row) -> User {
    User {
        id: UserId(r.get(0)),
        email: r.get(1),
        name: r.get(2),
        role: parse_role(r.get(3)),
        customer_id: r.get::<_, Option<i64>>(4).map(CustomerId),
        created_at: Timestamp::from_millis(r.get(5)),
    }
}

/// The grant of a row read with [`COLUMNS`].
fn grant_from_row(r: &Row) -> TokenGrant {
    TokenGrant {
        user: UserId(r.get(0)),
        role: parse_role(r.get(3)),
        customer_id: r.get::<_, Option<i64>>(4).map(CustomerId),
        generation: generation_text(r.get(6)),
    }
}

/// The generation as it appears in a token: 16 hex digits.
fn generation_text(generation: i64) -> String {
    format!("{:016x}", generation as u64)
}

fn find(s: &mut Session, email: &str) -> Result<Option<User>> {
    let row = s.query_opt(
        &format!("SELECT {COLUMNS} FROM users WHERE lower(email) = lower($1)"),
        &[&email],
    )?;
    Ok(row.as_ref().map(from_row))
}

fn get(s: &mut Session, email: &str) -> Result<User> {
    find(s, email)?.ok_or_else(|| Error::not_found("user", email))
}

impl Tx<'_> {
    /// The customer record a customer user with this e-mail is linked to:
    /// the one with the same e-mail, created (with `name`) if missing.
    fn customer_for_user(&self, email: &str, name: &str) -> Result<CustomerId> {
        let by_email = CustomerRef::Email(email.to_string());
        let found = super::customers::find(&mut self.session(), &by_email)?;
        let customer = match found {
            Some(c) => c,
            None => self.add_customer(&NewCustomer {
                name: name.to_string(),
                email: email.to_string(),
                phone: None,
            })?,
        };
        Ok(customer.id)
    }

    fn user_by_email(&self, email: &str) -> Result<User> {
        get(&mut self.session(), email)
    }
}

for_conn_and_tx!(UserReads {
    fn find_user(&self, email: &str) -> Result<Option<User>> {
        find(&mut self.session(), email)
    }

    /// A user by e-mail.
    fn user(&self, email: &str) -> Result<User> {
        get(&mut self.session(), email)
    }

    /// All users ordered by id.
    fn users(&self) -> Result<Vec<User>> {
        let rows = self
            .session()
            .query(&format!("SELECT {COLUMNS} FROM users ORDER BY id"), &[])?;
        Ok(rows.iter().map(from_row).collect())
    }

    /// A user, its password hash (if it has one) and its current token
    /// grant, for the login check and for minting tokens.
    fn credentials(&self, email: &str) -> Result<Option<Credentials>> {
        let row = self.session().query_opt(
            &format!(
                "SELECT {COLUMNS}, password_hash FROM users WHERE lower(email) = lower($1)"
            ),
            &[&email],
        )?;
        Ok(row.map(|r| Credentials {
            user: from_row(&r),
            password_hash: r.get(7),
            grant: grant_from_row(&r),
        }))
    }

    /// What a token of user `id` must match now; `None` once the user is
    /// removed. One primary-key lookup: the daemon runs it on every
    /// authenticated request.
    fn token_grant(&self, id: UserId) -> Result<Option<TokenGrant>> {
        let row = self.session().query_opt(
            &format!("SELECT {COLUMNS} FROM users WHERE id = $1"),
            &[&id.get()],
        )?;
        Ok(row.as_ref().map(grant_from_row))
    }
});

impl UserWrites for Tx<'_> {
    /// Adds a user. A customer user is linked to the customer with its
    /// e-mail, which is created (with the user's name) if missing.
    fn add_user(&self, new: &NewUser) -> Result<User> {
        self.atomic(|| {
            if self.find_user(&new.email)?.is_some() {
                return Err(Error::Duplicate {
                    what: "user email",
                    value: new.email.clone(),
                });
            }
            let customer_id = match new.role {
                Role::Admin => None,
                Role::Customer => Some(self.customer_for_user(&new.email, &new.name)?),
            };
            self.session().execute(
                concat!(
                    "INSERT INTO users (email, name, role, customer_id, password_hash, created_at,
                                        token_generation)
                     VALUES ($1, $2, $3, $4, $5, $6, ",
                    new_generation!(),
                    ")"
                ),
                &[
                    &new.email,
                    &new.name,
                    &new.role.as_str(),
                    &customer_id.map(CustomerId::get),
                    &new.password_hash,
                    &self.now.millis(),
                ],
            )?;
            let user = self.user_by_email(&new.email)?;
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
            let user = self.user_by_email(email)?;
            self.session().execute(
                concat!(
                    "UPDATE users SET password_hash = $2, token_generation = ",
                    new_generation!(),
                    " WHERE id = $1"
                ),
                &[&user.id.get(), &password_hash],
            )?;
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
            let before = self.user_by_email(email)?;
            let name = patch.name.clone().unwrap_or_else(|| before.name.clone());
            let role = patch.role.unwrap_or(before.role);
            let role_changed = role != before.role;
            let customer_id = match (role_changed, role) {
                (false, _) => before.customer_id,
                (true, Role::Admin) => None,
                (true, Role::Customer) => Some(self.customer_for_user(&before.email, &name)?),
            };
            self.session().execute(
                concat!(
                    "UPDATE users SET name = $2, role = $3, customer_id = $4,
                         token_generation = CASE WHEN $5 THEN ",
                    new_generation!(),
                    " ELSE token_generation END
                     WHERE id = $1"
                ),
                &[
                    &before.id.get(),
                    &name,
                    &role.as_str(),
                    &customer_id.map(CustomerId::get),
                    &role_changed,
                ],
            )?;
            let user = self.user_by_email(email)?;
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
            let user = self.user_by_email(email)?;
            self.session()
                .execute("DELETE FROM users WHERE id = $1", &[&user.id.get()])?;
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
    use super::super::testdb::TestDb;
    use crate::prelude::*;
    use crate::{Actor, Db, Error, NewUser, Role, UserPatch};

    fn add(db: &Db, email: &str, role: Role) {
        db.write(&Actor::cli(), |tx| {
            tx.add_user(&NewUser {
                email: email.into(),
                name: "U".into(),
                role,
                password_hash: None,
            })
        })
        .unwrap();
    }

    fn grant(db: &Db) -> crate::TokenGrant {
        let user = db.user("u@example.com").unwrap();
        db.token_grant(user.id).unwrap().unwrap()
    }

    /// The generations drawn on the server: 16 hex digits, new on a
    /// password or role change, kept on a rename; a role change relinks
    /// the customer record.
    #[test]
    fn generations_and_role_changes() {
        let Some(scratch) = TestDb::create("generations_and_role_changes") else {
            return;
        };
        let db = scratch.open();
        add(&db, "u@example.com", Role::Customer);
        let first = grant(&db);
        assert_eq!(first.generation.len(), 16);
        assert!(first.customer_id.is_some());

        db.write(&Actor::cli(), |tx| tx.set_password("U@EXAMPLE.COM", "x"))
            .unwrap();
        let second = grant(&db);
        assert_ne!(second.generation, first.generation);

        let to = |role| UserPatch {
            role: Some(role),
            ..UserPatch::default()
        };
        let user = db
            .write(&Actor::cli(), |tx| {
                tx.update_user("u@example.com", &to(Role::Admin))
            })
            .unwrap();
        assert_eq!((user.role, user.customer_id), (Role::Admin, None));
        let third = grant(&db);
        assert_ne!(third.generation, second.generation);

        let user = db
            .write(&Actor::cli(), |tx| {
                tx.update_user("u@example.com", &to(Role::Customer))
            })
            .unwrap();
        assert_eq!(user.customer_id, first.customer_id);

        let fourth = grant(&db);
        let renamed = UserPatch {
            name: Some("New name".into()),
            role: None,
        };
        db.write(&Actor::cli(), |tx| {
            tx.update_user("u@example.com", &renamed)
        })
        .unwrap();
        assert_eq!(grant(&db), fourth);

        db.write(&Actor::cli(), |tx| tx.remove_user("u@example.com"))
            .unwrap();
        assert_eq!(db.token_grant(first.user).unwrap(), None);
    }

    /// A second spelling of an e-mail in another case is a duplicate user.
    #[test]
    fn user_emails_match_in_any_case() {
        let Some(scratch) = TestDb::create("user_emails_match_in_any_case") else {
            return;
        };
        let db = scratch.open();
        add(&db, "zoë@example.com", Role::Admin);
        let err = db
            .write(&Actor::cli(), |tx| {
                tx.add_user(&NewUser {
                    email: "ZOË@example.com".into(),
                    name: "Z".into(),
                    role: Role::Admin,
                    password_hash: None,
                })
            })
            .unwrap_err();
        assert!(matches!(err, Error::Duplicate { .. }), "{err:?}");
        assert!(db.credentials("Zoë@Example.com").unwrap().is_some());
    }
}
