//! Authentication: JWT (HS256, pinned), argon2 password checks off the
//! runtime with a cap on concurrent hashes, and login rate limits.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use oms_core::{CustomerId, Role, Timestamp, User, UserId, password};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::config::MIN_SECRET_LEN;

/// Issuer and audience of every token.
pub const ISSUER: &str = "oms";

/// The claims of an oms token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    pub role: Role,
    pub exp: u64,
    pub iat: u64,
    pub iss: String,
    pub aud: String,
    /// The customer record of a customer user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<i64>,
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
}

/// Why a secret was refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "OMS_JWT_SECRET must be at least {MIN_SECRET_LEN} bytes (it has {0}); use a long random value"
)]
pub struct WeakSecret(pub usize);

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
        validation.leeway = 5;
        Ok(Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        })
    }

    /// A token for `user`, valid for `ttl`.
    pub fn mint(
        &self,
        user: &User,
        ttl: Duration,
    ) -> Result<(String, Timestamp), jsonwebtoken::errors::Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let exp = now.saturating_add(ttl.as_secs());
        let claims = Claims {
            sub: user.id.to_string(),
            role: user.role,
            exp,
            iat: now,
            iss: ISSUER.to_string(),
            aud: ISSUER.to_string(),
            customer_id: user.customer_id.map(CustomerId::get),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        let expires_at =
            Timestamp::from_millis(i64::try_from(exp).unwrap_or(i64::MAX / 1000) * 1000);
        Ok((token, expires_at))
    }

    /// The caller of a bearer token, or `None` for any invalid token
    /// (expired, tampered, wrong key, wrong audience, `alg: none`, ...).
    pub fn verify(&self, token: &str) -> Option<Principal> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        let user = UserId(data.claims.sub.parse().ok()?);
        match (data.claims.role, data.claims.customer_id) {
            (Role::Admin, None) => Some(Principal::Admin { user }),
            (Role::Customer, Some(customer)) => Some(Principal::Customer {
                user,
                customer: CustomerId(customer),
            }),
            _ => None,
        }
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

    fn user(role: Role) -> User {
        User {
            id: UserId(7),
            email: "a@b.co".into(),
            name: "A".into(),
            role,
            customer_id: (role == Role::Customer).then_some(CustomerId(3)),
            created_at: Timestamp::now(),
        }
    }

    #[test]
    fn mints_and_verifies() {
        let keys = Keys::new(&[7u8; 32]).unwrap();
        let (token, _) = keys
            .mint(&user(Role::Customer), Duration::from_secs(60))
            .unwrap();
        assert_eq!(
            keys.verify(&token),
            Some(Principal::Customer {
                user: UserId(7),
                customer: CustomerId(3)
            })
        );
        let other = Keys::new(&[8u8; 32]).unwrap();
        assert_eq!(other.verify(&token), None);
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
