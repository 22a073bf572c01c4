//! SMTP sessions on lettre's blocking [`SmtpConnection`], kept open and
//! reused across messages.
//!
//! Why not lettre's `SmtpTransport`: in lettre 0.11.23 it writes a
//! message's data and the closing `.` line in two writes on a socket
//! without `TCP_NODELAY`, so Nagle holds the five closing bytes until the
//! server acknowledges the data, which a server delays (40 ms on Linux):
//! about 22 messages a second per connection, to any server. (Upstream
//! sets `TCP_NODELAY` since lettre PR #1159, not in a release reachable
//! here.) Here the dot-stuffed data and its closing line go in one write.
//! Everything else is lettre's: the connection, STARTTLS and TLS (rustls),
//! AUTH, the commands and the parsing of replies, and the socket read and
//! write timeouts that bound every exchange.
//!
//! Connections are pooled: a send takes an idle one (checked with `NOOP`
//! when it has been idle for more than a second, dropped after a minute),
//! or opens one, and gives it back unless something went wrong. After any
//! error the connection is closed, never reused: its state is unknown.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{SmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::ClientId;

use super::MailError;

pub(crate) type Error = lettre::transport::smtp::Error;

/// How a connection is secured.
#[derive(Clone)]
enum Security {
    /// Plain text (`?tls=none`): a local relay.
    Plain,
    /// TLS from the first byte (`smtps://`).
    Wrapper(TlsParameters),
    /// STARTTLS, refusing a server that does not offer it (`smtp://`).
    Required(TlsParameters),
    /// STARTTLS when offered (`?tls=opportunistic`).
    Opportunistic(TlsParameters),
}

/// Where and how to connect: `OMS_SMTP_URL`, parsed.
#[derive(Clone)]
pub(crate) struct Server {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello: ClientId,
    timeout: Duration,
}

impl Server {
    /// Parses `smtp://user:pass@host:587` (STARTTLS required),
    /// `smtps://user:pass@host:465` (TLS), `smtp://host:25?tls=none`
    /// (plain) or `?tls=opportunistic`.
    pub(crate) fn parse(given: &str, timeout: Duration) -> Result<Server, MailError> {
        let shown = super::redacted_url(given);
        let url = url::Url::parse(given)
            .map_err(|e| MailError(format!("OMS_SMTP_URL {shown} is not a URL: {e}")))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| MailError(format!("OMS_SMTP_URL {shown} names no host")))?
            // An IPv6 literal comes bracketed.
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tls = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.to_ascii_lowercase());
        let params = || {
            TlsParameters::new(host.clone())
                .map_err(|e| MailError(format!("OMS_SMTP_URL {shown}: cannot set up TLS: {e}")))
        };
        let (security, default_port) = match (url.scheme(), tls.as_deref()) {
            ("smtps", None) => (Security::Wrapper(params()?), 465),
            ("smtp", None | Some("required")) => (Security::Required(params()?), 587),
            ("smtp", Some("opportunistic")) => (Security::Opportunistic(params()?), 587),
            ("smtp", Some("none")) => (Security::Plain, 25),
            (scheme, tls) => {
                return Err(MailError(format!(
                    "OMS_SMTP_URL {shown}: use smtp:// (STARTTLS), smtps:// (TLS) or smtp://...?tls=none (plain), not {scheme}:// with tls={}",
                    tls.unwrap_or("(none)")
                )));
            }
        };
        let decode = |s: &str| -> Result<String, MailError> {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|v| v.into_owned())
                .map_err(|_| MailError(format!("OMS_SMTP_URL {shown}: credentials are not UTF-8")))
        };
        let credentials = match url.password() {
            Some(password) => Some(Credentials::new(decode(url.username())?, decode(password)?)),
            None if !url.username().is_empty() => {
                return Err(MailError(format!(
                    "OMS_SMTP_URL {shown} has a user but no password"
                )));
            }
            None => None,
        };
        Ok(Server {
            host,
            port: url.port().unwrap_or(default_port),
            security,
            credentials,
            hello: ClientId::default(),
            timeout,
        })
    }

    /// A new session: connect, EHLO, STARTTLS, AUTH.
    fn connect(&self) -> Result<SmtpConnection, Error> {
        let wrapper = match &self.security {
            Security::Wrapper(params) => Some(params),
            _ => None,
        };
        let mut conn = SmtpConnection::connect(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &self.hello,
            wrapper,
            None,
        )?;
        let upgraded = match &self.security {
            Security::Required(params) => conn.starttls(params, &self.hello),
            Security::Opportunistic(params) if conn.can_starttls() => {
                conn.starttls(params, &self.hello)
            }
            _ => Ok(()),
        };
        if let Err(e) = upgraded {
            conn.abort();
            return Err(e);
        }
        if let Some(credentials) = &self.credentials
            && let Err(e) = conn.auth(DEFAULT_MECHANISMS, credentials)
        {
            conn.abort();
            return Err(e);
        }
        Ok(conn)
    }
}

/// A message's data, dot-stuffed and closed, sent as one command.
struct DataBlock(String);

