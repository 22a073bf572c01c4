//! `oms completions`: shell completion scripts.

use std::io::Write;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::cli::Cli;
use crate::error::Result;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: Shell,
}

pub fn run(args: CompletionsArgs) -> Result {
    let mut cmd = Cli::command();
    // Render first, then write: clap_complete panics on a closed pipe
    // (`oms completions bash | head`), which must be a quiet success.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "oms", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    Ok(out.flush()?)
}
