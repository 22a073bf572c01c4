//! Database-wide settings (key/value): the currency, and later secrets the
//! daemon generates once.

use rusqlite::{Connection, OptionalExtension};

use super::Tx;
use crate::store::SettingWrites;
use crate::{Currency, Error, Result, Timestamp};

pub(crate) fn currency(conn: &Connection) -> Result<Currency> {
    let code: Option<String> = conn
        .query_row(
            "SELECT value FROM settings WHERE key = 'currency'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    match code {
        Some(code) => Currency::parse(&code),
        None => Ok(Currency::USD),
    }
}

pub(crate) fn get(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?)
}

impl SettingWrites for Tx<'_> {
    fn now(&self) -> Timestamp {
        self.now
    }

    /// Sets the currency. Refused once products or orders exist in another
    /// currency, since their amounts would change meaning.
    fn set_currency(&self, currency: Currency) -> Result<()> {
        if currency == self.currency {
            return Ok(());
        }
        let used: i64 = self.conn.query_row(
            "SELECT (SELECT count(*) FROM products) + (SELECT count(*) FROM orders)",
            [],
            |r| r.get(0),
        )?;
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

    /// The value of `key`, generating 32 random bytes (hex) the first time.
    fn ensure_secret(&self, key: &str) -> Result<String> {
        self.conn.execute(
            "INSERT INTO settings (key, value) VALUES (?1, lower(hex(randomblob(32))))
             ON CONFLICT (key) DO NOTHING",
            [key],
        )?;
        get(self.conn, key)?.ok_or_else(|| Error::Database(format!("setting {key} vanished")))
    }

    /// Writes a setting.
    fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }
}
