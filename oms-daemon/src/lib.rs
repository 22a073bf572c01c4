//! `oms-daemon`: `oms serve`, the HTTP face of oms.
//!
//! hyper 1.x over tokio, no framework: [`serve`] accepts connections on a
//! listener it is given until a shutdown future resolves (so tests start it
//! on port 0 and stop it deterministically); [`service`] authenticates,
//! authorizes through the table in [`routes`], dispatches to `handlers`,
//! and logs and counts every request. The data is `oms_core::Db`, opened
//! for serving: writes are group-committed by its writer thread, reads run
//! on its reader threads.

pub mod auth;
pub mod config;
mod exposition;
mod feed;
mod handlers;
mod http;
pub mod mail;
mod metrics;
pub mod problem;
pub mod routes;
mod sd_notify;
pub mod session;
pub mod webhook;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use oms_core::prelude::*;
use oms_core::{Db, Location, ServeOptions};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

pub use config::Config;
pub use http::Response;

/// Entry points for the fuzz targets (`tools/fuzz/`) and their corpus replay;
/// not part of the daemon's API.
#[doc(hidden)]
pub mod fuzzing {
    /// Decodes `bytes` as every JSON request body; returns how many of
    /// them accepted it. Must never panic.
    pub fn decode_json_bodies(bytes: &[u8]) -> usize {
        crate::handlers::decode_bodies_for_fuzzing(bytes)
    }
}

