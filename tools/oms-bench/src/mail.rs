//! The mail dispatcher's figures, with `oms-mailsink` as the server:
//!
//! - `smtp-sink`: a fake SMTP server on a loopback port that accepts every
//!   message, for `oms serve` to deliver to while wrk places orders;
//!   prints `port=N` and serves until SIGTERM or SIGINT (or its time is
//!   up), then prints what it received.
//! - `mail-throughput`: `oms notify send` against a sink in this process,
//!   on a database whose outbox holds the rows to send: messages per
//!   second, and the connections they took (reuse keeps that at the
//!   dispatcher's concurrency).

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use oms_mailsink::Sink;

use crate::Result;

#[derive(Debug, clap::Args)]
pub struct SinkArgs {
    /// Loopback address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Stop after this many seconds at the latest.
    #[arg(long, default_value_t = 600)]
    pub seconds: u64,
}

#[derive(Debug, clap::Args)]
pub struct ThroughputArgs {
    /// The oms binary.
    #[arg(long, default_value = "oms")]
    pub oms: PathBuf,
    /// A database whose outbox holds due rows (e.g. filled by `storage`).
    #[arg(long)]
    pub db: PathBuf,
    /// Messages to send (`oms notify send --limit`).
    #[arg(long, default_value_t = 10_000)]
    pub messages: u64,
}

pub async fn sink(args: &SinkArgs) -> Result<()> {
    let sink = Sink::bind(&args.listen, |_, _| oms_mailsink::Action::Accept)?;
    println!("port={}", sink.addr().port());
    std::io::stdout().flush()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(args.seconds)) => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    println!(
        "smtp-sink messages={} connections={}",
        sink.count(),
        sink.connections()
    );
    Ok(())
}

pub fn throughput(args: &ThroughputArgs) -> Result<()> {
    let sink = Sink::start()?;
    let started = Instant::now();
    let out = Command::new(&args.oms)
        .arg("--db")
        .arg(&args.db)
        .args(["notify", "send", "--format", "json", "--limit"])
        .arg(args.messages.to_string())
        .env("OMS_SMTP_URL", sink.url())
        .env("OMS_MAIL_FROM", "Bench <bench@example.com>")
        .env("OMS_PUBLIC_URL", "https://shop.example")
        .env_remove("OMS_LOG")
        .output()?;
    let seconds = started.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "oms notify send failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let sent = report["sent"].as_u64().unwrap_or(0);
    let received = sink.accepted().len() as u64;
    if sent != args.messages || received != sent {
        return Err(format!(
            "asked for {} messages: notify send reported {report}, the sink accepted {received}",
            args.messages
        )
        .into());
    }
    println!(
        "mail-throughput messages={sent} seconds={seconds:.3} messages_per_s={:.0} connections={}",
        sent as f64 / seconds,
        sink.connections()
    );
    Ok(())
}
