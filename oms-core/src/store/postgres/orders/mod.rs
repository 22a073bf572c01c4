//! Orders (stub: being ported).
use super::{Access, Tx, pending};
use crate::store::{ExpireOutcome, OrderReads, OrderWrites, PlaceOutcome};
use crate::{
    ItemRequest, NewOrder, Order, OrderExportRow, OrderFilter, OrderId, Result, Status, Timestamp,
};

for_conn_and_tx!(OrderReads {
    fn order(&self, _id: OrderId) -> Result<Order> {
        Err(pending())
    }
    fn order_by_tracking_code(&self, _code: &str) -> Result<Order> {
        Err(pending())
    }
    fn orders(&self, _filter: &OrderFilter) -> Result<Vec<Order>> {
        Err(pending())
    }
    fn for_each_export_row(
        &self,
        _filter: &OrderFilter,
        _f: &mut dyn FnMut(OrderExportRow) -> Result<()>,
    ) -> Result<()> {
        Err(pending())
    }
});

impl OrderWrites for Tx<'_> {
    fn place_order(&self, _new: &NewOrder) -> Result<PlaceOutcome> {
        Err(pending())
    }
    fn place_order_with_status(&self, _new: &NewOrder, _status: Status) -> Result<PlaceOutcome> {
        Err(pending())
    }
    fn edit_order(
        &self,
        _id: OrderId,
        _items: &[ItemRequest],
        _expected_version: Option<i64>,
    ) -> Result<Order> {
        Err(pending())
    }
    fn set_status(
        &self,
        _id: OrderId,
        _to: Status,
        _expected_version: Option<i64>,
    ) -> Result<Order> {
        Err(pending())
    }
    fn remove_order(&self, _id: OrderId) -> Result<Order> {
        Err(pending())
    }
    fn expire_pending(&self, _cutoff: Timestamp) -> Result<ExpireOutcome> {
        Err(pending())
    }
}
