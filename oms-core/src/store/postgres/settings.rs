//! Shop-wide settings: the currency, generated secrets, the mail shop id.

use super::session::Session;
use super::{Access, Tx};
use crate::store::SettingWrites;
use crate::{Currency, Error, Result, Timestamp};

pub(super) fn currency(s: &mut Session) -> Result<Currency> {
    match get(s, "currency")? {
        Some(code) => Currency::parse(&code),
        None => Ok(Currency::USD),
    }
}

pub(super) fn get(s: &mut Session, key: &str) -> Result<Option<String>> {
    Ok(
        s.query_opt("SELECT value FROM settings WHERE key = $1", &[&key])?
            .map(|r| r.get(0)),
    )
}

impl SettingWrites for Tx<'_> {
    fn now(&self) -> Timestamp {
        self.now
    }

    fn set_currency(&self, currency: Currency) -> Result<()> {
        if currency == self.currency {
            return Ok(());
        }
        let used: i64 = self
            .session()
            .query_one(
                "SELECT (SELECT count(*) FROM products) + (SELECT count(*) FROM orders)",
                &[],
            )?
            .get(0);
        if used > 0 {
            return Err(Error::Conflict(format!(
                "the database already holds amounts in {}; cannot switch to {currency}",
                self.currency
            )));
        }
        self.set_setting("currency", currency.code())?;
        self.new_currency.set(Some(currency));
        Ok(())
    }

    fn ensure_secret(&self, key: &str) -> Result<String> {
        if let Some(value) = get(&mut self.session(), key)? {
            return Ok(value);
        }
        // 256 random bits from the server's generator, as hex.
        let row = self.session().query_one(
            "INSERT INTO settings (key, value)
             VALUES ($1, replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''))
             ON CONFLICT (key) DO UPDATE SET value = settings.value
             RETURNING value",
            &[&key],
        )?;
        Ok(row.get(0))
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.session().execute(
            "INSERT INTO settings (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&key, &value],
        )?;
        Ok(())
    }
}
