//! Authentication: JWT (HS256, pinned), argon2 password checks off the
//! runtime with a cap on concurrent hashes, and login rate limits.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use oms_core::{CustomerId, Role, Timestamp, TokenGrant, UserId, password};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::config::MIN_SECRET_LEN;

/// Issuer and audience of every token.
pub const ISSUER: &str = "oms";

/// Seconds of clock skew tolerated on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: u64 = 5;

/// The claims oms writes into a token.
#[derive(Debug, Clone, Serialize)]
struct IssuedClaims<'a> {
    sub: String,
    role: Role,
    exp: u64,
    iat: u64,
    iss: &'static str,
    aud: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_id: Option<i64>,
    /// The user's token generation ([`TokenGrant`]).
    #[serde(rename = "gen")]
    generation: &'a str,
}

/// The claims of a token as RFC 7519 lets them be written: `exp`, `nbf`
/// and `iat` are NumericDates (any JSON number of seconds, fractions
/// allowed), `aud` is one string or an array of them, `sub`, `iss` and
/// `jti` are strings. A claim in another form makes the token invalid.
/// `exp`, `nbf`, `iss` and `aud` are checked by jsonwebtoken's validation
/// (configured in [`Keys::new`]); `iat` is checked in [`Keys::verify_signed`].
#[derive(Debug, Deserialize)]
struct PresentedClaims {
    sub: String,
    role: Role,
    /// Checked by jsonwebtoken; kept for [`VerifiedTokens`].
    exp: NumericDate,
    #[serde(default)]
    nbf: Option<NumericDate>,
    #[serde(default)]
    iat: Option<NumericDate>,
    #[allow(
        dead_code,
        reason = "checked by jsonwebtoken; kept to refuse other forms"
    )]
    iss: String,
    #[allow(
        dead_code,
        reason = "checked by jsonwebtoken; kept to refuse other forms"
    )]
    aud: Audience,
    #[serde(default)]
    #[allow(dead_code, reason = "only its form is checked: oms keeps no token ids")]
    jti: Option<String>,
    #[serde(default)]
    customer_id: Option<i64>,
    #[serde(rename = "gen")]
    generation: String,
}

/// A NumericDate (RFC 7519 §2): seconds since the epoch, integer or not.
#[derive(Debug, Clone, Copy)]
struct NumericDate(f64);

impl NumericDate {
    /// Whole seconds, rounded as jsonwebtoken rounds `exp` and `nbf` when
    /// it checks them.
    fn as_jsonwebtoken_reads_it(self) -> u64 {
        self.0.round() as u64
    }
}

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(d)?;
        if value.is_finite() && value >= 0.0 {
            Ok(NumericDate(value))
        } else {
            Err(serde::de::Error::custom(
                "a NumericDate is a non-negative number",
            ))
        }
    }
}

/// `aud` (RFC 7519 §4.1.3): one string or an array of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(#[allow(dead_code, reason = "checked by jsonwebtoken")] String),
    Many(#[allow(dead_code, reason = "checked by jsonwebtoken")] Vec<String>),
}

/// Who a token says it was issued to; honoured only while it matches the
/// user's current [`TokenGrant`] (see [`Presented::principal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    pub user: UserId,
    role: Role,
    customer_id: Option<CustomerId>,
    generation: String,
}

impl Presented {
    /// The caller, if the token still matches the user's grant: same role,
    /// same customer, same generation. `None` once the user was removed,
    /// changed its password or changed its role.
    pub fn principal(&self, grant: Option<&TokenGrant>) -> Option<Principal> {
        let grant = grant?;
        let current = grant.user == self.user
            && grant.role == self.role
            && grant.customer_id == self.customer_id
            && grant.generation == self.generation;
        if !current {
            return None;
        }
        match (self.role, self.customer_id) {
            (Role::Admin, None) => Some(Principal::Admin { user: self.user }),
            (Role::Customer, Some(customer)) => Some(Principal::Customer {
                user: self.user,
                customer,
            }),
            _ => None,
        }
    }
}

/// Who is calling, once the token checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    Admin { user: UserId },
    Customer { user: UserId, customer: CustomerId },
}

impl Principal {
    pub fn user(&self) -> UserId {
        match self {
            Principal::Admin { user } | Principal::Customer { user, .. } => *user,
        }
    }
}

/// The signing and verification keys.
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Tokens these keys verified, so that a client sending the same token
    /// on every request pays for the signature and the JSON once.
    verified: VerifiedTokens,
}

