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

use std::net::SocketAddr;

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

/// Calls the handler of an authorized request.
pub async fn dispatch(
    route: Route,
    ctx: Ctx<'_>,
    req: Request<Incoming>,
) -> Result<Response, Problem> {
    use hyper::Method;
    // HEAD runs GET's handler; hyper sends its headers without the body.
    let method = match req.method() {
        &Method::HEAD => Method::GET,
        other => other.clone(),
    };
    match (route, method) {
        (Route::Healthz, _) => misc::healthz(ctx).await,
        (Route::Metrics, _) => {
            let accept = req
                .headers()
                .get(hyper::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            misc::metrics(ctx, accept).await
        }
        (Route::OpenApi, _) => Ok(misc::openapi()),
        (Route::Register, _) => account::register(ctx, req).await,
        (Route::Login, _) => account::login(ctx, req).await,
        (Route::Products, Method::GET) => products::list(ctx, req).await,
        (Route::Products, _) => products::create(ctx, req).await,
        (Route::Product, Method::GET) => products::get(ctx).await,
        (Route::Product, Method::PATCH) => products::update(ctx, req).await,
        (Route::Product, _) => products::remove(ctx).await,
        (Route::Customers, Method::GET) => customers::list(ctx, req).await,
        (Route::Customers, _) => customers::create(ctx, req).await,
        (Route::Customer, Method::GET) => customers::get(ctx).await,
        (Route::Customer, Method::PATCH) => customers::update(ctx, req).await,
        (Route::Customer, _) => customers::remove(ctx).await,
        (Route::Orders, Method::GET) => orders::list(ctx, req).await,
        (Route::Orders, _) => orders::place(ctx, req).await,
        (Route::OrdersExport, _) => orders::export(ctx, req).await,
        (Route::Order, Method::GET) => orders::get(ctx).await,
        (Route::Order, Method::PATCH) => orders::edit(ctx, req).await,
        (Route::Order, _) => orders::remove(ctx).await,
        (Route::OrderStatus, _) => orders::set_status(ctx, req).await,
        (Route::Track, _) => orders::track(ctx).await,
        (Route::Changes, _) => changes::poll(ctx, req).await,
        (Route::PaymentWebhook, _) => payments::webhook(ctx, req).await,
        (Route::Payments, _) => payments::list(ctx, req).await,
        (Route::Payment, _) => payments::get(ctx).await,
        (Route::OrderPayments, _) => payments::of_order(ctx, req).await,
        (Route::Dashboard | Route::TrackPage, _) => Ok(dashboard::page(&req)),
        (Route::Asset, _) => dashboard::asset(ctx, &req),
        (Route::Session, Method::POST) => session::login(ctx, req).await,
        (Route::Session, Method::GET) => session::current(ctx),
        (Route::Session, _) => session::logout(&req),
        (Route::ChangesStream, _) => stream::open(ctx, req).await,
        (Route::ProductRestock, _) => products::restock(ctx, req).await,
        (Route::Notifications, _) => notifications::list(ctx, req).await,
        (Route::NotificationRetry, _) => notifications::retry(ctx, req).await,
    }
}
