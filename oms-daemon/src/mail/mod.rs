//! The notification dispatcher: delivers the outbox over SMTP, at least
//! once, from inside `oms serve` (a background task, when `OMS_SMTP_URL`
//! is set) and from `oms notify send` (cron). Both run the same
//! [`Dispatcher`]; they differ only in how they reach the database
//! ([`Outbox`]): the daemon through its writer thread (group commit), the
//! command line through a handle of its own ([`Db::open`]).
//!
//! One batch: claim up to N due rows under a lease (one short write
//! transaction), read their orders, send with no transaction open,
//! record the outcomes (a second short write). Sending:
//!
//! - lettre's blocking SMTP connections on a few mail threads of the
//!   dispatcher's own, at the lowest CPU priority so that mail uses the
//!   CPU placement leaves idle (`workers`), kept open and reused (`smtp`
//!   says why not lettre's own transport). Blocking, because their socket read and write timeouts
//!   bound every exchange with the server, so a stalling server cannot
//!   hold a row (lettre's async connection times out only the connect, and
//!   cancelling a send midway would leave a session in an unknown state).
//! - A send starts only while the lease has room for it to finish
//!   ([`MailConfig::lease`] is ten timeouts; none starts in the last five),
//!   so two dispatchers never hold one row at the same time. Rows not
//!   started are released, not counted as attempts.
//! - A 5xx answer is permanent: the row is `dead` at once. A 4xx answer, a
//!   connection error or a timeout is temporary: the row is retried after
//!   `retry_after × 2^(attempts-1)` (at most 8 h) with ±25% jitter, and is
//!   `dead` after `max_attempts`. `last_error` says why.
//! - Every message carries the row's `Message-ID`, fixed at its first
//!   claim, so a receiver can drop the duplicate that a lost `250` (or a
//!   crash between sending and recording) causes.

mod daemon;
pub mod render;
mod smtp;
mod workers;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lettre::Message;
use lettre::message::{Mailbox, MultiPart};
use oms_core::{
    Actor, Backlog, Claim, ClaimedNotification, Db, MailOrder, MailOutcome, NotificationId,
    OrderId, Recorded, Timestamp,
};

pub(crate) use daemon::run_in_daemon;

/// Longest first retry delay doubles up to.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(8 * 3600);

/// Settings of the dispatcher (`OMS_SMTP_URL`, `OMS_MAIL_FROM`, ...).
#[derive(Clone)]
pub struct MailConfig {
    /// `smtp://user:pass@host:587` (STARTTLS), `smtps://user:pass@host:465`,
    /// `smtp://host:25?tls=none` (plain: a local relay).
    pub smtp_url: String,
    /// The `From` address (`OMS_MAIL_FROM`): `shop@example.com` or
    /// `Shop <shop@example.com>`. Its domain ends every `Message-ID`.
    pub from: String,
    /// Base of the tracking link in mails (`OMS_PUBLIC_URL`).
    pub public_url: Option<String>,
    /// Longest wait for the server on any one exchange (connect, each
    /// reply). A row's lease is ten of these.
    pub timeout: Duration,
    /// Delay before the first retry after a temporary failure; doubles
    /// with each further attempt, up to 8 hours.
    pub retry_after: Duration,
    /// Attempts before a row that keeps failing temporarily is `dead`.
    pub max_attempts: u32,
    /// Rows claimed per batch.
    pub batch: usize,
    /// Messages sent at once (and SMTP connections kept open).
    pub concurrency: usize,
    /// Longest sleep of the daemon's dispatcher between looks at the
    /// outbox (commits by the daemon wake it sooner; those by other
    /// processes are seen at this pace).
    pub idle_poll: Duration,
}

impl std::fmt::Debug for MailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("MailConfig")
            .field("smtp_url", &redacted_url(&self.smtp_url))
            .field("from", &self.from)
            .field("public_url", &self.public_url)
            .field("timeout", &self.timeout)
            .field("retry_after", &self.retry_after)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl MailConfig {
    /// The defaults for a server and a sender.
    pub fn new(smtp_url: impl Into<String>, from: impl Into<String>) -> MailConfig {
        MailConfig {
            smtp_url: smtp_url.into(),
            from: from.into(),
            public_url: None,
            timeout: Duration::from_secs(30),
            retry_after: Duration::from_secs(3 * 60),
            max_attempts: 10,
            batch: 100,
            concurrency: 4,
            idle_poll: Duration::from_secs(5),
        }
    }

    /// How long a claimed row stays this dispatcher's.
    pub fn lease(&self) -> Duration {
        self.timeout * 10
    }

    /// The delay before attempt `attempts + 1`, without jitter.
    pub fn retry_delay(&self, attempts: i64) -> Duration {
        let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        self.retry_after
            .saturating_mul(1u32 << doublings)
            .min(MAX_RETRY_DELAY)
    }
}