use crate::auth::{Hasher, Keys, RateLimiter};
use crate::feed::Waiters;
use crate::metrics::Metrics;
use crate::problem::Problem;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Core(#[from] oms_core::Error),
    #[error(transparent)]
    Secret(#[from] auth::WeakSecret),
    #[error(transparent)]
    Mail(#[from] mail::MailError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// Everything handlers share.
pub struct App {
    pub config: Config,
    /// The shop's data: group-committed writes, reader threads, change
    /// notifications (oms-core owns the engine).
    db: Arc<Db>,
    /// The cap on long-polls and event streams waiting at once.
    waiters: Arc<Waiters>,
    metrics: Arc<Metrics>,
    keys: Keys,
    hasher: Hasher,
    login_by_ip: RateLimiter,
    login_by_account: RateLimiter,
    /// The payment webhook's secrets, keyed; `None` when not configured.
    webhook_keys: Option<webhook::Keys>,
    shutdown: watch::Sender<bool>,
    /// The SMTP side of the daemon's mail dispatcher, when configured.
    mailer: Option<Arc<mail::Mailer>>,
}

impl App {
    /// Opens the shop's data for serving (creating and migrating it, and
    /// starting its writer, readers and watchers) and resolves the JWT
    /// secret.
    pub fn open(config: Config) -> Result<Arc<App>, StartError> {
        let metrics = Arc::new(Metrics::new());
        let observer: Arc<dyn oms_core::WriteObserver> = metrics.clone();
        let db = Arc::new(Db::serve(
            &config.db,
            ServeOptions {
                readers: config.read_pool,
                max_batch: config.max_batch,
                watch_every: config.external_poll,
                observer: Some(observer),
            },
        )?);
        let secret = resolve_secret(&config, &db)?;
        let keys = Keys::new(secret.as_bytes())?;
        let mailer = match &config.mail {
            Some(mail) => Some(Arc::new(mail::Mailer::new(mail.clone())?)),
            None => None,
        };
        Ok(Arc::new(App {
            db,
            waiters: Arc::new(Waiters::new(config.max_waiters)),
            metrics,
            keys,
            hasher: Hasher::new(2)?,
            login_by_ip: RateLimiter::new(30, std::time::Duration::from_secs(60)),
            login_by_account: RateLimiter::new(10, std::time::Duration::from_secs(60)),
            webhook_keys: webhook::Keys::new(
                config.webhook_secret.as_deref(),
                config.webhook_secret_previous.as_deref(),
            ),
            shutdown: watch::Sender::new(false),
            mailer,
            config,
        }))
    }

    /// Lets the writer commit what is queued and stops it. Call after
    /// [`serve`] returned.
    pub fn close(&self) {
        self.db.close();
    }

    /// The signing keys (for `oms token create` and tests).
    pub fn keys(&self) -> &Keys {
        &self.keys
    }
}

/// The JWT secret: `OMS_JWT_SECRET` if set (refused when short), else one
/// generated once and kept in the database.
fn resolve_secret(config: &Config, db: &Db) -> Result<String, StartError> {
    if let Some(secret) = &config.jwt_secret {
        if secret.len() < config::MIN_SECRET_LEN {
            return Err(auth::WeakSecret(secret.len()).into());
        }
        return Ok(secret.clone());
    }
    if let Some(secret) = db.setting(JWT_SECRET_SETTING)? {
        return Ok(secret);
    }
    // A fresh database: generate it in a write transaction of its own.
    Ok(db.write(&oms_core::Actor::system("serve"), |tx| {
        tx.ensure_secret(JWT_SECRET_SETTING)
    })?)
}

/// Where the generated JWT secret is kept.
pub const JWT_SECRET_SETTING: &str = "jwt_secret";

/// The secret `oms token create` signs with: `OMS_JWT_SECRET`, or the
/// database's (generated if missing).
pub fn token_keys(env_secret: Option<String>, db: &Db) -> Result<Keys, StartError> {
    let location = db
        .location()
        .cloned()
        .unwrap_or_else(|| Location::File("oms.db".into()));
    let mut config = Config::new(location);
    config.jwt_secret = env_secret;
    Ok(Keys::new(resolve_secret(&config, db)?.as_bytes())?)
}

/// Accepts connections until `shutdown` resolves, then stops accepting,
/// releases long-pollers, and waits (up to the grace period) for in-flight
/// requests to finish.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(app.config.max_connections));
    if let Some(age) = app.config.expire_pending_after {
        tokio::spawn(expire_pending(Arc::clone(&app), age));
    }
    let dispatcher = app
        .mailer
        .clone()
        .map(|mailer| tokio::spawn(mail::run_in_daemon(Arc::clone(&app), mailer)));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let conn_app = Arc::clone(&app);
        let svc = service_fn(move |req| {
            let app = Arc::clone(&conn_app);
            async move { Ok::<_, Infallible>(service(app, peer, req).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(app.config.header_read_timeout)
            .serve_connection(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: releasing long-polls, finishing in-flight requests");
    if !oms_core::controls::SHUTDOWN_WAITERS {
        app.shutdown.send_replace(true);
    }
    let grace = tokio::time::sleep(app.config.shutdown_grace);
    tokio::pin!(grace);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = &mut grace => {
            tracing::warn!("grace period over; closing remaining connections");
        }
    }
    // The dispatcher records what its sends in flight did (through the
    // writer, which `App::close` stops after this returns); rows it could
    // not record come back when their lease runs out.
    if let Some(dispatcher) = dispatcher {
        tokio::select! {
            _ = dispatcher => {}
            () = &mut grace => tracing::warn!("grace period over; mail dispatcher abandoned"),
        }
    }
    Ok(())
}

/// Cancels stale PENDING orders on a timer, through the writer like any
/// other write, until shutdown.
async fn expire_pending(app: Arc<App>, age: std::time::Duration) {
    let mut shutdown = app.shutdown.subscribe();
    let mut tick = tokio::time::interval(app.config.expire_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let cutoff = oms_core::Timestamp::now().minus(age);
        match app
            .db
            .write_async(oms_core::Actor::system("expiry"), move |tx| {
                tx.expire_pending(cutoff)
            })
            .await
        {
            Ok(done) if !done.cancelled.is_empty() => {
                tracing::info!(cancelled = done.cancelled.len(), "expired pending orders");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "expiring pending orders failed"),
        }
    }
}

/// One request: request id, authentication, authorization, dispatch,
/// problem rendering, logging and metrics.
pub async fn service(app: Arc<App>, peer: SocketAddr, req: Request<Incoming>) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(next_request_id);
    let matched = routes::match_path(req.uri().path());
    let token_given = req.headers().contains_key(AUTHORIZATION);
    let route_label = matched.as_ref().map_or("unmatched", |m| m.route.pattern());
    let path = req.uri().path().to_string();

    // Answers given before a handler reads the body drain it first (see
    // `http::discard_body`); `drained` is false when that was impossible.
    let mut drained = true;
    let mut response = match matched {
        None => {
            drained = http::discard_body(req, app.config.max_body).await;
            http::problem(&Problem::not_found(format!("no route for {path}")))
        }
        Some(matched) if method == hyper::Method::OPTIONS => {
            // What the route answers, for anyone: the methods are no secret.
            drained = http::discard_body(req, app.config.max_body).await;
            let mut res = http::empty(StatusCode::NO_CONTENT);
            if let Ok(v) = HeaderValue::from_str(&routes::allowed_methods(matched.route)) {
                res.headers_mut().insert(hyper::header::ALLOW, v);
            }
            res
        }
        Some(matched) => {
            let credential = session::credential(req.headers());
            let principal = match credential {
                Some(c) => authenticate(&app, c.token()).await,
                None => Ok(None),
            };
            // Only a bad bearer token is refused where no token is needed:
            // a stale session cookie must not lock a browser out of the
            // login page, so it counts as no credential at all.
            let token_given = req.headers().contains_key(AUTHORIZATION);
            // A write authenticated by the session cookie must come from the
            // dashboard's own origin (cross-site request forgery).
            let authenticated = matches!(principal, Ok(Some(_)));
            let cross_site_cookie = matches!(credential, Some(session::Credential::Cookie(_)))
                && authenticated
                && !is_safe(&method)
                && !session::same_origin(req.headers());
            match principal
                .and_then(|principal| routes::authorize(matched.route, &method, principal, peer))
            {
                Ok(_) if cross_site_cookie => {
                    drained = http::discard_body(req, app.config.max_body).await;
                    http::problem(&Problem::forbidden(
                        "a write with the session cookie must come from the dashboard's own origin",
                    ))
                }
                Ok(access) => {
                    if token_given && !authenticated {
                        // A bad token is refused even where none is needed.
                        drained = http::discard_body(req, app.config.max_body).await;
                        http::problem(&Problem::unauthorized(
                            "the bearer token is invalid or expired",
                        ))
                    } else {
                        let ctx = handlers::Ctx {
                            app: &app,
                            access,
                            param: matched.param,
                            peer,
                        };
                        match handlers::dispatch(matched.route, ctx, req).await {
                            Ok(res) => res,
                            Err(problem) => http::problem(&problem),
                        }
                    }
                }
                Err(problem) => {
                    drained = http::discard_body(req, app.config.max_body).await;
                    let mut res = http::problem(&problem);
                    if problem.status == StatusCode::METHOD_NOT_ALLOWED
                        && let Ok(v) =
                            HeaderValue::from_str(&routes::allowed_methods(matched.route))
                    {
                        res.headers_mut().insert(hyper::header::ALLOW, v);
                    }
                    res
                }
            }
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    http::common_headers(&mut response, token_given);
    if !drained || response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        // The rest of an oversized body is never read: say that this
        // connection ends here, so the client does not reuse it.
        response
            .headers_mut()
            .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    app.metrics.observe_request(
        route_label,
        method_label(&method),
        status,
        elapsed.as_secs_f64(),
    );
    tracing::info!(
        target: "oms::http",
        request_id = %request_id,
        method = %method,
        path = %path,
        status,
        micros = elapsed.as_micros() as u64,
        "request"
    );
    response
}

/// Methods that change nothing (RFC 9110 §9.2.1).
fn is_safe(method: &hyper::Method) -> bool {
    matches!(
        *method,
        hyper::Method::GET | hyper::Method::HEAD | hyper::Method::OPTIONS
    )
}

/// The caller of a token (bearer header or session cookie): it must verify and still match
/// the user's current grant (the user exists, with the same role, customer
/// and token generation), read on every request so that removing a user or
/// changing its password or role ends its tokens at once, whichever
/// process made the change. `Ok(None)` when the token does not verify or
/// no longer matches; the database's problem (503 and the like) when the
/// user cannot be read: the request is refused rather than let through
/// unchecked, and the client is told to retry, not that its token is bad.
async fn authenticate(app: &App, token: &str) -> Result<Option<auth::Principal>, Problem> {
    let Some(presented) = app.keys.verify(token) else {
        return Ok(None);
    };
    let user = presented.user;
    match app.db.lookup(move |store| store.token_grant(user)).await {
        Ok(grant) => Ok(presented.principal(grant.as_ref())),
        Err(e) => {
            tracing::warn!(error = %e, "cannot check a token against its user");
            Err(Problem::from(e))
        }
    }
}

fn method_label(method: &hyper::Method) -> &'static str {
    match *method {
        hyper::Method::GET => "GET",
        hyper::Method::POST => "POST",
        hyper::Method::PUT => "PUT",
        hyper::Method::PATCH => "PATCH",
        hyper::Method::DELETE => "DELETE",
        hyper::Method::HEAD => "HEAD",
        hyper::Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

fn next_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let prefix =
        PREFIX.get_or_init(|| std::process::id() ^ (Instant::now().elapsed().subsec_nanos()));
    format!("{prefix:08x}-{:010x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Connections the kernel may queue for the accept loop. tokio's `bind`
/// asks for 1,024; a burst of thousands of clients (a load balancer
/// reconnecting, long-polls coming back after a restart) then overflows
/// it, and every SYN dropped costs its client a one-second retransmission
/// (seen as /healthz p99 of 1 s while 12,000 long-polls connected, in
/// `scripts/limits`). Linux caps the figure at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 8192;

/// A listening socket on `addr` with [`LISTEN_BACKLOG`], reusing an
/// address left in TIME_WAIT as `TcpListener::bind` does.
fn listen_on(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Runs `oms serve` until SIGINT or SIGTERM: binds, serves, shuts down
/// gracefully, commits what is queued, returns.
pub fn run(config: Config, on_ready: impl FnOnce(SocketAddr)) -> Result<(), StartError> {
    init_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| StartError::Io {
            context: "cannot start the async runtime".into(),
            source,
        })?;
    runtime.block_on(async move {
        let listen = config.listen;
        let listener = listen_on(listen).map_err(|source| StartError::Io {
            context: format!("cannot listen on {listen}"),
            source,
        })?;
        let local = listener.local_addr().map_err(|source| StartError::Io {
            context: "cannot read the listening address".into(),
            source,
        })?;
        let app = App::open(config)?;
        tracing::info!(address = %local, "listening");
        on_ready(local);
        // Ready for systemd (Type=notify) only now: the listener is bound
        // (connections queue until the accept loop takes them) and the
        // database is open and migrated.
        sd_notify::notify_or_log(&format!("READY=1\nSTATUS=serving http://{local}/"));
        let shutdown = async {
            shutdown_signal().await;
            sd_notify::notify_or_log("STOPPING=1\nSTATUS=shutting down");
        };
        serve(listener, Arc::clone(&app), shutdown)
            .await
            .map_err(|source| StartError::Io {
                context: "server failed".into(),
                source,
            })?;
        let closing = Arc::clone(&app);
        let _ = tokio::task::spawn_blocking(move || closing.close()).await;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Logs to stderr: `OMS_LOG` is the filter (default info),
/// `OMS_LOG_FORMAT=json` switches to JSON lines.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OMS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = std::env::var("OMS_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(stderr_wants_colour())
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Whether text logs on stderr may carry ANSI colours: only when stderr is
/// a terminal and `NO_COLOR` is unset or empty (no-color.org). A file
/// (`oms serve 2>oms.log`), a pipe or journald gets plain text; the fmt
/// layer would otherwise colour them regardless. Every place that sets up
/// logging (here and the CLI) asks this.
pub fn stderr_wants_colour() -> bool {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}
