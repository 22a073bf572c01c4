//! `oms changes`: read the change log, or follow it.

use clap::Args;
use oms_core::Seq;
use oms_core::prelude::*;

use super::Ctx;
use crate::error::Result;
use crate::output::Format;

#[derive(Debug, Args)]
pub struct ChangesArgs {
    /// Only changes after this sequence number.
    #[arg(long, default_value_t = 0)]
    pub after: i64,
    /// At most this many changes (per poll with --follow; 0: no limit).
    #[arg(long, default_value_t = 1000)]
    pub limit: u64,
    /// Keep printing new changes as other processes commit them (Ctrl-C to stop).
    #[arg(long)]
    pub follow: bool,
}

pub fn run(ctx: &Ctx, args: ChangesArgs) -> Result {
    let store = ctx.db()?;
    // With --follow: notified of every commit, this process's or another's.
    let mut commits = match args.follow {
        true => Some(store.subscribe()?),
        false => None,
    };
    let runtime = match args.follow {
        true => Some(
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .map_err(|e| oms_core::Error::io("cannot start --follow", e))?,
        ),
        false => None,
    };
    let out = ctx.output(Format::Jsonl);
    let mut after = Seq(args.after.max(0));
    let limit = super::list_limit(Some(args.limit)).unwrap_or(u64::MAX);
    loop {
        let changes = store.changes_after(after, limit, None)?;
        if let Some(last) = changes.last() {
            after = last.seq;
        }
        if !args.follow {
            return out.list(&changes);
        }
        if !changes.is_empty() {
            out.list(&changes)?;
            if changes.len() as u64 >= limit {
                continue;
            }
        }
        if let (Some(commits), Some(runtime)) = (commits.as_mut(), runtime.as_ref()) {
            // Wakes on the next commit; nothing was missed meanwhile, since
            // the loop reads every change after the last one printed.
            if runtime.block_on(commits.changed()).is_err() {
                return Ok(());
            }
        }
    }
}
