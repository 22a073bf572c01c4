//! The top of the command tree: global options and the command groups.

use clap::{Args, Parser, Subcommand};
use oms_core::Location;

use crate::commands;
use crate::output::Format;

const EXIT_CODES: &str = "\
Exit codes:
  0  ok
  1  internal or I/O error (including a database busy for longer than the timeout)
  2  usage error
  3  not found
  4  conflict: insufficient stock, invalid transition, duplicate, idempotency mismatch, verify drift
  5  invalid input: validation, bad CSV row

Environment:
  OMS_DB          database file (default ./oms.db)
  OMS_LOG         log filter for stderr, e.g. debug
  OMS_LISTEN      oms serve: address (default 127.0.0.1:8080)
  OMS_JWT_SECRET  oms serve / token create: HS256 secret, at least 32 bytes
                  (default: generated once and kept in the database)
  OMS_LOG_FORMAT  oms serve: json or text
  OMS_WEBHOOK_SECRET           oms serve: secret of the Razorpay webhook's signatures
                               (unset: POST /api/payments/webhook answers 503)
  OMS_WEBHOOK_SECRET_PREVIOUS  oms serve: also accepted while rotating the secret
  OMS_SMTP_URL    oms serve / notify send: mail server, smtp://user:pass@host:587
                  (STARTTLS), smtps://user:pass@host:465 or smtp://host:25?tls=none
  OMS_MAIL_FROM   sender of notification mails, e.g. 'Shop <shop@example.com>'
  OMS_PUBLIC_URL  base of the tracking link in mails, e.g. https://shop.example
  OMS_SMTP_TIMEOUT, OMS_MAIL_RETRY_AFTER, OMS_MAIL_MAX_ATTEMPTS
                  mail delivery tuning (30s, 3m, 10; see the README)";

/// Order management on a SQLite file: products, customers, orders with
/// stock reservations and a strict status machine, CSV in and out.
#[derive(Debug, Parser)]
#[command(name = "oms", version, after_help = EXIT_CODES, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Database: a file (created and migrated on first use) or a
    /// postgres:// URL.
    #[arg(long, global = true, env = "OMS_DB", default_value = "oms.db")]
    pub db: Location,

    /// Output format [default: table; jsonl for `changes`].
    #[arg(long, global = true, value_enum)]
    pub format: Option<Format>,

    /// Print only ids, one per line.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and migrate the database; optionally load the demo data.
    Init(commands::init::InitArgs),
    /// Manage user accounts (admins and customer logins).
    #[command(subcommand)]
    User(commands::user::UserCommand),
    /// Manage customers.
    #[command(subcommand)]
    Customer(commands::customer::CustomerCommand),
    /// Manage products and their stock.
    #[command(subcommand)]
    Product(commands::product::ProductCommand),
    /// Place, list, change and export orders.
    #[command(subcommand)]
    Order(commands::order::OrderCommand),
    /// Payments from the webhook, and cash or transfers recorded by hand.
    #[command(subcommand)]
    Payment(commands::payment::PaymentCommand),
    /// Read the change log (JSON lines unless --format says otherwise).
    Changes(commands::changes::ChangesArgs),
    /// Check invariants, the stock ledger and database integrity (exit 4 on drift).
    Verify,
    /// Write a consistent copy of the database, safe while others write.
    Backup(commands::backup::BackupArgs),
    /// Copy the whole shop between databases (SQLite file ↔ PostgreSQL).
    #[command(subcommand)]
    Db(commands::db::DbCommand),
    /// Serve the HTTP API on this database (see the README for endpoints).
    Serve(commands::serve::ServeArgs),
    /// Mint tokens for scripts calling the daemon.
    #[command(subcommand)]
    Token(commands::token::TokenCommand),
    /// The e-mail notification outbox: list, deliver (cron), retry.
    #[command(subcommand)]
    Notify(commands::notify::NotifyCommand),
    /// Print shell completions.
    Completions(commands::completions::CompletionsArgs),
    /// Print or install the manual pages (generated from this help).
    Man(commands::man::ManArgs),
}
