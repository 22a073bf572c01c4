//! `oms completions`: shell completion scripts.

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
    clap_complete::generate(args.shell, &mut cmd, "oms", &mut std::io::stdout());
    Ok(())
}
