//! Reading `FILE` or `-` (stdin), with a progress bar for large files, and
//! writing large exports with a byte counter. Progress goes to stderr and
//! only when stderr is a terminal.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, IsTerminal, Read, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::{CliError, Result};

/// Files larger than this (≈ a few thousand rows) get a progress bar.
const PROGRESS_THRESHOLD: u64 = 256 * 1024;

/// Opens `path` (`-` for stdin) for reading, with a progress bar when the
/// file is large and stderr is a terminal.
pub fn open(path: &str) -> Result<(Box<dyn Read>, ProgressBar)> {
    if path == "-" {
        return Ok((
            Box::new(BufReader::new(io::stdin().lock())),
            ProgressBar::hidden(),
        ));
    }
    let file = File::open(path).map_err(|e| CliError::io(format!("cannot open {path}"), e))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = if len > PROGRESS_THRESHOLD && io::stderr().is_terminal() {
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    Ok((
        Box::new(BufReader::with_capacity(256 * 1024, bar.wrap_read(file))),
        bar,
    ))
}

/// Buffered stdout that shows a byte counter on a terminal once an export
/// has grown past the threshold.
pub struct CountingStdout {
    out: BufWriter<io::Stdout>,
    written: u64,
    bar: ProgressBar,
    show: bool,
}

impl CountingStdout {
    pub fn new() -> Self {
        CountingStdout {
            out: BufWriter::with_capacity(256 * 1024, io::stdout()),
            written: 0,
            bar: ProgressBar::hidden(),
            show: io::stderr().is_terminal(),
        }
    }

    /// Clears the counter.
    pub fn finish(&mut self) -> io::Result<()> {
        self.bar.finish_and_clear();
        self.out.flush()
    }
}

impl Write for CountingStdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.written += n as u64;
        if self.show && self.written > PROGRESS_THRESHOLD && self.bar.is_hidden() {
            self.bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            self.bar.set_style(
                ProgressStyle::with_template("{spinner} exported {bytes} ({bytes_per_sec})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
        }
        if !self.bar.is_hidden() {
            self.bar.set_position(self.written);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Reads a password from stdin: the first line, without its line ending.
pub fn password_from_stdin() -> Result<String> {
    let mut line = String::new();
    io::stdin()
        .read_line(&mut line)
        .map_err(|e| CliError::io("reading the password from stdin", e))?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        return Err(CliError::Usage(
            "no password on stdin: pipe it in, e.g. `echo \"$PW\" | oms user add ... --password-stdin`".into(),
        ));
    }
    Ok(password)
}
