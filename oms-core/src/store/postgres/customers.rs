//! Customers (stub: being ported).
use super::session::Session;
use super::{Access, Tx, pending};
use crate::store::{CustomerQuery, CustomerReads, CustomerWrites, Upserted};
use crate::{Customer, CustomerId, CustomerPatch, CustomerRef, NewCustomer, Result};

for_conn_and_tx!(CustomerReads {
    fn customer(&self, _customer: &CustomerRef) -> Result<Customer> {
        Err(pending())
    }
    fn customers(&self, _query: &CustomerQuery) -> Result<Vec<Customer>> {
        Err(pending())
    }
    fn customers_by_ids(&self, _ids: &[CustomerId]) -> Result<Vec<Customer>> {
        Err(pending())
    }
    fn for_each_customer(
        &self,
        _query: &CustomerQuery,
        _f: &mut dyn FnMut(Customer) -> Result<()>,
    ) -> Result<()> {
        Err(pending())
    }
});

impl CustomerWrites for Tx<'_> {
    fn add_customer(&self, _new: &NewCustomer) -> Result<Customer> {
        Err(pending())
    }
    fn update_customer(&self, _customer: &CustomerRef, _patch: &CustomerPatch) -> Result<Customer> {
        Err(pending())
    }
    fn remove_customer(&self, _customer: &CustomerRef) -> Result<Customer> {
        Err(pending())
    }
    fn upsert_customer(&self, _new: &NewCustomer) -> Result<Upserted> {
        Err(pending())
    }
}

/// A customer by id or e-mail, if there is one.
pub(crate) fn find(_s: &mut Session, _customer: &CustomerRef) -> Result<Option<Customer>> {
    Err(pending())
}

/// A customer by id or e-mail ([`crate::Error::NotFound`] when there is none).
pub(crate) fn get(_s: &mut Session, _customer: &CustomerRef) -> Result<Customer> {
    Err(pending())
}
