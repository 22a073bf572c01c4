//! `oms man`: manual pages generated from the command tree (clap_mangen),
//! so they never drift from `--help`.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, CommandFactory};

use crate::cli::Cli;
use crate::error::{CliError, Result};
use crate::output::note;

#[derive(Debug, Args)]
#[command(after_help = "\
Install the pages where man looks for them:
  oms man --dir /usr/local/share/man/man1 && mandb
Read one without installing:
  oms man | man -l -")]
pub struct ManArgs {
    /// Write one page per command into DIR (oms.1, oms-order.1,
    /// oms-order-pay.1, ...), creating DIR if needed; without it, print
    /// oms(1) to stdout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// One page, headed "oms manual" and footed "oms" and the version on every
/// page (the crate's default source names the subcommand). The version
/// stands in the date field: left empty, that field is dropped from the
/// `.TH` line and the source would be shown as the date.
fn page(cmd: clap::Command) -> clap_mangen::Man {
    clap_mangen::Man::new(cmd)
        .source("oms")
        .date(format!("version {}", env!("CARGO_PKG_VERSION")))
        .manual("oms manual")
}

/// Writes the page of `cmd` and of every visible subcommand under it;
/// returns how many.
fn write_pages(cmd: &clap::Command, dir: &std::path::Path) -> std::io::Result<usize> {
    let mut written = 0;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        written += write_pages(sub, dir)?;
    }
    page(cmd.clone()).generate_to(dir)?;
    Ok(written + 1)
}

pub fn run(args: ManArgs) -> Result {
    // Built, so every subcommand has its display name (`oms-order-pay`),
    // which names its page.
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    match args.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| CliError::io(format!("cannot create {}", dir.display()), e))?;
            let count = write_pages(&cmd, &dir).map_err(|e| {
                CliError::io(format!("cannot write manual pages to {}", dir.display()), e)
            })?;
            note(&format!("wrote {count} manual pages to {}", dir.display()));
            Ok(())
        }
        None => {
            // Render first, then write: a closed pipe (`oms man | head`)
            // is a quiet success.
            let mut page_text = Vec::new();
            page(cmd).render(&mut page_text)?;
            let mut out = std::io::stdout().lock();
            out.write_all(&page_text)?;
            Ok(out.flush()?)
        }
    }
}
