//! The JWT corpus: every kind of bad token gets 401 on a route any user
//! may call, while a well-formed token signed with the daemon's key passes.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::support::{SECRET, Server, Who, b64url_decode, b64url_encode, now_secs};

/// A route any valid token may call.
const ANY_USER_ROUTE: &str = "/api/orders";

/// The claims the daemon issues for `who`, valid for ten minutes.
pub(crate) fn claims(who: &Who) -> Value {
    let now = now_secs();
    let mut claims = json!({
        "sub": who.user.id.to_string(),
        "role": who.user.role.as_str(),
        "iat": now,
        "exp": now + 600,
        "iss": "oms",
        "aud": "oms",
    });
    if let Some(customer) = who.user.customer_id {
        claims["customer_id"] = customer.get().into();
    }
    claims
}

pub(crate) fn sign_with(claims: &Value, algorithm: Algorithm, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("sign a token")
}

pub(crate) fn sign(claims: &Value) -> String {
    sign_with(claims, Algorithm::HS256, SECRET.as_bytes())
}

fn without(mut claims: Value, field: &str) -> Value {
    claims.as_object_mut().expect("claims object").remove(field);
    claims
}

pub(crate) fn with(mut claims: Value, field: &str, value: Value) -> Value {
    claims[field] = value;
    claims
}

/// Replaces a token's payload and keeps its header and signature.
pub(crate) fn tamper(token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS compact token");
    let mut payload: Value = serde_json::from_slice(&b64url_decode(parts[1])).expect("payload");
    edit(&mut payload);
    let payload = b64url_encode(&serde_json::to_vec(&payload).expect("encode"));
    format!("{}.{payload}.{}", parts[0], parts[2])
}

/// An unsigned token (`alg: none`).
pub(crate) fn unsigned(claims: &Value) -> String {
    let header = b64url_encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64url_encode(&serde_json::to_vec(claims).expect("encode"));
    format!("{header}.{payload}.")
}

#[test]
fn well_formed_tokens_pass() {
    let server = Server::start();
    // Our own forgery recipe with the right key is accepted: the 401s below
    // come from what each case changes, not from the recipe.
    for who in [&server.admin, &server.alice] {
        server
            .get(ANY_USER_ROUTE)
            .token(&sign(&claims(who)))
            .send()
            .expect_status(200);
    }
    // The daemon's own keys (as `oms token create` uses them); the scheme
    // name is case-insensitive.
    let (token, _) = server
        .app
        .keys()
        .mint(&server.bob.user, std::time::Duration::from_secs(60))
        .unwrap();
    server
        .get(ANY_USER_ROUTE)
        .header("authorization", &format!("bearer {token}"))
        .send()
        .expect_status(200);
    // The role comes from the token: the admin token reaches admin routes.
    server
        .get("/api/customers")
        .token(&sign(&claims(&server.admin)))
        .send()
        .expect_status(200);
}

#[test]
fn bad_tokens_are_401() {
    let server = Server::start();
    let admin = claims(&server.admin);
    let alice = claims(&server.alice);
    let now = now_secs();

    let corpus: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("alg none", Some(unsigned(&admin))),
        ("alg none, customer", Some(unsigned(&alice))),
        (
            "tampered: role changed to admin",
            Some(tamper(&server.alice.token, |p| {
                p["role"] = json!("admin");
                p.as_object_mut().unwrap().remove("customer_id");
            })),
        ),
        (
            "tampered: other customer",
            Some(tamper(&server.alice.token, |p| {
                p["customer_id"] = json!(server.bob.customer_id());
            })),
        ),
        (
            "tampered: expiry extended",
            Some(tamper(&server.alice.token, |p| {
                p["exp"] = json!(now + 86_400 * 365);
            })),
        ),
        (
            "expired",
            Some(sign(&with(
                with(admin.clone(), "exp", json!(now - 120)),
                "iat",
                json!(now - 720),
            ))),
        ),
        (
            "wrong key",
            Some(sign_with(
                &admin,
                Algorithm::HS256,
                b"another-secret-of-enough-length-0123456789",
            )),
        ),
        (
            "HS512 with the right key (algorithm is pinned)",
            Some(sign_with(&admin, Algorithm::HS512, SECRET.as_bytes())),
        ),
        ("missing aud", Some(sign(&without(admin.clone(), "aud")))),
        (
            "wrong aud",
            Some(sign(&with(admin.clone(), "aud", json!("someone-else")))),
        ),
        (
            "wrong iss",
            Some(sign(&with(admin.clone(), "iss", json!("evil")))),
        ),
        ("missing exp", Some(sign(&without(admin.clone(), "exp")))),
        ("missing sub", Some(sign(&without(admin.clone(), "sub")))),
        (
            "customer role without a customer id",
            Some(sign(&without(alice.clone(), "customer_id"))),
        ),
        (
            "unknown role",
            Some(sign(&with(admin.clone(), "role", json!("root")))),
        ),
        ("garbage", Some("not.a.token".to_string())),
        ("empty", Some(String::new())),
        (
            "signature stripped",
            Some(
                server
                    .admin
                    .token
                    .rsplit_once('.')
                    .map(|(head, _)| format!("{head}."))
                    .unwrap(),
            ),
        ),
    ];

    let mut wrong = Vec::new();
    for (case, token) in &corpus {
        let reply = server
            .get(ANY_USER_ROUTE)
            .maybe_token(token.as_deref())
            .send();
        if reply.status != 401 {
            wrong.push(format!("{case}: {} {}", reply.status, reply.body));
            continue;
        }
        reply.problem(401);
        assert!(!reply.body.contains("items"), "{case}: {}", reply.body);
    }
    // Other schemes are not bearer tokens.
    let basic = server
        .get(ANY_USER_ROUTE)
        .header("authorization", "Basic YWRtaW46cGFzc3dvcmQ=")
        .send();
    if basic.status != 401 {
        wrong.push(format!("basic auth: {}", basic.status));
    }
    assert!(
        wrong.is_empty(),
        "{} bad tokens were not refused:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn a_bad_token_is_refused_even_where_none_is_needed() {
    let server = Server::start();
    let forged = unsigned(&claims(&server.admin));
    server.get("/healthz").token(&forged).send().problem(401);
    server
        .post("/auth/login")
        .token("garbage")
        .json(&json!({"email": "x@example.com", "password": "x"}))
        .send()
        .problem(401);
    // A forged admin token never reaches admin routes.
    server
        .get("/api/customers")
        .token(&forged)
        .send()
        .problem(401);
    server.get("/healthz").send().expect_status(200);
}
