//! `oms token create`: a JWT for scripts that call the daemon.

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;

use oms_core::prelude::*;

use super::Ctx;
use crate::error::{CliError, Result};
use crate::output::{Format, data_line};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a token for a user, signed with OMS_JWT_SECRET or the database's secret.
    Create(CreateArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The user's e-mail.
    #[arg(long)]
    pub email: String,
    /// How long the token is valid, e.g. 1h, 30d.
    #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
}

pub fn run(ctx: &Ctx, cmd: TokenCommand) -> Result {
    let TokenCommand::Create(args) = cmd;
    let db = ctx.db()?;
    let account = db
        .credentials(&args.email)?
        .ok_or_else(|| oms_core::Error::not_found("user", &args.email))?;
    let user = account.user;
    let secret = std::env::var("OMS_JWT_SECRET")
        .ok()
        .filter(|s| !s.is_empty());
    let keys = oms_daemon::token_keys(secret, &db).map_err(|e| CliError::Serve(e.to_string()))?;
    let (token, expires_at) = keys
        .mint(&account.grant, args.ttl)
        .map_err(|e| CliError::Serve(format!("cannot sign the token: {e}")))?;
    match ctx.global.format {
        Some(Format::Json | Format::Jsonl) => data_line(
            &json!({"token": token, "expires_at": expires_at, "role": user.role}).to_string(),
        )?,
        _ => data_line(&token)?,
    }
    Ok(())
}