/// Why a secret was refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "OMS_JWT_SECRET must be at least {MIN_SECRET_LEN} bytes (it has {0}); use a long random value"
)]
pub struct WeakSecret(pub usize);

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Keys {
    /// Keys from a secret of at least 32 bytes.
    pub fn new(secret: &[u8]) -> Result<Keys, WeakSecret> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(WeakSecret(secret.len()));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[ISSUER]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        Ok(Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            verified: VerifiedTokens::new(VERIFIED_TOKENS),
        })
    }

    /// A token for the user of `grant`, valid for `ttl`.
    pub fn mint(
        &self,
        grant: &TokenGrant,
        ttl: Duration,
    ) -> Result<(String, Timestamp), jsonwebtoken::errors::Error> {
        let now = now_secs();
        let exp = now.saturating_add(ttl.as_secs());
        let claims = IssuedClaims {
            sub: grant.user.to_string(),
            role: grant.role,
            exp,
            iat: now,
            iss: ISSUER,
            aud: ISSUER,
            customer_id: grant.customer_id.map(CustomerId::get),
            generation: &grant.generation,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        let expires_at =
            Timestamp::from_millis(i64::try_from(exp).unwrap_or(i64::MAX / 1000) * 1000);
        Ok((token, expires_at))
    }

    /// What a bearer token claims, or `None` for any invalid token
    /// (expired, not yet valid, issued in the future, tampered, wrong key,
    /// wrong audience or issuer, `alg: none`, a critical header extension,
    /// a claim in a form RFC 7519 does not allow, ...). The caller still
    /// checks the claim against the user's current grant.
    ///
    /// A token these keys verified before is taken from [`VerifiedTokens`]
    /// while it is still inside its validity (see there): the same bytes
    /// under the same key verify the same way, only the clock moves.
    pub fn verify(&self, token: &str) -> Option<Presented> {
        let now = now_secs();
        if let Some(presented) = self.verified.get(token, now) {
            return Some(presented);
        }
        let (presented, validity) = self.verify_signed(token, now)?;
        self.verified.insert(token, &presented, validity, now);
        Some(presented)
    }

    /// [`Keys::verify`] without the cache: the signature, the header and
    /// every claim, checked at `now`.
    fn verify_signed(&self, token: &str, now: u64) -> Option<(Presented, Validity)> {
        let data = jsonwebtoken::decode::<PresentedClaims>(token, &self.decoding, &self.validation)
            .ok()?;
        // RFC 7515 §4.1.11: a `crit` extension the recipient does not
        // understand makes the token invalid; oms understands none.
        if data.header.crit.is_some() {
            return None;
        }
        let claims = data.claims;
        let validity = Validity {
            expires: claims.exp.as_jsonwebtoken_reads_it(),
            not_before: claims.nbf.map(NumericDate::as_jsonwebtoken_reads_it),
            issued: claims.iat.map(|NumericDate(iat)| iat),
        };
        // A token issued in the future (beyond the clock skew) is forged or
        // from a broken clock.
        if !validity.issued_by(now) {
            return None;
        }
        let user = claims.sub.parse::<i64>().ok().filter(|id| *id > 0)?;
        Some((
            Presented {
                user: UserId(user),
                role: claims.role,
                customer_id: claims.customer_id.map(CustomerId),
                generation: claims.generation,
            },
            validity,
        ))
    }
}

/// Most tokens [`VerifiedTokens`] keeps (about 400 bytes each).
const VERIFIED_TOKENS: usize = 4096;

/// The time claims of a verified token, as the checks read them.
#[derive(Debug, Clone, Copy)]
struct Validity {
    /// `exp`, rounded to whole seconds as jsonwebtoken reads it.
    expires: u64,
    /// `nbf`, rounded likewise.
    not_before: Option<u64>,
    /// `iat`, as [`Keys::verify_signed`] reads it.
    issued: Option<f64>,
}

impl Validity {
    /// The `iat` check of [`Keys::verify_signed`]: not issued in the
    /// future beyond the clock skew.
    fn issued_by(&self, now: u64) -> bool {
        self.issued
            .is_none_or(|iat| iat <= now.saturating_add(LEEWAY_SECS) as f64)
    }

