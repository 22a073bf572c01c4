//! Payments (stub: being ported).
use super::session::Session;
use super::{Access, Tx, pending};
use crate::payment::{Delivery, DeliveryOutcome, Payment, PaymentFilter};
use crate::store::{PaymentReads, PaymentWrites};
use crate::{OrderId, PaymentId, Result};

for_conn_and_tx!(PaymentReads {
    fn payment(&self, _id: PaymentId) -> Result<Payment> {
        Err(pending())
    }
    fn payments(&self, _filter: &PaymentFilter) -> Result<Vec<Payment>> {
        Err(pending())
    }
});

impl PaymentWrites for Tx<'_> {
    fn apply_payment_event(&self, _delivery: &Delivery) -> Result<DeliveryOutcome> {
        Err(pending())
    }
    fn record_manual_payment(
        &self,
        _order_id: OrderId,
        _amount: &str,
        _reference: Option<&str>,
    ) -> Result<Payment> {
        Err(pending())
    }
}

/// How many payments name this order.
pub(crate) fn count_for_order(_s: &mut Session, _order: OrderId) -> Result<i64> {
    Err(pending())
}
