//! One connection to PostgreSQL: the synchronous `postgres` client, its
//! prepared statements, reconnection, TLS, and how its errors become oms
//! errors.
//!
//! Why the synchronous client: the store's traits are synchronous (they
//! run on the writer thread, on reader threads and on a command's own
//! thread), like the SQLite backend's. The `postgres` client drives a small
//! tokio runtime of its own, which must never start, run or stop inside an
//! async context: every connection is created, used and dropped on the
//! threads `Db` runs the store on, never on an async worker; `Drop` hands
//! the client to a plain thread so a handle dropped anywhere is safe.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use postgres::types::ToSql;
use postgres::{Client, Row, Statement};

use crate::{Error, Result};

/// How to reach the server: the `postgres://` URL, parsed once.
#[derive(Clone)]
pub(crate) struct Target {
    config: postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    /// The URL without its password, for messages.
    shown: String,
}

impl Target {
    pub(crate) fn parse(url: &str, shown: String) -> Result<Target> {
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| Error::invalid(format!("{shown}: not a PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name("oms");
        }
        Ok(Target {
            config,
            tls: tls(),
            shown,
        })
    }

    /// Opens a session.
    pub(crate) fn connect(self: &Arc<Self>) -> Result<Session> {
        let mut session = Session {
            target: Arc::clone(self),
            client: None,
            statements: HashMap::new(),
            conflicted: false,
            in_transaction: false,
        };
        off_async(|| session.client().map(|_| ()))?;
        Ok(session)
    }
}

/// How long a connection attempt may take before it counts as
/// unavailable (a restarting server answers in milliseconds or refuses).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Session settings every connection runs with: a write waits at most
/// 10 s for another writer's lock (as the SQLite busy timeout), and no
/// statement runs longer than a request may wait.
const SESSION_SETUP: &str = "SET lock_timeout = '10s'; SET statement_timeout = '60s';
    SET idle_in_transaction_session_timeout = '60s'; SET client_min_messages = warning;";

/// TLS as libpq's `sslmode` means it (tokio-postgres reads `sslmode` from
/// the URL: `disable`, `prefer`, the default, or `require`): the channel is
/// encrypted when the server offers TLS, but, as with libpq's `require`,
/// the server's certificate is not checked against a CA. rustls with the
/// ring provider only (no OpenSSL, no aws-lc).
fn tls() -> tokio_postgres_rustls::MakeRustlsConnect {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map(|builder| {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
                .with_no_client_auth()
        });
    match config {
        Ok(config) => tokio_postgres_rustls::MakeRustlsConnect::new(config),
        // The ring provider supports the safe defaults; this is unreachable
        // in practice, and a TLS-less config keeps plain connections working.
        Err(_) => tokio_postgres_rustls::MakeRustlsConnect::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .map(|b| {
                b.dangerous()
                    .with_custom_certificate_verifier(Arc::new(EncryptOnly(Arc::new(
                        rustls::crypto::ring::default_provider(),
                    ))))
                    .with_no_client_auth()
            })
            .unwrap_or_else(|_| {
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth()
            }),
        ),
    }
}

/// Encryption without certificate verification (libpq's `sslmode=require`):
/// any server certificate is accepted, but its handshake signatures are
/// still checked, so the session is encrypted end to end with whoever
/// holds that certificate's key.
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One connection, reconnected on first use after it broke, with its
/// prepared statements.
pub(crate) struct Session {
    target: Arc<Target>,
    client: Option<Client>,
    statements: HashMap<String, Statement>,
    /// Set when a statement failed with a deadlock or serialization
    /// failure; whoever runs the transaction may run its work again.
    conflicted: bool,
    /// Between a `BEGIN` and its `COMMIT`/`ROLLBACK`.
    in_transaction: bool,
}

