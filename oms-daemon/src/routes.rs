//! The routing table and the authorization decided before any handler
//! runs. Deny by default: a (route, method) pair missing from [`RULES`] is
//! refused.

use std::net::SocketAddr;

use hyper::Method;

use crate::auth::Principal;
use crate::problem::Problem;

/// Every routed path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Healthz,
    Metrics,
    OpenApi,
    Register,
    Login,
    Products,
    Product,
    Customers,
    Customer,
    Orders,
    OrdersExport,
    Order,
    OrderStatus,
    Track,
    Changes,
    PaymentWebhook,
    Payments,
    Payment,
    OrderPayments,
    // Added for the dashboard (DESIGN §9).
    Dashboard,
    TrackPage,
    Asset,
    Session,
    ChangesStream,
    ProductRestock,
    Notifications,
    NotificationRetry,
}

impl Route {
    /// The path pattern (also the metrics label and the OpenAPI key).
    pub fn pattern(self) -> &'static str {
        match self {
            Route::Healthz => "/healthz",
            Route::Metrics => "/metrics",
            Route::OpenApi => "/api/openapi.json",
            Route::Register => "/auth/register",
            Route::Login => "/auth/login",
            Route::Products => "/api/products",
            Route::Product => "/api/products/{id}",
            Route::Customers => "/api/customers",
            Route::Customer => "/api/customers/{id}",
            Route::Orders => "/api/orders",
            Route::OrdersExport => "/api/orders/export.csv",
            Route::Order => "/api/orders/{id}",
            Route::OrderStatus => "/api/orders/{id}/status",
            Route::Track => "/api/track/{tracking_code}",
            Route::Changes => "/api/changes",
            Route::PaymentWebhook => "/api/payments/webhook",
            Route::Payments => "/api/payments",
            Route::Payment => "/api/payments/{id}",
            Route::OrderPayments => "/api/orders/{id}/payments",
            Route::Dashboard => "/",
            Route::TrackPage => "/track/{tracking_code}",
            Route::Asset => "/assets/{name}",
            Route::Session => "/auth/session",
            Route::ChangesStream => "/api/changes/stream",
            Route::ProductRestock => "/api/products/{id}/restock",
            Route::Notifications => "/api/notifications",
            Route::NotificationRetry => "/api/notifications/{id}/retry",
        }
    }

    /// Every route, for the OpenAPI coverage test.
    pub const ALL: [Route; 27] = [
        Route::Healthz,
        Route::Metrics,
        Route::OpenApi,
        Route::Register,
        Route::Login,
        Route::Products,
        Route::Product,
        Route::Customers,
        Route::Customer,
        Route::Orders,
        Route::OrdersExport,
        Route::Order,
        Route::OrderStatus,
        Route::Track,
        Route::Changes,
        Route::PaymentWebhook,
        Route::Payments,
        Route::Payment,
        Route::OrderPayments,
        Route::Dashboard,
        Route::TrackPage,
        Route::Asset,
        Route::Session,
        Route::ChangesStream,
        Route::ProductRestock,
        Route::Notifications,
        Route::NotificationRetry,
    ];
}

/// Who may call a (route, method).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// No token needed.
    Anyone,
    /// Callers on a loopback address, or an admin token.
    LoopbackOrAdmin,
    /// Any valid token; the handler limits a customer to its own data
    /// through [`Access`].
    AnyUser,
    /// Admin tokens only.
    Admin,
}