    /// Whether a full verification at `now` would still accept the token,
    /// checked more strictly than jsonwebtoken does: strictly before `exp`
    /// (jsonwebtoken accepts up to `exp` plus the leeway; a token in that
    /// margin is verified in full again), `nbf` and `iat` exactly as the
    /// full check reads them (they matter only if the clock went back).
    fn holds_at(&self, now: u64) -> bool {
        now < self.expires
            && self
                .not_before
                .is_none_or(|nbf| nbf <= now.saturating_add(LEEWAY_SECS))
            && self.issued_by(now)
    }
}

/// Tokens that verified, by their exact text: their claims and when they
/// stop being valid. Only a token that passed every check of
/// [`Keys::verify_signed`] under these keys gets in, so a forged or
/// tampered token never does (and cannot crowd real ones out); a hit must
/// be the same string, so it carries the same signature. What the cache
/// never answers is whether the token's *user* still holds that grant:
/// the caller reads that on every request (removing a user, or changing
/// its password or role, ends its tokens at once).
///
/// Bounded: when full, expired tokens go first, and if that frees nothing
/// the cache starts again empty (its tokens are verified once more as they
/// come back).
struct VerifiedTokens {
    capacity: usize,
    tokens: Mutex<HashMap<Box<str>, (Presented, Validity)>>,
}