/// Query parameters.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl Session {
    /// The client, connecting (again) when there is none or it broke.
    fn client(&mut self) -> Result<&mut Client> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.drop_client();
        }
        if self.client.is_none() {
            let mut client = self
                .target
                .config
                .connect(self.target.tls.clone())
                .map_err(|e| unavailable(&self.target.shown, &e))?;
            client.batch_execute(SESSION_SETUP).map_err(pg_error)?;
            self.statements.clear();
            self.client = Some(client);
        }
        self.client
            .as_mut()
            .ok_or_else(|| Error::Unavailable("no connection".into()))
    }

    fn drop_client(&mut self) {
        if let Some(client) = self.client.take() {
            drop_off_async(client);
        }
        self.statements.clear();
        self.in_transaction = false;
    }

    /// The prepared statement of `sql`, prepared once per connection.
    fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client()?.prepare(sql).map_err(pg_error)?;
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    /// Runs `f` and forgets the connection when it broke meanwhile, so the
    /// next call reconnects. A connection found broken outside a
    /// transaction (the server restarted since its last use) is replaced
    /// and `f` runs once more on the new one: nothing of it had run, so
    /// the first request after a restart succeeds instead of failing once
    /// per pooled connection. Inside a transaction the error stands: the
    /// server rolled the transaction back, and its owner must start over.
    fn guarded<T: Send>(&mut self, f: impl Fn(&mut Self) -> Result<T> + Send + Sync) -> Result<T> {
        let reused = self.client.is_some() && !self.in_transaction;
        let mut result = off_async(|| f(self));
        if reused && matches!(result, Err(Error::Unavailable(_))) {
            self.drop_client();
            result = off_async(|| f(self));
        }
        match &result {
            Err(Error::Unavailable(_)) => self.drop_client(),
            Err(e) if retryable(e) => self.conflicted = true,
            _ => {}
        }
        result
    }

    pub(crate) fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        self.guarded(|s| {
            let statement = s.statement(sql)?;
            s.client()?.query(&statement, params).map_err(pg_error)
        })
    }

    pub(crate) fn query_opt(&mut self, sql: &str, params: Params<'_>) -> Result<Option<Row>> {
        self.guarded(|s| {
            let statement = s.statement(sql)?;
            s.client()?.query_opt(&statement, params).map_err(pg_error)
        })
    }

    pub(crate) fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row> {
        self.guarded(|s| {
            let statement = s.statement(sql)?;
            s.client()?.query_one(&statement, params).map_err(pg_error)
        })
    }

    pub(crate) fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64> {
        self.guarded(|s| {
            let statement = s.statement(sql)?;
            s.client()?.execute(&statement, params).map_err(pg_error)
        })
    }

    /// Statements without parameters, in one round trip (the simple query
    /// protocol): transaction control, savepoints, migrations.
    pub(crate) fn batch(&mut self, sql: &str) -> Result<()> {
        self.guarded(|s| s.client()?.batch_execute(sql).map_err(pg_error))?;
        // Transaction control is only ever sent through here.
        if sql.starts_with("BEGIN") {
            self.in_transaction = true;
        } else if sql == "COMMIT" || sql == "ROLLBACK" {
            self.in_transaction = false;
        }
        Ok(())
    }

    /// Waits up to `wait` for a notification (LISTEN), then takes every
    /// one already received; their payloads, oldest first.
    pub(crate) fn notifications(&mut self, wait: Duration) -> Result<Vec<String>> {
        use postgres::fallible_iterator::FallibleIterator;
        self.guarded(|s| {
            let client = s.client()?;
            let mut out = Vec::new();
            let mut notifications = client.notifications();
            let first = notifications
                .timeout_iter(wait)
                .next()
                .map_err(pg_error)?
                .map(|n| n.payload().to_string());
            if let Some(first) = first {
                out.push(first);
                let mut pending = notifications.iter();
                while let Some(n) = pending.next().map_err(pg_error)? {
                    out.push(n.payload().to_string());
                }
            }
            Ok(out)
        })
    }
}

/// A read-only REPEATABLE READ transaction: every read sees one snapshot.
pub(crate) struct Snapshot<'c> {
    tx: postgres::Transaction<'c>,
}

