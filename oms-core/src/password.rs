//! Password hashing and the password policy.
//!
//! Hashing: argon2id with the crate's defaults (OWASP's minimum: m=19456
//! KiB, t=2, p=1), stored as a PHC string. Hashing takes tens of
//! milliseconds and ~19 MiB by design; async callers run it off the runtime.
//!
//! Policy ([`check_policy`], the one place that decides which passwords
//! are accepted, for `/auth/register`, `oms user add` and `oms user
//! passwd`): at least [`MIN_PASSWORD_LEN`] characters, at most
//! [`MAX_PASSWORD_BYTES`] bytes, and not one of the most common passwords
//! (OWASP ASVS 4.0 2.1.7), compared case-insensitively. The list is
//! `oms-core/data/common-passwords.txt` (its header names the source).

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::Error;

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Longest password accepted (argon2 would take more, but a longer one is
/// not a password a person types).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The common-password list: comment lines start with `#!`, entries are
/// lower-case, at least [`MIN_PASSWORD_LEN`] characters, sorted by bytes.
const COMMON_PASSWORDS: &str = include_str!("../data/common-passwords.txt");

fn common_passwords() -> &'static [&'static str] {
    static LIST: OnceLock<Vec<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .filter(|l| !l.starts_with("#!") && !l.is_empty())
            .collect()
    })
}

/// Whether `password` is on the common-password list, ignoring case.
pub fn is_common(password: &str) -> bool {
    common_passwords()
        .binary_search(&password.to_lowercase().as_str())
        .is_ok()
}

/// Accepts or refuses a new password, with a message that names the rule
/// broken ([`Error::Invalid`]: exit 5 on the CLI, 422 over HTTP).
pub fn check_policy(password: &str) -> crate::Result<()> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::invalid(format!(
            "password must be at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::invalid(format!(
            "password must be at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    if is_common(password) {
        return Err(Error::invalid(format!(
            "password is one of the {} most common passwords (case does not matter); choose one that is harder to guess",
            common_passwords().len()
        )));
    }
    Ok(())
}

/// Hashes a password into an argon2id PHC string with a random salt,
/// after [`check_policy`] accepted it.
pub fn hash(password: &str) -> crate::Result<String> {
    check_policy(password)?;
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
        let err = check_policy("1234567").expect_err("7 characters");
        assert!(err.to_string().contains("at least 8 characters"), "{err}");
        // Characters, not bytes: eight accented letters are enough.
        check_policy("éàüöçñøå").expect("8 characters");
    }

    #[test]
    fn refuses_common_passwords_whatever_their_case() {
        for common in [
            "password",
            "12345678",
            "Password1",
            "PASSWORD1",
            "qwertyuiop",
            "iloveyou",
            "sunshine",
            "11111111",
        ] {
            let err = check_policy(common).expect_err(common);
            assert!(
                err.to_string().contains("most common passwords"),
                "{common}: {err}"
            );
            assert!(hash(common).is_err(), "{common} is never hashed");
        }
    }

    #[test]
    fn accepts_passwords_that_are_long_and_not_common() {
        for fine in [
            "correct horse battery staple",
            "demo-admin-password",
            "Tr0ub4dor&3-but-longer",
            "zq8#Lm2!vR",
        ] {
            check_policy(fine).unwrap_or_else(|e| panic!("{fine}: {e}"));
        }
        let too_long = "x".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(check_policy(&too_long).is_err());
    }

    #[test]
    fn the_common_list_is_sorted_lower_case_and_long_enough() {
        let list = common_passwords();
        assert!(list.len() > 8000, "{} entries", list.len());
        for pair in list.windows(2) {
            assert!(pair[0] < pair[1], "not sorted or duplicated: {pair:?}");
        }
        for entry in list {
            assert_eq!(*entry, entry.to_lowercase(), "not lower-case");
            assert!(
                entry.chars().count() >= MIN_PASSWORD_LEN,
                "{entry:?} is short"
            );
            assert_eq!(*entry, entry.trim(), "{entry:?} has spaces around it");
        }
    }
}
