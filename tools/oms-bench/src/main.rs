//! `oms-bench`: the parts of `scripts/bench` that wrk cannot measure.
//!
//! - `storage`: the storage ceiling, placing orders in-process through
//!   the serving `Db` the daemon opens, by many writers at once (no HTTP);
//! - `feed-latency`: how long long-poll waiters take to wake after a commit;
//! - `idle-conns`: daemon memory and health-check latency while thousands of
//!   long-poll connections (or event streams, `--stream`) are held;
//! - `stream-latency`: how long events take to reach open event streams
//!   (`/api/changes/stream`) after a commit;
//! - `smtp-sink` and `mail-throughput`: a fake SMTP server for the daemon's
//!   dispatcher, and `oms notify send`'s messages per second;
//! - `limits`: resource-limit attacks (huge bodies, deep JSON, huge limits,
//!   slowloris, idle connections, waiters over the cap), each judged by its
//!   answer, the daemon's health checks and its peak memory;
//! - `webhook-events`: signed payment webhook deliveries for wrk to send.
//!
//! Every subcommand prints one line of `key=value` figures on stdout (read by
//! `scripts/bench`; `limits` prints a table first), and progress notes on
//! stderr. HTTP load only ever goes
//! to a loopback address, with bounded counts and timeouts.

mod daemon;
mod feed;
mod http;
mod idle;
mod limits;
mod mail;
mod sse;
mod stats;
mod storage;
mod webhook;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Parser)]
#[command(name = "oms-bench", about = "Load harness for scripts/bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Place orders in-process through a serving Db, --group writers at once (the storage ceiling).
    Storage(StorageArgs),
    /// Write signed payment.captured deliveries for PENDING orders (scripts/wrk/webhook.lua).
    WebhookEvents(WebhookArgs),
    /// Wake latency of long-poll waiters on /api/changes after a commit.
    FeedLatency(FeedArgs),
    /// Hold idle long-poll connections; measure daemon RSS and /healthz latency.
    IdleConns(IdleArgs),
    /// Latency from a commit to its event on open /api/changes/stream streams.
    StreamLatency(StreamArgs),
    /// Resource-limit attacks: huge bodies, deep JSON, huge limits,
    /// slowloris, idle connections, waiters over the cap.
    Limits(LimitsArgs),
    /// A fake SMTP server accepting every message (prints port=N).
    SmtpSink(mail::SinkArgs),
    /// Messages per second of `oms notify send` to a fake SMTP server.
    MailThroughput(mail::ThroughputArgs),
}

#[derive(Debug, clap::Args)]
pub struct StorageArgs {
    /// Database file or postgres:// URL (created, migrated and seeded if
    /// empty).
    #[arg(long)]
    pub db: String,
    /// Orders to place.
    #[arg(long)]
    pub orders: u64,
    /// Orders per group commit (the daemon's writer groups what is queued).
    #[arg(long, default_value_t = 64)]
    pub group: usize,
    /// Lines per order: a number, or a range such as `1-3` (varies by order).
    #[arg(long, default_value = "3")]
    pub lines: String,
    /// Place every Nth order as PAID (0: all PENDING), so that status filters
    /// have something to filter.
    #[arg(long, default_value_t = 0)]
    pub paid_every: u64,
}