impl Snapshot<'_> {
    pub(crate) fn query_one(&mut self, sql: &str) -> Result<Row> {
        self.tx.query_one(sql, &[]).map_err(pg_error)
    }

    /// Every row of `sql`, `batch` at a time through a portal (a cursor of
    /// the extended protocol), so memory stays bounded.
    pub(crate) fn for_each(
        &mut self,
        sql: &str,
        batch: i32,
        f: &mut dyn FnMut(&Row) -> Result<()>,
    ) -> Result<()> {
        let portal = self.tx.bind(sql, &[]).map_err(pg_error)?;
        loop {
            let rows = self.tx.query_portal(&portal, batch).map_err(pg_error)?;
            for row in &rows {
                f(row)?;
            }
            if rows.len() < usize::try_from(batch).unwrap_or(usize::MAX) {
                return Ok(());
            }
        }
    }
}

impl Session {
    /// Runs `f` in a read-only snapshot (a REPEATABLE READ transaction),
    /// on the calling thread: call it off any async runtime (a command's
    /// copy or backup).
    pub(crate) fn snapshot(
        &mut self,
        f: &mut dyn FnMut(&mut Snapshot<'_>) -> Result<()>,
    ) -> Result<()> {
        let client = self.client()?;
        let tx = client
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(pg_error)?;
        let mut snapshot = Snapshot { tx };
        let result = f(&mut snapshot);
        match result {
            Ok(()) => snapshot.tx.commit().map_err(pg_error),
            Err(e) => {
                let _ = snapshot.tx.rollback();
                Err(e)
            }
        }
    }

    /// Whether a statement hit a deadlock or serialization failure since
    /// the last call; clears the mark.
    pub(crate) fn take_conflict(&mut self) -> bool {
        std::mem::take(&mut self.conflicted)
    }

    /// A new session to the same server (outside this one's transaction).
    pub(crate) fn reconnect_elsewhere(&self) -> Result<Session> {
        self.target.connect()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.drop_client();
    }
}

/// Runs `f` where the synchronous client may block: on this thread, or,
/// when this thread runs inside a tokio runtime (a daemon opening its
/// handle, a test), on a scoped thread of its own. The client drives a
/// runtime of its own, which must not be entered from inside another.
fn off_async<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|scope| match scope.spawn(f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// Drops a client on a plain thread: its runtime must not be dropped inside
/// an async context, which a handle's owner may be in.
fn drop_off_async(client: Client) {
    let dropped = std::thread::Builder::new()
        .name("oms-pg-close".into())
        .spawn(move || drop(client));
    if let Ok(handle) = dropped {
        let _ = handle.join();
    }
}

/// The server could not be reached or the connection broke.
fn unavailable(shown: &str, e: &postgres::Error) -> Error {
    Error::Unavailable(format!("cannot reach PostgreSQL at {shown}: {e}"))
}

/// A PostgreSQL error as an oms error, by SQLSTATE.
pub(crate) fn pg_error(e: postgres::Error) -> Error {
    use postgres::error::SqlState;
    let Some(db) = e.as_db_error() else {
        if e.is_closed() || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>())
        {
            return Error::Unavailable(format!("the connection to PostgreSQL failed: {e}"));
        }
        // A client-side error: a value that does not convert (a bug here).
        return Error::Database(format!("PostgreSQL client: {e}"));
    };
    let code = db.code();
    if *code == SqlState::DISK_FULL {
        return Error::StorageFull;
    }
    if *code == SqlState::LOCK_NOT_AVAILABLE || *code == SqlState::QUERY_CANCELED {
        return Error::Busy {
            timeout_ms: crate::store::postgres::LOCK_TIMEOUT.as_millis() as u64,
        };
    }
    if *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
        || code.code().starts_with("08")
    {
        return Error::Unavailable(format!("PostgreSQL is restarting: {}", db.message()));
    }
    Error::Database(format!("{}: {}", code.code(), db.message()))
}

/// Whether an error is worth running the same work again: a deadlock or a
/// serialization failure (SQLSTATE 40P01, 40001), which the server rolled
/// back.
pub(crate) fn retryable(e: &Error) -> bool {
    matches!(e, Error::Database(m) if m.starts_with("40P01") || m.starts_with("40001"))
}
