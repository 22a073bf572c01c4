//! `oms serve`: the HTTP daemon on this database.

use std::net::SocketAddr;

use clap::Args;
use oms_daemon::Config;

use oms_core::prelude::*;

use super::Ctx;
use crate::error::{CliError, Result};
use crate::output::note;

#[derive(Debug, Args)]
#[command(after_help = "\
Logs go to stderr: OMS_LOG is the filter (default info), OMS_LOG_FORMAT=json
gives one JSON object a line. Text logs are coloured only on a terminal (and
not with NO_COLOR set), so a file, a pipe or journald gets plain text.

Under systemd (Type=notify; packaging/systemd/oms.service) oms sends READY=1
to $NOTIFY_SOCKET once it listens and the database is open, and STOPPING=1
when SIGINT or SIGTERM starts the graceful shutdown.")]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "OMS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Fill an empty database with the demo data first and print the demo
    /// admin login.
    #[arg(long)]
    pub demo: bool,

    /// Cancel PENDING orders older than this (e.g. 24h), checked every
    /// minute; by default orders are kept until `oms order expire`.
    #[arg(long, env = "OMS_EXPIRE_AFTER", value_parser = humantime::parse_duration)]
    pub expire_after: Option<std::time::Duration>,
}

pub fn run(ctx: &Ctx, args: ServeArgs) -> Result {
    if args.demo {
        let empty = ctx.db()?.products(&Default::default())?.is_empty();
        if empty {
            super::init::load_demo(ctx, None)?;
        }
    }
    let mut config = Config::new(ctx.global.db.clone());
    config.listen = args.listen;
    config.expire_pending_after = args.expire_after;
    config.mail = super::notify::mail_config_from_env()?;
    if let Some(mail) = &config.mail {
        // A setting that cannot work is a usage error, before serving.
        oms_daemon::mail::Mailer::new(mail.clone()).map_err(|e| CliError::Usage(e.to_string()))?;
    }
    config.jwt_secret = std::env::var("OMS_JWT_SECRET")
        .ok()
        .filter(|s| !s.is_empty());
    // Read from the environment only, never from flags (which `ps` shows).
    config.webhook_secret = std::env::var("OMS_WEBHOOK_SECRET")
        .ok()
        .filter(|s| !s.is_empty());
    config.webhook_secret_previous = std::env::var("OMS_WEBHOOK_SECRET_PREVIOUS")
        .ok()
        .filter(|s| !s.is_empty());
    let demo = args.demo;
    oms_daemon::run(config, |addr| {
        note(&format!("oms serving http://{addr}/ (Ctrl-C to stop)"));
        if demo {
            note(&format!(
                "dashboard: open http://{addr}/ and log in as the demo admin"
            ));
            note(&format!(
                "demo admin: {} / {}  (POST /auth/login for a token)",
                crate::demo::ADMIN_EMAIL,
                crate::demo::ADMIN_PASSWORD
            ));
        }
    })
    .map_err(|e| CliError::Serve(e.to_string()))
}
