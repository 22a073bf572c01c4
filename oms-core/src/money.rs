//! Money as integer minor units with the currency's exponent. Never floats.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::Error;

/// An ISO 4217 currency code with its minor-unit exponent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

impl Currency {
    /// US dollars, the default of a new database.
    pub const USD: Currency = Currency {
        code: *b"USD",
        exponent: 2,
    };

    /// Parses a three-letter code (case-insensitive). The exponent is 0 for
    /// currencies without minor units (JPY, KRW, ...), 3 for the dinars that
    /// use thousandths, and 2 otherwise.
    pub fn parse(code: &str) -> crate::Result<Currency> {
        let upper = code.trim().to_ascii_uppercase();
        let bytes: [u8; 3] = upper
            .as_bytes()
            .try_into()
            .ok()
            .filter(|b: &[u8; 3]| b.iter().all(u8::is_ascii_uppercase))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "invalid currency {code:?}: use a three-letter ISO 4217 code like USD"
                ))
            })?;
        let exponent = match &bytes {
            b"JPY" | b"KRW" | b"VND" | b"CLP" | b"ISK" | b"UGX" | b"XAF" | b"XOF" | b"PYG"
            | b"RWF" | b"KMF" | b"GNF" | b"DJF" | b"VUV" | b"XPF" | b"BIF" => 0,
            b"BHD" | b"KWD" | b"OMR" | b"JOD" | b"TND" | b"IQD" | b"LYD" => 3,
            _ => 2,
        };
        Ok(Currency {
            code: bytes,
            exponent,
        })
    }

    /// The three-letter code.
    pub fn code(&self) -> &str {
        // The bytes were checked to be ASCII uppercase letters.
        std::str::from_utf8(&self.code).unwrap_or("XXX")
    }

    /// Digits after the decimal point.
    pub fn exponent(&self) -> u8 {
        self.exponent
    }

    /// Parses a decimal amount such as `49.99` in this currency. Refuses
    /// negative amounts, exponents, and more decimals than the currency has.
    pub fn parse_amount(&self, input: &str) -> crate::Result<Money> {
        let s = input.trim();
        let bad = |why: &str| Error::invalid(format!("invalid amount {input:?}: {why}"));
        if s.is_empty() {
            return Err(bad("empty"));
        }
        let (whole, frac) = match s.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (s, None),
        };
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("use digits with an optional decimal point, like 49.99"));
        }
        let frac = frac.unwrap_or("");
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("use digits with an optional decimal point, like 49.99"));
        }
        if s.ends_with('.') {
            return Err(bad("nothing after the decimal point"));
        }
        if frac.len() > usize::from(self.exponent) {
            return Err(bad(&format!(
                "{} allows at most {} decimal places",
                self.code(),
                self.exponent
            )));
        }
        let scale = 10i64.pow(u32::from(self.exponent));
        let whole: i64 = whole.parse().map_err(|_| bad("too large"))?;
        let mut frac_units: i64 = 0;
        if !frac.is_empty() {
            frac_units = frac.parse().map_err(|_| bad("too large"))?;
            frac_units *= 10i64.pow(u32::from(self.exponent) - frac.len() as u32);
        }
        // Negative control for the fuzz targets: unchecked arithmetic that
        // overflows (a panic in debug builds) on large amounts. Never
        // enabled in a real build.
        let minor = if crate::controls::MONEY_PARSE {
            Some(whole * scale + frac_units)
        } else {
            whole
                .checked_mul(scale)
                .and_then(|v| v.checked_add(frac_units))
        };
        let minor = minor
            .filter(|v| *v <= MAX_MINOR)
            .ok_or_else(|| bad("too large"))?;
        Ok(Money {
            minor,
            exponent: self.exponent,
        })
    }

    /// An amount from minor units.
    pub fn from_minor(&self, minor: i64) -> Money {
        Money {
            minor,
            exponent: self.exponent,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

/// The largest amount accepted, in minor units: room to multiply by any
/// accepted quantity without overflowing `i64`.
const MAX_MINOR: i64 = 1_000_000_000_000_000;

/// An amount of money: integer minor units plus the exponent to print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor: i64,
    exponent: u8,
}

impl Money {
    /// The amount in minor units (cents for USD).
    pub fn minor(&self) -> i64 {
        self.minor
    }

    /// `self × quantity`, or `None` on overflow.
    pub fn checked_mul(&self, quantity: i64) -> Option<Money> {
        self.minor.checked_mul(quantity).map(|minor| Money {
            minor,
            exponent: self.exponent,
        })
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(&self, other: Money) -> Option<Money> {
        self.minor.checked_add(other.minor).map(|minor| Money {
            minor,
            exponent: self.exponent,
        })
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Formatted by hand with itoa: amounts are printed millions of times
        // by exports and lists, and the padding machinery of `write!` showed
        // in profiles.
        if self.minor < 0 {
            f.write_str("-")?;
        }
        let abs = self.minor.unsigned_abs();
        let mut digits = itoa::Buffer::new();
        if self.exponent == 0 {
            return f.write_str(digits.format(abs));
        }
        let scale = 10u64.pow(u32::from(self.exponent));
        f.write_str(digits.format(abs / scale))?;
        f.write_str(".")?;
        let frac = digits.format(abs % scale);
        for _ in frac.len()..usize::from(self.exponent) {
            f.write_str("0")?;
        }
        f.write_str(frac)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_exactly() {
        let usd = Currency::USD;
        for (input, minor, printed) in [
            ("49.99", 4999, "49.99"),
            ("49.9", 4990, "49.90"),
            ("49", 4900, "49.00"),
            ("0.01", 1, "0.01"),
            ("0", 0, "0.00"),
            (" 7.05 ", 705, "7.05"),
        ] {
            let m = usd.parse_amount(input).unwrap();
            assert_eq!(m.minor(), minor, "{input}");
            assert_eq!(m.to_string(), printed, "{input}");
        }
    }

    #[test]
    fn refuses_bad_amounts() {
        let usd = Currency::USD;
        for bad in [
            "",
            "49.999",
            "-1",
            "1e3",
            "abc",
            ".5",
            "5.",
            "1,00",
            "NaN",
            "+1",
            "99999999999999999999",
        ] {
            assert!(usd.parse_amount(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn exponent_follows_currency() {
        let jpy = Currency::parse("jpy").unwrap();
        assert_eq!(jpy.exponent(), 0);
        assert_eq!(jpy.parse_amount("500").unwrap().to_string(), "500");
        assert!(jpy.parse_amount("500.5").is_err());
        let kwd = Currency::parse("KWD").unwrap();
        assert_eq!(kwd.parse_amount("1.234").unwrap().minor(), 1234);
        assert!(Currency::parse("US").is_err());
        assert!(Currency::parse("U$D").is_err());
    }

    #[test]
    fn negative_money_prints_sign() {
        assert_eq!(Currency::USD.from_minor(-5).to_string(), "-0.05");
    }
}
