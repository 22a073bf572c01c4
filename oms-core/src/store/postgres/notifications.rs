//! The notification outbox (stub: being ported).
use super::{Access, Tx, pending};
use crate::notification::{
    Backlog, Claim, ClaimedNotification, MailOrder, MailOutcome, Notification, NotificationFilter,
    Recorded,
};
use crate::store::{NotificationReads, NotificationWrites};
use crate::{NotificationId, OrderId, Result, Timestamp};

for_conn_and_tx!(NotificationReads {
    fn notification(&self, _id: NotificationId) -> Result<Notification> {
        Err(pending())
    }
    fn notifications(&self, _filter: &NotificationFilter) -> Result<Vec<Notification>> {
        Err(pending())
    }
    fn notification_backlog(&self, _now: Timestamp) -> Result<Backlog> {
        Err(pending())
    }
    fn mail_orders(&self, _orders: &[OrderId]) -> Result<Vec<MailOrder>> {
        Err(pending())
    }
});

impl NotificationWrites for Tx<'_> {
    fn claim_notifications(&self, _claim: &Claim<'_>) -> Result<Vec<ClaimedNotification>> {
        Err(pending())
    }
    fn record_deliveries(
        &self,
        _owner: &str,
        _outcomes: &[(NotificationId, MailOutcome)],
    ) -> Result<Recorded> {
        Err(pending())
    }
    fn retry_notification(&self, _id: NotificationId) -> Result<Notification> {
        Err(pending())
    }
}

impl Tx<'_> {
    /// Queues the mail about `order`, now in its current status, in the
    /// transaction that changed it (as the SQLite backend's).
    pub(crate) fn enqueue_notification(
        &self,
        _order: &crate::Order,
        _email: Option<&str>,
        _reason: Option<&str>,
    ) -> Result<()> {
        Err(pending())
    }
}
