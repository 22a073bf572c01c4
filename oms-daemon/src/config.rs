//! Daemon settings, with the defaults of DESIGN §6.

use std::net::SocketAddr;

use oms_core::Location;
use std::time::Duration;

/// Everything `serve` needs to know.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub db: Location,
    /// HS256 secret; `None` means "generate once and keep it in the database".
    pub jwt_secret: Option<String>,
    /// Lifetime of tokens issued by `/auth/login`.
    pub token_ttl: Duration,
    /// Largest request body accepted (413 above).
    pub max_body: usize,
    /// Most connections open at once; more wait in the accept queue.
    pub max_connections: usize,
    /// Most long-poll requests waiting at once (503 above).
    pub max_waiters: usize,
    /// Read-only connections for queries.
    pub read_pool: usize,
    /// Time a client has to send its request headers. hyper starts it
    /// when a connection opens and again when an answer was written, so
    /// it is also how long a keep-alive connection may sit idle between
    /// requests before it is closed. A long-poll or event stream is not
    /// idle: it waits inside its request.
    pub header_read_timeout: Duration,
    /// Most jobs committed in one writer transaction.
    pub max_batch: usize,
    /// How often waiting long-polls look for commits by other processes.
    pub external_poll: Duration,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_grace: Duration,
    /// How often an idle event stream (`/api/changes/stream`) sends a
    /// comment line, so proxies keep it open.
    pub stream_heartbeat: Duration,
    /// Cancel PENDING orders older than this, checked every
    /// `expire_every` (`None`: never, leave it to `oms order expire`).
    pub expire_pending_after: Option<Duration>,
    pub expire_every: Duration,
    /// `OMS_WEBHOOK_SECRET`: the key of the payment webhook's signatures
    /// (`None`: the webhook answers 503).
    pub webhook_secret: Option<String>,
    /// `OMS_WEBHOOK_SECRET_PREVIOUS`: also accepted during a rotation.
    pub webhook_secret_previous: Option<String>,
    /// Deliver the notification outbox over SMTP from inside the daemon
    /// (`OMS_SMTP_URL` set); `None`: leave it to `oms notify send`.
    pub mail: Option<crate::mail::MailConfig>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret is never printed.
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("db", &self.db)
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "webhook_secret_previous",
                &self.webhook_secret_previous.as_ref().map(|_| "<redacted>"),
            )
            .field("max_body", &self.max_body)
            .field("max_connections", &self.max_connections)
            .field("max_waiters", &self.max_waiters)
            .field("mail", &self.mail)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Defaults for a database file, listening on 127.0.0.1:8080.
    pub fn new(db: Location) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            db,
            jwt_secret: None,
            token_ttl: Duration::from_secs(24 * 3600),
            max_body: 1024 * 1024,
            max_connections: 16_384,
            max_waiters: 12_000,
            read_pool: 4,
            header_read_timeout: Duration::from_secs(10),
            max_batch: 512,
            external_poll: Duration::from_millis(50),
            shutdown_grace: Duration::from_secs(8),
            stream_heartbeat: Duration::from_secs(15),
            expire_pending_after: None,
            expire_every: Duration::from_secs(60),
            webhook_secret: None,
            webhook_secret_previous: None,
            mail: None,
        }
    }
}

/// The shortest `OMS_JWT_SECRET` accepted.
pub const MIN_SECRET_LEN: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_a_secret() {
        let mut config = Config::new(Location::File("oms.db".into()));
        config.jwt_secret = Some("jwt-secret-value-0123456789abcdef".into());
        config.webhook_secret = Some("whsec-current-value".into());
        config.webhook_secret_previous = Some("whsec-previous-value".into());
        let text = format!("{config:?}");
        for secret in [
            "jwt-secret-value",
            "whsec-current-value",
            "whsec-previous-value",
        ] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(
            text.contains("webhook_secret: Some(\"<redacted>\")"),
            "{text}"
        );
    }
}