/// The URL with its password replaced, for logs.
fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("redacted"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "<unparsable>".to_string(),
    }
}

/// A mail setting that cannot work.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MailError(pub String);

/// How one attempt ended, before the retry policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Sent,
    Temporary(String),
    Permanent(String),
}

/// The SMTP side: pooled sessions and the sender.
pub struct Mailer {
    pool: smtp::Pool,
    from: Mailbox,
    domain: String,
    config: MailConfig,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Checks the settings and builds the transport (no connection yet).
    pub fn new(config: MailConfig) -> Result<Mailer, MailError> {
        let from: Mailbox = config.from.trim().parse().map_err(|e| {
            MailError(format!(
                "OMS_MAIL_FROM {:?} is not an address ({e}); use shop@example.com or \"Shop <shop@example.com>\"",
                config.from
            ))
        })?;
        let domain = from.email.domain().to_string();
        if let Some(base) = &config.public_url {
            let parsed = url::Url::parse(base)
                .map_err(|e| MailError(format!("OMS_PUBLIC_URL {base:?} is not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(MailError(format!(
                    "OMS_PUBLIC_URL {base:?} must start with http:// or https://"
                )));
            }
        }
        if config.max_attempts == 0 || config.batch == 0 || config.concurrency == 0 {
            return Err(MailError(
                "attempts, batch and concurrency must be at least 1".into(),
            ));
        }
        let server = smtp::Server::parse(&config.smtp_url, config.timeout)?;
        Ok(Mailer {
            pool: smtp::Pool::new(server, config.concurrency),
            from,
            domain,
            config,
        })
    }

    /// The settings.
    pub fn config(&self) -> &MailConfig {
        &self.config
    }

    /// The right-hand side of this shop's `Message-ID`s.
    pub fn message_id_domain(&self) -> &str {
        &self.domain
    }

    /// Builds and sends the mail of one claimed row. Blocking: call it off
    /// the async runtime. `mail` is `None` when the order was removed.
    pub fn attempt(&self, claim: &ClaimedNotification, mail: Option<&MailOrder>) -> Attempt {
        let Some(mail) = mail else {
            return Attempt::Permanent(format!(
                "order {} was removed before its mail was sent",
                claim.order_id
            ));
        };
        let message = match self.build(claim, mail) {
            Ok(message) => message,
            Err(e) => return Attempt::Permanent(e),
        };
        match self.pool.send(message.envelope(), &message.formatted()) {
            Ok(()) => Attempt::Sent,
            Err(e) if e.is_permanent() => Attempt::Permanent(format!("refused: {e}")),
            Err(e) if timed_out(&e) => {
                Attempt::Temporary(format!("no answer within {:?}: {e}", self.config.timeout))
            }
            Err(e) => Attempt::Temporary(e.to_string()),
        }
    }

    fn build(&self, claim: &ClaimedNotification, mail: &MailOrder) -> Result<Message, String> {
        let to: Mailbox = claim
            .recipient
            .parse()
            .map_err(|e| format!("recipient {:?} is not an address: {e}", claim.recipient))?;
        let rendered = render::render(claim, mail, self.config.public_url.as_deref())
            .map_err(|e| format!("cannot render the mail: {e}"))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(rendered.subject)
            .message_id(Some(claim.message_id.clone()))
            .multipart(MultiPart::alternative_plain_html(
                rendered.text,
                rendered.html,
            ))
            .map_err(|e| format!("cannot build the mail: {e}"))
    }

    /// What the outbox records for an attempt: temporary failures are
    /// retried with backoff and jitter until `max_attempts`.
    pub fn delivery(&self, attempt: Attempt, attempts: i64, now: Timestamp) -> MailOutcome {
        match attempt {
            Attempt::Sent => MailOutcome::Sent,
            Attempt::Permanent(error) => MailOutcome::Dead { error },
            Attempt::Temporary(error) if attempts >= i64::from(self.config.max_attempts) => {
                MailOutcome::Dead {
                    error: format!("gave up after {attempts} attempts; last: {error}"),
                }
            }
            Attempt::Temporary(error) => {
                let delay = self
                    .config
                    .retry_delay(attempts)
                    .mul_f64(fastrand::f64().mul_add(0.5, 0.75));
                MailOutcome::Retry {
                    at: now.plus(delay),
                    error,
                }
            }
        }
    }
}

