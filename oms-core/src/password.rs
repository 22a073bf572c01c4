//! Password hashing: argon2id with the crate's defaults (OWASP's minimum:
//! m=19456 KiB, t=2, p=1), stored as a PHC string. Hashing takes tens of
//! milliseconds and ~19 MiB by design; async callers run it off the runtime.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::Error;

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Hashes a password into an argon2id PHC string with a random salt.
pub fn hash(password: &str) -> crate::Result<String> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::invalid(format!(
            "password must be at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if password.len() > 1024 {
        return Err(Error::invalid("password must be at most 1024 bytes"));
    }
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::Database(format!("password hashing failed: {e}")))
}

/// Checks a password against a stored PHC string. A malformed hash never
/// verifies.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_with_argon2id_and_verifies() {
        let phc = hash("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(phc.contains("m=19456,t=2,p=1"), "{phc}");
        assert!(verify("correct horse", &phc));
        assert!(!verify("wrong horse!", &phc));
        assert!(!verify("correct horse", "not a hash"));
    }

    #[test]
    fn refuses_short_passwords() {
        assert!(hash("short").is_err());
    }
}
