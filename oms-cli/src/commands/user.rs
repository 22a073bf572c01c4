//! `oms user`: accounts that log in to the daemon.

use clap::{Args, Subcommand};
use oms_core::prelude::*;
use oms_core::{NewUser, Role, UserPatch, parse_email, parse_name, password};

use super::Ctx;
use crate::error::Result;
use crate::input::password_from_stdin;
use crate::output::note;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user. A customer user is linked to the customer with its e-mail
    /// (created if missing).
    Add(AddArgs),
    /// List users.
    List,
    /// Set a user's password, read from stdin. Every token issued to the
    /// user before stops working.
    Passwd(PasswdArgs),
    /// Rename a user or change its role. A role change ends every token
    /// issued to the user before; a customer made admin keeps its customer
    /// record and orders but is no longer linked to them.
    Update(UpdateArgs),
    /// Remove a user (a customer's record and orders stay). Every token
    /// issued to the user stops working.
    Remove {
        /// The user's e-mail.
        email: String,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    #[arg(long)]
    pub email: String,
    #[arg(long)]
    pub name: String,
    /// admin or customer.
    #[arg(long)]
    pub role: String,
    /// Read the password from the first line of stdin; without it the user
    /// cannot log in with a password (tokens from `oms token create` still work).
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// The user's e-mail.
    pub email: String,
    /// Read the new password from the first line of stdin (required).
    #[arg(long, required = true)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The user's e-mail.
    pub email: String,
    #[arg(long)]
    pub name: Option<String>,
    /// admin or customer.
    #[arg(long)]
    pub role: Option<String>,
}

pub fn run(ctx: &Ctx, cmd: UserCommand) -> Result {
    match cmd {
        UserCommand::Add(args) => {
            let email = parse_email(&args.email)?;
            let name = parse_name("name", &args.name)?;
            let role: Role = args.role.parse()?;
            let password_hash = if args.password_stdin {
                Some(password::hash(&password_from_stdin()?)?)
            } else {
                None
            };
            let store = ctx.db()?;
            let user = store.write(&ctx.actor, |tx| {
                tx.add_user(&NewUser {
                    email,
                    name,
                    role,
                    password_hash,
                })
            })?;
            ctx.out().one(&user)
        }
        UserCommand::List => ctx.out().list(&ctx.db()?.users()?),
        UserCommand::Passwd(args) => {
            let hash = password::hash(&password_from_stdin()?)?;
            let store = ctx.db()?;
            let user = store.write(&ctx.actor, |tx| tx.set_password(&args.email, &hash))?;
            note(&format!("password changed for {}", user.email));
            Ok(())
        }
        UserCommand::Update(args) => {
            let patch = UserPatch {
                name: args
                    .name
                    .as_deref()
                    .map(|n| parse_name("name", n))
                    .transpose()?,
                role: args.role.as_deref().map(str::parse).transpose()?,
            };
            let store = ctx.db()?;
            let user = store.write(&ctx.actor, |tx| tx.update_user(&args.email, &patch))?;
            ctx.out().one(&user)
        }
        UserCommand::Remove { email } => {
            let store = ctx.db()?;
            let user = store.write(&ctx.actor, |tx| tx.remove_user(&email))?;
            ctx.out().one(&user)
        }
    }
}