/// Whether a send failed because the server did not answer in time (a
/// socket timeout surfaces as `WouldBlock` or `TimedOut`).
fn timed_out(e: &smtp::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            );
        }
        source = err.source();
    }
    false
}

/// How the dispatcher reaches the outbox (a shop's [`Db`]; tests may
/// substitute their own).
pub trait Outbox: Send + Sync + 'static {
    /// Claims due rows for `owner` for `lease` (measured from the claiming
    /// transaction's clock).
    fn claim(
        &self,
        owner: String,
        limit: usize,
        lease: Duration,
        domain: String,
    ) -> impl Future<Output = oms_core::Result<Vec<ClaimedNotification>>> + Send;
    /// The orders the claimed mails are about (missing: removed since).
    fn mail_orders(
        &self,
        orders: Vec<OrderId>,
    ) -> impl Future<Output = oms_core::Result<Vec<MailOrder>>> + Send;
    /// Records outcomes of `owner`'s attempts.
    fn record(
        &self,
        owner: String,
        outcomes: Vec<(NotificationId, MailOutcome)>,
    ) -> impl Future<Output = oms_core::Result<Recorded>> + Send;
    /// Rows due now and when the next falls due.
    fn backlog(&self) -> impl Future<Output = oms_core::Result<Backlog>> + Send;
}

/// The outbox of a shop's [`Db`]: on the daemon's serving handle claims
/// and outcomes join the writer's group commits and reads go to its reader
/// threads; on `oms notify send`'s handle each call runs at once.
impl Outbox for Db {
    async fn claim(
        &self,
        owner: String,
        limit: usize,
        lease: Duration,
        domain: String,
    ) -> oms_core::Result<Vec<ClaimedNotification>> {
        self.write_async(Actor::system("mail"), move |tx| {
            tx.claim_notifications(&Claim {
                owner: &owner,
                limit,
                lease_until: tx.now().plus(lease),
                message_id_domain: &domain,
            })
        })
        .await
    }

    async fn mail_orders(&self, orders: Vec<OrderId>) -> oms_core::Result<Vec<MailOrder>> {
        self.read_async(move |store| store.mail_orders(&orders))
            .await
    }

    async fn record(
        &self,
        owner: String,
        outcomes: Vec<(NotificationId, MailOutcome)>,
    ) -> oms_core::Result<Recorded> {
        self.write_async(Actor::system("mail"), move |tx| {
            tx.record_deliveries(&owner, &outcomes)
        })
        .await
    }

    async fn backlog(&self) -> oms_core::Result<Backlog> {
        self.read_async(|store| store.notification_backlog(Timestamp::now()))
            .await
    }
}

/// What one batch, or a whole `oms notify send`, did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SendReport {
    /// Rows claimed (due).
    pub due: u64,
    pub sent: u64,
    /// Temporary failures, to be retried.
    pub rescheduled: u64,
    /// Permanent failures and rows out of attempts.
    pub dead: u64,
    /// Claimed but not attempted (lease too short, shutdown): due again.
    #[serde(skip)]
    pub released: u64,
    /// Outcomes dropped because another dispatcher held the row by then.
    #[serde(skip)]
    pub lost_lease: u64,
    /// The last failure, for the command line's message.
    #[serde(skip)]
    pub last_error: Option<String>,
}

impl SendReport {
    fn add(&mut self, other: &SendReport) {
        self.due += other.due;
        self.sent += other.sent;
        self.rescheduled += other.rescheduled;
        self.dead += other.dead;
        self.released += other.released;
        self.lost_lease += other.lost_lease;
        if other.last_error.is_some() {
            self.last_error.clone_from(&other.last_error);
        }
    }
}

/// Counts outcomes as they are recorded (the daemon's metrics).
pub type OutcomeHook = Arc<dyn Fn(&SendReport) + Send + Sync>;

/// Claims, sends and records, batch by batch.
pub struct Dispatcher<O: Outbox> {
    outbox: Arc<O>,
    mailer: Arc<Mailer>,
    workers: workers::Workers,
    owner: String,
    stop: Arc<AtomicBool>,
    hook: Option<OutcomeHook>,
}

