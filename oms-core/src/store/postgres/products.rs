//! Products (stub: being ported).
use super::session::Session;
use super::{Access, Tx, pending};
use crate::store::{ProductQuery, ProductReads, ProductWrites, Upserted};
use crate::{Money, NewProduct, Product, ProductPatch, ProductRef, Restock, Result, Sku};

for_conn_and_tx!(ProductReads {
    fn product(&self, _product: &ProductRef) -> Result<Product> {
        Err(pending())
    }
    fn products(&self, _query: &ProductQuery) -> Result<Vec<Product>> {
        Err(pending())
    }
    fn for_each_product(
        &self,
        _query: &ProductQuery,
        _f: &mut dyn FnMut(Product) -> Result<()>,
    ) -> Result<()> {
        Err(pending())
    }
});

impl ProductWrites for Tx<'_> {
    fn add_product(&self, _new: &NewProduct) -> Result<Product> {
        Err(pending())
    }
    fn update_product(&self, _product: &ProductRef, _patch: &ProductPatch) -> Result<Product> {
        Err(pending())
    }
    fn restock(&self, _product: &ProductRef, _how: Restock) -> Result<Product> {
        Err(pending())
    }
    fn remove_product(&self, _product: &ProductRef) -> Result<Product> {
        Err(pending())
    }
    fn upsert_product(
        &self,
        _sku: &Sku,
        _name: &str,
        _price: Money,
        _stock_on_hand: Option<i64>,
        _active: Option<bool>,
    ) -> Result<Upserted> {
        Err(pending())
    }
}

/// A product by SKU or id, if there is one.
pub(crate) fn find(
    _s: &mut Session,
    _product: &ProductRef,
    _currency: crate::Currency,
) -> Result<Option<Product>> {
    Err(pending())
}

/// A product by SKU or id ([`crate::Error::NotFound`] when there is none).
pub(crate) fn get(
    _s: &mut Session,
    _product: &ProductRef,
    _currency: crate::Currency,
) -> Result<Product> {
    Err(pending())
}