/// The authorization table.
pub const RULES: &[(Route, Method, Rule)] = &[
    (Route::Healthz, Method::GET, Rule::Anyone),
    (Route::Metrics, Method::GET, Rule::LoopbackOrAdmin),
    (Route::OpenApi, Method::GET, Rule::Anyone),
    (Route::Register, Method::POST, Rule::Anyone),
    (Route::Login, Method::POST, Rule::Anyone),
    (Route::Products, Method::GET, Rule::AnyUser),
    (Route::Products, Method::POST, Rule::Admin),
    (Route::Product, Method::GET, Rule::AnyUser),
    (Route::Product, Method::PATCH, Rule::Admin),
    (Route::Product, Method::DELETE, Rule::Admin),
    (Route::Customers, Method::GET, Rule::Admin),
    (Route::Customers, Method::POST, Rule::Admin),
    (Route::Customer, Method::GET, Rule::AnyUser),
    (Route::Customer, Method::PATCH, Rule::Admin),
    (Route::Customer, Method::DELETE, Rule::Admin),
    (Route::Orders, Method::GET, Rule::AnyUser),
    (Route::Orders, Method::POST, Rule::AnyUser),
    (Route::OrdersExport, Method::GET, Rule::Admin),
    (Route::Order, Method::GET, Rule::AnyUser),
    (Route::Order, Method::PATCH, Rule::Admin),
    (Route::Order, Method::DELETE, Rule::Admin),
    (Route::OrderStatus, Method::PUT, Rule::AnyUser),
    (Route::OrderStatus, Method::PATCH, Rule::AnyUser),
    (Route::Track, Method::GET, Rule::Anyone),
    (Route::Changes, Method::GET, Rule::AnyUser),
    // Authenticated by its HMAC signature, checked by the handler.
    (Route::PaymentWebhook, Method::POST, Rule::Anyone),
    (Route::Payments, Method::GET, Rule::Admin),
    (Route::Payment, Method::GET, Rule::Admin),
    // The handler limits a customer to its own orders (404 otherwise).
    (Route::OrderPayments, Method::GET, Rule::AnyUser),
    // The dashboard: its pages and assets are public (the data is not).
    (Route::Dashboard, Method::GET, Rule::Anyone),
    (Route::TrackPage, Method::GET, Rule::Anyone),
    (Route::Asset, Method::GET, Rule::Anyone),
    // Browser sessions: log in (sets the cookie), who am I (anyone may ask,
    // so a logged-out page gets an answer, not an error), log out.
    (Route::Session, Method::POST, Rule::Anyone),
    (Route::Session, Method::GET, Rule::Anyone),
    (Route::Session, Method::DELETE, Rule::Anyone),
    (Route::ChangesStream, Method::GET, Rule::AnyUser),
    (Route::ProductRestock, Method::POST, Rule::Admin),
    (Route::Notifications, Method::GET, Rule::Admin),
    (Route::NotificationRetry, Method::POST, Rule::Admin),
];

/// A matched path with its one parameter, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    pub route: Route,
    pub param: Option<String>,
}

/// Matches a request path (no query string) to a route. Each segment is
/// percent-decoded before it is matched (RFC 3986 §2.1: `%57ID-1` is
/// `WID-1`, and `CAF%C3%89-1` is the SKU `CAFÉ-1`, as every HTTP client
/// sends it); an encoded `/` stays inside its segment. A segment that does
/// not decode to UTF-8 matches nothing.
pub fn match_path(path: &str) -> Option<Matched> {
    let plain = |route| Some(Matched { route, param: None });
    let with = |route, p: &str| {
        (!p.is_empty()).then(|| Matched {
            route,
            param: Some(p.to_string()),
        })
    };
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let decoded: Vec<std::borrow::Cow<'_, str>> = path
        .split('/')
        .skip(1)
        .map(|segment| percent_encoding::percent_decode_str(segment).decode_utf8())
        .collect::<Result<_, _>>()
        .ok()?;
    let segments: Vec<&str> = decoded.iter().map(|s| s.as_ref()).collect();
    match segments.as_slice() {
        [""] => plain(Route::Dashboard),
        ["track", code] => with(Route::TrackPage, code),
        ["assets", name] => with(Route::Asset, name),
        ["auth", "session"] => plain(Route::Session),
        ["api", "changes", "stream"] => plain(Route::ChangesStream),
        ["api", "products", id, "restock"] => with(Route::ProductRestock, id),
        ["healthz"] => plain(Route::Healthz),
        ["metrics"] => plain(Route::Metrics),
        ["auth", "register"] => plain(Route::Register),
        ["auth", "login"] => plain(Route::Login),
        ["api", "openapi.json"] => plain(Route::OpenApi),
        ["api", "products"] => plain(Route::Products),
        ["api", "products", id] => with(Route::Product, id),
        ["api", "customers"] => plain(Route::Customers),
        ["api", "customers", id] => with(Route::Customer, id),
        ["api", "orders"] => plain(Route::Orders),
        ["api", "orders", "export.csv"] => plain(Route::OrdersExport),
        ["api", "orders", id] => with(Route::Order, id),
        ["api", "orders", id, "status"] => with(Route::OrderStatus, id),
        ["api", "track", code] => with(Route::Track, code),
        ["api", "changes"] => plain(Route::Changes),
        ["api", "payments", "webhook"] => plain(Route::PaymentWebhook),
        ["api", "payments"] => plain(Route::Payments),
        ["api", "payments", id] => with(Route::Payment, id),
        ["api", "orders", id, "payments"] => with(Route::OrderPayments, id),
        ["api", "notifications"] => plain(Route::Notifications),
        ["api", "notifications", id, "retry"] => with(Route::NotificationRetry, id),
        _ => None,
    }
}