impl VerifiedTokens {
    fn new(capacity: usize) -> VerifiedTokens {
        VerifiedTokens {
            capacity,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The claims of `token` if it verified before and still holds at `now`.
    fn get(&self, token: &str, now: u64) -> Option<Presented> {
        let tokens = self.tokens.lock().ok()?;
        let (presented, validity) = tokens.get(token)?;
        validity.holds_at(now).then(|| presented.clone())
    }

    fn insert(&self, token: &str, presented: &Presented, validity: Validity, now: u64) {
        if !validity.holds_at(now) {
            return;
        }
        let Ok(mut tokens) = self.tokens.lock() else {
            return;
        };
        if tokens.len() >= self.capacity {
            tokens.retain(|_, (_, validity)| validity.holds_at(now));
            if tokens.len() >= self.capacity {
                tokens.clear();
            }
        }
        tokens.insert(token.into(), (presented.clone(), validity));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.tokens.lock().map(|t| t.len()).unwrap_or(0)
    }
}

/// Runs argon2 off the async runtime, at most `permits` at a time (each
/// hash takes ~19 MiB and tens of milliseconds).
pub struct Hasher {
    permits: Semaphore,
    /// Verified against when the e-mail is unknown, so that answer takes as
    /// long as a wrong password.
    dummy_hash: String,
}

impl Hasher {
    pub fn new(permits: usize) -> oms_core::Result<Hasher> {
        Ok(Hasher {
            permits: Semaphore::new(permits.max(1)),
            dummy_hash: password::hash("not a real password, only for timing")?,
        })
    }

    /// Hashes a new password.
    pub async fn hash(&self, plain: String) -> oms_core::Result<String> {
        let _permit = self.permits.acquire().await.map_err(|_| closed())?;
        tokio::task::spawn_blocking(move || password::hash(&plain))
            .await
            .map_err(|_| closed())?
    }

    /// Checks a password; `None` (unknown user or no password) still spends
    /// the time of a real check and answers false.
    pub async fn verify(&self, plain: String, stored: Option<String>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let real = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.clone());
        tokio::task::spawn_blocking(move || password::verify(&plain, &hash) && real)
            .await
            .unwrap_or(false)
    }
}

fn closed() -> oms_core::Error {
    oms_core::Error::Database("password hasher is shut down".into())
}

/// Fixed-window counters: at most `limit` attempts per key per window.
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    counters: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> RateLimiter {
        RateLimiter {
            limit,
            window,
            counters: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt; `Err(seconds)` says how long to wait.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let Ok(mut counters) = self.counters.lock() else {
            return Ok(());
        };
        if counters.len() > 100_000 {
            let window = self.window;
            counters.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = counters.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            let wait = self.window.saturating_sub(now.duration_since(entry.0));
            return Err(wait.as_secs().max(1));
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(role: Role) -> TokenGrant {
        TokenGrant {
            user: UserId(7),
            role,
            customer_id: (role == Role::Customer).then_some(CustomerId(3)),
            generation: "00000000000000aa".into(),
        }
    }

    #[test]
    fn mints_and_verifies() {
        let keys = Keys::new(&[7u8; 32]).unwrap();
        let grant = grant(Role::Customer);
        let (token, _) = keys.mint(&grant, Duration::from_secs(60)).unwrap();
        let presented = keys.verify(&token).unwrap();
        assert_eq!(
            presented.principal(Some(&grant)),
            Some(Principal::Customer {
                user: UserId(7),
                customer: CustomerId(3)
            })
        );
        let other = Keys::new(&[8u8; 32]).unwrap();
        assert_eq!(other.verify(&token), None);
    }

    #[test]
    fn a_token_is_honoured_only_while_it_matches_the_grant() {
        let keys = Keys::new(&[7u8; 32]).unwrap();
        let grant = grant(Role::Customer);
        let (token, _) = keys.mint(&grant, Duration::from_secs(60)).unwrap();
        let presented = keys.verify(&token).unwrap();
        let changed = |edit: fn(&mut TokenGrant)| {
            let mut g = grant.clone();
            edit(&mut g);
            presented.principal(Some(&g))
        };
        assert_eq!(presented.principal(None), None, "user removed");
        assert_eq!(changed(|g| g.generation = "01".into()), None, "password");
        assert_eq!(
            changed(|g| {
                g.role = Role::Admin;
                g.customer_id = None;
            }),
            None,
            "role"
        );
        assert_eq!(changed(|g| g.customer_id = Some(CustomerId(4))), None);
        assert_eq!(changed(|g| g.user = UserId(8)), None);
    }

    #[test]
    fn a_verified_token_is_kept_and_a_refused_one_is_not() {
        let keys = Keys::new(&[7u8; 32]).unwrap();
        let grant = grant(Role::Admin);
        let (token, _) = keys.mint(&grant, Duration::from_secs(60)).unwrap();
        let first = keys.verify(&token).unwrap();
        assert_eq!(keys.verified.len(), 1);
        assert_eq!(keys.verify(&token), Some(first), "the same claims again");
        assert_eq!(keys.verified.len(), 1);
        // One character of the signature changed: refused, and not kept.
        let mut tampered = token.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(keys.verify(&tampered), None);
        assert_eq!(keys.verified.len(), 1);
        // Other keys never see this cache.
        assert_eq!(Keys::new(&[8u8; 32]).unwrap().verify(&token), None);
    }

    #[test]
    fn a_kept_token_is_served_only_while_a_full_check_would_pass() {
        let keys = Keys::new(&[7u8; 32]).unwrap();
        let (token, _) = keys
            .mint(&grant(Role::Admin), Duration::from_secs(60))
            .unwrap();
        let now = now_secs();
        let (_, validity) = keys.verify_signed(&token, now).unwrap();
        keys.verify(&token).unwrap();
        assert!(keys.verified.get(&token, now).is_some());
        // At `exp` the cache defers to the full check (which allows the
        // leeway beyond it).
        assert!(keys.verified.get(&token, validity.expires).is_none());
        assert!(keys.verified.get(&token, validity.expires - 1).is_some());
        // A clock that went back before `iat` (beyond the skew): refused,
        // as the full check refuses it.
        let issued = validity.issued.unwrap() as u64;
        assert!(
            keys.verified
                .get(&token, issued - LEEWAY_SECS - 1)
                .is_none()
        );
        let early = Validity {
            expires: now + 60,
            not_before: Some(now + 30),
            issued: None,
        };
        assert!(!early.holds_at(now), "nbf ahead of the leeway");
        assert!(early.holds_at(now + 30 - LEEWAY_SECS));
    }

    #[test]
    fn the_cache_of_verified_tokens_is_bounded() {
        let cache = VerifiedTokens::new(3);
        let keys = Keys::new(&[7u8; 32]).unwrap();
        let now = now_secs();
        let presented = keys
            .verify(
                &keys
                    .mint(&grant(Role::Admin), Duration::from_secs(60))
                    .unwrap()
                    .0,
            )
            .unwrap();
        let live = Validity {
            expires: now + 60,
            not_before: None,
            issued: None,
        };
        let expired = Validity {
            expires: now,
            ..live
        };
        for n in 0..10 {
            cache.insert(&format!("token-{n}"), &presented, live, now);
            assert!(cache.len() <= 3, "{} after {n}", cache.len());
        }
        assert!(cache.get("token-9", now).is_some(), "the newest is kept");
        cache.insert("expired", &presented, expired, now);
        assert!(cache.get("expired", now).is_none(), "never kept");
    }

    #[test]
    fn refuses_short_secrets() {
        assert!(Keys::new(b"short").is_err());
    }

    #[test]
    fn rate_limiter_counts_per_key() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_err());
        assert!(limiter.check("b").is_ok());
    }
}
