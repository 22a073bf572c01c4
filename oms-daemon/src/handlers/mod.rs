//! Request handlers, one module per resource. Each receives a [`Ctx`]
//! whose `access` was decided by `routes::authorize` before it runs.

mod account;
mod changes;
mod customers;
mod dashboard;
mod misc;
mod notifications;
mod orders;
mod payments;
mod products;
mod session;
mod stream;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use hyper::Request;
use hyper::body::Incoming;

use crate::App;
use crate::http::Response;
use crate::problem::Problem;
use crate::routes::{Access, Route};

/// What every handler gets.
pub struct Ctx<'a> {
    /// Shared state; an `Arc` so an answer that outlives the handler (an
    /// event stream) can keep it.
    pub app: &'a std::sync::Arc<App>,
    pub access: Access,
    /// The `{id}` or `{tracking_code}` of the path.
    pub param: Option<String>,
    pub peer: SocketAddr,
}

impl Ctx<'_> {
    /// The path parameter as a positive integer id (404 otherwise: a
    /// malformed id names nothing).
    pub fn id(&self) -> Result<i64, Problem> {
        self.param
            .as_deref()
            .and_then(|p| p.parse::<i64>().ok())
            .filter(|id| *id > 0)
            .ok_or_else(|| Problem::not_found("no such resource"))
    }
}

/// Runs `bytes` through the decoder of every JSON request body (the same
/// functions the handlers call: strict parsing, refusal of unknown and
/// server-set fields, then value validation) and counts the bodies that
/// were accepted. For the fuzz targets and their corpus replay.
pub fn decode_bodies_for_fuzzing(bytes: &[u8]) -> usize {
    let accepted = [
        &orders::decode_for_fuzzing(bytes)[..],
        &products::decode_for_fuzzing(bytes)[..],
        &customers::decode_for_fuzzing(bytes)[..],
        &account::decode_for_fuzzing(bytes)[..],
        &[crate::webhook::decode_razorpay(bytes, None).is_ok()][..],
    ];
    accepted
        .iter()
        .flat_map(|a| a.iter())
        .filter(|ok| **ok)
        .count()
}

/// A handler at work: its future, boxed (see [`dispatch`]).
pub type Handling<'a> = Pin<Box<dyn Future<Output = Result<Response, Problem>> + Send + 'a>>;

/// An answer that needed no waiting, as a [`Handling`].
fn ready<'a>(answer: Result<Response, Problem>) -> Handling<'a> {
    Box::pin(std::future::ready(answer))
}