impl<O: Outbox> Dispatcher<O> {
    /// A dispatcher with an owner token of its own: `who` names it in the
    /// lease (`serve`, `cli`), the rest makes it unique.
    /// Starts its `concurrency` mail threads.
    pub fn new(outbox: Arc<O>, mailer: Arc<Mailer>, who: &str) -> Result<Dispatcher<O>, MailError> {
        let workers = workers::Workers::start(mailer.config.concurrency)
            .map_err(|e| MailError(format!("cannot start the mail threads: {e}")))?;
        Ok(Dispatcher {
            outbox,
            mailer,
            workers,
            owner: format!("{who}:{}:{:016x}", std::process::id(), fastrand::u64(..)),
            stop: Arc::new(AtomicBool::new(false)),
            hook: None,
        })
    }

    /// Calls `hook` with the outcome of every batch.
    pub fn with_hook(mut self, hook: OutcomeHook) -> Dispatcher<O> {
        self.hook = Some(hook);
        self
    }

    /// Set to stop starting sends (the rows not started are released).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// The outbox this dispatcher claims from.
    pub fn outbox(&self) -> &O {
        &self.outbox
    }

    /// The mailer's settings.
    pub fn config(&self) -> &MailConfig {
        self.mailer.config()
    }

    /// Delivers what is due, batch after batch, until nothing is due or
    /// `limit` rows were claimed (`oms notify send`).
    pub async fn drain(&self, limit: Option<u64>) -> oms_core::Result<SendReport> {
        let mut total = SendReport::default();
        let batch = self.mailer.config.batch as u64;
        loop {
            let want = match limit {
                Some(limit) => batch.min(limit.saturating_sub(total.due)),
                None => batch,
            };
            if want == 0 || self.stop.load(Ordering::Acquire) {
                break;
            }
            let report = self.run_batch(want as usize).await?;
            total.add(&report);
            // Released rows are not counted as due twice.
            total.due -= report.released;
            if report.due < want || report.released == report.due {
                break;
            }
        }
        Ok(total)
    }

    /// One batch: claim up to `limit` rows, send them, record how it went.
    pub async fn run_batch(&self, limit: usize) -> oms_core::Result<SendReport> {
        let config = &self.mailer.config;
        let lease = config.lease();
        // Sends start only while at least five timeouts of the lease remain.
        let last_start = Instant::now() + lease.saturating_sub(config.timeout * 5);
        let claimed = self
            .outbox
            .claim(
                self.owner.clone(),
                limit,
                lease,
                self.mailer.message_id_domain().to_string(),
            )
            .await?;
        if claimed.is_empty() {
            return Ok(SendReport::default());
        }
        let mut order_ids: Vec<OrderId> = claimed.iter().map(|c| c.order_id).collect();
        order_ids.sort_unstable();
        order_ids.dedup();
        let orders: HashMap<OrderId, MailOrder> = match self.outbox.mail_orders(order_ids).await {
            Ok(found) => found.into_iter().map(|m| (m.order.id, m)).collect(),
            Err(e) => {
                // Give the rows back rather than wait out the lease.
                let released = claimed
                    .iter()
                    .map(|c| (c.id, MailOutcome::Released))
                    .collect();
                let _ = self.outbox.record(self.owner.clone(), released).await;
                return Err(e);
            }
        };
        let outcomes = self.send_all(claimed, orders, last_start).await;
        let mut report = SendReport {
            due: outcomes.len() as u64,
            ..SendReport::default()
        };
        for (_, delivery) in &outcomes {
            match delivery {
                MailOutcome::Sent => report.sent += 1,
                MailOutcome::Retry { error, .. } => {
                    report.rescheduled += 1;
                    report.last_error = Some(error.clone());
                }
                MailOutcome::Dead { error } => {
                    report.dead += 1;
                    report.last_error = Some(error.clone());
                }
                MailOutcome::Released => report.released += 1,
            }
        }
        let recorded = self.outbox.record(self.owner.clone(), outcomes).await?;
        report.lost_lease = recorded.lost_lease;
        if recorded.lost_lease > 0 {
            tracing::warn!(
                rows = recorded.lost_lease,
                "outcomes not recorded: the lease had passed to another dispatcher"
            );
        }
        if let Some(hook) = &self.hook {
            hook(&report);
        }
        Ok(report)
    }

