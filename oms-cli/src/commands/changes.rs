//! `oms changes`: read the change log, or follow it.

use std::time::Duration;

use clap::Args;
use oms_core::Seq;

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

/// How often `--follow` checks for commits by other processes. The check is
/// `PRAGMA data_version`, which costs no disk read when nothing changed.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

pub fn run(ctx: &Ctx, args: ChangesArgs) -> Result {
    let store = ctx.store()?;
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
        let version = store.data_version()?;
        while store.data_version()? == version {
            std::thread::sleep(FOLLOW_POLL);
        }
    }
}
