//! `oms notify`: the e-mail outbox — list it, deliver what is due (cron),
//! and put a dead notification back in the queue.

use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use oms_core::prelude::*;
use oms_core::{NotificationFilter, NotificationId, NotificationStatus, OrderId};
use oms_daemon::mail::{Dispatcher, MailConfig, Mailer, SendReport};

use super::Ctx;
use crate::error::{CliError, Result};

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// List outbox rows by id (recipient, kind, status, attempts, errors).
    List(ListArgs),
    /// Deliver every notification that is due once, then exit (for cron).
    ///
    /// Prints how many were sent, rescheduled (temporary failure, retried
    /// later with backoff) and dead. Exit 1 only when rows were due and
    /// none could be delivered. Needs OMS_SMTP_URL and OMS_MAIL_FROM.
    Send(SendArgs),
    /// Put a dead notification back in the queue with fresh attempts (exit 4 if it is not dead).
    Retry {
        /// Notification id.
        id: NotificationId,
    },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// pending, sent or dead.
    #[arg(long)]
    pub status: Option<NotificationStatus>,
    /// Only the notifications of this order.
    #[arg(long)]
    pub order: Option<OrderId>,
    /// At most this many rows (0 for all).
    #[arg(long, default_value_t = 100)]
    pub limit: u64,
    /// Only rows with an id greater than this (pagination cursor).
    #[arg(long)]
    pub after: Option<NotificationId>,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Deliver at most this many notifications.
    #[arg(long)]
    pub limit: Option<u64>,
}

pub fn run(ctx: &Ctx, cmd: NotifyCommand) -> Result {
    match cmd {
        NotifyCommand::List(args) => {
            let filter = NotificationFilter {
                status: args.status,
                order: args.order,
                limit: (args.limit > 0).then_some(args.limit),
                after: args.after,
            };
            ctx.out().list(&ctx.db()?.notifications(&filter)?)
        }
        NotifyCommand::Send(args) => send(ctx, args),
        NotifyCommand::Retry { id } => {
            let store = ctx.db()?;
            let row = store.write(&ctx.actor, |tx| tx.retry_notification(id))?;
            ctx.out().one(&row)
        }
    }
}

fn send(ctx: &Ctx, args: SendArgs) -> Result {
    let Some(config) = mail_config_from_env()? else {
        return Err(CliError::Usage(
            "OMS_SMTP_URL is not set: set it (and OMS_MAIL_FROM) to the mail server to deliver through".into(),
        ));
    };
    let mailer = Arc::new(Mailer::new(config).map_err(|e| CliError::Usage(e.to_string()))?);
    let store = ctx.db()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::io("cannot start the async runtime", e))?;
    let dispatcher = Dispatcher::new(std::sync::Arc::new(store), mailer, "cli")
        .map_err(|e| CliError::Serve(e.to_string()))?;
    let report = runtime.block_on(dispatcher.drain(args.limit))?;
    ctx.out().one(&report)?;
    if report.due > 0 && report.sent == 0 {
        return Err(CliError::Delivery(format!(
            "{} notification(s) were due and none could be delivered; last error: {}",
            report.due,
            report.last_error.as_deref().unwrap_or("unknown")
        )));
    }
    Ok(())
}

/// The dispatcher's settings from the environment: `None` when
/// `OMS_SMTP_URL` is unset or empty. Shared by `oms serve`.
pub fn mail_config_from_env() -> Result<Option<MailConfig>> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let Some(url) = var("OMS_SMTP_URL") else {
        return Ok(None);
    };
    let from = var("OMS_MAIL_FROM").ok_or_else(|| {
        CliError::Usage(
            "OMS_SMTP_URL is set but OMS_MAIL_FROM is not: set the sender address, e.g. OMS_MAIL_FROM='Shop <shop@example.com>'".into(),
        )
    })?;
    let mut config = MailConfig::new(url.trim(), from);
    config.public_url = var("OMS_PUBLIC_URL").map(|u| u.trim().to_string());
    let duration = |name: &str| -> Result<Option<Duration>> {
        var(name)
            .map(|v| {
                humantime::parse_duration(v.trim())
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| {
                        CliError::Usage(format!(
                            "{name}={v:?} is not a duration; use e.g. 30s, 2m or 1h"
                        ))
                    })
            })
            .transpose()
    };
    if let Some(timeout) = duration("OMS_SMTP_TIMEOUT")? {
        config.timeout = timeout;
    }
    if let Some(retry) = duration("OMS_MAIL_RETRY_AFTER")? {
        config.retry_after = retry;
    }
    if let Some(attempts) = var("OMS_MAIL_MAX_ATTEMPTS") {
        config.max_attempts = attempts
            .trim()
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "OMS_MAIL_MAX_ATTEMPTS={attempts:?} is not a whole number of at least 1"
                ))
            })?;
    }
    Ok(Some(config))
}

impl crate::output::Record for SendReport {
    fn columns() -> &'static [&'static str] {
        &["due", "sent", "rescheduled", "dead"]
    }
    fn cells(&self) -> Vec<String> {
        vec![
            self.due.to_string(),
            self.sent.to_string(),
            self.rescheduled.to_string(),
            self.dead.to_string(),
        ]
    }
    fn id(&self) -> String {
        self.sent.to_string()
    }
}
