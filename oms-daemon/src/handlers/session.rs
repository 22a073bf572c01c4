//! `/auth/session`: the dashboard's login (a session cookie instead of a
//! token in the body), who is logged in, and logout. See `crate::session`.

use hyper::body::Incoming;
use hyper::header::SET_COOKIE;
use hyper::{Request, StatusCode};
use serde_json::json;

use super::Ctx;
use super::account::authenticate;
use crate::http::{self, Response};
use crate::problem::Problem;
use crate::routes::Access;
use crate::session;

/// `POST /auth/session` with `{email, password}`: checks them like
/// `/auth/login` (same rate limits) and sets the session cookie. The token
/// is not in the body: page scripts never hold it.
pub async fn login(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Response, Problem> {
    // A cross-site form must not log the browser into another account
    // (login CSRF).
    let same_origin = session::same_origin(req.headers());
    let bytes = http::read_json_body(req, ctx.app.config.max_body).await?;
    if !same_origin {
        return Err(cross_site());
    }
    let (user, token, expires_at) = authenticate(&ctx, &bytes).await?;
    let cookie = session::set_cookie(&token, ctx.app.config.token_ttl).ok_or_else(|| {
        tracing::error!("a token is not a valid cookie value");
        Problem::internal()
    })?;
    let mut res = http::json(
        StatusCode::OK,
        &json!({
            "authenticated": true,
            "user_id": user.id,
            "role": user.role,
            "customer_id": user.customer_id,
            "expires_at": expires_at,
        }),
    );
    res.headers_mut().insert(SET_COOKIE, cookie);
    Ok(res)
}

/// `GET /auth/session`: who the credential (cookie or bearer token)
/// belongs to; `{"authenticated": false}` without one (a stale cookie
/// counts as none), so the page learns it must show the login form
/// without an error.
pub fn current(ctx: Ctx<'_>) -> Result<Response, Problem> {
    let body = match ctx.access {
        Access::Admin(user) => json!({
            "authenticated": true, "user_id": user, "role": "admin", "customer_id": null,
        }),
        Access::Customer { user, customer } => json!({
            "authenticated": true, "user_id": user, "role": "customer", "customer_id": customer,
        }),
        Access::Anonymous => json!({"authenticated": false}),
    };
    Ok(http::json(StatusCode::OK, &body))
}

/// `DELETE /auth/session`: removes the cookie from the browser. The token
/// itself stays valid until it expires (tokens are not stored), which is
/// why the cookie is `HttpOnly`: no page script ever saw it.
pub fn logout(req: &Request<Incoming>) -> Result<Response, Problem> {
    if !session::same_origin(req.headers()) {
        return Err(cross_site());
    }
    let mut res = http::empty(StatusCode::NO_CONTENT);
    res.headers_mut()
        .insert(SET_COOKIE, session::clear_cookie());
    Ok(res)
}

fn cross_site() -> Problem {
    Problem::forbidden("a session can only be opened or closed from the dashboard's own origin")
}