/// What a handler may see: everything, or one customer's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Anonymous,
    Admin(oms_core::UserId),
    Customer {
        user: oms_core::UserId,
        customer: oms_core::CustomerId,
    },
}

impl Access {
    /// Whether this caller may see data of `customer`.
    pub fn can_see(&self, customer: oms_core::CustomerId) -> bool {
        match self {
            Access::Admin(_) => true,
            Access::Customer { customer: own, .. } => *own == customer,
            Access::Anonymous => false,
        }
    }

    /// The customer a customer caller is limited to.
    pub fn own_customer(&self) -> Option<oms_core::CustomerId> {
        match self {
            Access::Customer { customer, .. } => Some(*customer),
            _ => None,
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Access::Admin(_))
    }

    /// The user id (0 for anonymous), the scope of idempotency keys.
    pub fn actor_user_id(&self) -> i64 {
        match self {
            Access::Admin(user) | Access::Customer { user, .. } => user.get(),
            Access::Anonymous => 0,
        }
    }

    /// The actor recorded for writes.
    pub fn actor(&self) -> oms_core::Actor {
        match self {
            Access::Admin(user) | Access::Customer { user, .. } => oms_core::Actor::user(*user),
            Access::Anonymous => oms_core::Actor::system("http"),
        }
    }
}

/// Decides whether the caller may use (route, method). 405 when the path
/// exists but not with this method, 401 without a valid token where one is
/// needed, 403 for the wrong role.
pub fn authorize(
    route: Route,
    method: &Method,
    principal: Option<Principal>,
    peer: SocketAddr,
) -> Result<Access, Problem> {
    let rule = rule_for(route, method).ok_or_else(|| method_not_allowed(route))?;
    let access = match principal {
        None => Access::Anonymous,
        Some(Principal::Admin { user }) => Access::Admin(user),
        Some(Principal::Customer { user, customer }) => Access::Customer { user, customer },
    };
    match (rule, access) {
        (Rule::Anyone, _) => Ok(access),
        (Rule::LoopbackOrAdmin, _) if peer.ip().is_loopback() || access.is_admin() => Ok(access),
        (_, Access::Anonymous) => Err(Problem::unauthorized("a valid bearer token is required")),
        (Rule::AnyUser, _) => Ok(access),
        (Rule::Admin | Rule::LoopbackOrAdmin, Access::Admin(_)) => Ok(access),
        (Rule::Admin | Rule::LoopbackOrAdmin, Access::Customer { .. }) => {
            Err(Problem::forbidden("this needs an admin"))
        }
    }
}

/// The rule of (route, method). HEAD is GET without the body (RFC 9110
/// §9.3.2), so it has GET's rule wherever GET has one.
fn rule_for(route: Route, method: &Method) -> Option<Rule> {
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    RULES
        .iter()
        .find(|(r, m, _)| *r == route && m == method)
        .map(|(_, _, rule)| *rule)
}

