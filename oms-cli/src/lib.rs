//! `oms-cli`: the `oms` command tree (clap derive, one module per command
//! group) and the output rendering (table, json, jsonl, csv).
//!
//! The binary's `main` only calls [`main`]. Exit codes are decided in one
//! place, [`error::CliError::exit_code`].

mod cli;
mod commands;
mod demo;
mod error;
mod input;
mod output;

use std::process::ExitCode;

use clap::Parser;

pub use cli::Cli;
pub use error::CliError;

/// Parses the arguments, runs the command and maps the outcome to an exit
/// code. Errors are printed to stderr as one `error: ...` line.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version print to stdout and succeed; usage errors
            // print to stderr and exit 2.
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    // The daemon sets up its own logging (OMS_LOG, OMS_LOG_FORMAT).
    if !matches!(cli.command, cli::Command::Serve(_)) {
        init_tracing(cli.global.verbose);
    }
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            output::error_line(&e.to_string());
            ExitCode::from(e.exit_code())
        }
    }
}

/// Logs go to stderr. `OMS_LOG` takes a tracing filter; otherwise `-v`
/// raises the level from warnings to info, debug and trace.
fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("OMS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(oms_daemon::stderr_wants_colour())
        .with_writer(std::io::stderr)
        .try_init();
}