    /// Sends every claimed row on the mail threads, `concurrency` at a
    /// time; rows not started by `last_start` (or after a stop) are
    /// released.
    async fn send_all(
        &self,
        claimed: Vec<ClaimedNotification>,
        orders: HashMap<OrderId, MailOrder>,
        last_start: Instant,
    ) -> Vec<(NotificationId, MailOutcome)> {
        let workers = self.mailer.config.concurrency.min(claimed.len()).max(1);
        let ids: Vec<NotificationId> = claimed.iter().map(|c| c.id).collect();
        let queue = Arc::new(Mutex::new(claimed.into_iter().collect::<VecDeque<_>>()));
        let orders = Arc::new(orders);
        let mut answers = Vec::with_capacity(workers);
        for _ in 0..workers {
            let queue = Arc::clone(&queue);
            let orders = Arc::clone(&orders);
            let mailer = Arc::clone(&self.mailer);
            let stop = Arc::clone(&self.stop);
            answers.push(self.workers.run(move || {
                let mut done = Vec::new();
                loop {
                    let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                    let Some(claim) = next else { break };
                    if stop.load(Ordering::Acquire) || Instant::now() >= last_start {
                        done.push((claim.id, MailOutcome::Released));
                        continue;
                    }
                    let attempt = mailer.attempt(&claim, orders.get(&claim.order_id));
                    if let Attempt::Temporary(e) | Attempt::Permanent(e) = &attempt {
                        tracing::debug!(notification = %claim.id, error = %e, "delivery failed");
                    }
                    let delivery = mailer.delivery(attempt, claim.attempts, Timestamp::now());
                    done.push((claim.id, delivery));
                }
                done
            }));
        }
        let mut outcomes = Vec::with_capacity(ids.len());
        for answer in answers {
            match answer.await {
                Ok(done) => outcomes.extend(done),
                // A worker that panicked leaves its rows to the lease.
                Err(_) => tracing::error!("a mail worker failed; its rows wait for their lease"),
            }
        }
        outcomes.sort_by_key(|(id, _)| *id);
        outcomes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mailer_builds_for_every_scheme_without_connecting() {
        // smtps and STARTTLS build a rustls client config here: this also
        // checks that rustls finds exactly one crypto provider.
        for url in [
            "smtps://user:secret@localhost:465",
            "smtp://user:secret@localhost:587",
            "smtp://localhost:25?tls=none",
        ] {
            let mailer = Mailer::new(MailConfig::new(url, "Shop <shop@example.com>")).unwrap();
            assert_eq!(mailer.message_id_domain(), "example.com");
            assert!(!format!("{mailer:?}").contains("secret"));
        }
        let bad_from = Mailer::new(MailConfig::new("smtp://localhost", "not an address"));
        assert!(bad_from.unwrap_err().to_string().contains("OMS_MAIL_FROM"));
        let mut config = MailConfig::new("smtp://localhost", "shop@example.com");
        config.public_url = Some("javascript:alert(1)".into());
        assert!(Mailer::new(config).is_err());
    }

    #[test]
    fn backoff_doubles_with_jitter_and_gives_up_after_max_attempts() {
        let config = MailConfig::new("smtp://localhost", "shop@example.com");
        let minutes: Vec<u64> = (1..=10)
            .map(|n| config.retry_delay(n).as_secs() / 60)
            .collect();
        assert_eq!(minutes, [3, 6, 12, 24, 48, 96, 192, 384, 480, 480]);
        let total: u64 = (1..10).map(|n| config.retry_delay(n).as_secs()).sum();
        assert!((18 * 3600..=24 * 3600).contains(&total), "{total}");

        let mailer = Mailer::new(config).unwrap();
        let now = Timestamp::from_millis(1_000_000);
        for attempts in 1..10 {
            let MailOutcome::Retry { at, error } =
                mailer.delivery(Attempt::Temporary("421".into()), attempts, now)
            else {
                panic!("attempt {attempts} should be retried");
            };
            assert_eq!(error, "421");
            let delay = (at.millis() - now.millis()) as f64;
            let base = mailer.config().retry_delay(attempts).as_millis() as f64;
            assert!(
                (0.75 * base..=1.25 * base).contains(&delay),
                "{delay} vs {base}"
            );
        }
        assert!(matches!(
            mailer.delivery(Attempt::Temporary("421".into()), 10, now),
            MailOutcome::Dead { error } if error.contains("gave up after 10 attempts")
        ));
        assert_eq!(
            mailer.delivery(Attempt::Permanent("550".into()), 1, now),
            MailOutcome::Dead {
                error: "550".into()
            }
        );
        assert_eq!(mailer.delivery(Attempt::Sent, 3, now), MailOutcome::Sent);
    }
}
