//! `stream-latency`: S open event streams on `/api/changes/stream` (each on
//! its own connection), one commit per round through the daemon, and for
//! every stream the time from the commit's acknowledgement (the daemon's
//! response) to the event arriving on that stream.
//!
//! The writer publishes a commit's changes before it answers, so an event
//! may arrive before the acknowledgement; such an event counts as 0 ms
//! (`before_ack`), as in `feed-latency`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};

use crate::http::{self, Conn};
use crate::stats::Samples;
use crate::{Result, StreamArgs};

/// Connections opened at once while the streams are set up.
const CONNECTING: usize = 64;
/// The longest a round may take.
const ROUND_LIMIT: Duration = Duration::from_secs(30);

/// One stream: reports the arrival time of every event it receives.
async fn stream(
    addr: SocketAddr,
    token: Arc<String>,
    gate: Arc<Semaphore>,
    opened: mpsc::Sender<Result<(), String>>,
    events: mpsc::UnboundedSender<Instant>,
) {
    let connected = async {
        let _permit = gate.acquire().await?;
        let mut socket = TcpStream::connect(addr).await?;
        socket.set_nodelay(true)?;
        let req = http::request("GET", "/api/changes/stream", addr, Some(&token), None);
        socket.write_all(&req).await?;
        Ok::<_, crate::Error>(socket)
    }
    .await;
    let mut socket = match connected {
        Ok(s) => s,
        Err(e) => {
            let _ = opened.send(Err(e.to_string())).await;
            return;
        }
    };
    // Read up to the opening `id:` block: then the stream is registered.
    let mut seen: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let ready = loop {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => break Err("the stream closed before it opened".to_string()),
            Ok(n) => {
                seen.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&seen);
                if !text.starts_with("HTTP/1.1 200") && text.contains("\r\n") {
                    break Err(format!(
                        "the stream answered {}",
                        text.lines().next().unwrap_or("")
                    ));
                }
                if text.contains("retry: ") && text.contains("\n\n") {
                    break Ok(());
                }
            }
        }
    };
    let failed = ready.is_err();
    if opened.send(ready).await.is_err() || failed {
        return;
    }
    // Every `data:` is one event; the carry keeps a marker split across
    // two reads whole.
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let at = Instant::now();
        carry.extend_from_slice(&buf[..n]);
        let count = carry.windows(6).filter(|w| w == b"data: ").count();
        for _ in 0..count {
            if events.send(at).is_err() {
                return;
            }
        }
        let keep = carry.len().min(5);
        carry.drain(..carry.len() - keep);
    }
}

pub async fn run(args: &StreamArgs) -> Result<()> {
    let addr = http::loopback_addr(&args.url)?;
    if args.streams == 0 || args.rounds == 0 {
        return Err("--streams and --rounds must be at least 1".into());
    }
    crate::daemon::check_open_files(args.streams)?;
    let token = Arc::new(args.token.clone());
    let gate = Arc::new(Semaphore::new(CONNECTING));
    let (opened_tx, mut opened) = mpsc::channel(args.streams);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.streams {
        tasks.spawn(stream(
            addr,
            Arc::clone(&token),
            Arc::clone(&gate),
            opened_tx.clone(),
            events_tx.clone(),
        ));
    }
    drop(opened_tx);
    drop(events_tx);
    for _ in 0..args.streams {
        tokio::time::timeout(ROUND_LIMIT, opened.recv())
            .await
            .map_err(|_| "the streams did not all open in time")?
            .ok_or("a stream task stopped")??;
    }

    let mut writer = Conn::connect(addr).await?;
    let mut samples = Samples::default();
    let mut before_ack = 0usize;
    let started = Instant::now();
    for round in 1..=args.rounds {
        let body = serde_json::json!({"name": format!("Stream bench round {round}")}).to_string();
        let path = format!("/api/products/{}", args.sku);
        let req = http::request("PATCH", &path, addr, Some(&args.token), Some(&body));
        let resp = writer.call(&req, Duration::from_secs(15)).await?;
        let ack = Instant::now();
        if resp.status != 200 {
            return Err(format!("PATCH {path} answered {}: {}", resp.status, resp.text()).into());
        }
        let deadline = tokio::time::Instant::now() + ROUND_LIMIT;
        for _ in 0..args.streams {
            let at = tokio::time::timeout_at(deadline, events.recv())
                .await
                .map_err(|_| format!("round {round}: not every stream got the event"))?
                .ok_or("the streams stopped")?;
            let latency = at.saturating_duration_since(ack);
            if latency.is_zero() {
                before_ack += 1;
            }
            samples.push(latency);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    tasks.abort_all();
    println!(
        "stream-latency streams={} rounds={} events={} before_ack={before_ack} {} seconds={elapsed:.1}",
        args.streams,
        args.rounds,
        samples.len(),
        samples.summary("")
    );
    Ok(())
}