/// The methods a route answers, for the `Allow` header: those of
/// [`RULES`], HEAD wherever GET is, and OPTIONS (answered for every route).
pub fn allowed_methods(route: Route) -> String {
    let mut methods: Vec<&str> = Vec::new();
    for (_, method, _) in RULES.iter().filter(|(r, _, _)| *r == route) {
        methods.push(method.as_str());
        if method == Method::GET {
            methods.push(Method::HEAD.as_str());
        }
    }
    methods.push(Method::OPTIONS.as_str());
    methods.join(", ")
}

fn method_not_allowed(route: Route) -> Problem {
    Problem::new(
        hyper::StatusCode::METHOD_NOT_ALLOWED,
        format!("{} answers {}", route.pattern(), allowed_methods(route)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_paths_and_params() {
        assert_eq!(match_path("/api/orders/17").unwrap().route, Route::Order);
        assert_eq!(
            match_path("/api/orders/17").unwrap().param.as_deref(),
            Some("17")
        );
        assert_eq!(
            match_path("/api/orders/export.csv").unwrap().route,
            Route::OrdersExport
        );
        assert_eq!(
            match_path("/api/orders/3/status").unwrap().route,
            Route::OrderStatus
        );
        assert_eq!(match_path("/api/orders/").unwrap().route, Route::Orders);
        assert_eq!(
            match_path("/api/payments/webhook").unwrap().route,
            Route::PaymentWebhook
        );
        assert_eq!(match_path("/api/payments/3").unwrap().route, Route::Payment);
        assert_eq!(
            match_path("/api/orders/3/payments").unwrap().route,
            Route::OrderPayments
        );
        assert_eq!(match_path("/").unwrap().route, Route::Dashboard);
        assert_eq!(
            match_path("/track/TRK1").unwrap().param.as_deref(),
            Some("TRK1")
        );
        assert_eq!(
            match_path("/api/changes/stream").unwrap().route,
            Route::ChangesStream
        );
        assert!(match_path("/track/").is_none());
        assert!(match_path("/assets/a/b.js").is_none());
        // Segments are percent-decoded before matching.
        let product = |path| match_path(path).and_then(|m| m.param);
        assert_eq!(product("/api/products/%57ID-1").as_deref(), Some("WID-1"));
        assert_eq!(
            product("/api/products/CAF%C3%89-1").as_deref(),
            Some("CAFÉ-1")
        );
        assert_eq!(product("/api/products/A%231").as_deref(), Some("A#1"));
        assert_eq!(product("/api/products/A%2FB").as_deref(), Some("A/B"));
        assert_eq!(match_path("/api/%6Frders").unwrap().route, Route::Orders);
        assert!(match_path("/api/products/%FF").is_none(), "not UTF-8");
        assert!(match_path("/api/orders/1/status/x").is_none());
    }

    #[test]
    fn every_route_has_a_rule_and_deny_by_default() {
        for route in Route::ALL {
            assert!(RULES.iter().any(|(r, _, _)| *r == route), "{route:?}");
        }
        let peer: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let err = authorize(Route::Order, &Method::PUT, None, peer).unwrap_err();
        assert_eq!(err.status, hyper::StatusCode::METHOD_NOT_ALLOWED);
        let err = authorize(Route::Metrics, &Method::GET, None, peer).unwrap_err();
        assert_eq!(err.status, hyper::StatusCode::UNAUTHORIZED);
        let local: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(authorize(Route::Metrics, &Method::GET, None, local).is_ok());
        // HEAD has GET's rule, and only where GET has one.
        assert!(authorize(Route::Healthz, &Method::HEAD, None, peer).is_ok());
        let err = authorize(Route::Login, &Method::HEAD, None, peer).unwrap_err();
        assert_eq!(err.status, hyper::StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(allowed_methods(Route::Login), "POST, OPTIONS");
        assert_eq!(
            allowed_methods(Route::Product),
            "GET, HEAD, PATCH, DELETE, OPTIONS"
        );
    }
}