#[derive(Debug, clap::Args)]
pub struct WebhookArgs {
    /// The database whose PENDING orders are paid (read-only).
    #[arg(long)]
    pub db: PathBuf,
    /// The webhook secret the daemon was started with.
    #[arg(long, env = "OMS_WEBHOOK_SECRET", hide_env_values = true)]
    pub secret: String,
    /// At most this many events (one per PENDING order, oldest first).
    #[arg(long)]
    pub count: u64,
    /// Output prefix: lines go to PREFIX.1 .. PREFIX.N.
    #[arg(long)]
    pub out: PathBuf,
    /// How many files (one per wrk thread).
    #[arg(long, default_value_t = 2)]
    pub files: usize,
    /// Makes payment and event ids unique across runs on one database.
    #[arg(long, default_value = "0")]
    pub run: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CommitVia {
    /// PATCH /api/products/{sku} on the daemon; acknowledged by its response.
    Http,
    /// `oms product restock` as a separate process; acknowledged by its exit.
    Cli,
}

#[derive(Debug, clap::Args)]
pub struct FeedArgs {
    /// The daemon, e.g. http://127.0.0.1:8080 (loopback only).
    #[arg(long)]
    pub url: String,
    /// Admin bearer token.
    #[arg(long, env = "OMS_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Long-poll requests waiting at once.
    #[arg(long, default_value_t = 1000)]
    pub waiters: usize,
    /// Commits (each wakes every waiter once).
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// How the commit is made.
    #[arg(long, value_enum, default_value_t = CommitVia::Http)]
    pub commit: CommitVia,
    /// The oms binary (for `--commit cli`).
    #[arg(long, default_value = "oms")]
    pub oms: PathBuf,
    /// The daemon's database file (read for the newest change seq, and
    /// written by `--commit cli`).
    #[arg(long)]
    pub db: PathBuf,
    /// The product the commits touch.
    #[arg(long, default_value = "SKU-001")]
    pub sku: String,
}

#[derive(Debug, clap::Args)]
pub struct IdleArgs {
    /// The daemon, e.g. http://127.0.0.1:8080 (loopback only).
    #[arg(long)]
    pub url: String,
    /// Admin bearer token.
    #[arg(long, env = "OMS_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Idle long-poll connections to hold.
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,
    /// The daemon's process id (its VmRSS is read from /proc).
    #[arg(long)]
    pub pid: u32,
    /// Sequential GET /healthz requests timed before and while holding.
    #[arg(long, default_value_t = 200)]
    pub healthz: usize,
    /// Hold event streams (/api/changes/stream) instead of long-polls.
    #[arg(long)]
    pub stream: bool,
}

#[derive(Debug, clap::Args)]
pub struct StreamArgs {
    /// The daemon, e.g. http://127.0.0.1:8080 (loopback only).
    #[arg(long)]
    pub url: String,
    /// Admin bearer token.
    #[arg(long, env = "OMS_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Event streams open at once.
    #[arg(long, default_value_t = 1000)]
    pub streams: usize,
    /// Commits (each reaches every stream once).
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// The product the commits rename.
    #[arg(long, default_value = "SKU-001")]
    pub sku: String,
}

#[derive(Debug, clap::Args)]
pub struct LimitsArgs {
    /// Start this oms binary on a fresh demo database (in a temporary
    /// directory) and attack it; otherwise give --url, --token and --pid.
    #[arg(long, conflicts_with_all = ["url", "pid"])]
    pub oms: Option<PathBuf>,
    /// A running daemon, e.g. http://127.0.0.1:8080 (loopback only).
    #[arg(long, requires_all = ["token", "pid"])]
    pub url: Option<String>,
    /// Admin bearer token for --url.
    #[arg(long, env = "OMS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The daemon's process id for --url (VmHWM is read from /proc).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Smaller sizes: 200 slowloris clients, 2,000 idle connections.
    #[arg(long)]
    pub quick: bool,
    /// Size of the oversized bodies, in MB.
    #[arg(long, default_value_t = 100)]
    pub body_mb: u64,
    /// Nesting depth of the deep JSON bodies.
    #[arg(long, default_value_t = 10_000)]
    pub depth: usize,
    /// Slowloris (and silent) clients [default: 1000, quick 200].
    #[arg(long)]
    pub slowloris: Option<usize>,
    /// Idle long-poll connections [default: 10000, quick 2000].
    #[arg(long)]
    pub idle: Option<usize>,
    /// The daemon's long-poll waiter cap (Config::max_waiters).
    #[arg(long, default_value_t = 12_000)]
    pub waiter_cap: usize,
    /// Long-polls sent beyond the cap.
    #[arg(long, default_value_t = 50)]
    pub over_cap: usize,
    /// Memory allowed per held connection, KiB.
    #[arg(long, default_value_t = 32.0)]
    pub conn_kib: f64,
    /// Memory allowed on top of the peak before each attack, MiB.
    #[arg(long, default_value_t = 32.0)]
    pub slack_mib: f64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Storage(args) => storage::run(&args),
        Command::WebhookEvents(args) => webhook::run(&args),
        Command::FeedLatency(args) => runtime().and_then(|rt| rt.block_on(feed::run(&args))),
        Command::IdleConns(args) => runtime().and_then(|rt| rt.block_on(idle::run(&args))),
        Command::StreamLatency(args) => runtime().and_then(|rt| rt.block_on(sse::run(&args))),
        Command::Limits(args) => match runtime().and_then(|rt| rt.block_on(limits::run(&args))) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => Err(e),
        },
        Command::SmtpSink(args) => runtime().and_then(|rt| rt.block_on(mail::sink(&args))),
        Command::MailThroughput(args) => mail::throughput(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oms-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