/// Starts the handler of an authorized request.
///
/// Each handler's future is boxed on its own, so that the request future
/// hyper keeps for the whole life of a connection (`service`, which awaits
/// this) stays small, instead of as large as the largest handler's
/// (placing an order, ~2 KB): an idle long-poll holds its own state and
/// little else, and an event stream or a keep-alive connection between
/// requests holds no handler's room at all
/// (`an_idle_connection_keeps_no_handlers_room`).
pub fn dispatch(route: Route, ctx: Ctx<'_>, req: Request<Incoming>) -> Handling<'_> {
    use hyper::Method;
    // HEAD runs GET's handler; hyper sends its headers without the body.
    let method = match req.method() {
        &Method::HEAD => Method::GET,
        other => other.clone(),
    };
    match (route, method) {
        (Route::Healthz, _) => Box::pin(misc::healthz(ctx)),
        (Route::Metrics, _) => {
            let accept = req
                .headers()
                .get(hyper::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            Box::pin(misc::metrics(ctx, accept))
        }
        (Route::OpenApi, _) => ready(Ok(misc::openapi())),
        (Route::Register, _) => Box::pin(account::register(ctx, req)),
        (Route::Login, _) => Box::pin(account::login(ctx, req)),
        (Route::Products, Method::GET) => Box::pin(products::list(ctx, req)),
        (Route::Products, _) => Box::pin(products::create(ctx, req)),
        (Route::Product, Method::GET) => Box::pin(products::get(ctx)),
        (Route::Product, Method::PATCH) => Box::pin(products::update(ctx, req)),
        (Route::Product, _) => Box::pin(products::remove(ctx)),
        (Route::Customers, Method::GET) => Box::pin(customers::list(ctx, req)),
        (Route::Customers, _) => Box::pin(customers::create(ctx, req)),
        (Route::Customer, Method::GET) => Box::pin(customers::get(ctx)),
        (Route::Customer, Method::PATCH) => Box::pin(customers::update(ctx, req)),
        (Route::Customer, _) => Box::pin(customers::remove(ctx)),
        (Route::Orders, Method::GET) => Box::pin(orders::list(ctx, req)),
        (Route::Orders, _) => Box::pin(orders::place(ctx, req)),
        (Route::OrdersExport, _) => Box::pin(orders::export(ctx, req)),
        (Route::Order, Method::GET) => Box::pin(orders::get(ctx)),
        (Route::Order, Method::PATCH) => Box::pin(orders::edit(ctx, req)),
        (Route::Order, _) => Box::pin(orders::remove(ctx)),
        (Route::OrderStatus, _) => Box::pin(orders::set_status(ctx, req)),
        (Route::Track, _) => Box::pin(orders::track(ctx)),
        (Route::Changes, _) => Box::pin(changes::poll(ctx, req)),
        (Route::PaymentWebhook, _) => Box::pin(payments::webhook(ctx, req)),
        (Route::Payments, _) => Box::pin(payments::list(ctx, req)),
        (Route::Payment, _) => Box::pin(payments::get(ctx)),
        (Route::OrderPayments, _) => Box::pin(payments::of_order(ctx, req)),
        (Route::Dashboard | Route::TrackPage, _) => ready(Ok(dashboard::page(&req))),
        (Route::Asset, _) => ready(dashboard::asset(ctx, &req)),
        (Route::Session, Method::POST) => Box::pin(session::login(ctx, req)),
        (Route::Session, Method::GET) => ready(session::current(ctx)),
        (Route::Session, _) => ready(session::logout(&req)),
        (Route::ChangesStream, _) => Box::pin(stream::open(ctx, req)),
        (Route::ProductRestock, _) => Box::pin(products::restock(ctx, req)),
        (Route::Notifications, _) => Box::pin(notifications::list(ctx, req)),
        (Route::NotificationRetry, _) => Box::pin(notifications::retry(ctx, req)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// The size of the future `handler` returns (never called).
    fn future_of<F, Fut>(_handler: F) -> usize
    where
        F: FnOnce(Ctx<'static>, Request<Incoming>) -> Fut,
        Fut: Future,
    {
        std::mem::size_of::<Fut>()
    }

    fn service_future() -> usize {
        fn size<F, Fut>(_: F) -> usize
        where
            F: FnOnce(Arc<crate::App>, SocketAddr, Request<Incoming>) -> Fut,
            Fut: Future,
        {
            std::mem::size_of::<Fut>()
        }
        size(crate::service)
    }

    /// hyper keeps one allocation per connection for the request future
    /// (`service`, which awaits `dispatch`), for as long as the connection
    /// lives. With the handlers' futures inline it was as large as the
    /// largest handler's on every connection, idle long-polls and event
    /// streams included (3.9 KB each, measured with massif). Now it is
    /// smaller than the largest handler's, and smaller than what the
    /// long-poll itself needs while it waits.
    #[test]
    fn an_idle_connection_keeps_no_handlers_room() {
        let poll = future_of(changes::poll);
        let largest = [
            future_of(orders::place),
            future_of(orders::set_status),
            future_of(orders::edit),
            future_of(session::login),
            future_of(account::register),
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        let service = service_future();
        assert!(
            service < largest && service < poll,
            "service {service} bytes, the long-poll's own {poll}, the largest handler's {largest}"
        );
    }
}
