//! Users (stub: being ported).
use super::{Access, Tx, pending};
use crate::store::{UserReads, UserWrites};
use crate::{Credentials, NewUser, Result, TokenGrant, User, UserId, UserPatch};

for_conn_and_tx!(UserReads {
    fn user(&self, _email: &str) -> Result<User> {
        Err(pending())
    }
    fn find_user(&self, _email: &str) -> Result<Option<User>> {
        Err(pending())
    }
    fn users(&self) -> Result<Vec<User>> {
        Err(pending())
    }
    fn credentials(&self, _email: &str) -> Result<Option<Credentials>> {
        Err(pending())
    }
    fn token_grant(&self, _id: UserId) -> Result<Option<TokenGrant>> {
        Err(pending())
    }
});

impl UserWrites for Tx<'_> {
    fn add_user(&self, _new: &NewUser) -> Result<User> {
        Err(pending())
    }
    fn set_password(&self, _email: &str, _password_hash: &str) -> Result<User> {
        Err(pending())
    }
    fn update_user(&self, _email: &str, _patch: &UserPatch) -> Result<User> {
        Err(pending())
    }
    fn remove_user(&self, _email: &str) -> Result<User> {
        Err(pending())
    }
}