impl DataBlock {
    /// `data` with every line that starts with `.` doubled (RFC 5321
    /// 4.5.2) and the closing `CRLF . CRLF`. `None` if it is not ASCII
    /// (then lettre's own send, which negotiates 8BITMIME, is used).
    fn new(data: &[u8]) -> Option<DataBlock> {
        let text = std::str::from_utf8(data).ok().filter(|t| t.is_ascii())?;
        let mut out = String::with_capacity(text.len() + 16);
        let mut at_line_start = true;
        for c in text.chars() {
            if at_line_start && c == '.' {
                out.push('.');
            }
            out.push(c);
            at_line_start = c == '\n';
        }
        out.push_str("\r\n.\r\n");
        Some(DataBlock(out))
    }
}

impl fmt::Display for DataBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Idle connections kept for reuse.
pub(crate) struct Pool {
    server: Server,
    idle: Mutex<Vec<(SmtpConnection, Instant)>>,
    max_idle: usize,
}

/// Reused without a `NOOP` check when idle for less than this.
const FRESH: Duration = Duration::from_secs(1);
/// Closed when idle for longer than this (servers drop idle sessions).
const STALE: Duration = Duration::from_secs(60);

impl Pool {
    pub(crate) fn new(server: Server, max_idle: usize) -> Pool {
        Pool {
            server,
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    fn take(&self) -> Result<SmtpConnection, Error> {
        loop {
            let parked = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            let Some((mut conn, since)) = parked else {
                return self.server.connect();
            };
            let idle_for = since.elapsed();
            if idle_for > STALE {
                conn.abort();
                continue;
            }
            if idle_for > FRESH && !conn.test_connected() {
                continue;
            }
            return Ok(conn);
        }
    }

    fn give_back(&self, conn: SmtpConnection) {
        if conn.has_broken() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.max_idle
        {
            idle.push((conn, Instant::now()));
        }
    }

    /// Sends one message (its envelope and its formatted bytes).
    pub(crate) fn send(&self, envelope: &Envelope, data: &[u8]) -> Result<(), Error> {
        let mut conn = self.take()?;
        let sent = match DataBlock::new(data) {
            Some(block) if ascii_addresses(envelope) => transaction(&mut conn, envelope, &block),
            _ => conn.send(envelope, data).map(|_| ()),
        };
        match sent {
            Ok(()) => {
                self.give_back(conn);
                Ok(())
            }
            Err(e) => {
                if e.is_transient() || e.is_permanent() {
                    // The server answered: the session is sane, say goodbye.
                    conn.abort();
                }
                // Otherwise (a timeout, a reset) the socket just closes.
                Err(e)
            }
        }
    }
}

/// Whether every envelope address is ASCII (else lettre's own send asks
/// for SMTPUTF8).
fn ascii_addresses(envelope: &Envelope) -> bool {
    envelope
        .from()
        .into_iter()
        .chain(envelope.to())
        .all(|a| AsRef::<str>::as_ref(a).is_ascii())
}

/// MAIL, RCPT, DATA, then the data and its closing line in one write.
fn transaction(
    conn: &mut SmtpConnection,
    envelope: &Envelope,
    block: &DataBlock,
) -> Result<(), Error> {
    conn.command(Mail::new(envelope.from().cloned(), Vec::new()))?;
    for to in envelope.to() {
        conn.command(Rcpt::new(to.clone(), Vec::new()))?;
    }
    conn.command(Data)?;
    conn.command(block)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_dot_stuffed_and_closed() {
        let block = DataBlock::new(b"Subject: x\r\n\r\n.one\r\ntwo.\r\n..three").unwrap();
        assert_eq!(
            block.0,
            "Subject: x\r\n\r\n..one\r\ntwo.\r\n...three\r\n.\r\n"
        );
        assert!(DataBlock::new("café".as_bytes()).is_none());
    }

    #[test]
    fn urls_follow_the_contract_not_lettres_defaults() {
        let t = Duration::from_secs(1);
        let server = Server::parse("smtp://u%40x:p%2Bq@mail.example", t).unwrap();
        assert_eq!((server.host.as_str(), server.port), ("mail.example", 587));
        assert!(matches!(server.security, Security::Required(_)));
        assert!(server.credentials.is_some());
        let plain = Server::parse("smtp://127.0.0.1:2525?tls=none", t).unwrap();
        assert_eq!(plain.port, 2525);
        assert!(matches!(plain.security, Security::Plain));
        assert_eq!(Server::parse("smtp://relay?tls=none", t).unwrap().port, 25);
        let tls = Server::parse("smtps://u:p@mail.example", t).unwrap();
        assert_eq!(tls.port, 465);
        assert!(matches!(tls.security, Security::Wrapper(_)));
        assert!(matches!(
            Server::parse("smtp://mail.example?tls=opportunistic", t)
                .unwrap()
                .security,
            Security::Opportunistic(_)
        ));
        for bad in [
            "http://mail.example",
            "smtps://mail.example?tls=none",
            "smtp://x?tls=maybe",
            "smtp://user@mail.example",
            "not a url",
        ] {
            assert!(Server::parse(bad, t).is_err(), "{bad}");
        }
        let Err(err) = Server::parse("ftp://user:hunter2@mail.example", t) else {
            panic!("ftp is refused");
        };
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
