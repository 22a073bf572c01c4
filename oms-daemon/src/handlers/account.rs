//! `/auth/register` and `/auth/login`.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use oms_core::{
    CustomerRef, Error, NewUser, Role, Timestamp, User, parse_email, parse_name, password,
};
use serde::Deserialize;
use serde_json::json;

use super::Ctx;
use crate::http::{self, Response};
use crate::problem::{FieldError, Problem};

#[derive(Deserialize)]
struct RegisterBody {
    email: String,
    password: String,
    name: String,
}

/// The body of `/auth/register` with its e-mail and name checked.
fn decode_register(bytes: &[u8]) -> Result<(RegisterBody, String, String), Problem> {
    let body: RegisterBody = http::parse_json(
        bytes,
        &["email", "password", "name"],
        &["id", "role", "customer_id", "created_at", "password_hash"],
    )?;
    let email = parse_email(&body.email)?;
    let name = parse_name("name", &body.name)?;
    // The password policy (oms_core::password) before any hashing, named
    // as a field problem so a form can show it beside the password box.
    password::check_policy(&body.password).map_err(|e| {
        let message = e.to_string();
        Problem::unprocessable(
            message.clone(),
            vec![FieldError {
                field: "password".into(),
                message,
            }],
        )
    })?;
    Ok((body, email, name))
}

/// Creates a customer user and its customer record: 201 with the user.
pub async fn register(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Response, Problem> {
    let bytes = http::read_json_body(req, ctx.app.config.max_body).await?;
    let (body, email, name) = decode_register(&bytes)?;
    let hash = ctx.app.hasher.hash(body.password).await?;
    let user = ctx
        .app
        .db
        .write_async(ctx.access.actor(), move |tx| {
            // `add_user` links a customer user to an existing customer
            // record with its e-mail. That suits an admin on the command
            // line, but an anonymous caller would take over that customer's
            // orders, so self-registration needs an unused e-mail. The answer
            // is the same as for a taken login, so it tells nothing more.
            match tx.customer(&CustomerRef::Email(email.clone())) {
                Err(Error::NotFound { .. }) => {}
                Ok(_) => {
                    return Err(Error::Duplicate {
                        what: "user email",
                        value: email.clone(),
                    });
                }
                Err(e) => return Err(e),
            }
            tx.add_user(&NewUser {
                email: email.clone(),
                name: name.clone(),
                role: Role::Customer,
                password_hash: Some(hash.clone()),
            })
        })
        .await?;
    Ok(http::json(StatusCode::CREATED, &user))
}

#[derive(Deserialize)]
struct LoginBody {
    email: String,
    password: String,
}

fn decode_login(bytes: &[u8]) -> Result<LoginBody, Problem> {
    http::parse_json(bytes, &["email", "password"], &[])
}

/// Every body decoder of this module, as the fuzz targets call them.
pub(crate) fn decode_for_fuzzing(bytes: &[u8]) -> [bool; 2] {
    [decode_register(bytes).is_ok(), decode_login(bytes).is_ok()]
}

/// Checks a password and answers a token. An unknown e-mail answers
/// exactly like a wrong password, after the same work.
pub async fn login(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Response, Problem> {
    // The body is read before anything is refused (see `http::discard_body`).
    let bytes = http::read_json_body(req, ctx.app.config.max_body).await?;
    let (user, token, expires_at) = authenticate(&ctx, &bytes).await?;
    Ok(http::json(
        StatusCode::OK,
        &json!({"token": token, "expires_at": expires_at, "role": user.role}),
    ))
}

/// The login of `/auth/login` and `/auth/session`: rate limits, the
/// password check and a new token for the user.
pub(crate) async fn authenticate(
    ctx: &Ctx<'_>,
    bytes: &[u8],
) -> Result<(User, String, Timestamp), Problem> {
    ctx.app
        .login_by_ip
        .check(&ctx.peer.ip().to_string())
        .map_err(Problem::too_many)?;
    let body = decode_login(bytes)?;
    let account = body.email.trim().to_ascii_lowercase();
    ctx.app
        .login_by_account
        .check(&account)
        .map_err(Problem::too_many)?;
    let email = body.email.clone();
    let found = ctx
        .app
        .db
        .read_async(move |store| store.credentials(&email))
        .await?;
    let (account, hash) = match found {
        Some(credentials) => {
            let hash = credentials.password_hash.clone();
            (Some(credentials), hash)
        }
        None => (None, None),
    };
    let ok = ctx.app.hasher.verify(body.password, hash).await;
    let Some(account) = account.filter(|_| ok) else {
        return Err(Problem::unauthorized("wrong e-mail or password"));
    };
    let (token, expires_at) = ctx
        .app
        .keys
        .mint(&account.grant, ctx.app.config.token_ttl)
        .map_err(|e| {
            tracing::error!(error = %e, "cannot sign a token");
            Problem::internal()
        })?;
    Ok((account.user, token, expires_at))
}
